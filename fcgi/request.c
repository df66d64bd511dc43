/* Request parsing and answering. Parsing trusts nothing nginx forwards: every header
 * value used is bounded and checked before anything reads it. */
#include "request.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "errors.h"
#include "file_types.h"
#include "json_fields.h"

static const char *param(char **envp, const char *name)
{
        size_t n = strlen(name);
        for (char **e = envp; e && *e; e++)
                if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
                        return *e + n + 1;
        return NULL;
}

static bool path_is_clean(const char *p)
{
        if (p[0] != '/')
                return false;
        for (const unsigned char *c = (const unsigned char *)p; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return false;
        return true;
}

/* The request id is nginx's $request_id (hex) when present, so nginx's access log and ours
 * name requests alike; anything else is replaced rather than echoed. */
static void request_id_set(struct http_request *req, const char *given)
{
        size_t n = given ? strlen(given) : 0;
        bool ok = n > 0 && n < REQUEST_ID_MAX;
        for (size_t i = 0; ok && i < n; i++)
                ok = (given[i] >= '0' && given[i] <= '9') || (given[i] >= 'a' && given[i] <= 'z');
        if (ok) {
                memcpy(req->request_id, given, n + 1);
                return;
        }
        static const char hex[] = "0123456789abcdef";
        unsigned char raw[16];
        if (getentropy(raw, sizeof raw) < 0)
                memset(raw, 0, sizeof raw);
        for (size_t i = 0; i < sizeof raw; i++) {
                req->request_id[2 * i] = hex[raw[i] >> 4];
                req->request_id[2 * i + 1] = hex[raw[i] & 15];
        }
        req->request_id[32] = 0;
}

int http_request_parse(char **envp, struct http_request *ret_req, char err[REQUEST_ERR_MAX])
{
        struct http_request req = {0};
        request_id_set(&req, param(envp, "REQUEST_ID"));
        req.method = param(envp, "REQUEST_METHOD");
        /* DOCUMENT_URI is the decoded, normalised path (no query); fall back to the raw one. */
        const char *path = param(envp, "DOCUMENT_URI");
        if (!path)
                path = param(envp, "SCRIPT_NAME");
        req.query = param(envp, "QUERY_STRING");
        if (!req.query)
                req.query = "";
        req.authorization = param(envp, "HTTP_AUTHORIZATION");
        req.api_key = param(envp, "HTTP_X_API_KEY");
        req.content_type = param(envp, "CONTENT_TYPE");
        req.accept = param(envp, "HTTP_ACCEPT");
        req.host = param(envp, "SERVER_NAME");
        req.cookie = param(envp, "HTTP_COOKIE");
        req.preview_token = param(envp, "HTTP_X_WARREN_PREVIEW_TOKEN");
        *ret_req = req; /* the request id is wanted even when the rest is refused */

        if (!req.method || !*req.method || strlen(req.method) > 16) {
                snprintf(err, REQUEST_ERR_MAX, "missing or invalid request method");
                return -EINVAL;
        }
        if (!path || !*path) {
                snprintf(err, REQUEST_ERR_MAX, "missing request path");
                return -EINVAL;
        }
        if (strlen(path) >= REQUEST_PATH_MAX) {
                snprintf(err, REQUEST_ERR_MAX, "request path is longer than %d bytes", REQUEST_PATH_MAX - 1);
                return -EINVAL;
        }
        if (!path_is_clean(path)) {
                snprintf(err, REQUEST_ERR_MAX, "request path contains control characters");
                return -EINVAL;
        }
        strcpy(req.path, path);
        req.content_length = -1;
        const char *cl = param(envp, "CONTENT_LENGTH");
        if (cl && *cl) {
                char *end;
                errno = 0;
                long long v = strtoll(cl, &end, 10);
                if (errno || *end || v < 0) {
                        snprintf(err, REQUEST_ERR_MAX, "invalid Content-Length");
                        *ret_req = req;
                        return -EINVAL;
                }
                req.content_length = v;
        }
        *ret_req = req;
        return 0;
}

int http_read_body(struct http_ctx *ctx, size_t limit, char **ret_buf, size_t *ret_len)
{
        if (ctx->req.content_length > (long long)limit)
                return -EFBIG;
        size_t cap = ctx->req.content_length >= 0 ? (size_t)ctx->req.content_length + 1 : 4096;
        if (cap > limit + 1)
                cap = limit + 1;
        _cleanup_free_ char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        size_t len = 0;
        for (;;) {
                if (len + 1 >= cap) {
                        if (len > limit)
                                return -EFBIG;
                        size_t ncap = cap * 2 > limit + 2 ? limit + 2 : cap * 2;
                        char *nbuf = realloc(buf, ncap);
                        if (!nbuf)
                                return -ENOMEM;
                        buf = nbuf;
                        cap = ncap;
                }
                long got = ctx->io.read(ctx->io.impl, buf + len, cap - 1 - len);
                if (got < 0)
                        return -EIO;
                if (got == 0) {
                        ctx->body_read = true;
                        break;
                }
                len += (size_t)got;
                if (len > limit)
                        return -EFBIG;
        }
        buf[len] = 0;
        *ret_len = len;
        *ret_buf = TAKE_PTR(buf);
        return 0;
}

void http_add_header(struct http_ctx *ctx, const char *fmt, ...)
{
        size_t used = strlen(ctx->extra_headers);
        if (used + 3 >= sizeof ctx->extra_headers)
                return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(ctx->extra_headers + used, sizeof ctx->extra_headers - used - 2, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof ctx->extra_headers - used - 2) {
                ctx->extra_headers[used] = 0; /* a header that does not fit is dropped whole */
                return;
        }
        strcat(ctx->extra_headers, "\r\n");
}

int http_respond_json(struct http_ctx *ctx, int status, json_t *body)
{
        _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!text)
                return -ENOMEM;
        char head[EXTRA_HEADERS_MAX + 256];
        int n = snprintf(head, sizeof head,
                         "Status: %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                         "X-Request-Id: %s\r\n%s\r\n",
                         status, http_reason(status), ctx->req.request_id, ctx->extra_headers);
        ctx->status = status;
        ctx->responded = true;
        size_t len = strlen(text);
        text[len] = '\n'; /* replaces the NUL: the body ends with a newline, as curl users like */
        int r = ctx->io.write(ctx->io.impl, head, (size_t)n);
        if (r == 0)
                r = ctx->io.write(ctx->io.impl, text, len + 1);
        return r;
}

int http_stream_begin(struct http_ctx *ctx, const char *content_type)
{
        char head[EXTRA_HEADERS_MAX + 256];
        int n = snprintf(head, sizeof head,
                         "Status: 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                         "X-Accel-Buffering: no\r\nX-Request-Id: %s\r\n%s\r\n",
                         content_type, ctx->req.request_id, ctx->extra_headers);
        ctx->status = 200;
        ctx->responded = true;
        int r = ctx->io.write(ctx->io.impl, head, (size_t)n);
        return r == 0 && ctx->io.flush ? ctx->io.flush(ctx->io.impl) : r;
}

int http_stream_write(struct http_ctx *ctx, const char *buf, size_t n)
{
        int r = ctx->io.write(ctx->io.impl, buf, n);
        return r == 0 && ctx->io.flush ? ctx->io.flush(ctx->io.impl) : r;
}

int http_respond_error(struct http_ctx *ctx, int status, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
        va_end(ap);
        utf8_sanitize(ctx->error);
        const struct error_family *family =
            ctx->route && ctx->route->family ? ctx->route->family : &error_family_native;
        json_t *body = family->render(status, error_code_for_status(status), ctx->error, ctx->req.request_id);
        if (!body)
                return -ENOMEM;
        return http_respond_json(ctx, status, body);
}

int http_query_foreach(const struct http_request *req,
                       int (*fn)(const char *name, const char *value, void *ud), void *ud)
{
        const char *p = req->query;
        while (p && *p) {
                size_t len = strcspn(p, "&");
                const char *eq = memchr(p, '=', len);
                size_t nlen = eq ? (size_t)(eq - p) : len;
                char name[1024], value[1024];
                int r = url_decode(p, nlen, name, sizeof name);
                if (r == 0)
                        r = eq ? url_decode(eq + 1, len - nlen - 1, value, sizeof value) : (value[0] = 0, 0);
                if (r < 0)
                        return r;
                if (len > 0 && (r = fn(name, value, ud)) != 0)
                        return r;
                p += len;
                if (*p == '&')
                        p++;
        }
        return 0;
}

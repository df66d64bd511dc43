/* See init_http.h. Runs in a child of warren-init that serves one connection and exits. */
#include "init_http.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"
#include "file_types.h"

#define HEAD_MAX     (32 * 1024)
#define HEAD_WAIT_MS 10000
#define BODY_WAIT_MS 60000

static int wait_readable(int fd, int ms)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, ms)) < 0 && errno == EINTR)
                ;
        return r;
}

static void write_all(int fd, const char *buf, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, buf, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        _exit(1); /* nginx went away */
                buf += w;
                n -= (size_t)w;
        }
}

static char token[65];

void http_set_token(const char *t)
{
        snprintf(token, sizeof token, "%s", t);
}

/* In constant time: how long a guess matched says nothing. */
static bool token_matches(const char *given, size_t len)
{
        size_t want = strlen(token);
        unsigned char diff = want == 0 || len != want;
        for (size_t i = 0; i < len && i < want; i++)
                diff |= (unsigned char)(given[i] ^ token[i]);
        return diff == 0;
}

static int head_error(struct http_head *ret, const char *code, const char *msg)
{
        ret->code = code;
        ret->error = msg;
        return -1;
}

int http_parse_head(char *head, struct http_head *ret)
{
        *ret = (struct http_head){0};
        char *line_end = strstr(head, "\r\n");
        if (!line_end)
                return head_error(ret, "bad_request", "malformed request line");
        *line_end = 0;
        char *method = head, *target = strchr(head, ' ');
        if (!target)
                return head_error(ret, "bad_request", "malformed request line");
        *target++ = 0;
        char *version = strchr(target, ' ');
        if (!version || strncmp(version + 1, "HTTP/1.", 7) != 0)
                return head_error(ret, "bad_request", "malformed request line");
        *version = 0;
        bool put = strcmp(method, "PUT") == 0;
        if (!put && strcmp(method, "GET") != 0)
                return head_error(ret, "bad_request", "only GET and PUT are served here");
        char *amp = strncmp(target, "/fs?t=", 6) == 0 ? strchr(target + 6, '&') : NULL;
        if (!amp || strncmp(amp, "&r=", 3) != 0 ||
            url_decode(amp + 3, strlen(amp + 3), amp + 3, strlen(amp + 3) + 1) < 0)
                return head_error(ret, "bad_request", "the target must be /fs?t=<token>&r=<request>");
        if (!token_matches(target + 6, (size_t)(amp - target - 6)))
                return head_error(ret, "permission_denied",
                                  "this request does not carry the sandbox's token");
        char *request = amp + 3;
        /* No Content-Length, no body: nginx sends an HTTP/1.0 body only with its length. */
        for (char *h = line_end + 2; *h;) {
                char *end = strstr(h, "\r\n");
                if (!end)
                        break;
                *end = 0;
                if (strncasecmp(h, "Content-Length:", 15) == 0) {
                        char *e;
                        errno = 0;
                        long long v = strtoll(h + 15, &e, 10);
                        while (*e == ' ' || *e == '\t')
                                e++;
                        if (v < 0 || *e || errno == ERANGE || e == h + 15)
                                return head_error(ret, "bad_request", "malformed Content-Length");
                        ret->body_len = v;
                } else if (strncasecmp(h, "Transfer-Encoding:", 18) == 0) {
                        return head_error(ret, "bad_request", "a chunked body is not taken here");
                }
                h = end + 2;
        }
        json_t *req = json_loads(request, 0, NULL);
        const char *action = json_string_value(json_object_get(req, "action"));
        if (!json_is_object(req) || !action || strcmp(action, put ? "write" : "download") != 0) {
                json_decref(req);
                return head_error(ret, "bad_request",
                                  "the request must be a write (PUT) or a download (GET)");
        }
        ret->request = req;
        return 0;
}

json_t *http_read_request(int fd, struct http_link *ret)
{
        *ret = (struct http_link){.fd = fd};
        static char head[HEAD_MAX + 1];
        size_t len = 0;
        char *end = NULL;
        while (!end) {
                if (len == HEAD_MAX)
                        http_answer_error(ret, "bad_request", "request head too large");
                if (wait_readable(fd, HEAD_WAIT_MS) <= 0)
                        _exit(1);
                ssize_t n = read(fd, head + len, HEAD_MAX - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        _exit(1);
                len += (size_t)n;
                head[len] = 0;
                end = strstr(head, "\r\n\r\n");
        }
        ret->pre = end + 4;
        ret->pre_len = len - (size_t)(ret->pre - head);
        end[2] = 0; /* the head ends with its last header's CRLF */
        struct http_head h;
        if (http_parse_head(head, &h) < 0)
                http_answer_error(ret, h.code, h.error);
        ret->body_left = h.body_len;
        return h.request;
}

long http_body_read(struct http_link *l, char *buf, size_t n)
{
        if (l->body_left == 0)
                return 0;
        if ((long long)n > l->body_left)
                n = (size_t)l->body_left;
        if (l->pre_off < l->pre_len) {
                size_t k = l->pre_len - l->pre_off < n ? l->pre_len - l->pre_off : n;
                memcpy(buf, l->pre + l->pre_off, k);
                l->pre_off += k;
                l->body_left -= (long long)k;
                return (long)k;
        }
        for (;;) {
                if (wait_readable(l->fd, BODY_WAIT_MS) <= 0)
                        return -1;
                ssize_t got = read(l->fd, buf, n);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0)
                        return -1;
                l->body_left -= got;
                return (long)got;
        }
}

bool http_body_buffered(const struct http_link *l)
{
        return l->pre_off < l->pre_len && l->body_left > 0;
}

#define PIPE_BYTES (1 << 20)

int http_body_splice(struct http_link *l, int fd, int *err)
{
        if (l->body_left == 0)
                return 1;
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return 0;
        fcntl(p[1], F_SETPIPE_SZ, PIPE_BYTES); /* more per call; the default 64 KiB works too */
        int r = 1;
        bool moved = false;
        while (l->body_left > 0) {
                if (wait_readable(l->fd, BODY_WAIT_MS) <= 0) {
                        r = -1;
                        break;
                }
                size_t want = l->body_left > PIPE_BYTES ? PIPE_BYTES : (size_t)l->body_left;
                ssize_t in = splice(l->fd, NULL, p[1], NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
                if (in < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (in < 0 && !moved && errno == EINVAL) {
                        r = 0;
                        break;
                }
                if (in <= 0) {
                        r = -1;
                        break;
                }
                moved = true;
                l->body_left -= in;
                for (ssize_t left = in; left > 0;) {
                        ssize_t out = splice(p[0], NULL, fd, NULL, (size_t)left, SPLICE_F_MOVE);
                        if (out < 0 && errno == EINTR)
                                continue;
                        if (out <= 0) {
                                *err = out < 0 ? errno : EIO;
                                close(p[0]);
                                close(p[1]);
                                return -2;
                        }
                        left -= out;
                }
        }
        close(p[0]);
        close(p[1]);
        return r;
}

/* After an answer that comes before the whole body (an error), the rest is read and dropped
 * for a while, so that nginx, still sending it, reads the answer instead of a reset. */
static _Noreturn void finish(struct http_link *l)
{
        static char sink[64 * 1024];
        shutdown(l->fd, SHUT_WR);
        while (l->body_left > 0 && http_body_read(l, sink, sizeof sink) > 0)
                ;
        _exit(0);
}

_Noreturn void http_answer_json(struct http_link *l, int status, json_t *body)
{
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        if (!text)
                _exit(1);
        char head[256];
        int n = snprintf(head, sizeof head,
                         "HTTP/1.0 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                         "Cache-Control: no-store\r\n\r\n",
                         status, http_reason(status), strlen(text) + 1);
        write_all(l->fd, head, (size_t)n);
        write_all(l->fd, text, strlen(text));
        write_all(l->fd, "\n", 1);
        free(text);
        finish(l);
}

_Noreturn void http_answer_error(struct http_link *l, const char *code, const char *msg)
{
        /* As the worker answers an agent's error: the status from its code, and the status's
         * word as the answer's code (errors.c), so both ways of a transfer say the same. */
        int status = file_error_status(code);
        http_answer_json(l, status,
                         error_family_native.render(status, error_code_for_status(status), msg, NULL));
}

_Noreturn void http_answer_file(struct http_link *l, int fd, const struct stat *st, const char *name)
{
        char first[1024], disposition[FILE_DISPOSITION_MAX], head[2048];
        ssize_t got = pread(fd, first, sizeof first, 0);
        file_disposition(name, disposition);
        int n = snprintf(head, sizeof head,
                         "HTTP/1.0 200 OK\r\nContent-Type: %s\r\nContent-Length: %lld\r\n"
                         "Content-Disposition: %s\r\nCache-Control: no-store\r\n\r\n",
                         file_content_type(name, first, got > 0 ? (size_t)got : 0), (long long)st->st_size,
                         disposition);
        write_all(l->fd, head, (size_t)n);
        /* Page cache to socket in the kernel. A file that shrank meanwhile ends the body short:
         * nginx sees the connection close before Content-Length and the client a cut body. */
        off_t off = 0;
        while (off < st->st_size) {
                ssize_t w = sendfile(l->fd, fd, &off,
                                     (size_t)(st->st_size - off) > (1 << 30) ? (1 << 30)
                                                                             : (size_t)(st->st_size - off));
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        _exit(1);
        }
        _exit(0);
}

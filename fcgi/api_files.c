/* Files: POST /v1/sandboxes/:id/fs/<action> with a JSON body, and raw transfers that
 * stream (GET and PUT /v1/sandboxes/:id/fs/raw?path=…). Every operation is done inside the
 * sandbox by warren-init, as the requesting user (init_fs.c): the worker never opens a
 * sandbox path on the host. Raw transfers normally pass nginx and the agent only, once
 * api_fs_raw_route has cleared them; the ones it does not clear come here and hold one
 * chunk at a time (request and response buffering are off in nginx). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent.h"
#include "api.h"
#include "auth.h"
#include "cleanup.h"
#include "file_types.h"
#include "hash.h"
#include "json_fields.h"
#include "protocol.h"
#include "sandbox.h"

#define BYTES_MAX   (32LL << 20) /* read/write of whole files in a JSON body */
#define FS_WAIT_MS  60000
#define RAW_WAIT_MS (6 * 3600 * 1000)

static int respond_agent_error(struct http_ctx *ctx, struct agent_result *res)
{
        int status = file_error_status(res->error_code);
        agent_result_clear(res);
        return http_respond_error(ctx, status, "%s", res->error);
}

/* Sends req (consumed) with its input, and answers the client with the agent's RESULT at
 * status, or with its error. */
static int answer_with_result(struct http_ctx *ctx, json_t *req, const char *data, size_t len, int wait_ms,
                              const struct agent_stream *stream, int status)
{
        struct agent_result res;
        int r = api_agent_call(ctx, req, data, len, 4096, wait_ms, stream, &res);
        if (r <= 0)
                return r;
        if (res.error_code[0])
                return respond_agent_error(ctx, &res);
        json_t *out = json_incref(res.result);
        agent_result_clear(&res);
        return out ? http_respond_json(ctx, status, out)
                   : http_respond_error(ctx, 502, "the agent said nothing");
}

/* A request for the agent: the action, the body's fields it uses, and the user. */
static json_t *fs_request(struct http_ctx *ctx, const char *action, const char *const *fields, size_t n,
                          char err[JSON_ERR_MAX])
{
        const char *user, *cwd;
        if (api_check_user_and_cwd(ctx->body, &user, &cwd, err) < 0)
                return NULL;
        json_t *req = json_pack("{s:s, s:s, s:s}", "op", "fs", "action", action, "user", user);
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_object_get(ctx->body, fields[i]);
                if (v)
                        json_object_set(req, fields[i], v);
        }
        return req;
}

static int check_fields(struct http_ctx *ctx, const struct json_field *fields, size_t n,
                        char err[JSON_ERR_MAX])
{
        return json_fields_check(ctx->body, fields, n, false, err);
}

#define F_PATH                                                                                               \
        {                                                                                                    \
                "path", FIELD_STRING, true                                                                   \
        }
#define F_USER                                                                                               \
        {                                                                                                    \
                "user", FIELD_STRING, false                                                                  \
        }

/* Runs a request that answers RESULT; answers the client with it (or the agent's error). */
static int simple(struct http_ctx *ctx, const char *action, const struct json_field *fields, size_t nfields,
                  const char *const *pass, size_t npass)
{
        char err[JSON_ERR_MAX];
        if (check_fields(ctx, fields, nfields, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *req = fs_request(ctx, action, pass, npass, err);
        if (!req)
                return http_respond_error(ctx, 400, "%s", err);
        return answer_with_result(ctx, req, NULL, 0, FS_WAIT_MS, NULL, 200);
}

int api_fs_list(struct http_ctx *ctx)
{
        static const struct json_field f[] = {F_PATH, F_USER, {"depth", FIELD_INTEGER, false}};
        static const char *const pass[] = {"path", "depth"};
        return simple(ctx, "list", f, ELEMENTSOF(f), pass, ELEMENTSOF(pass));
}

int api_fs_stat(struct http_ctx *ctx)
{
        static const struct json_field f[] = {F_PATH, F_USER};
        static const char *const pass[] = {"path"};
        return simple(ctx, "stat", f, ELEMENTSOF(f), pass, ELEMENTSOF(pass));
}

int api_fs_info(struct http_ctx *ctx)
{
        static const struct json_field f[] = {{"paths", FIELD_ARRAY, true}, F_USER};
        static const char *const pass[] = {"paths"};
        return simple(ctx, "info", f, ELEMENTSOF(f), pass, ELEMENTSOF(pass));
}

int api_fs_mkdir(struct http_ctx *ctx)
{
        static const struct json_field f[] = {F_PATH, F_USER, {"parents", FIELD_BOOLEAN, false}};
        static const char *const pass[] = {"path", "parents"};
        return simple(ctx, "mkdir", f, ELEMENTSOF(f), pass, ELEMENTSOF(pass));
}

int api_fs_move(struct http_ctx *ctx)
{
        static const struct json_field f[] = {
            F_PATH, F_USER, {"destination", FIELD_STRING, true}, {"overwrite", FIELD_BOOLEAN, false}};
        static const char *const pass[] = {"path", "destination", "overwrite"};
        return simple(ctx, "move", f, ELEMENTSOF(f), pass, ELEMENTSOF(pass));
}

int api_fs_remove(struct http_ctx *ctx)
{
        static const struct json_field f[] = {F_PATH, F_USER, {"recursive", FIELD_BOOLEAN, false}};
        static const char *const pass[] = {"path", "recursive"};
        return simple(ctx, "remove", f, ELEMENTSOF(f), pass, ELEMENTSOF(pass));
}

int api_fs_chmod(struct http_ctx *ctx)
{
        static const struct json_field f[] = {F_PATH, F_USER, {"mode", FIELD_ANY, true}};
        static const char *const pass[] = {"path", "mode"};
        return simple(ctx, "chmod", f, ELEMENTSOF(f), pass, ELEMENTSOF(pass));
}

/* --- whole files in JSON --------------------------------------------------------------- */

static int read_whole(struct http_ctx *ctx, bool bytes)
{
        static const struct json_field f[] = {F_PATH, F_USER};
        static const char *const pass[] = {"path"};
        char err[JSON_ERR_MAX];
        if (check_fields(ctx, f, ELEMENTSOF(f), err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *req = fs_request(ctx, "read", pass, ELEMENTSOF(pass), err);
        if (!req)
                return http_respond_error(ctx, 400, "%s", err);
        json_object_set_new(req, "max_bytes", json_integer(BYTES_MAX));
        struct agent_result res;
        int r = api_agent_call(ctx, req, NULL, 0, (size_t)BYTES_MAX, FS_WAIT_MS, NULL, &res);
        if (r <= 0)
                return r;
        if (res.error_code[0]) {
                if (strcmp(res.error_code, "too_large") == 0)
                        snprintf(res.error + strlen(res.error), sizeof res.error - strlen(res.error),
                                 "; read_bytes and read take files up to 32 MiB: download it raw "
                                 "(GET /v1/sandboxes/:id/fs/raw?path=…)");
                return respond_agent_error(ctx, &res);
        }
        const char *path = json_string_value(json_object_get(ctx->body, "path"));
        json_t *out;
        if (bytes) {
                out = json_pack("{s:s, s:I, s:o}", "path", path, "size", (json_int_t)res.out_len,
                                "content_b64", json_base64(res.out, res.out_len));
        } else {
                json_t *text = json_stringn(res.out, res.out_len); /* NULL unless valid UTF-8 */
                if (!text) {
                        agent_result_clear(&res);
                        return http_respond_error(
                            ctx, 400, "'%.512s' is not UTF-8 text; use fs/read_bytes for binary files", path);
                }
                out = json_pack("{s:s, s:I, s:o}", "path", path, "size", (json_int_t)res.out_len, "content",
                                text);
        }
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, out);
}

int api_fs_read(struct http_ctx *ctx)
{
        return read_whole(ctx, false);
}

int api_fs_read_bytes(struct http_ctx *ctx)
{
        return read_whole(ctx, true);
}

static int write_whole(struct http_ctx *ctx, bool bytes)
{
        const char *field = bytes ? "content_b64" : "content";
        const struct json_field f[] = {
            F_PATH, F_USER, {field, FIELD_STRING, true}, {"mode", FIELD_ANY, false}};
        static const char *const pass[] = {"path", "mode"};
        char err[JSON_ERR_MAX];
        if (check_fields(ctx, f, ELEMENTSOF(f), err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *content = json_object_get(ctx->body, field);
        _cleanup_free_ char *decoded = NULL;
        const char *data = json_string_value(content);
        size_t len = json_string_length(content);
        if (bytes) {
                if (json_base64_decode(data, len, &decoded, &len) < 0)
                        return http_respond_error(ctx, 400, "field 'content_b64' is not base64");
                data = decoded;
        }
        if ((long long)len > BYTES_MAX)
                return http_respond_error(ctx, 413,
                                          "the content is %zu bytes, more than 32 MiB: upload it raw "
                                          "(PUT /v1/sandboxes/:id/fs/raw?path=…)",
                                          len);
        json_t *req = fs_request(ctx, "write", pass, ELEMENTSOF(pass), err);
        if (!req)
                return http_respond_error(ctx, 400, "%s", err);
        /* An empty file still sends its end of input. */
        return answer_with_result(ctx, req, data ? data : "", len, FS_WAIT_MS, NULL, 200);
}

int api_fs_write(struct http_ctx *ctx)
{
        return write_whole(ctx, false);
}

int api_fs_write_bytes(struct http_ctx *ctx)
{
        return write_whole(ctx, true);
}

/* --- raw transfers --------------------------------------------------------------------- */

struct raw_query {
        char path[4200];
        char user[16];
        char mode[16];
        bool has_path;
        char err[256];
};

static int raw_param(const char *name, const char *value, void *ud)
{
        struct raw_query *q = ud;
        if (!strcmp(name, "path")) {
                if (strlen(value) >= 4097) {
                        snprintf(q->err, sizeof q->err, "query 'path' is longer than PATH_MAX");
                        return -EINVAL;
                }
                snprintf(q->path, sizeof q->path, "%s", value);
                q->has_path = true;
        } else if (!strcmp(name, "user")) {
                snprintf(q->user, sizeof q->user, "%s", value);
        } else if (!strcmp(name, "mode")) {
                snprintf(q->mode, sizeof q->mode, "%s", value);
        } else {
                snprintf(q->err, sizeof q->err, "unknown query parameter '%.64s' (path, user, mode)", name);
                return -EINVAL;
        }
        return 0;
}

/* The query of a raw transfer as an fs request. A NUL in the path (%00) is refused. */
static json_t *raw_request(struct http_ctx *ctx, const char *action, struct raw_query *q)
{
        int r = http_query_foreach(&ctx->req, raw_param, q);
        if (r < 0 || !q->has_path || !q->path[0]) {
                if (!q->err[0])
                        snprintf(q->err, sizeof q->err,
                                 r < 0 ? "malformed query string (a NUL byte in it?)"
                                       : "query 'path' is required");
                return NULL;
        }
        if (q->user[0] && strcmp(q->user, "user") && strcmp(q->user, "root")) {
                snprintf(q->err, sizeof q->err, "query 'user' must be user or root");
                return NULL;
        }
        json_t *req = json_pack("{s:s, s:s, s:s, s:s}", "op", "fs", "action", action, "path", q->path, "user",
                                q->user[0] ? q->user : "user");
        if (q->mode[0])
                json_object_set_new(req, "mode", json_string(q->mode));
        return req;
}

struct download {
        struct http_ctx *ctx;
        long long size;
        char name[256];
        bool begun;
};

static int download_begin(struct download *d, const char *head, size_t n)
{
        d->begun = true;
        if (d->size >= 0) /* a zip's size is known only at its end: chunked */
                http_add_header(d->ctx, "Content-Length: %lld", d->size);
        char disposition[FILE_DISPOSITION_MAX];
        file_disposition(d->name, disposition);
        http_add_header(d->ctx, "Content-Disposition: %s", disposition);
        return http_stream_begin(d->ctx, file_content_type(d->name, head, n));
}

static int download_frame(void *arg, int type, const char *data, size_t len)
{
        struct download *d = arg;
        if (type == FRAME_STARTED) {
                json_t *j = json_loadb(data, len, 0, NULL);
                d->size = (long long)json_integer_value(json_object_get(j, "size"));
                snprintf(d->name, sizeof d->name, "%s",
                         json_string_value(json_object_get(j, "name")) ?: "file");
                json_decref(j);
                return d->size == 0 ? download_begin(d, "", 0) : 0;
        }
        if (type != FRAME_STDOUT)
                return 0;
        int r = d->begun ? 0 : download_begin(d, data, len);
        return r < 0 ? r : http_stream_write(d->ctx, data, len);
}

static int stream_download(struct http_ctx *ctx, json_t *req)
{
        struct download d = {.ctx = ctx};
        /* Output goes to the client as it comes; none of it is kept (max_output 0). */
        struct agent_stream stream = {.on_frame = download_frame, .arg = &d};
        struct agent_result res;
        int r = api_agent_call(ctx, req, NULL, 0, 0, RAW_WAIT_MS, &stream, &res);
        if (r <= 0)
                return r;
        if (res.error_code[0] && !d.begun)
                return respond_agent_error(ctx, &res);
        if (res.error_code[0]) /* too late for a status: the body stops short, and the log says why */
                snprintf(ctx->error, sizeof ctx->error, "%s", res.error);
        agent_result_clear(&res);
        return 0;
}

int api_fs_download(struct http_ctx *ctx)
{
        struct raw_query q = {0};
        json_t *req = raw_request(ctx, "download", &q);
        if (!req)
                return http_respond_error(ctx, 400, "%s", q.err);
        return stream_download(ctx, req);
}

/* POST /v1/sandboxes/:id/fs/export {paths, user?}: one file as it is, or several files and
 * folders as a zip, streamed as it is made. */
int api_fs_export(struct http_ctx *ctx)
{
        static const struct json_field f[] = {{"paths", FIELD_ARRAY, true}, F_USER};
        static const char *const pass[] = {"paths"};
        char err[JSON_ERR_MAX];
        if (check_fields(ctx, f, ELEMENTSOF(f), err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *paths = json_object_get(ctx->body, "paths");
        if (json_array_size(paths) == 0)
                return http_respond_error(ctx, 400, "field 'paths' must name at least one path");
        json_t *one = json_array_size(paths) == 1 ? json_array_get(paths, 0) : NULL;
        if (one && json_is_string(one)) {
                json_t *req = fs_request(ctx, "stat", NULL, 0, err);
                if (!req)
                        return http_respond_error(ctx, 400, "%s", err);
                json_object_set(req, "path", one);
                struct agent_result res;
                int r = api_agent_call(ctx, req, NULL, 0, 4096, FS_WAIT_MS, NULL, &res);
                if (r <= 0)
                        return r;
                if (res.error_code[0])
                        return respond_agent_error(ctx, &res);
                bool file = !strcmp(json_string_value(json_object_get(res.result, "type")) ?: "", "file");
                agent_result_clear(&res);
                if (file) {
                        req = fs_request(ctx, "download", NULL, 0, err);
                        json_object_set(req, "path", one);
                        return stream_download(ctx, req);
                }
        }
        json_t *req = fs_request(ctx, "zip", pass, ELEMENTSOF(pass), err);
        if (!req)
                return http_respond_error(ctx, 400, "%s", err);
        return stream_download(ctx, req);
}

/* POST /v1/sandboxes/:id/fs/import {files: [{path, content | content_b64, mode?}], user?}:
 * many files in one call, written in order; the answer lists what was written. At most
 * 32 MiB in all (as for write_bytes). */
int api_fs_import(struct http_ctx *ctx)
{
        static const struct json_field f[] = {{"files", FIELD_ARRAY, true}, F_USER};
        char err[JSON_ERR_MAX];
        if (check_fields(ctx, f, ELEMENTSOF(f), err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *files = json_object_get(ctx->body, "files");
        if (json_array_size(files) == 0 || json_array_size(files) > 1000)
                return http_respond_error(ctx, 400, "field 'files' must list 1 to 1000 files");
        size_t i;
        json_t *file;
        json_array_foreach(files, i, file)
        {
                json_t *p = json_object_get(file, "path"), *t = json_object_get(file, "content"),
                       *b = json_object_get(file, "content_b64");
                if (!json_is_object(file) || !json_is_string(p) || (!json_is_string(t) == !json_is_string(b)))
                        return http_respond_error(
                            ctx, 400, "files[%zu] must be {path, content or content_b64, mode?}", i);
        }
        json_t *written = json_array();
        json_array_foreach(files, i, file)
        {
                json_t *b = json_object_get(file, "content_b64"), *t = json_object_get(file, "content");
                _cleanup_free_ char *decoded = NULL;
                const char *data = json_string_value(t);
                size_t len = json_string_length(t);
                if (b &&
                    json_base64_decode(json_string_value(b), json_string_length(b), &decoded, &len) < 0) {
                        json_decref(written);
                        return http_respond_error(ctx, 400, "files[%zu].content_b64 is not base64", i);
                }
                if (b)
                        data = decoded;
                json_t *req = fs_request(ctx, "write", NULL, 0, err);
                if (!req) {
                        json_decref(written);
                        return http_respond_error(ctx, 400, "%s", err);
                }
                json_object_set(req, "path", json_object_get(file, "path"));
                if (json_object_get(file, "mode"))
                        json_object_set(req, "mode", json_object_get(file, "mode"));
                struct agent_result res;
                int r = api_agent_call(ctx, req, data ? data : "", len, 4096, FS_WAIT_MS, NULL, &res);
                if (r <= 0) {
                        json_decref(written);
                        return r;
                }
                if (res.error_code[0]) {
                        json_decref(written);
                        snprintf(res.error + strlen(res.error), sizeof res.error - strlen(res.error),
                                 " (files[%zu]; the ones before it were written)", i);
                        return respond_agent_error(ctx, &res);
                }
                json_array_append(written, res.result);
                agent_result_clear(&res);
        }
        return http_respond_json(ctx, 200, json_pack("{s:o}", "files", written));
}

static long upload_read(void *arg, char *buf, size_t n)
{
        struct http_ctx *ctx = arg;
        long got = ctx->io.read(ctx->io.impl, buf, n);
        if (got == 0)
                ctx->body_read = true;
        return got;
}

int api_fs_upload(struct http_ctx *ctx)
{
        struct raw_query q = {0};
        json_t *req = raw_request(ctx, "write", &q);
        if (!req)
                return http_respond_error(ctx, 400, "%s", q.err);
        struct agent_stream stream = {.read_input = upload_read, .arg = ctx};
        return answer_with_result(ctx, req, NULL, 0, RAW_WAIT_MS, &stream, 201);
}

/* GET|PUT /v1/sandboxes/:id/fs/raw-route: nginx asks before a raw transfer, with the
 * client's method, query and key (an auth subrequest; nginx.conf). 200 with
 * X-Warren-Files-Target (the sandbox's files.sock, and in the URI its token and the checked
 * request for its agent) sends the bytes between nginx and the agent directly, without the worker in
 * between (init_http.c). Any other answer, errors included, makes nginx hand the whole
 * request to the worker's own route above instead, which answers it as it always has: so
 * this route never renders an error a client sees. */
#define FILES_TARGET_MAX 6144

/* Hands the request on to the worker's own route (any answer but 200 does), and gives back
 * the rate token this check took: that route takes its own, and a client pays for one. */
static int hand_on(struct http_ctx *ctx, const char *why)
{
        auth_refund(ctx->redis, ctx->principal.key_id);
        return http_respond_error(ctx, 403, "%s", why);
}

int api_fs_raw_route(struct http_ctx *ctx)
{
        struct raw_query q = {0};
        json_t *req = raw_request(ctx, strcmp(ctx->req.method, "PUT") ? "download" : "write", &q);
        if (!req)
                return hand_on(ctx, q.err);
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        char sock[PATH_MAX], token[SHA256_HEX_LEN + 1], err[SANDBOX_ERR_MAX];
        const char *id = route_param(&ctx->params, "id");
        int r = sandbox_files_socket(&sc, ctx->principal.key_id, id, sock, sizeof sock, token, err);
        _cleanup_free_ char *text = r < 0 ? NULL : json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (r < 0 || !text)
                return hand_on(ctx, r < 0 ? err : "out of memory");
        char target[FILES_TARGET_MAX];
        size_t n = (size_t)snprintf(target, sizeof target, "unix:%s:/fs?t=%s&r=", sock, token);
        if (n >= sizeof target || url_encode(text, target + n, sizeof target - n) < 0)
                /* a path of thousands of escapes: the worker carries it */
                return hand_on(ctx, "the request is too long to hand over");
        http_add_header(ctx, "X-Warren-Files-Target: %s", target);
        return http_respond_json(ctx, 200, json_pack("{s:b}", "direct", 1));
}

/* --- watches --------------------------------------------------------------------------- */

/* POST /v1/sandboxes/:id/fs/watch {path, recursive?, user?} → {watch_id, path}. Watches live
 * in the sandbox's agent (init_watch.c); a relative path is relative to the user's home. */
int api_fs_watch(struct http_ctx *ctx)
{
        static const struct json_field f[] = {F_PATH, F_USER, {"recursive", FIELD_BOOLEAN, false}};
        char err[JSON_ERR_MAX];
        if (check_fields(ctx, f, ELEMENTSOF(f), err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        const char *user, *cwd;
        if (api_check_user_and_cwd(ctx->body, &user, &cwd, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *p = json_object_get(ctx->body, "path");
        const char *path = json_string_value(p);
        if (strlen(path) != json_string_length(p) || json_string_length(p) >= 4096 || !*path)
                return http_respond_error(ctx, 400,
                                          "field 'path' must be a path without NUL, under PATH_MAX");
        char full[8200];
        snprintf(full, sizeof full, "%s%s",
                 path[0] == '/'         ? ""
                 : strcmp(user, "root") ? "/home/user/"
                                        : "/root/",
                 path);
        json_t *req = json_pack("{s:s, s:s, s:b}", "op", "watch_start", "path", full, "recursive",
                                json_is_true(json_object_get(ctx->body, "recursive")));
        return answer_with_result(ctx, req, NULL, 0, FS_WAIT_MS, NULL, 201);
}

static int watch_call(struct http_ctx *ctx, const char *op)
{
        const char *wid = route_param(&ctx->params, "wid");
        return answer_with_result(ctx, json_pack("{s:s, s:s}", "op", op, "id", wid), NULL, 0, FS_WAIT_MS,
                                  NULL, 200);
}

int api_fs_watch_poll(struct http_ctx *ctx)
{
        return watch_call(ctx, "watch_poll");
}

int api_fs_watch_stop(struct http_ctx *ctx)
{
        return watch_call(ctx, "watch_stop");
}

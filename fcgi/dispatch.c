/* The request pipeline. Each stage either passes the request on or answers it with the
 * error that says what was wrong; nothing after an answer runs. */
#include "dispatch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "auth.h"
#include "cleanup.h"
#include "json_fields.h"
#include "keys.h"
#include "log.h"
#include "sandbox.h"

static int route_request(struct http_ctx *ctx)
{
        char allow[ROUTE_ALLOW_MAX];
        switch (router_match(routes, routes_count, ctx->req.method, ctx->req.path, &ctx->route, &ctx->params,
                             allow)) {
        case ROUTE_FOUND:
                return 0;
        case ROUTE_METHOD_NOT_ALLOWED:
                http_add_header(ctx, "Allow: %s", allow);
                return http_respond_error(ctx, 405, "method %s is not allowed on %s (allowed: %s)",
                                          ctx->req.method, ctx->req.path, allow);
        case ROUTE_BAD_PARAM:
                return http_respond_error(ctx, 400, "a path segment is longer than %d bytes",
                                          ROUTE_PARAM_MAX - 1);
        case ROUTE_NOT_FOUND:
                break;
        }
        return http_respond_error(ctx, 404, "no route for %s %.200s", ctx->req.method, ctx->req.path);
}

static int authenticate(struct http_ctx *ctx)
{
        const char *key;
        size_t len;
        char err[REQUEST_ERR_MAX];
        if (auth_extract_key(&ctx->req, &key, &len, err) < 0)
                return http_respond_error(ctx, 401, "%s", err);
        /* A request about one sandbox reads its record next: it goes to Redis in the same
         * write as the key's check, one round trip for both. On the dev node (a VM, where
         * each wakeup is dear) an fs/stat went from 443-727 to 453-480 us p50 and a shell
         * 'echo hi' from 1.95-2.07 to 1.78-1.99 ms, in turns with the build before. */
        static const char sandbox_routes[] = "/v1/sandboxes/:id";
        const char *sandbox_id = route_param(&ctx->params, "id");
        if (sandbox_id && !strncmp(ctx->route->pattern, sandbox_routes, sizeof sandbox_routes - 1))
                sandbox_prefetch(ctx->redis, sandbox_id);
        long long retry_ms = 0;
        int r = auth_check(ctx->redis, key, len, &ctx->principal, &retry_ms, err);
        switch (r) {
        case 0:
                return 0;
        case -EACCES:
                return http_respond_error(ctx, 401, "%s", err);
        case -EAGAIN:
                http_add_header(ctx, "Retry-After: %lld", (retry_ms + 999) / 1000);
                return http_respond_error(ctx, 429, "%s", err);
        case -ENOTCONN:
                http_add_header(ctx, "Retry-After: 1");
                return http_respond_error(ctx, 503, "%s; try again shortly", err);
        default:
                return http_respond_error(ctx, 500, "%s", err);
        }
}

static int check_scope(struct http_ctx *ctx)
{
        unsigned missing = ctx->route->scope & ~ctx->principal.scopes;
        if (!missing)
                return 0;
        char names[128];
        scopes_format(missing, names, sizeof names);
        return http_respond_error(ctx, 403, "this API key lacks the '%s' scope", names);
}

static int read_json_body(struct http_ctx *ctx)
{
        if (ctx->route->body_limit == 0 || (ctx->route->flags & ROUTE_RAW_BODY))
                return 0; /* routes without a body ignore one, as HTTP allows */
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r = http_read_body(ctx, ctx->route->body_limit, &buf, &len);
        if (r == -EFBIG)
                return http_respond_error(ctx, 413,
                                          "request body is larger than this route's limit of %zu bytes",
                                          ctx->route->body_limit);
        if (r < 0)
                return http_respond_error(ctx, 400, "could not read the request body: %s", strerror(-r));
        char err[JSON_ERR_MAX];
        if (json_body_parse(buf, len, ctx->route->flags & ROUTE_EMPTY_BODY_OK, &ctx->body, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        return 0;
}

static void log_request(struct http_ctx *ctx, const struct timespec *start)
{
        struct timespec end;
        clock_gettime(CLOCK_MONOTONIC, &end);
        double ms = (double)(end.tv_sec - start->tv_sec) * 1e3 + (double)(end.tv_nsec - start->tv_nsec) / 1e6;
        /* Paths are logged, queries and headers are not: they may carry secrets. */
        char path[256];
        snprintf(path, sizeof path, "%.255s", ctx->req.path);
        utf8_sanitize(path);
        json_t *f = json_pack("{s:s, s:s, s:s, s:i, s:f}", "request_id", ctx->req.request_id, "method",
                              ctx->req.method ? ctx->req.method : "", "path", path, "status", ctx->status,
                              "duration_ms", ms);
        if (f && ctx->principal.key_id[0])
                json_object_set_new(f, "key_id", json_string(ctx->principal.key_id));
        if (f && ctx->error[0])
                json_object_set_new(f, "error", json_string(ctx->error));
        log_event(ctx->status >= 500 ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, "request", f);
}

static void run_pipeline(struct http_ctx *ctx, char **envp)
{
        char err[REQUEST_ERR_MAX];
        if (http_request_parse(envp, &ctx->req, err) < 0) {
                http_respond_error(ctx, 400, "%s", err);
                return;
        }
        if (route_request(ctx) || ctx->responded)
                return;
        /* The key first: every answer to a keyed route, a 413 too, costs the key its token (a
         * raw transfer's check gives its own back when it hands the request here). */
        if (!(ctx->route->flags & ROUTE_NO_AUTH) && (authenticate(ctx) || ctx->responded))
                return;
        if (ctx->route->body_limit && ctx->req.content_length > (long long)ctx->route->body_limit) {
                http_respond_error(ctx, 413, "request body is larger than this route's limit of %zu bytes",
                                   ctx->route->body_limit);
                return;
        }
        if (check_scope(ctx) || ctx->responded)
                return;
        if (read_json_body(ctx) || ctx->responded)
                return;
        int r = ctx->route->handler(ctx);
        if (!ctx->responded)
                http_respond_error(ctx, 500, "internal error: %s", strerror(r < 0 ? -r : EIO));
}

void dispatch_request(struct http_ctx *ctx, char **envp)
{
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        run_pipeline(ctx, envp);
        redis_client_prefetch_end(ctx->redis);
        log_request(ctx, &start);
        json_decref(ctx->body);
        ctx->body = NULL;
}

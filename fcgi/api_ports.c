/* Exposed ports: POST /v1/sandboxes/:id/expose {port, public?} → {port, url, public, token?,
 * auth_url?}; GET …/expose lists them; DELETE …/expose/:port closes one; and the one-time
 * link of a private preview, GET /v1/previews/auth?code= (served on the preview's own host),
 * which sets the token as a cookie for that host.
 *
 * Redis: exposed:<id>       hash: port → {"public":…, "url":…, "created_at":…}
 *        preview_code:<code> {"id","port","token"}, ten minutes, taken once */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "cleanup.h"
#include "config.h"
#include "ids.h"
#include "json_fields.h"
#include "preview.h"
#include "redis_client.h"
#include "sandbox.h"

#define RELOAD_WAIT_MS 5000
#define CODE_TTL_S     600

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Makes nginx take the change and waits until it has, so that the answer's URL works. */
static int reload_and_wait(struct http_ctx *ctx, char err[PREVIEW_ERR_MAX])
{
        long long gen = preview_reload_request(ctx->redis, ctx->node_id, getppid(), err);
        if (gen < 0)
                return (int)gen;
        return preview_reload_wait(ctx->redis, ctx->node_id, gen, RELOAD_WAIT_MS, err);
}

static int respond_preview_error(struct http_ctx *ctx, int r, const char *err)
{
        http_add_header(ctx, "Retry-After: 1");
        return http_respond_error(ctx, r == -ETIMEDOUT || r == -ENOTCONN ? 503 : 500, "%s", err);
}

/* A one-time link: its code stands for the token for ten minutes, then or once used, never. */
static int auth_code_new(struct http_ctx *ctx, const char *id, int port, const char *token, char code[33],
                         char err[PREVIEW_ERR_MAX])
{
        if (id_random("", 32, code, 33) < 0) {
                snprintf(err, PREVIEW_ERR_MAX, "no randomness for the preview link");
                return -EIO;
        }
        json_t *v = json_pack("{s:s, s:i, s:s}", "id", id, "port", port, "token", token);
        _cleanup_free_ char *value = v ? json_dumps(v, JSON_COMPACT) : NULL;
        json_decref(v);
        redisReply *r = NULL;
        char rerr[REDIS_ERR_MAX];
        if (!value || redis_client_cmd(ctx->redis, &r, rerr, "SET preview_code:%s %s EX %d", code, value,
                                       CODE_TTL_S) < 0) {
                snprintf(err, PREVIEW_ERR_MAX, "%s", value ? rerr : "out of memory");
                return -ENOTCONN;
        }
        freeReplyObject(r);
        return 0;
}

int api_ports_expose(struct http_ctx *ctx)
{
        static const struct json_field fields[] = {{"port", FIELD_INTEGER, true},
                                                   {"public", FIELD_BOOLEAN, false}};
        char err[SANDBOX_ERR_MAX];
        long long port;
        if (json_fields_check(ctx->body, fields, ELEMENTSOF(fields), false, err) < 0 ||
            json_int_field(ctx->body, "port", 1, 65535, 0, &port, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        bool public = json_is_true(json_object_get(ctx->body, "public"));
        const char *id = route_param(&ctx->params, "id");
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        char address[16];
        int r = sandbox_address(&sc, ctx->principal.key_id, id, address, err);
        if (r == -EREMOTE)
                return http_respond_error(ctx, 409, "%s", err);
        if (r < 0)
                return api_respond_sandbox_error(ctx, r, err);
        /* Each expose of a private port makes a new token: the ones before stop working. */
        char token[PREVIEW_TOKEN_LEN + 1], md5[32], url[512], perr[PREVIEW_ERR_MAX];
        if (!public && preview_token_new(token, md5) < 0)
                return http_respond_error(ctx, 500, "no randomness for the preview token");
        if ((r = preview_write(ctx->cfg, id, (int)port, address, public ? NULL : md5, perr)) < 0)
                return http_respond_error(ctx, 500, "%s", perr);
        preview_url(ctx->cfg, id, (int)port, url, sizeof url);
        /* The record is what the fallback route (api_previews_route) serves from until nginx
         * has the snippet: where the port is, and the token's MD5. */
        json_t *recj = json_pack("{s:b, s:s, s:o, s:s, s:s}", "public", public, "url", url, "created_at",
                                 json_iso_time(now_ms()), "address", address, "node_id", ctx->node_id);
        if (recj && !public)
                json_object_set_new(recj, "token_md5", json_string(md5));
        _cleanup_free_ char *rec = json_dumps(recj, JSON_COMPACT);
        json_decref(recj);
        redisReply *rep = NULL;
        char rerr[REDIS_ERR_MAX];
        if (!rec || redis_client_cmd(ctx->redis, &rep, rerr, "HSET exposed:%s %lld %s", id, port, rec) < 0) {
                preview_remove(ctx->cfg, id, (int)port);
                return respond_preview_error(ctx, -ENOTCONN, rec ? rerr : "out of memory");
        }
        /* A new port works at once through the fallback route; the reload that brings its
         * snippet follows. A port exposed before had a snippet with the old token (or
         * publicity): the answer waits until nginx has dropped it. */
        bool replaced = rep->integer == 0;
        freeReplyObject(rep);
        long long gen = preview_reload_request(ctx->redis, ctx->node_id, getppid(), perr);
        if (gen < 0 ||
            (replaced && (r = preview_reload_wait(ctx->redis, ctx->node_id, gen, RELOAD_WAIT_MS, perr)) < 0))
                return respond_preview_error(ctx, gen < 0 ? (int)gen : r, perr);
        json_t *out = json_pack("{s:I, s:s, s:b}", "port", (json_int_t)port, "url", url, "public", public);
        if (!public) {
                char code[33], link[600];
                if ((r = auth_code_new(ctx, id, (int)port, token, code, perr)) < 0) {
                        json_decref(out);
                        return respond_preview_error(ctx, r, perr);
                }
                snprintf(link, sizeof link, "%s.warren/auth?code=%s", url, code);
                json_object_set_new(out, "token", json_string(token));
                json_object_set_new(out, "auth_url", json_string(link));
                json_object_set_new(out, "token_header", json_string("X-Warren-Preview-Token"));
        }
        return http_respond_json(ctx, 200, out);
}

int api_ports_list(struct http_ctx *ctx)
{
        const char *id = route_param(&ctx->params, "id");
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        char address[16], err[SANDBOX_ERR_MAX];
        int r = sandbox_address(&sc, ctx->principal.key_id, id, address, err);
        if (r < 0 && r != -EREMOTE)
                return api_respond_sandbox_error(ctx, r, err);
        _cleanup_reply_ redisReply *rep = NULL;
        if ((r = redis_client_cmd(ctx->redis, &rep, err, "HGETALL exposed:%s", id)) < 0)
                return api_respond_store_error(ctx, r, err);
        json_t *ports = json_array();
        for (size_t i = 0; i + 1 < rep->elements; i += 2) {
                json_t *p = json_loads(rep->element[i + 1]->str, 0, NULL);
                if (!json_is_object(p)) {
                        json_decref(p);
                        continue;
                }
                json_object_del(p, "token_md5");
                json_object_del(p, "node_id");
                json_object_set_new(p, "port", json_integer(strtol(rep->element[i]->str, NULL, 10)));
                json_array_append_new(ports, p);
        }
        return http_respond_json(ctx, 200, json_pack("{s:o}", "ports", ports));
}

int api_ports_close(struct http_ctx *ctx)
{
        const char *id = route_param(&ctx->params, "id"), *port_s = route_param(&ctx->params, "port");
        char *end;
        long port = strtol(port_s, &end, 10);
        if (*end || end == port_s || port < 1 || port > 65535)
                return http_respond_error(ctx, 400, "port must be a number from 1 to 65535");
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        char address[16], err[SANDBOX_ERR_MAX];
        int r = sandbox_address(&sc, ctx->principal.key_id, id, address, err);
        if (r == -EREMOTE)
                return http_respond_error(ctx, 409, "%s", err);
        if (r < 0)
                return api_respond_sandbox_error(ctx, r, err);
        _cleanup_reply_ redisReply *rep = NULL;
        if ((r = redis_client_cmd(ctx->redis, &rep, err, "HDEL exposed:%s %ld", id, port)) < 0)
                return api_respond_store_error(ctx, r, err);
        if (rep->integer == 0)
                return http_respond_error(ctx, 404, "port %ld of sandbox '%s' is not exposed", port, id);
        preview_remove(ctx->cfg, id, (int)port);
        char perr[PREVIEW_ERR_MAX];
        if ((r = reload_and_wait(ctx, perr)) < 0)
                return respond_preview_error(ctx, r, perr);
        return http_respond_json(ctx, 200, json_pack("{s:i, s:b}", "port", (int)port, "exposed", 0));
}

/* GET /v1/previews/auth?code=…, reached as https://<port>-<id>.<domain>/.warren/auth. The
 * code is taken whatever happens next: a link works once. */
static int code_param(const char *name, const char *value, void *ud)
{
        if (strcmp(name, "code") == 0)
                snprintf(ud, 64, "%s", value);
        return 0;
}

int api_previews_auth(struct http_ctx *ctx)
{
        char code[64] = "", err[REDIS_ERR_MAX];
        http_query_foreach(&ctx->req, code_param, code);
        if (!id_is_valid(code, 32))
                return http_respond_error(ctx, 400, "this preview link has no valid code");
        _cleanup_reply_ redisReply *rep = NULL;
        int r = redis_client_cmd(ctx->redis, &rep, err, "GETDEL preview_code:%s", code);
        if (r < 0)
                return api_respond_store_error(ctx, r, err);
        json_t *v = rep->type == REDIS_REPLY_STRING ? json_loads(rep->str, 0, NULL) : NULL;
        if (!v)
                return http_respond_error(ctx, 404,
                                          "this preview link was used already or has expired; "
                                          "expose the port again for a new one");
        char host[300];
        snprintf(host, sizeof host, "%lld-%s.%s", (long long)json_integer_value(json_object_get(v, "port")),
                 json_string_value(json_object_get(v, "id")), ctx->cfg->preview_domain);
        if (!ctx->req.host || strcasecmp(ctx->req.host, host) != 0) {
                json_decref(v);
                return http_respond_error(ctx, 400, "this preview link belongs to another host");
        }
        /* The cookie is the host's alone (no Domain attribute): no other preview sees it. */
        http_add_header(ctx, "Set-Cookie: warren_preview=%s; Path=/; HttpOnly; Secure; SameSite=Lax",
                        json_string_value(json_object_get(v, "token")));
        http_add_header(ctx, "Location: /");
        json_decref(v);
        return http_respond_json(ctx, 302, json_pack("{s:s}", "location", "/"));
}

/* "<port>-<id>.<preview_domain>" → port and id. */
static bool preview_host_parse(const struct warren_config *cfg, const char *host, int *ret_port,
                               char id[SANDBOX_ID_MAX])
{
        char *end;
        long port = host ? strtol(host, &end, 10) : 0;
        if (!host || end == host || *end != '-' || port < 1 || port > 65535)
                return false;
        const char *idp = end + 1;
        size_t n = strspn(idp, "abcdefghijklmnopqrstuvwxyz0123456789");
        if (n == 0 || n >= SANDBOX_ID_MAX || idp[n] != '.' ||
            strcasecmp(idp + n + 1, cfg->preview_domain) != 0)
                return false;
        memcpy(id, idp, n);
        id[n] = 0;
        *ret_port = (int)port;
        return true;
}

/* The value of one cookie in a Cookie header, or NULL. */
static const char *cookie_value(const char *cookies, const char *name, char *out, size_t len)
{
        size_t nlen = strlen(name);
        for (const char *c = cookies; c && *c;) {
                c += strspn(c, " ;");
                if (strncmp(c, name, nlen) == 0 && c[nlen] == '=') {
                        const char *v = c + nlen + 1;
                        size_t vlen = strcspn(v, ";");
                        snprintf(out, len, "%.*s", (int)(vlen < len ? vlen : len - 1), v);
                        return out;
                }
                c += strcspn(c, ";");
        }
        return NULL;
}

/* GET /v1/previews/route: nginx's auth subrequest for a preview host it has no snippet for
 * yet. 200 with X-Warren-Target (address:port) lets the request through to the sandbox; 401
 * is a private preview without its token; 403 (which nginx shows as 404) means nothing is
 * exposed there. */
int api_previews_route(struct http_ctx *ctx)
{
        char id[SANDBOX_ID_MAX], err[REDIS_ERR_MAX];
        int port;
        if (!preview_host_parse(ctx->cfg, ctx->req.host, &port, id))
                return http_respond_error(ctx, 403, "not a preview host");
        _cleanup_reply_ redisReply *rep = NULL;
        int r = redis_client_cmd(ctx->redis, &rep, err, "HGET exposed:%s %d", id, port);
        if (r < 0)
                return api_respond_store_error(ctx, r, err);
        json_t *v = rep->type == REDIS_REPLY_STRING ? json_loads(rep->str, 0, NULL) : NULL;
        const char *address = json_string_value(json_object_get(v, "address"));
        const char *node = json_string_value(json_object_get(v, "node_id"));
        if (!address || !node || strcmp(node, ctx->node_id) != 0) {
                json_decref(v);
                return http_respond_error(ctx, 403, "nothing is exposed at this host");
        }
        if (!json_is_true(json_object_get(v, "public"))) {
                char cookie[128], md5[32];
                const char *token =
                    ctx->req.preview_token && *ctx->req.preview_token
                        ? ctx->req.preview_token
                        : cookie_value(ctx->req.cookie, "warren_preview", cookie, sizeof cookie);
                const char *want = json_string_value(json_object_get(v, "token_md5"));
                if (!token || !want || preview_token_md5(token, md5) < 0 || strlen(want) != strlen(md5) ||
                    CRYPTO_memcmp(md5, want, strlen(md5)) != 0) {
                        json_decref(v);
                        return http_respond_error(ctx, 401, "this preview is private");
                }
        }
        http_add_header(ctx, "X-Warren-Target: %s:%d", address, port);
        json_decref(v);
        return http_respond_json(ctx, 200, json_object());
}

/* Fuzz target for everything that reads an untrusted request before a handler touches
 * Redis: parameter parsing, routing, API key extraction, body reading, JSON body checks,
 * the keys body validation, and error rendering (which must survive any bytes).
 *
 * Input layout: line 1 the method, line 2 the path, then NAME=value parameter lines up to
 * an empty line, then the body. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "json_fields.h"
#include "keys.h"
#include "request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
        const char *in;
        size_t in_len, in_pos;
        size_t written;
};

static long sink_read(void *impl, char *buf, size_t n)
{
        struct sink *s = impl;
        size_t left = s->in_len - s->in_pos;
        if (n > left)
                n = left;
        memcpy(buf, s->in + s->in_pos, n);
        s->in_pos += n;
        return (long)n;
}

static int sink_write(void *impl, const char *buf, size_t n)
{
        (void)buf;
        ((struct sink *)impl)->written += n;
        return 0;
}

static int sink_flush(void *impl)
{
        (void)impl;
        return 0;
}

/* Splits the input into NUL-terminated lines in a copy; returns the body's offset. */
static size_t split_params(char *text, size_t size, char **env, size_t max_env)
{
        static const char *const names[2] = {"REQUEST_METHOD=", "DOCUMENT_URI="};
        static char fixed[2][4096];
        size_t pos = 0, n = 0;
        while (pos < size && n + 1 < max_env) {
                char *nl = memchr(text + pos, '\n', size - pos);
                size_t len = nl ? (size_t)(nl - (text + pos)) : size - pos;
                text[pos + len] = 0;
                if (len == 0 && n >= 2) {
                        pos += 1;
                        break;
                }
                if (n < 2) {
                        snprintf(fixed[n], sizeof fixed[n], "%s%s", names[n], text + pos);
                        env[n] = fixed[n];
                } else {
                        env[n] = text + pos;
                }
                n++;
                pos += len + 1;
        }
        env[n] = NULL;
        return pos > size ? size : pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;
        char *env[32];
        size_t body = split_params(text, size, env, 32);

        struct sink s = {.in = text + body, .in_len = size - body};
        struct http_ctx ctx = {.io = {&s, sink_read, sink_write, sink_flush}};
        char err[REQUEST_ERR_MAX];
        if (http_request_parse(env, &ctx.req, err) < 0) {
                http_respond_error(&ctx, 400, "%s", err);
                goto out;
        }
        char allow[ROUTE_ALLOW_MAX];
        enum route_match m =
            router_match(routes, routes_count, ctx.req.method, ctx.req.path, &ctx.route, &ctx.params, allow);
        if (m != ROUTE_FOUND) {
                http_respond_error(&ctx, 404, "no route for %s %.200s", ctx.req.method, ctx.req.path);
                goto out;
        }
        const char *key;
        size_t key_len;
        auth_extract_key(&ctx.req, &key, &key_len, err);
        if (ctx.route->body_limit) {
                char *buf = NULL;
                size_t len;
                if (http_read_body(&ctx, ctx.route->body_limit, &buf, &len) == 0) {
                        char jerr[JSON_ERR_MAX];
                        json_t *obj = NULL;
                        if (json_body_parse(buf, len, false, &obj, jerr) == 0 &&
                            ctx.route->handler == api_keys_create) {
                                struct warren_config cfg;
                                struct key_spec spec;
                                config_defaults(&cfg);
                                if (api_keys_spec_from_json(obj, &cfg, &spec, jerr) < 0)
                                        http_respond_error(&ctx, 400, "%s", jerr);
                        }
                        json_decref(obj);
                        free(buf);
                }
        }
out:
        free(text);
        return 0;
}

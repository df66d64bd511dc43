/* /v1/sandboxes: lifecycle, shell and run. Handlers check the request and map errors to
 * statuses; workers/sandbox.c does the work. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "cleanup.h"
#include "config.h"
#include "json_fields.h"
#include "network.h"
#include "sandbox.h"

#define MAX_ENV_VARS  256
#define MAX_ENV_VALUE (32 * 1024)
#define MAX_METADATA  64
#define DAY_MS        (24LL * 3600 * 1000)

struct sandbox_ctx api_sandbox_ctx(struct http_ctx *ctx)
{
        /* A worker's parent is the master, which keeps the warm pool. */
        return (struct sandbox_ctx){
            .cfg = ctx->cfg, .node_id = ctx->node_id, .redis = ctx->redis, .pool_keeper = getppid()};
}

static const char *id_param(struct http_ctx *ctx)
{
        return route_param(&ctx->params, "id");
}

int api_respond_sandbox_error(struct http_ctx *ctx, int r, const char *err)
{
        switch (r) {
        case -ENOENT:
                return http_respond_error(ctx, 404, "%s", err);
        case -EINVAL:
                return http_respond_error(ctx, 400, "%s", err);
        case -EDQUOT:
                return http_respond_error(ctx, 429, "%s", err);
        case -EAGAIN:
                return http_respond_error(ctx, 409, "%s", err);
        case -EBUSY:
                http_add_header(ctx, "Retry-After: 5");
                return http_respond_error(ctx, 503, "%s", err);
        case -ENOTCONN:
                http_add_header(ctx, "Retry-After: 1");
                return http_respond_error(ctx, 503, "%s; try again shortly", err);
        default:
                return http_respond_error(ctx, 500, "%s", err);
        }
}

int api_agent_call(struct http_ctx *ctx, json_t *req, const char *stdin_data, size_t stdin_len,
                   size_t max_output, int wait_ms, const struct agent_stream *stream,
                   struct agent_result *res)
{
        *res = (struct agent_result){.exit_code = -1};
        if (!req)
                return http_respond_error(ctx, 500, "out of memory");
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        char err[SANDBOX_ERR_MAX];
        const char *id = id_param(ctx);
        int r = sandbox_exec(&sc, ctx->principal.key_id, id, req, stdin_data, stdin_len, max_output, wait_ms,
                             stream, res, err);
        json_decref(req);
        if (r < 0 && ctx->responded) { /* a stream is open: its caller ends it */
                snprintf(ctx->error, sizeof ctx->error, "%s", err);
                return r;
        }
        if (r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EPROTO)
                return http_respond_error(ctx, 503, "sandbox '%s' is not answering: %s", id, err);
        if (r < 0)
                return api_respond_sandbox_error(ctx, r, err);
        return 1;
}

/* --- checks on request fields ---------------------------------------------------------- */

static bool env_name_is_valid(const char *s)
{
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
                return false;
        size_t n = 0;
        for (; *s; s++, n++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
                      *s == '_'))
                        return false;
        return n <= 128;
}

int api_check_env(json_t *env, char err[JSON_ERR_MAX])
{
        if (!env)
                return 0;
        if (json_object_size(env) > MAX_ENV_VARS) {
                snprintf(err, JSON_ERR_MAX, "field 'env': at most %d variables", MAX_ENV_VARS);
                return -EINVAL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
                if (!env_name_is_valid(k)) {
                        snprintf(err, JSON_ERR_MAX,
                                 "field 'env': '%.64s' is not a variable name (letters, digits and '_', not "
                                 "starting with a digit)",
                                 k);
                        return -EINVAL;
                }
                if (!json_is_string(v) || json_string_length(v) > MAX_ENV_VALUE ||
                    strlen(json_string_value(v)) != json_string_length(v)) {
                        snprintf(err, JSON_ERR_MAX,
                                 "field 'env': the value of '%.64s' must be a string of at most %d bytes", k,
                                 MAX_ENV_VALUE);
                        return -EINVAL;
                }
        }
        return 0;
}

static int check_metadata(json_t *meta, char err[JSON_ERR_MAX])
{
        if (!meta)
                return 0;
        if (json_object_size(meta) > MAX_METADATA) {
                snprintf(err, JSON_ERR_MAX, "field 'metadata': at most %d entries", MAX_METADATA);
                return -EINVAL;
        }
        _cleanup_free_ char *text = json_dumps(meta, JSON_COMPACT);
        if (!text || strlen(text) > SANDBOX_METADATA_MAX) {
                snprintf(err, JSON_ERR_MAX, "field 'metadata': at most %d bytes as JSON",
                         SANDBOX_METADATA_MAX);
                return -EINVAL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(meta, k, v)
        {
                if (strlen(k) == 0 || strlen(k) > 64 || !json_is_string(v) || json_string_length(v) > 256) {
                        snprintf(err, JSON_ERR_MAX,
                                 "field 'metadata': keys of 1 to 64 bytes with string values of at most 256 "
                                 "bytes");
                        return -EINVAL;
                }
        }
        return 0;
}

/* --- lifecycle ------------------------------------------------------------------------- */

static const struct json_field create_fields[] = {
    {"image", FIELD_STRING, false},       {"env", FIELD_OBJECT, false},
    {"timeout_ms", FIELD_INTEGER, false}, {"cpu", FIELD_NUMBER, false},
    {"memory_mb", FIELD_INTEGER, false},  {"disk_mb", FIELD_INTEGER, false},
    {"metadata", FIELD_OBJECT, false},    {"auto_resume", FIELD_BOOLEAN, false},
    {"network", FIELD_OBJECT, false},
};

static int spec_from_body(struct http_ctx *ctx, struct sandbox_spec *spec, char err[JSON_ERR_MAX])
{
        const struct warren_config *cfg = ctx->cfg;
        json_t *b = ctx->body;
        int r = json_fields_check(b, create_fields, ELEMENTSOF(create_fields), false, err);
        if (r < 0)
                return r;
        spec->image = json_string_value(json_object_get(b, "image"));
        if (!spec->image)
                spec->image = "base";
        if (strcmp(spec->image, "base") != 0) {
                snprintf(err, JSON_ERR_MAX, "field 'image': unknown image '%.64s' (available: base)",
                         spec->image);
                return -EINVAL;
        }
        if ((r = json_int_field(b, "timeout_ms", 1000, DAY_MS, cfg->sandbox_default_timeout_ms,
                                &spec->timeout_ms, err)) < 0 ||
            (r = json_int_field(b, "memory_mb", 64, cfg->sandbox_max_memory_mb,
                                cfg->sandbox_default_memory_mb, &spec->memory_mb, err)) < 0 ||
            (r = json_int_field(b, "disk_mb", 16, cfg->sandbox_max_disk_mb, cfg->sandbox_default_disk_mb,
                                &spec->disk_mb, err)) < 0)
                return r;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        json_t *cpu = json_object_get(b, "cpu");
        spec->cpu_millis = cfg->sandbox_default_cpu_millis;
        if (cpu) {
                double c = json_number_value(cpu);
                if (c < 0.1 || c > (double)cores) {
                        snprintf(err, JSON_ERR_MAX,
                                 "field 'cpu': must be from 0.1 to %ld (this node's cores)", cores);
                        return -EINVAL;
                }
                spec->cpu_millis = (long long)(c * 1000);
        }
        if (spec->cpu_millis > cores * 1000)
                spec->cpu_millis = cores * 1000;
        spec->env = json_object_get(b, "env");
        spec->metadata = json_object_get(b, "metadata");
        spec->auto_resume = json_is_true(json_object_get(b, "auto_resume"));
        if ((r = api_check_env(spec->env, err)) < 0 || (r = check_metadata(spec->metadata, err)) < 0)
                return r;
        json_t *net = json_object_get(b, "network");
        if (net && !(spec->network = network_policy_parse(net, err)))
                return -EINVAL;
        return 0;
}

int api_sandboxes_create(struct http_ctx *ctx)
{
        struct sandbox_spec spec = {0};
        char err[SANDBOX_ERR_MAX];
        if (spec_from_body(ctx, &spec, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        json_t *info;
        int r = sandbox_create(&sc, ctx->principal.key_id, &spec, &info, err);
        json_decref(spec.network);
        if (r < 0)
                return api_respond_sandbox_error(ctx, r, err);
        return http_respond_json(ctx, 201, info);
}

struct list_query {
        char state[16];
        char cursor[64];
        int limit;
        json_t *filter;
        char err[JSON_ERR_MAX];
};

static int list_param(const char *name, const char *value, void *ud)
{
        struct list_query *q = ud;
        if (!strcmp(name, "state")) {
                if (strcmp(value, "running") && strcmp(value, "paused")) {
                        snprintf(q->err, sizeof q->err, "query 'state': expected running or paused");
                        return -EINVAL;
                }
                snprintf(q->state, sizeof q->state, "%s", value);
        } else if (!strcmp(name, "cursor")) {
                snprintf(q->cursor, sizeof q->cursor, "%s", value);
        } else if (!strcmp(name, "limit")) {
                char *end;
                long v = strtol(value, &end, 10);
                if (*end || end == value || v < 1 || v > 100) {
                        snprintf(q->err, sizeof q->err, "query 'limit': expected a number from 1 to 100");
                        return -EINVAL;
                }
                q->limit = (int)v;
        } else if (!strncmp(name, "metadata.", 9) && name[9]) {
                json_object_set_new(q->filter, name + 9, json_string(value));
        } else {
                snprintf(q->err, sizeof q->err,
                         "unknown query parameter '%.64s' (state, metadata.<key>, limit, cursor)", name);
                return -EINVAL;
        }
        return 0;
}

int api_sandboxes_list(struct http_ctx *ctx)
{
        struct list_query q = {.limit = 50, .filter = json_object()};
        int r = http_query_foreach(&ctx->req, list_param, &q);
        if (r < 0) {
                json_decref(q.filter);
                return http_respond_error(ctx, 400, "%s", q.err[0] ? q.err : "malformed query string");
        }
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        json_t *page;
        char err[SANDBOX_ERR_MAX];
        r = sandbox_list(&sc, ctx->principal.key_id, q.state[0] ? q.state : NULL, q.filter, q.cursor, q.limit,
                         &page, err);
        json_decref(q.filter);
        if (r < 0)
                return api_respond_sandbox_error(ctx, r, err);
        return http_respond_json(ctx, 200, page);
}

/* The routes that only look at or flip one sandbox share one shape: call, then answer
 * with what the call returned. */
typedef int (*sandbox_view_fn)(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret,
                               char err[SANDBOX_ERR_MAX]);

static int answer_with(struct http_ctx *ctx, sandbox_view_fn fn)
{
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        json_t *out;
        char err[SANDBOX_ERR_MAX];
        int r = fn(&sc, ctx->principal.key_id, id_param(ctx), &out, err);
        return r < 0 ? api_respond_sandbox_error(ctx, r, err) : http_respond_json(ctx, 200, out);
}

int api_sandboxes_get(struct http_ctx *ctx)
{
        return answer_with(ctx, sandbox_get);
}

int api_sandboxes_delete(struct http_ctx *ctx)
{
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        char err[SANDBOX_ERR_MAX];
        int r = sandbox_destroy(&sc, ctx->principal.key_id, id_param(ctx), err);
        if (r == -EINPROGRESS)
                return http_respond_json(
                    ctx, 202,
                    json_pack("{s:s, s:s, s:s}", "id", id_param(ctx), "status", "deleting", "detail", err));
        if (r < 0)
                return api_respond_sandbox_error(ctx, r, err);
        return http_respond_json(ctx, 200, json_pack("{s:s, s:s}", "id", id_param(ctx), "status", "deleted"));
}

int api_sandboxes_timeout(struct http_ctx *ctx)
{
        static const struct json_field fields[] = {{"timeout_ms", FIELD_INTEGER, true}};
        char err[SANDBOX_ERR_MAX];
        long long timeout;
        if (json_fields_check(ctx->body, fields, 1, false, err) < 0 ||
            json_int_field(ctx->body, "timeout_ms", 1000, DAY_MS, 0, &timeout, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        json_t *info;
        int r = sandbox_set_timeout(&sc, ctx->principal.key_id, id_param(ctx), timeout, &info, err);
        return r < 0 ? api_respond_sandbox_error(ctx, r, err) : http_respond_json(ctx, 200, info);
}

/* POST /v1/sandboxes/:id/network {internet?, allow_out?, deny_out?}: the whole policy, as
 * on create; what it leaves out takes its default. */
int api_sandboxes_network(struct http_ctx *ctx)
{
        char err[SANDBOX_ERR_MAX];
        json_t *policy = network_policy_parse(ctx->body, err);
        if (!policy)
                return http_respond_error(ctx, 400, "%s", err);
        struct sandbox_ctx sc = api_sandbox_ctx(ctx);
        json_t *info;
        int r = sandbox_set_network(&sc, ctx->principal.key_id, id_param(ctx), policy, &info, err);
        json_decref(policy);
        return r < 0 ? api_respond_sandbox_error(ctx, r, err) : http_respond_json(ctx, 200, info);
}

int api_sandboxes_pause(struct http_ctx *ctx)
{
        return answer_with(ctx, sandbox_pause);
}

int api_sandboxes_resume(struct http_ctx *ctx)
{
        return answer_with(ctx, sandbox_resume);
}

int api_sandboxes_metrics(struct http_ctx *ctx)
{
        return answer_with(ctx, sandbox_metrics);
}

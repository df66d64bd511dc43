/* The admin API for keys: /v1/keys. A key's secret appears once, in the answer to its
 * creation; listing and lookups show its id, name, prefix, scopes and limits. */
#include <errno.h>
#include <string.h>

#include "api.h"
#include "cleanup.h"
#include "config.h"
#include "json_fields.h"
#include "keys.h"

static const struct json_field key_create_fields[] = {
    {"name", FIELD_STRING, true},
    {"scopes", FIELD_ARRAY, false},
    {"max_sandboxes", FIELD_INTEGER, false},
    {"max_databases", FIELD_INTEGER, false},
    {"max_services", FIELD_INTEGER, false},
    {"rate", FIELD_INTEGER, false},
    {"burst", FIELD_INTEGER, false},
};

static int parse_scopes(json_t *arr, unsigned *ret, char err[JSON_ERR_MAX])
{
        unsigned scopes = 0;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
        {
                if (!json_is_string(v)) {
                        snprintf(err, JSON_ERR_MAX, "field 'scopes': element %zu is not a string", i);
                        return -EINVAL;
                }
                unsigned one;
                char serr[KEY_ERR_MAX];
                if (strchr(json_string_value(v), ',') || scopes_parse(json_string_value(v), &one, serr) < 0 ||
                    one == 0) {
                        snprintf(err, JSON_ERR_MAX,
                                 "field 'scopes': unknown scope at index %zu (expected sandboxes, databases, "
                                 "hosting or admin)",
                                 i);
                        return -EINVAL;
                }
                scopes |= one;
        }
        *ret = scopes;
        return 0;
}

static int name_is_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n >= KEY_NAME_MAX)
                return 0;
        for (const unsigned char *c = (const unsigned char *)s; *c; c++)
                if (*c < 0x20 || *c == 0x7f)
                        return 0;
        return 1;
}

int api_keys_spec_from_json(json_t *body, const struct warren_config *cfg, struct key_spec *spec,
                            char err[JSON_ERR_MAX])
{
        int r = json_fields_check(body, key_create_fields, ELEMENTSOF(key_create_fields), false, err);
        if (r < 0)
                return r;
        spec->name = json_string_value(json_object_get(body, "name"));
        if (!name_is_valid(spec->name)) {
                snprintf(err, JSON_ERR_MAX,
                         "field 'name': must be 1 to %d characters with no control characters",
                         KEY_NAME_MAX - 1);
                return -EINVAL;
        }
        spec->scopes = SCOPE_SANDBOXES | SCOPE_DATABASES | SCOPE_HOSTING;
        json_t *scopes = json_object_get(body, "scopes");
        if (scopes && (r = parse_scopes(scopes, &spec->scopes, err)) < 0)
                return r;
        const long long defaults[] = {cfg->default_max_sandboxes, cfg->default_max_databases,
                                      cfg->default_max_services};
        const char *fields[] = {"max_sandboxes", "max_databases", "max_services"};
        for (size_t i = 0; i < 3; i++)
                if ((r = json_int_field(body, fields[i], 0, 100000, defaults[i], &spec->max[i], err)) < 0)
                        return r;
        if ((r = json_int_field(body, "rate", 1, 1000000000, cfg->default_rate, &spec->rate, err)) < 0)
                return r;
        long long def_burst = cfg->default_burst > spec->rate ? cfg->default_burst : spec->rate;
        if ((r = json_int_field(body, "burst", 1, 1000000000, def_burst, &spec->burst, err)) < 0)
                return r;
        return 0;
}

int api_keys_create(struct http_ctx *ctx)
{
        struct key_spec spec;
        char err[JSON_ERR_MAX];
        if (api_keys_spec_from_json(ctx->body, ctx->cfg, &spec, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        char secret[KEY_SECRET_MAX];
        json_t *info;
        int r = keys_create(ctx->redis, &spec, secret, &info, err);
        if (r < 0)
                return api_respond_store_error(ctx, r, err);
        json_object_set_new(info, "key", json_string(secret));
        explicit_bzero(secret, sizeof secret);
        return http_respond_json(ctx, 201, info);
}

int api_keys_list(struct http_ctx *ctx)
{
        char err[KEY_ERR_MAX];
        json_t *arr;
        int r = keys_list(ctx->redis, &arr, err);
        if (r < 0)
                return api_respond_store_error(ctx, r, err);
        return http_respond_json(ctx, 200, json_pack("{s:o}", "keys", arr));
}

int api_keys_get(struct http_ctx *ctx)
{
        char err[KEY_ERR_MAX];
        json_t *info;
        int r = keys_get(ctx->redis, route_param(&ctx->params, "id"), &info, err);
        if (r < 0)
                return api_respond_store_error(ctx, r, err);
        return http_respond_json(ctx, 200, info);
}

int api_keys_revoke(struct http_ctx *ctx)
{
        char err[KEY_ERR_MAX];
        const char *id = route_param(&ctx->params, "id");
        int r = keys_revoke(ctx->redis, id, err);
        if (r < 0)
                return api_respond_store_error(ctx, r, err);
        return http_respond_json(ctx, 200, json_pack("{s:s, s:b}", "id", id, "revoked", 1));
}

/* GET /v1/usage: a key's own counters — rate, requests, and concurrent objects against
 * its limits. */
#include <errno.h>

#include "api.h"
#include "cleanup.h"
#include "keys.h"

int api_usage_get(struct http_ctx *ctx)
{
        char err[KEY_ERR_MAX];
        json_t *info;
        int r = keys_get(ctx->redis, ctx->principal.key_id, &info, err);
        if (r < 0)
                return api_respond_store_error(ctx, r, err);
        json_t *limits = json_object_get(info, "limits"), *used = json_object_get(info, "used");
        json_t *body =
            json_pack("{s:O?, s:O?, s:O?, s:{s:O?, s:O?}, s:O?}", "key_id", json_object_get(info, "id"),
                      "name", json_object_get(info, "name"), "scopes", json_object_get(info, "scopes"),
                      "rate", "per_second", json_object_get(info, "rate"), "burst",
                      json_object_get(info, "burst"), "requests", json_object_get(info, "requests"));
        for (size_t i = 0; body && i < ELEMENTSOF(quota_kinds); i++) {
                json_t *u = json_object_get(used, quota_kinds[i]),
                       *l = json_object_get(limits, quota_kinds[i]);
                json_object_set_new(body, quota_kinds[i],
                                    json_pack("{s:I, s:I}", "used", u ? json_integer_value(u) : 0, "limit",
                                              l ? json_integer_value(l) : 0));
        }
        /* Running time of the key's ended sandboxes; paused time is not running time. */
        json_t *ran = json_object_get(info, "sandbox_ms");
        json_object_set_new(body, "sandbox_run_ms", json_integer(ran ? json_integer_value(ran) : 0));
        json_decref(info);
        if (!body)
                return -ENOMEM;
        return http_respond_json(ctx, 200, body);
}

/* GET /healthz: public; says whether Redis answers and which node this is. */
#include <errno.h>

#include "api.h"
#include "redis_client.h"

int api_health_get(struct http_ctx *ctx)
{
        char err[REDIS_ERR_MAX];
        _cleanup_reply_ redisReply *reply = NULL;
        int r = redis_client_cmd(ctx->redis, &reply, err, "PING");
        json_t *body = json_pack("{s:s, s:s, s:s}", "status", r == 0 ? "ok" : "degraded", "node_id",
                                 ctx->node_id, "version", WARREN_VERSION);
        if (!body)
                return -ENOMEM;
        json_object_set_new(body, "redis", json_string(r == 0 ? "ok" : err));
        return http_respond_json(ctx, r == 0 ? 200 : 503, body);
}

int api_respond_store_error(struct http_ctx *ctx, int r, const char *err)
{
        if (r == -ENOTCONN)
                return http_respond_error(ctx, 503, "%s; try again shortly", err);
        if (r == -ENOENT)
                return http_respond_error(ctx, 404, "%s", err);
        return http_respond_error(ctx, 500, "%s", err);
}

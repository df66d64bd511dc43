/* Route handlers, one file per API group (api_<group>.c), and the route table. */
#pragma once

#include <stddef.h>

#include "request.h"
#include "router.h"

extern const struct route routes[];
extern const size_t routes_count;

#define WARREN_VERSION "0.1.0"

int api_health_get(struct http_ctx *ctx);
int api_usage_get(struct http_ctx *ctx);
int api_keys_create(struct http_ctx *ctx);
int api_keys_list(struct http_ctx *ctx);
int api_keys_get(struct http_ctx *ctx);
int api_keys_revoke(struct http_ctx *ctx);

/* Answers a failed store call: 503 when Redis is away, 404 for -ENOENT, else 500. */
int api_respond_store_error(struct http_ctx *ctx, int r, const char *err);

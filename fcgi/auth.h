/* Authentication and per-key rate limiting: one Lua script in Redis does both in a single
 * round trip, so a revoked key fails on the very next request on every worker and node. */
#pragma once

#include <stddef.h>

#include "request.h"

#define AUTH_KEY_MAX 128

/* Finds the presented key in `Authorization: Bearer <key>` or `X-API-Key: <key>`.
 * Returns 0, or -ENOKEY (missing) / -EINVAL (malformed) with a reason for a 401. */
int auth_extract_key(const struct http_request *req, const char **ret_key, size_t *ret_len,
                     char err[REQUEST_ERR_MAX]);

/* Looks the key up and takes a token. Returns 0 with *ret set; -EACCES for an unknown or
 * revoked key; -EAGAIN over the rate (*ret_retry_ms set); -ENOTCONN when Redis is away. */
int auth_check(struct redis_client *rc, const char *key, size_t len, struct principal *ret,
               long long *ret_retry_ms, char err[REQUEST_ERR_MAX]);

/* Gives back the token (and the count) auth_check took for key_id: for a request handed on
 * whole to a route that checks it again. */
void auth_refund(struct redis_client *rc, const char *key_id);

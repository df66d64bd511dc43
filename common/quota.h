/* Per-key counters of concurrent objects, checked and moved by Lua scripts in Redis so
 * that no number of workers or nodes can admit more than a key's limit. A sandbox takes its
 * place in the quota inside sandbox_reserve.lua instead, in the same step as the record that
 * holds it, so that a crash can never leave the count without the record. */
#pragma once

#include "redis_client.h"

struct quota_state {
        long long used, limit;
};

/* Returns 1 when reserved, 0 when over the limit (state says where it stands), -ENOENT for
 * an unknown or revoked key, or -errno. kind is one of quota_kinds. */
int quota_reserve(struct redis_client *rc, const char *key_id, const char *kind, long long n,
                  struct quota_state *ret_state, char err[REDIS_ERR_MAX]);
int quota_release(struct redis_client *rc, const char *key_id, const char *kind, long long n,
                  char err[REDIS_ERR_MAX]);

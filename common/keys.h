/* API keys: creation, lookup, listing and revocation, shared by the CLI and the admin API.
 *
 * Redis layout:  key:<id>           hash: id, name, hash, prefix, scopes, rate, burst,
 *                                   max_<kind>, used_<kind>, requests, created_at, revoked_at
 *                keyhash:<sha256>   the id of the key whose secret hashes to it
 *                keys               set of all key ids
 * The secret itself is returned once, at creation, and never stored. */
#pragma once

#include <jansson.h>

#include "redis_client.h"

enum scope {
        SCOPE_SANDBOXES = 1 << 0,
        SCOPE_DATABASES = 1 << 1,
        SCOPE_HOSTING = 1 << 2,
        SCOPE_ADMIN = 1 << 3,
};
#define SCOPE_ALL (SCOPE_SANDBOXES | SCOPE_DATABASES | SCOPE_HOSTING | SCOPE_ADMIN)

#define KEY_SECRET_MAX 64
#define KEY_ID_MAX     32
#define KEY_NAME_MAX   128
#define KEY_ERR_MAX    256

/* The kinds of object whose concurrent count a key's quota bounds. */
extern const char *const quota_kinds[3]; /* "sandboxes", "databases", "services" */

struct key_spec {
        const char *name;
        unsigned scopes;
        long long rate, burst;
        long long max[3]; /* indexed like quota_kinds */
};

/* "sandboxes,admin" → bits. Rejects unknown names with a message naming them. */
int scopes_parse(const char *s, unsigned *ret_scopes, char err[KEY_ERR_MAX]);
void scopes_format(unsigned scopes, char *buf, size_t size);
json_t *scopes_to_json(unsigned scopes);

int keys_create(struct redis_client *rc, const struct key_spec *spec, char ret_secret[KEY_SECRET_MAX],
                json_t **ret_info, char err[KEY_ERR_MAX]);
/* -ENOENT when there is no such key. */
int keys_get(struct redis_client *rc, const char *id, json_t **ret_info, char err[KEY_ERR_MAX]);
int keys_list(struct redis_client *rc, json_t **ret_array, char err[KEY_ERR_MAX]);
/* Revoking takes effect on the next request anywhere: the lookup entry is deleted. */
int keys_revoke(struct redis_client *rc, const char *id, char err[KEY_ERR_MAX]);
/* The Redis lookup key for a presented secret: "keyhash:<sha256>". */
void keys_lookup_name(const char *secret, size_t len, char buf[80]);

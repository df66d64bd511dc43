/* The key store. Every write that makes a key usable comes last: the record is written
 * before the lookup entry that admits it, and revocation deletes the lookup entry first. */
#include "keys.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "hash.h"
#include "ids.h"

const char *const quota_kinds[3] = {"sandboxes", "databases", "services"};
static const char *const scope_names[] = {"sandboxes", "databases", "hosting", "admin"};

int scopes_parse(const char *s, unsigned *ret_scopes, char err[KEY_ERR_MAX])
{
        unsigned scopes = 0;
        const char *p = s;
        while (*p) {
                size_t n = strcspn(p, ",");
                bool found = false;
                for (size_t i = 0; i < ELEMENTSOF(scope_names); i++)
                        if (n == strlen(scope_names[i]) && strncmp(p, scope_names[i], n) == 0) {
                                scopes |= 1u << i;
                                found = true;
                        }
                if (!found && n > 0) {
                        snprintf(err, KEY_ERR_MAX,
                                 "unknown scope '%.*s' (expected sandboxes, databases, hosting or admin)",
                                 (int)(n > 40 ? 40 : n), p);
                        return -EINVAL;
                }
                p += n;
                if (*p == ',')
                        p++;
        }
        *ret_scopes = scopes;
        return 0;
}

void scopes_format(unsigned scopes, char *buf, size_t size)
{
        size_t used = 0;
        buf[0] = 0;
        for (size_t i = 0; i < ELEMENTSOF(scope_names); i++)
                if (scopes & (1u << i))
                        used += (size_t)snprintf(buf + used, used < size ? size - used : 0, "%s%s",
                                                 used ? "," : "", scope_names[i]);
}

json_t *scopes_to_json(unsigned scopes)
{
        json_t *a = json_array();
        for (size_t i = 0; a && i < ELEMENTSOF(scope_names); i++)
                if (scopes & (1u << i))
                        json_array_append_new(a, json_string(scope_names[i]));
        return a;
}

void keys_lookup_name(const char *secret, size_t len, char buf[80])
{
        char hex[SHA256_HEX_LEN + 1];
        sha256_hex(secret, len, hex);
        snprintf(buf, 80, "keyhash:%s", hex);
}

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *iso_time(long long ms)
{
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        char buf[40];
        strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return json_string(buf);
}

/* Builds the public view of a key from an HGETALL reply; never includes the hash. */
static json_t *key_info_from_reply(const redisReply *r)
{
        json_t *info = json_object(), *limits = json_object(), *used = json_object();
        long long n;
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
                const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
                if (!f || !v)
                        continue;
                n = strtoll(v, NULL, 10);
                if (!strcmp(f, "id") || !strcmp(f, "name") || !strcmp(f, "prefix"))
                        json_object_set_new(info, f, json_string(v));
                else if (!strcmp(f, "rate") || !strcmp(f, "burst") || !strcmp(f, "requests") ||
                         !strcmp(f, "sandbox_ms"))
                        json_object_set_new(info, f, json_integer(n));
                else if (!strcmp(f, "created_at") || !strcmp(f, "revoked_at"))
                        json_object_set_new(info, f, iso_time(n));
                else if (!strcmp(f, "scopes")) {
                        unsigned s = 0;
                        char err[KEY_ERR_MAX];
                        scopes_parse(v, &s, err);
                        json_object_set_new(info, "scopes", scopes_to_json(s));
                } else if (!strncmp(f, "max_", 4))
                        json_object_set_new(limits, f + 4, json_integer(n));
                else if (!strncmp(f, "used_", 5))
                        json_object_set_new(used, f + 5, json_integer(n));
        }
        json_object_set_new(info, "limits", limits);
        json_object_set_new(info, "used", used);
        json_object_set_new(info, "revoked", json_boolean(json_object_get(info, "revoked_at") != NULL));
        return info;
}

int keys_create(struct redis_client *rc, const struct key_spec *spec, char ret_secret[KEY_SECRET_MAX],
                json_t **ret_info, char err[KEY_ERR_MAX])
{
        char id[KEY_ID_MAX], secret[KEY_SECRET_MAX], lookup[80], scopes[128], prefix[16];
        int r = id_random("k", 15, id, sizeof id);
        if (r == 0)
                r = secret_random("wk_", 40, secret, sizeof secret);
        if (r < 0) {
                snprintf(err, KEY_ERR_MAX, "generate key: %s", strerror(-r));
                return r;
        }
        keys_lookup_name(secret, strlen(secret), lookup);
        scopes_format(spec->scopes, scopes, sizeof scopes);
        snprintf(prefix, sizeof prefix, "%.9s", secret);

        char hash_field[SHA256_HEX_LEN + 1];
        memcpy(hash_field, lookup + strlen("keyhash:"), sizeof hash_field); /* 64 hex + NUL */
        redisReply *reply = NULL;
        r = redis_client_cmd(rc, &reply, err,
                             "HSET key:%s id %s name %s hash %s prefix %s scopes %s rate %lld burst %lld "
                             "max_sandboxes %lld max_databases %lld max_services %lld used_sandboxes 0 "
                             "used_databases 0 used_services 0 requests 0 created_at %lld",
                             id, id, spec->name, hash_field, prefix, scopes, spec->rate, spec->burst,
                             spec->max[0], spec->max[1], spec->max[2], now_ms());
        if (r < 0)
                return r;
        freeReplyObject(reply);
        r = redis_client_cmd(rc, &reply, err, "SADD keys %s", id);
        if (r < 0)
                return r;
        freeReplyObject(reply);
        /* Last: from here on the secret authenticates. */
        r = redis_client_cmd(rc, &reply, err, "SET %s %s", lookup, id);
        if (r < 0)
                return r;
        freeReplyObject(reply);

        if (ret_info) {
                r = keys_get(rc, id, ret_info, err);
                if (r < 0) {
                        explicit_bzero(secret, sizeof secret);
                        return r;
                }
        }
        memcpy(ret_secret, secret, sizeof secret);
        explicit_bzero(secret, sizeof secret);
        return 0;
}

int keys_get(struct redis_client *rc, const char *id, json_t **ret_info, char err[KEY_ERR_MAX])
{
        if (!id_is_valid(id, KEY_ID_MAX - 1)) {
                snprintf(err, KEY_ERR_MAX, "no key with that id");
                return -ENOENT;
        }
        _cleanup_reply_ redisReply *reply = NULL;
        int r = redis_client_cmd(rc, &reply, err, "HGETALL key:%s", id);
        if (r < 0)
                return r;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
                snprintf(err, KEY_ERR_MAX, "no key with id '%s'", id);
                return -ENOENT;
        }
        json_t *info = key_info_from_reply(reply);
        if (!info)
                return -ENOMEM;
        *ret_info = info;
        return 0;
}

int keys_list(struct redis_client *rc, json_t **ret_array, char err[KEY_ERR_MAX])
{
        _cleanup_reply_ redisReply *ids = NULL;
        int r = redis_client_cmd(rc, &ids, err, "SORT keys ALPHA");
        if (r < 0)
                return r;
        json_t *arr = json_array();
        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < ids->elements; i++) {
                json_t *info;
                r = keys_get(rc, ids->element[i]->str, &info, err);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        json_decref(arr);
                        return r;
                }
                json_array_append_new(arr, info);
        }
        *ret_array = arr;
        return 0;
}

int keys_revoke(struct redis_client *rc, const char *id, char err[KEY_ERR_MAX])
{
        if (!id_is_valid(id, KEY_ID_MAX - 1)) {
                snprintf(err, KEY_ERR_MAX, "no key with that id");
                return -ENOENT;
        }
        _cleanup_reply_ redisReply *hash = NULL;
        int r = redis_client_cmd(rc, &hash, err, "HGET key:%s hash", id);
        if (r < 0)
                return r;
        if (hash->type != REDIS_REPLY_STRING) {
                snprintf(err, KEY_ERR_MAX, "no key with id '%s'", id);
                return -ENOENT;
        }
        redisReply *reply = NULL;
        /* First: from here on the secret no longer authenticates, on any worker. */
        r = redis_client_cmd(rc, &reply, err, "DEL keyhash:%s", hash->str);
        if (r < 0)
                return r;
        freeReplyObject(reply);
        r = redis_client_cmd(rc, &reply, err, "HSETNX key:%s revoked_at %lld", id, now_ms());
        if (r < 0)
                return r;
        freeReplyObject(reply);
        return 0;
}

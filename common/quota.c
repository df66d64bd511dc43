#include "quota.h"

#include <errno.h>
#include <stdio.h>

int quota_reserve(struct redis_client *rc, const char *key_id, const char *kind, long long n,
                  struct quota_state *ret_state, char err[REDIS_ERR_MAX])
{
        char key[64], count[24];
        snprintf(key, sizeof key, "key:%s", key_id);
        snprintf(count, sizeof count, "%lld", n);
        const char *args[] = {key, kind, count};
        _cleanup_reply_ redisReply *reply = NULL;
        int r = redis_client_script(rc, &redis_script_quota_reserve, 1, 3, args, &reply, err);
        if (r < 0)
                return r;
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
                snprintf(err, REDIS_ERR_MAX, "quota_reserve: unexpected reply");
                return -EPROTO;
        }
        long long verdict = reply->element[0]->integer;
        if (verdict < 0) {
                snprintf(err, REDIS_ERR_MAX, "no key with id '%s'", key_id);
                return -ENOENT;
        }
        if (reply->elements >= 3 && ret_state) {
                ret_state->used = reply->element[1]->integer;
                ret_state->limit = reply->element[2]->integer;
        }
        return verdict == 1;
}

int quota_release(struct redis_client *rc, const char *key_id, const char *kind, long long n,
                  char err[REDIS_ERR_MAX])
{
        char key[64], count[24];
        snprintf(key, sizeof key, "key:%s", key_id);
        snprintf(count, sizeof count, "%lld", n);
        const char *args[] = {key, kind, count};
        _cleanup_reply_ redisReply *reply = NULL;
        return redis_client_script(rc, &redis_script_quota_release, 1, 3, args, &reply, err);
}

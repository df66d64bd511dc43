#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "keys.h"
#include "redis_client.h"

static int key_is_wellformed(const char *k, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                char c = k[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
                        return 0;
        }
        return n > 0;
}

int auth_extract_key(const struct http_request *req, const char **ret_key, size_t *ret_len,
                     char err[REQUEST_ERR_MAX])
{
        const char *key = NULL;
        if (req->authorization) {
                const char *a = req->authorization;
                if (strncasecmp(a, "Bearer ", 7) != 0) {
                        snprintf(err, REQUEST_ERR_MAX, "Authorization header must be 'Bearer <api key>'");
                        return -EINVAL;
                }
                key = a + 7;
                while (*key == ' ')
                        key++;
        } else if (req->api_key) {
                key = req->api_key;
        } else {
                snprintf(err, REQUEST_ERR_MAX,
                         "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'");
                return -ENOKEY;
        }
        size_t n = strlen(key);
        while (n > 0 && key[n - 1] == ' ')
                n--;
        if (n > AUTH_KEY_MAX) {
                snprintf(err, REQUEST_ERR_MAX, "API key is malformed: longer than %d characters",
                         AUTH_KEY_MAX);
                return -EINVAL;
        }
        if (!key_is_wellformed(key, n)) {
                snprintf(err, REQUEST_ERR_MAX, "API key is malformed: expected letters, digits and '_'");
                return -EINVAL;
        }
        *ret_key = key;
        *ret_len = n;
        return 0;
}

static void copy_str(char *dst, size_t size, const redisReply *r)
{
        snprintf(dst, size, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
}

int auth_check(struct redis_client *rc, const char *key, size_t len, struct principal *ret,
               long long *ret_retry_ms, char err[REQUEST_ERR_MAX])
{
        char lookup[80];
        keys_lookup_name(key, len, lookup);
        const char *args[] = {lookup};
        _cleanup_reply_ redisReply *reply = NULL;
        char rerr[REDIS_ERR_MAX];
        int r = redis_client_script(rc, &redis_script_auth_rate, 1, 1, args, &reply, rerr);
        if (r < 0) {
                snprintf(err, REQUEST_ERR_MAX, "%s", rerr);
                return r == -ENOTCONN ? -ENOTCONN : -EPROTO;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
                snprintf(err, REQUEST_ERR_MAX, "auth: unexpected reply from Redis");
                return -EPROTO;
        }
        long long verdict = reply->element[0]->integer;
        if (verdict == 0 || reply->elements < 5) {
                snprintf(err, REQUEST_ERR_MAX, "unknown or revoked API key");
                return -EACCES;
        }
        struct principal p = {0};
        copy_str(p.key_id, sizeof p.key_id, reply->element[1]);
        copy_str(p.name, sizeof p.name, reply->element[2]);
        char serr[KEY_ERR_MAX];
        scopes_parse(reply->element[3]->type == REDIS_REPLY_STRING ? reply->element[3]->str : "", &p.scopes,
                     serr);
        *ret = p;
        if (verdict == 2) {
                *ret_retry_ms = reply->element[4]->integer;
                snprintf(err, REQUEST_ERR_MAX, "rate limit exceeded for this API key; retry in %lld ms",
                         *ret_retry_ms);
                return -EAGAIN;
        }
        return 0;
}

void auth_refund(struct redis_client *rc, const char *key_id)
{
        char key[64], err[REDIS_ERR_MAX];
        snprintf(key, sizeof key, "key:%s", key_id);
        const char *args[] = {key};
        _cleanup_reply_ redisReply *reply = NULL;
        redis_client_script(rc, &redis_script_auth_refund, 1, 1, args, &reply, err);
}

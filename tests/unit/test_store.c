/* The key store, the auth + rate script, the quota scripts and the sandbox books against a real redis-server
 * that this test starts on a private unix socket and stops at the end. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "check.h"
#include "keys.h"
#include "quota.h"
#include "redis_client.h"

static char dir[] = "/tmp/warren-store-XXXXXX";
static char url[256];
static pid_t redis_pid;

static int redis_start(void)
{
        if (!mkdtemp(dir))
                return -errno;
        char sock[200];
        snprintf(sock, sizeof sock, "%s/redis.sock", dir);
        snprintf(url, sizeof url, "unix:%s", sock);
        redis_pid = fork();
        if (redis_pid == 0) {
                /* Not the test's stdout: a redis-server left behind must not hold ctest's pipe. */
                int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(devnull, 1);
                dup2(devnull, 2);
                execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                       "--appendonly", "no", "--dir", dir, "--loglevel", "warning", (char *)NULL);
                _exit(127);
        }
        for (int i = 0; i < 200; i++) {
                struct stat st;
                if (stat(sock, &st) == 0)
                        return 0;
                usleep(10000);
        }
        return -ETIMEDOUT;
}

static void redis_stop(void)
{
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", dir);
}

static struct redis_client *client(void)
{
        struct redis_client *rc = NULL;
        char err[REDIS_ERR_MAX];
        if (redis_client_new(url, 1000, &rc, err) < 0)
                return NULL;
        return rc;
}

static int make_key(struct redis_client *rc, long long rate, long long burst, long long max_sandboxes,
                    char secret[KEY_SECRET_MAX], char id[KEY_ID_MAX])
{
        struct key_spec spec = {.name = "t",
                                .scopes = SCOPE_SANDBOXES,
                                .rate = rate,
                                .burst = burst,
                                .max = {max_sandboxes, 1, 1}};
        json_t *info = NULL;
        char err[KEY_ERR_MAX];
        int r = keys_create(rc, &spec, secret, &info, err);
        if (r == 0)
                snprintf(id, KEY_ID_MAX, "%s", json_string_value(json_object_get(info, "id")));
        json_decref(info);
        return r;
}

static void store__key_authenticates_until_revoked(void)
{
        _cleanup_redis_ struct redis_client *rc = client();
        char secret[KEY_SECRET_MAX], id[KEY_ID_MAX], err[REQUEST_ERR_MAX], kerr[KEY_ERR_MAX];
        CHECK(make_key(rc, 100, 100, 1, secret, id) == 0);
        struct principal p;
        long long retry;
        CHECK(auth_check(rc, secret, strlen(secret), &p, &retry, err) == 0);
        CHECK_STREQ(p.key_id, id);
        CHECK(p.scopes == SCOPE_SANDBOXES);
        CHECK(keys_revoke(rc, id, kerr) == 0);
        CHECK(auth_check(rc, secret, strlen(secret), &p, &retry, err) == -EACCES);
        json_t *info = NULL;
        CHECK(keys_get(rc, id, &info, kerr) == 0 && json_is_true(json_object_get(info, "revoked")));
        CHECK(json_object_get(info, "hash") == NULL); /* the hash never leaves the store */
        json_decref(info);
}

static void store__unknown_key_is_refused(void)
{
        _cleanup_redis_ struct redis_client *rc = client();
        struct principal p;
        long long retry;
        char err[REQUEST_ERR_MAX];
        CHECK(auth_check(rc, "wk_nope", 7, &p, &retry, err) == -EACCES);
}

static void store__rate_limit_refuses_past_burst_with_retry_after(void)
{
        _cleanup_redis_ struct redis_client *rc = client();
        char secret[KEY_SECRET_MAX], id[KEY_ID_MAX], err[REQUEST_ERR_MAX];
        CHECK(make_key(rc, 1, 5, 1, secret, id) == 0);
        struct principal p;
        long long retry = 0;
        int admitted = 0;
        for (int i = 0; i < 8; i++)
                admitted += auth_check(rc, secret, strlen(secret), &p, &retry, err) == 0;
        CHECK(admitted == 5);
        CHECK(auth_check(rc, secret, strlen(secret), &p, &retry, err) == -EAGAIN);
        CHECK(retry > 0 && retry <= 1000);
}

struct race {
        const char *id;
        int reserved;
};

static void *reserve_one(void *arg)
{
        struct race *r = arg;
        struct redis_client *rc = client();
        char err[REDIS_ERR_MAX];
        struct quota_state st;
        if (rc && quota_reserve(rc, r->id, "sandboxes", 1, &st, err) == 1)
                __atomic_add_fetch(&r->reserved, 1, __ATOMIC_SEQ_CST);
        redis_client_free(rc);
        return NULL;
}

static void store__quota_holds_exactly_under_50_parallel_reservations(void)
{
        _cleanup_redis_ struct redis_client *rc = client();
        char secret[KEY_SECRET_MAX], id[KEY_ID_MAX], err[REDIS_ERR_MAX];
        CHECK(make_key(rc, 100, 100, 7, secret, id) == 0);
        struct race race = {.id = id};
        pthread_t t[50];
        for (int i = 0; i < 50; i++)
                pthread_create(&t[i], NULL, reserve_one, &race);
        for (int i = 0; i < 50; i++)
                pthread_join(t[i], NULL);
        CHECK(race.reserved == 7);
        struct quota_state st;
        CHECK(quota_reserve(rc, id, "sandboxes", 1, &st, err) == 0 && st.used == 7 && st.limit == 7);
}

static void store__quota_release_never_goes_negative(void)
{
        _cleanup_redis_ struct redis_client *rc = client();
        char secret[KEY_SECRET_MAX], id[KEY_ID_MAX], err[REDIS_ERR_MAX];
        CHECK(make_key(rc, 100, 100, 3, secret, id) == 0);
        struct quota_state st;
        CHECK(quota_reserve(rc, id, "sandboxes", 2, &st, err) == 1 && st.used == 2);
        CHECK(quota_release(rc, id, "sandboxes", 5, err) == 0);
        CHECK(quota_reserve(rc, id, "sandboxes", 3, &st, err) == 1 && st.used == 3);
        CHECK(quota_reserve(rc, "knosuchkey", "sandboxes", 1, &st, err) == -ENOENT);
}

/* The sandbox books: sandbox_reserve takes a key's quota, the node's capacity and a uid slot
 * (or a pooled sandbox) together with the record that holds them; sandbox_settle gives back
 * exactly what a record held, once; sandbox_settle_claim lets one caller settle at a time. */
static long long books_int(struct redis_client *rc, const char *fmt, const char *arg)
{
        char err[REDIS_ERR_MAX];
        _cleanup_reply_ redisReply *r = NULL;
        if (redis_client_cmd(rc, &r, err, fmt, arg) < 0)
                return -999;
        return r->type == REDIS_REPLY_INTEGER  ? r->integer
               : r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10)
                                               : 0;
}

/* Runs sandbox_reserve for id on node "bk" with room for `capacity` sandboxes and `slots` uid
 * slots; returns the verdict and puts the third element (slot, or pool entry) in out. */
static long long books_reserve(struct redis_client *rc, const char *id, const char *key_id,
                               const char *capacity, const char *pool, const char *slots, char out[64])
{
        char key[64], err[REDIS_ERR_MAX];
        snprintf(key, sizeof key, "sandbox:%s", id);
        const char *args[] = {key, id, "bk", key_id, capacity, pool, slots, "0", "60000"};
        _cleanup_reply_ redisReply *r = NULL;
        if (redis_client_script(rc, &redis_script_sandbox_reserve, 1, 9, args, &r, err) < 0 ||
            r->type != REDIS_REPLY_ARRAY)
                return -999;
        out[0] = 0;
        if (r->elements == 3 && r->element[2]->type == REDIS_REPLY_STRING)
                snprintf(out, 64, "%s", r->element[2]->str);
        else if (r->elements == 3)
                snprintf(out, 64, "%lld", r->element[2]->integer);
        return r->element[0]->integer;
}

static long long books_script(struct redis_client *rc, const struct redis_script *s, const char *id,
                              const char *arg)
{
        char key[64], err[REDIS_ERR_MAX];
        snprintf(key, sizeof key, "sandbox:%s", id);
        const char *args[] = {key, arg, "t0"};
        _cleanup_reply_ redisReply *r = NULL;
        if (redis_client_script(rc, s, 1, 3, args, &r, err) < 0 || r->type != REDIS_REPLY_INTEGER)
                return -999;
        return r->integer;
}

static void store__sandbox_reservations_and_settling_keep_the_books(void)
{
        _cleanup_redis_ struct redis_client *rc = client();
        char secret[KEY_SECRET_MAX], id[KEY_ID_MAX], quota[64], out[64], out2[64];
        CHECK(make_key(rc, 100, 100, 2, secret, id) == 0);
        snprintf(quota, sizeof quota, "key:%s", id);
        /* Two cold starts take two slots; the third is over the key's quota and takes nothing. */
        CHECK(books_reserve(rc, "sa", id, "10", "0", "4", out) == 1);
        CHECK(books_reserve(rc, "sb", id, "10", "0", "4", out2) == 1);
        CHECK(strcmp(out, out2) != 0);
        CHECK(books_reserve(rc, "sc", id, "10", "0", "4", out2) == 0);
        CHECK(books_int(rc, "EXISTS %s", "sandbox:sc") == 0);
        CHECK(books_int(rc, "HGET %s used_sandboxes", quota) == 2);
        CHECK(books_int(rc, "GET %s", "node:bk:sandboxes") == 2);
        CHECK(books_int(rc, "BITCOUNT %s", "node:bk:uid_slots") == 2);
        CHECK(books_int(rc, "ZSCORE sandboxes:node:bk %s", "sa") > 0);
        /* Settled once: all of it comes back, and a second settle finds nothing. */
        CHECK(books_script(rc, &redis_script_sandbox_settle, "sa", "sa") == 0); /* unclaimed */
        CHECK(books_script(rc, &redis_script_sandbox_settle_claim, "sa", "30000") == 1);
        CHECK(books_script(rc, &redis_script_sandbox_settle, "sa", "sa") == 1);
        CHECK(books_script(rc, &redis_script_sandbox_settle, "sa", "sa") == 0);
        CHECK(books_int(rc, "HGET %s used_sandboxes", quota) == 1);
        CHECK(books_int(rc, "GET %s", "node:bk:sandboxes") == 1);
        CHECK(books_int(rc, "BITCOUNT %s", "node:bk:uid_slots") == 1);
        CHECK(books_int(rc, "ZSCORE sandboxes:node:bk %s", "sa") == 0);
        /* A full node, and a node with no free slot, refuse without taking anything. */
        CHECK(books_reserve(rc, "sd", id, "1", "0", "4", out) == -2);
        CHECK(books_reserve(rc, "sd", id, "10", "0", "0", out) == -3);
        CHECK(books_int(rc, "EXISTS %s", "sandbox:sd") == 0);
        CHECK(books_int(rc, "HGET %s used_sandboxes", quota) == 1);
        CHECK(books_int(rc, "GET %s", "node:bk:sandboxes") == 1);
        /* The warm pool's own reservation holds a slot only; a key that takes it off the pool
         * holds its quota and capacity, and settling gives back all three. */
        CHECK(books_reserve(rc, "pp", "", "10", "0", "4", out) == 1);
        CHECK(books_int(rc, "HGET %s used_sandboxes", quota) == 1);
        CHECK(books_int(rc, "GET %s", "node:bk:sandboxes") == 1);
        char entry[96];
        snprintf(entry, sizeof entry, "pp.99.%s", out);
        /* An entry left on the pool by a record settled meanwhile is skipped, and takes nothing. */
        CHECK(books_int(rc, "RPUSH pool:bk %s", "gone.7.3") == 1);
        CHECK(books_int(rc, "RPUSH pool:bk %s", entry) == 2);
        CHECK(books_reserve(rc, "se", id, "10", "1", "4", out2) == 1);
        CHECK_STREQ(out2, entry);
        CHECK(books_int(rc, "HGET %s used_sandboxes", quota) == 2);
        CHECK(books_int(rc, "EXISTS %s", "sandbox:gone") == 0);
        CHECK(books_int(rc, "LLEN %s", "pool:bk") == 0);
        /* A delete that could not stop it marked it deleting; it still held what it held. */
        CHECK(books_int(rc, "HSET sandbox:pp status_before claiming status %s", "deleting") == 1);
        CHECK(books_script(rc, &redis_script_sandbox_settle_claim, "pp", "30000") == 1);
        CHECK(books_script(rc, &redis_script_sandbox_settle, "pp", "pp") == 1);
        CHECK(books_int(rc, "HGET %s used_sandboxes", quota) == 1);
        CHECK(books_int(rc, "GET %s", "node:bk:sandboxes") == 1);
        CHECK(books_int(rc, "BITCOUNT %s", "node:bk:uid_slots") == 1);
        /* One settler at a time; a stale claim is taken over; a settled record is gone. */
        CHECK(books_script(rc, &redis_script_sandbox_settle_claim, "sb", "30000") == 1);
        CHECK(books_script(rc, &redis_script_sandbox_settle_claim, "sb", "30000") == 2);
        CHECK(books_script(rc, &redis_script_sandbox_settle_claim, "sb", "0") == 1);
        /* A claimer whose claim was taken over by another settles nothing. */
        CHECK(books_int(rc, "HSET sandbox:sb settling_by %s", "t1") == 0);
        CHECK(books_script(rc, &redis_script_sandbox_settle, "sb", "sb") == 0);
        CHECK(books_int(rc, "HSET sandbox:sb settling_by %s", "t0") == 0);
        CHECK(books_script(rc, &redis_script_sandbox_settle, "sb", "sb") == 1);
        CHECK(books_script(rc, &redis_script_sandbox_settle_claim, "sb", "30000") == 0);
        CHECK(books_int(rc, "HGET %s used_sandboxes", quota) == 0);
        CHECK(books_int(rc, "GET %s", "node:bk:sandboxes") == 0);
        CHECK(books_int(rc, "BITCOUNT %s", "node:bk:uid_slots") == 0);
        /* A create that finishes after its record was settled does not bring it back. */
        const char *args[] = {"sandbox:sb", "sandboxes:key:x", "sandboxes:node:bk", "sb", "1", "2",
                              "status",     "running"};
        char err[REDIS_ERR_MAX];
        _cleanup_reply_ redisReply *r = NULL;
        CHECK(redis_client_script(rc, &redis_script_sandbox_store, 3, 8, args, &r, err) == 0 &&
              r->type == REDIS_REPLY_INTEGER && r->integer == 0);
        CHECK(books_int(rc, "EXISTS %s", "sandbox:sb") == 0);
        CHECK(books_int(rc, "ZSCORE sandboxes:node:bk %s", "sb") == 0);
        /* Nor does a pause, resume or new timeout that read it before it was settled. */
        const char *update[] = {"sandbox:sb", "sandboxes:node:bk", "sb", "+inf", "status", "paused"};
        redisReply *u = NULL;
        CHECK(redis_client_script(rc, &redis_script_sandbox_update, 2, 6, update, &u, err) == 0 &&
              u->type == REDIS_REPLY_INTEGER && u->integer == 0);
        freeReplyObject(u);
        CHECK(books_int(rc, "EXISTS %s", "sandbox:sb") == 0);
        CHECK(books_int(rc, "ZSCORE sandboxes:node:bk %s", "sb") == 0);
}

static void store__unreachable_redis_is_reported_as_unavailable(void)
{
        _cleanup_redis_ struct redis_client *rc = NULL;
        char err[REDIS_ERR_MAX];
        CHECK(redis_client_new("unix:/nonexistent/redis.sock", 100, &rc, err) == 0);
        redisReply *reply = NULL;
        CHECK(redis_client_cmd(rc, &reply, err, "PING") == -ENOTCONN);
        CHECK(strncmp(err, "redis unavailable", 17) == 0);
}

static void store__redis_url_with_password_is_never_echoed(void)
{
        struct redis_client *rc = NULL;
        char err[REDIS_ERR_MAX] = "";
        CHECK(redis_client_new("redis://:s3cret@", 100, &rc, err) == -EINVAL);
        CHECK(strstr(err, "s3cret") == NULL);
        CHECK(redis_client_new("redis://:s3cret@127.0.0.1:6390/2", 100, &rc, err) == 0);
        redis_client_free(rc);
}

/* A prefetched reply serves the same command once, and only when no other command came
 * between: a write in between makes the next read go to Redis and see the write. */
static void store__prefetch_serves_only_the_same_next_command(void)
{
        struct redis_client *rc = client();
        char err[REDIS_ERR_MAX];
        redisReply *r = NULL;
        CHECK(redis_client_cmd(rc, &r, err, "SET pf:a %s", "one") == 0);
        freeReplyObject(r);

        redis_client_prefetch(rc, "GET pf:%s", "a");
        CHECK(redis_client_cmd(rc, &r, err, "PING") == 0); /* sent with the prefetch */
        freeReplyObject(r);
        /* Changed by another client after the prefetch was answered. */
        struct redis_client *other = client();
        CHECK(redis_client_cmd(other, &r, err, "SET pf:a %s", "two") == 0);
        freeReplyObject(r);
        CHECK(redis_client_cmd(rc, &r, err, "GET pf:%s", "a") == 0);
        CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "one")); /* the read-ahead, as asked */
        freeReplyObject(r);
        CHECK(redis_client_cmd(rc, &r, err, "GET pf:%s", "a") == 0); /* used once only */
        CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "two"));
        freeReplyObject(r);

        /* Another command in between drops it. */
        redis_client_prefetch(rc, "GET pf:%s", "a");
        CHECK(redis_client_cmd(rc, &r, err, "PING") == 0);
        freeReplyObject(r);
        CHECK(redis_client_cmd(rc, &r, err, "SET pf:a %s", "three") == 0);
        freeReplyObject(r);
        CHECK(redis_client_cmd(rc, &r, err, "GET pf:%s", "a") == 0);
        CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "three"));
        freeReplyObject(r);

        /* A prefetch that never went out is not read as a later command's reply. */
        redis_client_prefetch(rc, "GET pf:%s", "a");
        redis_client_prefetch_end(rc);
        CHECK(redis_client_cmd(rc, &r, err, "ECHO %s", "x") == 0);
        CHECK(r && r->type == REDIS_REPLY_STRING && !strcmp(r->str, "x"));
        freeReplyObject(r);

        /* An error reply read ahead is an error when taken. */
        redis_client_prefetch(rc, "HGETALL pf:%s", "a"); /* a string: WRONGTYPE */
        CHECK(redis_client_cmd(rc, &r, err, "PING") == 0);
        freeReplyObject(r);
        CHECK(redis_client_cmd(rc, &r, err, "HGETALL pf:%s", "a") == -EPROTO);
        CHECK(strstr(err, "WRONGTYPE") != NULL);
        redis_client_free(other);
        redis_client_free(rc);
}

int main(void)
{
        if (redis_start() < 0) {
                fprintf(stderr, "cannot start redis-server\n");
                return 1;
        }
        RUN(store__key_authenticates_until_revoked);
        RUN(store__unknown_key_is_refused);
        RUN(store__rate_limit_refuses_past_burst_with_retry_after);
        RUN(store__quota_holds_exactly_under_50_parallel_reservations);
        RUN(store__quota_release_never_goes_negative);
        RUN(store__sandbox_reservations_and_settling_keep_the_books);
        RUN(store__unreachable_redis_is_reported_as_unavailable);
        RUN(store__redis_url_with_password_is_never_echoed);
        RUN(store__prefetch_serves_only_the_same_next_command);
        redis_stop();
        return CHECK_SUMMARY();
}

/* Redis connections. Each worker thread owns one client; nothing here is shared between
 * threads, so there is no locking. A connection that fails is dropped and the next call
 * dials again: when Redis comes back, workers recover without a restart. */
#include "redis_client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"

extern const char warren_lua_auth_rate[];
extern const char warren_lua_auth_refund[];
extern const char warren_lua_quota_reserve[];
extern const char warren_lua_quota_release[];
extern const char warren_lua_sandbox_store[];
extern const char warren_lua_sandbox_update[];
extern const char warren_lua_sandbox_stopping[];
extern const char warren_lua_sandbox_reserve[];
extern const char warren_lua_sandbox_settle_claim[];
extern const char warren_lua_sandbox_settle[];

const struct redis_script redis_script_auth_rate = {"auth_rate", warren_lua_auth_rate};
const struct redis_script redis_script_auth_refund = {"auth_refund", warren_lua_auth_refund};
const struct redis_script redis_script_quota_reserve = {"quota_reserve", warren_lua_quota_reserve};
const struct redis_script redis_script_quota_release = {"quota_release", warren_lua_quota_release};
const struct redis_script redis_script_sandbox_store = {"sandbox_store", warren_lua_sandbox_store};
const struct redis_script redis_script_sandbox_update = {"sandbox_update", warren_lua_sandbox_update};
const struct redis_script redis_script_sandbox_stopping = {"sandbox_stopping", warren_lua_sandbox_stopping};
const struct redis_script redis_script_sandbox_reserve = {"sandbox_reserve", warren_lua_sandbox_reserve};
const struct redis_script redis_script_sandbox_settle_claim = {"sandbox_settle_claim",
                                                               warren_lua_sandbox_settle_claim};
const struct redis_script redis_script_sandbox_settle = {"sandbox_settle", warren_lua_sandbox_settle};

struct redis_client {
        redisContext *ctx;
        long long last_reply_ms; /* CLOCK_MONOTONIC_COARSE: when the last reply arrived */
        char unix_path[256];
        char host[256];
        int port;
        int db;
        char password[256];
        struct timeval timeout;
        /* A command sent ahead with the next one (redis_client_prefetch), and its reply once
         * read: handed to the next command if it is the same, else dropped. */
        char *prefetch_cmd;
        int prefetch_len;
        bool prefetch_pending; /* appended, its reply not read yet */
        redisReply *prefetched;
};

static int parse_url(struct redis_client *c, const char *url, char err[REDIS_ERR_MAX])
{
        if (strncmp(url, "unix:", 5) == 0) {
                if (strlen(url + 5) >= sizeof c->unix_path || !url[5])
                        goto bad;
                strcpy(c->unix_path, url + 5);
                return 0;
        }
        if (strncmp(url, "redis://", 8) != 0)
                goto bad;
        const char *p = url + 8;
        const char *at = strrchr(p, '@');
        if (at) {
                const char *colon = memchr(p, ':', (size_t)(at - p));
                const char *pw = colon ? colon + 1 : p;
                size_t n = (size_t)(at - pw);
                if (n >= sizeof c->password)
                        goto bad;
                memcpy(c->password, pw, n);
                c->password[n] = 0;
                p = at + 1;
        }
        size_t hlen = strcspn(p, ":/");
        if (hlen == 0 || hlen >= sizeof c->host)
                goto bad;
        memcpy(c->host, p, hlen);
        c->host[hlen] = 0;
        p += hlen;
        c->port = 6379;
        if (*p == ':') {
                char *end;
                long port = strtol(p + 1, &end, 10);
                if (end == p + 1 || port <= 0 || port > 65535)
                        goto bad;
                c->port = (int)port;
                p = end;
        }
        if (*p == '/' && p[1]) {
                char *end;
                long db = strtol(p + 1, &end, 10);
                if (*end || db < 0 || db > 1000)
                        goto bad;
                c->db = (int)db;
        }
        return 0;
bad:
        /* The URL may carry a password: never echo it. */
        snprintf(err, REDIS_ERR_MAX,
                 "redis_url: expected unix:/path or redis://[:password@]host[:port][/db]");
        return -EINVAL;
}

int redis_client_new(const char *url, int timeout_ms, struct redis_client **ret_client,
                     char err[REDIS_ERR_MAX])
{
        _cleanup_free_ struct redis_client *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        int r = parse_url(c, url, err);
        if (r < 0)
                return r;
        c->timeout.tv_sec = timeout_ms / 1000;
        c->timeout.tv_usec = (timeout_ms % 1000) * 1000;
        *ret_client = TAKE_PTR(c);
        return 0;
}

static void drop_connection(struct redis_client *c);

void redis_client_free(struct redis_client *c)
{
        if (!c)
                return;
        drop_connection(c);
        explicit_bzero(c->password, sizeof c->password);
        free(c);
}

void redis_client_freep(struct redis_client **c)
{
        redis_client_free(*c);
}

static void forget_prefetch(struct redis_client *c)
{
        redisFreeCommand(c->prefetch_cmd);
        c->prefetch_cmd = NULL;
        c->prefetch_len = 0;
        c->prefetch_pending = false;
        if (c->prefetched)
                freeReplyObject(c->prefetched);
        c->prefetched = NULL;
}

static void drop_connection(struct redis_client *c)
{
        forget_prefetch(c);
        if (c->ctx) {
                redisFree(c->ctx);
                c->ctx = NULL;
        }
}

/* Runs an AUTH or SELECT right after connecting; fails the connection if refused. */
static int setup_command(struct redis_client *c, char err[REDIS_ERR_MAX], const char *fmt, const char *arg)
{
        redisReply *reply = redisCommand(c->ctx, fmt, arg);
        int ok = reply && reply->type != REDIS_REPLY_ERROR;
        if (!ok)
                snprintf(err, REDIS_ERR_MAX, "redis unavailable: %s refused",
                         strncmp(fmt, "AUTH", 4) ? "SELECT" : "AUTH");
        if (reply)
                freeReplyObject(reply);
        return ok ? 0 : -ENOTCONN;
}

static long long monotonic_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO: no system call */
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An idle connection that is readable or hung up was closed by Redis (a restart, a timeout):
 * drop it before sending, rather than retrying a command that might have run. A connection
 * that answered within the last few milliseconds (the previous command of the same request)
 * is not checked again. */
static bool idle_connection_is_dead(struct redis_client *c)
{
        if (monotonic_ms() - c->last_reply_ms < 5)
                return false;
        struct pollfd p = {.fd = c->ctx->fd, .events = POLLIN | POLLRDHUP};
        return poll(&p, 1, 0) != 0;
}

static int ensure_connected(struct redis_client *c, char err[REDIS_ERR_MAX])
{
        if (c->ctx && idle_connection_is_dead(c))
                drop_connection(c);
        if (c->ctx)
                return 0;
        if (c->unix_path[0])
                c->ctx = redisConnectUnixWithTimeout(c->unix_path, c->timeout);
        else
                c->ctx = redisConnectWithTimeout(c->host, c->port, c->timeout);
        if (!c->ctx || c->ctx->err) {
                snprintf(err, REDIS_ERR_MAX, "redis unavailable: %s",
                         c->ctx ? c->ctx->errstr : "out of memory");
                drop_connection(c);
                return -ENOTCONN;
        }
        redisSetTimeout(c->ctx, c->timeout);
        /* hiredis does not ask for close-on-exec; nothing a worker starts may inherit it. */
        fcntl(c->ctx->fd, F_SETFD, FD_CLOEXEC);
        int r = 0;
        if (c->password[0])
                r = setup_command(c, err, "AUTH %s", c->password);
        if (r == 0 && c->db) {
                char db[16];
                snprintf(db, sizeof db, "%d", c->db);
                r = setup_command(c, err, "SELECT %s", db);
        }
        if (r < 0)
                drop_connection(c);
        return r;
}

/* Classifies a reply: NULL means the connection broke; an error reply is Redis refusing. */
static int check_reply(struct redis_client *c, redisReply *reply, redisReply **ret_reply,
                       char err[REDIS_ERR_MAX])
{
        if (!reply) {
                snprintf(err, REDIS_ERR_MAX, "redis unavailable: %s",
                         c->ctx->errstr[0] ? c->ctx->errstr : "connection lost");
                drop_connection(c);
                return -ENOTCONN;
        }
        c->last_reply_ms = monotonic_ms();
        if (reply->type == REDIS_REPLY_ERROR) {
                snprintf(err, REDIS_ERR_MAX, "redis: %s", reply->str);
                int r = strncmp(reply->str, "NOSCRIPT", 8) == 0 ? -ENOENT : -EPROTO;
                freeReplyObject(reply);
                return r;
        }
        *ret_reply = reply;
        return 0;
}

/* The reply read ahead for exactly this command, if there is one; any other command drops
 * it (it may change what the read-ahead saw). */
static bool take_prefetched(struct redis_client *c, const char *cmd, int len, redisReply **ret_reply)
{
        bool same = c->prefetched && len == c->prefetch_len && memcmp(cmd, c->prefetch_cmd, (size_t)len) == 0;
        if (same) {
                *ret_reply = c->prefetched;
                c->prefetched = NULL;
        }
        if (!c->prefetch_pending)
                forget_prefetch(c);
        return same;
}

/* Sends a formatted command (with a prefetch appended before it, in the same write) and
 * reads its reply. */
static int run_formatted(struct redis_client *c, const char *cmd, int len, redisReply **ret_reply,
                         char err[REDIS_ERR_MAX])
{
        redisReply *reply = NULL;
        if (take_prefetched(c, cmd, len, &reply))
                return check_reply(c, reply, ret_reply, err);
        int r = ensure_connected(c, err);
        if (r < 0)
                return r;
        if (redisAppendFormattedCommand(c->ctx, cmd, (size_t)len) != REDIS_OK)
                return check_reply(c, NULL, ret_reply, err);
        if (c->prefetch_pending) {
                c->prefetch_pending = false;
                if (redisGetReply(c->ctx, (void **)&c->prefetched) != REDIS_OK)
                        return check_reply(c, NULL, ret_reply, err);
        }
        if (redisGetReply(c->ctx, (void **)&reply) != REDIS_OK)
                reply = NULL;
        return check_reply(c, reply, ret_reply, err);
}

int redis_client_argv(struct redis_client *c, int argc, const char **argv, const size_t *lens,
                      redisReply **ret_reply, char err[REDIS_ERR_MAX])
{
        char *cmd = NULL;
        long long len = redisFormatCommandArgv(&cmd, argc, argv, lens);
        if (len < 0 || len > INT_MAX) {
                redisFreeCommand(cmd);
                snprintf(err, REDIS_ERR_MAX, "redis: cannot format a command");
                return -ENOMEM;
        }
        int r = run_formatted(c, cmd, (int)len, ret_reply, err);
        redisFreeCommand(cmd);
        return r;
}

int redis_client_cmd(struct redis_client *c, redisReply **ret_reply, char err[REDIS_ERR_MAX], const char *fmt,
                     ...)
{
        char *cmd = NULL;
        va_list ap;
        va_start(ap, fmt);
        int len = redisvFormatCommand(&cmd, fmt, ap);
        va_end(ap);
        if (len < 0) {
                snprintf(err, REDIS_ERR_MAX, "redis: cannot format a command");
                return -ENOMEM;
        }
        int r = run_formatted(c, cmd, len, ret_reply, err);
        redisFreeCommand(cmd);
        return r;
}

void redis_client_prefetch(struct redis_client *c, const char *fmt, ...)
{
        char err[REDIS_ERR_MAX];
        if (!c)
                return;
        forget_prefetch(c);
        if (ensure_connected(c, err) < 0)
                return;
        char *cmd = NULL;
        va_list ap;
        va_start(ap, fmt);
        int len = redisvFormatCommand(&cmd, fmt, ap);
        va_end(ap);
        if (len < 0)
                return;
        if (redisAppendFormattedCommand(c->ctx, cmd, (size_t)len) != REDIS_OK) {
                redisFreeCommand(cmd);
                drop_connection(c);
                return;
        }
        c->prefetch_cmd = cmd;
        c->prefetch_len = len;
        c->prefetch_pending = true;
}

void redis_client_prefetch_end(struct redis_client *c)
{
        if (!c)
                return;
        /* A prefetch never sent would be read as the next request's: the connection goes. */
        if (c->prefetch_pending)
                drop_connection(c);
        forget_prefetch(c);
}

/* SHA-1 of every script, computed once: EVALSHA sends 40 bytes instead of the script. */
#define MAX_SCRIPTS 16
static struct {
        const struct redis_script *script;
        char sha[41];
} script_shas[MAX_SCRIPTS];
static pthread_once_t script_shas_once = PTHREAD_ONCE_INIT;

static void script_shas_init(void)
{
        const struct redis_script *all[] = {
            &redis_script_auth_rate,      &redis_script_quota_reserve,    &redis_script_quota_release,
            &redis_script_sandbox_store,  &redis_script_sandbox_stopping, &redis_script_sandbox_settle_claim,
            &redis_script_sandbox_settle, &redis_script_sandbox_reserve,  &redis_script_sandbox_update,
            &redis_script_auth_refund};
        _Static_assert(ELEMENTSOF(all) <= MAX_SCRIPTS, "script_shas has no room for every script");
        for (size_t i = 0; i < ELEMENTSOF(all); i++) {
                unsigned char md[SHA_DIGEST_LENGTH];
                SHA1((const unsigned char *)all[i]->body, strlen(all[i]->body), md);
                script_shas[i].script = all[i];
                for (int j = 0; j < SHA_DIGEST_LENGTH; j++)
                        snprintf(script_shas[i].sha + 2 * j, 3, "%02x", md[j]);
        }
}

static const char *script_sha(const struct redis_script *s)
{
        pthread_once(&script_shas_once, script_shas_init);
        for (size_t i = 0; i < MAX_SCRIPTS; i++)
                if (script_shas[i].script == s)
                        return script_shas[i].sha;
        return NULL;
}

int redis_client_script(struct redis_client *c, const struct redis_script *script, int nkeys, int nargs,
                        const char **args, redisReply **ret_reply, char err[REDIS_ERR_MAX])
{
        enum { MAX_ARGS = 64 };
        if (nargs > MAX_ARGS - 3 || nkeys > nargs) {
                snprintf(err, REDIS_ERR_MAX, "script %s: too many arguments (%d)", script->name, nargs);
                return -E2BIG;
        }
        const char *argv[MAX_ARGS];
        char nk[16];
        snprintf(nk, sizeof nk, "%d", nkeys);
        /* A script missing from script_shas_init is sent whole each time rather than not at all. */
        const char *sha = script_sha(script);
        argv[0] = sha ? "EVALSHA" : "EVAL";
        argv[1] = sha ? sha : script->body;
        argv[2] = nk;
        for (int i = 0; i < nargs; i++)
                argv[3 + i] = args[i];
        int r = redis_client_argv(c, 3 + nargs, argv, NULL, ret_reply, err);
        if (r != -ENOENT)
                return r;
        /* First use on this Redis (or after a restart that lost its script cache). */
        argv[0] = "EVAL";
        argv[1] = script->body;
        return redis_client_argv(c, 3 + nargs, argv, NULL, ret_reply, err);
}

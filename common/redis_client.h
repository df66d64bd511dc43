/* The Redis adapter: one connection per thread, reconnected on the next call after any
 * connection error, and hiredis's errors turned into ours (-errno plus a reason). */
#pragma once

#include <hiredis/hiredis.h>
#include <stddef.h>

#define REDIS_ERR_MAX 256

struct redis_client;

/* A Lua script run with EVALSHA (falling back to loading it once on NOSCRIPT). */
struct redis_script {
        const char *name;
        const char *body;
};

extern const struct redis_script redis_script_auth_rate;
extern const struct redis_script redis_script_auth_refund;
extern const struct redis_script redis_script_quota_reserve;
extern const struct redis_script redis_script_quota_release;
extern const struct redis_script redis_script_sandbox_store;
extern const struct redis_script redis_script_sandbox_update;
extern const struct redis_script redis_script_sandbox_stopping;
extern const struct redis_script redis_script_sandbox_reserve;
extern const struct redis_script redis_script_sandbox_settle_claim;
extern const struct redis_script redis_script_sandbox_settle;

/* url: "unix:/path/to/sock" or "redis://[:password@]host[:port][/db]". Does not connect yet. */
int redis_client_new(const char *url, int timeout_ms, struct redis_client **ret_client,
                     char err[REDIS_ERR_MAX]);
void redis_client_free(struct redis_client *c);
void redis_client_freep(struct redis_client **c);

/* Runs one command. Returns 0 with *ret_reply set (never a REDIS_REPLY_ERROR), -ENOTCONN when
 * Redis cannot be reached (the caller answers 503), -EPROTO when Redis answered an error. */
int redis_client_argv(struct redis_client *c, int argc, const char **argv, const size_t *lens,
                      redisReply **ret_reply, char err[REDIS_ERR_MAX]);
int redis_client_cmd(struct redis_client *c, redisReply **ret_reply, char err[REDIS_ERR_MAX], const char *fmt,
                     ...);
/* Sends a read-only command ahead, in the same write as the next command (one round trip for
 * both), and keeps its reply for the next command that is the very same: a request that will
 * read a record asks for it together with its authentication. Any other command drops the
 * kept reply, as does redis_client_prefetch_end, called when a request is done. Best effort:
 * on any trouble nothing is kept, and the command later runs as usual. */
void redis_client_prefetch(struct redis_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void redis_client_prefetch_end(struct redis_client *c);

/* Runs a script. args holds the nkeys key names followed by the script's other arguments;
 * nargs counts all of them (so ELEMENTSOF(args), keys included). */
int redis_client_script(struct redis_client *c, const struct redis_script *script, int nkeys, int nargs,
                        const char **args, redisReply **ret_reply, char err[REDIS_ERR_MAX]);

static inline void redis_reply_freep(redisReply **r)
{
        if (*r)
                freeReplyObject(*r);
}
#define _cleanup_reply_ __attribute__((cleanup(redis_reply_freep)))
#define _cleanup_redis_ __attribute__((cleanup(redis_client_freep)))

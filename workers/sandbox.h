/* Sandboxes as the API sees them: create, find, list, destroy, lifetime, pause and resume,
 * metrics and running commands, with their records in Redis.
 *
 * Redis layout:  sandbox:<id>                 hash: id, key_id, node_id, status, image,
 *                                             created_at, end_at (ms), cpu_millis, memory_mb,
 *                                             disk_mb, metadata (JSON), auto_resume, pid,
 *                                             paused_at, paused_ms, uid_slot; claimed_at
 *                                             (taken off the pool), stopping_at (a delete
 *                                             stops it), status_before (its status before
 *                                             "deleting"), settling_at (being settled)
 *                sandboxes:key:<key_id>       zset of ids by creation time in us (listing)
 *                sandboxes:node:<node_id>     zset of ids by end_at (the node's lifetime sweep)
 *                node:<node_id>:sandboxes     count of sandboxes on the node (capacity)
 *                node:<node_id>:uid_slots     bitmap of the host uid ranges in use
 *                pool:<node_id>               list of ready sandboxes, "<id>.<pid>.<uid slot>"
 * A sandbox's node is always in its record, so any node can find where it runs. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "agent.h"
#include "config.h"
#include "redis_client.h"

#define SANDBOX_ERR_MAX      256
#define SANDBOX_ID_MAX       32
#define SANDBOX_METADATA_MAX 8000 /* bytes of metadata as JSON */

struct sandbox_ctx {
        const struct warren_config *cfg;
        const char *node_id;
        struct redis_client *redis;
        pid_t pool_keeper;    /* told (SIGUSR1) when a create takes from the warm pool; 0: nobody */
        bool reaps_sandboxes; /* the caller is the master: sandboxes it starts are its children */
};

struct sandbox_spec {
        const char *image;
        long long timeout_ms;
        long long cpu_millis;
        long long memory_mb;
        long long disk_mb;
        json_t *metadata; /* object of strings, may be NULL */
        json_t *env;      /* object of strings, may be NULL */
        json_t *network;  /* egress policy (network_policy_parse), NULL: the default */
        bool auto_resume;
};

/* Errors: -EINVAL (bad spec, err says why), -EDQUOT (the key's sandbox quota), -EBUSY (the
 * node is full), -ENOTCONN (Redis away), -ENOENT (no such sandbox for this key), -EAGAIN
 * (paused and not auto-resuming), -EINPROGRESS (destroy: the runtime did not stop yet; the
 * node keeps trying), others (the runtime failed; err says which step). */
int sandbox_create(struct sandbox_ctx *sc, const char *key_id, const struct sandbox_spec *spec,
                   json_t **ret_info, char err[SANDBOX_ERR_MAX]);
/* Asks Redis for the sandbox's record ahead, together with the next command (the request's
 * authentication): the record is then read with no round trip of its own. */
void sandbox_prefetch(struct redis_client *rc, const char *id);
int sandbox_get(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_info,
                char err[SANDBOX_ERR_MAX]);
/* Lists the key's sandboxes oldest first, from after cursor (NULL: the start), at most limit,
 * keeping those whose status is state (NULL: any) and whose metadata holds every pair of
 * filter (NULL: no filter). */
int sandbox_list(struct sandbox_ctx *sc, const char *key_id, const char *state, json_t *filter,
                 const char *cursor, int limit, json_t **ret_page, char err[SANDBOX_ERR_MAX]);
/* Replaces the sandbox's egress policy (network_policy_parse) at once, connections open
 * included. */
int sandbox_set_network(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t *policy,
                        json_t **ret_info, char err[SANDBOX_ERR_MAX]);
/* Where nginx hands a raw file transfer to the sandbox's agent directly: the path of its
 * files.sock. Negative when the worker must carry the transfer instead: the sandbox is not
 * running on this node (paused, elsewhere) or was started before agents took files. token:
 * what the agent asks of each request on that socket. */
int sandbox_files_socket(struct sandbox_ctx *sc, const char *key_id, const char *id, char *buf, size_t size,
                         char token[65], char err[SANDBOX_ERR_MAX]);
/* The sandbox's address on this node's bridge; -EREMOTE if it runs on another node. */
int sandbox_address(struct sandbox_ctx *sc, const char *key_id, const char *id, char address[16],
                    char err[SANDBOX_ERR_MAX]);
int sandbox_destroy(struct sandbox_ctx *sc, const char *key_id, const char *id, char err[SANDBOX_ERR_MAX]);
int sandbox_set_timeout(struct sandbox_ctx *sc, const char *key_id, const char *id, long long timeout_ms,
                        json_t **ret_info, char err[SANDBOX_ERR_MAX]);
int sandbox_pause(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_info,
                  char err[SANDBOX_ERR_MAX]);
int sandbox_resume(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_info,
                   char err[SANDBOX_ERR_MAX]);
int sandbox_metrics(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_metrics,
                    char err[SANDBOX_ERR_MAX]);
/* Runs request in the sandbox (see agent_exec), waking it first if it is paused and was
 * created with auto_resume. */
int sandbox_exec(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t *request,
                 const char *stdin_data, size_t stdin_len, size_t max_output, int deadline_ms,
                 const struct agent_stream *stream, struct agent_result *ret, char err[SANDBOX_ERR_MAX]);

/* The node's sweep: destroys this node's sandboxes whose lifetime has passed and those whose
 * runtime has died, and stops whatever runtime is on the host with no record at all. Returns
 * how many it destroyed or stopped. */
int sandbox_sweep(struct sandbox_ctx *sc);

/* The warm pool (run by the master): starts one sandbox if the node's pool holds fewer than
 * warm_pool_size (and stops extras beyond it). Returns how many are still missing, or -errno
 * with err set. */
int sandbox_pool_fill(struct sandbox_ctx *sc, char err[SANDBOX_ERR_MAX]);
/* Stops up to max pooled sandboxes; returns how many. */
int sandbox_pool_drain(struct sandbox_ctx *sc, int max);
/* Stops pooled sandboxes that are no longer offered (a process taking one died before it
 * was anybody's); returns how many. */
int sandbox_pool_audit(struct sandbox_ctx *sc);

/* Route handlers, one file per API group (api_<group>.c), and the route table. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "request.h"
#include "router.h"
#include "sandbox.h"

extern const struct route routes[];
extern const size_t routes_count;

#define WARREN_VERSION "0.1.0"

int api_health_get(struct http_ctx *ctx);
int api_usage_get(struct http_ctx *ctx);
int api_keys_create(struct http_ctx *ctx);
int api_keys_list(struct http_ctx *ctx);
int api_keys_get(struct http_ctx *ctx);
int api_keys_revoke(struct http_ctx *ctx);

struct key_spec;
struct warren_config;
/* Reads a POST /v1/keys body into a key_spec; the node's defaults fill what is absent.
 * Returns 0, or -EINVAL with a message naming the field. (Exposed for the fuzzer.) */
int api_keys_spec_from_json(json_t *body, const struct warren_config *cfg, struct key_spec *spec,
                            char err[256]);

int api_sandboxes_create(struct http_ctx *ctx);
int api_sandboxes_list(struct http_ctx *ctx);
int api_sandboxes_get(struct http_ctx *ctx);
int api_sandboxes_delete(struct http_ctx *ctx);
int api_sandboxes_timeout(struct http_ctx *ctx);
int api_sandboxes_network(struct http_ctx *ctx);
int api_ports_expose(struct http_ctx *ctx);
int api_ports_list(struct http_ctx *ctx);
int api_ports_close(struct http_ctx *ctx);
int api_previews_auth(struct http_ctx *ctx);
int api_previews_route(struct http_ctx *ctx);
int api_fs_list(struct http_ctx *ctx);
int api_fs_stat(struct http_ctx *ctx);
int api_fs_info(struct http_ctx *ctx);
int api_fs_mkdir(struct http_ctx *ctx);
int api_fs_move(struct http_ctx *ctx);
int api_fs_remove(struct http_ctx *ctx);
int api_fs_chmod(struct http_ctx *ctx);
int api_fs_read(struct http_ctx *ctx);
int api_fs_read_bytes(struct http_ctx *ctx);
int api_fs_write(struct http_ctx *ctx);
int api_fs_write_bytes(struct http_ctx *ctx);
int api_fs_download(struct http_ctx *ctx);
int api_fs_upload(struct http_ctx *ctx);
int api_fs_raw_route(struct http_ctx *ctx);
int api_fs_watch(struct http_ctx *ctx);
int api_fs_export(struct http_ctx *ctx);
int api_git_clone(struct http_ctx *ctx);
int api_fs_import(struct http_ctx *ctx);
int api_fs_watch_poll(struct http_ctx *ctx);
int api_fs_watch_stop(struct http_ctx *ctx);
int api_sandboxes_pause(struct http_ctx *ctx);
int api_sandboxes_resume(struct http_ctx *ctx);
int api_sandboxes_metrics(struct http_ctx *ctx);
int api_sandboxes_shell(struct http_ctx *ctx);
int api_sandboxes_run(struct http_ctx *ctx);
int api_sandboxes_run_stream(struct http_ctx *ctx);
/* The sandbox layer as a request's worker sees it: its Redis connection, and the master
 * (the worker's parent) as the keeper of the warm pool. */
struct sandbox_ctx api_sandbox_ctx(struct http_ctx *ctx);

/* Answers an error from workers/sandbox.c: 404, 400, 429 (quota), 409 (paused), 503 (node
 * full or Redis away, with Retry-After), else 500 with the reason. */
int api_respond_sandbox_error(struct http_ctx *ctx, int r, const char *err);
/* Sends req (consumed) to the sandbox named in the path, through its agent (sandbox_exec):
 * 1 when the agent answered (*res filled; res->error_code set if it refused); 0 once an
 * error has been answered (the sandbox is missing, paused or not answering); < 0, with
 * ctx->error set, when a stream to the client was already open and its caller ends it. */
struct agent_result;
struct agent_stream;
int api_agent_call(struct http_ctx *ctx, json_t *req, const char *stdin_data, size_t stdin_len,
                   size_t max_output, int wait_ms, const struct agent_stream *stream,
                   struct agent_result *res);
/* An env object: at most 256 variables with valid names and string values of <= 32 KiB. */
int api_check_env(json_t *env, char err[256]);

/* Output bytes as a JSON string: what is not UTF-8 becomes U+FFFD. */
json_t *api_text_json(const char *buf, size_t len);
/* A command line: a string of 1 to 128 KiB - 1 bytes (one argv string) with no NUL. */
int api_check_cmd(json_t *cmd, char err[256]);
/* The optional user ("user" or "root", default "user") and cwd (an absolute path) of a
 * request that runs something. */
int api_check_user_and_cwd(json_t *body, const char **ret_user, const char **ret_cwd, char err[256]);

int api_commands_start(struct http_ctx *ctx);
int api_commands_list(struct http_ctx *ctx);
int api_commands_logs(struct http_ctx *ctx);
int api_commands_kill(struct http_ctx *ctx);
int api_pty_start(struct http_ctx *ctx);
int api_pty_input(struct http_ctx *ctx);
int api_pty_output(struct http_ctx *ctx);
int api_pty_resize(struct http_ctx *ctx);
int api_pty_kill(struct http_ctx *ctx);

int api_contexts_create(struct http_ctx *ctx);
int api_contexts_list(struct http_ctx *ctx);
int api_contexts_restart(struct http_ctx *ctx);
int api_contexts_interrupt(struct http_ctx *ctx);
int api_contexts_delete(struct http_ctx *ctx);
/* Anything that runs in a sandbox holds a request thread while it runs; a worker lets at
 * most three quarters of its threads do so, so the rest of the API always has threads. */
struct warren_config;
bool api_command_slot_take(const struct warren_config *cfg);
void api_command_slot_give(void);
/* Runs the body's code in its context_id, or in the language's default context, answering
 * an Execution (or, streamed, server-sent events). */
int api_context_run(struct http_ctx *ctx, const char *language, json_t *code, json_t *env,
                    long long timeout_ms, bool streamed);

/* Answers a failed store call: 503 when Redis is away, 404 for -ENOENT, else 500. */
int api_respond_store_error(struct http_ctx *ctx, int r, const char *err);

/* Stateful interpreter contexts (warren-init's side).
 *
 * A context is a kernel process (kernels/ in the source tree, /opt/warren/kernels in the
 * sandbox) that keeps a language's state between runs. warren-init starts it under a
 * shepherd with a fourth pipe, its fd 3, for events; a run writes the cell to the kernel's
 * stdin (a JSON header line {"len", "env"} and the code) and relays, on the host connection
 * that asked, the kernel's stdout and stderr (STDOUT, STDERR frames) and its events (EVENT
 * frames: result, display, error, file) until the kernel says "done"; the answer is then a
 * RESULT {status, execution_count, duration_ms}. One run at a time per context.
 *
 * A run past its timeout is interrupted (SIGINT: the kernel keeps its state); a kernel
 * that does not finish the cell within CTX_INTERRUPT_GRACE_MS after that is killed. A
 * kernel that dies is reported (ERROR context_died) and stays listed as dead until it is
 * restarted or deleted.
 *
 * Requests, answered with RESULT or ERROR (bad_request, not_found, busy, context_died):
 *   ctx_create    {id?, language, argv, env?, cwd?, user?} -> {id, language, pid}
 *                 (an existing id is answered as it is: default contexts are made once)
 *   ctx_run       {id, code, env?, timeout_ms?, kill_on_disconnect?} -> the relay above
 *   ctx_list      {}   -> {contexts: [{id, language, pid, status, execution_count}]}
 *   ctx_interrupt {id} -> {}
 *   ctx_restart   {id} -> {id, language, pid}
 *   ctx_delete    {id} -> {}                                                           */
#pragma once

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

#define CONTEXTS_MAX           64
#define CTX_INTERRUPT_GRACE_MS 3000

/* Answers (or, for ctx_run, takes over) the connection; false if op is not a context op. */
bool contexts_handle(int conn, const char *op, json_t *req);

int contexts_poll_fds(struct pollfd *pfd, int max);
void contexts_service(void);
bool contexts_reaped(pid_t pid, int status);
void contexts_check(long long now_ms);
long long contexts_next_deadline(void);

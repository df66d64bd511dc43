/* Background commands and terminals (warren-init's side).
 *
 * A job is a command or a pty that outlives the connection that started it. Its output is
 * kept here, in the sandbox (and in the sandbox's memory limit), so any worker on any node
 * can follow it: a command keeps the last JOB_LOG_MAX bytes of each stream, addressed by
 * absolute offsets, so a client reads on from where it stopped and learns how much was
 * dropped; a pty's output waits in a buffer until it is read (drained). A job's record stays
 * after it ends, until the sandbox does (or until JOBS_MAX newer ones push the oldest ended
 * one out).
 *
 * Requests (JSON, see protocol.h), each answered with a RESULT frame or an ERROR frame whose
 * code is bad_request, not_found, not_running, busy, bad_cwd, bad_command or internal:
 *   job_start  {argv, env?, cwd?, user?, timeout_ms?, tty?, cols?, rows?, label?} -> {id, pid}
 *   job_list   {tty?}                          -> {jobs: [{id, pid, label, status, exit_code?, ...}]}
 *   job_logs   {id, stdout_offset?, stderr_offset?, max_bytes?}
 *              -> STDOUT and STDERR frames, then {status, exit_code?, stdout_offset,
 *                 stderr_offset, stdout_dropped, stderr_dropped}
 *   job_kill   {id}                            -> {status}
 *   pty_input  {id, data_b64}                  -> {written}
 *   pty_output {id}                            -> STDOUT frames (the drained buffer), then
 *                                                 {alive, exit_code?, dropped}
 *   pty_resize {id, cols, rows}                -> {}                                      */
#pragma once

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/types.h>

#define JOBS_MAX    256
#define JOB_LOG_MAX (1u << 20) /* per stream of a command, and a pty's unread output */

/* Answers one request on conn; false if op is not a job request. */
bool jobs_handle(int conn, const char *op, json_t *req);

/* Adds the fds the jobs wait on (at most max); returns how many. */
int jobs_poll_fds(struct pollfd *pfd, int max);
/* Reads what the jobs' processes wrote, writes pending pty input. Never blocks. */
void jobs_service(void);
/* Takes a reaped child's status if it was a job's shepherd; false otherwise. */
bool jobs_reaped(pid_t pid, int status);
/* Kills jobs whose timeout passed. */
void jobs_check(long long now_ms);
/* The nearest job deadline (monotonic ms), or 0 when none. */
long long jobs_next_deadline(void);

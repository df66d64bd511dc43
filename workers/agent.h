/* The host side of the agent protocol: warrend asking a sandbox's warren-init to run
 * something. Every answer is untrusted: frames are bounded, output is capped, and every
 * wait has a deadline. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define AGENT_ERR_MAX 256

struct agent_result {
        char *out, *err; /* captured output (NUL-terminated), owned */
        size_t out_len, err_len;
        bool truncated, timed_out;
        int exit_code; /* -1 when the process never ran */
        int signal;    /* 0 unless killed by a signal */
        long long duration_ms;
        char error_code[32]; /* set when the agent refused: bad_cwd, bad_command, … */
        json_t *result;      /* the answer to a request that runs nothing new (RESULT), owned */
        json_t *events;      /* a context's events (EVENT frames) in order, owned; NULL if none */
        size_t events_bytes;
        bool started; /* the agent said STARTED: the work began */
        char error[AGENT_ERR_MAX];
};

/* For a caller that passes output on as it comes (a stream to a client): on_frame sees every
 * STARTED, STDOUT, STDERR and EVENT frame as it arrives (they are also kept in the result, up to
 * max_output), on_idle is called after idle_ms without one. Either returning < 0 (the client
 * went away) ends the call with -ECONNABORTED and closes the session. */
struct agent_stream {
        int (*on_frame)(void *arg, int type, const char *data, size_t len);
        int (*on_idle)(void *arg);
        int idle_ms;
        void *arg;
        /* Input that streams (an upload): read_input fills up to n bytes and returns the
         * count, 0 at its end, < 0 on failure (the call ends with -EIO). Called only when
         * what was read before has gone out, so one chunk is held at a time. */
        long (*read_input)(void *arg, char *buf, size_t n);
};

/* Runs request ({"op":"exec", argv, env, cwd, user, timeout_ms, max_output}, or any other
 * op: see init.c and init_jobs.h) in the sandbox whose agent listens on sock_path, feeding
 * stdin_data (if any) to the process. Output frames fill out and err; the session ends with
 * EXIT, ERROR or RESULT (then in result). Waits at most deadline_ms in all. Returns 0 with *ret filled (the
 * process may have failed: see exit_code and error_code), -ETIMEDOUT, -ECONNREFUSED (no agent), -EPROTO (the
 * agent misbehaved), or -errno; err says what happened. */
int agent_exec(const char *sock_path, json_t *request, const char *stdin_data, size_t stdin_len,
               size_t max_output, int deadline_ms, const struct agent_stream *stream,
               struct agent_result *ret, char err[AGENT_ERR_MAX]);
void agent_result_clear(struct agent_result *r);

/* Asks the agent whether it is alive. */
int agent_ping(const char *sock_path, int timeout_ms, char err[AGENT_ERR_MAX]);

/* Gives a sandbox started ahead of time (the warm pool) the environment its commands get,
 * replacing the one it started with. Also proves the agent alive. */
int agent_configure(const char *sock_path, json_t *env, int timeout_ms, char err[AGENT_ERR_MAX]);

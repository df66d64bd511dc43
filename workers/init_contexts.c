/* Stateful interpreter contexts; see init_contexts.h. */
#include "init_contexts.h"

#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "init_files.h"
#include "init_spawn.h"
#include "init_util.h"
#include "protocol.h"

#define READ_CHUNK 65536
#define EVENT_MAX  (8u << 20) /* one event line (a large figure) at most */
#define CELL_MAX   (16u << 20)
#define QUEUE_MAX  32 /* runs waiting for a busy context, as a notebook queues cells */

enum ctx_state { CTX_IDLE, CTX_RUNNING, CTX_DEAD };

struct context {
        bool used;
        char id[32];
        char language[16];
        json_t *spec; /* the create request: how to start it again */
        struct spawned sp;
        enum ctx_state state;
        int executions;
        /* the run in progress */
        int conn; /* the host connection it answers on; -1 once that went away */
        bool kill_on_disconnect;
        char *in_buf; /* the cell, as the kernel's stdin takes it */
        size_t in_len, in_off;
        char *ev_buf; /* a partial event line */
        size_t ev_len;
        bool ev_skipping; /* inside a line too long to keep, until its newline */
        long long deadline_ms, interrupted_ms;
        /* runs waiting their turn: their connections and requests */
        int queued_conn[QUEUE_MAX];
        json_t *queued_req[QUEUE_MAX];
        int queued;
        struct file_snapshot files; /* under the kernel's working directory, as the run began */
        char cwd[4096];
};

static struct context contexts[CONTEXTS_MAX];
static unsigned next_id;

static void close_kernel_fds(struct context *c)
{
        init_close_fd(&c->sp.in_fd);
        init_close_fd(&c->sp.out_fd);
        init_close_fd(&c->sp.err_fd);
        init_close_fd(&c->sp.ev_fd);
}

static void run_clear(struct context *c)
{
        files_snapshot_free(&c->files);
        c->cwd[0] = 0;
        init_close_fd(&c->conn);
        free(c->in_buf);
        free(c->ev_buf);
        c->in_buf = c->ev_buf = NULL;
        c->in_len = c->in_off = c->ev_len = 0;
        c->ev_skipping = false;
        c->deadline_ms = c->interrupted_ms = 0;
        c->kill_on_disconnect = false;
}

/* SIGINT to the kernel's process group, as a terminal's ^C: what the cell started in the
 * foreground stops too. The kernel leads its group (its session is its own). */
static void interrupt(struct context *c)
{
        if (c->sp.pid > 1)
                kill(-c->sp.pid, SIGINT);
}

static struct context *ctx_find(const char *id)
{
        for (int i = 0; id && i < CONTEXTS_MAX; i++)
                if (contexts[i].used && strcmp(contexts[i].id, id) == 0)
                        return &contexts[i];
        return NULL;
}

static json_t *ctx_json(const struct context *c)
{
        static const char *names[] = {"idle", "running", "dead"};
        return json_pack("{s:s, s:s, s:i, s:s, s:i}", "id", c->id, "language", c->language, "pid",
                         (int)c->sp.pid, "status", names[c->state], "execution_count", c->executions);
}

/* Starts (or starts again) the kernel from c->spec. */
static int kernel_start(struct context *c, const char **code, char msg[256])
{
        const char *user = json_string_value(json_object_get(c->spec, "user"));
        struct spawn_spec spec = {
            .argv = json_object_get(c->spec, "argv"),
            .env = json_object_get(c->spec, "env"),
            .cwd = json_string_value(json_object_get(c->spec, "cwd")),
            .root = user && strcmp(user, "root") == 0,
            .events = true,
        };
        int r = spawn_start(&spec, &c->sp, code, msg);
        if (r < 0)
                return r;
        c->state = CTX_IDLE;
        c->executions = 0;
        c->conn = -1;
        return 0;
}

/* Ends every waiting run with an error: the context is gone. */
static void queue_fail(struct context *c, const char *why)
{
        for (int i = 0; i < c->queued; i++) {
                frame_send_error(c->queued_conn[i], "context_died", "%s", why);
                close(c->queued_conn[i]);
                json_decref(c->queued_req[i]);
        }
        c->queued = 0;
}

/* The kernel is gone (or going): tell the run in progress, if any, and keep the context as
 * dead until it is restarted or deleted. */
static void kernel_lost(struct context *c, const char *why, int exit_code)
{
        if (c->conn >= 0) {
                char msg[256];
                snprintf(msg, sizeof msg, "the %s context died: %s; restart it to go on", c->language, why);
                frame_send_json(c->conn, FRAME_ERROR,
                                json_pack("{s:s, s:s, s:i}", "error", msg, "code", "context_died",
                                          "exit_code", exit_code));
        }
        queue_fail(c, "the context died before this run's turn; restart it to go on");
        run_clear(c);
        close_kernel_fds(c);
        c->state = CTX_DEAD;
}

static void ctx_free(struct context *c)
{
        queue_fail(c, "the context was deleted");
        if (c->state != CTX_DEAD)
                spawn_kill(c->sp.shepherd);
        run_clear(c);
        close_kernel_fds(c);
        json_decref(c->spec);
        *c = (struct context){.conn = -1};
}

/* --- requests -------------------------------------------------------------------------- */

static void do_create(int conn, json_t *req)
{
        const char *id = json_string_value(json_object_get(req, "id"));
        const char *language = json_string_value(json_object_get(req, "language"));
        struct context *c = ctx_find(id);
        if (c) {
                frame_send_json(conn, FRAME_RESULT, ctx_json(c));
                return;
        }
        if (!language || !spawn_argv_is_valid(json_object_get(req, "argv"))) {
                frame_send_error(conn, "bad_request", "a context needs a language and an argv");
                return;
        }
        for (int i = 0; i < CONTEXTS_MAX && !c; i++)
                if (!contexts[i].used)
                        c = &contexts[i];
        if (!c) {
                frame_send_error(conn, "busy", "this sandbox has %d contexts already", CONTEXTS_MAX);
                return;
        }
        *c = (struct context){.used = true, .conn = -1, .spec = json_deep_copy(req)};
        if (id)
                snprintf(c->id, sizeof c->id, "%s", id);
        else
                snprintf(c->id, sizeof c->id, "k%u", ++next_id);
        snprintf(c->language, sizeof c->language, "%s", language);
        const char *code;
        char msg[256];
        if (kernel_start(c, &code, msg) < 0) {
                json_decref(c->spec);
                *c = (struct context){.conn = -1};
                frame_send_error(conn, code, "start the %s kernel: %s", language, msg);
                return;
        }
        frame_send_json(conn, FRAME_RESULT, ctx_json(c));
}

static struct context *ctx_of(int conn, json_t *req)
{
        struct context *c = ctx_find(json_string_value(json_object_get(req, "id")));
        if (!c)
                frame_send_error(conn, "not_found", "no context with that id");
        return c;
}

/* Starts a run on an idle context; true if the connection is now the run's. */
static bool start_run(struct context *c, int conn, json_t *req)
{
        json_t *code = json_object_get(req, "code");
        size_t n = json_string_length(code);
        if (!json_is_string(code) || n > CELL_MAX) {
                frame_send_error(conn, "bad_request", "code must be a string of at most %u bytes", CELL_MAX);
                return false;
        }
        json_t *env = json_object_get(req, "env");
        json_t *head =
            json_pack("{s:I, s:o}", "len", (json_int_t)n, "env", env ? json_incref(env) : json_object());
        char *header = head ? json_dumps(head, JSON_COMPACT) : NULL;
        json_decref(head);
        size_t hlen = header ? strlen(header) : 0;
        c->in_buf = header ? malloc(hlen + 1 + n) : NULL;
        if (!c->in_buf) {
                free(header);
                frame_send_error(conn, "internal", "out of memory");
                return false;
        }
        memcpy(c->in_buf, header, hlen);
        c->in_buf[hlen] = '\n';
        memcpy(c->in_buf + hlen + 1, json_string_value(code), n);
        c->in_len = hlen + 1 + n;
        free(header);
        long long timeout = json_integer_value(json_object_get(req, "timeout_ms"));
        c->deadline_ms = timeout > 0 ? init_mono_ms() + timeout : 0;
        c->kill_on_disconnect = json_is_true(json_object_get(req, "kill_on_disconnect"));
        c->conn = conn;
        c->state = CTX_RUNNING;
        /* The kernel's working directory now (a cell may have changed it), and its files. */
        char link[64];
        snprintf(link, sizeof link, "/proc/%d/cwd", (int)c->sp.pid);
        ssize_t n_cwd = readlink(link, c->cwd, sizeof c->cwd - 1);
        c->cwd[n_cwd > 0 ? n_cwd : 0] = 0;
        if (c->cwd[0] == '/')
                files_snapshot(c->cwd, &c->files);
        frame_send_json(conn, FRAME_STARTED, json_pack("{s:i}", "pid", (int)c->sp.pid));
        return true;
}

/* Takes the connection for the run, now or when the context is free; true if it did. */
static bool do_run(int conn, json_t *req)
{
        struct context *c = ctx_of(conn, req);
        if (!c)
                return false;
        if (c->state == CTX_DEAD) {
                frame_send_error(conn, "context_died", "the %s context has died; restart it to go on",
                                 c->language);
                return false;
        }
        if (c->state == CTX_IDLE)
                return start_run(c, conn, req);
        if (c->queued == QUEUE_MAX) {
                frame_send_error(conn, "busy", "%d runs are waiting for this context already", QUEUE_MAX);
                return false;
        }
        c->queued_conn[c->queued] = conn;
        c->queued_req[c->queued++] = json_incref(req);
        return true;
}

/* The next waiting run, if any, once the context is idle. */
static void run_next(struct context *c)
{
        while (c->state == CTX_IDLE && c->queued > 0) {
                int conn = c->queued_conn[0];
                json_t *req = c->queued_req[0];
                c->queued--;
                memmove(c->queued_conn, c->queued_conn + 1, (size_t)c->queued * sizeof *c->queued_conn);
                memmove(c->queued_req, c->queued_req + 1, (size_t)c->queued * sizeof *c->queued_req);
                if (!start_run(c, conn, req))
                        close(conn);
                json_decref(req);
        }
}

static void do_list(int conn, json_t *req)
{
        (void)req;
        json_t *list = json_array();
        for (int i = 0; i < CONTEXTS_MAX; i++)
                if (contexts[i].used)
                        json_array_append_new(list, ctx_json(&contexts[i]));
        frame_send_json(conn, FRAME_RESULT, json_pack("{s:o}", "contexts", list));
}

static void do_interrupt(int conn, json_t *req)
{
        struct context *c = ctx_of(conn, req);
        if (!c)
                return;
        if (c->state == CTX_RUNNING)
                interrupt(c);
        frame_send_json(conn, FRAME_RESULT, ctx_json(c));
}

static void do_restart(int conn, json_t *req)
{
        struct context *c = ctx_of(conn, req);
        if (!c)
                return;
        if (c->state != CTX_DEAD) {
                spawn_kill(c->sp.shepherd); /* its exit is reaped as an orphan's */
                kernel_lost(c, "restarted", 137);
        }
        const char *code;
        char msg[256];
        if (kernel_start(c, &code, msg) < 0) {
                frame_send_error(conn, code, "start the %s kernel again: %s", c->language, msg);
                return;
        }
        frame_send_json(conn, FRAME_RESULT, ctx_json(c));
}

static void do_delete(int conn, json_t *req)
{
        struct context *c = ctx_of(conn, req);
        if (!c)
                return;
        if (c->conn >= 0)
                frame_send_error(c->conn, "context_died", "the context was deleted");
        ctx_free(c);
        frame_send_json(conn, FRAME_RESULT, json_object());
}

bool contexts_handle(int conn, const char *op, json_t *req)
{
        if (strcmp(op, "ctx_run") == 0) {
                if (!do_run(conn, req))
                        close(conn);
                return true;
        }
        static const struct {
                const char *op;
                void (*fn)(int, json_t *);
        } ops[] = {{"ctx_create", do_create},
                   {"ctx_list", do_list},
                   {"ctx_interrupt", do_interrupt},
                   {"ctx_restart", do_restart},
                   {"ctx_delete", do_delete}};
        for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
                if (strcmp(op, ops[i].op) == 0) {
                        ops[i].fn(conn, req);
                        close(conn);
                        return true;
                }
        return false;
}

/* --- relaying a run -------------------------------------------------------------------- */

static void relay(struct context *c, uint8_t type, const char *data, size_t len)
{
        if (c->conn >= 0 && frame_write(c->conn, type, data, len) < 0) {
                init_close_fd(&c->conn); /* the host went away: the cell runs on, unheard */
                if (c->kill_on_disconnect)
                        interrupt(c);
        }
}

/* Reads what a pipe of the kernel has; forwards it during a run, drops it between runs. */
static void pump(struct context *c, int *fd, uint8_t type)
{
        char buf[READ_CHUNK];
        for (int rounds = 0; *fd >= 0 && rounds < 16; rounds++) {
                ssize_t n = init_read_some(fd, buf, sizeof buf);
                if (n <= 0)
                        return;
                if (c->state == CTX_RUNNING)
                        relay(c, type, buf, (size_t)n);
        }
}

static void report_file(void *arg, const char *path, long long size)
{
        struct context *c = arg;
        json_t *ev = json_pack("{s:s, s:s, s:I}", "type", "file", "path", path, "size", (json_int_t)size);
        char *line = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
        json_decref(ev);
        if (line)
                relay(c, FRAME_EVENT, line, strlen(line));
        free(line);
}

static void finish_run(struct context *c, json_t *done)
{
        /* Output written before "done" is already in the pipes: it goes first. */
        pump(c, &c->sp.out_fd, FRAME_STDOUT);
        pump(c, &c->sp.err_fd, FRAME_STDERR);
        if (c->cwd[0] == '/')
                files_changed(&c->files, c->cwd, report_file, c);
        c->executions++;
        const char *status = json_string_value(json_object_get(done, "status"));
        json_t *code = json_object_get(done, "exit_code");
        bool ok = status && !strcmp(status, "ok");
        json_t *result = json_pack("{s:s, s:i, s:I, s:b, s:I}", "status", status ? status : "error",
                                   "execution_count", c->executions, "duration_ms",
                                   (json_int_t)json_integer_value(json_object_get(done, "duration_ms")),
                                   "interrupted", c->interrupted_ms != 0, "exit_code",
                                   (json_int_t)(json_is_integer(code) ? json_integer_value(code)
                                                : ok                  ? 0
                                                                      : 1));
        if (c->conn >= 0)
                frame_send_json(c->conn, FRAME_RESULT, result);
        else
                json_decref(result);
        run_clear(c);
        c->state = CTX_IDLE;
        run_next(c);
}

/* One event line from the kernel: done ends the run, the rest is relayed. */
static void take_event(struct context *c, const char *line, size_t len)
{
        json_t *ev = json_loadb(line, len, 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "type"));
        if (!type) {
                json_decref(ev);
                return;
        }
        if (strcmp(type, "done") == 0 && c->state == CTX_RUNNING)
                finish_run(c, ev);
        else if (c->state == CTX_RUNNING && strcmp(type, "ready") != 0)
                relay(c, FRAME_EVENT, line, len);
        json_decref(ev);
}

static void pump_events(struct context *c)
{
        char buf[READ_CHUNK];
        for (int rounds = 0; c->sp.ev_fd >= 0 && rounds < 64; rounds++) {
                ssize_t n = read(c->sp.ev_fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        init_close_fd(&c->sp.ev_fd);
                        return;
                }
                if (c->ev_len + (size_t)n > EVENT_MAX) {
                        /* A line past any sense: dropped up to its end, and what follows it in
                         * this chunk (a "done", say) is kept. */
                        c->ev_len = 0;
                        c->ev_skipping = true;
                }
                size_t from = 0;
                if (c->ev_skipping) {
                        char *nl = memchr(buf, '\n', (size_t)n);
                        if (!nl)
                                continue;
                        from = (size_t)(nl - buf) + 1;
                        c->ev_skipping = false;
                }
                char *nb = realloc(c->ev_buf, c->ev_len + (size_t)n - from + 1);
                if (!nb)
                        return;
                c->ev_buf = nb;
                memcpy(c->ev_buf + c->ev_len, buf + from, (size_t)n - from);
                c->ev_len += (size_t)n - from;
                char *nl;
                while (c->ev_buf && (nl = memchr(c->ev_buf, '\n', c->ev_len))) {
                        size_t line = (size_t)(nl - c->ev_buf);
                        take_event(c, c->ev_buf, line);
                        if (!c->ev_buf) /* the run ended and took its buffers */
                                break;
                        memmove(c->ev_buf, nl + 1, c->ev_len - line - 1);
                        c->ev_len -= line + 1;
                }
        }
}

static void feed(struct context *c)
{
        while (c->sp.in_fd >= 0 && c->in_off < c->in_len) {
                ssize_t w = write(c->sp.in_fd, c->in_buf + c->in_off, c->in_len - c->in_off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN)
                        return;
                if (w <= 0) {
                        init_close_fd(&c->sp.in_fd);
                        return;
                }
                c->in_off += (size_t)w;
        }
}

/* --- the loop's side ----------------------------------------------------------------- */

int contexts_poll_fds(struct pollfd *pfd, int max)
{
        int n = 0;
        for (int i = 0; i < CONTEXTS_MAX && n + 5 <= max; i++) {
                struct context *c = &contexts[i];
                if (!c->used || c->state == CTX_DEAD)
                        continue;
                pfd[n++] = (struct pollfd){.fd = c->sp.out_fd, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = c->sp.err_fd, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = c->sp.ev_fd, .events = POLLIN};
                if (c->in_off < c->in_len)
                        pfd[n++] = (struct pollfd){.fd = c->sp.in_fd, .events = POLLOUT};
                if (c->conn >= 0) /* the host hanging up is news too */
                        pfd[n++] = (struct pollfd){.fd = c->conn, .events = POLLIN};
        }
        return n;
}

void contexts_service(void)
{
        for (int i = 0; i < CONTEXTS_MAX; i++) {
                struct context *c = &contexts[i];
                if (!c->used || c->state == CTX_DEAD)
                        continue;
                if (c->in_off < c->in_len)
                        feed(c);
                pump(c, &c->sp.out_fd, FRAME_STDOUT);
                pump(c, &c->sp.err_fd, FRAME_STDERR);
                pump_events(c);
                struct pollfd p = {.fd = c->conn, .events = POLLIN};
                char byte;
                if (c->conn >= 0 && poll(&p, 1, 0) > 0 && read(c->conn, &byte, 1) <= 0) {
                        init_close_fd(&c->conn); /* the host went away mid-run */
                        if (c->kill_on_disconnect && c->state == CTX_RUNNING)
                                interrupt(c);
                }
        }
}

bool contexts_reaped(pid_t pid, int status)
{
        for (int i = 0; i < CONTEXTS_MAX; i++) {
                struct context *c = &contexts[i];
                if (c->used && c->state != CTX_DEAD && c->sp.shepherd == pid) {
                        pump(c, &c->sp.out_fd, FRAME_STDOUT);
                        pump(c, &c->sp.err_fd, FRAME_STDERR);
                        char why[64];
                        if (WIFSIGNALED(status))
                                snprintf(why, sizeof why, "killed by signal %d", WTERMSIG(status));
                        else
                                snprintf(why, sizeof why, "exited with code %d", WEXITSTATUS(status));
                        kernel_lost(c, why,
                                    WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status));
                        return true;
                }
        }
        return false;
}

void contexts_check(long long now)
{
        for (int i = 0; i < CONTEXTS_MAX; i++) {
                struct context *c = &contexts[i];
                if (!c->used || c->state != CTX_RUNNING)
                        continue;
                if (c->deadline_ms && now >= c->deadline_ms && !c->interrupted_ms) {
                        c->interrupted_ms = now; /* the kernel keeps its state */
                        interrupt(c);
                } else if (c->interrupted_ms && now >= c->interrupted_ms + CTX_INTERRUPT_GRACE_MS) {
                        spawn_kill(c->sp.shepherd); /* it ignored the interrupt */
                        kernel_lost(c, "it did not stop when interrupted", 137);
                }
        }
}

long long contexts_next_deadline(void)
{
        long long next = 0;
        for (int i = 0; i < CONTEXTS_MAX; i++) {
                const struct context *c = &contexts[i];
                if (!c->used || c->state != CTX_RUNNING)
                        continue;
                long long at =
                    c->interrupted_ms ? c->interrupted_ms + CTX_INTERRUPT_GRACE_MS : c->deadline_ms;
                if (at && (!next || at < next))
                        next = at;
        }
        return next;
}

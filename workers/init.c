/* warren-init: PID 1 of every sandbox.
 *
 * It is started by the launcher (launch.c) as root of the sandbox's user namespace, inside
 * the sandbox's root, with a listening unix socket inherited as fd 3. It never exits while
 * the sandbox lives. One single-threaded poll loop serves everything:
 *   - connections from warrend, one session each (protocol.h): a request, then the
 *     process's output as frames, then its exit;
 *   - the pipes of running processes;
 *   - SIGCHLD through a signalfd: as PID 1 it reaps every orphan in the sandbox.
 * A session's process is started by a shepherd, a child of this process that is the child
 * subreaper of everything the command starts: whatever daemonises, double-forks or calls
 * setsid() is reparented to the shepherd, not here, so a timeout or a kill reaches the
 * whole tree. A command that ends by itself ends its shepherd, and what it left running
 * in the background lives on (as children of PID 1) until the sandbox ends.
 *
 * The host treats everything this program says as untrusted, because user code running
 * as root inside the sandbox can ptrace it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "protocol.h"

#define LISTEN_FD      3
#define FILTER_FD      4 /* the syscall filter as raw BPF, sealed, compiled once by warrend */
#define ENV_FD         5 /* the sandbox's environment: NAME=value strings, each ending in NUL */
#define MAX_SESSIONS   256
#define READ_CHUNK     65536
#define USER_UID       1000
#define USER_GID       1000
#define DRAIN_GRACE_MS 30 /* after exit: output still buffered in the pipes */

enum session_state { SESSION_READING, SESSION_RUNNING, SESSION_DONE };

struct session {
        int conn;
        enum session_state state;
        pid_t pid;     /* the shepherd: its exit is the command's */
        pid_t cmd_pid; /* the command, as users see it */
        int out_fd, err_fd, in_fd;
        long long max_output, out_bytes, err_bytes;
        bool truncated, timed_out, exited, stdin_wanted, stdin_eof, kill_sent;
        char *in_buf; /* input taken from the host, not yet written to the process */
        size_t in_len, in_off;
        int status;
        long long started_ms, deadline_ms, exited_ms;
};

static struct session sessions[MAX_SESSIONS];
static char **base_env; /* the sandbox's environment, given at create */

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void send_json(int fd, uint8_t type, json_t *obj)
{
        char *text = json_dumps(obj, JSON_COMPACT);
        json_decref(obj);
        if (text) {
                frame_write(fd, type, text, strlen(text));
                free(text);
        }
}

static void send_error(int fd, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void send_error(int fd, const char *code, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        send_json(fd, FRAME_ERROR, json_pack("{s:s, s:s}", "error", msg, "code", code));
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void session_end(struct session *s)
{
        free(s->in_buf);
        s->in_buf = NULL;
        s->in_len = s->in_off = 0;
        close_fd(&s->conn);
        close_fd(&s->out_fd);
        close_fd(&s->err_fd);
        close_fd(&s->in_fd);
        s->state = SESSION_DONE;
}

/* --- environment ------------------------------------------------------------------- */

/* The command's environment: the sandbox's, then the user's defaults, then the request's. */
static char **build_env(json_t *req_env, bool root)
{
        size_t n = 0, cap = 64;
        char **env = calloc(cap, sizeof *env);
        const char *defaults[] = {
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            /* glibc's own name for the locale: "C.UTF-8" makes every program start look
             * for a directory of that name first, and miss, once per category. */
            "LANG=C.utf8",
            "SHELL=/bin/bash",
            root ? "HOME=/root" : "HOME=/home/user",
            root ? "USER=root" : "USER=user",
            root ? "LOGNAME=root" : "LOGNAME=user",
        };
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
                env[n++] = strdup(defaults[i]);
        for (char **e = base_env; e && *e && n + 1 < cap; e++)
                env[n++] = strdup(*e);
        const char *k;
        json_t *v;
        json_object_foreach(req_env, k, v)
        {
                if (!json_is_string(v) || n + 2 >= cap)
                        continue;
                char *kv;
                if (asprintf(&kv, "%s=%s", k, json_string_value(v)) < 0)
                        continue;
                /* A later NAME= replaces an earlier one. */
                size_t klen = strlen(k) + 1;
                bool replaced = false;
                for (size_t i = 0; i < n && !replaced; i++)
                        if (strncmp(env[i], kv, klen) == 0) {
                                free(env[i]);
                                env[i] = kv;
                                replaced = true;
                        }
                if (!replaced)
                        env[n++] = kv;
        }
        env[n] = NULL;
        return env;
}

/* --- starting a process -------------------------------------------------------------- */

/* What the shepherd and the command say through the spawn pipe before the exec closes it:
 * the command's pid, then, only if it could not start, why. */
struct spawn_msg {
        int pid; /* > 0: the command's pid; 0: a failure */
        int err;
        char step[28];
};

/* In the command's process: become the user, wire the pipes, exec. Failures go back
 * through errpipe. */
static void child_exec(json_t *argv_json, char **env, const char *cwd, bool root, int in, int out, int err,
                       int errpipe)
{
        struct spawn_msg e = {0};
        size_t argc = json_array_size(argv_json);
        char **argv = calloc(argc + 1, sizeof *argv);
        for (size_t i = 0; argv && i < argc; i++)
                argv[i] = (char *)json_string_value(json_array_get(argv_json, i));
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGUSR1, SIG_DFL);
        setsid();
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        /* The command gets 0-2 and nothing else; errpipe closes on exec like the rest. */
        close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
        if (chdir(cwd) < 0) {
                e.err = errno;
                strcpy(e.step, "cwd");
                goto fail;
        }
        gid_t gid = root ? 0 : USER_GID;
        uid_t uid = root ? 0 : USER_UID;
        if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
                e.err = errno;
                strcpy(e.step, "user");
                goto fail;
        }
        umask(022);
        execvpe(argv[0], argv, env);
        e.err = errno;
        strcpy(e.step, "exec");
fail:
        if (write(errpipe, &e, sizeof e) < 0)
                _exit(127);
        _exit(127);
}

/* SIGKILLs every child of this process. Without /proc/<pid>/task/<tid>/children (not every
 * kernel has it) the parent is read from each process's stat, after the last ')'. */
static void kill_children(pid_t self)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
                pid_t pid = (pid_t)atoi(e->d_name);
                if (pid <= 1 || pid == self)
                        continue;
                char path[64], buf[512];
                snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
                if (fd >= 0)
                        close(fd);
                if (n <= 0)
                        continue;
                buf[n] = 0;
                char *close_paren = strrchr(buf, ')');
                int ppid = 0;
                if (close_paren && sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == self)
                        kill(pid, SIGKILL);
        }
        if (d)
                closedir(d);
}

/* Ends the command's whole tree: kill every child, reap one, and again, until none is left.
 * A killed process's children are reparented here before it can be reaped, so each round
 * reaches one generation further; nothing killed can fork again. */
static int kill_tree(pid_t cmd, int status)
{
        pid_t self = getpid();
        kill(-cmd, SIGKILL);
        for (;;) {
                kill_children(self);
                int st;
                pid_t pid = waitpid(-1, &st, 0);
                if (pid < 0 && errno == EINTR)
                        continue;
                if (pid < 0)
                        return status;
                if (pid == cmd)
                        status = st;
        }
}

/* Leaves with the command's status: its exit code, or the signal that ended it. */
static void exit_like(int status)
{
        if (WIFSIGNALED(status)) {
                int sig = WTERMSIG(status);
                sigset_t one;
                sigemptyset(&one);
                sigaddset(&one, sig);
                signal(sig, SIG_DFL);
                sigprocmask(SIG_UNBLOCK, &one, NULL);
                kill(getpid(), sig);
                _exit(128 + sig);
        }
        _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 1);
}

/* The shepherd (see the top): starts the command, says its pid, then waits for the command
 * to end (it leaves, and the command's background processes stay) or for SIGUSR1 from PID 1
 * (a timeout or a kill: the whole tree goes). Orphans adopted meanwhile are reaped. */
static void shepherd(json_t *argv, char **env, const char *cwd, bool root, int in, int out, int err,
                     int errpipe)
{
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        sigset_t wait_for;
        sigemptyset(&wait_for);
        sigaddset(&wait_for, SIGCHLD);
        sigaddset(&wait_for, SIGUSR1);
        sigprocmask(SIG_BLOCK, &wait_for, NULL);
        /* vfork: the command shares this process's memory until it execs, so no page table is
         * copied on the way to every command. child_exec never returns, and what it allocates
         * is this short-lived process's to leak. */
        pid_t cmd = vfork();
        if (cmd == 0)
                child_exec(argv, env, cwd, root, in, out, err, errpipe);
        struct spawn_msg m = {.pid = cmd > 0 ? cmd : 0, .err = cmd > 0 ? 0 : errno};
        strcpy(m.step, "fork");
        if (write(errpipe, &m, sizeof m) < 0 || cmd < 0)
                _exit(127);
        close_range(3, ~0U, 0); /* the pipes are the command's alone now */
        for (;;) {
                siginfo_t si;
                if (sigwaitinfo(&wait_for, &si) < 0)
                        continue;
                if (si.si_signo == SIGUSR1)
                        exit_like(kill_tree(cmd, W_EXITCODE(0, SIGKILL)));
                int st;
                pid_t pid;
                while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
                        if (pid != cmd)
                                continue;
                        sigset_t pending;
                        sigpending(&pending); /* a kill that came with the end still applies */
                        exit_like(sigismember(&pending, SIGUSR1) ? kill_tree(cmd, st) : st);
                }
        }
}

static int session_start(struct session *s, json_t *req)
{
        json_t *argv = json_object_get(req, "argv");
        if (!json_is_array(argv) || json_array_size(argv) == 0) {
                send_error(s->conn, "bad_request", "argv must be a non-empty array of strings");
                return -EINVAL;
        }
        for (size_t i = 0; i < json_array_size(argv); i++)
                if (!json_is_string(json_array_get(argv, i))) {
                        send_error(s->conn, "bad_request", "argv must hold only strings");
                        return -EINVAL;
                }
        const char *user = json_string_value(json_object_get(req, "user"));
        bool root = user && strcmp(user, "root") == 0;
        const char *cwd = json_string_value(json_object_get(req, "cwd"));
        if (!cwd)
                cwd = root ? "/root" : "/home/user";
        s->max_output = json_integer_value(json_object_get(req, "max_output"));
        if (s->max_output <= 0)
                s->max_output = 1 << 20;
        long long timeout = json_integer_value(json_object_get(req, "timeout_ms"));
        s->stdin_wanted = json_is_true(json_object_get(req, "stdin"));

        int in[2], out[2], err[2], ep[2];
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
            pipe2(ep, O_CLOEXEC) < 0) {
                send_error(s->conn, "internal", "pipe: %s", strerror(errno));
                return -errno;
        }
        char **env = build_env(json_object_get(req, "env"), root);
        pid_t pid = fork();
        if (pid == 0) {
                close(LISTEN_FD);
                shepherd(argv, env, cwd, root, in[0], out[1], err[1], ep[1]);
        }
        for (char **e = env; *e; e++)
                free(*e);
        free(env);
        close(in[0]);
        close(out[1]);
        close(err[1]);
        close(ep[1]);
        /* The pipe closes when the command execs (and the shepherd has closed its end):
         * first the pid, then a failure if there is one. */
        struct spawn_msg started = {0}, se = {0};
        ssize_t got = pid > 0 ? read(ep[0], &started, sizeof started) : -1;
        if (got == (ssize_t)sizeof started && started.pid > 0)
                got = read(ep[0], &se, sizeof se);
        else if (got == (ssize_t)sizeof started)
                se = started;
        close(ep[0]);
        if (pid < 0 || got == (ssize_t)sizeof se) {
                const char *code = got == (ssize_t)sizeof se && strcmp(se.step, "cwd") == 0    ? "bad_cwd"
                                   : got == (ssize_t)sizeof se && strcmp(se.step, "exec") == 0 ? "bad_command"
                                                                                               : "internal";
                send_error(s->conn, code, "%s: %s", pid < 0 ? "fork" : se.step,
                           strerror(pid < 0 ? errno : se.err));
                close(in[1]);
                close(out[0]);
                close(err[0]);
                return -EINVAL; /* the child, if any, has exited and is reaped as an orphan */
        }
        s->pid = pid;
        s->cmd_pid = started.pid;
        s->in_fd = in[1];
        s->out_fd = out[0];
        s->err_fd = err[0];
        fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
        fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
        fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
        if (!s->stdin_wanted)
                close_fd(&s->in_fd);
        s->started_ms = now_ms();
        s->deadline_ms = timeout > 0 ? s->started_ms + timeout : 0;
        s->state = SESSION_RUNNING;
        send_json(s->conn, FRAME_STARTED, json_pack("{s:i}", "pid", (int)s->cmd_pid));
        return 0;
}

/* --- requests that run nothing ------------------------------------------------------- */

static void answer_ping(struct session *s)
{
        send_json(s->conn, FRAME_RESULT, json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid()));
        session_end(s);
}

/* The sandbox's environment, replaced for a sandbox that was started ahead of time and is
 * now somebody's. The old one came from fd 5 at start and is a few bytes: it is left. */
static void configure(struct session *s, json_t *req)
{
        json_t *env = json_object_get(req, "env");
        size_t n = json_object_size(env), i = 0;
        char **fresh = calloc(n + 1, sizeof *fresh);
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
                if (fresh && json_is_string(v) && asprintf(&fresh[i], "%s=%s", k, json_string_value(v)) >= 0)
                        i++;
        }
        if (!fresh) {
                send_error(s->conn, "internal", "out of memory");
        } else {
                base_env = fresh;
                send_json(s->conn, FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        }
        session_end(s);
}

static void handle_request(struct session *s, struct frame *f)
{
        json_error_t jerr;
        json_t *req = json_loads(f->payload, 0, &jerr);
        const char *op = json_string_value(json_object_get(req, "op"));
        if (!op) {
                send_error(s->conn, "bad_request", "request must be a JSON object with an op");
                session_end(s);
        } else if (strcmp(op, "ping") == 0) {
                answer_ping(s);
        } else if (strcmp(op, "configure") == 0) {
                configure(s, req);
        } else if (strcmp(op, "exec") == 0) {
                if (session_start(s, req) < 0)
                        session_end(s);
        } else {
                send_error(s->conn, "bad_request", "unknown op '%.40s'", op);
                session_end(s);
        }
        json_decref(req);
}

/* --- running sessions ---------------------------------------------------------------- */

/* Reads what a pipe has; forwards it within the cap, drops the rest (and says so). */
static void pump(struct session *s, int *fd, uint8_t type, long long *count)
{
        char buf[READ_CHUNK];
        for (;;) {
                ssize_t n = read(*fd, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        close_fd(fd);
                        return;
                }
                long long room = s->max_output - *count;
                if (room <= 0) {
                        s->truncated = true;
                        continue;
                }
                size_t send = (size_t)n > (size_t)room ? (size_t)room : (size_t)n;
                if (send < (size_t)n)
                        s->truncated = true;
                *count += (long long)send;
                if (s->conn >= 0 && frame_write(s->conn, type, buf, send) < 0)
                        close_fd(&s->conn); /* the host went away: keep running, stop sending */
        }
}

/* Ends a session's whole process tree, through its shepherd. Only the shepherd kills: were
 * the command killed from here, the shepherd could see it end and leave before it took the
 * kill, and what escaped the command's session would outlive it. */
static void kill_command(struct session *s)
{
        kill(s->pid, SIGUSR1);
        s->kill_sent = true;
}

static void session_finish(struct session *s)
{
        json_t *exit = json_pack("{s:b, s:b, s:I}", "timed_out", s->timed_out, "truncated", s->truncated,
                                 "duration_ms", (json_int_t)(s->exited_ms - s->started_ms));
        if (WIFEXITED(s->status))
                json_object_set_new(exit, "exit_code", json_integer(WEXITSTATUS(s->status)));
        else if (WIFSIGNALED(s->status)) {
                json_object_set_new(exit, "exit_code", json_integer(128 + WTERMSIG(s->status)));
                json_object_set_new(exit, "signal", json_integer(WTERMSIG(s->status)));
        }
        if (s->conn >= 0)
                send_json(s->conn, FRAME_EXIT, exit);
        else
                json_decref(exit);
        session_end(s);
}

static void reap(void)
{
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                for (int i = 0; i < MAX_SESSIONS; i++) {
                        struct session *s = &sessions[i];
                        if (s->state == SESSION_RUNNING && s->pid == pid) {
                                s->exited = true;
                                s->status = status;
                                s->exited_ms = now_ms();
                        }
                }
        }
}

/* Input for the process is buffered here and written as its pipe takes it (the pipe is
 * non-blocking): a process that does not read its input must never stop this loop. */
#define STDIN_BUFFER_MAX (64u << 20)

static void stdin_flush(struct session *s)
{
        while (s->in_fd >= 0 && s->in_off < s->in_len) {
                ssize_t w = write(s->in_fd, s->in_buf + s->in_off, s->in_len - s->in_off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN)
                        return;
                if (w <= 0) {
                        close_fd(&s->in_fd); /* the process closed its input */
                        break;
                }
                s->in_off += (size_t)w;
        }
        free(s->in_buf);
        s->in_buf = NULL;
        s->in_len = s->in_off = 0;
        if (s->stdin_eof)
                close_fd(&s->in_fd);
}

static void stdin_take(struct session *s, const char *data, size_t len)
{
        if (s->in_len - s->in_off + len > STDIN_BUFFER_MAX) {
                close_fd(&s->in_fd); /* more input than any request carries: stop feeding it */
                return;
        }
        char *nb = realloc(s->in_buf, s->in_len + len);
        if (!nb)
                return;
        memcpy(nb + s->in_len, data, len);
        s->in_buf = nb;
        s->in_len += len;
        stdin_flush(s);
}

static void read_host(struct session *s)
{
        struct frame f;
        int r = frame_read(s->conn, &f, FRAME_MAX_PAYLOAD, 1000);
        if (r <= 0) {
                if (s->state == SESSION_READING)
                        session_end(s);
                else
                        close_fd(&s->conn); /* the process keeps running; its output is dropped */
                return;
        }
        if (s->state == SESSION_READING && f.type == FRAME_REQUEST) {
                handle_request(s, &f);
        } else if (s->state == SESSION_RUNNING && f.type == FRAME_STDIN && s->in_fd >= 0) {
                stdin_take(s, f.payload, f.len);
        } else if (s->state == SESSION_RUNNING && f.type == FRAME_STDIN_EOF) {
                s->stdin_eof = true;
                stdin_flush(s);
        }
        frame_clear(&f);
}

static void accept_one(void)
{
        int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        for (int i = 0; i < MAX_SESSIONS; i++)
                if (sessions[i].state == SESSION_DONE) {
                        sessions[i] = (struct session){
                            .conn = fd, .state = SESSION_READING, .out_fd = -1, .err_fd = -1, .in_fd = -1};
                        return;
                }
        send_error(fd, "busy", "too many sessions in this sandbox at once");
        close(fd);
}

/* Timeouts, and sessions whose process has exited and whose pipes are drained (or whose
 * grace for output still in the pipes has passed: a background child may hold them). */
static void check_sessions(void)
{
        long long now = now_ms();
        for (int i = 0; i < MAX_SESSIONS; i++) {
                struct session *s = &sessions[i];
                if (s->state != SESSION_RUNNING)
                        continue;
                if (!s->exited && !s->kill_sent && s->deadline_ms && now >= s->deadline_ms) {
                        s->timed_out = true;
                        kill_command(s);
                }
                bool drained = s->out_fd < 0 && s->err_fd < 0;
                if (s->exited && (drained || now - s->exited_ms >= DRAIN_GRACE_MS)) {
                        if (s->out_fd >= 0)
                                pump(s, &s->out_fd, FRAME_STDOUT, &s->out_bytes);
                        if (s->err_fd >= 0)
                                pump(s, &s->err_fd, FRAME_STDERR, &s->err_bytes);
                        session_finish(s);
                }
        }
}

/* How long poll may sleep: until the nearest timeout or drain grace; forever when idle, so
 * an idle sandbox costs no wakeups. */
static int next_wakeup_ms(void)
{
        long long now = now_ms(), next = -1;
        for (int i = 0; i < MAX_SESSIONS; i++) {
                struct session *s = &sessions[i];
                if (s->state != SESSION_RUNNING)
                        continue;
                /* Once killed, the shepherd's exit (SIGCHLD) is what wakes this loop. */
                long long at = s->exited ? s->exited_ms + DRAIN_GRACE_MS : s->kill_sent ? 0 : s->deadline_ms;
                if (at && (next < 0 || at < next))
                        next = at;
        }
        if (next < 0)
                return -1;
        return next <= now ? 0 : (int)(next - now);
}

/* The sandbox's environment, for the commands it runs (never this process's own). */
static char **read_env(void)
{
        struct stat st;
        char **env = calloc(1, sizeof *env);
        if (fstat(ENV_FD, &st) < 0 || st.st_size <= 0 || st.st_size > (64 << 20)) {
                close(ENV_FD);
                return env;
        }
        char *buf = malloc((size_t)st.st_size + 1);
        ssize_t n = buf ? pread(ENV_FD, buf, (size_t)st.st_size, 0) : -1;
        close(ENV_FD);
        if (n != st.st_size) {
                free(buf);
                return env;
        }
        buf[n] = 0;
        size_t count = 0;
        for (ssize_t i = 0; i < n; i++)
                count += buf[i] == 0;
        char **all = realloc(env, (count + 1) * sizeof *all);
        if (!all)
                return env;
        size_t k = 0;
        for (char *p = buf; p < buf + n && k < count; p += strlen(p) + 1)
                all[k++] = p; /* buf lives as long as the process */
        all[k] = NULL;
        return all;
}

/* Root inside keeps only the capabilities Docker gives a container's root by default
 * (ownership and permission overrides, kill, setuid and setgid, low ports, raw sockets,
 * chroot): never CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_NET_ADMIN or the rest, even over the
 * sandbox's own user namespace. The user holds none; no process can regain one (the
 * bounding set is cut, and no_new_privs follows). */
static int drop_capabilities(void)
{
        static const int kept[] = {CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FOWNER,           CAP_FSETID,
                                   CAP_KILL,    CAP_SETGID,       CAP_SETUID,           CAP_SETPCAP,
                                   CAP_MKNOD,   CAP_NET_RAW,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
                                   CAP_SETFCAP, CAP_AUDIT_WRITE};
        uint64_t keep = 0;
        for (size_t i = 0; i < sizeof kept / sizeof *kept; i++)
                keep |= 1ULL << kept[i];
        for (int cap = 0; cap < 64; cap++) {
                if (keep & (1ULL << cap))
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break; /* past the kernel's last capability */
                        return -1;
                }
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                return -1;
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[2] = {
            {.effective = (uint32_t)keep, .permitted = (uint32_t)keep},
            {.effective = (uint32_t)(keep >> 32), .permitted = (uint32_t)(keep >> 32)},
        };
        return (int)syscall(SYS_capset, &hdr, data);
}

/* Reads the filter warrend compiled and loads it: from here on, every process in the
 * sandbox runs under it. */
static int load_filter(void)
{
        struct stat st;
        if (fstat(FILTER_FD, &st) < 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) ||
            st.st_size > BPF_MAXINSNS * (off_t)sizeof(struct sock_filter)) {
                fprintf(stderr, "warren-init: no usable syscall filter on fd %d\n", FILTER_FD);
                return -1;
        }
        struct sock_filter *insns = malloc((size_t)st.st_size);
        ssize_t n = insns ? pread(FILTER_FD, insns, (size_t)st.st_size, 0) : -1;
        close(FILTER_FD);
        struct sock_fprog prog = {.len = (unsigned short)(st.st_size / sizeof *insns), .filter = insns};
        int r = n == st.st_size && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
                        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0
                    ? 0
                    : -1;
        if (r < 0)
                fprintf(stderr, "warren-init: load syscall filter: %s\n", strerror(errno));
        free(insns);
        return r;
}

static int setup(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        for (int i = 0; i < MAX_SESSIONS; i++)
                sessions[i] = (struct session){
                    .conn = -1, .state = SESSION_DONE, .out_fd = -1, .err_fd = -1, .in_fd = -1};
        /* Only 0-2, the agent socket, the filter and the environment are expected. */
        close_range(6, ~0U, 0);
        base_env = read_env();
        signal(SIGPIPE, SIG_IGN);
        if (drop_capabilities() < 0) {
                fprintf(stderr, "warren-init: drop capabilities: %s\n", strerror(errno));
                return -1;
        }
        return load_filter();
}

int main(int argc, char **argv)
{
        if (getpid() != 1 || setup(argc, argv) < 0)
                return 1;
        sigset_t set, usr1;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        /* Blocked here so that a shepherd is born with it blocked: a kill cannot reach it
         * before it waits for one. Commands start with nothing blocked. */
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &set, NULL);
        sigprocmask(SIG_BLOCK, &usr1, NULL);
        int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
        struct pollfd pfd[2 + 4 * MAX_SESSIONS];
        for (;;) {
                int n = 0;
                pfd[n++] = (struct pollfd){.fd = LISTEN_FD, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
                for (int i = 0; i < MAX_SESSIONS; i++) {
                        struct session *s = &sessions[i];
                        if (s->state == SESSION_DONE)
                                continue;
                        pfd[n++] = (struct pollfd){.fd = s->conn, .events = POLLIN};
                        pfd[n++] = (struct pollfd){.fd = s->out_fd, .events = POLLIN};
                        pfd[n++] = (struct pollfd){.fd = s->err_fd, .events = POLLIN};
                        if (s->in_off < s->in_len)
                                pfd[n++] = (struct pollfd){.fd = s->in_fd, .events = POLLOUT};
                }
                poll(pfd, (nfds_t)n, next_wakeup_ms());
                if (pfd[0].revents)
                        accept_one();
                if (pfd[1].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) > 0)
                                ;
                }
                reap();
                for (int i = 0; i < MAX_SESSIONS; i++) {
                        struct session *s = &sessions[i];
                        if (s->state == SESSION_DONE)
                                continue;
                        if (s->out_fd >= 0)
                                pump(s, &s->out_fd, FRAME_STDOUT, &s->out_bytes);
                        if (s->err_fd >= 0)
                                pump(s, &s->err_fd, FRAME_STDERR, &s->err_bytes);
                        if (s->in_off < s->in_len)
                                stdin_flush(s);
                        struct pollfd p = {.fd = s->conn, .events = POLLIN};
                        if (s->conn >= 0 && poll(&p, 1, 0) > 0)
                                read_host(s);
                }
                check_sessions();
        }
}

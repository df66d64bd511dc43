/* Starting commands under their shepherds; see init_spawn.h. */
#include "init_spawn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <linux/close_range.h>

static char **base_env; /* the sandbox's environment, given at create or by configure */

void spawn_set_base_env(char **env)
{
        base_env = env;
}

bool spawn_argv_is_valid(json_t *argv)
{
        if (!json_is_array(argv) || json_array_size(argv) == 0)
                return false;
        for (size_t i = 0; i < json_array_size(argv); i++)
                if (!json_is_string(json_array_get(argv, i)))
                        return false;
        return true;
}

/* --- environment ------------------------------------------------------------------- */

/* Sets NAME=value in env (n entries), replacing an earlier NAME. Takes kv. */
static void env_put(char **env, size_t *n, char *kv)
{
        size_t klen = (size_t)(strchr(kv, '=') - kv) + 1;
        for (size_t i = 0; i < *n; i++)
                if (strncmp(env[i], kv, klen) == 0) {
                        free(env[i]);
                        env[i] = kv;
                        return;
                }
        env[(*n)++] = kv;
}

/* The command's environment: the user's defaults, then the sandbox's, then the request's. */
static char **build_env(json_t *req_env, bool root, bool tty)
{
        const char *defaults[] = {
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            /* glibc's own name for the locale: "C.UTF-8" makes every program start look
             * for a directory of that name first, and miss, once per category. */
            "LANG=C.utf8",
            "SHELL=/bin/bash",
            root ? "HOME=/root" : "HOME=/home/user",
            root ? "USER=root" : "USER=user",
            root ? "LOGNAME=root" : "LOGNAME=user",
            tty ? "TERM=xterm-256color" : NULL,
        };
        size_t nbase = 0;
        while (base_env && base_env[nbase])
                nbase++;
        size_t cap = sizeof defaults / sizeof *defaults + nbase + json_object_size(req_env) + 1, n = 0;
        char **env = calloc(cap, sizeof *env);
        if (!env)
                return NULL;
        for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++)
                if (defaults[i])
                        env_put(env, &n, strdup(defaults[i]));
        for (size_t i = 0; i < nbase; i++)
                if (strchr(base_env[i], '='))
                        env_put(env, &n, strdup(base_env[i]));
        const char *k;
        json_t *v;
        json_object_foreach(req_env, k, v)
        {
                char *kv;
                if (json_is_string(v) && asprintf(&kv, "%s=%s", k, json_string_value(v)) >= 0)
                        env_put(env, &n, kv);
        }
        env[n] = NULL;
        return env;
}

static void env_free(char **env)
{
        for (char **e = env; e && *e; e++)
                free(*e);
        free(env);
}

/* --- the command's process ------------------------------------------------------------- */

/* What the shepherd and the command say through the spawn pipe before the exec closes it:
 * the command's pid, then, only if it could not start, why. */
struct spawn_msg {
        int pid; /* > 0: the command's pid; 0: a failure */
        int err;
        char step[28];
};

/* The command's end of its stdio: three pipe ends, or one pty slave for all three. */
struct child_io {
        int in, out, err;
        int ev; /* the command's fd 3, or -1 */
        bool tty;
};

/* A one-shot `/bin/bash -c` runs on the statically linked build of the same bash where the
 * image has it (Debian's bash-static): the same version, builtins and options, with argv[0]
 * and so $0 and $BASH still /bin/bash. Without the dynamic loader it starts in about 1.1 ms
 * here instead of 1.55 (fork+exec+wait, p50), most of a shell call's time. The template's
 * link leads to it under the name bash, which the process then has (ps, pgrep -x bash). */
#define BASH_STATIC "/opt/warren/static/bash"

static void exec_static_bash_if_one_shot(char **argv, char **env)
{
        if (strcmp(argv[0], "/bin/bash") == 0 && argv[1] && strcmp(argv[1], "-c") == 0)
                execve(BASH_STATIC, argv, env); /* returns only if it could not: then /bin/bash */
}

/* In the command's process: a session of its own (with the terminal as its controlling
 * one), the pipes, the user, exec. Failures go back through errpipe. */
static void child_exec(char **argv, char **env, const char *cwd, bool root, const struct child_io *io,
                       int errpipe)
{
        struct spawn_msg e = {0};
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGUSR1, SIG_DFL);
        setsid();
        if (io->tty)
                ioctl(io->in, TIOCSCTTY, 0);
        dup2(io->in, 0);
        dup2(io->out, 1);
        dup2(io->err, 2);
        if (io->ev >= 0)
                dup2(io->ev, 3);
        /* The command gets 0-2 (and 3) and nothing else; errpipe closes on exec like the rest. */
        close_range(io->ev >= 0 ? 4 : 3, ~0U, CLOSE_RANGE_CLOEXEC);
        if (chdir(cwd) < 0) {
                e.err = errno;
                strcpy(e.step, "cwd");
                goto fail;
        }
        gid_t gid = root ? 0 : SPAWN_USER_GID;
        uid_t uid = root ? 0 : SPAWN_USER_UID;
        if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
                e.err = errno;
                strcpy(e.step, "user");
                goto fail;
        }
        umask(022);
        exec_static_bash_if_one_shot(argv, env);
        execvpe(argv[0], argv, env);
        e.err = errno;
        strcpy(e.step, "exec");
fail:
        if (write(errpipe, &e, sizeof e) < 0)
                _exit(127);
        _exit(127);
}

/* --- the shepherd ---------------------------------------------------------------------- */

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

/* The shepherd: starts the command, says its pid, then waits for the command to end (it
 * leaves, and the command's background processes stay) or for SIGUSR1 from PID 1 (a
 * timeout or a kill: the whole tree goes). Orphans adopted meanwhile are reaped. SIGUSR1 is
 * blocked from birth (PID 1 blocks it), so a kill cannot come before it is waited for. */
static void shepherd(char **argv, char **env, const char *cwd, bool root, const struct child_io *io,
                     int errpipe)
{
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        sigset_t wait_for;
        sigemptyset(&wait_for);
        sigaddset(&wait_for, SIGCHLD);
        sigaddset(&wait_for, SIGUSR1);
        sigprocmask(SIG_BLOCK, &wait_for, NULL);
        /* vfork: the command shares this process's memory until it execs, so no page table is
         * copied on the way to every command. child_exec never returns. */
        pid_t cmd = vfork();
        if (cmd == 0)
                child_exec(argv, env, cwd, root, io, errpipe);
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

void spawn_kill(pid_t shepherd_pid)
{
        if (shepherd_pid > 0)
                kill(shepherd_pid, SIGUSR1);
}

/* --- starting ---------------------------------------------------------------------------- */

/* The host side of the command's stdio: pipes, or a pty whose slave belongs to the user. */
static int open_io(const struct spawn_spec *spec, struct child_io *child, int host[3])
{
        child->ev = -1;
        if (!spec->tty) {
                int in[2], out[2], err[2];
                if (pipe2(in, O_CLOEXEC) < 0)
                        return -errno;
                if (pipe2(out, O_CLOEXEC) < 0) {
                        int r = -errno;
                        close(in[0]);
                        close(in[1]);
                        return r;
                }
                if (pipe2(err, O_CLOEXEC) < 0) {
                        int r = -errno;
                        close(in[0]);
                        close(in[1]);
                        close(out[0]);
                        close(out[1]);
                        return r;
                }
                *child = (struct child_io){.in = in[0], .out = out[1], .err = err[1], .ev = -1};
                host[0] = in[1], host[1] = out[0], host[2] = err[0];
                return 0;
        }
        int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        char name[64];
        if (master < 0)
                return -errno;
        int slave = -1;
        struct winsize ws = {.ws_row = spec->rows, .ws_col = spec->cols};
        if (unlockpt(master) < 0 || ptsname_r(master, name, sizeof name) != 0 ||
            ioctl(master, TIOCSWINSZ, &ws) < 0 || (slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0 ||
            fchown(slave, spec->root ? 0 : SPAWN_USER_UID, SPAWN_TTY_GID) < 0) {
                int r = -errno;
                close(master);
                if (slave >= 0)
                        close(slave);
                return r;
        }
        *child = (struct child_io){.in = slave, .out = slave, .err = slave, .ev = -1, .tty = true};
        host[0] = master, host[1] = master, host[2] = -1;
        return 0;
}

static void close_child_io(struct child_io *c)
{
        if (c->ev >= 0)
                close(c->ev);
        close(c->in);
        if (!c->tty) {
                close(c->out);
                close(c->err);
        }
}

/* The host's ends; a pty's master serves as stdin and stdout both. */
static void close_host_io(const int host[3])
{
        close(host[0]);
        if (host[1] != host[0])
                close(host[1]);
        if (host[2] >= 0)
                close(host[2]);
}

/* Everything the command, its shepherd and PID 1 talk through: the command's stdio, the
 * spawn pipe, and for a kernel the events pipe. On failure nothing of it stays open. */
static int open_channels(const struct spawn_spec *spec, struct child_io *child, int host[3], int ep[2],
                         int ev[2], char msg[256])
{
        int r = open_io(spec, child, host);
        if (r < 0) {
                snprintf(msg, 256, "%s: %s", spec->tty ? "open a terminal" : "pipe", strerror(-r));
                return r;
        }
        const char *what = "pipe";
        ev[0] = ev[1] = -1;
        if (pipe2(ep, O_CLOEXEC) < 0) {
                r = -errno;
                goto close_io;
        }
        if (spec->events && pipe2(ev, O_CLOEXEC) < 0) {
                r = -errno;
                goto close_ep;
        }
        /* The events pipe belongs to the command's user, so it can also open it by name
         * (/dev/fd/3), which is how R writes to it. */
        what = "events pipe";
        if (spec->events && !spec->root && fchown(ev[1], SPAWN_USER_UID, SPAWN_USER_GID) < 0) {
                r = -errno;
                goto close_ev;
        }
        child->ev = ev[1];
        return 0;
close_ev:
        close(ev[0]);
        close(ev[1]);
close_ep:
        close(ep[0]);
        close(ep[1]);
close_io:
        close_child_io(child);
        close_host_io(host);
        snprintf(msg, 256, "%s: %s", what, strerror(-r));
        return r;
}

static char **argv_array(json_t *argv)
{
        size_t n = json_array_size(argv);
        char **a = calloc(n + 1, sizeof *a);
        for (size_t i = 0; a && i < n; i++)
                a[i] = (char *)json_string_value(json_array_get(argv, i));
        return a;
}

/* Reads what the shepherd and the command say: the pid, then a failure if there is one
 * (the pipe closes when the command execs and the shepherd has closed its end). */
/* The spawn pipe is read with a deadline: between its setresuid and its exec, the command's
 * process is the user's to signal, and a user who stops it (kill -STOP -1) must not stop
 * PID 1 with it. */
#define SPAWN_WAIT_MS 5000

static ssize_t read_within(int fd, void *buf, size_t len)
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, SPAWN_WAIT_MS) != 1)
                return -1;
        return read(fd, buf, len);
}

static int read_spawn(int fd, struct spawn_msg *ret_fail)
{
        struct spawn_msg started = {0};
        ssize_t got = read_within(fd, &started, sizeof started);
        if (got != (ssize_t)sizeof started) {
                *ret_fail = (struct spawn_msg){.err = got < 0 ? ETIMEDOUT : EPIPE, .step = "start"};
                return -1;
        }
        if (started.pid <= 0) {
                *ret_fail = started;
                return -1;
        }
        ssize_t tail = read_within(fd, ret_fail, sizeof *ret_fail);
        if (tail == (ssize_t)sizeof *ret_fail)
                return -1;
        if (tail < 0) {
                *ret_fail = (struct spawn_msg){.err = ETIMEDOUT, .step = "start"};
                return -1;
        }
        return started.pid;
}

int spawn_start(const struct spawn_spec *spec, struct spawned *ret, const char **err_code, char msg[256])
{
        *err_code = "internal";
        if (!spawn_argv_is_valid(spec->argv)) {
                *err_code = "bad_request";
                snprintf(msg, 256, "argv must be a non-empty array of strings");
                return -EINVAL;
        }
        const char *cwd = spec->cwd ? spec->cwd : spec->root ? "/root" : "/home/user";
        struct child_io child;
        int host[3], ep[2], ev[2];
        int r = open_channels(spec, &child, host, ep, ev, msg);
        if (r < 0)
                return r;
        char **env = build_env(spec->env, spec->root, spec->tty);
        char **argv = argv_array(spec->argv);
        pid_t pid = env && argv ? fork() : -1;
        if (pid == 0)
                shepherd(argv, env, cwd, spec->root, &child, ep[1]);
        int fork_errno = errno;
        env_free(env);
        free(argv);
        close_child_io(&child);
        close(ep[1]);
        struct spawn_msg fail;
        int cmd = pid > 0 ? read_spawn(ep[0], &fail) : -1;
        close(ep[0]);
        if (cmd < 0 && pid > 0 && fail.err == ETIMEDOUT)
                kill(pid, SIGKILL); /* the shepherd, stuck behind a stopped child */
        if (cmd < 0) {
                if (pid > 0) {
                        *err_code = !strcmp(fail.step, "cwd")    ? "bad_cwd"
                                    : !strcmp(fail.step, "exec") ? "bad_command"
                                                                 : "internal";
                        snprintf(msg, 256, "%s: %s", fail.step, strerror(fail.err));
                } else {
                        snprintf(msg, 256, "fork: %s", strerror(fork_errno));
                }
                close_host_io(host);
                if (ev[0] >= 0)
                        close(ev[0]);
                return -EINVAL; /* the shepherd, if any, has exited and is reaped as an orphan */
        }
        for (int i = 0; i < 3; i++)
                if (host[i] >= 0)
                        fcntl(host[i], F_SETFL, O_NONBLOCK);
        if (ev[0] >= 0)
                fcntl(ev[0], F_SETFL, O_NONBLOCK);
        *ret = (struct spawned){.shepherd = pid,
                                .pid = cmd,
                                .in_fd = host[0],
                                .out_fd = host[1],
                                .err_fd = host[2],
                                .ev_fd = ev[0]};
        return 0;
}

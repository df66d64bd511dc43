/* warren-init: PID 1 of every sandbox.
 *
 * It is started by the launcher (launch.c) as root of the sandbox's user namespace, inside
 * the sandbox's root, with listening unix sockets inherited as fd 3 (agent.sock) and fd 6
 * (files.sock). It never exits while the sandbox lives. One single-threaded poll loop serves
 * everything:
 *   - connections from warrend, one session each (protocol.h): a request, then the
 *     process's output as frames, then its exit;
 *   - connections from nginx on files.sock, a raw file transfer each (init_http.h);
 *   - the pipes of running processes;
 *   - SIGCHLD through a signalfd: as PID 1 it reaps every orphan in the sandbox.
 * Processes are started under shepherds (init_spawn.c), so that a timeout or a kill
 * reaches a command's whole tree.
 *
 * The host treats everything this program says as untrusted, because user code running
 * as root inside the sandbox can ptrace it. */
#include <errno.h>
#include <fcntl.h>
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

#include "init_contexts.h"
#include "init_fs.h"
#include "init_http.h"
#include "init_watch.h"
#include "init_jobs.h"
#include "init_spawn.h"
#include "init_util.h"
#include "protocol.h"

#define LISTEN_FD      3
#define FILTER_FD      4 /* the syscall filter as raw BPF, sealed, compiled once by warrend */
#define ENV_FD         5 /* the sandbox's environment: NAME=value strings, each ending in NUL */
#define MAX_SESSIONS   256
#define READ_CHUNK     65536
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
        bool kill_on_disconnect; /* the host going away ends the process too */
        char *in_buf;            /* input taken from the host, not yet written to the process */
        size_t in_len, in_off;
        int status;
        long long started_ms, deadline_ms, exited_ms;
};

static struct session sessions[MAX_SESSIONS];

static void session_end(struct session *s)
{
        free(s->in_buf);
        s->in_buf = NULL;
        s->in_len = s->in_off = 0;
        init_close_fd(&s->conn);
        init_close_fd(&s->out_fd);
        init_close_fd(&s->err_fd);
        init_close_fd(&s->in_fd);
        s->state = SESSION_DONE;
}

static int session_start(struct session *s, json_t *req)
{
        const char *user = json_string_value(json_object_get(req, "user"));
        struct spawn_spec spec = {
            .argv = json_object_get(req, "argv"),
            .env = json_object_get(req, "env"),
            .cwd = json_string_value(json_object_get(req, "cwd")),
            .root = user && strcmp(user, "root") == 0,
        };
        s->max_output = json_integer_value(json_object_get(req, "max_output"));
        if (s->max_output <= 0)
                s->max_output = 1 << 20;
        long long timeout = json_integer_value(json_object_get(req, "timeout_ms"));
        s->stdin_wanted = json_is_true(json_object_get(req, "stdin"));
        s->kill_on_disconnect = json_is_true(json_object_get(req, "kill_on_disconnect"));
        struct spawned sp;
        const char *code;
        char msg[256];
        int r = spawn_start(&spec, &sp, &code, msg);
        if (r < 0) {
                frame_send_error(s->conn, code, "%s", msg);
                return r;
        }
        s->pid = sp.shepherd;
        s->cmd_pid = sp.pid;
        s->in_fd = sp.in_fd;
        s->out_fd = sp.out_fd;
        s->err_fd = sp.err_fd;
        if (!s->stdin_wanted)
                init_close_fd(&s->in_fd);
        s->started_ms = init_mono_ms();
        s->deadline_ms = timeout > 0 ? s->started_ms + timeout : 0;
        s->state = SESSION_RUNNING;
        frame_send_json(s->conn, FRAME_STARTED, json_pack("{s:i}", "pid", (int)s->cmd_pid));
        return 0;
}

/* --- requests that run nothing ------------------------------------------------------- */

static void answer_ping(struct session *s)
{
        frame_send_json(s->conn, FRAME_RESULT, json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid()));
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
                frame_send_error(s->conn, "internal", "out of memory");
        } else {
                spawn_set_base_env(fresh);
                frame_send_json(s->conn, FRAME_RESULT, json_pack("{s:b}", "ok", 1));
        }
        session_end(s);
}

static void handle_request(struct session *s, struct frame *f)
{
        json_error_t jerr;
        json_t *req = json_loads(f->payload, 0, &jerr);
        const char *op = json_string_value(json_object_get(req, "op"));
        if (!op) {
                frame_send_error(s->conn, "bad_request", "request must be a JSON object with an op");
                session_end(s);
        } else if (strcmp(op, "ping") == 0) {
                answer_ping(s);
        } else if (jobs_handle(s->conn, op, req)) {
                session_end(s);
        } else if (watch_handle(s->conn, op, req)) {
                session_end(s);
        } else if (fs_handle(s->conn, op, req)) {
                session_end(s); /* a child answers on its own copy of the connection */
        } else if (contexts_handle(s->conn, op, req)) {
                s->conn = -1; /* the context's now (a run), or answered and closed */
                session_end(s);
        } else if (strcmp(op, "configure") == 0) {
                configure(s, req);
        } else if (strcmp(op, "exec") == 0) {
                if (session_start(s, req) < 0)
                        session_end(s);
        } else {
                frame_send_error(s->conn, "bad_request", "unknown op '%.40s'", op);
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
                ssize_t n = init_read_some(fd, buf, sizeof buf);
                if (n <= 0)
                        return;
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
                        init_close_fd(&s->conn); /* the host went away: keep running, stop sending */
        }
}

/* Ends a session's whole process tree, through its shepherd. Only the shepherd kills: were
 * the command killed from here, the shepherd could see it end and leave before it took the
 * kill, and what escaped the command's session would outlive it. */
static void kill_command(struct session *s)
{
        spawn_kill(s->pid);
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
                frame_send_json(s->conn, FRAME_EXIT, exit);
        else
                json_decref(exit);
        session_end(s);
}

static void reap(void)
{
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (jobs_reaped(pid, status) || contexts_reaped(pid, status))
                        continue;
                for (int i = 0; i < MAX_SESSIONS; i++) {
                        struct session *s = &sessions[i];
                        if (s->state == SESSION_RUNNING && s->pid == pid) {
                                s->exited = true;
                                s->status = status;
                                s->exited_ms = init_mono_ms();
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
                        init_close_fd(&s->in_fd); /* the process closed its input */
                        break;
                }
                s->in_off += (size_t)w;
        }
        free(s->in_buf);
        s->in_buf = NULL;
        s->in_len = s->in_off = 0;
        if (s->stdin_eof)
                init_close_fd(&s->in_fd);
}

static void stdin_take(struct session *s, const char *data, size_t len)
{
        if (s->in_len - s->in_off + len > STDIN_BUFFER_MAX) {
                init_close_fd(&s->in_fd); /* more input than any request carries: stop feeding it */
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
                else if (s->kill_on_disconnect && !s->exited && !s->kill_sent)
                        kill_command(s);
                if (s->state == SESSION_RUNNING)
                        init_close_fd(
                            &s->conn); /* the process runs on (unless killed); its output is dropped */
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

static int files_fd = FILES_FD;

/* nginx, with a raw file transfer the worker handed over (init_http.h). */
static void accept_files(void)
{
        int fd = accept4(files_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        fs_handle_http(fd);
        close(fd);
}

/* A session for an accepted connection, its request still to be read; NULL (the
 * connection refused and closed) when every session is taken. */
static struct session *session_open(int fd)
{
        for (int i = 0; i < MAX_SESSIONS; i++)
                if (sessions[i].state == SESSION_DONE) {
                        sessions[i] = (struct session){
                            .conn = fd, .state = SESSION_READING, .out_fd = -1, .err_fd = -1, .in_fd = -1};
                        return &sessions[i];
                }
        frame_send_error(fd, "busy", "too many sessions in this sandbox at once");
        close(fd);
        return NULL;
}

static void accept_one(void)
{
        int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
                session_open(fd);
}

/* Timeouts, and sessions whose process has exited and whose pipes are drained (or whose
 * grace for output still in the pipes has passed: a background child may hold them). */
static void check_sessions(void)
{
        long long now = init_mono_ms();
        jobs_check(now);
        contexts_check(now);
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
        long long now = init_mono_ms(), next = -1;
        for (int i = 0; i < MAX_SESSIONS; i++) {
                struct session *s = &sessions[i];
                if (s->state != SESSION_RUNNING)
                        continue;
                /* Once killed, the shepherd's exit (SIGCHLD) is what wakes this loop. */
                long long at = s->exited ? s->exited_ms + DRAIN_GRACE_MS : s->kill_sent ? 0 : s->deadline_ms;
                if (at && (next < 0 || at < next))
                        next = at;
        }
        long long job_at = jobs_next_deadline(), ctx_at = contexts_next_deadline();
        if (job_at && (next < 0 || job_at < next))
                next = job_at;
        if (ctx_at && (next < 0 || ctx_at < next))
                next = ctx_at;
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
        for (char *p = buf; p < buf + n && k < count; p += strlen(p) + 1) {
                if (strncmp(p, FILES_TOKEN_ENTRY, strlen(FILES_TOKEN_ENTRY)) == 0)
                        http_set_token(p + strlen(FILES_TOKEN_ENTRY)); /* not a variable */
                else
                        all[k++] = p; /* buf lives as long as the process */
        }
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
        /* PID 1 itself (and the shepherds it forks, which exec nothing) also keeps
         * CAP_SYS_PTRACE, out of the bounding set so that no exec'd program regains it: it
         * reads a context kernel's working directory (/proc/<pid>/cwd). Root inside could
         * trace PID 1 and borrow it, but would gain nothing it lacks: every process in the
         * sandbox is already its to signal, read or become. */
        uint64_t own = keep | 1ULL << CAP_SYS_PTRACE;
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[2] = {
            {.effective = (uint32_t)own, .permitted = (uint32_t)own},
            {.effective = (uint32_t)(own >> 32), .permitted = (uint32_t)(own >> 32)},
        };
        return (int)syscall(SYS_capset, &hdr, data);
}

/* Reads the filter warrend compiled (fd 4) and sets no_new_privs: everything of the load
 * that can fail but the kernel's taking of the program, so that a sandbox answers its ping
 * only once its filter is in hand. */
static int read_filter(struct sock_fprog *ret)
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
        if (n != st.st_size || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                fprintf(stderr, "warren-init: read syscall filter: %s\n", strerror(errno));
                free(insns);
                return -1;
        }
        *ret = (struct sock_fprog){.len = (unsigned short)(st.st_size / sizeof *insns), .filter = insns};
        return 0;
}

static int load_filter(struct sock_fprog *prog)
{
        int r = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog);
        if (r < 0)
                fprintf(stderr, "warren-init: load syscall filter: %s\n", strerror(errno));
        free(prog->filter);
        return r;
}

/* Whether a frame, whole in buf, is the host's ping: a REQUEST whose JSON is {"op": "ping"}. */
static bool is_ping_frame(const unsigned char *buf, size_t n)
{
        if (n < 5 || buf[4] != FRAME_REQUEST)
                return false;
        uint32_t len = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
        if (len != n - 4)
                return false;
        json_t *req = json_loadb((const char *)buf + 5, n - 5, 0, NULL);
        const char *op = json_string_value(json_object_get(req, "op"));
        bool ping = op && !strcmp(op, "ping") && json_object_size(req) == 1;
        json_decref(req);
        return ping;
}

/* The host's first call is its ping, made as soon as the launch returns, and a create
 * answers only after it. It is answered here, with the filter read but before the kernel
 * takes it: that load (0.2 ms, the kernel checks and compiles the program) is the longest
 * step of this start, and the create need not wait for it. Nothing runs in the sandbox
 * before the filter is in, and this reads nothing but the one frame: a first call that is
 * anything else is left whole, a session for the main loop, which starts after the load.
 * Bounded: with no call in 10 s, the start goes on without. */
static void answer_first_ping(void)
{
        struct pollfd p = {.fd = LISTEN_FD, .events = POLLIN};
        if (poll(&p, 1, 10000) != 1)
                return;
        int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
        struct session *s = fd >= 0 ? session_open(fd) : NULL;
        if (!s)
                return;
        unsigned char buf[64];
        ssize_t n = -1;
        p = (struct pollfd){.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) == 1)
                n = recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 && is_ping_frame(buf, (size_t)n) && recv(fd, buf, (size_t)n, MSG_DONTWAIT) == n)
                answer_ping(s); /* and ends the session */
}

static int setup(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        for (int i = 0; i < MAX_SESSIONS; i++)
                sessions[i] = (struct session){
                    .conn = -1, .state = SESSION_DONE, .out_fd = -1, .err_fd = -1, .in_fd = -1};
        /* Only 0-2, the agent socket, the filter, the environment and the files socket are
         * expected. */
        close_range(FILES_FD + 1, ~0U, 0);
        if (fcntl(FILES_FD, F_GETFD) < 0)
                files_fd = -1; /* started without it: transfers all come through agent.sock */
        spawn_set_base_env(read_env());
        signal(SIGPIPE, SIG_IGN);
        if (drop_capabilities() < 0) {
                fprintf(stderr, "warren-init: drop capabilities: %s\n", strerror(errno));
                return -1;
        }
        struct sock_fprog filter;
        if (read_filter(&filter) < 0)
                return -1;
        answer_first_ping();
        return load_filter(&filter);
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
        struct pollfd pfd[3 + 4 * MAX_SESSIONS + 2 * JOBS_MAX + 5 * CONTEXTS_MAX + WATCHES_MAX];
        for (;;) {
                int n = 0;
                pfd[n++] = (struct pollfd){.fd = LISTEN_FD, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = files_fd, .events = POLLIN};
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
                n += jobs_poll_fds(pfd + n, (int)(sizeof pfd / sizeof *pfd) - n);
                n += contexts_poll_fds(pfd + n, (int)(sizeof pfd / sizeof *pfd) - n);
                n += watch_poll_fds(pfd + n, (int)(sizeof pfd / sizeof *pfd) - n);
                poll(pfd, (nfds_t)n, next_wakeup_ms());
                if (pfd[0].revents)
                        accept_one();
                if (pfd[2].revents)
                        accept_files();
                if (pfd[1].revents) {
                        struct signalfd_siginfo si;
                        while (read(sfd, &si, sizeof si) > 0)
                                ;
                }
                reap();
                jobs_service();
                contexts_service();
                watch_service();
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

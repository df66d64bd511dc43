/* Background commands and terminals; see init_jobs.h. */
#include "init_jobs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "init_spawn.h"
#include "init_util.h"
#include "protocol.h"

#define READ_CHUNK  65536
#define LABEL_MAX   256
#define MAX_TTY_DIM 1000

/* --- a stream's kept bytes: a ring of at most JOB_LOG_MAX ---------------------------- */

struct logbuf {
        char *data;
        size_t cap, len, head; /* the kept bytes are data[head ..] wrapping, len of them */
        long long total;       /* bytes the stream has had; the first kept one is total - len */
};

static void log_append(struct logbuf *b, const char *p, size_t n)
{
        if (n >= JOB_LOG_MAX) { /* only the last JOB_LOG_MAX bytes can be kept */
                b->total += (long long)(n - JOB_LOG_MAX);
                b->len = b->head = 0;
                p += n - JOB_LOG_MAX;
                n = JOB_LOG_MAX;
        }
        if (b->len + n > b->cap && b->cap < JOB_LOG_MAX) { /* grow, straightening the ring */
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n && cap < JOB_LOG_MAX)
                        cap *= 2;
                cap = cap < JOB_LOG_MAX ? cap : JOB_LOG_MAX;
                char *nd = malloc(cap);
                if (!nd)
                        return;
                for (size_t i = 0; i < b->len; i++)
                        nd[i] = b->data[(b->head + i) % b->cap];
                free(b->data);
                b->data = nd;
                b->cap = cap;
                b->head = 0;
        }
        if (b->len + n > b->cap) { /* full: the oldest bytes go */
                size_t drop = b->len + n - b->cap;
                b->head = (b->head + drop) % b->cap;
                b->len -= drop;
        }
        size_t at = (b->head + b->len) % b->cap, first = n < b->cap - at ? n : b->cap - at;
        memcpy(b->data + at, p, first);
        memcpy(b->data, p + first, n - first);
        b->len += n;
        b->total += (long long)n;
}

/* Sends the kept bytes from stream offset `from` (at most max) as frames of `type`; returns
 * the offset after them and how many bytes before `from`... were already dropped. */
static long long log_send(int conn, uint8_t type, const struct logbuf *b, long long from, long long max,
                          long long *ret_dropped)
{
        long long first = b->total - (long long)b->len;
        *ret_dropped = from < first ? first - from : 0;
        if (from < first)
                from = first;
        if (from > b->total)
                from = b->total;
        long long end = from + max < b->total ? from + max : b->total;
        char chunk[READ_CHUNK];
        for (long long off = from; off < end;) {
                size_t n = 0;
                while (n < sizeof chunk && off + (long long)n < end) {
                        chunk[n] = b->data[(b->head + (size_t)(off + (long long)n - first)) % b->cap];
                        n++;
                }
                if (frame_write(conn, type, chunk, n) < 0)
                        break;
                off += (long long)n;
        }
        return end;
}

static void log_free(struct logbuf *b)
{
        free(b->data);
        *b = (struct logbuf){0};
}

/* --- the jobs ---------------------------------------------------------------------------- */

struct job {
        bool used, tty;
        char id[16];
        char label[LABEL_MAX];
        struct spawned sp;
        struct logbuf out, err; /* a pty has only out: its unread output */
        char *in_buf;           /* pty input not yet taken by the terminal */
        size_t in_len;
        long long started_at;  /* wall clock, ms */
        long long ended_at;    /* wall clock, ms; 0 while running */
        long long deadline_ms; /* monotonic; 0: none */
        bool exited, killed, timed_out;
        int status;
        unsigned seq; /* start order, for eviction */
};

static struct job jobs[JOBS_MAX];
static unsigned next_seq, next_id;

static void job_close_fds(struct job *j)
{
        if (j->tty) { /* one master for in and out */
                init_close_fd(&j->sp.out_fd);
                j->sp.in_fd = -1;
        } else {
                init_close_fd(&j->sp.in_fd);
                init_close_fd(&j->sp.out_fd);
                init_close_fd(&j->sp.err_fd);
        }
}

static void job_free(struct job *j)
{
        job_close_fds(j);
        log_free(&j->out);
        log_free(&j->err);
        free(j->in_buf);
        *j = (struct job){0};
}

static const char *job_status(const struct job *j)
{
        if (!j->exited)
                return "running";
        return j->timed_out ? "timeout" : j->killed ? "killed" : "exited";
}

static void put_exit(json_t *o, const struct job *j)
{
        if (!j->exited)
                return;
        int code = WIFEXITED(j->status) ? WEXITSTATUS(j->status) : 128 + WTERMSIG(j->status);
        json_object_set_new(o, "exit_code", json_integer(code));
        if (WIFSIGNALED(j->status))
                json_object_set_new(o, "signal", json_integer(WTERMSIG(j->status)));
}

static struct job *job_find(const char *id)
{
        for (int i = 0; id && i < JOBS_MAX; i++)
                if (jobs[i].used && strcmp(jobs[i].id, id) == 0)
                        return &jobs[i];
        return NULL;
}

/* A free slot, or the slot of the job that ended longest ago. */
static struct job *job_slot(void)
{
        struct job *oldest = NULL;
        for (int i = 0; i < JOBS_MAX; i++) {
                if (!jobs[i].used)
                        return &jobs[i];
                if (jobs[i].exited && jobs[i].sp.out_fd < 0 && (!oldest || jobs[i].seq < oldest->seq))
                        oldest = &jobs[i];
        }
        if (oldest)
                job_free(oldest);
        return oldest;
}

/* --- requests -------------------------------------------------------------------------- */

static struct job *job_of(int conn, json_t *req, bool want_tty)
{
        struct job *j = job_find(json_string_value(json_object_get(req, "id")));
        if (!j || j->tty != want_tty) {
                frame_send_error(conn, "not_found", "no %s with that id", want_tty ? "pty" : "command");
                return NULL;
        }
        return j;
}

static void do_start(int conn, json_t *req)
{
        bool tty = json_is_true(json_object_get(req, "tty"));
        const char *user = json_string_value(json_object_get(req, "user"));
        long long cols = json_integer_value(json_object_get(req, "cols")),
                  rows = json_integer_value(json_object_get(req, "rows"));
        if (tty && (cols < 1 || cols > MAX_TTY_DIM || rows < 1 || rows > MAX_TTY_DIM)) {
                frame_send_error(conn, "bad_request", "cols and rows must be 1 to %d", MAX_TTY_DIM);
                return;
        }
        struct job *j = job_slot();
        if (!j) {
                frame_send_error(conn, "busy", "%d commands and ptys are running in this sandbox", JOBS_MAX);
                return;
        }
        struct spawn_spec spec = {
            .argv = json_object_get(req, "argv"),
            .env = json_object_get(req, "env"),
            .cwd = json_string_value(json_object_get(req, "cwd")),
            .root = user && strcmp(user, "root") == 0,
            .tty = tty,
            .cols = (unsigned short)cols,
            .rows = (unsigned short)rows,
        };
        const char *code;
        char msg[256];
        struct spawned sp;
        if (spawn_start(&spec, &sp, &code, msg) < 0) {
                frame_send_error(conn, code, "%s", msg);
                return;
        }
        *j =
            (struct job){.used = true, .tty = tty, .sp = sp, .started_at = init_wall_ms(), .seq = next_seq++};
        snprintf(j->id, sizeof j->id, "%c%u", tty ? 'p' : 'c', ++next_id);
        snprintf(j->label, sizeof j->label, "%s", json_string_value(json_object_get(req, "label")) ?: "");
        long long timeout = json_integer_value(json_object_get(req, "timeout_ms"));
        j->deadline_ms = timeout > 0 ? init_mono_ms() + timeout : 0;
        if (!tty)
                init_close_fd(&j->sp.in_fd); /* a background command reads nothing */
        frame_send_json(conn, FRAME_RESULT, json_pack("{s:s, s:i}", "id", j->id, "pid", (int)sp.pid));
}

static json_t *job_json(const struct job *j)
{
        json_t *o = json_pack("{s:s, s:i, s:s, s:s, s:I}", "id", j->id, "pid", (int)j->sp.pid, "label",
                              j->label, "status", job_status(j), "started_at", (json_int_t)j->started_at);
        put_exit(o, j);
        if (j->ended_at)
                json_object_set_new(o, "ended_at", json_integer(j->ended_at));
        return o;
}

static void do_list(int conn, json_t *req)
{
        bool tty = json_is_true(json_object_get(req, "tty"));
        json_t *list = json_array();
        /* In start order. */
        for (unsigned seq = 0, seen = 0; seq < next_seq; seq++)
                for (int i = 0; i < JOBS_MAX && seen < JOBS_MAX; i++)
                        if (jobs[i].used && jobs[i].seq == seq && jobs[i].tty == tty) {
                                json_array_append_new(list, job_json(&jobs[i]));
                                seen++;
                        }
        frame_send_json(conn, FRAME_RESULT, json_pack("{s:o}", "jobs", list));
}

static void do_logs(int conn, json_t *req)
{
        struct job *j = job_of(conn, req, false);
        if (!j)
                return;
        long long max = json_integer_value(json_object_get(req, "max_bytes"));
        if (max <= 0 || max > JOB_LOG_MAX)
                max = JOB_LOG_MAX;
        long long out_drop, err_drop;
        long long out_next =
            log_send(conn, FRAME_STDOUT, &j->out, json_integer_value(json_object_get(req, "stdout_offset")),
                     max, &out_drop);
        long long err_next =
            log_send(conn, FRAME_STDERR, &j->err, json_integer_value(json_object_get(req, "stderr_offset")),
                     max, &err_drop);
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I}", "status", job_status(j), "stdout_offset",
                              (json_int_t)out_next, "stderr_offset", (json_int_t)err_next, "stdout_dropped",
                              (json_int_t)out_drop, "stderr_dropped", (json_int_t)err_drop);
        put_exit(o, j);
        frame_send_json(conn, FRAME_RESULT, o);
}

static void do_kill(int conn, json_t *req)
{
        struct job *j = job_find(json_string_value(json_object_get(req, "id")));
        if (!j) {
                frame_send_error(conn, "not_found", "no command or pty with that id");
                return;
        }
        if (!j->exited && !j->killed) {
                j->killed = true;
                spawn_kill(j->sp.shepherd);
        }
        frame_send_json(conn, FRAME_RESULT,
                        json_pack("{s:s}", "status", j->exited ? job_status(j) : "killed"));
}

/* --- pty input, output, size --------------------------------------------------------- */

static int b64_value(int c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Standard base64 with padding; -1 if s is not that. */
static long long b64_decode(const char *s, size_t n, char *out)
{
        if (n % 4)
                return -1;
        long long len = 0;
        for (size_t i = 0; i < n; i += 4) {
                int v[4];
                for (int k = 0; k < 4; k++) {
                        v[k] =
                            s[i + k] == '=' && i + 4 == n && k >= 2 ? 0 : b64_value((unsigned char)s[i + k]);
                        if (v[k] < 0)
                                return -1;
                }
                unsigned x =
                    (unsigned)v[0] << 18 | (unsigned)v[1] << 12 | (unsigned)v[2] << 6 | (unsigned)v[3];
                out[len++] = (char)(x >> 16);
                if (s[i + 2] != '=')
                        out[len++] = (char)(x >> 8);
                if (s[i + 3] != '=')
                        out[len++] = (char)x;
        }
        return len;
}

static void pty_flush(struct job *j)
{
        size_t off = 0;
        while (j->sp.in_fd >= 0 && off < j->in_len) {
                ssize_t w = write(j->sp.in_fd, j->in_buf + off, j->in_len - off);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        break;
                off += (size_t)w;
        }
        memmove(j->in_buf, j->in_buf + off, j->in_len - off);
        j->in_len -= off;
}

static void do_input(int conn, json_t *req)
{
        struct job *j = job_of(conn, req, true);
        if (!j)
                return;
        if (j->exited || j->sp.in_fd < 0) {
                frame_send_error(conn, "not_running", "the pty's process has ended");
                return;
        }
        json_t *data = json_object_get(req, "data_b64");
        size_t n = json_string_length(data);
        if (j->in_len + n / 4 * 3 > JOB_LOG_MAX) {
                frame_send_error(conn, "busy", "the terminal is not taking its input");
                return;
        }
        char *nb = realloc(j->in_buf, j->in_len + n / 4 * 3 + 1);
        long long got = nb && data ? b64_decode(json_string_value(data), n, nb + j->in_len) : -1;
        if (nb)
                j->in_buf = nb;
        if (got < 0) {
                frame_send_error(conn, "bad_request", "data_b64 is not base64");
                return;
        }
        j->in_len += (size_t)got;
        pty_flush(j);
        frame_send_json(conn, FRAME_RESULT, json_pack("{s:I}", "written", (json_int_t)got));
}

static void do_output(int conn, json_t *req)
{
        struct job *j = job_of(conn, req, true);
        if (!j)
                return;
        jobs_service(); /* what the terminal has right now */
        long long dropped;
        long long first = j->out.total - (long long)j->out.len;
        log_send(conn, FRAME_STDOUT, &j->out, first, JOB_LOG_MAX, &dropped);
        /* dropped: output the terminal wrote since the last read that did not fit the buffer. */
        json_t *o =
            json_pack("{s:b, s:I}", "alive", !j->exited || j->sp.out_fd >= 0, "dropped", (json_int_t)first);
        j->out.len = j->out.head = 0; /* drained: what was read is gone */
        j->out.total = 0;
        put_exit(o, j);
        frame_send_json(conn, FRAME_RESULT, o);
}

static void do_resize(int conn, json_t *req)
{
        struct job *j = job_of(conn, req, true);
        if (!j)
                return;
        long long cols = json_integer_value(json_object_get(req, "cols")),
                  rows = json_integer_value(json_object_get(req, "rows"));
        if (cols < 1 || cols > MAX_TTY_DIM || rows < 1 || rows > MAX_TTY_DIM) {
                frame_send_error(conn, "bad_request", "cols and rows must be 1 to %d", MAX_TTY_DIM);
                return;
        }
        if (j->exited || j->sp.out_fd < 0) {
                frame_send_error(conn, "not_running", "the pty's process has ended");
                return;
        }
        /* The kernel tells the terminal's foreground process group (SIGWINCH). */
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        if (ioctl(j->sp.out_fd, TIOCSWINSZ, &ws) < 0) {
                frame_send_error(conn, "internal", "resize: %s", strerror(errno));
                return;
        }
        frame_send_json(conn, FRAME_RESULT, json_object());
}

bool jobs_handle(int conn, const char *op, json_t *req)
{
        static const struct {
                const char *op;
                void (*fn)(int, json_t *);
        } ops[] = {{"job_start", do_start},  {"job_list", do_list},   {"job_logs", do_logs},
                   {"job_kill", do_kill},    {"pty_input", do_input}, {"pty_output", do_output},
                   {"pty_resize", do_resize}};
        for (size_t i = 0; i < sizeof ops / sizeof *ops; i++)
                if (strcmp(op, ops[i].op) == 0) {
                        ops[i].fn(conn, req);
                        return true;
                }
        return false;
}

/* --- the loop's side ----------------------------------------------------------------- */

int jobs_poll_fds(struct pollfd *pfd, int max)
{
        int n = 0;
        for (int i = 0; i < JOBS_MAX && n + 2 <= max; i++) {
                struct job *j = &jobs[i];
                if (!j->used)
                        continue;
                if (j->sp.out_fd >= 0)
                        pfd[n++] = (struct pollfd){.fd = j->sp.out_fd,
                                                   .events = POLLIN | (j->tty && j->in_len ? POLLOUT : 0)};
                if (!j->tty && j->sp.err_fd >= 0)
                        pfd[n++] = (struct pollfd){.fd = j->sp.err_fd, .events = POLLIN};
        }
        return n;
}

/* Reads what fd has into b; closes fd at its end (EOF, or EIO: a pty whose last slave closed). */
static void drain(int *fd, struct logbuf *b)
{
        char buf[READ_CHUNK];
        for (int rounds = 0; *fd >= 0 && rounds < 16; rounds++) {
                ssize_t n = init_read_some(fd, buf, sizeof buf);
                if (n <= 0)
                        return;
                log_append(b, buf, (size_t)n);
        }
}

void jobs_service(void)
{
        for (int i = 0; i < JOBS_MAX; i++) {
                struct job *j = &jobs[i];
                if (!j->used)
                        continue;
                if (j->tty && j->in_len)
                        pty_flush(j);
                drain(&j->sp.out_fd, &j->out);
                if (j->tty)
                        j->sp.in_fd = j->sp.out_fd;
                else
                        drain(&j->sp.err_fd, &j->err);
        }
}

bool jobs_reaped(pid_t pid, int status)
{
        for (int i = 0; i < JOBS_MAX; i++) {
                struct job *j = &jobs[i];
                if (j->used && !j->exited && j->sp.shepherd == pid) {
                        j->exited = true;
                        j->status = status;
                        j->ended_at = init_wall_ms();
                        return true;
                }
        }
        return false;
}

void jobs_check(long long now)
{
        for (int i = 0; i < JOBS_MAX; i++) {
                struct job *j = &jobs[i];
                if (j->used && !j->exited && !j->killed && j->deadline_ms && now >= j->deadline_ms) {
                        j->timed_out = j->killed = true;
                        spawn_kill(j->sp.shepherd);
                }
        }
}

long long jobs_next_deadline(void)
{
        long long next = 0;
        for (int i = 0; i < JOBS_MAX; i++) {
                const struct job *j = &jobs[i];
                if (j->used && !j->exited && !j->killed && j->deadline_ms && (!next || j->deadline_ms < next))
                        next = j->deadline_ms;
        }
        return next;
}

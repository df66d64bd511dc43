#include "agent.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "protocol.h"

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Frames from an agent are bounded: warren-init sends output in chunks of at most 64 KiB,
 * and a context's event (a large figure, a table's HTML) is at most 8 MiB of JSON. */
#define AGENT_FRAME_MAX ((8u << 20) + 4096)

/* Connects without ever sleeping: a stopped agent (root inside can ptrace it) fills its
 * backlog, and a blocking connect would then wait with no limit. */
static int agent_connect(const char *sock_path, int *ret_fd, char err[AGENT_ERR_MAX])
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        if (strlen(sock_path) >= sizeof addr.sun_path)
                return -ENAMETOOLONG;
        strcpy(addr.sun_path, sock_path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
                snprintf(err, AGENT_ERR_MAX, "the sandbox's agent is not %s: %s",
                         errno == EAGAIN ? "accepting connections" : "answering", strerror(errno));
                return -ECONNREFUSED;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* What the host still has to send, sent as the socket takes it. */
struct outbuf {
        char *data;
        size_t len, off;
};

static int outbuf_frame(struct outbuf *o, uint8_t type, const void *payload, size_t len)
{
        char *nd = realloc(o->data, o->len + 5 + len);
        if (!nd)
                return -ENOMEM;
        o->data = nd;
        uint32_t n = (uint32_t)len + 1;
        unsigned char head[5] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                                 (unsigned char)n, type};
        memcpy(o->data + o->len, head, 5);
        if (len)
                memcpy(o->data + o->len + 5, payload, len);
        o->len += 5 + len;
        return 0;
}

static int outbuf_request(struct outbuf *o, json_t *request, const char *stdin_data, size_t stdin_len)
{
        _cleanup_free_ char *text = json_dumps(request, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        int r = outbuf_frame(o, FRAME_REQUEST, text, strlen(text));
        for (size_t off = 0; r == 0 && stdin_data && off < stdin_len; off += 65536)
                r = outbuf_frame(o, FRAME_STDIN, stdin_data + off,
                                 stdin_len - off > 65536 ? 65536 : stdin_len - off);
        if (r == 0 && stdin_data)
                r = outbuf_frame(o, FRAME_STDIN_EOF, NULL, 0);
        return r;
}

/* The next chunk of streamed input, framed, in place of what went out before. */
#define INPUT_CHUNK (256 * 1024)
static int next_input(struct outbuf *o, const struct agent_stream *stream, char *chunk, bool *open)
{
        o->len = o->off = 0;
        long n = stream->read_input(stream->arg, chunk, INPUT_CHUNK);
        if (n < 0)
                return -EIO;
        if (n == 0) {
                *open = false;
                return outbuf_frame(o, FRAME_STDIN_EOF, NULL, 0);
        }
        return outbuf_frame(o, FRAME_STDIN, chunk, (size_t)n);
}

/* Sends what the socket takes now; -EPIPE when the agent went away. */
static int outbuf_flush(struct outbuf *o, int fd)
{
        while (o->off < o->len) {
                ssize_t n = write(fd, o->data + o->off, o->len - o->off);
                if (n < 0)
                        return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -EPIPE;
                o->off += (size_t)n;
        }
        return 0;
}

/* Appends to a capped buffer; what does not fit is dropped and marked truncated. */
static int append(char **buf, size_t *len, size_t cap, const char *data, size_t n, bool *truncated)
{
        if (*len + n > cap) {
                *truncated = true;
                n = cap - *len;
        }
        char *nb = realloc(*buf, *len + n + 1);
        if (!nb)
                return -ENOMEM;
        memcpy(nb + *len, data, n);
        *len += n;
        nb[*len] = 0;
        *buf = nb;
        return 0;
}

static void read_exit(struct agent_result *res, const char *payload)
{
        json_t *j = json_loads(payload, 0, NULL);
        json_t *code = json_object_get(j, "exit_code");
        res->exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
        res->signal = (int)json_integer_value(json_object_get(j, "signal"));
        res->timed_out = json_is_true(json_object_get(j, "timed_out"));
        res->truncated = res->truncated || json_is_true(json_object_get(j, "truncated"));
        res->duration_ms = json_integer_value(json_object_get(j, "duration_ms"));
        json_decref(j);
}

static void read_error(struct agent_result *res, const char *payload)
{
        json_t *j = json_loads(payload, 0, NULL);
        snprintf(res->error, sizeof res->error, "%s",
                 json_string_value(json_object_get(j, "error")) ?: "agent error");
        snprintf(res->error_code, sizeof res->error_code, "%s",
                 json_string_value(json_object_get(j, "code")) ?: "internal");
        json_t *code = json_object_get(j, "exit_code"); /* a context's kernel that died */
        if (json_is_integer(code))
                res->exit_code = (int)json_integer_value(code);
        json_decref(j);
}

/* One frame from the agent, folded into res. Returns 1 when the session is over, 0 to go on. */
static int take_frame(struct agent_result *res, struct frame *f, size_t max_output, char err[AGENT_ERR_MAX])
{
        switch (f->type) {
        case FRAME_STARTED:
                res->started = true;
                return 0;
        case FRAME_EVENT: {
                /* A context's rich output; kept (bounded like the rest) in arrival order. */
                json_t *ev = json_loadb(f->payload, f->len, 0, NULL);
                if (!json_is_object(ev)) {
                        json_decref(ev);
                        snprintf(err, AGENT_ERR_MAX, "the sandbox's agent sent a malformed event");
                        return -EPROTO;
                }
                res->events_bytes += f->len;
                if (res->events_bytes > 4 * max_output) {
                        res->truncated = true;
                        json_decref(ev);
                        return 0;
                }
                if (!res->events)
                        res->events = json_array();
                json_array_append_new(res->events, ev);
                return 0;
        }
        case FRAME_STDOUT:
                return append(&res->out, &res->out_len, max_output, f->payload, f->len, &res->truncated);
        case FRAME_STDERR:
                return append(&res->err, &res->err_len, max_output, f->payload, f->len, &res->truncated);
        case FRAME_EXIT:
                read_exit(res, f->payload);
                return 1;
        case FRAME_ERROR:
                read_error(res, f->payload);
                return 1;
        case FRAME_RESULT:
                json_decref(res->result);
                res->result = json_loads(f->payload, 0, NULL);
                if (!json_is_object(res->result)) {
                        snprintf(err, AGENT_ERR_MAX, "the sandbox's agent sent a malformed answer");
                        return -EPROTO;
                }
                return 1;
        default:
                snprintf(err, AGENT_ERR_MAX, "the sandbox's agent sent an unexpected frame");
                return -EPROTO;
        }
}

int agent_exec(const char *sock_path, json_t *request, const char *stdin_data, size_t stdin_len,
               size_t max_output, int deadline_ms, const struct agent_stream *stream,
               struct agent_result *ret, char err[AGENT_ERR_MAX])
{
        struct agent_result res = {.exit_code = -1};
        struct outbuf out = {0};
        _cleanup_close_ int fd = -1;
        int r = agent_connect(sock_path, &fd, err);
        if (r < 0)
                return r;
        if ((r = outbuf_request(&out, request, stdin_data, stdin_len)) < 0) {
                free(out.data);
                return r;
        }
        /* One loop, one deadline: input goes out as the socket takes it while output is
         * read as it comes, so neither side can wedge the other with full buffers. */
        long long deadline = now_ms() + deadline_ms;
        int done = 0;
        bool input_open = stream && stream->read_input;
        _cleanup_free_ char *chunk = input_open ? malloc(INPUT_CHUNK) : NULL;
        if (input_open && !chunk) {
                free(out.data);
                return -ENOMEM;
        }
        while (!done) {
                if (input_open && out.off == out.len &&
                    (r = next_input(&out, stream, chunk, &input_open)) < 0)
                        break;
                long long left = deadline - now_ms();
                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                struct pollfd p = {.fd = fd, .events = POLLIN | (out.off < out.len ? POLLOUT : 0)};
                long long wait = left > 60000 ? 60000 : left;
                if (stream && stream->idle_ms > 0 && wait > stream->idle_ms)
                        wait = stream->idle_ms;
                int ready = poll(&p, 1, (int)wait);
                if (ready < 0 && errno != EINTR) {
                        r = -errno;
                        break;
                }
                if (ready == 0 && stream && stream->on_idle && stream->on_idle(stream->arg) < 0) {
                        r = -ECONNABORTED;
                        break;
                }
                if ((p.revents & POLLOUT) && (r = outbuf_flush(&out, fd)) < 0) {
                        if (!(stream && stream->read_input))
                                break;
                        /* The agent stopped reading a streamed input (it failed: a full disk,
                         * a refused path); what it said about it is still to be read. */
                        out.off = out.len;
                        input_open = false;
                        r = 0;
                }
                if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                struct frame f;
                r = frame_read(fd, &f, AGENT_FRAME_MAX, (int)left);
                if (r <= 0) {
                        r = r == 0 ? -EPROTO : r;
                        break;
                }
                r = take_frame(&res, &f, max_output, err);
                if (r >= 0 && stream && stream->on_frame &&
                    (f.type == FRAME_STARTED || f.type == FRAME_STDOUT || f.type == FRAME_STDERR ||
                     f.type == FRAME_EVENT) &&
                    stream->on_frame(stream->arg, f.type, f.payload, f.len) < 0)
                        r = -ECONNABORTED;
                frame_clear(&f);
                if (r < 0)
                        break;
                done = r;
        }
        free(out.data);
        if (!done) {
                agent_result_clear(&res);
                if (r == -ETIMEDOUT)
                        snprintf(err, AGENT_ERR_MAX, "the sandbox did not finish within %d ms", deadline_ms);
                else if (r == -EPROTO || r == -EPIPE)
                        snprintf(err, AGENT_ERR_MAX, "the sandbox's agent broke off the session");
                else if (r == -ECONNABORTED)
                        snprintf(err, AGENT_ERR_MAX, "the client went away");
                else if (r == -EIO)
                        snprintf(err, AGENT_ERR_MAX, "the upload broke off before its end");
                return r == -EPIPE ? -EPROTO : r;
        }
        if (!res.out)
                res.out = strdup("");
        if (!res.err)
                res.err = strdup("");
        *ret = res;
        return 0;
}

void agent_result_clear(struct agent_result *r)
{
        free(r->out);
        free(r->err);
        r->out = r->err = NULL;
        json_decref(r->result);
        r->result = NULL;
        json_decref(r->events);
        r->events = NULL;
}

/* Sends one request that runs nothing and waits for its RESULT frame. */
static int agent_call(const char *sock_path, json_t *req, const char *what, int timeout_ms,
                      char err[AGENT_ERR_MAX])
{
        _cleanup_close_ int fd = -1;
        int r = agent_connect(sock_path, &fd, err);
        if (r < 0)
                return r;
        struct outbuf out = {0};
        r = req ? outbuf_request(&out, req, NULL, 0) : -ENOMEM;
        if (r == 0) {
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                r = poll(&p, 1, timeout_ms) == 1 ? outbuf_flush(&out, fd) : -ETIMEDOUT;
                if (r == 0 && out.off < out.len)
                        r = -ETIMEDOUT;
        }
        free(out.data);
        if (r < 0) {
                snprintf(err, AGENT_ERR_MAX, "the sandbox's agent did not take a %s", what);
                return r;
        }
        struct frame f;
        r = frame_read(fd, &f, 4096, timeout_ms);
        if (r <= 0) {
                snprintf(err, AGENT_ERR_MAX, "the sandbox's agent did not answer a %s", what);
                return r == 0 ? -EPROTO : r;
        }
        bool ok = f.type == FRAME_RESULT;
        frame_clear(&f);
        if (!ok)
                snprintf(err, AGENT_ERR_MAX, "the sandbox's agent refused a %s", what);
        return ok ? 0 : -EPROTO;
}

int agent_ping(const char *sock_path, int timeout_ms, char err[AGENT_ERR_MAX])
{
        json_t *req = json_pack("{s:s}", "op", "ping");
        int r = agent_call(sock_path, req, "ping", timeout_ms, err);
        json_decref(req);
        return r;
}

int agent_configure(const char *sock_path, json_t *env, int timeout_ms, char err[AGENT_ERR_MAX])
{
        json_t *req =
            json_pack("{s:s, s:o}", "op", "configure", "env", env ? json_incref(env) : json_object());
        int r = agent_call(sock_path, req, "configuration", timeout_ms, err);
        json_decref(req);
        return r;
}

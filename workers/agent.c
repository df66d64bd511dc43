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

static int agent_connect(const char *sock_path, int *ret_fd, char err[AGENT_ERR_MAX])
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        if (strlen(sock_path) >= sizeof addr.sun_path)
                return -ENAMETOOLONG;
        strcpy(addr.sun_path, sock_path);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
                int r = errno == ENOENT ? -ECONNREFUSED : -errno;
                snprintf(err, AGENT_ERR_MAX, "the sandbox's agent is not answering: %s", strerror(errno));
                return r;
        }
        /* A stuck agent must never block a worker on a write either. */
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int send_request(int fd, json_t *request, char err[AGENT_ERR_MAX])
{
        _cleanup_free_ char *text = json_dumps(request, JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        int r = frame_write(fd, FRAME_REQUEST, text, strlen(text));
        if (r < 0)
                snprintf(err, AGENT_ERR_MAX, "send to the sandbox's agent: %s", strerror(-r));
        return r;
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
        json_decref(j);
}

int agent_exec(const char *sock_path, json_t *request, const char *stdin_data, size_t stdin_len,
               size_t max_output, int deadline_ms, struct agent_result *ret, char err[AGENT_ERR_MAX])
{
        struct agent_result res = {.exit_code = -1};
        _cleanup_close_ int fd = -1;
        int r = agent_connect(sock_path, &fd, err);
        if (r < 0 || (r = send_request(fd, request, err)) < 0)
                return r;
        if (stdin_data) {
                for (size_t off = 0; off < stdin_len && r == 0; off += 1 << 20) {
                        size_t n = stdin_len - off > (1 << 20) ? 1 << 20 : stdin_len - off;
                        r = frame_write(fd, FRAME_STDIN, stdin_data + off, n);
                }
                if (r == 0)
                        r = frame_write(fd, FRAME_STDIN_EOF, NULL, 0);
                if (r < 0) {
                        snprintf(err, AGENT_ERR_MAX, "send input to the sandbox: %s", strerror(-r));
                        return r;
                }
        }
        long long deadline = now_ms() + deadline_ms;
        for (;;) {
                long long left = deadline - now_ms();
                if (left <= 0) {
                        agent_result_clear(&res);
                        snprintf(err, AGENT_ERR_MAX, "the sandbox did not finish within %d ms", deadline_ms);
                        return -ETIMEDOUT;
                }
                struct frame f;
                r = frame_read(fd, &f, FRAME_MAX_PAYLOAD, (int)left);
                if (r <= 0) {
                        agent_result_clear(&res);
                        if (r == -ETIMEDOUT) {
                                snprintf(err, AGENT_ERR_MAX, "the sandbox did not finish within %d ms",
                                         deadline_ms);
                                return r;
                        }
                        snprintf(err, AGENT_ERR_MAX, "the sandbox's agent broke off the session");
                        return -EPROTO;
                }
                bool done = false;
                switch (f.type) {
                case FRAME_STARTED:
                        break;
                case FRAME_STDOUT:
                        r = append(&res.out, &res.out_len, max_output, f.payload, f.len, &res.truncated);
                        break;
                case FRAME_STDERR:
                        r = append(&res.err, &res.err_len, max_output, f.payload, f.len, &res.truncated);
                        break;
                case FRAME_EXIT:
                        read_exit(&res, f.payload);
                        done = true;
                        break;
                case FRAME_ERROR:
                        read_error(&res, f.payload);
                        done = true;
                        break;
                default:
                        frame_clear(&f);
                        agent_result_clear(&res);
                        snprintf(err, AGENT_ERR_MAX, "the sandbox's agent sent an unexpected frame");
                        return -EPROTO;
                }
                frame_clear(&f);
                if (r < 0) {
                        agent_result_clear(&res);
                        return r;
                }
                if (done)
                        break;
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
}

int agent_ping(const char *sock_path, int timeout_ms, char err[AGENT_ERR_MAX])
{
        _cleanup_close_ int fd = -1;
        int r = agent_connect(sock_path, &fd, err);
        if (r < 0)
                return r;
        json_t *req = json_pack("{s:s}", "op", "ping");
        r = send_request(fd, req, err);
        json_decref(req);
        if (r < 0)
                return r;
        struct frame f;
        r = frame_read(fd, &f, 4096, timeout_ms);
        if (r <= 0) {
                snprintf(err, AGENT_ERR_MAX, "the sandbox's agent did not answer a ping");
                return r == 0 ? -EPROTO : r;
        }
        bool ok = f.type == FRAME_RESULT;
        frame_clear(&f);
        return ok ? 0 : -EPROTO;
}

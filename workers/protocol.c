/* Frame I/O for the host <-> agent protocol. Both sides use it; the host side always
 * passes a deadline, because the agent is hostile once user code has run. */
#include "protocol.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int frame_write(int fd, uint8_t type, const void *payload, size_t len)
{
        if (len > FRAME_MAX_PAYLOAD)
                return -EMSGSIZE;
        uint8_t head[5];
        uint32_t n = (uint32_t)len + 1;
        head[0] = (uint8_t)(n >> 24);
        head[1] = (uint8_t)(n >> 16);
        head[2] = (uint8_t)(n >> 8);
        head[3] = (uint8_t)n;
        head[4] = type;
        const uint8_t *parts[2] = {head, payload};
        size_t sizes[2] = {sizeof head, len};
        for (int i = 0; i < 2; i++) {
                size_t done = 0;
                while (done < sizes[i]) {
                        ssize_t w = write(fd, parts[i] + done, sizes[i] - done);
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN) {
                                        struct pollfd p = {.fd = fd, .events = POLLOUT};
                                        poll(&p, 1, 1000);
                                        continue;
                                }
                                return -errno;
                        }
                        done += (size_t)w;
                }
        }
        return 0;
}

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly n bytes before the deadline. Returns 1, 0 on EOF before any byte, or -errno. */
static int read_full(int fd, void *buf, size_t n, long long deadline)
{
        size_t done = 0;
        while (done < n) {
                if (deadline >= 0) {
                        long long left = deadline - now_ms();
                        if (left <= 0)
                                return -ETIMEDOUT;
                        struct pollfd p = {.fd = fd, .events = POLLIN};
                        int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
                        if (r < 0 && errno != EINTR)
                                return -errno;
                        if (r <= 0)
                                continue;
                }
                ssize_t got = read(fd, (char *)buf + done, n - done);
                if (got < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return -errno;
                }
                if (got == 0)
                        return done == 0 ? 0 : -EPROTO;
                done += (size_t)got;
        }
        return 1;
}

int frame_read(int fd, struct frame *ret, uint32_t max_payload, int timeout_ms)
{
        long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
        uint8_t head[5];
        int r = read_full(fd, head, sizeof head, deadline);
        if (r <= 0)
                return r;
        uint32_t n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
        if (n == 0 || n - 1 > max_payload)
                return -EPROTO;
        uint32_t len = n - 1;
        char *payload = malloc((size_t)len + 1);
        if (!payload)
                return -ENOMEM;
        if (len > 0) {
                r = read_full(fd, payload, len, deadline);
                if (r <= 0) {
                        free(payload);
                        return r == 0 ? -EPROTO : r;
                }
        }
        payload[len] = 0;
        *ret = (struct frame){.type = head[4], .len = len, .payload = payload};
        return 1;
}

void frame_clear(struct frame *f)
{
        free(f->payload);
        f->payload = NULL;
        f->len = 0;
}

int frame_send_json(int fd, uint8_t type, json_t *obj)
{
        char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(obj);
        if (!text)
                return -ENOMEM;
        int r = frame_write(fd, type, text, strlen(text));
        free(text);
        return r;
}

int frame_send_error(int fd, const char *code, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        return frame_send_json(fd, FRAME_ERROR, json_pack("{s:s, s:s}", "error", msg, "code", code));
}

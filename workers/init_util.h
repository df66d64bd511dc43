/* Small helpers shared by warren-init's parts (init.c, init_jobs.c, init_contexts.c). */
#pragma once

#include <errno.h>
#include <time.h>
#include <unistd.h>

/* Milliseconds on the monotonic clock: for deadlines. */
static inline long long init_mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds since the epoch: for times users read. */
static inline long long init_wall_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Closes *fd if open and marks it closed. */
static inline void init_close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* Reads what a non-blocking fd has now, into buf: the count; 0 when it has nothing yet;
 * -1 at its end (EOF, or an error such as a pty's EIO once its last slave closed), when
 * the fd is closed and marked so. */
static inline ssize_t init_read_some(int *fd, char *buf, size_t size)
{
        for (;;) {
                ssize_t n = read(*fd, buf, size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return 0;
                if (n <= 0) {
                        init_close_fd(fd);
                        return -1;
                }
                return n;
        }
}

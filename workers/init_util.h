/* Small helpers shared by warren-init's parts (init.c, init_jobs.c, init_contexts.c). */
#pragma once

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

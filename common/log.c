/* One JSON line per event on stderr, written with a single write(2) so that lines from
 * many threads and processes sharing the descriptor never interleave. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LEVEL_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
        min_level = level;
}

int log_level_parse(const char *s, enum log_level *ret_level)
{
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
                if (strcasecmp(s, level_names[i]) == 0) {
                        *ret_level = (enum log_level)i;
                        return 0;
                }
        return -EINVAL;
}

/* getpid() once per process: a forked worker resets it through log_reset_pid(). */
static pid_t cached_pid;

void log_reset_pid(void)
{
        cached_pid = getpid();
}

void log_event(enum log_level level, const char *msg, json_t *fields)
{
        if (level < min_level) {
                json_decref(fields);
                return;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        char stamp[40];
        size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);

        json_t *line = json_pack("{s:s, s:s, s:s, s:i}", "ts", stamp, "level", level_names[level], "msg", msg,
                                 "pid", (json_int_t)getpid());
        if (!line) {
                json_decref(fields);
                return;
        }
        if (fields)
                json_object_update(line, fields);
        json_decref(fields);
        char *text = json_dumps(line, JSON_COMPACT);
        json_decref(line);
        if (!text)
                return;
        size_t len = strlen(text);
        text[len] = '\n'; /* the terminating NUL becomes the newline; write len+1 bytes */
        ssize_t w = write(STDERR_FILENO, text, len + 1);
        (void)w;
        free(text);
}

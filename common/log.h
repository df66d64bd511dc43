/* Structured logging: one JSON object per line on stderr. Only the edges log (the request
 * handler, the master's loop, the CLI); library code returns errors instead. */
#pragma once

#include <jansson.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

void log_set_level(enum log_level level);
/* Call first thing in a new process (after fork) so log lines carry its own pid. */
void log_reset_pid(void);
int log_level_parse(const char *s, enum log_level *ret_level);
/* Writes {"ts":…,"level":…,"msg":…, …fields}. Steals the reference to fields (may be NULL). */
void log_event(enum log_level level, const char *msg, json_t *fields);

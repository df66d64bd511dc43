/* File watches kept by warren-init (inotify): they outlive the request that made them, so
 * any worker can poll them, and end with the sandbox.
 *
 *   watch_start {path, recursive} → RESULT {watch_id}
 *   watch_poll {id}               → RESULT {events: [{type, path, is_dir, at}], dropped}
 *   watch_stop {id}               → RESULT {stopped}
 * type: create, write, remove, rename (the old name; the new one is a create), chmod.
 * A watch keeps the last 10,000 events between polls; an unknown id is not_found. */
#pragma once

#include <jansson.h>
#include <poll.h>
#include <stdbool.h>

#define WATCHES_MAX 64

bool watch_handle(int conn, const char *op, json_t *req);
int watch_poll_fds(struct pollfd *pfd, int max);
void watch_service(void);

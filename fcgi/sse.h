/* Server-sent events: a streamed answer of "event: <name>\ndata: <json>\n\n" records. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "request.h"

/* Output passed on as events. A character cut between two pieces is held back until the
 * rest of it arrives, so every event's text is whole UTF-8. */
struct sse {
        struct http_ctx *ctx;
        bool started;    /* the 200 and its headers went out */
        char hold[2][4]; /* stdout, stderr: the start of a character not yet complete */
        size_t held[2];
};

/* Sends the answer's head (200, text/event-stream); < 0 when the client has gone. */
int sse_begin(struct sse *s);
/* One event; data (stolen) is its JSON. */
int sse_event(struct http_ctx *ctx, const char *event, json_t *data);
/* Output of stream `which` (0 stdout, 1 stderr) as a "stdout" or "stderr" event {text}. */
int sse_output(struct sse *s, int which, const char *data, size_t len);
/* What is still held back (a character that never came whole), as U+FFFD. */
void sse_flush_held(struct sse *s);
/* A comment line, which keeps proxies from cutting a silent stream. */
int sse_keepalive(struct sse *s);

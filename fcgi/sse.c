/* Server-sent events; see sse.h. */
#include "sse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cleanup.h"
#include "json_fields.h"

int sse_begin(struct sse *s)
{
        s->started = true;
        return http_stream_begin(s->ctx, "text/event-stream");
}

int sse_event(struct http_ctx *ctx, const char *event, json_t *data)
{
        _cleanup_free_ char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
        json_decref(data);
        if (!text)
                return -ENOMEM;
        size_t n = strlen(text) + strlen(event) + 32;
        _cleanup_free_ char *buf = malloc(n);
        if (!buf)
                return -ENOMEM;
        int len = snprintf(buf, n, "event: %s\ndata: %s\n\n", event, text);
        return http_stream_write(ctx, buf, (size_t)len);
}

int sse_output(struct sse *s, int which, const char *data, size_t len)
{
        _cleanup_free_ char *buf = malloc(s->held[which] + len);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, s->hold[which], s->held[which]);
        memcpy(buf + s->held[which], data, len);
        size_t total = s->held[which] + len, keep = utf8_incomplete_tail(buf, total);
        memcpy(s->hold[which], buf + total - keep, keep);
        s->held[which] = keep;
        if (total == keep)
                return 0;
        return sse_event(s->ctx, which ? "stderr" : "stdout",
                         json_pack("{s:o}", "text", api_text_json(buf, total - keep)));
}

void sse_flush_held(struct sse *s)
{
        for (int which = 0; which < 2; which++)
                if (s->held[which]) {
                        sse_event(s->ctx, which ? "stderr" : "stdout",
                                  json_pack("{s:o}", "text", api_text_json(s->hold[which], s->held[which])));
                        s->held[which] = 0;
                }
}

int sse_keepalive(struct sse *s)
{
        return s->started ? http_stream_write(s->ctx, ": keep-alive\n\n", 14) : 0;
}

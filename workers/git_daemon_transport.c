/* libgit2's git:// transport, wrapped to drop one repeated request.
 *
 * On a stateful connection (git://) a shallow fetch first sends its wants and a "deepen N"
 * line, then reads the server's shallow list. libgit2 before 1.9 keeps that first request in
 * its buffer and sends it again in front of the next one (the haves, or "done"). git daemon's
 * upload-pack, by then reading haves, gets a want and hangs up, so every shallow clone over
 * git:// failed. Over http(s) each request is meant to repeat the wants, so only git:// needs
 * this.
 *
 * The wrapper passes everything through to libgit2's own subtransport, except that the write
 * right after a deepening request loses a leading copy of that request. Later libgit2 clears
 * its buffer, so no write starts with the earlier one and nothing is dropped. */
#include "git_daemon_transport.h"

#include <git2/sys/errors.h>
#include <git2/sys/transport.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct repeat_filter_stream {
        git_smart_subtransport_stream parent;
        git_smart_subtransport_stream *inner;
        char *deepening; /* the deepening request sent last, until the next write */
        size_t deepening_len;
};

struct repeat_filter {
        git_smart_subtransport parent;
        git_smart_subtransport *inner;
        struct repeat_filter_stream *stream; /* one per connection, as the stateful inner's */
};

/* Whether a buffer of pkt-lines holds a "deepen" line. A malformed buffer holds none: it is
 * passed on as it is and the server says what is wrong with it. */
static bool has_deepen_line(const char *buf, size_t len)
{
        size_t at = 0;
        while (len - at >= 4) {
                size_t n = 0;
                for (int i = 0; i < 4; i++) {
                        char c = buf[at + i];
                        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                        if (d < 0)
                                return false;
                        n = n * 16 + (size_t)d;
                }
                if (n < 4) { /* flush, delimiter or end: four bytes, no payload */
                        at += 4;
                        continue;
                }
                if (n > len - at)
                        return false;
                if (n - 4 >= 7 && !memcmp(buf + at + 4, "deepen ", 7))
                        return true;
                at += n;
        }
        return false;
}

static int filter_read(git_smart_subtransport_stream *s, char *buf, size_t size, size_t *got)
{
        struct repeat_filter_stream *f = (struct repeat_filter_stream *)s;
        return f->inner->read(f->inner, buf, size, got);
}

static int filter_write(git_smart_subtransport_stream *s, const char *buf, size_t len)
{
        struct repeat_filter_stream *f = (struct repeat_filter_stream *)s;
        if (f->deepening && len >= f->deepening_len && !memcmp(buf, f->deepening, f->deepening_len)) {
                buf += f->deepening_len;
                len -= f->deepening_len;
        }
        free(f->deepening);
        f->deepening = NULL;
        if (has_deepen_line(buf, len)) {
                if (!(f->deepening = malloc(len))) {
                        git_error_set_oom();
                        return -1;
                }
                memcpy(f->deepening, buf, len);
                f->deepening_len = len;
        }
        return len ? f->inner->write(f->inner, buf, len) : 0;
}

static void filter_stream_free(git_smart_subtransport_stream *s)
{
        struct repeat_filter_stream *f = (struct repeat_filter_stream *)s;
        struct repeat_filter *t = (struct repeat_filter *)s->subtransport;
        if (t->stream == f)
                t->stream = NULL;
        f->inner->free(f->inner);
        free(f->deepening);
        free(f);
}

static int filter_action(git_smart_subtransport_stream **out, git_smart_subtransport *sub, const char *url,
                         git_smart_service_t action)
{
        struct repeat_filter *t = (struct repeat_filter *)sub;
        git_smart_subtransport_stream *inner = NULL;
        int error = t->inner->action(&inner, t->inner, url, action);
        if (error < 0)
                return error;
        /* The stateful subtransport hands back the same connection for every step after the
         * first, and libgit2 checks that the stream it gets is the same one too. */
        if (t->stream && t->stream->inner == inner) {
                *out = &t->stream->parent;
                return 0;
        }
        struct repeat_filter_stream *f = calloc(1, sizeof *f);
        if (!f) {
                inner->free(inner);
                git_error_set_oom();
                return -1;
        }
        f->parent.subtransport = sub;
        f->parent.read = filter_read;
        f->parent.write = filter_write;
        f->parent.free = filter_stream_free;
        f->inner = inner;
        t->stream = f;
        *out = &f->parent;
        return 0;
}

static int filter_close(git_smart_subtransport *sub)
{
        struct repeat_filter *t = (struct repeat_filter *)sub;
        return t->inner->close(t->inner);
}

static void filter_free(git_smart_subtransport *sub)
{
        struct repeat_filter *t = (struct repeat_filter *)sub;
        t->inner->free(t->inner);
        free(t);
}

static int repeat_filter_new(git_smart_subtransport **out, git_transport *owner, void *param)
{
        (void)param;
        struct repeat_filter *t = calloc(1, sizeof *t);
        if (!t) {
                git_error_set_oom();
                return -1;
        }
        int error = git_smart_subtransport_git(&t->inner, owner, NULL);
        if (error < 0) {
                free(t);
                return error;
        }
        t->parent.action = filter_action;
        t->parent.close = filter_close;
        t->parent.free = filter_free;
        *out = &t->parent;
        return 0;
}

int git_daemon_transport(git_transport **out, git_remote *owner, void *param)
{
        (void)param;
        static git_smart_subtransport_definition stateful_git = {repeat_filter_new, 0, NULL};
        return git_transport_smart(out, owner, &stateful_git);
}

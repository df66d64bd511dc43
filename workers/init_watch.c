/* File watches (see init_watch.h): one inotify instance per watch, read by warren-init's
 * loop into a bounded queue of events. A recursive watch adds every directory below the
 * path, and each directory created later. */
#include "init_watch.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "init_util.h"
#include "protocol.h"

#define EVENTS_MAX 10000
#define DIRS_MAX   4096 /* directories one recursive watch follows */
#define WATCH_MASK                                                                                           \
        (IN_CREATE | IN_MODIFY | IN_DELETE | IN_DELETE_SELF | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |      \
         IN_DONT_FOLLOW | IN_EXCL_UNLINK)

struct watch {
        bool used;
        int id;
        int fd; /* inotify */
        bool recursive;
        char *dirs[DIRS_MAX]; /* by watch descriptor, as the kernel numbers them from 1 */
        json_t *events;
        long long dropped;
};

static struct watch watches[WATCHES_MAX];
static int next_id = 1;

static struct watch *find(json_t *req)
{
        const char *id = json_string_value(json_object_get(req, "id"));
        int n = id && id[0] == 'w' ? atoi(id + 1) : 0;
        for (int i = 0; i < WATCHES_MAX; i++)
                if (watches[i].used && watches[i].id == n)
                        return &watches[i];
        return NULL;
}

static void add_dir(struct watch *w, const char *path)
{
        int wd = inotify_add_watch(w->fd, path, WATCH_MASK | IN_ONLYDIR);
        if (wd > 0 && wd < DIRS_MAX && !w->dirs[wd])
                w->dirs[wd] = strdup(path);
}

static struct watch *walking;
static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        if (flag == FTW_D)
                add_dir(walking, path);
        return 0;
}

static void watch_free(struct watch *w)
{
        init_close_fd(&w->fd);
        for (int i = 0; i < DIRS_MAX; i++) {
                free(w->dirs[i]);
                w->dirs[i] = NULL;
        }
        json_decref(w->events);
        w->events = NULL;
        w->used = false;
}

static void do_start(int conn, json_t *req)
{
        const char *path = json_string_value(json_object_get(req, "path"));
        if (!path || !*path || strlen(path) >= PATH_MAX) {
                frame_send_error(conn, "bad_request", "field 'path' must be a path");
                return;
        }
        struct stat st;
        if (stat(path, &st) < 0) {
                frame_send_error(conn, errno == ENOENT ? "not_found" : "bad_request", "watch '%.1024s': %s",
                                 path, strerror(errno));
                return;
        }
        struct watch *w = NULL;
        for (int i = 0; i < WATCHES_MAX && !w; i++)
                if (!watches[i].used)
                        w = &watches[i];
        if (!w) {
                frame_send_error(conn, "too_many", "a sandbox keeps at most %d watches; stop one first",
                                 WATCHES_MAX);
                return;
        }
        *w = (struct watch){.used = true,
                            .id = next_id++,
                            .events = json_array(),
                            .recursive = json_is_true(json_object_get(req, "recursive"))};
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0) {
                frame_send_error(conn, "internal", "inotify: %s", strerror(errno));
                watch_free(w);
                return;
        }
        if (!S_ISDIR(st.st_mode)) {
                int wd = inotify_add_watch(w->fd, path, WATCH_MASK);
                if (wd > 0 && wd < DIRS_MAX)
                        w->dirs[wd] = strdup(""); /* a file: events name the file itself */
                (void)wd;
        } else if (w->recursive) {
                walking = w;
                nftw(path, walk_one, 16, FTW_PHYS);
        } else {
                add_dir(w, path);
        }
        char id[16];
        snprintf(id, sizeof id, "w%d", w->id);
        frame_send_json(conn, FRAME_RESULT, json_pack("{s:s, s:s}", "watch_id", id, "path", path));
}

static void do_poll(int conn, json_t *req)
{
        struct watch *w = find(req);
        if (!w) {
                frame_send_error(conn, "not_found", "no watch '%.64s' in this sandbox",
                                 json_string_value(json_object_get(req, "id")) ?: "");
                return;
        }
        watch_service(); /* what the kernel has queued counts too */
        json_t *events = w->events;
        w->events = json_array();
        frame_send_json(conn, FRAME_RESULT,
                        json_pack("{s:o, s:I}", "events", events, "dropped", (json_int_t)w->dropped));
        w->dropped = 0;
}

static void do_stop(int conn, json_t *req)
{
        struct watch *w = find(req);
        if (!w) {
                frame_send_error(conn, "not_found", "no watch '%.64s' in this sandbox",
                                 json_string_value(json_object_get(req, "id")) ?: "");
                return;
        }
        watch_free(w);
        frame_send_json(conn, FRAME_RESULT, json_pack("{s:b}", "stopped", 1));
}

bool watch_handle(int conn, const char *op, json_t *req)
{
        if (!strcmp(op, "watch_start"))
                do_start(conn, req);
        else if (!strcmp(op, "watch_poll"))
                do_poll(conn, req);
        else if (!strcmp(op, "watch_stop"))
                do_stop(conn, req);
        else
                return false;
        return true;
}

int watch_poll_fds(struct pollfd *pfd, int max)
{
        int n = 0;
        for (int i = 0; i < WATCHES_MAX && n < max; i++)
                if (watches[i].used)
                        pfd[n++] = (struct pollfd){.fd = watches[i].fd, .events = POLLIN};
        return n;
}

static const char *type_of(uint32_t mask)
{
        if (mask & IN_CREATE || mask & IN_MOVED_TO)
                return "create";
        if (mask & IN_MODIFY)
                return "write";
        if (mask & (IN_DELETE | IN_DELETE_SELF))
                return "remove";
        if (mask & IN_MOVED_FROM)
                return "rename";
        if (mask & IN_ATTRIB)
                return "chmod";
        return NULL;
}

static void push(struct watch *w, const char *type, const char *path, bool is_dir);

static int catch_up(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        if (flag == FTW_D)
                add_dir(walking, path);
        if (ftw->level > 0)
                push(walking, "create", path, S_ISDIR(st->st_mode));
        return 0;
}

static void record(struct watch *w, const struct inotify_event *ev)
{
        const char *type = type_of(ev->mask);
        const char *dir = ev->wd > 0 && ev->wd < DIRS_MAX ? w->dirs[ev->wd] : NULL;
        if (!type || !dir)
                return;
        char path[PATH_MAX];
        if (ev->len && *dir)
                snprintf(path, sizeof path, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", ev->name);
        else
                snprintf(path, sizeof path, "%s", *dir ? dir : ev->len ? ev->name : "");
        bool is_dir = ev->mask & IN_ISDIR;
        push(w, type, path, is_dir);
        /* A directory made below a recursive watch is watched from now on; what was put in
         * it before that (mkdir -p a/b && touch a/b/c races this loop) is reported as
         * created. */
        if (w->recursive && is_dir && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
                walking = w;
                nftw(path, catch_up, 16, FTW_PHYS);
        }
}

static void push(struct watch *w, const char *type, const char *path, bool is_dir)
{
        /* A file written in many pieces is one write until something else happens. */
        size_t n = json_array_size(w->events);
        json_t *last = n ? json_array_get(w->events, n - 1) : NULL;
        if (last && !strcmp(type, "write") &&
            !strcmp(json_string_value(json_object_get(last, "type")), "write") &&
            !strcmp(json_string_value(json_object_get(last, "path")), path))
                return;
        if (n >= EVENTS_MAX) {
                json_array_remove(w->events, 0);
                w->dropped++;
        }
        json_array_append_new(w->events, json_pack("{s:s, s:s, s:b, s:I}", "type", type, "path", path,
                                                   "is_dir", is_dir, "at", (json_int_t)init_wall_ms()));
}

void watch_service(void)
{
        char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
        for (int i = 0; i < WATCHES_MAX; i++) {
                struct watch *w = &watches[i];
                if (!w->used)
                        continue;
                for (int rounds = 0; rounds < 64; rounds++) {
                        ssize_t n = read(w->fd, buf, sizeof buf);
                        if (n <= 0)
                                break;
                        for (char *p = buf; p < buf + n;) {
                                struct inotify_event *ev = (struct inotify_event *)p;
                                if (ev->mask & IN_Q_OVERFLOW)
                                        w->dropped++;
                                else
                                        record(w, ev);
                                p += sizeof *ev + ev->len;
                        }
                }
        }
}

/* File operations inside the sandbox (see init_fs.h). Everything here runs in a child of
 * warren-init, as the requesting user, and ends with _exit. */
#include "init_fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "init_http.h"
#include "protocol.h"

#define CHUNK         (64 * 1024)
#define LIST_MAX      10000
#define INFO_MAX      1000
#define USER_ID       1000
#define STDIN_WAIT_MS 60000

static int conn = -1;
static struct http_link *http; /* set: nginx asked over files.sock, and is answered in HTTP */

static const char *code_of(int err)
{
        switch (err) {
        case ENOENT:
                return "not_found";
        case EACCES:
        case EPERM:
        case EROFS:
                return "permission_denied";
        case EISDIR:
                return "is_a_directory";
        case ENOTDIR:
                return "not_a_directory";
        case EEXIST:
                return "exists";
        case ENOTEMPTY:
                return "not_empty";
        case ENOSPC:
        case EDQUOT:
                return "no_space";
        case EFBIG:
                return "too_large";
        case ENAMETOOLONG:
        case EINVAL:
        case EXDEV:
        case ELOOP:
                return "bad_request";
        default:
                return "io_error";
        }
}

static _Noreturn void refuse(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static _Noreturn void fail(int err, const char *what, const char *path)
{
        refuse(code_of(err), "%s '%.1024s': %s", what, path, strerror(err));
}

static _Noreturn void refuse(const char *code, const char *fmt, ...)
{
        char msg[1200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (http)
                http_answer_error(http, code, msg);
        frame_send_error(conn, code, "%s", msg);
        _exit(1);
}

/* The one answer of an operation that returns one (over HTTP only an upload does: 201). */
static _Noreturn void answer(json_t *result)
{
        if (http)
                http_answer_json(http, 201, result);
        frame_send_json(conn, FRAME_RESULT, result);
        _exit(0);
}

/* --- who and where ------------------------------------------------------------------- */

static void become(bool root)
{
        umask(022);
        if (root) {
                if (chdir("/root") < 0 && chdir("/") < 0)
                        _exit(1);
                return;
        }
        if (setgroups(0, NULL) < 0 || setresgid(USER_ID, USER_ID, USER_ID) < 0 ||
            setresuid(USER_ID, USER_ID, USER_ID) < 0)
                refuse("internal", "cannot become the sandbox user: %s", strerror(errno));
        if (chdir("/home/user") < 0 && chdir("/") < 0)
                _exit(1);
}

/* A path from the request: a string without NUL, at most PATH_MAX; relative ones are
 * relative to the user's home (the working directory). */
static const char *path_value(json_t *p, const char *field)
{
        if (!json_is_string(p) || json_string_length(p) == 0)
                refuse("bad_request", "field '%s' must be a non-empty path", field);
        if (strlen(json_string_value(p)) != json_string_length(p))
                refuse("bad_request", "field '%s' contains a NUL byte", field);
        if (json_string_length(p) >= PATH_MAX)
                refuse("bad_request", "field '%s' is longer than PATH_MAX", field);
        return json_string_value(p);
}

static const char *path_arg(json_t *req, const char *field)
{
        return path_value(json_object_get(req, field), field);
}

/* --- entries ------------------------------------------------------------------------- */

static void id_name(char *out, size_t len, unsigned id)
{
        if (id == 0)
                snprintf(out, len, "root");
        else if (id == USER_ID)
                snprintf(out, len, "user");
        else if (id == 65534)
                snprintf(out, len, "nobody");
        else
                snprintf(out, len, "%u", id);
}

static json_t *iso_time(const struct timespec *ts)
{
        struct tm tm;
        char buf[40];
        gmtime_r(&ts->tv_sec, &tm);
        size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, sizeof buf - n, ".%03ldZ", ts->tv_nsec / 1000000);
        return json_string(buf);
}

static json_t *entry_json(const char *path, const struct stat *st)
{
        const char *name = strrchr(path, '/');
        name = name && name[1] ? name + 1 : path;
        const char *type = S_ISREG(st->st_mode)   ? "file"
                           : S_ISDIR(st->st_mode) ? "dir"
                           : S_ISLNK(st->st_mode) ? "symlink"
                                                  : "other";
        char mode[8], perms[10], owner[16], group[16];
        snprintf(mode, sizeof mode, "%04o", st->st_mode & 07777);
        const char *rwx = "rwxrwxrwx";
        for (int i = 0; i < 9; i++)
                perms[i] = st->st_mode & (0400 >> i) ? rwx[i] : '-';
        perms[9] = 0;
        id_name(owner, sizeof owner, st->st_uid);
        id_name(group, sizeof group, st->st_gid);
        json_t *e = json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "name", name, "path", path,
                              "type", type, "size", (json_int_t)st->st_size, "mode", mode, "permissions",
                              perms, "owner", owner, "group", group, "modified_at", iso_time(&st->st_mtim));
        if (S_ISLNK(st->st_mode)) {
                char target[PATH_MAX];
                ssize_t n = readlink(path, target, sizeof target - 1);
                if (n >= 0) {
                        target[n] = 0;
                        json_object_set_new(e, "symlink_target", json_string(target));
                }
        }
        return e;
}

static json_t *entry_of(const char *path)
{
        struct stat st;
        if (lstat(path, &st) < 0)
                fail(errno, "stat", path);
        return entry_json(path, &st);
}

/* --- listing ------------------------------------------------------------------------- */

static bool list_dir(const char *dir, int depth, json_t *entries)
{
        DIR *d = opendir(dir);
        if (!d)
                return errno == EACCES; /* a subdirectory the user may not read is skipped */
        struct dirent *e;
        bool ok = true;
        while (ok && (e = readdir(d))) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;
                if (json_array_size(entries) >= LIST_MAX) {
                        ok = false;
                        break;
                }
                char path[PATH_MAX];
                if (snprintf(path, sizeof path, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", e->d_name) >=
                    (int)sizeof path)
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                json_array_append_new(entries, entry_json(path, &st));
                if (S_ISDIR(st.st_mode) && depth > 1)
                        ok = list_dir(path, depth - 1, entries);
        }
        closedir(d);
        return ok;
}

static void do_list(json_t *req, const char *path)
{
        json_t *depth = json_object_get(req, "depth");
        json_int_t n = depth ? json_integer_value(depth) : 1;
        if (depth && (!json_is_integer(depth) || n < 1 || n > 10))
                refuse("bad_request", "field 'depth' must be from 1 to 10");
        struct stat st;
        if (stat(path, &st) < 0)
                fail(errno, "list", path);
        if (!S_ISDIR(st.st_mode))
                fail(ENOTDIR, "list", path);
        DIR *probe = opendir(path);
        if (!probe)
                fail(errno, "list", path);
        closedir(probe);
        json_t *entries = json_array();
        bool whole = list_dir(path, (int)n, entries);
        answer(json_pack("{s:o, s:b}", "entries", entries, "truncated", !whole));
}

static void do_info(json_t *req)
{
        json_t *paths = json_object_get(req, "paths");
        if (!json_is_array(paths) || json_array_size(paths) == 0 || json_array_size(paths) > INFO_MAX)
                refuse("bad_request", "field 'paths' must be a list of 1 to 1000 paths");
        json_t *entries = json_array();
        size_t i;
        json_t *p;
        json_array_foreach(paths, i, p)
        {
                const char *path = path_value(p, "paths");
                struct stat st;
                json_t *e = lstat(path, &st) == 0
                                ? entry_json(path, &st)
                                : json_pack("{s:s, s:s}", "path", path, "error", code_of(errno));
                json_object_set_new(e, "exists", json_boolean(json_object_get(e, "error") == NULL));
                json_array_append_new(entries, e);
        }
        answer(json_pack("{s:o}", "entries", entries));
}

/* --- contents ------------------------------------------------------------------------ */

/* Opens a regular file for reading and nothing else: a FIFO or device planted under the
 * path is refused before anything reads from it (O_NONBLOCK: opening a FIFO never waits). */
static int open_regular(const char *path, struct stat *st)
{
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                fail(errno, "open", path);
        if (fstat(fd, st) < 0)
                fail(errno, "stat", path);
        if (S_ISDIR(st->st_mode))
                fail(EISDIR, "read", path);
        if (!S_ISREG(st->st_mode))
                refuse("not_a_file", "'%.1024s' is not a regular file", path);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        return fd;
}

/* The next chunk of fd (0 at its end); a failure ends the operation. */
static size_t read_chunk(int fd, char *buf, size_t size, const char *path)
{
        for (;;) {
                ssize_t n = read(fd, buf, size);
                if (n >= 0)
                        return (size_t)n;
                if (errno != EINTR)
                        fail(errno, "read", path);
        }
}

static void send_contents(int fd, const char *path)
{
        static char buf[CHUNK];
        long long total = 0;
        size_t n;
        while ((n = read_chunk(fd, buf, sizeof buf, path)) > 0) {
                if (frame_write(conn, FRAME_STDOUT, buf, n) < 0)
                        _exit(1); /* the host went away */
                total += (long long)n;
        }
        answer(json_pack("{s:I}", "size", (json_int_t)total));
}

static void do_read(json_t *req, const char *path, bool announce)
{
        struct stat st;
        int fd = open_regular(path, &st);
        json_int_t max = json_integer_value(json_object_get(req, "max_bytes"));
        if (max > 0 && st.st_size > max)
                refuse("too_large", "'%.1024s' is %lld bytes, more than %lld", path, (long long)st.st_size,
                       (long long)max);
        const char *name = strrchr(path, '/');
        if (http)
                http_answer_file(http, fd, &st, name && name[1] ? name + 1 : path);
        if (announce) {
                char mode[8];
                snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
                frame_send_json(conn, FRAME_STARTED,
                                json_pack("{s:I, s:s, s:s}", "size", (json_int_t)st.st_size, "mode", mode,
                                          "name", name && name[1] ? name + 1 : path));
        }
        send_contents(fd, path);
}

/* mkdir -p of path's parent (or of path itself when whole). */
static void make_parents(char *path, bool whole)
{
        size_t len = strlen(path);
        for (size_t i = 1; i <= len; i++) {
                if (path[i] != '/' && path[i] != 0)
                        continue;
                if (path[i] == 0 && !whole)
                        break;
                char c = path[i];
                path[i] = 0;
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        fail(errno, "create directory", path);
                path[i] = c;
        }
}

static mode_t mode_arg(json_t *req, mode_t fallback)
{
        json_t *m = json_object_get(req, "mode");
        if (!m)
                return fallback;
        json_int_t v = -1;
        if (json_is_integer(m))
                v = json_integer_value(m);
        else if (json_is_string(m)) {
                char *end;
                v = strtol(json_string_value(m), &end, 8);
                if (*end || end == json_string_value(m))
                        v = -1;
        }
        if (v < 0 || v > 07777)
                refuse("bad_request", "field 'mode' must be a mode from 0 to 07777, as \"0644\" or 420");
        return (mode_t)v;
}

static void write_out(int fd, const char *data, size_t len, const char *path)
{
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, data + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        fail(errno, "write", path);
                off += (size_t)n;
        }
}

/* The content as the host's frames: STDIN chunks up to STDIN_EOF. */
static void write_frames(int fd, const char *path)
{
        for (;;) {
                struct frame f;
                int r = frame_read(conn, &f, FRAME_MAX_PAYLOAD, STDIN_WAIT_MS);
                if (r <= 0)
                        _exit(1); /* the host went away or stalled: what was written stays */
                if (f.type == FRAME_STDIN_EOF)
                        break;
                if (f.type != FRAME_STDIN)
                        refuse("bad_request", "unexpected frame during a write");
                write_out(fd, f.payload, f.len, path);
                frame_clear(&f);
        }
}

/* The content as nginx's request body, Content-Length bytes. */
static void write_body(int fd, const char *path)
{
        static char buf[256 * 1024];
        long n = 0;
        /* What came with the head first; the rest goes socket to file in the kernel, or
         * through buf where splice is refused. */
        while (http_body_buffered(http) && (n = http_body_read(http, buf, sizeof buf)) > 0)
                write_out(fd, buf, (size_t)n, path);
        int err = 0;
        int r = n < 0 ? -1 : http_body_splice(http, fd, &err);
        if (r == -2)
                fail(err, "write", path);
        while (r == 0 && (n = http_body_read(http, buf, sizeof buf)) > 0)
                write_out(fd, buf, (size_t)n, path);
        if (r < 0 || n < 0)
                _exit(1); /* the client went away: what was written stays, as over frames */
}

static void do_write(json_t *req, const char *path)
{
        mode_t mode = mode_arg(req, 0644);
        if (!json_is_false(json_object_get(req, "parents"))) {
                char copy[PATH_MAX];
                snprintf(copy, sizeof copy, "%s", path);
                make_parents(copy, false);
        }
        /* O_NONBLOCK and a check before the first byte: a FIFO or device at the path is
         * refused, never written to (O_TRUNC does nothing to either). */
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);
        if (fd < 0 && errno == ENXIO) /* a FIFO nobody reads, a device with no driver */
                refuse("not_a_file", "'%.1024s' is not a regular file", path);
        if (fd < 0)
                fail(errno, "write", path);
        struct stat st;
        if (fstat(fd, &st) < 0)
                fail(errno, "stat", path);
        if (!S_ISREG(st.st_mode))
                refuse("not_a_file", "'%.1024s' is not a regular file", path);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        if (json_object_get(req, "mode") && fchmod(fd, mode) < 0)
                fail(errno, "chmod", path);
        if (http)
                write_body(fd, path);
        else
                write_frames(fd, path);
        if (close(fd) < 0)
                fail(errno, "write", path);
        answer(entry_of(path));
}

/* --- export as zip ------------------------------------------------------------------- */

/* A zip written as it is read, in one pass: each entry's CRC and sizes follow its data (a
 * data descriptor, flag bit 3), entries are stored (method 0), names are UTF-8 (bit 11).
 * The central directory goes last. Sizes are 32-bit (no ZIP64): an export stops with an
 * error past 4 GiB. */
#define ZIP_ENTRIES_MAX 65535
#define ZIP_BYTES_MAX   0xffffffffLL

struct zip_entry {
        char *name;
        uint32_t crc, size, offset;
        uint16_t time, date;
        bool dir;
};

static struct {
        struct zip_entry *e;
        size_t n;
        uint64_t offset;
        char buf[CHUNK];
        size_t fill;
} zip;

static uint32_t crc_table[256];

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
        if (!crc_table[1])
                for (uint32_t i = 0; i < 256; i++) {
                        uint32_t c = i;
                        for (int k = 0; k < 8; k++)
                                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
                        crc_table[i] = c;
                }
        crc = ~crc;
        while (n--)
                crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}

static void zip_flush(void)
{
        if (zip.fill && frame_write(conn, FRAME_STDOUT, zip.buf, zip.fill) < 0)
                _exit(1);
        zip.fill = 0;
}

static void zip_put(const void *data, size_t n)
{
        const char *p = data;
        zip.offset += n;
        if (zip.offset > (uint64_t)ZIP_BYTES_MAX)
                refuse("too_large", "the export passed 4 GiB; export less at a time");
        while (n) {
                size_t room = sizeof zip.buf - zip.fill, take = n < room ? n : room;
                memcpy(zip.buf + zip.fill, p, take);
                zip.fill += take;
                p += take;
                n -= take;
                if (zip.fill == sizeof zip.buf)
                        zip_flush();
        }
}

static void put16(unsigned char *p, unsigned v)
{
        p[0] = (unsigned char)v;
        p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
        put16(p, v & 0xffff);
        put16(p + 2, v >> 16);
}

static void dos_time(time_t t, uint16_t *time_out, uint16_t *date_out)
{
        struct tm tm;
        localtime_r(&t, &tm);
        if (tm.tm_year < 80)
                tm = (struct tm){.tm_year = 80, .tm_mday = 1};
        *time_out = (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
        *date_out = (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
}

static void zip_add(const char *path, const char *name, const struct stat *st)
{
        if (zip.n >= ZIP_ENTRIES_MAX)
                refuse("too_large", "an export holds at most %d entries", ZIP_ENTRIES_MAX);
        struct zip_entry *grown = realloc(zip.e, (zip.n + 1) * sizeof *zip.e);
        if (!grown)
                _exit(1);
        zip.e = grown;
        struct zip_entry *e = &zip.e[zip.n++];
        bool dir = S_ISDIR(st->st_mode);
        size_t nlen = strlen(name);
        *e = (struct zip_entry){.offset = (uint32_t)zip.offset, .dir = dir};
        if (asprintf(&e->name, "%s%s", name, dir && (nlen == 0 || name[nlen - 1] != '/') ? "/" : "") < 0)
                _exit(1);
        dos_time(st->st_mtime, &e->time, &e->date);
        unsigned char h[30] = {0x50, 0x4b, 0x03, 0x04};
        put16(h + 4, 20);
        put16(h + 6, dir ? 0x0800 : 0x0808); /* UTF-8 names; sizes after the data */
        put16(h + 10, e->time);
        put16(h + 12, e->date);
        put16(h + 26, (unsigned)strlen(e->name));
        zip_put(h, sizeof h);
        zip_put(e->name, strlen(e->name));
        if (dir)
                return;
        struct stat fst;
        int fd = open_regular(path, &fst);
        uint32_t crc = 0;
        uint64_t size = 0;
        static char buf[CHUNK];
        size_t n;
        while ((n = read_chunk(fd, buf, sizeof buf, path)) > 0) {
                crc = crc32_update(crc, (unsigned char *)buf, n);
                size += n;
                zip_put(buf, n);
        }
        close(fd);
        e->crc = crc;
        e->size = (uint32_t)size;
        unsigned char d[16] = {0x50, 0x4b, 0x07, 0x08};
        put32(d + 4, e->crc);
        put32(d + 8, e->size);
        put32(d + 12, e->size);
        zip_put(d, sizeof d);
}

static void zip_finish(void)
{
        uint32_t start = (uint32_t)zip.offset;
        for (size_t i = 0; i < zip.n; i++) {
                struct zip_entry *e = &zip.e[i];
                unsigned char c[46] = {0x50, 0x4b, 0x01, 0x02};
                put16(c + 4, 0x031e); /* made by: unix, 3.0 */
                put16(c + 6, 20);
                put16(c + 8, e->dir ? 0x0800 : 0x0808);
                put16(c + 12, e->time);
                put16(c + 14, e->date);
                put32(c + 16, e->crc);
                put32(c + 20, e->size);
                put32(c + 24, e->size);
                put16(c + 28, (unsigned)strlen(e->name));
                put32(c + 38, (e->dir ? 040755u : 0100644u) << 16);
                put32(c + 42, e->offset);
                zip_put(c, sizeof c);
                zip_put(e->name, strlen(e->name));
        }
        uint32_t cd_size = (uint32_t)zip.offset - start;
        unsigned char end[22] = {0x50, 0x4b, 0x05, 0x06};
        put16(end + 8, (unsigned)zip.n);
        put16(end + 10, (unsigned)zip.n);
        put32(end + 12, cd_size);
        put32(end + 16, start);
        zip_put(end, sizeof end);
        zip_flush();
}

/* The name an exported path takes in the zip: its last component, and below it. */
static const char *zip_base;
static size_t zip_base_len;

static int zip_walk(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)ftw;
        if (flag != FTW_F && flag != FTW_D)
                return 0; /* symlinks, unreadable directories: not exported */
        if (flag == FTW_F && !S_ISREG(st->st_mode))
                return 0; /* FIFOs, devices, sockets */
        char name[PATH_MAX];
        snprintf(name, sizeof name, "%s%s", zip_base, path + zip_base_len);
        zip_add(path, name, st);
        return 0;
}

static void do_zip(json_t *req)
{
        json_t *paths = json_object_get(req, "paths");
        if (!json_is_array(paths) || json_array_size(paths) == 0 || json_array_size(paths) > INFO_MAX)
                refuse("bad_request", "field 'paths' must be a list of 1 to 1000 paths");
        size_t i;
        json_t *p;
        json_array_foreach(paths, i, p)
        {
                const char *path = path_value(p, "paths");
                struct stat st;
                if (lstat(path, &st) < 0)
                        fail(errno, "export", path);
        }
        frame_send_json(conn, FRAME_STARTED,
                        json_pack("{s:i, s:s, s:s}", "size", -1, "mode", "0644", "name", "export.zip"));
        json_array_foreach(paths, i, p)
        {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s", json_string_value(p));
                size_t len = strlen(path);
                while (len > 1 && path[len - 1] == '/')
                        path[--len] = 0;
                const char *slash = strrchr(path, '/');
                zip_base = slash && slash[1] ? slash + 1 : path;
                zip_base_len = strlen(path);
                nftw(path, zip_walk, 16, FTW_PHYS);
        }
        zip_finish();
        answer(json_pack("{s:I, s:I}", "size", (json_int_t)zip.offset, "entries", (json_int_t)zip.n));
}

/* --- the tree ------------------------------------------------------------------------ */

static void do_mkdir(json_t *req, const char *path)
{
        struct stat st;
        bool existed = stat(path, &st) == 0;
        if (existed && !S_ISDIR(st.st_mode))
                fail(EEXIST, "create directory", path);
        if (!existed) {
                char copy[PATH_MAX];
                snprintf(copy, sizeof copy, "%s", path);
                if (json_is_false(json_object_get(req, "parents"))) {
                        if (mkdir(path, mode_arg(req, 0755)) < 0)
                                fail(errno, "create directory", path);
                } else {
                        make_parents(copy, true);
                }
        }
        answer(json_pack("{s:s, s:b}", "path", path, "created", !existed));
}

static void do_move(json_t *req, const char *path)
{
        const char *dest = path_arg(req, "destination");
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s", dest);
        make_parents(copy, false);
        unsigned flags = json_is_true(json_object_get(req, "overwrite")) ? 0 : RENAME_NOREPLACE;
        if (syscall(SYS_renameat2, AT_FDCWD, path, AT_FDCWD, dest, flags) < 0)
                fail(errno, errno == EEXIST ? "move onto existing" : "move", errno == EEXIST ? dest : path);
        answer(entry_of(dest));
}

static int remove_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)ftw;
        return (flag == FTW_DP ? rmdir(p) : unlink(p)) < 0 ? errno : 0;
}

static void do_remove(json_t *req, const char *path)
{
        struct stat st;
        if (lstat(path, &st) < 0)
                fail(errno, "remove", path);
        if (S_ISDIR(st.st_mode)) {
                if (json_is_true(json_object_get(req, "recursive"))) {
                        /* FTW_PHYS: symlinks are removed, never followed. (Not FTW_MOUNT: on
                         * the overlay root a file's device is its layer's, not the directory's.) */
                        int r = nftw(path, remove_one, 32, FTW_DEPTH | FTW_PHYS);
                        if (r != 0)
                                fail(r > 0 ? r : errno, "remove", path);
                } else if (rmdir(path) < 0) {
                        fail(errno, "remove", path);
                }
        } else if (unlink(path) < 0) {
                fail(errno, "remove", path);
        }
        answer(json_pack("{s:s, s:b}", "path", path, "removed", 1));
}

static void do_chmod(json_t *req, const char *path)
{
        if (!json_object_get(req, "mode"))
                refuse("bad_request", "field 'mode' is required");
        if (chmod(path, mode_arg(req, 0)) < 0)
                fail(errno, "chmod", path);
        answer(entry_of(path));
}

/* --- dispatch ------------------------------------------------------------------------ */

static _Noreturn void serve(json_t *req)
{
        const char *user = json_string_value(json_object_get(req, "user"));
        become(user && strcmp(user, "root") == 0);
        const char *action = json_string_value(json_object_get(req, "action"));
        if (!action)
                refuse("bad_request", "an fs request needs an action");
        if (!strcmp(action, "info"))
                do_info(req);
        if (!strcmp(action, "zip"))
                do_zip(req);
        const char *path = path_arg(req, "path");
        if (!strcmp(action, "list"))
                do_list(req, path);
        else if (!strcmp(action, "stat"))
                answer(entry_of(path));
        else if (!strcmp(action, "read"))
                do_read(req, path, false);
        else if (!strcmp(action, "download"))
                do_read(req, path, true);
        else if (!strcmp(action, "write"))
                do_write(req, path);
        else if (!strcmp(action, "mkdir"))
                do_mkdir(req, path);
        else if (!strcmp(action, "move"))
                do_move(req, path);
        else if (!strcmp(action, "remove"))
                do_remove(req, path);
        else if (!strcmp(action, "chmod"))
                do_chmod(req, path);
        refuse("bad_request", "unknown fs action '%.40s'", action);
}

/* The child that serves conn: nothing of warren-init's but this connection, default
 * signals. fork's answer: 0 in the child, which goes on to serve; in warren-init the child's
 * pid (the caller closes its copy of conn), or -1. */
static pid_t fork_server(int fd)
{
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                signal(sig, SIG_DFL);
        if (fd > 3)
                close_range(3, (unsigned)fd - 1, 0);
        close_range((unsigned)fd + 1, ~0U, 0);
        conn = fd;
        fcntl(conn, F_SETFL, fcntl(conn, F_GETFL) & ~O_NONBLOCK);
        return 0;
}

bool fs_handle(int fd, const char *op, json_t *req)
{
        if (strcmp(op, "fs") != 0)
                return false;
        pid_t pid = fork_server(fd);
        if (pid < 0)
                frame_send_error(fd, "internal", "cannot start a file operation: %s", strerror(errno));
        if (pid == 0)
                serve(req);
        return true;
}

/* A failed fork leaves nginx a closed connection: a 502, which it answers as its own. */
void fs_handle_http(int fd)
{
        if (fork_server(fd) != 0)
                return;
        static struct http_link link;
        json_t *req = http_read_request(fd, &link);
        http = &link;
        serve(req);
}

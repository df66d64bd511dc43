/* Control groups for sandboxes, crun-style: one manager per cgroup version behind a small
 * vtable, chosen once at cgroup_system_init. The public functions check their arguments and
 * dispatch; the managers know the files.
 *
 * All state shared between threads (the mode, the hierarchies, Warren's parent path) is
 * written by cgroup_system_init and only read afterwards; everything else lives in the
 * caller's handle or on the stack, so no locking is needed. Errors are formatted into the
 * caller's buffer and nothing is allocated on an error path. */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

/* How long a freeze, a thaw or a kill may take before we report it: long enough for a loaded
 * host, short enough that a stuck request does not hold a worker thread for long. */
#define CGROUP_WAIT_MS  2000
#define CGROUP_RMDIR_MS 1000

enum {
        CTRL_MEMORY = 1 << 0,
        CTRL_PIDS = 1 << 1,
        CTRL_CPU = 1 << 2,
        CTRL_CPUACCT = 1 << 3,
        CTRL_FREEZER = 1 << 4,
};

static const struct {
        unsigned bit;
        const char *name;
} controllers[] = {
    {CTRL_MEMORY, "memory"},   {CTRL_PIDS, "pids"},       {CTRL_CPU, "cpu"},
    {CTRL_CPUACCT, "cpuacct"}, {CTRL_FREEZER, "freezer"},
};

/* Root and parent are held to a quarter of PATH_MAX each (init refuses longer ones), so that
 * <root>/<controller>/<parent>/<name>/<file> always fits in PATH_MAX and building a path can
 * never truncate. CGROUP_FILE_MAX bounds the file names we append ("memory.memsw.limit_in_bytes"
 * is the longest). */
#define CGROUP_PREFIX_MAX (PATH_MAX / 4)
#define CGROUP_FILE_MAX   64
_Static_assert(2 * CGROUP_PREFIX_MAX + NAME_MAX + CGROUP_FILE_MAX + 3 <= PATH_MAX,
               "cgroup paths may not fit");

struct hierarchy {
        char path[CGROUP_PREFIX_MAX]; /* v1: <root>/<controller>; v2: <root> */
        unsigned controllers;         /* v1: the CTRL_* mounted there (cpu,cpuacct may share one) */
};

struct cgroup_manager {
        int (*init_parent)(char *err);
        int (*create)(struct cgroup *cg, char *err);
        int (*open)(struct cgroup *cg, char *err);
        int (*set_limits)(struct cgroup *cg, const struct cgroup_limits *lim, char *err);
        int (*attach)(struct cgroup *cg, pid_t pid, char *err);
        /* Requests the state and waits for it until deadline_ms (CLOCK_MONOTONIC). */
        int (*freeze)(struct cgroup *cg, int frozen, long long deadline_ms, char *err);
        int (*kill_all)(struct cgroup *cg, char *err);
        /* Sends sig to every process listed in the group; returns how many were listed. */
        int (*signal_all)(struct cgroup *cg, int sig, char *err);
        int (*populated)(struct cgroup *cg);
        int (*stats)(struct cgroup *cg, struct cgroup_stats *ret, char *err);
        /* Removes the (empty) group's directories; 0 if already gone. */
        int (*remove)(struct cgroup *cg, char *err);
};

struct cgroup {
        const struct cgroup_manager *mgr;
        unsigned controllers; /* v2: the CTRL_* this group has (its cgroup.controllers) */
        char name[NAME_MAX + 1];
};

static struct {
        enum cgroup_mode mode;
        const struct cgroup_manager *mgr;
        char parent[CGROUP_PREFIX_MAX];
        size_t n_hier;
        struct hierarchy hier[ELEMENTSOF(controllers)];
} sys;

/* ---------------------------------------------------------------------------------------- */
/* Errors, paths, files                                                                       */

/* "<what>: <reason for r>" into err (which may be NULL when the caller has a better message
 * already); returns r, so that callers write `return fail_errno(...)`. */
static int fail_errno(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_errno(char *err, int r, const char *fmt, ...)
{
        if (!err)
                return r;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, CGROUP_ERR_MAX, fmt, ap);
        va_end(ap);
        if (n >= 0 && n < CGROUP_ERR_MAX) {
                const char *reason = strerrordesc_np(-r);
                snprintf(err + n, CGROUP_ERR_MAX - (size_t)n, ": %s", reason ? reason : "Unknown error");
        }
        return r;
}

/* The same when the message carries its own reason. */
static int fail_msg(char *err, int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail_msg(char *err, int r, const char *fmt, ...)
{
        if (!err)
                return r;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, CGROUP_ERR_MAX, fmt, ap);
        va_end(ap);
        return r;
}

/* <hierarchy>/<parent>/<name>[/<file>]. Cannot truncate: see CGROUP_PREFIX_MAX. */
static void group_path(char buf[PATH_MAX], const struct hierarchy *h, const char *name, const char *file)
{
        snprintf(buf, PATH_MAX, "%s/%s/%s%s%s", h->path, sys.parent, name, file ? "/" : "", file ? file : "");
}

static const struct hierarchy *hierarchy_of(unsigned ctrl)
{
        for (size_t i = 0; i < sys.n_hier; i++)
                if (sys.hier[i].controllers & ctrl)
                        return &sys.hier[i];
        return &sys.hier[0]; /* v2: everything is in the one hierarchy */
}

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A state usually changes within a few milliseconds: poll at 1, 2, 4 … 16 ms. */
static void backoff(int *delay_ms)
{
        struct timespec ts = {.tv_nsec = (long)*delay_ms * 1000000L};
        nanosleep(&ts, NULL);
        if (*delay_ms < 16)
                *delay_ms *= 2;
}

static bool exists(const char *path)
{
        return access(path, F_OK) == 0;
}

/* One write(2) of the whole value: cgroup files take a value per write. */
static int write_raw(const char *path, const char *value)
{
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        size_t len = strlen(value);
        ssize_t n = write(fd, value, len);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

static int write_file(const char *path, const char *value, char *err)
{
        int r = write_raw(path, value);
        if (r < 0)
                return fail_errno(err, r, "write %s", path);
        return 0;
}

/* Reads a small file (a number, a state, a few "key value" lines) whole, NUL-terminated. */
static int read_file(const char *path, char *buf, size_t size, char *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail_errno(err, -errno, "read %s", path);
        size_t len = 0;
        while (len < size - 1) {
                ssize_t n = read(fd, buf + len, size - 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail_errno(err, -errno, "read %s", path);
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        buf[len] = 0;
        return (int)len;
}

static int parse_ll(const char *s, long long *ret)
{
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s || (*end && *end != '\n' && *end != ' '))
                return -EINVAL;
        *ret = v;
        return 0;
}

static int read_ll(const char *path, long long *ret, char *err)
{
        char buf[64];
        int r = read_file(path, buf, sizeof buf, err);
        if (r < 0)
                return r;
        long long v;
        if (parse_ll(buf, &v) < 0)
                return fail_msg(err, -EINVAL, "read %s: not a number", path);
        *ret = v;
        return 0;
}

/* The value of "<key> <value>" in a keyed file such as cgroup.events or cpu.stat. */
static int read_keyed(const char *path, const char *key, long long *ret, char *err)
{
        char buf[4096];
        int r = read_file(path, buf, sizeof buf, err);
        if (r < 0)
                return r;
        size_t klen = strlen(key);
        for (const char *line = buf; *line;) {
                if (strncmp(line, key, klen) == 0 && line[klen] == ' ') {
                        long long v;
                        if (parse_ll(line + klen + 1, &v) < 0)
                                break;
                        *ret = v;
                        return 0;
                }
                const char *nl = strchr(line, '\n');
                if (!nl)
                        break;
                line = nl + 1;
        }
        return fail_msg(err, -ENODATA, "read %s: no '%s' value", path, key);
}

/* Whether a space-separated list ("cpuset cpu io memory") holds word; "cpu" is not "cpuset". */
static bool has_word(const char *list, const char *word)
{
        size_t len = strlen(word);
        for (const char *p = list; (p = strstr(p, word)); p += len)
                if ((p == list || p[-1] == ' ') && (p[len] == 0 || p[len] == ' ' || p[len] == '\n'))
                        return true;
        return false;
}

/* Calls fn (if any) for every pid in a cgroup.procs or cgroup.threads file, reading it in
 * pieces so that a group of any size needs no allocation. Returns how many it listed. */
static int for_each_pid(const char *path, void (*fn)(pid_t pid, void *userdata), void *userdata, char *err)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return fail_errno(err, -errno, "read %s", path);
        char buf[4096];
        size_t have = 0;
        int count = 0;
        for (;;) {
                ssize_t n = read(fd, buf + have, sizeof buf - have - 1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail_errno(err, -errno, "read %s", path);
                have += (size_t)n;
                if (n == 0 && have > 0 && buf[have - 1] != '\n')
                        buf[have++] = '\n'; /* the last line had no newline */
                char *line = buf, *nl;
                while ((nl = memchr(line, '\n', (size_t)(buf + have - line)))) {
                        *nl = 0;
                        long long pid;
                        if (parse_ll(line, &pid) == 0 && pid > 0 && pid <= INT_MAX) {
                                count++;
                                if (fn)
                                        fn((pid_t)pid, userdata);
                        }
                        line = nl + 1;
                }
                have = (size_t)(buf + have - line);
                if (n == 0)
                        return count;
                if (have >= sizeof buf - 1)
                        return fail_msg(err, -EIO, "read %s: line too long", path);
                memmove(buf, line, have);
        }
}

static void send_signal(pid_t pid, void *userdata)
{
        /* Never ourselves nor init, whatever got into the group: a warrend that was moved into a
         * sandbox's group by mistake must see kill_all time out, not die. */
        if (pid <= 1 || pid == getpid())
                return;
        (void)kill(pid, *(int *)userdata);
}

/* mkdir -p <base>/<parent>, calling fn on every level from base down to the parent itself. */
static int make_parent(const char *base, int (*fn)(const char *level, char *err), char *err)
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s", base);
        int r = fn ? fn(path, err) : 0;
        if (r < 0)
                return r;
        for (const char *p = sys.parent; *p;) {
                size_t len = strcspn(p, "/");
                size_t at = strlen(path);
                snprintf(path + at, sizeof path - at, "/%.*s", (int)len, p);
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return fail_errno(err, -errno, "create cgroup %s", path);
                r = fn ? fn(path, err) : 0;
                if (r < 0)
                        return r;
                p += len;
                if (*p == '/')
                        p++;
        }
        return 0;
}

/* rmdir, retried while the kernel still counts tasks that are exiting; gone already is fine. */
static int remove_dir(const char *path, long long deadline_ms, char *err)
{
        int delay = 1;
        for (;;) {
                if (rmdir(path) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY || now_ms() >= deadline_ms)
                        return fail_errno(err, -errno, "remove cgroup %s", path);
                backoff(&delay);
        }
}

static void format_limit(char buf[32], long long v, const char *none)
{
        if (v > 0)
                snprintf(buf, 32, "%lld", v);
        else
                snprintf(buf, 32, "%s", none);
}

/* For hierarchies without cgroup.kill (v1, and v2 before Linux 5.14). Frozen, nothing in the
 * group can fork between our reading its pids and killing them; the killed tasks then die
 * once thawed. Repeated, because a task may have been forking while the freeze took hold. */
static int kill_by_freezing(struct cgroup *cg, char *err)
{
        long long deadline = now_ms() + CGROUP_WAIT_MS;
        int sig = SIGKILL;
        for (;;) {
                /* Best effort: a task stuck in the kernel can hold the freeze off, and killing
                 * what can be killed still helps, so a failed freeze does not stop us. */
                (void)cg->mgr->freeze(cg, 1, deadline, NULL);
                int listed = cg->mgr->signal_all(cg, sig, err);
                int r = cg->mgr->freeze(cg, 0, deadline, err);
                if (listed < 0)
                        return listed;
                if (r < 0 && r != -ENOENT)
                        return r;
                if (listed == 0)
                        return 0;
                /* Give the dying a moment before looking again (and freezing again). */
                long long until = now_ms() + 100;
                int delay = 1;
                while ((r = cg->mgr->populated(cg)) > 0 && now_ms() < until && now_ms() < deadline)
                        backoff(&delay);
                if (r == 0 || r == -ENOENT)
                        return 0;
                if (r < 0)
                        return fail_errno(err, r, "kill processes in cgroup %s", cg->name);
                if (now_ms() >= deadline)
                        return fail_msg(err, -ETIMEDOUT,
                                        "kill processes in cgroup %s: still populated after %d ms", cg->name,
                                        CGROUP_WAIT_MS);
        }
}

/* ---------------------------------------------------------------------------------------- */
/* cgroup v1: one hierarchy per controller (or per group of co-mounted controllers)           */

static int v1_init_parent(char *err)
{
        for (size_t i = 0; i < sys.n_hier; i++) {
                int r = make_parent(sys.hier[i].path, NULL, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v1_create(struct cgroup *cg, char *err)
{
        char path[PATH_MAX];
        size_t made = 0;
        int r = 0;
        for (; made < sys.n_hier; made++) {
                group_path(path, &sys.hier[made], cg->name, NULL);
                if (mkdir(path, 0755) < 0) {
                        r = fail_errno(err, -errno, "create cgroup %s", path);
                        break;
                }
        }
        if (r < 0) {
                /* All or nothing: a half-made group would confuse cgroup_open later. */
                for (size_t i = 0; i < made; i++) {
                        group_path(path, &sys.hier[i], cg->name, NULL);
                        (void)rmdir(path);
                }
        }
        return r;
}

static int v1_open(struct cgroup *cg, char *err)
{
        char path[PATH_MAX];
        for (size_t i = 0; i < sys.n_hier; i++) {
                group_path(path, &sys.hier[i], cg->name, NULL);
                if (exists(path))
                        return 0;
        }
        group_path(path, &sys.hier[0], cg->name, NULL);
        return fail_errno(err, -ENOENT, "open cgroup %s", path);
}

static int v1_set_memory(struct cgroup *cg, long long bytes, char *err)
{
        char limit[PATH_MAX], memsw[PATH_MAX], value[32];
        const struct hierarchy *h = hierarchy_of(CTRL_MEMORY);
        group_path(limit, h, cg->name, "memory.limit_in_bytes");
        group_path(memsw, h, cg->name, "memory.memsw.limit_in_bytes");
        format_limit(value, bytes, "-1");

        if (!exists(memsw)) {
                /* The kernel does not account swap (swapaccount=0): the best we can do is keep
                 * this group's own reclaim away from swap. */
                char swappiness[PATH_MAX];
                group_path(swappiness, h, cg->name, "memory.swappiness");
                int r = write_file(limit, value, err);
                return r < 0 ? r : write_file(swappiness, "0", err);
        }

        /* memory+swap = memory: no room for swap. The kernel keeps memsw >= memory at every
         * write, so raising the limit above the current memsw must raise memsw first, and
         * lowering it must lower memory first; try memory first and switch on EINVAL. */
        int r = write_raw(limit, value);
        if (r == -EINVAL) {
                r = write_file(memsw, value, err);
                return r < 0 ? r : write_file(limit, value, err);
        }
        if (r < 0)
                return fail_errno(err, r, "write %s", limit);
        return write_file(memsw, value, err);
}

static int v1_set_cpu(struct cgroup *cg, const struct cgroup_limits *lim, char *err)
{
        char quota[PATH_MAX], period[PATH_MAX], value[32];
        const struct hierarchy *h = hierarchy_of(CTRL_CPU);
        group_path(quota, h, cg->name, "cpu.cfs_quota_us");
        group_path(period, h, cg->name, "cpu.cfs_period_us");
        long long p = lim->cpu_period_us > 0 ? lim->cpu_period_us : 100000;
        if (lim->cpu_quota_us <= 0 && lim->cpu_period_us <= 0)
                return write_file(quota, "-1", err);
        /* The period first: the kernel checks the quota against the period it has. */
        snprintf(value, sizeof value, "%lld", p);
        int r = write_file(period, value, err);
        if (r < 0)
                return r;
        format_limit(value, lim->cpu_quota_us, "-1");
        return write_file(quota, value, err);
}

static int v1_set_limits(struct cgroup *cg, const struct cgroup_limits *lim, char *err)
{
        char path[PATH_MAX], value[32];
        int r = v1_set_memory(cg, lim->memory_bytes, err);
        if (r < 0)
                return r;
        group_path(path, hierarchy_of(CTRL_PIDS), cg->name, "pids.max");
        format_limit(value, lim->pids_max, "max");
        r = write_file(path, value, err);
        if (r < 0)
                return r;
        return v1_set_cpu(cg, lim, err);
}

static int v1_attach(struct cgroup *cg, pid_t pid, char *err)
{
        char path[PATH_MAX], value[16];
        snprintf(value, sizeof value, "%d", (int)pid);
        for (size_t i = 0; i < sys.n_hier; i++) {
                group_path(path, &sys.hier[i], cg->name, "cgroup.procs");
                int r = write_raw(path, value);
                if (r < 0)
                        return fail_errno(err, r, "attach pid %d to %s", (int)pid, path);
        }
        return 0;
}

static int v1_freeze(struct cgroup *cg, int frozen, long long deadline_ms, char *err)
{
        char path[PATH_MAX], state[32];
        const char *want = frozen ? "FROZEN" : "THAWED";
        group_path(path, hierarchy_of(CTRL_FREEZER), cg->name, "freezer.state");
        int r = write_file(path, want, err);
        if (r < 0)
                return r;
        /* Reading freezer.state is what moves FREEZING on to FROZEN once every task stopped.
         * The v1 freezer can stall for good on a vfork: the child frozen before its exec, the
         * parent waiting for it where it cannot freeze. A freeze still pending after a while
         * is thawed for a moment (the child execs) and asked again. */
        long long retry_at = now_ms() + 250;
        for (int delay = 1;; backoff(&delay)) {
                r = read_file(path, state, sizeof state, err);
                if (r < 0)
                        return r;
                state[strcspn(state, "\n")] = 0;
                if (strcmp(state, want) == 0)
                        return 0;
                if (now_ms() >= deadline_ms)
                        return fail_msg(err, -ETIMEDOUT, "%s cgroup %s: still %s", frozen ? "freeze" : "thaw",
                                        cg->name, state);
                if (frozen && now_ms() >= retry_at) {
                        if ((r = write_file(path, "THAWED", err)) < 0)
                                return r;
                        int moment = 2;
                        backoff(&moment); /* the child gets to exec */
                        if ((r = write_file(path, want, err)) < 0)
                                return r;
                        retry_at = now_ms() + 250;
                        delay = 1;
                }
        }
}

static int v1_signal_all(struct cgroup *cg, int sig, char *err)
{
        char path[PATH_MAX];
        int total = 0;
        /* Every hierarchy: a task may have been attached to some only (an attach that failed
         * part-way). A hierarchy without the group is simply empty. */
        for (size_t i = 0; i < sys.n_hier; i++) {
                group_path(path, &sys.hier[i], cg->name, "cgroup.procs");
                int n = for_each_pid(path, send_signal, &sig, err);
                if (n == -ENOENT)
                        continue;
                if (n < 0)
                        return n;
                total += n;
        }
        return total;
}

static int v1_kill_all(struct cgroup *cg, char *err)
{
        int r = v1_open(cg, err);
        return r < 0 ? r : kill_by_freezing(cg, err);
}

static int v1_populated(struct cgroup *cg)
{
        char path[PATH_MAX];
        int r = -ENOENT;
        for (size_t i = 0; i < sys.n_hier; i++) {
                group_path(path, &sys.hier[i], cg->name, "cgroup.procs");
                int n = for_each_pid(path, NULL, NULL, NULL);
                if (n == -ENOENT)
                        continue;
                if (n != 0)
                        return n > 0 ? 1 : n;
                r = 0;
        }
        return r;
}

static int v1_stats(struct cgroup *cg, struct cgroup_stats *ret, char *err)
{
        char path[PATH_MAX], state[32];
        struct cgroup_stats s = {.memory_peak_bytes = -1};
        long long v;

        group_path(path, hierarchy_of(CTRL_CPUACCT), cg->name, "cpuacct.usage");
        int r = read_ll(path, &v, err);
        if (r < 0)
                return r;
        s.cpu_usage_ns = (unsigned long long)v;

        group_path(path, hierarchy_of(CTRL_MEMORY), cg->name, "memory.usage_in_bytes");
        r = read_ll(path, &s.memory_bytes, err);
        if (r < 0)
                return r;
        group_path(path, hierarchy_of(CTRL_MEMORY), cg->name, "memory.max_usage_in_bytes");
        if (exists(path) && (r = read_ll(path, &s.memory_peak_bytes, err)) < 0)
                return r;

        group_path(path, hierarchy_of(CTRL_PIDS), cg->name, "pids.current");
        r = read_ll(path, &s.pids, err);
        if (r < 0)
                return r;

        group_path(path, hierarchy_of(CTRL_FREEZER), cg->name, "freezer.state");
        r = read_file(path, state, sizeof state, err);
        if (r < 0)
                return r;
        s.frozen = strncmp(state, "FROZEN", 6) == 0;

        *ret = s;
        return 0;
}

static int v1_remove(struct cgroup *cg, char *err)
{
        char path[PATH_MAX];
        long long deadline = now_ms() + CGROUP_RMDIR_MS;
        for (size_t i = 0; i < sys.n_hier; i++) {
                group_path(path, &sys.hier[i], cg->name, NULL);
                int r = remove_dir(path, deadline, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static const struct cgroup_manager cgroup_manager_v1 = {
    .init_parent = v1_init_parent,
    .create = v1_create,
    .open = v1_open,
    .set_limits = v1_set_limits,
    .attach = v1_attach,
    .freeze = v1_freeze,
    .kill_all = v1_kill_all,
    .signal_all = v1_signal_all,
    .populated = v1_populated,
    .stats = v1_stats,
    .remove = v1_remove,
};

/* ---------------------------------------------------------------------------------------- */
/* cgroup v2: one tree; controllers reach a group only through its ancestors' subtree_control */

static const struct {
        unsigned bit;
        const char *name;
} v2_controllers[] = {{CTRL_MEMORY, "memory"}, {CTRL_PIDS, "pids"}, {CTRL_CPU, "cpu"}};

/* Enables in level's cgroup.subtree_control the controllers that level offers and has not
 * enabled yet: a level that offers none (the hybrid's unified mount) is left as it is, and
 * one already set up (a systemd root) is not written to, as it may not be writable. */
static int v2_enable_controllers(const char *level, char *err)
{
        char path[PATH_MAX], offered[512], enabled[512];
        snprintf(path, sizeof path, "%s/cgroup.controllers", level);
        int r = read_file(path, offered, sizeof offered, err);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "%s/cgroup.subtree_control", level);
        r = read_file(path, enabled, sizeof enabled, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(v2_controllers); i++) {
                const char *name = v2_controllers[i].name;
                if (!has_word(offered, name) || has_word(enabled, name))
                        continue;
                char plus[16];
                snprintf(plus, sizeof plus, "+%s", name);
                r = write_raw(path, plus);
                if (r < 0)
                        return fail_errno(err, r, "enable %s controller in %s", name, path);
        }
        return 0;
}

static int v2_init_parent(char *err)
{
        return make_parent(sys.hier[0].path, v2_enable_controllers, err);
}

static int v2_read_controllers(struct cgroup *cg, char *err)
{
        char path[PATH_MAX], list[512];
        group_path(path, &sys.hier[0], cg->name, "cgroup.controllers");
        int r = read_file(path, list, sizeof list, err);
        if (r < 0)
                return r;
        cg->controllers = 0;
        for (size_t i = 0; i < ELEMENTSOF(v2_controllers); i++)
                if (has_word(list, v2_controllers[i].name))
                        cg->controllers |= v2_controllers[i].bit;
        return 0;
}

static int v2_create(struct cgroup *cg, char *err)
{
        char path[PATH_MAX];
        group_path(path, &sys.hier[0], cg->name, NULL);
        if (mkdir(path, 0755) < 0)
                return fail_errno(err, -errno, "create cgroup %s", path);
        int r = v2_read_controllers(cg, err);
        if (r < 0)
                (void)rmdir(path);
        return r;
}

static int v2_open(struct cgroup *cg, char *err)
{
        char path[PATH_MAX];
        group_path(path, &sys.hier[0], cg->name, NULL);
        if (!exists(path))
                return fail_errno(err, -errno, "open cgroup %s", path);
        return v2_read_controllers(cg, err);
}

static int v2_set_limits(struct cgroup *cg, const struct cgroup_limits *lim, char *err)
{
        char path[PATH_MAX], value[64];
        const struct {
                unsigned bit;
                const char *what;
                bool wanted;
        } needs[] = {
            {CTRL_MEMORY, "memory", lim->memory_bytes > 0},
            {CTRL_PIDS, "pids", lim->pids_max > 0},
            {CTRL_CPU, "cpu", lim->cpu_quota_us > 0},
        };
        /* All checked before anything is written, so that a refusal changes nothing. A limit of
         * 0 needs no controller: without one there is nothing to lift. */
        for (size_t i = 0; i < ELEMENTSOF(needs); i++) {
                if (needs[i].wanted && !(cg->controllers & needs[i].bit)) {
                        group_path(path, &sys.hier[0], cg->name, NULL);
                        return fail_msg(err, -EOPNOTSUPP, "set %s limit on %s: %s controller not available",
                                        needs[i].what, path, needs[i].what);
                }
        }

        int r;
        if (cg->controllers & CTRL_MEMORY) {
                group_path(path, &sys.hier[0], cg->name, "memory.max");
                format_limit(value, lim->memory_bytes, "max");
                r = write_file(path, value, err);
                if (r < 0)
                        return r;
                /* Absent when the kernel does not account swap. */
                group_path(path, &sys.hier[0], cg->name, "memory.swap.max");
                if (exists(path) && (r = write_file(path, "0", err)) < 0)
                        return r;
        }
        if (cg->controllers & CTRL_PIDS) {
                group_path(path, &sys.hier[0], cg->name, "pids.max");
                format_limit(value, lim->pids_max, "max");
                r = write_file(path, value, err);
                if (r < 0)
                        return r;
        }
        if (cg->controllers & CTRL_CPU) {
                group_path(path, &sys.hier[0], cg->name, "cpu.max");
                long long period = lim->cpu_period_us > 0 ? lim->cpu_period_us : 100000;
                if (lim->cpu_quota_us > 0)
                        snprintf(value, sizeof value, "%lld %lld", lim->cpu_quota_us, period);
                else
                        snprintf(value, sizeof value, "max %lld", period);
                r = write_file(path, value, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int v2_attach(struct cgroup *cg, pid_t pid, char *err)
{
        char path[PATH_MAX], value[16];
        snprintf(value, sizeof value, "%d", (int)pid);
        group_path(path, &sys.hier[0], cg->name, "cgroup.procs");
        int r = write_raw(path, value);
        if (r < 0)
                return fail_errno(err, r, "attach pid %d to %s", (int)pid, path);
        return 0;
}

static int v2_freeze(struct cgroup *cg, int frozen, long long deadline_ms, char *err)
{
        char path[PATH_MAX];
        group_path(path, &sys.hier[0], cg->name, "cgroup.freeze");
        int r = write_file(path, frozen ? "1" : "0", err);
        if (r < 0)
                return r;
        group_path(path, &sys.hier[0], cg->name, "cgroup.events");
        for (int delay = 1;; backoff(&delay)) {
                long long state;
                r = read_keyed(path, "frozen", &state, err);
                if (r < 0)
                        return r;
                if ((state != 0) == (frozen != 0))
                        return 0;
                if (now_ms() >= deadline_ms)
                        return fail_msg(err, -ETIMEDOUT, "%s cgroup %s: not %s yet",
                                        frozen ? "freeze" : "thaw", cg->name, frozen ? "frozen" : "thawed");
        }
}

static int v2_signal_all(struct cgroup *cg, int sig, char *err)
{
        char path[PATH_MAX];
        group_path(path, &sys.hier[0], cg->name, "cgroup.procs");
        return for_each_pid(path, send_signal, &sig, err);
}

static int v2_populated(struct cgroup *cg)
{
        char path[PATH_MAX];
        long long populated;
        group_path(path, &sys.hier[0], cg->name, "cgroup.events");
        int r = read_keyed(path, "populated", &populated, NULL);
        return r < 0 ? r : populated != 0;
}

static int v2_kill_all(struct cgroup *cg, char *err)
{
        char path[PATH_MAX];
        group_path(path, &sys.hier[0], cg->name, "cgroup.kill");
        int r = write_raw(path, "1");
        if (r == -ENOENT) {
                group_path(path, &sys.hier[0], cg->name, NULL);
                if (!exists(path))
                        return fail_errno(err, -ENOENT, "kill processes in cgroup %s", path);
                return kill_by_freezing(cg, err); /* a kernel before 5.14 */
        }
        if (r < 0)
                return fail_errno(err, r, "write %s", path);
        /* cgroup.kill only sends the signals; wait for the group to empty. */
        long long deadline = now_ms() + CGROUP_WAIT_MS;
        for (int delay = 1;; backoff(&delay)) {
                r = v2_populated(cg);
                if (r <= 0)
                        return r < 0 ? fail_errno(err, r, "read cgroup.events of %s", cg->name) : 0;
                if (now_ms() >= deadline)
                        return fail_msg(err, -ETIMEDOUT,
                                        "kill processes in cgroup %s: still populated after %d ms", cg->name,
                                        CGROUP_WAIT_MS);
        }
}

static int v2_stats(struct cgroup *cg, struct cgroup_stats *ret, char *err)
{
        char path[PATH_MAX];
        struct cgroup_stats s = {.memory_bytes = -1, .memory_peak_bytes = -1};
        long long v;

        /* cpu.stat's usage_usec is kept by the core, with or without the cpu controller. */
        group_path(path, &sys.hier[0], cg->name, "cpu.stat");
        int r = read_keyed(path, "usage_usec", &v, err);
        if (r < 0)
                return r;
        s.cpu_usage_ns = (unsigned long long)v * 1000;

        if (cg->controllers & CTRL_MEMORY) {
                group_path(path, &sys.hier[0], cg->name, "memory.current");
                r = read_ll(path, &s.memory_bytes, err);
                if (r < 0)
                        return r;
                group_path(path, &sys.hier[0], cg->name, "memory.peak"); /* Linux 5.19 and later */
                if (exists(path) && (r = read_ll(path, &s.memory_peak_bytes, err)) < 0)
                        return r;
        }

        if (cg->controllers & CTRL_PIDS) {
                group_path(path, &sys.hier[0], cg->name, "pids.current");
                r = read_ll(path, &s.pids, err);
        } else {
                /* Without the pids controller, count the group's own threads, as pids.current
                 * would for a group with no sub-groups. */
                group_path(path, &sys.hier[0], cg->name, "cgroup.threads");
                r = for_each_pid(path, NULL, NULL, err);
                s.pids = r;
        }
        if (r < 0)
                return r;

        group_path(path, &sys.hier[0], cg->name, "cgroup.events");
        r = read_keyed(path, "frozen", &v, err);
        if (r < 0)
                return r;
        s.frozen = v != 0;

        *ret = s;
        return 0;
}

static int v2_remove(struct cgroup *cg, char *err)
{
        char path[PATH_MAX];
        group_path(path, &sys.hier[0], cg->name, NULL);
        return remove_dir(path, now_ms() + CGROUP_RMDIR_MS, err);
}

static const struct cgroup_manager cgroup_manager_v2 = {
    .init_parent = v2_init_parent,
    .create = v2_create,
    .open = v2_open,
    .set_limits = v2_set_limits,
    .attach = v2_attach,
    .freeze = v2_freeze,
    .kill_all = v2_kill_all,
    .signal_all = v2_signal_all,
    .populated = v2_populated,
    .stats = v2_stats,
    .remove = v2_remove,
};

/* ---------------------------------------------------------------------------------------- */
/* The interface                                                                              */

/* One path component that names a directory of its own: not ".", "..", nor anything with a
 * slash or a newline (which /proc/<pid>/cgroup could not show unambiguously). */
static bool component_ok(const char *s, size_t len)
{
        if (len == 0 || len > NAME_MAX || (len == 1 && s[0] == '.') ||
            (len == 2 && s[0] == '.' && s[1] == '.'))
                return false;
        for (size_t i = 0; i < len; i++)
                if (s[i] == '/' || s[i] == '\n')
                        return false;
        return true;
}

static bool name_ok(const char *name)
{
        return name && component_ok(name, strlen(name));
}

static bool parent_ok(const char *parent)
{
        if (!parent || !*parent)
                return false;
        for (const char *p = parent;;) {
                size_t len = strcspn(p, "/");
                if (!component_ok(p, len))
                        return false;
                p += len;
                if (!*p)
                        return true;
                p++; /* a trailing or doubled slash makes an empty component: refused above */
        }
}

/* Finds the v1 hierarchies, one per mount: co-mounted controllers (cpu,cpuacct reached through
 * the cpu and cpuacct symlinks) share one, told apart by the mount's device number. */
static int v1_find_hierarchies(const char *root, char *err)
{
        dev_t devs[ELEMENTSOF(controllers)];
        for (size_t i = 0; i < ELEMENTSOF(controllers); i++) {
                char path[CGROUP_PREFIX_MAX];
                snprintf(path, sizeof path, "%s/%s", root, controllers[i].name);
                struct statfs fs;
                struct stat st;
                if (statfs(path, &fs) < 0 || stat(path, &st) < 0)
                        return fail_errno(err, -errno, "find cgroup v1 controller %s at %s",
                                          controllers[i].name, path);
                if (fs.f_type != CGROUP_SUPER_MAGIC)
                        return fail_msg(err, -ENODEV,
                                        "find cgroup v1 controller %s at %s: not a cgroup v1 mount",
                                        controllers[i].name, path);
                size_t h = 0;
                while (h < sys.n_hier && devs[h] != st.st_dev)
                        h++;
                if (h == sys.n_hier) {
                        devs[h] = st.st_dev;
                        snprintf(sys.hier[h].path, sizeof sys.hier[h].path, "%s", path);
                        sys.n_hier++;
                }
                sys.hier[h].controllers |= controllers[i].bit;
        }
        return 0;
}

int cgroup_system_init_at(enum cgroup_mode mode, const char *root, const char *parent,
                          char err[CGROUP_ERR_MAX])
{
        memset(&sys, 0, sizeof sys);
        if (mode != CGROUP_MODE_V1 && mode != CGROUP_MODE_V2)
                return fail_msg(err, -EINVAL, "set up cgroups: unknown mode %d", (int)mode);
        if (!root || root[0] != '/')
                return fail_msg(err, -EINVAL, "set up cgroups: root must be an absolute path");
        if (!parent_ok(parent))
                return fail_msg(err, -EINVAL, "set up cgroups: '%s' is not a valid parent path",
                                parent ? parent : "");
        if (strlen(root) + strlen("/cpuacct") >= CGROUP_PREFIX_MAX || strlen(parent) >= CGROUP_PREFIX_MAX)
                return fail_msg(err, -ENAMETOOLONG, "set up cgroups under %s/%s: path too long", root,
                                parent);
        snprintf(sys.parent, sizeof sys.parent, "%s", parent);

        int r;
        if (mode == CGROUP_MODE_V1) {
                r = v1_find_hierarchies(root, err);
                sys.mgr = &cgroup_manager_v1;
        } else {
                struct statfs fs;
                if (statfs(root, &fs) < 0)
                        r = fail_errno(err, -errno, "find cgroup v2 mount at %s", root);
                else if (fs.f_type != CGROUP2_SUPER_MAGIC)
                        r = fail_msg(err, -ENODEV, "find cgroup v2 mount at %s: not a cgroup2 mount", root);
                else
                        r = 0;
                snprintf(sys.hier[0].path, sizeof sys.hier[0].path, "%s", root);
                sys.n_hier = 1;
                sys.mgr = &cgroup_manager_v2;
        }
        if (r >= 0)
                r = sys.mgr->init_parent(err);
        if (r < 0) {
                memset(&sys, 0, sizeof sys); /* a failed init leaves nothing half set up */
                return r;
        }
        sys.mode = mode;
        return 0;
}

int cgroup_system_init(const char *parent, char err[CGROUP_ERR_MAX])
{
        enum cgroup_mode mode = exists("/sys/fs/cgroup/cgroup.controllers") ? CGROUP_MODE_V2 : CGROUP_MODE_V1;
        return cgroup_system_init_at(mode, "/sys/fs/cgroup", parent, err);
}

enum cgroup_mode cgroup_system_mode(void)
{
        return sys.mode;
}

int cgroup_system_remove(char err[CGROUP_ERR_MAX])
{
        if (!sys.mgr)
                return fail_msg(err, -EINVAL, "remove cgroup parent: cgroup_system_init was not called");
        for (size_t i = 0; i < sys.n_hier; i++) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", sys.hier[i].path, sys.parent);
                if (rmdir(path) < 0 && errno != ENOENT)
                        return fail_errno(err, -errno, "remove cgroup %s", path);
        }
        return 0;
}

static int new_handle(const char *verb, const char *name, struct cgroup **ret, char *err)
{
        if (!sys.mgr)
                return fail_msg(err, -EINVAL, "%s cgroup %s: cgroup_system_init was not called", verb,
                                name ? name : "");
        if (!name_ok(name))
                return fail_msg(err, -EINVAL, "%s cgroup '%s': not a valid name", verb, name ? name : "");
        struct cgroup *cg = calloc(1, sizeof *cg);
        if (!cg)
                return fail_errno(err, -ENOMEM, "%s cgroup %s", verb, name);
        cg->mgr = sys.mgr;
        snprintf(cg->name, sizeof cg->name, "%s", name);
        *ret = cg;
        return 0;
}

int cgroup_create(const char *name, const struct cgroup_limits *lim, struct cgroup **ret,
                  char err[CGROUP_ERR_MAX])
{
        _cleanup_(cgroup_freep) struct cgroup *cg = NULL;
        int r = new_handle("create", name, &cg, err);
        if (r < 0)
                return r;
        r = cg->mgr->create(cg, err);
        if (r == -ENOENT) {
                /* The parent went away since init (an operator cleaning up): make it again, once. */
                r = cg->mgr->init_parent(err);
                if (r >= 0)
                        r = cg->mgr->create(cg, err);
        }
        if (r < 0)
                return r;
        if (lim) {
                r = cgroup_set_limits(cg, lim, err);
                if (r < 0) {
                        /* Just made and still empty; err keeps the reason the limits failed. */
                        (void)cg->mgr->remove(cg, NULL);
                        return r;
                }
        }
        *ret = TAKE_PTR(cg); /* the caller owns the handle now */
        return 0;
}

int cgroup_open(const char *name, struct cgroup **ret, char err[CGROUP_ERR_MAX])
{
        _cleanup_(cgroup_freep) struct cgroup *cg = NULL;
        int r = new_handle("open", name, &cg, err);
        if (r < 0)
                return r;
        r = cg->mgr->open(cg, err);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(cg);
        return 0;
}

int cgroup_list(void (*fn)(const char *name, void *arg), void *arg, char err[CGROUP_ERR_MAX])
{
        int count = 0;
        for (size_t i = 0; i < sys.n_hier; i++) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/%s", sys.hier[i].path, sys.parent);
                DIR *d = opendir(path);
                if (!d && errno == ENOENT)
                        continue;
                if (!d)
                        return fail_errno(err, -errno, "list cgroup %s", path);
                struct dirent *e;
                while ((e = readdir(d)))
                        if (e->d_type == DT_DIR && e->d_name[0] != '.') {
                                fn(e->d_name, arg);
                                count++;
                        }
                closedir(d);
        }
        return count;
}

int cgroup_set_limits(struct cgroup *cg, const struct cgroup_limits *lim, char err[CGROUP_ERR_MAX])
{
        if (!cg || !lim)
                return fail_msg(err, -EINVAL, "set cgroup limits: no cgroup or no limits");
        if (lim->memory_bytes < 0 || lim->pids_max < 0 || lim->cpu_quota_us < 0 || lim->cpu_period_us < 0)
                return fail_msg(err, -EINVAL, "set limits on cgroup %s: negative limit", cg->name);
        return cg->mgr->set_limits(cg, lim, err);
}

int cgroup_join_files(struct cgroup *cg, char (*paths)[PATH_MAX], int max, char err[CGROUP_ERR_MAX])
{
        bool v1 = cg->mgr == &cgroup_manager_v1;
        int n = v1 ? (int)sys.n_hier : 1;
        if (n > max) {
                snprintf(err, CGROUP_ERR_MAX, "join %.64s: %d hierarchies, room for %d", cg->name, n, max);
                return -E2BIG;
        }
        for (int i = 0; i < n; i++)
                group_path(paths[i], &sys.hier[i], cg->name, v1 ? "tasks" : "cgroup.procs");
        return n;
}

int cgroup_attach(struct cgroup *cg, pid_t pid, char err[CGROUP_ERR_MAX])
{
        /* 0 in cgroup.procs means "the writer": never move warrend by accident. */
        if (pid <= 0)
                return fail_msg(err, -EINVAL, "attach pid %d to cgroup %s: not a process id", (int)pid,
                                cg->name);
        return cg->mgr->attach(cg, pid, err);
}

int cgroup_freeze(struct cgroup *cg, int frozen, char err[CGROUP_ERR_MAX])
{
        return cg->mgr->freeze(cg, frozen, now_ms() + CGROUP_WAIT_MS, err);
}

int cgroup_kill_all(struct cgroup *cg, char err[CGROUP_ERR_MAX])
{
        return cg->mgr->kill_all(cg, err);
}

int cgroup_populated(struct cgroup *cg)
{
        return cg->mgr->populated(cg);
}

int cgroup_stats(struct cgroup *cg, struct cgroup_stats *ret, char err[CGROUP_ERR_MAX])
{
        return cg->mgr->stats(cg, ret, err);
}

int cgroup_destroy(struct cgroup *cg, char err[CGROUP_ERR_MAX])
{
        int r = cg->mgr->kill_all(cg, err);
        if (r == -ENOENT)
                return 0; /* gone already */
        if (r < 0)
                return r;
        return cg->mgr->remove(cg, err);
}

void cgroup_free(struct cgroup *cg)
{
        free(cg);
}

void cgroup_freep(struct cgroup **cg)
{
        cgroup_free(*cg);
}

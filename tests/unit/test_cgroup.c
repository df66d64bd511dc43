/* Cgroups, for real, on this machine: v1 through cgroup_system_init (a v1/v2 hybrid here), then
 * v2 through cgroup_system_init_at on the hybrid's unified mount, which has no controllers.
 * Everything lives under "warren-test-<pid>" and is removed at the end; a last test proves that.
 *
 * Children never outlive the test: each asks for SIGKILL when its parent dies, every test ends
 * by destroying its group and killing and reaping every child it made, and we are a child
 * subreaper, so that double-forked grandchildren come back to us to be reaped too. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "check.h"
#include "cleanup.h"

#define MIB (1024LL * 1024)

static char parent[64];
static pid_t test_pid;
static volatile unsigned long *counter; /* shared with the children: proof that one is running */
static const char *const v1_controllers[] = {"memory", "pids", "cpu", "cpuacct", "freezer"};

/* ---------------------------------------------------------------------------------------- */
/* Time, files                                                                               */

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* The group's directory in a v1 controller, or in the unified tree when v2 is in use. */
static void group_dir(char *buf, size_t size, const char *ctrl, const char *name)
{
        if (cgroup_system_mode() == CGROUP_MODE_V2)
                snprintf(buf, size, "/sys/fs/cgroup/unified/%s%s%s", parent, name ? "/" : "",
                         name ? name : "");
        else
                snprintf(buf, size, "/sys/fs/cgroup/%s/%s%s%s", ctrl, parent, name ? "/" : "",
                         name ? name : "");
}

static bool read_text(const char *path, char *buf, size_t size)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, size - 1);
        close(fd);
        if (n < 0)
                return false;
        buf[n] = 0;
        buf[strcspn(buf, "\n")] = 0; /* the first line is the value */
        return true;
}

/* The first line of <group>/<file>, or "" if unreadable. */
static const char *group_file(const char *ctrl, const char *name, const char *file)
{
        static char value[256];
        char path[512], dir[256];
        group_dir(dir, sizeof dir, ctrl, name);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        if (!read_text(path, value, sizeof value))
                value[0] = 0;
        return value;
}

static bool dir_exists(const char *path)
{
        struct stat st;
        return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool group_exists(const char *ctrl, const char *name)
{
        char dir[256];
        group_dir(dir, sizeof dir, ctrl, name);
        return dir_exists(dir);
}

/* Whether a "key value" file (cgroup.events, memory.oom_control) has key with a value. */
static long long keyed(const char *ctrl, const char *name, const char *file, const char *key)
{
        char path[512], dir[256], buf[2048];
        group_dir(dir, sizeof dir, ctrl, name);
        snprintf(path, sizeof path, "%s/%s", dir, file);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -1;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 0)
                return -1;
        buf[n] = 0;
        size_t klen = strlen(key);
        for (char *line = buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
                if (strncmp(line, key, klen) == 0 && line[klen] == ' ')
                        return atoll(line + klen + 1);
        return -1;
}

static bool procs_contain(const char *ctrl, const char *name, pid_t pid)
{
        char path[512], dir[256], buf[4096];
        group_dir(dir, sizeof dir, ctrl, name);
        snprintf(path, sizeof path, "%s/cgroup.procs", dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = 0;
        for (char *line = buf; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != 0))
                if (atoi(line) == pid)
                        return true;
        return false;
}

/* ---------------------------------------------------------------------------------------- */
/* Children                                                                                  */

#define MAX_CHILDREN 32
static pid_t children[MAX_CHILDREN]; /* 0: free slot */

static void track(pid_t pid)
{
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (!children[i]) {
                        children[i] = pid;
                        return;
                }
        kill(pid, SIGKILL); /* no room to remember it: it must not run unwatched */
}

static void untrack(pid_t pid)
{
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == pid)
                        children[i] = 0;
}

/* Waits up to timeout_ms for pid to end: 1 with *status, 0 if it still runs, -1 if no such
 * child. */
static int wait_exit(pid_t pid, int timeout_ms, int *status)
{
        long long deadline = now_ms() + timeout_ms;
        for (;;) {
                int st;
                pid_t r = waitpid(pid, &st, WNOHANG);
                if (r == pid) {
                        untrack(pid);
                        if (status)
                                *status = st;
                        return 1;
                }
                if (r < 0 && errno != EINTR) {
                        untrack(pid);
                        return -1;
                }
                if (now_ms() >= deadline)
                        return 0;
                sleep_ms(5);
        }
}

static bool killed_by(int status, int sig)
{
        return WIFSIGNALED(status) && WTERMSIG(status) == sig;
}

/* Thaws every group under our parent, without the library (which may be what failed): a
 * frozen child cannot die of SIGKILL, not even of the one its parent's death sends. */
static void thaw_all(void)
{
        const char *const files[][2] = {{"/sys/fs/cgroup/freezer", "freezer.state"},
                                        {"/sys/fs/cgroup/unified", "cgroup.freeze"}};
        for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                char dir[256];
                snprintf(dir, sizeof dir, "%s/%s", files[i][0], parent);
                DIR *d = opendir(dir);
                if (!d)
                        continue;
                struct dirent *e;
                while ((e = readdir(d))) {
                        char path[600];
                        if (e->d_type != DT_DIR || e->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof path, "%s/%s/%s", dir, e->d_name, files[i][1]);
                        const char *value = i == 0 ? "THAWED" : "0";
                        int fd = open(path, O_WRONLY | O_CLOEXEC);
                        if (fd >= 0 && write(fd, value, strlen(value)) < 0)
                                perror(path);
                        if (fd >= 0)
                                close(fd);
                }
                closedir(d);
        }
}

/* Every test ends here, on every path: kill and reap what is left, then any zombie that was
 * reparented to us (the middle process of a double fork). */
static void reap_all(void)
{
        bool any = false;
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                any |= children[i] != 0;
        if (any)
                thaw_all();
        for (size_t i = 0; i < MAX_CHILDREN; i++) {
                pid_t pid = children[i];
                if (!pid)
                        continue;
                kill(pid, SIGKILL);
                if (wait_exit(pid, 3000, NULL) == 0)
                        fprintf(stderr, "  child %d does not die (frozen?)\n", (int)pid);
        }
        while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
}

struct child {
        pid_t pid;
        int go;     /* the test writes a byte once the child is in its group */
        int report; /* the child writes what it saw */
};

static void child_close(struct child *c)
{
        if (c->go >= 0)
                close(c->go);
        if (c->report >= 0)
                close(c->report);
        c->go = c->report = -1;
}

/* In a child: SIGKILL when the test dies, checked against the race with the test dying first. */
static void die_with_test(void)
{
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != test_pid)
                _exit(127);
}

static void wait_go(int go)
{
        char c;
        if (read(go, &c, 1) != 1)
                _exit(126); /* the test gave up on us */
}

static bool spawn(void (*body)(int go, int report), struct child *ret)
{
        int go[2], report[2];
        if (pipe2(go, O_CLOEXEC) < 0)
                return false;
        if (pipe2(report, O_CLOEXEC) < 0) {
                close(go[0]);
                close(go[1]);
                return false;
        }
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
                /* The test's cleanup-on-SIGTERM is the test's, not ours. */
                signal(SIGTERM, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                die_with_test();
                close(go[1]);
                close(report[0]);
                body(go[0], report[1]);
                _exit(0);
        }
        close(go[0]);
        close(report[1]);
        if (pid < 0) {
                close(go[1]);
                close(report[0]);
                return false;
        }
        track(pid);
        *ret = (struct child){.pid = pid, .go = go[1], .report = report[0]};
        return true;
}

static bool start(struct child *c)
{
        return write(c->go, "g", 1) == 1;
}

/* Reads exactly size bytes of report, waiting up to timeout_ms. */
static bool read_report(struct child *c, void *buf, size_t size, int timeout_ms)
{
        size_t have = 0;
        long long deadline = now_ms() + timeout_ms;
        while (have < size) {
                long long left = deadline - now_ms();
                struct pollfd p = {.fd = c->report, .events = POLLIN};
                if (left <= 0 || poll(&p, 1, (int)left) <= 0)
                        return false;
                ssize_t n = read(c->report, (char *)buf + have, size - have);
                if (n <= 0)
                        return false;
                have += (size_t)n;
        }
        return true;
}

static void body_sleep(int go, int report)
{
        for (;;)
                pause();
}

static void body_count(int go, int report)
{
        wait_go(go);
        for (;;) {
                (*counter)++;
                sleep_ms(1);
        }
}

/* Touches 8 MiB and burns 300 ms of CPU, all inside its group, then says so. */
static void body_burn(int go, int report)
{
        wait_go(go);
        size_t size = 8 * MIB;
        volatile char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                _exit(1);
        for (size_t i = 0; i < size; i += 4096)
                p[i] = 1;
        struct timespec ts;
        do
                clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        while (ts.tv_sec == 0 && ts.tv_nsec < 300000000L);
        if (write(report, "d", 1) != 1)
                _exit(1);
        for (;;)
                pause();
}

/* Spins for 500 ms of wall time and reports the CPU time it got. */
static void body_spin(int go, int report)
{
        wait_go(go);
        long long until = now_ms() + 500;
        while (now_ms() < until)
                ;
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        long long cpu_ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (write(report, &cpu_ms, sizeof cpu_ms) != sizeof cpu_ms)
                _exit(1);
        for (;;)
                pause();
}

/* Touches 64 MiB; in a 32 MiB group it must not live to say so. */
static void body_hog(int go, int report)
{
        wait_go(go);
        size_t size = 64 * MIB;
        volatile char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                _exit(1);
        for (size_t i = 0; i < size; i += 4096)
                p[i] = 1;
        if (write(report, "s", 1) != 1)
                _exit(1);
        _exit(0);
}

struct fork_report {
        int forked;
        int err;
};

/* Forks until fork fails (at most 16 times) and reports how far it got and why it stopped. */
static void body_fork(int go, int report)
{
        wait_go(go);
        pid_t me = getpid(), kids[16];
        struct fork_report rep = {0, 0};
        while (rep.forked < 16) {
                pid_t k = fork();
                if (k < 0) {
                        rep.err = errno;
                        break;
                }
                if (k == 0) {
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        if (getppid() != me)
                                _exit(0);
                        for (;;)
                                pause();
                }
                kids[rep.forked++] = k;
        }
        for (int i = 0; i < rep.forked; i++) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
        }
        if (write(report, &rep, sizeof rep) != sizeof rep)
                _exit(1);
        _exit(0);
}

/* Ignores SIGTERM and leaves behind a double-forked grandchild (which ignores it too) that
 * reports its pid; the grandchild is reparented to the test, a subreaper. */
static void body_stubborn(int go, int report)
{
        signal(SIGTERM, SIG_IGN);
        wait_go(go);
        pid_t middle = fork();
        if (middle == 0) {
                if (fork() == 0) {
                        /* Wait to be orphaned onto the test, then die with it. */
                        long long deadline = now_ms() + 2000;
                        while (getppid() != test_pid && now_ms() < deadline)
                                sleep_ms(1);
                        die_with_test();
                        pid_t me = getpid();
                        if (write(report, &me, sizeof me) != sizeof me)
                                _exit(1);
                        for (;;)
                                pause();
                }
                _exit(0);
        }
        if (middle > 0)
                waitpid(middle, NULL, 0);
        for (;;)
                pause();
}

/* ---------------------------------------------------------------------------------------- */
/* What v1 and v2 share                                                                      */

/* A group with a counting child in it, frozen and thawed. */
static void check_freeze_and_thaw(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        *counter = 0;
        if (cgroup_create("freeze", NULL, &cg, err) < 0 || !spawn(body_count, &c)) {
                fprintf(stderr, "  setup: %s\n", err);
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        CHECK(start(&c));
        long long deadline = now_ms() + 2000;
        while (*counter < 5 && now_ms() < deadline)
                sleep_ms(1);
        CHECK(*counter >= 5);

        CHECK(cgroup_freeze(cg, 1, err) == 0);
        struct cgroup_stats s;
        CHECK(cgroup_stats(cg, &s, err) == 0 && s.frozen == 1);
        if (cgroup_system_mode() == CGROUP_MODE_V1)
                CHECK_STREQ(group_file("freezer", "freeze", "freezer.state"), "FROZEN");
        else
                CHECK(keyed(NULL, "freeze", "cgroup.events", "frozen") == 1);
        unsigned long before = *counter;
        sleep_ms(150);
        CHECK(*counter == before);

        CHECK(cgroup_freeze(cg, 0, err) == 0);
        CHECK(cgroup_stats(cg, &s, err) == 0 && s.frozen == 0);
        deadline = now_ms() + 2000;
        while (*counter == before && now_ms() < deadline)
                sleep_ms(1);
        CHECK(*counter > before);
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

/* A child that ignores SIGTERM and its double-forked grandchild both die of kill_all. */
static void check_kill_all(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        if (cgroup_create("kill", NULL, &cg, err) < 0 || !spawn(body_stubborn, &c)) {
                fprintf(stderr, "  setup: %s\n", err);
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        CHECK(start(&c));
        pid_t grandchild = 0;
        CHECK(read_report(&c, &grandchild, sizeof grandchild, 3000));
        if (grandchild > 0)
                track(grandchild);
        CHECK(grandchild > 0 && procs_contain("freezer", "kill", grandchild));
        kill(c.pid, SIGTERM); /* ignored: it must still be there for kill_all */
        sleep_ms(20);
        CHECK(cgroup_populated(cg) == 1);

        int r = cgroup_kill_all(cg, err);
        if (r < 0)
                fprintf(stderr, "  kill_all: %s\n", err);
        CHECK(r == 0);
        CHECK(cgroup_populated(cg) == 0);
        int status = 0;
        CHECK(wait_exit(c.pid, 2000, &status) == 1 && killed_by(status, SIGKILL));
        if (grandchild > 0)
                CHECK(wait_exit(grandchild, 2000, &status) == 1 && killed_by(status, SIGKILL));
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

/* destroy kills what is inside, even frozen, removes the group everywhere, and can be repeated. */
static void check_destroy(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        if (cgroup_create("destroy", NULL, &cg, err) < 0 || !spawn(body_sleep, &c)) {
                fprintf(stderr, "  setup: %s\n", err);
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        /* Frozen, as a paused sandbox is when it is deleted: its tasks die only once thawed. */
        CHECK(cgroup_freeze(cg, 1, err) == 0);
        int r = cgroup_destroy(cg, err);
        if (r < 0)
                fprintf(stderr, "  destroy: %s\n", err);
        CHECK(r == 0);
        int status = 0;
        CHECK(wait_exit(c.pid, 2000, &status) == 1 && killed_by(status, SIGKILL));
        for (size_t i = 0; i < ELEMENTSOF(v1_controllers); i++)
                CHECK(!group_exists(v1_controllers[i], "destroy"));
        CHECK(cgroup_destroy(cg, err) == 0);
        struct cgroup *again = NULL;
        CHECK(cgroup_open("destroy", &again, err) == -ENOENT && again == NULL);
out:
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

/* Removing Warren's parent leaves no directory in any hierarchy. */
static void check_remove_parent(void)
{
        char err[CGROUP_ERR_MAX] = "";
        int r = cgroup_system_remove(err);
        if (r < 0)
                fprintf(stderr, "  remove: %s\n", err);
        CHECK(r == 0);
        for (size_t i = 0; i < ELEMENTSOF(v1_controllers); i++) {
                char dir[256];
                group_dir(dir, sizeof dir, v1_controllers[i], NULL);
                CHECK(!dir_exists(dir));
        }
        CHECK(cgroup_system_remove(err) == 0); /* gone already is fine */
}

/* ---------------------------------------------------------------------------------------- */
/* v1                                                                                        */

static void cgroup__system_init_finds_v1_on_this_hybrid_host(void)
{
        char err[CGROUP_ERR_MAX] = "";
        int r = cgroup_system_init(parent, err);
        if (r < 0)
                fprintf(stderr, "  init: %s\n", err);
        CHECK(r == 0);
        CHECK(cgroup_system_mode() == CGROUP_MODE_V1);
        for (size_t i = 0; i < ELEMENTSOF(v1_controllers); i++)
                CHECK(group_exists(v1_controllers[i], NULL));
}

static void cgroup__limits_are_written_to_the_v1_files(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct cgroup_limits lim = {
            .memory_bytes = 32 * MIB, .pids_max = 16, .cpu_quota_us = 150000, .cpu_period_us = 100000};
        int r = cgroup_create("limits", &lim, &cg, err);
        if (r < 0)
                fprintf(stderr, "  create: %s\n", err);
        CHECK(r == 0);
        CHECK_STREQ(group_file("memory", "limits", "memory.limit_in_bytes"), "33554432");
        CHECK_STREQ(group_file("memory", "limits", "memory.memsw.limit_in_bytes"), "33554432");
        CHECK_STREQ(group_file("pids", "limits", "pids.max"), "16");
        CHECK_STREQ(group_file("cpu", "limits", "cpu.cfs_quota_us"), "150000");
        CHECK_STREQ(group_file("cpu", "limits", "cpu.cfs_period_us"), "100000");
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
}

static void cgroup__raising_and_lifting_v1_limits_keeps_memsw_in_step(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct cgroup_limits lim = {.memory_bytes = 64 * MIB, .pids_max = 8, .cpu_quota_us = 50000};
        CHECK(cgroup_create("raise", &lim, &cg, err) == 0);
        if (!cg)
                return;
        /* Above the current memsw: memsw must move first, which the kernel would refuse otherwise. */
        lim.memory_bytes = 128 * MIB;
        int r = cgroup_set_limits(cg, &lim, err);
        if (r < 0)
                fprintf(stderr, "  raise: %s\n", err);
        CHECK(r == 0);
        CHECK_STREQ(group_file("memory", "raise", "memory.limit_in_bytes"), "134217728");
        CHECK_STREQ(group_file("memory", "raise", "memory.memsw.limit_in_bytes"), "134217728");

        struct cgroup_limits none = {0};
        r = cgroup_set_limits(cg, &none, err);
        if (r < 0)
                fprintf(stderr, "  lift: %s\n", err);
        CHECK(r == 0);
        char unlimited[64];
        snprintf(unlimited, sizeof unlimited, "%s", group_file("memory", NULL, "memory.limit_in_bytes"));
        CHECK_STREQ(group_file("memory", "raise", "memory.limit_in_bytes"), unlimited);
        CHECK_STREQ(group_file("memory", "raise", "memory.memsw.limit_in_bytes"), unlimited);
        CHECK_STREQ(group_file("pids", "raise", "pids.max"), "max");
        CHECK_STREQ(group_file("cpu", "raise", "cpu.cfs_quota_us"), "-1");

        /* And down again, below what memsw was: memory must move first. */
        lim.memory_bytes = 16 * MIB;
        CHECK(cgroup_set_limits(cg, &lim, err) == 0);
        CHECK_STREQ(group_file("memory", "raise", "memory.limit_in_bytes"), "16777216");
        CHECK_STREQ(group_file("memory", "raise", "memory.memsw.limit_in_bytes"), "16777216");
        CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
}

static void cgroup__negative_limit_is_refused_before_any_write(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct cgroup_limits lim = {.memory_bytes = 32 * MIB};
        CHECK(cgroup_create("negative", &lim, &cg, err) == 0);
        if (!cg)
                return;
        struct cgroup_limits bad = {.memory_bytes = 64 * MIB, .pids_max = -1};
        CHECK(cgroup_set_limits(cg, &bad, err) == -EINVAL);
        CHECK(strstr(err, "negative") != NULL);
        CHECK_STREQ(group_file("memory", "negative", "memory.limit_in_bytes"), "33554432");
        CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
}

static void cgroup__write_error_names_the_file_and_the_reason(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        CHECK(cgroup_create("badcpu", NULL, &cg, err) == 0);
        if (!cg)
                return;
        /* The kernel refuses a period under 1 ms. */
        struct cgroup_limits lim = {.cpu_quota_us = 50000, .cpu_period_us = 10};
        CHECK(cgroup_set_limits(cg, &lim, err) == -EINVAL);
        char want[256];
        snprintf(want, sizeof want, "write /sys/fs/cgroup/cpu/%s/badcpu/cpu.cfs_period_us: Invalid argument",
                 parent);
        CHECK_STREQ(err, want);
        CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
}

static void cgroup__create_refuses_an_existing_group(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL, *twin = NULL;
        CHECK(cgroup_create("twin", NULL, &cg, err) == 0);
        CHECK(cgroup_create("twin", NULL, &twin, err) == -EEXIST && twin == NULL);
        CHECK(strstr(err, "File exists") != NULL);
        CHECK(group_exists("memory", "twin") && group_exists("freezer", "twin"));
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
}

struct names {
        char seen[8][32];
        int n;
};

static void note_name(const char *name, void *arg)
{
        struct names *names = arg;
        if (names->n < (int)ELEMENTSOF(names->seen))
                snprintf(names->seen[names->n++], sizeof names->seen[0], "%s", name);
}

static int times_named(const struct names *names, const char *name)
{
        int k = 0;
        for (int i = 0; i < names->n; i++)
                k += strcmp(names->seen[i], name) == 0;
        return k;
}

/* The node's sweep finds what a crash left from this: a half-made group (in one v1 hierarchy
 * only) is named as well as a whole one. */
static void cgroup__list_names_every_group_once_per_hierarchy(void)
{
        char err[CGROUP_ERR_MAX] = "", half[256];
        struct cgroup *cg = NULL;
        struct names names = {0};
        CHECK(cgroup_create("listed", NULL, &cg, err) == 0);
        group_dir(half, sizeof half, "pids", "halfmade");
        CHECK(mkdir(half, 0755) == 0);
        int calls = cgroup_list(note_name, &names, err);
        /* memory, pids, cpu, cpuacct and freezer: some hosts co-mount cpu and cpuacct */
        int whole = times_named(&names, "listed");
        CHECK(calls == names.n && calls == whole + 1);
        CHECK(whole == 4 || whole == 5);
        CHECK(times_named(&names, "halfmade") == 1);
        CHECK(rmdir(half) == 0);
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
}

static void cgroup__create_refuses_names_that_leave_the_parent(void)
{
        char err[CGROUP_ERR_MAX] = "";
        const char *bad[] = {"../escape", "a/b", "", ".", "..", "x\ny"};
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct cgroup *cg = NULL;
                CHECK(cgroup_create(bad[i], NULL, &cg, err) == -EINVAL && cg == NULL);
                cgroup_free(cg);
        }
        CHECK(!dir_exists("/sys/fs/cgroup/memory/escape"));
        CHECK(strstr(err, "not a valid name") != NULL);
}

static void cgroup__open_adopts_an_existing_group_and_refuses_an_absent_one(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL, *adopted = NULL, *absent = NULL;
        struct child c = {.go = -1, .report = -1};
        CHECK(cgroup_create("adopt", NULL, &cg, err) == 0 && spawn(body_sleep, &c));
        if (cg && c.pid > 0)
                CHECK(cgroup_attach(cg, c.pid, err) == 0);
        CHECK(cgroup_open("adopt", &adopted, err) == 0);
        if (adopted)
                CHECK(cgroup_populated(adopted) == 1);
        CHECK(cgroup_open("absent", &absent, err) == -ENOENT && absent == NULL);
        CHECK(strstr(err, "absent: No such file or directory") != NULL);
        if (adopted)
                CHECK(cgroup_destroy(adopted, err) == 0);
        CHECK(!group_exists("memory", "adopt"));
        cgroup_free(adopted);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

static void cgroup__attached_child_is_in_every_v1_controller(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        if (cgroup_create("attach", NULL, &cg, err) < 0 || !spawn(body_sleep, &c)) {
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_populated(cg) == 0);
        int r = cgroup_attach(cg, c.pid, err);
        if (r < 0)
                fprintf(stderr, "  attach: %s\n", err);
        CHECK(r == 0);
        for (size_t i = 0; i < ELEMENTSOF(v1_controllers); i++)
                CHECK(procs_contain(v1_controllers[i], "attach", c.pid));
        CHECK(!procs_contain("memory", "attach", getpid()));
        struct cgroup_stats s;
        CHECK(cgroup_stats(cg, &s, err) == 0 && s.pids == 1);
        CHECK(cgroup_populated(cg) == 1);
        CHECK(cgroup_attach(cg, 0, err) == -EINVAL); /* "0" would move the caller */
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

static void cgroup__freeze_stops_a_v1_child_and_thaw_resumes_it(void)
{
        check_freeze_and_thaw();
}

static void cgroup__stats_count_the_cpu_and_memory_a_child_used(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        if (cgroup_create("stats", NULL, &cg, err) < 0 || !spawn(body_burn, &c)) {
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        struct cgroup_stats before = {0}, after = {0};
        CHECK(cgroup_stats(cg, &before, err) == 0);
        CHECK(start(&c));
        char done;
        CHECK(read_report(&c, &done, 1, 5000));
        CHECK(cgroup_stats(cg, &after, err) == 0);
        CHECK(after.cpu_usage_ns >= before.cpu_usage_ns + 250000000ULL);
        CHECK(after.memory_bytes >= 4 * MIB);
        CHECK(after.memory_peak_bytes >= after.memory_bytes);
        CHECK(after.pids == 1);
        CHECK(after.frozen == 0);
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

static void cgroup__kill_all_kills_a_sigterm_ignoring_child_and_its_grandchild(void)
{
        check_kill_all();
}

static void cgroup__destroy_removes_the_group_from_every_controller(void)
{
        check_destroy();
}

static void cgroup__memory_limit_oom_kills_a_child_that_touches_more(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        struct cgroup_limits lim = {.memory_bytes = 32 * MIB};
        if (cgroup_create("oom", &lim, &cg, err) < 0 || !spawn(body_hog, &c)) {
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        CHECK(start(&c));
        int status = 0;
        CHECK(wait_exit(c.pid, 10000, &status) == 1);
        CHECK(killed_by(status, SIGKILL));
        CHECK(keyed("memory", "oom", "memory.oom_control", "oom_kill") >= 1);
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

static void cgroup__pids_limit_makes_fork_fail_with_eagain(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        struct cgroup_limits lim = {.pids_max = 4};
        if (cgroup_create("pids", &lim, &cg, err) < 0 || !spawn(body_fork, &c)) {
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        CHECK(start(&c));
        struct fork_report rep = {-1, -1};
        CHECK(read_report(&c, &rep, sizeof rep, 5000));
        CHECK(rep.forked == 3); /* the child itself is the fourth */
        CHECK(rep.err == EAGAIN);
        CHECK(keyed("pids", "pids", "pids.events", "max") >= 1);
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

static void cgroup__cpu_quota_holds_a_spinning_child_to_its_share(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        struct cgroup_limits lim = {.cpu_quota_us = 20000, .cpu_period_us = 100000}; /* 0.2 cpus */
        if (cgroup_create("cpu", &lim, &cg, err) < 0 || !spawn(body_spin, &c)) {
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        CHECK(start(&c));
        long long cpu_ms = -1;
        CHECK(read_report(&c, &cpu_ms, sizeof cpu_ms, 5000));
        /* 500 ms at 0.2 cpus is about 100 ms; unlimited it would be about 500. */
        CHECK(cpu_ms >= 20 && cpu_ms <= 250);
        struct cgroup_stats s;
        CHECK(cgroup_stats(cg, &s, err) == 0 && s.cpu_usage_ns <= 300000000ULL);
        CHECK(keyed("cpu", "cpu", "cpu.stat", "nr_throttled") >= 1);
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

static void cgroup__remove_leaves_no_v1_parent_directory(void)
{
        check_remove_parent();
}

/* ---------------------------------------------------------------------------------------- */
/* v2, on the hybrid's unified mount: no controllers there                                  */

static void cgroup__init_at_uses_the_unified_mount_as_v2(void)
{
        char err[CGROUP_ERR_MAX] = "";
        int r = cgroup_system_init_at(CGROUP_MODE_V2, "/sys/fs/cgroup/unified", parent, err);
        if (r < 0)
                fprintf(stderr, "  init: %s\n", err);
        CHECK(r == 0);
        CHECK(cgroup_system_mode() == CGROUP_MODE_V2);
        CHECK(group_exists(NULL, NULL));
}

static void cgroup__init_at_refuses_a_root_that_is_not_cgroup2(void)
{
        char err[CGROUP_ERR_MAX] = "";
        CHECK(cgroup_system_init_at(CGROUP_MODE_V2, "/sys/fs/cgroup/memory", parent, err) == -ENODEV);
        CHECK(strstr(err, "not a cgroup2 mount") != NULL);
        CHECK(cgroup_system_mode() == 0);
        /* Back to the unified mount for what follows. */
        CHECK(cgroup_system_init_at(CGROUP_MODE_V2, "/sys/fs/cgroup/unified", parent, err) == 0);
}

static void cgroup__v2_limit_without_its_controller_fails_naming_it(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        CHECK(cgroup_create("nolimits", NULL, &cg, err) == 0);
        if (!cg)
                return;
        struct cgroup_limits mem = {.memory_bytes = 32 * MIB};
        CHECK(cgroup_set_limits(cg, &mem, err) == -EOPNOTSUPP);
        char want[256];
        snprintf(want, sizeof want,
                 "set memory limit on /sys/fs/cgroup/unified/%s/nolimits: memory controller not available",
                 parent);
        CHECK_STREQ(err, want);
        struct cgroup_limits pids = {.pids_max = 4};
        CHECK(cgroup_set_limits(cg, &pids, err) == -EOPNOTSUPP);
        CHECK(strstr(err, "pids controller not available") != NULL);
        struct cgroup_limits cpu = {.cpu_quota_us = 50000};
        CHECK(cgroup_set_limits(cg, &cpu, err) == -EOPNOTSUPP);
        CHECK(strstr(err, "cpu controller not available") != NULL);
        struct cgroup_limits none = {0};
        CHECK(cgroup_set_limits(cg, &none, err) == 0); /* nothing to enforce, nothing missing */
        CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
}

static void cgroup__v2_create_with_an_unenforceable_limit_leaves_nothing(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct cgroup_limits lim = {.memory_bytes = 32 * MIB};
        CHECK(cgroup_create("refused", &lim, &cg, err) == -EOPNOTSUPP && cg == NULL);
        CHECK(strstr(err, "memory controller not available") != NULL);
        CHECK(!group_exists(NULL, "refused"));
}

static void cgroup__attached_child_is_in_the_v2_group(void)
{
        char err[CGROUP_ERR_MAX] = "";
        struct cgroup *cg = NULL;
        struct child c = {.go = -1, .report = -1};
        if (cgroup_create("attach", NULL, &cg, err) < 0 || !spawn(body_sleep, &c)) {
                CHECK(!"setup");
                goto out;
        }
        CHECK(cgroup_populated(cg) == 0);
        CHECK(cgroup_attach(cg, c.pid, err) == 0);
        CHECK(procs_contain(NULL, "attach", c.pid));
        CHECK(cgroup_populated(cg) == 1);
        struct cgroup_stats s;
        CHECK(cgroup_stats(cg, &s, err) == 0);
        CHECK(s.pids == 1);
        CHECK(s.memory_bytes == -1 && s.memory_peak_bytes == -1); /* no memory controller here */
out:
        if (cg)
                CHECK(cgroup_destroy(cg, err) == 0);
        cgroup_free(cg);
        child_close(&c);
        reap_all();
}

static void cgroup__freeze_stops_a_v2_child_and_thaw_resumes_it(void)
{
        check_freeze_and_thaw();
}

static void cgroup__v2_kill_all_kills_a_sigterm_ignoring_child_and_its_grandchild(void)
{
        check_kill_all();
}

static void cgroup__v2_destroy_removes_the_group(void)
{
        check_destroy();
}

static void cgroup__remove_leaves_no_v2_parent_directory(void)
{
        check_remove_parent();
}

/* ---------------------------------------------------------------------------------------- */
/* The safety net                                                                            */

/* Whatever a failed test left under our parent, in any hierarchy: thawed, killed, removed,
 * without the library (which may be what failed). Returns how many groups it found. */
static int sweep(void)
{
        const char *bases[] = {"memory", "pids", "cpu", "cpuacct", "freezer", "unified"};
        int found = 0;
        for (size_t i = 0; i < ELEMENTSOF(bases); i++) {
                char dir[256];
                snprintf(dir, sizeof dir, "/sys/fs/cgroup/%s/%s", bases[i], parent);
                DIR *d = opendir(dir);
                if (!d)
                        continue;
                struct dirent *e;
                while ((e = readdir(d))) {
                        if (e->d_type != DT_DIR || e->d_name[0] == '.')
                                continue;
                        found++;
                        char group[512], file[600], buf[4096];
                        snprintf(group, sizeof group, "%s/%s", dir, e->d_name);
                        thaw_all();
                        snprintf(file, sizeof file, "%s/cgroup.procs", group);
                        int fd = open(file, O_RDONLY | O_CLOEXEC);
                        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
                        if (fd >= 0)
                                close(fd);
                        for (char *p = buf; n > 0 && p < buf + n; p += strcspn(p, "\n") + 1) {
                                pid_t pid = atoi(p);
                                if (pid > 1 && pid != getpid())
                                        kill(pid, SIGKILL);
                        }
                        reap_all();
                        for (int tries = 0; tries < 100 && rmdir(group) < 0 && errno == EBUSY; tries++)
                                sleep_ms(10);
                }
                closedir(d);
                rmdir(dir);
        }
        return found;
}

static void cgroup__tests_leave_no_group_or_child_behind(void)
{
        CHECK(sweep() == 0);
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                CHECK(children[i] == 0);
        CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
        const char *bases[] = {"memory", "pids", "cpu", "cpuacct", "freezer", "unified"};
        for (size_t i = 0; i < ELEMENTSOF(bases); i++) {
                char dir[256];
                snprintf(dir, sizeof dir, "/sys/fs/cgroup/%s/%s", bases[i], parent);
                CHECK(!dir_exists(dir));
        }
}

/* Killed from outside (a CI timeout, ^C): leave nothing frozen or running behind. Not
 * async-signal-safe, which a test that is about to exit can afford. */
static void on_fatal_signal(int sig)
{
        sweep();
        signal(sig, SIG_DFL);
        raise(sig);
}

int main(void)
{
        test_pid = getpid();
        snprintf(parent, sizeof parent, "warren-test-%d", (int)test_pid);
        /* Double-forked grandchildren come back to us, to be reaped (and to die with us). */
        prctl(PR_SET_CHILD_SUBREAPER, 1);
        signal(SIGTERM, on_fatal_signal);
        signal(SIGINT, on_fatal_signal);
        signal(SIGHUP, on_fatal_signal);
        counter = mmap(NULL, sizeof *counter, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (counter == MAP_FAILED)
                return 1;

        RUN(cgroup__system_init_finds_v1_on_this_hybrid_host);
        RUN(cgroup__limits_are_written_to_the_v1_files);
        RUN(cgroup__raising_and_lifting_v1_limits_keeps_memsw_in_step);
        RUN(cgroup__negative_limit_is_refused_before_any_write);
        RUN(cgroup__write_error_names_the_file_and_the_reason);
        RUN(cgroup__create_refuses_an_existing_group);
        RUN(cgroup__create_refuses_names_that_leave_the_parent);
        RUN(cgroup__list_names_every_group_once_per_hierarchy);
        RUN(cgroup__open_adopts_an_existing_group_and_refuses_an_absent_one);
        RUN(cgroup__attached_child_is_in_every_v1_controller);
        RUN(cgroup__freeze_stops_a_v1_child_and_thaw_resumes_it);
        RUN(cgroup__stats_count_the_cpu_and_memory_a_child_used);
        RUN(cgroup__kill_all_kills_a_sigterm_ignoring_child_and_its_grandchild);
        RUN(cgroup__destroy_removes_the_group_from_every_controller);
        RUN(cgroup__memory_limit_oom_kills_a_child_that_touches_more);
        RUN(cgroup__pids_limit_makes_fork_fail_with_eagain);
        RUN(cgroup__cpu_quota_holds_a_spinning_child_to_its_share);
        RUN(cgroup__remove_leaves_no_v1_parent_directory);

        RUN(cgroup__init_at_uses_the_unified_mount_as_v2);
        RUN(cgroup__init_at_refuses_a_root_that_is_not_cgroup2);
        RUN(cgroup__v2_limit_without_its_controller_fails_naming_it);
        RUN(cgroup__v2_create_with_an_unenforceable_limit_leaves_nothing);
        RUN(cgroup__attached_child_is_in_the_v2_group);
        RUN(cgroup__freeze_stops_a_v2_child_and_thaw_resumes_it);
        RUN(cgroup__v2_kill_all_kills_a_sigterm_ignoring_child_and_its_grandchild);
        RUN(cgroup__v2_destroy_removes_the_group);
        RUN(cgroup__remove_leaves_no_v2_parent_directory);

        RUN(cgroup__tests_leave_no_group_or_child_behind);
        return CHECK_SUMMARY();
}

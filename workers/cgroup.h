/* Control groups for sandboxes: one group per sandbox, holding its memory, pids and cpu limits,
 * freezing it, killing everything in it and reading what it used. Hosts run either cgroup v1
 * (one hierarchy per controller) or v2 (one unified tree); both sit behind this interface and
 * the right manager is chosen once, at cgroup_system_init.
 *
 * Layout: v1 groups are <root>/<controller>/<parent>/<name> for memory, pids, cpu, cpuacct and
 * freezer; v2 groups are <root>/<parent>/<name>. <parent> is Warren's subtree ("warren").
 *
 * Every function that can fail returns >= 0 on success and -errno on failure, with the reason
 * ("write /sys/fs/cgroup/…/memory.max: Device or resource busy") in err; outputs (ret_*) are
 * written only on success. Nothing here logs.
 *
 * Threads: cgroup_system_init / cgroup_system_init_at run once, before any other call and with
 * no handle alive. After that, different struct cgroup handles may be used from different
 * threads at once; one handle is not to be used by two threads at the same time. */
#pragma once

#include <limits.h>
#include <sys/types.h>

#define CGROUP_ERR_MAX 256

enum cgroup_mode {
        CGROUP_MODE_V1 = 1,
        CGROUP_MODE_V2 = 2,
};

struct cgroup_limits {
        long long memory_bytes;  /* 0 = no limit; swap is never allowed (v2 memory.swap.max=0 where the
                                    kernel accounts swap; v1 memory.memsw.limit_in_bytes = memory_bytes
                                    when the kernel has it, else memory.swappiness=0) */
        long long pids_max;      /* 0 = no limit */
        long long cpu_quota_us;  /* with cpu_period_us: 150000/100000 = 1.5 cpus; 0 = no limit */
        long long cpu_period_us; /* 0 = the kernel's usual 100000 */
};

struct cgroup_stats {
        unsigned long long cpu_usage_ns;
        long long memory_bytes;      /* current usage; -1 if there is no memory controller (v2 without it) */
        long long memory_peak_bytes; /* -1 if the kernel does not say */
        long long pids;              /* current number of tasks (threads) */
        int frozen;
};

struct cgroup;

/* Chooses the manager: v2 if <root>/cgroup.controllers exists, else v1, with root
 * "/sys/fs/cgroup". Creates <parent> (a relative path, "warren" or "a/b") in every hierarchy
 * and, on v2, enables +memory +pids +cpu in cgroup.subtree_control from the root down to
 * <parent> wherever the level offers them. v1 needs memory, pids, cpu, cpuacct and freezer
 * mounted at <root>/<controller> (co-mounted ones such as cpu,cpuacct are fine). */
int cgroup_system_init(const char *parent, char err[CGROUP_ERR_MAX]);

/* The same with the mode and root forced: a test uses CGROUP_MODE_V2 on the hybrid's
 * /sys/fs/cgroup/unified. Calling it again replaces the previous setup (no handle may be alive). */
int cgroup_system_init_at(enum cgroup_mode mode, const char *root, const char *parent,
                          char err[CGROUP_ERR_MAX]);

/* The mode chosen by the last successful init; 0 before any. */
enum cgroup_mode cgroup_system_mode(void);

/* Removes the last component of <parent> in every hierarchy (the other components are left, as
 * they may be shared). -EBUSY while a group is still in it; 0 if it is already gone. */
int cgroup_system_remove(char err[CGROUP_ERR_MAX]);

/* Makes the group <name> (one path component) and applies lim (NULL = no limits). -EEXIST if
 * it exists already (cgroup_open adopts one); on any failure nothing is left behind. */
int cgroup_create(const char *name, const struct cgroup_limits *lim, struct cgroup **ret,
                  char err[CGROUP_ERR_MAX]);

/* Adopts an existing group (a restarted warrend finding its sandboxes): -ENOENT if it is in no
 * hierarchy. A group left half-made by a crash (present in some v1 hierarchies only) opens, so
 * that cgroup_destroy can clear it. */
int cgroup_open(const char *name, struct cgroup **ret, char err[CGROUP_ERR_MAX]);

/* Calls fn with the name of every group under <parent>: on v1 once per hierarchy the group is
 * in (a half-made one is named too). Returns how many calls it made, or -errno. */
int cgroup_list(void (*fn)(const char *name, void *arg), void *arg, char err[CGROUP_ERR_MAX]);

/* Writes every limit in lim, 0 meaning "remove the limit". A non-zero limit whose controller is
 * not available fails with -EOPNOTSUPP and names the controller; a zero one is skipped, as
 * there is nothing to enforce. A failure part-way leaves the limits written before it. */
int cgroup_set_limits(struct cgroup *cg, const struct cgroup_limits *lim, char err[CGROUP_ERR_MAX]);

/* The files a single-threaded process writes "0" into to move itself into the group: the
 * group's `tasks` in every v1 hierarchy (a thread moving itself skips the kernel's global
 * threadgroup lock, whose RCU grace period a write of a pid to cgroup.procs waits for, once
 * per hierarchy: milliseconds per sandbox), or its cgroup.procs on v2. Fills at most max
 * paths; returns how many, or -errno. */
int cgroup_join_files(struct cgroup *cg, char (*paths)[PATH_MAX], int max, char err[CGROUP_ERR_MAX]);

/* Moves pid (the whole process) into the group in every hierarchy. */
int cgroup_attach(struct cgroup *cg, pid_t pid, char err[CGROUP_ERR_MAX]);

/* Freezes (frozen != 0) or thaws the group and waits, up to 2 s, until the state is reached;
 * -ETIMEDOUT if it is not (the request stays written: the kernel keeps trying). */
int cgroup_freeze(struct cgroup *cg, int frozen, char err[CGROUP_ERR_MAX]);

/* SIGKILLs every process in the group and waits, up to 2 s, until it is empty; -ETIMEDOUT if
 * it is not. v2 writes cgroup.kill; v1 freezes, kills every pid, thaws, and repeats, so that
 * nothing forks its way out between reading the pids and killing them. The group is left
 * thawed. v1 does not descend into sub-groups (sandboxes make none there); v2's cgroup.kill
 * does. */
int cgroup_kill_all(struct cgroup *cg, char err[CGROUP_ERR_MAX]);

/* 1 if any process is in the group, 0 if it is empty, -errno. */
int cgroup_populated(struct cgroup *cg);

int cgroup_stats(struct cgroup *cg, struct cgroup_stats *ret, char err[CGROUP_ERR_MAX]);

/* Kills everything in the group, then removes its directory in every hierarchy (retrying for up
 * to 1 s while the kernel still counts exiting tasks). Idempotent: a group already gone is 0.
 * The handle stays valid for cgroup_free. */
int cgroup_destroy(struct cgroup *cg, char err[CGROUP_ERR_MAX]);

/* Frees the handle only, never the group; accepts NULL. */
void cgroup_free(struct cgroup *cg);
void cgroup_freep(struct cgroup **cg);
#define _cleanup_cgroup_ __attribute__((cleanup(cgroup_freep)))

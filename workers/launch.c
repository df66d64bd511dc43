/* The sandbox launcher. The order of steps is the point of this file:
 *
 *   parent                              child (PID 1 of new mount/pid/net/ipc/uts namespaces)
 *   ------                              -----
 *   bind agent sockets, open init binary;
 *   make the sandbox's user namespace
 *   (a helper process maps it, then
 *   dies; its fd keeps it)
 *   clone ------------------------------> joins its cgroup (writes 0 to each tasks file:
 *                                         moving itself skips the kernel's global lock);
 *                                         unshare cgroup ns; mounts (template and /usr
 *                                         idmapped through the user namespace); hostname;
 *                                         lo up; rlimits; pivot_root; setns into the user
 *                                         namespace; become root inside; execveat warren-init
 *   sync socket closes on exec (CLOEXEC), or carries (errno, step) on failure
 *
 * The child shares the caller's memory until it execs (CLONE_VM | CLONE_VFORK, as
 * posix_spawn does): no page table of a large, threaded worker is copied for a process
 * that is about to exec. So between clone and execveat the child writes nothing but its
 * own stack and calls no malloc, no stdio and no glibc wrapper that keeps process-wide
 * state (ids are changed with raw system calls: glibc's setresuid would signal the
 * worker's threads); every path and mount option it needs is prepared before clone, in
 * struct child_plan. The calling thread sleeps until the exec, other threads run on. */
#include "launch.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <linux/close_range.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "protocol.h"
#include "syscall_filter.h"

#define P PATH_MAX

/* A mount step, described as data (bubblewrap's way): what, where, and the step's name for
 * the error a failure reports. Its strings are kept in the plan's own arena, so that a plan
 * is a few pages: with a PATH_MAX array for each path it was 570 KB, and building one took a
 * page fault for every 4 KB of it that a step wrote. */
enum op_kind {
        OP_MOUNT,
        OP_MKDIR,
        OP_TOUCH,
        OP_SYMLINK,
        OP_CHOWN_BASE,
        OP_OPTIONAL_MOUNT,
        OP_IDMAPPED_BIND,
        OP_WRITE, /* data becomes the file's whole content */
};

struct op {
        enum op_kind kind;
        const char *src; /* mount source, symlink target */
        const char *dst;
        const char *fstype;
        unsigned long flags;
        const char *data; /* mount options (or NULL), or the content of OP_WRITE's file */
        const char *step;
};

#define MAX_OPS 64
/* About 60 paths under the sandbox's directory: room for a state dir of about 1000 bytes. */
#define PLAN_STRINGS (64 * 1024)

struct child_plan {
        struct op ops[MAX_OPS];
        int nops;
        const char *root;
        const char *hostname;
        long long disk_bytes;
        int sync_fd, listen_fd, files_fd, init_fd, filter_fd, env_fd, userns_fd, netns_fd;
        char join[8][P]; /* the cgroup files the child writes "0" into to join its group */
        int njoin;
        size_t strings_used;
        char strings[PLAN_STRINGS]; /* the ops' paths, options and contents */
};

struct child_report {
        int err;
        char step[40];
};

/* --- the child ----------------------------------------------------------------------- */

static void child_fail(int fd, int err, const char *step)
{
        struct child_report r = {.err = err};
        size_t n = strlen(step);
        memcpy(r.step, step, n < sizeof r.step - 1 ? n : sizeof r.step - 1);
        if (write(fd, &r, sizeof r) < 0)
                _exit(1);
        _exit(1);
}

/* Binds src at dst read-only, with every owner seen through the sandbox's id map: host
 * root's files (the template's, the host's /usr) are root's inside, not nobody's. The tree is
 * cloned detached, since only a mount not yet attached may take an id map. */
static int idmapped_bind(const struct op *op, int userns_fd)
{
        int fd = (int)syscall(SYS_open_tree, AT_FDCWD, op->src,
                              OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (fd < 0)
                return -errno;
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP | (uint64_t)op->flags,
                                  .userns_fd = (uint64_t)userns_fd};
        int r = 0;
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0 ||
            syscall(SYS_move_mount, fd, "", AT_FDCWD, op->dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                r = -errno;
        close(fd);
        return r;
}

static int run_op(const struct op *op, unsigned base, int userns_fd)
{
        int fd;
        switch (op->kind) {
        case OP_MOUNT:
        case OP_OPTIONAL_MOUNT:
                if (mount(op->src, op->dst, op->fstype, op->flags, op->data) == 0)
                        return 0;
                return op->kind == OP_OPTIONAL_MOUNT && errno == ENOENT ? 0 : -errno;
        case OP_MKDIR:
                return mkdir(op->dst, (mode_t)op->flags) == 0 || errno == EEXIST ? 0 : -errno;
        case OP_TOUCH:
                fd = open(op->dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                if (fd < 0)
                        return -errno;
                close(fd);
                return 0;
        case OP_SYMLINK:
                return symlink(op->src, op->dst) == 0 || errno == EEXIST ? 0 : -errno;
        case OP_CHOWN_BASE:
                return chown(op->dst, base, base) == 0 ? 0 : -errno;
        case OP_IDMAPPED_BIND:
                return idmapped_bind(op, userns_fd);
        case OP_WRITE: {
                fd = open(op->dst, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
                if (fd < 0)
                        return -errno;
                size_t n = strlen(op->data);
                ssize_t w = write(fd, op->data, n);
                int r = w == (ssize_t)n ? 0 : w < 0 ? -errno : -EIO;
                close(fd);
                return r;
        }
        }
        return -EINVAL;
}

static int loopback_up(void)
{
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct ifreq ifr = {0};
        memcpy(ifr.ifr_name, "lo", 3);
        int r = ioctl(fd, SIOCGIFFLAGS, &ifr);
        if (r == 0) {
                ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
                r = ioctl(fd, SIOCSIFFLAGS, &ifr);
        }
        r = r < 0 ? -errno : 0;
        close(fd);
        return r;
}

static int write_proc_file(const char *path, const char *value)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        ssize_t n = write(fd, value, strlen(value));
        int r = n < 0 ? -errno : 0;
        close(fd);
        return r;
}

static void set_rlimits(long long disk_bytes)
{
        /* A file may not outgrow the disk, but the tmpfs says so first (ENOSPC, which programs
         * handle) rather than SIGXFSZ. */
        rlim_t max_file = (rlim_t)disk_bytes + (64u << 20);
        struct rlimit core = {0, 0}, nofile, fsize = {max_file, max_file};
        setrlimit(RLIMIT_CORE, &core);
        setrlimit(RLIMIT_FSIZE, &fsize);
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
                nofile.rlim_cur = nofile.rlim_max < 65536 ? nofile.rlim_max : 65536;
                nofile.rlim_max = nofile.rlim_cur;
                setrlimit(RLIMIT_NOFILE, &nofile);
        }
}

struct child_args {
        struct child_plan *plan;
        unsigned base;
};

static int child_main(void *arg)
{
        struct child_args *a = arg;
        struct child_plan *p = a->plan;
        int fd = p->sync_fd;
        if (p->netns_fd >= 0 && setns(p->netns_fd, CLONE_NEWNET) < 0)
                child_fail(fd, errno, "join network namespace");
        for (int i = 0; i < p->njoin; i++) {
                int r = write_proc_file(p->join[i], "0");
                if (r < 0)
                        child_fail(fd, -r, "join cgroup");
        }
        /* Now in its cgroup: that cgroup becomes the root of what the sandbox sees. */
        if (unshare(CLONE_NEWCGROUP) < 0)
                child_fail(fd, errno, "unshare cgroup namespace");
        for (int i = 0; i < p->nops; i++) {
                int r = run_op(&p->ops[i], a->base, p->userns_fd);
                if (r < 0)
                        child_fail(fd, -r, p->ops[i].step);
        }
        if (sethostname(p->hostname, strlen(p->hostname)) < 0)
                child_fail(fd, errno, "set hostname");
        /* A namespace made for it came ready (network.c); a new, empty one is readied here:
         * lo up, and any port in it may be bound by anyone inside (root inside holds no
         * capability over this namespace). */
        if (p->netns_fd < 0) {
                int r = loopback_up();
                if (r < 0)
                        child_fail(fd, -r, "bring up loopback");
                r = write_proc_file("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0");
                if (r < 0)
                        child_fail(fd, -r, "allow low ports");
        }
        set_rlimits(p->disk_bytes);
        /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves
         * only the sandbox's tree (crun's way, with no directory to create). */
        if (chdir(p->root) < 0)
                child_fail(fd, errno, "chdir to new root");
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                child_fail(fd, errno, "pivot_root");
        if (umount2(".", MNT_DETACH) < 0)
                child_fail(fd, errno, "detach old root");
        if (chdir("/") < 0)
                child_fail(fd, errno, "chdir /");
        /* Last: the user namespace, already mapped by the parent. It owns none of the
         * namespaces above, so root inside can mount nothing and configure no interface.
         * Becoming root inside makes the real uid the sandbox's own host uid, so what the
         * kernel counts per user (processes, inotify watches, user namespaces) is charged
         * to this sandbox alone. */
        if (syscall(SYS_setgroups, 0, NULL) < 0)
                child_fail(fd, errno, "drop supplementary groups");
        if (setns(p->userns_fd, CLONE_NEWUSER) < 0)
                child_fail(fd, errno, "enter user namespace");
        if (syscall(SYS_setresgid, 0, 0, 0) < 0 || syscall(SYS_setresuid, 0, 0, 0) < 0 ||
            syscall(SYS_setgroups, 0, NULL) < 0)
                child_fail(fd, errno, "become root of the user namespace");
        if (dup2(p->listen_fd, 3) < 0 || dup2(p->filter_fd, 4) < 0 || dup2(p->env_fd, 5) < 0 ||
            dup2(p->files_fd, 6) < 0)
                child_fail(fd, errno, "pass agent sockets, filter and environment");
        /* Nothing of the worker may reach the sandbox but fds 0-6: every other descriptor,
         * however high (a busy worker holds thousands: Redis connections, FastCGI requests),
         * closes on exec. The sync socket and the init binary's fd close with them. */
        if (close_range(7, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                child_fail(fd, errno, "close inherited descriptors");
        /* The agent writes nothing; its stderr stays warrend's log only in sanitizer builds,
         * where a report must reach the tests. Otherwise user code, which can ptrace the
         * agent, could write into the host's log through it. */
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull >= 0) {
                dup2(devnull, 0);
                dup2(devnull, 1);
#ifndef __SANITIZE_ADDRESS__
                dup2(devnull, 2);
#endif
        }
        /* warren-init's own environment is fixed: the sandbox's (from the request) reaches only
         * the commands it runs, through fd 5, never the loader or libc of PID 1. */
        /* Nothing of the caller's signal state reaches PID 1: the master blocks the signals
         * it waits for, and an ignored signal would stay ignored across exec. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                signal(sig, SIG_DFL);
        char *argv[] = {"warren-init", NULL};
        char *envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        syscall(SYS_execveat, p->init_fd, "", argv, envp, AT_EMPTY_PATH);
        child_fail(fd, errno, "exec warren-init");
        return 1;
}

/* --- the plan ------------------------------------------------------------------------ */

struct plan_builder {
        struct child_plan *p;
        bool overflow;
};

/* A formatted string kept in the plan, where the child reads it after clone. A string that
 * does not fit the arena, or is longer than a path may be, refuses the plan. */
static const char *plan_string(struct plan_builder *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const char *plan_string(struct plan_builder *b, const char *fmt, ...)
{
        struct child_plan *p = b->p;
        size_t room = sizeof p->strings - p->strings_used;
        char *at = p->strings + p->strings_used;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(at, room, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= room || n >= P) {
                b->overflow = true;
                return "";
        }
        p->strings_used += (size_t)n + 1;
        return at;
}

static struct op *add(struct plan_builder *b, enum op_kind kind, const char *step)
{
        static struct op spare; /* absorbs steps past MAX_OPS; the plan is then refused */
        if (b->p->nops >= MAX_OPS) {
                b->overflow = true;
                return &spare;
        }
        struct op *op = &b->p->ops[b->p->nops++];
        *op = (struct op){.kind = kind, .step = step};
        return op;
}

/* The sandbox root's host path + in_root, kept in the plan. */
static const char *root_path(struct plan_builder *b, const char *in_root)
{
        return plan_string(b, "%s%s", b->p->root, in_root);
}

/* A mount at a host path (before pivot_root, every target is one). Path and options are the
 * plan's strings or literals: the child reads them after clone. */
static struct op *mount_at(struct plan_builder *b, const char *src, const char *host_path, const char *fstype,
                           unsigned long flags, const char *data, const char *step)
{
        struct op *op = add(b, OP_MOUNT, step);
        op->src = src;
        op->dst = host_path;
        op->fstype = fstype;
        op->flags = flags;
        op->data = data;
        return op;
}

/* A mount at a path inside the sandbox's root. */
static struct op *mount_in(struct plan_builder *b, const char *src, const char *in_root, const char *fstype,
                           unsigned long flags, const char *data, const char *step)
{
        return mount_at(b, src, root_path(b, in_root), fstype, flags, data, step);
}

static void path_in(struct plan_builder *b, enum op_kind kind, const char *in_root, unsigned long mode,
                    const char *src, const char *step)
{
        struct op *op = add(b, kind, step);
        op->dst = root_path(b, in_root);
        op->flags = mode;
        op->src = src;
}

/* Hides a /proc file by binding /dev/null over it (absent files are skipped). */
static void mask_file(struct plan_builder *b, const char *in_root, const char *step)
{
        mount_in(b, "/dev/null", in_root, NULL, MS_BIND, NULL, step)->kind = OP_OPTIONAL_MOUNT;
}

/* The template's /usr/lib/locale (the host's locales and C.UTF-8 in one archive, made
 * with the template) over the host's: a program's locale is then one mmap, where the
 * host's loose files cost a dozen opens through the overlay, 0.2 ms of each bash start.
 * A template without one keeps the host's. */
static void bind_locales(struct plan_builder *b, const char *template_dir)
{
        const char *src = plan_string(b, "%s/opt/warren/locale", template_dir);
        if (access(src, F_OK) != 0 || access("/usr/lib/locale", F_OK) != 0)
                return;
        struct op *op = add(b, OP_IDMAPPED_BIND, "bind the locales");
        op->src = src;
        op->dst = root_path(b, "/usr/lib/locale");
        op->flags = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
}

/* Hides a directory of host information under an empty read-only tmpfs (absent ones are
 * skipped). */
static void hide_dir(struct plan_builder *b, const char *in_root, const char *step)
{
        mount_in(b, "tmpfs", in_root, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 "size=4k,mode=0555", step)
            ->kind = OP_OPTIONAL_MOUNT;
}

/* Makes a directory read-only: bind it onto itself, then remount that bind read-only. */
static void read_only_dir(struct plan_builder *b, const char *in_root, const char *step)
{
        struct op *op = mount_in(b, NULL, in_root, NULL, MS_BIND | MS_REC, NULL, step);
        op->kind = OP_OPTIONAL_MOUNT;
        op->src = op->dst;
        mount_in(b, NULL, in_root, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                 NULL, step)
            ->kind = OP_OPTIONAL_MOUNT;
}

/* /etc/hosts names the sandbox (its hostname is its id) and /etc/resolv.conf points at the
 * node's DNS forwarder. Written into the writable layer, root's inside, so that the sandbox
 * may change them as on any machine. */
static void etc_files(struct plan_builder *b, const struct launch_spec *s)
{
        struct op *op = add(b, OP_WRITE, "write /etc/hosts");
        op->dst = root_path(b, "/etc/hosts");
        op->data = plan_string(b, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n",
                               s->address ? s->address : "127.0.1.1", s->id);
        path_in(b, OP_CHOWN_BASE, "/etc/hosts", 0, NULL, "chown /etc/hosts");
        op = add(b, OP_WRITE, "write /etc/resolv.conf");
        op->dst = root_path(b, "/etc/resolv.conf");
        op->data = s->nameserver
                       ? plan_string(b, "nameserver %s\noptions timeout:2 attempts:2\n", s->nameserver)
                       : "# this sandbox has no network\n";
        path_in(b, OP_CHOWN_BASE, "/etc/resolv.conf", 0, NULL, "chown /etc/resolv.conf");
}

/* Large files on the sandbox's disk are written into huge pages where the kernel has them
 * (huge=within_size: only where the file already extends past the whole huge page, so a
 * small file takes no more memory than before). A 1 GiB write into it ran 1.5 times as fast
 * as into 4 KiB pages here. The price: a sparse file's scattered writes each take a whole
 * huge page of the disk's size. A kernel without transparent huge pages refuses the option, so
 * it is given only where the kernel shows it has them. */
static bool tmpfs_huge;
static pthread_once_t tmpfs_huge_once = PTHREAD_ONCE_INIT;

static void tmpfs_huge_probe(void)
{
        tmpfs_huge = access("/sys/kernel/mm/transparent_hugepage/shmem_enabled", F_OK) == 0;
}

static int build_plan(const struct launch_spec *s, struct child_plan *p, char err[LAUNCH_ERR_MAX])
{
        struct plan_builder b = {.p = p};
        p->root = plan_string(&b, "%s/root", s->sandbox_dir);
        const char *disk = plan_string(&b, "%s/disk", s->sandbox_dir);
        const char *lower = plan_string(&b, "%s/lower", s->sandbox_dir);
        const char *upper = plan_string(&b, "%s/disk/upper", s->sandbox_dir);
        const char *work = plan_string(&b, "%s/disk/work", s->sandbox_dir);
        const char *lower_opts = plan_string(&b, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
        /* Inodes are bounded too (1024 per MiB), so creating files cannot eat the host's memory. */
        pthread_once(&tmpfs_huge_once, tmpfs_huge_probe);
        const char *tmpfs_opts =
            plan_string(&b, "size=%lld,nr_inodes=%lld,mode=0755%s", s->disk_bytes,
                        (s->disk_bytes >> 20) * 1024, tmpfs_huge ? ",huge=within_size" : "");

        /* Nothing done here may propagate back to the host. */
        mount_at(&b, NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL, "make mounts private");
        /* The writable layer lives on a tmpfs of the sandbox's disk size: ENOSPC inside. */
        mount_at(&b, "tmpfs", disk, "tmpfs", MS_NOSUID | MS_NODEV, tmpfs_opts, "mount disk tmpfs");
        struct op *op = add(&b, OP_MKDIR, "create upper layer");
        op->dst = upper;
        op->flags = 0755;
        op = add(&b, OP_CHOWN_BASE, "chown upper layer");
        op->dst = upper;
        op = add(&b, OP_MKDIR, "create work dir");
        op->dst = work;
        op->flags = 0700;
        /* The template, owned by host root, seen as root's through the sandbox's id map. */
        op = add(&b, OP_IDMAPPED_BIND, "bind template");
        op->src = s->template_dir;
        op->dst = lower;
        op->flags = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        mount_at(&b, "overlay", p->root, "overlay", MS_NOSUID | MS_NODEV, lower_opts, "mount overlay root");
        /* The host's programs, root's inside, read-only and without setuid down the whole
         * tree (a mount under the host's /usr would otherwise keep its own flags). */
        op = add(&b, OP_IDMAPPED_BIND, "bind /usr");
        op->src = "/usr";
        op->dst = root_path(&b, "/usr");
        op->flags = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        bind_locales(&b, s->template_dir);
        /* /proc of the new pid namespace, with the host-revealing files masked. */
        mount_in(&b, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "mount /proc");
        mask_file(&b, "/proc/kcore", "mask /proc/kcore");
        mask_file(&b, "/proc/keys", "mask /proc/keys");
        mask_file(&b, "/proc/timer_list", "mask /proc/timer_list");
        mask_file(&b, "/proc/sysrq-trigger", "mask /proc/sysrq-trigger");
        mask_file(&b, "/proc/latency_stats", "mask /proc/latency_stats");
        read_only_dir(&b, "/proc/sys", "make /proc/sys read-only");
        read_only_dir(&b, "/proc/bus", "make /proc/bus read-only");
        read_only_dir(&b, "/proc/fs", "make /proc/fs read-only");
        read_only_dir(&b, "/proc/irq", "make /proc/irq read-only");
        hide_dir(&b, "/proc/acpi", "hide /proc/acpi");
        hide_dir(&b, "/proc/scsi", "hide /proc/scsi");
        mount_in(&b, "sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
                 "mount /sys");
        hide_dir(&b, "/sys/firmware", "hide /sys/firmware");
        /* A minimal /dev: a few host device nodes bound in, its own ptys and shared memory. */
        /* The tmpfs mounts made here belong to root inside, as everything else there does. */
        const char *dev_opts =
            plan_string(&b, "mode=0755,size=65536,uid=%u,gid=%u", s->uid_base, s->uid_base);
        const char *shm_opts =
            plan_string(&b, "mode=1777,size=%lld,uid=%u,gid=%u", LAUNCH_SHM_BYTES, s->uid_base, s->uid_base);
        mount_in(&b, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, dev_opts, "mount /dev");
        static const char *const devices[] = {"/dev/null",   "/dev/zero",    "/dev/full",
                                              "/dev/random", "/dev/urandom", "/dev/tty"};
        for (size_t i = 0; i < ELEMENTSOF(devices); i++) {
                path_in(&b, OP_TOUCH, devices[i], 0, NULL, "create device node");
                mount_in(&b, devices[i], devices[i], NULL, MS_BIND, NULL, "bind device node");
        }
        path_in(&b, OP_MKDIR, "/dev/pts", 0755, NULL, "create /dev/pts");
        mount_in(&b, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                 "newinstance,ptmxmode=0666,mode=0620,max=64", "mount /dev/pts");
        path_in(&b, OP_SYMLINK, "/dev/ptmx", 0, "pts/ptmx", "link /dev/ptmx");
        path_in(&b, OP_MKDIR, "/dev/shm", 01777, NULL, "create /dev/shm");
        mount_in(&b, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, shm_opts, "mount /dev/shm");
        path_in(&b, OP_SYMLINK, "/dev/fd", 0, "/proc/self/fd", "link /dev/fd");
        path_in(&b, OP_SYMLINK, "/dev/stdin", 0, "/proc/self/fd/0", "link /dev/stdin");
        path_in(&b, OP_SYMLINK, "/dev/stdout", 0, "/proc/self/fd/1", "link /dev/stdout");
        path_in(&b, OP_SYMLINK, "/dev/stderr", 0, "/proc/self/fd/2", "link /dev/stderr");
        etc_files(&b, s);
        if (b.overflow) {
                snprintf(err, LAUNCH_ERR_MAX,
                         "the sandbox's mount plan does not fit: paths too long, or more steps than MAX_OPS");
                return -E2BIG;
        }
        return 0;
}

/* --- the parent ---------------------------------------------------------------------- */

/* The syscall filter is compiled once per process (libseccomp takes milliseconds) into a
 * sealed memfd that every sandbox's warren-init reads as fd 4: sealed against writing,
 * growing and shrinking, since every sandbox shares it and root inside can reach the fd. */
static int filter_fd = -1;
static char filter_error[SECCOMP_ERR_MAX];
static pthread_once_t filter_once = PTHREAD_ONCE_INIT;

/* The sandbox's environment as NAME=value strings, each ending in NUL, in a sealed memfd. */
/* The sandbox's environment, and after it the files.sock token under a name no variable can
 * have (init.c takes it out before anything runs). */
static int env_memfd(char *const *env, const char *files_token)
{
        _cleanup_close_ int fd = memfd_create("warren-sandbox-env", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        for (char *const *e = env; e && *e; e++) {
                size_t n = strlen(*e) + 1;
                if (write(fd, *e, n) != (ssize_t)n)
                        return -EIO;
        }
        if (files_token && dprintf(fd, "%s%s%c", FILES_TOKEN_ENTRY, files_token, 0) < 0)
                return -EIO;
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
                return -errno;
        return TAKE_FD(fd);
}

static void filter_build(void)
{
        struct seccomp_program prog;
        if (seccomp_program_build(&prog, filter_error) < 0)
                return;
        int fd = memfd_create("warren-syscall-filter", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        size_t len = prog.len * sizeof *prog.filter;
        if (fd < 0 || write(fd, prog.filter, len) != (ssize_t)len ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
                snprintf(filter_error, sizeof filter_error, "seal syscall filter: %s", strerror(errno));
                if (fd >= 0)
                        close(fd);
        } else {
                filter_fd = fd;
        }
        seccomp_program_free(&prog);
}

/* The agent's listening sockets are bound here, by root, in the sandbox's host directory:
 * they never appear inside the sandbox, so nothing in it can replace them. agent.sock is for
 * root on the host (the workers); files.sock, where nginx hands raw file transfers to the
 * agent (init_http.c), is for root and nginx's group too. */
static int agent_socket_bind(const char *dir, const char *name, gid_t group, int *ret_fd,
                             char err[LAUNCH_ERR_MAX])
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%s", dir, name) >=
            sizeof addr.sun_path) {
                snprintf(err, LAUNCH_ERR_MAX, "sandbox directory path is too long for a unix socket");
                return -ENAMETOOLONG;
        }
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        unlink(addr.sun_path);
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
            (group ? chown(addr.sun_path, 0, group) < 0 || chmod(addr.sun_path, 0660) < 0
                   : chmod(addr.sun_path, 0600) < 0) ||
            listen(fd, 64) < 0) {
                int r = -errno;
                snprintf(err, LAUNCH_ERR_MAX, "bind %s: %s", name, strerror(errno));
                return r;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Waits for the child's next message: one byte of progress, a failure report, or EOF (the
 * sync socket is CLOEXEC, so EOF means warren-init was exec'd). */
static int read_child(int fd, char *ret_byte, char err[LAUNCH_ERR_MAX])
{
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 10000);
        if (r <= 0) {
                snprintf(err, LAUNCH_ERR_MAX, "sandbox setup did not answer within 10 s");
                return -ETIMEDOUT;
        }
        struct child_report rep;
        ssize_t n = read(fd, &rep, sizeof rep);
        if (n == 0) {
                *ret_byte = 0;
                return 0;
        }
        if (n == 1) {
                *ret_byte = *(char *)&rep;
                return 0;
        }
        if (n == (ssize_t)sizeof rep) {
                rep.step[sizeof rep.step - 1] = 0;
                snprintf(err, LAUNCH_ERR_MAX, "%s: %s", rep.step, strerror(rep.err));
                return -rep.err;
        }
        snprintf(err, LAUNCH_ERR_MAX, "sandbox setup: unexpected message");
        return -EPROTO;
}

static int write_id_map(pid_t pid, const char *which, unsigned base)
{
        char path[64], map[64];
        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, which);
        int len = snprintf(map, sizeof map, "0 %u 65536\n", base);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, map, (size_t)len) != len)
                return -errno;
        return 0;
}

/* The helper holds the namespace until userns_make kills it, or until the process that made
 * it dies (a warrend killed with -9 in between): a copy of its descriptors, the host-wide
 * nftables lock among them, must not outlive warrend. Raw system calls: it shares warrend's
 * memory. */
static int hold_userns(void *arg)
{
        syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (syscall(SYS_getppid) != (pid_t)(intptr_t)arg) /* gone before the line above */
                syscall(SYS_exit, 0);
        for (;;)
                pause();
        return 0;
}

/* Makes the sandbox's user namespace (root inside = base outside, 65536 ids) and returns an
 * fd that keeps it. A process can enter a user namespace only alone, and a worker is
 * threaded, so a helper is cloned into it (sharing memory: nothing to copy), mapped from
 * here, and killed once the fd holds the namespace. */
static int userns_make(unsigned base, char err[LAUNCH_ERR_MAX])
{
        const size_t stack_size = 64 * 1024;
        void *stack =
            mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return -errno;
        pid_t pid = clone(hold_userns, (char *)stack + stack_size, CLONE_VM | CLONE_NEWUSER | SIGCHLD,
                          (void *)(intptr_t)getpid());
        if (pid < 0) {
                int r = -errno;
                munmap(stack, stack_size);
                snprintf(err, LAUNCH_ERR_MAX, "make user namespace: %s", strerror(-r));
                return r;
        }
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/ns/user", (int)pid);
        int r = write_id_map(pid, "uid_map", base);
        if (r == 0)
                r = write_id_map(pid, "gid_map", base);
        int fd = r == 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (r == 0 && fd < 0)
                r = -errno;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        munmap(stack, stack_size); /* only once the helper is gone: it ran on it */
        if (r < 0) {
                snprintf(err, LAUNCH_ERR_MAX, "map user namespace: %s", strerror(-r));
                return r;
        }
        return fd;
}

/* Waits for the child to exec warren-init (EOF on the sync socket) or to report a failure. */
static int supervise_child(int fd, char err[LAUNCH_ERR_MAX])
{
        char b = 1;
        int r = read_child(fd, &b, err);
        if (r < 0)
                return r;
        if (b != 0) {
                snprintf(err, LAUNCH_ERR_MAX, "sandbox setup: unexpected message");
                return -EPROTO;
        }
        return 0;
}

/* The sandbox's host directory: its mount points, and a link to the template it runs on. */
static int make_dirs(const char *dir, const char *template_dir, char err[LAUNCH_ERR_MAX])
{
        char path[P];
        const char *subs[] = {"", "/root", "/disk", "/lower"};
        for (size_t i = 0; i < ELEMENTSOF(subs); i++) {
                snprintf(path, sizeof path, "%s%s", dir, subs[i]);
                if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                        int r = -errno;
                        snprintf(err, LAUNCH_ERR_MAX, "create %.200s: %s", path, strerror(errno));
                        return r;
                }
        }
        snprintf(path, sizeof path, "%s/template", dir);
        unlink(path);
        if (symlink(template_dir, path) < 0) {
                int r = -errno;
                snprintf(err, LAUNCH_ERR_MAX, "create %.200s: %s", path, strerror(errno));
                return r;
        }
        return 0;
}

int sandbox_launch(const struct launch_spec *s, pid_t *ret_pid, char err[LAUNCH_ERR_MAX])
{
        _cleanup_free_ struct child_plan *plan = calloc(1, sizeof *plan);
        if (!plan)
                return -ENOMEM;
        int r = make_dirs(s->sandbox_dir, s->template_dir, err);
        if (r < 0 || (r = build_plan(s, plan, err)) < 0)
                return r;
        _cleanup_close_ int listen_fd = -1, files_fd = -1, init_fd = -1, parent_end = -1, child_end = -1,
                            env_fd = -1, userns_fd = -1;
        if ((r = agent_socket_bind(s->sandbox_dir, "agent.sock", 0, &listen_fd, err)) < 0 ||
            (r = agent_socket_bind(s->sandbox_dir, "files.sock", s->files_group, &files_fd, err)) < 0)
                return r;
        init_fd = open(s->init_path, O_PATH | O_CLOEXEC);
        if (init_fd < 0) {
                r = -errno;
                snprintf(err, LAUNCH_ERR_MAX, "open %.200s: %s", s->init_path, strerror(errno));
                return r;
        }
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        parent_end = sv[0];
        child_end = sv[1];
        plan->hostname = s->id;
        plan->disk_bytes = s->disk_bytes;
        plan->sync_fd = child_end;
        plan->listen_fd = listen_fd;
        plan->files_fd = files_fd;
        plan->init_fd = init_fd;
        pthread_once(&filter_once, filter_build);
        if (filter_fd < 0) {
                snprintf(err, LAUNCH_ERR_MAX, "%s", filter_error);
                return -EINVAL;
        }
        plan->filter_fd = filter_fd;
        env_fd = env_memfd(s->env, s->files_token);
        if (env_fd < 0) {
                snprintf(err, LAUNCH_ERR_MAX, "pass the sandbox's environment: %s", strerror(-env_fd));
                return env_fd;
        }
        plan->env_fd = env_fd;
        userns_fd = userns_make(s->uid_base, err);
        if (userns_fd < 0)
                return userns_fd;
        plan->userns_fd = userns_fd;
        char cgerr[CGROUP_ERR_MAX];
        plan->njoin = cgroup_join_files(s->cgroup, plan->join, (int)ELEMENTSOF(plan->join), cgerr);
        if (plan->njoin < 0) {
                snprintf(err, LAUNCH_ERR_MAX, "%s", cgerr);
                return plan->njoin;
        }

        plan->netns_fd = s->netns_await ? s->netns_await(s->netns_arg, err) : s->netns_fd;
        if (plan->netns_fd < 0 && s->netns_await)
                return plan->netns_fd;

        const size_t stack_size = 256 * 1024;
        void *stack =
            mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return -errno;
        struct child_args args = {.plan = plan, .base = s->uid_base};
        /* CLONE_PARENT: the sandbox is the master's child, not this worker's, so it outlives
         * any worker and its exit is reaped by the master. */
        /* CLONE_PIDFD: the master reaps the child (CLONE_PARENT), so its pid may be reused by
         * the time a failure here kills it; the pidfd always names this child. */
        int pidfd = -1;
        int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD | CLONE_VM |
                    CLONE_VFORK | SIGCHLD | (plan->netns_fd >= 0 ? 0 : CLONE_NEWNET);
        pid_t pid = clone(child_main, (char *)stack + stack_size, flags | (s->own_child ? 0 : CLONE_PARENT),
                          &args, &pidfd);
        int clone_errno = errno;
        munmap(stack, stack_size); /* the child has exec'd or exited: CLONE_VFORK */
        if (pid < 0) {
                snprintf(err, LAUNCH_ERR_MAX, "clone sandbox: %s", strerror(clone_errno));
                return -clone_errno;
        }
        closep(&child_end);
        child_end = -1;
        r = supervise_child(parent_end, err);
        if (r < 0) /* PID 1 of its namespace: everything in it dies with it */
                syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        close(pidfd);
        if (r < 0)
                return r;
        *ret_pid = pid;
        return 0;
}

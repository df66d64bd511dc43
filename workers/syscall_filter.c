/* The sandbox's system-call filter.
 *
 * Everything inside a sandbox is hostile, so the filter is an allowlist: a call that is not
 * listed fails with EPERM. The list is derived from Docker's default seccomp profile (moby,
 * profiles/seccomp/default.json) as it applies to an x86_64 process with no capabilities,
 * which is what runs in a sandbox. On top of Docker:
 *   - only the x86_64 ABI: i386 calls (int $0x80) and x32 calls (numbers with bit 30 set)
 *     kill the whole process;
 *   - clone may not create namespaces, and clone3, whose flags live in memory where a filter
 *     cannot read them, says ENOSYS so that libc falls back to clone;
 *   - socket and socketpair reach the kernel for AF_UNIX, AF_INET, AF_INET6 and AF_NETLINK
 *     only; other families get EAFNOSUPPORT, as from a kernel without them;
 *   - name_to_handle_at, which Docker allows, is refused along with open_by_handle_at.
 * The calls we mean to refuse are also listed by name (refused_syscalls); building fails if
 * one of them is on the allowlist, so no edit can let one slip in by accident.
 *
 * The filter is built once with libseccomp and exported as raw BPF into memory; loading it
 * is one prctl, so children do it between fork and execve without allocating. */
#include <linux/netlink.h>
#include <seccomp.h>

#include "syscall_filter.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

#if !defined(__x86_64__) || defined(__ILP32__)
#error "the system-call lists in seccomp.c are for the x86_64 ABI only"
#endif

/* ---- Policy --------------------------------------------------------------------------- */

/* Allowed whatever their arguments. This is Docker's unconditional "allow" list without
 * the names that do not exist on x86_64 (the *32, *64 and *_time64 variants, socketcall,
 * ipc, recv, send, waitpid, ...), plus Docker's amd64-only rule (arch_prctl, modify_ldt)
 * and its kernel >= 4.8 rule (ptrace, process_vm_readv/writev: since 4.8 the filter is
 * checked again after a tracer changes a call, and the sandbox's pid namespace bounds whom
 * they reach). Left out of Docker's list on purpose: name_to_handle_at (see the top),
 * epoll_ctl_old and epoll_wait_old (no kernel implements them) and socketpair (allowed
 * below, for some families only). */
static const char *const allowed_syscalls[] = {
    /* processes, threads and their limits */
    "arch_prctl", "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "vfork",
    "get_robust_list", "set_robust_list", "get_thread_area", "set_thread_area", "set_tid_address", "getpid",
    "getppid", "gettid", "getpgid", "getpgrp", "getsid", "setpgid", "setsid", "kill", "tgkill", "tkill",
    "pidfd_open", "pidfd_send_signal", "wait4", "waitid", "prctl", "getrlimit", "setrlimit", "prlimit64",
    "getrusage", "getpriority", "setpriority", "times", "modify_ldt", "membarrier", "rseq", "restart_syscall",
    "seccomp", "map_shadow_stack", "uretprobe", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self",
    /* tracing within the sandbox */
    "ptrace", "process_vm_readv", "process_vm_writev",
    /* credentials; the kernel checks capabilities for what needs them */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid", "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups",
    /* scheduling */
    "sched_getaffinity", "sched_setaffinity", "sched_getattr", "sched_setattr", "sched_getparam",
    "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_rr_get_interval", "sched_yield", "getcpu", "ioprio_get", "ioprio_set",
    /* signals */
    "alarm", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sigaltstack", "signalfd", "signalfd4",
    /* clocks and timers; adjtimex and clock_adjtime change a clock only with CAP_SYS_TIME */
    "clock_getres", "clock_gettime", "clock_nanosleep", "gettimeofday", "nanosleep", "time", "adjtimex",
    "clock_adjtime", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime",
    /* memory */
    "brk", "mmap", "mprotect", "munmap", "mremap", "madvise", "mincore", "msync", "mlock", "mlock2",
    "mlockall", "munlock", "munlockall", "remap_file_pages", "memfd_create", "memfd_secret", "pkey_alloc",
    "pkey_free", "pkey_mprotect", "process_mrelease", "mseal",
    /* reading, writing and the descriptors themselves */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
    "lseek", "close", "close_range", "dup", "dup2", "dup3", "fcntl", "ioctl", "flock", "fsync", "fdatasync",
    "sync", "syncfs", "sync_file_range", "fadvise64", "readahead", "fallocate", "ftruncate", "truncate",
    "sendfile", "splice", "tee", "vmsplice", "copy_file_range", "cachestat", "pipe", "pipe2", "eventfd",
    "eventfd2",
    /* waiting */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
    "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
    /* paths, files and directories */
    "open", "openat", "openat2", "creat", "access", "faccessat", "faccessat2", "stat", "lstat", "fstat",
    "newfstatat", "statx", "statfs", "fstatfs", "statmount", "listmount", "getcwd", "chdir", "fchdir",
    "getdents", "getdents64", "mkdir", "mkdirat", "rmdir", "rename", "renameat", "renameat2", "link",
    "linkat", "symlink", "symlinkat", "unlink", "unlinkat", "readlink", "readlinkat", "mknod", "mknodat",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "umask", "utime",
    "utimes", "utimensat", "futimesat",
    /* extended attributes */
    "getxattr", "lgetxattr", "fgetxattr", "getxattrat", "setxattr", "lsetxattr", "fsetxattr", "setxattrat",
    "listxattr", "llistxattr", "flistxattr", "listxattrat", "removexattr", "lremovexattr", "fremovexattr",
    "removexattrat",
    /* sockets once created (socket and socketpair themselves are below) */
    "accept", "accept4", "bind", "connect", "listen", "getsockname", "getpeername", "getsockopt",
    "setsockopt", "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg", "shutdown",
    /* System V and POSIX IPC, private to the sandbox's ipc namespace */
    "msgget", "msgctl", "msgsnd", "msgrcv", "semget", "semctl", "semop", "semtimedop", "shmget", "shmctl",
    "shmat", "shmdt", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    /* Linux AIO */
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    /* about the system */
    "uname", "sysinfo", "getrandom"};

/* Refused, and named so that building fails if one of them is ever allowed (they fail with
 * EPERM through the default action; libseccomp takes no rule that repeats the default).
 * Mostly what Docker grants only with a capability the sandbox does not have:
 * CAP_SYS_ADMIN (mounts, namespaces, bpf, perf, fanotify_init, quotas, syslog),
 * CAP_SYS_CHROOT, CAP_SYS_MODULE, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_SYS_NICE (NUMA policy),
 * CAP_SYS_RAWIO, CAP_SYS_PACCT, CAP_SYS_TTY_CONFIG, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE
 * (kcmp, pidfd_getfd, process_madvise); and what Docker does not allow at all: keys,
 * userfaultfd, io_uring, swap, kexec, name_to_handle_at. */
static const char *const refused_syscalls[] = {
    /* mounts and the new mount API */
    "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
    "fspick", "mount_setattr", "quotactl", "quotactl_fd",
    /* namespaces (clone and clone3 are handled below) */
    "unshare", "setns",
    /* the kernel keyring */
    "keyctl", "add_key", "request_key",
    /* large kernel attack surface */
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "fanotify_init", "lookup_dcookie",
    /* the machine itself */
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "syslog", "vhangup", "iopl", "ioperm", "sethostname", "setdomainname", "settimeofday",
    "clock_settime",
    /* NUMA placement */
    "mbind", "set_mempolicy", "get_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages",
    /* reaching other processes or files by handle */
    "open_by_handle_at", "name_to_handle_at", "kcmp", "pidfd_getfd", "process_madvise"};

/* System calls newer than the libseccomp we build against (Debian 12's 2.5.4 knows x86_64
 * up to number 456), with their x86_64 numbers from the kernel's syscall_64.tbl. Where the
 * library knows a name too, the two numbers must agree. */
static const struct {
        const char *name;
        int nr;
} newer_syscalls[] = {
    {"uretprobe", 335},  {"statmount", 457},  {"listmount", 458},   {"mseal", 462},
    {"setxattrat", 463}, {"getxattrat", 464}, {"listxattrat", 465}, {"removexattrat", 466},
};

/* clone may create no namespace. CLONE_NEWTIME shares its bit with the exit signal in
 * clone's flags, where no valid signal sets it; it is refused all the same. */
#define CLONE_NAMESPACE_FLAGS                                                                                \
        (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS |           \
         CLONE_NEWCGROUP | CLONE_NEWTIME)

static const int allowed_socket_families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
static const int allowed_netlink[] = {NETLINK_ROUTE, NETLINK_SOCK_DIAG};

/* Docker's allowed personalities: plain Linux, 32-bit uname, 2.6-style uname, both, and
 * 0xffffffff, which only asks for the current one. */
static const unsigned long allowed_personalities[] = {PER_LINUX, PER_LINUX32, UNAME26, UNAME26 | PER_LINUX32,
                                                      0xffffffffUL};

/* ---- Building ------------------------------------------------------------------------- */

/* libseccomp reports failure as a negative errno; this turns one into our error text,
 * "what failed: reason", and passes the code on. */
static int fail(char err[SECCOMP_ERR_MAX], int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char err[SECCOMP_ERR_MAX], int r, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(err, SECCOMP_ERR_MAX, fmt, ap);
        va_end(ap);
        if (n >= 0 && n < SECCOMP_ERR_MAX) {
                char buf[128];
                snprintf(err + n, SECCOMP_ERR_MAX - n, ": %s", strerror_r(-r, buf, sizeof buf));
        }
        return r;
}

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
        if (*ctx)
                seccomp_release(*ctx);
}

/* The x86_64 number of a system call, from libseccomp or from newer_syscalls. */
static int resolve(const char *name, int *ret_nr, char err[SECCOMP_ERR_MAX])
{
        int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name);
        for (size_t i = 0; i < ELEMENTSOF(newer_syscalls); i++) {
                if (strcmp(newer_syscalls[i].name, name) != 0)
                        continue;
                if (nr != __NR_SCMP_ERROR && nr != newer_syscalls[i].nr)
                        return fail(err, -EINVAL, "resolve system call '%s': libseccomp says %d, we say %d",
                                    name, nr, newer_syscalls[i].nr);
                nr = newer_syscalls[i].nr;
        }
        if (nr == __NR_SCMP_ERROR)
                return fail(err, -ENOENT, "resolve system call '%s'", name);
        if (nr < 0) /* a pseudo-number: the call exists on other architectures only */
                return fail(err, -EINVAL, "resolve system call '%s': not an x86_64 call", name);
        *ret_nr = nr;
        return 0;
}

/* A comparison of the first argument, all 64 bits of it. (libseccomp's SCMP_A0 leaves
 * datum_b out when it is unused, which clang warns about.) */
static struct scmp_arg_cmp first_arg(enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
        return (struct scmp_arg_cmp){.arg = 0, .op = op, .datum_a = a, .datum_b = b};
}

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n_args,
                    const struct scmp_arg_cmp *args, char err[SECCOMP_ERR_MAX])
{
        int nr;
        int r = resolve(name, &nr, err);
        if (r < 0)
                return r;
        /* _exact: add the rule as written or fail, never a rewritten variant of it. */
        r = seccomp_rule_add_exact_array(ctx, action, nr, n_args, args);
        if (r < 0)
                return fail(err, r, "add seccomp rule for '%s'", name);
        return 0;
}

static int add_allowed_syscalls(scmp_filter_ctx ctx, char err[SECCOMP_ERR_MAX])
{
        int refused[ELEMENTSOF(refused_syscalls)];
        for (size_t i = 0; i < ELEMENTSOF(refused_syscalls); i++) {
                int r = resolve(refused_syscalls[i], &refused[i], err);
                if (r < 0)
                        return r;
        }
        for (size_t i = 0; i < ELEMENTSOF(allowed_syscalls); i++) {
                int nr;
                int r = resolve(allowed_syscalls[i], &nr, err);
                if (r < 0)
                        return r;
                /* Compared by number, so that an alias cannot slip a refused call in. */
                for (size_t j = 0; j < ELEMENTSOF(refused); j++)
                        if (refused[j] == nr)
                                return fail(err, -EINVAL, "allow system call '%s': '%s' is refused",
                                            allowed_syscalls[i], refused_syscalls[j]);
                r = add_rule(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0, NULL, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int add_clone_rules(scmp_filter_ctx ctx, char err[SECCOMP_ERR_MAX])
{
        /* Masked equality, as in Docker: allowed when no namespace bit is set. clone reads
         * its flags from the lower 32 bits of the register, which the mask covers. */
        struct scmp_arg_cmp no_namespaces = first_arg(SCMP_CMP_MASKED_EQ, CLONE_NAMESPACE_FLAGS, 0);
        int r = add_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_namespaces, err);
        if (r < 0)
                return r;
        /* clone3 takes its flags in a struct in memory, which a filter cannot read. ENOSYS
         * makes glibc (2.34 and later) fall back to clone, where the flags are checked. */
        return add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err);
}

static bool socket_family_allowed(int family)
{
        for (size_t i = 0; i < ELEMENTSOF(allowed_socket_families); i++)
                if (allowed_socket_families[i] == family)
                        return true;
        return false;
}

/* For socket or socketpair: the allowed families pass, every other value of the first
 * argument gets EAFNOSUPPORT. A rule may compare an argument once, and no rule may repeat
 * the default action, so "every other value" is spelled out: each value below the largest
 * allowed family, then everything above it. Comparisons take all 64 bits: a family with
 * junk in the upper half, which the kernel would cut down to an int, is no allowed family. */
static int add_socket_rules(scmp_filter_ctx ctx, const char *name, char err[SECCOMP_ERR_MAX])
{
        int largest = 0;
        for (size_t i = 0; i < ELEMENTSOF(allowed_socket_families); i++) {
                int family = allowed_socket_families[i];
                if (family > largest)
                        largest = family;
                struct scmp_arg_cmp is_family = first_arg(SCMP_CMP_EQ, (scmp_datum_t)family, 0);
                if (family == AF_NETLINK) {
                        /* Netlink only for routing and socket diagnostics (ip, ss, getifaddrs):
                         * not the host's uevents, audit or the rest. Others get the default
                         * EPERM; socketpair has no netlink at all. */
                        for (size_t p = 0; strcmp(name, "socket") == 0 && p < ELEMENTSOF(allowed_netlink);
                             p++) {
                                struct scmp_arg_cmp protocol = {.arg = 2,
                                                                .op = SCMP_CMP_EQ,
                                                                .datum_a = (scmp_datum_t)allowed_netlink[p],
                                                                .datum_b = 0};
                                struct scmp_arg_cmp cmp[2] = {is_family, protocol};
                                int r = add_rule(ctx, SCMP_ACT_ALLOW, name, 2, cmp, err);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                int r = add_rule(ctx, SCMP_ACT_ALLOW, name, 1, &is_family, err);
                if (r < 0)
                        return r;
        }
        for (int family = 0; family < largest; family++) {
                if (socket_family_allowed(family))
                        continue;
                struct scmp_arg_cmp is_family = first_arg(SCMP_CMP_EQ, (scmp_datum_t)family, 0);
                int r = add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), name, 1, &is_family, err);
                if (r < 0)
                        return r;
        }
        struct scmp_arg_cmp above = first_arg(SCMP_CMP_GT, (scmp_datum_t)largest, 0);
        return add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), name, 1, &above, err);
}

static int add_personality_rules(scmp_filter_ctx ctx, char err[SECCOMP_ERR_MAX])
{
        for (size_t i = 0; i < ELEMENTSOF(allowed_personalities); i++) {
                struct scmp_arg_cmp is_value = first_arg(SCMP_CMP_EQ, allowed_personalities[i], 0);
                int r = add_rule(ctx, SCMP_ACT_ALLOW, "personality", 1, &is_value, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* libseccomp 2.5 exports only to a file descriptor: write to a memfd, read it back. */
static int export_program(scmp_filter_ctx ctx, struct seccomp_program *ret, char err[SECCOMP_ERR_MAX])
{
        _cleanup_close_ int fd = memfd_create("warren-seccomp", MFD_CLOEXEC);
        if (fd < 0)
                return fail(err, -errno, "create memfd for the seccomp program");
        int r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return fail(err, r, "export seccomp program");
        struct stat st;
        if (fstat(fd, &st) < 0)
                return fail(err, -errno, "stat exported seccomp program");
        size_t size = (size_t)st.st_size;
        size_t len = size / sizeof(struct sock_filter);
        if (size == 0 || size % sizeof(struct sock_filter) != 0 || len > BPF_MAXINSNS)
                return fail(err, -E2BIG, "export seccomp program: %zu bytes is not 1 to %d instructions",
                            size, BPF_MAXINSNS);
        _cleanup_free_ struct sock_filter *filter = malloc(size);
        if (!filter)
                return fail(err, -ENOMEM, "allocate seccomp program");
        for (size_t done = 0; done < size;) {
                ssize_t n = pread(fd, (char *)filter + done, size - done, (off_t)done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return fail(err, -errno, "read exported seccomp program");
                if (n == 0)
                        return fail(err, -EIO, "read exported seccomp program: short by %zu bytes",
                                    size - done);
                done += (size_t)n;
        }
        /* The instructions now belong to the caller, until seccomp_program_free. */
        *ret = (struct seccomp_program){.filter = TAKE_PTR(filter), .len = (unsigned short)len};
        return 0;
}

int seccomp_program_build(struct seccomp_program *ret, char err[SECCOMP_ERR_MAX])
{
        _cleanup_(seccomp_releasep) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        if (!ctx)
                return fail(err, -ENOMEM, "create seccomp filter");
        /* The context holds the native architecture, x86_64, and nothing else. A call made
         * through another ABI (i386's int $0x80, or x32) kills the whole process. */
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                return fail(err, r, "set seccomp action for foreign architectures");
        /* A binary search over the system-call number instead of a chain of ~300 tests. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
        if (r < 0)
                return fail(err, r, "set seccomp optimization level");

        r = add_allowed_syscalls(ctx, err);
        if (r < 0)
                return r;
        r = add_clone_rules(ctx, err);
        if (r < 0)
                return r;
        r = add_socket_rules(ctx, "socket", err);
        if (r < 0)
                return r;
        r = add_socket_rules(ctx, "socketpair", err);
        if (r < 0)
                return r;
        r = add_personality_rules(ctx, err);
        if (r < 0)
                return r;
        return export_program(ctx, ret, err);
}

void seccomp_program_free(struct seccomp_program *p)
{
        if (!p)
                return;
        free(p->filter);
        *p = (struct seccomp_program){.filter = NULL, .len = 0};
}

/* ---- Loading -------------------------------------------------------------------------- */

/* Runs between fork and execve: nothing here may allocate, lock or log. */
int seccomp_program_load(const struct seccomp_program *p)
{
        if (!p || !p->filter || p->len == 0) {
                errno = EINVAL;
                return -EINVAL;
        }
        struct sock_fprog prog = {.len = p->len, .filter = p->filter};
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
                return -errno;
        return 0;
}

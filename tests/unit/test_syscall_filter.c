/* The sandbox's seccomp filter, probed the way bubblewrap's try-syscall does.
 *
 * A refused call is made with arguments that make it fail in a distinctive way once it
 * reaches the kernel (EFAULT, EBADF, EINVAL, ...). Each probe runs twice, each time in a
 * forked child: without the filter, to show that the probe merely fails that way, and
 * under it, where EPERM (or ENOSYS for clone3, EAFNOSUPPORT for socket families) can only
 * have come from the filter. A filtered child sets PR_SET_NO_NEW_PRIVS and loads the
 * program, as a sandbox's processes do, and reports what it saw through a pipe.
 *
 * Some control runs need root: as another user the kernel itself says EPERM before it
 * looks at the arguments, and those tests fail rather than prove nothing. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timex.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "syscall_filter.h"

#ifndef __X32_SYSCALL_BIT
#define __X32_SYSCALL_BIT 0x40000000
#endif

/* A user address that faults: copies from it fail with EFAULT. */
#define FAULTING ((void *)-1L)
/* A socket type no family accepts: once a call reaches the kernel it fails with EINVAL,
 * which tells a family that got through apart from one the filter stopped. */
#define BAD_SOCKET_TYPE 15

static struct seccomp_program program;
static int program_build_result;
static char program_build_err[SECCOMP_ERR_MAX];

/* ---- Running probes in children ------------------------------------------------------- */

enum {
        NO_REPORT = -1,    /* the child died or exec'd before reporting */
        SETUP_FAILED = -2, /* the child could not load the filter */
};

/* A probe returns 0 on success or the errno it saw, unless it says otherwise. */
typedef int probe_fn(void);

struct outcome {
        int result; /* what the probe returned, or NO_REPORT / SETUP_FAILED */
        int signal; /* the signal that killed the child, or 0 */
        int code;   /* the child's exit code, or -1 */
};

static bool in_filtered_child;

static int result_of(long r)
{
        return r < 0 ? errno : 0;
}

static struct outcome run_probe(bool filtered, probe_fn *probe)
{
        struct outcome o = {.result = NO_REPORT, .signal = 0, .code = -1};
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
                return o;
        pid_t pid = fork();
        if (pid < 0) {
                close(p[0]);
                close(p[1]);
                return o;
        }
        if (pid == 0) {
                close(p[0]);
                /* A child killed by the filter must not leave a core file behind. */
                prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
                int result = SETUP_FAILED;
                if (!filtered ||
                    (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && seccomp_program_load(&program) == 0)) {
                        in_filtered_child = filtered;
                        result = probe();
                }
                if (write(p[1], &result, sizeof result) < 0)
                        _exit(2);
                _exit(0);
        }
        close(p[1]);
        int result;
        ssize_t n;
        do
                n = read(p[0], &result, sizeof result);
        while (n < 0 && errno == EINTR);
        close(p[0]);
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return o;
        if (n == (ssize_t)sizeof result)
                o.result = result;
        if (WIFSIGNALED(status))
                o.signal = WTERMSIG(status);
        if (WIFEXITED(status))
                o.code = WEXITSTATUS(status);
        return o;
}

static const char *describe(int result, char *buf, size_t size)
{
        if (result == NO_REPORT)
                return "no report";
        if (result == SETUP_FAILED)
                return "filter not loaded";
        if (result == 0)
                return "success";
        const char *name = strerrorname_np(result);
        if (name)
                return name;
        snprintf(buf, size, "%d", result);
        return buf;
}

/* The probe merely fails with bare_errno (or ENOSYS, from a kernel built without the call)
 * when nothing filters it, and fails with filtered_errno under the filter. */
static void check_stopped_by_filter(const char *name, probe_fn *probe, int bare_errno, int filtered_errno)
{
        struct outcome bare = run_probe(false, probe);
        struct outcome filtered = run_probe(true, probe);
        bool bare_ok = bare.signal == 0 && (bare.result == bare_errno || bare.result == ENOSYS) &&
                       bare.result != filtered_errno;
        bool filtered_ok = filtered.signal == 0 && filtered.result == filtered_errno;
        if (!bare_ok || !filtered_ok) {
                char b1[16], b2[16], b3[16], b4[16];
                fprintf(stderr,
                        "  %s: without the filter %s (want %s), under it %s (want %s), signals %d/%d\n", name,
                        describe(bare.result, b1, sizeof b1), describe(bare_errno, b2, sizeof b2),
                        describe(filtered.result, b3, sizeof b3), describe(filtered_errno, b4, sizeof b4),
                        bare.signal, filtered.signal);
        }
        CHECK(bare_ok);
        CHECK(filtered_ok);
}

static void check_refused(const char *name, probe_fn *probe, int bare_errno)
{
        check_stopped_by_filter(name, probe, bare_errno, EPERM);
}

/* The probe gives the same, expected result with and without the filter. */
static void check_allowed(const char *name, probe_fn *probe, int expected)
{
        struct outcome bare = run_probe(false, probe);
        struct outcome filtered = run_probe(true, probe);
        if (bare.result != expected || filtered.result != expected || filtered.signal != 0) {
                char b1[16], b2[16], b3[16];
                fprintf(stderr, "  %s: without the filter %s, under it %s (signal %d), want %s\n", name,
                        describe(bare.result, b1, sizeof b1), describe(filtered.result, b2, sizeof b2),
                        filtered.signal, describe(expected, b3, sizeof b3));
        }
        CHECK(bare.signal == 0 && bare.result == expected);
        CHECK(filtered.signal == 0 && filtered.result == expected);
}

/* ---- The program itself ---------------------------------------------------------------- */

static void seccomp__program_builds_within_the_kernel_instruction_limit(void)
{
        if (program_build_result < 0)
                fprintf(stderr, "  build: %s\n", program_build_err);
        CHECK(program_build_result == 0);
        CHECK(program.filter != NULL);
        CHECK(program.len > 0 && program.len <= BPF_MAXINSNS);
        /* A seccomp program starts by checking the architecture. */
        CHECK(program.filter && program.filter[0].code == (BPF_LD | BPF_W | BPF_ABS) &&
              program.filter[0].k == offsetof(struct seccomp_data, arch));
}

static void seccomp__two_builds_give_the_same_program(void)
{
        struct seccomp_program again = {0};
        char err[SECCOMP_ERR_MAX] = "";
        CHECK(seccomp_program_build(&again, err) == 0);
        CHECK(again.len == program.len);
        CHECK(again.filter && program.filter && again.len == program.len &&
              memcmp(again.filter, program.filter, program.len * sizeof(struct sock_filter)) == 0);
        seccomp_program_free(&again);
}

static void seccomp__free_accepts_null_and_leaves_an_empty_program(void)
{
        struct seccomp_program p = {0};
        char err[SECCOMP_ERR_MAX] = "";
        CHECK(seccomp_program_build(&p, err) == 0);
        seccomp_program_free(&p);
        CHECK(p.filter == NULL && p.len == 0);
        seccomp_program_free(&p); /* twice is harmless */
        seccomp_program_free(NULL);
        CHECK(p.filter == NULL && p.len == 0);
}

static int probe_load_empty_program(void)
{
        struct seccomp_program empty = {0};
        int r = seccomp_program_load(&empty);
        int r_null = seccomp_program_load(NULL);
        /* Nothing was loaded: a refused call still reaches the kernel. */
        return r == -EINVAL && r_null == -EINVAL && errno == EINVAL && prctl(PR_GET_SECCOMP) == 0 ? 0 : 1;
}

static void seccomp__load_refuses_an_empty_program_with_einval(void)
{
        struct outcome o = run_probe(false, probe_load_empty_program);
        CHECK(o.signal == 0 && o.result == 0);
}

/* Clears every effective capability, as the launcher's children have done by the time
 * they load the filter. */
static int drop_effective_capabilities(void)
{
        struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
        if (syscall(SYS_capget, &header, data) < 0)
                return -errno;
        for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
                data[i].effective = 0;
        if (syscall(SYS_capset, &header, data) < 0)
                return -errno;
        return 0;
}

static int probe_load_without_no_new_privs(void)
{
        if (drop_effective_capabilities() < 0)
                return SETUP_FAILED;
        int r = seccomp_program_load(&program);
        /* Still alive and still unfiltered. */
        if (prctl(PR_GET_SECCOMP) != 0)
                return 1;
        return -r;
}

static int probe_load_with_no_new_privs(void)
{
        if (drop_effective_capabilities() < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return SETUP_FAILED;
        int r = seccomp_program_load(&program);
        if (r == 0 && prctl(PR_GET_SECCOMP) != 2)
                return 1;
        return -r;
}

static void seccomp__load_without_no_new_privs_or_cap_sys_admin_is_eacces_not_a_crash(void)
{
        struct outcome o = run_probe(false, probe_load_without_no_new_privs);
        CHECK(o.signal == 0 && o.result == EACCES);
}

static void seccomp__load_after_dropping_capabilities_works_with_no_new_privs(void)
{
        struct outcome o = run_probe(false, probe_load_with_no_new_privs);
        CHECK(o.signal == 0 && o.result == 0);
}

/* ---- Ordinary life under the filter --------------------------------------------------- */

#define STEP(n, ok)                                                                                          \
        do {                                                                                                 \
                if (!(ok))                                                                                   \
                        return 1000 * (n) + errno;                                                           \
        } while (0)

/* Returns 0, or step * 1000 + errno for the first step that failed. */
static int probe_ordinary_calls(void)
{
        char buf[64];
        int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
        STEP(1, fd >= 0);
        STEP(2, read(fd, buf, 4) == 4 && memcmp(buf, "\177ELF", 4) == 0);
        STEP(3, close(fd) == 0);

        char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        STEP(4, page != MAP_FAILED);
        page[0] = 'x';
        STEP(5, mprotect(page, 4096, PROT_READ) == 0 && munmap(page, 4096) == 0);

        int p[2];
        STEP(6, pipe2(p, O_CLOEXEC) == 0);
        STEP(7, write(p[1], "hi", 2) == 2);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        STEP(8, ep >= 0);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = p[0]};
        STEP(9, epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) == 0);
        STEP(10, epoll_wait(ep, &ev, 1, 1000) == 1 && ev.data.fd == p[0]);
        STEP(11, read(p[0], buf, sizeof buf) == 2 && memcmp(buf, "hi", 2) == 0);
        close(ep);
        close(p[0]);
        close(p[1]);

        STEP(12, getpid() > 0 && getppid() > 0);
        struct timespec ts;
        STEP(13, clock_gettime(CLOCK_MONOTONIC, &ts) == 0 && clock_gettime(CLOCK_REALTIME, &ts) == 0);
        STEP(14, nanosleep(&(struct timespec){.tv_nsec = 1000}, NULL) == 0);
        int word = 0;
        STEP(15, syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == 0);
        return 0;
}

static void seccomp__ordinary_file_memory_pipe_epoll_clock_and_futex_calls_work(void)
{
        struct outcome o = run_probe(true, probe_ordinary_calls);
        if (o.result != 0)
                fprintf(stderr, "  step %d failed: %s\n", o.result / 1000, strerror(o.result % 1000));
        CHECK(o.signal == 0 && o.result == 0);
}

static int probe_fork_and_wait(void)
{
        pid_t pid = fork();
        if (pid < 0)
                return errno;
        if (pid == 0)
                _exit(7);
        int status;
        if (waitpid(pid, &status, 0) < 0)
                return errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 1000;
}

static void seccomp__fork_and_wait_work(void)
{
        struct outcome o = run_probe(true, probe_fork_and_wait);
        CHECK(o.signal == 0 && o.result == 0);
}

static int probe_raw_clone(void)
{
        long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0UL);
        if (pid < 0)
                return errno;
        if (pid == 0)
                _exit(7);
        int status;
        if (waitpid((pid_t)pid, &status, 0) < 0)
                return errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 7 ? 0 : 1000;
}

static void seccomp__raw_clone_without_namespace_flags_works(void)
{
        struct outcome o = run_probe(true, probe_raw_clone);
        CHECK(o.signal == 0 && o.result == 0);
}

static void *thread_main(void *arg)
{
        *(int *)arg = 42;
        return NULL;
}

static int probe_thread(void)
{
        pthread_t t;
        int value = 0;
        int r = pthread_create(&t, NULL, thread_main, &value);
        if (r != 0)
                return r;
        r = pthread_join(t, NULL);
        if (r != 0)
                return r;
        return value == 42 ? 0 : 1000;
}

static void seccomp__threads_start_because_clone3_enosys_makes_glibc_fall_back_to_clone(void)
{
        struct outcome o = run_probe(true, probe_thread);
        CHECK(o.signal == 0 && o.result == 0);
}

static int probe_execve_true(void)
{
        char *const argv[] = {"true", NULL};
        char *const envp[] = {NULL};
        execve("/bin/true", argv, envp);
        return errno;
}

static void seccomp__execve_of_bin_true_exits_zero(void)
{
        struct outcome o = run_probe(true, probe_execve_true);
        /* No report: the pipe closed on exec, and /bin/true's own exit status is what we see. */
        CHECK(o.result == NO_REPORT);
        CHECK(o.signal == 0 && o.code == 0);
}

static int probe_socket_inet_and_socketpair_unix(void)
{
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return errno;
        close(s);
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return errno;
        char c = 0;
        bool ok = write(sv[0], "x", 1) == 1 && read(sv[1], &c, 1) == 1 && c == 'x';
        close(sv[0]);
        close(sv[1]);
        return ok ? 0 : 1000;
}

static void seccomp__socket_af_inet_and_socketpair_af_unix_work(void)
{
        struct outcome o = run_probe(true, probe_socket_inet_and_socketpair_unix);
        CHECK(o.signal == 0 && o.result == 0);
}

static int probe_ptrace_missing_pid(void)
{
        return result_of(syscall(SYS_ptrace, PTRACE_GETREGS, 0x7ffffffe, NULL, NULL));
}

static void seccomp__ptrace_reaches_the_kernel(void)
{
        check_allowed("ptrace", probe_ptrace_missing_pid, ESRCH);
}

static int probe_adjtimex_read(void)
{
        struct timex tx = {.modes = 0};
        return result_of(adjtimex(&tx));
}

static void seccomp__adjtimex_read_only_query_works(void)
{
        check_allowed("adjtimex", probe_adjtimex_read, 0);
}

/* ---- clone, clone3 and namespaces ----------------------------------------------------- */

static unsigned long clone_namespace_flag;

/* CLONE_SIGHAND without CLONE_VM is invalid: a clone that reaches the kernel says EINVAL
 * before it creates anything. */
static int probe_clone_with_namespace_flag(void)
{
        return result_of(syscall(SYS_clone, clone_namespace_flag | CLONE_SIGHAND, NULL, NULL, NULL, 0UL));
}

static void seccomp__clone_with_clone_newuser_is_refused_not_merely_failing(void)
{
        clone_namespace_flag = CLONE_NEWUSER;
        check_refused("clone(CLONE_NEWUSER)", probe_clone_with_namespace_flag, EINVAL);
}

static void seccomp__clone_with_any_namespace_flag_is_refused_not_merely_failing(void)
{
        static const struct {
                const char *name;
                unsigned long flag;
        } flags[] = {
            {"CLONE_NEWNS", CLONE_NEWNS},     {"CLONE_NEWPID", CLONE_NEWPID},
            {"CLONE_NEWNET", CLONE_NEWNET},   {"CLONE_NEWIPC", CLONE_NEWIPC},
            {"CLONE_NEWUTS", CLONE_NEWUTS},   {"CLONE_NEWCGROUP", CLONE_NEWCGROUP},
            {"CLONE_NEWTIME", CLONE_NEWTIME},
        };
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
                clone_namespace_flag = flags[i].flag;
                check_refused(flags[i].name, probe_clone_with_namespace_flag, EINVAL);
        }
}

static int probe_clone3(void)
{
        /* A size below the first version of struct clone_args: EINVAL from the kernel. */
        return result_of(syscall(SYS_clone3, NULL, 0UL));
}

static void seccomp__clone3_is_enosys_from_the_filter_not_the_kernel(void)
{
        check_stopped_by_filter("clone3", probe_clone3, EINVAL, ENOSYS);
}

static int probe_unshare(void)
{
        /* Bit 0 is no unshare flag: EINVAL before any permission check. */
        return result_of(syscall(SYS_unshare, CLONE_NEWUSER | 0x1UL));
}

static void seccomp__unshare_clone_newuser_is_refused_not_merely_failing(void)
{
        check_refused("unshare", probe_unshare, EINVAL);
}

static int probe_setns(void)
{
        return result_of(syscall(SYS_setns, -1, 0));
}

static void seccomp__setns_is_refused_not_merely_failing(void)
{
        check_refused("setns", probe_setns, EBADF);
}

/* ---- Mounts --------------------------------------------------------------------------- */

static int probe_mount(void)
{
        return result_of(syscall(SYS_mount, NULL, FAULTING, NULL, 0UL, NULL));
}

static void seccomp__mount_is_refused_not_merely_failing(void)
{
        check_refused("mount", probe_mount, EFAULT);
}

static int probe_umount2(void)
{
        return result_of(syscall(SYS_umount2, FAULTING, 0x80000000));
}

static void seccomp__umount2_is_refused_not_merely_failing(void)
{
        check_refused("umount2", probe_umount2, EINVAL);
}

static int probe_pivot_root(void)
{
        return result_of(syscall(SYS_pivot_root, FAULTING, FAULTING));
}

static void seccomp__pivot_root_is_refused_not_merely_failing(void)
{
        check_refused("pivot_root", probe_pivot_root, EFAULT);
}

static int probe_chroot(void)
{
        return result_of(syscall(SYS_chroot, FAULTING));
}

static void seccomp__chroot_is_refused_not_merely_failing(void)
{
        check_refused("chroot", probe_chroot, EFAULT);
}

/* ---- Keys, bpf, perf, userfaultfd, io_uring ------------------------------------------- */

static int probe_keyctl(void)
{
        return result_of(syscall(SYS_keyctl, 9999, 0, 0, 0, 0));
}

static void seccomp__keyctl_is_refused_not_merely_failing(void)
{
        check_refused("keyctl", probe_keyctl, EOPNOTSUPP);
}

static int probe_add_key(void)
{
        return result_of(syscall(SYS_add_key, FAULTING, "d", NULL, 0UL, 0));
}

static void seccomp__add_key_is_refused_not_merely_failing(void)
{
        check_refused("add_key", probe_add_key, EFAULT);
}

static int probe_request_key(void)
{
        return result_of(syscall(SYS_request_key, FAULTING, "d", NULL, 0));
}

static void seccomp__request_key_is_refused_not_merely_failing(void)
{
        check_refused("request_key", probe_request_key, EFAULT);
}

static int probe_bpf(void)
{
        return result_of(syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, FAULTING, 8U));
}

static void seccomp__bpf_is_refused_not_merely_failing(void)
{
        check_refused("bpf", probe_bpf, EFAULT);
}

static int probe_perf_event_open(void)
{
        return result_of(syscall(SYS_perf_event_open, FAULTING, 0, -1, -1, 0UL));
}

static void seccomp__perf_event_open_is_refused_not_merely_failing(void)
{
        check_refused("perf_event_open", probe_perf_event_open, EFAULT);
}

static int probe_userfaultfd(void)
{
        /* User-mode-only passes the permission check; bit 1 is no flag: EINVAL. */
        return result_of(syscall(SYS_userfaultfd, UFFD_USER_MODE_ONLY | 0x2));
}

static void seccomp__userfaultfd_is_refused_not_merely_failing(void)
{
        check_refused("userfaultfd", probe_userfaultfd, EINVAL);
}

static int probe_io_uring_setup(void)
{
        return result_of(syscall(SYS_io_uring_setup, 1U, FAULTING));
}

static int probe_io_uring_enter(void)
{
        return result_of(syscall(SYS_io_uring_enter, 0x7fffffff, 0U, 0U, 0U, NULL, 0UL));
}

static int probe_io_uring_register(void)
{
        /* Not -1: that is the "no ring" form, checked differently. */
        return result_of(syscall(SYS_io_uring_register, 0x7fffffff, 0U, NULL, 0U));
}

static void seccomp__io_uring_setup_is_refused_not_merely_failing(void)
{
        check_refused("io_uring_setup", probe_io_uring_setup, EFAULT);
}

static void seccomp__io_uring_enter_and_register_are_refused_not_merely_failing(void)
{
        check_refused("io_uring_enter", probe_io_uring_enter, EBADF);
        check_refused("io_uring_register", probe_io_uring_register, EBADF);
}

/* ---- Kernel images and modules -------------------------------------------------------- */

static int probe_kexec_load(void)
{
        /* Bit 8 is no kexec flag: EINVAL once past the permission check. */
        return result_of(syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0x100UL));
}

static int probe_kexec_file_load(void)
{
        return result_of(syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0x100UL));
}

static void seccomp__kexec_load_is_refused_not_merely_failing(void)
{
        check_refused("kexec_load", probe_kexec_load, EINVAL);
        check_refused("kexec_file_load", probe_kexec_file_load, EINVAL);
}

static int probe_init_module(void)
{
        /* An image shorter than an ELF header: ENOEXEC. */
        return result_of(syscall(SYS_init_module, NULL, 0UL, ""));
}

static int probe_finit_module(void)
{
        return result_of(syscall(SYS_finit_module, -1, "", 0));
}

static int probe_delete_module(void)
{
        return result_of(syscall(SYS_delete_module, FAULTING, 0));
}

static void seccomp__init_module_and_friends_are_refused_not_merely_failing(void)
{
        check_refused("init_module", probe_init_module, ENOEXEC);
        check_refused("finit_module", probe_finit_module, EBADF);
        check_refused("delete_module", probe_delete_module, EFAULT);
}

/* ---- File handles --------------------------------------------------------------------- */

static int probe_open_by_handle_at(void)
{
        return result_of(syscall(SYS_open_by_handle_at, AT_FDCWD, FAULTING, O_RDONLY));
}

static void seccomp__open_by_handle_at_is_refused_not_merely_failing(void)
{
        check_refused("open_by_handle_at", probe_open_by_handle_at, EFAULT);
}

static int probe_name_to_handle_at(void)
{
        return result_of(syscall(SYS_name_to_handle_at, AT_FDCWD, FAULTING, FAULTING, FAULTING, 0));
}

static void seccomp__name_to_handle_at_is_refused_not_merely_failing(void)
{
        check_refused("name_to_handle_at", probe_name_to_handle_at, EFAULT);
}

/* ---- Everything else on the refused list ---------------------------------------------- */

static int probe_reboot(void)
{
        return result_of(syscall(SYS_reboot, 0, 0, 0U, NULL)); /* wrong magic */
}
static int probe_swapon(void)
{
        return result_of(syscall(SYS_swapon, FAULTING, -1));
}
static int probe_swapoff(void)
{
        return result_of(syscall(SYS_swapoff, FAULTING));
}
static int probe_quotactl(void)
{
        return result_of(syscall(SYS_quotactl, 0xffU, NULL, 0, NULL)); /* no such quota type */
}
static int probe_acct(void)
{
        return result_of(syscall(SYS_acct, FAULTING));
}
static int probe_syslog(void)
{
        return result_of(syscall(SYS_syslog, 9999, NULL, 0));
}
static int probe_settimeofday(void)
{
        return result_of(syscall(SYS_settimeofday, FAULTING, NULL));
}
static int probe_clock_settime(void)
{
        return result_of(syscall(SYS_clock_settime, CLOCK_REALTIME, FAULTING));
}
static int probe_set_mempolicy(void)
{
        return result_of(syscall(SYS_set_mempolicy, 9999, NULL, 0UL));
}
static int probe_get_mempolicy(void)
{
        return result_of(syscall(SYS_get_mempolicy, NULL, NULL, 0UL, NULL, ~0UL));
}
static int probe_mbind(void)
{
        return result_of(syscall(SYS_mbind, NULL, 0UL, 9999, NULL, 0UL, 0U));
}
static int probe_move_pages(void)
{
        return result_of(syscall(SYS_move_pages, 0, 0UL, NULL, NULL, NULL, ~0));
}
static int probe_fanotify_init(void)
{
        return result_of(syscall(SYS_fanotify_init, 0x80000000U, 0U));
}
static int probe_fsopen(void)
{
        return result_of(syscall(SYS_fsopen, FAULTING, ~0U));
}
static int probe_fsmount(void)
{
        return result_of(syscall(SYS_fsmount, -1, ~0U, 0U));
}
static int probe_fspick(void)
{
        return result_of(syscall(SYS_fspick, -1, FAULTING, ~0U));
}
static int probe_open_tree(void)
{
        return result_of(syscall(SYS_open_tree, -1, FAULTING, ~0U));
}
static int probe_move_mount(void)
{
        return result_of(syscall(SYS_move_mount, -1, FAULTING, -1, FAULTING, ~0U));
}
static int probe_mount_setattr(void)
{
        return result_of(syscall(SYS_mount_setattr, -1, FAULTING, ~0U, NULL, 0UL));
}
static int probe_iopl(void)
{
        return result_of(syscall(SYS_iopl, 4)); /* levels go to 3 */
}
static int probe_ioperm(void)
{
        return result_of(syscall(SYS_ioperm, 0xffff0000UL, 0x10000000UL, 1));
}
static int probe_sethostname(void)
{
        return result_of(syscall(SYS_sethostname, FAULTING, 4096UL)); /* longer than any name */
}
static int probe_setdomainname(void)
{
        return result_of(syscall(SYS_setdomainname, FAULTING, 4096UL));
}
static int probe_quotactl_fd(void)
{
        return result_of(syscall(SYS_quotactl_fd, 0x7fffffff, 0U, 0, NULL));
}
static int probe_migrate_pages(void)
{
        return result_of(syscall(SYS_migrate_pages, 0, ~0UL, NULL, NULL)); /* absurd node count */
}
static int probe_set_mempolicy_home_node(void)
{
        return result_of(syscall(SYS_set_mempolicy_home_node, 0UL, 0UL, 0UL, ~0UL)); /* no flag is valid */
}
static int probe_kcmp(void)
{
        return result_of(syscall(SYS_kcmp, getpid(), getpid(), 9999, 0UL, 0UL)); /* no such type */
}
static int probe_process_madvise(void)
{
        return result_of(syscall(SYS_process_madvise, -1, NULL, 0UL, 0, ~0U)); /* no flag is valid */
}
static int probe_lookup_dcookie(void)
{
        return result_of(syscall(SYS_lookup_dcookie, 0ULL, FAULTING, 4096UL));
}
static int probe_pidfd_getfd(void)
{
        return result_of(syscall(SYS_pidfd_getfd, -1, 0, 0U));
}

static void seccomp__other_privileged_calls_are_refused_not_merely_failing(void)
{
        static const struct {
                const char *name;
                probe_fn *probe;
                int bare_errno;
        } probes[] = {
            {"reboot", probe_reboot, EINVAL},
            {"swapon", probe_swapon, EINVAL},
            {"swapoff", probe_swapoff, EFAULT},
            {"quotactl", probe_quotactl, EINVAL},
            {"acct", probe_acct, EFAULT},
            {"syslog", probe_syslog, EINVAL},
            {"settimeofday", probe_settimeofday, EFAULT},
            {"clock_settime", probe_clock_settime, EFAULT},
            {"set_mempolicy", probe_set_mempolicy, EINVAL},
            {"get_mempolicy", probe_get_mempolicy, EINVAL},
            {"mbind", probe_mbind, EINVAL},
            {"move_pages", probe_move_pages, EINVAL},
            {"fanotify_init", probe_fanotify_init, EINVAL},
            {"fsopen", probe_fsopen, EINVAL},
            {"fsmount", probe_fsmount, EINVAL},
            {"fspick", probe_fspick, EINVAL},
            {"open_tree", probe_open_tree, EINVAL},
            {"move_mount", probe_move_mount, EINVAL},
            {"mount_setattr", probe_mount_setattr, EINVAL},
            {"iopl", probe_iopl, EINVAL},
            {"ioperm", probe_ioperm, EINVAL},
            {"sethostname", probe_sethostname, EINVAL},
            {"pidfd_getfd", probe_pidfd_getfd, EBADF},
            {"setdomainname", probe_setdomainname, EINVAL},
            {"quotactl_fd", probe_quotactl_fd, EBADF},
            {"migrate_pages", probe_migrate_pages, EINVAL},
            {"set_mempolicy_home_node", probe_set_mempolicy_home_node, EINVAL},
            {"kcmp", probe_kcmp, EINVAL},
            {"process_madvise", probe_process_madvise, EINVAL},
            {"lookup_dcookie", probe_lookup_dcookie, EFAULT},
        };
        for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++)
                check_refused(probes[i].name, probes[i].probe, probes[i].bare_errno);
}

/* ---- Sockets -------------------------------------------------------------------------- */

static unsigned long socket_family;

static int probe_socket_family(void)
{
        return result_of(syscall(SYS_socket, socket_family, BAD_SOCKET_TYPE, 0));
}

static int probe_socketpair_family(void)
{
        int sv[2];
        return result_of(syscall(SYS_socketpair, socket_family, BAD_SOCKET_TYPE, 0, sv));
}

static void seccomp__socket_af_vsock_is_eafnosupport_from_the_filter(void)
{
        socket_family = AF_VSOCK;
        check_stopped_by_filter("socket(AF_VSOCK)", probe_socket_family, EINVAL, EAFNOSUPPORT);
}

static void seccomp__socket_af_alg_is_eafnosupport_from_the_filter(void)
{
        socket_family = AF_ALG;
        check_stopped_by_filter("socket(AF_ALG)", probe_socket_family, EINVAL, EAFNOSUPPORT);
}

static void seccomp__socket_af_packet_is_eafnosupport_from_the_filter(void)
{
        socket_family = AF_PACKET;
        check_stopped_by_filter("socket(AF_PACKET)", probe_socket_family, EINVAL, EAFNOSUPPORT);
}

static void seccomp__socketpair_af_alg_is_eafnosupport_from_the_filter(void)
{
        socket_family = AF_ALG;
        check_stopped_by_filter("socketpair(AF_ALG)", probe_socketpair_family, EINVAL, EAFNOSUPPORT);
}

static void seccomp__socket_family_with_high_bits_set_does_not_pass_as_af_inet(void)
{
        /* The kernel reads the family as an int, so without the filter this is AF_INET. */
        socket_family = (1UL << 32) | AF_INET;
        check_stopped_by_filter("socket(1<<32 | AF_INET)", probe_socket_family, EINVAL, EAFNOSUPPORT);
}

/* Returns 0, or 1000 + the first family whose socket and socketpair did not answer as
 * expected: EINVAL (they reached the kernel) for the allowed families and, without
 * the filter, for all; EAFNOSUPPORT for the others under the filter. */
static int probe_every_socket_family(void)
{
        static const int allowed[] = {AF_UNIX, AF_INET, AF_INET6};
        for (int family = 0; family < AF_MAX; family++) {
                if (family == AF_NETLINK && in_filtered_child)
                        continue; /* depends on the protocol: see the netlink test */
                bool reaches_kernel = !in_filtered_child;
                for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
                        reaches_kernel = reaches_kernel || allowed[i] == family;
                int want = reaches_kernel ? EINVAL : EAFNOSUPPORT;
                socket_family = (unsigned long)family;
                if (probe_socket_family() != want || probe_socketpair_family() != want)
                        return 1000 + family;
        }
        return 0;
}

static void seccomp__only_unix_inet_inet6_and_netlink_sockets_reach_the_kernel(void)
{
        struct outcome bare = run_probe(false, probe_every_socket_family);
        struct outcome filtered = run_probe(true, probe_every_socket_family);
        if (bare.result != 0 || filtered.result != 0)
                fprintf(stderr, "  family %d (without the filter) / %d (under it) answered wrong\n",
                        bare.result - 1000, filtered.result - 1000);
        CHECK(bare.signal == 0 && bare.result == 0);
        CHECK(filtered.signal == 0 && filtered.result == 0);
}

static int probe_netlink_protocols(void)
{
        static const struct {
                int protocol;
                bool allowed;
        } cases[] = {{NETLINK_ROUTE, true},
                     {NETLINK_SOCK_DIAG, true},
                     {NETLINK_KOBJECT_UEVENT, false},
                     {NETLINK_AUDIT, false},
                     {NETLINK_NETFILTER, false}};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, cases[i].protocol);
                int got = fd >= 0 ? 0 : errno;
                if (fd >= 0)
                        close(fd);
                if (in_filtered_child && (cases[i].allowed ? got != 0 : got != EPERM))
                        return 1000 + cases[i].protocol;
                if (!in_filtered_child && got == EPERM)
                        return 2000 + cases[i].protocol; /* without the filter, no EPERM */
        }
        return 0;
}

static void seccomp__netlink_is_only_for_routing_and_socket_diagnostics(void)
{
        struct outcome bare = run_probe(false, probe_netlink_protocols);
        struct outcome filtered = run_probe(true, probe_netlink_protocols);
        CHECK(bare.signal == 0 && bare.result == 0);
        CHECK(filtered.signal == 0 && filtered.result == 0);
}

/* ---- personality ---------------------------------------------------------------------- */

static unsigned long persona;

static int probe_personality(void)
{
        return result_of(syscall(SYS_personality, persona));
}

static void seccomp__personality_flags_docker_does_not_allow_are_refused(void)
{
        /* Without the filter these succeed (and return the old personality). */
        persona = READ_IMPLIES_EXEC;
        check_stopped_by_filter("personality(READ_IMPLIES_EXEC)", probe_personality, 0, EPERM);
        persona = ADDR_NO_RANDOMIZE;
        check_stopped_by_filter("personality(ADDR_NO_RANDOMIZE)", probe_personality, 0, EPERM);
}

static void seccomp__personality_query_and_plain_linux_are_allowed(void)
{
        persona = 0xffffffffUL;
        check_allowed("personality(0xffffffff)", probe_personality, 0);
        persona = PER_LINUX;
        check_allowed("personality(PER_LINUX)", probe_personality, 0);
}

/* ---- Other ABIs ----------------------------------------------------------------------- */

/* getpid through the i386 entry point; returns 0 when it answered like getpid. */
static int probe_int80_getpid(void)
{
        long ret;
        __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "r8", "r9", "r10", "r11", "memory", "cc");
        return ret == getpid() ? 0 : 1000;
}

static void seccomp__int80_i386_syscall_kills_with_sigsys(void)
{
        struct outcome bare = run_probe(false, probe_int80_getpid);
        struct outcome filtered = run_probe(true, probe_int80_getpid);
        CHECK(bare.signal == 0 && bare.result == 0); /* the kernel does run i386 calls */
        CHECK(filtered.signal == SIGSYS && filtered.result == NO_REPORT);
}

static int probe_x32_getpid(void)
{
        return result_of(syscall(__X32_SYSCALL_BIT | SYS_getpid));
}

static void seccomp__x32_syscall_number_kills_with_sigsys(void)
{
        struct outcome bare = run_probe(false, probe_x32_getpid);
        struct outcome filtered = run_probe(true, probe_x32_getpid);
        /* Without the filter: getpid on a kernel with x32, ENOSYS on one without. */
        CHECK(bare.signal == 0 && (bare.result == 0 || bare.result == ENOSYS));
        CHECK(filtered.signal == SIGSYS && filtered.result == NO_REPORT);
}

int main(void)
{
        program_build_result = seccomp_program_build(&program, program_build_err);

        RUN(seccomp__program_builds_within_the_kernel_instruction_limit);
        RUN(seccomp__two_builds_give_the_same_program);
        RUN(seccomp__free_accepts_null_and_leaves_an_empty_program);
        RUN(seccomp__load_refuses_an_empty_program_with_einval);
        RUN(seccomp__load_without_no_new_privs_or_cap_sys_admin_is_eacces_not_a_crash);
        RUN(seccomp__load_after_dropping_capabilities_works_with_no_new_privs);

        RUN(seccomp__ordinary_file_memory_pipe_epoll_clock_and_futex_calls_work);
        RUN(seccomp__fork_and_wait_work);
        RUN(seccomp__raw_clone_without_namespace_flags_works);
        RUN(seccomp__threads_start_because_clone3_enosys_makes_glibc_fall_back_to_clone);
        RUN(seccomp__execve_of_bin_true_exits_zero);
        RUN(seccomp__socket_af_inet_and_socketpair_af_unix_work);
        RUN(seccomp__ptrace_reaches_the_kernel);
        RUN(seccomp__adjtimex_read_only_query_works);

        RUN(seccomp__clone_with_clone_newuser_is_refused_not_merely_failing);
        RUN(seccomp__clone_with_any_namespace_flag_is_refused_not_merely_failing);
        RUN(seccomp__clone3_is_enosys_from_the_filter_not_the_kernel);
        RUN(seccomp__unshare_clone_newuser_is_refused_not_merely_failing);
        RUN(seccomp__setns_is_refused_not_merely_failing);

        RUN(seccomp__mount_is_refused_not_merely_failing);
        RUN(seccomp__umount2_is_refused_not_merely_failing);
        RUN(seccomp__pivot_root_is_refused_not_merely_failing);
        RUN(seccomp__chroot_is_refused_not_merely_failing);

        RUN(seccomp__keyctl_is_refused_not_merely_failing);
        RUN(seccomp__add_key_is_refused_not_merely_failing);
        RUN(seccomp__request_key_is_refused_not_merely_failing);
        RUN(seccomp__bpf_is_refused_not_merely_failing);
        RUN(seccomp__perf_event_open_is_refused_not_merely_failing);
        RUN(seccomp__userfaultfd_is_refused_not_merely_failing);
        RUN(seccomp__io_uring_setup_is_refused_not_merely_failing);
        RUN(seccomp__io_uring_enter_and_register_are_refused_not_merely_failing);

        RUN(seccomp__kexec_load_is_refused_not_merely_failing);
        RUN(seccomp__init_module_and_friends_are_refused_not_merely_failing);
        RUN(seccomp__open_by_handle_at_is_refused_not_merely_failing);
        RUN(seccomp__name_to_handle_at_is_refused_not_merely_failing);
        RUN(seccomp__other_privileged_calls_are_refused_not_merely_failing);

        RUN(seccomp__socket_af_vsock_is_eafnosupport_from_the_filter);
        RUN(seccomp__socket_af_alg_is_eafnosupport_from_the_filter);
        RUN(seccomp__socket_af_packet_is_eafnosupport_from_the_filter);
        RUN(seccomp__socketpair_af_alg_is_eafnosupport_from_the_filter);
        RUN(seccomp__socket_family_with_high_bits_set_does_not_pass_as_af_inet);
        RUN(seccomp__only_unix_inet_inet6_and_netlink_sockets_reach_the_kernel);
        RUN(seccomp__netlink_is_only_for_routing_and_socket_diagnostics);

        RUN(seccomp__personality_flags_docker_does_not_allow_are_refused);
        RUN(seccomp__personality_query_and_plain_linux_are_allowed);

        RUN(seccomp__int80_i386_syscall_kills_with_sigsys);
        RUN(seccomp__x32_syscall_number_kills_with_sigsys);

        seccomp_program_free(&program);
        return CHECK_SUMMARY();
}

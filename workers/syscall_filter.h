/* The sandbox's system-call filter: an allowlist derived from Docker's default seccomp
 * profile for a process without capabilities, for x86_64 only.
 *
 * The filter is compiled once, in the parent, with libseccomp and kept as raw classic BPF;
 * each child loads it with a single prctl right before execve, so the child never
 * allocates or calls into libseccomp. What the filter allows and refuses, and why, is
 * written down at the top of seccomp.c. */
#ifndef WARREN_WORKERS_SECCOMP_H
#define WARREN_WORKERS_SECCOMP_H

#include <linux/filter.h>

#define SECCOMP_ERR_MAX 256

struct seccomp_program {
        struct sock_filter *filter; /* raw classic BPF, ready for prctl(PR_SET_SECCOMP) */
        unsigned short len;         /* instructions in filter */
};

/* Builds the filter and exports it into memory. On success *ret owns the instructions
 * (release them with seccomp_program_free) and 0 is returned; on failure *ret is left
 * untouched, err says what failed and -errno is returned. */
int seccomp_program_build(struct seccomp_program *ret, char err[SECCOMP_ERR_MAX]);

/* Frees the instructions and leaves an empty program behind; accepts NULL and an empty
 * program. */
void seccomp_program_free(struct seccomp_program *p);

/* Loads the program into the calling thread. Async-signal-safe and malloc-free: one prctl,
 * so it may run in a freshly forked child between fork and execve. The caller must already
 * have set PR_SET_NO_NEW_PRIVS (or hold CAP_SYS_ADMIN; without either the kernel says
 * -EACCES). Returns 0 or -errno, and leaves errno set to the same error on failure. */
int seccomp_program_load(const struct seccomp_program *p);

#endif

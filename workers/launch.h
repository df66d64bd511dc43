/* Launching a sandbox's runtime: namespaces, mounts, user namespace and warren-init.
 *
 * The child is cloned as real root into new mount, pid, net, ipc and uts namespaces, so
 * that it can build the whole root (overlay on a size-limited tmpfs, /usr read-only, /proc
 * masked, a minimal /dev) with no help from inside; those mounts exist only in its mount
 * namespace and vanish with its last process. The template and /usr are idmapped through
 * the sandbox's user namespace (root inside = uid_base outside), which the child enters
 * last, after its cgroup namespace, before it execs warren-init. The
 * namespaces it lives in are owned by the host's user namespace, so root inside can mount
 * nothing and configure no interface. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "cgroup.h"

#define LAUNCH_ERR_MAX 256

/* The size of a sandbox's /dev/shm, a tmpfs like its disk (and so memory too). */
#define LAUNCH_SHM_BYTES (64LL << 20)

struct launch_spec {
        const char *id;           /* also the hostname */
        const char *sandbox_dir;  /* <state>/sandboxes/<id>: root/, disk/, agent.sock, files.sock */
        const char *template_dir; /* read-only lower layer of the root */
        const char *init_path;    /* the warren-init binary on the host */
        long long disk_bytes;     /* size of the tmpfs holding the writable layer */
        unsigned uid_base;        /* host uid of root inside; 65536 ids are mapped */
        char *const *env;         /* the sandbox's environment (NAME=value), NULL-terminated */
        struct cgroup *cgroup;    /* the child joins it before anything runs */
        int netns_fd;             /* the network namespace to join (network.c); -1: a new,
                                     empty one (loopback only) */
        /* When set, called just before the clone for the namespace to join instead of
         * netns_fd, so that it can still be in the making on another thread while the launch
         * prepares; a negative answer (with err) fails the launch. */
        int (*netns_await)(void *arg, char err[LAUNCH_ERR_MAX]);
        void *netns_arg;
        const char *address;     /* the sandbox's address, for /etc/hosts (NULL: none) */
        const char *nameserver;  /* for /etc/resolv.conf (NULL: none) */
        gid_t files_group;       /* nginx's group: it may connect to files.sock (0: root only) */
        const char *files_token; /* what the agent asks of requests on files.sock (NULL: it
                                    takes none) */
        bool own_child;          /* the caller reaps it (the master); else it becomes the
                                    caller's parent's child (CLONE_PARENT: a worker's parent
                                    is the master) */
};

/* Starts the sandbox and returns once warren-init has been exec'd. On failure nothing of the
 * child is left running; err says which step failed and why. */
int sandbox_launch(const struct launch_spec *spec, pid_t *ret_pid, char err[LAUNCH_ERR_MAX]);

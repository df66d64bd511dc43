/* Starting a command inside the sandbox (warren-init's side).
 *
 * Every command runs under a shepherd: a child of PID 1 that is the child subreaper of
 * everything the command starts. Whatever daemonises, double-forks or calls setsid() is
 * reparented to the shepherd, not to PID 1, so spawn_kill() reaches the whole tree. A
 * command that ends by itself ends its shepherd, with the command's status, and what it
 * left running in the background lives on (as children of PID 1) until the sandbox ends.
 * The command runs in a session of its own, as the sandbox's user or root, with the
 * environment the sandbox was given plus the request's. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#define SPAWN_USER_UID 1000
#define SPAWN_USER_GID 1000
#define SPAWN_TTY_GID  5

struct spawn_spec {
        json_t *argv;    /* non-empty array of strings */
        json_t *env;     /* the request's variables (object of strings), may be NULL */
        const char *cwd; /* NULL: the user's home */
        bool root;       /* root of the sandbox's user namespace, else the sandbox user */
        bool tty;        /* a terminal: stdin, stdout and stderr are a new pty's slave */
        bool events;     /* a fourth pipe, the command's fd 3, for what it reports (kernels) */
        unsigned short cols, rows;
};

struct spawned {
        pid_t shepherd; /* its exit is the command's */
        pid_t pid;      /* the command, as users see it */
        int in_fd;      /* pipe to its stdin (pty: the master) */
        int out_fd;     /* pipe from its stdout (pty: the master too) */
        int err_fd;     /* pipe from its stderr (pty: -1) */
        int ev_fd;      /* pipe from its fd 3 (only with events; else -1) */
};

/* The sandbox's environment (NAME=value strings), under every command's own variables. */
void spawn_set_base_env(char **env);

/* Starts the command; the fds are non-blocking and close on exec. On failure *err_code is
 * "bad_request", "bad_cwd", "bad_command" or "internal" and msg says why. */
int spawn_start(const struct spawn_spec *spec, struct spawned *ret, const char **err_code, char msg[256]);

/* Asks the shepherd to kill the command's whole tree (it then exits with SIGKILL's status). */
void spawn_kill(pid_t shepherd);

/* Validates a request's argv: a non-empty array of strings. */
bool spawn_argv_is_valid(json_t *argv);

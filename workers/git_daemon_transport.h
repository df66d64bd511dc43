/* The git:// transport warren-git clones with: libgit2's own, with one repair that makes
 * shallow clones over it work on libgit2 before 1.9. See git_daemon_transport.c. */
#pragma once

#include <git2.h>

/* A git_transport_cb for git:// URLs (git_remote_callbacks.transport); param is unused. */
int git_daemon_transport(git_transport **out, git_remote *owner, void *param);

/* A worker process: a pool of threads, each accepting FastCGI connections on the shared
 * listening socket and serving one request at a time with its own Redis connection. */
#pragma once

#include "config.h"

/* Runs until the listening socket is shut down (by the master, or by this worker when the
 * master is gone), lets in-flight requests finish, and returns the exit status. */
int worker_run(const struct warren_config *cfg, int listen_fd, const char *node_id);

/* Worker processes. Threads block in FCGX_Accept_r; stopping never interrupts them with
 * signals (libfcgi treats EINTR on a request's socket as a broken request, and its shutdown
 * flag turns reads into EOF). Instead:
 *   - the listening socket is shut down (by the master), which wakes every accept() with an
 *     error while connections already accepted are served to the end;
 *   - nginx keeps FastCGI connections alive between requests, and a thread waiting for the
 *     next request on one sits in read(), not accept(). On SIGTERM the worker shuts down the
 *     read side of those idle connections only; a thread in the middle of a request finishes
 *     it and then closes its connection instead of keeping it. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <fcgiapp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>

#include "cleanup.h"
#include "dispatch.h"
#include "log.h"
#include "redis_client.h"

/* What the drainer may touch of a thread: the kept-alive connection it waits on, if any. */
struct thread_slot {
        pthread_mutex_t lock;
        int idle_fd; /* >= 0 while the thread waits for the next request on a kept connection */
};

struct worker {
        const struct warren_config *cfg;
        int listen_fd;
        const char *node_id;
        int live_threads; /* atomic: threads still serving or accepting */
        int draining;     /* atomic: stop keeping connections alive */
        struct thread_slot *slots;
        int next_slot; /* atomic: hands each thread its slot */
};

static long fcgi_read(void *impl, char *buf, size_t n)
{
        FCGX_Request *r = impl;
        int got = FCGX_GetStr(buf, n > INT_MAX ? INT_MAX : (int)n, r->in);
        if (got < 0 || (got == 0 && FCGX_GetError(r->in)))
                return -EIO;
        return got;
}

static int fcgi_write(void *impl, const char *buf, size_t n)
{
        FCGX_Request *r = impl;
        while (n > 0) {
                int chunk = n > INT_MAX ? INT_MAX : (int)n;
                if (FCGX_PutStr(buf, chunk, r->out) != chunk)
                        return -EIO;
                buf += chunk;
                n -= (size_t)chunk;
        }
        return 0;
}

static int fcgi_flush(void *impl)
{
        FCGX_Request *r = impl;
        return FCGX_FFlush(r->out) < 0 ? -EIO : 0;
}

/* Accepts the next request: on the kept connection if there is one (published as idle so
 * a drain can close it), else on the listening socket. */
static int next_request(struct worker *w, struct thread_slot *slot, FCGX_Request *req)
{
        pthread_mutex_lock(&slot->lock);
        slot->idle_fd = __atomic_load_n(&w->draining, __ATOMIC_SEQ_CST) ? -1 : req->ipcFd;
        pthread_mutex_unlock(&slot->lock);
        int r = FCGX_Accept_r(req);
        pthread_mutex_lock(&slot->lock);
        slot->idle_fd = -1;
        pthread_mutex_unlock(&slot->lock);
        return r;
}

static void serve(struct worker *w, struct thread_slot *slot, struct redis_client *rc)
{
        FCGX_Request req;
        if (FCGX_InitRequest(&req, w->listen_fd, 0) != 0)
                return;
        while (next_request(w, slot, &req) >= 0) {
                /* libfcgi's accepted socket is inheritable: it must never reach a sandbox. */
                fcntl(req.ipcFd, F_SETFD, FD_CLOEXEC);
                struct http_ctx ctx = {
                    .io = {.impl = &req, .read = fcgi_read, .write = fcgi_write, .flush = fcgi_flush},
                    .redis = rc,
                    .cfg = w->cfg,
                    .node_id = w->node_id,
                };
                dispatch_request(&ctx, req.envp);
                if (__atomic_load_n(&w->draining, __ATOMIC_SEQ_CST))
                        req.keepConnection = 0; /* closed by FCGX_Finish_r below */
                FCGX_Finish_r(&req);
        }
        FCGX_Free(&req, 1);
}

/* Closes the read side of every connection a thread waits on between requests. Called after
 * the listening socket is shut down, so no new connection can reuse a published fd. */
static void drain_idle_connections(struct worker *w, int nthreads)
{
        __atomic_store_n(&w->draining, 1, __ATOMIC_SEQ_CST);
        for (int i = 0; i < nthreads; i++) {
                pthread_mutex_lock(&w->slots[i].lock);
                if (w->slots[i].idle_fd >= 0)
                        shutdown(w->slots[i].idle_fd, SHUT_RD);
                pthread_mutex_unlock(&w->slots[i].lock);
        }
}

static void *request_thread(void *arg)
{
        struct worker *w = arg;
        struct thread_slot *slot = &w->slots[__atomic_fetch_add(&w->next_slot, 1, __ATOMIC_SEQ_CST)];
        char err[REDIS_ERR_MAX];
        struct redis_client *rc = NULL;
        if (redis_client_new(w->cfg->redis_url, w->cfg->redis_timeout_ms, &rc, err) == 0)
                serve(w, slot, rc);
        else
                log_event(LOG_LEVEL_ERROR, "worker cannot use redis_url", json_pack("{s:s}", "error", err));
        redis_client_free(rc);
        __atomic_sub_fetch(&w->live_threads, 1, __ATOMIC_SEQ_CST);
        return NULL;
}

static int start_threads(struct worker *w, pthread_t *threads, int n)
{
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        int started = 0;
        for (; started < n; started++) {
                __atomic_add_fetch(&w->live_threads, 1, __ATOMIC_SEQ_CST);
                if (pthread_create(&threads[started], &attr, request_thread, w) != 0) {
                        __atomic_sub_fetch(&w->live_threads, 1, __ATOMIC_SEQ_CST);
                        break;
                }
        }
        pthread_attr_destroy(&attr);
        return started;
}

int worker_run(const struct warren_config *cfg, int listen_fd, const char *node_id)
{
        /* If the master dies, stop accepting so that a new master's socket takes over. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        log_reset_pid();
        signal(SIGPIPE, SIG_IGN);
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL); /* request threads inherit this mask */
        if (FCGX_Init() != 0)
                return 1;
        enum log_level lvl;
        if (log_level_parse(cfg->log_level, &lvl) == 0)
                log_set_level(lvl);

        _cleanup_free_ pthread_t *threads = calloc((size_t)cfg->threads, sizeof *threads);
        _cleanup_free_ struct thread_slot *slots = calloc((size_t)cfg->threads, sizeof *slots);
        if (!threads || !slots)
                return 1;
        for (int i = 0; i < cfg->threads; i++) {
                pthread_mutex_init(&slots[i].lock, NULL);
                slots[i].idle_fd = -1;
        }
        struct worker w = {.cfg = cfg, .listen_fd = listen_fd, .node_id = node_id, .slots = slots};
        int started = start_threads(&w, threads, cfg->threads);

        /* SIGTERM comes from the master after it has shut the listening socket down (stop,
         * reload), or through PR_SET_PDEATHSIG when the master is gone. Shutting the socket
         * down again is harmless, and needed in the second case. Idle connections are then
         * closed again on every tick, for a request that was in flight at the first pass. */
        const struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        while (__atomic_load_n(&w.live_threads, __ATOMIC_SEQ_CST) > 0) {
                int sig = sigtimedwait(&set, NULL, &tick);
                if (sig == SIGTERM || sig == SIGINT)
                        shutdown(listen_fd, SHUT_RDWR);
                if (sig == SIGTERM || sig == SIGINT || __atomic_load_n(&w.draining, __ATOMIC_SEQ_CST))
                        drain_idle_connections(&w, started);
        }
        for (int i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        for (int i = 0; i < cfg->threads; i++)
                pthread_mutex_destroy(&slots[i].lock);
        return 0;
}

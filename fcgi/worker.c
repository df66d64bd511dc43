/* Worker processes. Threads block in FCGX_Accept_r; stopping never interrupts them with
 * signals (libfcgi treats EINTR on a request's socket as a broken request, and its shutdown
 * flag turns reads into EOF). Instead the listening socket is shut down, which wakes every
 * accept() with an error while connections already accepted are served to the end. */
#include "worker.h"

#include <errno.h>
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

struct worker {
        const struct warren_config *cfg;
        int listen_fd;
        const char *node_id;
        int live_threads; /* atomic: threads still serving or accepting */
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

static void serve(struct worker *w, struct redis_client *rc)
{
        FCGX_Request req;
        if (FCGX_InitRequest(&req, w->listen_fd, 0) != 0)
                return;
        while (FCGX_Accept_r(&req) >= 0) {
                struct http_ctx ctx = {
                    .io = {.impl = &req, .read = fcgi_read, .write = fcgi_write, .flush = fcgi_flush},
                    .redis = rc,
                    .cfg = w->cfg,
                    .node_id = w->node_id,
                };
                dispatch_request(&ctx, req.envp);
                FCGX_Finish_r(&req);
        }
        FCGX_Free(&req, 1);
}

static void *request_thread(void *arg)
{
        struct worker *w = arg;
        char err[REDIS_ERR_MAX];
        struct redis_client *rc = NULL;
        if (redis_client_new(w->cfg->redis_url, w->cfg->redis_timeout_ms, &rc, err) == 0)
                serve(w, rc);
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

        struct worker w = {.cfg = cfg, .listen_fd = listen_fd, .node_id = node_id};
        _cleanup_free_ pthread_t *threads = calloc((size_t)cfg->threads, sizeof *threads);
        if (!threads)
                return 1;
        int started = start_threads(&w, threads, cfg->threads);

        /* The threads end when the listening socket is shut down: by the master (stop or
         * reload), or here on SIGTERM, which comes when the master is gone. */
        const struct timespec tick = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
        while (__atomic_load_n(&w.live_threads, __ATOMIC_SEQ_CST) > 0) {
                int sig = sigtimedwait(&set, NULL, &tick);
                if (sig == SIGTERM || sig == SIGINT)
                        shutdown(listen_fd, SHUT_RDWR);
        }
        for (int i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        return 0;
}

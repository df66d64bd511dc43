/* Worker processes. Threads block in FCGX_Accept_r; stopping never interrupts them with
 * signals (libfcgi treats EINTR on a request's socket as a broken request, and its shutdown
 * flag turns reads into EOF). Instead:
 *   - the listening socket is shut down (by the master), which wakes every accept() with
 *     EINVAL, and a thread that sees it ends; connections already accepted are served to
 *     the end;
 *   - nginx keeps FastCGI connections alive between requests. A thread waiting for the next
 *     request on one polls it together with the worker's drain pipe; when the worker drains
 *     (SIGTERM), the pipe's write end is closed, and the thread closes its own connection.
 *     No thread ever touches another thread's descriptor: a number it saw may have been
 *     closed and reused by then. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <fcgiapp.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "dispatch.h"
#include "log.h"
#include "redis_client.h"

struct worker {
        const struct warren_config *cfg;
        int listen_fd;
        const char *node_id;
        int live_threads;       /* atomic: threads still serving or accepting */
        int draining;           /* atomic: stop keeping connections alive */
        int drain_rd, drain_wr; /* closing drain_wr wakes every thread waiting on a kept connection */
};

static long fcgi_read(void *impl, char *buf, size_t n)
{
        FCGX_Request *r = impl;
        int got = FCGX_GetStr(buf, n > INT_MAX ? INT_MAX : (int)n, r->in);
        if (got < 0 || (got == 0 && FCGX_GetError(r->in)))
                return -EIO;
        return got;
}

/* libfcgi writes its output stream in records of 8 KiB, one system call each: a download
 * of a GiB would cost 131,072 of them. Large writes go out here instead, once libfcgi's
 * buffer is flushed (so the order holds), as records of the largest size FastCGI allows,
 * header and data in one writev. */
#define FCGI_RECORD_MAX 65528 /* under 65535, a multiple of 8: no padding */

static int fcgi_write_records(FCGX_Request *r, const char *buf, size_t n)
{
        if (FCGX_FFlush(r->out) < 0)
                return -EIO;
        while (n > 0) {
                size_t len = n > FCGI_RECORD_MAX ? FCGI_RECORD_MAX : n;
                unsigned char head[8] = {1,
                                         6 /* FCGI_STDOUT */,
                                         (unsigned char)(r->requestId >> 8),
                                         (unsigned char)r->requestId,
                                         (unsigned char)(len >> 8),
                                         (unsigned char)len,
                                         0,
                                         0};
                struct iovec iov[2] = {{head, sizeof head}, {(void *)buf, len}};
                size_t left = sizeof head + len;
                int i = 0;
                while (left > 0) {
                        ssize_t w = writev(r->ipcFd, iov + i, 2 - i);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                return -EIO;
                        left -= (size_t)w;
                        while (i < 2 && (size_t)w >= iov[i].iov_len) {
                                w -= (ssize_t)iov[i].iov_len;
                                i++;
                        }
                        if (i < 2) {
                                iov[i].iov_base = (char *)iov[i].iov_base + w;
                                iov[i].iov_len -= (size_t)w;
                        }
                }
                buf += len;
                n -= len;
        }
        return 0;
}

static int fcgi_write(void *impl, const char *buf, size_t n)
{
        FCGX_Request *r = impl;
        if (n >= 32 * 1024)
                return fcgi_write_records(r, buf, n);
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

/* Gives up a kept connection: the next accept takes a new one from the listening socket. */
static void drop_kept_connection(FCGX_Request *req)
{
        req->keepConnection = 0;
        FCGX_Free(req, 1);
}

/* Waits for the next request: on the kept connection if there is one (watching the drain
 * pipe too), then through libfcgi's accept. Returns what FCGX_Accept_r returns. */
static int next_request(struct worker *w, FCGX_Request *req)
{
        if (req->ipcFd >= 0) {
                struct pollfd p[2] = {{.fd = req->ipcFd, .events = POLLIN},
                                      {.fd = w->drain_rd, .events = POLLIN}};
                while (poll(p, 2, -1) < 0 && errno == EINTR)
                        ;
                /* A request already waiting is served (and its connection then closed). */
                if (p[1].revents && !p[0].revents)
                        drop_kept_connection(req);
        }
        return FCGX_Accept_r(req);
}

/* A body the handler did not read to its end is still on the connection: the next request
 * on it would be read from the middle of that body. */
static bool body_left_unread(const struct http_ctx *ctx)
{
        if (ctx->body_read || !ctx->req.method)
                return false;
        if (ctx->req.content_length > 0)
                return true;
        return ctx->req.content_length < 0 && strcasecmp(ctx->req.method, "GET") != 0 &&
               strcasecmp(ctx->req.method, "HEAD") != 0 && strcasecmp(ctx->req.method, "DELETE") != 0;
}

/* Reads the rest of a small body nobody wanted (a request refused before its body was
 * read), so that the connection can be kept. Closing it instead races with nginx, which may
 * already have taken it from its keep-alive cache for the next request, and that request
 * then fails. Only what has already arrived is read (the socket is non-blocking meanwhile):
 * nginx stops sending a body once the answer has come, so a body still on its way (or a
 * large one) is not waited for, and the connection is closed after all. */
#define DRAIN_MAX (64 * 1024)
static bool drain_body(FCGX_Request *req, long long content_length)
{
        if (content_length <= 0 || content_length > DRAIN_MAX)
                return false;
        FCGX_FFlush(req->out); /* the answer goes first */
        int flags = fcntl(req->ipcFd, F_GETFL);
        if (flags < 0 || fcntl(req->ipcFd, F_SETFL, flags | O_NONBLOCK) < 0)
                return false;
        char buf[16384];
        int n;
        while ((n = FCGX_GetStr(buf, sizeof buf, req->in)) > 0)
                ;
        bool whole = FCGX_HasSeenEOF(req->in) == EOF && FCGX_GetError(req->in) == 0;
        fcntl(req->ipcFd, F_SETFL, flags);
        return whole;
}

static void serve(struct worker *w, struct redis_client *rc)
{
        FCGX_Request req;
        if (FCGX_InitRequest(&req, w->listen_fd, 0) != 0)
                return;
        for (;;) {
                int r = next_request(w, &req);
                if (r == -EINVAL || (r < 0 && __atomic_load_n(&w->draining, __ATOMIC_SEQ_CST)))
                        break; /* the listening socket was shut down: this worker is done */
                if (r < 0) {
                        /* EMFILE, ENOBUFS…: a thread that gave up here would be lost for good. */
                        log_event(LOG_LEVEL_WARN, "accept failed; retrying",
                                  json_pack("{s:s}", "error", strerror(r < -1 ? -r : EIO)));
                        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
                        continue;
                }
                /* libfcgi's accepted socket is inheritable: it must never reach a sandbox. */
                fcntl(req.ipcFd, F_SETFD, FD_CLOEXEC);
                struct http_ctx ctx = {
                    .io = {.impl = &req, .read = fcgi_read, .write = fcgi_write, .flush = fcgi_flush},
                    .redis = rc,
                    .cfg = w->cfg,
                    .node_id = w->node_id,
                };
                dispatch_request(&ctx, req.envp);
                if (__atomic_load_n(&w->draining, __ATOMIC_SEQ_CST) ||
                    (body_left_unread(&ctx) && !drain_body(&req, ctx.req.content_length)))
                        req.keepConnection = 0; /* closed by FCGX_Finish_r below */
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

/* Stops keeping connections: every thread waiting on a kept connection wakes and closes it. */
static void drain(struct worker *w)
{
        if (__atomic_exchange_n(&w->draining, 1, __ATOMIC_SEQ_CST))
                return;
        close(w->drain_wr);
        w->drain_wr = -1;
}

int worker_run(const struct warren_config *cfg, int listen_fd, const char *node_id)
{
        /* If the master dies, stop accepting so that a new master's socket takes over. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        /* Told apart from the master's other children (sandboxes, and the short-lived
         * processes that start them, which are copies of the master until they exec). */
        prctl(PR_SET_NAME, "warrend-worker");
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

        int pipefd[2];
        _cleanup_free_ pthread_t *threads = calloc((size_t)cfg->threads, sizeof *threads);
        if (!threads || pipe2(pipefd, O_CLOEXEC) < 0)
                return 1;
        struct worker w = {.cfg = cfg,
                           .listen_fd = listen_fd,
                           .node_id = node_id,
                           .drain_rd = pipefd[0],
                           .drain_wr = pipefd[1]};
        int started = start_threads(&w, threads, cfg->threads);

        /* SIGTERM comes from the master after it has shut the listening socket down (stop,
         * reload), or through PR_SET_PDEATHSIG when the master is gone. Shutting the socket
         * down again is harmless, and needed in the second case. */
        const struct timespec tick = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        while (__atomic_load_n(&w.live_threads, __ATOMIC_SEQ_CST) > 0) {
                int sig = sigtimedwait(&set, NULL, &tick);
                if (sig == SIGTERM || sig == SIGINT) {
                        shutdown(listen_fd, SHUT_RDWR);
                        drain(&w);
                }
        }
        for (int i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        close(w.drain_rd);
        if (w.drain_wr >= 0)
                close(w.drain_wr);
        return 0;
}

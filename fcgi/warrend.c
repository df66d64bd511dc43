/* warrend: the FastCGI application's master process.
 *
 * It binds the unix socket nginx talks to, forks the worker processes (worker.c) and
 * supervises them: a worker that dies is replaced at once. It never serves a request
 * itself. Signals:
 *   SIGTERM, SIGINT  stop accepting, let in-flight requests finish (drain_timeout_s), exit
 *   SIGHUP           re-read the configuration and replace the workers without dropping
 *                    requests: new workers get a fresh socket renamed over the old path,
 *                    then the old socket is shut down and its workers drain and exit
 *   SIGUSR1          a worker took a sandbox from the warm pool: start a replacement now
 *   SIGUSR2          a worker changed a preview snippet: reload nginx (coalesced, preview.h)
 * It also keeps the node's heartbeat in Redis (node:<id>), so other nodes and the API can
 * see which nodes are alive, sweeps the node's expired and dead sandboxes every second,
 * and keeps the warm pool full. Sandboxes are its children, whoever started them. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "cleanup.h"
#include "config.h"
#include "ids.h"
#include "log.h"
#include "network.h"
#include "preview.h"
#include "cgroup.h"
#include "redis_client.h"
#include "sandbox.h"
#include "worker.h"

#define MAX_CHILDREN 512

struct child {
        pid_t pid;
        int generation;
        time_t started;
        time_t retired; /* when a reload replaced its generation; 0 while current */
};

struct master {
        const char *config_path;
        struct warren_config cfg;
        char node_id[64];
        int listen_fd;
        ino_t listen_ino;
        int generation;
        struct child children[MAX_CHILDREN];
        int fast_deaths; /* workers in a row that died within a second of starting */
        struct redis_client *redis;
        time_t started, last_heartbeat, last_sweep;
        bool sandboxes_usable; /* cgroups were found at start */
        time_t pool_retry_at;  /* after a failed start, the pool waits a while */
        time_t pool_audit_at;  /* when the pool is next checked for strays */
};

static int mkdir_parents(const char *path, mode_t mode)
{
        char buf[PATH_MAX];
        snprintf(buf, sizeof buf, "%s", path);
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* The node id comes from the configuration, or is made once and kept in the state dir. */
static int node_id_load(struct master *m, char err[256])
{
        if (m->cfg.node_id[0]) {
                if (!id_is_valid(m->cfg.node_id, 32)) {
                        snprintf(err, 256, "node_id must be 1 to 32 lower-case letters and digits");
                        return -EINVAL;
                }
                snprintf(m->node_id, sizeof m->node_id, "%s", m->cfg.node_id);
                return 0;
        }
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/node_id", m->cfg.state_dir);
        FILE *f = fopen(path, "re");
        if (f) {
                char buf[64] = "";
                if (fgets(buf, sizeof buf, f))
                        buf[strcspn(buf, "\n")] = 0;
                fclose(f);
                if (id_is_valid(buf, 32)) {
                        snprintf(m->node_id, sizeof m->node_id, "%s", buf);
                        return 0;
                }
        }
        int r = id_random("n", 11, m->node_id, sizeof m->node_id);
        if (r < 0)
                return r;
        f = fopen(path, "we");
        if (!f) {
                r = -errno;
                snprintf(err, 256, "write %.200s: %s", path, strerror(errno));
                return r;
        }
        fprintf(f, "%s\n", m->node_id);
        fclose(f);
        return 0;
}

/* Binds a fresh socket beside the final path and renames it into place, so a restart or a
 * reload replaces the socket atomically: nginx never finds the path missing. */
static int listen_socket_open(const struct warren_config *cfg, int *ret_fd, ino_t *ret_ino, char err[256])
{
        struct sockaddr_un addr = {.sun_family = AF_UNIX};
        char tmp[PATH_MAX + 32];
        snprintf(tmp, sizeof tmp, "%s.%d.new", cfg->socket_path, (int)getpid());
        if (strlen(tmp) >= sizeof addr.sun_path) {
                snprintf(err, 256, "socket_path is too long for a unix socket");
                return -ENAMETOOLONG;
        }
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", cfg->socket_path);
        int r = mkdir_parents(dirname(dir), 0755);
        if (r < 0) {
                snprintf(err, 256, "create %.200s: %s", dir, strerror(-r));
                return r;
        }
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        strcpy(addr.sun_path, tmp);
        unlink(tmp);
        if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
                r = -errno;
                snprintf(err, 256, "bind %.200s: %s", tmp, strerror(errno));
                return r;
        }
        /* Only root and nginx's group may connect. */
        struct group *g = getgrnam(cfg->socket_group);
        if (chmod(tmp, 0660) < 0 || (g && chown(tmp, 0, g->gr_gid) < 0) || listen(fd, 4096) < 0 ||
            rename(tmp, cfg->socket_path) < 0) {
                r = -errno;
                snprintf(err, 256, "set up socket %.200s: %s", cfg->socket_path, strerror(errno));
                unlink(tmp);
                return r;
        }
        struct stat st;
        if (stat(cfg->socket_path, &st) == 0)
                *ret_ino = st.st_ino;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static int live_children(struct master *m, int generation)
{
        int n = 0;
        for (int i = 0; i < MAX_CHILDREN; i++)
                if (m->children[i].pid > 0 && (generation < 0 || m->children[i].generation == generation))
                        n++;
        return n;
}

/* Sends sig to the workers of one generation, or of all when generation < 0. */
static void signal_generation(struct master *m, int generation, int sig)
{
        for (int i = 0; i < MAX_CHILDREN; i++)
                if (m->children[i].pid > 0 && (generation < 0 || m->children[i].generation <= generation))
                        kill(m->children[i].pid, sig);
}

static int spawn_worker(struct master *m)
{
        int slot = 0;
        while (slot < MAX_CHILDREN && m->children[slot].pid > 0)
                slot++;
        if (slot == MAX_CHILDREN)
                return -ENOSPC;
        pid_t pid = fork();
        if (pid < 0) {
                int r = -errno;
                log_event(LOG_LEVEL_ERROR, "fork worker failed", json_pack("{s:s}", "error", strerror(-r)));
                return r;
        }
        if (pid == 0) {
                redis_client_free(m->redis); /* the master's connection is not the worker's */
                /* exit, not _exit: the sanitizer build checks a worker for leaks as it leaves. */
                exit(worker_run(&m->cfg, m->listen_fd, m->node_id));
        }
        m->children[slot] = (struct child){.pid = pid, .generation = m->generation, .started = time(NULL)};
        return 0;
}

/* Tops the current generation up to the configured count. A failed fork (or a full table)
 * ends the attempt: the next tick of the main loop tries again, rather than spinning here. */
static void spawn_workers(struct master *m)
{
        for (int missing = m->cfg.workers - live_children(m, m->generation); missing > 0; missing--)
                if (spawn_worker(m) < 0)
                        break;
}

static void reap(struct master *m, int stopping)
{
        bool crash_looping = false;
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                for (int i = 0; i < MAX_CHILDREN; i++) {
                        struct child *c = &m->children[i];
                        if (c->pid != pid)
                                continue;
                        c->pid = 0;
                        if (stopping || c->generation != m->generation)
                                break;
                        json_t *f = json_pack("{s:i}", "worker_pid", (int)pid);
                        if (WIFSIGNALED(status))
                                json_object_set_new(f, "signal", json_integer(WTERMSIG(status)));
                        else
                                json_object_set_new(f, "exit_status", json_integer(WEXITSTATUS(status)));
                        log_event(LOG_LEVEL_WARN, "worker died; replacing it", f);
                        bool fast = time(NULL) - c->started < 1;
                        m->fast_deaths = fast ? m->fast_deaths + 1 : 0;
                        crash_looping = crash_looping || (fast && m->fast_deaths > 5);
                        break;
                }
        }
        if (stopping)
                return;
        /* A crash loop (workers dying as they start) must not become a fork storm; the pause
         * is only taken when this very call saw one more such death. */
        if (crash_looping)
                sleep(1);
        spawn_workers(m);
}

static void heartbeat(struct master *m, int leaving)
{
        char err[REDIS_ERR_MAX];
        redisReply *reply = NULL;
        if (leaving) {
                if (redis_client_cmd(m->redis, &reply, err, "DEL node:%s", m->node_id) == 0)
                        freeReplyObject(reply);
                if (redis_client_cmd(m->redis, &reply, err, "SREM nodes %s", m->node_id) == 0)
                        freeReplyObject(reply);
                return;
        }
        time_t now = time(NULL);
        if (now - m->last_heartbeat < 2)
                return;
        m->last_heartbeat = now;
        if (redis_client_cmd(
                m->redis, &reply, err,
                "HSET node:%s id %s pid %d workers %d version %s started_at %lld heartbeat_at %lld",
                m->node_id, m->node_id, (int)getpid(), m->cfg.workers, WARREN_VERSION, (long long)m->started,
                (long long)now) < 0)
                return;
        freeReplyObject(reply);
        if (redis_client_cmd(m->redis, &reply, err, "EXPIRE node:%s 10", m->node_id) == 0)
                freeReplyObject(reply);
        if (redis_client_cmd(m->redis, &reply, err, "SADD nodes %s", m->node_id) == 0)
                freeReplyObject(reply);
}

/* Workers of a replaced generation finish their requests, but not forever: past the drain
 * timeout they are killed, so old configurations cannot linger and fill the table. */
static void expire_retired(struct master *m)
{
        time_t now = time(NULL);
        for (int i = 0; i < MAX_CHILDREN; i++) {
                struct child *c = &m->children[i];
                if (c->pid > 0 && c->retired && now - c->retired > m->cfg.drain_timeout_s)
                        kill(c->pid, SIGKILL);
        }
}

/* Lifetimes are enforced here, by the node, whatever runs inside: once a second this
 * node's sandboxes that are due (or whose runtime died) are destroyed. */
static struct sandbox_ctx master_sandbox_ctx(struct master *m)
{
        return (struct sandbox_ctx){
            .cfg = &m->cfg, .node_id = m->node_id, .redis = m->redis, .reaps_sandboxes = true};
}

static void sweep(struct master *m)
{
        time_t now = time(NULL);
        if (now == m->last_sweep)
                return;
        m->last_sweep = now;
        struct sandbox_ctx sc = master_sandbox_ctx(m);
        int n = sandbox_sweep(&sc);
        if (n > 0)
                log_event(LOG_LEVEL_INFO, "sandboxes ended by the node", json_pack("{s:i}", "count", n));
}

/* Tops the warm pool up (or trims it after a reload made it smaller). A failure to start a
 * sandbox is logged and retried after 10 s, not on every wakeup. */
/* Returns how many pooled sandboxes are still missing: the loop comes back at once for them. */
static int keep_pool(struct master *m)
{
        if (!m->sandboxes_usable || time(NULL) < m->pool_retry_at)
                return 0;
        struct sandbox_ctx sc = master_sandbox_ctx(m);
        if (time(NULL) >= m->pool_audit_at) {
                m->pool_audit_at = time(NULL) + 60;
                int strays = sandbox_pool_audit(&sc);
                if (strays > 0)
                        log_event(LOG_LEVEL_INFO, "warm pool: stray sandboxes stopped",
                                  json_pack("{s:i}", "count", strays));
        }
        char err[SANDBOX_ERR_MAX];
        int missing = sandbox_pool_fill(&sc, err);
        if (missing < 0) {
                m->pool_retry_at = time(NULL) + 10;
                log_event(LOG_LEVEL_WARN, "warm pool: could not start a sandbox",
                          json_pack("{s:s}", "error", err));
                return 0;
        }
        return missing;
}

/* Every snippet change asked for since the last reload is taken by one reload. */
static void reload_previews(struct master *m)
{
        char err[PREVIEW_ERR_MAX];
        if (preview_reload_pending(&m->cfg, m->redis, m->node_id, err) < 0)
                log_event(LOG_LEVEL_ERROR, "nginx reload for previews failed",
                          json_pack("{s:s}", "error", err));
}

static void reload(struct master *m)
{
        struct warren_config cfg;
        char err[CONFIG_ERR_MAX];
        if (config_load(m->config_path, &cfg, err) < 0) {
                log_event(LOG_LEVEL_ERROR, "reload refused: configuration is invalid",
                          json_pack("{s:s}", "error", err));
                return;
        }
        int old_fd = m->listen_fd, new_fd;
        ino_t ino;
        /* The new configuration is taken only once its socket is open: a reload that fails
         * leaves everything as it was. */
        if (listen_socket_open(&cfg, &new_fd, &ino, err) < 0) {
                log_event(LOG_LEVEL_ERROR, "reload failed", json_pack("{s:s}", "error", err));
                return;
        }
        if (strcmp(cfg.socket_path, m->cfg.socket_path) != 0)
                unlink(m->cfg.socket_path);
        m->cfg = cfg;
        m->listen_fd = new_fd;
        m->listen_ino = ino;
        m->generation++;
        spawn_workers(m);
        /* Let the old workers take what nginx queued on the old socket before the rename. */
        nanosleep(&(struct timespec){.tv_nsec = 200 * 1000 * 1000}, NULL);
        shutdown(old_fd, SHUT_RDWR);
        close(old_fd);
        signal_generation(m, m->generation - 1, SIGTERM); /* they drain kept connections and leave */
        for (int i = 0; i < MAX_CHILDREN; i++)
                if (m->children[i].pid > 0 && m->children[i].generation < m->generation &&
                    !m->children[i].retired)
                        m->children[i].retired = time(NULL);
        enum log_level lvl;
        if (log_level_parse(m->cfg.log_level, &lvl) == 0)
                log_set_level(lvl);
        log_event(LOG_LEVEL_INFO, "configuration reloaded", json_pack("{s:i}", "workers", m->cfg.workers));
}

static int stop(struct master *m)
{
        log_event(LOG_LEVEL_INFO, "stopping: draining in-flight requests",
                  json_pack("{s:i}", "drain_timeout_s", m->cfg.drain_timeout_s));
        shutdown(m->listen_fd, SHUT_RDWR);
        signal_generation(m, -1, SIGTERM); /* workers drain kept connections and leave */
        struct stat st;
        if (stat(m->cfg.socket_path, &st) == 0 && st.st_ino == m->listen_ino)
                unlink(m->cfg.socket_path);
        sigset_t chld;
        sigemptyset(&chld);
        sigaddset(&chld, SIGCHLD);
        time_t deadline = time(NULL) + m->cfg.drain_timeout_s;
        while (live_children(m, -1) > 0 && time(NULL) < deadline) {
                sigtimedwait(&chld, NULL, &(struct timespec){.tv_nsec = 100 * 1000 * 1000});
                reap(m, 1);
        }
        int stragglers = live_children(m, -1);
        for (int i = 0; i < MAX_CHILDREN; i++)
                if (m->children[i].pid > 0) {
                        kill(m->children[i].pid, SIGKILL);
                        waitpid(m->children[i].pid, NULL, 0);
                }
        /* Sandboxes are children too (CLONE_PARENT) and are left running: a new master
         * adopts them from Redis. The warm pool's hold nothing of anyone's and go. */
        struct sandbox_ctx sc = master_sandbox_ctx(m);
        int pooled = sandbox_pool_drain(&sc, m->cfg.warm_pool_size + 64) + sandbox_pool_audit(&sc);
        heartbeat(m, 1);
        log_event(LOG_LEVEL_INFO, "stopped",
                  json_pack("{s:i, s:i}", "killed_after_timeout", stragglers, "pool_stopped", pooled));
        return 0;
}

static int run(struct master *m)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGUSR1);
        sigaddset(&set, SIGUSR2);
        sigprocmask(SIG_BLOCK, &set, NULL);
        signal(SIGPIPE, SIG_IGN);
        spawn_workers(m);
        log_event(LOG_LEVEL_INFO, "warrend started",
                  json_pack("{s:s, s:s, s:i, s:i}", "node_id", m->node_id, "socket", m->cfg.socket_path,
                            "workers", m->cfg.workers, "threads", m->cfg.threads));
        for (;;) {
                reload_previews(m); /* first: a worker waits on it to answer an expose */
                heartbeat(m, 0);
                sweep(m);
                int missing = keep_pool(m);
                expire_retired(m);
                int sig = sigtimedwait(&set, NULL, &(struct timespec){.tv_sec = missing > 0 ? 0 : 1});
                switch (sig) {
                case SIGCHLD:
                        reap(m, 0);
                        break;
                case SIGHUP:
                        reload(m);
                        break;
                case SIGUSR1:
                case SIGUSR2:
                        break; /* keep_pool and reload_previews run at the top of the loop */
                case SIGTERM:
                case SIGINT:
                        return stop(m);
                default:
                        reap(m, 0); /* a SIGCHLD can merge with another: look anyway */
                        break;
                }
        }
}

int main(int argc, char **argv)
{
        /* Start from a clean table: whatever the starting shell left open stays out. */
        close_range(3, ~0U, 0);
        /* Every open stream holds two descriptors (nginx's connection and the sandbox's): the
         * soft limit goes up to the hard one. */
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
                nofile.rlim_cur = nofile.rlim_max;
                setrlimit(RLIMIT_NOFILE, &nofile);
        }
        struct master m = {.listen_fd = -1, .started = time(NULL)};
        int check_only = 0;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
                        m.config_path = argv[++i];
                else if (strcmp(argv[i], "--check-config") == 0)
                        check_only = 1;
                else {
                        fprintf(stderr, "usage: warrend [-c CONFIG] [--check-config]\n");
                        return 2;
                }
        }
        if (!m.config_path)
                m.config_path = getenv("WARREN_CONFIG");
        char err[CONFIG_ERR_MAX];
        if (config_load(m.config_path, &m.cfg, err) < 0) {
                fprintf(stderr, "warrend: %s\n", err);
                return 2;
        }
        if (check_only)
                return 0;
        enum log_level lvl;
        if (log_level_parse(m.cfg.log_level, &lvl) == 0)
                log_set_level(lvl);
        int r = mkdir_parents(m.cfg.state_dir, 0755);
        if (r >= 0)
                r = node_id_load(&m, err);
        if (r >= 0)
                r = listen_socket_open(&m.cfg, &m.listen_fd, &m.listen_ino, err);
        char cgerr[CGROUP_ERR_MAX];
        if (r >= 0 && cgroup_system_init(m.cfg.cgroup_parent, cgerr) == 0)
                m.sandboxes_usable = true;
        else if (r >= 0)
                log_event(LOG_LEVEL_ERROR, "cgroups are not usable: sandboxes cannot start",
                          json_pack("{s:s}", "error", cgerr));
        char nerr[NETWORK_ERR_MAX];
        if (r >= 0 && m.sandboxes_usable && network_node_setup(&m.cfg, nerr) < 0) {
                m.sandboxes_usable = false;
                log_event(LOG_LEVEL_ERROR, "the sandbox network is not usable: sandboxes cannot start",
                          json_pack("{s:s}", "error", nerr));
        }
        char rerr[REDIS_ERR_MAX];
        if (r >= 0 && (r = redis_client_new(m.cfg.redis_url, m.cfg.redis_timeout_ms, &m.redis, rerr)) < 0)
                snprintf(err, sizeof err, "%s", rerr);
        if (r < 0) {
                log_event(LOG_LEVEL_ERROR, "warrend cannot start", json_pack("{s:s}", "error", err));
                return 1;
        }
        preview_generation_reset(&m.cfg, m.redis, m.node_id);
        r = run(&m);
        redis_client_free(m.redis);
        return r;
}

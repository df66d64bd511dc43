/* Sandbox lifecycle. The runtime (launch.c, cgroup.c, warren-init) does the isolating; this
 * file keeps the books: quotas, node capacity, the Redis record and indexes, and rollback
 * when a create fails half-way, so that nothing is left behind whatever step fails. */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cleanup.h"
#include "hash.h"
#include "ids.h"
#include "json_fields.h"
#include "keys.h"
#include "launch.h"
#include "network.h"
#include "log.h"
#include "preview.h"

struct record {
        char id[SANDBOX_ID_MAX], key_id[KEY_ID_MAX], node_id[64], status[16], image[64];
        long long created_at, end_at, cpu_millis, memory_mb, disk_mb, pid, paused_at, paused_ms, remaining_ms,
            uid_slot;
        long long created_us; /* the listing's order: two creates in one millisecond stay in order */
        bool auto_resume;
        char metadata[SANDBOX_METADATA_MAX + 1];
        char network[8192]; /* the egress policy, JSON */
        char address[16];
};

static long long now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sandbox_dir(struct sandbox_ctx *sc, const char *id, char *buf, size_t size)
{
        snprintf(buf, size, "%.3000s/sandboxes/%.31s", sc->cfg->state_dir, id);
}

/* One of the agent's sockets in the sandbox's host directory: agent.sock or files.sock. */
static void agent_socket_path(struct sandbox_ctx *sc, const char *id, const char *name, char *buf,
                              size_t size)
{
        snprintf(buf, size, "%.3000s/sandboxes/%.31s/%s", sc->cfg->state_dir, id, name);
}

static void agent_path(struct sandbox_ctx *sc, const char *id, char *buf, size_t size)
{
        agent_socket_path(sc, id, "agent.sock", buf, size);
}

/* --- the record ---------------------------------------------------------------------- */

/* How a record is read; sandbox_prefetch asks for the very same, so that its reply serves. */
#define RECORD_LOAD "HGETALL sandbox:%s"

void sandbox_prefetch(struct redis_client *rc, const char *id)
{
        if (id_is_valid(id, SANDBOX_ID_MAX - 1))
                redis_client_prefetch(rc, RECORD_LOAD, id);
}

static int record_load(struct sandbox_ctx *sc, const char *key_id, const char *id, struct record *ret,
                       char err[SANDBOX_ERR_MAX])
{
        if (!id_is_valid(id, SANDBOX_ID_MAX - 1)) {
                snprintf(err, SANDBOX_ERR_MAX, "no sandbox with that id");
                return -ENOENT;
        }
        _cleanup_reply_ redisReply *r = NULL;
        int rc = redis_client_cmd(sc->redis, &r, err, RECORD_LOAD, id);
        if (rc < 0)
                return rc;
        struct record rec = {.uid_slot = -1};
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
                const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
                long long n = strtoll(v, NULL, 10);
#define S(name) else if (!strcmp(f, #name)) snprintf(rec.name, sizeof rec.name, "%s", v)
#define N(name) else if (!strcmp(f, #name)) rec.name = n
                if (0) {
                }
                S(id);
                S(key_id);
                S(node_id);
                S(status);
                S(image);
                S(metadata);
                S(network);
                S(address);
                N(created_at);
                N(end_at);
                N(cpu_millis);
                N(memory_mb);
                N(disk_mb);
                N(pid);
                N(paused_at);
                N(paused_ms);
                N(remaining_ms);
                N(uid_slot);
                else if (!strcmp(f, "auto_resume")) rec.auto_resume = n != 0;
#undef S
#undef N
        }
        /* Another key's sandbox is as absent as a missing one. */
        if (!rec.id[0] || (key_id && strcmp(rec.key_id, key_id) != 0)) {
                snprintf(err, SANDBOX_ERR_MAX, "no sandbox with id '%s'", id);
                return -ENOENT;
        }
        *ret = rec;
        return 0;
}

static json_t *record_json(const struct record *r)
{
        json_t *meta = json_loads(r->metadata[0] ? r->metadata : "{}", 0, NULL);
        json_t *info = json_pack(
            "{s:s, s:s, s:s, s:o, s:s, s:o, s:{s:f, s:I, s:I}, s:b}", "id", r->id, "status", r->status,
            "image", r->image, "created_at", json_iso_time(r->created_at), "node_id", r->node_id, "metadata",
            meta ? meta : json_object(), "limits", "cpu", (double)r->cpu_millis / 1000.0, "memory_mb",
            (json_int_t)r->memory_mb, "disk_mb", (json_int_t)r->disk_mb, "auto_resume", r->auto_resume);
        json_t *net = json_loads(r->network[0] ? r->network : "{}", 0, NULL);
        if (info && json_is_object(net)) {
                json_object_set_new(net, "address", json_string(r->address));
                json_object_set(info, "network", net);
        }
        json_decref(net);
        if (info && strcmp(r->status, "paused") != 0)
                json_object_set_new(info, "end_at", json_iso_time(r->end_at));
        else if (info)
                json_object_set_new(info, "end_at", json_null());
        return info;
}

/* --- create -------------------------------------------------------------------------- */

/* Each sandbox has its own range of 65536 host uids: slot k maps root inside to
 * sandbox_uid_base + k * 65536. The node's slots are a bitmap in Redis; a slot is taken with
 * the rest of a sandbox's reservation (sandbox_reserve.lua) and given back when its record is
 * settled, once the sandbox's last process is gone. */
#define UID_RANGE 65536LL

/* The slot also gives the sandbox its address, so there are no more slots than addresses. */
static long long uid_slot_count(const struct warren_config *cfg)
{
        long long n = (4294967295LL - cfg->sandbox_uid_base) / UID_RANGE;
        struct network net;
        char err[NETWORK_ERR_MAX];
        if (network_parse(cfg, &net, err) == 0 && network_slot_count(&net) < n)
                n = network_slot_count(&net);
        return n;
}

/* A cold start's record is due this long after it was made: should the process making it
 * die half-way (kill -9 of a worker or the master), the sweep then stops whatever was
 * started and settles the record. A create that finishes overwrites it. */
#define PROVISIONAL_MS 60000

/* What a create holds from its reservation on: a ready sandbox off the warm pool, or the
 * record of a cold start with its own uid slot. Either way the record in Redis says so, and
 * settling it gives everything back. */
struct reservation {
        char id[SANDBOX_ID_MAX];
        bool pooled;
        pid_t pid; /* a pooled sandbox's init */
        long long slot;
};

static int reservation_refused(const redisReply *r, const char *key_id, char err[SANDBOX_ERR_MAX])
{
        long long verdict = r->element[0]->integer;
        long long a = r->elements > 1 ? r->element[1]->integer : 0,
                  b = r->elements > 2 ? r->element[2]->integer : 0;
        if (verdict == 0) {
                snprintf(err, SANDBOX_ERR_MAX, "this API key already has %lld of its %lld sandboxes", a, b);
                return -EDQUOT;
        }
        if (verdict == -1) {
                snprintf(err, SANDBOX_ERR_MAX, "no key with id '%s'", key_id ? key_id : "");
                return -ENOENT;
        }
        if (verdict == -2)
                snprintf(err, SANDBOX_ERR_MAX, "this node is at capacity (%lld sandboxes); try again later",
                         a);
        else
                snprintf(err, SANDBOX_ERR_MAX, "this node has no free uid range; try again later");
        return -EBUSY;
}

/* Reserves a sandbox for key_id (NULL: one for the warm pool itself) in one round trip. */
static int reserve(struct sandbox_ctx *sc, const char *key_id, bool pool_may_serve, struct reservation *res,
                   char err[SANDBOX_ERR_MAX])
{
        *res = (struct reservation){.slot = -1};
        int r = id_random("", 20, res->id, SANDBOX_ID_MAX);
        unsigned long long pick;
        if (r < 0 || getrandom(&pick, sizeof pick, 0) != (ssize_t)sizeof pick)
                return r < 0 ? r : -errno;
        long long slots = uid_slot_count(sc->cfg);
        char key[64], capacity[24], nslots[24], from[24], due[24];
        snprintf(key, sizeof key, "sandbox:%s", res->id);
        snprintf(capacity, sizeof capacity, "%d", sc->cfg->max_sandboxes_per_node);
        snprintf(nslots, sizeof nslots, "%lld", slots);
        snprintf(from, sizeof from, "%llu", slots > 0 ? pick % (unsigned long long)slots : 0);
        snprintf(due, sizeof due, "%d", PROVISIONAL_MS);
        const char *args[] = {
            key,    res->id, sc->node_id, key_id ? key_id : "", capacity, pool_may_serve ? "1" : "0",
            nslots, from,    due};
        _cleanup_reply_ redisReply *rep = NULL;
        if ((r = redis_client_script(sc->redis, &redis_script_sandbox_reserve, 1, (int)ELEMENTSOF(args), args,
                                     &rep, err)) < 0)
                return r;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
            rep->element[0]->type != REDIS_REPLY_INTEGER) {
                snprintf(err, SANDBOX_ERR_MAX, "sandbox_reserve: unexpected reply");
                return -EPROTO;
        }
        if (rep->element[0]->integer != 1)
                return reservation_refused(rep, key_id, err);
        if (rep->elements != 3) {
                snprintf(err, SANDBOX_ERR_MAX, "sandbox_reserve: unexpected reply");
                return -EPROTO;
        }
        res->pooled = rep->element[1]->type == REDIS_REPLY_STRING && !strcmp(rep->element[1]->str, "pool");
        int pid = 0;
        if (res->pooled &&
            sscanf(rep->element[2]->str, "%31[a-z0-9].%d.%lld", res->id, &pid, &res->slot) != 3) {
                snprintf(err, SANDBOX_ERR_MAX, "sandbox_reserve: bad pool entry");
                return -EPROTO;
        }
        if (!res->pooled)
                res->slot = rep->element[2]->integer;
        res->pid = pid;
        return 0;
}

/* Removes the sandbox's host directory. It holds only empty mount points, the agent's sockets
 * and the link to its template: every mount was made in the sandbox's own mount namespace. */
static void remove_dir(struct sandbox_ctx *sc, const char *id)
{
        char dir[PATH_MAX], path[PATH_MAX + 16];
        sandbox_dir(sc, id, dir, sizeof dir);
        const char *entries[] = {"agent.sock", "files.sock", "root", "disk", "lower", "template"};
        for (size_t i = 0; i < ELEMENTSOF(entries); i++) {
                snprintf(path, sizeof path, "%s/%s", dir, entries[i]);
                if (unlink(path) < 0 && errno == EISDIR)
                        rmdir(path);
                else if (errno == EISDIR || errno == EPERM)
                        rmdir(path);
        }
        rmdir(dir);
}

/* What a sandbox's files.sock needs of the node, found once per process: nginx's group,
 * which may connect to it (0: not found, root only), and the node's secret for its tokens,
 * 32 random bytes in <state>/files.secret that the first process to need them makes. */
static struct {
        const struct warren_config *cfg;
        gid_t group;
        unsigned char secret[32];
        bool secret_ok;
} files_access;

static void files_access_load(void)
{
        struct group g, *found = NULL;
        char buf[4096], path[PATH_MAX], tmp[PATH_MAX + 32];
        if (getgrnam_r(files_access.cfg->socket_group, &g, buf, sizeof buf, &found) == 0 && found)
                files_access.group = found->gr_gid;
        snprintf(path, sizeof path, "%.4000s/files.secret", files_access.cfg->state_dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT) {
                unsigned char fresh[32];
                snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid());
                int w = getrandom(fresh, sizeof fresh, 0) == (ssize_t)sizeof fresh
                            ? open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)
                            : -1;
                if (w >= 0) {
                        bool written = write(w, fresh, sizeof fresh) == (ssize_t)sizeof fresh;
                        close(w);
                        if (written)
                                (void)link(tmp, path); /* EEXIST: another process made it first */
                        unlink(tmp);
                }
                fd = open(path, O_RDONLY | O_CLOEXEC);
        }
        if (fd >= 0) {
                files_access.secret_ok = read(fd, files_access.secret, sizeof files_access.secret) ==
                                         (ssize_t)sizeof files_access.secret;
                close(fd);
        }
}

static void files_access_once(const struct warren_config *cfg)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        files_access.cfg = cfg;
        pthread_once(&once, files_access_load);
}

/* The token a sandbox's agent asks of every request on its files.sock (init_http.h): an HMAC
 * of its id under the node's secret, so it needs storing nowhere and survives a restart.
 * Whoever may connect to the socket without being nginx cannot make it. -EIO when there is
 * no secret. */
static int files_token(struct sandbox_ctx *sc, const char *id, char out[SHA256_HEX_LEN + 1])
{
        files_access_once(sc->cfg);
        if (!files_access.secret_ok)
                return -EIO;
        hmac_sha256_hex(files_access.secret, sizeof files_access.secret, id, strlen(id), out);
        return 0;
}

static gid_t files_group(const struct warren_config *cfg)
{
        files_access_once(cfg);
        return files_access.group;
}

static char **env_array(json_t *env)
{
        size_t n = json_object_size(env);
        char **arr = calloc(n + 1, sizeof *arr);
        const char *k;
        json_t *v;
        size_t i = 0;
        json_object_foreach(env, k, v)
        {
                if (arr && asprintf(&arr[i], "%s=%s", k, json_string_value(v)) >= 0)
                        i++;
        }
        return arr;
}

static void env_free(char **arr)
{
        for (char **e = arr; e && *e; e++)
                free(*e);
        free(arr);
}

/* The cgroup limits for a spec. A sandbox's disk and /dev/shm are tmpfs, whose pages are
 * charged to the memory of whoever writes them, and with no swap they cannot be reclaimed.
 * Under a limit of memory_mb alone, files filling the disk would leave the kernel nothing
 * to do but kill the sandbox's processes, agent and all, instead of answering ENOSPC. So
 * the limit covers both: memory_mb for the processes, plus whatever of the disk and
 * /dev/shm the files do not use. */
static long long memory_cgroup_bytes(long long memory_mb, long long disk_mb)
{
        return ((memory_mb + disk_mb) << 20) + LAUNCH_SHM_BYTES;
}

static struct cgroup_limits limits_for(const struct sandbox_ctx *sc, const struct sandbox_spec *spec)
{
        return (struct cgroup_limits){
            .memory_bytes = memory_cgroup_bytes(spec->memory_mb, spec->disk_mb),
            .pids_max = sc->cfg->sandbox_max_pids,
            .cpu_quota_us = spec->cpu_millis * 100,
            .cpu_period_us = 100000,
        };
}

/* The sandbox's network namespace, then its link, address and rules, made on a thread of
 * their own while the calling thread makes the cgroup and prepares and runs the launch:
 * the launch needs only the namespace, and only at its clone (it waits there for it), and
 * each part takes from half a millisecond to three. */
struct wiring {
        const struct network *net;
        const char *id;
        long long slot;
        int netns, inner_nl; /* the namespace, and a netlink socket inside it */
        int r;
        char err[NETWORK_ERR_MAX];
        pthread_t thread;
        bool threaded;
        pthread_mutex_t lock;
        pthread_cond_t changed;
        bool netns_done; /* netns is the namespace or the error that stopped it */
};

static void wiring_make_netns(struct wiring *w)
{
        int ns = network_sandbox_netns(w->net, w->slot, &w->inner_nl, w->err);
        pthread_mutex_lock(&w->lock);
        w->netns = ns;
        w->netns_done = true;
        pthread_cond_signal(&w->changed);
        pthread_mutex_unlock(&w->lock);
}

static void wire(struct wiring *w)
{
        w->r = w->netns < 0 ? w->netns
                            : network_sandbox_wire(w->net, w->id, w->slot, w->netns, w->inner_nl, w->err);
}

static void *wire_thread(void *arg)
{
        struct wiring *w = arg;
        wiring_make_netns(w);
        wire(w);
        return NULL;
}

/* The default stack: libnftables' parser is deep, and glibc keeps the stacks of ended
 * threads for the next. Without a thread, the namespace is made here and the rest in
 * wiring_finish. */
static void wiring_start(struct wiring *w)
{
        *w = (struct wiring){.net = w->net, .id = w->id, .slot = w->slot, .netns = -1, .inner_nl = -1};
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->changed, NULL);
        w->threaded = pthread_create(&w->thread, NULL, wire_thread, w) == 0;
        if (!w->threaded)
                wiring_make_netns(w);
}

/* The launch's wait for the namespace (launch_spec.netns_await). */
static int wiring_netns(void *arg, char err[LAUNCH_ERR_MAX])
{
        struct wiring *w = arg;
        pthread_mutex_lock(&w->lock);
        while (!w->netns_done)
                pthread_cond_wait(&w->changed, &w->lock);
        pthread_mutex_unlock(&w->lock);
        if (w->netns < 0)
                snprintf(err, LAUNCH_ERR_MAX, "%s", w->err);
        return w->netns;
}

/* Waits for the wiring (or does it here, if no thread could be made) and returns its result;
 * the namespace's descriptors are closed (the sandbox holds the namespace). */
static int wiring_finish(struct wiring *w)
{
        if (w->threaded)
                pthread_join(w->thread, NULL);
        else
                wire(w);
        if (w->netns >= 0)
                close(w->netns);
        if (w->inner_nl >= 0)
                close(w->inner_nl);
        pthread_cond_destroy(&w->changed);
        pthread_mutex_destroy(&w->lock);
        return w->r;
}

static int start_runtime(struct sandbox_ctx *sc, const char *id, const struct sandbox_spec *spec,
                         long long uid_slot, struct cgroup **ret_cg, pid_t *ret_pid,
                         char err[SANDBOX_ERR_MAX])
{
        /* "base" names the newest template; the sandbox keeps the one it resolves to now,
         * and its directory says which (the node's start prunes templates no one uses). */
        char base[PATH_MAX], tpl[PATH_MAX];
        snprintf(base, sizeof base, "%.3000s/templates/base", sc->cfg->state_dir);
        if (!realpath(base, tpl)) {
                int r = -errno;
                snprintf(err, SANDBOX_ERR_MAX, "no sandbox template at %.200s: %s", base, strerror(errno));
                return r;
        }
        char nerr[NETWORK_ERR_MAX], address[16], gateway[16];
        struct network net;
        int r = network_parse(sc->cfg, &net, nerr);
        if (r < 0) {
                snprintf(err, SANDBOX_ERR_MAX, "start sandbox: %.200s", nerr);
                return r;
        }
        network_address_text(&net, uid_slot, address);
        network_gateway_text(&net, gateway);
        struct wiring wiring = {.net = &net, .id = id, .slot = uid_slot};
        wiring_start(&wiring);
        struct cgroup_limits lim = limits_for(sc, spec);
        char cgerr[CGROUP_ERR_MAX];
        struct cgroup *cg = NULL;
        r = cgroup_create(id, &lim, &cg, cgerr);
        if (r < 0) {
                wiring_finish(&wiring);
                snprintf(err, SANDBOX_ERR_MAX, "%s", cgerr);
                return r;
        }
        char dir[PATH_MAX];
        sandbox_dir(sc, id, dir, sizeof dir);
        char **env = env_array(spec->env);
        char token[SHA256_HEX_LEN + 1];
        struct launch_spec ls = {
            .id = id,
            .sandbox_dir = dir,
            .template_dir = tpl,
            .init_path = sc->cfg->init_path,
            .disk_bytes = spec->disk_mb << 20,
            .uid_base = (unsigned)(sc->cfg->sandbox_uid_base + uid_slot * UID_RANGE),
            .env = env,
            .cgroup = cg,
            .own_child = sc->reaps_sandboxes,
            .netns_fd = -1,
            .netns_await = wiring_netns,
            .netns_arg = &wiring,
            .address = address,
            .nameserver = gateway,
            .files_group = files_group(sc->cfg),
            .files_token = files_token(sc, id, token) == 0 ? token : NULL,
        };
        pid_t pid;
        char lerr[LAUNCH_ERR_MAX];
        r = sandbox_launch(&ls, &pid, lerr);
        env_free(env);
        /* Only init runs in the sandbox until the create has answered, so the link, address
         * and rules need only be in by then: the agent starts while the wiring ends. On any
         * failure the caller releases the slot, and with it the link and rules. */
        if (r == 0) {
                char sock[PATH_MAX + 16], aerr[AGENT_ERR_MAX];
                agent_path(sc, id, sock, sizeof sock);
                r = agent_ping(sock, 5000, aerr);
                if (r < 0)
                        snprintf(lerr, sizeof lerr, "%.200s", aerr);
        }
        int wired = wiring_finish(&wiring);
        if (r < 0 || wired < 0) {
                snprintf(err, SANDBOX_ERR_MAX, "start sandbox: %.200s", r < 0 ? lerr : wiring.err);
                cgroup_destroy(cg, cgerr); /* kills the sandbox, if it started */
                cgroup_free(cg);
                return r < 0 ? r : wired;
        }
        *ret_cg = cg;
        *ret_pid = pid;
        return 0;
}

/* The record of a sandbox a key now owns, from what it asked for. */
static void record_from_spec(struct sandbox_ctx *sc, const char *key_id, const char *id,
                             const struct sandbox_spec *spec, pid_t pid, long long uid_slot,
                             struct record *rec)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        *rec = (struct record){.created_at = us / 1000,
                               .created_us = us,
                               .cpu_millis = spec->cpu_millis,
                               .memory_mb = spec->memory_mb,
                               .disk_mb = spec->disk_mb,
                               .pid = pid,
                               .uid_slot = uid_slot,
                               .auto_resume = spec->auto_resume};
        rec->end_at = rec->created_at + spec->timeout_ms;
        snprintf(rec->id, sizeof rec->id, "%s", id);
        snprintf(rec->key_id, sizeof rec->key_id, "%s", key_id);
        snprintf(rec->node_id, sizeof rec->node_id, "%s", sc->node_id);
        snprintf(rec->status, sizeof rec->status, "running");
        snprintf(rec->image, sizeof rec->image, "%s", spec->image);
        _cleanup_free_ char *meta = spec->metadata ? json_dumps(spec->metadata, JSON_COMPACT) : NULL;
        snprintf(rec->metadata, sizeof rec->metadata, "%s", meta ? meta : "{}");
        json_t *policy = spec->network ? json_incref(spec->network) : network_policy_default();
        _cleanup_free_ char *net = json_dumps(policy, JSON_COMPACT);
        json_decref(policy);
        snprintf(rec->network, sizeof rec->network, "%s", net ? net : "{}");
        struct network n;
        char nerr[NETWORK_ERR_MAX];
        if (network_parse(sc->cfg, &n, nerr) == 0)
                network_address_text(&n, uid_slot, rec->address);
}

/* Writes the record and both indexes in one round trip (sandbox_store.lua). */
static int record_store(struct sandbox_ctx *sc, const struct record *rec, char err[SANDBOX_ERR_MAX])
{
        char n[9][32], keys[3][96];
        snprintf(keys[0], sizeof keys[0], "sandbox:%s", rec->id);
        snprintf(keys[1], sizeof keys[1], "sandboxes:key:%s", rec->key_id);
        snprintf(keys[2], sizeof keys[2], "sandboxes:node:%s", rec->node_id);
        snprintf(n[0], 32, "%lld", rec->created_at);
        snprintf(n[1], 32, "%lld", rec->end_at);
        snprintf(n[2], 32, "%lld", rec->cpu_millis);
        snprintf(n[3], 32, "%lld", rec->memory_mb);
        snprintf(n[4], 32, "%lld", rec->disk_mb);
        snprintf(n[5], 32, "%lld", rec->pid);
        snprintf(n[6], 32, "%d", rec->auto_resume ? 1 : 0);
        snprintf(n[7], 32, "%lld", rec->uid_slot);
        snprintf(n[8], 32, "%lld", rec->created_us);
        const char *args[] = {
            keys[0],       keys[1],     keys[2],      rec->id,       n[8],         n[1],     "id",
            rec->id,       "key_id",    rec->key_id,  "node_id",     rec->node_id, "status", rec->status,
            "image",       rec->image,  "created_at", n[0],          "end_at",     n[1],     "cpu_millis",
            n[2],          "memory_mb", n[3],         "disk_mb",     n[4],         "pid",    n[5],
            "auto_resume", n[6],        "metadata",   rec->metadata, "paused_ms",  "0",      "uid_slot",
            n[7],          "network",   rec->network, "address",     rec->address};
        _cleanup_reply_ redisReply *r = NULL;
        int rc = redis_client_script(sc->redis, &redis_script_sandbox_store, 3, (int)ELEMENTSOF(args), args,
                                     &r, err);
        if (rc == 0 && (r->type != REDIS_REPLY_INTEGER || r->integer != 1)) {
                snprintf(err, SANDBOX_ERR_MAX,
                         "the sandbox took too long to start and was reclaimed; try again");
                return -EBUSY; /* a node too loaded to start one in a minute: 503, Retry-After */
        }
        return rc;
}

/* Writes fields of a record read earlier and, when score is given, its place in the node's
 * sweep: in one step, and only while the record exists (sandbox_update.lua). -ENOENT if a
 * delete settled it meanwhile. */
static int record_update(struct sandbox_ctx *sc, const struct record *rec, const char *score,
                         const char *const *fields, int nfields, char err[SANDBOX_ERR_MAX])
{
        char key[64], index[96];
        snprintf(key, sizeof key, "sandbox:%s", rec->id);
        snprintf(index, sizeof index, "sandboxes:node:%s", rec->node_id);
        const char *args[16] = {key, index, rec->id, score ? score : ""};
        if (nfields > (int)ELEMENTSOF(args) - 4)
                return -E2BIG;
        memcpy(args + 4, fields, (size_t)nfields * sizeof *fields);
        _cleanup_reply_ redisReply *r = NULL;
        int rc = redis_client_script(sc->redis, &redis_script_sandbox_update, 2, 4 + nfields, args, &r, err);
        if (rc < 0)
                return rc;
        if (r->type != REDIS_REPLY_INTEGER || r->integer != 1) {
                snprintf(err, SANDBOX_ERR_MAX, "no sandbox with id '%s'", rec->id);
                return -ENOENT;
        }
        return 0;
}

/* A cold start of the reserved sandbox: its cgroup and runtime, made for this spec. On
 * failure the caller settles the reservation, which removes the rest. */
static int start_cold(struct sandbox_ctx *sc, const struct sandbox_spec *spec, struct reservation *res,
                      char err[SANDBOX_ERR_MAX])
{
        struct cgroup *cg = NULL;
        /* Whatever errno the runtime failed with, it is the node's failure, not a bad request
         * or a missing sandbox: the caller answers 500 with err. */
        if (start_runtime(sc, res->id, spec, res->slot, &cg, &res->pid, err) < 0)
                return -EIO;
        cgroup_free(cg);
        return 0;
}

static bool pool_serves(struct sandbox_ctx *sc, const struct sandbox_spec *spec);
static int stop_runtime(struct sandbox_ctx *sc, const char *id, char err[SANDBOX_ERR_MAX]);
static int pool_fit(struct sandbox_ctx *sc, const char *id, const struct sandbox_spec *spec,
                    char err[SANDBOX_ERR_MAX]);

/* Gives back a reservation whose start failed: its record says what to stop and give back.
 * Settled already (the sweep took it for lost), only the runtime is left to stop. */
static void undo_reservation(struct sandbox_ctx *sc, const char *id)
{
        char err[SANDBOX_ERR_MAX];
        if (sandbox_destroy(sc, NULL, id, err) == -ENOENT)
                stop_runtime(sc, id, err);
}

/* Reserves a sandbox for the key: a ready one from the warm pool if one fits, else the record
 * of a cold start. A pooled runtime that died, or will not take its configuration, is thrown
 * away (its reservation with it) and the next one tried. */
static int reserve_for_key(struct sandbox_ctx *sc, const char *key_id, const struct sandbox_spec *spec,
                           struct reservation *res, char err[SANDBOX_ERR_MAX])
{
        for (int attempt = 0;; attempt++) {
                int r = reserve(sc, key_id, attempt < 3 && pool_serves(sc, spec), res, err);
                if (r < 0 || !res->pooled)
                        return r;
                if (sc->pool_keeper > 0)
                        kill(sc->pool_keeper, SIGUSR1);
                char ferr[SANDBOX_ERR_MAX];
                if (pool_fit(sc, res->id, spec, ferr) == 0)
                        return 0;
                sandbox_destroy(sc, NULL, res->id, ferr);
        }
}

int sandbox_create(struct sandbox_ctx *sc, const char *key_id, const struct sandbox_spec *spec,
                   json_t **ret_info, char err[SANDBOX_ERR_MAX])
{
        struct reservation res;
        int r = reserve_for_key(sc, key_id, spec, &res, err);
        if (r < 0)
                return r;
        if (!res.pooled && (r = start_cold(sc, spec, &res, err)) < 0)
                goto settle;
        /* Every runtime starts with the default policy (internet on, no lists). */
        char nerr[NETWORK_ERR_MAX];
        if (spec->network && (r = network_policy_apply(sc->cfg, res.id, spec->network, nerr)) < 0) {
                snprintf(err, SANDBOX_ERR_MAX, "%s", nerr);
                r = -EIO;
                goto settle;
        }
        struct record rec;
        record_from_spec(sc, key_id, res.id, spec, res.pid, res.slot, &rec);
        if ((r = record_store(sc, &rec, err)) < 0)
                goto settle;
        *ret_info = record_json(&rec);
        return *ret_info ? 0 : -ENOMEM;

settle:
        undo_reservation(sc, res.id);
        return r;
}

int sandbox_get(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_info,
                char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        json_t *info = record_json(&rec);
        if (!info)
                return -ENOMEM;
        *ret_info = info;
        return 0;
}

/* --- list ---------------------------------------------------------------------------- */

static bool metadata_matches(const char *meta_text, json_t *filter)
{
        if (!filter || json_object_size(filter) == 0)
                return true;
        json_t *meta = json_loads(meta_text, 0, NULL);
        const char *k;
        json_t *v;
        bool ok = meta != NULL;
        json_object_foreach(filter, k, v)
        {
                json_t *have = json_object_get(meta, k);
                if (!ok || !json_is_string(have) ||
                    strcmp(json_string_value(have), json_string_value(v)) != 0)
                        ok = false;
        }
        json_decref(meta);
        return ok;
}

int sandbox_list(struct sandbox_ctx *sc, const char *key_id, const char *state, json_t *filter,
                 const char *cursor, int limit, json_t **ret_page, char err[SANDBOX_ERR_MAX])
{
        /* The cursor is "<created_us>.<id>": listing resumes strictly after it. */
        long long from = 0;
        char after_id[SANDBOX_ID_MAX] = "";
        if (cursor && *cursor && sscanf(cursor, "%lld.%31[a-z0-9]", &from, after_id) != 2) {
                snprintf(err, SANDBOX_ERR_MAX, "cursor is not one this API gave out");
                return -EINVAL;
        }
        _cleanup_reply_ redisReply *ids = NULL;
        int r = redis_client_cmd(sc->redis, &ids, err, "ZRANGEBYSCORE sandboxes:key:%s %lld +inf WITHSCORES",
                                 key_id, from);
        if (r < 0)
                return r;
        json_t *items = json_array();
        char next[64] = "";
        bool skipping = after_id[0] != 0;
        for (size_t i = 0; i + 1 < ids->elements; i += 2) {
                const char *id = ids->element[i]->str;
                long long score = strtoll(ids->element[i + 1]->str, NULL, 10);
                if (skipping) {
                        if (score == from && strcmp(id, after_id) <= 0)
                                continue;
                        skipping = false;
                }
                struct record rec;
                char lerr[SANDBOX_ERR_MAX];
                if (record_load(sc, key_id, id, &rec, lerr) < 0)
                        continue;
                if ((state && strcmp(state, rec.status) != 0) || !metadata_matches(rec.metadata, filter))
                        continue;
                if ((int)json_array_size(items) == limit) {
                        break; /* one more exists: the page ends at the last one taken */
                }
                json_array_append_new(items, record_json(&rec));
                snprintf(next, sizeof next, "%lld.%s", score, id);
                if ((int)json_array_size(items) == limit && i + 2 >= ids->elements)
                        next[0] = 0;
        }
        if ((int)json_array_size(items) < limit)
                next[0] = 0;
        *ret_page = json_pack("{s:o, s:o}", "sandboxes", items, "next_cursor",
                              next[0] ? json_string(next) : json_null());
        return 0;
}

/* --- destroy ------------------------------------------------------------------------- */

/* Kills the runtime (through its cgroup: no pid can be mistaken) and removes what it had on
 * the host. Safe to call for a runtime that is already gone; fails (and keeps the directory)
 * while any of its processes is still there. */
static int stop_runtime(struct sandbox_ctx *sc, const char *id, char err[SANDBOX_ERR_MAX])
{
        struct cgroup *cg = NULL;
        char cgerr[CGROUP_ERR_MAX];
        int r = cgroup_open(id, &cg, cgerr);
        if (r == 0) {
                /* Each attempt is bounded (a few seconds); a loaded host may need more than one
                 * before the work is handed to the sweep. */
                for (int attempt = 1; (r = cgroup_destroy(cg, cgerr)) < 0 && attempt < 3; attempt++)
                        ;
                cgroup_free(cg);
        }
        if (r < 0 && r != -ENOENT) {
                snprintf(err, SANDBOX_ERR_MAX, "stop sandbox %s: %.200s", id, cgerr);
                return r;
        }
        remove_dir(sc, id);
        return 0;
}

/* The sandbox's previews go with it: snippets, records, and nginx's routes to its address. */
static void previews_forget(struct sandbox_ctx *sc, const struct record *rec)
{
        char err[PREVIEW_ERR_MAX];
        redisReply *r = NULL;
        long long exposed = 0;
        if (redis_client_cmd(sc->redis, &r, err, "DEL exposed:%s", rec->id) == 0) {
                exposed = r->integer;
                freeReplyObject(r);
        }
        if (strcmp(rec->node_id, sc->node_id) != 0)
                return;
        if (preview_remove(sc->cfg, rec->id, 0) == 0) {
                if (exposed > 0)
                        log_event(LOG_LEVEL_WARN, "an exposed sandbox had no preview files to remove",
                                  json_pack("{s:s}", "sandbox", rec->id));
                return;
        }
        /* A worker answers the delete once nginx no longer routes to the address (a request
         * would wait on it for a connect timeout); the master reloads on its next turn. */
        long long gen = preview_reload_request(sc->redis, sc->node_id, sc->pool_keeper, err);
        if (gen > 0 && sc->pool_keeper > 0)
                preview_reload_wait(sc->redis, sc->node_id, gen, 5000, err);
}

/* Settling a record happens once, and survives a crash half-way: the caller that claims it
 * removes the sandbox's network rules and link (idempotent, and only while the uid slot, and
 * with it the address, is still held), then drops the record and gives back what it held in
 * one step. A caller killed in between leaves a claimed record; the node's sweep, which
 * retries a delete STOPPING_MS after it began (or the pool audit, for a sandbox being handed
 * out), takes a claim over once SETTLE_STALE_MS old. */
#define SETTLE_STALE_MS 30000

/* How long a delete that found another caller settling the same record waits for it, so
 * that its answer still means the quota is back. */
#define SETTLE_WAIT_MS 5000

static int settle_script(struct sandbox_ctx *sc, const struct redis_script *script, const char *id,
                         const char *arg, const char *token, char err[SANDBOX_ERR_MAX])
{
        char key[64];
        snprintf(key, sizeof key, "sandbox:%s", id);
        const char *args[] = {key, arg, token};
        _cleanup_reply_ redisReply *r = NULL;
        int rc = redis_client_script(sc->redis, script, 1, (int)ELEMENTSOF(args), args, &r, err);
        if (rc < 0)
                return rc;
        return r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -EPROTO;
}

static void settle_wait(struct sandbox_ctx *sc, const char *id)
{
        char err[REDIS_ERR_MAX];
        for (int waited = 0; waited < SETTLE_WAIT_MS; waited += 10) {
                _cleanup_reply_ redisReply *r = NULL;
                if (redis_client_cmd(sc->redis, &r, err, "EXISTS sandbox:%s", id) < 0 || r->integer == 0)
                        return;
                usleep(10000);
        }
}

/* A caller stalled past SETTLE_STALE_MS may have had its claim taken over, and the record
 * settled since: the slot, and with it the address, may be another sandbox's by now, so it
 * must not remove that address's rules. */
static bool settle_claim_is_mine(struct sandbox_ctx *sc, const char *id, const char *token)
{
        char err[REDIS_ERR_MAX];
        _cleanup_reply_ redisReply *r = NULL;
        return redis_client_cmd(sc->redis, &r, err, "HGET sandbox:%s settling_by", id) == 0 &&
               r->type == REDIS_REPLY_STRING && strcmp(r->str, token) == 0;
}

static int forget(struct sandbox_ctx *sc, const struct record *rec, char err[SANDBOX_ERR_MAX])
{
        char stale[24], token[24];
        unsigned long long pick = 0;
        if (getrandom(&pick, sizeof pick, 0) != (ssize_t)sizeof pick)
                pick = (unsigned long long)now_ms() ^ (unsigned long long)getpid() << 40;
        snprintf(stale, sizeof stale, "%d", SETTLE_STALE_MS);
        snprintf(token, sizeof token, "%016llx", pick);
        int claim = settle_script(sc, &redis_script_sandbox_settle_claim, rec->id, stale, token, err);
        /* The master (the sweep, the pool) does not wait: its loop reaps and reloads too. */
        if (claim == 2 && !sc->reaps_sandboxes)
                settle_wait(sc, rec->id);
        if (claim != 1)
                return claim < 0 ? claim : 0;
        if (rec->uid_slot >= 0 && strcmp(rec->node_id, sc->node_id) == 0) {
                if (!settle_claim_is_mine(sc, rec->id, token))
                        return 0;
                network_sandbox_release(sc->cfg, rec->id, rec->uid_slot);
        }
        int r = settle_script(sc, &redis_script_sandbox_settle, rec->id, rec->id, token, err);
        return r < 0 ? r : 0;
}

/* A runtime that could not be stopped keeps its record, marked deleting and due at once:
 * the node's sweep tries again every second, and the quota is released only when it is
 * really gone. */
static int mark_deleting(struct sandbox_ctx *sc, const struct record *rec, char err[SANDBOX_ERR_MAX])
{
        /* What it was stays known: settling gives back what that status held. */
        const char *fields[] = {"status", "deleting", "status_before", rec->status};
        record_update(sc, rec, "0", fields, strcmp(rec->status, "deleting") != 0 ? 4 : 2, err);
        return -EINPROGRESS;
}

/* From here until its record is settled, a runtime being deleted looks lost to the sweep
 * (its cgroup empties first): the note keeps the sweep from settling it at the same time,
 * which would have this delete answer before the quota is given back. */
static void note_stopping(struct sandbox_ctx *sc, const char *id)
{
        char key[64], now[24], err[REDIS_ERR_MAX];
        snprintf(key, sizeof key, "sandbox:%s", id);
        snprintf(now, sizeof now, "%lld", now_ms());
        const char *args[] = {key, now};
        _cleanup_reply_ redisReply *r = NULL;
        redis_client_script(sc->redis, &redis_script_sandbox_stopping, 1, (int)ELEMENTSOF(args), args, &r,
                            err);
}

int sandbox_destroy(struct sandbox_ctx *sc, const char *key_id, const char *id, char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        note_stopping(sc, id);
        if (stop_runtime(sc, id, err) < 0)
                return mark_deleting(sc, &rec, err);
        /* The previews go with the runtime, before the record is settled. */
        previews_forget(sc, &rec);
        return forget(sc, &rec, err);
}

/* --- lifetime, pause, resume --------------------------------------------------------- */

/* Loads a sandbox that can still take work: one being deleted takes none (-EAGAIN), and its
 * deadline stays where the deleting retry put it. */
static int record_load_active(struct sandbox_ctx *sc, const char *key_id, const char *id, struct record *ret,
                              char err[SANDBOX_ERR_MAX])
{
        int r = record_load(sc, key_id, id, ret, err);
        if (r < 0 || strcmp(ret->status, "deleting") != 0)
                return r;
        snprintf(err, SANDBOX_ERR_MAX, "sandbox '%s' is being deleted", ret->id);
        return -EAGAIN;
}

int sandbox_address(struct sandbox_ctx *sc, const char *key_id, const char *id, char address[16],
                    char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load_active(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        if (strcmp(rec.node_id, sc->node_id) != 0) {
                snprintf(err, SANDBOX_ERR_MAX, "sandbox '%s' runs on node %s, not on this one", id,
                         rec.node_id);
                return -EREMOTE;
        }
        snprintf(address, 16, "%s", rec.address);
        return 0;
}

int sandbox_files_socket(struct sandbox_ctx *sc, const char *key_id, const char *id, char *buf, size_t size,
                         char token[SHA256_HEX_LEN + 1], char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load_active(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        if (strcmp(rec.status, "running") != 0 || strcmp(rec.node_id, sc->node_id) != 0) {
                snprintf(err, SANDBOX_ERR_MAX, "sandbox '%s' is %s on node %s", id, rec.status, rec.node_id);
                return -EAGAIN;
        }
        agent_socket_path(sc, id, "files.sock", buf, size);
        struct stat st;
        /* Started before agents took files, or nginx's group was not found then (the socket is
         * root's alone): the worker carries the transfer. */
        if (stat(buf, &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_gid == 0) {
                snprintf(err, SANDBOX_ERR_MAX, "sandbox '%s' has no files socket nginx may use", id);
                return -ENOENT;
        }
        if (files_token(sc, id, token) < 0) {
                snprintf(err, SANDBOX_ERR_MAX, "the node's files.secret is missing");
                return -EIO;
        }
        return 0;
}

int sandbox_set_timeout(struct sandbox_ctx *sc, const char *key_id, const char *id, long long timeout_ms,
                        json_t **ret_info, char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load_active(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        char end_at[24], timeout[24];
        snprintf(end_at, sizeof end_at, "%lld", now_ms() + timeout_ms);
        snprintf(timeout, sizeof timeout, "%lld", timeout_ms);
        /* A paused sandbox does not age: the new lifetime starts at resume. */
        bool paused = strcmp(rec.status, "paused") == 0;
        const char *fields[] = {paused ? "remaining_ms" : "end_at", paused ? timeout : end_at};
        if ((r = record_update(sc, &rec, paused ? NULL : end_at, fields, 2, err)) < 0)
                return r;
        return sandbox_get(sc, key_id, id, ret_info, err);
}

int sandbox_set_network(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t *policy,
                        json_t **ret_info, char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load_active(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        char nerr[NETWORK_ERR_MAX];
        if ((r = network_policy_apply(sc->cfg, id, policy, nerr)) < 0) {
                snprintf(err, SANDBOX_ERR_MAX, "%s", nerr);
                return -EIO;
        }
        _cleanup_free_ char *text = json_dumps(policy, JSON_COMPACT);
        const char *fields[] = {"network", text ? text : "{}"};
        if ((r = record_update(sc, &rec, NULL, fields, 2, err)) < 0)
                return r;
        return sandbox_get(sc, key_id, id, ret_info, err);
}

static int freeze(const char *id, int frozen, char err[SANDBOX_ERR_MAX])
{
        struct cgroup *cg = NULL;
        char cgerr[CGROUP_ERR_MAX];
        int r = cgroup_open(id, &cg, cgerr);
        if (r == 0)
                r = cgroup_freeze(cg, frozen, cgerr);
        cgroup_free(cg);
        if (r < 0)
                snprintf(err, SANDBOX_ERR_MAX, "%s", cgerr);
        return r;
}

int sandbox_pause(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_info,
                  char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load_active(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        if (strcmp(rec.status, "paused") == 0)
                return sandbox_get(sc, key_id, id, ret_info, err);
        if ((r = freeze(id, 1, err)) < 0) {
                /* Not left half-frozen: what stopped runs again, and the pause can be retried. */
                char terr[SANDBOX_ERR_MAX];
                freeze(id, 0, terr);
                return r;
        }
        long long now = now_ms();
        char at[24], remaining[24];
        snprintf(at, sizeof at, "%lld", now);
        snprintf(remaining, sizeof remaining, "%lld", rec.end_at > now ? rec.end_at - now : 0);
        const char *fields[] = {"status", "paused", "paused_at", at, "remaining_ms", remaining};
        /* Never due while paused, but still the node's to watch. */
        if ((r = record_update(sc, &rec, "+inf", fields, (int)ELEMENTSOF(fields), err)) < 0)
                return r;
        return sandbox_get(sc, key_id, id, ret_info, err);
}

int sandbox_resume(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_info,
                   char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        if (strcmp(rec.status, "paused") != 0)
                return ret_info ? sandbox_get(sc, key_id, id, ret_info, err) : 0;
        if ((r = freeze(id, 0, err)) < 0)
                return r;
        long long now = now_ms();
        char end_at[24], paused_ms[24];
        snprintf(end_at, sizeof end_at, "%lld", now + rec.remaining_ms);
        snprintf(paused_ms, sizeof paused_ms, "%lld", rec.paused_ms + (now - rec.paused_at));
        const char *fields[] = {"status", "running", "end_at", end_at, "paused_ms", paused_ms};
        if ((r = record_update(sc, &rec, end_at, fields, (int)ELEMENTSOF(fields), err)) < 0)
                return r;
        return ret_info ? sandbox_get(sc, key_id, id, ret_info, err) : 0;
}

/* --- metrics and exec ---------------------------------------------------------------- */

/* True if pid is a process in the sandbox's cgroup (its /proc/<pid>/cgroup names it). */
static bool pid_is_sandboxes(long long pid, const char *parent, const char *id)
{
        char path[64], line[512], want[256];
        snprintf(path, sizeof path, "/proc/%lld/cgroup", pid);
        snprintf(want, sizeof want, "/%.128s/%.31s\n", parent, id);
        FILE *f = fopen(path, "re");
        bool found = false;
        while (f && !found && fgets(line, sizeof line, f))
                found = strstr(line, want) != NULL;
        if (f)
                fclose(f);
        return found;
}

int sandbox_metrics(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t **ret_metrics,
                    char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        struct cgroup *cg = NULL;
        struct cgroup_stats st;
        char cgerr[CGROUP_ERR_MAX];
        r = cgroup_open(id, &cg, cgerr);
        if (r == 0)
                r = cgroup_stats(cg, &st, cgerr);
        cgroup_free(cg);
        if (r < 0) {
                snprintf(err, SANDBOX_ERR_MAX, "%s", cgerr);
                return r;
        }
        /* The writable layer's tmpfs, seen through the sandbox's root from the host. */
        char root[64];
        snprintf(root, sizeof root, "/proc/%lld/root/", rec.pid);
        struct statvfs vfs;
        long long disk_used = -1, disk_total = rec.disk_mb << 20;
        /* Only while the recorded pid is still this sandbox's: pids are reused. */
        if (pid_is_sandboxes(rec.pid, sc->cfg->cgroup_parent, id) && statvfs(root, &vfs) == 0)
                disk_used = (long long)(vfs.f_blocks - vfs.f_bfree) * (long long)vfs.f_frsize;
        /* used and peak count the files' pages too (the disk is tmpfs): cgroup_limit_bytes is
         * what they are held to, limit_bytes what processes were promised. */
        *ret_metrics = json_pack(
            "{s:s, s:s, s:{s:f, s:f}, s:{s:I, s:I, s:I, s:I}, s:{s:I, s:I}, s:{s:I, s:I}}", "id", id,
            "status", rec.status, "cpu", "usage_seconds", (double)st.cpu_usage_ns / 1e9, "limit",
            (double)rec.cpu_millis / 1000.0, "memory", "used_bytes", (json_int_t)st.memory_bytes,
            "peak_bytes", (json_int_t)st.memory_peak_bytes, "limit_bytes", (json_int_t)(rec.memory_mb << 20),
            "cgroup_limit_bytes", (json_int_t)memory_cgroup_bytes(rec.memory_mb, rec.disk_mb), "disk",
            "used_bytes", (json_int_t)disk_used, "limit_bytes", (json_int_t)disk_total, "pids", "current",
            (json_int_t)st.pids, "limit", (json_int_t)sc->cfg->sandbox_max_pids);
        return *ret_metrics ? 0 : -ENOMEM;
}

int sandbox_exec(struct sandbox_ctx *sc, const char *key_id, const char *id, json_t *request,
                 const char *stdin_data, size_t stdin_len, size_t max_output, int deadline_ms,
                 const struct agent_stream *stream, struct agent_result *ret, char err[SANDBOX_ERR_MAX])
{
        struct record rec;
        int r = record_load_active(sc, key_id, id, &rec, err);
        if (r < 0)
                return r;
        if (strcmp(rec.status, "paused") == 0) {
                if (!rec.auto_resume) {
                        snprintf(err, SANDBOX_ERR_MAX, "sandbox '%s' is paused; resume it first", id);
                        return -EAGAIN;
                }
                if ((r = sandbox_resume(sc, key_id, id, NULL, err)) < 0)
                        return r;
        }
        char sock[PATH_MAX + 16], aerr[AGENT_ERR_MAX];
        agent_path(sc, id, sock, sizeof sock);
        r = agent_exec(sock, request, stdin_data, stdin_len, max_output, deadline_ms, stream, ret, aerr);
        if (r < 0)
                snprintf(err, SANDBOX_ERR_MAX, "%s", aerr);
        return r;
}

/* --- the sweep ----------------------------------------------------------------------- */

/* Destroys one sandbox the node found due or dead; an index entry without a record (a
 * crash between the two writes) is dropped along with whatever runtime it names. */
static int sweep_one(struct sandbox_ctx *sc, const char *id)
{
        char err[SANDBOX_ERR_MAX];
        int r = sandbox_destroy(sc, NULL, id, err);
        if (r == -ENOENT && id_is_valid(id, SANDBOX_ID_MAX - 1) && stop_runtime(sc, id, err) == 0) {
                redisReply *rep = NULL;
                if (redis_client_cmd(sc->redis, &rep, err, "ZREM sandboxes:node:%s %s", sc->node_id, id) == 0)
                        freeReplyObject(rep);
        }
        return r == 0;
}

/* A sandbox whose cgroup is empty has lost its runtime (killed from outside, a crash, a
 * reboot of the node): it is destroyed like an expired one. */
static bool runtime_is_dead(const char *id)
{
        struct cgroup *cg = NULL;
        char cgerr[CGROUP_ERR_MAX];
        if (cgroup_open(id, &cg, cgerr) < 0)
                return true;
        int populated = cgroup_populated(cg);
        cgroup_free(cg);
        return populated == 0;
}

/* A sandbox whose runtime is still being started (or handed out from the pool) has no
 * process yet, or not for long: it is left to its maker until its record falls due. One a
 * delete is stopping is left to that delete for a minute (should it die, the sweep then
 * takes over). */
#define STOPPING_MS 60000

static bool being_made_or_stopped(struct sandbox_ctx *sc, const char *id)
{
        char err[REDIS_ERR_MAX];
        _cleanup_reply_ redisReply *r = NULL;
        if (redis_client_cmd(sc->redis, &r, err, "HMGET sandbox:%s status stopping_at", id) < 0 ||
            r->type != REDIS_REPLY_ARRAY || r->elements != 2)
                return true; /* unknown: the next sweep looks again */
        const redisReply *status = r->element[0], *stopping = r->element[1];
        if (stopping->type == REDIS_REPLY_STRING && now_ms() - strtoll(stopping->str, NULL, 10) < STOPPING_MS)
                return true;
        return status->type == REDIS_REPLY_STRING &&
               (!strcmp(status->str, "creating") || !strcmp(status->str, "claiming"));
}

/* The ids of what is on the host, sorted, each once, and whether the node's index has it. */
struct host_ids {
        struct host_id {
                char id[SANDBOX_ID_MAX]; /* first: an entry compares as its id */
                bool indexed;
        } * ids;
        size_t n, cap;
        bool short_of_memory; /* an id could not be added: the list is not the whole truth */
};

static void host_ids_add(const char *id, void *arg)
{
        struct host_ids *set = arg;
        if (!id_is_valid(id, SANDBOX_ID_MAX - 1))
                return;
        if (set->n == set->cap) {
                size_t cap = set->cap ? set->cap * 2 : 64;
                void *grown = realloc(set->ids, cap * sizeof *set->ids);
                if (!grown) {
                        set->short_of_memory = true;
                        return;
                }
                set->ids = grown;
                set->cap = cap;
        }
        set->ids[set->n] = (struct host_id){0};
        snprintf(set->ids[set->n++].id, SANDBOX_ID_MAX, "%s", id);
}

static int id_compare(const void *a, const void *b)
{
        return strcmp(a, b);
}

/* Notes that the node's index has id (nothing, if the host has nothing of it). */
static void host_ids_mark_indexed(struct host_ids *set, const char *id)
{
        struct host_id *found = set->n ? bsearch(id, set->ids, set->n, sizeof *set->ids, id_compare) : NULL;
        if (found)
                found->indexed = true;
}

/* The ids of every cgroup and directory this node's sandboxes have on the host. False if the
 * list may be incomplete or wrong; nothing is then taken for an orphan. */
static bool host_ids_list(struct sandbox_ctx *sc, struct host_ids *set)
{
        char cgerr[CGROUP_ERR_MAX], dir[PATH_MAX];
        if (cgroup_list(host_ids_add, set, cgerr) < 0)
                return false;
        snprintf(dir, sizeof dir, "%.3000s/sandboxes", sc->cfg->state_dir);
        DIR *d = opendir(dir);
        bool complete = d || errno == ENOENT;
        struct dirent *e;
        while (d && (e = readdir(d)))
                if (e->d_type == DT_DIR)
                        host_ids_add(e->d_name, set);
        if (d)
                closedir(d);
        /* Sorted, and each once: a v1 cgroup is listed once per hierarchy. */
        if (set->n > 0) {
                qsort(set->ids, set->n, sizeof *set->ids, id_compare);
                size_t kept = 1;
                for (size_t i = 1; i < set->n; i++)
                        if (strcmp(set->ids[i].id, set->ids[kept - 1].id) != 0)
                                set->ids[kept++] = set->ids[i];
                set->n = kept;
        }
        return complete && !set->short_of_memory;
}

static bool on_host(struct sandbox_ctx *sc, const char *id)
{
        struct cgroup *cg = NULL;
        char cgerr[CGROUP_ERR_MAX], dir[PATH_MAX];
        if (cgroup_open(id, &cg, cgerr) == 0) {
                cgroup_free(cg);
                return true;
        }
        sandbox_dir(sc, id, dir, sizeof dir);
        return access(dir, F_OK) == 0;
}

/* An id must be found orphaned by every sweep for this long before its runtime is stopped:
 * a Redis that comes back behind, or fails over, has a moment to catch up. At most a few are
 * stopped per sweep, as each stop may take seconds of the master's loop. */
#define ORPHAN_GRACE_MS   5000
#define ORPHANS_MAX       64
#define ORPHANS_PER_SWEEP 4

/* The orphans the previous sweep found, with when each was first found (the master's). */
static struct orphan {
        char id[SANDBOX_ID_MAX];
        long long since;
} orphans[ORPHANS_MAX];
static size_t orphans_n;

static long long orphan_since(const char *id, long long now)
{
        for (size_t i = 0; i < orphans_n; i++)
                if (strcmp(orphans[i].id, id) == 0)
                        return orphans[i].since;
        return now;
}

/* Stops runtimes that no record accounts for. Every cgroup and directory of a sandbox is made
 * after its record (sandbox_reserve.lua) and removed before it goes, so one that was on the
 * host before the node's index was read, is not in that index and has no record either, is
 * no sandbox's: what a crash, or a maker and a delete crossing in a way the books did not
 * foresee, left behind. Said in the log, as it should not happen. (Hence also: two nodes on
 * one host need cgroup_parents of their own.) */
static int stop_orphans(struct sandbox_ctx *sc, const struct host_ids *host)
{
        struct orphan found[ORPHANS_MAX];
        size_t found_n = 0;
        long long now = now_ms();
        int n = 0, tried = 0;
        for (size_t i = 0; i < host->n; i++) {
                const char *id = host->ids[i].id;
                char err[SANDBOX_ERR_MAX];
                _cleanup_reply_ redisReply *r = NULL;
                if (host->ids[i].indexed ||
                    redis_client_cmd(sc->redis, &r, err, "EXISTS sandbox:%s", id) < 0 || r->integer != 0 ||
                    !on_host(sc, id))
                        continue; /* a sandbox, or one its delete has cleared since the listing */
                long long since = orphan_since(id, now);
                if (now - since >= ORPHAN_GRACE_MS && tried < ORPHANS_PER_SWEEP) {
                        tried++;
                        int stopped = stop_runtime(sc, id, err);
                        log_event(stopped == 0 ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR,
                                  "a runtime without a record",
                                  json_pack("{s:s, s:s}", "sandbox_id", id, "outcome",
                                            stopped == 0 ? "stopped" : err));
                        if (stopped == 0 && !on_host(sc, id)) {
                                n++;
                                continue;
                        }
                        since = now; /* not gone: tried again, and said again, a grace later */
                }
                if (found_n < ORPHANS_MAX) {
                        snprintf(found[found_n].id, sizeof found[found_n].id, "%s", id);
                        found[found_n++].since = since;
                }
        }
        memcpy(orphans, found, found_n * sizeof *found);
        orphans_n = found_n;
        return n;
}

int sandbox_sweep(struct sandbox_ctx *sc)
{
        char err[SANDBOX_ERR_MAX];
        /* First: see stop_orphans. */
        struct host_ids host = {0};
        bool host_known = host_ids_list(sc, &host);
        _cleanup_reply_ redisReply *all = NULL;
        int n = 0;
        if (redis_client_cmd(sc->redis, &all, err, "ZRANGE sandboxes:node:%s 0 -1 WITHSCORES", sc->node_id) <
            0)
                goto out;
        long long now = now_ms();
        for (size_t i = 0; i + 1 < all->elements; i += 2) {
                const char *id = all->element[i]->str, *score = all->element[i + 1]->str;
                host_ids_mark_indexed(&host, id);
                bool due = strcmp(score, "inf") != 0 && strtoll(score, NULL, 10) <= now;
                if (due || (runtime_is_dead(id) && !being_made_or_stopped(sc, id)))
                        n += sweep_one(sc, id);
        }
        if (host_known)
                n += stop_orphans(sc, &host);
out:
        free(host.ids);
        return n;
}

/* --- the warm pool ------------------------------------------------------------------- */

/* Ready sandboxes, started with the node's defaults and owned by no key, wait in the list
 * pool:<node> as "<id>.<pid>.<uid slot>". Their records say status "pooled" (no key can see
 * them) and sit in the node's sweep index at +inf, so a pooled runtime that dies is cleaned
 * up like any other. A create that fits the defaults takes one in its reservation (an LPOP
 * in sandbox_reserve.lua: no two workers get the same), gives it the key's environment and
 * limits, and tells the pool's
 * keeper (the master) to start a replacement, off the create's path. */

static struct sandbox_spec pool_spec(const struct warren_config *cfg)
{
        return (struct sandbox_spec){.image = "base",
                                     .cpu_millis = cfg->sandbox_default_cpu_millis,
                                     .memory_mb = cfg->sandbox_default_memory_mb,
                                     .disk_mb = cfg->sandbox_default_disk_mb};
}

/* Gives a pooled sandbox the spec's limits (where they differ from the defaults it started
 * with) and environment. */
static int pool_fit(struct sandbox_ctx *sc, const char *id, const struct sandbox_spec *spec,
                    char err[SANDBOX_ERR_MAX])
{
        struct sandbox_spec defaults = pool_spec(sc->cfg);
        if (spec->cpu_millis != defaults.cpu_millis || spec->memory_mb != defaults.memory_mb) {
                struct cgroup_limits lim = limits_for(sc, spec);
                struct cgroup *cg = NULL;
                char cgerr[CGROUP_ERR_MAX];
                int r = cgroup_open(id, &cg, cgerr);
                if (r == 0)
                        r = cgroup_set_limits(cg, &lim, cgerr);
                cgroup_free(cg);
                if (r < 0) {
                        snprintf(err, SANDBOX_ERR_MAX, "%s", cgerr);
                        return r;
                }
        }
        char sock[PATH_MAX + 16], aerr[AGENT_ERR_MAX];
        agent_path(sc, id, sock, sizeof sock);
        int r = agent_configure(sock, spec->env, 2000, aerr);
        if (r < 0)
                snprintf(err, SANDBOX_ERR_MAX, "%s", aerr);
        return r;
}

static bool pool_serves(struct sandbox_ctx *sc, const struct sandbox_spec *spec)
{
        return sc->cfg->warm_pool_size > 0 && strcmp(spec->image, "base") == 0 &&
               spec->disk_mb == sc->cfg->sandbox_default_disk_mb;
}

/* Starts one pooled sandbox; its record and sweep entry exist before it is offered. */
static int pool_add(struct sandbox_ctx *sc, char err[SANDBOX_ERR_MAX])
{
        struct sandbox_spec spec = pool_spec(sc->cfg);
        struct reservation res;
        int r = reserve(sc, NULL, false, &res, err);
        if (r < 0)
                return r;
        if ((r = start_cold(sc, &spec, &res, err)) < 0)
                goto settle;
        /* Offered only once its record is whole; never due once offered. The record is written
         * only while it exists, so a settled one is not brought back as a stray hash. */
        struct record rec = {.uid_slot = res.slot};
        snprintf(rec.id, sizeof rec.id, "%s", res.id);
        snprintf(rec.node_id, sizeof rec.node_id, "%s", sc->node_id);
        char pid[24];
        snprintf(pid, sizeof pid, "%d", (int)res.pid);
        const char *fields[] = {"pid", pid};
        r = record_update(sc, &rec, "+inf", fields, (int)ELEMENTSOF(fields), err);
        redisReply *rep = NULL;
        if (r == 0)
                r = redis_client_cmd(sc->redis, &rep, err, "RPUSH pool:%s %s.%d.%lld", sc->node_id, res.id,
                                     (int)res.pid, res.slot);
        if (r == 0) {
                freeReplyObject(rep);
                return 0;
        }
settle:
        undo_reservation(sc, res.id);
        return r;
}

int sandbox_pool_fill(struct sandbox_ctx *sc, char err[SANDBOX_ERR_MAX])
{
        _cleanup_reply_ redisReply *len = NULL;
        int r = redis_client_cmd(sc->redis, &len, err, "LLEN pool:%s", sc->node_id);
        if (r < 0)
                return r;
        long long missing = sc->cfg->warm_pool_size - len->integer;
        /* One at a time: the master that calls this also reaps and replaces workers. */
        if (missing > 0 && (r = pool_add(sc, err)) < 0)
                return r;
        /* A smaller pool after a reload: the extra ones go. */
        for (long long have = len->integer; have > sc->cfg->warm_pool_size; have--)
                sandbox_pool_drain(sc, 1);
        return missing > 1 ? (int)(missing - 1) : 0;
}

int sandbox_pool_drain(struct sandbox_ctx *sc, int max)
{
        int n = 0;
        for (; n < max; n++) {
                char err[SANDBOX_ERR_MAX], id[SANDBOX_ID_MAX];
                _cleanup_reply_ redisReply *r = NULL;
                if (redis_client_cmd(sc->redis, &r, err, "LPOP pool:%s", sc->node_id) < 0 ||
                    r->type != REDIS_REPLY_STRING || sscanf(r->str, "%31[a-z0-9]", id) != 1)
                        break;
                sandbox_destroy(sc, NULL, id, err);
        }
        return n;
}

int sandbox_pool_audit(struct sandbox_ctx *sc)
{
        char err[SANDBOX_ERR_MAX];
        /* Every sandbox of the node is looked at, not only those all due: a master killed
         * while it started one leaves a record that is still provisional. The master is the
         * only maker of pooled sandboxes and this runs in its loop, so none is half-made now. */
        _cleanup_reply_ redisReply *list = NULL, *all = NULL;
        if (redis_client_cmd(sc->redis, &list, err, "LRANGE pool:%s 0 -1", sc->node_id) < 0 ||
            redis_client_cmd(sc->redis, &all, err, "ZRANGE sandboxes:node:%s 0 -1", sc->node_id) < 0)
                return 0;
        int n = 0;
        for (size_t i = 0; i < all->elements; i++) {
                const char *id = all->element[i]->str;
                size_t len = strlen(id);
                bool listed = false;
                for (size_t j = 0; j < list->elements && !listed; j++)
                        listed =
                            strncmp(list->element[j]->str, id, len) == 0 && list->element[j]->str[len] == '.';
                if (listed)
                        continue;
                /* Pooled and off the list: lost. Claiming for a minute: its worker died while it
                 * handed the sandbox out (a claim takes milliseconds). */
                _cleanup_reply_ redisReply *f = NULL;
                if (redis_client_cmd(sc->redis, &f, err, "HMGET sandbox:%s status claimed_at", id) < 0 ||
                    f->elements != 2 || f->element[0]->type != REDIS_REPLY_STRING)
                        continue;
                const char *status = f->element[0]->str;
                long long claimed =
                    f->element[1]->type == REDIS_REPLY_STRING ? strtoll(f->element[1]->str, NULL, 10) : 0;
                if (!strcmp(status, "pooled") || (!strcmp(status, "claiming") && now_ms() - claimed > 60000))
                        n += sandbox_destroy(sc, NULL, id, err) == 0;
        }
        return n;
}

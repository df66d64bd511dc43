/* Configuration loading. Every key is described once, in the table below: its name, where
 * it lives in struct warren_config and how it is parsed. The file, the environment and the
 * defaults all go through that one table. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

enum config_type { CONFIG_STRING, CONFIG_INT, CONFIG_SIZE, CONFIG_LLONG };

struct config_key {
        const char *name;
        enum config_type type;
        size_t offset;
        size_t size; /* for strings: the buffer size */
        long long min, max;
};

#define STR(field)                                                                                           \
        CONFIG_STRING, offsetof(struct warren_config, field), sizeof(((struct warren_config *)0)->field), 0, 0
#define INT(field, lo, hi)   CONFIG_INT, offsetof(struct warren_config, field), sizeof(int), lo, hi
#define SIZE(field, lo, hi)  CONFIG_SIZE, offsetof(struct warren_config, field), sizeof(size_t), lo, hi
#define LLONG(field, lo, hi) CONFIG_LLONG, offsetof(struct warren_config, field), sizeof(long long), lo, hi

static const struct config_key config_keys[] = {
    {"node_id", STR(node_id)},
    {"state_dir", STR(state_dir)},
    {"socket_path", STR(socket_path)},
    {"socket_group", STR(socket_group)},
    {"redis_url", STR(redis_url)},
    {"log_level", STR(log_level)},
    {"workers", INT(workers, 0, 256)},
    {"threads", INT(threads, 0, 256)},
    {"drain_timeout_s", INT(drain_timeout_s, 0, 3600)},
    {"redis_timeout_ms", INT(redis_timeout_ms, 10, 60000)},
    {"default_rate", INT(default_rate, 1, 1000000000)},
    {"default_burst", INT(default_burst, 1, 1000000000)},
    {"default_max_sandboxes", INT(default_max_sandboxes, 0, 1000000)},
    {"default_max_databases", INT(default_max_databases, 0, 1000000)},
    {"default_max_services", INT(default_max_services, 0, 1000000)},
    {"init_path", STR(init_path)},
    {"cgroup_parent", STR(cgroup_parent)},
    {"sandbox_uid_base", LLONG(sandbox_uid_base, 100000, 3000000000LL)},
    {"max_sandboxes_per_node", INT(max_sandboxes_per_node, 0, 100000)},
    {"sandbox_default_memory_mb", INT(sandbox_default_memory_mb, 16, 1048576)},
    {"sandbox_max_memory_mb", INT(sandbox_max_memory_mb, 16, 1048576)},
    {"sandbox_default_disk_mb", INT(sandbox_default_disk_mb, 16, 1048576)},
    {"sandbox_max_disk_mb", INT(sandbox_max_disk_mb, 16, 1048576)},
    {"sandbox_default_cpu_millis", INT(sandbox_default_cpu_millis, 10, 1024000)},
    {"sandbox_default_timeout_ms", LLONG(sandbox_default_timeout_ms, 1000, 86400000)},
    {"sandbox_max_pids", INT(sandbox_max_pids, 16, 1000000)},
    {"warm_pool_size", INT(warm_pool_size, 0, 256)},
    {"stream_keepalive_ms", INT(stream_keepalive_ms, 100, 600000)},
    {"network_bridge", STR(network_bridge)},
    {"network_subnet", STR(network_subnet)},
    {"network_blocked", STR(network_blocked)},
    {"dns_servers", STR(dns_servers)},
    {"preview_domain", STR(preview_domain)},
    {"preview_port", INT(preview_port, 1, 65535)},
};

void config_defaults(struct warren_config *cfg)
{
        memset(cfg, 0, sizeof *cfg);
        snprintf(cfg->state_dir, sizeof cfg->state_dir, "/var/lib/warren");
        snprintf(cfg->socket_group, sizeof cfg->socket_group, "www-data");
        snprintf(cfg->log_level, sizeof cfg->log_level, "info");
        snprintf(cfg->cgroup_parent, sizeof cfg->cgroup_parent, "warren");
        cfg->workers = 0;
        cfg->threads = 64;
        cfg->drain_timeout_s = 30;
        cfg->redis_timeout_ms = 1000;
        cfg->default_rate = 50;
        cfg->default_burst = 100;
        cfg->default_max_sandboxes = 10;
        cfg->default_max_databases = 5;
        cfg->default_max_services = 5;
        cfg->sandbox_uid_base = 1000000000LL;
        cfg->max_sandboxes_per_node = 500;
        cfg->warm_pool_size = 2;
        cfg->stream_keepalive_ms = 15000;
        cfg->sandbox_default_memory_mb = 512;
        cfg->sandbox_max_memory_mb = 8192;
        cfg->sandbox_default_disk_mb = 1024;
        cfg->sandbox_max_disk_mb = 20480;
        cfg->sandbox_default_cpu_millis = 1000;
        cfg->sandbox_default_timeout_ms = 300000;
        cfg->sandbox_max_pids = 1024;
        snprintf(cfg->network_bridge, sizeof cfg->network_bridge, "warren0");
        snprintf(cfg->network_subnet, sizeof cfg->network_subnet, "10.88.0.0/16");
        snprintf(cfg->preview_domain, sizeof cfg->preview_domain, "warren.localhost");
        cfg->preview_port = 443;
}

static const struct config_key *config_key_find(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (strcmp(config_keys[i].name, name) == 0)
                        return &config_keys[i];
        return NULL;
}

/* Accepts a plain number or one with a k/m/g suffix (binary multiples) for sizes. */
static int parse_number(const char *s, enum config_type type, long long *ret)
{
        errno = 0;
        char *end;
        long long v = strtoll(s, &end, 10);
        if (errno || end == s)
                return -EINVAL;
        if (type == CONFIG_SIZE && *end) {
                int shift = 0;
                switch (tolower((unsigned char)*end)) {
                case 'k':
                        shift = 10;
                        break;
                case 'm':
                        shift = 20;
                        break;
                case 'g':
                        shift = 30;
                        break;
                default:
                        return -EINVAL;
                }
                end++;
                if (v > (1LL << (62 - shift)))
                        return -ERANGE;
                v <<= shift;
        }
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int config_set(struct warren_config *cfg, const char *name, const char *value, const char *origin,
                      char err[CONFIG_ERR_MAX])
{
        const struct config_key *k = config_key_find(name);
        if (!k) {
                snprintf(err, CONFIG_ERR_MAX, "%s: unknown key '%s'", origin, name);
                return -EINVAL;
        }
        char *field = (char *)cfg + k->offset;
        if (k->type == CONFIG_STRING) {
                if (strlen(value) >= k->size) {
                        snprintf(err, CONFIG_ERR_MAX, "%s: value of '%s' is too long", origin, name);
                        return -EINVAL;
                }
                memcpy(field, value, strlen(value) + 1);
                return 0;
        }
        long long v;
        if (parse_number(value, k->type, &v) < 0 || v < k->min || v > k->max) {
                snprintf(err, CONFIG_ERR_MAX, "%s: '%s' must be a number from %lld to %lld, not '%s'", origin,
                         name, k->min, k->max, value);
                return -EINVAL;
        }
        if (k->type == CONFIG_INT)
                *(int *)field = (int)v;
        else if (k->type == CONFIG_LLONG)
                *(long long *)field = v;
        else
                *(size_t *)field = (size_t)v;
        return 0;
}

static char *trim(char *s)
{
        while (isspace((unsigned char)*s))
                s++;
        char *e = s + strlen(s);
        while (e > s && isspace((unsigned char)e[-1]))
                *--e = 0;
        return s;
}

static int config_read_file(struct warren_config *cfg, const char *path, char err[CONFIG_ERR_MAX])
{
        FILE *f = fopen(path, "re");
        if (!f) {
                if (errno == ENOENT)
                        return 0;
                int r = -errno;
                snprintf(err, CONFIG_ERR_MAX, "open %s: %s", path, strerror(errno));
                return r;
        }
        char line[PATH_MAX + 128];
        int lineno = 0, r = 0;
        while (r == 0 && fgets(line, sizeof line, f)) {
                lineno++;
                char *s = trim(line);
                if (*s == 0 || *s == '#')
                        continue;
                char *eq = strchr(s, '=');
                char origin[PATH_MAX + 32];
                snprintf(origin, sizeof origin, "%s:%d", path, lineno);
                if (!eq) {
                        snprintf(err, CONFIG_ERR_MAX, "%.200s: expected 'key = value'", origin);
                        r = -EINVAL;
                        break;
                }
                *eq = 0;
                r = config_set(cfg, trim(s), trim(eq + 1), origin, err);
        }
        fclose(f);
        return r;
}

static int config_read_env(struct warren_config *cfg, char err[CONFIG_ERR_MAX])
{
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                char env[80] = "WARREN_";
                size_t n = strlen(env);
                for (const char *p = config_keys[i].name; *p && n < sizeof env - 1; p++)
                        env[n++] = (char)toupper((unsigned char)*p);
                env[n] = 0;
                const char *v = getenv(env);
                if (v && *v) { /* an empty variable is unset, not an empty value */
                        int r = config_set(cfg, config_keys[i].name, v, env, err);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* Values that depend on others are filled in last, so a file that sets only state_dir
 * moves every path with it. */
static void config_derive(struct warren_config *cfg)
{
        if (!cfg->socket_path[0])
                snprintf(cfg->socket_path, sizeof cfg->socket_path, "%.*s/run/warrend.sock", PATH_MAX - 32,
                         cfg->state_dir);
        if (!cfg->redis_url[0])
                snprintf(cfg->redis_url, sizeof cfg->redis_url, "unix:%.*s/redis/redis.sock", PATH_MAX - 32,
                         cfg->state_dir);
        if (!cfg->init_path[0]) {
                char self[PATH_MAX];
                ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
                if (n > 0) {
                        self[n] = 0;
                        char *slash = strrchr(self, '/');
                        if (slash)
                                *slash = 0;
                        snprintf(cfg->init_path, sizeof cfg->init_path, "%.*s/warren-init", PATH_MAX - 16,
                                 self);
                }
        }
        if (cfg->workers == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                cfg->workers = n > 0 ? (int)n : 1;
        }
        /* Automatic: about 1,600 request threads on the node, from 64 to 256 per worker. A
         * thread waiting on a stream costs a little memory and no cpu. The ceiling is
         * libfcgi's: it select()s on descriptors, so a worker must stay below 1,024 of them
         * (each thread may hold three: nginx's connection, Redis and a sandbox). */
        if (cfg->threads == 0) {
                int per = 1600 / cfg->workers;
                cfg->threads = per < 64 ? 64 : per > 256 ? 256 : per;
        }
}

int config_load(const char *path, struct warren_config *ret_cfg, char err[CONFIG_ERR_MAX])
{
        struct warren_config cfg;
        config_defaults(&cfg);
        int r = 0;
        if (path)
                r = config_read_file(&cfg, path, err);
        if (r == 0)
                r = config_read_env(&cfg, err);
        if (r < 0)
                return r;
        /* Sandbox paths are built under state_dir with room for ids and file names. */
        if (strlen(cfg.state_dir) > 3000 || cfg.state_dir[0] != '/') {
                snprintf(err, CONFIG_ERR_MAX, "state_dir must be an absolute path of at most 3000 bytes");
                return -EINVAL;
        }
        config_derive(&cfg);
        *ret_cfg = cfg;
        return 0;
}

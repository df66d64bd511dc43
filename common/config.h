/* Node configuration: one file of `key = value` lines with documented defaults
 * (etc/warren.conf), each key overridable by the environment as WARREN_<KEY>. */
#pragma once

#include <limits.h>
#include <stddef.h>

#define CONFIG_ERR_MAX 256

struct warren_config {
        char node_id[64];
        char state_dir[PATH_MAX];
        char socket_path[PATH_MAX]; /* FastCGI unix socket nginx talks to */
        char socket_group[64];      /* group allowed to connect (nginx's workers) */
        char redis_url[PATH_MAX];   /* unix:/path or redis://[:password@]host:port[/db] */
        char log_level[16];
        int workers;          /* worker processes; 0 = one per core */
        int threads;          /* request threads per worker */
        int drain_timeout_s;  /* how long SIGTERM waits for in-flight requests */
        int redis_timeout_ms; /* connect and command timeout */
        int default_rate;     /* new keys: requests per second */
        int default_burst;    /* new keys: bucket size */
        int default_max_sandboxes;
        int default_max_databases;
        int default_max_services;
        /* Sandboxes */
        char init_path[PATH_MAX];   /* warren-init; empty: beside the warrend binary */
        char cgroup_parent[128];    /* the node's cgroup subtree: <controller>/<parent>/<sandbox> */
        long long sandbox_uid_base; /* host uid of root inside sandboxes (65536 ids mapped) */
        int max_sandboxes_per_node;
        int sandbox_default_memory_mb, sandbox_max_memory_mb;
        int sandbox_default_disk_mb, sandbox_max_disk_mb;
        int sandbox_default_cpu_millis;
        long long sandbox_default_timeout_ms;
        int sandbox_max_pids;
        int warm_pool_size;      /* ready sandboxes kept for creates that match the defaults */
        int stream_keepalive_ms; /* silence after which a stream sends a comment line */
        /* Networks and previews */
        char network_bridge[16];    /* the node's bridge; also names its nftables tables */
        char network_subnet[32];    /* sandboxes' addresses; the first is the gateway */
        char network_blocked[1024]; /* more CIDRs no sandbox may reach, comma-separated */
        char dns_servers[256];      /* the forwarder's upstreams, comma-separated; "": the host's */
        char preview_domain[128];   /* previews answer at <port>-<id>.<preview_domain> */
        int preview_port;           /* the HTTPS port preview URLs name; 443 is left out */
};

/* Fills cfg with defaults, then the file at path (if path is non-NULL and exists), then the
 * environment. On failure writes a reason to err and returns -EINVAL (or -errno). */
int config_load(const char *path, struct warren_config *ret_cfg, char err[CONFIG_ERR_MAX]);
void config_defaults(struct warren_config *cfg);

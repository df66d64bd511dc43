/* Every route Warren serves, in one table: method, pattern, handler, the scope a key needs,
 * the largest body accepted, and flags. Compat families add their rows with their own
 * error family. */
#include "api.h"
#include "keys.h"

#define KiB (1024)

const struct route routes[] = {
    {"GET", "/healthz", api_health_get, 0, 0, ROUTE_NO_AUTH, NULL},
    {"GET", "/v1/usage", api_usage_get, 0, 0, 0, NULL},
    {"POST", "/v1/keys", api_keys_create, SCOPE_ADMIN, 64 * KiB, 0, NULL},
    {"GET", "/v1/keys", api_keys_list, SCOPE_ADMIN, 0, 0, NULL},
    {"GET", "/v1/keys/:id", api_keys_get, SCOPE_ADMIN, 0, 0, NULL},
    {"DELETE", "/v1/keys/:id", api_keys_revoke, SCOPE_ADMIN, 0, 0, NULL},
    {"POST", "/v1/sandboxes", api_sandboxes_create, SCOPE_SANDBOXES, 256 * KiB, ROUTE_EMPTY_BODY_OK, NULL},
    {"GET", "/v1/sandboxes", api_sandboxes_list, SCOPE_SANDBOXES, 0, 0, NULL},
    {"GET", "/v1/sandboxes/:id", api_sandboxes_get, SCOPE_SANDBOXES, 0, 0, NULL},
    {"DELETE", "/v1/sandboxes/:id", api_sandboxes_delete, SCOPE_SANDBOXES, 0, 0, NULL},
    {"POST", "/v1/sandboxes/:id/timeout", api_sandboxes_timeout, SCOPE_SANDBOXES, 4 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/network", api_sandboxes_network, SCOPE_SANDBOXES, 64 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/expose", api_ports_expose, SCOPE_SANDBOXES, 4 * KiB, 0, NULL},
    {"GET", "/v1/sandboxes/:id/expose", api_ports_list, SCOPE_SANDBOXES, 0, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/list", api_fs_list, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/stat", api_fs_stat, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/info", api_fs_info, SCOPE_SANDBOXES, 8 * 1024 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/mkdir", api_fs_mkdir, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/move", api_fs_move, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/remove", api_fs_remove, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/chmod", api_fs_chmod, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/read", api_fs_read, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/read_bytes", api_fs_read_bytes, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    /* 32 MiB of content, as text (with room for escapes) or as base64 */
    {"POST", "/v1/sandboxes/:id/fs/write", api_fs_write, SCOPE_SANDBOXES, 48 * 1024 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/write_bytes", api_fs_write_bytes, SCOPE_SANDBOXES, 44 * 1024 * KiB, 0,
     NULL},
    {"POST", "/v1/sandboxes/:id/fs/watch", api_fs_watch, SCOPE_SANDBOXES, 16 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/watch/:wid/poll", api_fs_watch_poll, SCOPE_SANDBOXES, 4 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"POST", "/v1/sandboxes/:id/fs/watch/:wid/stop", api_fs_watch_stop, SCOPE_SANDBOXES, 4 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"POST", "/v1/sandboxes/:id/fs/export", api_fs_export, SCOPE_SANDBOXES, 8 * 1024 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/import", api_fs_import, SCOPE_SANDBOXES, 44 * 1024 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/git/clone", api_git_clone, SCOPE_SANDBOXES, 64 * KiB, 0, NULL},
    /* Raw transfers stream: no size limit but the sandbox's disk. */
    {"GET", "/v1/sandboxes/:id/fs/raw", api_fs_download, SCOPE_SANDBOXES, 0, 0, NULL},
    {"PUT", "/v1/sandboxes/:id/fs/raw", api_fs_upload, SCOPE_SANDBOXES, (size_t)1 << 50, ROUTE_RAW_BODY,
     NULL},
    /* Asked by nginx before a raw transfer (an auth subrequest with the client's method):
     * whether the agent takes it directly. Not reachable from outside (nginx.conf). */
    {"GET", "/v1/sandboxes/:id/fs/raw-route", api_fs_raw_route, SCOPE_SANDBOXES, 0, ROUTE_EMPTY_BODY_OK,
     NULL},
    {"PUT", "/v1/sandboxes/:id/fs/raw-route", api_fs_raw_route, SCOPE_SANDBOXES, 0, ROUTE_EMPTY_BODY_OK,
     NULL},
    {"DELETE", "/v1/sandboxes/:id/expose/:port", api_ports_close, SCOPE_SANDBOXES, 0, 0, NULL},
    /* Reached through a preview's own host (nginx maps /.warren/auth there); the code is the
     * credential. */
    {"GET", "/v1/previews/auth", api_previews_auth, 0, 0, ROUTE_NO_AUTH, NULL},
    {"GET", "/v1/previews/route", api_previews_route, 0, 0, ROUTE_NO_AUTH, NULL},
    {"POST", "/v1/sandboxes/:id/pause", api_sandboxes_pause, SCOPE_SANDBOXES, 4 * KiB, ROUTE_EMPTY_BODY_OK,
     NULL},
    {"POST", "/v1/sandboxes/:id/resume", api_sandboxes_resume, SCOPE_SANDBOXES, 4 * KiB, ROUTE_EMPTY_BODY_OK,
     NULL},
    {"GET", "/v1/sandboxes/:id/metrics", api_sandboxes_metrics, SCOPE_SANDBOXES, 0, 0, NULL},
    /* Bodies past a route's limit are 413 naming it: a 10 MB command is refused here. */
    {"POST", "/v1/sandboxes/:id/shell", api_sandboxes_shell, SCOPE_SANDBOXES, 1024 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/run", api_sandboxes_run, SCOPE_SANDBOXES, 8 * 1024 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/run/stream", api_sandboxes_run_stream, SCOPE_SANDBOXES, 8 * 1024 * KiB, 0,
     NULL},
    {"POST", "/v1/sandboxes/:id/contexts", api_contexts_create, SCOPE_SANDBOXES, 256 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"GET", "/v1/sandboxes/:id/contexts", api_contexts_list, SCOPE_SANDBOXES, 0, 0, NULL},
    {"POST", "/v1/sandboxes/:id/contexts/:ctx/restart", api_contexts_restart, SCOPE_SANDBOXES, 4 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"POST", "/v1/sandboxes/:id/contexts/:ctx/interrupt", api_contexts_interrupt, SCOPE_SANDBOXES, 4 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"DELETE", "/v1/sandboxes/:id/contexts/:ctx", api_contexts_delete, SCOPE_SANDBOXES, 0, 0, NULL},
    {"POST", "/v1/sandboxes/:id/commands", api_commands_start, SCOPE_SANDBOXES, 1024 * KiB, 0, NULL},
    {"GET", "/v1/sandboxes/:id/commands", api_commands_list, SCOPE_SANDBOXES, 0, 0, NULL},
    {"POST", "/v1/sandboxes/:id/commands/:cid/logs", api_commands_logs, SCOPE_SANDBOXES, 4 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"POST", "/v1/sandboxes/:id/commands/:cid/kill", api_commands_kill, SCOPE_SANDBOXES, 4 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"POST", "/v1/sandboxes/:id/pty", api_pty_start, SCOPE_SANDBOXES, 1024 * KiB, ROUTE_EMPTY_BODY_OK, NULL},
    /* base64 of at most 1 MiB of input */
    {"POST", "/v1/sandboxes/:id/pty/:pty/input", api_pty_input, SCOPE_SANDBOXES, 1400 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/pty/:pty/output", api_pty_output, SCOPE_SANDBOXES, 4 * KiB,
     ROUTE_EMPTY_BODY_OK, NULL},
    {"POST", "/v1/sandboxes/:id/pty/:pty/resize", api_pty_resize, SCOPE_SANDBOXES, 4 * KiB, 0, NULL},
    {"POST", "/v1/sandboxes/:id/pty/:pty/kill", api_pty_kill, SCOPE_SANDBOXES, 4 * KiB, ROUTE_EMPTY_BODY_OK,
     NULL},
};
const size_t routes_count = sizeof routes / sizeof routes[0];

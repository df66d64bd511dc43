/* File operations inside the sandbox ("fs" requests). Each one is served by a child of
 * warren-init that takes over the connection and becomes the requesting user first, so
 * that paths resolve in the sandbox's own root and mount namespace (a symlink to "/etc"
 * is the sandbox's /etc, never the host's), permissions are that user's, and what it
 * creates is that user's; a large transfer never holds up warren-init's loop.
 *
 * Request: {"op":"fs", "action":…, "path":…, "user":"user"|"root", …}
 *   list {depth?}           → RESULT {entries: [entry…], truncated}
 *   stat                    → RESULT entry
 *   info {paths}            → RESULT {entries: [entry | {path, exists:false}]}
 *   read {max_bytes}        → STDOUT chunks, RESULT {size}       (regular files only)
 *   download                → STARTED {size, mode, name}, STDOUT chunks, RESULT {size}
 *   write {mode?, parents?} ← STDIN chunks, STDIN_EOF; → RESULT entry
 *   mkdir {parents?}        → RESULT {path, created}
 *   move {destination, overwrite?} → RESULT entry (at the destination)
 *   remove {recursive?}     → RESULT {path, removed}
 *   chmod {mode}            → RESULT entry
 * entry: {name, path, type: file|dir|symlink|other, size, mode ("0644"), permissions
 * ("rw-r--r--"), owner, group, modified_at, symlink_target?}
 * Errors: ERROR {error, code}, code one of not_found, permission_denied, not_a_file,
 * is_a_directory, not_a_directory, exists, not_empty, no_space, too_large, bad_request,
 * io_error. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

/* Takes the request if it is an fs one: forks the child that answers on conn and returns
 * true (the caller closes its copy of conn); false for any other op. */
bool fs_handle(int conn, const char *op, json_t *req);

/* Serves one connection from files.sock (init_http.h) in a child; the caller closes its
 * copy of fd. */
void fs_handle_http(int fd);

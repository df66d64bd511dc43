/* Previews: an exposed port of a sandbox served by the node's nginx at
 * <port>-<id>.<preview_domain>, through two generated files per port, read by one server
 * block (nginx.conf.in):
 *
 *   <state>/nginx/generated/<id>-<port>.conf   the port's upstream (the sandbox's address)
 *   <state>/nginx/generated/<id>-<port>.map    its host's line in $warren_preview_access:
 *                                             "public", or the MD5 of its token for nginx's
 *                                             secure_link check, never the token itself
 *   <state>/nginx/generated/00-generation.conf the generation nginx has loaded, answered on
 *                                             its control socket
 *
 * Reloads are the master's (preview_reload_pending): a worker that wrote or removed a
 * snippet raises node:<id>:nginx_want and signals the master, which reloads nginx once for
 * every request that came in meanwhile and, once nginx answers with the new generation,
 * sets node:<id>:nginx_done. So a burst of exposes costs a few reloads, and an expose
 * answers only when its URL works. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "redis_client.h"

#define PREVIEW_ERR_MAX   256
#define PREVIEW_TOKEN_LEN 43 /* 32 random bytes, base64url */

/* Writes (or replaces) the files for port of sandbox id at address. token_md5 is the
 * base64url MD5 of the token (NULL: a public preview). */
int preview_write(const struct warren_config *cfg, const char *id, int port, const char *address,
                  const char *token_md5, char err[PREVIEW_ERR_MAX]);

/* Removes one port's files (port > 0) or all of the sandbox's (port 0). Returns how many
 * ports went. */
int preview_remove(const struct warren_config *cfg, const char *id, int port);

/* Asks for a reload (master: the process to signal, 0: none) and returns the generation that
 * will hold the change. */
long long preview_reload_request(struct redis_client *redis, const char *node_id, pid_t master,
                                 char err[PREVIEW_ERR_MAX]);

/* Waits until nginx runs generation gen or later; -ETIMEDOUT after timeout_ms. */
int preview_reload_wait(struct redis_client *redis, const char *node_id, long long gen, int timeout_ms,
                        char err[PREVIEW_ERR_MAX]);

/* The master: reloads nginx if a request is pending, waits for it to take the new
 * configuration and records it. Returns 1 if it reloaded, 0 if nothing was pending. */
int preview_reload_pending(const struct warren_config *cfg, struct redis_client *redis, const char *node_id,
                           char err[PREVIEW_ERR_MAX]);

/* The master, at start: whatever generation was asked for is the one nginx loads next. */
void preview_generation_reset(const struct warren_config *cfg, struct redis_client *redis,
                              const char *node_id);

/* The base64url MD5 of a token: what nginx's secure_link compares. */
int preview_token_md5(const char *token, char md5_b64[32]);

/* A new token and its base64url MD5. */
int preview_token_new(char token[PREVIEW_TOKEN_LEN + 1], char md5_b64[32]);

/* The preview's URL: https://<port>-<id>.<domain>[:<port>]/ */
void preview_url(const struct warren_config *cfg, const char *id, int port, char *out, size_t len);

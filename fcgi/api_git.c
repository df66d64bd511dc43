/* POST /v1/sandboxes/:id/git/clone {url, path?, branch?, commit?, username?, password?,
 * depth?, user?} → {path, commit, branch}. The clone is made inside the sandbox by
 * warren-git (libgit2), run as the user like any command: with the sandbox's network,
 * filesystem and permissions. Credentials go to it on stdin, never in argv, environment,
 * logs or the clone's configuration. A depth makes a shallow clone. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "cleanup.h"
#include "json_fields.h"

#define CLONE_TIMEOUT_MS (10 * 60 * 1000)

static const struct json_field clone_fields[] = {
    {"url", FIELD_STRING, true},     {"path", FIELD_STRING, false},     {"branch", FIELD_STRING, false},
    {"commit", FIELD_STRING, false}, {"username", FIELD_STRING, false}, {"password", FIELD_STRING, false},
    {"depth", FIELD_INTEGER, false}, {"user", FIELD_STRING, false},
};

static int status_of(const char *code)
{
        if (!strcmp(code, "auth_failed"))
                return 403;
        if (!strcmp(code, "repository_not_found") || !strcmp(code, "branch_not_found") ||
            !strcmp(code, "commit_not_found"))
                return 404;
        if (!strcmp(code, "path_not_empty"))
                return 409;
        if (!strcmp(code, "clone_failed"))
                return 502;
        return 400; /* bad_request, unknown_host */
}

static bool has_nul(json_t *s)
{
        return json_is_string(s) && strlen(json_string_value(s)) != json_string_length(s);
}

int api_git_clone(struct http_ctx *ctx)
{
        char err[JSON_ERR_MAX];
        if (json_fields_check(ctx->body, clone_fields, ELEMENTSOF(clone_fields), false, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        const char *user, *cwd;
        if (api_check_user_and_cwd(ctx->body, &user, &cwd, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        const char *url = json_string_value(json_object_get(ctx->body, "url"));
        if (strncmp(url, "https://", 8) && strncmp(url, "http://", 7) && strncmp(url, "git://", 6))
                return http_respond_error(ctx, 400, "field 'url': an https://, http:// or git:// URL");
        const char *fields[] = {"url", "path", "branch", "commit", "username", "password"};
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (has_nul(json_object_get(ctx->body, fields[i])))
                        return http_respond_error(ctx, 400, "field '%s' contains a NUL byte", fields[i]);
        /* 0: absent (the whole history); INT_MAX is libgit2's "unshallow". */
        long long depth;
        if (json_int_field(ctx->body, "depth", 1, INT_MAX - 1, 0, &depth, err) < 0)
                return http_respond_error(ctx, 400, "%s (leave it out for the whole history)", err);
        json_t *in = json_object();
        if (depth)
                json_object_set_new(in, "depth", json_integer(depth));
        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (json_is_string(json_object_get(ctx->body, fields[i])))
                        json_object_set(in, fields[i], json_object_get(ctx->body, fields[i]));
        char *stdin_text = json_dumps(in, JSON_COMPACT);
        json_decref(in);
        if (!stdin_text)
                return http_respond_error(ctx, 500, "out of memory");
        json_t *req =
            json_pack("{s:s, s:[s], s:s, s:i, s:i, s:b}", "op", "exec", "argv", "/opt/warren/bin/warren-git",
                      "user", user, "timeout_ms", CLONE_TIMEOUT_MS, "max_output", 65536, "stdin", 1);
        struct agent_result res;
        int r = api_agent_call(ctx, req, stdin_text, strlen(stdin_text), 65536, CLONE_TIMEOUT_MS + 5000, NULL,
                               &res);
        memset(stdin_text, 0, strlen(stdin_text)); /* the password, if any */
        free(stdin_text);
        if (r <= 0)
                return r;
        if (res.timed_out) {
                agent_result_clear(&res);
                return http_respond_error(ctx, 504, "the clone did not finish within %d minutes",
                                          CLONE_TIMEOUT_MS / 60000);
        }
        json_t *out = json_loadb(res.out, res.out_len, JSON_DISABLE_EOF_CHECK, NULL);
        const char *code = json_string_value(json_object_get(out, "code"));
        if (!json_is_object(out) || (res.exit_code != 0 && !code)) {
                json_decref(out);
                int status = res.error_code[0] ? 500 : 502;
                http_respond_error(ctx, status, "the clone broke off: %.200s",
                                   res.err_len ? res.err : res.error);
                agent_result_clear(&res);
                return 0;
        }
        agent_result_clear(&res);
        if (code) {
                int status = status_of(code);
                http_respond_error(ctx, status, "%s", json_string_value(json_object_get(out, "error")));
                json_decref(out);
                return 0;
        }
        return http_respond_json(ctx, 200, out);
}

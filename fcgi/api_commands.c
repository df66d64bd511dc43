/* Background commands and ptys: /v1/sandboxes/:id/commands… and /v1/sandboxes/:id/pty….
 *
 * They live in the sandbox (warren-init keeps them and their output, init_jobs.h), so a
 * command started through one worker is followed and killed through any other, on any
 * node. Each call here is one short request to the sandbox's agent. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "api.h"
#include "cleanup.h"
#include "config.h"
#include "json_fields.h"
#include "sandbox.h"

#define MAX_INPUT_BYTES (1 << 20) /* pty input per call, decoded */
#define MAX_LOG_BYTES   (1 << 20) /* per stream per logs call */
#define DAY_MS          (24LL * 3600 * 1000)
#define MAX_TTY_DIM     1000
#define AGENT_WAIT_MS   10000

/* Command and pty ids are warren-init's: a letter and a number. */
static bool job_id_ok(const char *id)
{
        size_t n = strlen(id);
        if (n < 2 || n > 15)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
                        return false;
        return true;
}

/* The :cid or :pty of the route, or NULL once a 404 has been answered. */
static const char *job_param(struct http_ctx *ctx, const char *name)
{
        const char *id = route_param(&ctx->params, name);
        if (id && job_id_ok(id))
                return id;
        http_respond_error(ctx, 404, "no %s with that id", strcmp(name, "pty") == 0 ? "pty" : "command");
        return NULL;
}

/* Sends req (consumed) to the sandbox's agent. Returns 1 with *res holding the answer, or 0
 * once an error has been answered. */
static int call_agent(struct http_ctx *ctx, json_t *req, struct agent_result *res)
{
        int r = api_agent_call(ctx, req, NULL, 0, 2 * MAX_LOG_BYTES, AGENT_WAIT_MS, NULL, res);
        if (r <= 0)
                return r;
        if (res->error_code[0]) {
                const char *c = res->error_code;
                int status = !strcmp(c, "not_found")     ? 404
                             : !strcmp(c, "not_running") ? 409
                             : !strcmp(c, "busy")        ? 429
                             : !strcmp(c, "bad_request") || !strcmp(c, "bad_cwd") || !strcmp(c, "bad_command")
                                 ? 400
                                 : 500;
                if (!strcmp(c, "bad_cwd"))
                        http_respond_error(ctx, 400,
                                           "cwd does not exist in the sandbox or is not a directory");
                else
                        http_respond_error(ctx, status, "%s", res->error);
                agent_result_clear(res);
                return 0;
        }
        if (!res->result) {
                agent_result_clear(res);
                return http_respond_error(ctx, 503, "sandbox '%s' gave no answer",
                                          route_param(&ctx->params, "id"));
        }
        return 1;
}

/* The fields a command and a pty share: cwd, env, user, timeout_ms. */
static int start_request(struct http_ctx *ctx, json_t *argv, bool tty, json_t **ret, char err[JSON_ERR_MAX])
{
        const char *user, *cwd;
        long long timeout;
        if (api_check_user_and_cwd(ctx->body, &user, &cwd, err) < 0 ||
            json_int_field(ctx->body, "timeout_ms", 1, DAY_MS, 0, &timeout, err) < 0 ||
            api_check_env(json_object_get(ctx->body, "env"), err) < 0)
                return -EINVAL;
        json_t *req = json_pack("{s:s, s:O, s:s, s:b, s:I}", "op", "job_start", "argv", argv, "user", user,
                                "tty", tty, "timeout_ms", (json_int_t)timeout);
        if (!req)
                return -ENOMEM;
        if (cwd)
                json_object_set_new(req, "cwd", json_string(cwd));
        if (json_object_get(ctx->body, "env"))
                json_object_set(req, "env", json_object_get(ctx->body, "env"));
        *ret = req;
        return 0;
}

static json_t *iso_or_null(json_t *ms)
{
        return json_is_integer(ms) ? json_iso_time(json_integer_value(ms)) : json_null();
}

/* --- commands -------------------------------------------------------------------------- */

static const struct json_field command_fields[] = {
    {"cmd", FIELD_STRING, true},   {"cwd", FIELD_STRING, false},         {"env", FIELD_OBJECT, false},
    {"user", FIELD_STRING, false}, {"timeout_ms", FIELD_INTEGER, false},
};

int api_commands_start(struct http_ctx *ctx)
{
        char err[JSON_ERR_MAX];
        if (json_fields_check(ctx->body, command_fields, ELEMENTSOF(command_fields), false, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *cmd = json_object_get(ctx->body, "cmd");
        if (api_check_cmd(cmd, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *argv = json_pack("[s, s, s]", "/bin/bash", "-c", json_string_value(cmd)), *req = NULL;
        int r = start_request(ctx, argv, false, &req, err);
        json_decref(argv);
        if (r < 0)
                return r == -EINVAL ? http_respond_error(ctx, 400, "%s", err) : r;
        /* The listing shows the command as given, up to a line's worth. */
        char label[256];
        snprintf(label, sizeof label, "%s", json_string_value(cmd));
        json_object_set_new(req, "label", api_text_json(label, strlen(label)));
        struct agent_result res = {0};
        if ((r = call_agent(ctx, req, &res)) <= 0)
                return r;
        json_t *body = json_pack("{s:O, s:O}", "command_id", json_object_get(res.result, "id"), "pid",
                                 json_object_get(res.result, "pid"));
        agent_result_clear(&res);
        return http_respond_json(ctx, 201, body);
}

static json_t *command_json(json_t *job)
{
        json_t *c = json_pack("{s:O, s:O, s:O, s:O, s:o, s:o}", "command_id", json_object_get(job, "id"),
                              "pid", json_object_get(job, "pid"), "cmd", json_object_get(job, "label"),
                              "status", json_object_get(job, "status"), "started_at",
                              iso_or_null(json_object_get(job, "started_at")), "ended_at",
                              iso_or_null(json_object_get(job, "ended_at")));
        json_object_set(c, "exit_code", json_object_get(job, "exit_code") ?: json_null());
        return c;
}

int api_commands_list(struct http_ctx *ctx)
{
        struct agent_result res = {0};
        int r = call_agent(ctx, json_pack("{s:s, s:b}", "op", "job_list", "tty", 0), &res);
        if (r <= 0)
                return r;
        json_t *list = json_array(), *job;
        size_t i;
        json_array_foreach(json_object_get(res.result, "jobs"), i, job)
            json_array_append_new(list, command_json(job));
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, json_pack("{s:o}", "commands", list));
}

static const struct json_field logs_fields[] = {
    {"stdout_offset", FIELD_INTEGER, false},
    {"stderr_offset", FIELD_INTEGER, false},
};

int api_commands_logs(struct http_ctx *ctx)
{
        const char *cid = job_param(ctx, "cid");
        if (!cid)
                return 0;
        char err[JSON_ERR_MAX];
        long long out_off, err_off;
        if (json_fields_check(ctx->body, logs_fields, ELEMENTSOF(logs_fields), false, err) < 0 ||
            json_int_field(ctx->body, "stdout_offset", 0, LLONG_MAX, 0, &out_off, err) < 0 ||
            json_int_field(ctx->body, "stderr_offset", 0, LLONG_MAX, 0, &err_off, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        struct agent_result res = {0};
        int r = call_agent(ctx,
                           json_pack("{s:s, s:s, s:I, s:I, s:I}", "op", "job_logs", "id", cid,
                                     "stdout_offset", (json_int_t)out_off, "stderr_offset",
                                     (json_int_t)err_off, "max_bytes", (json_int_t)MAX_LOG_BYTES),
                           &res);
        if (r <= 0)
                return r;
        json_t *a = res.result;
        /* A character cut at the end of what was read comes whole with the next read. */
        size_t out_hold = utf8_incomplete_tail(res.out, res.out_len),
               err_hold = utf8_incomplete_tail(res.err, res.err_len);
        bool running = !strcmp(json_string_value(json_object_get(a, "status")) ?: "", "running");
        if (!running)
                out_hold = err_hold = 0;
        json_t *body = json_pack(
            "{s:o, s:o, s:I, s:I, s:O, s:O, s:O}", "stdout", api_text_json(res.out, res.out_len - out_hold),
            "stderr", api_text_json(res.err, res.err_len - err_hold), "stdout_offset",
            (json_int_t)(json_integer_value(json_object_get(a, "stdout_offset")) - (long long)out_hold),
            "stderr_offset",
            (json_int_t)(json_integer_value(json_object_get(a, "stderr_offset")) - (long long)err_hold),
            "stdout_dropped", json_object_get(a, "stdout_dropped"), "stderr_dropped",
            json_object_get(a, "stderr_dropped"), "status", json_object_get(a, "status"));
        json_object_set(body, "exit_code", json_object_get(a, "exit_code") ?: json_null());
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, body);
}

static int kill_job(struct http_ctx *ctx, const char *id, const char *id_field)
{
        struct agent_result res = {0};
        int r = call_agent(ctx, json_pack("{s:s, s:s}", "op", "job_kill", "id", id), &res);
        if (r <= 0)
                return r;
        json_t *body = json_pack("{s:s, s:O}", id_field, id, "status", json_object_get(res.result, "status"));
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, body);
}

int api_commands_kill(struct http_ctx *ctx)
{
        const char *cid = job_param(ctx, "cid");
        return cid ? kill_job(ctx, cid, "command_id") : 0;
}

/* --- ptys ------------------------------------------------------------------------------ */

static const struct json_field pty_fields[] = {
    {"cmd", FIELD_STRING, false},         {"cols", FIELD_INTEGER, false}, {"rows", FIELD_INTEGER, false},
    {"cwd", FIELD_STRING, false},         {"env", FIELD_OBJECT, false},   {"user", FIELD_STRING, false},
    {"timeout_ms", FIELD_INTEGER, false},
};

int api_pty_start(struct http_ctx *ctx)
{
        char err[JSON_ERR_MAX];
        long long cols, rows;
        if (json_fields_check(ctx->body, pty_fields, ELEMENTSOF(pty_fields), false, err) < 0 ||
            json_int_field(ctx->body, "cols", 1, MAX_TTY_DIM, 80, &cols, err) < 0 ||
            json_int_field(ctx->body, "rows", 1, MAX_TTY_DIM, 24, &rows, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *cmd = json_object_get(ctx->body, "cmd");
        if (cmd && api_check_cmd(cmd, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        /* Without a command, a login shell, interactive since its input is a terminal. */
        json_t *argv = cmd ? json_pack("[s, s, s]", "/bin/bash", "-c", json_string_value(cmd))
                           : json_pack("[s, s]", "/bin/bash", "-l"),
               *req = NULL;
        int r = start_request(ctx, argv, true, &req, err);
        json_decref(argv);
        if (r < 0)
                return r == -EINVAL ? http_respond_error(ctx, 400, "%s", err) : r;
        json_object_set_new(req, "cols", json_integer(cols));
        json_object_set_new(req, "rows", json_integer(rows));
        json_object_set_new(req, "label", json_string(cmd ? "command" : "shell"));
        struct agent_result res = {0};
        if ((r = call_agent(ctx, req, &res)) <= 0)
                return r;
        json_t *body = json_pack("{s:O, s:O}", "pty_id", json_object_get(res.result, "id"), "pid",
                                 json_object_get(res.result, "pid"));
        agent_result_clear(&res);
        return http_respond_json(ctx, 201, body);
}

static const struct json_field input_fields[] = {{"data_b64", FIELD_STRING, true}};

int api_pty_input(struct http_ctx *ctx)
{
        const char *pty = job_param(ctx, "pty");
        if (!pty)
                return 0;
        char err[JSON_ERR_MAX];
        if (json_fields_check(ctx->body, input_fields, ELEMENTSOF(input_fields), false, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *data = json_object_get(ctx->body, "data_b64");
        size_t n = json_string_length(data);
        /* Checked here, where a bad request costs the sandbox nothing. */
        _cleanup_free_ char *raw = NULL;
        size_t got = 0;
        int d = json_base64_decode(json_string_value(data), n, &raw, &got);
        if (d == -ENOMEM)
                return d;
        if (d < 0)
                return http_respond_error(ctx, 400, "field 'data_b64': not base64");
        if (got > MAX_INPUT_BYTES)
                return http_respond_error(ctx, 413, "field 'data_b64': at most %d bytes per call",
                                          MAX_INPUT_BYTES);
        struct agent_result res = {0};
        int r = call_agent(ctx, json_pack("{s:s, s:s, s:O}", "op", "pty_input", "id", pty, "data_b64", data),
                           &res);
        if (r <= 0)
                return r;
        json_t *body = json_pack("{s:O}", "written", json_object_get(res.result, "written"));
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, body);
}

int api_pty_output(struct http_ctx *ctx)
{
        const char *pty = job_param(ctx, "pty");
        if (!pty)
                return 0;
        struct agent_result res = {0};
        int r = call_agent(ctx, json_pack("{s:s, s:s}", "op", "pty_output", "id", pty), &res);
        if (r <= 0)
                return r;
        _cleanup_free_ char *b64 = malloc(res.out_len / 3 * 4 + 5);
        if (!b64) {
                agent_result_clear(&res);
                return -ENOMEM;
        }
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)(res.out ? res.out : ""),
                        (int)res.out_len);
        json_t *body =
            json_pack("{s:s, s:O, s:O}", "data_b64", b64, "alive", json_object_get(res.result, "alive"),
                      "dropped", json_object_get(res.result, "dropped"));
        json_object_set(body, "exit_code", json_object_get(res.result, "exit_code") ?: json_null());
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, body);
}

static const struct json_field resize_fields[] = {{"cols", FIELD_INTEGER, true},
                                                  {"rows", FIELD_INTEGER, true}};

int api_pty_resize(struct http_ctx *ctx)
{
        const char *pty = job_param(ctx, "pty");
        if (!pty)
                return 0;
        char err[JSON_ERR_MAX];
        long long cols, rows;
        if (json_fields_check(ctx->body, resize_fields, ELEMENTSOF(resize_fields), false, err) < 0 ||
            json_int_field(ctx->body, "cols", 1, MAX_TTY_DIM, 80, &cols, err) < 0 ||
            json_int_field(ctx->body, "rows", 1, MAX_TTY_DIM, 24, &rows, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        struct agent_result res = {0};
        int r = call_agent(ctx,
                           json_pack("{s:s, s:s, s:I, s:I}", "op", "pty_resize", "id", pty, "cols",
                                     (json_int_t)cols, "rows", (json_int_t)rows),
                           &res);
        if (r <= 0)
                return r;
        agent_result_clear(&res);
        return http_respond_json(ctx, 200,
                                 json_pack("{s:I, s:I}", "cols", (json_int_t)cols, "rows", (json_int_t)rows));
}

int api_pty_kill(struct http_ctx *ctx)
{
        const char *pty = job_param(ctx, "pty");
        return pty ? kill_job(ctx, pty, "pty_id") : 0;
}

/* POST /v1/sandboxes/:id/shell and /run: one command or one piece of code, answered when it
 * ends. Output is captured up to a cap per stream (truncated says so) and returned as text:
 * bytes that are not UTF-8 become U+FFFD, so any output makes valid JSON. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "cleanup.h"
#include "json_fields.h"
#include "languages.h"
#include "protocol.h"
#include "sandbox.h"
#include "sse.h"

#define MAX_CMD_BYTES       (128 * 1024 - 1) /* one argv string: the kernel's MAX_ARG_STRLEN */
#define MAX_CODE_BYTES      (4 << 20)
#define MAX_OUTPUT_BYTES    (1 << 20)
#define STREAM_OUTPUT_BYTES (64 << 20) /* per stream of a streamed run: passed on, not kept */
#define HOUR_MS             (3600LL * 1000)

/* --- text ---------------------------------------------------------------------------- */

json_t *api_text_json(const char *buf, size_t len)
{
        _cleanup_free_ char *out = malloc(len * 3 + 1);
        if (!out)
                return NULL;
        size_t o = 0;
        const unsigned char *s = (const unsigned char *)buf;
        for (size_t i = 0; i < len;) {
                size_t n = utf8_char_len(s + i, len - i);
                if (n == 0) {
                        memcpy(out + o, "\xef\xbf\xbd", 3); /* U+FFFD */
                        o += 3;
                        i++;
                        continue;
                }
                memcpy(out + o, s + i, n);
                o += n;
                i += n;
        }
        return json_stringn(out, o);
}

/* --- running ------------------------------------------------------------------------- */

struct exec_args {
        json_t *argv; /* stolen */
        json_t *env;  /* borrowed, may be NULL */
        const char *cwd, *user;
        const char *stdin_data;
        size_t stdin_len;
        long long timeout_ms;
        const struct agent_stream *stream; /* NULL: one answer at the end */
        long long max_output;              /* per stream, in the sandbox; 0: MAX_OUTPUT_BYTES */
        bool kill_on_disconnect;
};

int api_check_cmd(json_t *cmd, char err[JSON_ERR_MAX])
{
        if (json_string_length(cmd) == 0 || json_string_length(cmd) > MAX_CMD_BYTES ||
            strlen(json_string_value(cmd)) != json_string_length(cmd)) {
                snprintf(err, JSON_ERR_MAX, "field 'cmd': must be 1 to %d bytes with no NUL", MAX_CMD_BYTES);
                return -EINVAL;
        }
        return 0;
}

int api_check_user_and_cwd(json_t *body, const char **ret_user, const char **ret_cwd, char err[JSON_ERR_MAX])
{
        const char *user = json_string_value(json_object_get(body, "user"));
        if (user && strcmp(user, "user") != 0 && strcmp(user, "root") != 0) {
                snprintf(err, JSON_ERR_MAX, "field 'user': expected 'user' or 'root'");
                return -EINVAL;
        }
        const char *cwd = json_string_value(json_object_get(body, "cwd"));
        if (cwd && (cwd[0] != '/' || strlen(cwd) >= 4096 ||
                    strlen(cwd) != json_string_length(json_object_get(body, "cwd")))) {
                snprintf(err, JSON_ERR_MAX, "field 'cwd': expected an absolute path");
                return -EINVAL;
        }
        *ret_user = user ? user : "user";
        *ret_cwd = cwd;
        return 0;
}

/* Commands hold a request thread while they run (up to their timeout). A worker lets at most
 * three quarters of its threads run commands, so the rest of the API always has threads. */
static int commands_in_flight;

bool api_command_slot_take(const struct warren_config *cfg)
{
        int max = cfg->threads * 3 / 4 > 0 ? cfg->threads * 3 / 4 : 1;
        if (__atomic_add_fetch(&commands_in_flight, 1, __ATOMIC_SEQ_CST) <= max)
                return true;
        __atomic_sub_fetch(&commands_in_flight, 1, __ATOMIC_SEQ_CST);
        return false;
}

void api_command_slot_give(void)
{
        __atomic_sub_fetch(&commands_in_flight, 1, __ATOMIC_SEQ_CST);
}

/* Runs the command and answers failures itself; returns 1 with *ret filled on success. */
static int run(struct http_ctx *ctx, struct exec_args *a, struct agent_result *ret)
{
        if (!api_command_slot_take(ctx->cfg)) {
                json_decref(a->argv);
                http_add_header(ctx, "Retry-After: 1");
                return http_respond_error(ctx, 503,
                                          "too many commands are running on this node; try again shortly");
        }
        json_t *req = json_pack("{s:s, s:o, s:s, s:I, s:I, s:b, s:b}", "op", "exec", "argv", a->argv, "user",
                                a->user, "timeout_ms", (json_int_t)a->timeout_ms, "max_output",
                                (json_int_t)(a->max_output ? a->max_output : MAX_OUTPUT_BYTES), "stdin",
                                a->stdin_data != NULL, "kill_on_disconnect", a->kill_on_disconnect);
        if (!req) {
                api_command_slot_give();
                return -ENOMEM;
        }
        if (a->env)
                json_object_set(req, "env", a->env);
        if (a->cwd)
                json_object_set_new(req, "cwd", json_string(a->cwd));
        /* The agent enforces the timeout; the host waits a little longer, then gives up on it. */
        int r = api_agent_call(ctx, req, a->stdin_data, a->stdin_len, MAX_OUTPUT_BYTES,
                               (int)(a->timeout_ms + 5000), a->stream, ret);
        api_command_slot_give();
        if (r <= 0)
                return r;
        if (ctx->responded) /* a stream already began: its handler ends it */
                return 1;
        if (ret->error_code[0]) {
                int status = !strcmp(ret->error_code, "bad_cwd") || !strcmp(ret->error_code, "bad_command")
                                 ? 400
                                 : 500;
                if (!strcmp(ret->error_code, "bad_cwd"))
                        http_respond_error(ctx, 400,
                                           "cwd '%.200s' does not exist in the sandbox or is not a directory",
                                           a->cwd ? a->cwd : "");
                else
                        http_respond_error(ctx, status, "%s", ret->error);
                agent_result_clear(ret);
                return 0;
        }
        return 1;
}

/* --- shell --------------------------------------------------------------------------- */

static const struct json_field shell_fields[] = {
    {"cmd", FIELD_STRING, true},   {"cwd", FIELD_STRING, false},         {"env", FIELD_OBJECT, false},
    {"user", FIELD_STRING, false}, {"timeout_ms", FIELD_INTEGER, false},
};

int api_sandboxes_shell(struct http_ctx *ctx)
{
        char err[JSON_ERR_MAX];
        struct exec_args a = {0};
        if (json_fields_check(ctx->body, shell_fields, ELEMENTSOF(shell_fields), false, err) < 0 ||
            api_check_user_and_cwd(ctx->body, &a.user, &a.cwd, err) < 0 ||
            json_int_field(ctx->body, "timeout_ms", 1, HOUR_MS, 60000, &a.timeout_ms, err) < 0 ||
            api_check_env(json_object_get(ctx->body, "env"), err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        json_t *cmd = json_object_get(ctx->body, "cmd");
        if (api_check_cmd(cmd, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        a.env = json_object_get(ctx->body, "env");
        a.argv = json_pack("[s, s, s]", "/bin/bash", "-c", json_string_value(cmd));
        struct agent_result res;
        int r = run(ctx, &a, &res);
        if (r <= 0)
                return r;
        json_t *body =
            json_pack("{s:o, s:o, s:i, s:b, s:b, s:I}", "stdout", api_text_json(res.out, res.out_len),
                      "stderr", api_text_json(res.err, res.err_len), "exit_code", res.exit_code, "timed_out",
                      res.timed_out, "truncated", res.truncated, "duration_ms", (json_int_t)res.duration_ms);
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, body);
}

/* --- run ----------------------------------------------------------------------------- */

/* Splits "Name: value" when Name looks like an exception class (letters, digits, '_' and
 * '.'), ending in Error or Exception unless any name will do. */
static bool split_exception(const char *line, size_t len, bool any_name, char *name, size_t nsize,
                            char *value, size_t vsize)
{
        static const char java_prefix[] = "Exception in thread \"main\" ";
        if (len > sizeof java_prefix - 1 && strncmp(line, java_prefix, sizeof java_prefix - 1) == 0) {
                line += sizeof java_prefix - 1;
                len -= sizeof java_prefix - 1;
        }
        const char *colon = memchr(line, ':', len);
        size_t nlen = colon ? (size_t)(colon - line) : len;
        if (nlen == 0 || nlen >= nsize)
                return false;
        for (size_t i = 0; i < nlen; i++) {
                char c = line[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.'))
                        return false;
        }
        bool classy = (nlen >= 5 && !strncmp(line + nlen - 5, "Error", 5)) ||
                      (nlen >= 9 && !strncmp(line + nlen - 9, "Exception", 9));
        if (!any_name && (!classy || !colon))
                return false;
        snprintf(name, nsize, "%.*s", (int)nlen, line);
        size_t vstart = colon ? nlen + 1 : len;
        while (vstart < len && line[vstart] == ' ')
                vstart++;
        snprintf(value, vsize, "%.*s", (int)(len - vstart), line + vstart);
        return true;
}

/* The error of a failed run, like a notebook's: name, value and traceback. A Python
 * traceback ends with "Name: value"; node and Java print such a line near the top. */
static json_t *execution_error(const struct agent_result *res, json_t *stderr_text)
{
        if (res->timed_out)
                return json_pack("{s:s, s:s, s:s}", "name", "TimeoutError", "value",
                                 "the execution timed out", "traceback", "");
        if (res->exit_code == 0)
                return json_null();
        const char *text = json_string_value(stderr_text);
        const char *tb = strstr(text, "Traceback (most recent call last):");
        char name[128] = "", value[512] = "";
        bool found = false;
        for (const char *p = text; p && *p && !(found && !tb);) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);
                /* In a Python traceback the last such line wins; elsewhere the first. */
                bool hit =
                    len > 0 && p[0] != ' ' &&
                    split_exception(p, len, tb != NULL && p > tb, name, sizeof name, value, sizeof value);
                found = found || hit;
                p = nl ? nl + 1 : NULL;
        }
        if (!found) {
                snprintf(name, sizeof name, "%s", res->signal ? "Killed" : "ExitError");
                snprintf(value, sizeof value, "exited with code %d", res->exit_code);
        }
        return json_pack("{s:s, s:s, s:s}", "name", name, "value", value, "traceback", tb ? tb : text);
}

static const struct json_field run_fields[] = {
    {"code", FIELD_STRING, true},        {"language", FIELD_STRING, false},
    {"env", FIELD_OBJECT, false},        {"timeout_ms", FIELD_INTEGER, false},
    {"context_id", FIELD_STRING, false}, {"kill_on_disconnect", FIELD_BOOLEAN, false},
    {"fresh", FIELD_BOOLEAN, false},
};

/* Checks a run request and fills a for a fresh run (returns 1); or answers it itself: an
 * error, or a run in a context (returns 0, or < 0 for the dispatcher's 500). */
static int run_args(struct http_ctx *ctx, bool streamed, struct exec_args *a,
                    const struct language **ret_lang)
{
        char err[JSON_ERR_MAX];
        *a = (struct exec_args){.user = "user"};
        if (json_fields_check(ctx->body, run_fields, ELEMENTSOF(run_fields), false, err) < 0 ||
            json_int_field(ctx->body, "timeout_ms", 1, HOUR_MS, 60000, &a->timeout_ms, err) < 0 ||
            api_check_env(json_object_get(ctx->body, "env"), err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        if (!streamed && json_object_get(ctx->body, "kill_on_disconnect"))
                return http_respond_error(ctx, 400, "field 'kill_on_disconnect': only for run/stream");
        const char *lang_name = json_string_value(json_object_get(ctx->body, "language"));
        const struct language *lang = language_find(lang_name ? lang_name : "python");
        if (!lang)
                return http_respond_error(
                    ctx, 400, "field 'language': unknown language '%.40s' (" LANGUAGE_NAMES ")", lang_name);
        if (json_object_get(ctx->body, "context_id") && json_is_true(json_object_get(ctx->body, "fresh")))
                return http_respond_error(ctx, 400,
                                          "fields 'context_id' and 'fresh': a fresh run has no context");
        if (json_object_get(ctx->body, "context_id") && !lang->kernel_argv[0])
                return http_respond_error(
                    ctx, 400, "field 'context_id': %s runs have no stateful contexts yet", lang->name);
        json_t *code = json_object_get(ctx->body, "code");
        if (json_string_length(code) > MAX_CODE_BYTES)
                return http_respond_error(ctx, 413, "field 'code': larger than %d bytes", MAX_CODE_BYTES);
        a->env = json_object_get(ctx->body, "env");
        /* Unless fresh (a new interpreter for this run alone), code runs in a stateful context,
         * which answers the request itself. */
        if (lang->kernel_argv[0] && !json_is_true(json_object_get(ctx->body, "fresh"))) {
                int r = api_context_run(ctx, lang->name, code, a->env, a->timeout_ms, streamed);
                return r < 0 ? r : 0;
        }
        a->argv = json_array();
        for (int i = 0; lang->fresh_argv[i]; i++)
                json_array_append_new(a->argv, json_string(lang->fresh_argv[i]));
        a->stdin_data = json_string_value(code);
        a->stdin_len = json_string_length(code);
        a->kill_on_disconnect = json_is_true(json_object_get(ctx->body, "kill_on_disconnect"));
        *ret_lang = lang;
        return 1;
}

int api_sandboxes_run(struct http_ctx *ctx)
{
        struct exec_args a;
        const struct language *lang;
        int r = run_args(ctx, false, &a, &lang);
        if (r <= 0)
                return r;
        struct agent_result res;
        r = run(ctx, &a, &res);
        if (r <= 0)
                return r;
        json_t *out = api_text_json(res.out, res.out_len), *errt = api_text_json(res.err, res.err_len);
        json_t *error = execution_error(&res, errt);
        json_t *logs = json_pack("{s:[], s:[]}", "stdout", "stderr");
        if (res.out_len)
                json_array_append(json_object_get(logs, "stdout"), out);
        if (res.err_len)
                json_array_append(json_object_get(logs, "stderr"), errt);
        json_t *body =
            json_pack("{s:s, s:[], s:o, s:o, s:i, s:b, s:b, s:I}", "language", lang->name, "results", "logs",
                      logs, "error", error, "exit_code", res.exit_code, "timed_out", res.timed_out,
                      "truncated", res.truncated, "duration_ms", (json_int_t)res.duration_ms);
        json_decref(out);
        json_decref(errt);
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, body);
}

/* --- run/stream -------------------------------------------------------------------------- */

static int sse_on_frame(void *arg, int type, const char *data, size_t len)
{
        struct sse *s = arg;
        if (type == FRAME_STARTED) {
                if (sse_begin(s) < 0)
                        return -EPIPE;
                json_t *started = json_loads(data, 0, NULL);
                json_t *pid = json_object_get(started, "pid");
                int r = sse_event(s->ctx, "start", json_pack("{s:O}", "pid", pid ? pid : json_null()));
                json_decref(started);
                return r;
        }
        return sse_output(s, type == FRAME_STDERR, data, len);
}

static int sse_on_idle(void *arg)
{
        return sse_keepalive(arg);
}

static bool accepts_event_stream(const char *accept)
{
        return !accept || !*accept || strstr(accept, "text/event-stream") || strstr(accept, "*/*") ||
               strstr(accept, "text/*");
}

int api_sandboxes_run_stream(struct http_ctx *ctx)
{
        if (!accepts_event_stream(ctx->req.accept))
                return http_respond_error(ctx, 406,
                                          "this route answers text/event-stream, which Accept excludes");
        struct exec_args a;
        const struct language *lang;
        int r = run_args(ctx, true, &a, &lang);
        if (r <= 0)
                return r;
        struct sse s = {.ctx = ctx};
        struct agent_stream stream = {.on_frame = sse_on_frame,
                                      .on_idle = sse_on_idle,
                                      .idle_ms = ctx->cfg->stream_keepalive_ms,
                                      .arg = &s};
        a.stream = &stream;
        a.max_output = STREAM_OUTPUT_BYTES;
        struct agent_result res;
        r = run(ctx, &a, &res);
        if (!s.started)
                return r; /* failed before it started: answered as JSON */
        if (r < 0) {
                /* The client is gone, or the sandbox stopped answering: say so if anyone listens. */
                sse_event(ctx, "error",
                          json_pack("{s:s, s:s, s:s}", "name", "StreamError", "value", ctx->error,
                                    "traceback", ""));
                return 0;
        }
        sse_flush_held(&s);
        json_t *errt = api_text_json(res.err, res.err_len);
        json_t *error = execution_error(&res, errt);
        json_decref(errt);
        if (!json_is_null(error))
                sse_event(ctx, "error", json_incref(error));
        sse_event(ctx, "end",
                  json_pack("{s:s, s:o, s:i, s:b, s:b, s:I}", "language", lang->name, "error", error,
                            "exit_code", res.exit_code, "timed_out", res.timed_out, "truncated",
                            res.truncated, "duration_ms", (json_int_t)res.duration_ms));
        agent_result_clear(&res);
        return 0;
}

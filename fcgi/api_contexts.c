/* Stateful interpreter contexts: /v1/sandboxes/:id/contexts…, and run (or run/stream) in one.
 *
 * A context is a kernel kept by the sandbox's warren-init (init_contexts.h): variables,
 * imports and definitions live on between runs. A run without context_id uses its
 * language's default context, made on first use and named after the language. Results are
 * notebook-like: the value of the last expression and displayed objects as MIME bundles
 * (text, html, png, svg, json, …), matplotlib figures as PNG, errors with a traceback, and
 * the files the cell wrote. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "cleanup.h"
#include "config.h"
#include "json_fields.h"
#include "languages.h"
#include "protocol.h"
#include "sandbox.h"
#include "sse.h"

#define AGENT_WAIT_MS 15000
#define MAX_OUTPUT    (1 << 20)

/* A language with a stateful context, or NULL. */
static const struct language *kernel_for(const char *language)
{
        const struct language *l = language_find(language);
        return l && l->kernel_argv[0] ? l : NULL;
}

static bool context_id_ok(const char *id)
{
        size_t n = strlen(id);
        if (n == 0 || n > 31)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9')))
                        return false;
        return true;
}

/* Sends req (consumed) to the agent (see api_agent_call). */
static int call_agent(struct http_ctx *ctx, json_t *req, const struct agent_stream *stream, int wait_ms,
                      struct agent_result *res)
{
        return api_agent_call(ctx, req, NULL, 0, MAX_OUTPUT, wait_ms, stream, res);
}

/* An agent ERROR as an HTTP error; 0 once answered. */
static int respond_agent_error(struct http_ctx *ctx, struct agent_result *res)
{
        const char *c = res->error_code;
        int status = !strcmp(c, "not_found")                                                           ? 404
                     : !strcmp(c, "busy") || !strcmp(c, "context_died")                                ? 409
                     : !strcmp(c, "bad_request") || !strcmp(c, "bad_cwd") || !strcmp(c, "bad_command") ? 400
                                                                                                       : 500;
        http_respond_error(ctx, status, "%s", res->error);
        agent_result_clear(res);
        return 0;
}

static json_t *create_request(const struct language *k, const char *id, json_t *body, char err[JSON_ERR_MAX])
{
        const char *user = NULL, *cwd = NULL;
        if (body && (api_check_user_and_cwd(body, &user, &cwd, err) < 0 ||
                     api_check_env(json_object_get(body, "env"), err) < 0))
                return NULL;
        json_t *argv = json_array();
        for (int i = 0; k->kernel_argv[i]; i++)
                json_array_append_new(argv, json_string(k->kernel_argv[i]));
        json_t *req = json_pack("{s:s, s:s, s:o, s:s}", "op", "ctx_create", "language", k->name, "argv", argv,
                                "user", user ? user : "user");
        if (req && id)
                json_object_set_new(req, "id", json_string(id));
        if (req && cwd)
                json_object_set_new(req, "cwd", json_string(cwd));
        if (req && body && json_object_get(body, "env"))
                json_object_set(req, "env", json_object_get(body, "env"));
        return req;
}

static json_t *context_json(json_t *c)
{
        return json_pack("{s:O, s:O, s:O, s:O, s:O}", "context_id", json_object_get(c, "id"), "language",
                         json_object_get(c, "language"), "pid", json_object_get(c, "pid"), "status",
                         json_object_get(c, "status"), "execution_count",
                         json_object_get(c, "execution_count"));
}

/* --- the routes ------------------------------------------------------------------------ */

static const struct json_field create_fields[] = {
    {"language", FIELD_STRING, false},
    {"cwd", FIELD_STRING, false},
    {"env", FIELD_OBJECT, false},
    {"user", FIELD_STRING, false},
};

int api_contexts_create(struct http_ctx *ctx)
{
        char err[JSON_ERR_MAX];
        if (json_fields_check(ctx->body, create_fields, ELEMENTSOF(create_fields), false, err) < 0)
                return http_respond_error(ctx, 400, "%s", err);
        const char *language = json_string_value(json_object_get(ctx->body, "language"));
        const struct language *k = kernel_for(language ? language : "python");
        if (!k)
                return http_respond_error(
                    ctx, 400, "field 'language': no stateful context for '%.40s' (" LANGUAGE_NAMES ")",
                    language);
        json_t *req = create_request(k, NULL, ctx->body, err);
        if (!req)
                return http_respond_error(ctx, 400, "%s", err);
        struct agent_result res;
        int r = call_agent(ctx, req, NULL, AGENT_WAIT_MS, &res);
        if (r <= 0)
                return r;
        if (res.error_code[0] || !res.result)
                return respond_agent_error(ctx, &res);
        json_t *body = context_json(res.result);
        agent_result_clear(&res);
        return http_respond_json(ctx, 201, body);
}

int api_contexts_list(struct http_ctx *ctx)
{
        struct agent_result res;
        int r = call_agent(ctx, json_pack("{s:s}", "op", "ctx_list"), NULL, AGENT_WAIT_MS, &res);
        if (r <= 0)
                return r;
        if (res.error_code[0] || !res.result)
                return respond_agent_error(ctx, &res);
        json_t *list = json_array(), *c;
        size_t i;
        json_array_foreach(json_object_get(res.result, "contexts"), i, c)
            json_array_append_new(list, context_json(c));
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, json_pack("{s:o}", "contexts", list));
}

/* restart, interrupt and delete: one op on the context named in the path. */
static int context_op(struct http_ctx *ctx, const char *op, int status)
{
        const char *id = route_param(&ctx->params, "ctx");
        if (!id || !context_id_ok(id))
                return http_respond_error(ctx, 404, "no context with that id");
        struct agent_result res;
        int r = call_agent(ctx, json_pack("{s:s, s:s}", "op", op, "id", id), NULL, AGENT_WAIT_MS, &res);
        if (r <= 0)
                return r;
        if (res.error_code[0] || !res.result)
                return respond_agent_error(ctx, &res);
        json_t *body = json_object_get(res.result, "id") ? context_json(res.result)
                                                         : json_pack("{s:s}", "context_id", id);
        agent_result_clear(&res);
        return http_respond_json(ctx, status, body);
}

int api_contexts_restart(struct http_ctx *ctx)
{
        return context_op(ctx, "ctx_restart", 200);
}

int api_contexts_interrupt(struct http_ctx *ctx)
{
        return context_op(ctx, "ctx_interrupt", 200);
}

int api_contexts_delete(struct http_ctx *ctx)
{
        return context_op(ctx, "ctx_delete", 200);
}

/* --- running in a context -------------------------------------------------------------- */

/* A MIME bundle as a result the way notebook clients read one: a field per format. */
static json_t *result_json(json_t *event)
{
        static const struct {
                const char *mime, *field;
        } formats[] = {
            {"text/plain", "text"},   {"text/html", "html"},        {"text/markdown", "markdown"},
            {"image/svg+xml", "svg"}, {"image/png", "png"},         {"image/jpeg", "jpeg"},
            {"text/latex", "latex"},  {"application/json", "json"}, {"application/javascript", "javascript"}};
        json_t *data = json_object_get(event, "data");
        json_t *r = json_pack("{s:b, s:[]}", "is_main_result",
                              strcmp(json_string_value(json_object_get(event, "type")) ?: "", "result") == 0,
                              "formats");
        for (size_t i = 0; r && i < ELEMENTSOF(formats); i++) {
                json_t *v = json_object_get(data, formats[i].mime);
                if (!json_is_string(v))
                        continue;
                json_object_set(r, formats[i].field, v);
                json_array_append_new(json_object_get(r, "formats"), json_string(formats[i].field));
        }
        return r;
}

static json_t *error_json(json_t *event)
{
        return json_pack("{s:s, s:s, s:s}", "name",
                         json_string_value(json_object_get(event, "name")) ?: "Error", "value",
                         json_string_value(json_object_get(event, "value")) ?: "", "traceback",
                         json_string_value(json_object_get(event, "traceback")) ?: "");
}

struct run_params {
        const char *language, *context_id;
        json_t *code, *env;
        long long timeout_ms;
        bool kill_on_disconnect;
};

/* The Execution of a finished run, from what the agent said. */
static json_t *execution_json(const struct run_params *p, struct agent_result *res)
{
        json_t *results = json_array(), *files = json_array(), *error = json_null(), *ev;
        size_t i;
        json_array_foreach(res->events, i, ev)
        {
                const char *type = json_string_value(json_object_get(ev, "type")) ?: "";
                if (!strcmp(type, "result") || !strcmp(type, "display"))
                        json_array_append_new(results, result_json(ev));
                else if (!strcmp(type, "file"))
                        json_array_append_new(files,
                                              json_pack("{s:O, s:O}", "path", json_object_get(ev, "path"),
                                                        "size", json_object_get(ev, "size")));
                else if (!strcmp(type, "error")) {
                        json_decref(error);
                        error = error_json(ev);
                }
        }
        bool timed_out = json_is_true(json_object_get(res->result, "interrupted")) && p->timeout_ms > 0;
        if (timed_out) {
                json_t *te = json_pack("{s:s, s:s, s:O}", "name", "TimeoutError", "value",
                                       "the run was interrupted at its timeout; the context keeps its state",
                                       "traceback", json_object_get(error, "traceback") ?: json_null());
                json_decref(error);
                error = te;
        }
        json_t *logs = json_pack("{s:[], s:[]}", "stdout", "stderr");
        if (res->out_len)
                json_array_append_new(json_object_get(logs, "stdout"), api_text_json(res->out, res->out_len));
        if (res->err_len)
                json_array_append_new(json_object_get(logs, "stderr"), api_text_json(res->err, res->err_len));
        /* The status the cell ended with: bash's own, else 0 or 1 as it failed. */
        json_t *code = json_object_get(res->result, "exit_code");
        int exit_code = json_is_integer(code) ? (int)json_integer_value(code) : json_is_null(error) ? 0 : 1;
        if (exit_code == 0 && !json_is_null(error)) /* an interrupted cell, say */
                exit_code = 1;
        return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:O, s:i, s:b, s:b, s:O}", "language", p->language,
                         "context_id", p->context_id, "results", results, "logs", logs, "error", error,
                         "files", files, "execution_count", json_object_get(res->result, "execution_count"),
                         "exit_code", exit_code, "timed_out", timed_out, "truncated", res->truncated,
                         "duration_ms", json_object_get(res->result, "duration_ms"));
}

/* A context's output as server-sent events: stdout, stderr, result, display, error, file. */
static int stream_frame(void *arg, int type, const char *data, size_t len)
{
        struct sse *s = arg;
        if (type == FRAME_STARTED) {
                if (sse_begin(s) < 0)
                        return -EPIPE;
                json_t *started = json_loadb(data, len, 0, NULL);
                json_t *pid = json_object_get(started, "pid");
                int r = sse_event(s->ctx, "start", json_pack("{s:O}", "pid", pid ? pid : json_null()));
                json_decref(started);
                return r;
        }
        if (type != FRAME_EVENT)
                return sse_output(s, type == FRAME_STDERR, data, len);
        json_t *ev = json_loadb(data, len, 0, NULL);
        const char *kind = json_string_value(json_object_get(ev, "type")) ?: "";
        int r = 0;
        /* An event the kernel (user code can write to its fd 3) got wrong is skipped, never
         * the end of the stream. */
        if (!strcmp(kind, "file") &&
            (!json_is_string(json_object_get(ev, "path")) || !json_is_integer(json_object_get(ev, "size"))))
                kind = "";
        if (!strcmp(kind, "result") || !strcmp(kind, "display"))
                r = sse_event(s->ctx, "result", result_json(ev));
        else if (!strcmp(kind, "error"))
                r = sse_event(s->ctx, "error", error_json(ev));
        else if (!strcmp(kind, "file"))
                r = sse_event(s->ctx, "file",
                              json_pack("{s:O, s:O}", "path", json_object_get(ev, "path"), "size",
                                        json_object_get(ev, "size")));
        json_decref(ev);
        return r;
}

static int stream_idle(void *arg)
{
        return sse_keepalive(arg);
}

static json_t *run_request(const struct run_params *p)
{
        json_t *req =
            json_pack("{s:s, s:s, s:O, s:I, s:b}", "op", "ctx_run", "id", p->context_id, "code", p->code,
                      "timeout_ms", (json_int_t)p->timeout_ms, "kill_on_disconnect", p->kill_on_disconnect);
        if (req && p->env)
                json_object_set(req, "env", p->env);
        return req;
}

static int context_run(struct http_ctx *ctx, const struct run_params *params, bool default_context,
                       bool streamed);

int api_context_run(struct http_ctx *ctx, const char *language, json_t *code, json_t *env,
                    long long timeout_ms, bool streamed)
{
        const char *context_id = json_string_value(json_object_get(ctx->body, "context_id"));
        if (context_id && !context_id_ok(context_id))
                return http_respond_error(ctx, 404, "no context with id '%.40s'", context_id);
        struct run_params p = {
            .language = language,
            .context_id = context_id ? context_id : language, /* the default context's id */
            .code = code,
            .env = env,
            .timeout_ms = timeout_ms,
            .kill_on_disconnect = json_is_true(json_object_get(ctx->body, "kill_on_disconnect")),
        };
        /* A run holds this thread while it runs, as a shell command does. */
        if (!api_command_slot_take(ctx->cfg)) {
                http_add_header(ctx, "Retry-After: 1");
                return http_respond_error(ctx, 503,
                                          "too many runs are in progress on this node; try again shortly");
        }
        int r = context_run(ctx, &p, !context_id, streamed);
        api_command_slot_give();
        return r;
}

static int context_run(struct http_ctx *ctx, const struct run_params *params, bool default_context,
                       bool streamed)
{
        struct run_params p = *params;
        const char *language = p.language;
        long long timeout_ms = p.timeout_ms;
        struct sse s = {.ctx = ctx};
        struct agent_stream stream = {.on_frame = stream_frame,
                                      .on_idle = stream_idle,
                                      .idle_ms = ctx->cfg->stream_keepalive_ms,
                                      .arg = &s};
        int wait = (int)(timeout_ms + 2 * 3000 + 5000); /* the run, an interrupt's grace, and margin */
        struct agent_result res;
        int r = call_agent(ctx, run_request(&p), streamed ? &stream : NULL, wait, &res);
        /* The default context is made on first use. */
        if (r > 0 && default_context && !strcmp(res.error_code, "not_found")) {
                agent_result_clear(&res);
                char err[JSON_ERR_MAX];
                if ((r = call_agent(ctx, create_request(kernel_for(language), language, NULL, err), NULL,
                                    AGENT_WAIT_MS, &res)) <= 0)
                        return r;
                if (res.error_code[0])
                        return respond_agent_error(ctx, &res);
                agent_result_clear(&res);
                r = call_agent(ctx, run_request(&p), streamed ? &stream : NULL, wait, &res);
        }
        if (s.started) { /* a stream: it ends with an end event, whatever happened */
                sse_flush_held(&s);
                if (r < 0 || res.error_code[0]) {
                        const char *why = r < 0 ? ctx->error : res.error;
                        sse_event(ctx, "error",
                                  json_pack("{s:s, s:s, s:s}", "name",
                                            r >= 0 && !strcmp(res.error_code, "context_died") ? "ContextDied"
                                                                                              : "StreamError",
                                            "value", why, "traceback", ""));
                        sse_event(ctx, "end",
                                  json_pack("{s:s, s:s, s:b}", "language", language, "context_id",
                                            p.context_id, "ok", 0));
                } else {
                        json_t *exec = execution_json(&p, &res);
                        json_object_del(exec, "results");
                        json_object_del(exec, "logs");
                        sse_event(ctx, "end", exec);
                }
                agent_result_clear(&res);
                return 0;
        }
        if (r <= 0)
                return r;
        if (res.error_code[0] && !(res.started && !strcmp(res.error_code, "context_died")))
                return respond_agent_error(ctx, &res);
        json_t *body;
        if (res.error_code[0]) { /* the kernel died during the run: reported like an error of the run */
                json_t *died =
                    json_pack("{s:s, s:s, s:s}", "name", "ContextDied", "value", res.error, "traceback", "");
                json_t *fake = json_pack("{s:i, s:i, s:i}", "execution_count", 0, "duration_ms", 0,
                                         "exit_code", res.exit_code >= 0 ? res.exit_code : 1);
                res.result = fake;
                body = execution_json(&p, &res);
                json_object_set_new(body, "error", died);
        } else {
                body = execution_json(&p, &res);
        }
        agent_result_clear(&res);
        return http_respond_json(ctx, 200, body);
}

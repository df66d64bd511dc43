/* A request as the handlers see it, and the ways to answer it. Nothing here knows about
 * FastCGI: the bytes go in and out through struct http_io, which warrend backs with libfcgi
 * streams and the tests and fuzzers back with memory. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "router.h"

#define REQUEST_ERR_MAX   256
#define REQUEST_PATH_MAX  4096
#define REQUEST_ID_MAX    64
#define EXTRA_HEADERS_MAX 8192 /* room for a raw transfer's route (api_fs_raw_route) */

struct http_request {
        const char *method;
        char path[REQUEST_PATH_MAX];
        const char *query; /* without '?', "" when none */
        char request_id[REQUEST_ID_MAX];
        const char *authorization; /* raw header values, NULL when absent */
        const char *api_key;
        const char *content_type;
        const char *accept;
        const char *host; /* the Host the client asked for (nginx's $host), NULL when absent */
        const char *cookie;
        const char *preview_token; /* X-Warren-Preview-Token */
        long long content_length;  /* -1 when the body length is not known in advance */
};

struct http_io {
        void *impl;
        /* Reads up to n body bytes; returns the count, 0 at the end, -errno on failure. */
        long (*read)(void *impl, char *buf, size_t n);
        int (*write)(void *impl, const char *buf, size_t n);
        int (*flush)(void *impl);
};

struct principal {
        char key_id[32];
        char name[128];
        unsigned scopes;
};

struct redis_client;
struct warren_config;

struct http_ctx {
        struct http_request req;
        const struct route *route;
        struct route_params params;
        struct principal principal; /* valid once authenticated */
        json_t *body;               /* the parsed JSON body of routes that take one */
        struct http_io io;
        struct redis_client *redis; /* this thread's connection */
        const struct warren_config *cfg;
        const char *node_id;
        char extra_headers[EXTRA_HEADERS_MAX];
        int status;                  /* what was answered, for the log line */
        char error[REQUEST_ERR_MAX]; /* the error message answered, for the log line */
        bool responded;
        bool body_read; /* the request body was read to its end */
};

/* Fills req from FastCGI-style parameters (NAME=value strings). Returns 0, or -EINVAL with a
 * reason for the client (a 400). */
int http_request_parse(char **envp, struct http_request *ret_req, char err[REQUEST_ERR_MAX]);

/* Reads the whole body, at most limit bytes. -EFBIG past the limit, -EIO if the client went
 * away. The returned buffer is NUL-terminated and owned by the caller. */
int http_read_body(struct http_ctx *ctx, size_t limit, char **ret_buf, size_t *ret_len);

/* Adds one "Name: value" header to the next answer. */
void http_add_header(struct http_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts an answer whose body follows in pieces (server-sent events): 200 with the content
 * type, no caching, and no buffering by nginx. */
int http_stream_begin(struct http_ctx *ctx, const char *content_type);
/* Sends a piece of a streamed body at once; < 0 when the client has gone. */
int http_stream_write(struct http_ctx *ctx, const char *buf, size_t n);

/* Answers with a JSON body (the reference is stolen). */
int http_respond_json(struct http_ctx *ctx, int status, json_t *body);
/* Answers with the route family's error shape; the message should say what was wrong. */
int http_respond_error(struct http_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Calls fn for each query parameter, URL-decoded ('+' is a space). Stops and returns fn's
 * value when it is non-zero; -EINVAL for a malformed escape or a decoded NUL. Names and
 * values longer than 1023 bytes are refused (-E2BIG). */
int http_query_foreach(const struct http_request *req,
                       int (*fn)(const char *name, const char *value, void *ud), void *ud);

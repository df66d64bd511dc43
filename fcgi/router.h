/* Method + path routing. Patterns are literal segments, `:name` (one segment) and a final
 * `*name` (the rest of the path). A path that matches no pattern is a 404; one that matches
 * only under other methods is a 405 with the allowed methods. */
#pragma once

#include <stddef.h>

#define ROUTE_PARAMS_MAX 4
#define ROUTE_PARAM_MAX  256
#define ROUTE_ALLOW_MAX  64

struct http_ctx;
struct error_family;

enum route_flags {
        ROUTE_NO_AUTH = 1 << 0,       /* public: no API key (health) */
        ROUTE_EMPTY_BODY_OK = 1 << 1, /* a JSON route that accepts no body as {} */
        ROUTE_RAW_BODY = 1 << 2,      /* the handler reads the body itself, as it streams */
};

struct route {
        const char *method;
        const char *pattern;
        int (*handler)(struct http_ctx *ctx);
        unsigned scope;    /* required scope bits; 0 = any valid key */
        size_t body_limit; /* 0: no body accepted */
        unsigned flags;
        const struct error_family *family; /* NULL: native */
};

struct route_params {
        int n;
        struct {
                const char *name; /* points into the pattern, not NUL-terminated */
                size_t name_len;
                char value[ROUTE_PARAM_MAX];
        } p[ROUTE_PARAMS_MAX];
};

enum route_match { ROUTE_FOUND, ROUTE_NOT_FOUND, ROUTE_METHOD_NOT_ALLOWED, ROUTE_BAD_PARAM };

/* On ROUTE_METHOD_NOT_ALLOWED, allow gets "GET, POST"-style text. */
enum route_match router_match(const struct route *table, size_t n, const char *method, const char *path,
                              const struct route **ret_route, struct route_params *ret_params,
                              char allow[ROUTE_ALLOW_MAX]);

/* The value of parameter name, or NULL. */
const char *route_param(const struct route_params *params, const char *name);

/* The router: parameters, 404 versus 405, wildcards and over-long segments. */
#include "check.h"
#include "router.h"

static int h(struct http_ctx *ctx)
{
        (void)ctx;
        return 0;
}

static const struct route table[] = {
    {"GET", "/v1/sandboxes", h, 0, 0, 0, NULL},
    {"POST", "/v1/sandboxes", h, 0, 0, 0, NULL},
    {"GET", "/v1/sandboxes/:id", h, 0, 0, 0, NULL},
    {"POST", "/v1/sandboxes/:id/fs/read", h, 0, 0, 0, NULL},
    {"POST", "/v1/sandboxes/:id/pty/:pid/input", h, 0, 0, 0, NULL},
    {"GET", "/files/download/-/*path", h, 0, 0, 0, NULL},
};
#define N (sizeof table / sizeof table[0])

static void router__captures_parameters_by_name(void)
{
        const struct route *r;
        struct route_params p;
        char allow[ROUTE_ALLOW_MAX];
        CHECK(router_match(table, N, "POST", "/v1/sandboxes/abc123/pty/p7/input", &r, &p, allow) ==
              ROUTE_FOUND);
        CHECK(r == &table[4]);
        CHECK_STREQ(route_param(&p, "id"), "abc123");
        CHECK_STREQ(route_param(&p, "pid"), "p7");
        CHECK(route_param(&p, "nope") == NULL);
}

static void router__unknown_path_is_not_found(void)
{
        const struct route *r;
        struct route_params p;
        char allow[ROUTE_ALLOW_MAX];
        CHECK(router_match(table, N, "GET", "/v1/nothing", &r, &p, allow) == ROUTE_NOT_FOUND);
        CHECK(router_match(table, N, "GET", "/v1/sandboxes/x/fs", &r, &p, allow) == ROUTE_NOT_FOUND);
        CHECK(router_match(table, N, "GET", "/v1/sandboxes/", &r, &p, allow) == ROUTE_NOT_FOUND);
        CHECK(router_match(table, N, "GET", "/v1/sandboxes//fs/read", &r, &p, allow) == ROUTE_NOT_FOUND);
        CHECK(router_match(table, N, "GET", "", &r, &p, allow) == ROUTE_NOT_FOUND);
}

static void router__known_path_with_other_method_lists_allowed_methods(void)
{
        const struct route *r;
        struct route_params p;
        char allow[ROUTE_ALLOW_MAX];
        CHECK(router_match(table, N, "DELETE", "/v1/sandboxes", &r, &p, allow) == ROUTE_METHOD_NOT_ALLOWED);
        CHECK_STREQ(allow, "GET, POST");
        CHECK(router_match(table, N, "GET", "/v1/sandboxes/x/fs/read", &r, &p, allow) ==
              ROUTE_METHOD_NOT_ALLOWED);
        CHECK_STREQ(allow, "POST");
}

static void router__wildcard_takes_the_rest_of_the_path(void)
{
        const struct route *r;
        struct route_params p;
        char allow[ROUTE_ALLOW_MAX];
        CHECK(router_match(table, N, "GET", "/files/download/-/home/user/a.txt", &r, &p, allow) ==
              ROUTE_FOUND);
        CHECK_STREQ(route_param(&p, "path"), "home/user/a.txt");
        CHECK(router_match(table, N, "GET", "/files/download/-/", &r, &p, allow) == ROUTE_NOT_FOUND);
}

static void router__overlong_segment_is_refused_not_truncated(void)
{
        const struct route *r;
        struct route_params p;
        char allow[ROUTE_ALLOW_MAX], path[1024] = "/v1/sandboxes/";
        memset(path + strlen(path), 'a', 600);
        CHECK(router_match(table, N, "GET", path, &r, &p, allow) == ROUTE_BAD_PARAM);
}

int main(void)
{
        RUN(router__captures_parameters_by_name);
        RUN(router__unknown_path_is_not_found);
        RUN(router__known_path_with_other_method_lists_allowed_methods);
        RUN(router__wildcard_takes_the_rest_of_the_path);
        RUN(router__overlong_segment_is_refused_not_truncated);
        return CHECK_SUMMARY();
}

/* Request parsing, key extraction and answers, driven through memory instead of FastCGI. */
#include <errno.h>
#include <stdlib.h>

#include "auth.h"
#include "check.h"
#include "ids.h"
#include "request.h"

struct membuf {
        char out[8192];
        size_t out_len;
        const char *in;
        size_t in_len, in_pos;
};

static long mem_read(void *impl, char *buf, size_t n)
{
        struct membuf *m = impl;
        size_t left = m->in_len - m->in_pos;
        if (n > left)
                n = left;
        if (n > 3)
                n = 3; /* short reads, as a slow client gives */
        memcpy(buf, m->in + m->in_pos, n);
        m->in_pos += n;
        return (long)n;
}

static int mem_write(void *impl, const char *buf, size_t n)
{
        struct membuf *m = impl;
        if (m->out_len + n >= sizeof m->out)
                return -ENOSPC;
        memcpy(m->out + m->out_len, buf, n);
        m->out_len += n;
        m->out[m->out_len] = 0;
        return 0;
}

static int mem_flush(void *impl)
{
        (void)impl;
        return 0;
}

static void request__parses_method_path_and_length(void)
{
        char *env[] = {"REQUEST_METHOD=POST", "DOCUMENT_URI=/v1/keys", "CONTENT_LENGTH=12",
                       "REQUEST_ID=0123abcd", "HTTP_X_API_KEY=wk_abc", NULL};
        struct http_request req;
        char err[REQUEST_ERR_MAX];
        CHECK(http_request_parse(env, &req, err) == 0);
        CHECK_STREQ(req.method, "POST");
        CHECK_STREQ(req.path, "/v1/keys");
        CHECK(req.content_length == 12);
        CHECK_STREQ(req.request_id, "0123abcd");
        CHECK_STREQ(req.api_key, "wk_abc");
}

static void request__control_characters_in_path_are_refused(void)
{
        char *env[] = {"REQUEST_METHOD=GET",
                       "DOCUMENT_URI=/v1/a\x01"
                       "b",
                       NULL};
        struct http_request req;
        char err[REQUEST_ERR_MAX];
        CHECK(http_request_parse(env, &req, err) == -EINVAL);
        CHECK(strstr(err, "control characters") != NULL);
}

static void request__bad_content_length_is_refused(void)
{
        char *env[] = {"REQUEST_METHOD=GET", "DOCUMENT_URI=/v1", "CONTENT_LENGTH=12x", NULL};
        struct http_request req;
        char err[REQUEST_ERR_MAX];
        CHECK(http_request_parse(env, &req, err) == -EINVAL);
}

static void request__foreign_request_id_is_replaced_not_echoed(void)
{
        char *env[] = {"REQUEST_METHOD=GET", "DOCUMENT_URI=/v1", "REQUEST_ID=<script>", NULL};
        struct http_request req;
        char err[REQUEST_ERR_MAX];
        CHECK(http_request_parse(env, &req, err) == 0);
        CHECK(strlen(req.request_id) == 32 && id_is_valid(req.request_id, 64));
}

static void request__body_read_stops_at_limit(void)
{
        struct membuf m = {.in = "0123456789abcdef", .in_len = 16};
        struct http_ctx ctx = {.io = {&m, mem_read, mem_write, mem_flush}};
        ctx.req.content_length = -1; /* chunked: length known only at the end */
        char *buf = NULL;
        size_t len;
        CHECK(http_read_body(&ctx, 10, &buf, &len) == -EFBIG);
        m.in_pos = 0;
        CHECK(http_read_body(&ctx, 16, &buf, &len) == 0 && len == 16 && strcmp(buf, "0123456789abcdef") == 0);
        free(buf);
}

static void request__error_answer_is_json_with_request_id(void)
{
        struct membuf m = {0};
        struct http_ctx ctx = {.io = {&m, mem_read, mem_write, mem_flush}};
        strcpy(ctx.req.request_id, "abc");
        http_add_header(&ctx, "Retry-After: %d", 3);
        http_respond_error(&ctx, 429, "slow down \xff");
        CHECK(strstr(m.out, "Status: 429 Too Many Requests\r\n") == m.out);
        CHECK(strstr(m.out, "X-Request-Id: abc\r\n") != NULL);
        CHECK(strstr(m.out, "Retry-After: 3\r\n") != NULL);
        CHECK(strstr(m.out, "{\"error\":\"slow down ?\",\"code\":\"rate_limited\"}") != NULL);
}

static void auth__bearer_and_x_api_key_are_both_accepted(void)
{
        struct http_request req = {.authorization = "bearer wk_Abc1"};
        const char *key;
        size_t len;
        char err[REQUEST_ERR_MAX];
        CHECK(auth_extract_key(&req, &key, &len, err) == 0 && len == 7 && strncmp(key, "wk_Abc1", 7) == 0);
        struct http_request req2 = {.api_key = "wk_Xyz"};
        CHECK(auth_extract_key(&req2, &key, &len, err) == 0 && len == 6);
}

static void auth__missing_malformed_and_oversized_keys_are_refused(void)
{
        const char *key;
        size_t len;
        char err[REQUEST_ERR_MAX];
        struct http_request none = {0};
        CHECK(auth_extract_key(&none, &key, &len, err) == -ENOKEY);
        struct http_request basic = {.authorization = "Basic dXNlcjpwYXNz"};
        CHECK(auth_extract_key(&basic, &key, &len, err) == -EINVAL);
        struct http_request odd = {.api_key = "wk_a;b"};
        CHECK(auth_extract_key(&odd, &key, &len, err) == -EINVAL);
        static char big[10001];
        memset(big, 'a', 10000);
        struct http_request huge = {.api_key = big};
        CHECK(auth_extract_key(&huge, &key, &len, err) == -EINVAL);
        CHECK(strstr(err, "longer than 128") != NULL);
}

int main(void)
{
        RUN(request__parses_method_path_and_length);
        RUN(request__control_characters_in_path_are_refused);
        RUN(request__bad_content_length_is_refused);
        RUN(request__foreign_request_id_is_replaced_not_echoed);
        RUN(request__body_read_stops_at_limit);
        RUN(request__error_answer_is_json_with_request_id);
        RUN(auth__bearer_and_x_api_key_are_both_accepted);
        RUN(auth__missing_malformed_and_oversized_keys_are_refused);
        return CHECK_SUMMARY();
}

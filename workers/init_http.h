/* Raw file transfers that nginx hands to the agent directly, over files.sock (inherited as
 * fd 6; launch.c binds it in the sandbox's host directory, where nothing in the sandbox can
 * reach it). The bytes of a large upload or download then pass nginx and warren-init only,
 * not a worker as well.
 *
 * One HTTP/1.0 request per connection, from nginx only: a GET or a PUT (with a
 * Content-Length) of /fs?t=<token>&r=<the fs request, JSON, percent-encoded>. The worker
 * checked the client, its key and its query, and wrote that request (api_fs_raw_route), with
 * the sandbox's token: the group that may connect to the socket is nginx's, but only the
 * workers can make the token (an HMAC of the sandbox's id under the node's secret), so a
 * process of that group gets no further than a 403. init_fs.c serves
 * it as any fs request, as the requesting user, and answers through the functions here: a
 * file as the body (sendfile), an upload's entry as JSON (201), an error as Warren's JSON
 * error with its status. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#define FILES_FD 6

struct http_link {
        int fd;
        long long body_left; /* bytes of the request body not yet read */
        char *pre;           /* body bytes that came with the head */
        size_t pre_len, pre_off;
};

/* The token requests must carry, from the environment the sandbox started with (init.c);
 * without one, every request is refused. */
void http_set_token(const char *token);

/* A request's head, parsed: its fs request and its body's length, or what was wrong with it
 * (code, one of the agent's error codes, and a message). */
struct http_head {
        json_t *request;
        long long body_len;
        const char *code, *error;
};

/* Parses head (changed in place; NUL-terminated, ending with its last header's CRLF):
 * 0, or -1 with ret's code and error set. Touches nothing else. */
int http_parse_head(char *head, struct http_head *ret);

/* Reads the request on fd: its fs request, and the body's length. On a malformed one, answers
 * 400 (403 without the token) and ends the process. */
json_t *http_read_request(int fd, struct http_link *ret);

/* Up to n bytes of the body; 0 at its end; -1 if nginx went away before its end. */
long http_body_read(struct http_link *l, char *buf, size_t n);
/* Whether body bytes that came with the head are still to be read (http_body_read first). */
bool http_body_buffered(const struct http_link *l);
/* The rest of the body into the file fd, through a pipe, never through user memory. 1 when it
 * is all in; 0 when the kernel refuses to splice between these two (nothing was moved: read
 * it instead); -1 if nginx went away before its end; -2 when the file refused a write
 * (*err says why). */
int http_body_splice(struct http_link *l, int fd, int *err);

_Noreturn void http_answer_error(struct http_link *l, const char *code, const char *msg);
_Noreturn void http_answer_json(struct http_link *l, int status, json_t *body);
/* The regular file fd as the body, named name; st is its stat. */
_Noreturn void http_answer_file(struct http_link *l, int fd, const struct stat *st, const char *name);

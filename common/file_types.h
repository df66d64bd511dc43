/* What an HTTP answer says about a sandbox file: its Content-Type, its Content-Disposition,
 * and the status of a file operation's error code; and the URL percent-encoding that raw
 * transfers' queries and targets use. Shared by the worker, which answers raw
 * transfers through FastCGI, and by warren-init, which answers them to nginx directly
 * (init_http.c). */
#pragma once

#include <stddef.h>

#define FILE_DISPOSITION_MAX 1100

/* From the name's extension, else from the first bytes (text if they are UTF-8). */
const char *file_content_type(const char *name, const char *head, size_t n);

/* The value of Content-Disposition for a download of name: a plain form of safe characters
 * and the name itself in filename*. */
void file_disposition(const char *name, char out[FILE_DISPOSITION_MAX]);

/* in, percent-encoded (all but RFC 3986's unreserved characters) into out; its length, or -1
 * when it does not fit in size bytes. */
long url_encode(const char *in, char *out, size_t size);

/* Decodes src[0..n) into dst (size bytes; in place is fine): %XX escapes and '+' for a
 * space. -EINVAL on a bad escape or an escaped NUL, -E2BIG when it does not fit. */
int url_decode(const char *src, size_t n, char *dst, size_t size);

/* The HTTP status of an error code of warren-init's file operations (init_fs.c). */
int file_error_status(const char *code);

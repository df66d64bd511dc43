/* Random identifiers and secrets. Ids are lower-case letters and digits only, never '-',
 * so that they fit in host names (`<port>-<id>.<domain>`) and in every compat family. */
#pragma once

#include <stddef.h>

/* Writes prefix followed by n random base-36 characters and a NUL into buf (of size
 * strlen(prefix) + n + 1 at least). Returns 0 or -errno. */
int id_random(const char *prefix, size_t n, char *buf, size_t bufsize);
/* Like id_random with base-62 characters, for secrets (API keys, tokens). */
int secret_random(const char *prefix, size_t n, char *buf, size_t bufsize);
/* True if s is non-empty and only [a-z0-9], at most max characters. */
int id_is_valid(const char *s, size_t max);

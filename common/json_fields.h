/* Parsing and checking JSON request bodies, with errors that name the offending field. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define JSON_ERR_MAX 256

/* jansson provides json_decrefp for its own json_auto_t. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

enum json_field_type {
        FIELD_STRING,
        FIELD_INTEGER,
        FIELD_NUMBER,
        FIELD_BOOLEAN,
        FIELD_OBJECT,
        FIELD_ARRAY,
        FIELD_ANY
};

struct json_field {
        const char *name;
        enum json_field_type type;
        bool required;
};

/* Parses a body that must be one JSON object (an empty body counts as {} when empty_ok).
 * Rejects duplicate keys, NUL characters and invalid UTF-8. */
int json_body_parse(const char *buf, size_t len, bool empty_ok, json_t **ret_obj, char err[JSON_ERR_MAX]);

/* Checks obj against spec: required fields present, every present field of its type, and
 * (unless allow_unknown) no field outside spec. Returns 0 or -EINVAL with err set. */
int json_fields_check(json_t *obj, const struct json_field *spec, size_t n, bool allow_unknown,
                      char err[JSON_ERR_MAX]);

/* An integer field in [min, max], or def when absent. err names the field when out of range. */
int json_int_field(json_t *obj, const char *name, long long min, long long max, long long def,
                   long long *ret_value, char err[JSON_ERR_MAX]);

/* Length of the valid UTF-8 character at s (at most left bytes), or 0 when it is not one:
 * overlongs, surrogates and code points past U+10FFFF included. */
size_t utf8_char_len(const unsigned char *s, size_t left);
/* How many bytes at the end of buf are the start of a character not yet complete (0-3): what
 * to hold back when text arrives in pieces. */
size_t utf8_incomplete_tail(const char *buf, size_t len);

/* Replaces every byte that is not part of valid UTF-8 with '?', in place, so that text
 * built from client input (a cut field name, a path) can always go into a JSON string. */
void utf8_sanitize(char *s);

/* A time (ms since the epoch) as the API writes it: "2026-11-22T01:02:03.456Z". */
json_t *json_iso_time(long long ms);

/* Bytes as a base64 JSON string (NULL when out of memory). */
json_t *json_base64(const char *data, size_t len);

/* Decodes standard base64 (padded, no whitespace) into a new buffer. -EINVAL if s is not
 * base64, -ENOMEM. */
int json_base64_decode(const char *s, size_t n, char **ret, size_t *ret_len);

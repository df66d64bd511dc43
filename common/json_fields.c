/* Request-body checks. Every message names the field and says what was expected, so a
 * client can fix its request from the 400 alone. */
#include "json_fields.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *type_name(enum json_field_type t)
{
        switch (t) {
        case FIELD_STRING:
                return "a string";
        case FIELD_INTEGER:
                return "an integer";
        case FIELD_NUMBER:
                return "a number";
        case FIELD_BOOLEAN:
                return "a boolean";
        case FIELD_OBJECT:
                return "an object";
        case FIELD_ARRAY:
                return "an array";
        case FIELD_ANY:
                return "a value";
        }
        return "a value";
}

static const char *json_kind(const json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "a value";
}

static bool type_matches(enum json_field_type t, const json_t *v)
{
        switch (t) {
        case FIELD_STRING:
                return json_is_string(v);
        case FIELD_INTEGER:
                return json_is_integer(v);
        case FIELD_NUMBER:
                return json_is_number(v);
        case FIELD_BOOLEAN:
                return json_is_boolean(v);
        case FIELD_OBJECT:
                return json_is_object(v);
        case FIELD_ARRAY:
                return json_is_array(v);
        case FIELD_ANY:
                return true;
        }
        return false;
}

int json_body_parse(const char *buf, size_t len, bool empty_ok, json_t **ret_obj, char err[JSON_ERR_MAX])
{
        size_t i = 0;
        while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t'))
                i++;
        if (i == len) {
                if (!empty_ok) {
                        snprintf(err, JSON_ERR_MAX, "request body is empty; expected a JSON object");
                        return -EINVAL;
                }
                *ret_obj = json_object();
                return *ret_obj ? 0 : -ENOMEM;
        }
        json_error_t jerr;
        json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!v) {
                snprintf(err, JSON_ERR_MAX, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                         jerr.text);
                return -EINVAL;
        }
        if (!json_is_object(v)) {
                snprintf(err, JSON_ERR_MAX, "request body must be a JSON object, not %s", json_kind(v));
                json_decref(v);
                return -EINVAL;
        }
        *ret_obj = v;
        return 0;
}

int json_fields_check(json_t *obj, const struct json_field *spec, size_t n, bool allow_unknown,
                      char err[JSON_ERR_MAX])
{
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_object_get(obj, spec[i].name);
                if (!v || json_is_null(v)) {
                        if (spec[i].required) {
                                snprintf(err, JSON_ERR_MAX, "missing field '%s' (%s)", spec[i].name,
                                         type_name(spec[i].type));
                                return -EINVAL;
                        }
                        continue;
                }
                if (!type_matches(spec[i].type, v)) {
                        snprintf(err, JSON_ERR_MAX, "field '%s': expected %s, got %s", spec[i].name,
                                 type_name(spec[i].type), json_kind(v));
                        return -EINVAL;
                }
        }
        if (allow_unknown)
                return 0;
        const char *key;
        json_t *v;
        json_object_foreach(obj, key, v)
        {
                bool known = false;
                for (size_t i = 0; i < n && !known; i++)
                        known = strcmp(spec[i].name, key) == 0;
                if (!known) {
                        snprintf(err, JSON_ERR_MAX, "unknown field '%.100s'", key);
                        return -EINVAL;
                }
        }
        return 0;
}

int json_int_field(json_t *obj, const char *name, long long min, long long max, long long def,
                   long long *ret_value, char err[JSON_ERR_MAX])
{
        json_t *v = json_object_get(obj, name);
        if (!v || json_is_null(v)) {
                *ret_value = def;
                return 0;
        }
        if (!json_is_integer(v)) {
                snprintf(err, JSON_ERR_MAX, "field '%s': expected an integer, got %s", name, json_kind(v));
                return -EINVAL;
        }
        long long x = json_integer_value(v);
        if (x < min || x > max) {
                snprintf(err, JSON_ERR_MAX, "field '%s': must be from %lld to %lld, got %lld", name, min, max,
                         x);
                return -EINVAL;
        }
        *ret_value = x;
        return 0;
}

size_t utf8_char_len(const unsigned char *s, size_t left)
{
        if (left == 0)
                return 0;
        if (s[0] < 0x80)
                return 1;
        size_t n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || n > left)
                return 0;
        unsigned cp = s[0] & (0x7f >> n);
        for (size_t i = 1; i < n; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        static const unsigned min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return n;
}

void utf8_sanitize(char *s)
{
        unsigned char *p = (unsigned char *)s;
        size_t left = strlen(s);
        while (left > 0) {
                size_t n = utf8_char_len(p, left);
                if (n == 0) {
                        *p = '?';
                        n = 1;
                }
                p += n;
                left -= n;
        }
}

size_t utf8_incomplete_tail(const char *buf, size_t len)
{
        for (size_t back = 1; back <= 3 && back <= len; back++) {
                unsigned char c = (unsigned char)buf[len - back];
                if ((c & 0xc0) == 0x80)
                        continue; /* a continuation byte: the lead is further back */
                size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
                return need > back ? back : 0;
        }
        return 0;
}

json_t *json_iso_time(long long ms)
{
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        char buf[40];
        size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, sizeof buf - n, ".%03lldZ", ms % 1000);
        return json_string(buf);
}

json_t *json_base64(const char *data, size_t len)
{
        char *b64 = malloc(len / 3 * 4 + 5);
        if (!b64)
                return NULL;
        EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)data, (int)len);
        json_t *s = json_string(b64);
        free(b64);
        return s;
}

int json_base64_decode(const char *s, size_t n, char **ret, size_t *ret_len)
{
        if (n % 4 != 0 || n > (size_t)INT32_MAX)
                return -EINVAL;
        size_t pad = n && s[n - 1] == '=' ? (n > 1 && s[n - 2] == '=' ? 2 : 1) : 0;
        for (size_t i = 0; i < n - pad; i++)
                if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '/'))
                        return -EINVAL;
        char *out = malloc(n / 4 * 3 + 1);
        if (!out)
                return -ENOMEM;
        int got = n ? EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n) : 0;
        if (got < 0) {
                free(out);
                return -EINVAL;
        }
        *ret = out;
        *ret_len = (size_t)got - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
        return 0;
}

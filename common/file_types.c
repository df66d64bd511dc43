/* See file_types.h. */
#include "file_types.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ELEMENTS(a) (sizeof(a) / sizeof *(a))

const char *file_content_type(const char *name, const char *head, size_t n)
{
        static const struct {
                const char *ext, *type;
        } types[] = {
            {"txt", "text/plain; charset=utf-8"},
            {"md", "text/markdown; charset=utf-8"},
            {"html", "text/html; charset=utf-8"},
            {"htm", "text/html; charset=utf-8"},
            {"css", "text/css; charset=utf-8"},
            {"csv", "text/csv; charset=utf-8"},
            {"js", "text/javascript; charset=utf-8"},
            {"json", "application/json"},
            {"xml", "application/xml"},
            {"svg", "image/svg+xml"},
            {"png", "image/png"},
            {"jpg", "image/jpeg"},
            {"jpeg", "image/jpeg"},
            {"gif", "image/gif"},
            {"webp", "image/webp"},
            {"pdf", "application/pdf"},
            {"zip", "application/zip"},
            {"gz", "application/gzip"},
            {"tar", "application/x-tar"},
            {"wasm", "application/wasm"},
            {"py", "text/x-python; charset=utf-8"},
            {"sh", "text/x-shellscript; charset=utf-8"},
        };
        const char *dot = strrchr(name, '.');
        for (size_t i = 0; dot && i < ELEMENTS(types); i++)
                if (strcasecmp(dot + 1, types[i].ext) == 0)
                        return types[i].type;
        if (n == 0)
                return "application/octet-stream";
        if (memchr(head, 0, n))
                return "application/octet-stream";
        size_t len = n > 1024 ? 1024 : n;
        json_t *t = json_stringn(head, len);
        /* 1 KiB of a longer file may end inside a character: then up to 3 bytes less decide
         * (never all of it: a short file of bytes that are not UTF-8 is not text). */
        for (size_t drop = 1; !t && n >= 1024 && drop <= 3; drop++)
                t = json_stringn(head, len - drop);
        bool text = t != NULL;
        json_decref(t);
        return text ? "text/plain; charset=utf-8" : "application/octet-stream";
}

void file_disposition(const char *name, char out[FILE_DISPOSITION_MAX])
{
        char plain[256], encoded[800], cut[256];
        size_t p = 0;
        for (const unsigned char *c = (const unsigned char *)name; *c && p < sizeof plain - 1; c++)
                plain[p++] = (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\') ? (char)*c : '_';
        plain[p] = 0;
        /* A name of 255 bytes fits encoded; a longer one is cut first. */
        snprintf(cut, sizeof cut, "%s", name);
        if (url_encode(cut, encoded, sizeof encoded) < 0)
                encoded[0] = 0;
        snprintf(out, FILE_DISPOSITION_MAX, "attachment; filename=\"%s\"; filename*=UTF-8''%s", plain,
                 encoded);
}

long url_encode(const char *in, char *out, size_t size)
{
        size_t n = 0;
        for (const unsigned char *c = (const unsigned char *)in; *c; c++) {
                bool plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                             (*c >= '0' && *c <= '9') || strchr("-._~", *c);
                if (n + (plain ? 1 : 3) + 1 > size) /* and the NUL */
                        return -1;
                if (plain)
                        out[n++] = (char)*c;
                else
                        n += (size_t)snprintf(out + n, size - n, "%%%02X", *c);
        }
        if (n >= size)
                return -1;
        out[n] = 0;
        return (long)n;
}

static int hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int url_decode(const char *src, size_t n, char *dst, size_t size)
{
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
                if (o + 1 >= size)
                        return -E2BIG;
                char c = src[i];
                if (c == '+') {
                        c = ' ';
                } else if (c == '%') {
                        if (i + 2 >= n)
                                return -EINVAL;
                        int hi = hex_value(src[i + 1]), lo = hex_value(src[i + 2]);
                        if (hi < 0 || lo < 0)
                                return -EINVAL;
                        c = (char)(hi * 16 + lo);
                        if (c == 0)
                                return -EINVAL;
                        i += 2;
                }
                dst[o++] = c;
        }
        dst[o] = 0;
        return 0;
}

int file_error_status(const char *code)
{
        static const struct {
                const char *code;
                int status;
        } map[] = {{"not_found", 404},      {"permission_denied", 403}, {"not_a_file", 400},
                   {"is_a_directory", 400}, {"not_a_directory", 400},   {"bad_request", 400},
                   {"exists", 409},         {"not_empty", 409},         {"too_large", 413},
                   {"no_space", 507},       {"too_many", 409}};
        for (size_t i = 0; i < ELEMENTS(map); i++)
                if (strcmp(code, map[i].code) == 0)
                        return map[i].status;
        return 500;
}

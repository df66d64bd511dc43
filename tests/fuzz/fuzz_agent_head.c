/* Fuzz target for the agent's side of a raw transfer: the head of the HTTP/1.0 request that
 * nginx sends over files.sock (workers/init_http.c), parsed before anything else happens.
 * Whatever the bytes, the parser answers a request or an error and reads nothing past them;
 * a head it takes is a write or a download with a length of zero or more. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "init_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static int once;
        if (!once++)
                http_set_token("0123456789abcdef");
        char *head = malloc(size + 1);
        if (!head)
                return 0;
        memcpy(head, data, size);
        head[size] = 0;
        struct http_head h;
        if (http_parse_head(head, &h) == 0) {
                const char *action = json_string_value(json_object_get(h.request, "action"));
                if (!action || (strcmp(action, "write") != 0 && strcmp(action, "download") != 0) ||
                    h.body_len < 0)
                        abort();
                json_decref(h.request);
        } else if (!h.code || !h.error) {
                abort();
        }
        free(head);
        return 0;
}

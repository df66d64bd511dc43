/* Error rendering, swappable per API family: the native API answers {"error", "code"};
 * compat families (Daytona, E2B-shaped, …) plug in their own product's shape here. */
#pragma once

#include <jansson.h>

struct error_family {
        const char *name;
        /* Returns a new JSON body for an error answer. code is a short machine word
         * (bad_request, not_found, …) derived from the status. */
        json_t *(*render)(int status, const char *code, const char *message, const char *request_id);
};

extern const struct error_family error_family_native;

/* The machine word for an HTTP status: 400 → "bad_request", 429 → "rate_limited", … */
const char *error_code_for_status(int status);
/* The reason phrase for the Status header: 404 → "Not Found". */
const char *http_reason(int status);

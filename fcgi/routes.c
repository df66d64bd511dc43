/* Every route Warren serves, in one table: method, pattern, handler, the scope a key needs,
 * the largest body accepted, and flags. Compat families add their rows with their own
 * error family. */
#include "api.h"
#include "keys.h"

#define KiB (1024)

const struct route routes[] = {
    {"GET", "/healthz", api_health_get, 0, 0, ROUTE_NO_AUTH, NULL},
    {"GET", "/v1/usage", api_usage_get, 0, 0, 0, NULL},
    {"POST", "/v1/keys", api_keys_create, SCOPE_ADMIN, 64 * KiB, 0, NULL},
    {"GET", "/v1/keys", api_keys_list, SCOPE_ADMIN, 0, 0, NULL},
    {"GET", "/v1/keys/:id", api_keys_get, SCOPE_ADMIN, 0, 0, NULL},
    {"DELETE", "/v1/keys/:id", api_keys_revoke, SCOPE_ADMIN, 0, 0, NULL},
};
const size_t routes_count = sizeof routes / sizeof routes[0];

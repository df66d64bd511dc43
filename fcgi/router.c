/* A linear scan over a small table is faster than any tree at this size, and the table is
 * read-only, so every thread shares it. */
#include "router.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Matches one pattern against a path, segment by segment, capturing parameters.
 * Returns 1 on a match, 0 on none, -1 if a parameter value is too long. */
static int pattern_match(const char *pattern, const char *path, struct route_params *params)
{
        params->n = 0;
        const char *pp = pattern, *xp = path;
        while (*pp && *xp) {
                if (*pp != '/' || *xp != '/')
                        return 0;
                pp++;
                xp++;
                size_t plen = strcspn(pp, "/");
                size_t xlen = *pp == '*' ? strlen(xp) : strcspn(xp, "/");
                if (*pp == ':' || *pp == '*') {
                        if (xlen == 0 || params->n >= ROUTE_PARAMS_MAX)
                                return 0;
                        if (xlen >= ROUTE_PARAM_MAX)
                                return -1;
                        params->p[params->n].name = pp + 1;
                        params->p[params->n].name_len = plen - 1;
                        memcpy(params->p[params->n].value, xp, xlen);
                        params->p[params->n].value[xlen] = 0;
                        params->n++;
                } else if (plen != xlen || memcmp(pp, xp, plen) != 0) {
                        return 0;
                }
                pp += plen;
                xp += xlen;
        }
        return *pp == 0 && *xp == 0;
}

enum route_match router_match(const struct route *table, size_t n, const char *method, const char *path,
                              const struct route **ret_route, struct route_params *ret_params,
                              char allow[ROUTE_ALLOW_MAX])
{
        struct route_params params;
        bool path_known = false, too_long = false;
        size_t used = 0;
        allow[0] = 0;
        for (size_t i = 0; i < n; i++) {
                int m = pattern_match(table[i].pattern, path, &params);
                if (m < 0)
                        too_long = true;
                if (m <= 0)
                        continue;
                if (strcmp(table[i].method, method) == 0) {
                        *ret_route = &table[i];
                        *ret_params = params;
                        return ROUTE_FOUND;
                }
                path_known = true;
                if (!strstr(allow, table[i].method))
                        used += (size_t)snprintf(allow + used,
                                                 used < ROUTE_ALLOW_MAX ? ROUTE_ALLOW_MAX - used : 0, "%s%s",
                                                 used ? ", " : "", table[i].method);
        }
        if (path_known)
                return ROUTE_METHOD_NOT_ALLOWED;
        return too_long ? ROUTE_BAD_PARAM : ROUTE_NOT_FOUND;
}

const char *route_param(const struct route_params *params, const char *name)
{
        size_t len = strlen(name);
        for (int i = 0; i < params->n; i++)
                if (params->p[i].name_len == len && memcmp(params->p[i].name, name, len) == 0)
                        return params->p[i].value;
        return NULL;
}

/* warrenctl: the node's command line, run as root on the node. `warren keys …` in the
 * top-level script lands here. It talks to the node's Redis directly (the same redis_url
 * as warrend), so it works before any key exists, which is how the first admin key is made.
 *
 *   warrenctl [-c CONFIG] keys create --name NAME [--scopes a,b] [--max-sandboxes N]
 *                                     [--max-databases N] [--max-services N] [--rate R]
 *                                     [--burst B] [--json | --key-only]
 *   warrenctl [-c CONFIG] keys list [--json]
 *   warrenctl [-c CONFIG] keys revoke ID
 *   warrenctl [-c CONFIG] keys check        (reads a key on stdin; exit 0 if it works) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "config.h"
#include "json_fields.h"
#include "keys.h"
#include "redis_client.h"

static int usage(void)
{
        fprintf(stderr, "usage: warrenctl [-c CONFIG] keys create --name NAME [--scopes sandboxes,databases,"
                        "hosting,admin]\n"
                        "                 [--max-sandboxes N] [--max-databases N] [--max-services N] "
                        "[--rate R] [--burst B] [--json|--key-only]\n"
                        "       warrenctl [-c CONFIG] keys list [--json]\n"
                        "       warrenctl [-c CONFIG] keys revoke ID\n"
                        "       warrenctl [-c CONFIG] keys check < keyfile\n");
        return 2;
}

static int parse_count(const char *flag, const char *v, long long min, long long max, long long *ret)
{
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || *end || end == v || x < min || x > max) {
                fprintf(stderr, "warrenctl: %s takes a number from %lld to %lld, not '%s'\n", flag, min, max,
                        v);
                return -EINVAL;
        }
        *ret = x;
        return 0;
}

static int keys_create_cmd(struct redis_client *rc, const struct warren_config *cfg, int argc, char **argv)
{
        struct key_spec spec = {
            .scopes = SCOPE_SANDBOXES | SCOPE_DATABASES | SCOPE_HOSTING,
            .rate = cfg->default_rate,
            .burst = 0,
            .max = {cfg->default_max_sandboxes, cfg->default_max_databases, cfg->default_max_services},
        };
        int json = 0, key_only = 0;
        for (int i = 0; i < argc; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                int r = 0;
                if (!strcmp(a, "--json"))
                        json = 1;
                else if (!strcmp(a, "--key-only"))
                        key_only = 1;
                else if (!v)
                        return usage();
                else if (!strcmp(a, "--name"))
                        spec.name = v;
                else if (!strcmp(a, "--scopes")) {
                        char err[KEY_ERR_MAX];
                        if (scopes_parse(v, &spec.scopes, err) < 0) {
                                fprintf(stderr, "warrenctl: %s\n", err);
                                return 2;
                        }
                } else if (!strcmp(a, "--max-sandboxes"))
                        r = parse_count(a, v, 0, 100000, &spec.max[0]);
                else if (!strcmp(a, "--max-databases"))
                        r = parse_count(a, v, 0, 100000, &spec.max[1]);
                else if (!strcmp(a, "--max-services"))
                        r = parse_count(a, v, 0, 100000, &spec.max[2]);
                else if (!strcmp(a, "--rate"))
                        r = parse_count(a, v, 1, 1000000000, &spec.rate);
                else if (!strcmp(a, "--burst"))
                        r = parse_count(a, v, 1, 1000000000, &spec.burst);
                else
                        return usage();
                if (r < 0)
                        return 2;
                if (strcmp(a, "--json") && strcmp(a, "--key-only"))
                        i++;
        }
        if (!spec.name || !*spec.name || strlen(spec.name) >= KEY_NAME_MAX) {
                fprintf(stderr, "warrenctl: --name is required (1 to %d characters)\n", KEY_NAME_MAX - 1);
                return 2;
        }
        if (!spec.burst)
                spec.burst = cfg->default_burst > spec.rate ? cfg->default_burst : spec.rate;
        char secret[KEY_SECRET_MAX], err[KEY_ERR_MAX];
        _cleanup_json_ json_t *info = NULL;
        if (keys_create(rc, &spec, secret, &info, err) < 0) {
                fprintf(stderr, "warrenctl: create key: %s\n", err);
                return 1;
        }
        if (key_only) {
                printf("%s\n", secret);
        } else if (json) {
                json_object_set_new(info, "key", json_string(secret));
                json_dumpf(info, stdout, JSON_INDENT(2));
                printf("\n");
        } else {
                char scopes[128];
                scopes_format(spec.scopes, scopes, sizeof scopes);
                printf("id:      %s\nname:    %s\nscopes:  %s\nkey:     %s\n(the key is shown only now: "
                       "store it)\n",
                       json_string_value(json_object_get(info, "id")), spec.name, scopes, secret);
        }
        explicit_bzero(secret, sizeof secret);
        return 0;
}

static int keys_list_cmd(struct redis_client *rc, int json)
{
        char err[KEY_ERR_MAX];
        _cleanup_json_ json_t *arr = NULL;
        if (keys_list(rc, &arr, err) < 0) {
                fprintf(stderr, "warrenctl: list keys: %s\n", err);
                return 1;
        }
        if (json) {
                json_dumpf(arr, stdout, JSON_INDENT(2));
                printf("\n");
                return 0;
        }
        printf("%-18s %-12s %-8s %-32s %s\n", "ID", "PREFIX", "STATE", "SCOPES", "NAME");
        size_t i;
        json_t *k;
        json_array_foreach(arr, i, k)
        {
                char scopes[128] = "";
                size_t j;
                json_t *s;
                json_array_foreach(json_object_get(k, "scopes"), j, s)
                {
                        if (j)
                                strcat(scopes, ",");
                        strcat(scopes, json_string_value(s));
                }
                printf("%-18s %-12s %-8s %-32s %s\n", json_string_value(json_object_get(k, "id")),
                       json_string_value(json_object_get(k, "prefix")),
                       json_is_true(json_object_get(k, "revoked")) ? "revoked" : "active", scopes,
                       json_string_value(json_object_get(k, "name")));
        }
        return 0;
}

static int keys_check_cmd(struct redis_client *rc)
{
        char key[256];
        if (!fgets(key, sizeof key, stdin))
                return 1;
        key[strcspn(key, "\r\n")] = 0;
        char lookup[80], err[REDIS_ERR_MAX];
        keys_lookup_name(key, strlen(key), lookup);
        explicit_bzero(key, sizeof key);
        _cleanup_reply_ redisReply *reply = NULL;
        if (redis_client_cmd(rc, &reply, err, "EXISTS %s", lookup) < 0) {
                fprintf(stderr, "warrenctl: %s\n", err);
                return 1;
        }
        return reply->integer == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
        const char *config_path = getenv("WARREN_CONFIG");
        int i = 1;
        if (i + 1 < argc && !strcmp(argv[i], "-c")) {
                config_path = argv[i + 1];
                i += 2;
        }
        if (i + 1 >= argc || strcmp(argv[i], "keys"))
                return usage();
        const char *verb = argv[i + 1];
        char **rest = argv + i + 2;
        int nrest = argc - i - 2;

        struct warren_config cfg;
        char err[CONFIG_ERR_MAX];
        if (config_load(config_path, &cfg, err) < 0) {
                fprintf(stderr, "warrenctl: %s\n", err);
                return 2;
        }
        _cleanup_redis_ struct redis_client *rc = NULL;
        char rerr[REDIS_ERR_MAX];
        if (redis_client_new(cfg.redis_url, cfg.redis_timeout_ms, &rc, rerr) < 0) {
                fprintf(stderr, "warrenctl: %s\n", rerr);
                return 2;
        }
        if (!strcmp(verb, "create"))
                return keys_create_cmd(rc, &cfg, nrest, rest);
        if (!strcmp(verb, "list"))
                return keys_list_cmd(rc, nrest == 1 && !strcmp(rest[0], "--json"));
        if (!strcmp(verb, "check"))
                return keys_check_cmd(rc);
        if (!strcmp(verb, "revoke") && nrest == 1) {
                char kerr[KEY_ERR_MAX];
                if (keys_revoke(rc, rest[0], kerr) < 0) {
                        fprintf(stderr, "warrenctl: revoke: %s\n", kerr);
                        return 1;
                }
                printf("revoked %s\n", rest[0]);
                return 0;
        }
        return usage();
}

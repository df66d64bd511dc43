/* Configuration: defaults, the file, the environment over the file, and clear refusals. */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "config.h"

static char *write_conf(const char *text)
{
        static char path[] = "/tmp/warren-test-conf-XXXXXX";
        strcpy(path, "/tmp/warren-test-conf-XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0 || write(fd, text, strlen(text)) < 0)
                return NULL;
        close(fd);
        return path;
}

static void config__defaults_derive_paths_from_state_dir(void)
{
        struct warren_config cfg;
        char err[CONFIG_ERR_MAX];
        char *p = write_conf("state_dir = /srv/w\n");
        CHECK(config_load(p, &cfg, err) == 0);
        CHECK_STREQ(cfg.socket_path, "/srv/w/run/warrend.sock");
        CHECK_STREQ(cfg.redis_url, "unix:/srv/w/redis/redis.sock");
        CHECK(cfg.threads == 64 && cfg.workers >= 1);
        unlink(p);
}

static void config__environment_wins_over_file(void)
{
        struct warren_config cfg;
        char err[CONFIG_ERR_MAX];
        char *p = write_conf("# comment\nthreads = 8\nworkers=3\n");
        setenv("WARREN_THREADS", "16", 1);
        CHECK(config_load(p, &cfg, err) == 0);
        CHECK(cfg.threads == 16);
        CHECK(cfg.workers == 3);
        unsetenv("WARREN_THREADS");
        unlink(p);
}

static void config__unknown_key_is_named_with_its_line(void)
{
        struct warren_config cfg;
        char err[CONFIG_ERR_MAX] = "";
        char *p = write_conf("threads = 4\ncolour = blue\n");
        CHECK(config_load(p, &cfg, err) < 0);
        CHECK(strstr(err, ":2: unknown key 'colour'") != NULL);
        unlink(p);
}

static void config__out_of_range_number_is_refused(void)
{
        struct warren_config cfg;
        char err[CONFIG_ERR_MAX] = "";
        char *p = write_conf("threads = 5000\n");
        CHECK(config_load(p, &cfg, err) < 0);
        CHECK(strstr(err, "'threads' must be a number from 0 to 256") != NULL);
        unlink(p);
        setenv("WARREN_WORKERS", "many", 1);
        CHECK(config_load(NULL, &cfg, err) < 0);
        CHECK(strstr(err, "WARREN_WORKERS") != NULL);
        unsetenv("WARREN_WORKERS");
}

static void config__missing_file_means_defaults(void)
{
        struct warren_config cfg;
        char err[CONFIG_ERR_MAX];
        CHECK(config_load("/nonexistent/warren.conf", &cfg, err) == 0);
        CHECK_STREQ(cfg.state_dir, "/var/lib/warren");
}

int main(void)
{
        RUN(config__defaults_derive_paths_from_state_dir);
        RUN(config__environment_wins_over_file);
        RUN(config__unknown_key_is_named_with_its_line);
        RUN(config__out_of_range_number_is_refused);
        RUN(config__missing_file_means_defaults);
        return CHECK_SUMMARY();
}

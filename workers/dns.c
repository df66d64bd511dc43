/* The sandboxes' DNS forwarder (see dns.h). */
#include "dns.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

extern char **environ;

static int fail(char err[DNS_ERR_MAX], int r, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char err[DNS_ERR_MAX], int r, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, DNS_ERR_MAX, fmt, ap);
        va_end(ap);
        return r;
}

static void state_path(const struct warren_config *cfg, const char *rel, char out[PATH_MAX])
{
        snprintf(out, PATH_MAX, "%.3000s/%s", cfg->state_dir, rel);
}

/* --- names --------------------------------------------------------------------------- */

bool dns_domain_valid(const char *s)
{
        size_t n = strlen(s), label = 0, labels = 1;
        bool digits_only = true;
        if (n == 0 || n > 253 || s[0] == '.' || s[n - 1] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '.') {
                        if (label == 0 || s[i - 1] == '-')
                                return false;
                        label = 0;
                        labels++;
                        digits_only = true;
                        continue;
                }
                bool letter = c >= 'a' && c <= 'z', digit = c >= '0' && c <= '9';
                if (!(letter || digit || c == '-') || (label == 0 && c == '-') || ++label > 63)
                        return false;
                digits_only = digits_only && digit;
        }
        return labels >= 2 && s[n - 1] != '-' && !digits_only;
}

void dns_domain_set_name(const char *domain, char out[DNS_SET_NAME_MAX])
{
        uint64_t h = 14695981039346656037ull; /* FNV-1a: names only need to differ */
        for (const char *p = domain; *p; p++)
                h = (h ^ (unsigned char)*p) * 1099511628211ull;
        snprintf(out, DNS_SET_NAME_MAX, "dns_%016llx", (unsigned long long)h);
}

/* --- the process --------------------------------------------------------------------- */

static pid_t running_pid(const struct warren_config *cfg)
{
        char path[PATH_MAX], buf[32] = {0}, comm[32] = {0};
        state_path(cfg, "run/dnsmasq.pid", path);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0)
                return 0;
        long pid = strtol(buf, NULL, 10);
        snprintf(path, sizeof path, "/proc/%ld/comm", pid);
        _cleanup_close_ int cfd = pid > 1 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (cfd < 0 || read(cfd, comm, sizeof comm - 1) <= 0 || strncmp(comm, "dnsmasq", 7) != 0)
                return 0;
        return (pid_t)pid;
}

/* dnsmasq's command line. Its cache keeps an answer an hour at most, well inside the day a
 * domain set keeps an address, so an address it answers from its cache is still in the set. */
static int command_line(const struct warren_config *cfg, const char *gateway, char store[24][PATH_MAX + 32],
                        char *argv[25])
{
        char path[PATH_MAX];
        int n = 0;
        snprintf(store[n++], sizeof store[0], "dnsmasq");
        state_path(cfg, "dns/domains.conf", path);
        snprintf(store[n++], sizeof store[0], "--conf-file=%s", path);
        state_path(cfg, "run/dnsmasq.pid", path);
        snprintf(store[n++], sizeof store[0], "--pid-file=%s", path);
        snprintf(store[n++], sizeof store[0], "--listen-address=%s", gateway);
        snprintf(store[n++], sizeof store[0], "--bind-dynamic");
        snprintf(store[n++], sizeof store[0], "--except-interface=lo");
        snprintf(store[n++], sizeof store[0], "--no-hosts");
        state_path(cfg, "dns/hosts", path);
        snprintf(store[n++], sizeof store[0], "--addn-hosts=%s", path);
        snprintf(store[n++], sizeof store[0], "--cache-size=1000");
        snprintf(store[n++], sizeof store[0], "--max-cache-ttl=3600");
        state_path(cfg, "logs/dnsmasq.log", path);
        snprintf(store[n++], sizeof store[0], "--log-facility=%s", path);
        snprintf(store[n++], sizeof store[0], "--user=nobody");
        snprintf(store[n++], sizeof store[0], "--group=nogroup");
        if (!cfg->dns_servers[0]) {
                snprintf(store[n++], sizeof store[0], "--resolv-file=/etc/resolv.conf");
        } else {
                snprintf(store[n++], sizeof store[0], "--no-resolv");
                char list[sizeof cfg->dns_servers];
                snprintf(list, sizeof list, "%s", cfg->dns_servers);
                for (char *save = NULL, *s = strtok_r(list, ", ", &save); s && n < 23;
                     s = strtok_r(NULL, ", ", &save))
                        snprintf(store[n++], sizeof store[0], "--server=%s", s);
        }
        for (int i = 0; i < n; i++)
                argv[i] = store[i];
        argv[n] = NULL;
        return n;
}

/* Runs dnsmasq, which answers once it is listening and has put itself in the background. */
static int spawn(const struct warren_config *cfg, const char *gateway, char err[DNS_ERR_MAX])
{
        /* 100 KB of arguments: on the heap, not on a request thread's stack. */
        _cleanup_free_ char(*store)[PATH_MAX + 32] = calloc(24, sizeof *store);
        char *argv[25];
        if (!store)
                return -ENOMEM;
        command_line(cfg, gateway, store, argv);
        posix_spawnattr_t attr;
        posix_spawn_file_actions_t fa;
        posix_spawnattr_init(&attr);
        posix_spawn_file_actions_init(&fa);
        /* A master blocks the signals it waits for; dnsmasq must get them. */
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
        for (int fd = 0; fd < 3; fd++)
                posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", O_RDWR, 0);
        pid_t pid;
        int r = posix_spawnp(&pid, "dnsmasq", &fa, &attr, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        if (r != 0)
                return fail(err, -r, "start dnsmasq: %s", strerror(r));
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return fail(err, -EIO, "dnsmasq did not start (see %.120s/logs/dnsmasq.log)", cfg->state_dir);
        return 0;
}

/* Gone, or dead and waiting for its parent (init, since dnsmasq leaves its own) to reap it. */
static bool gone(pid_t pid)
{
        char path[64], stat[256] = {0};
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, stat, sizeof stat - 1) <= 0)
                return true;
        const char *state = strrchr(stat, ')');
        return state && (state[2] == 'Z' || state[2] == 'X');
}

static void stop(pid_t pid)
{
        if (pid <= 0 || kill(pid, SIGTERM) < 0)
                return;
        for (int i = 0; i < 400 && !gone(pid); i++)
                nanosleep(&(struct timespec){.tv_nsec = 2 * 1000 * 1000}, NULL);
}

int dns_forwarder_start(const struct warren_config *cfg, const char *gateway, char err[DNS_ERR_MAX])
{
        char path[PATH_MAX];
        state_path(cfg, "dns/domains.conf", path);
        _cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
                return fail(err, -errno, "create %.200s: %s", path, strerror(errno));
        if (running_pid(cfg) > 0)
                return 0;
        return spawn(cfg, gateway, err);
}

/* --- domains ------------------------------------------------------------------------- */

static char *read_text(const char *path)
{
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        if (!f)
                return strdup("");
        char *text = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&text, &len);
        if (!m)
                return NULL;
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0)
                fwrite(buf, 1, n, m);
        fclose(m);
        return text;
}

static size_t count_lines(const char *text)
{
        size_t n = 0;
        for (const char *p = text; (p = strchr(p, '\n')); p++)
                n++;
        return n;
}

int dns_domains_follow(const struct warren_config *cfg, const char *bridge, const char *gateway,
                       json_t *names, char err[DNS_ERR_MAX])
{
        char path[PATH_MAX], lock_path[PATH_MAX];
        state_path(cfg, "dns/domains.conf", path);
        state_path(cfg, "dns/domains.lock", lock_path);
        /* Workers on this node (and their threads) add domains one at a time. */
        _cleanup_close_ int lock = open(lock_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
        if (lock < 0 || flock(lock, LOCK_EX) < 0)
                return fail(err, -errno, "lock %.200s: %s", lock_path, strerror(errno));
        _cleanup_free_ char *text = read_text(path);
        if (!text)
                return fail(err, -ENOMEM, "read %.200s", path);
        size_t have = count_lines(text);
        _cleanup_fclose_ FILE *out = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(names, i, e)
        {
                const char *d = json_string_value(e);
                if (!d || !dns_domain_valid(d))
                        continue;
                char set[DNS_SET_NAME_MAX], line[400];
                dns_domain_set_name(d, set);
                snprintf(line, sizeof line, "nftset=/%s/4#inet#%s#%s\n", d, bridge, set);
                if (strstr(text, line))
                        continue;
                if (have++ >= DNS_DOMAINS_MAX)
                        return fail(err, -ENOSPC, "this node already follows %d domain names",
                                    DNS_DOMAINS_MAX);
                if (!out && !(out = fopen(path, "ae")))
                        return fail(err, -errno, "open %.200s: %s", path, strerror(errno));
                fputs(line, out);
        }
        if (!out)
                return 0;
        if (fflush(out) != 0)
                return fail(err, -EIO, "write %.200s", path);
        /* dnsmasq reads these lines only at start. Queries in the moment between are retried
         * by the sandbox's resolver. */
        stop(running_pid(cfg));
        return spawn(cfg, gateway, err);
}

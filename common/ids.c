/* Ids and secrets from getrandom(2). Rejection sampling keeps every character uniform. */
#include "ids.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static int random_chars(const char *alphabet, size_t alen, size_t n, char *out)
{
        /* Largest multiple of alen that fits in a byte: bytes above it are drawn again. */
        unsigned limit = 256 - (256 % alen);
        size_t filled = 0;
        unsigned char pool[64];
        while (filled < n) {
                ssize_t got = getrandom(pool, sizeof pool, 0);
                if (got < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (ssize_t i = 0; i < got && filled < n; i++)
                        if (pool[i] < limit)
                                out[filled++] = alphabet[pool[i] % alen];
        }
        return 0;
}

static int prefixed_random(const char *alphabet, const char *prefix, size_t n, char *buf, size_t bufsize)
{
        size_t plen = strlen(prefix);
        if (plen + n + 1 > bufsize)
                return -ENOBUFS;
        memcpy(buf, prefix, plen);
        int r = random_chars(alphabet, strlen(alphabet), n, buf + plen);
        if (r < 0)
                return r;
        buf[plen + n] = 0;
        return 0;
}

int id_random(const char *prefix, size_t n, char *buf, size_t bufsize)
{
        return prefixed_random("abcdefghijklmnopqrstuvwxyz0123456789", prefix, n, buf, bufsize);
}

int secret_random(const char *prefix, size_t n, char *buf, size_t bufsize)
{
        return prefixed_random("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", prefix, n,
                               buf, bufsize);
}

int id_is_valid(const char *s, size_t max)
{
        size_t n = 0;
        for (; s[n]; n++) {
                if (n >= max)
                        return 0;
                char c = s[n];
                if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                        return 0;
        }
        return n > 0;
}

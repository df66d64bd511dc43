/* A lean HTTP/1.1 client for latency figures: the same POST, one after another on one
 * kept-alive connection, each timed from the first byte sent to the last byte of the
 * answer read. No client library in the measurement, as the host references have none.
 *
 *   http_post_loop PORT PATH AUTH_HEADER BODY ROUNDS
 *
 * Prints one duration in microseconds per line; exits 1 on any answer but 200. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Reads one answer: headers, then Content-Length bytes or chunks up to the last one. */
static int read_answer(int fd, char *buf, size_t size)
{
        size_t have = 0;
        for (;;) {
                ssize_t n = read(fd, buf + have, size - 1 - have);
                if (n <= 0)
                        return -1;
                have += (size_t)n;
                buf[have] = 0;
                char *end = strstr(buf, "\r\n\r\n");
                if (!end)
                        continue;
                char *cl = strcasestr(buf, "\r\ncontent-length:");
                if (cl && cl < end) {
                        size_t want = (size_t)(end + 4 - buf) + strtoul(cl + 17, NULL, 10);
                        if (have >= want)
                                return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
                } else if (strstr(end, "\r\n0\r\n\r\n")) {
                        return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
                }
        }
}

int main(int argc, char **argv)
{
        if (argc != 6) {
                fprintf(stderr, "usage: http_post_loop PORT PATH AUTH_HEADER BODY ROUNDS\n");
                return 2;
        }
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[1]))};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
                perror("connect");
                return 1;
        }
        static char req[1 << 16], buf[1 << 20];
        int len = snprintf(req, sizeof req,
                           "POST %s HTTP/1.1\r\nHost: bench\r\n%s\r\nContent-Type: application/json\r\n"
                           "Content-Length: %zu\r\n\r\n%s",
                           argv[2], argv[3], strlen(argv[4]), argv[4]);
        for (int i = 0, rounds = atoi(argv[5]); i < rounds; i++) {
                long long t0 = now_us();
                if (write(fd, req, (size_t)len) != len || read_answer(fd, buf, sizeof buf) < 0) {
                        fprintf(stderr, "request %d failed: %.200s\n", i, buf);
                        return 1;
                }
                printf("%lld\n", now_us() - t0);
        }
        close(fd);
        return 0;
}

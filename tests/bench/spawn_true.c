/* The reference for a shell call: fork, exec a program and wait, timed one by one.
 *
 *   spawn_true ROUNDS [PROGRAM ARGS...]     (default: /bin/true)
 *
 * Prints one duration in microseconds per line. The program's output goes to /dev/null. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        int n = argc > 1 ? atoi(argv[1]) : 200;
        char *deflt[] = {"/bin/true", NULL};
        char **cmd = argc > 2 ? argv + 2 : deflt;
        for (int i = 0; i < n; i++) {
                struct timespec a, b;
                clock_gettime(CLOCK_MONOTONIC, &a);
                pid_t pid = fork();
                if (pid == 0) {
                        int null = open("/dev/null", O_WRONLY);
                        if (null >= 0)
                                dup2(null, 1);
                        execvp(cmd[0], cmd);
                        _exit(127);
                }
                waitpid(pid, NULL, 0);
                clock_gettime(CLOCK_MONOTONIC, &b);
                printf("%ld\n", (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000);
        }
        return 0;
}

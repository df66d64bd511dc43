/* A minimal test harness: each test is a function named for what it proves; CHECK records
 * a failure with its location and goes on, so one run shows every broken expectation. */
#pragma once

#include <stdio.h>
#include <string.h>

static int check_failures, check_passed, check_failed;

#define CHECK(cond)                                                                                          \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);           \
                        check_failures++;                                                                    \
                }                                                                                            \
        } while (0)

#define CHECK_STREQ(a, b)                                                                                    \
        do {                                                                                                 \
                const char *_a = (a), *_b = (b);                                                             \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                                     \
                        fprintf(stderr, "  %s:%d: '%s' != '%s'\n", __FILE__, __LINE__, _a ? _a : "(null)",   \
                                _b ? _b : "(null)");                                                         \
                        check_failures++;                                                                    \
                }                                                                                            \
        } while (0)

#define RUN(test)                                                                                            \
        do {                                                                                                 \
                int _before = check_failures;                                                                \
                test();                                                                                      \
                if (check_failures == _before) {                                                             \
                        check_passed++;                                                                      \
                        printf("ok   %s\n", #test);                                                          \
                } else {                                                                                     \
                        check_failed++;                                                                      \
                        printf("FAIL %s\n", #test);                                                          \
                }                                                                                            \
        } while (0)

#define CHECK_SUMMARY() (printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

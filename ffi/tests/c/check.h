/*
 * What every C test of the ABI shares: counted checks that print the failed condition with the
 * library's last error, and a substring test. Include after e2b_blocking.h; the test's main
 * reports `checks` and `failures`.
 */
#ifndef E2B_TEST_CHECK_H
#define E2B_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#include "e2b_blocking.h"

static int checks = 0;
static int failures = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        checks++;                                                                            \
        if (!(cond)) {                                                                       \
            failures++;                                                                      \
            fprintf(stderr, "FAILED %s:%d: %s (last error: %s: %s)\n", __FILE__, __LINE__,   \
                    #cond, e2b_error_code_name(e2b_last_error_code()),                       \
                    e2b_last_error_message());                                               \
        }                                                                                    \
    } while (0)

#define CHECK_CODE(call, expected) CHECK((call) == (expected))

static inline int contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}

#endif

/* Tiny test helpers shared by the C tests: TAP-like "ok - ..." / "not ok - ..." lines
 * (tests/c/run.sh counts them) and a failure count for the exit code. Thread-safe. */
#ifndef SWARMCAST_TEST_CHECK_H
#define SWARMCAST_TEST_CHECK_H

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "swarmcast.h"

static pthread_mutex_t check_lock = PTHREAD_MUTEX_INITIALIZER;
static int check_passed;
static int check_failed;

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void check(int ok, const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&check_lock);
    if (ok) {
        check_passed++;
    } else {
        check_failed++;
    }
    fputs(ok ? "ok - " : "not ok - ", stdout);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&check_lock);
}

/* The message of a result code, for failure lines. Returns a static buffer per call
 * site thread; only used for printing. */
static const char *result_text(swarmcast_result rc, char *buf, size_t len) {
    size_t n = 0;
    if (swarmcast_result_message((uint32_t)rc, buf, len, &n) != SWARMCAST_RESULT_OK) {
        return "?";
    }
    return buf;
}

/* Check that `expr` returns `want`. */
#define CHECK_RC(expr, want)                                                          \
    do {                                                                              \
        char msg_[128];                                                               \
        swarmcast_result rc_ = (expr);                                                \
        check(rc_ == (want), "%s == %s (got %u: %s)", #expr, #want, (unsigned)rc_,    \
              result_text(rc_, msg_, sizeof msg_));                                   \
    } while (0)

static int check_summary(void) {
    printf("# %d passed, %d failed\n", check_passed, check_failed);
    fflush(stdout);
    return check_failed == 0 ? 0 : 1;
}

#endif

// testutil.h - helpers shared by the check test suites.
//
// Everything here is static inline so that each test binary includes it
// once without a separate object.  Assertions use check's ck_assert_* and
// must run on the test's own thread (never inside an actor callback: record
// what a callback saw in atomics and assert on it afterwards).
#ifndef RA_TESTUTIL_H
#define RA_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rayo.h"

// RA_CK_OK asserts that expr returns 0 and prints the error's name if not.
#define RA_CK_OK(expr)                                                      \
    do {                                                                    \
        int ra_ck_rc_ = (expr);                                             \
        ck_assert_msg(ra_ck_rc_ == 0, "%s returned %s (%d), expected OK",   \
                      #expr, ra_err_name(ra_ck_rc_), ra_ck_rc_);            \
    } while (0)

// RA_CK_ERR asserts that expr returns the error code and prints the names
// of both the actual and the expected value if not.
#define RA_CK_ERR(expr, code)                                               \
    do {                                                                    \
        int ra_ck_rc_ = (expr);                                             \
        int ra_ck_want_ = (code);                                           \
        ck_assert_msg(ra_ck_rc_ == ra_ck_want_,                             \
                      "%s returned %s (%d), expected %s (%d)", #expr,       \
                      ra_err_name(ra_ck_rc_), ra_ck_rc_,                    \
                      ra_err_name(ra_ck_want_), ra_ck_want_);               \
    } while (0)

// RA_CK_PID_EQ asserts that two pids are equal and prints both if not.
#define RA_CK_PID_EQ(a, b)                                                  \
    do {                                                                    \
        ra_pid_t ra_ck_a_ = (a);                                            \
        ra_pid_t ra_ck_b_ = (b);                                            \
        char ra_ck_sa_[RA_PID_STRLEN];                                      \
        char ra_ck_sb_[RA_PID_STRLEN];                                      \
        ck_assert_msg(ra_pid_eq(ra_ck_a_, ra_ck_b_),                        \
                      "%s is %s, expected %s (%s)", #a,                     \
                      ra_pid_str(ra_ck_a_, ra_ck_sa_), #b,                  \
                      ra_pid_str(ra_ck_b_, ra_ck_sb_));                     \
    } while (0)

// RA_CK_REASON_EQ asserts that two exit reasons are equal and prints their
// names if not.
#define RA_CK_REASON_EQ(a, b)                                               \
    do {                                                                    \
        ra_reason_t ra_ck_a_ = (a);                                         \
        ra_reason_t ra_ck_b_ = (b);                                         \
        char ra_ck_sa_[64];                                                 \
        char ra_ck_sb_[64];                                                 \
        ck_assert_msg(ra_ck_a_ == ra_ck_b_,                                 \
                      "%s is %s (%" PRId64 "), expected %s (%" PRId64 ")",  \
                      #a, ra_reason_str(ra_ck_a_, ra_ck_sa_, 64), ra_ck_a_, \
                      ra_reason_str(ra_ck_b_, ra_ck_sb_, 64), ra_ck_b_);    \
    } while (0)

// ra_test_now_ns returns CLOCK_MONOTONIC in nanoseconds.
static inline uint64_t
ra_test_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// ra_test_now_ms returns CLOCK_MONOTONIC in milliseconds.
static inline uint64_t
ra_test_now_ms(void)
{
    return ra_test_now_ns() / 1000000u;
}

// ra_test_sleep_ms sleeps for ms milliseconds.  Tests use it only to give
// a wrong implementation the chance to misbehave (or inside polling loops
// with a deadline), never to make a correct one pass.
static inline void
ra_test_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

// RA_CK_WAIT polls cond every millisecond and fails the test if it is still
// false after timeout_ms.
#define RA_CK_WAIT(cond, timeout_ms)                                        \
    do {                                                                    \
        uint64_t ra_ck_dl_ = ra_test_now_ms() + (uint64_t)(timeout_ms);     \
        while (!(cond)) {                                                   \
            ck_assert_msg(ra_test_now_ms() < ra_ck_dl_,                     \
                          "still false after %d ms: %s", (int)(timeout_ms), \
                          #cond);                                           \
            ra_test_sleep_ms(1);                                            \
        }                                                                   \
    } while (0)

// ra_test_msg returns a new bytes message with tag 0 holding the bytes of s
// (without the NUL).  Caller owns the result.
static inline ra_msg_t *
ra_test_msg(const char *s)
{
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_msg_new_bytes(&msg, 0, s, strlen(s)));
    ck_assert_ptr_nonnull(msg);
    return msg;
}

// ra_test_msg_is asserts that msg is a bytes message holding exactly the
// bytes of s.
static inline void
ra_test_msg_is(const ra_msg_t *msg, const char *s)
{
    size_t len = 0;
    const void *data;

    ck_assert_ptr_nonnull(msg);
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_BYTES);
    data = ra_msg_data(msg, &len);
    ck_assert_uint_eq(len, strlen(s));
    ck_assert_msg(len == 0 || memcmp(data, s, len) == 0,
                  "payload is \"%.*s\", expected \"%s\"", (int)len,
                  (const char *)data, s);
}

// ra_test_scale returns RAYO_TEST_SCALE (default 1.0).  Sanitizer and
// valgrind runs set it below 1 to shrink stress sizes.
static inline double
ra_test_scale(void)
{
    const char *s = getenv("RAYO_TEST_SCALE");
    char *end = NULL;
    double v;

    if (s == NULL || *s == '\0') {
        return 1.0;
    }
    v = strtod(s, &end);
    if (end == s || !(v > 0.0)) {
        return 1.0;
    }
    return v;
}

// ra_test_scaled returns max(1, n * RAYO_TEST_SCALE).
static inline size_t
ra_test_scaled(size_t n)
{
    double v = (double)n * ra_test_scale();

    return v < 1.0 ? 1 : (size_t)v;
}

// ra_test_seed returns the seed for a randomised test: RAYO_TEST_SEED if
// set, otherwise one made from the time and pid.  It prints the seed so a
// failure can be replayed.
static inline unsigned
ra_test_seed(const char *test)
{
    const char *s = getenv("RAYO_TEST_SEED");
    unsigned seed;

    if (s != NULL && *s != '\0') {
        seed = (unsigned)strtoul(s, NULL, 0);
    } else {
        seed = (unsigned)(ra_test_now_ns() ^ ((uint64_t)getpid() << 16));
    }
    fprintf(stderr, "%s: seed %u (replay with RAYO_TEST_SEED=%u)\n", test,
            seed, seed);
    return seed;
}

// ra_test_run runs suite s with check's runner, honouring CK_* environment
// variables, and returns the process exit status for automake.
// ra_test_cluster_stop checks that every CPU and GPU of the embedded
// cluster came back (waiting up to 5 s for leases that owners keep a
// little while), then stops the cluster.
static inline void
ra_test_cluster_stop(void)
{
    double ct = 0, ca = -1, gt = 0, ga = -1;
    uint64_t dl = ra_test_now_ms() + 5000;
    for (;;) {
        ck_assert_int_eq(ra_cluster_resources(&ct, &ca, &gt, &ga), 0);
        if ((ct == ca && gt == ga) || ra_test_now_ms() > dl) {
            break;
        }
        ra_test_sleep_ms(5);
    }
    ck_assert_msg(ct == ca && gt == ga,
                  "resources not returned: CPU %g of %g, GPU %g of %g", ca,
                  ct, ga, gt);
    ra_shutdown();
}

static inline int
ra_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}


// ra_test_new_i64 returns a bytes message with tag holding v, or NULL.
// Safe in callbacks: it never asserts.
static inline ra_msg_t *
ra_test_new_i64(int32_t tag, int64_t v)
{
    ra_msg_t *msg = NULL;

    if (ra_msg_new_bytes(&msg, tag, &v, sizeof v) != 0) {
        return NULL;
    }
    return msg;
}

// ra_test_get_i64 reads the value ra_test_new_i64 stored (0 for a shorter
// payload).  Safe in callbacks.
static inline int64_t
ra_test_get_i64(const ra_msg_t *msg)
{
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    int64_t v = 0;

    if (data != NULL && len >= sizeof v) {
        memcpy(&v, data, sizeof v);
    }
    return v;
}

// ra_test_new_scope makes the calling thread an actor of rt (asserts).
static inline ra_ctx_t *
ra_test_new_scope(ra_runtime_t *rt)
{
    ra_ctx_t *ctx = NULL;

    RA_CK_OK(ra_scope_new(rt, &ctx));
    ck_assert_ptr_nonnull(ctx);
    return ctx;
}

// ra_test_call_bytes calls actor to of rt with a bytes message (tag, len
// bytes of body) from a scope of its own and returns the call's status
// (0: *reply holds the answer, the caller's to free).
static inline int
ra_test_call_bytes(ra_runtime_t *rt, ra_pid_t to, int32_t tag,
                   const void *body, size_t len, ra_msg_t **reply)
{
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_msg_t *m = NULL;

    RA_CK_OK(ra_msg_new_bytes(&m, tag, body, len));
    int rc = ra_call(scope, to, &m, 5000, reply);
    ra_msg_unref(&m);
    ra_scope_destroy(&scope);
    return rc;
}

// ra_test_kill_wait ends pid with an exit signal RA_KILL from a scope of
// rt, as a fault tool would, and waits (up to 10 s) for its DOWN.
static inline void
ra_test_kill_wait(ra_runtime_t *rt, ra_pid_t pid)
{
    ra_ctx_t *scope = ra_test_new_scope(rt);
    uint64_t mref = 0, got = 0;

    RA_CK_OK(ra_monitor(scope, pid, &mref));
    RA_CK_OK(ra_exit_pid(scope, pid, RA_KILL));
    while (got != mref) {
        ra_msg_t *m = NULL;
        RA_CK_OK(ra_receive(scope, 10000, &m));
        if (ra_msg_kind(m) != RA_MSG_DOWN ||
            ra_msg_down_info(m, &got, NULL, NULL) != 0) {
            got = 0;
        }
        ra_msg_unref(&m);
    }
    ra_scope_destroy(&scope);
}

// ra_test_log_t catches the library's log lines at max_level or more
// severe, from component (NULL: any) and containing needle (NULL: any):
// it counts them and keeps the last.  ra_test_log_start empties it and
// installs it as the library's log sink (the library logs from any
// thread); ra_test_log_caught copies the last line into last and returns
// the count; ra_test_log_stop silences the library again.
typedef struct ra_test_log {
    int max_level;
    const char *component, *needle;
    pthread_mutex_t mu;
    char last[1024];
    int n;
} ra_test_log_t;

static inline void
ra_test_log_sink(void *user, int level, const char *component,
                 const char *line)
{
    ra_test_log_t *l = user;
    if (level > l->max_level ||
        (l->component != NULL && strcmp(component, l->component) != 0) ||
        (l->needle != NULL && strstr(line, l->needle) == NULL)) {
        return;
    }
    pthread_mutex_lock(&l->mu);
    snprintf(l->last, sizeof l->last, "%s", line);
    l->n++;
    pthread_mutex_unlock(&l->mu);
}

static inline void
ra_test_log_start(ra_test_log_t *l, int max_level, const char *component,
                  const char *needle)
{
    *l = (ra_test_log_t){.max_level = max_level, .component = component,
                         .needle = needle};
    pthread_mutex_init(&l->mu, NULL);
    ra_log_set_sink(ra_test_log_sink, l);
}

static inline int
ra_test_log_caught(ra_test_log_t *l, char *last, size_t cap)
{
    pthread_mutex_lock(&l->mu);
    int n = l->n;
    if (last != NULL && cap > 0) {   // (cut to cap - 1 bytes)
        size_t len = strnlen(l->last, sizeof l->last);
        len = len < cap ? len : cap - 1;
        memcpy(last, l->last, len);
        last[len] = '\0';
    }
    pthread_mutex_unlock(&l->mu);
    return n;
}

static inline void
ra_test_log_stop(void)
{
    ra_log_set_sink(NULL, NULL);
}

#endif

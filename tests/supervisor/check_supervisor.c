// check_supervisor.c - tests of OTP supervisors: spec validation, start and
// stop order, restart types, strategies, intensity and escalation, failed
// restarts, shutdown timing, administration, auto-shutdown, events, backoff
// and OS-process children.
//
// One Suite, "supervisor", with one TCase per behaviour group.  Only the
// public header is used.  Callbacks never assert: the workers record what
// they saw in atomics (by their one-letter name), and the test thread
// asserts.  Each test makes its own runtime, so tests share nothing but the
// recorder, which each test resets.
#include <bson/bson.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "actor_impl.h"   // reserved slots (ra__slot_reserve)
#include "rayo.h"
#include "testutil.h"

// WAIT_MS bounds the wait for an outcome that must come; QUIET_MS is how
// long a test gives a wrong outcome the chance to show.
#define WAIT_MS 5000
#define QUIET_MS 200

// Tags of the commands the workers understand.
enum {
    T_FAIL = 1, // return the payload (an error code) from handle: a crash
    T_EXIT = 2, // ra_exit with the payload as the reason
    T_DIE = 3   // the delayed-exit timer fired: ra_exit(RA_SHUTDOWN)
};

// What a worker does with exit signals.
typedef enum wmode {
    W_PLAIN = 0,       // does not trap exits
    W_TRAP_IGNORE = 1, // traps exits and ignores the EXIT messages
    W_TRAP_DELAY = 2   // traps exits; exits delay_ms after an EXIT message
} wmode_t;

// A worker's configuration, its spawn argument and state.  It belongs to
// the test (static or on the test's stack), so terminate frees nothing.
typedef struct wcfg {
    char name;         // the letter the recorder files it under
    wmode_t mode;
    int init_rc;       // what init returns
    uint64_t delay_ms; // W_TRAP_DELAY: how long it takes to exit
} wcfg_t;

// ---- the recorder (written by callbacks, read by the test thread) -------

#define LOG_CAP 256

static struct {
    atomic_int nstart;              // entries in start_log
    char start_log[LOG_CAP];        // names, in the order inits ran
    atomic_int nstop;               // entries in stop_log
    char stop_log[LOG_CAP];         // names, in the order terminates ran
    atomic_int inits[128];          // per name
    atomic_int terms[128];          // per name
    _Atomic int64_t reason[128];    // last terminate reason per name
    _Atomic uint64_t init_ns[128];  // time of the last init per name
    _Atomic uint64_t term_ns[128];  // time of the last terminate per name
} rec;

// rec_reset clears the recorder; the test thread calls it while no worker
// runs (or while none that matters does).
static void
rec_reset(void)
{
    atomic_store(&rec.nstart, 0);
    atomic_store(&rec.nstop, 0);
    memset(rec.start_log, 0, sizeof rec.start_log);
    memset(rec.stop_log, 0, sizeof rec.stop_log);
    for (int i = 0; i < 128; i++) {
        atomic_store(&rec.inits[i], 0);
        atomic_store(&rec.terms[i], 0);
        atomic_store(&rec.reason[i], -1);
        atomic_store(&rec.init_ns[i], 0);
        atomic_store(&rec.term_ns[i], 0);
    }
}

// rec_logs_clear empties the start and stop logs only.
static void
rec_logs_clear(void)
{
    atomic_store(&rec.nstart, 0);
    atomic_store(&rec.nstop, 0);
    memset(rec.start_log, 0, sizeof rec.start_log);
    memset(rec.stop_log, 0, sizeof rec.stop_log);
}

// log_str copies the first n entries of a log into buf as a string.
static const char *
log_str(const char *log, atomic_int *n, char *buf, size_t len)
{
    int k = atomic_load(n);

    if (k > (int)len - 1) {
        k = (int)len - 1;
    }
    if (k > LOG_CAP) {
        k = LOG_CAP;
    }
    memcpy(buf, log, (size_t)k);
    buf[k] = '\0';
    return buf;
}

#define START_LOG(buf) log_str(rec.start_log, &rec.nstart, buf, sizeof buf)
#define STOP_LOG(buf) log_str(rec.stop_log, &rec.nstop, buf, sizeof buf)

// ---- the worker ---------------------------------------------------------

static int
worker_init(ra_ctx_t *ctx, void **state)
{
    const wcfg_t *w = *state;
    int i = (unsigned char)w->name & 127;
    int k;

    if (w->mode != W_PLAIN) {
        ra_trap_exit(ctx, true);
    }
    k = atomic_fetch_add(&rec.nstart, 1);
    if (k < LOG_CAP) {
        rec.start_log[k] = w->name;
    }
    atomic_store(&rec.init_ns[i], ra_test_now_ns());
    atomic_fetch_add(&rec.inits[i], 1);
    return w->init_rc;
}

static int
worker_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    const wcfg_t *w = state;
    ra_msg_t *die;

    if (ra_msg_kind(msg) == RA_MSG_EXIT) {
        if (w->mode == W_TRAP_DELAY) {
            die = ra_test_new_i64(T_DIE, 0);
            if (die != NULL &&
                ra_send_after(ra_ctx_runtime(ctx), ra_self(ctx), w->delay_ms,
                              &die, NULL) != 0) {
                ra_msg_unref(&die);
            }
        }
        return 0;
    }
    switch (ra_msg_tag(msg)) {
    case T_FAIL:
        return (int)ra_test_get_i64(msg);
    case T_EXIT:
        ra_exit(ctx, ra_test_get_i64(msg));
        return 0;
    case T_DIE:
        ra_exit(ctx, RA_SHUTDOWN);
        return 0;
    default:
        return 0;
    }
}

static void
worker_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    const wcfg_t *w = state;
    int i = (unsigned char)w->name & 127;
    int k;

    (void)ctx;
    k = atomic_fetch_add(&rec.nstop, 1);
    if (k < LOG_CAP) {
        rec.stop_log[k] = w->name;
    }
    atomic_store(&rec.reason[i], reason);
    atomic_store(&rec.term_ns[i], ra_test_now_ns());
    atomic_fetch_add(&rec.terms[i], 1);
}

static const ra_behaviour_t worker = {"worker", worker_init, worker_handle,
                                      worker_terminate};

// Workers shared by many tests.
static const wcfg_t W_A = {'a', W_PLAIN, 0, 0};
static const wcfg_t W_B = {'b', W_PLAIN, 0, 0};
static const wcfg_t W_C = {'c', W_PLAIN, 0, 0};
static const wcfg_t W_T = {'t', W_PLAIN, 0, 0};

// spec returns a child spec for worker w with id and restart type.
static ra_child_spec_t
spec(const char *id, const wcfg_t *w, ra_restart_t restart)
{
    ra_child_spec_t s = {0};

    s.id = id;
    s.beh = &worker;
    s.arg = (void *)w;
    s.restart = restart;
    return s;
}

// Generous intensity, so tests about exits never trip it.
static ra_sup_flags_t
flags_of(ra_strategy_t strategy)
{
    ra_sup_flags_t f = {0};

    f.strategy = strategy;
    f.intensity = 100;
    f.period_ms = 5000;
    return f;
}

// ---- test-side helpers (test thread only: these assert) -----------------

static ra_runtime_t *
new_rt(void)
{
    ra_runtime_opts_t opts = {.threads = 4};
    ra_runtime_t *rt = NULL;

    rec_reset();
    RA_CK_OK(ra_runtime_new(&rt, &opts));
    ck_assert_ptr_nonnull(rt);
    return rt;
}

// cmd sends the command tag with value v from the scope to pid.
static void
cmd(ra_ctx_t *ctx, ra_pid_t to, int32_t tag, int64_t v)
{
    ra_msg_t *msg = ra_test_new_i64(tag, v);

    ck_assert_ptr_nonnull(msg);
    RA_CK_OK(ra_send(ctx, to, &msg));
    ck_assert_ptr_null(msg);
}

#define MAX_KIDS 16

// find_child looks child id up in sup's which_children.  Returns 0 (and
// fills *out), RA_ENOENT, or the call's error.  Never asserts, so polling
// loops may use it.
static int
find_child(ra_ctx_t *ctx, ra_pid_t sup, const char *id, ra_child_info_t *out)
{
    ra_child_info_t kids[MAX_KIDS];
    size_t n = 0;
    int rc = ra_sup_which_children(ctx, sup, kids, MAX_KIDS, &n);

    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < n && i < MAX_KIDS; i++) {
        if (strcmp(kids[i].id, id) == 0) {
            *out = kids[i];
            return 0;
        }
    }
    return RA_ENOENT;
}

// pid_of returns the pid of running child id (asserts that it runs).
static ra_pid_t
pid_of(ra_ctx_t *ctx, ra_pid_t sup, const char *id)
{
    ra_child_info_t ci;

    RA_CK_OK(find_child(ctx, sup, id, &ci));
    ck_assert_msg(ci.state == RA_CHILD_RUNNING, "child %s is in state %d",
                  id, (int)ci.state);
    ck_assert(!ra_pid_is_nil(ci.pid));
    return ci.pid;
}

// wait_new_pid polls until child id runs with a pid other than old and
// returns it; fails the test after WAIT_MS.
static ra_pid_t
wait_new_pid(ra_ctx_t *ctx, ra_pid_t sup, const char *id, ra_pid_t old)
{
    uint64_t deadline = ra_test_now_ms() + WAIT_MS;
    ra_child_info_t ci;
    int rc;

    for (;;) {
        rc = find_child(ctx, sup, id, &ci);
        if (rc == 0 && ci.state == RA_CHILD_RUNNING &&
            !ra_pid_is_nil(ci.pid) && !ra_pid_eq(ci.pid, old)) {
            return ci.pid;
        }
        if (ra_test_now_ms() >= deadline) {
            break;
        }
        ra_test_sleep_ms(1);
    }
    ck_abort_msg("child %s was not restarted within %d ms (last: %s, "
                 "state %d)", id, WAIT_MS, ra_err_name(rc),
                 rc == 0 ? (int)ci.state : -1);
    return RA_PID_NIL;
}

// wait_state polls until child id is in state st (RA_ENOENT as st waits
// for the child to be gone) and fails the test after WAIT_MS.
static void
wait_state(ra_ctx_t *ctx, ra_pid_t sup, const char *id, int st)
{
    uint64_t deadline = ra_test_now_ms() + WAIT_MS;
    ra_child_info_t ci;
    int rc;

    for (;;) {
        rc = find_child(ctx, sup, id, &ci);
        if ((st == RA_ENOENT && rc == RA_ENOENT) ||
            (st != RA_ENOENT && rc == 0 && (int)ci.state == st)) {
            return;
        }
        if (ra_test_now_ms() >= deadline) {
            break;
        }
        ra_test_sleep_ms(1);
    }
    ck_abort_msg("child %s: wanted state %d within %d ms; last %s, state %d",
                 id, st, WAIT_MS, ra_err_name(rc),
                 rc == 0 ? (int)ci.state : -1);
}

// wait_down waits for the DOWN of monitor mref (freeing anything else
// received meanwhile) and returns its reason; fails the test after ms.
static ra_reason_t
wait_down(ra_ctx_t *ctx, uint64_t mref, int64_t ms)
{
    uint64_t deadline = ra_test_now_ms() + (uint64_t)ms;
    ra_msg_t *msg = NULL;
    uint64_t got = 0;
    ra_reason_t reason = -1;
    int rc;

    for (;;) {
        uint64_t now = ra_test_now_ms();
        int64_t left = now < deadline ? (int64_t)(deadline - now) : 0;

        rc = ra_receive(ctx, left, &msg);
        if (rc != 0) {
            break;
        }
        if (ra_msg_kind(msg) == RA_MSG_DOWN &&
            ra_msg_down_info(msg, &got, NULL, &reason) == 0 && got == mref) {
            ra_msg_unref(&msg);
            return reason;
        }
        ra_msg_unref(&msg);
    }
    ck_abort_msg("no DOWN within %d ms: %s", (int)ms, ra_err_name(rc));
    return -1;
}

// expect_alive_for checks that pid is still alive after QUIET_MS.
static void
expect_alive_for(ra_runtime_t *rt, ra_pid_t pid)
{
    ra_test_sleep_ms(QUIET_MS);
    ck_assert_msg(ra_is_alive(rt, pid), "the supervisor has ended");
}

// teardown stops sup (if alive) and tears down the scope and runtime.
static void
teardown(ra_runtime_t **rt, ra_ctx_t **scope, ra_pid_t sup)
{
    if (!ra_pid_is_nil(sup) && ra_is_alive(*rt, sup)) {
        RA_CK_OK(ra_sup_stop(*scope, sup));
        ck_assert(!ra_is_alive(*rt, sup));
    }
    ra_scope_destroy(scope);
    ra_runtime_destroy(rt);
}

// ---- flags and spec validation ------------------------------------------

// expect_badspec checks that starting a supervisor with flags and specs
// fails with RA_EBADSPEC and leaves no actor behind.
static void
expect_badspec(const ra_sup_flags_t *f, const ra_child_spec_t *specs,
               size_t n)
{
    ra_runtime_t *rt = new_rt();
    ra_pid_t sup;

    RA_CK_ERR(ra_sup_start(rt, NULL, f, specs, n, &sup), RA_EBADSPEC);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), 0);
    ck_assert_int_eq(atomic_load(&rec.nstart), 0);
    ra_runtime_destroy(&rt);
}

START_TEST(test_sup_spec_invalid_restart_type_rejected)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[2] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT)};

    s[1].restart = (ra_restart_t)3;
    expect_badspec(&f, s, 2);
}
END_TEST

START_TEST(test_sup_spec_negative_shutdown_rejected)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);

    s.shutdown_ms = -5;
    expect_badspec(&f, &s, 1);
}
END_TEST

START_TEST(test_sup_spec_duplicate_id_rejected)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT),
                            spec("a", &W_C, RA_PERMANENT)};

    expect_badspec(&f, s, 3);
}
END_TEST

START_TEST(test_sup_spec_simple_one_for_one_zero_specs_rejected)
{
    ra_sup_flags_t f = flags_of(RA_SIMPLE_ONE_FOR_ONE);

    expect_badspec(&f, NULL, 0);
}
END_TEST

START_TEST(test_sup_spec_simple_one_for_one_two_specs_rejected)
{
    ra_sup_flags_t f = flags_of(RA_SIMPLE_ONE_FOR_ONE);
    ra_child_spec_t s[2] = {spec("a", &W_A, RA_TEMPORARY),
                            spec("b", &W_B, RA_TEMPORARY)};

    expect_badspec(&f, s, 2);
}
END_TEST

START_TEST(test_sup_spec_significant_permanent_rejected)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);

    f.auto_shutdown = RA_AUTO_ANY_SIGNIFICANT;
    s.significant = true;
    expect_badspec(&f, &s, 1);
}
END_TEST

START_TEST(test_sup_spec_no_start_method_rejected)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);

    s.beh = NULL;
    expect_badspec(&f, &s, 1);
}
END_TEST

static int
start_worker_a(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
               uint64_t *info);

START_TEST(test_sup_spec_two_start_methods_rejected)
{
    static const char *const argv[] = {"/bin/true", NULL};
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s1 = spec("a", &W_A, RA_PERMANENT);
    ra_child_spec_t s2 = spec("a", &W_A, RA_PERMANENT);

    s1.start = start_worker_a;
    expect_badspec(&f, &s1, 1);
    s2.argv = argv;
    expect_badspec(&f, &s2, 1);
}
END_TEST

START_TEST(test_sup_spec_start_child_bad_spec_rejected)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = {0};
    ra_child_spec_t s = spec("x", &W_A, RA_PERMANENT);
    ra_pid_t sup, pid = {1, 1, 1, 1};
    size_t n = 99;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, NULL, 0, &sup));
    s.shutdown_ms = -5;
    RA_CK_ERR(ra_sup_start_child(scope, sup, &s, NULL, &pid), RA_EBADSPEC);
    ck_assert(ra_pid_is_nil(pid));
    RA_CK_OK(ra_sup_which_children(scope, sup, NULL, 0, &n));
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(atomic_load(&rec.nstart), 0);
    teardown(&rt, &scope, sup);
}
END_TEST

// A zeroed flags struct is ONE_FOR_ONE with 1 restart in 5 s: one crash is
// restarted, the second within the period ends the supervisor.
START_TEST(test_sup_flags_zeroed_are_valid_defaults)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f;
    ra_child_spec_t s[2] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT)};
    ra_pid_t sup, a0, a1, b0;
    uint64_t mref = 0;

    memset(&f, 0, sizeof f);
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 2, &sup));
    ck_assert(ra_is_alive(rt, sup));
    a0 = pid_of(scope, sup, "a");
    b0 = pid_of(scope, sup, "b");
    RA_CK_OK(ra_monitor(scope, sup, &mref));
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    a1 = wait_new_pid(scope, sup, "a", a0);
    RA_CK_PID_EQ(pid_of(scope, sup, "b"), b0); // one_for_one
    cmd(scope, a1, T_FAIL, RA_EINVAL);
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_SHUTDOWN);
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 2);
    ck_assert(!ra_is_alive(rt, b0));
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// OTP takes any MaxR; a very high intensity (in effect: never give up) is
// a valid setting and must not make the start fail.
START_TEST(test_sup_flags_huge_intensity_accepted)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);
    ra_pid_t sup = RA_PID_NIL, a0;

    f.intensity = UINT32_MAX;
    f.period_ms = 1000;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, "a", a0);
    teardown(&rt, &scope, sup);
}
END_TEST

// ---- start ---------------------------------------------------------------

START_TEST(test_sup_start_children_in_spec_order)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("c", &W_C, RA_PERMANENT),
                            spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT)};
    ra_child_info_t kids[MAX_KIDS];
    size_t n = 0;
    ra_pid_t sup;
    char buf[LOG_CAP + 1];

    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    ck_assert_str_eq(START_LOG(buf), "cab");
    RA_CK_OK(ra_sup_which_children(scope, sup, kids, MAX_KIDS, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(kids[0].id, "c");
    ck_assert_str_eq(kids[1].id, "a");
    ck_assert_str_eq(kids[2].id, "b");
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_start_returns_after_all_started)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT),
                            spec("c", &W_C, RA_PERMANENT)};
    ra_child_info_t kids[MAX_KIDS];
    size_t n = 0;
    ra_pid_t sup;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    // Checked before anything else can run: the inits have all returned.
    ck_assert_int_eq(atomic_load(&rec.nstart), 3);
    RA_CK_OK(ra_sup_which_children(scope, sup, kids, MAX_KIDS, &n));
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(kids[i].state, RA_CHILD_RUNNING);
        ck_assert(ra_is_alive(rt, kids[i].pid));
        ck_assert(!kids[i].os_process);
        ck_assert_int_eq(kids[i].ospid, 0);
        ck_assert_int_eq(kids[i].type, RA_WORKER);
    }
    teardown(&rt, &scope, sup);
}
END_TEST

// expect_failed_start checks the aftermath of a start where b's init
// failed with RA_EINVAL: a was started and terminated, c never started.
static void
expect_failed_start(ra_runtime_t *rt, size_t actors)
{
    char buf[LOG_CAP + 1];

    ck_assert_str_eq(START_LOG(buf), "ab");
    ck_assert_int_eq(atomic_load(&rec.inits['c']), 0);
    ck_assert_int_eq(atomic_load(&rec.terms['a']), 1);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
    RA_CK_WAIT(ra_runtime_actor_count(rt) == actors, WAIT_MS);
}

START_TEST(test_sup_start_failure_terminates_started_no_parent)
{
    static const wcfg_t bad = {'b', W_PLAIN, RA_EINVAL, 0};
    ra_runtime_t *rt = new_rt();
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &bad, RA_PERMANENT),
                            spec("c", &W_C, RA_PERMANENT)};
    ra_pid_t sup = {1, 1, 1, 1};

    RA_CK_ERR(ra_sup_start(rt, NULL, &f, s, 3, &sup), RA_EINVAL);
    ck_assert(ra_pid_is_nil(sup));
    expect_failed_start(rt, 0);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_sup_start_failure_terminates_started_with_parent)
{
    static const wcfg_t bad = {'b', W_PLAIN, RA_EINVAL, 0};
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &bad, RA_PERMANENT),
                            spec("c", &W_C, RA_PERMANENT)};
    ra_pid_t sup = {1, 1, 1, 1}, from = RA_PID_NIL;
    ra_reason_t reason = -1;
    ra_msg_t *msg = NULL;

    ra_trap_exit(scope, true);
    RA_CK_ERR(ra_sup_start(rt, scope, &f, s, 3, &sup), RA_EINVAL);
    ck_assert(ra_pid_is_nil(sup));
    expect_failed_start(rt, 1);
    // The link to the failed supervisor fired with its reason.
    RA_CK_OK(ra_receive(scope, WAIT_MS, &msg));
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_EXIT);
    RA_CK_OK(ra_msg_exit_info(msg, &from, &reason));
    ra_msg_unref(&msg);
    RA_CK_REASON_EQ(reason, RA_EINVAL);
    ck_assert_int_lt(ra_scope_exit_reason(scope), 0); // still alive
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// A start function that fails makes ra_sup_start fail with its error.
static int
start_fail_eio(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
               uint64_t *info)
{
    (void)sup;
    (void)arg;
    (void)extra;
    (void)out;
    (void)info;
    return -EIO;
}

START_TEST(test_sup_start_failure_of_start_fn_returns_its_error)
{
    ra_runtime_t *rt = new_rt();
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", NULL, RA_PERMANENT),
                            spec("c", &W_C, RA_PERMANENT)};
    ra_pid_t sup;

    s[1].beh = NULL;
    s[1].arg = NULL;
    s[1].start = start_fail_eio;
    RA_CK_ERR(ra_sup_start(rt, NULL, &f, s, 3, &sup), -EIO);
    ck_assert_int_eq(atomic_load(&rec.terms['a']), 1);
    ck_assert_int_eq(atomic_load(&rec.inits['c']), 0);
    RA_CK_WAIT(ra_runtime_actor_count(rt) == 0, WAIT_MS);
    ra_runtime_destroy(&rt);
}
END_TEST

// start_worker is a start function: it spawns the worker whose wcfg_t is
// arg (or extra, for dynamic children), linked to the supervisor.
static int
start_worker(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
             uint64_t *info)
{
    ra_spawn_opts_t o = {.flags = RA_SPAWN_LINK};

    *info = 42;
    return ra_spawn_from(sup, &worker, extra != NULL ? extra : arg, &o, out,
                         NULL);
}

static int
start_worker_a(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
               uint64_t *info)
{
    (void)arg;
    (void)extra;
    return start_worker(sup, (void *)&W_A, NULL, out, info);
}

// ---- restart types x exit reasons ----------------------------------------

// The five ways a child ends, by loop index.
enum { BY_NORMAL, BY_SHUTDOWN, BY_SHUTDOWN_TERM, BY_CRASH, BY_KILL, BY_N };

// end_child makes child pid end the way by says.
static void
end_child(ra_ctx_t *scope, ra_pid_t pid, int by)
{
    switch (by) {
    case BY_NORMAL:
        cmd(scope, pid, T_EXIT, RA_NORMAL);
        break;
    case BY_SHUTDOWN:
        cmd(scope, pid, T_EXIT, RA_SHUTDOWN);
        break;
    case BY_SHUTDOWN_TERM:
        cmd(scope, pid, T_EXIT, RA_SHUTDOWN_TERM(7));
        break;
    case BY_CRASH:
        cmd(scope, pid, T_FAIL, RA_EINVAL);
        break;
    default:
        RA_CK_OK(ra_exit_pid(scope, pid, RA_KILL));
        break;
    }
}

// expect_reason_seen checks the reason the child's terminate saw.
static void
expect_reason_seen(int by)
{
    static const ra_reason_t want[BY_N] = {RA_NORMAL, RA_SHUTDOWN,
                                           RA_SHUTDOWN_TERM(7), RA_EINVAL,
                                           RA_KILLED};

    RA_CK_WAIT(atomic_load(&rec.terms['a']) == 1, WAIT_MS);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), want[by]);
}

// check_restart runs one child "a" of type restart next to a bystander
// "b", ends a the way by says, and checks whether a was restarted.
static void
check_restart(ra_restart_t restart, int by, bool restarted)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[2] = {spec("a", &W_A, restart),
                            spec("b", &W_B, RA_PERMANENT)};
    ra_child_info_t ci;
    ra_child_counts_t k;
    ra_pid_t sup, a0, a1, b0;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 2, &sup));
    a0 = pid_of(scope, sup, "a");
    b0 = pid_of(scope, sup, "b");
    end_child(scope, a0, by);
    expect_reason_seen(by);
    if (restarted) {
        a1 = wait_new_pid(scope, sup, "a", a0);
        ck_assert(ra_is_alive(rt, a1));
        ck_assert(!ra_is_alive(rt, a0));
        ck_assert_int_eq(atomic_load(&rec.inits['a']), 2);
    } else if (restart == RA_TEMPORARY) {
        wait_state(scope, sup, "a", RA_ENOENT);
        ra_test_sleep_ms(QUIET_MS);
        RA_CK_ERR(find_child(scope, sup, "a", &ci), RA_ENOENT);
        RA_CK_ERR(ra_sup_get_childspec(scope, sup, "a", &s[0]), RA_ENOENT);
        RA_CK_OK(ra_sup_count_children(scope, sup, &k));
        ck_assert_uint_eq(k.specs, 1);
        ck_assert_uint_eq(k.active, 1);
        ck_assert_int_eq(atomic_load(&rec.inits['a']), 1);
    } else {
        wait_state(scope, sup, "a", RA_CHILD_STOPPED);
        ra_test_sleep_ms(QUIET_MS);
        RA_CK_OK(find_child(scope, sup, "a", &ci));
        ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
        ck_assert(ra_pid_is_nil(ci.pid));
        RA_CK_OK(ra_sup_count_children(scope, sup, &k));
        ck_assert_uint_eq(k.specs, 2);
        ck_assert_uint_eq(k.active, 1);
        ck_assert_int_eq(atomic_load(&rec.inits['a']), 1);
    }
    RA_CK_PID_EQ(pid_of(scope, sup, "b"), b0);
    ck_assert_int_eq(atomic_load(&rec.inits['b']), 1);
    teardown(&rt, &scope, sup);
}

START_TEST(test_sup_restart_permanent_always)
{
    check_restart(RA_PERMANENT, _i, true);
}
END_TEST

START_TEST(test_sup_restart_transient_only_abnormal)
{
    check_restart(RA_TRANSIENT, _i, _i == BY_CRASH || _i == BY_KILL);
}
END_TEST

START_TEST(test_sup_restart_temporary_never_and_spec_dropped)
{
    check_restart(RA_TEMPORARY, _i, false);
}
END_TEST

// A child started by a start function is restarted through it.
START_TEST(test_sup_restart_via_start_fn)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", NULL, RA_PERMANENT);
    ra_pid_t sup, a0;

    s.beh = NULL;
    s.start = start_worker;
    s.start_arg = (void *)&W_A;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, "a", a0);
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 2);
    teardown(&rt, &scope, sup);
}
END_TEST

// ---- strategies ----------------------------------------------------------

// start3 starts a supervisor of strategy with permanent children a, b, c
// and stores their pids in p[3].
static ra_pid_t
start3(ra_runtime_t *rt, ra_ctx_t *scope, ra_strategy_t strategy,
       ra_pid_t p[3])
{
    ra_sup_flags_t f = flags_of(strategy);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT),
                            spec("c", &W_C, RA_PERMANENT)};
    ra_pid_t sup;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    p[0] = pid_of(scope, sup, "a");
    p[1] = pid_of(scope, sup, "b");
    p[2] = pid_of(scope, sup, "c");
    return sup;
}

START_TEST(test_sup_one_for_one_restarts_only_crashed)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t p[3], sup = start3(rt, scope, RA_ONE_FOR_ONE, p);
    char buf[LOG_CAP + 1];

    rec_logs_clear();
    cmd(scope, p[1], T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, "b", p[1]);
    ra_test_sleep_ms(QUIET_MS / 4);
    RA_CK_PID_EQ(pid_of(scope, sup, "a"), p[0]);
    RA_CK_PID_EQ(pid_of(scope, sup, "c"), p[2]);
    ck_assert_str_eq(START_LOG(buf), "b");
    ck_assert_str_eq(STOP_LOG(buf), "b");
    teardown(&rt, &scope, sup);
}
END_TEST

// ---- restarts in place: a child in a reserved slot keeps its pid --------

static const wcfg_t W_R = {'r', W_PLAIN, 0, 0};
static uint32_t resv_slot;

static int
start_reserved(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
               uint64_t *info)
{
    (void)extra;
    (void)info;
    ra_spawn_opts_t o = {.flags = RA_SPAWN_LINK};
    return ra__spawn_reserved(ra_ctx_runtime(sup), sup, resv_slot, &worker,
                              arg, &o, 1000, out);
}

// wait_inits polls until worker name has run init n times.
static void
wait_inits(char name, int n)
{
    uint64_t deadline = ra_test_now_ms() + WAIT_MS;
    while (atomic_load(&rec.inits[(int)name]) < n &&
           ra_test_now_ms() < deadline) {
        ra_test_sleep_ms(1);
    }
    ck_assert_int_eq(atomic_load(&rec.inits[(int)name]), n);
}

// The GCS's way (src/cluster/gcs.c): the supervisor restarts a child into
// the slot reserved for it, so the pid its peers know stays good: a message
// sent to the old pid after the restart reaches the new incarnation.  No
// other spawn takes the slot, a second incarnation is refused while one
// lives, and a slot that was not reserved is refused.
START_TEST(test_sup_restart_in_reserved_slot_keeps_pid)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    RA_CK_OK(ra__slot_reserve(rt, &resv_slot));
    ck_assert_uint_ne(resv_slot, 0);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = {.id = "r", .start = start_reserved,
                         .start_arg = (void *)&W_R};
    ra_pid_t sup;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    ra_pid_t p0 = pid_of(scope, sup, "r");
    ck_assert_uint_eq(p0.id, resv_slot);
    // Spawns (and the ends of the spawned) never take the reserved slot.
    for (int i = 0; i < 300; i++) {
        ra_pid_t t;
        RA_CK_OK(ra_spawn(rt, &worker, (void *)&W_T, NULL, &t));
        ck_assert_uint_ne(t.id, resv_slot);
        cmd(scope, t, T_EXIT, RA_SHUTDOWN);
    }
    ra_pid_t x = RA_PID_NIL;
    RA_CK_ERR(ra__spawn_reserved(rt, NULL, resv_slot, &worker, (void *)&W_T,
                                 NULL, 20, &x), RA_EAGAIN);
    RA_CK_ERR(ra__spawn_reserved(rt, NULL, sup.id, &worker, (void *)&W_T,
                                 NULL, 20, &x), RA_EINVAL);
    RA_CK_ERR(ra__spawn_reserved(rt, NULL, 0, &worker, (void *)&W_T, NULL,
                                 20, &x), RA_EINVAL);
    // A crash: the old incarnation's monitors see it end, the new one has
    // the same pid.  Then the old pid reaches the new incarnation: it
    // crashes too and comes back a third time.
    for (int n = 2; n <= 3; n++) {
        uint64_t mref;
        RA_CK_OK(ra_monitor(scope, p0, &mref));
        cmd(scope, p0, T_FAIL, RA_EINVAL);
        RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_EINVAL);
        wait_inits('r', n);
        wait_state(scope, sup, "r", RA_CHILD_RUNNING);
        RA_CK_PID_EQ(pid_of(scope, sup, "r"), p0);
        ck_assert(ra_is_alive(rt, p0));
    }
    ck_assert_int_eq(atomic_load(&rec.terms['r']), 2);
    teardown(&rt, &scope, sup);
}
END_TEST

// A thread that sends to one pid every 20 us until told to stop.
typedef struct hammer {
    ra_runtime_t *rt;
    ra_pid_t to;
    atomic_bool stop;
    atomic_ulong sent, refused;
} hammer_t;

static void *
hammer_main(void *arg)
{
    hammer_t *h = arg;
    while (!atomic_load(&h->stop)) {
        ra_msg_t *m = ra_test_new_i64(99, 0);   // a tag workers ignore
        if (m != NULL && ra_runtime_send(h->rt, h->to, &m) == 0) {
            atomic_fetch_add(&h->sent, 1);
        } else {
            atomic_fetch_add(&h->refused, 1);
            ra_msg_unref(&m);
        }
        // (Not faster than the actor reads: the crash commands queue
        // behind these.)
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

// Restarts in a reserved slot racing with a sender: 50 crashes while
// another thread sends to the pid every 20 us.  Each send reaches an
// incarnation or is refused (between two), the slot is handed from one
// incarnation to the next every time, and (under TSan) without a race.
START_TEST(test_sup_reserved_slot_restarts_under_sends)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    RA_CK_OK(ra__slot_reserve(rt, &resv_slot));
    ra_sup_flags_t f = {.strategy = RA_ONE_FOR_ONE, .intensity = 1000,
                        .period_ms = 60000};
    ra_child_spec_t s = {.id = "r", .start = start_reserved,
                         .start_arg = (void *)&W_R};
    ra_pid_t sup;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    ra_pid_t p0 = pid_of(scope, sup, "r");
    // (Static: a failed assertion must not leave the thread a dead frame.)
    static hammer_t h;
    h = (hammer_t){.rt = rt, .to = p0};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, hammer_main, &h), 0);
    for (int n = 2; n <= 51; n++) {
        cmd(scope, p0, T_FAIL, RA_EINVAL);
        wait_inits('r', n);
    }
    atomic_store(&h.stop, true);
    pthread_join(th, NULL);
    ck_assert_uint_gt(atomic_load(&h.sent), 0);
    wait_state(scope, sup, "r", RA_CHILD_RUNNING);
    RA_CK_PID_EQ(pid_of(scope, sup, "r"), p0);
    ck_assert_int_eq(atomic_load(&rec.terms['r']), 50);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_one_for_all_restarts_in_order)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t p[3], sup = start3(rt, scope, RA_ONE_FOR_ALL, p);
    char buf[LOG_CAP + 1];

    rec_logs_clear();
    cmd(scope, p[1], T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, "a", p[0]);
    wait_new_pid(scope, sup, "b", p[1]);
    wait_new_pid(scope, sup, "c", p[2]);
    ra_test_sleep_ms(QUIET_MS / 4);
    // b ended by itself, then the others were stopped in reverse start
    // order; all were started again in start order.
    ck_assert_str_eq(STOP_LOG(buf), "bca");
    ck_assert_str_eq(START_LOG(buf), "abc");
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['c']), RA_SHUTDOWN);
    for (int i = 0; i < 3; i++) {
        ck_assert(!ra_is_alive(rt, p[i]));
    }
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_rest_for_one_restarts_later_ones)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t p[3], sup = start3(rt, scope, RA_REST_FOR_ONE, p);
    char buf[LOG_CAP + 1];

    rec_logs_clear();
    cmd(scope, p[1], T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, "b", p[1]);
    wait_new_pid(scope, sup, "c", p[2]);
    ra_test_sleep_ms(QUIET_MS / 4);
    RA_CK_PID_EQ(pid_of(scope, sup, "a"), p[0]);
    ck_assert_str_eq(STOP_LOG(buf), "bc");
    ck_assert_str_eq(START_LOG(buf), "bc");
    teardown(&rt, &scope, sup);
}
END_TEST

// check_temporary_bystander runs a (permanent), b (permanent) and t
// (temporary, last), crashes `crash`, and checks that t is stopped and
// gone while the others run with new pids.
static void
check_temporary_bystander(ra_strategy_t strategy, const char *crash)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(strategy);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT),
                            spec("t", &W_T, RA_TEMPORARY)};
    ra_child_info_t kids[MAX_KIDS];
    size_t n = 0;
    ra_pid_t sup, c0, t0;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    c0 = pid_of(scope, sup, crash);
    t0 = pid_of(scope, sup, "t");
    cmd(scope, c0, T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, crash, c0);
    wait_state(scope, sup, "t", RA_ENOENT);
    ra_test_sleep_ms(QUIET_MS);
    ck_assert(!ra_is_alive(rt, t0));
    ck_assert_int_eq(atomic_load(&rec.inits['t']), 1);
    ck_assert_int_eq(atomic_load(&rec.terms['t']), 1);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['t']), RA_SHUTDOWN);
    RA_CK_OK(ra_sup_which_children(scope, sup, kids, MAX_KIDS, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(kids[0].id, "a");
    ck_assert_str_eq(kids[1].id, "b");
    ck_assert_int_eq(kids[0].state, RA_CHILD_RUNNING);
    ck_assert_int_eq(kids[1].state, RA_CHILD_RUNNING);
    RA_CK_ERR(ra_sup_get_childspec(scope, sup, "t", &s[0]), RA_ENOENT);
    teardown(&rt, &scope, sup);
}

START_TEST(test_sup_one_for_all_temporary_bystander_dropped)
{
    check_temporary_bystander(RA_ONE_FOR_ALL, "a");
}
END_TEST

START_TEST(test_sup_rest_for_one_temporary_bystander_dropped)
{
    check_temporary_bystander(RA_REST_FOR_ONE, "b");
}
END_TEST

// ---- intensity and escalation --------------------------------------------

START_TEST(test_sup_intensity_third_crash_gives_up)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT),
                            spec("c", &W_C, RA_PERMANENT)};
    ra_pid_t sup, a0, b, c0;
    uint64_t mref = 0;
    char buf[LOG_CAP + 1];

    f.intensity = 2;
    f.period_ms = 5000;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    RA_CK_OK(ra_monitor(scope, sup, &mref));
    a0 = pid_of(scope, sup, "a");
    c0 = pid_of(scope, sup, "c");
    b = pid_of(scope, sup, "b");
    for (int i = 0; i < 2; i++) {
        ra_pid_t old = b;

        cmd(scope, old, T_FAIL, RA_EINVAL);
        b = wait_new_pid(scope, sup, "b", old);
    }
    ck_assert(ra_is_alive(rt, sup));
    rec_logs_clear();
    cmd(scope, b, T_FAIL, RA_EINVAL);
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_SHUTDOWN);
    // b's own end, then the rest in reverse start order.
    ck_assert_str_eq(STOP_LOG(buf), "bca");
    ck_assert_str_eq(START_LOG(buf), "");
    ck_assert_int_eq(atomic_load(&rec.inits['b']), 3);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['c']), RA_SHUTDOWN);
    ck_assert(!ra_is_alive(rt, a0));
    ck_assert(!ra_is_alive(rt, c0));
    ck_assert(!ra_is_alive(rt, sup));
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// Restarts outside the window do not count: intensity 1 in 300 ms
// survives two crashes 400 ms apart.
START_TEST(test_sup_intensity_window_slides)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);
    ra_pid_t sup, a;

    f.intensity = 1;
    f.period_ms = 300;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a = pid_of(scope, sup, "a");
    for (int i = 0; i < 3; i++) {
        ra_pid_t old = a;

        cmd(scope, old, T_FAIL, RA_EINVAL);
        a = wait_new_pid(scope, sup, "a", old);
        ra_test_sleep_ms(400);
    }
    ck_assert(ra_is_alive(rt, sup));
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 4);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_escalation_three_levels)
{
    static const wcfg_t wx = {'x', W_PLAIN, 0, 0};
    static const wcfg_t wy = {'y', W_PLAIN, 0, 0};
    static ra_child_spec_t leaves[2];
    static ra_sup_args_t mid_args;
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t top_specs[2] = {spec("mid", NULL, RA_PERMANENT),
                                    spec("a", &W_A, RA_PERMANENT)};
    ra_child_info_t ci;
    ra_pid_t top, mid0, mid1, x0, y0, x, x1, y1, a0;
    uint64_t mref = 0;

    leaves[0] = spec("x", &wx, RA_PERMANENT);
    leaves[1] = spec("y", &wy, RA_PERMANENT);
    memset(&mid_args, 0, sizeof mid_args);
    mid_args.flags.strategy = RA_ONE_FOR_ONE;
    mid_args.flags.intensity = 2;
    mid_args.flags.period_ms = 5000;
    mid_args.specs = leaves;
    mid_args.n = 2;
    top_specs[0].beh = NULL;
    top_specs[0].start = ra_sup_start_fn;
    top_specs[0].start_arg = &mid_args;
    top_specs[0].type = RA_SUPERVISOR;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, top_specs, 2, &top));
    RA_CK_OK(find_child(scope, top, "mid", &ci));
    ck_assert_int_eq(ci.type, RA_SUPERVISOR);
    mid0 = pid_of(scope, top, "mid");
    a0 = pid_of(scope, top, "a");
    x0 = pid_of(scope, mid0, "x");
    y0 = pid_of(scope, mid0, "y");
    RA_CK_OK(ra_monitor(scope, mid0, &mref));
    x = x0;
    for (int i = 0; i < 2; i++) {
        ra_pid_t old = x;

        cmd(scope, old, T_FAIL, RA_EINVAL);
        x = wait_new_pid(scope, mid0, "x", old);
    }
    cmd(scope, x, T_FAIL, RA_EINVAL);
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_SHUTDOWN);
    mid1 = wait_new_pid(scope, top, "mid", mid0);
    x1 = pid_of(scope, mid1, "x");
    y1 = pid_of(scope, mid1, "y");
    ck_assert(!ra_pid_eq(x1, x) && !ra_pid_eq(x1, x0));
    ck_assert(!ra_pid_eq(y1, y0));
    ck_assert(!ra_is_alive(rt, y0));
    ck_assert_int_eq(atomic_load(&rec.inits['x']), 4);
    ck_assert_int_eq(atomic_load(&rec.inits['y']), 2);
    RA_CK_PID_EQ(pid_of(scope, top, "a"), a0); // one_for_one at the top
    // Stopping the top stops the whole tree.
    RA_CK_OK(ra_sup_stop(scope, top));
    ck_assert(!ra_is_alive(rt, mid1));
    ck_assert(!ra_is_alive(rt, x1));
    ck_assert(!ra_is_alive(rt, y1));
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// ---- failed restarts -------------------------------------------------------

// A flaky start function: call k (from 1) fails when fail_from <= k <=
// fail_to, or while fail is set; otherwise it starts worker a.
typedef struct flaky {
    atomic_int calls;
    atomic_bool fail;
    int fail_from, fail_to;
} flaky_t;

static int
start_flaky(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
            uint64_t *info)
{
    flaky_t *fl = arg;
    int k = atomic_fetch_add(&fl->calls, 1) + 1;

    if (atomic_load(&fl->fail) || (k >= fl->fail_from && k <= fl->fail_to)) {
        return -EIO;
    }
    return start_worker(sup, (void *)&W_A, extra, out, info);
}

static ra_child_spec_t
flaky_spec(flaky_t *fl)
{
    ra_child_spec_t s = spec("a", NULL, RA_PERMANENT);

    s.beh = NULL;
    s.start = start_flaky;
    s.start_arg = fl;
    return s;
}

START_TEST(test_sup_failed_restart_retried_until_it_starts)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    flaky_t fl = {.fail_from = 2, .fail_to = 4};
    ra_child_spec_t s = flaky_spec(&fl);
    ra_pid_t sup, a0;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, "a", a0);
    ck_assert_int_eq(atomic_load(&fl.calls), 5); // 1 + 3 failures + 1
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 2);
    teardown(&rt, &scope, sup);
}
END_TEST

// flags for a supervisor whose failed restarts are retried every ~20 ms,
// so the restarting state lasts long enough to be seen.
static ra_sup_flags_t
slow_retry_flags(void)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);

    f.intensity = 10000;
    f.period_ms = 5000;
    f.backoff_min_ms = 20;
    f.backoff_max_ms = 20;
    return f;
}

START_TEST(test_sup_failed_restart_reported_restarting)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = slow_retry_flags();
    flaky_t fl = {0};
    ra_child_spec_t s = flaky_spec(&fl);
    ra_child_info_t ci;
    ra_pid_t sup, a0, a1;
    int calls;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    atomic_store(&fl.fail, true);
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    wait_state(scope, sup, "a", RA_CHILD_RESTARTING);
    RA_CK_WAIT(atomic_load(&fl.calls) >= 3, WAIT_MS); // it keeps trying
    RA_CK_OK(find_child(scope, sup, "a", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_RESTARTING);
    ck_assert(ra_pid_is_nil(ci.pid));
    RA_CK_ERR(ra_sup_restart_child(scope, sup, "a", &a1), RA_ERESTARTING);
    RA_CK_ERR(ra_sup_delete_child(scope, sup, "a"), RA_ERESTARTING);
    // Let the next try succeed: the child runs again.
    atomic_store(&fl.fail, false);
    a1 = wait_new_pid(scope, sup, "a", a0);
    calls = atomic_load(&fl.calls);
    ra_test_sleep_ms(QUIET_MS / 2);
    ck_assert_int_eq(atomic_load(&fl.calls), calls); // tries stopped
    RA_CK_PID_EQ(pid_of(scope, sup, "a"), a1);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_failed_restart_terminate_child_stops_retries)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = slow_retry_flags();
    flaky_t fl = {0};
    ra_child_spec_t s = flaky_spec(&fl);
    ra_child_info_t ci;
    ra_pid_t sup, a0, a1;
    int calls;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    atomic_store(&fl.fail, true);
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    wait_state(scope, sup, "a", RA_CHILD_RESTARTING);
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "a", RA_PID_NIL));
    RA_CK_OK(find_child(scope, sup, "a", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    // A retry already scheduled must not bring it back.
    atomic_store(&fl.fail, false);
    calls = atomic_load(&fl.calls);
    ra_test_sleep_ms(QUIET_MS);
    ck_assert_int_eq(atomic_load(&fl.calls), calls);
    RA_CK_OK(find_child(scope, sup, "a", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    RA_CK_OK(ra_sup_restart_child(scope, sup, "a", &a1));
    ck_assert(ra_is_alive(rt, a1));
    RA_CK_PID_EQ(pid_of(scope, sup, "a"), a1);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_failed_restart_stop_does_not_hang)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = slow_retry_flags();
    flaky_t fl = {0};
    ra_child_spec_t s = flaky_spec(&fl);
    ra_pid_t sup, a0;
    uint64_t t0, took;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    atomic_store(&fl.fail, true);
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    wait_state(scope, sup, "a", RA_CHILD_RESTARTING);
    t0 = ra_test_now_ms();
    RA_CK_OK(ra_sup_stop(scope, sup));
    took = ra_test_now_ms() - t0;
    ck_assert_msg(took < 1000, "ra_sup_stop took %" PRIu64 " ms", took);
    ck_assert(!ra_is_alive(rt, sup));
    RA_CK_WAIT(ra_runtime_actor_count(rt) == 1, WAIT_MS);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

START_TEST(test_sup_failed_restart_always_failing_gives_up)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    flaky_t fl = {.fail_from = 2, .fail_to = 1000000};
    ra_child_spec_t s[2] = {spec("b", &W_B, RA_PERMANENT), flaky_spec(&fl)};
    ra_pid_t sup, a0;
    uint64_t mref = 0;

    f.intensity = 3;
    f.period_ms = 5000;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 2, &sup));
    RA_CK_OK(ra_monitor(scope, sup, &mref));
    a0 = pid_of(scope, sup, "a");
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_SHUTDOWN);
    // Every try counted: the crash's restart and two retries failed (three
    // restarts), and a fourth within the period was one too many.
    ck_assert_int_eq(atomic_load(&fl.calls), 4);
    ck_assert_int_eq(atomic_load(&rec.terms['b']), 1);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['b']), RA_SHUTDOWN);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// ---- shutdown --------------------------------------------------------------

// terminate_timed starts child a of worker w with shutdown, terminates it
// and returns how long ra_sup_terminate_child took in ms.
static uint64_t
terminate_timed(const wcfg_t *w, int64_t shutdown)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", w, RA_PERMANENT);
    ra_child_info_t ci;
    ra_pid_t sup, a0;
    uint64_t t0, took;

    s.shutdown_ms = shutdown;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    t0 = ra_test_now_ms();
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "a", RA_PID_NIL));
    took = ra_test_now_ms() - t0;
    ck_assert(!ra_is_alive(rt, a0));
    ck_assert_int_eq(atomic_load(&rec.terms['a']), 1);
    RA_CK_OK(find_child(scope, sup, "a", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    ra_test_sleep_ms(QUIET_MS / 2);
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 1); // not restarted
    teardown(&rt, &scope, sup);
    return took;
}

START_TEST(test_sup_shutdown_timeout_kills_ignoring_child)
{
    static const wcfg_t w = {'a', W_TRAP_IGNORE, 0, 0};
    uint64_t took = terminate_timed(&w, 300);

    ck_assert_msg(took >= 290 && took < 1000,
                  "terminate_child took %" PRIu64 " ms, expected ~300", took);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_KILLED);
}
END_TEST

START_TEST(test_sup_shutdown_timeout_child_that_obeys_ends_at_once)
{
    uint64_t took = terminate_timed(&W_A, 5000);

    ck_assert_msg(took < 500, "terminate_child took %" PRIu64 " ms", took);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
}
END_TEST

START_TEST(test_sup_shutdown_trapping_child_exits_in_time)
{
    static const wcfg_t w = {'a', W_TRAP_DELAY, 0, 100};
    uint64_t took = terminate_timed(&w, 2000);

    ck_assert_msg(took >= 95 && took < 1000,
                  "terminate_child took %" PRIu64 " ms, expected ~100", took);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
}
END_TEST

START_TEST(test_sup_shutdown_brutal_kill_is_immediate)
{
    static const wcfg_t w = {'a', W_TRAP_IGNORE, 0, 0};
    uint64_t took = terminate_timed(&w, RA_SHUTDOWN_BRUTAL);

    ck_assert_msg(took < 200, "terminate_child took %" PRIu64 " ms", took);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_KILLED);
}
END_TEST

START_TEST(test_sup_shutdown_stop_in_reverse_order)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t p[3], sup = start3(rt, scope, RA_ONE_FOR_ONE, p);
    char buf[LOG_CAP + 1];

    rec_logs_clear();
    RA_CK_OK(ra_sup_stop(scope, sup));
    ck_assert(!ra_is_alive(rt, sup));
    ck_assert_str_eq(STOP_LOG(buf), "cba");
    for (int i = 0; i < 3; i++) {
        ck_assert(!ra_is_alive(rt, p[i]));
    }
    RA_CK_ERR(ra_sup_stop(scope, sup), RA_ENOPROC);
    RA_CK_ERR(ra_sup_count_children(scope, sup, &(ra_child_counts_t){0}),
              RA_ENOPROC);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// Three dynamic children take 1 s, 1 s and 5 s to exit after the shutdown
// signal; with shutdown 2000 ms and parallel shutdown the stop takes ~2 s:
// not 1 s (the slow one is waited for) and not 5 s or more (it is killed;
// the waits do not add up).
START_TEST(test_sup_shutdown_simple_one_for_one_in_parallel)
{
    static const wcfg_t fast1 = {'p', W_TRAP_DELAY, 0, 1000};
    static const wcfg_t fast2 = {'q', W_TRAP_DELAY, 0, 1000};
    static const wcfg_t slow = {'r', W_TRAP_DELAY, 0, 5000};
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_SIMPLE_ONE_FOR_ONE);
    ra_child_spec_t s = spec("tmpl", &W_A, RA_TEMPORARY);
    ra_pid_t sup, p[3];
    uint64_t t0, took;

    s.shutdown_ms = 2000;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    RA_CK_OK(ra_sup_start_child(scope, sup, NULL, (void *)&fast1, &p[0]));
    RA_CK_OK(ra_sup_start_child(scope, sup, NULL, (void *)&fast2, &p[1]));
    RA_CK_OK(ra_sup_start_child(scope, sup, NULL, (void *)&slow, &p[2]));
    ck_assert_int_eq(atomic_load(&rec.nstart), 3);
    t0 = ra_test_now_ms();
    RA_CK_OK(ra_sup_stop(scope, sup));
    took = ra_test_now_ms() - t0;
    ck_assert_msg(took >= 1900 && took < 3500,
                  "ra_sup_stop took %" PRIu64 " ms, expected ~2000", took);
    for (int i = 0; i < 3; i++) {
        ck_assert(!ra_is_alive(rt, p[i]));
    }
    RA_CK_REASON_EQ(atomic_load(&rec.reason['p']), RA_SHUTDOWN);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['q']), RA_SHUTDOWN);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['r']), RA_KILLED);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// ---- administration --------------------------------------------------------

// start1 starts a one_for_one supervisor with permanent child a.
static ra_pid_t
start1(ra_runtime_t *rt)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);
    ra_pid_t sup;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    return sup;
}

START_TEST(test_sup_admin_start_child)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t sup = start1(rt), a0, b0, out = {1, 1, 1, 1};
    ra_child_spec_t sa = spec("a", &W_C, RA_PERMANENT);
    ra_child_spec_t sb = spec("b", &W_B, RA_TRANSIENT);
    ra_child_info_t kids[MAX_KIDS];
    size_t n = 0;

    a0 = pid_of(scope, sup, "a");
    RA_CK_ERR(ra_sup_start_child(scope, sup, &sa, NULL, &out), RA_EALREADY);
    ck_assert(ra_pid_is_nil(out));
    RA_CK_OK(ra_sup_start_child(scope, sup, &sb, NULL, &b0));
    ck_assert(ra_is_alive(rt, b0));
    ck_assert_int_eq(atomic_load(&rec.inits['b']), 1);
    ck_assert_int_eq(atomic_load(&rec.inits['c']), 0);
    RA_CK_OK(ra_sup_which_children(scope, sup, kids, MAX_KIDS, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(kids[0].id, "a");
    RA_CK_PID_EQ(kids[0].pid, a0);
    ck_assert_str_eq(kids[1].id, "b");
    RA_CK_PID_EQ(kids[1].pid, b0);
    // A stopped spec with the id is RA_EEXIST.
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "b", RA_PID_NIL));
    RA_CK_ERR(ra_sup_start_child(scope, sup, &sb, NULL, &out), RA_EEXIST);
    ck_assert_int_eq(atomic_load(&rec.inits['b']), 1);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_admin_terminate_child_idempotent)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t sup = start1(rt), a0;
    ra_child_info_t ci;

    a0 = pid_of(scope, sup, "a");
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "a", RA_PID_NIL));
    ck_assert(!ra_is_alive(rt, a0));
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "a", RA_PID_NIL));
    RA_CK_ERR(ra_sup_terminate_child(scope, sup, "zz", RA_PID_NIL),
              RA_ENOENT);
    RA_CK_OK(find_child(scope, sup, "a", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    ck_assert(ra_pid_is_nil(ci.pid));
    ra_test_sleep_ms(QUIET_MS / 2);
    // A permanent child terminated on request is not restarted.
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 1);
    ck_assert_int_eq(atomic_load(&rec.terms['a']), 1);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_admin_restart_child)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t sup = start1(rt), a0, a1, out = {1, 1, 1, 1};

    a0 = pid_of(scope, sup, "a");
    RA_CK_ERR(ra_sup_restart_child(scope, sup, "a", &out), RA_ERUNNING);
    ck_assert(ra_pid_is_nil(out));
    RA_CK_ERR(ra_sup_restart_child(scope, sup, "zz", &out), RA_ENOENT);
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "a", RA_PID_NIL));
    RA_CK_OK(ra_sup_restart_child(scope, sup, "a", &a1));
    ck_assert(!ra_pid_eq(a1, a0));
    ck_assert(ra_is_alive(rt, a1));
    RA_CK_PID_EQ(pid_of(scope, sup, "a"), a1);
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 2);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_admin_delete_child)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t sup = start1(rt);
    ra_child_spec_t got;
    ra_child_counts_t k;

    RA_CK_ERR(ra_sup_delete_child(scope, sup, "a"), RA_ERUNNING);
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "a", RA_PID_NIL));
    RA_CK_OK(ra_sup_delete_child(scope, sup, "a"));
    RA_CK_ERR(ra_sup_delete_child(scope, sup, "a"), RA_ENOENT);
    RA_CK_ERR(ra_sup_get_childspec(scope, sup, "a", &got), RA_ENOENT);
    RA_CK_ERR(ra_sup_restart_child(scope, sup, "a", NULL), RA_ENOENT);
    RA_CK_OK(ra_sup_count_children(scope, sup, &k));
    ck_assert_uint_eq(k.specs, 0);
    ck_assert_uint_eq(k.active, 0);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_admin_which_children)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t p[3], sup = start3(rt, scope, RA_ONE_FOR_ONE, p);
    ra_child_info_t kids[2];
    size_t n = 0;

    RA_CK_OK(ra_sup_terminate_child(scope, sup, "b", RA_PID_NIL));
    memset(kids, 0xab, sizeof kids);
    RA_CK_OK(ra_sup_which_children(scope, sup, kids, 2, &n));
    ck_assert_uint_eq(n, 3); // all of them, though only two fit
    ck_assert_str_eq(kids[0].id, "a");
    RA_CK_PID_EQ(kids[0].pid, p[0]);
    ck_assert_int_eq(kids[0].state, RA_CHILD_RUNNING);
    ck_assert_int_eq(kids[0].type, RA_WORKER);
    ck_assert(!kids[0].os_process);
    ck_assert_int_eq(kids[0].ospid, 0);
    ck_assert_str_eq(kids[1].id, "b");
    ck_assert(ra_pid_is_nil(kids[1].pid));
    ck_assert_int_eq(kids[1].state, RA_CHILD_STOPPED);
    RA_CK_OK(ra_sup_which_children(scope, sup, NULL, 0, &n));
    ck_assert_uint_eq(n, 3);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_admin_count_children)
{
    static const wcfg_t x = {'x', W_PLAIN, 0, 0};
    static ra_child_spec_t leaves[1];
    static ra_sup_args_t mid_args;
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT),
                            spec("m", NULL, RA_PERMANENT)};
    ra_child_counts_t k;
    ra_pid_t sup;

    leaves[0] = spec("x", &x, RA_PERMANENT);
    memset(&mid_args, 0, sizeof mid_args);
    mid_args.specs = leaves;
    mid_args.n = 1;
    s[2].beh = NULL;
    s[2].arg = NULL;
    s[2].start = ra_sup_start_fn;
    s[2].start_arg = &mid_args;
    s[2].type = RA_SUPERVISOR;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    RA_CK_OK(ra_sup_count_children(scope, sup, &k));
    ck_assert_uint_eq(k.specs, 3);
    ck_assert_uint_eq(k.active, 3);
    ck_assert_uint_eq(k.supervisors, 1);
    ck_assert_uint_eq(k.workers, 2);
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "b", RA_PID_NIL));
    RA_CK_OK(ra_sup_count_children(scope, sup, &k));
    ck_assert_uint_eq(k.specs, 3);
    ck_assert_uint_eq(k.active, 2);
    ck_assert_uint_eq(k.supervisors, 1);
    ck_assert_uint_eq(k.workers, 2);
    teardown(&rt, &scope, sup);
    ck_assert_int_eq(atomic_load(&rec.terms['x']), 1);
}
END_TEST

START_TEST(test_sup_admin_get_childspec)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    char id[] = "alpha";
    ra_child_spec_t s[2] = {spec(id, &W_A, RA_TRANSIENT),
                            spec("b", &W_B, RA_TEMPORARY)};
    ra_child_spec_t got;
    ra_pid_t sup;

    s[0].shutdown_ms = 1234;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 2, &sup));
    id[0] = 'X'; // the supervisor keeps its own copy of the id
    memset(&got, 0, sizeof got);
    RA_CK_OK(ra_sup_get_childspec(scope, sup, "alpha", &got));
    ck_assert_str_eq(got.id, "alpha");
    ck_assert_int_eq(got.restart, RA_TRANSIENT);
    ck_assert_int_eq(got.shutdown_ms, 1234);
    ck_assert_int_eq(got.type, RA_WORKER);
    ck_assert_ptr_eq(got.beh, &worker);
    ck_assert_ptr_eq(got.arg, &W_A);
    RA_CK_OK(ra_sup_get_childspec(scope, sup, "b", &got));
    ck_assert_str_eq(got.id, "b");
    ck_assert_int_eq(got.restart, RA_TEMPORARY);
    RA_CK_ERR(ra_sup_get_childspec(scope, sup, "Xlpha", &got), RA_ENOENT);
    teardown(&rt, &scope, sup);
}
END_TEST

static int
start_ignore(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
             uint64_t *info)
{
    atomic_int *calls = arg;

    (void)sup;
    (void)extra;
    (void)out;
    (void)info;
    atomic_fetch_add(calls, 1);
    return RA_CHILD_IGNORE;
}

START_TEST(test_sup_admin_ignore_keeps_spec)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    atomic_int calls = 0;
    ra_child_spec_t s[2] = {spec("i", NULL, RA_PERMANENT),
                            spec("a", &W_A, RA_PERMANENT)};
    ra_child_spec_t dyn = spec("j", NULL, RA_PERMANENT);
    ra_child_info_t ci;
    ra_child_counts_t k;
    ra_pid_t sup, out = {1, 1, 1, 1};

    s[0].beh = NULL;
    s[0].start = start_ignore;
    s[0].start_arg = &calls;
    dyn.beh = NULL;
    dyn.start = start_ignore;
    dyn.start_arg = &calls;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 2, &sup));
    ck_assert_int_eq(atomic_load(&calls), 1);
    ck_assert(ra_is_alive(rt, pid_of(scope, sup, "a")));
    RA_CK_OK(find_child(scope, sup, "i", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    ck_assert(ra_pid_is_nil(ci.pid));
    RA_CK_ERR(ra_sup_start_child(scope, sup, &dyn, NULL, &out),
              RA_CHILD_IGNORE);
    ck_assert(ra_pid_is_nil(out));
    ck_assert_int_eq(atomic_load(&calls), 2);
    RA_CK_OK(find_child(scope, sup, "j", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    RA_CK_OK(ra_sup_count_children(scope, sup, &k));
    ck_assert_uint_eq(k.specs, 3);
    ck_assert_uint_eq(k.active, 1);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_admin_simple_one_for_one_dynamic)
{
    static const wcfg_t d1 = {'d', W_PLAIN, 0, 0};
    static const wcfg_t e1 = {'e', W_PLAIN, 0, 0};
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_SIMPLE_ONE_FOR_ONE);
    ra_child_spec_t s = spec("tmpl", &W_A, RA_PERMANENT);
    ra_child_info_t kids[MAX_KIDS];
    ra_child_spec_t got;
    size_t n = 0;
    ra_pid_t sup, p0, p1, p2;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    ck_assert_int_eq(atomic_load(&rec.nstart), 0); // no static children
    RA_CK_OK(ra_sup_start_child(scope, sup, NULL, NULL, &p0));
    RA_CK_OK(ra_sup_start_child(scope, sup, NULL, (void *)&d1, &p1));
    RA_CK_OK(ra_sup_start_child(scope, sup, NULL, (void *)&e1, &p2));
    // The template's arg, unless extra is given.
    ck_assert_int_eq(atomic_load(&rec.inits['a']), 1);
    ck_assert_int_eq(atomic_load(&rec.inits['d']), 1);
    ck_assert_int_eq(atomic_load(&rec.inits['e']), 1);
    RA_CK_OK(ra_sup_which_children(scope, sup, kids, MAX_KIDS, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(kids[0].id, "");
    RA_CK_PID_EQ(kids[0].pid, p0);
    RA_CK_PID_EQ(kids[1].pid, p1);
    RA_CK_PID_EQ(kids[2].pid, p2);
    RA_CK_OK(ra_sup_get_childspec(scope, sup, "tmpl", &got));
    ck_assert_int_eq(got.restart, RA_PERMANENT);
    RA_CK_ERR(ra_sup_restart_child(scope, sup, "tmpl", NULL), RA_ENOTSUP);
    RA_CK_ERR(ra_sup_delete_child(scope, sup, "tmpl"), RA_ENOTSUP);
    // A permanent dynamic child is restarted with its own extra.
    cmd(scope, p1, T_FAIL, RA_EINVAL);
    RA_CK_WAIT(atomic_load(&rec.inits['d']) == 2, WAIT_MS);
    // terminate_child names it by pid and removes it.
    RA_CK_OK(ra_sup_terminate_child(scope, sup, NULL, p2));
    ck_assert(!ra_is_alive(rt, p2));
    RA_CK_ERR(ra_sup_terminate_child(scope, sup, NULL, p2), RA_ENOENT);
    RA_CK_OK(ra_sup_which_children(scope, sup, kids, MAX_KIDS, &n));
    ck_assert_uint_eq(n, 2);
    RA_CK_PID_EQ(kids[0].pid, p0);
    ck_assert(!ra_pid_eq(kids[1].pid, p1));
    ck_assert(ra_is_alive(rt, kids[1].pid));
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_admin_count_many_dynamic_children)
{
    static const wcfg_t w = {'w', W_PLAIN, 0, 0};
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_SIMPLE_ONE_FOR_ONE);
    ra_child_spec_t s = spec("w", &w, RA_TEMPORARY);
    size_t want = ra_test_scaled(10000), started = 0, n = 0;
    ra_child_counts_t k;
    ra_pid_t sup, pid;
    int rc = 0;

    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    for (size_t i = 0; i < want && rc == 0; i++) {
        rc = ra_sup_start_child(scope, sup, NULL, NULL, &pid);
        started += rc == 0;
    }
    RA_CK_OK(rc);
    ck_assert_uint_eq(started, want);
    RA_CK_OK(ra_sup_count_children(scope, sup, &k));
    // specs is the template, as OTP counts it (ra_supervisor.h).
    ck_assert_uint_eq(k.specs, 1);
    ck_assert_uint_eq(k.active, want);
    ck_assert_uint_eq(k.workers, want);
    ck_assert_uint_eq(k.supervisors, 0);
    RA_CK_OK(ra_sup_which_children(scope, sup, NULL, 0, &n));
    ck_assert_uint_eq(n, want);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), want + 2);
    RA_CK_OK(ra_sup_stop(scope, sup));
    ck_assert_int_eq(atomic_load(&rec.terms['w']), (int)want);
    RA_CK_WAIT(ra_runtime_actor_count(rt) == 1, WAIT_MS);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// ---- auto-shutdown ---------------------------------------------------------

// start_auto starts a supervisor with auto-shutdown mode, a permanent
// child a and transient significant children s and t, and monitors it.
static ra_pid_t
start_auto(ra_runtime_t *rt, ra_ctx_t *scope, ra_auto_shutdown_t mode,
           uint64_t *mref)
{
    static const wcfg_t ws = {'s', W_PLAIN, 0, 0};
    static const wcfg_t wt = {'t', W_PLAIN, 0, 0};
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("s", &ws, RA_TRANSIENT),
                            spec("t", &wt, RA_TRANSIENT)};
    ra_pid_t sup;

    f.auto_shutdown = mode;
    s[1].significant = true;
    s[2].significant = true;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    RA_CK_OK(ra_monitor(scope, sup, mref));
    return sup;
}

START_TEST(test_sup_auto_any_significant_stops_supervisor)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    uint64_t mref = 0;
    ra_pid_t sup = start_auto(rt, scope, RA_AUTO_ANY_SIGNIFICANT, &mref);
    ra_pid_t a0 = pid_of(scope, sup, "a");
    ra_pid_t t0 = pid_of(scope, sup, "t");

    cmd(scope, pid_of(scope, sup, "s"), T_EXIT, RA_NORMAL);
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_SHUTDOWN);
    ck_assert(!ra_is_alive(rt, a0));
    ck_assert(!ra_is_alive(rt, t0));
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['t']), RA_SHUTDOWN);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// A significant transient child that crashes is restarted, not a reason
// to shut down.
START_TEST(test_sup_auto_any_significant_crash_restarts)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    uint64_t mref = 0;
    ra_pid_t sup = start_auto(rt, scope, RA_AUTO_ANY_SIGNIFICANT, &mref);
    ra_pid_t s0 = pid_of(scope, sup, "s");

    cmd(scope, s0, T_FAIL, RA_EINVAL);
    wait_new_pid(scope, sup, "s", s0);
    expect_alive_for(rt, sup);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_auto_all_significant_waits_for_last)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    uint64_t mref = 0;
    ra_pid_t sup = start_auto(rt, scope, RA_AUTO_ALL_SIGNIFICANT, &mref);
    ra_pid_t a0 = pid_of(scope, sup, "a");

    cmd(scope, pid_of(scope, sup, "s"), T_EXIT, RA_NORMAL);
    wait_state(scope, sup, "s", RA_CHILD_STOPPED);
    expect_alive_for(rt, sup);
    ck_assert(ra_is_alive(rt, a0));
    cmd(scope, pid_of(scope, sup, "t"), T_EXIT, RA_SHUTDOWN);
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_SHUTDOWN);
    ck_assert(!ra_is_alive(rt, a0));
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

START_TEST(test_sup_auto_never_keeps_running)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    uint64_t mref = 0;
    ra_pid_t sup = start_auto(rt, scope, RA_AUTO_NEVER, &mref);

    cmd(scope, pid_of(scope, sup, "s"), T_EXIT, RA_NORMAL);
    cmd(scope, pid_of(scope, sup, "t"), T_EXIT, RA_NORMAL);
    wait_state(scope, sup, "s", RA_CHILD_STOPPED);
    wait_state(scope, sup, "t", RA_CHILD_STOPPED);
    expect_alive_for(rt, sup);
    pid_of(scope, sup, "a");
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_auto_terminate_child_does_not_trigger)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    uint64_t mref = 0;
    ra_pid_t sup = start_auto(rt, scope, RA_AUTO_ANY_SIGNIFICANT, &mref);

    RA_CK_OK(ra_sup_terminate_child(scope, sup, "s", RA_PID_NIL));
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "t", RA_PID_NIL));
    expect_alive_for(rt, sup);
    pid_of(scope, sup, "a");
    teardown(&rt, &scope, sup);
}
END_TEST

// ---- events ----------------------------------------------------------------

typedef struct ev {
    char event[32];
    char id[64];
    int64_t reason;
    int64_t ospid; // -1 when absent
} ev_t;

// recv_event waits for the next RA_TAG_SUP_EVENT message and decodes it.
// Returns 0 or the receive error; other messages are freed and skipped.
static int
recv_event(ra_ctx_t *scope, int64_t ms, ev_t *ev)
{
    ra_msg_t *msg = NULL;
    bson_iter_t it;
    const bson_t *doc;
    int rc;

    for (;;) {
        rc = ra_receive(scope, ms, &msg);
        if (rc != 0) {
            return rc;
        }
        if (ra_msg_tag(msg) == RA_TAG_SUP_EVENT &&
            ra_msg_kind(msg) == RA_MSG_BSON) {
            break;
        }
        ra_msg_unref(&msg);
    }
    memset(ev, 0, sizeof *ev);
    ev->reason = -12345;
    ev->ospid = -1;
    doc = ra_msg_bson(msg);
    if (doc != NULL && bson_iter_init_find(&it, doc, "event") &&
        BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(ev->event, sizeof ev->event, "%s",
                 bson_iter_utf8(&it, NULL));
    }
    if (doc != NULL && bson_iter_init_find(&it, doc, "id") &&
        BSON_ITER_HOLDS_UTF8(&it)) {
        snprintf(ev->id, sizeof ev->id, "%s", bson_iter_utf8(&it, NULL));
    }
    if (doc != NULL && bson_iter_init_find(&it, doc, "reason") &&
        BSON_ITER_HOLDS_INT64(&it)) {
        ev->reason = bson_iter_int64(&it);
    }
    if (doc != NULL && bson_iter_init_find(&it, doc, "ospid") &&
        BSON_ITER_HOLDS_INT64(&it)) {
        ev->ospid = bson_iter_int64(&it);
    }
    ra_msg_unref(&msg);
    return 0;
}

// expect_event waits for the next event named what (skipping others, at
// most 16) about child id and returns it.
static ev_t
expect_event(ra_ctx_t *scope, const char *what, const char *id)
{
    ev_t ev;

    for (int i = 0; i < 16; i++) {
        RA_CK_OK(recv_event(scope, WAIT_MS, &ev));
        if (strcmp(ev.event, what) == 0) {
            ck_assert_str_eq(ev.id, id);
            return ev;
        }
    }
    ck_abort_msg("no \"%s\" event among the next 16", what);
    return ev;
}

START_TEST(test_sup_events_crash_and_restart)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);
    ra_pid_t sup, a0;
    ev_t ev;

    f.events = ra_self(scope);
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    RA_CK_OK(recv_event(scope, WAIT_MS, &ev));
    ck_assert_str_eq(ev.event, "started");
    ck_assert_str_eq(ev.id, "a");
    a0 = pid_of(scope, sup, "a");
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    RA_CK_OK(recv_event(scope, WAIT_MS, &ev));
    ck_assert_str_eq(ev.event, "exited");
    ck_assert_str_eq(ev.id, "a");
    RA_CK_REASON_EQ(ev.reason, RA_EINVAL);
    expect_event(scope, "restarted", "a");
    wait_new_pid(scope, sup, "a", a0);
    teardown(&rt, &scope, sup);
}
END_TEST

// ---- backoff ---------------------------------------------------------------

START_TEST(test_sup_backoff_delays_restart)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s = spec("a", &W_A, RA_PERMANENT);
    ra_child_info_t ci;
    ra_pid_t sup, a0;
    uint64_t gap_ms;
    bool seen_restarting = false;
    uint64_t deadline;

    f.backoff_min_ms = 50;
    f.backoff_max_ms = 200;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    a0 = pid_of(scope, sup, "a");
    cmd(scope, a0, T_FAIL, RA_EINVAL);
    // Poll until the supervisor has seen the crash.
    deadline = ra_test_now_ms() + WAIT_MS;
    for (;;) {
        int rc = find_child(scope, sup, "a", &ci);

        if (rc == 0 && !(ci.state == RA_CHILD_RUNNING &&
                         ra_pid_eq(ci.pid, a0))) {
            seen_restarting = ci.state == RA_CHILD_RESTARTING;
            break;
        }
        if (ra_test_now_ms() >= deadline) {
            break;
        }
        ra_test_sleep_ms(1);
    }
    ck_assert_msg(seen_restarting, "state after the crash: %d",
                  (int)ci.state);
    ck_assert(ra_pid_is_nil(ci.pid));
    wait_new_pid(scope, sup, "a", a0);
    gap_ms = (atomic_load(&rec.init_ns['a']) - atomic_load(&rec.term_ns['a'])) /
             1000000u;
    ck_assert_msg(gap_ms >= 35 && gap_ms < 1000,
                  "restarted %" PRIu64 " ms after the crash", gap_ms);
    teardown(&rt, &scope, sup);
}
END_TEST

// ---- OS-process children ---------------------------------------------------

// A scratch directory per test, for marker files the shell scripts write.
typedef struct scratch {
    char dir[64];
    char path[128];
    char script[512];
} scratch_t;

static void
scratch_new(scratch_t *sc)
{
    snprintf(sc->dir, sizeof sc->dir, "/tmp/rayo-sup-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(sc->dir));
}

static const char *
scratch_file(scratch_t *sc, const char *name)
{
    snprintf(sc->path, sizeof sc->path, "%s/%s", sc->dir, name);
    return sc->path;
}

static void
scratch_destroy(scratch_t *sc)
{
    const char *names[] = {"crashed", "ready"};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        unlink(scratch_file(sc, names[i]));
    }
    rmdir(sc->dir);
}

// os_spec returns a spec running /bin/sh -c script; argv must outlive the
// call to ra_sup_start (the supervisor copies the strings).
static ra_child_spec_t
os_spec(const char *id, const char *argv[4], const char *script,
        ra_restart_t restart)
{
    ra_child_spec_t s = {0};

    argv[0] = "/bin/sh";
    argv[1] = "-c";
    argv[2] = script;
    argv[3] = NULL;
    s.id = id;
    s.argv = argv;
    s.restart = restart;
    return s;
}

// os_unsupported tells whether OS children cannot run here: valgrind does
// not know pidfd_open, so ra_sup_start fails with -ENOSYS under it.  The
// OS tests then return early (check cannot skip one test of a suite).
static bool
os_unsupported(ra_runtime_t *rt, ra_ctx_t *scope)
{
    static const char *const argv[] = {"/bin/sh", "-c", "exit 0", NULL};
    ra_child_spec_t s = {0};
    ra_pid_t sup;
    int rc;

    s.id = "probe";
    s.argv = argv;
    s.restart = RA_TEMPORARY;
    rc = ra_sup_start(rt, NULL, NULL, &s, 1, &sup);
    if (rc == -ENOSYS) {
        fprintf(stderr, "OS children unsupported here (valgrind?): "
                        "test skipped\n");
        return true;
    }
    RA_CK_OK(rc);
    RA_CK_OK(ra_sup_stop(scope, sup));
    return false;
}

// ---- children forked by a fork server ----------------------------------

// A child of test_sup_os_fork_server_children: this program again, told so
// by FS_TEST_DIR, executed or forked by its fork server.  It marks itself
// ready (DIR/ready-PID), exits 7 on SIGUSR1 and otherwise waits.
static void
on_usr1(int sig)
{
    (void)sig;
    _exit(7);
}

static int
fs_child_main(const char *dir)
{
    char path[300];
    signal(SIGUSR1, on_usr1);
    snprintf(path, sizeof path, "%s/ready-%d", dir, (int)getpid());
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return 2;
    }
    fclose(f);
    for (;;) {
        pause();
    }
}

// parent_of returns pid's parent process, or -1 once it is gone.
static pid_t
parent_of(pid_t pid)
{
    char path[64], buf[512], *p;
    int ppid;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    p = fgets(buf, sizeof buf, f);
    fclose(f);
    return p != NULL && (p = strrchr(buf, ')')) != NULL &&
                   sscanf(p + 1, " %*c %d", &ppid) == 1
               ? (pid_t)ppid
               : -1;
}

// running tells whether process pid runs: it exists and is not a zombie
// (a forked child's end is reported before its server reaps it).
static bool
running(pid_t pid)
{
    char path[64], buf[512], *p;
    char state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    p = fgets(buf, sizeof buf, f);
    fclose(f);
    return p != NULL && (p = strrchr(buf, ')')) != NULL &&
           sscanf(p + 1, " %c", &state) == 1 && state != 'Z' &&
           state != 'X';
}

// fs_running waits until child id of sup runs a process other than not
// (0: any) that has marked itself ready, and returns its OS pid.
static pid_t
fs_running(ra_ctx_t *scope, ra_pid_t sup, const char *id, const char *dir,
           int64_t not)
{
    uint64_t deadline = ra_test_now_ms() + WAIT_MS;
    ra_child_info_t ci;
    char path[300];
    for (;;) {
        if (find_child(scope, sup, id, &ci) == 0 &&
            ci.state == RA_CHILD_RUNNING && ci.ospid > 0 && ci.ospid != not) {
            snprintf(path, sizeof path, "%s/ready-%lld", dir,
                     (long long)ci.ospid);
            if (access(path, F_OK) == 0) {
                return (pid_t)ci.ospid;
            }
        }
        ck_assert_msg(ra_test_now_ms() < deadline, "child %s not running",
                      id);
        ra_test_sleep_ms(2);
    }
}

// fs_event waits for the next event named what about child id, skipping
// the others (at most 64).
static ev_t
fs_event(ra_ctx_t *scope, const char *what, const char *id)
{
    ev_t ev;
    for (int i = 0; i < 64; i++) {
        RA_CK_OK(recv_event(scope, WAIT_MS, &ev));
        if (strcmp(ev.event, what) == 0 && strcmp(ev.id, id) == 0) {
            return ev;
        }
    }
    ck_abort_msg("no \"%s\" event of %s among the next 64", what, id);
    return ev;
}

// fs_env_t: what the fork server tests run: this program (argv) with our
// environment, FS_TEST_DIR and extra ("NAME=VALUE", or NULL).
typedef struct fs_env {
    scratch_t sc;
    char *exe;
    const char *argv[2];
    const char **envp;
    char mark[128];
} fs_env_t;

static void
fs_env_new(fs_env_t *fe, const char *extra)
{
    extern char **environ;
    size_t n = 0;

    scratch_new(&fe->sc);
    fe->exe = realpath("/proc/self/exe", NULL);
    ck_assert_ptr_nonnull(fe->exe);
    fe->argv[0] = fe->exe;
    fe->argv[1] = NULL;
    while (environ[n] != NULL) {
        n++;
    }
    fe->envp = calloc(n + 3, sizeof *fe->envp);
    ck_assert_ptr_nonnull(fe->envp);
    memcpy(fe->envp, environ, n * sizeof *fe->envp);
    snprintf(fe->mark, sizeof fe->mark, "FS_TEST_DIR=%s", fe->sc.dir);
    fe->envp[n] = fe->mark;
    fe->envp[n + 1] = extra;
}

static void
fs_env_free(fs_env_t *fe)
{
    char cmdline[400];
    snprintf(cmdline, sizeof cmdline, "rm -rf %s", fe->sc.dir);
    ck_assert_int_eq(system(cmdline), 0);
    free(fe->envp);
    free(fe->exe);
}

// fs_first_forked starts temporary children like *s (their ids try0,
// try1, ...) until one is forked by a fork server, stopping those that
// were executed, and returns the server's pid, with that child's pid in
// *child and its id in id (16 bytes).
static pid_t
fs_first_forked(ra_ctx_t *scope, ra_pid_t sup, ra_child_spec_t *s,
                const char *dir, pid_t *child, char *id)
{
    uint64_t deadline = ra_test_now_ms() + WAIT_MS;
    ra_pid_t nil;
    for (int i = 0;; i++) {
        snprintf(id, 16, "try%d", i);
        s->id = id;
        s->restart = RA_TEMPORARY;
        RA_CK_OK(ra_sup_start_child(scope, sup, s, NULL, &nil));
        pid_t p = fs_running(scope, sup, id, dir, 0);
        if (parent_of(p) != getpid()) {
            *child = p;
            return parent_of(p);
        }
        ck_assert_msg(ra_test_now_ms() < deadline, "no child was forked "
                      "by a fork server in %d ms", WAIT_MS);
        RA_CK_OK(ra_sup_terminate_child(scope, sup, id, RA_PID_NIL));
        ra_test_sleep_ms(20);
    }
}

// fs_test_t: a runtime, a scope that receives the supervisor's events,
// the program to run, and a supervisor started with child "first" of
// spec s (fork_server set).
typedef struct fs_test {
    ra_runtime_t *rt;
    ra_ctx_t *scope;
    fs_env_t fe;
    ra_child_spec_t s;
    ra_pid_t sup;
} fs_test_t;

// fs_begin sets t up (extra: as fs_env_new's), "first" with restart type
// first; false (after tearing down) where OS children are not supported.
static bool
fs_begin(fs_test_t *t, const char *extra, ra_restart_t first)
{
    t->rt = new_rt();
    t->scope = ra_test_new_scope(t->rt);
    if (os_unsupported(t->rt, t->scope)) {
        teardown(&t->rt, &t->scope, RA_PID_NIL);
        return false;
    }
    fs_env_new(&t->fe, extra);
    t->s = (ra_child_spec_t){.id = "first", .argv = t->fe.argv,
                             .envp = t->fe.envp, .restart = first,
                             .fork_server = true};
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    f.events = ra_self(t->scope);
    RA_CK_OK(ra_sup_start(t->rt, NULL, &f, &t->s, 1, &t->sup));
    return true;
}

static void
fs_end(fs_test_t *t)
{
    fs_env_free(&t->fe);
    teardown(&t->rt, &t->scope, RA_PID_NIL);
}

START_TEST(test_sup_os_fork_server_children)
{
    fs_test_t t;
    ra_pid_t nil;
    ev_t ev;

    // The first child starts the server and is executed meanwhile.
    if (!fs_begin(&t, NULL, RA_PERMANENT)) {
        return;
    }
    ra_ctx_t *scope = t.scope;
    ra_pid_t sup = t.sup;
    ra_child_spec_t s = t.s;
    scratch_t sc = t.fe.sc;
    const char *exe = t.fe.exe;
    pid_t first = fs_running(scope, sup, "first", sc.dir, 0);
    ck_assert_int_eq(parent_of(first), getpid());
    // Once the server has greeted, children are forked by it: one of this
    // program's processes, ours, and the parent of every later child.
    pid_t b = -1;
    char bid[16] = "";
    pid_t server = fs_first_forked(scope, sup, &s, sc.dir, &b, bid);
    ck_assert_int_eq(parent_of(server), getpid());
    char sexe[300], me[300];
    snprintf(sexe, sizeof sexe, "/proc/%d/exe", (int)server);
    ssize_t k = readlink(sexe, me, sizeof me - 1);
    ck_assert_int_gt(k, 0);
    me[k] = '\0';
    ck_assert_str_eq(me, exe);
    // A second child shares the server.
    s.id = "c";
    s.restart = RA_PERMANENT;
    RA_CK_OK(ra_sup_start_child(scope, sup, &s, NULL, &nil));
    pid_t c = fs_running(scope, sup, "c", sc.dir, 0);
    ck_assert_int_eq(parent_of(c), server);
    // Exits reach the supervisor through the server, as they happened: an
    // exit status ...
    ck_assert_int_eq(kill(c, SIGUSR1), 0);
    ev = fs_event(scope, "exited", "c");
    ck_assert_int_eq(ev.ospid, c);
    RA_CK_REASON_EQ(ev.reason, RA_OS_EXIT(7));
    c = fs_running(scope, sup, "c", sc.dir, c);
    ck_assert_int_eq(parent_of(c), server);
    // ... and a signal.
    ck_assert_int_eq(kill(c, SIGKILL), 0);
    ev = fs_event(scope, "exited", "c");
    RA_CK_REASON_EQ(ev.reason, RA_OS_SIGNAL(SIGKILL));
    c = fs_running(scope, sup, "c", sc.dir, c);
    // Stopping one waits for the server's report of its end.
    RA_CK_OK(ra_sup_terminate_child(scope, sup, bid, RA_PID_NIL));
    ck_assert(!running(b));
    // The server killed: its children die with it and are restarted.
    ck_assert_int_eq(kill(server, SIGKILL), 0);
    ev = fs_event(scope, "exited", "c");
    ck_assert_int_eq(ev.ospid, c);
    RA_CK_REASON_EQ(ev.reason, RA_OS_SIGNAL(SIGKILL));
    pid_t c2 = fs_running(scope, sup, "c", sc.dir, c);
    ck_assert_int_ne(parent_of(c2), server);
    RA_CK_WAIT(!running(c), WAIT_MS); // it died with its server
    ck_assert(running(first)); // the executed one lives on
    RA_CK_OK(ra_sup_stop(scope, sup));
    ck_assert(!running(first));
    ck_assert(!running(c2));
    fs_end(&t);
}
END_TEST

// A fork server that stops answering (here: stopped with SIGSTOP) is
// given up after 2 s: the child asked of it is executed instead, the
// server is killed, its children die with it and are restarted, and a new
// server forks the children after that.
START_TEST(test_sup_os_fork_server_hung)
{
    fs_test_t t;
    ra_pid_t nil;

    if (!fs_begin(&t, NULL, RA_PERMANENT)) {
        return;
    }
    ra_ctx_t *scope = t.scope;
    ra_pid_t sup = t.sup;
    ra_child_spec_t s = t.s;
    const char *dir = t.fe.sc.dir;
    (void)fs_running(scope, sup, "first", dir, 0);
    pid_t b;
    char bid[16];
    pid_t server = fs_first_forked(scope, sup, &s, dir, &b, bid);
    ck_assert_int_eq(kill(server, SIGSTOP), 0);
    s.id = "late";
    s.restart = RA_PERMANENT;
    uint64_t t0 = ra_test_now_ms();
    RA_CK_OK(ra_sup_start_child(scope, sup, &s, NULL, &nil));
    uint64_t took = ra_test_now_ms() - t0;
    pid_t late = fs_running(scope, sup, "late", dir, 0);
    ck_assert_int_eq(parent_of(late), getpid()); // executed
    ck_assert_msg(took >= 1900 && took < 10000, "starting a child with a "
                  "hung fork server took %llu ms", (unsigned long long)took);
    // The hung server is killed, and its child with it.
    RA_CK_WAIT(!running(server), WAIT_MS);
    RA_CK_WAIT(!running(b), WAIT_MS);
    // A new server forks the children from then on.
    pid_t c = -1;
    char cid[16];
    pid_t again = fs_first_forked(scope, sup, &s, dir, &c, cid);
    ck_assert_int_ne(again, server);
    ck_assert_int_eq(parent_of(again), getpid());
    ck_assert(running(late));
    RA_CK_OK(ra_sup_stop(scope, sup));
    ck_assert(!running(late));
    ck_assert(!running(c));
    fs_end(&t);
}
END_TEST

// A fork server with no children exits after RAYO_FORK_SERVER_IDLE_MS
// (300 here) without a request, and the next child starts a new one.
START_TEST(test_sup_os_fork_server_idle_exit)
{
    fs_test_t t;

    if (!fs_begin(&t, "RAYO_FORK_SERVER_IDLE_MS=300", RA_TEMPORARY)) {
        return;
    }
    const char *dir = t.fe.sc.dir;
    pid_t first = fs_running(t.scope, t.sup, "first", dir, 0);
    pid_t b;
    char bid[16];
    pid_t server = fs_first_forked(t.scope, t.sup, &t.s, dir, &b, bid);
    // While it has a child, it stays.
    ra_test_sleep_ms(600);
    ck_assert(running(server));
    RA_CK_OK(ra_sup_terminate_child(t.scope, t.sup, bid, RA_PID_NIL));
    uint64_t t0 = ra_test_now_ms();
    RA_CK_WAIT(!running(server), WAIT_MS);
    uint64_t took = ra_test_now_ms() - t0;
    ck_assert_msg(took >= 250, "the server went %llu ms after its last "
                  "child", (unsigned long long)took);
    pid_t c;
    char cid[16];
    pid_t again = fs_first_forked(t.scope, t.sup, &t.s, dir, &c, cid);
    ck_assert_int_ne(again, server);
    ck_assert(running(first));
    RA_CK_OK(ra_sup_stop(t.scope, t.sup));
    ck_assert(!running(c));
    fs_end(&t);
}
END_TEST

START_TEST(test_sup_os_fork_server_idle_bad)
{
    // A time the server cannot take is reported when the server starts,
    // and the server keeps the default (a minute), not some other time.
    fs_test_t t;

    static ra_test_log_t idle_log;
    ra_test_log_start(&idle_log, RA_LOG_WARNING, "supervisor",
                      "RAYO_FORK_SERVER_IDLE_MS");
    if (!fs_begin(&t, "RAYO_FORK_SERVER_IDLE_MS=300ms", RA_TEMPORARY)) {
        ra_test_log_stop();
        return;
    }
    const char *dir = t.fe.sc.dir;
    (void)fs_running(t.scope, t.sup, "first", dir, 0);
    pid_t b;
    char bid[16];
    pid_t server = fs_first_forked(t.scope, t.sup, &t.s, dir, &b, bid);
    char text[sizeof idle_log.last];
    int n = ra_test_log_caught(&idle_log, text, sizeof text);
    ck_assert_msg(n == 1, "%d warnings about the idle time", n);
    ck_assert_msg(strstr(text, "RAYO_FORK_SERVER_IDLE_MS=300ms is not a "
                         "whole number of ms from 1 to 3600000") != NULL &&
                  strstr(text, "60000 ms after its last child") != NULL,
                  "warning: %s", text);
    RA_CK_OK(ra_sup_terminate_child(t.scope, t.sup, bid, RA_PID_NIL));
    ra_test_sleep_ms(1500);
    ck_assert_msg(running(server), "the server went within 1.5 s of its "
                  "last child");
    RA_CK_OK(ra_sup_stop(t.scope, t.sup));
    ra_test_log_stop();
    fs_end(&t);
}
END_TEST

START_TEST(test_sup_os_fork_server_refuses_threads)
{
    // A program with other threads when it reaches ra_fork_server_main
    // must not fork (the child would inherit locks those threads hold):
    // its server refuses, and every child is executed instead.
    fs_test_t t;
    ra_pid_t nil;

    if (!fs_begin(&t, "FS_TEST_THREADED=1", RA_TEMPORARY)) {
        return;
    }
    ra_ctx_t *scope = t.scope;
    ra_pid_t sup = t.sup;
    ra_child_spec_t s = t.s;
    scratch_t sc = t.fe.sc;
    ck_assert_int_eq(parent_of(fs_running(scope, sup, "first", sc.dir, 0)),
                     getpid());
    // A second apart, well past a server's greeting: none is forked.
    for (int i = 0; i < 10; i++) {
        char id[16];
        snprintf(id, sizeof id, "later%d", i);
        s.id = id;
        ra_test_sleep_ms(100);
        RA_CK_OK(ra_sup_start_child(scope, sup, &s, NULL, &nil));
        pid_t p = fs_running(scope, sup, id, sc.dir, 0);
        ck_assert_msg(parent_of(p) == getpid(), "child %s was forked by %d "
                      "from a program with threads", id, (int)parent_of(p));
    }
    RA_CK_OK(ra_sup_stop(scope, sup));
    fs_end(&t);
}
END_TEST

START_TEST(test_sup_os_crash_restarts_with_new_ospid)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    const char *argv[4];
    scratch_t sc;
    ra_child_spec_t s;
    ra_child_info_t ci;
    ra_pid_t sup;
    int64_t ospid0 = 0;
    uint64_t deadline;
    ev_t ev;

    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    scratch_new(&sc);
    // The first run exits 3; the restarted one finds the marker and waits.
    snprintf(sc.script, sizeof sc.script,
             "if [ -e %s ]; then exec sleep 30; fi; : > %s; exit 3",
             scratch_file(&sc, "crashed"), sc.path);
    s = os_spec("os", argv, sc.script, RA_PERMANENT);
    f.events = ra_self(scope);
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    ev = expect_event(scope, "started", "os");
    ospid0 = ev.ospid;
    ck_assert_int_gt(ospid0, 0);
    ev = expect_event(scope, "exited", "os");
    ck_assert_int_eq(ev.ospid, ospid0);
    RA_CK_REASON_EQ(ev.reason, RA_OS_EXIT(3));
    expect_event(scope, "restarted", "os");
    deadline = ra_test_now_ms() + WAIT_MS;
    while (!(find_child(scope, sup, "os", &ci) == 0 &&
             ci.state == RA_CHILD_RUNNING && ci.ospid > 0 &&
             ci.ospid != ospid0) &&
           ra_test_now_ms() < deadline) {
        ra_test_sleep_ms(1);
    }
    ck_assert_int_eq(ci.state, RA_CHILD_RUNNING);
    ck_assert_int_gt(ci.ospid, 0);
    ck_assert_int_ne(ci.ospid, ospid0);
    ck_assert(ci.os_process);
    ck_assert(ra_pid_is_nil(ci.pid));
    ck_assert_int_eq(kill((pid_t)ci.ospid, 0), 0);
    RA_CK_OK(ra_sup_stop(scope, sup));
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    scratch_destroy(&sc);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

START_TEST(test_sup_os_transient_clean_exit_not_restarted)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    const char *argv[4];
    ra_child_spec_t s = os_spec("os", argv, "exit 0", RA_TRANSIENT);
    ra_child_info_t ci;
    ra_child_counts_t k;
    ra_pid_t sup;
    ev_t ev;

    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    f.events = ra_self(scope);
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    ev = expect_event(scope, "exited", "os");
    RA_CK_REASON_EQ(ev.reason, RA_NORMAL);
    wait_state(scope, sup, "os", RA_CHILD_STOPPED);
    ra_test_sleep_ms(QUIET_MS);
    RA_CK_OK(find_child(scope, sup, "os", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    ck_assert_int_eq(ci.ospid, 0);
    RA_CK_OK(ra_sup_count_children(scope, sup, &k));
    ck_assert_uint_eq(k.active, 0);
    RA_CK_ERR(ra_receive(scope, 0, &(ra_msg_t *){NULL}), RA_ETIMEOUT);
    teardown(&rt, &scope, sup);
}
END_TEST

// start_deaf starts a supervisor with one OS child "os" that ignores
// SIGTERM, its shutdown shutdown_ms, and returns once the child's trap is
// set.  sc holds the child's marker file; argv must outlive the child.
static ra_pid_t
start_deaf(ra_runtime_t *rt, scratch_t *sc, const char *argv[4],
           int64_t shutdown_ms)
{
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s;
    ra_pid_t sup;

    scratch_new(sc);
    snprintf(sc->script, sizeof sc->script,
             "trap \"\" TERM; : > %s; while :; do sleep 0.1; done",
             scratch_file(sc, "ready"));
    s = os_spec("os", argv, sc->script, RA_PERMANENT);
    s.shutdown_ms = shutdown_ms;
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &s, 1, &sup));
    RA_CK_WAIT(access(sc->path, F_OK) == 0, WAIT_MS); // the trap is set
    return sup;
}

START_TEST(test_sup_os_ignoring_sigterm_killed_at_timeout)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    const char *argv[4];
    scratch_t sc;
    ra_child_info_t ci;
    ra_pid_t sup;
    uint64_t t0, took;
    int64_t ospid;

    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    sup = start_deaf(rt, &sc, argv, 300);
    RA_CK_OK(find_child(scope, sup, "os", &ci));
    ospid = ci.ospid;
    ck_assert_int_gt(ospid, 0);
    t0 = ra_test_now_ms();
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "os", RA_PID_NIL));
    took = ra_test_now_ms() - t0;
    ck_assert_msg(took >= 290 && took < 1000,
                  "terminate_child took %" PRIu64 " ms, expected ~300", took);
    ck_assert_int_eq(kill((pid_t)ospid, 0), -1); // gone and reaped
    RA_CK_OK(find_child(scope, sup, "os", &ci));
    ck_assert_int_eq(ci.state, RA_CHILD_STOPPED);
    ck_assert_int_eq(ci.ospid, 0);
    scratch_destroy(&sc);
    teardown(&rt, &scope, sup);
}
END_TEST

typedef struct stopper {
    ra_runtime_t *rt;
    ra_pid_t sup;
    atomic_int rc;
} stopper_t;

// stopper_main terminates child "os" of st->sup from a scope of its own.
static void *
stopper_main(void *arg)
{
    stopper_t *st = arg;
    ra_ctx_t *scope = NULL;
    int rc = ra_scope_new(st->rt, &scope);

    if (rc == 0) {
        rc = ra_sup_terminate_child(scope, st->sup, "os", RA_PID_NIL);
        ra_scope_destroy(&scope);
    }
    atomic_store(&st->rc, rc);
    return NULL;
}

// One scheduler thread.  While a supervisor waits out an OS child's
// shutdown (it ignores SIGTERM: 1.5 s, then SIGKILL), the thread's other
// actors run on a spare thread: another supervisor answers at once
// instead of after the stop.
START_TEST(test_sup_os_stop_does_not_hold_up_other_actors)
{
    ra_runtime_opts_t opts = {.threads = 1};
    ra_runtime_t *rt = NULL;
    ra_ctx_t *scope;
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    const char *argv[4];
    scratch_t sc;
    ra_child_counts_t k;
    ra_pid_t sup, other;
    stopper_t st;
    pthread_t th;
    uint64_t t0, took;

    rec_reset();
    RA_CK_OK(ra_runtime_new(&rt, &opts));
    scope = ra_test_new_scope(rt);
    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    sup = start_deaf(rt, &sc, argv, 1500);
    RA_CK_OK(ra_sup_start(rt, NULL, &f, NULL, 0, &other));
    st.rt = rt;
    st.sup = sup;
    atomic_store(&st.rc, 1);
    ck_assert_int_eq(pthread_create(&th, NULL, stopper_main, &st), 0);
    ra_test_sleep_ms(200); // the stop is under way
    t0 = ra_test_now_ms();
    RA_CK_OK(ra_sup_count_children(scope, other, &k));
    took = ra_test_now_ms() - t0;
    ck_assert_msg(took < 700, "the other supervisor answered after %" PRIu64
                  " ms", took);
    ck_assert_uint_eq(k.specs, 0);
    pthread_join(th, NULL);
    RA_CK_OK(atomic_load(&st.rc));
    RA_CK_OK(ra_sup_stop(scope, other));
    scratch_destroy(&sc);
    teardown(&rt, &scope, sup);
}
END_TEST

START_TEST(test_sup_os_missing_executable_fails_start)
{
    static const char *const argv[] = {"/nonexistent/rayo-no-such-program",
                                       NULL};
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[2] = {spec("a", &W_A, RA_PERMANENT), {0}};
    ra_pid_t sup;

    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    s[1].id = "os";
    s[1].argv = argv;
    RA_CK_ERR(ra_sup_start(rt, NULL, &f, s, 2, &sup), -ENOENT);
    ck_assert_int_eq(atomic_load(&rec.terms['a']), 1);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// count_fds returns the number of open descriptors of this process.
static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

// run_os_sup starts a supervisor of n OS children running script and
// stops it.
static void
run_os_sup(ra_runtime_t *rt, ra_ctx_t *scope, size_t n, const char *script)
{
    static const char *ids[] = {"o1", "o2", "o3", "o4"};
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    const char *argv[4][4];
    ra_child_spec_t s[4];
    ra_child_counts_t k;
    ra_pid_t sup;

    for (size_t i = 0; i < n; i++) {
        s[i] = os_spec(ids[i], argv[i], script, RA_PERMANENT);
        s[i].shutdown_ms = 1000;
    }
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, n, &sup));
    RA_CK_OK(ra_sup_count_children(scope, sup, &k));
    ck_assert_uint_eq(k.active, n);
    RA_CK_OK(ra_sup_stop(scope, sup));
    ck_assert(!ra_is_alive(rt, sup));
}

START_TEST(test_sup_os_stop_leaves_no_zombie_or_fd)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    int fds0, fds1;

    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    // The first OS child starts the process-wide watcher, whose
    // descriptors stay; count after that.
    run_os_sup(rt, scope, 1, "exec sleep 30");
    fds0 = count_fds();
    run_os_sup(rt, scope, 4, "exec sleep 30");
    run_os_sup(rt, scope, 2,
               "trap 'exit 0' TERM; while :; do sleep 0.05; done");
    fds1 = count_fds();
    ck_assert_int_eq(fds1, fds0);
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// An OS child that ends while the supervisor is busy stopping its siblings
// for a one_for_all restart is stopped (already gone) and started again
// with the others; the end of the old process, reported afterwards, must
// not count as an end of the new one.  Children: os (ends 200 ms after its
// first start), x (crashed at once) and s (ignores shutdown for 1000 ms,
// which keeps the supervisor busy while os ends).
START_TEST(test_sup_os_stale_exit_after_restart_ignored)
{
    static const wcfg_t ws = {'s', W_TRAP_IGNORE, 0, 0};
    static const wcfg_t wx = {'x', W_PLAIN, 0, 0};
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ALL);
    const char *argv[4];
    scratch_t sc;
    ra_child_spec_t s[3];
    ra_child_info_t ci;
    ra_pid_t sup;
    int64_t started[8];
    int nstarted = 0, survivors = 0;
    ev_t ev;

    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    scratch_new(&sc);
    snprintf(sc.script, sizeof sc.script,
             "if [ -e %s ]; then exec sleep 30; fi; : > %s; sleep 0.2; "
             "exit 3",
             scratch_file(&sc, "crashed"), sc.path);
    s[0] = os_spec("os", argv, sc.script, RA_PERMANENT);
    s[1] = spec("x", &wx, RA_PERMANENT);
    s[2] = spec("s", &ws, RA_PERMANENT);
    s[2].shutdown_ms = 1000;
    f.events = ra_self(scope);
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 3, &sup));
    cmd(scope, pid_of(scope, sup, "x"), T_FAIL, RA_EINVAL);
    RA_CK_WAIT(atomic_load(&rec.inits['s']) >= 2, WAIT_MS);
    ra_test_sleep_ms(500); // time for a wrong second restart to happen
    RA_CK_OK(find_child(scope, sup, "os", &ci));
    RA_CK_OK(ra_sup_stop(scope, sup));
    while (recv_event(scope, 0, &ev) == 0) {
        if (strcmp(ev.event, "started") == 0 && strcmp(ev.id, "os") == 0 &&
            nstarted < 8) {
            started[nstarted++] = ev.ospid;
        }
    }
    // Clean up before asserting: kill what the supervisor left running.
    for (int i = 0; i < nstarted; i++) {
        if (kill((pid_t)started[i], 0) == 0) {
            survivors++;
            kill((pid_t)started[i], SIGKILL);
        }
    }
    scratch_destroy(&sc);
    ck_assert_msg(survivors == 0, "%d of the %d OS processes started for "
                  "os outlived ra_sup_stop", survivors, nstarted);
    ck_assert_msg(nstarted == 2, "os was started %d times, expected 2 "
                  "(first run, then once by x's one_for_all restart)",
                  nstarted);
    ck_assert_int_eq(ci.ospid, started[1]);
    ck_assert_int_eq(atomic_load(&rec.inits['x']), 2);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// A supervisor killed outright takes its children with it: actors through
// their links, OS processes by its terminate.
START_TEST(test_sup_killed_supervisor_takes_children)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    const char *argv[4];
    ra_child_spec_t s[2] = {spec("a", &W_A, RA_PERMANENT),
                            os_spec("os", argv, "exec sleep 30",
                                    RA_PERMANENT)};
    ra_child_info_t ci;
    ra_pid_t sup, a0;
    uint64_t mref = 0;

    if (os_unsupported(rt, scope)) {
        teardown(&rt, &scope, RA_PID_NIL);
        return;
    }
    RA_CK_OK(ra_sup_start(rt, NULL, &f, s, 2, &sup));
    a0 = pid_of(scope, sup, "a");
    RA_CK_OK(find_child(scope, sup, "os", &ci));
    ck_assert_int_gt(ci.ospid, 0);
    RA_CK_OK(ra_monitor(scope, sup, &mref));
    RA_CK_OK(ra_exit_pid(scope, sup, RA_KILL));
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_KILLED);
    RA_CK_WAIT(!ra_is_alive(rt, a0), WAIT_MS);
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_KILLED);
    RA_CK_WAIT(kill((pid_t)ci.ospid, 0) == -1, WAIT_MS);
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// ---- parent ----------------------------------------------------------------

// A supervisor linked to its parent stops its children and ends with the
// parent's reason when the parent ends.
START_TEST(test_sup_parent_exit_stops_supervisor)
{
    ra_runtime_t *rt = new_rt();
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_ctx_t *parent = ra_test_new_scope(rt);
    ra_pid_t p[3], sup;
    ra_sup_flags_t f = flags_of(RA_ONE_FOR_ONE);
    ra_child_spec_t s[3] = {spec("a", &W_A, RA_PERMANENT),
                            spec("b", &W_B, RA_PERMANENT),
                            spec("c", &W_C, RA_PERMANENT)};
    uint64_t mref = 0;
    char buf[LOG_CAP + 1];

    RA_CK_OK(ra_sup_start(rt, parent, &f, s, 3, &sup));
    p[0] = pid_of(scope, sup, "a");
    p[2] = pid_of(scope, sup, "c");
    RA_CK_OK(ra_monitor(scope, sup, &mref));
    ra_scope_destroy(&parent);
    RA_CK_REASON_EQ(wait_down(scope, mref, WAIT_MS), RA_NORMAL);
    ck_assert_str_eq(STOP_LOG(buf), "cba");
    RA_CK_REASON_EQ(atomic_load(&rec.reason['a']), RA_SHUTDOWN);
    ck_assert(!ra_is_alive(rt, p[0]));
    ck_assert(!ra_is_alive(rt, p[2]));
    teardown(&rt, &scope, RA_PID_NIL);
}
END_TEST

// ---- the suite -------------------------------------------------------------

// ra_sup_validate names the field, as OTP's errors do.
START_TEST(test_sup_validate_names_the_field)
{
    static const ra_behaviour_t b = {"b", NULL, NULL, NULL};
    ra_sup_flags_t f = {0};
    const char *why = NULL;
    ra_child_spec_t ok = {.id = "a", .start = NULL, .beh = NULL};
    ra_child_spec_t two[2];
    const char *argv[] = {"/bin/true", NULL};

    ok.argv = argv;
    RA_CK_OK(ra_sup_validate(&f, &ok, 1, &why));
    ck_assert_ptr_null(why);

    ra_child_spec_t bad = ok;
    bad.restart = (ra_restart_t)7;
    RA_CK_ERR(ra_sup_validate(&f, &bad, 1, &why), RA_EBADSPEC);
    ck_assert_str_eq(why, "invalid restart type");
    bad = ok;
    bad.shutdown_ms = -5;
    RA_CK_ERR(ra_sup_validate(&f, &bad, 1, &why), RA_EBADSPEC);
    ck_assert_str_eq(why, "negative shutdown");
    bad = ok;
    bad.significant = true;
    RA_CK_ERR(ra_sup_validate(&f, &bad, 1, &why), RA_EBADSPEC);
    ck_assert_str_eq(why, "significant with permanent");
    bad = ok;
    bad.beh = &b; // a second way to start it, and no handle
    RA_CK_ERR(ra_sup_validate(&f, &bad, 1, &why), RA_EBADSPEC);
    ck_assert_str_eq(why, "exactly one of beh, start and argv must be set");
    two[0] = ok;
    two[1] = ok;
    RA_CK_ERR(ra_sup_validate(&f, two, 2, &why), RA_EBADSPEC);
    ck_assert_str_eq(why, "duplicate id");
    f.strategy = RA_SIMPLE_ONE_FOR_ONE;
    RA_CK_ERR(ra_sup_validate(&f, two, 2, &why), RA_EBADSPEC);
    ck_assert_str_eq(why, "simple_one_for_one needs exactly one child spec");
    f.strategy = (ra_strategy_t)9;
    RA_CK_ERR(ra_sup_validate(&f, &ok, 1, &why), RA_EBADSPEC);
    ck_assert_str_eq(why, "invalid strategy");
}
END_TEST

static int
plain_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return 0;
}

static const ra_behaviour_t plain = {"plain", NULL, plain_handle, NULL};

// The runtime's root supervisor exists once, takes children, and goes
// with the runtime.
START_TEST(test_sup_root_is_one_per_runtime)
{
    ra_runtime_t *rt = NULL;
    ra_ctx_t *scope = NULL;
    ra_pid_t root, again, kid;
    ra_child_spec_t spec = {.id = "system_actor", .beh = &plain};
    ra_child_counts_t k;

    RA_CK_OK(ra_runtime_new(&rt, NULL));
    RA_CK_OK(ra_scope_new(rt, &scope));
    RA_CK_OK(ra_sup_root(rt, &root));
    RA_CK_OK(ra_sup_root(rt, &again));
    RA_CK_PID_EQ(again, root);
    ck_assert(ra_is_alive(rt, root));
    RA_CK_OK(ra_sup_start_child(scope, root, &spec, NULL, &kid));
    ck_assert(ra_is_alive(rt, kid));
    RA_CK_OK(ra_sup_count_children(scope, root, &k));
    ck_assert_uint_eq(k.active, 1);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt); // stops the root and its child
    ck_assert_ptr_null(rt);
}
END_TEST

static Suite *
supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc;

    tc = tcase_create("spec");
    tcase_add_test(tc, test_sup_validate_names_the_field);
    tcase_add_test(tc, test_sup_spec_invalid_restart_type_rejected);
    tcase_add_test(tc, test_sup_spec_negative_shutdown_rejected);
    tcase_add_test(tc, test_sup_spec_duplicate_id_rejected);
    tcase_add_test(tc, test_sup_spec_simple_one_for_one_zero_specs_rejected);
    tcase_add_test(tc, test_sup_spec_simple_one_for_one_two_specs_rejected);
    tcase_add_test(tc, test_sup_spec_significant_permanent_rejected);
    tcase_add_test(tc, test_sup_spec_no_start_method_rejected);
    tcase_add_test(tc, test_sup_spec_two_start_methods_rejected);
    tcase_add_test(tc, test_sup_spec_start_child_bad_spec_rejected);
    tcase_add_test(tc, test_sup_flags_zeroed_are_valid_defaults);
    tcase_add_test(tc, test_sup_flags_huge_intensity_accepted);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("start");
    tcase_add_test(tc, test_sup_start_children_in_spec_order);
    tcase_add_test(tc, test_sup_start_returns_after_all_started);
    tcase_add_test(tc, test_sup_start_failure_terminates_started_no_parent);
    tcase_add_test(tc, test_sup_start_failure_terminates_started_with_parent);
    tcase_add_test(tc, test_sup_start_failure_of_start_fn_returns_its_error);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("restart");
    tcase_add_loop_test(tc, test_sup_restart_permanent_always, 0, BY_N);
    tcase_add_loop_test(tc, test_sup_restart_transient_only_abnormal, 0,
                        BY_N);
    tcase_add_loop_test(tc, test_sup_restart_temporary_never_and_spec_dropped,
                        0, BY_N);
    tcase_add_test(tc, test_sup_restart_via_start_fn);
    tcase_add_test(tc, test_sup_restart_in_reserved_slot_keeps_pid);
    tcase_add_test(tc, test_sup_reserved_slot_restarts_under_sends);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("strategy");
    tcase_add_test(tc, test_sup_one_for_one_restarts_only_crashed);
    tcase_add_test(tc, test_sup_one_for_all_restarts_in_order);
    tcase_add_test(tc, test_sup_rest_for_one_restarts_later_ones);
    tcase_add_test(tc, test_sup_one_for_all_temporary_bystander_dropped);
    tcase_add_test(tc, test_sup_rest_for_one_temporary_bystander_dropped);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("intensity");
    tcase_add_test(tc, test_sup_intensity_third_crash_gives_up);
    tcase_add_test(tc, test_sup_intensity_window_slides);
    tcase_add_test(tc, test_sup_escalation_three_levels);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("failed_restart");
    tcase_add_test(tc, test_sup_failed_restart_retried_until_it_starts);
    tcase_add_test(tc, test_sup_failed_restart_reported_restarting);
    tcase_add_test(tc, test_sup_failed_restart_terminate_child_stops_retries);
    tcase_add_test(tc, test_sup_failed_restart_stop_does_not_hang);
    tcase_add_test(tc, test_sup_failed_restart_always_failing_gives_up);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_add_test(tc, test_sup_shutdown_timeout_kills_ignoring_child);
    tcase_add_test(tc, test_sup_shutdown_timeout_child_that_obeys_ends_at_once);
    tcase_add_test(tc, test_sup_shutdown_trapping_child_exits_in_time);
    tcase_add_test(tc, test_sup_shutdown_brutal_kill_is_immediate);
    tcase_add_test(tc, test_sup_shutdown_stop_in_reverse_order);
    tcase_add_test(tc, test_sup_shutdown_simple_one_for_one_in_parallel);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("admin");
    tcase_add_test(tc, test_sup_admin_start_child);
    tcase_add_test(tc, test_sup_admin_terminate_child_idempotent);
    tcase_add_test(tc, test_sup_admin_restart_child);
    tcase_add_test(tc, test_sup_admin_delete_child);
    tcase_add_test(tc, test_sup_admin_which_children);
    tcase_add_test(tc, test_sup_admin_count_children);
    tcase_add_test(tc, test_sup_admin_get_childspec);
    tcase_add_test(tc, test_sup_admin_ignore_keeps_spec);
    tcase_add_test(tc, test_sup_admin_simple_one_for_one_dynamic);
    tcase_add_test(tc, test_sup_admin_count_many_dynamic_children);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("auto_shutdown");
    tcase_add_test(tc, test_sup_auto_any_significant_stops_supervisor);
    tcase_add_test(tc, test_sup_auto_any_significant_crash_restarts);
    tcase_add_test(tc, test_sup_auto_all_significant_waits_for_last);
    tcase_add_test(tc, test_sup_auto_never_keeps_running);
    tcase_add_test(tc, test_sup_auto_terminate_child_does_not_trigger);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("events");
    tcase_add_test(tc, test_sup_events_crash_and_restart);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("backoff");
    tcase_add_test(tc, test_sup_backoff_delays_restart);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("os_process");
    tcase_add_test(tc, test_sup_os_crash_restarts_with_new_ospid);
    tcase_add_test(tc, test_sup_os_transient_clean_exit_not_restarted);
    tcase_add_test(tc, test_sup_os_ignoring_sigterm_killed_at_timeout);
    tcase_add_test(tc, test_sup_os_stop_does_not_hold_up_other_actors);
    tcase_add_test(tc, test_sup_os_missing_executable_fails_start);
    tcase_add_test(tc, test_sup_os_stop_leaves_no_zombie_or_fd);
    tcase_add_test(tc, test_sup_os_stale_exit_after_restart_ignored);
    tcase_add_test(tc, test_sup_killed_supervisor_takes_children);
    tcase_add_test(tc, test_sup_os_fork_server_children);
    tcase_add_test(tc, test_sup_os_fork_server_refuses_threads);
    tcase_add_test(tc, test_sup_os_fork_server_hung);
    tcase_add_test(tc, test_sup_os_fork_server_idle_exit);
    tcase_add_test(tc, test_sup_os_fork_server_idle_bad);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("parent");
    tcase_add_test(tc, test_sup_parent_exit_stops_supervisor);
    tcase_add_test(tc, test_sup_root_is_one_per_runtime);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

static void *
idle_thread(void *arg)
{
    (void)arg;
    for (;;) {
        pause();
    }
    return NULL;
}

int
main(void)
{
    // test_sup_os_fork_server_refuses_threads: a program that has started
    // a thread by the time it reaches ra_fork_server_main.
    if (getenv("FS_TEST_THREADED") != NULL) {
        pthread_t th;
        if (pthread_create(&th, NULL, idle_thread, NULL) != 0) {
            return 2;
        }
        pthread_detach(th);
    }
    // The children of test_sup_os_fork_server_children, forked by their
    // fork server (this program too) or executed.
    const char *dir = getenv("FS_TEST_DIR");
    if (ra_fork_server_main() == 1 || dir != NULL) {
        return fs_child_main(dir);
    }
    return ra_test_run(supervisor_suite());
}

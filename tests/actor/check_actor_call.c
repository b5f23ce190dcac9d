// check_actor_call.c - tests of timers, calls, bounded actor mailboxes,
// broadcast, runtime shutdown and scopes.
//
// One Suite, "actor_call", with one TCase per behaviour group.  Only the
// public header is used.  The test thread is an actor through a scope;
// callbacks only record what they saw (atomics, or state the test reads
// after a synchronising wait) and every assertion runs on the test thread.
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "rayo.h"
#include "testutil.h"

// Message tags used by the behaviours below.
enum {
    TAG_PING = 1,     // plain message
    TAG_REPLY = 2,    // a reply made by echo
    TAG_GO = 3,       // start the work of a caller actor
    TAG_RESULT = 4,   // a caller actor's report
    TAG_DIE_EXIT = 5, // the callee calls ra_exit instead of replying
    TAG_DIE_ERR = 6,  // the callee returns an error instead of replying
    TAG_SLOW = 7,     // the callee replies 300 ms later from a timer
    TAG_LATE = 8,     // the timer message that triggers the late reply
    TAG_BLOCK = 9,    // a blocker actor waits in its handler
    TAG_STOP = 10,    // the actor ends with RA_NORMAL
    TAG_TWICE = 11,   // the callee replies twice
    TAG_THREAD = 12,  // the callee replies from another pthread
    TAG_TIMER = 13    // a timer message
};

#define RT_TIMEOUT_MS 3000 // how long a test waits for what must happen
#define SLOW_REPLY_MS 300  // how late the slow callee replies

// new_u32 returns a bytes message with tag holding the 4 bytes of v.
static ra_msg_t *
new_u32(int32_t tag, uint32_t v)
{
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_msg_new_bytes(&msg, tag, &v, sizeof v));
    return msg;
}

// new_str_tagged returns a bytes message with tag holding the bytes of s.
static ra_msg_t *
new_str_tagged(int32_t tag, const char *s)
{
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_msg_new_bytes(&msg, tag, s, strlen(s)));
    return msg;
}

// msg_u32 returns the first 4 payload bytes of msg, or UINT32_MAX if it is
// shorter.  Callable from callbacks (it asserts nothing).
static uint32_t
msg_u32(const ra_msg_t *msg)
{
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    uint32_t v = UINT32_MAX;

    if (data != NULL && len >= sizeof v) {
        memcpy(&v, data, sizeof v);
    }
    return v;
}

// new_rt starts a runtime with the given number of scheduler threads.
static ra_runtime_t *
new_rt(unsigned threads)
{
    ra_runtime_opts_t opts = {.threads = threads};
    ra_runtime_t *rt = NULL;

    RA_CK_OK(ra_runtime_new(&rt, &opts));
    ck_assert_ptr_nonnull(rt);
    return rt;
}

// spawn_ok spawns b with arg and no options and returns its pid.
static ra_pid_t
spawn_ok(ra_runtime_t *rt, const ra_behaviour_t *b, void *arg)
{
    ra_pid_t pid = RA_PID_NIL;

    RA_CK_OK(ra_spawn(rt, b, arg, NULL, &pid));
    ck_assert(!ra_pid_is_nil(pid));
    return pid;
}

// kill_and_wait ends pid with RA_KILL and waits until it is gone.
static void
kill_and_wait(ra_runtime_t *rt, ra_pid_t pid)
{
    RA_CK_OK(ra_runtime_exit(rt, pid, RA_KILL));
    RA_CK_WAIT(!ra_is_alive(rt, pid), RT_TIMEOUT_MS);
}

// receive_tag receives one message within RT_TIMEOUT_MS, asserts its tag
// and returns it (caller owns it).
static ra_msg_t *
receive_tag(ra_ctx_t *ctx, int32_t tag)
{
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_receive(ctx, RT_TIMEOUT_MS, &msg));
    ck_assert_ptr_nonnull(msg);
    ck_assert_int_eq(ra_msg_tag(msg), tag);
    return msg;
}

// expect_nothing asserts that no message arrives within ms.
static void
expect_nothing(ra_ctx_t *ctx, int64_t ms)
{
    ra_msg_t *msg = NULL;
    int rc = ra_receive(ctx, ms, &msg);

    if (msg != NULL) {
        int32_t tag = ra_msg_tag(msg);
        ra_msg_kind_t kind = ra_msg_kind(msg);

        ra_msg_unref(&msg);
        ck_abort_msg("unexpected message (kind %d, tag %d)", (int)kind,
                     (int)tag);
    }
    RA_CK_ERR(rc, RA_ETIMEOUT);
}

// ---- behaviours ---------------------------------------------------------

// echo answers every call with a TAG_REPLY copy of the request's payload
// and ignores plain messages.
static int
echo_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    ra_msg_t *reply = NULL;
    int rc;

    (void)state;
    if (ra_call_ref(ctx) == 0) {
        return 0;
    }
    if ((rc = ra_msg_new_bytes(&reply, TAG_REPLY, data, len)) != 0) {
        return rc;
    }
    if ((rc = ra_reply(ctx, &reply)) != 0) {
        ra_msg_unref(&reply);
    }
    return rc;
}

static const ra_behaviour_t echo_behaviour = {"echo", NULL, echo_handle,
                                              NULL};

// callee_t is what the "callee" behaviour records.  The test owns it and
// passes it as the spawn argument.
typedef struct callee {
    ra_runtime_t *rt;
    atomic_int handled;       // messages handled
    _Atomic uint64_t cref;    // the slow call's reference
    _Atomic uint32_t slow_val; // the slow call's request, sent back late
    atomic_int late_done;     // the late ra_reply_to has returned
    atomic_int late_rc;       // and what it returned
    atomic_int twice_done;    // the double reply has been made
    atomic_int second_rc;     // what the second ra_reply returned
    atomic_int plain_done;    // ra_reply on a plain message was tried
    atomic_int plain_rc;      // and what it returned
    atomic_int plain_owned;   // whether the reply was still ours after it
    _Atomic uint64_t plain_cref; // ra_call_ref during a plain message
    pthread_t thread;         // the replying pthread of TAG_THREAD
    atomic_int thread_started;
    atomic_int thread_rc;     // what ra_reply_to returned on that thread
} callee_t;

// reply_str answers the current call with a TAG_REPLY message holding s.
static int
reply_str(ra_ctx_t *ctx, const char *s)
{
    ra_msg_t *reply = NULL;
    int rc;

    if ((rc = ra_msg_new_bytes(&reply, TAG_REPLY, s, strlen(s))) != 0) {
        return rc;
    }
    if ((rc = ra_reply(ctx, &reply)) != 0) {
        ra_msg_unref(&reply);
    }
    return rc;
}

typedef struct thread_reply {
    ra_runtime_t *rt;
    uint64_t cref;
    callee_t *c;
} thread_reply_t;

// reply_thread sleeps 50 ms and then answers a call from outside any actor.
static void *
reply_thread(void *arg)
{
    thread_reply_t *tr = arg;
    ra_msg_t *reply = NULL;
    int rc;

    ra_test_sleep_ms(50);
    rc = ra_msg_new_bytes(&reply, TAG_REPLY, "from thread", 11);
    if (rc == 0) {
        rc = ra_reply_to(tr->rt, tr->cref, &reply);
        ra_msg_unref(&reply); // only if ra_reply_to failed
    }
    atomic_store(&tr->c->thread_rc, rc);
    free(tr);
    return NULL;
}

// callee_handle misbehaves in the ways the call tests need, chosen by tag.
static int
callee_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    callee_t *c = state;
    ra_msg_t *m = NULL;
    int rc = 0;

    atomic_fetch_add(&c->handled, 1);
    switch (ra_msg_tag(msg)) {
    case TAG_DIE_EXIT:
        ra_exit(ctx, RA_REASON_USER + 1); // and never reply
        return 0;
    case TAG_DIE_ERR:
        return RA_EINVAL;
    case TAG_SLOW:
        // Answer later: a timer wakes us and we reply with ra_reply_to.
        atomic_store(&c->cref, ra_call_ref(ctx));
        atomic_store(&c->slow_val, msg_u32(msg));
        m = new_str_tagged(TAG_LATE, "late");
        rc = ra_send_after(c->rt, ra_self(ctx), SLOW_REPLY_MS, &m, NULL);
        ra_msg_unref(&m);
        return rc;
    case TAG_LATE: {
        uint32_t v = atomic_load(&c->slow_val);

        if ((rc = ra_msg_new_bytes(&m, TAG_REPLY, &v, sizeof v)) != 0) {
            return rc;
        }
        rc = ra_reply_to(c->rt, atomic_load(&c->cref), &m);
        ra_msg_unref(&m); // only if ra_reply_to refused it
        atomic_store(&c->late_rc, rc);
        atomic_store(&c->late_done, 1);
        return 0;
    }
    case TAG_TWICE:
        if ((rc = reply_str(ctx, "first")) != 0) {
            return rc;
        }
        if ((rc = ra_msg_new_bytes(&m, TAG_REPLY, "second", 6)) != 0) {
            return rc;
        }
        atomic_store(&c->second_rc, ra_reply(ctx, &m));
        ra_msg_unref(&m); // ours if the second reply was refused
        atomic_store(&c->twice_done, 1);
        return 0;
    case TAG_THREAD: {
        thread_reply_t *tr = malloc(sizeof *tr);

        if (tr == NULL) {
            return RA_ENOMEM;
        }
        tr->rt = c->rt;
        tr->cref = ra_call_ref(ctx);
        tr->c = c;
        if (pthread_create(&c->thread, NULL, reply_thread, tr) != 0) {
            free(tr);
            return RA_ENOMEM;
        }
        atomic_store(&c->thread_started, 1);
        return 0;
    }
    case TAG_PING:
        // A plain message: ra_reply must refuse it.
        atomic_store(&c->plain_cref, ra_call_ref(ctx));
        if ((rc = ra_msg_new_bytes(&m, TAG_REPLY, "nobody", 6)) != 0) {
            return rc;
        }
        atomic_store(&c->plain_rc, ra_reply(ctx, &m));
        atomic_store(&c->plain_owned, m != NULL);
        ra_msg_unref(&m);
        atomic_store(&c->plain_done, 1);
        return 0;
    default:
        return reply_str(ctx, "callee");
    }
}

static const ra_behaviour_t callee_behaviour = {"callee", NULL,
                                                callee_handle, NULL};

// callee_init initialises a callee_t for rt.
static void
callee_init(callee_t *c, ra_runtime_t *rt)
{
    memset(c, 0, sizeof *c);
    c->rt = rt;
    atomic_store(&c->late_rc, 1);
    atomic_store(&c->second_rc, 1);
    atomic_store(&c->plain_rc, 1);
    atomic_store(&c->thread_rc, 1);
}

// counter_t counts what a "counter" actor handles and how it ended.
typedef struct counter {
    atomic_int handled;
    atomic_int terminated;
    _Atomic ra_reason_t reason;
    atomic_int exits;          // RA_MSG_EXIT messages received
    _Atomic ra_reason_t exit_reason;
    _Atomic uint32_t exit_from_id;
    _Atomic uint32_t exit_from_gen;
    atomic_uintptr_t data;     // ra_msg_data of the last message
} counter_t;

// counter_handle counts messages, records EXIT messages and the payload
// pointer, ends on TAG_STOP and answers calls with "counter".
static int
counter_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    counter_t *c = state;

    if (ra_msg_kind(msg) == RA_MSG_EXIT) {
        ra_pid_t from = RA_PID_NIL;
        ra_reason_t reason = -1;

        if (ra_msg_exit_info(msg, &from, &reason) == 0) {
            atomic_store(&c->exit_reason, reason);
            atomic_store(&c->exit_from_id, from.id);
            atomic_store(&c->exit_from_gen, from.gen);
        }
        atomic_fetch_add(&c->exits, 1);
        return 0;
    }
    atomic_store(&c->data, (uintptr_t)ra_msg_data(msg, NULL));
    atomic_fetch_add(&c->handled, 1);
    if (ra_msg_tag(msg) == TAG_STOP) {
        ra_exit(ctx, RA_NORMAL);
        return 0;
    }
    if (ra_call_ref(ctx) != 0) {
        return reply_str(ctx, "counter");
    }
    return 0;
}

// counter_terminate records that the actor ended and why.
static void
counter_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    counter_t *c = state;

    (void)ctx;
    atomic_store(&c->reason, reason);
    atomic_fetch_add(&c->terminated, 1);
}

static const ra_behaviour_t counter_behaviour = {"counter", NULL,
                                                 counter_handle,
                                                 counter_terminate};

// counter_init_state zeroes a counter_t.
static void
counter_init_state(counter_t *c)
{
    memset(c, 0, sizeof *c);
    atomic_store(&c->reason, -1);
    atomic_store(&c->exit_reason, -1);
}

// ---- timers -------------------------------------------------------------

START_TEST(test_timer_send_after_waits_for_delay)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_msg_t *msg = new_u32(TAG_TIMER, 42);
    uint64_t tref = 0;
    uint64_t t0 = ra_test_now_ns();
    uint64_t elapsed_ms;

    RA_CK_OK(ra_send_after(rt, ra_self(scope), 100, &msg, &tref));
    ck_assert_ptr_null(msg);
    ck_assert_uint_ne(tref, 0);
    msg = receive_tag(scope, TAG_TIMER);
    elapsed_ms = (ra_test_now_ns() - t0) / 1000000u;
    ck_assert_uint_eq(msg_u32(msg), 42);
    ck_assert_msg(elapsed_ms >= 100, "delivered after %" PRIu64 " ms, "
                  "before the 100 ms delay", elapsed_ms);
    ck_assert_msg(elapsed_ms < 600, "delivered after %" PRIu64 " ms, "
                  "long after the 100 ms delay", elapsed_ms);
    ra_msg_unref(&msg);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_timer_fire_in_deadline_order)
{
    static const uint32_t delays[] = {250, 50, 200, 100, 150, 10};
    static const uint32_t sorted[] = {10, 50, 100, 150, 200, 250};
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    size_t n = sizeof delays / sizeof delays[0];

    for (size_t i = 0; i < n; i++) {
        ra_msg_t *msg = new_u32(TAG_TIMER, delays[i]);

        RA_CK_OK(ra_send_after(rt, ra_self(scope), delays[i], &msg, NULL));
    }
    for (size_t i = 0; i < n; i++) {
        ra_msg_t *msg = receive_tag(scope, TAG_TIMER);
        uint32_t got = msg_u32(msg);

        ra_msg_unref(&msg);
        ck_assert_msg(got == sorted[i], "timer %zu to fire was the %" PRIu32
                      " ms one, expected %" PRIu32 " ms", i, got, sorted[i]);
    }
    expect_nothing(scope, 50);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_timer_cancel_before_firing)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_msg_t *msg = ra_test_msg("never");
    uint64_t tref = 0;

    RA_CK_OK(ra_send_after(rt, ra_self(scope), 200, &msg, &tref));
    RA_CK_OK(ra_timer_cancel(rt, tref));
    expect_nothing(scope, 400); // twice the delay
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_timer_cancel_after_firing_enoent)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_msg_t *msg = new_u32(TAG_TIMER, 7);
    uint64_t tref = 0;

    RA_CK_OK(ra_send_after(rt, ra_self(scope), 10, &msg, &tref));
    msg = receive_tag(scope, TAG_TIMER);
    ra_msg_unref(&msg);
    RA_CK_ERR(ra_timer_cancel(rt, tref), RA_ENOENT);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_timer_cancel_twice_enoent)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_msg_t *msg = new_u32(TAG_TIMER, 7);
    uint64_t tref = 0;

    RA_CK_OK(ra_send_after(rt, ra_self(scope), 200, &msg, &tref));
    RA_CK_OK(ra_timer_cancel(rt, tref));
    RA_CK_ERR(ra_timer_cancel(rt, tref), RA_ENOENT);
    // A reference that was never handed out is not a timer either.
    RA_CK_ERR(ra_timer_cancel(rt, tref + 12345), RA_ENOENT);
    expect_nothing(scope, 300);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_timer_cancel_keeps_other_timers)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    uint64_t tref[3] = {0, 0, 0};

    for (uint32_t i = 0; i < 3; i++) {
        ra_msg_t *msg = new_u32(TAG_TIMER, i);

        RA_CK_OK(ra_send_after(rt, ra_self(scope), 50 + 50 * i, &msg,
                               &tref[i]));
    }
    ck_assert_uint_ne(tref[0], tref[1]);
    ck_assert_uint_ne(tref[1], tref[2]);
    RA_CK_OK(ra_timer_cancel(rt, tref[1]));
    for (uint32_t want = 0; want < 3; want += 2) {
        ra_msg_t *msg = receive_tag(scope, TAG_TIMER);

        ck_assert_uint_eq(msg_u32(msg), want);
        ra_msg_unref(&msg);
    }
    expect_nothing(scope, 100);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_timer_to_dead_pid_dropped)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    counter_t dead, fresh;
    ra_pid_t pid, pid2;
    ra_msg_t *msg = ra_test_msg("too late");
    uint64_t tref = 0;

    counter_init_state(&dead);
    counter_init_state(&fresh);
    pid = spawn_ok(rt, &counter_behaviour, &dead);
    RA_CK_OK(ra_send_after(rt, pid, 100, &msg, &tref));
    ck_assert_ptr_null(msg);
    kill_and_wait(rt, pid);
    // A new actor may reuse the slot (with a new generation): the timer
    // must not reach it either.
    pid2 = spawn_ok(rt, &counter_behaviour, &fresh);
    ck_assert(!ra_pid_eq(pid, pid2));
    ra_test_sleep_ms(250);
    // The timer fired (or was dropped) by now: nothing left to cancel.
    RA_CK_ERR(ra_timer_cancel(rt, tref), RA_ENOENT);
    ck_assert_int_eq(atomic_load(&dead.handled), 0);
    ck_assert_int_eq(atomic_load(&dead.terminated), 1);
    RA_CK_REASON_EQ(atomic_load(&dead.reason), RA_KILLED);
    ck_assert_int_eq(atomic_load(&fresh.handled), 0);
    ck_assert(ra_is_alive(rt, pid2));
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- call / reply from a scope ------------------------------------------

START_TEST(test_call_reply_success)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t echo = spawn_ok(rt, &echo_behaviour, NULL);
    ra_msg_t *req = ra_test_msg("hello, echo");
    ra_msg_t *reply = NULL;

    RA_CK_OK(ra_call(scope, echo, &req, RT_TIMEOUT_MS, &reply));
    ck_assert_ptr_null(req);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(ra_msg_tag(reply), TAG_REPLY);
    ra_test_msg_is(reply, "hello, echo");
    ra_msg_unref(&reply);

    // A second call on the same scope gets its own answer.
    req = ra_test_msg("again");
    RA_CK_OK(ra_call(scope, echo, &req, -1, &reply));
    ra_test_msg_is(reply, "again");
    ra_msg_unref(&reply);
    // Replies never show up as ordinary messages.
    expect_nothing(scope, 50);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_call_dead_callee_enoproc_keeps_req)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    counter_t c;
    ra_pid_t pid;
    ra_msg_t *req = ra_test_msg("anyone?");
    ra_msg_t *reply = NULL;
    uint64_t t0;

    counter_init_state(&c);
    pid = spawn_ok(rt, &counter_behaviour, &c);
    kill_and_wait(rt, pid);
    t0 = ra_test_now_ms();
    RA_CK_ERR(ra_call(scope, pid, &req, 10000, &reply), RA_ENOPROC);
    ck_assert_uint_lt(ra_test_now_ms() - t0, 500);
    ck_assert_ptr_null(reply);
    // Nothing was sent, so the request is still ours and intact.
    ck_assert_ptr_nonnull(req);
    ra_test_msg_is(req, "anyone?");
    ra_msg_unref(&req);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// call_callee_that_dies calls a fresh callee with tag and asserts that the
// call fails with RA_ENOPROC long before its 10 s timeout.
static void
call_callee_that_dies(int32_t tag, ra_reason_t want_reason)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c;
    ra_pid_t pid;
    ra_msg_t *req = new_u32(tag, 1);
    ra_msg_t *reply = NULL;
    ra_msg_t *down = NULL;
    uint64_t mref = 0, t0, elapsed;
    ra_reason_t reason = -1;

    callee_init(&c, rt);
    pid = spawn_ok(rt, &callee_behaviour, &c);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    t0 = ra_test_now_ms();
    RA_CK_ERR(ra_call(scope, pid, &req, 10000, &reply), RA_ENOPROC);
    elapsed = ra_test_now_ms() - t0;
    ck_assert_msg(elapsed < 1000, "RA_ENOPROC after %" PRIu64 " ms", elapsed);
    ck_assert_ptr_null(req); // it was sent: the runtime took it
    ck_assert_ptr_null(reply);
    ck_assert_int_eq(atomic_load(&c.handled), 1);
    // The callee really ended, with the reason its handler chose.
    RA_CK_OK(ra_receive(scope, RT_TIMEOUT_MS, &down));
    ck_assert_int_eq(ra_msg_kind(down), RA_MSG_DOWN);
    RA_CK_OK(ra_msg_down_info(down, NULL, NULL, &reason));
    RA_CK_REASON_EQ(reason, want_reason);
    ra_msg_unref(&down);
    ck_assert(!ra_is_alive(rt, pid));
    // The call's own monitor left nothing behind in the scope's mailbox.
    expect_nothing(scope, 50);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}

START_TEST(test_call_callee_exits_instead_of_replying)
{
    call_callee_that_dies(TAG_DIE_EXIT, RA_REASON_USER + 1);
}
END_TEST

START_TEST(test_call_callee_fails_instead_of_replying)
{
    call_callee_that_dies(TAG_DIE_ERR, RA_EINVAL);
}
END_TEST

START_TEST(test_call_timeout_then_late_reply_is_discarded)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c;
    ra_pid_t pid, echo;
    ra_msg_t *req = new_u32(TAG_SLOW, 1);
    ra_msg_t *reply = NULL;
    uint64_t t0, elapsed;

    callee_init(&c, rt);
    pid = spawn_ok(rt, &callee_behaviour, &c);
    echo = spawn_ok(rt, &echo_behaviour, NULL);
    t0 = ra_test_now_ms();
    RA_CK_ERR(ra_call(scope, pid, &req, 100, &reply), RA_ETIMEOUT);
    elapsed = ra_test_now_ms() - t0;
    ck_assert_msg(elapsed >= 100 && elapsed < 1000,
                  "RA_ETIMEOUT after %" PRIu64 " ms, timeout was 100 ms",
                  elapsed);
    ck_assert_ptr_null(req);
    ck_assert_ptr_null(reply);
    ck_assert_int_eq(atomic_load(&c.late_done), 0);
    ck_assert_uint_eq(atomic_load(&c.slow_val), 1);

    // The late reply (300 ms after the call) falls inside this window and
    // must not show up as a stray message.
    expect_nothing(scope, 500);
    ck_assert_int_eq(atomic_load(&c.late_done), 1);
    RA_CK_OK(atomic_load(&c.late_rc)); // accepted, then freed
    // The next call gets its own reply, not the stale one.
    req = ra_test_msg("fresh");
    RA_CK_OK(ra_call(scope, echo, &req, RT_TIMEOUT_MS, &reply));
    ra_test_msg_is(reply, "fresh");
    ra_msg_unref(&reply);
    ck_assert(ra_is_alive(rt, pid));
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_call_late_reply_does_not_answer_next_call)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c1, c2;
    ra_pid_t slow1, slow2;
    ra_msg_t *req = new_u32(TAG_SLOW, 1);
    ra_msg_t *reply = NULL;

    // The first call times out after 100 ms; its reply comes at 300 ms,
    // while the scope waits in a second call whose reply comes at about
    // 400 ms.  The stale reply must not complete the second call.
    callee_init(&c1, rt);
    callee_init(&c2, rt);
    slow1 = spawn_ok(rt, &callee_behaviour, &c1);
    slow2 = spawn_ok(rt, &callee_behaviour, &c2);
    RA_CK_ERR(ra_call(scope, slow1, &req, 100, &reply), RA_ETIMEOUT);
    req = new_u32(TAG_SLOW, 2);
    RA_CK_OK(ra_call(scope, slow2, &req, RT_TIMEOUT_MS, &reply));
    ck_assert_int_eq(ra_msg_tag(reply), TAG_REPLY);
    ck_assert_uint_eq(msg_u32(reply), 2);
    ra_msg_unref(&reply);
    // c1 did send its late reply (100 ms before c2's), and it was dropped.
    ck_assert_int_eq(atomic_load(&c1.late_done), 1);
    RA_CK_OK(atomic_load(&c1.late_rc));
    expect_nothing(scope, 50);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_call_deferred_reply_from_other_thread)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c;
    ra_pid_t pid;
    ra_msg_t *req = new_u32(TAG_THREAD, 1);
    ra_msg_t *reply = NULL;

    callee_init(&c, rt);
    pid = spawn_ok(rt, &callee_behaviour, &c);
    // The handler returns without replying; a pthread answers 50 ms later.
    RA_CK_OK(ra_call(scope, pid, &req, RT_TIMEOUT_MS, &reply));
    // thread_started is stored after c.thread: wait on it before joining.
    RA_CK_WAIT(atomic_load(&c.thread_started) == 1, RT_TIMEOUT_MS);
    ck_assert_int_eq(ra_msg_tag(reply), TAG_REPLY);
    ra_test_msg_is(reply, "from thread");
    ra_msg_unref(&reply);
    pthread_join(c.thread, NULL);
    RA_CK_OK(atomic_load(&c.thread_rc));
    ck_assert(ra_is_alive(rt, pid)); // not replying at once is no error
    expect_nothing(scope, 50);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_call_self_edeadlk)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_msg_t *req = ra_test_msg("me?");
    ra_msg_t *reply = NULL;
    uint64_t t0 = ra_test_now_ms();

    RA_CK_ERR(ra_call(scope, ra_self(scope), &req, 10000, &reply),
              RA_EDEADLK);
    ck_assert_uint_lt(ra_test_now_ms() - t0, 500);
    ck_assert_ptr_nonnull(req); // not sent: still ours
    ck_assert_ptr_null(reply);
    ra_test_msg_is(req, "me?");
    ra_msg_unref(&req);
    expect_nothing(scope, 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_call_reply_to_plain_message_einval)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c;
    ra_pid_t pid;
    ra_msg_t *ping = new_u32(TAG_PING, 0);

    callee_init(&c, rt);
    atomic_store(&c.plain_cref, UINT64_MAX);
    pid = spawn_ok(rt, &callee_behaviour, &c);
    RA_CK_OK(ra_send(scope, pid, &ping));
    RA_CK_WAIT(atomic_load(&c.plain_done) == 1, RT_TIMEOUT_MS);
    ck_assert_uint_eq(atomic_load(&c.plain_cref), 0);
    RA_CK_ERR(atomic_load(&c.plain_rc), RA_EINVAL);
    ck_assert_int_eq(atomic_load(&c.plain_owned), 1); // refused: still ours
    ck_assert(ra_is_alive(rt, pid));
    // Nothing was delivered to the sender either.
    expect_nothing(scope, 100);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_call_second_reply_is_harmless)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c;
    ra_pid_t pid, echo;
    ra_msg_t *req = new_u32(TAG_TWICE, 0);
    ra_msg_t *reply = NULL;
    int rc2;

    callee_init(&c, rt);
    pid = spawn_ok(rt, &callee_behaviour, &c);
    echo = spawn_ok(rt, &echo_behaviour, NULL);
    RA_CK_OK(ra_call(scope, pid, &req, RT_TIMEOUT_MS, &reply));
    ra_test_msg_is(reply, "first");
    ra_msg_unref(&reply);
    RA_CK_WAIT(atomic_load(&c.twice_done) == 1, RT_TIMEOUT_MS);
    rc2 = atomic_load(&c.second_rc);
    ck_assert_msg(rc2 == 0 || rc2 == RA_EINVAL,
                  "second ra_reply returned %s", ra_err_name(rc2));
    ck_assert(ra_is_alive(rt, pid));
    // The second reply is neither a stray message nor the next answer.
    expect_nothing(scope, 100);
    req = ra_test_msg("next");
    RA_CK_OK(ra_call(scope, echo, &req, RT_TIMEOUT_MS, &reply));
    ra_test_msg_is(reply, "next");
    ra_msg_unref(&reply);
    req = new_u32(TAG_PING + 100, 0); // the default case: one reply
    RA_CK_OK(ra_call(scope, pid, &req, RT_TIMEOUT_MS, &reply));
    ra_test_msg_is(reply, "callee");
    ra_msg_unref(&reply);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_call_invalid_arguments_keep_req)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t echo = spawn_ok(rt, &echo_behaviour, NULL);
    ra_msg_t *req = ra_test_msg("x");
    ra_msg_t *null_msg = NULL;
    ra_msg_t *reply = NULL;

    RA_CK_ERR(ra_call(scope, echo, &req, 100, NULL), RA_EINVAL);
    ck_assert_ptr_nonnull(req);
    RA_CK_ERR(ra_call(scope, echo, &null_msg, 100, &reply), RA_EINVAL);
    RA_CK_ERR(ra_call(scope, echo, NULL, 100, &reply), RA_EINVAL);
    RA_CK_ERR(ra_reply_to(rt, 0, &req), RA_EINVAL);
    ck_assert_ptr_nonnull(req);
    RA_CK_ERR(ra_reply(scope, &req), RA_EINVAL); // a scope handles no call
    ck_assert_ptr_nonnull(req);
    ck_assert_uint_eq(ra_call_ref(scope), 0);
    ra_msg_unref(&req);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- calls from inside handlers -----------------------------------------

// summer_t is the state of a "summer" actor: on TAG_GO it calls echo n
// times in a row and reports to the sender what came back.
typedef struct summer {
    ra_pid_t echo;
    uint32_t n;
} summer_t;

// report_t is the payload of a summer's TAG_RESULT message.
typedef struct report {
    int32_t rc;      // first failing ra_call's code, or 0
    uint32_t ok;     // replies that matched their request
    uint64_t sum;    // sum of the reply values
} report_t;

static int
summer_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    summer_t *s = state;
    report_t rep = {0, 0, 0};
    ra_msg_t *out = NULL;
    int rc;

    if (ra_msg_tag(msg) != TAG_GO) {
        return 0;
    }
    for (uint32_t i = 0; i < s->n && rep.rc == 0; i++) {
        ra_msg_t *req = NULL;
        ra_msg_t *reply = NULL;

        if ((rc = ra_msg_new_bytes(&req, TAG_PING, &i, sizeof i)) != 0) {
            rep.rc = rc;
            break;
        }
        rc = ra_call(ctx, s->echo, &req, RT_TIMEOUT_MS, &reply);
        ra_msg_unref(&req); // only if the call failed before sending
        if (rc != 0) {
            rep.rc = rc;
            break;
        }
        if (ra_msg_tag(reply) == TAG_REPLY && msg_u32(reply) == i) {
            rep.ok++;
        }
        rep.sum += msg_u32(reply);
        ra_msg_unref(&reply);
    }
    if ((rc = ra_msg_new_bytes(&out, TAG_RESULT, &rep, sizeof rep)) != 0) {
        return rc;
    }
    if ((rc = ra_send(ctx, ra_sender(ctx), &out)) != 0) {
        ra_msg_unref(&out);
    }
    return rc;
}

static const ra_behaviour_t summer_behaviour = {"summer", NULL,
                                                summer_handle, NULL};

// sequential_calls_from_handler runs 1000 calls from a summer to an echo
// on a runtime with the given number of threads and checks the report.
static void
sequential_calls_from_handler(unsigned threads)
{
    ra_runtime_t *rt = new_rt(threads);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    summer_t s = {RA_PID_NIL, 1000};
    ra_pid_t summer;
    ra_msg_t *msg = new_u32(TAG_GO, 0);
    report_t rep;
    size_t len = 0;

    ck_assert_uint_eq(ra_runtime_threads(rt), threads);
    s.echo = spawn_ok(rt, &echo_behaviour, NULL);
    summer = spawn_ok(rt, &summer_behaviour, &s);
    RA_CK_OK(ra_send(scope, summer, &msg));
    msg = receive_tag(scope, TAG_RESULT);
    ck_assert_uint_eq(ra_msg_kind(msg), RA_MSG_BYTES);
    memcpy(&rep, ra_msg_data(msg, &len), sizeof rep);
    ck_assert_uint_eq(len, sizeof rep);
    ra_msg_unref(&msg);
    RA_CK_OK(rep.rc);
    ck_assert_uint_eq(rep.ok, 1000);
    ck_assert_uint_eq(rep.sum, 999u * 1000u / 2u);
    ck_assert(ra_is_alive(rt, summer));
    ck_assert(ra_is_alive(rt, s.echo));
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}

START_TEST(test_call_from_handler_sequential_one_thread)
{
    sequential_calls_from_handler(1);
}
END_TEST

START_TEST(test_call_from_handler_sequential_two_threads)
{
    sequential_calls_from_handler(2);
}
END_TEST

// chain_t is the state of a "chain" actor: called, it calls next (if any)
// and answers with next's answer followed by its own letter.
typedef struct chain {
    ra_pid_t next;
    char letter;
} chain_t;

static int
chain_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    chain_t *ch = state;
    char buf[64];
    size_t len = 0;
    int rc;

    (void)msg;
    if (ra_call_ref(ctx) == 0) {
        return 0;
    }
    if (!ra_pid_is_nil(ch->next)) {
        ra_msg_t *req = NULL;
        ra_msg_t *reply = NULL;

        if ((rc = ra_msg_new_bytes(&req, TAG_PING, "down", 4)) != 0) {
            return rc;
        }
        rc = ra_call(ctx, ch->next, &req, RT_TIMEOUT_MS, &reply);
        ra_msg_unref(&req);
        if (rc != 0) {
            snprintf(buf, sizeof buf, "%c:%s", ch->letter, ra_err_name(rc));
            return reply_str(ctx, buf);
        }
        const void *data = ra_msg_data(reply, &len);

        if (len > sizeof buf - 2) {
            len = sizeof buf - 2;
        }
        memcpy(buf, data, len);
        ra_msg_unref(&reply);
    }
    buf[len] = ch->letter;
    buf[len + 1] = '\0';
    return reply_str(ctx, buf);
}

static const ra_behaviour_t chain_behaviour = {"chain", NULL, chain_handle,
                                               NULL};

// call_chain makes the scope call A, which calls B, which calls C.
static void
call_chain(unsigned threads)
{
    ra_runtime_t *rt = new_rt(threads);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    chain_t c = {RA_PID_NIL, 'c'};
    chain_t b = {RA_PID_NIL, 'b'};
    chain_t a = {RA_PID_NIL, 'a'};
    ra_pid_t pa;
    ra_msg_t *req;
    ra_msg_t *reply = NULL;

    b.next = spawn_ok(rt, &chain_behaviour, &c);
    a.next = spawn_ok(rt, &chain_behaviour, &b);
    pa = spawn_ok(rt, &chain_behaviour, &a);
    for (int round = 0; round < 50; round++) {
        req = ra_test_msg("top");
        RA_CK_OK(ra_call(scope, pa, &req, RT_TIMEOUT_MS, &reply));
        ra_test_msg_is(reply, "cba");
        ra_msg_unref(&reply);
    }
    // With C gone, B's call fails and B says so: errors propagate too.
    kill_and_wait(rt, b.next);
    req = ra_test_msg("top");
    RA_CK_OK(ra_call(scope, pa, &req, RT_TIMEOUT_MS, &reply));
    ra_test_msg_is(reply, "b:RA_ENOPROCa");
    ra_msg_unref(&reply);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}

START_TEST(test_call_chain_one_thread)
{
    call_chain(1);
}
END_TEST

START_TEST(test_call_chain_two_threads)
{
    call_chain(2);
}
END_TEST

// ---- a waiting caller does not hold up its thread ------------------------

// waiter_t is the state of a "waiter" actor: on TAG_GO it sends TAG_GO to
// asker (unless nil) and then calls slow (a callee answering TAG_SLOW late),
// and reports (TAG_RESULT: WHO_WAITER and the call's result) to the sender
// of TAG_GO.  It answers calls with "waiter".
typedef struct waiter {
    ra_pid_t slow;
    ra_pid_t asker;
} waiter_t;

// asker_t is the state of an "asker" actor: on TAG_GO it calls waiter and
// reports (TAG_RESULT: WHO_ASKER and the call's result) to report.
typedef struct asker {
    ra_pid_t waiter;
    ra_pid_t report;
} asker_t;

enum { WHO_WAITER = 1, WHO_ASKER = 2 };

// report_rc sends to whom TAG_RESULT holding who and rc.
static int
report_rc(ra_ctx_t *ctx, ra_pid_t whom, uint32_t who, int rc)
{
    int32_t v[2] = {(int32_t)who, rc};
    ra_msg_t *out = NULL;
    int src = ra_msg_new_bytes(&out, TAG_RESULT, v, sizeof v);

    if (src == 0 && (src = ra_send(ctx, whom, &out)) != 0) {
        ra_msg_unref(&out);
    }
    return src;
}

static int
waiter_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    waiter_t *wt = state;
    ra_msg_t *req = NULL;
    ra_msg_t *reply = NULL;
    int rc;

    if (ra_call_ref(ctx) != 0) {
        return reply_str(ctx, "waiter");
    }
    if (ra_msg_tag(msg) != TAG_GO) {
        return 0;
    }
    if (!ra_pid_is_nil(wt->asker)) {
        req = new_str_tagged(TAG_GO, "ask");
        if ((rc = ra_send(ctx, wt->asker, &req)) != 0) {
            ra_msg_unref(&req);
            return rc;
        }
    }
    if ((rc = ra_msg_new_bytes(&req, TAG_SLOW, "s", 1)) != 0) {
        return rc;
    }
    rc = ra_call(ctx, wt->slow, &req, RT_TIMEOUT_MS, &reply);
    ra_msg_unref(&req);
    ra_msg_unref(&reply);
    return report_rc(ctx, ra_sender(ctx), WHO_WAITER, rc);
}

static const ra_behaviour_t waiter_behaviour = {"waiter", NULL,
                                                waiter_handle, NULL};

static int
asker_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    asker_t *as = state;
    ra_msg_t *req = NULL;
    ra_msg_t *reply = NULL;
    int rc;

    if (ra_msg_tag(msg) != TAG_GO) {
        return 0;
    }
    req = ra_test_msg("are you there?");
    rc = ra_call(ctx, as->waiter, &req, RT_TIMEOUT_MS, &reply);
    ra_msg_unref(&req);
    if (rc == 0) {
        size_t len = 0;
        const char *data = ra_msg_data(reply, &len);

        if (len != 6 || memcmp(data, "waiter", 6) != 0) {
            rc = RA_EBADMSG;
        }
    }
    ra_msg_unref(&reply);
    return report_rc(ctx, as->report, WHO_ASKER, rc);
}

static const ra_behaviour_t asker_behaviour = {"asker", NULL, asker_handle,
                                               NULL};

// receive_result receives one TAG_RESULT of report_rc and returns its rc,
// storing who sent it in *who.
static int
receive_result(ra_ctx_t *scope, uint32_t *who)
{
    ra_msg_t *msg = receive_tag(scope, TAG_RESULT);
    int32_t v[2] = {0, 0};
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);

    ck_assert_uint_eq(len, sizeof v);
    memcpy(v, data, sizeof v);
    ra_msg_unref(&msg);
    *who = (uint32_t)v[0];
    return v[1];
}

// One scheduler thread.  The waiter waits in a call that the slow callee
// answers 300 ms later; meanwhile the asker calls the waiter.  The asker
// must not run on top of the waiting waiter (there its call could never be
// answered: it failed with RA_EDEADLK); it runs on another thread and gets
// its answer once the waiter's own call is done.
START_TEST(test_call_to_a_waiting_caller_is_answered_later)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c;
    waiter_t wt;
    asker_t as;
    ra_pid_t waiter;
    ra_msg_t *go = new_u32(TAG_GO, 0);
    bool seen[3] = {false, false, false};

    callee_init(&c, rt);
    wt.slow = spawn_ok(rt, &callee_behaviour, &c);
    as.report = ra_self(scope);
    as.waiter = RA_PID_NIL;
    wt.asker = spawn_ok(rt, &asker_behaviour, &as);
    waiter = spawn_ok(rt, &waiter_behaviour, &wt);
    as.waiter = waiter;
    RA_CK_OK(ra_send(scope, waiter, &go));
    for (int i = 0; i < 2; i++) {
        uint32_t who = 0;
        int rc = receive_result(scope, &who);

        ck_assert_msg(who == WHO_WAITER || who == WHO_ASKER,
                      "result from %u", who);
        ck_assert_msg(rc == 0, "%s's call failed: %s",
                      who == WHO_WAITER ? "waiter" : "asker",
                      ra_err_name(rc));
        seen[who] = true;
    }
    ck_assert(seen[WHO_WAITER] && seen[WHO_ASKER]);
    // late_done is set after ra_reply_to returns, perhaps after the
    // waiter has its answer.
    RA_CK_WAIT(atomic_load(&c.late_done) == 1, RT_TIMEOUT_MS);
    RA_CK_OK(atomic_load(&c.late_rc));
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// One scheduler thread.  A supervised waiter waits in a call; its
// supervisor is told to terminate it.  The supervisor must not run on top
// of the waiter: there it would wait for the waiter's end, which cannot
// come before the supervisor returns (ra_sup_terminate_child hung).  It
// runs on another thread, and the waiter ends as soon as its call is done.
START_TEST(test_supervisor_stops_a_child_waiting_in_a_call)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    callee_t c;
    waiter_t wt;
    ra_sup_flags_t f = {0};
    ra_child_spec_t spec = {0};
    ra_child_info_t info[1];
    size_t n = 0;
    ra_pid_t sup = RA_PID_NIL;
    ra_msg_t *go = new_u32(TAG_GO, 0);
    uint32_t who = 0;

    callee_init(&c, rt);
    wt.slow = spawn_ok(rt, &callee_behaviour, &c);
    wt.asker = RA_PID_NIL;
    f.strategy = RA_ONE_FOR_ONE;
    spec.id = "waiter";
    spec.beh = &waiter_behaviour;
    spec.arg = &wt;
    spec.shutdown_ms = 10000; // far beyond the test's limit below
    RA_CK_OK(ra_sup_start(rt, NULL, &f, &spec, 1, &sup));
    RA_CK_OK(ra_sup_which_children(scope, sup, info, 1, &n));
    ck_assert_uint_eq(n, 1);
    RA_CK_OK(ra_send(scope, info[0].pid, &go));
    RA_CK_WAIT(atomic_load(&c.handled) == 1, RT_TIMEOUT_MS); // it waits
    uint64_t t0 = ra_test_now_ms();
    RA_CK_OK(ra_sup_terminate_child(scope, sup, "waiter", RA_PID_NIL));
    uint64_t took = ra_test_now_ms() - t0;
    ck_assert_msg(took < RT_TIMEOUT_MS, "terminate took %llu ms",
                  (unsigned long long)took);
    ck_assert(!ra_is_alive(rt, info[0].pid));
    // The waiter's call was answered before it ended.
    RA_CK_OK(receive_result(scope, &who));
    ck_assert_uint_eq(who, WHO_WAITER);
    RA_CK_OK(ra_sup_stop(scope, sup));
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// More callers wait at once than a runtime has spare threads for (32
// beyond its own): the waits past that run other actors nested, as the
// only way left to keep them going, and every call is still answered.
START_TEST(test_calls_complete_past_the_spare_thread_limit)
{
    enum { N = 40 };
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    static callee_t c[N];
    static waiter_t wt[N];

    for (int i = 0; i < N; i++) {
        callee_init(&c[i], rt);
        wt[i].slow = spawn_ok(rt, &callee_behaviour, &c[i]);
        wt[i].asker = RA_PID_NIL;
    }
    for (int i = 0; i < N; i++) {
        ra_msg_t *go = new_u32(TAG_GO, 0);

        RA_CK_OK(ra_send(scope, spawn_ok(rt, &waiter_behaviour, &wt[i]),
                         &go));
    }
    for (int i = 0; i < N; i++) {
        uint32_t who = 0;

        RA_CK_OK(receive_result(scope, &who));
        ck_assert_uint_eq(who, WHO_WAITER);
    }
    // Each callee marks late_done after its ra_reply_to returns, which may
    // be after its caller has its answer and has told us.
    for (int i = 0; i < N; i++) {
        RA_CK_WAIT(atomic_load(&c[i].late_done) == 1, RT_TIMEOUT_MS);
    }
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// turncoat_t is the state of a "turncoat" actor: called, it answers and
// then, in the same handler, calls its caller back; it records that call's
// result and how long it took.
typedef struct turncoat {
    atomic_int rc;
    _Atomic uint64_t took_ms;
    atomic_int done;
} turncoat_t;

static int
turncoat_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    turncoat_t *tc = state;
    ra_msg_t *req = NULL;
    ra_msg_t *reply = NULL;
    ra_pid_t caller = ra_sender(ctx);
    uint64_t t0 = ra_test_now_ms();
    int rc;

    (void)msg;
    if (ra_call_ref(ctx) == 0) {
        return 0;
    }
    if ((rc = reply_str(ctx, "turncoat")) != 0) {
        return rc;
    }
    req = ra_test_msg("back at you");
    rc = ra_call(ctx, caller, &req, RT_TIMEOUT_MS, &reply);
    ra_msg_unref(&req);
    ra_msg_unref(&reply);
    atomic_store(&tc->took_ms, ra_test_now_ms() - t0);
    atomic_store(&tc->rc, rc);
    atomic_store(&tc->done, 1);
    return 0;
}

static const ra_behaviour_t turncoat_behaviour = {"turncoat", NULL,
                                                  turncoat_handle, NULL};

// The waiter's callee runs on top of it (the same thread, no context
// switch), answers, and then calls the waiter, whose handler is below it
// on that stack: the call fails at once with RA_EDEADLK instead of hanging
// until its timeout.  The waiter got its answer.
START_TEST(test_call_to_a_caller_below_fails_at_once)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    turncoat_t tc;
    waiter_t wt;
    ra_pid_t waiter;
    ra_msg_t *go = new_u32(TAG_GO, 0);
    uint32_t who = 0;

    memset(&tc, 0, sizeof tc);
    atomic_store(&tc.rc, 1);
    wt.slow = spawn_ok(rt, &turncoat_behaviour, &tc);
    wt.asker = RA_PID_NIL;
    waiter = spawn_ok(rt, &waiter_behaviour, &wt);
    RA_CK_OK(ra_send(scope, waiter, &go));
    RA_CK_OK(receive_result(scope, &who));
    ck_assert_uint_eq(who, WHO_WAITER);
    RA_CK_WAIT(atomic_load(&tc.done) == 1, RT_TIMEOUT_MS);
    RA_CK_ERR(atomic_load(&tc.rc), RA_EDEADLK);
    ck_assert_uint_lt(atomic_load(&tc.took_ms), RT_TIMEOUT_MS / 2);
    ck_assert(ra_is_alive(rt, waiter));
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- bounded mailboxes --------------------------------------------------

// blocker_t is the state of a "blocker" actor: its TAG_BLOCK handler waits
// while hold is set, so that its mailbox fills up behind it.
typedef struct blocker {
    atomic_bool hold;
    atomic_int entered;  // TAG_BLOCK handlers started
    atomic_int handled;  // messages handled, TAG_BLOCK included
} blocker_t;

static int
blocker_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    blocker_t *b = state;

    (void)ctx;
    if (ra_msg_tag(msg) == TAG_BLOCK) {
        atomic_fetch_add(&b->entered, 1);
        while (atomic_load(&b->hold)) {
            ra_test_sleep_ms(1);
        }
    }
    atomic_fetch_add(&b->handled, 1);
    return 0;
}

static const ra_behaviour_t blocker_behaviour = {"blocker", NULL,
                                                 blocker_handle, NULL};

// spawn_blocked spawns a blocker with a bounded mailbox and parks it in
// its TAG_BLOCK handler, so that its user lane is empty and not drained.
static ra_pid_t
spawn_blocked(ra_runtime_t *rt, blocker_t *b, size_t cap,
              ra_full_policy_t policy)
{
    ra_spawn_opts_t opts = {0, cap, policy};
    ra_pid_t pid = RA_PID_NIL;
    ra_msg_t *msg = new_u32(TAG_BLOCK, 0);

    memset(b, 0, sizeof *b);
    atomic_store(&b->hold, true);
    RA_CK_OK(ra_spawn(rt, &blocker_behaviour, b, &opts, &pid));
    RA_CK_OK(ra_runtime_send(rt, pid, &msg));
    RA_CK_WAIT(atomic_load(&b->entered) == 1, RT_TIMEOUT_MS);
    return pid;
}

// stats_of returns pid's counters.
static ra_actor_stats_t
stats_of(ra_runtime_t *rt, ra_pid_t pid)
{
    ra_actor_stats_t st;

    memset(&st, 0, sizeof st);
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    return st;
}

START_TEST(test_bounded_fail_gives_efull_and_keeps_msg)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    blocker_t b;
    ra_pid_t pid = spawn_blocked(rt, &b, 4, RA_FULL_FAIL);
    ra_msg_t *msg;
    ra_actor_stats_t st;

    for (uint32_t i = 0; i < 4; i++) {
        msg = new_u32(TAG_PING, i);
        RA_CK_OK(ra_send(scope, pid, &msg));
        ck_assert_ptr_null(msg);
    }
    msg = new_u32(TAG_PING, 4);
    RA_CK_ERR(ra_send(scope, pid, &msg), RA_EFULL);
    ck_assert_ptr_nonnull(msg);
    ck_assert_uint_eq(msg_u32(msg), 4);          // intact
    RA_CK_ERR(ra_runtime_send(rt, pid, &msg), RA_EFULL);
    ck_assert_ptr_nonnull(msg);
    st = stats_of(rt, pid);
    ck_assert_uint_eq(st.mailbox_len, 4);
    ck_assert_uint_eq(st.dropped, 0);

    atomic_store(&b.hold, false);
    RA_CK_WAIT(atomic_load(&b.handled) == 5, RT_TIMEOUT_MS);
    // Room again: the refused message can be sent as it is.
    RA_CK_OK(ra_send(scope, pid, &msg));
    ck_assert_ptr_null(msg);
    RA_CK_WAIT(atomic_load(&b.handled) == 6, RT_TIMEOUT_MS);
    ra_test_sleep_ms(20);
    ck_assert_int_eq(atomic_load(&b.handled), 6);
    ck_assert_uint_eq(stats_of(rt, pid).mailbox_len, 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_bounded_drop_counts_exactly)
{
    ra_runtime_t *rt = new_rt(2);
    blocker_t b;
    ra_pid_t pid = spawn_blocked(rt, &b, 4, RA_FULL_DROP);
    ra_actor_stats_t st;

    for (uint32_t i = 0; i < 10; i++) {
        ra_msg_t *msg = new_u32(TAG_PING, i);

        RA_CK_OK(ra_runtime_send(rt, pid, &msg));
        ck_assert_ptr_null(msg); // dropped or queued, it is not ours
    }
    st = stats_of(rt, pid);
    ck_assert_uint_eq(st.mailbox_len, 4);
    ck_assert_uint_eq(st.dropped, 6);

    atomic_store(&b.hold, false);
    RA_CK_WAIT(atomic_load(&b.handled) == 5, RT_TIMEOUT_MS);
    ra_test_sleep_ms(50);
    ck_assert_int_eq(atomic_load(&b.handled), 5); // the 6 never arrive
    st = stats_of(rt, pid);
    ck_assert_uint_eq(st.mailbox_len, 0);
    ck_assert_uint_eq(st.dropped, 6);
    ra_runtime_destroy(&rt);
}
END_TEST

// block_sender_t is what the second pthread of the RA_FULL_BLOCK test uses
// and records.
typedef struct block_sender {
    ra_runtime_t *rt;
    ra_pid_t to;
    atomic_int started;
    atomic_int sent;
    atomic_int rc;
} block_sender_t;

// block_sender_main sends one message from its own scope.
static void *
block_sender_main(void *arg)
{
    block_sender_t *bs = arg;
    ra_ctx_t *scope = NULL;
    ra_msg_t *msg = NULL;
    int rc = ra_scope_new(bs->rt, &scope);

    if (rc == 0) {
        rc = ra_msg_new_bytes(&msg, TAG_PING, "blocked", 7);
    }
    atomic_store(&bs->started, 1);
    if (rc == 0) {
        rc = ra_send(scope, bs->to, &msg);
    }
    ra_msg_unref(&msg); // only if the send failed
    atomic_store(&bs->rc, rc);
    atomic_store(&bs->sent, 1);
    ra_scope_destroy(&scope);
    return NULL;
}

START_TEST(test_bounded_block_waits_until_consumed)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    blocker_t b;
    ra_pid_t pid = spawn_blocked(rt, &b, 2, RA_FULL_BLOCK);
    block_sender_t bs;
    pthread_t th;

    for (uint32_t i = 0; i < 2; i++) {
        ra_msg_t *msg = new_u32(TAG_PING, i);

        RA_CK_OK(ra_send(scope, pid, &msg));
    }
    ck_assert_uint_eq(stats_of(rt, pid).mailbox_len, 2);
    memset(&bs, 0, sizeof bs);
    bs.rt = rt;
    bs.to = pid;
    atomic_store(&bs.rc, 1);
    ck_assert_int_eq(pthread_create(&th, NULL, block_sender_main, &bs), 0);
    RA_CK_WAIT(atomic_load(&bs.started) == 1, RT_TIMEOUT_MS);
    ra_test_sleep_ms(200);
    ck_assert_msg(atomic_load(&bs.sent) == 0,
                  "a send to a full RA_FULL_BLOCK mailbox returned %s "
                  "without waiting", ra_err_name(atomic_load(&bs.rc)));
    ck_assert_uint_eq(stats_of(rt, pid).mailbox_len, 2);

    atomic_store(&b.hold, false);
    RA_CK_WAIT(atomic_load(&bs.sent) == 1, RT_TIMEOUT_MS);
    pthread_join(th, NULL);
    RA_CK_OK(atomic_load(&bs.rc));
    RA_CK_WAIT(atomic_load(&b.handled) == 4, RT_TIMEOUT_MS);
    ck_assert_uint_eq(stats_of(rt, pid).dropped, 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// forwarder_t is the state of an actor that, on TAG_GO, sends one message
// to target from its scheduler thread and records the result.
typedef struct forwarder {
    ra_pid_t target;
    atomic_int done;
    atomic_int rc;
} forwarder_t;

static int
forwarder_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    forwarder_t *f = state;
    ra_msg_t *out = NULL;
    int rc;

    if (ra_msg_tag(msg) != TAG_GO) {
        return 0;
    }
    rc = ra_msg_new_bytes(&out, TAG_PING, "from actor", 10);
    if (rc == 0) {
        rc = ra_send(ctx, f->target, &out);
    }
    ra_msg_unref(&out); // ours if the send failed
    atomic_store(&f->rc, rc);
    atomic_store(&f->done, 1);
    return 0;
}

static const ra_behaviour_t forwarder_behaviour = {"forwarder", NULL,
                                                   forwarder_handle, NULL};

START_TEST(test_bounded_block_from_actor_efull)
{
    ra_runtime_t *rt = new_rt(2);
    blocker_t b;
    ra_pid_t pid = spawn_blocked(rt, &b, 1, RA_FULL_BLOCK);
    forwarder_t f;
    ra_pid_t fw;
    ra_msg_t *msg = new_u32(TAG_PING, 0);

    RA_CK_OK(ra_runtime_send(rt, pid, &msg)); // now full
    memset(&f, 0, sizeof f);
    f.target = pid;
    atomic_store(&f.rc, 1);
    fw = spawn_ok(rt, &forwarder_behaviour, &f);
    msg = new_u32(TAG_GO, 0);
    RA_CK_OK(ra_runtime_send(rt, fw, &msg));
    // A scheduler thread must not block: it gets RA_EFULL at once.
    RA_CK_WAIT(atomic_load(&f.done) == 1, 1000);
    RA_CK_ERR(atomic_load(&f.rc), RA_EFULL);
    atomic_store(&b.hold, false);
    RA_CK_WAIT(atomic_load(&b.handled) == 2, RT_TIMEOUT_MS);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- broadcast ----------------------------------------------------------

// sum_handled returns the messages n counters have handled in all.
static int
sum_handled(counter_t *c, int n)
{
    int total = 0;

    for (int i = 0; i < n; i++) {
        total += atomic_load(&c[i].handled);
    }
    return total;
}

START_TEST(test_broadcast_shares_one_payload)
{
    enum { N = 100 };
    ra_runtime_t *rt = new_rt(4);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    counter_t *c = calloc(N, sizeof *c);
    ra_msg_t *msg = NULL;
    uintptr_t orig;

    ck_assert_ptr_nonnull(c);
    RA_CK_OK(ra_msg_new_bytes(&msg, TAG_PING, NULL, 256));
    memset(ra_msg_wdata(msg), 0xab, 256);
    orig = (uintptr_t)ra_msg_data(msg, NULL);
    for (int i = 0; i < N; i++) {
        ra_msg_t *ref;
        ra_pid_t pid;

        counter_init_state(&c[i]);
        pid = spawn_ok(rt, &counter_behaviour, &c[i]);
        ref = ra_msg_ref(msg);
        ck_assert_ptr_eq(ref, msg);
        // Shared now (ref is not sent yet): nobody may write it.
        ck_assert_ptr_null(ra_msg_wdata(msg));
        RA_CK_OK(ra_send(scope, pid, &ref));
        ck_assert_ptr_null(ref);
    }
    RA_CK_WAIT(sum_handled(c, N) == N, RT_TIMEOUT_MS);
    ra_test_sleep_ms(20);
    ck_assert_int_eq(sum_handled(c, N), N); // and no more
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&c[i].handled), 1);
        ck_assert_msg(atomic_load(&c[i].data) == orig,
                      "actor %d saw payload %p, the original is at %p", i,
                      (void *)atomic_load(&c[i].data), (void *)orig);
    }
    ra_msg_unref(&msg);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
    free(c);
}
END_TEST

// ---- runtime shutdown ---------------------------------------------------

START_TEST(test_runtime_destroy_terminates_all_with_shutdown)
{
    enum { N = 1000 };
    ra_runtime_t *rt = new_rt(4);
    counter_t *c = calloc(N, sizeof *c);
    int terminated = 0;

    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), 0);
    for (int i = 0; i < N; i++) {
        counter_init_state(&c[i]);
        spawn_ok(rt, &counter_behaviour, &c[i]);
    }
    ck_assert_uint_eq(ra_runtime_actor_count(rt), N);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(atomic_load(&c[i].terminated), 0);
    }
    ra_runtime_destroy(&rt);
    ck_assert_ptr_null(rt);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(atomic_load(&c[i].terminated) == 1,
                      "actor %d terminated %d times", i,
                      atomic_load(&c[i].terminated));
        RA_CK_REASON_EQ(atomic_load(&c[i].reason), RA_SHUTDOWN);
        terminated += atomic_load(&c[i].terminated);
    }
    ck_assert_int_eq(terminated, N);
    free(c);
}
END_TEST

START_TEST(test_runtime_actor_count_follows_spawn_and_exit)
{
    enum { N = 10 };
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope;
    counter_t c[N];
    ra_pid_t pid[N];

    ck_assert_uint_eq(ra_runtime_actor_count(rt), 0);
    scope = ra_test_new_scope(rt);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), 1); // scopes count too
    for (int i = 0; i < N; i++) {
        counter_init_state(&c[i]);
        pid[i] = spawn_ok(rt, &counter_behaviour, &c[i]);
        ck_assert_uint_eq(ra_runtime_actor_count(rt), (size_t)i + 2);
    }
    for (int i = 0; i < N / 2; i++) {
        ra_msg_t *msg = new_u32(TAG_STOP, 0);

        RA_CK_OK(ra_send(scope, pid[i], &msg));
    }
    RA_CK_WAIT(ra_runtime_actor_count(rt) == N / 2 + 1, RT_TIMEOUT_MS);
    for (int i = 0; i < N; i++) {
        ck_assert(ra_is_alive(rt, pid[i]) == (i >= N / 2));
        ck_assert_int_eq(atomic_load(&c[i].terminated), i < N / 2);
    }
    RA_CK_REASON_EQ(atomic_load(&c[0].reason), RA_NORMAL);
    kill_and_wait(rt, pid[N / 2]);
    RA_CK_WAIT(ra_runtime_actor_count(rt) == N / 2, RT_TIMEOUT_MS);
    ra_scope_destroy(&scope);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), N / 2 - 1);
    ra_runtime_destroy(&rt);
    for (int i = N / 2 + 1; i < N; i++) {
        RA_CK_REASON_EQ(atomic_load(&c[i].reason), RA_SHUTDOWN);
    }
}
END_TEST

START_TEST(test_runtime_destroy_ends_open_scope)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    counter_t c;
    ra_pid_t pid;
    ra_msg_t *msg = ra_test_msg("queued for the scope");

    // The scope has a link, a monitor and a queued message when the
    // runtime goes: destroy ends and frees it all (valgrind checks).
    counter_init_state(&c);
    pid = spawn_ok(rt, &counter_behaviour, &c);
    RA_CK_OK(ra_link(scope, pid));
    {
        uint64_t mref = 0;

        RA_CK_OK(ra_monitor(scope, pid, &mref));
    }
    RA_CK_OK(ra_send(scope, ra_self(scope), &msg));
    ra_runtime_destroy(&rt);
    ck_assert_ptr_null(rt);
    ck_assert_int_eq(atomic_load(&c.terminated), 1);
    RA_CK_REASON_EQ(atomic_load(&c.reason), RA_SHUTDOWN);
}
END_TEST

// ---- scopes -------------------------------------------------------------

START_TEST(test_scope_receive_zero_timeout_polls)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_msg_t *msg = NULL;
    uint64_t t0 = ra_test_now_ms();

    RA_CK_ERR(ra_receive(scope, 0, &msg), RA_ETIMEOUT);
    ck_assert_ptr_null(msg);
    ck_assert_uint_lt(ra_test_now_ms() - t0, 50);
    // A message already queued is returned by a poll.
    msg = new_u32(TAG_PING, 9);
    RA_CK_OK(ra_send(scope, ra_self(scope), &msg));
    t0 = ra_test_now_ms();
    RA_CK_OK(ra_receive(scope, 0, &msg));
    ck_assert_uint_lt(ra_test_now_ms() - t0, 50);
    ck_assert_ptr_nonnull(msg);
    ck_assert_uint_eq(msg_u32(msg), 9);
    ra_msg_unref(&msg);
    RA_CK_ERR(ra_receive(scope, 0, &msg), RA_ETIMEOUT);
    ra_scope_destroy(&scope);
    ck_assert_ptr_null(scope);
    ra_scope_destroy(&scope); // safe on NULL
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_scope_destroy_normal_keeps_linked_actor)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_ctx_t *other;
    counter_t c;
    ra_pid_t pid;
    ra_msg_t *req, *reply = NULL;

    counter_init_state(&c);
    pid = spawn_ok(rt, &counter_behaviour, &c);
    RA_CK_OK(ra_link(scope, pid));
    ck_assert_uint_eq(stats_of(rt, pid).links, 1);
    ra_scope_destroy(&scope);
    // The exit signal (RA_NORMAL) reached the actor and removed the link,
    // and a non-trapping actor ignores RA_NORMAL.
    RA_CK_WAIT(stats_of(rt, pid).links == 0, RT_TIMEOUT_MS);
    ra_test_sleep_ms(50);
    ck_assert(ra_is_alive(rt, pid));
    ck_assert_int_eq(atomic_load(&c.terminated), 0);
    ck_assert_int_eq(atomic_load(&c.exits), 0);
    // And it still works.
    other = ra_test_new_scope(rt);
    req = ra_test_msg("still there?");
    RA_CK_OK(ra_call(other, pid, &req, RT_TIMEOUT_MS, &reply));
    ra_test_msg_is(reply, "counter");
    ra_msg_unref(&reply);
    ra_scope_destroy(&other);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_scope_destroy_trapping_actor_gets_exit_normal)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_spawn_opts_t opts = {RA_SPAWN_TRAP_EXIT, 0, RA_FULL_FAIL};
    counter_t c;
    ra_pid_t pid, me;

    counter_init_state(&c);
    RA_CK_OK(ra_spawn(rt, &counter_behaviour, &c, &opts, &pid));
    ck_assert(stats_of(rt, pid).trap_exit);
    RA_CK_OK(ra_link(scope, pid));
    me = ra_self(scope);
    ra_scope_destroy(&scope);
    RA_CK_WAIT(atomic_load(&c.exits) == 1, RT_TIMEOUT_MS);
    RA_CK_REASON_EQ(atomic_load(&c.exit_reason), RA_NORMAL);
    ck_assert_uint_eq(atomic_load(&c.exit_from_id), me.id);
    ck_assert_uint_eq(atomic_load(&c.exit_from_gen), me.gen);
    ra_test_sleep_ms(50);
    ck_assert_int_eq(atomic_load(&c.exits), 1); // exactly one
    ck_assert(ra_is_alive(rt, pid));
    ck_assert_int_eq(atomic_load(&c.terminated), 0);
    ck_assert_int_eq(atomic_load(&c.handled), 0); // EXIT is not counted
    ck_assert_uint_eq(stats_of(rt, pid).links, 0);
    ra_runtime_destroy(&rt);
}
END_TEST

static Suite *
actor_call_suite(void)
{
    Suite *s = suite_create("actor_call");
    TCase *tc;

    tc = tcase_create("timer");
    tcase_add_test(tc, test_timer_send_after_waits_for_delay);
    tcase_add_test(tc, test_timer_fire_in_deadline_order);
    tcase_add_test(tc, test_timer_cancel_before_firing);
    tcase_add_test(tc, test_timer_cancel_after_firing_enoent);
    tcase_add_test(tc, test_timer_cancel_twice_enoent);
    tcase_add_test(tc, test_timer_cancel_keeps_other_timers);
    tcase_add_test(tc, test_timer_to_dead_pid_dropped);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("call");
    tcase_add_test(tc, test_call_reply_success);
    tcase_add_test(tc, test_call_dead_callee_enoproc_keeps_req);
    tcase_add_test(tc, test_call_callee_exits_instead_of_replying);
    tcase_add_test(tc, test_call_callee_fails_instead_of_replying);
    tcase_add_test(tc, test_call_timeout_then_late_reply_is_discarded);
    tcase_add_test(tc, test_call_late_reply_does_not_answer_next_call);
    tcase_add_test(tc, test_call_deferred_reply_from_other_thread);
    tcase_add_test(tc, test_call_self_edeadlk);
    tcase_add_test(tc, test_call_reply_to_plain_message_einval);
    tcase_add_test(tc, test_call_second_reply_is_harmless);
    tcase_add_test(tc, test_call_invalid_arguments_keep_req);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("nested");
    tcase_add_test(tc, test_call_from_handler_sequential_one_thread);
    tcase_add_test(tc, test_call_from_handler_sequential_two_threads);
    tcase_add_test(tc, test_call_chain_one_thread);
    tcase_add_test(tc, test_call_chain_two_threads);
    tcase_add_test(tc, test_call_to_a_waiting_caller_is_answered_later);
    tcase_add_test(tc, test_supervisor_stops_a_child_waiting_in_a_call);
    tcase_add_test(tc, test_call_to_a_caller_below_fails_at_once);
    tcase_add_test(tc, test_calls_complete_past_the_spare_thread_limit);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounded");
    tcase_add_test(tc, test_bounded_fail_gives_efull_and_keeps_msg);
    tcase_add_test(tc, test_bounded_drop_counts_exactly);
    tcase_add_test(tc, test_bounded_block_waits_until_consumed);
    tcase_add_test(tc, test_bounded_block_from_actor_efull);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("broadcast");
    tcase_add_test(tc, test_broadcast_shares_one_payload);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown");
    tcase_add_test(tc, test_runtime_destroy_terminates_all_with_shutdown);
    tcase_add_test(tc, test_runtime_actor_count_follows_spawn_and_exit);
    tcase_add_test(tc, test_runtime_destroy_ends_open_scope);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("scope");
    tcase_add_test(tc, test_scope_receive_zero_timeout_polls);
    tcase_add_test(tc, test_scope_destroy_normal_keeps_linked_actor);
    tcase_add_test(tc, test_scope_destroy_trapping_actor_gets_exit_normal);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(actor_call_suite());
}

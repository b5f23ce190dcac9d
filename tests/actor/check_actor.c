// check_actor.c - tests of the actor runtime: spawning, sending, exits,
// links, monitors and scheduling.
//
// One Suite, "actor", with one TCase per behaviour group.  Only the public
// header is used.  Callbacks never assert: they record what they saw in
// atomics, or send it to the test's scope, and the test thread asserts.
#include <bson/bson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rayo.h"
#include "testutil.h"

// WAIT_MS bounds the wait for an outcome that must come; QUIET_MS is how
// long a test gives a wrong outcome the chance to show.
#define WAIT_MS 5000
#define QUIET_MS 200

// Tags of the commands the test actors understand.
enum {
    T_ECHO = 0,   // reply to the sender with the same message
    T_FAIL = 1,   // return the payload (an error code) from handle
    T_EXIT = 2,   // ra_exit with the payload, then go on
    T_LINK = 3,   // ra_link to the payload pid; reply with the result
    T_UNLINK = 4, // ra_unlink the payload pid; reply with the result
    T_TRAP = 5,   // ra_trap_exit(payload != 0); reply with the old value
    T_WHO = 6,    // tell report the sender and self pids
    T_SEQ = 7,    // a numbered message for the FIFO check
    T_REPORT = 8, // reply with what the FIFO check saw
    T_SPIN = 9,   // the spinner's message to itself
    T_EXIT2 = 10, // ra_exit twice: RA_SHUTDOWN, then the payload
    T_BSON = 11   // read a BSON document; reply with "name:n"
};

// ---- messages (safe in callbacks: these never assert) -------------------

// new_pids returns a bytes message with tag holding n pids, or NULL.
static ra_msg_t *
new_pids(int32_t tag, const ra_pid_t *pids, size_t n)
{
    ra_msg_t *msg = NULL;

    if (ra_msg_new_bytes(&msg, tag, pids, n * sizeof(*pids)) != 0) {
        return NULL;
    }
    return msg;
}

// get_pid reads the i-th pid of a new_pids message (nil if too short).
static ra_pid_t
get_pid(const ra_msg_t *msg, size_t i)
{
    size_t len = 0;
    const unsigned char *data = ra_msg_data(msg, &len);
    ra_pid_t pid = RA_PID_NIL;

    if (data != NULL && len >= (i + 1) * sizeof pid) {
        memcpy(&pid, data + i * sizeof pid, sizeof pid);
    }
    return pid;
}

// post sends *msg as ctx's actor and frees it if the send failed, so a
// callback never leaks a reply to an actor that has gone.
static int
post(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t *msg)
{
    int rc;

    if (msg == NULL) {
        return RA_ENOMEM;
    }
    rc = ra_send(ctx, to, &msg);
    ra_msg_unref(&msg);
    return rc;
}

// ---- the probe: an actor that obeys commands and records what it saw ----

// A probe's state belongs to the test (it lives on the test's stack and
// outlives the runtime), so terminate frees nothing.
typedef struct probe {
    ra_pid_t report;         // where EXIT, DOWN and T_WHO answers go
    int init_rc;             // what init returns
    pthread_t init_thread;   // the thread init ran on (set before inits)
    ra_pid_t init_self;      // ra_self seen by init (set before inits)
    atomic_int inits;
    atomic_int handled;      // messages handle saw, of any kind
    atomic_int signals;      // RA_MSG_EXIT and RA_MSG_DOWN among them
    atomic_int terminates;
    _Atomic int64_t reason;  // what terminate saw (-1 before)
    atomic_bool after_exit;  // the handler went on after ra_exit
} probe_t;

// probe_reset prepares p for a new probe reporting to report.
static void
probe_reset(probe_t *p, ra_pid_t report)
{
    memset(p, 0, sizeof(*p));
    p->report = report;
    atomic_init(&p->inits, 0);
    atomic_init(&p->handled, 0);
    atomic_init(&p->signals, 0);
    atomic_init(&p->terminates, 0);
    atomic_init(&p->reason, -1);
    atomic_init(&p->after_exit, false);
}

static int
probe_init(ra_ctx_t *ctx, void **state)
{
    probe_t *p = *state;

    p->init_thread = pthread_self();
    p->init_self = ra_self(ctx);
    atomic_fetch_add(&p->inits, 1);
    return p->init_rc;
}

static int
probe_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    probe_t *p = state;
    ra_pid_t who[2];
    int rc;

    atomic_fetch_add(&p->handled, 1);
    if (ra_msg_kind(msg) == RA_MSG_EXIT || ra_msg_kind(msg) == RA_MSG_DOWN) {
        atomic_fetch_add(&p->signals, 1);
        post(ctx, p->report, ra_msg_ref(msg));
        return 0;
    }
    switch (ra_msg_tag(msg)) {
    case T_FAIL:
        return (int)ra_test_get_i64(msg);
    case T_EXIT:
        ra_exit(ctx, ra_test_get_i64(msg));
        atomic_store(&p->after_exit, true);
        return 0;
    case T_EXIT2:
        ra_exit(ctx, RA_SHUTDOWN);
        ra_exit(ctx, ra_test_get_i64(msg));
        atomic_store(&p->after_exit, true);
        return 0;
    case T_LINK:
        rc = ra_link(ctx, get_pid(msg, 0));
        post(ctx, ra_sender(ctx), ra_test_new_i64(T_LINK, rc));
        return 0;
    case T_UNLINK:
        rc = ra_unlink(ctx, get_pid(msg, 0));
        post(ctx, ra_sender(ctx), ra_test_new_i64(T_UNLINK, rc));
        return 0;
    case T_TRAP:
        rc = ra_trap_exit(ctx, ra_test_get_i64(msg) != 0);
        post(ctx, ra_sender(ctx), ra_test_new_i64(T_TRAP, rc));
        return 0;
    case T_WHO:
        who[0] = ra_sender(ctx);
        who[1] = ra_self(ctx);
        post(ctx, p->report, new_pids(T_WHO, who, 2));
        return 0;
    default:
        post(ctx, ra_sender(ctx), ra_msg_ref(msg));
        return 0;
    }
}

static void
probe_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    probe_t *p = state;

    (void)ctx;
    atomic_store(&p->reason, reason);
    atomic_fetch_add(&p->terminates, 1);
}

static const ra_behaviour_t probe_behaviour = {
    "probe", probe_init, probe_handle, probe_terminate};

// ---- test-side helpers (test thread only: these assert) -----------------

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

// spawn_probe spawns a probe on p with the given spawn flags.
static ra_pid_t
spawn_probe(ra_runtime_t *rt, probe_t *p, unsigned flags)
{
    ra_spawn_opts_t opts = {.flags = flags};
    ra_pid_t pid = RA_PID_NIL;

    RA_CK_OK(ra_spawn(rt, &probe_behaviour, p, &opts, &pid));
    ck_assert(!ra_pid_is_nil(pid));
    return pid;
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

// cmd_pid sends the command tag with pid arg from the scope to pid.
static void
cmd_pid(ra_ctx_t *ctx, ra_pid_t to, int32_t tag, ra_pid_t arg)
{
    ra_msg_t *msg = new_pids(tag, &arg, 1);

    ck_assert_ptr_nonnull(msg);
    RA_CK_OK(ra_send(ctx, to, &msg));
    ck_assert_ptr_null(msg);
}

// recv waits for the scope's next message, which must come.
static ra_msg_t *
recv_msg(ra_ctx_t *ctx)
{
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_receive(ctx, WAIT_MS, &msg));
    ck_assert_ptr_nonnull(msg);
    return msg;
}

// recv_reply waits for a bytes reply with tag and returns its value.
static int64_t
recv_reply(ra_ctx_t *ctx, int32_t tag)
{
    ra_msg_t *msg = recv_msg(ctx);
    int kind = ra_msg_kind(msg);
    int32_t got = ra_msg_tag(msg);
    int64_t v = ra_test_get_i64(msg);

    ra_msg_unref(&msg);
    ck_assert_int_eq(kind, RA_MSG_BYTES);
    ck_assert_int_eq(got, tag);
    return v;
}

// expect_down waits for the next message, which must be the DOWN of mref
// for pid with reason.
static void
expect_down(ra_ctx_t *ctx, uint64_t mref, ra_pid_t pid, ra_reason_t reason)
{
    ra_msg_t *msg = recv_msg(ctx);
    int kind = ra_msg_kind(msg);
    uint64_t got_ref = 0;
    ra_pid_t got_pid = RA_PID_NIL;
    ra_reason_t got_reason = -1;
    int rc = ra_msg_down_info(msg, &got_ref, &got_pid, &got_reason);

    ra_msg_unref(&msg);
    ck_assert_int_eq(kind, RA_MSG_DOWN);
    RA_CK_OK(rc);
    ck_assert_uint_eq(got_ref, mref);
    RA_CK_PID_EQ(got_pid, pid);
    RA_CK_REASON_EQ(got_reason, reason);
}

// expect_exit waits for the next message, which must be an RA_MSG_EXIT
// from from with reason (received directly or forwarded by a probe).
static void
expect_exit(ra_ctx_t *ctx, ra_pid_t from, ra_reason_t reason)
{
    ra_msg_t *msg = recv_msg(ctx);
    int kind = ra_msg_kind(msg);
    ra_pid_t got_from = RA_PID_NIL;
    ra_reason_t got_reason = -1;
    int rc = ra_msg_exit_info(msg, &got_from, &got_reason);

    ra_msg_unref(&msg);
    ck_assert_int_eq(kind, RA_MSG_EXIT);
    RA_CK_OK(rc);
    RA_CK_PID_EQ(got_from, from);
    RA_CK_REASON_EQ(got_reason, reason);
}

// expect_quiet asserts that nothing arrives at the scope within ms.
static void
expect_quiet(ra_ctx_t *ctx, int64_t ms)
{
    ra_msg_t *msg = NULL;
    int rc = ra_receive(ctx, ms, &msg);
    int kind = msg != NULL ? (int)ra_msg_kind(msg) : 0;
    int32_t tag = msg != NULL ? ra_msg_tag(msg) : 0;

    ra_msg_unref(&msg);
    ck_assert_msg(rc == RA_ETIMEOUT,
                  "expected nothing within %d ms, got %s (kind %d, tag %d)",
                  (int)ms, ra_err_name(rc), kind, (int)tag);
}

// expect_echo checks that pid is alive and answering: a "ping" comes back
// from it.
static void
expect_echo(ra_ctx_t *ctx, ra_pid_t pid)
{
    ra_msg_t *msg = ra_test_msg("ping");

    RA_CK_OK(ra_send(ctx, pid, &msg));
    msg = recv_msg(ctx);
    RA_CK_PID_EQ(ra_sender(ctx), pid);
    ra_test_msg_is(msg, "ping");
    ra_msg_unref(&msg);
}

// end_probe stops pid with reason and waits until it has ended (its DOWN
// came).
static void
end_probe(ra_ctx_t *ctx, ra_pid_t pid, ra_reason_t reason)
{
    uint64_t mref = 0;

    RA_CK_OK(ra_monitor(ctx, pid, &mref));
    cmd(ctx, pid, T_EXIT, reason);
    expect_down(ctx, mref, pid, reason);
    ck_assert(!ra_is_alive(ra_ctx_runtime(ctx), pid));
}

// ---- runtime ------------------------------------------------------------

START_TEST(test_actor_runtime_new_destroy_threads)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned want[3] = {1, 2, online > 0 ? (unsigned)online : 1};
    unsigned ask[3] = {1, 2, 0};

    for (int i = 0; i < 3; i++) {
        ra_runtime_t *rt = new_rt(ask[i]);

        ck_assert_uint_eq(ra_runtime_threads(rt), want[i]);
        ck_assert_uint_eq(ra_runtime_actor_count(rt), 0);
        ra_runtime_destroy(&rt);
        ck_assert_ptr_null(rt);
        ra_runtime_destroy(&rt);    // safe on NULL
    }
}
END_TEST

START_TEST(test_actor_runtime_null_opts_default)
{
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    ra_runtime_t *rt = NULL;

    RA_CK_OK(ra_runtime_new(&rt, NULL));
    ck_assert_ptr_nonnull(rt);
    ck_assert_uint_eq(ra_runtime_threads(rt),
                      online > 0 ? (unsigned)online : 1);
    ra_runtime_destroy(&rt);
    ck_assert_ptr_null(rt);
    ra_runtime_destroy(NULL);
}
END_TEST

START_TEST(test_actor_runtime_too_many_threads_einval)
{
    ra_runtime_opts_t opts = {.threads = 1025};
    ra_runtime_t *rt = NULL;

    RA_CK_ERR(ra_runtime_new(&rt, &opts), RA_EINVAL);
    ck_assert_ptr_null(rt);
    opts.threads = 100000;
    RA_CK_ERR(ra_runtime_new(&rt, &opts), RA_EINVAL);
    ck_assert_ptr_null(rt);
    RA_CK_ERR(ra_runtime_new(NULL, NULL), RA_EINVAL);
}
END_TEST

// ---- spawn --------------------------------------------------------------

START_TEST(test_actor_spawn_runs_init_synchronously)
{
    ra_runtime_t *rt = new_rt(2);
    probe_t p;
    ra_pid_t pid;

    probe_reset(&p, RA_PID_NIL);
    pid = spawn_probe(rt, &p, 0);
    // No waiting: init has run, on this thread, as the new actor.
    ck_assert_int_eq(atomic_load(&p.inits), 1);
    ck_assert(pthread_equal(p.init_thread, pthread_self()));
    RA_CK_PID_EQ(p.init_self, pid);
    ck_assert(ra_is_alive(rt, pid));
    ck_assert_uint_eq(ra_runtime_actor_count(rt), 1);
    ck_assert_int_eq(atomic_load(&p.terminates), 0);
    ra_runtime_destroy(&rt);
    // Destroying the runtime ends the actor with RA_SHUTDOWN.
    ck_assert_int_eq(atomic_load(&p.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&p.reason), RA_SHUTDOWN);
}
END_TEST

START_TEST(test_actor_spawn_returns_init_error)
{
    ra_runtime_t *rt = new_rt(2);
    ra_spawn_opts_t opts = {0};
    probe_t p;
    ra_pid_t pid = RA_PID_NIL;

    probe_reset(&p, RA_PID_NIL);
    p.init_rc = RA_EBADMSG;
    RA_CK_ERR(ra_spawn(rt, &probe_behaviour, &p, &opts, &pid), RA_EBADMSG);
    ck_assert_int_eq(atomic_load(&p.inits), 1);
    ck_assert_int_eq(atomic_load(&p.handled), 0);
    if (!ra_pid_is_nil(pid)) {
        ck_assert(!ra_is_alive(rt, pid));
    }
    ck_assert_uint_eq(ra_runtime_actor_count(rt), 0);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_spawn_monitor_sees_init_error)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_spawn_opts_t opts = {.flags = RA_SPAWN_MONITOR};
    probe_t p;
    ra_pid_t pid = RA_PID_NIL;
    uint64_t mref = 0;
    ra_msg_t *msg;
    ra_pid_t down_pid = RA_PID_NIL;
    uint64_t down_ref = 0;
    ra_reason_t reason = -1;

    probe_reset(&p, ra_self(scope));
    p.init_rc = RA_EBADMSG;
    RA_CK_ERR(ra_spawn_from(scope, &probe_behaviour, &p, &opts, &pid, &mref),
              RA_EBADMSG);
    // The monitor was set up before init ran, so it fires.
    msg = recv_msg(scope);
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_DOWN);
    RA_CK_OK(ra_msg_down_info(msg, &down_ref, &down_pid, &reason));
    ra_msg_unref(&msg);
    ck_assert_uint_eq(down_ref, mref);
    RA_CK_REASON_EQ(reason, RA_EBADMSG);
    if (!ra_pid_is_nil(pid)) {
        RA_CK_PID_EQ(down_pid, pid);
    }
    expect_quiet(scope, QUIET_MS);
    ra_scope_destroy(&scope);
    ck_assert_ptr_null(scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_spawn_null_handle_einval)
{
    static const ra_behaviour_t no_handle = {"no-handle", probe_init, NULL,
                                             probe_terminate};
    ra_runtime_t *rt = new_rt(1);
    probe_t p;
    ra_pid_t pid = RA_PID_NIL;

    probe_reset(&p, RA_PID_NIL);
    RA_CK_ERR(ra_spawn(rt, &no_handle, &p, NULL, &pid), RA_EINVAL);
    RA_CK_ERR(ra_spawn(rt, NULL, &p, NULL, &pid), RA_EINVAL);
    RA_CK_ERR(ra_spawn(NULL, &probe_behaviour, &p, NULL, &pid), RA_EINVAL);
    ck_assert_int_eq(atomic_load(&p.inits), 0);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), 0);
    ra_runtime_destroy(&rt);
    ck_assert_int_eq(atomic_load(&p.terminates), 0);
}
END_TEST

START_TEST(test_actor_spawn_link_without_ctx_einval)
{
    ra_runtime_t *rt = new_rt(1);
    ra_spawn_opts_t opts = {.flags = RA_SPAWN_LINK};
    probe_t p;
    ra_pid_t pid = RA_PID_NIL;

    probe_reset(&p, RA_PID_NIL);
    RA_CK_ERR(ra_spawn(rt, &probe_behaviour, &p, &opts, &pid), RA_EINVAL);
    opts.flags = RA_SPAWN_MONITOR;
    RA_CK_ERR(ra_spawn(rt, &probe_behaviour, &p, &opts, &pid), RA_EINVAL);
    opts.flags = RA_SPAWN_LINK | RA_SPAWN_MONITOR;
    RA_CK_ERR(ra_spawn(rt, &probe_behaviour, &p, &opts, &pid), RA_EINVAL);
    // Refused before anything ran.
    ck_assert_int_eq(atomic_load(&p.inits), 0);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), 0);
    ra_runtime_destroy(&rt);
    ck_assert_int_eq(atomic_load(&p.terminates), 0);
}
END_TEST

START_TEST(test_actor_spawn_trap_exit_flag)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t trapping;
    probe_t plain;
    ra_pid_t t_pid;
    ra_pid_t p_pid;

    probe_reset(&trapping, ra_self(scope));
    probe_reset(&plain, ra_self(scope));
    t_pid = spawn_probe(rt, &trapping, RA_SPAWN_TRAP_EXIT);
    p_pid = spawn_probe(rt, &plain, 0);
    RA_CK_OK(ra_actor_stats(rt, t_pid, &st));
    ck_assert(st.trap_exit);
    RA_CK_OK(ra_actor_stats(rt, p_pid, &st));
    ck_assert(!st.trap_exit);

    // The flag works: an exit signal becomes a message for the trapping
    // one and ends the other.
    RA_CK_OK(ra_exit_pid(scope, t_pid, RA_REASON_USER + 1));
    expect_exit(scope, ra_self(scope), RA_REASON_USER + 1);
    ck_assert(ra_is_alive(rt, t_pid));
    {
        uint64_t mref = 0;

        RA_CK_OK(ra_monitor(scope, p_pid, &mref));
        RA_CK_OK(ra_exit_pid(scope, p_pid, RA_REASON_USER + 1));
        expect_down(scope, mref, p_pid, RA_REASON_USER + 1);
    }
    ck_assert_int_eq(atomic_load(&plain.signals), 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_trap_exit_returns_previous)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t p;
    ra_pid_t pid;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, RA_SPAWN_TRAP_EXIT);
    cmd(scope, pid, T_TRAP, 0);
    ck_assert_int_eq(recv_reply(scope, T_TRAP), 1);
    cmd(scope, pid, T_TRAP, 0);
    ck_assert_int_eq(recv_reply(scope, T_TRAP), 0);
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert(!st.trap_exit);
    cmd(scope, pid, T_TRAP, 1);
    ck_assert_int_eq(recv_reply(scope, T_TRAP), 0);
    cmd(scope, pid, T_TRAP, 1);
    ck_assert_int_eq(recv_reply(scope, T_TRAP), 1);
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert(st.trap_exit);

    // A scope starts without trapping.
    ck_assert(!ra_trap_exit(scope, true));
    ck_assert(ra_trap_exit(scope, true));
    RA_CK_OK(ra_actor_stats(rt, ra_self(scope), &st));
    ck_assert(st.trap_exit);
    ck_assert(ra_trap_exit(scope, false));
    ck_assert(!ra_trap_exit(scope, false));
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- send ---------------------------------------------------------------

START_TEST(test_actor_send_receive_echo)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    for (int i = 0; i < 3; i++) {
        expect_echo(scope, pid);
    }
    ck_assert_int_eq(atomic_load(&p.handled), 3);
    expect_quiet(scope, 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_send_sender_identity)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    ra_msg_t *msg;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    ck_assert(!ra_pid_is_nil(ra_self(scope)));
    ck_assert(!ra_pid_eq(ra_self(scope), pid));

    // From the scope: the handler sees the scope's pid.
    cmd(scope, pid, T_WHO, 0);
    msg = recv_msg(scope);
    ck_assert_int_eq(ra_msg_tag(msg), T_WHO);
    RA_CK_PID_EQ(get_pid(msg, 0), ra_self(scope));
    RA_CK_PID_EQ(get_pid(msg, 1), pid);
    RA_CK_PID_EQ(ra_sender(scope), pid);
    ra_msg_unref(&msg);

    // From outside any actor: the sender is nil.
    msg = ra_test_new_i64(T_WHO, 0);
    RA_CK_OK(ra_runtime_send(rt, pid, &msg));
    ck_assert_ptr_null(msg);
    msg = recv_msg(scope);
    ck_assert_int_eq(ra_msg_tag(msg), T_WHO);
    ck_assert(ra_pid_is_nil(get_pid(msg, 0)));
    RA_CK_PID_EQ(get_pid(msg, 1), pid);
    ra_msg_unref(&msg);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_send_to_dead_pid_enoproc)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    ra_msg_t *msg;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    end_probe(scope, pid, RA_NORMAL);

    msg = ra_test_msg("lost");
    RA_CK_ERR(ra_send(scope, pid, &msg), RA_ENOPROC);
    ck_assert_ptr_nonnull(msg);     // the failure left ownership with us
    ra_test_msg_is(msg, "lost");
    RA_CK_ERR(ra_runtime_send(rt, pid, &msg), RA_ENOPROC);
    ck_assert_ptr_nonnull(msg);
    ra_test_msg_is(msg, "lost");
    // A pid that never existed fails the same way.
    RA_CK_ERR(ra_send(scope, RA_PID_NIL, &msg), RA_ENOPROC);
    ck_assert_ptr_nonnull(msg);
    ra_msg_unref(&msg);
    ck_assert_int_eq(atomic_load(&p.handled), 1);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_send_stale_pid_after_slot_reuse)
{
    enum { ROUNDS = 4, MANY = 200 };
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t first;
    probe_t others;
    ra_pid_t old[ROUNDS];
    ra_msg_t *msg;

    probe_reset(&first, ra_self(scope));
    probe_reset(&others, ra_self(scope));
    // Several short lives, which tend to reuse one slot again and again.
    for (int r = 0; r < ROUNDS; r++) {
        old[r] = spawn_probe(rt, &first, 0);
        for (int k = 0; k < r; k++) {
            ck_assert(!ra_pid_eq(old[r], old[k]));
        }
        end_probe(scope, old[r], RA_NORMAL);
    }
    // The freed slots go to some of these, under new generations.
    for (int i = 0; i < MANY; i++) {
        ra_pid_t pid = spawn_probe(rt, &others, 0);

        for (int r = 0; r < ROUNDS; r++) {
            ck_assert(!ra_pid_eq(pid, old[r]));
        }
    }
    msg = ra_test_msg("stale");
    for (int r = 0; r < ROUNDS; r++) {
        ck_assert(!ra_is_alive(rt, old[r]));
        RA_CK_ERR(ra_send(scope, old[r], &msg), RA_ENOPROC);
        ck_assert_ptr_nonnull(msg);
        RA_CK_ERR(ra_runtime_send(rt, old[r], &msg), RA_ENOPROC);
        ck_assert_ptr_nonnull(msg);
        RA_CK_ERR(ra_exit_pid(scope, old[r], RA_KILL), RA_ENOPROC);
    }
    ra_msg_unref(&msg);
    // Nobody else got anything: no actor handled a message, nobody died.
    expect_quiet(scope, QUIET_MS);
    ck_assert_int_eq(atomic_load(&others.handled), 0);
    ck_assert_int_eq(atomic_load(&others.terminates), 0);
    ck_assert_int_eq(atomic_load(&first.terminates), ROUNDS);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), MANY + 1);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
    ck_assert_int_eq(atomic_load(&others.terminates), MANY);
}
END_TEST

// The FIFO checker: counts T_SEQ messages, remembers the first one out of
// order, and answers T_REPORT with both.
typedef struct fifo {
    int64_t next;   // the number expected next
    int64_t bad;    // the first position out of order, or -1
} fifo_t;

static int
fifo_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    fifo_t *f = state;
    int64_t v = ra_test_get_i64(msg);
    int64_t out[2];
    ra_msg_t *reply = NULL;

    if (ra_msg_tag(msg) == T_SEQ) {
        if (v != f->next && f->bad < 0) {
            f->bad = f->next;
        }
        f->next++;
        return 0;
    }
    out[0] = f->next;
    out[1] = f->bad;
    if (ra_msg_new_bytes(&reply, T_REPORT, out, sizeof out) == 0) {
        post(ctx, ra_sender(ctx), reply);
    }
    return 0;
}

static const ra_behaviour_t fifo_behaviour = {"fifo", NULL, fifo_handle,
                                              NULL};

START_TEST(test_actor_send_fifo_per_sender)
{
    size_t n = ra_test_scaled(100000);
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    fifo_t f = {0, -1};
    ra_pid_t pid;
    ra_msg_t *msg;
    int64_t out[2];
    size_t len = 0;

    RA_CK_OK(ra_spawn(rt, &fifo_behaviour, &f, NULL, &pid));
    for (size_t i = 0; i < n; i++) {
        cmd(scope, pid, T_SEQ, (int64_t)i);
    }
    cmd(scope, pid, T_REPORT, 0);
    msg = recv_msg(scope);
    ck_assert_int_eq(ra_msg_tag(msg), T_REPORT);
    ck_assert_ptr_nonnull(ra_msg_data(msg, &len));
    ck_assert_uint_eq(len, sizeof out);
    memcpy(out, ra_msg_data(msg, NULL), sizeof out);
    ra_msg_unref(&msg);
    ck_assert_int_eq(out[0], (int64_t)n);
    ck_assert_msg(out[1] < 0, "message %" PRId64 " of %zu arrived out of "
                  "order", out[1], n);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// The BSON reader: answers T_BSON with "name:n" read from the document.
static int
bson_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    const bson_t *doc = ra_msg_bson(msg);
    const char *name = "?";
    int32_t n = -1;
    bson_iter_t it;
    char buf[64];
    ra_msg_t *reply = NULL;

    (void)state;
    if (doc == NULL || ra_msg_kind(msg) != RA_MSG_BSON) {
        return RA_EBADMSG;
    }
    if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it)) {
        name = bson_iter_utf8(&it, NULL);
    }
    if (bson_iter_init_find(&it, doc, "n") && BSON_ITER_HOLDS_INT32(&it)) {
        n = bson_iter_int32(&it);
    }
    snprintf(buf, sizeof buf, "%s:%d", name, (int)n);
    if (ra_msg_new_bytes(&reply, ra_msg_tag(msg), buf, strlen(buf)) == 0) {
        post(ctx, ra_sender(ctx), reply);
    }
    return 0;
}

static const ra_behaviour_t bson_behaviour = {"bson", NULL, bson_handle,
                                              NULL};

START_TEST(test_actor_send_bson_payload)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    bson_t *doc = bson_new();
    ra_msg_t *msg = NULL;
    ra_pid_t pid;
    uint64_t mref = 0;

    RA_CK_OK(ra_spawn(rt, &bson_behaviour, NULL, NULL, &pid));
    ck_assert(BSON_APPEND_UTF8(doc, "name", "rayo"));
    ck_assert(BSON_APPEND_INT32(doc, "n", 42));
    RA_CK_OK(ra_msg_new_bson(&msg, T_BSON, doc));
    bson_destroy(doc);              // the message holds its own copy
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_BSON);
    RA_CK_OK(ra_send(scope, pid, &msg));
    ck_assert_ptr_null(msg);
    msg = recv_msg(scope);
    ck_assert_int_eq(ra_msg_tag(msg), T_BSON);
    ra_test_msg_is(msg, "rayo:42");
    ra_msg_unref(&msg);

    // A bytes message is not a document: the handler's error ends it.
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    msg = ra_test_msg("not bson");
    RA_CK_OK(ra_send(scope, pid, &msg));
    expect_down(scope, mref, pid, RA_EBADMSG);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- scheduling ---------------------------------------------------------

// The spinner sends itself a message from each handle until stop is set,
// so it is always runnable.
typedef struct spinner {
    atomic_bool stop;
    atomic_long spins;
} spinner_t;

static int
spinner_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    spinner_t *s = state;

    (void)msg;
    atomic_fetch_add(&s->spins, 1);
    if (!atomic_load(&s->stop)) {
        post(ctx, ra_self(ctx), ra_test_new_i64(T_SPIN, 0));
    }
    return 0;
}

static const ra_behaviour_t spinner_behaviour = {"spinner", NULL,
                                                 spinner_handle, NULL};

START_TEST(test_actor_sched_quantum_fairness)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    spinner_t s;
    probe_t p;
    ra_pid_t spin_pid;
    ra_pid_t pid;
    ra_msg_t *msg = NULL;
    uint64_t t0;
    uint64_t took;
    int rc;

    atomic_init(&s.stop, false);
    atomic_init(&s.spins, 0);
    probe_reset(&p, ra_self(scope));
    RA_CK_OK(ra_spawn(rt, &spinner_behaviour, &s, NULL, &spin_pid));
    cmd(scope, spin_pid, T_SPIN, 0);
    // The only scheduler thread is busy with the spinner from now on.
    RA_CK_WAIT(atomic_load(&s.spins) > 1000, WAIT_MS);
    pid = spawn_probe(rt, &p, 0);
    msg = ra_test_msg("ping");
    t0 = ra_test_now_ms();
    RA_CK_OK(ra_send(scope, pid, &msg));
    rc = ra_receive(scope, 2000, &msg);
    took = ra_test_now_ms() - t0;
    // Stop the spinner before asserting, so a failure still shuts down.
    atomic_store(&s.stop, true);
    ck_assert_msg(rc == 0, "no answer while another actor spins: %s after "
                  "%" PRIu64 " ms", ra_err_name(rc), took);
    ra_test_msg_is(msg, "ping");
    ra_msg_unref(&msg);
    ck_assert(atomic_load(&s.spins) > 1000);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// The gate blocks its first handle until the test opens it.
typedef struct gate {
    atomic_bool entered;
    atomic_bool open;
    atomic_int handled;
    atomic_int terminates;
    _Atomic int64_t reason;
} gate_t;

static int
gate_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    gate_t *g = state;

    (void)ctx;
    (void)msg;
    if (atomic_fetch_add(&g->handled, 1) == 0) {
        atomic_store(&g->entered, true);
        while (!atomic_load(&g->open)) {
            ra_test_sleep_ms(1);
        }
    }
    return 0;
}

static void
gate_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    gate_t *g = state;

    (void)ctx;
    atomic_store(&g->reason, reason);
    atomic_fetch_add(&g->terminates, 1);
}

static const ra_behaviour_t gate_behaviour = {"gate", NULL, gate_handle,
                                              gate_terminate};

START_TEST(test_actor_sched_system_lane_overtakes_backlog)
{
    enum { BACKLOG = 1000 };
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    gate_t g;
    ra_pid_t pid;
    uint64_t mref = 0;
    int rc;

    atomic_init(&g.entered, false);
    atomic_init(&g.open, false);
    atomic_init(&g.handled, 0);
    atomic_init(&g.terminates, 0);
    atomic_init(&g.reason, -1);
    RA_CK_OK(ra_spawn(rt, &gate_behaviour, &g, NULL, &pid));
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    cmd(scope, pid, T_ECHO, 0);
    RA_CK_WAIT(atomic_load(&g.entered), WAIT_MS);
    // The gate is stuck in its first message: queue a backlog behind it,
    // then the exit signal.
    for (int i = 0; i < BACKLOG; i++) {
        cmd(scope, pid, T_ECHO, i);
    }
    rc = ra_exit_pid(scope, pid, RA_REASON_USER + 11);
    atomic_store(&g.open, true);
    RA_CK_OK(rc);
    expect_down(scope, mref, pid, RA_REASON_USER + 11);
    ck_assert_int_eq(atomic_load(&g.handled), 1);
    ck_assert_int_eq(atomic_load(&g.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&g.reason), RA_REASON_USER + 11);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- exit ---------------------------------------------------------------

START_TEST(test_actor_exit_handler_error_ends_actor)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    cmd(scope, pid, T_FAIL, RA_ENOENT);
    // Never handled (the send itself may already fail: not checked).
    post(scope, pid, ra_test_new_i64(T_ECHO, 0));
    expect_down(scope, mref, pid, RA_ENOENT);
    ck_assert(!ra_is_alive(rt, pid));
    ck_assert_int_eq(atomic_load(&p.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&p.reason), RA_ENOENT);
    expect_quiet(scope, QUIET_MS);
    ck_assert_int_eq(atomic_load(&p.terminates), 1);
    ck_assert_int_eq(atomic_load(&p.handled), 1);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
    // Not a second time at shutdown either.
    ck_assert_int_eq(atomic_load(&p.terminates), 1);
}
END_TEST

START_TEST(test_actor_exit_after_callback)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    cmd(scope, pid, T_EXIT, RA_REASON_USER + 7);
    // Never handled (the send itself may already fail: not checked).
    post(scope, pid, ra_test_new_i64(T_ECHO, 0));
    expect_down(scope, mref, pid, RA_REASON_USER + 7);
    // The callback ran to its end, and the actor ended right after it.
    ck_assert(atomic_load(&p.after_exit));
    ck_assert_int_eq(atomic_load(&p.handled), 1);
    ck_assert_int_eq(atomic_load(&p.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&p.reason), RA_REASON_USER + 7);
    expect_quiet(scope, QUIET_MS);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
    ck_assert_int_eq(atomic_load(&p.terminates), 1);
}
END_TEST

START_TEST(test_actor_exit_last_reason_wins)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    cmd(scope, pid, T_EXIT2, RA_REASON_USER + 8);
    expect_down(scope, mref, pid, RA_REASON_USER + 8);
    ck_assert_int_eq(atomic_load(&p.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&p.reason), RA_REASON_USER + 8);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- links --------------------------------------------------------------

// link_probes makes probe a link itself to b and waits until it has.
static void
link_probes(ra_ctx_t *scope, ra_pid_t a, ra_pid_t b)
{
    cmd_pid(scope, a, T_LINK, b);
    RA_CK_OK((int)recv_reply(scope, T_LINK));
}

START_TEST(test_actor_link_crash_propagates)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t pa;
    probe_t pb;
    ra_pid_t a;
    ra_pid_t b;
    uint64_t mref = 0;

    probe_reset(&pa, ra_self(scope));
    probe_reset(&pb, ra_self(scope));
    a = spawn_probe(rt, &pa, 0);
    b = spawn_probe(rt, &pb, 0);
    link_probes(scope, a, b);
    RA_CK_OK(ra_actor_stats(rt, b, &st));
    ck_assert_uint_eq(st.links, 1);
    RA_CK_OK(ra_monitor(scope, b, &mref));
    cmd(scope, a, T_FAIL, RA_ENOENT);
    expect_down(scope, mref, b, RA_ENOENT);
    ck_assert(!ra_is_alive(rt, a));
    ck_assert_int_eq(atomic_load(&pb.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&pb.reason), RA_ENOENT);
    RA_CK_REASON_EQ(atomic_load(&pa.reason), RA_ENOENT);
    ck_assert_int_eq(atomic_load(&pb.signals), 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_normal_exit_spares_linked)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t pa;
    probe_t pb;
    ra_pid_t a;
    ra_pid_t b;
    uint64_t mref = 0;

    probe_reset(&pa, ra_self(scope));
    probe_reset(&pb, ra_self(scope));
    a = spawn_probe(rt, &pa, 0);
    b = spawn_probe(rt, &pb, 0);
    link_probes(scope, a, b);
    RA_CK_OK(ra_monitor(scope, a, &mref));
    cmd(scope, a, T_EXIT, RA_NORMAL);
    expect_down(scope, mref, a, RA_NORMAL);
    expect_quiet(scope, QUIET_MS);
    ck_assert(ra_is_alive(rt, b));
    expect_echo(scope, b);
    ck_assert_int_eq(atomic_load(&pb.terminates), 0);
    ck_assert_int_eq(atomic_load(&pb.signals), 0);
    // The link went with a.
    RA_CK_OK(ra_actor_stats(rt, b, &st));
    ck_assert_uint_eq(st.links, 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_trapping_gets_exit_message)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t pa;
    probe_t pb;
    ra_pid_t a;
    ra_pid_t b;

    probe_reset(&pa, ra_self(scope));
    probe_reset(&pb, ra_self(scope));
    a = spawn_probe(rt, &pa, 0);
    b = spawn_probe(rt, &pb, RA_SPAWN_TRAP_EXIT);
    link_probes(scope, a, b);
    cmd(scope, a, T_EXIT, RA_REASON_USER + 3);
    // b forwards the EXIT message it got to the scope.
    expect_exit(scope, a, RA_REASON_USER + 3);
    RA_CK_PID_EQ(ra_sender(scope), b);
    ck_assert_int_eq(atomic_load(&pb.signals), 1);
    ck_assert(ra_is_alive(rt, b));
    expect_echo(scope, b);
    ck_assert_int_eq(atomic_load(&pb.terminates), 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_scope_traps_exit)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_spawn_opts_t opts = {.flags = RA_SPAWN_LINK};
    probe_t p;
    ra_pid_t pid;

    probe_reset(&p, ra_self(scope));
    ck_assert(!ra_trap_exit(scope, true));
    RA_CK_OK(ra_spawn_from(scope, &probe_behaviour, &p, &opts, &pid, NULL));
    cmd(scope, pid, T_EXIT, RA_REASON_USER + 4);
    expect_exit(scope, pid, RA_REASON_USER + 4);
    ck_assert(ra_scope_exit_reason(scope) == -1);
    expect_quiet(scope, 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_kill_becomes_killed)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_spawn_opts_t opts = {
        .flags = RA_SPAWN_LINK | RA_SPAWN_MONITOR | RA_SPAWN_TRAP_EXIT};
    probe_t pv;
    probe_t pw;
    ra_pid_t v;
    ra_pid_t w;
    uint64_t v_ref = 0;
    uint64_t w_ref = 0;
    int v_downs = 0;
    int w_downs = 0;
    int exits = 0;

    probe_reset(&pv, ra_self(scope));
    probe_reset(&pw, ra_self(scope));
    ra_trap_exit(scope, true);
    // v traps exits and is linked to the scope (trapping) and to w (not).
    RA_CK_OK(ra_spawn_from(scope, &probe_behaviour, &pv, &opts, &v,
                           &v_ref));
    w = spawn_probe(rt, &pw, 0);
    link_probes(scope, w, v);
    RA_CK_OK(ra_monitor(scope, w, &w_ref));

    RA_CK_OK(ra_exit_pid(scope, v, RA_KILL));
    for (int i = 0; i < 3; i++) {
        ra_msg_t *msg = recv_msg(scope);
        ra_pid_t pid = RA_PID_NIL;
        ra_reason_t reason = -1;
        uint64_t ref = 0;

        if (ra_msg_kind(msg) == RA_MSG_EXIT) {
            RA_CK_OK(ra_msg_exit_info(msg, &pid, &reason));
            RA_CK_PID_EQ(pid, v);
            exits++;
        } else {
            ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_DOWN);
            RA_CK_OK(ra_msg_down_info(msg, &ref, &pid, &reason));
            if (ref == v_ref) {
                RA_CK_PID_EQ(pid, v);
                v_downs++;
            } else {
                ck_assert_uint_eq(ref, w_ref);
                RA_CK_PID_EQ(pid, w);
                w_downs++;
            }
        }
        ra_msg_unref(&msg);
        RA_CK_REASON_EQ(reason, RA_KILLED);
    }
    ck_assert_int_eq(exits, 1);
    ck_assert_int_eq(v_downs, 1);
    ck_assert_int_eq(w_downs, 1);
    // Trapping did not help v, and terminate still ran.
    ck_assert_int_eq(atomic_load(&pv.signals), 0);
    ck_assert_int_eq(atomic_load(&pv.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&pv.reason), RA_KILLED);
    ck_assert_int_eq(atomic_load(&pw.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&pw.reason), RA_KILLED);
    ck_assert(ra_scope_exit_reason(scope) == -1);
    expect_quiet(scope, QUIET_MS);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_self_kill_seen_as_killed)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t px;
    probe_t pw;
    probe_t pt;
    ra_pid_t x;
    ra_pid_t w;
    ra_pid_t t;
    uint64_t x_ref = 0;
    uint64_t w_ref = 0;
    int x_downs = 0;
    int w_downs = 0;
    int exits = 0;

    probe_reset(&px, ra_self(scope));
    probe_reset(&pw, ra_self(scope));
    probe_reset(&pt, ra_self(scope));
    x = spawn_probe(rt, &px, 0);
    w = spawn_probe(rt, &pw, 0);
    t = spawn_probe(rt, &pt, RA_SPAWN_TRAP_EXIT);
    link_probes(scope, w, x);
    link_probes(scope, t, x);
    RA_CK_OK(ra_monitor(scope, x, &x_ref));
    RA_CK_OK(ra_monitor(scope, w, &w_ref));

    // x ends itself with RA_KILL: everyone sees RA_KILLED.
    cmd(scope, x, T_EXIT, RA_KILL);
    for (int i = 0; i < 3; i++) {
        ra_msg_t *msg = recv_msg(scope);
        ra_pid_t pid = RA_PID_NIL;
        ra_reason_t reason = -1;
        uint64_t ref = 0;

        if (ra_msg_kind(msg) == RA_MSG_EXIT) {
            // Forwarded by t, which traps exits.
            RA_CK_OK(ra_msg_exit_info(msg, &pid, &reason));
            RA_CK_PID_EQ(pid, x);
            exits++;
        } else {
            ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_DOWN);
            RA_CK_OK(ra_msg_down_info(msg, &ref, &pid, &reason));
            if (ref == x_ref) {
                RA_CK_PID_EQ(pid, x);
                x_downs++;
            } else {
                ck_assert_uint_eq(ref, w_ref);
                RA_CK_PID_EQ(pid, w);
                w_downs++;
            }
        }
        ra_msg_unref(&msg);
        RA_CK_REASON_EQ(reason, RA_KILLED);
    }
    ck_assert_int_eq(exits, 1);
    ck_assert_int_eq(x_downs, 1);
    ck_assert_int_eq(w_downs, 1);
    ck_assert_int_eq(atomic_load(&pw.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&pw.reason), RA_KILLED);
    // A link's RA_KILLED is an ordinary exit signal: t trapped it.
    ck_assert(ra_is_alive(rt, t));
    expect_echo(scope, t);
    ck_assert_int_eq(atomic_load(&pt.terminates), 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_exit_pid_normal_ignored)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    RA_CK_OK(ra_exit_pid(scope, pid, RA_NORMAL));
    RA_CK_OK(ra_runtime_exit(rt, pid, RA_NORMAL));
    // The signals overtake the echo, so they have been applied by the time
    // it comes back.
    expect_echo(scope, pid);
    expect_quiet(scope, QUIET_MS);
    ck_assert(ra_is_alive(rt, pid));
    ck_assert_int_eq(atomic_load(&p.terminates), 0);
    ck_assert_int_eq(atomic_load(&p.signals), 0);
    ck_assert_int_eq(atomic_load(&p.handled), 1);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_exit_pid_user_reason)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t plain;
    probe_t trapping;
    ra_pid_t p_pid;
    ra_pid_t t_pid;
    uint64_t mref = 0;

    probe_reset(&plain, ra_self(scope));
    probe_reset(&trapping, ra_self(scope));
    p_pid = spawn_probe(rt, &plain, 0);
    t_pid = spawn_probe(rt, &trapping, RA_SPAWN_TRAP_EXIT);

    RA_CK_OK(ra_monitor(scope, p_pid, &mref));
    RA_CK_OK(ra_exit_pid(scope, p_pid, RA_REASON_USER + 5));
    expect_down(scope, mref, p_pid, RA_REASON_USER + 5);
    ck_assert_int_eq(atomic_load(&plain.terminates), 1);
    RA_CK_REASON_EQ(atomic_load(&plain.reason), RA_REASON_USER + 5);
    ck_assert_int_eq(atomic_load(&plain.handled), 0);

    RA_CK_OK(ra_exit_pid(scope, t_pid, RA_REASON_USER + 5));
    expect_exit(scope, ra_self(scope), RA_REASON_USER + 5);
    RA_CK_OK(ra_exit_pid(scope, t_pid, RA_NORMAL));
    expect_exit(scope, ra_self(scope), RA_NORMAL);
    ck_assert(ra_is_alive(rt, t_pid));
    expect_echo(scope, t_pid);
    ck_assert_int_eq(atomic_load(&trapping.terminates), 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_unlink_isolates)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t pa;
    probe_t pb;
    ra_pid_t a;
    ra_pid_t b;
    uint64_t mref = 0;

    probe_reset(&pa, ra_self(scope));
    probe_reset(&pb, ra_self(scope));
    a = spawn_probe(rt, &pa, 0);
    b = spawn_probe(rt, &pb, 0);

    // The scope (not trapping) links to a, then unlinks.
    RA_CK_OK(ra_link(scope, a));
    RA_CK_OK(ra_link(scope, a));    // no-op: still one link
    RA_CK_OK(ra_actor_stats(rt, a, &st));
    ck_assert_uint_eq(st.links, 1);
    RA_CK_OK(ra_unlink(scope, a));
    RA_CK_OK(ra_actor_stats(rt, a, &st));
    ck_assert_uint_eq(st.links, 0);
    RA_CK_OK(ra_actor_stats(rt, ra_self(scope), &st));
    ck_assert_uint_eq(st.links, 0);
    RA_CK_OK(ra_unlink(scope, a));  // no link: still 0

    // b links to a, then unlinks.
    link_probes(scope, b, a);
    cmd_pid(scope, b, T_UNLINK, a);
    RA_CK_OK((int)recv_reply(scope, T_UNLINK));
    RA_CK_OK(ra_actor_stats(rt, a, &st));
    ck_assert_uint_eq(st.links, 0);

    RA_CK_OK(ra_monitor(scope, a, &mref));
    cmd(scope, a, T_FAIL, RA_ENOENT);
    expect_down(scope, mref, a, RA_ENOENT);
    expect_quiet(scope, QUIET_MS);
    ck_assert(ra_scope_exit_reason(scope) == -1);
    ck_assert(ra_is_alive(rt, b));
    expect_echo(scope, b);
    ck_assert_int_eq(atomic_load(&pb.terminates), 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_dead_pid_enoproc)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t p;
    ra_pid_t pid;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    end_probe(scope, pid, RA_NORMAL);

    // Not trapping: only the error.
    RA_CK_ERR(ra_link(scope, pid), RA_ENOPROC);
    expect_quiet(scope, QUIET_MS);
    ck_assert(ra_scope_exit_reason(scope) == -1);

    // Trapping: the error and an EXIT with RA_NOPROC.
    ra_trap_exit(scope, true);
    RA_CK_ERR(ra_link(scope, pid), RA_ENOPROC);
    expect_exit(scope, pid, RA_NOPROC);
    RA_CK_OK(ra_actor_stats(rt, ra_self(scope), &st));
    ck_assert_uint_eq(st.links, 0);
    expect_quiet(scope, 0);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_link_scope_crash_gives_eexit)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_spawn_opts_t opts = {.flags = RA_SPAWN_LINK};
    probe_t p;
    ra_pid_t pid;
    ra_msg_t *msg = NULL;

    probe_reset(&p, ra_self(scope));
    RA_CK_OK(ra_spawn_from(scope, &probe_behaviour, &p, &opts, &pid, NULL));
    ck_assert(ra_scope_exit_reason(scope) == -1);
    cmd(scope, pid, T_EXIT, RA_REASON_USER + 9);
    RA_CK_ERR(ra_receive(scope, WAIT_MS, &msg), RA_EEXIT);
    ck_assert_ptr_null(msg);
    RA_CK_REASON_EQ(ra_scope_exit_reason(scope), RA_REASON_USER + 9);
    RA_CK_ERR(ra_receive(scope, 0, &msg), RA_EEXIT);
    ck_assert_ptr_null(msg);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- monitors -----------------------------------------------------------

START_TEST(test_actor_monitor_one_down)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;
    uint64_t mref2 = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    RA_CK_OK(ra_monitor(scope, pid, &mref2));
    ck_assert_uint_ne(mref, mref2);
    RA_CK_OK(ra_demonitor(scope, mref2));
    cmd(scope, pid, T_EXIT, RA_REASON_USER + 1);
    expect_down(scope, mref, pid, RA_REASON_USER + 1);
    expect_quiet(scope, QUIET_MS);
    // The monitor is spent.
    RA_CK_ERR(ra_demonitor(scope, mref), RA_ENOENT);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_monitor_dead_pid_noproc)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_pid_t never = {0, 0, 1000000, 7};
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;
    ra_msg_t *msg = NULL;
    ra_pid_t down_pid = RA_PID_NIL;
    ra_reason_t reason = -1;
    uint64_t ref = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    end_probe(scope, pid, RA_NORMAL);

    RA_CK_OK(ra_monitor(scope, pid, &mref));
    // At once: a poll finds it.
    RA_CK_OK(ra_receive(scope, 0, &msg));
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_DOWN);
    RA_CK_OK(ra_msg_down_info(msg, &ref, &down_pid, &reason));
    ra_msg_unref(&msg);
    ck_assert_uint_eq(ref, mref);
    RA_CK_PID_EQ(down_pid, pid);
    RA_CK_REASON_EQ(reason, RA_NOPROC);

    // A pid that never existed too.
    RA_CK_OK(ra_monitor(scope, never, &mref));
    expect_down(scope, mref, never, RA_NOPROC);
    expect_quiet(scope, QUIET_MS);
    RA_CK_ERR(ra_monitor(scope, never, NULL), RA_EINVAL);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_monitor_demonitor_flushes)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    RA_CK_OK(ra_exit_pid(scope, pid, RA_KILL));
    RA_CK_WAIT(!ra_is_alive(rt, pid), WAIT_MS);
    // Let the DOWN reach the mailbox (not needed for correctness: a DOWN
    // still in flight must be dropped just the same).
    RA_CK_WAIT(atomic_load(&p.terminates) == 1, WAIT_MS);
    ra_test_sleep_ms(20);
    RA_CK_OK(ra_demonitor(scope, mref));
    expect_quiet(scope, 300);
    RA_CK_ERR(ra_demonitor(scope, mref), RA_ENOENT);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_monitor_demonitor_unknown_enoent)
{
    ra_runtime_t *rt = new_rt(1);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    probe_t p;
    ra_pid_t pid;
    uint64_t mref = 0;

    RA_CK_ERR(ra_demonitor(scope, 12345), RA_ENOENT);
    RA_CK_ERR(ra_demonitor(scope, 0), RA_ENOENT);
    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_monitor(scope, pid, &mref));
    RA_CK_ERR(ra_demonitor(scope, mref + 1), RA_ENOENT);
    RA_CK_OK(ra_demonitor(scope, mref));
    RA_CK_ERR(ra_demonitor(scope, mref), RA_ENOENT);
    // The target forgot it: ending it sends nothing.
    end_probe(scope, pid, RA_NORMAL);
    expect_quiet(scope, QUIET_MS);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

START_TEST(test_actor_monitor_stats_counts)
{
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t p;
    ra_pid_t pid;
    uint64_t m1 = 0;
    uint64_t m2 = 0;

    probe_reset(&p, ra_self(scope));
    pid = spawn_probe(rt, &p, 0);
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert_uint_eq(st.monitors, 0);
    ck_assert_uint_eq(st.links, 0);
    ck_assert_uint_eq(st.mailbox_len, 0);
    ck_assert_uint_eq(st.dropped, 0);
    ck_assert(!st.trap_exit);

    RA_CK_OK(ra_monitor(scope, pid, &m1));
    RA_CK_OK(ra_monitor(scope, pid, &m2));
    RA_CK_OK(ra_link(scope, pid));
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert_uint_eq(st.monitors, 2);
    ck_assert_uint_eq(st.links, 1);
    RA_CK_OK(ra_actor_stats(rt, ra_self(scope), &st));
    ck_assert_uint_eq(st.monitors, 0);  // monitors held on the scope
    ck_assert_uint_eq(st.links, 1);

    RA_CK_OK(ra_demonitor(scope, m1));
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert_uint_eq(st.monitors, 1);
    RA_CK_OK(ra_unlink(scope, pid));
    RA_CK_OK(ra_demonitor(scope, m2));
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert_uint_eq(st.monitors, 0);
    ck_assert_uint_eq(st.links, 0);

    end_probe(scope, pid, RA_NORMAL);
    RA_CK_ERR(ra_actor_stats(rt, pid, &st), RA_ENOPROC);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// Thousands of monitors on one target, held by one watcher: both sides
// keep them indexed past a few (actor.c), and every demonitor, removal and
// DOWN must still find the right one.
START_TEST(test_actor_monitor_many)
{
    enum { N = 3000 };
    ra_runtime_t *rt = new_rt(2);
    ra_ctx_t *scope = ra_test_new_scope(rt);
    ra_actor_stats_t st;
    probe_t p;
    static uint64_t refs[N];
    static bool kept[N], seen[N];

    probe_reset(&p, ra_self(scope));
    ra_pid_t pid = spawn_probe(rt, &p, 0);
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_monitor(scope, pid, &refs[i]));
        kept[i] = true;
        seen[i] = false;
    }
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert_uint_eq(st.monitors, N);
    // Drop two thirds, in a scattered order (7 is prime to N = 3000).
    size_t left = N;
    for (int k = 0; k < N; k++) {
        int i = (int)(((long)k * 7) % N);
        if (i % 3 != 0) {
            RA_CK_OK(ra_demonitor(scope, refs[i]));
            RA_CK_ERR(ra_demonitor(scope, refs[i]), RA_ENOENT);
            kept[i] = false;
            left--;
        }
    }
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert_uint_eq(st.monitors, left);
    // Add some back, so that entries are found among deleted slots.
    for (int i = 1; i < N; i += 3) {
        RA_CK_OK(ra_monitor(scope, pid, &refs[i]));
        kept[i] = true;
        left++;
    }
    RA_CK_OK(ra_actor_stats(rt, pid, &st));
    ck_assert_uint_eq(st.monitors, left);
    RA_CK_OK(ra_exit_pid(scope, pid, RA_KILL));
    for (size_t got = 0; got < left; got++) {
        ra_msg_t *msg = NULL;
        uint64_t ref = 0;
        ra_pid_t from = RA_PID_NIL;
        ra_reason_t why = -1;
        RA_CK_OK(ra_receive(scope, WAIT_MS, &msg));
        ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_DOWN);
        RA_CK_OK(ra_msg_down_info(msg, &ref, &from, &why));
        ra_msg_unref(&msg);
        RA_CK_PID_EQ(from, pid);
        int at = -1;
        for (int i = 0; i < N && at < 0; i++) {
            if (refs[i] == ref) {
                at = i;
            }
        }
        ck_assert_msg(at >= 0 && kept[at] && !seen[at],
                      "DOWN for ref %" PRIu64 " (index %d)", ref, at);
        seen[at] = true;
    }
    expect_quiet(scope, QUIET_MS);
    // Every monitor was spent by its DOWN.
    for (int i = 0; i < N; i += 97) {
        RA_CK_ERR(ra_demonitor(scope, refs[i]), RA_ENOENT);
    }
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

// ---- suite --------------------------------------------------------------

static Suite *
actor_suite(void)
{
    Suite *s = suite_create("actor");
    TCase *tc;

    tc = tcase_create("runtime");
    tcase_add_test(tc, test_actor_runtime_new_destroy_threads);
    tcase_add_test(tc, test_actor_runtime_null_opts_default);
    tcase_add_test(tc, test_actor_runtime_too_many_threads_einval);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("spawn");
    tcase_add_test(tc, test_actor_spawn_runs_init_synchronously);
    tcase_add_test(tc, test_actor_spawn_returns_init_error);
    tcase_add_test(tc, test_actor_spawn_monitor_sees_init_error);
    tcase_add_test(tc, test_actor_spawn_null_handle_einval);
    tcase_add_test(tc, test_actor_spawn_link_without_ctx_einval);
    tcase_add_test(tc, test_actor_spawn_trap_exit_flag);
    tcase_add_test(tc, test_actor_trap_exit_returns_previous);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("send");
    tcase_add_test(tc, test_actor_send_receive_echo);
    tcase_add_test(tc, test_actor_send_sender_identity);
    tcase_add_test(tc, test_actor_send_to_dead_pid_enoproc);
    tcase_add_test(tc, test_actor_send_stale_pid_after_slot_reuse);
    tcase_add_test(tc, test_actor_send_fifo_per_sender);
    tcase_add_test(tc, test_actor_send_bson_payload);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("sched");
    tcase_add_test(tc, test_actor_sched_quantum_fairness);
    tcase_add_test(tc, test_actor_sched_system_lane_overtakes_backlog);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("exit");
    tcase_add_test(tc, test_actor_exit_handler_error_ends_actor);
    tcase_add_test(tc, test_actor_exit_after_callback);
    tcase_add_test(tc, test_actor_exit_last_reason_wins);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("link");
    tcase_add_test(tc, test_actor_link_crash_propagates);
    tcase_add_test(tc, test_actor_link_normal_exit_spares_linked);
    tcase_add_test(tc, test_actor_link_trapping_gets_exit_message);
    tcase_add_test(tc, test_actor_link_scope_traps_exit);
    tcase_add_test(tc, test_actor_link_kill_becomes_killed);
    tcase_add_test(tc, test_actor_link_self_kill_seen_as_killed);
    tcase_add_test(tc, test_actor_link_exit_pid_normal_ignored);
    tcase_add_test(tc, test_actor_link_exit_pid_user_reason);
    tcase_add_test(tc, test_actor_link_unlink_isolates);
    tcase_add_test(tc, test_actor_link_dead_pid_enoproc);
    tcase_add_test(tc, test_actor_link_scope_crash_gives_eexit);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("monitor");
    tcase_add_test(tc, test_actor_monitor_one_down);
    tcase_add_test(tc, test_actor_monitor_dead_pid_noproc);
    tcase_add_test(tc, test_actor_monitor_demonitor_flushes);
    tcase_add_test(tc, test_actor_monitor_demonitor_unknown_enoent);
    tcase_add_test(tc, test_actor_monitor_stats_counts);
    tcase_add_test(tc, test_actor_monitor_many);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(actor_suite());
}

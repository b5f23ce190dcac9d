// check_registry.c - tests of the registry: local names, process groups
// and namespaced names.
//
// One Suite, "registry", with one TCase per behaviour group.  Only the
// public header is used.  Callbacks never assert: they count what they saw
// in atomics or send it to the test's scope, and the test thread asserts.
#include <bson/bson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "rayo.h"
#include "testutil.h"

// WAIT_MS bounds the wait for an outcome that must come; QUIET_MS is how
// long a test gives a wrong outcome the chance to show.
#define WAIT_MS 5000
#define QUIET_MS 200

enum {
    T_GO = 1,   // the watcher starts its register-and-kill loop
    T_DONE = 2  // the watcher reports that the loop is over
};

// ---- actors --------------------------------------------------------------

// The forwarder passes every message it gets on to the pid its spawn
// argument points at (owned by the test, which outlives the runtime).
static int
fwd_init(ra_ctx_t *ctx, void **state)
{
    (void)ctx;
    (void)state; // the spawn argument is the state
    return 0;
}

static int
fwd_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    ra_msg_t *copy = ra_msg_ref(msg);

    if (state == NULL || ra_send(ctx, *(ra_pid_t *)state, &copy) != 0) {
        ra_msg_unref(&copy);
    }
    return 0;
}

static const ra_behaviour_t fwd_b = {"fwd", fwd_init, fwd_handle, NULL};

// ---- helpers (test thread only) -----------------------------------------

typedef struct fixture {
    ra_runtime_t *rt;
    ra_ctx_t *scope;
} fixture_t;

static void
setup(fixture_t *f, unsigned threads)
{
    ra_runtime_opts_t opts = {.threads = threads};

    memset(f, 0, sizeof(*f));
    RA_CK_OK(ra_runtime_new(&f->rt, &opts));
    RA_CK_OK(ra_scope_new(f->rt, &f->scope));
}

static void
teardown(fixture_t *f)
{
    ra_scope_destroy(&f->scope);
    ra_runtime_destroy(&f->rt);
}

// spawn returns a new actor that forwards what it gets to *report (which
// may be NULL: it then drops everything).
static ra_pid_t
spawn(fixture_t *f, ra_pid_t *report)
{
    ra_pid_t pid = RA_PID_NIL;

    RA_CK_OK(ra_spawn(f->rt, &fwd_b, report, NULL, &pid));
    return pid;
}

// kill_and_wait kills pid and waits for the DOWN of a monitor set up just
// before, so the actor's names are surely released when it returns.
static void
kill_and_wait(fixture_t *f, ra_pid_t pid)
{
    uint64_t mref = 0;
    uint64_t got = 0;
    ra_msg_t *msg = NULL;

    RA_CK_OK(ra_monitor(f->scope, pid, &mref));
    RA_CK_OK(ra_runtime_exit(f->rt, pid, RA_KILL));
    for (;;) {
        RA_CK_OK(ra_receive(f->scope, WAIT_MS, &msg));
        if (ra_msg_kind(msg) == RA_MSG_DOWN) {
            RA_CK_OK(ra_msg_down_info(msg, &got, NULL, NULL));
        }
        ra_msg_unref(&msg);
        if (got == mref) {
            break;
        }
    }
}

// expect_quiet asserts that the scope receives nothing for QUIET_MS.
static void
expect_quiet(fixture_t *f)
{
    ra_msg_t *msg = NULL;

    RA_CK_ERR(ra_receive(f->scope, QUIET_MS, &msg), RA_ETIMEOUT);
    ck_assert_ptr_null(msg);
}

// expect_event receives the next message and asserts that it is a group
// event with tag about pid in group.
static void
expect_event(fixture_t *f, int32_t tag, const char *group, ra_pid_t pid)
{
    ra_msg_t *msg = NULL;
    bson_iter_t it;
    char str[RA_PID_STRLEN];

    RA_CK_OK(ra_receive(f->scope, WAIT_MS, &msg));
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_BSON);
    ck_assert_int_eq(ra_msg_tag(msg), tag);
    const bson_t *doc = ra_msg_bson(msg);
    ck_assert_ptr_nonnull(doc);
    ck_assert(bson_iter_init_find(&it, doc, "group"));
    ck_assert_str_eq(bson_iter_utf8(&it, NULL), group);
    ck_assert(bson_iter_init_find(&it, doc, "pid"));
    ck_assert_str_eq(bson_iter_utf8(&it, NULL), ra_pid_str(pid, str));
    ck_assert(bson_iter_init_find(&it, doc, "node"));
    ck_assert_int_eq(bson_iter_int32(&it), (int32_t)pid.node);
    ck_assert(bson_iter_init_find(&it, doc, "proc"));
    ck_assert_int_eq(bson_iter_int32(&it), (int32_t)pid.proc);
    ck_assert(bson_iter_init_find(&it, doc, "id"));
    ck_assert_int_eq(bson_iter_int32(&it), (int32_t)pid.id);
    ck_assert(bson_iter_init_find(&it, doc, "gen"));
    ck_assert_int_eq(bson_iter_int32(&it), (int32_t)pid.gen);
    ra_msg_unref(&msg);
}

// ---- local names ---------------------------------------------------------

START_TEST(test_registry_register_whereis_unregister)
{
    fixture_t f;
    ra_pid_t got;
    char buf[16];

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    RA_CK_ERR(ra_whereis(f.rt, "alpha", &got), RA_ENOENT);
    RA_CK_PID_EQ(got, RA_PID_NIL);
    RA_CK_OK(ra_register(f.rt, "alpha", a));
    RA_CK_OK(ra_whereis(f.rt, "alpha", &got));
    RA_CK_PID_EQ(got, a);
    RA_CK_OK(ra_name_of(f.rt, a, buf, sizeof buf));
    ck_assert_str_eq(buf, "alpha");
    RA_CK_ERR(ra_name_of(f.rt, a, buf, 5), RA_EINVAL); // no room for NUL
    RA_CK_OK(ra_name_of(f.rt, a, buf, 6));
    RA_CK_OK(ra_unregister(f.rt, "alpha"));
    RA_CK_ERR(ra_unregister(f.rt, "alpha"), RA_ENOENT);
    RA_CK_ERR(ra_whereis(f.rt, "alpha", &got), RA_ENOENT);
    RA_CK_ERR(ra_name_of(f.rt, a, buf, sizeof buf), RA_ENOENT);
    // Once unregistered, the actor may take another name.
    RA_CK_OK(ra_register(f.rt, "beta", a));
    RA_CK_OK(ra_whereis(f.rt, "beta", &got));
    RA_CK_PID_EQ(got, a);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_register_conflicts)
{
    fixture_t f;
    ra_pid_t got;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    RA_CK_OK(ra_register(f.rt, "taken", a));
    RA_CK_ERR(ra_register(f.rt, "taken", b), RA_EEXIST);
    RA_CK_ERR(ra_register(f.rt, "other", a), RA_EALREADY);
    RA_CK_ERR(ra_register(f.rt, "taken", a), RA_EEXIST);
    RA_CK_OK(ra_whereis(f.rt, "taken", &got));
    RA_CK_PID_EQ(got, a);
    kill_and_wait(&f, b);
    RA_CK_ERR(ra_register(f.rt, "free", b), RA_ENOPROC);
    RA_CK_ERR(ra_whereis(f.rt, "free", &got), RA_ENOENT);
    RA_CK_ERR(ra_register(f.rt, "nil", RA_PID_NIL), RA_ENOPROC);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_send_named)
{
    fixture_t f;
    ra_msg_t *msg;
    ra_msg_t *got = NULL;

    setup(&f, 2);
    ra_pid_t me = ra_self(f.scope);
    ra_pid_t a = spawn(&f, &me);
    RA_CK_OK(ra_register(f.rt, "echo", a));

    msg = ra_test_msg("from scope");
    RA_CK_OK(ra_send_named(f.scope, "echo", &msg));
    ck_assert_ptr_null(msg);
    RA_CK_OK(ra_receive(f.scope, WAIT_MS, &got));
    ra_test_msg_is(got, "from scope");
    ra_msg_unref(&got);

    msg = ra_test_msg("from outside");
    RA_CK_OK(ra_runtime_send_named(f.rt, "echo", &msg));
    ck_assert_ptr_null(msg);
    RA_CK_OK(ra_receive(f.scope, WAIT_MS, &got));
    ra_test_msg_is(got, "from outside");
    ra_msg_unref(&got);

    msg = ra_test_msg("lost");
    RA_CK_ERR(ra_send_named(f.scope, "nobody", &msg), RA_ENOENT);
    ck_assert_ptr_nonnull(msg); // the caller keeps it
    RA_CK_ERR(ra_runtime_send_named(f.rt, "nobody", &msg), RA_ENOENT);
    ck_assert_ptr_nonnull(msg);
    ra_msg_unref(&msg);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_name_free_before_down)
{
    fixture_t f;
    ra_pid_t got;

    setup(&f, 4);
    for (int i = 0; i < 50; i++) {
        ra_pid_t a = spawn(&f, NULL);
        ra_pid_t b = spawn(&f, NULL);
        RA_CK_OK(ra_register(f.rt, "svc", a));
        // kill_and_wait returns as soon as the DOWN is in: the name must
        // already be free, without any retry or sleep.
        kill_and_wait(&f, a);
        RA_CK_ERR(ra_whereis(f.rt, "svc", &got), RA_ENOENT);
        RA_CK_OK(ra_register(f.rt, "svc", b));
        RA_CK_OK(ra_whereis(f.rt, "svc", &got));
        RA_CK_PID_EQ(got, b);
        kill_and_wait(&f, b);
    }
    teardown(&f);
}
END_TEST

// The watcher loops: spawn an owner it monitors, give it the name, kill
// it; on the owner's DOWN, start again.  If the name were released after
// the DOWN went out, the register in the next round would see RA_EEXIST.
typedef struct watcher {
    ra_pid_t report;    // gets T_DONE after the last round
    size_t rounds;      // how many owners to kill
    size_t done;        // owner thread only
    uint64_t mref;      // the current owner's monitor
    atomic_int eexist;  // registers that failed with RA_EEXIST
    atomic_int other;   // registers or spawns that failed otherwise
} watcher_t;

static int
watch_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    watcher_t *w = state;
    ra_runtime_t *rt = ra_ctx_runtime(ctx);
    ra_spawn_opts_t opts = {.flags = RA_SPAWN_MONITOR};
    ra_pid_t owner;
    uint64_t mref = 0;

    if (ra_msg_kind(msg) == RA_MSG_DOWN) {
        if (ra_msg_down_info(msg, &mref, NULL, NULL) != 0 ||
            mref != w->mref) {
            return 0;
        }
        w->done++;
    } else if (ra_msg_tag(msg) != T_GO) {
        return 0;
    }
    if (w->done == w->rounds) {
        ra_msg_t *m = NULL;
        if (ra_msg_new_bytes(&m, T_DONE, NULL, 0) == 0 &&
            ra_send(ctx, w->report, &m) != 0) {
            ra_msg_unref(&m);
        }
        return 0;
    }
    if (ra_spawn_from(ctx, &fwd_b, NULL, &opts, &owner, &w->mref) != 0) {
        atomic_fetch_add(&w->other, 1);
        return RA_ENOMEM; // ends the watcher: the test times out loudly
    }
    int rc = ra_register(rt, "race", owner);
    if (rc == RA_EEXIST) {
        atomic_fetch_add(&w->eexist, 1);
    } else if (rc != 0) {
        atomic_fetch_add(&w->other, 1);
    }
    ra_exit_pid(ctx, owner, RA_KILL);
    return 0;
}

static const ra_behaviour_t watch_b = {"watcher", NULL, watch_handle, NULL};

START_TEST(test_registry_reregister_from_down_race)
{
    fixture_t f;
    watcher_t w = {.rounds = ra_test_scaled(1000)};
    ra_pid_t wp;
    ra_msg_t *msg = NULL;

    setup(&f, 4);
    w.report = ra_self(f.scope);
    RA_CK_OK(ra_spawn(f.rt, &watch_b, &w, NULL, &wp));
    RA_CK_OK(ra_msg_new_bytes(&msg, T_GO, NULL, 0));
    RA_CK_OK(ra_runtime_send(f.rt, wp, &msg));
    RA_CK_OK(ra_receive(f.scope, 60000, &msg));
    ck_assert_int_eq(ra_msg_tag(msg), T_DONE);
    ra_msg_unref(&msg);
    ck_assert_int_eq(atomic_load(&w.eexist), 0);
    ck_assert_int_eq(atomic_load(&w.other), 0);
    ck_assert_uint_eq(w.done, w.rounds);
    teardown(&f);
}
END_TEST

// ---- process groups ------------------------------------------------------

START_TEST(test_registry_pg_join_twice_leave_once)
{
    fixture_t f;
    ra_pid_t out[4];
    size_t n = 99;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    RA_CK_OK(ra_pg_leave(f.rt, "g", a));
    RA_CK_OK(ra_pg_members(f.rt, "g", out, 4, &n));
    ck_assert_uint_eq(n, 1);
    RA_CK_PID_EQ(out[0], a);
    RA_CK_OK(ra_pg_leave(f.rt, "g", a));
    RA_CK_OK(ra_pg_members(f.rt, "g", out, 4, &n));
    ck_assert_uint_eq(n, 0);
    RA_CK_ERR(ra_pg_leave(f.rt, "g", a), RA_ENOENT);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_pg_members_join_order)
{
    fixture_t f;
    ra_pid_t out[4];
    size_t n = 0;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    ra_pid_t c = spawn(&f, NULL);
    RA_CK_OK(ra_pg_join(f.rt, "g", b));
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    RA_CK_OK(ra_pg_join(f.rt, "g", c));
    RA_CK_OK(ra_pg_join(f.rt, "g", b));
    RA_CK_OK(ra_pg_members(f.rt, "g", out, 4, &n));
    ck_assert_uint_eq(n, 4);
    RA_CK_PID_EQ(out[0], b);
    RA_CK_PID_EQ(out[1], a);
    RA_CK_PID_EQ(out[2], c);
    RA_CK_PID_EQ(out[3], b);
    // A short buffer gets the first members and the full count.
    out[2] = RA_PID_NIL;
    RA_CK_OK(ra_pg_members(f.rt, "g", out, 2, &n));
    ck_assert_uint_eq(n, 4);
    RA_CK_PID_EQ(out[2], RA_PID_NIL);
    RA_CK_OK(ra_pg_members(f.rt, "g", NULL, 0, &n));
    ck_assert_uint_eq(n, 4);
    // Leaving drops b's earliest membership.
    RA_CK_OK(ra_pg_leave(f.rt, "g", b));
    RA_CK_OK(ra_pg_members(f.rt, "g", out, 4, &n));
    ck_assert_uint_eq(n, 3);
    RA_CK_PID_EQ(out[0], a);
    RA_CK_PID_EQ(out[1], c);
    RA_CK_PID_EQ(out[2], b);
    RA_CK_OK(ra_pg_members(f.rt, "unknown", out, 4, &n));
    ck_assert_uint_eq(n, 0);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_pg_leave_non_member)
{
    fixture_t f;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    RA_CK_ERR(ra_pg_leave(f.rt, "g", a), RA_ENOENT); // no registry yet
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    RA_CK_ERR(ra_pg_leave(f.rt, "g", b), RA_ENOENT);
    RA_CK_ERR(ra_pg_leave(f.rt, "h", a), RA_ENOENT);
    kill_and_wait(&f, b);
    RA_CK_ERR(ra_pg_join(f.rt, "g", b), RA_ENOPROC);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_pg_dead_member_leaves)
{
    fixture_t f;
    uint64_t r1, r2;
    ra_pid_t out[4];
    size_t n = 99;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    RA_CK_OK(ra_pg_subscribe(f.scope, "g1", &r1));
    RA_CK_OK(ra_pg_subscribe(f.scope, "g2", &r2));
    ck_assert_uint_ne(r1, r2);
    RA_CK_OK(ra_pg_join(f.rt, "g1", a));
    RA_CK_OK(ra_pg_join(f.rt, "g1", b));
    RA_CK_OK(ra_pg_join(f.rt, "g1", a));
    RA_CK_OK(ra_pg_join(f.rt, "g2", a));
    expect_event(&f, RA_TAG_PG_JOIN, "g1", a);
    expect_event(&f, RA_TAG_PG_JOIN, "g1", b);
    expect_event(&f, RA_TAG_PG_JOIN, "g1", a);
    expect_event(&f, RA_TAG_PG_JOIN, "g2", a);
    uint64_t mref = 0;
    RA_CK_OK(ra_monitor(f.scope, a, &mref));
    RA_CK_OK(ra_runtime_exit(f.rt, a, RA_KILL));
    // One leave per membership, and the DOWN (on the system lane, so it
    // may come first or between them).
    int g1 = 0;
    int g2 = 0;
    int downs = 0;
    for (int i = 0; i < 4; i++) {
        ra_msg_t *msg = NULL;
        bson_iter_t it;
        char str[RA_PID_STRLEN];
        RA_CK_OK(ra_receive(f.scope, WAIT_MS, &msg));
        if (ra_msg_kind(msg) == RA_MSG_DOWN) {
            downs++;
            ra_msg_unref(&msg);
            continue;
        }
        ck_assert_int_eq(ra_msg_tag(msg), RA_TAG_PG_LEAVE);
        ck_assert(bson_iter_init_find(&it, ra_msg_bson(msg), "pid"));
        ck_assert_str_eq(bson_iter_utf8(&it, NULL), ra_pid_str(a, str));
        ck_assert(bson_iter_init_find(&it, ra_msg_bson(msg), "group"));
        if (strcmp(bson_iter_utf8(&it, NULL), "g1") == 0) {
            g1++;
        } else if (strcmp(bson_iter_utf8(&it, NULL), "g2") == 0) {
            g2++;
        }
        ra_msg_unref(&msg);
    }
    ck_assert_int_eq(downs, 1);
    ck_assert_int_eq(g1, 2);
    ck_assert_int_eq(g2, 1);
    expect_quiet(&f);
    RA_CK_OK(ra_pg_members(f.rt, "g1", out, 4, &n));
    ck_assert_uint_eq(n, 1);
    RA_CK_PID_EQ(out[0], b);
    RA_CK_OK(ra_pg_members(f.rt, "g2", out, 4, &n));
    ck_assert_uint_eq(n, 0);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_pg_subscribe_unsubscribe)
{
    fixture_t f;
    uint64_t ref = 0;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    RA_CK_OK(ra_pg_join(f.rt, "g", a)); // before subscribing: no event
    RA_CK_OK(ra_pg_subscribe(f.scope, "g", &ref));
    ck_assert_uint_ne(ref, 0);
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    expect_event(&f, RA_TAG_PG_JOIN, "g", a);
    RA_CK_OK(ra_pg_join(f.rt, "other", a)); // another group: no event
    RA_CK_OK(ra_pg_leave(f.rt, "g", a));
    expect_event(&f, RA_TAG_PG_LEAVE, "g", a);
    expect_quiet(&f);
    RA_CK_OK(ra_pg_unsubscribe(f.scope, ref));
    RA_CK_ERR(ra_pg_unsubscribe(f.scope, ref), RA_ENOENT);
    RA_CK_ERR(ra_pg_unsubscribe(f.scope, ref + 100), RA_ENOENT);
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    RA_CK_OK(ra_pg_leave(f.rt, "g", a));
    expect_quiet(&f);
    teardown(&f);
}
END_TEST

// A subscriber that ends loses its subscriptions: the registry no longer
// tries to tell it anything, and the group forgets it.
START_TEST(test_registry_pg_dead_subscriber_released)
{
    fixture_t f;
    ra_ctx_t *other = NULL;
    uint64_t ref = 0;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    RA_CK_OK(ra_scope_new(f.rt, &other));
    RA_CK_OK(ra_pg_subscribe(other, "g", &ref));
    ra_scope_destroy(&other);
    RA_CK_OK(ra_pg_subscribe(f.scope, "g", &ref));
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    expect_event(&f, RA_TAG_PG_JOIN, "g", a);
    expect_quiet(&f);
    teardown(&f);
}
END_TEST

// ---- namespaced names ----------------------------------------------------

START_TEST(test_registry_ns_policy_fail)
{
    fixture_t f;
    ra_pid_t h = RA_PID_NIL;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    RA_CK_OK(ra_ns_register(f.rt, "jobs", "x", a, RA_NAME_FAIL, &h));
    RA_CK_PID_EQ(h, a);
    h = RA_PID_NIL;
    RA_CK_ERR(ra_ns_register(f.rt, "jobs", "x", b, RA_NAME_FAIL, &h),
              RA_EEXIST);
    RA_CK_PID_EQ(h, a);
    RA_CK_OK(ra_ns_whereis(f.rt, "jobs", "x", &h));
    RA_CK_PID_EQ(h, a);
    // An actor may hold several namespaced names, and a local one too.
    RA_CK_OK(ra_ns_register(f.rt, "jobs", "y", a, RA_NAME_FAIL, NULL));
    RA_CK_OK(ra_register(f.rt, "x", a));
    RA_CK_ERR(ra_ns_unregister(f.rt, "jobs", "x", b), RA_ENOENT);
    RA_CK_OK(ra_ns_unregister(f.rt, "jobs", "x", a));
    RA_CK_ERR(ra_ns_whereis(f.rt, "jobs", "x", &h), RA_ENOENT);
    RA_CK_OK(ra_ns_register(f.rt, "jobs", "x", b, RA_NAME_FAIL, &h));
    RA_CK_PID_EQ(h, b);
    RA_CK_OK(ra_ns_whereis(f.rt, "jobs", "y", &h));
    RA_CK_PID_EQ(h, a);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_ns_policy_get_existing)
{
    fixture_t f;
    ra_pid_t h = RA_PID_NIL;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    RA_CK_OK(ra_ns_register(f.rt, "", "x", a, RA_NAME_GET_EXISTING, &h));
    RA_CK_PID_EQ(h, a);
    ck_assert_int_eq(
        ra_ns_register(f.rt, "", "x", b, RA_NAME_GET_EXISTING, &h), 1);
    RA_CK_PID_EQ(h, a);
    RA_CK_OK(ra_ns_whereis(f.rt, "", "x", &h));
    RA_CK_PID_EQ(h, a);
    ck_assert(ra_is_alive(f.rt, b)); // nothing happened to either
    ck_assert(ra_is_alive(f.rt, a));
    teardown(&f);
}
END_TEST

START_TEST(test_registry_ns_policy_replace)
{
    fixture_t f;
    ra_pid_t h = RA_PID_NIL;
    ra_pid_t who = RA_PID_NIL;
    ra_reason_t reason = 0;
    uint64_t mref = 0;
    uint64_t got = 0;
    ra_msg_t *msg = NULL;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    RA_CK_OK(ra_ns_register(f.rt, "svc", "x", a, RA_NAME_REPLACE, &h));
    RA_CK_PID_EQ(h, a);
    RA_CK_OK(ra_monitor(f.scope, a, &mref));
    RA_CK_OK(ra_ns_register(f.rt, "svc", "x", b, RA_NAME_REPLACE, &h));
    RA_CK_PID_EQ(h, b);
    RA_CK_OK(ra_ns_whereis(f.rt, "svc", "x", &h));
    RA_CK_PID_EQ(h, b);
    RA_CK_OK(ra_receive(f.scope, WAIT_MS, &msg));
    RA_CK_OK(ra_msg_down_info(msg, &got, &who, &reason));
    ra_msg_unref(&msg);
    ck_assert_uint_eq(got, mref);
    RA_CK_PID_EQ(who, a);
    RA_CK_REASON_EQ(reason, RA_NAME_CONFLICT);
    // a's death did not take the name from b.
    RA_CK_OK(ra_ns_whereis(f.rt, "svc", "x", &h));
    RA_CK_PID_EQ(h, b);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_ns_namespaces_distinct)
{
    fixture_t f;
    ra_pid_t h;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    ra_pid_t c = spawn(&f, NULL);
    RA_CK_OK(ra_ns_register(f.rt, "one", "n", a, RA_NAME_FAIL, NULL));
    RA_CK_OK(ra_ns_register(f.rt, "two", "n", b, RA_NAME_FAIL, NULL));
    RA_CK_OK(ra_ns_register(f.rt, "", "n", c, RA_NAME_FAIL, NULL));
    // Neither the key layout nor the local names mix them up.
    RA_CK_OK(ra_ns_register(f.rt, "on", "e", c, RA_NAME_FAIL, NULL));
    RA_CK_OK(ra_ns_whereis(f.rt, "one", "n", &h));
    RA_CK_PID_EQ(h, a);
    RA_CK_OK(ra_ns_whereis(f.rt, "two", "n", &h));
    RA_CK_PID_EQ(h, b);
    RA_CK_OK(ra_ns_whereis(f.rt, "", "n", &h));
    RA_CK_PID_EQ(h, c);
    RA_CK_ERR(ra_ns_whereis(f.rt, "three", "n", &h), RA_ENOENT);
    RA_CK_PID_EQ(h, RA_PID_NIL);
    RA_CK_ERR(ra_whereis(f.rt, "n", &h), RA_ENOENT);
    teardown(&f);
}
END_TEST

START_TEST(test_registry_ns_released_on_death)
{
    fixture_t f;
    ra_pid_t h;

    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    ra_pid_t b = spawn(&f, NULL);
    RA_CK_OK(ra_ns_register(f.rt, "p", "x", a, RA_NAME_FAIL, NULL));
    RA_CK_OK(ra_ns_register(f.rt, "q", "y", a, RA_NAME_FAIL, NULL));
    RA_CK_OK(ra_register(f.rt, "z", a));
    RA_CK_OK(ra_pg_join(f.rt, "g", a));
    kill_and_wait(&f, a);
    RA_CK_ERR(ra_ns_whereis(f.rt, "p", "x", &h), RA_ENOENT);
    RA_CK_ERR(ra_ns_whereis(f.rt, "q", "y", &h), RA_ENOENT);
    RA_CK_ERR(ra_whereis(f.rt, "z", &h), RA_ENOENT);
    RA_CK_OK(ra_ns_register(f.rt, "p", "x", b, RA_NAME_FAIL, &h));
    RA_CK_PID_EQ(h, b);
    // A dead pid cannot take a free name, whatever the policy.
    RA_CK_ERR(ra_ns_register(f.rt, "p", "w", a, RA_NAME_REPLACE, &h),
              RA_ENOPROC);
    RA_CK_ERR(ra_ns_register(f.rt, "p", "w", a, RA_NAME_GET_EXISTING, &h),
              RA_ENOPROC);
    teardown(&f);
}
END_TEST

// ---- bad input and teardown ----------------------------------------------

START_TEST(test_registry_bad_names_einval)
{
    fixture_t f;
    char longest[RA_NAME_MAX + 1];
    char too_long[RA_NAME_MAX + 2];
    const char *bad[] = {NULL, "", too_long};
    ra_pid_t h;
    size_t n;
    uint64_t ref;
    char buf[4];

    memset(longest, 'n', RA_NAME_MAX);
    longest[RA_NAME_MAX] = '\0';
    memset(too_long, 'n', RA_NAME_MAX + 1);
    too_long[RA_NAME_MAX + 1] = '\0';
    setup(&f, 2);
    ra_pid_t a = spawn(&f, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *s = bad[i];
        ra_msg_t *msg = ra_test_msg("x");
        RA_CK_ERR(ra_register(f.rt, s, a), RA_EINVAL);
        RA_CK_ERR(ra_unregister(f.rt, s), RA_EINVAL);
        RA_CK_ERR(ra_whereis(f.rt, s, &h), RA_EINVAL);
        RA_CK_ERR(ra_send_named(f.scope, s, &msg), RA_EINVAL);
        RA_CK_ERR(ra_runtime_send_named(f.rt, s, &msg), RA_EINVAL);
        ck_assert_ptr_nonnull(msg);
        ra_msg_unref(&msg);
        RA_CK_ERR(ra_pg_join(f.rt, s, a), RA_EINVAL);
        RA_CK_ERR(ra_pg_leave(f.rt, s, a), RA_EINVAL);
        RA_CK_ERR(ra_pg_members(f.rt, s, NULL, 0, &n), RA_EINVAL);
        RA_CK_ERR(ra_pg_subscribe(f.scope, s, &ref), RA_EINVAL);
        RA_CK_ERR(ra_ns_register(f.rt, "ns", s, a, RA_NAME_FAIL, &h),
                  RA_EINVAL);
        RA_CK_ERR(ra_ns_whereis(f.rt, "ns", s, &h), RA_EINVAL);
        RA_CK_ERR(ra_ns_unregister(f.rt, "ns", s, a), RA_EINVAL);
    }
    // The namespace may be empty, but not NULL or too long.
    RA_CK_ERR(ra_ns_register(f.rt, NULL, "x", a, RA_NAME_FAIL, &h),
              RA_EINVAL);
    RA_CK_ERR(ra_ns_register(f.rt, too_long, "x", a, RA_NAME_FAIL, &h),
              RA_EINVAL);
    RA_CK_ERR(ra_ns_register(f.rt, "ns", "x", a, (ra_name_policy_t)7, &h),
              RA_EINVAL);
    // Other bad arguments.
    RA_CK_ERR(ra_register(NULL, "x", a), RA_EINVAL);
    RA_CK_ERR(ra_whereis(f.rt, "x", NULL), RA_EINVAL);
    RA_CK_ERR(ra_pg_members(f.rt, "g", NULL, 0, NULL), RA_EINVAL);
    RA_CK_ERR(ra_pg_subscribe(f.scope, "g", NULL), RA_EINVAL);
    RA_CK_ERR(ra_name_of(f.rt, a, NULL, 0), RA_EINVAL);
    // RA_NAME_MAX bytes exactly is fine everywhere.
    RA_CK_OK(ra_register(f.rt, longest, a));
    RA_CK_OK(ra_whereis(f.rt, longest, &h));
    RA_CK_PID_EQ(h, a);
    RA_CK_ERR(ra_name_of(f.rt, a, buf, sizeof buf), RA_EINVAL);
    RA_CK_OK(ra_pg_join(f.rt, longest, a));
    RA_CK_OK(ra_ns_register(f.rt, longest, longest, a, RA_NAME_FAIL, &h));
    RA_CK_OK(ra_ns_whereis(f.rt, longest, longest, &h));
    RA_CK_PID_EQ(h, a);
    teardown(&f);
}
END_TEST

// Destroying a runtime whose registry still holds names, groups and
// subscriptions frees them all (valgrind checks this run).
START_TEST(test_registry_destroy_with_entries)
{
    fixture_t f;
    uint64_t ref;
    char name[32];

    setup(&f, 2);
    RA_CK_OK(ra_pg_subscribe(f.scope, "g0", &ref));
    for (int i = 0; i < 100; i++) {
        ra_pid_t a = spawn(&f, NULL);
        snprintf(name, sizeof name, "actor-%d", i);
        RA_CK_OK(ra_register(f.rt, name, a));
        RA_CK_OK(ra_ns_register(f.rt, "ns", name, a, RA_NAME_FAIL, NULL));
        snprintf(name, sizeof name, "g%d", i % 7);
        RA_CK_OK(ra_pg_join(f.rt, name, a));
        RA_CK_OK(ra_pg_join(f.rt, name, a));
    }
    // The scope is left open too: ra_runtime_destroy ends it.
    ra_runtime_destroy(&f.rt);
    ck_assert_ptr_null(f.rt);
}
END_TEST

// Registry calls on a runtime that never created its registry.
START_TEST(test_registry_lookups_before_first_use)
{
    fixture_t f;
    ra_pid_t h;
    size_t n = 99;
    char buf[8];

    setup(&f, 1);
    RA_CK_ERR(ra_whereis(f.rt, "x", &h), RA_ENOENT);
    RA_CK_ERR(ra_unregister(f.rt, "x"), RA_ENOENT);
    RA_CK_ERR(ra_name_of(f.rt, ra_self(f.scope), buf, sizeof buf),
              RA_ENOENT);
    RA_CK_OK(ra_pg_members(f.rt, "g", NULL, 0, &n));
    ck_assert_uint_eq(n, 0);
    RA_CK_ERR(ra_pg_unsubscribe(f.scope, 1), RA_ENOENT);
    RA_CK_ERR(ra_ns_whereis(f.rt, "", "x", &h), RA_ENOENT);
    RA_CK_ERR(ra_ns_unregister(f.rt, "", "x", h), RA_ENOENT);
    teardown(&f);
}
END_TEST

static Suite *
registry_suite(void)
{
    Suite *s = suite_create("registry");
    TCase *tc;

    tc = tcase_create("names");
    tcase_add_test(tc, test_registry_register_whereis_unregister);
    tcase_add_test(tc, test_registry_register_conflicts);
    tcase_add_test(tc, test_registry_send_named);
    tcase_add_test(tc, test_registry_name_free_before_down);
    tcase_add_test(tc, test_registry_reregister_from_down_race);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("pg");
    tcase_add_test(tc, test_registry_pg_join_twice_leave_once);
    tcase_add_test(tc, test_registry_pg_members_join_order);
    tcase_add_test(tc, test_registry_pg_leave_non_member);
    tcase_add_test(tc, test_registry_pg_dead_member_leaves);
    tcase_add_test(tc, test_registry_pg_subscribe_unsubscribe);
    tcase_add_test(tc, test_registry_pg_dead_subscriber_released);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("ns");
    tcase_add_test(tc, test_registry_ns_policy_fail);
    tcase_add_test(tc, test_registry_ns_policy_get_existing);
    tcase_add_test(tc, test_registry_ns_policy_replace);
    tcase_add_test(tc, test_registry_ns_namespaces_distinct);
    tcase_add_test(tc, test_registry_ns_released_on_death);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);

    tc = tcase_create("misc");
    tcase_add_test(tc, test_registry_bad_names_einval);
    tcase_add_test(tc, test_registry_destroy_with_entries);
    tcase_add_test(tc, test_registry_lookups_before_first_use);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(registry_suite());
}

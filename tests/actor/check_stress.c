// check_stress.c - stress tests of the actor runtime: many producers, a
// million idle actors, a long crashing link chain, spawn/exit churn and
// concurrent links, monitors and kills.
//
// Sizes go through ra_test_scaled so that sanitizer runs can shrink them
// with RAYO_TEST_SCALE.  Callbacks never assert: they record what they saw
// in atomics, and the test thread asserts exact totals afterwards.
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../testutil.h"

// Message tags shared by the behaviours below.
enum {
    TAG_DATA = 1,
    TAG_TOTALS = 2,
    TAG_GROW = 3,
    TAG_FAR_END = 4,
    TAG_PING = 5,
    TAG_LINK_TO = 6,
    TAG_STOP = 7
};

// send_bytes sends len bytes as a message with tag from ctx (or from
// outside any actor when ctx is NULL) and frees the message if the send
// fails.  Returns the send's result.
static int
send_bytes(ra_runtime_t *rt, ra_ctx_t *ctx, ra_pid_t to, int32_t tag,
           const void *data, size_t len)
{
    ra_msg_t *msg = NULL;
    int rc;

    if ((rc = ra_msg_new_bytes(&msg, tag, data, len)) != 0) {
        return rc;
    }
    rc = ctx != NULL ? ra_send(ctx, to, &msg) : ra_runtime_send(rt, to, &msg);
    ra_msg_unref(&msg); // NULL after a successful send
    return rc;
}

// xorshift64* generator for randomised tests, one per thread.
static uint64_t
rng_next(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}

// ---------------------------------------------------------------------
// Eight producers, one counter.

#define NPRODUCERS 8

typedef struct seq_item {
    uint32_t producer;
    uint32_t seq;
} seq_item_t;

typedef struct totals {
    uint64_t total;
    uint64_t violations;
    uint64_t bad;                    // malformed messages
    uint32_t next[NPRODUCERS];       // next expected sequence per producer
} totals_t;

static int
counter_init(ra_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = calloc(1, sizeof(totals_t));
    return *state != NULL ? 0 : RA_ENOMEM;
}

// counter_handle checks that each producer's sequence numbers arrive in
// order and answers a call with a copy of its totals.
static int
counter_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    totals_t *t = state;
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    seq_item_t it;

    if (ra_call_ref(ctx) != 0) {
        ra_msg_t *reply = NULL;
        int rc = ra_msg_new_bytes(&reply, TAG_TOTALS, t, sizeof(*t));

        if (rc != 0) {
            return rc;
        }
        return ra_reply(ctx, &reply);
    }
    if (ra_msg_kind(msg) != RA_MSG_BYTES || ra_msg_tag(msg) != TAG_DATA ||
        len != sizeof(it)) {
        t->bad++;
        return 0;
    }
    memcpy(&it, data, sizeof(it));
    if (it.producer >= NPRODUCERS) {
        t->bad++;
        return 0;
    }
    if (it.seq != t->next[it.producer]) {
        t->violations++;
    }
    t->next[it.producer] = it.seq + 1;
    t->total++;
    return 0;
}

static void
counter_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)reason;
    free(state);
}

static const ra_behaviour_t counter_beh = {
    "counter", counter_init, counter_handle, counter_terminate};

typedef struct producer {
    ra_runtime_t *rt;
    ra_pid_t to;
    uint32_t id;
    size_t n;
    int scope_rc;
    atomic_size_t *failures;
} producer_t;

// producer_main opens a scope on its own thread and sends n numbered
// messages to the counter.
static void *
producer_main(void *arg)
{
    producer_t *p = arg;
    ra_ctx_t *ctx = NULL;

    p->scope_rc = ra_scope_new(p->rt, &ctx);
    if (p->scope_rc != 0) {
        return NULL;
    }
    for (size_t i = 0; i < p->n; i++) {
        seq_item_t it = {p->id, (uint32_t)i};

        if (send_bytes(p->rt, ctx, p->to, TAG_DATA, &it, sizeof(it)) != 0) {
            atomic_fetch_add(p->failures, 1);
        }
    }
    ra_scope_destroy(&ctx);
    return NULL;
}

START_TEST(test_stress_eight_producers_exact_counts)
{
    ra_runtime_opts_t opts = {.threads = 2};
    ra_runtime_t *rt = NULL;
    ra_ctx_t *scope = NULL;
    ra_pid_t counter;
    pthread_t th[NPRODUCERS];
    producer_t prod[NPRODUCERS];
    atomic_size_t failures = 0;
    size_t n = ra_test_scaled(250000);
    ra_msg_t *req = NULL;
    ra_msg_t *reply = NULL;
    totals_t t;
    size_t len = 0;
    const void *data;
    uint64_t t0;

    RA_CK_OK(ra_runtime_new(&rt, &opts));
    RA_CK_OK(ra_scope_new(rt, &scope));
    RA_CK_OK(ra_spawn(rt, &counter_beh, NULL, NULL, &counter));
    t0 = ra_test_now_ns();
    for (uint32_t i = 0; i < NPRODUCERS; i++) {
        prod[i] = (producer_t){rt, counter, i, n, -1, &failures};
        ck_assert_int_eq(pthread_create(&th[i], NULL, producer_main, &prod[i]),
                         0);
    }
    for (uint32_t i = 0; i < NPRODUCERS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        RA_CK_OK(prod[i].scope_rc);
    }
    ck_assert_uint_eq(atomic_load(&failures), 0);

    // Every producer's sends happened before the joins, so the call queues
    // behind all of them.
    req = ra_test_msg("totals");
    RA_CK_OK(ra_call(scope, counter, &req, 60000, &reply));
    ck_assert_ptr_null(req);
    ck_assert_ptr_nonnull(reply);
    data = ra_msg_data(reply, &len);
    ck_assert_uint_eq(len, sizeof(t));
    memcpy(&t, data, sizeof(t));
    ra_msg_unref(&reply);
    printf("eight producers: %zu messages in %.3f s\n", NPRODUCERS * n,
           (double)(ra_test_now_ns() - t0) / 1e9);

    ck_assert_uint_eq(t.bad, 0);
    ck_assert_uint_eq(t.violations, 0);
    ck_assert_uint_eq(t.total, (uint64_t)NPRODUCERS * n);
    for (uint32_t i = 0; i < NPRODUCERS; i++) {
        ck_assert_uint_eq(t.next[i], n);
    }
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
    ck_assert_ptr_null(rt);
}
END_TEST

// ---------------------------------------------------------------------
// A million idle actors.

static atomic_size_t idle_terminated;

static int
idle_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return 0;
}

static void
idle_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)state;
    (void)reason;
    atomic_fetch_add(&idle_terminated, 1);
}

static const ra_behaviour_t idle_beh = {
    "idle", NULL, idle_handle, idle_terminate};

// rss_bytes returns the resident set size from /proc/self/statm, or 0 if
// it cannot be read.
static size_t
rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0;
    unsigned long resident = 0;
    int got;

    if (f == NULL) {
        return 0;
    }
    got = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return got == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

START_TEST(test_stress_million_live_actors)
{
    ra_runtime_t *rt = NULL;
    size_t n = ra_test_scaled(1000000);
    size_t rss0;
    size_t rss1;
    double per_actor;
    double secs;
    uint64_t t0;

    atomic_store(&idle_terminated, 0);
    RA_CK_OK(ra_runtime_new(&rt, NULL));
    rss0 = rss_bytes();
    t0 = ra_test_now_ns();
    for (size_t i = 0; i < n; i++) {
        ra_pid_t pid;
        int rc = ra_spawn(rt, &idle_beh, NULL, NULL, &pid);

        if (rc != 0) {
            ck_abort_msg("spawn %zu of %zu returned %s", i, n,
                         ra_err_name(rc));
        }
    }
    secs = (double)(ra_test_now_ns() - t0) / 1e9;
    rss1 = rss_bytes();
    ck_assert_uint_eq(ra_runtime_actor_count(rt), n);
    ck_assert_uint_eq(atomic_load(&idle_terminated), 0);

    per_actor = rss1 > rss0 ? (double)(rss1 - rss0) / (double)n : 0.0;
    printf("million actors: %zu spawned in %.3f s (%.0f/s), RSS +%.1f MiB "
           "(%.0f bytes per actor)\n",
           n, secs, secs > 0 ? (double)n / secs : 0.0,
           (double)(rss1 - (rss1 > rss0 ? rss0 : rss1)) / 1048576.0,
           per_actor);
    if (ra_test_scale() == 1.0) {
        ck_assert_uint_ne(rss0, 0);
        ck_assert_msg(per_actor < 1024.0,
                      "%.0f bytes of RSS per idle actor, expected < 1024",
                      per_actor);
    }

    t0 = ra_test_now_ns();
    ra_runtime_destroy(&rt);
    ck_assert_ptr_null(rt);
    printf("million actors: runtime destroyed in %.3f s\n",
           (double)(ra_test_now_ns() - t0) / 1e9);
    ck_assert_uint_eq(atomic_load(&idle_terminated), n);
}
END_TEST


// ---------------------------------------------------------------------
// A long chain of links, crashed at one end.

static size_t chain_n;
static ra_pid_t chain_report_to;
static ra_reason_t chain_want;
static atomic_int *chain_term;          // terminate calls per link
static atomic_size_t chain_terminated;
static atomic_size_t chain_wrong_reason;
static atomic_size_t chain_errors;

static const ra_behaviour_t chain_beh;

// chain_handle: on TAG_GROW, link i spawns link i+1 linked to itself and
// passes the message on; the last link reports its pid to the scope.
static int
chain_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    size_t idx = (size_t)(uintptr_t)state;
    ra_spawn_opts_t opts = {.flags = RA_SPAWN_LINK};
    ra_pid_t pid;
    int rc;

    if (ra_msg_tag(msg) != TAG_GROW) {
        atomic_fetch_add(&chain_errors, 1);
        return 0;
    }
    if (idx + 1 < chain_n) {
        rc = ra_spawn_from(ctx, &chain_beh, (void *)(uintptr_t)(idx + 1),
                           &opts, &pid, NULL);
        if (rc == 0) {
            rc = send_bytes(NULL, ctx, pid, TAG_GROW, NULL, 0);
        }
    } else {
        pid = ra_self(ctx);
        rc = send_bytes(NULL, ctx, chain_report_to, TAG_FAR_END, &pid,
                        sizeof(pid));
    }
    if (rc != 0) {
        atomic_fetch_add(&chain_errors, 1);
    }
    return 0;
}

static void
chain_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    size_t idx = (size_t)(uintptr_t)state;

    (void)ctx;
    if (idx < chain_n) {
        atomic_fetch_add(&chain_term[idx], 1);
    }
    if (reason != chain_want) {
        atomic_fetch_add(&chain_wrong_reason, 1);
    }
    atomic_fetch_add(&chain_terminated, 1);
}

static const ra_behaviour_t chain_beh = {
    "chain", NULL, chain_handle, chain_terminate};

START_TEST(test_stress_link_chain_crash)
{
    ra_runtime_t *rt = NULL;
    ra_ctx_t *scope = NULL;
    ra_msg_t *msg = NULL;
    ra_pid_t first;
    ra_pid_t far;
    ra_pid_t down_pid;
    ra_reason_t down_reason = -1;
    uint64_t mref = 0;
    uint64_t down_ref = 0;
    size_t len = 0;
    const void *data;
    uint64_t t0;

    chain_n = ra_test_scaled(10000);
    chain_want = RA_REASON_USER + 7;
    chain_term = calloc(chain_n, sizeof(*chain_term));
    ck_assert_ptr_nonnull(chain_term);
    atomic_store(&chain_terminated, 0);
    atomic_store(&chain_wrong_reason, 0);
    atomic_store(&chain_errors, 0);

    RA_CK_OK(ra_runtime_new(&rt, NULL));
    RA_CK_OK(ra_scope_new(rt, &scope));
    chain_report_to = ra_self(scope);

    // Grow the chain one link at a time, each from its predecessor.
    t0 = ra_test_now_ns();
    RA_CK_OK(ra_spawn(rt, &chain_beh, (void *)(uintptr_t)0, NULL, &first));
    RA_CK_OK(send_bytes(rt, scope, first, TAG_GROW, NULL, 0));
    RA_CK_OK(ra_receive(scope, 60000, &msg));
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_BYTES);
    ck_assert_int_eq(ra_msg_tag(msg), TAG_FAR_END);
    data = ra_msg_data(msg, &len);
    ck_assert_uint_eq(len, sizeof(far));
    memcpy(&far, data, sizeof(far));
    ra_msg_unref(&msg);
    ck_assert_uint_eq(atomic_load(&chain_errors), 0);
    ck_assert_uint_eq(ra_runtime_actor_count(rt), chain_n + 1);
    printf("link chain: %zu links built in %.3f s\n", chain_n,
           (double)(ra_test_now_ns() - t0) / 1e9);

    RA_CK_OK(ra_monitor(scope, far, &mref));
    t0 = ra_test_now_ns();
    RA_CK_OK(ra_exit_pid(scope, first, chain_want));

    // The crash travels the whole chain before the far end goes down.
    RA_CK_OK(ra_receive(scope, 60000, &msg));
    ck_assert_int_eq(ra_msg_kind(msg), RA_MSG_DOWN);
    RA_CK_OK(ra_msg_down_info(msg, &down_ref, &down_pid, &down_reason));
    ra_msg_unref(&msg);
    printf("link chain: crash crossed %zu links in %.3f s\n", chain_n,
           (double)(ra_test_now_ns() - t0) / 1e9);
    ck_assert_uint_eq(down_ref, mref);
    RA_CK_PID_EQ(down_pid, far);
    RA_CK_REASON_EQ(down_reason, chain_want);

    RA_CK_WAIT(atomic_load(&chain_terminated) >= chain_n, 30000);
    RA_CK_WAIT(ra_runtime_actor_count(rt) == 1, 30000);
    ck_assert_uint_eq(atomic_load(&chain_terminated), chain_n);
    ck_assert_uint_eq(atomic_load(&chain_wrong_reason), 0);
    for (size_t i = 0; i < chain_n; i++) {
        ck_assert_msg(atomic_load(&chain_term[i]) == 1,
                      "link %zu terminated %d times, expected once", i,
                      atomic_load(&chain_term[i]));
    }
    ck_assert_uint_eq(atomic_load(&chain_errors), 0);
    ck_assert(!ra_is_alive(rt, first));
    ck_assert(!ra_is_alive(rt, far));

    // Nothing else arrives: one DOWN, no stray messages.
    RA_CK_ERR(ra_receive(scope, 50, &msg), RA_ETIMEOUT);
    ck_assert_ptr_null(msg);
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
    ck_assert_uint_eq(atomic_load(&chain_terminated), chain_n);
    free(chain_term);
    chain_term = NULL;
}
END_TEST

// ---------------------------------------------------------------------
// Spawn/exit churn: slots are recycled, pids never are.

static atomic_size_t churn_handled;
static atomic_size_t churn_terminated;
static atomic_size_t churn_wrong_reason;

// once_handle ends its actor normally after its first message.
static int
once_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)state;
    (void)msg;
    atomic_fetch_add(&churn_handled, 1);
    ra_exit(ctx, RA_NORMAL);
    return 0;
}

static void
once_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)state;
    if (reason != RA_NORMAL) {
        atomic_fetch_add(&churn_wrong_reason, 1);
    }
    atomic_fetch_add(&churn_terminated, 1);
}

static const ra_behaviour_t once_beh = {
    "once", NULL, once_handle, once_terminate};

static int
pid_cmp(const void *a, const void *b)
{
    const ra_pid_t *x = a;
    const ra_pid_t *y = b;

    if (x->id != y->id) {
        return x->id < y->id ? -1 : 1;
    }
    if (x->gen != y->gen) {
        return x->gen < y->gen ? -1 : 1;
    }
    return 0;
}

#define CHURN_KEEP 16

START_TEST(test_stress_spawn_exit_churn)
{
    ra_runtime_t *rt = NULL;
    size_t n = ra_test_scaled(200000);
    ra_pid_t *pids = calloc(n, sizeof(*pids));
    size_t keep = n < CHURN_KEEP ? n : CHURN_KEEP;
    size_t reused = 0;
    uint64_t t0;

    ck_assert_ptr_nonnull(pids);
    atomic_store(&churn_handled, 0);
    atomic_store(&churn_terminated, 0);
    atomic_store(&churn_wrong_reason, 0);
    RA_CK_OK(ra_runtime_new(&rt, NULL));
    t0 = ra_test_now_ns();
    for (size_t i = 0; i < n; i++) {
        int rc = ra_spawn(rt, &once_beh, NULL, NULL, &pids[i]);

        if (rc == 0) {
            rc = send_bytes(rt, NULL, pids[i], TAG_PING, NULL, 0);
        }
        if (rc != 0) {
            ck_abort_msg("actor %zu of %zu: %s", i, n, ra_err_name(rc));
        }
    }
    RA_CK_WAIT(atomic_load(&churn_terminated) >= n, 60000);
    RA_CK_WAIT(ra_runtime_actor_count(rt) == 0, 10000);
    printf("churn: %zu actors spawned and ended in %.3f s\n", n,
           (double)(ra_test_now_ns() - t0) / 1e9);
    ck_assert_uint_eq(atomic_load(&churn_handled), n);
    ck_assert_uint_eq(atomic_load(&churn_terminated), n);
    ck_assert_uint_eq(atomic_load(&churn_wrong_reason), 0);

    // The early pids stay dead even though their slots were reused.
    for (size_t i = 0; i < keep; i++) {
        ra_msg_t *msg = ra_test_msg("late");

        ck_assert(!ra_is_alive(rt, pids[i]));
        RA_CK_ERR(ra_runtime_send(rt, pids[i], &msg), RA_ENOPROC);
        ck_assert_ptr_nonnull(msg); // the failure left ownership with us
        ra_msg_unref(&msg);
        RA_CK_ERR(ra_runtime_exit(rt, pids[i], RA_KILL), RA_ENOPROC);
    }

    // No (slot, generation) pair was handed out twice.
    qsort(pids, n, sizeof(*pids), pid_cmp);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_ne(pids[i].id, 0);
        if (i > 0 && pids[i].id == pids[i - 1].id) {
            char a[RA_PID_STRLEN];

            ck_assert_msg(pids[i].gen != pids[i - 1].gen,
                          "pid %s was handed out twice",
                          ra_pid_str(pids[i], a));
            reused++;
        }
    }
    printf("churn: %zu spawns reused a slot\n", reused);
    ra_runtime_destroy(&rt);
    ck_assert_uint_eq(atomic_load(&churn_terminated), n);
    free(pids);
}
END_TEST

// ---------------------------------------------------------------------
// Concurrent links, monitors and kills from several threads.

#define CL_THREADS 4

typedef struct cl_key {
    ra_pid_t pid;
    size_t idx;
} cl_key_t;

static size_t cl_n;
static ra_pid_t *cl_pids;               // actor i's pid
static cl_key_t *cl_keys;               // the same, sorted for lookups
static atomic_int *cl_term;             // terminate calls per actor
static _Atomic ra_reason_t *cl_reason;  // the reason terminate saw
static atomic_size_t cl_terminated;
static atomic_size_t cl_errors;         // unexpected results in actors

static int
cl_key_cmp(const void *a, const void *b)
{
    return pid_cmp(&((const cl_key_t *)a)->pid, &((const cl_key_t *)b)->pid);
}

// cl_index returns actor index of pid, or cl_n if it is none of ours.
static size_t
cl_index(ra_pid_t pid)
{
    cl_key_t key = {pid, 0};
    const cl_key_t *k =
        bsearch(&key, cl_keys, cl_n, sizeof(*cl_keys), cl_key_cmp);

    return k != NULL && ra_pid_eq(k->pid, pid) ? k->idx : cl_n;
}

// node_handle links to another actor on TAG_LINK_TO, ends normally on
// TAG_STOP and ignores anything else.
static int
node_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    uint32_t j;
    int rc;

    (void)state;
    switch (ra_msg_tag(msg)) {
    case TAG_LINK_TO:
        if (len != sizeof(j)) {
            atomic_fetch_add(&cl_errors, 1);
            return 0;
        }
        memcpy(&j, data, sizeof(j));
        rc = ra_link(ctx, cl_pids[j]);
        if (rc != 0 && rc != RA_ENOPROC) {
            atomic_fetch_add(&cl_errors, 1);
        }
        return 0;
    case TAG_STOP:
        ra_exit(ctx, RA_NORMAL);
        return 0;
    default:
        return 0;
    }
}

static void
node_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    size_t idx = (size_t)(uintptr_t)state;

    (void)ctx;
    atomic_store(&cl_reason[idx], reason);
    atomic_fetch_add(&cl_term[idx], 1);
    atomic_fetch_add(&cl_terminated, 1);
}

static const ra_behaviour_t node_beh = {
    "node", NULL, node_handle, node_terminate};

typedef struct cl_mon {
    uint64_t ref;
    size_t idx;
    bool seen;
} cl_mon_t;

static int
cl_mon_cmp(const void *a, const void *b)
{
    uint64_t x = ((const cl_mon_t *)a)->ref;
    uint64_t y = ((const cl_mon_t *)b)->ref;

    return x < y ? -1 : x > y;
}

// What one thread did and saw; the test thread asserts on it.
typedef struct cl_thread {
    ra_runtime_t *rt;
    pthread_barrier_t *barrier;
    uint64_t rng;
    size_t ops;
    int scope_rc;
    // Done.
    size_t monitors;
    size_t links;            // distinct actors linked to
    size_t link_noproc;      // links refused with RA_ENOPROC
    size_t kills;
    size_t errors;           // unexpected return codes
    size_t dup_refs;         // ra_monitor returned a reference twice
    // Seen.
    size_t downs;
    size_t exits;
    size_t unknown_downs;    // DOWN for a reference never returned
    size_t double_downs;     // a second DOWN for one reference
    size_t wrong_downs;      // DOWN with the wrong pid or reason
    size_t wrong_exits;      // EXIT from a stranger or with a wrong reason
    size_t strays;           // any other message
    int receive_rc;          // the first failure of ra_receive, or 0
} cl_thread_t;

// cl_do_ops runs t->ops random operations as the scope ctx.
static void
cl_do_ops(cl_thread_t *t, ra_ctx_t *ctx, cl_mon_t *mons, bool *linked)
{
    for (size_t k = 0; k < t->ops; k++) {
        uint64_t r = rng_next(&t->rng);
        size_t i = (size_t)((r >> 8) % cl_n);
        unsigned op = (unsigned)(r % 100);
        ra_pid_t pid = cl_pids[i];
        int rc;

        if (op < 35) {
            uint64_t mref = 0;

            if ((rc = ra_monitor(ctx, pid, &mref)) == 0) {
                mons[t->monitors++] = (cl_mon_t){mref, i, false};
            } else {
                t->errors++; // RA_NOPROC comes as a DOWN, not an error
                rc = 0;
            }
        } else if (op < 55) {
            rc = ra_link(ctx, pid);
            if (rc == 0 && !linked[i]) {
                linked[i] = true;
                t->links++;
            } else if (rc == RA_ENOPROC) {
                t->link_noproc++; // an RA_NOPROC EXIT comes (we trap)
                rc = 0;
            }
        } else if (op < 70) {
            uint32_t j = (uint32_t)((i + 1 + (r >> 40) % (cl_n - 1)) % cl_n);

            rc = send_bytes(t->rt, ctx, pid, TAG_LINK_TO, &j, sizeof(j));
        } else if (op < 75) {
            ra_reason_t why = RA_REASON_USER + (ra_reason_t)((r >> 40) % 50);

            if ((r >> 32) % 5 == 0) {
                why = RA_KILL; // untrappable; it ends with RA_KILLED
            }

            rc = ra_exit_pid(ctx, pid, why);
            t->kills += rc == 0;
        } else if (op < 77) {
            rc = send_bytes(t->rt, ctx, pid, TAG_STOP, NULL, 0);
        } else {
            rc = send_bytes(t->rt, ctx, pid, TAG_PING, NULL, 0);
        }
        if (rc != 0 && rc != RA_ENOPROC) {
            t->errors++;
        }
    }
}

// cl_take records one message received by the scope.
static void
cl_take(cl_thread_t *t, ra_msg_t *msg, cl_mon_t *mons)
{
    uint64_t ref = 0;
    ra_pid_t pid;
    ra_reason_t reason = -1;
    size_t idx;

    switch (ra_msg_kind(msg)) {
    case RA_MSG_DOWN: {
        cl_mon_t key = {0, 0, false};
        cl_mon_t *m;

        t->downs++;
        if (ra_msg_down_info(msg, &ref, &pid, &reason) != 0) {
            t->wrong_downs++;
            break;
        }
        key.ref = ref;
        m = bsearch(&key, mons, t->monitors, sizeof(*mons), cl_mon_cmp);
        if (m == NULL) {
            t->unknown_downs++;
        } else if (m->seen) {
            t->double_downs++;
        } else {
            m->seen = true;
            if (!ra_pid_eq(pid, cl_pids[m->idx]) ||
                (reason != RA_NOPROC &&
                 reason != atomic_load(&cl_reason[m->idx]))) {
                t->wrong_downs++;
            }
        }
        break;
    }
    case RA_MSG_EXIT:
        t->exits++;
        if (ra_msg_exit_info(msg, &pid, &reason) != 0 ||
            (idx = cl_index(pid)) == cl_n ||
            (reason != RA_NOPROC && reason != atomic_load(&cl_reason[idx]))) {
            t->wrong_exits++;
        }
        break;
    default:
        t->strays++;
        break;
    }
}

// cl_thread_main opens a trapping scope, runs its random operations, waits
// while the test thread kills every actor left, then collects exactly the
// DOWN and EXIT messages its operations promised, and checks that no more
// arrive.
static void *
cl_thread_main(void *arg)
{
    cl_thread_t *t = arg;
    ra_ctx_t *ctx = NULL;
    cl_mon_t *mons = calloc(t->ops, sizeof(*mons));
    bool *linked = calloc(cl_n, sizeof(*linked));
    ra_msg_t *msg = NULL;
    int rc;

    t->scope_rc = mons == NULL || linked == NULL ? RA_ENOMEM
                                                  : ra_scope_new(t->rt, &ctx);
    if (t->scope_rc == 0) {
        ra_trap_exit(ctx, true);
        cl_do_ops(t, ctx, mons, linked);
    }
    pthread_barrier_wait(t->barrier); // operations done
    pthread_barrier_wait(t->barrier); // every actor has ended
    if (t->scope_rc != 0) {
        goto out;
    }
    qsort(mons, t->monitors, sizeof(*mons), cl_mon_cmp);
    for (size_t i = 1; i < t->monitors; i++) {
        t->dup_refs += mons[i].ref == mons[i - 1].ref;
    }
    while (t->downs < t->monitors ||
           t->exits < t->links + t->link_noproc) {
        if ((rc = ra_receive(ctx, 20000, &msg)) != 0) {
            t->receive_rc = rc;
            goto out;
        }
        cl_take(t, msg, mons);
        ra_msg_unref(&msg);
    }
    // Every actor is gone: anything still to come is one too many.
    while ((rc = ra_receive(ctx, 100, &msg)) == 0) {
        cl_take(t, msg, mons);
        ra_msg_unref(&msg);
    }
    if (rc != RA_ETIMEOUT) {
        t->receive_rc = rc;
    }
out:
    ra_scope_destroy(&ctx);
    free(linked);
    free(mons);
    return NULL;
}

START_TEST(test_stress_concurrent_link_monitor)
{
    unsigned seed = ra_test_seed("test_stress_concurrent_link_monitor");
    ra_runtime_t *rt = NULL;
    pthread_barrier_t barrier;
    pthread_t th[CL_THREADS];
    cl_thread_t t[CL_THREADS];
    size_t ops = ra_test_scaled(10000);
    size_t monitors = 0;
    size_t downs = 0;
    size_t exits = 0;
    size_t kills = 0;
    uint64_t t0;

    cl_n = ra_test_scaled(2000);
    cl_n = cl_n < 2 ? 2 : cl_n;
    cl_pids = calloc(cl_n, sizeof(*cl_pids));
    cl_keys = calloc(cl_n, sizeof(*cl_keys));
    cl_term = calloc(cl_n, sizeof(*cl_term));
    cl_reason = calloc(cl_n, sizeof(*cl_reason));
    ck_assert(cl_pids != NULL && cl_keys != NULL && cl_term != NULL &&
              cl_reason != NULL);
    atomic_store(&cl_terminated, 0);
    atomic_store(&cl_errors, 0);

    RA_CK_OK(ra_runtime_new(&rt, NULL));
    for (size_t i = 0; i < cl_n; i++) {
        atomic_store(&cl_reason[i], -1);
        RA_CK_OK(ra_spawn(rt, &node_beh, (void *)(uintptr_t)i, NULL,
                          &cl_pids[i]));
        cl_keys[i] = (cl_key_t){cl_pids[i], i};
    }
    qsort(cl_keys, cl_n, sizeof(*cl_keys), cl_key_cmp);

    t0 = ra_test_now_ns();
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, CL_THREADS + 1), 0);
    for (unsigned i = 0; i < CL_THREADS; i++) {
        t[i] = (cl_thread_t){.rt = rt, .barrier = &barrier, .ops = ops,
                             .rng = ((uint64_t)seed << 8) + i + 1};
        rng_next(&t[i].rng);
        ck_assert_int_eq(pthread_create(&th[i], NULL, cl_thread_main, &t[i]),
                         0);
    }
    pthread_barrier_wait(&barrier);

    // End whatever survived, then let the threads collect their messages.
    for (size_t i = 0; i < cl_n; i++) {
        int rc = ra_runtime_exit(rt, cl_pids[i], RA_KILL);

        ck_assert_msg(rc == 0 || rc == RA_ENOPROC, "kill %zu: %s", i,
                      ra_err_name(rc));
    }
    RA_CK_WAIT(atomic_load(&cl_terminated) >= cl_n, 30000);
    pthread_barrier_wait(&barrier);
    for (unsigned i = 0; i < CL_THREADS; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    }
    pthread_barrier_destroy(&barrier);

    for (unsigned i = 0; i < CL_THREADS; i++) {
        cl_thread_t *x = &t[i];

        ck_assert_msg(x->scope_rc == 0, "thread %u: scope: %s", i,
                      ra_err_name(x->scope_rc));
        ck_assert_msg(x->receive_rc == 0, "thread %u: receive: %s", i,
                      ra_err_name(x->receive_rc));
        ck_assert_msg(x->errors == 0, "thread %u: %zu unexpected results", i,
                      x->errors);
        ck_assert_msg(x->dup_refs == 0, "thread %u: %zu duplicate refs", i,
                      x->dup_refs);
        ck_assert_msg(x->downs == x->monitors,
                      "thread %u: %zu DOWN for %zu monitors", i, x->downs,
                      x->monitors);
        ck_assert_msg(x->unknown_downs == 0 && x->double_downs == 0,
                      "thread %u: %zu unknown and %zu repeated DOWN", i,
                      x->unknown_downs, x->double_downs);
        ck_assert_msg(x->wrong_downs == 0, "thread %u: %zu wrong DOWN", i,
                      x->wrong_downs);
        ck_assert_msg(x->exits == x->links + x->link_noproc,
                      "thread %u: %zu EXIT for %zu links + %zu refused", i,
                      x->exits, x->links, x->link_noproc);
        ck_assert_msg(x->wrong_exits == 0, "thread %u: %zu wrong EXIT", i,
                      x->wrong_exits);
        ck_assert_msg(x->strays == 0, "thread %u: %zu stray messages", i,
                      x->strays);
        monitors += x->monitors;
        downs += x->downs;
        exits += x->exits;
        kills += x->kills;
    }
    printf("link/monitor: %zu actors, %u threads x %zu ops: %zu kills, "
           "%zu monitors, %zu DOWN, %zu EXIT in %.3f s\n",
           cl_n, CL_THREADS, ops, kills, monitors, downs, exits,
           (double)(ra_test_now_ns() - t0) / 1e9);

    ck_assert_uint_eq(atomic_load(&cl_errors), 0);
    ck_assert_uint_eq(atomic_load(&cl_terminated), cl_n);
    for (size_t i = 0; i < cl_n; i++) {
        ck_assert_msg(atomic_load(&cl_term[i]) == 1,
                      "actor %zu terminated %d times, expected once", i,
                      atomic_load(&cl_term[i]));
    }
    RA_CK_WAIT(ra_runtime_actor_count(rt) == 0, 10000);
    ra_runtime_destroy(&rt);
    ck_assert_ptr_null(rt);
    ck_assert_uint_eq(atomic_load(&cl_terminated), cl_n);
    free(cl_reason);
    free(cl_term);
    free(cl_keys);
    free(cl_pids);
}
END_TEST

// ---------------------------------------------------------------------

// ---- a hub linked to thousands of actors ----
//
// Links beyond a handful live in a hash set; this checks it keeps exact
// membership through adds, unlinks and the hub's crash.

static atomic_size_t hub_spoke_deaths;

static void
spoke_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)state;
    if (reason == RA_REASON_USER + 9) {
        atomic_fetch_add(&hub_spoke_deaths, 1);
    }
}

static int
spoke_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return 0;
}

static const ra_behaviour_t spoke_beh = {"spoke", NULL, spoke_handle,
                                         spoke_terminate};

typedef struct hub {
    size_t n, unlinked;
    ra_pid_t *spokes;
    ra_pid_t report;
} hub_t;

// On its first message the hub spawns n linked spokes, unlinks every
// fourth, reports its link count, then waits to be crashed.
static int
hub_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    hub_t *h = state;
    if (ra_msg_tag(msg) != 1) {
        return 0;
    }
    ra_spawn_opts_t o = {.flags = RA_SPAWN_LINK};
    for (size_t i = 0; i < h->n; i++) {
        if (ra_spawn_from(ctx, &spoke_beh, NULL, &o, &h->spokes[i],
                          NULL) != 0) {
            return RA_ENOMEM;
        }
    }
    for (size_t i = 0; i < h->n; i += 4) {
        ra_unlink(ctx, h->spokes[i]);
        h->unlinked++;
    }
    ra_msg_t *m = NULL;
    if (ra_msg_new_bytes(&m, 2, NULL, 0) == 0 &&
        ra_send(ctx, h->report, &m) != 0) {
        ra_msg_unref(&m);
    }
    return 0;
}

static const ra_behaviour_t hub_beh = {"hub", NULL, hub_handle, NULL};

START_TEST(test_stress_hub_links_hash_set)
{
    ra_runtime_t *rt = NULL;
    ra_ctx_t *me = NULL;
    ra_msg_t *m = NULL;
    hub_t h = {.n = ra_test_scaled(20000)};
    ra_pid_t hub;
    ra_actor_stats_t st;

    h.spokes = calloc(h.n, sizeof(*h.spokes));
    ck_assert_ptr_nonnull(h.spokes);
    atomic_store(&hub_spoke_deaths, 0);
    RA_CK_OK(ra_runtime_new(&rt, NULL));
    RA_CK_OK(ra_scope_new(rt, &me));
    h.report = ra_self(me);
    RA_CK_OK(ra_spawn(rt, &hub_beh, &h, NULL, &hub));
    RA_CK_OK(ra_msg_new_bytes(&m, 1, NULL, 0));
    RA_CK_OK(ra_send(me, hub, &m));
    RA_CK_OK(ra_receive(me, 60000, &m));
    ra_msg_unref(&m);
    RA_CK_OK(ra_actor_stats(rt, hub, &st));
    ck_assert_uint_eq(st.links, h.n - h.unlinked);
    RA_CK_OK(ra_exit_pid(me, hub, RA_REASON_USER + 9));
    RA_CK_WAIT(atomic_load(&hub_spoke_deaths) == h.n - h.unlinked, 30000);
    // A spoke counts its death in its terminate callback, a moment before
    // its slot is freed: wait for the count of the living to settle.
    size_t alive = 0;
    uint64_t dl = ra_test_now_ms() + 10000;
    do {
        alive = 0;
        for (size_t i = 0; i < h.n; i++) {
            alive += ra_is_alive(rt, h.spokes[i]);
        }
    } while (alive != h.unlinked && ra_test_now_ms() < dl &&
             (ra_test_sleep_ms(1), true));
    ck_assert_uint_eq(alive, h.unlinked);
    ra_scope_destroy(&me);
    ra_runtime_destroy(&rt);
    ck_assert_uint_eq(atomic_load(&hub_spoke_deaths), h.n - h.unlinked);
    free(h.spokes);
}
END_TEST

// ---- layered synchronous calls ------------------------------------------
//
// LAYERS layers of WIDTH actors.  An actor of an inner layer, called with
// v, calls an actor of the next layer (chosen by v) with v and answers with
// that answer plus one; a leaf answers v plus one, at once for even v and
// from a 1 ms timer for odd v, so that its callers really wait.  Layer 0
// gets plain messages and reports to their sender.  With two scheduler
// threads and up to WIDTH * (LAYERS - 1) callers waiting at once, waits
// run out of threads: spares start, and past RA__SPARE_MAX waits nest.

enum { LAYERS = 4, WIDTH = 8 };
enum { TAG_CALL = 20, TAG_LATER = 21, TAG_DONE = 22 };

typedef struct layered {
    ra_runtime_t *rt;
    int layer;
    const ra_pid_t *next;   // the next layer's WIDTH pids, or NULL
} layered_t;

// A report of layer 0: the value sent, the answer and the call's result.
typedef struct lreport {
    uint64_t v, answer;
    int32_t rc;
} lreport_t;

// layered_call calls l's next layer with v and stores its answer.
static int
layered_call(ra_ctx_t *ctx, const layered_t *l, uint64_t v, uint64_t *out)
{
    ra_msg_t *req = NULL;
    ra_msg_t *reply = NULL;
    size_t len = 0;
    int rc;

    if ((rc = ra_msg_new_bytes(&req, TAG_CALL, &v, sizeof v)) != 0) {
        return rc;
    }
    rc = ra_call(ctx, l->next[(v / (uint64_t)(l->layer + 1)) % WIDTH], &req,
                 20000, &reply);
    ra_msg_unref(&req);
    if (rc == 0) {
        const void *data = ra_msg_data(reply, &len);
        rc = len == sizeof *out ? 0 : RA_EBADMSG;
        if (rc == 0) {
            memcpy(out, data, sizeof *out);
        }
    }
    ra_msg_unref(&reply);
    return rc;
}

// answer_u64 answers call cref with v.
static int
answer_u64(ra_runtime_t *rt, uint64_t cref, uint64_t v)
{
    ra_msg_t *m = NULL;
    int rc = ra_msg_new_bytes(&m, TAG_DONE, &v, sizeof v);

    if (rc == 0) {
        rc = ra_reply_to(rt, cref, &m);
        ra_msg_unref(&m);
    }
    return rc;
}

static int
layered_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    layered_t *l = state;
    size_t len = 0;
    const uint8_t *data = ra_msg_data(msg, &len);
    uint64_t v = 0;
    uint64_t answer = 0;
    int rc;

    if (ra_msg_tag(msg) == TAG_LATER) {
        uint64_t cv[2]; // call reference, value

        if (len != sizeof cv) {
            return RA_EBADMSG;
        }
        memcpy(cv, data, sizeof cv);
        return answer_u64(l->rt, cv[0], cv[1] + 1);
    }
    if (len != sizeof v) {
        return RA_EBADMSG;
    }
    memcpy(&v, data, sizeof v);
    if (ra_msg_tag(msg) == TAG_DATA) { // layer 0, from the test
        lreport_t rep = {v, 0, 0};

        rep.rc = layered_call(ctx, l, v, &rep.answer);
        rep.answer += 1;
        return send_bytes(l->rt, ctx, ra_sender(ctx), TAG_TOTALS, &rep,
                          sizeof rep);
    }
    if (l->next == NULL) { // a leaf
        uint64_t cv[2] = {ra_call_ref(ctx), v};
        ra_msg_t *later = NULL;

        if (v % 2 == 0) {
            return answer_u64(l->rt, cv[0], v + 1);
        }
        if ((rc = ra_msg_new_bytes(&later, TAG_LATER, cv, sizeof cv)) != 0) {
            return rc;
        }
        rc = ra_send_after(l->rt, ra_self(ctx), 1, &later, NULL);
        ra_msg_unref(&later);
        return rc;
    }
    rc = layered_call(ctx, l, v, &answer);
    return rc != 0 ? rc : answer_u64(l->rt, ra_call_ref(ctx), answer + 1);
}

static const ra_behaviour_t layered_behaviour = {"layered", NULL,
                                                 layered_handle, NULL};

START_TEST(test_stress_layered_calls_wait_without_deadlock)
{
    ra_runtime_opts_t opts = {.threads = 2};
    ra_runtime_t *rt = NULL;
    ra_ctx_t *scope = NULL;
    static ra_pid_t pids[LAYERS][WIDTH];
    static layered_t st[LAYERS][WIDTH];
    size_t n = ra_test_scaled(20000);
    size_t got = 0;
    uint64_t sum = 0;

    RA_CK_OK(ra_runtime_new(&rt, &opts));
    scope = ra_test_new_scope(rt);
    for (int layer = LAYERS - 1; layer >= 0; layer--) {
        for (int i = 0; i < WIDTH; i++) {
            st[layer][i] = (layered_t){
                rt, layer, layer + 1 < LAYERS ? pids[layer + 1] : NULL};
            RA_CK_OK(ra_spawn(rt, &layered_behaviour, &st[layer][i], NULL,
                              &pids[layer][i]));
        }
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t v = k;

        RA_CK_OK(send_bytes(rt, scope, pids[0][k % WIDTH], TAG_DATA, &v,
                            sizeof v));
    }
    while (got < n) {
        ra_msg_t *msg = NULL;
        lreport_t rep;
        size_t len = 0;

        RA_CK_OK(ra_receive(scope, 60000, &msg));
        ck_assert_int_eq(ra_msg_tag(msg), TAG_TOTALS);
        memcpy(&rep, ra_msg_data(msg, &len), sizeof rep);
        ck_assert_uint_eq(len, sizeof rep);
        ra_msg_unref(&msg);
        ck_assert_msg(rep.rc == 0, "value %llu: %s",
                      (unsigned long long)rep.v, ra_err_name(rep.rc));
        ck_assert_uint_eq(rep.answer, rep.v + LAYERS);
        sum += rep.v;
        got++;
    }
    ck_assert_uint_eq(sum, (uint64_t)n * (n - 1) / 2);
    for (int layer = 0; layer < LAYERS; layer++) {
        for (int i = 0; i < WIDTH; i++) {
            ck_assert(ra_is_alive(rt, pids[layer][i]));
        }
    }
    ra_scope_destroy(&scope);
    ra_runtime_destroy(&rt);
}
END_TEST

static Suite *
stress_suite(void)
{
    Suite *s = suite_create("stress");
    TCase *tc = tcase_create("stress");

    tcase_set_timeout(tc, 300); // sanitizer builds are slow
    tcase_add_test(tc, test_stress_eight_producers_exact_counts);
    tcase_add_test(tc, test_stress_million_live_actors);
    tcase_add_test(tc, test_stress_link_chain_crash);
    tcase_add_test(tc, test_stress_spawn_exit_churn);
    tcase_add_test(tc, test_stress_concurrent_link_monitor);
    tcase_add_test(tc, test_stress_hub_links_hash_set);
    tcase_add_test(tc, test_stress_layered_calls_wait_without_deadlock);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    return ra_test_run(stress_suite());
}

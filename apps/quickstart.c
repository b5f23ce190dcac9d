// quickstart.c - Ray's quickstart, in C: remote functions, an actor, and
// batch inference fanned out over every CPU.
//
//     ra_init(NULL)            start an embedded cluster (or join the one
//                              named by RAYO_ADDRESS)
//     ra_remote("square", ...) a task in a worker process; returns a ref
//     ra_get(ref, ...)         its value
//     ra_actor_create/call     a stateful Counter living in a worker
//
// Build it against an installed rayo with
//     cc quickstart.c $(pkg-config --cflags --libs rayo) -o quickstart
// It checks every answer and exits 0 only when all are right, so it is a
// test too.  QUICKSTART_SLOW_MS=N makes each batch take N ms longer, to
// watch the work with `rayo status` (the daemon's tests do).
#include <rayo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---- remote functions: plain C functions registered by name ----

static int
square(ra_task_t *t)
{
    int64_t x = ra_task_arg_i64(t, 0);
    return ra_task_return_i64(t, x * x);
}
RA_REMOTE_REGISTER(square)

// A "model": the score of an item is a fixed function of it.  infer gets
// a batch (an array of int64 items as bytes) and returns the sum of the
// scores, so that the driver can check the total.
static int64_t
model(int64_t item)
{
    return (item * 7 + 3) % 1000;
}

static int
infer(ra_task_t *t)
{
    size_t len;
    const int64_t *items = ra_task_arg(t, 0, &len);
    if (ra_task_arg_kind(t, 0) != RA_VAL_BYTES || len % sizeof *items) {
        return ra_task_fail(t, "infer wants an array of int64 items");
    }
    int64_t sum = 0;
    for (size_t i = 0; i < len / sizeof *items; i++) {
        int64_t item;
        memcpy(&item, (const char *)items + i * sizeof item, sizeof item);
        sum += model(item);
    }
    const char *slow = getenv("QUICKSTART_SLOW_MS");
    if (slow != NULL && atoi(slow) > 0) {
        long ms = atol(slow);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return ra_task_return_i64(t, sum);
}
RA_REMOTE_REGISTER(infer)

// ---- an actor class: state plus methods ----

typedef struct counter {
    int64_t n;
} counter_t;

static int
counter_init(ra_task_t *t)
{
    counter_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    ra_task_set_state(t, c);
    return 0;
}

static void
counter_fini(void *state)
{
    free(state);
}

static int
counter_incr(ra_task_t *t)
{
    counter_t *c = ra_task_state(t);
    return ra_task_return_i64(t, ++c->n);
}

static const ra_method_t counter_methods[] = {
    {"incr", counter_incr},
};

static const ra_actor_class_t Counter = {
    .name = "Counter",
    .init = counter_init,
    .fini = counter_fini,
    .methods = counter_methods,
    .nmethods = 1,
};
RA_ACTOR_CLASS_REGISTER(Counter)

#define ITEMS 10000
#define BATCHES 100

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "quickstart: %s: %s\n", what, ra_strerror(rc));
    ra_shutdown();
    return 1;
}

int
main(void)
{
    // In a worker process ra_init does not return: the worker serves
    // tasks and actors until the cluster stops it.
    int rc = ra_init(NULL);
    if (rc != 0) {
        return fail("ra_init", rc);
    }
    double cpus = 0;
    (void)ra_cluster_resources(&cpus, NULL, NULL, NULL);
    printf("cluster up: %g CPUs, session %s\n", cpus,
           ra_cluster_session_dir());

    // 1. Tasks: four squares, in parallel.
    ra_ref_t refs[4];
    for (int i = 0; i < 4; i++) {
        if ((rc = ra_remote("square", &RA_ARG_I64(i), 1, NULL, &refs[i])) !=
            0) {
            return fail("ra_remote", rc);
        }
    }
    // (The first tasks wait for worker processes to start: generous
    // timeouts, for a machine that is busy.)
    printf("squares:");
    for (int i = 0; i < 4; i++) {
        int64_t x;
        if ((rc = ra_get_i64(refs[i], 60000, &x)) != 0) {
            return fail("ra_get", rc);
        }
        printf(" %lld", (long long)x);
        ra_release(refs[i]);
        if (x != (int64_t)i * i) {
            fprintf(stderr, "quickstart: square(%d) gave %lld\n", i,
                    (long long)x);
            return 1;
        }
    }
    printf("\n");

    // 2. An actor: a counter in a worker process keeps its state.
    ra_actor_t counter;
    if ((rc = ra_actor_create("Counter", NULL, 0, NULL, &counter)) != 0) {
        return fail("ra_actor_create", rc);
    }
    for (int64_t want = 1; want <= 2; want++) {
        ra_ref_t r;
        int64_t x;
        if ((rc = ra_actor_call(counter, "incr", NULL, 0, &r)) != 0 ||
            (rc = ra_get_i64(r, 60000, &x)) != 0) {
            return fail("Counter.incr", rc);
        }
        ra_release(r);
        printf("counter: %lld\n", (long long)x);
        if (x != want) {
            fprintf(stderr, "quickstart: counter gave %lld, not %lld\n",
                    (long long)x, (long long)want);
            return 1;
        }
    }

    // 3. Batch inference: 10,000 items in 100 batches over all CPUs.
    static int64_t items[ITEMS];
    int64_t want = 0;
    for (int i = 0; i < ITEMS; i++) {
        items[i] = i;
        want += model(i);
    }
    ra_ref_t batches[BATCHES];
    int per = ITEMS / BATCHES;
    for (int b = 0; b < BATCHES; b++) {
        ra_arg_t arg = RA_ARG_BYTES(items + b * per, per * sizeof items[0]);
        if ((rc = ra_remote("infer", &arg, 1, NULL, &batches[b])) != 0) {
            return fail("ra_remote infer", rc);
        }
    }
    int64_t total = 0;
    for (int b = 0; b < BATCHES; b++) {
        int64_t x;
        if ((rc = ra_get_i64(batches[b], 60000, &x)) != 0) {
            return fail("ra_get infer", rc);
        }
        total += x;
        ra_release(batches[b]);
    }
    printf("batch inference: %d items in %d batches, score total %lld\n",
           ITEMS, BATCHES, (long long)total);
    if (total != want) {
        fprintf(stderr, "quickstart: total %lld, expected %lld\n",
                (long long)total, (long long)want);
        return 1;
    }
    ra_shutdown();
    printf("quickstart: all results correct\n");
    return 0;
}

// bench_core.c - `rayo bench core`: the cluster API's core operations,
// shaped like `ray microbenchmark`.
//
// One embedded cluster (ra_init_opts) serves the whole run; each workload
// then runs --repeat times against it and prints one JSON object on
// stdout: the median of its runs as "value", every run in "runs", and,
// where the issue sets one, the target ("target_min" or "target_max") and
// whether the median "met" it.  Progress and errors go to stderr.  A
// target missed is reported, never a failure; a wrong answer or an error
// from ra_* is.
//
// Workers are this executable run again in worker mode (main calls
// ra_worker_main first), so the remote function and the actor class the
// workloads use are defined here, in the rayo binary.
//
// Every task returns its argument and every actor call echoes its
// argument, and each submission carries a different number, so checking
// each value checks that every answer came back, to the right caller.
// Asynchronous workloads keep at most a window of references in flight
// (get the oldest, release it, submit the next), so memory stays bounded
// however many tasks a run submits.
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

#define GET_TIMEOUT_MS 60000
// WINDOW is how many references one driver keeps in flight in the
// asynchronous workloads; the clients of a multi-client workload share it.
#define WINDOW 10000
#define CLIENTS 4       // driver threads of the multi-client workloads
#define WAIT_REFS 1000  // single_client_wait_1k_refs
#define NEXTRA 3        // extra measured fields per line
#define MAX_REPEAT 1000
// PROC_HOLD_MAX bounds the process-isolated actors kept alive from one run
// of actor_creation_process to the next (see wl_actor_creation_process);
// the cluster's max_workers is raised by as much.
#define PROC_HOLD_MAX 64

extern char **environ;

typedef struct core_opts {
    bool quick;
    unsigned repeat;
    unsigned cpus;
    unsigned timeout_s;
} core_opts_t;

// suite_t is what outlives one run: the options and the process-isolated
// actors held from run to run.
typedef struct suite {
    const core_opts_t *o;
    ra_actor_t held[PROC_HOLD_MAX];
    size_t nheld;
} suite_t;

// bench_t is one run of one workload.
typedef struct bench {
    suite_t *s;
    const char *name;
    unsigned run;          // 0 .. repeat - 1
    double value;
    uint64_t n;            // operations timed
    double seconds;
    double x[NEXTRA];      // the workload's extra fields, by its names
    unsigned clients;      // driver threads (0: not shown)
    unsigned actors;       // actors called (0: not shown)
} bench_t;

// ---------------------------------------------------------------------
// What runs in the workers.

// bench_echo is the trivial task: it returns its argument.
static int
bench_echo(ra_task_t *t)
{
    return ra_task_return_i64(t, ra_task_arg_i64(t, 0));
}
RA_REMOTE_REGISTER(bench_echo)

// bench_echo_lent returns the number behind the reference lent to it
// (RA_ARG_BORROW): the worker asks the owner for it.
static int
bench_echo_lent(ra_task_t *t)
{
    ra_ref_t r;
    int64_t x = 0;
    int rc = ra_task_arg_ref(t, 0, &r);
    if (rc == 0) {
        rc = ra_get_i64(r, GET_TIMEOUT_MS, &x);
    }
    return rc != 0 ? ra_task_fail(t, "the lent reference: %s",
                                  ra_err_name(rc))
                   : ra_task_return_i64(t, x);
}
RA_REMOTE_REGISTER(bench_echo_lent)

// bench_chain submits argument-0 bench_echo tasks from inside a task, one
// after another, waiting for each (ra_get on a scheduler thread of the
// worker); returns what the last one answered, which is the count.
static int
bench_chain(ra_task_t *t)
{
    int64_t n = ra_task_arg_i64(t, 0), x = 0;
    for (int64_t i = 0; i < n; i++) {
        ra_ref_t r;
        int rc = ra_remote("bench_echo", &RA_ARG_I64(x + 1), 1, NULL, &r);
        if (rc == 0) {
            rc = ra_get_i64(r, GET_TIMEOUT_MS, &x);
            ra_release(r);
        }
        if (rc != 0) {
            return ra_task_fail(t, "subtask %" PRId64 ": %s", i,
                                ra_err_name(rc));
        }
    }
    return ra_task_return_i64(t, x);
}
RA_REMOTE_REGISTER(bench_chain)

static int
bench_actor_echo(ra_task_t *t)
{
    return ra_task_return_i64(t, ra_task_arg_i64(t, 0));
}

static const ra_method_t bench_actor_methods[] = {
    {"echo", bench_actor_echo},
};

// BenchActor has no state: the workloads measure the call path, and the
// echoed argument is enough to check each answer.
static const ra_actor_class_t BenchActor = {
    .name = "BenchActor",
    .methods = bench_actor_methods,
    .nmethods = sizeof bench_actor_methods / sizeof bench_actor_methods[0],
};
RA_ACTOR_CLASS_REGISTER(BenchActor)

// ---------------------------------------------------------------------
// The watchdog (bench_util.h): starting the cluster, each run and
// stopping the cluster say what they wait for.  The workers die with this
// process (they set PR_SET_PDEATHSIG).

static void
phase(const core_opts_t *o, const char *name, const char *what)
{
    ra__bench_watchdog_arm(o->timeout_s,
                           "rayo bench core: %s: still %s after %u s "
                           "(--timeout); the cluster seems to hang\n",
                           name, what, o->timeout_s);
}

// ---------------------------------------------------------------------
// Measuring and checking.

static uint64_t
scaled(const bench_t *b, uint64_t full, uint64_t quick)
{
    return b->s->o->quick ? quick : full;
}

static int
fail(const bench_t *b, const char *what, int rc)
{
    fprintf(stderr, "rayo bench core: %s: %s: %s\n", b->name, what,
            ra_err_name(rc));
    return RA_TOOL_FAIL;
}

// get_check gets ref and checks that it holds the number want.  The
// caller still releases ref.
static int
get_check(const bench_t *b, ra_ref_t ref, int64_t want, const char *what)
{
    ra_value_t *v = NULL;
    int rc = ra_get(ref, GET_TIMEOUT_MS, &v);

    if (rc != 0) {
        fprintf(stderr, "rayo bench core: %s: ra_get of a %s: %s%s%s\n",
                b->name, what, ra_err_name(rc), v != NULL ? ": " : "",
                ra_value_error(v));
        ra_value_free(&v);
        return RA_TOOL_FAIL;
    }
    if (ra_value_kind(v) != RA_VAL_I64 || ra_value_i64(v) != want) {
        fprintf(stderr, "rayo bench core: %s: a %s gave %s %" PRId64
                ", expected %" PRId64 "\n", b->name, what,
                ra_value_kind(v) == RA_VAL_I64 ? "the number"
                                               : "a value of another kind,",
                ra_value_i64(v), want);
        ra_value_free(&v);
        return RA_TOOL_FAIL;
    }
    ra_value_free(&v);
    return RA_TOOL_OK;
}

// submit_fn submits one operation whose result must be the number x.
typedef int (*submit_fn)(void *arg, int64_t x, ra_ref_t *out);

// pipe_t is a stream of n operations with arguments base, base + 1, ...,
// at most window of them in flight (1: synchronous).
typedef struct pipe {
    const char *what;  // "task" or "actor call", for messages
    submit_fn submit;
    void *arg;
    int64_t base;
    uint64_t n;
    size_t window;
} pipe_t;

// pipeline runs p: it submits until window operations are in flight,
// then gets, checks and releases the oldest before it submits the next.
static int
pipeline(const bench_t *b, const pipe_t *p)
{
    ra_ref_t *ring = malloc(p->window * sizeof *ring);
    uint64_t lo = 0, hi = 0;
    int rc = RA_TOOL_OK, err;

    if (ring == NULL) {
        return fail(b, "allocating the window", RA_ENOMEM);
    }
    while (lo < p->n) {
        if (hi < p->n && hi - lo < p->window) {
            err = p->submit(p->arg, p->base + (int64_t)hi,
                            &ring[hi % p->window]);
            if (err != 0) {
                rc = fail(b, p->what, err);
                break;
            }
            hi++;
        } else {
            ra_ref_t r = ring[lo % p->window];

            rc = get_check(b, r, p->base + (int64_t)lo, p->what);
            ra_release(r);
            lo++;
            if (rc != RA_TOOL_OK) {
                break;
            }
        }
    }
    for (; lo < hi; lo++) {
        ra_release(ring[lo % p->window]);
    }
    free(ring);
    return rc;
}

static int
submit_task(void *arg, int64_t x, ra_ref_t *out)
{
    (void)arg;
    return ra_remote("bench_echo", &RA_ARG_I64(x), 1, NULL, out);
}

// submit_task_ref puts x (ra_put) and gives the task the object by
// reference, releasing it at once: the task's hold keeps it.  arg
// non-NULL lends the reference itself (RA_ARG_BORROW).
static int
submit_task_ref(void *arg, int64_t x, ra_ref_t *out)
{
    ra_ref_t obj;
    int err = ra_put(&RA_ARG_I64(x), &obj);

    if (err != 0) {
        return err;
    }
    err = arg != NULL
              ? ra_remote("bench_echo_lent", &RA_ARG_BORROW(obj), 1, NULL, out)
              : ra_remote("bench_echo", &RA_ARG_REF(obj), 1, NULL, out);
    ra_release(obj);
    return err;
}

static int
submit_call(void *arg, int64_t x, ra_ref_t *out)
{
    const ra_actor_t *a = arg;

    return ra_actor_call(*a, "echo", &RA_ARG_I64(x), 1, out);
}

// round_robin_t spreads calls over several actors, by argument.
typedef struct round_robin {
    const ra_actor_t *actors;
    size_t n;
} round_robin_t;

static int
submit_round_robin(void *arg, int64_t x, ra_ref_t *out)
{
    const round_robin_t *rr = arg;

    return ra_actor_call(rr->actors[(uint64_t)x % rr->n], "echo",
                         &RA_ARG_I64(x), 1, out);
}

static double
timed_pipeline(const bench_t *b, const pipe_t *p, int *rc)
{
    double t0 = ra__bench_now_s();

    *rc = pipeline(b, p);
    return ra__bench_now_s() - t0;
}

// warm_up runs a few operations of p's kind untimed, so that the first
// timed one does not pay for leasing a worker or placing an actor.
static int
warm_up(const bench_t *b, const pipe_t *p)
{
    pipe_t w = *p;

    w.n = p->n < 1000 ? p->n : 1000;
    w.base = -1000000;
    return pipeline(b, &w);
}

// ---------------------------------------------------------------------
// Several driver threads.  They wait at a gate until all are started, so
// that the clock runs from the moment they all begin.

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate_t;

typedef struct client {
    const bench_t *b;
    gate_t *gate;
    pipe_t p;
    int rc;
} client_t;

static void *
client_main(void *arg)
{
    client_t *c = arg;

    pthread_mutex_lock(&c->gate->mu);
    while (!c->gate->open) {
        pthread_cond_wait(&c->gate->cv, &c->gate->mu);
    }
    pthread_mutex_unlock(&c->gate->mu);
    c->rc = pipeline(c->b, &c->p);
    return NULL;
}

// run_clients runs the n clients' pipelines at once on threads of their
// own and stores the time from the gate opening to the last one ending.
static int
run_clients(const bench_t *b, client_t *cs, size_t n, double *sec)
{
    gate_t gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                   false};
    pthread_t *th = calloc(n, sizeof *th);
    size_t started = 0;
    int rc = RA_TOOL_OK, err = 0;
    double t0;

    if (th == NULL) {
        return fail(b, "allocating threads", RA_ENOMEM);
    }
    for (; started < n; started++) {
        cs[started].b = b;
        cs[started].gate = &gate;
        cs[started].rc = RA_TOOL_FAIL;
        err = pthread_create(&th[started], NULL, client_main, &cs[started]);
        if (err != 0) {
            break;
        }
    }
    // Open the gate also after a failed start, so the started ones end.
    pthread_mutex_lock(&gate.mu);
    gate.open = true;
    t0 = ra__bench_now_s();
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
    for (size_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (cs[i].rc != RA_TOOL_OK) {
            rc = RA_TOOL_FAIL;
        }
    }
    *sec = ra__bench_now_s() - t0;
    free(th);
    if (err != 0) {
        return fail(b, "starting a client thread", -err);
    }
    return rc;
}

// ---------------------------------------------------------------------
// Actors.

// create_actors creates n actors of isolation iso into out, each waited
// for, or (no_wait) as Ray's Actor.remote() does: their first calls wait
// for them.
static int
create_actors(const bench_t *b, ra_isolation_t iso, ra_actor_t *out,
              size_t n, bool no_wait)
{
    ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
    int err;

    ao.isolation = iso;
    ao.no_wait = no_wait;
    for (size_t i = 0; i < n; i++) {
        if ((err = ra_actor_create("BenchActor", NULL, 0, &ao, &out[i])) !=
            0) {
            fail(b, "ra_actor_create", err);
            for (size_t k = 0; k < i; k++) {
                (void)ra_actor_kill(out[k]);
            }
            return RA_TOOL_FAIL;
        }
    }
    return RA_TOOL_OK;
}

// expect_dead calls each of the n killed actors and checks that every
// call fails with RA_EACTOR.  Kills are asynchronous; waiting for their
// effect keeps the work they cause out of the next measurement.
static int
expect_dead(const bench_t *b, const ra_actor_t *a, size_t n)
{
    ra_ref_t *refs = calloc(n < WINDOW ? n : WINDOW, sizeof *refs);
    int rc = RA_TOOL_OK, err;

    if (refs == NULL) {
        return fail(b, "allocating references", RA_ENOMEM);
    }
    for (size_t lo = 0; lo < n && rc == RA_TOOL_OK; lo += WINDOW) {
        size_t k = n - lo < WINDOW ? n - lo : WINDOW, made;

        for (made = 0; made < k; made++) {
            err = ra_actor_call(a[lo + made], "echo", &RA_ARG_I64(0), 1,
                                &refs[made]);
            if (err != 0) {
                rc = fail(b, "ra_actor_call of a killed actor", err);
                break;
            }
        }
        for (size_t i = 0; i < made; i++) {
            err = rc == RA_TOOL_OK ? ra_get(refs[i], GET_TIMEOUT_MS, NULL)
                                   : RA_EACTOR;
            if (err != RA_EACTOR) {
                fprintf(stderr, "rayo bench core: %s: a call to a killed "
                        "actor gave %s, not RA_EACTOR\n", b->name,
                        ra_err_name(err));
                rc = RA_TOOL_FAIL;
            }
            ra_release(refs[i]);
        }
    }
    free(refs);
    return rc;
}

// kill_actors kills the n actors and waits until calls to them fail.
static int
kill_actors(const bench_t *b, const ra_actor_t *a, size_t n)
{
    int rc = RA_TOOL_OK, err;

    for (size_t i = 0; i < n; i++) {
        if ((err = ra_actor_kill(a[i])) != 0) {
            rc = fail(b, "ra_actor_kill", err);
        }
    }
    if (rc == RA_TOOL_OK) {
        rc = expect_dead(b, a, n);
    }
    return rc;
}

// check_actor makes one call to a and checks the answer.
static int
check_actor(const bench_t *b, ra_actor_t a, int64_t x)
{
    pipe_t p = {"actor call", submit_call, &a, x, 1, 1};

    return pipeline(b, &p);
}

// ---------------------------------------------------------------------
// Tasks.

// task_pipe warms p up, then runs it timed.
static int
task_pipe(bench_t *b, pipe_t p)
{
    int rc;

    if (warm_up(b, &p) != RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    b->seconds = timed_pipeline(b, &p, &rc);
    b->n = p.n;
    return rc;
}

static int
wl_tasks_sync(bench_t *b)
{
    return task_pipe(b, (pipe_t){"task", submit_task, NULL, 0,
                                 scaled(b, 10000, 1000), 1});
}

// chain runs bench_chain(n) and checks its count; *sec is how long it
// took, from submission to answer.
static int
chain(const bench_t *b, int64_t n, double *sec)
{
    ra_ref_t r;
    int64_t x = -1;
    double t0 = ra__bench_now_s();
    int err = ra_remote("bench_chain", &RA_ARG_I64(n), 1, NULL, &r);

    if (err != 0) {
        return fail(b, "ra_remote of bench_chain", err);
    }
    err = ra_get_i64(r, GET_TIMEOUT_MS, &x);
    *sec = ra__bench_now_s() - t0;
    ra_release(r);
    if (err != 0) {
        return fail(b, "the task that submits tasks", err);
    }
    if (x != n) {
        fprintf(stderr, "rayo bench core: %s: %" PRId64 " subtasks "
                "answered %" PRId64 "\n", b->name, n, x);
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

// wl_nested_tasks_sync: a task's own synchronous subtasks (one task
// submits them one by one and waits for each), as a recursive or
// divide-and-conquer program makes them.
static int
wl_nested_tasks_sync(bench_t *b)
{
    double warm;
    int64_t n = (int64_t)scaled(b, 5000, 500);

    if (chain(b, n / 10, &warm) != RA_TOOL_OK ||
        chain(b, n, &b->seconds) != RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    b->n = (uint64_t)n;
    return RA_TOOL_OK;
}

static int
wl_tasks_async(bench_t *b)
{
    return task_pipe(b, (pipe_t){"task", submit_task, NULL, 0,
                                 scaled(b, 200000, 20000), WINDOW});
}

// wl_tasks_ref_arg: the ownership overhead of a by-reference argument
// (ra_put, the owner resolving it before the task is sent) beside
// single_client_tasks_async's by-value one.
static int
wl_tasks_ref_arg(bench_t *b)
{
    return task_pipe(b, (pipe_t){"task", submit_task_ref, NULL, 0,
                                 scaled(b, 100000, 10000), WINDOW});
}

// wl_tasks_lent_arg: the reference itself lent to the task, which asks
// the owner for the value (a borrower's round trip per task).
static int
wl_tasks_lent_arg(bench_t *b)
{
    static int lend = 1;

    return task_pipe(b, (pipe_t){"task", submit_task_ref, &lend, 0,
                                 scaled(b, 50000, 5000), WINDOW});
}

static int
wl_multi_tasks_async(bench_t *b)
{
    uint64_t per = scaled(b, 50000, 5000);
    client_t cs[CLIENTS];

    for (size_t i = 0; i < CLIENTS; i++) {
        cs[i].p = (pipe_t){"task", submit_task, NULL,
                           (int64_t)(i * per), per, WINDOW / CLIENTS};
    }
    if (warm_up(b, &cs[0].p) != RA_TOOL_OK ||
        run_clients(b, cs, CLIENTS, &b->seconds) != RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    b->n = per * CLIENTS;
    b->clients = CLIENTS;
    return RA_TOOL_OK;
}

// ---------------------------------------------------------------------
// Actor calls.

// one_actor runs p against a new shared actor: warm-up, then timed.
static int
one_actor(bench_t *b, pipe_t *p)
{
    ra_actor_t a;
    int rc;

    if (create_actors(b, RA_ISOLATION_SHARED, &a, 1, false) != RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    p->arg = &a;
    rc = warm_up(b, p);
    if (rc == RA_TOOL_OK) {
        b->seconds = timed_pipeline(b, p, &rc);
    }
    b->n = p->n;
    b->actors = 1;
    if (kill_actors(b, &a, 1) != RA_TOOL_OK) {
        rc = RA_TOOL_FAIL;
    }
    return rc;
}

static int
wl_actor_sync(bench_t *b)
{
    pipe_t p = {"actor call", submit_call, NULL, 0,
                scaled(b, 10000, 1000), 1};

    return one_actor(b, &p);
}

static int
wl_actor_async(bench_t *b)
{
    pipe_t p = {"actor call", submit_call, NULL, 0,
                scaled(b, 200000, 20000), WINDOW};

    return one_actor(b, &p);
}

static int
wl_actor_concurrent(bench_t *b)
{
    uint64_t per = scaled(b, 50000, 5000);
    client_t cs[CLIENTS];
    ra_actor_t a;
    int rc;

    if (create_actors(b, RA_ISOLATION_SHARED, &a, 1, false) != RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    for (size_t i = 0; i < CLIENTS; i++) {
        cs[i].p = (pipe_t){"actor call", submit_call, &a,
                           (int64_t)(i * per), per, WINDOW / CLIENTS};
    }
    rc = warm_up(b, &cs[0].p);
    if (rc == RA_TOOL_OK) {
        rc = run_clients(b, cs, CLIENTS, &b->seconds);
    }
    b->n = per * CLIENTS;
    b->clients = CLIENTS;
    b->actors = 1;
    if (kill_actors(b, &a, 1) != RA_TOOL_OK) {
        rc = RA_TOOL_FAIL;
    }
    return rc;
}

// n_actors is how many actors the 1:n and n:n workloads call.
static size_t
n_actors(const bench_t *b)
{
    return 2 * (size_t)b->s->o->cpus;
}

static int
wl_1_n_actor_async(bench_t *b)
{
    size_t na = n_actors(b);
    ra_actor_t *a = calloc(na, sizeof *a);
    round_robin_t rr = {a, na};
    pipe_t p = {"actor call", submit_round_robin, &rr, 0,
                scaled(b, 200000, 20000), WINDOW};
    int rc;

    if (a == NULL) {
        return fail(b, "allocating actors", RA_ENOMEM);
    }
    if (create_actors(b, RA_ISOLATION_SHARED, a, na, false) != RA_TOOL_OK) {
        free(a);
        return RA_TOOL_FAIL;
    }
    // The warm-up must reach every actor once.
    rc = warm_up(b, &p);
    if (rc == RA_TOOL_OK) {
        b->seconds = timed_pipeline(b, &p, &rc);
    }
    b->n = p.n;
    b->clients = 1;
    b->actors = (unsigned)na;
    if (kill_actors(b, a, na) != RA_TOOL_OK) {
        rc = RA_TOOL_FAIL;
    }
    free(a);
    return rc;
}

static int
wl_n_n_actor_async(bench_t *b)
{
    size_t na = n_actors(b);
    uint64_t per = scaled(b, 400000, 40000) / na;
    size_t window = WINDOW / na > 100 ? WINDOW / na : 100;
    ra_actor_t *a = calloc(na, sizeof *a);
    client_t *cs = calloc(na, sizeof *cs);
    int rc = RA_TOOL_FAIL;

    if (a == NULL || cs == NULL) {
        fail(b, "allocating actors", RA_ENOMEM);
        goto out;
    }
    if (create_actors(b, RA_ISOLATION_SHARED, a, na, false) != RA_TOOL_OK) {
        goto out;
    }
    rc = RA_TOOL_OK;
    for (size_t i = 0; i < na && rc == RA_TOOL_OK; i++) {
        cs[i].p = (pipe_t){"actor call", submit_call, &a[i],
                           (int64_t)(i * per), per, window};
        rc = warm_up(b, &cs[i].p);
    }
    if (rc == RA_TOOL_OK) {
        rc = run_clients(b, cs, na, &b->seconds);
    }
    b->n = per * na;
    b->clients = (unsigned)na;
    b->actors = (unsigned)na;
    if (kill_actors(b, a, na) != RA_TOOL_OK) {
        rc = RA_TOOL_FAIL;
    }
out:
    free(a);
    free(cs);
    return rc;
}

// ---------------------------------------------------------------------
// Objects.

static int
wl_put_calls(bench_t *b)
{
    uint64_t n = scaled(b, 200000, 20000);
    ra_ref_t *ring = calloc(WINDOW, sizeof *ring);
    uint64_t made = 0;
    int rc = RA_TOOL_OK, err;
    double t0;

    if (ring == NULL) {
        return fail(b, "allocating the window", RA_ENOMEM);
    }
    // Each put replaces the oldest of the last WINDOW objects; those last
    // ones are read back and checked after the clock stops.
    t0 = ra__bench_now_s();
    for (; made < n; made++) {
        ra_ref_t *slot = &ring[made % WINDOW];

        if (made >= WINDOW) {
            ra_release(*slot);
        }
        if ((err = ra_put(&RA_ARG_I64((int64_t)made), slot)) != 0) {
            rc = fail(b, "ra_put", err);
            break;
        }
    }
    b->seconds = ra__bench_now_s() - t0;
    b->n = n;
    for (uint64_t i = made > WINDOW ? made - WINDOW : 0; i < made; i++) {
        if (rc == RA_TOOL_OK) {
            rc = get_check(b, ring[i % WINDOW], (int64_t)i, "put object");
        }
        ra_release(ring[i % WINDOW]);
    }
    free(ring);
    return rc;
}

static int
wl_get_calls(bench_t *b)
{
    uint64_t n = scaled(b, 200000, 20000);
    const int64_t want = 0x5eed;
    ra_ref_t r;
    int rc = RA_TOOL_OK, err;
    double t0;

    if ((err = ra_put(&RA_ARG_I64(want), &r)) != 0) {
        return fail(b, "ra_put", err);
    }
    t0 = ra__bench_now_s();
    for (uint64_t i = 0; i < n && rc == RA_TOOL_OK; i++) {
        rc = get_check(b, r, want, "put object");
    }
    b->seconds = ra__bench_now_s() - t0;
    b->n = n;
    ra_release(r);
    return rc;
}

static int
wl_wait_1k_refs(bench_t *b)
{
    uint64_t n = scaled(b, 2000, 200);
    ra_ref_t *refs = calloc(WAIT_REFS, sizeof *refs);
    bool *ready = calloc(WAIT_REFS, sizeof *ready);
    size_t made = 0;
    int rc = RA_TOOL_FAIL, err;
    double t0;

    if (refs == NULL || ready == NULL) {
        fail(b, "allocating references", RA_ENOMEM);
        goto out;
    }
    for (; made < WAIT_REFS; made++) {
        if ((err = submit_task(NULL, (int64_t)made, &refs[made])) != 0) {
            fail(b, "ra_remote", err);
            goto out;
        }
    }
    for (size_t i = 0; i < WAIT_REFS; i++) {
        if (get_check(b, refs[i], (int64_t)i, "task") != RA_TOOL_OK) {
            goto out;
        }
    }
    rc = RA_TOOL_OK;
    t0 = ra__bench_now_s();
    for (uint64_t i = 0; i < n; i++) {
        err = ra_wait(refs, WAIT_REFS, WAIT_REFS, GET_TIMEOUT_MS, ready);
        if (err != WAIT_REFS) {
            if (err < 0) {
                rc = fail(b, "ra_wait", err);
            } else {
                fprintf(stderr, "rayo bench core: %s: ra_wait found %d of "
                        "%d finished tasks ready\n", b->name, err,
                        WAIT_REFS);
                rc = RA_TOOL_FAIL;
            }
            break;
        }
    }
    b->seconds = ra__bench_now_s() - t0;
    b->n = n;
    for (size_t i = 0; rc == RA_TOOL_OK && i < WAIT_REFS; i++) {
        if (!ready[i]) {
            fprintf(stderr, "rayo bench core: %s: ra_wait left ready[%zu] "
                    "false\n", b->name, i);
            rc = RA_TOOL_FAIL;
        }
    }
out:
    for (size_t i = 0; i < made; i++) {
        ra_release(refs[i]);
    }
    free(refs);
    free(ready);
    return rc;
}

// ---------------------------------------------------------------------
// Actor creation.

// The lightweight actors are created as Ray's Actor.remote() creates
// them, without waiting (no_wait), and each then answers one call: the
// clock stops when every actor has answered, so every one is up.
static int
wl_actor_creation_lightweight(bench_t *b)
{
    uint64_t n = scaled(b, 20000, 1000);
    ra_actor_t *a = calloc(n, sizeof *a);
    ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
    double t0;
    int rc = RA_TOOL_OK, err;
    uint64_t made = 0;

    if (a == NULL) {
        return fail(b, "allocating actors", RA_ENOMEM);
    }
    ao.no_wait = true;
    t0 = ra__bench_now_s();
    for (; made < n; made++) {
        if ((err = ra_actor_create("BenchActor", NULL, 0, &ao, &a[made])) !=
            0) {
            rc = fail(b, "ra_actor_create", err);
            break;
        }
    }
    if (rc == RA_TOOL_OK) {
        round_robin_t rr = {a, n};
        pipe_t p = {"actor call", submit_round_robin, &rr, 0, n, WINDOW};
        rc = pipeline(b, &p);
    }
    b->seconds = ra__bench_now_s() - t0;
    b->n = n;
    if (kill_actors(b, a, made) != RA_TOOL_OK) {
        rc = RA_TOOL_FAIL;
    }
    free(a);
    return rc;
}

// parent_of returns the parent of process pid (a /proc entry's name), or
// -1 (not a process, or it exited meanwhile).
static int
parent_of(const char *pid)
{
    char path[300], buf[512], *p;
    FILE *f;
    int ppid;

    if (pid[0] < '0' || pid[0] > '9') {
        return -1;
    }
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    if ((f = fopen(path, "r")) == NULL) {
        return -1;
    }
    p = fgets(buf, sizeof buf, f);
    fclose(f);
    // "pid (comm) state ppid ...": comm may hold spaces and ')'.
    return p != NULL && (p = strrchr(buf, ')')) != NULL &&
                   sscanf(p + 1, " %*c %d", &ppid) == 1
               ? ppid
               : -1;
}

// each_child calls fn(pid, arg) (fn may be NULL) for each process below
// this one (the cluster's workers, the fork server that forks them and
// its children among them) and returns how many there were, or -1 when
// /proc cannot be read.
static long
each_child(void (*fn)(const char *, void *), void *arg)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int *pid = NULL, *ppid = NULL;
    bool *below = NULL;
    size_t n = 0, cap = 0;
    long count = 0;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        int pp = parent_of(e->d_name);
        if (pp < 0) {
            continue;
        }
        if (n == cap) {
            cap = cap == 0 ? 256 : cap * 2;
            int *a = realloc(pid, cap * sizeof *a);
            int *b = a != NULL ? realloc(ppid, cap * sizeof *b) : NULL;
            if (a != NULL) {
                pid = a;
            }
            if (b == NULL) {
                closedir(d);
                free(pid);
                free(ppid);
                return -1;
            }
            ppid = b;
        }
        pid[n] = atoi(e->d_name);
        ppid[n] = pp;
        n++;
    }
    closedir(d);
    // Mark the descendants: parents come before children in no order, so
    // go over the list until nothing new is marked.
    if ((below = calloc(n + 1, sizeof *below)) == NULL) {
        free(pid);
        free(ppid);
        return -1;
    }
    int self = (int)getpid();
    for (bool more = true; more;) {
        more = false;
        for (size_t i = 0; i < n; i++) {
            if (below[i]) {
                continue;
            }
            bool mark = ppid[i] == self;
            for (size_t j = 0; j < n && !mark; j++) {
                mark = below[j] && pid[j] == ppid[i];
            }
            if (mark) {
                below[i] = true;
                more = true;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (below[i]) {
            char name[24];
            snprintf(name, sizeof name, "%d", pid[i]);
            count++;
            if (fn != NULL) {
                fn(name, arg);
            }
        }
    }
    free(below);
    free(pid);
    free(ppid);
    return count;
}

static long
count_children(void)
{
    return each_child(NULL, NULL);
}

// proc_cpu_ns adds the time that the threads of process pid (a /proc
// entry's name) have run, in nanoseconds, to *(double *)sum.
static void
proc_cpu_ns(const char *pid, void *sum)
{
    char path[300];
    DIR *d;
    struct dirent *e;

    snprintf(path, sizeof path, "/proc/%s/task", pid);
    if ((d = opendir(path)) == NULL) {
        return; // it exited meanwhile
    }
    while ((e = readdir(d)) != NULL) {
        FILE *f;
        double ns;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%s/task/%s/schedstat", pid,
                 e->d_name);
        if ((f = fopen(path, "r")) != NULL) {
            if (fscanf(f, "%lf", &ns) == 1) {
                *(double *)sum += ns;
            }
            fclose(f);
        }
    }
    closedir(d);
}

// tree_cpu_ns returns how long this process and its children (the
// cluster's workers) have run, in nanoseconds, or -1 when /proc cannot be
// read; *nchildren gets how many children there were.
static double
tree_cpu_ns(long *nchildren)
{
    double sum = 0;

    proc_cpu_ns("self", &sum);
    *nchildren = each_child(proc_cpu_ns, &sum);
    return *nchildren < 0 ? -1 : sum;
}

// spawn_rate measures n sequential posix_spawn of /bin/true, each waited
// for: a bare process start and end, the floor of a worker process.
static int
spawn_rate(const bench_t *b, uint64_t n, double *per_s)
{
    static char true_path[] = "/bin/true";
    char *argv[] = {true_path, NULL};
    double t0 = ra__bench_now_s();

    for (uint64_t i = 0; i < n; i++) {
        pid_t pid;
        int st = 0, err;

        err = posix_spawn(&pid, true_path, NULL, NULL, argv, environ);
        if (err != 0) {
            return fail(b, "posix_spawn /bin/true", -err);
        }
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) ||
            WEXITSTATUS(st) != 0) {
            fprintf(stderr, "rayo bench core: %s: /bin/true did not exit "
                    "with 0\n", b->name);
            return RA_TOOL_FAIL;
        }
    }
    *per_s = (double)n / (ra__bench_now_s() - t0);
    return RA_TOOL_OK;
}

// wl_actor_creation_process creates process-isolated actors as Ray's
// Actor.remote() does, without waiting for each (no_wait), and calls each
// once: the clock stops when every one has answered from its own new
// process.  The
// cluster returns the worker of a killed actor to its pool, where the
// next creation would find it already running; so that each run measures
// new processes, the actors of each run stay alive until the workload's
// last run (or until PROC_HOLD_MAX would be passed), and
// "new_processes" says how many worker processes the run really started.
static int
wl_actor_creation_process(bench_t *b)
{
    suite_t *s = b->s;
    uint64_t n = scaled(b, 16, 4);
    long before, after;
    double t0;
    int rc;

    if (s->nheld + n > PROC_HOLD_MAX) {
        rc = kill_actors(b, s->held, s->nheld);
        s->nheld = 0;
        if (rc != RA_TOOL_OK) {
            return rc;
        }
    }
    if (spawn_rate(b, n, &b->x[0]) != RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    before = count_children();
    t0 = ra__bench_now_s();
    rc = create_actors(b, RA_ISOLATION_PROCESS, s->held + s->nheld, n, true);
    if (rc == RA_TOOL_OK) {
        round_robin_t rr = {s->held + s->nheld, n};
        pipe_t p = {"actor call", submit_round_robin, &rr, 0, n, n};
        rc = pipeline(b, &p);
    }
    b->seconds = ra__bench_now_s() - t0;
    after = count_children();
    b->n = n;
    b->x[1] = before >= 0 && after >= 0 ? (double)(after - before) : -1;
    if (rc == RA_TOOL_OK) {
        s->nheld += n;
    }
    for (uint64_t i = 0; i < n && rc == RA_TOOL_OK; i++) {
        rc = check_actor(b, s->held[s->nheld - n + i], (int64_t)i);
    }
    if (rc != RA_TOOL_OK || b->run + 1 == s->o->repeat) {
        if (kill_actors(b, s->held, s->nheld) != RA_TOOL_OK) {
            rc = RA_TOOL_FAIL;
        }
        s->nheld = 0;
    }
    return rc;
}

// wl_idle_process_actors_cpu measures what a cluster costs while nothing
// happens: n process-isolated actors that have each answered once, then
// left alone.  The value is the CPU time that this process (the driver
// with its embedded raylet, GCS and object manager) and its children (the
// workers, the actors' and the pool's) use per second of that quiet, in
// percent of one CPU; "processes" says how many children there were.
// Work that earlier workloads left behind counts too (after
// actor_creation_lightweight the GCS records thousands of actors' ends
// for seconds): run it alone for the cost of idleness itself.
static int
wl_idle_process_actors_cpu(bench_t *b)
{
    uint64_t n = scaled(b, 32, 8);
    unsigned quiet_ms = b->s->o->quick ? 1000 : 2000;
    ra_actor_t *a = calloc(n, sizeof *a);
    double c0, c1, t0;
    long kids;
    int rc;

    if (a == NULL) {
        return fail(b, "allocating actors", RA_ENOMEM);
    }
    rc = create_actors(b, RA_ISOLATION_PROCESS, a, n, false);
    for (uint64_t i = 0; i < n && rc == RA_TOOL_OK; i++) {
        rc = check_actor(b, a[i], (int64_t)i);
    }
    if (rc == RA_TOOL_OK) {
        usleep(500 * 1000); // the last acknowledgements go out
        t0 = ra__bench_now_s();
        c0 = tree_cpu_ns(&kids);
        usleep(quiet_ms * 1000);
        c1 = tree_cpu_ns(&kids);
        b->seconds = ra__bench_now_s() - t0;
        b->n = n;
        b->x[0] = (double)kids;
        if (c0 < 0 || c1 < 0) {
            fprintf(stderr, "rayo bench core: %s: cannot read /proc\n",
                    b->name);
            rc = RA_TOOL_FAIL;
        } else {
            b->value = (c1 - c0) / 1e9 / b->seconds * 100;
        }
        if (kill_actors(b, a, n) != RA_TOOL_OK) {
            rc = RA_TOOL_FAIL;
        }
    }
    free(a);
    return rc;
}

// ---------------------------------------------------------------------
// Latency.

static int
wl_task_latency(bench_t *b)
{
    uint64_t n = scaled(b, 10000, 1000);
    pipe_t p = {"task", submit_task, NULL, 0, n, 1};
    double *us = calloc(n, sizeof *us), sum = 0, t0, t;
    int rc = RA_TOOL_OK, err;

    if (us == NULL) {
        return fail(b, "allocating samples", RA_ENOMEM);
    }
    if (warm_up(b, &p) != RA_TOOL_OK) {
        free(us);
        return RA_TOOL_FAIL;
    }
    t0 = ra__bench_now_s();
    for (uint64_t i = 0; i < n && rc == RA_TOOL_OK; i++) {
        ra_ref_t r;

        t = ra__bench_now_s();
        if ((err = submit_task(NULL, (int64_t)i, &r)) != 0) {
            rc = fail(b, "ra_remote", err);
            break;
        }
        rc = get_check(b, r, (int64_t)i, "task");
        us[i] = (ra__bench_now_s() - t) * 1e6;
        ra_release(r);
        sum += us[i];
    }
    b->seconds = ra__bench_now_s() - t0;
    b->n = n;
    if (rc == RA_TOOL_OK) {
        qsort(us, n, sizeof *us, ra__bench_cmp_double);
        b->x[0] = ra__bench_percentile(us, n, 50);
        b->x[1] = ra__bench_percentile(us, n, 99);
        b->x[2] = sum / (double)n;
        b->value = b->x[1];
    }
    free(us);
    return rc;
}

// ---------------------------------------------------------------------
// The workload table and the command.

typedef struct workload {
    ra_bench_workload_t info; // first: the harness reads a row as this
    int (*fn)(bench_t *b);
} workload_t;

// The order is Ray's, except that the actor creations come last: the
// cluster keeps every worker it started in its pool, and the dozens that
// actor_creation_process starts slow down the round trips measured after
// it.
static const workload_t workloads[] = {
    {{"single_client_tasks_sync", "tasks/s", {NULL}, false,
      RA_BENCH_TARGET_MIN, 10000, "submit one task, get it, again"},
     wl_tasks_sync},
    {{"nested_tasks_sync", "tasks/s", {NULL}, false, RA_BENCH_TARGET_NONE,
      0, "a task submits tasks one by one and gets each"},
     wl_nested_tasks_sync},
    {{"single_client_tasks_async", "tasks/s", {NULL}, false,
      RA_BENCH_TARGET_MIN, 100000, "tasks with 10,000 in flight"},
     wl_tasks_async},
    {{"tasks_async_ref_arg", "tasks/s", {NULL}, false, RA_BENCH_TARGET_NONE,
      0, "as above, one ra_put object by reference (RA_ARG_REF) each"},
     wl_tasks_ref_arg},
    {{"tasks_async_lent_arg", "tasks/s", {NULL}, false, RA_BENCH_TARGET_NONE,
      0, "as above, the reference lent (RA_ARG_BORROW), ra_get in the task"},
     wl_tasks_lent_arg},
    {{"multi_client_tasks_async", "tasks/s", {NULL}, false,
      RA_BENCH_TARGET_MIN, 100000, "4 driver threads, 2,500 in flight each"},
     wl_multi_tasks_async},
    {{"1_1_actor_calls_sync", "calls/s", {NULL}, false, RA_BENCH_TARGET_MIN,
      10000, "call one actor, get the answer, again"},
     wl_actor_sync},
    {{"1_1_actor_calls_async", "calls/s", {NULL}, false, RA_BENCH_TARGET_MIN,
      200000, "calls to one actor, 10,000 in flight"},
     wl_actor_async},
    {{"1_1_actor_calls_concurrent", "calls/s", {NULL}, false,
      RA_BENCH_TARGET_NONE, 0,
      "4 threads call one actor, 2,500 in flight each"},
     wl_actor_concurrent},
    {{"1_n_actor_calls_async", "calls/s", {NULL}, false, RA_BENCH_TARGET_NONE,
      0, "one driver, 2 x cpus actors in turn"},
     wl_1_n_actor_async},
    {{"n_n_actor_calls_async", "calls/s", {NULL}, false, RA_BENCH_TARGET_MIN,
      200000, "2 x cpus threads, each with its own actor"},
     wl_n_n_actor_async},
    {{"single_client_put_calls", "ops/s", {NULL}, false, RA_BENCH_TARGET_NONE,
      0, "ra_put of a number"},
     wl_put_calls},
    {{"single_client_get_calls", "ops/s", {NULL}, false, RA_BENCH_TARGET_NONE,
      0, "ra_get of a put number"},
     wl_get_calls},
    {{"single_client_wait_1k_refs", "waits/s", {NULL}, false,
      RA_BENCH_TARGET_NONE, 0, "ra_wait for all of 1,000 finished tasks"},
     wl_wait_1k_refs},
    {{"task_latency", "us", {"p50_us", "p99_us", "mean_us"}, true,
      RA_BENCH_TARGET_MAX, 1000, "one task's round trip: value is p99"},
     wl_task_latency},
    {{"actor_creation_lightweight", "actors/s", {NULL}, false,
      RA_BENCH_TARGET_MIN, 20000,
      "shared-worker actors created without waiting, one call each"},
     wl_actor_creation_lightweight},
    {{"actor_creation_process", "actors/s",
      {"posix_spawn_per_s", "new_processes", NULL}, false,
      RA_BENCH_TARGET_HALF_X0, 0,
      "actors with a process each; beside posix_spawn"},
     wl_actor_creation_process},
    {{"idle_process_actors_cpu", "% of a CPU", {"processes", NULL}, true,
      RA_BENCH_TARGET_NONE, 0,
      "the CPU used while 32 isolated actors and the driver sit idle"},
     wl_idle_process_actors_cpu},
};

// run_one is the harness's ra_bench_run_fn: one run of the workload in
// row, for the suite in ctx, under the watchdog.
static int
run_one(void *ctx, const void *row, unsigned run, ra_bench_run_t *out)
{
    suite_t *s = ctx;
    const workload_t *w = row;
    bench_t b = {.s = s, .name = w->info.name, .run = run};
    int rc;

    phase(s->o, w->info.name, "running");
    rc = w->fn(&b);
    alarm(0);
    out->value = b.value;
    out->n = b.n;
    out->seconds = b.seconds;
    memcpy(out->x, b.x, sizeof b.x);
    out->count[0] = b.clients;
    out->count[1] = b.actors;
    return rc;
}

static const char usage[] =
    "Usage: rayo bench core [OPTIONS]\n"
    "Benchmark the cluster API's core operations (tasks, actor calls,\n"
    "objects, actor creation), like `ray microbenchmark`, on one embedded\n"
    "cluster.  Prints one JSON object per workload on stdout: the median\n"
    "of the runs as \"value\", each run in \"runs\", and the issue's\n"
    "target with \"met\".  Progress and errors go to stderr.\n"
    "\n"
    "Options:\n"
    "  -q, --quick            small counts (a smoke test for CI, ~15 s)\n"
    "  -o, --only LIST        comma-separated workloads (default: all)\n"
    "  -r, --repeat N         run each workload N times (default 1); the\n"
    "                         line gives the median\n"
    "  -c, --cpus N           CPUs of the embedded cluster (default: online\n"
    "                         CPUs)\n"
    "      --timeout SECONDS  fail when starting the cluster or one run of\n"
    "                         a workload takes longer (default 600)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Workloads:\n";

static const char targets[] =
    "\n"
    "Targets (from the issue; a miss is reported as \"met\":false, not as\n"
    "a failure):\n"
    "  tasks, async (single and multi client)   >= 100,000 tasks/s\n"
    "  tasks, sync                              >= 10,000 tasks/s\n"
    "  1:1 actor calls, sync                    >= 10,000 calls/s\n"
    "  1:1 actor calls, async                   >= 200,000 calls/s\n"
    "  n:n actor calls, async                   >= 200,000 calls/s\n"
    "  lightweight actors created               >= 20,000 actors/s\n"
    "  process-isolated actors created          within 2x of posix_spawn\n"
    "                                           (>= posix_spawn_per_s / 2)\n"
    "  task round trip, p99                     < 1 ms\n"
    "\n"
    "Exit status: 0 when every workload ran and every answer was right, 1\n"
    "when one failed, 2 for a bad command line.\n";

static int
run_suite(const core_opts_t *o, const size_t *sel, size_t nsel)
{
    ra_init_opts_t io = {0};
    suite_t s = {.o = o};
    ra_bench_suite_t bs = {
        .bench = "core",
        .workloads = RA_BENCH_TABLE(workloads, workload_t, info.summary),
        .counts = {"clients", "actors"},
        .repeat = o->repeat,
        .cpus = o->cpus,
        .run = run_one,
        .ctx = &s,
    };
    int rc, err;

    io.num_cpus = o->cpus;
    // Room for the process-isolated actors, each in a worker of its own,
    // beside the default pool for tasks and shared actors.
    io.max_workers = 4 * o->cpus + 4 + PROC_HOLD_MAX;
    fprintf(stderr, "rayo bench core: starting a cluster of %u CPUs\n",
            o->cpus);
    phase(o, "cluster", "starting");
    err = ra_init_opts(&io);
    alarm(0);
    if (err != 0) {
        fprintf(stderr, "rayo bench core: ra_init_opts: %s\n",
                ra_strerror(err));
        return RA_TOOL_FAIL;
    }
    rc = ra__bench_run_selected(&bs, sel, nsel);
    phase(o, "cluster", "stopping");
    ra_shutdown();
    alarm(0);
    return rc;
}

int
ra__tool_bench_core(const char *prog, int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    core_opts_t o = {.timeout_s = 600,
                     .cpus = ncpu > 0 ? (unsigned)ncpu : 1};
    const ra_bench_opt_t opts[] = {
        {.name = "cpus", .letter = 'c', .num = &o.cpus, .min = 1,
         .max = 1024},
        RA_BENCH_OPT_TIMEOUT(&o.timeout_s),
    };
    const ra_bench_cmd_t cmd = {
        .usage = usage,
        .width = 27,
        .tail = targets,
        .workloads = RA_BENCH_TABLE(workloads, workload_t, info.summary),
        .select = "only",
        .select_letter = 'o',
        .max_repeat = MAX_REPEAT,
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    ra_bench_args_t a;
    int rc = ra__bench_parse_args(prog, &cmd, argc, argv, &a);

    if (rc != RA_TOOL_OK || a.help) {
        return rc;
    }
    o.quick = a.quick;
    o.repeat = a.repeat;
    ra__bench_watchdog_install();
    return run_suite(&o, a.sel, a.nsel);
}

// bench_pg.c - `rayo bench pg`: placement groups.
//
// The workloads so far time the placement decision alone
// (ra_place_bundles, ra_place.h) on a simulated cluster: no processes, no
// messages, only the choice the GCS makes for each group.  Each workload
// runs --repeat times and prints one JSON object on stdout, shaped as
// `rayo bench core` prints them: the median of its runs as "value", every
// run in "runs", and, where the issue sets one, the target ("target_max")
// and whether the median "met" it.  "cpus" is this machine's (the
// decision runs on one of them).  Progress and errors go to stderr.  A
// target missed is reported, never a failure; a wrong answer (a bundle on
// a dead node, a node given more than it has, a strategy's rule broken)
// or an unexpected error from ra_place_bundles is.
//
// The simulated cluster is drawn from a fixed seed, so every run and
// every machine times the same decisions: nodes of 16 to 64 CPUs, 4 GiB
// of memory per CPU, two in five with 1 to 8 GPUs (some "A100"), one in
// five with an "ssd"; one in a hundred dead; each node partly in use (0
// to 95% of its CPUs, GPUs and memory taken).  Groups of 1, 4 and 8
// bundles of 1 to 16 CPUs and 1 to 32 GiB, a third with 0.5 to 2 GPUs, a
// tenth with an ssd, are placed with each strategy.  Some cannot be
// placed now (RA_EAGAIN) or ever (RA_EINFEASIBLE), which costs the most
// (both the available and the total amounts are searched), and they are
// timed too; "placed_pct" says how many were placed.
//
// The cluster workloads start one embedded cluster (ra_init_opts) the
// first time one of them runs, and it serves the rest of the run:
// pg_create_remove_per_s creates a one-bundle group, waits until it is
// created and removes it (every step a GCS request whose change is
// committed to LMDB, durably, before it is answered, and a prepare and
// commit on the raylet), in 32 client threads at once, as a program
// with many groups to make would (Ray's benchmark creates its groups
// without waiting for each); pg_3bundle_actor_per_s does the same with
// groups of three bundles and an actor created and called in the first
// bundle before the removal, in 8 client threads (the actor is a
// lightweight one in one of the pool's workers; the removal ends it).  The
// *_serial_per_s workloads make one group at a time, which times the
// latency of the whole sequence rather than the throughput.
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

#define NEXTRA RA_BENCH_MAX_EXTRA // extra measured fields per line
#define MAX_REPEAT 1000
#define SEED 42
#define GIB (1024.0 * 1024.0 * 1024.0)
#define MAX_GROUP 8
#define WARM_UP 16      // untimed decisions before the timed ones

typedef struct pg_opts {
    bool quick;
    unsigned cpus;
} pg_opts_t;

// bench_t is one run of one workload.
typedef struct bench {
    const pg_opts_t *o;
    const char *name;
    unsigned run;          // 0 .. repeat - 1
    double value;
    uint64_t n;            // operations timed
    double seconds;
    double x[NEXTRA];      // the workload's extra fields, by its names
    unsigned nodes;        // simulated nodes (0: not shown)
    unsigned clients;      // client threads (0: not shown)
} bench_t;

static uint64_t
scaled(const bench_t *b, uint64_t full, uint64_t quick)
{
    return b->o->quick ? quick : full;
}

static int
fail(const bench_t *b, const char *what, int rc)
{
    fprintf(stderr, "rayo bench pg: %s: %s: %s\n", b->name, what,
            ra_err_name(rc));
    return RA_TOOL_FAIL;
}

// ---------------------------------------------------------------------
// The simulated cluster.

// rng_next is xorshift64*: the same numbers on every machine.
static uint64_t
rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static unsigned
rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) >> 33) % n;
}

static void
make_node(uint64_t *rng, uint32_t id, ra_place_node_t *n)
{
    static const unsigned gpus[] = {1, 2, 4, 8};
    double used;

    memset(n, 0, sizeof *n);
    n->id = id;
    n->alive = rng_below(rng, 100) != 0;
    n->total.cpus = 16.0 * (1 + rng_below(rng, 4));
    n->total.memory = 4 * GIB * n->total.cpus;
    if (rng_below(rng, 5) < 2) {
        n->total.gpus = gpus[rng_below(rng, 4)];
        if (rng_below(rng, 4) == 0) {
            ra_resources_set(&n->total, "accelerator_type:A100", 1);
        }
    }
    if (rng_below(rng, 5) == 0) {
        ra_resources_set(&n->total, "ssd", 1 + rng_below(rng, 4));
    }
    // In use: whole CPUs and GPUs, memory in proportion.
    used = rng_below(rng, 96) / 100.0;
    n->avail = n->total;
    n->avail.cpus -= (double)(unsigned)(n->total.cpus * used);
    n->avail.gpus -= (double)(unsigned)(n->total.gpus * used);
    n->avail.memory -= n->total.memory * used;
}

static void
make_bundle(uint64_t *rng, ra_resources_t *b)
{
    memset(b, 0, sizeof *b);
    b->cpus = 1 + rng_below(rng, 16);
    b->memory = GIB * (1 + rng_below(rng, 32));
    if (rng_below(rng, 3) == 0) {
        b->gpus = 0.5 * (1 + rng_below(rng, 4));
    }
    if (rng_below(rng, 10) == 0) {
        ra_resources_set(b, "ssd", 1);
    }
}

// check_answer checks a placement: alive nodes, the bundles on each node
// within its avail, the strategy's rule.
static int
check_answer(const bench_t *b, const ra_place_node_t *nodes, size_t nnodes,
             const ra_resources_t *g, size_t nb, ra_pg_strategy_t s,
             const size_t *out)
{
    for (size_t i = 0; i < nb; i++) {
        ra_resources_t load = {0};
        unsigned same = 0;
        bool first = true;

        if (out[i] >= nnodes || !nodes[out[i]].alive) {
            fprintf(stderr, "rayo bench pg: %s: %s put bundle %zu on node "
                    "%zu, which is dead or not there\n", b->name,
                    ra_pg_strategy_name(s), i, out[i]);
            return RA_TOOL_FAIL;
        }
        // Each node is checked once, at the first of its bundles.
        for (size_t j = 0; j < i; j++) {
            first = first && out[j] != out[i];
        }
        if (!first) {
            continue;
        }
        for (size_t j = i; j < nb; j++) {
            if (out[j] == out[i]) {
                same++;
                ra_resources_add(&load, &g[j]);
            }
        }
        if ((s == RA_PG_STRICT_SPREAD && same > 1) ||
            (s == RA_PG_STRICT_PACK && same != nb) ||
            !ra_resources_fit(&load, &nodes[out[i]].avail)) {
            fprintf(stderr, "rayo bench pg: %s: %s gave a wrong answer "
                    "(bundle %zu, node %zu)\n", b->name,
                    ra_pg_strategy_name(s), i, out[i]);
            return RA_TOOL_FAIL;
        }
    }
    return RA_TOOL_OK;
}

// ---------------------------------------------------------------------
// The decision workloads.

static const unsigned group_sizes[] = {1, 4, 8};

#define NSIZES (sizeof group_sizes / sizeof group_sizes[0])
#define NSTRATEGIES 4
#define NCOMBOS (NSIZES * NSTRATEGIES)

// decide times per decisions for each strategy and group size on a
// cluster of nnodes and fills b: the value is the p99 in microseconds;
// x[0..2] are the p50, mean and max, x[3..14] each combination's mean
// (in the order of DECISION_EXTRA), x[15] the share placed.
static int
decide(bench_t *b, size_t nnodes, uint64_t per)
{
    ra_place_node_t *nodes = calloc(nnodes, sizeof *nodes);
    ra_resources_t *groups = calloc(per * MAX_GROUP, sizeof *groups);
    double *us = calloc(per * NCOMBOS, sizeof *us);
    uint64_t rng = SEED, placed = 0, n = 0;
    double total = 0;
    int rc = RA_TOOL_OK;

    if (nodes == NULL || groups == NULL || us == NULL) {
        rc = fail(b, "allocating the cluster", RA_ENOMEM);
        goto out;
    }
    for (size_t i = 0; i < nnodes; i++) {
        make_node(&rng, (uint32_t)i, &nodes[i]);
    }
    for (size_t c = 0; c < NCOMBOS && rc == RA_TOOL_OK; c++) {
        ra_pg_strategy_t s = (ra_pg_strategy_t)(c / NSIZES);
        size_t nb = group_sizes[c % NSIZES];
        double sum = 0;

        for (size_t i = 0; i < per * nb; i++) {
            make_bundle(&rng, &groups[i]);
        }
        for (uint64_t i = 0; i < per + WARM_UP && rc == RA_TOOL_OK; i++) {
            const ra_resources_t *g = &groups[(i % per) * nb];
            size_t out[MAX_GROUP];
            double t0 = ra__bench_now_s(), t;
            int err = ra_place_bundles(nodes, nnodes, g, nb, s, out);

            t = ra__bench_now_s() - t0;
            if (err != 0 && err != RA_EAGAIN && err != RA_EINFEASIBLE) {
                rc = fail(b, "ra_place_bundles", err);
            } else if (err == 0) {
                rc = check_answer(b, nodes, nnodes, g, nb, s, out);
            }
            if (i < WARM_UP) {
                continue;
            }
            us[n++] = t * 1e6;
            sum += t;
            placed += err == 0 ? 1 : 0;
        }
        b->x[3 + c] = sum / (double)per * 1e6;
        total += sum;
    }
    if (rc == RA_TOOL_OK) {
        qsort(us, n, sizeof *us, ra__bench_cmp_double);
        b->value = ra__bench_percentile(us, n, 99);
        b->x[0] = ra__bench_percentile(us, n, 50);
        b->x[1] = total / (double)n * 1e6;
        b->x[2] = us[n - 1];
        b->x[15] = 100.0 * (double)placed / (double)n;
        b->n = n;
        b->seconds = total;
        b->nodes = (unsigned)nnodes;
    }
out:
    free(nodes);
    free(groups);
    free(us);
    return rc;
}

// ---------------------------------------------------------------------
// Workloads on an embedded cluster.

static int
bench_actor_init(ra_task_t *t)
{
    (void)t;
    return 0;
}

static int
bench_actor_ping(ra_task_t *t)
{
    return ra_task_return_i64(t, 1);
}

static const ra_method_t bench_actor_methods[] = {{"ping",
                                                   bench_actor_ping}};
static const ra_actor_class_t bench_pg_actor = {
    .name = "bench_pg_actor",
    .init = bench_actor_init,
    .methods = bench_actor_methods,
    .nmethods = 1,
};
RA_ACTOR_CLASS_REGISTER(bench_pg_actor)

// The clients of the cluster workloads: threads of this program, each
// making groups one after the other, so that this many are in flight.
#define CLIENTS 32
#define ACTOR_CLIENTS 8

// cluster starts the embedded cluster the first time a workload needs it:
// enough CPUs for every client's group, and a worker for each actor.
static int
cluster(const bench_t *b)
{
    if (ra_is_initialized()) {
        return RA_TOOL_OK;
    }
    unsigned cpus = 3 * CLIENTS;
    ra_init_opts_t io = {.num_cpus = cpus,
                         .workers = ACTOR_CLIENTS,
                         .max_workers = ACTOR_CLIENTS + 8};
    fprintf(stderr, "rayo bench pg: starting a cluster of %u CPUs\n",
            cpus);
    int err = ra_init_opts(&io);
    return err != 0 ? fail(b, "ra_init_opts", err) : RA_TOOL_OK;
}

// one_group creates a group of nb one-CPU bundles, waits for it, puts an
// actor in its first bundle if asked, and removes the group.
static int
one_group(const bench_t *b, size_t nb, bool actor)
{
    ra_resources_t bundles[3];
    for (size_t i = 0; i < nb; i++) {
        bundles[i] = (ra_resources_t){.cpus = 1};
    }
    ra_pg_t pg;
    int err = ra_pg_create(bundles, nb, NULL, &pg);
    if (err != 0) {
        return fail(b, "ra_pg_create", err);
    }
    if ((err = ra_pg_wait(pg, 30000)) != 0) {
        (void)ra_pg_remove(pg);
        return fail(b, "ra_pg_wait", err);
    }
    if (actor) {
        ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
        ao.num_cpus = 1;
        ao.placement_group = pg;
        ao.bundle_index = 0;
        ra_actor_t a;
        ra_ref_t r;
        int64_t x = 0;
        if ((err = ra_actor_create("bench_pg_actor", NULL, 0, &ao, &a)) !=
                0 ||
            (err = ra_actor_call(a, "ping", NULL, 0, &r)) != 0) {
            (void)ra_pg_remove(pg);
            return fail(b, "an actor in the group", err);
        }
        err = ra_get_i64(r, 30000, &x);
        ra_release(r);
        if (err != 0 || x != 1) {
            (void)ra_pg_remove(pg);
            return fail(b, "calling the actor", err != 0 ? err : RA_EBADMSG);
        }
    }
    if ((err = ra_pg_remove(pg)) != 0) {
        return fail(b, "ra_pg_remove", err);
    }
    return RA_TOOL_OK;
}

// client_t is one client thread's share of a cluster workload.
typedef struct client {
    const bench_t *b;
    size_t nb;
    bool actor;
    uint64_t n;
    int rc;
    pthread_t th;
} client_t;

static void *
client_main(void *arg)
{
    client_t *c = arg;
    for (uint64_t i = 0; i < c->n && c->rc == RA_TOOL_OK; i++) {
        c->rc = one_group(c->b, c->nb, c->actor);
    }
    return NULL;
}

// groups makes n groups of nb bundles (with an actor in each if asked)
// with nclients clients, and times them all.
static int
groups(bench_t *b, size_t nb, bool actor, uint64_t n, unsigned nclients)
{
    int rc = cluster(b);
    for (uint64_t i = 0; i < 3 && rc == RA_TOOL_OK; i++) {
        rc = one_group(b, nb, actor);   // warm-up
    }
    if (rc != RA_TOOL_OK) {
        return rc;
    }
    client_t *cl = calloc(nclients, sizeof *cl);
    if (cl == NULL) {
        return fail(b, "allocating the clients", RA_ENOMEM);
    }
    unsigned started = 0;
    double t0 = ra__bench_now_s();
    for (unsigned i = 0; i < nclients; i++) {
        cl[i] = (client_t){.b = b, .nb = nb, .actor = actor,
                           .n = n / nclients + (i < n % nclients)};
        if (pthread_create(&cl[i].th, NULL, client_main, &cl[i]) != 0) {
            rc = fail(b, "starting a client thread", RA_ENOMEM);
            break;
        }
        started++;
    }
    for (unsigned i = 0; i < started; i++) {
        (void)pthread_join(cl[i].th, NULL);
        rc = rc != RA_TOOL_OK ? rc : cl[i].rc;
    }
    b->seconds = ra__bench_now_s() - t0;
    b->n = n;
    b->clients = nclients;
    free(cl);
    return rc;
}

static int
wl_create_remove(bench_t *b)
{
    return groups(b, 1, false, scaled(b, 20000, 200), CLIENTS);
}

static int
wl_create_remove_serial(bench_t *b)
{
    return groups(b, 1, false, scaled(b, 2000, 100), 1);
}

static int
wl_3bundle_actor(bench_t *b)
{
    return groups(b, 3, true, scaled(b, 1000, 8), ACTOR_CLIENTS);
}

static int
wl_3bundle_actor_serial(bench_t *b)
{
    return groups(b, 3, true, scaled(b, 1000, 4), 1);
}

static int
wl_decision_1000(bench_t *b)
{
    return decide(b, 1000, scaled(b, 1000, 100));
}

static int
wl_decision_10000(bench_t *b)
{
    return decide(b, 10000, scaled(b, 200, 20));
}

// ---------------------------------------------------------------------
// The workload table and the command.

typedef struct workload {
    ra_bench_workload_t info; // first: the harness reads a row as this
    int (*fn)(bench_t *b);
} workload_t;

#define DECISION_EXTRA                                                     \
    {"p50_us", "mean_us", "max_us", "pack_1_us", "pack_4_us",              \
     "pack_8_us", "spread_1_us", "spread_4_us", "spread_8_us",             \
     "strict_pack_1_us", "strict_pack_4_us", "strict_pack_8_us",           \
     "strict_spread_1_us", "strict_spread_4_us", "strict_spread_8_us",     \
     "placed_pct"}

static const workload_t workloads[] = {
    {{"placement_decision_us_1000_nodes", "us", DECISION_EXTRA, true,
      RA_BENCH_TARGET_MAX, 1000,
      "1,000 nodes, groups of 1-8 bundles: value is p99"},
     wl_decision_1000},
    {{"placement_decision_us_10000_nodes", "us", DECISION_EXTRA, true,
      RA_BENCH_TARGET_NONE, 0, "the same on 10,000 nodes"},
     wl_decision_10000},
    {{"pg_create_remove_per_s", "groups/s", {NULL}, false,
      RA_BENCH_TARGET_MIN, 5000,
      "create + wait + remove of 1-bundle groups, 32 clients"},
     wl_create_remove},
    {{"pg_create_remove_serial_per_s", "groups/s", {NULL}, false,
      RA_BENCH_TARGET_NONE, 0, "the same, one group at a time"},
     wl_create_remove_serial},
    {{"pg_3bundle_actor_per_s", "groups/s", {NULL}, false,
      RA_BENCH_TARGET_MIN, 1000,
      "3-bundle groups, an actor created and called in each, 8 clients"},
     wl_3bundle_actor},
    {{"pg_3bundle_actor_serial_per_s", "groups/s", {NULL}, false,
      RA_BENCH_TARGET_NONE, 0, "the same, one group at a time"},
     wl_3bundle_actor_serial},
};

// run_one is the harness's ra_bench_run_fn: one run of the workload in
// row, with the options in ctx.
static int
run_one(void *ctx, const void *row, unsigned run, ra_bench_run_t *out)
{
    const workload_t *w = row;
    bench_t b = {.o = ctx, .name = w->info.name, .run = run};
    int rc = w->fn(&b);

    out->value = b.value;
    out->n = b.n;
    out->seconds = b.seconds;
    memcpy(out->x, b.x, sizeof b.x);
    out->count[0] = b.nodes;
    out->count[1] = b.clients;
    return rc;
}

static const char usage[] =
    "Usage: rayo bench pg [OPTIONS]\n"
    "Benchmark placement groups: the placement decision alone (which\n"
    "node each bundle goes to) on a simulated cluster, for each strategy\n"
    "and groups of 1, 4 and 8 bundles; and groups created and removed on\n"
    "an embedded cluster, with actors in them.  Prints one JSON object\n"
    "per workload on stdout: the median of the runs as \"value\", each\n"
    "run in \"runs\", and the issue's target with \"met\".  Progress and\n"
    "errors go to stderr.\n"
    "\n"
    "Options:\n"
    "  -q, --quick            small counts (a smoke test for CI, ~1 s)\n"
    "  -o, --only LIST        comma-separated workloads (default: all)\n"
    "  -r, --repeat N         run each workload N times (default 1); the\n"
    "                         line gives the median\n"
    "  -h, --help             show this help\n"
    "\n"
    "Workloads:\n";

static const char targets[] =
    "\n"
    "Targets (from the issue; a miss is reported as \"met\":false, not as\n"
    "a failure):\n"
    "  placement decision, 1,000 nodes, up to 8 bundles, p99   < 1 ms\n"
    "  create + ready + remove, 1-bundle groups          >= 5,000/s\n"
    "  3-bundle groups with an actor in each              >= 1,000/s\n"
    "\n"
    "Exit status: 0 when every workload ran and every answer was right, 1\n"
    "when one failed, 2 for a bad command line.\n";

static const ra_bench_cmd_t cmd = {
    .usage = usage,
    .width = 34,
    .tail = targets,
    .workloads = RA_BENCH_TABLE(workloads, workload_t, info.summary),
    .select = "only",
    .select_letter = 'o',
    .max_repeat = MAX_REPEAT,
};

int
ra__tool_bench_pg(const char *prog, int argc, char **argv)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    pg_opts_t o = {.cpus = ncpu > 0 ? (unsigned)ncpu : 1};
    ra_bench_suite_t s = {
        .bench = "pg",
        .workloads = RA_BENCH_TABLE(workloads, workload_t, info.summary),
        .counts = {"nodes", "clients"},
        .cpus = o.cpus,
        .run = run_one,
        .ctx = &o,
    };
    ra_bench_args_t a;
    int rc = ra__bench_parse_args(prog, &cmd, argc, argv, &a);

    if (rc != RA_TOOL_OK || a.help) {
        return rc;
    }
    o.quick = a.quick;
    s.repeat = a.repeat;
    rc = ra__bench_run_selected(&s, a.sel, a.nsel);
    ra_shutdown();   // the cluster of the cluster workloads, if started
    return rc;
}

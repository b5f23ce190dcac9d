// bench_supervisor.c - `rayo bench supervisor`: how fast supervisors heal.
//
// Workloads (JSON lines, as `rayo bench actor`):
//   restart       an actor child under one_for_one crashes 10,000 times;
//                 each crash is timed from the moment the child's handler
//                 decides to fail to the moment its replacement's init
//                 runs.  Lines: restart_median_us, restart_p99_us,
//                 restart_median_first1k_us, restart_median_last1k_us,
//                 restarts_per_s.
//   process_restart  an OS-process child (/bin/true, restarted each time
//                 it exits): process_restarts_per_s beside
//                 posix_spawn_per_s, the bare posix_spawn+waitpid rate
//                 measured right before; process_restart_*_us is the
//                 time from the supervisor's "exited" event to its
//                 "started" event for the replacement.
//   dynamic       start and stop 100,000 simple_one_for_one children:
//                 dynamic_start_per_s, dynamic_stop_per_s.
#include <getopt.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

extern char **environ;

#define TAG_CRASH 1
#define TAG_READY 2

static void
line(const char *workload, double value, const char *unit, uint64_t n,
     double seconds)
{
    printf("{\"suite\":\"supervisor\",\"workload\":\"%s\",\"value\":%.3f,"
           "\"unit\":\"%s\",\"n\":%" PRIu64 ",\"seconds\":%.6f}\n",
           workload, value, unit, n, seconds);
    fflush(stdout);
}

// Starts a runtime with threads schedulers and a scope for this thread.
static int
open_runtime(unsigned threads, ra_runtime_t **rt, ra_ctx_t **me)
{
    ra_runtime_opts_t ro = {.threads = threads};
    int rc = ra_runtime_new(rt, &ro);
    if (rc == 0) {
        rc = ra_scope_new(*rt, me);
    }
    return rc;
}

// ---- restart latency ----

// Global: the benchmark's shared state, written by the (one) child running
// at a time and by the driver, read by the main thread once told.
static struct {
    ra_pid_t main;
    ra_pid_t driver;
    _Atomic uint64_t crash_at;
    uint64_t *lat;
    _Atomic size_t done;
    size_t n;
    size_t sent;
} rs;

#define TAG_DONE 3

// The driver crashes the child as soon as its replacement is ready, so the
// whole loop runs on scheduler threads (a plain thread in the loop would
// add a cross-thread wake-up to every restart).
static int
driver_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)state;
    if (ra_msg_tag(msg) != TAG_READY) {
        return 0;
    }
    ra_pid_t child;
    memcpy(&child, ra_msg_data(msg, NULL), sizeof(child));
    ra_msg_t *m = NULL;
    bool more = rs.sent < rs.n;
    int rc = ra_msg_new_bytes(&m, more ? TAG_CRASH : TAG_DONE, NULL, 0);
    if (rc == 0) {
        rc = ra_send(ctx, more ? child : rs.main, &m);
        if (rc != 0) {
            ra_msg_unref(&m);
        }
    }
    rs.sent += more;
    return 0;
}

static const ra_behaviour_t driver_b = {"bench_driver", NULL, driver_handle,
                                        NULL};

static int
child_init(ra_ctx_t *ctx, void **state)
{
    uint64_t t = atomic_load(&rs.crash_at);
    if (t != 0) {
        size_t i = atomic_fetch_add(&rs.done, 1);
        rs.lat[i] = ra__bench_now_ns() - t;
    }
    ra_msg_t *m = NULL;
    ra_pid_t self = ra_self(ctx);
    if (ra_msg_new_bytes(&m, TAG_READY, &self, sizeof(self)) == 0 &&
        ra_send(ctx, rs.driver, &m) != 0) {
        ra_msg_unref(&m);
    }
    return 0;
}

static int
child_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    (void)state;
    if (ra_msg_tag(msg) == TAG_CRASH) {
        atomic_store(&rs.crash_at, ra__bench_now_ns());
        return RA_EBADMSG; // crash
    }
    return 0;
}

static const ra_behaviour_t child_b = {"bench_child", child_init,
                                       child_handle, NULL};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double
median_us(uint64_t *v, size_t n)
{
    uint64_t *c = malloc(n * sizeof(*c));
    if (c == NULL || n == 0) {
        free(c);
        return 0;
    }
    memcpy(c, v, n * sizeof(*c));
    qsort(c, n, sizeof(*c), cmp_u64);
    double m = c[n / 2] / 1000.0;
    free(c);
    return m;
}

static int
wl_restart(unsigned threads, size_t n)
{
    ra_runtime_t *rt = NULL;
    ra_ctx_t *me = NULL;
    ra_pid_t sup;
    int rc = open_runtime(threads, &rt, &me);
    if (rc != 0) {
        fprintf(stderr, "rayo bench supervisor: %s\n", ra_strerror(rc));
        ra_runtime_destroy(&rt);
        return RA_TOOL_FAIL;
    }
    rs.main = ra_self(me);
    atomic_store(&rs.crash_at, 0);
    atomic_store(&rs.done, 0);
    rs.n = n;
    rs.sent = 0;
    rs.lat = calloc(n, sizeof(*rs.lat));
    rc = rs.lat == NULL ? RA_ENOMEM
                        : ra_spawn(rt, &driver_b, NULL, NULL, &rs.driver);
    ra_child_spec_t spec = {.id = "worker", .beh = &child_b};
    ra_sup_flags_t f = {.strategy = RA_ONE_FOR_ONE,
                        .intensity = UINT32_MAX - 1, .period_ms = 1000};
    uint64_t t0 = ra__bench_now_ns();
    if (rc == 0) {
        rc = ra_sup_start(rt, NULL, &f, &spec, 1, &sup);
    }
    ra_msg_t *fin = NULL;
    if (rc == 0) {
        rc = ra_receive(me, 60000, &fin); // TAG_DONE from the driver
        ra_msg_unref(&fin);
    }
    double secs = (ra__bench_now_ns() - t0) / 1e9;
    size_t done = atomic_load(&rs.done);
    if (rc == 0 && done != n) {
        fprintf(stderr, "rayo bench supervisor: %zu restarts of %zu\n", done,
                n);
        rc = RA_EINVAL;
    }
    if (rc == 0) {
        uint64_t *s = malloc(n * sizeof(*s));
        if (s != NULL) {
            memcpy(s, rs.lat, n * sizeof(*s));
            qsort(s, n, sizeof(*s), cmp_u64);
            size_t k = n < 1000 ? n : 1000;
            line("restart_median_us", s[n / 2] / 1000.0, "us", n, secs);
            line("restart_p99_us", s[(n * 99) / 100] / 1000.0, "us", n, secs);
            line("restart_median_first1k_us", median_us(rs.lat, k), "us", k,
                 secs);
            line("restart_median_last1k_us", median_us(rs.lat + n - k, k),
                 "us", k, secs);
            line("restarts_per_s", n / secs, "restarts/s", n, secs);
            free(s);
        }
    } else {
        fprintf(stderr, "rayo bench supervisor: restart: %s\n",
                ra_strerror(rc));
    }
    ra_scope_destroy(&me);
    ra_runtime_destroy(&rt);
    free(rs.lat);
    rs.lat = NULL;
    return rc == 0 ? RA_TOOL_OK : RA_TOOL_FAIL;
}

// ---- OS-process restarts ----

static int
wl_process(unsigned threads, size_t n)
{
    // The baseline: bare posix_spawn + waitpid, one after the other.
    char *argv[] = {"/bin/true", NULL};
    uint64_t t0 = ra__bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0 ||
            waitpid(pid, NULL, 0) < 0) {
            perror("rayo bench supervisor: posix_spawn");
            return RA_TOOL_FAIL;
        }
    }
    double base = (ra__bench_now_ns() - t0) / 1e9;
    line("posix_spawn_per_s", n / base, "spawns/s", n, base);

    ra_runtime_t *rt = NULL;
    ra_ctx_t *me = NULL;
    ra_pid_t sup;
    int rc = open_runtime(threads, &rt, &me);
    const char *cargv[] = {"/bin/true", NULL};
    ra_child_spec_t spec = {.id = "true", .argv = cargv};
    ra_sup_flags_t f = {.strategy = RA_ONE_FOR_ONE,
                        .intensity = UINT32_MAX - 1, .period_ms = 1000,
                        .events = me != NULL ? ra_self(me) : RA_PID_NIL};
    if (rc == 0) {
        rc = ra_sup_start(rt, NULL, &f, &spec, 1, &sup);
    }
    // Latency: from the supervisor's "exited" event to its "started" event
    // for the replacement, both stamped on arrival here.
    uint64_t *lat = calloc(n + 1, sizeof(*lat));
    uint64_t exited_at = 0;
    size_t started = 0, nlat = 0;
    t0 = ra__bench_now_ns();
    while (rc == 0 && started < n + 1) {
        ra_msg_t *m = NULL;
        rc = lat == NULL ? RA_ENOMEM : ra_receive(me, 10000, &m);
        if (rc == 0) {
            const bson_t *doc = ra_msg_bson(m);
            bson_iter_t it;
            const char *ev = doc != NULL &&
                                     bson_iter_init_find(&it, doc, "event")
                                 ? bson_iter_utf8(&it, NULL)
                                 : "";
            uint64_t now = ra__bench_now_ns();
            if (strcmp(ev, "exited") == 0) {
                exited_at = now;
            } else if (strcmp(ev, "started") == 0) {
                if (exited_at != 0) {
                    lat[nlat++] = now - exited_at;
                    exited_at = 0;
                }
                started++;
            }
            ra_msg_unref(&m);
        }
    }
    double secs = (ra__bench_now_ns() - t0) / 1e9;
    if (rc == 0 && nlat > 0) {
        size_t k = nlat < 1000 ? nlat : 1000;
        uint64_t *sorted = malloc(nlat * sizeof(*sorted));
        if (sorted != NULL) {
            memcpy(sorted, lat, nlat * sizeof(*sorted));
            qsort(sorted, nlat, sizeof(*sorted), cmp_u64);
            line("process_restart_median_us", sorted[nlat / 2] / 1000.0, "us",
                 nlat, secs);
            line("process_restart_p99_us", sorted[(nlat * 99) / 100] / 1000.0,
                 "us", nlat, secs);
            free(sorted);
        }
        line("process_restart_median_first1k_us", median_us(lat, k), "us", k,
             secs);
        line("process_restart_median_last1k_us",
             median_us(lat + nlat - k, k), "us", k, secs);
        line("process_restarts_per_s", n / secs, "restarts/s", n, secs);
        ra_sup_stop(me, sup);
    } else if (rc != 0) {
        fprintf(stderr, "rayo bench supervisor: process: %s\n",
                ra_strerror(rc));
    }
    free(lat);
    ra_scope_destroy(&me);
    ra_runtime_destroy(&rt);
    return rc == 0 ? RA_TOOL_OK : RA_TOOL_FAIL;
}

// ---- dynamic children ----

static int
idle_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return 0;
}

static const ra_behaviour_t idle_b = {"bench_idle", NULL, idle_handle, NULL};

typedef struct dyn {
    ra_pid_t sup;
    size_t n;
    int rc;
    double start_s, stop_s;
    ra_pid_t main;
} dyn_t;

// Starts and stops the children from an actor, so each ra_sup_start_child
// is a call between actors on a scheduler thread.
static int
dyn_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    dyn_t *d = state;
    (void)msg;
    uint64_t t0 = ra__bench_now_ns();
    for (size_t i = 0; i < d->n && d->rc == 0; i++) {
        d->rc = ra_sup_start_child(ctx, d->sup, NULL, NULL, NULL);
    }
    d->start_s = (ra__bench_now_ns() - t0) / 1e9;
    ra_child_counts_t k = {0};
    if (d->rc == 0) {
        d->rc = ra_sup_count_children(ctx, d->sup, &k);
    }
    if (d->rc == 0 && k.active != d->n) {
        fprintf(stderr, "rayo bench supervisor: %zu of %zu children\n",
                k.active, d->n);
        d->rc = RA_EINVAL;
    }
    t0 = ra__bench_now_ns();
    if (d->rc == 0) {
        d->rc = ra_sup_stop(ctx, d->sup);
    }
    d->stop_s = (ra__bench_now_ns() - t0) / 1e9;
    ra_msg_t *m = NULL;
    if (ra_msg_new_bytes(&m, TAG_DONE, NULL, 0) == 0 &&
        ra_send(ctx, d->main, &m) != 0) {
        ra_msg_unref(&m);
    }
    return 0;
}

static const ra_behaviour_t dyn_b = {"bench_dyn", NULL, dyn_handle, NULL};

static int
wl_dynamic(unsigned threads, size_t n)
{
    ra_runtime_t *rt = NULL;
    ra_ctx_t *me = NULL;
    ra_pid_t sup;
    int rc = open_runtime(threads, &rt, &me);
    ra_child_spec_t spec = {.id = "dyn", .beh = &idle_b,
                            .restart = RA_TEMPORARY};
    ra_sup_flags_t f = {.strategy = RA_SIMPLE_ONE_FOR_ONE};
    if (rc == 0) {
        rc = ra_sup_start(rt, NULL, &f, &spec, 1, &sup);
    }
    dyn_t d = {.sup = sup, .n = n, .main = me != NULL ? ra_self(me)
                                                   : RA_PID_NIL};
    ra_pid_t drv;
    ra_msg_t *m = NULL;
    if (rc == 0 && (rc = ra_spawn(rt, &dyn_b, &d, NULL, &drv)) == 0 &&
        (rc = ra_msg_new_bytes(&m, 0, NULL, 0)) == 0 &&
        (rc = ra_send(me, drv, &m)) != 0) {
        ra_msg_unref(&m);
    }
    if (rc == 0 && (rc = ra_receive(me, 600000, &m)) == 0) {
        ra_msg_unref(&m);
        rc = d.rc;
    }
    double start = d.start_s, stop = d.stop_s;
    if (rc == 0) {
        line("dynamic_start_per_s", n / start, "children/s", n, start);
        line("dynamic_stop_per_s", n / stop, "children/s", n, stop);
    } else {
        fprintf(stderr, "rayo bench supervisor: dynamic: %s\n",
                ra_strerror(rc));
    }
    ra_scope_destroy(&me);
    ra_runtime_destroy(&rt);
    return rc == 0 ? RA_TOOL_OK : RA_TOOL_FAIL;
}

static const char usage[] =
    "Usage: rayo bench supervisor [OPTIONS]\n"
    "Benchmark supervisors.  Prints one JSON object per line on stdout.\n"
    "\n"
    "Options:\n"
    "  -q, --quick            divide the sizes by 100 (a smoke test for CI)\n"
    "  -t, --threads N        scheduler threads (default 0: online CPUs)\n"
    "  -w, --workload LIST    restart, process_restart, dynamic (default:\n"
    "                         all)\n"
    "  -h, --help             show this help\n";

int
ra__tool_bench_supervisor(const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {
        {"quick", no_argument, NULL, 'q'},
        {"threads", required_argument, NULL, 't'},
        {"workload", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quick = false;
    unsigned threads = 0;
    const char *which = "restart,process_restart,dynamic";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":qt:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'q':
            quick = true;
            break;
        case 't': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v > 1024) {
                return ra__tool_usage_error(prog, "--threads takes 0 to 1024,"
                                            " not '%s'", optarg);
            }
            threads = (unsigned)v;
            break;
        }
        case 'w':
            which = optarg;
            break;
        case 'h':
            printf("%s", usage);
            return RA_TOOL_OK;
        default:
            return ra__tool_bad_option(prog, c, argv);
        }
    }
    if (optind < argc) {
        return ra__tool_usage_error(prog, "unexpected argument '%s'",
                                    argv[optind]);
    }
    size_t div = quick ? 100 : 1;
    char *list = strdup(which);
    int rc = list == NULL ? RA_TOOL_FAIL : RA_TOOL_OK;
    for (char *save = NULL, *w = list ? strtok_r(list, ",", &save) : NULL;
         w != NULL && rc == RA_TOOL_OK; w = strtok_r(NULL, ",", &save)) {
        if (strcmp(w, "restart") == 0) {
            rc = wl_restart(threads, 10000 / div);
        } else if (strcmp(w, "process_restart") == 0) {
            rc = wl_process(threads, 2000 / div);
        } else if (strcmp(w, "dynamic") == 0) {
            rc = wl_dynamic(threads, 100000 / div);
        } else {
            rc = ra__tool_usage_error(prog, "unknown workload '%s'", w);
        }
    }
    free(list);
    return rc;
}

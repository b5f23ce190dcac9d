// check_pg.c - placement groups on the embedded cluster: creation and
// removal through the GCS and the raylet's two-phase reservation, pending
// groups, tasks and actors inside bundles, GPU bundles on the best-linked
// devices, names, and accounting that returns to full.
//
// The node is a synthetic two-socket machine with the DGX-1 GPUs of
// dgx1.h (an inventory file) and 8 CPUs; workers are real processes.
#include <check.h>
#include <dirent.h>
#include <hwloc.h>
#include <sched.h>
#include <limits.h>
#include <rayo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cluster_impl.h"   // the GCS wire, to play a rogue process
#include "dgx1.h"
#include "testutil.h"

// ---- what the workers run ----

// gate_mark creates a file in directory argument 0 (its pid in the name),
// waits until the file named by argument 1 exists (at most a minute) and
// returns its CUDA_VISIBLE_DEVICES.
static int
gate_mark(ra_task_t *t)
{
    size_t dl = 0, gl = 0;
    const char *dir = ra_task_arg(t, 0, &dl);
    const char *gate = ra_task_arg(t, 1, &gl);
    char p[600];
    snprintf(p, sizeof p, "%.*s/mark-%d", (int)dl, dir, (int)getpid());
    FILE *f = fopen(p, "w");
    if (f != NULL) {
        fclose(f);
    }
    snprintf(p, sizeof p, "%.*s", (int)gl, gate);
    for (int i = 0; gl > 0 && i < 60000 && access(p, F_OK) != 0; i++) {
        usleep(1000);
    }
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    return ra_task_return_bytes(t, v != NULL ? v : "-",
                                v != NULL ? strlen(v) : 1);
}
RA_REMOTE_REGISTER(gate_mark)

// cpus_allowed returns the CPUs the thread running it may use, as a list
// ("0,1").
static int
cpus_allowed(ra_task_t *t)
{
    cpu_set_t set;
    char out[256] = "";
    size_t off = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        return ra_task_fail(t, "sched_getaffinity failed");
    }
    for (int c = 0; c < CPU_SETSIZE && off + 8 < sizeof out; c++) {
        if (CPU_ISSET(c, &set)) {
            off += (size_t)snprintf(out + off, sizeof out - off, "%s%d",
                                    off > 0 ? "," : "", c);
        }
    }
    return ra_task_return_bytes(t, out, strlen(out));
}
RA_REMOTE_REGISTER(cpus_allowed)

static int
pg_actor_init(ra_task_t *t)
{
    (void)t;
    return 0;
}

static int
pg_actor_pid(ra_task_t *t)
{
    return ra_task_return_i64(t, (int64_t)getpid());
}

static const ra_method_t pg_actor_methods[] = {{"pid", pg_actor_pid}};
static const ra_actor_class_t pg_actor = {
    .name = "pg_actor",
    .init = pg_actor_init,
    .methods = pg_actor_methods,
    .nmethods = 1,
};
RA_ACTOR_CLASS_REGISTER(pg_actor)

// ---- fixtures and helpers ----

static char tmpdir[PATH_MAX];
static char invpath[PATH_MAX + 32];

static void
start(void)
{
    dgx1_start(8, tmpdir, sizeof tmpdir, invpath, sizeof invpath);
}

static void
stop(void)
{
    ra_test_cluster_stop();
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            char p[PATH_MAX + 300];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(tmpdir);
}

static ra_resources_t
res(double cpus, double gpus)
{
    return (ra_resources_t){.cpus = cpus, .gpus = gpus};
}

static ra_pg_t
create(const ra_resources_t *b, size_t n, ra_pg_strategy_t s,
       const char *name)
{
    ra_pg_opts_t o = {.strategy = s, .name = name};
    ra_pg_t pg;
    RA_CK_OK(ra_pg_create(b, n, &o, &pg));
    ck_assert_uint_ne(pg.id, 0);
    return pg;
}

static double
cpus_avail(void)
{
    double a = -1;
    RA_CK_OK(ra_cluster_resources(NULL, &a, NULL, NULL));
    return a;
}

static void
wait_cpus_avail(double want)
{
    RA_CK_WAIT(cpus_avail() == want, 30000);
}

static ra_pg_state_t
state_of(ra_pg_t pg)
{
    ra_pg_info_t info;
    RA_CK_OK(ra_pg_info(pg, &info));
    ra_pg_state_t s = info.state;
    ra_pg_info_free(&info);
    return s;
}

static const char *
path(const char *name)
{
    static char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void
touch(const char *name)
{
    FILE *f = fopen(path(name), "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

static unsigned
marks(void)
{
    unsigned n = 0;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        n += strncmp(e->d_name, "mark-", 5) == 0;
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

// mark submits gate_mark with options o behind the gate name (NULL: none).
static ra_ref_t
mark(const ra_task_opts_t *o, const char *gate)
{
    const char *g = gate != NULL ? path(gate) : "";
    ra_arg_t args[2] = {RA_ARG_BYTES(tmpdir, strlen(tmpdir)),
                        RA_ARG_BYTES(g, strlen(g))};
    ra_ref_t r;
    RA_CK_OK(ra_remote("gate_mark", args, 2, o, &r));
    return r;
}

// in_pg submits gate_mark into bundle `bundle` of pg.
static ra_ref_t
in_pg(ra_pg_t pg, int bundle, double cpus, double gpus, const char *gate)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_cpus = cpus;
    o.num_gpus = gpus;
    o.placement_group = pg;
    o.bundle_index = bundle;
    return mark(&o, gate);
}

static void
get_str(ra_ref_t r, char *buf, size_t cap)
{
    ra_value_t *v = NULL;
    int rc = ra_get(r, 60000, &v);
    ck_assert_msg(rc == 0, "%s: %s", ra_err_name(rc),
                  v != NULL ? ra_value_error(v) : "");
    size_t len = 0;
    const char *d = ra_value_data(v, &len);
    snprintf(buf, cap, "%.*s", (int)len, d);
    ra_value_free(&v);
    ra_release(r);
}

// ---- tests ----

START_TEST(test_pg_create_wait_info_remove)
{
    start();
    ra_resources_t b[2] = {res(1, 0), res(2, 0)};
    ra_pg_t pg = create(b, 2, RA_PG_STRICT_PACK, NULL);
    RA_CK_OK(ra_pg_wait(pg, 10000));
    ck_assert_double_eq(cpus_avail(), 5);
    ra_pg_info_t info;
    RA_CK_OK(ra_pg_info(pg, &info));
    ck_assert_int_eq(info.state, RA_PG_CREATED);
    ck_assert_int_eq(info.strategy, RA_PG_STRICT_PACK);
    ck_assert_uint_eq(info.nbundles, 2);
    ck_assert_double_eq(info.bundles[1].need.cpus, 2);
    ck_assert_uint_eq(info.bundles[0].node, 1);
    ck_assert_uint_eq(info.bundles[1].node, 1);
    ra_pg_info_free(&info);
    // A ready reference works with ra_wait once created.
    ra_ref_t ready;
    bool is_ready = false;
    RA_CK_OK(ra_pg_ready(pg, &ready));
    ck_assert_int_eq(ra_wait(&ready, 1, 1, 5000, &is_ready), 1);
    ck_assert(is_ready);
    ra_release(ready);
    RA_CK_OK(ra_pg_remove(pg));
    wait_cpus_avail(8);   // the raylet hears of it a moment later
    ck_assert_int_eq(state_of(pg), RA_PG_REMOVED);
    RA_CK_ERR(ra_pg_remove(pg), RA_ENOENT);
    RA_CK_ERR(ra_pg_wait(pg, 100), RA_ENOENT);
    // The list holds it, removed.
    ra_pg_info_t *list = NULL;
    size_t n = 0;
    RA_CK_OK(ra_pg_list(&list, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(list[0].pg.id, pg.id);
    ck_assert_int_eq(list[0].state, RA_PG_REMOVED);
    ra_pg_list_free(list, n);
    stop();
}
END_TEST

// The raylet, restarted in place by its supervisor, forgot the bundles it
// held: registering again, it lists none, and the GCS places them again
// (on the new raylet); tasks of the group run, and the group's CPUs are
// taken again.
START_TEST(test_pg_bundles_placed_again_after_a_raylet_restart)
{
    start();
    ra_resources_t b[1] = {res(2, 0)};
    ra_pg_t pg = create(b, 1, RA_PG_PACK, NULL);
    RA_CK_OK(ra_pg_wait(pg, 10000));
    ck_assert_double_eq(cpus_avail(), 6);
    ra_test_kill_wait(ra__g->rt, ra__g->raylet);
    RA_CK_WAIT(state_of(pg) == RA_PG_CREATED && cpus_avail() == 6, 30000);
    char out[64];
    get_str(in_pg(pg, 0, 1, 0, NULL), out, sizeof out);
    RA_CK_OK(ra_pg_remove(pg));
    wait_cpus_avail(8);
    stop();
}
END_TEST

START_TEST(test_pg_bad_requests)
{
    start();
    ra_resources_t b = res(1, 0);
    ra_pg_t pg;
    ra_pg_opts_t o = {0};
    RA_CK_ERR(ra_pg_create(&b, 0, NULL, &pg), RA_EINVAL);
    RA_CK_ERR(ra_pg_create(NULL, 1, NULL, &pg), RA_EINVAL);
    ra_resources_t neg = res(-1, 0), none = res(0, 0), half = res(1, 1.5);
    RA_CK_ERR(ra_pg_create(&neg, 1, NULL, &pg), RA_EINVAL);
    RA_CK_ERR(ra_pg_create(&none, 1, NULL, &pg), RA_EINVAL);
    RA_CK_ERR(ra_pg_create(&half, 1, NULL, &pg), RA_EINVAL);
    o.strategy = (ra_pg_strategy_t)9;
    RA_CK_ERR(ra_pg_create(&b, 1, &o, &pg), RA_EINVAL);
    o = (ra_pg_opts_t){.name = ""};
    RA_CK_ERR(ra_pg_create(&b, 1, &o, &pg), RA_EINVAL);
    RA_CK_ERR(ra_pg_wait((ra_pg_t){12345}, 100), RA_ENOENT);
    RA_CK_ERR(ra_pg_remove((ra_pg_t){12345}), RA_ENOENT);
    ra_pg_info_t info;
    RA_CK_ERR(ra_pg_info((ra_pg_t){12345}, &info), RA_ENOENT);
    // A task may not name a bundle index below -1.
    ra_task_opts_t to = RA_TASK_OPTS_INIT;
    to.bundle_index = -2;
    ra_ref_t r;
    RA_CK_ERR(ra_remote("gate_mark", NULL, 0, &to, &r), RA_EINVAL);
    stop();
}
END_TEST

START_TEST(test_pg_names)
{
    start();
    ra_resources_t b = res(1, 0);
    ra_pg_t pg = create(&b, 1, RA_PG_PACK, "trainers");
    ra_pg_t found, dup;
    RA_CK_OK(ra_pg_get("trainers", NULL, &found));
    ck_assert_uint_eq(found.id, pg.id);
    ra_pg_opts_t o = {.name = "trainers"};
    RA_CK_ERR(ra_pg_create(&b, 1, &o, &dup), RA_EEXIST);
    RA_CK_ERR(ra_pg_get("trainers", "elsewhere", &found), RA_ENOENT);
    ra_pg_info_t info;
    RA_CK_OK(ra_pg_info(pg, &info));
    ck_assert_str_eq(info.name, "trainers");
    ck_assert_str_eq(info.namespace_, "default");
    ra_pg_info_free(&info);
    RA_CK_OK(ra_pg_remove(pg));
    RA_CK_ERR(ra_pg_get("trainers", NULL, &found), RA_ENOENT);
    // The name is free again.
    ra_pg_t again = create(&b, 1, RA_PG_PACK, "trainers");
    RA_CK_OK(ra_pg_wait(again, 10000));
    RA_CK_OK(ra_pg_remove(again));
    stop();
}
END_TEST

START_TEST(test_pg_pending_until_resources_free)
{
    start();
    ra_resources_t big = res(6, 0), mid = res(4, 0), huge = res(100, 0);
    ra_pg_t a = create(&big, 1, RA_PG_PACK, NULL);
    RA_CK_OK(ra_pg_wait(a, 10000));
    ra_pg_t b = create(&mid, 1, RA_PG_PACK, NULL);
    RA_CK_ERR(ra_pg_wait(b, 300), RA_ETIMEOUT);
    ck_assert_int_eq(state_of(b), RA_PG_PENDING);
    // Never placeable on this node: pending too, and says nothing else.
    ra_pg_t c = create(&huge, 1, RA_PG_STRICT_PACK, NULL);
    ra_resources_t two[2] = {res(1, 0), res(1, 0)};
    ra_pg_t d = create(two, 2, RA_PG_STRICT_SPREAD, NULL);
    RA_CK_ERR(ra_pg_wait(c, 100), RA_ETIMEOUT);
    RA_CK_ERR(ra_pg_wait(d, 100), RA_ETIMEOUT);
    // Removing a makes room for b.
    ra_ref_t ready;
    RA_CK_OK(ra_pg_ready(b, &ready));
    RA_CK_OK(ra_pg_remove(a));
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(ready, 10000, &v));
    ra_value_free(&v);
    ra_release(ready);
    ck_assert_int_eq(state_of(b), RA_PG_CREATED);
    ck_assert_double_eq(cpus_avail(), 4);
    // Waiting on a group that is then removed: RA_ECANCELED.
    RA_CK_OK(ra_pg_ready(c, &ready));
    RA_CK_OK(ra_pg_remove(c));
    RA_CK_ERR(ra_get(ready, 10000, &v), RA_ECANCELED);
    ra_value_free(&v);
    ra_release(ready);
    RA_CK_OK(ra_pg_remove(d));
    RA_CK_OK(ra_pg_remove(b));
    stop();
}
END_TEST

// Tasks in a bundle use only its resources: two 1-CPU tasks at a time in
// a 2-CPU bundle, whatever the node has free.
START_TEST(test_pg_tasks_use_only_their_bundle)
{
    start();
    ra_resources_t b[2] = {res(2, 0), res(1, 0)};
    ra_pg_t pg = create(b, 2, RA_PG_PACK, NULL);
    RA_CK_OK(ra_pg_wait(pg, 10000));
    enum { N = 4 };
    ra_ref_t r[N];
    for (int i = 0; i < N; i++) {
        r[i] = in_pg(pg, 0, 1, 0, "go");
    }
    RA_CK_WAIT(marks() == 2, 30000);
    ra_test_sleep_ms(300);
    ck_assert_uint_eq(marks(), 2);
    // The node still has its 5 free CPUs: bundle 0 is what limits.
    ck_assert_double_eq(cpus_avail(), 5);
    touch("go");
    char out[64];
    for (int i = 0; i < N; i++) {
        get_str(r[i], out, sizeof out);
        ck_assert_str_eq(out, "");
    }
    // Too big for any bundle, or no such bundle: refused, not hung.
    ra_value_t *v = NULL;
    ra_ref_t big = in_pg(pg, -1, 3, 0, NULL);
    RA_CK_ERR(ra_get(big, 10000, &v), RA_EINFEASIBLE);
    ck_assert_ptr_nonnull(strstr(ra_value_error(v), "placement group"));
    ra_value_free(&v);
    ra_release(big);
    ra_ref_t nob = in_pg(pg, 7, 1, 0, NULL);
    RA_CK_ERR(ra_get(nob, 10000, &v), RA_EINFEASIBLE);
    ra_value_free(&v);
    ra_release(nob);
    // Any bundle (-1) with room runs it.
    get_str(in_pg(pg, -1, 1, 0, NULL), out, sizeof out);
    // A task of bundle 0 that just ended leaves this process an idle
    // lease of the group's; the removal gives it back at once.
    get_str(in_pg(pg, 0, 1, 0, NULL), out, sizeof out);
    RA_CK_OK(ra_pg_remove(pg));
    // A task for a removed group fails (it does not run on that lease).
    ra_ref_t late = in_pg(pg, 0, 1, 0, NULL);
    RA_CK_ERR(ra_get(late, 10000, &v), RA_EINFEASIBLE);
    ra_value_free(&v);
    ra_release(late);
    stop();
}
END_TEST

// A bundle with GPUs holds the best-linked devices; its tasks see them.
START_TEST(test_pg_gpu_bundles_get_linked_devices)
{
    start();
    ra_resources_t b[2] = {res(1, 2), res(1, 4)};
    ra_pg_t pg = create(b, 2, RA_PG_STRICT_PACK, NULL);
    RA_CK_OK(ra_pg_wait(pg, 10000));
    double ga = -1;
    RA_CK_OK(ra_cluster_resources(NULL, NULL, NULL, &ga));
    ck_assert_double_eq(ga, 2);
    char two[64], four[64];
    get_str(in_pg(pg, 0, 1, 2, NULL), two, sizeof two);
    get_str(in_pg(pg, 1, 1, 4, NULL), four, sizeof four);
    // The same choice ra_topo_pick_gpus makes: the best pair, then the
    // best four of what is left.
    ra_topo_opts_t to = {.synthetic = MACHINE, .gpu_file = invpath};
    ra_topo_t *t = NULL;
    RA_CK_OK(ra_topo_load(&t, &to));
    unsigned idx[8];
    bool avail[8] = {true, true, true, true, true, true, true, true};
    int numa;
    char want[64];
    RA_CK_OK(ra_topo_pick_gpus(t, 4, NULL, idx, &numa));
    ra_topo_visible_devices(idx, 4, want, sizeof want);
    // Bundles are reserved larger first or in order: accept either, but
    // each set must be the best available at its turn.
    bool four_first = strcmp(four, want) == 0;
    if (four_first) {
        for (int i = 0; i < 4; i++) {
            avail[idx[i]] = false;
        }
        RA_CK_OK(ra_topo_pick_gpus(t, 2, avail, idx, &numa));
        ra_topo_visible_devices(idx, 2, want, sizeof want);
        ck_assert_str_eq(two, want);
    } else {
        RA_CK_OK(ra_topo_pick_gpus(t, 2, NULL, idx, &numa));
        ra_topo_visible_devices(idx, 2, want, sizeof want);
        ck_assert_str_eq(two, want);
        avail[idx[0]] = avail[idx[1]] = false;
        RA_CK_OK(ra_topo_pick_gpus(t, 4, avail, idx, &numa));
        ra_topo_visible_devices(idx, 4, want, sizeof want);
        ck_assert_str_eq(four, want);
    }
    ra_topo_destroy(&t);
    // A fraction of the bundle's pair shares one of its devices.
    char half[64];
    get_str(in_pg(pg, 0, 0, 0.5, NULL), half, sizeof half);
    ck_assert_uint_eq(strlen(half), 1);
    ck_assert_ptr_nonnull(strstr(two, half));
    RA_CK_OK(ra_pg_remove(pg));
    stop();
}
END_TEST

// actor_pid creates an actor of class pg_actor with opts o and returns the
// process it runs in.
static int64_t
actor_pid(const ra_actor_opts_t *o, ra_actor_t *a)
{
    ra_ref_t r;
    int64_t pid = 0;
    RA_CK_OK(ra_actor_create("pg_actor", NULL, 0, o, a));
    RA_CK_OK(ra_actor_call(*a, "pid", NULL, 0, &r));
    RA_CK_OK(ra_get_i64(r, 10000, &pid));
    ra_release(r);
    ck_assert_int_gt(pid, 0);
    return pid;
}

// call_fails tells whether a call to a fails, and copies its error text.
static bool
call_fails(ra_actor_t a, char *why, size_t cap)
{
    ra_ref_t r;
    ra_value_t *v = NULL;
    RA_CK_OK(ra_actor_call(a, "pid", NULL, 0, &r));
    int rc = ra_get(r, 10000, &v);
    snprintf(why, cap, "%s", rc != 0 && ra_value_error(v) != NULL
                                 ? ra_value_error(v) : "");
    ra_value_free(&v);
    ra_release(r);
    return rc != 0;
}

// Removing a group ends the actors in it.  A lightweight actor's
// instance ends and its worker process stays, with the other actors it
// hosts; an actor with a process of its own loses the process.
START_TEST(test_pg_remove_kills_its_actors)
{
    start();
    ra_resources_t b[2] = {res(1, 0), res(1, 0)};
    ra_pg_t pg = create(b, 2, RA_PG_PACK, NULL);
    RA_CK_OK(ra_pg_wait(pg, 10000));
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    ra_actor_t outside, in_pg, own;
    int64_t pid_outside = actor_pid(&o, &outside);
    o.num_cpus = 1;
    o.placement_group = pg;
    o.bundle_index = 0;
    int64_t pid_shared = actor_pid(&o, &in_pg);
    o.bundle_index = 1;
    o.isolation = RA_ISOLATION_PROCESS;
    int64_t pid_own = actor_pid(&o, &own);
    ck_assert_int_ne(pid_own, pid_shared);
    ck_assert_int_ne(pid_own, pid_outside);
    RA_CK_OK(ra_pg_remove(pg));
    // The isolated actor's process goes.
    RA_CK_WAIT(kill((pid_t)pid_own, 0) != 0, 10000);
    char why[512];
    ck_assert(call_fails(own, why, sizeof why));
    // The shared one's instance ends, with a reason that names the group,
    // while its process lives on.
    ck_assert(call_fails(in_pg, why, sizeof why));
    ck_assert_msg(strstr(why, "placement group") != NULL, "%s", why);
    ck_assert_int_eq(kill((pid_t)pid_shared, 0), 0);
    // The actor outside the group still answers, from the same process.
    ck_assert(!call_fails(outside, why, sizeof why));
    wait_cpus_avail(8);
    RA_CK_OK(ra_actor_kill(outside));
    stop();
}
END_TEST

// A prepare that fails half-way (tasks hold the CPUs the GCS thought free)
// leaves nothing reserved, and the group is created once they are done.
START_TEST(test_pg_failed_prepare_leaves_nothing)
{
    start();
    enum { BUSY = 5 };
    ra_ref_t r[BUSY];
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    const char *g = path("free");
    for (int i = 0; i < BUSY; i++) {
        ra_arg_t args[2] = {RA_ARG_BYTES(tmpdir, strlen(tmpdir)),
                            RA_ARG_BYTES(g, strlen(g))};
        RA_CK_OK(ra_remote("gate_mark", args, 2, &o, &r[i]));
    }
    wait_cpus_avail(3);
    // The GCS sees 8 CPUs and places both bundles; the raylet can take
    // the first (2 of 3) but not the second: all or nothing.
    ra_resources_t b[2] = {res(2, 0), res(2, 0)};
    ra_pg_t pg = create(b, 2, RA_PG_STRICT_PACK, NULL);
    RA_CK_ERR(ra_pg_wait(pg, 300), RA_ETIMEOUT);
    ck_assert_int_eq(state_of(pg), RA_PG_PENDING);
    for (int i = 0; i < 20; i++) {
        ck_assert_double_eq(cpus_avail(), 3);
        ra_test_sleep_ms(10);
    }
    touch("free");
    char out[64];
    for (int i = 0; i < BUSY; i++) {
        get_str(r[i], out, sizeof out);
    }
    RA_CK_OK(ra_pg_wait(pg, 10000));
    // The busy tasks' owner keeps their finished leases a moment.
    wait_cpus_avail(4);
    RA_CK_OK(ra_pg_remove(pg));
    stop();
}
END_TEST

// The GCS keeps the records of the last 1,000 removed groups, not all.
START_TEST(test_pg_removed_records_are_bounded)
{
    start();
    enum { KEPT = 1000, N = KEPT + 10 };
    ra_resources_t b = res(1, 0);
    ra_pg_t first = {0}, last = {0};
    for (int i = 0; i < N; i++) {
        ra_pg_t pg = create(&b, 1, RA_PG_PACK, NULL);
        RA_CK_OK(ra_pg_remove(pg));
        first = i == 0 ? pg : first;
        last = pg;
    }
    ra_pg_info_t *list = NULL;
    size_t n = 0;
    RA_CK_OK(ra_pg_list(&list, &n));
    ck_assert_uint_eq(n, KEPT);
    ra_pg_list_free(list, n);
    ra_pg_info_t info;
    RA_CK_ERR(ra_pg_info(first, &info), RA_ENOENT);
    RA_CK_OK(ra_pg_info(last, &info));
    ck_assert_int_eq(info.state, RA_PG_REMOVED);
    ra_pg_info_free(&info);
    wait_cpus_avail(8);
    stop();
}
END_TEST

// with_x submits gate_mark needing resources x (NULL: none), in group pg
// (id 0: none).
static ra_ref_t
with_x(const ra_resources_t *x, ra_pg_t pg, const char *gate)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_cpus = 0.5;
    o.resources = x;
    o.placement_group = pg;
    return mark(&o, gate);
}

static bool
done_within(ra_ref_t r, int64_t ms)
{
    bool ready = false;
    ck_assert_int_ge(ra_wait(&r, 1, 1, ms, &ready), 0);
    return ready;
}

// Custom resources (here from RAYO_RESOURCES): tasks and bundles that ask
// for them go only where they are, and hold them while they run.
START_TEST(test_pg_custom_resources)
{
    setenv("RAYO_RESOURCES", "{\"ssd\": 2, \"memory\": 1e9}", 1);
    start();
    unsetenv("RAYO_RESOURCES");
    ra_resources_t ssd = {0}, lots = {0}, tpu = {0}, bad = {.cpus = 1};
    RA_CK_OK(ra_resources_set(&ssd, "ssd", 1));
    RA_CK_OK(ra_resources_set(&lots, "ssd", 3));
    RA_CK_OK(ra_resources_set(&tpu, "tpu", 1));
    ra_ref_t a = with_x(&ssd, (ra_pg_t){0}, "ssd-go");
    ra_ref_t b = with_x(&ssd, (ra_pg_t){0}, "ssd-go");
    RA_CK_WAIT(marks() == 2, 30000);
    // Both SSDs are held: a third waits.
    ra_ref_t c = with_x(&ssd, (ra_pg_t){0}, NULL);
    ck_assert(!done_within(c, 300));
    touch("ssd-go");
    char out[64];
    get_str(a, out, sizeof out);
    get_str(b, out, sizeof out);
    get_str(c, out, sizeof out);
    // More than the node has, or a kind it lacks: refused, not hung.
    ra_value_t *v = NULL;
    ra_ref_t r = with_x(&lots, (ra_pg_t){0}, NULL);
    RA_CK_ERR(ra_get(r, 10000, &v), RA_EINFEASIBLE);
    ra_value_free(&v);
    ra_release(r);
    r = with_x(&tpu, (ra_pg_t){0}, NULL);
    RA_CK_ERR(ra_get(r, 10000, &v), RA_EINFEASIBLE);
    ck_assert_msg(strstr(ra_value_error(v), "1 tpu") != NULL, "%s",
                  ra_value_error(v));
    ra_value_free(&v);
    ra_release(r);
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.resources = &bad;
    RA_CK_ERR(ra_remote("gate_mark", NULL, 0, &o, &r), RA_EINVAL);
    // A bundle reserves both SSDs: outside it a task waits, inside it
    // runs; the group's removal frees them.
    ra_resources_t bundle = {.cpus = 1};
    RA_CK_OK(ra_resources_set(&bundle, "ssd", 2));
    RA_CK_OK(ra_resources_set(&bundle, "memory", 5e8));
    ra_pg_t pg = create(&bundle, 1, RA_PG_PACK, NULL);
    RA_CK_OK(ra_pg_wait(pg, 10000));
    ra_ref_t outside = with_x(&ssd, (ra_pg_t){0}, NULL);
    get_str(with_x(&ssd, pg, NULL), out, sizeof out);
    ck_assert(!done_within(outside, 300));
    // Never placeable: three SSDs in one bundle.
    RA_CK_OK(ra_resources_set(&bundle, "ssd", 3));
    ra_pg_t never = create(&bundle, 1, RA_PG_STRICT_PACK, NULL);
    RA_CK_ERR(ra_pg_wait(never, 200), RA_ETIMEOUT);
    RA_CK_OK(ra_pg_remove(never));
    RA_CK_OK(ra_pg_remove(pg));
    get_str(outside, out, sizeof out);
    stop();
}
END_TEST

START_TEST(test_pg_bad_resources_env)
{
    setenv("RAYO_RESOURCES", "{\"ssd\": -1}", 1);
    ra_init_opts_t o = {.num_cpus = 1};
    RA_CK_ERR(ra_init_opts(&o), RA_EINVAL);
    setenv("RAYO_RESOURCES", "not json", 1);
    RA_CK_ERR(ra_init_opts(&o), RA_EINVAL);
    setenv("RAYO_RESOURCES", "{\"CPU\": 4}", 1);
    RA_CK_ERR(ra_init_opts(&o), RA_EINVAL);
    unsetenv("RAYO_RESOURCES");
    ck_assert(!ra_is_initialized());
}
END_TEST

// Only a raylet may register its node with the GCS: a node registered by
// another process (here the program, claiming a raylet on node 7) is
// refused, and no bundle is ever placed on it.
START_TEST(test_pg_node_put_only_from_its_raylet)
{
    start();
    ra__wbuf_t b = {0};
    ra_msg_t *rep = NULL;
    ra__wb_u8(&b, RA__GCS_NODE_PUT);
    ra__wb_u32(&b, 7);
    ra__wb_pid(&b, (ra_pid_t){.node = 7, .proc = 1, .id = 1, .gen = 1});
    ra__wb_f64(&b, 64);
    ra__wb_f64(&b, 0);
    ra__wb_res(&b, &(ra_resources_t){0});
    RA_CK_OK(ra__gcs_call(NULL, &b, 10000, &rep));
    ra__rbuf_t r;
    ra__rb_init(&r, rep);
    RA_CK_ERR((int)ra__rb_u32(&r), RA_EACCES);
    ra_msg_unref(&rep);
    // With node 7 refused, two bundles cannot be spread over two nodes.
    ra_resources_t two[2] = {res(1, 0), res(1, 0)};
    ra_pg_t pg = create(two, 2, RA_PG_STRICT_SPREAD, NULL);
    RA_CK_ERR(ra_pg_wait(pg, 300), RA_ETIMEOUT);
    RA_CK_OK(ra_pg_remove(pg));
    stop();
}
END_TEST

// fill writes to path until the file system is full; returns the bytes.
static size_t
fill(const char *path)
{
    static char chunk[4096];
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    setvbuf(f, NULL, _IONBF, 0);
    size_t n = 0;
    while (fwrite(chunk, 1, sizeof chunk, f) == sizeof chunk) {
        n += sizeof chunk;
    }
    (void)fclose(f);
    return n;
}

// Group commit answers a change only once it is on disk.  With the GCS's
// disk full, creating groups fails with -ENOSPC (the commit's error),
// the group that failed does not exist, and nothing is held for it; once
// there is room again, groups are created as before and the groups made
// earlier are all still there.  The cluster's session lives on a small
// tmpfs (root only: elsewhere the test says so and does nothing).
START_TEST(test_pg_full_disk_fails_cleanly)
{
    char mnt[PATH_MAX], filler[PATH_MAX + 16], reserve[PATH_MAX + 16];
    char name[32];
    const char *base = getenv("TMPDIR");
    snprintf(mnt, sizeof mnt, "%s/check_pg_full.XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(mnt));
    if (geteuid() != 0 ||
        mount("rayo-check", mnt, "tmpfs", 0, "size=4m,mode=0700") != 0) {
        printf("test_pg_full_disk_fails_cleanly: not run (mounting a "
               "tmpfs needs root)\n");
        rmdir(mnt);
        return;
    }
    ra_init_opts_t o = {.num_cpus = 8, .workers = 1, .max_workers = 4,
                        .temp_dir = mnt};
    RA_CK_OK(ra_init_opts(&o));
    ra_resources_t b = res(0.001, 0);
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "kept-%d", i);
        (void)create(&b, 1, RA_PG_PACK, name);
    }
    // A reserve written before the filler guarantees real room once both
    // go: the filler alone may be a page or two, and a commit after the
    // disk was full may need more than that.
    snprintf(reserve, sizeof reserve, "%s/reserve", mnt);
    FILE *rf = fopen(reserve, "w");
    ck_assert_ptr_nonnull(rf);
    static char zeros[512 * 1024];
    ck_assert_uint_eq(fwrite(zeros, 1, sizeof zeros, rf), sizeof zeros);
    ck_assert_int_eq(fclose(rf), 0);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    ck_assert_uint_gt(fill(filler), 0);
    int rc = 0, made = 5;
    ra_pg_t pg = {0};
    for (int i = 0; i < 20000 && rc == 0; i++) {
        snprintf(name, sizeof name, "full-%d", i);
        ra_pg_opts_t po = {.name = name};
        rc = ra_pg_create(&b, 1, &po, &pg);
        made += rc == 0;
    }
    // LMDB says EIO when its write was cut short rather than refused.
    ck_assert_msg(rc == -ENOSPC || rc == -EIO, "creating groups on a full "
                  "disk gave %s after %d groups", ra_err_name(rc), made);
    // The group that failed is not there, by name or in the list.
    ra_pg_t none;
    RA_CK_ERR(ra_pg_get(name, NULL, &none), RA_ENOENT);
    ra_pg_info_t *list = NULL;
    size_t n = 0;
    RA_CK_OK(ra_pg_list(&list, &n));
    ck_assert_uint_eq(n, (size_t)made);
    ra_pg_list_free(list, n);
    // Room again: a group is made, waited for and removed.
    ck_assert_int_eq(unlink(filler), 0);
    ck_assert_int_eq(unlink(reserve), 0);
    ra_pg_opts_t after = {.strategy = RA_PG_PACK, .name = "after-full"};
    rc = ra_pg_create(&b, 1, &after, &pg);
    struct statvfs sv = {0};
    (void)statvfs(mnt, &sv);
    ck_assert_msg(rc == 0, "creating a group with %llu bytes free again "
                  "gave %s", (unsigned long long)sv.f_bavail * sv.f_frsize,
                  ra_err_name(rc));
    RA_CK_OK(ra_pg_wait(pg, 10000));
    RA_CK_OK(ra_pg_remove(pg));
    RA_CK_OK(ra_pg_get("kept-0", NULL, &pg));
    RA_CK_OK(ra_pg_wait(pg, 10000));
    RA_CK_OK(ra_pg_list(&list, &n));
    ck_assert_uint_eq(n, (size_t)made + 1);
    for (size_t i = 0; i < n; i++) {
        if (list[i].state != RA_PG_REMOVED) {
            RA_CK_OK(ra_pg_remove(list[i].pg));
        }
    }
    ra_pg_list_free(list, n);
    ra_test_cluster_stop();
    ck_assert_int_eq(umount(mnt), 0);
    ck_assert_int_eq(rmdir(mnt), 0);
}
END_TEST

// allowed_in runs cpus_allowed with options o and returns its answer.
static char *
allowed_in(const ra_task_opts_t *o)
{
    ra_ref_t r;
    RA_CK_OK(ra_remote("cpus_allowed", NULL, 0, o, &r));
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(r, 30000, &v));
    size_t len = 0;
    const char *d = ra_value_data(v, &len);
    char *s = strndup(d, len);
    ra_value_free(&v);
    ra_release(r);
    return s;
}

// A GPU bundle's workers run on the cores of its GPUs' NUMA node.  The
// machine is this one described as two NUMA nodes of one CPU each (an
// hwloc XML file, made from a synthetic topology, loaded with
// HWLOC_THISSYSTEM=1 so that binding is real), with GPU 0 on NUMA node 0
// and GPU 1 on node 1.  Work in the second group's bundle runs on CPU 1
// only, work in the first's on CPU 0, and work outside any bundle on
// both, also in a worker that was bound before.
START_TEST(test_pg_gpu_bundle_workers_bound_to_numa)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        printf("test_pg_gpu_bundle_workers_bound_to_numa: not run (one "
               "CPU)\n");
        return;
    }
    char dir[PATH_MAX], xml[PATH_MAX + 16], inv[PATH_MAX + 16];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/check_pg_numa.XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(xml, sizeof xml, "%s/two-numa.xml", dir);
    snprintf(inv, sizeof inv, "%s/gpus.json", dir);
    hwloc_topology_t hw;
    ck_assert_int_eq(hwloc_topology_init(&hw), 0);
    ck_assert_int_eq(hwloc_topology_set_synthetic(hw, "numa:2 pu:1"), 0);
    ck_assert_int_eq(hwloc_topology_load(hw), 0);
    ck_assert_int_eq(hwloc_topology_export_xml(hw, xml, 0), 0);
    hwloc_topology_destroy(hw);
    FILE *f = fopen(inv, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"gpus\": [{\"name\": \"G\", \"numa\": 0},"
          " {\"name\": \"G\", \"numa\": 1}],"
          " \"links\": [[\"X\", \"SYS\"], [\"SYS\", \"X\"]]}", f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(setenv("HWLOC_THISSYSTEM", "1", 1), 0);
    ra_init_opts_t o = {.num_cpus = 2, .workers = 2, .max_workers = 6,
                        .topology_xml = xml, .gpu_file = inv};
    RA_CK_OK(ra_init_opts(&o));
    ra_resources_t b = res(0.5, 1);
    ra_pg_t g0 = create(&b, 1, RA_PG_PACK, NULL);
    RA_CK_OK(ra_pg_wait(g0, 10000));
    ra_pg_t g1 = create(&b, 1, RA_PG_PACK, NULL);
    RA_CK_OK(ra_pg_wait(g1, 10000));
    for (int i = 0; i < 3; i++) {
        ra_task_opts_t to = RA_TASK_OPTS_INIT;
        to.num_cpus = 0.5;
        to.placement_group = g1;
        char *s = allowed_in(&to);
        ck_assert_str_eq(s, "1");
        free(s);
        to.placement_group = g0;
        s = allowed_in(&to);
        ck_assert_str_eq(s, "0");
        free(s);
    }
    RA_CK_OK(ra_pg_remove(g0));
    RA_CK_OK(ra_pg_remove(g1));
    // Unbound: both NUMA nodes' CPUs (and on a larger machine, the others
    // that a worker never bound keeps).
    for (int i = 0; i < 6; i++) {
        ra_task_opts_t to = RA_TASK_OPTS_INIT;
        to.num_cpus = 1;
        char *s = allowed_in(&to);
        ck_assert_msg(strncmp(s, "0,1", 3) == 0 && (s[3] == '\0' ||
                                                   s[3] == ','),
                      "a task outside the groups runs on CPUs %s", s);
        free(s);
    }
    ra_test_cluster_stop();
    unsetenv("HWLOC_THISSYSTEM");
    unlink(xml);
    unlink(inv);
    rmdir(dir);
}
END_TEST

static Suite *
pg_suite(void)
{
    Suite *s = suite_create("pg");
    TCase *tc = tcase_create("embedded");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_pg_create_wait_info_remove);
    tcase_add_test(tc, test_pg_bundles_placed_again_after_a_raylet_restart);
    tcase_add_test(tc, test_pg_bad_requests);
    tcase_add_test(tc, test_pg_names);
    tcase_add_test(tc, test_pg_pending_until_resources_free);
    tcase_add_test(tc, test_pg_tasks_use_only_their_bundle);
    tcase_add_test(tc, test_pg_gpu_bundles_get_linked_devices);
    tcase_add_test(tc, test_pg_remove_kills_its_actors);
    tcase_add_test(tc, test_pg_failed_prepare_leaves_nothing);
    tcase_add_test(tc, test_pg_removed_records_are_bounded);
    tcase_add_test(tc, test_pg_custom_resources);
    tcase_add_test(tc, test_pg_bad_resources_env);
    tcase_add_test(tc, test_pg_node_put_only_from_its_raylet);
    tcase_add_test(tc, test_pg_full_disk_fails_cleanly);
    tcase_add_test(tc, test_pg_gpu_bundle_workers_bound_to_numa);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    // Workers run this program again: they serve and never return.
    ra_worker_main();
    return ra_test_run(pg_suite());
}

// check_gpu_sched.c - GPUs as the embedded cluster hands them out: whole
// devices, fractions of one, the best-linked sets, CUDA_VISIBLE_DEVICES in
// the worker processes, and accounting that returns to full.
//
// The node's GPUs come from an inventory file (the DGX-1 hybrid cube mesh
// of dgx1.h) on a synthetic machine, so these tests run anywhere:
// the workers are real processes, only the devices are described rather
// than probed.  Tasks report what their process sees.
#include <check.h>
#include <limits.h>
#include <rayo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dgx1.h"
#include "testutil.h"

// ---- what the workers run ----

// wait_file waits (at most a minute) until the file named by path exists;
// an empty path does not wait.
static void
wait_file(const char *path, size_t len)
{
    char p[512];
    snprintf(p, sizeof p, "%.*s", (int)len, path);
    for (int i = 0; len > 0 && i < 60000 && access(p, F_OK) != 0; i++) {
        usleep(1000);
    }
}

// gpu_env waits for the gate file in argument 0 (if any) and returns
// "PID VISIBLE": its process and its CUDA_VISIBLE_DEVICES ("-" if unset).
static int
gpu_env(ra_task_t *t)
{
    size_t len = 0;
    const char *gate = ra_task_arg(t, 0, &len);
    wait_file(gate, len);
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    char out[256];
    int n = snprintf(out, sizeof out, "%d %s", (int)getpid(),
                     v != NULL ? v : "-");
    return ra_task_return_bytes(t, out, (size_t)n);
}
RA_REMOTE_REGISTER(gpu_env)

static int
holder_init(ra_task_t *t)
{
    (void)t;
    return 0;
}

static int
holder_env(ra_task_t *t)
{
    return gpu_env(t);
}

static const ra_method_t holder_methods[] = {{"env", holder_env}};
static const ra_actor_class_t holder = {
    .name = "gpu_holder",
    .init = holder_init,
    .methods = holder_methods,
    .nmethods = 1,
};
RA_ACTOR_CLASS_REGISTER(holder)

// ---- fixtures and helpers ----

static char tmpdir[PATH_MAX];
static char invpath[PATH_MAX + 32];

static void
start(void)
{
    dgx1_start(4, tmpdir, sizeof tmpdir, invpath, sizeof invpath);
}

static void
stop(void)
{
    double gt = 0;
    RA_CK_OK(ra_cluster_resources(NULL, NULL, &gt, NULL));
    ck_assert_double_eq(gt, 8);
    ra_test_cluster_stop();
    unlink(invpath);
    rmdir(tmpdir);
}

static const char *
gate_path(const char *name)
{
    static char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static void
open_gate(const char *name)
{
    FILE *f = fopen(gate_path(name), "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
}

// submit runs gpu_env with gpus, behind the gate name (NULL: none).
static ra_ref_t
submit(double gpus, const char *gate)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_cpus = 0.25;
    o.num_gpus = gpus;
    const char *g = gate != NULL ? gate_path(gate) : "";
    ra_ref_t r;
    RA_CK_OK(ra_remote("gpu_env", &RA_ARG_BYTES(g, strlen(g)), 1, &o, &r));
    return r;
}

// result gets "PID VISIBLE" and splits it.
static void
result(ra_ref_t r, int *pid, char *vis, size_t cap)
{
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(r, 60000, &v));
    size_t len = 0;
    const char *d = ra_value_data(v, &len);
    char buf[256];
    snprintf(buf, sizeof buf, "%.*s", (int)len, d);
    char *sp = strchr(buf, ' ');
    ck_assert_ptr_nonnull(sp);
    *sp = '\0';
    *pid = atoi(buf);
    snprintf(vis, cap, "%s", sp + 1);
    ra_value_free(&v);
    ra_release(r);
}

static void
wait_gpus_avail(double want)
{
    double ga = -1;
    RA_CK_WAIT(ra_cluster_resources(NULL, NULL, NULL, &ga) == 0 &&
                   ga == want, 60000);
}

// best_set is what ra_topo_pick_gpus chooses for want GPUs, all free.
static void
best_set(unsigned want, char *buf, size_t cap)
{
    ra_topo_opts_t o = {.synthetic = MACHINE, .gpu_file = invpath};
    ra_topo_t *t = NULL;
    RA_CK_OK(ra_topo_load(&t, &o));
    unsigned idx[8];
    int numa;
    RA_CK_OK(ra_topo_pick_gpus(t, want, NULL, idx, &numa));
    ra_topo_visible_devices(idx, want, buf, cap);
    ra_topo_destroy(&t);
}

// ---- tests ----

START_TEST(test_gpu_inventory_sets_what_tasks_see)
{
    start();
    double gt = 0;
    RA_CK_OK(ra_cluster_resources(NULL, NULL, &gt, NULL));
    ck_assert_double_eq(gt, 8);
    int pid;
    char vis[128], want[64];
    // Without GPUs a task sees none.
    result(submit(0, NULL), &pid, vis, sizeof vis);
    ck_assert_str_eq(vis, "");
    // With all eight free, a set gets the best-linked GPUs.
    for (unsigned n = 1; n <= 8; n *= 2) {
        // An owner keeps a finished lease a few milliseconds for more work.
        wait_gpus_avail(8);
        best_set(n, want, sizeof want);
        result(submit(n, NULL), &pid, vis, sizeof vis);
        ck_assert_msg(strcmp(vis, want) == 0, "%u GPUs: got \"%s\", the "
                      "best set is \"%s\"", n, vis, want);
    }
    // Fractions above one must be whole; more than the node has cannot run.
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_ref_t r;
    o.num_gpus = 1.5;
    RA_CK_ERR(ra_remote("gpu_env", &RA_ARG_BYTES("", 0), 1, &o, &r),
              RA_EINVAL);
    o.num_gpus = 9;
    RA_CK_ERR(ra_remote("gpu_env", &RA_ARG_BYTES("", 0), 1, &o, &r),
              RA_EINFEASIBLE);
    stop();
}
END_TEST

START_TEST(test_gpu_whole_devices_are_exclusive)
{
    start();
    enum { N = 8 };
    ra_ref_t r[N];
    for (int i = 0; i < N; i++) {
        r[i] = submit(1, "g1");
    }
    wait_gpus_avail(0);
    // A ninth waits for a device.
    ra_ref_t late = submit(1, NULL);
    bool ready = true;
    ck_assert_int_eq(ra_wait(&late, 1, 1, 300, &ready), 0);
    ck_assert(!ready);
    open_gate("g1");
    unsigned seen = 0;
    for (int i = 0; i < N; i++) {
        int pid;
        char vis[128];
        result(r[i], &pid, vis, sizeof vis);
        char *end = NULL;
        long d = strtol(vis, &end, 10);
        ck_assert_msg(end != vis && *end == '\0' && d >= 0 && d < 8,
                      "task %d sees \"%s\"", i, vis);
        ck_assert_msg((seen & (1u << d)) == 0, "GPU %ld given twice", d);
        seen |= 1u << d;
    }
    ck_assert_uint_eq(seen, 0xffu);
    int pid;
    char vis[128];
    result(late, &pid, vis, sizeof vis);
    ck_assert_uint_eq(strlen(vis), 1);
    stop();
}
END_TEST

START_TEST(test_gpu_fractions_share_a_device)
{
    start();
    enum { N = 4 };
    ra_ref_t r[N];
    for (int i = 0; i < N; i++) {
        r[i] = submit(0.5, "half");
    }
    // Four halves fill two devices (best fit), not four.
    wait_gpus_avail(6);
    ra_ref_t whole = submit(6, NULL);
    open_gate("half");
    int count[8] = {0};
    for (int i = 0; i < N; i++) {
        int pid;
        char vis[128];
        result(r[i], &pid, vis, sizeof vis);
        int d = atoi(vis);
        ck_assert_msg(strlen(vis) == 1 && d >= 0 && d < 8, "\"%s\"", vis);
        count[d]++;
    }
    int used = 0;
    for (int d = 0; d < 8; d++) {
        ck_assert_int_le(count[d], 2);
        used += count[d] > 0;
    }
    ck_assert_int_eq(used, 2);
    int pid;
    char vis[128];
    result(whole, &pid, vis, sizeof vis);
    ck_assert_uint_eq(strlen(vis), 11);   // "a,b,c,d,e,f"
    stop();
}
END_TEST

START_TEST(test_gpu_actor_holds_its_devices)
{
    start();
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    o.num_gpus = 2;
    o.num_cpus = 0;
    ra_actor_t a, b;
    RA_CK_OK(ra_actor_create("gpu_holder", NULL, 0, &o, &a));
    RA_CK_OK(ra_actor_create("gpu_holder", NULL, 0, &o, &b));
    wait_gpus_avail(4);
    ra_ref_t ra_, rb;
    RA_CK_OK(ra_actor_call(a, "env", &RA_ARG_BYTES("", 0), 1, &ra_));
    RA_CK_OK(ra_actor_call(b, "env", &RA_ARG_BYTES("", 0), 1, &rb));
    int pa, pb;
    char va[128], vb[128], want[64];
    result(ra_, &pa, va, sizeof va);
    result(rb, &pb, vb, sizeof vb);
    best_set(2, want, sizeof want);
    // The first gets the best pair; each has a process of its own and two
    // devices the other does not have.
    ck_assert_msg(strcmp(va, want) == 0 || strcmp(vb, want) == 0,
                  "\"%s\" and \"%s\", best pair \"%s\"", va, vb, want);
    ck_assert_int_ne(pa, pb);
    ck_assert_uint_eq(strlen(va), 3);
    ck_assert_uint_eq(strlen(vb), 3);
    ck_assert(strchr(vb, va[0]) == NULL && strchr(vb, va[2]) == NULL);
    RA_CK_OK(ra_actor_kill(a));
    RA_CK_OK(ra_actor_kill(b));
    wait_gpus_avail(8);
    stop();
}
END_TEST

// Rounds of mixed requests: a worker process never sees two different
// device sets (CUDA fixes its devices when it starts in a process).
START_TEST(test_gpu_worker_keeps_its_devices)
{
    start();
    enum { ROUNDS = 4, N = 6 };
    const double mix[2][N] = {{2, 1, 1, 0.5, 0.5, 0},
                              {1, 2, 0.5, 2, 0, 1}};
    struct {
        int pid;
        char vis[128];
    } seen[ROUNDS * N];
    size_t nseen = 0;
    for (int round = 0; round < ROUNDS; round++) {
        char gate[32];
        snprintf(gate, sizeof gate, "round-%d", round);
        ra_ref_t r[N];
        double sum = 0;
        for (int i = 0; i < N; i++) {
            double g = mix[round % 2][i];
            r[i] = submit(g, gate);
            sum += g;
        }
        (void)sum;
        open_gate(gate);
        for (int i = 0; i < N; i++) {
            int pid;
            char vis[128];
            result(r[i], &pid, vis, sizeof vis);
            if (mix[round % 2][i] == 0) {
                ck_assert_str_eq(vis, "");
                continue;
            }
            for (size_t k = 0; k < nseen; k++) {
                ck_assert_msg(seen[k].pid != pid ||
                                  strcmp(seen[k].vis, vis) == 0,
                              "worker %d saw GPUs \"%s\", then \"%s\"", pid,
                              seen[k].vis, vis);
            }
            seen[nseen].pid = pid;
            snprintf(seen[nseen].vis, sizeof seen[nseen].vis, "%s", vis);
            nseen++;
        }
    }
    stop();
}
END_TEST

static Suite *
gpu_suite(void)
{
    Suite *s = suite_create("gpu_sched");
    TCase *tc = tcase_create("inventory");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_gpu_inventory_sets_what_tasks_see);
    tcase_add_test(tc, test_gpu_whole_devices_are_exclusive);
    tcase_add_test(tc, test_gpu_fractions_share_a_device);
    tcase_add_test(tc, test_gpu_actor_holds_its_devices);
    tcase_add_test(tc, test_gpu_worker_keeps_its_devices);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    // Workers run this program again: they serve and never return.
    ra_worker_main();
    return ra_test_run(gpu_suite());
}

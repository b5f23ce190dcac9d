// check_cuda_task.c - a CUDA kernel in a task: a vector add in a worker
// process that asked for one GPU, on the node's real GPUs (found through
// the CUDA driver at run time).  Without a GPU or a driver the cluster has
// zero GPUs and this test is skipped (exit status 77), saying so.
//
// What it checks: the task sees exactly one device (CUDA_VISIBLE_DEVICES
// names one), the device it ran on is the one the topology lists under
// that index (by PCI bus id), the sums are right, two tasks at once on a
// one-GPU node run one after the other, and the GPU is returned.
#include <check.h>
#include <ctype.h>
#include <rayo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cuda_vadd.h"
#include "testutil.h"

enum { N_ELEMS = 1 << 20 };

// vadd_task runs the kernel and returns a BSON document of what it saw.
static int
vadd_task(ra_task_t *t)
{
    vadd_result_t res;
    char err[512] = "";
    int rc = vadd_run(N_ELEMS, &res, err, sizeof err);
    if (rc != 0) {
        return ra_task_fail(t, "vadd_run: %d: %s", rc, err);
    }
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    bson_t out = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&out, "visible", v != NULL ? v : "-");
    BSON_APPEND_INT32(&out, "device_count", res.device_count);
    BSON_APPEND_UTF8(&out, "device", res.device_name);
    BSON_APPEND_UTF8(&out, "pci", res.pci_bus_id);
    BSON_APPEND_INT32(&out, "n", (int32_t)res.n);
    BSON_APPEND_INT32(&out, "mismatches", (int32_t)res.mismatches);
    BSON_APPEND_DOUBLE(&out, "kernel_ms", res.kernel_ms);
    BSON_APPEND_INT32(&out, "pid", (int32_t)getpid());
    rc = ra_task_return_bson(t, &out);
    bson_destroy(&out);
    return rc;
}
RA_REMOTE_REGISTER(vadd_task)

static double gpus_total;

static const char *
str_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)) {
        return bson_iter_utf8(&it, NULL);
    }
    return "";
}

static int32_t
int_of(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_INT32(&it)) {
        return bson_iter_int32(&it);
    }
    return -1;
}

// same_bus compares PCI bus ids as the driver and the topology write them
// ("00000000:18:00.0" and "0000:18:00.0").
static bool
same_bus(const char *a, const char *b)
{
    const char *ca = strchr(a, ':'), *cb = strchr(b, ':');
    return ca != NULL && cb != NULL && strcasecmp(ca, cb) == 0;
}

START_TEST(test_cuda_vector_add_in_a_task)
{
    ra_topo_t *topo = NULL;
    RA_CK_OK(ra_topo_load(&topo, NULL));
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_gpus = 1;
    enum { TASKS = 2 };
    ra_ref_t r[TASKS];
    for (int i = 0; i < TASKS; i++) {
        RA_CK_OK(ra_remote("vadd_task", NULL, 0, &o, &r[i]));
    }
    for (int i = 0; i < TASKS; i++) {
        ra_value_t *v = NULL;
        int rc = ra_get(r[i], 120000, &v);
        ck_assert_msg(rc == 0, "task %d: %s: %s", i, ra_err_name(rc),
                      v != NULL ? ra_value_error(v) : "");
        bson_t doc;
        RA_CK_OK(ra_value_bson(v, &doc));
        char *json = bson_as_relaxed_extended_json(&doc, NULL);
        printf("vadd task %d: %s\n", i, json);
        bson_free(json);
        const char *vis = str_of(&doc, "visible");
        ck_assert_msg(strlen(vis) > 0 && strchr(vis, ',') == NULL,
                      "CUDA_VISIBLE_DEVICES=\"%s\": want one device", vis);
        ck_assert_int_eq(int_of(&doc, "device_count"), 1);
        ck_assert_int_eq(int_of(&doc, "n"), N_ELEMS);
        ck_assert_int_eq(int_of(&doc, "mismatches"), 0);
        if (isdigit((unsigned char)vis[0])) {
            ra_gpu_info_t g;
            RA_CK_OK(ra_topo_gpu(topo, (unsigned)atoi(vis), &g));
            ck_assert_msg(same_bus(g.pci_bus_id, str_of(&doc, "pci")),
                          "GPU %s is %s in the topology, the task ran on %s",
                          vis, g.pci_bus_id, str_of(&doc, "pci"));
        }
        bson_destroy(&doc);
        ra_value_free(&v);
        ra_release(r[i]);
    }
    double ga = -1;
    RA_CK_WAIT(ra_cluster_resources(NULL, NULL, NULL, &ga) == 0 &&
                   ga == gpus_total, 10000);
    ra_topo_destroy(&topo);
}
END_TEST

// The same kernel in a placement-group bundle that holds one GPU.
START_TEST(test_cuda_vector_add_in_a_gpu_bundle)
{
    ra_resources_t b = {.cpus = 1, .gpus = 1};
    ra_pg_t pg;
    RA_CK_OK(ra_pg_create(&b, 1, NULL, &pg));
    RA_CK_OK(ra_pg_wait(pg, 30000));
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_gpus = 1;
    o.placement_group = pg;
    o.bundle_index = 0;
    ra_ref_t r;
    RA_CK_OK(ra_remote("vadd_task", NULL, 0, &o, &r));
    ra_value_t *v = NULL;
    int rc = ra_get(r, 120000, &v);
    ck_assert_msg(rc == 0, "%s: %s", ra_err_name(rc),
                  v != NULL ? ra_value_error(v) : "");
    bson_t doc;
    RA_CK_OK(ra_value_bson(v, &doc));
    char *json = bson_as_relaxed_extended_json(&doc, NULL);
    printf("vadd task in a GPU bundle: %s\n", json);
    bson_free(json);
    ck_assert_int_eq(int_of(&doc, "device_count"), 1);
    ck_assert_int_eq(int_of(&doc, "mismatches"), 0);
    bson_destroy(&doc);
    ra_value_free(&v);
    ra_release(r);
    RA_CK_OK(ra_pg_remove(pg));
    double ga = -1;
    RA_CK_WAIT(ra_cluster_resources(NULL, NULL, NULL, &ga) == 0 &&
                   ga == gpus_total, 10000);
}
END_TEST

int
main(void)
{
    // Workers run this program again: they serve and never return.
    ra_worker_main();
    ra_init_opts_t o = {.workers = 1};
    int rc = ra_init_opts(&o);
    if (rc != 0) {
        fprintf(stderr, "ra_init: %s\n", ra_strerror(rc));
        return 1;
    }
    (void)ra_cluster_resources(NULL, NULL, &gpus_total, NULL);
    if (gpus_total == 0) {
        printf("SKIP: no GPU on this machine (or no CUDA driver): the "
               "CUDA task test needs one\n");
#ifdef __SANITIZE_ADDRESS__
        // `make check` sets it (Makefile.am); by hand it is easy to miss.
        const char *ao = getenv("ASAN_OPTIONS");
        if (ao == NULL || strstr(ao, "protect_shadow_gap=0") == NULL) {
            printf("(under AddressSanitizer the CUDA driver needs "
                   "ASAN_OPTIONS=protect_shadow_gap=0)\n");
        }
#endif
        ra_shutdown();
        return 77;
    }
    printf("%g GPU(s) found\n", gpus_total);
    Suite *s = suite_create("cuda_task");
    TCase *tc = tcase_create("cuda");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_cuda_vector_add_in_a_task);
    tcase_add_test(tc, test_cuda_vector_add_in_a_gpu_bundle);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    // The cluster lives in this process: run the test here, not in a fork.
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    ra_shutdown();
    return failed == 0 ? 0 : 1;
}

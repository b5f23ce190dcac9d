// bigarray.c - pass a large array between tasks by reference.
//
// One task makes an array of a million doubles (8 MiB); its result goes
// into the node's shared-memory object store, and the driver gets back
// only a reference.  Two more tasks take that reference as an argument
// (the array is never copied through the driver), and the driver maps the
// array read-only with ra_get to check it.
//
// Build it against an installed rayo with
//     cc bigarray.c $(pkg-config --cflags --libs rayo) -o bigarray
// It exits 0 only when every answer is right, so it is a test too.
#include <rayo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 1000000

// make_array returns N doubles: element i is i * argument 0.
static int
make_array(ra_task_t *t)
{
    double scale = ra_task_arg_f64(t, 0);
    double *a = malloc(N * sizeof *a);
    if (a == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    for (int i = 0; i < N; i++) {
        a[i] = i * scale;
    }
    int rc = ra_task_return_bytes(t, a, N * sizeof *a);
    free(a);
    return rc;
}
RA_REMOTE_REGISTER(make_array)

// sum_range returns the sum of elements [argument 1, argument 2) of the
// array given as argument 0.
static int
sum_range(ra_task_t *t)
{
    size_t len;
    const double *a = ra_task_arg(t, 0, &len);
    int64_t from = ra_task_arg_i64(t, 1), to = ra_task_arg_i64(t, 2);
    if (len != N * sizeof *a || from < 0 || to > N || from > to) {
        return ra_task_fail(t, "bad array or range");
    }
    double s = 0;
    for (int64_t i = from; i < to; i++) {
        double x;
        memcpy(&x, (const char *)a + i * sizeof x, sizeof x);
        s += x;
    }
    return ra_task_return_f64(t, s);
}
RA_REMOTE_REGISTER(sum_range)

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "bigarray: %s: %s\n", what, ra_strerror(rc));
    ra_shutdown();
    return 1;
}

int
main(void)
{
    int rc = ra_init(NULL);
    if (rc != 0) {
        return fail("ra_init", rc);
    }
    ra_ref_t arr, halves[2];
    if ((rc = ra_remote("make_array", &RA_ARG_F64(0.5), 1, NULL, &arr)) !=
        0) {
        return fail("make_array", rc);
    }
    // The halves start as soon as the array exists; the driver only ever
    // holds the reference.
    for (int h = 0; h < 2; h++) {
        ra_arg_t args[3] = {RA_ARG_REF(arr), RA_ARG_I64(h * (N / 2)),
                            RA_ARG_I64((h + 1) * (N / 2))};
        if ((rc = ra_remote("sum_range", args, 3, NULL, &halves[h])) != 0) {
            return fail("sum_range", rc);
        }
    }
    double total = 0;
    for (int h = 0; h < 2; h++) {
        ra_value_t *v = NULL;
        if ((rc = ra_get(halves[h], 60000, &v)) != 0) {
            fprintf(stderr, "bigarray: %s\n", ra_value_error(v));
            ra_value_free(&v);
            return fail("get sum", rc);
        }
        total += ra_value_f64(v);
        ra_value_free(&v);
        ra_release(halves[h]);
    }
    // The driver maps the array itself: a view into shared memory.
    ra_value_t *v = NULL;
    if ((rc = ra_get(arr, 60000, &v)) != 0) {
        return fail("get array", rc);
    }
    size_t len;
    const double *a = ra_value_data(v, &len);
    double check = 0;
    for (int i = 0; i < N && len == N * sizeof *a; i++) {
        check += a[i];
    }
    ra_value_free(&v);
    ra_release(arr);
    double want = 0.5 * ((double)N * (N - 1) / 2);
    printf("bigarray: %d doubles (%zu bytes) passed by reference; sum of "
           "halves %.1f, mapped sum %.1f, expected %.1f\n",
           N, len, total, check, want);
    ra_shutdown();
    if (len != N * sizeof *a || total != want || check != want) {
        fprintf(stderr, "bigarray: wrong result\n");
        return 1;
    }
    return 0;
}

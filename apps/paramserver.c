// paramserver.c - a parameter server: an actor holds the model's weights,
// tasks compute gradients against them, and nobody copies the weights
// through the driver.
//
// Each step the driver asks the ParamServer actor for its weights.  The
// actor puts them into the object store and returns the reference itself
// (ra_task_return_ref), not the 800 KB value; the driver lends that
// reference to K gradient tasks (RA_ARG_BORROW), each of which reads the
// weights where they lie (ra_get of a borrowed reference maps them) and
// returns the gradient of its shard.  The driver passes each gradient to
// the actor by reference (RA_ARG_REF), and the actor applies it.
//
// The model: D weights, loss sum_i (w_i - target_i)^2 / 2 with target_i =
// i mod 7, so a step with learning rate LR leaves w_i = target_i (1 -
// (1 - LR)^steps) exactly; the program checks every weight against that.
//
// Build it against an installed rayo with
//     cc paramserver.c $(pkg-config --cflags --libs rayo) -lm -o paramserver
// It exits 0 only when every weight is right and the store is empty at the
// end, so it is a test too.
#include <math.h>
#include <rayo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define D 100000     // weights (800 KB: they go through the object store)
#define K 4          // gradient tasks (shards) per step
#define STEPS 8
#define LR 0.5

static double
target(size_t i)
{
    return (double)(i % 7);
}

// ---- the parameter server ----

typedef struct server {
    double w[D];
    int64_t applied;
} server_t;

static int
server_init(ra_task_t *t)
{
    server_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    ra_task_set_state(t, s);
    return 0;
}

static void
server_fini(void *state)
{
    free(state);
}

// weights() returns a reference to a snapshot of the weights.
static int
server_weights(ra_task_t *t)
{
    server_t *s = ra_task_state(t);
    ra_ref_t r;
    int rc = ra_put(&RA_ARG_BYTES(s->w, sizeof s->w), &r);
    if (rc != 0) {
        return ra_task_fail(t, "ra_put: %s", ra_strerror(rc));
    }
    rc = ra_task_return_ref(t, r);
    ra_release(r);   // the caller's borrow keeps the snapshot
    return rc;
}

// apply(gradient of shard k, k) takes a step on that shard; it returns how
// many gradients it has applied.
static int
server_apply(ra_task_t *t)
{
    server_t *s = ra_task_state(t);
    size_t len;
    const double *g = ra_task_arg(t, 0, &len);
    int64_t k = ra_task_arg_i64(t, 1);
    size_t lo = (size_t)k * (D / K), n = D / K;
    if (k < 0 || k >= K || len != n * sizeof *g) {
        return ra_task_fail(t, "bad gradient for shard %lld",
                            (long long)k);
    }
    for (size_t i = 0; i < n; i++) {
        s->w[lo + i] -= LR * g[i];
    }
    return ra_task_return_i64(t, ++s->applied);
}

static const ra_method_t server_methods[] = {
    {"weights", server_weights},
    {"apply", server_apply},
};

static const ra_actor_class_t ParamServer = {
    .name = "ParamServer",
    .init = server_init,
    .fini = server_fini,
    .methods = server_methods,
    .nmethods = 2,
};
RA_ACTOR_CLASS_REGISTER(ParamServer)

// ---- the gradient task ----

// gradient(weights lent, k) returns d loss / d w over shard k.
static int
gradient(ra_task_t *t)
{
    ra_ref_t wref;
    ra_value_t *v = NULL;
    int rc = ra_task_arg_ref(t, 0, &wref);
    if (rc == 0) {
        rc = ra_get(wref, 60000, &v);
    }
    size_t len = 0;
    const double *w = rc == 0 ? ra_value_data(v, &len) : NULL;
    int64_t k = ra_task_arg_i64(t, 1);
    if (rc != 0 || len != D * sizeof *w || k < 0 || k >= K) {
        ra_value_free(&v);
        return ra_task_fail(t, "no weights to read: %s", ra_strerror(rc));
    }
    size_t lo = (size_t)k * (D / K), n = D / K;
    double *g = malloc(n * sizeof *g);
    if (g == NULL) {
        ra_value_free(&v);
        return ra_task_fail(t, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        g[i] = w[lo + i] - target(lo + i);
    }
    ra_value_free(&v);
    rc = ra_task_return_bytes(t, g, n * sizeof *g);
    free(g);
    return rc;
}
RA_REMOTE_REGISTER(gradient)

static int
fail(const char *what, int rc, ra_value_t *v)
{
    fprintf(stderr, "paramserver: %s: %s%s%s\n", what, ra_strerror(rc),
            v != NULL ? ": " : "", v != NULL ? ra_value_error(v) : "");
    ra_value_free(&v);
    ra_shutdown();
    return 1;
}

// weights_ref asks the server for its weights: *res is the call's result
// (release it when done with the weights), *w the reference in it.
static int
weights_ref(ra_actor_t ps, ra_ref_t *res, ra_ref_t *w)
{
    ra_value_t *v = NULL;
    int rc = ra_actor_call(ps, "weights", NULL, 0, res);
    if (rc == 0 && (rc = ra_get(*res, 60000, &v)) == 0) {
        rc = ra_value_ref(v, w);
    }
    ra_value_free(&v);
    return rc;
}

int
main(void)
{
    int rc = ra_init(NULL);
    if (rc != 0) {
        return fail("ra_init", rc, NULL);
    }
    ra_actor_t ps;
    if ((rc = ra_actor_create("ParamServer", NULL, 0, NULL, &ps)) != 0) {
        return fail("creating the server", rc, NULL);
    }
    int64_t applied = 0;
    for (int step = 0; step < STEPS; step++) {
        ra_ref_t res, w, grads[K], done[K];
        if ((rc = weights_ref(ps, &res, &w)) != 0) {
            return fail("weights", rc, NULL);
        }
        for (int k = 0; k < K; k++) {
            ra_arg_t a[2] = {RA_ARG_BORROW(w), RA_ARG_I64(k)};
            if ((rc = ra_remote("gradient", a, 2, NULL, &grads[k])) != 0) {
                return fail("gradient", rc, NULL);
            }
        }
        for (int k = 0; k < K; k++) {
            ra_arg_t a[2] = {RA_ARG_REF(grads[k]), RA_ARG_I64(k)};
            if ((rc = ra_actor_call(ps, "apply", a, 2, &done[k])) != 0) {
                return fail("apply", rc, NULL);
            }
        }
        for (int k = 0; k < K; k++) {
            ra_value_t *v = NULL;
            if ((rc = ra_get(done[k], 60000, &v)) != 0) {
                return fail("a step", rc, v);
            }
            applied = ra_value_i64(v);
            ra_value_free(&v);
            ra_release(done[k]);
            ra_release(grads[k]);
        }
        ra_release(res);   // this step's snapshot goes
    }
    // Every weight, read where it lies.
    ra_ref_t res, w;
    ra_value_t *v = NULL;
    if ((rc = weights_ref(ps, &res, &w)) != 0 ||
        (rc = ra_get(w, 60000, &v)) != 0) {
        return fail("final weights", rc, v);
    }
    size_t len = 0;
    const double *fw = ra_value_data(v, &len);
    double keep = pow(1 - LR, STEPS), worst = 0;
    for (size_t i = 0; i < D && len == D * sizeof *fw; i++) {
        double err = fabs(fw[i] - target(i) * (1 - keep));
        worst = err > worst ? err : worst;
    }
    ra_value_free(&v);
    ra_release(res);
    // The last snapshot goes once the server hears that the driver let it
    // go (a message away): give it up to 10 s.
    ra_store_usage_t u = {0};
    for (int i = 0; i < 1000; i++) {
        if (ra_store_usage(&u) == 0 && u.objects == 0) {
            break;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    printf("paramserver: %d steps of %d gradient tasks over %d weights "
           "(%zu bytes, lent by reference); %lld gradients applied; "
           "largest error %.3g; %llu objects left in the store\n",
           STEPS, K, D, len, (long long)applied, worst,
           (unsigned long long)u.objects);
    ra_shutdown();
    if (len != D * sizeof *fw || applied != (int64_t)STEPS * K ||
        worst > 1e-9 || u.objects != 0) {
        fprintf(stderr, "paramserver: wrong result\n");
        return 1;
    }
    return 0;
}

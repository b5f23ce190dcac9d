// multinode_driver.c - a driver for tests/net/cluster_netns.sh: it joins
// the cluster named by RAYO_ADDRESS and reports, on stdout, where its
// work ran, so that the script can check spilling and placement across
// nodes.  Each task answers the node number its worker runs on.
//
//   multinode_driver spread N MS    N tasks of MS ms each: "node ID COUNT"
//                                   lines, then "distinct K"
//   multinode_driver resource NAME  one task needing 1 NAME: "node ID"
//   multinode_driver serve NAME RES SECONDS [detached]
//                                   a Counter actor named NAME on the node
//                                   with RES (holding 0.5 of it), kept
//                                   SECONDS (detached: it outlives this
//                                   driver): "serving PID"
//   multinode_driver kill NAME      looks NAME up and kills it: "killed"
//   multinode_driver call NAME      looks NAME up (from any node) and calls
//                                   it: "node N count 1 2"
//   multinode_driver keep N DETACHED NAME [STRATEGY [CPUS]]
//                                   a group of N bundles of CPUS CPUs
//                                   (default 1) named NAME (detached if
//                                   DETACHED is 1), PACK by default:
//                                   "created by PID", then waits to be
//                                   killed
//   multinode_driver busy RES N MS [CPUS]
//                                   N tasks of MS ms, each CPUS CPUs
//                                   (default 1) and 1/N RES (fills N CPUs
//                                   of the node with RES)
//   multinode_driver say TEXT [RES] a task (needing 1 RES) printing TEXT on
//                                   its stdout and stderr: the driver
//                                   shows both lines, prefixed
//   multinode_driver pg STRATEGY N WAIT_MS
//                                   a group of N one-CPU bundles: "created
//                                   NODE..." (one per bundle) or "pending",
//                                   then a task in each bundle: "ran NODE..."
//   multinode_driver watch STRATEGY N SECONDS
//                                   a group of N one-CPU bundles, then its
//                                   state and bundle nodes every time they
//                                   change ("STATE NODE..."), for SECONDS;
//                                   once created, a Counter in each bundle,
//                                   and at the end, for each bundle, "kept
//                                   I NODE same-actor|new-actor|no-actor"
//                                   or "moved I FROM TO"
//   multinode_driver fetch RES BYTES N
//                                   N tasks on the node with RES (each
//                                   asking 1/N of it) each make BYTES bytes
//                                   of its own pattern; the driver gets
//                                   every one, checks each byte and that
//                                   it reads them in this node's store
//                                   (a /dev/shm mapping): "fetched N x
//                                   BYTES from node ID zero-copy MS ms,
//                                   left here K there K2" (objects left in
//                                   the stores of this node and of the
//                                   node with RES); with "quick" after N,
//                                   "fetched N x BYTES zero-copy MS ms,
//                                   left here K" (no more tasks there)
//   multinode_driver send RES BYTES N [each]
//                                   ra_put of BYTES bytes of a pattern,
//                                   then N tasks on the node with RES that
//                                   take it by reference and check every
//                                   byte: "sent N x BYTES to node ID
//                                   zero-copy|copied, left there K"; with
//                                   "each", every task needs a whole RES
//                                   (so they spread over the nodes with
//                                   it) and the line is "sent N x BYTES
//                                   zero-copy|copied, served B" (bytes
//                                   this node's object manager sent)
//   multinode_driver lend RES BYTES
//                                   ra_put of BYTES bytes of a pattern,
//                                   lent (RA_ARG_BORROW) to a task on the
//                                   node with RES, which reads it (its
//                                   node pulls it from ours), again 300 ms
//                                   later, and passes it on by value to a task of its own:
//                                   "lent BYTES to node ID: read
//                                   zero-copy|copied, passed on
//                                   zero-copy|copied, left there K"
//   multinode_driver lenddie RES BYTES
//                                   ra_put of BYTES bytes lent to a task on
//                                   the node with RES that reads it and
//                                   kills its worker: "lent BYTES to a
//                                   task that died: ERR, left there K
//                                   after under 10 s|10 s"
//   multinode_driver leave BYTES [die]
//                                   ra_put of BYTES bytes, never released:
//                                   "put BYTES, objects here K" (objects
//                                   in this node's store); then it ends
//                                   (with die: SIGKILL)
//   multinode_driver here [MS]      "objects here K", after waiting up to
//                                   MS ms for none
//   multinode_driver lendmany RES N
//                                   N small ra_put objects, each lent to a
//                                   task on the node with RES (256 in
//                                   flight) that reads it from this
//                                   process and answers twice its number;
//                                   each is released right after its
//                                   submission: "lent N objects to node
//                                   ID, heap grew K bytes"
//   multinode_driver near RES BYTES
//                                   a task on the node with RES puts
//                                   BYTES bytes of a pattern and returns
//                                   the reference (ra_task_return_ref);
//                                   the driver gives it by value to a task
//                                   that asks for no resource: "near: read
//                                   on node ID zero-copy|copied, pulled
//                                   here K" (K: copies this node's object
//                                   manager made meanwhile)
//   multinode_driver owners RES BYTES
//                                   two tasks at once on the node with RES
//                                   (half of it and half a CPU each) put
//                                   BYTES bytes of a pattern each, 300 ms
//                                   in, and return the references; a task
//                                   that asks for no resource reads both,
//                                   so that one worker reads an object of
//                                   another worker of its node: "owners: 2
//                                   processes of node ID, read on node ID
//                                   zero-copy|copied, pulled here K"
//   multinode_driver killsys raylet|gcs|objmgr
//                                   ends that system actor of the node
//                                   daemon it joined with an exit signal
//                                   (RA_KILL), as a fault tool would:
//                                   "killed the daemon's WHAT", then
//                                   (all three are restarted in place)
//                                   "the GCS|raylet|object manager
//                                   answered again after MS ms" (for the
//                                   raylet also "a task ran again after
//                                   MS ms")
//
// Exit status 0 when the work itself went well.
#include <malloc.h>
#include <rayo.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster_impl.h"   // killsys: the system actors' pids

static int
where(ra_task_t *t)
{
    int64_t ms = ra_task_arg_i64(t, 0);
    if (ms > 0) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    const char *node = getenv("RAYO_NODE");
    return ra_task_return_i64(t, node != NULL ? atoll(node) : -1);
}
RA_REMOTE_REGISTER(where)

static int fail(const char *what, int rc);

static uint8_t
pattern_at(int64_t seed, size_t i)
{
    return (uint8_t)((i * 31u + (size_t)seed * 7u + (i >> 12)) & 0xffu);
}

// pattern: {i64 seed, i64 bytes} -> bytes of seed's pattern.
static int
pattern(ra_task_t *t)
{
    int64_t seed = ra_task_arg_i64(t, 0);
    int64_t n = ra_task_arg_i64(t, 1);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        p[i] = pattern_at(seed, (size_t)i);
    }
    int rc = ra_task_return_bytes(t, p, (size_t)n);
    free(p);
    return rc;
}
RA_REMOTE_REGISTER(pattern)

// store_objects answers the number of objects in its node's store.
static int
store_objects(ra_task_t *t)
{
    ra_store_usage_t u;
    int rc = ra_store_usage(&u);
    return rc != 0 ? ra_task_fail(t, "ra_store_usage: %s", ra_strerror(rc))
                   : ra_task_return_i64(t, (int64_t)u.objects);
}
RA_REMOTE_REGISTER(store_objects)

static bool in_shm(const void *p);

// check_pattern: {bytes, i64 seed} -> 2 len + 1 when the bytes are seed's
// pattern and read in place in the store, 2 len for a copy, 0 when wrong.
static int
check_pattern(ra_task_t *t)
{
    size_t n = 0;
    const uint8_t *p = ra_task_arg(t, 0, &n);
    int64_t seed = ra_task_arg_i64(t, 1);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != pattern_at(seed, i)) {
            return ra_task_return_i64(t, 0);
        }
    }
    return ra_task_return_i64(t, 2 * (int64_t)n + (in_shm(p) ? 1 : 0));
}
RA_REMOTE_REGISTER(check_pattern)

// objects_at answers the objects in the store of the node with the
// resources of o.  Copies are let go by messages between processes (slow
// under the sanitizers), so a count above 0 is asked again, for up to
// 10 s, before it is believed.
static int64_t
objects_at(const ra_task_opts_t *o)
{
    int64_t n = -1;
    for (int k = 0; k < 100 && n != 0; k++) {
        ra_ref_t r;
        if (k > 0) {
            nanosleep(&(struct timespec){0, 100000000L}, NULL);
        }
        if (ra_remote("store_objects", NULL, 0, o, &r) != 0 ||
            ra_get_i64(r, 30000, &n) != 0) {
            return -1;
        }
    }
    return n;
}

// in_shm tells whether p lies in a mapping of a /dev/shm file.
static bool
in_shm(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    bool yes = false;
    while (f != NULL && !yes && fgets(line, sizeof line, f) != NULL) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 &&
            (unsigned long)p >= lo && (unsigned long)p < hi &&
            strstr(line, "/dev/shm/") != NULL) {
            yes = true;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return yes;
}

// put_pattern puts bytes bytes of seed's pattern (ra_put) into *out.
static int
put_pattern(int64_t seed, long long bytes, ra_ref_t *out)
{
    uint8_t *p = malloc(bytes > 0 ? (size_t)bytes : 1);
    if (p == NULL) {
        return RA_ENOMEM;
    }
    for (long long i = 0; i < bytes; i++) {
        p[i] = pattern_at(seed, (size_t)i);
    }
    int rc = ra_put(&RA_ARG_BYTES(p, (size_t)bytes), out);
    free(p);
    return rc;
}

// peek_lent: {reference lent, i64 seed} -> {2 len (+1 when read in
// place) of the value read through the reference, the same from a task
// of its own that it passes the reference on to as a value}.
static int
peek_lent(ra_task_t *t)
{
    ra_ref_t r, sub;
    ra_value_t *v = NULL;
    int64_t seed = ra_task_arg_i64(t, 1);
    int rc = ra_task_arg_ref(t, 0, &r);
    if (rc != 0 || (rc = ra_get(r, 120000, &v)) != 0) {
        int e = ra_task_fail(t, "reading the lent reference: %s %s",
                             ra_err_name(rc),
                             v != NULL ? ra_value_error(v) : "");
        ra_value_free(&v);
        return e;
    }
    size_t n = 0;
    const uint8_t *p = ra_value_data(v, &n);
    int64_t score = 2 * (int64_t)n + (in_shm(p) ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != pattern_at(seed, i)) {
            score = 0;
            break;
        }
    }
    ra_value_free(&v);
    // Read again a while later: the copy pulled here stays while this
    // process holds the reference, not only while the first read maps it.
    struct timespec pause = {0, 300 * 1000000L};
    nanosleep(&pause, NULL);
    if ((rc = ra_get(r, 120000, &v)) != 0 ||
        ra_value_kind(v) != RA_VAL_BYTES) {
        int e = ra_task_fail(t, "reading the lent reference again 300 ms "
                             "later: %s %s", ra_err_name(rc),
                             v != NULL ? ra_value_error(v) : "");
        ra_value_free(&v);
        return e;
    }
    size_t n2 = 0;
    const uint8_t *p2 = ra_value_data(v, &n2);
    if (n2 != n || in_shm(p2) != (score & 1)) {
        score = 0;
    }
    for (size_t i = 0; i < n2 && score != 0; i++) {
        if (p2[i] != pattern_at(seed, i)) {
            score = 0;
        }
    }
    ra_value_free(&v);
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_cpus = 0.01;
    int64_t passed = -1;
    ra_arg_t a[2] = {RA_ARG_REF(r), RA_ARG_I64(seed)};
    if ((rc = ra_remote("check_pattern", a, 2, &o, &sub)) != 0 ||
        (rc = ra_get(sub, 120000, &v)) != 0) {
        // (What the task's error says: which step lost the object.)
        int e = ra_task_fail(t, "passing the reference on: %s %s",
                             ra_err_name(rc),
                             v != NULL ? ra_value_error(v) : "");
        ra_value_free(&v);
        return e;
    }
    passed = ra_value_kind(v) == RA_VAL_I64 ? ra_value_i64(v) : -1;
    ra_value_free(&v);
    ra_release(sub);
    uint8_t out[16];
    memcpy(out, &score, 8);
    memcpy(out + 8, &passed, 8);
    return ra_task_return_bytes(t, out, sizeof out);
}
RA_REMOTE_REGISTER(peek_lent)

// far_opts makes *o ask for 0.01 CPU and one of resource res (held in *x),
// so that the task runs on the node that has it.  Returns 0, or 1 when res
// is not a resource name.
static int
far_opts(const char *res, ra_task_opts_t *o, ra_resources_t *x)
{
    *o = RA_TASK_OPTS_INIT;
    *x = (ra_resources_t){0};
    if (ra_resources_set(x, res, 1.0) != 0) {
        return 1;
    }
    o->resources = x;
    o->num_cpus = 0.01;
    return 0;
}

// far_put sets *o as far_opts does and puts bytes bytes of seed's pattern
// (*obj).  Returns 0, or the driver's exit status.
static int
far_put(const char *res, long long bytes, int64_t seed, ra_task_opts_t *o,
        ra_resources_t *x, ra_ref_t *obj)
{
    if (bytes < 0 || far_opts(res, o, x) != 0) {
        return 1;
    }
    int rc = put_pattern(seed, bytes, obj);
    return rc != 0 ? fail("ra_put", rc) : 0;
}

static int
lend(const char *res, long long bytes)
{
    ra_task_opts_t o;
    ra_resources_t x;
    ra_ref_t obj, r;
    int rc = far_put(res, bytes, 11, &o, &x, &obj);
    if (rc != 0) {
        return rc;
    }
    ra_arg_t a[2] = {RA_ARG_BORROW(obj), RA_ARG_I64(11)};
    ra_value_t *v = NULL;
    if ((rc = ra_remote("peek_lent", a, 2, &o, &r)) != 0 ||
        (rc = ra_get(r, 180000, &v)) != 0) {
        fprintf(stderr, "lend: %s\n", v != NULL ? ra_value_error(v) : "");
        ra_value_free(&v);
        return fail("task given a lent reference", rc);
    }
    int64_t got[2] = {0, 0};
    size_t n = 0;
    const void *d = ra_value_data(v, &n);
    if (n == sizeof got) {
        memcpy(got, d, sizeof got);
    }
    ra_value_free(&v);
    ra_release(r);
    ra_release(obj);
    for (int i = 0; i < 2; i++) {
        if (got[i] / 2 != bytes) {
            fprintf(stderr, "lend: the tasks saw wrong bytes (%lld, %lld)\n",
                    (long long)got[0], (long long)got[1]);
            return 1;
        }
    }
    ra_arg_t w = RA_ARG_I64(0);
    int64_t node = -1, there = -1;
    if (ra_remote("where", &w, 1, &o, &r) != 0 ||
        ra_get_i64(r, 30000, &node) != 0 || (there = objects_at(&o)) < 0) {
        return fail("tasks on the node with the resource", RA_EINVAL);
    }
    printf("lent %lld to node %lld: read %s, passed on %s, left there %lld\n",
           bytes, (long long)node, (got[0] & 1) ? "zero-copy" : "copied",
           (got[1] & 1) ? "zero-copy" : "copied", (long long)there);
    return 0;
}

static int64_t mono_ms(void);

// read_lent_die: {reference lent} reads the value through the reference
// (its node pulls it) and kills its worker.
static int
read_lent_die(ra_task_t *t)
{
    ra_ref_t r;
    ra_value_t *v = NULL;
    int rc = ra_task_arg_ref(t, 0, &r);
    if (rc != 0 || (rc = ra_get(r, 120000, &v)) != 0) {
        ra_value_free(&v);
        return ra_task_fail(t, "reading the lent reference: %s",
                            ra_err_name(rc));
    }
    raise(SIGKILL);
    ra_value_free(&v);
    return ra_task_return_i64(t, 0);
}
RA_REMOTE_REGISTER(read_lent_die)

// lend_die lends a value of bytes bytes to a task on the node with res
// that reads it there and dies: the copy its node made goes soon.
static int
lend_die(const char *res, long long bytes)
{
    ra_task_opts_t o;
    ra_resources_t x;
    ra_ref_t obj, r;
    int rc = far_put(res, bytes, 13, &o, &x, &obj);
    if (rc != 0) {
        return rc;
    }
    o.max_retries = 0;
    ra_value_t *v = NULL;
    if ((rc = ra_remote("read_lent_die", &RA_ARG_BORROW(obj), 1, &o,
                        &r)) != 0) {
        return fail("ra_remote", rc);
    }
    rc = ra_get(r, 120000, &v);
    ra_value_free(&v);
    ra_release(r);
    ra_release(obj);
    int64_t t0 = mono_ms();
    int64_t there = objects_at(&o);
    printf("lent %lld to a task that died: %s, left there %lld after %s\n",
           bytes, ra_err_name(rc), (long long)there,
           mono_ms() - t0 < 10000 ? "under 10 s" : "10 s");
    return 0;
}

// leave puts a value of bytes bytes and ends without releasing it (with
// die, killed by SIGKILL).
static int
leave(long long bytes, bool die)
{
    ra_ref_t obj;
    ra_store_usage_t u;
    int rc = put_pattern(12, bytes, &obj);
    if (rc != 0 || (rc = ra_store_usage(&u)) != 0) {
        return fail("ra_put", rc);
    }
    printf("put %lld, objects here %llu\n", bytes,
           (unsigned long long)u.objects);
    if (die) {
        fflush(stdout);
        raise(SIGKILL);
    }
    return 0;
}

// here says how many objects this node's store holds, after waiting up
// to ms for it to hold none.
static int
here(int ms)
{
    ra_store_usage_t u;
    int rc;
    int64_t end = mono_ms() + ms;
    while ((rc = ra_store_usage(&u)) == 0 && u.objects != 0 &&
           mono_ms() < end) {
        struct timespec d = {0, 20 * 1000000L};
        nanosleep(&d, NULL);
    }
    if (rc != 0) {
        return fail("store usage", rc);
    }
    printf("objects here %llu\n", (unsigned long long)u.objects);
    return 0;
}

// twice_lent: {reference lent to an i64} -> twice the number.
static int
twice_lent(ra_task_t *t)
{
    ra_ref_t r;
    int64_t x = 0;
    int rc = ra_task_arg_ref(t, 0, &r);
    if (rc == 0) {
        rc = ra_get_i64(r, 60000, &x);
    }
    return rc != 0 ? ra_task_fail(t, "the lent reference: %s",
                                  ra_err_name(rc))
                   : ra_task_return_i64(t, 2 * x);
}
RA_REMOTE_REGISTER(twice_lent)

static int
lend_many(const char *res, long n)
{
    enum { WIN = 256 };
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_resources_t x = {0};
    if (n < WIN || ra_resources_set(&x, res, 0.01) != 0) {
        return 1;
    }
    o.resources = &x;
    o.num_cpus = 0.01;
    ra_ref_t win[WIN];
    size_t heap0 = 0;
    for (long i = 0; i < n + WIN; i++) {
        if (i == 1000) {
            heap0 = mallinfo2().uordblks;
        }
        if (i >= WIN) {
            long j = i - WIN;
            int64_t got = -1;
            int rc = ra_get_i64(win[j % WIN], 120000, &got);
            ra_release(win[j % WIN]);
            if (rc != 0 || got != 2 * (int64_t)j) {
                fprintf(stderr, "lendmany: object %ld: %s, %lld\n", j,
                        ra_err_name(rc), (long long)got);
                return 1;
            }
        }
        if (i >= n) {
            continue;
        }
        ra_ref_t obj;
        int rc = ra_put(&RA_ARG_I64(i), &obj);
        if (rc == 0) {
            rc = ra_remote("twice_lent", &RA_ARG_BORROW(obj), 1, &o,
                           &win[i % WIN]);
            ra_release(obj);
        }
        if (rc != 0) {
            return fail("lending", rc);
        }
    }
    size_t heap1 = mallinfo2().uordblks;
    ra_arg_t w = RA_ARG_I64(0);
    ra_ref_t r;
    int64_t node = -1;
    if (ra_remote("where", &w, 1, &o, &r) != 0 ||
        ra_get_i64(r, 30000, &node) != 0) {
        return fail("a task on the node with the resource", RA_EINVAL);
    }
    ra_release(r);
    printf("lent %ld objects to node %lld, heap grew %lld bytes\n", n,
           (long long)node, (long long)heap1 - (long long)heap0);
    return 0;
}

// put_ref: {i64 seed, i64 bytes} -> a reference to seed's pattern, put
// here (this worker owns it).
static int
put_ref(ra_task_t *t)
{
    ra_ref_t r;
    int rc = put_pattern(ra_task_arg_i64(t, 0), ra_task_arg_i64(t, 1), &r);
    if (rc == 0) {
        rc = ra_task_return_ref(t, r);
        ra_release(r);
    }
    return rc;
}
RA_REMOTE_REGISTER(put_ref)

// check_where: {bytes, i64 seed} -> {node it ran on, check_pattern's
// score}.
static int
check_where(ra_task_t *t)
{
    size_t n = 0;
    const uint8_t *p = ra_task_arg(t, 0, &n);
    int64_t seed = ra_task_arg_i64(t, 1);
    int64_t out[2] = {-1, 2 * (int64_t)n + (in_shm(p) ? 1 : 0)};
    const char *node = getenv("RAYO_NODE");
    out[0] = node != NULL ? atoll(node) : -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != pattern_at(seed, i)) {
            out[1] = 0;
            break;
        }
    }
    return ra_task_return_bytes(t, out, sizeof out);
}
RA_REMOTE_REGISTER(check_where)

// read_where runs fn(args) as a task that asks for no resource (so it
// goes where its arguments lie) and stores its {node, score} answer in
// got, and in *pulls the copies this node's object manager made
// meanwhile.  Returns 0, or the driver's exit status (cmd names the
// command in what it prints).
static int
read_where(const char *cmd, const char *fn, const ra_arg_t *args,
           size_t nargs, int64_t got[2], unsigned long long *pulls)
{
    ra_transfer_stats_t t0, t1;
    ra_ref_t r;
    ra_value_t *v = NULL;
    int rc = ra_transfer_stats(&t0);
    if (rc != 0) {
        return fail("ra_transfer_stats", rc);
    }
    ra_task_opts_t any = RA_TASK_OPTS_INIT;
    any.num_cpus = 0.01;
    if ((rc = ra_remote(fn, args, nargs, &any, &r)) != 0 ||
        (rc = ra_get(r, 120000, &v)) != 0) {
        fprintf(stderr, "%s: %s\n", cmd, v != NULL ? ra_value_error(v) : "");
        ra_value_free(&v);
        return fail("the task given the reference", rc);
    }
    got[0] = -1;
    got[1] = 0;
    size_t n = 0;
    const void *d = ra_value_data(v, &n);
    if (n == 2 * sizeof got[0]) {
        memcpy(got, d, n);
    }
    ra_value_free(&v);
    ra_release(r);
    if ((rc = ra_transfer_stats(&t1)) != 0) {
        return fail("ra_transfer_stats", rc);
    }
    *pulls = (unsigned long long)(t1.pulls - t0.pulls);
    return 0;
}

static int
near(const char *res, long long bytes)
{
    ra_task_opts_t o;
    ra_resources_t x;
    if (bytes < 0 || far_opts(res, &o, &x) != 0) {
        return 1;
    }
    ra_ref_t outer, inner;
    ra_value_t *v = NULL;
    ra_arg_t a[2] = {RA_ARG_I64(13), RA_ARG_I64(bytes)};
    int rc = ra_remote("put_ref", a, 2, &o, &outer);
    if (rc != 0 || (rc = ra_get(outer, 120000, &v)) != 0 ||
        (rc = ra_value_ref(v, &inner)) != 0) {
        ra_value_free(&v);
        return fail("a reference made on the node with the resource", rc);
    }
    ra_value_free(&v);
    ra_arg_t b[2] = {RA_ARG_REF(inner), RA_ARG_I64(13)};
    int64_t got[2];
    unsigned long long pulls = 0;
    int st = read_where("near", "check_where", b, 2, got, &pulls);
    ra_release(outer);
    if (st != 0) {
        return st;
    }
    if (got[1] / 2 != bytes) {
        fprintf(stderr, "near: the task saw wrong bytes (%lld)\n",
                (long long)got[1]);
        return 1;
    }
    printf("near: read on node %lld %s, pulled here %llu\n",
           (long long)got[0], (got[1] & 1) ? "zero-copy" : "copied", pulls);
    return 0;
}

// put_ref_late: {i64 seed, i64 bytes} -> as put_ref, 300 ms in (so that
// two such tasks run at once, in two workers).
static int
put_ref_late(ra_task_t *t)
{
    nanosleep(&(struct timespec){0, 300000000L}, NULL);
    return put_ref(t);
}
RA_REMOTE_REGISTER(put_ref_late)

// check_two: {bytes, i64 seed, bytes, i64 seed} -> {node it ran on, the
// sum of check_pattern's scores}.
static int
check_two(ra_task_t *t)
{
    int64_t out[2] = {-1, 0};
    const char *node = getenv("RAYO_NODE");
    out[0] = node != NULL ? atoll(node) : -1;
    for (size_t k = 0; k < 2; k++) {
        size_t n = 0;
        const uint8_t *p = ra_task_arg(t, 2 * k, &n);
        int64_t seed = ra_task_arg_i64(t, 2 * k + 1);
        int64_t score = 2 * (int64_t)n + (in_shm(p) ? 1 : 0);
        for (size_t i = 0; i < n; i++) {
            if (p[i] != pattern_at(seed, i)) {
                score = 0;
                break;
            }
        }
        out[1] += score;
    }
    return ra_task_return_bytes(t, out, sizeof out);
}
RA_REMOTE_REGISTER(check_two)

// owners is the driver's "owners" command (see the top of this file).
static int
owners(const char *res, long long bytes)
{
    ra_task_opts_t o;
    ra_resources_t x = {0};
    if (bytes < 0) {
        return 1;
    }
    o = RA_TASK_OPTS_INIT;
    if (ra_resources_set(&x, res, 0.5) != 0) {
        return 1;
    }
    o.resources = &x;
    o.num_cpus = 0.5;   // (node 2 keeps a CPU for the reader)
    ra_ref_t outer[2], inner[2];
    ra_value_t *v = NULL;
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        ra_arg_t a[2] = {RA_ARG_I64(21 + k), RA_ARG_I64(bytes)};
        rc = ra_remote("put_ref_late", a, 2, &o, &outer[k]);
    }
    for (int k = 0; k < 2 && rc == 0; k++) {
        if ((rc = ra_get(outer[k], 120000, &v)) == 0) {
            rc = ra_value_ref(v, &inner[k]);
        }
        ra_value_free(&v);
    }
    if (rc != 0) {
        return fail("two references made on the node with the resource",
                    rc);
    }
    if (inner[0].node != inner[1].node || inner[0].proc == inner[1].proc) {
        fprintf(stderr, "owners: the two objects are of processes %u.%u "
                "and %u.%u, not of two processes of one node\n",
                inner[0].node, inner[0].proc, inner[1].node, inner[1].proc);
        return 1;
    }
    ra_arg_t b[4] = {RA_ARG_REF(inner[0]), RA_ARG_I64(21),
                     RA_ARG_REF(inner[1]), RA_ARG_I64(22)};
    int64_t got[2];
    unsigned long long pulls = 0;
    int st = read_where("owners", "check_two", b, 4, got, &pulls);
    for (int k = 0; k < 2; k++) {
        ra_release(outer[k]);
    }
    if (st != 0) {
        return st;
    }
    // Each score is 2 * bytes, plus 1 if read in place.
    int64_t in_place = got[1] - 4 * (int64_t)bytes;
    if (in_place < 0 || in_place > 2) {
        fprintf(stderr, "owners: the task saw wrong bytes (%lld)\n",
                (long long)got[1]);
        return 1;
    }
    printf("owners: 2 processes of node %u, read on node %lld %s, pulled "
           "here %llu\n", inner[0].node, (long long)got[0],
           in_place == 2 ? "zero-copy" : in_place == 1 ? "one copied"
                                                       : "copied",
           pulls);
    return 0;
}

// put_nest: {i64 seed, i64 bytes} -> "nest" with two references inside
// (ra_task_return_refs): the number seed and seed's pattern of bytes,
// both put here (this worker owns them) and released at once.
static int
put_nest(ra_task_t *t)
{
    ra_ref_t r[2];
    int64_t seed = ra_task_arg_i64(t, 0);
    int rc = ra_put(&RA_ARG_I64(seed), &r[0]);
    if (rc == 0 && (rc = put_pattern(seed, ra_task_arg_i64(t, 1), &r[1])) !=
                       0) {
        ra_release(r[0]);
    }
    if (rc == 0) {
        rc = ra_task_return_refs(t, &RA_ARG_BYTES("nest", 4), r, 2);
        ra_release(r[0]);
        ra_release(r[1]);
    }
    return rc;
}
RA_REMOTE_REGISTER(put_nest)

// nest: a task on the node with resource res returns two references to
// objects of its worker inside its result; this driver reads both through
// it (the large one pulled here), and once the result is released the
// worker's objects are gone from that node's store.
static int
nest(const char *res, long long bytes)
{
    ra_task_opts_t o;
    ra_resources_t x;
    if (bytes <= 0 || far_opts(res, &o, &x) != 0) {
        return 1;
    }
    ra_ref_t outer, in[2];
    ra_value_t *v = NULL, *w = NULL;
    ra_arg_t a[2] = {RA_ARG_I64(21), RA_ARG_I64(bytes)};
    int rc = ra_remote("put_nest", a, 2, &o, &outer);
    if (rc != 0 || (rc = ra_get(outer, 120000, &v)) != 0 ||
        ra_value_nrefs(v) != 2 || (rc = ra_value_ref_at(v, 0, &in[0])) != 0 ||
        (rc = ra_value_ref_at(v, 1, &in[1])) != 0) {
        fprintf(stderr, "nest: %s\n", v != NULL ? ra_value_error(v) : "");
        ra_value_free(&v);
        return fail("a result with references inside", rc != 0 ? rc
                                                               : RA_EBADMSG);
    }
    ra_value_free(&v);
    int64_t seed = 0;
    if ((rc = ra_get_i64(in[0], 120000, &seed)) != 0 ||
        (rc = ra_get(in[1], 120000, &w)) != 0) {
        fprintf(stderr, "nest: %s\n", w != NULL ? ra_value_error(w) : "");
        ra_value_free(&w);
        return fail("reading the references inside", rc);
    }
    size_t n = 0;
    const uint8_t *p = ra_value_data(w, &n);
    bool right = seed == 21 && n == (size_t)bytes;
    for (size_t i = 0; right && i < n; i++) {
        right = p[i] == pattern_at(21, i);
    }
    bool shm = in_shm(p);
    int64_t held = objects_at(&o);
    ra_value_free(&w);
    ra_release(outer);
    int64_t left = objects_at(&o);
    printf("nest: read %s %s through a result from node %u, held there "
           "%lld, left there %lld\n", right ? "right" : "wrong",
           shm ? "zero-copy" : "copied", in[1].node, (long long)held,
           (long long)left);
    return right ? 0 : 1;
}

static int64_t
mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
send_put(const char *res, long long bytes, int n, bool each)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_resources_t x = {0};
    ra_transfer_stats_t t0, t1;
    if (n < 1 || n > 64 || bytes < 0 ||
        ra_resources_set(&x, res, each ? 1.0 : 1.0 / n) != 0 ||
        ra_transfer_stats(&t0) != 0) {
        return 1;
    }
    o.resources = &x;
    o.num_cpus = 0.01;
    ra_ref_t obj, refs[64];
    int rc = put_pattern(9, bytes, &obj);
    if (rc != 0) {
        return fail("ra_put", rc);
    }
    for (int i = 0; i < n; i++) {
        ra_arg_t a[2] = {RA_ARG_REF(obj), RA_ARG_I64(9)};
        if ((rc = ra_remote("check_pattern", a, 2, &o, &refs[i])) != 0) {
            return fail("check_pattern task", rc);
        }
    }
    bool shm = true;
    for (int i = 0; i < n; i++) {
        ra_value_t *v = NULL;
        if ((rc = ra_get(refs[i], 120000, &v)) != 0) {
            fprintf(stderr, "send %d: %s\n", i,
                    v != NULL && ra_value_error(v) != NULL
                        ? ra_value_error(v) : ra_err_name(rc));
            ra_value_free(&v);
            return fail("task taking a large argument", rc);
        }
        int64_t got = ra_value_i64(v);
        ra_value_free(&v);
        ra_release(refs[i]);
        if (got / 2 != bytes) {
            fprintf(stderr, "send %d: the task saw wrong bytes (%lld)\n", i,
                    (long long)got);
            return 1;
        }
        shm = shm && (got & 1) != 0;
    }
    ra_release(obj);
    if (each) {
        if (ra_transfer_stats(&t1) != 0) {
            return fail("ra_transfer_stats", RA_EINVAL);
        }
        printf("sent %d x %lld %s, served %llu\n", n, bytes,
               shm ? "zero-copy" : "copied",
               (unsigned long long)(t1.served_bytes - t0.served_bytes));
        return 0;
    }
    ra_arg_t a = RA_ARG_I64(0);
    ra_ref_t r;
    int64_t node = -1, there = -1;
    if (ra_remote("where", &a, 1, &o, &r) != 0 ||
        ra_get_i64(r, 30000, &node) != 0 || (there = objects_at(&o)) < 0) {
        return fail("tasks on the node with the resource", RA_EINVAL);
    }
    printf("sent %d x %lld to node %lld %s, left there %lld\n", n, bytes,
           (long long)node, shm ? "zero-copy" : "copied", (long long)there);
    return 0;
}

static int
fetch(const char *res, long long bytes, int n, bool quick)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_resources_t x = {0};
    if (n < 1 || n > 64 || bytes < 0 ||
        ra_resources_set(&x, res, 1.0 / n) != 0) {
        return 1;
    }
    o.resources = &x;
    o.num_cpus = 0.01;
    ra_ref_t refs[64];
    int64_t t0 = mono_ms();
    for (int i = 0; i < n; i++) {
        ra_arg_t a[2] = {RA_ARG_I64(i + 1), RA_ARG_I64(bytes)};
        int rc = ra_remote("pattern", a, 2, &o, &refs[i]);
        if (rc != 0) {
            return fail("pattern task", rc);
        }
    }
    bool shm = true;
    for (int i = 0; i < n; i++) {
        ra_value_t *v = NULL;
        int rc = ra_get(refs[i], 120000, &v);
        if (rc != 0) {
            fprintf(stderr, "fetch %d: %s\n", i,
                    v != NULL && ra_value_error(v) != NULL
                        ? ra_value_error(v) : ra_err_name(rc));
            ra_value_free(&v);
            return fail("get of a large result", rc);
        }
        size_t len = 0;
        const uint8_t *d = ra_value_data(v, &len);
        if (len != (size_t)bytes) {
            fprintf(stderr, "fetch %d: %zu bytes, not %lld\n", i, len,
                    bytes);
            ra_value_free(&v);
            return 1;
        }
        for (size_t k = 0; k < len; k++) {
            if (d[k] != pattern_at(i + 1, k)) {
                fprintf(stderr, "fetch %d: byte %zu is %u, not %u\n", i, k,
                        d[k], pattern_at(i + 1, k));
                ra_value_free(&v);
                return 1;
            }
        }
        shm = shm && in_shm(d);
        ra_value_free(&v);
        (void)ra_release(refs[i]);
    }
    int64_t ms = mono_ms() - t0;
    ra_store_usage_t u;
    if (quick) {
        if (ra_store_usage(&u) != 0) {
            return fail("store usage", RA_EINVAL);
        }
        printf("fetched %d x %lld %s %lld ms, left here %llu\n", n, bytes,
               shm ? "zero-copy" : "copied", (long long)ms,
               (unsigned long long)u.objects);
        return 0;
    }
    // Where they ran: one more task on the node with RES.
    ra_arg_t a = RA_ARG_I64(0);
    ra_ref_t r;
    int64_t node = -1;
    if (ra_remote("where", &a, 1, &o, &r) != 0 ||
        ra_get_i64(r, 30000, &node) != 0) {
        return fail("where task on the node with the resource", RA_EINVAL);
    }
    // What is left: nothing here (released), nothing there (our copies
    // are made, so the node that made them let theirs go).
    int64_t there = objects_at(&o);
    if (there < 0 || ra_store_usage(&u) != 0) {
        return fail("store usage", RA_EINVAL);
    }
    printf("fetched %d x %lld from node %lld %s %lld ms, left here %llu "
           "there %lld\n", n, bytes, (long long)node,
           shm ? "zero-copy" : "copied", (long long)ms,
           (unsigned long long)u.objects, (long long)there);
    return 0;
}

// Counter: a named actor for `serve` and `call`; incr answers the count,
// node the node it lives on.
static int
counter_init(ra_task_t *t)
{
    int64_t *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    ra_task_set_state(t, n);
    return 0;
}

static int
counter_incr(ra_task_t *t)
{
    int64_t *n = ra_task_state(t);
    return ra_task_return_i64(t, ++*n);
}

static int
counter_node(ra_task_t *t)
{
    const char *node = getenv("RAYO_NODE");
    return ra_task_return_i64(t, node != NULL ? atoll(node) : -1);
}

static int
counter_pid(ra_task_t *t)
{
    return ra_task_return_i64(t, (int64_t)getpid());
}

static const ra_method_t counter_methods[] = {
    {"incr", counter_incr},
    {"node", counter_node},
    {"pid", counter_pid},
};

static const ra_actor_class_t Counter = {
    .name = "Counter",
    .init = counter_init,
    .fini = free,
    .methods = counter_methods,
    .nmethods = 3,
};
RA_ACTOR_CLASS_REGISTER(Counter)

// serve creates a Counter named name on the node with resource res (it
// holds half of one) and keeps it (and this driver) alive for seconds.
static int
serve(const char *name, const char *res, int seconds, bool detached)
{
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    ra_resources_t x = {0};
    if (ra_resources_set(&x, res, 0.5) != 0) {
        return 2;
    }
    o.resources = &x;
    o.name = name;
    o.detached = detached;
    ra_actor_t a;
    int rc = ra_actor_create("Counter", NULL, 0, &o, &a);
    if (rc != 0) {
        return fail("ra_actor_create", rc);
    }
    printf("serving %d\n", (int)getpid());
    fflush(stdout);
    struct timespec left = {seconds, 0};
    while (nanosleep(&left, &left) != 0) {
    }
    return 0;
}

// call looks name up and calls it twice: "node N count C1 C2".
static int
call(const char *name)
{
    ra_actor_t a;
    int rc = RA_ENOENT;
    for (int i = 0; i < 100 && rc == RA_ENOENT; i++) {
        if ((rc = ra_actor_lookup(name, NULL, &a)) == RA_ENOENT) {
            usleep(100000);
        }
    }
    if (rc != 0) {
        return fail("ra_actor_lookup", rc);
    }
    int64_t v[3];
    const char *m[3] = {"node", "incr", "incr"};
    for (int i = 0; i < 3; i++) {
        ra_ref_t r;
        if ((rc = ra_actor_call(a, m[i], NULL, 0, &r)) != 0 ||
            (rc = ra_get_i64(r, 20000, &v[i])) != 0) {
            return fail("ra_actor_call", rc);
        }
    }
    printf("node %lld count %lld %lld\n", (long long)v[0], (long long)v[1],
           (long long)v[2]);
    return 0;
}

// kill_named looks name up and kills that actor: "killed".
static int
kill_named(const char *name)
{
    ra_actor_t a;
    int rc = ra_actor_lookup(name, NULL, &a);
    if (rc == 0) {
        rc = ra_actor_kill(a);
    }
    if (rc != 0) {
        return fail("kill", rc);
    }
    // ra_actor_kill returns once the kill is on its way through this
    // process's core: calls made after it fail once it has arrived.  Wait
    // for that before this program (and its core) ends.
    bool dead = false;
    for (int i = 0; i < 100 && !dead; i++) {
        ra_ref_t r;
        int64_t x;
        dead = ra_actor_call(a, "node", NULL, 0, &r) != 0;
        if (!dead) {
            dead = ra_get_i64(r, 2000, &x) != 0;
            ra_release(r);
        }
        if (!dead) {
            usleep(50000);
        }
    }
    printf(dead ? "killed\n" : "still alive\n");
    return dead ? 0 : 1;
}

static ra_pg_strategy_t strategy_of(const char *s);

// keep creates a group of n bundles of cpus CPUs each, named name
// (detached or not), with strategy, says "created" and sleeps until it is
// killed.
static int
keep(int n, bool detached, const char *name, const char *strategy,
     double cpus)
{
    ra_resources_t b[16] = {0};
    if (n < 1 || n > 16 || !(cpus > 0)) {
        return 2;
    }
    for (int i = 0; i < n; i++) {
        b[i].cpus = cpus;
    }
    ra_pg_opts_t o = {.strategy = strategy_of(strategy), .name = name,
                      .detached = detached};
    ra_pg_t g;
    int rc = ra_pg_create(b, (size_t)n, &o, &g);
    if (rc == 0) {
        rc = ra_pg_wait(g, 20000);
    }
    if (rc != 0) {
        return fail("keep", rc);
    }
    printf("created by %d\n", (int)getpid());
    fflush(stdout);
    for (;;) {
        pause();
    }
}

// speak prints its argument on the worker's stdout and stderr.
static int
speak(ra_task_t *t)
{
    size_t len = 0;
    const char *text = ra_task_arg(t, 0, &len);
    printf("out: %.*s\n", (int)len, text);
    fflush(stdout);
    fprintf(stderr, "err: %.*s\n", (int)len, text);
    const char *node = getenv("RAYO_NODE");
    return ra_task_return_i64(t, node != NULL ? atoll(node) : -1);
}
RA_REMOTE_REGISTER(speak)

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "multinode_driver: %s: %s\n", what, ra_strerror(rc));
    return 1;
}

static int
spread(int n, int ms)
{
    ra_ref_t *refs = calloc((size_t)n, sizeof *refs);
    int64_t *nodes = calloc((size_t)n, sizeof *nodes);
    if (refs == NULL || nodes == NULL) {
        return 1;
    }
    ra_arg_t a = RA_ARG_I64(ms);
    int rc;
    for (int i = 0; i < n; i++) {
        if ((rc = ra_remote("where", &a, 1, NULL, &refs[i])) != 0) {
            return fail("ra_remote", rc);
        }
    }
    for (int i = 0; i < n; i++) {
        if ((rc = ra_get_i64(refs[i], 60000, &nodes[i])) != 0) {
            return fail("ra_get", rc);
        }
        ra_release(refs[i]);
    }
    int distinct = 0;
    for (int i = 0; i < n; i++) {
        bool seen = false;
        int count = 0;
        for (int j = 0; j < n; j++) {
            seen |= j < i && nodes[j] == nodes[i];
            count += nodes[j] == nodes[i];
        }
        if (!seen) {
            printf("node %lld %d\n", (long long)nodes[i], count);
            distinct++;
        }
    }
    printf("distinct %d\n", distinct);
    free(refs);
    free(nodes);
    return 0;
}

// busy runs n tasks of ms each, each needing 1 CPU and 1/n of res: on
// the node that has 1 res they fill n CPUs.
static int
busy(const char *res, int n, int ms, double cpus)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_resources_t x = {0};
    if (n < 1 || n > 64 || !(cpus > 0) ||
        ra_resources_set(&x, res, 1.0 / n) != 0) {
        return 2;
    }
    o.resources = &x;
    o.num_cpus = cpus;
    ra_ref_t refs[64];
    ra_arg_t a = RA_ARG_I64(ms);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = ra_remote("where", &a, 1, &o, &refs[i]);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t node;
        rc = ra_get_i64(refs[i], 60000, &node);
    }
    return rc == 0 ? 0 : fail("busy", rc);
}

// say runs speak with text (on a node with resource res unless NULL) and
// waits a moment for its lines to arrive.
static int
say(const char *text, const char *res)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_resources_t x = {0};
    if (res != NULL) {
        if (ra_resources_set(&x, res, 1) != 0) {
            return 1;
        }
        o.resources = &x;
    }
    ra_arg_t a = RA_ARG_BYTES(text, strlen(text));
    ra_ref_t r;
    int64_t node = 0;
    int rc = ra_remote("speak", &a, 1, &o, &r);
    if (rc == 0) {
        rc = ra_get_i64(r, 30000, &node);
    }
    if (rc != 0) {
        return fail("speak", rc);
    }
    usleep(300000);
    printf("spoke on node %lld\n", (long long)node);
    return 0;
}

// killsys ends the joined daemon's raylet, GCS or object manager.
static int
killsys(const char *what)
{
    ra__cluster_t *c = ra__g;
    ra_pid_t victim = strcmp(what, "raylet") == 0   ? c->raylet
                      : strcmp(what, "gcs") == 0    ? c->gcs
                      : strcmp(what, "objmgr") == 0 ? c->objmgr
                                                    : RA_PID_NIL;
    if (ra_pid_is_nil(victim)) {
        fprintf(stderr, "multinode_driver: killsys: no %s\n", what);
        return 1;
    }
    ra_ctx_t *scope = NULL;
    int rc = ra_scope_new(c->rt, &scope);
    if (rc == 0) {
        rc = ra_exit_pid(scope, victim, RA_KILL);
        ra_scope_destroy(&scope);
    }
    if (rc != 0) {
        return fail("exit signal", rc);
    }
    printf("killed the daemon's %s\n", what);
    fflush(stdout);   // (before any error of what follows, on stderr)
    // Restarted in place: how long until it answers again (the calls ask
    // again while it is down).
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (strcmp(what, "gcs") == 0) {
        ra_job_info_t *jobs = NULL;
        size_t n = 0;
        if ((rc = ra_job_list(&jobs, &n)) != 0) {
            return fail("the GCS after its end", rc);
        }
        free(jobs);
    } else if (strcmp(what, "raylet") == 0) {
        double ct = 0, ca = 0, gt = 0, ga = 0;
        if ((rc = ra_cluster_resources(&ct, &ca, &gt, &ga)) != 0) {
            return fail("the raylet after its end", rc);
        }
    } else {
        ra_transfer_stats_t st;
        if ((rc = ra_transfer_stats(&st)) != 0) {
            return fail("the object manager after its end", rc);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double task_ms = -1;
    if (strcmp(what, "raylet") == 0) {
        // And how long until a task runs again: the new raylet starts a
        // worker for it.
        ra_ref_t r;
        int64_t node = 0;
        struct timespec t2;
        if ((rc = ra_remote("where", &RA_ARG_I64(0), 1, NULL, &r)) != 0 ||
            (rc = ra_get_i64(r, 30000, &node)) != 0) {
            return fail("a task after the raylet's end", rc);
        }
        ra_release(r);
        clock_gettime(CLOCK_MONOTONIC, &t2);
        task_ms = (double)(t2.tv_sec - t0.tv_sec) * 1e3 +
                  (double)(t2.tv_nsec - t0.tv_nsec) / 1e6;
    }
    printf("the %s answered again after %.1f ms\n",
           strcmp(what, "gcs") == 0 ? "GCS" : strcmp(what, "raylet") == 0
                                                  ? "raylet"
                                                  : "object manager",
           (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    if (task_ms >= 0) {
        printf("a task ran again after %.1f ms\n", task_ms);
    }
    return 0;
}

static int
resource(const char *name)
{
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_resources_t x = {0};
    if (ra_resources_set(&x, name, 1) != 0) {
        return 1;
    }
    o.resources = &x;
    ra_arg_t a = RA_ARG_I64(0);
    ra_ref_t r;
    int64_t node = 0;
    int rc = ra_remote("where", &a, 1, &o, &r);
    if (rc == 0) {
        rc = ra_get_i64(r, 30000, &node);
    }
    if (rc != 0) {
        return fail("task with a custom resource", rc);
    }
    printf("node %lld\n", (long long)node);
    return 0;
}

static int
pg(const char *strategy, int n, int wait_ms)
{
    ra_pg_opts_t o = {0};
    if (strcmp(strategy, "PACK") == 0) {
        o.strategy = RA_PG_PACK;
    } else if (strcmp(strategy, "SPREAD") == 0) {
        o.strategy = RA_PG_SPREAD;
    } else if (strcmp(strategy, "STRICT_PACK") == 0) {
        o.strategy = RA_PG_STRICT_PACK;
    } else if (strcmp(strategy, "STRICT_SPREAD") == 0) {
        o.strategy = RA_PG_STRICT_SPREAD;
    } else {
        fprintf(stderr, "multinode_driver: unknown strategy %s\n", strategy);
        return 2;
    }
    ra_resources_t *b = calloc((size_t)n, sizeof *b);
    for (int i = 0; b != NULL && i < n; i++) {
        b[i].cpus = 1;
    }
    ra_pg_t g;
    int rc = ra_pg_create(b, (size_t)n, &o, &g);
    free(b);
    if (rc != 0) {
        return fail("ra_pg_create", rc);
    }
    rc = ra_pg_wait(g, wait_ms);
    if (rc == RA_ETIMEOUT) {
        printf("pending\n");
        fflush(stdout);
        (void)ra_pg_remove(g);
        return 0;
    }
    if (rc != 0) {
        return fail("ra_pg_wait", rc);
    }
    ra_pg_info_t info;
    if ((rc = ra_pg_info(g, &info)) != 0) {
        return fail("ra_pg_info", rc);
    }
    printf("created");
    for (size_t i = 0; i < info.nbundles; i++) {
        printf(" %u", info.bundles[i].node);
    }
    printf("\n");
    ra_pg_info_free(&info);
    // A task in each bundle runs on that bundle's node.
    printf("ran");
    for (int i = 0; i < n; i++) {
        ra_task_opts_t to = RA_TASK_OPTS_INIT;
        to.num_cpus = 1;
        to.placement_group = g;
        to.bundle_index = i;
        ra_arg_t a = RA_ARG_I64(0);
        ra_ref_t r;
        int64_t node = 0;
        if ((rc = ra_remote("where", &a, 1, &to, &r)) != 0 ||
            (rc = ra_get_i64(r, 30000, &node)) != 0) {
            printf("\n");
            return fail("task in a bundle", rc);
        }
        printf(" %lld", (long long)node);
    }
    printf("\n");
    (void)ra_pg_remove(g);
    return 0;
}

static ra_pg_strategy_t
strategy_of(const char *s)
{
    return strcmp(s, "SPREAD") == 0          ? RA_PG_SPREAD
           : strcmp(s, "STRICT_PACK") == 0   ? RA_PG_STRICT_PACK
           : strcmp(s, "STRICT_SPREAD") == 0 ? RA_PG_STRICT_SPREAD
                                             : RA_PG_PACK;
}

// actor_pid asks actor a for its process id (-1: it does not answer).
static int64_t
actor_pid(ra_actor_t a)
{
    ra_ref_t r;
    int64_t pid = -1;
    if (ra_actor_call(a, "pid", NULL, 0, &r) == 0) {
        if (ra_get_i64(r, 5000, &pid) != 0) {
            pid = -1;
        }
        ra_release(r);
    }
    return pid;
}

// watch prints the group's state and bundle nodes whenever they change.
// Once the group is created it puts a Counter in each bundle; at the end
// it says, per bundle, whether it stayed on its first node with the same
// actor process, or moved.
static int
watch(const char *strategy, int n, int seconds)
{
    ra_pg_opts_t o = {.strategy = strategy_of(strategy)};
    ra_resources_t b[16] = {0};
    if (n < 1 || n > 16) {
        return 2;
    }
    for (int i = 0; i < n; i++) {
        b[i].cpus = 1;
    }
    ra_pg_t g;
    int rc = ra_pg_create(b, (size_t)n, &o, &g);
    if (rc != 0) {
        return fail("ra_pg_create", rc);
    }
    char last[512] = "";
    uint32_t first[16] = {0}, now[16] = {0};
    ra_actor_t actor[16];
    int64_t pid[16];
    bool have = false;
    for (int t = 0; t < seconds * 20; t++) {
        ra_pg_info_t info;
        if ((rc = ra_pg_info(g, &info)) != 0) {
            return fail("ra_pg_info", rc);
        }
        char line[512];
        int off = snprintf(line, sizeof line, "%s",
                           ra_pg_state_name(info.state));
        for (size_t i = 0; i < info.nbundles && off < (int)sizeof line; i++) {
            off += snprintf(line + off, sizeof line - (size_t)off, " %u",
                            info.bundles[i].node);
            now[i] = info.bundles[i].node;
        }
        bool created = info.state == RA_PG_CREATED;
        ra_pg_info_free(&info);
        if (created && !have) {
            for (int i = 0; i < n; i++) {
                ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
                ao.num_cpus = 1;
                ao.placement_group = g;
                ao.bundle_index = i;
                first[i] = now[i];
                pid[i] = -1;
                if (ra_actor_create("Counter", NULL, 0, &ao, &actor[i]) ==
                    0) {
                    pid[i] = actor_pid(actor[i]);
                }
            }
            have = true;
        }
        // (Printed after the actors exist: whoever waits for CREATED may
        // then kill a node.)
        if (strcmp(line, last) != 0) {
            printf("%s\n", line);
            fflush(stdout);
            snprintf(last, sizeof last, "%s", line);
        }
        usleep(50000);
    }
    for (int i = 0; have && i < n; i++) {
        if (now[i] != first[i]) {
            printf("moved %d %u %u\n", i, first[i], now[i]);
            continue;
        }
        int64_t p = pid[i] < 0 ? -1 : actor_pid(actor[i]);
        printf("kept %d %u %s\n", i, now[i],
               p < 0 ? "no-actor" : p == pid[i] ? "same-actor" : "new-actor");
    }
    fflush(stdout);
    (void)ra_pg_remove(g);
    return 0;
}

int
main(int argc, char **argv)
{
    ra_worker_main();
    if (argc < 2) {
        fprintf(stderr, "usage: multinode_driver spread N MS | resource "
                "NAME | pg STRATEGY N WAIT_MS\n");
        return 2;
    }
    int rc = ra_init(NULL);
    if (rc != 0) {
        return fail("ra_init", rc);
    }
    int st = 2;
    if (strcmp(argv[1], "spread") == 0 && argc == 4) {
        st = spread(atoi(argv[2]), atoi(argv[3]));
    } else if (strcmp(argv[1], "serve") == 0 && (argc == 5 || argc == 6)) {
        st = serve(argv[2], argv[3], atoi(argv[4]),
                   argc == 6 && strcmp(argv[5], "detached") == 0);
    } else if (strcmp(argv[1], "kill") == 0 && argc == 3) {
        st = kill_named(argv[2]);
    } else if (strcmp(argv[1], "call") == 0 && argc == 3) {
        st = call(argv[2]);
    } else if (strcmp(argv[1], "keep") == 0 && argc >= 5 && argc <= 7) {
        st = keep(atoi(argv[2]), atoi(argv[3]) != 0, argv[4],
                  argc > 5 ? argv[5] : "PACK",
                  argc > 6 ? atof(argv[6]) : 1.0);
    } else if (strcmp(argv[1], "busy") == 0 && (argc == 5 || argc == 6)) {
        st = busy(argv[2], atoi(argv[3]), atoi(argv[4]),
                  argc == 6 ? atof(argv[5]) : 1.0);
    } else if (strcmp(argv[1], "say") == 0 && (argc == 3 || argc == 4)) {
        st = say(argv[2], argc == 4 ? argv[3] : NULL);
    } else if (strcmp(argv[1], "resource") == 0 && argc == 3) {
        st = resource(argv[2]);
    } else if (strcmp(argv[1], "pg") == 0 && argc == 5) {
        st = pg(argv[2], atoi(argv[3]), atoi(argv[4]));
    } else if (strcmp(argv[1], "fetch") == 0 &&
               (argc == 5 || (argc == 6 && strcmp(argv[5], "quick") == 0))) {
        st = fetch(argv[2], atoll(argv[3]), atoi(argv[4]), argc == 6);
    } else if (strcmp(argv[1], "send") == 0 &&
               (argc == 5 || (argc == 6 && strcmp(argv[5], "each") == 0))) {
        st = send_put(argv[2], atoll(argv[3]), atoi(argv[4]), argc == 6);
    } else if (strcmp(argv[1], "near") == 0 && argc == 4) {
        st = near(argv[2], atoll(argv[3]));
    } else if (strcmp(argv[1], "owners") == 0 && argc == 4) {
        st = owners(argv[2], atoll(argv[3]));
    } else if (strcmp(argv[1], "lendmany") == 0 && argc == 4) {
        st = lend_many(argv[2], atol(argv[3]));
    } else if (strcmp(argv[1], "nest") == 0 && argc == 4) {
        st = nest(argv[2], atoll(argv[3]));
    } else if (strcmp(argv[1], "lend") == 0 && argc == 4) {
        st = lend(argv[2], atoll(argv[3]));
    } else if (strcmp(argv[1], "lenddie") == 0 && argc == 4) {
        st = lend_die(argv[2], atoll(argv[3]));
    } else if (strcmp(argv[1], "leave") == 0 &&
               (argc == 3 || (argc == 4 && strcmp(argv[3], "die") == 0))) {
        st = leave(atoll(argv[2]), argc == 4);
    } else if (strcmp(argv[1], "here") == 0 && (argc == 2 || argc == 3)) {
        st = here(argc == 3 ? atoi(argv[2]) : 0);
    } else if (strcmp(argv[1], "killsys") == 0 && argc == 3) {
        st = killsys(argv[2]);
    } else if (strcmp(argv[1], "watch") == 0 && argc == 5) {
        st = watch(argv[2], atoi(argv[3]), atoi(argv[4]));
    } else {
        fprintf(stderr, "multinode_driver: bad arguments\n");
    }
    fflush(stdout);
    ra_shutdown();
    return st;
}

// check_cluster.c - the embedded cluster end to end: real worker
// processes (this test binary, re-executed in worker mode), real links,
// real LMDB tables.
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <rayo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster_impl.h"   // the GCS wire, to report a late kill
#include "testutil.h"

#define RA_ARG_STR_EMPTY RA_ARG_BYTES("", 0)

// ---- remote functions used by the tests ----

static int
add(ra_task_t *t)
{
    return ra_task_return_i64(t, ra_task_arg_i64(t, 0) +
                                     ra_task_arg_i64(t, 1));
}
RA_REMOTE_REGISTER(add)

static int
my_pid(ra_task_t *t)
{
    return ra_task_return_i64(t, (int64_t)getpid());
}
RA_REMOTE_REGISTER(my_pid)

static int
echo_bson(ra_task_t *t)
{
    bson_t doc;
    int rc = ra_task_arg_bson(t, 0, &doc);
    if (rc != 0) {
        return ra_task_fail(t, "not a BSON document");
    }
    bson_t out = BSON_INITIALIZER;
    bson_iter_t it;
    int64_t x = 0;
    if (bson_iter_init_find(&it, &doc, "x") && BSON_ITER_HOLDS_INT64(&it)) {
        x = bson_iter_int64(&it);
    }
    BSON_APPEND_INT64(&out, "twice", 2 * x);
    rc = ra_task_return_bson(t, &out);
    bson_destroy(&out);
    return rc;
}
RA_REMOTE_REGISTER(echo_bson)

static int
fails(ra_task_t *t)
{
    return ra_task_fail(t, "bad input %lld",
                        (long long)ra_task_arg_i64(t, 0));
}
RA_REMOTE_REGISTER(fails)

// die_once kills its own worker (with the signal in argument 1) the first
// time, found by a marker file named by argument 0, and answers 42 after.
static int
die_once(ra_task_t *t)
{
    size_t len;
    const char *path = ra_task_arg(t, 0, &len);
    char p[512];
    snprintf(p, sizeof p, "%.*s", (int)len, path);
    int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0600);
    if (fd >= 0) {
        close(fd);
        raise((int)ra_task_arg_i64(t, 1));
    }
    return ra_task_return_i64(t, 42);
}
RA_REMOTE_REGISTER(die_once)

// sleeper writes its pid to the file named by argument 0, then sleeps
// argument 1 milliseconds (stopping early when cancelled).
static int
sleeper(ra_task_t *t)
{
    size_t len;
    const char *path = ra_task_arg(t, 0, &len);
    if (len != 0) {
        char p[512];
        snprintf(p, sizeof p, "%.*s", (int)len, path);
        FILE *f = fopen(p, "w");
        if (f != NULL) {
            fprintf(f, "%d\n", (int)getpid());
            fclose(f);
        }
    }
    int64_t ms = ra_task_arg_i64(t, 1);
    for (int64_t i = 0; i < ms && !ra_task_cancelled(t); i++) {
        usleep(1000);
    }
    return ra_task_return_i64(t, ms);
}
RA_REMOTE_REGISTER(sleeper)

// gate waits (at most a minute) until the file named by argument 0
// exists, then returns 1.
static int
gate(ra_task_t *t)
{
    size_t len;
    const char *path = ra_task_arg(t, 0, &len);
    char p[512];
    snprintf(p, sizeof p, "%.*s", (int)len, path);
    for (int i = 0; i < 60000 && access(p, F_OK) != 0; i++) {
        usleep(1000);
    }
    return ra_task_return_i64(t, access(p, F_OK) == 0);
}
RA_REMOTE_REGISTER(gate)

// deaf sleeps and ignores cancellation: its worker has to be killed.
static int
deaf(ra_task_t *t)
{
    usleep((useconds_t)ra_task_arg_i64(t, 0) * 1000);
    return 0;
}
RA_REMOTE_REGISTER(deaf)

// rogue runs in a worker and plays a hostile process on the node's
// sockets: its own runtime and link in the session's ipc directory,
// sending every cluster tag with malformed bodies to the raylet and the
// GCS (found in the worker's environment), and a garbage call to the GCS.
// Returns how many messages it sent.
static int
rogue(ra_task_t *t)
{
    const char *sess = getenv("RAYO_SESSION");
    const char *names[2] = {"RAYO_RAYLET", "RAYO_GCS"};
    ra_pid_t to[2];
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(names[i]);
        unsigned n, p, id, g;
        if (v == NULL || sscanf(v, "%u.%u.%u.%u", &n, &p, &id, &g) != 4) {
            return ra_task_fail(t, "no %s", names[i]);
        }
        to[i] = (ra_pid_t){n, p, id, g};
    }
    char dir[600];
    snprintf(dir, sizeof dir, "%s/sock", sess != NULL ? sess : "");
    ra_runtime_t *rt = NULL;
    ra_link_t *l = NULL;
    ra_runtime_opts_t ro = {.threads = 1, .node = to[0].node,
                            .proc = (uint32_t)getpid() + 4000000u};
    ra_link_opts_t lo = {.ipc_dir = dir};
    int rc = ra_runtime_new(&rt, &ro);
    if (rc == 0) {
        rc = ra_link_start(rt, &lo, &l);
    }
    if (rc != 0) {
        ra_runtime_destroy(&rt);
        return ra_task_fail(t, "rogue runtime: %s", ra_err_name(rc));
    }
    uint8_t junk[64];
    srand((unsigned)ra_task_arg_i64(t, 0));
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rand();
    }
    size_t lens[] = {0, 1, 3, 9, 17, 64};
    int64_t sent = 0;
    for (int tag = -1320; tag <= -1300; tag++) {
        for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
            for (int i = 0; i < 2; i++) {
                ra_msg_t *m = NULL;
                if (ra_msg_new_bytes(&m, tag, junk, lens[k]) == 0 &&
                    ra_runtime_send(rt, to[i], &m) == 0) {
                    sent++;
                }
                ra_msg_unref(&m);
            }
        }
    }
    ra_ctx_t *scope = NULL;
    if (ra_scope_new(rt, &scope) == 0) {
        ra_msg_t *m = NULL, *rep = NULL;
        if (ra_msg_new_bytes(&m, -1313, junk, 5) == 0 &&
            ra_call(scope, to[1], &m, 5000, &rep) == 0) {
            sent++;
        }
        ra_msg_unref(&m);
        ra_msg_unref(&rep);
        ra_scope_destroy(&scope);
    }
    usleep(200 * 1000);   // let the link deliver before it stops
    ra_link_stop(&l);
    ra_runtime_destroy(&rt);
    return ra_task_return_i64(t, sent);
}
RA_REMOTE_REGISTER(rogue)

// say prints to stdout and stderr and returns its worker's pid.
static int
say(ra_task_t *t)
{
    printf("hello %lld\n", (long long)ra_task_arg_i64(t, 0));
    fprintf(stderr, "oops %lld\n", (long long)ra_task_arg_i64(t, 0));
    return ra_task_return_i64(t, (int64_t)getpid());
}
RA_REMOTE_REGISTER(say)

// fan submits argument-0 "add" tasks from inside a task and waits for
// them: nested tasks.
static int
fan(ra_task_t *t)
{
    int64_t n = ra_task_arg_i64(t, 0), sum = 0;
    ra_ref_t r[16];
    if (n > 16) {
        return ra_task_fail(t, "at most 16");
    }
    for (int64_t i = 0; i < n; i++) {
        int rc = ra_remote("add", (ra_arg_t[]){RA_ARG_I64(i), RA_ARG_I64(0)},
                           2, NULL, &r[i]);
        if (rc != 0) {
            return ra_task_fail(t, "submit: %s", ra_err_name(rc));
        }
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t x;
        int rc = ra_get_i64(r[i], 30000, &x);
        if (rc != 0) {
            return ra_task_fail(t, "get: %s", ra_err_name(rc));
        }
        sum += x;
        ra_release(r[i]);
    }
    return ra_task_return_i64(t, sum);
}
RA_REMOTE_REGISTER(fan)

// big returns argument-0 bytes, byte i being (i * 7 + argument 1) mod 251.
static int
big(ra_task_t *t)
{
    size_t n = (size_t)ra_task_arg_i64(t, 0);
    int64_t salt = ra_task_arg_i64(t, 1);
    uint8_t *p = malloc(n != 0 ? n : 1);
    if (p == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)((i * 7 + (size_t)salt) % 251);
    }
    int rc = ra_task_return_bytes(t, p, n);
    free(p);
    return rc;
}
RA_REMOTE_REGISTER(big)

static bool in_shm(const void *p);

// check_big returns 2 len + 1 when argument 0 is what big(len, argument 1)
// makes and the task reads it in place in the object store (a /dev/shm
// mapping), 2 len when it has a copy, and 0 when the bytes are wrong.
static int
check_big(ra_task_t *t)
{
    size_t n;
    const uint8_t *p = ra_task_arg(t, 0, &n);
    int64_t salt = ra_task_arg_i64(t, 1);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)((i * 7 + (size_t)salt) % 251)) {
            return ra_task_return_i64(t, 0);
        }
    }
    return ra_task_return_i64(t, 2 * (int64_t)n + (in_shm(p) ? 1 : 0));
}
RA_REMOTE_REGISTER(check_big)

// ---- references lent to tasks (RA_ARG_BORROW) ----

// value_score scores value v the way the borrow tests expect: twice a
// number; 2 len + 1 for bytes big(len, salt) made read in place in the
// store, 2 len for such bytes in a copy; -1 for anything else.
static int64_t
value_score(const ra_value_t *v, int64_t salt)
{
    if (ra_value_kind(v) == RA_VAL_I64) {
        return 2 * ra_value_i64(v);
    }
    size_t n;
    const uint8_t *p = ra_value_data(v, &n);
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)((i * 7 + (size_t)salt) % 251)) {
            return -1;
        }
    }
    return 2 * (int64_t)n + (in_shm(p) ? 1 : 0);
}

// peek_ref receives a reference (argument 0) and a salt (argument 1),
// waits for the object with ra_wait, reads it and returns its
// value_score; a failed object fails the task with its error text.
static int
peek_ref(ra_task_t *t)
{
    ra_ref_t r;
    size_t n = 1;
    if (ra_task_arg_kind(t, 0) != RA_VAL_REF || ra_task_arg_ref(t, 0, &r) ||
        ra_task_arg(t, 0, &n) != NULL || n != 0 ||
        ra_task_arg_ref(t, 1, &r) != RA_EBADMSG ||
        ra_task_arg_ref(t, 9, &r) != RA_ENOENT) {
        return ra_task_fail(t, "argument 0 does not read as a reference");
    }
    (void)ra_task_arg_ref(t, 0, &r);
    bool ready = false;
    if (ra_wait(&r, 1, 1, 20000, &ready) != 1 || !ready) {
        return ra_task_fail(t, "ra_wait did not see the object ready");
    }
    ra_value_t *v = NULL;
    int rc = ra_get(r, 20000, &v);
    if (rc != 0) {
        int e = ra_task_fail(t, "ra_get: %s: %s", ra_err_name(rc),
                             v != NULL ? ra_value_error(v) : "");
        ra_value_free(&v);
        return e;
    }
    int64_t score = value_score(v, ra_task_arg_i64(t, 1));
    ra_value_free(&v);
    return ra_task_return_i64(t, score);
}
RA_REMOTE_REGISTER(peek_ref)

// relay_ref passes the reference it received on to two tasks of its own:
// check_big gets the value (RA_ARG_REF), peek_ref the reference again
// (RA_ARG_BORROW).  It returns their common score, or -1 when they differ.
static int
relay_ref(ra_task_t *t)
{
    ra_ref_t r, a, b;
    int64_t x = -2, y = -3;
    int64_t salt = ra_task_arg_i64(t, 1);
    if (ra_task_arg_ref(t, 0, &r) != 0 ||
        ra_remote("check_big", (ra_arg_t[]){RA_ARG_REF(r),
                                            RA_ARG_I64(salt)},
                  2, NULL, &a) != 0 ||
        ra_remote("peek_ref", (ra_arg_t[]){RA_ARG_BORROW(r),
                                           RA_ARG_I64(salt)},
                  2, NULL, &b) != 0) {
        return ra_task_fail(t, "could not pass the reference on");
    }
    int ra = ra_get_i64(a, 30000, &x);
    int rb = ra_get_i64(b, 30000, &y);
    ra_release(a);
    ra_release(b);
    if (ra != 0 || rb != 0) {
        return ra_task_fail(t, "passed on: %s, %s", ra_err_name(ra),
                            ra_err_name(rb));
    }
    return ra_task_return_i64(t, x == y ? x : -1);
}
RA_REMOTE_REGISTER(relay_ref)

// make_ref sleeps argument 2 ms, puts big(argument 0, argument 1)'s bytes
// with ra_put, and returns the reference (released here at once).
static int
make_ref(ra_task_t *t)
{
    usleep((useconds_t)ra_task_arg_i64(t, 2) * 1000);
    size_t n = (size_t)ra_task_arg_i64(t, 0);
    int64_t salt = ra_task_arg_i64(t, 1);
    uint8_t *p = malloc(n);
    if (p == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)((i * 7 + (size_t)salt) % 251);
    }
    ra_ref_t r;
    int rc = ra_put(&RA_ARG_BYTES(p, n), &r);
    free(p);
    if (rc == 0) {
        rc = ra_task_return_ref(t, r);
        ra_release(r);
    }
    return rc;
}
RA_REMOTE_REGISTER(make_ref)

// put_and_keep puts argument 0 bytes with ra_put, never releases them,
// and answers its worker's pid.
static int
put_and_keep(ra_task_t *t)
{
    size_t n = (size_t)ra_task_arg_i64(t, 0);
    uint8_t *p = calloc(1, n);
    if (p == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    ra_ref_t r;
    int rc = ra_put(&RA_ARG_BYTES(p, n), &r);
    free(p);
    return rc != 0 ? ra_task_fail(t, "ra_put: %s", ra_err_name(rc))
                   : ra_task_return_i64(t, (int64_t)getpid());
}
RA_REMOTE_REGISTER(put_and_keep)

// bounce_ref returns the reference lent to it; with a second argument,
// returns what ra_task_return_ref says of a reference it does not have.
static int
bounce_ref(ra_task_t *t)
{
    ra_ref_t r;
    int rc = ra_task_arg_ref(t, 0, &r);
    if (rc != 0) {
        return rc;
    }
    if (ra_task_nargs(t) > 1) {
        r.id += 1000000;
        return ra_task_return_i64(t, ra_task_return_ref(t, r));
    }
    return ra_task_return_ref(t, r);
}
RA_REMOTE_REGISTER(bounce_ref)

// peek_nested borrows a result that is itself a reference (argument 0)
// and returns the value_score of what it refers to (salt argument 1).
static int
peek_nested(ra_task_t *t)
{
    ra_ref_t outer, inner;
    ra_value_t *v = NULL, *w = NULL;
    int rc = ra_task_arg_ref(t, 0, &outer);
    if (rc == 0 && (rc = ra_get(outer, 20000, &v)) == 0 &&
        (rc = ra_value_ref(v, &inner)) == 0) {
        rc = ra_get(inner, 20000, &w);
    }
    int64_t score = rc == 0 ? value_score(w, ra_task_arg_i64(t, 1)) : -1;
    int e = rc != 0 ? ra_task_fail(t, "reading through the reference: %s: "
                                   "%s", ra_err_name(rc),
                                   w != NULL ? ra_value_error(w)
                                   : v != NULL ? ra_value_error(v) : "")
                    : ra_task_return_i64(t, score);
    ra_value_free(&w);
    ra_value_free(&v);
    return e;
}
RA_REMOTE_REGISTER(peek_nested)

// nest_score reads the references in value v (as read_ref gives them:
// ra_value_ref_at, or ra_task_arg_ref_at of a task's argument): the first
// must be a number, the second big bytes with salt argument salt.  It
// returns the number plus the second's value_score, or a negative error.
typedef int (*ref_at_fn)(const void *src, size_t i, ra_ref_t *out);

static int
value_ref_at(const void *src, size_t i, ra_ref_t *out)
{
    return ra_value_ref_at(src, i, out);
}

static int64_t
nest_score(const void *src, size_t n, ref_at_fn at, int64_t salt)
{
    ra_ref_t a, b, x;
    if (n != 2 || at(src, 0, &a) != 0 || at(src, 1, &b) != 0 ||
        at(src, 2, &x) != RA_ENOENT) {
        return -100;
    }
    int64_t num = 0;
    ra_value_t *v = NULL;
    if (ra_get_i64(a, 20000, &num) != 0 || ra_get(b, 20000, &v) != 0) {
        ra_value_free(&v);
        return -200;
    }
    int64_t score = value_score(v, salt);
    ra_value_free(&v);
    return num + score;
}

// nested_arg reads the references inside argument 0 (an object made by
// ra_put_refs or ra_task_return_refs, given by value) with salt argument
// 1; with a third argument it reads instead the references inside the
// object lent as argument 0 (RA_ARG_BORROW), through ra_get.
static int
nested_arg(ra_task_t *t)
{
    int64_t salt = ra_task_arg_i64(t, 1);
    int64_t score;
    if (ra_task_nargs(t) > 2) {
        ra_ref_t outer;
        ra_value_t *v = NULL;
        int rc = ra_task_arg_ref(t, 0, &outer);
        if (rc == 0) {
            rc = ra_get(outer, 20000, &v);
        }
        score = rc == 0 ? nest_score(v, ra_value_nrefs(v), value_ref_at, salt)
                        : -300;
        ra_value_free(&v);
    } else {
        size_t len = 0;
        const char *p = ra_task_arg(t, 0, &len);
        if (p == NULL || len != 6 || memcmp(p, "shards", 6) != 0) {
            return ra_task_fail(t, "the value is not there");
        }
        ra_ref_t r[2];
        if (ra_task_arg_nrefs(t, 0) != 2 ||
            ra_task_arg_ref_at(t, 0, 0, &r[0]) != 0 ||
            ra_task_arg_ref_at(t, 0, 1, &r[1]) != 0 ||
            ra_task_arg_ref_at(t, 0, 2, &r[0]) != RA_ENOENT ||
            ra_task_arg_nrefs(t, 1) != 0) {
            return ra_task_fail(t, "argument 0 has not its two references");
        }
        ra_value_t *v = NULL;
        int64_t num = 0;
        if (ra_get_i64(r[0], 20000, &num) != 0 ||
            ra_get(r[1], 20000, &v) != 0) {
            ra_value_free(&v);
            return ra_task_fail(t, "a reference inside cannot be read");
        }
        score = num + value_score(v, salt);
        ra_value_free(&v);
    }
    return ra_task_return_i64(t, score);
}
RA_REMOTE_REGISTER(nested_arg)

// make_nest puts the number argument 0 and big(argument 1, salt argument
// 2) here and returns "shards" with both references inside
// (ra_task_return_refs), released here at once.  With a fourth argument
// it returns what ra_task_return_refs says of a reference it lacks.
static int
make_nest(ra_task_t *t)
{
    size_t n = (size_t)ra_task_arg_i64(t, 1);
    int64_t salt = ra_task_arg_i64(t, 2);
    uint8_t *p = malloc(n);
    if (p == NULL) {
        return ra_task_fail(t, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)((i * 7 + (size_t)salt) % 251);
    }
    ra_ref_t r[2];
    int rc = ra_put(&RA_ARG_I64(ra_task_arg_i64(t, 0)), &r[0]);
    if (rc == 0 && (rc = ra_put(&RA_ARG_BYTES(p, n), &r[1])) != 0) {
        ra_release(r[0]);
    }
    free(p);
    if (rc != 0) {
        return rc;
    }
    if (ra_task_nargs(t) > 3) {
        ra_ref_t bad[2] = {r[0], {r[1].node, r[1].proc, r[1].id + 1000}};
        rc = ra_task_return_refs(t, &RA_ARG_BYTES("shards", 6), bad, 2);
        ra_release(r[0]);
        ra_release(r[1]);
        return ra_task_return_i64(t, rc);
    }
    rc = ra_task_return_refs(t, &RA_ARG_BYTES("shards", 6), r, 2);
    ra_release(r[0]);
    ra_release(r[1]);
    return rc;
}
RA_REMOTE_REGISTER(make_nest)

// rogue_borrow sends the owner of the reference lent to it (its core's
// pid is in the lent argument's bytes) malformed RA__T_BORROW messages of
// every length, an unknown operation, a DEL of a borrow that never was,
// and calls about an object that does not exist.  Returns how many of
// those calls were answered with the right error.
static int
rogue_borrow(ra_task_t *t)
{
    ra__lent_t l;
    if (t->view->nargs < 1 || t->view->args[0].kind != RA__VAL_LENT ||
        ra__lent_read(t->view->args[0].data, t->view->args[0].len, &l) != 0) {
        return ra_task_fail(t, "no lent reference");
    }
    ra_runtime_t *rt = ra__g->rt;
    uint8_t junk[64];
    srand((unsigned)l.ref.id);
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (uint8_t)rand();
    }
    size_t lens[] = {0, 1, 3, 9, 17, 64};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        ra_msg_t *m = NULL;
        if (ra_msg_new_bytes(&m, RA__T_BORROW, junk, lens[k]) == 0 &&
            ra_runtime_send(rt, l.core, &m) != 0) {
            ra_msg_unref(&m);
        }
    }
    uint8_t odd[13] = {9};                   // an unknown operation
    uint8_t del[17] = {RA__BORROW_DEL, 0x77, 0x77, 0x77};   // never added
    const uint8_t *bodies[2] = {odd, del};
    size_t blens[2] = {sizeof odd, sizeof del};
    for (int i = 0; i < 2; i++) {
        ra_msg_t *m = NULL;
        if (ra_msg_new_bytes(&m, RA__T_BORROW, bodies[i], blens[i]) == 0 &&
            ra_runtime_send(rt, l.core, &m) != 0) {
            ra_msg_unref(&m);
        }
    }
    // Calls about object 0x777777 (none): GET says lost, ADD says no such
    // object.
    int64_t right = 0;
    ra_ctx_t *scope = NULL;
    if (ra_scope_new(rt, &scope) != 0) {
        return ra_task_fail(t, "no scope");
    }
    for (int op = RA__BORROW_ADD; op <= RA__BORROW_GET; op += 2) {
        ra__wbuf_t b = {0};
        ra__wb_u8(&b, (uint8_t)op);
        ra__wb_u64(&b, 0x777777);
        if (op == RA__BORROW_ADD) {
            ra__wb_u32(&b, ra__g->node);
            ra__wb_u32(&b, ra__g->proc);
        } else {
            ra__wb_u8(&b, 1);
        }
        ra_msg_t *m = NULL, *rep = NULL;
        if (ra__wb_msg(&b, RA__T_BORROW, &m) == 0 &&
            ra_call(scope, l.core, &m, 10000, &rep) == 0) {
            ra__rbuf_t r;
            ra__rb_init(&r, rep);
            int status = (int)ra__rb_u32(&r);
            right += (op == RA__BORROW_ADD && status == RA_ENOENT) ||
                     (op == RA__BORROW_GET && status == RA_EOBJLOST);
        }
        ra_msg_unref(&m);
        ra_msg_unref(&rep);
    }
    // ADDN of the lent object and of one that does not exist: refused
    // whole (the lent one is not left counted: the test sees the store
    // empty at the end); and an ADDN whose count does not match its ids,
    // dropped.
    for (int k = 0; k < 2; k++) {
        ra__wbuf_t b = {0};
        ra__wb_u8(&b, RA__BORROW_ADDN);
        ra__wb_u64(&b, k == 0 ? 2 : 3);
        ra__wb_u32(&b, ra__g->node);
        ra__wb_u32(&b, ra__g->proc);
        ra__wb_u64(&b, l.ref.id);
        ra__wb_u64(&b, 0x777777);
        ra_msg_t *m = NULL, *rep = NULL;
        if (k == 1) {
            if (ra__wb_msg(&b, RA__T_BORROW, &m) == 0 &&
                ra_runtime_send(rt, l.core, &m) != 0) {
                ra_msg_unref(&m);
            }
            continue;
        }
        if (ra__wb_msg(&b, RA__T_BORROW, &m) == 0 &&
            ra_call(scope, l.core, &m, 10000, &rep) == 0) {
            ra__rbuf_t r;
            ra__rb_init(&r, rep);
            right += (int)ra__rb_u32(&r) == RA_ENOENT;
        }
        ra_msg_unref(&m);
        ra_msg_unref(&rep);
    }
    ra_scope_destroy(&scope);
    return ra_task_return_i64(t, right);
}
RA_REMOTE_REGISTER(rogue_borrow)

// A keeper holds a borrowed reference past the call that gave it.
typedef struct keeper {
    ra_ref_t ref;
    bool has;
} keeper_t;

static int
keeper_init(ra_task_t *t)
{
    keeper_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        return RA_ENOMEM;
    }
    ra_task_set_state(t, k);
    return 0;
}

static void
keeper_fini(void *s)
{
    free(s);
}

// keep(ref): ra_borrow it.
static int
keeper_keep(ra_task_t *t)
{
    keeper_t *k = ra_task_state(t);
    ra_ref_t r;
    int rc = ra_task_arg_ref(t, 0, &r);
    if (rc == 0 && (rc = ra_borrow(r)) == 0) {
        k->ref = r;
        k->has = true;
    }
    return ra_task_return_i64(t, rc);
}

// read(salt): the value_score of the kept object.
static int
keeper_read(ra_task_t *t)
{
    keeper_t *k = ra_task_state(t);
    ra_value_t *v = NULL;
    int rc = k->has ? ra_get(k->ref, 20000, &v) : RA_ENOENT;
    if (rc != 0) {
        ra_value_free(&v);
        return ra_task_fail(t, "ra_get of the kept reference: %s",
                            ra_err_name(rc));
    }
    int64_t score = value_score(v, ra_task_arg_i64(t, 0));
    ra_value_free(&v);
    return ra_task_return_i64(t, score);
}

// drop(): ra_release it.
static int
keeper_drop(ra_task_t *t)
{
    keeper_t *k = ra_task_state(t);
    if (k->has) {
        ra_release(k->ref);
        k->has = false;
    }
    return ra_task_return_i64(t, 0);
}

// pid(): its worker's process id.
static int
keeper_pid(ra_task_t *t)
{
    return ra_task_return_i64(t, (int64_t)getpid());
}

static const ra_method_t keeper_methods[] = {
    {"keep", keeper_keep},
    {"read", keeper_read},
    {"drop", keeper_drop},
    {"pid", keeper_pid},
};

static const ra_actor_class_t Keeper = {
    .name = "Keeper",
    .init = keeper_init,
    .fini = keeper_fini,
    .methods = keeper_methods,
    .nmethods = 4,
};
RA_ACTOR_CLASS_REGISTER(Keeper)

// ---- an actor class ----

typedef struct acct {
    int64_t balance;
} acct_t;

static int
acct_init(ra_task_t *t)
{
    acct_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return RA_ENOMEM;
    }
    if (ra_task_arg_i64(t, 0) < 0) {
        free(a);
        return ra_task_fail(t, "negative opening balance");
    }
    a->balance = ra_task_arg_i64(t, 0);
    ra_task_set_state(t, a);
    return 0;
}

static void
acct_fini(void *s)
{
    free(s);
}

static int
acct_deposit(ra_task_t *t)
{
    acct_t *a = ra_task_state(t);
    a->balance += ra_task_arg_i64(t, 0);
    return ra_task_return_i64(t, a->balance);
}

static int
acct_pid(ra_task_t *t)
{
    return ra_task_return_i64(t, (int64_t)getpid());
}

static int
acct_nap(ra_task_t *t)
{
    usleep((useconds_t)ra_task_arg_i64(t, 0) * 1000);
    return ra_task_return_i64(t, ra_task_arg_i64(t, 0));
}

// fetch(ms): submits sleeper(ms) and waits for its result in the method,
// so that the actor's scheduler thread waits in ra_get.
static int
acct_fetch(ra_task_t *t)
{
    ra_ref_t r;
    int64_t x = -1;
    int64_t ms = ra_task_arg_i64(t, 0);
    ra_arg_t args[2] = {RA_ARG_BYTES("", 0), RA_ARG_I64(ms)};
    int rc = ra_remote("sleeper", args, 2, NULL, &r);
    if (rc != 0) {
        return ra_task_fail(t, "submit: %s", ra_err_name(rc));
    }
    rc = ra_get_i64(r, 20000, &x);
    ra_release(r);
    if (rc != 0) {
        return ra_task_fail(t, "get: %s", ra_err_name(rc));
    }
    return ra_task_return_i64(t, x);
}

static const ra_method_t acct_methods[] = {
    {"deposit", acct_deposit},
    {"pid", acct_pid},
    {"nap", acct_nap},
    {"fetch", acct_fetch},
};

static const ra_actor_class_t Account = {
    .name = "Account",
    .init = acct_init,
    .fini = acct_fini,
    .methods = acct_methods,
    .nmethods = 4,
};
RA_ACTOR_CLASS_REGISTER(Account)

// A gate counts the calls inside its method "meet" at once: each waits
// (up to its argument, in ms) until the number given at construction are
// inside together, and returns the most it saw inside.
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t want, inside, peak;
} gate_t;

static int
gate_init(ra_task_t *t)
{
    gate_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->want = ra_task_arg_i64(t, 0);
    ra_task_set_state(t, g);
    return 0;
}

static void
gate_fini(void *s)
{
    gate_t *g = s;
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

static int
gate_meet(ra_task_t *t)
{
    gate_t *g = ra_task_state(t);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    int64_t ms = ra_task_arg_i64(t, 0);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&g->mu);
    g->inside++;
    if (g->inside > g->peak) {
        g->peak = g->inside;
    }
    pthread_cond_broadcast(&g->cv);
    while (g->inside < g->want &&
           pthread_cond_timedwait(&g->cv, &g->mu, &dl) == 0) {
    }
    int64_t peak = g->peak;
    pthread_mutex_unlock(&g->mu);
    // Leave only after the others had their chance to see us inside.
    usleep(20 * 1000);
    pthread_mutex_lock(&g->mu);
    g->inside--;
    pthread_mutex_unlock(&g->mu);
    return ra_task_return_i64(t, peak);
}

static const ra_method_t gate_methods[] = {{"meet", gate_meet}};

static const ra_actor_class_t Gate = {
    .name = "Gate",
    .init = gate_init,
    .fini = gate_fini,
    .methods = gate_methods,
    .nmethods = 1,
};
RA_ACTOR_CLASS_REGISTER(Gate)

// deposit_named runs in a worker: it looks up a named actor and calls it,
// so it exercises the GCS and actor calls from another process.
static int
deposit_named(ra_task_t *t)
{
    ra_actor_t a;
    ra_ref_t r;
    int64_t x;
    int rc = ra_actor_lookup("bank", NULL, &a);
    if (rc != 0) {
        return ra_task_fail(t, "lookup: %s", ra_err_name(rc));
    }
    if ((rc = ra_actor_call(a, "deposit", &RA_ARG_I64(ra_task_arg_i64(t, 0)),
                            1, &r)) != 0) {
        return ra_task_fail(t, "call: %s", ra_err_name(rc));
    }
    if ((rc = ra_get_i64(r, 10000, &x)) != 0) {
        return ra_task_fail(t, "get: %s", ra_err_name(rc));
    }
    ra_release(r);
    return ra_task_return_i64(t, x);
}
RA_REMOTE_REGISTER(deposit_named)

// ---- fixtures ----

static void
start(void)
{
    ra_init_opts_t o = {.num_cpus = 2, .workers = 2, .max_workers = 8};
    RA_CK_OK(ra_init_opts(&o));
}

static void
stop(void)
{
    ra_test_cluster_stop();
}

static char *
marker(const char *name)
{
    static char p[600];
    snprintf(p, sizeof p, "%s/%s", ra_cluster_session_dir(), name);
    return p;
}

// call_i64 calls method of a with args and returns its answer.
static int64_t
call_i64(ra_actor_t a, const char *method, const ra_arg_t *args,
         size_t nargs)
{
    ra_ref_t r;
    int64_t x = -100;
    RA_CK_OK(ra_actor_call(a, method, args, nargs, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ra_release(r);
    return x;
}

// ---- tasks ----

START_TEST(test_cluster_tasks_return_values)
{
    start();
    enum { N = 200 };
    ra_ref_t r[N];
    for (int i = 0; i < N; i++) {
        ra_arg_t args[2] = {RA_ARG_I64(i), RA_ARG_I64(1000)};
        RA_CK_OK(ra_remote("add", args, 2, NULL, &r[i]));
    }
    for (int i = 0; i < N; i++) {
        int64_t x = -1;
        RA_CK_OK(ra_get_i64(r[i], 20000, &x));
        ck_assert_int_eq(x, i + 1000);
        ra_release(r[i]);
    }
    // The value of a released reference is gone.
    RA_CK_ERR(ra_get(r[0], 0, NULL), RA_ENOENT);
    stop();
}
END_TEST

START_TEST(test_cluster_tasks_run_in_worker_processes)
{
    start();
    ra_ref_t r;
    int64_t pid = 0;
    RA_CK_OK(ra_remote("my_pid", NULL, 0, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &pid));
    ck_assert_int_gt(pid, 0);
    ck_assert_int_ne(pid, getpid());
    ck_assert_int_eq(kill((pid_t)pid, 0), 0);
    ra_release(r);
    stop();
    // ra_shutdown stopped the workers.
    RA_CK_WAIT(kill((pid_t)pid, 0) != 0, 5000);
}
END_TEST

START_TEST(test_cluster_bson_and_refs_as_arguments)
{
    start();
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_INT64(&doc, "x", 21);
    ra_ref_t r, a, b, c;
    RA_CK_OK(ra_remote("echo_bson", &RA_ARG_BSON(&doc), 1, NULL, &r));
    bson_destroy(&doc);
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(r, 20000, &v));
    bson_t out;
    bson_iter_t it;
    RA_CK_OK(ra_value_bson(v, &out));
    ck_assert(bson_iter_init_find(&it, &out, "twice"));
    ck_assert_int_eq(bson_iter_int64(&it), 42);
    ra_value_free(&v);
    ra_release(r);
    // A chain: c = (1 + 2) + put(10); a reference to an unfinished task's
    // result is resolved before the dependent task runs.
    ra_arg_t args[2] = {RA_ARG_I64(1), RA_ARG_I64(2)};
    RA_CK_OK(ra_remote("add", args, 2, NULL, &a));
    RA_CK_OK(ra_put(&RA_ARG_I64(10), &b));
    ra_arg_t args2[2] = {RA_ARG_REF(a), RA_ARG_REF(b)};
    RA_CK_OK(ra_remote("add", args2, 2, NULL, &c));
    ra_release(a);   // c still holds it
    int64_t x = 0;
    RA_CK_OK(ra_get_i64(c, 20000, &x));
    ck_assert_int_eq(x, 13);
    RA_CK_OK(ra_get_i64(b, 0, &x));
    ck_assert_int_eq(x, 10);
    ra_release(b);
    ra_release(c);
    stop();
}
END_TEST

START_TEST(test_cluster_errors_are_values)
{
    start();
    ra_ref_t r;
    ra_value_t *v = NULL;
    RA_CK_OK(ra_remote("fails", &RA_ARG_I64(7), 1, NULL, &r));
    RA_CK_ERR(ra_get(r, 20000, &v), RA_ETASK);
    ck_assert_ptr_nonnull(strstr(ra_value_error(v), "bad input 7"));
    ck_assert_ptr_nonnull(strstr(ra_value_error(v), "fails"));
    ra_value_free(&v);
    // A task taking a failed result fails with its error.
    ra_ref_t r2;
    RA_CK_OK(ra_remote("add", (ra_arg_t[]){RA_ARG_REF(r), RA_ARG_I64(1)}, 2,
                       NULL, &r2));
    RA_CK_ERR(ra_get(r2, 20000, &v), RA_ETASK);
    ck_assert_ptr_nonnull(strstr(ra_value_error(v), "bad input 7"));
    ra_value_free(&v);
    ra_release(r);
    ra_release(r2);
    // Unknown functions, impossible resources, bad arguments.
    RA_CK_ERR(ra_remote("no_such_fn", NULL, 0, NULL, &r), RA_ENOENT);
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_cpus = 64;
    RA_CK_ERR(ra_remote("add", NULL, 0, &o, &r), RA_EINFEASIBLE);
    o = RA_TASK_OPTS_INIT;
    o.num_gpus = 1;
    RA_CK_ERR(ra_remote("add", NULL, 0, &o, &r), RA_EINFEASIBLE);
    o = RA_TASK_OPTS_INIT;
    o.num_cpus = -1;
    RA_CK_ERR(ra_remote("add", NULL, 0, &o, &r), RA_EINVAL);
    RA_CK_ERR(ra_remote("add", (ra_arg_t[]){RA_ARG_REF(RA_REF_NIL)}, 1,
                        NULL, &r), RA_ENOENT);
    stop();
    RA_CK_ERR(ra_remote("add", NULL, 0, NULL, &r), RA_ECLOSED);
}
END_TEST

// children_of counts process pid's children ("self": ours) whose name is
// not skip, and adds the children of those that have it: *forked (may be
// NULL) gets how many those were, *servers (may be NULL) how many had it.
static int
children_of(const char *pid, const char *skip, int *forked, int *servers)
{
    char path[96], comm[32];
    int n = 0;
    snprintf(path, sizeof path, "/proc/%s/task", pid);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%.20s/task/%.20s/children", pid,
                 e->d_name);
        FILE *f = fopen(path, "r");
        int child;
        while (f != NULL && fscanf(f, "%d", &child) == 1) {
            snprintf(path, sizeof path, "/proc/%d/comm", child);
            FILE *c = fopen(path, "r");
            bool server = c != NULL && fgets(comm, sizeof comm, c) != NULL &&
                          skip != NULL &&
                          strncmp(comm, skip, strlen(skip)) == 0;
            if (c != NULL) {
                fclose(c);
            }
            if (server) {
                char sub[24];
                snprintf(sub, sizeof sub, "%d", child);
                int k = children_of(sub, NULL, NULL, NULL);
                n += k;
                if (forked != NULL) {
                    *forked += k;
                }
                if (servers != NULL) {
                    (*servers)++;
                }
            } else {
                n++;
            }
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

// count_children counts this process's worker processes: its children,
// but for the workers' fork server ("rayo-forksrv"), whose children (the
// workers it forked) count instead.
static int
count_children(void)
{
    return children_of("self", "rayo-forksrv", NULL, NULL);
}

// fork_servers counts our workers' fork servers (they are named once
// they serve), and forked_workers the workers they forked.
static int
fork_servers(void)
{
    int servers = 0;
    (void)children_of("self", "rayo-forksrv", NULL, &servers);
    return servers;
}

static int
forked_workers(void)
{
    int forked = 0;
    (void)children_of("self", "rayo-forksrv", &forked, NULL);
    return forked;
}

START_TEST(test_cluster_fractional_cpus_share)
{
    start();
    // The first worker started the fork server of this program; once it
    // serves, new workers are forked from it, not executed.
    RA_CK_WAIT(fork_servers() == 1, 30000);
    enum { N = 8 };
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.num_cpus = 0.25;
    ra_ref_t r[N];
    const char *m = marker("gate");
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_remote("gate", &RA_ARG_BYTES(m, strlen(m)), 1, &o,
                           &r[i]));
    }
    // Eight quarter-CPU tasks fill two CPUs exactly: all eight hold a
    // worker at once, and then nothing is left.
    double avail = -1;
    RA_CK_WAIT(ra_cluster_resources(NULL, &avail, NULL, NULL) == 0 &&
                   avail == 0.0, 60000);
    FILE *f = fopen(m, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    for (int i = 0; i < N; i++) {
        int64_t x;
        RA_CK_OK(ra_get_i64(r[i], 60000, &x));
        ck_assert_int_eq(x, 1);
        ra_release(r[i]);
    }
    ck_assert_int_ge(count_children(), N);
    ck_assert_int_ge(forked_workers(), 1);
    // Idle workers above the pool's base size (2) are retired.
    RA_CK_WAIT(count_children() == 2, 30000);
    stop();
}
END_TEST

// ---- failures ----

START_TEST(test_cluster_worker_killed_task_retried)
{
    start();
    int sigs[2] = {SIGKILL, SIGSEGV};
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "die-%d", i);
        const char *m = marker(name);
        ra_arg_t args[2] = {RA_ARG_BYTES(m, strlen(m)), RA_ARG_I64(sigs[i])};
        ra_ref_t r;
        int64_t x = 0;
        RA_CK_OK(ra_remote("die_once", args, 2, NULL, &r));
        RA_CK_OK(ra_get_i64(r, 20000, &x));
        ck_assert_int_eq(x, 42);
        ra_release(r);
    }
    // Without retries the caller gets RA_EWORKER, saying what happened.
    const char *m = marker("die-noretry");
    ra_arg_t args[2] = {RA_ARG_BYTES(m, strlen(m)), RA_ARG_I64(SIGKILL)};
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.max_retries = 0;
    ra_ref_t r;
    ra_value_t *v = NULL;
    RA_CK_OK(ra_remote("die_once", args, 2, &o, &r));
    RA_CK_ERR(ra_get(r, 20000, &v), RA_EWORKER);
    ck_assert_msg(strstr(ra_value_error(v), "killed by signal 9") != NULL,
                  "error text: %s", ra_value_error(v));
    ra_value_free(&v);
    ra_release(r);
    // The pool replaced the dead workers: work still runs.
    RA_CK_OK(ra_remote("add", (ra_arg_t[]){RA_ARG_I64(1), RA_ARG_I64(1)}, 2,
                       NULL, &r));
    int64_t x;
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 2);
    ra_release(r);
    stop();
}
END_TEST

static pid_t
read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f != NULL) {
        if (fscanf(f, "%d", &pid) != 1) {
            pid = 0;
        }
        fclose(f);
    }
    return (pid_t)pid;
}

START_TEST(test_cluster_worker_killed_from_outside)
{
    start();
    const char *m = marker("sleeper-pid");
    ra_arg_t args[2] = {RA_ARG_BYTES(m, strlen(m)), RA_ARG_I64(300)};
    ra_ref_t r;
    RA_CK_OK(ra_remote("sleeper", args, 2, NULL, &r));
    RA_CK_WAIT(read_pid(m) > 0, 10000);
    pid_t victim = read_pid(m);
    unlink(m);
    ck_assert_int_eq(kill(victim, SIGKILL), 0);
    int64_t x = 0;
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 300);
    ck_assert_int_ne(read_pid(m), victim);   // the retry ran elsewhere
    ra_release(r);
    stop();
}
END_TEST

static uint64_t store_objects_become(uint64_t n);

START_TEST(test_cluster_dead_workers_objects_leave_the_store)
{
    // A worker that dies (SIGKILL) cannot release what it owns; its node
    // deletes its objects from the store, which would otherwise keep them
    // for nobody until the node stops.
    start();
    ra_ref_t r;
    int64_t pid = 0;
    RA_CK_OK(ra_remote("put_and_keep", &RA_ARG_I64((int64_t)1 << 20), 1,
                       NULL, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &pid));
    ra_release(r);
    ck_assert_int_gt(pid, 0);
    ck_assert_uint_eq(store_objects_become(1), 1);
    ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
    ck_assert_uint_eq(store_objects_become(0), 0);
    stop();
}
END_TEST

// The embedded cluster's GCS, ended by an exit signal, is restarted in
// place by its supervisor (the same pid): a named actor is found at once
// (the lookup waits out the restart), its node registers again, and work
// goes on.  The driver is in the GCS's own process here.
START_TEST(test_cluster_gcs_restarted_in_place)
{
    start();
    ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
    ao.name = "vault";
    ra_actor_t a, b;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(100), 1, &ao, &a));
    ra_pid_t gcs = ra__g->gcs;
    ra_test_kill_wait(ra__g->rt, gcs);
    RA_CK_OK(ra_actor_lookup("vault", NULL, &b));
    ck_assert(ra_is_alive(ra__g->rt, gcs));
    RA_CK_PID_EQ(ra__g->gcs, gcs);
    ra_ref_t r;
    int64_t v = 0;
    RA_CK_OK(ra_actor_call(b, "deposit", &RA_ARG_I64(5), 1, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &v));
    ck_assert_int_eq(v, 105);
    bool listed = false;
    for (int i = 0; i < 100 && !listed; i++) {
        ra_node_info_t *nodes = NULL;
        size_t n = 0;
        RA_CK_OK(ra_node_list(&nodes, &n));
        listed = n == 1 && nodes[0].alive;
        ra_node_list_free(nodes, n);
        if (!listed) {
            usleep(20000);
        }
    }
    ck_assert_msg(listed, "the node did not register again");
    RA_CK_OK(ra_remote("add", (ra_arg_t[]){RA_ARG_I64(1), RA_ARG_I64(2)}, 2,
                       NULL, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &v));
    ck_assert_int_eq(v, 3);
    stop();
}
END_TEST

// The raylet's supervisor restarts it in place: the same pid; the node's
// workers are stopped with it, so a task that ran there is retried, an
// actor with a restart left comes back from its constructor, an actor
// waiting for a worker gets one, the embedded job's workers start again,
// and the resources all come back.
START_TEST(test_cluster_raylet_restarted_in_place)
{
    start();
    ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
    ao.max_restarts = 1;
    ao.max_task_retries = -1;
    ra_actor_t a;
    ra_ref_t slow;
    int64_t v = 0, wpid = 0;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(100), 1, &ao, &a));
    ck_assert_int_eq(call_i64(a, "deposit", &RA_ARG_I64(5), 1), 105);
    wpid = call_i64(a, "pid", NULL, 0);
    // Two tasks hold both CPUs; a third task and an actor that needs a
    // CPU wait for one at the raylet when it ends (usually: on a slow
    // machine a CPU may have come free, so the actor may restart once).
    const char *m = marker("slow-pid");
    ra_arg_t sargs[2] = {RA_ARG_BYTES(m, strlen(m)), RA_ARG_I64(1500)};
    RA_CK_OK(ra_remote("sleeper", sargs, 2, NULL, &slow));
    RA_CK_WAIT(read_pid(m) > 0, 10000);
    pid_t tpid = read_pid(m);
    unlink(m);
    ra_ref_t more[2];
    for (int i = 0; i < 2; i++) {
        RA_CK_OK(ra_remote("sleeper", (ra_arg_t[]){RA_ARG_STR_EMPTY,
                                                   RA_ARG_I64(1500)},
                           2, NULL, &more[i]));
    }
    ra_actor_opts_t co = RA_ACTOR_OPTS_INIT;
    co.num_cpus = 1;
    co.no_wait = true;
    co.max_restarts = 1;
    co.max_task_retries = -1;
    ra_actor_t c;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(50), 1, &co, &c));
    ra_test_sleep_ms(50);
    ra_pid_t raylet = ra__g->raylet;
    ra_test_kill_wait(ra__g->rt, raylet);
    // The tasks' workers are stopped and the tasks retried; what waited
    // is asked for again.
    RA_CK_OK(ra_get_i64(slow, 30000, &v));
    ck_assert_int_eq(v, 1500);
    ra_release(slow);
    for (int i = 0; i < 2; i++) {
        RA_CK_OK(ra_get_i64(more[i], 30000, &v));
        ck_assert_int_eq(v, 1500);
        ra_release(more[i]);
    }
    ck_assert_int_eq(call_i64(c, "deposit", &RA_ARG_I64(1), 1), 51);
    ck_assert(ra_is_alive(ra__g->rt, raylet));
    RA_CK_PID_EQ(ra__g->raylet, raylet);
    ck_assert_msg(kill(tpid, 0) != 0, "the old worker still runs");
    // The actor came back from its constructor in another worker.
    ck_assert_int_eq(call_i64(a, "deposit", &RA_ARG_I64(1), 1), 101);
    ck_assert_int_ne(call_i64(a, "pid", NULL, 0), wpid);
    // New work and new actors run.
    ra_actor_t b;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(7), 1, NULL, &b));
    ck_assert_int_eq(call_i64(b, "deposit", &RA_ARG_I64(1), 1), 8);
    enum { N = 50 };
    ra_ref_t t[N];
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_remote("add", (ra_arg_t[]){RA_ARG_I64(i),
                                               RA_ARG_I64(2)},
                           2, NULL, &t[i]));
    }
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_get_i64(t[i], 20000, &v));
        ck_assert_int_eq(v, i + 2);
        ra_release(t[i]);
    }
    ra_actor_kill(a);
    ra_actor_kill(b);
    ra_actor_kill(c);
    stop();   // every CPU came back to the new incarnation
}
END_TEST

// The object manager's supervisor restarts it in place: the same pid, it
// answers at once (the call waits out the restart), and large values go
// through the store as before.
START_TEST(test_cluster_objmgr_restarted_in_place)
{
    start();
    ra_pid_t om = ra__g->objmgr;
    ck_assert(!ra_pid_is_nil(om));
    ra_test_kill_wait(ra__g->rt, om);
    ra_transfer_stats_t st;
    RA_CK_OK(ra_transfer_stats(&st));
    ck_assert(ra_is_alive(ra__g->rt, om));
    RA_CK_PID_EQ(ra__g->objmgr, om);
    size_t n = (size_t)1 << 20;
    ra_ref_t r, c;
    RA_CK_OK(ra_remote("big", (ra_arg_t[]){RA_ARG_I64((int64_t)n),
                                           RA_ARG_I64(3)},
                       2, NULL, &r));
    int64_t got = 0;
    RA_CK_OK(ra_remote("check_big", (ra_arg_t[]){RA_ARG_REF(r),
                                                 RA_ARG_I64(3)},
                       2, NULL, &c));
    RA_CK_OK(ra_get_i64(c, 20000, &got));
    ck_assert_int_eq(got, 2 * (int64_t)n + 1);
    ra_release(c);
    ra_release(r);
    stop();
}
END_TEST

START_TEST(test_cluster_deadline_and_cancel)
{
    start();
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.timeout_ms = 100;
    ra_ref_t r;
    ra_value_t *v = NULL;
    uint64_t t0 = ra_test_now_ms();
    RA_CK_OK(ra_remote("sleeper", (ra_arg_t[]){RA_ARG_STR_EMPTY,
                                               RA_ARG_I64(5000)},
                       2, &o, &r));
    RA_CK_ERR(ra_get(r, 20000, &v), RA_ETIMEOUT);
    ck_assert_uint_lt(ra_test_now_ms() - t0, 3000);
    ra_value_free(&v);
    ra_release(r);
    // Cancel: the function sees ra_task_cancelled and stops.
    RA_CK_OK(ra_remote("sleeper", (ra_arg_t[]){RA_ARG_STR_EMPTY,
                                               RA_ARG_I64(5000)},
                       2, NULL, &r));
    ra_test_sleep_ms(50);
    RA_CK_OK(ra_cancel(r, false));
    RA_CK_ERR(ra_get(r, 20000, NULL), RA_ECANCELED);
    RA_CK_ERR(ra_cancel(r, false), RA_EALREADY);
    ra_release(r);
    // A function that ignores it is killed after the grace period.
    o.timeout_ms = 50;
    RA_CK_OK(ra_remote("deaf", &RA_ARG_I64(10000), 1, &o, &r));
    RA_CK_ERR(ra_get(r, 20000, NULL), RA_ETIMEOUT);
    ra_release(r);
    stop();   // resources came back: the deaf worker was killed
}
END_TEST

// ---- actors ----

START_TEST(test_cluster_actor_keeps_state_in_order)
{
    start();
    ra_actor_t a;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(100), 1, NULL, &a));
    enum { N = 500 };
    ra_ref_t r[N];
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &r[i]));
    }
    for (int i = 0; i < N; i++) {
        int64_t x;
        RA_CK_OK(ra_get_i64(r[i], 20000, &x));
        ck_assert_int_eq(x, 101 + i);   // in the order made
        ra_release(r[i]);
    }
    ra_value_t *v = NULL;
    ra_ref_t bad;
    RA_CK_OK(ra_actor_call(a, "withdraw", NULL, 0, &bad));
    RA_CK_ERR(ra_get(bad, 20000, &v), RA_ETASK);
    ck_assert_ptr_nonnull(strstr(ra_value_error(v), "no method"));
    ra_value_free(&v);
    ra_release(bad);
    RA_CK_OK(ra_actor_kill(a));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &bad));
    RA_CK_ERR(ra_get(bad, 20000, NULL), RA_EACTOR);
    ra_release(bad);
    RA_CK_ERR(ra_actor_create("Account", &RA_ARG_I64(-5), 1, NULL, &a),
              RA_ETASK);
    // Without waiting: calls wait for the actor, or fail saying why.
    ra_actor_opts_t nw = RA_ACTOR_OPTS_INIT;
    nw.no_wait = true;
    int64_t x = 0;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(10), 1, &nw, &a));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(5), 1, &bad));
    RA_CK_OK(ra_get_i64(bad, 20000, &x));
    ck_assert_int_eq(x, 15);
    ra_release(bad);
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(-5), 1, &nw, &a));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(5), 1, &bad));
    RA_CK_ERR(ra_get(bad, 20000, &v), RA_EACTOR);
    ck_assert_msg(strstr(ra_value_error(v), "negative opening balance") !=
                      NULL, "error text: %s", ra_value_error(v));
    ra_value_free(&v);
    ra_release(bad);
    RA_CK_ERR(ra_actor_create("NoSuchClass", NULL, 0, NULL, &a), RA_ENOENT);
    stop();
}
END_TEST

// Calls run in the order the caller made them even when an earlier call's
// argument (the result of a task still running) is ready after a later
// call's: the later call waits for it.  A call cancelled while it waits,
// for its argument or behind another, does not hold up the calls after it.
START_TEST(test_cluster_actor_calls_keep_order_across_pending_args)
{
    start();
    ra_actor_t a;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(0), 1, NULL, &a));
    ra_ref_t slow, r1, r2;
    RA_CK_OK(ra_remote("sleeper", (ra_arg_t[]){RA_ARG_STR_EMPTY,
                                               RA_ARG_I64(400)},
                       2, NULL, &slow));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_REF(slow), 1, &r1));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &r2));
    int64_t x1 = -1, x2 = -1;
    RA_CK_OK(ra_get_i64(r2, 20000, &x2));
    RA_CK_OK(ra_get_i64(r1, 20000, &x1));
    ck_assert_int_eq(x1, 400);   // first, though its argument came last
    ck_assert_int_eq(x2, 401);
    ra_release(slow);
    ra_release(r1);
    ra_release(r2);
    // Call 1 waits for a gate; call 2 is ready behind it.  Cancelling
    // call 2, then call 1, lets call 3 run, and the balance shows that
    // neither cancelled call ever ran.
    const char *m = marker("order-gate");
    ra_ref_t g, c1, c2, c3;
    RA_CK_OK(ra_remote("gate", &RA_ARG_BYTES(m, strlen(m)), 1, NULL, &g));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_REF(g), 1, &c1));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1000), 1, &c2));
    RA_CK_OK(ra_cancel(c2, false));
    RA_CK_ERR(ra_get(c2, 20000, NULL), RA_ECANCELED);
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(10), 1, &c3));
    ra_test_sleep_ms(200);
    RA_CK_ERR(ra_get(c3, 0, NULL), RA_ETIMEOUT);   // behind call 1
    RA_CK_OK(ra_cancel(c1, false));
    RA_CK_ERR(ra_get(c1, 20000, NULL), RA_ECANCELED);
    RA_CK_OK(ra_get_i64(c3, 20000, &x1));
    ck_assert_int_eq(x1, 411);
    FILE *f = fopen(m, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    RA_CK_OK(ra_get_i64(g, 60000, &x2));
    ck_assert_int_eq(x2, 1);
    ra_release(c1);
    ra_release(c2);
    ra_release(c3);
    ra_release(g);
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(0), 1, &r1));
    RA_CK_OK(ra_get_i64(r1, 20000, &x1));
    ck_assert_int_eq(x1, 411);   // the gate's answer went nowhere
    ra_release(r1);
    RA_CK_OK(ra_actor_kill(a));
    stop();
}
END_TEST

// A link to a worker holds at most RAYO_LINK_QUEUE_FRAMES unacknowledged
// messages.  Calls made faster than that drains wait in the caller's core,
// in order, and go when there is room: none is lost, none is reordered.
START_TEST(test_cluster_actor_calls_wait_for_a_full_link)
{
    setenv("RAYO_LINK_QUEUE_FRAMES", "256", 1);
    start();
    ra_actor_t a;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(0), 1, NULL, &a));
    enum { N = 5000 };
    static ra_ref_t r[N];
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &r[i]));
    }
    for (int i = 0; i < N; i++) {
        int64_t x = -1;
        RA_CK_OK(ra_get_i64(r[i], 30000, &x));
        ck_assert_int_eq(x, 1 + i);   // each once, in the order made
        ra_release(r[i]);
    }
    RA_CK_OK(ra_actor_kill(a));
    stop();
    unsetenv("RAYO_LINK_QUEUE_FRAMES");
}
END_TEST

// Lightweight actors created in a burst, before any worker is up, wait
// for a worker together: one worker holds them all, so the raylet starts
// none beyond the pool's (it used to start one per waiting actor, up to
// max_workers), and every actor answers.
START_TEST(test_cluster_actor_burst_starts_no_extra_workers)
{
    start();   // 2 workers, at most 8
    enum { N = 2000 };
    static ra_actor_t a[N];
    static ra_ref_t r[N];
    ra_actor_opts_t nw = RA_ACTOR_OPTS_INIT;
    nw.no_wait = true;
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(i), 1, &nw, &a[i]));
    }
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_call(a[i], "deposit", &RA_ARG_I64(1), 1, &r[i]));
    }
    for (int i = 0; i < N; i++) {
        int64_t x = -1;
        RA_CK_OK(ra_get_i64(r[i], 30000, &x));
        ck_assert_int_eq(x, i + 1);
        ra_release(r[i]);
    }
    ra_worker_info_t *w = NULL;
    size_t nw_ = 0;
    RA_CK_OK(ra_worker_list(&w, &nw_));
    free(w);
    ck_assert_msg(nw_ <= 2, "%zu workers for %d lightweight actors", nw_, N);
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_kill(a[i]));
    }
    stop();
}
END_TEST

// Lightweight actors share a worker process and its scheduler threads.
// More of them than it has threads wait at once in ra_get inside a
// method: the process's own actors (the one that receives the results)
// must still run, so every call gets its result.
START_TEST(test_cluster_actors_waiting_in_get_share_a_worker)
{
    start();
    enum { N = 6 };
    ra_actor_t a[N];
    ra_ref_t r[N];
    int64_t pid0 = -1;
    bool shared = false;
    for (int i = 0; i < N; i++) {
        ra_ref_t p;
        int64_t pid = -1;
        RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(0), 1, NULL, &a[i]));
        RA_CK_OK(ra_actor_call(a[i], "pid", NULL, 0, &p));
        RA_CK_OK(ra_get_i64(p, 30000, &pid));
        ra_release(p);
        if (i == 0) {
            pid0 = pid;
        } else if (pid == pid0) {
            shared = true;
        }
    }
    ck_assert_msg(shared, "the actors did not share a worker process");
    uint64_t t0 = ra_test_now_ms();
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_call(a[i], "fetch", &RA_ARG_I64(300), 1, &r[i]));
    }
    for (int i = 0; i < N; i++) {
        int64_t x = -1;
        RA_CK_OK(ra_get_i64(r[i], 30000, &x));
        ck_assert_int_eq(x, 300);
        ra_release(r[i]);
    }
    uint64_t took = ra_test_now_ms() - t0;
    ck_assert_msg(took < 15000, "%d fetches took %llu ms", N,
                  (unsigned long long)took);
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_kill(a[i]));
    }
    stop();
}
END_TEST

START_TEST(test_cluster_actor_max_concurrency)
{
    // Four calls to an actor with max_concurrency 4 are inside its method
    // together; with the default (one at a time) never more than one.
    start();
    enum { N = 4 };
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    o.max_concurrency = N;
    ra_actor_t a, b;
    RA_CK_OK(ra_actor_create("Gate", &RA_ARG_I64(N), 1, &o, &a));
    RA_CK_OK(ra_actor_create("Gate", &RA_ARG_I64(N), 1, NULL, &b));
    ra_ref_t ra[N], rb[N];
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_actor_call(a, "meet", &RA_ARG_I64(10000), 1, &ra[i]));
        RA_CK_OK(ra_actor_call(b, "meet", &RA_ARG_I64(50), 1, &rb[i]));
    }
    for (int i = 0; i < N; i++) {
        int64_t x;
        RA_CK_OK(ra_get_i64(ra[i], 30000, &x));
        ck_assert_int_eq(x, N);
        RA_CK_OK(ra_get_i64(rb[i], 30000, &x));
        ck_assert_int_eq(x, 1);
        ra_release(ra[i]);
        ra_release(rb[i]);
    }
    // Killed while calls run: they finish, later ones fail, nothing hangs.
    ra_ref_t slow;
    RA_CK_OK(ra_actor_call(a, "meet", &RA_ARG_I64(300), 1, &slow));
    RA_CK_OK(ra_actor_kill(a));
    ra_value_t *v = NULL;
    int rc = ra_get(slow, 30000, &v);
    ck_assert_msg(rc == 0 || rc == RA_EACTOR, "%s", ra_err_name(rc));
    ra_value_free(&v);
    ra_release(slow);
    RA_CK_OK(ra_actor_kill(b));
    o.max_concurrency = -1;
    RA_CK_ERR(ra_actor_create("Gate", &RA_ARG_I64(1), 1, &o, &a), RA_EINVAL);
    o.max_concurrency = 1001;
    RA_CK_ERR(ra_actor_create("Gate", &RA_ARG_I64(1), 1, &o, &a), RA_EINVAL);
    stop();
}
END_TEST

// each_record calls fn on every record of the GCS's actor table (a raw
// ACTOR_LIST from scope, NULL: from a scope of its own), with the actor
// key the owner gave it (the table key's last 8 bytes).
static void
each_record(ra_ctx_t *scope,
            void (*fn)(void *user, uint64_t akey, const ra__actor_rec_t *a),
            void *user)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_ACTOR_LIST);
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    RA_CK_OK(ra__gcs_call_status(scope, &b, 30000, &rep, &r));
    uint32_t n = ra__rb_u32(&r);
    for (uint32_t i = 0; i < n && !r.bad; i++) {
        ra_oid_t key;
        ra__rb_oid(&r, &key);
        size_t len = 0;
        const void *p = ra__rb_bytes(&r, &len);
        ra__rbuf_t x = {.p = p, .len = len};
        ra__actor_rec_t rec;
        uint64_t akey = 0;
        for (int k = 8; k < 16; k++) {
            akey = akey << 8 | key.b[k];
        }
        if (ra__rb_actor_rec(&x, &rec) == 0) {
            fn(user, akey, &rec);
        }
    }
    ck_assert(!r.bad);
    ra_msg_unref(&rep);
}

typedef struct named_inst {
    const char *name;
    ra_pid_t pid;
} named_inst_t;

static void
find_named(void *user, uint64_t akey, const ra__actor_rec_t *a)
{
    (void)akey;
    named_inst_t *f = user;
    if (strcmp(a->name, f->name) == 0) {
        f->pid = a->pid;
    }
}

// instance_of returns the instance pid the GCS's actor table holds for
// the actor named name (raw ACTOR_LIST: ra_actor_info_t has no slot).
static ra_pid_t
instance_of(const char *name)
{
    named_inst_t f = {name, RA_PID_NIL};
    each_record(NULL, find_named, &f);
    return f.pid;
}

// wait_actor reads the GCS's actor table until the actor named name is in
// state (owners report without waiting), up to 5 s, and returns its
// record (a copy; zeroed with state -1 when it never was).
static ra_actor_info_t
wait_actor(const char *name, ra_actor_state_t state)
{
    ra_actor_info_t got;
    memset(&got, 0, sizeof got);
    got.state = (ra_actor_state_t)-1;
    for (int i = 0; i < 500 && got.state != state; i++) {
        ra_actor_info_t *as = NULL;
        size_t n = 0;
        RA_CK_OK(ra_actor_list(&as, &n));
        for (size_t j = 0; j < n; j++) {
            if (strcmp(as[j].name, name) == 0) {
                got = as[j];
            }
        }
        free(as);
        if (got.state != state) {
            usleep(10 * 1000);
        }
    }
    return got;
}

START_TEST(test_cluster_dead_actors_are_bounded)
{
    // With RAYO_GCS_MAX_DEAD_ACTORS=5 the GCS keeps the 5 (and at most a
    // tenth, here 1, more) actors that ended last; live ones all stay.
    setenv("RAYO_GCS_MAX_DEAD_ACTORS", "5", 1);
    start();
    unsetenv("RAYO_GCS_MAX_DEAD_ACTORS");
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    o.name = "survivor";
    ra_actor_t live;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(1), 1, &o, &live));
    enum { N = 12 };
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "d%d", i);
        o.name = name;
        ra_actor_t a;
        RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(1), 1, &o, &a));
        RA_CK_OK(ra_actor_kill(a));
        ra_actor_info_t x = wait_actor(name, RA_ACTOR_DEAD);
        ck_assert_int_eq(x.state, RA_ACTOR_DEAD);
    }
    ra_actor_info_t *as = NULL;
    size_t n = 0, dead = 0;
    bool first = false, last = false, survivor = false;
    RA_CK_OK(ra_actor_list(&as, &n));
    for (size_t i = 0; i < n; i++) {
        dead += as[i].state == RA_ACTOR_DEAD;
        first |= strcmp(as[i].name, "d0") == 0;
        last |= strcmp(as[i].name, "d11") == 0;
        survivor |= strcmp(as[i].name, "survivor") == 0 &&
                    as[i].state == RA_ACTOR_ALIVE;
    }
    free(as);
    ck_assert_msg(dead >= 5 && dead <= 6, "%zu dead records", dead);
    ck_assert(!first);
    ck_assert(last);
    ck_assert(survivor);
    stop();
}
END_TEST

// put_record sends the GCS an owner's report for actor akey (no answer).
static void
put_record(ra_ctx_t *scope, uint64_t akey, uint8_t state, const char *why)
{
    ra__actor_rec_t r;
    memset(&r, 0, sizeof r);
    r.state = state;
    snprintf(r.cls, sizeof r.cls, "Burst");
    snprintf(r.reason, sizeof r.reason, "%s", why);
    r.pid = RA_PID_NIL;
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_ACTOR_PUT);
    ra__wb_u64(&b, akey);
    ra__wb_actor_rec(&b, &r);
    ra_msg_t *m = NULL;
    RA_CK_OK(ra__wb_msg(&b, RA__T_GCS, &m));
    RA_CK_OK(ra_send(scope, ra__gcs_pid(ra__g), &m));
}

enum { BURST_N = 5000, BURST_BASE = 1000000 };

typedef struct burst {
    unsigned alive, dead, wrong;
} burst_t;

// count_burst counts the records put_record made: the odd ones must be
// DEAD "burst over", the even ones ALIVE.
static void
count_burst(void *user, uint64_t akey, const ra__actor_rec_t *a)
{
    burst_t *t = user;
    if (strcmp(a->cls, "Burst") != 0) {
        return;
    }
    bool odd = (akey - BURST_BASE) % 2 == 1;
    if (akey < BURST_BASE || akey >= BURST_BASE + BURST_N) {
        t->wrong++;
    } else if (odd && a->state == RA__ACTOR_DEAD &&
               strcmp(a->reason, "burst over") == 0 && a->end_ms > 0) {
        t->dead++;
    } else if (!odd && a->state == RA__ACTOR_ALIVE) {
        t->alive++;
    } else {
        t->wrong++;
    }
}

START_TEST(test_cluster_actor_records_batched)
{
    // The GCS commits actor records in batches (gcs_actors.c): reports
    // sent back to back, more than one batch holds, are all in a list
    // asked for right behind them, each with the newest state reported.
    start();
    ra_ctx_t *scope = NULL;
    RA_CK_OK(ra_scope_new(ra__g->rt, &scope));
    for (uint64_t i = 0; i < BURST_N; i++) {
        put_record(scope, BURST_BASE + i, RA__ACTOR_ALIVE, "");
    }
    for (uint64_t i = 1; i < BURST_N; i += 2) {
        put_record(scope, BURST_BASE + i, RA__ACTOR_DEAD, "burst over");
    }
    burst_t t = {0};
    each_record(scope, count_burst, &t);
    ck_assert_uint_eq(t.wrong, 0);
    ck_assert_uint_eq(t.alive, BURST_N / 2);
    ck_assert_uint_eq(t.dead, BURST_N / 2);
    ra_scope_destroy(&scope);
    stop();
}
END_TEST

// wait_task reads the GCS's task table until the task named name is in
// state (owners report in batches), up to 5 s, and returns its record
// (state -1 when it never was).
static ra_task_info_t
wait_task(const char *name, ra_task_status_t state)
{
    ra_task_info_t got;
    memset(&got, 0, sizeof got);
    got.state = (ra_task_status_t)-1;
    for (int i = 0; i < 500 && got.state != state; i++) {
        ra_task_info_t *ts = NULL;
        size_t n = 0;
        RA_CK_OK(ra_task_list(0, &ts, &n));
        for (size_t j = 0; j < n; j++) {
            if (strcmp(ts[j].name, name) == 0) {
                got = ts[j];
            }
        }
        free(ts);
        if (got.state != state) {
            usleep(10 * 1000);
        }
    }
    return got;
}

START_TEST(test_cluster_task_table)
{
    // The GCS's task table (rayo list tasks): a task RUNNING on a worker,
    // then FINISHED; a failed one FAILED with its error; only the newest
    // RAYO_GCS_MAX_TASKS are kept.
    setenv("RAYO_GCS_MAX_TASKS", "50", 1);
    setenv("RAYO_TASK_EVENTS", "all", 1);   // actor method calls too
    start();
    unsetenv("RAYO_GCS_MAX_TASKS");
    unsetenv("RAYO_TASK_EVENTS");
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    o.name = "held";
    char *m = marker("open-held");
    ra_ref_t r;
    RA_CK_OK(ra_remote("gate", &RA_ARG_BYTES(m, strlen(m)), 1, &o, &r));
    ra_task_info_t x = wait_task("held", RA_TASK_RUNNING);
    ck_assert_str_eq(ra_task_status_name(x.state), "RUNNING");
    ck_assert_str_eq(x.func, "gate");
    ck_assert_uint_eq(x.owner_proc, (uint32_t)getpid());
    ck_assert_uint_eq(x.id, r.id);
    ck_assert_uint_ne(x.proc, 0);
    ck_assert_uint_ne(x.proc, (uint32_t)getpid());   // a worker's
    ck_assert_int_gt(x.submit_ms, 0);
    ck_assert_int_ge(x.start_ms, x.submit_ms);
    FILE *f = fopen(m, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    int64_t v = 0;
    RA_CK_OK(ra_get_i64(r, 60000, &v));
    ck_assert_int_eq(v, 1);
    ra_release(r);
    x = wait_task("held", RA_TASK_FINISHED);
    ck_assert_str_eq(ra_task_status_name(x.state), "FINISHED");
    ck_assert_int_ge(x.end_ms, x.start_ms);
    ck_assert_str_eq(x.error, "");
    // A failure, with its error.
    o.name = "broken";
    o.max_retries = 0;
    RA_CK_OK(ra_remote("fails", &RA_ARG_I64(7), 1, &o, &r));
    RA_CK_ERR(ra_get(r, 60000, NULL), RA_ETASK);
    ra_release(r);
    x = wait_task("broken", RA_TASK_FAILED);
    ck_assert_str_eq(ra_task_status_name(x.state), "FAILED");
    ck_assert_msg(strstr(x.error, "bad input 7") != NULL, "error: %s",
                  x.error);
    // An actor's method calls are tasks too (RAYO_TASK_EVENTS=all),
    // Class.method, RUNNING on the actor's worker.
    ra_actor_t acct;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(1), 1, NULL, &acct));
    RA_CK_OK(ra_actor_call(acct, "pid", NULL, 0, &r));
    int64_t apid = 0;
    RA_CK_OK(ra_get_i64(r, 60000, &apid));
    ra_release(r);
    bool seen = false;
    for (int i = 0; i < 500 && !seen; i++) {
        ra_task_info_t *all = NULL;
        size_t na = 0;
        RA_CK_OK(ra_task_list(0, &all, &na));
        for (size_t j = 0; j < na; j++) {
            seen |= strcmp(all[j].func, "Account.pid") == 0 &&
                    all[j].state == RA_TASK_FINISHED &&
                    all[j].proc == (uint32_t)apid;
        }
        free(all);
        if (!seen) {
            usleep(10 * 1000);
        }
    }
    ck_assert_msg(seen, "no FINISHED Account.pid on worker %lld",
                  (long long)apid);
    RA_CK_OK(ra_actor_kill(acct));
    // 200 more: the table keeps the newest 50, oldest first.
    enum { N = 200 };
    ra_ref_t refs[N];
    char names[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "n%d", i);
        o.name = names[i];
        ra_arg_t args[2] = {RA_ARG_I64(i), RA_ARG_I64(1)};
        RA_CK_OK(ra_remote("add", args, 2, &o, &refs[i]));
    }
    for (int i = 0; i < N; i++) {
        RA_CK_OK(ra_get_i64(refs[i], 60000, &v));
        ra_release(refs[i]);
    }
    x = wait_task("n199", RA_TASK_FINISHED);
    ra_task_info_t *ts = NULL;
    size_t n = 0;
    RA_CK_OK(ra_task_list(0, &ts, &n));
    ck_assert_int_eq(x.state, RA_TASK_FINISHED);
    ck_assert_uint_eq(n, 50);
    ck_assert_str_eq(ts[0].name, "n150");
    ck_assert_str_eq(ts[49].name, "n199");
    for (size_t i = 1; i < n; i++) {
        ck_assert_uint_gt(ts[i].id, ts[i - 1].id);
    }
    free(ts);
    RA_CK_OK(ra_task_list(3, &ts, &n));
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(ts[0].name, "n197");
    free(ts);
    RA_CK_ERR(ra_task_list(0, NULL, &n), RA_EINVAL);
    stop();
    RA_CK_ERR(ra_task_list(0, &ts, &n), RA_ECLOSED);
}
END_TEST

START_TEST(test_cluster_actor_table)
{
    // The GCS records each actor: ALIVE with where it runs once up, DEAD
    // with why after a kill or a failed constructor.
    start();
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    o.name = "listed";
    ra_actor_t a;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(1), 1, &o, &a));
    ra_ref_t r;
    RA_CK_OK(ra_actor_call(a, "pid", NULL, 0, &r));
    int64_t pid = 0;
    RA_CK_OK(ra_get_i64(r, 20000, &pid));
    ra_release(r);
    ra_actor_info_t x = wait_actor("listed", RA_ACTOR_ALIVE);
    ck_assert_str_eq(ra_actor_state_name(x.state), "ALIVE");
    ck_assert_str_eq(x.cls, "Account");
    ck_assert_int_eq((int64_t)x.proc, pid);
    ck_assert_uint_eq(x.owner_proc, (uint32_t)getpid());
    ck_assert_int_eq(x.end_ms, 0);
    RA_CK_OK(ra_actor_kill(a));
    x = wait_actor("listed", RA_ACTOR_DEAD);
    ck_assert_str_eq(ra_actor_state_name(x.state), "DEAD");
    ck_assert_msg(strstr(x.reason, "kill") != NULL, "reason: %s", x.reason);
    ck_assert_int_ge(x.end_ms, x.start_ms);
    // A constructor that fails: DEAD, saying so.
    o.name = "refused";
    RA_CK_ERR(ra_actor_create("Account", &RA_ARG_I64(-1), 1, &o, &a),
              RA_ETASK);
    x = wait_actor("refused", RA_ACTOR_DEAD);
    ck_assert_str_eq(ra_actor_state_name(x.state), "DEAD");
    ck_assert_msg(strstr(x.reason, "negative opening balance") != NULL,
                  "reason: %s", x.reason);
    // An instance whose end the GCS sees before the word of its killer
    // (they come on different connections): the kill, reported late,
    // still names the killer.  Here the worker is killed by the OS first.
    o.name = "overtaken";
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(1), 1, &o, &a));
    RA_CK_OK(ra_actor_call(a, "pid", NULL, 0, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &pid));
    ra_release(r);
    x = wait_actor("overtaken", RA_ACTOR_ALIVE);
    ck_assert_int_eq(x.state, RA_ACTOR_ALIVE);
    ra_pid_t inst = instance_of("overtaken");
    ck_assert_uint_eq(inst.proc, (uint32_t)pid);
    ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
    x = wait_actor("overtaken", RA_ACTOR_DEAD);
    ck_assert_int_eq(x.state, RA_ACTOR_DEAD);
    ck_assert_msg(strstr(x.reason, "killed by process") == NULL,
                  "reason: %s", x.reason);
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_ACTOR_KILLED);
    ra__wb_pid(&b, inst);
    ra_msg_t *rep = NULL;
    ra__rbuf_t rr;
    RA_CK_OK(ra__gcs_call_status(NULL, &b, 10000, &rep, &rr));
    ra_msg_unref(&rep);
    x = wait_actor("overtaken", RA_ACTOR_DEAD);
    ck_assert_msg(strstr(x.reason, "killed by process") != NULL,
                  "reason: %s", x.reason);
    // A kill of an instance the GCS never saw is refused.
    inst.gen += 1000;
    b = (ra__wbuf_t){0};
    ra__wb_u8(&b, RA__GCS_ACTOR_KILLED);
    ra__wb_pid(&b, inst);
    RA_CK_ERR(ra__gcs_call_status(NULL, &b, 10000, &rep, &rr), RA_ENOENT);
    ra_actor_info_t *as = NULL;
    size_t n = 0;
    RA_CK_ERR(ra_actor_list(NULL, &n), RA_EINVAL);
    stop();
    RA_CK_ERR(ra_actor_list(&as, &n), RA_ECLOSED);
}
END_TEST

START_TEST(test_cluster_actor_call_deadline)
{
    start();
    ra_actor_t a;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(0), 1, NULL, &a));
    ra_call_opts_t o = {.timeout_ms = 100};
    ra_ref_t r, r2;
    uint64_t t0 = ra_test_now_ms();
    RA_CK_OK(ra_actor_call_opts(a, "nap", &RA_ARG_I64(1500), 1, &o, &r));
    RA_CK_ERR(ra_get(r, 20000, NULL), RA_ETIMEOUT);
    ck_assert_uint_lt(ra_test_now_ms() - t0, 1400);
    ra_release(r);
    // The actor is fine: the next call runs once the nap is over.
    int64_t x = 0;
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(4), 1, &r2));
    RA_CK_OK(ra_get_i64(r2, 20000, &x));
    ck_assert_int_eq(x, 4);
    ra_release(r2);
    o.timeout_ms = -1;
    RA_CK_ERR(ra_actor_call_opts(a, "nap", NULL, 0, &o, &r), RA_EINVAL);
    stop();
}
END_TEST

START_TEST(test_cluster_actor_restarts_after_kill9)
{
    start();
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    o.max_restarts = 1;
    o.max_task_retries = -1;
    o.name = "phoenix";
    ra_actor_t a, b;
    ra_ref_t r;
    int64_t pid = 0, x = 0;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(5), 1, &o, &a));
    // b: a handle looked up by name, as another program would.
    RA_CK_OK(ra_actor_lookup("phoenix", NULL, &b));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 6);
    ra_release(r);
    RA_CK_OK(ra_actor_call(a, "pid", NULL, 0, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &pid));
    ra_release(r);
    ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
    // Restarted from its constructor (state is not kept: 5 + 1 again),
    // and the call is retried on the new instance.
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 6);
    ra_release(r);
    RA_CK_OK(ra_actor_call(a, "pid", NULL, 0, &r));
    int64_t pid2 = 0;
    RA_CK_OK(ra_get_i64(r, 20000, &pid2));
    ck_assert_int_ne(pid2, pid);
    ra_release(r);
    // The looked-up handle found the new instance through its name.
    int64_t pidb = 0;
    RA_CK_OK(ra_actor_call(b, "pid", NULL, 0, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &pidb));
    ck_assert_int_eq(pidb, pid2);
    ra_release(r);
    // Its one restart is used up: the next death is final.
    ck_assert_int_eq(kill((pid_t)pid2, SIGKILL), 0);
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &r));
    ra_value_t *v = NULL;
    RA_CK_ERR(ra_get(r, 20000, &v), RA_EACTOR);
    ck_assert_msg(strstr(ra_value_error(v), "signal 9") != NULL,
                  "error text: %s", ra_value_error(v));
    ra_value_free(&v);
    ra_release(r);
    // ... for the looked-up handle too: its owner released the name.
    RA_CK_OK(ra_actor_call(b, "pid", NULL, 0, &r));
    RA_CK_ERR(ra_get(r, 20000, &v), RA_EACTOR);
    ck_assert_msg(strstr(ra_value_error(v), "ended for good") != NULL,
                  "error text: %s", ra_value_error(v));
    ra_value_free(&v);
    ra_release(r);
    stop();
}
END_TEST

START_TEST(test_cluster_named_actor_from_another_process)
{
    start();
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    o.name = "bank";
    ra_actor_t a, b;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(0), 1, &o, &a));
    RA_CK_ERR(ra_actor_create("Account", &RA_ARG_I64(0), 1, &o, &b),
              RA_EEXIST);
    ra_ref_t r;
    int64_t x = 0;
    RA_CK_OK(ra_remote("deposit_named", &RA_ARG_I64(7), 1, NULL, &r));
    ra_value_t *v = NULL;
    int rc = ra_get(r, 20000, &v);
    ck_assert_msg(rc == 0, "deposit_named: %s: %s", ra_err_name(rc),
                  ra_value_error(v));
    ck_assert_int_eq(ra_value_i64(v), 7);
    ra_value_free(&v);
    ra_release(r);
    RA_CK_OK(ra_actor_lookup("bank", NULL, &b));
    RA_CK_OK(ra_actor_call(b, "deposit", &RA_ARG_I64(3), 1, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 10);
    ra_release(r);
    RA_CK_ERR(ra_actor_lookup("bank", "other-namespace", &b), RA_ENOENT);
    RA_CK_ERR(ra_actor_lookup("nobody", NULL, &b), RA_ENOENT);
    // Killed, its name is free again.
    RA_CK_OK(ra_actor_kill(a));
    RA_CK_OK(ra_actor_call(a, "deposit", &RA_ARG_I64(1), 1, &r));
    RA_CK_ERR(ra_get(r, 20000, NULL), RA_EACTOR);
    ra_release(r);
    RA_CK_ERR(ra_actor_lookup("bank", NULL, &b), RA_ENOENT);
    stop();
}
END_TEST

START_TEST(test_cluster_survives_malformed_messages)
{
    start();
    ra_actor_opts_t o = RA_ACTOR_OPTS_INIT;
    o.name = "survivor";
    ra_actor_t a;
    RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(1), 1, &o, &a));
    ra_ref_t r;
    int64_t x = 0;
    uint64_t seed = ra_test_now_ns();
    printf("test_cluster_survives_malformed_messages: seed %" PRIu64 "\n",
           seed);
    RA_CK_OK(ra_remote("rogue", &RA_ARG_I64((int64_t)seed), 1, NULL, &r));
    ra_value_t *v = NULL;
    int rc = ra_get(r, 60000, &v);
    ck_assert_msg(rc == 0, "rogue: %s %s", ra_err_name(rc),
                  ra_value_error(v));
    // 21 tags x 6 lengths x 2 actors, and the GCS answered the call.
    ck_assert_int_eq(ra_value_i64(v), 21 * 6 * 2 + 1);
    ra_value_free(&v);
    ra_release(r);
    // Everything still works: tasks, the GCS, the actor.
    RA_CK_OK(ra_remote("add", (ra_arg_t[]){RA_ARG_I64(2), RA_ARG_I64(3)}, 2,
                       NULL, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 5);
    ra_release(r);
    ra_actor_t b;
    RA_CK_OK(ra_actor_lookup("survivor", NULL, &b));
    RA_CK_OK(ra_actor_call(b, "deposit", &RA_ARG_I64(1), 1, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 2);
    ra_release(r);
    stop();
}
END_TEST

// pull_status calls this node's object manager with a PULL of n bytes of
// wire (the caller's own process named as the watcher) and answers the
// status of its PULLED reply, or the call's error.
static int
pull_status(const uint8_t *wire, size_t n)
{
    ra_msg_t *rep = NULL;
    int rc = ra_test_call_bytes(ra__g->rt, ra__g->objmgr, RA__T_OBJ, wire, n,
                                &rep);
    uint64_t req;
    ra_oid_t oid;
    char text[200];
    if (rc == 0) {
        RA_CK_OK(ra__pulled_read(rep, &req, &oid, &rc, text, sizeof text));
    }
    ra_msg_unref(&rep);
    return rc;
}

START_TEST(test_cluster_objmgr_answers_malformed_pulls)
{
    // A PULL call that is cut short, or that names a watcher in another
    // process, is answered RA_EBADMSG at once instead of left waiting.
    start();
    ra__objloc_t loc = {.objmgr = ra__g->objmgr, .size = 1 << 20};
    loc.oid.b[0] = 7;
    ra_pid_t other = {ra__g->node, ra__g->proc + 1, 1, 0};
    ra_msg_t *m = NULL;
    RA_CK_OK(ra__pull_msg(0, &loc, 0, other, &m));
    size_t n = 0;
    const uint8_t *wire = ra_msg_data(m, &n);
    ck_assert_int_eq(pull_status(wire, n), RA_EBADMSG);
    ck_assert_int_eq(pull_status(wire, 9), RA_EBADMSG);
    ra_msg_unref(&m);
    // The object manager still serves: a well-formed PULL of an object
    // that is here already takes a reference for our core, and our
    // UNUSE gives it back, so the object goes with our release.
    uint8_t *buf = calloc(1, (size_t)1 << 20);
    ck_assert_ptr_nonnull(buf);
    ra_ref_t obj;
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, (size_t)1 << 20), &obj));
    free(buf);
    ra__oid_make(loc.oid.b, obj.node, obj.proc, obj.id);
    RA_CK_OK(ra__pull_msg(0, &loc, 0, ra__g->core, &m));
    wire = ra_msg_data(m, &n);
    ck_assert_int_eq(pull_status(wire, n), 0);
    ra_msg_unref(&m);
    ra_objstore_info_t info;
    RA_CK_OK(ra_objstore_info(ra__g->store, loc.oid, &info));
    ck_assert_uint_eq(info.refs, 2);
    RA_CK_OK(ra__unuse_msg(loc.oid, ra__g->core, &m));
    RA_CK_OK(ra_runtime_send(ra__g->rt, ra__g->objmgr, &m));
    RA_CK_WAIT(ra_objstore_info(ra__g->store, loc.oid, &info) == 0 &&
               info.refs == 1, 5000);
    ra_release(obj);
    ck_assert_uint_eq(store_objects_become(0), 0);
    stop();
}
END_TEST

// file_has tells whether the file at path contains s.
static bool
file_has(const char *path, const char *s)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, s) != NULL;
}

START_TEST(test_cluster_worker_output_prefixed_and_logged)
{
    // Workers inherit the driver's stdout: make it a file to read back.
    char out[] = "/tmp/rayo-test-out-XXXXXX";
    int fd = mkstemp(out);
    ck_assert_int_ge(fd, 0);
    fflush(stdout);
    int saved = dup(1);
    ck_assert_int_eq(dup2(fd, 1), 1);
    close(fd);
    start();
    ra_ref_t r;
    int64_t pid = 0;
    RA_CK_OK(ra_remote("say", &RA_ARG_I64(7), 1, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &pid));
    ra_release(r);
    char want[64], path[700];
    snprintf(want, sizeof want, "(pid=%lld) hello 7", (long long)pid);
    RA_CK_WAIT(file_has(out, want), 10000);
    snprintf(path, sizeof path, "%s/logs/worker-%lld.out",
             ra_cluster_session_dir(), (long long)pid);
    RA_CK_WAIT(file_has(path, "hello 7\n"), 10000);
    snprintf(path, sizeof path, "%s/logs/worker-%lld.err",
             ra_cluster_session_dir(), (long long)pid);
    RA_CK_WAIT(file_has(path, "oops 7\n"), 10000);
    stop();
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    unlink(out);
}
END_TEST

START_TEST(test_cluster_runtime_env_libraries)
{
    // The plugin sits beside this test's binary (libtool's .libs).
    char *exe = realpath("/proc/self/exe", NULL);
    ck_assert_ptr_nonnull(exe);
    char lib[700];
    snprintf(lib, sizeof lib, "%.*s/taskplugin.so",
             (int)(strrchr(exe, '/') - exe), exe);
    free(exe);
    ra_ref_t r;
    RA_CK_ERR(ra_remote("plugin_triple", NULL, 0, NULL, &r), RA_ECLOSED);
    const char *bad[] = {"/nonexistent/plugin.so", NULL};
    ra_init_opts_t o = {.num_cpus = 2, .workers = 2, .libs = bad};
    RA_CK_ERR(ra_init_opts(&o), RA_ENOENT);
    const char *libs[] = {lib, NULL};
    o.libs = libs;
    RA_CK_OK(ra_init_opts(&o));
    int64_t x = 0;
    RA_CK_OK(ra_remote("plugin_triple", &RA_ARG_I64(14), 1, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 20000, &x));
    ck_assert_int_eq(x, 42);
    ra_release(r);
    stop();
}
END_TEST

START_TEST(test_cluster_nested_tasks_lend_their_cpus)
{
    start();
    // Two tasks take both CPUs and wait for subtasks that need a CPU each:
    // they only finish because a waiting task lends its CPU.
    ra_ref_t r[2];
    for (int i = 0; i < 2; i++) {
        RA_CK_OK(ra_remote("fan", &RA_ARG_I64(8), 1, NULL, &r[i]));
    }
    for (int i = 0; i < 2; i++) {
        ra_value_t *v = NULL;
        int rc = ra_get(r[i], 60000, &v);
        ck_assert_msg(rc == 0, "fan: %s %s", ra_err_name(rc),
                      ra_value_error(v));
        ck_assert_int_eq(ra_value_i64(v), 28);
        ra_value_free(&v);
        ra_release(r[i]);
    }
    stop();
}
END_TEST

// in_shm tells whether p lies in a mapping of a file in /dev/shm.
static bool
in_shm(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512], path[256];
    unsigned long a, b;
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL) {
        path[0] = '\0';
        if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %255s", &a, &b, path) >=
                2 &&
            (unsigned long)p >= a && (unsigned long)p < b) {
            found = strncmp(path, "/dev/shm/", 9) == 0;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return found;
}

static bool
big_ok(const ra_value_t *v, size_t n, int64_t salt)
{
    size_t len;
    const uint8_t *p = ra_value_data(v, &len);
    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] != (uint8_t)((i * 7 + (size_t)salt) % 251)) {
            return false;
        }
    }
    return true;
}

START_TEST(test_cluster_second_pull_answer_keeps_the_copy)
{
    // A core that asks a restarted object manager again for a copy can
    // get two answers: the first incarnation's, on its way when it ended,
    // and the new one's, each with a reference taken for it.  The second
    // must give its reference back and leave the copy, which the core's
    // record names and its reader maps.  (It once deleted the copy: a
    // driver's ra_get then found "the object was lost from the node's
    // object store".)  Here the object is a put of ours and the second
    // answer is sent by hand, as the object manager would.
    start();
    size_t n = (size_t)1 << 20;
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)((i * 7 + 5) % 251);
    }
    ra_ref_t obj;
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &obj));
    free(buf);
    ra_oid_t oid;
    ra__oid_make(oid.b, obj.node, obj.proc, obj.id);
    RA_CK_OK(ra_objstore_ref(ra__g->store, oid)); // the answer's reference
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__OBJ_PULLED);
    ra__wb_u64(&b, obj.id);
    ra__wb_raw(&b, oid.b, 16);
    ra__wb_u32(&b, 0);
    ra__wb_str(&b, "");
    ra_msg_t *m = NULL;
    RA_CK_OK(ra__wb_msg(&b, RA__T_OBJ, &m));
    RA_CK_OK(ra_runtime_send(ra__g->rt, ra__g->core, &m));
    ra_objstore_info_t info;
    RA_CK_WAIT(ra_objstore_info(ra__g->store, oid, &info) != 0 ||
                   info.refs == 1,
               5000);
    RA_CK_OK(ra_objstore_info(ra__g->store, oid, &info));
    ck_assert_uint_eq(info.refs, 1);
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(obj, 5000, &v));
    ck_assert(big_ok(v, n, 5));
    ra_value_free(&v);
    ra_release(obj);
    ck_assert_uint_eq(store_objects_become(0), 0);
    stop();
}
END_TEST

START_TEST(test_cluster_large_values_through_the_store)
{
    // A 16 MiB store for many 1 MiB results: it only keeps up if released
    // results leave it.  Then the same without a store (all inline).
    size_t sizes[2] = {(size_t)16 << 20, SIZE_MAX};
    ra_ref_t r0;
    for (int k = 0; k < 2; k++) {
        ra_init_opts_t o = {.num_cpus = 2, .workers = 2,
                            .object_store_memory = sizes[k]};
        RA_CK_OK(ra_init_opts(&o));
        int rounds = k == 0 ? 60 : 5;
        for (int i = 0; i < rounds; i++) {
            size_t n = (i % 3 == 0) ? (size_t)200 << 10 : (size_t)1 << 20;
            ra_ref_t r, c;
            ra_value_t *v = NULL;
            RA_CK_OK(ra_remote("big", (ra_arg_t[]){RA_ARG_I64((int64_t)n),
                                                   RA_ARG_I64(i)},
                               2, NULL, &r));
            RA_CK_OK(ra_get(r, 20000, &v));
            ck_assert_msg(big_ok(v, n, i), "round %d: wrong bytes", i);
            // With a store the value is a view into its shared mapping;
            // without one it is a copy in this process's own memory.
            ck_assert_int_eq(in_shm(ra_value_data(v, NULL)), k == 0);
            ra_value_free(&v);
            // As an argument of another task, which reads it in place in
            // the store (no copy in the task message).
            int64_t got = 0;
            RA_CK_OK(ra_remote("check_big", (ra_arg_t[]){RA_ARG_REF(r),
                                                         RA_ARG_I64(i)},
                               2, NULL, &c));
            RA_CK_OK(ra_get_i64(c, 20000, &got));
            ck_assert_int_eq(got, 2 * (int64_t)n + (k == 0));
            ra_release(c);
            ra_release(r);
        }
        // A large value made with ra_put is in the store too: ra_get and
        // the tasks that take it read it there.
        size_t n = (size_t)1 << 20;
        uint8_t *buf = malloc(n);
        ck_assert_ptr_nonnull(buf);
        for (size_t i = 0; i < n; i++) {
            buf[i] = (uint8_t)((i * 7 + 5) % 251);
        }
        ra_ref_t p, c;
        RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &p));
        free(buf);
        ra_value_t *v = NULL;
        RA_CK_OK(ra_get(p, 1000, &v));
        ck_assert(big_ok(v, n, 5));
        ck_assert_int_eq(in_shm(ra_value_data(v, NULL)), k == 0);
        ra_value_free(&v);
        int64_t got = 0;
        RA_CK_OK(ra_remote("check_big", (ra_arg_t[]){RA_ARG_REF(p),
                                                     RA_ARG_I64(5)},
                           2, NULL, &c));
        RA_CK_OK(ra_get_i64(c, 20000, &got));
        ck_assert_int_eq(got, 2 * (int64_t)n + (k == 0));
        ra_store_usage_t u;
        if (k == 0) {
            RA_CK_OK(ra_store_usage(&u));
            ck_assert_uint_ge(u.objects, 1);
        } else {
            RA_CK_ERR(ra_store_usage(&u), RA_ENOTSUP);
        }
        ra_release(c);
        ra_release(p);
        if (k == 0) {
            // Released: it leaves the store.
            RA_CK_OK(ra_store_usage(&u));
            ck_assert_uint_eq(u.objects, 0);
        } else {
            // Without a store a result travels inline, and one larger than
            // a link message may be (64 MiB) cannot: the owner gets an
            // error that says so, at once, instead of waiting for ever.
            RA_CK_OK(ra_remote("big", (ra_arg_t[]){RA_ARG_I64(70 << 20),
                                                   RA_ARG_I64(1)},
                               2, NULL, &r0));
            int64_t t0 = ra_test_now_ms();
            ck_assert_int_eq(ra_get(r0, 60000, &v), RA_ETASK);
            ck_assert_int_lt(ra_test_now_ms() - t0, 30000);
            ck_assert_msg(strstr(ra_value_error(v), "could not be sent to "
                                 "its owner") != NULL &&
                          strstr(ra_value_error(v), "larger than a link "
                                 "message may be") != NULL,
                          "%s", ra_value_error(v));
            ra_value_free(&v);
            ra_release(r0);
            // So is an argument that large: the task fails at once.
            size_t huge = (size_t)70 << 20;
            uint8_t *hb = calloc(1, huge);
            ck_assert_ptr_nonnull(hb);
            RA_CK_OK(ra_remote("check_big", (ra_arg_t[]){
                                   RA_ARG_BYTES(hb, huge), RA_ARG_I64(0)},
                               2, NULL, &r0));
            free(hb);
            t0 = ra_test_now_ms();
            ck_assert_int_eq(ra_get(r0, 60000, &v), RA_EINVAL);
            ck_assert_int_lt(ra_test_now_ms() - t0, 30000);
            ck_assert_msg(strstr(ra_value_error(v), "larger than a link "
                                 "message may be") != NULL,
                          "%s", ra_value_error(v));
            ra_value_free(&v);
            ra_release(r0);
            // And a method call with one, to an actor.
            ra_actor_t acct;
            RA_CK_OK(ra_actor_create("Account", &RA_ARG_I64(0), 1, NULL, &acct));
            hb = calloc(1, huge);
            ck_assert_ptr_nonnull(hb);
            RA_CK_OK(ra_actor_call(acct, "deposit",
                                   &RA_ARG_BYTES(hb, huge), 1, &r0));
            free(hb);
            ck_assert_int_eq(ra_get(r0, 60000, &v), RA_EINVAL);
            ra_value_free(&v);
            ra_release(r0);
            RA_CK_OK(ra_actor_kill(acct));
        }
        stop();
    }
}
END_TEST

// one_object makes object i (a task result, or an ra_put value; every
// 100th is large enough for the store), hands it by reference to a task
// that checks it, and releases it at once: the task's borrow alone keeps
// it.  Returns the checking task's reference.
static ra_ref_t
one_object(int i)
{
    size_t n = i % 100 == 0 ? (size_t)200 << 10 : 64 + (size_t)(i % 7);
    ra_ref_t obj, c;
    if (i % 3 == 0) {
        uint8_t buf[(size_t)200 << 10];
        for (size_t k = 0; k < n; k++) {
            buf[k] = (uint8_t)((k * 7 + (size_t)i) % 251);
        }
        RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &obj));
    } else {
        RA_CK_OK(ra_remote("big", (ra_arg_t[]){RA_ARG_I64((int64_t)n),
                                               RA_ARG_I64(i)},
                           2, NULL, &obj));
    }
    RA_CK_OK(ra_remote("check_big", (ra_arg_t[]){RA_ARG_REF(obj),
                                                 RA_ARG_I64(i)},
                       2, NULL, &c));
    ra_release(obj);
    return c;
}

START_TEST(test_cluster_100k_objects_leave_nothing)
{
    // 100,000 objects (fewer under the sanitizers) made in worker
    // processes or here, each read by another task in another process and
    // released while that task may still wait for it: every one is
    // checked, and afterwards the store holds nothing and this process's
    // heap has not grown by more than the object table's own array.  (The
    // GCS in this process keeps fewer tasks here than its 100,000.)
    setenv("RAYO_GCS_MAX_TASKS", "1000", 1);
    start();
    unsetenv("RAYO_GCS_MAX_TASKS");
    int n = (int)ra_test_scaled(100000);
    enum { WINDOW = 256 };
    ra_ref_t win[WINDOW];
    int in = 0;
    size_t heap0 = 0;
    for (int i = 0; i < n; i++) {
        if (i == 1000 || (i == n - 1 && heap0 == 0)) {
            heap0 = mallinfo2().uordblks;
        }
        if (in == WINDOW) {
            int64_t got = 0;
            int j = i - WINDOW;
            RA_CK_OK(ra_get_i64(win[j % WINDOW], 60000, &got));
            size_t want = j % 100 == 0 ? (size_t)200 << 10
                                       : 64 + (size_t)(j % 7);
            ck_assert_msg(got / 2 == (int64_t)want, "object %d: %lld", j,
                          (long long)got);
            ra_release(win[j % WINDOW]);
            in--;
        }
        win[i % WINDOW] = one_object(i);
        in++;
    }
    for (int j = n - in; j < n; j++) {
        int64_t got = 0;
        RA_CK_OK(ra_get_i64(win[j % WINDOW], 60000, &got));
        ck_assert(got != 0);
        ra_release(win[j % WINDOW]);
    }
    ra_store_usage_t u;
    RA_CK_OK(ra_store_usage(&u));
    ck_assert_uint_eq(u.objects, 0);
    size_t heap1 = mallinfo2().uordblks;
    // Three ids per object (the object, the check, and the check's own
    // result), 8 bytes each in the table's array, plus 8 MiB.
    size_t bound = (size_t)n * 3 * 8 * 2 + ((size_t)8 << 20);
    ck_assert_msg(heap1 < heap0 + bound, "heap grew from %zu to %zu bytes "
                  "over %d objects", heap0, heap1, n);
    stop();
}
END_TEST

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QUEUED_MAX 16384
#define QUEUED_N_MAX 20000   // (a sanitized run beside others crawls)
#else
#define QUEUED_MAX 2048
#define QUEUED_N_MAX 1000000
#endif

// rss_bytes: this process's resident memory.
static size_t
rss_bytes(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

START_TEST(test_cluster_1m_queued_tasks)
{
    // A million tasks (fewer under the sanitizers) queued behind two that
    // hold both CPUs: the queue stands, costs a bounded amount of memory
    // per task, and then every task runs once, with its own result;
    // afterwards all CPUs are free.
    start();
    int n = (int)ra_test_scaled(1000000);
    n = n < QUEUED_N_MAX ? n : QUEUED_N_MAX;
    char *open_ = marker("gate-1m");
    ra_ref_t hold[2];
    for (int i = 0; i < 2; i++) {
        RA_CK_OK(ra_remote("gate", &RA_ARG_BYTES(open_, strlen(open_)), 1,
                           NULL, &hold[i]));
    }
    ra_ref_t *refs = calloc((size_t)n, sizeof *refs);
    ck_assert_ptr_nonnull(refs);
    size_t rss0 = rss_bytes();
    uint64_t t0 = ra_test_now_ms();
    for (int i = 0; i < n; i++) {
        ra_arg_t args[2] = {RA_ARG_I64(i), RA_ARG_I64(1)};
        RA_CK_OK(ra_remote("add", args, 2, NULL, &refs[i]));
    }
    uint64_t t1 = ra_test_now_ms();
    size_t rss1 = rss_bytes();
    fprintf(stderr, "1m: %d tasks queued in %llu ms, rss %zu -> %zu (%zu "
            "bytes/task)\n", n, (unsigned long long)(t1 - t0), rss0, rss1,
            (rss1 - rss0) / (size_t)n);
    // 763 bytes a task here (its request, reference and bookkeeping);
    // the sanitizers' shadow memory multiplies that.
    ck_assert_msg(rss1 < rss0 || (rss1 - rss0) / (size_t)n < QUEUED_MAX,
                  "%zu bytes per queued task", (rss1 - rss0) / (size_t)n);
    FILE *f = fopen(open_, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    for (int i = 0; i < 2; i++) {
        int64_t ok = 0;
        RA_CK_OK(ra_get_i64(hold[i], 60000, &ok));
        ck_assert_int_eq(ok, 1);
        ra_release(hold[i]);
    }
    for (int i = 0; i < n; i++) {
        int64_t got = 0;
        RA_CK_OK(ra_get_i64(refs[i], 120000, &got));
        ck_assert_int_eq(got, i + 1);
        ra_release(refs[i]);
    }
    fprintf(stderr, "1m: all ran in %llu ms\n",
            (unsigned long long)(ra_test_now_ms() - t1));
    free(refs);
    stop();
}
END_TEST

START_TEST(test_cluster_heartbeat_env)
{
    // RAYO_HEARTBEAT_MS and RAYO_HEARTBEAT_MISS set the links' heartbeat
    // in every process of a cluster; values out of range or not numbers
    // are ignored (0: the link's default).
    static const struct {
        const char *ms, *miss;
        uint32_t want_ms, want_miss;
    } cases[] = {
        {"250", "8", 250, 8},     {"10", "2", 10, 2},
        {"60000", "1000", 60000, 1000},
        {"9", "1", 0, 0},         {"60001", "1001", 0, 0},
        {"-5", "x", 0, 0},        {"100ms", "3 ", 0, 0},
        {"", "", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setenv("RAYO_HEARTBEAT_MS", cases[i].ms, 1);
        setenv("RAYO_HEARTBEAT_MISS", cases[i].miss, 1);
        ra_link_opts_t lo = {0};
        ra__link_env_opts(&lo);
        ck_assert_msg(lo.hb_interval_ms == cases[i].want_ms &&
                          lo.hb_miss == cases[i].want_miss,
                      "'%s' '%s' gave %u x %u", cases[i].ms, cases[i].miss,
                      lo.hb_interval_ms, lo.hb_miss);
    }
    unsetenv("RAYO_HEARTBEAT_MS");
    unsetenv("RAYO_HEARTBEAT_MISS");
    ra_link_opts_t lo = {0};
    ra__link_env_opts(&lo);
    ck_assert_uint_eq(lo.hb_interval_ms, 0);
    ck_assert_uint_eq(lo.hb_miss, 0);
}
END_TEST

START_TEST(test_cluster_init_twice_and_shutdown_twice)
{
    start();
    RA_CK_ERR(ra_init(NULL), RA_EALREADY);
    char dir[600];
    snprintf(dir, sizeof dir, "%s", ra_cluster_session_dir());
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    stop();
    ra_shutdown();
    ck_assert(!ra_is_initialized());
    ck_assert_int_ne(stat(dir, &st), 0);   // the session is cleaned up
    setenv("RAYO_ADDRESS", "10.0.0.1:1", 1);
    RA_CK_ERR(ra_init(NULL), RA_ENOTSUP);
    unsetenv("RAYO_ADDRESS");
}
END_TEST

// store_objects_become waits up to 30 s for this node's store to hold n
// objects and returns how many it holds then.  (Borrows end by messages
// between processes, and a killed borrower is seen gone by its link: on
// a loaded machine that can take seconds.)
static uint64_t
store_objects_become(uint64_t n)
{
    ra_store_usage_t u = {0};
    for (int i = 0; i < 3000; i++) {
        RA_CK_OK(ra_store_usage(&u));
        if (u.objects == n) {
            break;
        }
        usleep(10000);
    }
    return u.objects;
}

START_TEST(test_cluster_borrowed_references)
{
    start();
    const size_t n = (size_t)1 << 20;
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)((i * 7 + 3) % 251);
    }
    ra_ref_t small, large, r;
    int64_t x = 0;
    RA_CK_OK(ra_put(&RA_ARG_I64(21), &small));
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &large));
    const int64_t whole = 2 * (int64_t)n + 1;   // read in place in /dev/shm

    // A worker gets the reference, not the value, and reads the value
    // from its owner (inline, or mapped in the store).
    RA_CK_OK(ra_remote("peek_ref", (ra_arg_t[]){RA_ARG_BORROW(small),
                                                RA_ARG_I64(0)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, 42);
    ra_release(r);
    RA_CK_OK(ra_remote("peek_ref", (ra_arg_t[]){RA_ARG_BORROW(large),
                                                RA_ARG_I64(3)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, whole);
    ra_release(r);

    // Passed on by the borrower to tasks of its own, as a value and as a
    // reference.
    RA_CK_OK(ra_remote("relay_ref", (ra_arg_t[]){RA_ARG_BORROW(large),
                                                 RA_ARG_I64(3)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 60000, &x));
    ck_assert_int_eq(x, whole);
    ra_release(r);

    // An object still being made: the borrower's get waits for it.  A
    // failed one: the borrower sees the task's error.
    ra_ref_t slow, bad;
    RA_CK_OK(ra_remote("sleeper", (ra_arg_t[]){RA_ARG_STR_EMPTY,
                                               RA_ARG_I64(300)},
                       2, NULL, &slow));
    RA_CK_OK(ra_remote("peek_ref", (ra_arg_t[]){RA_ARG_BORROW(slow),
                                                RA_ARG_I64(0)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, 600);
    ra_release(r);
    ra_release(slow);
    RA_CK_OK(ra_remote("fails", &RA_ARG_I64(7), 1, NULL, &bad));
    RA_CK_OK(ra_remote("peek_ref", (ra_arg_t[]){RA_ARG_BORROW(bad),
                                                RA_ARG_I64(0)},
                       2, NULL, &r));
    ra_value_t *v = NULL;
    RA_CK_ERR(ra_get(r, 30000, &v), RA_ETASK);
    ck_assert_msg(strstr(ra_value_error(v), "bad input 7") != NULL, "%s",
                  ra_value_error(v));
    ra_value_free(&v);
    ra_release(r);
    ra_release(bad);

    // Kept past the call: the object outlives its owner's release until
    // the borrower lets go.
    ra_actor_t keeper;
    RA_CK_OK(ra_actor_create("Keeper", NULL, 0, NULL, &keeper));
    ck_assert_int_eq(call_i64(keeper, "keep", &RA_ARG_BORROW(large), 1), 0);
    ra_release(large);
    ck_assert_uint_eq(store_objects_become(1), 1);
    ck_assert_int_eq(call_i64(keeper, "read", &RA_ARG_I64(3), 1), whole);
    ck_assert_int_eq(call_i64(keeper, "drop", NULL, 0), 0);
    ck_assert_uint_eq(store_objects_become(0), 0);

    // A lightweight actor's borrows are its own: when it ends (killed
    // here) the object goes, though its worker process stays; another
    // actor's borrow of the same object is untouched meanwhile.
    ra_actor_t ka, kb;
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &large));
    RA_CK_OK(ra_actor_create("Keeper", NULL, 0, NULL, &ka));
    RA_CK_OK(ra_actor_create("Keeper", NULL, 0, NULL, &kb));
    ck_assert_int_eq(call_i64(ka, "keep", &RA_ARG_BORROW(large), 1), 0);
    ck_assert_int_eq(call_i64(kb, "keep", &RA_ARG_BORROW(large), 1), 0);
    ra_release(large);
    int64_t kpid = call_i64(ka, "pid", NULL, 0);
    RA_CK_OK(ra_actor_kill(ka));
    ck_assert_int_eq(call_i64(kb, "read", &RA_ARG_I64(3), 1), whole);
    ck_assert_uint_eq(store_objects_become(1), 1);
    RA_CK_OK(ra_actor_kill(kb));
    ck_assert_uint_eq(store_objects_become(0), 0);
    ck_assert_int_eq(kill((pid_t)kpid, 0), 0);   // the worker lives on

    // A borrower whose process dies ends its borrows.
    ra_ref_t other;
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &other));
    ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
    ao.isolation = RA_ISOLATION_PROCESS;
    ra_actor_t k2;
    RA_CK_OK(ra_actor_create("Keeper", NULL, 0, &ao, &k2));
    ck_assert_int_eq(call_i64(k2, "keep", &RA_ARG_BORROW(other), 1), 0);
    ra_release(other);
    ck_assert_int_eq(call_i64(k2, "read", &RA_ARG_I64(3), 1), whole);
    ck_assert_uint_eq(store_objects_become(1), 1);
    RA_CK_OK(ra_actor_kill(k2));
    ck_assert_uint_eq(store_objects_become(0), 0);

    // Malformed borrow messages to this process's core: dropped, or
    // answered with an error; nothing is pinned or freed by them.
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &other));
    RA_CK_OK(ra_remote("rogue_borrow", &RA_ARG_BORROW(other), 1, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, 3);
    ra_release(r);
    RA_CK_OK(ra_remote("peek_ref", (ra_arg_t[]){RA_ARG_BORROW(other),
                                                RA_ARG_I64(3)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, whole);
    ra_release(r);
    ra_release(other);
    ck_assert_uint_eq(store_objects_become(0), 0);

    // What is neither ours nor borrowed here.
    ra_ref_t alien = {small.node, small.proc + 1000, 5};
    RA_CK_ERR(ra_get(alien, 100, &v), RA_ENOENT);
    RA_CK_ERR(ra_borrow(alien), RA_ENOENT);
    RA_CK_ERR(ra_borrow(small), RA_EINVAL);
    RA_CK_ERR(ra_remote("peek_ref", &RA_ARG_BORROW(alien), 1, NULL, &r),
              RA_ENOENT);
    bool ready = true;
    ck_assert_int_eq(ra_wait(&alien, 1, 0, 10, &ready), 0);
    ck_assert(!ready);
    ra_release(alien);   // harmless
    ra_release(small);
    free(buf);
    stop();
}
END_TEST

// returned_ref gets result r, which must be a returned reference, and
// stores the reference in *out.
static void
returned_ref(ra_ref_t r, ra_ref_t *out)
{
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(r, 30000, &v));
    ck_assert_int_eq(ra_value_kind(v), RA_VAL_REF);
    RA_CK_OK(ra_value_ref(v, out));
    ck_assert_int_eq(ra_get_i64(r, 0, NULL), RA_EBADMSG);
    ra_value_free(&v);
}

START_TEST(test_cluster_returned_references)
{
    // One worker in the base pool: the others retire after a second idle.
    ra_init_opts_t io = {.num_cpus = 4, .workers = 1, .max_workers = 8};
    RA_CK_OK(ra_init_opts(&io));
    const size_t n = (size_t)1 << 20;
    const int64_t whole = 2 * (int64_t)n + 1;
    enum { K = 4 };
    ra_ref_t outer[K], inner[K], r;
    ra_value_t *v = NULL;
    for (int i = 0; i < K; i++) {
        RA_CK_OK(ra_remote("make_ref", (ra_arg_t[]){RA_ARG_I64((int64_t)n),
                                                    RA_ARG_I64(i),
                                                    RA_ARG_I64(500)},
                           3, NULL, &outer[i]));
    }
    int owners = 0;
    for (int i = 0; i < K; i++) {
        returned_ref(outer[i], &inner[i]);
        ck_assert(inner[i].proc != outer[i].proc);   // a worker's object
        bool seen = false;
        for (int j = 0; j < i; j++) {
            seen = seen || inner[j].proc == inner[i].proc;
        }
        owners += !seen;
    }
    ck_assert_int_ge(owners, 2);
    // The workers that own them are idle now, and all but one are
    // retired: they stay while we borrow their objects.
    usleep(3000000);
    for (int i = 0; i < K; i++) {
        RA_CK_OK(ra_get(inner[i], 30000, &v));
        ck_assert_int_eq(value_score(v, i), whole);
        ra_value_free(&v);
    }
    // A result that is a reference, given to a task by value: the task
    // gets the reference.
    RA_CK_OK(ra_remote("peek_ref", (ra_arg_t[]){RA_ARG_REF(outer[1]),
                                                RA_ARG_I64(1)},
                       2, NULL, &r));
    int64_t x = 0;
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, whole);
    ra_release(r);
    // A result that is a reference, lent: the borrower reads through it
    // (it borrows the object the result refers to from that object's
    // owner).
    RA_CK_OK(ra_remote("peek_nested", (ra_arg_t[]){RA_ARG_BORROW(outer[2]),
                                                   RA_ARG_I64(2)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, whole);
    ra_release(r);
    ck_assert_uint_eq(store_objects_become(K), K);
    for (int i = 0; i < K; i++) {
        ra_release(outer[i]);
    }
    ck_assert_uint_eq(store_objects_become(0), 0);

    // Our own reference, lent and returned: the result holds it.
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)((i * 7 + 9) % 251);
    }
    ra_ref_t mine, back;
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &mine));
    free(buf);
    RA_CK_OK(ra_remote("bounce_ref", &RA_ARG_BORROW(mine), 1, NULL, &r));
    returned_ref(r, &back);
    ck_assert(back.node == mine.node && back.proc == mine.proc &&
              back.id == mine.id);
    ra_release(mine);
    ck_assert_uint_eq(store_objects_become(1), 1);
    RA_CK_OK(ra_get(back, 1000, &v));
    ck_assert_int_eq(value_score(v, 9), whole);
    ra_value_free(&v);
    ra_release(r);
    ck_assert_uint_eq(store_objects_become(0), 0);

    // A reference the task does not have cannot be returned.
    RA_CK_OK(ra_put(&RA_ARG_I64(1), &mine));
    RA_CK_OK(ra_remote("bounce_ref", (ra_arg_t[]){RA_ARG_BORROW(mine),
                                                  RA_ARG_I64(0)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &x));
    ck_assert_int_eq(x, RA_ENOENT);
    ra_release(r);
    ra_release(mine);
    stop();
}
END_TEST

// References stored inside objects (ra_put_refs, ra_task_return_refs)
// live as long as the object that holds them, wherever it is read: by the
// owner, as a task's argument by value, lent and read through ra_get.
START_TEST(test_cluster_references_inside_objects)
{
    start();
    const size_t n = (size_t)1 << 20;
    const int64_t whole = 2 * (int64_t)n + 1;
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)((i * 7 + 3) % 251);
    }
    ra_ref_t inner[2], outer, r, x;
    RA_CK_OK(ra_put(&RA_ARG_I64(40), &inner[0]));
    RA_CK_OK(ra_put(&RA_ARG_BYTES(buf, n), &inner[1]));
    free(buf);
    RA_CK_OK(ra_put_refs(&RA_ARG_BYTES("shards", 6), inner, 2, &outer));
    ra_release(inner[0]);
    ra_release(inner[1]);
    // Released by us, held by the object that contains them.
    ck_assert_uint_eq(store_objects_become(1), 1);
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(outer, 20000, &v));
    ck_assert_uint_eq(ra_value_nrefs(v), 2);
    RA_CK_OK(ra_value_ref_at(v, 1, &x));
    ck_assert(x.id == inner[1].id && x.proc == inner[1].proc);
    RA_CK_ERR(ra_value_ref_at(v, 2, &x), RA_ENOENT);
    ck_assert_int_eq(nest_score(v, 2, value_ref_at, 3), 40 + whole);
    ra_value_free(&v);
    // Given by value to a task, and lent to one.
    int64_t got = 0;
    RA_CK_OK(ra_remote("nested_arg", (ra_arg_t[]){RA_ARG_REF(outer),
                                                  RA_ARG_I64(3)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &got));
    ck_assert_int_eq(got, 40 + whole);
    ra_release(r);
    RA_CK_OK(ra_remote("nested_arg", (ra_arg_t[]){RA_ARG_BORROW(outer),
                                                  RA_ARG_I64(3),
                                                  RA_ARG_I64(1)},
                       3, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &got));
    ck_assert_int_eq(got, 40 + whole);
    ra_release(r);
    // When the object goes, so do they.
    ra_release(outer);
    ck_assert_uint_eq(store_objects_become(0), 0);
    RA_CK_ERR(ra_get(inner[0], 1000, NULL), RA_ENOENT);

    // A task's result that contains references to objects of its worker:
    // read here, passed on by value, then freed with the result.
    RA_CK_OK(ra_remote("make_nest", (ra_arg_t[]){RA_ARG_I64(2),
                                                 RA_ARG_I64((int64_t)n),
                                                 RA_ARG_I64(5)},
                       3, NULL, &outer));
    RA_CK_OK(ra_get(outer, 30000, &v));
    size_t len = 0;
    const char *p = ra_value_data(v, &len);
    ck_assert(len == 6 && memcmp(p, "shards", 6) == 0);
    ck_assert_uint_eq(ra_value_nrefs(v), 2);
    RA_CK_OK(ra_value_ref_at(v, 0, &x));
    ck_assert(x.proc != outer.proc);   // the worker's object
    ck_assert_int_eq(nest_score(v, 2, value_ref_at, 5), 2 + whole);
    ra_value_free(&v);
    RA_CK_OK(ra_remote("nested_arg", (ra_arg_t[]){RA_ARG_REF(outer),
                                                  RA_ARG_I64(5)},
                       2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &got));
    ck_assert_int_eq(got, 2 + whole);
    ra_release(r);
    ck_assert_uint_eq(store_objects_become(1), 1);
    ra_release(outer);
    ck_assert_uint_eq(store_objects_become(0), 0);
    RA_CK_ERR(ra_get(x, 5000, NULL), RA_ENOENT);   // no longer borrowed

    // Bad input: nothing is stored, nothing is held.
    RA_CK_OK(ra_put(&RA_ARG_I64(1), &inner[0]));
    x = (ra_ref_t){inner[0].node, inner[0].proc + 77, 5};
    ra_ref_t both[2] = {inner[0], x};
    RA_CK_ERR(ra_put_refs(&RA_ARG_I64(0), both, 2, &r), RA_ENOENT);
    RA_CK_ERR(ra_put_refs(&RA_ARG_REF(inner[0]), inner, 1, &r), RA_EINVAL);
    RA_CK_ERR(ra_put_refs(&RA_ARG_I64(0), NULL, 1, &r), RA_EINVAL);
    ra_release(inner[0]);
    RA_CK_ERR(ra_get(inner[0], 1000, NULL), RA_ENOENT);   // not held
    RA_CK_OK(ra_remote("make_nest", (ra_arg_t[]){RA_ARG_I64(2),
                                                 RA_ARG_I64(64),
                                                 RA_ARG_I64(5),
                                                 RA_ARG_I64(1)},
                       4, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &got));
    ck_assert_int_eq(got, RA_ENOENT);
    ra_release(r);
    stop();
}
END_TEST


static Suite *
cluster_suite(void)
{
    Suite *s = suite_create("cluster");
    TCase *tc = tcase_create("tasks");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cluster_tasks_return_values);
    tcase_add_test(tc, test_cluster_tasks_run_in_worker_processes);
    tcase_add_test(tc, test_cluster_bson_and_refs_as_arguments);
    tcase_add_test(tc, test_cluster_errors_are_values);
    tcase_add_test(tc, test_cluster_fractional_cpus_share);
    tcase_add_test(tc, test_cluster_init_twice_and_shutdown_twice);
    tcase_add_test(tc, test_cluster_worker_output_prefixed_and_logged);
    tcase_add_test(tc, test_cluster_runtime_env_libraries);
    tcase_add_test(tc, test_cluster_nested_tasks_lend_their_cpus);
    tcase_add_test(tc, test_cluster_large_values_through_the_store);
    suite_add_tcase(s, tc);
    // 200,000 tasks: about 40 s alone, over 120 s beside a second
    // check_cluster on these two CPUs.
    tc = tcase_create("many");
    tcase_set_timeout(tc, 360);
    tcase_add_test(tc, test_cluster_100k_objects_leave_nothing);
    tcase_add_test(tc, test_cluster_1m_queued_tasks);
    suite_add_tcase(s, tc);
    tc = tcase_create("failures");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cluster_worker_killed_task_retried);
    tcase_add_test(tc, test_cluster_worker_killed_from_outside);
    tcase_add_test(tc, test_cluster_dead_workers_objects_leave_the_store);
    tcase_add_test(tc, test_cluster_gcs_restarted_in_place);
    tcase_add_test(tc, test_cluster_raylet_restarted_in_place);
    tcase_add_test(tc, test_cluster_objmgr_restarted_in_place);
    tcase_add_test(tc, test_cluster_second_pull_answer_keeps_the_copy);
    tcase_add_test(tc, test_cluster_deadline_and_cancel);
    tcase_add_test(tc, test_cluster_survives_malformed_messages);
    tcase_add_test(tc, test_cluster_objmgr_answers_malformed_pulls);
    tcase_add_test(tc, test_cluster_heartbeat_env);
    suite_add_tcase(s, tc);
    tc = tcase_create("borrow");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cluster_borrowed_references);
    tcase_add_test(tc, test_cluster_returned_references);
    tcase_add_test(tc, test_cluster_references_inside_objects);
    suite_add_tcase(s, tc);
    tc = tcase_create("actors");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cluster_actor_keeps_state_in_order);
    tcase_add_test(tc, test_cluster_actor_calls_keep_order_across_pending_args);
    tcase_add_test(tc, test_cluster_actors_waiting_in_get_share_a_worker);
    tcase_add_test(tc, test_cluster_actor_max_concurrency);
    tcase_add_test(tc, test_cluster_actor_calls_wait_for_a_full_link);
    tcase_add_test(tc, test_cluster_actor_burst_starts_no_extra_workers);
    tcase_add_test(tc, test_cluster_actor_table);
    tcase_add_test(tc, test_cluster_task_table);
    tcase_add_test(tc, test_cluster_dead_actors_are_bounded);
    tcase_add_test(tc, test_cluster_actor_records_batched);
    tcase_add_test(tc, test_cluster_actor_restarts_after_kill9);
    tcase_add_test(tc, test_cluster_actor_call_deadline);
    tcase_add_test(tc, test_cluster_named_actor_from_another_process);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    // Worker processes are this binary again: they must serve, not test.
    ra_worker_main();
    return ra_test_run(cluster_suite());
}

// proto.c - the codec of the cluster's messages, the registries of remote
// functions and actor classes, and running one task.
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core_impl.h"
#include "ra_objstore.h"
#include "ra_error.h"
#include "ra_log.h"
#include "ra_supervisor.h"

// ---- writing ----

static bool
wb_room(ra__wbuf_t *b, size_t n)
{
    if (b->err != 0) {
        return false;
    }
    if (b->len + n <= b->cap) {
        return true;
    }
    size_t cap = b->cap != 0 ? b->cap : 128;
    while (cap < b->len + n) {
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (p == NULL) {
        b->err = RA_ENOMEM;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void
ra__wb_raw(ra__wbuf_t *b, const void *p, size_t n)
{
    if (n != 0 && wb_room(b, n)) {
        memcpy(b->p + b->len, p, n);
        b->len += n;
    }
}

void
ra__wb_u8(ra__wbuf_t *b, uint8_t v)
{
    ra__wb_raw(b, &v, 1);
}

void
ra__wb_u32(ra__wbuf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16),
                    (uint8_t)(v >> 24)};
    ra__wb_raw(b, x, 4);
}

void
ra__wb_u64(ra__wbuf_t *b, uint64_t v)
{
    ra__wb_u32(b, (uint32_t)v);
    ra__wb_u32(b, (uint32_t)(v >> 32));
}

void
ra__wb_f64(ra__wbuf_t *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    ra__wb_u64(b, u);
}

void
ra__wb_bytes(ra__wbuf_t *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        b->err = RA_EINVAL;
        return;
    }
    ra__wb_u32(b, (uint32_t)n);
    ra__wb_raw(b, p, n);
}

void
ra__wb_str(ra__wbuf_t *b, const char *s)
{
    ra__wb_bytes(b, s, s != NULL ? strlen(s) : 0);
}

void
ra__wb_pid(ra__wbuf_t *b, ra_pid_t p)
{
    ra__wb_u32(b, p.node);
    ra__wb_u32(b, p.proc);
    ra__wb_u32(b, p.id);
    ra__wb_u32(b, p.gen);
}

int
ra__wb_msg(ra__wbuf_t *b, int32_t tag, ra_msg_t **out)
{
    int rc = b->err;
    if (rc == 0) {
        rc = ra_msg_new_bytes(out, tag, b->p != NULL ? b->p : (void *)"",
                              b->len);
    }
    ra__wb_free(b);
    return rc;
}

void
ra__wb_free(ra__wbuf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void
ra__wb_arg(ra__wbuf_t *b, const ra_arg_t *a)
{
    uint8_t x[8];
    switch (a->kind) {
    case RA_ARG_BYTES:
        ra__wb_u8(b, RA_VAL_BYTES);
        ra__wb_bytes(b, a->data, a->data != NULL ? a->len : 0);
        break;
    case RA_ARG_BSON:
        if (a->bson == NULL) {
            b->err = RA_EINVAL;
            return;
        }
        ra__wb_u8(b, RA_VAL_BSON);
        ra__wb_bytes(b, bson_get_data(a->bson), a->bson->len);
        break;
    case RA_ARG_I64:
        ra__wb_u8(b, RA_VAL_I64);
        ra__le64_put(x, a->i64);
        ra__wb_bytes(b, x, 8);
        break;
    case RA_ARG_F64:
        ra__wb_u8(b, RA_VAL_F64);
        memcpy(x, &a->f64, 8);
        ra__wb_bytes(b, x, 8);
        break;
    case RA_ARG_REF:
        ra__wb_u8(b, RA_ARG_REF);
        ra__wb_u32(b, a->ref.node);
        ra__wb_u32(b, a->ref.proc);
        ra__wb_u64(b, a->ref.id);
        break;
    default:
        b->err = RA_EINVAL;
    }
}

// ---- reading ----

void
ra__rb_init(ra__rbuf_t *r, const ra_msg_t *m)
{
    r->p = ra_msg_data(m, &r->len);
    r->off = 0;
    r->bad = r->p == NULL;
}

static const uint8_t *
rb_take(ra__rbuf_t *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t
ra__rb_u8(ra__rbuf_t *r)
{
    const uint8_t *p = rb_take(r, 1);
    return p != NULL ? p[0] : 0;
}

uint32_t
ra__rb_u32(ra__rbuf_t *r)
{
    const uint8_t *p = rb_take(r, 4);
    if (p == NULL) {
        return 0;
    }
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

uint64_t
ra__rb_u64(ra__rbuf_t *r)
{
    uint64_t lo = ra__rb_u32(r);
    return lo | (uint64_t)ra__rb_u32(r) << 32;
}

double
ra__rb_f64(ra__rbuf_t *r)
{
    uint64_t u = ra__rb_u64(r);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

const void *
ra__rb_bytes(ra__rbuf_t *r, size_t *n)
{
    size_t len = ra__rb_u32(r);
    const uint8_t *p = rb_take(r, len);
    *n = p != NULL ? len : 0;
    return p;
}

void
ra__rb_str(ra__rbuf_t *r, char *buf, size_t cap)
{
    size_t n;
    const char *p = ra__rb_bytes(r, &n);
    if (p == NULL || n >= cap || memchr(p, 0, n) != NULL) {
        r->bad = true;
        buf[0] = '\0';
        return;
    }
    memcpy(buf, p, n);
    buf[n] = '\0';
}

ra_pid_t
ra__rb_pid(ra__rbuf_t *r)
{
    ra_pid_t p;
    p.node = ra__rb_u32(r);
    p.proc = ra__rb_u32(r);
    p.id = ra__rb_u32(r);
    p.gen = ra__rb_u32(r);
    return p;
}

// ---- task wire ----

// A task has at most this many arguments: a bound so that a forged count
// cannot make the decoder allocate without limit.
#define MAX_ARGS 4096u

int
ra__task_decode(const ra_msg_t *m, ra__task_view_t *v)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    memset(v, 0, sizeof *v);
    if (ra__rb_u8(&r) != RA__WIRE_VERSION) {
        return RA_EBADMSG;
    }
    v->type = ra__rb_u8(&r);
    v->id = ra__rb_u64(&r);
    v->attempt = ra__rb_u32(&r);
    v->actor = ra__rb_u64(&r);
    ra__rb_str(&r, v->name, sizeof v->name);
    v->nargs = ra__rb_u32(&r);
    if (r.bad || v->type > RA__TASK_CTOR || v->nargs > MAX_ARGS ||
        v->nargs > r.len - r.off) {
        return RA_EBADMSG;
    }
    if (v->nargs != 0 &&
        (v->args = calloc(v->nargs, sizeof v->args[0])) == NULL) {
        return RA_ENOMEM;
    }
    for (uint32_t i = 0; i < v->nargs; i++) {
        ra__targ_t *a = &v->args[i];
        a->kind = ra__rb_u8(&r);
        if (a->kind == RA_ARG_REF) {
            a->ref.node = ra__rb_u32(&r);
            a->ref.proc = ra__rb_u32(&r);
            a->ref.id = ra__rb_u64(&r);
        } else if (a->kind == (RA_VAL_BYTES | RA__VAL_IN_STORE) ||
                   a->kind == (RA_VAL_BSON | RA__VAL_IN_STORE)) {
            // Mapped by ra__task_run before the function runs.
            a->data = ra__rb_bytes(&r, &a->len);
            if (a->len < 16 + 16) {
                r.bad = true;
            }
        } else if (a->kind == RA__VAL_LENT) {
            // Checked by ra__lent_enter before the function runs.
            a->data = ra__rb_bytes(&r, &a->len);
        } else if (a->kind >= RA_VAL_BYTES && a->kind <= RA_VAL_F64) {
            a->data = ra__rb_bytes(&r, &a->len);
            if ((a->kind == RA_VAL_I64 || a->kind == RA_VAL_F64) &&
                a->len != 8) {
                r.bad = true;
            }
        } else {
            r.bad = true;
        }
    }
    v->conc = 1;
    if (v->type == RA__TASK_CTOR && !r.bad && r.off < r.len) {
        v->conc = ra__rb_u32(&r);
        if (v->conc < 1 || v->conc > RA__MAX_CONCURRENCY) {
            r.bad = true;
        }
        if (r.off < r.len) {
            v->lease = ra__rb_u64(&r);
        }
    }
    if (r.bad) {
        free(v->args);
        v->args = NULL;
        return RA_EBADMSG;
    }
    return 0;
}

uint32_t
ra__env_u32(const char *name, uint32_t lo, uint32_t hi)
{
    const char *s = getenv(name);
    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || s[0] == '-' || v < lo || v > hi) {
        ra_log_warn("link", "%s=%s ignored: give a whole number from %u to "
                    "%u", name, s, lo, hi);
        return 0;
    }
    return (uint32_t)v;
}

void
ra__link_env_opts(ra_link_opts_t *o)
{
    o->hb_interval_ms = ra__env_u32("RAYO_HEARTBEAT_MS", 10, 60000);
    o->hb_miss = ra__env_u32("RAYO_HEARTBEAT_MISS", 2, 1000);
    o->queue_frames = ra__env_u32("RAYO_LINK_QUEUE_FRAMES", 16, 100000000);
}

unsigned
ra__cluster_spin(void)
{
    return ra__env_u32("RAYO_SCHED_SPIN", 1, 100000);
}

int
ra__tick_self(ra_ctx_t *ctx, const void *body, size_t len, uint64_t after_ms)
{
    ra_msg_t *m = NULL;
    int rc = ra_msg_new_bytes(&m, RA__T_TICK, body, len);
    if (rc == 0) {
        rc = after_ms == 0 ? ra_send(ctx, ra_self(ctx), &m)
                           : ra_send_after(ra_ctx_runtime(ctx), ra_self(ctx),
                                           after_ms, &m, NULL);
    }
    ra_msg_unref(&m);
    return rc;
}

int64_t
ra__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
ra__rb_oid(ra__rbuf_t *r, ra_oid_t *oid)
{
    if (r->off + 16 > r->len) {
        r->bad = true;
        memset(oid->b, 0, 16);
        return;
    }
    memcpy(oid->b, r->p + r->off, 16);
    r->off += 16;
}

void
ra__wb_objloc(ra__wbuf_t *b, ra_oid_t oid, ra_pid_t objmgr, const char *ep,
              uint64_t size)
{
    ra__wb_raw(b, oid.b, 16);
    ra__wb_pid(b, objmgr);
    ra__wb_str(b, ep);
    ra__wb_u64(b, size);
}

void
ra__rb_objloc(ra__rbuf_t *r, ra__objloc_t *out)
{
    ra__rb_oid(r, &out->oid);
    out->objmgr = ra__rb_pid(r);
    ra__rb_str(r, out->ep, sizeof out->ep);
    out->size = ra__rb_u64(r);
}

int
ra__objloc_read(const void *data, size_t len, ra__objloc_t *out)
{
    ra__rbuf_t r = {.p = data, .len = len};
    ra__rb_objloc(&r, out);
    return r.bad || r.off != len ? RA_EBADMSG : 0;
}

int
ra__pull_msg(uint64_t req, const ra__objloc_t *loc, uint8_t flags,
             ra_pid_t watch, ra_msg_t **out)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__OBJ_PULL);
    ra__wb_u64(&b, req);
    ra__wb_objloc(&b, loc->oid, loc->objmgr, loc->ep, loc->size);
    ra__wb_u8(&b, flags);
    if (!ra_pid_is_nil(watch)) {
        ra__wb_pid(&b, watch);
    }
    return ra__wb_msg(&b, RA__T_OBJ, out);
}

int
ra__unuse_msg(ra_oid_t oid, ra_pid_t watch, ra_msg_t **out)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__OBJ_UNUSE);
    ra__wb_raw(&b, oid.b, 16);
    ra__wb_pid(&b, watch);
    return ra__wb_msg(&b, RA__T_OBJ, out);
}

int
ra__pulled_read(const ra_msg_t *m, uint64_t *req, ra_oid_t *oid,
                int *status, char *text, size_t cap)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint8_t op = ra__rb_u8(&r);
    *req = ra__rb_u64(&r);
    ra__rb_oid(&r, oid);
    *status = (int)ra__rb_u32(&r);
    ra__rb_str(&r, text, cap);
    return r.bad || op != RA__OBJ_PULLED ? RA_EBADMSG : 0;
}

void
ra__oid_make(uint8_t out[16], uint32_t node, uint32_t proc, uint64_t id)
{
    for (int i = 0; i < 4; i++) {
        out[i] = (uint8_t)(node >> (8 * i));
        out[4 + i] = (uint8_t)(proc >> (8 * i));
    }
    for (int i = 0; i < 8; i++) {
        out[8 + i] = (uint8_t)(id >> (8 * i));
    }
}

int
ra__result_msg(uint64_t id, uint32_t attempt, int status, uint8_t kind,
               const void *data, size_t len, ra_msg_t **out)
{
    return ra__result_msg_nest(id, attempt, status, kind, data, len, NULL,
                               out);
}

int
ra__result_msg_nest(uint64_t id, uint32_t attempt, int status, uint8_t kind,
                    const void *data, size_t len, const ra_msg_t *nest,
                    ra_msg_t **out)
{
    ra__wbuf_t b = {0};
    ra__wb_u64(&b, id);
    ra__wb_u32(&b, attempt);
    ra__wb_u32(&b, (uint32_t)status);
    ra__wb_u8(&b, kind);
    ra__wb_bytes(&b, data, len);
    if (nest != NULL) {
        size_t nl = 0;
        const void *np = ra_msg_data(nest, &nl);
        ra__wb_bytes(&b, np, nl);
    }
    return ra__wb_msg(&b, RA__T_RESULT, out);
}

// ---- registries ----

// The tables are filled by constructors before main and read afterwards,
// so they need no lock.  Global: fns and classes, written only at load
// time.
typedef struct fn_ent {
    char name[RA__NAME_MAX + 1];
    ra_task_fn fn;
    struct fn_ent *next;
} fn_ent_t;

static fn_ent_t *fns;

typedef struct cls_ent {
    const ra_actor_class_t *cls;
    struct cls_ent *next;
} cls_ent_t;

static cls_ent_t *classes;

int
ra_remote_register(const char *name, ra_task_fn fn)
{
    if (name == NULL || fn == NULL || name[0] == '\0' ||
        strlen(name) > RA__NAME_MAX) {
        return RA_EINVAL;
    }
    if (ra__fn_lookup(name) != NULL) {
        return RA_EEXIST;
    }
    fn_ent_t *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return RA_ENOMEM;
    }
    strcpy(e->name, name);
    e->fn = fn;
    e->next = fns;
    fns = e;
    return 0;
}

ra_task_fn
ra__fn_lookup(const char *name)
{
    for (fn_ent_t *e = fns; e != NULL; e = e->next) {
        if (strcmp(e->name, name) == 0) {
            return e->fn;
        }
    }
    return NULL;
}

int
ra_actor_class_register(const ra_actor_class_t *cls)
{
    if (cls == NULL || cls->name == NULL || cls->name[0] == '\0' ||
        strlen(cls->name) > RA__NAME_MAX ||
        (cls->nmethods != 0 && cls->methods == NULL)) {
        return RA_EINVAL;
    }
    for (size_t i = 0; i < cls->nmethods; i++) {
        if (cls->methods[i].name == NULL || cls->methods[i].fn == NULL ||
            strlen(cls->methods[i].name) > RA__NAME_MAX) {
            return RA_EINVAL;
        }
    }
    if (ra__class_lookup(cls->name) != NULL) {
        return RA_EEXIST;
    }
    cls_ent_t *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return RA_ENOMEM;
    }
    e->cls = cls;
    e->next = classes;
    classes = e;
    return 0;
}

const ra_actor_class_t *
ra__class_lookup(const char *name)
{
    for (cls_ent_t *e = classes; e != NULL; e = e->next) {
        if (strcmp(e->cls->name, name) == 0) {
            return e->cls;
        }
    }
    return NULL;
}

// ---- the task context ----

size_t
ra_task_nargs(const ra_task_t *t)
{
    return t->view->nargs;
}

ra_value_kind_t
ra_task_arg_kind(const ra_task_t *t, size_t i)
{
    if (i >= t->view->nargs) {
        return RA_VAL_NONE;
    }
    return t->view->args[i].kind == RA__VAL_LENT
               ? RA_VAL_REF
               : (ra_value_kind_t)t->view->args[i].kind;
}

int
ra_task_arg_ref(const ra_task_t *t, size_t i, ra_ref_t *out)
{
    if (i >= t->view->nargs) {
        return RA_ENOENT;
    }
    ra__lent_t l;
    if (t->view->args[i].kind != RA__VAL_LENT ||
        ra__lent_read(t->view->args[i].data, t->view->args[i].len,
                      &l) != 0) {
        return RA_EBADMSG;
    }
    if (out != NULL) {
        *out = l.ref;
    }
    return 0;
}

size_t
ra_task_arg_nrefs(const ra_task_t *t, size_t i)
{
    if (i >= t->view->nargs) {
        return 0;
    }
    const ra__targ_t *a = &t->view->args[i];
    return a->kind == RA__VAL_LENT ? 1 : ra__nest_size(a->nest);
}

int
ra_task_arg_ref_at(const ra_task_t *t, size_t i, size_t j, ra_ref_t *out)
{
    if (i >= t->view->nargs) {
        return RA_ENOENT;
    }
    if (t->view->args[i].kind == RA__VAL_LENT) {
        return j == 0 ? ra_task_arg_ref(t, i, out) : RA_ENOENT;
    }
    return ra__nest_ref(t->view->args[i].nest, j, out);
}

const void *
ra_task_arg(const ra_task_t *t, size_t i, size_t *len)
{
    if (i >= t->view->nargs || t->view->args[i].kind == RA__VAL_LENT) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = t->view->args[i].len;
    }
    return t->view->args[i].data != NULL ? t->view->args[i].data
                                         : (const void *)"";
}

int64_t
ra_task_arg_i64(const ra_task_t *t, size_t i)
{
    if (ra_task_arg_kind(t, i) != RA_VAL_I64) {
        return 0;
    }
    return ra__le64_get(t->view->args[i].data);
}

double
ra_task_arg_f64(const ra_task_t *t, size_t i)
{
    double d = 0;
    if (ra_task_arg_kind(t, i) == RA_VAL_F64) {
        memcpy(&d, t->view->args[i].data, sizeof d);
    }
    return d;
}

int
ra_task_arg_bson(const ra_task_t *t, size_t i, bson_t *doc)
{
    if (i >= t->view->nargs) {
        return RA_ENOENT;
    }
    if (t->view->args[i].kind != RA_VAL_BSON ||
        !bson_init_static(doc, t->view->args[i].data,
                          t->view->args[i].len)) {
        return RA_EBADMSG;
    }
    return 0;
}

// drop_rnest lets go of the references a task's result was to contain
// (ra_task_return_refs): after the caller has been registered with their
// owners, or when the result changes or fails.
static void
drop_rnest(ra_task_t *t)
{
    ra__nest_drop(ra__g, &t->rnest);
}

static int
set_result(ra_task_t *t, uint8_t kind, const void *data, size_t len)
{
    drop_rnest(t);   // an earlier ra_task_return_refs's
    uint8_t *p = malloc(len != 0 ? len : 1);
    if (p == NULL) {
        return RA_ENOMEM;
    }
    if (len != 0) {
        memcpy(p, data, len);
    }
    free(t->rdata);
    t->rdata = p;
    t->rlen = len;
    t->rkind = kind;
    return 0;
}

int
ra_task_return_bytes(ra_task_t *t, const void *data, size_t len)
{
    return set_result(t, RA_VAL_BYTES, data, data != NULL ? len : 0);
}

int
ra_task_return_bson(ra_task_t *t, const bson_t *doc)
{
    if (doc == NULL) {
        return RA_EINVAL;
    }
    return set_result(t, RA_VAL_BSON, bson_get_data(doc), doc->len);
}

int
ra_task_return_i64(ra_task_t *t, int64_t x)
{
    uint8_t b[8];
    ra__le64_put(b, x);
    return set_result(t, RA_VAL_I64, b, 8);
}

int
ra_task_return_f64(ra_task_t *t, double x)
{
    return set_result(t, RA_VAL_F64, &x, 8);
}

// drop_rref ends t's hold on the reference it returns (if any).
static void
drop_rref(ra_task_t *t)
{
    ra__cluster_t *c = ra__g;
    if (!t->has_rref || c == NULL) {
        return;
    }
    t->has_rref = false;
    if (t->rref.node == c->node && t->rref.proc == c->proc) {
        ra__obj_unborrow(c->cs, t->rref.id);
    } else {
        ra__fref_untask(c, t->rref);
    }
}

const char *
ra__own_ep(const ra__cluster_t *c)
{
    // A process bound to tcp (a node of a multi-node cluster, its workers
    // and drivers) is reached there from other nodes; on one node the
    // default ipc names serve.
    const char *ep = c->link != NULL ? ra_link_endpoint(c->link) : NULL;
    return ep != NULL && strncmp(ep, "tcp://", 6) == 0 ? ep : "";
}

int
ra_task_return_ref(ra_task_t *t, ra_ref_t ref)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    ra__core_t *cs = c->cs;
    ra__lent_t l = {.ref = ref, .core = c->core};
    snprintf(l.ep, sizeof l.ep, "%s", ra__own_ep(c));
    int rc = 0;
    pthread_mutex_lock(&cs->mu);
    if (ref.node == c->node && ref.proc == c->proc) {
        ra__obj_t *o = ra__obj_at(cs, ref.id);
        if (o == NULL || o->released) {
            rc = RA_ENOENT;
        } else {
            o->borrows++;
        }
    } else {
        rc = ra__fref_lend_locked(c, ref, &l);
    }
    pthread_mutex_unlock(&cs->mu);
    if (rc != 0) {
        return rc;
    }
    ra__wbuf_t b = {0};
    ra__lent_blob(&b, ref, l.core, l.ep, false);
    rc = b.err != 0 ? b.err : set_result(t, RA__VAL_LENT, b.p, b.len);
    ra__wb_free(&b);
    drop_rref(t);   // an earlier one's
    if (rc != 0) {
        t->has_rref = true;
        t->rref = ref;
        drop_rref(t);
        return rc;
    }
    t->has_rref = true;
    t->rref = ref;
    t->rcore = l.core;
    return 0;
}

int
ra_task_return_refs(ra_task_t *t, const ra_arg_t *value,
                    const ra_ref_t *refs, size_t nrefs)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return RA_ECLOSED;
    }
    if (value == NULL || value->kind == RA_ARG_REF ||
        value->kind == RA_ARG_BORROW || (nrefs != 0 && refs == NULL) ||
        nrefs > RA__NEST_MAX) {
        return RA_EINVAL;
    }
    ra__wbuf_t b = {0};
    ra__wb_arg(&b, value);
    ra_msg_t *nest = NULL;
    int rc = b.err;
    if (rc == 0 && nrefs != 0) {
        rc = ra__nest_make(c, refs, nrefs, &nest);
    }
    if (rc == 0) {
        // The value without its kind byte and length, as ra_put keeps it.
        rc = set_result(t, b.p[0], b.p + 5, b.len - 5);
    }
    if (rc == 0) {
        t->rnest = nest;
    } else {
        ra__nest_drop(c, &nest);
    }
    ra__wb_free(&b);
    return rc;
}

// register_nest has the owner of each reference in the result of task t
// count the caller (to) as a borrower before the result leaves (the
// task's holds end right after).  Returns 0 or an error, with why set.
static int
register_nest(ra_ctx_t *ctx, ra_task_t *t, ra_pid_t to, char *why,
              size_t cap)
{
    size_t len = 0;
    const void *p = ra_msg_data(t->rnest, &len);
    char what[600] = "";
    int rc = ra__nest_register(ctx, ra__g, p, len, to.node, to.proc, what,
                               sizeof what);
    if (rc != 0) {
        snprintf(why, cap, "the references in its result could not be "
                 "handed to the caller: %s", what);
    }
    return rc;
}

// register_caller has the owner of the reference task t returns count
// the caller (to) as a borrower, before the result leaves: the task's own
// hold on it ends right after.  Returns 0 or an error, with why set.
static int
register_caller(ra_ctx_t *ctx, ra_task_t *t, ra_pid_t to, char *why,
                size_t cap)
{
    int rc = ra__borrow_add(ctx, ra__g, t->rref.id, t->rcore, to.node,
                            to.proc);
    if (rc != 0) {
        snprintf(why, cap, "the reference it returns (object %" PRIu64
                 " of process %u.%u) could not be handed to the caller: "
                 "its owner answered %s", t->rref.id, t->rref.node,
                 t->rref.proc, ra_err_name(rc));
    }
    return rc;
}

int
ra_task_fail(ra_task_t *t, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(t->errtext);
    t->errtext = strdup(buf);
    return RA_ETASK;
}

void *
ra_task_state(const ra_task_t *t)
{
    return t->state;
}

void
ra_task_set_state(ra_task_t *t, void *state)
{
    t->state = state;
}

bool
ra_task_cancelled(const ra_task_t *t)
{
    return t->cancel != NULL && *t->cancel;
}

// A task argument read in place from the node's object store.
typedef struct mapped {
    ra_objstore_view_t view;
    ra_oid_t oid;
    bool pulled;              // a copy our object manager made for us
} mapped_t;

// pull_here has this node's object manager copy object oid from the
// object manager src (at endpoint ep) into our store, and waits for it.
int
ra__pull_here(ra_ctx_t *ctx, ra__cluster_t *c, const ra__objloc_t *loc,
              char *why, size_t cap)
{
    ra_msg_t *m = NULL, *rep = NULL;
    // The copy is ours while this process holds it: the object manager
    // watches our core, not ctx (a scope that ends with this call).
    int rc = ra__pull_msg(0, loc, 0, c->core, &m);
    // The object manager gives up on a transfer that stalls for 30 s; a
    // long one that keeps moving is waited for.  One that ends meanwhile
    // is restarted in place by its supervisor (objmgr.c), having aborted
    // the transfer: ask the new one.
    if (rc == 0) {
        rc = ra__call_kept(c, ctx, c->objmgr, m, -1, RA__KEPT_BACK_MS,
                           &rep);
    }
    ra_msg_unref(&m);
    if (rc != 0) {
        snprintf(why, cap, "cannot ask this node's object manager: %s",
                 ra_strerror(rc));
        return rc;
    }
    uint64_t req;
    ra_oid_t got;
    int status;
    char text[600];
    int bad = ra__pulled_read(rep, &req, &got, &status, text, sizeof text);
    ra_msg_unref(&rep);
    if (bad != 0) {
        snprintf(why, cap, "malformed answer of the object manager");
        return RA_EBADMSG;
    }
    if (status != 0) {
        snprintf(why, cap, "%s", text[0] != '\0' ? text
                                                 : ra_strerror(status));
    }
    return status;
}

// map_args points each argument that lies in an object store at the
// object's bytes in this node's store: mapped where it is, or pulled here
// first from the owner's node.  maps[i] records what to let go after the
// task (unmap_args).  Returns 0, or an error with why set.
static int
map_args(ra_ctx_t *ctx, ra__task_view_t *v, mapped_t *maps, char *why,
         size_t cap)
{
    ra__cluster_t *c = ra__g;
    for (uint32_t i = 0; i < v->nargs; i++) {
        ra__targ_t *a = &v->args[i];
        if (!(a->kind & RA__VAL_IN_STORE)) {
            continue;
        }
        ra__objloc_t loc;
        int rc = ra__objloc_read(a->data, a->len, &loc);
        maps[i].oid = loc.oid;
        if (rc != 0) {
            snprintf(why, cap, "argument %u: malformed store reference", i);
            return RA_EBADMSG;
        }
        if (c == NULL || c->store == NULL) {
            snprintf(why, cap, "argument %u is in an object store and this "
                     "worker has none", i);
            return RA_ENOTSUP;
        }
        if (loc.objmgr.node != c->node) {
            char text[700];
            if (ra_pid_is_nil(c->objmgr)) {
                rc = RA_ENOTSUP;
                snprintf(text, sizeof text, "no object manager here");
            } else {
                rc = ra__pull_here(ctx, c, &loc, text, sizeof text);
            }
            if (rc != 0) {
                snprintf(why, cap, "argument %u (%" PRIu64 " bytes on node "
                         "%u) could not be copied here: %s", i, loc.size,
                         loc.objmgr.node, text);
                return rc == RA_EOBJLOST ? rc : RA_EOBJLOST;
            }
            maps[i].pulled = true;
        }
        rc = ra_objstore_get(c->store, maps[i].oid, 0, &maps[i].view);
        if (rc != 0) {
            snprintf(why, cap, "argument %u is no longer in the object "
                     "store: %s", i, ra_strerror(rc));
            return RA_EOBJLOST;
        }
        a->kind &= (uint8_t)~RA__VAL_IN_STORE;
        a->data = maps[i].view.data;
        a->len = maps[i].view.size;
    }
    return 0;
}

static void
unmap_args(ra_ctx_t *ctx, ra__task_view_t *v, mapped_t *maps)
{
    ra__cluster_t *c = ra__g;
    for (uint32_t i = 0; maps != NULL && i < v->nargs; i++) {
        if (maps[i].view.data != NULL) {
            (void)ra_objstore_release(c->store, &maps[i].view);
        }
        if (maps[i].pulled) {
            ra_msg_t *m = NULL;
            if (ra__unuse_msg(maps[i].oid, c->core, &m) == 0 &&
                ra_send(ctx, c->objmgr, &m) != 0) {
                ra_msg_unref(&m);
            }
        }
    }
}

int
ra__args_map(ra_ctx_t *ctx, ra__task_view_t *v, void **maps, char *why,
             size_t cap)
{
    *maps = NULL;
    for (uint32_t i = 0; i < v->nargs; i++) {
        if (v->args[i].kind & RA__VAL_IN_STORE) {
            mapped_t *m = calloc(v->nargs, sizeof *m);
            if (m == NULL) {
                snprintf(why, cap, "out of memory");
                return RA_ENOMEM;
            }
            *maps = m;
            return map_args(ctx, v, m, why, cap);
        }
    }
    return 0;
}

void
ra__args_unmap(ra_ctx_t *ctx, ra__task_view_t *v, void **maps)
{
    if (*maps != NULL) {
        unmap_args(ctx, v, *maps);
        free(*maps);
        *maps = NULL;
    }
}

// A reference lent to a running call (RA__VAL_LENT), and the value
// fetched for it when it was passed on with RA_ARG_REF.
typedef struct lent {
    bool entered;
    ra_ref_t ref;
    ra_value_t *val;
} lent_t;

// lent_enter makes this process a borrower of each reference lent to
// task v, for the call, and fetches the values of those to resolve (the
// argument then reads as that value).  Returns 0, or an error with why.
static int
lent_enter(ra__task_view_t *v, lent_t **out, char *why, size_t cap)
{
    ra__cluster_t *c = ra__g;
    *out = NULL;
    for (uint32_t i = 0; i < v->nargs; i++) {
        ra__targ_t *a = &v->args[i];
        if (a->kind != RA__VAL_LENT) {
            continue;
        }
        if (*out == NULL && (*out = calloc(v->nargs, sizeof **out)) == NULL) {
            snprintf(why, cap, "out of memory");
            return RA_ENOMEM;
        }
        lent_t *e = &(*out)[i];
        ra__lent_t l;
        if (ra__lent_read(a->data, a->len, &l) != 0) {
            snprintf(why, cap, "argument %u: malformed reference", i);
            return RA_EBADMSG;
        }
        bool own = c != NULL && l.ref.node == c->node && l.ref.proc == c->proc;
        int rc = c == NULL ? RA_ECLOSED : own ? 0 : ra__fref_enter(c, &l);
        if (rc != 0) {
            snprintf(why, cap, "argument %u: %s", i, ra_strerror(rc));
            return rc;
        }
        e->entered = !own;
        e->ref = l.ref;
        if (!l.resolve) {
            continue;
        }
        rc = ra_get(l.ref, -1, &e->val);
        if (rc != 0) {
            snprintf(why, cap, "argument %u (object %" PRIu64 " of process "
                     "%u.%u): %s", i, l.ref.id, l.ref.node, l.ref.proc,
                     e->val != NULL && ra_value_error(e->val)[0] != '\0'
                         ? ra_value_error(e->val)
                         : ra_strerror(rc));
            return rc == RA_ETASK ? rc : RA_EOBJLOST;
        }
        a->kind = (uint8_t)ra_value_kind(e->val);
        a->data = ra_value_data(e->val, &a->len);
        a->nest = ra__value_nest(e->val);
        if (a->kind == RA_VAL_NONE) {
            a->kind = RA_VAL_BYTES;
        } else if (a->kind == RA_VAL_REF) {
            a->kind = RA__VAL_LENT;   // a reference: the task gets it
        }
    }
    return 0;
}

static void
lent_leave(ra_ctx_t *ctx, ra__task_view_t *v, lent_t **lents)
{
    for (uint32_t i = 0; *lents != NULL && i < v->nargs; i++) {
        lent_t *e = &(*lents)[i];
        ra_value_free(&e->val);
        if (e->entered) {
            ra__fref_leave(ctx, ra__g, e->ref);
        }
    }
    free(*lents);
    *lents = NULL;
}

// send_undeliverable tells owner "to" that the result of task v (its
// message len bytes) could not be sent to it (ra_send said err), so that
// the owner gets an error value instead of waiting for ever.  A result
// goes inline when there is no object store to put it in (on this node
// or the owner's) or the store is full, and the link refuses a message
// larger than ra_link_max_msg (about 64 MiB by default) with RA_EFULL.
static void
send_undeliverable(ra_ctx_t *ctx, const ra__task_view_t *v, ra_pid_t to,
                   size_t len, int err)
{
    char why[600], size[200] = "";
    size_t max = ra__g != NULL ? ra_link_max_msg(ra__g->link) : 0;
    if (err == RA_EFULL && max != 0 && len > max) {
        snprintf(size, sizeof size, " (larger than a link message may be, "
                 "%zu bytes; a result that large needs room in the object "
                 "stores of both nodes)", max);
    }
    snprintf(why, sizeof why, "%s %s ran on node %u (worker pid %u), but "
             "its result (%zu bytes) could not be sent to its owner: %s%s",
             v->type == RA__TASK_FN ? "task" : "method", v->name,
             ra_self(ctx).node, ra_self(ctx).proc, len, ra_err_name(err),
             size);
    ra_log_warn("worker", "%s", why);
    ra_msg_t *m = NULL;
    if (ra__result_msg(v->id, v->attempt, RA_ETASK, RA_VAL_NONE, why,
                       strlen(why), &m) == 0 &&
        ra_send(ctx, to, &m) != 0) {
        ra_msg_unref(&m);
    }
}

void
ra__task_run(ra_ctx_t *ctx, ra_pid_t to, ra_task_fn fn, ra__task_view_t *v,
             void **state, int pre_err, const char *pre_text)
{
    ra_task_t t = {.view = v, .state = state != NULL ? *state : NULL,
                   .cancel = ra__worker_cancel_flag()};
    int rc = pre_err;
    void *maps = NULL;
    lent_t *lents = NULL;
    char mwhy[900];
    if (rc == 0 && ((rc = lent_enter(v, &lents, mwhy, sizeof mwhy)) != 0 ||
                    (rc = ra__args_map(ctx, v, &maps, mwhy,
                                       sizeof mwhy)) != 0)) {
        pre_text = mwhy;
        pre_err = rc;
    }
    if (rc == 0) {
        rc = fn(&t);
    }
    if (rc == 0 && t.rkind == RA__VAL_LENT && t.has_rref &&
        (rc = register_caller(ctx, &t, to, mwhy, sizeof mwhy)) != 0) {
        pre_text = mwhy;
        pre_err = RA_ETASK;
        rc = RA_ETASK;
    }
    if (rc == 0 && t.rnest != NULL &&
        (rc = register_nest(ctx, &t, to, mwhy, sizeof mwhy)) != 0) {
        pre_text = mwhy;
        pre_err = RA_ETASK;
        rc = RA_ETASK;
    }
    // The result's message names the references; the holds end now.
    ra_msg_t *rnest = rc == 0 && t.rnest != NULL ? ra_msg_ref(t.rnest)
                                                  : NULL;
    drop_rnest(&t);
    drop_rref(&t);
    ra__args_unmap(ctx, v, &maps);
    // Before the result leaves: references kept past the call are
    // registered with their owners here.
    lent_leave(ctx, v, &lents);
    ra_msg_t *res = NULL;
    if (rc == 0) {
        if (state != NULL) {
            *state = t.state;
        }
        ra__cluster_t *c = ra__g;
        ra_objstore_t *st = c != NULL ? c->store : NULL;
        ra_oid_t oid;
        ra__oid_make(oid.b, to.node, to.proc, v->id);
        // A large value goes through the node's object store: the owner
        // maps it instead of receiving a copy.  A store that is full (or
        // absent) leaves it inline.
        bool stored = false;
        // An owner on this node maps it; one on another node has its
        // node's object manager pull it from ours, which holds it until
        // then.
        bool here = c != NULL && to.node == c->node;
        bool far = c != NULL && !here && !ra_pid_is_nil(c->objmgr) &&
                   c->node_ep[0] != '\0';
        if (st != NULL && t.rlen >= c->inline_max && (here || far)) {
            (void)ra_objstore_delete(st, oid); // an earlier attempt's
            stored = ra_objstore_put(st, oid, t.rdata, t.rlen) == 0;
        }
        if (stored && far) {
            stored = ra_objstore_ref(st, oid) == 0;
            if (!stored) {
                (void)ra_objstore_delete(st, oid);
            }
        }
        if (stored && far) {
            ra__wbuf_t h = {0};
            ra__wb_u8(&h, RA__OBJ_HOLD);
            ra__wb_raw(&h, oid.b, 16);
            ra__wb_pid(&h, to);
            ra_msg_t *hm = NULL;
            if (ra__wb_msg(&h, RA__T_OBJ, &hm) == 0 &&
                ra_send(ctx, c->objmgr, &hm) != 0) {
                ra_msg_unref(&hm);
            }
            ra__wbuf_t d = {0};
            ra__wb_objloc(&d, oid, c->objmgr, c->node_ep, t.rlen);
            rc = d.err != 0 ? d.err
                 : ra__result_msg_nest(v->id, v->attempt, 0,
                                       (uint8_t)(t.rkind | RA__VAL_IN_STORE |
                                                 RA__VAL_REMOTE),
                                       d.p, d.len, rnest, &res);
            ra__wb_free(&d);
        } else if (stored) {
            rc = ra__result_msg_nest(v->id, v->attempt, 0,
                                     (uint8_t)(t.rkind | RA__VAL_IN_STORE),
                                     oid.b, sizeof oid.b, rnest, &res);
        } else {
            rc = ra__result_msg_nest(v->id, v->attempt, 0, t.rkind, t.rdata,
                                     t.rlen, rnest, &res);
        }
    } else {
        char buf[1200];
        char host[64] = "";
        (void)gethostname(host, sizeof host - 1);
        snprintf(buf, sizeof buf, "%s %s failed on node %u (%s), worker "
                 "pid %u: %s",
                 v->type == RA__TASK_FN ? "task" : "method", v->name,
                 ra_self(ctx).node, host, ra_self(ctx).proc,
                 pre_text != NULL ? pre_text
                 : t.errtext != NULL ? t.errtext
                 : ra_err_name(rc));
        rc = ra__result_msg(v->id, v->attempt,
                            rc == RA_ETASK || pre_err != 0 ? rc : RA_ETASK,
                            RA_VAL_NONE, buf, strlen(buf), &res);
    }
    if (rc == 0) {
        size_t rlen = 0;
        (void)ra_msg_data(res, &rlen);
        int src = ra_send(ctx, to, &res);
        if (src != 0) {
            ra_msg_unref(&res);
            send_undeliverable(ctx, v, to, rlen, src);
        }
    }
    ra_msg_unref(&rnest);
    free(t.rdata);
    free(t.errtext);
}

void
ra__wb_res(ra__wbuf_t *b, const ra_resources_t *r)
{
    size_t n = r->ncustom < RA_RES_CUSTOM_MAX ? r->ncustom
                                               : RA_RES_CUSTOM_MAX;
    ra__wb_f64(b, r->cpus);
    ra__wb_f64(b, r->gpus);
    ra__wb_f64(b, r->memory);
    ra__wb_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        ra__wb_str(b, r->custom[i].name);
        ra__wb_f64(b, r->custom[i].amount);
    }
}

void
ra__rb_res(ra__rbuf_t *r, ra_resources_t *out)
{
    memset(out, 0, sizeof *out);
    out->cpus = ra__rb_f64(r);
    out->gpus = ra__rb_f64(r);
    out->memory = ra__rb_f64(r);
    uint32_t n = ra__rb_u32(r);
    if (n > RA_RES_CUSTOM_MAX) {
        r->bad = true;
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        ra__rb_str(r, out->custom[i].name, sizeof out->custom[i].name);
        out->custom[i].amount = ra__rb_f64(r);
    }
    out->ncustom = n;
    if (!(out->cpus >= 0 && out->cpus < 1e9) ||
        !(out->gpus >= 0 && out->gpus < 1e6) ||
        !(out->memory >= 0 && out->memory < 1e18)) {
        r->bad = true;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!(out->custom[i].amount >= 0 && out->custom[i].amount < 1e12) ||
            out->custom[i].name[0] == '\0') {
            r->bad = true;
        }
    }
}

size_t
ra__name_key(char *key, size_t cap, const char *ns, const char *name)
{
    size_t a = strlen(ns), b = strlen(name);
    if (a + b + 1 > cap) {
        return 0;
    }
    memcpy(key, ns, a);
    key[a] = '\0';
    memcpy(key + a + 1, name, b);
    return a + b + 1;
}

void
ra__res_extra(const ra_resources_t *in, ra_resources_t *out)
{
    memset(out, 0, sizeof *out);
    if (in != NULL) {
        *out = *in;
        out->cpus = 0;
        out->gpus = 0;
    }
}

bool
ra__res_same(const ra_resources_t *a, const ra_resources_t *b)
{
    // The common case, on every task submitted: no custom resources.
    if (a->ncustom == 0 && b->ncustom == 0) {
        return a->cpus == b->cpus && a->gpus == b->gpus &&
               a->memory == b->memory;
    }
    return ra_resources_fit(a, b) && ra_resources_fit(b, a);
}

// append adds the string piece to buf (cap bytes, len used), cut to fit.
static size_t
append(char *buf, size_t cap, size_t len, const char *piece)
{
    size_t n = strlen(piece);
    if (len + 1 >= cap) {
        return len;
    }
    if (n > cap - 1 - len) {
        n = cap - 1 - len;
    }
    memcpy(buf + len, piece, n);
    buf[len + n] = '\0';
    return len + n;
}

void
ra__describe_need(char *buf, size_t cap, double cpus, double gpus,
                  const ra_resources_t *x)
{
    char piece[96];
    size_t len = 0;
    if (cap == 0) {
        return;
    }
    buf[0] = '\0';
    snprintf(piece, sizeof piece, "%g CPUs and %g GPUs", cpus, gpus);
    len = append(buf, cap, len, piece);
    if (x != NULL && x->memory > 0) {
        snprintf(piece, sizeof piece, ", %g bytes of memory", x->memory);
        len = append(buf, cap, len, piece);
    }
    for (size_t i = 0; x != NULL && i < x->ncustom; i++) {
        if (x->custom[i].amount > 0) {
            snprintf(piece, sizeof piece, ", %g %.*s", x->custom[i].amount,
                     (int)sizeof x->custom[i].name, x->custom[i].name);
            len = append(buf, cap, len, piece);
        }
    }
}

void
ra__id_key(uint64_t id, unsigned char key[8])
{
    for (int i = 7; i >= 0; i--) {
        key[i] = (unsigned char)(id & 0xff);
        id >>= 8;
    }
}

uint64_t
ra__id_of_key(const void *key, size_t klen)
{
    uint64_t id = 0;
    for (size_t i = 0; i < klen && i < 8; i++) {
        id = id << 8 | ((const unsigned char *)key)[i];
    }
    return id;
}

int
ra__max_id_scan(void *user, const void *key, size_t klen, const void *val,
                size_t vlen)
{
    uint64_t *max = user;
    uint64_t id = ra__id_of_key(key, klen);
    (void)val;
    (void)vlen;
    if (id > *max) {
        *max = id;
    }
    return 0;
}

int
ra__reply_status(ra_msg_t **reply, ra__rbuf_t *r)
{
    ra__rb_init(r, *reply);
    int st = (int32_t)ra__rb_u32(r);
    st = r->bad ? RA_EBADMSG : st;
    if (st != 0) {
        ra_msg_unref(reply);
    }
    return st;
}

int
ra__call_status(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t **req,
                int64_t timeout_ms, ra_msg_t **reply, ra__rbuf_t *r)
{
    int rc = ra_call(ctx, to, req, timeout_ms, reply);
    ra_msg_unref(req);
    return rc != 0 ? rc : ra__reply_status(reply, r);
}

// ---- kept up in place ----

int
ra__keep_start(ra_runtime_t *rt, const char *id, ra_child_start_fn start,
               void *arg, uint32_t *slot, ra_pid_t *sup)
{
    int rc = ra__slot_reserve(rt, slot);
    if (rc != 0) {
        return rc;
    }
    ra_sup_flags_t f = {.strategy = RA_ONE_FOR_ONE,
                        .intensity = RA__KEEP_RESTARTS,
                        .period_ms = RA__KEEP_PERIOD_MS};
    ra_child_spec_t spec = {.id = id, .start = start, .start_arg = arg,
                            .restart = RA_PERMANENT};
    // (On an error the reserved slot stays taken: the runtime is being
    // given up.)
    return ra_sup_start(rt, NULL, &f, &spec, 1, sup);
}

int
ra__keep_spawn(ra_ctx_t *sup, uint32_t slot, const ra_behaviour_t *b,
               void *state, const void *tick, size_t tick_len, bool *taken,
               ra_pid_t *out)
{
    // (Spawned unlinked, so that a failed spawn never ran terminate and
    // state is still the caller's; linked next.)
    ra_pid_t pid;
    *taken = false;
    int rc = ra__spawn_reserved(ra_ctx_runtime(sup), NULL, slot, b, state,
                                NULL, 2000, &pid);
    if (rc != 0) {
        return rc;
    }
    *taken = true;
    if ((rc = ra_link(sup, pid)) != 0) {
        // It ended already: the supervisor tries again.
        (void)ra_exit_pid(sup, pid, RA_KILL);
        return rc;
    }
    ra_msg_t *m = NULL;
    if (tick != NULL &&
        ra_msg_new_bytes(&m, RA__T_TICK, tick, tick_len) == 0 &&
        ra_runtime_send(ra_ctx_runtime(sup), pid, &m) != 0) {
        ra_msg_unref(&m);
    }
    *out = pid;
    return 0;
}

int
ra__kept_again(ra__cluster_t *c, int rc, int (*again)(void *), void *arg,
               int64_t back_ms)
{
    // Up to back_ms of naps: on a scheduler thread its queue moves on.
    bool waiting = rc == RA_ENOPROC && ra__sched_wait_begin();
    for (int64_t waited = 0; rc == RA_ENOPROC && waited < back_ms &&
                             !atomic_load(&c->stopping);
         waited += 5) {
        struct timespec ts = {0, 5 * 1000000};
        nanosleep(&ts, NULL);
        rc = again(arg);
    }
    ra__sched_wait_end(waiting);
    return rc;
}

typedef struct kept_call {
    ra_ctx_t *ctx;
    ra_pid_t to;
    ra_msg_t *m;
    int64_t timeout_ms;
    ra_msg_t **reply;
} kept_call_t;

static int
kept_call(void *arg)
{
    kept_call_t *k = arg;
    ra_msg_t *m = ra_msg_ref(k->m); // (a call may take its request)
    int rc = ra_call(k->ctx, k->to, &m, k->timeout_ms, k->reply);
    ra_msg_unref(&m);
    return rc;
}

int
ra__call_kept(ra__cluster_t *c, ra_ctx_t *ctx, ra_pid_t to, ra_msg_t *m,
              int64_t timeout_ms, int64_t back_ms, ra_msg_t **reply)
{
    kept_call_t k = {ctx, to, m, timeout_ms, reply};
    return ra__kept_again(c, kept_call(&k), kept_call, &k, back_ms);
}

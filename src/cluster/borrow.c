// borrow.c - references lent to other processes (Ray's borrowers).
//
// An object belongs to the process that made it (its owner).  A reference
// passed with RA_ARG_BORROW reaches a task as the reference itself, with
// the owner's core and endpoint beside it (a "lent" argument, wire kind
// RA__VAL_LENT).  The process that runs the task becomes a borrower: its
// core's table of foreign references (cs->frefs) counts why it still
// needs each one, and it asks the owner's core for the value (GET).
//
// Who keeps the object alive:
//  - while a task that received it runs, the submitter's hold on that
//    task (the owner's own object count, or the submitter's fref);
//  - after that, a registration with the owner (ADD), made by the
//    borrower before the task's result leaves it, so that the owner
//    counts it before the task's hold ends; dropped with DEL when the
//    borrower lets go, or when the owner sees the borrower's process go.
//
// Messages RA__T_BORROW {u8 op, ...} to an owner's core:
//  ADD  call {u64 id, u32 node, u32 proc}: process {node, proc} keeps
//       object id; answered {i32 status} (RA_ENOENT: no such object).
//  DEL  {u64 id, u32 node, u32 proc}: it no longer does.
//  ADDN call {u64 n, u32 node, u32 proc, n x u64 id}: ADD of n objects
//       at once (the references inside an object), all or none;
//       answered {i32 status} (RA_ENOENT: one of them is gone).
//  GET  call {u64 id, u8 wait}: the value, answered when the object is
//       done (wait 0: at once, RA_ETIMEOUT while pending) with {i32
//       status, u8 kind, bytes}: the value inline; with RA__VAL_IN_STORE
//       | RA__VAL_REMOTE an objloc (see cluster_impl.h); with only
//       RA__VAL_IN_STORE the 16-byte oid in the store of the owner's node
//       (which has no object manager); on an error, its text.  A value
//       that contains references (ra_put_refs, ra_task_return_refs) has
//       them in a trailing field, bytes nest (cluster_impl.h): the asker
//       registers with each one's owner (ADD) before it keeps the value.
//
// The holds of a nest: the object that contains it holds each reference
// (its owner's count for our own objects, f->keeps for borrowed ones)
// until the object is freed; a borrower that keeps the value holds each
// one the same way, registered with its owner.
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_impl.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_objstore.h"

// How long a borrower waits for its owner to take its registration.
#define ADD_TIMEOUT_MS 10000

static ra__hkey_t
fkey(ra_ref_t r)
{
    return (ra__hkey_t){(uint64_t)r.node << 32 | r.proc, r.id};
}

// ---- the lent argument's wire ----

void
ra__lent_blob(ra__wbuf_t *b, ra_ref_t ref, ra_pid_t core, const char *ep,
              bool resolve)
{
    ra__wb_u32(b, ref.node);
    ra__wb_u32(b, ref.proc);
    ra__wb_u64(b, ref.id);
    ra__wb_pid(b, core);
    ra__wb_str(b, ep != NULL ? ep : "");
    ra__wb_u8(b, resolve ? 1 : 0);
}

void
ra__wb_lent(ra__wbuf_t *b, ra_ref_t ref, ra_pid_t core, const char *ep,
            bool resolve)
{
    ra__wbuf_t d = {0};
    ra__lent_blob(&d, ref, core, ep, resolve);
    if (d.err != 0) {
        b->err = d.err;
    }
    ra__wb_u8(b, RA__VAL_LENT);
    ra__wb_bytes(b, d.p, d.len);
    ra__wb_free(&d);
}

int
ra__lent_read(const void *data, size_t len, ra__lent_t *out)
{
    ra__rbuf_t r = {.p = data, .len = len};
    memset(out, 0, sizeof *out);
    out->ref.node = ra__rb_u32(&r);
    out->ref.proc = ra__rb_u32(&r);
    out->ref.id = ra__rb_u64(&r);
    out->core = ra__rb_pid(&r);
    ra__rb_str(&r, out->ep, sizeof out->ep);
    uint8_t res = ra__rb_u8(&r);
    if (r.bad || r.off != r.len || res > 1 || out->ref.id == 0 ||
        out->core.node != out->ref.node || out->core.proc != out->ref.proc) {
        return RA_EBADMSG;
    }
    out->resolve = res == 1;
    return 0;
}

// ---- references inside objects (nests) ----

// nest_next reads the next reference of a nest from r (past its count):
// 0 or RA_EBADMSG.
static int
nest_next(ra__rbuf_t *r, ra__lent_t *out)
{
    size_t bl = 0;
    const void *b = ra__rb_bytes(r, &bl);
    return r->bad || ra__lent_read(b, bl, out) != 0 || out->resolve
               ? RA_EBADMSG
               : 0;
}

int
ra__nest_count(const void *data, size_t len, uint32_t *n)
{
    ra__rbuf_t r = {.p = data, .len = len};
    uint32_t k = ra__rb_u32(&r);
    if (r.bad || k > RA__NEST_MAX) {
        return RA_EBADMSG;
    }
    for (uint32_t i = 0; i < k; i++) {
        ra__lent_t l;
        if (nest_next(&r, &l) != 0) {
            return RA_EBADMSG;
        }
    }
    if (r.off != r.len) {
        return RA_EBADMSG;
    }
    *n = k;
    return 0;
}

size_t
ra__nest_size(const ra_msg_t *nest)
{
    uint32_t n = 0;
    size_t len = 0;
    const void *p = nest != NULL ? ra_msg_data(nest, &len) : NULL;
    return p != NULL && ra__nest_count(p, len, &n) == 0 ? n : 0;
}

int
ra__nest_ref(const ra_msg_t *nest, size_t i, ra_ref_t *out)
{
    if (i >= ra__nest_size(nest)) {
        return RA_ENOENT;
    }
    size_t len = 0;
    const void *p = ra_msg_data(nest, &len);
    ra__rbuf_t r = {.p = p, .len = len};
    (void)ra__rb_u32(&r);
    ra__lent_t l;
    for (size_t k = 0; k <= i; k++) {
        if (nest_next(&r, &l) != 0) {
            return RA_EBADMSG;
        }
    }
    if (out != NULL) {
        *out = l.ref;
    }
    return 0;
}

// nest_each calls fn on every reference of a valid nest.
static void
nest_each(ra__cluster_t *c, const ra_msg_t *nest,
          void (*fn)(ra__cluster_t *, const ra__lent_t *))
{
    if (nest == NULL) {
        return;
    }
    size_t len = 0;
    const uint8_t *p = ra_msg_data(nest, &len);
    ra__rbuf_t r = {.p = p, .len = len};
    uint32_t k = ra__rb_u32(&r);
    ra__lent_t l;
    for (uint32_t i = 0; i < k && nest_next(&r, &l) == 0; i++) {
        fn(c, &l);
    }
}

void
ra__nest_hold_locked(ra__cluster_t *c, const ra_msg_t *nest)
{
    nest_each(c, nest, ra__fref_hold_locked);
}

void
ra__nest_unhold_locked(ra__cluster_t *c, const ra_msg_t *nest)
{
    nest_each(c, nest, ra__fref_unhold_locked);
}

void
ra__nest_drop_locked(ra__cluster_t *c, ra_msg_t **nest)
{
    if (*nest != NULL) {
        ra__nest_unhold_locked(c, *nest);
        ra_msg_unref(nest);
    }
}

void
ra__nest_drop(ra__cluster_t *c, ra_msg_t **nest)
{
    if (*nest == NULL || c == NULL) {
        ra_msg_unref(nest);
        return;
    }
    pthread_mutex_lock(&c->cs->mu);
    ra__nest_drop_locked(c, nest);
    pthread_mutex_unlock(&c->cs->mu);
}

int
ra__nest_make(ra__cluster_t *c, const ra_ref_t *refs, size_t n,
              ra_msg_t **out)
{
    ra__core_t *cs = c->cs;
    if (n > RA__NEST_MAX || (n != 0 && refs == NULL)) {
        return RA_EINVAL;
    }
    ra__wbuf_t b = {0};
    ra__wb_u32(&b, (uint32_t)n);
    int rc = 0;
    size_t held = 0;
    pthread_mutex_lock(&cs->mu);
    for (; held < n; held++) {
        ra_ref_t r = refs[held];
        ra_pid_t core = c->core;
        const char *ep = ra__own_ep(c);
        if (r.node == c->node && r.proc == c->proc) {
            ra__obj_t *o = ra__obj_at(cs, r.id);
            if (o == NULL || (o->released && o->borrows == 0)) {
                rc = RA_ENOENT;
                break;
            }
            o->borrows++;
        } else {
            ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(r));
            if (f == NULL) {
                rc = RA_ENOENT;
                break;
            }
            f->keeps++;
            core = f->core;
            ep = f->ep;
        }
        ra__wbuf_t d = {0};
        ra__lent_blob(&d, r, core, ep, false);
        ra__wb_bytes(&b, d.p, d.len);
        if (d.err != 0) {
            b.err = d.err;
        }
        ra__wb_free(&d);
    }
    if (rc == 0 && b.err != 0) {
        rc = b.err;
    }
    if (rc == 0) {
        rc = ra_msg_new_bytes(out, 0, b.p, b.len);
    }
    if (rc != 0) {
        // Let go of what was held (the same way an object's end does).
        for (size_t i = 0; i < held; i++) {
            ra__lent_t l = {.ref = refs[i]};
            ra__fref_unhold_locked(c, &l);
        }
    }
    pthread_mutex_unlock(&cs->mu);
    ra__wb_free(&b);
    return rc;
}

// ---- the borrower's side ----

// send_del tells f's owner that this process no longer borrows it.
static void
send_del(ra__cluster_t *c, const ra__fref_t *f)
{
    ra_msg_t *m = NULL;
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__BORROW_DEL);
    ra__wb_u64(&b, f->ref.id);
    ra__wb_u32(&b, c->node);
    ra__wb_u32(&b, c->proc);
    if (ra__wb_msg(&b, RA__T_BORROW, &m) == 0 &&
        ra_runtime_send(c->rt, f->core, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// fref_let_go ends what f holds: the owner hears of it (DEL) if it
// counted us; a copy pulled here for us is let go, and so is the borrow
// of the object its value refers to.  Frees f.  cs->mu held.
static void
fref_let_go(ra__cluster_t *c, ra__fref_t *f)
{
    ra_msg_t *m = NULL;
    ra__lent_t inner;
    if (f->holds_inner && !c->stopping &&
        ra__lent_read(f->data, f->len, &inner) == 0) {
        ra__fref_unhold_locked(c, &inner);
    }
    if (f->nest != NULL && !c->stopping) {
        ra__nest_unhold_locked(c, f->nest);
    }
    ra_msg_unref(&f->nest);
    if (f->registered && !c->stopping) {
        send_del(c, f);
    }
    if (f->pulled && !c->stopping && c->store != NULL) {
        if (ra__unuse_msg(f->oid, c->core, &m) == 0 &&
            ra_runtime_send(c->rt, c->objmgr, &m) != 0) {
            ra_msg_unref(&m);
        }
    }
    ra_msg_unref(&f->msg);
    free(f);
}

// fref_maybe_drop forgets f when nothing needs it any more (cs->mu held).
static void
fref_maybe_drop(ra__cluster_t *c, ra__fref_t *f)
{
    if (f->calls != 0 || f->keeps != 0 || f->tasks != 0 || f->busy != 0) {
        return;
    }
    (void)ra__hmap_del(&c->cs->frefs, fkey(f->ref));
    fref_let_go(c, f);
}

// learn_route registers the address of l's owner, which may not have
// dialled us yet.  Processes bound to TCP (those of a multi-node cluster)
// give theirs, and are reached only there, on this node as on any other:
// only processes that share an ipc directory (ep empty) find each other by
// their default names.
static void
learn_route(ra__cluster_t *c, const ra__lent_t *l)
{
    if (strncmp(l->ep, "tcp://", 6) == 0 &&
        (l->ref.node != c->node || l->ref.proc != c->proc)) {
        (void)ra_link_route(c->link, l->ref.node, l->ref.proc, l->ep);
    }
}

int
ra__fref_enter(ra__cluster_t *c, const ra__lent_t *l)
{
    ra__core_t *cs = c->cs;
    pthread_mutex_lock(&cs->mu);
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(l->ref));
    if (f == NULL) {
        if ((f = calloc(1, sizeof *f)) == NULL ||
            ra__hmap_put(&cs->frefs, fkey(l->ref), f) != 0) {
            free(f);
            pthread_mutex_unlock(&cs->mu);
            return RA_ENOMEM;
        }
        f->ref = l->ref;
        f->core = l->core;
        snprintf(f->ep, sizeof f->ep, "%s", l->ep);
    }
    f->calls++;
    pthread_mutex_unlock(&cs->mu);
    learn_route(c, l);
    return 0;
}

// add_call sends the ADD or ADDN in b to core as a call (from ctx, or a
// scope of its own when ctx is NULL) and returns its status.  Frees b.
static int
add_call(ra_ctx_t *ctx, ra__cluster_t *c, ra_pid_t core, ra__wbuf_t *b)
{
    ra_msg_t *m = NULL, *rep = NULL;
    ra_ctx_t *scope = NULL;
    ra__rbuf_t r;
    int rc = ra__wb_msg(b, RA__T_BORROW, &m);
    if (rc == 0 && ctx == NULL && (rc = ra_scope_new(c->rt, &scope)) == 0) {
        ctx = scope;
    }
    if (rc == 0) {
        rc = ra__call_status(ctx, core, &m, ADD_TIMEOUT_MS, &rep, &r);
    }
    ra_msg_unref(&m);
    ra_msg_unref(&rep);
    ra_scope_destroy(&scope);
    return rc;
}

int
ra__borrow_add(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t id, ra_pid_t core,
               uint32_t node, uint32_t proc)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__BORROW_ADD);
    ra__wb_u64(&b, id);
    ra__wb_u32(&b, node);
    ra__wb_u32(&b, proc);
    return add_call(ctx, c, core, &b);
}

// One reference of a nest being registered.
typedef struct nent {
    ra_ref_t ref;
    ra_pid_t core;
    bool added;
} nent_t;

static int
nent_cmp(const void *a, const void *b)
{
    const ra_pid_t *x = &((const nent_t *)a)->core;
    const ra_pid_t *y = &((const nent_t *)b)->core;
    uint32_t xs[4] = {x->node, x->proc, x->id, x->gen};
    uint32_t ys[4] = {y->node, y->proc, y->id, y->gen};
    for (int i = 0; i < 4; i++) {
        if (xs[i] != ys[i]) {
            return xs[i] < ys[i] ? -1 : 1;
        }
    }
    return 0;
}

// borrow_addn makes one ADDN call to core for ids[0..n-1].
static int
borrow_addn(ra_ctx_t *ctx, ra__cluster_t *c, ra_pid_t core,
            const nent_t *e, size_t n, uint32_t node, uint32_t proc)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__BORROW_ADDN);
    ra__wb_u64(&b, n);
    ra__wb_u32(&b, node);
    ra__wb_u32(&b, proc);
    for (size_t i = 0; i < n; i++) {
        ra__wb_u64(&b, e[i].ref.id);
    }
    return add_call(ctx, c, core, &b);
}

int
ra__nest_register(ra_ctx_t *ctx, ra__cluster_t *c, const void *nest,
                  size_t len, uint32_t node, uint32_t proc, char *why,
                  size_t cap)
{
    uint32_t n = 0;
    int rc = ra__nest_count(nest, len, &n);
    if (rc != 0 || n == 0) {
        snprintf(why, cap, "%s", rc != 0 ? "malformed references" : "");
        return rc;
    }
    nent_t *e = calloc(n, sizeof *e);
    if (e == NULL) {
        snprintf(why, cap, "out of memory");
        return RA_ENOMEM;
    }
    ra__rbuf_t r = {.p = nest, .len = len};
    (void)ra__rb_u32(&r);
    for (uint32_t i = 0; i < n; i++) {
        ra__lent_t l;
        (void)nest_next(&r, &l);   // valid: counted above
        e[i].ref = l.ref;
        e[i].core = l.core;
        learn_route(c, &l);
    }
    // One call per owner.
    qsort(e, n, sizeof *e, nent_cmp);
    for (uint32_t i = 0, j; rc == 0 && i < n; i = j) {
        for (j = i + 1; j < n && ra_pid_eq(e[j].core, e[i].core); j++) {
        }
        rc = borrow_addn(ctx, c, e[i].core, e + i, j - i, node, proc);
        for (uint32_t k = i; k < j && rc == 0; k++) {
            e[k].added = true;
        }
        if (rc != 0) {
            snprintf(why, cap, "the owner of object %" PRIu64 " of process "
                     "%u.%u (and of %u more here) answered %s", e[i].ref.id,
                     e[i].ref.node, e[i].ref.proc, j - i - 1,
                     ra_err_name(rc));
        }
    }
    for (uint32_t i = 0; rc != 0 && i < n; i++) {
        if (!e[i].added) {
            continue;
        }
        if (e[i].ref.node != node || e[i].ref.proc != proc) {
            ra__borrow_del(c, e[i].ref.id, e[i].core, node, proc);
        } else if (node == c->node && proc == c->proc) {
            ra__obj_unborrow(c->cs, e[i].ref.id);   // ours, counted by ADD
        }
    }
    free(e);
    return rc;
}

void
ra__borrow_del(ra__cluster_t *c, uint64_t id, ra_pid_t core, uint32_t node,
               uint32_t proc)
{
    ra_msg_t *m = NULL;
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__BORROW_DEL);
    ra__wb_u64(&b, id);
    ra__wb_u32(&b, node);
    ra__wb_u32(&b, proc);
    if (ra__wb_msg(&b, RA__T_BORROW, &m) == 0 &&
        ra_runtime_send(c->rt, core, &m) != 0) {
        ra_msg_unref(&m);
    }
}

void
ra__fref_leave(ra_ctx_t *ctx, ra__cluster_t *c, ra_ref_t ref)
{
    ra__core_t *cs = c->cs;
    pthread_mutex_lock(&cs->mu);
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(ref));
    if (f == NULL || f->calls == 0) {
        pthread_mutex_unlock(&cs->mu);
        return;
    }
    if (f->calls == 1 && (f->keeps != 0 || f->tasks != 0) &&
        !f->registered) {
        // Kept past the call (ra_borrow, or a task it was passed to): the
        // owner must count us before the call's result, whose arrival
        // ends the hold of the call, leaves here.
        ra_pid_t core = f->core;
        f->busy++;
        pthread_mutex_unlock(&cs->mu);
        int rc = ra__borrow_add(ctx, c, ref.id, core, c->node, c->proc);
        pthread_mutex_lock(&cs->mu);
        f->busy--;
        if (rc == 0) {
            f->registered = true;
        } else {
            ra_log_warn("core", "object %" PRIu64 " of process %u.%u kept "
                        "past a call, but its owner did not take the "
                        "borrow: %s", ref.id, ref.node, ref.proc,
                        ra_strerror(rc));
        }
    }
    f->calls--;
    fref_maybe_drop(c, f);
    pthread_mutex_unlock(&cs->mu);
}

int
ra__fref_keep(ra__cluster_t *c, ra_ref_t ref)
{
    ra__core_t *cs = c->cs;
    pthread_mutex_lock(&cs->mu);
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(ref));
    if (f != NULL) {
        f->keeps++;
    }
    pthread_mutex_unlock(&cs->mu);
    return f != NULL ? 0 : RA_ENOENT;
}

bool
ra__fref_release(ra__cluster_t *c, ra_ref_t ref)
{
    ra__core_t *cs = c->cs;
    pthread_mutex_lock(&cs->mu);
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(ref));
    bool had = f != NULL && f->keeps != 0;
    if (had) {
        f->keeps--;
        fref_maybe_drop(c, f);
    }
    pthread_mutex_unlock(&cs->mu);
    return had;
}

int
ra__fref_lend_locked(ra__cluster_t *c, ra_ref_t ref, ra__lent_t *out)
{
    ra__fref_t *f = ra__hmap_get(&c->cs->frefs, fkey(ref));
    if (f == NULL) {
        return RA_ENOENT;
    }
    f->tasks++;
    memset(out, 0, sizeof *out);
    out->ref = ref;
    out->core = f->core;
    snprintf(out->ep, sizeof out->ep, "%s", f->ep);
    return 0;
}

void
ra__fref_untask(ra__cluster_t *c, ra_ref_t ref)
{
    ra__core_t *cs = c->cs;
    pthread_mutex_lock(&cs->mu);
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(ref));
    if (f != NULL && f->tasks != 0) {
        f->tasks--;
        fref_maybe_drop(c, f);
    }
    pthread_mutex_unlock(&cs->mu);
}

void
ra__fref_hold_locked(ra__cluster_t *c, const ra__lent_t *l)
{
    ra__core_t *cs = c->cs;
    if (l->ref.node == c->node && l->ref.proc == c->proc) {
        return;   // ours: counted by our own ADD (on_add, self)
    }
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(l->ref));
    if (f == NULL) {
        if ((f = calloc(1, sizeof *f)) == NULL ||
            ra__hmap_put(&cs->frefs, fkey(l->ref), f) != 0) {
            // The owner counts us; without a record we cannot tell it when
            // we are done, and the object lives until this process ends.
            free(f);
            return;
        }
        f->ref = l->ref;
        f->core = l->core;
        snprintf(f->ep, sizeof f->ep, "%s", l->ep);
        learn_route(c, l);
    } else if (f->registered) {
        // Counted by the owner twice (the task registered us again): one
        // DEL now keeps its count in step with ours, which stays one.
        send_del(c, f);
    }
    f->registered = true;
    f->keeps++;
}

void
ra__fref_unhold_locked(ra__cluster_t *c, const ra__lent_t *l)
{
    ra__core_t *cs = c->cs;
    if (l->ref.node == c->node && l->ref.proc == c->proc) {
        ra__obj_t *o = ra__obj_at(cs, l->ref.id);
        if (o != NULL && o->borrows > 0) {
            o->borrows--;
            ra__obj_maybe_free_locked(cs, l->ref.id);
        }
        return;
    }
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(l->ref));
    if (f != NULL && f->keeps != 0) {
        f->keeps--;
        fref_maybe_drop(c, f);
    }
}

bool
ra__fref_known(ra__cluster_t *c, ra_ref_t ref)
{
    pthread_mutex_lock(&c->cs->mu);
    bool k = ra__hmap_get(&c->cs->frefs, fkey(ref)) != NULL;
    pthread_mutex_unlock(&c->cs->mu);
    return k;
}

// fill_out copies f's cached value into *out (cs->mu held).
static void
fill_out(const ra__fref_t *f, ra__fval_t *out)
{
    memset(out, 0, sizeof *out);
    out->status = f->status;
    out->kind = f->kind;
    out->in_store = f->in_store;
    out->oid = f->oid;
    if (f->msg != NULL) {
        out->msg = ra_msg_ref(f->msg);
        out->data = f->data;
        out->len = f->len;
    }
    out->nest = f->nest != NULL ? ra_msg_ref(f->nest) : NULL;
}

// nest_borrow registers this process with the owner of each reference
// in a nest received with object ref's value, and copies the nest into
// *out.  On an error, the registrations made are undone.
static int
nest_borrow(ra_ctx_t *ctx, ra__cluster_t *c, ra_ref_t ref, const void *nest,
            size_t len, ra_msg_t **out)
{
    char why[300] = "";
    int rc = ra_msg_new_bytes(out, 0, nest, len);
    if (rc == 0 && (rc = ra__nest_register(ctx, c, nest, len, c->node,
                                           c->proc, why, sizeof why)) != 0) {
        ra_log_warn("core", "object %" PRIu64 " of process %u.%u: %s",
                    ref.id, ref.node, ref.proc, why);
        ra_msg_unref(out);
    }
    return rc;
}

// ask_owner asks f's owner for the value (GET) and makes it readable
// here: inline, in this node's store, or pulled into it from the owner's
// node.  Without pull, a value that would have to be copied here is only
// located (RA_EAGAIN, with located, loc_node and size set in *tmp).  Fills the cache fields of *tmp.  Returns 0 when *tmp holds the
// object's outcome (a value or its error), else the error of asking
// (RA_ETIMEOUT: not done yet).
static int
ask_owner(ra__cluster_t *c, ra_ref_t ref, ra_pid_t core, int64_t timeout_ms,
          bool pull, ra__fref_t *tmp)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__BORROW_GET);
    ra__wb_u64(&b, ref.id);
    ra__wb_u8(&b, timeout_ms != 0);
    ra_msg_t *m = NULL, *rep = NULL;
    ra_ctx_t *scope = NULL;
    int rc = ra__wb_msg(&b, RA__T_BORROW, &m);
    if (rc == 0 && (rc = ra_scope_new(c->rt, &scope)) == 0) {
        rc = ra_call(scope, core, &m, timeout_ms != 0 ? timeout_ms : 5000,
                     &rep);
    }
    ra_msg_unref(&m);
    if (rc == RA_ENOPROC || rc == RA_ENOCONN) {
        rc = RA_EOBJLOST;
    }
    if (rc != 0) {
        ra_scope_destroy(&scope);
        return rc;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, rep);
    int status = (int)ra__rb_u32(&r);
    uint8_t kind = ra__rb_u8(&r);
    size_t len = 0;
    const void *data = ra__rb_bytes(&r, &len);
    uint8_t vkind = kind & (uint8_t)~(RA__VAL_IN_STORE | RA__VAL_REMOTE);
    ra__lent_t inner;
    const void *nest = NULL;
    size_t nest_len = 0;
    uint32_t nrefs = 0;
    if (!r.bad && r.off < r.len && status == 0) {
        nest = ra__rb_bytes(&r, &nest_len);
        if (r.bad || r.off != r.len ||
            ra__nest_count(nest, nest_len, &nrefs) != 0) {
            r.bad = true;
        }
    }
    if (r.bad || (vkind > RA_VAL_F64 && kind != RA__VAL_LENT) ||
        ((kind & RA__VAL_REMOTE) && !(kind & RA__VAL_IN_STORE)) ||
        (kind == RA__VAL_LENT && status == 0 &&
         ra__lent_read(data, len, &inner) != 0)) {
        rc = RA_EBADMSG;
    } else if (status == RA_ETIMEOUT && timeout_ms == 0) {
        rc = RA_ETIMEOUT;
    } else if (status == 0 && kind == RA__VAL_LENT) {
        // The object is a reference (a task returned it): this process
        // borrows what it refers to, from that object's owner, while it
        // keeps this value (ra__fref_hold_locked when it is kept).
        int arc = ra__borrow_add(scope, c, inner.ref.id, inner.core, c->node,
                                 c->proc);
        char text[300];
        int n = snprintf(text, sizeof text, "object %" PRIu64 " refers to "
                         "object %" PRIu64 " of process %u.%u, which could "
                         "not be borrowed: %s", ref.id, inner.ref.id,
                         inner.ref.node, inner.ref.proc, ra_err_name(arc));
        tmp->status = arc == 0 ? 0 : RA_EOBJLOST;
        tmp->kind = arc == 0 ? RA__VAL_LENT : RA_VAL_NONE;
        tmp->holds_inner = arc == 0;
        if (arc == 0) {
            tmp->msg = ra_msg_ref(rep);
            tmp->data = data;
            tmp->len = len;
        } else if (ra_msg_new_bytes(&tmp->msg, 0, text, (size_t)n) == 0) {
            tmp->data = ra_msg_data(tmp->msg, &tmp->len);
        }
    } else if (status != 0 || !(kind & RA__VAL_IN_STORE)) {
        tmp->status = status;
        tmp->kind = vkind;
        tmp->msg = ra_msg_ref(rep);
        tmp->data = data;
        tmp->len = len;
    } else {
        ra__objloc_t loc = {0};
        bool far = false;
        if (kind & RA__VAL_REMOTE) {
            if (ra__objloc_read(data, len, &loc) != 0) {
                rc = RA_EBADMSG;
            }
            far = loc.objmgr.node != c->node;
        } else if (len == 16) {
            memcpy(loc.oid.b, data, 16);
        } else {
            rc = RA_EBADMSG;
        }
        char why[700] = "";
        if (rc == 0 && !pull && (far || c->store == NULL)) {
            // Only where it is: not copied here now.
            tmp->located = true;
            tmp->loc_node = (kind & RA__VAL_REMOTE) ? loc.objmgr.node
                                                    : ref.node;
            tmp->size = loc.size;
            ra_msg_unref(&rep);
            ra_scope_destroy(&scope);
            return RA_EAGAIN;
        }
        if (rc == 0 && c->store == NULL) {
            snprintf(why, sizeof why, "this node has no object store");
            rc = RA_EOBJLOST;
        } else if (rc == 0 && far && ra_pid_is_nil(c->objmgr)) {
            snprintf(why, sizeof why, "this node has no object manager");
            rc = RA_EOBJLOST;
        } else if (rc == 0 && far &&
                   (rc = ra__pull_here(scope, c, &loc, why,
                                       sizeof why)) == 0) {
            tmp->pulled = true;
        }
        if (rc == 0) {
            tmp->kind = vkind;
            tmp->in_store = true;
            tmp->oid = loc.oid;
        } else if (rc != RA_EBADMSG) {
            // The object exists but cannot be read here: that is its
            // outcome for this process.
            char text[900];
            int n = snprintf(text, sizeof text, "object %" PRIu64 " of "
                             "process %u.%u (%" PRIu64 " bytes) cannot be "
                             "read here: %s", ref.id, ref.node, ref.proc,
                             loc.size, why[0] ? why : ra_strerror(rc));
            tmp->status = RA_EOBJLOST;
            tmp->kind = RA_VAL_NONE;
            if (ra_msg_new_bytes(&tmp->msg, 0, text, (size_t)n) == 0) {
                tmp->data = ra_msg_data(tmp->msg, &tmp->len);
            }
            rc = 0;
        }
    }
    if (rc == 0 && tmp->status == 0 && nrefs != 0) {
        // The references it contains: borrowed from their owners before
        // this value is kept.  If one cannot be, that is the outcome.
        int nrc = nest_borrow(scope, c, ref, nest, nest_len, &tmp->nest);
        if (nrc != 0) {
            char text[300];
            int n = snprintf(text, sizeof text, "object %" PRIu64 " of "
                             "process %u.%u contains a reference that "
                             "could not be borrowed from its owner: %s",
                             ref.id, ref.node, ref.proc, ra_err_name(nrc));
            ra_msg_unref(&tmp->msg);
            tmp->data = NULL;
            tmp->len = 0;
            tmp->status = RA_EOBJLOST;
            tmp->kind = RA_VAL_NONE;
            tmp->in_store = false;   // (a pulled copy is still let go)
            if (ra_msg_new_bytes(&tmp->msg, 0, text, (size_t)n) == 0) {
                tmp->data = ra_msg_data(tmp->msg, &tmp->len);
            }
        }
    }
    ra_msg_unref(&rep);
    ra_scope_destroy(&scope);
    return rc;
}

// fetch asks for ref's outcome (see ra__fref_fetch); without pull, a
// value that lies in another node's store is only located.
static int
fetch(ra__cluster_t *c, ra_ref_t ref, int64_t timeout_ms, bool pull,
      ra__fval_t *out)
{
    ra__core_t *cs = c->cs;
    pthread_mutex_lock(&cs->mu);
    ra__fref_t *f = ra__hmap_get(&cs->frefs, fkey(ref));
    if (f == NULL) {
        pthread_mutex_unlock(&cs->mu);
        return RA_ENOENT;
    }
    if (f->cached || (!pull && f->located)) {
        if (f->cached) {
            fill_out(f, out);
        }
        pthread_mutex_unlock(&cs->mu);
        return f->cached ? 0 : RA_EAGAIN;
    }
    f->busy++;
    ra_pid_t core = f->core;
    pthread_mutex_unlock(&cs->mu);
    ra__fref_t tmp = {0};
    int rc = ask_owner(c, ref, core, timeout_ms, pull, &tmp);
    pthread_mutex_lock(&cs->mu);
    if (rc == RA_EAGAIN) {
        f->located = true;
        f->loc_node = tmp.loc_node;
        f->size = tmp.size;
    }
    if (rc == 0 && !f->cached) {
        f->cached = true;
        f->status = tmp.status;
        f->kind = tmp.kind;
        f->msg = tmp.msg;
        f->data = tmp.data;
        f->len = tmp.len;
        f->in_store = tmp.in_store;
        f->oid = tmp.oid;
        f->pulled = tmp.pulled;
        f->holds_inner = tmp.holds_inner;
        ra__lent_t inner;
        if (f->holds_inner && ra__lent_read(f->data, f->len, &inner) == 0) {
            ra__fref_hold_locked(c, &inner);
        }
        f->nest = tmp.nest;
        ra__nest_hold_locked(c, f->nest);
        tmp.msg = NULL;
        tmp.nest = NULL;
        tmp.pulled = false;
        tmp.holds_inner = false;
    }
    if (rc == 0) {
        fill_out(f, out);
    }
    f->busy--;
    fref_maybe_drop(c, f);
    pthread_mutex_unlock(&cs->mu);
    if (tmp.msg != NULL || tmp.pulled || tmp.nest != NULL) {
        // Another thread got there first: ours is not needed.
        ra__fref_t *x = malloc(sizeof *x);
        pthread_mutex_lock(&cs->mu);
        ra__lent_t inner;
        if (tmp.holds_inner && ra__lent_read(tmp.data, tmp.len, &inner) == 0) {
            // (hold, then let go: the owner's count stays in step)
            ra__fref_hold_locked(c, &inner);
        }
        ra__nest_hold_locked(c, tmp.nest);
        if (x != NULL) {
            *x = tmp;
            x->registered = false;
            fref_let_go(c, x);
        } else {
            ra_msg_unref(&tmp.msg);
            ra_msg_unref(&tmp.nest);
        }
        pthread_mutex_unlock(&cs->mu);
    }
    return rc;
}

int
ra__fref_fetch(ra__cluster_t *c, ra_ref_t ref, int64_t timeout_ms,
               ra__fval_t *out)
{
    return fetch(c, ref, timeout_ms, true, out);
}

void
ra__fref_locate(ra__cluster_t *c, ra_ref_t ref, uint32_t *node,
                uint64_t *size)
{
    ra__fval_t fv = {0};
    *node = 0;
    *size = 0;
    int rc = fetch(c, ref, 0, false, &fv);
    ra_msg_unref(&fv.msg);
    ra_msg_unref(&fv.nest);
    if (rc == RA_EAGAIN || (rc == 0 && fv.status == 0 && fv.in_store)) {
        pthread_mutex_lock(&c->cs->mu);
        ra__fref_t *f = ra__hmap_get(&c->cs->frefs, fkey(ref));
        if (f != NULL && f->located) {
            *node = f->loc_node;
            *size = f->size;
        } else if (f != NULL && f->in_store) {
            *node = c->node;   // mapped or copied here already
        }
        pthread_mutex_unlock(&c->cs->mu);
    }
}

// ---- the owner's side (the core's thread, but for ra__borrow_answer) ----

// A process that borrows objects of ours.
typedef struct bproc {
    uint64_t key;           // node << 32 | proc
    uint64_t mref;          // our watch of its process
    ra__hmap_t ids;         // {object id, 0} -> (count + 1)
} bproc_t;

// answer_msg writes the GET answer for object o, done (cs->mu held).
static int
answer_msg(ra__cluster_t *c, const ra__obj_t *o, ra_msg_t **out)
{
    ra__wbuf_t b = {0};
    if (o->state == RA__OBJ_FAILED) {
        const char *text = o->text != NULL ? o->text : ra_err_name(o->err);
        ra__wb_u32(&b, (uint32_t)o->err);
        ra__wb_u8(&b, RA_VAL_NONE);
        ra__wb_bytes(&b, text, strlen(text));
    } else if (o->kind == RA__VAL_LENT) {
        // A reference a task returned (we hold it): the asker borrows it
        // from its owner before it lets go of this object.
        ra__wb_u32(&b, 0);
        ra__wb_u8(&b, RA__VAL_LENT);
        ra__wb_bytes(&b, o->data, o->len);
    } else if (o->in_store) {
        ra_oid_t oid;
        memcpy(oid.b, o->oid, 16);
        ra_objstore_info_t info;
        uint8_t kind = o->kind != RA_VAL_NONE ? o->kind : RA_VAL_BYTES;
        if (c->store == NULL || ra_objstore_info(c->store, oid, &info) != 0) {
            const char *text = "the object was lost from its owner's "
                               "object store";
            ra__wb_u32(&b, (uint32_t)RA_EOBJLOST);
            ra__wb_u8(&b, RA_VAL_NONE);
            ra__wb_bytes(&b, text, strlen(text));
        } else if (!ra_pid_is_nil(c->objmgr) && c->node_ep[0] != '\0') {
            ra__wbuf_t d = {0};
            ra__wb_objloc(&d, oid, c->objmgr, c->node_ep, info.size);
            ra__wb_u32(&b, 0);
            ra__wb_u8(&b, (uint8_t)(kind | RA__VAL_IN_STORE |
                                    RA__VAL_REMOTE));
            ra__wb_bytes(&b, d.p, d.len);
            if (d.err != 0) {
                b.err = d.err;
            }
            ra__wb_free(&d);
        } else {
            ra__wb_u32(&b, 0);
            ra__wb_u8(&b, (uint8_t)(kind | RA__VAL_IN_STORE));
            ra__wb_bytes(&b, oid.b, 16);
        }
    } else {
        size_t max = ra_link_max_msg(c->link);
        if (max != 0 && o->len + 64 > max) {
            char text[300];
            snprintf(text, sizeof text, "the value (%zu bytes) is larger "
                     "than a link message may be (%zu bytes) and is not "
                     "in an object store", o->len, max);
            ra__wb_u32(&b, (uint32_t)RA_EOBJLOST);
            ra__wb_u8(&b, RA_VAL_NONE);
            ra__wb_bytes(&b, text, strlen(text));
        } else {
            ra__wb_u32(&b, 0);
            ra__wb_u8(&b, o->kind);
            ra__wb_bytes(&b, o->data, o->len);
        }
    }
    if (o->state == RA__OBJ_READY && o->nest != NULL) {
        // The references it contains: the asker borrows them too.
        size_t nl = 0;
        const void *np = ra_msg_data(o->nest, &nl);
        ra__wb_bytes(&b, np, nl);
    }
    return ra__wb_msg(&b, RA__T_BORROW, out);
}

void
ra__borrow_answer(ra__cluster_t *c, ra__obj_t *o)
{
    for (uint32_t i = 0; i < o->nrwait; i++) {
        ra_msg_t *m = NULL;
        if (answer_msg(c, o, &m) == 0) {
            (void)ra_reply_to(c->rt, o->rwait[i], &m);
        }
        ra_msg_unref(&m);
    }
    free(o->rwait);
    o->rwait = NULL;
    o->nrwait = 0;
}

static void
reply_status(ra_ctx_t *ctx, int status)
{
    ra__wbuf_t b = {0};
    ra__wb_u32(&b, (uint32_t)status);
    ra_msg_t *m = NULL;
    if (ra__wb_msg(&b, RA__T_BORROW, &m) == 0) {
        (void)ra_reply(ctx, &m);
    }
    ra_msg_unref(&m);
}

static void
on_get(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t id, bool wait)
{
    ra__core_t *cs = c->cs;
    ra_msg_t *m = NULL;
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = ra__obj_at(cs, id);
    int rc = 0;
    if (o == NULL || (o->released && o->borrows == 0)) {
        rc = RA_ENOENT;
    } else if (o->state == RA__OBJ_PENDING && wait) {
        uint64_t cref = ra_call_ref(ctx);
        uint64_t *n = realloc(o->rwait, (o->nrwait + 1) * sizeof *n);
        if (n == NULL) {
            rc = RA_ENOMEM;
        } else {
            o->rwait = n;
            o->rwait[o->nrwait++] = cref;
        }
    } else if (o->state == RA__OBJ_PENDING) {
        rc = RA_ETIMEOUT;
    } else {
        rc = answer_msg(c, o, &m);
    }
    pthread_mutex_unlock(&cs->mu);
    if (m != NULL) {
        (void)ra_reply(ctx, &m);
        ra_msg_unref(&m);
    } else if (rc != 0) {
        const char *text = rc == RA_ENOENT ? "no such object: released by "
                                             "its owner"
                                           : ra_err_name(rc);
        ra__wbuf_t b = {0};
        ra__wb_u32(&b, (uint32_t)(rc == RA_ENOENT ? RA_EOBJLOST : rc));
        ra__wb_u8(&b, RA_VAL_NONE);
        ra__wb_bytes(&b, text, strlen(text));
        if (ra__wb_msg(&b, RA__T_BORROW, &m) == 0) {
            (void)ra_reply(ctx, &m);
        }
        ra_msg_unref(&m);
    }
}

static void
bproc_free(ra_ctx_t *ctx, ra__core_t *cs, bproc_t *p, bool unborrow)
{
    for (size_t i = 0; i < p->ids.cap; i++) {
        if (!ra__hmap_live(&p->ids, i)) {
            continue;
        }
        uintptr_t n = (uintptr_t)p->ids.v[i].val - 1;
        for (uintptr_t j = 0; unborrow && j < n; j++) {
            ra__obj_unborrow(cs, p->ids.v[i].key.a);
        }
    }
    ra__hmap_fini(&p->ids);
    if (p->mref != 0) {
        (void)ra__hmap_del(&cs->bmrefs, (ra__hkey_t){p->mref, 0});
        if (ctx != NULL) {
            (void)ra_demonitor(ctx, p->mref);
        }
    }
    (void)ra__hmap_del(&cs->bprocs, (ra__hkey_t){p->key, 0});
    atomic_fetch_sub(&cs->nborrowers, 1);
    free(p);
}

// obj_borrow counts one more borrow of our object id, if it is still
// there.
static bool
obj_borrow(ra__core_t *cs, uint64_t id)
{
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = ra__obj_at(cs, id);
    bool ok = o != NULL && !(o->released && o->borrows == 0);
    if (ok) {
        o->borrows++;
    }
    pthread_mutex_unlock(&cs->mu);
    return ok;
}

static int
on_add(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t id, uint32_t node,
       uint32_t proc)
{
    ra__core_t *cs = c->cs;
    if (node == c->node && proc == c->proc) {
        // A reference of ours returned to us by a task: the result object
        // that holds it keeps it (ra__fref_hold_locked).
        return obj_borrow(cs, id) ? 0 : RA_ENOENT;
    }
    uint64_t key = (uint64_t)node << 32 | proc;
    bproc_t *p = ra__hmap_get(&cs->bprocs, (ra__hkey_t){key, 0});
    if (p == NULL) {
        if ((p = calloc(1, sizeof *p)) == NULL) {
            return RA_ENOMEM;
        }
        p->key = key;
        if (ra__hmap_put(&cs->bprocs, (ra__hkey_t){key, 0}, p) != 0) {
            free(p);
            return RA_ENOMEM;
        }
        atomic_fetch_add(&cs->nborrowers, 1);
        if (ra_link_monitor_node(ctx, node, proc, &p->mref) != 0 ||
            ra__hmap_put(&cs->bmrefs, (ra__hkey_t){p->mref, 0}, p) != 0) {
            bproc_free(ctx, cs, p, false);
            return RA_ENOMEM;
        }
    }
    if (!obj_borrow(cs, id)) {
        if (p->ids.n == 0) {
            bproc_free(ctx, cs, p, false);
        }
        return RA_ENOENT;
    }
    ra__hkey_t k = {id, 0};
    uintptr_t n = (uintptr_t)ra__hmap_get(&p->ids, k);
    if (ra__hmap_put(&p->ids, k, (void *)(n != 0 ? n + 1 : 2)) != 0) {
        ra__obj_unborrow(cs, id);
        return RA_ENOMEM;
    }
    return 0;
}

static void on_del(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t id,
                   uint32_t node, uint32_t proc);

// on_addn is ADD of each of ids[0..n-1] (read from r), all or none.
static int
on_addn(ra_ctx_t *ctx, ra__cluster_t *c, ra__rbuf_t *r, uint64_t n,
        uint32_t node, uint32_t proc)
{
    size_t start = r->off;
    uint64_t i = 0;
    int rc = 0;
    for (; i < n && rc == 0; i++) {
        rc = on_add(ctx, c, ra__rb_u64(r), node, proc);
    }
    if (rc != 0) {
        // Undo the ones made: read the ids again.
        r->off = start;
        for (uint64_t k = 0; k + 1 < i; k++) {
            uint64_t id = ra__rb_u64(r);
            if (node == c->node && proc == c->proc) {
                ra__obj_unborrow(c->cs, id);
            } else {
                on_del(ctx, c, id, node, proc);
            }
        }
    }
    return rc;
}

static void
on_del(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t id, uint32_t node,
       uint32_t proc)
{
    ra__core_t *cs = c->cs;
    uint64_t key = (uint64_t)node << 32 | proc;
    bproc_t *p = ra__hmap_get(&cs->bprocs, (ra__hkey_t){key, 0});
    ra__hkey_t k = {id, 0};
    uintptr_t n = p != NULL ? (uintptr_t)ra__hmap_get(&p->ids, k) : 0;
    if (n == 0) {
        ra_log_debug("core", "a borrow of object %" PRIu64 " by %u.%u that "
                     "was not counted ended", id, node, proc);
        return;
    }
    if (n == 2) {
        (void)ra__hmap_del(&p->ids, k);
    } else {
        (void)ra__hmap_put(&p->ids, k, (void *)(n - 1));
    }
    ra__obj_unborrow(cs, id);
    if (p->ids.n == 0) {
        bproc_free(ctx, cs, p, false);
    }
}

void
ra__borrow_on_msg(ra_ctx_t *ctx, ra__cluster_t *c, ra_msg_t *m)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint8_t op = ra__rb_u8(&r);
    uint64_t id = ra__rb_u64(&r);
    if (op == RA__BORROW_GET) {
        bool wait = ra__rb_u8(&r) != 0;
        if (!r.bad && r.off == r.len && ra_call_ref(ctx) != 0) {
            on_get(ctx, c, id, wait);
            return;
        }
    } else if (op == RA__BORROW_ADDN) {
        uint32_t node = ra__rb_u32(&r);
        uint32_t proc = ra__rb_u32(&r);
        // id is the count here; the ids follow, exactly.
        if (!r.bad && id != 0 && id <= RA__NEST_MAX &&
            r.len - r.off == id * 8 && ra_call_ref(ctx) != 0) {
            reply_status(ctx, on_addn(ctx, c, &r, id, node, proc));
            return;
        }
    } else if (op == RA__BORROW_ADD || op == RA__BORROW_DEL) {
        uint32_t node = ra__rb_u32(&r);
        uint32_t proc = ra__rb_u32(&r);
        if (!r.bad && r.off == r.len && op == RA__BORROW_DEL) {
            on_del(ctx, c, id, node, proc);
            return;
        }
        if (!r.bad && r.off == r.len && ra_call_ref(ctx) != 0) {
            reply_status(ctx, on_add(ctx, c, id, node, proc));
            return;
        }
    }
    ra_log_warn("core", "malformed borrow message dropped");
}

bool
ra__borrow_down(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t mref)
{
    bproc_t *p = ra__hmap_get(&c->cs->bmrefs, (ra__hkey_t){mref, 0});
    if (p == NULL) {
        return false;
    }
    ra_log_info("core", "process %u.%u, which borrowed %zu of our objects, "
                "is gone: its borrows end", (unsigned)(p->key >> 32),
                (unsigned)(p->key & 0xffffffffu), p->ids.n);
    p->mref = 0;   // fired: no demonitor
    (void)ra__hmap_del(&c->cs->bmrefs, (ra__hkey_t){mref, 0});
    bproc_free(ctx, c->cs, p, true);
    return true;
}

void
ra__borrow_fini(ra__core_t *cs)
{
    for (size_t i = 0; i < cs->bprocs.cap; i++) {
        if (ra__hmap_live(&cs->bprocs, i)) {
            bproc_t *p = cs->bprocs.v[i].val;
            ra__hmap_fini(&p->ids);
            free(p);
        }
    }
    ra__hmap_fini(&cs->bprocs);
    ra__hmap_fini(&cs->bmrefs);
    for (size_t i = 0; i < cs->frefs.cap; i++) {
        if (ra__hmap_live(&cs->frefs, i)) {
            ra__fref_t *f = cs->frefs.v[i].val;
            ra_msg_unref(&f->msg);
            ra_msg_unref(&f->nest);
            free(f);
        }
    }
    ra__hmap_fini(&cs->frefs);
}

// core.c - the core actor of a process: owner of the objects its tasks
// return, submitter of its tasks and actor calls.
//
// Ray calls this the core worker.  User threads hand tasks to it
// (through its inbox, with a RA__T_SUBMIT wake-up; a task_t belongs to
// the core from then on); it waits for the task's arguments, asks the raylet for worker
// leases per scheduling class (the task's CPU and GPU shape), pushes tasks
// straight to leased workers, up to PIPE of them in flight per lease, and
// keeps each lease while there is work of its class (returning it after
// IDLE_MS without).  Results come back to it and complete objects in the
// object table, which user threads read under its mutex.  A worker that
// dies (a DOWN on the lease's executor) sends its tasks back to the queue
// while they have retries, else fails them with RA_EWORKER.
//
// Actors owned here are created the same way: a lease with the actor's
// resources, then RA__T_ACTOR_NEW to the worker's host actor, which
// spawns the instance and runs its constructor; calls then go straight to
// the instance, and their results come back here.  Restarts follow
// max_restarts; calls interrupted by a death are sent again while they
// have max_task_retries left.
//
// Threads: the table (ra__core_t) is shared with user threads under mu;
// everything else here belongs to the core actor alone.
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cluster_impl.h"
#include "core_impl.h"
#include "ra_objstore.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"

#define PIPE 64u        // most tasks in flight per lease
#define PIPE_BUDGET_US 2000 // queued work per worker (see dispatch)
#define IDLE_MS 5u      // keep an idle lease this long
#define GRACE_MS 1000u  // a cancelled task gets this long to stop
#define LOST_WAIT_MS 200u // wait for the raylet's word on a lost worker
#define REASK_MS 20u      // a request refused by a raylet restarted in
                          // place (RA_EAGAIN) is asked again after this
#define RESPILL_MS 250u   // a request whose spill target was lost waits

// ---- queues ----

void
ra__tq_push(ra__tq_t *q, ra__task_t *t)
{
    t->next = NULL;
    t->prev = q->tail;
    if (q->tail != NULL) {
        q->tail->next = t;
    } else {
        q->head = t;
    }
    q->tail = t;
    q->n++;
}

static void
q_push_front(ra__tq_t *q, ra__task_t *t)
{
    t->prev = NULL;
    t->next = q->head;
    if (q->head != NULL) {
        q->head->prev = t;
    } else {
        q->tail = t;
    }
    q->head = t;
    q->n++;
}

void
ra__tq_remove(ra__tq_t *q, ra__task_t *t)
{
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        q->head = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    } else {
        q->tail = t->prev;
    }
    t->prev = t->next = NULL;
    q->n--;
}

bool
ra__tq_has(const ra__tq_t *q, const ra__task_t *t)
{
    for (const ra__task_t *x = q->head; x != NULL; x = x->next) {
        if (x == t) {
            return true;
        }
    }
    return false;
}

static ra__task_t *
q_pop(ra__tq_t *q)
{
    ra__task_t *t = q->head;
    if (t != NULL) {
        ra__tq_remove(q, t);
    }
    return t;
}

// ---- the object table ----

ra__obj_t *
ra__obj_at(ra__core_t *cs, uint64_t id)
{
    return id != 0 && id < cs->cap ? cs->objs[id] : NULL;
}

// obj_maybe_free frees a finished object nobody needs any more.  Called
// with mu held.
static void
obj_maybe_free(ra__core_t *cs, uint64_t id)
{
    ra__obj_t *o = ra__obj_at(cs, id);
    if (o == NULL || o->state == RA__OBJ_PENDING || !o->released ||
        o->borrows != 0) {
        return;
    }
    if (o->in_store && ra__g != NULL && ra__g->store != NULL) {
        ra_oid_t oid;
        memcpy(oid.b, o->oid, 16);
        (void)ra_objstore_unref(ra__g->store, oid);
        (void)ra_objstore_delete(ra__g->store, oid);
    }
    ra__lent_t l;
    bool lent = o->state == RA__OBJ_READY && o->kind == RA__VAL_LENT &&
                ra__lent_read(o->data, o->len, &l) == 0;
    ra_msg_t *nest = o->nest;
    ra_msg_unref(&o->msg);
    free(o->text);
    free(o->rwait);
    free(o);
    cs->objs[id] = NULL;
    cs->live--;
    if (lent && ra__g != NULL && !ra__g->stopping) {
        // It held a reference a task returned: let that go too.
        ra__fref_unhold_locked(ra__g, &l);
    }
    if (nest != NULL && ra__g != NULL && !ra__g->stopping) {
        // And the references it contained.
        ra__nest_unhold_locked(ra__g, nest);
    }
    ra_msg_unref(&nest);
}

void
ra__obj_set_nest(ra__core_t *cs, uint64_t id, ra_msg_t **nest)
{
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = ra__obj_at(cs, id);
    if (o != NULL && o->nest == NULL) {
        o->nest = *nest;
        *nest = NULL;
    }
    pthread_mutex_unlock(&cs->mu);
}

void
ra__obj_maybe_free_locked(ra__core_t *cs, uint64_t id)
{
    obj_maybe_free(cs, id);
}

void
ra__obj_unborrow(ra__core_t *cs, uint64_t id)
{
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = ra__obj_at(cs, id);
    if (o != NULL && o->borrows > 0) {
        o->borrows--;
        obj_maybe_free(cs, id);
    }
    pthread_mutex_unlock(&cs->mu);
}

void
ra__obj_release(ra__core_t *cs, uint64_t id)
{
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = ra__obj_at(cs, id);
    if (o != NULL) {
        o->released = true;
        obj_maybe_free(cs, id);
    }
    pthread_mutex_unlock(&cs->mu);
}

int
ra__obj_new(ra__core_t *cs, uint64_t *id)
{
    ra__obj_t *o = calloc(1, sizeof *o);
    if (o == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_lock(&cs->mu);
    if (cs->next_id >= cs->cap) {
        size_t cap = cs->cap != 0 ? cs->cap * 2 : 1024;
        ra__obj_t **n = realloc(cs->objs, cap * sizeof *n);
        if (n == NULL) {
            pthread_mutex_unlock(&cs->mu);
            free(o);
            return RA_ENOMEM;
        }
        memset(n + cs->cap, 0, (cap - cs->cap) * sizeof *n);
        cs->objs = n;
        cs->cap = cap;
    }
    *id = cs->next_id++;
    cs->objs[*id] = o;
    cs->live++;
    pthread_mutex_unlock(&cs->mu);
    return 0;
}

// obj_complete stores the value (or error) of a finished object and wakes
// its readers.  msg is referenced, not taken.
static void
obj_complete(ra__core_t *cs, uint64_t id, int err, uint8_t kind,
             ra_msg_t *msg, const void *data, size_t len)
{
    bool wake = false;
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = ra__obj_at(cs, id);
    if (o != NULL && o->state == RA__OBJ_PENDING) {
        o->state = err == 0 ? RA__OBJ_READY : RA__OBJ_FAILED;
        o->err = err;
        o->kind = kind;
        if (err == 0 && (kind & RA__VAL_IN_STORE)) {
            // The value stays in the store; this process holds a
            // reference to it, so that it is spilled rather than evicted.
            o->in_store = true;
            o->kind = kind & ~RA__VAL_IN_STORE;
            memcpy(o->oid, data, 16);
            ra_oid_t oid;
            memcpy(oid.b, o->oid, 16);
            (void)ra_objstore_ref(ra__g->store, oid);
        } else if (err == 0 && msg == NULL) {
            // A value made here (ra_put, an actor handle): keep a copy.
            if (ra_msg_new_bytes(&o->msg, 0, data, len) == 0) {
                o->data = ra_msg_data(o->msg, &o->len);
            } else {
                o->state = RA__OBJ_FAILED;
                o->err = RA_ENOMEM;
            }
        } else if (err == 0) {
            o->msg = ra_msg_ref(msg);
            o->data = data;
            o->len = len;
            ra__lent_t l;
            if (kind == RA__VAL_LENT && ra__g != NULL &&
                ra__lent_read(data, len, &l) == 0) {
                // A returned reference: the task registered us with its
                // owner; this object holds it until it is freed.
                ra__fref_hold_locked(ra__g, &l);
            }
        } else {
            o->text = malloc(len + 1);
            if (o->text != NULL) {
                memcpy(o->text, data, len);
                o->text[len] = '\0';
            }
        }
        o->task = NULL;
        cs->done++;
        if (o->nrwait != 0 && ra__g != NULL) {
            ra__borrow_answer(ra__g, o);
        }
        wake = true;
        obj_maybe_free(cs, id);
    }
    pthread_mutex_unlock(&cs->mu);
    // Readers are woken once the mutex is free: woken under it, each
    // would run only to block on the mutex again (a second futex wake-up
    // per ra_get in a synchronous exchange).
    if (wake) {
        pthread_cond_broadcast(&cs->cv);
    }
}

static void
obj_fail(ra__core_t *cs, uint64_t id, int err, const char *text)
{
    obj_complete(cs, id, err, RA_VAL_NONE, NULL, text, strlen(text));
}

// ---- the core's own state ----

typedef struct core {
    ra__core_t *cs;
    ra__cluster_t *c;
    ra__cls_t *classes;
    ra__lease_t *leases;
    uint64_t next_req;
    uint64_t tick_key;        // ticks carry it: a forged one is ignored
    uint64_t daemon_ref;      // a driver's monitor of its node daemon
    uint64_t raylet_ref;      // the monitor of this node's raylet, which
                              // its supervisor restarts in place
    uint64_t objmgr_ref;      // ... and of its object manager, while
    ra__tq_t pulls;           // these tasks' results are pulled (t->pull)
    bool reask_armed;         // a TICK_REASK is on its way
    bool rejoin;              // ... and the job must first be registered
                              // again at this node's raylet
    bool daemon_lost;         // ... which was lost: nothing can run
    bool no_tev;              // RAYO_TASK_EVENTS=0: no task events
    bool tev_methods;         // RAYO_TASK_EVENTS=all: methods' too
    // Leases granted by the raylets of other nodes (work spilled there),
    // and this job's environment at each of those raylets.
    struct rlease { uint64_t lid; ra_pid_t raylet; } *rl;
    size_t nrl, caprl;
    struct renv { ra_pid_t raylet; uint32_t env; } *re;
    size_t nre;
    // Lease requests passed on to the raylet of another node, not yet
    // answered: if that raylet is lost, they are asked again here.
    struct spilled {
        uint64_t req, mref;
        ra_pid_t raylet;      // where it was passed on to
        ra__cls_t shape;
        bool actor;
        int isolation;
        struct spilled *next;
    } *spilled, *respill;     // respill: lost, asked again at a tick
} core_t;

// raylet_of is the raylet that granted lease lid: another node's, or ours.
static ra_pid_t
raylet_of(const core_t *k, uint64_t lid, size_t *at)
{
    for (size_t i = 0; i < k->nrl; i++) {
        if (k->rl[i].lid == lid) {
            if (at != NULL) {
                *at = i;
            }
            return k->rl[i].raylet;
        }
    }
    return k->c->raylet;
}

static void
forget_remote_lease(core_t *k, uint64_t lid)
{
    size_t at;
    if (!ra_pid_eq(raylet_of(k, lid, &at), k->c->raylet)) {
        k->rl[at] = k->rl[--k->nrl];
    }
}

// Where the attempt sits in a task wire: after version, type and id.
#define WIRE_ATTEMPT_OFF 10u

int
ra__task_wire_attempt(ra__task_t *t)
{
    size_t len;
    const uint8_t *p = ra_msg_data(t->wire, &len);
    if (len < WIRE_ATTEMPT_OFF + 4) {
        return 0;
    }
    uint32_t at = (uint32_t)p[WIRE_ATTEMPT_OFF] |
                  (uint32_t)p[WIRE_ATTEMPT_OFF + 1] << 8 |
                  (uint32_t)p[WIRE_ATTEMPT_OFF + 2] << 16 |
                  (uint32_t)p[WIRE_ATTEMPT_OFF + 3] << 24;
    if (at == t->attempt) {
        return 0;
    }
    // The old wire may still be referenced by the link layer: copy it.
    ra_msg_t *m = NULL;
    if (ra_msg_new_bytes(&m, ra_msg_tag(t->wire), p, len) != 0) {
        return RA_ENOMEM;
    }
    uint8_t *w = ra_msg_wdata(m);
    for (int i = 0; i < 4; i++) {
        w[WIRE_ATTEMPT_OFF + i] = (uint8_t)(t->attempt >> (8 * i));
    }
    ra_msg_unref(&t->wire);
    t->wire = m;
    return 0;
}

// task_unlend ends the holds of references lent to t (RA_ARG_BORROW, and
// borrowed references passed on): by the time its result has come, its
// worker has registered any it keeps with their owners.
static void
task_unlend(ra__task_t *t)
{
    ra__cluster_t *c = ra__g;
    for (uint32_t i = 0; i < t->nlent && c != NULL && !c->stopping; i++) {
        ra__obj_unborrow(c->cs, t->lent[i]);
    }
    for (uint32_t i = 0; i < t->nflent && c != NULL && !c->stopping; i++) {
        ra__fref_untask(c, t->flent[i]);
    }
    free(t->lent);
    free(t->flent);
    t->lent = NULL;
    t->flent = NULL;
    t->nlent = t->nflent = 0;
}

// task_unhold lets go of the arguments t read from the store, before its
// result is complete, so that a caller who got the result and releases an
// argument frees it at once.
static void
task_unhold(core_t *k, ra__task_t *t)
{
    for (uint32_t i = 0; t != NULL && i < t->nheld; i++) {
        ra__obj_unborrow(k->cs, t->held[i]);
    }
    if (t != NULL) {
        free(t->held);
        t->held = NULL;
        t->nheld = 0;
        task_unlend(t);
    }
}

static void tev_end(ra__core_t *cs, ra__task_t *t);
static void tev_result(ra__core_t *cs, ra__task_t *t, int err,
                       const char *text, size_t len);

static void
task_free(ra__task_t *t)
{
    if (t != NULL && t->evented && ra__g != NULL && !ra__g->stopping) {
        tev_end(ra__g->cs, t);
    }
    if (t != NULL) {
        // Arguments it read from the store may go now (at shutdown the
        // object table goes whole).
        for (uint32_t i = 0;
             i < t->nheld && ra__g != NULL && !ra__g->stopping; i++) {
            ra__obj_unborrow(ra__g->cs, t->held[i]);
        }
        task_unlend(t);
        ra_msg_unref(&t->wire);
        ra_msg_unref(&t->pull);
        free(t->refs);
        free(t->held);
        free(t->label);
        free(t);
    }
}

// ---- task events, for the GCS's task table (rayo list tasks) ----
//
// The core notes each remote function task's changes of state (PENDING
// when submitted or retried, RUNNING when pushed to a worker, FINISHED or
// FAILED at its end) in cs->tev and sends them in batches: at TEV_BATCH
// events, else TEV_FLUSH_MS after the first one.  The core's thread only.
// RAYO_TASK_EVENTS=0 turns them off (about a tenth more tasks a second
// on the 2-vCPU machine, and no rayo list tasks for this process);
// RAYO_TASK_EVENTS=all adds actor method calls, which are off by default:
// three events a call cost about 30% of the async actor call rate here.

enum { TEV_BATCH = 1000, TEV_FLUSH_MS = 500 };

// tev_head starts an event: {u64 id, u8 state, u32 attempt, u64 ms}.
static void
tev_head(ra__core_t *cs, const ra__task_t *t, uint8_t state)
{
    if (cs->ntev == 0) {
        ra__wb_u8(&cs->tev, RA__GCS_TASK_EVENTS);
        ra__wb_u64(&cs->tev, ra__g != NULL ? ra__g->job_id : 0);
    }
    ra__wb_u64(&cs->tev, t->id);
    ra__wb_u8(&cs->tev, state);
    ra__wb_u32(&cs->tev, t->attempt);
    ra__wb_u64(&cs->tev, (uint64_t)ra__wall_ms());
    cs->ntev++;
}

// tev_pending: the task waits for a worker (then: str function, str
// label).
static void
tev_pending(core_t *k, ra__task_t *t)
{
    if (t->type == RA__TASK_CTOR || k->c->stopping || k->no_tev ||
        (t->type == RA__TASK_METHOD && !k->tev_methods)) {
        return;
    }
    // A method shows as Class.method, as Ray's tasks list shows it.
    char fn[RA__NAME_MAX + 1] = "", shown[2 * RA__NAME_MAX + 2];
    ra__rbuf_t r;
    ra__rb_init(&r, t->wire);
    (void)ra__rb_u8(&r);
    (void)ra__rb_u8(&r);
    (void)ra__rb_u64(&r);
    (void)ra__rb_u32(&r);
    (void)ra__rb_u64(&r);
    ra__rb_str(&r, fn, sizeof fn);
    const ra__cactor_t *a = t->type == RA__TASK_METHOD
                                ? ra__cactor_at(k->cs, t->actor) : NULL;
    snprintf(shown, sizeof shown, "%s%s%s", a != NULL ? a->cls : "",
             a != NULL ? "." : "", fn);
    shown[RA__NAME_MAX] = '\0';
    tev_head(k->cs, t, RA__TEV_PENDING);
    ra__wb_str(&k->cs->tev, shown);
    ra__wb_str(&k->cs->tev, t->label != NULL ? t->label : "");
    t->evented = true;
}

// tev_running: pushed to the worker exec, or to the actor instance
// exec for a method (then: u32 node, u32 proc).
static void
tev_running(ra__core_t *cs, const ra__task_t *t, ra_pid_t exec)
{
    if (!t->evented) {
        return;
    }
    tev_head(cs, t, RA__TEV_RUNNING);
    ra__wb_u32(&cs->tev, exec.node);
    ra__wb_u32(&cs->tev, exec.proc);
}

void
ra__core_tev_running(ra__core_t *cs, const ra__task_t *t, ra_pid_t exec)
{
    tev_running(cs, t, exec);
}

// tev_result: the task ends with err (0, else FAILED with text) (then,
// for FAILED: str error).  Its last event.
static void
tev_result(ra__core_t *cs, ra__task_t *t, int err, const char *text,
           size_t len)
{
    if (!t->evented || (ra__g != NULL && ra__g->stopping)) {
        return;
    }
    t->evented = false;
    tev_head(cs, t, err != 0 ? RA__TEV_FAILED : RA__TEV_FINISHED);
    if (err != 0) {
        char buf[256];
        if (text == NULL || len == 0) {
            snprintf(buf, sizeof buf, "%s", ra_strerror(err));
        } else {
            snprintf(buf, sizeof buf, "%.*s", (int)(len < 255 ? len : 255),
                     text);
        }
        ra__wb_str(&cs->tev, buf);
    }
}

// tev_end: a task freed without tev_result; its object, if still there,
// says how it ended.
static void
tev_end(ra__core_t *cs, ra__task_t *t)
{
    char text[256] = "";
    bool failed = false;
    pthread_mutex_lock(&cs->mu);
    ra__obj_t *o = ra__obj_at(cs, t->id);
    if (o != NULL && o->state == RA__OBJ_FAILED) {
        failed = true;
        snprintf(text, sizeof text, "%s",
                 o->text != NULL ? o->text : ra_strerror(o->err));
    }
    pthread_mutex_unlock(&cs->mu);
    if (t->abandoned && !failed) {
        failed = true;
        snprintf(text, sizeof text, "cancelled or past its deadline");
    }
    tev_result(cs, t, failed ? RA_ETASK : 0, text, strlen(text));
}

// tev_flush sends the events noted so far to the GCS (without waiting;
// lost with a GCS that is away, as Ray's task events may be).
static void
tev_flush(ra_ctx_t *ctx, core_t *k)
{
    ra__core_t *cs = k->cs;
    if (cs->ntev == 0) {
        return;
    }
    ra_msg_t *m = NULL;
    if (cs->tev.err == 0) {
        // Patch in the count: {u8 op, u64 job} then u32 n comes first.
        ra__wbuf_t b = {0};
        ra__wb_raw(&b, cs->tev.p, 9);
        ra__wb_u32(&b, cs->ntev);
        ra__wb_raw(&b, cs->tev.p + 9, cs->tev.len - 9);
        if (ra__wb_msg(&b, RA__T_GCS, &m) == 0 &&
            ra_send(ctx, ra__gcs_pid(k->c), &m) != 0) {
            ra_msg_unref(&m);
        }
    }
    ra__wb_free(&cs->tev);
    cs->ntev = 0;
}

// task_finish fails (or, with err 0, just forgets) a task whose object
// is complete.
static void
task_fail(core_t *k, ra__task_t *t, int err, const char *text)
{
    tev_result(k->cs, t, err, text, strlen(text));
    obj_fail(k->cs, t->id, err, text);
    task_free(t);
}

static void task_done(ra_ctx_t *ctx, core_t *k, uint64_t id);
static ra__task_t *find_task(core_t *k, uint64_t id);

static ra__cls_t *
cls_get(core_t *k, double cpus, double gpus, const ra_resources_t *x,
        uint64_t pg, int32_t bundle, uint32_t near)
{
    for (ra__cls_t *c = k->classes; c != NULL; c = c->next) {
        if (c->cpus == cpus && c->gpus == gpus && c->pg == pg &&
            c->bundle == bundle && c->near == near &&
            ra__res_same(&c->x, x)) {
            return c;
        }
    }
    ra__cls_t *c = calloc(1, sizeof *c);
    if (c != NULL) {
        c->cpus = cpus;
        c->gpus = gpus;
        c->x = *x;
        c->pg = pg;
        c->bundle = bundle;
        c->near = near;
        c->depth = 1;
        c->next = k->classes;
        k->classes = c;
    }
    return c;
}

// send_lease_req asks the raylet for a worker for work of shape c (its
// resources and placement-group bundle).
static int
send_lease_req_to(ra_ctx_t *ctx, ra_pid_t raylet, uint32_t env,
                  bool no_spill, uint64_t req, const ra__cls_t *c, bool actor,
                  int isolation)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u64(&b, req);
    ra__wb_f64(&b, c->cpus);
    ra__wb_f64(&b, c->gpus);
    ra__wb_u8(&b, actor);
    ra__wb_u8(&b, (uint8_t)isolation);
    ra__wb_u64(&b, c->pg);
    ra__wb_u32(&b, (uint32_t)c->bundle);
    ra__wb_res(&b, &c->x);
    ra__wb_u32(&b, env);
    ra__wb_u8(&b, no_spill);
    ra__wb_u32(&b, c->near);
    int rc = ra__wb_msg(&b, RA__T_LEASE_REQ, &m);
    if (rc == 0 && (rc = ra_send(ctx, raylet, &m)) != 0) {
        ra_msg_unref(&m);
    }
    return rc;
}

// watch_raylet monitors this node's raylet (once per incarnation): its
// end while its process lives is a restart in place (raylet_back).
static void
watch_raylet(ra_ctx_t *ctx, core_t *k)
{
    if (k->raylet_ref == 0 && !ra_pid_is_nil(k->c->raylet) &&
        ra_monitor(ctx, k->c->raylet, &k->raylet_ref) != 0) {
        k->raylet_ref = 0;
    }
}

// watch_objmgr monitors this node's object manager (once per
// incarnation), which its supervisor restarts in place (objmgr_back).
static void
watch_objmgr(ra_ctx_t *ctx, core_t *k)
{
    if (k->objmgr_ref == 0 && !ra_pid_is_nil(k->c->objmgr) &&
        ra_monitor(ctx, k->c->objmgr, &k->objmgr_ref) != 0) {
        k->objmgr_ref = 0;
    }
}

static int
send_lease_req(ra_ctx_t *ctx, core_t *k, uint64_t req, const ra__cls_t *c,
               bool actor, int isolation)
{
    watch_raylet(ctx, k);
    return send_lease_req_to(ctx, k->c->raylet, k->c->env, false, req, c,
                             actor, isolation);
}

static void
send_lease_return(ra_ctx_t *ctx, core_t *k, uint64_t lease, bool kill)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u64(&b, lease);
    ra__wb_u8(&b, kill);
    ra_pid_t to = raylet_of(k, lease, NULL);
    forget_remote_lease(k, lease);
    if (ra__wb_msg(&b, RA__T_LEASE_RETURN, &m) == 0 &&
        ra_send(ctx, to, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// forget_env_at forgets this job's environment at raylet (which was
// lost or restarted: it forgot it too).
static void
forget_env_at(core_t *k, ra_pid_t raylet)
{
    for (size_t i = 0; i < k->nre; i++) {
        if (ra_pid_eq(k->re[i].raylet, raylet)) {
            k->re[i] = k->re[--k->nre];
            return;
        }
    }
}

// env_at returns this job's environment at another node's raylet,
// registering the job there first (once).  Returns 0 or an error.
static int
env_at(ra_ctx_t *ctx, core_t *k, ra_pid_t raylet, uint32_t *env)
{
    for (size_t i = 0; i < k->nre; i++) {
        if (ra_pid_eq(k->re[i].raylet, raylet)) {
            *env = k->re[i].env;
            return 0;
        }
    }
    if (k->c->job_wire == NULL) {
        return RA_ENOTSUP;   // a worker's core: its job is not its own
    }
    ra_msg_t *m = NULL, *rep = NULL;
    ra__rbuf_t r;
    int rc = ra_msg_new_bytes(&m, RA__T_JOB, k->c->job_wire,
                              k->c->job_wire_len);
    if (rc == 0) {
        rc = ra__call_status(ctx, raylet, &m, 10000, &rep, &r);
    }
    if (rc != 0) {
        return rc;
    }
    uint32_t id = ra__rb_u32(&r);
    ra_msg_unref(&rep);
    if (r.bad) {
        return RA_EBADMSG;
    }
    struct renv *ne = realloc(k->re, (k->nre + 1) * sizeof *ne);
    if (ne == NULL) {
        return RA_ENOMEM;
    }
    k->re = ne;
    k->re[k->nre++] = (struct renv){raylet, id};
    *env = id;
    ra_log_info("core", "job registered at the raylet of node %u "
                "(environment %u)", raylet.node, id);
    return 0;
}

enum {
    TICK_IDLE = 1,
    TICK_DEADLINE = 2,
    TICK_GRACE = 3,
    TICK_LOST = 4,
    TICK_ACTOR_LOST = 5,
    TICK_RESPILL = 6,
    TICK_TEV = 7,
    TICK_ACTOR_RESOLVE = 8,
    TICK_ACTOR_BACKLOG = 9,
    TICK_REASK = 10
};

static void send_tick(ra_ctx_t *ctx, core_t *k, uint8_t what, uint64_t a,
                      uint64_t b2, uint64_t ms);
static void reask(ra_ctx_t *ctx, core_t *k);

// spill sends a lease request that our raylet passed on to the raylet of
// another node (or, when that cannot be, back to ours, not to be passed
// on again).
static void
spill(ra_ctx_t *ctx, core_t *k, uint64_t req, ra__cls_t *shape, bool actor,
      int isolation, ra_pid_t raylet, const char *ep)
{
    uint32_t env = 0;
    int rc = ep[0] != '\0' && k->c->link != NULL
                 ? ra_link_route(k->c->link, raylet.node, raylet.proc, ep)
                 : RA_EINVAL;
    if (rc == 0) {
        rc = env_at(ctx, k, raylet, &env);
    }
    if (rc != 0) {
        ra_log_info("core", "cannot spill to node %u (%s): asking this "
                    "node again", raylet.node, ra_err_name(rc));
        raylet = k->c->raylet;
        env = k->c->env;
    }
    (void)send_lease_req_to(ctx, raylet, env, true, req, shape, actor,
                            isolation);
    struct spilled *sp = NULL;
    if (!ra_pid_eq(raylet, k->c->raylet) &&
        (sp = calloc(1, sizeof *sp)) != NULL) {
        *sp = (struct spilled){.req = req, .raylet = raylet,
                               .shape = *shape, .actor = actor,
                               .isolation = isolation, .next = k->spilled};
        sp->shape.next = NULL;
        sp->shape.q = (ra__tq_t){0};
        // The raylet itself is watched: its DOWN comes when its node is
        // lost and when it is restarted in place, which forgets what it
        // was asked.
        if (ra_monitor(ctx, raylet, &sp->mref) != 0) {
            sp->mref = 0;
        }
        k->spilled = sp;
    }
}

// spilled_answered forgets the spilled request req once it is answered.
static void
spilled_answered(ra_ctx_t *ctx, core_t *k, uint64_t req)
{
    for (struct spilled **pp = &k->spilled; *pp != NULL;
         pp = &(*pp)->next) {
        struct spilled *sp = *pp;
        if (sp->req == req) {
            *pp = sp->next;
            if (sp->mref != 0) {
                (void)ra_demonitor(ctx, sp->mref);
            }
            free(sp);
            return;
        }
    }
}

// spilled_lost asks this node's raylet again for the requests passed on
// to a raylet that was lost (monitor mref): they would wait forever.
// True when mref was one of them.
static bool
spilled_lost(ra_ctx_t *ctx, core_t *k, uint64_t mref)
{
    bool any = false;
    for (struct spilled **pp = &k->spilled; *pp != NULL;) {
        struct spilled *sp = *pp;
        if (sp->mref == 0 || sp->mref != mref) {
            pp = &sp->next;
            continue;
        }
        *pp = sp->next;
        forget_env_at(k, sp->raylet);
        // Asked again a little later: until the GCS has seen that node
        // dead, this node's raylet may still pass the request there.
        if (k->respill == NULL) {
            send_tick(ctx, k, TICK_RESPILL, 0, 0, RESPILL_MS);
        }
        sp->mref = 0;
        sp->next = k->respill;
        k->respill = sp;
        any = true;
    }
    return any;
}

// respill asks this node's raylet again for the requests whose spill
// target was lost.
static void
respill(ra_ctx_t *ctx, core_t *k)
{
    while (k->respill != NULL) {
        struct spilled *sp = k->respill;
        k->respill = sp->next;
        ra_log_info("core", "the node lease request %" PRIu64 " was passed "
                    "on to was lost: asking this node again", sp->req);
        (void)send_lease_req_to(ctx, k->c->raylet, k->c->env, false, sp->req,
                                &sp->shape, sp->actor, sp->isolation);
        free(sp);
    }
}

static void
send_tick(ra_ctx_t *ctx, core_t *k, uint8_t what, uint64_t a, uint64_t b2,
          uint64_t delay)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u64(&b, k->tick_key);
    ra__wb_u8(&b, what);
    ra__wb_u64(&b, a);
    ra__wb_u64(&b, b2);
    if (ra__wb_msg(&b, RA__T_TICK, &m) == 0 &&
        ra_send_after(ra_ctx_runtime(ctx), ra_self(ctx), delay, &m, NULL) !=
            0) {
        ra_msg_unref(&m);
    }
}


void
ra__core_tick_actor(ra_ctx_t *ctx, void *kp, uint64_t key)
{
    send_tick(ctx, kp, TICK_ACTOR_LOST, key, 0, LOST_WAIT_MS);
}

void
ra__core_tick_resolve(ra_ctx_t *ctx, void *kp, uint64_t key, uint64_t ms)
{
    send_tick(ctx, kp, TICK_ACTOR_RESOLVE, key, 0, ms);
}

void
ra__core_tick_backlog(ra_ctx_t *ctx, void *kp, uint64_t key, uint64_t ms)
{
    send_tick(ctx, kp, TICK_ACTOR_BACKLOG, key, 0, ms);
}

// ---- dispatching tasks ----

static void
lease_drop(core_t *k, ra__lease_t *l)
{
    for (ra__lease_t **p = &k->leases; *p != NULL; p = &(*p)->next) {
        if (*p == l) {
            *p = l->next;
            break;
        }
    }
    if (l->cls != NULL) {
        l->cls->nleases--;
    }
    free(l);
}

// dispatch pushes queued tasks of class c to its leases.  How many may
// wait at one worker adapts to the class: pipelining hides the round trip
// for tiny tasks, but a long task queued behind another at a busy worker
// would wait while other CPUs idle.  So each lease gets about
// PIPE_BUDGET_US of work (from the measured time per task), at least one
// task and at most PIPE, and tasks beyond that wait here for more leases.
static void lease_idle_check(ra_ctx_t *ctx, core_t *k, ra__lease_t *l);

static void
dispatch(ra_ctx_t *ctx, core_t *k, ra__cls_t *c)
{
    int64_t now = ra__mono_us();
    for (ra__lease_t *l = k->leases; l != NULL && c->q.n != 0;
         l = l->next) {
        if (l->cls != c || l->dead) {
            continue;
        }
        while (l->inflight.n < c->depth && c->q.n != 0) {
            ra__task_t *t = q_pop(&c->q);
            if (ra__task_wire_attempt(t) != 0) {
                uint64_t id = t->id;
                task_fail(k, t, RA_ENOMEM, "out of memory");
                task_done(ctx, k, id);
                continue;
            }
            ra_msg_t *m = ra_msg_ref(t->wire);
            int src = ra_send(ctx, l->exec, &m);
            if (src != 0) {
                ra_msg_unref(&m);
                if (ra__core_too_big(ctx, k, t, src)) {
                    lease_idle_check(ctx, k, l);   // it may hold no task
                    continue;
                }
                q_push_front(&c->q, t);
                l->dead = true;  // the DOWN will clean up
                break;
            }
            t->lease = l;
            t->sent_us = now;
            tev_running(k->cs, t, l->exec);
            ra__tq_push(&l->inflight, t);
        }
    }
    // More leases while work waits: at most two requests in flight per
    // class, so a burst of a million tasks asks for workers gradually.
    if (c->q.n > 0 && c->pending_req < 2) {
        if (send_lease_req(ctx, k, ++k->next_req, c, false, 0) == 0) {
            c->pending_req++;
        }
    }
}

// store_arg writes argument o, a value in this node's store, as a
// reference to it there (RA__VAL_IN_STORE): {oid, our object manager, its
// endpoint, size}.  Returns false when it cannot (no object manager, or a
// value small enough to travel inline), and the caller copies the value.
static bool
store_arg(core_t *k, ra__wbuf_t *b, const ra__obj_t *o)
{
    ra__cluster_t *c = k->c;
    ra_oid_t oid;
    memcpy(oid.b, o->oid, 16);
    ra_objstore_info_t info;
    if (ra_pid_is_nil(c->objmgr) || c->node_ep[0] == '\0' ||
        ra_objstore_info(c->store, oid, &info) != 0 ||
        info.size < c->inline_max) {
        return false;
    }
    ra__wbuf_t d = {0};
    ra__wb_objloc(&d, oid, c->objmgr, c->node_ep, info.size);
    if (d.err != 0) {
        ra__wb_free(&d);
        return false;
    }
    uint8_t kind = o->kind != RA_VAL_NONE ? o->kind : RA_VAL_BYTES;
    ra__wb_u8(b, (uint8_t)(kind | RA__VAL_IN_STORE));
    ra__wb_bytes(b, d.p, d.len);
    ra__wb_free(&d);
    return true;
}

// resolve_args rewrites a task wire whose arguments include references
// to objects of this process, with their values.  Returns 0, or the error
// the task fails with (text in buf).
static int
resolve_args(core_t *k, ra__task_t *t, bool *stored, char *buf, size_t cap)
{
    ra__task_view_t v;
    int rc = ra__task_decode(t->wire, &v);
    if (rc != 0) {
        snprintf(buf, cap, "malformed task");
        return rc;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__WIRE_VERSION);
    ra__wb_u8(&b, v.type);
    ra__wb_u64(&b, v.id);
    ra__wb_u32(&b, t->attempt);
    ra__wb_u64(&b, v.actor);
    ra__wb_str(&b, v.name);
    ra__wb_u32(&b, v.nargs);
    pthread_mutex_lock(&k->cs->mu);
    for (uint32_t i = 0; i < v.nargs && rc == 0; i++) {
        ra__targ_t *a = &v.args[i];
        if (a->kind != RA_ARG_REF) {
            ra__wb_u8(&b, a->kind);
            ra__wb_bytes(&b, a->data, a->len);
            continue;
        }
        ra__obj_t *o = ra__obj_at(k->cs, a->ref.id);
        if (o == NULL) {
            snprintf(buf, cap, "argument %u: object %" PRIu64
                     " was released", i, a->ref.id);
            rc = RA_ENOENT;
        } else if (o->state == RA__OBJ_FAILED) {
            snprintf(buf, cap, "argument %u failed: %s", i,
                     o->text != NULL ? o->text : ra_err_name(o->err));
            rc = o->err;
        } else if (o->kind == RA__VAL_LENT) {
            // A reference a task returned: the task gets the reference
            // (as if lent with RA_ARG_BORROW), which this object holds
            // until the task ends.
            ra__wb_u8(&b, RA__VAL_LENT);
            ra__wb_bytes(&b, o->data, o->len);
            *stored = true;
        } else if (o->nest != NULL) {
            // A value that contains references: lent to the task, which
            // fetches it (and borrows what it contains) before it runs.
            ra__wb_lent(&b, a->ref, k->c->core, ra__own_ep(k->c), true);
            *stored = true;
        } else if (o->in_store && store_arg(k, &b, o)) {
            // The worker maps it, or pulls it to its node first.
            *stored = true;
        } else if (o->in_store) {
            ra_oid_t oid;
            ra_objstore_view_t view;
            memcpy(oid.b, o->oid, 16);
            if (ra_objstore_get(k->c->store, oid, 0, &view) != 0) {
                snprintf(buf, cap, "argument %u: object lost from the "
                         "store", i);
                rc = RA_ENOENT;
            } else {
                ra__wb_u8(&b, o->kind != RA_VAL_NONE ? o->kind
                                                     : RA_VAL_BYTES);
                ra__wb_bytes(&b, view.data, view.size);
                (void)ra_objstore_release(k->c->store, &view);
            }
        } else {
            ra__wb_u8(&b, o->kind != RA_VAL_NONE ? o->kind : RA_VAL_BYTES);
            ra__wb_bytes(&b, o->data, o->len);
        }
    }
    pthread_mutex_unlock(&k->cs->mu);
    free(v.args);
    ra_msg_t *m = NULL;
    if (rc != 0) {
        ra__wb_free(&b);
        return rc;
    }
    if ((rc = ra__wb_msg(&b, RA__T_TASK, &m)) != 0) {
        snprintf(buf, cap, "out of memory");
        return rc;
    }
    ra_msg_unref(&t->wire);
    t->wire = m;
    return 0;
}

static void actor_send(ra_ctx_t *ctx, core_t *k, ra__cactor_t *a,
                       ra__task_t *t);

// Calls to one actor go to it in the order the caller submitted them,
// also when a later call's arguments are ready before an earlier one's
// (Ray and Erlang promise the same).  A call waits in its handle's order
// queue from submission until it is at the head with its arguments
// resolved.

// order_flush hands on the calls at the head of a's order queue that are
// ready.  Sending may fail a call, which may make other calls ready and
// flush again: the loop reads the head afresh each time.
static void
order_flush(ra_ctx_t *ctx, core_t *k, ra__cactor_t *a)
{
    ra__task_t *t;
    while ((t = a->order.head) != NULL && t->order_ready) {
        ra__tq_remove(&a->order, t);
        t->in_order = false;
        actor_send(ctx, k, a, t);
    }
}

// order_leave takes t out of its actor's order queue (it ends before it is
// sent: its arguments failed, or it was cancelled) and lets the calls
// behind it go.
static void
order_leave(ra_ctx_t *ctx, core_t *k, ra__task_t *t)
{
    if (!t->in_order) {
        return;
    }
    ra__cactor_t *a = ra__cactor_at(k->cs, t->actor);
    t->in_order = false;
    if (a != NULL) {
        ra__tq_remove(&a->order, t);
        order_flush(ctx, k, a);
    }
}

// task_ready queues a task whose arguments are all available.
static void
task_ready(ra_ctx_t *ctx, core_t *k, ra__task_t *t)
{
    char buf[512];
    if (t->nrefs != 0) {
        bool stored = false;
        int rc = resolve_args(k, t, &stored, buf, sizeof buf);
        if (rc == 0 && stored) {
            // The worker reads them where they are: they stay until the
            // task has ended.
            t->held = t->refs;
            t->nheld = t->nrefs;
            t->refs = NULL;
        } else {
            for (uint32_t i = 0; i < t->nrefs; i++) {
                ra__obj_unborrow(k->cs, t->refs[i]);
            }
        }
        t->nrefs = 0;
        if (t->abandoned) {
            order_leave(ctx, k, t);
            task_free(t);   // its object failed already
            return;
        }
        if (rc != 0) {
            order_leave(ctx, k, t);
            uint64_t id = t->id;
            task_fail(k, t, rc, buf);
            task_done(ctx, k, id);
            return;
        }
    }
    if (t->type == RA__TASK_METHOD) {
        ra__cactor_t *a = ra__cactor_at(k->cs, t->actor);
        if (a != NULL && t->in_order) {
            t->order_ready = true;
            order_flush(ctx, k, a);
        } else {
            actor_send(ctx, k, a, t);
        }
        return;
    }
    ra__cls_t *c = cls_get(k, t->cpus, t->gpus, &t->x, t->pg, t->bundle,
                           t->near);
    if (c == NULL) {
        task_fail(k, t, RA_ENOMEM, "out of memory");
        return;
    }
    ra__tq_push(&c->q, t);
    dispatch(ctx, k, c);
}

// deps_check registers t as waiting on its pending arguments; returns
// true when none is pending.
static bool
deps_check(core_t *k, ra__task_t *t)
{
    bool ready = true;
    pthread_mutex_lock(&k->cs->mu);
    for (uint32_t i = 0; i < t->nrefs; i++) {
        ra__obj_t *o = ra__obj_at(k->cs, t->refs[i]);
        if (o != NULL && o->state == RA__OBJ_PENDING) {
            ra__dep_t *d = malloc(sizeof *d);
            if (d == NULL) {
                continue;   // resolve_args will see it unfinished
            }
            d->task = t;
            d->next = o->deps;
            o->deps = d;
            t->waiting++;
            ready = false;
        }
    }
    pthread_mutex_unlock(&k->cs->mu);
    return ready;
}

// deps_wake runs the tasks that waited on object id.
static void
deps_wake(ra_ctx_t *ctx, core_t *k, ra__dep_t *d)
{
    while (d != NULL) {
        ra__dep_t *n = d->next;
        if (--d->task->waiting == 0) {
            task_ready(ctx, k, d->task);
        }
        free(d);
        d = n;
    }
}

static ra__dep_t *
take_deps(core_t *k, uint64_t id)
{
    pthread_mutex_lock(&k->cs->mu);
    ra__obj_t *o = ra__obj_at(k->cs, id);
    ra__dep_t *d = o != NULL ? o->deps : NULL;
    if (o != NULL) {
        o->deps = NULL;
    }
    pthread_mutex_unlock(&k->cs->mu);
    return d;
}

static void
task_done(ra_ctx_t *ctx, core_t *k, uint64_t id)
{
    deps_wake(ctx, k, take_deps(k, id));
}

#define DAEMON_LOST_TEXT "the node daemon of this cluster was lost"

// daemon_lost: a joined driver's node daemon is gone, and with it the
// raylet, the GCS and every worker.  Everything pending fails now rather
// than waiting for its timeout.
static void
daemon_lost(core_t *k)
{
    k->daemon_lost = true;
    if (!k->c->stopping) {
        ra_log_err("core", "%s (process %u): pending tasks and actor calls "
                   "fail; start the cluster again and rerun the program",
                   DAEMON_LOST_TEXT, k->c->raylet.proc);
    }
    pthread_mutex_lock(&k->cs->mu);
    uint64_t n = k->cs->next_id;
    pthread_mutex_unlock(&k->cs->mu);
    for (uint64_t id = 1; id < n; id++) {
        obj_fail(k->cs, id, RA_ENOCONN, DAEMON_LOST_TEXT);
    }
}

static void
on_submit(ra_ctx_t *ctx, core_t *k, ra__task_t *t)
{
    if (k->daemon_lost) {
        task_fail(k, t, RA_ENOCONN, DAEMON_LOST_TEXT);
        return;
    }
    pthread_mutex_lock(&k->cs->mu);
    ra__obj_t *o = ra__obj_at(k->cs, t->id);
    if (o != NULL) {
        o->task = t;
    }
    pthread_mutex_unlock(&k->cs->mu);
    if (t->deadline != 0) {
        int64_t d = t->deadline - ra__mono_ms();
        send_tick(ctx, k, TICK_DEADLINE, t->id, 0, d > 0 ? (uint64_t)d : 0);
    }
    tev_pending(k, t);
    if (t->type == RA__TASK_METHOD) {
        ra__cactor_t *a = ra__cactor_at(k->cs, t->actor);
        if (a != NULL) {
            ra__tq_push(&a->order, t);
            t->in_order = true;
        }
    }
    if (deps_check(k, t)) {
        task_ready(ctx, k, t);
    }
}

// ---- results ----

static void
lease_idle_check(ra_ctx_t *ctx, core_t *k, ra__lease_t *l)
{
    if (l->inflight.n == 0 && l->cls != NULL && l->cls->q.n == 0 &&
        !l->idle_armed) {
        l->idle_armed = true;
        send_tick(ctx, k, TICK_IDLE, l->id, 0, IDLE_MS);
    }
}

// learn updates the class's time per task from a finished one: it held
// its worker from when it was sent or the previous task there finished,
// whichever is later.
static void
learn(ra__lease_t *l, const ra__task_t *t)
{
    int64_t now = ra__mono_us();
    int64_t from = t->sent_us > l->last_done_us ? t->sent_us
                                                : l->last_done_us;
    int64_t sample = now - from;
    l->last_done_us = now;
    ra__cls_t *c = l->cls;
    c->avg_us = c->avg_us == 0 ? sample : (c->avg_us * 7 + sample) / 8;
    int64_t d = PIPE_BUDGET_US / (c->avg_us > 0 ? c->avg_us : 1);
    c->depth = d < 1 ? 1 : d > PIPE ? PIPE : (unsigned)d;
}

// pull_result starts copying the result of task t, which is in the object
// store of another node, into this node's (RA__OBJ_PULL to our object
// manager); the object stays pending, and t its task, until on_obj.  data
// is {oid, pid objmgr, str endpoint, u64 size}.  Returns true when the
// pull is under way; false when it cannot be (the caller completes the
// object with the error set here and frees t).
static bool
pull_result(ra_ctx_t *ctx, core_t *k, ra__task_t *t, uint8_t vkind,
            const void *data, size_t len)
{
    uint64_t id = t->id;
    ra__objloc_t loc;
    const char *why = NULL;
    if (ra__objloc_read(data, len, &loc) != 0) {
        why = "the result's location is malformed";
    } else if (ra_pid_is_nil(k->c->objmgr) || k->c->store == NULL) {
        why = "this process's node has no object store to copy it into";
    }
    pthread_mutex_lock(&k->cs->mu);
    ra__obj_t *o = ra__obj_at(k->cs, id);
    if (o != NULL && why == NULL) {
        // The task stays the object's until the copy is made: if it
        // cannot be, the task may run again (lineage).
        o->pulling = true;
        t->pulling = true;
        o->kind = vkind;
        memcpy(o->oid, loc.oid.b, 16);
    }
    pthread_mutex_unlock(&k->cs->mu);
    if (o == NULL) {
        return false;
    }
    ra_msg_t *pm = NULL;
    if (why == NULL &&
        ra__pull_msg(id, &loc, RA__PULL_FREE_SRC, RA_PID_NIL, &pm) != 0) {
        why = "out of memory";
    }
    if (why == NULL) {
        watch_objmgr(ctx, k);
        t->pull = ra_msg_ref(pm);
        if (ra_send(ctx, k->c->objmgr, &pm) != 0) {
            ra_msg_unref(&pm);
            ra_msg_unref(&t->pull);
            why = "cannot reach this node's object manager";
        } else {
            ra__tq_push(&k->pulls, t);
        }
    }
    if (why != NULL) {
        char text[400];
        snprintf(text, sizeof text, "result of task %" PRIu64 " (%" PRIu64
                 " bytes, on node %u) is lost: %s", id, loc.size,
                 loc.objmgr.node, why);
        pthread_mutex_lock(&k->cs->mu);
        if (o != NULL) {
            o->pulling = false;
        }
        pthread_mutex_unlock(&k->cs->mu);
        obj_fail(k->cs, id, RA_EOBJLOST, text);
        return false;
    }
    return true;
}

// pull_done forgets t's pull request (answered, or given up).
static void
pull_done(core_t *k, ra__task_t *t)
{
    if (t != NULL && t->pull != NULL) {
        ra__tq_remove(&k->pulls, t);
        ra_msg_unref(&t->pull);
    }
}

// lost_again runs task t again when the copy of its result could not be
// made (the node that had it was lost) and it has retries left, as Ray
// rebuilds a lost object from its lineage.  Returns true when t is queued.
static bool
lost_again(ra_ctx_t *ctx, core_t *k, ra__task_t *t, const char *why)
{
    if (t == NULL || t->type != RA__TASK_FN || t->retries == 0 ||
        t->abandoned) {
        return false;
    }
    ra__cls_t *c = cls_get(k, t->cpus, t->gpus, &t->x, t->pg, t->bundle,
                           t->near);
    if (c == NULL) {
        return false;
    }
    if (t->retries > 0) {
        t->retries--;
    }
    t->attempt++;
    t->pulling = false;
    ra_log_warn("core", "the result of task %" PRIu64 " is lost (%s): "
                "running the task again (attempt %u)", t->id, why,
                t->attempt + 1);
    ra__tq_push(&c->q, t);
    dispatch(ctx, k, c);
    return true;
}

// on_obj takes our object manager's answer to a pull (RA__OBJ_PULLED): the
// object is now in this node's store, with a reference for us, or lost.
static void
on_obj(ra_ctx_t *ctx, core_t *k, ra_msg_t *m)
{
    uint64_t id;
    ra_oid_t so;
    int status;
    char text[600];
    if (ra__pulled_read(m, &id, &so, &status, text, sizeof text) != 0) {
        ra_log_warn("core", "malformed object message dropped");
        return;
    }
    pthread_mutex_lock(&k->cs->mu);
    ra__obj_t *o = ra__obj_at(k->cs, id);
    bool ours = o != NULL && o->pulling && o->state == RA__OBJ_PENDING &&
                memcmp(o->oid, so.b, 16) == 0;
    uint8_t kind = ours ? o->kind : 0;
    ra__task_t *t = ours ? o->task : NULL;
    if (ours) {
        o->pulling = false;
    }
    pthread_mutex_unlock(&k->cs->mu);
    pull_done(k, t);
    if (!ours) {
        // Given up meanwhile (cancelled, timed out): the copy made for us
        // is not wanted.  Or a second answer for a copy we have: asked
        // again of a restarted object manager while the first answer was
        // on its way.  The reference taken for this answer goes back, and
        // the copy goes only when no one else holds one (the store's
        // delete does not wait for references: deleting a copy that the
        // object's record still names lost it under its reader).
        ra_objstore_info_t info;
        if (status == 0 && k->c->store != NULL &&
            ra_objstore_unref(k->c->store, so) == 0 &&
            ra_objstore_info(k->c->store, so, &info) == 0 &&
            info.refs == 0) {
            (void)ra_objstore_delete(k->c->store, so);
        }
        return;
    }
    if (status == 0) {
        // obj_complete takes a reference of its own: the one our object
        // manager took for us is given back after it.
        task_unhold(k, t);
        obj_complete(k->cs, id, 0, (uint8_t)(kind | RA__VAL_IN_STORE), m,
                     so.b, 16);
        (void)ra_objstore_unref(k->c->store, so);
    } else if (status == RA_EOBJLOST && lost_again(ctx, k, t, text)) {
        return;
    } else {
        task_unhold(k, t);
        obj_fail(k->cs, id, status == RA_EOBJLOST ? RA_EOBJLOST : status,
                 text[0] != '\0' ? text : ra_err_name(status));
    }
    task_free(t);
    task_done(ctx, k, id);
}

static void
on_result(ra_ctx_t *ctx, core_t *k, ra_msg_t *m)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint64_t id = ra__rb_u64(&r);
    uint32_t attempt = ra__rb_u32(&r);
    int status = (int)ra__rb_u32(&r);
    uint8_t kind = ra__rb_u8(&r);
    size_t len;
    const void *data = ra__rb_bytes(&r, &len);
    uint8_t vkind = kind & ~(RA__VAL_IN_STORE | RA__VAL_REMOTE);
    bool remote = (kind & RA__VAL_REMOTE) != 0;
    ra__lent_t lent;
    // The references the value contains (ra_task_return_refs): the worker
    // registered us with their owners before it sent this.
    const void *nestp = NULL;
    size_t nestl = 0;
    uint32_t nrefs = 0;
    if (!r.bad && r.off < r.len) {
        nestp = ra__rb_bytes(&r, &nestl);
        if (r.bad || r.off != r.len || status != 0 ||
            kind == RA__VAL_LENT ||
            ra__nest_count(nestp, nestl, &nrefs) != 0) {
            r.bad = true;
        }
    }
    if (r.bad || (vkind > RA_VAL_F64 && kind != RA__VAL_LENT) ||
        (kind == RA__VAL_LENT && (status != 0 ||
                                  ra__lent_read(data, len, &lent) != 0)) ||
        (remote && !(kind & RA__VAL_IN_STORE)) ||
        ((kind & RA__VAL_IN_STORE) && !remote &&
         (len != 16 || k->c->store == NULL)) ||
        (remote && len < 16 + 16)) {
        ra_log_warn("core", "malformed result dropped");
        return;
    }
    ra_msg_t *nest = NULL;
    if (nestp != NULL && ra_msg_new_bytes(&nest, 0, nestp, nestl) != 0) {
        // Cannot keep them: the object fails (and they stay counted for
        // us until this process ends).
        static const char oom[] = "out of memory for the references in "
                                  "the result";
        nest = NULL;
        status = RA_ENOMEM;
        kind = vkind = RA_VAL_NONE;
        remote = false;
        data = oom;
        len = sizeof oom - 1;
    }
    pthread_mutex_lock(&k->cs->mu);
    ra__obj_t *o = ra__obj_at(k->cs, id);
    ra__task_t *t = o != NULL ? o->task : NULL;
    bool take = t != NULL && attempt == t->attempt && status == 0;
    if (nest != NULL) {
        // Counted for us by their owners: held from now on, by the object
        // (which lets them go when it is freed), or let go at once when
        // this result is not taken.
        ra__nest_hold_locked(k->c, nest);
        if (!take) {
            ra__nest_drop_locked(k->c, &nest);
        } else {
            // An earlier attempt's, whose copy was lost on its way here
            // (the task ran again), is let go.
            ra__nest_drop_locked(k->c, &o->nest);
            o->nest = nest;
            nest = NULL;
        }
    }
    pthread_mutex_unlock(&k->cs->mu);
    if (t == NULL) {
        // An abandoned task (timed out or cancelled) finished late: find
        // it on its lease and forget it.
        for (ra__lease_t *l = k->leases; l != NULL; l = l->next) {
            for (ra__task_t *x = l->inflight.head; x != NULL; x = x->next) {
                if (x->id == id && x->abandoned) {
                    ra__tq_remove(&l->inflight, x);
                    task_free(x);
                    lease_idle_check(ctx, k, l);
                    if (l->cls != NULL) {
                        dispatch(ctx, k, l->cls);
                    }
                    return;
                }
            }
        }
        return;
    }
    if (attempt != t->attempt) {
        return;
    }
    ra__lease_t *l = t->lease;
    ra__cactor_t *a = t->type == RA__TASK_METHOD
                         ? ra__cactor_at(k->cs, t->actor)
                         : NULL;
    if (status == RA_ETASK && t->retry_exc && t->retries != 0) {
        if (t->retries > 0) {
            t->retries--;
        }
        t->attempt++;
        if (l != NULL) {
            ra__tq_remove(&l->inflight, t);
            t->lease = NULL;
            ra__tq_push(&l->cls->q, t);
            dispatch(ctx, k, l->cls);
        } else if (a != NULL) {
            ra__tq_remove(&a->inflight, t);
            actor_send(ctx, k, a, t);
        }
        return;
    }
    if (l != NULL) {
        ra__tq_remove(&l->inflight, t);
        learn(l, t);
    } else if (a != NULL) {
        ra__tq_remove(&a->inflight, t);
    }
    t->lease = NULL;
    bool later = status == 0 && remote &&
                 pull_result(ctx, k, t, vkind, data, len);
    if (!later) {
        task_unhold(k, t);
        tev_result(k->cs, t, status, data, status != 0 ? len : 0);
        obj_complete(k->cs, id, status, kind, m, data, len);
        task_free(t);
        task_done(ctx, k, id);
    }
    if (l != NULL) {
        dispatch(ctx, k, l->cls);
        lease_idle_check(ctx, k, l);
    }
}

// ---- leases ----

static void
on_grant(ra_ctx_t *ctx, core_t *k, ra_msg_t *m)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint64_t req = ra__rb_u64(&r);
    int status = (int)ra__rb_u32(&r);
    uint64_t lid = ra__rb_u64(&r);
    ra_pid_t exec = ra__rb_pid(&r);
    ra_pid_t host = ra__rb_pid(&r);
    double cpus = ra__rb_f64(&r);
    double gpus = ra__rb_f64(&r);
    uint8_t actor = ra__rb_u8(&r);
    uint8_t tell = ra__rb_u8(&r);
    char vis[RA__VISIBLE_MAX];
    ra__rb_str(&r, vis, sizeof vis);
    uint64_t pg = ra__rb_u64(&r);
    int32_t bundle = (int32_t)ra__rb_u32(&r);
    ra_resources_t x;
    ra__rb_res(&r, &x);
    x.cpus = x.gpus = 0;
    char ep[256];
    ra__rb_str(&r, ep, sizeof ep);
    int isolation = ra__rb_u8(&r);
    ra_pid_t target = RA_PID_NIL;
    char target_ep[256] = "";
    if (status == RA__LEASE_SPILL) {
        target = ra__rb_pid(&r);
        ra__rb_str(&r, target_ep, sizeof target_ep);
    }
    // The request's node of large arguments, echoed (absent: none).
    uint32_t near = !r.bad && r.off < r.len ? ra__rb_u32(&r) : 0;
    if (r.bad || !ra__gpu_env_ok(vis)) {
        ra_log_warn("core", "malformed lease grant dropped");
        return;
    }
    spilled_answered(ctx, k, req);
    if (status == RA_EAGAIN) {
        // A raylet restarted in place that does not know the job's
        // environment named (an earlier incarnation's): asked again soon,
        // once the job is registered again (raylet_back, env_at).
        ra_pid_t from = ra_sender(ctx);
        if (!ra_pid_eq(from, k->c->raylet)) {
            forget_env_at(k, from);
        } else {
            k->rejoin = true;   // (its DOWN may not have come: reask)
        }
        if (!actor) {
            ra__cls_t *c = cls_get(k, cpus, gpus, &x, pg, bundle, near);
            if (c != NULL && c->pending_req > 0) {
                c->pending_req--;
            }
        }
        if (!k->reask_armed) {
            k->reask_armed = true;
            send_tick(ctx, k, TICK_REASK, 0, 0, REASK_MS);
        }
        return;
    }
    if (status == RA__LEASE_SPILL) {
        ra__cls_t shape = {.cpus = cpus, .gpus = gpus, .x = x, .pg = pg,
                           .bundle = bundle, .near = near};
        spill(ctx, k, req, &shape, actor, isolation, target, target_ep);
        return;
    }
    ra_pid_t from = ra_sender(ctx);
    if (status == 0 && !ra_pid_eq(from, k->c->raylet)) {
        if (k->nrl == k->caprl) {
            size_t cap = k->caprl ? 2 * k->caprl : 16;
            struct rlease *n = realloc(k->rl, cap * sizeof *n);
            if (n == NULL) {
                return;   // the lease stays unused until the owner ends
            }
            k->rl = n;
            k->caprl = cap;
        }
        k->rl[k->nrl++] = (struct rlease){lid, from};
    }
    if (status == 0 && ep[0] != '\0' && k->c->link != NULL &&
        ra_link_route(k->c->link, exec.node, exec.proc, ep) != 0) {
        ra_log_warn("core", "lease grant with a bad endpoint %s dropped",
                    ep);
        return;
    }
    if (status == 0 && tell) {
        // Before any task or actor: the worker must see the lease's GPUs.
        ra__send_gpu_env(ctx, actor ? host : exec, vis);
    }
    if (actor) {
        // An actor's lease request carries the actor's key as its id.
        ra__actor_granted(ctx, k->cs, req, status, lid, host, ep);
        return;
    }
    ra__cls_t *c = cls_get(k, cpus, gpus, &x, pg, bundle, near);
    if (c == NULL) {
        if (status == 0) {
            send_lease_return(ctx, k, lid, false);
        }
        return;
    }
    if (c->pending_req > 0) {
        c->pending_req--;
    }
    if (status != 0) {
        char buf[320];
        char need[160];
        ra__describe_need(need, sizeof need, cpus, gpus, &x);
        if (pg != 0) {
            snprintf(buf, sizeof buf, "placement group %" PRIu64 " (bundle "
                     "%d) has no room for %s, or was removed", pg,
                     (int)bundle, need);
        } else {
            snprintf(buf, sizeof buf, "no node offers %s", need);
        }
        ra__task_t *t;
        while ((t = q_pop(&c->q)) != NULL) {
            uint64_t id = t->id;
            task_fail(k, t, status, buf);
            task_done(ctx, k, id);
        }
        return;
    }
    if (c->q.n == 0) {
        send_lease_return(ctx, k, lid, false);
        return;
    }
    ra__lease_t *l = calloc(1, sizeof *l);
    if (l == NULL) {
        send_lease_return(ctx, k, lid, false);
        return;
    }
    l->id = lid;
    l->exec = exec;
    l->host = host;
    l->cls = c;
    c->nleases++;
    l->next = k->leases;
    k->leases = l;
    if (ra_monitor(ctx, exec, &l->mref) != 0) {
        l->dead = true;
    }
    dispatch(ctx, k, c);
}

void
ra__send_gpu_env(ra_ctx_t *ctx, ra_pid_t to, const char *visible)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_str(&b, visible);
    if (ra__wb_msg(&b, RA__T_GPU_ENV, &m) == 0 && ra_send(ctx, to, &m) != 0) {
        ra_msg_unref(&m);
    }
}

static ra__lease_t *
lease_by_id(core_t *k, uint64_t id)
{
    for (ra__lease_t *l = k->leases; l != NULL; l = l->next) {
        if (l->id == id) {
            return l;
        }
    }
    return NULL;
}

// lease_lost handles a worker that died under a lease: its tasks go back
// to the queue while they have retries left.
static void
lease_lost(ra_ctx_t *ctx, core_t *k, ra__lease_t *l, const char *how)
{
    char buf[256];
    snprintf(buf, sizeof buf, "the worker process (pid %u, node %u) "
             "running it died: %s", l->exec.proc, l->exec.node, how);
    ra__task_t *t;
    ra__cls_t *c = l->cls;
    while ((t = q_pop(&l->inflight)) != NULL) {
        if (t->abandoned) {
            task_free(t);
        } else if (t->retries != 0) {
            if (t->retries > 0) {
                t->retries--;
            }
            t->attempt++;
            t->lease = NULL;
            q_push_front(&c->q, t);
        } else {
            uint64_t id = t->id;
            task_fail(k, t, RA_EWORKER, buf);
            task_done(ctx, k, id);
        }
    }
    send_lease_return(ctx, k, l->id, false);
    lease_drop(k, l);
    dispatch(ctx, k, c);
}

// on_lease_lost: the raylet saw a leased worker die, and says how.
static void
on_lease_lost(ra_ctx_t *ctx, core_t *k, ra_msg_t *m)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint64_t id = ra__rb_u64(&r);
    char how[128];
    ra__rb_str(&r, how, sizeof how);
    // Only the raylet that granted the lease is believed.
    if (r.bad || !ra_pid_eq(ra_sender(ctx), raylet_of(k, id, NULL))) {
        return;
    }
    forget_remote_lease(k, id);
    ra__lease_t *l = lease_by_id(k, id);
    if (l != NULL) {
        if (l->mref != 0) {
            ra_demonitor(ctx, l->mref);
        }
        lease_lost(ctx, k, l, how);
        return;
    }
    ra__actor_lease_lost(ctx, k->cs, id, how);
}

// ---- ticks: idle leases, deadlines ----

static ra__task_t *
find_task(core_t *k, uint64_t id)
{
    pthread_mutex_lock(&k->cs->mu);
    ra__obj_t *o = ra__obj_at(k->cs, id);
    ra__task_t *t = o != NULL && o->state == RA__OBJ_PENDING ? o->task
                                                             : NULL;
    pthread_mutex_unlock(&k->cs->mu);
    return t;
}

static void
send_cancel(ra_ctx_t *ctx, ra_pid_t host, uint64_t id)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u64(&b, id);
    if (ra__wb_msg(&b, RA__T_CANCEL, &m) == 0 && ra_send(ctx, host, &m) !=
                                                     0) {
        ra_msg_unref(&m);
    }
}

// stop_task ends a task early (deadline or cancel) with err.  A queued one
// is removed; a running one is abandoned: the caller sees err now, the
// worker is told, and with kill (or after GRACE_MS) it is killed.
void
ra__core_stop_task(ra_ctx_t *ctx, void *kp, uint64_t id, int err,
                   const char *text, bool kill)
{
    core_t *k = kp;
    ra__task_t *t = find_task(k, id);
    if (t == NULL) {
        return;
    }
    if (t->pulling) {
        // Done; only its result is on its way here (on_obj lets the copy
        // go when it comes).
        pull_done(k, t);
        obj_fail(k->cs, id, err, text);
        task_free(t);
        task_done(ctx, k, id);
        return;
    }
    if (t->waiting != 0) {
        // Still waiting for arguments: it stays registered on them; mark
        // it so that it is dropped when they arrive.  The calls behind it
        // need not wait for them.
        t->abandoned = true;
        obj_fail(k->cs, id, err, text);
        order_leave(ctx, k, t);
        return;
    }
    if (t->in_order) {
        // Ready, behind a call still waiting for its arguments.
        order_leave(ctx, k, t);
        task_fail(k, t, err, text);
        task_done(ctx, k, id);
        return;
    }
    if (t->type == RA__TASK_METHOD) {
        ra__actor_stop_call(ctx, k->cs, t, err, text);
        return;
    }
    ra__lease_t *l = t->lease;
    if (l == NULL) {
        ra__cls_t *c = cls_get(k, t->cpus, t->gpus, &t->x, t->pg, t->bundle,
                           t->near);
        if (c != NULL) {
            ra__tq_remove(&c->q, t);
        }
        task_fail(k, t, err, text);
        task_done(ctx, k, id);
        return;
    }
    t->abandoned = true;
    obj_fail(k->cs, id, err, text);
    task_done(ctx, k, id);
    send_cancel(ctx, l->host, id);
    if (kill) {
        send_lease_return(ctx, k, l->id, true);
    } else {
        send_tick(ctx, k, TICK_GRACE, l->id, id, GRACE_MS);
    }
}

static void
on_tick(ra_ctx_t *ctx, core_t *k, ra_msg_t *m)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint64_t key = ra__rb_u64(&r);
    uint8_t what = ra__rb_u8(&r);
    uint64_t a = ra__rb_u64(&r);
    uint64_t b = ra__rb_u64(&r);
    if (r.bad || key != k->tick_key) {
        return;
    }
    if (what == TICK_IDLE) {
        ra__lease_t *l = lease_by_id(k, a);
        if (l == NULL) {
            return;
        }
        l->idle_armed = false;
        if (l->inflight.n == 0 && l->cls->q.n == 0 && !l->dead) {
            ra_demonitor(ctx, l->mref);
            send_lease_return(ctx, k, l->id, false);
            lease_drop(k, l);
        }
    } else if (what == TICK_ACTOR_LOST) {
        ra__actor_lost_tick(ctx, k->cs, a);
    } else if (what == TICK_ACTOR_RESOLVE) {
        ra__actor_resolve_tick(ctx, k->cs, a);
    } else if (what == TICK_ACTOR_BACKLOG) {
        ra__actor_backlog_tick(ctx, k->cs, a);
    } else if (what == TICK_RESPILL) {
        respill(ctx, k);
    } else if (what == TICK_REASK) {
        k->reask_armed = false;
        reask(ctx, k);
    } else if (what == TICK_TEV) {
        // (a = 1: ra__core_flush_events asks, and waits for the answer.)
        k->cs->tev_armed = a == 1 && k->cs->tev_armed;
        tev_flush(ctx, k);
        ra_msg_t *rep = NULL;
        if (ra_call_ref(ctx) != 0 &&
            ra_msg_new_bytes(&rep, RA__T_TICK, NULL, 0) == 0 &&
            ra_reply(ctx, &rep) != 0) {
            ra_msg_unref(&rep);
        }
    } else if (what == TICK_LOST) {
        ra__lease_t *l = lease_by_id(k, a);
        if (l != NULL) {
            char rs[64], how[80];
            snprintf(how, sizeof how, "connection lost (%s)",
                     ra_reason_str(l->down_why, rs, sizeof rs));
            lease_lost(ctx, k, l, how);
        }
    } else if (what == TICK_DEADLINE) {
        ra__core_stop_task(ctx, k, a, RA_ETIMEOUT,
                           "the task's deadline passed", false);
    } else if (what == TICK_GRACE) {
        ra__lease_t *l = lease_by_id(k, a);
        if (l == NULL) {
            return;
        }
        for (ra__task_t *t = l->inflight.head; t != NULL; t = t->next) {
            if (t->id == b && t->abandoned) {
                ra_log_warn("core", "task %" PRIu64 " did not stop within "
                            "%u ms: killing worker %u", b, GRACE_MS,
                            l->exec.proc);
                send_lease_return(ctx, k, l->id, true);
                return;
            }
        }
    }
}

// ---- the actor ----

static void
drain_inbox(ra_ctx_t *ctx, core_t *k)
{
    ra__core_t *cs = k->cs;
    pthread_mutex_lock(&cs->inmu);
    ra__inbox_t *e = cs->in_head;
    cs->in_head = NULL;
    cs->in_tail = &cs->in_head;
    cs->in_woken = false;
    pthread_mutex_unlock(&cs->inmu);
    while (e != NULL) {
        ra__inbox_t *n = e->next;
        if (e->task != NULL) {
            on_submit(ctx, k, e->task);
        } else if (e->cmd != NULL) {
            ra__core_cmd(ctx, k, cs, e->cmd);
        }
        free(e);
        e = n;
    }
}

int
ra__core_post(ra__cluster_t *c, ra__task_t *t, ra__cmd_t *cmd)
{
    ra__core_t *cs = c->cs;
    ra__inbox_t *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return RA_ENOMEM;
    }
    e->task = t;
    e->cmd = cmd;
    pthread_mutex_lock(&cs->inmu);
    bool wake = !cs->in_woken;
    int rc = 0;
    if (wake) {
        ra_msg_t *m = NULL;
        if ((rc = ra_msg_new_bytes(&m, RA__T_SUBMIT, NULL, 0)) == 0 &&
            (rc = ra_runtime_send(c->rt, c->core, &m)) != 0) {
            ra_msg_unref(&m);
        }
    }
    if (rc == 0) {
        cs->in_woken = true;
        *cs->in_tail = e;
        cs->in_tail = &e->next;
    }
    pthread_mutex_unlock(&cs->inmu);
    if (rc != 0) {
        free(e);
    }
    return rc;
}

static int
core_init(ra_ctx_t *ctx, void **state)
{
    (void)ctx;
    core_t *k = calloc(1, sizeof *k);
    if (k == NULL) {
        return RA_ENOMEM;
    }
    k->c = *state;
    k->cs = k->c->cs;
    if (getrandom(&k->tick_key, sizeof k->tick_key, 0) !=
        (ssize_t)sizeof k->tick_key) {
        k->tick_key = (uint64_t)ra__mono_us() ^ (uint64_t)getpid() << 32;
    }
    const char *tev = getenv("RAYO_TASK_EVENTS");
    k->no_tev = tev != NULL && strcmp(tev, "0") == 0;
    k->tev_methods = tev != NULL && strcmp(tev, "all") == 0;
    k->cs->core = k;
    *state = k;
    if (k->c->joined &&
        ra_link_monitor_node(ctx, k->c->raylet.node, k->c->raylet.proc,
                             &k->daemon_ref) != 0) {
        k->daemon_ref = 0;
    }
    if (k->c->joined) {
        // (Before its job is registered: a restart from then on is seen.)
        watch_raylet(ctx, k);
    }
    return 0;
}

// on_pg_ready: the GCS says a placement group this process waits for
// was created (0) or removed first.  Only the GCS is believed.
static void
on_pg_ready(ra_ctx_t *ctx, core_t *k, ra_msg_t *m)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint64_t obj = ra__rb_u64(&r);
    int status = (int)ra__rb_u32(&r);
    if (r.bad || !ra_pid_eq(ra_sender(ctx), ra__gcs_pid(k->c))) {
        ra_log_warn("core", "unexpected placement-group news dropped");
        return;
    }
    const char *why = status == 0 ? NULL
                                  : "the placement group was removed";
    ra__core_obj_complete(k->cs, obj, status, RA_VAL_NONE, NULL, why,
                          why != NULL ? strlen(why) : 0);
}

// on_output writes a line of a worker of this driver's job to this
// process's stdout or stderr (in one write, so lines do not interleave).
static void
on_output(core_t *k, ra_msg_t *m)
{
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint8_t stream = ra__rb_u8(&r);
    size_t n = 0;
    const void *line = ra__rb_bytes(&r, &n);
    if (r.bad || (stream != 1 && stream != 2) || !k->c->joined) {
        return;
    }
    ssize_t w = write(stream, line, n);
    (void)w;
}

// reask asks this node's raylet again for workers for the queued tasks
// of every class and the actors that wait for one.
static int rejoin(ra_ctx_t *ctx, core_t *k);

static void
reask(ra_ctx_t *ctx, core_t *k)
{
    if (k->rejoin) {
        int rc = rejoin(ctx, k);
        if (rc == RA_ENOPROC && !atomic_load(&k->c->stopping)) {
            // Not back yet: again at the next tick.
            k->reask_armed = true;
            send_tick(ctx, k, TICK_REASK, 0, 0, REASK_MS);
            return;
        }
        k->rejoin = false;
        if (rc == 0) {
            watch_raylet(ctx, k);
        }
    }
    for (ra__cls_t *c = k->classes; c != NULL; c = c->next) {
        if (c->q.n > 0) {
            dispatch(ctx, k, c);
        }
    }
    ra__actors_reask(ctx, k->cs);
}

// rejoin registers this driver's job again at this node's raylet (a
// driver of a node daemon), or (other processes) only asks it something:
// 0 once it answers.
static int
rejoin(ra_ctx_t *ctx, core_t *k)
{
    ra_msg_t *m = NULL, *rep = NULL;
    ra__rbuf_t r;
    bool job = k->c->joined && k->c->job_wire != NULL;
    uint8_t info = RA__INFO_WORKERS;
    int rc = job ? ra_msg_new_bytes(&m, RA__T_JOB, k->c->job_wire,
                                    k->c->job_wire_len)
                 : ra_msg_new_bytes(&m, RA__T_RAYLET_INFO, &info, 1);
    if (rc != 0) {
        return rc;
    }
    rc = job ? ra__call_status(ctx, k->c->raylet, &m, 5000, &rep, &r)
             : ra_call(ctx, k->c->raylet, &m, 5000, &rep);
    ra_msg_unref(&m);
    if (rc == 0 && job) {
        uint32_t env = ra__rb_u32(&r);
        if (r.bad) {
            rc = RA_EBADMSG;
        } else {
            k->c->env = env;
            ra_log_info("core", "job registered again at this node's raylet "
                        "(environment %u)", env);
        }
    }
    ra_msg_unref(&rep);
    return rc;
}

typedef struct rejoin_args {
    ra_ctx_t *ctx;
    core_t *k;
} rejoin_t;

static int
rejoin_try(void *arg)
{
    rejoin_t *a = arg;
    return rejoin(a->ctx, a->k);
}

// back_in_place: a system actor of this node (the raylet, the object
// manager) that ended with why may come back in place: not when its
// process was lost (daemon_lost says what happens then) or we stop.
static bool
back_in_place(const core_t *k, ra_reason_t why)
{
    return why != RA_NOCONNECTION && !k->daemon_lost &&
           !atomic_load(&k->c->stopping);
}

// raylet_back: this node's raylet ended.  With its process (the node
// daemon lost) daemon_lost says what happens.  Otherwise its supervisor
// restarts it in place (the same pid) within milliseconds, having
// forgotten the job's environment and the requests it had not granted:
// wait for it, register the job again and ask again.  Its workers are
// stopped with it; their leases end through their own DOWNs, as after a
// crash.
static void
raylet_back(ra_ctx_t *ctx, core_t *k, ra_reason_t why)
{
    k->raylet_ref = 0;
    if (!back_in_place(k, why)) {
        return;
    }
    // A clean end is usually its daemon stopping: asked once, not waited
    // for (were it restarted later all the same, its first refusal of our
    // job environment, RA_EAGAIN, has the job registered again: on_grant,
    // reask).
    bool clean = RA_IS_CLEAN_EXIT(why);
    char rs[64];
    if (!clean) {
        ra_log_warn("core", "this node's raylet ended (%s); its supervisor "
                    "restarts it: asking it again for workers",
                    ra_reason_str(why, rs, sizeof rs));
    }
    rejoin_t rj = {ctx, k};
    int rc = ra__kept_again(k->c, rejoin_try(&rj), rejoin_try, &rj,
                            clean ? 0 : RA__KEPT_BACK_MS);
    if (rc != 0) {
        if (!clean) {
            ra_log_err("core", "this node's raylet did not come back (%s): "
                       "work that needs it fails", ra_strerror(rc));
        }
        return;
    }
    watch_raylet(ctx, k);
    k->rejoin = false;
    for (ra__cls_t *c = k->classes; c != NULL; c = c->next) {
        c->pending_req = 0;
    }
    reask(ctx, k);
}

// objmgr_back: this node's object manager ended.  With its process (the
// node daemon lost) daemon_lost says what happens.  Otherwise its
// supervisor restarts it in place within milliseconds, having aborted the
// transfers it made for us: wait for it and ask again for each.
static void
objmgr_back(ra_ctx_t *ctx, core_t *k, ra_reason_t why)
{
    k->objmgr_ref = 0;
    if (!back_in_place(k, why)) {
        return;
    }
    // (A clean end is usually its daemon stopping: asked once.)
    bool clean = RA_IS_CLEAN_EXIT(why);
    uint8_t op = RA__OBJ_STATS;
    ra_msg_t *q = NULL, *rep = NULL;
    int rc = ra_msg_new_bytes(&q, RA__T_OBJ, &op, 1);
    if (rc == 0) {
        rc = ra__call_kept(k->c, ctx, k->c->objmgr, q, 5000,
                           clean ? 0 : RA__KEPT_BACK_MS, &rep);
    }
    ra_msg_unref(&q);
    ra_msg_unref(&rep);
    if (rc != 0) {
        if (!clean) {
            ra_log_err("core", "this node's object manager did not come "
                       "back (%s): results on other nodes cannot be copied "
                       "here", ra_strerror(rc));
        }
        return;
    }
    char rs[64];
    ra_log_warn("core", "this node's object manager ended (%s); its "
                "supervisor restarted it: asking again for %zu %s",
                ra_reason_str(why, rs, sizeof rs), k->pulls.n,
                k->pulls.n == 1 ? "object" : "objects");
    watch_objmgr(ctx, k);
    for (ra__task_t *t = k->pulls.head; t != NULL; t = t->next) {
        ra_msg_t *m = ra_msg_ref(t->pull);
        if (ra_send(ctx, k->c->objmgr, &m) != 0) {
            ra_msg_unref(&m);
        }
    }
}

static int
core_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    core_t *k = state;
    switch (ra_msg_tag(msg)) {
    case RA__T_SUBMIT:
        // Only a wake-up: the work itself is in the inbox.
        drain_inbox(ctx, k);
        break;
    case RA__T_RESULT:
        if (ra__actor_is_ctor_result(ctx, k->cs, msg)) {
            break;
        }
        on_result(ctx, k, msg);
        break;
    case RA__T_LEASE_GRANT:
        on_grant(ctx, k, msg);
        break;
    case RA__T_PG_READY:
        on_pg_ready(ctx, k, msg);
        break;
    case RA__T_OUTPUT:
        on_output(k, msg);
        break;
    case RA__T_TICK:
        on_tick(ctx, k, msg);
        break;
    case RA__T_LEASE_LOST:
        on_lease_lost(ctx, k, msg);
        break;
    case RA__T_OBJ:
        on_obj(ctx, k, msg);
        break;
    case RA__T_BORROW:
        ra__borrow_on_msg(ctx, k->c, msg);
        break;
    default:
        if (ra_msg_kind(msg) == RA_MSG_DOWN) {
            uint64_t mref;
            ra_pid_t pid;
            ra_reason_t why;
            if (ra_msg_down_info(msg, &mref, &pid, &why) != 0) {
                break;
            }
            if (mref != 0 && mref == k->daemon_ref) {
                daemon_lost(k);
                break;
            }
            if (mref != 0 && mref == k->raylet_ref) {
                raylet_back(ctx, k, why);
                break;
            }
            if (mref != 0 && mref == k->objmgr_ref) {
                objmgr_back(ctx, k, why);
                break;
            }
            if (mref != 0 && spilled_lost(ctx, k, mref)) {
                break;
            }
            if (mref != 0 && ra__borrow_down(ctx, k->c, mref)) {
                break;
            }
            for (ra__lease_t *l = k->leases; l != NULL; l = l->next) {
                if (l->mref == mref) {
                    // The raylet usually says how the worker died a moment
                    // later (RA__T_LEASE_LOST); wait for that a little, so
                    // that error values name the signal.
                    l->dead = true;
                    l->mref = 0;
                    l->down_why = why;
                    send_tick(ctx, k, TICK_LOST, l->id, 0, LOST_WAIT_MS);
                    return 0;
                }
            }
            ra__actor_down(ctx, k->cs, mref, pid, why);
        }
        break;
    }
    if (k->cs->ntev >= TEV_BATCH) {
        tev_flush(ctx, k);
    } else if (k->cs->ntev > 0 && !k->cs->tev_armed) {
        k->cs->tev_armed = true;
        send_tick(ctx, k, TICK_TEV, 0, 0, TEV_FLUSH_MS);
    }
    return 0;
}

static void
core_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)reason;
    (void)ctx;
    core_t *k = state;
    for (int i = 0; i < 2; i++) {
        struct spilled **list = i == 0 ? &k->spilled : &k->respill;
        while (*list != NULL) {
            struct spilled *sp = *list;
            *list = sp->next;
            free(sp);
        }
    }
    while (k->leases != NULL) {
        ra__lease_t *l = k->leases;
        ra__task_t *t;
        while ((t = q_pop(&l->inflight)) != NULL) {
            task_free(t);
        }
        lease_drop(k, l);
    }
    while (k->classes != NULL) {
        ra__cls_t *c = k->classes;
        ra__task_t *t;
        while ((t = q_pop(&c->q)) != NULL) {
            task_free(t);
        }
        k->classes = c->next;
        free(c);
    }
    ra__actors_free(k->cs);
    k->cs->core = NULL;
    free(k->rl);
    free(k->re);
    free(k);
}

static const ra_behaviour_t core_beh = {
    .name = "rayo-core",
    .init = core_init,
    .handle = core_handle,
    .terminate = core_terminate,
};

int
ra__core_start(ra__cluster_t *c)
{
    ra__core_t *cs = calloc(1, sizeof *cs);
    if (cs == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_init(&cs->mu, NULL);
    pthread_mutex_init(&cs->inmu, NULL);
    cs->in_tail = &cs->in_head;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cs->cv, &ca);
    pthread_condattr_destroy(&ca);
    cs->next_id = 1;
    cs->next_actor = 1;
    c->cs = cs;
    int rc = ra_spawn(c->rt, &core_beh, c, NULL, &c->core);
    if (rc != 0) {
        ra__core_free(c);
    }
    return rc;
}

void
ra__core_free(ra__cluster_t *c)
{
    ra__core_t *cs = c->cs;
    if (cs == NULL) {
        return;
    }
    for (size_t i = 0; i < cs->cap; i++) {
        ra__obj_t *o = cs->objs[i];
        if (o != NULL && o->in_store && c->joined && c->store != NULL) {
            // Ours and still in the node's store (never released, or
            // still borrowed): it ends with its owner, as it would had
            // this process died, instead of staying in a store that
            // outlives us.  A reader's pin keeps its bytes until it lets
            // go; the borrowers of the object get RA_EOBJLOST.
            ra_oid_t oid;
            memcpy(oid.b, o->oid, 16);
            (void)ra_objstore_unref(c->store, oid);
            (void)ra_objstore_delete(c->store, oid);
        }
        if (o != NULL) {
            ra__dep_t *d = o->deps;
            while (d != NULL) {
                ra__dep_t *n = d->next;
                free(d);
                d = n;
            }
            ra_msg_unref(&o->msg);
            ra_msg_unref(&o->nest);
            free(o->text);
            free(o->rwait);
            free(o);
        }
    }
    free(cs->objs);
    ra__borrow_fini(cs);
    while (cs->in_head != NULL) {
        ra__inbox_t *e = cs->in_head;
        cs->in_head = e->next;
        task_free(e->task);
        free(e->cmd);
        free(e);
    }
    pthread_mutex_destroy(&cs->inmu);
    ra__actor_table_free(cs);
    ra__wb_free(&cs->tev);
    pthread_mutex_destroy(&cs->mu);
    pthread_cond_destroy(&cs->cv);
    free(cs);
    c->cs = NULL;
}

// ---- for the actor part (actor_core.c) ----

void
ra__core_task_fail(ra_ctx_t *ctx, void *kp, ra__task_t *t, int err,
                   const char *text)
{
    core_t *k = kp;
    uint64_t id = t->id;
    task_fail(k, t, err, text);
    task_done(ctx, k, id);
}

bool
ra__core_too_big(ra_ctx_t *ctx, void *kp, ra__task_t *t, int err)
{
    core_t *k = kp;
    size_t len = 0;
    (void)ra_msg_data(t->wire, &len);
    size_t max = k->c->link != NULL ? ra_link_max_msg(k->c->link) : 0;
    if (err != RA_EFULL || max == 0 || len <= max) {
        return false;
    }
    char why[400];
    snprintf(why, sizeof why, "its message (%zu bytes, with its arguments) "
             "is larger than a link message may be (%zu bytes): pass large "
             "values by reference (ra_put) on a cluster with an object "
             "store, which carries them", len, max);
    ra__core_task_fail(ctx, k, t, RA_EINVAL, why);
    return true;
}

int
ra__core_flush_events(ra__cluster_t *c, int64_t timeout_ms)
{
    core_t *k = c->cs != NULL ? c->cs->core : NULL;
    if (k == NULL || c->rt == NULL) {
        return RA_ECLOSED;
    }
    ra__wbuf_t b = {0};
    ra__wb_u64(&b, k->tick_key);
    ra__wb_u8(&b, TICK_TEV);
    ra__wb_u64(&b, 1);
    ra__wb_u64(&b, 0);
    ra_msg_t *m = NULL, *rep = NULL;
    ra_ctx_t *scope = NULL;
    int rc = ra__wb_msg(&b, RA__T_TICK, &m);
    if (rc == 0 && (rc = ra_scope_new(c->rt, &scope)) == 0) {
        rc = ra_call(scope, c->core, &m, timeout_ms, &rep);
        ra_msg_unref(&rep);
        ra_scope_destroy(&scope);
    }
    ra_msg_unref(&m);
    return rc;
}

void
ra__core_pg_gone(ra_ctx_t *ctx, void *kp, uint64_t pg)
{
    core_t *k = kp;
    for (ra__lease_t *l = k->leases, *next; l != NULL; l = next) {
        next = l->next;
        if (pg != 0 && l->cls != NULL && l->cls->pg == pg &&
            l->inflight.n == 0 && !l->dead) {
            ra_demonitor(ctx, l->mref);
            send_lease_return(ctx, k, l->id, false);
            lease_drop(k, l);
        }
    }
}

void
ra__core_task_free(ra__task_t *t)
{
    task_free(t);
}

void
ra__core_obj_complete(ra__core_t *cs, uint64_t id, int err, uint8_t kind,
                      ra_msg_t *msg, const void *data, size_t len)
{
    obj_complete(cs, id, err, kind, msg, data, len);
}

int
ra__core_lease_req(ra_ctx_t *ctx, void *kp, double cpus, double gpus,
                   const ra_resources_t *x, uint64_t pg, int32_t bundle,
                   int isolation, uint64_t akey)
{
    ra__cls_t shape = {.cpus = cpus, .gpus = gpus, .pg = pg,
                       .bundle = bundle};
    ra__res_extra(x, &shape.x);
    return send_lease_req(ctx, kp, akey, &shape, true, isolation);
}

void
ra__core_lease_return(ra_ctx_t *ctx, void *kp, uint64_t lease, bool kill)
{
    send_lease_return(ctx, kp, lease, kill);
}

static void
actor_send(ra_ctx_t *ctx, core_t *k, ra__cactor_t *a, ra__task_t *t)
{
    ra__actor_call(ctx, k, k->cs, a, t);
}

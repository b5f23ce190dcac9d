// actor_core.c - actors as the core of their owner sees them: creation
// on a leased worker, calls in order, restarts after a death, kill.
//
// The owner keeps everything about an actor it created: the constructor
// wire (to construct it again after a restart), the calls not yet
// answered (to send them again while they have max_task_retries), and
// the lease that holds its resources.  The instance itself is a rayo
// actor in a worker process; a DOWN on it (the worker died, or
// ra_actor_kill) is what starts a restart or ends the actor.
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core_impl.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"

static void send_waiting(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a);

ra__cactor_t *
ra__cactor_at(ra__core_t *cs, uint64_t key)
{
    ra__cactor_t *a = NULL;
    pthread_mutex_lock(&cs->mu);
    if (key != 0 && key < cs->acap) {
        a = cs->actors[key];
    }
    pthread_mutex_unlock(&cs->mu);
    return a;
}

int
ra__actor_new(ra__core_t *cs, ra__cactor_t **out)
{
    ra__cactor_t *a = calloc(1, sizeof *a);
    if (a == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_lock(&cs->mu);
    if (cs->next_actor >= cs->acap) {
        size_t cap = cs->acap != 0 ? cs->acap * 2 : 256;
        ra__cactor_t **n = realloc(cs->actors, cap * sizeof *n);
        if (n == NULL) {
            pthread_mutex_unlock(&cs->mu);
            free(a);
            return RA_ENOMEM;
        }
        memset(n + cs->acap, 0, (cap - cs->acap) * sizeof *n);
        cs->actors = n;
        cs->acap = cap;
    }
    a->key = cs->next_actor++;
    cs->actors[a->key] = a;
    pthread_mutex_unlock(&cs->mu);
    *out = a;
    return 0;
}

// fail_all fails every call waiting on or sent to a dead actor.
static void
fail_all(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a)
{
    ra__task_t *t;
    while ((t = a->inflight.head) != NULL) {
        ra__tq_remove(&a->inflight, t);
        ra__core_task_fail(ctx, cs->core, t, RA_EACTOR, a->death);
    }
    while ((t = a->waiting.head) != NULL) {
        ra__tq_remove(&a->waiting, t);
        ra__core_task_fail(ctx, cs->core, t, RA_EACTOR, a->death);
    }
}

// ---- the core's indexes of its actors ----
//
// DOWNs, lease losses and constructor answers name an actor by monitor
// reference, lease or constructor id: these maps find it without a walk
// over every actor the process made.  Only the core touches them.

static ra__hkey_t
key1(uint64_t x)
{
    return (ra__hkey_t){x, 0};
}

static void
index_put(ra__hmap_t *m, uint64_t x, ra__cactor_t *a)
{
    if (ra__hmap_put(m, key1(x), a) != 0) {
        ra_log_err("core", "out of memory indexing actor %" PRIu64
                   ": its end may go unnoticed", a->key);
    }
}

// watch monitors pid for a (its instance, or its host while it is
// constructed) and stores the reference in *ref.
static void
watch(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a, ra_pid_t pid,
      uint64_t *ref)
{
    if (ra_monitor(ctx, pid, ref) != 0) {
        *ref = 0;
        return;
    }
    index_put(&cs->by_mref, *ref, a);
}

// unwatch ends the monitor *ref, if any.
static void
unwatch(ra_ctx_t *ctx, ra__core_t *cs, uint64_t *ref)
{
    if (*ref != 0) {
        ra_demonitor(ctx, *ref);
        (void)ra__hmap_del(&cs->by_mref, key1(*ref));
        *ref = 0;
    }
}

// set_lease records the lease a holds (0: none).
static void
set_lease(ra__core_t *cs, ra__cactor_t *a, uint64_t lease)
{
    if (a->lease != 0) {
        (void)ra__hmap_del(&cs->by_lease, key1(a->lease));
    }
    a->lease = lease;
    if (lease != 0) {
        index_put(&cs->by_lease, lease, a);
    }
}

static void
unconstruct(ra__core_t *cs, ra__cactor_t *a)
{
    if (ra__hmap_get(&cs->constructing, key1(a->ctor_id)) == a) {
        (void)ra__hmap_del(&cs->constructing, key1(a->ctor_id));
    }
}

static void
name_drop(ra_ctx_t *ctx, ra__cactor_t *a)
{
    if (a->name[0] == '\0' || !a->owned) {
        return;
    }
    ra__wbuf_t b = {0};
    ra_msg_t *rep = NULL;
    ra__wb_u8(&b, RA__GCS_NAME_DEL);
    ra__wb_str(&b, a->ns);
    ra__wb_str(&b, a->name);
    if (ra__gcs_call(ctx, &b, 2000, &rep) == 0) {
        ra_msg_unref(&rep);
    }
}

// report tells the GCS's actor table the state of an actor this process
// owns (why: the reason for DEAD or RESTARTING, else "").  Sent without
// waiting: the table is for `rayo list actors`, not for the actor's work.
static void
report(ra_ctx_t *ctx, const ra__cactor_t *a, const char *why)
{
    ra__cluster_t *c = ra__g;
    if (!a->owned || c == NULL) {
        return;
    }
    ra__actor_rec_t r;
    memset(&r, 0, sizeof r);
    r.state = (uint8_t)a->state;
    snprintf(r.cls, sizeof r.cls, "%s", a->cls);
    snprintf(r.name, sizeof r.name, "%s", a->name);
    snprintf(r.ns, sizeof r.ns, "%s", a->ns);
    r.job = c->job_id;
    r.pid = a->state == RA__ACTOR_PENDING ? RA_PID_NIL : a->pid;
    r.restarts = a->restarts > 0 ? (uint32_t)a->restarts : 0;
    r.detached = a->detached;
    snprintf(r.reason, sizeof r.reason, "%s", why);
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_ACTOR_PUT);
    ra__wb_u64(&b, a->key);
    ra__wb_actor_rec(&b, &r);
    ra_msg_t *m = NULL;
    if (ra__wb_msg(&b, RA__T_GCS, &m) == 0 &&
        ra_send(ctx, ra__gcs_pid(c), &m) != 0) {
        ra_msg_unref(&m);
    }
}

// report_killed tells the GCS's actor table that this process kills the
// instance of a (before the exit signal goes: the instance's worker may
// end with it, and its own word with it).
static void
report_killed(ra_ctx_t *ctx, const ra__cactor_t *a)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        return;
    }
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__GCS_ACTOR_KILLED);
    ra__wb_pid(&b, a->pid);
    ra_msg_t *m = NULL;
    if (ra__wb_msg(&b, RA__T_GCS, &m) == 0 &&
        ra_send(ctx, ra__gcs_pid(c), &m) != 0) {
        ra_msg_unref(&m);
    }
}

// die ends the actor for good.
static void
die(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a, const char *why)
{
    a->state = RA__ACTOR_DEAD;
    report(ctx, a, why);
    snprintf(a->death, sizeof a->death, "actor %.60s (%.60s) died: %.119s",
             a->name[0] != '\0' ? a->name : "(unnamed)", a->cls, why);
    unconstruct(cs, a);
    if (a->lease != 0) {
        ra__core_lease_return(ctx, cs->core, a->lease, false);
        set_lease(cs, a, 0);
    }
    unwatch(ctx, cs, &a->hmref);
    unwatch(ctx, cs, &a->mref);
    if (a->create_obj != 0) {
        ra__core_obj_complete(cs, a->create_obj, RA_EACTOR, RA_VAL_NONE,
                              NULL, a->death, strlen(a->death));
        a->create_obj = 0;
    }
    // The name goes first, so that whoever sees a call fail also finds
    // the name free.
    name_drop(ctx, a);
    fail_all(ctx, cs, a);
}

// place asks the raylet for a worker for the actor.
static void
place(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a)
{
    if (ra__core_lease_req(ctx, cs->core, a->cpus, a->gpus, &a->x, a->pg,
                           a->bundle, a->isolation, a->key) != 0) {
        die(ctx, cs, a, "the raylet could not be asked for a worker");
    }
}

// ctor_for is the constructor message for a's instance under lease.  A
// shared actor's carries the lease after its other fields, so that the
// worker's host can end the instance when the raylet ends the lease (its
// placement group was removed, its owner is gone) without ending the
// process that other actors share.
static ra_msg_t *
ctor_for(const ra__cactor_t *a, uint64_t lease)
{
    if ((a->isolation & ~RA__ISO_DETACHED) == RA_ISOLATION_PROCESS) {
        return ra_msg_ref(a->ctor);
    }
    size_t len = 0;
    const uint8_t *d = ra_msg_data(a->ctor, &len);
    uint8_t *buf = malloc(len + 8);
    ra_msg_t *m = NULL;
    if (buf == NULL) {
        return NULL;
    }
    memcpy(buf, d, len);
    ra__le64_put(buf + len, (int64_t)lease);
    if (ra_msg_new_bytes(&m, RA__T_ACTOR_NEW, buf, len + 8) != 0) {
        m = NULL;
    }
    free(buf);
    return m;
}

void
ra__actor_granted(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key, int status,
                  uint64_t lease, ra_pid_t host, const char *ep)
{
    ra__cactor_t *a = ra__cactor_at(cs, key);
    if (a != NULL && status == 0) {
        snprintf(a->ep, sizeof a->ep, "%s", ep);
    }
    if (a == NULL || a->state == RA__ACTOR_DEAD || a->killed ||
        (status == 0 && a->lease != 0)) {
        // (The last: a second grant, for a request asked again after this
        // node's raylet was restarted, see ra__actors_reask.)
        if (status == 0) {
            ra__core_lease_return(ctx, cs->core, lease, false);
        }
        if (a != NULL && a->killed && a->state != RA__ACTOR_DEAD) {
            die(ctx, cs, a, "killed by ra_actor_kill");
        }
        return;
    }
    if (status != 0) {
        char buf[320];
        char need[160];
        ra__describe_need(need, sizeof need, a->cpus, a->gpus, &a->x);
        if (a->pg != 0) {
            snprintf(buf, sizeof buf, "placement group %" PRIu64 " (bundle "
                     "%d) has no room for %s, or was removed", a->pg,
                     (int)a->bundle, need);
        } else {
            snprintf(buf, sizeof buf, "no node offers %s", need);
        }
        if (a->create_obj != 0) {
            ra__core_obj_complete(cs, a->create_obj, status, RA_VAL_NONE,
                                  NULL, buf, strlen(buf));
            a->create_obj = 0;
        }
        die(ctx, cs, a, buf);
        return;
    }
    set_lease(cs, a, lease);
    a->host = host;
    // The host is watched while it constructs the actor: a worker that
    // dies then would otherwise leave the actor pending for ever.
    watch(ctx, cs, a, host, &a->hmref);
    ra_msg_t *m = ctor_for(a, lease);
    if (m == NULL) {
        die(ctx, cs, a, "out of memory sending its constructor");
        return;
    }
    if (ra_send(ctx, host, &m) != 0) {
        ra_msg_unref(&m);
    }
    index_put(&cs->constructing, a->ctor_id, a);
}

bool
ra__actor_is_ctor_result(ra_ctx_t *ctx, ra__core_t *cs, ra_msg_t *m)
{
    if (cs->constructing.n == 0) {
        return false;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint64_t id = ra__rb_u64(&r);
    (void)ra__rb_u32(&r);
    int status = (int)ra__rb_u32(&r);
    (void)ra__rb_u8(&r);
    size_t len;
    const char *text = ra__rb_bytes(&r, &len);
    if (r.bad) {
        return false;
    }
    ra__cactor_t *a = ra__hmap_get(&cs->constructing, key1(id));
    if (a == NULL) {
        return false;
    }
    unconstruct(cs, a);
    unwatch(ctx, cs, &a->hmref);
    if (status != 0) {
        char buf[512];
        snprintf(buf, sizeof buf, "its constructor failed: %.*s",
                 (int)(len < 400 ? len : 400), text != NULL ? text : "");
        if (a->create_obj != 0) {
            ra__core_obj_complete(cs, a->create_obj, status, RA_VAL_NONE,
                                  NULL, buf, strlen(buf));
            a->create_obj = 0;
        }
        die(ctx, cs, a, buf);
        return true;
    }
    a->pid = ra_sender(ctx);
    a->state = RA__ACTOR_ALIVE;
    report(ctx, a, "");
    watch(ctx, cs, a, a->pid, &a->mref);
    if (a->killed) {
        (void)ra_exit_pid(ctx, a->pid, RA_KILL);
    }
    if (a->name[0] != '\0') {
        ra__wbuf_t b = {0};
        ra_msg_t *rep = NULL;
        ra__wb_u8(&b, RA__GCS_NAME_PUT);
        ra__wb_str(&b, a->ns);
        ra__wb_str(&b, a->name);
        ra__wb_pid(&b, a->pid);
        ra__wb_str(&b, a->cls);
        ra__wb_u8(&b, 1);   // replace: we reserved it at creation
        ra__wb_str(&b, a->ep);   // where other nodes reach it
        ra__wb_u8(&b, a->detached);   // not released with its owner
        if (ra__gcs_call(ctx, &b, 2000, &rep) == 0) {
            ra_msg_unref(&rep);
        }
    }
    if (a->create_obj != 0) {
        uint8_t k[8];
        ra__le64_put(k, (int64_t)a->key);
        ra__core_obj_complete(cs, a->create_obj, 0, RA_VAL_I64, NULL, k, 8);
        a->create_obj = 0;
    }
    send_waiting(ctx, cs, a);
    return true;
}

static void actor_lost(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a);
static void requeue(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a,
                    const char *why);

// How long, and how often, a looked-up actor's name is asked for the
// instance its owner restarts.
enum { RESOLVE_MS = 30000, RESOLVE_EVERY_MS = 100 };
// How soon calls that found the link to their actor's worker full are
// tried again.
enum { BACKLOG_MS = 2 };

void
ra__actor_down(ra_ctx_t *ctx, ra__core_t *cs, uint64_t mref, ra_pid_t pid,
               ra_reason_t why)
{
    (void)pid;
    ra__cactor_t *a = ra__hmap_del(&cs->by_mref, key1(mref));
    bool host = false;
    if (a == NULL || (a->mref != mref && a->hmref != mref)) {
        return;
    }
    pthread_mutex_lock(&cs->mu);
    bool dead = a->state == RA__ACTOR_DEAD;
    pthread_mutex_unlock(&cs->mu);
    if (dead) {
        return;
    }
    host = a->hmref == mref;
    a->mref = 0;
    if (host) {
        a->hmref = 0;
        unconstruct(cs, a);
    }
    if (a->killed) {
        die(ctx, cs, a, "killed by ra_actor_kill");
        return;
    }
    a->down_host = host;
    a->down_why = why;
    if (a->how[0] == '\0' && a->lease != 0) {
        // The raylet usually says how the worker died a moment later
        // (RA__T_LEASE_LOST): wait a little for it, so that error values
        // name the signal.
        a->down_pending = true;
        ra__core_tick_actor(ctx, cs->core, a->key);
        return;
    }
    actor_lost(ctx, cs, a);
}

// ra__actor_lost_tick ends the wait for the raylet's word.
void
ra__actor_lost_tick(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key)
{
    ra__cactor_t *a = ra__cactor_at(cs, key);
    if (a != NULL && a->down_pending) {
        actor_lost(ctx, cs, a);
    }
}

// actor_lost restarts or ends an actor whose instance was lost.
static void
actor_lost(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a)
{
    bool host = a->down_host;
    char rs[80], buf[256];
    ra_reason_str(a->down_why, rs, sizeof rs);
    a->down_pending = false;
    char lost[100];
    snprintf(lost, sizeof lost, "was lost (%s)", rs);
    snprintf(buf, sizeof buf, "its worker process %u on node %u %s",
             (host ? a->host : a->pid).proc,
             (host ? a->host : a->pid).node,
             a->how[0] != '\0' ? a->how : lost);
    a->how[0] = '\0';
    if (!a->owned && a->name[0] != '\0') {
        // A looked-up actor may come back: its owner restarts it (as its
        // max_restarts says) and names the new instance in the GCS.
        // Calls not yet answered wait for it like an owner's do.
        a->state = RA__ACTOR_RESTARTING;
        snprintf(a->death, sizeof a->death, "actor %.60s (%.60s) died: "
                 "%.119s", a->name, a->cls, buf);
        requeue(ctx, cs, a, buf);
        a->resolve_until = ra__mono_ms() + RESOLVE_MS;
        ra__core_tick_resolve(ctx, cs->core, a->key, RESOLVE_EVERY_MS);
        return;
    }
    if (!a->owned ||
        (a->max_restarts >= 0 && a->restarts >= a->max_restarts)) {
        die(ctx, cs, a, buf);
        return;
    }
    a->restarts++;
    a->state = RA__ACTOR_RESTARTING;
    report(ctx, a, buf);
    ra_log_info("core", "actor %" PRIu64 " (%s) restarting (%d): %s",
                a->key, a->cls, a->restarts, buf);
    requeue(ctx, cs, a, buf);
    if (a->lease != 0) {
        ra__core_lease_return(ctx, cs->core, a->lease, false);
        set_lease(cs, a, 0);
    }
    place(ctx, cs, a);
}

// requeue puts the calls an instance was running (while they have
// retries left; the others fail with why) back at the head of the calls
// waiting for the next instance, in their order.
static void
requeue(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a, const char *why)
{
    ra__tq_t again = {0};
    ra__task_t *t;
    while ((t = a->inflight.head) != NULL) {
        ra__tq_remove(&a->inflight, t);
        if (t->retries != 0) {
            if (t->retries > 0) {
                t->retries--;
            }
            t->attempt++;
            ra__tq_push(&again, t);
        } else {
            ra__core_task_fail(ctx, cs->core, t, RA_EACTOR, why);
        }
    }
    while ((t = a->waiting.head) != NULL) {
        ra__tq_remove(&a->waiting, t);
        ra__tq_push(&again, t);
    }
    a->waiting = again;
}

// send_waiting sends an instance that is up the calls that waited for
// it, in their order.
static void
send_waiting(ra_ctx_t *ctx, ra__core_t *cs, ra__cactor_t *a)
{
    ra__task_t *t;
    ra__tq_t w = a->waiting;
    a->waiting = (ra__tq_t){0};
    while ((t = w.head) != NULL) {
        ra__tq_remove(&w, t);
        ra__actor_call(ctx, cs->core, cs, a, t);
    }
}

// ra__actor_backlog_tick sends the calls that waited for room on the link
// to a's worker, in order, until the link is full again.
void
ra__actor_backlog_tick(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key)
{
    ra__cactor_t *a = ra__cactor_at(cs, key);
    if (a == NULL || !a->backlog) {
        return;
    }
    a->backlog = false;
    if (a->state == RA__ACTOR_ALIVE) {
        send_waiting(ctx, cs, a);
    }
}

// ra__actor_resolve_tick asks the GCS where a lost looked-up actor's name
// leads: to a new instance (adopted, and the waiting calls go to it), to
// the old one still (asked again later, until resolve_until), or nowhere
// (the actor is dead for good: its owner let the name go).
void
ra__actor_resolve_tick(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key)
{
    ra__cactor_t *a = ra__cactor_at(cs, key);
    ra__cluster_t *c = ra__g;
    if (a == NULL || a->owned || a->state != RA__ACTOR_RESTARTING ||
        c == NULL) {
        return;
    }
    ra__wbuf_t b = {0};
    ra_msg_t *rep = NULL;
    ra__rbuf_t r;
    ra__wb_u8(&b, RA__GCS_NAME_GET);
    ra__wb_str(&b, a->ns);
    ra__wb_str(&b, a->name);
    int rc = ra__gcs_call_status(ctx, &b, 2000, &rep, &r);
    ra_pid_t pid = RA_PID_NIL;
    char ep[256] = "";
    if (rc == 0) {
        char cls[RA__NAME_MAX + 1];
        pid = ra__rb_pid(&r);
        ra__rb_str(&r, cls, sizeof cls);
        if (!r.bad && r.off < r.len) {
            ra__rb_str(&r, ep, sizeof ep);
        }
        rc = r.bad ? RA_EBADMSG : 0;
        ra_msg_unref(&rep);
    }
    if (rc == RA_ENOENT) {
        die(ctx, cs, a, "its instance was lost, and its name released: it "
                   "ended for good");
        return;
    }
    if (rc != 0 || ra_pid_is_nil(pid) || ra_pid_eq(pid, a->pid) ||
        (ep[0] != '\0' && (pid.node != c->node || pid.proc != c->proc) &&
         ra_link_route(c->link, pid.node, pid.proc, ep) != 0)) {
        if (ra__mono_ms() < a->resolve_until) {
            ra__core_tick_resolve(ctx, cs->core, a->key, RESOLVE_EVERY_MS);
        } else {
            die(ctx, cs, a, "its instance was lost, and no other took its "
                       "name within 30 s");
        }
        return;
    }
    char ps[RA_PID_STRLEN];
    ra_log_info("core", "looked-up actor %s (%s) is back at %s", a->name,
                a->cls, ra_pid_str(pid, ps));
    a->pid = pid;
    a->restarts++;
    a->state = RA__ACTOR_ALIVE;
    watch(ctx, cs, a, a->pid, &a->mref);
    send_waiting(ctx, cs, a);
}

// ra__actor_lease_lost records how the worker under an actor's lease
// died; the DOWN that follows uses it in the error values.
void
ra__actor_lease_lost(ra_ctx_t *ctx, ra__core_t *cs, uint64_t lease,
                     const char *how)
{
    ra__cactor_t *found = ra__hmap_get(&cs->by_lease, key1(lease));
    pthread_mutex_lock(&cs->mu);
    if (found != NULL &&
        (found->lease != lease || found->state == RA__ACTOR_DEAD)) {
        found = NULL;
    }
    if (found != NULL) {
        snprintf(found->how, sizeof found->how, "%s", how);
    }
    pthread_mutex_unlock(&cs->mu);
    if (found != NULL && found->down_pending) {
        actor_lost(ctx, cs, found);
    }
}

void
ra__actor_call(ra_ctx_t *ctx, void *k, ra__core_t *cs, ra__cactor_t *a,
               ra__task_t *t)
{
    if (a == NULL) {
        ra__core_task_fail(ctx, k, t, RA_ENOENT, "no such actor handle");
        return;
    }
    switch (a->state) {
    case RA__ACTOR_ALIVE: {
        if (a->backlog) {
            ra__tq_push(&a->waiting, t);   // behind the calls that wait
            break;
        }
        if (ra__task_wire_attempt(t) != 0) {
            ra__core_task_fail(ctx, k, t, RA_ENOMEM, "out of memory");
            break;
        }
        ra_msg_t *m = ra_msg_ref(t->wire);
        int rc = ra_send(ctx, a->pid, &m);
        if (rc != 0) {
            ra_msg_unref(&m);
            if (ra__core_too_big(ctx, k, t, rc)) {
                break;
            }
            if (rc == RA_EFULL) {
                // The link to its worker holds all it may (its peer is
                // slow to acknowledge): this call and the ones after it
                // wait here, in order, and go when there is room.
                ra__tq_push(&a->waiting, t);
                a->backlog = true;
                ra__core_tick_backlog(ctx, k, a->key, BACKLOG_MS);
                break;
            }
            // The DOWN that follows fails or retries it.
            char ps[RA_PID_STRLEN];
            ra_log_debug("core", "call to actor %s: %s",
                         ra_pid_str(a->pid, ps), ra_err_name(rc));
        }
        ra__core_tev_running(cs, t, a->pid);
        ra__tq_push(&a->inflight, t);
        break;
    }
    case RA__ACTOR_PENDING:
    case RA__ACTOR_RESTARTING:
        ra__tq_push(&a->waiting, t);
        break;
    default:
        ra__core_task_fail(ctx, k, t, RA_EACTOR, a->death);
        break;
    }
    (void)cs;
}

void
ra__actor_stop_call(ra_ctx_t *ctx, ra__core_t *cs, ra__task_t *t, int err,
                    const char *text)
{
    ra__cactor_t *a = ra__cactor_at(cs, t->actor);
    if (a != NULL) {
        if (ra__tq_has(&a->waiting, t)) {
            ra__tq_remove(&a->waiting, t);
        } else if (ra__tq_has(&a->inflight, t)) {
            ra__tq_remove(&a->inflight, t);
        }
    }
    ra__core_task_fail(ctx, cs->core, t, err, text);
}

void
ra__core_cmd(ra_ctx_t *ctx, void *k, ra__core_t *cs, ra__cmd_t *cmd)
{
    ra__cactor_t *a = cmd->op != RA__CMD_CANCEL &&
                              cmd->op != RA__CMD_PG_GONE
                          ? ra__cactor_at(cs, cmd->id)
                          : NULL;
    switch (cmd->op) {
    case RA__CMD_ACTOR_NEW:
        if (a != NULL) {
            a->state = RA__ACTOR_PENDING;
            report(ctx, a, "");
            place(ctx, cs, a);
        }
        break;
    case RA__CMD_ACTOR_ADOPT:
        if (a != NULL) {
            char ps[RA_PID_STRLEN];
            ra_log_debug("core", "adopt actor %" PRIu64 " at %s", a->key,
                         ra_pid_str(a->pid, ps));
            a->state = RA__ACTOR_ALIVE;
            watch(ctx, cs, a, a->pid, &a->mref);
            ra__task_t *t;
            while ((t = a->waiting.head) != NULL) {
                ra__tq_remove(&a->waiting, t);
                ra__actor_call(ctx, k, cs, a, t);
            }
        }
        break;
    case RA__CMD_ACTOR_KILL:
        if (a != NULL && a->state != RA__ACTOR_DEAD) {
            a->killed = true;
            if (a->state == RA__ACTOR_ALIVE) {
                report_killed(ctx, a);
                (void)ra_exit_pid(ctx, a->pid, RA_KILL);
            } else if (a->state == RA__ACTOR_RESTARTING &&
                       a->hmref == 0) {
                die(ctx, cs, a, "killed by ra_actor_kill");
            }
        }
        break;
    case RA__CMD_CANCEL:
        ra__core_stop_task(ctx, k, cmd->id, RA_ECANCELED,
                           "the task was cancelled", cmd->force);
        break;
    case RA__CMD_PG_GONE:
        ra__core_pg_gone(ctx, k, cmd->id);
        break;
    default:
        break;
    }
    free(cmd);
}

// ra__actors_free drops the calls still queued when the core ends.
void
ra__actors_reask(ra_ctx_t *ctx, ra__core_t *cs)
{
    pthread_mutex_lock(&cs->mu);
    size_t n = cs->next_actor;
    pthread_mutex_unlock(&cs->mu);
    for (size_t key = 1; key < n; key++) {
        ra__cactor_t *a = ra__cactor_at(cs, key);
        if (a != NULL && a->owned && !a->killed && a->lease == 0 &&
            !a->down_pending && (a->state == RA__ACTOR_PENDING ||
                                 a->state == RA__ACTOR_RESTARTING)) {
            place(ctx, cs, a);
        }
    }
}

void
ra__actors_free(ra__core_t *cs)
{
    for (size_t i = 1; i < cs->acap; i++) {
        ra__cactor_t *a = cs->actors[i];
        if (a == NULL) {
            continue;
        }
        ra__task_t *t;
        while ((t = a->order.head) != NULL) {
            ra__tq_remove(&a->order, t);
            ra__core_task_free(t);
        }
        while ((t = a->inflight.head) != NULL) {
            ra__tq_remove(&a->inflight, t);
            ra__core_task_free(t);
        }
        while ((t = a->waiting.head) != NULL) {
            ra__tq_remove(&a->waiting, t);
            ra__core_task_free(t);
        }
    }
    ra__hmap_fini(&cs->constructing);
    ra__hmap_fini(&cs->by_mref);
    ra__hmap_fini(&cs->by_lease);
}

void
ra__actor_table_free(ra__core_t *cs)
{
    for (size_t i = 1; i < cs->acap; i++) {
        ra__cactor_t *a = cs->actors[i];
        if (a != NULL) {
            ra_msg_unref(&a->ctor);
            free(a);
        }
    }
    free(cs->actors);
    cs->actors = NULL;
    ra__hmap_fini(&cs->constructing);
    ra__hmap_fini(&cs->by_mref);
    ra__hmap_fini(&cs->by_lease);
}

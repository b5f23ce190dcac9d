// call.c - synchronous request/reply (gen_server:call) with timeouts.
//
// A caller waits on one call at a time, so the waiting state lives in the
// caller's own slot: no table, no allocation.  A call reference is the
// caller's slot id and a per-slot sequence number that is never reset, so a
// reply to an abandoned call (or to a previous incarnation of the slot)
// never matches and is dropped.  The caller monitors the callee with a
// special monitor whose firing completes the call with RA_ENOPROC.
#include <time.h>

#include "actor_impl.h"

void ra__scope_wait(ra__scope_t *s, const struct timespec *dl,
                    bool want_mail, bool (*pred)(void *), void *arg);

void
ra__call_complete(ra_runtime_t *rt, ra__actor_t *a, uint32_t seq, int err,
                  ra_msg_t **reply)
{
    uint64_t expect = seq;
    if (seq == 0 ||
        !atomic_compare_exchange_strong(&a->call_wait, &expect,
                                        expect | RA__CALL_CLAIMED)) {
        if (reply != NULL) {
            ra_msg_unref(reply); // late or stray: discarded
        }
        return;
    }
    a->call_err = err;
    a->call_reply = reply != NULL ? *reply : NULL;
    if (reply != NULL) {
        *reply = NULL;
    }
    int wk = atomic_load(&a->call_worker);
    ra__scope_t *s = a->scope;
    atomic_store_explicit(&a->call_wait, 0, memory_order_release);
    if (s != NULL) {
        ra__scope_wake(s);
    } else if (wk >= 0) {
        ra__worker_t *me = ra__tls_worker;
        if (me == NULL || me->rt != rt || me->index != wk) {
            ra__worker_wake(&rt->workers[wk]);
        }
    }
}

void
ra__call_fail(ra_runtime_t *rt, uint64_t cref, int err)
{
    ra__actor_t *a = ra__actor_get_any(rt, (uint32_t)(cref >> 32));
    if (a != NULL) {
        ra__call_complete(rt, a, (uint32_t)cref, err, NULL);
        ra__actor_put(rt, a);
    }
}

int
ra_reply_to(ra_runtime_t *rt, uint64_t cref, ra_msg_t **reply)
{
    if (rt == NULL || reply == NULL || *reply == NULL || cref == 0) {
        return RA_EINVAL;
    }
    if (cref & RA__CREF_REMOTE) {
        const ra__dist_ops_t *ops = ra__dist_enter(rt);
        if (ops == NULL) {
            ra_msg_unref(reply); // the link is gone: so is the caller
            return 0;
        }
        int rc = ops->reply(rt->dist, cref, reply);
        ra__dist_leave(rt);
        return rc;
    }
    ra__actor_t *a = ra__actor_get_any(rt, (uint32_t)(cref >> 32));
    if (a == NULL) {
        ra_msg_unref(reply);
        return 0;
    }
    ra__call_complete(rt, a, (uint32_t)cref, 0, reply);
    ra__actor_put(rt, a);
    return 0;
}

int
ra_reply(ra_ctx_t *ctx, ra_msg_t **reply)
{
    if (ctx == NULL || ctx->cref == 0) {
        return RA_EINVAL;
    }
    int rc = ra_reply_to(ctx->rt, ctx->cref, reply);
    if (rc == 0) {
        ctx->cref = 0; // one reply per call
    }
    return rc;
}

uint64_t
ra_call_ref(const ra_ctx_t *ctx)
{
    return ctx->cref;
}

static bool
call_done(void *arg)
{
    ra__actor_t *a = arg;
    return atomic_load(&a->call_wait) == 0;
}

// Starts a wait of actor a (on worker w, or NULL) and returns its sequence
// number; a completion must name it to count.
static uint32_t
begin_wait(ra__actor_t *a, ra__worker_t *w)
{
    uint32_t seq = ++a->call_seq;
    if (seq == 0) {
        seq = ++a->call_seq; // 0 means "not waiting"
    }
    a->call_reply = NULL;
    a->call_err = 0;
    atomic_store(&a->call_worker, w != NULL ? w->index : -1);
    atomic_store(&a->call_wait, seq);
    return seq;
}

// Adds the caller's call monitor to the callee.  RA_ENOPROC if the callee
// is already exiting (its monitors were already sent).
static int
watch_callee(ra__actor_t *t, uint32_t seq, ra_pid_t self)
{
    ra__lock(t);
    int rc = t->exiting ? RA_ENOPROC : ra__monvec_add(&t->monitors, seq,
                                                      self, true);
    ra__unlock(t);
    return rc;
}

static void
unwatch_callee(ra__actor_t *t, uint32_t seq, ra_pid_t self)
{
    ra__lock(t);
    ra__monvec_del(&t->monitors, seq, &self);
    ra__unlock(t);
}

// Takes the call back from a waiting state with err, unless a completion
// got there first (then its result stands).  Returns whether we took it.
static bool
abandon(ra__actor_t *a, uint32_t seq)
{
    uint64_t expect = seq;
    if (atomic_compare_exchange_strong(&a->call_wait, &expect, 0)) {
        return true;
    }
    while (atomic_load_explicit(&a->call_wait, memory_order_acquire) != 0) {
        // A reply is being filled in right now.
    }
    return false;
}

// Whether actor t's handler waits further down worker w's stack.
static bool
below_us(const ra__worker_t *w, const ra__actor_t *t)
{
    for (unsigned i = 0; i < w->depth; i++) {
        if (w->frames[i] == t) {
            return true;
        }
    }
    return false;
}

// Runs callee t nested on worker w, on top of its caller a (ra_call hands
// the core straight to its callee); t's turn ends once a has its answer
// (run_turn looks at w->frames).
static void
help_callee(ra__worker_t *w, ra__actor_t *a, ra__actor_t *t)
{
    w->next = NULL;
    w->frames[w->depth++] = a;
    ra__run_actor(w, t);
    w->depth--;
}

// Sleeps until the deadline dlp (NULL: none), at most slice_ms, or until a
// completion wakes the worker.
static void
nap_until(ra__worker_t *w, const struct timespec *dlp, int64_t slice_ms)
{
    struct timespec slice;
    ra__deadline(&slice, slice_ms);
    if (dlp != NULL && (dlp->tv_sec < slice.tv_sec ||
                        (dlp->tv_sec == slice.tv_sec &&
                         dlp->tv_nsec < slice.tv_nsec))) {
        slice = *dlp;
    }
    ra__worker_nap(w, &slice);
}

// Waits until the call seq of a completes (false) or timeout_ms passes and
// we take the call back (true).  On a scheduler thread, t (may be NULL) is
// run first when it sits in this worker's next slot; then the worker hands
// its queue to other threads (a spare one if need be) and sleeps.  Only
// when no spare thread can be had does it run other actors meanwhile.
static bool
wait_call(ra__actor_t *a, ra__worker_t *w, ra__actor_t *t, uint32_t seq,
          int64_t timeout_ms)
{
    struct timespec dl;
    bool have_dl = false;
    bool blocked = false;  // ra__sched_block_enter said yes
    bool nesting = false;  // it said no: run others here
    bool timed_out = false;
    while (atomic_load_explicit(&a->call_wait, memory_order_acquire) != 0) {
        // The timeout counts from when the caller starts to wait.
        if (timeout_ms >= 0 && !have_dl) {
            ra__deadline(&dl, timeout_ms);
            have_dl = true;
        }
        if (have_dl && ra__past(&dl)) {
            timed_out = abandon(a, seq);
            break;
        }
        const struct timespec *dlp = have_dl ? &dl : NULL;
        if (a->scope != NULL) {
            ra__scope_wait(a->scope, dlp, false, call_done, a);
            continue;
        }
        if (w == NULL) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (t != NULL && w->next == t && w->depth < RA__MAX_NEST) {
            help_callee(w, a, t);
            continue;
        }
        if (!blocked && !nesting) {
            blocked = ra__sched_block_enter(w);
            nesting = !blocked;
        }
        bool ran = false;
        if (nesting && w->depth < RA__MAX_NEST) {
            w->frames[w->depth++] = a;
            ran = ra__run_one(w);
            w->depth--;
        }
        if (!ran && atomic_load(&a->call_wait) != 0) {
            // Blocked, a completion wakes us (the slice is a safety net).
            // Nesting, nap in short slices: a napping worker is not on the
            // idle list, so work injected meanwhile is found by polling.
            nap_until(w, dlp, blocked ? 100 : 1);
        }
    }
    if (blocked) {
        ra__sched_block_leave(w);
    }
    return timed_out;
}

// Waits for call seq (see wait_call) and hands back its outcome: 0 with
// the reply in *reply, the error it completed with, or RA_ETIMEOUT.
static int
await_reply(ra__actor_t *a, ra__worker_t *w, ra__actor_t *t, uint32_t seq,
            int64_t timeout_ms, ra_msg_t **reply)
{
    if (wait_call(a, w, t, seq, timeout_ms)) {
        return RA_ETIMEOUT;
    }
    int rc = a->call_err;
    if (rc == 0) {
        *reply = a->call_reply;
    }
    a->call_reply = NULL;
    return rc;
}

// A call to an actor of another process: the link layer monitors the
// callee for us and completes the call on a reply, a DOWN or a lost peer.
static int
call_remote(ra_ctx_t *ctx, ra__worker_t *w, ra_pid_t to, ra_msg_t **req,
            int64_t timeout_ms, ra_msg_t **reply)
{
    ra_runtime_t *rt = ctx->rt;
    ra__actor_t *a = ctx->a;
    const ra__dist_ops_t *ops = ra__dist_enter(rt);
    if (ops == NULL) {
        return RA_ENOCONN;
    }
    uint32_t seq = begin_wait(a, w);
    uint64_t cref = ((uint64_t)a->id << 32) | seq;
    int rc = ops->call(rt->dist, ctx->self, to, req, cref);
    ra__dist_leave(rt);
    if (rc != 0) {
        atomic_store(&a->call_wait, 0);
        return rc;
    }
    rc = await_reply(a, w, NULL, seq, timeout_ms, reply);
    if ((ops = ra__dist_enter(rt)) != NULL) {
        ops->call_end(rt->dist, ctx->self, to, cref, rc == 0);
        ra__dist_leave(rt);
    }
    return rc;
}

int
ra_call(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t **req, int64_t timeout_ms,
        ra_msg_t **reply)
{
    if (ctx == NULL || req == NULL || *req == NULL || reply == NULL) {
        return RA_EINVAL;
    }
    if (ra_pid_eq(to, ctx->self)) {
        return RA_EDEADLK;
    }
    ra_runtime_t *rt = ctx->rt;
    ra__actor_t *a = ctx->a;
    if (RA__FLAGS(a) & RA__F_DONE) {
        return RA_EEXIT; // a scope that an exit signal ended
    }
    ra__worker_t *w = ra__tls_worker;
    if (w != NULL && w->rt != rt) {
        w = NULL;
    }
    if (ra__is_remote(rt, to)) {
        return call_remote(ctx, w, to, req, timeout_ms, reply);
    }
    ra__actor_t *t = ra__actor_get(rt, to);
    if (t == NULL) {
        return RA_ENOPROC;
    }
    if (w != NULL && below_us(w, t)) {
        // The callee's handler is further down this very thread's stack:
        // it can only go on after we return, so waiting could never
        // succeed.
        ra__actor_put(rt, t);
        return RA_EDEADLK;
    }
    uint32_t seq = begin_wait(a, w);

    // On a scheduler thread the callee usually lands in this worker's
    // "next" slot: run it right here, before paying for a monitor or a
    // clock read.  The monitor is only needed if we end up waiting.
    bool watching = w == NULL;
    int rc = watching ? watch_callee(t, seq, ctx->self) : 0;
    if (rc == 0) {
        uint64_t cref = ((uint64_t)a->id << 32) | seq;
        rc = ra__deliver_to(rt, t, req, ctx->self, cref, false);
        if (rc != 0 && watching) {
            unwatch_callee(t, seq, ctx->self);
            watching = false;
        }
    }
    if (rc != 0) {
        atomic_store(&a->call_wait, 0);
        ra__actor_put(rt, t);
        return rc; // the request was not sent: the caller keeps it
    }
    if (w != NULL && w->next == t && w->depth < RA__MAX_NEST) {
        help_callee(w, a, t); // hand the core straight to the callee
    }
    if (!watching &&
        atomic_load_explicit(&a->call_wait, memory_order_acquire) != 0) {
        if (watch_callee(t, seq, ctx->self) == 0) {
            watching = true;
        } else if (abandon(a, seq)) {
            a->call_err = RA_ENOPROC; // it died before we could watch it
        }
    }
    rc = await_reply(a, w, t, seq, timeout_ms, reply);
    if (watching) {
        unwatch_callee(t, seq, ctx->self);
    }
    ra__actor_put(rt, t);
    return rc;
}

int
ra__await_exit(ra_ctx_t *ctx, ra_pid_t pid, int64_t timeout_ms)
{
    ra_runtime_t *rt = ctx->rt;
    ra__actor_t *a = ctx->a;
    ra__worker_t *w = ra__tls_worker;
    if (w != NULL && w->rt != rt) {
        w = NULL;
    }
    ra__actor_t *t = ra__actor_get(rt, pid);
    if (t == NULL) {
        return 0; // already gone
    }
    uint32_t seq = begin_wait(a, w);
    // The call monitor completes the "call" when t ends; an exiting actor
    // has already run terminate and sent its monitors: it has ended.
    if (watch_callee(t, seq, ctx->self) != 0) {
        atomic_store(&a->call_wait, 0);
        ra__actor_put(rt, t);
        return 0;
    }
    bool timed_out = wait_call(a, w, NULL, seq, timeout_ms);
    if (!timed_out && a->call_reply != NULL) {
        ra_msg_unref(&a->call_reply); // a stray reply cannot match; be safe
    }
    unwatch_callee(t, seq, ctx->self);
    ra__actor_put(rt, t);
    return timed_out ? RA_ETIMEOUT : 0;
}

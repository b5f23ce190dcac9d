// actor.c - spawn, send, exits, links, monitors and scopes.
#include <stdlib.h>
#include <string.h>

#include "actor_impl.h"
#include "ra_log.h"

void ra__scope_end(ra_runtime_t *rt, ra__scope_t *s);

// ---- small helpers ----

void
ra__lock(ra__actor_t *a)
{
    while (atomic_flag_test_and_set_explicit(&a->lock,
                                             memory_order_acquire)) {
        sched_yield();
    }
}

void
ra__unlock(ra__actor_t *a)
{
    atomic_flag_clear_explicit(&a->lock, memory_order_release);
}

static uint32_t
pid_hash(ra_pid_t p)
{
    uint64_t h = ((uint64_t)p.id << 32 | p.gen) ^
                 ((uint64_t)p.node << 20 | p.proc);
    h *= 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(h >> 32);
}

// Finds pid's slot in hash mode, or the slot to insert it in (the first
// tombstone seen, else the empty slot that ended the probe).
static uint32_t
pidset_probe(const ra__pidvec_t *v, ra_pid_t pid, bool *found)
{
    uint32_t mask = v->cap - 1, i = pid_hash(pid) & mask;
    uint32_t tomb = UINT32_MAX;
    for (;;) {
        ra_pid_t *e = &v->v[i];
        if (e->id == 0) {
            if (e->gen == 0) {
                *found = false;
                return tomb != UINT32_MAX ? tomb : i;
            }
            if (tomb == UINT32_MAX) {
                tomb = i;
            }
        } else if (ra_pid_eq(*e, pid)) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int
pidset_rehash(ra__pidvec_t *v, uint32_t cap)
{
    ra_pid_t *nv = calloc(cap, sizeof(*nv));
    if (nv == NULL) {
        return RA_ENOMEM;
    }
    ra__pidvec_t old = *v;
    v->v = nv;
    v->cap = cap;
    v->n = 0;
    v->tombs = 0;
    for (uint32_t i = 0; i < old.cap; i++) {
        if (old.v[i].id != 0) {
            bool found;
            v->v[pidset_probe(v, old.v[i], &found)] = old.v[i];
            v->n++;
        }
    }
    free(old.v);
    return 0;
}

static int
pidvec_add(ra__pidvec_t *v, ra_pid_t pid)
{
    if (v->cap <= RA__PIDSET_DENSE) {
        for (uint32_t i = 0; i < v->n; i++) {
            if (ra_pid_eq(v->v[i], pid)) {
                return 0;
            }
        }
        if (v->n < v->cap) {
            v->v[v->n++] = pid;
            return 0;
        }
        if (v->cap < RA__PIDSET_DENSE) {
            uint32_t cap = v->cap ? v->cap * 2 : 2;
            ra_pid_t *nv = realloc(v->v, cap * sizeof(*nv));
            if (nv == NULL) {
                return RA_ENOMEM;
            }
            memset(nv + v->cap, 0, (cap - v->cap) * sizeof(*nv));
            v->v = nv;
            v->cap = cap;
            v->v[v->n++] = pid;
            return 0;
        }
        int rc = pidset_rehash(v, 4 * RA__PIDSET_DENSE);
        if (rc != 0) {
            return rc;
        }
    }
    if ((v->n + v->tombs + 1) * 4 > v->cap * 3) {
        int rc = pidset_rehash(v, v->n * 2 > v->cap ? v->cap * 2 : v->cap);
        if (rc != 0) {
            return rc;
        }
    }
    bool found;
    uint32_t i = pidset_probe(v, pid, &found);
    if (!found) {
        if (v->v[i].gen != 0) {
            v->tombs--; // reusing a tombstone
        }
        v->v[i] = pid;
        v->n++;
    }
    return 0;
}

static bool
pidvec_del(ra__pidvec_t *v, ra_pid_t pid)
{
    if (v->cap <= RA__PIDSET_DENSE) {
        for (uint32_t i = 0; i < v->n; i++) {
            if (ra_pid_eq(v->v[i], pid)) {
                v->v[i] = v->v[--v->n];
                v->v[v->n] = RA_PID_NIL;
                return true;
            }
        }
        return false;
    }
    bool found;
    uint32_t i = pidset_probe(v, pid, &found);
    if (!found) {
        return false;
    }
    v->v[i] = (ra_pid_t){0, 0, 0, 1}; // tombstone
    v->n--;
    v->tombs++;
    return true;
}

// ---- monitor vectors ----
//
// Past RA__MONVEC_DENSE entries the block of v is
//     ra__mon_t entries[cap]; uint32_t slots[2 * cap]; uint32_t tombs;
// slots is an open-addressing index by ref (linear probing): 0 is empty,
// MV_TOMB deleted, else the entry's position + 1.  The entries stay
// dense (a removal moves the last one into the hole and fixes its slot),
// so loops over v[0..n) work in both forms.  At most n + tombs of the
// 2 x cap slots are used, and the index is rebuilt when tombs passes
// cap / 2, so a probe always ends at an empty slot.

#define MV_TOMB UINT32_MAX

static inline bool
mv_indexed(const ra__monvec_t *v)
{
    return v->cap > RA__MONVEC_DENSE;
}

static inline uint32_t *
mv_slots(const ra__monvec_t *v)
{
    return (uint32_t *)(void *)(v->v + v->cap);
}

static inline uint32_t *
mv_tombs(const ra__monvec_t *v)
{
    return mv_slots(v) + 2 * (size_t)v->cap;
}

static inline uint32_t
mv_home(const ra__monvec_t *v, uint64_t ref)
{
    uint64_t h = ref * 0x9e3779b97f4a7c15ULL;
    return (uint32_t)(h >> 32) & (2 * v->cap - 1);
}

static void
mv_put(ra__monvec_t *v, uint32_t pos)
{
    uint32_t *s = mv_slots(v), mask = 2 * v->cap - 1;
    uint32_t i = mv_home(v, v->v[pos].ref);
    while (s[i] != 0 && s[i] != MV_TOMB) {
        i = (i + 1) & mask;
    }
    if (s[i] == MV_TOMB) {
        (*mv_tombs(v))--;
    }
    s[i] = pos + 1;
}

static void
mv_rebuild(ra__monvec_t *v)
{
    memset(mv_slots(v), 0, 2 * (size_t)v->cap * sizeof(uint32_t));
    *mv_tombs(v) = 0;
    for (uint32_t i = 0; i < v->n; i++) {
        mv_put(v, i);
    }
}

// mv_slot_of returns the slot of the entry at pos (it is indexed).
static uint32_t
mv_slot_of(const ra__monvec_t *v, uint32_t pos)
{
    const uint32_t *s = mv_slots(v);
    uint32_t mask = 2 * v->cap - 1, i = mv_home(v, v->v[pos].ref);
    while (s[i] != pos + 1) {
        i = (i + 1) & mask;
    }
    return i;
}

// mv_find returns the position of the entry with ref (and *pid, when pid
// is not NULL), or UINT32_MAX.
static uint32_t
mv_find(const ra__monvec_t *v, uint64_t ref, const ra_pid_t *pid)
{
    if (!mv_indexed(v)) {
        for (uint32_t i = 0; i < v->n; i++) {
            if (v->v[i].ref == ref &&
                (pid == NULL || ra_pid_eq(v->v[i].pid, *pid))) {
                return i;
            }
        }
        return UINT32_MAX;
    }
    const uint32_t *s = mv_slots(v);
    uint32_t mask = 2 * v->cap - 1;
    for (uint32_t i = mv_home(v, ref); s[i] != 0; i = (i + 1) & mask) {
        if (s[i] == MV_TOMB) {
            continue;
        }
        const ra__mon_t *m = &v->v[s[i] - 1];
        if (m->ref == ref && (pid == NULL || ra_pid_eq(m->pid, *pid))) {
            return s[i] - 1;
        }
    }
    return UINT32_MAX;
}

static void
mv_remove_at(ra__monvec_t *v, uint32_t pos)
{
    uint32_t last = v->n - 1;
    if (mv_indexed(v)) {
        uint32_t *s = mv_slots(v);
        s[mv_slot_of(v, pos)] = MV_TOMB;
        (*mv_tombs(v))++;
        if (pos != last) {
            s[mv_slot_of(v, last)] = pos + 1;
        }
    }
    v->v[pos] = v->v[last];
    v->n--;
    if (mv_indexed(v) && *mv_tombs(v) > v->cap / 2) {
        mv_rebuild(v);
    }
}

int
ra__monvec_add(ra__monvec_t *v, uint64_t ref, ra_pid_t pid, bool call)
{
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 2;
        if (cap > UINT32_MAX / 4) {
            return RA_ENOMEM;
        }
        if (cap <= RA__MONVEC_DENSE) {
            ra__mon_t *nv = realloc(v->v, cap * sizeof(*nv));
            if (nv == NULL) {
                return RA_ENOMEM;
            }
            v->v = nv;
            v->cap = cap;
        } else {
            size_t bytes = (size_t)cap * sizeof(ra__mon_t) +
                           (2 * (size_t)cap + 1) * sizeof(uint32_t);
            ra__mon_t *nv = malloc(bytes);
            if (nv == NULL) {
                return RA_ENOMEM;
            }
            if (v->n > 0) {
                memcpy(nv, v->v, v->n * sizeof(*nv));
            }
            free(v->v);
            v->v = nv;
            v->cap = cap;
            mv_rebuild(v);
        }
    }
    v->v[v->n] = (ra__mon_t){ref, pid, call};
    if (mv_indexed(v)) {
        mv_put(v, v->n);
    }
    v->n++;
    return 0;
}

bool
ra__monvec_del(ra__monvec_t *v, uint64_t ref, ra_pid_t *pid)
{
    uint32_t i = mv_find(v, ref, pid);
    if (i == UINT32_MAX) {
        return false;
    }
    if (pid != NULL) {
        *pid = v->v[i].pid;
    }
    mv_remove_at(v, i);
    return true;
}

bool
ra__monvec_take(ra__monvec_t *v, uint64_t ref, ra_pid_t *pid)
{
    uint32_t i = mv_find(v, ref, NULL);
    if (i == UINT32_MAX) {
        return false;
    }
    *pid = v->v[i].pid;
    mv_remove_at(v, i);
    return true;
}

void
ra__monvec_pop(ra__monvec_t *v)
{
    if (v->n > 0) {
        mv_remove_at(v, v->n - 1);
    }
}

void
ra__monvec_clear(ra__monvec_t *v)
{
    v->n = 0;
    if (mv_indexed(v)) {
        mv_rebuild(v);
    }
}

void
ra__scope_wake(ra__scope_t *s)
{
    pthread_mutex_lock(&s->mtx);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mtx);
}

// ---- delivery ----

int
ra__deliver_to(ra_runtime_t *rt, ra__actor_t *a, ra_msg_t **msg,
               ra_pid_t from, uint64_t cref, bool system)
{
    ra__env_t *e = ra__env_claim(*msg);
    if (e == NULL) {
        return RA_ENOMEM;
    }
    ra__env_set(e, from, cref);
    ra__worker_t *w = ra__tls_worker;
    int rc = ra__mailbox_push_env(&a->mb, e, system,
                                  w == NULL && !ra__tls_noblock);
    if (rc != 0) {
        return rc;
    }
    if (w != NULL && w->rt == rt) {
        // Remember who feeds this actor (see ra__run_actor's migration).
        if (atomic_load_explicit(&a->last_w, memory_order_relaxed) ==
            w->index) {
            unsigned k = atomic_load_explicit(&a->last_w_streak,
                                              memory_order_relaxed);
            if (k < RA__AFFINITY) {
                atomic_store_explicit(&a->last_w_streak, k + 1,
                                      memory_order_relaxed);
            }
        } else {
            atomic_store_explicit(&a->last_w, w->index,
                                  memory_order_relaxed);
            atomic_store_explicit(&a->last_w_streak, 0,
                                  memory_order_relaxed);
        }
    }
    *msg = NULL;
    if (atomic_load_explicit(&a->sched, memory_order_seq_cst) == 0 &&
        atomic_exchange_explicit(&a->sched, 1, memory_order_seq_cst) == 0) {
        if (a->scope != NULL) {
            // A scope's thread is waiting in ra_receive or ra_call: the
            // sched flag was cleared under the scope mutex, so this wake
            // cannot be lost.
            ra__scope_wake(a->scope);
        } else {
            ra__schedule(rt, a);
        }
    }
    return 0;
}

void
ra__send_cache_drop(ra__worker_t *w)
{
    ra__actor_t *a = w->send_cache;
    if (a != NULL) {
        w->send_cache = NULL;
        ra__actor_put(w->rt, a);
    }
}

_Thread_local bool ra__tls_noblock;

// Hands a delivery to the link layer; RA_ENOCONN when none runs.
static int
deliver_remote(ra_runtime_t *rt, ra_pid_t to, ra_msg_t **msg, ra_pid_t from,
               uint64_t cref, bool system)
{
    const ra__dist_ops_t *ops = ra__dist_enter(rt);
    if (ops == NULL) {
        return RA_ENOCONN;
    }
    int rc = ops->deliver(rt->dist, to, msg, from, cref, system);
    ra__dist_leave(rt);
    return rc;
}

int
ra__deliver(ra_runtime_t *rt, ra_pid_t to, ra_msg_t **msg, ra_pid_t from,
            uint64_t cref, bool system)
{
    if (msg == NULL || *msg == NULL) {
        return RA_EINVAL;
    }
    ra__worker_t *w = ra__tls_worker;
    if (ra__is_remote(rt, to)) {
        return deliver_remote(rt, to, msg, from, cref, system);
    }
    if (w != NULL && w->rt == rt) {
        ra__actor_t *a = w->send_cache;
        if (a != NULL && ra_pid_eq(w->send_cache_pid, to)) {
            // Our reference keeps the slot from being recycled, so only
            // liveness needs checking.
            uint64_t word = atomic_load_explicit(&a->word,
                                                 memory_order_acquire);
            if ((word & RA__DEAD) == 0) {
                return ra__deliver_to(rt, a, msg, from, cref, system);
            }
            ra__send_cache_drop(w);
            return RA_ENOPROC;
        }
        a = ra__actor_get(rt, to);
        if (a == NULL) {
            return RA_ENOPROC;
        }
        ra__send_cache_drop(w);
        w->send_cache = a;
        w->send_cache_pid = to;
        return ra__deliver_to(rt, a, msg, from, cref, system);
    }
    ra__actor_t *a = ra__actor_get(rt, to);
    if (a == NULL) {
        return RA_ENOPROC;
    }
    int rc = ra__deliver_to(rt, a, msg, from, cref, system);
    ra__actor_put(rt, a);
    return rc;
}

// Sends a signal message; failures (the target is gone, out of memory)
// are dropped, as Erlang drops signals to dead processes.
static void
signal_to(ra_runtime_t *rt, ra_pid_t to, uint8_t kind, uint8_t sig,
          ra_pid_t pid, ra_reason_t reason, uint64_t ref)
{
    ra_msg_t *m = ra__msg_new_signal(kind, sig, pid, reason, ref);
    if (m == NULL) {
        ra_log_err("actor", "out of memory sending a signal");
        return;
    }
    if (ra__deliver(rt, to, &m, pid, 0, true) != 0) {
        ra_msg_unref(&m);
    }
}

int
ra_send(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t **msg)
{
    if (ctx == NULL) {
        return RA_EINVAL;
    }
    return ra__deliver(ctx->rt, to, msg, ctx->self, 0, false);
}

int
ra_runtime_send(ra_runtime_t *rt, ra_pid_t to, ra_msg_t **msg)
{
    if (rt == NULL) {
        return RA_EINVAL;
    }
    return ra__deliver(rt, to, msg, RA_PID_NIL, 0, false);
}

// ---- exits ----

// Ends actor a with reason, on the thread that owns it: runs terminate,
// tells links and monitors, drops the monitors it holds, and releases the
// runtime's reference.  After this returns a must not be touched unless the
// caller holds its own reference.
void
ra__actor_die(ra_runtime_t *rt, ra__actor_t *a, ra_reason_t reason)
{
    ra_pid_t self = ra__pid_of(rt, a);
    RA__SETF(a, RA__F_DONE);
    a->exit_reason = reason;
    if (a->beh != NULL && a->beh->terminate != NULL) {
        ra_ctx_t ctx = {rt, a, self, RA_PID_NIL, 0};
        a->beh->terminate(&ctx, a->state, reason);
    }
    ra__lock(a);
    a->exiting = true;
    ra__pidvec_t links = a->links;
    ra__monvec_t mons = a->monitors;
    memset(&a->links, 0, sizeof(a->links));
    memset(&a->monitors, 0, sizeof(a->monitors));
    ra__unlock(a);
    atomic_fetch_or_explicit(&a->word, RA__DEAD, memory_order_acq_rel);
    if ((RA__FLAGS(a) & RA__F_NAMED) && rt->names_hook != NULL) {
        // Names go before anyone can learn of the death: whoever gets the
        // EXIT or DOWN may register the name again at once.
        rt->names_hook(rt, self);
    }

    ra_reason_t seen = reason == RA_KILL ? RA_KILLED : reason;
    for (uint32_t i = 0; i < links.cap; i++) {
        if (links.v[i].id != 0) {
            signal_to(rt, links.v[i], RA_MSG_SIGNAL, RA__SIG_LINK_EXIT,
                      self, seen, 0);
        }
    }
    for (uint32_t i = 0; i < mons.n; i++) {
        if (mons.v[i].call) {
            ra__actor_t *w = ra__actor_get(rt, mons.v[i].pid);
            if (w != NULL) {
                ra__call_complete(rt, w, (uint32_t)mons.v[i].ref,
                                  RA_ENOPROC, NULL);
                ra__actor_put(rt, w);
            }
        } else {
            signal_to(rt, mons.v[i].pid, RA_MSG_DOWN, 0, self, seen,
                      mons.v[i].ref);
        }
    }
    free(links.v);
    free(mons.v);
    // Drop the monitors this actor holds, so long-lived targets do not
    // accumulate entries for dead watchers.
    for (uint32_t i = 0; i < a->watching.n; i++) {
        if (ra__is_remote(rt, a->watching.v[i].pid)) {
            const ra__dist_ops_t *ops = ra__dist_enter(rt);
            if (ops != NULL) {
                ops->demonitor(rt->dist, self, a->watching.v[i].pid,
                               a->watching.v[i].ref);
                ra__dist_leave(rt);
            }
            continue;
        }
        ra__actor_t *t = ra__actor_get(rt, a->watching.v[i].pid);
        if (t != NULL) {
            ra__lock(t);
            ra_pid_t me = self;
            ra__monvec_del(&t->monitors, a->watching.v[i].ref, &me);
            ra__unlock(t);
            ra__actor_put(rt, t);
        }
    }
    ra__monvec_clear(&a->watching);
    ra__actor_put(rt, a); // the runtime's reference
}

// What applying an exit signal led to.
enum { SIG_CONSUMED, SIG_DELIVER, SIG_DIED };

// Applies an exit signal to a, on its owner thread.  SIG_DELIVER: the
// signal became an RA_MSG_EXIT for the handler; SIG_DIED: a ended and must
// not be touched again.
static int
exit_signal(ra_runtime_t *rt, ra__actor_t *a, ra_msg_t *m)
{
    switch (m->sig) {
    case RA__SIG_SHUTDOWN:
        ra__actor_die(rt, a, RA_SHUTDOWN);
        return SIG_DIED;
    case RA__SIG_LINK_EXIT: {
        ra__lock(a);
        bool linked = pidvec_del(&a->links, ra__sig(m)->pid);
        ra__unlock(a);
        if (!linked) {
            return SIG_CONSUMED; // unlinked meanwhile: Erlang drops it too
        }
        break;
    }
    case RA__SIG_EXIT:
        if (ra__sig(m)->reason == RA_KILL) {
            ra__actor_die(rt, a, RA_KILLED);
            return SIG_DIED;
        }
        break;
    default:
        return SIG_CONSUMED;
    }
    if (RA__FLAGS(a) & RA__F_TRAP) {
        m->kind = RA_MSG_EXIT;
        return SIG_DELIVER;
    }
    if (ra__sig(m)->reason != RA_NORMAL) {
        ra__actor_die(rt, a, ra__sig(m)->reason);
        return SIG_DIED;
    }
    return SIG_CONSUMED;
}

// Handles one popped envelope of actor a on its owner thread.  Returns true
// if the actor ended: its slot may then already belong to another actor, so
// the caller must not touch it again.
bool
ra__dispatch(ra_runtime_t *rt, ra__actor_t *a, ra_pid_t self, ra__env_t *env,
             bool system)
{
    ra_msg_t *m = ra__env_msg(env);
    ra_ctx_t ctx = {rt, a, self, env->from, ra__env_cref(env)};
    ra__env_release(env);
    if (system) {
        if (m->kind == RA_MSG_SIGNAL) {
            int what = exit_signal(rt, a, m);
            if (what != SIG_DELIVER) {
                ra_msg_unref(&m);
                return what == SIG_DIED;
            }
        } else if (m->kind == RA_MSG_DOWN) {
            ra_pid_t target = ra__sig(m)->pid;
            if (!ra__monvec_del(&a->watching, ra__sig(m)->ref, &target)) {
                ra_msg_unref(&m); // demonitored: flushed
                return false;
            }
        }
        if (m->kind == RA_MSG_EXIT || m->kind == RA_MSG_DOWN) {
            ctx.from = ra__sig(m)->pid;
        }
    }
    int rc = a->beh->handle(&ctx, a->state, m);
    ra_msg_unref(&m);
    if (rc < 0) {
        ra__actor_die(rt, a, rc);
        return true;
    }
    if (RA__FLAGS(a) & RA__F_EXITREQ) {
        ra__actor_die(rt, a, a->exit_reason);
        return true;
    }
    return false;
}

void
ra_exit(ra_ctx_t *ctx, ra_reason_t reason)
{
    RA__SETF(ctx->a, RA__F_EXITREQ);
    ctx->a->exit_reason = reason;
}

static int
exit_pid(ra_runtime_t *rt, ra_pid_t from, ra_pid_t pid, ra_reason_t reason)
{
    ra_msg_t *m = ra__msg_new_signal(RA_MSG_SIGNAL, RA__SIG_EXIT, from,
                                     reason, 0);
    if (m == NULL) {
        return RA_ENOMEM;
    }
    int rc = ra__deliver(rt, pid, &m, from, 0, true);
    ra_msg_unref(&m);
    return rc;
}

int
ra_exit_pid(ra_ctx_t *ctx, ra_pid_t pid, ra_reason_t reason)
{
    return exit_pid(ctx->rt, ctx->self, pid, reason);
}

int
ra_runtime_exit(ra_runtime_t *rt, ra_pid_t pid, ra_reason_t reason)
{
    return exit_pid(rt, RA_PID_NIL, pid, reason);
}

bool
ra_trap_exit(ra_ctx_t *ctx, bool on)
{
    bool was = (RA__FLAGS(ctx->a) & RA__F_TRAP) != 0;
    if (on) {
        RA__SETF(ctx->a, RA__F_TRAP);
    } else {
        RA__CLRF(ctx->a, RA__F_TRAP);
    }
    return was;
}

// ---- links and monitors ----

// Links to an actor of another process: our half now, theirs by a signal.
static int
link_remote(ra_runtime_t *rt, ra__actor_t *self, ra_pid_t self_pid,
            ra_pid_t pid)
{
    const ra__dist_ops_t *ops = ra__dist_enter(rt);
    if (ops == NULL) {
        return RA_ENOCONN;
    }
    ra__lock(self);
    int rc = pidvec_add(&self->links, pid);
    ra__unlock(self);
    if (rc == 0) {
        rc = ops->link(rt->dist, self_pid, pid);
        if (rc != 0) {
            ra__lock(self);
            pidvec_del(&self->links, pid);
            ra__unlock(self);
        }
    }
    ra__dist_leave(rt);
    return rc;
}

static int
link_pids(ra_runtime_t *rt, ra__actor_t *self, ra_pid_t self_pid,
          ra_pid_t pid)
{
    if (ra__is_remote(rt, pid)) {
        return link_remote(rt, self, self_pid, pid);
    }
    ra__actor_t *t = ra__actor_get(rt, pid);
    if (t == NULL) {
        return RA_ENOPROC;
    }
    int rc = 0;
    ra__lock(t);
    if (t->exiting) {
        rc = RA_ENOPROC;
    } else {
        rc = pidvec_add(&t->links, self_pid);
    }
    ra__unlock(t);
    ra__actor_put(rt, t);
    if (rc == 0) {
        ra__lock(self);
        rc = pidvec_add(&self->links, pid);
        ra__unlock(self);
    }
    return rc;
}

int
ra_link(ra_ctx_t *ctx, ra_pid_t pid)
{
    if (ra_pid_eq(pid, ctx->self)) {
        return 0;
    }
    int rc = link_pids(ctx->rt, ctx->a, ctx->self, pid);
    if (rc == RA_ENOPROC && (RA__FLAGS(ctx->a) & RA__F_TRAP)) {
        ra_msg_t *m = ra__msg_new_signal(RA_MSG_EXIT, 0, pid, RA_NOPROC, 0);
        if (m != NULL && ra__deliver_to(ctx->rt, ctx->a, &m, pid, 0,
                                        true) != 0) {
            ra_msg_unref(&m);
        }
    }
    return rc;
}

int
ra_unlink(ra_ctx_t *ctx, ra_pid_t pid)
{
    ra__lock(ctx->a);
    bool had = pidvec_del(&ctx->a->links, pid);
    ra__unlock(ctx->a);
    if (ra__is_remote(ctx->rt, pid)) {
        const ra__dist_ops_t *ops = had ? ra__dist_enter(ctx->rt) : NULL;
        if (ops != NULL) {
            ops->unlink(ctx->rt->dist, ctx->self, pid);
            ra__dist_leave(ctx->rt);
        }
        return 0;
    }
    ra__actor_t *t = ra__actor_get(ctx->rt, pid);
    if (t != NULL) {
        ra__lock(t);
        pidvec_del(&t->links, ctx->self);
        ra__unlock(t);
        ra__actor_put(ctx->rt, t);
    }
    return 0;
}

static int
monitor_pid(ra_runtime_t *rt, ra__actor_t *self, ra_pid_t self_pid,
            ra_pid_t pid, uint64_t *mref)
{
    uint64_t ref = ((uint64_t)self->id << 32) | ++self->ref_seq;
    int rc = ra__monvec_add(&self->watching, ref, pid, false);
    if (rc != 0) {
        return rc;
    }
    if (ra__is_remote(rt, pid)) {
        const ra__dist_ops_t *ops = ra__dist_enter(rt);
        rc = ops != NULL ? ops->monitor(rt->dist, self_pid, pid, ref)
                         : RA_ENOCONN;
        if (ops != NULL) {
            ra__dist_leave(rt);
        }
        if (rc != 0) {
            ra__monvec_pop(&self->watching);
            return rc;
        }
        *mref = ref;
        return 0;
    }
    ra__actor_t *t = ra__actor_get(rt, pid);
    bool gone = t == NULL;
    if (t != NULL) {
        ra__lock(t);
        if (t->exiting) {
            gone = true;
        } else {
            rc = ra__monvec_add(&t->monitors, ref, self_pid, false);
        }
        ra__unlock(t);
        ra__actor_put(rt, t);
    }
    if (rc != 0) {
        ra__monvec_pop(&self->watching);
        return rc;
    }
    if (gone) {
        ra_msg_t *m = ra__msg_new_signal(RA_MSG_DOWN, 0, pid, RA_NOPROC, ref);
        if (m == NULL) {
            ra__monvec_pop(&self->watching);
            return RA_ENOMEM;
        }
        if (ra__deliver_to(rt, self, &m, pid, 0, true) != 0) {
            ra_msg_unref(&m);
        }
    }
    *mref = ref;
    return 0;
}

int
ra_monitor(ra_ctx_t *ctx, ra_pid_t pid, uint64_t *mref)
{
    if (ctx == NULL || mref == NULL) {
        return RA_EINVAL;
    }
    return monitor_pid(ctx->rt, ctx->a, ctx->self, pid, mref);
}

int
ra_demonitor(ra_ctx_t *ctx, uint64_t mref)
{
    ra_pid_t target = RA_PID_NIL;
    if (!ra__monvec_take(&ctx->a->watching, mref, &target)) {
        return RA_ENOENT;
    }
    if (ra__is_remote(ctx->rt, target)) {
        const ra__dist_ops_t *ops = ra__dist_enter(ctx->rt);
        if (ops != NULL) {
            ops->demonitor(ctx->rt->dist, ctx->self, target, mref);
            ra__dist_leave(ctx->rt);
        }
        return 0;
    }
    ra__actor_t *t = ra__actor_get(ctx->rt, target);
    if (t != NULL) {
        ra__lock(t);
        ra_pid_t me = ctx->self;
        ra__monvec_del(&t->monitors, mref, &me);
        ra__unlock(t);
        ra__actor_put(ctx->rt, t);
    }
    return 0;
}

// ---- from other processes (the link layer) ----

int
ra__dist_link_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t remote)
{
    ra__actor_t *t = ra__actor_get(rt, pid);
    if (t == NULL) {
        return RA_ENOPROC;
    }
    ra__lock(t);
    int rc = t->exiting ? RA_ENOPROC : pidvec_add(&t->links, remote);
    ra__unlock(t);
    ra__actor_put(rt, t);
    return rc;
}

void
ra__dist_unlink_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t remote)
{
    ra__actor_t *t = ra__actor_get(rt, pid);
    if (t != NULL) {
        ra__lock(t);
        pidvec_del(&t->links, remote);
        ra__unlock(t);
        ra__actor_put(rt, t);
    }
}

int
ra__dist_monitor_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t watcher,
                    uint64_t ref)
{
    ra__actor_t *t = ra__actor_get(rt, pid);
    if (t == NULL) {
        return RA_ENOPROC;
    }
    ra__lock(t);
    int rc = t->exiting ? RA_ENOPROC
                        : ra__monvec_add(&t->monitors, ref, watcher, false);
    ra__unlock(t);
    ra__actor_put(rt, t);
    return rc;
}

void
ra__dist_demonitor_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t watcher,
                      uint64_t ref)
{
    ra__actor_t *t = ra__actor_get(rt, pid);
    if (t != NULL) {
        ra__lock(t);
        ra__monvec_del(&t->monitors, ref, &watcher);
        ra__unlock(t);
        ra__actor_put(rt, t);
    }
}

int
ra__dist_watch(ra_ctx_t *ctx, ra_pid_t target, uint64_t *ref)
{
    ra__actor_t *a = ctx->a;
    uint64_t r = ((uint64_t)a->id << 32) | ++a->ref_seq;
    int rc = ra__monvec_add(&a->watching, r, target, false);
    if (rc == 0) {
        *ref = r;
    }
    return rc;
}

// ---- spawning ----

// spawn makes an actor in a fresh slot, or in reserved slot `slot` when
// it is not 0 (waiting up to wait_ms for it).
static int
spawn(ra_runtime_t *rt, ra_ctx_t *parent, const ra_behaviour_t *b,
      void *arg, const ra_spawn_opts_t *opts, ra_pid_t *out, uint64_t *mref,
      uint32_t slot, unsigned wait_ms)
{
    if (rt == NULL || b == NULL || b->handle == NULL ||
        (opts != NULL && opts->full_policy > RA_FULL_BLOCK)) {
        return RA_EINVAL;
    }
    unsigned flags = opts != NULL ? opts->flags : 0;
    if ((flags & (RA_SPAWN_LINK | RA_SPAWN_MONITOR)) && parent == NULL) {
        return RA_EINVAL;
    }
    if ((flags & RA_SPAWN_MONITOR) && mref == NULL) {
        return RA_EINVAL;
    }
    ra__actor_t *a = NULL;
    int rc = slot != 0 ? ra__actor_create_reserved(rt, slot, b, arg, opts,
                                                   wait_ms, &a)
                       : ra__actor_create(rt, b, arg, opts, NULL, &a);
    if (rc != 0) {
        return rc;
    }
    ra_pid_t pid = ra__pid_of(rt, a);
    if (flags & RA_SPAWN_LINK) {
        // Nobody else knows the child yet: link both ends directly.
        rc = pidvec_add(&a->links, parent->self);
        if (rc == 0) {
            ra__lock(parent->a);
            rc = pidvec_add(&parent->a->links, pid);
            ra__unlock(parent->a);
        }
    }
    if (rc == 0 && (flags & RA_SPAWN_MONITOR)) {
        rc = monitor_pid(rt, parent->a, parent->self, pid, mref);
    }
    ra_ctx_t ctx = {rt, a, pid, RA_PID_NIL, 0};
    if (rc == 0 && b->init != NULL) {
        rc = b->init(&ctx, &a->state);
        if (rc > 0) {
            rc = 0;
        }
    }
    if (out != NULL) {
        *out = pid;
    }
    if (rc != 0) {
        ra__actor_die(rt, a, rc);
        return rc;
    }
    if (RA__FLAGS(a) & RA__F_EXITREQ) {
        ra__actor_die(rt, a, a->exit_reason);
        return 0;
    }
    // Finish "running" init: schedule if init sent the actor messages.
    atomic_store_explicit(&a->sched, 0, memory_order_seq_cst);
    if (ra__mailbox_nonempty(&a->mb) &&
        atomic_exchange_explicit(&a->sched, 1, memory_order_seq_cst) == 0) {
        ra__schedule(rt, a);
    }
    return 0;
}

int
ra_spawn(ra_runtime_t *rt, const ra_behaviour_t *b, void *arg,
         const ra_spawn_opts_t *opts, ra_pid_t *out)
{
    return spawn(rt, NULL, b, arg, opts, out, NULL, 0, 0);
}

int
ra__spawn_reserved(ra_runtime_t *rt, ra_ctx_t *parent, uint32_t id,
                   const ra_behaviour_t *b, void *arg,
                   const ra_spawn_opts_t *opts, unsigned wait_ms,
                   ra_pid_t *out)
{
    if (id == 0 || (parent != NULL && parent->rt != rt)) {
        return RA_EINVAL;
    }
    return spawn(rt, parent, b, arg, opts, out, NULL, id, wait_ms);
}

int
ra_spawn_from(ra_ctx_t *ctx, const ra_behaviour_t *b, void *arg,
              const ra_spawn_opts_t *opts, ra_pid_t *out, uint64_t *mref)
{
    if (ctx == NULL) {
        return RA_EINVAL;
    }
    return spawn(ctx->rt, ctx, b, arg, opts, out, mref, 0, 0);
}

ra_pid_t
ra_self(const ra_ctx_t *ctx)
{
    return ctx->self;
}

ra_runtime_t *
ra_ctx_runtime(const ra_ctx_t *ctx)
{
    return ctx->rt;
}

ra_pid_t
ra_sender(const ra_ctx_t *ctx)
{
    return ctx->from;
}

bool
ra_is_alive(ra_runtime_t *rt, ra_pid_t pid)
{
    ra__actor_t *a = ra__actor_get(rt, pid);
    if (a == NULL) {
        return false;
    }
    ra__actor_put(rt, a);
    return true;
}

int
ra_actor_stats(ra_runtime_t *rt, ra_pid_t pid, ra_actor_stats_t *st)
{
    ra__actor_t *a = ra__actor_get(rt, pid);
    if (a == NULL) {
        return RA_ENOPROC;
    }
    st->mailbox_len = ra_mailbox_size(&a->mb);
    st->dropped = ra_mailbox_dropped(&a->mb);
    ra__lock(a);
    st->links = a->links.n;
    st->monitors = a->monitors.n;
    ra__unlock(a);
    st->trap_exit = (RA__FLAGS(a) & RA__F_TRAP) != 0;
    ra__actor_put(rt, a);
    return 0;
}

// ---- scopes ----

static int
scope_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)ctx;
    (void)state;
    (void)msg;
    return 0; // never called: scopes receive with ra_receive
}

static const ra_behaviour_t scope_behaviour = {"scope", NULL, scope_handle,
                                               NULL};

int
ra_scope_new(ra_runtime_t *rt, ra_ctx_t **out)
{
    if (rt == NULL || out == NULL) {
        return RA_EINVAL;
    }
    ra__scope_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_init(&s->mtx, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    ra__actor_t *a = NULL;
    int rc = ra__actor_create(rt, &scope_behaviour, NULL, NULL, s, &a);
    if (rc != 0) {
        pthread_mutex_destroy(&s->mtx);
        pthread_cond_destroy(&s->cond);
        free(s);
        return rc;
    }
    s->ctx = (ra_ctx_t){rt, a, ra__pid_of(rt, a), RA_PID_NIL, 0};
    atomic_fetch_add(&a->word, 1); // the scope's own reference
    pthread_mutex_lock(&rt->table_mtx);
    s->prev = NULL;
    s->next = rt->scopes;
    if (s->next != NULL) {
        s->next->prev = s;
    }
    rt->scopes = s;
    pthread_mutex_unlock(&rt->table_mtx);
    atomic_store(&a->sched, 0);
    *out = &s->ctx;
    return 0;
}

// Ends a scope's actor if it is still alive.  The scope holds a slot
// reference of its own (taken in ra_scope_new), so the slot, and the pid in
// the ctx, stay its own until ra_scope_destroy drops it; the scope's memory
// is freed by the slot's finalizer, once no sender can still touch it.
static void
scope_die(ra_runtime_t *rt, ra__actor_t *a, ra_reason_t reason)
{
    if (!(RA__FLAGS(a) & RA__F_DONE)) {
        ra__actor_die(rt, a, reason);
    }
}

// Ends the scope and drops its slot reference (freeing it).  The caller
// has taken it off the runtime's list.
void
ra__scope_end(ra_runtime_t *rt, ra__scope_t *s)
{
    ra__actor_t *a = s->ctx.a;
    scope_die(rt, a, RA_SHUTDOWN);
    ra__actor_put(rt, a);
}

void
ra_scope_destroy(ra_ctx_t **ctxp)
{
    if (ctxp == NULL || *ctxp == NULL) {
        return;
    }
    ra_ctx_t *ctx = *ctxp;
    *ctxp = NULL;
    ra_runtime_t *rt = ctx->rt;
    ra__actor_t *a = ctx->a;
    ra__scope_t *s = a->scope;
    pthread_mutex_lock(&rt->table_mtx);
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        rt->scopes = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    pthread_mutex_unlock(&rt->table_mtx);
    scope_die(rt, a, RA_NORMAL);
    ra__actor_put(rt, a);
}

ra_reason_t
ra_scope_exit_reason(const ra_ctx_t *ctx)
{
    return (RA__FLAGS(ctx->a) & RA__F_DONE) ? ctx->a->exit_reason : -1;
}

// Waits on the scope until pred(arg) holds, or (with want_mail) until its
// mailbox is non-empty, or the deadline (NULL: none) passes.  Senders see
// sched == 0 only under the mutex, so their wake-up cannot be lost.
void ra__scope_wait(ra__scope_t *s, const struct timespec *dl,
                    bool want_mail, bool (*pred)(void *), void *arg);
void
ra__scope_wait(ra__scope_t *s, const struct timespec *dl, bool want_mail,
               bool (*pred)(void *), void *arg)
{
    ra__actor_t *a = s->ctx.a;
    // A scope used on a scheduler thread (a task calling the cluster API
    // from a worker's actor, say) blocks that thread: its queue moves on.
    bool tried = false, began = false;
    pthread_mutex_lock(&s->mtx);
    atomic_store_explicit(&a->sched, 0, memory_order_seq_cst);
    while (!(want_mail && ra__mailbox_nonempty(&a->mb)) &&
           !(pred != NULL && pred(arg))) {
        if (!tried && ra__tls_worker != NULL) {
            tried = true;
            pthread_mutex_unlock(&s->mtx);
            began = ra__sched_wait_begin();
            pthread_mutex_lock(&s->mtx);
            continue; // look again: the lock was let go
        }
        int rc = dl != NULL ? pthread_cond_timedwait(&s->cond, &s->mtx, dl)
                            : pthread_cond_wait(&s->cond, &s->mtx);
        if (rc != 0 && dl != NULL && ra__past(dl)) {
            break;
        }
    }
    atomic_store_explicit(&a->sched, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&s->mtx);
    ra__sched_wait_end(began);
}

int
ra_receive(ra_ctx_t *ctx, int64_t timeout_ms, ra_msg_t **out)
{
    if (ctx == NULL || out == NULL || ctx->a->scope == NULL) {
        return RA_EINVAL;
    }
    ra_runtime_t *rt = ctx->rt;
    ra__actor_t *a = ctx->a;
    struct timespec dl;
    if (timeout_ms >= 0) {
        ra__deadline(&dl, timeout_ms);
    }
    for (;;) {
        if (RA__FLAGS(a) & RA__F_DONE) {
            return RA_EEXIT;
        }
        bool sys;
        ra__env_t *e = ra__mailbox_pop_env(&a->mb, &sys);
        if (e != NULL) {
            ra_msg_t *m = ra__env_msg(e);
            ctx->from = e->from;
            ctx->cref = ra__env_cref(e);
            ra__env_release(e);
            if (sys) {
                ctx->from = ra__sig(m)->pid;
                if (m->kind == RA_MSG_SIGNAL) {
                    if (exit_signal(rt, a, m) != SIG_DELIVER) {
                        ra_msg_unref(&m);
                        continue;
                    }
                } else if (m->kind == RA_MSG_DOWN) {
                    ra_pid_t target = ra__sig(m)->pid;
                    if (!ra__monvec_del(&a->watching, ra__sig(m)->ref, &target)) {
                        ra_msg_unref(&m);
                        continue;
                    }
                }
            }
            *out = m;
            return 0;
        }
        if (timeout_ms == 0 || (timeout_ms > 0 && ra__past(&dl))) {
            return RA_ETIMEOUT;
        }
        ra__scope_wait(a->scope, timeout_ms >= 0 ? &dl : NULL, true, NULL,
                       NULL);
    }
}

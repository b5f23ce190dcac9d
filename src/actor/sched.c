// sched.c - scheduler threads: run queues, work stealing, parking.
//
// Each worker owns a ring of runnable actors plus a "next" slot.  An actor
// woken by a send from a worker goes into that worker's next slot: it runs
// right after the current actor, on the same core, while the message is
// still in cache; the slot is not stealable, so a ping-pong pair stays on
// one core instead of paying a cross-core wake-up per message.  The slot is
// bypassed after a streak so that ring entries are not starved.
//
// Idle workers first spin ("searching") for a while (ra_runtime_opts_t
// .spin rounds, yielding the CPU at each), then park on their own
// condition variable.  A producer wakes a parked worker only when nobody
// is searching, so a busy runtime makes almost no futex calls.
//
// A worker whose actor waits in ra_call does not run other actors on top
// of the waiting one (an actor run there could need the one below it, and
// neither could go on); it hands its queue to the other threads, and when
// fewer than the configured number would be left running, a spare thread
// starts (ra__sched_block_enter).  Spares stay, parked when idle, until the
// runtime stops.  Only the callee itself runs on top of its caller: the
// call's own answer is what the caller waits for.
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "actor_impl.h"

_Thread_local ra__worker_t *ra__tls_worker __attribute__((tls_model("initial-exec")));

#define NEXT_STREAK_MAX 32
#define INJECTOR_EVERY 61

// A full fence.  ThreadSanitizer does not model atomic_thread_fence, so
// its builds use a sequentially consistent read-modify-write instead.
static inline void
full_fence(ra_runtime_t *rt)
{
#if defined(__SANITIZE_THREAD__)
    atomic_fetch_add(&rt->num_idle, 0);
#else
    (void)rt;
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// ---- injector ----

static void
inject(ra_runtime_t *rt, ra__actor_t *a)
{
    a->runq_next = NULL;
    pthread_mutex_lock(&rt->inj_mtx);
    if (rt->inj_tail != NULL) {
        rt->inj_tail->runq_next = a;
    } else {
        rt->inj_head = a;
    }
    rt->inj_tail = a;
    atomic_fetch_add(&rt->inj_len, 1);
    pthread_mutex_unlock(&rt->inj_mtx);
}

static ra__actor_t *
inject_pop(ra_runtime_t *rt)
{
    if (atomic_load_explicit(&rt->inj_len, memory_order_relaxed) == 0) {
        return NULL;
    }
    pthread_mutex_lock(&rt->inj_mtx);
    ra__actor_t *a = rt->inj_head;
    if (a != NULL) {
        rt->inj_head = a->runq_next;
        if (rt->inj_head == NULL) {
            rt->inj_tail = NULL;
        }
        atomic_fetch_sub(&rt->inj_len, 1);
    }
    pthread_mutex_unlock(&rt->inj_mtx);
    return a;
}

// ---- inboxes: actors migrated to a worker ----

static void
inbox_push(ra__worker_t *w, ra__actor_t *a)
{
    a->runq_next = NULL;
    pthread_mutex_lock(&w->inbox_mtx);
    if (w->inbox_tail != NULL) {
        w->inbox_tail->runq_next = a;
    } else {
        w->inbox_head = a;
    }
    w->inbox_tail = a;
    atomic_fetch_add(&w->inbox_len, 1);
    pthread_mutex_unlock(&w->inbox_mtx);
}

static ra__actor_t *
inbox_pop(ra__worker_t *w)
{
    if (atomic_load_explicit(&w->inbox_len, memory_order_relaxed) == 0) {
        return NULL;
    }
    pthread_mutex_lock(&w->inbox_mtx);
    ra__actor_t *a = w->inbox_head;
    if (a != NULL) {
        w->inbox_head = a->runq_next;
        if (w->inbox_head == NULL) {
            w->inbox_tail = NULL;
        }
        atomic_fetch_sub(&w->inbox_len, 1);
    }
    pthread_mutex_unlock(&w->inbox_mtx);
    return a;
}

// ---- the local ring ----

static void
ring_push(ra__worker_t *w, ra__actor_t *a)
{
    uint32_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&w->head, memory_order_acquire);
    if (t - h < RA__RING) {
        atomic_store_explicit(&w->ring[t & (RA__RING - 1)], a,
                              memory_order_relaxed);
        atomic_store_explicit(&w->tail, t + 1, memory_order_release);
        return;
    }
    inject(w->rt, a); // full: let any worker take it
}

static ra__actor_t *
ring_pop(ra__worker_t *w)
{
    uint32_t h = atomic_load_explicit(&w->head, memory_order_acquire);
    for (;;) {
        uint32_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
        if (h == t) {
            return NULL;
        }
        ra__actor_t *a = atomic_load_explicit(&w->ring[h & (RA__RING - 1)],
                                              memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&w->head, &h, h + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            return a;
        }
    }
}

// Steals half of victim's ring into w's (empty) ring and returns one.
static ra__actor_t *
ring_steal(ra__worker_t *w, ra__worker_t *v)
{
    uint32_t h = atomic_load_explicit(&v->head, memory_order_acquire);
    for (;;) {
        uint32_t t = atomic_load_explicit(&v->tail, memory_order_acquire);
        uint32_t n = t - h;
        if (n == 0 || n > RA__RING) {
            return NULL;
        }
        n = n - n / 2;
        uint32_t mt = atomic_load_explicit(&w->tail, memory_order_relaxed);
        for (uint32_t i = 0; i < n; i++) {
            ra__actor_t *a = atomic_load_explicit(
                &v->ring[(h + i) & (RA__RING - 1)], memory_order_relaxed);
            atomic_store_explicit(&w->ring[(mt + i) & (RA__RING - 1)], a,
                                  memory_order_relaxed);
        }
        if (atomic_compare_exchange_weak_explicit(&v->head, &h, h + n,
                                                  memory_order_acq_rel,
                                                  memory_order_acquire)) {
            ra__actor_t *first = atomic_load_explicit(
                &w->ring[mt & (RA__RING - 1)], memory_order_relaxed);
            // Keep the rest: the first one runs now.
            uint32_t hh = atomic_load(&w->head);
            (void)hh;
            atomic_store_explicit(&w->head, mt + 1, memory_order_release);
            atomic_store_explicit(&w->tail, mt + n, memory_order_release);
            return first;
        }
    }
}

static bool
ring_nonempty(ra__worker_t *w)
{
    return atomic_load(&w->tail) != atomic_load(&w->head) ||
           atomic_load(&w->inbox_len) > 0;
}

// ---- parking ----

static void
notify_one(ra_runtime_t *rt)
{
    full_fence(rt);
    if (atomic_load(&rt->num_searching) > 0 ||
        atomic_load(&rt->num_idle) == 0) {
        return;
    }
    pthread_mutex_lock(&rt->idle_mtx);
    ra__worker_t *w = rt->idle;
    if (w != NULL && atomic_load(&rt->num_searching) == 0) {
        rt->idle = w->idle_next;
        w->idle = false;
        atomic_fetch_sub(&rt->num_idle, 1);
        atomic_fetch_add(&rt->num_searching, 1); // on w's behalf
    } else {
        w = NULL;
    }
    pthread_mutex_unlock(&rt->idle_mtx);
    if (w != NULL) {
        pthread_mutex_lock(&w->mtx);
        w->notified = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->mtx);
    }
}

void
ra__worker_wake(ra__worker_t *w)
{
    pthread_mutex_lock(&w->mtx);
    w->nap_wake = true;
    if (w->parked) {
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->mtx);
}

// Waits (for a call's reply) until woken or the deadline (NULL: 10 ms).
void
ra__worker_nap(ra__worker_t *w, const struct timespec *deadline)
{
    struct timespec dl;
    if (deadline == NULL) {
        ra__deadline(&dl, 10);
        deadline = &dl;
    }
    pthread_mutex_lock(&w->mtx);
    if (!w->nap_wake) {
        w->parked = true;
        pthread_cond_timedwait(&w->cond, &w->mtx, deadline);
        w->parked = false;
    }
    w->nap_wake = false;
    pthread_mutex_unlock(&w->mtx);
}

static bool
work_visible(ra_runtime_t *rt)
{
    if (atomic_load(&rt->inj_len) > 0) {
        return true;
    }
    unsigned n = atomic_load_explicit(&rt->nthreads, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        if (ring_nonempty(&rt->workers[i]) ||
            atomic_load(&rt->workers[i].inbox_len) > 0) {
            return true;
        }
    }
    return false;
}

static void
stop_searching(ra__worker_t *w)
{
    if (!w->searching) {
        return;
    }
    w->searching = false;
    // The last searcher to find work wakes another when more work is
    // waiting, so that a burst of work spreads over idle cores.  Waking one
    // when nothing is left cost a futex wake-up and a parking per message
    // in a synchronous exchange: the woken thread found nothing and went
    // back to sleep.  Work pushed after the check sees no searcher (the
    // decrement above is ordered before it) and wakes a thread itself.
    if (atomic_fetch_sub(&w->rt->num_searching, 1) == 1 &&
        work_visible(w->rt)) {
        notify_one(w->rt);
    }
}

// Waits until a notifier takes this worker off the idle list (and counts it
// as searching).  Every notification is consumed exactly once, so the
// searching count never drifts.
static void
wait_notified(ra__worker_t *w)
{
    pthread_mutex_lock(&w->mtx);
    while (!w->notified && !atomic_load(&w->rt->stop)) {
        w->parked = true;
        pthread_cond_wait(&w->cond, &w->mtx);
        w->parked = false;
    }
    w->notified = false;
    pthread_mutex_unlock(&w->mtx);
}

static void
park(ra__worker_t *w)
{
    ra_runtime_t *rt = w->rt;
    if (w->searching) {
        w->searching = false;
        atomic_fetch_sub(&rt->num_searching, 1);
    }
    pthread_mutex_lock(&rt->idle_mtx);
    w->idle_next = rt->idle;
    rt->idle = w;
    w->idle = true;
    atomic_fetch_add(&rt->num_idle, 1);
    pthread_mutex_unlock(&rt->idle_mtx);
    full_fence(rt);
    if (work_visible(rt) || atomic_load(&rt->stop)) {
        // Take ourselves off the idle list unless a notifier already did.
        pthread_mutex_lock(&rt->idle_mtx);
        bool mine = w->idle;
        if (mine) {
            ra__worker_t **pp = &rt->idle;
            while (*pp != w) {
                pp = &(*pp)->idle_next;
            }
            *pp = w->idle_next;
            w->idle = false;
            atomic_fetch_sub(&rt->num_idle, 1);
            atomic_fetch_add(&rt->num_searching, 1);
        }
        pthread_mutex_unlock(&rt->idle_mtx);
        if (!mine) {
            wait_notified(w); // its notification is on its way
        }
    } else {
        wait_notified(w);
    }
    w->searching = true;
}

// ---- scheduling ----

void
ra__schedule(ra_runtime_t *rt, ra__actor_t *a)
{
    ra__worker_t *w = ra__tls_worker;
    if (w != NULL && w->rt == rt) {
        ra__actor_t *prev = w->next;
        w->next = a;
        if (prev == NULL) {
            return;
        }
        ring_push(w, prev);
    } else {
        inject(rt, a);
    }
    notify_one(rt);
}

// The next slot cannot be stolen: its actor goes to the injector, so that
// another thread runs it while this one waits.  The ring can be stolen
// from as it is; the caller wakes a thread to do so.
static void
hand_next_on(ra__worker_t *w)
{
    ra__actor_t *a = w->next;
    w->next = NULL;
    if (a != NULL) {
        inject(w->rt, a);
    }
}

void
ra__sched_blocking(void)
{
    ra__worker_t *w = ra__tls_worker;
    if (w == NULL) {
        return;
    }
    hand_next_on(w);
    notify_one(w->rt);
}

static ra__actor_t *
find_local(ra__worker_t *w)
{
    ra_runtime_t *rt = w->rt;
    ra__actor_t *a;
    if (++w->tick % INJECTOR_EVERY == 0 && (a = inject_pop(rt)) != NULL) {
        return a;
    }
    if (w->next != NULL && w->next_streak < NEXT_STREAK_MAX) {
        a = w->next;
        w->next = NULL;
        w->next_streak++;
        return a;
    }
    w->next_streak = 0;
    if ((a = ring_pop(w)) != NULL || (a = inbox_pop(w)) != NULL) {
        return a;
    }
    if (w->next != NULL) {
        a = w->next;
        w->next = NULL;
        return a;
    }
    return inject_pop(rt);
}

static ra__actor_t *
steal(ra__worker_t *w)
{
    ra_runtime_t *rt = w->rt;
    unsigned n = atomic_load_explicit(&rt->nthreads, memory_order_acquire);
    w->rng = w->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned start = (unsigned)(w->rng >> 33) % n;
    for (unsigned i = 0; i < n; i++) {
        ra__worker_t *v = &rt->workers[(start + i) % n];
        if (v == w) {
            continue;
        }
        ra__actor_t *a = ring_steal(w, v);
        if (a != NULL || (a = inbox_pop(v)) != NULL) {
            return a;
        }
    }
    return inject_pop(rt);
}

// Runs one runnable actor if there is one (used by nested call loops).
bool
ra__run_one(ra__worker_t *w)
{
    ra__actor_t *a = find_local(w);
    if (a == NULL) {
        a = steal(w);
    }
    if (a == NULL) {
        return false;
    }
    ra__run_actor(w, a);
    return true;
}

static void run_turn(ra__worker_t *w, ra__actor_t *a);

// Nothing else is waiting for this worker: no need to yield the core.
static bool
others_waiting(ra__worker_t *w)
{
    return w->next != NULL || ring_nonempty(w) ||
           atomic_load_explicit(&w->rt->inj_len, memory_order_relaxed) > 0;
}

void
ra__run_actor(ra__worker_t *w, ra__actor_t *a)
{
    run_turn(w, a);
    ra__send_cache_drop(w);
}

static void
run_turn(ra__worker_t *w, ra__actor_t *a)
{
    ra_runtime_t *rt = w->rt;
    ra_pid_t self = ra__pid_of(rt, a);
    for (;;) {
        for (unsigned i = 0; i < rt->quantum; i++) {
            bool sys;
            ra__env_t *e = ra__mailbox_pop_env(&a->mb, &sys);
            if (e == NULL) {
                goto drained;
            }
            if (ra__dispatch(rt, a, self, e, sys)) {
                return; // it ended; its slot may already be recycled
            }
            if (w->depth > 0 &&
                atomic_load_explicit(&w->frames[w->depth - 1]->call_wait,
                                     memory_order_relaxed) == 0) {
                goto drained; // the one below has its answer: let it go
            }
        }
        // Out of quantum.  With nobody else waiting here, carry on: moving
        // a busy actor to the ring would only invite a thief to drag its
        // backlog (written by this core) across to another core.
        if (others_waiting(w) || atomic_load_explicit(
                                     &rt->stop, memory_order_relaxed)) {
            break;
        }
    }
drained:
    if (ra__mailbox_nonempty(&a->mb)) {
        // Out of quantum (or a producer mid-push): go to the back.  An
        // actor fed steadily by one other worker moves there instead, so
        // that a producer and its consumer end up sharing a core and its
        // cache (an idle actor moves there anyway when that worker wakes
        // it; a busy one never goes idle, so it needs this push).
        int lw = atomic_load_explicit(&a->last_w, memory_order_relaxed);
        if (lw >= 0 && lw != w->index && (unsigned)lw < rt->wcap &&
            atomic_load_explicit(&a->last_w_streak, memory_order_relaxed) >=
                RA__AFFINITY) {
            inbox_push(&rt->workers[lw], a);
        } else {
            ring_push(w, a);
        }
        notify_one(rt);
        return;
    }
    atomic_store_explicit(&a->sched, 0, memory_order_seq_cst);
    if (ra__mailbox_nonempty(&a->mb) &&
        atomic_exchange_explicit(&a->sched, 1, memory_order_seq_cst) == 0) {
        ring_push(w, a);
        notify_one(rt);
    }
}

static void *worker_main(void *arg);

// Starts the next spare scheduler thread.  False at RA__SPARE_MAX, while
// the runtime stops, or if the thread cannot be created.
static bool
spare_start(ra_runtime_t *rt)
{
    bool ok = false;
    pthread_mutex_lock(&rt->spare_mtx);
    unsigned n = atomic_load(&rt->nthreads);
    if (n < rt->wcap && !atomic_load(&rt->stop)) {
        ra__worker_t *w = &rt->workers[n];
        // Counted first, so that its ring is visible to thieves as soon as
        // it can hold anything.
        atomic_store_explicit(&rt->nthreads, n + 1, memory_order_release);
        if (pthread_create(&w->thread, NULL, worker_main, w) == 0) {
            w->started = true;
            ok = true;
        } else {
            atomic_store(&rt->nthreads, n);
        }
    }
    pthread_mutex_unlock(&rt->spare_mtx);
    return ok;
}

bool
ra__sched_block_enter(ra__worker_t *w)
{
    ra_runtime_t *rt = w->rt;
    if (w->nblock > 0) {
        w->nblock++; // a wait inside a wait: counted already
        return true;
    }
    // Nothing held here may wait with us: the next slot (hand_next_on) and
    // the send cache, which pins an actor's slot.
    ra__send_cache_drop(w);
    hand_next_on(w);
    unsigned blocked = atomic_fetch_add(&rt->nblocked, 1) + 1;
    unsigned n = atomic_load(&rt->nthreads);
    if ((n > blocked && n - blocked >= rt->nworkers) || spare_start(rt)) {
        w->nblock = 1;
        notify_one(rt);
        return true;
    }
    atomic_fetch_sub(&rt->nblocked, 1);
    return false;
}

void
ra__sched_block_leave(ra__worker_t *w)
{
    if (--w->nblock == 0) {
        atomic_fetch_sub(&w->rt->nblocked, 1);
    }
}

bool
ra__sched_on_thread(void)
{
    return ra__tls_worker != NULL;
}

bool
ra__sched_wait_begin(void)
{
    ra__worker_t *w = ra__tls_worker;
    return w != NULL && ra__sched_block_enter(w);
}

void
ra__sched_wait_end(bool began)
{
    if (began) {
        ra__sched_block_leave(ra__tls_worker);
    }
}

static void *
worker_main(void *arg)
{
    ra__worker_t *w = arg;
    ra_runtime_t *rt = w->rt;
    ra__tls_worker = w;
    while (!atomic_load_explicit(&rt->stop, memory_order_relaxed)) {
        ra__actor_t *a = find_local(w);
        if (a == NULL) {
            if (!w->searching) {
                w->searching = true;
                atomic_fetch_add(&rt->num_searching, 1);
            }
            for (unsigned i = 0; i < rt->spin && a == NULL; i++) {
                a = steal(w);
                if (a == NULL) {
                    for (int k = 0; k < 32; k++) {
                        cpu_relax();
                    }
                    // Threads this one serves (a link's or ZeroMQ's I/O
                    // thread, woken on this core) run meanwhile: spinning
                    // through them delayed each message by the whole spin.
                    sched_yield();
                }
            }
            if (a == NULL) {
                park(w);
                continue;
            }
        }
        stop_searching(w);
        ra__run_actor(w, a);
    }
    if (w->searching) {
        w->searching = false;
        atomic_fetch_sub(&rt->num_searching, 1);
    }
    ra__send_cache_drop(w);
    ra__tls_worker = NULL;
    return NULL;
}

int
ra__sched_start(ra_runtime_t *rt)
{
    void *mem = NULL;
    rt->wcap = rt->nworkers + RA__SPARE_MAX;
    if (posix_memalign(&mem, 64, sizeof(ra__worker_t) * rt->wcap) != 0) {
        return RA_ENOMEM;
    }
    rt->workers = mem;
    pthread_mutex_init(&rt->spare_mtx, NULL);
    atomic_init(&rt->nblocked, 0);
    atomic_init(&rt->nthreads, rt->nworkers);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (unsigned i = 0; i < rt->wcap; i++) {
        ra__worker_t *w = &rt->workers[i];
        *w = (ra__worker_t){.rt = rt, .index = (int)i};
        atomic_init(&w->head, 0);
        atomic_init(&w->tail, 0);
        w->rng = 0x9e3779b97f4a7c15ULL * (i + 1);
        pthread_mutex_init(&w->mtx, NULL);
        pthread_mutex_init(&w->inbox_mtx, NULL);
        pthread_cond_init(&w->cond, &ca);
    }
    pthread_condattr_destroy(&ca);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        int rc = pthread_create(&rt->workers[i].thread, NULL, worker_main,
                                &rt->workers[i]);
        if (rc != 0) {
            return -rc; // ra_runtime_destroy joins those started
        }
        pthread_mutex_lock(&rt->spare_mtx);
        rt->workers[i].started = true;
        pthread_mutex_unlock(&rt->spare_mtx);
    }
    return 0;
}

void
ra__sched_stop(ra_runtime_t *rt)
{
    if (rt->workers == NULL) {
        return;
    }
    // Under spare_mtx: no spare starts once stop is seen.
    pthread_mutex_lock(&rt->spare_mtx);
    atomic_store(&rt->stop, true);
    unsigned n = atomic_load(&rt->nthreads);
    pthread_mutex_unlock(&rt->spare_mtx);
    for (unsigned i = 0; i < n; i++) {
        ra__worker_wake(&rt->workers[i]);
    }
    for (unsigned i = 0; i < n; i++) {
        if (rt->workers[i].started) {
            pthread_join(rt->workers[i].thread, NULL);
        }
    }
    for (unsigned i = 0; i < rt->wcap; i++) {
        pthread_mutex_destroy(&rt->workers[i].mtx);
        pthread_mutex_destroy(&rt->workers[i].inbox_mtx);
        pthread_cond_destroy(&rt->workers[i].cond);
    }
    pthread_mutex_destroy(&rt->spare_mtx);
    free(rt->workers);
    rt->workers = NULL;
}

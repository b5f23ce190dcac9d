// runtime.c - the runtime object, the actor table and spawning.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "actor_impl.h"
#include "rayo.h"

const char *
ra_version(void)
{
    return RA_VERSION_STRING;
}

void
ra__deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

bool
ra__past(const struct timespec *ts)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > ts->tv_sec ||
           (now.tv_sec == ts->tv_sec && now.tv_nsec >= ts->tv_nsec);
}

ra__actor_t *
ra__actor_at(ra_runtime_t *rt, uint32_t id)
{
    uint32_t c = id >> RA__CHUNK_BITS;
    if (c >= RA__MAX_CHUNKS) {
        return NULL;
    }
    ra__actor_t *chunk = atomic_load_explicit(&rt->chunks[c],
                                              memory_order_acquire);
    return chunk == NULL ? NULL : &chunk[id & (RA__CHUNK - 1)];
}

// Takes a reference on the actor pid names, or returns NULL if it is not
// (or no longer) alive.
ra__actor_t *
ra__actor_get(ra_runtime_t *rt, ra_pid_t pid)
{
    if (pid.node != rt->node || pid.proc != rt->proc) {
        return NULL;
    }
    ra__actor_t *a = ra__actor_at(rt, pid.id);
    if (a == NULL) {
        return NULL;
    }
    uint64_t w = atomic_load_explicit(&a->word, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(w >> 32) != pid.gen || (w & RA__DEAD) != 0) {
            return NULL;
        }
        if (atomic_compare_exchange_weak_explicit(&a->word, &w, w + 1,
                                                  memory_order_acquire,
                                                  memory_order_acquire)) {
            return a;
        }
    }
}

// Takes a reference on whatever incarnation lives in slot id.
ra__actor_t *
ra__actor_get_any(ra_runtime_t *rt, uint32_t id)
{
    ra__actor_t *a = ra__actor_at(rt, id);
    if (a == NULL) {
        return NULL;
    }
    uint64_t w = atomic_load_explicit(&a->word, memory_order_acquire);
    for (;;) {
        if ((w & RA__DEAD) != 0) {
            return NULL;
        }
        if (atomic_compare_exchange_weak_explicit(&a->word, &w, w + 1,
                                                  memory_order_acquire,
                                                  memory_order_acquire)) {
            return a;
        }
    }
}

void
ra__actor_put(ra_runtime_t *rt, ra__actor_t *a)
{
    uint64_t old = atomic_fetch_sub_explicit(&a->word, 1,
                                             memory_order_acq_rel);
    if ((old & RA__REFS) == 1) {
        // Only a dead actor can lose its last reference: the runtime's own
        // is dropped after the dead bit is set.
        ra__actor_finalize(rt, a);
    }
}

ra_pid_t
ra__pid_of(ra_runtime_t *rt, ra__actor_t *a)
{
    uint64_t w = atomic_load_explicit(&a->word, memory_order_relaxed);
    return (ra_pid_t){rt->node, rt->proc, a->id, (uint32_t)(w >> 32)};
}

static int
grow_table(ra_runtime_t *rt)
{
    unsigned c = atomic_load(&rt->nchunks);
    if (c >= RA__MAX_CHUNKS) {
        return RA_ENOMEM;
    }
    ra__actor_t *chunk = calloc(RA__CHUNK, sizeof(*chunk));
    if (chunk == NULL) {
        return RA_ENOMEM;
    }
    // Every slot may be free at once later: size for all of them.
    size_t need = (size_t)(c + 1) * RA__CHUNK;
    if (need > rt->free_cap) {
        if (need < 2 * rt->free_cap) {
            need = 2 * rt->free_cap;   // grow geometrically
        }
        uint32_t *v = realloc(rt->free_ids, need * sizeof(*v));
        if (v == NULL) {
            free(chunk);
            return RA_ENOMEM;
        }
        rt->free_ids = v;
        rt->free_cap = need;
    }
    for (uint32_t i = 0; i < RA__CHUNK; i++) {
        uint32_t id = (c << RA__CHUNK_BITS) | i;
        chunk[i].id = id;
        atomic_init(&chunk[i].word, RA__DEAD);
        atomic_init(&chunk[i].sched, 0);
        atomic_flag_clear(&chunk[i].lock);
        atomic_init(&chunk[i].call_wait, 0);
        ra__mpsc_init(&chunk[i].mb.sys);
        ra__mpsc_init(&chunk[i].mb.user);
    }
    // Hand out low ids first; id 0 is never used, so a zeroed pid is nil.
    for (uint32_t i = RA__CHUNK; i-- > 0;) {
        uint32_t id = (c << RA__CHUNK_BITS) | i;
        if (id != 0) {
            rt->free_ids[rt->nfree++] = id;
        }
    }
    atomic_store_explicit(&rt->chunks[c], chunk, memory_order_release);
    atomic_store(&rt->nchunks, c + 1);
    return 0;
}

// The calling thread's worker, if it belongs to rt.
static ra__worker_t *
my_worker(ra_runtime_t *rt)
{
    ra__worker_t *w = ra__tls_worker;
    return w != NULL && w->rt == rt ? w : NULL;
}

static int
alloc_slot(ra_runtime_t *rt, ra__actor_t **out)
{
    ra__worker_t *w = my_worker(rt);
    if (w != NULL && w->nfree_ids > 0) {
        *out = ra__actor_at(rt, w->free_ids[--w->nfree_ids]);
        return 0;
    }
    int rc = 0;
    pthread_mutex_lock(&rt->table_mtx);
    if (rt->nfree == 0) {
        rc = grow_table(rt);
    }
    if (rc == 0) {
        *out = ra__actor_at(rt, rt->free_ids[--rt->nfree]);
        // Take a handful more for this worker's next spawns.
        while (w != NULL && rt->nfree > 0 &&
               w->nfree_ids < RA__IDCACHE / 2) {
            w->free_ids[w->nfree_ids++] = rt->free_ids[--rt->nfree];
        }
    }
    pthread_mutex_unlock(&rt->table_mtx);
    return rc;
}

static void
free_slot(ra_runtime_t *rt, uint32_t id)
{
    ra__worker_t *w = my_worker(rt);
    if (w != NULL && w->nfree_ids < RA__IDCACHE) {
        w->free_ids[w->nfree_ids++] = id;
        return;
    }
    pthread_mutex_lock(&rt->table_mtx);
    rt->free_ids[rt->nfree++] = id; // never exceeds free_cap
    if (w != NULL) {
        // Give half of this worker's cache back for others to use.
        while (w->nfree_ids > RA__IDCACHE / 2) {
            rt->free_ids[rt->nfree++] = w->free_ids[--w->nfree_ids];
        }
    }
    pthread_mutex_unlock(&rt->table_mtx);
}

// Called when the last reference to a dead actor goes: frees what it holds
// and recycles the slot under the next generation.
void
ra__actor_finalize(ra_runtime_t *rt, ra__actor_t *a)
{
    ra__mailbox_fini(&a->mb);
    free(a->links.v);
    free(a->monitors.v);
    free(a->watching.v);
    memset(&a->links, 0, sizeof(a->links));
    memset(&a->monitors, 0, sizeof(a->monitors));
    memset(&a->watching, 0, sizeof(a->watching));
    if (a->call_reply != NULL) {
        ra_msg_unref(&a->call_reply);
    }
    a->beh = NULL;
    a->state = NULL;
    if (a->scope != NULL) {
        pthread_mutex_destroy(&a->scope->mtx);
        pthread_cond_destroy(&a->scope->cond);
        free(a->scope);
        a->scope = NULL;
    }
    atomic_store_explicit(&a->flags, 0, memory_order_relaxed);
    uint64_t w = atomic_load(&a->word);
    bool reserved = atomic_load(&a->reserved) != RA__SLOT_FREE;
    uint32_t gen = (uint32_t)(w >> 32);
    if (!reserved && ++gen == 0) {
        gen = 1;
    }
    atomic_store(&a->sched, 0);
    atomic_store_explicit(&a->word, ((uint64_t)gen << 32) | RA__DEAD,
                          memory_order_release);
    if (reserved) {
        // The next incarnation may be made now (ra__spawn_reserved).
        atomic_store_explicit(&a->reserved, RA__SLOT_IDLE,
                              memory_order_release);
    } else {
        free_slot(rt, a->id);
    }
    if (atomic_fetch_sub(&rt->live, 1) == 1 && atomic_load(&rt->closing)) {
        pthread_mutex_lock(&rt->live_mtx);
        pthread_cond_broadcast(&rt->live_cond);
        pthread_mutex_unlock(&rt->live_mtx);
    }
}

static int create_in(ra_runtime_t *rt, ra__actor_t *a,
                     const ra_behaviour_t *b, void *arg,
                     const ra_spawn_opts_t *opts, ra__scope_t *scope);

// take_slot takes a free slot, unless rt is closing.
static int
take_slot(ra_runtime_t *rt, ra__actor_t **out)
{
    return atomic_load(&rt->closing) ? RA_ECLOSED : alloc_slot(rt, out);
}

// Takes a free slot and prepares an actor of b in it (create_in).
int
ra__actor_create(ra_runtime_t *rt, const ra_behaviour_t *b, void *arg,
                 const ra_spawn_opts_t *opts, ra__scope_t *scope,
                 ra__actor_t **out)
{
    ra__actor_t *a = NULL;
    int rc = take_slot(rt, &a);
    if (rc != 0) {
        return rc;
    }
    if ((rc = create_in(rt, a, b, arg, opts, scope)) != 0) {
        free_slot(rt, a->id);
        return rc;
    }
    *out = a;
    return 0;
}

int
ra__slot_reserve(ra_runtime_t *rt, uint32_t *id)
{
    if (rt == NULL || id == NULL) {
        return RA_EINVAL;
    }
    ra__actor_t *a = NULL;
    int rc = take_slot(rt, &a);
    if (rc != 0) {
        return rc;
    }
    // (Its word stays dead: nothing reaches it before an incarnation.)
    atomic_store_explicit(&a->reserved, RA__SLOT_IDLE, memory_order_release);
    *id = a->id;
    return 0;
}

// ra__actor_create_reserved makes the next incarnation in reserved slot
// id, waiting up to wait_ms for the last one to be finalized.
int
ra__actor_create_reserved(ra_runtime_t *rt, uint32_t id,
                          const ra_behaviour_t *b, void *arg,
                          const ra_spawn_opts_t *opts, unsigned wait_ms,
                          ra__actor_t **out)
{
    ra__actor_t *a = ra__actor_at(rt, id);
    if (a == NULL || id == 0 ||
        atomic_load(&a->reserved) == RA__SLOT_FREE) {
        return RA_EINVAL;
    }
    struct timespec dl;
    ra__deadline(&dl, wait_ms);
    for (bool waited = false;; waited = true) {
        if (atomic_load(&rt->closing)) {
            return RA_ECLOSED;
        }
        unsigned char idle = RA__SLOT_IDLE;
        if (atomic_compare_exchange_strong(&a->reserved, &idle,
                                           RA__SLOT_BUSY)) {
            break;
        }
        if (ra__past(&dl)) {
            return RA_EAGAIN;
        }
        ra__worker_t *w = ra__tls_worker;
        if (!waited && w != NULL && w->rt == rt) {
            // On a scheduler thread: what this one holds (a reference in
            // its send cache) or would run next must not wait with it.
            ra__send_cache_drop(w);
            ra__sched_blocking();
        }
        // The ended incarnation is still referenced (a sender mid-way):
        // that lasts microseconds.
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    int rc = create_in(rt, a, b, arg, opts, NULL);
    if (rc != 0) {
        atomic_store(&a->reserved, RA__SLOT_IDLE);
        return rc;
    }
    *out = a;
    return 0;
}

// create_in prepares a fresh actor of b in slot a (taken, dead,
// unreferenced); it is not visible to senders until its word is
// published.  Returns with sched = 1 (as if running), so messages sent
// during init do not schedule it before init has finished.
static int
create_in(ra_runtime_t *rt, ra__actor_t *a, const ra_behaviour_t *b,
          void *arg, const ra_spawn_opts_t *opts, ra__scope_t *scope)
{
    size_t cap = opts != NULL ? opts->mailbox_cap : 0;
    ra_full_policy_t pol = opts != NULL ? opts->full_policy : RA_FULL_FAIL;
    int rc = ra__mailbox_init(&a->mb, cap, pol);
    if (rc != 0) {
        ra__mailbox_fini(&a->mb);
        return rc;
    }
    a->beh = b;
    a->state = arg;
    unsigned flags = scope != NULL ? RA__F_SCOPE : 0;
    if (opts != NULL && (opts->flags & RA_SPAWN_TRAP_EXIT)) {
        flags |= RA__F_TRAP;
    }
    atomic_store_explicit(&a->flags, flags, memory_order_relaxed);
    a->scope = scope;
    a->exit_reason = RA_NORMAL;
    a->exiting = false;
    atomic_store(&a->call_worker, -1);
    a->call_err = 0;
    a->call_reply = NULL;
    a->runq_next = NULL;
    atomic_store_explicit(&a->last_w, -1, memory_order_relaxed);
    atomic_store_explicit(&a->last_w_streak, 0, memory_order_relaxed);
    atomic_store(&a->call_wait, 0);
    atomic_store(&a->sched, 1);
    atomic_fetch_add(&rt->live, 1);
    uint64_t w = atomic_load(&a->word);
    atomic_store_explicit(&a->word, (w & ~(RA__DEAD | RA__REFS)) | 1,
                          memory_order_release);
    return 0;
}

int
ra_runtime_new(ra_runtime_t **out, const ra_runtime_opts_t *opts)
{
    if (out == NULL) {
        return RA_EINVAL;
    }
    ra_runtime_opts_t o = {0};
    if (opts != NULL) {
        o = *opts;
    }
    if (o.threads > 1024) {
        return RA_EINVAL;
    }
    if (o.threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.threads = n > 0 ? (unsigned)n : 1;
    }
    if (o.quantum == 0) {
        o.quantum = 64;
    }
    if (o.spin == 0) {
        o.spin = 20;
    }
    ra_runtime_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL) {
        return RA_ENOMEM;
    }
    rt->nworkers = o.threads;
    rt->quantum = o.quantum;
    rt->spin = o.spin;
    rt->node = o.node;
    rt->proc = o.proc;
    pthread_mutex_init(&rt->table_mtx, NULL);
    pthread_mutex_init(&rt->inj_mtx, NULL);
    pthread_mutex_init(&rt->idle_mtx, NULL);
    pthread_mutex_init(&rt->live_mtx, NULL);
    pthread_mutex_init(&rt->root_mtx, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rt->live_cond, &ca);
    pthread_condattr_destroy(&ca);
    int rc = ra__timers_start(rt);
    if (rc == 0) {
        rc = ra__sched_start(rt);
    }
    if (rc != 0) {
        ra_runtime_destroy(&rt);
        return rc;
    }
    *out = rt;
    return 0;
}

unsigned
ra_runtime_threads(const ra_runtime_t *rt)
{
    return rt->nworkers;
}

size_t
ra_runtime_actor_count(const ra_runtime_t *rt)
{
    return atomic_load(&((ra_runtime_t *)rt)->live);
}

void ra__scope_end(ra_runtime_t *rt, ra__scope_t *s);

// Asks every live actor to end with RA_SHUTDOWN and ends open scopes.
static void
shutdown_actors(ra_runtime_t *rt)
{
    pthread_mutex_lock(&rt->table_mtx);
    ra__scope_t *s;
    while ((s = rt->scopes) != NULL) {
        rt->scopes = s->next;
        pthread_mutex_unlock(&rt->table_mtx);
        ra__scope_end(rt, s);
        pthread_mutex_lock(&rt->table_mtx);
    }
    pthread_mutex_unlock(&rt->table_mtx);
    unsigned nc = atomic_load(&rt->nchunks);
    for (uint32_t id = 1; id < nc * RA__CHUNK; id++) {
        ra__actor_t *a = ra__actor_get_any(rt, id);
        if (a == NULL) {
            continue;
        }
        if (a->scope == NULL) {
            ra_msg_t *m = ra__msg_new_signal(RA_MSG_SIGNAL, RA__SIG_SHUTDOWN,
                                             RA_PID_NIL, RA_SHUTDOWN, 0);
            if (m != NULL &&
                ra__deliver_to(rt, a, &m, RA_PID_NIL, 0, true) != 0) {
                ra_msg_unref(&m);
            }
        }
        ra__actor_put(rt, a);
    }
}

void
ra_runtime_destroy(ra_runtime_t **rtp)
{
    if (rtp == NULL || *rtp == NULL) {
        return;
    }
    ra_runtime_t *rt = *rtp;
    atomic_store(&rt->closing, true);
    if (rt->workers != NULL) {
        // Repeat: an actor's terminate may race with the sweep.
        while (atomic_load(&rt->live) > 0) {
            shutdown_actors(rt);
            struct timespec dl;
            ra__deadline(&dl, 50);
            pthread_mutex_lock(&rt->live_mtx);
            if (atomic_load(&rt->live) > 0) {
                pthread_cond_timedwait(&rt->live_cond, &rt->live_mtx, &dl);
            }
            pthread_mutex_unlock(&rt->live_mtx);
        }
    }
    ra__sched_stop(rt);
    ra__timers_stop(rt);
    if (rt->registry_free != NULL) {
        rt->registry_free(rt);
    }
    unsigned nc = atomic_load(&rt->nchunks);
    for (unsigned c = 0; c < nc; c++) {
        ra__actor_t *chunk = atomic_load(&rt->chunks[c]);
        for (unsigned i = 0; i < RA__CHUNK; i++) {
            ra__mailbox_fini(&chunk[i].mb);
        }
        free(chunk);
    }
    free(rt->free_ids);
    pthread_mutex_destroy(&rt->table_mtx);
    pthread_mutex_destroy(&rt->inj_mtx);
    pthread_mutex_destroy(&rt->idle_mtx);
    pthread_mutex_destroy(&rt->live_mtx);
    pthread_mutex_destroy(&rt->root_mtx);
    pthread_cond_destroy(&rt->live_cond);
    // Cleared only now: until the threads are joined, actors ending in the
    // sweep may read the caller's pointer (the cluster's c->rt, read by
    // ra__gcs_call from the core's thread), and a store to it then was a
    // data race (TSan, check_cluster, 2026-11-29).
    *rtp = NULL;
    free(rt);
}

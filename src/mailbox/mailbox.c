// mailbox.c - lock-free MPSC lanes, bounds and full-mailbox policies.
#include <stdlib.h>

#include "mailbox_impl.h"
#include "ra_error.h"

void
ra__mpsc_init(ra__mpsc_t *q)
{
    atomic_init(&q->stub.next, NULL);
    atomic_init(&q->head, &q->stub);
    atomic_init(&q->tail, &q->stub);
}

void
ra__mpsc_push(ra__mpsc_t *q, ra__qnode_t *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    // The exchange orders producers; until prev->next is stored the consumer
    // sees a short gap and reports "empty for now" (see nonempty).
    ra__qnode_t *prev = atomic_exchange_explicit(&q->head, n,
                                                 memory_order_seq_cst);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

ra__qnode_t *
ra__mpsc_pop(ra__mpsc_t *q)
{
    ra__qnode_t *tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    ra__qnode_t *next = atomic_load_explicit(&tail->next,
                                             memory_order_acquire);
    if (tail == &q->stub) {
        if (next == NULL) {
            return NULL;
        }
        atomic_store_explicit(&q->tail, next, memory_order_relaxed);
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next != NULL) {
        atomic_store_explicit(&q->tail, next, memory_order_relaxed);
        // The next message is popped right after this one is handled:
        // start bringing it in now (a long backlog is far out of cache).
        __builtin_prefetch(next, 1);
        return tail;
    }
    ra__qnode_t *head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail != head) {
        return NULL; // a producer is between its exchange and its link
    }
    ra__mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        atomic_store_explicit(&q->tail, next, memory_order_relaxed);
        return tail;
    }
    return NULL;
}

bool
ra__mpsc_nonempty(ra__mpsc_t *q)
{
    return atomic_load_explicit(&q->tail, memory_order_relaxed) !=
               &q->stub ||
           atomic_load_explicit(&q->head, memory_order_seq_cst) != &q->stub;
}

int
ra__mailbox_init(ra_mailbox_t *mb, size_t cap, ra_full_policy_t policy)
{
    ra__mpsc_init(&mb->sys);
    ra__mpsc_init(&mb->user);
    mb->cap = cap;
    atomic_init(&mb->count, 0);
    atomic_init(&mb->dropped, 0);
    atomic_init(&mb->closed, false);
    mb->policy = (uint8_t)policy;
    mb->wait = NULL;
    if (cap > 0 && policy == RA_FULL_BLOCK) {
        mb->wait = malloc(sizeof(*mb->wait));
        if (mb->wait == NULL) {
            return RA_ENOMEM;
        }
        pthread_mutex_init(&mb->wait->mtx, NULL);
        pthread_cond_init(&mb->wait->cond, NULL);
        atomic_init(&mb->wait->waiters, 0);
    }
    return 0;
}

static void
drain(ra_mailbox_t *mb)
{
    bool sys;
    ra__env_t *e;
    while ((e = ra__mailbox_pop_env(mb, &sys)) != NULL) {
        ra_msg_t *m = ra__env_msg(e);
        ra__env_release(e);
        ra_msg_unref(&m);
    }
}

void
ra__mailbox_fini(ra_mailbox_t *mb)
{
    drain(mb);
    if (mb->wait != NULL) {
        pthread_mutex_destroy(&mb->wait->mtx);
        pthread_cond_destroy(&mb->wait->cond);
        free(mb->wait);
        mb->wait = NULL;
    }
}

int
ra__mailbox_reset(ra_mailbox_t *mb, size_t cap, ra_full_policy_t policy)
{
    ra__mailbox_fini(mb);
    return ra__mailbox_init(mb, cap, policy);
}

int
ra_mailbox_new(ra_mailbox_t **out, size_t cap, ra_full_policy_t policy)
{
    if (out == NULL || policy > RA_FULL_BLOCK) {
        return RA_EINVAL;
    }
    ra_mailbox_t *mb = malloc(sizeof(*mb));
    if (mb == NULL) {
        return RA_ENOMEM;
    }
    int rc = ra__mailbox_init(mb, cap, policy);
    if (rc != 0) {
        ra_mailbox_destroy(&mb);
        return rc;
    }
    *out = mb;
    return 0;
}

void
ra_mailbox_destroy(ra_mailbox_t **mb)
{
    if (mb == NULL || *mb == NULL) {
        return;
    }
    ra__mailbox_fini(*mb);
    free(*mb);
    *mb = NULL;
}

// Waits for room in a full RA_FULL_BLOCK mailbox.  The waiter count is
// raised before the bound is re-checked under the mutex, and the consumer
// lowers count before reading waiters, so one of the two always sees the
// other (no lost wake-up).
static int
wait_for_room(ra_mailbox_t *mb)
{
    ra__mbwait_t *w = mb->wait;
    pthread_mutex_lock(&w->mtx);
    atomic_fetch_add(&w->waiters, 1);
    while (atomic_load(&mb->count) >= mb->cap && !atomic_load(&mb->closed)) {
        pthread_cond_wait(&w->cond, &w->mtx);
    }
    atomic_fetch_sub(&w->waiters, 1);
    pthread_mutex_unlock(&w->mtx);
    return atomic_load(&mb->closed) ? RA_ECLOSED : 0;
}

// Takes one place in a bounded user lane.  A CAS loop, not add-then-undo,
// so that count never exceeds cap, even for a moment.
static bool
reserve(ra_mailbox_t *mb)
{
    size_t c = atomic_load_explicit(&mb->count, memory_order_relaxed);
    do {
        if (c >= mb->cap) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&mb->count, &c, c + 1));
    return true;
}

int
ra__mailbox_push_env(ra_mailbox_t *mb, ra__env_t *env, bool system,
                     bool may_block)
{
    if (atomic_load_explicit(&mb->closed, memory_order_relaxed)) {
        ra__env_release(env);
        return RA_ECLOSED;
    }
    if (system) {
        ra__mpsc_push(&mb->sys, &env->node);
        return 0;
    }
    while (mb->cap > 0 && !reserve(mb)) {
        if (mb->policy == RA_FULL_DROP) {
            atomic_fetch_add(&mb->dropped, 1);
            ra_msg_t *m = ra__env_msg(env);
            ra__env_release(env);
            ra_msg_unref(&m);
            return 0;
        }
        int rc = RA_EFULL;
        if (mb->policy == RA_FULL_BLOCK && may_block) {
            rc = wait_for_room(mb);
        }
        if (rc != 0) {
            ra__env_release(env);
            return rc;
        }
    }
    ra__mpsc_push(&mb->user, &env->node);
    return 0;
}

ra__env_t *
ra__mailbox_pop_env(ra_mailbox_t *mb, bool *system)
{
    ra__qnode_t *n = ra__mpsc_pop(&mb->sys);
    if (n != NULL) {
        *system = true;
        return (ra__env_t *)n;
    }
    n = ra__mpsc_pop(&mb->user);
    if (n == NULL) {
        return NULL;
    }
    *system = false;
    if (mb->cap > 0) {
        atomic_fetch_sub(&mb->count, 1);
        if (mb->wait != NULL && atomic_load(&mb->wait->waiters) > 0) {
            // One place freed: one sender may take it.
            pthread_mutex_lock(&mb->wait->mtx);
            pthread_cond_signal(&mb->wait->cond);
            pthread_mutex_unlock(&mb->wait->mtx);
        }
    }
    return (ra__env_t *)n;
}

bool
ra__mailbox_nonempty(ra_mailbox_t *mb)
{
    return ra__mpsc_nonempty(&mb->sys) || ra__mpsc_nonempty(&mb->user);
}

static int
push_msg(ra_mailbox_t *mb, ra_msg_t **msg, bool system)
{
    if (mb == NULL || msg == NULL || *msg == NULL) {
        return RA_EINVAL;
    }
    ra__env_t *e = ra__env_claim(*msg);
    if (e == NULL) {
        return RA_ENOMEM;
    }
    ra__env_set(e, RA_PID_NIL, 0);
    int rc = ra__mailbox_push_env(mb, e, system, true);
    if (rc == 0) {
        *msg = NULL;
    }
    return rc;
}

int
ra_mailbox_push(ra_mailbox_t *mb, ra_msg_t **msg)
{
    return push_msg(mb, msg, false);
}

int
ra_mailbox_push_system(ra_mailbox_t *mb, ra_msg_t **msg)
{
    return push_msg(mb, msg, true);
}

int
ra_mailbox_pop(ra_mailbox_t *mb, ra_msg_t **out)
{
    bool sys;
    ra__env_t *e = ra__mailbox_pop_env(mb, &sys);
    if (e == NULL) {
        return RA_EAGAIN;
    }
    *out = ra__env_msg(e);
    ra__env_release(e);
    return 0;
}

void
ra_mailbox_close(ra_mailbox_t *mb)
{
    atomic_store(&mb->closed, true);
    if (mb->wait != NULL) {
        pthread_mutex_lock(&mb->wait->mtx);
        pthread_cond_broadcast(&mb->wait->cond);
        pthread_mutex_unlock(&mb->wait->mtx);
    }
}

size_t
ra_mailbox_size(const ra_mailbox_t *mb)
{
    return atomic_load(&((ra_mailbox_t *)mb)->count);
}

uint64_t
ra_mailbox_dropped(const ra_mailbox_t *mb)
{
    return atomic_load(&((ra_mailbox_t *)mb)->dropped);
}

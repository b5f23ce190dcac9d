// timer.c - send_after and cancel: one timer thread per runtime.
//
// Timers live in a slot array (index + generation, so a stale reference
// cannot cancel a newer timer) and a binary min-heap of slot indices ordered
// by deadline.  Everything is under one mutex: timers are far rarer than
// messages, and the thread sleeps on a condition variable until the
// earliest deadline.
#include <stdlib.h>
#include <time.h>

#include "actor_impl.h"

typedef struct tslot {
    struct timespec when;
    ra_pid_t to;
    ra_msg_t *msg;
    uint32_t gen;
    uint32_t heap_pos; // UINT32_MAX when not pending
    uint32_t next_free;
} tslot_t;

struct ra__timers {
    pthread_mutex_t mtx;
    pthread_cond_t cond;
    pthread_t thread;
    bool started;
    bool stop;
    tslot_t *slots;
    uint32_t nslots, cap;
    uint32_t free_head; // UINT32_MAX: none
    uint32_t *heap;
    uint32_t nheap;
};

#define NONE UINT32_MAX

static bool
before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec ||
           (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void
heap_set(ra__timers_t *t, uint32_t pos, uint32_t ix)
{
    t->heap[pos] = ix;
    t->slots[ix].heap_pos = pos;
}

static void
sift_up(ra__timers_t *t, uint32_t pos)
{
    uint32_t ix = t->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!before(&t->slots[ix].when, &t->slots[t->heap[parent]].when)) {
            break;
        }
        heap_set(t, pos, t->heap[parent]);
        pos = parent;
    }
    heap_set(t, pos, ix);
}

static void
sift_down(ra__timers_t *t, uint32_t pos)
{
    uint32_t ix = t->heap[pos];
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= t->nheap) {
            break;
        }
        if (c + 1 < t->nheap &&
            before(&t->slots[t->heap[c + 1]].when, &t->slots[t->heap[c]].when)) {
            c++;
        }
        if (!before(&t->slots[t->heap[c]].when, &t->slots[ix].when)) {
            break;
        }
        heap_set(t, pos, t->heap[c]);
        pos = c;
    }
    heap_set(t, pos, ix);
}

static void
heap_remove(ra__timers_t *t, uint32_t pos)
{
    uint32_t ix = t->heap[pos];
    t->slots[ix].heap_pos = NONE;
    t->nheap--;
    if (pos < t->nheap) {
        heap_set(t, pos, t->heap[t->nheap]);
        sift_down(t, pos);
        sift_up(t, pos);
    }
}

static void
free_tslot(ra__timers_t *t, uint32_t ix)
{
    tslot_t *s = &t->slots[ix];
    s->gen++;
    s->msg = NULL;
    s->next_free = t->free_head;
    t->free_head = ix;
}

static void *
timer_main(void *arg)
{
    ra_runtime_t *rt = arg;
    ra__timers_t *t = rt->timers;
    pthread_mutex_lock(&t->mtx);
    while (!t->stop) {
        if (t->nheap == 0) {
            pthread_cond_wait(&t->cond, &t->mtx);
            continue;
        }
        uint32_t ix = t->heap[0];
        if (!ra__past(&t->slots[ix].when)) {
            struct timespec when = t->slots[ix].when;
            pthread_cond_timedwait(&t->cond, &t->mtx, &when);
            continue;
        }
        heap_remove(t, 0);
        ra_msg_t *m = t->slots[ix].msg;
        ra_pid_t to = t->slots[ix].to;
        free_tslot(t, ix);
        pthread_mutex_unlock(&t->mtx);
        // Deliver outside the lock: a full RA_FULL_BLOCK mailbox may block.
        if (ra__deliver(rt, to, &m, RA_PID_NIL, 0, false) != 0) {
            ra_msg_unref(&m); // the receiver is gone: dropped, as in Erlang
        }
        pthread_mutex_lock(&t->mtx);
    }
    pthread_mutex_unlock(&t->mtx);
    return NULL;
}

int
ra__timers_start(ra_runtime_t *rt)
{
    ra__timers_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_init(&t->mtx, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    t->free_head = NONE;
    rt->timers = t;
    int rc = pthread_create(&t->thread, NULL, timer_main, rt);
    if (rc != 0) {
        return -rc;
    }
    t->started = true;
    return 0;
}

void
ra__timers_stop(ra_runtime_t *rt)
{
    ra__timers_t *t = rt->timers;
    if (t == NULL) {
        return;
    }
    if (t->started) {
        pthread_mutex_lock(&t->mtx);
        t->stop = true;
        pthread_cond_signal(&t->cond);
        pthread_mutex_unlock(&t->mtx);
        pthread_join(t->thread, NULL);
    }
    for (uint32_t i = 0; i < t->nheap; i++) {
        ra_msg_unref(&t->slots[t->heap[i]].msg);
    }
    free(t->slots);
    free(t->heap);
    pthread_mutex_destroy(&t->mtx);
    pthread_cond_destroy(&t->cond);
    free(t);
    rt->timers = NULL;
}

static int
grow(ra__timers_t *t)
{
    uint32_t cap = t->cap ? t->cap * 2 : 64;
    tslot_t *s = realloc(t->slots, cap * sizeof(*s));
    if (s == NULL) {
        return RA_ENOMEM;
    }
    t->slots = s;
    uint32_t *h = realloc(t->heap, cap * sizeof(*h));
    if (h == NULL) {
        return RA_ENOMEM;
    }
    t->heap = h;
    for (uint32_t i = t->cap; i < cap; i++) {
        t->slots[i].gen = 1;
        t->slots[i].heap_pos = NONE;
        t->slots[i].msg = NULL;
    }
    // Push the new slots on the free list, lowest first.
    for (uint32_t i = cap; i-- > t->cap;) {
        t->slots[i].next_free = t->free_head;
        t->free_head = i;
    }
    t->cap = cap;
    return 0;
}

int
ra_send_after(ra_runtime_t *rt, ra_pid_t to, uint64_t delay_ms,
              ra_msg_t **msg, uint64_t *tref)
{
    if (rt == NULL || msg == NULL || *msg == NULL ||
        delay_ms > (uint64_t)INT64_MAX / 2) {
        return RA_EINVAL;
    }
    if (atomic_load(&rt->closing)) {
        return RA_ECLOSED;
    }
    ra__timers_t *t = rt->timers;
    pthread_mutex_lock(&t->mtx);
    if (t->free_head == NONE && grow(t) != 0) {
        pthread_mutex_unlock(&t->mtx);
        return RA_ENOMEM;
    }
    uint32_t ix = t->free_head;
    tslot_t *s = &t->slots[ix];
    t->free_head = s->next_free;
    ra__deadline(&s->when, (int64_t)delay_ms);
    s->to = to;
    s->msg = *msg;
    *msg = NULL;
    t->heap[t->nheap] = ix;
    s->heap_pos = t->nheap++;
    sift_up(t, s->heap_pos);
    if (tref != NULL) {
        *tref = ((uint64_t)s->gen << 32) | ix;
    }
    if (t->heap[0] == ix) {
        pthread_cond_signal(&t->cond);
    }
    pthread_mutex_unlock(&t->mtx);
    return 0;
}

int
ra_timer_cancel(ra_runtime_t *rt, uint64_t tref)
{
    if (rt == NULL) {
        return RA_EINVAL;
    }
    ra__timers_t *t = rt->timers;
    uint32_t ix = (uint32_t)tref;
    uint32_t gen = (uint32_t)(tref >> 32);
    ra_msg_t *m = NULL;
    pthread_mutex_lock(&t->mtx);
    if (ix < t->cap && t->slots[ix].gen == gen &&
        t->slots[ix].heap_pos != NONE) {
        m = t->slots[ix].msg;
        heap_remove(t, t->slots[ix].heap_pos);
        free_tslot(t, ix);
    }
    pthread_mutex_unlock(&t->mtx);
    if (m == NULL) {
        return RA_ENOENT;
    }
    ra_msg_unref(&m);
    return 0;
}

// pool.c - a slab allocator for small messages.
//
// Most messages are small and short-lived, and a burst of a million of them
// costs more in page faults than in work when each comes from malloc
// (glibc's per-thread arenas grow a page at a time).  Small messages
// therefore come from 128-byte blocks carved from 4 MiB regions that ask for
// transparent huge pages.  Each thread keeps a private free list; blocks
// freed by a consumer thread flow back to producers in batches of 256
// through one mutex-protected stack, so the mutex is taken once per 256
// messages at most.  Regions are never returned to the system (like
// Erlang's carriers); a process that once had a million small messages
// queued keeps that memory for reuse.
//
// Sanitizer builds (RA_NO_POOL) and runs with RAYO_NO_POOL=1 in the
// environment use malloc instead, so ASan and valgrind see every message.
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mailbox_impl.h"

#define BATCH 256
#define REGION (4u << 20)

typedef struct fblock {
    struct fblock *next;       // within a list
    struct fblock *next_batch; // first block of a batch: the next batch
} fblock_t;

// Global: the shared stack of batches and the carving region, under mtx.
static struct {
    pthread_mutex_t mtx;
    fblock_t *batches;
    char *cur, *end;
} pool = {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL};

typedef struct tcache {
    fblock_t *list;
    unsigned n;
    fblock_t *spill; // frees beyond 2 * BATCH collect here
    unsigned spill_n;
    bool registered;
} tcache_t;

static _Thread_local tcache_t tc;

// Global: set once under init_once.
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static bool disabled;

static void
push_batch(fblock_t *first)
{
    pthread_mutex_lock(&pool.mtx);
    first->next_batch = pool.batches;
    pool.batches = first;
    pthread_mutex_unlock(&pool.mtx);
}

// Returns a dying thread's blocks to the shared stack.
static void
thread_exit(void *arg)
{
    tcache_t *c = arg;
    if (c->list != NULL) {
        push_batch(c->list);
    }
    if (c->spill != NULL) {
        push_batch(c->spill);
    }
    memset(c, 0, sizeof(*c));
}

static void
init(void)
{
#ifdef RA_NO_POOL
    disabled = true;
#else
    const char *e = getenv("RAYO_NO_POOL");
    disabled = e != NULL && *e != '\0' && *e != '0';
#endif
    pthread_key_create(&exit_key, thread_exit);
}

static bool
carve(void)
{
    if (pool.cur == NULL || (size_t)(pool.end - pool.cur) < BATCH * RA__POOL_BLOCK) {
        void *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            return false;
        }
#ifdef MADV_HUGEPAGE
        madvise(p, REGION, MADV_HUGEPAGE);
#endif
        pool.cur = p;
        pool.end = (char *)p + REGION;
    }
    fblock_t *list = NULL;
    for (unsigned i = 0; i < BATCH; i++) {
        fblock_t *b = (fblock_t *)(pool.cur + (size_t)i * RA__POOL_BLOCK);
        b->next = list;
        list = b;
    }
    pool.cur += (size_t)BATCH * RA__POOL_BLOCK;
    tc.list = list;
    tc.n = BATCH;
    return true;
}

static void *
refill(void)
{
    pthread_once(&init_once, init);
    if (disabled) {
        return malloc(RA__POOL_BLOCK);
    }
    if (!tc.registered) {
        tc.registered = true;
        pthread_setspecific(exit_key, &tc);
    }
    if (tc.spill != NULL) {
        tc.list = tc.spill;
        tc.n = tc.spill_n;
        tc.spill = NULL;
        tc.spill_n = 0;
    } else {
        pthread_mutex_lock(&pool.mtx);
        fblock_t *b = pool.batches;
        if (b != NULL) {
            pool.batches = b->next_batch;
            tc.list = b;
            tc.n = BATCH; // an estimate: lists may be shorter
        } else if (!carve()) {
            pthread_mutex_unlock(&pool.mtx);
            return NULL;
        }
        pthread_mutex_unlock(&pool.mtx);
    }
    fblock_t *b = tc.list;
    tc.list = b->next;
    tc.n = tc.n > 0 ? tc.n - 1 : 0;
    return b;
}

void *
ra__pool_alloc(void)
{
    fblock_t *b = tc.list;
    if (b != NULL) {
        tc.list = b->next;
        tc.n--;
        return b;
    }
    return refill();
}

void
ra__pool_free(void *p)
{
    if (disabled) {
        free(p);
        return;
    }
    fblock_t *b = p;
    if (!tc.registered) {
        pthread_once(&init_once, init);
        tc.registered = true;
        pthread_setspecific(exit_key, &tc);
    }
    if (tc.n < 2 * BATCH) {
        b->next = tc.list;
        tc.list = b;
        tc.n++;
        return;
    }
    b->next = tc.spill;
    tc.spill = b;
    if (++tc.spill_n == BATCH) {
        push_batch(tc.spill);
        tc.spill = NULL;
        tc.spill_n = 0;
    }
}

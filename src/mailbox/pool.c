// pool.c - slab allocators for small messages.
//
// Most messages are small and short-lived, and a burst of a million of them
// costs more in page faults than in work when each comes from malloc
// (glibc's per-thread arenas grow a page at a time).  Small messages
// therefore come from 64- or 128-byte blocks carved from 4 MiB regions that
// ask for transparent huge pages and are faulted in whole when mapped.  A
// process that sends few messages and must start fast (a cluster's worker)
// calls ra__pool_start_small: its first region of a class is then 64 KiB
// and each next one twice the last, up to 4 MiB, so that it does not pay
// for zeroing 4 MiB per class at start (about 10 ms on virtual machines
// with slow page faults).  Small regions get no huge pages, which costs a
// busy process TLB misses (fork_join of `rayo bench actor` ran about 10%
// slower with them): the others keep 4 MiB from the first.  Each thread keeps a private free list; blocks
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

#ifdef MADV_POPULATE_WRITE
#define RA_MADV_POPULATE_WRITE MADV_POPULATE_WRITE
#else
#define RA_MADV_POPULATE_WRITE 23 // Linux's value; older headers lack it
#endif

#define BATCH 256
// Blocks a thread keeps before giving batches back: enough to absorb a burst
// of a few thousand messages without blocks changing cores.
#define KEEP (16 * BATCH)
#define REGION_MIN (64u << 10)
#define REGION_MAX (4u << 20)
#define HUGE_MIN (2u << 20) // regions this large ask for huge pages

static size_t first_region = REGION_MAX;

void
ra__pool_start_small(void)
{
    first_region = REGION_MIN;
}

typedef struct fblock {
    struct fblock *next;       // within a list
    struct fblock *next_batch; // first block of a batch: the next batch
    size_t count;              // first block of a batch: blocks in it
} fblock_t;

static const size_t block_size[RA__POOL_CLASSES + 1] = {0, 64, 128};

// Global: per class, the shared stack of batches and the carving region,
// under mtx.
typedef struct shared {
    pthread_mutex_t mtx;
    fblock_t *batches;
    char *cur, *end;
    size_t next_region;        // bytes of the next region (0: first_region)
} shared_t;

static shared_t pools[RA__POOL_CLASSES + 1] = {
    {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL, 0},
    {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL, 0},
    {PTHREAD_MUTEX_INITIALIZER, NULL, NULL, NULL, 0},
};

typedef struct tcache {
    fblock_t *list;
    unsigned n;
    fblock_t *spill; // frees beyond KEEP collect here
    unsigned spill_n;
} tcache_t;

typedef struct tstate {
    tcache_t c[RA__POOL_CLASSES + 1];
    bool registered;
} tstate_t;

static _Thread_local tstate_t ts __attribute__((tls_model("initial-exec")));

// Global: set once under init_once.
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static bool disabled;

static void
push_batch(unsigned cls, fblock_t *first, size_t count)
{
    shared_t *p = &pools[cls];
    first->count = count;
    pthread_mutex_lock(&p->mtx);
    first->next_batch = p->batches;
    p->batches = first;
    pthread_mutex_unlock(&p->mtx);
}

// Hands a list back in batches of at most BATCH blocks, so that a thread
// taking one never starts with more than KEEP blocks (it would then spill
// every block it frees and allocate only from the cold list).
static void
push_list(unsigned cls, fblock_t *list)
{
    while (list != NULL) {
        fblock_t *first = list;
        size_t n = 1;
        while (n < BATCH && list->next != NULL) {
            list = list->next;
            n++;
        }
        fblock_t *rest = list->next;
        list->next = NULL;
        push_batch(cls, first, n);
        list = rest;
    }
}

// Returns a dying thread's blocks to the shared stacks.
static void
thread_exit(void *arg)
{
    tstate_t *t = arg;
    for (unsigned cls = 1; cls <= RA__POOL_CLASSES; cls++) {
        tcache_t *c = &t->c[cls];
        push_list(cls, c->list);
        push_list(cls, c->spill);
    }
    memset(t, 0, sizeof(*t));
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

static void
register_thread(void)
{
    pthread_once(&init_once, init);
    if (!ts.registered) {
        ts.registered = true;
        pthread_setspecific(exit_key, &ts);
    }
}

// Carves a batch of fresh blocks into c.  Called with the class's mutex.
static bool
carve(unsigned cls, tcache_t *c)
{
    shared_t *p = &pools[cls];
    size_t bs = block_size[cls];
    if (p->cur == NULL || (size_t)(p->end - p->cur) < BATCH * bs) {
        size_t size = p->next_region != 0 ? p->next_region : first_region;
        void *m = mmap(NULL, size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) {
            return false;
        }
#ifdef MADV_HUGEPAGE
        if (size >= HUGE_MIN) {
            madvise(m, size, MADV_HUGEPAGE);
        }
#endif
        // Fault the region in with one call rather than one trap per page
        // (Linux 5.14 and later; older kernels say EINVAL and we fault
        // lazily as before).
        madvise(m, size, RA_MADV_POPULATE_WRITE);
        p->cur = m;
        p->end = (char *)m + size;
        p->next_region = size < REGION_MAX ? size * 2 : REGION_MAX;
    }
    fblock_t *list = NULL;
    for (unsigned i = 0; i < BATCH; i++) {
        fblock_t *b = (fblock_t *)(p->cur + (size_t)i * bs);
        b->next = list;
        list = b;
    }
    p->cur += (size_t)BATCH * bs;
    c->list = list;
    c->n = BATCH;
    return true;
}

static void *
refill(unsigned cls)
{
    register_thread();
    if (disabled) {
        return malloc(block_size[cls]);
    }
    tcache_t *c = &ts.c[cls];
    if (c->spill != NULL) {
        c->list = c->spill;
        c->n = c->spill_n;
        c->spill = NULL;
        c->spill_n = 0;
    } else {
        shared_t *p = &pools[cls];
        pthread_mutex_lock(&p->mtx);
        fblock_t *b = p->batches;
        if (b != NULL) {
            p->batches = b->next_batch;
            c->list = b;
            c->n = (unsigned)b->count;
        } else if (!carve(cls, c)) {
            pthread_mutex_unlock(&p->mtx);
            return NULL;
        }
        pthread_mutex_unlock(&p->mtx);
    }
    fblock_t *b = c->list;
    c->list = b->next;
    c->n--;
    return b;
}

void *
ra__pool_alloc(unsigned cls)
{
    tcache_t *c = &ts.c[cls];
    fblock_t *b = c->list;
    if (b != NULL) {
        c->list = b->next;
        c->n--;
        return b;
    }
    return refill(cls);
}

void
ra__pool_free(void *p, unsigned cls)
{
    if (disabled) {
        free(p);
        return;
    }
    if (!ts.registered) {
        register_thread();
    }
    tcache_t *c = &ts.c[cls];
    fblock_t *b = p;
    if (c->n < KEEP) {
        b->next = c->list;
        c->list = b;
        c->n++;
        return;
    }
    b->next = c->spill;
    c->spill = b;
    if (++c->spill_n == BATCH) {
        push_batch(cls, c->spill, BATCH);
        c->spill = NULL;
        c->spill_n = 0;
    }
}

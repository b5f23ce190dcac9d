// objstore_mem.c - the store's memory inside the shared file: the arena
// allocator, the hash index, the LRU list, pin records, and the repair that
// rebuilds all of them after a process died holding the lock.
//
// The arena allocator keeps a 64-byte header in front of every block with
// its size and its neighbour's size (boundary tags), so freeing coalesces
// with both neighbours in O(1).  Free blocks sit in 256 size-class lists,
// four per power of two, with a bitmap of the non-empty ones: a request
// takes the head of the first non-empty class whose every block fits
// (TLSF's "good fit"), and only when there is none does it look for a fit
// among the first few blocks of its own class.  Every call runs with the
// store's lock held.
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore_impl.h"
#include "ra_log.h"

#define BLK(st, off) ((ra__os_blk_t *)((st)->arena + (off)))
#define EXACT_SCAN 16 // blocks of the request's own class tried for a fit

// ---- size classes --------------------------------------------------------

// bin_of maps a block size (a multiple of 64) to its class: the power of
// two of size/64 and the next two bits below it.
static unsigned
bin_of(uint64_t size)
{
    uint64_t n = size / RA__OS_ALIGN;
    unsigned fl = 63u - (unsigned)__builtin_clzll(n);
    unsigned sl = fl >= 2 ? (unsigned)(n >> (fl - 2)) & 3u : 0u;

    return fl * 4u + sl;
}

// bin_fit returns the lowest class whose every block is at least size:
// the size rounded up to the next class boundary.
static unsigned
bin_fit(uint64_t size)
{
    uint64_t n = size / RA__OS_ALIGN;
    unsigned fl = 63u - (unsigned)__builtin_clzll(n);

    if (fl >= 2) {
        n += ((uint64_t)1 << (fl - 2)) - 1;
    } else if (n == 3) {
        n = 4; // class 4 holds blocks of 2 and 3 units
    }
    return bin_of(n * RA__OS_ALIGN);
}

static void
bin_insert(ra_objstore_t *st, uint64_t off)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_blk_t *b = BLK(st, off);
    unsigned bin = bin_of(b->size);

    b->free = 1;
    b->entry = RA__OS_NIL;
    b->prev = RA__OS_BNIL;
    b->next = h->bins[bin];
    if (b->next != RA__OS_BNIL) {
        BLK(st, b->next)->prev = off;
    }
    h->bins[bin] = off;
    h->bitmap[bin / 64] |= (uint64_t)1 << (bin % 64);
}

static void
bin_remove(ra_objstore_t *st, uint64_t off)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_blk_t *b = BLK(st, off);
    unsigned bin = bin_of(b->size);

    if (b->prev != RA__OS_BNIL) {
        BLK(st, b->prev)->next = b->next;
    } else {
        h->bins[bin] = b->next;
    }
    if (b->next != RA__OS_BNIL) {
        BLK(st, b->next)->prev = b->prev;
    }
    if (h->bins[bin] == RA__OS_BNIL) {
        h->bitmap[bin / 64] &= ~((uint64_t)1 << (bin % 64));
    }
    b->free = 0;
}

// first_bin returns the first non-empty class at or above bin, or
// RA__OS_NBINS.
static unsigned
first_bin(const ra__os_hdr_t *h, unsigned bin)
{
    for (unsigned w = bin / 64; w < RA__OS_NBINS / 64; w++) {
        uint64_t m = h->bitmap[w];

        if (w == bin / 64) {
            m &= ~(uint64_t)0 << (bin % 64);
        }
        if (m != 0) {
            return w * 64 + (unsigned)__builtin_ctzll(m);
        }
    }
    return RA__OS_NBINS;
}

// ---- the arena -------------------------------------------------------------

void
ra__os_arena_init(ra_objstore_t *st)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_blk_t *b = BLK(st, 0);

    memset(h->bitmap, 0, sizeof h->bitmap);
    for (unsigned i = 0; i < RA__OS_NBINS; i++) {
        h->bins[i] = RA__OS_BNIL;
    }
    memset(b, 0, sizeof *b);
    b->size = h->arena_size;
    bin_insert(st, 0);
    h->used = 0;
}

// take_block carves bsize bytes from the front of free block off.
static uint64_t
take_block(ra_objstore_t *st, uint64_t off, uint64_t bsize, uint32_t e)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_blk_t *b = BLK(st, off);

    bin_remove(st, off);
    if (b->size - bsize >= RA__OS_MIN_SPLIT) {
        uint64_t roff = off + bsize;
        ra__os_blk_t *r = BLK(st, roff);

        r->size = b->size - bsize;
        r->prev_size = bsize;
        if (roff + r->size < h->arena_size) {
            BLK(st, roff + r->size)->prev_size = r->size;
        }
        b->size = bsize;
        bin_insert(st, roff);
    }
    b->entry = e;
    h->used += b->size;
    return off;
}

// ra__os_arena_alloc returns the offset of a block of at least bsize
// bytes (header included) for entry e, or RA__OS_BNIL when none is free.
// The block's real size is BLK(off)->size.
uint64_t
ra__os_arena_alloc(ra_objstore_t *st, uint64_t bsize, uint32_t e)
{
    ra__os_hdr_t *h = st->hdr;
    unsigned bin = first_bin(h, bin_fit(bsize));
    uint64_t off;
    int n = 0;

    if (bin < RA__OS_NBINS) {
        return take_block(st, h->bins[bin], bsize, e);
    }
    for (off = h->bins[bin_of(bsize)]; off != RA__OS_BNIL && n < EXACT_SCAN;
         off = BLK(st, off)->next, n++) {
        if (BLK(st, off)->size >= bsize) {
            return take_block(st, off, bsize, e);
        }
    }
    return RA__OS_BNIL;
}

void
ra__os_arena_free(ra_objstore_t *st, uint64_t off)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_blk_t *b = BLK(st, off);
    uint64_t end;

    h->used -= b->size;
    end = off + b->size;
    if (end < h->arena_size && BLK(st, end)->free) {
        bin_remove(st, end);
        b->size += BLK(st, end)->size;
    }
    if (b->prev_size != 0 && BLK(st, off - b->prev_size)->free) {
        uint64_t poff = off - b->prev_size;
        ra__os_blk_t *p = BLK(st, poff);

        bin_remove(st, poff);
        p->size += b->size;
        off = poff;
        b = p;
    }
    if (off + b->size < h->arena_size) {
        BLK(st, off + b->size)->prev_size = b->size;
    }
    bin_insert(st, off);
}

// ---- the index -------------------------------------------------------------

// oid_hash mixes both halves: callers may build ids from counters.
static uint32_t
oid_hash(ra_oid_t oid)
{
    uint64_t a, b, x;

    memcpy(&a, oid.b, 8);
    memcpy(&b, oid.b + 8, 8);
    x = a ^ (b * UINT64_C(0x9e3779b97f4a7c15));
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return (uint32_t)x;
}

// ra__os_lookup returns the visible (not free, not doomed) entry named oid
// or RA__OS_NIL.
uint32_t
ra__os_lookup(const ra_objstore_t *st, ra_oid_t oid)
{
    uint32_t i = st->buckets[oid_hash(oid) & (st->hdr->nbuckets - 1)];

    while (i != RA__OS_NIL) {
        const ra__os_entry_t *e = &st->entries[i];

        if ((e->flags & RA__OS_F_DOOMED) == 0 &&
            memcmp(e->oid.b, oid.b, sizeof oid.b) == 0) {
            return i;
        }
        i = e->hnext;
    }
    return RA__OS_NIL;
}

void
ra__os_index_insert(ra_objstore_t *st, uint32_t idx)
{
    uint32_t *head =
        &st->buckets[oid_hash(st->entries[idx].oid) & (st->hdr->nbuckets - 1)];

    st->entries[idx].hnext = *head;
    *head = idx;
}

static void
index_remove(ra_objstore_t *st, uint32_t idx)
{
    uint32_t *p =
        &st->buckets[oid_hash(st->entries[idx].oid) & (st->hdr->nbuckets - 1)];

    while (*p != RA__OS_NIL) {
        if (*p == idx) {
            *p = st->entries[idx].hnext;
            break;
        }
        p = &st->entries[*p].hnext;
    }
    st->entries[idx].hnext = RA__OS_NIL;
}

// ra__os_entry_take pops a free entry (RA__OS_NIL when the table is full).
// Its state stays RA__OS_FREE until the caller fills it in.
uint32_t
ra__os_entry_take(ra_objstore_t *st)
{
    uint32_t idx = st->hdr->free_entry;

    if (idx != RA__OS_NIL) {
        st->hdr->free_entry = st->entries[idx].hnext;
        st->entries[idx].hnext = RA__OS_NIL;
    }
    return idx;
}

// ra__os_entry_free drops entry idx whatever its state: the state becomes
// FREE first (so a crash from here on leaves nothing half-owned), then its
// block, index and list links go.  Pins must be zero.  Counters of the
// entry's state are the caller's business.
void
ra__os_entry_free(ra_objstore_t *st, uint32_t idx)
{
    ra__os_entry_t *e = &st->entries[idx];
    uint32_t state = e->state;

    __atomic_store_n(&e->state, RA__OS_FREE, __ATOMIC_RELEASE);
    if ((e->flags & RA__OS_F_FILE) != 0) {
        ra__os_file_unref(st, e->sfile);
    }
    if (state == RA__OS_SEALED && (e->flags & RA__OS_F_DOOMED) == 0) {
        ra__os_lru_remove(st, idx);
    }
    if (state == RA__OS_CREATING || state == RA__OS_SEALED ||
        state == RA__OS_RESTORING) {
        ra__os_arena_free(st, e->block);
    }
    index_remove(st, idx);
    e->flags = 0;
    e->refs = 0;
    e->pins = 0;
    e->pin_head = RA__OS_NIL;
    e->hnext = st->hdr->free_entry;
    st->hdr->free_entry = idx;
}

// ---- LRU -------------------------------------------------------------------

void
ra__os_lru_push(ra_objstore_t *st, uint32_t idx)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_entry_t *e = &st->entries[idx];

    e->tick = ++h->tick;
    e->lnext = RA__OS_NIL;
    e->lprev = h->lru_tail;
    if (h->lru_tail != RA__OS_NIL) {
        st->entries[h->lru_tail].lnext = idx;
    } else {
        h->lru_head = idx;
    }
    h->lru_tail = idx;
}

void
ra__os_lru_remove(ra_objstore_t *st, uint32_t idx)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_entry_t *e = &st->entries[idx];

    if (e->lprev != RA__OS_NIL) {
        st->entries[e->lprev].lnext = e->lnext;
    } else if (h->lru_head == idx) {
        h->lru_head = e->lnext;
    }
    if (e->lnext != RA__OS_NIL) {
        st->entries[e->lnext].lprev = e->lprev;
    } else if (h->lru_tail == idx) {
        h->lru_tail = e->lprev;
    }
    e->lprev = e->lnext = RA__OS_NIL;
}

void
ra__os_lru_touch(ra_objstore_t *st, uint32_t idx)
{
    if (st->hdr->lru_tail != idx) {
        ra__os_lru_remove(st, idx);
        ra__os_lru_push(st, idx);
    } else {
        st->entries[idx].tick = ++st->hdr->tick;
    }
}

// ---- pins ------------------------------------------------------------------

// ra__os_pin_add adds one pin of client to entry idx and returns its pin
// record, or RA__OS_NIL when every record is taken.
uint32_t
ra__os_pin_add(ra_objstore_t *st, uint32_t idx, uint32_t client)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_entry_t *e = &st->entries[idx];
    uint32_t p;

    for (p = e->pin_head; p != RA__OS_NIL; p = st->pins[p].next) {
        if (st->pins[p].client == client) {
            st->pins[p].count++;
            break;
        }
    }
    if (p == RA__OS_NIL) {
        if ((p = h->free_pin) == RA__OS_NIL) {
            return RA__OS_NIL;
        }
        h->free_pin = st->pins[p].next;
        st->pins[p].entry = idx;
        st->pins[p].client = client;
        __atomic_store_n(&st->pins[p].count, 1, __ATOMIC_RELEASE);
        st->pins[p].next = e->pin_head;
        e->pin_head = p;
    }
    if (e->pins++ == 0) {
        h->pinned++;
    }
    return p;
}

// ra__os_pin_drop removes n pins from record pin (n <= its count).  The
// caller reaps the entry if it was doomed.
void
ra__os_pin_drop(ra_objstore_t *st, uint32_t pin, uint32_t n)
{
    ra__os_pin_t *r = &st->pins[pin];
    ra__os_entry_t *e = &st->entries[r->entry];

    __atomic_store_n(&r->count, r->count - n, __ATOMIC_RELEASE);
    e->pins -= n;
    if (e->pins == 0) {
        st->hdr->pinned--;
    }
    if (r->count == 0) {
        uint32_t *p = &e->pin_head;

        while (*p != RA__OS_NIL && *p != pin) {
            p = &st->pins[*p].next;
        }
        if (*p == pin) {
            *p = r->next;
        }
        r->entry = RA__OS_NIL;
        r->client = RA__OS_NIL;
        r->next = st->hdr->free_pin;
        st->hdr->free_pin = pin;
    }
}

// ---- initial state ---------------------------------------------------------

// ra__os_init_tables fills a new store's tables: all entries, pin records
// and client slots free, an empty index and LRU, one free block.
void
ra__os_init_tables(ra_objstore_t *st)
{
    ra__os_hdr_t *h = st->hdr;

    for (uint32_t i = 0; i < h->max_clients; i++) {
        st->clients[i] = (ra__os_client_t){0};
    }
    for (uint32_t i = 0; i < h->max_objects; i++) {
        st->entries[i] = (ra__os_entry_t){
            .state = RA__OS_FREE, .slot = RA__OS_NIL,
            .pin_head = RA__OS_NIL, .lprev = RA__OS_NIL,
            .lnext = RA__OS_NIL,
            .hnext = i + 1 < h->max_objects ? i + 1 : RA__OS_NIL};
    }
    h->free_entry = h->max_objects > 0 ? 0 : RA__OS_NIL;
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        st->buckets[i] = RA__OS_NIL;
    }
    for (uint32_t i = 0; i < h->npins; i++) {
        st->pins[i] = (ra__os_pin_t){
            .entry = RA__OS_NIL, .client = RA__OS_NIL,
            .next = i + 1 < h->npins ? i + 1 : RA__OS_NIL};
    }
    h->free_pin = h->npins > 0 ? 0 : RA__OS_NIL;
    for (uint32_t i = 0; i < h->max_objects; i++) {
        st->sfiles[i] = (ra__os_sfile_t){
            .state = RA__OS_SF_FREE, .slot = RA__OS_NIL,
            .next = i + 1 < h->max_objects ? i + 1 : RA__OS_NIL};
    }
    h->free_sfile = 0;
    h->lru_head = h->lru_tail = RA__OS_NIL;
    ra__os_arena_init(st);
}

// ---- repair ----------------------------------------------------------------

static bool
resident(uint32_t state)
{
    return state == RA__OS_CREATING || state == RA__OS_SEALED ||
           state == RA__OS_RESTORING;
}

static bool
client_ok(const ra_objstore_t *st, uint32_t slot)
{
    return slot < st->hdr->max_clients && st->clients[slot].used == 1;
}

static int
by_block(const void *a, const void *b, void *arg)
{
    const ra__os_entry_t *es = arg;
    uint64_t x = es[*(const uint32_t *)a].block;
    uint64_t y = es[*(const uint32_t *)b].block;

    return (x > y) - (x < y);
}

static int
by_tick(const void *a, const void *b, void *arg)
{
    const ra__os_entry_t *es = arg;
    uint64_t x = es[*(const uint32_t *)a].tick;
    uint64_t y = es[*(const uint32_t *)b].tick;

    return (x > y) - (x < y);
}

// check_entry makes entry idx valid on its own: a state it may have, a
// block inside the arena, an I/O or writer slot that is attached.  What an
// unfinished operation left behind is rolled back as a sweep would.
static void
check_entry(ra_objstore_t *st, uint32_t idx)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_entry_t *e = &st->entries[idx];

    if (e->state > RA__OS_RESTORING) {
        e->state = RA__OS_FREE;
    }
    if (e->state == RA__OS_FREE) {
        e->flags = 0;
        return;
    }
    e->flags &= RA__OS_F_SPILLING | RA__OS_F_DOOMED | RA__OS_F_FILE;
    if (resident(e->state) &&
        (e->block % RA__OS_ALIGN != 0 || e->bsize % RA__OS_ALIGN != 0 ||
         e->size > h->arena_size || e->bsize < ra__os_bsize(e->size) ||
         e->block >= h->arena_size || e->bsize > h->arena_size - e->block)) {
        ra_log_err("store", "%s: repair: object %u has a bad block; dropped",
                   st->path, idx);
        e->state = RA__OS_FREE;
        return;
    }
    if (e->state == RA__OS_CREATING && !client_ok(st, e->slot)) {
        e->state = RA__OS_FREE;
    } else if (e->state == RA__OS_RESTORING && !client_ok(st, e->slot)) {
        e->state = RA__OS_SPILLED;
    }
    if ((e->flags & RA__OS_F_SPILLING) != 0 &&
        (e->state != RA__OS_SEALED || !client_ok(st, e->slot))) {
        e->flags &= ~(uint32_t)RA__OS_F_SPILLING;
    }
    if ((e->flags & RA__OS_F_FILE) != 0 &&
        (e->sfile >= h->max_objects ||
         st->sfiles[e->sfile].state != RA__OS_SF_LIVE)) {
        e->flags &= ~(uint32_t)RA__OS_F_FILE;
    }
    if (e->state == RA__OS_SPILLED && (e->flags & RA__OS_F_FILE) == 0) {
        ra_log_err("store", "%s: repair: spilled object %u has no file; "
                   "dropped", st->path, idx);
        e->state = RA__OS_FREE;
        e->flags = 0;
    }
}

// rebuild_arena writes the block headers and free lists from the resident
// entries, sorted by offset in scratch (n of them); an entry whose block
// overlaps the one before is dropped.
static void
rebuild_arena(ra_objstore_t *st, uint32_t *scratch, uint32_t n)
{
    ra__os_hdr_t *h = st->hdr;
    uint64_t cur = 0, prev_size = 0;

    memset(h->bitmap, 0, sizeof h->bitmap);
    for (unsigned i = 0; i < RA__OS_NBINS; i++) {
        h->bins[i] = RA__OS_BNIL;
    }
    h->used = 0;
    qsort_r(scratch, n, sizeof *scratch, by_block, st->entries);
    for (uint32_t i = 0; i <= n; i++) {
        ra__os_entry_t *e = i < n ? &st->entries[scratch[i]] : NULL;
        uint64_t start = e != NULL ? e->block : h->arena_size;
        ra__os_blk_t *b;

        if (e != NULL && e->block < cur) {
            ra_log_err("store", "%s: repair: object %u overlaps another; "
                       "dropped", st->path, scratch[i]);
            e->state = RA__OS_FREE;
            e->flags = 0;
            continue;
        }
        if (start > cur) {
            b = BLK(st, cur);
            b->size = start - cur;
            b->prev_size = prev_size;
            bin_insert(st, cur);
            prev_size = b->size;
            cur = start;
        }
        if (e == NULL) {
            break;
        }
        b = BLK(st, cur);
        b->size = e->bsize;
        b->prev_size = prev_size;
        b->free = 0;
        b->entry = scratch[i];
        h->used += e->bsize;
        prev_size = e->bsize;
        cur += e->bsize;
    }
}

// ra__os_repair rebuilds every derived structure from the truth.  It runs
// with the lock just taken after EOWNERDEAD, before
// pthread_mutex_consistent, so no other process sees the store half
// repaired.  It needs no memory but the bucket array, used as scratch
// before the index is rebuilt in it.
void
ra__os_repair(ra_objstore_t *st)
{
    ra__os_hdr_t *h = st->hdr;
    uint32_t *scratch = st->buckets;
    char path[PATH_MAX + 64];
    uint32_t n;

    h->repairs++;
    h->nclients = 0;
    for (uint32_t i = 0; i < h->max_clients; i++) {
        if (st->clients[i].used != 0) {
            st->clients[i].used = 1;
            h->nclients++;
        }
    }
    h->objects = h->creating = h->spilled = h->spilled_bytes = 0;
    h->io_inflight = 0;
    // Spill files being written by a process that is gone are partial.
    for (uint32_t i = 0; i < h->max_objects; i++) {
        ra__os_sfile_t *f = &st->sfiles[i];

        if (f->state > RA__OS_SF_LIVE ||
            (f->state == RA__OS_SF_WRITING && !client_ok(st, f->slot))) {
            ra__os_file_path(st, f->id, path, sizeof path);
            unlink(path);
            f->state = RA__OS_SF_FREE;
        }
        f->live = 0;
        if (f->id >= h->file_seq) {
            h->file_seq = f->id + 1;
        }
    }
    for (uint32_t i = 0; i < h->max_objects; i++) {
        ra__os_entry_t *e = &st->entries[i];

        check_entry(st, i);
        if (e->state == RA__OS_FREE) {
            e->flags = 0;
        }
        if (e->gen >= h->gen) {
            h->gen = e->gen + 1;
        }
        if ((e->flags & RA__OS_F_FILE) != 0) {
            st->sfiles[e->sfile].live++;
        }
        e->pins = 0;
        e->pin_head = RA__OS_NIL;
        e->lprev = e->lnext = RA__OS_NIL;
    }
    // The arena, from the resident entries in offset order.
    n = 0;
    for (uint32_t i = 0; i < h->max_objects; i++) {
        if (resident(st->entries[i].state)) {
            scratch[n++] = i;
        }
    }
    rebuild_arena(st, scratch, n);
    // The LRU list, from the ticks.
    n = 0;
    for (uint32_t i = 0; i < h->max_objects; i++) {
        const ra__os_entry_t *e = &st->entries[i];

        if (e->state == RA__OS_SEALED && (e->flags & RA__OS_F_DOOMED) == 0) {
            scratch[n++] = i;
        }
    }
    qsort_r(scratch, n, sizeof *scratch, by_tick, st->entries);
    h->lru_head = h->lru_tail = RA__OS_NIL;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t tick = st->entries[scratch[i]].tick;

        ra__os_lru_push(st, scratch[i]);
        st->entries[scratch[i]].tick = tick;
    }
    // The index, the free-entry list and the gauges.
    for (uint32_t i = 0; i < h->nbuckets; i++) {
        st->buckets[i] = RA__OS_NIL;
    }
    // Complete files that no object refers to any more go.
    h->free_sfile = RA__OS_NIL;
    for (uint32_t i = h->max_objects; i-- > 0;) {
        ra__os_sfile_t *f = &st->sfiles[i];

        if (f->state == RA__OS_SF_LIVE && f->live == 0) {
            ra__os_file_path(st, f->id, path, sizeof path);
            unlink(path);
            f->state = RA__OS_SF_FREE;
        }
        if (f->state == RA__OS_SF_FREE) {
            f->next = h->free_sfile;
            h->free_sfile = i;
        }
    }
    h->free_entry = RA__OS_NIL;
    for (uint32_t i = h->max_objects; i-- > 0;) {
        ra__os_entry_t *e = &st->entries[i];

        if (e->state == RA__OS_FREE) {
            e->hnext = h->free_entry;
            h->free_entry = i;
            continue;
        }
        ra__os_index_insert(st, i);
        if ((e->flags & RA__OS_F_SPILLING) != 0 ||
            e->state == RA__OS_RESTORING) {
            h->io_inflight++;
        }
        if (e->state == RA__OS_SPILLED) {
            h->spilled++;
            h->spilled_bytes += e->size;
        }
        if ((e->flags & RA__OS_F_DOOMED) != 0) {
            continue;
        }
        if (e->state == RA__OS_CREATING) {
            h->creating++;
        } else {
            h->objects++;
        }
    }
    // Pin records, onto their entries.
    h->pinned = 0;
    h->free_pin = RA__OS_NIL;
    for (uint32_t i = h->npins; i-- > 0;) {
        ra__os_pin_t *r = &st->pins[i];

        if (r->count != 0 && r->entry < h->max_objects &&
            st->entries[r->entry].state != RA__OS_FREE &&
            client_ok(st, r->client)) {
            ra__os_entry_t *e = &st->entries[r->entry];

            if (e->pins == 0) {
                h->pinned++;
            }
            e->pins += r->count;
            r->next = e->pin_head;
            e->pin_head = i;
            continue;
        }
        r->count = 0;
        r->entry = r->client = RA__OS_NIL;
        r->next = h->free_pin;
        h->free_pin = i;
    }
    // A sleeper may have missed its wake-up: make the next events wake.
    for (unsigned c = 0; c <= RA__OS_NCHAN_OBJ; c++) {
        h->waiters[c] = 1;
    }
    ra_log_warn("store", "%s: a process died holding the store's lock; "
                "repaired (%" PRIu64 " objects, %" PRIu64 " bytes used)",
                st->path, h->objects, h->used);
}

// objstore_impl.h - the shared layout and internal helpers of the object
// store (src/store only).
//
// The store is one file, mapped by every attached process:
//
//     header     ra__os_hdr_t: geometry, the robust mutex, the futex word,
//                allocator bins, LRU ends, counters, the spill directory
//     clients    ra__os_client_t[max_clients]: one slot per attachment
//     entries    ra__os_entry_t[max_objects]: the object table
//     buckets    uint32_t[nbuckets]: hash index heads (chains via hnext)
//     pins       ra__os_pin_t[npins]: (entry, client, count) pin records
//     sfiles     ra__os_sfile_t[max_objects]: spill files
//     arena      blocks of 64-byte multiples, each with a 64-byte header
//
// Offsets, never pointers, are stored in shared memory: each process maps
// the file at its own address.
//
// Authoritative and derived state.  A process may die at any instruction,
// also while it holds the lock.  The fields marked "truth" below are
// written so that every prefix of an operation leaves them consistent (an
// entry's state is stored last, with release order, after the fields it
// validates).  Everything else (hash chains, free lists, LRU links, block
// headers, bins, pin lists, the gauges) is derived, and ra__os_repair
// rebuilds it from the truth when pthread_mutex_lock reports EOWNERDEAD.
#ifndef RA_OBJSTORE_IMPL_H
#define RA_OBJSTORE_IMPL_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ra_objstore.h"

#define RA__OS_MAGIC UINT64_C(0x314a424f4f594152) // "RAYOOBJ1"
#define RA__OS_VERSION 1u
#define RA__OS_NIL UINT32_MAX          // no entry, client, pin record
#define RA__OS_BNIL UINT64_MAX         // no block
#define RA__OS_ALIGN 64u               // object and block alignment
#define RA__OS_BLKHDR 64u              // block header size
#define RA__OS_MIN_SPLIT 128u          // smallest remainder worth a block
#define RA__OS_NBINS 256u              // 4 sub-bins per power of two
#define RA__OS_MIN_CAPACITY ((size_t)64 << 10)
// Wait channels: 64 for objects (by id hash), so a seal wakes only the gets
// that may wait for it, and one for "space freed / I/O done".
#define RA__OS_NCHAN_OBJ 64u
#define RA__OS_CHAN_SPACE RA__OS_NCHAN_OBJ

// Entry states (truth).  The non-free ones equal ra_objstore_state_t.
enum {
    RA__OS_FREE = 0,
    RA__OS_CREATING = RA_OBJ_CREATING,   // block held, writer = slot
    RA__OS_SEALED = RA_OBJ_SEALED,       // block held, visible
    RA__OS_SPILLED = RA_OBJ_SPILLED,     // no block, file holds the bytes
    RA__OS_RESTORING = RA_OBJ_RESTORING  // block held, reader = slot
};

// Entry flags (truth).
enum {
    RA__OS_F_SPILLING = 1u << 0, // SEALED, being written out by slot
    RA__OS_F_DOOMED = 1u << 1,   // deleted; freed when pins and I/O end
    RA__OS_F_FILE = 1u << 2      // its bytes are in spill file sfile
};

// Spill file states (truth).  One file holds the objects of one spill
// batch, each at a 64-byte aligned offset; it is removed when the last of
// them is freed.
enum {
    RA__OS_SF_FREE = 0,
    RA__OS_SF_WRITING = 1, // being written by client slot
    RA__OS_SF_LIVE = 2     // complete; live entries refer to it
};

typedef struct ra__os_entry {
    ra_oid_t oid;       // truth
    uint32_t state;     // truth, stored last
    uint32_t flags;     // truth
    uint64_t size;      // truth: object bytes
    uint64_t block;     // truth when resident: arena offset of the block
    uint64_t bsize;     // truth when resident: block size, header included
    uint64_t gen;       // truth: unique per incarnation (views, file names)
    uint64_t tick;      // truth: LRU clock of the last use
    int32_t pid;        // truth: OS pid of the writer or I/O process
    uint32_t slot;      // truth: client slot of the writer or I/O process
    uint32_t refs;      // truth
    uint32_t sfile;     // truth with RA__OS_F_FILE: its spill file
    uint64_t soff;      // truth with RA__OS_F_FILE: its offset there
    uint32_t pins;      // derived: sum of the entry's pin records
    uint32_t pin_head;  // derived: first pin record
    uint32_t hnext;     // derived: hash chain, or the free-entry list
    uint32_t lprev;     // derived: LRU list of SEALED, undoomed entries
    uint32_t lnext;
} ra__os_entry_t;

typedef struct ra__os_client {
    uint32_t used;      // truth
    int32_t pid;        // truth
    uint64_t start;     // truth: /proc starttime (0 when unknown)
} ra__os_client_t;

typedef struct ra__os_pin {
    uint32_t entry;     // truth
    uint32_t client;    // truth
    uint32_t count;     // truth, stored last; 0 = free record
    uint32_t next;      // derived: entry's list, or the free list
} ra__os_pin_t;

typedef struct ra__os_sfile {
    uint64_t id;        // truth: names the file, unique in the store
    uint32_t state;     // truth, stored last
    uint32_t slot;      // truth when WRITING
    uint32_t live;      // derived: entries with RA__OS_F_FILE on it
    uint32_t next;      // derived: free list
} ra__os_sfile_t;

// ra__os_blk_t heads every arena block (derived).
typedef struct ra__os_blk {
    uint64_t size;      // whole block, a multiple of 64
    uint64_t prev_size; // the block before it, 0 for the first
    uint64_t next;      // free list links (offsets)
    uint64_t prev;
    uint32_t free;
    uint32_t entry;     // owner when used (for debugging)
    uint8_t pad[RA__OS_BLKHDR - 40];
} ra__os_blk_t;

typedef struct ra__os_hdr {
    uint64_t magic;          // stored last at create
    uint32_t version;
    uint32_t hdr_size;       // sizeof(ra__os_hdr_t): same build ABI
    uint64_t file_size;
    uint64_t arena_off;
    uint64_t arena_size;
    uint64_t clients_off;
    uint64_t entries_off;
    uint64_t buckets_off;
    uint64_t pins_off;
    uint64_t sfiles_off;
    uint32_t max_clients;
    uint32_t max_objects;
    uint32_t nbuckets;
    uint32_t npins;
    uint32_t no_spill;
    uint32_t pad0;
    char spill_dir[PATH_MAX];
    pthread_mutex_t lock;    // robust, process-shared
    // Futex words, one per wait channel: bumped (under the lock) on every
    // event a waiter of the channel may want: a seal or abort of an object
    // hashing to it, a finished restore; freed space or finished I/O for
    // RA__OS_CHAN_SPACE.  waiters[c] is set by a sleeper and cleared by the
    // waker, so a sleeper that died costs one spare wake-up, never a leak.
    uint32_t event[RA__OS_NCHAN_OBJ + 1];
    uint32_t waiters[RA__OS_NCHAN_OBJ + 1];
    // Derived: the allocator, the lists and the gauges.
    uint64_t bitmap[RA__OS_NBINS / 64];
    uint64_t bins[RA__OS_NBINS];
    uint32_t free_entry;
    uint32_t free_pin;
    uint32_t free_sfile;
    uint32_t pad1;
    uint32_t lru_head;       // least recently used
    uint32_t lru_tail;
    uint32_t io_inflight;    // spills and restores under way
    uint32_t nclients;
    uint64_t used;
    uint64_t objects;
    uint64_t creating;
    uint64_t pinned;
    uint64_t spilled;
    uint64_t spilled_bytes;
    // Truth: counters and clocks (a crash may lose one increment).
    uint64_t tick;
    uint64_t gen;
    uint64_t file_seq;
    uint64_t evictions;
    uint64_t spills;
    uint64_t restores;
    uint64_t reclaimed;
    uint64_t repairs;
    uint64_t last_sweep_ms;  // CLOCK_MONOTONIC (node-wide) of the last sweep
} ra__os_hdr_t;

struct ra_objstore {
    uint8_t *base;           // the mapping
    size_t map_size;
    ra__os_hdr_t *hdr;
    ra__os_client_t *clients;
    ra__os_entry_t *entries;
    uint32_t *buckets;
    ra__os_pin_t *pins;
    ra__os_sfile_t *sfiles;
    uint8_t *arena;
    uint32_t slot;           // this handle's client slot
    int32_t pid;             // getpid() at open
    unsigned fork_gen;       // the fork generation at open
    char path[PATH_MAX];
    // Spill files to unlink once the store's lock is dropped (unlinking a
    // large cached file takes tens of milliseconds).  They were renamed to
    // "<name>.dead" under the lock, so if this process dies first, the
    // sweep that finds it dead removes them.
    pthread_mutex_t graves_lock;
    struct ra__os_grave *graves;
    atomic_uint ngraves;
    // Channels whose FUTEX_WAKE is due after the unlock: bit c for object
    // channel c, wake_space for RA__OS_CHAN_SPACE.
    atomic_ullong wake_mask;
    atomic_bool wake_space;
};

// ra__os_room_t carries what one allocation already tried while making
// room, so it does each slow step once.
typedef struct ra__os_room {
    bool swept;
} ra__os_room_t;

// Layout and locking (objstore.c).
int ra__os_lock(ra_objstore_t *st);
void ra__os_unlock(ra_objstore_t *st);
unsigned ra__os_chan(ra_oid_t oid);
void ra__os_wake(ra_objstore_t *st, unsigned chan);
int ra__os_wait(ra_objstore_t *st, unsigned chan, int ms);
uint64_t ra__os_bsize(uint64_t size);

// Memory: arena, index, LRU, pins, repair (objstore_mem.c).  Lock held.
void ra__os_arena_init(ra_objstore_t *st);
uint64_t ra__os_arena_alloc(ra_objstore_t *st, uint64_t bsize, uint32_t e);
void ra__os_arena_free(ra_objstore_t *st, uint64_t off);
uint32_t ra__os_lookup(const ra_objstore_t *st, ra_oid_t oid);
void ra__os_index_insert(ra_objstore_t *st, uint32_t idx);
uint32_t ra__os_entry_take(ra_objstore_t *st);
void ra__os_entry_free(ra_objstore_t *st, uint32_t idx);
void ra__os_lru_push(ra_objstore_t *st, uint32_t idx);
void ra__os_lru_remove(ra_objstore_t *st, uint32_t idx);
void ra__os_lru_touch(ra_objstore_t *st, uint32_t idx);
uint32_t ra__os_pin_add(ra_objstore_t *st, uint32_t idx, uint32_t client);
void ra__os_pin_drop(ra_objstore_t *st, uint32_t pin, uint32_t n);
void ra__os_init_tables(ra_objstore_t *st);
void ra__os_repair(ra_objstore_t *st);

// Room, spilling, restoring, dead processes (objstore_room.c).  Lock held;
// functions that may drop it say so, and return with it held unless they
// return RA_EBADMSG (the lock is beyond repair).
void ra__os_file_path(const ra_objstore_t *st, uint64_t id, char *buf,
                      size_t len);
void ra__os_file_unref(ra_objstore_t *st, uint32_t f);
void ra__os_reap(ra_objstore_t *st, uint32_t idx);
void ra__os_flush_graves(ra_objstore_t *st);
int ra__os_make_room(ra_objstore_t *st, uint64_t bsize, bool need_entry,
                     ra__os_room_t *room);
int ra__os_spill_one(ra_objstore_t *st, uint32_t idx);
int ra__os_restore(ra_objstore_t *st, uint32_t idx, ra__os_room_t *room);
void ra__os_cleanup_client(ra_objstore_t *st, uint32_t slot);
int ra__os_sweep_locked(ra_objstore_t *st, unsigned *reclaimed);
bool ra__os_proc_dead(int32_t pid, uint64_t start);
uint64_t ra__os_proc_start(int32_t pid);
uint64_t ra__os_now_ms(void);

#endif

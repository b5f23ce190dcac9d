// ra_objstore.h - the per-node shared-memory object store.
//
// One store per node holds the node's immutable objects (task arguments and
// results too large to travel inline) in one shared-memory file, so every
// process on the node reads them in place: a get hands out a pointer into
// the shared mapping, never a copy.  The node's object manager creates the
// store (ra_objstore_create) and worker processes attach to it
// (ra_objstore_attach) by the same name.
//
// An object is a byte string named by a ra_oid_t.  It is made in two steps:
// ra_objstore_alloc reserves its space (the object is "being created" and
// invisible to readers), the writer fills it, and ra_objstore_seal makes it
// visible and immutable; ra_objstore_abort drops it instead.
// ra_objstore_put does all three for bytes already in memory.  Readers
// never see a half-written object.
//
// Memory: a sealed object that no reader has pinned (ra_objstore_get pins
// until ra_objstore_release) and that nobody holds a reference to
// (ra_objstore_ref) may be evicted, least recently used first, when an
// allocation needs its space; it is then gone.  When evicting is not
// enough, referenced but unpinned objects are spilled: written to a file in
// the spill directory (a batch of them to one file, so small objects spill
// fast too) and their memory reused.  A get of a spilled object reads it
// back (restores it) first; callers see no difference but the time.
// Pinned objects and objects being created stay where they are.  See
// doc/objstore.md for the layout, the locking and the crash rules.
//
// Crash safety: a process that dies (even by SIGKILL) in the middle of a
// put, while holding pins, or inside the store's lock, leaves no visible
// partial object and leaks no space.  Each attachment has a slot in the
// shared header with its OS pid; objects being created, pins, spills and
// restores are recorded against that slot.  ra_objstore_sweep finds the
// slots of dead processes and undoes their work; the store also sweeps by
// itself: in an allocation that must spill (at most once a second) or
// would otherwise fail, in a get that waits on a writer that died, and in
// an attach that finds every slot taken.  The lock is a robust
// process-shared mutex: the next process to take it after its owner died
// rebuilds the derived structures (index, free space, LRU) from the object
// table, which every operation keeps consistent at every store.
//
// Errors: 0 is success.  RA_EINVAL for NULL or malformed arguments, for a
// handle used in a child process after fork, and for an operation on an
// object in a state that does not allow it; RA_ENOENT for an unknown
// object; RA_EEXIST for a duplicate id; -ENOSPC for an object larger than
// the whole store; RA_EFULL when no room can be made (everything pinned or
// being created, spilling disabled or failing) or the object table is full;
// RA_ETIMEOUT when a get's wait ends first; RA_EBADMSG when the file is not
// a store of this version or the shared state is beyond repair; other
// -errno values from the file system.
//
// Threads: a ra_objstore_t may be shared by any number of threads of the
// process that opened it; every call is thread-safe (one robust mutex in
// shared memory serialises the short bookkeeping, copies and file I/O
// happen outside it).  Several processes may attach the same store at once.
// A handle must not be used across fork: the child gets RA_EINVAL from
// every call and must attach its own (ra_objstore_close in the child only
// unmaps; it leaves the parent's attachment alone).
#ifndef RA_OBJSTORE_H
#define RA_OBJSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

// ra_oid_t names an object: 16 opaque bytes that callers build (Ray's
// object ids are a task id and an index; rayo does not look inside).
typedef struct ra_oid {
    uint8_t b[16];
} ra_oid_t;

// ra_oid_eq returns whether a and b are the same id.
static inline bool
ra_oid_eq(ra_oid_t a, ra_oid_t b)
{
    return memcmp(a.b, b.b, sizeof a.b) == 0;
}

// RA_OID_STRLEN is enough for ra_oid_str's output and its NUL.
#define RA_OID_STRLEN 33

// ra_oid_str writes oid as 32 lower-case hex digits into buf (at least
// RA_OID_STRLEN bytes) and returns buf.  Any thread.
char *ra_oid_str(ra_oid_t oid, char *buf);

typedef struct ra_objstore ra_objstore_t;

// RA_OBJSTORE_CAPACITY_PERCENT is the default capacity: this share of the
// node's physical memory (sysconf _SC_PHYS_PAGES), as Ray's default.
#define RA_OBJSTORE_CAPACITY_PERCENT 30

// ra_objstore_prefault_t says which pages of the mapping are faulted in
// before use.  On virtual machines a first touch costs several
// microseconds per 4 KiB page, in each process that maps the store and
// separately for the process and for the kernel (copying into fresh pages
// ran at 0.3 GB/s where faulted ones take 10 GB/s and more; a first write()
// from fresh pages, as a spill does, at 0.5 GB/s), so the store can pay it
// up front.
typedef enum ra_objstore_prefault {
    // RA_OBJSTORE_PREFAULT_DEFAULT: create writes every page of the file
    // (about 1.5 s per GiB on such VMs); attach only populates the page
    // tables (MAP_POPULATE), which is quick but leaves part of the
    // first-write cost to the process's first use of each page.  The
    // first spill from each page pays the kernel's first touch.
    RA_OBJSTORE_PREFAULT_DEFAULT = 0,
    // RA_OBJSTORE_PREFAULT_NONE: fault pages in on first use (fast open,
    // slower first puts).  The space is still reserved in the file system
    // at create, so a full /dev/shm is an error at create, not a SIGBUS
    // later.
    RA_OBJSTORE_PREFAULT_NONE = 1,
    // RA_OBJSTORE_PREFAULT_FULL: as the default, and the kernel touches
    // every page too (create reads /dev/zero over them, attach copies a
    // word of each), so spills run at full speed from the start; attach
    // also writes to every page (a locked add of 0, so live objects are
    // not disturbed).  Twice the default's time at create (about 3 s per
    // GiB on such VMs); for object managers and workers that spill or put
    // a lot and can afford the time at start.
    RA_OBJSTORE_PREFAULT_FULL = 2
} ra_objstore_prefault_t;

// ra_objstore_opts_t holds the options of ra_objstore_create (attach reads
// only prefault).  A zeroed struct (or NULL) gives the defaults.
typedef struct ra_objstore_opts {
    // capacity is the size of the object arena in bytes (the file adds the
    // object table and a header, about 1/1000 more).  0 gives
    // RA_OBJSTORE_CAPACITY_PERCENT of physical memory, lowered to 90% of
    // the free space of the file system that holds the store when that is
    // less.  Each object takes its size rounded up to 64 bytes plus a
    // 64-byte header.  At least 64 KiB.
    size_t capacity;
    // max_objects bounds how many objects (sealed, being created or
    // spilled) the store holds at once; 0 gives capacity / 64 KiB, at
    // least 1024 and at most 1 << 20.  Between 16 and 1 << 24.
    uint32_t max_objects;
    // max_clients bounds the attachments (handles) open at once, creator
    // included; 0 gives 128.  Between 2 and 65536.
    uint32_t max_clients;
    // spill_dir is the directory that spilled objects go to, made (mode
    // 0700) if missing; NULL gives $TMPDIR (or /tmp) followed by
    // "/rayo-spill-" and the store's file name.  Give each store its own:
    // create removes the spill files it finds there.  One spill writes a
    // batch of objects into one file ("<16 hex digits>.spill"); a restored
    // object keeps its place in its file (spilling it again writes
    // nothing), and a file is removed when the last of its objects is
    // freed, so disk use can exceed what is spilled now.
    const char *spill_dir;
    // no_spill disables spilling: referenced objects then stay in memory
    // and allocations that find no room fail with RA_EFULL.
    bool no_spill;
    // prefault says which pages to fault in; see ra_objstore_prefault_t.
    ra_objstore_prefault_t prefault;
} ra_objstore_opts_t;

// ra_objstore_create makes a new, empty store and attaches to it as its
// first client.  name is either a plain name (no '/'), giving the file
// /dev/shm/<name>, or a path to the file, for example inside a session
// directory; give each cluster session its own name so several clusters on
// one node do not meet.  The file is made with mode 0600 under a temporary
// name, sized, reserved (posix_fallocate), initialised and then renamed
// over name, so a store that existed under that name is replaced whole
// (its attached processes keep the old one until they close) and an attach
// never sees a half-made store.  Spill files a former store left in the
// spill directory are removed: a re-created store starts clean.  Returns 0;
// RA_EINVAL (NULL out or name, an empty name, options out of range);
// RA_ENOMEM; -ENOSPC when the file system cannot hold the store (a log
// line says how much was asked for); or another -errno from the file
// system.  On failure *out is NULL and no file is left behind.  Caller owns
// the result and ends it with ra_objstore_close or ra_objstore_destroy.
// Any thread; prefaulting makes it take time proportional to capacity.
int ra_objstore_create(ra_objstore_t **out, const char *name,
                       const ra_objstore_opts_t *opts);

// ra_objstore_attach opens the store that ra_objstore_create made under
// name (same naming rule) and takes a client slot in it.  opts may be NULL;
// only opts->prefault is read.  Returns 0; RA_EINVAL; RA_ENOENT when there
// is no such file; RA_EBADMSG when the file is not a store of this version;
// RA_EFULL when all max_clients slots are held by live processes; RA_ENOMEM
// or another -errno.  On failure *out is NULL.  Caller owns the result.
int ra_objstore_attach(ra_objstore_t **out, const char *name,
                       const ra_objstore_opts_t *opts);

// ra_objstore_close detaches and frees the handle and sets *st to NULL.
// What the handle still holds is let go: its pins are released and its
// objects still being created are aborted; sealed objects and the store
// stay for the other processes.  Views from the handle must not be used
// afterwards.  No other thread may be using *st.  Safe on NULL and on a
// NULL *st.  In a child process after fork it only unmaps.
void ra_objstore_close(ra_objstore_t **st);

// ra_objstore_destroy closes the handle as ra_objstore_close does and then
// removes the store's file and spill directory with every spill file in
// it.  Meant for the object manager at node shutdown; processes still
// attached keep their mapping but spilled objects are lost to them.  Safe
// on NULL and on a NULL *st.
void ra_objstore_destroy(ra_objstore_t **st);

// ra_objstore_alloc reserves size bytes for a new object oid and stores in
// *data a pointer to them (64-byte aligned, not zeroed), which the caller
// fills and then passes to ra_objstore_seal or ra_objstore_abort.  Until
// then the object is "being created": invisible to gets (which may wait
// for it), never evicted, and recorded against this handle's slot and OS
// pid so that it is reclaimed if the process dies.  Makes room by evicting,
// sweeping dead processes and spilling as the header describes (spilling
// writes files and may take a while).  Returns 0; RA_EINVAL (NULL st or
// data); RA_EEXIST when an object oid exists (being created, sealed or
// spilled); -ENOSPC when size can never fit (more than the capacity minus
// one header); RA_EFULL when no room can be made or the object table is
// full.  On failure *data is NULL.  size may be 0.
int ra_objstore_alloc(ra_objstore_t *st, ra_oid_t oid, size_t size,
                      void **data);

// ra_objstore_seal makes the object that this handle allocated under oid
// visible and immutable, and wakes gets waiting for it.  The writer must
// not touch the object's bytes afterwards, and holds no pin: take one with
// ra_objstore_get, and a reference with ra_objstore_ref (before sealing, if
// the object must not be evicted even for a moment).  Returns 0; RA_ENOENT
// (no such object); RA_EALREADY (already sealed); RA_EINVAL (NULL st, or
// another handle is creating it).
int ra_objstore_seal(ra_objstore_t *st, ra_oid_t oid);

// ra_objstore_abort drops the object that this handle allocated under oid
// and is still creating; its space is free at once.  Returns 0; RA_ENOENT;
// RA_EALREADY (sealed: use ra_objstore_delete); RA_EINVAL (NULL st, or
// another handle is creating it).
int ra_objstore_abort(ra_objstore_t *st, ra_oid_t oid);

// ra_objstore_put stores the size bytes at data as object oid: alloc, copy
// and seal in one call.  data may be NULL when size is 0.  Returns what
// ra_objstore_alloc returns; on failure nothing is left behind.
int ra_objstore_put(ra_objstore_t *st, ra_oid_t oid, const void *data,
                    size_t size);

// ra_objstore_view_t is a pinned object: data points at its size bytes in
// shared memory, valid and unchanging until ra_objstore_release.  Do not
// write through data.  The ra_priv fields belong to the store.
typedef struct ra_objstore_view {
    const void *data;
    size_t size;
    struct {
        uint32_t idx;
        uint32_t pin;
        uint64_t gen;
    } ra_priv;
} ra_objstore_view_t;

// ra_objstore_get pins object oid and fills *view with its bytes; the
// object is then neither evicted, spilled nor freed (even by
// ra_objstore_delete) until ra_objstore_release.  A spilled object is read
// back first.  When oid is absent or still being created, get waits up to
// timeout_ms milliseconds for it to be sealed (0: no wait, negative:
// forever).  A writer that died while the get waits is noticed within a
// fraction of a second (and swept).  Each get is a pin of its own; release
// each one.  Returns 0; RA_ENOENT when no object oid exists when the wait
// ends (never made, evicted or deleted), or as soon as the object that the
// get saw being created is aborted or its writer dies; RA_ETIMEOUT when it
// exists but is still being created; RA_EFULL when a spilled object cannot
// be brought back because no room can be made, or too many pins are held;
// RA_EINVAL (NULL st or view); -errno when reading its spill file failed.
// On failure view->data is NULL.  Marks the object most recently used.
int ra_objstore_get(ra_objstore_t *st, ra_oid_t oid, int timeout_ms,
                    ra_objstore_view_t *view);

// ra_objstore_release drops the pin of a view that ra_objstore_get filled
// through the same handle, and sets view->data to NULL.  The object's
// bytes must not be read afterwards.  Returns 0, or RA_EINVAL (NULL st or
// view, a view already released or from another handle).
int ra_objstore_release(ra_objstore_t *st, ra_objstore_view_t *view);

// ra_objstore_ref adds one reference to object oid (being created, sealed
// or spilled): a referenced object is spilled rather than evicted when
// space runs out.  ra_objstore_unref removes one.  References belong to the
// store, not to the handle that took them (the owner says when an object
// is no longer needed), so they survive the process that took them.
// Returns 0; RA_ENOENT; RA_EINVAL (NULL st; unref of an object without
// references).
int ra_objstore_ref(ra_objstore_t *st, ra_oid_t oid);
int ra_objstore_unref(ra_objstore_t *st, ra_oid_t oid);

// ra_objstore_delete removes object oid (sealed or spilled) from the store:
// new gets no longer find it, and its space (or spill file) is freed once
// the last pin is released.  References do not stop it.  Returns 0;
// RA_ENOENT; RA_EAGAIN when the object is still being created (the writer
// seals or aborts it); RA_EINVAL.
int ra_objstore_delete(ra_objstore_t *st, ra_oid_t oid);

// ra_objstore_delete_prefix deletes, as ra_objstore_delete does, every
// sealed or spilled object whose id starts with the len bytes at prefix
// (1 to 16): the objects of an owner that is gone, when ids name their
// owner.  Objects still being created are left to their writer (or to
// ra_objstore_sweep).  It looks at every entry of the object table under
// the store's lock: meant for rare events, not for each object.
// *deleted, when not NULL, receives how many were deleted.  Returns 0,
// RA_EINVAL or RA_EBADMSG (a lock holder died mid-update and the store
// could not be repaired).
int ra_objstore_delete_prefix(ra_objstore_t *st, const uint8_t *prefix,
                              size_t len, unsigned *deleted);

// ra_objstore_spill writes sealed object oid to a spill file now (unless
// it is in one from an earlier spill) and frees its memory, as the store
// does by itself when full; references are not needed.  Returns 0;
// RA_ENOENT; RA_EALREADY (already spilled); RA_EAGAIN (pinned, being
// created, being spilled or restored by someone else, or pinned while it
// was written); RA_ENOTSUP (spilling disabled); RA_EFULL (max_objects
// spill files exist); RA_EINVAL; or the -errno of the file write.
int ra_objstore_spill(ra_objstore_t *st, ra_oid_t oid);

// ra_objstore_state_t is where an object is.
typedef enum ra_objstore_state {
    RA_OBJ_CREATING = 1, // allocated, not yet sealed
    RA_OBJ_SEALED = 2,   // sealed and in memory
    RA_OBJ_SPILLED = 3,  // sealed and in its spill file only
    RA_OBJ_RESTORING = 4 // being read back from its spill file
} ra_objstore_state_t;

// ra_objstore_info_t describes one object, as ra_objstore_info saw it.
typedef struct ra_objstore_info {
    size_t size;
    ra_objstore_state_t state;
    uint32_t refs;   // ra_objstore_ref count
    uint32_t pins;   // views held, all processes together
    int32_t writer;  // OS pid of the creating process (RA_OBJ_CREATING)
} ra_objstore_info_t;

// ra_objstore_info fills *info for object oid without pinning or touching
// it (the answer may be stale by the time it returns).  Returns 0,
// RA_ENOENT or RA_EINVAL.
int ra_objstore_info(ra_objstore_t *st, ra_oid_t oid,
                     ra_objstore_info_t *info);

// ra_objstore_sweep finds attachments whose process has died (kill(pid, 0)
// says ESRCH, the process is a zombie, or its pid now belongs to a process
// started later) and undoes what they held: objects they were creating are
// dropped, their pins released, their unfinished spills and restores
// rolled back, and their slots freed.  *reclaimed, when reclaimed is not
// NULL, receives the number of dead attachments cleaned up.  Allocations
// under pressure and attach sweep by themselves; call it to get space or
// pins back at once (a supervisor that saw a worker die).  Returns 0,
// RA_EINVAL, RA_ENOMEM or RA_EBADMSG.
int ra_objstore_sweep(ra_objstore_t *st, unsigned *reclaimed);

// ra_objstore_stats_t is a snapshot of the store's counters.
typedef struct ra_objstore_stats {
    uint64_t capacity;      // arena bytes
    uint64_t used;          // arena bytes held by objects, headers included
    uint64_t objects;       // sealed objects, in memory or spilled
    uint64_t creating;      // objects being created
    uint64_t pinned;        // objects with at least one pin
    uint64_t spilled;       // objects now in spill files only
    uint64_t spilled_bytes; // their total size
    uint64_t evictions;     // objects evicted since create
    uint64_t spills;        // objects spilled since create
    uint64_t restores;      // objects restored since create
    uint64_t reclaimed;     // dead attachments cleaned up since create
    uint64_t repairs;       // lock recoveries after a holder died
    uint32_t max_objects;
    uint32_t clients;       // attachments now
} ra_objstore_stats_t;

// ra_objstore_stats fills *out.  Returns 0 or RA_EINVAL.
int ra_objstore_stats(ra_objstore_t *st, ra_objstore_stats_t *out);

// ra_objstore_path returns the path of the store's file, borrowed from st
// and valid until it is closed; NULL when st is NULL.
const char *ra_objstore_path(const ra_objstore_t *st);

#ifdef __cplusplus
}
#endif
#endif

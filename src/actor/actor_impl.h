// actor_impl.h - internal structures of the actor runtime (src/ only).
#ifndef RA_ACTOR_IMPL_H
#define RA_ACTOR_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../mailbox/mailbox_impl.h"
#include "ra_actor.h"

// A slot word packs the generation (high 32 bits), a dead bit and a count
// of references (low 31 bits).  A sender takes a reference with one CAS that
// also checks generation and liveness, so it can never push into a slot that
// has been recycled; the runtime holds one reference while the actor lives.
#define RA__DEAD (UINT64_C(1) << 31)
#define RA__REFS (RA__DEAD - 1)

// Actor flags.
enum {
    RA__F_SCOPE = 1u << 0,     // a thread's scope, not scheduled
    RA__F_TRAP = 1u << 1,      // traps exits
    RA__F_EXITREQ = 1u << 2,   // ra_exit was called in this callback
    RA__F_DONE = 1u << 3,      // terminated (scope: dead but not freed)
    RA__F_NAMED = 1u << 4      // the registry knows it (names, groups,
                               // subscriptions): call names_hook at exit
};

// A set of pids (an actor's links).  Up to RA__PIDSET_DENSE entries it is a
// plain array; beyond, an open-addressing hash table (a supervisor of
// 100,000 dynamic children links to each of them).  Either way a slot with
// id 0 is not a member, so iterate over all cap slots and skip those.
typedef struct ra__pidvec {
    ra_pid_t *v;
    uint32_t n, cap;   // members; slots
    uint32_t tombs;    // deleted slots in hash mode (id 0, gen 1)
} ra__pidvec_t;

#define RA__PIDSET_DENSE 8

// A monitor as the monitored actor stores it.  kind CALL marks the
// temporary monitor of an ra_call: its "DOWN" completes the call instead.
typedef struct ra__mon {
    uint64_t ref;
    ra_pid_t pid; // the watcher (in monitors) or the target (in watching)
    uint8_t call;
} ra__mon_t;

// The monitors an actor holds or is the target of, in no order.  Up to
// RA__MONVEC_DENSE of them are searched in a row; past that the block
// behind v also holds an index by ref (2 x cap slots, then a count of
// deleted slots, see actor.c), so that an actor watching thousands of
// others (a cluster's core watches every actor it owns) finds one at
// once.  v is one allocation either way: free(v) frees it.
typedef struct ra__monvec {
    ra__mon_t *v;
    uint32_t n, cap;
} ra__monvec_t;

#define RA__MONVEC_DENSE 16

typedef struct ra__scope ra__scope_t;
typedef struct ra__worker ra__worker_t;

// An actor lives in a slot of the runtime's table; slots are never freed
// before the runtime, so a stale reference reads valid memory and fails the
// generation check.
typedef struct ra__actor {
    // Cache-line aligned: actors that run on different cores must not
    // share a line (their mailbox heads are written by their senders).
    _Alignas(64) _Atomic uint64_t word;
    atomic_int sched;           // 1 while queued or running
    uint32_t id;
    // RA__SLOT_*: a reserved slot keeps its pid across incarnations.
    atomic_uchar reserved;
    atomic_uint flags;          // RA__F_*, written by the owner thread
    struct ra__actor *runq_next; // link in the injector or an inbox
    // Sender affinity: the worker that last sent to this actor and how many
    // sends in a row came from it (relaxed, a heuristic).
    atomic_int last_w;
    atomic_uint last_w_streak;
    ra_mailbox_t mb;
    const ra_behaviour_t *beh;
    void *state;
    ra_reason_t exit_reason;
    // Protected by lock: others add themselves to these.
    atomic_flag lock;
    bool exiting;
    ra__pidvec_t links;
    ra__monvec_t monitors;
    // Owner thread only.
    ra__monvec_t watching;
    uint32_t ref_seq;           // monitor references (never reset)
    // Calls: a caller waits on at most one call at a time.
    _Atomic uint64_t call_wait; // awaited sequence, | CLAIMED while filled
    uint32_t call_seq;          // never reset, so old references never match
    int call_err;
    atomic_int call_worker;     // worker index of a waiting actor, or -1
    ra_msg_t *call_reply;
    ra__scope_t *scope;         // RA__F_SCOPE only
} ra__actor_t;

// Flags are written by the actor's own thread and read by others (stats,
// the runtime's shutdown), hence relaxed atomics.
#define RA__FLAGS(a) atomic_load_explicit(&(a)->flags, memory_order_relaxed)
#define RA__SETF(a, f) \
    atomic_fetch_or_explicit(&(a)->flags, (f), memory_order_relaxed)
#define RA__CLRF(a, f) \
    atomic_fetch_and_explicit(&(a)->flags, ~(unsigned)(f), memory_order_relaxed)

#define RA__CALL_CLAIMED (UINT64_C(1) << 63)

struct ra_ctx {
    ra_runtime_t *rt;
    ra__actor_t *a;
    ra_pid_t self;
    ra_pid_t from;   // sender of the current message
    uint64_t cref;   // call reference of the current message, 0 if none
};

// A scope: an actor driven by a thread that is not a scheduler thread.
struct ra__scope {
    ra_ctx_t ctx;
    ra__scope_t *next, *prev; // the runtime's list of open scopes
    pthread_mutex_t mtx;
    pthread_cond_t cond;
};

// A worker's run queue: single producer (the worker), many consumers (the
// worker and thieves) taking from head with CAS.  Overflow goes to the
// runtime's injector.
#define RA__RING 256
#define RA__IDCACHE 64
// Sends in a row from one other worker after which a busy actor moves to
// that worker when its turn ends.
#define RA__AFFINITY 16
// Spare scheduler threads a runtime may start beyond its configured ones
// while some of those wait in a call (see ra__sched_block_enter).
#define RA__SPARE_MAX 32
// How deep actors may run nested on one thread's stack.
#define RA__MAX_NEST 64

struct ra__worker {
    ra_runtime_t *rt;
    int index;
    pthread_t thread;
    bool started;               // thread runs (under rt->spare_mtx)
    unsigned nblock;            // nested ra__sched_block_enter's, counted once
    _Atomic uint32_t head;
    _Atomic uint32_t tail;
    _Atomic(ra__actor_t *) ring[RA__RING];
    ra__actor_t *next;          // runs next, not stealable
    unsigned next_streak;
    unsigned tick;
    // Actors whose handlers wait in ra_call further down this thread's
    // stack, below one run nested on top of them (RA__MAX_NEST at most);
    // a call to one of them could only be answered after we return.
    unsigned depth;
    // The actor run on top of frames[depth - 1] ends its turn once that
    // one's wait is over.
    ra__actor_t *frames[RA__MAX_NEST];
    uint64_t rng;
    bool searching;
    // The last actor this worker sent to, with a reference held, so a
    // handler sending many messages to one actor skips the reference
    // CAS on each.  Dropped when the current actor's turn ends.
    ra__actor_t *send_cache;
    ra_pid_t send_cache_pid;
    // Actors migrated here to sit beside the actor feeding them.
    pthread_mutex_t inbox_mtx;
    ra__actor_t *inbox_head, *inbox_tail;
    atomic_uint inbox_len;
    // Free actor slots kept by this worker, so spawning and ending actors
    // rarely takes the table mutex.
    uint32_t free_ids[RA__IDCACHE];
    unsigned nfree_ids;
    // Parking.  searching is written only by the worker itself; idle and
    // idle_next are under the runtime's idle_mtx; notified (a notifier took
    // this worker off the idle list and counted it as searching), nap_wake
    // (a call it naps on completed) and parked are under mtx.
    pthread_mutex_t mtx;
    pthread_cond_t cond;
    bool notified;
    bool nap_wake;
    bool parked;
    bool idle;
    ra__worker_t *idle_next;
    char pad[64];
};

#define RA__CHUNK_BITS 10
#define RA__CHUNK (1u << RA__CHUNK_BITS)
#define RA__MAX_CHUNKS (1u << 16) // 64M actors

typedef struct ra__timers ra__timers_t;

// The distribution hooks: how the runtime hands operations on pids of other
// processes to the link layer (src/mailbox/link*.c).  Each returns as the
// local operation would; ownership of *msg follows ra__deliver's rules.
// ref values of call monitors have RA__REF_CALL set and equal the call's
// cref otherwise.
typedef struct ra__dist_ops {
    int (*deliver)(void *d, ra_pid_t to, ra_msg_t **msg, ra_pid_t from,
                   uint64_t cref, bool system);
    int (*link)(void *d, ra_pid_t self, ra_pid_t remote);
    void (*unlink)(void *d, ra_pid_t self, ra_pid_t remote);
    int (*monitor)(void *d, ra_pid_t self, ra_pid_t remote, uint64_t ref);
    void (*demonitor)(void *d, ra_pid_t self, ra_pid_t remote, uint64_t ref);
    // A call: the request, which also makes the callee's side monitor
    // the callee for the caller (ref cref | RA__REF_CALL) until it
    // replies.  call_end says the call is over; replied: by a reply.
    int (*call)(void *d, ra_pid_t self, ra_pid_t to, ra_msg_t **req,
                uint64_t cref);
    void (*call_end)(void *d, ra_pid_t self, ra_pid_t to, uint64_t cref,
                     bool replied);
    int (*reply)(void *d, uint64_t cref, ra_msg_t **reply);
} ra__dist_ops_t;

// Call references handed to local actors for calls from other processes
// have this bit; ra_reply_to passes them to the link layer.
#define RA__CREF_REMOTE (UINT64_C(1) << 62)
// Monitor references of remote call monitors.
#define RA__REF_CALL (UINT64_C(1) << 61)

struct ra_runtime {
    unsigned nworkers;        // scheduler threads asked for
    // workers has room for wcap = nworkers + RA__SPARE_MAX; nthreads
    // counts those started (it only grows while the runtime runs, under
    // spare_mtx); nblocked those waiting in a call with no nesting.
    unsigned wcap;
    atomic_uint nthreads;
    atomic_uint nblocked;
    pthread_mutex_t spare_mtx;
    unsigned spin;            // ra_runtime_opts_t.spin
    unsigned quantum;
    uint32_t node, proc;
    ra__worker_t *workers;
    // Actor table.
    _Atomic(ra__actor_t *) chunks[RA__MAX_CHUNKS];
    atomic_uint nchunks;
    pthread_mutex_t table_mtx; // also guards scopes
    ra__scope_t *scopes;
    uint32_t *free_ids;
    size_t nfree, free_cap;
    atomic_size_t live;
    // Injector (global queue) for sends from outside and overflow.
    pthread_mutex_t inj_mtx;
    ra__actor_t *inj_head, *inj_tail;
    atomic_size_t inj_len;
    // Idle workers.
    pthread_mutex_t idle_mtx;
    ra__worker_t *idle;
    atomic_uint num_idle;
    atomic_uint num_searching;
    // Lifecycle.
    atomic_bool closing;
    atomic_bool stop;
    pthread_mutex_t live_mtx;
    pthread_cond_t live_cond;
    ra__timers_t *timers;
    // The registry (src/registry), created on first use.  names_hook runs
    // in ra__actor_die for RA__F_NAMED actors, after the actor is marked
    // exiting and before its exit signals and DOWN messages go out;
    // registry_free runs in ra_runtime_destroy once every actor is gone.
    _Atomic(void *) registry;
    // The root supervisor (src/supervisor), started on first use.
    pthread_mutex_t root_mtx;
    ra_pid_t root;
    void (*names_hook)(ra_runtime_t *rt, ra_pid_t pid);
    void (*registry_free)(ra_runtime_t *rt);
    // The link layer, when one runs (ra_link_start).  Users count callers
    // inside an op so that ra_link_stop can wait for them.
    _Atomic(const ra__dist_ops_t *) dist_ops;
    void *dist;
    atomic_uint dist_users;
};

static inline bool
ra__is_remote(const ra_runtime_t *rt, ra_pid_t pid)
{
    return pid.node != rt->node || pid.proc != rt->proc;
}

// ra__dist_enter returns the link layer's hooks, or NULL when none runs;
// a non-NULL result must be followed by ra__dist_leave.
static inline const ra__dist_ops_t *
ra__dist_enter(ra_runtime_t *rt)
{
    atomic_fetch_add(&rt->dist_users, 1);
    const ra__dist_ops_t *ops = atomic_load(&rt->dist_ops);
    if (ops == NULL) {
        atomic_fetch_sub(&rt->dist_users, 1);
    }
    return ops;
}

static inline void
ra__dist_leave(ra_runtime_t *rt)
{
    atomic_fetch_sub_explicit(&rt->dist_users, 1, memory_order_release);
}

// Entry points for the link layer: what arrives from another process.
// ra__dist_link_in links local actor pid to remote; RA_ENOPROC if pid is
// gone.  ra__dist_monitor_in adds remote watcher's monitor ref to pid;
// RA_ENOPROC if pid is gone.  ra__call_fail completes the call cref of a
// local caller with err.  ra__dist_deliver_local delivers to a local pid
// without blocking (the link's I/O thread must never wait on a mailbox).
int ra__dist_link_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t remote);
void ra__dist_unlink_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t remote);
int ra__dist_monitor_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t watcher,
                        uint64_t ref);
void ra__dist_demonitor_in(ra_runtime_t *rt, ra_pid_t pid, ra_pid_t watcher,
                           uint64_t ref);
void ra__call_fail(ra_runtime_t *rt, uint64_t cref, int err);
int ra__dist_watch(ra_ctx_t *ctx, ra_pid_t target, uint64_t *ref);
extern _Thread_local bool ra__tls_noblock;

extern _Thread_local ra__worker_t *ra__tls_worker
    __attribute__((tls_model("initial-exec")));

// Table.
int ra__actor_create(ra_runtime_t *rt, const ra_behaviour_t *b, void *arg,
                     const ra_spawn_opts_t *opts, ra__scope_t *scope,
                     ra__actor_t **out);

// Reserved slots: a system actor that its supervisor restarts in place
// (the GCS) keeps one pid for the life of the runtime, so that peers in
// other processes, which know it by pid, reach the new incarnation.  A
// reserved slot is never handed to another spawn and its generation does
// not change when an incarnation ends.  RA__SLOT_FREE: a normal slot;
// RA__SLOT_IDLE: reserved, no incarnation (or the last one finalized);
// RA__SLOT_BUSY: reserved, an incarnation is being made or lives.
enum { RA__SLOT_FREE = 0, RA__SLOT_IDLE = 1, RA__SLOT_BUSY = 2 };

// ra__slot_reserve takes a fresh slot of rt for incarnations made with
// ra__spawn_reserved and returns its id.  Returns 0, RA_ENOMEM or
// RA_ECLOSED.
int ra__slot_reserve(ra_runtime_t *rt, uint32_t *id);

// ra__spawn_reserved spawns b (as ra_spawn_from with parent, or ra_spawn
// when parent is NULL) into reserved slot id: the pid is the same for
// every incarnation.  An incarnation that has ended but is still
// referenced is waited for, up to wait_ms.  Returns 0, RA_EINVAL (not a
// reserved slot), RA_EAGAIN (an incarnation lives, or the last one was not
// finalized in time), RA_ECLOSED or what the init returned.
// ra__actor_create_reserved is its first step: the next incarnation's
// slot, prepared as ra__actor_create does (runtime.c).
int ra__actor_create_reserved(ra_runtime_t *rt, uint32_t id,
                              const ra_behaviour_t *b, void *arg,
                              const ra_spawn_opts_t *opts, unsigned wait_ms,
                              ra__actor_t **out);
int ra__spawn_reserved(ra_runtime_t *rt, ra_ctx_t *parent, uint32_t id,
                       const ra_behaviour_t *b, void *arg,
                       const ra_spawn_opts_t *opts, unsigned wait_ms,
                       ra_pid_t *out);
ra__actor_t *ra__actor_at(ra_runtime_t *rt, uint32_t id);
ra__actor_t *ra__actor_get(ra_runtime_t *rt, ra_pid_t pid);
ra__actor_t *ra__actor_get_any(ra_runtime_t *rt, uint32_t id);
void ra__actor_put(ra_runtime_t *rt, ra__actor_t *a);
ra_pid_t ra__pid_of(ra_runtime_t *rt, ra__actor_t *a);
void ra__actor_finalize(ra_runtime_t *rt, ra__actor_t *a);

// Scheduling.
void ra__schedule(ra_runtime_t *rt, ra__actor_t *a);
// ra__sched_blocking is called by code about to block a scheduler thread
// for a moment (microseconds: ra_spawn's wait for a reserved slot): the
// actors queued on this thread move where other threads can run them.
// No-op on other threads.  Longer waits use ra__sched_wait_begin.
void ra__sched_blocking(void);
// ra__sched_block_enter is called by a scheduler thread about to wait for
// a call's answer: the actors queued on it move where other threads can
// run them, and if fewer than nworkers threads would be left running, a
// spare thread starts (or an idle one is woken).  Returns false when no
// spare could be had (RA__SPARE_MAX reached): then the caller runs other
// actors nested in its wait, as the only way to keep them going.  A true
// return is paired with ra__sched_block_leave when the wait ends.
bool ra__sched_block_enter(ra__worker_t *w);
void ra__sched_block_leave(ra__worker_t *w);
// The same for a wait of any kind on this thread (a scope's wait, a
// condition variable): ra__sched_wait_begin returns whether it counted
// this thread as blocked (false on threads that are not a runtime's
// scheduler threads); ra__sched_wait_end(that) undoes it.
bool ra__sched_wait_begin(void);
void ra__sched_wait_end(bool began);
// ra__sched_on_thread tells whether this thread is one of a runtime's
// scheduler threads.
bool ra__sched_on_thread(void);
void ra__run_actor(ra__worker_t *w, ra__actor_t *a);
bool ra__run_one(ra__worker_t *w);
void ra__worker_wake(ra__worker_t *w);
void ra__send_cache_drop(ra__worker_t *w);
void ra__worker_nap(ra__worker_t *w, const struct timespec *deadline);
int ra__sched_start(ra_runtime_t *rt);
void ra__sched_stop(ra_runtime_t *rt);

// Delivery.
int ra__deliver(ra_runtime_t *rt, ra_pid_t to, ra_msg_t **msg,
                ra_pid_t from, uint64_t cref, bool system);
int ra__deliver_to(ra_runtime_t *rt, ra__actor_t *a, ra_msg_t **msg,
                   ra_pid_t from, uint64_t cref, bool system);
void ra__actor_die(ra_runtime_t *rt, ra__actor_t *a, ra_reason_t reason);
bool ra__dispatch(ra_runtime_t *rt, ra__actor_t *a, ra_pid_t self,
                  ra__env_t *env, bool system);
void ra__lock(ra__actor_t *a);
void ra__unlock(ra__actor_t *a);
// ra__monvec_add appends a monitor (RA_ENOMEM when it cannot).
// ra__monvec_del removes the one with ref (and, when pid is not NULL,
// with *pid as its pid) and tells whether there was one.
// ra__monvec_take removes the one with ref and stores its pid in *pid.
// ra__monvec_pop removes the last one added, if nothing was removed
// since (undoing a failed monitor); ra__monvec_clear removes all.
int ra__monvec_add(ra__monvec_t *v, uint64_t ref, ra_pid_t pid, bool call);
bool ra__monvec_del(ra__monvec_t *v, uint64_t ref, ra_pid_t *pid);
bool ra__monvec_take(ra__monvec_t *v, uint64_t ref, ra_pid_t *pid);
void ra__monvec_pop(ra__monvec_t *v);
void ra__monvec_clear(ra__monvec_t *v);
void ra__scope_wake(ra__scope_t *s);

// Calls.

// ra__await_exit waits until pid has ended, as ctx's actor (running other
// actors meanwhile on a scheduler thread).  Returns 0 once it has ended
// (also when it was already gone), RA_ETIMEOUT after timeout_ms (negative:
// forever).  Used by supervisors to stop their children.
int ra__await_exit(ra_ctx_t *ctx, ra_pid_t pid, int64_t timeout_ms);

void ra__call_complete(ra_runtime_t *rt, ra__actor_t *a, uint32_t seq,
                       int err, ra_msg_t **reply);

// Timers.
int ra__timers_start(ra_runtime_t *rt);
void ra__timers_stop(ra_runtime_t *rt);

// Time.
void ra__deadline(struct timespec *ts, int64_t ms);
bool ra__past(const struct timespec *ts);

#endif

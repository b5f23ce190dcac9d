// mailbox_impl.h - internal structures of messages and mailboxes (src/ only).
#ifndef RA_MAILBOX_IMPL_H
#define RA_MAILBOX_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "ra_mailbox.h"
#include "ra_msg.h"

// A node of an intrusive MPSC queue.
typedef struct ra__qnode {
    _Atomic(struct ra__qnode *) next;
} ra__qnode_t;

// Vyukov's intrusive MPSC queue.  Producers exchange head; the consumer owns
// tail.  The stub node lets the queue never be empty of nodes, so push is a
// single exchange plus a store, with no CAS loop.
typedef struct ra__mpsc {
    _Atomic(ra__qnode_t *) head;
    // Written only by the consumer, but read by the scheduler's re-check
    // after it let go of the actor (when another thread may already be
    // consuming), hence atomic with relaxed ordering.
    _Atomic(ra__qnode_t *) tail;
    ra__qnode_t stub;
} ra__mpsc_t;

// An envelope carries one message through one queue, with the sender and,
// for calls, the call reference.  Every message embeds one envelope, used
// when the message is in no queue; a message queued in several mailboxes at
// once (a broadcast) gets heap envelopes (ra__henv_t) for the others.  The
// top bit of cref marks a heap envelope (call references never use it), so
// the common envelope needs no pointer back to its message.
typedef struct ra__env {
    ra__qnode_t node; // first member: queues link envelopes by it
    ra_pid_t from;
    uint64_t cref;
} ra__env_t;

typedef struct ra__henv {
    ra__env_t env;
    ra_msg_t *msg;
} ra__henv_t;

#define RA__CREF_HEAP (UINT64_C(1) << 63)

// Internal signal sub-kinds carried by RA_MSG_SIGNAL messages.
enum {
    RA__SIG_LINK_EXIT = 1, // a linked actor ended (pid, reason)
    RA__SIG_EXIT = 2,      // exit/2 (pid = sender, reason)
    RA__SIG_SHUTDOWN = 3   // the runtime is stopping: end with RA_SHUTDOWN
};

// A message header is 48 bytes, so a message with up to 16 payload bytes
// fits one 64-byte cache line (and pool block).
struct ra_msg {
    atomic_uint refs;
    uint8_t kind;
    uint8_t sig;         // RA__SIG_* for RA_MSG_SIGNAL
    uint8_t pool;        // pool class the block came from, 0 for malloc
    atomic_bool env_busy;
    int32_t tag;
    uint32_t len;        // payload bytes (the document's, for BSON)
    ra__env_t env;
    _Alignas(16) uint8_t inl[]; // bytes payload, ra__sigdata_t, or for
                                // RA_MSG_BSON the bson_t pointer
};

static inline ra_msg_t *
ra__env_msg(ra__env_t *e)
{
    if (e->cref & RA__CREF_HEAP) {
        return ((ra__henv_t *)e)->msg;
    }
    return (ra_msg_t *)((char *)e - offsetof(ra_msg_t, env));
}

static inline uint64_t
ra__env_cref(const ra__env_t *e)
{
    return e->cref & ~RA__CREF_HEAP;
}

static inline void
ra__env_set(ra__env_t *e, ra_pid_t from, uint64_t cref)
{
    e->from = from;
    e->cref = (e->cref & RA__CREF_HEAP) | cref;
}

static inline bson_t *
ra__msg_bson(const ra_msg_t *m)
{
    bson_t *b;
    memcpy(&b, m->inl, sizeof(b));
    return b;
}

// The payload of EXIT, DOWN and signal messages.
typedef struct ra__sigdata {
    ra_pid_t pid;
    ra_reason_t reason;
    uint64_t ref; // DOWN: monitor reference
} ra__sigdata_t;

static inline ra__sigdata_t *
ra__sig(const ra_msg_t *m)
{
    return (ra__sigdata_t *)(uintptr_t)m->inl;
}

// Small messages come from per-thread pools of fixed blocks (pool.c): class
// 1 holds 64-byte blocks, class 2 128-byte blocks.
#define RA__POOL_CLASSES 2
static inline unsigned
ra__pool_class(size_t size)
{
    return size <= 64 ? 1 : size <= 128 ? 2 : 0;
}
void *ra__pool_alloc(unsigned cls);
// ra__pool_start_small makes each class's first region 64 KiB, and each
// next one twice the last up to 4 MiB, instead of 4 MiB at once: for a
// process that sends few messages and must start fast (a cluster's
// worker).  Call it before the first message.
void ra__pool_start_small(void);
void ra__pool_free(void *p, unsigned cls);

// ra__msg_new_signal creates a payload-less message of kind (RA_MSG_EXIT,
// RA_MSG_DOWN or RA_MSG_SIGNAL with sub-kind sig).  NULL on out of memory.
ra_msg_t *ra__msg_new_signal(uint8_t kind, uint8_t sig, ra_pid_t pid,
                             ra_reason_t reason, uint64_t ref);

// Bytes messages of RA__ROOM_MIN bytes or more keep RA__HEADROOM bytes
// free before the payload and RA__TAILROOM after it (sig == RA__MSG_ROOM),
// where the link layer writes the envelope around the payload.
#define RA__ROOM_MIN (64u << 10)
#define RA__HEADROOM 256u
#define RA__TAILROOM 8u
#define RA__MSG_ROOM 2

// ra__msg_room returns the payload of a message with room around it, or
// NULL for any other.
static inline uint8_t *
ra__msg_room(ra_msg_t *m)
{
    return m->kind == RA_MSG_BYTES && m->sig == RA__MSG_ROOM
               ? m->inl + RA__HEADROOM
               : NULL;
}

// ra__msg_new_ext creates a bytes message whose len bytes at data belong
// to someone else: fn(arg) runs when the message is freed (on any thread).
// The message is read-only (ra_msg_wdata gives NULL).  Returns 0,
// RA_EINVAL or RA_ENOMEM (then fn is not called).
int ra__msg_new_ext(ra_msg_t **out, int32_t tag, const void *data,
                    size_t len, void (*fn)(void *arg), void *arg);

// ra__env_claim returns an envelope for one trip of msg through a queue: the
// embedded one when free, else a heap one.  The caller's reference to msg
// travels with the envelope.  NULL on out of memory.
ra__env_t *ra__env_claim(ra_msg_t *msg);

// ra__env_release returns the envelope after its trip (the message
// reference is not dropped: it passes to whoever popped it).
void ra__env_release(ra__env_t *env);

void ra__mpsc_init(ra__mpsc_t *q);
void ra__mpsc_push(ra__mpsc_t *q, ra__qnode_t *n);
ra__qnode_t *ra__mpsc_pop(ra__mpsc_t *q);
// ra__mpsc_nonempty tells whether a push has happened that pop has not yet
// consumed (possibly still being linked in).  Consumer thread only.
bool ra__mpsc_nonempty(ra__mpsc_t *q);

// Blocked-sender waiting, allocated only for RA_FULL_BLOCK mailboxes.
typedef struct ra__mbwait {
    pthread_mutex_t mtx;
    pthread_cond_t cond;
    atomic_uint waiters;
} ra__mbwait_t;

struct ra_mailbox {
    ra__mpsc_t sys;
    ra__mpsc_t user;
    size_t cap;              // 0: unbounded
    atomic_size_t count;     // queued user messages, bounded only
    atomic_uint_fast64_t dropped;
    ra__mbwait_t *wait;
    uint8_t policy;
    atomic_bool closed;
};

// ra__mailbox_init prepares an embedded mailbox.  Returns 0 or RA_ENOMEM.
int ra__mailbox_init(ra_mailbox_t *mb, size_t cap, ra_full_policy_t policy);
// ra__mailbox_fini frees queued messages and the wait structure.
void ra__mailbox_fini(ra_mailbox_t *mb);

// ra__mailbox_push_env queues env on the user lane (or the system lane when
// system is true).  may_block says whether an RA_FULL_BLOCK sender may wait.
// On success the envelope and its message belong to the mailbox; on error
// the envelope was released and the caller keeps the message reference.
int ra__mailbox_push_env(ra_mailbox_t *mb, ra__env_t *env, bool system,
                         bool may_block);

// ra__mailbox_pop_env pops the next envelope, system lane first; *system
// tells which lane.  NULL when both are empty.
ra__env_t *ra__mailbox_pop_env(ra_mailbox_t *mb, bool *system);

// ra__mailbox_nonempty: consumer thread only.
bool ra__mailbox_nonempty(ra_mailbox_t *mb);

// ra__mailbox_reset empties both lanes (freeing messages) and reopens the
// mailbox with a new bound, keeping the allocation.  Returns 0 or ENOMEM.
int ra__mailbox_reset(ra_mailbox_t *mb, size_t cap, ra_full_policy_t policy);

#endif

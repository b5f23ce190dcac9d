// ra_mailbox.h - an actor's mailbox: two lock-free MPSC lanes.
//
// A mailbox has a user lane and a system lane.  Exit signals, monitor DOWN
// messages and supervisor commands go through the system lane and are always
// popped before user messages, so they overtake a backlog.  The user lane
// may be bounded; the system lane never is (a full mailbox must still be
// killable).
//
// Threads: any thread may push, close, or read the counters.  Only one
// thread at a time may pop (the scheduler thread running the owning actor).
// destroy must not race with anything.
#ifndef RA_MAILBOX_H
#define RA_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#include "ra_msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ra_mailbox ra_mailbox_t;

// What a push into a full bounded user lane does.
typedef enum ra_full_policy {
    RA_FULL_FAIL = 0,  // the send fails with RA_EFULL; the caller keeps msg
    RA_FULL_DROP = 1,  // the message is dropped and counted; send returns 0
    RA_FULL_BLOCK = 2  // the sender waits for room (only threads that are
                       // not scheduler threads; those get RA_EFULL)
} ra_full_policy_t;

// ra_mailbox_new creates an empty mailbox whose user lane holds at most cap
// messages (0 = unbounded) with the given policy for a full lane.  Returns
// 0, RA_EINVAL or RA_ENOMEM.  Caller owns *out.
int ra_mailbox_new(ra_mailbox_t **out, size_t cap, ra_full_policy_t policy);

// ra_mailbox_destroy frees the mailbox and every queued message and sets *mb
// to NULL.  Safe on NULL and twice.
void ra_mailbox_destroy(ra_mailbox_t **mb);

// ra_mailbox_push queues *msg on the user lane.  On success *msg is NULL and
// belongs to the mailbox (also when a full RA_FULL_DROP mailbox dropped it).
// On RA_EFULL or RA_ECLOSED the caller still owns *msg.  RA_FULL_BLOCK waits
// until the consumer makes room or the mailbox is closed.
int ra_mailbox_push(ra_mailbox_t *mb, ra_msg_t **msg);

// ra_mailbox_push_system queues *msg on the system lane (never bounded).
// Same ownership rules; fails only with RA_ECLOSED or RA_EINVAL.
int ra_mailbox_push_system(ra_mailbox_t *mb, ra_msg_t **msg);

// ra_mailbox_pop takes the oldest system message, or if there is none the
// oldest user message.  Returns 0 and stores it in *out (caller owns it), or
// RA_EAGAIN when both lanes are empty.  Consumer thread only.
int ra_mailbox_pop(ra_mailbox_t *mb, ra_msg_t **out);

// ra_mailbox_close makes every later push fail with RA_ECLOSED and wakes
// blocked senders.  Queued messages stay poppable.  Idempotent.
void ra_mailbox_close(ra_mailbox_t *mb);

// ra_mailbox_size returns the number of user messages queued (exact for a
// bounded mailbox, maintained only there: 0 for an unbounded one).
size_t ra_mailbox_size(const ra_mailbox_t *mb);

// ra_mailbox_dropped returns how many messages RA_FULL_DROP has dropped.
uint64_t ra_mailbox_dropped(const ra_mailbox_t *mb);

#ifdef __cplusplus
}
#endif
#endif

// ra_actor.h - the in-process actor runtime.
//
// A runtime (ra_runtime_t) owns a set of scheduler threads and every actor
// spawned in it.  An actor is a behaviour (init / handle / terminate
// callbacks) plus the state its init returned; it runs on one scheduler
// thread at a time, handling its messages one by one.  Actors are named by
// value (ra_pid_t), never by pointer: a message to an actor that has ended
// fails with RA_ENOPROC.
//
// Scheduling.  Each scheduler thread has its own run queue; idle threads
// steal from busy ones.  An actor made runnable by a send from a scheduler
// thread runs next on that same thread (the message's data is still in its
// cache, and a cross-core wake-up costs tens of microseconds), and an actor
// handles at most `quantum` messages before others get their turn.
//
// Errors and exits follow Erlang.  An actor ends when a callback returns a
// negative value (the reason is that error code), when it calls ra_exit, or
// when it receives an exit signal it does not trap.  terminate always runs,
// whatever the reason (even RA_KILL, unlike gen_server: C state must be
// freed).  Linked actors then receive an exit signal carrying the reason
// (RA_KILLED if it was RA_KILL); those not trapping exits end with the same
// reason unless it is RA_NORMAL; those trapping exits get an RA_MSG_EXIT
// message.  Monitors deliver exactly one RA_MSG_DOWN.  Exit signals and DOWN
// messages travel on the mailbox's system lane and overtake user messages.
//
// What C cannot survive in-process: a segmentation fault, abort() or an
// infinite loop in a callback takes the whole process (or a scheduler
// thread) with it, and a callback is never preempted: an exit signal to an
// actor stuck in a long handler takes effect when the handler returns.  Run
// code that may crash in a worker process (the cluster layer) where the
// supervisor sees the process die and restarts it.
//
// Threads: ra_runtime_* functions, ra_spawn, ra_runtime_send,
// ra_runtime_exit, timers and ra_reply_to may be called from any thread.
// Functions taking a ra_ctx_t act as the actor that ctx belongs to and may
// only be called from inside that actor's callbacks (or, for a scope, from
// the thread that owns the scope).
#ifndef RA_ACTOR_H
#define RA_ACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ra_error.h"
#include "ra_mailbox.h"
#include "ra_msg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ra_runtime ra_runtime_t;
typedef struct ra_ctx ra_ctx_t;

// Runtime options; zero means the default.
typedef struct ra_runtime_opts {
    unsigned threads;     // scheduler threads (default: online CPUs);
                          // up to 32 spares may start while they wait
    unsigned quantum;     // messages per turn of an actor (default 64)
    uint32_t node;        // node number written into pids (default 0)
    uint32_t proc;        // process number written into pids (default 0)
    // spin: how many rounds an idle scheduler thread looks for work
    // (stealing, with a short pause and a sched_yield between, so that
    // threads woken on its core run meanwhile) before it sleeps (default
    // 20).  Spinning saves a futex wake-up when work comes soon after,
    // but takes the CPU from the threads that have work when cores are
    // few and shared (other processes, a link's I/O thread): 200 rounds
    // made round trips between two processes twice as slow on 2 cores,
    // and gained nothing measurable within one process (BENCHMARKS.md).
    unsigned spin;
} ra_runtime_opts_t;

// ra_runtime_new starts a runtime with its scheduler threads and timer
// thread.  opts may be NULL.  Returns 0, RA_EINVAL (threads > 1024),
// RA_ENOMEM or -errno from pthread_create.  Caller owns *out.
int ra_runtime_new(ra_runtime_t **out, const ra_runtime_opts_t *opts);

// ra_runtime_destroy stops every actor with reason RA_SHUTDOWN (their
// terminate callbacks run), waits for them, stops the threads, frees
// everything and sets *rt to NULL.  Must not be called from a scheduler
// thread.  Scopes still open are ended too; their ctx must not be used
// afterwards.  Safe on NULL.
void ra_runtime_destroy(ra_runtime_t **rt);

// ra_runtime_threads returns the number of scheduler threads asked for
// (opts.threads, or the default).  Spare threads, started while some of
// these wait (see ra_call), are not counted.
unsigned ra_runtime_threads(const ra_runtime_t *rt);

// ra_runtime_actor_count returns the number of actors (and scopes) alive.
size_t ra_runtime_actor_count(const ra_runtime_t *rt);

// ra_behaviour_t describes an actor.  The struct must outlive the actors
// spawned from it (make it static const).
//
// init runs synchronously inside ra_spawn, on the spawning thread, as the
// new actor (ctx is the child's): it stores the actor's state in *state
// (which starts as the spawn argument) and returns 0, or a negative error,
// in which case the actor ends with that reason and ra_spawn returns it.
// init may be NULL.
//
// handle is called for each message; msg is borrowed for the duration of the
// call (take ra_msg_ref to keep or forward it).  Returning a negative value
// ends the actor with that reason.  It must not be NULL.
//
// terminate runs once when the actor ends, with the reason, and must free
// the state.  It may send messages but not spawn, link or call.  May be NULL.
typedef struct ra_behaviour {
    const char *name;
    int (*init)(ra_ctx_t *ctx, void **state);
    int (*handle)(ra_ctx_t *ctx, void *state, ra_msg_t *msg);
    void (*terminate)(ra_ctx_t *ctx, void *state, ra_reason_t reason);
} ra_behaviour_t;

// Spawn flags.
enum {
    RA_SPAWN_LINK = 1u << 0,      // link the child to the calling actor
    RA_SPAWN_MONITOR = 1u << 1,   // the calling actor monitors the child
    RA_SPAWN_TRAP_EXIT = 1u << 2  // the child traps exits from the start
};

// Spawn options; a NULL pointer or zeroed struct means an unbounded mailbox
// and no flags.
typedef struct ra_spawn_opts {
    unsigned flags;
    size_t mailbox_cap;           // user-lane bound, 0 = unbounded
    ra_full_policy_t full_policy; // what a send to a full mailbox does
} ra_spawn_opts_t;

// ra_spawn creates an actor of behaviour b with initial state arg and runs
// its init.  RA_SPAWN_LINK and RA_SPAWN_MONITOR need a calling actor: use
// ra_spawn_from.  On success stores the pid in *out (out may be NULL) and
// returns 0.  Returns RA_EINVAL, RA_ENOMEM, RA_ECLOSED (runtime shutting
// down) or init's error; in the last case the actor existed and ended with
// that reason, so links and monitors set up by ra_spawn_from fire.
int ra_spawn(ra_runtime_t *rt, const ra_behaviour_t *b, void *arg,
             const ra_spawn_opts_t *opts, ra_pid_t *out);

// ra_spawn_from is ra_spawn by the actor of ctx: RA_SPAWN_LINK links the
// child to it and RA_SPAWN_MONITOR makes it monitor the child (the monitor
// reference is stored in *mref, which may then not be NULL), both before
// the child's init runs.
int ra_spawn_from(ra_ctx_t *ctx, const ra_behaviour_t *b, void *arg,
                  const ra_spawn_opts_t *opts, ra_pid_t *out,
                  uint64_t *mref);

// ra_self returns the pid of ctx's actor.
ra_pid_t ra_self(const ra_ctx_t *ctx);

// ra_ctx_runtime returns the runtime ctx's actor belongs to.
ra_runtime_t *ra_ctx_runtime(const ra_ctx_t *ctx);

// ra_sender returns the sender of the message being handled (RA_PID_NIL
// when it came from outside any actor, or for timers).
ra_pid_t ra_sender(const ra_ctx_t *ctx);

// ra_send queues *msg for actor to, as ctx's actor.  It never blocks on an
// unbounded mailbox.  On success *msg is NULL.  On RA_ENOPROC (no such
// actor), RA_EFULL or RA_ECLOSED the caller still owns *msg.  With
// RA_FULL_BLOCK a scope (not an actor) waits for room.
int ra_send(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t **msg);

// ra_runtime_send is ra_send from outside any actor (sender RA_PID_NIL);
// any thread.  A thread that is not a scheduler thread blocks on a full
// RA_FULL_BLOCK mailbox.
int ra_runtime_send(ra_runtime_t *rt, ra_pid_t to, ra_msg_t **msg);

// ra_exit ends ctx's actor with reason once the current callback returns
// (C has no safe way to unwind a callback).  Later calls in the same
// callback replace the reason.
void ra_exit(ra_ctx_t *ctx, ra_reason_t reason);

// ra_exit_pid sends an exit signal with reason to pid, as Erlang's
// exit(Pid, Reason): RA_KILL ends it with RA_KILLED whatever it does; a
// trapping actor gets an RA_MSG_EXIT message; otherwise RA_NORMAL is
// ignored and any other reason ends it.  Returns 0 or RA_ENOPROC.
int ra_exit_pid(ra_ctx_t *ctx, ra_pid_t pid, ra_reason_t reason);

// ra_runtime_exit is ra_exit_pid from outside any actor; any thread.
int ra_runtime_exit(ra_runtime_t *rt, ra_pid_t pid, ra_reason_t reason);

// ra_trap_exit sets whether ctx's actor turns exit signals into RA_MSG_EXIT
// messages (RA_KILL is never trapped) and returns the previous setting.
bool ra_trap_exit(ra_ctx_t *ctx, bool on);

// ra_link links ctx's actor and pid both ways (a no-op if already linked).
// If pid does not exist it returns RA_ENOPROC, and if the caller traps
// exits it also receives an RA_MSG_EXIT with reason RA_NOPROC.
int ra_link(ra_ctx_t *ctx, ra_pid_t pid);

// ra_unlink removes the link; after it returns no exit signal from that
// link is delivered, even one already in flight.  Returns 0 (also when
// there was no link).
int ra_unlink(ra_ctx_t *ctx, ra_pid_t pid);

// ra_monitor makes ctx's actor receive one RA_MSG_DOWN when pid ends (at
// once, with reason RA_NOPROC, if it does not exist).  Stores the monitor
// reference in *mref and returns 0, or RA_EINVAL/RA_ENOMEM.
int ra_monitor(ra_ctx_t *ctx, ra_pid_t pid, uint64_t *mref);

// ra_demonitor removes a monitor and flushes: no DOWN for mref is delivered
// after it returns, even one already queued.  Returns 0, or RA_ENOENT if
// mref is not an active monitor of this actor.
int ra_demonitor(ra_ctx_t *ctx, uint64_t mref);

// ra_send_after queues *msg for to after delay_ms milliseconds (sender
// RA_PID_NIL) and stores a timer reference in *tref (may be NULL).  On
// success *msg is NULL.  If to has ended by then the message is dropped.
// Returns 0, RA_EINVAL, RA_ENOMEM or RA_ECLOSED.  Any thread.
int ra_send_after(ra_runtime_t *rt, ra_pid_t to, uint64_t delay_ms,
                  ra_msg_t **msg, uint64_t *tref);

// ra_timer_cancel cancels a timer.  Returns 0 if it had not fired (its
// message is freed, never delivered) or RA_ENOENT if it had already fired
// or was cancelled.  Any thread.
int ra_timer_cancel(ra_runtime_t *rt, uint64_t tref);

// ra_call sends *req to actor to as a call and waits up to timeout_ms
// (negative: forever) for its ra_reply; the caller owns *reply on success.
// The caller monitors to while it waits: if to is dead or dies, the call
// fails at once with RA_ENOPROC; if the time runs out it fails with
// RA_ETIMEOUT and a reply arriving later is discarded, never delivered as a
// stray message.  On success and on RA_ETIMEOUT/RA_ENOPROC after sending,
// *req is NULL; on other errors the caller still owns *req.
//
// Called from an actor, a callee queued on the caller's own scheduler
// thread runs at once on that thread, so such a call costs no context
// switch.  While the caller then waits (it receives nothing meanwhile), its
// thread's other actors go to other threads; if fewer than the runtime's
// thread count would be left running, a spare scheduler thread starts (at
// most 32 beyond the configured ones; they stay, parked when idle, until
// the runtime ends).  So a waiting caller never holds up an actor that it
// waits for, or one that waits for it.  RA_EDEADLK if to is the caller.
int ra_call(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t **req, int64_t timeout_ms,
            ra_msg_t **reply);

// ra_reply answers the call being handled with *reply (ownership passes on
// success, *reply is set to NULL even if the caller gave up).  Returns 0, or
// RA_EINVAL if the current message is not a call.
int ra_reply(ra_ctx_t *ctx, ra_msg_t **reply);

// ra_call_ref returns a reference to the call being handled (0 if it is not
// a call), so the actor can answer later with ra_reply_to.
uint64_t ra_call_ref(const ra_ctx_t *ctx);

// ra_reply_to answers the call cref from anywhere.  Returns 0 (*reply is
// NULL; it is freed if the caller no longer waits) or RA_EINVAL.
int ra_reply_to(ra_runtime_t *rt, uint64_t cref, ra_msg_t **reply);

// ra_scope_new makes the calling thread an actor of rt, for threads that
// are not scheduler threads (main, tests, foreign threads): it gets a pid,
// can send, link, monitor, trap exits, call, and receive with ra_receive.
// Returns 0, RA_ENOMEM or RA_ECLOSED.  Caller owns *out.
int ra_scope_new(ra_runtime_t *rt, ra_ctx_t **out);

// ra_scope_destroy ends the scope's actor with RA_NORMAL (its links and
// monitors fire), frees it and sets *ctx to NULL.  Safe on NULL.
void ra_scope_destroy(ra_ctx_t **ctx);

// ra_receive waits up to timeout_ms (negative: forever, 0: poll) for the
// scope's next message (system lane first) and stores it in *out (caller
// owns it).  Returns 0, RA_ETIMEOUT, or RA_EEXIT when the scope's actor was
// ended by an exit signal (ra_scope_exit_reason tells why).
int ra_receive(ra_ctx_t *ctx, int64_t timeout_ms, ra_msg_t **out);

// ra_scope_exit_reason returns the reason the scope's actor ended with, or
// -1 while it is alive.
ra_reason_t ra_scope_exit_reason(const ra_ctx_t *ctx);

// ra_is_alive returns whether pid names a live actor of rt.
bool ra_is_alive(ra_runtime_t *rt, ra_pid_t pid);

// ra_actor_stats_t is a snapshot of one actor's counters.
typedef struct ra_actor_stats {
    size_t mailbox_len;   // queued user messages (bounded mailboxes only)
    uint64_t dropped;     // messages dropped by RA_FULL_DROP
    size_t links;         // current links
    size_t monitors;      // monitors others hold on this actor
    bool trap_exit;
} ra_actor_stats_t;

// ra_actor_stats fills *st for pid.  Returns 0 or RA_ENOPROC.
int ra_actor_stats(ra_runtime_t *rt, ra_pid_t pid, ra_actor_stats_t *st);

#ifdef __cplusplus
}
#endif
#endif

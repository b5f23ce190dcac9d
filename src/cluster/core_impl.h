// core_impl.h - the core actor's tables, shared by core.c (tasks,
// leases), actor_core.c (actors owned or looked up here) and the API.
#ifndef RA_CORE_IMPL_H
#define RA_CORE_IMPL_H

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include "cluster_impl.h"
#include "hmap.h"

typedef struct ra__task ra__task_t;

// A queue of tasks (doubly linked through the tasks themselves; a task is
// in at most one queue).
typedef struct ra__tq {
    ra__task_t *head, *tail;
    size_t n;
} ra__tq_t;

// A task, from submission to its result.  Created by a user thread,
// owned by the core from RA__T_SUBMIT on.
struct ra__task {
    uint64_t id;              // = the id of its result object
    uint32_t attempt;
    uint8_t type;             // RA__TASK_*
    ra_msg_t *wire;           // what is sent to the worker
    int retries;              // left; -1 forever
    bool retry_exc;
    bool abandoned;           // its object already failed (cancel/deadline)
    bool in_order;            // RA__TASK_METHOD: in its actor's order queue
    bool order_ready;         // ... with its arguments resolved
    int64_t deadline;         // CLOCK_MONOTONIC ms, 0 none
    double cpus, gpus;
    ra_resources_t x;         // memory and custom resources
    uint64_t pg;              // placement group (0: none)
    int32_t bundle;           // its bundle index (-1: any)
    uint32_t near;            // node holding its large arguments (0: none
                              // known, or this one)
    uint64_t actor;           // RA__TASK_METHOD: the actor's handle key
    uint64_t *refs;           // objects of this process among the args
    uint32_t nrefs;
    uint64_t *held;           // args passed as store references: kept
    uint32_t nheld;           // (borrowed) until the task ends
    uint64_t *lent;           // objects of this process lent to it
    uint32_t nlent;           // (RA_ARG_BORROW): held until it ends
    ra_ref_t *flent;          // borrowed references passed on to it
    uint32_t nflent;          // (fref tasks), until it ends
    bool pulling;             // its result is being copied to this node
    ra_msg_t *pull;           // ... by this request to the object manager
                              // (sent again if that one is restarted)
    uint32_t waiting;         // of those, still pending
    struct ra__lease *lease;  // where it runs now
    int64_t sent_us;          // when it was pushed to its worker
    char *label;              // ra_task_opts_t.name (NULL: none)
    bool evented;             // the GCS's task table heard of it
    ra__task_t *prev, *next;
};

// Queue operations (core.c); the core actor's thread only.
void ra__tq_push(ra__tq_t *q, ra__task_t *t);
void ra__tq_remove(ra__tq_t *q, ra__task_t *t);
bool ra__tq_has(const ra__tq_t *q, const ra__task_t *t);

// A task waiting on an object.
typedef struct ra__dep {
    ra__task_t *task;
    struct ra__dep *next;
} ra__dep_t;

enum { RA__OBJ_PENDING = 0, RA__OBJ_READY = 1, RA__OBJ_FAILED = 2 };

// An object owned by this process.
typedef struct ra__obj {
    uint8_t state;
    uint8_t kind;
    bool released;
    uint32_t borrows;         // pending tasks that take it as argument
    int err;
    bool in_store;            // the value is in the node's object store
    bool pulling;             // the core's: being copied here from the
                              // store of another node (still pending)
    uint8_t oid[16];          // its id there
    ra_msg_t *msg;            // holds the value bytes (inline values)
    const void *data;
    size_t len;
    char *text;               // error text
    ra__task_t *task;         // the core's: the task that makes it
    ra__dep_t *deps;          // the core's: tasks waiting on it
    ra_msg_t *nest;           // the references it contains (a nest, see
                              // cluster_impl.h), held while it lives
    uint64_t *rwait;          // GETs of borrowers waiting for it (call
    uint32_t nrwait;          // references, answered when it is done)
} ra__obj_t;

// A scheduling class: tasks of one resource shape share leases.
typedef struct ra__cls {
    double cpus, gpus;
    ra_resources_t x;
    uint64_t pg;
    int32_t bundle;
    uint32_t near;            // node holding the tasks' large arguments
    ra__tq_t q;
    unsigned pending_req;
    unsigned nleases;
    int64_t avg_us;           // how long a task of the class keeps a worker
    unsigned depth;           // tasks in flight per lease (see dispatch)
    struct ra__cls *next;
} ra__cls_t;

// A worker leased from the raylet.
typedef struct ra__lease {
    uint64_t id;
    ra_pid_t exec, host;
    uint64_t mref;
    ra__cls_t *cls;
    ra__tq_t inflight;
    bool dead;
    bool idle_armed;
    int64_t last_done_us;
    ra_reason_t down_why;     // why its executor was lost (DOWN)
    struct ra__lease *next;
} ra__lease_t;


// An actor handle of this process: owned (created here) or looked up.
typedef struct ra__cactor {
    uint64_t key;
    char cls[RA__NAME_MAX + 1];
    char name[RA__NAME_MAX + 1];
    char ns[RA__NAME_MAX + 1];
    bool owned;
    bool killed;
    bool backlog;             // the link to its worker was full: calls
                              // wait in waiting, in order, for a retry
    bool detached;            // outlives its owner's job
    int state;
    ra_msg_t *ctor;           // constructor wire, kept for restarts
    uint64_t ctor_id;         // task id of the constructor
    uint64_t create_obj;      // completed when first alive
    int max_restarts, max_task_retries, restarts;
    double cpus, gpus;
    ra_resources_t x;
    uint64_t pg;
    int32_t bundle;
    int isolation;
    ra_pid_t pid, host;
    uint64_t mref, hmref;
    uint64_t lease;
    ra__tq_t order;           // calls submitted and not yet handed on:
                              // they leave in submission order, each
                              // once its arguments are resolved
    ra__tq_t waiting;         // calls before it is alive
    ra__tq_t inflight;        // calls sent, not answered
    char death[256];
    char how[128];            // how its worker died, from the raylet
    char ep[256];             // its worker's tcp endpoint ("": ipc)
    bool down_pending;        // lost; waiting briefly for how
    int64_t resolve_until;    // looked up, lost: the name is asked for
                              // its new instance until then (mono ms)
    bool down_host;           // the host (not the instance) was lost
    ra_reason_t down_why;
} ra__cactor_t;

// Commands from user threads to the core.
enum {
    RA__CMD_ACTOR_NEW = 1,
    RA__CMD_ACTOR_KILL = 2,
    RA__CMD_CANCEL = 3,
    RA__CMD_ACTOR_ADOPT = 4,
    RA__CMD_PG_GONE = 5       // id: a placement group this process removed
};

typedef struct ra__cmd {
    int op;
    uint64_t id;
    bool force;
} ra__cmd_t;

// An entry of the core's inbox: a task or a command from a user thread.
// They travel through this locked list, not inside messages, so that no
// message (which could come from another process) is ever taken for a
// pointer.
typedef struct ra__inbox {
    ra__task_t *task;
    ra__cmd_t *cmd;
    struct ra__inbox *next;
} ra__inbox_t;

// The part of the core shared with user threads.
struct ra__core {
    pthread_mutex_t inmu;     // guards the inbox
    ra__inbox_t *in_head, **in_tail;
    bool in_woken;            // a RA__T_SUBMIT wake-up is on its way
    pthread_mutex_t mu;
    pthread_cond_t cv;        // broadcast when an object completes
    ra__obj_t **objs;
    size_t cap;
    uint64_t next_id;
    size_t live, done;
    ra__cactor_t **actors;     // by key
    size_t acap;
    uint64_t next_actor;
    // The core's indexes of its actors, keyed {x, 0}, values
    // ra__cactor_t * (actors are freed only with the table):
    ra__hmap_t constructing;  // ctor id: constructor sent, not answered
    ra__hmap_t by_mref;       // monitor of an instance or of its host
    ra__hmap_t by_lease;      // lease id
    // References lent to other processes (borrow.c): the foreign ones
    // this process borrows (ra__fref_t *, under mu), and the core's
    // records of processes that borrow ours.
    ra__hmap_t frefs;
    ra__hmap_t bprocs;        // {node << 32 | proc, 0} -> its record
    ra__hmap_t bmrefs;        // {monitor ref, 0} -> the same
    _Atomic unsigned nborrowers; // entries of bprocs (any thread reads)
    void *core;               // the core actor's state (core_t)
    // The core's: task events not yet sent to the GCS's task table
    // (RA__GCS_TASK_EVENTS; see gcs_tasks.c), and whether a tick that
    // sends them is on its way.
    ra__wbuf_t tev;
    uint32_t ntev;
    bool tev_armed;
};

// ra__core_post appends a task or a command (exactly one of them) to the
// core's inbox and wakes the core.  On success the core owns it.  Returns
// 0, RA_ENOMEM or the error of the wake-up send (then nothing was queued).
int ra__core_post(ra__cluster_t *c, ra__task_t *t, ra__cmd_t *cmd);

// Objects (mu taken inside).
int ra__obj_new(ra__core_t *cs, uint64_t *id);
// ra__obj_release marks an object unneeded (freed once finished).
void ra__obj_release(ra__core_t *cs, uint64_t id);
// ra__obj_unborrow ends a pending task's hold on an argument object.
void ra__obj_unborrow(ra__core_t *cs, uint64_t id);
// ra__obj_maybe_free_locked frees object id if nothing needs it (mu held).
void ra__obj_maybe_free_locked(ra__core_t *cs, uint64_t id);
// ra__obj_at: call with mu held.
ra__obj_t *ra__obj_at(ra__core_t *cs, uint64_t id);

// Actors (actor_core.c).  ra__cactor_at: with or without mu; the table
// only grows, records are freed at ra__core_free.
ra__cactor_t *ra__cactor_at(ra__core_t *cs, uint64_t key);
int ra__actor_new(ra__core_t *cs, ra__cactor_t **out);
// ep is the endpoint of the host's process ("" on one node).
void ra__actor_granted(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key,
                       int status, uint64_t lease, ra_pid_t host,
                       const char *ep);
bool ra__actor_is_ctor_result(ra_ctx_t *ctx, ra__core_t *cs, ra_msg_t *m);
void ra__actor_down(ra_ctx_t *ctx, ra__core_t *cs, uint64_t mref,
                    ra_pid_t pid, ra_reason_t why);
void ra__actor_lost_tick(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key);
// ra__core_tick_actor arms the core's short wait for news of an actor's
// lost worker (then ra__actor_lost_tick).
void ra__core_tick_actor(ra_ctx_t *ctx, void *k, uint64_t key);
// A looked-up handle whose instance was lost asks the GCS, every
// ms, where the actor's name leads now (ra__actor_resolve_tick).
void ra__core_tick_resolve(ra_ctx_t *ctx, void *k, uint64_t key,
                           uint64_t ms);
void ra__actor_resolve_tick(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key);
// An actor whose calls wait for room on the link to its worker tries
// again ms later (ra__actor_backlog_tick).
void ra__core_tick_backlog(ra_ctx_t *ctx, void *k, uint64_t key,
                           uint64_t ms);
void ra__actor_backlog_tick(ra_ctx_t *ctx, ra__core_t *cs, uint64_t key);
// ra__core_tev_running notes for the GCS's task table that task t was
// sent to exec (an actor instance, for a method).  The core's thread.
void ra__core_tev_running(ra__core_t *cs, const ra__task_t *t,
                          ra_pid_t exec);
void ra__actor_lease_lost(ra_ctx_t *ctx, ra__core_t *cs, uint64_t lease,
                          const char *how);
void ra__actor_call(ra_ctx_t *ctx, void *k, ra__core_t *cs, ra__cactor_t *a,
                    ra__task_t *t);
void ra__actor_stop_call(ra_ctx_t *ctx, ra__core_t *cs, ra__task_t *t,
                         int err, const char *text);
void ra__core_cmd(ra_ctx_t *ctx, void *k, ra__core_t *cs, ra__cmd_t *cmd);
// ra__actors_reask asks the raylet again for a worker for every owned
// actor that waits for one: the raylet was restarted in place and forgot
// the requests (core.c, raylet_back), or refused one of an earlier
// incarnation's job environment.  A second grant for one actor is given
// back.
void ra__actors_reask(ra_ctx_t *ctx, ra__core_t *cs);
void ra__actors_free(ra__core_t *cs);
void ra__actor_table_free(ra__core_t *cs);

// Core services for actor_core.c.
void ra__core_task_fail(ra_ctx_t *ctx, void *k, ra__task_t *t, int err,
                        const char *text);
// ra__core_too_big fails task t with RA_EINVAL, and a text that says
// why, when a send of its message failed with err because the message is
// larger than the link carries (ra_link_max_msg): no worker could ever
// take it.  Returns whether it did; if not, t is untouched.
bool ra__core_too_big(ra_ctx_t *ctx, void *k, ra__task_t *t, int err);
int ra__core_lease_req(ra_ctx_t *ctx, void *k, double cpus, double gpus,
                       const ra_resources_t *x, uint64_t pg, int32_t bundle,
                       int isolation, uint64_t akey);
void ra__core_lease_return(ra_ctx_t *ctx, void *k, uint64_t lease,
                           bool kill);
void ra__core_stop_task(ra_ctx_t *ctx, void *k, uint64_t id, int err,
                        const char *text, bool kill);
void ra__core_task_free(ra__task_t *t);
// ra__core_pg_gone returns the idle leases of placement group pg, which
// this process removed: a task submitted after the removal must ask the
// raylet (and fail), not run on a lease kept from before it.
void ra__core_pg_gone(ra_ctx_t *ctx, void *k, uint64_t pg);
// ra__task_wire_attempt makes the wire carry the task's current attempt
// (a retried task answers with it, so that a late answer to an earlier
// attempt is not taken for it).  Returns 0 or RA_ENOMEM.
int ra__task_wire_attempt(ra__task_t *t);
// ra__obj_set_nest gives pending object id the references it contains
// (*nest, taken; see ra__nest_make), before it is completed.
void ra__obj_set_nest(ra__core_t *cs, uint64_t id, ra_msg_t **nest);
void ra__core_obj_complete(ra__core_t *cs, uint64_t id, int err,
                           uint8_t kind, ra_msg_t *msg, const void *data,
                           size_t len);

// ra__pull_here has this node's object manager copy loc into this node's
// store and waits for it (ctx: an actor or a scope).  On success the copy
// holds one reference for the caller, who says RA__OBJ_UNUSE when done.
// Returns 0 or an error, with why set.
int ra__pull_here(ra_ctx_t *ctx, ra__cluster_t *c, const ra__objloc_t *loc,
                  char *why, size_t cap);

// ---- references lent to other processes (borrow.c) ----

// ra__own_ep is the endpoint that processes of other nodes reach this one
// at, told with the references it lends: its link's tcp endpoint, or ""
// (on one node the default ipc names serve).
const char *ra__own_ep(const ra__cluster_t *c);


// A reference of another process that this one borrows (cs->frefs, keyed
// {owner node << 32 | proc, id}; cs->mu).  It is forgotten when nothing
// below needs it.
typedef struct ra__fref {
    ra_ref_t ref;
    ra_pid_t core;            // the owner's core
    char ep[256];             // the owner's endpoint ("" on one node)
    uint32_t calls;           // calls running here that received it
    uint32_t keeps;           // ra_borrow holds (each ended by ra_release)
    uint32_t tasks;           // tasks submitted here with it, not ended
    uint32_t busy;            // fetches under way
    bool registered;          // the owner counts this process (ADD)
    bool cached;              // the fields below hold the outcome
    int status;
    uint8_t kind;
    ra_msg_t *msg;            // the value inline, or the error text
    const void *data;
    size_t len;
    bool in_store;            // the value is oid in this node's store
    bool pulled;              // a copy pulled here for us (UNUSE it)
    ra_oid_t oid;
    bool holds_inner;         // the value is a reference, which this
                              // process borrows while it keeps the value
    ra_msg_t *nest;           // the references the value contains, each
                              // borrowed while it keeps the value
    bool located;             // not fetched, but its place is known:
    uint32_t loc_node;        // the node whose store holds it
    uint64_t size;            // its size
} ra__fref_t;

// The outcome of a borrowed object, for ra_get: on status 0 the value
// (inline in msg/data/len, or oid in this node's store), else the error
// text in data/len.  msg is the caller's to unref.
typedef struct ra__fval {
    int status;
    uint8_t kind;
    ra_msg_t *msg;
    const void *data;
    size_t len;
    bool in_store;
    ra_oid_t oid;
    ra_msg_t *nest;           // the references in it (NULL: none); the
                              // caller's to unref
} ra__fval_t;

// The borrower's side; every function takes cs->mu but _locked ones.
// ra__fref_enter: a call that received l starts (calls++), learning the
// owner's address.  ra__fref_leave: it ends; a reference still needed
// after it is registered with its owner first (a call of up to 10 s).
int ra__fref_enter(ra__cluster_t *c, const ra__lent_t *l);
void ra__fref_leave(ra_ctx_t *ctx, ra__cluster_t *c, ra_ref_t ref);
// ra__borrow_add asks the owner's core (a call of up to 10 s from ctx, or
// from a scope of its own when ctx is NULL) to count process {node,
// proc} as a borrower of its object id.  Returns 0 or the error.
int ra__borrow_add(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t id,
                   ra_pid_t core, uint32_t node, uint32_t proc);
// ra__nest_register has the owner of each reference in a nest count
// process {node, proc} as its borrower: one ADDN call per owner (from
// ctx, or a scope of its own when ctx is NULL).  On an error, the
// registrations made are undone where they can be, why says which owner
// refused, and the error is returned.
int ra__nest_register(ra_ctx_t *ctx, ra__cluster_t *c, const void *nest,
                      size_t len, uint32_t node, uint32_t proc, char *why,
                      size_t cap);
// ra__borrow_del tells the owner's core that process {node, proc} no
// longer borrows its object id (undoing an ra__borrow_add).
void ra__borrow_del(ra__cluster_t *c, uint64_t id, ra_pid_t core,
                    uint32_t node, uint32_t proc);
// ra__fref_keep: ra_borrow (RA_ENOENT when ref is not borrowed here).
int ra__fref_keep(ra__cluster_t *c, ra_ref_t ref);
// ra__fref_release: ra_release of a borrowed reference; false when
// there was no ra_borrow hold to end.
bool ra__fref_release(ra__cluster_t *c, ra_ref_t ref);
// ra__fref_lend_locked: a task submitted here takes ref along (tasks++);
// *out gets the owner's core.  RA_ENOENT when ref is not borrowed here.
int ra__fref_lend_locked(ra__cluster_t *c, ra_ref_t ref, ra__lent_t *out);
// ra__fref_untask: that task ended.
void ra__fref_untask(ra__cluster_t *c, ra_ref_t ref);
bool ra__fref_known(ra__cluster_t *c, ra_ref_t ref);
// ra__fref_hold_locked: a result object of this process holds l, a
// reference a task returned, for which the task registered this process
// with l's owner; ra__fref_unhold_locked: that object is freed.
void ra__fref_hold_locked(ra__cluster_t *c, const ra__lent_t *l);
void ra__fref_unhold_locked(ra__cluster_t *c, const ra__lent_t *l);
// ra__nest_make holds each of refs (of this process, or borrowed here)
// for a new object that contains them and writes the nest that names
// them into *out.  Returns 0, RA_ENOENT (a reference that is neither
// ours nor borrowed here; nothing is held), RA_EINVAL or RA_ENOMEM.
int ra__nest_make(ra__cluster_t *c, const ra_ref_t *refs, size_t n,
                  ra_msg_t **out);
// ra__nest_hold_locked: an object of this process keeps a nest received
// from elsewhere, whose references were registered for us (ADD) first;
// ra__nest_unhold_locked: it is freed (also for ra__nest_make's holds).
void ra__nest_hold_locked(ra__cluster_t *c, const ra_msg_t *nest);
void ra__nest_unhold_locked(ra__cluster_t *c, const ra_msg_t *nest);
// ra__nest_drop lets go of the references of a nest not given to any
// object (ra__nest_make's holds), takes cs->mu, and unrefs *nest;
// ra__nest_drop_locked is the same with cs->mu held.  Both do nothing
// for a NULL *nest.
void ra__nest_drop(ra__cluster_t *c, ra_msg_t **nest);
void ra__nest_drop_locked(ra__cluster_t *c, ra_msg_t **nest);
// ra__fref_fetch waits up to timeout_ms (0: only asks) for the outcome
// of a borrowed object, from the owner the first time and from this
// process's copy afterwards.  Returns 0 (*out filled), RA_ENOENT (not
// borrowed here), RA_ETIMEOUT, or the error of reaching the owner.
int ra__fref_fetch(ra__cluster_t *c, ra_ref_t ref, int64_t timeout_ms,
                   ra__fval_t *out);

// ra__fref_locate finds where a borrowed object's value lies without
// copying it: *node is the node whose store holds it (0 when it is small
// enough to travel inline, is not done yet, or failed) and *size its
// size.  Asks the owner once (a round trip); a small value it answers
// with is kept as the fetched value.
void ra__fref_locate(ra__cluster_t *c, ra_ref_t ref, uint32_t *node,
                     uint64_t *size);

// The owner's side, on the core's thread: RA__T_BORROW messages, DOWNs of
// borrowers' processes (true when mref was one), and the end.
void ra__borrow_on_msg(ra_ctx_t *ctx, ra__cluster_t *c, ra_msg_t *m);
bool ra__borrow_down(ra_ctx_t *ctx, ra__cluster_t *c, uint64_t mref);
void ra__borrow_fini(ra__core_t *cs);
// ra__borrow_answer answers the GETs waiting for object o, just done
// (cs->mu held; any thread).
void ra__borrow_answer(ra__cluster_t *c, ra__obj_t *o);

#endif

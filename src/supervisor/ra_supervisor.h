// ra_supervisor.h - OTP supervisors: trees that restart what fails.
//
// A supervisor is an actor that starts children, watches them (it traps
// exits and links to each), and restarts them by its strategy when they
// end.  The semantics follow Erlang/OTP's supervisor module closely, so an
// Erlang engineer can predict them:
//
// - Strategies: RA_ONE_FOR_ONE restarts the child that ended;
//   RA_ONE_FOR_ALL terminates the others (in reverse start order) and
//   restarts all (in start order); RA_REST_FOR_ONE does that for the child
//   and those started after it; RA_SIMPLE_ONE_FOR_ONE has one template spec
//   and only dynamic children (ra_sup_start_child), shut down in parallel.
// - Restart types: RA_PERMANENT children are always restarted,
//   RA_TRANSIENT ones only after an abnormal exit (not RA_NORMAL,
//   RA_SHUTDOWN or a RA_SHUTDOWN_TERM(n) reason), RA_TEMPORARY ones never
//   (not even as bystanders of ONE_FOR_ALL/REST_FOR_ONE) and their spec is
//   dropped when they end.
// - Intensity: more than `intensity` restarts within `period_ms` (a sliding
//   window; default 1 in 5000 ms) make the supervisor give up: it terminates
//   its children in reverse start order and exits with RA_SHUTDOWN, which
//   its own supervisor sees like any child exit (escalation).  A restart
//   whose start fails is retried (after a message to itself, so the
//   supervisor stays responsive) and every try counts; meanwhile the child
//   is reported as restarting.
// - Start and stop: static children start in spec order and ra_sup_start
//   returns only after all started; if one fails, those already started are
//   terminated and the supervisor's start fails.  Stopping goes in reverse
//   order, each child by its shutdown: RA_SHUTDOWN_BRUTAL kills it,
//   a timeout sends an exit signal RA_SHUTDOWN and kills it if it has not
//   ended in time, RA_SHUTDOWN_INFINITY waits for it.
// - Auto-shutdown: with RA_AUTO_ANY_SIGNIFICANT the supervisor stops when a
//   significant child ends by itself (not terminated by the supervisor);
//   with RA_AUTO_ALL_SIGNIFICANT when the last running significant child
//   has.
//
// Beyond OTP: optional restart backoff (exponential with jitter, capped) on
// top of intensity; events (child started, exited, restarted, supervisor
// gave up) sent to an actor of your choice; and OS processes as children:
// the supervisor runs an executable (posix_spawn), learns its exit status or
// signal, applies the same restart rules, and stops it with SIGTERM, then
// SIGKILL at the shutdown timeout.  An OS child's exit reason is
// RA_NORMAL for exit status 0, RA_OS_EXIT(status) for another status and
// RA_OS_SIGNAL(signo) when a signal ended it.
//
// Threads: ra_sup_start and the ra_sup_* calls act as the actor of the ctx
// they are given (an actor in a callback, or a scope).  The calls are
// synchronous ra_call's to the supervisor (no timeout) and fail with
// RA_ENOPROC if it is not alive.
#ifndef RA_SUPERVISOR_H
#define RA_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ra_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ra_strategy {
    RA_ONE_FOR_ONE = 0,
    RA_ONE_FOR_ALL = 1,
    RA_REST_FOR_ONE = 2,
    RA_SIMPLE_ONE_FOR_ONE = 3
} ra_strategy_t;

typedef enum ra_restart {
    RA_PERMANENT = 0,
    RA_TRANSIENT = 1,
    RA_TEMPORARY = 2
} ra_restart_t;

typedef enum ra_child_type {
    RA_WORKER = 0,
    RA_SUPERVISOR = 1
} ra_child_type_t;

typedef enum ra_auto_shutdown {
    RA_AUTO_NEVER = 0,
    RA_AUTO_ANY_SIGNIFICANT = 1,
    RA_AUTO_ALL_SIGNIFICANT = 2
} ra_auto_shutdown_t;

// Shutdown values besides a timeout in milliseconds (> 0).  0 means the
// default: 5000 ms for a worker, infinity for a supervisor.
#define RA_SHUTDOWN_DEFAULT 0
#define RA_SHUTDOWN_INFINITY (-1)
#define RA_SHUTDOWN_BRUTAL (-2)

// Exit reasons.  RA_SHUTDOWN_TERM(n) is Erlang's {shutdown, Term}: a clean
// stop that transient children are not restarted for.
#define RA_SHUTDOWN_TERM(n) ((ra_reason_t)(INT64_C(1) << 40) + (n))
#define RA_IS_SHUTDOWN_TERM(r)                                              \
    ((r) >= (INT64_C(1) << 40) && (r) < (INT64_C(1) << 41))
// RA_IS_CLEAN_EXIT(r): r is a clean end (RA_NORMAL, RA_SHUTDOWN or
// RA_SHUTDOWN_TERM(n)), the kind a transient child is not restarted for.
#define RA_IS_CLEAN_EXIT(r)                                                 \
    ((r) == RA_NORMAL || (r) == RA_SHUTDOWN || RA_IS_SHUTDOWN_TERM(r))
#define RA_OS_EXIT(status) ((ra_reason_t)(INT64_C(1) << 41) + (status))
#define RA_OS_SIGNAL(signo) ((ra_reason_t)(INT64_C(1) << 42) + (signo))

// What a start function returns besides 0 and errors.
#define RA_CHILD_IGNORE 1

// ra_child_start_fn starts a child as the supervisor (sup is the
// supervisor's ctx): it must start an actor linked to it, e.g. with
// ra_spawn_from(sup, ..., RA_SPAWN_LINK), and store its pid in *out.  It
// returns 0, RA_CHILD_IGNORE (no child; the spec is kept, not running), or
// a negative error (the start failed).  *info is OTP's extra start
// information; it is accepted but not reported yet.  For
// RA_SIMPLE_ONE_FOR_ONE, extra is the
// argument given to ra_sup_start_child (NULL for static children).
typedef int (*ra_child_start_fn)(ra_ctx_t *sup, void *arg, void *extra,
                                 ra_pid_t *out, uint64_t *info);

// ra_child_spec_t describes one child.  Exactly one way to start it must be
// given: beh (the supervisor spawns it linked, with arg as the spawn
// argument, or for RA_SIMPLE_ONE_FOR_ONE the ra_sup_start_child extra when
// it is not NULL), start (a start function, called with start_arg), or
// argv (an OS process: argv[0] is the executable's path, envp NULL
// inherits the environment).  Strings are copied; arg, start_arg and beh
// must outlive the supervisor.
//
// fork_server (OS processes only) starts the process through a fork
// server: the first such child of a given argv and envp starts one more
// copy of the program, with RAYO_FORK_SERVER in its environment, and that
// copy, once it reaches ra_fork_server_main, forks this child and every
// later one of the same argv and envp.  A child so made skips the exec and
// the dynamic linking (a few milliseconds on a small machine) and is not
// this process's own child: the server reports its exit, and stopping it
// works as for any OS child.  The program must call ra_fork_server_main
// before it starts threads; a program that does not call it at all runs as
// the first child instead, and a program that has other threads by then is
// refused.  Where no server can serve, the child is executed as without
// the flag.  The server exits a minute after its last child
// (RAYO_FORK_SERVER_IDLE_MS in the child's environment, 1 to 3600000,
// sets another time; any other value is logged as a warning when the
// server starts, and the minute stays), and when the supervisor's
// process or runtime ends; its children die with it, and are then
// reported as killed (RA_OS_SIGNAL(SIGKILL)).
typedef struct ra_child_spec {
    const char *id;               // unique within the supervisor
    const ra_behaviour_t *beh;
    void *arg;
    ra_child_start_fn start;
    void *start_arg;
    const char *const *argv;
    const char *const *envp;
    ra_restart_t restart;         // default RA_PERMANENT
    int64_t shutdown_ms;          // see RA_SHUTDOWN_*
    ra_child_type_t type;         // default RA_WORKER
    bool significant;             // for auto-shutdown; not with permanent
    bool fork_server;             // forked by a fork server (see above)
} ra_child_spec_t;

// ra_fork_server_main returns 0 at once in an ordinary process.  In a copy
// of the program started as a fork server (see ra_child_spec_t
// fork_server) it serves: it returns 1 in each child it forks, which then
// goes on as that child, and never returns in the server itself.  Call it
// first in main, before any thread starts.  (ra_worker_main and ra_init
// call it for the cluster's worker processes.)
int ra_fork_server_main(void);

// Supervisor flags.  A zeroed struct is ONE_FOR_ONE, 1 restart in 5 s,
// never auto-shutdown, no backoff, no events.
typedef struct ra_sup_flags {
    ra_strategy_t strategy;
    uint32_t intensity;           // used as given only when period_ms > 0
    uint32_t period_ms;           // 0: the defaults (1 restart in 5000 ms)
    ra_auto_shutdown_t auto_shutdown;
    uint32_t backoff_min_ms;      // 0: restart at once
    uint32_t backoff_max_ms;      // cap of the exponential backoff
    ra_pid_t events;              // receives RA_TAG_SUP_EVENT messages
} ra_sup_flags_t;

// Event messages: tag RA_TAG_SUP_EVENT, a BSON document {"sup": pid string,
// "event": "started" | "exited" | "restarted" | "restarting" | "gave_up" |
// "auto_shutdown", "id": child id, "pid": pid string (or the OS pid as an
// int64 "ospid"), "reason": int64}.
#define RA_TAG_SUP_EVENT (-1101)

// ra_sup_start starts a supervisor with flags and n static child specs and
// returns once all have started (or failed).  With parent (an actor or
// scope ctx) the supervisor is linked to it, as a supervisor under a
// supervisor must be (ra_sup_start_fn does this).  Returns 0 and the pid,
// RA_EBADSPEC (the log names the field: invalid restart type, negative
// shutdown, duplicate id, simple_one_for_one with other than one spec,
// significant with permanent, ...), or the error of the first child that
// failed to start.
int ra_sup_start(ra_runtime_t *rt, ra_ctx_t *parent,
                 const ra_sup_flags_t *flags, const ra_child_spec_t *specs,
                 size_t n, ra_pid_t *out);

// ra_sup_validate checks flags and specs as ra_sup_start would, without
// starting anything.  Returns 0, or RA_EBADSPEC with *why (may be NULL)
// naming the problem: "invalid strategy", "invalid auto_shutdown",
// "simple_one_for_one needs exactly one child spec", "simple_one_for_one
// with auto_shutdown", "backoff_max_ms below backoff_min_ms", "specs is
// NULL", "missing id", "id longer than 255 bytes", "exactly one of beh,
// start and argv must be set", "behaviour without a handle callback",
// "argv without an executable", "invalid restart type", "negative
// shutdown", "invalid child type", "significant with permanent" or
// "duplicate id".  The string is static.
int ra_sup_validate(const ra_sup_flags_t *flags, const ra_child_spec_t *specs,
                    size_t n, const char **why);

// ra_sup_args_t and ra_sup_start_fn make a supervisor a child of another:
// spec.start = ra_sup_start_fn, spec.start_arg = &args (which must outlive
// both), spec.type = RA_SUPERVISOR.
typedef struct ra_sup_args {
    ra_sup_flags_t flags;
    const ra_child_spec_t *specs;
    size_t n;
} ra_sup_args_t;

int ra_sup_start_fn(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
                    uint64_t *info);

// ra_sup_root returns the runtime's root supervisor (one_for_one, 1000
// restarts in 1 s), starting it on first use.  System actors (and the
// application's top supervisors, if it likes) are its children, so the whole
// runtime is one tree; ra_runtime_destroy stops it with everything else.
// Returns 0, RA_ECLOSED or RA_ENOMEM.
int ra_sup_root(ra_runtime_t *rt, ra_pid_t *out);

// ra_sup_stop stops the supervisor (children in reverse order, then the
// supervisor with reason RA_SHUTDOWN) and returns when it has ended.
int ra_sup_stop(ra_ctx_t *ctx, ra_pid_t sup);

// ra_sup_start_child adds and starts a child.  For RA_SIMPLE_ONE_FOR_ONE,
// spec is ignored and extra is passed to the template's start function (or
// as the spawn argument of its behaviour); otherwise extra is ignored.
// Stores the child's pid in *out (nil for RA_CHILD_IGNORE).  Returns 0,
// RA_CHILD_IGNORE, RA_EALREADY (a running child has that id), RA_EEXIST
// (a stopped spec has that id), RA_EBADSPEC, or the start error.
int ra_sup_start_child(ra_ctx_t *ctx, ra_pid_t sup,
                       const ra_child_spec_t *spec, void *extra,
                       ra_pid_t *out);

// ra_sup_terminate_child stops a child but keeps its spec (idempotent:
// terminating a stopped child returns 0).  For RA_SIMPLE_ONE_FOR_ONE name
// the child by pid (id is ignored) and the child is removed.  Returns 0 or
// RA_ENOENT.
int ra_sup_terminate_child(ra_ctx_t *ctx, ra_pid_t sup, const char *id,
                           ra_pid_t child);

// ra_sup_restart_child starts a stopped child again.  Returns 0, RA_ENOENT,
// RA_ERUNNING, RA_ERESTARTING, RA_ENOTSUP (simple_one_for_one) or the
// start error.
int ra_sup_restart_child(ra_ctx_t *ctx, ra_pid_t sup, const char *id,
                         ra_pid_t *out);

// ra_sup_delete_child removes a stopped child's spec.  Returns 0,
// RA_ENOENT, RA_ERUNNING, RA_ERESTARTING or RA_ENOTSUP.
int ra_sup_delete_child(ra_ctx_t *ctx, ra_pid_t sup, const char *id);

// The state of a child, as which_children reports it.
typedef enum ra_child_state {
    RA_CHILD_RUNNING = 0,
    RA_CHILD_STOPPED = 1,     // spec kept, no process (terminated, ignored)
    RA_CHILD_RESTARTING = 2
} ra_child_state_t;

typedef struct ra_child_info {
    char id[64];              // truncated; "" for dynamic children
    ra_pid_t pid;             // nil unless running (actors)
    int64_t ospid;            // OS children: the process id, else 0
    ra_child_type_t type;
    ra_child_state_t state;
    bool os_process;
} ra_child_info_t;

// ra_sup_which_children fills up to cap entries of out in start order and
// stores the number of children in *n.  Returns 0 or RA_ENOPROC.
int ra_sup_which_children(ra_ctx_t *ctx, ra_pid_t sup, ra_child_info_t *out,
                          size_t cap, size_t *n);

typedef struct ra_child_counts {
    size_t specs;             // child specs (1 for simple_one_for_one, as OTP)
    size_t active;            // running
    size_t supervisors;       // children of type RA_SUPERVISOR
    size_t workers;           // children of type RA_WORKER
} ra_child_counts_t;

int ra_sup_count_children(ra_ctx_t *ctx, ra_pid_t sup,
                          ra_child_counts_t *out);

// ra_sup_get_childspec copies the spec of child id into *out; its strings
// point into the supervisor and stay valid while the child's spec exists.
// Returns 0 or RA_ENOENT.
int ra_sup_get_childspec(ra_ctx_t *ctx, ra_pid_t sup, const char *id,
                         ra_child_spec_t *out);

#ifdef __cplusplus
}
#endif
#endif

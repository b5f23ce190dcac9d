// ra_registry.h - names for actors: local names, process groups, and
// names within a namespace.
//
// Local names (Erlang's register/whereis): one name per actor, one actor
// per name, in one runtime.  A name is released when its actor ends, before
// the actor's exit signals and DOWN messages go out, so whoever learns of
// the death can register the name again at once.
//
// Process groups (Erlang's pg): an actor may join a group several times
// (it is then a member that many times and must leave that many times);
// members leave automatically when they end.  Subscribers receive a
// message for every join and leave.
//
// Namespaced names (Ray's named actors, Erlang's global): names within a
// namespace whose registration is atomic and whose conflicts are resolved
// by an explicit policy, never silently.  This is the interface the cluster
// will put on the GCS; today's backend is in-process.
//
// Names are NUL-terminated strings of 1 to RA_NAME_MAX bytes (any bytes but
// NUL); longer or empty names give RA_EINVAL.
//
// Threads: every function may be called from any thread.  Functions taking
// a ra_ctx_t act as that actor (see ra_actor.h).
#ifndef RA_REGISTRY_H
#define RA_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "ra_actor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RA_NAME_MAX 255

// ---- local names ----

// ra_register gives pid the name.  Returns 0; RA_EEXIST if the name is
// taken (by a live actor); RA_EALREADY if pid already has a name;
// RA_ENOPROC if pid is not alive; RA_EINVAL for a bad name.
int ra_register(ra_runtime_t *rt, const char *name, ra_pid_t pid);

// ra_unregister removes the name.  Returns 0 or RA_ENOENT.
int ra_unregister(ra_runtime_t *rt, const char *name);

// ra_whereis stores the actor holding name in *out.  Returns 0 or
// RA_ENOENT (then *out is RA_PID_NIL).
int ra_whereis(ra_runtime_t *rt, const char *name, ra_pid_t *out);

// ra_name_of copies pid's name into buf (len bytes).  Returns 0, RA_ENOENT
// if it has none, or RA_EINVAL if buf is too small.
int ra_name_of(ra_runtime_t *rt, ra_pid_t pid, char *buf, size_t len);

// ra_send_named sends *msg to the actor called name, as ctx's actor.
// Returns what ra_send returns, or RA_ENOENT if nobody has the name (the
// caller still owns *msg).
int ra_send_named(ra_ctx_t *ctx, const char *name, ra_msg_t **msg);

// ra_runtime_send_named is ra_send_named from outside any actor.
int ra_runtime_send_named(ra_runtime_t *rt, const char *name,
                          ra_msg_t **msg);

// ---- process groups ----

// Tags of the event messages sent to group subscribers.  The message is a
// BSON document {"group": <string>, "pid": <string as ra_pid_str>,
// "node": int32, "proc": int32, "id": int32, "gen": int32}.
enum {
    RA_TAG_PG_JOIN = -1001,
    RA_TAG_PG_LEAVE = -1002
};

// ra_pg_join adds pid to group once more.  Returns 0, RA_ENOPROC,
// RA_EINVAL or RA_ENOMEM.
int ra_pg_join(ra_runtime_t *rt, const char *group, ra_pid_t pid);

// ra_pg_leave removes one of pid's memberships of group (the earliest, as
// Erlang's pg does).  Returns 0 or RA_ENOENT if pid is not a member.
int ra_pg_leave(ra_runtime_t *rt, const char *group, ra_pid_t pid);

// ra_pg_members copies up to cap members of group into out (an actor that
// joined k times appears k times), in join order, and stores the total
// count in *n (which may exceed cap).  An unknown group has no members.
// Returns 0 or RA_EINVAL.
int ra_pg_members(ra_runtime_t *rt, const char *group, ra_pid_t *out,
                  size_t cap, size_t *n);

// ra_pg_subscribe makes ctx's actor receive RA_TAG_PG_JOIN/LEAVE messages
// for group (also for leaves caused by deaths) until ra_pg_unsubscribe or
// its end.  Stores a subscription reference in *ref.  Returns 0,
// RA_EINVAL, RA_ENOMEM, or RA_ENOPROC for a scope whose actor has ended.
//
// Events arrive as ordinary messages from RA_PID_NIL, in the order the
// changes were made, and are sent after the registry's lock is released.
// They are best effort, like signals: a subscriber whose bounded mailbox
// is full misses them under RA_FULL_FAIL and RA_FULL_DROP, and under
// RA_FULL_BLOCK a thread that is not a scheduler thread changing the group
// waits for room (so do other changes that produce events meanwhile).
int ra_pg_subscribe(ra_ctx_t *ctx, const char *group, uint64_t *ref);

// ra_pg_unsubscribe ends a subscription.  Returns 0 or RA_ENOENT.
int ra_pg_unsubscribe(ra_ctx_t *ctx, uint64_t ref);

// ---- namespaced names ----

// What ra_ns_register does when the name is already held by a live actor.
typedef enum ra_name_policy {
    RA_NAME_FAIL = 0,         // fail with RA_EEXIST; *holder says who has it
    RA_NAME_GET_EXISTING = 1, // succeed without registering; *holder is the
                              // existing actor and the return value is 1
    RA_NAME_REPLACE = 2       // take the name; the previous holder gets an
                              // exit signal with reason RA_NAME_CONFLICT
} ra_name_policy_t;

// The exit reason sent to an actor whose namespaced name was taken over.
#define RA_NAME_CONFLICT (RA_REASON_USER - 1)

// ra_ns_register registers name in namespace ns (both RA_NAME_MAX bytes at
// most; ns "" is the default namespace) for pid, atomically, resolving a
// conflict by policy.  Stores the actor that holds the name afterwards in
// *holder (may be NULL).  Returns 0 (registered, or pid already held the
// name), 1 (RA_NAME_GET_EXISTING found another holder), RA_EEXIST,
// RA_ENOPROC (pid has ended and the name was to be its), RA_ENOMEM or
// RA_EINVAL (also for a NULL ns or an unknown policy).  A name is released
// when its actor ends.  An actor may hold several namespaced names.
int ra_ns_register(ra_runtime_t *rt, const char *ns, const char *name,
                   ra_pid_t pid, ra_name_policy_t policy, ra_pid_t *holder);

// ra_ns_unregister releases the name if pid holds it.  Returns 0 or
// RA_ENOENT.
int ra_ns_unregister(ra_runtime_t *rt, const char *ns, const char *name,
                     ra_pid_t pid);

// ra_ns_whereis looks name up in ns.  Returns 0 or RA_ENOENT.
int ra_ns_whereis(ra_runtime_t *rt, const char *ns, const char *name,
                  ra_pid_t *out);

#ifdef __cplusplus
}
#endif
#endif

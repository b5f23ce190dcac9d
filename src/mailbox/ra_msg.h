// ra_msg.h - messages, actor references and exit reasons.
//
// A message (ra_msg_t) is an immutable, reference-counted block holding
// either raw bytes or a BSON document, tagged with a user integer so that a
// handler can switch on it the way an Erlang receive matches an atom.  A
// message can be queued in any number of mailboxes at once: broadcasting
// takes one reference per recipient (ra_msg_ref) and never copies the
// payload.
//
// Threads: every function may be called from any thread.  A message is
// read-only once it has been sent or shared; ra_msg_wdata is for filling in a
// message that only the caller references.
#ifndef RA_MSG_H
#define RA_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#ifdef __cplusplus
extern "C" {
#endif

// ra_pid_t names an actor by value: the node and process it lives in, its
// slot in that process's actor table and the slot's generation.  A slot is
// reused only with a new generation, so a stale pid never reaches another
// actor: sending to it fails with RA_ENOPROC.  Copy it freely.
typedef struct ra_pid {
    uint32_t node; // 0 on a process that is not part of a cluster
    uint32_t proc; // process number within the node
    uint32_t id;   // slot in the actor table (0 is never used)
    uint32_t gen;  // incarnation of that slot
} ra_pid_t;

// RA_PID_NIL is the pid of nobody (sender of messages sent from outside any
// actor).  ra_pid_is_nil tests for it.
#define RA_PID_NIL ((ra_pid_t){0, 0, 0, 0})

static inline bool
ra_pid_eq(ra_pid_t a, ra_pid_t b)
{
    return a.id == b.id && a.gen == b.gen && a.node == b.node &&
           a.proc == b.proc;
}

static inline bool
ra_pid_is_nil(ra_pid_t p)
{
    return p.id == 0;
}

// RA_PID_STRLEN is enough for ra_pid_str's output and its NUL.
#define RA_PID_STRLEN 48

// ra_pid_str writes pid as "<node.proc.id.gen>" into buf (at least
// RA_PID_STRLEN bytes) and returns buf.
char *ra_pid_str(ra_pid_t pid, char *buf);

// ra_reason_t is why an actor ended.  The small non-negative values below
// follow Erlang's atoms; values from RA_REASON_USER up are the
// application's own; negative values are rayo error codes (a handler that
// returns RA_EINVAL ends its actor with reason RA_EINVAL).
typedef int64_t ra_reason_t;

enum {
    RA_NORMAL = 0,       // finished; links that do not trap exits ignore it
    RA_SHUTDOWN = 1,     // asked to stop by a supervisor or the runtime
    RA_KILL = 2,         // untrappable; linked actors see RA_KILLED
    RA_KILLED = 3,       // what links and monitors see after RA_KILL
    RA_NOPROC = 4,       // the other side did not exist
    RA_NOCONNECTION = 5, // the other side's node or process is unreachable
    RA_REASON_USER = 1000
};

// ra_reason_str writes a readable name of reason ("normal", "killed",
// "RA_EINVAL", "user:1042") into buf of len bytes and returns buf.
char *ra_reason_str(ra_reason_t reason, char *buf, size_t len);

typedef struct ra_msg ra_msg_t;

// Message kinds.  Applications create RA_MSG_BYTES and RA_MSG_BSON; the
// runtime delivers RA_MSG_EXIT (an exit signal turned into a message
// because the receiver traps exits) and RA_MSG_DOWN (a monitor fired).
typedef enum ra_msg_kind {
    RA_MSG_BYTES = 1,
    RA_MSG_BSON = 2,
    RA_MSG_EXIT = 3,
    RA_MSG_DOWN = 4,
    RA_MSG_SIGNAL = 5 // internal; never delivered to a handler
} ra_msg_kind_t;

// ra_msg_new_bytes creates a message of len bytes with the given tag.  If
// data is not NULL the bytes are copied from it, otherwise they are zeroed
// and can be filled through ra_msg_wdata before the message is shared.
// Returns 0 or RA_ENOMEM; RA_EINVAL if out is NULL.  Caller owns *out.
int ra_msg_new_bytes(ra_msg_t **out, int32_t tag, const void *data,
                     size_t len);

// ra_msg_new_bson creates a message holding a copy of doc.  Returns 0,
// RA_EINVAL (NULL argument) or RA_ENOMEM.  Caller owns *out.
int ra_msg_new_bson(ra_msg_t **out, int32_t tag, const bson_t *doc);

// ra_msg_ref takes one more reference to msg and returns it.
ra_msg_t *ra_msg_ref(ra_msg_t *msg);

// ra_msg_unref drops the caller's reference, frees the message when it was
// the last one, and sets *msg to NULL.  Safe on NULL and on *msg == NULL.
void ra_msg_unref(ra_msg_t **msg);

// ra_msg_kind returns the message's kind.
ra_msg_kind_t ra_msg_kind(const ra_msg_t *msg);

// ra_msg_tag returns the tag given at creation (0 for EXIT and DOWN).
int32_t ra_msg_tag(const ra_msg_t *msg);

// ra_msg_data returns the payload bytes and stores their length in *len
// (len may be NULL).  For a BSON message these are the document's bytes.
// The pointer is borrowed for as long as the caller holds its reference.
const void *ra_msg_data(const ra_msg_t *msg, size_t *len);

// ra_msg_wdata returns a writable pointer to the payload of a bytes message
// that nobody else references yet, or NULL otherwise (also for a large
// message received from another process, whose bytes are the receive
// buffer itself).
void *ra_msg_wdata(ra_msg_t *msg);

// ra_msg_bson returns the document of a BSON message (NULL for other
// kinds), borrowed for as long as the caller holds its reference.
const bson_t *ra_msg_bson(const ra_msg_t *msg);

// ra_msg_exit_info reads an RA_MSG_EXIT message: the actor whose exit
// signal this was and its reason.  Returns 0 or RA_EBADMSG for another
// kind.  Either output may be NULL.
int ra_msg_exit_info(const ra_msg_t *msg, ra_pid_t *from,
                     ra_reason_t *reason);

// ra_msg_down_info reads an RA_MSG_DOWN message: the monitor reference
// returned by ra_monitor, the monitored actor and its exit reason
// (RA_NOPROC when it was already gone).  Returns 0 or RA_EBADMSG.  Any
// output may be NULL.
int ra_msg_down_info(const ra_msg_t *msg, uint64_t *mref, ra_pid_t *pid,
                     ra_reason_t *reason);

#ifdef __cplusplus
}
#endif
#endif

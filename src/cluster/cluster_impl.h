// cluster_impl.h - internals of the cluster: the messages between the
// system actors (core, raylet, GCS, worker host and executor), their
// binary codec, and the process-wide state behind the C API.
//
// Who talks to whom:
//   user thread --SUBMIT/CMD--> core (one per process: owner of objects)
//   core --LEASE_REQ/RETURN--> raylet --LEASE_GRANT--> core
//   core --TASK--> executor (tasks) or actor instance (methods)
//   executor/instance --RESULT--> core
//   core --ACTOR_NEW--> host (in the worker) --ACTOR_UP--> core
//   worker host --REGISTER--> raylet
//   anyone --(ra_call) GCS_*--> gcs
// Every message between processes is a bytes message in the codec below
// (little-endian, length-prefixed, every read bounds-checked), so a
// malformed one is dropped with a log line instead of being trusted.
#ifndef RA_CLUSTER_IMPL_H
#define RA_CLUSTER_IMPL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ra_actor.h"
#include "ra_api.h"
#include "ra_link.h"
#include "ra_msg.h"
#include "ra_objstore.h"
#include "ra_place.h"
#include "ra_supervisor.h"
#include "ra_topo.h"

// Message tags of the cluster's system actors.
enum {
    RA__T_SUBMIT = -1301,      // user thread -> core: a task_t pointer
    RA__T_CMD = -1302,         // user thread -> core: a cmd_t pointer
    RA__T_TASK = -1303,        // core -> executor / actor: task wire
    RA__T_RESULT = -1304,      // executor / actor -> core
    RA__T_LEASE_REQ = -1305,   // core -> raylet
    RA__T_LEASE_GRANT = -1306, // raylet -> core
    RA__T_LEASE_RETURN = -1307, // core -> raylet
    RA__T_REGISTER = -1308,    // worker host -> raylet
    RA__T_ACTOR_NEW = -1309,   // core -> worker host
    RA__T_ACTOR_UP = -1310,    // worker host -> core
    RA__T_TICK = -1311,        // timers of the core
    RA__T_CANCEL = -1312,      // core -> worker host: cancel a task
    RA__T_GCS = -1313,         // calls to the GCS
    RA__T_RAYLET_INFO = -1314, // calls to the raylet: resources
    RA__T_STOP = -1315,        // raylet -> worker host: exit now; with
                               // one byte RA__STOP_IDLE: retire once no
                               // process borrows objects of this one
    RA__T_LEASE_LOST = -1316,  // raylet -> core: a lease's worker died
    RA__T_BLOCKED = -1317,     // worker -> raylet: its task waits / resumes
    RA__T_GPU_ENV = -1318,     // core -> worker: CUDA_VISIBLE_DEVICES
    RA__T_PG = -1319,          // GCS <-> raylet: placement-group bundles
    RA__T_PG_READY = -1320,    // GCS -> core: a placement group is ready
    RA__T_JOB = -1321,         // driver -> raylet: a job starts or ends
    RA__T_NODES = -1322,       // GCS -> raylet: the live nodes (for spill)
    RA__T_OUTPUT = -1323,      // worker -> driver core: {u8 stream (1
                               // stdout, 2 stderr), bytes line}
    RA__T_GCS_BACK = -1324,    // raylet's finder -> raylet: {pid} of the
                               // GCS of a head started again
    RA__T_ORPHANED = -1325,    // raylet -> worker host: the owner of its
                               // (detached) actors is gone; exit once
                               // they have all ended
    RA__T_OBJ = -1326,         // to and between object managers (objmgr.c):
                               // {u8 op (RA__OBJ_*), fields}
    RA__T_LEASE_END = -1327,   // raylet -> worker host: {u64 lease, u8
                               // kill} a shared actor's lease ended; kill
                               // its instance if it still runs
    RA__T_BORROW = -1328,      // to an owner's core: references lent to
                               // other processes (borrow.c)
    RA__T_GCS_RESTARTED = -1329 // GCS -> a raylet: it was restarted in
                               // place (same pid) and does not know this
                               // node; register again
};

#define RA__STOP_IDLE 1

// Operations of RA__T_BORROW (first u8; see borrow.c).
enum {
    RA__BORROW_ADD = 1,
    RA__BORROW_DEL = 2,
    RA__BORROW_GET = 3,
    RA__BORROW_ADDN = 4
};

// In a lease request's isolation byte: the actor is detached (it outlives
// its owner's job; its worker is its own).
#define RA__ISO_DETACHED 0x80

// A RA__T_RAYLET_INFO call with this one byte lists the raylet's workers
// (see on_workers in raylet.c); an empty one asks for its resources.
#define RA__INFO_WORKERS 1

// Operations of RA__T_OBJ.  oid is 16 raw bytes.
//  HOLD   worker -> its node's objmgr: {oid, pid owner}: a result made for
//         an owner on another node is in the store with a reference the
//         worker took for it; drop it if the owner's process is lost.
//  PULL   process -> its node's objmgr: {u64 req, oid, pid src objmgr, str
//         src endpoint, u64 size, u8 flags (RA__PULL_*), [pid watch]}: copy
//         the object here; answered with PULLED.  A call's copy is kept
//         for the asking process until it sends UNUSE or watch (its core,
//         in the sender's process; the sender when absent) ends.
//  PULLED objmgr -> the process that asked: {u64 req, oid, i32 status, str
//         error text}.  On success the object is sealed in this node's
//         store with one reference that the asker now holds.
//  GET    objmgr -> objmgr: {u64 xfer, oid, u64 offset, u32 length, u8
//         flags (RA__GET_NO_RELAY), str the asker's endpoint}.
//  PART   objmgr -> objmgr: {u64 xfer, i32 status, u64 offset, u64 object
//         size, then the chunk's bytes to the end of the message}.  With
//         status RA__OBJ_RELAYED, no bytes but {pid, str endpoint} of
//         another node's objmgr that pulls the same object: ask it (it
//         passes chunks on as they reach it, so a broadcast leaves the
//         source about once).
//  FREE   to an objmgr: {oid}: the copy held for another node's owner is
//         no longer needed; delete it.
//  UNUSE  process -> its node's objmgr: {oid, [pid watch]}: done with a
//         copy that a PULL made for it (a task's argument, a borrowed
//         value); deleted once unreferenced.  watch is the one its PULL
//         named (the sender when absent).
//  STATS  a call to an objmgr: answered with {u64 pulls done, u64 pulls
//         failed, u64 bytes pulled, u64 microseconds pulling (summed),
//         u64 bytes served}.
// A PULL sent as a call (ra_call) is answered with ra_reply (workers).
enum {
    RA__OBJ_HOLD = 1,
    RA__OBJ_PULL = 2,
    RA__OBJ_PULLED = 3,
    RA__OBJ_GET = 4,
    RA__OBJ_PART = 5,
    RA__OBJ_FREE = 6,
    RA__OBJ_UNUSE = 7,
    RA__OBJ_STATS = 8
};
// In a PULL's flags: delete the source's copy once this one is made.
#define RA__PULL_FREE_SRC 1u
// In a GET's flags: answer it yourself, do not send the asker to a relay.
#define RA__GET_NO_RELAY 1u
// A PART status (positive, unlike errors): ask the relay named instead.
#define RA__OBJ_RELAYED 1
// Objects move between nodes in chunks of this size (several in flight):
// a chunk's message fits in one of the link's 4 MiB frames with its
// envelope, so the link sends it without copying or splitting it.
#define RA__OBJ_CHUNK (((size_t)4 << 20) - 4096)

// A lease request that another node should serve is answered with this
// status, the target raylet and its endpoint (see RA__T_LEASE_GRANT).
#define RA__LEASE_SPILL 1

// Operations of RA__T_JOB (first u8), answered with {i32 status, u32
// env}.  REGISTER: {core pid, u64 OS pid, u32 argc, argc x str, u32 envc,
// envc x str ("NAME=value"), str cwd, u32 workers to start at once}: the
// raylet starts this job's workers from argv[0] (an absolute path) with
// that environment and working directory, and ends the job when the
// driver's process is lost.  END: {u32 env}.
enum {
    RA__JOB_REGISTER = 1,
    RA__JOB_END = 2
};

// Kinds of task wire.
enum {
    RA__TASK_FN = 0,
    RA__TASK_METHOD = 1,
    RA__TASK_CTOR = 2
};

#define RA__WIRE_VERSION 1
#define RA__NAME_MAX 127
// The most threads an actor may run its methods on (max_concurrency).
#define RA__MAX_CONCURRENCY 1000

// ---- the codec ----

// ra__mono_ms is CLOCK_MONOTONIC in milliseconds.
static inline int64_t
ra__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

// ra__mono_us is CLOCK_MONOTONIC in microseconds.
static inline int64_t
ra__mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

// ra__le64_get and ra__le64_put read and write the 8 little-endian bytes
// that i64 values travel as.
static inline int64_t
ra__le64_get(const void *p)
{
    const uint8_t *b = p;
    uint64_t u = 0;
    for (int k = 7; k >= 0; k--) {
        u = u << 8 | b[k];
    }
    return (int64_t)u;
}

static inline void
ra__le64_put(void *p, int64_t x)
{
    uint8_t *b = p;
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)((uint64_t)x >> (8 * i));
    }
}

// ra__wbuf_t builds a message body; on allocation failure it records
// the error and later writes do nothing.
typedef struct ra__wbuf {
    uint8_t *p;
    size_t len, cap;
    int err;
} ra__wbuf_t;

void ra__wb_u8(ra__wbuf_t *b, uint8_t v);
void ra__wb_u32(ra__wbuf_t *b, uint32_t v);
void ra__wb_u64(ra__wbuf_t *b, uint64_t v);
void ra__wb_f64(ra__wbuf_t *b, double v);
void ra__wb_bytes(ra__wbuf_t *b, const void *p, size_t n); // u32 len + data
void ra__wb_str(ra__wbuf_t *b, const char *s);             // as bytes
void ra__wb_pid(ra__wbuf_t *b, ra_pid_t p);
void ra__wb_raw(ra__wbuf_t *b, const void *p, size_t n);
// ra__wb_msg makes a bytes message of the buffer (and frees the buffer).
// Returns 0, the buffer's error or RA_ENOMEM.
int ra__wb_msg(ra__wbuf_t *b, int32_t tag, ra_msg_t **out);
void ra__wb_free(ra__wbuf_t *b);

// ra__rbuf_t reads a message body; any read past the end sets bad and
// returns zeros, so a decoder checks bad once at the end.
typedef struct ra__rbuf {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} ra__rbuf_t;

void ra__rb_init(ra__rbuf_t *r, const ra_msg_t *m);
uint8_t ra__rb_u8(ra__rbuf_t *r);
uint32_t ra__rb_u32(ra__rbuf_t *r);
uint64_t ra__rb_u64(ra__rbuf_t *r);
double ra__rb_f64(ra__rbuf_t *r);
const void *ra__rb_bytes(ra__rbuf_t *r, size_t *n);
// ra__rb_str copies a string of at most cap - 1 bytes into buf (a longer
// one sets bad).
void ra__rb_str(ra__rbuf_t *r, char *buf, size_t cap);
ra_pid_t ra__rb_pid(ra__rbuf_t *r);

// ra__wb_arg appends one argument as {u8 kind, bytes}; RA_ARG_REF as
// {RA_ARG_REF, node, proc, id}.
void ra__wb_arg(ra__wbuf_t *b, const ra_arg_t *a);

// ra__wb_res / ra__rb_res: resources as {f64 cpus, f64 gpus, f64 memory,
// u32 n, n x {str name, f64 amount}}.
void ra__wb_res(ra__wbuf_t *b, const ra_resources_t *r);
void ra__rb_res(ra__rbuf_t *r, ra_resources_t *out);

// ra__res_extra keeps the memory and custom resources of in (NULL: none)
// in out, without CPUs and GPUs; ra__res_same tells whether two sets are
// equal.
void ra__res_extra(const ra_resources_t *in, ra_resources_t *out);
bool ra__res_same(const ra_resources_t *a, const ra_resources_t *b);
// ra__describe_need writes "2 CPUs and 0 GPUs, 3 ssd" for error texts.
void ra__describe_need(char *buf, size_t cap, double cpus, double gpus,
                       const ra_resources_t *x);

// ---- task wire ----
// {u8 version, u8 type, u64 task id, u32 attempt, u64 actor key, str name,
//  u32 nargs, args...}.  The actor key names the actor instance for
// RA__TASK_METHOD (unused by the instance, kept for logs) and the new
// actor for RA__TASK_CTOR.

typedef struct ra__targ {
    uint8_t kind;
    const uint8_t *data;
    size_t len;
    ra_ref_t ref;        // RA_ARG_REF
    const ra_msg_t *nest; // the references in its value (lent, resolved)
} ra__targ_t;

typedef struct ra__task_view {
    uint8_t type;
    uint64_t id;
    uint32_t attempt;
    uint64_t actor;
    char name[RA__NAME_MAX + 1];
    uint32_t nargs;
    ra__targ_t *args;    // allocated by ra__task_decode, freed by the caller
    uint32_t conc;       // a constructor's max_concurrency (after the
                         // arguments; absent: 1)
    uint64_t lease;      // a shared actor's lease, which the owner adds
                         // to its constructor after conc (absent: 0)
} ra__task_view_t;

// ra__task_decode parses a task wire message.  Returns 0, RA_EBADMSG or
// RA_ENOMEM; on success the caller frees v->args.
int ra__task_decode(const ra_msg_t *m, ra__task_view_t *v);

// ---- results ----
// {u64 task id, u32 attempt, i32 status, u8 kind, bytes value-or-error
// [, bytes nest: the references the value contains, on status 0]}.
int ra__result_msg(uint64_t id, uint32_t attempt, int status, uint8_t kind,
                   const void *data, size_t len, ra_msg_t **out);
// ra__result_msg_nest is ra__result_msg with the references the value
// contains (a nest, NULL: none) as a trailing field.
int ra__result_msg_nest(uint64_t id, uint32_t attempt, int status,
                        uint8_t kind, const void *data, size_t len,
                        const ra_msg_t *nest, ra_msg_t **out);

// A result kind with this bit set carries a 16-byte object id: the value
// itself is in the node's object store.
#define RA__VAL_IN_STORE 0x40u
// With RA__VAL_IN_STORE: the value is in the store of another node, and
// the result carries {oid, pid objmgr, str objmgr endpoint, u64 size}.
// The owner's node pulls it (RA__OBJ_PULL) before the object is ready.
#define RA__VAL_REMOTE 0x20u
// A task argument kind with RA__VAL_IN_STORE set is a large object of the
// owner's node's store: {oid, pid objmgr, str objmgr endpoint, u64 size}.
// The worker maps it (its own node) or pulls it into its node's store
// first, and the function reads it in place.
// A task argument of this kind is a reference lent to the task
// (RA_ARG_BORROW), not a value: bytes {u32 node, u32 proc, u64 id, pid
// owner's core, str owner's endpoint ("" on one node), u8 resolve}.  With
// resolve 1 (a borrowed reference passed on with RA_ARG_REF) the worker
// fetches the value from the owner before the function runs.
#define RA__VAL_LENT 17u

typedef struct ra__lent {
    ra_ref_t ref;
    ra_pid_t core;
    char ep[256];
    bool resolve;
} ra__lent_t;

void ra__wb_lent(ra__wbuf_t *b, ra_ref_t ref, ra_pid_t core, const char *ep,
                 bool resolve);
// ra__lent_blob writes just the bytes of a lent reference (a returned
// reference's value, kind RA__VAL_LENT).
void ra__lent_blob(ra__wbuf_t *b, ra_ref_t ref, ra_pid_t core, const char *ep,
                   bool resolve);
// ra__lent_read parses a lent argument's bytes: 0 or RA_EBADMSG.
int ra__lent_read(const void *data, size_t len, ra__lent_t *out);

// A nest is the list of references an object contains (ra_put_refs,
// ra_task_return_refs): {u32 n, n x bytes lent blob (resolve 0)}.  It
// travels beside the value: a trailing field of RA__T_RESULT and of a
// borrow GET's answer.  At most RA__NEST_MAX references.
#define RA__NEST_MAX 65536u
// ra__nest_count validates a nest and gives its length: 0 or RA_EBADMSG.
int ra__nest_count(const void *data, size_t len, uint32_t *n);
// ra__nest_size is the number of references in nest (0 for NULL or a
// malformed one); ra__nest_ref reads reference i of them: 0, RA_ENOENT
// (past the end) or RA_EBADMSG.
size_t ra__nest_size(const ra_msg_t *nest);
int ra__nest_ref(const ra_msg_t *nest, size_t i, ra_ref_t *out);
// ra__value_nest is the nest of a value got with ra_get (NULL: none).
const ra_msg_t *ra__value_nest(const ra_value_t *v);

// Values up to this size travel inline in messages (Ray: 100 KiB).
#define RA__INLINE_MAX_DEFAULT ((size_t)100 << 10)

// ra__objloc_t is where a large value lies: object oid in the store of the
// node whose object manager is objmgr (reached at ep), size bytes.  It
// travels as {oid, pid objmgr, str ep, u64 size} (RA__VAL_REMOTE results,
// RA__VAL_IN_STORE arguments).
typedef struct ra__objloc {
    ra_oid_t oid;
    ra_pid_t objmgr;
    char ep[256];
    uint64_t size;
} ra__objloc_t;

// ra__wb_objloc appends a place and ra__rb_objloc reads one;
// ra__objloc_read parses one that fills data/len exactly (0 or
// RA_EBADMSG).
void ra__wb_objloc(ra__wbuf_t *b, ra_oid_t oid, ra_pid_t objmgr,
                   const char *ep, uint64_t size);
void ra__rb_objloc(ra__rbuf_t *r, ra__objloc_t *out);
int ra__objloc_read(const void *data, size_t len, ra__objloc_t *out);

// ra__rb_oid reads 16 raw bytes as an object id (bad when short).
void ra__rb_oid(ra__rbuf_t *r, ra_oid_t *oid);

// ra__pull_msg makes the RA__OBJ_PULL of loc (see RA__T_OBJ), naming
// watch (nil: none) as the process that keeps the copy;
// ra__pulled_read parses a PULLED answer (text gets the error text, ""
// on success).  Return 0, RA_ENOMEM or RA_EBADMSG.
int ra__pull_msg(uint64_t req, const ra__objloc_t *loc, uint8_t flags,
                 ra_pid_t watch, ra_msg_t **out);
int ra__pulled_read(const ra_msg_t *m, uint64_t *req, ra_oid_t *oid,
                    int *status, char *text, size_t cap);
// ra__unuse_msg makes the RA__OBJ_UNUSE of oid for process watch (the
// one its PULL named).  Returns 0 or RA_ENOMEM.
int ra__unuse_msg(ra_oid_t oid, ra_pid_t watch, ra_msg_t **out);

// ra__oid_of names the store object of object id of process (node, proc).
void ra__oid_make(uint8_t out[16], uint32_t node, uint32_t proc,
                  uint64_t id);

// ---- registries (filled at load time) ----
ra_task_fn ra__fn_lookup(const char *name);
const ra_actor_class_t *ra__class_lookup(const char *name);

// ---- the task context given to user functions ----
struct ra_task {
    ra__task_view_t *view;
    void *state;
    uint8_t rkind;
    uint8_t *rdata;
    size_t rlen;
    char *errtext;
    const _Atomic bool *cancel;
    // ra_task_return_ref: the reference returned, held until the caller
    // has been registered with its owner (rcore) as a borrower.
    bool has_rref;
    ra_ref_t rref;
    ra_pid_t rcore;
    // ra_task_return_refs: the references in the result (a nest), each
    // held like rref until the caller is registered with its owner.
    ra_msg_t *rnest;
};

// ra__task_run calls fn with the task's arguments and answers to with the
// result (RA__T_RESULT).  state is the actor state (in and out, for a
// constructor).
void ra__task_run(ra_ctx_t *ctx, ra_pid_t to, ra_task_fn fn,
                  ra__task_view_t *v, void **state, int pre_err,
                  const char *pre_text);

// ra__args_map points the arguments of v that lie in an object store
// (RA__VAL_IN_STORE) at their bytes in this node's store, pulling them
// here first when they are on another node; *maps records what to let go
// afterwards with ra__args_unmap (which must be called whatever map
// returned).  Returns 0, or an error (RA_EOBJLOST, RA_ENOTSUP, ...) with
// why set.  ra__task_run does both around the function.
int ra__args_map(ra_ctx_t *ctx, ra__task_view_t *v, void **maps, char *why,
                 size_t cap);
void ra__args_unmap(ra_ctx_t *ctx, ra__task_view_t *v, void **maps);

// ra__worker_cancel_flag is the flag that ra_task_cancelled reads.
const _Atomic bool *ra__worker_cancel_flag(void);

// ra__worker_in_task tells whether the calling thread is a worker's
// executor running a task.  ra__worker_notify_blocked tells the raylet
// that this task starts (on) or stops waiting in ra_get/ra_wait, so that
// its CPUs can run other tasks meanwhile (nested tasks cannot deadlock
// on CPUs).
bool ra__worker_in_task(void);
void ra__worker_notify_blocked(bool on);
// ra__worker_kept: the calling thread kept ref with ra_borrow; inside an
// actor's constructor, method or fini, the keep is that actor's, and is
// let go when the actor ends (a lightweight actor shares its process, so
// its borrows would otherwise outlive it).  ra__worker_let_go: one keep of
// ref was ended by ra_release (the caller's actor's first, else any
// actor's).  Both do nothing outside actors.
void ra__worker_kept(ra_ref_t ref);
void ra__worker_let_go(ra_ref_t ref);

// ---- process-wide state ----

typedef struct ra__core ra__core_t;
typedef struct ra__gcs_sys ra__gcs_sys_t;
typedef struct ra__raylet_sys ra__raylet_sys_t;
typedef struct ra__objmgr_sys ra__objmgr_sys_t;

// ra__cluster_t is the state behind the C API in one process.
// Global: ra__g, set by ra_init and cleared by ra_shutdown under its
// init mutex; between the two it is read without locks.
typedef struct ra__cluster {
    ra_runtime_t *rt;
    void *link;              // ra_link_t
    bool worker;             // this process is a worker
    uint32_t node;
    uint32_t proc;
    char session[512];       // session directory
    char ns[RA__NAME_MAX + 1];
    ra_pid_t core;           // this process's core actor
    ra_pid_t raylet;         // the node's raylet
    ra_pid_t raylet_sup;     // its supervisor, where it runs in this
                             // process
    ra__raylet_sys_t *raylet_sys; // what restarts it (raylet.c)
    ra_pid_t gcs;            // the GCS
    ra_pid_t gcs_sup;        // its supervisor, where it runs in this process
    ra__gcs_sys_t *gcs_sys;  // what restarts it (gcs.c)
    ra__core_t *cs;          // the core's shared part (objects)
    void *store;             // ra_objstore_t: the node's object store, or
                             // NULL (then every value travels inline)
    ra_pid_t objmgr;         // the node's object manager (nil: none)
    ra_pid_t objmgr_sup;     // its supervisor, where it runs in this
                             // process
    ra__objmgr_sys_t *objmgr_sys; // what restarts it (objmgr.c)
    char node_ep[256];       // a worker's: its node daemon's endpoint
    size_t inline_max;       // larger results go through the store
    void *raylet_state;      // embedded: the raylet's config
    void *gcs_state;
    ra_topo_t *topo;         // this node's topology, or NULL
    _Atomic uint32_t env;    // this job's environment at the raylet (the
                             // core sets it again when the raylet is
                             // restarted in place)
    bool joined;             // a driver of a node daemon's cluster
    bool daemon;             // the node daemon itself
    // A cluster of several nodes speaks tcp (empty strings otherwise):
    char ip[64];             // this node's address
    char cert[512];          // the cluster certificate
    char gcs_ep[256];        // the GCS's endpoint (the head daemon's)
    uint64_t job_id;         // a driver's job in the GCS (0: none)
    uint8_t *job_wire;       // a driver's RA__T_JOB registration, for the
    size_t job_wire_len;     // raylets of other nodes its work spills to
    _Atomic bool stopping;   // ra_shutdown has begun (any thread reads it)
} ra__cluster_t;

// The GCS is the head daemon's first actor: other nodes, which learn the
// head's node and process when they dial it, name it with this local id.
#define RA__GCS_LOCAL_ID 1u

extern ra__cluster_t *ra__g;

// ---- the system actors ----

// ra__core_start spawns this process's core actor.
int ra__core_start(ra__cluster_t *c);
// ra__core_free frees the object table after the runtime ended; in a
// process joined to a node, the objects it owns that are still in the
// node's store are deleted there (call it before closing the store).
void ra__core_free(ra__cluster_t *c);
// ra__core_flush_events has the core send the task events it holds to
// the GCS now (a driver that ends), and waits until they are sent on.
int ra__core_flush_events(ra__cluster_t *c, int64_t timeout_ms);

// The object manager's configuration (objmgr.c).
typedef struct ra__objmgr_cfg {
    void *store;             // ra_objstore_t, shared; NULL: pulls fail
    void *link;              // ra_link_t: routes to other object managers
    const char *ep;          // our endpoint (the link's), told to sources
                             // so that they can send later pullers here
    unsigned pull_timeout_ms; // a transfer with no progress this long
                              // fails (0: 30 s)
} ra__objmgr_cfg_t;

// ra__objmgr_start starts the node's object manager with cfg (copied): a
// supervisor (*sup) whose one child is the object manager (*out),
// restarted in place when it ends, with the same pid, up to 5 times a
// minute (objmgr.c).  *sys holds what the supervisor restarts it with;
// free it with ra__objmgr_sys_free after the runtime is destroyed.
int ra__objmgr_start(ra_runtime_t *rt, const ra__objmgr_cfg_t *cfg,
                     ra__objmgr_sys_t **sys, ra_pid_t *out, ra_pid_t *sup);
void ra__objmgr_sys_free(ra__objmgr_sys_t **sys);

// Raylet configuration.
typedef struct ra__raylet_cfg {
    double num_cpus;
    double num_gpus;
    unsigned workers;
    unsigned max_workers;
    const char *session;     // for the worker environment
    const char *endpoint;    // our link endpoint, for workers
    ra_pid_t gcs;
    const char *ns;
    unsigned threads;
    void *link;              // ra_link_t: to cut lost workers off at once
    const char *libs;        // runtime environment libraries ("a:b"), or
                             // NULL
    const char *store;       // the object store's name, or NULL
    void *store_handle;      // ra_objstore_t of this process, for its
                             // counters (RA__T_RAYLET_INFO), or NULL
    ra_pid_t objmgr;         // the node's object manager, for workers
    const ra_topo_t *topo;   // the node's topology (GPU links), or NULL;
                             // outlives the raylet
    bool numa_bind;          // bind GPU work to its GPUs' NUMA node
    bool fork_workers;       // workers forked by a fork server (see
                             // ra_child_spec_t fork_server)
    ra_resources_t extra;    // memory and custom resources it offers
    bool daemon;             // a node daemon's: no job of its own, workers
                             // start for the drivers that register
    // Several nodes (NULL otherwise): workers bind tcp on bind_ip with
    // cert, and reach the GCS at gcs_ep.
    const char *bind_ip;
    const char *cert;
    const char *gcs_ep;
    // This process's cluster is stopping (ra_shutdown): no worker starts
    // then (NULL: never).  It outlives the raylet.
    const _Atomic bool *stopping;
} ra__raylet_cfg_t;

// ra__read_cmdline returns this program's argv (argv[0] its absolute
// executable path) and ra__copy_environ a copy of its environment; free
// both with ra__free_strv.  NULL without memory.
char **ra__read_cmdline(void);
char **ra__copy_environ(void);
void ra__free_strv(char **v);

// Operations of RA__T_PG: {u8 op, u64 pg, u64 attempt, ...}.  PREPARE
// carries {u32 n, n x {u32 index, resources}} and is answered
// with PREPARED {u32 status, u32 node}; RETURN rolls a prepare back;
// REMOVE ends the group's bundles for good.
enum {
    RA__PG_PREPARE = 1,
    RA__PG_COMMIT = 2,
    RA__PG_RETURN = 3,
    RA__PG_REMOVE = 4,
    RA__PG_PREPARED = 5
};

// Longest CUDA_VISIBLE_DEVICES value a lease carries ("0,1,...,63").
#define RA__VISIBLE_MAX 192

// ra__gpu_env_ok tells whether s is a CUDA_VISIBLE_DEVICES value that a
// lease may set: empty, or device numbers or UUIDs separated by commas.
bool ra__gpu_env_ok(const char *s);

// ra__send_gpu_env tells worker actor `to` (its executor or its host) to
// set CUDA_VISIBLE_DEVICES to visible before the lease's work (core.c).
void ra__send_gpu_env(ra_ctx_t *ctx, ra_pid_t to, const char *visible);

// ra__load_libs loads the runtime environment's libraries (api.c).
int ra__load_libs(const char *const *libs, char **joined);

// ra__raylet_start starts the node's raylet with cfg (copied): a
// supervisor (*sup) whose one child is the raylet (*out), restarted in
// place when it ends, with the same pid, up to 5 times a minute (raylet.c,
// "kept up in place").  *sys holds what the supervisor restarts it with;
// free it with ra__raylet_sys_free after the runtime is destroyed.
// Returns 0 or an error of the runtime.
int ra__raylet_start(ra_runtime_t *rt, const ra__raylet_cfg_t *cfg,
                     ra__raylet_sys_t **sys, ra_pid_t *out, ra_pid_t *sup);
void ra__raylet_sys_free(ra__raylet_sys_t **sys);

// ra__gcs_start starts the GCS on the tables in dir: a supervisor (*sup)
// whose one child is the GCS actor (*gcs), restarted in place when it
// ends: in a slot of rt reserved for it, so with the same pid, up to 5
// times a minute (gcs.c, "kept up in place").  *sys holds what the
// supervisor restarts it with; free it with ra__gcs_sys_free after the
// runtime is destroyed.  Returns 0, or an error of the tables (the log
// says which) or of the runtime.
int ra__gcs_start(ra_runtime_t *rt, const char *dir, ra__gcs_sys_t **sys,
                  ra_pid_t *gcs, ra_pid_t *sup);
void ra__gcs_sys_free(ra__gcs_sys_t **sys);

// ra__gcs_ask_register tells raylet (RA__T_GCS_RESTARTED) that the GCS of
// ctx, restarted in place, does not know its node: it registers again
// when the sender is its GCS.
void ra__gcs_ask_register(ra_ctx_t *ctx, ra_pid_t raylet);

// The actor runtime's reserved slots (actor_impl.h): a pid that outlives
// an incarnation.
int ra__slot_reserve(ra_runtime_t *rt, uint32_t *id);
int ra__spawn_reserved(ra_runtime_t *rt, ra_ctx_t *parent, uint32_t id,
                       const ra_behaviour_t *b, void *arg,
                       const ra_spawn_opts_t *opts, unsigned wait_ms,
                       ra_pid_t *out);

// Kept up in place (proto.c; used by gcs.c and raylet.c): a system actor
// under a supervisor of its own (one_for_one, one permanent child, at most
// RA__KEEP_RESTARTS restarts in RA__KEEP_PERIOD_MS), each incarnation in a
// slot reserved for it, so with the same pid.
#define RA__KEEP_RESTARTS 5
#define RA__KEEP_PERIOD_MS 60000
// ra__keep_start reserves a slot of rt (*slot, which start reads) and
// starts the supervisor (*sup), whose child id start(arg) makes (with
// ra__keep_spawn).  Returns 0, or an error of the runtime or of start's
// first run.
int ra__keep_start(ra_runtime_t *rt, const char *id, ra_child_start_fn start,
                   void *arg, uint32_t *slot, ra_pid_t *sup);
// ra__keep_spawn spawns an incarnation of b with state into slot, links
// it to sup (the supervisor's context) and, unless tick is NULL, sends it
// an RA__T_TICK with the tick_len bytes of tick (its first message, sent
// as from outside any actor).  Returns 0 with *out, or an error: with
// *taken false the spawn failed and state is still the caller's to free;
// with it true the incarnation ended (its terminate freed state) and the
// supervisor tries again.
int ra__keep_spawn(ra_ctx_t *sup, uint32_t slot, const ra_behaviour_t *b,
                   void *state, const void *tick, size_t tick_len,
                   bool *taken, ra_pid_t *out);
// RA__KEPT_BACK_MS: how long a caller waits out a system actor kept up
// in place that has ended, while its supervisor restarts it: its process
// answers RA_ENOPROC meanwhile, for a few milliseconds.
#define RA__KEPT_BACK_MS 2000
// ra__kept_again: rc is the result of a first try at such an actor.
// While it is RA_ENOPROC, again(arg) tries again every 5 ms for up to
// back_ms, not once c's cluster is stopping.  Returns the last result.
int ra__kept_again(ra__cluster_t *c, int rc, int (*again)(void *),
                   void *arg, int64_t back_ms);
// ra__call_kept calls to with m from ctx, and again as ra__kept_again
// says; m stays the caller's (each try sends a reference of it).
int ra__call_kept(ra__cluster_t *c, ra_ctx_t *ctx, ra_pid_t to,
                  ra_msg_t *m, int64_t timeout_ms, int64_t back_ms,
                  ra_msg_t **reply);

// ra__name_key writes the table key "ns\0name" into key (cap bytes) and
// returns its length, or 0 when it does not fit.
size_t ra__name_key(char *key, size_t cap, const char *ns,
                    const char *name);

// Placement groups in the GCS (gcs_pg.c).
typedef struct ra__gcs_pgs ra__gcs_pgs_t;
typedef struct ra_tables ra_tables_t;
int ra__gcs_pg_new(ra__gcs_pgs_t **out, ra_tables_t *t);
void ra__gcs_pg_free(ra__gcs_pgs_t **p);
// The tick the GCS sends itself once it runs, for gcs_pg.c's groups
// taken over from an earlier run.
#define RA__GCS_PG_RELOADED 0x52
// ra__gcs_pg_flush commits the placement groups' batch of writes and
// sends what waited for it (the GCS does it as it ends).
void ra__gcs_pg_flush(ra_ctx_t *ctx, ra__gcs_pgs_t *p);
// ra__gcs_pg_op handles GCS operation op when it is a node or
// placement-group operation, and answers it; false for other operations.
bool ra__gcs_pg_op(ra_ctx_t *ctx, ra__gcs_pgs_t *p, uint8_t op,
                   ra__rbuf_t *r);
// Tables keyed by 64-bit ids (placement groups, jobs) use 8 big-endian
// bytes, so that keys sort as ids: ra__id_key writes one, ra__id_of_key
// reads one, ra__max_id_scan (an ra_table_scan_fn) keeps the largest in
// *(uint64_t *)user.
void ra__id_key(uint64_t id, unsigned char key[8]);
uint64_t ra__id_of_key(const void *key, size_t klen);
int ra__max_id_scan(void *user, const void *key, size_t klen,
                    const void *val, size_t vlen);

// The job table in the GCS (gcs_jobs.c).
// An actor's states (the same values as ra_actor_state_t).
enum {
    RA__ACTOR_PENDING = 0,
    RA__ACTOR_ALIVE = 1,
    RA__ACTOR_RESTARTING = 2,
    RA__ACTOR_DEAD = 3
};

// ra__gcs_scan_list writes every record of table into out as {u32 n, n x
// {key as put_key writes it, bytes value}}; put_key returns false to skip
// a record.  Returns 0 or an error (no table yet: 0 records).
int ra__gcs_scan_list(ra_tables_t *t, const char *table,
                      bool (*put_key)(ra__wbuf_t *b, const void *key,
                                      size_t klen),
                      ra__wbuf_t *out);
// ra__link_env_opts sets o's heartbeat interval and miss count from
// RAYO_HEARTBEAT_MS (10..60000) and RAYO_HEARTBEAT_MISS (2..1000), when
// set (else 0: the link's defaults, 500 ms x 5), and its per-peer queue
// of unacknowledged frames from RAYO_LINK_QUEUE_FRAMES (16..100000000;
// default 1,000,000).
void ra__link_env_opts(ra_link_opts_t *o);

// ra__env_u32 reads environment variable name as a whole number in
// [lo, hi]: its value, or 0 (absent, or not such a number: said in the
// log).
uint32_t ra__env_u32(const char *name, uint32_t lo, uint32_t hi);
// ra__tick_self sends the calling actor an RA__T_TICK message with the
// len bytes of body (which tick it is, and often the incarnation that
// armed it): now (behind what its mailbox holds) when after_ms is 0, else
// after_ms milliseconds from now.  0 or the error (nothing sent).
int ra__tick_self(ra_ctx_t *ctx, const void *body, size_t len,
                  uint64_t after_ms);

// ra__cluster_spin is ra_runtime_opts_t.spin for the cluster's processes
// (drivers, workers, daemons): RAYO_SCHED_SPIN (1 to 100000), else 0 (the
// runtime's default).
unsigned ra__cluster_spin(void);
// ra__wall_ms is the wall clock in ms since the epoch.
int64_t ra__wall_ms(void);

// The GCS's task table (gcs_tasks.c): what owners report of their
// remote function tasks, kept in memory, the newest RA__TASKS_MAX.
enum {
    RA__TEV_PENDING = 0,
    RA__TEV_RUNNING = 1,
    RA__TEV_FINISHED = 2,
    RA__TEV_FAILED = 3
};
#define RA__TASKS_MAX 100000
typedef struct ra__gcs_tasks ra__gcs_tasks_t;
int ra__gcs_tasks_new(ra__gcs_tasks_t **out, size_t max);
void ra__gcs_tasks_free(ra__gcs_tasks_t **g);
// ra__gcs_tasks_op handles task operation op as ra__gcs_jobs_op does.
bool ra__gcs_tasks_op(ra_ctx_t *ctx, ra__gcs_tasks_t *g, uint8_t op,
                      ra__rbuf_t *r, ra__wbuf_t *out, int *rc);
// ra__gcs_tasks_owner_gone ends the unfinished tasks of a driver that
// ended (FAILED, why): nobody will report on them any more.
void ra__gcs_tasks_owner_gone(ra__gcs_tasks_t *g, uint32_t node,
                              uint32_t proc, const char *why);

// The GCS's actor table (gcs_actors.c).
#define RA__ACTOR_KEY_LEN 16
typedef struct ra__actor_rec {
    uint8_t state;
    char cls[RA__NAME_MAX + 1];
    char name[RA__NAME_MAX + 1];
    char ns[RA__NAME_MAX + 1];
    uint64_t job;             // the owner's job (0: none)
    ra_pid_t pid;             // the instance (nil until alive)
    uint32_t restarts;
    bool detached;
    int64_t start_ms, end_ms; // wall clock; end_ms 0 while not dead
    char reason[256];         // why it is dead, or restarting
} ra__actor_rec_t;
void ra__actor_key(uint32_t node, uint32_t proc, uint64_t key,
                   unsigned char out[RA__ACTOR_KEY_LEN]);
void ra__wb_actor_rec(ra__wbuf_t *b, const ra__actor_rec_t *a);
int ra__rb_actor_rec(ra__rbuf_t *r, ra__actor_rec_t *a);
typedef struct ra__gcs_actors ra__gcs_actors_t;
typedef struct ra__gcs_jobs ra__gcs_jobs_t;
int ra__gcs_actors_new(ra__gcs_actors_t **out, ra_tables_t *t);
void ra__gcs_actors_free(ra__gcs_actors_t **g);
// ra__gcs_actors_op handles actor operation op as ra__gcs_jobs_op does.
// ra__gcs_actors_flush commits the batch of actor records (0 or the
// error, logged; the batch is emptied either way).  The GCS calls it on
// its RA__GCS_ACTORS_FLUSH tick and as it ends.
#define RA__GCS_ACTORS_FLUSH 0x58
int ra__gcs_actors_flush(ra__gcs_actors_t *g);
// ra__gcs_actors_tick handles that tick: the batch it was sent for.
void ra__gcs_actors_tick(ra__gcs_actors_t *g);
bool ra__gcs_actors_op(ra_ctx_t *ctx, ra__gcs_actors_t *g, uint8_t op,
                       ra__rbuf_t *r, ra__wbuf_t *out, int *rc);
// ra__gcs_actors_down handles a DOWN of an instance it watches (true).
// jobs: the job table, to say that an instance ended with its owner's job.
bool ra__gcs_actors_down(ra_ctx_t *ctx, ra__gcs_actors_t *g, ra_msg_t *m,
                         ra__gcs_jobs_t *jobs);
// ra__gcs_actors_reload watches the instances the table says are alive
// (a GCS that took over an earlier one's tables).
void ra__gcs_actors_reload(ra_ctx_t *ctx, ra__gcs_actors_t *g);

// ra__gcs_jobs_new loads the job table.  in_place: the GCS before this
// one ran in this process (restarted in place), and ra__gcs_jobs_rewatch
// will watch the running jobs' drivers again; otherwise running jobs are
// marked as watched by nobody.
int ra__gcs_jobs_new(ra__gcs_jobs_t **out, ra_tables_t *t, bool in_place);
void ra__gcs_jobs_free(ra__gcs_jobs_t **g);
// ra__gcs_jobs_rewatch watches the drivers of the running jobs again;
// returns how many jobs run.
unsigned ra__gcs_jobs_rewatch(ra_ctx_t *ctx, ra__gcs_jobs_t *g);
// ra__gcs_jobs_op handles job operation op (its status in *rc, its reply
// body in out); false for other operations.
bool ra__gcs_jobs_op(ra_ctx_t *ctx, ra__gcs_jobs_t *g, uint8_t op,
                     ra__rbuf_t *r, ra__wbuf_t *out, int *rc);
// ra__gcs_jobs_down handles a DOWN message of a driver it watches: true,
// with the driver's pid in *driver, when it was one.
// ra__gcs_job_running: job id is recorded and RUNNING.
bool ra__gcs_job_running(ra__gcs_jobs_t *g, uint64_t id);
bool ra__gcs_jobs_down(ra_ctx_t *ctx, ra__gcs_jobs_t *g, ra_msg_t *m,
                       ra_pid_t *driver);

// ra__gcs_pg_down handles a DOWN message: a node's raylet was lost.  False
// when m is not one of its monitors.
bool ra__gcs_pg_down(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra_msg_t *m);
// ra__gcs_pg_msg handles the raylets' answers (RA__T_PG) and retry ticks.
void ra__gcs_pg_msg(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra_msg_t *m);

// ra__sched_wait_begin and ra__sched_wait_end (the actor runtime's)
// bracket a wait that blocks this thread: on a scheduler thread the
// actors queued on it move to other threads, and a spare thread starts
// if fewer than the configured number would be left running.
bool ra__sched_wait_begin(void);
void ra__sched_wait_end(bool began);
// ra__sched_on_thread tells whether this thread is a scheduler thread.
bool ra__sched_on_thread(void);

// ra__log_from_env installs a stderr log sink when RAYO_LOG names a level.
void ra__log_from_env(void);

// ra__worker_run is the whole life of a worker process (never returns).
// forked: the process was forked by a fork server (ra_fork_server_main),
// which has tied its life to the server's already.
void ra__worker_run(bool forked) __attribute__((noreturn));

// ra__proc_alive tells whether OS process pid runs (a zombie does not,
// nor does a pid <= 0).
bool ra__proc_alive(int pid);

// ra__gcs_pid returns the GCS's pid as this process knows it now (it
// changes when the head of a tcp cluster is started again).
ra_pid_t ra__gcs_pid(ra__cluster_t *c);

// ra__gcs_call sends a GCS request (a codec body with op first) as the
// actor of ctx (NULL: from a plain thread, through a scope) and waits for
// the reply {i32 status, ...}.  Returns 0 and the reply, or an error.
int ra__gcs_call(ra_ctx_t *ctx, ra__wbuf_t *req, int64_t timeout_ms,
                 ra_msg_t **reply);

// Calls whose replies are {i32 status, ...}: each returns the status (or
// the call's own error, or RA_EBADMSG for a reply too short to hold it).
// On 0 the caller owns *reply and reads the rest with r, which starts
// after the status; on any other result *reply is NULL.
// ra__reply_status reads the status of *reply; ra__call_status calls to
// with *req (consumed) from the actor of ctx; ra__gcs_call_status is
// ra__gcs_call's.
int ra__reply_status(ra_msg_t **reply, ra__rbuf_t *r);
int ra__call_status(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t **req,
                    int64_t timeout_ms, ra_msg_t **reply, ra__rbuf_t *r);
int ra__gcs_call_status(ra_ctx_t *ctx, ra__wbuf_t *req, int64_t timeout_ms,
                        ra_msg_t **reply, ra__rbuf_t *r);

// GCS operations (first u8 of a RA__T_GCS body).
enum {
    RA__GCS_NAME_PUT = 1,    // ns, name, pid, str class, u8 replace, str
                             // endpoint (tcp clusters), u8 detached
                             // -> status
    RA__GCS_NAME_GET = 2,    // ns, name -> status, pid, class, endpoint
    RA__GCS_NAME_DEL = 3,    // ns, name, key -> status
    RA__GCS_KV_PUT = 4,      // key, value -> status
    RA__GCS_KV_GET = 5,      // key -> status, value
    RA__GCS_NODE_PUT = 6,    // u32 node, raylet, f64 cpus, f64 gpus,
                             // resources (memory, custom), str topology
                             // summary, bytes topology (BSON), str
                             // raylet endpoint ("" on one node) -> status
    RA__GCS_JOB_PUT = 7,     // job id, state -> status
    RA__GCS_ACTOR_PUT = 8,   // u64 the owner's actor key, actor record
                             // (ra__wb_actor_rec; from the owner) ->
                             // status (sent without waiting)
    RA__GCS_PG_CREATE = 9,   // ns, name, u8 strategy, u8 detached, core,
                             // u64 ready object, u32 n, n resources
                             // -> status, u64 id
    RA__GCS_PG_READY = 10,   // u64 id, core, u64 object -> status, u8
                             // state (RA__T_PG_READY follows if pending)
    RA__GCS_PG_REMOVE = 11,  // u64 id -> status
    RA__GCS_PG_GET = 12,     // ns, name -> status, u64 id
    RA__GCS_PG_INFO = 13,    // u64 id (0: all) -> status, u32 n, n x
                             // bytes record
    RA__GCS_NODE_HB = 15,    // u32 node, f64 cpus free, f64 gpus free,
                             // resources free -> RA__T_NODES {u32 n, n x
                             // {u32 node, raylet, str endpoint, resources
                             // total, f64 cpus free, f64 gpus free,
                             // resources free, u32 nb, nb x {u64 group,
                             // u32 bundle index}}} to the raylet
    RA__GCS_JOB_ADD = 16,    // core, u64 OS pid, u32 node, str entry point,
                             // str submission id -> status, u64 job id
    RA__GCS_JOB_END = 17,    // u64 id, u8 state, str message -> status
    RA__GCS_JOB_LIST = 18,   // -> status, u32 n, n x {u64 id, bytes
                             // record} (see gcs_jobs.c)
    RA__GCS_ACTOR_LIST = 19, // -> status, u32 n, n x {16 bytes key,
                             // bytes record} (see gcs_actors.c)
    RA__GCS_ACTOR_KILLED = 20, // pid instance: killed by the sender
                               // (sent without waiting)
    RA__GCS_TASK_EVENTS = 21, // u64 job, u32 n, n x event (see
                              // gcs_tasks.c; sent without waiting)
    RA__GCS_TASK_LIST = 22,   // u32 limit (0: all) -> status, u32 n, n x
                              // task record (see gcs_tasks.c)
    RA__GCS_NODE_LIST = 14   // -> status, u32 n, n x {u32 node, raylet,
                             // u8 alive, resources total, resources used
                             // by bundles, str summary, bytes topology,
                             // str raylet endpoint}
};

#endif

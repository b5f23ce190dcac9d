// ra_api.h - Ray's programming model for C: remote functions, actor
// classes, object references.
//
// A program calls ra_init(NULL) to start an embedded local cluster (a GCS,
// a raylet and a pool of worker processes on this machine), then submits
// remote functions with ra_remote and creates remote actors with
// ra_actor_create.  Each submission returns an object reference
// (ra_ref_t) at once; ra_get waits for the value and ra_wait for the first
// of several.  ra_shutdown stops the cluster.
//
// Code in C has no pickle: a remote function or actor class is registered
// by name when the program loads (RA_REMOTE_REGISTER,
// RA_ACTOR_CLASS_REGISTER), and worker processes run the program's own
// executable again in worker mode.  In a worker, ra_init (or
// ra_worker_main, for programs such as test runners that must not run
// their main) never returns: it serves tasks until the raylet stops it.
// So call ra_init early in main, before work that workers must not do, and
// before the program starts threads: later workers are forked from a copy
// of the program waiting there (a fork server), which a process with other
// threads cannot be (its workers are then executed afresh, more slowly).
//
// Values (arguments and results) are byte strings, BSON documents or
// 64-bit integers and doubles, tagged with their kind.  A task argument can
// also be a reference: the task then receives the referenced value, once
// it is ready (an argument whose task failed fails the dependent task with
// the same error).
//
// Failures are values, as in Ray: a task whose function fails gives
// RA_ETASK (the error text names the function, node and worker); a worker
// process that dies while running it is retried up to max_retries times
// and then gives RA_EWORKER; an actor that died gives RA_EACTOR; a task
// past its deadline gives RA_ETIMEOUT; a cancelled one RA_ECANCELED;
// resources no node can offer give RA_EINFEASIBLE at once.
//
// Threads: after ra_init, any thread may call any function here, including
// the functions of remote tasks and actor methods running in workers.  The
// cluster is process-wide: one ra_init per process at a time.
#ifndef RA_API_H
#define RA_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "ra_place.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- starting and stopping ----

// Options of ra_init_opts; zero fields take the defaults.
typedef struct ra_init_opts {
    // Cluster to join: "auto" (the newest node daemon started on this
    // machine under temp_dir, see ra_node_run) or a node daemon's session
    // directory; NULL: RAYO_ADDRESS, else start an embedded local cluster.
    // ("host:port" of a remote head is not supported yet.)
    const char *address;
    double num_cpus;          // CPUs the embedded raylet offers (default:
                              // online CPUs)
    double num_gpus;          // GPU devices it offers, a whole number
                              // (default: those found, see below)
    unsigned workers;         // worker processes started at once (default:
                              // num_cpus, at least 1; joined: the node's
                              // base pool; RA_WORKERS_NONE: none, for a
                              // client that only reads cluster state)
    unsigned max_workers;     // cap of the pool (default: 4 x num_cpus + 4)
    const char *temp_dir;     // session directories go here (default
                              // $RAYO_TEMP_DIR, else /tmp/rayo)
    const char *namespace_;   // namespace of named actors (default
                              // "default")
    unsigned threads;         // scheduler threads per process (default:
                              // online CPUs)
    // Runtime environment: shared libraries (paths, NULL-terminated list)
    // loaded with dlopen in this process and in every worker before it
    // serves, so that the remote functions and actor classes they
    // register (RA_REMOTE_REGISTER in the library) need not be in the
    // program.  Also taken from RAYO_LIBS (paths separated by ':').
    const char *const *libs;
    // The node's shared-memory object store: task results of 100 KiB or
    // more are put there by the worker and mapped (not copied) by
    // ra_get.  object_store_memory is its size (default 256 MiB for an
    // embedded cluster; SIZE_MAX: no store, every value inline).
    size_t object_store_memory;
    // The node's topology (see ra_topo.h and doc/topology.md): this
    // machine's, found with hwloc and the CUDA driver, unless these (or
    // RAYO_TOPOLOGY_SYNTHETIC, RAYO_TOPOLOGY_XML, RAYO_GPU_FILE) describe
    // another one, for tests and simulation.  GPUs come from gpu_file
    // when given, else from the CUDA driver (none without a driver).  A
    // request for several GPUs gets the best-linked free set.  Workers
    // see the GPUs of their lease in CUDA_VISIBLE_DEVICES ("" without
    // GPUs); when the program itself runs with CUDA_VISIBLE_DEVICES set,
    // device i of the node is its i-th entry.
    const char *topology_synthetic; // hwloc synthetic description
    const char *topology_xml;       // hwloc XML file
    const char *gpu_file;           // GPU inventory file (JSON)
    // Memory and custom resources the node offers besides its CPUs and
    // GPUs (cpus and gpus here must be 0), as Ray's resources={"ssd": 2}:
    // tasks, actors and bundles that ask for them go only where they are.
    // Also taken from RAYO_RESOURCES, a JSON object such as
    // '{"ssd": 2, "memory": 8e9}', when this names none.
    ra_resources_t resources;
    // Node daemons only (ra_node_run): a cluster of several nodes.  With
    // node_ip set, the node speaks tcp with CurveZMQ on that address, and
    // so do its workers and drivers.  A head (head NULL) listens for
    // other nodes on port (0: a free one) and makes the cluster
    // certificate SESSION/cluster.cert unless cert names one.  A node
    // joining a head gives head ("HOST:PORT") and cert, the head's
    // certificate file (else $RAYO_CERT).  Without node_ip the cluster is
    // this machine only, over ipc.
    const char *node_ip;
    unsigned port;
    const char *head;
    const char *cert;
    // A worker that runs a task or a process actor with GPUs whose NUMA
    // node is known (a placement-group bundle's, or the lease's devices')
    // is bound to that NUMA node's cores (hwloc cpubind, every thread of
    // the process), and unbound again when it serves work without; so
    // CPU work next to a GPU uses memory near it.  It happens only where
    // binding is real: this machine's topology, or an XML file loaded
    // with HWLOC_THISSYSTEM=1.  no_numa_bind (or RAYO_NUMA_BIND=0) turns
    // it off.
    bool no_numa_bind;
} ra_init_opts_t;

#define RA_WORKERS_NONE 0xFFFFFFFFu

// ra_init starts or joins a cluster with default options: address NULL
// (and no RAYO_ADDRESS) starts an embedded local cluster.  In a worker
// process it does not return (see ra_worker_main).  Returns 0; RA_EALREADY
// (already initialised); RA_EINVAL; RA_ENOENT (a library of the runtime
// environment could not be loaded: the log says why); RA_ENOTSUP (joining
// a remote "host:port" cluster is not built yet); RA_ENOCONN (no node
// daemon runs at that address: the log says how to start one);
// -errno from the file system (session directory) or process creation;
// RA_ENOMEM.
//
// Joining a node daemon (address "auto" or its session directory): this
// process becomes a driver, with its own job.  The daemon's raylet starts
// this job's workers from this program's executable, arguments,
// environment and working directory, exactly as an embedded cluster
// would, so a program runs unchanged on either.  ra_shutdown, or the end
// of this process, ends the job: its workers are stopped and what it held
// returns to the node.
int ra_init(const char *address);

// ra_init_opts is ra_init with options (opts may be NULL).
int ra_init_opts(const ra_init_opts_t *opts);

// ra_node_run runs a node daemon in this process (what `rayo start --head
// --block` does): the GCS, the raylet and the object store of a cluster
// that programs on this machine join with ra_init("auto") or with the
// session directory.  opts are those of an embedded cluster (address must
// be NULL); the session directory holds the sockets, the GCS tables,
// worker logs and node.info, and TEMP/current names it (TEMP: temp_dir).
// When ready it writes the session directory and a newline to ready_fd
// (unless negative) and closes it; then it serves until SIGTERM, SIGINT
// or SIGHUP, stops every worker and returns 0.  Call it from the main
// thread before starting threads of your own: it blocks those signals.
// The GCS, the raylet and the object manager run under supervisors of
// their own, which restart each in place (the same pid) when it ends, up
// to 5 times a minute (doc/cluster.md, "Kept up in place").
// Returns 0 or an error of ra_init_opts; or RA_EACTOR when one of those
// supervisors gave up, or the daemon's core ended, while it served: the
// log names which and why, and the daemon stopped, its workers with it,
// so that a supervisor (the keeper of `rayo start --restart`, systemd)
// starts it again.
int ra_node_run(const ra_init_opts_t *opts, int ready_fd);

// ra_cluster_locate finds the node daemon that address names ("auto" or
// NULL: the one TEMP/current names, TEMP being temp_dir, else
// $RAYO_TEMP_DIR, else /tmp/rayo; or a session directory) and copies its
// session directory into session (cap bytes) and its OS process id into
// *daemon_pid (may be NULL).  Returns 0; RA_ENOENT (none was started
// there); RA_ENOCONN (its session is known but the daemon is not
// running; session is filled); RA_ENOTSUP ("host:port"); RA_EBADMSG (a
// node file of another version); RA_EINVAL.
int ra_cluster_locate(const char *address, const char *temp_dir,
                      char *session, size_t cap, int *daemon_pid);

// ra_cluster_forget removes what marks the node daemon of session as
// running, for a daemon that ends (it calls this itself) or one that was
// killed without cleaning up: its node file (SESSION/node.info), its
// object store in /dev/shm named there, and TEMP/current when it names
// session (TEMP being the directory above session).  Logs and tables
// stay.  Safe when any of them is already gone.
void ra_cluster_forget(const char *session);

// ra_cluster_temp_dir returns the temp dir that session directories go
// in: temp_dir unless NULL or empty, else $RAYO_TEMP_DIR, else /tmp/rayo.
const char *ra_cluster_temp_dir(const char *temp_dir);

// ra_shutdown stops what ra_init started: worker processes are stopped,
// the session directory is removed and values still held are freed.
// Object references and actor handles become invalid.  Safe without
// ra_init and safe twice.
void ra_shutdown(void);

// ra_is_initialized tells whether ra_init has succeeded and ra_shutdown
// has not run yet.
bool ra_is_initialized(void);

// ra_worker_main returns 0 at once in an ordinary process.  In a process
// that a raylet started as a worker it runs the worker and then exits the
// process; it never returns.  In the raylet's fork server for the
// program's workers it serves (ra_fork_server_main), and each worker
// forked there goes on as a worker.  ra_init calls it first, so only a program
// whose main must not run in workers (a test runner, say) calls it, as the
// first thing in main.
int ra_worker_main(void);

// ---- values ----

// The kinds of values.
typedef enum ra_value_kind {
    RA_VAL_NONE = 0,   // no value (a function that returned nothing)
    RA_VAL_BYTES = 1,
    RA_VAL_BSON = 2,
    RA_VAL_I64 = 3,
    RA_VAL_F64 = 4,
    RA_VAL_REF = 16    // a task argument that is a reference itself
                       // (RA_ARG_BORROW): read it with ra_task_arg_ref
} ra_value_kind_t;

// ra_ref_t refers to an object: the value a task returns, or one given to
// ra_put.  It names the process that owns the object and a number; copy it
// freely (it is a value), release it once with ra_release.
typedef struct ra_ref {
    uint32_t node;
    uint32_t proc;
    uint64_t id;
} ra_ref_t;

#define RA_REF_NIL ((ra_ref_t){0, 0, 0})

// ra_arg_t is one argument of a task: a value, or a reference.  Use the
// RA_ARG_* macros.  RA_ARG_REF(r) passes the object's value: the task
// runs once it is ready and reads it like any value.  RA_ARG_BORROW(r)
// passes the reference itself (Ray's nested reference): the task reads it
// with ra_task_arg_ref, may ra_get it, pass it on, or keep it past the
// call with ra_borrow, and the object lives while anyone borrows it.
// Both accept a reference this process borrows, as well as its own.
typedef enum ra_arg_kind {
    RA_ARG_BYTES = RA_VAL_BYTES,
    RA_ARG_BSON = RA_VAL_BSON,
    RA_ARG_I64 = RA_VAL_I64,
    RA_ARG_F64 = RA_VAL_F64,
    RA_ARG_REF = 16,
    RA_ARG_BORROW = 17
} ra_arg_kind_t;

typedef struct ra_arg {
    ra_arg_kind_t kind;
    const void *data;        // RA_ARG_BYTES: the bytes
    size_t len;              // RA_ARG_BYTES: their length
    const bson_t *bson;      // RA_ARG_BSON
    int64_t i64;
    double f64;
    ra_ref_t ref;            // RA_ARG_REF, RA_ARG_BORROW
} ra_arg_t;

#define RA_ARG_I64(x) ((ra_arg_t){.kind = RA_ARG_I64, .i64 = (x)})
#define RA_ARG_F64(x) ((ra_arg_t){.kind = RA_ARG_F64, .f64 = (x)})
#define RA_ARG_BYTES(p, n)                                                  \
    ((ra_arg_t){.kind = RA_ARG_BYTES, .data = (p), .len = (n)})
#define RA_ARG_BSON(doc) ((ra_arg_t){.kind = RA_ARG_BSON, .bson = (doc)})
#define RA_ARG_REF(r) ((ra_arg_t){.kind = RA_ARG_REF, .ref = (r)})
#define RA_ARG_BORROW(r) ((ra_arg_t){.kind = RA_ARG_BORROW, .ref = (r)})

// ra_value_t is a value received by ra_get.  Read it with the accessors,
// free it with ra_value_free.
typedef struct ra_value ra_value_t;

// ra_value_kind returns its kind.
ra_value_kind_t ra_value_kind(const ra_value_t *v);
// ra_value_data returns its bytes (for every kind: the BSON document's
// bytes, the 8 bytes of a number) and their length in *len (may be NULL).
// Borrowed until ra_value_free.  A large value is a read-only view into
// the node's object store, pinned until ra_value_free, which must come
// before ra_shutdown.
const void *ra_value_data(const ra_value_t *v, size_t *len);
// ra_value_i64 and ra_value_f64 read a number; another kind reads as 0.
int64_t ra_value_i64(const ra_value_t *v);
double ra_value_f64(const ra_value_t *v);
// ra_value_bson initialises *doc (read-only, borrowed until ra_value_free)
// from a BSON value.  Returns 0 or RA_EBADMSG for another kind.
int ra_value_bson(const ra_value_t *v, bson_t *doc);
// ra_value_ref reads the reference in a value of kind RA_VAL_REF (a task
// that returned one with ra_task_return_ref): this process borrows it,
// like one received with ra_task_arg_ref, while it holds the result.
// Returns 0 or RA_EBADMSG (another kind).
int ra_value_ref(const ra_value_t *v, ra_ref_t *out);
// ra_value_nrefs returns how many references the value contains: those
// given to ra_put_refs or ra_task_return_refs with it (1 for a value of
// kind RA_VAL_REF, 0 for most values).  ra_value_ref_at stores reference
// i of them in *out.  This process borrows each of them as long as it
// holds the object whose value this is (until ra_release of that
// reference); ra_borrow keeps one longer.  ra_value_ref_at returns 0,
// RA_ENOENT (i is past the end) or RA_EBADMSG.
size_t ra_value_nrefs(const ra_value_t *v);
int ra_value_ref_at(const ra_value_t *v, size_t i, ra_ref_t *out);
// ra_value_free frees *v and sets it to NULL.  Safe on NULL.
void ra_value_free(ra_value_t **v);

// ra_pg_t is a handle to a placement group (see below); id 0 is none.
typedef struct ra_pg {
    uint64_t id;
} ra_pg_t;

// ---- remote functions ----

// ra_task_t is what a remote function or actor method receives: its
// arguments, and where its result goes.  Borrowed for the call.
typedef struct ra_task ra_task_t;

// ra_task_fn is a remote function, an actor method or an actor
// constructor.  It returns 0, or a negative error, which the caller's
// ra_get sees as RA_ETASK with the text set by ra_task_fail (or the error's
// name).
typedef int (*ra_task_fn)(ra_task_t *t);

// ra_task_nargs returns the number of arguments.
size_t ra_task_nargs(const ra_task_t *t);
// ra_task_arg_kind returns the kind of argument i (RA_VAL_NONE past the
// end).
ra_value_kind_t ra_task_arg_kind(const ra_task_t *t, size_t i);
// ra_task_arg returns the bytes of argument i and their length, or NULL
// past the end and for a reference (RA_VAL_REF).  Borrowed for the call.
const void *ra_task_arg(const ra_task_t *t, size_t i, size_t *len);
// ra_task_arg_i64 and ra_task_arg_f64 read a number argument (0 when
// argument i is missing or of another kind).
int64_t ra_task_arg_i64(const ra_task_t *t, size_t i);
double ra_task_arg_f64(const ra_task_t *t, size_t i);
// ra_task_arg_bson initialises *doc from a BSON argument (read-only,
// borrowed for the call).  Returns 0, RA_ENOENT or RA_EBADMSG.
int ra_task_arg_bson(const ra_task_t *t, size_t i, bson_t *doc);

// ra_task_arg_ref stores in *out the reference passed as argument i with
// RA_ARG_BORROW.  It is valid for the call: ra_get, ra_wait and ra_cancel
// take it (ra_get asks the owner for the value once, and maps it where it
// lies in this node's object store, or has it copied here from another
// node's), and RA_ARG_REF or RA_ARG_BORROW pass it on to other tasks.  To
// keep it past the call (in an actor's state, say), call ra_borrow and
// later ra_release.  Returns 0, RA_ENOENT (no argument i) or RA_EBADMSG
// (argument i is not a reference).
int ra_task_arg_ref(const ra_task_t *t, size_t i, ra_ref_t *out);
// ra_task_arg_nrefs returns how many references the value of argument i
// contains (an object made with ra_put_refs or ra_task_return_refs,
// passed with RA_ARG_REF; 1 for an argument of kind RA_VAL_REF), and
// ra_task_arg_ref_at stores reference j of them in *out.  They are valid
// for the call, as one received with ra_task_arg_ref (ra_borrow keeps one
// longer).  ra_task_arg_ref_at returns 0, RA_ENOENT or RA_EBADMSG.
size_t ra_task_arg_nrefs(const ra_task_t *t, size_t i);
int ra_task_arg_ref_at(const ra_task_t *t, size_t i, size_t j,
                       ra_ref_t *out);

// ra_task_return_* set the result (the last call wins; none: RA_VAL_NONE).
// The data is copied.  Return 0 or RA_ENOMEM.
int ra_task_return_bytes(ra_task_t *t, const void *data, size_t len);
int ra_task_return_bson(ra_task_t *t, const bson_t *doc);
int ra_task_return_i64(ra_task_t *t, int64_t x);
int ra_task_return_f64(ra_task_t *t, double x);
// ra_task_return_ref makes the result the reference ref itself: an
// object of this process (ra_put, or a task it submitted) or one it
// borrows.  The caller's ra_get then gives a value of kind RA_VAL_REF,
// read with ra_value_ref; the caller's process borrows the object for as
// long as it holds the result (until ra_release of the result's
// reference; ra_borrow keeps it longer).  The reference may be released
// here right after this call.  The object lives with its owner: one made
// here lives while this worker does (an idle worker that owns borrowed
// objects is not retired until they are let go).  Returns 0, RA_ENOENT
// (not a reference of this process, nor one it borrows), RA_ENOMEM.
int ra_task_return_ref(ra_task_t *t, ra_ref_t ref);
// ra_task_return_refs sets the result to value (not a reference) together
// with the references it contains, as ra_put_refs does for ra_put: the
// result object holds refs[0..nrefs-1] (objects of this process or
// borrowed here) for as long as it lives, the caller reads them with
// ra_value_ref_at, and they may be released here right after this call.
// The caller is registered with each one's owner before the result
// leaves; if an owner cannot be reached the caller gets RA_ETASK saying
// which.  Returns 0, RA_EINVAL, RA_ENOENT (a reference that is neither
// ours nor borrowed here), RA_ENOMEM.
int ra_task_return_refs(ra_task_t *t, const ra_arg_t *value,
                        const ra_ref_t *refs, size_t nrefs);

// ra_task_fail sets the error text that the caller sees with RA_ETASK, and
// returns RA_ETASK so that a function can end with `return
// ra_task_fail(t, "bad input %d", x);`.
int ra_task_fail(ra_task_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// ra_task_state returns an actor's state inside its methods (what its
// constructor passed to ra_task_set_state); NULL for plain tasks.
void *ra_task_state(const ra_task_t *t);
// ra_task_set_state sets it, in the constructor.
void ra_task_set_state(ra_task_t *t, void *state);
// ra_task_cancelled tells a long function that its caller cancelled it or
// its deadline passed, so that it can stop early.
bool ra_task_cancelled(const ra_task_t *t);

// ra_remote_register registers fn under name (at most 127 bytes).  Use
// RA_REMOTE_REGISTER, which does it when the program loads, so that
// workers have the same table.  Returns 0, RA_EEXIST or RA_EINVAL.
int ra_remote_register(const char *name, ra_task_fn fn);

// RA_REMOTE_REGISTER(fn) registers the function fn under its own name.
#define RA_REMOTE_REGISTER(fn)                                              \
    __attribute__((constructor)) static void ra__register_##fn(void)       \
    {                                                                       \
        (void)ra_remote_register(#fn, fn);                                  \
    }

// Options of a task; start from RA_TASK_OPTS_INIT.
typedef struct ra_task_opts {
    double num_cpus;          // default 1
    double num_gpus;          // default 0
    int max_retries;          // retries after a worker died (default 3;
                              // -1: forever)
    bool retry_exceptions;    // also retry when the function fails
    int64_t timeout_ms;       // deadline from submission (0: none)
    const char *name;         // shown by rayo list tasks
    // Run inside a placement group's bundle, using only its resources:
    // bundle_index, or any bundle with room (-1, the default).  The task
    // waits while the group is pending, and fails with RA_EINFEASIBLE if
    // the group is removed or no bundle could ever hold it.
    ra_pg_t placement_group;
    int bundle_index;
    // Memory and custom resources it needs besides CPUs and GPUs (NULL:
    // none; its cpus and gpus must be 0).
    const ra_resources_t *resources;
} ra_task_opts_t;

#define RA_TASK_OPTS_INIT                                                   \
    ((ra_task_opts_t){.num_cpus = 1, .max_retries = 3, .bundle_index = -1})

// ra_remote submits the remote function named fn with nargs arguments and
// stores a reference to its result in *out.  Arguments are copied; the
// call does not wait for the task.  opts NULL means RA_TASK_OPTS_INIT.
// Returns 0; RA_ENOENT (no function of that name is registered);
// RA_EINFEASIBLE (no node offers the resources); RA_ECLOSED (not
// initialised); RA_EINVAL; RA_ENOMEM.
int ra_remote(const char *fn, const ra_arg_t *args, size_t nargs,
              const ra_task_opts_t *opts, ra_ref_t *out);

// ---- objects ----

// ra_put stores a copy of a value (an argument-shaped description; a
// reference is not allowed) as an object of this process and returns its
// reference.  Returns 0, RA_EINVAL, RA_ECLOSED or RA_ENOMEM.
int ra_put(const ra_arg_t *value, ra_ref_t *out);

// ra_put_refs is ra_put of a value that contains references (Ray's
// references stored inside an object: a list of shards, say).  The value
// is copied as given (write the references into it as you like, or not at
// all); refs[0..nrefs-1] are what the object holds: each lives at least as
// long as the new object does, wherever that object is read, even after
// this process releases its own reference to it.  A reader, by ra_get or
// as a task argument, gets them with ra_value_ref_at or
// ra_task_arg_ref_at and borrows them while it holds the object.  Each ref
// is an object of this process or one it borrows now.  Returns 0;
// RA_EINVAL (no value, a reference as the value, more than 65,536 refs);
// RA_ENOENT (a ref that is neither ours nor borrowed here; nothing was
// stored); RA_ECLOSED; RA_ENOMEM.
int ra_put_refs(const ra_arg_t *value, const ra_ref_t *refs, size_t nrefs,
                ra_ref_t *out);

// ra_get waits up to timeout_ms (negative: forever) for the object and
// stores a copy of its value in *out (caller frees it).  A wait outside
// the runtime's scheduler threads (on the program's own threads, say)
// first yields the CPU for up to 200 us (100 turns of sched_yield), which
// a synchronous task's answer usually beats, and then sleeps.  Returns 0;
// RA_ETIMEOUT (not ready yet; try again); the task's error (RA_ETASK,
// RA_EWORKER, RA_EACTOR, RA_ETIMEOUT with *out set to a value whose
// ra_value_error tells the story, RA_ECANCELED, RA_EINFEASIBLE); RA_ENOENT
// (released and no longer borrowed by any task or process, or neither an
// object of this process nor one it borrows);
// RA_EOBJLOST (a borrowed object whose owner is gone or released it, or
// that cannot be copied to this node; ra_value_error says which);
// RA_ECLOSED.  A borrowed object's value is asked of its owner once per
// process; later gets read this process's copy.
int ra_get(ra_ref_t ref, int64_t timeout_ms, ra_value_t **out);

// ra_get_i64 is ra_get of a number: 0 and *x, or the error.
int ra_get_i64(ra_ref_t ref, int64_t timeout_ms, int64_t *x);

// ra_value_error returns the error text of a failed task's value ("" for
// a value that is not an error).  Borrowed until ra_value_free.
const char *ra_value_error(const ra_value_t *v);

// ra_wait waits until at least num_ready of the n references are ready
// (done or failed) or timeout_ms passes (negative: forever), and sets
// ready[i] for each.  Returns the number ready (which may be below
// num_ready after a timeout), or RA_EINVAL/RA_ECLOSED.  Borrowed
// references among them are asked of their owners every 2 ms or so.
int ra_wait(const ra_ref_t *refs, size_t n, size_t num_ready,
            int64_t timeout_ms, bool *ready);

// ra_release tells the owner that this reference is no longer needed;
// once a task finishes its value is freed.  On a borrowed reference it
// ends one ra_borrow.  Safe on a released or unknown reference (it does
// nothing).  An object is freed when its owner has released it and no
// task or process borrows it any more.
void ra_release(ra_ref_t ref);

// ra_borrow keeps a reference received with ra_task_arg_ref valid after
// the call that received it, until a matching ra_release: its owner is
// told that this process borrows the object (when the call ends), so the
// object stays while the owner lives, even if the owner releases it.  A
// borrower's process that exits ends its borrows, and so does an actor
// that ends: ra_borrow in an actor's constructor, method or fini is that
// actor's, let go when the actor ends (killed, or its last handle gone)
// if it has not released it by then.  Returns 0; RA_EINVAL
// (a reference of this process: it owns it already); RA_ENOENT (not a
// reference this process borrows now); RA_ECLOSED.
int ra_borrow(ra_ref_t ref);

// ra_store_usage_t is a snapshot of the counters of this node's object
// store, the shared memory that holds large values (see doc/objstore.md).
typedef struct ra_store_usage {
    uint64_t capacity;      // bytes the store may use
    uint64_t used;          // bytes objects take now (headers included)
    uint64_t objects;       // objects in it, in memory or spilled
    uint64_t spilled;       // objects now only in spill files
    uint64_t spilled_bytes; // their size
} ra_store_usage_t;

// ra_store_usage fills *out with the object store of the node this
// process runs on (a driver's or a worker's).  It shows what large values
// are held: task results of 100 KiB or more, copies pulled from other
// nodes, and copies this node keeps for owners elsewhere until they have
// theirs.  Returns 0; RA_EINVAL (NULL out); RA_ECLOSED (ra_init has not
// run); RA_ENOTSUP (this node has no object store).  Any thread.
int ra_store_usage(ra_store_usage_t *out);

// ra_transfer_stats_t holds the counters of this node's object manager,
// which copies objects between the stores of the nodes, since it started.
typedef struct ra_transfer_stats {
    uint64_t pulls;          // objects copied here from other nodes
    uint64_t pull_failures;  // copies that failed (object lost, no room)
    uint64_t pulled_bytes;   // their bytes
    uint64_t pull_us;        // microseconds those copies took, summed
                             // (from asking to a sealed copy)
    uint64_t served_bytes;   // bytes sent to other nodes' managers
} ra_transfer_stats_t;

// ra_transfer_stats fills *out from the object manager of the caller's
// node (a call to it, answered within 5 s).  pulled_bytes / pull_us is
// the transfer rate seen by this node.  Returns 0; RA_EINVAL (NULL out);
// RA_ECLOSED (ra_init has not run); RA_ENOTSUP (this node has no object
// store, so no object manager); RA_ETIMEOUT or another error of the call.
// Any thread (the call uses a scope of its own).
int ra_transfer_stats(ra_transfer_stats_t *out);

// ra_cancel cancels a task: one still queued is not run; one running is
// told (ra_task_cancelled), and with force its worker is killed.  The
// reference then gives RA_ECANCELED.  Returns 0, RA_ENOENT or RA_EALREADY
// (finished).
int ra_cancel(ra_ref_t ref, bool force);

// ---- actors ----

// ra_method_t is one method of an actor class.
typedef struct ra_method {
    const char *name;
    ra_task_fn fn;
} ra_method_t;

// ra_actor_class_t describes an actor class: init (the constructor, which
// receives the creation arguments and sets the state with
// ra_task_set_state; may be NULL), fini (frees the state when the actor
// ends; may be NULL) and methods.  Must outlive the program (static
// const).
typedef struct ra_actor_class {
    const char *name;
    ra_task_fn init;
    void (*fini)(void *state);
    const ra_method_t *methods;
    size_t nmethods;
} ra_actor_class_t;

// ra_actor_class_register registers cls; RA_ACTOR_CLASS_REGISTER does it
// when the program loads.  Returns 0, RA_EEXIST or RA_EINVAL.
int ra_actor_class_register(const ra_actor_class_t *cls);

#define RA_ACTOR_CLASS_REGISTER(cls)                                        \
    __attribute__((constructor)) static void ra__register_cls_##cls(void)  \
    {                                                                       \
        (void)ra_actor_class_register(&(cls));                              \
    }

// Where an actor runs.
typedef enum ra_isolation {
    RA_ISOLATION_SHARED = 0,  // a lightweight actor in a shared worker
    RA_ISOLATION_PROCESS = 1  // a worker process of its own, which ends
                              // with the actor (killed, or owner gone)
} ra_isolation_t;

// Options of an actor; start from RA_ACTOR_OPTS_INIT.
typedef struct ra_actor_opts {
    const char *name;         // register under this name (NULL: none)
    const char *namespace_;   // of the name (NULL: the job's namespace)
    // detached: outlive the creating program, as Ray's lifetime=
    // "detached".  The actor gets a worker process of its own, which the
    // end of this program's job (normal or not) does not stop: it keeps
    // its state and resources, and other programs find it by name
    // (ra_actor_lookup).  It ends when one of them kills it
    // (ra_actor_kill on the looked-up handle), or with its node; its
    // worker then exits, its resources return and its name is released.
    // Once its creator is gone it is not restarted.  On an embedded
    // cluster it ends with the cluster (ra_shutdown).
    bool detached;
    int max_restarts;         // restarts after its worker died (default 0;
                              // -1: forever)
    int max_task_retries;     // retries of a call interrupted by a death
    double num_cpus;          // held for the actor's life (default 0)
    double num_gpus;
    ra_isolation_t isolation;
    // no_wait makes ra_actor_create return as soon as the creation is
    // under way, as Ray's Actor.remote() does: calls made meanwhile wait
    // until the actor is up, and fail with RA_EACTOR (saying why) if it
    // never comes up (its constructor failed, no worker could host it).
    bool no_wait;
    // Live inside a placement group's bundle (as for tasks).  Such an actor
    // ends when the group is removed: a lightweight one's instance is
    // killed (its shared worker process and the actors beside it go on;
    // a method already running finishes first, since C code cannot be
    // interrupted), one with RA_ISOLATION_PROCESS loses its process.
    ra_pg_t placement_group;
    int bundle_index;
    // Memory and custom resources it holds for its life (as for tasks).
    const ra_resources_t *resources;
    // max_concurrency: how many of its method calls may run at once (0 or
    // 1: one at a time, each caller's calls in the order made; at most
    // 1000).  Above 1, as a threaded Ray actor: the calls start in the
    // order they arrive and run on that many threads of the actor's own,
    // so they may end in another order; they share the state, which they
    // must lock themselves and must not replace (ra_task_set_state).  A
    // kill lets methods already running finish (their answers still go
    // out) and drops calls not started.
    int max_concurrency;
} ra_actor_opts_t;

#define RA_ACTOR_OPTS_INIT                                                  \
    ((ra_actor_opts_t){.max_restarts = 0, .bundle_index = -1})

// ra_actor_t is a handle to an actor; a value, valid until ra_shutdown.
typedef struct ra_actor {
    uint64_t id;
} ra_actor_t;

// ra_actor_create creates an actor of class cls with its constructor's
// arguments and waits until it is placed and constructed (unless
// opts->no_wait).  Returns 0;
// RA_EINVAL (a bad option, such as max_concurrency outside 0..1000);
// RA_ENOENT (no class of that name); RA_EEXIST (the name is taken);
// RA_ETASK (the constructor failed); RA_EINFEASIBLE; RA_ETIMEOUT (no
// worker came up in time); RA_ECLOSED; RA_ENOMEM.
int ra_actor_create(const char *cls, const ra_arg_t *args, size_t nargs,
                    const ra_actor_opts_t *opts, ra_actor_t *out);

// ra_actor_call calls method of actor a and stores a reference to the
// result in *out.  Calls from one caller run in the order made.  Returns
// 0, RA_ENOENT (no such actor handle), RA_ECLOSED or RA_ENOMEM; the
// method's own errors (unknown method, failure, the actor died) come from
// ra_get.
int ra_actor_call(ra_actor_t a, const char *method, const ra_arg_t *args,
                  size_t nargs, ra_ref_t *out);

// Options of one actor call; zero fields take the defaults.
typedef struct ra_call_opts {
    int64_t timeout_ms;       // deadline from the call (0: none)
} ra_call_opts_t;

// ra_actor_call_opts is ra_actor_call with options (opts may be NULL).
// When the deadline passes first, ra_get gives RA_ETIMEOUT and a late
// answer is dropped; the method itself is not interrupted (it runs in the
// actor, which other calls share), and later calls still wait behind it.
int ra_actor_call_opts(ra_actor_t a, const char *method,
                       const ra_arg_t *args, size_t nargs,
                       const ra_call_opts_t *opts, ra_ref_t *out);

// ra_actor_kill ends the actor at once, without restarting it; pending
// calls fail with RA_EACTOR.  Returns 0 or RA_ENOENT.
int ra_actor_kill(ra_actor_t a);

// ra_actor_lookup finds a named actor (namespace NULL: the job's) in the
// cluster, also one created by another program.  Returns 0, RA_ENOENT or
// RA_ECLOSED.
int ra_actor_lookup(const char *name, const char *namespace_,
                    ra_actor_t *out);

// ---- placement groups ----
//
// A placement group reserves bundles of resources (ra_resources_t: CPUs,
// GPUs, and memory and custom resources, which the embedded node does not
// offer yet) on the cluster's nodes, all or nothing, as Ray's do.  The
// strategy says how bundles spread over nodes (ra_place.h): PACK, SPREAD,
// STRICT_PACK, STRICT_SPREAD.  A bundle with GPUs gets the best-linked
// free devices of its node (doc/topology.md).  Tasks and actors then run
// in a bundle (ra_task_opts_t.placement_group) and use only its
// resources.  The GCS keeps groups in its tables; see doc/cluster.md.

typedef enum ra_pg_state {
    RA_PG_PENDING = 0,        // waiting for resources
    RA_PG_CREATED = 1,        // every bundle reserved
    RA_PG_RESCHEDULING = 2,   // a node with bundles died: placed again
    RA_PG_REMOVED = 3
} ra_pg_state_t;

// ra_pg_state_name returns "PENDING", "CREATED", "RESCHEDULING" or
// "REMOVED" ("?" for another value).
const char *ra_pg_state_name(ra_pg_state_t s);

// Options of ra_pg_create; zero fields take the defaults.
typedef struct ra_pg_opts {
    ra_pg_strategy_t strategy; // default RA_PG_PACK
    const char *name;          // for ra_pg_get (NULL: none); unique per
                               // namespace among live groups
    const char *namespace_;    // of the name (NULL: the job's namespace)
    bool detached;             // outlive the creating program (kept by
                               // the GCS; the embedded cluster ends with
                               // its program anyway)
} ra_pg_opts_t;

// ra_pg_create asks for a group of n bundles and returns at once: the
// group is PENDING until every bundle is reserved (ra_pg_wait,
// ra_pg_ready).  A group that no set of nodes could ever hold stays
// pending (and is logged), as in Ray, until removed.  Returns 0;
// RA_EINVAL (n == 0, more than RA_PLACE_MAX_BUNDLES, a negative amount,
// a bundle of nothing, a bad strategy or name); RA_EEXIST (the name is
// taken); RA_ECLOSED; RA_ENOMEM.
int ra_pg_create(const ra_resources_t *bundles, size_t n,
                 const ra_pg_opts_t *opts, ra_pg_t *out);

// ra_pg_ready returns a reference that becomes ready (no value) when the
// group is created, or fails with RA_ECANCELED if it is removed first;
// for ra_wait and ra_get.  Release it with ra_release.  Returns 0,
// RA_ENOENT (no such group: never made, or removed), RA_ECLOSED.
int ra_pg_ready(ra_pg_t pg, ra_ref_t *out);

// ra_pg_wait waits up to timeout_ms (negative: forever) for the group to
// be created.  Returns 0; RA_ETIMEOUT (still pending); RA_ECANCELED
// (removed meanwhile); RA_ENOENT; RA_ECLOSED.
int ra_pg_wait(ra_pg_t pg, int64_t timeout_ms);

// ra_pg_remove removes the group: it is REMOVED when this returns, and
// its nodes then return its reservations and kill the tasks and actors in
// its bundles (their callers see RA_EWORKER or RA_EACTOR), as Ray does,
// without waiting for them.  Returns 0, RA_ENOENT (no such live group),
// RA_ECLOSED.
int ra_pg_remove(ra_pg_t pg);

// ra_pg_get finds a live group by name in a namespace (NULL: the job's).
// Returns 0, RA_ENOENT, RA_EINVAL, RA_ECLOSED.
int ra_pg_get(const char *name, const char *namespace_, ra_pg_t *out);

// What ra_pg_info and ra_pg_list tell of a group.
typedef struct ra_pg_bundle_info {
    ra_resources_t need;
    uint32_t node;             // where it is reserved (0: not placed)
} ra_pg_bundle_info_t;

typedef struct ra_pg_info {
    ra_pg_t pg;
    char name[128];
    char namespace_[128];
    ra_pg_strategy_t strategy;
    ra_pg_state_t state;
    bool detached;
    size_t nbundles;
    ra_pg_bundle_info_t *bundles;  // nbundles entries
} ra_pg_info_t;

// ra_pg_info describes one group, removed ones too; free it with
// ra_pg_info_free.  Returns 0, RA_ENOENT, RA_ECLOSED, RA_ENOMEM.
int ra_pg_info(ra_pg_t pg, ra_pg_info_t *out);
void ra_pg_info_free(ra_pg_info_t *info);

// ra_pg_list describes every group the GCS knows (live ones first, then
// removed ones) in a new array of *n entries; free it with
// ra_pg_list_free.  Returns 0, RA_ECLOSED, RA_ENOMEM.
int ra_pg_list(ra_pg_info_t **out, size_t *n);
void ra_pg_list_free(ra_pg_info_t *list, size_t n);

// ---- the cluster ----

// ra_cluster_resources fills total and available CPUs and GPUs of the
// cluster (any pointer may be NULL).  Returns 0 or RA_ECLOSED.
int ra_cluster_resources(double *cpus_total, double *cpus_avail,
                         double *gpus_total, double *gpus_avail);

// ra_node_info_t describes one node of the cluster, as the GCS knows it
// and as its raylet says now.
typedef struct ra_node_info {
    uint32_t node;            // its number (the head is 1)
    uint32_t proc;            // the process of its raylet (a node daemon's
                              // OS process id)
    ra_pid_t raylet;          // its raylet actor
    bool alive;
    ra_resources_t total;     // what it offers: CPUs, GPUs, memory, custom
    ra_resources_t bundles;   // of that, reserved for placement groups
    double cpus_avail;        // free now (-1 when its raylet did not say)
    double gpus_avail;
    unsigned workers;         // worker processes
    unsigned pending;         // lease requests waiting for resources
    unsigned leases;          // workers leased or hosting actors
    char topology[256];       // one line: "1 package, 1 NUMA node, ..."
    char *topology_json;      // the topology as a JSON object {"topology":
                              // {...}} as `rayo topo --format json` shows
                              // it, or NULL
    ra_store_usage_t store;   // its object store (capacity 0: none, or
                              // its raylet did not say)
} ra_node_info_t;

// ra_node_list returns the cluster's nodes in a new array *out of *n
// entries; free it with ra_node_list_free.  Returns 0, RA_ECLOSED (not
// initialised), RA_ETIMEOUT or RA_ENOCONN (the GCS did not answer),
// RA_EBADMSG or RA_ENOMEM.
int ra_node_list(ra_node_info_t **out, size_t *n);
void ra_node_list_free(ra_node_info_t *list, size_t n);

// Jobs: every driver that joins a node daemon's cluster is a job of the
// GCS's job table (an embedded cluster's program is not recorded).
typedef enum ra_job_state {
    RA_JOB_RUNNING = 0,
    RA_JOB_SUCCEEDED = 1,     // its driver called ra_shutdown
    RA_JOB_FAILED = 2,        // its driver's process was lost
    RA_JOB_STOPPED = 3        // stopped on request (rayo job stop)
} ra_job_state_t;

typedef struct ra_job_info {
    uint64_t id;
    ra_job_state_t state;
    int64_t pid;              // the driver's OS process
    uint32_t node;            // the node it joined
    int64_t start_ms, end_ms; // wall-clock ms since the epoch (end 0 while
                              // running)
    char entrypoint[1024];    // the driver's command line
    char submission[128];     // RAYO_SUBMISSION_ID of the driver, if any
                              // (rayo job submit sets it)
    char message[256];        // how it ended
} ra_job_info_t;

// ra_job_state_name returns "RUNNING", "SUCCEEDED", "FAILED", "STOPPED"
// or "?".
const char *ra_job_state_name(ra_job_state_t s);

// ra_job_list returns every job the GCS has recorded, oldest first, in a
// new array (free it with free()).  Returns 0, RA_ECLOSED, RA_ETIMEOUT,
// RA_EBADMSG, RA_ENOMEM.
int ra_job_list(ra_job_info_t **out, size_t *n);

// ra_job_end records that job id ended in state (not RA_JOB_RUNNING) with
// message: a driver for its own job, anyone for RA_JOB_STOPPED (before
// stopping the job's process).  A job that already ended keeps its
// record.  Returns 0, RA_ENOENT, RA_EACCES, RA_EINVAL, RA_ECLOSED.
int ra_job_end(uint64_t id, ra_job_state_t state, const char *message);

// ra_job_id returns this driver's job id (0 on an embedded cluster or
// when not initialised).
uint64_t ra_job_id(void);

// Actors: the GCS's actor table records every actor of the cluster, as
// its owner (the process that created it) reports it, and ends the
// record of an instance that ends while it says ALIVE.
typedef enum ra_actor_state {
    RA_ACTOR_PENDING = 0,     // being placed or constructed
    RA_ACTOR_ALIVE = 1,
    RA_ACTOR_RESTARTING = 2,  // its worker was lost; it restarts
    RA_ACTOR_DEAD = 3         // for good: see reason
} ra_actor_state_t;

typedef struct ra_actor_info {
    uint32_t owner_node, owner_proc; // the process that created it
    uint64_t id;                     // its handle's id in that process
    ra_actor_state_t state;
    char cls[128];
    char name[128];                  // "" when unnamed
    char namespace_[128];
    uint64_t job;                    // the owner's job (0: embedded)
    uint32_t node, proc;             // where its instance runs (last)
    uint32_t restarts;
    bool detached;
    int64_t start_ms, end_ms;        // wall-clock ms (end 0 unless dead)
    char reason[256];                // why it is DEAD or RESTARTING
} ra_actor_info_t;

// ra_actor_state_name returns "PENDING", "ALIVE", "RESTARTING", "DEAD"
// or "?".
const char *ra_actor_state_name(ra_actor_state_t s);

// ra_actor_list returns every actor the GCS has recorded (dead ones too),
// in a new array (free it with free()).  Returns 0, RA_ECLOSED,
// RA_ETIMEOUT, RA_EBADMSG, RA_ENOMEM.
int ra_actor_list(ra_actor_info_t **out, size_t *n);

// Tasks: the GCS's task table holds the newest remote function tasks of
// the cluster (100,000 by default; RAYO_GCS_MAX_TASKS on the head sets
// it), as their owners report them in batches about every half second.
// It lives in the GCS's memory: a restarted head starts it empty.  A
// process with RAYO_TASK_EVENTS=0 in its environment reports none of its
// tasks (they cost it about a tenth of its task rate on a 2-vCPU
// machine); with RAYO_TASK_EVENTS=all it reports its actor method calls
// too, as Class.method (about 30% of its async actor call rate).
typedef enum ra_task_status {
    RA_TASK_PENDING = 0,      // submitted: waits for its arguments or a
                              // worker
    RA_TASK_RUNNING = 1,      // pushed to a worker (see node, proc)
    RA_TASK_FINISHED = 2,
    RA_TASK_FAILED = 3        // see error (also cancelled or timed out)
} ra_task_status_t;

typedef struct ra_task_info {
    uint32_t owner_node, owner_proc; // the process that submitted it
    uint64_t id;                     // its result object's id there
    ra_task_status_t state;
    uint32_t attempt;                // 0 first, then one per retry
    char func[128];                  // the remote function, or the
                                     // actor's Class.method (with
                                     // RAYO_TASK_EVENTS=all)
    char name[128];                  // ra_task_opts_t.name ("" if none)
    uint64_t job;                    // the owner's job (0: embedded)
    uint32_t node, proc;             // the worker it ran on last (0: none)
    int64_t submit_ms, start_ms, end_ms; // wall-clock ms (0: not yet)
    char error[256];                 // FAILED: why
} ra_task_info_t;

// ra_task_status_name returns "PENDING", "RUNNING", "FINISHED", "FAILED"
// or "?".
const char *ra_task_status_name(ra_task_status_t s);

// ra_task_list returns the newest limit tasks of the GCS's task table
// (0: all it holds), oldest first, in a new array (free it with free()).
// Events reach the table about half a second after they happen.  Returns
// 0, RA_ECLOSED, RA_ETIMEOUT, RA_EBADMSG, RA_EINVAL, RA_ENOMEM.
int ra_task_list(size_t limit, ra_task_info_t **out, size_t *n);

// ra_worker_info_t describes one worker process of a node.
typedef struct ra_worker_info {
    uint32_t node;
    int64_t pid;              // its OS process
    const char *state;        // "STARTING", "IDLE", "LEASED" or "STOPPING"
    unsigned actors;          // actors it hosts
    bool dedicated;           // it hosts one actor of its own
    int64_t driver_pid;       // the OS process of the job it serves
    char gpus[192];           // the GPUs it is bound to ("" none)
    int64_t idle_ms;          // how long it has been idle (-1: busy)
} ra_worker_info_t;

// ra_worker_list returns the worker processes of every live node in a new
// array (free it with free()).  Returns 0, RA_ECLOSED, RA_ETIMEOUT,
// RA_EBADMSG, RA_ENOMEM.
int ra_worker_list(ra_worker_info_t **out, size_t *n);

// ra_cluster_session_dir returns the session directory (sockets, logs,
// tables) of this cluster; borrowed until ra_shutdown.  NULL when not
// initialised.
const char *ra_cluster_session_dir(void);

#ifdef __cplusplus
}
#endif
#endif

// raylet_impl.h - the raylet's state, shared by raylet.c (workers, leases)
// and raylet_res.c (resource pools, GPUs, placement-group bundles).
//
// Resources are counted in ten-thousandths (RA__UNIT), so that fractional
// requests add up exactly.  A pool is a set of resources that leases are
// granted from: the node's own, or a placement-group bundle's, which was
// taken from the node's pool when the bundle was reserved.  GPUs are
// counted per device: dev[i] is how much of device i is free in the pool,
// dev_total[i] how much of it the pool has.
#ifndef RA_RAYLET_IMPL_H
#define RA_RAYLET_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "cluster_impl.h"
#include "hmap.h"

#define RA__UNIT 10000.0

typedef struct ra__rpool {
    int64_t cpus_total, cpus_avail;
    int64_t gpus_total, gpus_avail;
    int64_t *dev;             // per node device: free in this pool
    int64_t *dev_total;       // per node device: this pool's share
    ra_resources_t xtotal;    // memory and custom resources
    ra_resources_t xavail;
} ra__rpool_t;

// A placement-group bundle reserved on this node.
typedef struct ra__bundle {
    uint64_t pg;
    uint32_t index;
    uint64_t attempt;         // the GCS's reservation that prepared it
    bool committed;           // prepared, then committed by the GCS
    ra__rpool_t pool;
    int numa;                 // NUMA node of its GPUs (-1: none, unknown)
    struct ra__bundle *next;
} ra__bundle_t;

enum { RA__WK_STARTING = 0, RA__WK_IDLE = 1, RA__WK_LEASED = 2 };

// A job's worker environment: how its workers are started (the driver's
// executable, arguments, environment and working directory).  Workers
// serve the job whose environment they were started with, and only it.
// Env 0 is the embedded cluster's own program; a node daemon has one per
// connected driver.
typedef struct ra__jenv {
    uint32_t id;
    char **argv;
    char **envp;              // complete: the raylet's RAYO_* variables in
    ra_pid_t driver;          // the driver's core (nil for env 0)
    int64_t ospid;            // the driver's OS process id (0: unknown)
    unsigned prestart;        // workers started when it registered
    unsigned starting;        // its workers started, not yet registered
    unsigned want;            // scratch of try_grant
    bool no_host;             // scratch of try_grant: no worker of this
                              // job can take a shared actor now
    bool gone;                // the job ended: its workers are stopped
    struct ra__jenv *next;
} ra__jenv_t;

typedef struct ra__wk {
    int64_t ospid;
    int state;
    bool registered;
    bool dedicated;           // hosts one isolated actor
    unsigned actors;          // shared actors hosted
    int64_t idle_since;       // ms, while idle with no actors; else 0
    bool stopping;            // told to exit (retired)
    bool in_bundle;           // leased for a task or an isolated actor of
                              // a placement-group bundle (killed with it)
    bool detached;            // hosts a detached actor: the end of its
                              // job does not stop it
    int numa;                 // NUMA node its process is bound to (-1:
                              // none, as started)
    uint32_t env;             // the job environment it was started with
    ra_pid_t exec, host, core;
    // CUDA_VISIBLE_DEVICES: what the worker has now, and the GPUs it was
    // first given ("" when never).  A process that initialised CUDA keeps
    // its devices, so a worker serves GPU leases for one set only.
    char visible[RA__VISIBLE_MAX];
    char bound[RA__VISIBLE_MAX];
    char ep[256];             // its tcp endpoint ("" on one node: ipc)
    struct ra__wk *next;
} ra__wk_t;

typedef struct ra__rlease {
    uint64_t id;
    ra__wk_t *w;
    int64_t cpus, gpus;
    unsigned *devs;           // the GPU devices it holds (gpus > 0)
    unsigned ndevs;
    ra_resources_t x;         // memory and custom resources it holds
    ra__bundle_t *bundle;     // the bundle it was granted from, or NULL
    ra_pid_t owner;           // nil once a detached actor's owner is gone
    bool actor;
    bool shared;              // a lightweight actor's, in a shared worker:
                              // ending it ends the instance, not the process
    bool detached;            // a detached actor's: kept when its owner
                              // goes, until its worker exits
    bool blocked;             // its task waits: its CPUs are lent out
    struct ra__rlease *next, *prev;
} ra__rlease_t;

typedef struct ra__req {
    uint64_t req;
    int64_t cpus, gpus;
    ra_resources_t x;         // memory and custom resources
    bool actor;
    int isolation;
    bool detached;            // a detached actor (RA__ISO_DETACHED)
    uint64_t pg;              // placement group (0: none)
    int32_t bundle;           // its bundle index (-1: any)
    uint32_t env;             // the job environment of the worker
    bool no_spill;            // spilled here already: serve it or fail
    uint32_t near;            // the node that holds the work's large
                              // arguments (0: none): preferred while it
                              // has room
    uint64_t view_gen;        // the view of the other nodes when it came
    ra_pid_t owner;
    struct ra__req *next;
} ra__req_t;

// Another node as the GCS last described it (RA__T_NODES).
typedef struct ra__rnode {
    uint32_t node;
    ra_pid_t raylet;
    char ep[256];
    ra_resources_t total;     // cpus and gpus included
    ra_resources_t avail;     // free (cpus and gpus included), lowered
                              // here by what was spilled there since
    uint64_t *bpg;            // the bundles of created placement groups
    uint32_t *bidx;           // there: group and index
    uint32_t nb;
} ra__rnode_t;

// Placement groups removed from this node recently: requests for them
// fail instead of waiting for bundles that will not come.
#define RA__PG_GONE_MAX 1024

typedef struct ra__raylet {
    ra__raylet_cfg_t cfg;
    ra__rpool_t node;          // the node's resources outside bundles
    unsigned ndev;            // GPU devices
    bool *dev_mask;           // scratch for ra_topo_pick_gpus
    unsigned *dev_scratch;    // scratch for the devices of one grant
    char **dev_name;          // device i as CUDA_VISIBLE_DEVICES names it:
                              // the i-th entry of the node's own value
                              // (GPUs "2,3" make devices 0 and 1), or NULL
    ra__bundle_t *bundles;
    uint64_t gone[RA__PG_GONE_MAX];
    unsigned ngone;
    ra_pid_t sup;
    ra__wk_t *workers;
    unsigned nworkers, starting;
    ra__rlease_t *leases;     // newest first
    ra__hmap_t lease_ids;     // {id, 0} -> lease
    uint64_t next_lease;
    ra__req_t *reqs, **reqs_tail;
    unsigned nreqs;
    bool grant_soon;          // a RAYLET_GRANT tick is on its way
    uint64_t next_child;
    ra__rnode_t *view;         // the other nodes (several-node clusters)
    unsigned nview;
    uint64_t view_gen;         // views received
    ra__jenv_t *envs;          // job environments, newest first
    uint32_t next_env;
    char **base_env;          // the program's environment at start
    bool booted;
    // Kept up in place (raylet.c): what restarts it (NULL when it runs
    // without a supervisor), which incarnation this is, and the worker
    // processes the last one left (their objects go once they are gone).
    ra__raylet_sys_t *sys;
    unsigned incarnation;
    int64_t *orphans;
    size_t norphans;
    // Several nodes: the GCS is watched, and when it is lost a thread
    // dials its endpoint until a new head answers (RA__T_GCS_BACK).
    uint64_t gcs_mref;
    uint64_t hb_gen;          // view_gen at the last heartbeat
    unsigned hb_silent;       // heartbeats since the GCS last answered
    pthread_t finder;
    bool finder_on;
    _Atomic bool finder_stop;
} ra__raylet_t;

// ---- raylet_res.c ----

// ra__rpool_init makes an empty pool for a node of ndev GPU devices.
int ra__rpool_init(ra__rpool_t *p, unsigned ndev);
void ra__rpool_free(ra__rpool_t *p);

// ra__rpool_feasible tells whether pool p could ever grant cpus and gpus
// (its totals), ra__rpool_take takes them now if they are free, choosing
// the devices (stored in devs, room for r->ndev; *ndevs set), and
// ra__rpool_give gives them back.
// x is the memory and custom resources (NULL: none).
bool ra__rpool_feasible(const ra__raylet_t *r, const ra__rpool_t *p,
                        int64_t cpus, int64_t gpus, const ra_resources_t *x);
bool ra__rpool_take(ra__raylet_t *r, ra__rpool_t *p, int64_t cpus,
                    int64_t gpus, const ra_resources_t *x, unsigned *devs,
                    unsigned *ndevs);
void ra__rpool_give(ra__rpool_t *p, int64_t cpus, int64_t gpus,
                    const ra_resources_t *x, const unsigned *devs,
                    unsigned ndevs);

// ra__visible_of writes the CUDA_VISIBLE_DEVICES value for devices
// devs[0..n) ("" for none).
void ra__visible_of(const ra__raylet_t *r, const unsigned *devs, unsigned n,
                    char *buf, size_t cap);

// ra__dev_names_from_env reads the node's own CUDA_VISIBLE_DEVICES (see
// ra__raylet_t.dev_name).
char **ra__dev_names_from_env(unsigned ndev);

// ra__req_pool finds the pool a request is granted from: the node's, or
// a committed bundle of its placement group with room now.  Returns it, or
// NULL with *never set when no pool of this node could ever grant it.
ra__rpool_t *ra__req_pool(ra__raylet_t *r, const ra__req_t *q, bool *never,
                         ra__bundle_t **bundle);

// ra__raylet_pg handles the GCS's PREPARE, COMMIT and RETURN of a
// placement group's bundles (RA__T_PG).
void ra__raylet_pg(ra_ctx_t *ctx, ra__raylet_t *r, ra_msg_t *m);

// ---- raylet.c ----

// ra__raylet_drop ends a lease whose bundle goes away: the owner is told
// why, the worker is killed, the resources return to the lease's pool.
void ra__raylet_drop(ra_ctx_t *ctx, ra__raylet_t *r, ra__rlease_t *l,
                     const char *why);
void ra__raylet_try_grant(ra_ctx_t *ctx, ra__raylet_t *r);

#endif

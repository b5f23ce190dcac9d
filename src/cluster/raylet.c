// raylet.c - the raylet of a node: its resources, its worker pool and
// the leases that hand workers to owners.
//
// Resources are counted in ten-thousandths, so that fractional requests
// (0.5 GPU, 0.1 CPU) add up exactly and always return to the total.
// Worker processes are OS-process children of a supervisor linked to the
// raylet ("rayo-workers", one_for_one, temporary children): the
// supervisor starts them, reports their exits as events, and stops them
// with the raylet.  A lease grants one worker to one owner for tasks of
// one resource shape (the worker's executor runs them one at a time), or
// hosts one actor (many share a worker unless the actor asks for a
// process of its own).  Requests wait in arrival order; one that fits
// later is granted as soon as resources or a worker free up; one no node
// could ever satisfy is refused at once with RA_EINFEASIBLE.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ra_objstore.h"
#include "raylet_impl.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_supervisor.h"

#define UNIT RA__UNIT
// A worker above the pool's base size that stays idle this long is
// retired (Ray: idle_worker_killing_time_threshold_ms).
#define IDLE_RETIRE_MS 1000
#define REAP_EVERY_MS 500

enum { RAYLET_BOOT = 0, RAYLET_REAP = 1, RAYLET_HB = 2, RAYLET_GRANT = 3 };

// How often a raylet of a several-node cluster tells the GCS what it has
// free (and learns what the others have).
#define HB_EVERY_MS 200

enum {
    WK_STARTING = RA__WK_STARTING,
    WK_IDLE = RA__WK_IDLE,
    WK_LEASED = RA__WK_LEASED
};

typedef ra__wk_t wk_t;
typedef ra__rlease_t lease_t;
typedef ra__req_t req_t;
typedef ra__raylet_t raylet_t;

static void orphans_gone(ra_ctx_t *ctx, raylet_t *r);
static void cfg_free(ra__raylet_cfg_t *c);

// tick sends this raylet a tick of kind what (RAYLET_*), after delay_ms
// or (0) behind what is queued now.  A tick names the incarnation that
// armed it: one armed by an incarnation that ended reaches the next (the
// same pid, see "kept up in place") and is ignored there.  Returns 0 or
// an error of the runtime.
static int
tick(ra_ctx_t *ctx, raylet_t *r, uint8_t what, uint64_t delay_ms)
{
    uint8_t body[2] = {what, (uint8_t)r->incarnation};
    return ra__tick_self(ctx, body, sizeof body, delay_ms);
}

// ---- worker processes ----

// read_cmdline returns the program's own argv, read from /proc, so that a
// worker runs the same executable with the same arguments.
char **
ra__read_cmdline(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while (buf != NULL && (n = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t)n;
        if (len == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (buf == NULL || len == 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    size_t argc = 0;
    for (size_t i = 0; i < len; i++) {
        argc += buf[i] == '\0';
    }
    char **argv = calloc(argc + 2, sizeof *argv);
    if (argv == NULL) {
        free(buf);
        return NULL;
    }
    // argv[0] is the executable itself, found through /proc/self/exe, so
    // that a program started through PATH or a relative path still works.
    char *exe = realpath("/proc/self/exe", NULL);
    argv[0] = exe != NULL ? exe : strdup(buf);
    size_t k = 1;
    char *p = buf + strlen(buf) + 1;
    while (p < buf + len && k <= argc) {
        argv[k++] = strdup(p);
        p += strlen(p) + 1;
    }
    free(buf);
    return argv;
}

void
ra__free_strv(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        free(v[i]);
    }
    free(v);
}

extern char **environ;

static char *
dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
dupf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return strdup(buf);
}

// copy_environ copies the program's environment, on the thread that
// starts the raylet: the raylet's own thread must not read environ while
// the program may change it.
char **
ra__copy_environ(void)
{
    size_t n = 0;
    while (environ[n] != NULL) {
        n++;
    }
    char **v = calloc(n + 1, sizeof *v);
    for (size_t i = 0; v != NULL && i < n; i++) {
        if ((v[i] = strdup(environ[i])) == NULL) {
            ra__free_strv(v);
            return NULL;
        }
    }
    return v;
}

static char **
make_env(const raylet_t *r, ra_pid_t self, char *const *env, uint32_t id,
         const char *cwd, ra_pid_t driver)
{
    size_t n = 0;
    while (env[n] != NULL) {
        n++;
    }
    char **e = calloc(n + 24, sizeof *e);
    if (e == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (r->ndev > 0 &&
            strncmp(env[i], "CUDA_VISIBLE_DEVICES=", 21) == 0) {
            continue;   // set below, per lease
        }
        if (strncmp(env[i], "RAYO_", 5) != 0 ||
            strncmp(env[i], "RAYO_TEMP_DIR=", 14) == 0 ||
            strncmp(env[i], "RAYO_LOG", 8) == 0) {
            e[k++] = strdup(env[i]);
        }
    }
    e[k++] = strdup("RAYO_WORKER=1");
    e[k++] = dupf("RAYO_PPID=%d", (int)getpid());
    e[k++] = dupf("RAYO_NODE=%u", self.node);
    e[k++] = dupf("RAYO_SESSION=%s", r->cfg.session);
    e[k++] = dupf("RAYO_RAYLET_EP=%s", r->cfg.endpoint);
    e[k++] = dupf("RAYO_RAYLET=%u.%u.%u.%u", self.node, self.proc, self.id,
                  self.gen);
    e[k++] = dupf("RAYO_GCS=%u.%u.%u.%u", r->cfg.gcs.node, r->cfg.gcs.proc,
                  r->cfg.gcs.id, r->cfg.gcs.gen);
    e[k++] = dupf("RAYO_NS=%s", r->cfg.ns);
    e[k++] = dupf("RAYO_ENV=%u", id);
    if (!ra_pid_is_nil(driver)) {
        // Output lines go to the driver's terminal through its core.
        e[k++] = dupf("RAYO_DRIVER=%u.%u.%u.%u", driver.node, driver.proc,
                      driver.id, driver.gen);
    }
    if (cwd != NULL && cwd[0] != '\0') {
        e[k++] = dupf("RAYO_CWD=%s", cwd);
    }
    e[k++] = dupf("RAYO_THREADS=%u", r->cfg.threads);
    e[k++] = dupf("RAYO_CPUS=%.4f", r->cfg.num_cpus);
    e[k++] = dupf("RAYO_GPUS=%.4f", r->cfg.num_gpus);
    if (r->cfg.libs != NULL) {
        e[k++] = dupf("RAYO_LIBS=%s", r->cfg.libs);
    }
    if (r->cfg.store != NULL) {
        e[k++] = dupf("RAYO_STORE=%s", r->cfg.store);
    }
    if (!ra_pid_is_nil(r->cfg.objmgr)) {
        e[k++] = dupf("RAYO_OBJMGR=%u.%u.%u.%u", r->cfg.objmgr.node,
                      r->cfg.objmgr.proc, r->cfg.objmgr.id,
                      r->cfg.objmgr.gen);
    }
    if (r->cfg.bind_ip != NULL) {
        e[k++] = dupf("RAYO_BIND=tcp://%s:0", r->cfg.bind_ip);
        e[k++] = dupf("RAYO_CERT=%s", r->cfg.cert);
        e[k++] = dupf("RAYO_GCS_EP=%s", r->cfg.gcs_ep);
    }
    if (r->ndev > 0) {
        // A task sees the GPUs its lease holds, and none without one.
        e[k++] = strdup("CUDA_VISIBLE_DEVICES=");
    }
    for (size_t i = 0; i < k; i++) {
        if (e[i] == NULL) {
            ra__free_strv(e);
            return NULL;
        }
    }
    return e;
}

static wk_t *
wk_find(raylet_t *r, int64_t ospid)
{
    for (wk_t *w = r->workers; w != NULL; w = w->next) {
        if (w->ospid == ospid) {
            return w;
        }
    }
    return NULL;
}

static wk_t *
wk_add(raylet_t *r, int64_t ospid)
{
    wk_t *w = calloc(1, sizeof *w);
    if (w != NULL) {
        w->ospid = ospid;
        w->numa = -1;
        w->next = r->workers;
        r->workers = w;
        r->nworkers++;
        r->starting++;
    }
    return w;
}

static ra__jenv_t *
env_find(raylet_t *r, uint32_t id)
{
    for (ra__jenv_t *e = r->envs; e != NULL; e = e->next) {
        if (e->id == id) {
            return e;
        }
    }
    return NULL;
}

// env_live counts the workers of job environment id that are not being
// stopped.
static unsigned
env_live(const raylet_t *r, uint32_t id)
{
    unsigned n = 0;
    for (const wk_t *w = r->workers; w != NULL; w = w->next) {
        n += w->env == id && !w->stopping;
    }
    return n;
}

static int
start_worker(ra_ctx_t *ctx, raylet_t *r, ra__jenv_t *env)
{
    if (r->nworkers >= r->cfg.max_workers) {
        return RA_EAGAIN;
    }
    // None while this process's cluster stops (ra_shutdown): the workers
    // are going, and the raylet's supervisor is about to stop it.  That
    // stop could run on this thread while the raylet waits for its worker
    // supervisor below (a scheduler thread runs other actors while one of
    // its actors waits for a call), and then wait for the raylet's end,
    // which cannot come before that call returns: ra_shutdown hung.
    if (r->cfg.stopping != NULL && atomic_load(r->cfg.stopping)) {
        return RA_ECLOSED;
    }
    if (env == NULL || env->gone) {
        return RA_EINVAL;
    }
    char id[32];
    snprintf(id, sizeof id, "worker-%" PRIu64, ++r->next_child);
    ra_child_spec_t spec = {
        .id = id,
        .argv = (const char *const *)env->argv,
        .envp = (const char *const *)env->envp,
        .restart = RA_TEMPORARY,
        .shutdown_ms = 1000,
        .fork_server = r->cfg.fork_workers,
    };
    ra_pid_t pid;
    int rc = ra_sup_start_child(ctx, r->sup, &spec, NULL, &pid);
    if (rc != 0) {
        ra_log_err("raylet", "cannot start a worker process: %s",
                   ra_err_name(rc));
        return rc;
    }
    ra_child_info_t info[1];
    size_t n = 0;
    // The new child is the last one; find its OS pid by id.
    ra_child_info_t *all = calloc(r->nworkers + 8, sizeof *all);
    if (all != NULL &&
        ra_sup_which_children(ctx, r->sup, all, r->nworkers + 8, &n) == 0) {
        for (size_t i = 0; i < n && i < r->nworkers + 8; i++) {
            if (strcmp(all[i].id, id) == 0) {
                info[0] = all[i];
                wk_t *w = wk_find(r, info[0].ospid);
                if (w == NULL) {
                    w = wk_add(r, info[0].ospid);
                }
                if (w != NULL) {
                    w->env = env->id;
                    env->starting++;
                }
                break;
            }
        }
    }
    free(all);
    return 0;
}

// ---- resources and leases ----

// reqs_retail points reqs_tail at the end of the request list again,
// after requests were taken out of it.
static void
reqs_retail(raylet_t *r)
{
    r->reqs_tail = &r->reqs;
    while (*r->reqs_tail != NULL) {
        r->reqs_tail = &(*r->reqs_tail)->next;
    }
}

// reply_grant answers a lease request.  A granted lease carries the
// CUDA_VISIBLE_DEVICES value its worker must have, and whether the owner
// must tell the worker (it differs from what the worker has now).
static void
reply_grant(ra_ctx_t *ctx, const raylet_t *r, const req_t *q, int status,
            lease_t *l)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    char vis[RA__VISIBLE_MAX] = "";
    bool tell = false;
    if (l != NULL && l->w != NULL) {
        ra__visible_of(r, l->devs, l->ndevs, vis, sizeof vis);
        // Shared actors live beside other work: they take the process as
        // it is (they never hold GPUs, see ra_actor_create).
        bool shared = q->actor && q->isolation != RA_ISOLATION_PROCESS;
        if (!shared && strcmp(vis, l->w->visible) != 0) {
            tell = true;
            snprintf(l->w->visible, sizeof l->w->visible, "%s", vis);
        }
        if (vis[0] != '\0' && l->w->bound[0] == '\0') {
            snprintf(l->w->bound, sizeof l->w->bound, "%s", vis);
        }
    }
    ra__wb_u64(&b, q->req);
    ra__wb_u32(&b, (uint32_t)status);
    ra__wb_u64(&b, l != NULL ? l->id : 0);
    ra__wb_pid(&b, l != NULL ? l->w->exec : RA_PID_NIL);
    ra__wb_pid(&b, l != NULL ? l->w->host : RA_PID_NIL);
    ra__wb_f64(&b, (double)q->cpus / UNIT);
    ra__wb_f64(&b, (double)q->gpus / UNIT);
    ra__wb_u8(&b, q->actor);
    ra__wb_u8(&b, tell);
    ra__wb_str(&b, vis);
    ra__wb_u64(&b, q->pg);
    ra__wb_u32(&b, (uint32_t)q->bundle);
    ra__wb_res(&b, &q->x);
    ra__wb_str(&b, l != NULL && l->w != NULL ? l->w->ep : "");
    ra__wb_u8(&b, (uint8_t)(q->isolation |
                           (q->detached ? RA__ISO_DETACHED : 0)));
    ra__wb_u32(&b, q->near);   // the request's, echoed (its class)
    if (ra__wb_msg(&b, RA__T_LEASE_GRANT, &m) == 0 &&
        ra_send(ctx, q->owner, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// gpu_fits tells whether worker w may serve a lease on GPUs vis: a
// worker keeps the GPUs it was first given.
static bool
gpu_fits(const wk_t *w, const char *vis)
{
    return vis[0] == '\0' || w->bound[0] == '\0' ||
           strcmp(w->bound, vis) == 0;
}

// bind_worker binds the process of w, granted lease l, to the NUMA node
// of l's GPUs (its bundle's when it has one), or undoes an earlier
// binding when l has none (cfg.numa_bind, ra_init_opts_t.no_numa_bind).
// Shared actors never change it: they live beside the worker's lease.
static void
bind_worker(raylet_t *r, wk_t *w, const lease_t *l)
{
    int numa = -1;
    ra_gpu_info_t g;
    if (!r->cfg.numa_bind || r->cfg.topo == NULL) {
        return;
    }
    if (l->bundle != NULL) {
        numa = l->bundle->numa;
    } else if (l->ndevs > 0 &&
               ra_topo_gpu(r->cfg.topo, l->devs[0], &g) == 0) {
        numa = g.numa_node;
    }
    if (numa == w->numa) {
        return;
    }
    int rc = ra_topo_bind_pid(r->cfg.topo, (pid_t)w->ospid, numa);
    if (rc == 0) {
        ra_log_debug("raylet", "worker %" PRId64 " bound to NUMA node %d "
                     "(-1: all cores)", w->ospid, numa);
        w->numa = numa;
    } else if (rc != RA_EINVAL) {
        ra_log_warn("raylet", "cannot bind worker %" PRId64 " to NUMA node "
                    "%d: %s", w->ospid, numa, ra_strerror(rc));
    }
}

static wk_t *
pick_worker(raylet_t *r, const req_t *q, const char *vis)
{
    wk_t *best = NULL;
    for (wk_t *w = r->workers; w != NULL; w = w->next) {
        if (!w->registered || w->dedicated || w->stopping ||
            w->env != q->env || !gpu_fits(w, vis)) {
            continue;
        }
        // A worker leased for a task or an isolated actor of a
        // placement-group bundle is killed with its group: it hosts
        // nothing else.  Shared actors of a bundle live beside others
        // (the group's removal ends only them, see lease_free).
        bool shared = q->actor && q->isolation != RA_ISOLATION_PROCESS;
        if ((q->pg != 0 && !shared && w->actors != 0) ||
            (shared && w->in_bundle)) {
            continue;
        }
        if (!q->actor || q->isolation == RA_ISOLATION_PROCESS) {
            if (w->state != WK_IDLE || (q->actor && w->actors != 0)) {
                continue;
            }
            // Prefer a worker already on these GPUs, then one on none.
            if (vis[0] == '\0' || strcmp(w->bound, vis) == 0) {
                return w;
            }
            if (best == NULL) {
                best = w;
            }
        } else if (best == NULL || w->actors < best->actors) {
            best = w;
        }
    }
    return best;
}

// retire_misfit stops one idle worker that cannot serve env's leases on
// GPUs vis (another job's, or bound to other GPUs), so that a worker for
// them can start when the pool is full.
static void
retire_misfit(ra_ctx_t *ctx, raylet_t *r, uint32_t env, const char *vis)
{
    for (wk_t *w = r->workers; w != NULL; w = w->next) {
        if (w->registered && !w->stopping && w->state == WK_IDLE &&
            w->actors == 0 && (w->env != env || !gpu_fits(w, vis))) {
            ra_msg_t *m = NULL;
            uint8_t idle = RA__STOP_IDLE;
            if (ra_msg_new_bytes(&m, RA__T_STOP, &idle, 1) == 0 &&
                ra_send(ctx, w->host, &m) != 0) {
                ra_msg_unref(&m);
                continue;
            }
            ra_log_info("raylet", "retiring worker %" PRId64 " (job "
                        "environment %u, GPUs \"%s\") for a lease of job "
                        "environment %u on GPUs \"%s\"", w->ospid, w->env,
                        w->bound, env, vis);
            w->stopping = true;
            return;
        }
    }
}

// spill_target picks another node for a request this node cannot serve
// now (never: not ever): one that has the resources free now, the most
// CPUs first; for a request no node could serve now, one that has them
// at all.  The view is lowered by what is sent there, until the next
// heartbeat.  NULL when none, or the request must stay.
static ra__rnode_t *
spill_target(raylet_t *r, const req_t *q, bool never, uint32_t self)
{
    if (q->no_spill || r->nview == 0) {
        return NULL;
    }
    if (q->pg != 0) {
        // Work for a bundle goes where the bundle is, when it is not here.
        for (const ra__bundle_t *b = r->bundles; b != NULL; b = b->next) {
            if (b->pg == q->pg &&
                (q->bundle < 0 || b->index == (uint32_t)q->bundle)) {
                return NULL;
            }
        }
        for (unsigned i = 0; i < r->nview; i++) {
            ra__rnode_t *v = &r->view[i];
            for (uint32_t k = 0; v->node != self && k < v->nb; k++) {
                if (v->bpg[k] == q->pg &&
                    (q->bundle < 0 || v->bidx[k] == (uint32_t)q->bundle)) {
                    return v;
                }
            }
        }
        return NULL;
    }
    ra_resources_t need = q->x;
    need.cpus = (double)q->cpus / UNIT;
    need.gpus = (double)q->gpus / UNIT;
    ra__rnode_t *best = NULL, *any = NULL;
    for (unsigned i = 0; i < r->nview; i++) {
        ra__rnode_t *v = &r->view[i];
        if (v->node == self || !ra_resources_fit(&need, &v->total)) {
            continue;
        }
        if (any == NULL) {
            any = v;
        }
        if (ra_resources_fit(&need, &v->avail) &&
            (best == NULL || v->avail.cpus > best->avail.cpus)) {
            best = v;
        }
    }
    if (best != NULL) {
        (void)ra_resources_sub(&best->avail, &need);
        return best;
    }
    return never ? any : NULL;
}

// near_target is the node that holds q's large arguments (q->near), when
// that is another node with the resources free now (its view is lowered
// by q's need); NULL otherwise: then the request is served as any other.
static ra__rnode_t *
near_target(raylet_t *r, const req_t *q, uint32_t self)
{
    if (q->near == 0 || q->near == self || q->no_spill || q->pg != 0) {
        return NULL;
    }
    ra_resources_t need = q->x;
    need.cpus = (double)q->cpus / UNIT;
    need.gpus = (double)q->gpus / UNIT;
    for (unsigned i = 0; i < r->nview; i++) {
        ra__rnode_t *v = &r->view[i];
        if (v->node == q->near && ra_resources_fit(&need, &v->avail)) {
            (void)ra_resources_sub(&v->avail, &need);
            return v;
        }
    }
    return NULL;
}

// reply_spill tells the owner to ask the raylet of node v instead.
static void
reply_spill(ra_ctx_t *ctx, const req_t *q, const ra__rnode_t *v)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u64(&b, q->req);
    ra__wb_u32(&b, RA__LEASE_SPILL);
    ra__wb_u64(&b, 0);
    ra__wb_pid(&b, RA_PID_NIL);
    ra__wb_pid(&b, RA_PID_NIL);
    ra__wb_f64(&b, (double)q->cpus / UNIT);
    ra__wb_f64(&b, (double)q->gpus / UNIT);
    ra__wb_u8(&b, q->actor);
    ra__wb_u8(&b, 0);
    ra__wb_str(&b, "");
    ra__wb_u64(&b, q->pg);
    ra__wb_u32(&b, (uint32_t)q->bundle);
    ra__wb_res(&b, &q->x);
    ra__wb_str(&b, "");
    ra__wb_u8(&b, (uint8_t)(q->isolation |
                           (q->detached ? RA__ISO_DETACHED : 0)));
    ra__wb_pid(&b, v->raylet);
    ra__wb_str(&b, v->ep);
    ra__wb_u32(&b, q->near);
    if (ra__wb_msg(&b, RA__T_LEASE_GRANT, &m) == 0 &&
        ra_send(ctx, q->owner, &m) != 0) {
        ra_msg_unref(&m);
    }
}

static void
try_grant(ra_ctx_t *ctx, raylet_t *r)
{
    unsigned want_start = 0;
    uint32_t misfit_env = 0;
    char misfit[RA__VISIBLE_MAX] = "";
    for (ra__jenv_t *e = r->envs; e != NULL; e = e->next) {
        e->want = 0;
        e->no_host = false;
    }
    r->grant_soon = false;
    unsigned *devs = r->dev_scratch;
    for (req_t **pp = &r->reqs; *pp != NULL;) {
        req_t *q = *pp;
        unsigned ndevs = 0;
        char vis[RA__VISIBLE_MAX] = "";
        bool never = false;
        ra__bundle_t *bundle = NULL;
        ra__rpool_t *pool = ra__req_pool(r, q, &never, &bundle);
        ra__rnode_t *there = NULL;
        if (!never && (there = near_target(r, q, ra_self(ctx).node)) != NULL) {
            // Its large arguments are on that node, which has room.
            reply_spill(ctx, q, there);
        } else if (never) {
            if ((there = spill_target(r, q, true, ra_self(ctx).node)) !=
                NULL) {
                reply_spill(ctx, q, there);
            } else if (!q->no_spill && r->view_gen < q->view_gen + 2 &&
                       ((q->pg != 0 && r->nview > 0) ||
                        r->cfg.bind_ip != NULL)) {
                // Its bundle may be on a node the view does not show
                // yet (a group just made), or, on a cluster of several
                // nodes, a node that has just joined may offer what it
                // asks for: wait for two newer views (a heartbeat each,
                // HB_EVERY_MS) before refusing it.
                pp = &q->next;
                continue;
            } else {
                reply_grant(ctx, r, q, RA_EINFEASIBLE, NULL);
            }
        } else if (pool == NULL ||
                   !ra__rpool_take(r, pool, q->cpus, q->gpus, &q->x, devs,
                                  &ndevs)) {
            // Busy here (or its bundle is elsewhere): another node with
            // room now takes it.
            if ((there = spill_target(r, q, false, ra_self(ctx).node)) ==
                NULL) {
                pp = &q->next;
                continue;
            }
            reply_spill(ctx, q, there);
        } else {
            if (ndevs > 0) {
                ra__visible_of(r, devs, ndevs, vis, sizeof vis);
            }
            // Shared actors all fit in one worker: once none of a job's
            // can take one, none can in this pass, and one worker
            // started is enough for all of them.
            bool shared = q->actor && q->isolation != RA_ISOLATION_PROCESS;
            ra__jenv_t *e = shared ? env_find(r, q->env) : NULL;
            wk_t *w = e != NULL && e->no_host ? NULL
                                              : pick_worker(r, q, vis);
            lease_t *l = w != NULL ? calloc(1, sizeof *l) : NULL;
            unsigned *ld = l != NULL && ndevs > 0
                               ? calloc(ndevs, sizeof *ld) : NULL;
            if (l != NULL && (ndevs == 0 || ld != NULL) &&
                ra__hmap_put(&r->lease_ids,
                             (ra__hkey_t){r->next_lease + 1, 0}, l) != 0) {
                free(ld);
                ld = NULL;
                free(l);
                l = NULL;
                w = NULL;
            }
            if (l == NULL || (ndevs > 0 && ld == NULL)) {
                ra__rpool_give(pool, q->cpus, q->gpus, &q->x, devs, ndevs);
                free(l);
                bool first = true;
                if (e != NULL) {
                    first = !e->no_host;
                    e->no_host = w == NULL;
                } else {
                    e = env_find(r, q->env);
                }
                if (e != NULL && !e->gone && first) {
                    e->want++;
                    want_start++;
                    misfit_env = q->env;
                    snprintf(misfit, sizeof misfit, "%s", vis);
                }
                pp = &q->next;
                continue;
            }
            l->id = ++r->next_lease;
            l->w = w;
            l->cpus = q->cpus;
            l->gpus = q->gpus;
            l->owner = q->owner;
            l->actor = q->actor;
            l->detached = q->detached;
            w->detached = w->detached || q->detached;
            l->bundle = bundle;
            l->x = q->x;
            l->shared = q->actor && q->isolation != RA_ISOLATION_PROCESS;
            if (bundle != NULL && !l->shared) {
                w->in_bundle = true;
            }
            l->devs = ld;
            l->ndevs = ndevs;
            if (ndevs > 0) {
                memcpy(ld, devs, ndevs * sizeof *ld);
            }
            l->next = r->leases;
            l->prev = NULL;
            if (r->leases != NULL) {
                r->leases->prev = l;
            }
            r->leases = l;
            if (!q->actor) {
                w->state = WK_LEASED;
            } else if (q->isolation == RA_ISOLATION_PROCESS) {
                w->dedicated = true;
                w->actors++;
            } else {
                w->actors++;
            }
            w->idle_since = 0;
            if (!q->actor || q->isolation == RA_ISOLATION_PROCESS) {
                bind_worker(r, w, l);
            }
            reply_grant(ctx, r, q, 0, l);
        }
        *pp = q->next;
        r->nreqs--;
        free(q);
    }
    reqs_retail(r);
    bool short_of = false;
    for (ra__jenv_t *e = r->envs; e != NULL && want_start > 0;
         e = e->next) {
        while (e->want > e->starting && start_worker(ctx, r, e) == 0) {
        }
        short_of |= e->want > e->starting;
    }
    if (short_of && r->nworkers >= r->cfg.max_workers) {
        retire_misfit(ctx, r, misfit_env, misfit);
    }
}

void
ra__raylet_try_grant(ra_ctx_t *ctx, ra__raylet_t *r)
{
    try_grant(ctx, r);
}

// lease_pool is the pool a lease's resources return to.
static ra__rpool_t *
lease_pool(raylet_t *r, const lease_t *l)
{
    return l->bundle != NULL ? &l->bundle->pool : &r->node;
}

// end_instance tells the host of worker w that shared actor lease id
// ended, and to kill its instance if it still runs (kill_it).
static void
end_instance(ra_ctx_t *ctx, const wk_t *w, uint64_t id, bool kill_it)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    if (w->stopping || ra_pid_is_nil(w->host)) {
        return;
    }
    ra__wb_u64(&b, id);
    ra__wb_u8(&b, kill_it);
    if (ra__wb_msg(&b, RA__T_LEASE_END, &m) == 0 &&
        ra_send(ctx, w->host, &m) != 0) {
        ra_msg_unref(&m);
    }
}

static void
lease_free(ra_ctx_t *ctx, raylet_t *r, lease_t *l, bool kill_it)
{
    if (l->prev != NULL) {
        l->prev->next = l->next;
    } else {
        r->leases = l->next;
    }
    if (l->next != NULL) {
        l->next->prev = l->prev;
    }
    (void)ra__hmap_del(&r->lease_ids, (ra__hkey_t){l->id, 0});
    // A blocked lease's CPUs were given back already.
    ra__rpool_give(lease_pool(r, l), l->blocked ? 0 : l->cpus, l->gpus, &l->x,
                  l->devs, l->ndevs);
    free(l->devs);
    wk_t *w = l->w;
    if (w != NULL && l->shared) {
        // The instance ends, not the process: other actors share it.
        end_instance(ctx, w, l->id, kill_it);
        kill_it = false;
    }
    if (w != NULL) {
        if (l->bundle != NULL && !l->shared) {
            w->in_bundle = false;
        }
        if (!l->actor) {
            w->state = WK_IDLE;
        } else if (w->actors > 0 && --w->actors == 0 && w->dedicated) {
            // A process of its own (RA_ISOLATION_PROCESS) ends with its
            // actor, as Ray's: what the actor left in its address space
            // (state, borrowed references) goes with it, and no other
            // work runs where it ran.
            kill_it = true;
        }
        if (w->state == WK_IDLE && w->actors == 0) {
            w->idle_since = ra__mono_ms();
        }
        if (kill_it && w->ospid > 0) {
            ra_log_info("raylet", "killing worker %" PRId64, w->ospid);
            kill((pid_t)w->ospid, SIGKILL);
            w->stopping = true;   // never leased again; its exit removes it
        }
    }
    free(l);
}

static void tell_lost(ra_ctx_t *ctx, const lease_t *l, const char *how);

void
ra__raylet_drop(ra_ctx_t *ctx, ra__raylet_t *r, ra__rlease_t *l,
                const char *why)
{
    tell_lost(ctx, l, why);
    lease_free(ctx, r, l, true);
}

// grant_soon runs try_grant once the messages already in the mailbox are
// handled: a burst of lease requests that wait (no worker yet, no room)
// then costs one pass over the queue, not one per request.
static void
grant_soon(ra_ctx_t *ctx, raylet_t *r)
{
    if (r->grant_soon) {
        return;
    }
    if (tick(ctx, r, RAYLET_GRANT, 0) == 0) {
        r->grant_soon = true;
        return;
    }
    try_grant(ctx, r);
}

static void
on_lease_req(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    ra__rbuf_t b;
    ra__rb_init(&b, m);
    req_t *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return;
    }
    q->req = ra__rb_u64(&b);
    double cpus = ra__rb_f64(&b);
    double gpus = ra__rb_f64(&b);
    q->actor = ra__rb_u8(&b) != 0;
    q->isolation = ra__rb_u8(&b);
    q->detached = q->actor && (q->isolation & RA__ISO_DETACHED) != 0;
    q->isolation &= ~RA__ISO_DETACHED;
    q->pg = ra__rb_u64(&b);
    q->bundle = (int32_t)ra__rb_u32(&b);
    ra__rb_res(&b, &q->x);
    q->env = ra__rb_u32(&b);
    q->no_spill = ra__rb_u8(&b) != 0;
    if (!b.bad && b.off < b.len) {
        q->near = ra__rb_u32(&b);   // absent from older owners
    }
    q->x.cpus = q->x.gpus = 0;
    q->owner = ra_sender(ctx);
    if (b.bad || !(cpus >= 0 && cpus < 1e9) || !(gpus >= 0 && gpus < 1e9) ||
        q->bundle < -1) {
        ra_log_warn("raylet", "malformed lease request dropped");
        free(q);
        return;
    }
    q->cpus = (int64_t)(cpus * UNIT + 0.5);
    q->gpus = (int64_t)(gpus * UNIT + 0.5);
    q->view_gen = r->view_gen;
    ra__jenv_t *e = env_find(r, q->env);
    if (e == NULL && q->env != 0 &&
        q->env >> 20 != (r->incarnation & 0xfff)) {
        // An environment of an earlier incarnation (this raylet was
        // restarted in place): its core registers the job again and asks
        // again (core.c, raylet_back).
        reply_grant(ctx, r, q, RA_EAGAIN, NULL);
        free(q);
        return;
    }
    if (e == NULL || e->gone) {
        ra_log_warn("raylet", "lease request for job environment %u, "
                    "which %s: refused", q->env,
                    e == NULL ? "is unknown" : "has ended");
        reply_grant(ctx, r, q, RA_ENOENT, NULL);
        free(q);
        return;
    }
    *r->reqs_tail = q;
    r->reqs_tail = &q->next;
    r->nreqs++;
    if (r->nreqs == 1) {
        try_grant(ctx, r);
    } else {
        grant_soon(ctx, r);
    }
}

static void
on_lease_return(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    ra__rbuf_t b;
    ra__rb_init(&b, m);
    uint64_t id = ra__rb_u64(&b);
    bool kill = ra__rb_u8(&b) != 0;
    if (b.bad) {
        return;
    }
    lease_t *l = ra__hmap_get(&r->lease_ids, (ra__hkey_t){id, 0});
    if (l == NULL) {
        return;
    }
    if (!ra_pid_eq(l->owner, ra_sender(ctx))) {
        ra_log_warn("raylet", "lease %" PRIu64 " returned by another "
                    "process than its owner: ignored", id);
        return;
    }
    lease_free(ctx, r, l, kill);
    if (r->nreqs > 0) {
        grant_soon(ctx, r);
    }
}

static void
on_register(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    ra__rbuf_t b;
    ra__rb_init(&b, m);
    int64_t ospid = ra__rb_u32(&b);
    ra_pid_t exec = ra__rb_pid(&b);
    ra_pid_t host = ra__rb_pid(&b);
    ra_pid_t core = ra__rb_pid(&b);
    char ep[sizeof ((wk_t *)0)->ep];
    ra__rb_str(&b, ep, sizeof ep);
    if (b.bad) {
        ra_log_warn("raylet", "malformed worker registration dropped");
        return;
    }
    wk_t *w = wk_find(r, ospid);
    if (w == NULL) {
        ra_log_warn("raylet", "registration from unknown process %" PRId64,
                    ospid);
        return;
    }
    if (!w->registered) {
        r->starting--;
        ra__jenv_t *env = env_find(r, w->env);
        if (env != NULL && env->starting > 0) {
            env->starting--;
        }
    }
    w->registered = true;
    w->state = WK_IDLE;
    w->idle_since = ra__mono_ms();
    w->exec = exec;
    w->host = host;
    w->core = core;
    snprintf(w->ep, sizeof w->ep, "%s", ep);
    try_grant(ctx, r);
}

// on_blocked: a worker's task starts or stops waiting for other tasks.
// While it waits its lease's CPUs are available to others (GPUs are
// kept), as Ray does, so that tasks waiting on tasks cannot take every CPU
// and deadlock.  Resuming takes them back even if that overcommits for a
// while; nothing new is granted until they are free again.
static void
on_blocked(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    ra__rbuf_t b;
    ra__rb_init(&b, m);
    int64_t ospid = ra__rb_u32(&b);
    bool on = ra__rb_u8(&b) != 0;
    wk_t *w = b.bad ? NULL : wk_find(r, ospid);
    if (w == NULL) {
        return;
    }
    for (lease_t *l = r->leases; l != NULL; l = l->next) {
        if (l->w != w || l->actor || l->blocked == on) {
            continue;
        }
        l->blocked = on;
        lease_pool(r, l)->cpus_avail += on ? l->cpus : -l->cpus;
        if (on) {
            try_grant(ctx, r);
        }
        return;
    }
}

// describe_exit says how a worker process ended, for error values.
static void
describe_exit(ra_reason_t why, char *buf, size_t cap)
{
    if (why >= RA_OS_SIGNAL(0) && why < RA_OS_SIGNAL(256)) {
        int sig = (int)(why - RA_OS_SIGNAL(0));
        snprintf(buf, cap, "killed by signal %d (%s)", sig, strsignal(sig));
    } else if (why >= RA_OS_EXIT(0) && why < RA_OS_EXIT(256)) {
        snprintf(buf, cap, "exited with status %d",
                 (int)(why - RA_OS_EXIT(0)));
    } else {
        char rs[64];
        snprintf(buf, cap, "ended (%s)", ra_reason_str(why, rs, sizeof rs));
    }
}

// tell_lost tells a lease's owner that its worker died, and how, before
// the link to the worker is cut: the owner's error values then name the
// signal, not only the lost connection.
static void
tell_lost(ra_ctx_t *ctx, const lease_t *l, const char *how)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    if (ra_pid_is_nil(l->owner)) {
        return;     // a detached actor's, whose owner is gone
    }
    ra__wb_u64(&b, l->id);
    ra__wb_str(&b, how);
    if (ra__wb_msg(&b, RA__T_LEASE_LOST, &m) == 0 &&
        ra_send(ctx, l->owner, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// objects_gone deletes from this node's store the objects that process
// proc of this node owned (their ids start with its node and OS pid): a
// worker or driver that died without releasing them (one that shuts
// down deletes its own).  Nobody can ask their owner for them any more.
static void
objects_gone(ra_ctx_t *ctx, raylet_t *r, uint32_t proc, const char *who)
{
    if (r->cfg.store_handle == NULL || proc == ra_self(ctx).proc) {
        return;
    }
    uint8_t prefix[16];
    unsigned n = 0;
    ra__oid_make(prefix, ra_self(ctx).node, proc, 0);
    if (ra_objstore_delete_prefix(r->cfg.store_handle, prefix, 8, &n) == 0 &&
        n > 0) {
        ra_log_info("raylet", "%s %u is gone: %u %s it owned deleted "
                    "from the store", who, proc, n, n == 1 ? "object"
                                                           : "objects");
    }
}

// worker_gone handles a worker process that ended: its leases return,
// and the link to it is cut at once so that owners see DOWNs now, not
// after missed heartbeats.
static void
worker_gone(ra_ctx_t *ctx, raylet_t *r, int64_t ospid, ra_reason_t why)
{
    wk_t *w = wk_find(r, ospid);
    if (w == NULL) {
        return;
    }
    char how[128];
    describe_exit(why, how, sizeof how);
    ra_log_info("raylet", "worker %" PRId64 " %s", ospid, how);
    for (lease_t *l = r->leases, *n; l != NULL; l = n) {
        n = l->next;
        if (l->w == w || l->owner.proc == (uint32_t)ospid) {
            if (l->w == w) {
                if (l->owner.proc != (uint32_t)ospid) {
                    tell_lost(ctx, l, how);
                }
                l->w = NULL;
            }
            lease_free(ctx, r, l, false);
        }
    }
    for (req_t **pp = &r->reqs; *pp != NULL;) {
        req_t *q = *pp;
        if (q->owner.proc == (uint32_t)ospid) {
            *pp = q->next;
            r->nreqs--;
            free(q);
        } else {
            pp = &q->next;
        }
    }
    reqs_retail(r);
    ra__jenv_t *env = env_find(r, w->env);
    if (!w->registered) {
        r->starting--;
        if (env != NULL && env->starting > 0) {
            env->starting--;
        }
    }
    for (wk_t **p = &r->workers; *p != NULL; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    r->nworkers--;
    free(w);
    objects_gone(ctx, r, (uint32_t)ospid, "worker");
    if (r->cfg.link != NULL) {
        (void)ra_link_disconnect(r->cfg.link, ra_self(ctx).node,
                                 (uint32_t)ospid);
    }
    // Keep the job's base pool.
    while (env != NULL && !env->gone && env_live(r, env->id) < env->prestart &&
           start_worker(ctx, r, env) == 0) {
    }
    try_grant(ctx, r);
}

static void
on_sup_event(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    const bson_t *doc = ra_msg_bson(m);
    bson_iter_t it;
    const char *ev = NULL;
    int64_t ospid = 0, reason = 0;
    // (Only this incarnation's worker supervisor: the one of an ended
    // incarnation reports the workers it stops to the same pid.)
    if (!ra_pid_eq(ra_sender(ctx), r->sup) || doc == NULL ||
        !bson_iter_init(&it, doc)) {
        return;
    }
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "event") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
            ev = bson_iter_utf8(&it, NULL);
        } else if (strcmp(k, "ospid") == 0 && BSON_ITER_HOLDS_INT64(&it)) {
            ospid = bson_iter_int64(&it);
        } else if (strcmp(k, "reason") == 0 && BSON_ITER_HOLDS_INT64(&it)) {
            reason = bson_iter_int64(&it);
        }
    }
    if (ev == NULL || ospid <= 0) {
        return;
    }
    if (strcmp(ev, "started") == 0) {
        wk_t *w = wk_find(r, ospid);
        if (w == NULL && (w = wk_add(r, ospid)) != NULL) {
            w->env = UINT32_MAX;    // not one of ours: never leased
        }
    } else if (strcmp(ev, "exited") == 0) {
        worker_gone(ctx, r, ospid, reason);
    }
}

// on_workers answers RA__INFO_WORKERS: {u32 n, n x {u32 OS pid, u8
// state, u8 registered, u8 dedicated, u32 actors, u64 driver OS pid, str
// GPUs bound, i64 idle ms (-1: busy)}}.
static void
on_workers(ra_ctx_t *ctx, raylet_t *r)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    int64_t now = ra__mono_ms();
    ra__wb_u32(&b, r->nworkers);
    unsigned k = 0;
    for (wk_t *w = r->workers; w != NULL && k < r->nworkers; w = w->next) {
        ra__jenv_t *e = env_find(r, w->env);
        ra__wb_u32(&b, (uint32_t)w->ospid);
        ra__wb_u8(&b, w->stopping ? 3 : (uint8_t)w->state);
        ra__wb_u8(&b, w->registered);
        ra__wb_u8(&b, w->dedicated);
        ra__wb_u32(&b, w->actors);
        ra__wb_u64(&b, e != NULL && e->ospid > 0 ? (uint64_t)e->ospid
                                                 : (uint64_t)getpid());
        ra__wb_str(&b, w->bound);
        ra__wb_u64(&b, (uint64_t)(w->idle_since != 0 ? now - w->idle_since
                                                     : -1));
        k++;
    }
    if (ra__wb_msg(&b, RA__T_RAYLET_INFO, &m) == 0 &&
        ra_reply(ctx, &m) != 0) {
        ra_msg_unref(&m);
    }
}

static void
on_info(ra_ctx_t *ctx, raylet_t *r)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_f64(&b, (double)r->node.cpus_total / UNIT);
    ra__wb_f64(&b, (double)r->node.cpus_avail / UNIT);
    ra__wb_f64(&b, (double)r->node.gpus_total / UNIT);
    ra__wb_f64(&b, (double)r->node.gpus_avail / UNIT);
    ra__wb_u32(&b, r->nworkers);
    ra__wb_u32(&b, r->nreqs);
    unsigned nl = 0;
    for (lease_t *l = r->leases; l != NULL; l = l->next) {
        nl++;
    }
    ra__wb_u32(&b, nl);
    ra__wb_pid(&b, r->cfg.objmgr);
    // The object store: capacity, used, objects, spilled, spilled bytes.
    ra_objstore_stats_t st = {0};
    if (r->cfg.store_handle != NULL) {
        (void)ra_objstore_stats(r->cfg.store_handle, &st);
    }
    ra__wb_u64(&b, st.capacity);
    ra__wb_u64(&b, st.used);
    ra__wb_u64(&b, st.objects);
    ra__wb_u64(&b, st.spilled);
    ra__wb_u64(&b, st.spilled_bytes);
    if (ra__wb_msg(&b, RA__T_RAYLET_INFO, &m) == 0 &&
        ra_reply(ctx, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// reap retires workers above the base pool size that have been idle
// for IDLE_RETIRE_MS: they are told to exit, and their exit event removes
// them.  Only when no request waits, so a burst keeps its workers.
static void
reap(ra_ctx_t *ctx, raylet_t *r)
{
    int64_t now = ra__mono_ms();
    unsigned live = 0;
    for (wk_t *w = r->workers; w != NULL; w = w->next) {
        live += !w->stopping;
    }
    for (wk_t *w = r->workers; w != NULL && r->nreqs == 0; w = w->next) {
        if (live <= r->cfg.workers) {
            break;
        }
        if (w->registered && !w->stopping && w->state == WK_IDLE &&
            w->actors == 0 && w->idle_since != 0 &&
            now - w->idle_since >= IDLE_RETIRE_MS) {
            ra_msg_t *m = NULL;
            uint8_t idle = RA__STOP_IDLE;
            if (ra_msg_new_bytes(&m, RA__T_STOP, &idle, 1) == 0 &&
                ra_send(ctx, w->host, &m) != 0) {
                ra_msg_unref(&m);
                continue;
            }
            w->stopping = true;
            live--;
        }
    }
    orphans_gone(ctx, r);
    (void)tick(ctx, r, RAYLET_REAP, REAP_EVERY_MS);
}

// ---- jobs: the drivers of a node daemon ----

// owner_gone ends what process (node, proc) held here: its leases (their
// workers are killed: they may be running its tasks) and its requests.
// orphan tells worker w that the owner of its actors is gone.
static void
orphan(ra_ctx_t *ctx, wk_t *w)
{
    ra_msg_t *m = NULL;
    if (ra_pid_is_nil(w->host) ||
        ra_msg_new_bytes(&m, RA__T_ORPHANED, NULL, 0) != 0) {
        return;
    }
    if (ra_send(ctx, w->host, &m) != 0) {
        ra_msg_unref(&m);
    }
}

static void
owner_gone(ra_ctx_t *ctx, raylet_t *r, uint32_t node, uint32_t proc)
{
    bool any = false;
    for (lease_t *l = r->leases, *n; l != NULL; l = n) {
        n = l->next;
        if (l->owner.node != node || l->owner.proc != proc) {
            continue;
        }
        any = true;
        if (l->detached && l->w != NULL) {
            // A detached actor lives on, with its resources, until its
            // worker exits: told that nobody owns it, the worker exits
            // once its actor has ended (killed by whoever looked it up).
            l->owner = RA_PID_NIL;
            orphan(ctx, l->w);
            continue;
        }
        lease_free(ctx, r, l, true);
    }
    for (req_t **pp = &r->reqs; *pp != NULL;) {
        req_t *q = *pp;
        if (q->owner.node == node && q->owner.proc == proc) {
            *pp = q->next;
            r->nreqs--;
            free(q);
            any = true;
        } else {
            pp = &q->next;
        }
    }
    reqs_retail(r);
    if (any) {
        ra_log_info("raylet", "process %u.%u is gone: its leases and "
                    "requests ended", node, proc);
    }
}

// env_end ends a job: its workers are killed (a worker of a job serves
// that job only) and its environment is forgotten.
static void
env_end(ra_ctx_t *ctx, raylet_t *r, ra__jenv_t *e, const char *why)
{
    if (e->gone) {
        return;
    }
    e->gone = true;
    unsigned killed = 0;
    unsigned kept = 0;
    for (wk_t *w = r->workers; w != NULL; w = w->next) {
        if (w->env == e->id && w->ospid > 0 && w->detached) {
            kept++;     // a detached actor's: it outlives the job
        } else if (w->env == e->id && w->ospid > 0) {
            kill((pid_t)w->ospid, SIGKILL);
            w->stopping = true;
            killed++;
        }
    }
    if (kept > 0) {
        ra_log_info("raylet", "job environment %u: %u workers of detached "
                    "actors go on", e->id, kept);
    }
    ra_log_info("raylet", "job environment %u (driver process %" PRId64
                ") ended: %s; %u workers stopped", e->id, e->ospid, why,
                killed);
    ra__free_strv(e->argv);
    ra__free_strv(e->envp);
    e->argv = e->envp = NULL;
    if (!ra_pid_is_nil(e->driver)) {
        owner_gone(ctx, r, e->driver.node, e->driver.proc);
    }
}

// rb_strv reads {u32 n, n x str} into a NULL-terminated vector (at most
// max entries, each shorter than 64 KiB).  NULL when malformed or out of
// memory (*bad tells which).
static char **
rb_strv(ra__rbuf_t *b, uint32_t max, bool *bad)
{
    uint32_t n = ra__rb_u32(b);
    if (b->bad || n > max) {
        *bad = true;
        return NULL;
    }
    char **v = calloc((size_t)n + 1, sizeof *v);
    for (uint32_t i = 0; v != NULL && i < n; i++) {
        size_t len = 0;
        const char *p = ra__rb_bytes(b, &len);
        if (b->bad || len >= 65536 || memchr(p, '\0', len) != NULL) {
            *bad = true;
            ra__free_strv(v);
            return NULL;
        }
        if ((v[i] = strndup(p, len)) == NULL) {
            ra__free_strv(v);
            return NULL;
        }
    }
    return v;
}

static void
job_reply(ra_ctx_t *ctx, int status, uint32_t id)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u32(&b, (uint32_t)status);
    ra__wb_u32(&b, id);
    if (ra__wb_msg(&b, RA__T_JOB, &m) == 0 && ra_reply(ctx, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// on_job: a driver registers its job (how to start its workers), or says
// it ends.  See RA__JOB_* in cluster_impl.h.
static void
on_job(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    ra__rbuf_t b;
    ra__rb_init(&b, m);
    uint8_t op = ra__rb_u8(&b);
    ra_pid_t from = ra_sender(ctx);
    if (op == RA__JOB_END) {
        uint32_t id = ra__rb_u32(&b);
        ra__jenv_t *e = b.bad ? NULL : env_find(r, id);
        // Only the driver's process may end its job.
        bool mine = e != NULL && e->driver.node == from.node &&
                    e->driver.proc == from.proc;
        if (mine) {
            env_end(ctx, r, e, "its driver disconnected");
        }
        job_reply(ctx, mine ? 0 : e != NULL ? RA_EACCES : RA_ENOENT, id);
        return;
    }
    if (op != RA__JOB_REGISTER) {
        ra_log_warn("raylet", "job message with unknown operation %u "
                    "dropped", op);
        job_reply(ctx, RA_EBADMSG, 0);
        return;
    }
    bool bad = false;
    ra_pid_t driver = ra__rb_pid(&b);
    int64_t ospid = (int64_t)ra__rb_u64(&b);
    char **argv = rb_strv(&b, 4096, &bad);
    char **env = argv != NULL ? rb_strv(&b, 65536, &bad) : NULL;
    char cwd[4096];
    ra__rb_str(&b, cwd, sizeof cwd);
    uint32_t prestart = ra__rb_u32(&b);
    ra__jenv_t *e = NULL;
    int rc = 0;
    if (bad || b.bad || (argv != NULL && (argv[0] == NULL ||
                                          argv[0][0] != '/')) ||
        ra_pid_is_nil(driver) || driver.node != from.node ||
        driver.proc != from.proc) {
        rc = RA_EBADMSG;  // the executable must be an absolute path
    } else if (argv == NULL || (e = calloc(1, sizeof *e)) == NULL ||
               (e->envp = make_env(r, ra_self(ctx), env, r->next_env,
                                   cwd, driver)) == NULL) {
        rc = RA_ENOMEM;
    }
    ra__free_strv(env);
    if (rc != 0) {
        if (rc == RA_EBADMSG) {
            ra_log_warn("raylet", "malformed job registration from %u.%u "
                        "refused", from.node, from.proc);
        }
        ra__free_strv(argv);
        free(e);
        job_reply(ctx, rc, 0);
        return;
    }
    e->id = r->next_env++;
    e->argv = argv;
    e->driver = driver;
    e->ospid = ospid;
    e->prestart = prestart < r->cfg.workers ? prestart : r->cfg.workers;
    e->next = r->envs;
    r->envs = e;
    ra_log_info("raylet", "job environment %u: driver process %" PRId64
                " (%s), %u workers at once", e->id, ospid, argv[0],
                e->prestart);
    job_reply(ctx, 0, e->id);
    for (unsigned i = 0; i < e->prestart; i++) {
        if (start_worker(ctx, r, e) != 0) {
            break;
        }
    }
}

// on_node_event: a peer process was lost.  A driver's loss ends its job.
static void
on_node_event(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    const bson_t *doc = ra_msg_bson(m);
    bson_iter_t it;
    int64_t node = -1, proc = -1;
    if (doc == NULL || !bson_iter_init(&it, doc)) {
        return;
    }
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "node") == 0 &&
            BSON_ITER_HOLDS_INT64(&it)) {
            node = bson_iter_int64(&it);
        } else if (strcmp(bson_iter_key(&it), "proc") == 0 &&
                   BSON_ITER_HOLDS_INT64(&it)) {
            proc = bson_iter_int64(&it);
        }
    }
    if (node < 0 || proc < 0) {
        return;
    }
    bool driver = false;
    for (ra__jenv_t *e = r->envs; e != NULL; e = e->next) {
        if (e->driver.node == (uint32_t)node &&
            e->driver.proc == (uint32_t)proc) {
            driver = true;
            if (!e->gone) {
                env_end(ctx, r, e, "its driver was lost");
            }
        }
    }
    owner_gone(ctx, r, (uint32_t)node, (uint32_t)proc);
    if (driver && (uint32_t)node == ra_self(ctx).node &&
        !ra__proc_alive((int)proc)) {
        // A driver of this node that died without letting go (a worker's
        // objects go when its supervisor reaps it, worker_gone).
        objects_gone(ctx, r, (uint32_t)proc, "process");
    }
    try_grant(ctx, r);
}

// ---- several nodes: heartbeats to the GCS, the view of the others ----

static void send_node_put(ra_ctx_t *ctx, raylet_t *r);

static void
send_hb(ra_ctx_t *ctx, raylet_t *r)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    // A GCS that has not answered for a second may not know this node (a
    // registration lost with a connection): register again.
    if (r->view_gen != r->hb_gen) {
        r->hb_gen = r->view_gen;
        r->hb_silent = 0;
    } else if (++r->hb_silent >= 5 && !r->finder_on) {
        r->hb_silent = 0;
        send_node_put(ctx, r);
    }
    ra__wb_u8(&b, RA__GCS_NODE_HB);
    ra__wb_u32(&b, ra_self(ctx).node);
    ra__wb_f64(&b, (double)r->node.cpus_avail / UNIT);
    ra__wb_f64(&b, (double)r->node.gpus_avail / UNIT);
    ra__wb_res(&b, &r->node.xavail);
    // (Nothing is sent to a GCS known lost: its queue would dial it.)
    if (r->finder_on) {
        ra__wb_free(&b);
    } else if (ra__wb_msg(&b, RA__T_GCS, &m) == 0 &&
               ra_send(ctx, r->cfg.gcs, &m) != 0) {
        ra_msg_unref(&m);
    }
    (void)tick(ctx, r, RAYLET_HB, HB_EVERY_MS);
}

// on_nodes takes the GCS's view of the live nodes (what they have free,
// where their raylets listen) for spill_target.
static void
view_free(ra__rnode_t *v, unsigned n)
{
    for (unsigned i = 0; v != NULL && i < n; i++) {
        free(v[i].bpg);
        free(v[i].bidx);
    }
    free(v);
}

static void
on_nodes(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    if (!ra_pid_eq(ra_sender(ctx), r->cfg.gcs)) {
        return;
    }
    ra__rbuf_t b;
    ra__rb_init(&b, m);
    uint32_t n = ra__rb_u32(&b);
    if (b.bad || n > 100000) {
        return;
    }
    ra__rnode_t *v = calloc(n + 1, sizeof *v);
    if (v == NULL) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        v[i].node = ra__rb_u32(&b);
        v[i].raylet = ra__rb_pid(&b);
        ra__rb_str(&b, v[i].ep, sizeof v[i].ep);
        ra__rb_res(&b, &v[i].total);
        double c = ra__rb_f64(&b), g = ra__rb_f64(&b);
        ra__rb_res(&b, &v[i].avail);
        v[i].avail.cpus = c;
        v[i].avail.gpus = g;
        uint32_t nb = ra__rb_u32(&b);
        if (b.bad || nb > 1000000) {
            b.bad = true;
            break;
        }
        v[i].bpg = calloc(nb + 1, sizeof *v[i].bpg);
        v[i].bidx = calloc(nb + 1, sizeof *v[i].bidx);
        if (v[i].bpg == NULL || v[i].bidx == NULL) {
            b.bad = true;
            break;
        }
        v[i].nb = nb;
        for (uint32_t k = 0; k < nb; k++) {
            v[i].bpg[k] = ra__rb_u64(&b);
            v[i].bidx[k] = ra__rb_u32(&b);
        }
    }
    if (b.bad) {
        view_free(v, n);
        return;
    }
    view_free(r->view, r->nview);
    r->view = v;
    r->nview = n;
    r->view_gen++;
    if (r->nreqs > 0) {
        try_grant(ctx, r);
    }
}

// send_node_put registers this node with the GCS (again after a new head
// came up): from the raylet itself, so that the GCS can check who
// registers.
static void
send_node_put(ra_ctx_t *ctx, raylet_t *r)
{
    ra__wbuf_t nb = {0};
    ra_msg_t *nm = NULL;
    ra__wb_u8(&nb, RA__GCS_NODE_PUT);
    ra__wb_u32(&nb, ra_self(ctx).node);
    ra__wb_pid(&nb, ra_self(ctx));
    ra__wb_f64(&nb, (double)r->node.cpus_total / UNIT);
    ra__wb_f64(&nb, (double)r->node.gpus_total / UNIT);
    ra__wb_res(&nb, &r->node.xtotal);
    char summary[256] = "";
    bson_t topo = BSON_INITIALIZER;
    if (r->cfg.topo != NULL) {
        ra_topo_summary(r->cfg.topo, summary, sizeof summary);
        if (ra_topo_append_bson(r->cfg.topo, &topo, "topology") != 0) {
            bson_reinit(&topo);
        }
    }
    ra__wb_str(&nb, summary);
    ra__wb_bytes(&nb, bson_get_data(&topo), topo.len);
    bson_destroy(&topo);
    // Where other nodes' processes reach this raylet ("" on one node).
    ra__wb_str(&nb, r->cfg.bind_ip != NULL ? r->cfg.endpoint : "");
    // The bundles it holds, so that a GCS started again (a new head)
    // finds the groups of the GCS before it where they are.
    uint32_t nbund = 0;
    for (ra__bundle_t *b = r->bundles; b != NULL; b = b->next) {
        nbund++;
    }
    ra__wb_u32(&nb, nbund);
    for (ra__bundle_t *b = r->bundles; b != NULL; b = b->next) {
        ra__wb_u64(&nb, b->pg);
        ra__wb_u32(&nb, b->index);
        ra__wb_u64(&nb, b->attempt);
        ra__wb_u8(&nb, b->committed);
    }
    if (ra__wb_msg(&nb, RA__T_GCS, &nm) == 0 &&
        ra_send(ctx, r->cfg.gcs, &nm) != 0) {
        ra_msg_unref(&nm);
    }
}

// ---- a lost GCS: find the head started again ----

typedef struct finder_arg {
    raylet_t *r;
    ra_runtime_t *rt;
    ra_pid_t raylet, old;
} finder_arg_t;

static void *
finder_main(void *p)
{
    finder_arg_t a = *(finder_arg_t *)p;
    free(p);
    raylet_t *r = a.r;
    while (!atomic_load(&r->finder_stop)) {
        uint32_t node = 0, proc = 0;
        // Short tries, each a fresh dial: a head that comes up is found
        // within about a quarter of a second, not after a dial's backoff.
        // The same GCS answering again means this node was cut off
        // from it (on_gcs_back); another one, that the head restarted.
        if (ra_link_connect(r->cfg.link, r->cfg.gcs_ep, 200, &node, &proc) ==
            0) {
            ra__wbuf_t b = {0};
            ra_msg_t *m = NULL;
            ra__wb_pid(&b, (ra_pid_t){node, proc, RA__GCS_LOCAL_ID, 0});
            if (ra__wb_msg(&b, RA__T_GCS_BACK, &m) == 0 &&
                ra_runtime_send(a.rt, a.raylet, &m) != 0) {
                ra_msg_unref(&m);
            }
            return NULL;
        }
        struct timespec ts = {0, 50 * 1000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void
finder_join(raylet_t *r)
{
    if (r->finder_on) {
        atomic_store(&r->finder_stop, true);
        pthread_join(r->finder, NULL);
        r->finder_on = false;
    }
}

// gcs_lost starts the finder when the GCS (another node's) was lost.
static bool
gcs_lost(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    uint64_t mref;
    ra_pid_t pid;
    ra_reason_t why;
    if (r->gcs_mref == 0 || ra_msg_kind(m) != RA_MSG_DOWN ||
        ra_msg_down_info(m, &mref, &pid, &why) != 0 || mref != r->gcs_mref) {
        return false;
    }
    r->gcs_mref = 0;
    ra_log_warn("raylet", "the GCS %u.%u was lost: work here goes on; "
                "waiting for a head at %s", r->cfg.gcs.node, r->cfg.gcs.proc,
                r->cfg.gcs_ep);
    // Give its peer up now: frames queued for it would make the link dial
    // it again, and a new head at that address would answer.
    (void)ra_link_disconnect(r->cfg.link, r->cfg.gcs.node, r->cfg.gcs.proc);
    finder_join(r);
    finder_arg_t *a = malloc(sizeof *a);
    if (a == NULL) {
        return true;
    }
    *a = (finder_arg_t){r, ra_ctx_runtime(ctx), ra_self(ctx), r->cfg.gcs};
    atomic_store(&r->finder_stop, false);
    if (pthread_create(&r->finder, NULL, finder_main, a) != 0) {
        free(a);
        return true;
    }
    r->finder_on = true;
    return true;
}

// on_gcs_back: a head answers at the GCS's endpoint again: register with
// its GCS and watch it.
static void
on_gcs_back(ra_ctx_t *ctx, raylet_t *r, ra_msg_t *m)
{
    ra__rbuf_t b;
    ra__rb_init(&b, m);
    ra_pid_t gcs = ra__rb_pid(&b);
    if (b.bad || !ra_pid_is_nil(ra_sender(ctx)) || !r->finder_on) {
        return;
    }
    finder_join(r);
    if (gcs.node == r->cfg.gcs.node && gcs.proc == r->cfg.gcs.proc) {
        // The GCS we lost answers again: this node was cut off from it
        // for longer than the link's loss window, so the GCS took it for
        // dead and its work was moved elsewhere (the owners retried its
        // tasks and restarted its actors).  Like a Ray raylet marked
        // dead, it does not come back as it is: its workers would be
        // stale twins.  A node daemon stops (its workers with it); start
        // it again to rejoin.
        ra_log_err("raylet", "this node was cut off from the GCS %u.%u "
                   "long enough to be taken for dead, and its work was "
                   "moved to other nodes; %s", gcs.node, gcs.proc,
                   r->cfg.daemon ? "the node daemon stops now: start it "
                   "again (rayo start) to rejoin the cluster"
                   : "this embedded node stays out of the cluster: call "
                   "ra_shutdown and ra_init again to rejoin");
        if (r->cfg.daemon) {
            (void)kill(getpid(), SIGTERM);
        }
        return;
    }
    // The old GCS's peer is given up: what was queued for it goes, and
    // its dialling (which the new head would answer) stops.
    (void)ra_link_disconnect(r->cfg.link, r->cfg.gcs.node, r->cfg.gcs.proc);
    r->cfg.gcs = gcs;
    ra_log_info("raylet", "registering again with the GCS %u.%u", gcs.node,
                gcs.proc);
    send_node_put(ctx, r);
    if (ra_link_monitor_node(ctx, gcs.node, gcs.proc, &r->gcs_mref) != 0) {
        r->gcs_mref = 0;
    }
}

// ---- the actor ----

static int
boot(ra_ctx_t *ctx, raylet_t *r)
{
    if (r->booted) {
        return 0;
    }
    r->booted = true;
    // Lease ids name their node, so that an owner holding leases of
    // several nodes never sees two alike, and the incarnation (bits 24 to
    // 31), so that a lease of an ended one never names a new one; likewise
    // job environments.
    r->next_lease = (uint64_t)ra_self(ctx).node << 32 |
                    (uint64_t)(r->incarnation & 0xff) << 24;
    r->next_env = (r->incarnation & 0xfff) << 20 | 1;
    if (r->incarnation > 0) {
        ra_log_warn("raylet", "the raylet (actor %u.%u.%u) was restarted in "
                    "place by its supervisor (restart %u): the %zu worker "
                    "processes of the one before are stopped, their tasks "
                    "retried and their actors restarted as their policies "
                    "say", ra_self(ctx).node, ra_self(ctx).proc,
                    ra_self(ctx).id, r->incarnation, r->norphans);
    }
    send_node_put(ctx, r);
    if (r->cfg.gcs_ep != NULL && (r->cfg.gcs.node != ra_self(ctx).node ||
                                  r->cfg.gcs.proc != ra_self(ctx).proc) &&
        ra_link_monitor_node(ctx, r->cfg.gcs.node, r->cfg.gcs.proc,
                             &r->gcs_mref) != 0) {
        r->gcs_mref = 0;
    }
    ra_sup_flags_t f = {
        .strategy = RA_ONE_FOR_ONE,
        .intensity = 1000000,
        .period_ms = 1000,
        .events = ra_self(ctx),
    };
    static const ra_child_spec_t none[1];
    int rc = ra_sup_start(ra_ctx_runtime(ctx), ctx, &f, none, 0, &r->sup);
    if (rc != 0) {
        return rc;
    }
    if (r->cfg.link != NULL && (rc = ra_link_subscribe(ctx, true)) != 0) {
        return rc;
    }
    if (r->cfg.daemon) {
        return 0;   // workers start for each driver that connects
    }
    // The embedded cluster's job: the program itself, env 0.
    ra__jenv_t *e = calloc(1, sizeof *e);
    if (e == NULL) {
        return RA_ENOMEM;
    }
    e->next = r->envs;
    r->envs = e;
    e->prestart = r->cfg.workers;
    r->next_env = 1;
    if ((e->argv = ra__read_cmdline()) == NULL ||
        (e->envp = make_env(r, ra_self(ctx), r->base_env, 0, NULL,
                            RA_PID_NIL)) ==
            NULL) {
        return RA_ENOMEM;
    }
    for (unsigned i = 0; i < r->cfg.workers; i++) {
        if ((rc = start_worker(ctx, r, e)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int
raylet_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    raylet_t *r = state;
    if (!r->booted) {
        // (Before anything else: an incarnation restarted in place may be
        // sent to before its boot tick arrives.)
        int rc = boot(ctx, r);
        if (rc != 0) {
            return rc;
        }
    }
    switch (ra_msg_tag(msg)) {
    case RA__T_TICK: {
        size_t len;
        const uint8_t *p = ra_msg_data(msg, &len);
        if ((!ra_pid_is_nil(ra_sender(ctx)) &&
             !ra_pid_eq(ra_sender(ctx), ra_self(ctx))) ||
            len != 2 || p[1] != (uint8_t)r->incarnation) {
            break;   // ticks come from ourselves and the timer only, and
                     // count only in the incarnation that armed them
        }
        if (p[0] == RAYLET_GRANT) {
            if (r->grant_soon) {
                try_grant(ctx, r);
            }
            break;
        }
        if (p[0] == RAYLET_REAP) {
            reap(ctx, r);
            break;
        }
        if (p[0] == RAYLET_HB) {
            send_hb(ctx, r);
            break;
        }
        int rc = boot(ctx, r);
        if (rc == 0) {
            reap(ctx, r);
            if (r->cfg.bind_ip != NULL) {
                send_hb(ctx, r);
            }
        }
        return rc;
    }
    case RA__T_PG:
        ra__raylet_pg(ctx, r, msg);
        break;
    case RA__T_LEASE_REQ:
        on_lease_req(ctx, r, msg);
        break;
    case RA__T_LEASE_RETURN:
        on_lease_return(ctx, r, msg);
        break;
    case RA__T_REGISTER:
        on_register(ctx, r, msg);
        break;
    case RA__T_BLOCKED:
        on_blocked(ctx, r, msg);
        break;
    case RA__T_JOB:
        on_job(ctx, r, msg);
        break;
    case RA__T_NODES:
        on_nodes(ctx, r, msg);
        break;
    case RA_TAG_NODE_DOWN:
        on_node_event(ctx, r, msg);
        break;
    case RA__T_GCS_BACK:
        on_gcs_back(ctx, r, msg);
        break;
    case RA__T_GCS_RESTARTED:
        // Only from this node's GCS, restarted in place (the same pid):
        // it forgot the nodes (they were in its memory).
        if (ra_pid_eq(ra_sender(ctx), r->cfg.gcs) && !r->finder_on) {
            ra_log_info("raylet", "registering again with the GCS, "
                        "restarted in place");
            send_node_put(ctx, r);
        }
        break;
    case RA__T_RAYLET_INFO: {
        size_t len = 0;
        const uint8_t *p = ra_msg_data(msg, &len);
        if (len == 1 && p[0] == RA__INFO_WORKERS) {
            on_workers(ctx, r);
        } else {
            on_info(ctx, r);
        }
        break;
    }
    case RA_TAG_SUP_EVENT:
        on_sup_event(ctx, r, msg);
        break;
    default:
        (void)gcs_lost(ctx, r, msg);
        break;
    }
    return 0;
}

// raylet_free frees r and what it holds.
static void
raylet_free(raylet_t *r)
{
    finder_join(r);
    while (r->workers != NULL) {
        wk_t *w = r->workers;
        r->workers = w->next;
        free(w);
    }
    while (r->leases != NULL) {
        lease_t *l = r->leases;
        r->leases = l->next;
        free(l->devs);
        free(l);
    }
    ra__hmap_fini(&r->lease_ids);
    while (r->bundles != NULL) {
        ra__bundle_t *b = r->bundles;
        r->bundles = b->next;
        ra__rpool_free(&b->pool);
        free(b);
    }
    ra__rpool_free(&r->node);
    view_free(r->view, r->nview);
    free(r->dev_mask);
    free(r->dev_scratch);
    ra__free_strv(r->dev_name);
    while (r->reqs != NULL) {
        req_t *q = r->reqs;
        r->reqs = q->next;
        free(q);
    }
    while (r->envs != NULL) {
        ra__jenv_t *e = r->envs;
        r->envs = e->next;
        ra__free_strv(e->argv);
        ra__free_strv(e->envp);
        free(e);
    }
    ra__free_strv(r->base_env);
    free(r->orphans);
    cfg_free(&r->cfg);
    free(r);
}

// ---- kept up in place ----
//
// The raylet runs under a supervisor of its own ("rayo-raylet-sup",
// one_for_one, a permanent child, at most RA__KEEP_RESTARTS restarts in
// RA__KEEP_PERIOD_MS), in a slot of the runtime reserved for it: every
// incarnation has the pid that the GCS, drivers, workers and the node file
// know.  What the raylet kept lived in its memory and ends with it: its
// worker supervisor is linked to it, so the node's worker processes are
// stopped (the owners retry their tasks and the GCS restarts their actors
// as their policies say, as after a crash of those workers); its leases,
// waiting requests, job environments and bundles go.  The next incarnation
// registers the node again (the GCS places again the bundles it no longer
// holds), starts the embedded cluster's workers again, deletes from the
// store the objects of the stopped workers once they are gone (orphans),
// and the cores of the node, which monitor it, register their jobs again
// and ask again for what they waited for (core.c).  Lease and environment
// ids of each incarnation are apart from the last one's, so a stale one
// never names a new lease.  A supervisor that gives up ends, and the node
// daemon's watch stops the daemon for its keeper (api.c).

struct ra__raylet_sys {
    ra__raylet_cfg_t cfg;     // strings owned; cfg.gcs follows the head
    uint32_t slot;
    unsigned starts;          // the supervisor's thread only
    ra_pid_t pid;             // the same for every incarnation
    int64_t *orphans;         // worker processes of the incarnation that
    size_t norphans;          // ended last (handed to the next one)
};

// raylet_terminate ends an incarnation: under a supervisor, the next one
// is told which worker processes this one leaves behind and where the
// GCS is now.
static void
raylet_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)reason;
    raylet_t *r = state;
    ra__raylet_sys_t *s = r->sys;
    if (s != NULL) {
        s->cfg.gcs = r->cfg.gcs;
        size_t n = r->norphans;
        for (wk_t *w = r->workers; w != NULL; w = w->next) {
            n++;
        }
        int64_t *o = n > 0 ? calloc(n, sizeof *o) : NULL;
        size_t k = 0;
        for (size_t i = 0; o != NULL && i < r->norphans; i++) {
            o[k++] = r->orphans[i];
        }
        for (wk_t *w = r->workers; o != NULL && w != NULL; w = w->next) {
            o[k++] = w->ospid;
        }
        free(s->orphans);
        s->orphans = o;
        s->norphans = k;
    }
    raylet_free(r);
}

// orphans_gone deletes the objects of the worker processes that an
// earlier incarnation left behind, once each of them has ended (its
// supervisor stops them).
static void
orphans_gone(ra_ctx_t *ctx, raylet_t *r)
{
    for (size_t i = 0; i < r->norphans;) {
        if (ra__proc_alive((int)r->orphans[i])) {
            i++;
            continue;
        }
        objects_gone(ctx, r, (uint32_t)r->orphans[i], "worker");
        r->orphans[i] = r->orphans[--r->norphans];
    }
}

static const ra_behaviour_t raylet_beh = {
    .name = "rayo-raylet",
    .handle = raylet_handle,
    .terminate = raylet_terminate,
};

static void
cfg_free(ra__raylet_cfg_t *c)
{
    free((char *)c->session);
    free((char *)c->endpoint);
    free((char *)c->ns);
    free((char *)c->libs);
    free((char *)c->store);
    free((char *)c->bind_ip);
    free((char *)c->cert);
    free((char *)c->gcs_ep);
}

// cfg_copy copies cfg into *out with strings of its own.
static int
cfg_copy(ra__raylet_cfg_t *out, const ra__raylet_cfg_t *cfg)
{
    *out = *cfg;
    out->session = strdup(cfg->session);
    out->endpoint = strdup(cfg->endpoint);
    out->ns = strdup(cfg->ns);
    out->libs = cfg->libs != NULL ? strdup(cfg->libs) : NULL;
    out->store = cfg->store != NULL ? strdup(cfg->store) : NULL;
    out->bind_ip = cfg->bind_ip != NULL ? strdup(cfg->bind_ip) : NULL;
    out->cert = cfg->cert != NULL ? strdup(cfg->cert) : NULL;
    out->gcs_ep = cfg->gcs_ep != NULL ? strdup(cfg->gcs_ep) : NULL;
    if (out->session == NULL || out->endpoint == NULL || out->ns == NULL ||
        (cfg->libs != NULL && out->libs == NULL) ||
        (cfg->store != NULL && out->store == NULL) ||
        (cfg->bind_ip != NULL && out->bind_ip == NULL) ||
        (cfg->cert != NULL && out->cert == NULL) ||
        (cfg->gcs_ep != NULL && out->gcs_ep == NULL)) {
        cfg_free(out);
        return RA_ENOMEM;
    }
    return 0;
}

// raylet_new makes the state of an incarnation.
static int
raylet_new(const ra__raylet_cfg_t *cfg, raylet_t **out)
{
    raylet_t *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return RA_ENOMEM;
    }
    if (cfg_copy(&r->cfg, cfg) != 0) {
        free(r);
        return RA_ENOMEM;
    }
    r->ndev = (unsigned)cfg->num_gpus;
    int prc = ra__rpool_init(&r->node, r->ndev);
    r->node.cpus_total = r->node.cpus_avail =
        (int64_t)(cfg->num_cpus * UNIT + 0.5);
    r->node.gpus_total = r->node.gpus_avail =
        (int64_t)r->ndev * (int64_t)UNIT;
    for (unsigned i = 0; prc == 0 && i < r->ndev; i++) {
        r->node.dev[i] = r->node.dev_total[i] = (int64_t)UNIT;
    }
    ra__res_extra(&cfg->extra, &r->node.xtotal);
    r->node.xavail = r->node.xtotal;
    r->dev_mask = calloc(r->ndev + 1, sizeof *r->dev_mask);
    r->dev_scratch = calloc(r->ndev + 1, sizeof *r->dev_scratch);
    r->dev_name = ra__dev_names_from_env(r->ndev);
    r->base_env = ra__copy_environ();
    r->reqs_tail = &r->reqs;
    r->next_env = 1;   // env 0 is the embedded cluster's own program
    if (prc != 0 || r->dev_mask == NULL || r->dev_scratch == NULL ||
        r->base_env == NULL) {
        raylet_free(r);
        return RA_ENOMEM;
    }
    *out = r;
    return 0;
}

// raylet_child_start is the raylet's start function (its supervisor runs
// it).
static int
raylet_child_start(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
                   uint64_t *info)
{
    (void)extra;
    (void)info;
    ra__raylet_sys_t *s = arg;
    raylet_t *r = NULL;
    int rc = raylet_new(&s->cfg, &r);
    if (rc != 0) {
        return rc;
    }
    r->sys = s;
    r->incarnation = s->starts;
    // The workers the last incarnation left are this one's to clean up.
    r->orphans = s->orphans;
    r->norphans = s->norphans;
    s->orphans = NULL;
    s->norphans = 0;
    uint8_t boot[2] = {RAYLET_BOOT, (uint8_t)r->incarnation};
    ra_pid_t pid;
    bool taken;
    if ((rc = ra__keep_spawn(sup, s->slot, &raylet_beh, r, boot, sizeof boot,
                             &taken, &pid)) != 0) {
        if (!taken) {
            s->orphans = r->orphans;
            s->norphans = r->norphans;
            r->orphans = NULL;
            r->norphans = 0;
            raylet_free(r);
        }
        return rc;
    }
    s->starts++;
    s->pid = pid;
    *out = pid;
    return 0;
}

int
ra__raylet_start(ra_runtime_t *rt, const ra__raylet_cfg_t *cfg,
                 ra__raylet_sys_t **sys, ra_pid_t *out, ra_pid_t *sup)
{
    ra__raylet_sys_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return RA_ENOMEM;
    }
    int rc = cfg_copy(&s->cfg, cfg);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if ((rc = ra__keep_start(rt, "raylet", raylet_child_start, s, &s->slot,
                             sup)) != 0) {
        free(s->orphans);
        cfg_free(&s->cfg);
        free(s);
        return rc;
    }
    *out = s->pid;
    *sys = s;
    return 0;
}

void
ra__raylet_sys_free(ra__raylet_sys_t **sys)
{
    if (*sys != NULL) {
        free((*sys)->orphans);
        cfg_free(&(*sys)->cfg);
        free(*sys);
        *sys = NULL;
    }
}

// raylet_res.c - the raylet's resources: pools, GPU devices and the
// bundles of placement groups.
//
// GPUs.  A node has ndev devices, each with RA__UNIT of capacity.  A
// request below one GPU shares a device: it takes the fullest device that
// still has room (best fit, so that whole devices stay free for whole
// requests).  A request of one or more GPUs must be whole and takes that
// many free devices, chosen by their links (ra_topo_pick_gpus) when the
// topology describes them, else the lowest indices.
//
// Bundles.  The GCS reserves a placement group's bundles in two phases:
// PREPARE takes every bundle meant for this node from the node's pool, or
// none of them (the reply says which); COMMIT makes them usable by leases;
// RETURN (after a failed prepare elsewhere) ends the leases in the
// bundles of that reservation (its attempt number) and gives their
// resources back; REMOVE does it for all of a group's bundles.  A group
// that lost bundles with a node is completed by a later reservation, and
// the bundles that survived are left alone by its PREPARE, COMMIT or
// RETURN.  A bundle with
// GPUs gets the best-linked devices, and remembers their NUMA node.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ra_error.h"
#include "ra_log.h"
#include "raylet_impl.h"

#define UNIT RA__UNIT

// ---- pools ----

int
ra__rpool_init(ra__rpool_t *p, unsigned ndev)
{
    memset(p, 0, sizeof *p);
    p->dev = calloc(ndev + 1, sizeof *p->dev);
    p->dev_total = calloc(ndev + 1, sizeof *p->dev_total);
    if (p->dev == NULL || p->dev_total == NULL) {
        ra__rpool_free(p);
        return RA_ENOMEM;
    }
    return 0;
}

void
ra__rpool_free(ra__rpool_t *p)
{
    free(p->dev);
    free(p->dev_total);
    p->dev = p->dev_total = NULL;
}

// extra_fits tells whether the memory and custom resources x (NULL:
// none) fit have.
static bool
extra_fits(const ra_resources_t *x, const ra_resources_t *have)
{
    return x == NULL || ra_resources_fit(x, have);
}

bool
ra__rpool_feasible(const ra__raylet_t *r, const ra__rpool_t *p, int64_t cpus,
                   int64_t gpus, const ra_resources_t *x)
{
    if (cpus > p->cpus_total || !extra_fits(x, &p->xtotal)) {
        return false;
    }
    if (gpus == 0) {
        return true;
    }
    if (gpus <= (int64_t)UNIT) {
        for (unsigned i = 0; i < r->ndev; i++) {
            if (p->dev_total[i] >= gpus) {
                return true;
            }
        }
        return false;
    }
    if (gpus % (int64_t)UNIT != 0) {
        return false;
    }
    unsigned whole = 0;
    for (unsigned i = 0; i < r->ndev; i++) {
        whole += p->dev_total[i] == (int64_t)UNIT;
    }
    return gpus / (int64_t)UNIT <= whole;
}

// gpu_pick chooses devices of pool p for gpus now; false when they are
// not free.
static bool
gpu_pick(ra__raylet_t *r, const ra__rpool_t *p, int64_t gpus, unsigned *devs,
         unsigned *ndevs)
{
    *ndevs = 0;
    if (gpus == 0) {
        return true;
    }
    if (gpus < (int64_t)UNIT) {
        int best = -1;
        for (unsigned i = 0; i < r->ndev; i++) {
            if (p->dev[i] >= gpus &&
                (best < 0 || p->dev[i] < p->dev[best])) {
                best = (int)i;
            }
        }
        if (best < 0) {
            return false;
        }
        devs[0] = (unsigned)best;
        *ndevs = 1;
        return true;
    }
    unsigned want = (unsigned)(gpus / (int64_t)UNIT), free_n = 0;
    for (unsigned i = 0; i < r->ndev; i++) {
        r->dev_mask[i] = p->dev[i] == (int64_t)UNIT;
        free_n += r->dev_mask[i];
    }
    if (free_n < want) {
        return false;
    }
    int numa = -1;
    if (r->cfg.topo != NULL && ra_topo_gpus(r->cfg.topo) == r->ndev &&
        ra_topo_pick_gpus(r->cfg.topo, want, r->dev_mask, devs, &numa) ==
            0) {
        *ndevs = want;
        return true;
    }
    for (unsigned i = 0; i < r->ndev && *ndevs < want; i++) {
        if (r->dev_mask[i]) {
            devs[(*ndevs)++] = i;
        }
    }
    return true;
}

bool
ra__rpool_take(ra__raylet_t *r, ra__rpool_t *p, int64_t cpus, int64_t gpus,
               const ra_resources_t *x, unsigned *devs, unsigned *ndevs)
{
    *ndevs = 0;
    if (cpus > p->cpus_avail || gpus > p->gpus_avail ||
        !extra_fits(x, &p->xavail) || (gpus > 0 && devs == NULL) ||
        !gpu_pick(r, p, gpus, devs, ndevs)) {
        return false;
    }
    if (x != NULL && ra_resources_sub(&p->xavail, x) != 0) {
        *ndevs = 0;
        return false;
    }
    int64_t per = gpus < (int64_t)UNIT ? gpus : (int64_t)UNIT;
    for (unsigned i = 0; i < *ndevs; i++) {
        p->dev[devs[i]] -= per;
    }
    p->cpus_avail -= cpus;
    p->gpus_avail -= gpus;
    return true;
}

void
ra__rpool_give(ra__rpool_t *p, int64_t cpus, int64_t gpus,
               const ra_resources_t *x, const unsigned *devs, unsigned ndevs)
{
    if (x != NULL) {
        (void)ra_resources_add(&p->xavail, x);
    }
    int64_t per = gpus < (int64_t)UNIT ? gpus : (int64_t)UNIT;
    for (unsigned i = 0; i < ndevs; i++) {
        p->dev[devs[i]] += per;
    }
    p->cpus_avail += cpus;
    p->gpus_avail += gpus;
}

// ---- CUDA_VISIBLE_DEVICES ----

// ra__gpu_env_ok: see cluster_impl.h.
bool
ra__gpu_env_ok(const char *s)
{
    size_t n = strlen(s);
    if (n >= RA__VISIBLE_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        // Indices, or UUIDs such as "GPU-5f1c..." or "MIG-...".
        bool name = (s[i] >= '0' && s[i] <= '9') ||
                    (s[i] >= 'a' && s[i] <= 'z') ||
                    (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-';
        bool comma = s[i] == ',' && i > 0 && i + 1 < n && s[i - 1] != ',';
        if (!name && !comma) {
            return false;
        }
    }
    return true;
}

void
ra__visible_of(const ra__raylet_t *r, const unsigned *devs, unsigned n,
               char *buf, size_t cap)
{
    buf[0] = '\0';
    if (r->dev_name == NULL) {
        (void)ra_topo_visible_devices(devs, n, buf, cap);
        return;
    }
    size_t len = 0;
    for (unsigned i = 0; i < n && len < cap; i++) {
        int k = snprintf(buf + len, cap - len, "%s%s", i > 0 ? "," : "",
                         r->dev_name[devs[i]]);
        if (k < 0 || (size_t)k >= cap - len) {
            buf[len] = '\0';
            break;
        }
        len += (size_t)k;
    }
}

char **
ra__dev_names_from_env(unsigned ndev)
{
    const char *v = getenv("CUDA_VISIBLE_DEVICES");
    if (ndev == 0 || v == NULL || v[0] == '\0' || !ra__gpu_env_ok(v)) {
        return NULL;
    }
    char **names = calloc(ndev + 1, sizeof *names);
    char *copy = strdup(v);
    unsigned k = 0;
    char *save = NULL;
    for (char *tok = copy != NULL ? strtok_r(copy, ",", &save) : NULL;
         tok != NULL && names != NULL && k < ndev;
         tok = strtok_r(NULL, ",", &save)) {
        names[k++] = strdup(tok);
    }
    free(copy);
    if (names != NULL && k < ndev) {
        ra__free_strv(names);
        names = NULL;
    }
    return names;
}

// ---- bundles ----

static bool
pg_gone(const ra__raylet_t *r, uint64_t pg)
{
    for (unsigned i = 0; i < r->ngone && i < RA__PG_GONE_MAX; i++) {
        if (r->gone[i] == pg) {
            return true;
        }
    }
    return false;
}

ra__rpool_t *
ra__req_pool(ra__raylet_t *r, const ra__req_t *q, bool *never,
             ra__bundle_t **bundle)
{
    *never = false;
    *bundle = NULL;
    if (q->pg == 0) {
        *never = !ra__rpool_feasible(r, &r->node, q->cpus, q->gpus, &q->x);
        return *never ? NULL : &r->node;
    }
    bool seen = false, all_committed = true, could = false;
    for (ra__bundle_t *b = r->bundles; b != NULL; b = b->next) {
        if (b->pg != q->pg) {
            continue;
        }
        seen = true;
        all_committed = all_committed && b->committed;
        if ((q->bundle >= 0 && b->index != (uint32_t)q->bundle) ||
            !b->committed ||
            !ra__rpool_feasible(r, &b->pool, q->cpus, q->gpus, &q->x)) {
            continue;
        }
        could = true;
        if (q->cpus <= b->pool.cpus_avail && q->gpus <= b->pool.gpus_avail &&
            ra_resources_fit(&q->x, &b->pool.xavail)) {
            *bundle = b;
            return &b->pool;
        }
    }
    // A group still being reserved is waited for; a removed one, or one
    // whose bundles here are all too small for the request, never grants
    // it.
    *never = pg_gone(r, q->pg) || (seen && all_committed && !could);
    return NULL;
}

static void
pg_reply(ra_ctx_t *ctx, ra__raylet_t *r, uint64_t pg, uint64_t attempt,
         int status)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u8(&b, RA__PG_PREPARED);
    ra__wb_u64(&b, pg);
    ra__wb_u64(&b, attempt);
    ra__wb_u32(&b, (uint32_t)status);
    ra__wb_u32(&b, ra_self(ctx).node);
    if (ra__wb_msg(&b, RA__T_PG, &m) == 0 &&
        ra_send(ctx, ra_sender(ctx), &m) != 0) {
        ra_msg_unref(&m);
    }
    (void)r;
}

// bundle_release gives a bundle's resources back to the node, after its
// leases ended.
static void
bundle_release(ra_ctx_t *ctx, ra__raylet_t *r, ra__bundle_t *b,
               const char *why)
{
    for (ra__rlease_t *l = r->leases, *n; l != NULL; l = n) {
        n = l->next;
        if (l->bundle == b) {
            ra__raylet_drop(ctx, r, l, why);
        }
    }
    for (unsigned i = 0; i < r->ndev; i++) {
        r->node.dev[i] += b->pool.dev_total[i];
    }
    r->node.cpus_avail += b->pool.cpus_total;
    r->node.gpus_avail += b->pool.gpus_total;
    (void)ra_resources_add(&r->node.xavail, &b->pool.xtotal);
    ra__rpool_free(&b->pool);
    free(b);
}

// pg_return gives back the bundles of group pg: all of them when it was
// removed, else those of reservation attempt.
static void
pg_return(ra_ctx_t *ctx, ra__raylet_t *r, uint64_t pg, uint64_t attempt,
          bool removed)
{
    for (ra__bundle_t **pp = &r->bundles; *pp != NULL;) {
        ra__bundle_t *b = *pp;
        if (b->pg != pg || (!removed && b->attempt != attempt)) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        bundle_release(ctx, r, b, removed ? "its placement group was removed"
                                          : "its placement group's "
                                            "reservation was rolled back");
    }
    if (removed && !pg_gone(r, pg)) {
        r->gone[r->ngone++ % RA__PG_GONE_MAX] = pg;
    }
}

// bundle_reserve takes one bundle from the node's pool.
static int
bundle_reserve(ra__raylet_t *r, uint64_t pg, uint32_t index, int64_t cpus,
               int64_t gpus, const ra_resources_t *x, ra__bundle_t **out)
{
    if (!ra__rpool_feasible(r, &r->node, cpus, gpus, x)) {
        return RA_EINFEASIBLE;
    }
    ra__bundle_t *b = calloc(1, sizeof *b);
    unsigned *devs = calloc(r->ndev + 1, sizeof *devs);
    unsigned ndevs = 0;
    int rc = b == NULL || devs == NULL ? RA_ENOMEM
                                       : ra__rpool_init(&b->pool, r->ndev);
    if (rc == 0 &&
        !ra__rpool_take(r, &r->node, cpus, gpus, x, devs, &ndevs)) {
        rc = RA_EAGAIN;
        ra__rpool_free(&b->pool);
    }
    if (rc != 0) {
        free(devs);
        free(b);
        return rc;
    }
    b->pg = pg;
    b->index = index;
    b->numa = -1;
    b->pool.cpus_total = b->pool.cpus_avail = cpus;
    b->pool.gpus_total = b->pool.gpus_avail = gpus;
    b->pool.xtotal = b->pool.xavail = *x;
    int64_t per = gpus < (int64_t)UNIT ? gpus : (int64_t)UNIT;
    for (unsigned i = 0; i < ndevs; i++) {
        b->pool.dev[devs[i]] = b->pool.dev_total[devs[i]] = per;
        ra_gpu_info_t g;
        if (r->cfg.topo != NULL && b->numa < 0 &&
            ra_topo_gpu(r->cfg.topo, devs[i], &g) == 0) {
            b->numa = g.numa_node;
        }
    }
    free(devs);
    *out = b;
    return 0;
}

static void
pg_prepare(ra_ctx_t *ctx, ra__raylet_t *r, uint64_t pg, uint64_t attempt,
           ra__rbuf_t *rb)
{
    uint32_t n = ra__rb_u32(rb);
    if (rb->bad || n == 0 || n > 65536) {
        ra_log_warn("raylet", "malformed placement-group prepare dropped");
        return;
    }
    ra__bundle_t *got = NULL;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        uint32_t index = ra__rb_u32(rb);
        ra_resources_t need, x;
        ra__rb_res(rb, &need);
        if (rb->bad) {
            rc = RA_EBADMSG;
            break;
        }
        ra__res_extra(&need, &x);
        ra__bundle_t *b = NULL;
        rc = bundle_reserve(r, pg, index, (int64_t)(need.cpus * UNIT + 0.5),
                            (int64_t)(need.gpus * UNIT + 0.5), &x, &b);
        if (rc == 0) {
            b->attempt = attempt;
            b->next = got;
            got = b;
        }
    }
    if (rc != 0) {
        // All or nothing: what was taken goes back.
        while (got != NULL) {
            ra__bundle_t *b = got;
            got = b->next;
            bundle_release(ctx, r, b, "");
        }
    } else {
        while (got != NULL) {
            ra__bundle_t *b = got;
            got = b->next;
            b->next = r->bundles;
            r->bundles = b;
        }
    }
    pg_reply(ctx, r, pg, attempt, rc);
}

void
ra__raylet_pg(ra_ctx_t *ctx, ra__raylet_t *r, ra_msg_t *m)
{
    if (!ra_pid_eq(ra_sender(ctx), r->cfg.gcs)) {
        ra_log_warn("raylet", "placement-group message from another "
                    "process than the GCS: ignored");
        return;
    }
    ra__rbuf_t rb;
    ra__rb_init(&rb, m);
    uint8_t op = ra__rb_u8(&rb);
    uint64_t pg = ra__rb_u64(&rb);
    uint64_t attempt = ra__rb_u64(&rb);
    if (rb.bad || pg == 0) {
        ra_log_warn("raylet", "malformed placement-group message dropped");
        return;
    }
    switch (op) {
    case RA__PG_PREPARE:
        pg_prepare(ctx, r, pg, attempt, &rb);
        break;
    case RA__PG_COMMIT:
        for (ra__bundle_t *b = r->bundles; b != NULL; b = b->next) {
            if (b->pg == pg && b->attempt == attempt) {
                b->committed = true;
            }
        }
        break;
    case RA__PG_RETURN:
        pg_return(ctx, r, pg, attempt, false);
        break;
    case RA__PG_REMOVE:
        pg_return(ctx, r, pg, attempt, true);
        break;
    default:
        ra_log_warn("raylet", "unknown placement-group operation %u", op);
        return;
    }
    ra__raylet_try_grant(ctx, r);
}

// gcs_pg.c - placement groups in the GCS: the nodes it knows, the groups
// (table "pgs", names in "pg_names"), where their bundles go and their
// reservation on the raylets.
//
// A group is created PENDING and placed at once if it can be: the
// placement (ra_place_bundles over the known nodes, seen as their totals
// less the bundles this GCS reserved on them) picks a node per bundle,
// then each of those raylets is asked to PREPARE its bundles (all of them
// or none).  When every node prepared, each is told to COMMIT and the
// group is CREATED; when one failed (its resources are busy with tasks),
// the others are told to RETURN what they took and the group stays
// PENDING.  Pending groups are tried again every PG_RETRY_MS, in creation
// order, and at once when a group is removed.  A group that can never be
// placed on these nodes stays pending and is logged once (Ray reports it
// as infeasible demand).  Removing a group tells its raylets to REMOVE its
// bundles, which ends the tasks and actors in them.
//
// Whoever waits for a group (ra_pg_ready) is a core: it gives an object
// id, and the GCS sends RA__T_PG_READY {u64 object, u32 status} to it when
// the group is created (0) or removed first (RA_ECANCELED).
//
// When a node is lost, its groups are RESCHEDULING: the bundles that were
// there are placed again in a reservation of their own (the strict
// strategies binding them to the bundles left), while the other bundles,
// and what runs in them, stay.  PREPARE, COMMIT and RETURN name the
// reservation (its attempt number), so the raylets leave the bundles of
// earlier ones alone.
//
// Every state change is written to LMDB, with group commit: the writes
// made while handling one message join a batch, and the batch is
// committed (one transaction, one sync) when the GCS has handled the
// messages that were already queued behind it (a PG_FLUSH tick that it
// sends itself marks that point).  Until then, whatever would tell the
// world about those changes waits with it: the replies to the requests
// and the PG_READY notices, so nobody hears of a change that is not yet
// on disk.  If the commit fails, the replies carry its error, and the
// groups that the batch created are dropped as if never made.  Bundle
// messages to raylets are not held: a head that dies meanwhile leaves
// bundles that its successor does not know, and the raylets give them
// back when it says so (below).  Under load one commit carries the
// changes of many requests; alone, a request waits for no one.  The
// records of the last PG_REMOVED_KEPT removed groups are kept (Ray keeps
// a bounded number too); older ones are deleted in the removal's batch.
//
// A head started again takes over the groups the GCS before it stored
// (reload_one).  Their bundles are "unsure" until their node registers
// again and lists the bundles it holds (reconcile): those it holds are
// counted again, those it does not are placed again, and what it holds
// for groups that are gone is given back.  Nodes that stay away
// PG_RELOAD_GRACE_MS lose their bundles to other nodes.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_impl.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_place.h"
#include "ra_table.h"

#define PG_RETRY_MS 10
// A reservation that a node refused (its resources were taken by tasks
// meanwhile) is tried again later and later, up to this: nodes are not
// asked to reserve and roll back a hundred times a second.
#define PG_RETRY_MAX_MS 500
#define PG_TICK 0x50
#define PG_FLUSH 0x51
#define PG_RELOADED RA__GCS_PG_RELOADED   // the GCS runs: watch reloaded
                                         // groups
#define PG_GRACE 0x53         // nodes that did not come back are dead
// A head started again gives the nodes this long to register again and
// say which bundles they hold; bundles of nodes that stay away are
// placed again after it.
#define PG_RELOAD_GRACE_MS 10000
// Removed groups whose records are kept for ra_pg_info and ra_pg_list;
// older ones are deleted (those of an earlier run of the GCS stay).
#define PG_REMOVED_KEPT 1000

typedef struct gnode {
    uint32_t node;
    ra_pid_t raylet;
    ra_resources_t total;
    ra_resources_t used;      // by the bundles this GCS reserved there
    bool alive;
    char ep[256];             // its raylet's tcp endpoint ("": ipc)
    uint64_t mref;            // the GCS's monitor of its raylet's process
    double cpus_avail;        // free at its last heartbeat
    double gpus_avail;
    ra_resources_t xavail;
    char summary[256];        // its topology in one line
    uint8_t *topo;            // its topology, a BSON document (or NULL)
    size_t topo_len;
    struct gnode *next;
} gnode_t;

typedef struct waiter {
    ra_pid_t core;
    uint64_t obj;
    struct waiter *next;
} waiter_t;

typedef struct gpg {
    uint64_t id;
    char ns[RA__NAME_MAX + 1];
    char name[RA__NAME_MAX + 1];
    uint8_t strategy;
    bool detached;
    uint8_t state;            // ra_pg_state_t
    uint32_t nb;
    ra_resources_t *b;
    uint32_t *node;           // node of each bundle (0: not placed)
    bool *fresh;              // bundle in the reservation in flight
    bool *unsure;             // placed by an earlier run of the GCS: its
                              // node has not said yet that it holds it
    uint64_t attempt;         // of the reservation in flight
    unsigned waiting;         // PREPARED replies still to come
    int failed;               // first failure of this attempt
    bool told_never;          // "can never be placed" logged
    ra_pid_t creator;         // the core that created it
    uint64_t cmref;           // monitor of its creator's process (a
                              // group not detached ends with its job)
    waiter_t *w;
    struct gpg *next;
} gpg_t;

// bwrite_t is one write of the batch not yet committed: a put of val
// under key in table, or its deletion.
typedef struct bwrite {
    const char *table;        // a string constant
    unsigned char *key, *val; // one allocation: the key, then the value
    size_t klen, vlen;
    bool del;
    struct bwrite *next;
} bwrite_t;

// bout_t is a message held until the batch is on disk: a reply to the
// call cref (its body m starts with the status), or a PG_READY notice.
typedef struct bout {
    uint64_t cref;            // a reply (0: a PG_READY notice)
    ra_msg_t *m;              // the reply
    uint64_t made;            // the group the request created (0: none)
    ra_pid_t core;            // the notice's
    uint64_t obj;
    int status;
    struct bout *next;
} bout_t;

struct ra__gcs_pgs {
    ra_tables_t *t;
    bwrite_t *bw, **bw_tail;  // the batch: writes in the order made
    bout_t *bo, **bo_tail;    // and what waits for it
    size_t nbw;
    bool flush_armed;         // a PG_FLUSH tick is on its way
    uint64_t made;            // the group the request handled now created
    unsigned nreloaded;       // groups taken over from an earlier GCS
    gnode_t *nodes;
    gpg_t *pgs, **tail;       // live groups (not removed), oldest first
    uint64_t next_id;
    bool tick_armed;
    uint32_t retry_ms;        // PG_RETRY_MS, doubled after each refusal
    uint64_t removed[PG_REMOVED_KEPT];   // ring of removed group ids
    unsigned nremoved;
};

// ---- helpers ----


static gpg_t *
pg_find(ra__gcs_pgs_t *p, uint64_t id)
{
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        if (g->id == id) {
            return g;
        }
    }
    return NULL;
}

static gnode_t *
node_find(ra__gcs_pgs_t *p, uint32_t node)
{
    for (gnode_t *n = p->nodes; n != NULL; n = n->next) {
        if (n->node == node) {
            return n;
        }
    }
    return NULL;
}

// ---- the batch (group commit) ----

// batch_add appends a write to the batch; the first write of a batch asks
// for a PG_FLUSH tick behind the messages queued now.
static int
batch_add(ra_ctx_t *ctx, ra__gcs_pgs_t *p, const char *table,
          const void *key, size_t klen, const void *val, size_t vlen,
          bool del)
{
    bwrite_t *w = calloc(1, sizeof *w);
    unsigned char *kv = malloc(klen + vlen + 1);
    if (w == NULL || kv == NULL) {
        free(w);
        free(kv);
        return RA_ENOMEM;
    }
    memcpy(kv, key, klen);
    if (vlen > 0) {
        memcpy(kv + klen, val, vlen);
    }
    *w = (bwrite_t){.table = table, .key = kv, .val = kv + klen,
                    .klen = klen, .vlen = vlen, .del = del};
    *p->bw_tail = w;
    p->bw_tail = &w->next;
    p->nbw++;
    if (!p->flush_armed) {
        p->flush_armed = ra__tick_self(ctx, &(uint8_t){PG_FLUSH}, 1, 0) == 0;
    }
    return 0;
}

// batch_out holds o until the batch is committed, or sends it now when
// nothing waits to be committed.
static void send_out(ra_ctx_t *ctx, bout_t *o, int status);
static int pg_drop(ra_ctx_t *ctx, ra__gcs_pgs_t *p, uint64_t id, bool store);

static void
batch_out(ra_ctx_t *ctx, ra__gcs_pgs_t *p, bout_t *o)
{
    if (p->bw == NULL) {
        send_out(ctx, o, 0);
        return;
    }
    o->next = NULL;
    *p->bo_tail = o;
    p->bo_tail = &o->next;
}

// batch_apply writes the batch in one transaction: 0 or the first error
// (then nothing of it is written).
static int
batch_apply(ra__gcs_pgs_t *p)
{
    ra_tables_txn_t *txn = NULL;
    int rc = ra_tables_begin(p->t, &txn);
    for (bwrite_t *w = p->bw; w != NULL && rc == 0; w = w->next) {
        if (w->del) {
            rc = ra_table_delete(p->t, txn, w->table, w->key, w->klen);
            rc = rc == RA_ENOENT ? 0 : rc;
        } else {
            rc = ra_table_put(p->t, txn, w->table, w->key, w->klen, w->val,
                              w->vlen, 0);
        }
    }
    rc = rc == 0 ? ra_tables_commit(&txn) : rc;
    if (txn != NULL) {
        ra_tables_abort(&txn);
    }
    return rc;
}

// batch_flush commits the batch, then sends what waited for it (with the
// commit's error if it failed).
static void
batch_flush(ra_ctx_t *ctx, ra__gcs_pgs_t *p)
{
    int rc = 0;
    if (p->bw != NULL) {
        rc = batch_apply(p);
        if (rc != 0) {
            ra_log_err("gcs", "cannot store %zu placement-group changes: "
                       "%s; the requests that made them are answered with "
                       "this error", p->nbw, ra_strerror(rc));
        }
    }
    while (p->bw != NULL) {
        bwrite_t *w = p->bw;
        p->bw = w->next;
        free(w->key);
        free(w);
    }
    p->bw_tail = &p->bw;
    p->nbw = 0;
    bout_t *o = p->bo;
    p->bo = NULL;
    p->bo_tail = &p->bo;
    while (o != NULL) {
        bout_t *next = o->next;
        // A group whose creation is answered with an error must not
        // exist: it goes as if removed, unrecorded.
        if (rc != 0 && o->made != 0) {
            (void)pg_drop(ctx, p, o->made, false);
        }
        send_out(ctx, o, rc);
        o = next;
    }
}

static gpg_t *
name_find(ra__gcs_pgs_t *p, const char *ns, const char *name)
{
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        if (strcmp(g->name, name) == 0 && strcmp(g->ns, ns) == 0) {
            return g;
        }
    }
    return NULL;
}

// pg_alloc makes the per-bundle arrays of g (g->nb entries); false when
// out of memory (pg_free frees what was made).
static bool
pg_alloc(gpg_t *g)
{
    g->b = calloc(g->nb, sizeof *g->b);
    g->node = calloc(g->nb, sizeof *g->node);
    g->fresh = calloc(g->nb, sizeof *g->fresh);
    g->unsure = calloc(g->nb, sizeof *g->unsure);
    return g->b != NULL && g->node != NULL && g->fresh != NULL &&
           g->unsure != NULL;
}

static void
pg_free(gpg_t *g)
{
    while (g->w != NULL) {
        waiter_t *w = g->w;
        g->w = w->next;
        free(w);
    }
    free(g->b);
    free(g->node);
    free(g->fresh);
    free(g->unsure);
    free(g);
}

// pg_encode appends the group's record (as stored and as listed).
static void
pg_encode(ra__wbuf_t *b, const gpg_t *g)
{
    ra__wb_u64(b, g->id);
    ra__wb_str(b, g->ns);
    ra__wb_str(b, g->name);
    ra__wb_u8(b, g->strategy);
    ra__wb_u8(b, g->detached);
    ra__wb_u8(b, g->state);
    ra__wb_u32(b, g->nb);
    for (uint32_t i = 0; i < g->nb; i++) {
        ra__wb_res(b, &g->b[i]);
        ra__wb_u32(b, g->node[i]);
    }
    ra__wb_pid(b, g->creator);   // after what clients read
}

// pg_store adds g's record to the batch.
static int
pg_store(ra_ctx_t *ctx, ra__gcs_pgs_t *p, const gpg_t *g)
{
    ra__wbuf_t b = {0};
    unsigned char key[8];
    pg_encode(&b, g);
    ra__id_key(g->id, key);
    int rc = b.err != 0 ? b.err
                        : batch_add(ctx, p, "pgs", key, sizeof key, b.p,
                                    b.len, false);
    ra__wb_free(&b);
    if (rc != 0) {
        ra_log_err("gcs", "cannot store placement group %" PRIu64 ": %s",
                   g->id, ra_strerror(rc));
    }
    return rc;
}

// send_out sends a held message: a reply (with status in place of its
// own when the batch failed) or a PG_READY notice (which says what
// happened to the group, stored or not); and frees o.
static void
send_out(ra_ctx_t *ctx, bout_t *o, int status)
{
    ra_msg_t *m = NULL;
    if (o->cref != 0) {
        if (status != 0) {
            ra_msg_unref(&o->m);
            ra__wbuf_t b = {0};
            ra__wb_u32(&b, (uint32_t)status);
            if (ra__wb_msg(&b, RA__T_GCS, &o->m) != 0) {
                o->m = NULL;
            }
        }
        if (o->m != NULL && ra_reply_to(ra_ctx_runtime(ctx), o->cref,
                                        &o->m) != 0) {
            ra_msg_unref(&o->m);
        }
    } else {
        ra__wbuf_t b = {0};
        ra__wb_u64(&b, o->obj);
        ra__wb_u32(&b, (uint32_t)o->status);   // about memory, not disk
        if (ra__wb_msg(&b, RA__T_PG_READY, &m) == 0 &&
            ra_send(ctx, o->core, &m) != 0) {
            ra_msg_unref(&m);
        }
    }
    free(o);
}

// send_ready tells core that the group of its object obj is created (0)
// or removed (RA_ECANCELED), once that is on disk.
static void
send_ready(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra_pid_t core, uint64_t obj,
           int status)
{
    bout_t *o = calloc(1, sizeof *o);
    if (o == NULL) {
        ra_log_err("gcs", "out of memory: a placement-group notice is lost");
        return;
    }
    o->core = core;
    o->obj = obj;
    o->status = status;
    batch_out(ctx, p, o);
}

static void
tell_waiters(ra_ctx_t *ctx, ra__gcs_pgs_t *p, gpg_t *g, int status)
{
    while (g->w != NULL) {
        waiter_t *w = g->w;
        g->w = w->next;
        send_ready(ctx, p, w->core, w->obj, status);
        free(w);
    }
}

// to_node sends a bundle operation of group g to node n's raylet; for
// PREPARE, with the bundles of the reservation in flight placed there.
// The raylet applies PREPARE, COMMIT and RETURN to the bundles of
// g->attempt only, and REMOVE to all of g's.
static int
to_node(ra_ctx_t *ctx, const gpg_t *g, const gnode_t *n, uint8_t op)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u8(&b, op);
    ra__wb_u64(&b, g->id);
    ra__wb_u64(&b, g->attempt);
    if (op == RA__PG_PREPARE) {
        uint32_t k = 0;
        for (uint32_t i = 0; i < g->nb; i++) {
            k += g->node[i] == n->node && g->fresh[i];
        }
        ra__wb_u32(&b, k);
        for (uint32_t i = 0; i < g->nb; i++) {
            if (g->node[i] == n->node && g->fresh[i]) {
                ra__wb_u32(&b, i);
                ra__wb_res(&b, &g->b[i]);
            }
        }
    }
    int rc = ra__wb_msg(&b, RA__T_PG, &m);
    if (rc == 0 && (rc = ra_send(ctx, n->raylet, &m)) != 0) {
        ra_msg_unref(&m);
    }
    return rc;
}

// each_node calls to_node once for every node holding a bundle of g: of
// the reservation in flight for PREPARE, COMMIT and RETURN, any for
// REMOVE.
static void
each_node(ra_ctx_t *ctx, ra__gcs_pgs_t *p, const gpg_t *g, uint8_t op,
          unsigned *sent)
{
    for (gnode_t *n = p->nodes; n != NULL; n = n->next) {
        bool has = false;
        for (uint32_t i = 0; i < g->nb && !has; i++) {
            has = g->node[i] == n->node &&
                  (op == RA__PG_REMOVE || g->fresh[i]);
        }
        if (has && to_node(ctx, g, n, op) == 0 && sent != NULL) {
            (*sent)++;
        }
    }
}

// hold_on counts bundle i of g, placed on n, in n's use (sign 1) or
// takes it out again (sign -1).
static void
hold_on(gnode_t *n, const gpg_t *g, uint32_t i, double sign)
{
    n->used.cpus += sign * g->b[i].cpus;
    n->used.gpus += sign * g->b[i].gpus;
    n->used.memory += sign * g->b[i].memory;
    for (size_t c = 0; c < g->b[i].ncustom; c++) {
        double have = ra_resources_get(&n->used, g->b[i].custom[c].name);
        (void)ra_resources_set(&n->used, g->b[i].custom[c].name,
                               have + sign * g->b[i].custom[c].amount);
    }
}

// Which bundles unplace forgets.
enum { UNPLACE_ALL, UNPLACE_FRESH, UNPLACE_ON_NODE };

// unplace forgets where some of g's bundles were, in the GCS's view of
// the nodes: all, those of the reservation in flight, or those on node.
static void
unplace(ra__gcs_pgs_t *p, gpg_t *g, int which, uint32_t node)
{
    for (uint32_t i = 0; i < g->nb; i++) {
        if (g->node[i] == 0 || (which == UNPLACE_FRESH && !g->fresh[i]) ||
            (which == UNPLACE_ON_NODE && g->node[i] != node)) {
            continue;
        }
        // An unsure bundle (taken over, not yet confirmed) was never
        // counted in its node's use.
        gnode_t *n = g->unsure[i] ? NULL : node_find(p, g->node[i]);
        if (n != NULL) {
            hold_on(n, g, i, -1);
        }
        g->node[i] = 0;
        g->fresh[i] = false;
        g->unsure[i] = false;
    }
}


static void arm_tick(ra_ctx_t *ctx, ra__gcs_pgs_t *p);


// try_place places g and starts its reservation if it can.
static void
try_place(ra_ctx_t *ctx, ra__gcs_pgs_t *p, gpg_t *g)
{
    if ((g->state != RA_PG_PENDING && g->state != RA_PG_RESCHEDULING) ||
        g->waiting > 0) {
        return;
    }
    size_t nn = 0;
    for (gnode_t *n = p->nodes; n != NULL; n = n->next) {
        nn++;
    }
    ra_place_node_t *nodes = calloc(nn + 1, sizeof *nodes);
    size_t *at = calloc(g->nb, sizeof *at);
    uint32_t *want = calloc(g->nb, sizeof *want);
    ra_resources_t *wb = calloc(g->nb, sizeof *wb);
    gnode_t **by = calloc(nn + 1, sizeof *by);
    if (nodes == NULL || at == NULL || want == NULL || wb == NULL ||
        by == NULL) {
        free(nodes);
        free(at);
        free(want);
        free(wb);
        free(by);
        arm_tick(ctx, p);
        return;
    }
    // Only the bundles not placed are placed: after a node was lost, the
    // others stay where they are, with what runs in them (as Ray does).
    uint32_t nw = 0;
    for (uint32_t i = 0; i < g->nb; i++) {
        if (g->node[i] == 0) {
            want[nw] = i;
            wb[nw++] = g->b[i];
        }
    }
    size_t k = 0;
    for (gnode_t *n = p->nodes; n != NULL; n = n->next, k++) {
        by[k] = n;
        nodes[k].id = n->node;
        nodes[k].alive = n->alive;
        nodes[k].total = n->total;
        nodes[k].avail = n->total;
        if (ra_resources_sub(&nodes[k].avail, &n->used) != 0) {
            nodes[k].avail = (ra_resources_t){0};
        }
        // The strict strategies also bind the bundles placed before:
        // STRICT_PACK to their node, STRICT_SPREAD away from theirs.
        bool holds = false, held = false;
        for (uint32_t i = 0; i < g->nb; i++) {
            held = held || g->node[i] != 0;
            holds = holds || g->node[i] == n->node;
        }
        if ((g->strategy == RA_PG_STRICT_PACK && held && !holds) ||
            (g->strategy == RA_PG_STRICT_SPREAD && holds)) {
            nodes[k].alive = false;
        }
    }
    int rc = nn == 0 || nw == 0
                 ? RA_EAGAIN
                 : ra_place_bundles(nodes, nn, wb, nw,
                                    (ra_pg_strategy_t)g->strategy, at);
    if (rc == 0) {
        g->attempt++;
        g->failed = 0;
        for (uint32_t j = 0; j < nw; j++) {
            uint32_t i = want[j];
            gnode_t *n = by[at[j]];
            g->node[i] = n->node;
            g->fresh[i] = true;
            hold_on(n, g, i, 1);
        }
        each_node(ctx, p, g, RA__PG_PREPARE, &g->waiting);
        if (g->waiting == 0) {
            unplace(p, g, UNPLACE_FRESH, 0);
            arm_tick(ctx, p);
        }
    } else {
        if (rc == RA_EINFEASIBLE && !g->told_never) {
            g->told_never = true;
            ra_log_warn("gcs", "placement group %" PRIu64 " (%s) cannot be "
                        "placed on the nodes of this cluster: it stays "
                        "pending until nodes that fit it join", g->id,
                        g->name[0] != '\0' ? g->name : "no name");
        }
        arm_tick(ctx, p);
    }
    free(nodes);
    free(at);
    free(want);
    free(wb);
    free(by);
}

static void
place_pending(ra_ctx_t *ctx, ra__gcs_pgs_t *p)
{
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        try_place(ctx, p, g);
    }
}

static void
arm_tick(ra_ctx_t *ctx, ra__gcs_pgs_t *p)
{
    if (p->tick_armed) {
        return;
    }
    uint32_t ms = p->retry_ms != 0 ? p->retry_ms : PG_RETRY_MS;
    p->tick_armed = ra__tick_self(ctx, &(uint8_t){PG_TICK}, 1, ms) == 0;
}

// on_prepared: a raylet answered a PREPARE.
static void
on_prepared(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r, uint64_t id,
            uint64_t attempt)
{
    int status = (int)ra__rb_u32(r);
    uint32_t node = ra__rb_u32(r);
    gpg_t *g = pg_find(p, id);
    gnode_t *n = node_find(p, node);
    if (r->bad || n == NULL) {
        ra_log_warn("gcs", "malformed placement-group reply dropped");
        return;
    }
    if (g == NULL || g->attempt != attempt || g->waiting == 0) {
        // An old attempt, or a removed group: nothing may stay reserved.
        if (status == 0) {
            gpg_t tmp = {.id = id, .attempt = attempt};
            (void)to_node(ctx, &tmp, n, g == NULL ? RA__PG_REMOVE
                                                  : RA__PG_RETURN);
        }
        return;
    }
    if (status != 0 && g->failed == 0) {
        g->failed = status;
    }
    if (--g->waiting > 0) {
        return;
    }
    if (g->failed != 0) {
        // Roll back everywhere (a node that failed took nothing); bundles
        // of an earlier reservation stay.
        each_node(ctx, p, g, RA__PG_RETURN, NULL);
        unplace(p, g, UNPLACE_FRESH, 0);
        p->retry_ms = p->retry_ms == 0 ? 2 * PG_RETRY_MS
                      : p->retry_ms >= PG_RETRY_MAX_MS / 2 ? PG_RETRY_MAX_MS
                                                           : 2 * p->retry_ms;
        arm_tick(ctx, p);
        return;
    }
    p->retry_ms = PG_RETRY_MS;
    each_node(ctx, p, g, RA__PG_COMMIT, NULL);
    memset(g->fresh, 0, g->nb * sizeof *g->fresh);
    g->state = RA_PG_CREATED;
    (void)pg_store(ctx, p, g);
    tell_waiters(ctx, p, g, 0);
}

// ---- operations ----

// reply_status answers the request being handled with {i32 rc, out},
// once the batch is on disk.
static void
reply_status(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__wbuf_t *out, int rc)
{
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u32(&b, (uint32_t)rc);
    if (out != NULL && out->len > 0) {
        ra__wb_raw(&b, out->p, out->len);
    }
    if (out != NULL) {
        ra__wb_free(out);
    }
    if (ra__wb_msg(&b, RA__T_GCS, &m) != 0) {
        return;
    }
    uint64_t cref = ra_call_ref(ctx);
    bout_t *o = cref != 0 && p->bw != NULL ? calloc(1, sizeof *o) : NULL;
    if (o == NULL) {
        if (ra_reply(ctx, &m) != 0) {
            ra_msg_unref(&m);
        }
        return;
    }
    o->cref = cref;
    o->m = m;
    o->made = rc == 0 ? p->made : 0;
    batch_out(ctx, p, o);
}

// ---- a head started again: the groups of the GCS before it ----

// lose_unsure places again the bundles of g that an earlier GCS put on
// node (0: on any node) and that were not found there.
static void
lose_unsure(ra_ctx_t *ctx, ra__gcs_pgs_t *p, gpg_t *g, uint32_t node)
{
    bool lost = false;
    for (uint32_t i = 0; i < g->nb; i++) {
        if (g->unsure[i] && (node == 0 || g->node[i] == node)) {
            g->unsure[i] = false;
            g->node[i] = 0;     // never counted in the node's use
            lost = true;
        }
    }
    if (lost) {
        if (g->state == RA_PG_CREATED) {
            g->state = RA_PG_RESCHEDULING;
        }
        ra_log_warn("gcs", "placement group %" PRIu64 ": bundles its node "
                    "no longer holds are placed again", g->id);
        (void)pg_store(ctx, p, g);
    }
}

// held tells whether the list of bundles a node holds (h, count entries
// from h's offset, as in reconcile) names bundle i of group id.
static bool
held(const ra__rbuf_t *h, uint32_t count, uint64_t id, uint32_t i)
{
    ra__rbuf_t r = *h;
    for (uint32_t k = 0; k < count && !r.bad; k++) {
        uint64_t gid = ra__rb_u64(&r);
        uint32_t gi = ra__rb_u32(&r);
        (void)ra__rb_u64(&r);
        (void)ra__rb_u8(&r);
        if (gid == id && gi == i) {
            return true;
        }
    }
    return false;
}

// lose_missing places again the bundles of g that this GCS saw reserved
// on node n and that n, registering again, no longer holds: its raylet was
// restarted in place (raylet.c, "kept up in place") and forgot them.  A
// reservation in flight is left to its own replies.
static void
lose_missing(ra_ctx_t *ctx, ra__gcs_pgs_t *p, gpg_t *g, gnode_t *n,
             const ra__rbuf_t *h, uint32_t count)
{
    if (g->state != RA_PG_CREATED && g->state != RA_PG_RESCHEDULING) {
        return;
    }
    bool lost = false;
    for (uint32_t i = 0; i < g->nb; i++) {
        if (g->node[i] != n->node || g->unsure[i] || g->fresh[i] ||
            held(h, count, g->id, i)) {
            continue;
        }
        hold_on(n, g, i, -1);
        g->node[i] = 0;
        lost = true;
    }
    if (lost) {
        g->state = RA_PG_RESCHEDULING;
        ra_log_warn("gcs", "placement group %" PRIu64 ": node %u registered "
                    "again without some of its bundles (its raylet was "
                    "restarted); they are placed again", g->id, n->node);
        (void)pg_store(ctx, p, g);
    }
}

// reconcile compares the bundles node n says it holds ({u64 group, u32
// index, u64 attempt, u8 committed} x count, in h) with the groups: what
// an earlier GCS placed there and n holds is counted again; what n holds
// for a group that is gone (or that is not placed there) is given back;
// what it should hold and does not is placed again.
static void
reconcile(ra_ctx_t *ctx, ra__gcs_pgs_t *p, gnode_t *n, ra__rbuf_t *h,
          uint32_t count)
{
    const ra__rbuf_t list = *h;
    for (uint32_t k = 0; k < count; k++) {
        uint64_t id = ra__rb_u64(h);
        uint32_t i = ra__rb_u32(h);
        uint64_t attempt = ra__rb_u64(h);
        bool committed = ra__rb_u8(h) != 0;
        gpg_t *g = pg_find(p, id);
        if (g != NULL && i < g->nb && g->node[i] == n->node &&
            (!g->unsure[i] || committed)) {
            if (g->unsure[i]) {
                g->unsure[i] = false;
                hold_on(n, g, i, 1);
            }
            continue;           // ours: confirmed, or in flight
        }
        gpg_t tmp = {.id = id, .attempt = attempt};
        (void)to_node(ctx, &tmp, n, g == NULL ? RA__PG_REMOVE
                                              : RA__PG_RETURN);
    }
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        lose_unsure(ctx, p, g, n->node);
        lose_missing(ctx, p, g, n, &list, count);
    }
}

// reload_one takes over one stored group that was not removed: a
// PENDING one is placed afresh (what was in flight is given back when
// the nodes report it); the bundles of a CREATED or RESCHEDULING one stay
// where they were, unsure until their nodes confirm them.
static int
reload_one(void *user, const void *key, size_t klen, const void *val,
           size_t vlen)
{
    ra__gcs_pgs_t *p = user;
    ra__rbuf_t r = {.p = val, .len = vlen};
    (void)key;
    (void)klen;
    gpg_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return 0;
    }
    g->id = ra__rb_u64(&r);
    ra__rb_str(&r, g->ns, sizeof g->ns);
    ra__rb_str(&r, g->name, sizeof g->name);
    g->strategy = ra__rb_u8(&r);
    g->detached = ra__rb_u8(&r) != 0;
    g->state = ra__rb_u8(&r);
    g->nb = ra__rb_u32(&r);
    if (r.bad || g->state == RA_PG_REMOVED || g->strategy >
        RA_PG_STRICT_SPREAD || g->nb == 0 || g->nb > RA_PLACE_MAX_BUNDLES) {
        free(g);
        return 0;
    }
    if (!pg_alloc(g)) {
        pg_free(g);
        return 0;
    }
    for (uint32_t i = 0; i < g->nb; i++) {
        ra__rb_res(&r, &g->b[i]);
        g->node[i] = ra__rb_u32(&r);
        if (g->state == RA_PG_PENDING) {
            g->node[i] = 0;
        }
        g->unsure[i] = g->node[i] != 0;
    }
    if (!r.bad && r.off < r.len) {
        g->creator = ra__rb_pid(&r);
    }
    if (r.bad) {
        pg_free(g);
        return 0;
    }
    // Attempts of this run come after any of the earlier runs.
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g->attempt = ((uint64_t)ts.tv_sec * 1000 +
                  (uint64_t)ts.tv_nsec / 1000000) << 16;
    *p->tail = g;
    p->tail = &g->next;
    p->nreloaded++;
    return 0;
}

// reloaded runs once the GCS runs: groups that are not detached watch
// their creators again, and nodes get PG_RELOAD_GRACE_MS to come back.
static void
reloaded(ra_ctx_t *ctx, ra__gcs_pgs_t *p)
{
    if (p->nreloaded == 0) {
        return;
    }
    ra_log_info("gcs", "took over %u placement groups of the GCS before; "
                "their nodes have %d s to confirm their bundles",
                p->nreloaded, PG_RELOAD_GRACE_MS / 1000);
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        if (!g->detached && g->creator.node != 0 &&
            ra_link_monitor_node(ctx, g->creator.node, g->creator.proc,
                                 &g->cmref) != 0) {
            g->cmref = 0;
        }
    }
    (void)ra__tick_self(ctx, &(uint8_t){PG_GRACE}, 1, PG_RELOAD_GRACE_MS);
    place_pending(ctx, p);
}

static int
op_node_put(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r)
{
    uint32_t node = ra__rb_u32(r);
    ra_pid_t raylet = ra__rb_pid(r);
    double cpus = ra__rb_f64(r);
    double gpus = ra__rb_f64(r);
    ra_resources_t extra;
    ra__rb_res(r, &extra);
    char summary[256] = "", ep[256] = "";
    const void *topo = NULL;
    size_t topo_len = 0, held_off = 0;
    uint32_t nheld = 0;
    if (!r->bad && r->off < r->len) {
        ra__rb_str(r, summary, sizeof summary);
        topo = ra__rb_bytes(r, &topo_len);
        ra__rb_str(r, ep, sizeof ep);
        if (!r->bad && r->off < r->len) {
            held_off = r->off;    // read by reconcile once n is known
            nheld = ra__rb_u32(r);
            for (uint32_t i = 0; i < nheld && !r->bad; i++) {
                (void)ra__rb_u64(r);
                (void)ra__rb_u32(r);
                (void)ra__rb_u64(r);
                (void)ra__rb_u8(r);
            }
        }
        bson_t doc;
        if (topo_len > 0 &&
            (!bson_init_static(&doc, topo, topo_len) ||
             !bson_validate(&doc, BSON_VALIDATE_NONE, NULL))) {
            r->bad = true;
        }
    }
    if (r->bad || node == 0 || !(cpus >= 0) || !(gpus >= 0)) {
        return RA_EBADMSG;
    }
    if (!ra_pid_eq(raylet, ra_sender(ctx)) || raylet.node != node) {
        ra_log_warn("gcs", "node %u registered by another process than "
                    "its raylet: refused", node);
        return RA_EACCES;
    }
    gnode_t *n = node_find(p, node);
    if (n == NULL) {
        if ((n = calloc(1, sizeof *n)) == NULL) {
            return RA_ENOMEM;
        }
        n->node = node;
        n->next = p->nodes;
        p->nodes = n;
    }
    uint8_t *copy = topo_len > 0 ? malloc(topo_len) : NULL;
    if (topo_len > 0 && copy == NULL) {
        return RA_ENOMEM;
    }
    if (copy != NULL) {
        memcpy(copy, topo, topo_len);
    }
    free(n->topo);
    n->topo = copy;
    n->topo_len = topo_len;
    snprintf(n->summary, sizeof n->summary, "%s", summary);
    snprintf(n->ep, sizeof n->ep, "%s", ep);
    // A raylet of another process is watched: its loss is its node's.
    if (n->mref == 0 && (raylet.node != ra_self(ctx).node ||
                         raylet.proc != ra_self(ctx).proc) &&
        ra_link_monitor_node(ctx, raylet.node, raylet.proc, &n->mref) !=
            0) {
        n->mref = 0;
    }
    n->raylet = raylet;
    n->total = extra;
    n->total.cpus = cpus;
    n->total.gpus = gpus;
    n->cpus_avail = cpus;
    n->gpus_avail = gpus;
    n->xavail = extra;
    n->alive = true;
    if (held_off != 0) {
        ra__rbuf_t h = *r;
        h.off = held_off;
        (void)ra__rb_u32(&h);
        reconcile(ctx, p, n, &h, nheld);
    }
    place_pending(ctx, p);
    return 0;
}

void
ra__gcs_ask_register(ra_ctx_t *ctx, ra_pid_t raylet)
{
    ra_msg_t *m = NULL;
    if (ra_msg_new_bytes(&m, RA__T_GCS_RESTARTED, NULL, 0) == 0 &&
        ra_send(ctx, raylet, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// op_node_hb: a raylet says what it has free now, and is answered with
// every live node's (RA__T_NODES), its view for spilling work over.
static int
op_node_hb(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r)
{
    uint32_t node = ra__rb_u32(r);
    double cpus = ra__rb_f64(r);
    double gpus = ra__rb_f64(r);
    ra_resources_t x;
    ra__rb_res(r, &x);
    gnode_t *n = r->bad ? NULL : node_find(p, node);
    if (n == NULL && !r->bad) {
        // A GCS restarted in place forgot the nodes: this one registers
        // again at once.
        ra__gcs_ask_register(ctx, ra_sender(ctx));
    }
    if (n == NULL || !ra_pid_eq(n->raylet, ra_sender(ctx))) {
        return r->bad ? RA_EBADMSG : RA_EACCES;
    }
    n->cpus_avail = cpus;
    n->gpus_avail = gpus;
    n->xavail = x;
    ra__wbuf_t b = {0};
    uint32_t count = 0;
    for (gnode_t *g = p->nodes; g != NULL; g = g->next) {
        count += g->alive;
    }
    ra__wb_u32(&b, count);
    for (gnode_t *g = p->nodes; g != NULL; g = g->next) {
        if (!g->alive) {
            continue;
        }
        ra__wb_u32(&b, g->node);
        ra__wb_pid(&b, g->raylet);
        ra__wb_str(&b, g->ep);
        ra__wb_res(&b, &g->total);
        ra__wb_f64(&b, g->cpus_avail);
        ra__wb_f64(&b, g->gpus_avail);
        ra__wb_res(&b, &g->xavail);
        // The bundles of created groups there, so that work for them is
        // sent where they are.
        uint32_t nb = 0;
        for (gpg_t *q = p->pgs; q != NULL; q = q->next) {
            for (uint32_t i = 0; q->state == RA_PG_CREATED && i < q->nb;
                 i++) {
                nb += q->node[i] == g->node;
            }
        }
        ra__wb_u32(&b, nb);
        for (gpg_t *q = p->pgs; q != NULL; q = q->next) {
            for (uint32_t i = 0; q->state == RA_PG_CREATED && i < q->nb;
                 i++) {
                if (q->node[i] == g->node) {
                    ra__wb_u64(&b, q->id);
                    ra__wb_u32(&b, i);
                }
            }
        }
    }
    ra_msg_t *m = NULL;
    if (ra__wb_msg(&b, RA__T_NODES, &m) == 0 &&
        ra_send(ctx, n->raylet, &m) != 0) {
        ra_msg_unref(&m);
    }
    return 0;
}

static int
op_node_list(ra__gcs_pgs_t *p, ra__wbuf_t *out)
{
    uint32_t n = 0;
    for (gnode_t *g = p->nodes; g != NULL; g = g->next) {
        n++;
    }
    ra__wb_u32(out, n);
    for (gnode_t *g = p->nodes; g != NULL; g = g->next) {
        ra__wb_u32(out, g->node);
        ra__wb_pid(out, g->raylet);
        ra__wb_u8(out, g->alive);
        ra__wb_res(out, &g->total);
        ra__wb_res(out, &g->used);
        ra__wb_str(out, g->summary);
        ra__wb_bytes(out, g->topo, g->topo_len);
        ra__wb_str(out, g->ep);
    }
    return out->err;
}

static int
op_create(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r, ra__wbuf_t *out)
{
    gpg_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return RA_ENOMEM;
    }
    ra__rb_str(r, g->ns, sizeof g->ns);
    ra__rb_str(r, g->name, sizeof g->name);
    g->strategy = ra__rb_u8(r);
    g->detached = ra__rb_u8(r) != 0;
    ra_pid_t core = ra__rb_pid(r);
    uint64_t obj = ra__rb_u64(r);
    g->creator = core;
    g->nb = ra__rb_u32(r);
    if (r->bad || g->strategy > RA_PG_STRICT_SPREAD || g->nb == 0 ||
        g->nb > RA_PLACE_MAX_BUNDLES) {
        pg_free(g);
        return RA_EBADMSG;
    }
    if (!pg_alloc(g)) {
        pg_free(g);
        return RA_ENOMEM;
    }
    for (uint32_t i = 0; i < g->nb; i++) {
        ra__rb_res(r, &g->b[i]);
    }
    if (r->bad) {
        pg_free(g);
        return RA_EBADMSG;
    }
    // A name is unique among the live groups of its namespace.
    if (g->name[0] != '\0' && name_find(p, g->ns, g->name) != NULL) {
        pg_free(g);
        return RA_EEXIST;
    }
    g->id = ++p->next_id;
    char key[2 * RA__NAME_MAX + 2];
    size_t klen = ra__name_key(key, sizeof key, g->ns, g->name);
    unsigned char idk[8];
    ra__id_key(g->id, idk);
    int rc = 0;
    if (g->name[0] != '\0' &&
        (rc = batch_add(ctx, p, "pg_names", key, klen, idk, sizeof idk,
                        false)) != 0) {
        pg_free(g);
        return rc;
    }
    if ((rc = pg_store(ctx, p, g)) != 0) {
        // The name stays in the batch, naming a group that was never
        // made: ra_pg_get finds live groups in memory first.
        pg_free(g);
        return rc;
    }
    if (obj != 0) {
        waiter_t *w = calloc(1, sizeof *w);
        if (w != NULL) {
            w->core = core;
            w->obj = obj;
            g->w = w;
        }
    }
    *p->tail = g;
    p->tail = &g->next;
    p->made = g->id;
    ra__wb_u64(out, g->id);
    // A group that is not detached is removed when its creator's process
    // is lost (this process's own groups end with it anyway).
    ra_pid_t self = ra_self(ctx);
    if (!g->detached && (core.node != self.node || core.proc != self.proc) &&
        ra_link_monitor_node(ctx, core.node, core.proc, &g->cmref) != 0) {
        g->cmref = 0;
    }
    try_place(ctx, p, g);
    return 0;
}

static int
op_ready(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r, ra__wbuf_t *out)
{
    uint64_t id = ra__rb_u64(r);
    ra_pid_t core = ra__rb_pid(r);
    uint64_t obj = ra__rb_u64(r);
    if (r->bad || obj == 0) {
        return RA_EBADMSG;
    }
    gpg_t *g = pg_find(p, id);
    if (g == NULL) {
        return RA_ENOENT;
    }
    ra__wb_u8(out, g->state);
    if (g->state == RA_PG_CREATED) {
        return 0;
    }
    waiter_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return RA_ENOMEM;
    }
    w->core = core;
    w->obj = obj;
    w->next = g->w;
    g->w = w;
    (void)ctx;
    return 0;
}

static int
op_remove(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r)
{
    uint64_t id = ra__rb_u64(r);
    if (r->bad) {
        return RA_EBADMSG;
    }
    return pg_drop(ctx, p, id, true);
}

// pg_drop removes group id: its bundles are given back and its waiters
// told.  With store, its record says REMOVED (in the batch); without, it
// is forgotten (a creation that could not be stored).
static int
pg_drop(ra_ctx_t *ctx, ra__gcs_pgs_t *p, uint64_t id, bool store)
{
    gpg_t **pp = &p->pgs;
    while (*pp != NULL && (*pp)->id != id) {
        pp = &(*pp)->next;
    }
    gpg_t *g = *pp;
    if (g == NULL) {
        return RA_ENOENT;
    }
    *pp = g->next;
    if (p->tail == &g->next) {
        p->tail = pp;
    }
    // Bundles prepared or committed go; a prepare still in flight is
    // answered later and undone then (the group is no longer found).
    each_node(ctx, p, g, RA__PG_REMOVE, NULL);
    unplace(p, g, UNPLACE_ALL, 0);
    g->state = RA_PG_REMOVED;
    if (!store) {
        tell_waiters(ctx, p, g, RA_ECANCELED);
        pg_free(g);
        place_pending(ctx, p);
        return 0;
    }
    // One batch: the record, the name, and the oldest removed record
    // beyond PG_REMOVED_KEPT.
    uint64_t *slot = &p->removed[p->nremoved % PG_REMOVED_KEPT];
    int rc = pg_store(ctx, p, g);
    if (rc == 0 && g->name[0] != '\0') {
        char key[2 * RA__NAME_MAX + 2];
        size_t klen = ra__name_key(key, sizeof key, g->ns, g->name);
        rc = batch_add(ctx, p, "pg_names", key, klen, NULL, 0, true);
    }
    if (rc == 0 && *slot != 0) {
        unsigned char old[8];
        ra__id_key(*slot, old);
        rc = batch_add(ctx, p, "pgs", old, sizeof old, NULL, 0, true);
    }
    if (rc == 0) {
        *slot = g->id;
        p->nremoved++;
    }
    tell_waiters(ctx, p, g, RA_ECANCELED);
    pg_free(g);
    place_pending(ctx, p);
    return rc;
}

static int
op_get(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r, ra__wbuf_t *out)
{
    char ns[RA__NAME_MAX + 1], name[RA__NAME_MAX + 1];
    ra__rb_str(r, ns, sizeof ns);
    ra__rb_str(r, name, sizeof name);
    char key[2 * RA__NAME_MAX + 2];
    size_t klen = ra__name_key(key, sizeof key, ns, name);
    if (r->bad || name[0] == '\0' || klen == 0) {
        return RA_EBADMSG;
    }
    const gpg_t *g = name_find(p, ns, name);
    if (g != NULL) {
        ra__wb_u64(out, g->id);
        return 0;
    }
    // A removed group's name is no longer stored; one of an earlier run
    // of the GCS may be.
    batch_flush(ctx, p);
    void *val = NULL;
    size_t vlen = 0;
    int rc = ra_table_get(p->t, NULL, "pg_names", key, klen, &val, &vlen);
    if (rc == 0 && vlen == 8) {
        uint64_t id = 0;
        for (size_t i = 0; i < 8; i++) {
            id = id << 8 | ((unsigned char *)val)[i];
        }
        ra__wb_u64(out, id);
    } else if (rc == 0) {
        rc = RA_EBADMSG;
    }
    free(val);
    return rc;
}

// op_info answers one group's record (RA_ENOENT: never created), or with
// id 0 every record, removed ones too: {u32 n, n records}.
typedef struct list_acc {
    ra__wbuf_t *out;
    uint32_t n;
} list_acc_t;

// list_removed adds the stored records of removed groups (live ones come
// from memory).
static int
list_removed(void *user, const void *key, size_t klen, const void *val,
             size_t vlen)
{
    list_acc_t *a = user;
    ra__rbuf_t r = {.p = val, .len = vlen};
    char s[RA__NAME_MAX + 1];
    (void)key;
    (void)klen;
    (void)ra__rb_u64(&r);
    ra__rb_str(&r, s, sizeof s);
    ra__rb_str(&r, s, sizeof s);
    (void)ra__rb_u8(&r);
    (void)ra__rb_u8(&r);
    if (!r.bad && ra__rb_u8(&r) == RA_PG_REMOVED) {
        ra__wb_bytes(a->out, val, vlen);
        a->n++;
    }
    return 0;
}

static int
op_info(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra__rbuf_t *r, ra__wbuf_t *out)
{
    uint64_t id = ra__rb_u64(r);
    if (r->bad) {
        return RA_EBADMSG;
    }
    if (id != 0) {
        gpg_t *g = pg_find(p, id);
        if (g != NULL) {
            ra__wbuf_t rec = {0};
            pg_encode(&rec, g);
            ra__wb_u32(out, 1);
            ra__wb_bytes(out, rec.p, rec.len);
            int rc = rec.err;
            ra__wb_free(&rec);
            return rc;
        }
        unsigned char key[8];
        void *val = NULL;
        size_t vlen = 0;
        ra__id_key(id, key);
        batch_flush(ctx, p);   // the table must hold what memory forgot
        int rc = ra_table_get(p->t, NULL, "pgs", key, sizeof key, &val,
                              &vlen);
        if (rc == 0) {
            ra__wb_u32(out, 1);
            ra__wb_bytes(out, val, vlen);
        }
        free(val);
        return rc;
    }
    // Live groups first, from memory (their state is current), then the
    // removed ones from the table.
    ra__wbuf_t body = {0};
    list_acc_t acc = {.out = &body};
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        ra__wbuf_t rec = {0};
        pg_encode(&rec, g);
        ra__wb_bytes(&body, rec.p, rec.len);
        ra__wb_free(&rec);
        acc.n++;
    }
    batch_flush(ctx, p);
    int rc = ra_table_scan(p->t, NULL, "pgs", NULL, 0, list_removed, &acc);
    if (rc == RA_ENOENT) {
        rc = 0;
    }
    ra__wb_u32(out, acc.n);
    ra__wb_raw(out, body.p, body.len);
    rc = rc != 0 ? rc : body.err;
    ra__wb_free(&body);
    return rc;
}

// ---- the GCS's entry points ----

bool
ra__gcs_pg_op(ra_ctx_t *ctx, ra__gcs_pgs_t *p, uint8_t op, ra__rbuf_t *r)
{
    ra__wbuf_t out = {0};
    int rc;
    p->made = 0;
    switch (op) {
    case RA__GCS_NODE_PUT:
        rc = op_node_put(ctx, p, r);
        break;
    case RA__GCS_PG_CREATE:
        rc = op_create(ctx, p, r, &out);
        break;
    case RA__GCS_PG_READY:
        rc = op_ready(ctx, p, r, &out);
        break;
    case RA__GCS_PG_REMOVE:
        rc = op_remove(ctx, p, r);
        break;
    case RA__GCS_PG_GET:
        rc = op_get(ctx, p, r, &out);
        break;
    case RA__GCS_PG_INFO:
        rc = op_info(ctx, p, r, &out);
        break;
    case RA__GCS_NODE_LIST:
        rc = op_node_list(p, &out);
        break;
    case RA__GCS_NODE_HB:
        rc = op_node_hb(ctx, p, r);
        break;
    default:
        return false;
    }
    if (rc == RA_EBADMSG) {
        ra_log_warn("gcs", "malformed request (op %u) refused", op);
    }
    if (rc != 0) {
        ra__wb_free(&out);
    }
    reply_status(ctx, p, &out, rc);
    return true;
}

// node_lost: a node's raylet was lost (its daemon died or was cut off).
// The node is dead.  Each group with a bundle there is RESCHEDULING: the
// bundles that were there are placed again; the others stay where they
// are, and what runs in them goes on (as in Ray).  What ran on the dead
// node follows its own restart policy.  A reservation in flight is rolled
// back whole.
static void
node_lost(ra_ctx_t *ctx, ra__gcs_pgs_t *p, gnode_t *n)
{
    n->alive = false;
    n->mref = 0;
    unsigned moved = 0;
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        bool there = false;
        for (uint32_t i = 0; i < g->nb && !there; i++) {
            there = g->node[i] == n->node;
        }
        if (!there) {
            continue;
        }
        if (g->waiting > 0) {
            each_node(ctx, p, g, RA__PG_RETURN, NULL);
            unplace(p, g, UNPLACE_FRESH, 0);
        }
        unplace(p, g, UNPLACE_ON_NODE, n->node);
        g->attempt++;       // replies still on their way are stale
        g->waiting = 0;
        g->failed = 0;
        if (g->state == RA_PG_CREATED) {
            g->state = RA_PG_RESCHEDULING;
        }
        (void)pg_store(ctx, p, g);
        moved++;
    }
    ra_log_warn("gcs", "node %u is dead (its raylet %u.%u was lost); %u "
                "placement groups are placed again", n->node, n->raylet.node,
                n->raylet.proc, moved);
    place_pending(ctx, p);
}

bool
ra__gcs_pg_down(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra_msg_t *m)
{
    uint64_t mref;
    ra_pid_t pid;
    ra_reason_t why;
    if (ra_msg_kind(m) != RA_MSG_DOWN ||
        ra_msg_down_info(m, &mref, &pid, &why) != 0) {
        return false;
    }
    for (gnode_t *n = p->nodes; n != NULL; n = n->next) {
        if (n->alive && n->mref != 0 && n->mref == mref) {
            node_lost(ctx, p, n);
            return true;
        }
    }
    for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
        if (g->cmref != 0 && g->cmref == mref) {
            ra_log_info("gcs", "placement group %" PRIu64 " ends with its "
                        "creator %u.%u", g->id, pid.node, pid.proc);
            (void)pg_drop(ctx, p, g->id, true);
            return true;
        }
    }
    return false;
}

void
ra__gcs_pg_msg(ra_ctx_t *ctx, ra__gcs_pgs_t *p, ra_msg_t *m)
{
    if (ra_msg_tag(m) == RA__T_TICK) {
        size_t len = 0;
        const uint8_t *d = ra_msg_data(m, &len);
        if (d != NULL && len == 1 && d[0] == PG_TICK) {
            p->tick_armed = false;
            place_pending(ctx, p);
        } else if (d != NULL && len == 1 && d[0] == PG_FLUSH) {
            p->flush_armed = false;
            batch_flush(ctx, p);
        } else if (d != NULL && len == 1 && d[0] == PG_RELOADED) {
            reloaded(ctx, p);
        } else if (d != NULL && len == 1 && d[0] == PG_GRACE) {
            for (gpg_t *g = p->pgs; g != NULL; g = g->next) {
                lose_unsure(ctx, p, g, 0);
            }
            place_pending(ctx, p);
        }
        return;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, m);
    uint8_t op = ra__rb_u8(&r);
    uint64_t id = ra__rb_u64(&r);
    uint64_t attempt = ra__rb_u64(&r);
    bool from_raylet = false;
    for (gnode_t *n = p->nodes; n != NULL && !from_raylet; n = n->next) {
        from_raylet = ra_pid_eq(n->raylet, ra_sender(ctx));
    }
    if (r.bad || op != RA__PG_PREPARED || !from_raylet) {
        ra_log_warn("gcs", "unexpected placement-group message dropped");
        return;
    }
    on_prepared(ctx, p, &r, id, attempt);
}

void
ra__gcs_pg_flush(ra_ctx_t *ctx, ra__gcs_pgs_t *p)
{
    if (p != NULL) {
        batch_flush(ctx, p);
    }
}

int
ra__gcs_pg_new(ra__gcs_pgs_t **out, ra_tables_t *t)
{
    ra__gcs_pgs_t *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RA_ENOMEM;
    }
    p->t = t;
    p->tail = &p->pgs;
    p->bw_tail = &p->bw;
    p->bo_tail = &p->bo;
    // Ids go on from the largest stored, so a restarted GCS never reuses
    // one.
    p->next_id = 0;
    (void)ra_table_scan(t, NULL, "pgs", NULL, 0, ra__max_id_scan,
                        &p->next_id);
    // The groups an earlier run left (a head started again).
    (void)ra_table_scan(t, NULL, "pgs", NULL, 0, reload_one, p);
    *out = p;
    return 0;
}

void
ra__gcs_pg_free(ra__gcs_pgs_t **pp)
{
    ra__gcs_pgs_t *p = *pp;
    if (p == NULL) {
        return;
    }
    while (p->pgs != NULL) {
        gpg_t *g = p->pgs;
        p->pgs = g->next;
        pg_free(g);
    }
    // Nothing is left in the batch after ra__gcs_pg_flush; a GCS that
    // could not flush drops it here.
    while (p->bw != NULL) {
        bwrite_t *w = p->bw;
        p->bw = w->next;
        free(w->key);
        free(w);
    }
    while (p->bo != NULL) {
        bout_t *o = p->bo;
        p->bo = o->next;
        ra_msg_unref(&o->m);
        free(o);
    }
    while (p->nodes != NULL) {
        gnode_t *n = p->nodes;
        p->nodes = n->next;
        free(n->topo);
        free(n);
    }
    free(p);
    *pp = NULL;
}

// gcs_tasks.c - the GCS's task table: the remote function tasks of the
// cluster's drivers and workers, as their owners report them (PENDING,
// RUNNING on a worker, FINISHED, FAILED with the error), for `rayo list
// tasks` and ra_task_list.
//
// Owners send their events in batches (RA__GCS_TASK_EVENTS, without
// waiting; see tev_* in core.c).  Unlike the other tables this one lives
// in memory, not in LMDB: events come at the rate tasks run, a durable
// commit each would cost more than the tasks, and a GCS that restarts
// starts it afresh (Ray's GCS keeps its task events in memory too).  It
// holds the newest max tasks (RA__TASKS_MAX); the oldest are dropped
// first.
//
// Layout: a ring of records in the order tasks were first heard of, and
// an open-addressing index (linear probing, backward-shift deletion) from
// {owner node, owner process, task id} to ring positions.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_impl.h"
#include "ra_error.h"
#include "ra_log.h"

typedef struct trec {
    uint32_t onode, oproc;    // the owner
    uint64_t id;              // the owner's task (= result object) id
    uint8_t state;            // RA__TEV_*
    uint32_t attempt;
    uint64_t job;
    uint32_t node, proc;      // the worker it last ran on (0: none yet)
    int64_t submit_ms, start_ms, end_ms;
    char *fn, *label;         // NULL until known, or when ""
    char *error;              // FAILED: why (else NULL)
} trec_t;

struct ra__gcs_tasks {
    size_t max;               // ring capacity
    trec_t **ring;            // max slots; made at the first event
    size_t head, n;           // oldest record, count
    uint32_t *index;          // ring position + 1 (0: empty)
    size_t icap;              // a power of two >= 2 * max
};

static uint64_t
key_hash(uint32_t node, uint32_t proc, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    h ^= ((uint64_t)node << 32 | proc) * 0xC2B2AE3D27D4EB4Full;
    return h ^ (h >> 29);
}

static size_t
home(const ra__gcs_tasks_t *g, const trec_t *t)
{
    return (size_t)key_hash(t->onode, t->oproc, t->id) & (g->icap - 1);
}

// find returns the index slot of the task, or the empty slot where it
// would go (*found says which).
static size_t
find(const ra__gcs_tasks_t *g, uint32_t node, uint32_t proc, uint64_t id,
     bool *found)
{
    size_t mask = g->icap - 1;
    size_t i = (size_t)key_hash(node, proc, id) & mask;
    while (g->index[i] != 0) {
        const trec_t *t = g->ring[g->index[i] - 1];
        if (t->id == id && t->onode == node && t->oproc == proc) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
    *found = false;
    return i;
}

// unindex removes index slot i, shifting back the entries after it that
// probed past it.
static void
unindex(ra__gcs_tasks_t *g, size_t i)
{
    size_t mask = g->icap - 1;
    g->index[i] = 0;
    for (size_t j = (i + 1) & mask; g->index[j] != 0; j = (j + 1) & mask) {
        size_t k = home(g, g->ring[g->index[j] - 1]);
        // Entry j may move to the hole i unless its home lies in (i, j].
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            g->index[i] = g->index[j];
            g->index[j] = 0;
            i = j;
        }
    }
}

static void
rec_free(trec_t *t)
{
    if (t != NULL) {
        free(t->fn);
        free(t->label);
        free(t->error);
        free(t);
    }
}

// get returns the record of a task, made (and the oldest dropped when
// full) if it is new and make is set; else NULL (also without memory).
static trec_t *
get(ra__gcs_tasks_t *g, uint32_t node, uint32_t proc, uint64_t id,
    bool make)
{
    if (g->ring == NULL) {
        size_t icap = 16;
        while (icap < 2 * g->max) {
            icap *= 2;
        }
        g->ring = calloc(g->max, sizeof *g->ring);
        g->index = calloc(icap, sizeof *g->index);
        if (g->ring == NULL || g->index == NULL) {
            free(g->ring);
            free(g->index);
            g->ring = NULL;
            g->index = NULL;
            return NULL;
        }
        g->icap = icap;
    }
    bool found;
    size_t i = find(g, node, proc, id, &found);
    if (found) {
        return g->ring[g->index[i] - 1];
    }
    trec_t *t = make ? calloc(1, sizeof *t) : NULL;
    if (t == NULL) {
        return NULL;
    }
    t->onode = node;
    t->oproc = proc;
    t->id = id;
    if (g->n == g->max) {
        trec_t *old = g->ring[g->head];
        bool f2;
        size_t oi = find(g, old->onode, old->oproc, old->id, &f2);
        if (f2) {
            unindex(g, oi);
        }
        rec_free(old);
        g->ring[g->head] = NULL;
        g->head = (g->head + 1) % g->max;
        g->n--;
        i = find(g, node, proc, id, &found);   // the hole may have moved
    }
    size_t pos = (g->head + g->n) % g->max;
    g->ring[pos] = t;
    g->n++;
    g->index[i] = (uint32_t)pos + 1;
    return t;
}

// op_events applies a batch: {u64 job, u32 n, n x {u64 id, u8 state, u32
// attempt, u64 wall ms, then by state: PENDING str function, str label;
// RUNNING u32 node, u32 proc; FAILED str error}}.  The sender owns the
// tasks; a task's events come in order.
static int
op_events(ra_ctx_t *ctx, ra__gcs_tasks_t *g, ra__rbuf_t *r)
{
    ra_pid_t from = ra_sender(ctx);
    uint64_t job = ra__rb_u64(r);
    uint32_t n = ra__rb_u32(r);
    for (uint32_t i = 0; i < n && !r->bad; i++) {
        uint64_t id = ra__rb_u64(r);
        uint8_t state = ra__rb_u8(r);
        uint32_t attempt = ra__rb_u32(r);
        int64_t ms = (int64_t)ra__rb_u64(r);
        char fn[RA__NAME_MAX + 1] = "", label[RA__NAME_MAX + 1] = "";
        char err[256] = "";
        uint32_t node = 0, proc = 0;
        switch (state) {
        case RA__TEV_PENDING:
            ra__rb_str(r, fn, sizeof fn);
            ra__rb_str(r, label, sizeof label);
            break;
        case RA__TEV_RUNNING:
            node = ra__rb_u32(r);
            proc = ra__rb_u32(r);
            break;
        case RA__TEV_FINISHED:
            break;
        case RA__TEV_FAILED:
            ra__rb_str(r, err, sizeof err);
            break;
        default:
            return RA_EBADMSG;
        }
        if (r->bad) {
            break;
        }
        // Only a submission makes a record: the later events of a task
        // dropped as old (or from before a GCS restart) are ignored.
        trec_t *t = get(g, from.node, from.proc, id,
                        state == RA__TEV_PENDING);
        if (t == NULL) {
            if (state == RA__TEV_PENDING) {
                return RA_ENOMEM;
            }
            continue;
        }
        t->state = state;
        t->attempt = attempt;
        t->job = job;
        if (state == RA__TEV_PENDING) {
            free(t->fn);
            free(t->label);
            t->fn = fn[0] != '\0' ? strdup(fn) : NULL;
            t->label = label[0] != '\0' ? strdup(label) : NULL;
            t->submit_ms = ms;
        } else if (state == RA__TEV_RUNNING) {
            t->node = node;
            t->proc = proc;
            t->start_ms = ms;
        } else {
            t->end_ms = ms;
            free(t->error);
            t->error = state == RA__TEV_FAILED ? strdup(err) : NULL;
        }
    }
    return r->bad ? RA_EBADMSG : 0;
}

// op_list answers {u32 limit (0: all)} with the newest limit records,
// oldest first: u32 n, n x {u32 owner node, u32 owner proc, u64 id, u8
// state, u32 attempt, u64 job, u32 node, u32 proc, u64 submit ms, u64
// start ms, u64 end ms, str function, str label, str error}.
static int
op_list(ra__gcs_tasks_t *g, ra__rbuf_t *r, ra__wbuf_t *out)
{
    uint32_t limit = ra__rb_u32(r);
    if (r->bad) {
        return RA_EBADMSG;
    }
    size_t first = limit != 0 && g->n > limit ? g->n - limit : 0;
    ra__wb_u32(out, (uint32_t)(g->n - first));
    for (size_t i = first; i < g->n; i++) {
        const trec_t *t = g->ring[(g->head + i) % g->max];
        ra__wb_u32(out, t->onode);
        ra__wb_u32(out, t->oproc);
        ra__wb_u64(out, t->id);
        ra__wb_u8(out, t->state);
        ra__wb_u32(out, t->attempt);
        ra__wb_u64(out, t->job);
        ra__wb_u32(out, t->node);
        ra__wb_u32(out, t->proc);
        ra__wb_u64(out, (uint64_t)t->submit_ms);
        ra__wb_u64(out, (uint64_t)t->start_ms);
        ra__wb_u64(out, (uint64_t)t->end_ms);
        ra__wb_str(out, t->fn != NULL ? t->fn : "");
        ra__wb_str(out, t->label != NULL ? t->label : "");
        ra__wb_str(out, t->error != NULL ? t->error : "");
    }
    return out->err;
}

void
ra__gcs_tasks_owner_gone(ra__gcs_tasks_t *g, uint32_t node, uint32_t proc,
                         const char *why)
{
    int64_t now = ra__wall_ms();
    for (size_t i = 0; g->ring != NULL && i < g->n; i++) {
        trec_t *t = g->ring[(g->head + i) % g->max];
        if (t->onode != node || t->oproc != proc ||
            t->state == RA__TEV_FINISHED || t->state == RA__TEV_FAILED) {
            continue;
        }
        t->state = RA__TEV_FAILED;
        t->end_ms = now;
        free(t->error);
        t->error = strdup(why);
    }
}

bool
ra__gcs_tasks_op(ra_ctx_t *ctx, ra__gcs_tasks_t *g, uint8_t op,
                 ra__rbuf_t *r, ra__wbuf_t *out, int *rc)
{
    switch (op) {
    case RA__GCS_TASK_EVENTS:
        *rc = op_events(ctx, g, r);
        return true;
    case RA__GCS_TASK_LIST:
        *rc = op_list(g, r, out);
        return true;
    default:
        return false;
    }
}

int
ra__gcs_tasks_new(ra__gcs_tasks_t **out, size_t max)
{
    ra__gcs_tasks_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return RA_ENOMEM;
    }
    g->max = max > 0 ? max : RA__TASKS_MAX;
    *out = g;
    return 0;
}

void
ra__gcs_tasks_free(ra__gcs_tasks_t **gp)
{
    ra__gcs_tasks_t *g = *gp;
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; g->ring != NULL && i < g->n; i++) {
        rec_free(g->ring[(g->head + i) % g->max]);
    }
    free(g->ring);
    free(g->index);
    free(g);
    *gp = NULL;
}

// gcs_jobs.c - the GCS's job table: every driver that joins a node
// daemon's cluster is a job, recorded in the LMDB table "jobs" (key: the
// 8-byte big-endian job id) with its state, driver, entry point and times.
//
// A job is RUNNING from JOB_ADD until its driver says how it ended
// (JOB_END: from the driver's own process, or STOPPED from any member
// of the cluster, as `rayo job stop` says before it stops it) or until its
// process is
// lost, which the GCS sees through a link monitor: then it FAILED.  Ids go
// on from the largest stored, so a restarted GCS never reuses one; jobs
// left RUNNING by an earlier GCS stay RUNNING (their drivers may still
// run and end them) with a message that nobody watches them.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_impl.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_table.h"

typedef struct gjob {
    uint64_t id;
    uint64_t mref;            // monitor of the driver's process
    struct gjob *next;
} gjob_t;

struct ra__gcs_jobs {
    ra_tables_t *t;
    uint64_t next_id;
    gjob_t *live;             // running jobs being watched
};

// A record: {u8 state, pid core, u64 OS pid, u32 node, i64 start ms,
// i64 end ms, str entry point, str submission id, str message}.
typedef struct jrec {
    uint8_t state;
    ra_pid_t core;
    uint64_t ospid;
    uint32_t node;
    int64_t start_ms, end_ms;
    char entry[1024];
    char submission[128];
    char message[256];
} jrec_t;


static void
rec_encode(ra__wbuf_t *b, const jrec_t *j)
{
    ra__wb_u8(b, j->state);
    ra__wb_pid(b, j->core);
    ra__wb_u64(b, j->ospid);
    ra__wb_u32(b, j->node);
    ra__wb_u64(b, (uint64_t)j->start_ms);
    ra__wb_u64(b, (uint64_t)j->end_ms);
    ra__wb_str(b, j->entry);
    ra__wb_str(b, j->submission);
    ra__wb_str(b, j->message);
}

static int
rec_decode(const void *p, size_t len, jrec_t *j)
{
    ra__rbuf_t r = {.p = p, .len = len};
    j->state = ra__rb_u8(&r);
    j->core = ra__rb_pid(&r);
    j->ospid = ra__rb_u64(&r);
    j->node = ra__rb_u32(&r);
    j->start_ms = (int64_t)ra__rb_u64(&r);
    j->end_ms = (int64_t)ra__rb_u64(&r);
    ra__rb_str(&r, j->entry, sizeof j->entry);
    ra__rb_str(&r, j->submission, sizeof j->submission);
    ra__rb_str(&r, j->message, sizeof j->message);
    return r.bad || j->state > RA_JOB_STOPPED ? RA_EBADMSG : 0;
}

static int
rec_store(ra__gcs_jobs_t *g, uint64_t id, const jrec_t *j)
{
    ra__wbuf_t b = {0};
    rec_encode(&b, j);
    unsigned char key[8];
    ra__id_key(id, key);
    int rc = b.err != 0 ? b.err
                        : ra_table_put(g->t, NULL, "jobs", key, sizeof key,
                                       b.p, b.len, 0);
    ra__wb_free(&b);
    return rc;
}

static int
rec_load(ra__gcs_jobs_t *g, uint64_t id, jrec_t *j)
{
    unsigned char key[8];
    ra__id_key(id, key);
    void *val = NULL;
    size_t vlen = 0;
    int rc = ra_table_get(g->t, NULL, "jobs", key, sizeof key, &val, &vlen);
    if (rc == 0) {
        rc = rec_decode(val, vlen, j);
        free(val);
    }
    return rc;
}

// finish records how job id ended, unless it already has.
static int
finish(ra__gcs_jobs_t *g, uint64_t id, uint8_t state, const char *why)
{
    jrec_t j;
    int rc = rec_load(g, id, &j);
    if (rc != 0) {
        return rc;
    }
    if (j.state != RA_JOB_RUNNING) {
        return 0;
    }
    j.state = state;
    j.end_ms = ra__wall_ms();
    snprintf(j.message, sizeof j.message, "%s", why);
    return rec_store(g, id, &j);
}

static void
unwatch(ra_ctx_t *ctx, ra__gcs_jobs_t *g, uint64_t id)
{
    for (gjob_t **pp = &g->live; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            gjob_t *w = *pp;
            *pp = w->next;
            if (ctx != NULL && w->mref != 0) {
                ra_demonitor(ctx, w->mref);
            }
            free(w);
            return;
        }
    }
}

// watch adds running job id to the live list and watches its driver's
// process (core), unless that is the GCS's own (an embedded cluster).
// (A driver already lost gives its DOWN at once.)
static void
watch(ra_ctx_t *ctx, ra__gcs_jobs_t *g, uint64_t id, ra_pid_t core)
{
    gjob_t *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return;
    }
    w->id = id;
    ra_pid_t self = ra_self(ctx);
    if ((core.node != self.node || core.proc != self.proc) &&
        ra_link_monitor_node(ctx, core.node, core.proc, &w->mref) != 0) {
        w->mref = 0;
    }
    w->next = g->live;
    g->live = w;
}

static int
op_add(ra_ctx_t *ctx, ra__gcs_jobs_t *g, ra__rbuf_t *r, ra__wbuf_t *out)
{
    jrec_t j = {.state = RA_JOB_RUNNING};
    j.core = ra__rb_pid(r);
    j.ospid = ra__rb_u64(r);
    j.node = ra__rb_u32(r);
    ra__rb_str(r, j.entry, sizeof j.entry);
    ra__rb_str(r, j.submission, sizeof j.submission);
    ra_pid_t from = ra_sender(ctx);
    if (r->bad || j.core.node != from.node || j.core.proc != from.proc) {
        return RA_EBADMSG;
    }
    j.start_ms = ra__wall_ms();
    uint64_t id = g->next_id + 1;
    int rc = rec_store(g, id, &j);
    if (rc != 0) {
        return rc;
    }
    g->next_id = id;
    watch(ctx, g, id, j.core);
    ra__wb_u64(out, id);
    return 0;
}

static int
op_end(ra_ctx_t *ctx, ra__gcs_jobs_t *g, ra__rbuf_t *r)
{
    uint64_t id = ra__rb_u64(r);
    uint8_t state = ra__rb_u8(r);
    char msg[256];
    ra__rb_str(r, msg, sizeof msg);
    if (r->bad || state == RA_JOB_RUNNING || state > RA_JOB_STOPPED) {
        return RA_EBADMSG;
    }
    jrec_t j;
    int rc = rec_load(g, id, &j);
    if (rc != 0) {
        return rc;
    }
    ra_pid_t from = ra_sender(ctx);
    if (state != RA_JOB_STOPPED &&
        (j.core.node != from.node || j.core.proc != from.proc)) {
        return RA_EACCES;   // only the driver itself says it succeeded
    }
    unwatch(ctx, g, id);
    return finish(g, id, state, msg);
}

static bool
put_id(ra__wbuf_t *b, const void *key, size_t klen)
{
    ra__wb_u64(b, ra__id_of_key(key, klen));
    return true;
}

static int
op_list(ra__gcs_jobs_t *g, ra__wbuf_t *out)
{
    return ra__gcs_scan_list(g->t, "jobs", put_id, out);
}

bool
ra__gcs_jobs_op(ra_ctx_t *ctx, ra__gcs_jobs_t *g, uint8_t op, ra__rbuf_t *r,
                ra__wbuf_t *out, int *rc)
{
    switch (op) {
    case RA__GCS_JOB_ADD:
        *rc = op_add(ctx, g, r, out);
        return true;
    case RA__GCS_JOB_END:
        *rc = op_end(ctx, g, r);
        return true;
    case RA__GCS_JOB_LIST:
        *rc = op_list(g, out);
        return true;
    default:
        return false;
    }
}

bool
ra__gcs_job_running(ra__gcs_jobs_t *g, uint64_t id)
{
    jrec_t j;
    return g != NULL && rec_load(g, id, &j) == 0 && j.state == RA_JOB_RUNNING;
}

bool
ra__gcs_jobs_down(ra_ctx_t *ctx, ra__gcs_jobs_t *g, ra_msg_t *m,
                  ra_pid_t *driver)
{
    uint64_t mref;
    ra_pid_t pid;
    ra_reason_t why;
    if (ra_msg_kind(m) != RA_MSG_DOWN ||
        ra_msg_down_info(m, &mref, &pid, &why) != 0) {
        return false;
    }
    for (gjob_t *w = g->live; w != NULL; w = w->next) {
        if (w->mref != 0 && w->mref == mref) {
            uint64_t id = w->id;
            w->mref = 0;
            unwatch(ctx, g, id);
            ra_log_info("gcs", "job %" PRIu64 " failed: its driver %u.%u "
                        "was lost", id, pid.node, pid.proc);
            (void)finish(g, id, RA_JOB_FAILED,
                         "the driver's process was lost");
            *driver = pid;
            return true;
        }
    }
    return false;
}

typedef struct stale {
    uint64_t *ids;
    size_t n, cap;
} stale_t;

static int
find_running(void *user, const void *key, size_t klen, const void *val,
             size_t vlen)
{
    stale_t *s = user;
    jrec_t j;
    if (klen != 8 || rec_decode(val, vlen, &j) != 0 ||
        j.state != RA_JOB_RUNNING) {
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        uint64_t *n = realloc(s->ids, cap * sizeof *n);
        if (n == NULL) {
            return 0;
        }
        s->ids = n;
        s->cap = cap;
    }
    s->ids[s->n++] = ra__id_of_key(key, klen);
    return 0;
}

int
ra__gcs_jobs_new(ra__gcs_jobs_t **out, ra_tables_t *t, bool in_place)
{
    ra__gcs_jobs_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return RA_ENOMEM;
    }
    g->t = t;
    (void)ra_table_scan(t, NULL, "jobs", NULL, 0, ra__max_id_scan,
                        &g->next_id);
    if (in_place) {
        *out = g;
        return 0;
    }
    stale_t s = {0};
    (void)ra_table_scan(t, NULL, "jobs", NULL, 0, find_running, &s);
    // Jobs an earlier GCS left running may still run (their drivers on
    // other nodes): they stay RUNNING until their drivers say how they
    // ended, but nothing watches them now.
    for (size_t i = 0; i < s.n; i++) {
        jrec_t j;
        if (rec_load(g, s.ids[i], &j) == 0) {
            snprintf(j.message, sizeof j.message, "the GCS restarted while "
                     "it ran: its driver is not watched");
            (void)rec_store(g, s.ids[i], &j);
        }
    }
    free(s.ids);
    *out = g;
    return 0;
}

unsigned
ra__gcs_jobs_rewatch(ra_ctx_t *ctx, ra__gcs_jobs_t *g)
{
    stale_t s = {0};
    (void)ra_table_scan(g->t, NULL, "jobs", NULL, 0, find_running, &s);
    for (size_t i = 0; i < s.n; i++) {
        jrec_t j;
        if (rec_load(g, s.ids[i], &j) == 0) {
            watch(ctx, g, s.ids[i], j.core);
        }
    }
    free(s.ids);
    return (unsigned)s.n;
}

void
ra__gcs_jobs_free(ra__gcs_jobs_t **gp)
{
    ra__gcs_jobs_t *g = *gp;
    if (g == NULL) {
        return;
    }
    while (g->live != NULL) {
        gjob_t *w = g->live;
        g->live = w->next;
        free(w);
    }
    free(g);
    *gp = NULL;
}

// gcs_actors.c - the GCS's actor table: every actor a driver (or worker)
// creates, recorded in the LMDB table "actors" with its state machine
// (PENDING, ALIVE, RESTARTING, DEAD with the reason), class, name, job,
// where it runs and how often it restarted.
//
// Key: 16 bytes, big-endian {u32 owner node, u32 owner process, u64 the
// owner's actor key}: an actor is named by the process that created it.
// The owner reports each change of state (ACTOR_PUT, sent without waiting
// for an answer).  The GCS also monitors each ALIVE instance: an instance
// that ends while its record still says ALIVE (killed by another program,
// its worker or node lost, or its owner gone with a detached actor) is
// recorded DEAD at once, with why; a later report of the owner (say
// RESTARTING) wins.  A GCS that restarts watches the ALIVE instances of
// its table again.  A kill reported shortly after the GCS saw the
// instance end still names the killer.  Records of dead actors are kept
// (`rayo list actors` shows them), as Ray keeps them: the newest
// DEAD_MAX, the ones that ended first dropped beyond that.
//
// Writes are group-committed, as placement groups are (gcs_pg.c): a
// changed record joins a batch, held in memory and read from there, and
// the batch is committed in one transaction (one sync) when the GCS has
// handled the messages queued before its first write (an
// RA__GCS_ACTORS_FLUSH tick marks that point), or at BATCH_MAX records,
// or before the table is listed or pruned, or as the GCS ends.  The
// owners' reports (ACTOR_PUT, ACTOR_KILLED) are sent without waiting for
// an answer, so a GCS killed before the commit loses what a GCS killed
// before handling them would have lost: the reports of the last moment.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_impl.h"
#include "hmap.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_table.h"

// A watched instance, found by its actor's key, by its monitor and by
// its pid (a GCS may watch 100,000s: each lookup is a hash probe).
typedef struct gwatch {
    unsigned char key[RA__ACTOR_KEY_LEN];
    ra_pid_t pid;
    uint64_t mref;   // 0 once its DOWN came
} gwatch_t;

typedef struct gwatches {
    ra__hmap_t by_key, by_mref, by_pid;
} gwatches_t;

// An instance the GCS saw end on its own (its DOWN came first): a kill
// reported a little after that DOWN still names the killer.
#define ENDED_RING 64
#define ENDED_KEEP_MS 30000

typedef struct gended {
    unsigned char key[RA__ACTOR_KEY_LEN];
    ra_pid_t pid;
    int64_t at_ms;
} gended_t;

// Records of dead actors kept (Ray keeps 100,000 destroyed actors too;
// RAYO_GCS_MAX_DEAD_ACTORS sets it).  Beyond it by a tenth, the oldest
// ended go, in one batch.
#define DEAD_MAX 100000

// The batch commits at the latest when it holds this many records.
#define BATCH_MAX 4096

// A record in the batch: the newest value written for its key.
typedef struct gpend {
    unsigned char key[RA__ACTOR_KEY_LEN];
    size_t len;
    unsigned char val[];
} gpend_t;

struct ra__gcs_actors {
    ra_tables_t *t;
    ra__hmap_t batch;         // key -> gpend_t, not yet committed
    bool flush_armed;         // an RA__GCS_ACTORS_FLUSH tick is on its way
    gwatches_t watched;
    size_t dead, dead_max;    // DEAD records, and how many are kept
    gended_t ended[ENDED_RING];
    unsigned ended_next;
};


void
ra__actor_key(uint32_t node, uint32_t proc, uint64_t key,
              unsigned char out[RA__ACTOR_KEY_LEN])
{
    for (int i = 0; i < 4; i++) {
        out[i] = (unsigned char)(node >> (24 - 8 * i));
        out[4 + i] = (unsigned char)(proc >> (24 - 8 * i));
    }
    for (int i = 0; i < 8; i++) {
        out[8 + i] = (unsigned char)(key >> (56 - 8 * i));
    }
}

void
ra__wb_actor_rec(ra__wbuf_t *b, const ra__actor_rec_t *a)
{
    ra__wb_u8(b, a->state);
    ra__wb_str(b, a->cls);
    ra__wb_str(b, a->name);
    ra__wb_str(b, a->ns);
    ra__wb_u64(b, a->job);
    ra__wb_pid(b, a->pid);
    ra__wb_u32(b, a->restarts);
    ra__wb_u8(b, a->detached);
    ra__wb_u64(b, (uint64_t)a->start_ms);
    ra__wb_u64(b, (uint64_t)a->end_ms);
    ra__wb_str(b, a->reason);
}

int
ra__rb_actor_rec(ra__rbuf_t *r, ra__actor_rec_t *a)
{
    a->state = ra__rb_u8(r);
    ra__rb_str(r, a->cls, sizeof a->cls);
    ra__rb_str(r, a->name, sizeof a->name);
    ra__rb_str(r, a->ns, sizeof a->ns);
    a->job = ra__rb_u64(r);
    a->pid = ra__rb_pid(r);
    a->restarts = ra__rb_u32(r);
    a->detached = ra__rb_u8(r) != 0;
    a->start_ms = (int64_t)ra__rb_u64(r);
    a->end_ms = (int64_t)ra__rb_u64(r);
    ra__rb_str(r, a->reason, sizeof a->reason);
    return r->bad || a->state > RA__ACTOR_DEAD ? RA_EBADMSG : 0;
}

static ra__hkey_t
key_hkey(const unsigned char *key)
{
    uint64_t a = 0, b = 0;
    for (int i = 0; i < 8; i++) {
        a = a << 8 | key[i];
        b = b << 8 | key[8 + i];
    }
    return (ra__hkey_t){a, b};
}

static void
batch_clear(ra__gcs_actors_t *g)
{
    for (size_t i = 0; i < g->batch.cap; i++) {
        if (ra__hmap_live(&g->batch, i)) {
            free(g->batch.v[i].val);
        }
    }
    ra__hmap_fini(&g->batch);
}

int
ra__gcs_actors_flush(ra__gcs_actors_t *g)
{
    size_t n = g->batch.n;
    if (n == 0) {
        return 0;
    }
    ra_tables_txn_t *txn = NULL;
    int rc = ra_tables_begin(g->t, &txn);
    for (size_t i = 0; rc == 0 && i < g->batch.cap; i++) {
        if (ra__hmap_live(&g->batch, i)) {
            const gpend_t *w = g->batch.v[i].val;
            rc = ra_table_put(g->t, txn, "actors", w->key, sizeof w->key,
                              w->val, w->len, 0);
        }
    }
    rc = rc == 0 ? ra_tables_commit(&txn) : rc;
    if (txn != NULL) {
        ra_tables_abort(&txn);
    }
    batch_clear(g);
    if (rc != 0) {
        ra_log_err("gcs", "cannot store %zu actor records: %s; `rayo list "
                   "actors` misses these changes (free space in the GCS's "
                   "session directory)", n, ra_strerror(rc));
    }
    return rc;
}

void
ra__gcs_actors_tick(ra__gcs_actors_t *g)
{
    g->flush_armed = false;
    (void)ra__gcs_actors_flush(g);
}

// arm_flush asks for an RA__GCS_ACTORS_FLUSH tick behind the messages
// queued now (once per batch).
static void
arm_flush(ra_ctx_t *ctx, ra__gcs_actors_t *g)
{
    if (g->flush_armed || ctx == NULL) {
        return;
    }
    uint8_t what = RA__GCS_ACTORS_FLUSH;
    g->flush_armed = ra__tick_self(ctx, &what, 1, 0) == 0;
}

// rec_store puts the record of key in the batch; it is committed now
// when the batch is full or no tick could be asked for.
static int
rec_store(ra_ctx_t *ctx, ra__gcs_actors_t *g, const unsigned char *key,
          const ra__actor_rec_t *a)
{
    ra__wbuf_t b = {0};
    ra__wb_actor_rec(&b, a);
    int rc = b.err;
    if (rc != 0) {
        ra__wb_free(&b);
        return rc;
    }
    gpend_t *w = malloc(sizeof *w + b.len);
    if (w == NULL) {
        ra__wb_free(&b);
        return RA_ENOMEM;
    }
    memcpy(w->key, key, sizeof w->key);
    w->len = b.len;
    memcpy(w->val, b.p, b.len);
    ra__wb_free(&b);
    gpend_t *old = ra__hmap_get(&g->batch, key_hkey(key));
    if (ra__hmap_put(&g->batch, key_hkey(key), w) != 0) {
        free(w);
        return RA_ENOMEM;
    }
    free(old);   // (replaced)
    arm_flush(ctx, g);
    if (g->batch.n >= BATCH_MAX || !g->flush_armed) {
        return ra__gcs_actors_flush(g);
    }
    return 0;
}

// rec_load reads the record of key: the batch's, else the table's.
static int
rec_load(ra__gcs_actors_t *g, const unsigned char *key, ra__actor_rec_t *a)
{
    const gpend_t *w = ra__hmap_get(&g->batch, key_hkey(key));
    if (w != NULL) {
        ra__rbuf_t r = {.p = w->val, .len = w->len};
        return ra__rb_actor_rec(&r, a);
    }
    void *val = NULL;
    size_t vlen = 0;
    int rc = ra_table_get(g->t, NULL, "actors", key, RA__ACTOR_KEY_LEN, &val,
                          &vlen);
    if (rc == 0) {
        ra__rbuf_t r = {.p = val, .len = vlen};
        rc = ra__rb_actor_rec(&r, a);
        free(val);
    }
    return rc;
}

static ra__hkey_t
pid_hkey(ra_pid_t pid)
{
    return (ra__hkey_t){(uint64_t)pid.node << 32 | pid.proc,
                        (uint64_t)pid.id << 32 | pid.gen};
}

static ra__hkey_t
mref_hkey(uint64_t mref)
{
    return (ra__hkey_t){mref, 0};
}

// watch_drop takes w out of the indexes, cancels its monitor (when ctx
// is given and the DOWN has not come) and frees it.
static void
watch_drop(ra_ctx_t *ctx, gwatches_t *ws, gwatch_t *w)
{
    (void)ra__hmap_del(&ws->by_key, key_hkey(w->key));
    if (ra__hmap_get(&ws->by_pid, pid_hkey(w->pid)) == w) {
        (void)ra__hmap_del(&ws->by_pid, pid_hkey(w->pid));
    }
    if (w->mref != 0) {
        (void)ra__hmap_del(&ws->by_mref, mref_hkey(w->mref));
        if (ctx != NULL) {
            ra_demonitor(ctx, w->mref);
        }
    }
    free(w);
}

static void
unwatch(ra_ctx_t *ctx, ra__gcs_actors_t *g, const unsigned char *key)
{
    gwatch_t *w = ra__hmap_get(&g->watched.by_key, key_hkey(key));
    if (w != NULL) {
        watch_drop(ctx, &g->watched, w);
    }
}

// watch monitors the instance pid of actor key (once per pid).
static void
watch(ra_ctx_t *ctx, ra__gcs_actors_t *g, const unsigned char *key,
      ra_pid_t pid)
{
    gwatches_t *ws = &g->watched;
    gwatch_t *w = ra__hmap_get(&ws->by_key, key_hkey(key));
    if (w != NULL) {
        if (ra_pid_eq(w->pid, pid)) {
            return;
        }
        watch_drop(ctx, ws, w);
    }
    if ((w = calloc(1, sizeof *w)) == NULL) {
        return;
    }
    memcpy(w->key, key, RA__ACTOR_KEY_LEN);
    w->pid = pid;
    if (ra__hmap_put(&ws->by_key, key_hkey(key), w) != 0) {
        free(w);
        return;
    }
    if (ra_monitor(ctx, pid, &w->mref) != 0 ||
        ra__hmap_put(&ws->by_mref, mref_hkey(w->mref), w) != 0 ||
        ra__hmap_put(&ws->by_pid, pid_hkey(pid), w) != 0) {
        watch_drop(ctx, ws, w);   // (a monitor not indexed is cancelled)
    }
}

typedef struct dead_ent {
    int64_t end_ms;
    unsigned char key[RA__ACTOR_KEY_LEN];
} dead_ent_t;

typedef struct dead_scan {
    dead_ent_t *v;
    size_t n, cap;
    bool nomem;
} dead_scan_t;

static int
collect_dead(void *user, const void *key, size_t klen, const void *val,
             size_t vlen)
{
    dead_scan_t *s = user;
    ra__rbuf_t r = {.p = val, .len = vlen};
    ra__actor_rec_t a;
    if (klen != RA__ACTOR_KEY_LEN || ra__rb_actor_rec(&r, &a) != 0 ||
        a.state != RA__ACTOR_DEAD) {
        return 0;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap != 0 ? s->cap * 2 : 1024;
        dead_ent_t *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            s->nomem = true;
            return 1;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].end_ms = a.end_ms;
    memcpy(s->v[s->n].key, key, RA__ACTOR_KEY_LEN);
    s->n++;
    return 0;
}

static int
older_first(const void *x, const void *y)
{
    const dead_ent_t *a = x, *b = y;
    if (a->end_ms != b->end_ms) {
        return a->end_ms < b->end_ms ? -1 : 1;
    }
    return memcmp(a->key, b->key, RA__ACTOR_KEY_LEN);
}

// prune deletes the records of the actors that ended first, down to
// dead_max, in one transaction.
static void
prune(ra__gcs_actors_t *g)
{
    if (ra__gcs_actors_flush(g) != 0) {
        return;
    }
    dead_scan_t s = {0};
    (void)ra_table_scan(g->t, NULL, "actors", NULL, 0, collect_dead, &s);
    if (s.nomem || s.n <= g->dead_max) {
        g->dead = s.nomem ? g->dead : s.n;
        free(s.v);
        return;
    }
    qsort(s.v, s.n, sizeof *s.v, older_first);
    size_t drop = s.n - g->dead_max;
    ra_tables_txn_t *txn = NULL;
    int rc = ra_tables_begin(g->t, &txn);
    for (size_t i = 0; rc == 0 && i < drop; i++) {
        rc = ra_table_delete(g->t, txn, "actors", s.v[i].key,
                             RA__ACTOR_KEY_LEN);
    }
    if (rc == 0) {
        rc = ra_tables_commit(&txn);
    } else {
        ra_tables_abort(&txn);
    }
    if (rc == 0) {
        g->dead = s.n - drop;
    } else {
        g->dead = s.n;
        ra_log_warn("gcs", "cannot drop the %zu oldest dead actors' "
                    "records: %s", drop, ra_strerror(rc));
    }
    free(s.v);
}

// dead_added counts a record that became DEAD, and prunes past the bound.
static void
dead_added(ra__gcs_actors_t *g)
{
    g->dead++;
    size_t slack = g->dead_max / 10 > 0 ? g->dead_max / 10 : 1;
    if (g->dead > g->dead_max + slack) {
        prune(g);
    }
}

// ended notes that the instance pid of actor key ended for a reason
// other than a kill (for killed_late).
static void
ended(ra__gcs_actors_t *g, const unsigned char *key, ra_pid_t pid,
      int64_t at_ms)
{
    gended_t *e = &g->ended[g->ended_next++ % ENDED_RING];
    memcpy(e->key, key, sizeof e->key);
    e->pid = pid;
    e->at_ms = at_ms;
}

// op_put records an owner's report: {u64 actor key, record}.  The sender
// is the owner (it names the record); start_ms and a higher restart
// count are kept from what is stored, and so is a DEAD record that says
// who killed the actor.
static int
op_put(ra_ctx_t *ctx, ra__gcs_actors_t *g, ra__rbuf_t *r)
{
    uint64_t akey = ra__rb_u64(r);
    ra__actor_rec_t a;
    memset(&a, 0, sizeof a);
    int rc = ra__rb_actor_rec(r, &a);
    if (rc != 0) {
        return rc;
    }
    ra_pid_t from = ra_sender(ctx);
    unsigned char key[RA__ACTOR_KEY_LEN];
    ra__actor_key(from.node, from.proc, akey, key);
    ra__actor_rec_t old;
    int64_t now = ra__wall_ms();
    bool have_old = rec_load(g, key, &old) == 0;
    if (have_old) {
        a.start_ms = old.start_ms;
        bool killed = strncmp(a.reason, "killed by", 9) == 0;
        if (a.state == RA__ACTOR_DEAD && old.state == RA__ACTOR_ALIVE &&
            !ra_pid_is_nil(old.pid) && !killed) {
            ended(g, key, old.pid, now);
        }
        if (a.state == RA__ACTOR_DEAD && old.state == RA__ACTOR_DEAD &&
            strncmp(old.reason, "killed by", 9) == 0) {
            return 0;   // the owner saw the end; the killer said why
        }
        if (old.restarts > a.restarts) {
            a.restarts = old.restarts;
        }
    } else {
        a.start_ms = now;
    }
    a.end_ms = a.state == RA__ACTOR_DEAD ? now : 0;
    bool was_dead = have_old && old.state == RA__ACTOR_DEAD;
    if ((rc = rec_store(ctx, g, key, &a)) != 0) {
        return rc;
    }
    if (a.state == RA__ACTOR_DEAD && !was_dead) {
        dead_added(g);
    } else if (a.state != RA__ACTOR_DEAD && was_dead && g->dead > 0) {
        g->dead--;
    }
    if (a.state == RA__ACTOR_ALIVE && !ra_pid_is_nil(a.pid)) {
        watch(ctx, g, key, a.pid);
    } else if (a.state == RA__ACTOR_DEAD) {
        unwatch(ctx, g, key);
    }
    return 0;
}

// killed_late: the kill of pid came after the GCS saw the instance end
// (the killed worker's exit can overtake the killer's word: they travel
// on different connections).  A record that ended that way in the last
// ENDED_KEEP_MS, and still says so, is set to "killed by".
static int
killed_late(ra_ctx_t *ctx, ra__gcs_actors_t *g, ra_pid_t pid,
            ra_pid_t from)
{
    int64_t now = ra__wall_ms();
    for (unsigned i = 0; i < ENDED_RING; i++) {
        gended_t *e = &g->ended[i];
        if (e->at_ms == 0 || !ra_pid_eq(e->pid, pid)) {
            continue;
        }
        int64_t age = now - e->at_ms;
        e->at_ms = 0;
        if (age > ENDED_KEEP_MS) {
            return RA_ENOENT;
        }
        ra__actor_rec_t a;
        if (rec_load(g, e->key, &a) != 0 || a.state != RA__ACTOR_DEAD ||
            !ra_pid_eq(a.pid, pid) ||
            strncmp(a.reason, "killed by", 9) == 0) {
            return 0;
        }
        snprintf(a.reason, sizeof a.reason, "killed by process %u.%u",
                 from.node, from.proc);
        return rec_store(ctx, g, e->key, &a);
    }
    return RA_ENOENT;
}

// op_killed: the sender killed the instance pid (ra_actor_kill on a
// handle it looked up, or its own): its record ends as killed.
static int
op_killed(ra_ctx_t *ctx, ra__gcs_actors_t *g, ra__rbuf_t *r)
{
    ra_pid_t pid = ra__rb_pid(r);
    if (r->bad) {
        return RA_EBADMSG;
    }
    gwatch_t *w = ra__hmap_get(&g->watched.by_pid, pid_hkey(pid));
    if (w != NULL) {
        unsigned char key[RA__ACTOR_KEY_LEN];
        memcpy(key, w->key, sizeof key);
        watch_drop(ctx, &g->watched, w);
        ra__actor_rec_t a;
        if (rec_load(g, key, &a) == 0 && a.state == RA__ACTOR_ALIVE) {
            ra_pid_t from = ra_sender(ctx);
            a.state = RA__ACTOR_DEAD;
            a.end_ms = ra__wall_ms();
            snprintf(a.reason, sizeof a.reason, "killed by process %u.%u",
                     from.node, from.proc);
            int rc = rec_store(ctx, g, key, &a);
            if (rc == 0) {
                dead_added(g);
            }
            return rc;
        }
        return 0;
    }
    return killed_late(ctx, g, pid, ra_sender(ctx));
}

static bool
put_key(ra__wbuf_t *b, const void *key, size_t klen)
{
    if (klen != RA__ACTOR_KEY_LEN) {
        return false;
    }
    ra__wb_raw(b, key, klen);
    return true;
}

static int
op_list(ra__gcs_actors_t *g, ra__wbuf_t *out)
{
    int rc = ra__gcs_actors_flush(g);
    if (rc != 0) {
        return rc;
    }
    return ra__gcs_scan_list(g->t, "actors", put_key, out);
}

bool
ra__gcs_actors_op(ra_ctx_t *ctx, ra__gcs_actors_t *g, uint8_t op,
                  ra__rbuf_t *r, ra__wbuf_t *out, int *rc)
{
    switch (op) {
    case RA__GCS_ACTOR_PUT:
        *rc = op_put(ctx, g, r);
        return true;
    case RA__GCS_ACTOR_LIST:
        *rc = op_list(g, out);
        return true;
    case RA__GCS_ACTOR_KILLED:
        *rc = op_killed(ctx, g, r);
        return true;
    default:
        return false;
    }
}

// why_ended says in words why an instance ended (a DOWN's reason).
static void
why_ended(ra_reason_t why, char *buf, size_t cap)
{
    if (why == RA_KILL || why == RA_KILLED) {
        snprintf(buf, cap, "killed");
    } else if (why == RA_NOCONNECTION) {
        snprintf(buf, cap, "its worker process or node was lost");
    } else if (why == RA_NOPROC) {
        snprintf(buf, cap, "its instance no longer exists");
    } else if (why == RA_NORMAL || why == RA_SHUTDOWN) {
        snprintf(buf, cap, "it ended");
    } else {
        char r[64];
        snprintf(buf, cap, "it ended (%s)", ra_reason_str(why, r, sizeof r));
    }
}

bool
ra__gcs_actors_down(ra_ctx_t *ctx, ra__gcs_actors_t *g, ra_msg_t *m,
                    ra__gcs_jobs_t *jobs)
{
    uint64_t mref;
    ra_pid_t pid;
    ra_reason_t why;
    if (ra_msg_kind(m) != RA_MSG_DOWN ||
        ra_msg_down_info(m, &mref, &pid, &why) != 0) {
        return false;
    }
    gwatch_t *w = mref != 0 ? ra__hmap_del(&g->watched.by_mref,
                                           mref_hkey(mref))
                            : NULL;
    if (w != NULL) {
        unsigned char key[RA__ACTOR_KEY_LEN];
        memcpy(key, w->key, sizeof key);
        w->mref = 0;   // (its DOWN came: nothing to cancel)
        watch_drop(ctx, &g->watched, w);
        ra__actor_rec_t a;
        if (rec_load(g, key, &a) == 0 && a.state == RA__ACTOR_ALIVE &&
            ra_pid_eq(a.pid, pid)) {
            a.state = RA__ACTOR_DEAD;
            a.end_ms = ra__wall_ms();
            if (!a.detached && a.job != 0 &&
                !ra__gcs_job_running(jobs, a.job)) {
                snprintf(a.reason, sizeof a.reason, "its owner's job %" PRIu64
                         " ended", a.job);
            } else {
                why_ended(why, a.reason, sizeof a.reason);
                ended(g, key, pid, a.end_ms);
            }
            if (rec_store(ctx, g, key, &a) == 0) {
                dead_added(g);
            }
        }
        return true;
    }
    return false;
}

typedef struct alive_scan {
    ra_ctx_t *ctx;
    ra__gcs_actors_t *g;
    unsigned n;
    size_t dead;
} alive_scan_t;

static int
find_alive(void *user, const void *key, size_t klen, const void *val,
           size_t vlen)
{
    alive_scan_t *s = user;
    ra__rbuf_t r = {.p = val, .len = vlen};
    ra__actor_rec_t a;
    if (klen == RA__ACTOR_KEY_LEN && ra__rb_actor_rec(&r, &a) == 0 &&
        a.state == RA__ACTOR_DEAD) {
        s->dead++;
    }
    if (klen == RA__ACTOR_KEY_LEN && ra__rb_actor_rec(&r, &a) == 0 &&
        a.state == RA__ACTOR_ALIVE && !ra_pid_is_nil(a.pid)) {
        // (Monitors only: no write inside the scan.)
        watch(s->ctx, s->g, key, a.pid);
        s->n++;
    }
    return 0;
}

void
ra__gcs_actors_reload(ra_ctx_t *ctx, ra__gcs_actors_t *g)
{
    alive_scan_t s = {ctx, g, 0, 0};
    (void)ra_table_scan(g->t, NULL, "actors", NULL, 0, find_alive, &s);
    g->dead = s.dead;
    if (g->dead > g->dead_max) {
        prune(g);
    }
    if (s.n > 0) {
        ra_log_info("gcs", "watching the %u actors an earlier GCS recorded "
                    "alive", s.n);
    }
}

int
ra__gcs_actors_new(ra__gcs_actors_t **out, ra_tables_t *t)
{
    ra__gcs_actors_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return RA_ENOMEM;
    }
    g->t = t;
    uint32_t v = ra__env_u32("RAYO_GCS_MAX_DEAD_ACTORS", 1, 100000000);
    g->dead_max = v != 0 ? v : DEAD_MAX;
    *out = g;
    return 0;
}

void
ra__gcs_actors_free(ra__gcs_actors_t **gp)
{
    ra__gcs_actors_t *g = *gp;
    if (g == NULL) {
        return;
    }
    batch_clear(g);
    gwatches_t *ws = &g->watched;
    for (size_t i = 0; i < ws->by_key.cap; i++) {
        if (ra__hmap_live(&ws->by_key, i)) {
            free(ws->by_key.v[i].val);
        }
    }
    ra__hmap_fini(&ws->by_key);
    ra__hmap_fini(&ws->by_mref);
    ra__hmap_fini(&ws->by_pid);
    free(g);
    *gp = NULL;
}

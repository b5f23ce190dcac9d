// gcs.c - the GCS: cluster metadata in LMDB tables (named actors per
// namespace, the internal key-value store, nodes, jobs).
//
// Each request is a ra_call with a codec body whose first byte is the
// operation (RA__GCS_*); each reply is {i32 status, ...}.  Every write is
// committed to LMDB before it is answered (one transaction each, or, for
// actor records and placement groups, one per batch: gcs_actors.c,
// gcs_pg.c), so a GCS restarted on the same directory finds what was
// written before it died.  The GCS holds metadata only:
// tasks and objects never pass through it (ownership keeps it off the hot
// path).
//
// Tables: "names" (key "ns\0name" -> {pid, str class, str endpoint, pid
// owner: the core that registered it, nil for a detached actor}), "kv"
// (key -> value);
// placement groups ("pgs", "pg_names") and the nodes they go on are kept
// by gcs_pg.c.
//
// The GCS actor runs under a supervisor of its own that restarts it in
// place, with the same pid ("kept up in place" below).
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_impl.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_supervisor.h"
#include "ra_table.h"

typedef struct gcs {
    ra_tables_t *t;
    ra__gcs_pgs_t *pgs;
    ra__gcs_jobs_t *jobs;
    ra__gcs_actors_t *actors;
    ra__gcs_tasks_t *tasks;
    unsigned incarnation;     // 0: the first; n: restarted in place n times
} gcs_t;

typedef struct scan_list {
    ra__wbuf_t *items;
    bool (*put_key)(ra__wbuf_t *b, const void *key, size_t klen);
    uint32_t n;
} scan_list_t;

static int
scan_list_one(void *user, const void *key, size_t klen, const void *val,
              size_t vlen)
{
    scan_list_t *l = user;
    if (l->put_key(l->items, key, klen)) {
        ra__wb_bytes(l->items, val, vlen);
        l->n++;
    }
    return 0;
}

int
ra__gcs_scan_list(ra_tables_t *t, const char *table,
                  bool (*put_key)(ra__wbuf_t *b, const void *key,
                                  size_t klen),
                  ra__wbuf_t *out)
{
    ra__wbuf_t items = {0};
    scan_list_t l = {.items = &items, .put_key = put_key};
    int rc = ra_table_scan(t, NULL, table, NULL, 0, scan_list_one, &l);
    if (rc == RA_ENOENT) {
        rc = 0;   // no such table yet: nothing recorded
    }
    if (rc == 0 && items.err == 0) {
        ra__wb_u32(out, l.n);
        ra__wb_raw(out, items.p, items.len);
    }
    rc = rc != 0 ? rc : items.err;
    ra__wb_free(&items);
    return rc;
}

static int
reply(ra_ctx_t *ctx, ra__wbuf_t *b)
{
    ra_msg_t *m = NULL;
    int rc = ra__wb_msg(b, RA__T_GCS, &m);
    if (rc == 0 && (rc = ra_reply(ctx, &m)) != 0) {
        ra_msg_unref(&m);
    }
    return rc;
}

static void
handle_op(ra_ctx_t *ctx, gcs_t *g, ra_msg_t *msg)
{
    ra__rbuf_t r;
    ra__rb_init(&r, msg);
    uint8_t op = ra__rb_u8(&r);
    char ns[RA__NAME_MAX + 1], name[RA__NAME_MAX + 1];
    char key[2 * RA__NAME_MAX + 2];
    ra__wbuf_t out = {0};
    int rc = 0;
    size_t klen, vlen;
    void *val = NULL;
    if (ra__gcs_pg_op(ctx, g->pgs, op, &r)) {
        return;
    }
    ra__wbuf_t body = {0};
    if (ra__gcs_jobs_op(ctx, g->jobs, op, &r, &body, &rc) ||
        ra__gcs_actors_op(ctx, g->actors, op, &r, &body, &rc) ||
        ra__gcs_tasks_op(ctx, g->tasks, op, &r, &body, &rc)) {
        if (rc == RA_EBADMSG) {
            ra_log_warn("gcs", "malformed request (op %u) refused", op);
        }
        ra__wb_u32(&out, (uint32_t)rc);
        if (rc == 0 && body.len > 0) {
            ra__wb_raw(&out, body.p, body.len);
        }
        ra__wb_free(&body);
        (void)reply(ctx, &out);
        return;
    }
    switch (op) {
    case RA__GCS_NAME_PUT: {
        ra__rb_str(&r, ns, sizeof ns);
        ra__rb_str(&r, name, sizeof name);
        ra_pid_t pid = ra__rb_pid(&r);
        char cls[RA__NAME_MAX + 1];
        ra__rb_str(&r, cls, sizeof cls);
        uint8_t replace = ra__rb_u8(&r);
        char ep[256] = "";
        bool detached = false;
        if (!r.bad && r.off < r.len) {
            ra__rb_str(&r, ep, sizeof ep);
        }
        if (!r.bad && r.off < r.len) {
            detached = ra__rb_u8(&r) != 0;
        }
        klen = ra__name_key(key, sizeof key, ns, name);
        if (r.bad || name[0] == '\0' || klen == 0) {
            rc = RA_EBADMSG;
            break;
        }
        ra__wbuf_t v = {0};
        ra__wb_pid(&v, pid);
        ra__wb_str(&v, cls);
        ra__wb_str(&v, ep);
        // Who owns it (after what lookups read): a lost owner's names
        // are released, but a detached actor has none.
        ra__wb_pid(&v, detached ? RA_PID_NIL : ra_sender(ctx));
        rc = v.err != 0 ? v.err
                        : ra_table_put(g->t, NULL, "names", key, klen, v.p,
                                       v.len,
                                       replace ? 0 : RA_TABLE_NOOVERWRITE);
        ra__wb_free(&v);
        // Nobody owns a detached actor to release its name: the GCS
        // watches its process instead (drop_names_at).
        uint64_t mref;
        ra_pid_t self = ra_self(ctx);
        if (rc == 0 && detached && !ra_pid_is_nil(pid) &&
            (pid.node != self.node || pid.proc != self.proc)) {
            (void)ra_link_monitor_node(ctx, pid.node, pid.proc, &mref);
        }
        break;
    }
    case RA__GCS_NAME_GET:
        ra__rb_str(&r, ns, sizeof ns);
        ra__rb_str(&r, name, sizeof name);
        klen = ra__name_key(key, sizeof key, ns, name);
        if (r.bad || klen == 0) {
            rc = RA_EBADMSG;
            break;
        }
        rc = ra_table_get(g->t, NULL, "names", key, klen, &val, &vlen);
        break;
    case RA__GCS_NAME_DEL:
        ra__rb_str(&r, ns, sizeof ns);
        ra__rb_str(&r, name, sizeof name);
        klen = ra__name_key(key, sizeof key, ns, name);
        if (r.bad || klen == 0) {
            rc = RA_EBADMSG;
            break;
        }
        rc = ra_table_delete(g->t, NULL, "names", key, klen);
        break;
    case RA__GCS_KV_PUT: {
        size_t kl, vl;
        const void *k = ra__rb_bytes(&r, &kl);
        const void *v = ra__rb_bytes(&r, &vl);
        rc = r.bad || kl == 0 ? RA_EBADMSG
                              : ra_table_put(g->t, NULL, "kv", k, kl, v, vl,
                                             0);
        break;
    }
    case RA__GCS_KV_GET: {
        size_t kl;
        const void *k = ra__rb_bytes(&r, &kl);
        rc = r.bad || kl == 0
                 ? RA_EBADMSG
                 : ra_table_get(g->t, NULL, "kv", k, kl, &val, &vlen);
        break;
    }
    default:
        rc = RA_EBADMSG;
        break;
    }
    if (rc == RA_EBADMSG) {
        ra_log_warn("gcs", "malformed request (op %u) refused", op);
    }
    ra__wb_u32(&out, (uint32_t)rc);
    if (val != NULL) {
        ra__wb_raw(&out, val, vlen);
        free(val);
    }
    (void)reply(ctx, &out);
}

// names_scan collects the keys of the names tied to a lost process: those
// it owned (a driver), or with detached_at, those of the detached actors
// (no owner) that lived in it.
typedef struct owned {
    ra_pid_t driver;          // the lost process
    bool detached_at;
    char (*keys)[2 * RA__NAME_MAX + 2];
    size_t *lens;
    size_t n, cap;
} owned_t;

static int
owned_add(owned_t *o, const void *key, size_t klen)
{
    if (klen > sizeof o->keys[0]) {
        return 0;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap != 0 ? 2 * o->cap : 16;
        void *k = realloc(o->keys, cap * sizeof o->keys[0]);
        if (k == NULL) {
            return 0;
        }
        o->keys = k;
        size_t *l = realloc(o->lens, cap * sizeof *l);
        if (l == NULL) {
            return 0;
        }
        o->lens = l;
        o->cap = cap;
    }
    memcpy(o->keys[o->n], key, klen);
    o->lens[o->n++] = klen;
    return 0;
}

// drop_keys deletes the names collected in o, and says so.
static void
drop_keys(gcs_t *g, owned_t *o, const char *whose)
{
    size_t dropped = 0;
    for (size_t i = 0; i < o->n; i++) {
        dropped += ra_table_delete(g->t, NULL, "names", o->keys[i],
                                   o->lens[i]) == 0;
    }
    if (dropped > 0) {
        ra_log_info("gcs", "%zu actor names %s (process %u.%u) released",
                    dropped, whose, o->driver.node, o->driver.proc);
    }
    free(o->keys);
    free(o->lens);
}

// name_rec reads the actor's pid and its owner (nil: detached) from a
// "names" record; false when it is malformed.
static bool
name_rec(const void *val, size_t vlen, ra_pid_t *pid, ra_pid_t *owner)
{
    ra__rbuf_t r = {.p = val, .len = vlen};
    char s[256];
    *pid = ra__rb_pid(&r);
    ra__rb_str(&r, s, sizeof s);
    ra__rb_str(&r, s, sizeof s);
    *owner = ra__rb_pid(&r);
    return !r.bad;
}

static int
names_scan(void *user, const void *key, size_t klen, const void *val,
           size_t vlen)
{
    owned_t *o = user;
    ra_pid_t pid, owner;
    bool ok = name_rec(val, vlen, &pid, &owner);
    ra_pid_t by = o->detached_at ? pid : owner;
    if (!ok || (o->detached_at && !ra_pid_is_nil(owner)) ||
        by.node != o->driver.node || by.proc != o->driver.proc) {
        return 0;
    }
    return owned_add(o, key, klen);
}

// drop_names_at releases the names of the detached actors of a process
// that was lost (the worker of a detached actor exits when it ends).
static void
drop_names_at(gcs_t *g, ra_pid_t proc)
{
    owned_t o = {.driver = proc, .detached_at = true};
    (void)ra_table_scan(g->t, NULL, "names", NULL, 0, names_scan, &o);
    drop_keys(g, &o, "of detached actors that ended");
}

// drop_names_of releases the names of the actors a lost driver made: its
// process is gone, and with it the actors it owned (a name would
// otherwise stay taken, pointing at nothing, until a restart).
static void
drop_names_of(gcs_t *g, ra_pid_t driver)
{
    owned_t o = {.driver = driver};
    (void)ra_table_scan(g->t, NULL, "names", NULL, 0, names_scan, &o);
    drop_keys(g, &o, "of the lost driver's actors");
}

// detached_scan collects the processes of the detached named actors
// (no owner), to watch them again.
typedef struct procs {
    ra_pid_t self;
    ra_pid_t *v;
    size_t n, cap;
} procs_t;

static int
detached_scan(void *user, const void *key, size_t klen, const void *val,
              size_t vlen)
{
    (void)key;
    (void)klen;
    procs_t *o = user;
    ra_pid_t pid, owner;
    if (!name_rec(val, vlen, &pid, &owner) || !ra_pid_is_nil(owner) ||
        ra_pid_is_nil(pid) ||
        (pid.node == o->self.node && pid.proc == o->self.proc)) {
        return 0;
    }
    for (size_t i = 0; i < o->n; i++) {
        if (o->v[i].node == pid.node && o->v[i].proc == pid.proc) {
            return 0;
        }
    }
    if (o->n == o->cap) {
        size_t cap = o->cap != 0 ? 2 * o->cap : 16;
        ra_pid_t *v = realloc(o->v, cap * sizeof *v);
        if (v == NULL) {
            return 0;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = pid;
    return 0;
}

// back_in_place runs first in a GCS that its supervisor restarted in this
// process (same pid, same link, same peers): it watches again what the
// ended one watched and kept only in memory, namely the drivers of
// running jobs and the processes of detached named actors (the ALIVE
// actors are watched again by ra__gcs_actors_reload), and asks this
// process's raylet to register its node again (the raylets of other nodes
// are asked when their next heartbeat comes, op_node_hb).  Tasks reported
// to the ended one are not in the new task table.
static void
back_in_place(ra_ctx_t *ctx, gcs_t *g)
{
    unsigned jobs = ra__gcs_jobs_rewatch(ctx, g->jobs);
    procs_t o = {.self = ra_self(ctx)};
    (void)ra_table_scan(g->t, NULL, "names", NULL, 0, detached_scan, &o);
    for (size_t i = 0; i < o.n; i++) {
        uint64_t mref;
        (void)ra_link_monitor_node(ctx, o.v[i].node, o.v[i].proc, &mref);
    }
    free(o.v);
    ra_log_warn("gcs", "the GCS (actor %u.%u.%u) was restarted in place by "
                "its supervisor (restart %u): tables reloaded, %u running "
                "jobs and %zu processes of detached actors watched again",
                ra_self(ctx).node, ra_self(ctx).proc, ra_self(ctx).id,
                g->incarnation, jobs, o.n);
    ra__cluster_t *c = ra__g;
    if (c != NULL && c->rt == ra_ctx_runtime(ctx) &&
        !ra_pid_is_nil(c->raylet)) {
        ra__gcs_ask_register(ctx, c->raylet);
    }
}

static int
gcs_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    gcs_t *g = state;
    switch (ra_msg_tag(msg)) {
    case RA__T_GCS:
        handle_op(ctx, g, msg);
        break;
    case RA__T_PG:
    case RA__T_TICK: {
        size_t len = 0;
        const uint8_t *p = ra_msg_data(msg, &len);
        uint8_t tick = ra_msg_tag(msg) == RA__T_TICK && len == 1 ? p[0] : 0;
        if (tick == RA__GCS_ACTORS_FLUSH) {
            ra__gcs_actors_tick(g->actors);
            break;
        }
        if (tick == RA__GCS_PG_RELOADED) {
            ra__gcs_actors_reload(ctx, g->actors);
            if (g->incarnation > 0) {
                back_in_place(ctx, g);
            }
        }
        ra__gcs_pg_msg(ctx, g->pgs, msg);
        break;
    }
    default: {
        ra_pid_t driver, lost;
        uint64_t mref;
        ra_reason_t why;
        if (ra__gcs_pg_down(ctx, g->pgs, msg) ||
            ra__gcs_actors_down(ctx, g->actors, msg, g->jobs)) {
            break;
        }
        if (ra__gcs_jobs_down(ctx, g->jobs, msg, &driver)) {
            drop_names_of(g, driver);
            ra__gcs_tasks_owner_gone(g->tasks, driver.node, driver.proc,
                                     "its driver ended before the task did");
        } else if (ra_msg_kind(msg) == RA_MSG_DOWN &&
                   ra_msg_down_info(msg, &mref, &lost, &why) == 0) {
            drop_names_at(g, lost);
        }
        break;
    }
    }
    return 0;
}

// gcs_close frees g and what it holds (each part may be missing).
static void
gcs_close(gcs_t *g)
{
    ra__gcs_pg_free(&g->pgs);
    ra__gcs_jobs_free(&g->jobs);
    ra__gcs_actors_free(&g->actors);
    ra__gcs_tasks_free(&g->tasks);
    ra_tables_close(&g->t);
    free(g);
}

static void
gcs_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)reason;
    gcs_t *g = state;
    ra__gcs_pg_flush(ctx, g->pgs);
    (void)ra__gcs_actors_flush(g->actors);
    gcs_close(g);
}

static const ra_behaviour_t gcs_beh = {
    .name = "rayo-gcs",
    .handle = gcs_handle,
    .terminate = gcs_terminate,
};

// tasks_max: how many tasks the task table keeps (RAYO_GCS_MAX_TASKS,
// 1 to 10,000,000; else RA__TASKS_MAX).
static size_t
tasks_max(void)
{
    uint32_t v = ra__env_u32("RAYO_GCS_MAX_TASKS", 1, 10000000);
    return v != 0 ? v : RA__TASKS_MAX;
}

// gcs_open opens the tables in dir and the GCS's state over them.
static int
gcs_open(const char *dir, bool in_place, gcs_t **out)
{
    gcs_t *g = calloc(1, sizeof *g);
    if (g == NULL) {
        return RA_ENOMEM;
    }
    // Names and KV are rewritten often and are cheap to lose only on
    // power loss, never corrupted: one fsync per commit, not two.
    ra_tables_opts_t o = {.durability = RA_DURABLE_DATA,
                          .map_size = (size_t)1 << 30};
    int rc = ra_tables_open(&g->t, dir, &o);
    if (rc != 0) {
        free(g);
        return rc;
    }
    if ((rc = ra__gcs_pg_new(&g->pgs, g->t)) != 0 ||
        (rc = ra__gcs_jobs_new(&g->jobs, g->t, in_place)) != 0 ||
        (rc = ra__gcs_actors_new(&g->actors, g->t)) != 0 ||
        (rc = ra__gcs_tasks_new(&g->tasks, tasks_max())) != 0) {
        gcs_close(g);
        return rc;
    }
    *out = g;
    return 0;
}

// ---- kept up in place: the GCS's supervisor ----
//
// The GCS runs under a supervisor of its own (one_for_one, permanent
// child, at most RA__KEEP_RESTARTS restarts in RA__KEEP_PERIOD_MS), in a slot of the
// runtime reserved for it: each incarnation has the same pid, the one that
// raylets, drivers and node files name, so a GCS restarted after it ended
// (a bug, an exit signal from a fault tool) is found where the last one
// was.  The new one reopens the tables (every write was committed) and
// watches again what the last one watched (back_in_place).  A supervisor
// that gives up ends, and the node daemon's watch stops the daemon for its
// own keeper (api.c).

struct ra__gcs_sys {
    char dir[1024];
    uint32_t slot;
    unsigned starts;          // the supervisor's thread only
    ra_pid_t pid;             // the same for every incarnation
};

// gcs_child_start is the GCS's start function (its supervisor runs it).
static int
gcs_child_start(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
                uint64_t *info)
{
    (void)extra;
    (void)info;
    ra__gcs_sys_t *s = arg;
    gcs_t *g = NULL;
    int rc = gcs_open(s->dir, s->starts > 0, &g);
    if (rc != 0) {
        ra_log_err("gcs", "cannot open the GCS tables in %s: %s", s->dir,
                   ra_strerror(rc));
        return rc;
    }
    g->incarnation = s->starts;
    // Groups taken over from an earlier run are watched from the GCS's
    // own thread (it has no context before it runs).
    uint8_t what = RA__GCS_PG_RELOADED;
    ra_pid_t pid;
    bool taken;
    if ((rc = ra__keep_spawn(sup, s->slot, &gcs_beh, g, &what, 1, &taken,
                             &pid)) != 0) {
        if (!taken) {
            gcs_close(g);
        }
        return rc;
    }
    s->starts++;
    s->pid = pid;
    *out = pid;
    return 0;
}

int
ra__gcs_start(ra_runtime_t *rt, const char *dir, ra__gcs_sys_t **sys,
              ra_pid_t *gcs, ra_pid_t *sup)
{
    ra__gcs_sys_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return RA_ENOMEM;
    }
    if (strlen(dir) >= sizeof s->dir) {
        free(s);
        return RA_EINVAL;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    int rc = ra__keep_start(rt, "gcs", gcs_child_start, s, &s->slot, sup);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *gcs = s->pid;
    *sys = s;
    return 0;
}

void
ra__gcs_sys_free(ra__gcs_sys_t **sys)
{
    free(*sys);
    *sys = NULL;
}

// The GCS's pid can change while a process runs: a head that is started
// again after it died has a new process.  gcs_mu guards c->gcs after
// ra_init for the processes of a tcp cluster, which find the new one at
// the GCS's endpoint.
static pthread_mutex_t gcs_mu = PTHREAD_MUTEX_INITIALIZER;

ra_pid_t
ra__gcs_pid(ra__cluster_t *c)
{
    pthread_mutex_lock(&gcs_mu);
    ra_pid_t p = c->gcs;
    pthread_mutex_unlock(&gcs_mu);
    return p;
}

// gcs_refresh dials the GCS's endpoint again and, when another process
// answers there now, takes its GCS.  True when the pid changed.
static bool
gcs_refresh(ra__cluster_t *c, ra_pid_t was)
{
    uint32_t node = 0, proc = 0;
    if (c->gcs_ep[0] == '\0' || c->link == NULL ||
        ra_link_connect(c->link, c->gcs_ep, 2000, &node, &proc) != 0) {
        return false;
    }
    ra_pid_t now = {node, proc, RA__GCS_LOCAL_ID, 0};
    if (ra_pid_eq(now, was)) {
        return false;
    }
    (void)ra_link_disconnect(c->link, was.node, was.proc);
    pthread_mutex_lock(&gcs_mu);
    c->gcs = now;
    pthread_mutex_unlock(&gcs_mu);
    ra_log_info("gcs", "the GCS is now %u.%u (the head was started again)",
                node, proc);
    return true;
}

static int
call_once(ra_ctx_t *ctx, ra_runtime_t *rt, ra_pid_t to, const ra__wbuf_t *req,
          int64_t timeout_ms, ra_msg_t **reply_out)
{
    ra_msg_t *m = NULL;
    int rc = ra_msg_new_bytes(&m, RA__T_GCS, req->p, req->len);
    if (rc != 0) {
        return rc;
    }
    if (ctx != NULL) {
        rc = ra_call(ctx, to, &m, timeout_ms, reply_out);
        ra_msg_unref(&m);
        return rc;
    }
    ra_ctx_t *scope = NULL;
    if ((rc = ra_scope_new(rt, &scope)) != 0) {
        ra_msg_unref(&m);
        return rc;
    }
    rc = ra_call(scope, to, &m, timeout_ms, reply_out);
    ra_msg_unref(&m);
    ra_scope_destroy(&scope);
    return rc;
}

typedef struct gcs_try {
    ra_ctx_t *ctx;
    ra__cluster_t *c;
    ra__wbuf_t *req;
    int64_t timeout_ms;
    ra_msg_t **reply;
} gcs_try_t;

static int
gcs_try(void *arg)
{
    gcs_try_t *t = arg;
    return call_once(t->ctx, t->c->rt, ra__gcs_pid(t->c), t->req,
                     t->timeout_ms, t->reply);
}

int
ra__gcs_call(ra_ctx_t *ctx, ra__wbuf_t *req, int64_t timeout_ms,
             ra_msg_t **reply_out)
{
    ra__cluster_t *c = ra__g;
    if (c == NULL) {
        ra__wb_free(req);
        return RA_ECLOSED;
    }
    if (req->err != 0) {
        int e = req->err;
        ra__wb_free(req);
        return e;
    }
    ra_pid_t to = ra__gcs_pid(c);
    gcs_try_t t = {ctx, c, req, timeout_ms, reply_out};
    int rc = gcs_try(&t);
    // A lost GCS may have come back in another process: ask again there.
    if ((rc == RA_ENOCONN || rc == RA_ENOPROC || rc == RA_ETIMEOUT) &&
        gcs_refresh(c, to)) {
        rc = gcs_try(&t);
    }
    // Its process answers but the GCS has ended: its supervisor restarts
    // it in place (same pid) within milliseconds; ask again meanwhile.
    rc = ra__kept_again(c, rc, gcs_try, &t, RA__KEPT_BACK_MS);
    ra__wb_free(req);
    return rc;
}

int
ra__gcs_call_status(ra_ctx_t *ctx, ra__wbuf_t *req, int64_t timeout_ms,
                    ra_msg_t **reply, ra__rbuf_t *r)
{
    int rc = ra__gcs_call(ctx, req, timeout_ms, reply);
    return rc != 0 ? rc : ra__reply_status(reply, r);
}

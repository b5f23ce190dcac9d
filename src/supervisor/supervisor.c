// supervisor.c - OTP supervisors as rayo actors.
//
// The supervisor is an ordinary actor that traps exits.  Children are
// linked to it (actors) or watched by the OS-process watcher (osproc.c);
// either way their end reaches the supervisor as a message, and everything
// it does happens in its own handler, one message at a time, as in OTP.
// Stopping a child waits for it with ra__await_exit, which keeps the
// scheduler thread running other actors (the child among them) meanwhile.
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../actor/actor_impl.h"
#include "ra_log.h"
#include "sup_impl.h"

#define TAG_REQ (-1103)   // an administration request: a sup_req_t *
#define TAG_RETRY (-1104) // try a failed restart again: the child's token

typedef struct child {
    char *id;
    ra_child_spec_t spec;   // id, argv and envp point at our copies
    char **argv;
    char **envp;
    void *extra;            // simple_one_for_one: the start argument
    ra_pid_t pid;           // running actor child
    int64_t ospid;          // running OS child
    uint64_t token;         // names this child in OSEXIT/RETRY messages
    ra_child_state_t state;
    size_t idx;             // position in sup_t.kids
} child_t;

// A map from a running actor child's pid to its child_t, so that the exit
// of one of 100,000 dynamic children costs O(1), not a scan.  Open
// addressing; key 0 is empty, key 1 a tombstone (pids have id >= 1, so a
// real key is never below 1 << 32).
typedef struct pidmap {
    uint64_t *keys;
    child_t **vals;
    size_t cap, n, tombs;
} pidmap_t;

typedef struct sup {
    ra_sup_flags_t flags;
    pidmap_t running;       // pid -> running actor child
    uint32_t intensity;
    uint64_t period_ns;
    child_t **kids;         // in start order
    size_t nkids, capkids;
    child_t *tmpl;          // simple_one_for_one template
    uint64_t *ring;         // restart times within the period
    size_t rhead, rcount, rcap;
    // Intensities too large for an exact ring use buckets instead: the
    // period cut into NBUCKETS slots, each counting its restarts.
    uint32_t *buckets;
    uint64_t bucket_ns, bucket_at; // slot width; start of the newest slot
    size_t bucket_head;
    uint64_t bucket_sum;
    ra_pid_t parent;
    uint64_t next_token;
    unsigned backoff_level;
    uint64_t rng;
} sup_t;

// ---- child specs ----

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
child_free(child_t *c)
{
    if (c != NULL) {
        free(c->id);
        ra__strv_free(c->argv);
        ra__strv_free(c->envp);
        free(c);
    }
}

static int64_t
shutdown_of(const ra_child_spec_t *s)
{
    if (s->shutdown_ms != RA_SHUTDOWN_DEFAULT) {
        return s->shutdown_ms;
    }
    return s->type == RA_SUPERVISOR ? RA_SHUTDOWN_INFINITY : 5000;
}

// Checks one spec; *why names the offending field.
static int
spec_problem(const ra_child_spec_t *s, const char **whyp)
{
    const char *why = NULL;
    int ways = (s->beh != NULL) + (s->start != NULL) + (s->argv != NULL);
    if (s->id == NULL || s->id[0] == '\0') {
        why = "missing id";
    } else if (strlen(s->id) > 255) {
        why = "id longer than 255 bytes";
    } else if (ways != 1) {
        why = "exactly one of beh, start and argv must be set";
    } else if (s->fork_server && s->argv == NULL) {
        why = "fork_server without argv";
    } else if (s->beh != NULL && s->beh->handle == NULL) {
        why = "behaviour without a handle callback";
    } else if (s->argv != NULL && (s->argv[0] == NULL || s->argv[0][0] == '\0')) {
        why = "argv without an executable";
    } else if ((unsigned)s->restart > RA_TEMPORARY) {
        why = "invalid restart type";
    } else if (s->shutdown_ms < RA_SHUTDOWN_BRUTAL) {
        why = "negative shutdown";
    } else if ((unsigned)s->type > RA_SUPERVISOR) {
        why = "invalid child type";
    } else if (s->significant && s->restart == RA_PERMANENT) {
        why = "significant with permanent";
    }
    *whyp = why;
    return why != NULL ? RA_EBADSPEC : 0;
}

// Checks one spec and logs the offending field.
static int
check_spec(const ra_child_spec_t *s)
{
    const char *why = NULL;
    int rc = spec_problem(s, &why);
    if (rc != 0) {
        ra_log_err("supervisor", "child spec '%s': %s",
                   s->id != NULL ? s->id : "(null)", why);
    }
    return rc;
}

static int
child_new(const ra_child_spec_t *s, child_t **out)
{
    child_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return RA_ENOMEM;
    }
    c->spec = *s;
    c->id = strdup(s->id);
    if (c->id == NULL ||
        (s->argv != NULL && (c->argv = ra__strv_copy(s->argv, NULL)) == NULL) ||
        (s->envp != NULL && (c->envp = ra__strv_copy(s->envp, NULL)) == NULL)) {
        child_free(c);
        return RA_ENOMEM;
    }
    c->spec.id = c->id;
    c->spec.argv = (const char *const *)c->argv;
    c->spec.envp = (const char *const *)c->envp;
    c->state = RA_CHILD_STOPPED;
    *out = c;
    return 0;
}

int
ra_sup_validate(const ra_sup_flags_t *flags, const ra_child_spec_t *specs,
                size_t n, const char **whyp)
{
    static const ra_sup_flags_t zero = {0};
    const ra_sup_flags_t *f = flags != NULL ? flags : &zero;
    const char *why = NULL;
    if ((unsigned)f->strategy > RA_SIMPLE_ONE_FOR_ONE) {
        why = "invalid strategy";
    } else if ((unsigned)f->auto_shutdown > RA_AUTO_ALL_SIGNIFICANT) {
        why = "invalid auto_shutdown";
    } else if (f->strategy == RA_SIMPLE_ONE_FOR_ONE && n != 1) {
        why = "simple_one_for_one needs exactly one child spec";
    } else if (f->strategy == RA_SIMPLE_ONE_FOR_ONE &&
               f->auto_shutdown != RA_AUTO_NEVER) {
        why = "simple_one_for_one with auto_shutdown";
    } else if (f->backoff_max_ms < f->backoff_min_ms &&
               f->backoff_max_ms != 0) {
        why = "backoff_max_ms below backoff_min_ms";
    } else if (n > 0 && specs == NULL) {
        why = "specs is NULL";
    }
    for (size_t i = 0; i < n && why == NULL; i++) {
        spec_problem(&specs[i], &why);
        for (size_t j = 0; j < i && why == NULL; j++) {
            if (strcmp(specs[i].id, specs[j].id) == 0) {
                why = "duplicate id";
            }
        }
    }
    if (whyp != NULL) {
        *whyp = why;
    }
    return why != NULL ? RA_EBADSPEC : 0;
}

static int
check_flags(const ra_sup_flags_t *f, const ra_child_spec_t *specs, size_t n)
{
    const char *why = NULL;
    int rc = ra_sup_validate(f, specs, n, &why);
    if (rc != 0) {
        ra_log_err("supervisor", "supervisor flags or specs: %s", why);
    }
    return rc;
}

// ---- the pid map ----

static uint64_t
pid_key(ra_pid_t p)
{
    return (uint64_t)p.id << 32 | p.gen;
}

static size_t
pidmap_slot(const pidmap_t *m, uint64_t key, bool *found)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ULL) >> 20) & mask;
    size_t tomb = SIZE_MAX;
    for (;;) {
        if (m->keys[i] == key) {
            *found = true;
            return i;
        }
        if (m->keys[i] == 0) {
            *found = false;
            return tomb != SIZE_MAX ? tomb : i;
        }
        if (m->keys[i] == 1 && tomb == SIZE_MAX) {
            tomb = i;
        }
        i = (i + 1) & mask;
    }
}

static int
pidmap_grow(pidmap_t *m)
{
    // Double when half full of members; otherwise just sweep tombstones.
    size_t cap = m->cap == 0 ? 16 : m->n * 2 > m->cap ? m->cap * 2 : m->cap;
    pidmap_t nm = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(child_t *)),
                   cap, 0, 0};
    if (nm.keys == NULL || nm.vals == NULL) {
        free(nm.keys);
        free(nm.vals);
        return RA_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] > 1) {
            bool found;
            size_t j = pidmap_slot(&nm, m->keys[i], &found);
            nm.keys[j] = m->keys[i];
            nm.vals[j] = m->vals[i];
            nm.n++;
        }
    }
    free(m->keys);
    free(m->vals);
    *m = nm;
    return 0;
}

static int
pidmap_put(pidmap_t *m, ra_pid_t pid, child_t *c)
{
    if ((m->n + m->tombs + 1) * 4 > m->cap * 3) {
        int rc = pidmap_grow(m);
        if (rc != 0) {
            return rc;
        }
    }
    bool found;
    size_t i = pidmap_slot(m, pid_key(pid), &found);
    if (!found) {
        if (m->keys[i] == 1) {
            m->tombs--;
        }
        m->n++;
    }
    m->keys[i] = pid_key(pid);
    m->vals[i] = c;
    return 0;
}

static void
pidmap_del(pidmap_t *m, ra_pid_t pid)
{
    if (m->cap == 0) {
        return;
    }
    bool found;
    size_t i = pidmap_slot(m, pid_key(pid), &found);
    if (found) {
        m->keys[i] = 1;
        m->vals[i] = NULL;
        m->n--;
        m->tombs++;
    }
}

static child_t *
pidmap_get(const pidmap_t *m, ra_pid_t pid)
{
    if (m->cap == 0) {
        return NULL;
    }
    bool found;
    size_t i = pidmap_slot(m, pid_key(pid), &found);
    return found ? m->vals[i] : NULL;
}

// ---- the supervisor's state ----

static void
sup_free(sup_t *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->nkids; i++) {
        child_free(s->kids[i]);
    }
    free(s->kids);
    free(s->running.keys);
    free(s->running.vals);
    child_free(s->tmpl);
    free(s->ring);
    free(s->buckets);
    free(s);
}

static int
kids_add(sup_t *s, child_t *c)
{
    if (s->nkids == s->capkids) {
        size_t cap = s->capkids ? s->capkids * 2 : 8;
        child_t **v = realloc(s->kids, cap * sizeof(*v));
        if (v == NULL) {
            return RA_ENOMEM;
        }
        s->kids = v;
        s->capkids = cap;
    }
    c->token = ++s->next_token;
    c->idx = s->nkids;
    s->kids[s->nkids++] = c;
    return 0;
}

static void
kids_remove(sup_t *s, child_t *c)
{
    size_t i = c->idx;
    if (c->state == RA_CHILD_RUNNING && !ra_pid_is_nil(c->pid)) {
        pidmap_del(&s->running, c->pid);
    }
    if (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE) {
        // Dynamic children have no order to keep: move the last one here.
        s->kids[i] = s->kids[--s->nkids];
        s->kids[i]->idx = i;
    } else {
        memmove(&s->kids[i], &s->kids[i + 1],
                (s->nkids - i - 1) * sizeof(*s->kids));
        s->nkids--;
        for (size_t k = i; k < s->nkids; k++) {
            s->kids[k]->idx = k;
        }
    }
    child_free(c);
}

static child_t *
find_id(sup_t *s, const char *id)
{
    for (size_t i = 0; i < s->nkids; i++) {
        if (strcmp(s->kids[i]->id, id) == 0) {
            return s->kids[i];
        }
    }
    return NULL;
}

static child_t *
find_pid(sup_t *s, ra_pid_t pid)
{
    child_t *c = pidmap_get(&s->running, pid);
    return c != NULL && c->state == RA_CHILD_RUNNING ? c : NULL;
}

static child_t *
find_token(sup_t *s, uint64_t token)
{
    for (size_t i = 0; i < s->nkids; i++) {
        if (s->kids[i]->token == token) {
            return s->kids[i];
        }
    }
    return NULL;
}

static size_t
index_of(sup_t *s, child_t *c)
{
    (void)s;
    return c->idx;
}

// ---- events ----

static void
event(ra_ctx_t *ctx, sup_t *s, const char *what, child_t *c,
      ra_reason_t reason)
{
    if (ra_pid_is_nil(s->flags.events)) {
        return;
    }
    char sp[RA_PID_STRLEN], cp[RA_PID_STRLEN];
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "sup", ra_pid_str(ra_self(ctx), sp));
    BSON_APPEND_UTF8(&doc, "event", what);
    if (c != NULL) {
        BSON_APPEND_UTF8(&doc, "id", c->id);
        if (c->spec.argv != NULL) {
            BSON_APPEND_INT64(&doc, "ospid", c->ospid);
        } else {
            BSON_APPEND_UTF8(&doc, "pid", ra_pid_str(c->pid, cp));
        }
    }
    BSON_APPEND_INT64(&doc, "reason", reason);
    ra_msg_t *m = NULL;
    if (ra_msg_new_bson(&m, RA_TAG_SUP_EVENT, &doc) == 0 &&
        ra_send(ctx, s->flags.events, &m) != 0) {
        ra_msg_unref(&m);
    }
    bson_destroy(&doc);
}

// ---- starting and stopping children ----

static int
start_child(ra_ctx_t *ctx, sup_t *s, child_t *c, uint64_t *info)
{
    int rc;
    ra_pid_t pid = RA_PID_NIL;
    uint64_t dummy = 0;
    if (info == NULL) {
        info = &dummy;
    }
    if (c->spec.argv != NULL) {
        pid_t ospid = 0;
        rc = ra__os_spawn(ra_ctx_runtime(ctx), ra_self(ctx),
                          c->spec.argv, c->spec.envp, c->spec.fork_server,
                          c->token, &ospid);
        if (rc == 0) {
            c->ospid = ospid;
        }
    } else if (c->spec.beh != NULL) {
        ra_spawn_opts_t o = {.flags = RA_SPAWN_LINK};
        void *arg = c->extra != NULL ? c->extra : c->spec.arg;
        rc = ra_spawn_from(ctx, c->spec.beh, arg, &o, &pid, NULL);
    } else {
        rc = c->spec.start(ctx, c->spec.start_arg, c->extra, &pid, info);
    }
    if (rc == RA_CHILD_IGNORE) {
        c->state = RA_CHILD_STOPPED;
        c->pid = RA_PID_NIL;
        return RA_CHILD_IGNORE;
    }
    if (rc != 0) {
        char why[64];
        ra_log_warn("supervisor", "child '%s' failed to start: %s", c->id,
                    ra_reason_str(rc, why, sizeof(why)));
        c->state = RA_CHILD_STOPPED;
        return rc;
    }
    c->pid = pid;
    c->state = RA_CHILD_RUNNING;
    if (!ra_pid_is_nil(pid) && pidmap_put(&s->running, pid, c) != 0) {
        ra_log_err("supervisor", "out of memory tracking child '%s'", c->id);
    }
    event(ctx, s, "started", c, 0);
    return 0;
}

// Stops one running child by its shutdown setting.  Actor children are
// unlinked first, so their end sends us no EXIT.
static void
stop_child(ra_ctx_t *ctx, sup_t *s, child_t *c)
{
    if (c->state != RA_CHILD_RUNNING) {
        c->state = RA_CHILD_STOPPED;
        return;
    }
    int64_t t = shutdown_of(&c->spec);
    if (c->spec.argv != NULL) {
        ra__os_stop((pid_t)c->ospid,
                    t == RA_SHUTDOWN_BRUTAL ? 0 : t, NULL);
        c->ospid = 0;
    } else if (!ra_pid_is_nil(c->pid)) {
        ra_unlink(ctx, c->pid);
        if (t == RA_SHUTDOWN_BRUTAL) {
            ra_exit_pid(ctx, c->pid, RA_KILL);
        } else {
            ra_exit_pid(ctx, c->pid, RA_SHUTDOWN);
            if (ra__await_exit(ctx, c->pid, t) == RA_ETIMEOUT) {
                ra_log_warn("supervisor", "child '%s' ignored shutdown for "
                            "%" PRId64 " ms: killed", c->id, t);
                ra_exit_pid(ctx, c->pid, RA_KILL);
            }
        }
        ra__await_exit(ctx, c->pid, -1);
    }
    event(ctx, s, "exited", c, RA_SHUTDOWN);
    pidmap_del(&s->running, c->pid);
    c->pid = RA_PID_NIL;
    c->state = RA_CHILD_STOPPED;
}

// Stops children [from, nkids) in reverse order; temporary ones are
// dropped.  simple_one_for_one children are stopped in parallel.
static void
stop_range(ra_ctx_t *ctx, sup_t *s, size_t from)
{
    if (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE) {
        // Parallel: ask all to stop, then wait with one common deadline.
        int64_t t = shutdown_of(&s->tmpl->spec);
        for (size_t i = from; i < s->nkids; i++) {
            child_t *c = s->kids[i];
            if (c->state == RA_CHILD_RUNNING && c->spec.argv == NULL) {
                ra_unlink(ctx, c->pid);
                ra_exit_pid(ctx, c->pid,
                            t == RA_SHUTDOWN_BRUTAL ? RA_KILL : RA_SHUTDOWN);
            }
        }
        uint64_t deadline = t > 0 ? now_ns() + (uint64_t)t * 1000000u : 0;
        for (size_t i = s->nkids; i-- > from;) {
            child_t *c = s->kids[i];
            if (c->state == RA_CHILD_RUNNING && c->spec.argv == NULL) {
                if (t > 0) {
                    uint64_t now = now_ns();
                    int64_t left = deadline > now
                                       ? (int64_t)((deadline - now) / 1000000u)
                                       : 0;
                    if (ra__await_exit(ctx, c->pid, left) == RA_ETIMEOUT) {
                        ra_exit_pid(ctx, c->pid, RA_KILL);
                    }
                }
                ra__await_exit(ctx, c->pid, -1);
                event(ctx, s, "exited", c, RA_SHUTDOWN);
                pidmap_del(&s->running, c->pid);
                c->state = RA_CHILD_STOPPED;
            } else if (c->state == RA_CHILD_RUNNING) {
                stop_child(ctx, s, c);
            }
        }
        while (s->nkids > from) {
            kids_remove(s, s->kids[s->nkids - 1]); // the last: O(1)
        }
        return;
    }
    for (size_t i = s->nkids; i-- > from;) {
        child_t *c = s->kids[i];
        stop_child(ctx, s, c);
        if (c->spec.restart == RA_TEMPORARY) {
            kids_remove(s, c);
        }
    }
}

// ---- restarts ----

// Records a restart; false when more than intensity restarts fall within
// the period.  The ring keeps only the times inside the window, so the
// check costs the same after a million restarts as after ten (Erlang's
// supervisor scans a list here and slows down as restarts accumulate).
#define RING_MAX 4096
#define NBUCKETS 1024

static bool
note_restart_buckets(sup_t *s, uint64_t now)
{
    // Advance the window to now, clearing the slots that fell out of it.
    if (s->bucket_at == 0) {
        s->bucket_at = now;
    }
    while (now - s->bucket_at >= s->bucket_ns) {
        s->bucket_head = (s->bucket_head + 1) % NBUCKETS;
        s->bucket_sum -= s->buckets[s->bucket_head];
        s->buckets[s->bucket_head] = 0;
        s->bucket_at += s->bucket_ns;
        if (s->bucket_sum == 0) {
            s->bucket_at = now; // skip a long quiet gap at once
            s->backoff_level = 0;
        }
    }
    s->buckets[s->bucket_head]++;
    s->bucket_sum++;
    return s->bucket_sum <= s->intensity;
}

static bool
note_restart(sup_t *s)
{
    uint64_t now = now_ns();
    if (s->buckets != NULL) {
        return note_restart_buckets(s, now);
    }
    while (s->rcount > 0 &&
           now - s->ring[s->rhead] > s->period_ns) {
        s->rhead = (s->rhead + 1) % s->rcap;
        s->rcount--;
    }
    if (s->rcount == 0) {
        s->backoff_level = 0; // a quiet period: start the backoff over
    }
    if (s->rcount == s->rcap) { // full: intensity + 1 already in window
        return false;
    }
    s->ring[(s->rhead + s->rcount) % s->rcap] = now;
    s->rcount++;
    return s->rcount <= s->intensity;
}

static uint64_t
backoff_ms(sup_t *s)
{
    if (s->flags.backoff_min_ms == 0) {
        return 0;
    }
    uint64_t d = s->flags.backoff_min_ms;
    for (unsigned i = 0; i < s->backoff_level && d < UINT32_MAX; i++) {
        d *= 2;
    }
    uint64_t cap = s->flags.backoff_max_ms ? s->flags.backoff_max_ms
                                           : UINT32_MAX;
    if (d > cap) {
        d = cap;
    }
    // Jitter of up to a quarter, so restarts of many children spread out.
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t j = d / 4 ? (s->rng >> 33) % (d / 4 + 1) : 0;
    if (s->backoff_level < 32) {
        s->backoff_level++;
    }
    return d - d / 8 + j;
}

static void
schedule_retry(ra_ctx_t *ctx, sup_t *s, child_t *c, uint64_t delay)
{
    c->state = RA_CHILD_RESTARTING;
    event(ctx, s, "restarting", c, 0);
    ra_msg_t *m = NULL;
    if (ra_msg_new_bytes(&m, TAG_RETRY, &c->token, sizeof(c->token)) != 0) {
        return;
    }
    int rc = delay > 0
                 ? ra_send_after(ra_ctx_runtime(ctx), ra_self(ctx), delay, &m,
                                 NULL)
                 : ra_send(ctx, ra_self(ctx), &m);
    if (rc != 0) {
        ra_msg_unref(&m);
    }
}

static void give_up(ra_ctx_t *ctx, sup_t *s, ra_reason_t reason);

// Restarts children [first, nkids) that are not running, or only c for
// one_for_one.  A child that fails to start is retried later.
static void
restart_from(ra_ctx_t *ctx, sup_t *s, size_t first, size_t last)
{
    for (size_t i = first; i < last && i < s->nkids; i++) {
        child_t *c = s->kids[i];
        if (c->state == RA_CHILD_RUNNING) {
            continue;
        }
        int rc = start_child(ctx, s, c, NULL);
        if (rc == 0) {
            event(ctx, s, "restarted", c, 0);
        } else if (rc < 0) {
            // Those after it wait for it (rest_for_one, one_for_all).
            for (size_t k = i; k < last && k < s->nkids; k++) {
                s->kids[k]->state = s->kids[k]->state == RA_CHILD_RUNNING
                                        ? RA_CHILD_RUNNING
                                        : RA_CHILD_RESTARTING;
            }
            schedule_retry(ctx, s, c, backoff_ms(s));
            return;
        }
    }
}

// Stops what the strategy says must go with c and starts them again.
static void
apply_strategy(ra_ctx_t *ctx, sup_t *s, child_t *c)
{
    size_t i = index_of(s, c);
    switch (s->flags.strategy) {
    case RA_ONE_FOR_ALL:
        stop_range(ctx, s, 0);
        restart_from(ctx, s, 0, s->nkids);
        break;
    case RA_REST_FOR_ONE:
        stop_range(ctx, s, i + 1);
        restart_from(ctx, s, index_of(s, c), s->nkids);
        break;
    default:
        restart_from(ctx, s, i, i + 1);
        break;
    }
}

// Child c needs a restart: count it against the intensity (or give up),
// then apply the strategy, now or after the backoff delay.
static void
restart(ra_ctx_t *ctx, sup_t *s, child_t *c)
{
    uint64_t delay = backoff_ms(s);
    if (delay > 0) {
        schedule_retry(ctx, s, c, delay); // counted when it fires
        return;
    }
    if (!note_restart(s)) {
        give_up(ctx, s, RA_SHUTDOWN);
        return;
    }
    apply_strategy(ctx, s, c);
}

static void
give_up(ra_ctx_t *ctx, sup_t *s, ra_reason_t reason)
{
    ra_log_err("supervisor", "too many restarts (more than %" PRIu32
               " in %" PRIu64 " ms): giving up", s->intensity,
               s->period_ns / 1000000u);
    stop_range(ctx, s, 0);
    event(ctx, s, "gave_up", NULL, reason);
    ra_exit(ctx, reason);
}

// A running child ended by itself with reason.
static void
child_exited(ra_ctx_t *ctx, sup_t *s, child_t *c, ra_reason_t reason)
{
    event(ctx, s, "exited", c, reason);
    pidmap_del(&s->running, c->pid);
    c->pid = RA_PID_NIL;
    c->ospid = 0;
    c->state = RA_CHILD_STOPPED;
    bool again = c->spec.restart == RA_PERMANENT ||
                 (c->spec.restart == RA_TRANSIENT && !RA_IS_CLEAN_EXIT(reason));
    if (again) {
        restart(ctx, s, c);
        return;
    }
    bool significant = c->spec.significant;
    if (c->spec.restart == RA_TEMPORARY ||
        s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE) {
        kids_remove(s, c);
    }
    if (!significant || s->flags.auto_shutdown == RA_AUTO_NEVER) {
        return;
    }
    if (s->flags.auto_shutdown == RA_AUTO_ALL_SIGNIFICANT) {
        for (size_t i = 0; i < s->nkids; i++) {
            if (s->kids[i]->spec.significant &&
                s->kids[i]->state != RA_CHILD_STOPPED) {
                return;
            }
        }
    }
    stop_range(ctx, s, 0);
    event(ctx, s, "auto_shutdown", NULL, RA_SHUTDOWN);
    ra_exit(ctx, RA_SHUTDOWN);
}

// ---- administration ----

enum {
    OP_START = 1,
    OP_TERMINATE,
    OP_RESTART,
    OP_DELETE,
    OP_WHICH,
    OP_COUNT,
    OP_GETSPEC,
    OP_STOP
};

typedef struct sup_req {
    int op;
    const char *id;
    ra_pid_t pid;
    const ra_child_spec_t *spec;
    void *extra;
    ra_child_info_t *infos;
    size_t cap;
    size_t n;
    ra_child_counts_t *counts;
    ra_child_spec_t *spec_out;
    ra_pid_t out;
    int rc;
} sup_req_t;

static int
op_start(ra_ctx_t *ctx, sup_t *s, sup_req_t *r)
{
    child_t *c = NULL;
    int rc;
    if (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE) {
        rc = child_new(&s->tmpl->spec, &c);
        if (rc == 0) {
            c->extra = r->extra;
        }
    } else {
        if (r->spec == NULL) {
            return RA_EINVAL;
        }
        if ((rc = check_spec(r->spec)) != 0) {
            return rc;
        }
        child_t *old = find_id(s, r->spec->id);
        if (old != NULL) {
            return old->state == RA_CHILD_STOPPED ? RA_EEXIST : RA_EALREADY;
        }
        rc = child_new(r->spec, &c);
    }
    if (rc != 0 || (rc = kids_add(s, c)) != 0) {
        child_free(c);
        return rc;
    }
    rc = start_child(ctx, s, c, NULL);
    r->out = c->pid;
    if (rc < 0 || (rc == RA_CHILD_IGNORE &&
                   (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE ||
                    c->spec.restart == RA_TEMPORARY))) {
        kids_remove(s, c);
    }
    return rc;
}

static int
op_terminate(ra_ctx_t *ctx, sup_t *s, sup_req_t *r)
{
    child_t *c = s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE
                     ? find_pid(s, r->pid)
                     : (r->id != NULL ? find_id(s, r->id) : NULL);
    if (c == NULL) {
        return RA_ENOENT;
    }
    stop_child(ctx, s, c);
    if (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE ||
        c->spec.restart == RA_TEMPORARY) {
        kids_remove(s, c);
    }
    return 0;
}

// Finds the stopped static child a restart or delete request names.
static int
stopped_child(sup_t *s, sup_req_t *r, child_t **out)
{
    if (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE) {
        return RA_ENOTSUP;
    }
    child_t *c = r->id != NULL ? find_id(s, r->id) : NULL;
    if (c == NULL) {
        return RA_ENOENT;
    }
    if (c->state == RA_CHILD_RUNNING) {
        return RA_ERUNNING;
    }
    if (c->state == RA_CHILD_RESTARTING) {
        return RA_ERESTARTING;
    }
    *out = c;
    return 0;
}

static int
op_restart(ra_ctx_t *ctx, sup_t *s, sup_req_t *r)
{
    child_t *c = NULL;
    int rc = stopped_child(s, r, &c);
    if (rc == 0) {
        rc = start_child(ctx, s, c, NULL);
        r->out = c->pid;
    }
    return rc;
}

static int
op_delete(sup_t *s, sup_req_t *r)
{
    child_t *c = NULL;
    int rc = stopped_child(s, r, &c);
    if (rc == 0) {
        kids_remove(s, c);
    }
    return rc;
}

static void
op_which(sup_t *s, sup_req_t *r)
{
    r->n = s->nkids;
    for (size_t i = 0; i < s->nkids && i < r->cap; i++) {
        child_t *c = s->kids[i];
        ra_child_info_t *o = &r->infos[i];
        memset(o, 0, sizeof(*o));
        if (s->flags.strategy != RA_SIMPLE_ONE_FOR_ONE) {
            snprintf(o->id, sizeof(o->id), "%s", c->id);
        }
        o->pid = c->pid;
        o->ospid = c->ospid;
        o->type = c->spec.type;
        o->state = c->state;
        o->os_process = c->spec.argv != NULL;
    }
}

static void
op_count(sup_t *s, sup_req_t *r)
{
    ra_child_counts_t k = {0};
    for (size_t i = 0; i < s->nkids; i++) {
        child_t *c = s->kids[i];
        k.specs++;
        k.active += c->state == RA_CHILD_RUNNING;
        if (c->spec.type == RA_SUPERVISOR) {
            k.supervisors++;
        } else {
            k.workers++;
        }
    }
    if (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE) {
        k.specs = 1; // as OTP: the template is the one spec
    }
    *r->counts = k;
}

static int
handle_req(ra_ctx_t *ctx, sup_t *s, sup_req_t *r)
{
    switch (r->op) {
    case OP_START:
        return op_start(ctx, s, r);
    case OP_TERMINATE:
        return op_terminate(ctx, s, r);
    case OP_RESTART:
        return op_restart(ctx, s, r);
    case OP_DELETE:
        return op_delete(s, r);
    case OP_WHICH:
        op_which(s, r);
        return 0;
    case OP_COUNT:
        op_count(s, r);
        return 0;
    case OP_GETSPEC: {
        child_t *c = s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE
                         ? s->tmpl
                         : (r->id != NULL ? find_id(s, r->id) : NULL);
        if (c == NULL) {
            return RA_ENOENT;
        }
        *r->spec_out = c->spec;
        return 0;
    }
    case OP_STOP:
        stop_range(ctx, s, 0);
        ra_exit(ctx, RA_SHUTDOWN);
        return 0;
    default:
        return RA_EINVAL;
    }
}

// ---- the behaviour ----

static int
sup_init(ra_ctx_t *ctx, void **state)
{
    sup_t *s = *state;
    if (s->flags.strategy == RA_SIMPLE_ONE_FOR_ONE) {
        return 0; // no static children
    }
    for (size_t i = 0; i < s->nkids; i++) {
        int rc = start_child(ctx, s, s->kids[i], NULL);
        if (rc < 0) {
            // Clean up the ones already started, in reverse order.
            for (size_t k = i; k-- > 0;) {
                stop_child(ctx, s, s->kids[k]);
            }
            return rc;
        }
        if (rc == RA_CHILD_IGNORE && s->kids[i]->spec.restart == RA_TEMPORARY) {
            kids_remove(s, s->kids[i]);
            i--;
        }
    }
    return 0;
}

static int
sup_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    sup_t *s = state;
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    if (ra_msg_kind(msg) == RA_MSG_EXIT) {
        ra_pid_t from;
        ra_reason_t reason;
        ra_msg_exit_info(msg, &from, &reason);
        if (!ra_pid_is_nil(s->parent) && ra_pid_eq(from, s->parent)) {
            stop_range(ctx, s, 0);
            ra_exit(ctx, reason);
            return 0;
        }
        child_t *c = find_pid(s, from);
        if (c != NULL) {
            child_exited(ctx, s, c, reason);
        }
        return 0; // a child we already let go of, or a stranger
    }
    if (ra_msg_kind(msg) != RA_MSG_BYTES) {
        return 0;
    }
    switch (ra_msg_tag(msg)) {
    case TAG_REQ: {
        sup_req_t *r;
        if (len != sizeof(r)) {
            return 0;
        }
        memcpy(&r, data, sizeof(r));
        r->rc = handle_req(ctx, s, r);
        ra_msg_t *reply = NULL;
        if (ra_msg_new_bytes(&reply, 0, NULL, 0) == 0 &&
            ra_reply(ctx, &reply) != 0) {
            ra_msg_unref(&reply);
        }
        return 0;
    }
    case RA__TAG_OSEXIT: {
        ra__osexit_t e;
        if (len != sizeof(e)) {
            return 0;
        }
        memcpy(&e, data, sizeof(e));
        // The ospid check drops the exit of an earlier run of the same
        // child, queued while the supervisor was busy restarting it.
        child_t *c = find_token(s, e.token);
        if (c != NULL && c->state == RA_CHILD_RUNNING && c->ospid == e.ospid) {
            child_exited(ctx, s, c, ra__os_reason(e.status));
        }
        return 0;
    }
    case TAG_RETRY: {
        uint64_t token;
        if (len != sizeof(token)) {
            return 0;
        }
        memcpy(&token, data, sizeof(token));
        child_t *c = find_token(s, token);
        if (c == NULL || c->state != RA_CHILD_RESTARTING) {
            return 0;
        }
        // Every try counts against the intensity, as in OTP.
        if (!note_restart(s)) {
            give_up(ctx, s, RA_SHUTDOWN);
            return 0;
        }
        apply_strategy(ctx, s, c);
        return 0;
    }
    default:
        return 0;
    }
}

static void
sup_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    sup_t *s = state;
    (void)ctx;
    (void)reason;
    // Killed or ended without stopping its children: actor children follow
    // through their links; OS processes have no link, so end them here.
    for (size_t i = s->nkids; i-- > 0;) {
        child_t *c = s->kids[i];
        if (c->state == RA_CHILD_RUNNING && c->spec.argv != NULL) {
            ra__os_stop((pid_t)c->ospid, 0, NULL);
        }
    }
    sup_free(s);
}

static const ra_behaviour_t sup_behaviour = {"supervisor", sup_init,
                                             sup_handle, sup_terminate};

// ---- public API ----

int
ra_sup_start(ra_runtime_t *rt, ra_ctx_t *parent, const ra_sup_flags_t *flags,
             const ra_child_spec_t *specs, size_t n, ra_pid_t *out)
{
    ra_sup_flags_t f = {0};
    if (flags != NULL) {
        f = *flags;
    }
    if (rt == NULL) {
        return RA_EINVAL;
    }
    int rc = check_flags(&f, specs, n);
    if (rc != 0) {
        return rc;
    }
    sup_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return RA_ENOMEM;
    }
    s->flags = f;
    s->intensity = f.period_ms > 0 ? f.intensity : 1;
    s->period_ns = (uint64_t)(f.period_ms > 0 ? f.period_ms : 5000) * 1000000u;
    if (s->intensity < RING_MAX) {
        s->rcap = (size_t)s->intensity + 1;
        s->ring = calloc(s->rcap, sizeof(*s->ring));
    } else {
        s->buckets = calloc(NBUCKETS, sizeof(*s->buckets));
        s->bucket_ns = s->period_ns / NBUCKETS ? s->period_ns / NBUCKETS : 1;
    }
    s->rng = now_ns() | 1;
    s->parent = parent != NULL ? ra_self(parent) : RA_PID_NIL;
    if (s->ring == NULL && s->buckets == NULL) {
        sup_free(s);
        return RA_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        child_t *c = NULL;
        rc = child_new(&specs[i], &c);
        if (rc == 0 && f.strategy == RA_SIMPLE_ONE_FOR_ONE) {
            s->tmpl = c;
        } else if (rc == 0 && (rc = kids_add(s, c)) != 0) {
            child_free(c);
        }
    }
    if (rc != 0) {
        sup_free(s);
        return rc;
    }
    ra_spawn_opts_t o = {.flags = RA_SPAWN_TRAP_EXIT};
    ra_pid_t pid = RA_PID_NIL;
    if (parent != NULL) {
        o.flags |= RA_SPAWN_LINK;
        rc = ra_spawn_from(parent, &sup_behaviour, s, &o, &pid, NULL);
    } else {
        rc = ra_spawn(rt, &sup_behaviour, s, &o, &pid);
    }
    if (rc != 0 && ra_pid_is_nil(pid)) {
        sup_free(s); // the actor never existed: s is still ours
    }
    // Otherwise the actor owned s and its terminate freed it.
    if (out != NULL) {
        *out = rc == 0 ? pid : RA_PID_NIL;
    }
    return rc;
}

int
ra_sup_root(ra_runtime_t *rt, ra_pid_t *out)
{
    if (rt == NULL || out == NULL) {
        return RA_EINVAL;
    }
    int rc = 0;
    pthread_mutex_lock(&rt->root_mtx);
    if (ra_pid_is_nil(rt->root) || !ra_is_alive(rt, rt->root)) {
        ra_sup_flags_t f = {.strategy = RA_ONE_FOR_ONE, .intensity = 1000,
                            .period_ms = 1000};
        rc = ra_sup_start(rt, NULL, &f, NULL, 0, &rt->root);
    }
    *out = rt->root;
    pthread_mutex_unlock(&rt->root_mtx);
    return rc;
}

int
ra_sup_start_fn(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
                uint64_t *info)
{
    const ra_sup_args_t *a = arg;
    (void)extra;
    (void)info;
    return ra_sup_start(ra_ctx_runtime(sup), sup, &a->flags, a->specs, a->n,
                        out);
}

static int
request(ra_ctx_t *ctx, ra_pid_t sup, sup_req_t *r)
{
    if (ctx == NULL) {
        return RA_EINVAL;
    }
    ra_msg_t *m = NULL;
    ra_msg_t *reply = NULL;
    int rc = ra_msg_new_bytes(&m, TAG_REQ, &r, sizeof(r));
    if (rc != 0) {
        return rc;
    }
    // No timeout: the request lives on this stack, and the call returns
    // only once the supervisor answered or ended.
    rc = ra_call(ctx, sup, &m, -1, &reply);
    ra_msg_unref(&m);
    ra_msg_unref(&reply);
    return rc != 0 ? rc : r->rc;
}

int
ra_sup_stop(ra_ctx_t *ctx, ra_pid_t sup)
{
    sup_req_t r = {.op = OP_STOP};
    int rc = request(ctx, sup, &r);
    if (rc == 0) {
        rc = ra__await_exit(ctx, sup, -1);
    }
    return rc;
}

int
ra_sup_start_child(ra_ctx_t *ctx, ra_pid_t sup, const ra_child_spec_t *spec,
                   void *extra, ra_pid_t *out)
{
    sup_req_t r = {.op = OP_START, .spec = spec, .extra = extra};
    int rc = request(ctx, sup, &r);
    if (out != NULL) {
        *out = rc == 0 ? r.out : RA_PID_NIL;
    }
    return rc;
}

int
ra_sup_terminate_child(ra_ctx_t *ctx, ra_pid_t sup, const char *id,
                       ra_pid_t child)
{
    sup_req_t r = {.op = OP_TERMINATE, .id = id, .pid = child};
    return request(ctx, sup, &r);
}

int
ra_sup_restart_child(ra_ctx_t *ctx, ra_pid_t sup, const char *id,
                     ra_pid_t *out)
{
    sup_req_t r = {.op = OP_RESTART, .id = id};
    int rc = request(ctx, sup, &r);
    if (out != NULL) {
        *out = rc == 0 ? r.out : RA_PID_NIL;
    }
    return rc;
}

int
ra_sup_delete_child(ra_ctx_t *ctx, ra_pid_t sup, const char *id)
{
    sup_req_t r = {.op = OP_DELETE, .id = id};
    return request(ctx, sup, &r);
}

int
ra_sup_which_children(ra_ctx_t *ctx, ra_pid_t sup, ra_child_info_t *out,
                      size_t cap, size_t *n)
{
    if (out == NULL && cap > 0) {
        return RA_EINVAL;
    }
    sup_req_t r = {.op = OP_WHICH, .infos = out, .cap = cap};
    int rc = request(ctx, sup, &r);
    if (n != NULL) {
        *n = rc == 0 ? r.n : 0;
    }
    return rc;
}

int
ra_sup_count_children(ra_ctx_t *ctx, ra_pid_t sup, ra_child_counts_t *out)
{
    if (out == NULL) {
        return RA_EINVAL;
    }
    sup_req_t r = {.op = OP_COUNT, .counts = out};
    return request(ctx, sup, &r);
}

int
ra_sup_get_childspec(ra_ctx_t *ctx, ra_pid_t sup, const char *id,
                     ra_child_spec_t *out)
{
    if (out == NULL) {
        return RA_EINVAL;
    }
    sup_req_t r = {.op = OP_GETSPEC, .id = id, .spec_out = out};
    return request(ctx, sup, &r);
}

// registry.c - local names, process groups and namespaced names of one
// runtime (see ra_registry.h).
//
// Everything lives behind one mutex: the tables are small and every
// operation is a few hash look-ups, so finer locking would buy nothing but
// lock-order puzzles.  The one order that exists is registry lock -> actor
// lock (to check liveness and set RA__F_NAMED); ra__actor_die calls
// names_hook without the actor lock, so the two never invert.
//
// Each actor the registry knows has a proc record (keyed by pid) listing
// its local name, its namespaced names, its group memberships and its
// subscriptions, so names_hook can drop all of it with one look-up.  A
// record disappears as soon as it lists nothing, so unregistering leaves
// nothing behind for a long-lived actor.
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "../actor/actor_impl.h"
#include "ra_registry.h"

// ---- a small chained hash table with byte-string keys ----

// A node owns a copy of its key; nodes never move, so the proc and group
// records may point at them.
typedef struct node {
    struct node *next;
    uint64_t hash;
    void *val;
    size_t klen;
    char key[]; // klen bytes, then a NUL so string keys can be read back
} node_t;

typedef struct table {
    node_t **b;
    size_t nb; // a power of two, or 0 before the first insert
    size_t n;
} table_t;

// FNV-1a: keys are short names and pids, for which it spreads well enough.
static uint64_t
hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = UINT64_C(14695981039346656037);

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

static node_t *
tab_find(const table_t *t, const void *key, size_t klen)
{
    if (t->nb == 0) {
        return NULL;
    }
    uint64_t h = hash_bytes(key, klen);
    for (node_t *n = t->b[h & (t->nb - 1)]; n != NULL; n = n->next) {
        if (n->hash == h && n->klen == klen && memcmp(n->key, key, klen) == 0) {
            return n;
        }
    }
    return NULL;
}

// Doubles the bucket array once the load factor reaches 1.
static int
tab_grow(table_t *t)
{
    size_t nb = t->nb == 0 ? 16 : t->nb * 2;
    node_t **b = calloc(nb, sizeof(*b));

    if (b == NULL) {
        return RA_ENOMEM;
    }
    for (size_t i = 0; i < t->nb; i++) {
        node_t *n = t->b[i];
        while (n != NULL) {
            node_t *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
    return 0;
}

// Adds key (which must not be present) with val and stores the node in
// *out.  Returns 0 or RA_ENOMEM.
static int
tab_add(table_t *t, const void *key, size_t klen, void *val, node_t **out)
{
    if (t->n >= t->nb && tab_grow(t) != 0) {
        return RA_ENOMEM;
    }
    node_t *n = malloc(sizeof(*n) + klen + 1);
    if (n == NULL) {
        return RA_ENOMEM;
    }
    n->hash = hash_bytes(key, klen);
    n->val = val;
    n->klen = klen;
    memcpy(n->key, key, klen);
    n->key[klen] = '\0';
    n->next = t->b[n->hash & (t->nb - 1)];
    t->b[n->hash & (t->nb - 1)] = n;
    t->n++;
    *out = n;
    return 0;
}

// Unlinks and frees node n, which must be in t.
static void
tab_del(table_t *t, node_t *n)
{
    node_t **pp = &t->b[n->hash & (t->nb - 1)];

    while (*pp != n) {
        pp = &(*pp)->next;
    }
    *pp = n->next;
    t->n--;
    free(n);
}

// Frees every node, calling fn on each value first (fn may be NULL).
static void
tab_fini(table_t *t, void (*fn)(void *val))
{
    for (size_t i = 0; i < t->nb; i++) {
        node_t *n = t->b[i];
        while (n != NULL) {
            node_t *next = n->next;
            if (fn != NULL) {
                fn(n->val);
            }
            free(n);
            n = next;
        }
    }
    free(t->b);
    memset(t, 0, sizeof(*t));
}

// ---- records ----

typedef struct group group_t;

// One group an actor belongs to, and how many times.
typedef struct memb {
    group_t *g;
    size_t count;
} memb_t;

// A subscription, as the subscriber's record and the group list it.
typedef struct sub {
    uint64_t ref;
    union {
        group_t *g;   // in a proc record
        ra_pid_t pid; // in a group: the subscriber
    } u;
} sub_t;

// What the registry knows about one actor.
typedef struct proc {
    ra_pid_t pid;
    node_t *pnode;  // this record's node in procs
    node_t *name;   // its node in names, or NULL
    node_t **ns;    // its nodes in ns
    size_t nns, cns;
    memb_t *memb;
    size_t nmemb, cmemb;
    sub_t *subs;
    size_t nsubs, csubs;
} proc_t;

struct group {
    node_t *node;   // in groups; node->key is the group's name
    ra_pid_t *mem;  // members in join order, with repeats
    size_t nmem, cmem;
    sub_t *subs;
    size_t nsubs, csubs;
};

// An event message waiting to be sent once the lock is released.
typedef struct ev {
    ra_msg_t *msg;
    ra_pid_t to;
} ev_t;

typedef struct evs {
    ev_t *v;
    size_t n, cap;
} evs_t;

typedef struct reg {
    pthread_mutex_t mtx;
    // Taken before mtx is released by an operation that has events to
    // send, and held while it sends them, so subscribers see events in
    // the order the changes were made without any send under mtx.
    pthread_mutex_t ev_mtx;
    table_t names;  // name -> proc_t *
    table_t ns;     // ns "\0" name -> proc_t *
    table_t procs;  // ra_pid_t bytes -> proc_t *
    table_t groups; // group name -> group_t *
    uint64_t next_ref;
} reg_t;

// Makes room for one more element of size sz in *v (with *cap slots, n
// used).  Returns 0 or RA_ENOMEM.
static int
vec_room(void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap) {
        return 0;
    }
    size_t ncap = *cap == 0 ? 4 : *cap * 2;
    void *nv = realloc(*v, ncap * sz);
    if (nv == NULL) {
        return RA_ENOMEM;
    }
    *v = nv;
    *cap = ncap;
    return 0;
}

#define VEC_ROOM(v, cap, n) vec_room((void **)&(v), &(cap), (n), sizeof(*(v)))

static proc_t *
proc_find(reg_t *r, ra_pid_t pid)
{
    node_t *n = tab_find(&r->procs, &pid, sizeof(pid));

    return n != NULL ? n->val : NULL;
}

// Returns pid's record, creating it if need be; NULL when out of memory.
static proc_t *
proc_get(reg_t *r, ra_pid_t pid)
{
    proc_t *p = proc_find(r, pid);

    if (p != NULL) {
        return p;
    }
    p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->pid = pid;
    if (tab_add(&r->procs, &pid, sizeof(pid), p, &p->pnode) != 0) {
        free(p);
        return NULL;
    }
    return p;
}

static void
proc_free(void *val)
{
    proc_t *p = val;

    free(p->ns);
    free(p->memb);
    free(p->subs);
    free(p);
}

// Drops p's record once it lists nothing.
static void
proc_trim(reg_t *r, proc_t *p)
{
    if (p->name == NULL && p->nns == 0 && p->nmemb == 0 && p->nsubs == 0) {
        tab_del(&r->procs, p->pnode);
        proc_free(p);
    }
}

// Returns the group called name (len bytes), creating it if create; NULL
// when it does not exist or out of memory.
static group_t *
group_get(reg_t *r, const char *name, size_t len, bool create)
{
    node_t *n = tab_find(&r->groups, name, len);

    if (n != NULL || !create) {
        return n != NULL ? n->val : NULL;
    }
    group_t *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    if (tab_add(&r->groups, name, len, g, &g->node) != 0) {
        free(g);
        return NULL;
    }
    return g;
}

static void
group_free(void *val)
{
    group_t *g = val;

    free(g->mem);
    free(g->subs);
    free(g);
}

// Drops g once it has neither members nor subscribers.
static void
group_trim(reg_t *r, group_t *g)
{
    if (g->nmem == 0 && g->nsubs == 0) {
        tab_del(&r->groups, g->node);
        group_free(g);
    }
}

// Queues a join or leave event of who in g for each of g's subscribers.
// Events are best effort, like signals to dead actors: out of memory, one
// is lost rather than failing a change that has already been made.
static void
ev_queue(evs_t *e, int32_t tag, const group_t *g, ra_pid_t who)
{
    if (g->nsubs == 0) {
        return;
    }
    char str[RA_PID_STRLEN];
    bson_t doc;
    ra_msg_t *m = NULL;

    bson_init(&doc);
    BSON_APPEND_UTF8(&doc, "group", g->node->key);
    BSON_APPEND_UTF8(&doc, "pid", ra_pid_str(who, str));
    BSON_APPEND_INT32(&doc, "node", (int32_t)who.node);
    BSON_APPEND_INT32(&doc, "proc", (int32_t)who.proc);
    BSON_APPEND_INT32(&doc, "id", (int32_t)who.id);
    BSON_APPEND_INT32(&doc, "gen", (int32_t)who.gen);
    int rc = ra_msg_new_bson(&m, tag, &doc);
    bson_destroy(&doc);
    if (rc != 0) {
        return;
    }
    // One message shared by every subscriber: the payload is never copied.
    for (size_t i = 0; i < g->nsubs; i++) {
        if (VEC_ROOM(e->v, e->cap, e->n) != 0) {
            break;
        }
        e->v[e->n].msg = ra_msg_ref(m);
        e->v[e->n].to = g->subs[i].u.pid;
        e->n++;
    }
    ra_msg_unref(&m);
}

// Releases r->mtx (held by the caller) and then sends the queued events.
// ev_mtx is taken before mtx is let go, so operations that produce events
// send them in the order they changed the registry.
static void
unlock_and_send(ra_runtime_t *rt, reg_t *r, evs_t *e)
{
    if (e->n == 0) {
        pthread_mutex_unlock(&r->mtx);
        return;
    }
    pthread_mutex_lock(&r->ev_mtx);
    pthread_mutex_unlock(&r->mtx);
    for (size_t i = 0; i < e->n; i++) {
        // A subscriber that has ended, or whose bounded mailbox refuses
        // the message, simply misses it.
        if (ra__deliver(rt, e->v[i].to, &e->v[i].msg, RA_PID_NIL, 0,
                        false) != 0) {
            ra_msg_unref(&e->v[i].msg);
        }
    }
    pthread_mutex_unlock(&r->ev_mtx);
    free(e->v);
    memset(e, 0, sizeof(*e));
}

// ---- the registry of a runtime ----

// Stands in rt->registry while one thread builds the registry, so the
// runtime's hook fields are written by that thread alone.
static const char creating;
#define CREATING ((void *)&creating)

static void names_hook(ra_runtime_t *rt, ra_pid_t pid);

// Frees the registry with everything still in it; runs in
// ra_runtime_destroy once every actor has gone, so no lock is needed.
static void
registry_free(ra_runtime_t *rt)
{
    reg_t *r = atomic_load_explicit(&rt->registry, memory_order_acquire);

    if (r == NULL || r == CREATING) {
        return;
    }
    // Nodes in names and ns point at proc records; procs owns them.
    tab_fini(&r->names, NULL);
    tab_fini(&r->ns, NULL);
    tab_fini(&r->procs, proc_free);
    tab_fini(&r->groups, group_free);
    pthread_mutex_destroy(&r->ev_mtx);
    pthread_mutex_destroy(&r->mtx);
    free(r);
    atomic_store_explicit(&rt->registry, NULL, memory_order_release);
}

static reg_t *
reg_new(void)
{
    reg_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&r->mtx, NULL) != 0) {
        free(r);
        return NULL;
    }
    if (pthread_mutex_init(&r->ev_mtx, NULL) != 0) {
        pthread_mutex_destroy(&r->mtx);
        free(r);
        return NULL;
    }
    r->next_ref = 1;
    return r;
}

// Returns rt's registry.  If there is none yet, returns NULL unless
// create, in which case it builds one (NULL when out of memory).  The
// first creator claims rt->registry with CREATING, installs the hooks and
// only then publishes the registry with a release store: an actor marked
// RA__F_NAMED through it is therefore sure to see names_hook.
static reg_t *
reg_get(ra_runtime_t *rt, bool create)
{
    void *r = atomic_load_explicit(&rt->registry, memory_order_acquire);

    for (;;) {
        if (r != NULL && r != CREATING) {
            return r;
        }
        if (!create) {
            return NULL; // nothing can have been registered yet
        }
        if (r == CREATING) {
            sched_yield(); // another thread is a few mallocs from done
            r = atomic_load_explicit(&rt->registry, memory_order_acquire);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(
                &rt->registry, &r, CREATING, memory_order_acquire,
                memory_order_acquire)) {
            break;
        }
    }
    reg_t *nr = reg_new();
    if (nr == NULL) {
        atomic_store_explicit(&rt->registry, NULL, memory_order_release);
        return NULL;
    }
    rt->names_hook = names_hook;
    rt->registry_free = registry_free;
    atomic_store_explicit(&rt->registry, nr, memory_order_release);
    return nr;
}

// Marks a (whose reference the caller holds) as known to the registry, so
// ra__actor_die will call names_hook.  Called with r->mtx held, which is
// what makes it race-free: either the actor is not exiting yet, and its
// hook will wait for our mtx and see what we add, or it is and we refuse.
// Returns 0 or RA_ENOPROC.
static int
mark_named(ra__actor_t *a)
{
    int rc = 0;

    ra__lock(a);
    if (a->exiting) {
        rc = RA_ENOPROC;
    } else {
        RA__SETF(a, RA__F_NAMED);
    }
    ra__unlock(a);
    return rc;
}

// Removes every membership of p, queueing one leave event per membership.
static void
drop_memberships(reg_t *r, proc_t *p, evs_t *e)
{
    for (size_t i = 0; i < p->nmemb; i++) {
        group_t *g = p->memb[i].g;
        size_t k = 0;
        for (size_t j = 0; j < g->nmem; j++) {
            if (ra_pid_eq(g->mem[j], p->pid)) {
                ev_queue(e, RA_TAG_PG_LEAVE, g, p->pid);
            } else {
                g->mem[k++] = g->mem[j];
            }
        }
        g->nmem = k;
        group_trim(r, g);
    }
    p->nmemb = 0;
}

// Removes subscription i of p from its group (not from p).
static void
sub_unlink(reg_t *r, proc_t *p, size_t i)
{
    group_t *g = p->subs[i].u.g;

    for (size_t j = 0; j < g->nsubs; j++) {
        if (g->subs[j].ref == p->subs[i].ref) {
            g->subs[j] = g->subs[--g->nsubs];
            break;
        }
    }
    group_trim(r, g);
}

// names_hook runs in ra__actor_die on the dying actor's thread, after the
// actor is marked exiting and dead and before its exit signals and DOWN
// messages go out, without the actor's lock.  It drops everything the
// registry knows about pid.
static void
names_hook(ra_runtime_t *rt, ra_pid_t pid)
{
    reg_t *r = reg_get(rt, false);
    evs_t e = {0};

    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mtx);
    proc_t *p = proc_find(r, pid);
    if (p == NULL) {
        pthread_mutex_unlock(&r->mtx);
        return;
    }
    if (p->name != NULL) {
        tab_del(&r->names, p->name);
    }
    for (size_t i = 0; i < p->nns; i++) {
        tab_del(&r->ns, p->ns[i]);
    }
    // Subscriptions go first: a dead subscriber gets no events, and a
    // group it both joined and watched then outlives the first pass.
    for (size_t i = 0; i < p->nsubs; i++) {
        sub_unlink(r, p, i);
    }
    drop_memberships(r, p, &e);
    tab_del(&r->procs, p->pnode);
    proc_free(p);
    unlock_and_send(rt, r, &e);
}

// Returns strlen(s) if s is a valid name (min to RA_NAME_MAX bytes), else
// -1.  strnlen never reads past RA_NAME_MAX + 1 bytes.
static long
name_len(const char *s, size_t min)
{
    if (s == NULL) {
        return -1;
    }
    size_t len = strnlen(s, RA_NAME_MAX + 1);
    if (len < min || len > RA_NAME_MAX) {
        return -1;
    }
    return (long)len;
}

// Takes a reference on the actor pid names and the registry (creating it),
// the common first step of every call that adds to the registry.  Returns
// 0, RA_ENOPROC or RA_ENOMEM; on success the caller puts *a back.
static int
enter(ra_runtime_t *rt, ra_pid_t pid, ra__actor_t **a, reg_t **r)
{
    *a = ra__actor_get(rt, pid);
    if (*a == NULL) {
        return RA_ENOPROC;
    }
    *r = reg_get(rt, true);
    if (*r == NULL) {
        ra__actor_put(rt, *a);
        return RA_ENOMEM;
    }
    return 0;
}

// ---- local names ----

int
ra_register(ra_runtime_t *rt, const char *name, ra_pid_t pid)
{
    long len = name_len(name, 1);

    if (rt == NULL || len < 0) {
        return RA_EINVAL;
    }
    ra__actor_t *a = NULL;
    reg_t *r = NULL;
    int rc = enter(rt, pid, &a, &r);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&r->mtx);
    proc_t *p = proc_find(r, pid);
    if (tab_find(&r->names, name, (size_t)len) != NULL) {
        // The holder is alive, or at least its names_hook has not run
        // yet: a name is free once whoever watches the holder can know.
        rc = RA_EEXIST;
    } else if (p != NULL && p->name != NULL) {
        rc = RA_EALREADY;
    } else if ((rc = mark_named(a)) != 0) {
        // Exiting: fall through with RA_ENOPROC.
    } else if ((p = proc_get(r, pid)) == NULL) {
        rc = RA_ENOMEM;
    } else if ((rc = tab_add(&r->names, name, (size_t)len, p, &p->name)) !=
               0) {
        p->name = NULL;
        proc_trim(r, p);
    }
    pthread_mutex_unlock(&r->mtx);
    // After the unlock: dropping what may be the last reference to an
    // actor that died meanwhile frees its slot, which is not registry work.
    ra__actor_put(rt, a);
    return rc;
}

int
ra_unregister(ra_runtime_t *rt, const char *name)
{
    long len = name_len(name, 1);

    if (rt == NULL || len < 0) {
        return RA_EINVAL;
    }
    reg_t *r = reg_get(rt, false);
    if (r == NULL) {
        return RA_ENOENT;
    }
    int rc = RA_ENOENT;
    pthread_mutex_lock(&r->mtx);
    node_t *n = tab_find(&r->names, name, (size_t)len);
    if (n != NULL) {
        proc_t *p = n->val;
        tab_del(&r->names, n);
        p->name = NULL;
        proc_trim(r, p);
        rc = 0;
    }
    pthread_mutex_unlock(&r->mtx);
    return rc;
}

// Looks up a local name; returns 0 or RA_ENOENT/RA_EINVAL.
static int
lookup(ra_runtime_t *rt, const char *name, ra_pid_t *out)
{
    long len = name_len(name, 1);

    if (rt == NULL || len < 0) {
        return RA_EINVAL;
    }
    reg_t *r = reg_get(rt, false);
    if (r == NULL) {
        return RA_ENOENT;
    }
    int rc = RA_ENOENT;
    pthread_mutex_lock(&r->mtx);
    node_t *n = tab_find(&r->names, name, (size_t)len);
    if (n != NULL) {
        *out = ((proc_t *)n->val)->pid;
        rc = 0;
    }
    pthread_mutex_unlock(&r->mtx);
    return rc;
}

int
ra_whereis(ra_runtime_t *rt, const char *name, ra_pid_t *out)
{
    ra_pid_t pid = RA_PID_NIL;

    if (out == NULL) {
        return RA_EINVAL;
    }
    int rc = lookup(rt, name, &pid);
    *out = pid;
    return rc;
}

int
ra_name_of(ra_runtime_t *rt, ra_pid_t pid, char *buf, size_t len)
{
    if (rt == NULL || buf == NULL) {
        return RA_EINVAL;
    }
    reg_t *r = reg_get(rt, false);
    if (r == NULL) {
        return RA_ENOENT;
    }
    int rc = RA_ENOENT;
    pthread_mutex_lock(&r->mtx);
    proc_t *p = proc_find(r, pid);
    if (p != NULL && p->name != NULL) {
        if (p->name->klen + 1 > len) {
            rc = RA_EINVAL;
        } else {
            memcpy(buf, p->name->key, p->name->klen + 1);
            rc = 0;
        }
    }
    pthread_mutex_unlock(&r->mtx);
    return rc;
}

int
ra_send_named(ra_ctx_t *ctx, const char *name, ra_msg_t **msg)
{
    ra_pid_t pid;

    if (ctx == NULL) {
        return RA_EINVAL;
    }
    int rc = lookup(ctx->rt, name, &pid);
    if (rc != 0) {
        return rc;
    }
    // The holder may end between the look-up and the send; ra_send then
    // says RA_ENOPROC, as a send to its pid would.
    return ra_send(ctx, pid, msg);
}

int
ra_runtime_send_named(ra_runtime_t *rt, const char *name, ra_msg_t **msg)
{
    ra_pid_t pid;
    int rc = lookup(rt, name, &pid);

    if (rc != 0) {
        return rc;
    }
    return ra_runtime_send(rt, pid, msg);
}

// ---- process groups ----

// Returns p's membership entry for g, or NULL.
static memb_t *
memb_find(proc_t *p, const group_t *g)
{
    for (size_t i = 0; i < p->nmemb; i++) {
        if (p->memb[i].g == g) {
            return &p->memb[i];
        }
    }
    return NULL;
}

// Adds one membership of p to g (both exist).  Returns 0 or RA_ENOMEM,
// in which case nothing changed.
static int
join_locked(proc_t *p, group_t *g)
{
    memb_t *m = memb_find(p, g);

    if (VEC_ROOM(g->mem, g->cmem, g->nmem) != 0) {
        return RA_ENOMEM;
    }
    if (m == NULL) {
        if (VEC_ROOM(p->memb, p->cmemb, p->nmemb) != 0) {
            return RA_ENOMEM;
        }
        m = &p->memb[p->nmemb++];
        m->g = g;
        m->count = 0;
    }
    m->count++;
    g->mem[g->nmem++] = p->pid;
    return 0;
}

int
ra_pg_join(ra_runtime_t *rt, const char *group, ra_pid_t pid)
{
    long len = name_len(group, 1);

    if (rt == NULL || len < 0) {
        return RA_EINVAL;
    }
    ra__actor_t *a = NULL;
    reg_t *r = NULL;
    int rc = enter(rt, pid, &a, &r);
    if (rc != 0) {
        return rc;
    }
    evs_t e = {0};
    pthread_mutex_lock(&r->mtx);
    if ((rc = mark_named(a)) == 0) {
        group_t *g = group_get(r, group, (size_t)len, true);
        proc_t *p = g != NULL ? proc_get(r, pid) : NULL;
        if (p == NULL) {
            rc = RA_ENOMEM;
        } else if ((rc = join_locked(p, g)) == 0) {
            ev_queue(&e, RA_TAG_PG_JOIN, g, pid);
        }
        if (rc != 0) {
            if (p != NULL) {
                proc_trim(r, p);
            }
            if (g != NULL) {
                group_trim(r, g);
            }
        }
    }
    unlock_and_send(rt, r, &e);
    ra__actor_put(rt, a);
    return rc;
}

int
ra_pg_leave(ra_runtime_t *rt, const char *group, ra_pid_t pid)
{
    long len = name_len(group, 1);

    if (rt == NULL || len < 0) {
        return RA_EINVAL;
    }
    reg_t *r = reg_get(rt, false);
    if (r == NULL) {
        return RA_ENOENT;
    }
    evs_t e = {0};
    int rc = RA_ENOENT;
    pthread_mutex_lock(&r->mtx);
    group_t *g = group_get(r, group, (size_t)len, false);
    proc_t *p = g != NULL ? proc_find(r, pid) : NULL;
    memb_t *m = p != NULL ? memb_find(p, g) : NULL;
    if (m != NULL) {
        // Like Erlang's pg, drop the earliest membership.
        size_t j = 0;
        while (!ra_pid_eq(g->mem[j], pid)) {
            j++;
        }
        memmove(&g->mem[j], &g->mem[j + 1],
                (g->nmem - j - 1) * sizeof(g->mem[0]));
        g->nmem--;
        if (--m->count == 0) {
            *m = p->memb[--p->nmemb];
        }
        ev_queue(&e, RA_TAG_PG_LEAVE, g, pid);
        group_trim(r, g);
        proc_trim(r, p);
        rc = 0;
    }
    unlock_and_send(rt, r, &e);
    return rc;
}

int
ra_pg_members(ra_runtime_t *rt, const char *group, ra_pid_t *out,
              size_t cap, size_t *n)
{
    long len = name_len(group, 1);

    if (rt == NULL || len < 0 || n == NULL || (out == NULL && cap > 0)) {
        return RA_EINVAL;
    }
    *n = 0;
    reg_t *r = reg_get(rt, false);
    if (r == NULL) {
        return 0;
    }
    pthread_mutex_lock(&r->mtx);
    group_t *g = group_get(r, group, (size_t)len, false);
    if (g != NULL) {
        size_t k = g->nmem < cap ? g->nmem : cap;
        if (k > 0) {
            memcpy(out, g->mem, k * sizeof(*out));
        }
        *n = g->nmem;
    }
    pthread_mutex_unlock(&r->mtx);
    return 0;
}

int
ra_pg_subscribe(ra_ctx_t *ctx, const char *group, uint64_t *ref)
{
    long len = name_len(group, 1);

    if (ctx == NULL || ref == NULL || len < 0) {
        return RA_EINVAL;
    }
    ra_runtime_t *rt = ctx->rt;
    ra_pid_t self = ctx->self;
    // A scope whose actor was ended by a signal can still call us.
    ra__actor_t *a = NULL;
    reg_t *r = NULL;
    int rc = enter(rt, self, &a, &r);
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&r->mtx);
    if ((rc = mark_named(a)) == 0) {
        group_t *g = group_get(r, group, (size_t)len, true);
        proc_t *p = g != NULL ? proc_get(r, self) : NULL;
        if (p == NULL || VEC_ROOM(g->subs, g->csubs, g->nsubs) != 0 ||
            VEC_ROOM(p->subs, p->csubs, p->nsubs) != 0) {
            rc = RA_ENOMEM;
            if (p != NULL) {
                proc_trim(r, p);
            }
            if (g != NULL) {
                group_trim(r, g);
            }
        } else {
            uint64_t sref = r->next_ref++;
            g->subs[g->nsubs].ref = sref;
            g->subs[g->nsubs++].u.pid = self;
            p->subs[p->nsubs].ref = sref;
            p->subs[p->nsubs++].u.g = g;
            *ref = sref;
        }
    }
    pthread_mutex_unlock(&r->mtx);
    ra__actor_put(rt, a);
    return rc;
}

int
ra_pg_unsubscribe(ra_ctx_t *ctx, uint64_t ref)
{
    if (ctx == NULL) {
        return RA_EINVAL;
    }
    reg_t *r = reg_get(ctx->rt, false);
    if (r == NULL) {
        return RA_ENOENT;
    }
    int rc = RA_ENOENT;
    pthread_mutex_lock(&r->mtx);
    proc_t *p = proc_find(r, ctx->self);
    for (size_t i = 0; p != NULL && i < p->nsubs; i++) {
        if (p->subs[i].ref == ref) {
            sub_unlink(r, p, i);
            p->subs[i] = p->subs[--p->nsubs];
            proc_trim(r, p);
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&r->mtx);
    return rc;
}

// ---- namespaced names ----

// The ns table's key: ns, a NUL, then name.  Names hold no NUL, so two
// different pairs never make the same key.
#define NS_KEY_MAX (2 * RA_NAME_MAX + 1)

// Builds the key of (ns, name) in key and returns its length, or -1 for a
// bad ns or name.
static long
ns_key(const char *ns, const char *name, char key[NS_KEY_MAX])
{
    long nslen = name_len(ns, 0);
    long len = name_len(name, 1);

    if (nslen < 0 || len < 0) {
        return -1;
    }
    memcpy(key, ns, (size_t)nslen);
    key[nslen] = '\0';
    memcpy(key + nslen + 1, name, (size_t)len);
    return nslen + 1 + len;
}

// Removes node n from p's list of namespaced names (not from the table).
static void
ns_forget(proc_t *p, const node_t *n)
{
    for (size_t i = 0; i < p->nns; i++) {
        if (p->ns[i] == n) {
            p->ns[i] = p->ns[--p->nns];
            return;
        }
    }
}

int
ra_ns_register(ra_runtime_t *rt, const char *ns, const char *name,
               ra_pid_t pid, ra_name_policy_t policy, ra_pid_t *holder)
{
    char key[NS_KEY_MAX];
    long klen = ns_key(ns, name, key);
    ra_pid_t now = RA_PID_NIL;

    if (rt == NULL || klen < 0 ||
        (policy != RA_NAME_FAIL && policy != RA_NAME_GET_EXISTING &&
         policy != RA_NAME_REPLACE)) {
        return RA_EINVAL;
    }
    // NULL when pid is dead: only an error if the name is ours to take.
    ra__actor_t *a = ra__actor_get(rt, pid);
    reg_t *r = reg_get(rt, true);
    if (r == NULL) {
        if (a != NULL) {
            ra__actor_put(rt, a);
        }
        return RA_ENOMEM;
    }
    int rc = 0;
    bool replaced = false;
    ra_pid_t old = RA_PID_NIL;
    pthread_mutex_lock(&r->mtx);
    node_t *n = tab_find(&r->ns, key, (size_t)klen);
    proc_t *cur = n != NULL ? n->val : NULL;
    proc_t *p;
    if (cur != NULL) {
        now = cur->pid;
    }
    if (cur != NULL && ra_pid_eq(cur->pid, pid)) {
        rc = 0; // already ours: every policy would end here
    } else if (cur != NULL && policy == RA_NAME_FAIL) {
        rc = RA_EEXIST;
    } else if (cur != NULL && policy == RA_NAME_GET_EXISTING) {
        rc = 1;
    } else if (a == NULL || (rc = mark_named(a)) != 0) {
        rc = RA_ENOPROC;
    } else if ((p = proc_get(r, pid)) == NULL ||
               VEC_ROOM(p->ns, p->cns, p->nns) != 0) {
        rc = RA_ENOMEM;
        if (p != NULL) {
            proc_trim(r, p);
        }
    } else if (cur != NULL) {
        // RA_NAME_REPLACE: hand the node over, so the name is never free.
        ns_forget(cur, n);
        old = cur->pid;
        proc_trim(r, cur);
        n->val = p;
        p->ns[p->nns++] = n;
        replaced = true;
        now = pid;
    } else if ((rc = tab_add(&r->ns, key, (size_t)klen, p, &n)) != 0) {
        proc_trim(r, p);
    } else {
        p->ns[p->nns++] = n;
        now = pid;
    }
    pthread_mutex_unlock(&r->mtx);
    if (a != NULL) {
        ra__actor_put(rt, a);
    }
    if (replaced) {
        // Outside the lock: the exit signal is ordinary runtime work.  The
        // old holder may have ended meanwhile, which is just as good.
        (void)ra_runtime_exit(rt, old, RA_NAME_CONFLICT);
    }
    if (holder != NULL) {
        *holder = now;
    }
    return rc;
}

int
ra_ns_unregister(ra_runtime_t *rt, const char *ns, const char *name,
                 ra_pid_t pid)
{
    char key[NS_KEY_MAX];
    long klen = ns_key(ns, name, key);

    if (rt == NULL || klen < 0) {
        return RA_EINVAL;
    }
    reg_t *r = reg_get(rt, false);
    if (r == NULL) {
        return RA_ENOENT;
    }
    int rc = RA_ENOENT;
    pthread_mutex_lock(&r->mtx);
    node_t *n = tab_find(&r->ns, key, (size_t)klen);
    if (n != NULL && ra_pid_eq(((proc_t *)n->val)->pid, pid)) {
        proc_t *p = n->val;
        ns_forget(p, n);
        tab_del(&r->ns, n);
        proc_trim(r, p);
        rc = 0;
    }
    pthread_mutex_unlock(&r->mtx);
    return rc;
}

int
ra_ns_whereis(ra_runtime_t *rt, const char *ns, const char *name,
              ra_pid_t *out)
{
    char key[NS_KEY_MAX];
    long klen = ns_key(ns, name, key);

    if (rt == NULL || out == NULL || klen < 0) {
        return RA_EINVAL;
    }
    *out = RA_PID_NIL;
    reg_t *r = reg_get(rt, false);
    if (r == NULL) {
        return RA_ENOENT;
    }
    int rc = RA_ENOENT;
    pthread_mutex_lock(&r->mtx);
    node_t *n = tab_find(&r->ns, key, (size_t)klen);
    if (n != NULL) {
        *out = ((proc_t *)n->val)->pid;
        rc = 0;
    }
    pthread_mutex_unlock(&r->mtx);
    return rc;
}

// objmgr.c - the node's object manager: moves objects between the object
// stores of the nodes.
//
// Every node with an object store runs one object manager actor in its
// daemon (or in the embedded cluster's process), beside the raylet.  It
// does three things, all through RA__T_OBJ messages (see cluster_impl.h for
// their fields):
//
// - It serves the objects of its store to the object managers of other
//   nodes, in chunks of RA__OBJ_CHUNK bytes (RA__OBJ_GET, answered with
//   RA__OBJ_PART).  Each chunk is copied once, from the store's mapping into
//   the message.
// - It pulls objects from other nodes into its store for the processes of
//   its node (RA__OBJ_PULL): it reserves the object's space, asks for up to
//   PULL_WINDOW chunks at a time and writes each one where it belongs as it
//   comes, then seals the object, takes a store reference for each process
//   that asked and answers them (RA__OBJ_PULLED).  Pulls of one object that
//   overlap are one transfer.  A transfer that makes no progress for
//   RETRY_MS asks again for the chunks it still misses (a link that was cut
//   and came back, or a lost session), and one that makes none for
//   cfg.pull_timeout_ms fails with RA_EOBJLOST; nothing half-written is
//   ever visible, because the object is sealed only once it is whole.
// - It keeps the large results that workers of its node made for owners on
//   other nodes (RA__OBJ_HOLD): the worker put the value and took a store
//   reference for the owner; the object manager watches the owner's process
//   and drops what it still holds for it when that process is lost.  The
//   owner's node says when its copy is made (RA__OBJ_FREE), and the object
//   is deleted here.  Likewise a copy pulled for a worker of this node (a
//   task's argument) is watched until the worker says it is done with it
//   (RA__OBJ_UNUSE) or its process is gone.
//
// It shares the process's store handle (the store is thread-safe) and its
// link, through which it routes to the object managers it pulls from.
//
// Kept up in place: it runs under a supervisor of its own (one_for_one,
// permanent, at most RA__KEEP_RESTARTS restarts in RA__KEEP_PERIOD_MS), in
// a reserved slot, so every incarnation has the pid that other nodes'
// object managers, the raylet's workers and the cores know.  An
// incarnation that ends aborts its transfers (nothing half-written is
// left in the store) and hands what it holds for other processes (holds,
// and copies kept a while after their last use) to the next one, which
// watches those processes again.  Who waited for a transfer asks again:
// a core for a task's result (core.c, objmgr_back), a worker for a task's
// argument (ra__pull_here, which calls again while the object manager's
// process answers RA_ENOPROC), and another node's object manager for
// chunks it misses (after RETRY_MS).
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster_impl.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"
#include "ra_objstore.h"

#define PULL_WINDOW 8         // chunks asked for and not yet received
#define TICK_MS 250           // how often stalled transfers are looked at
#define RETRY_MS 1000         // no progress for this long: ask again
#define RETRY_MAX_MS 8000     // ... and at most this long between asks
#define PULL_TIMEOUT_MS 30000 // the default of cfg.pull_timeout_ms
#define LOG_BIG ((size_t)16 << 20) // transfers this large are logged (info)
#define RELAYS 64             // objects whose latest puller is known
#define RELAY_MS 10000        // a puller is a relay this long after its
                              // last request here
#define RELAY_WAIT_MS 3000    // a relay (which waits for the chunks it
                              // passes on) is left after this long without
                              // data
#define OWNER_GRACE_MS 60000  // an owner cut off this long is given up
#define OWNER_RECHECK_MS 2000 // how often a cut-off owner is tried again

enum { CH_TODO = 0, CH_ASKED = 1, CH_DONE = 2 };

typedef struct waiter {
    ra_pid_t core;
    uint64_t req;
    uint64_t cref;            // a worker's call (answered with ra_reply_to)
    ra_pid_t watch;           // whose end lets the copy go (the asking
                              // process's core; its sender if not given)
} waiter_t;

typedef struct pull {
    uint64_t xfer;
    ra_oid_t oid;
    ra_pid_t src;             // the object manager that has it
    size_t size;
    uint8_t *data;            // its space in our store (being created)
    uint8_t *ch;              // per chunk: CH_*
    size_t nch, ndone, nasked, nextch; // nextch: first never asked
    bool free_src;            // tell src to delete its copy afterwards
    int64_t progress_ms;      // last chunk received (or start)
    int64_t asked_ms;         // last time chunks were asked for again
    int64_t retry_ms;         // wait before asking again: RETRY_MS,
                              // doubled while nothing comes (to 8 s)
    int64_t start_ms, start_us;
    waiter_t *w;
    size_t nw;
    ra_pid_t alt;             // another puller that relays it to us (nil:
                              // none; ask src)
    bool no_relay;            // ask src itself (a relay failed us)
    struct served *queued;    // GETs of pullers we relay to, waiting for
                              // chunks still on their way here
    struct pull *next;
} pull_t;

// A GET waiting at a relay for its chunk.
typedef struct served {
    ra_pid_t to;
    uint64_t xfer, off;
    uint32_t n;
    struct served *next;
} served_t;

// The latest puller of an object this node serves: pullers that come
// later are sent to it (RA__OBJ_RELAYED) while it is fresh.
typedef struct relay {
    ra_oid_t oid;
    ra_pid_t peer;
    char ep[256];
    int64_t seen_ms;
} relay_t;

typedef struct hold {
    ra_oid_t oid;
    ra_pid_t owner;           // the owner, or the worker that uses it
    bool use;                 // a worker's use of a pulled copy
} hold_t;

typedef struct owner {
    ra_pid_t pid;
    uint64_t mref;            // 0 while cut off
    size_t n;                 // holds for it
    int64_t cut_ms;           // when it was cut off (0: it is not)
    int64_t retry_ms;         // when it is monitored again
} owner_t;

typedef struct objmgr {
    ra__objmgr_cfg_t cfg;
    ra__objmgr_sys_t *sys;    // what restarts it (NULL: not supervised)
    unsigned incarnation;
    bool booted;
    pull_t *pulls;
    uint64_t next_xfer;
    bool tick_armed;
    hold_t *holds;
    size_t nholds, capholds;
    owner_t *owners;
    size_t nowners, capowners;
    // Counters (RA__OBJ_STATS): pulls done and failed, their bytes and
    // time (microseconds, summed), bytes served, messages dropped.
    uint64_t pulled, failed, bytes_in, us_in, served, dropped;
    char ep[256];             // our endpoint, for relays
    relay_t relays[RELAYS];
    unsigned nrelays;
    // Objects this node passed on to other nodes lately, and pulled
    // copies kept a while after their last user let go because of that
    // (a puller we relay to may still need them).
    struct stamp { ra_oid_t oid; int64_t ms; } served_lately[RELAYS],
        linger[RELAYS];
    unsigned nserved, nlinger;
} objmgr_t;

struct ra__objmgr_sys {
    ra__objmgr_cfg_t cfg;
    char ep[256];             // cfg.ep points here
    uint32_t slot;
    unsigned starts;          // the supervisor's thread only
    ra_pid_t pid;             // the same for every incarnation
    hold_t *holds;            // handed from an ended incarnation to the
    size_t nholds;            // next one
    struct stamp linger[RELAYS];
    unsigned nlinger;
};

static void
send_buf(ra_ctx_t *ctx, ra_pid_t to, ra__wbuf_t *b)
{
    ra_msg_t *m = NULL;
    if (ra__wb_msg(b, RA__T_OBJ, &m) == 0 && ra_send(ctx, to, &m) != 0) {
        ra_msg_unref(&m);
    }
}

static void
arm_tick(ra_ctx_t *ctx, objmgr_t *om)
{
    if (om->tick_armed) {
        return;
    }
    // (The tick names this incarnation: one armed by an ended one reaches
    // the next, at the same pid, and is ignored there.)
    uint8_t inc = (uint8_t)om->incarnation;
    om->tick_armed = ra__tick_self(ctx, &inc, 1, TICK_MS) == 0;
}

static void recheck_owners(ra_ctx_t *ctx, objmgr_t *om);
static void keep(ra_ctx_t *ctx, objmgr_t *om, ra_oid_t oid, ra_pid_t pid,
                 bool use);
static void relay_queued(ra_ctx_t *ctx, objmgr_t *om, struct pull *p,
                         size_t i, int status);

// ---- pulls ----

// reply_pulled answers a pull: with a message to a core (w->cref 0), or
// as the reply to a worker's call.
static void
reply_pulled(ra_ctx_t *ctx, const waiter_t *w, ra_oid_t oid, int status,
             const char *text)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__OBJ_PULLED);
    ra__wb_u64(&b, w->req);
    ra__wb_raw(&b, oid.b, 16);
    ra__wb_u32(&b, (uint32_t)status);
    ra__wb_str(&b, text != NULL ? text : "");
    if (w->cref == 0) {
        send_buf(ctx, w->core, &b);
        return;
    }
    ra_msg_t *m = NULL;
    if (ra__wb_msg(&b, RA__T_OBJ, &m) == 0 &&
        ra_reply_to(ra_ctx_runtime(ctx), w->cref, &m) != 0) {
        ra_msg_unref(&m);
    }
}

static void
send_free(ra_ctx_t *ctx, ra_pid_t to, ra_oid_t oid)
{
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__OBJ_FREE);
    ra__wb_raw(&b, oid.b, 16);
    send_buf(ctx, to, &b);
}

static void
ask(ra_ctx_t *ctx, objmgr_t *om, pull_t *p, size_t i)
{
    size_t off = i * RA__OBJ_CHUNK;
    size_t n = p->size - off < RA__OBJ_CHUNK ? p->size - off
                                             : RA__OBJ_CHUNK;
    bool relayed = !ra_pid_is_nil(p->alt);
    ra__wbuf_t b = {0};
    ra__wb_u8(&b, RA__OBJ_GET);
    ra__wb_u64(&b, p->xfer);
    ra__wb_raw(&b, p->oid.b, 16);
    ra__wb_u64(&b, off);
    ra__wb_u32(&b, (uint32_t)n);
    ra__wb_u8(&b, p->no_relay ? RA__GET_NO_RELAY : 0);
    ra__wb_str(&b, om->ep);
    send_buf(ctx, relayed ? p->alt : p->src, &b);
    if (p->ch[i] == CH_TODO) {
        p->ch[i] = CH_ASKED;
        p->nasked++;
    }
}

// fill asks for the next chunks until PULL_WINDOW are under way.
static void
fill(ra_ctx_t *ctx, objmgr_t *om, pull_t *p)
{
    while (p->nasked < PULL_WINDOW && p->nextch < p->nch) {
        ask(ctx, om, p, p->nextch++);
    }
}

static void
pull_unlink(objmgr_t *om, pull_t *p)
{
    for (pull_t **pp = &om->pulls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            return;
        }
    }
}

// pull_end finishes a transfer: on success the object is sealed with one
// reference per waiter; on failure its space is given back.  Every waiter
// is answered and p is freed.
static void
pull_end(ra_ctx_t *ctx, objmgr_t *om, pull_t *p, int status,
         const char *why)
{
    ra_objstore_t *st = om->cfg.store;
    char text[512] = "";
    if (status == 0) {
        for (size_t i = 0; i < p->nw && status == 0; i++) {
            status = ra_objstore_ref(st, p->oid);
        }
        if (status == 0) {
            status = ra_objstore_seal(st, p->oid);
        }
        if (status != 0) {
            snprintf(text, sizeof text, "cannot seal the copy: %s",
                     ra_strerror(status));
            (void)ra_objstore_abort(st, p->oid);
        } else {
            om->pulled++;
            om->bytes_in += p->size;
            om->us_in += (uint64_t)(ra__mono_us() - p->start_us);
            int64_t ms = ra__mono_ms() - p->start_ms;
            if (p->size >= LOG_BIG) {
                char hex[RA_OID_STRLEN];
                ra_log_info("objmgr", "pulled object %s (%zu bytes) from "
                            "node %u in %" PRId64 " ms (%.2f GB/s)",
                            ra_oid_str(p->oid, hex), p->size, p->src.node,
                            ms, (double)p->size / 1e6 / (ms > 0 ? ms : 1));
            }
        }
    } else {
        (void)ra_objstore_abort(st, p->oid);
    }
    if (status != 0 && text[0] == '\0') {
        char hex[RA_OID_STRLEN];
        snprintf(text, sizeof text, "object %s (%zu bytes) could not be "
                 "copied from node %u: %s", ra_oid_str(p->oid, hex),
                 p->size, p->src.node, why != NULL ? why
                 : ra_strerror(status));
    }
    if (status != 0) {
        om->failed++;
        ra_log_warn("objmgr", "%s", text);
    }
    for (size_t i = 0; i < p->nw; i++) {
        if (status == 0 && p->w[i].cref != 0) {
            keep(ctx, om, p->oid, p->w[i].watch, true);
        }
        reply_pulled(ctx, &p->w[i], p->oid, status, text);
    }
    // Pullers we relayed to that still wait go to the source.
    relay_queued(ctx, om, p, 0, RA_ENOENT);
    if (p->free_src) {
        send_free(ctx, p->src, p->oid);
    }
    pull_unlink(om, p);
    free(p->ch);
    free(p->w);
    free(p);
}

static pull_t *
pull_find(objmgr_t *om, ra_oid_t oid)
{
    for (pull_t *p = om->pulls; p != NULL; p = p->next) {
        if (ra_oid_eq(p->oid, oid)) {
            return p;
        }
    }
    return NULL;
}

static int
add_waiter(pull_t *p, const waiter_t *who)
{
    waiter_t *w = realloc(p->w, (p->nw + 1) * sizeof *w);
    if (w == NULL) {
        return RA_ENOMEM;
    }
    p->w = w;
    p->w[p->nw++] = *who;
    return 0;
}

// watch_of reads the trailing pid of a PULL or UNUSE: the process the
// copy is kept for (its core); the sender when there is none.
static ra_pid_t
watch_of(ra_ctx_t *ctx, ra__rbuf_t *r)
{
    return !r->bad && r->off < r->len ? ra__rb_pid(r) : ra_sender(ctx);
}

static void
on_pull(ra_ctx_t *ctx, objmgr_t *om, ra__rbuf_t *r)
{
    uint64_t req = ra__rb_u64(r);
    ra__objloc_t loc;
    ra__rb_objloc(r, &loc);
    uint8_t flags = ra__rb_u8(r);
    ra_oid_t oid = loc.oid;
    ra_pid_t src = loc.objmgr;
    const char *ep = loc.ep;
    uint64_t size = loc.size;
    // The asker's process is watched for as long as it uses the copy:
    // the sender may be a scope that ends with the call.
    waiter_t who = {ra_sender(ctx), req, ra_call_ref(ctx), watch_of(ctx, r)};
    if (r->bad || (ra_pid_is_nil(who.core) && who.cref == 0) ||
        (who.cref != 0 && (ra_pid_is_nil(who.watch) ||
                           who.watch.node != who.core.node ||
                           who.watch.proc != who.core.proc))) {
        om->dropped++;
        ra_log_warn("objmgr", "malformed pull request dropped");
        if (who.cref != 0) {
            reply_pulled(ctx, &who, oid, RA_EBADMSG, "malformed pull "
                         "request");
        }
        return;
    }
    ra_objstore_t *st = om->cfg.store;
    if (st == NULL) {
        reply_pulled(ctx, &who, oid, RA_ENOTSUP, "this node has no "
                     "object store to copy the object into (start it "
                     "without turning the store off)");
        return;
    }
    pull_t *p = pull_find(om, oid);
    if (p != NULL) {
        // The same object is on its way already: one transfer for both.
        if (add_waiter(p, &who) != 0) {
            reply_pulled(ctx, &who, oid, RA_ENOMEM, "out of memory");
        }
        p->free_src |= (flags & RA__PULL_FREE_SRC) != 0;
        return;
    }
    ra_objstore_info_t info;
    if (ra_objstore_info(st, oid, &info) == 0 &&
        info.state != RA_OBJ_CREATING) {
        // A copy is here already.
        int rc = ra_objstore_ref(st, oid);
        if (rc == 0 && who.cref != 0) {
            keep(ctx, om, oid, who.watch, true);
        }
        reply_pulled(ctx, &who, oid, rc, rc != 0 ? ra_strerror(rc) : NULL);
        if (flags & RA__PULL_FREE_SRC) {
            send_free(ctx, src, oid);
        }
        return;
    }
    if (ep[0] != '\0' && om->cfg.link != NULL &&
        (src.node != ra_self(ctx).node || src.proc != ra_self(ctx).proc)) {
        (void)ra_link_route(om->cfg.link, src.node, src.proc, ep);
    }
    p = calloc(1, sizeof *p);
    size_t nch = (size_t)((size + RA__OBJ_CHUNK - 1) / RA__OBJ_CHUNK);
    if (p == NULL || (nch > 0 && (p->ch = calloc(nch, 1)) == NULL) ||
        add_waiter(p, &who) != 0) {
        if (p != NULL) {
            free(p->ch);
            free(p);
        }
        reply_pulled(ctx, &who, oid, RA_ENOMEM, "out of memory");
        return;
    }
    p->xfer = ++om->next_xfer;
    p->oid = oid;
    p->src = src;
    p->size = (size_t)size;
    p->nch = nch;
    p->free_src = (flags & RA__PULL_FREE_SRC) != 0;
    p->progress_ms = p->asked_ms = p->start_ms = ra__mono_ms();
    p->retry_ms = RETRY_MS;
    p->start_us = ra__mono_us();
    if (p->size >= LOG_BIG) {
        char hex[RA_OID_STRLEN];
        ra_log_info("objmgr", "pulling object %s (%zu bytes) from node %u",
                    ra_oid_str(oid, hex), p->size, src.node);
    }
    p->next = om->pulls;
    om->pulls = p;
    void *data = NULL;
    int rc = ra_objstore_alloc(st, oid, p->size, &data);
    if (rc != 0) {
        char why[256];
        snprintf(why, sizeof why, "no room in this node's object store "
                 "(%s); make it larger (object_store_memory, "
                 "--object-store-memory) or free objects", ra_strerror(rc));
        // alloc left nothing to abort; pull_end's abort is harmless.
        pull_end(ctx, om, p, rc, why);
        return;
    }
    p->data = data;
    if (p->nch == 0) {
        pull_end(ctx, om, p, 0, NULL);
        return;
    }
    fill(ctx, om, p);
    arm_tick(ctx, om);
}

static pull_t *
pull_by_xfer(objmgr_t *om, uint64_t xfer)
{
    for (pull_t *p = om->pulls; p != NULL; p = p->next) {
        if (p->xfer == xfer) {
            return p;
        }
    }
    return NULL;
}

static void
on_part(ra_ctx_t *ctx, objmgr_t *om, ra__rbuf_t *r)
{
    uint64_t xfer = ra__rb_u64(r);
    int status = (int)ra__rb_u32(r);
    uint64_t off = ra__rb_u64(r);
    uint64_t total = ra__rb_u64(r);
    if (r->bad) {
        om->dropped++;
        return;
    }
    const uint8_t *bytes = r->p + r->off;
    size_t n = r->len - r->off;
    pull_t *p = pull_by_xfer(om, xfer);
    ra_pid_t from = ra_sender(ctx);
    bool by_src = p != NULL && from.node == p->src.node &&
                  from.proc == p->src.proc;
    bool by_alt = p != NULL && !ra_pid_is_nil(p->alt) &&
                  from.node == p->alt.node && from.proc == p->alt.proc;
    if (!by_src && !by_alt) {
        return; // a late or repeated chunk of a transfer that ended
    }
    size_t ci = (size_t)(off / RA__OBJ_CHUNK);
    if (by_src && status == RA__OBJ_RELAYED) {
        // Another node pulls it too: take it from there as it arrives.
        ra_pid_t alt = ra__rb_pid(r);
        char ep[256];
        ra__rb_str(r, ep, sizeof ep);
        if (r->bad || ci >= p->nch || p->no_relay) {
            return;
        }
        if (ra_pid_is_nil(p->alt) && ep[0] != '\0' && om->cfg.link != NULL) {
            (void)ra_link_route(om->cfg.link, alt.node, alt.proc, ep);
            p->alt = alt;
        }
        if (p->ch[ci] != CH_DONE) {
            ask(ctx, om, p, ci);
        }
        return;
    }
    if (by_alt && status != 0) {
        // The relay cannot give it: back to the source itself.
        p->alt = RA_PID_NIL;
        p->no_relay = true;
        for (size_t i = 0; i < p->nextch; i++) {
            if (p->ch[i] == CH_ASKED) {
                ask(ctx, om, p, i);
            }
        }
        return;
    }
    if (status != 0) {
        pull_end(ctx, om, p, status == RA_ENOENT ? RA_EOBJLOST : status,
                 status == RA_ENOENT ? "the node that had it no longer "
                 "has it" : ra_strerror(status));
        return;
    }
    size_t i = (size_t)(off / RA__OBJ_CHUNK);
    size_t want = i < p->nch ? (p->size - i * RA__OBJ_CHUNK < RA__OBJ_CHUNK
                                    ? p->size - i * RA__OBJ_CHUNK
                                    : RA__OBJ_CHUNK)
                             : 0;
    if (total != p->size || off % RA__OBJ_CHUNK != 0 || i >= p->nch ||
        n != want) {
        pull_end(ctx, om, p, RA_EBADMSG, "the node that has it sent a "
                 "chunk that does not fit the object");
        return;
    }
    if (p->ch[i] == CH_DONE) {
        return; // asked for twice, answered twice
    }
    memcpy(p->data + off, bytes, n);
    if (p->ch[i] == CH_ASKED) {
        p->nasked--;
    }
    p->ch[i] = CH_DONE;
    p->ndone++;
    p->progress_ms = ra__mono_ms();
    p->retry_ms = RETRY_MS;
    relay_queued(ctx, om, p, i, 0);
    if (p->ndone == p->nch) {
        pull_end(ctx, om, p, 0, NULL);
        return;
    }
    fill(ctx, om, p);
}

static void
on_tick(ra_ctx_t *ctx, objmgr_t *om)
{
    om->tick_armed = false;
    int64_t now = ra__mono_ms();
    pull_t *p = om->pulls;
    while (p != NULL) {
        pull_t *next = p->next;
        int64_t quiet = now - p->progress_ms;
        if (quiet >= (int64_t)om->cfg.pull_timeout_ms) {
            char why[128];
            snprintf(why, sizeof why, "no data came for %" PRId64 " ms "
                     "(node lost or cut off)", quiet);
            pull_end(ctx, om, p, RA_EOBJLOST, why);
        } else if (quiet >= (ra_pid_is_nil(p->alt) ? RETRY_MS
                                                   : RELAY_WAIT_MS) &&
                   now - p->asked_ms >= p->retry_ms) {
            // Requests or answers were lost with a session: ask again
            // for what is missing (a chunk that comes twice is taken
            // once).  A source that is only slow would be slowed further
            // by repeats, so the wait doubles until data comes again.
            p->asked_ms = now;
            p->retry_ms = p->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
                                                         : p->retry_ms * 2;
            // A relay that gives nothing is left for the source itself.
            p->alt = RA_PID_NIL;
            p->no_relay = true;
            size_t again = 0;
            for (size_t i = 0; i < p->nextch; i++) {
                if (p->ch[i] == CH_ASKED) {
                    ask(ctx, om, p, i);
                    again++;
                }
            }
            char hex[RA_OID_STRLEN];
            ra_log_warn("objmgr", "transfer of object %s from node %u made "
                        "no progress for %" PRId64 " ms (%zu of %zu chunks "
                        "here): asking again for %zu", ra_oid_str(p->oid, hex),
                        p->src.node, quiet, p->ndone, p->nch, again);
        }
        p = next;
    }
    if (om->pulls != NULL) {
        arm_tick(ctx, om);
    }
    unsigned i = 0;
    while (i < om->nlinger) {
        if (now < om->linger[i].ms) {
            arm_tick(ctx, om);
            i++;
            continue;
        }
        ra_objstore_info_t info;
        if (ra_objstore_info(om->cfg.store, om->linger[i].oid, &info) == 0 &&
            info.refs == 0) {
            (void)ra_objstore_delete(om->cfg.store, om->linger[i].oid);
        }
        om->linger[i] = om->linger[--om->nlinger];
    }
    recheck_owners(ctx, om);
}

// ---- serving ----

// stamp_put records oid in a table of RELAYS stamps (the oldest makes
// room); stamp_at returns its time, or 0.
static void
stamp_put(struct stamp *t, unsigned *n, ra_oid_t oid, int64_t ms)
{
    unsigned k = *n;
    for (unsigned i = 0; i < *n; i++) {
        if (ra_oid_eq(t[i].oid, oid)) {
            t[i].ms = ms;
            return;
        }
    }
    if (*n < RELAYS) {
        (*n)++;
    } else {
        k = 0;
        for (unsigned i = 1; i < RELAYS; i++) {
            if (t[i].ms < t[k].ms) {
                k = i;
            }
        }
    }
    t[k] = (struct stamp){oid, ms};
}

static int64_t
stamp_at(const struct stamp *t, unsigned n, ra_oid_t oid)
{
    for (unsigned i = 0; i < n; i++) {
        if (ra_oid_eq(t[i].oid, oid)) {
            return t[i].ms;
        }
    }
    return 0;
}

// send_part answers a GET: status 0 with the n bytes at data (the chunk
// at off of an object of size total), or an error status without bytes.
static void
send_part(ra_ctx_t *ctx, objmgr_t *om, ra_pid_t to, uint64_t xfer,
          int status, uint64_t off, uint64_t total, const void *data,
          uint32_t n)
{
    ra__wbuf_t h = {0};
    ra__wb_u8(&h, RA__OBJ_PART);
    ra__wb_u64(&h, xfer);
    ra__wb_u32(&h, (uint32_t)status);
    ra__wb_u64(&h, off);
    ra__wb_u64(&h, status == 0 ? total : 0);
    size_t body = status == 0 ? n : 0;
    ra_msg_t *m = NULL;
    if (h.err == 0 &&
        ra_msg_new_bytes(&m, RA__T_OBJ, NULL, h.len + body) == 0) {
        uint8_t *w = ra_msg_wdata(m);
        memcpy(w, h.p, h.len);
        if (body != 0) {
            memcpy(w + h.len, data, body);
        }
        if (ra_send(ctx, to, &m) != 0) {
            ra_msg_unref(&m);
        } else {
            om->served += body;
        }
    }
    ra__wb_free(&h);
}

static relay_t *
relay_of(objmgr_t *om, ra_oid_t oid)
{
    for (unsigned i = 0; i < om->nrelays; i++) {
        if (ra_oid_eq(om->relays[i].oid, oid)) {
            return &om->relays[i];
        }
    }
    return NULL;
}

// relay_check: a puller asks us (the source) for a chunk of oid.  When
// another puller asked for it lately, the new one is sent there
// (RA__OBJ_RELAYED with that puller's pid and endpoint): that puller
// passes on the chunks as they reach it, so a broadcast leaves this node
// about once, not once per node.  Otherwise the asker becomes the relay
// for later ones.  Returns true when the asker was sent away.
static bool
relay_check(ra_ctx_t *ctx, objmgr_t *om, ra_oid_t oid, ra_pid_t from,
            const char *ep, uint64_t xfer, uint64_t off)
{
    int64_t now = ra__mono_ms();
    relay_t *rl = relay_of(om, oid);
    bool same = rl != NULL && rl->peer.node == from.node &&
                rl->peer.proc == from.proc;
    if (rl != NULL && !same && now - rl->seen_ms < RELAY_MS) {
        ra__wbuf_t b = {0};
        ra__wb_u8(&b, RA__OBJ_PART);
        ra__wb_u64(&b, xfer);
        ra__wb_u32(&b, RA__OBJ_RELAYED);
        ra__wb_u64(&b, off);
        ra__wb_u64(&b, 0);
        ra__wb_pid(&b, rl->peer);
        ra__wb_str(&b, rl->ep);
        send_buf(ctx, from, &b);
        return true;
    }
    if (ep[0] == '\0') {
        return false;
    }
    if (rl == NULL) {
        // The oldest entry makes room.
        unsigned k = 0;
        if (om->nrelays < RELAYS) {
            k = om->nrelays++;
        } else {
            for (unsigned i = 1; i < RELAYS; i++) {
                if (om->relays[i].seen_ms < om->relays[k].seen_ms) {
                    k = i;
                }
            }
        }
        rl = &om->relays[k];
        rl->oid = oid;
    }
    rl->peer = from;
    snprintf(rl->ep, sizeof rl->ep, "%s", ep);
    rl->seen_ms = now;
    return false;
}

static void
on_get(ra_ctx_t *ctx, objmgr_t *om, ra__rbuf_t *r)
{
    uint64_t xfer = ra__rb_u64(r);
    ra_oid_t oid;
    ra__rb_oid(r, &oid);
    uint64_t off = ra__rb_u64(r);
    uint32_t n = ra__rb_u32(r);
    uint8_t flags = ra__rb_u8(r);
    char ep[256];
    ra__rb_str(r, ep, sizeof ep);
    ra_pid_t from = ra_sender(ctx);
    if (r->bad || n > RA__OBJ_CHUNK) {
        om->dropped++;
        return;
    }
    ra_objstore_view_t v = {0};
    int rc = om->cfg.store != NULL ? ra_objstore_get(om->cfg.store, oid, 0, &v)
                                   : RA_ENOENT;
    if (rc == 0) {
        if (off > v.size || n > v.size - off) {
            send_part(ctx, om, from, xfer, RA_EINVAL, off, 0, NULL, 0);
        } else if (!(flags & RA__GET_NO_RELAY) &&
                   relay_check(ctx, om, oid, from, ep, xfer, off)) {
            // sent to the relay
        } else {
            send_part(ctx, om, from, xfer, 0, off, v.size,
                      (const uint8_t *)v.data + off, n);
            stamp_put(om->served_lately, &om->nserved, oid, ra__mono_ms());
        }
        (void)ra_objstore_release(om->cfg.store, &v);
        return;
    }
    // Not in our store: we may be pulling it ourselves, and relay it.
    pull_t *p = pull_find(om, oid);
    size_t i = (size_t)(off / RA__OBJ_CHUNK);
    if (p == NULL || off % RA__OBJ_CHUNK != 0 || i >= p->nch ||
        n != (p->size - off < RA__OBJ_CHUNK ? p->size - off
                                            : RA__OBJ_CHUNK)) {
        send_part(ctx, om, from, xfer, RA_ENOENT, off, 0, NULL, 0);
        return;
    }
    stamp_put(om->served_lately, &om->nserved, oid, ra__mono_ms());
    if (p->ch[i] == CH_DONE) {
        send_part(ctx, om, from, xfer, 0, off, p->size, p->data + off, n);
        return;
    }
    served_t *q = malloc(sizeof *q);
    if (q == NULL) {
        send_part(ctx, om, from, xfer, RA_ENOMEM, off, 0, NULL, 0);
        return;
    }
    *q = (served_t){from, xfer, off, n, p->queued};
    p->queued = q;
}

// relay_queued answers the GETs waiting at p for chunk i (now here), or
// all of them with status when the pull ended without the object.
static void
relay_queued(ra_ctx_t *ctx, objmgr_t *om, pull_t *p, size_t i, int status)
{
    served_t **qq = &p->queued;
    while (*qq != NULL) {
        served_t *q = *qq;
        if (status == 0 && q->off / RA__OBJ_CHUNK != i) {
            qq = &q->next;
            continue;
        }
        if (status == 0) {
            send_part(ctx, om, q->to, q->xfer, 0, q->off, p->size,
                      p->data + q->off, q->n);
        } else {
            send_part(ctx, om, q->to, q->xfer, status, q->off, 0, NULL, 0);
        }
        *qq = q->next;
        free(q);
    }
}

// ---- holds: references kept for other processes ----

static owner_t *
owner_of(objmgr_t *om, ra_pid_t pid)
{
    for (size_t i = 0; i < om->nowners; i++) {
        if (om->owners[i].pid.node == pid.node &&
            om->owners[i].pid.proc == pid.proc) {
            return &om->owners[i];
        }
    }
    return NULL;
}

// drop_hold lets go of entry i: a copy kept for another node's owner is
// deleted; a worker's use of a pulled copy gives back its reference, and
// the copy goes once nobody holds one (this actor is the only one that
// deletes pulled copies, so a pull that just found one cannot lose it).
static void
drop_hold(ra_ctx_t *ctx, objmgr_t *om, size_t i)
{
    ra_objstore_t *st = om->cfg.store;
    hold_t *h = &om->holds[i];
    ra_objstore_info_t info;
    int64_t now = ra__mono_ms();
    int64_t lately = stamp_at(om->served_lately, om->nserved, h->oid);
    if (ra_objstore_unref(st, h->oid) != 0 ||
        (h->use && (ra_objstore_info(st, h->oid, &info) != 0 ||
                    info.refs != 0))) {
        // still used here
    } else if (h->use && lately != 0 && now - lately < RELAY_MS) {
        // Other nodes were taking it from here: keep it a while.
        stamp_put(om->linger, &om->nlinger, h->oid, now + RELAY_MS);
        arm_tick(ctx, om);
    } else {
        (void)ra_objstore_delete(st, h->oid);
    }
    owner_t *o = owner_of(om, h->owner);
    if (o != NULL && o->n > 0) {
        o->n--;
    }
    om->holds[i] = om->holds[--om->nholds];
}

// keep records that the store holds a reference to oid for process pid
// (a remote owner's copy, or a local worker's use of a pulled copy) and
// watches pid, so that the reference goes when pid is lost.
static void
keep(ra_ctx_t *ctx, objmgr_t *om, ra_oid_t oid, ra_pid_t pid, bool use)
{
    if (om->nholds == om->capholds) {
        size_t cap = om->capholds != 0 ? om->capholds * 2 : 64;
        hold_t *h = realloc(om->holds, cap * sizeof *h);
        if (h == NULL) {
            return;
        }
        om->holds = h;
        om->capholds = cap;
    }
    owner_t *o = owner_of(om, pid);
    if (o == NULL) {
        if (om->nowners == om->capowners) {
            size_t cap = om->capowners != 0 ? om->capowners * 2 : 16;
            owner_t *n = realloc(om->owners, cap * sizeof *n);
            if (n == NULL) {
                return;
            }
            om->owners = n;
            om->capowners = cap;
        }
        o = &om->owners[om->nowners];
        *o = (owner_t){.pid = pid};
        if (ra_monitor(ctx, pid, &o->mref) != 0) {
            return;
        }
        om->nowners++;
    }
    o->n++;
    om->holds[om->nholds++] = (hold_t){oid, pid, use};
}

static void
on_hold(ra_ctx_t *ctx, objmgr_t *om, ra__rbuf_t *r)
{
    ra_oid_t oid;
    ra__rb_oid(r, &oid);
    ra_pid_t owner = ra__rb_pid(r);
    ra_objstore_info_t info;
    if (r->bad || om->cfg.store == NULL ||
        ra_objstore_info(om->cfg.store, oid, &info) != 0) {
        return; // malformed, or freed already (FREE came first)
    }
    keep(ctx, om, oid, owner, false);
}

static void
on_free(ra_ctx_t *ctx, objmgr_t *om, ra__rbuf_t *r)
{
    ra_oid_t oid;
    ra__rb_oid(r, &oid);
    if (r->bad || om->cfg.store == NULL) {
        return;
    }
    for (size_t i = 0; i < om->nholds; i++) {
        if (!om->holds[i].use && ra_oid_eq(om->holds[i].oid, oid)) {
            drop_hold(ctx, om, i);
            return;
        }
    }
    // Not (yet) known as held: the worker's reference is still there.
    if (ra_objstore_unref(om->cfg.store, oid) == 0) {
        (void)ra_objstore_delete(om->cfg.store, oid);
    }
}

// owner_drop lets go of everything held for owner k and forgets it.
static void
owner_drop(ra_ctx_t *ctx, objmgr_t *om, size_t k)
{
    ra_pid_t who = om->owners[k].pid;
    size_t i = 0;
    while (i < om->nholds) {
        if (om->holds[i].owner.node == who.node &&
            om->holds[i].owner.proc == who.proc) {
            drop_hold(ctx, om, i);
        } else {
            i++;
        }
    }
    om->owners[k] = om->owners[--om->nowners];
}

// on_unuse: a worker is done with a copy pulled here for it.
static void
on_unuse(ra_ctx_t *ctx, objmgr_t *om, ra__rbuf_t *r)
{
    ra_oid_t oid;
    ra__rb_oid(r, &oid);
    ra_pid_t from = watch_of(ctx, r);
    if (r->bad || om->cfg.store == NULL) {
        return;
    }
    for (size_t i = 0; i < om->nholds; i++) {
        hold_t *h = &om->holds[i];
        if (h->use && h->owner.node == from.node &&
            h->owner.proc == from.proc && ra_oid_eq(h->oid, oid)) {
            drop_hold(ctx, om, i);
            return;
        }
    }
}

// on_down: an owner we hold copies for is gone (noproc, or it ended), or
// cut off (noconnection); a process of this node whose pid no longer
// exists is gone, not cut off.  A cut-off owner may come back with the
// link: it is watched again every OWNER_RECHECK_MS, and what it has is
// kept for OWNER_GRACE_MS, so a transfer that resumes after a partition
// still finds the object.
static void
on_down(ra_ctx_t *ctx, objmgr_t *om, ra_msg_t *msg)
{
    uint64_t mref;
    ra_pid_t pid;
    ra_reason_t why;
    if (ra_msg_down_info(msg, &mref, &pid, &why) != 0) {
        return;
    }
    for (size_t k = 0; k < om->nowners; k++) {
        owner_t *o = &om->owners[k];
        if (o->mref != mref) {
            continue;
        }
        o->mref = 0;
        int64_t now = ra__mono_ms();
        if (why == RA_NOCONNECTION && pid.node == ra_self(ctx).node &&
            !ra__proc_alive((int)pid.proc)) {
            // A process of this node that died (a killed worker): it
            // will not come back, and neither is its link cut.
            owner_drop(ctx, om, k);
            return;
        }
        if (why == RA_NOCONNECTION &&
            (o->cut_ms == 0 || now - o->cut_ms < OWNER_GRACE_MS)) {
            if (o->cut_ms == 0) {
                o->cut_ms = now;
            }
            o->retry_ms = now + OWNER_RECHECK_MS;
            arm_tick(ctx, om);
            return;
        }
        owner_drop(ctx, om, k);
        return;
    }
}

// recheck_owners watches cut-off owners again: one that is reachable
// stays (its monitor holds), one still cut off comes back to on_down.
static void
recheck_owners(ra_ctx_t *ctx, objmgr_t *om)
{
    int64_t now = ra__mono_ms();
    for (size_t k = 0; k < om->nowners; k++) {
        owner_t *o = &om->owners[k];
        if (o->cut_ms == 0) {
            continue;
        }
        if (o->mref != 0) {
            // Watched again: once that has held for a while, it is back.
            if (now >= o->retry_ms) {
                o->cut_ms = 0;
            } else {
                arm_tick(ctx, om);
            }
            continue;
        }
        if (now >= o->retry_ms) {
            o->retry_ms = now + OWNER_RECHECK_MS;
            if (ra_monitor(ctx, o->pid, &o->mref) != 0) {
                o->mref = 0;
            }
        }
        arm_tick(ctx, om);
    }
}

// on_stats answers a call with the counters: {u64 pulled, u64 failed,
// u64 bytes in, u64 microseconds of pulls, u64 bytes served}.
static void
on_stats(ra_ctx_t *ctx, objmgr_t *om)
{
    ra__wbuf_t b = {0};
    ra__wb_u64(&b, om->pulled);
    ra__wb_u64(&b, om->failed);
    ra__wb_u64(&b, om->bytes_in);
    ra__wb_u64(&b, om->us_in);
    ra__wb_u64(&b, om->served);
    ra_msg_t *m = NULL;
    if (ra__wb_msg(&b, RA__T_OBJ, &m) == 0 && ra_reply(ctx, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// adopt takes over, on an incarnation's first message, what the one
// before held for other processes: each hold is kept again (its process
// watched anew), and the copies kept a while are looked at by ticks.
static void
adopt(ra_ctx_t *ctx, objmgr_t *om)
{
    om->booted = true;
    ra__objmgr_sys_t *s = om->sys;
    if (s == NULL || om->incarnation == 0) {
        return;
    }
    hold_t *h = s->holds;
    size_t n = s->nholds;
    s->holds = NULL;
    s->nholds = 0;
    for (size_t i = 0; i < n; i++) {
        keep(ctx, om, h[i].oid, h[i].owner, h[i].use);
    }
    free(h);
    om->nlinger = s->nlinger;
    memcpy(om->linger, s->linger, sizeof om->linger);
    s->nlinger = 0;
    if (om->nlinger > 0) {
        arm_tick(ctx, om);
    }
    ra_log_warn("objmgr", "the object manager (actor %u.%u.%u) was "
                "restarted in place by its supervisor (restart %u): its "
                "transfers were aborted (their waiters ask again); it took "
                "over %zu %s held for other processes",
                ra_self(ctx).node, ra_self(ctx).proc, ra_self(ctx).id,
                om->incarnation, n, n == 1 ? "object" : "objects");
}

static int
objmgr_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    objmgr_t *om = state;
    if (!om->booted) {
        adopt(ctx, om);
    }
    if (ra_msg_kind(msg) == RA_MSG_DOWN) {
        on_down(ctx, om, msg);
        return 0;
    }
    if (ra_msg_tag(msg) == RA__T_TICK) {
        size_t len = 0;
        const uint8_t *p = ra_msg_data(msg, &len);
        if (ra_pid_is_nil(ra_sender(ctx)) && len == 1 &&
            p[0] == (uint8_t)om->incarnation) {
            on_tick(ctx, om);
        }
        return 0;
    }
    if (ra_msg_tag(msg) != RA__T_OBJ) {
        return 0;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, msg);
    switch (ra__rb_u8(&r)) {
    case RA__OBJ_PULL:
        on_pull(ctx, om, &r);
        break;
    case RA__OBJ_GET:
        on_get(ctx, om, &r);
        break;
    case RA__OBJ_PART:
        on_part(ctx, om, &r);
        break;
    case RA__OBJ_HOLD:
        on_hold(ctx, om, &r);
        break;
    case RA__OBJ_FREE:
        on_free(ctx, om, &r);
        break;
    case RA__OBJ_UNUSE:
        on_unuse(ctx, om, &r);
        break;
    case RA__OBJ_STATS:
        on_stats(ctx, om);
        break;
    default:
        om->dropped++;
        ra_log_warn("objmgr", "unknown object message dropped");
        break;
    }
    return 0;
}

static void
objmgr_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)reason;
    objmgr_t *om = state;
    if (om == NULL) {
        return;
    }
    ra__objmgr_sys_t *s = om->sys;
    if (s != NULL) {
        // The next incarnation keeps what this one held for others (the
        // store's references stay taken meanwhile).
        hold_t *all = s->holds;
        size_t n = s->nholds + om->nholds;
        hold_t *h = n > 0 ? realloc(all, n * sizeof *h) : all;
        if (h != NULL) {
            if (om->nholds > 0) {
                memcpy(h + s->nholds, om->holds, om->nholds * sizeof *h);
            }
            s->holds = h;
            s->nholds = n;
        }
        memcpy(s->linger, om->linger, sizeof s->linger);
        s->nlinger = om->nlinger;
    }
    while (om->pulls != NULL) {
        pull_t *p = om->pulls;
        om->pulls = p->next;
        if (om->cfg.store != NULL) {
            (void)ra_objstore_abort(om->cfg.store, p->oid);
        }
        while (p->queued != NULL) {
            served_t *q = p->queued;
            p->queued = q->next;
            free(q);
        }
        free(p->ch);
        free(p->w);
        free(p);
    }
    free(om->holds);
    free(om->owners);
    free(om);
}

static const ra_behaviour_t objmgr_beh = {
    .name = "rayo-objmgr",
    .handle = objmgr_handle,
    .terminate = objmgr_terminate,
};

// objmgr_child_start is the object manager's start function (its
// supervisor runs it).
static int
objmgr_child_start(ra_ctx_t *sup, void *arg, void *extra, ra_pid_t *out,
                   uint64_t *info)
{
    (void)extra;
    (void)info;
    ra__objmgr_sys_t *s = arg;
    objmgr_t *om = calloc(1, sizeof *om);
    if (om == NULL) {
        return RA_ENOMEM;
    }
    om->cfg = s->cfg;
    snprintf(om->ep, sizeof om->ep, "%s", s->ep);
    if (om->cfg.pull_timeout_ms == 0) {
        om->cfg.pull_timeout_ms = PULL_TIMEOUT_MS;
    }
    om->sys = s;
    om->incarnation = s->starts;
    // (A first message, so that an incarnation after the first takes over
    // what it holds at once.)
    uint8_t none = 0xff;
    ra_pid_t pid;
    bool taken;
    int rc = ra__keep_spawn(sup, s->slot, &objmgr_beh, om,
                            om->incarnation > 0 ? &none : NULL, 1, &taken,
                            &pid);
    if (rc != 0) {
        if (!taken) {
            free(om);
        }
        return rc;
    }
    s->starts++;
    s->pid = pid;
    *out = pid;
    return 0;
}

int
ra__objmgr_start(ra_runtime_t *rt, const ra__objmgr_cfg_t *cfg,
                 ra__objmgr_sys_t **sys, ra_pid_t *out, ra_pid_t *sup)
{
    ra__objmgr_sys_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        return RA_ENOMEM;
    }
    s->cfg = *cfg;
    snprintf(s->ep, sizeof s->ep, "%s", cfg->ep != NULL ? cfg->ep : "");
    s->cfg.ep = s->ep;
    int rc = ra__keep_start(rt, "objmgr", objmgr_child_start, s, &s->slot,
                            sup);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s->pid;
    *sys = s;
    return 0;
}

void
ra__objmgr_sys_free(ra__objmgr_sys_t **sys)
{
    if (*sys != NULL) {
        free((*sys)->holds);
        free(*sys);
        *sys = NULL;
    }
}

// link_dist.c - actors across processes: the runtime's distribution hooks,
// what arrives for local actors, and the records that make a lost peer
// fire every link, monitor and call that crossed it.
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "link_impl.h"
#include "ra_log.h"

#define MSG_COST_EXTRA 160 // envelope bytes beside a payload, roughly

// Records are keyed (local pid, remote pid) for links and (ref, 0) for
// monitors, calls and node monitors.
static ra__hkey_t
link_key(ra_pid_t local, ra_pid_t remote)
{
    return (ra__hkey_t){ra__pid_key(local), ra__pid_key(remote)};
}

static ra__hkey_t
ref_key(uint64_t ref)
{
    return (ra__hkey_t){ref, 0};
}

bool
ra__link_has_records(ra__lpeer_t *p)
{
    pthread_mutex_lock(&p->mtx);
    bool any = p->recs.n > 0 || p->proxies_by_rcref.n > 0 || p->rmons.n > 0;
    pthread_mutex_unlock(&p->mtx);
    return any;
}

static int
rec_add(ra__lpeer_t *p, ra__hkey_t k, uint8_t kind, ra_pid_t local,
        ra_pid_t remote, uint64_t ref)
{
    ra__lrec_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        return RA_ENOMEM;
    }
    *r = (ra__lrec_t){local, remote, ref, kind};
    pthread_mutex_lock(&p->mtx);
    ra__lrec_t *old = ra__hmap_get(&p->recs, k);
    int rc = old != NULL ? 0 : ra__hmap_put(&p->recs, k, r);
    pthread_mutex_unlock(&p->mtx);
    if (old != NULL || rc != 0) {
        free(r);
    }
    return rc;
}

// Removes a record; returns its kind, or 0 when there was none.
static uint8_t
rec_del(ra__lpeer_t *p, ra__hkey_t k)
{
    pthread_mutex_lock(&p->mtx);
    ra__lrec_t *r = ra__hmap_del(&p->recs, k);
    pthread_mutex_unlock(&p->mtx);
    uint8_t kind = r != NULL ? r->kind : 0;
    free(r);
    return kind;
}

// Monitors that actors of the peer hold on ours are remembered too, so that
// losing the peer takes them off our actors (as Erlang does).
static ra__hkey_t
rmon_key(uint64_t ref, ra_pid_t watcher)
{
    return (ra__hkey_t){ref, ra__pid_key(watcher)};
}

static void
rmon_add(ra__lpeer_t *p, ra_pid_t target, ra_pid_t watcher, uint64_t ref)
{
    ra__lrec_t *r = malloc(sizeof(*r));
    if (r == NULL) {
        return; // it stays until the target ends: a few bytes
    }
    *r = (ra__lrec_t){target, watcher, ref, RA__REC_MON};
    pthread_mutex_lock(&p->mtx);
    ra__lrec_t *old = ra__hmap_get(&p->rmons, rmon_key(ref, watcher));
    if (old != NULL || ra__hmap_put(&p->rmons, rmon_key(ref, watcher), r)) {
        free(r);
    }
    pthread_mutex_unlock(&p->mtx);
}

static void
rmon_del(ra__lpeer_t *p, ra_pid_t watcher, uint64_t ref)
{
    pthread_mutex_lock(&p->mtx);
    ra__lrec_t *r = ra__hmap_del(&p->rmons, rmon_key(ref, watcher));
    pthread_mutex_unlock(&p->mtx);
    free(r);
}

static ra__lcmd_t *
cmd_new(uint8_t op, ra_pid_t to, ra_pid_t from)
{
    ra__lcmd_t *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->op = op;
        c->to = to;
        c->from = from;
        c->cost = MSG_COST_EXTRA;
    }
    return c;
}

static int
send_sig(ra_link_t *l, ra__lpeer_t *p, uint8_t sig, ra_pid_t from,
         ra_pid_t to, ra_reason_t reason, uint64_t ref)
{
    ra__lcmd_t *c = cmd_new(RA__OP_SIG, to, from);
    if (c == NULL) {
        return RA_ENOMEM;
    }
    c->sig = sig;
    c->reason = reason;
    c->ref = (int64_t)ref;
    return ra__link_enqueue(l, p, c);
}

// The peer of pid, if it can be reached (a session, or a route to dial).
static ra__lpeer_t *
reachable(ra_link_t *l, ra_pid_t pid)
{
    ra__lpeer_t *p = ra__link_peer(l, pid.node, pid.proc, false);
    if (p == NULL) {
        return NULL;
    }
    if (atomic_load(&p->state) != RA__PEER_IDLE) {
        return p;
    }
    pthread_mutex_lock(&p->mtx);
    bool routed = p->route[0] != 0;
    pthread_mutex_unlock(&p->mtx);
    return routed ? p : NULL;
}

// ---- the runtime's hooks ----

static int
d_deliver(void *d, ra_pid_t to, ra_msg_t **msg, ra_pid_t from, uint64_t cref,
          bool system)
{
    ra_link_t *l = d;
    ra_msg_t *m = *msg;
    if (to.id == 0) {
        return RA_ENOPROC;
    }
    ra__lpeer_t *p = reachable(l, to);
    if (p == NULL) {
        return RA_ENOCONN;
    }
    int rc;
    switch (m->kind) {
    case RA_MSG_BYTES:
    case RA_MSG_BSON: {
        if ((size_t)m->len + MSG_COST_EXTRA > l->o.max_msg) {
            return RA_EFULL; // bigger than the peer accepts, even chunked
        }
        ra__lcmd_t *c = cmd_new(RA__OP_MSG, to, from);
        if (c == NULL) {
            return RA_ENOMEM;
        }
        c->msg = m;
        c->cref = (int64_t)cref;
        c->cost += m->len;
        (void)system;
        rc = ra__link_enqueue(l, p, c);
        if (rc == 0) {
            *msg = NULL;
        } else {
            c->msg = NULL;
            free(c);
        }
        return rc;
    }
    case RA_MSG_SIGNAL: {
        ra__sigdata_t *sd = ra__sig(m);
        if (m->sig == RA__SIG_LINK_EXIT) {
            // A local actor ended: its link to the remote one is gone.
            rec_del(p, link_key(sd->pid, to));
        } else if (m->sig != RA__SIG_EXIT || ra_pid_is_nil(sd->pid)) {
            return RA_ENOTSUP; // exits from outside any actor stay local
        }
        rc = send_sig(l, p, RA_WIRE_SIG_EXIT, sd->pid, to, sd->reason, 0);
        break;
    }
    case RA_MSG_DOWN: {
        ra__sigdata_t *sd = ra__sig(m);
        rmon_del(p, to, sd->ref); // the monitor fired: it is gone
        rc = send_sig(l, p, RA_WIRE_SIG_DOWN, sd->pid, to, sd->reason,
                      sd->ref);
        break;
    }
    default:
        return RA_EINVAL;
    }
    if (rc == 0) {
        ra_msg_unref(msg);
    }
    return rc;
}

static int
d_link(void *d, ra_pid_t self, ra_pid_t remote)
{
    ra_link_t *l = d;
    ra__lpeer_t *p = remote.id != 0 ? reachable(l, remote) : NULL;
    if (p == NULL) {
        return remote.id == 0 ? RA_ENOPROC : RA_ENOCONN;
    }
    int rc = rec_add(p, link_key(self, remote), RA__REC_LINK, self, remote,
                     0);
    if (rc == 0 &&
        (rc = send_sig(l, p, RA_WIRE_SIG_LINK, self, remote, 0, 0)) != 0) {
        rec_del(p, link_key(self, remote));
    }
    return rc;
}

static void
d_unlink(void *d, ra_pid_t self, ra_pid_t remote)
{
    ra_link_t *l = d;
    ra__lpeer_t *p = ra__link_peer(l, remote.node, remote.proc, false);
    if (p != NULL && rec_del(p, link_key(self, remote)) != 0) {
        send_sig(l, p, RA_WIRE_SIG_UNLINK, self, remote, 0, 0);
    }
}

static int
d_monitor(void *d, ra_pid_t self, ra_pid_t remote, uint64_t ref)
{
    ra_link_t *l = d;
    ra__lpeer_t *p = remote.id != 0 ? reachable(l, remote) : NULL;
    if (p == NULL) {
        return remote.id == 0 ? RA_EINVAL : RA_ENOCONN;
    }
    int rc = rec_add(p, ref_key(ref), RA__REC_MON, self, remote, ref);
    if (rc == 0 && (rc = send_sig(l, p, RA_WIRE_SIG_MONITOR, self, remote, 0,
                                  ref)) != 0) {
        rec_del(p, ref_key(ref));
    }
    return rc;
}

static void
d_demonitor(void *d, ra_pid_t self, ra_pid_t remote, uint64_t ref)
{
    ra_link_t *l = d;
    ra__lpeer_t *p = ra__link_peer(l, remote.node, remote.proc, false);
    if (p == NULL) {
        return;
    }
    uint8_t kind = rec_del(p, ref_key(ref));
    if ((kind == RA__REC_MON || kind == RA__REC_CALL) &&
        atomic_load(&p->state) != RA__PEER_IDLE) {
        send_sig(l, p, RA_WIRE_SIG_DEMONITOR, self, remote, 0, ref);
    }
}

static int
d_call(void *d, ra_pid_t self, ra_pid_t to, ra_msg_t **req, uint64_t cref)
{
    ra_link_t *l = d;
    ra_msg_t *m = *req;
    if (to.id == 0) {
        return RA_ENOPROC;
    }
    if (m->kind != RA_MSG_BYTES && m->kind != RA_MSG_BSON) {
        return RA_EINVAL;
    }
    if ((size_t)m->len + MSG_COST_EXTRA > l->o.max_msg) {
        return RA_EFULL;
    }
    ra__lpeer_t *p = reachable(l, to);
    if (p == NULL) {
        return RA_ENOCONN;
    }
    uint64_t ref = cref | RA__REF_CALL;
    ra__lcmd_t *c = cmd_new(RA__OP_MSG, to, self);
    if (c == NULL) {
        return RA_ENOMEM;
    }
    c->msg = m;
    c->cref = (int64_t)cref;
    c->cost += m->len;
    int rc = rec_add(p, ref_key(ref), RA__REC_CALL, self, to, ref);
    if (rc == 0 && (rc = ra__link_enqueue(l, p, c)) != 0) {
        rec_del(p, ref_key(ref));
    }
    if (rc != 0) {
        c->msg = NULL;
        free(c);
        return rc;
    }
    *req = NULL;
    return 0;
}

static void
d_call_end(void *d, ra_pid_t self, ra_pid_t to, uint64_t cref, bool replied)
{
    ra_link_t *l = d;
    ra__lpeer_t *p = ra__link_peer(l, to.node, to.proc, false);
    uint64_t ref = cref | RA__REF_CALL;
    if (p != NULL && rec_del(p, ref_key(ref)) == RA__REC_CALL && !replied &&
        atomic_load(&p->state) != RA__PEER_IDLE) {
        // Given up (timeout): the callee's side still watches for us.
        send_sig(l, p, RA_WIRE_SIG_DEMONITOR, self, to, 0, ref);
    }
}

static ra__lproxy_t *
proxy_take(ra_link_t *l, uint64_t id)
{
    pthread_mutex_lock(&l->proxy_mtx);
    ra__lproxy_t *x = ra__hmap_del(&l->proxies, ref_key(id));
    pthread_mutex_unlock(&l->proxy_mtx);
    return x;
}

static int
d_reply(void *d, uint64_t cref, ra_msg_t **reply)
{
    ra_link_t *l = d;
    ra__lproxy_t *x = proxy_take(l, cref);
    if (x == NULL) {
        ra_msg_unref(reply); // the caller gave up, or its peer was lost
        return 0;
    }
    ra__lpeer_t *p = x->peer;
    // Answered: the callee no longer needs watching for the caller.
    ra__dist_demonitor_in(l->rt, x->callee, x->caller,
                          (uint64_t)x->rcref | RA__REF_CALL);
    rmon_del(p, x->caller, (uint64_t)x->rcref | RA__REF_CALL);
    pthread_mutex_lock(&p->mtx);
    ra__hmap_del(&p->proxies_by_rcref, ref_key((uint64_t)x->rcref));
    pthread_mutex_unlock(&p->mtx);
    ra_msg_t *m = *reply;
    int rc = RA_EINVAL;
    if (m->kind == RA_MSG_BYTES || m->kind == RA_MSG_BSON) {
        ra__lcmd_t *c = cmd_new(RA__OP_MSG, x->caller, RA_PID_NIL);
        rc = RA_ENOMEM;
        if (c != NULL) {
            c->msg = m;
            c->cref = x->rcref;
            c->rep = true;
            c->cost += m->len;
            rc = ra__link_enqueue(l, p, c);
            if (rc == 0) {
                *reply = NULL;
            } else {
                c->msg = NULL;
                free(c);
            }
        }
    }
    free(x);
    if (rc != 0) {
        ra_msg_unref(reply);
    }
    return rc;
}

const ra__dist_ops_t ra__link_ops = {
    d_deliver, d_link,  d_unlink,   d_monitor,
    d_demonitor, d_call, d_call_end, d_reply,
};

// ---- what arrives ----

static bool
is_local(ra_link_t *l, ra_pid_t pid)
{
    return pid.node == l->node && pid.proc == l->proc && pid.id != 0;
}

static bool
from_peer(ra__lpeer_t *p, ra_pid_t pid)
{
    return pid.node == p->node && pid.proc == p->proc;
}

static void
deliver_signal(ra_link_t *l, ra_pid_t to, uint8_t kind, uint8_t sig,
               ra_pid_t pid, ra_reason_t reason, uint64_t ref)
{
    ra_msg_t *m = ra__msg_new_signal(kind, sig, pid, reason, ref);
    if (m == NULL) {
        ra_log_err("link", "out of memory delivering a signal");
        return;
    }
    if (ra__deliver(l->rt, to, &m, pid, 0, true) != 0) {
        ra_msg_unref(&m);
    }
}

static void
zmsg_release(void *arg)
{
    zmq_msg_close(arg);
    free(arg);
}

static void
buf_release(void *arg)
{
    ra_wire_free(arg);
}

// Builds the message of a msg frame.  A large bytes body is not copied:
// the message takes over the received buffer (the ZeroMQ message or the
// reassembled envelope) that the I/O thread offers in l->steal_*.
static int
frame_msg(ra_link_t *l, const ra_wire_frame_t *f, ra_msg_t **out)
{
    if (f->body_kind != RA_WIRE_BODY_BYTES || f->body_len < ZC_MIN) {
        return ra_wire_frame_msg(f, out);
    }
    if (l->steal_zmsg != NULL) {
        const uint8_t *d = zmq_msg_data(l->steal_zmsg);
        size_t n = zmq_msg_size(l->steal_zmsg);
        zmq_msg_t *z = malloc(sizeof(*z));
        if (z != NULL && f->body >= d && f->body + f->body_len <= d + n) {
            zmq_msg_init(z);
            zmq_msg_move(z, l->steal_zmsg); // large: the bytes stay put
            l->steal_zmsg = NULL;
            int rc = ra__msg_new_ext(out, f->tag, f->body, f->body_len,
                                     zmsg_release, z);
            if (rc != 0) {
                rc = ra_wire_frame_msg(f, out);
                zmsg_release(z);
            } else {
                l->st.zero_copy_in++;
            }
            return rc;
        }
        free(z);
    }
    if (l->steal_buf != NULL && f->body >= l->steal_buf &&
        f->body + f->body_len <= l->steal_buf + l->steal_len) {
        uint8_t *b = l->steal_buf;
        if (ra__msg_new_ext(out, f->tag, f->body, f->body_len, buf_release,
                            b) == 0) {
            l->steal_buf = NULL;
            l->st.zero_copy_in++;
            return 0;
        }
    }
    return ra_wire_frame_msg(f, out);
}

void
ra__link_on_msg(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    if (!is_local(l, f->to) ||
        (!ra_pid_is_nil(f->from) && !from_peer(p, f->from))) {
        l->st.refused++;
        return;
    }
    l->st.msgs_in++;
    ra_msg_t *m = NULL;
    if (frame_msg(l, f, &m) != 0) {
        return;
    }
    if (f->rep) {
        if ((uint64_t)f->cref & RA__CREF_REMOTE) {
            ra_msg_unref(&m);
            return;
        }
        ra_reply_to(l->rt, (uint64_t)f->cref, &m);
        return;
    }
    uint64_t cref = 0;
    ra__lproxy_t *x = NULL;
    if (f->cref != 0) {
        // A call: the local actor gets a reference that routes its reply
        // back here.
        x = malloc(sizeof(*x));
        if (x == NULL) {
            ra_msg_unref(&m);
            return;
        }
        pthread_mutex_lock(&l->proxy_mtx);
        x->id = RA__CREF_REMOTE | (++l->proxy_seq & (RA__REF_CALL - 1));
        x->rcref = f->cref;
        x->caller = f->from;
        x->callee = f->to;
        x->peer = p;
        int rc = ra__hmap_put(&l->proxies, ref_key(x->id), x);
        pthread_mutex_unlock(&l->proxy_mtx);
        if (rc == 0) {
            pthread_mutex_lock(&p->mtx);
            rc = ra__hmap_put(&p->proxies_by_rcref,
                              ref_key((uint64_t)f->cref), x);
            pthread_mutex_unlock(&p->mtx);
            if (rc != 0) {
                proxy_take(l, x->id);
            }
        }
        if (rc != 0) {
            free(x);
            ra_msg_unref(&m);
            return;
        }
        cref = x->id;
    }
    int rc = 0;
    uint64_t cmon = (uint64_t)f->cref | RA__REF_CALL;
    if (x != NULL) {
        // The caller's call monitor: a DOWN for it if the callee ends
        // before it replies.
        rc = ra__dist_monitor_in(l->rt, f->to, f->from, cmon);
        if (rc == 0) {
            rmon_add(p, f->to, f->from, cmon);
        }
    }
    if (rc == 0) {
        rc = ra__deliver(l->rt, f->to, &m, f->from, cref, false);
        if (rc == 0) {
            return;
        }
        if (x != NULL) {
            ra__dist_demonitor_in(l->rt, f->to, f->from, cmon);
            rmon_del(p, f->from, cmon);
        }
    }
    ra_msg_unref(&m);
    if (rc == RA_ENOPROC) {
        l->st.no_proc++;
    } else {
        l->st.full++;
    }
    if (x != NULL && proxy_take(l, x->id) != NULL) {
        pthread_mutex_lock(&p->mtx);
        ra__hmap_del(&p->proxies_by_rcref, ref_key((uint64_t)f->cref));
        pthread_mutex_unlock(&p->mtx);
        free(x);
        ra__link_send_err(l, p, rc, f->from, f->cref,
                          rc == RA_ENOPROC ? "no such actor"
                                           : "mailbox full");
    }
}

void
ra__link_on_batch(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    const uint8_t *pos = f->data;
    size_t left = f->data_len;
    ra_wire_rec_t rec;
    // The codec checked every record; read them again to deliver.
    while (left > 0 && ra_wire_batch_next(&pos, &left, &rec) == 0) {
        ra_pid_t to = {l->node, l->proc, rec.to_id, rec.to_gen};
        ra_pid_t from = RA_PID_NIL;
        if (rec.from_id != 0) {
            from = (ra_pid_t){p->node, p->proc, rec.from_id, rec.from_gen};
        }
        ra_msg_t *m = NULL;
        int rc;
        if (rec.body_kind == RA_WIRE_BODY_BSON) {
            bson_t doc;
            rc = bson_init_static(&doc, rec.body, rec.body_len)
                     ? ra_msg_new_bson(&m, rec.tag, &doc)
                     : RA_EBADMSG;
        } else {
            rc = ra_msg_new_bytes(&m, rec.tag, rec.body, rec.body_len);
        }
        if (rc != 0) {
            continue;
        }
        l->st.msgs_in++;
        rc = ra__deliver(l->rt, to, &m, from, 0, false);
        if (rc != 0) {
            ra_msg_unref(&m);
            if (rc == RA_ENOPROC) {
                l->st.no_proc++;
            } else {
                l->st.full++;
            }
        }
    }
}

void
ra__link_on_sig(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    if (!is_local(l, f->to) || !from_peer(p, f->from)) {
        l->st.refused++;
        return;
    }
    ra_runtime_t *rt = l->rt;
    switch (f->sig) {
    case RA_WIRE_SIG_EXIT: {
        bool linked = rec_del(p, link_key(f->to, f->from)) != 0;
        deliver_signal(l, f->to, RA_MSG_SIGNAL,
                       linked ? RA__SIG_LINK_EXIT : RA__SIG_EXIT, f->from,
                       f->reason, 0);
        break;
    }
    case RA_WIRE_SIG_LINK:
        if (ra__dist_link_in(rt, f->to, f->from) != 0 ||
            rec_add(p, link_key(f->to, f->from), RA__REC_LINK, f->to,
                    f->from, 0) != 0) {
            ra__dist_unlink_in(rt, f->to, f->from);
            send_sig(l, p, RA_WIRE_SIG_EXIT, f->to, f->from, RA_NOPROC, 0);
        }
        break;
    case RA_WIRE_SIG_UNLINK:
        ra__dist_unlink_in(rt, f->to, f->from);
        rec_del(p, link_key(f->to, f->from));
        break;
    case RA_WIRE_SIG_MONITOR:
        if (ra__dist_monitor_in(rt, f->to, f->from, (uint64_t)f->ref) != 0) {
            send_sig(l, p, RA_WIRE_SIG_DOWN, f->to, f->from, RA_NOPROC,
                     (uint64_t)f->ref);
        } else {
            rmon_add(p, f->to, f->from, (uint64_t)f->ref);
        }
        break;
    case RA_WIRE_SIG_DEMONITOR:
        ra__dist_demonitor_in(rt, f->to, f->from, (uint64_t)f->ref);
        rmon_del(p, f->from, (uint64_t)f->ref);
        if ((uint64_t)f->ref & RA__REF_CALL) {
            // The caller is done with this call: forget its reply route.
            // The proxy is taken while the peer's lock is held: a reply
            // on its way (d_reply) that took it first frees it only
            // after that lock, so x->id is still there to read.
            uint64_t rcref = (uint64_t)f->ref & ~RA__REF_CALL;
            pthread_mutex_lock(&p->mtx);
            ra__lproxy_t *x = ra__hmap_del(&p->proxies_by_rcref,
                                           ref_key(rcref));
            bool ours = x != NULL && proxy_take(l, x->id) != NULL;
            pthread_mutex_unlock(&p->mtx);
            if (ours) {
                free(x);
            }
        }
        break;
    case RA_WIRE_SIG_DOWN: {
        uint8_t kind = rec_del(p, ref_key((uint64_t)f->ref));
        if (kind == RA__REC_CALL) {
            ra__call_fail(rt, (uint64_t)f->ref & ~RA__REF_CALL, RA_ENOPROC);
        } else if (kind == RA__REC_MON) {
            deliver_signal(l, f->to, RA_MSG_DOWN, 0, f->from, f->reason,
                           (uint64_t)f->ref);
        }
        break;
    }
    default:
        break;
    }
}

void
ra__link_on_err(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    ra_log_debug("link", "peer %u.%u answered error %s: %s", p->node,
                 p->proc, ra_err_name(f->code),
                 f->text != NULL ? f->text : "");
    if (f->cref != 0 && !((uint64_t)f->cref & RA__CREF_REMOTE) &&
        (f->to.id == 0 || is_local(l, f->to))) {
        ra__call_fail(l->rt, (uint64_t)f->cref, f->code);
    }
}

void
ra__link_fire_lost(ra_link_t *l, ra__lpeer_t *p, ra_reason_t reason)
{
    pthread_mutex_lock(&p->mtx);
    ra__hmap_t recs = p->recs, prox = p->proxies_by_rcref, rmons = p->rmons;
    memset(&p->recs, 0, sizeof(p->recs));
    memset(&p->proxies_by_rcref, 0, sizeof(p->proxies_by_rcref));
    memset(&p->rmons, 0, sizeof(p->rmons));
    // The call proxies are taken from the link's table under the peer's
    // lock: one that a reply on its way (d_reply) took first is its to
    // free, which it does only after this lock, and is left alone.
    for (size_t i = 0; i < prox.cap; i++) {
        if (ra__hmap_live(&prox, i) &&
            proxy_take(l, ((ra__lproxy_t *)prox.v[i].val)->id) == NULL) {
            prox.v[i].val = NULL;
        }
    }
    pthread_mutex_unlock(&p->mtx);
    for (size_t i = 0; i < rmons.cap; i++) {
        if (ra__hmap_live(&rmons, i)) {
            ra__lrec_t *r = rmons.v[i].val;
            ra__dist_demonitor_in(l->rt, r->local, r->remote, r->ref);
            free(r);
        }
    }
    ra__hmap_fini(&rmons);
    if (reason == RA_NORMAL) {
        reason = RA_NOCONNECTION; // whatever ended it, the peer is gone
    }
    for (size_t i = 0; i < recs.cap; i++) {
        if (!ra__hmap_live(&recs, i)) {
            continue;
        }
        ra__lrec_t *r = recs.v[i].val;
        switch (r->kind) {
        case RA__REC_LINK:
            deliver_signal(l, r->local, RA_MSG_SIGNAL, RA__SIG_LINK_EXIT,
                           r->remote, reason, 0);
            break;
        case RA__REC_MON:
        case RA__REC_NODE:
            deliver_signal(l, r->local, RA_MSG_DOWN, 0, r->remote, reason,
                           r->ref);
            break;
        case RA__REC_CALL:
            ra__call_fail(l->rt, r->ref & ~RA__REF_CALL, RA_ENOCONN);
            break;
        default:
            break;
        }
        free(r);
    }
    ra__hmap_fini(&recs);
    for (size_t i = 0; i < prox.cap; i++) {
        if (ra__hmap_live(&prox, i)) {
            free(prox.v[i].val); // ours: the replies' were emptied above
        }
    }
    ra__hmap_fini(&prox);
}

void
ra__link_drop_proxies(ra_link_t *l)
{
    pthread_mutex_lock(&l->proxy_mtx);
    for (size_t i = 0; i < l->proxies.cap; i++) {
        if (ra__hmap_live(&l->proxies, i)) {
            free(l->proxies.v[i].val);
        }
    }
    ra__hmap_fini(&l->proxies);
    pthread_mutex_unlock(&l->proxy_mtx);
}

// ---- node monitors and events ----

int
ra_link_monitor_node(ra_ctx_t *ctx, uint32_t node, uint32_t proc,
                     uint64_t *ref)
{
    if (ctx == NULL || ref == NULL) {
        return RA_EINVAL;
    }
    ra_runtime_t *rt = ra_ctx_runtime(ctx);
    ra_pid_t self = ra_self(ctx);
    ra_pid_t target = {node, proc, 0, 0};
    if (!ra__is_remote(rt, target)) {
        return RA_EINVAL;
    }
    const ra__dist_ops_t *ops = ra__dist_enter(rt);
    if (ops == NULL) {
        return RA_ENOCONN;
    }
    ra_link_t *l = rt->dist;
    int rc = ra__dist_watch(ctx, target, ref);
    if (rc == 0) {
        ra__lpeer_t *p = ra__link_peer(l, node, proc, true);
        rc = p != NULL ? rec_add(p, ref_key(*ref), RA__REC_NODE, self, target,
                                 *ref)
                       : RA_ENOMEM;
        if (rc == 0 && atomic_load(&p->state) == RA__PEER_IDLE) {
            pthread_mutex_lock(&p->mtx);
            bool routed = p->route[0] != 0;
            pthread_mutex_unlock(&p->mtx);
            if (!routed) {
                // Not connected and no way to connect: down at once.
                rec_del(p, ref_key(*ref));
                deliver_signal(l, self, RA_MSG_DOWN, 0, target,
                               RA_NOCONNECTION, *ref);
            } else {
                ra__lcmd_t *c = cmd_new(0, target, self);
                if (c != NULL) {
                    ra__link_enqueue(l, p, c); // dial it
                }
            }
        }
    }
    ra__dist_leave(rt);
    return rc;
}

int
ra_link_subscribe(ra_ctx_t *ctx, bool on)
{
    if (ctx == NULL) {
        return RA_EINVAL;
    }
    ra_runtime_t *rt = ra_ctx_runtime(ctx);
    const ra__dist_ops_t *ops = ra__dist_enter(rt);
    if (ops == NULL) {
        return RA_ENOCONN;
    }
    ra_link_t *l = rt->dist;
    ra_pid_t self = ra_self(ctx);
    int rc = 0;
    pthread_mutex_lock(&l->sub_mtx);
    ra__lsub_t **pp = &l->subs;
    while (*pp != NULL && !ra_pid_eq((*pp)->pid, self)) {
        pp = &(*pp)->next;
    }
    if (on && *pp == NULL) {
        ra__lsub_t *s = malloc(sizeof(*s));
        if (s == NULL) {
            rc = RA_ENOMEM;
        } else {
            s->pid = self;
            s->next = l->subs;
            l->subs = s;
        }
    } else if (!on && *pp != NULL) {
        ra__lsub_t *s = *pp;
        *pp = s->next;
        free(s);
    }
    pthread_mutex_unlock(&l->sub_mtx);
    ra__dist_leave(rt);
    return rc;
}

void
ra__link_node_event(ra_link_t *l, ra__lpeer_t *p, bool up,
                    ra_reason_t reason)
{
    pthread_mutex_lock(&l->sub_mtx);
    ra__lsub_t **pp = &l->subs;
    while (*pp != NULL) {
        ra__lsub_t *s = *pp;
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_INT64(&doc, "node", p->node);
        BSON_APPEND_INT64(&doc, "proc", p->proc);
        BSON_APPEND_INT64(&doc, "reason", reason);
        ra_msg_t *m = NULL;
        int rc = ra_msg_new_bson(&m, up ? RA_TAG_NODE_UP : RA_TAG_NODE_DOWN,
                                 &doc);
        bson_destroy(&doc);
        if (rc == 0) {
            rc = ra__deliver(l->rt, s->pid, &m, RA_PID_NIL, 0, false);
            ra_msg_unref(&m);
        }
        if (rc == RA_ENOPROC) {
            *pp = s->next; // the subscriber ended
            free(s);
        } else {
            pp = &s->next;
        }
    }
    pthread_mutex_unlock(&l->sub_mtx);
}

size_t
ra_link_max_msg(const ra_link_t *l)
{
    return l != NULL && l->o.max_msg > MSG_COST_EXTRA
               ? l->o.max_msg - MSG_COST_EXTRA
               : 0;
}

// link.c - the link layer's I/O thread: sockets, sessions, sequencing,
// acknowledgements, heartbeats, chunking and backpressure.
//
// Sessions.  Each side picks a random session number for each peer when it
// starts talking to it and sends it in its hello with its incarnation (a
// random number per link start).  A hello with the numbers already known
// is the same session reconnecting: unacknowledged frames are sent again
// from the peer's ack.  Other numbers mean the peer started over (it
// restarted, or it declared us lost): the old session is lost on this side
// too, so that both sides fire their links and monitors.
//
// Reliability.  Sequenced frames (msg, sig, chunk) stay in the peer's list
// until acknowledged.  The receiver accepts only the next sequence number;
// a duplicate or a frame after a gap is dropped and answered with an ack,
// and the sender goes back to its oldest unacknowledged frame when acks
// stop progressing for an interval (go-back-N).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "link_impl.h"
#include "ra_log.h"

#define ACK_EVERY 128     // frames received before an ack goes out at once
#define ACK_BYTES (4u << 20) // or bytes
#define RECV_BYTES (16u << 20) // bytes read per socket per loop turn
#define PUMP_BATCH 512    // commands encoded per peer per loop turn
#define PUMP_BYTES (8u << 20) // and bytes
#define RECV_BATCH 1024   // frames read per socket per loop turn
#define SLACK 4096        // envelope bytes around a payload
#define SPIN_TURNS 64     // most empty loop turns before the I/O thread
                          // sleeps (see spin_next)
#define SPIN_START 8      // and how many a new link starts with
#define SPIN_PAYOFF_NS 200000 // about what SPIN_TURNS turns cover
#define TICK_MS 5         // timer resolution while a peer has work in hand
#define EXIT_GRACE_MS 50  // a watched peer's frames still under way when
                          // its process exits

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 // the same number on every architecture
#endif
#define BATCH_BYTES (64u << 10) // records per batch envelope, in bytes
#define BATCH_BODY_MAX 8192     // larger messages travel alone

// ---- time, randomness ----

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
ra__link_now_ms(void)
{
    return now_ns() / 1000000;
}

static int64_t
random_i63(void)
{
    uint64_t v = 0;
    while (v == 0) {
        if (getrandom(&v, sizeof(v), 0) != sizeof(v)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            v = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^
                (uint64_t)getpid() << 32 ^ (uint64_t)ts.tv_sec;
        }
        v &= INT64_MAX;
    }
    return (int64_t)v;
}

static uint64_t
rng_next(ra_link_t *l)
{
    uint64_t x = l->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    l->rng = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static int
zerr(void)
{
    return -zmq_errno();
}

// ---- frames ----

static void
frame_unref(ra__lframe_t *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        if (f->msg != NULL) {
            ra_msg_unref(&f->msg); // framed in place: buf is in the message
        } else {
            ra_wire_free(f->buf);
        }
        free(f);
    }
}

static void
zfree_frame(void *data, void *hint)
{
    (void)data;
    frame_unref(hint);
}

static void
cmd_free(ra__lcmd_t *c)
{
    ra_msg_unref(&c->msg);
    free(c);
}

// ---- peers ----

static ra__hkey_t
peer_key(uint32_t node, uint32_t proc)
{
    return (ra__hkey_t){(uint64_t)node << 32 | proc, 0x5045};
}

ra__lpeer_t *
ra__link_peer(ra_link_t *l, uint32_t node, uint32_t proc, bool create)
{
    pthread_rwlock_rdlock(&l->peers_lock);
    ra__lpeer_t *p = ra__hmap_get(&l->peers, peer_key(node, proc));
    pthread_rwlock_unlock(&l->peers_lock);
    // Processes of one node that share an ipc directory find each other
    // by their default names, without routes: such a peer always exists.
    bool by_name = l->ipc_default && node == l->node && proc != l->proc;
    if (p != NULL || !(create || by_name)) {
        return p;
    }
    pthread_rwlock_wrlock(&l->peers_lock);
    p = ra__hmap_get(&l->peers, peer_key(node, proc));
    if (p == NULL && (p = calloc(1, sizeof(*p))) != NULL) {
        p->node = node;
        p->proc = proc;
        p->l = l;
        pthread_mutex_init(&p->mtx, NULL);
        pthread_cond_init(&p->space, NULL);
        ra__mpsc_init(&p->q);
        p->my_sess = random_i63();
        p->pidfd = -1;
        if (by_name) {
            snprintf(p->route, sizeof(p->route),
                     "ipc://%.200s/node-%u-proc-%u", l->ipc_dir, node, proc);
        }
        if (ra__hmap_put(&l->peers, peer_key(node, proc), p) != 0) {
            pthread_mutex_destroy(&p->mtx);
            pthread_cond_destroy(&p->space);
            free(p);
            p = NULL;
        } else {
            p->next = atomic_load(&l->peer_list);
            atomic_store_explicit(&l->peer_list, p, memory_order_release);
            atomic_fetch_add(&l->npeers, 1);
        }
    }
    pthread_rwlock_unlock(&l->peers_lock);
    return p;
}

void
ra__link_wake(ra_link_t *l)
{
    if (atomic_exchange(&l->sleeping, false)) {
        uint64_t one = 1;
        ssize_t n = write(l->evfd, &one, sizeof(one));
        (void)n;
    }
}

// Charges cost to p's queue, or fails (RA_EFULL) or waits, by policy.
static int
reserve(ra_link_t *l, ra__lpeer_t *p, size_t cost)
{
    bool may_block = l->o.full_policy == RA_FULL_BLOCK &&
                     ra__tls_worker == NULL && !ra__tls_noblock;
    for (;;) {
        size_t b = atomic_load(&p->queued_bytes);
        size_t n = atomic_load(&p->queued_frames);
        if ((b == 0 || b + cost <= l->o.queue_bytes) &&
            n < l->o.queue_frames) {
            break;
        }
        if (!may_block) {
            atomic_fetch_add(&l->full, 1);
            return RA_EFULL;
        }
        if (atomic_load(&l->stop)) {
            return RA_ECLOSED;
        }
        struct timespec dl;
        ra__deadline(&dl, 50);
        pthread_mutex_lock(&p->mtx);
        p->waiters++;
        pthread_cond_timedwait(&p->space, &p->mtx, &dl);
        p->waiters--;
        pthread_mutex_unlock(&p->mtx);
    }
    atomic_fetch_add(&p->queued_bytes, cost);
    atomic_fetch_add(&p->queued_frames, 1);
    return 0;
}

int
ra__link_enqueue(ra_link_t *l, ra__lpeer_t *p, ra__lcmd_t *c)
{
    // Control signals are never refused: losing one would leave a link or
    // monitor half made.  They are small and counted all the same.
    if (c->op == RA__OP_MSG) {
        int rc = reserve(l, p, c->cost);
        if (rc != 0) {
            return rc;
        }
    } else {
        atomic_fetch_add(&p->queued_bytes, c->cost);
        atomic_fetch_add(&p->queued_frames, 1);
    }
    ra__mpsc_push(&p->q, &c->node);
    ra__link_wake(l);
    return 0;
}

static void
uncharge(ra__lpeer_t *p, size_t cost, size_t frames)
{
    atomic_fetch_sub(&p->queued_bytes, cost);
    atomic_fetch_sub(&p->queued_frames, frames);
    if (p->waiters > 0) {
        pthread_mutex_lock(&p->mtx);
        pthread_cond_broadcast(&p->space);
        pthread_mutex_unlock(&p->mtx);
    }
}

// ---- fault injection ----

static void
peer_fault(ra_link_t *l, ra__lpeer_t *p)
{
    p->has_fault = false;
    memset(&p->fault, 0, sizeof(p->fault));
    pthread_mutex_lock(&l->fault_mtx);
    for (size_t i = 0; i < l->nrules; i++) {
        struct ra__lrule *r = &l->rules[i];
        if ((r->node == UINT32_MAX || r->node == p->node) &&
            (r->proc == UINT32_MAX || r->proc == p->proc)) {
            p->fault = r->f;
            p->has_fault = true;
        }
    }
    pthread_mutex_unlock(&l->fault_mtx);
}

// ---- sending ----

// Puts one frame on the wire to p.  f (may be NULL) is the sequenced frame
// buf belongs to, sent without a copy.  Returns 0 or -EAGAIN.
static int
wire_out(ra_link_t *l, ra__lpeer_t *p, const uint8_t *buf, size_t len,
         ra__lframe_t *f)
{
    void *sock = p->dealer != NULL ? p->dealer : l->router;
    if (p->dealer == NULL) {
        if (p->rid_len == 0) {
            return -EAGAIN;
        }
        if (zmq_send(l->router, p->rid, p->rid_len,
                     ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            return -EAGAIN; // unreachable now (EHOSTUNREACH) or full
        }
    }
    zmq_msg_t m;
    if (f != NULL) {
        atomic_fetch_add(&f->refs, 1);
        zmq_msg_init_data(&m, f->buf, f->len, zfree_frame, f);
    } else if (zmq_msg_init_size(&m, len) == 0) {
        memcpy(zmq_msg_data(&m), buf, len);
    } else {
        return -EAGAIN;
    }
    if (zmq_msg_send(&m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        // A ROUTER has accepted the identity part: it drops the message
        // as a whole when the body fails, so nothing half-sent remains.
        return -EAGAIN;
    }
    l->st.frames_out++;
    l->st.bytes_out += len;
    p->last_tx_ms = ra__link_now_ms();
    return 0;
}

// Sends with the peer's fault rule applied.
static int
frame_out(ra_link_t *l, ra__lpeer_t *p, const uint8_t *buf, size_t len,
          ra__lframe_t *f)
{
    if (l->o.faults) {
        unsigned gen = atomic_load(&l->rules_gen);
        if (gen != l->rules_seen) {
            for (ra__lpeer_t *q = atomic_load(&l->peer_list); q != NULL;
                 q = q->next) {
                peer_fault(l, q);
            }
            l->rules_seen = gen;
        }
        if (p->has_fault) {
            ra_link_fault_t *r = &p->fault;
            if (r->cut || (r->drop_ppm > 0 &&
                           rng_next(l) % 1000000 < r->drop_ppm)) {
                l->st.faults_dropped++;
                return 0;
            }
            if (r->delay_ms > 0) {
                ra__ldelay_t *d = calloc(1, sizeof(*d));
                if (d == NULL) {
                    return -EAGAIN;
                }
                d->due_ms = ra__link_now_ms() + r->delay_ms;
                if (f != NULL) {
                    atomic_fetch_add(&f->refs, 1);
                    d->f = f;
                } else if ((d->buf = malloc(len)) != NULL) {
                    memcpy(d->buf, buf, len);
                    d->len = len;
                } else {
                    free(d);
                    return -EAGAIN;
                }
                if (p->delay_tail != NULL) {
                    p->delay_tail->next = d;
                } else {
                    p->delay_head = d;
                }
                p->delay_tail = d;
                l->st.faults_delayed++;
                return 0;
            }
            if (r->dup_ppm > 0 && rng_next(l) % 1000000 < r->dup_ppm) {
                if (wire_out(l, p, buf, len, f) == 0) {
                    l->st.faults_duplicated++;
                }
            }
        }
    }
    if (p->delay_head != NULL) {
        return -EAGAIN; // keep order behind delayed frames
    }
    return wire_out(l, p, buf, len, f);
}

static void
delay_flush(ra_link_t *l, ra__lpeer_t *p, uint64_t now, bool drop)
{
    while (p->delay_head != NULL &&
           (drop || p->delay_head->due_ms <= now)) {
        ra__ldelay_t *d = p->delay_head;
        if (!drop) {
            int rc = d->f != NULL ? wire_out(l, p, d->f->buf, d->f->len, d->f)
                                  : wire_out(l, p, d->buf, d->len, NULL);
            if (rc != 0) {
                return;
            }
        }
        p->delay_head = d->next;
        if (p->delay_head == NULL) {
            p->delay_tail = NULL;
        }
        if (d->f != NULL) {
            frame_unref(d->f);
        }
        free(d->buf);
        free(d);
    }
}

// Sends an unsequenced frame (ack, hello, err, bye) now; it is not kept.
static void
send_control(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *fr)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ra_wire_encode(fr, l->o.max_msg, &buf, &len) == 0) {
        frame_out(l, p, buf, len, NULL);
        ra_wire_free(buf);
    }
}

// Acknowledges what arrived in order.  seq tells the peer the last frame
// we have sent, so that it can see a loss at the tail; eseq (0: none)
// reports a frame that arrived after a gap, so the peer resends at once.
static void
send_ack_gap(ra_link_t *l, ra__lpeer_t *p, int64_t eseq)
{
    ra_wire_frame_t fr = {0};
    fr.kind = RA_WIRE_ACK;
    fr.ack = p->rx_seq;
    fr.seq = p->sent_seq;
    fr.eseq = eseq;
    send_control(l, p, &fr);
    p->rx_acked = p->rx_seq;
    p->rx_bytes = 0;
    p->need_ack = false;
}

static void
send_ack(ra_link_t *l, ra__lpeer_t *p)
{
    send_ack_gap(l, p, 0);
}

static void
make_hello(ra_link_t *l, ra__lpeer_t *p, ra_wire_frame_t *fr)
{
    memset(fr, 0, sizeof(*fr));
    fr->kind = RA_WIRE_HELLO;
    fr->hello.node = l->node;
    fr->hello.proc = l->proc;
    fr->hello.vmin = RA_WIRE_VERSION_MIN;
    fr->hello.vmax = RA_WIRE_VERSION;
    fr->hello.ncaps = 1;
    fr->hello.caps[0] = "chunk";
    fr->hello.inc = l->inc;
    if (l->boot_id[0] != '\0') {
        fr->hello.host = l->boot_id;
        fr->hello.ospid = (int64_t)getpid();
        fr->hello.ostart = l->ostart;
    }
    if (p != NULL) {
        fr->hello.sess = p->my_sess;
        fr->hello.ack = p->rx_seq;
        fr->hello.ipc = p->dealer != NULL && p->dial_ipc;
    }
}

// proc_start reads the start time of process pid (field 22 of
// /proc/PID/stat, clock ticks after boot).  Returns -1 when it cannot.
static int64_t
proc_start(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it follow the last ')'.
    char *at = strrchr(buf, ')');
    for (int field = 2; at != NULL && field < 22; field++) {
        at = strchr(at + 1, ' ');
    }
    if (at == NULL) {
        return -1;
    }
    char *end = NULL;
    long long v = strtoll(at + 1, &end, 10);
    return end != at + 1 && v >= 0 ? (int64_t)v : -1;
}

// identity_init reads what the hello tells of this process: the
// machine's boot id and the process's start time.
static void
identity_init(ra_link_t *l)
{
    l->boot_id[0] = '\0';
    l->ostart = proc_start(getpid());
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || l->ostart < 0) {
        if (fd >= 0) {
            close(fd);
        }
        return;
    }
    ssize_t n = read(fd, l->boot_id, sizeof l->boot_id - 1);
    close(fd);
    n = n < 0 ? 0 : n;
    l->boot_id[n] = '\0';
    l->boot_id[strcspn(l->boot_id, "\n")] = '\0';
    for (char *c = l->boot_id; *c != '\0'; c++) {
        if (*c < 0x21 || *c > 0x7e) {
            l->boot_id[0] = '\0';   // not what a hello may carry
            break;
        }
    }
}

// unwatch_process stops watching p's process.
static void
unwatch_process(ra__lpeer_t *p)
{
    if (p->pidfd >= 0) {
        close(p->pidfd);
        p->pidfd = -1;
    }
    p->ipc = false;
}

// watch_process: the peer's hello h says which process it is.  When that
// process runs on this machine (the same boot id) and is the one its
// process id names now (the same start time: not a reused id, not
// another pid namespace), a pidfd lets the I/O thread see it exit.
static void
watch_process(ra_link_t *l, ra__lpeer_t *p, const ra_wire_hello_t *h,
              bool via_router)
{
    unwatch_process(p);
    p->exited_ms = 0;   // a new session: whatever exited before is past
    // (A peer in this very process, as in tests, cannot exit without us:
    // it keeps the network's rules.)
    if (h->host == NULL || h->ospid <= 0 || h->ospid == (int64_t)getpid() ||
        l->boot_id[0] == '\0' || strcmp(h->host, l->boot_id) != 0) {
        return;
    }
    int fd = (int)syscall(SYS_pidfd_open, (pid_t)h->ospid, 0);
    if (fd < 0) {
        return;   // gone already (its loss will show), or no pidfds here
    }
    // Checked after opening: the pidfd holds the process it names, so a
    // start time that matches now matches for the pidfd's whole life.
    if (proc_start((pid_t)h->ospid) != h->ostart) {
        close(fd);
        return;
    }
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    p->pidfd = fd;
    p->ipc = via_router ? h->ipc : p->dial_ipc;
    p->ospid = (pid_t)h->ospid;
    p->probe_ms = 0;
}

// run_delay_ms is how long, in all, the threads of process pid have
// waited for a CPU while runnable (the second field of each
// /proc/PID/task/TID/schedstat), in ms; -1 when it cannot be read.
static int64_t
run_delay_ms(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL) {
        return -1;
    }
    uint64_t sum = 0;
    bool any = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }
        char f[128], buf[96];
        snprintf(f, sizeof f, "/proc/%d/task/%.20s/schedstat", (int)pid,
                 e->d_name);
        int fd = open(f, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;   // a thread that ended meanwhile
        }
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        unsigned long long run = 0, wait = 0;
        if (n > 0) {
            buf[n] = '\0';
            if (sscanf(buf, "%llu %llu", &run, &wait) == 2) {
                sum += wait;
                any = true;
            }
        }
    }
    closedir(d);
    return any ? (int64_t)(sum / 1000000u) : -1;
}

// starved: peer p (a process of this machine, watched) has been silent
// for longer than the network's window w.  A peer that spent much of the
// time waiting for a CPU (an overloaded machine) is not cut off: it is
// given more time, up to the local window, while that goes on.  The
// measure starts when half the window has passed in silence (p->probe_ms).
// A cut-off peer on an overloaded machine is thus found later, never
// after more than the local window.
static bool
starved(ra_link_t *l, ra__lpeer_t *p, uint64_t now, uint64_t w)
{
    uint64_t cap = (uint64_t)l->o.hb_interval_ms * l->o.hb_miss_local;
    if (p->probe_ms == 0 || now - p->last_rx_ms > cap) {
        return false;
    }
    if (now < p->probe_ms + l->o.hb_interval_ms) {
        return true;   // measured starved lately: look again later
    }
    int64_t d = run_delay_ms(p->ospid);
    uint64_t span = now - p->probe_ms;
    bool st = d >= 0 && d >= p->probe_delay &&
              (uint64_t)(d - p->probe_delay) * 2 >= span;
    if (!st) {
        return false;
    }
    p->probe_ms = now;
    p->probe_delay = d;
    l->st.starved++;
    if (now - l->starve_logged_ms >= 10000) {
        l->starve_logged_ms = now;
        ra_log_warn("link", "peer %u.%u has been silent for %" PRIu64 " ms, "
                    "more than the loss window (%" PRIu64 " ms), but its "
                    "process waits for a CPU: it is not taken for lost yet "
                    "(an overloaded machine?)", p->node, p->proc,
                    now - p->last_rx_ms, w);
    }
    return true;
}

void
ra__link_send_err(ra_link_t *l, ra__lpeer_t *p, int code, ra_pid_t to,
                  int64_t cref, const char *text)
{
    ra_wire_frame_t fr = {0};
    fr.kind = RA_WIRE_ERR;
    fr.code = code;
    fr.to = to;
    fr.cref = cref;
    fr.text = text;
    send_control(l, p, &fr);
}

// Appends a sequenced frame to p's unacknowledged list.
static int
keep_frame(ra__lpeer_t *p, uint8_t *buf, size_t len, int64_t seq,
           size_t cost)
{
    ra__lframe_t *f = malloc(sizeof(*f));
    if (f == NULL) {
        return RA_ENOMEM;
    }
    f->next = NULL;
    f->msg = NULL;
    atomic_init(&f->refs, 1);
    f->seq = seq;
    f->buf = buf;
    f->len = len;
    f->cost = cost;
    if (p->tail != NULL) {
        p->tail->next = f;
    } else {
        p->head = f;
        p->last_progress_ms = ra__link_now_ms();
    }
    p->tail = f;
    if (p->next_send == NULL) {
        p->next_send = f;
    }
    return 0;
}

// Frames a large bytes message without copying it, in the room the message
// keeps around its payload (ra_wire_encode_around).  Only when the link
// holds the sole reference (the bytes around the payload are then ours to
// write) and the frame needs no chunks.  Returns false to encode normally.
static bool
frame_in_place(ra_link_t *l, ra__lpeer_t *p, ra__lcmd_t *c,
               const ra_wire_frame_t *fr)
{
    uint8_t *payload = ra__msg_room(c->msg), *env = NULL;
    size_t len = 0;
    if (payload == NULL || atomic_load(&c->msg->refs) != 1 ||
        fr->body_len + RA__HEADROOM > l->o.chunk_size ||
        ra_wire_encode_around(fr, payload, RA__HEADROOM, l->o.max_msg, &env,
                              &len) != 0 ||
        keep_frame(p, env, len, fr->seq, c->cost) != 0) {
        return false;
    }
    p->tx_seq = fr->seq;
    p->tail->msg = c->msg; // the frame keeps the message
    c->msg = NULL;
    l->st.zero_copy_out++;
    return true;
}

// Encodes command c as the next frame(s) of p's session.
static void
encode_cmd(ra_link_t *l, ra__lpeer_t *p, ra__lcmd_t *c)
{
    ra_wire_frame_t fr = {0};
    fr.seq = p->tx_seq + 1;
    fr.from = c->from;
    fr.to = c->to;
    if (c->op == RA__OP_MSG) {
        fr.kind = RA_WIRE_MSG;
        fr.tag = ra_msg_tag(c->msg);
        fr.cref = c->cref;
        fr.rep = c->rep;
        fr.body_kind = ra_msg_kind(c->msg) == RA_MSG_BSON ? RA_WIRE_BODY_BSON
                                                          : RA_WIRE_BODY_BYTES;
        fr.body = ra_msg_data(c->msg, &fr.body_len);
        l->st.msgs_out++;
    } else {
        fr.kind = RA_WIRE_SIG;
        fr.sig = c->sig;
        fr.reason = c->reason;
        fr.ref = c->ref;
    }
    if (c->op == RA__OP_MSG && frame_in_place(l, p, c, &fr)) {
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = ra_wire_encode(&fr, l->o.max_msg, &buf, &len);
    if (rc != 0) {
        char a[RA_PID_STRLEN];
        ra_log_warn("link", "dropped a message to %s: %s",
                    ra_pid_str(c->to, a), ra_strerror(rc));
        uncharge(p, c->cost, 1);
        return;
    }
    if (len <= l->o.chunk_size) {
        if (keep_frame(p, buf, len, ++p->tx_seq, c->cost) != 0) {
            ra_wire_free(buf);
            p->tx_seq--;
            uncharge(p, c->cost, 1);
        }
        return;
    }
    ra_wire_buf_t *chunks = NULL;
    size_t n = 0;
    rc = ra_wire_split(buf, len, ++p->chunk_id, p->tx_seq + 1,
                       l->o.chunk_size, &chunks, &n);
    ra_wire_free(buf);
    if (rc != 0) {
        uncharge(p, c->cost, 1);
        return;
    }
    // The whole message's charge rides on its last chunk; the others are
    // charged their own bytes, so the queue limit counts them all.
    atomic_fetch_add(&p->queued_frames, n - 1);
    for (size_t i = 0; i < n; i++) {
        size_t cost = i + 1 == n ? c->cost : 0;
        if (keep_frame(p, chunks[i].data, chunks[i].len, ++p->tx_seq,
                       cost) != 0) {
            // Out of memory mid-message: the rest cannot follow, so the
            // session cannot stay consistent.  Count it as lost.
            ra_wire_free(chunks[i].data);
            p->tx_seq--;
            atomic_fetch_sub(&p->queued_frames, n - i);
            atomic_fetch_sub(&p->queued_bytes, c->cost);
            for (size_t j = i + 1; j < n; j++) {
                ra_wire_free(chunks[j].data);
            }
            break;
        }
        chunks[i].data = NULL;
    }
    free(chunks);
}

// ---- batches of small messages ----

// Small plain messages (no call, no reply) share one batch envelope: one
// frame, one sequence number, one acknowledgement for up to BATCH_BYTES.
static bool
batchable(ra_link_t *l, const ra__lcmd_t *c)
{
    (void)l;
    return c->op == RA__OP_MSG && c->cref == 0 && !c->rep &&
           c->msg->len <= BATCH_BODY_MAX;
}

static void
batch_flush(ra_link_t *l, ra__lpeer_t *p)
{
    if (p->bcnt == 0) {
        return;
    }
    ra_wire_frame_t fr = {0};
    fr.kind = RA_WIRE_BATCH;
    fr.seq = p->tx_seq + 1;
    fr.chunk_cnt = (int32_t)p->bcnt;
    fr.data = p->bbuf;
    fr.data_len = p->blen;
    uint8_t *buf = NULL;
    size_t len = 0;
    // The batch counted as bcnt queued frames; it is one from now on.
    atomic_fetch_sub(&p->queued_frames, p->bcnt - 1);
    if (ra_wire_encode(&fr, l->o.max_msg, &buf, &len) != 0 ||
        keep_frame(p, buf, len, ++p->tx_seq, p->bcost) != 0) {
        if (buf != NULL) {
            ra_wire_free(buf);
            p->tx_seq--;
        }
        ra_log_err("link", "dropped %u messages to %u.%u: out of memory",
                   p->bcnt, p->node, p->proc);
        uncharge(p, p->bcost, 1);
    }
    p->bcnt = 0;
    p->blen = 0;
    p->bcost = 0;
}

static void
batch_add(ra_link_t *l, ra__lpeer_t *p, ra__lcmd_t *c)
{
    size_t need = ra_wire_batch_rec_size(c->msg->len);
    if (p->bcnt > 0 && (p->blen + need > BATCH_BYTES || p->bcnt >= 65536)) {
        batch_flush(l, p);
    }
    if (p->blen + need > p->bcap) {
        size_t cap = p->bcap ? p->bcap : 4096;
        while (cap < p->blen + need) {
            cap *= 2;
        }
        uint8_t *nb = realloc(p->bbuf, cap);
        if (nb == NULL) {
            batch_flush(l, p);
            encode_cmd(l, p, c); // alone, then
            return;
        }
        p->bbuf = nb;
        p->bcap = cap;
    }
    ra_wire_batch_put(p->bbuf + p->blen, c->msg, c->from, c->to);
    p->blen += need;
    p->bcnt++;
    p->bcost += c->cost;
    l->st.msgs_out++;
}

// ---- sessions ----

static void close_dealer(ra__lpeer_t *p);

// Ends p's session on this side: drops what was in flight, fires links and
// monitors, and starts the next session with new numbers.
static void
session_lost(ra_link_t *l, ra__lpeer_t *p, ra_reason_t reason,
             const char *why)
{
    int was = atomic_load(&p->state);
    if (was != RA__PEER_IDLE) {
        ra_log_info("link", "peer %u.%u lost: %s", p->node, p->proc, why);
    }
    close_dealer(p);
    unwatch_process(p);
    p->exited_ms = 0;
    p->rid_len = 0;
    delay_flush(l, p, 0, true);
    size_t cost = 0, frames = 0;
    while (p->head != NULL) {
        ra__lframe_t *f = p->head;
        p->head = f->next;
        cost += f->cost;
        frames++;
        frame_unref(f);
    }
    p->tail = p->next_send = NULL;
    ra__qnode_t *n;
    while ((n = ra__mpsc_pop(&p->q)) != NULL) {
        ra__lcmd_t *c = (ra__lcmd_t *)n;
        cost += c->cost;
        frames++;
        cmd_free(c);
    }
    ra_wire_reasm_destroy(&p->reasm);
    p->tx_seq = p->rx_seq = p->rx_acked = 0;
    p->recover_seq = p->rewind_ack = p->sent_seq = 0;
    p->gap_acked = false;
    p->rto_ms = 0;
    p->rx_bytes = 0;
    p->peer_inc = p->peer_sess = 0;
    p->my_sess = random_i63();
    p->hello_sent = p->closing = p->need_ack = false;
    atomic_store(&p->state, RA__PEER_IDLE);
    uncharge(p, cost, frames);
    ra__link_fire_lost(l, p, reason);
    if (was != RA__PEER_IDLE) {
        l->st.peers_lost++;
        ra__link_node_event(l, p, false, reason);
    }
    pthread_mutex_lock(&l->wait_mtx);
    pthread_cond_broadcast(&l->wait_cond);
    pthread_mutex_unlock(&l->wait_mtx);
}

static void
close_dealer(ra__lpeer_t *p)
{
    if (p->dealer != NULL) {
        zmq_close(p->dealer);
        p->dealer = NULL;
    }
}

static int
set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof(v));
}

// Socket options every link socket gets.
static int
common_opts(ra_link_t *l, void *s)
{
    int64_t max = (int64_t)(l->o.max_msg + SLACK);
    if (set_int(s, ZMQ_LINGER, 0) != 0 ||
        set_int(s, ZMQ_SNDHWM, 100000) != 0 ||
        set_int(s, ZMQ_RCVHWM, 100000) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof(max)) != 0) {
        return zerr();
    }
    return 0;
}

static int
client_keys(ra_link_t *l, void *s, const char *endpoint)
{
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return 0;
    }
    if (l->pub[0] == 0) {
        ra_log_err("link", "cannot dial %s: tcp needs the cluster "
                   "certificate (ra_link_opts_t.cert)", endpoint);
        return RA_EACCES;
    }
    if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, l->pub, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, l->pub, 40) != 0 ||
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, l->sec, 40) != 0) {
        return zerr();
    }
    return 0;
}

static int
dial(ra_link_t *l, ra__lpeer_t *p)
{
    char route[256];
    pthread_mutex_lock(&p->mtx);
    memcpy(route, p->route, sizeof(route));
    pthread_mutex_unlock(&p->mtx);
    if (route[0] == 0) {
        return RA_ENOCONN;
    }
    void *s = zmq_socket(l->zctx, ZMQ_DEALER);
    if (s == NULL) {
        return zerr();
    }
    char rid[64];
    int n = snprintf(rid, sizeof(rid), "rayo:%u:%u:%" PRId64, l->node,
                     l->proc, l->inc);
    int rc = common_opts(l, s);
    if (rc == 0 && (zmq_setsockopt(s, ZMQ_ROUTING_ID, rid, (size_t)n) != 0 ||
                    set_int(s, ZMQ_IMMEDIATE, 1) != 0 ||
                    set_int(s, ZMQ_RECONNECT_IVL, 100) != 0 ||
                    set_int(s, ZMQ_RECONNECT_IVL_MAX, 1000) != 0)) {
        rc = zerr();
    }
    if (rc == 0) {
        rc = client_keys(l, s, route);
    }
    if (rc == 0 && zmq_connect(s, route) != 0) {
        rc = zerr();
    }
    if (rc != 0) {
        zmq_close(s);
        return rc;
    }
    p->dealer = s;
    p->dial_ipc = strncmp(route, "ipc://", 6) == 0;
    snprintf(p->dial_path, sizeof p->dial_path, "%s",
             p->dial_ipc ? route + 6 : "");
    p->hello_sent = false;
    uint64_t now = ra__link_now_ms();
    p->since_ms = p->last_rx_ms = p->last_use_ms = now;
    atomic_store(&p->state, RA__PEER_DIALING);
    return 0;
}

// A hello from p's side.  via_router: it came to our ROUTER (the peer
// dialled), so we answer it.
static void
on_hello(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f,
         bool via_router)
{
    const ra_wire_hello_t *h = &f->hello;
    if (p->peer_inc != 0 &&
        (p->peer_inc != h->inc || p->peer_sess != h->sess)) {
        session_lost(l, p, RA_NOCONNECTION,
                     p->peer_inc != h->inc ? "its process restarted"
                                           : "it started a new session");
    }
    int st = atomic_load(&p->state);
    if (p->peer_inc == 0) {
        // A new session.
        p->peer_inc = h->inc;
        p->peer_sess = h->sess;
        watch_process(l, p, h, via_router);
        p->last_use_ms = ra__link_now_ms();
        atomic_store(&p->state, RA__PEER_UP);
        l->st.peers_up++;
        ra_log_debug("link", "peer %u.%u up", p->node, p->proc);
        if (st != RA__PEER_UP) {
            ra__link_node_event(l, p, true, RA_NORMAL);
        }
        pthread_mutex_lock(&l->wait_mtx);
        pthread_cond_broadcast(&l->wait_cond);
        pthread_mutex_unlock(&l->wait_mtx);
    } else {
        // The same session after a reconnect: resend what it lacks.
        while (p->head != NULL && p->head->seq <= h->ack) {
            ra__lframe_t *fr = p->head;
            p->head = fr->next;
            uncharge(p, fr->cost, 1);
            frame_unref(fr);
        }
        if (p->head == NULL) {
            p->tail = NULL;
        }
        if (p->next_send != p->head) {
            l->st.retransmits++;
        }
        p->next_send = p->head;
    }
    if (via_router) {
        ra_wire_frame_t fr;
        make_hello(l, p, &fr);
        send_control(l, p, &fr);
    }
}

// Goes back to the oldest unacknowledged frame.  Until everything sent so
// far is acknowledged the link is "recovering": repeated acks do not make
// it go back again (they are the echo of the resend), so one loss costs
// one resend of the window, never a storm.
static void
rewind_send(ra_link_t *l, ra__lpeer_t *p, uint64_t now)
{
    l->st.retransmits++;
    p->next_send = p->head;
    p->recover_seq = p->tx_seq;
    p->rewind_ack = p->head != NULL ? p->head->seq - 1 : p->tx_seq;
    p->rewind_ms = now;
    p->last_progress_ms = now;
}

static void
on_ack(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    int64_t ack = f->ack;
    if (f->seq > p->rx_seq && !p->gap_acked) {
        // The peer sent frames we never got, and nothing after them to
        // show the gap: ask for them.
        send_ack_gap(l, p, f->seq);
        p->gap_acked = true;
        p->gap_seq = f->seq;
        p->gap_ms = ra__link_now_ms();
    }
    size_t cost = 0, frames = 0;
    while (p->head != NULL && p->head->seq <= ack) {
        ra__lframe_t *fr = p->head;
        if (p->next_send == fr) {
            p->next_send = fr->next;
        }
        p->head = fr->next;
        cost += fr->cost;
        frames++;
        frame_unref(fr);
    }
    if (p->head == NULL) {
        p->tail = NULL;
    }
    if (frames > 0) {
        p->last_progress_ms = ra__link_now_ms();
        p->rto_ms = 0;
        uncharge(p, cost, frames);
    }
    if (f->eseq > 0 && p->head != NULL && p->next_send != p->head) {
        // The peer saw a gap after ack: resend from there.  While a resend
        // is under way, only when it made progress (another loss) or has
        // had an interval to do so; else the report is an echo.
        uint64_t now = ra__link_now_ms();
        if (ack >= p->recover_seq || ack > p->rewind_ack ||
            now - p->rewind_ms >= l->o.hb_interval_ms) {
            rewind_send(l, p, now);
        }
    }
}

static void
deliver_envelope(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    if (f->kind == RA_WIRE_MSG) {
        ra__link_on_msg(l, p, f);
    } else if (f->kind == RA_WIRE_BATCH) {
        ra__link_on_batch(l, p, f);
    } else if (f->kind == RA_WIRE_SIG) {
        ra__link_on_sig(l, p, f);
    } else {
        ra_log_warn("link", "peer %u.%u sent a chunked %s: dropped", p->node,
                    p->proc, ra_wire_kind_name(f->kind));
        l->st.wire.bad_kind++;
    }
}

static void
on_sequenced(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    if (f->seq <= p->rx_seq) {
        // Already delivered (a resend, or a duplicate).
        l->st.duplicates++;
        p->need_ack = true;
        return;
    }
    if (f->seq != p->rx_seq + 1) {
        l->st.out_of_order++;
        if (!p->gap_acked) {
            send_ack_gap(l, p, f->seq); // tell the sender at once
            p->gap_acked = true;
            p->gap_seq = f->seq;
            p->gap_ms = ra__link_now_ms();
        }
        p->need_ack = true;
        return;
    }
    p->gap_acked = false;
    p->rx_seq = f->seq;
    p->last_use_ms = ra__link_now_ms();
    if (p->closing) {
        p->closing = false; // it is not idle after all
    }
    if (f->kind != RA_WIRE_CHUNK) {
        deliver_envelope(l, p, f);
    } else {
        if (p->reasm == NULL &&
            ra_wire_reasm_new(&p->reasm, l->o.max_msg, 4,
                              (uint64_t)l->o.hb_interval_ms * l->o.hb_miss,
                              &l->st.wire) != 0) {
            return;
        }
        uint8_t *env = NULL;
        size_t len = 0;
        if (ra_wire_reasm_add(p->reasm, f, ra__link_now_ms(), &env, &len) ==
                0 &&
            env != NULL) {
            ra_wire_frame_t inner;
            if (ra_wire_decode(env, len, l->o.max_msg, &inner, &l->st.wire) ==
                0) {
                l->steal_buf = env;
                l->steal_len = len;
                deliver_envelope(l, p, &inner);
                env = l->steal_buf; // NULL if a message took it over
                l->steal_buf = NULL;
            }
            ra_wire_free(env);
        }
    }
    p->rx_bytes += f->kind == RA_WIRE_CHUNK ? f->data_len : f->body_len +
                                                             f->data_len;
    if (p->rx_seq - p->rx_acked >= ACK_EVERY || p->rx_bytes >= ACK_BYTES) {
        send_ack(l, p);
    }
}

// Is p idle enough to end its session?  No records, nothing queued or
// unacknowledged.
static bool
peer_quiet(ra__lpeer_t *p)
{
    return p->head == NULL && atomic_load(&p->queued_frames) == 0 &&
           !ra__mpsc_nonempty(&p->q) && !ra__link_has_records(p);
}

static void
on_bye(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f)
{
    if (!f->idle) {
        bool asked = p->closing;
        session_lost(l, p, asked ? RA_NORMAL : RA_NOCONNECTION,
                     asked ? "idle" : "it disconnected");
        return;
    }
    if (peer_quiet(p)) {
        ra_wire_frame_t fr = {0};
        fr.kind = RA_WIRE_BYE;
        send_control(l, p, &fr);
        p->closing = true; // so that the loss below reads as a normal end
        session_lost(l, p, RA_NORMAL, "idle");
    }
}

// Sends frame fr on the connection a frame came in on: the ROUTER
// connection rid, or else p's DEALER; used to answer frames from
// connections that have no session (yet).
static void
answer(ra_link_t *l, ra__lpeer_t *p, const uint8_t *rid, size_t rid_len,
       const ra_wire_frame_t *fr)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ra_wire_encode(fr, 0, &buf, &len) != 0) {
        return;
    }
    if (rid != NULL) {
        if (zmq_send(l->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >=
            0) {
            zmq_send(l->router, buf, len, ZMQ_DONTWAIT);
        }
    } else if (p != NULL && p->dealer != NULL) {
        zmq_send(p->dealer, buf, len, ZMQ_DONTWAIT);
    }
    ra_wire_free(buf);
}

// One decoded frame from a peer.  p is NULL for a frame to our ROUTER from
// a connection that has not said hello; rid names that connection.
static void
on_frame(ra_link_t *l, ra__lpeer_t *p, const uint8_t *rid, size_t rid_len,
         const void *data, size_t len)
{
    ra_wire_frame_t f;
    l->st.frames_in++;
    l->st.bytes_in += len;
    if (ra_wire_decode(data, len, l->o.max_msg, &f, &l->st.wire) != 0) {
        return;
    }
    if (f.kind == RA_WIRE_HELLO) {
        int32_t v;
        const ra_wire_hello_t *h = &f.hello;
        if (ra_wire_negotiate(h, &v) != 0) {
            ra_log_warn("link", "peer %u.%u speaks protocol %d..%d, we "
                        "speak %d..%d: refused", h->node, h->proc, h->vmin,
                        h->vmax, RA_WIRE_VERSION_MIN, RA_WIRE_VERSION);
            l->st.wire.bad_version++;
            // Answer, so that the peer knows why nothing works.
            ra_wire_frame_t fr = {0};
            fr.kind = RA_WIRE_ERR;
            fr.code = RA_ENOTSUP;
            fr.text = "no common protocol version";
            answer(l, p, rid, rid_len, &fr);
            return;
        }
        if ((h->node == l->node && h->proc == l->proc) || h->inc == 0) {
            l->st.refused++;
            return;
        }
        if (h->sess == 0) {
            // A probe (ra_link_connect): answer who we are, no session.
            if (rid != NULL) {
                ra_wire_frame_t fr;
                make_hello(l, NULL, &fr);
                answer(l, NULL, rid, rid_len, &fr);
            }
            return;
        }
        if (p != NULL && (p->node != h->node || p->proc != h->proc)) {
            ra_log_warn("link", "dialled %u.%u but %u.%u answered: check "
                        "its route", p->node, p->proc, h->node, h->proc);
            l->st.refused++;
            return;
        }
        ra__lpeer_t *q = ra__link_peer(l, h->node, h->proc, true);
        if (q == NULL) {
            return;
        }
        if (rid != NULL) {
            memcpy(q->rid, rid, rid_len);
            q->rid_len = rid_len;
        }
        q->last_rx_ms = ra__link_now_ms();
        q->probe_ms = 0;
        on_hello(l, q, &f, rid != NULL);
        return;
    }
    if (p == NULL || atomic_load(&p->state) == RA__PEER_IDLE ||
        (p->peer_inc == 0 && f.kind != RA_WIRE_ERR)) {
        l->st.refused++;
        return;
    }
    p->last_rx_ms = ra__link_now_ms();
    p->probe_ms = 0;
    switch (f.kind) {
    case RA_WIRE_ACK:
        on_ack(l, p, &f);
        break;
    case RA_WIRE_MSG:
    case RA_WIRE_SIG:
    case RA_WIRE_CHUNK:
    case RA_WIRE_BATCH:
        on_sequenced(l, p, &f);
        break;
    case RA_WIRE_ERR:
        ra__link_on_err(l, p, &f);
        break;
    case RA_WIRE_BYE:
        on_bye(l, p, &f);
        break;
    default:
        break;
    }
}

// ---- the I/O loop ----

// Finds the peer that owns a ROUTER connection, by its routing id.
static ra__lpeer_t *
peer_by_rid(ra_link_t *l, const uint8_t *rid, size_t len)
{
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL; p = p->next) {
        if (p->rid_len == len && memcmp(p->rid, rid, len) == 0) {
            return p;
        }
    }
    return NULL;
}

static size_t
drain_router(ra_link_t *l)
{
    ra__lpeer_t *last = NULL;
    size_t bytes = 0;
    uint8_t last_rid[256];
    size_t last_len = 0;
    for (int i = 0; i < RECV_BATCH; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, l->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            return (size_t)i;
        }
        zmq_msg_init(&body);
        bool ok = zmq_msg_more(&rid) &&
                  zmq_msg_recv(&body, l->router, ZMQ_DONTWAIT) >= 0;
        bool extra = ok && zmq_msg_more(&body);
        while (zmq_msg_more(ok ? &body : &rid)) {
            // More parts than the protocol has: read and drop them.
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            int r = zmq_msg_recv(&junk, l->router, ZMQ_DONTWAIT);
            bool more = r >= 0 && zmq_msg_more(&junk);
            zmq_msg_close(&junk);
            if (!more) {
                break;
            }
        }
        if (!ok || extra) {
            l->st.wire.bad_bson++;
        } else {
            const uint8_t *r = zmq_msg_data(&rid);
            size_t rl = zmq_msg_size(&rid);
            ra__lpeer_t *p;
            if (last != NULL && rl == last_len &&
                memcmp(r, last_rid, rl) == 0) {
                p = last;
            } else {
                p = peer_by_rid(l, r, rl);
            }
            if (rl <= sizeof(last_rid)) {
                last = p;
                memcpy(last_rid, r, rl);
                last_len = rl;
            }
            size_t sz = zmq_msg_size(&body);
            bytes += sz;
            l->steal_zmsg = &body;
            on_frame(l, p, r, rl, zmq_msg_data(&body), sz);
            l->steal_zmsg = NULL;
            if (p != NULL && p->rid_len != rl) {
                last = NULL; // the session was lost meanwhile
            }
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
        if (bytes >= RECV_BYTES) {
            return (size_t)i + 1; // let timers and senders have a turn
        }
    }
    return RECV_BATCH;
}

static size_t
drain_dealer(ra_link_t *l, ra__lpeer_t *p)
{
    size_t bytes = 0;
    int i;
    for (i = 0; i < RECV_BATCH && p->dealer != NULL; i++) {
        zmq_msg_t body;
        zmq_msg_init(&body);
        if (zmq_msg_recv(&body, p->dealer, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&body);
            return (size_t)i;
        }
        if (zmq_msg_more(&body)) {
            l->st.wire.bad_bson++;
        } else {
            size_t sz = zmq_msg_size(&body);
            l->steal_zmsg = &body;
            on_frame(l, p, NULL, 0, zmq_msg_data(&body), sz);
            l->steal_zmsg = NULL;
            bytes += sz;
        }
        zmq_msg_close(&body);
        if (bytes >= RECV_BYTES) {
            return (size_t)i + 1;
        }
    }
    return (size_t)i;
}

// Moves p's commands onto the wire as far as the socket takes them.
// Returns how many commands and frames it moved.
static size_t
pump(ra_link_t *l, ra__lpeer_t *p)
{
    size_t did = 0;
    int st = atomic_load(&p->state);
    if (st == RA__PEER_IDLE) {
        if (!ra__mpsc_nonempty(&p->q)) {
            return 0;
        }
        int rc = dial(l, p);
        if (rc != 0) {
            char why[128];
            snprintf(why, sizeof(why), "cannot dial it: %s",
                     ra_strerror(rc));
            atomic_store(&p->state, RA__PEER_DIALING); // to log the loss
            session_lost(l, p, RA_NOCONNECTION, why);
            return 0;
        }
        st = RA__PEER_DIALING;
    }
    if (p->dealer != NULL && !p->hello_sent) {
        ra_wire_frame_t fr;
        make_hello(l, p, &fr);
        uint8_t *buf = NULL;
        size_t len = 0;
        if (ra_wire_encode(&fr, 0, &buf, &len) != 0) {
            return 0;
        }
        int rc = frame_out(l, p, buf, len, NULL);
        ra_wire_free(buf);
        if (rc != 0) {
            return 0; // not connected yet
        }
        p->hello_sent = true;
        p->hello_ms = ra__link_now_ms();
    }
    if (!p->closing) {
        size_t bytes = 0;
        // Bounded work per turn, in commands and bytes: encoding copies
        // payloads, and a turn that ran for seconds would starve the
        // heartbeats both ways.
        for (int i = 0; i < PUMP_BATCH && bytes < PUMP_BYTES; i++) {
            ra__qnode_t *n = ra__mpsc_pop(&p->q);
            if (n == NULL) {
                break;
            }
            ra__lcmd_t *c = (ra__lcmd_t *)n;
            if (c->op == 0) { // ra_link_connect's nudge: dialling is done
                uncharge(p, c->cost, 1);
                cmd_free(c);
                continue;
            }
            if (c->op == RA__OP_BYE) {
                ra_wire_frame_t fr = {0};
                fr.kind = RA_WIRE_BYE;
                send_control(l, p, &fr);
                uncharge(p, c->cost, 1);
                cmd_free(c);
                session_lost(l, p, RA_NOCONNECTION, "disconnected here");
                return 0;
            }
            bytes += c->cost;
            if (batchable(l, c)) {
                batch_add(l, p, c);
            } else {
                batch_flush(l, p);
                encode_cmd(l, p, c);
            }
            cmd_free(c);
            did++;
        }
        batch_flush(l, p);
        if (did > 0) {
            p->last_use_ms = ra__link_now_ms();
        }
    }
    while (p->next_send != NULL) {
        if (frame_out(l, p, p->next_send->buf, p->next_send->len,
                      p->next_send) != 0) {
            break;
        }
        if (p->next_send->seq > p->sent_seq) {
            p->sent_seq = p->next_send->seq;
        }
        p->next_send = p->next_send->next;
        did++;
    }
    return did;
}

// The resend timeout, a last resort (gaps are reported by the peer, see
// send_ack_gap): the loss window, doubled after each timeout without
// progress (reset by any acknowledgement).
static uint64_t
rto(ra_link_t *l, ra__lpeer_t *p)
{
    return p->rto_ms != 0 ? p->rto_ms
                          : (uint64_t)l->o.hb_interval_ms * l->o.hb_miss;
}

// dial_path_ok: the ipc path p's dealer dials exists (a process that
// stopped removed it).
static bool
dial_path_ok(ra__lpeer_t *p)
{
    struct stat st;
    return p->dial_path[0] != '\0' && stat(p->dial_path, &st) == 0;
}

// Timers: heartbeats, acks, loss detection, retransmission, idle ends.
static void
tick(ra_link_t *l, uint64_t now)
{
    uint64_t window = (uint64_t)l->o.hb_interval_ms * l->o.hb_miss;
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL; p = p->next) {
        int st = atomic_load(&p->state);
        if (p->delay_head != NULL) {
            delay_flush(l, p, now, false);
        }
        if (st == RA__PEER_IDLE) {
            continue;
        }
        if (p->exited_ms != 0 && now - p->exited_ms >= EXIT_GRACE_MS) {
            session_lost(l, p, RA_NOCONNECTION, "its process exited");
            continue;
        }
        // Below half the network window nothing is decided, and nothing
        // is read from the file system or /proc.
        uint64_t silent = now - p->last_rx_ms;
        bool lost = false;
        if (silent > window / 2) {
            // A peer process of this machine over ipc, watched, or one we
            // dial over ipc (no network between us: only a hung or
            // starved process is silent) gets the local window, unless
            // nothing listens at the path we dial.  Injected faults stand
            // for a network: they get its window.  Another watched peer
            // may be starved rather than cut off (see starved).
            bool local = !p->has_fault &&
                         (st == RA__PEER_DIALING
                              ? p->dial_ipc && dial_path_ok(p)
                              : p->ipc && p->pidfd >= 0);
            bool cpu_watch = !local && !p->has_fault && p->pidfd >= 0;
            uint64_t w = local ? (uint64_t)l->o.hb_interval_ms *
                                     l->o.hb_miss_local
                               : window;
            if (cpu_watch && p->probe_ms == 0) {
                int64_t d = run_delay_ms(p->ospid);
                if (d >= 0) {
                    p->probe_ms = now;   // see starved
                    p->probe_delay = d;
                }
            }
            lost = silent > w && !(cpu_watch && starved(l, p, now, w));
        }
        if (lost) {
            session_lost(l, p, RA_NOCONNECTION,
                         st == RA__PEER_DIALING ? "no answer to our hello"
                                                : "heartbeats missed");
            continue;
        }
        if (st != RA__PEER_UP) {
            if (p->hello_sent && now - p->hello_ms >= l->o.hb_interval_ms) {
                p->hello_sent = false; // no answer yet: say hello again
            }
            if (p->head != NULL && p->next_send != p->head &&
                now - p->last_progress_ms > rto(l, p)) {
                rewind_send(l, p, now);
                p->rto_ms = 2 * rto(l, p);
            }
            continue;
        }
        uint64_t again = l->o.hb_interval_ms / 4 + 5;
        if (p->gap_acked && now - p->gap_ms >= again) {
            // Still missing frames: the report or the resend was lost too.
            send_ack_gap(l, p, p->gap_seq);
            p->gap_ms = now;
        } else if (now - p->last_tx_ms >= l->o.hb_interval_ms ||
                   p->rx_seq != p->rx_acked || p->need_ack) {
            send_ack(l, p);
        }
        if (p->head != NULL && p->next_send != p->head &&
            now - p->last_progress_ms > rto(l, p)) {
            // No ack at all for a while: the last frames were lost with
            // nothing behind them to show the gap.  Back off each time.
            rewind_send(l, p, now);
            p->rto_ms = 2 * rto(l, p);
        }
        if (p->closing && now - p->closing_ms > window) {
            p->closing = false; // the peer did not agree: carry on
        }
        if (!p->closing && l->o.idle_ms != UINT32_MAX &&
            now - p->last_use_ms > l->o.idle_ms && peer_quiet(p)) {
            ra_wire_frame_t fr = {0};
            fr.kind = RA_WIRE_BYE;
            fr.idle = true;
            send_control(l, p, &fr);
            p->closing = true;
            p->closing_ms = now;
        }
        if (p->reasm != NULL) {
            ra_wire_reasm_expire(p->reasm, now);
        }
    }
}

// sleep_ms: how long the I/O thread may sleep when no sender needs it.
// While a peer has something in hand (frames not yet acknowledged, an
// ack owed, a gap, a half-received message, a delay, a session being set
// up or closed, an exited process, a silence long enough to look into)
// tick runs every TICK_MS.  When every session is quiet, what tick would
// do next is a heartbeat, a loss decision or an idle bye, none of which
// needs millisecond timing: the thread sleeps a quarter of the heartbeat
// interval.  An idle process then wakes a few times a second, however
// many peers it has, rather than 200 times; heartbeats go out at most a
// quarter interval late (the loss window is several intervals); and a
// sleep never looks like a stall to forgive_pause.
static long
sleep_ms(ra_link_t *l, uint64_t now)
{
    uint64_t hb = l->o.hb_interval_ms, half = hb * l->o.hb_miss / 2;
    if (hb / 4 <= TICK_MS) {
        return TICK_MS;
    }
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL; p = p->next) {
        int st = atomic_load(&p->state);
        if (p->delay_head != NULL) {
            return TICK_MS;
        }
        if (st == RA__PEER_IDLE) {
            continue;
        }
        if (st != RA__PEER_UP || p->exited_ms != 0 || p->head != NULL ||
            p->rx_seq != p->rx_acked || p->need_ack || p->gap_acked ||
            p->closing || ra_wire_reasm_pending(p->reasm) > 0 ||
            now - p->last_rx_ms > half) {
            return TICK_MS;
        }
    }
    return (long)(hb / 4);
}

static void
publish_stats(ra_link_t *l)
{
    l->st.queued_bytes = 0;
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL; p = p->next) {
        l->st.queued_bytes += atomic_load(&p->queued_bytes);
    }
    pthread_mutex_lock(&l->stats_mtx);
    l->pub_st = l->st;
    pthread_mutex_unlock(&l->stats_mtx);
}

// forgive_pause: this thread did not run for pause_ms (the machine was
// overloaded, or the process stopped): what arrived meanwhile may still
// wait in the sockets, and the peers' silence in that time says nothing
// about them.  Each peer gets back the time it had left, so that a stall
// here never declares healthy peers lost (and never loses their work).
static void
forgive_pause(ra_link_t *l, uint64_t now, uint64_t pause_ms)
{
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL; p = p->next) {
        p->last_rx_ms = p->last_rx_ms + pause_ms > now ? now
                                                       : p->last_rx_ms + pause_ms;
        p->last_progress_ms = p->last_progress_ms + pause_ms > now
                                  ? now
                                  : p->last_progress_ms + pause_ms;
    }
    l->st.stalls++;
    if (pause_ms > l->st.stall_max_ms) {
        l->st.stall_max_ms = pause_ms;
    }
    if (now - l->stall_logged_ms >= 10000) {
        l->stall_logged_ms = now;
        ra_log_warn("link", "this process's link thread did not run for "
                    "%" PRIu64 " ms (an overloaded machine?): that time is "
                    "not counted as silence of its %u peers",
                    pause_ms, (unsigned)atomic_load(&l->npeers));
    }
}

// spin_next: how many empty turns the I/O thread spins after the work it
// just found, given how the quiet spell that this work ended went: quiet
// empty turns, and slept_ns when it went to sleep (0: it never did).
// Spinning pays when the next message comes soon after the last, as in a
// synchronous exchange, where it saves a wake-up on both sides per
// message; it wastes a CPU when messages come far apart, as in a process
// that is starting or mostly idle, where many such threads spinning at
// once slow everything else down.  So the spin doubles when work came
// within it, or within about the time a full spin takes, and halves when
// work came later.
static unsigned
spin_next(unsigned spin, unsigned quiet, uint64_t slept_ns)
{
    bool soon = slept_ns == 0 ? quiet > 0
                              : now_ns() - slept_ns < SPIN_PAYOFF_NS;
    if (slept_ns == 0 && quiet == 0) {
        return spin; // busy all along: nothing learnt
    }
    if (soon) {
        return spin == 0 ? 1 : spin * 2 > SPIN_TURNS ? SPIN_TURNS : spin * 2;
    }
    return spin / 2;
}

// has_work: p has commands that this turn can act on.  Commands queued
// for a peer whose connection is not up yet (its hello cannot go out) wait
// for the connection, not for the I/O thread: counting them as work spun
// the thread at full speed for as long as a connection took to come up
// (thousands of turns in a worker that had just started).
static bool
has_work(ra__lpeer_t *p)
{
    return ra__mpsc_nonempty(&p->q) && !p->closing &&
           !(p->dealer != NULL && !p->hello_sent);
}

static void *
io_main(void *arg)
{
    ra_link_t *l = arg;
    ra__tls_noblock = true;
    pthread_setname_np(pthread_self(), "rayo-link");
    zmq_pollitem_t *items = NULL;
    ra__lpeer_t **owners = NULL;
    size_t cap = 0;
    uint64_t last_tick = 0;
    unsigned spin = SPIN_START;  // empty turns before sleeping (adapts)
    unsigned quiet = spin;       // turns in a row that did nothing
    uint64_t slept_ns = 0;       // when this quiet spell's first sleep began
    while (!atomic_load(&l->stop)) {
        // Build the poll set: event fd, ZAP, router, dealers.
        size_t need = 3 + 2 * atomic_load(&l->npeers);
        if (need > cap) {
            size_t ncap = need * 2;
            zmq_pollitem_t *ni = realloc(items, ncap * sizeof(*ni));
            if (ni != NULL) {
                items = ni;
            }
            ra__lpeer_t **no = realloc(owners, ncap * sizeof(*no));
            if (no != NULL) {
                owners = no;
            }
            if (ni == NULL || no == NULL) {
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
                continue;
            }
            cap = ncap;
        }
        size_t n = 0;
        items[n++] = (zmq_pollitem_t){NULL, l->evfd, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){l->zap, 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){l->router, 0, ZMQ_POLLIN, 0};
        bool busy = false, blocked = false;
        for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL;
             p = p->next) {
            if (p->dealer != NULL && n < cap) { // a peer added meanwhile
                owners[n] = p;                   // waits for the next turn
                items[n++] = (zmq_pollitem_t){p->dealer, 0, ZMQ_POLLIN, 0};
            }
            if (p->pidfd >= 0 && n < cap) {
                owners[n] = p;
                items[n++] = (zmq_pollitem_t){NULL, p->pidfd, ZMQ_POLLIN, 0};
            }
            if (has_work(p)) {
                busy = true;
            }
            if (p->next_send != NULL || (p->dealer && !p->hello_sent)) {
                blocked = true; // waiting for room or a connection
            }
        }
        // Busy: do not wait.  Recently busy: look again without sleeping
        // (a wake-up through the event fd costs a system call on both
        // sides, per message when traffic is steady).  Else sleep until a
        // socket, a sender or the next tick wakes us.
        long timeout = 0;
        bool sleep = false;
        if (!busy && quiet >= spin) {
            atomic_store(&l->sleeping, true);
            sleep = true;
            // Re-check after announcing sleep: a push after this wakes us.
            for (ra__lpeer_t *p = atomic_load(&l->peer_list);
                 p != NULL && !busy; p = p->next) {
                if (has_work(p)) {
                    busy = true;
                }
            }
            if (busy) {
                timeout = 0;
            } else if (blocked) {
                timeout = 1;
            } else {
                // What the last busy turns counted is published before a
                // sleep that may be long.
                publish_stats(l);
                timeout = sleep_ms(l, ra__link_now_ms());
            }
            if (timeout > 0 && slept_ns == 0) {
                slept_ns = now_ns();
            }
        }
        int rc = zmq_poll(items, (int)n, timeout);
        if (sleep) {
            atomic_store(&l->sleeping, false);
        }
        if (rc < 0 && zmq_errno() == ETERM) {
            break;
        }
        size_t did = 0;
        if (rc > 0) {
            if (items[0].revents & ZMQ_POLLIN) {
                uint64_t v;
                ssize_t r = read(l->evfd, &v, sizeof(v));
                (void)r;
            }
            if (items[1].revents & ZMQ_POLLIN) {
                ra__link_zap_handle(l);
            }
            if (items[2].revents & ZMQ_POLLIN) {
                did += drain_router(l);
            }
            for (size_t i = 3; i < n; i++) {
                if (!(items[i].revents & ZMQ_POLLIN)) {
                    continue;
                }
                ra__lpeer_t *p = owners[i];
                if (items[i].socket != NULL) {
                    did += drain_dealer(l, p);
                } else if (p->pidfd == items[i].fd) {
                    // Its process exited.  What it sent last may still be
                    // on its way through the kernel and ZeroMQ: the
                    // session ends EXIT_GRACE_MS later (see tick).
                    unwatch_process(p);
                    p->exited_ms = ra__link_now_ms();
                    did++;
                }
            }
        }
        for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL;
             p = p->next) {
            did += pump(l, p);
        }
        if (did > 0) {
            spin = spin_next(spin, quiet, slept_ns);
            quiet = 0;
            slept_ns = 0;
        } else if (quiet < spin) {
            quiet++;
            sched_yield(); // let the threads we serve run meanwhile
        }
        uint64_t now = ra__link_now_ms();
        if (last_tick != 0 && now - last_tick >= l->o.hb_interval_ms) {
            forgive_pause(l, now, now - last_tick);
        }
        if (now - last_tick >= TICK_MS) {
            tick(l, now);
            last_tick = now;
            publish_stats(l);
        }
    }
    // Tell peers we are going, so they need not wait for heartbeats.
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL; p = p->next) {
        if (atomic_load(&p->state) != RA__PEER_IDLE) {
            ra_wire_frame_t fr = {0};
            fr.kind = RA_WIRE_BYE;
            send_control(l, p, &fr);
        }
    }
    free(items);
    free(owners);
    return NULL;
}

// ---- where the I/O threads run ----

// parse_cpus reads a CPU list ("1", "0,2-3") into *set.  Returns false if
// it is not one.
static bool
parse_cpus(const char *v, cpu_set_t *set)
{
    CPU_ZERO(set);
    const char *p = v;
    for (;;) {
        char *end = NULL;
        if (*p < '0' || *p > '9') {
            return false;
        }
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        if (*end == '-') {
            p = end + 1;
            if (*p < '0' || *p > '9') {
                return false;
            }
            hi = strtoul(p, &end, 10);
        }
        if (lo > hi || hi >= CPU_SETSIZE) {
            return false;
        }
        for (unsigned long c = lo; c <= hi; c++) {
            CPU_SET(c, set);
        }
        if (*end == '\0') {
            return true;
        }
        if (*end != ',') {
            return false;
        }
        p = end + 1;
    }
}

// io_cpus decides where this process's I/O threads (the link's and
// ZeroMQ's) run, in *set: RAYO_IO_CPUS ("none", or a CPU list), else,
// unless io_free, when the calling thread may run on exactly two CPUs, the
// higher of them.
// Every process of a node decides alike, so that their I/O threads share
// that CPU: a message between two of them then passes from one I/O thread
// to the other with a wake-up on the CPU it is sent from, not on another
// one, which on a virtual machine costs an interrupt between CPUs.
// Returns false to leave them where the kernel puts them.
static bool
io_cpus(cpu_set_t *set, bool io_free)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) {
        return false;
    }
    const char *v = getenv("RAYO_IO_CPUS");
    if (v != NULL && strcmp(v, "none") == 0) {
        return false;
    }
    if (v != NULL) {
        if (!parse_cpus(v, set)) {
            ra_log_warn("link", "RAYO_IO_CPUS=%s is not \"none\" or a CPU "
                        "list such as 1 or 0,2-3: the I/O threads run "
                        "anywhere", v);
            return false;
        }
        CPU_AND(set, set, &allowed);
        if (CPU_COUNT(set) == 0) {
            ra_log_warn("link", "RAYO_IO_CPUS=%s names none of the CPUs "
                        "this process may use: the I/O threads run "
                        "anywhere", v);
            return false;
        }
        return true;
    }
    if (io_free || CPU_COUNT(&allowed) != 2) {
        return false;
    }
    CPU_ZERO(set);
    for (int c = CPU_SETSIZE - 1; c >= 0; c--) {
        if (CPU_ISSET(c, &allowed)) {
            CPU_SET(c, set);
            break;
        }
    }
    return true;
}

// ---- start and stop ----

static int
ensure_private_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        ra_log_err("link", "cannot create %s: %s", dir, strerror(e));
        return -e;
    }
    struct stat st;
    if (lstat(dir, &st) != 0) {
        return -errno;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        ra_log_err("link", "%s is not a directory of ours: refusing to put "
                   "sockets there (set ipc_dir)", dir);
        return RA_EACCES;
    }
    if ((st.st_mode & 077) != 0 && chmod(dir, 0700) != 0) {
        return -errno;
    }
    return 0;
}

static int
bind_endpoint(ra_link_t *l)
{
    char ep[512];
    if (l->o.bind == NULL) {
        snprintf(ep, sizeof(ep), "ipc://%s/node-%u-proc-%u", l->ipc_dir,
                 l->node, l->proc);
        l->ipc_default = true;
    } else {
        snprintf(ep, sizeof(ep), "%s", l->o.bind);
        size_t len = strlen(ep);
        // Port 0 means "pick one", as with bind(2).
        if (len > 2 && strcmp(ep + len - 2, ":0") == 0) {
            ep[len - 1] = '*';
        }
    }
    l->tcp = strncmp(ep, "tcp://", 6) == 0;
    if (!l->tcp && strncmp(ep, "ipc://", 6) != 0) {
        ra_log_err("link", "endpoint %s: use tcp://HOST:PORT or ipc://PATH",
                   ep);
        return RA_EINVAL;
    }
    if (!l->tcp) {
        if (strlen(ep + 6) >= 108) {
            ra_log_err("link", "ipc path %s is too long for a socket "
                       "(107 bytes at most)", ep + 6);
            return RA_EINVAL;
        }
        snprintf(l->ipc_path, sizeof(l->ipc_path), "%s", ep + 6);
    }
    if (l->tcp) {
        if (set_int(l->router, ZMQ_CURVE_SERVER, 1) != 0 ||
            zmq_setsockopt(l->router, ZMQ_CURVE_SECRETKEY, l->sec, 40) != 0 ||
            zmq_setsockopt(l->router, ZMQ_ZAP_DOMAIN, "rayo", 4) != 0) {
            return zerr();
        }
    }
    if (zmq_bind(l->router, ep) != 0) {
        int e = zmq_errno();
        ra_log_err("link", "cannot listen on %s: %s", ep, zmq_strerror(e));
        return e == EADDRINUSE ? RA_EEXIST : -e;
    }
    size_t len = sizeof(l->endpoint);
    if (zmq_getsockopt(l->router, ZMQ_LAST_ENDPOINT, l->endpoint, &len) !=
        0) {
        snprintf(l->endpoint, sizeof(l->endpoint), "%s", ep);
    }
    return 0;
}

static void
defaults(ra_link_opts_t *o)
{
    if (o->hb_interval_ms == 0) {
        o->hb_interval_ms = 500;
    }
    if (o->hb_miss == 0) {
        o->hb_miss = 5;
    }
    if (o->hb_miss_local == 0) {
        o->hb_miss_local = 20;
    }
    if (o->hb_miss_local < o->hb_miss) {
        o->hb_miss_local = o->hb_miss;
    }
    if (o->idle_ms == 0) {
        o->idle_ms = 300000;
    }
    if (o->chunk_size == 0) {
        o->chunk_size = 4u << 20;
    }
    if (o->max_msg == 0) {
        o->max_msg = 64u << 20;
    }
    if (o->queue_bytes == 0) {
        o->queue_bytes = (size_t)256 << 20;
    }
    if (o->queue_frames == 0) {
        o->queue_frames = 1000000;
    }
    if (o->fault_seed == 0) {
        o->fault_seed = 1;
    }
}

int
ra_link_start(ra_runtime_t *rt, const ra_link_opts_t *opts, ra_link_t **out)
{
    if (rt == NULL || out == NULL || (rt->node == 0 && rt->proc == 0)) {
        if (rt != NULL && rt->node == 0 && rt->proc == 0) {
            ra_log_err("link", "the runtime needs a node or process number "
                       "(ra_runtime_opts_t.node, .proc) to join links");
        }
        return RA_EINVAL;
    }
    ra_link_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return RA_ENOMEM;
    }
    if (opts != NULL) {
        l->o = *opts;
    }
    defaults(&l->o);
    l->o.bind = NULL; // copied below; the caller's string may go away
    l->o.ipc_dir = NULL;
    l->o.cert = NULL;
    l->rt = rt;
    l->node = rt->node;
    l->proc = rt->proc;
    l->inc = random_i63();
    identity_init(l);
    l->rng = l->o.fault_seed;
    l->evfd = -1;
    pthread_rwlock_init(&l->peers_lock, NULL);
    pthread_mutex_init(&l->proxy_mtx, NULL);
    pthread_mutex_init(&l->sub_mtx, NULL);
    pthread_mutex_init(&l->fault_mtx, NULL);
    pthread_mutex_init(&l->wait_mtx, NULL);
    pthread_cond_init(&l->wait_cond, NULL);
    pthread_mutex_init(&l->stats_mtx, NULL);
    char bind_copy[512] = {0};
    int rc = 0;
    if (l->o.chunk_size > l->o.max_msg || l->o.chunk_size < 1024 ||
        l->o.chunk_size > INT32_MAX ||
        (l->o.full_policy != RA_FULL_FAIL &&
         l->o.full_policy != RA_FULL_BLOCK)) {
        rc = RA_EINVAL;
        goto fail;
    }
    if (opts != NULL && opts->bind != NULL) {
        if (strlen(opts->bind) >= sizeof(bind_copy)) {
            rc = RA_EINVAL;
            goto fail;
        }
        strcpy(bind_copy, opts->bind);
        l->o.bind = bind_copy;
    }
    if (opts != NULL && opts->ipc_dir != NULL) {
        snprintf(l->ipc_dir, sizeof(l->ipc_dir), "%s", opts->ipc_dir);
    } else {
        const char *x = getenv("XDG_RUNTIME_DIR");
        if (x != NULL && x[0] == '/') {
            snprintf(l->ipc_dir, sizeof(l->ipc_dir), "%s/rayo", x);
        } else {
            snprintf(l->ipc_dir, sizeof(l->ipc_dir), "/tmp/rayo-%u",
                     (unsigned)geteuid());
        }
    }
    bool want_tcp = l->o.bind != NULL && strncmp(l->o.bind, "tcp://", 6) == 0;
    if (opts != NULL && opts->cert != NULL) {
        if ((rc = ra__link_cert_load(opts->cert, l->pub, l->sec)) != 0) {
            goto fail;
        }
    } else if (want_tcp) {
        ra_log_err("link", "listening on tcp needs the cluster certificate: "
                   "set ra_link_opts_t.cert (ra_link_cert_ensure makes one)");
        rc = RA_ENOENT;
        goto fail;
    }
    if (!want_tcp && (rc = ensure_private_dir(l->ipc_dir)) != 0) {
        goto fail;
    }
    if ((l->zctx = zmq_ctx_new()) == NULL) {
        rc = zerr();
        goto fail;
    }
    // (ZeroMQ starts its I/O thread with the first socket.)
    l->io_pinned = io_cpus(&l->io_cpus, l->o.io_free);
    for (int c = 0; l->io_pinned && c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &l->io_cpus) &&
            zmq_ctx_set(l->zctx, ZMQ_THREAD_AFFINITY_CPU_ADD, c) != 0) {
            rc = zerr();
            goto fail;
        }
    }
    // The ZAP handler must exist before any CURVE socket binds: without
    // one, libzmq lets every client key in.
    if ((rc = ra__link_zap_start(l)) != 0) {
        goto fail;
    }
    if ((l->router = zmq_socket(l->zctx, ZMQ_ROUTER)) == NULL) {
        rc = zerr();
        goto fail;
    }
    if ((rc = common_opts(l, l->router)) != 0 ||
        set_int(l->router, ZMQ_ROUTER_MANDATORY, 1) != 0 ||
        set_int(l->router, ZMQ_ROUTER_HANDOVER, 1) != 0) {
        rc = rc != 0 ? rc : zerr();
        goto fail;
    }
    if ((rc = bind_endpoint(l)) != 0) {
        goto fail;
    }
    l->o.bind = NULL;
    if ((l->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        rc = -errno;
        goto fail;
    }
    const ra__dist_ops_t *none = NULL;
    l->rt->dist = l;
    if (!atomic_compare_exchange_strong(&rt->dist_ops, &none,
                                        &ra__link_ops)) {
        l->rt = NULL;
        rc = RA_EINVAL; // this runtime already has a link layer
        goto fail;
    }
    pthread_attr_t attr;
    if ((rc = -pthread_attr_init(&attr)) != 0) {
        atomic_store(&rt->dist_ops, NULL);
        goto fail;
    }
    if (l->io_pinned) {
        (void)pthread_attr_setaffinity_np(&attr, sizeof l->io_cpus,
                                          &l->io_cpus);
    }
    rc = -pthread_create(&l->io, &attr, io_main, l);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        atomic_store(&rt->dist_ops, NULL);
        goto fail;
    }
    l->io_started = true;
    char where[40] = "any CPU";
    for (int c = 0; l->io_pinned && c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &l->io_cpus)) {
            snprintf(where, sizeof where, "CPU %d%s", c,
                     CPU_COUNT(&l->io_cpus) > 1 ? " and others" : "");
            break;
        }
    }
    ra_log_info("link", "node %u.%u listening on %s; I/O threads on %s",
                l->node, l->proc, l->endpoint, where);
    *out = l;
    return 0;
fail:
    l->o.bind = NULL;
    if (l->rt != NULL && rt->dist == l && atomic_load(&rt->dist_ops) == NULL) {
        rt->dist = NULL;
    }
    l->rt = NULL;
    ra_link_stop(&l);
    return rc;
}

void
ra_link_stop(ra_link_t **lp)
{
    if (lp == NULL || *lp == NULL) {
        return;
    }
    ra_link_t *l = *lp;
    *lp = NULL;
    if (l->rt != NULL) {
        atomic_store(&l->rt->dist_ops, NULL);
        while (atomic_load(&l->rt->dist_users) != 0) {
            sched_yield();
        }
    }
    atomic_store(&l->stop, true);
    if (l->io_started) {
        uint64_t one = 1;
        ssize_t n = write(l->evfd, &one, sizeof(one));
        (void)n;
        pthread_join(l->io, NULL);
    }
    // Everything across the link is lost now.
    ra__tls_noblock = true;
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL; p = p->next) {
        if (l->rt != NULL) {
            session_lost(l, p, RA_NOCONNECTION, "link stopped");
        }
    }
    ra__tls_noblock = false;
    ra__link_drop_proxies(l);
    ra__lpeer_t *p = atomic_load(&l->peer_list);
    while (p != NULL) {
        ra__lpeer_t *next = p->next;
        close_dealer(p);
        delay_flush(l, p, 0, true);
        while (p->head != NULL) {
            ra__lframe_t *f = p->head;
            p->head = f->next;
            frame_unref(f);
        }
        ra__qnode_t *n;
        while ((n = ra__mpsc_pop(&p->q)) != NULL) {
            cmd_free((ra__lcmd_t *)n);
        }
        ra_wire_reasm_destroy(&p->reasm);
        free(p->bbuf);
        for (size_t i = 0; i < p->recs.cap; i++) {
            if (ra__hmap_live(&p->recs, i)) {
                free(p->recs.v[i].val);
            }
        }
        ra__hmap_fini(&p->recs);
        ra__hmap_fini(&p->proxies_by_rcref);
        for (size_t i = 0; i < p->rmons.cap; i++) {
            if (ra__hmap_live(&p->rmons, i)) {
                free(p->rmons.v[i].val);
            }
        }
        ra__hmap_fini(&p->rmons);
        unwatch_process(p);
        pthread_mutex_destroy(&p->mtx);
        pthread_cond_destroy(&p->space);
        free(p);
        p = next;
    }
    ra__hmap_fini(&l->peers);
    ra__hmap_fini(&l->proxies);
    while (l->subs != NULL) {
        ra__lsub_t *s = l->subs;
        l->subs = s->next;
        free(s);
    }
    free(l->rules);
    if (l->router != NULL) {
        zmq_close(l->router);
    }
    if (l->zap != NULL) {
        zmq_close(l->zap);
    }
    if (l->zctx != NULL) {
        zmq_ctx_term(l->zctx);
    }
    if (l->evfd >= 0) {
        close(l->evfd);
    }
    if (l->ipc_path[0] != 0 && l->io_started) {
        unlink(l->ipc_path);
    }
    if (l->rt != NULL && l->rt->dist == l) {
        l->rt->dist = NULL;
    }
    pthread_rwlock_destroy(&l->peers_lock);
    pthread_mutex_destroy(&l->proxy_mtx);
    pthread_mutex_destroy(&l->sub_mtx);
    pthread_mutex_destroy(&l->fault_mtx);
    pthread_mutex_destroy(&l->wait_mtx);
    pthread_cond_destroy(&l->wait_cond);
    pthread_mutex_destroy(&l->stats_mtx);
    explicit_bzero(l->sec, sizeof(l->sec));
    free(l);
}

const char *
ra_link_endpoint(const ra_link_t *l)
{
    return l != NULL ? l->endpoint : NULL;
}

int
ra_link_route(ra_link_t *l, uint32_t node, uint32_t proc,
              const char *endpoint)
{
    if (l == NULL || endpoint == NULL || strlen(endpoint) >= 256 ||
        (strncmp(endpoint, "tcp://", 6) != 0 &&
         strncmp(endpoint, "ipc://", 6) != 0) ||
        (node == l->node && proc == l->proc)) {
        return RA_EINVAL;
    }
    ra__lpeer_t *p = ra__link_peer(l, node, proc, true);
    if (p == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_lock(&p->mtx);
    snprintf(p->route, sizeof(p->route), "%s", endpoint);
    pthread_mutex_unlock(&p->mtx);
    return 0;
}

// Asks the peer who it is with a throwaway socket and a session-less
// hello, so that the real connection can be keyed by its node and process.
static int
probe(ra_link_t *l, const char *endpoint, int64_t timeout_ms,
      ra_wire_hello_t *who)
{
    void *s = zmq_socket(l->zctx, ZMQ_DEALER);
    if (s == NULL) {
        return zerr();
    }
    int rc = set_int(s, ZMQ_LINGER, 0) == 0 ? 0 : zerr();
    if (rc == 0) {
        rc = client_keys(l, s, endpoint);
    }
    if (rc == 0 && zmq_connect(s, endpoint) != 0) {
        rc = zerr();
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    ra_wire_frame_t fr;
    make_hello(l, NULL, &fr);
    if (rc == 0 && (rc = ra_wire_encode(&fr, 0, &buf, &len)) == 0) {
        if (zmq_send(s, buf, len, 0) < 0) {
            rc = zerr();
        }
        ra_wire_free(buf);
    }
    if (rc == 0) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        rc = zmq_poll(&it, 1, timeout_ms < 0 ? -1 : (long)timeout_ms);
        if (rc <= 0) {
            rc = rc == 0 ? RA_ETIMEOUT : zerr();
        } else {
            zmq_msg_t m;
            zmq_msg_init(&m);
            rc = RA_EBADMSG;
            if (zmq_msg_recv(&m, s, 0) >= 0) {
                ra_wire_frame_t f;
                if (ra_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m),
                                   l->o.max_msg, &f, NULL) == 0) {
                    if (f.kind == RA_WIRE_HELLO) {
                        int32_t v;
                        rc = ra_wire_negotiate(&f.hello, &v);
                        who->node = f.hello.node;
                        who->proc = f.hello.proc;
                    } else if (f.kind == RA_WIRE_ERR) {
                        rc = f.code; // it refused us, and said why
                    }
                }
            }
            zmq_msg_close(&m);
        }
    }
    zmq_close(s);
    return rc;
}

int
ra_link_connect(ra_link_t *l, const char *endpoint, int64_t timeout_ms,
                uint32_t *node, uint32_t *proc)
{
    if (l == NULL || endpoint == NULL) {
        return RA_EINVAL;
    }
    uint64_t t0 = ra__link_now_ms();
    ra_wire_hello_t who = {0};
    int rc = probe(l, endpoint, timeout_ms, &who);
    if (rc != 0) {
        if (rc == RA_ETIMEOUT) {
            ra_log_warn("link", "no answer from %s in %" PRId64 " ms: is it "
                        "running, and do both sides hold the same cluster "
                        "certificate?", endpoint, timeout_ms);
        }
        return rc;
    }
    if ((rc = ra_link_route(l, who.node, who.proc, endpoint)) != 0) {
        return rc;
    }
    ra__lpeer_t *p = ra__link_peer(l, who.node, who.proc, false);
    if (atomic_load(&p->state) == RA__PEER_IDLE) {
        // The I/O thread dials a peer when its queue is not empty: queue a
        // no-op.
        ra__lcmd_t *c = calloc(1, sizeof(*c));
        if (c == NULL) {
            return RA_ENOMEM;
        }
        c->op = 0; // a no-op: dials, then is dropped by the pump
        ra__link_enqueue(l, p, c);
    }
    pthread_mutex_lock(&l->wait_mtx);
    while (atomic_load(&p->state) != RA__PEER_UP) {
        uint64_t spent = ra__link_now_ms() - t0;
        if (timeout_ms >= 0 && spent >= (uint64_t)timeout_ms) {
            rc = RA_ETIMEOUT;
            break;
        }
        struct timespec dl;
        ra__deadline(&dl, timeout_ms < 0 ? 100
                          : (int64_t)((uint64_t)timeout_ms - spent) < 100
                              ? (int64_t)((uint64_t)timeout_ms - spent)
                              : 100);
        pthread_cond_timedwait(&l->wait_cond, &l->wait_mtx, &dl);
    }
    pthread_mutex_unlock(&l->wait_mtx);
    if (rc == 0) {
        if (node != NULL) {
            *node = who.node;
        }
        if (proc != NULL) {
            *proc = who.proc;
        }
    }
    return rc;
}

int
ra_link_disconnect(ra_link_t *l, uint32_t node, uint32_t proc)
{
    if (l == NULL) {
        return RA_EINVAL;
    }
    ra__lpeer_t *p = ra__link_peer(l, node, proc, false);
    if (p == NULL || atomic_load(&p->state) == RA__PEER_IDLE) {
        return RA_ENOENT;
    }
    ra__lcmd_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return RA_ENOMEM;
    }
    c->op = RA__OP_BYE;
    return ra__link_enqueue(l, p, c);
}

int
ra_link_stats(ra_link_t *l, ra_link_stats_t *st)
{
    if (l == NULL || st == NULL) {
        return RA_EINVAL;
    }
    pthread_mutex_lock(&l->stats_mtx);
    *st = l->pub_st;
    pthread_mutex_unlock(&l->stats_mtx);
    st->full = atomic_load(&l->full);
    return 0;
}

int
ra_link_peers(ra_link_t *l, ra_link_peer_t *out, size_t cap, size_t *n)
{
    if (l == NULL || n == NULL || (out == NULL && cap > 0)) {
        return RA_EINVAL;
    }
    size_t i = 0;
    pthread_rwlock_rdlock(&l->peers_lock);
    for (ra__lpeer_t *p = atomic_load(&l->peer_list); p != NULL;
         p = p->next, i++) {
        if (i < cap) {
            ra_link_peer_t *o = &out[i];
            memset(o, 0, sizeof(*o));
            o->node = p->node;
            o->proc = p->proc;
            o->up = atomic_load(&p->state) == RA__PEER_UP;
            o->queued_bytes = atomic_load(&p->queued_bytes);
            o->queued_frames = atomic_load(&p->queued_frames);
            pthread_mutex_lock(&p->mtx);
            snprintf(o->endpoint, sizeof(o->endpoint), "%s", p->route);
            pthread_mutex_unlock(&p->mtx);
        }
    }
    pthread_rwlock_unlock(&l->peers_lock);
    *n = i;
    return 0;
}

int
ra_link_fault_set(ra_link_t *l, uint32_t node, uint32_t proc,
                  const ra_link_fault_t *rule)
{
    if (l == NULL || (rule != NULL && (rule->drop_ppm > 1000000 ||
                                       rule->dup_ppm > 1000000))) {
        return RA_EINVAL;
    }
    if (!l->o.faults) {
        ra_log_warn("link", "fault injection is off: start the link with "
                    "ra_link_opts_t.faults set");
        return RA_ENOTSUP;
    }
    ra_link_fault_t zero = {0};
    bool clear = rule == NULL || memcmp(rule, &zero, sizeof(zero)) == 0;
    pthread_mutex_lock(&l->fault_mtx);
    size_t j = 0;
    for (size_t i = 0; i < l->nrules; i++) {
        if (l->rules[i].node != node || l->rules[i].proc != proc) {
            l->rules[j++] = l->rules[i];
        }
    }
    l->nrules = j;
    int rc = 0;
    if (!clear) {
        struct ra__lrule *nr = realloc(l->rules, (j + 1) * sizeof(*nr));
        if (nr == NULL) {
            rc = RA_ENOMEM;
        } else {
            l->rules = nr;
            nr[j] = (struct ra__lrule){node, proc, *rule};
            l->nrules = j + 1;
        }
    }
    pthread_mutex_unlock(&l->fault_mtx);
    atomic_fetch_add(&l->rules_gen, 1);
    ra__link_wake(l);
    return rc;
}

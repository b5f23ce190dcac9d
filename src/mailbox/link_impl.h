// link_impl.h - internal structures of the link layer (src/ only).
//
// One I/O thread owns every ZeroMQ socket of a link: a ROUTER that peers
// dial, a DEALER per peer this process dialled, and the REP socket of the
// ZAP handler.  Other threads reach it through per-peer command queues
// (MPSC) and an eventfd.  Records of what crosses a peer (links, monitors,
// calls) are kept per peer under the peer's mutex, so that losing a peer
// can fire every one of them.
#ifndef RA_LINK_IMPL_H
#define RA_LINK_IMPL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../actor/actor_impl.h"
#include "mailbox_impl.h"
#include "ra_link.h"

#include "hmap.h"

static inline uint64_t
ra__pid_key(ra_pid_t p)
{
    return (uint64_t)p.id << 32 | p.gen;
}

// ---- frames and commands ----

// An encoded sequenced frame, kept until the peer acknowledges it.  refs
// counts the keeper and ZeroMQ's copies still being sent (zero-copy).
typedef struct ra__lframe {
    struct ra__lframe *next;
    atomic_int refs;
    int64_t seq;
    size_t len;
    size_t cost;      // bytes charged to the peer's queue
    uint8_t *buf;
    ra_msg_t *msg;    // framed in place: buf lies in this message
} ra__lframe_t;

enum {
    RA__OP_MSG = 1,   // msg (cref: a call; rep: a reply)
    RA__OP_SIG = 2,   // sig
    RA__OP_BYE = 3    // end the session (ra_link_disconnect)
};

typedef struct ra__lcmd {
    ra__qnode_t node;
    uint8_t op;
    uint8_t sig;      // RA_WIRE_SIG_*
    bool rep;
    ra_pid_t to, from;
    int64_t cref, ref, reason;
    ra_msg_t *msg;
    size_t cost;
} ra__lcmd_t;

// ---- peers ----

enum {
    RA__PEER_IDLE = 0,   // no session
    RA__PEER_DIALING,    // hello sent (or to send), no answer yet
    RA__PEER_UP          // session established
};

// What a local actor holds across a peer.
typedef struct ra__lrec {
    ra_pid_t local, remote;
    uint64_t ref;         // monitors
    uint8_t kind;         // RA__REC_*
} ra__lrec_t;

enum { RA__REC_LINK = 1, RA__REC_MON, RA__REC_CALL, RA__REC_NODE };

// A call from the peer to a local actor, waiting for its reply.
typedef struct ra__lproxy {
    uint64_t id;          // the cref given to the local actor
    int64_t rcref;        // the caller's cref
    ra_pid_t caller, callee;
    struct ra__lpeer *peer;
} ra__lproxy_t;

typedef struct ra__ldelay {
    struct ra__ldelay *next;
    uint64_t due_ms;
    ra__lframe_t *f;      // NULL: an unsequenced frame in buf
    uint8_t *buf;
    size_t len;
} ra__ldelay_t;

typedef struct ra__lpeer {
    uint32_t node, proc;
    struct ra_link *l;
    pthread_mutex_t mtx;     // route, records, proxies, blocked senders
    pthread_cond_t space;
    atomic_uint waiters;
    char route[256];
    ra__hmap_t recs;         // (local, remote) or (ref, kind) -> lrec
    ra__hmap_t proxies_by_rcref; // (rcref, 0) -> lproxy
    ra__hmap_t rmons;        // monitors the peer's actors hold on ours:
                             // (ref, watcher) -> lrec
    // Commands from other threads.
    ra__mpsc_t q;
    atomic_size_t queued_bytes, queued_frames;
    _Atomic int state;
    atomic_bool lost_flag;   // written by disconnect requests
    // I/O thread only from here on.
    void *dealer;
    uint8_t rid[256];
    size_t rid_len;
    bool hello_sent;
    bool need_ack;
    bool gap_acked;          // an ack went out for the current gap
    int64_t gap_seq;         // the frame that showed the current gap
    uint64_t gap_ms;         // when we last reported it
    int64_t rewind_ack;      // acknowledged when we last went back
    uint64_t rewind_ms;
    int64_t recover_seq;     // resending: no rewind before this is acked
    int64_t sent_seq;        // the last seq handed to ZeroMQ
    uint64_t rto_ms;         // resend timeout, 0: the default
    size_t rx_bytes;         // received since our last ack
    uint64_t hello_ms;       // when our hello last went out
    bool closing;            // an idle bye was sent
    uint64_t closing_ms;
    int64_t my_sess, peer_inc, peer_sess;
    int64_t tx_seq, rx_seq, rx_acked;
    int64_t chunk_id;
    ra__lframe_t *head, *tail, *next_send; // unacknowledged, in seq order
    uint64_t last_rx_ms, last_tx_ms, last_progress_ms, since_ms;
    uint64_t last_use_ms;    // last frame other than heartbeats
    ra_wire_reasm_t *reasm;
    uint8_t *bbuf;           // the batch being filled: records,
    size_t blen, bcap, bcost; // their bytes, room and queue charge
    unsigned bcnt;
    ra_link_fault_t fault;
    bool has_fault;
    ra__ldelay_t *delay_head, *delay_tail;
    // The peer as a process of this machine (see watch_process): a pidfd
    // that turns readable when it exits, or -1.  dial_ipc: our dealer
    // dials an ipc:// route; ipc: the session runs over ipc (no network
    // between us, so only a hung process is silent).
    int pidfd;
    bool dial_ipc, ipc;
    char dial_path[256];     // the ipc path dialled ("" for tcp)
    pid_t ospid;             // its process id, while pidfd >= 0
    uint64_t exited_ms;      // when its process exited (0: it runs)
    uint64_t probe_ms;       // silent for half the window: since when its
    int64_t probe_delay;     // threads' waits for a CPU are measured
                             // (see starved), and their sum then
    struct ra__lpeer *next;  // all peers, in creation order
} ra__lpeer_t;

typedef struct ra__lsub {
    struct ra__lsub *next;
    ra_pid_t pid;
} ra__lsub_t;

struct ra_link {
    ra_runtime_t *rt;
    ra_link_opts_t o;
    uint32_t node, proc;
    int64_t inc;
    char endpoint[512];
    char ipc_dir[256];
    bool ipc_default;       // bound to the default ipc name in ipc_dir
    char ipc_path[512];   // to unlink at stop
    bool tcp;
    // Keys (Z85, 40 characters + NUL) when tcp.
    char pub[41], sec[41];
    void *zctx;
    void *router;
    void *zap;
    int evfd;
    atomic_bool sleeping;
    atomic_bool stop;
    pthread_t io;
    bool io_started;
    cpu_set_t io_cpus;        // where the I/O threads run (io_pinned)
    bool io_pinned;
    uint64_t stall_logged_ms; // I/O thread: when a pause was last logged
    uint64_t starve_logged_ms; // and a starved peer
    // This process as the hello describes it: the machine's boot id
    // ("" when unknown), and the process's start time after boot.
    char boot_id[RA_WIRE_MAX_HOST + 1];
    int64_t ostart;
    // Peers: a hash by (node, proc) and a list; never freed before stop.
    pthread_rwlock_t peers_lock;
    ra__hmap_t peers;
    _Atomic(ra__lpeer_t *) peer_list; // pushed under peers_lock, read by
                                      // the I/O thread without it
    atomic_size_t npeers;
    // Calls from peers waiting for local replies: (proxy id, 0) -> lproxy.
    pthread_mutex_t proxy_mtx;
    ra__hmap_t proxies;
    uint64_t proxy_seq;
    // Node event subscribers.
    pthread_mutex_t sub_mtx;
    ra__lsub_t *subs;
    // Fault injection (I/O thread), and the rules set from other threads.
    pthread_mutex_t fault_mtx;
    uint64_t rng;
    struct ra__lrule {
        uint32_t node, proc;
        ra_link_fault_t f;
    } *rules;
    size_t nrules;
    atomic_uint rules_gen;
    unsigned rules_seen;
    // Connect waiters (ra_link_connect).
    pthread_mutex_t wait_mtx;
    pthread_cond_t wait_cond;
    // Statistics: written by the I/O thread, read under stats_mtx.
    pthread_mutex_t stats_mtx;
    ra_link_stats_t st, pub_st;
    // Received buffers a large message may take over instead of copying
    // (I/O thread, while a frame is handled).
    void *steal_zmsg;         // zmq_msg_t *
    uint8_t *steal_buf;       // a reassembled envelope
    size_t steal_len;
    atomic_uint_fast64_t full;
};

// Bodies at least this large are handed over, not copied.
#define ZC_MIN (64u << 10)

// link.c
ra__lpeer_t *ra__link_peer(ra_link_t *l, uint32_t node, uint32_t proc,
                           bool create);
int ra__link_enqueue(ra_link_t *l, ra__lpeer_t *p, ra__lcmd_t *c);
void ra__link_wake(ra_link_t *l);
uint64_t ra__link_now_ms(void);
void ra__link_send_err(ra_link_t *l, ra__lpeer_t *p, int code, ra_pid_t to,
                       int64_t cref, const char *text);

// link_dist.c: the runtime's hooks and what arrives for local actors.
extern const ra__dist_ops_t ra__link_ops;
void ra__link_on_msg(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f);
void ra__link_on_sig(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f);
void ra__link_on_batch(ra_link_t *l, ra__lpeer_t *p,
                       const ra_wire_frame_t *f);
void ra__link_on_err(ra_link_t *l, ra__lpeer_t *p, const ra_wire_frame_t *f);
void ra__link_fire_lost(ra_link_t *l, ra__lpeer_t *p, ra_reason_t reason);
void ra__link_node_event(ra_link_t *l, ra__lpeer_t *p, bool up,
                         ra_reason_t reason);
bool ra__link_has_records(ra__lpeer_t *p);
void ra__link_drop_proxies(ra_link_t *l);

// link_sec.c: certificates and the ZAP handler.
int ra__link_cert_load(const char *path, char pub[41], char sec[41]);
int ra__link_zap_start(ra_link_t *l);
void ra__link_zap_handle(ra_link_t *l);

#endif

// ra_link.h - links between processes and nodes over ZeroMQ.
//
// A link layer (ra_link_t) makes the actors of one runtime reachable from
// other processes, on this machine (ipc://) or on other nodes (tcp://),
// and makes theirs reachable from here.  Once it runs, ra_send, ra_call,
// ra_link, ra_monitor, ra_exit_pid and ra_reply work the same on a pid of
// another process as on a local one: a pid names its node and process, and
// the runtime hands whatever is not local to the link layer.  Local
// delivery never touches a socket.
//
// One connection per pair of processes, not one per actor.  A connection
// is made on first use, to the endpoint registered for the peer with
// ra_link_route (or dialled with ra_link_connect), and closed when it has
// been idle for idle_ms with nothing in flight and no link or monitor
// across it, or when ra_link_disconnect asks.
//
// Guarantees, as in Erlang: between one sender and one receiver, messages
// arrive in the order sent, at most once, also across a reconnect (every
// frame carries a sequence number; the receiver acknowledges, the sender
// keeps what is unacknowledged and sends it again after a reconnect).
// When a peer is lost (missed heartbeats, its process restarted, or a
// disconnect), what was in flight to it is lost too, and every actor here
// linked to an actor there gets an exit signal with reason
// RA_NOCONNECTION, every monitor of an actor there fires with
// RA_NOCONNECTION, calls waiting on it fail with RA_ENOCONN, and node
// monitors fire.  Differences from local behaviour: ra_link to a remote pid
// that does not exist returns 0 and the caller then gets an exit signal
// with reason RA_NOPROC (Erlang does the same); a send to a remote pid that
// does not exist is dropped and counted on the receiving side.
//
// Failure detection: each side sends a heartbeat every hb_interval_ms when
// it has sent nothing else, and a peer from which nothing arrived for
// hb_interval_ms * hb_miss is declared lost.  The defaults (500 ms x 5)
// find a cut-off peer in about 2.5 s.  A peer process on the same
// machine (the same boot id, process id and start time, told in the
// hello) is watched through a pidfd: its exit ends the session at once
// ("its process exited"), without waiting for heartbeats; over ipc such
// a peer is declared lost for silence only after hb_interval_ms *
// hb_miss_local (10 s by default), since only a hung or starved process
// is silent there (a peer under injected faults, below, gets the
// network's window).  The same longer window applies to the answer to
// our hello when we dial over ipc, while the path we dial exists.  A
// watched peer silent beyond the network's window whose threads spent at
// least half of the last stretch waiting for a CPU (/proc schedstat) is
// given more time, up to the local window: on an overloaded machine a
// cut-off peer is found later, a starved one is not taken for lost.  A pause of this process
// itself (its link thread not run for an interval or more, as on an
// overloaded machine) is not counted as silence of its peers: after it,
// each peer has the time it had left before the pause.  Large messages
// travel in
// chunks of chunk_size bytes so that heartbeats and other traffic are not
// stuck behind them.
//
// Backpressure: frames not yet acknowledged by a peer are counted; above
// queue_bytes or queue_frames a send fails with RA_EFULL, or with the
// RA_FULL_BLOCK policy waits (plain threads only; scheduler threads get
// RA_EFULL, as with bounded mailboxes) until the peer catches up or the
// peer is lost (RA_ENOCONN).
//
// Security: tcp links use CurveZMQ with the cluster certificate (see
// ra_link_cert_create).  Every process of a cluster holds the same
// certificate; a ZAP handler, started before any socket binds, admits only
// clients presenting the cluster's public key, so a process without the
// certificate is refused before any of its frames is read.  ipc endpoints
// live in a directory only the owner can enter (0700).
//
// Fault injection (for tests and the chaos tool): with faults set in the
// options, ra_link_fault_set drops, duplicates, delays or cuts traffic to
// and from chosen peers, with a seeded random generator so that a run can
// be replayed.
//
// Threads: every function may be called from any thread.  The link runs
// one I/O thread that owns all its sockets, and ZeroMQ runs one more.
// Where they run: RAYO_IO_CPUS in the environment, read by ra_link_start,
// is "none" (anywhere) or a CPU list such as "1" or "0,2-3" (both threads
// run only there; a malformed list, or one without a CPU this process may
// use, is logged as a warning and ignored).  Without it, a process that
// may run on exactly two CPUs puts both threads on the higher one, and
// every process of such a node does the same: a message from one process
// to another then wakes the next I/O thread on the CPU it is sent from,
// where otherwise it often woke one on the other CPU, which a virtual
// machine pays for with an interrupt between CPUs.  On a 2-vCPU virtual
// machine that made a cluster's synchronous calls about a third faster,
// but bulk TCP between two processes of that machine about 40% slower
// (BENCHMARKS.md, "I/O threads on one CPU").  Larger machines, and links
// started with io_free (a node daemon's, which carries the copies between
// nodes), keep the kernel's placement unless RAYO_IO_CPUS says otherwise.
#ifndef RA_LINK_H
#define RA_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ra_actor.h"
#include "ra_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ra_link ra_link_t;

// Options of a link layer; zero means the default.
typedef struct ra_link_opts {
    // Where to listen: "tcp://ADDR:PORT" (PORT 0 or * picks a free one),
    // or "ipc://PATH".  NULL: an ipc endpoint "node-N-proc-P" in ipc_dir.
    const char *bind;
    // Directory for ipc endpoints, created with mode 0700 if missing
    // (default: $XDG_RUNTIME_DIR/rayo, else /tmp/rayo-UID).
    const char *ipc_dir;
    // The cluster certificate (a file made by ra_link_cert_create).
    // Required when binding or dialling tcp; ignored for ipc.
    const char *cert;
    uint32_t hb_interval_ms;  // heartbeat interval (default 500)
    uint32_t hb_miss;         // silent intervals before loss (default 5)
    uint32_t hb_miss_local;   // the same for a peer process on this
                              // machine, over ipc, whose exit is watched
                              // (default 20: only a hung process is
                              // silent there)
    uint32_t idle_ms;         // close idle connections (default 300000;
                              // UINT32_MAX = never)
    size_t chunk_size;        // bytes per chunk (default 4 MiB)
    size_t max_msg;           // largest message accepted (default 64 MiB)
    size_t queue_bytes;       // unacknowledged bytes per peer (default
                              // 256 MiB)
    size_t queue_frames;      // unacknowledged frames per peer (default
                              // 1,000,000)
    ra_full_policy_t full_policy; // RA_FULL_FAIL (default) or
                                  // RA_FULL_BLOCK
    bool faults;              // allow ra_link_fault_set
    uint64_t fault_seed;      // seed of fault decisions (default 1)
    // The I/O threads run where the kernel puts them unless RAYO_IO_CPUS
    // names CPUs (no two-CPU default, see Threads above).  For a process
    // whose link carries bulk transfers, as a node daemon's does: one CPU
    // for its two I/O threads and every other process's would hold a
    // 1 GiB copy between nodes to about two thirds of its rate.
    bool io_free;
} ra_link_opts_t;

// ra_link_start starts the link layer of runtime rt, whose ra_runtime_opts
// node and proc numbers name this process in the cluster (they must not
// both be 0), binds its endpoint and starts its I/O thread.  Returns 0;
// RA_EINVAL (bad option, rt already has a link); RA_EEXIST (the endpoint is
// in use); RA_ENOENT (tcp without a readable certificate); RA_EBADMSG (a
// certificate file that is not one); -errno from ZeroMQ or the file
// system; RA_ENOMEM.  Caller owns *out and must stop it before destroying
// the runtime.
int ra_link_start(ra_runtime_t *rt, const ra_link_opts_t *opts,
                  ra_link_t **out);

// ra_link_stop closes every connection (peers see them lost), stops the
// I/O thread, frees the link and sets *l to NULL.  Links and monitors
// across it fire with RA_NOCONNECTION.  Safe on NULL.
void ra_link_stop(ra_link_t **l);

// ra_link_endpoint returns the endpoint this process listens on, with the
// port filled in ("tcp://10.0.0.1:40123").  Borrowed until ra_link_stop.
const char *ra_link_endpoint(const ra_link_t *l);

// ra_link_route registers endpoint as the address of process proc of node
// node, so that the first send to a pid there dials it.  Processes of the
// same node bound to their default ipc names in one ipc_dir need no
// routes: a send to one without a route dials its default name.  Replaces an
// earlier route.  Returns 0, RA_EINVAL or RA_ENOMEM.
int ra_link_route(ra_link_t *l, uint32_t node, uint32_t proc,
                  const char *endpoint);

// ra_link_connect dials endpoint now and waits up to timeout_ms (negative:
// forever) for the peer's handshake; *node and *proc (either may be NULL)
// receive who answered, and a route to it is registered.  Returns 0,
// RA_ETIMEOUT (no answer: unreachable, or our certificate was refused),
// RA_ENOTSUP (no common protocol version), RA_EINVAL or -errno.
int ra_link_connect(ra_link_t *l, const char *endpoint, int64_t timeout_ms,
                    uint32_t *node, uint32_t *proc);

// ra_link_disconnect ends the session with a peer at once (Erlang's
// disconnect_node): frames in flight are dropped and both sides see the
// peer lost.  Returns 0 or RA_ENOENT when not connected.
int ra_link_disconnect(ra_link_t *l, uint32_t node, uint32_t proc);

// ra_link_monitor_node makes ctx's actor watch process proc of node node:
// it receives one RA_MSG_DOWN with reference *ref, pid {node, proc, 0, 0}
// and reason RA_NOCONNECTION when the peer is lost (at once if it is not
// connected and cannot be reached).  ra_demonitor cancels it.  Returns
// 0, RA_EINVAL (this process), RA_ENOCONN (no link layer) or RA_ENOMEM.
int ra_link_monitor_node(ra_ctx_t *ctx, uint32_t node, uint32_t proc,
                         uint64_t *ref);

// Node events: an actor subscribed with ra_link_subscribe receives a BSON
// message {"node": int64, "proc": int64, "reason": int64} with tag
// RA_TAG_NODE_UP when a session with a peer starts and RA_TAG_NODE_DOWN
// (reason RA_NOCONNECTION or RA_NORMAL after a disconnect) when it ends.
#define RA_TAG_NODE_UP (-1201)
#define RA_TAG_NODE_DOWN (-1202)

// ra_link_subscribe starts (on true) or stops node events for ctx's actor.
// Subscriptions end when the actor does.  Returns 0, RA_EINVAL or
// RA_ENOMEM.
int ra_link_subscribe(ra_ctx_t *ctx, bool on);

// ra_link_stats_t counts what the link layer did, summed over peers.
typedef struct ra_link_stats {
    uint64_t frames_out, frames_in;   // frames sent and received
    uint64_t bytes_out, bytes_in;
    uint64_t msgs_out, msgs_in;       // actor messages
    uint64_t retransmits;             // frames sent again
    uint64_t duplicates;              // received frames already delivered
    uint64_t out_of_order;            // dropped for a gap (resent later)
    uint64_t no_proc;                 // messages for actors that were gone
    uint64_t refused;                 // frames from peers without a session
    uint64_t peers_up, peers_lost;    // sessions started and lost
    uint64_t full;                    // sends refused for backpressure
    uint64_t auth_denied;             // connections without the cluster key
    uint64_t zero_copy_out;           // large messages framed in place
    uint64_t zero_copy_in;            // large messages over the receive
                                      // buffer
    uint64_t faults_dropped, faults_duplicated, faults_delayed;
    uint64_t queued_bytes;            // unacknowledged now, all peers
    uint64_t stalls;                  // times this process's link thread
                                      // did not run for a heartbeat
                                      // interval or more (an overloaded
                                      // machine); that time is not counted
                                      // as silence of the peers
    uint64_t stall_max_ms;            // the longest such pause
    uint64_t starved;                 // times a silent peer process of
                                      // this machine was given more time
                                      // because it waited for a CPU
    ra_wire_stats_t wire;             // decoder drops, by cause
} ra_link_stats_t;

// ra_link_stats fills *st.  Returns 0 or RA_EINVAL.
int ra_link_stats(ra_link_t *l, ra_link_stats_t *st);

// ra_link_max_msg returns the largest message payload, in bytes, that a
// send over l to another process accepts (a little below the max_msg
// option, which also covers the envelope); a larger one is refused with
// RA_EFULL.  0 for NULL.
size_t ra_link_max_msg(const ra_link_t *l);

// ra_link_peer_t describes one peer.
typedef struct ra_link_peer {
    uint32_t node, proc;
    bool up;                 // a session is established
    uint64_t queued_bytes;   // sent but not yet acknowledged
    uint64_t queued_frames;
    char endpoint[256];      // route, if known
} ra_link_peer_t;

// ra_link_peers copies up to cap peers into out and stores the number of
// peers in *n (which may exceed cap).  Returns 0 or RA_EINVAL.
int ra_link_peers(ra_link_t *l, ra_link_peer_t *out, size_t cap, size_t *n);

// ---- certificates ----

// ra_link_cert_create makes a new cluster certificate (a CurveZMQ key
// pair) and writes it to path with mode 0600 (the directory must exist).
// Returns 0, RA_EEXIST (path exists: certificates are never overwritten),
// -errno or RA_ENOTSUP (libzmq built without CURVE).
int ra_link_cert_create(const char *path);

// ra_link_cert_ensure uses the certificate at path, making it first if
// there is none ("made at first start").  Returns as ra_link_cert_create,
// or RA_EBADMSG if the file exists but is not a certificate, or RA_EACCES
// if it is readable by others than its owner.
int ra_link_cert_ensure(const char *path);

// ---- fault injection ----

// A fault rule for the traffic between this process and one peer.
// Probabilities are in parts per million of frames.  delay_ms holds every
// frame back that long (order is kept).  cut drops everything both ways (a
// partition) until cleared.
typedef struct ra_link_fault {
    uint32_t drop_ppm;
    uint32_t dup_ppm;
    uint32_t delay_ms;
    bool cut;
} ra_link_fault_t;

// ra_link_fault_set applies rule to the traffic with process proc of node
// node (proc UINT32_MAX: every process of the node; node UINT32_MAX: every
// peer).  A NULL rule or an all-zero one clears it.  Returns 0, RA_EINVAL,
// or RA_ENOTSUP when the link was not started with faults enabled.
int ra_link_fault_set(ra_link_t *l, uint32_t node, uint32_t proc,
                      const ra_link_fault_t *rule);

#ifdef __cplusplus
}
#endif
#endif

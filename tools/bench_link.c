// bench_link.c - `rayo bench link`: the link layer between two processes.
//
// Every workload measures rayo and, in the same run, bare libzmq doing the
// same job over the same transport: the ceiling the link layer is built on.
// The two ends are two processes.  For each measurement this process forks
// a receiving process (an echo or counter actor in a runtime of its own, or
// a bare libzmq socket), reads the receiver's endpoint and actor pid from a
// pipe, and drives it.  Closing the other pipe tells the receiver to stop,
// and the receiver dies with this process (PR_SET_PDEATHSIG), so no run
// leaves a stray process behind.  Sockets and the certificate live in a
// private temporary directory, removed at the end (also after a timeout or
// an interrupt).
//
// Workloads:
//   rtt_ipc, rtt_tcp_curve: 64-byte round trips, ra_call to an echo actor
//       beside libzmq REQ/REP (over tcp with and without CURVE): median_us,
//       p99_us and mean_us, once unpinned and once with both processes
//       pinned to one CPU ("pinned").
//   tput_64_ipc, tput_64_tcp_curve: one-way 64-byte messages, ra_send to
//       a counter actor, timed from the first send until a final ra_call
//       says the counter has them all, beside libzmq PUSH/PULL, timed
//       until the puller says it has them all.  A send that finds the
//       link's queue full (RA_EFULL) sleeps 100 us and tries again.
//   tput_1mib_ipc, tput_1mib_tcp, tput_1mib_tcp_curve: the same with
//       1 MiB messages.  rayo's tcp always uses CURVE, so tput_1mib_tcp
//       compares it with plain libzmq tcp and reports the cost of CURVE.
//
// The "ratio" on a rayo line is rayo's figure over libzmq's in the same
// run, for the libzmq line with the same security (CURVE or not) when
// there is one, else for plain libzmq: median_us for round trips (above 1:
// rayo is slower) and msgs_per_s for throughput (below 1: rayo is slower).
// A rayo line using CURVE beside plain libzmq also has "ratio_plain", and
// for throughput "curve_cost" = 1 - ratio_plain.
//
// This file includes zmq.h besides rayo.h (tools otherwise use rayo.h
// alone): the ceiling is measured with libzmq itself.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

enum {
    TAG_ECHO = 1, // a call the echo actor answers with its own payload
    TAG_DATA,     // one message for the counter
    TAG_GET       // a call the counter answers once it has payload's count
};

#define SMALL_SIZE 64
#define LARGE_SIZE ((size_t)1 << 20)
#define WARMUP 100          // untimed round trips before timing starts
#define FULL_BACKOFF_US 100 // sleep after RA_EFULL before sending again
#define PARENT_NODE 1
#define CHILD_NODE 2
#define EP_MAX 256
#define NMETRIC 6
// RAW_QUEUE_BYTES bounds what a libzmq socket queues (its high-water mark
// in messages is this over the message size, at most RAW_HWM), as
// ra_link_opts_t.queue_bytes bounds the link's queue.
#define RAW_QUEUE_BYTES ((size_t)256 << 20)
#define RAW_HWM 100000
// STOP_POLL_MS is how often a libzmq receiver blocked in recv looks
// whether the driver has asked it to stop.
#define STOP_POLL_MS 100

typedef struct link_opts {
    bool quick;
    unsigned threads;
    unsigned repeat;
    unsigned timeout_s;
} link_opts_t;

// What is measured: rayo, or libzmq with or without CURVE.  Lines are
// printed in this order.
enum { IMPL_RAYO, IMPL_CURVE, IMPL_PLAIN, NIMPL };
enum { RAW_CURVE = 1u << IMPL_CURVE, RAW_PLAIN = 1u << IMPL_PLAIN };

typedef struct workload {
    const char *name;
    bool rtt;         // round trips; else one-way throughput
    bool tcp;         // tcp (rayo with CURVE); else ipc
    size_t size;      // bytes per message
    uint64_t n;       // round trips or messages
    uint64_t quick_n; // the same with --quick
    unsigned raw;     // the libzmq ceilings: RAW_CURVE | RAW_PLAIN
    const char *summary;
} workload_t;

static const workload_t workloads[] = {
    {"rtt_ipc", true, false, SMALL_SIZE, 20000, 2000, RAW_PLAIN,
     "64-byte ra_call round trips over ipc; REQ/REP"},
    {"rtt_tcp_curve", true, true, SMALL_SIZE, 20000, 2000,
     RAW_CURVE | RAW_PLAIN,
     "the same over tcp+CURVE; REQ/REP, CURVE and plain"},
    {"tput_64_ipc", false, false, SMALL_SIZE, 1000000, 100000, RAW_PLAIN,
     "one-way 64-byte ra_sends over ipc; PUSH/PULL"},
    {"tput_64_tcp_curve", false, true, SMALL_SIZE, 1000000, 100000,
     RAW_CURVE, "the same over tcp+CURVE; PUSH/PULL with CURVE"},
    {"tput_1mib_ipc", false, false, LARGE_SIZE, 2000, 200, RAW_PLAIN,
     "one-way 1 MiB ra_sends over ipc; PUSH/PULL"},
    {"tput_1mib_tcp", false, true, LARGE_SIZE, 2000, 200, RAW_PLAIN,
     "the same over tcp+CURVE; plain PUSH/PULL, curve_cost"},
    {"tput_1mib_tcp_curve", false, true, LARGE_SIZE, 2000, 200, RAW_CURVE,
     "the same over tcp+CURVE; PUSH/PULL with CURVE"},
};

// env_t is what every run shares: the private directory, the rayo cluster
// certificate and the libzmq CURVE keys, and the CPU for pinned runs.
typedef struct env {
    char dir[64];
    char cert[128];
    bool have_curve; // cert and keys were made
    char srv_pub[41], srv_sec[41], cli_pub[41], cli_sec[41];
    int cpu;
} env_t;

// bench_t is one measurement: one workload, one implementation, pinned or
// not.  The receiving process works on its own copy.
typedef struct bench {
    const link_opts_t *o;
    const env_t *env;
    const workload_t *w;
    int impl;
    bool pinned;
    uint64_t n;
    const char *side; // "" here, "receiving process: " in the child
} bench_t;

// sample_t is what one measurement found.  Round trips: median_us, p99_us,
// mean_us.  Throughput: msgs_per_s, seconds, full_retries, and for rayo
// the link's counts of frames sent again (sender), and of duplicates and
// frames out of order dropped (receiver), which tell a run that sent each
// frame once from one that resent.  The link publishes these every few
// milliseconds, so the last moments of a run may be missing.
typedef struct sample {
    double m[NMETRIC];
} sample_t;

static const char *const impl_names[NIMPL] = {"rayo", "libzmq curve",
                                              "libzmq plain"};

// ---------------------------------------------------------------------
// The watchdog and clean-up on signals.  A hung link shows up as a run
// that never ends, so each phase arms the watchdog (bench_util.h) and the
// handler says which phase stalled.  On SIGALRM, SIGINT, SIGTERM or SIGHUP
// the handler kills the receiving process, removes the temporary files
// and exits, so it is this file's and not the watchdog's own.
//
// Global: g_child is the receiving process (0: none), set by the main
// thread after fork and cleared after waitpid.  tmp_paths are the
// temporary files, written once before the handler is installed.

static volatile pid_t g_child;
static char tmp_paths[5][128]; // the certificate, sockets, then the dir
static const char *const tmp_names[] = {"cert", "node-1-proc-1",
                                        "node-2-proc-1", "raw"};
#define NTMP (sizeof tmp_names / sizeof tmp_names[0])

static void
on_signal(int sig)
{
    static const char intr[] = "rayo bench link: interrupted\n";
    const char *m = sig == SIGALRM ? ra__bench_watchdog_msg() : intr;
    pid_t child = g_child;

    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    for (size_t i = 0; i < NTMP; i++) {
        unlink(tmp_paths[i]);
    }
    rmdir(tmp_paths[NTMP]);
    if (write(STDERR_FILENO, m, strlen(m)) < 0) {
        // Nothing left to do: the process is exiting.
    }
    _exit(sig == SIGALRM ? RA_TOOL_FAIL : 128 + sig);
}

static void
set_signals(void (*handler)(int))
{
    struct sigaction sa = {.sa_handler = handler};
    static const int sigs[] = {SIGALRM, SIGINT, SIGTERM, SIGHUP};

    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaction(sigs[i], &sa, NULL);
    }
}

static void
phase(const bench_t *b, const char *what)
{
    ra__bench_watchdog_arm(b->o->timeout_s,
                           "rayo bench link: %s: %s%s: still %s after %u s "
                           "(--timeout); the link seems to hang\n",
                           b->w->name, b->side, impl_names[b->impl], what,
                           b->o->timeout_s);
}

// ---------------------------------------------------------------------
// Small helpers.

static int
fail(const bench_t *b, const char *what, int rc)
{
    fprintf(stderr, "rayo bench link: %s: %s%s: %s: %s (%s)\n", b->w->name,
            b->side, impl_names[b->impl], what, ra_err_name(rc),
            ra_strerror(rc));
    return RA_TOOL_FAIL;
}

static int
fail_zmq(const bench_t *b, const char *what)
{
    int e = zmq_errno();

    fprintf(stderr, "rayo bench link: %s: %s%s: %s: %s\n", b->w->name,
            b->side, impl_names[b->impl], what, zmq_strerror(e));
    return RA_TOOL_FAIL;
}

static int
fail_msg(const bench_t *b, const char *what)
{
    fprintf(stderr, "rayo bench link: %s: %s%s: %s\n", b->w->name, b->side,
            impl_names[b->impl], what);
    return RA_TOOL_FAIL;
}

// read_full reads exactly len bytes.  Returns 0, or -1 at end of file or
// on an error.
static int
read_full(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t r = read(fd, p, len);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int
write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t r = write(fd, p, len);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static uint64_t
msg_u64(const ra_msg_t *m)
{
    size_t len = 0;
    const void *p = ra_msg_data(m, &len);
    uint64_t v = 0;

    if (p != NULL && len >= sizeof v) {
        memcpy(&v, p, sizeof v);
    }
    return v;
}

// rtt_stats fills s from n round-trip times in microseconds (sorting us).
static void
rtt_stats(double *us, size_t n, sample_t *s)
{
    size_t p99 = (n * 99 + 99) / 100; // the rank, rounded up
    double sum = 0;

    for (size_t i = 0; i < n; i++) {
        sum += us[i];
    }
    s->m[0] = ra__bench_median(us, n);
    s->m[1] = us[p99 > 0 ? p99 - 1 : 0];
    s->m[2] = sum / (double)n;
}

static int
call_timeout_ms(const bench_t *b)
{
    return (int)b->o->timeout_s * 1000;
}

// ---------------------------------------------------------------------
// rayo on both sides: a runtime with its link layer.

typedef struct rnode {
    ra_runtime_t *rt;
    ra_link_t *l;
    ra_ctx_t *me; // the driver's scope
} rnode_t;

// rayo_open starts a runtime numbered node with its link, listening on
// ipc in the private directory or on tcp on the loopback (with the
// certificate), and a scope for this thread when scope is true.
static int
rayo_open(const bench_t *b, uint32_t node, bool scope, rnode_t *n)
{
    ra_runtime_opts_t ro = {.threads = b->o->threads, .node = node,
                            .proc = 1};
    ra_link_opts_t lo = {.ipc_dir = b->env->dir};
    int rc;

    if (b->w->tcp) {
        lo.bind = "tcp://127.0.0.1:0";
        lo.cert = b->env->cert;
    }
    phase(b, "starting a runtime and its link");
    if ((rc = ra_runtime_new(&n->rt, &ro)) != 0) {
        return fail(b, "ra_runtime_new", rc);
    }
    if ((rc = ra_link_start(n->rt, &lo, &n->l)) != 0) {
        return fail(b, "ra_link_start", rc);
    }
    if (scope && (rc = ra_scope_new(n->rt, &n->me)) != 0) {
        return fail(b, "ra_scope_new", rc);
    }
    return RA_TOOL_OK;
}

static void
rayo_close(const bench_t *b, rnode_t *n)
{
    phase(b, "stopping the link and the runtime");
    ra_scope_destroy(&n->me);
    ra_link_stop(&n->l); // before the runtime, as ra_link.h asks
    ra_runtime_destroy(&n->rt);
}

// The echo actor answers each TAG_ECHO call with the request itself: no
// copy, as the libzmq echo sends back the message it received.
static int
echo_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    ra_msg_t *r;
    int rc;

    (void)state;
    if (ra_msg_tag(msg) != TAG_ECHO || ra_call_ref(ctx) == 0) {
        return RA_EBADMSG;
    }
    r = ra_msg_ref(msg);
    if ((rc = ra_reply(ctx, &r)) != 0) {
        ra_msg_unref(&r);
    }
    return rc;
}

static const ra_behaviour_t echo_b = {"bench_link_echo", NULL, echo_handle,
                                      NULL};

// The counter counts TAG_DATA messages and their bytes.  A TAG_GET call
// carries how many messages its caller sent; the answer (a get_answer_t)
// waits until that many have arrived, so the caller's clock stops when
// the last message was handled here, whatever the order of arrival.
typedef struct counter {
    ra_link_t *l; // this process's link, for its statistics
    uint64_t msgs, bytes;
    uint64_t want; // messages the pending call waits for
    uint64_t cref; // the pending TAG_GET call; 0 when none
} counter_t;

typedef struct get_answer {
    uint64_t msgs, bytes;
    uint64_t duplicates; // the receiving link's ra_link_stats_t fields
    uint64_t out_of_order;
} get_answer_t;

static int
counter_answer(ra_ctx_t *ctx, counter_t *c)
{
    get_answer_t v = {c->msgs, c->bytes, 0, 0};
    ra_link_stats_t st;
    uint64_t cref = c->cref;
    ra_msg_t *r = NULL;
    int rc;

    if (cref == 0 || c->msgs < c->want) {
        return 0;
    }
    c->cref = 0;
    if (ra_link_stats(c->l, &st) == 0) {
        v.duplicates = st.duplicates;
        v.out_of_order = st.out_of_order;
    }
    rc = ra_msg_new_bytes(&r, TAG_GET, &v, sizeof v);
    if (rc == 0 && (rc = ra_reply_to(ra_ctx_runtime(ctx), cref, &r)) != 0) {
        ra_msg_unref(&r);
    }
    return rc;
}

static int
counter_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    counter_t *c = state;
    size_t len = 0;

    switch (ra_msg_tag(msg)) {
    case TAG_DATA:
        ra_msg_data(msg, &len);
        c->msgs++;
        c->bytes += len;
        return counter_answer(ctx, c);
    case TAG_GET:
        if ((c->cref = ra_call_ref(ctx)) == 0) {
            return RA_EBADMSG;
        }
        c->want = msg_u64(msg);
        return counter_answer(ctx, c);
    default:
        return RA_EBADMSG;
    }
}

static const ra_behaviour_t counter_b = {"bench_link_counter", NULL,
                                         counter_handle, NULL};

// ---------------------------------------------------------------------
// libzmq on both sides.

// raw_socket makes a libzmq socket of type with the options both ends
// use, and the CURVE keys of a server or a client when curve is true.
static int
raw_socket(const bench_t *b, void *zctx, int type, bool server, void **out)
{
    const env_t *e = b->env;
    size_t hwm = RAW_QUEUE_BYTES / b->w->size;
    int zero = 0, one = 1, h = hwm < RAW_HWM ? (int)hwm : RAW_HWM;
    void *s = zmq_socket(zctx, type);
    bool ok;

    if (s == NULL) {
        return fail_zmq(b, "zmq_socket");
    }
    ok = zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) == 0 &&
         zmq_setsockopt(s, ZMQ_SNDHWM, &h, sizeof h) == 0 &&
         zmq_setsockopt(s, ZMQ_RCVHWM, &h, sizeof h) == 0;
    if (ok && b->impl == IMPL_CURVE && server) {
        ok = zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) == 0 &&
             zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, e->srv_sec, 40) == 0;
    } else if (ok && b->impl == IMPL_CURVE) {
        ok = zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, e->srv_pub, 40) == 0 &&
             zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, e->cli_pub, 40) == 0 &&
             zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, e->cli_sec, 40) == 0;
    }
    if (!ok) {
        fail_zmq(b, "zmq_setsockopt");
        zmq_close(s);
        return RA_TOOL_FAIL;
    }
    *out = s;
    return RA_TOOL_OK;
}

// ---------------------------------------------------------------------
// The receiving process.

// hello_t is what the receiving process sends first: whether it started,
// its endpoint and its actor.
typedef struct hello {
    int32_t rc; // 0, or RA_TOOL_FAIL after printing why
    ra_pid_t pid;
    char endpoint[EP_MAX];
} hello_t;

static int
serve_rayo(bench_t *b, int up, int down)
{
    rnode_t n = {0};
    counter_t count = {0};
    hello_t h = {.rc = RA_TOOL_FAIL};
    char c;
    int rc;

    if (rayo_open(b, CHILD_NODE, false, &n) == RA_TOOL_OK) {
        count.l = n.l;
        rc = ra_spawn(n.rt, b->w->rtt ? &echo_b : &counter_b, &count, NULL,
                      &h.pid);
        if (rc != 0) {
            fail(b, "ra_spawn", rc);
        } else {
            snprintf(h.endpoint, sizeof h.endpoint, "%s",
                     ra_link_endpoint(n.l));
            h.rc = RA_TOOL_OK;
        }
    }
    alarm(0);
    if (write_full(up, &h, sizeof h) == 0 && h.rc == RA_TOOL_OK) {
        // Serve until the driver closes its end of the pipe.
        while (read(down, &c, 1) < 0 && errno == EINTR) {
        }
    }
    rayo_close(b, &n);
    alarm(0);
    return h.rc;
}

// stop_asked tells whether the driver closed its end of the pipe.
static bool
stop_asked(int down)
{
    struct pollfd p = {.fd = down, .events = POLLIN};

    return poll(&p, 1, 0) > 0;
}

// raw_recv receives the next message, looking every STOP_POLL_MS whether
// the driver wants to stop.  Returns 1, 0 when told to stop, or -1.
static int
raw_recv(void *s, zmq_msg_t *m, int down)
{
    for (;;) {
        if (zmq_msg_recv(m, s, 0) >= 0) {
            return 1;
        }
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) {
            return -1;
        }
        if (stop_asked(down)) {
            return 0;
        }
    }
}

// raw_serve_loop echoes (REP) or counts (PULL): after the warm-up message
// a sink writes "ready" to up, after n more it writes {messages, bytes}.
static int
raw_serve_loop(bench_t *b, void *s, int up, int down)
{
    uint64_t got = 0, done[2] = {0, 0};
    zmq_msg_t m;
    int r;

    zmq_msg_init(&m);
    while ((r = raw_recv(s, &m, down)) == 1) {
        if (b->w->rtt) {
            if (zmq_msg_send(&m, s, 0) < 0) {
                r = -1;
                break;
            }
            continue;
        }
        if (got++ == 0) {
            if (write_full(up, &got, sizeof got) != 0) {
                break; // the driver is gone
            }
            continue;
        }
        done[0]++;
        done[1] += zmq_msg_size(&m);
        if (done[0] == b->n && write_full(up, done, sizeof done) != 0) {
            break;
        }
    }
    zmq_msg_close(&m);
    return r < 0 ? fail_zmq(b, "receiving") : RA_TOOL_OK;
}

static int
serve_raw(bench_t *b, int up, int down)
{
    void *zctx = zmq_ctx_new(), *s = NULL;
    hello_t h = {.rc = RA_TOOL_FAIL};
    char ep[EP_MAX];
    size_t len = sizeof h.endpoint;
    int tmo = STOP_POLL_MS, rc = RA_TOOL_FAIL;

    if (zctx == NULL) {
        fail_zmq(b, "zmq_ctx_new");
    } else if (raw_socket(b, zctx, b->w->rtt ? ZMQ_REP : ZMQ_PULL, true,
                          &s) == RA_TOOL_OK) {
        if (b->w->tcp) {
            snprintf(ep, sizeof ep, "tcp://127.0.0.1:*");
        } else {
            snprintf(ep, sizeof ep, "ipc://%s/raw", b->env->dir);
        }
        if (zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo) != 0) {
            fail_zmq(b, "zmq_setsockopt");
        } else if (zmq_bind(s, ep) != 0) {
            fail_zmq(b, ep);
        } else if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, h.endpoint, &len) !=
                   0) {
            fail_zmq(b, "ZMQ_LAST_ENDPOINT");
        } else {
            h.rc = RA_TOOL_OK;
        }
    }
    if (write_full(up, &h, sizeof h) == 0 && h.rc == RA_TOOL_OK) {
        rc = raw_serve_loop(b, s, up, down);
    }
    if (s != NULL) {
        zmq_close(s);
    }
    if (zctx != NULL) {
        zmq_ctx_term(zctx);
    }
    return rc;
}

// ---------------------------------------------------------------------
// Starting and ending the receiving process.

typedef struct child {
    pid_t pid;
    int up;   // read end: receiver -> driver
    int down; // write end: closing it tells the receiver to stop
} child_t;

static void
child_main(bench_t *b, pid_t parent, int up, int down)
{
    struct sigaction ign = {.sa_handler = SIG_IGN};
    int rc;

    set_signals(SIG_DFL); // a watchdog alarm here just ends this process
    sigaction(SIGPIPE, &ign, NULL); // a gone driver: write fails, we exit
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) {
        _exit(RA_TOOL_FAIL);
    }
    b->side = "receiving process: ";
    rc = b->impl == IMPL_RAYO ? serve_rayo(b, up, down)
                              : serve_raw(b, up, down);
    close(up);
    close(down);
    _exit(rc);
}

// child_end closes the pipes (the receiver stops) and reaps it.  ok false:
// the run already failed; the receiver is killed and nothing more said.
static int
child_end(const bench_t *b, child_t *c, bool ok)
{
    int status = 0;
    pid_t r;

    close(c->down);
    close(c->up);
    if (!ok) {
        kill(c->pid, SIGKILL);
    }
    phase(b, "waiting for the receiving process to exit");
    while ((r = waitpid(c->pid, &status, 0)) < 0 && errno == EINTR) {
    }
    g_child = 0;
    alarm(0);
    if (!ok) {
        return RA_TOOL_FAIL;
    }
    if (r < 0) {
        return fail(b, "waitpid", -errno);
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "rayo bench link: %s: %s: the receiving process "
                "died of signal %d\n", b->w->name, impl_names[b->impl],
                WTERMSIG(status));
        return RA_TOOL_FAIL;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rayo bench link: %s: %s: the receiving process "
                "exited with status %d\n", b->w->name, impl_names[b->impl],
                WEXITSTATUS(status));
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

// child_start forks the receiving process of b and waits for its hello.
static int
child_start(bench_t *b, child_t *c, hello_t *h)
{
    int up[2], down[2];
    pid_t parent = getpid();

    if (pipe2(up, O_CLOEXEC) != 0) {
        return fail(b, "pipe", -errno);
    }
    if (pipe2(down, O_CLOEXEC) != 0) {
        int e = errno;

        close(up[0]);
        close(up[1]);
        return fail(b, "pipe", -e);
    }
    fflush(NULL);
    c->pid = fork();
    if (c->pid < 0) {
        int e = errno;

        close(up[0]);
        close(up[1]);
        close(down[0]);
        close(down[1]);
        return fail(b, "fork", -e);
    }
    if (c->pid == 0) {
        close(up[0]);
        close(down[1]);
        child_main(b, parent, up[1], down[0]);
    }
    g_child = c->pid;
    close(up[1]);
    close(down[0]);
    c->up = up[0];
    c->down = down[1];
    phase(b, "waiting for the receiving process to start");
    if (read_full(c->up, h, sizeof *h) != 0) {
        fail_msg(b, "the receiving process ended before it was ready");
        return child_end(b, c, false);
    }
    if (h->rc != RA_TOOL_OK) { // it said why
        return child_end(b, c, false);
    }
    h->endpoint[EP_MAX - 1] = '\0';
    return RA_TOOL_OK;
}

// ---------------------------------------------------------------------
// The driver's side of the measurements.

static int
rayo_route(const bench_t *b, rnode_t *n, const hello_t *h)
{
    int rc = ra_link_route(n->l, CHILD_NODE, 1, h->endpoint);

    return rc == 0 ? RA_TOOL_OK : fail(b, "ra_link_route", rc);
}

// rayo_echo makes round trip i (stamped into the payload) and checks the
// answer.
static int
rayo_echo(const bench_t *b, rnode_t *n, ra_pid_t echo, int64_t i)
{
    uint8_t p[SMALL_SIZE] = {0};
    ra_msg_t *q = NULL, *r = NULL;
    const void *d;
    size_t len = 0;
    int rc;

    memcpy(p, &i, sizeof i);
    if ((rc = ra_msg_new_bytes(&q, TAG_ECHO, p, sizeof p)) != 0) {
        return fail(b, "ra_msg_new_bytes", rc);
    }
    rc = ra_call(n->me, echo, &q, call_timeout_ms(b), &r);
    ra_msg_unref(&q);
    if (rc != 0) {
        return fail(b, "ra_call to the echo actor", rc);
    }
    d = ra_msg_data(r, &len);
    rc = len == sizeof p && memcmp(d, p, sizeof p) == 0;
    ra_msg_unref(&r);
    return rc ? RA_TOOL_OK
              : fail_msg(b, "the echo actor answered with another payload");
}

static int
rayo_rtt(bench_t *b, sample_t *out)
{
    child_t c;
    hello_t h;
    rnode_t n = {0};
    double *us = malloc(b->n * sizeof *us);
    int rc = RA_TOOL_FAIL;

    if (us == NULL) {
        return fail(b, "malloc", RA_ENOMEM);
    }
    if (child_start(b, &c, &h) != RA_TOOL_OK) {
        free(us);
        return RA_TOOL_FAIL;
    }
    if (rayo_open(b, PARENT_NODE, true, &n) != RA_TOOL_OK ||
        rayo_route(b, &n, &h) != RA_TOOL_OK) {
        goto out;
    }
    phase(b, "timing round trips");
    for (int64_t i = -WARMUP; i < (int64_t)b->n; i++) {
        uint64_t t0 = ra__bench_now_ns();

        if (rayo_echo(b, &n, h.pid, i) != RA_TOOL_OK) {
            goto out;
        }
        if (i >= 0) {
            us[i] = (double)(ra__bench_now_ns() - t0) / 1e3;
        }
    }
    rtt_stats(us, b->n, out);
    rc = RA_TOOL_OK;
out:
    rayo_close(b, &n);
    free(us);
    return child_end(b, &c, rc == RA_TOOL_OK);
}

// rayo_get calls the counter with the number of messages sent and returns
// what it counted once it has them.
static int
rayo_get(const bench_t *b, rnode_t *n, ra_pid_t counter, uint64_t want,
         get_answer_t *got)
{
    ra_msg_t *q = NULL, *r = NULL;
    const void *d;
    size_t len = 0;
    int rc;

    if ((rc = ra_msg_new_bytes(&q, TAG_GET, &want, sizeof want)) != 0) {
        return fail(b, "ra_msg_new_bytes", rc);
    }
    rc = ra_call(n->me, counter, &q, call_timeout_ms(b), &r);
    ra_msg_unref(&q);
    if (rc != 0) {
        return fail(b, "ra_call to the counter", rc);
    }
    d = ra_msg_data(r, &len);
    if (len == sizeof *got) {
        memcpy(got, d, len);
    }
    ra_msg_unref(&r);
    return len == sizeof *got
               ? RA_TOOL_OK
               : fail_msg(b, "the counter's answer has the wrong size");
}

// rayo_send_all sends b->n messages of buf to the counter, sleeping
// FULL_BACKOFF_US whenever the link's queue is full.
static int
rayo_send_all(const bench_t *b, rnode_t *n, ra_pid_t counter,
              const void *buf, uint64_t *full)
{
    ra_msg_t *m = NULL;
    int rc;

    for (uint64_t i = 0; i < b->n; i++) {
        if ((rc = ra_msg_new_bytes(&m, TAG_DATA, buf, b->w->size)) != 0) {
            return fail(b, "ra_msg_new_bytes", rc);
        }
        while ((rc = ra_send(n->me, counter, &m)) == RA_EFULL) {
            (*full)++;
            usleep(FULL_BACKOFF_US);
        }
        if (rc != 0) {
            ra_msg_unref(&m);
            return fail(b, "ra_send to the counter", rc);
        }
    }
    return RA_TOOL_OK;
}

static int
check_counts(const bench_t *b, uint64_t msgs, uint64_t bytes)
{
    uint64_t want = b->n * b->w->size;

    if (msgs == b->n && bytes == want) {
        return RA_TOOL_OK;
    }
    fprintf(stderr, "rayo bench link: %s: %s: the receiver counted %" PRIu64
            " messages and %" PRIu64 " bytes; %" PRIu64 " and %" PRIu64
            " were sent\n", b->w->name, impl_names[b->impl], msgs, bytes,
            b->n, want);
    return RA_TOOL_FAIL;
}

static void
tput_stats(const bench_t *b, uint64_t t0, uint64_t full, sample_t *out)
{
    double sec = (double)(ra__bench_now_ns() - t0) / 1e9;

    out->m[0] = (double)b->n / sec;
    out->m[1] = sec;
    out->m[2] = (double)full;
}

static int
rayo_tput(bench_t *b, sample_t *out)
{
    child_t c;
    hello_t h;
    rnode_t n = {0};
    get_answer_t got;
    ra_link_stats_t st;
    uint64_t full = 0, t0;
    char *buf = malloc(b->w->size);
    int rc = RA_TOOL_FAIL;

    if (buf == NULL) {
        return fail(b, "malloc", RA_ENOMEM);
    }
    memset(buf, 0x5a, b->w->size);
    if (child_start(b, &c, &h) != RA_TOOL_OK) {
        free(buf);
        return RA_TOOL_FAIL;
    }
    // The first call dials the receiver and starts the session.
    if (rayo_open(b, PARENT_NODE, true, &n) != RA_TOOL_OK ||
        rayo_route(b, &n, &h) != RA_TOOL_OK ||
        rayo_get(b, &n, h.pid, 0, &got) != RA_TOOL_OK) {
        goto out;
    }
    phase(b, "sending messages");
    t0 = ra__bench_now_ns();
    if (rayo_send_all(b, &n, h.pid, buf, &full) != RA_TOOL_OK) {
        goto out;
    }
    phase(b, "waiting for the counter to have every message");
    if (rayo_get(b, &n, h.pid, b->n, &got) != RA_TOOL_OK) {
        goto out;
    }
    tput_stats(b, t0, full, out);
    if (ra_link_stats(n.l, &st) == 0) {
        out->m[3] = (double)st.retransmits;
    }
    out->m[4] = (double)got.duplicates;
    out->m[5] = (double)got.out_of_order;
    rc = check_counts(b, got.msgs, got.bytes);
out:
    rayo_close(b, &n);
    free(buf);
    return child_end(b, &c, rc == RA_TOOL_OK);
}

// raw_open makes the driver's libzmq socket and connects it.
static int
raw_open(const bench_t *b, const hello_t *h, void **zctx, void **s)
{
    if ((*zctx = zmq_ctx_new()) == NULL) {
        return fail_zmq(b, "zmq_ctx_new");
    }
    if (raw_socket(b, *zctx, b->w->rtt ? ZMQ_REQ : ZMQ_PUSH, false, s) !=
        RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    if (zmq_connect(*s, h->endpoint) != 0) {
        return fail_zmq(b, h->endpoint);
    }
    return RA_TOOL_OK;
}

static void
raw_close(void **zctx, void **s)
{
    if (*s != NULL) {
        zmq_close(*s);
        *s = NULL;
    }
    if (*zctx != NULL) {
        zmq_ctx_term(*zctx);
        *zctx = NULL;
    }
}

static int
raw_echo(const bench_t *b, void *s, int64_t i)
{
    uint8_t p[SMALL_SIZE] = {0}, r[2 * SMALL_SIZE];
    int len;

    memcpy(p, &i, sizeof i);
    if (zmq_send(s, p, sizeof p, 0) != (int)sizeof p) {
        return fail_zmq(b, "zmq_send");
    }
    while ((len = zmq_recv(s, r, sizeof r, 0)) < 0 && zmq_errno() == EINTR) {
    }
    if (len < 0) {
        return fail_zmq(b, "zmq_recv");
    }
    if (len != (int)sizeof p || memcmp(p, r, sizeof p) != 0) {
        return fail_msg(b, "the echo answered with another payload");
    }
    return RA_TOOL_OK;
}

static int
raw_rtt(bench_t *b, sample_t *out)
{
    child_t c;
    hello_t h;
    void *zctx = NULL, *s = NULL;
    double *us = malloc(b->n * sizeof *us);
    int rc = RA_TOOL_FAIL;

    if (us == NULL) {
        return fail(b, "malloc", RA_ENOMEM);
    }
    if (child_start(b, &c, &h) != RA_TOOL_OK) {
        free(us);
        return RA_TOOL_FAIL;
    }
    phase(b, "timing round trips");
    if (raw_open(b, &h, &zctx, &s) != RA_TOOL_OK) {
        goto out;
    }
    for (int64_t i = -WARMUP; i < (int64_t)b->n; i++) {
        uint64_t t0 = ra__bench_now_ns();

        if (raw_echo(b, s, i) != RA_TOOL_OK) {
            goto out;
        }
        if (i >= 0) {
            us[i] = (double)(ra__bench_now_ns() - t0) / 1e3;
        }
    }
    rtt_stats(us, b->n, out);
    rc = RA_TOOL_OK;
out:
    raw_close(&zctx, &s);
    free(us);
    return child_end(b, &c, rc == RA_TOOL_OK);
}

static int
raw_send(const bench_t *b, void *s, const void *buf)
{
    while (zmq_send(s, buf, b->w->size, 0) < 0) {
        if (zmq_errno() != EINTR) {
            return fail_zmq(b, "zmq_send");
        }
    }
    return RA_TOOL_OK;
}

static int
raw_tput(bench_t *b, sample_t *out)
{
    child_t c;
    hello_t h;
    void *zctx = NULL, *s = NULL;
    uint64_t ready, got[2], t0;
    char *buf = malloc(b->w->size);
    int rc = RA_TOOL_FAIL;

    if (buf == NULL) {
        return fail(b, "malloc", RA_ENOMEM);
    }
    memset(buf, 0x5a, b->w->size);
    if (child_start(b, &c, &h) != RA_TOOL_OK) {
        free(buf);
        return RA_TOOL_FAIL;
    }
    // An untimed first message makes the connection (and its handshake).
    phase(b, "connecting");
    if (raw_open(b, &h, &zctx, &s) != RA_TOOL_OK ||
        raw_send(b, s, buf) != RA_TOOL_OK) {
        goto out;
    }
    if (read_full(c.up, &ready, sizeof ready) != 0) {
        fail_msg(b, "the receiving process ended early");
        goto out;
    }
    phase(b, "sending messages");
    t0 = ra__bench_now_ns();
    for (uint64_t i = 0; i < b->n; i++) {
        if (raw_send(b, s, buf) != RA_TOOL_OK) {
            goto out;
        }
    }
    phase(b, "waiting for the receiver to have every message");
    if (read_full(c.up, got, sizeof got) != 0) {
        fail_msg(b, "the receiving process ended early");
        goto out;
    }
    tput_stats(b, t0, 0, out);
    rc = check_counts(b, got[0], got[1]);
out:
    raw_close(&zctx, &s);
    free(buf);
    return child_end(b, &c, rc == RA_TOOL_OK);
}

// measure runs one measurement, with this process (and so the receiving
// process, which inherits it) pinned to one CPU when b->pinned.
static int
measure(bench_t *b, sample_t *out)
{
    cpu_set_t saved, one;
    int rc;

    if (b->pinned) {
        CPU_ZERO(&one);
        CPU_SET(b->env->cpu, &one);
        if (sched_getaffinity(0, sizeof saved, &saved) != 0 ||
            sched_setaffinity(0, sizeof one, &one) != 0) {
            return fail(b, "sched_setaffinity", -errno);
        }
    }
    if (b->w->rtt) {
        rc = b->impl == IMPL_RAYO ? rayo_rtt(b, out) : raw_rtt(b, out);
    } else {
        rc = b->impl == IMPL_RAYO ? rayo_tput(b, out) : raw_tput(b, out);
    }
    // Every thread of the run has ended: restoring the main thread's
    // mask restores the process's.
    if (b->pinned && sched_setaffinity(0, sizeof saved, &saved) != 0) {
        return fail(b, "sched_setaffinity", -errno);
    }
    alarm(0);
    return rc;
}

// ---------------------------------------------------------------------
// Results.

// results_t holds every measurement of one workload: for each variant
// (unpinned, pinned), implementation, metric and run, one number.
typedef struct results {
    unsigned repeat;
    double *v;
} results_t;

static double *
res_at(const results_t *r, int pinned, int impl, int metric)
{
    return r->v + (((size_t)pinned * NIMPL + (size_t)impl) * NMETRIC +
                   (size_t)metric) * r->repeat;
}

static double
res_median(const results_t *r, int pinned, int impl, int metric,
           double *tmp)
{
    memcpy(tmp, res_at(r, pinned, impl, metric), r->repeat * sizeof *tmp);
    return ra__bench_median(tmp, r->repeat);
}

static bool
has_impl(const workload_t *w, int impl)
{
    return impl == IMPL_RAYO || (w->raw & (1u << impl)) != 0;
}

// print_line prints the line of one implementation, with the medians over
// the runs in med[] and, on the rayo line, the ratios to libzmq.
static void
print_line(const workload_t *w, uint64_t n, const results_t *r, int pinned,
           int impl, double med[NIMPL][NMETRIC])
{
    bool curve = impl == IMPL_CURVE || (impl == IMPL_RAYO && w->tcp);
    const double *runs = res_at(r, pinned, impl, 0);
    int vs = has_impl(w, IMPL_CURVE) && w->tcp ? IMPL_CURVE : IMPL_PLAIN;

    printf("{\"bench\":\"link\",\"workload\":\"%s\",\"transport\":\"%s\","
           "\"curve\":%s,\"impl\":\"%s\",\"pinned\":%s", w->name,
           w->tcp ? "tcp" : "ipc", curve ? "true" : "false",
           impl == IMPL_RAYO ? "rayo" : "libzmq", pinned ? "true" : "false");
    if (w->rtt) {
        printf(",\"msg_bytes\":%zu,\"median_us\":%.2f,\"p99_us\":%.2f,"
               "\"mean_us\":%.2f", w->size, med[impl][0], med[impl][1],
               med[impl][2]);
    } else {
        printf(",\"msg_bytes\":%zu,\"msgs_per_s\":%.0f,\"gb_per_s\":%.4f,"
               "\"seconds\":%.4f", w->size, med[impl][0],
               med[impl][0] * (double)w->size / 1e9, med[impl][1]);
        if (impl == IMPL_RAYO) {
            printf(",\"full_retries\":%.0f,\"retransmits\":%.0f,"
                   "\"duplicates\":%.0f,\"out_of_order\":%.0f",
                   med[impl][2], med[impl][3], med[impl][4], med[impl][5]);
        }
    }
    printf(",\"n\":%" PRIu64 ",\"repeat\":%u,\"repeat_medians\":[",
           n, r->repeat);
    for (unsigned k = 0; k < r->repeat; k++) {
        printf(k > 0 ? ",%.2f" : "%.2f", runs[k]);
    }
    printf("]");
    if (impl == IMPL_RAYO) {
        printf(",\"ratio\":%.4f", med[IMPL_RAYO][0] / med[vs][0]);
        if (w->tcp && has_impl(w, IMPL_PLAIN)) {
            double plain = med[IMPL_RAYO][0] / med[IMPL_PLAIN][0];

            printf(",\"ratio_plain\":%.4f", plain);
            if (!w->rtt) {
                printf(",\"curve_cost\":%.4f", 1 - plain);
            }
        }
    }
    printf("}\n");
}

static int
report(const workload_t *w, const results_t *r, uint64_t n)
{
    double med[NIMPL][NMETRIC];
    double *tmp = malloc(r->repeat * sizeof *tmp);

    if (tmp == NULL) {
        fprintf(stderr, "rayo bench link: out of memory\n");
        return RA_TOOL_FAIL;
    }
    for (int pinned = 0; pinned <= (w->rtt ? 1 : 0); pinned++) {
        for (int impl = 0; impl < NIMPL; impl++) {
            for (int k = 0; k < NMETRIC && has_impl(w, impl); k++) {
                med[impl][k] = res_median(r, pinned, impl, k, tmp);
            }
        }
        for (int impl = 0; impl < NIMPL; impl++) {
            if (has_impl(w, impl)) {
                print_line(w, n, r, pinned, impl, med);
            }
        }
    }
    fflush(stdout);
    free(tmp);
    return RA_TOOL_OK;
}

// run_workload measures every variant and implementation of w, repeat
// times, alternating them so that a slow spell of the machine hits all,
// then prints their lines.
static int
run_workload(const link_opts_t *o, const env_t *env, const workload_t *w)
{
    results_t r = {.repeat = o->repeat};
    uint64_t n = o->quick ? w->quick_n : w->n;
    int rc = RA_TOOL_OK;

    if (w->tcp && !env->have_curve) {
        fprintf(stderr, "rayo bench link: %s: skipped: it needs CURVE, "
                "which this libzmq lacks\n", w->name);
        return RA_TOOL_FAIL;
    }
    r.v = calloc((size_t)2 * NIMPL * NMETRIC * o->repeat, sizeof *r.v);
    if (r.v == NULL) {
        fprintf(stderr, "rayo bench link: out of memory\n");
        return RA_TOOL_FAIL;
    }
    for (unsigned k = 0; k < o->repeat && rc == RA_TOOL_OK; k++) {
        for (int pinned = 0; pinned <= (w->rtt ? 1 : 0); pinned++) {
            for (int impl = 0; impl < NIMPL && rc == RA_TOOL_OK; impl++) {
                bench_t b = {.o = o, .env = env, .w = w, .impl = impl,
                             .pinned = pinned, .n = n, .side = ""};
                sample_t s = {{0}};

                if (!has_impl(w, impl)) {
                    continue;
                }
                fprintf(stderr, "rayo bench link: %s: %s%s (run %u of "
                        "%u)\n", w->name, impl_names[impl],
                        pinned ? ", pinned" : "", k + 1, o->repeat);
                rc = measure(&b, &s);
                for (int m = 0; m < NMETRIC; m++) {
                    res_at(&r, pinned, impl, m)[k] = s.m[m];
                }
            }
        }
    }
    if (rc == RA_TOOL_OK) {
        rc = report(w, &r, n);
    }
    free(r.v);
    return rc;
}

// ---------------------------------------------------------------------
// The private directory, the certificate and keys.

static int
env_setup(env_t *e)
{
    cpu_set_t set;
    int rc;

    snprintf(e->dir, sizeof e->dir, "/tmp/rayo-bench-link-XXXXXX");
    if (mkdtemp(e->dir) == NULL) {
        fprintf(stderr, "rayo bench link: cannot make a directory in "
                "/tmp: %s\n", strerror(errno));
        return RA_TOOL_FAIL;
    }
    for (size_t i = 0; i < NTMP; i++) {
        snprintf(tmp_paths[i], sizeof tmp_paths[i], "%s/%s", e->dir,
                 tmp_names[i]);
    }
    snprintf(tmp_paths[NTMP], sizeof tmp_paths[NTMP], "%s", e->dir);
    snprintf(e->cert, sizeof e->cert, "%s", tmp_paths[0]);
    rc = ra_link_cert_ensure(e->cert);
    if (rc != 0) {
        fprintf(stderr, "rayo bench link: cannot make a certificate: %s "
                "(%s)\n", ra_err_name(rc), ra_strerror(rc));
    } else if (zmq_curve_keypair(e->srv_pub, e->srv_sec) != 0 ||
               zmq_curve_keypair(e->cli_pub, e->cli_sec) != 0) {
        fprintf(stderr, "rayo bench link: cannot make CURVE keys: %s\n",
                zmq_strerror(zmq_errno()));
    } else {
        e->have_curve = true;
    }
    // "CPU 0" for pinned runs: the first CPU we may run on.
    e->cpu = 0;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        while (e->cpu < CPU_SETSIZE - 1 && !CPU_ISSET(e->cpu, &set)) {
            e->cpu++;
        }
    }
    return RA_TOOL_OK;
}

// env_cleanup removes the directory and whatever was left in it (sockets
// of a receiver that was killed).
static void
env_cleanup(env_t *e)
{
    DIR *d = opendir(e->dir);
    struct dirent *de;

    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") != 0 &&
                strcmp(de->d_name, "..") != 0) {
                unlinkat(dirfd(d), de->d_name, 0);
            }
        }
        closedir(d);
    }
    if (rmdir(e->dir) != 0) {
        fprintf(stderr, "rayo bench link: cannot remove %s: %s\n", e->dir,
                strerror(errno));
    }
}

// ---------------------------------------------------------------------
// The command.

static const char usage[] =
    "Usage: rayo bench link [OPTIONS]\n"
    "Benchmark links between two processes (ipc, tcp with CURVE) beside\n"
    "bare libzmq over the same transport.  Prints one JSON object per line\n"
    "on stdout; progress and errors go to stderr.\n"
    "\n"
    "Each line holds the median over the runs; \"repeat_medians\" lists\n"
    "each run's median_us (round trips) or msgs_per_s (throughput).  On a\n"
    "rayo line, \"ratio\" is rayo over libzmq: above 1 rayo's round trips\n"
    "are slower, below 1 its throughput is lower.\n"
    "\n"
    "Options:\n"
    "  -q, --quick            fewer messages: 2000 round trips, 100,000\n"
    "                         small or 200 large messages (a CI smoke test)\n"
    "  -r, --repeat N         run each measurement N times (default 1)\n"
    "  -t, --threads N        scheduler threads per runtime (default 1;\n"
    "                         0: one per online CPU)\n"
    "  -w, --workload LIST    comma-separated workloads (default: all)\n"
    "      --timeout SECONDS  fail when one step of a measurement takes\n"
    "                         longer (default 300)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Workloads:\n";

static const char tail[] =
    "\nExit status: 0 when every measurement worked, 1 when one "
    "failed, 2 for a\nbad command line.\n";

int
ra__tool_bench_link(const char *prog, int argc, char **argv)
{
    link_opts_t o = {.threads = 1, .timeout_s = 300};
    const ra_bench_opt_t opts[] = {
        RA_BENCH_OPT_THREADS(&o.threads),
        RA_BENCH_OPT_TIMEOUT(&o.timeout_s),
    };
    const ra_bench_cmd_t cmd = {
        .usage = usage,
        .width = 20,
        .tail = tail,
        .workloads = RA_BENCH_TABLE(workloads, workload_t, summary),
        .select = "workload",
        .select_letter = 'w',
        .max_repeat = 1000,
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    ra_bench_args_t a;
    env_t env = {0};
    int rc = ra__bench_parse_args(prog, &cmd, argc, argv, &a);

    if (rc != RA_TOOL_OK || a.help) {
        return rc;
    }
    o.quick = a.quick;
    o.repeat = a.repeat;
    if (env_setup(&env) != RA_TOOL_OK) {
        return RA_TOOL_FAIL;
    }
    set_signals(on_signal);
    ra_log_set_sink(ra_log_stderr, NULL);
    for (size_t i = 0; i < a.nsel; i++) {
        if (run_workload(&o, &env, &workloads[a.sel[i]]) != RA_TOOL_OK) {
            rc = RA_TOOL_FAIL; // go on: the other numbers are still useful
        }
    }
    ra_log_set_sink(NULL, NULL);
    set_signals(SIG_DFL);
    env_cleanup(&env);
    return rc;
}

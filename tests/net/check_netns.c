// check_netns.c - three nodes in their own network namespaces.
//
// The fixture builds a small network on this machine: a bridge in a
// namespace of its own and three node namespaces joined to it by veth
// pairs (10.77.N.1/24 .. 10.77.N.3/24, N from the pid so that parallel
// runs do not meet).  Nodes 2 and 3 are separate processes (forked, each
// entering its namespace) running a runtime with a tcp+CURVE link and a
// few actors; each test runs node 1 in its own process inside the first
// namespace.  Partitions are made by setting a node's veth down on the
// bridge; process loss by kill -9.
//
// Needs root and iproute2 (ip, ss); otherwise every test is skipped with
// the reason (exit status 77, which automake reports as SKIP).
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rayo.h"
#include "linkutil.h"

#define PORT 7411
#define WAIT_MS 8000
#define HB_MS 500      // the defaults: heartbeats every 500 ms,
#define HB_MISS 5      // a peer lost after 5 silent intervals (2.5 s)

enum { TAG_ECHO = 1, TAG_REPLY, TAG_CALL, TAG_SEQ, TAG_COUNT, TAG_STATS };

static char g_ns[4][32];   // [0] the bridge, [1..3] the nodes
static char g_dir[128];    // certificates
static char g_cert[192];
static unsigned g_net;     // third octet of the addresses
static pid_t g_kids[4];
static int g_ctl = -1;     // write end: closing it stops the nodes
static char g_skip[256];

// What a node process tells the parent about itself.
typedef struct node_info {
    ra_pid_t echo, counter, stats;
} node_info_t;

static node_info_t g_info[4];

static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char quiet[600];
    snprintf(quiet, sizeof quiet, "%s >/dev/null 2>&1", cmd);
    return system(quiet);
}

static void
addr(char *buf, size_t len, int node)
{
    snprintf(buf, len, "tcp://10.77.%u.%d:%d", g_net, node, PORT);
}

static int
enter_ns(const char *ns)
{
    char path[128];
    snprintf(path, sizeof path, "/var/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = setns(fd, CLONE_NEWNET);
    close(fd);
    return rc == 0 ? 0 : -errno;
}

// ---- the actors of a node process ----

typedef struct counter {
    int64_t next, errors;
} counter_t;

static int
node_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    size_t len = 0;
    const void *data = ra_msg_data(msg, &len);
    ra_msg_t *r = NULL;
    switch (ra_msg_tag(msg)) {
    case TAG_ECHO:
        if (ra_msg_new_bytes(&r, TAG_REPLY, data, len) == 0 &&
            ra_send(ctx, ra_sender(ctx), &r) != 0) {
            ra_msg_unref(&r);
        }
        break;
    case TAG_CALL:
        if (ra_msg_new_bytes(&r, TAG_REPLY, data, len) == 0 &&
            ra_reply(ctx, &r) != 0) {
            ra_msg_unref(&r);
        }
        break;
    case TAG_SEQ: {
        counter_t *c = state;
        int64_t v = ra_test_get_i64(msg);
        if (v != c->next) {
            c->errors++;
        }
        c->next = v + 1;
        break;
    }
    case TAG_COUNT: {
        counter_t *c = state;
        int64_t two[2] = {c->next, c->errors};
        if (ra_msg_new_bytes(&r, TAG_REPLY, two, sizeof two) == 0 &&
            ra_reply(ctx, &r) != 0) {
            ra_msg_unref(&r);
        }
        break;
    }
    case TAG_STATS: {
        ra_link_stats_t st;
        ra_link_stats(state, &st);
        if (ra_msg_new_bytes(&r, TAG_REPLY, &st, sizeof st) == 0 &&
            ra_reply(ctx, &r) != 0) {
            ra_msg_unref(&r);
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

static const ra_behaviour_t node_beh = {"netnode", NULL, node_handle, NULL};

// Runs node id (process proc) in namespace ns until the control pipe
// closes; reports its actors on out.
static void
node_main(int id, uint32_t proc, int ctl, int out)
{
    if (enter_ns(g_ns[id]) != 0) {
        _exit(2);
    }
    ra_runtime_t *rt = NULL;
    ra_runtime_opts_t ro = {.threads = 2, .node = (uint32_t)id,
                            .proc = proc};
    char bind[64];
    snprintf(bind, sizeof bind, "tcp://10.77.%u.%d:%d", g_net, id,
             PORT + (int)proc - 1);
    ra_link_opts_t lo = {.bind = bind, .cert = g_cert};
    ra_link_t *l = NULL;
    if (ra_runtime_new(&rt, &ro) != 0 || ra_link_start(rt, &lo, &l) != 0) {
        _exit(3);
    }
    for (int j = 1; j <= 3; j++) {
        char ep[64];
        addr(ep, sizeof ep, j);
        if (j != id) {
            ra_link_route(l, (uint32_t)j, 1, ep);
        }
    }
    static counter_t c;
    node_info_t info;
    if (ra_spawn(rt, &node_beh, NULL, NULL, &info.echo) != 0 ||
        ra_spawn(rt, &node_beh, &c, NULL, &info.counter) != 0 ||
        ra_spawn(rt, &node_beh, l, NULL, &info.stats) != 0) {
        _exit(4);
    }
    if (write(out, &info, sizeof info) != (ssize_t)sizeof info) {
        _exit(5);
    }
    close(out);
    char b;
    while (read(ctl, &b, 1) > 0) {
    }
    ra_link_stop(&l);
    ra_runtime_destroy(&rt);
    _exit(0);
}

// Forks a node process and reads its report.  Returns its pid or -1.
static pid_t
spawn_node(int id, uint32_t proc, int ctl_read, node_info_t *info)
{
    int p[2];
    if (pipe(p) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        node_main(id, proc, ctl_read, p[1]);
    }
    close(p[1]);
    ssize_t n = pid > 0 ? read(p[0], info, sizeof *info) : -1;
    close(p[0]);
    if (n != (ssize_t)sizeof *info) {
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        return -1;
    }
    return pid;
}

// ---- the network ----

static void
net_down(void)
{
    for (int i = 0; i < 4; i++) {
        if (g_ns[i][0] != 0) {
            sh("ip netns del %s", g_ns[i]);
        }
    }
    if (g_dir[0] != 0) {
        sh("rm -rf %s", g_dir);
    }
}

static bool
net_up(void)
{
    if (geteuid() != 0) {
        snprintf(g_skip, sizeof g_skip, "not root: network namespaces "
                 "need CAP_SYS_ADMIN (run as root, as CI does)");
        return false;
    }
    if (sh("ip -V") != 0) {
        snprintf(g_skip, sizeof g_skip, "no ip command (apt-get install "
                 "iproute2)");
        return false;
    }
    g_net = 100 + (unsigned)getpid() % 150;
    int me = (int)getpid();
    snprintf(g_ns[0], sizeof g_ns[0], "rayo%d-br", me);
    for (int i = 1; i <= 3; i++) {
        snprintf(g_ns[i], sizeof g_ns[i], "rayo%d-n%d", me, i);
    }
    if (sh("ip netns add %s", g_ns[0]) != 0) {
        snprintf(g_skip, sizeof g_skip, "cannot create a network namespace "
                 "(ip netns add failed: no CAP_SYS_ADMIN in this container?)");
        g_ns[0][0] = 0;
        return false;
    }
    bool ok = sh("ip -n %s link add br0 type bridge", g_ns[0]) == 0 &&
              sh("ip -n %s link set br0 up", g_ns[0]) == 0;
    for (int i = 1; i <= 3 && ok; i++) {
        ok = sh("ip netns add %s", g_ns[i]) == 0 &&
             sh("ip -n %s link add eth0 type veth peer name p%d netns %s",
                g_ns[i], i, g_ns[0]) == 0 &&
             sh("ip -n %s addr add 10.77.%u.%d/24 dev eth0", g_ns[i], g_net,
                i) == 0 &&
             sh("ip -n %s link set eth0 up", g_ns[i]) == 0 &&
             sh("ip -n %s link set lo up", g_ns[i]) == 0 &&
             sh("ip -n %s link set p%d master br0", g_ns[0], i) == 0 &&
             sh("ip -n %s link set p%d up", g_ns[0], i) == 0;
    }
    if (!ok) {
        snprintf(g_skip, sizeof g_skip, "could not build the veth/bridge "
                 "network (ip link add ... type veth failed)");
        return false;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/rayo-netns-%d", me);
    mkdir(g_dir, 0700);
    snprintf(g_cert, sizeof g_cert, "%s/cluster.cert", g_dir);
    return ra_link_cert_ensure(g_cert) == 0;
}

static void
cluster_setup(void)
{
    if (!net_up()) {
        if (g_skip[0] == 0) {
            snprintf(g_skip, sizeof g_skip, "network setup failed");
        }
        return;
    }
    int ctl[2];
    if (pipe(ctl) != 0) {
        snprintf(g_skip, sizeof g_skip, "pipe failed");
        return;
    }
    for (int i = 2; i <= 3; i++) {
        g_kids[i] = spawn_node(i, 1, ctl[0], &g_info[i]);
        if (g_kids[i] < 0) {
            snprintf(g_skip, sizeof g_skip, "node %d did not start", i);
        }
    }
    close(ctl[0]);
    g_ctl = ctl[1];
}

static void
cluster_teardown(void)
{
    if (g_ctl >= 0) {
        close(g_ctl);
        g_ctl = -1;
    }
    for (int i = 2; i <= 3; i++) {
        if (g_kids[i] > 0) {
            int st;
            for (int t = 0; t < 500; t++) {
                if (waitpid(g_kids[i], &st, WNOHANG) == g_kids[i]) {
                    g_kids[i] = 0;
                    break;
                }
                ra_test_sleep_ms(10);
            }
            if (g_kids[i] > 0) {
                kill(g_kids[i], SIGKILL);
                waitpid(g_kids[i], NULL, 0);
            }
        }
    }
    net_down();
}

// ---- node 1, in a test's own process ----

typedef struct me {
    ra_runtime_t *rt;
    ra_link_t *l;
    ra_ctx_t *ctx;
} me_t;

static void
me_start(me_t *m, uint32_t proc, const char *cert)
{
    RA_CK_OK(enter_ns(g_ns[1]));
    ra_runtime_opts_t ro = {.threads = 2, .node = 1, .proc = proc};
    RA_CK_OK(ra_runtime_new(&m->rt, &ro));
    char bind[64];
    snprintf(bind, sizeof bind, "tcp://10.77.%u.1:%d", g_net,
             PORT + (int)proc);
    ra_link_opts_t lo = {.bind = bind, .cert = cert};
    RA_CK_OK(ra_link_start(m->rt, &lo, &m->l));
    for (int j = 2; j <= 3; j++) {
        char ep[64];
        addr(ep, sizeof ep, j);
        RA_CK_OK(ra_link_route(m->l, (uint32_t)j, 1, ep));
    }
    m->ctx = ra_test_new_scope(m->rt);
}

static void
me_stop(me_t *m)
{
    ra_scope_destroy(&m->ctx);
    ra_link_stop(&m->l);
    ra_runtime_destroy(&m->rt);
}

static int64_t
call_i64(me_t *m, ra_pid_t to, int32_t tag, int64_t v, int64_t timeout,
         int *rc_out)
{
    ra_msg_t *q = ra_test_new_i64(tag, v), *r = NULL;
    int rc = ra_call(m->ctx, to, &q, timeout, &r);
    ra_msg_unref(&q);
    *rc_out = rc;
    int64_t got = rc == 0 ? ra_test_get_i64(r) : 0;
    ra_msg_unref(&r);
    return got;
}

static void
remote_stats(me_t *m, int node, ra_link_stats_t *st)
{
    ra_msg_t *q = ra_test_new_i64(TAG_STATS, 0), *r = NULL;
    RA_CK_OK(ra_call(m->ctx, g_info[node].stats, &q, WAIT_MS, &r));
    size_t len = 0;
    const void *d = ra_msg_data(r, &len);
    ck_assert_uint_eq(len, sizeof *st);
    memcpy(st, d, sizeof *st);
    ra_msg_unref(&r);
}

// ---- tests ----

START_TEST(test_remote_send_and_call)
{
    me_t m;
    me_start(&m, 1, g_cert);
    for (int node = 2; node <= 3; node++) {
        int rc;
        for (int i = 0; i < 50; i++) {
            ck_assert_int_eq(call_i64(&m, g_info[node].echo, TAG_CALL, i,
                                      WAIT_MS, &rc), i);
            RA_CK_OK(rc);
        }
        ra_msg_t *e = ra_test_new_i64(TAG_ECHO, 1000 + node);
        RA_CK_OK(ra_send(m.ctx, g_info[node].echo, &e));
        ra_msg_t *r = NULL;
        RA_CK_OK(ra_receive(m.ctx, WAIT_MS, &r));
        ck_assert_int_eq(ra_msg_tag(r), TAG_REPLY);
        ck_assert_int_eq(ra_test_get_i64(r), 1000 + node);
        ra_msg_unref(&r);
    }
    // A call to an actor that does not exist on a live node.
    ra_pid_t ghost = g_info[2].echo;
    ghost.gen += 7;
    int rc;
    call_i64(&m, ghost, TAG_CALL, 1, WAIT_MS, &rc);
    RA_CK_ERR(rc, RA_ENOPROC);
    me_stop(&m);
}
END_TEST

START_TEST(test_order_across_reconnect)
{
    me_t m;
    me_start(&m, 2, g_cert);
    int rc;
    int64_t base = call_i64(&m, g_info[2].counter, TAG_COUNT, 0, WAIT_MS, &rc);
    RA_CK_OK(rc);
    long n = (long)ra_test_scaled(40000);
    for (long i = 0; i < n; i++) {
        if (i == n / 2) {
            // Abort our TCP connections to node 2 (ss -K sends a reset):
            // ZeroMQ reconnects and the session carries on, resending
            // what was lost.
            ck_assert_int_eq(sh("ip netns exec %s ss -tnK dst 10.77.%u.2",
                                g_ns[1], g_net), 0);
        }
        ra_msg_t *q = ra_test_new_i64(TAG_SEQ, base + i);
        while ((rc = ra_send(m.ctx, g_info[2].counter, &q)) == RA_EFULL) {
            ra_test_sleep_ms(1);
        }
        RA_CK_OK(rc);
    }
    uint64_t dl = ra_test_now_ms() + 20000;
    int64_t next = 0;
    ra_msg_t *q = NULL, *r = NULL;
    do {
        ck_assert_msg(ra_test_now_ms() < dl, "counter stuck at %lld of %lld",
                      (long long)next, (long long)(base + n));
        q = ra_test_new_i64(TAG_COUNT, 0);
        RA_CK_OK(ra_call(m.ctx, g_info[2].counter, &q, WAIT_MS, &r));
        const int64_t *two = ra_msg_data(r, NULL);
        next = two[0];
        ck_assert_int_eq(two[1], 0); // never out of order
        ra_msg_unref(&r);
    } while (next != base + n);
    ra_link_stats_t st;
    RA_CK_OK(ra_link_stats(m.l, &st));
    ck_assert_uint_eq(st.peers_lost, 0); // the same session throughout
    fprintf(stderr, "reconnect: %llu frames resent, %llu duplicates seen\n",
            (unsigned long long)st.retransmits,
            (unsigned long long)st.duplicates);
    me_stop(&m);
}
END_TEST

START_TEST(test_partition_noconnection)
{
    me_t m;
    me_start(&m, 3, g_cert);
    int rc;
    call_i64(&m, g_info[3].echo, TAG_CALL, 1, WAIT_MS, &rc);
    RA_CK_OK(rc);
    ra_trap_exit(m.ctx, true);
    uint64_t ref, nref;
    RA_CK_OK(ra_monitor(m.ctx, g_info[3].echo, &ref));
    RA_CK_OK(ra_link_monitor_node(m.ctx, 3, 1, &nref));
    RA_CK_OK(ra_link(m.ctx, g_info[3].counter));
    call_i64(&m, g_info[3].echo, TAG_CALL, 2, WAIT_MS, &rc); // all arrived
    RA_CK_OK(rc);
    uint64_t t0 = ra_test_now_ms();
    ck_assert_int_eq(sh("ip -n %s link set p3 down", g_ns[0]), 0);
    int got = 0;
    while (got != 7) {
        ra_msg_t *x = NULL;
        RA_CK_OK(ra_receive(m.ctx, WAIT_MS, &x));
        ra_reason_t why = 0;
        uint64_t mref = 0;
        if (ra_msg_kind(x) == RA_MSG_DOWN) {
            RA_CK_OK(ra_msg_down_info(x, &mref, NULL, &why));
            got |= mref == ref ? 1 : mref == nref ? 2 : 0;
        } else if (ra_msg_kind(x) == RA_MSG_EXIT) {
            RA_CK_OK(ra_msg_exit_info(x, NULL, &why));
            got |= 4;
        }
        if (ra_msg_kind(x) >= RA_MSG_EXIT) {
            RA_CK_REASON_EQ(why, RA_NOCONNECTION);
        }
        ra_msg_unref(&x);
    }
    uint64_t took = ra_test_now_ms() - t0;
    fprintf(stderr, "partition detected in %llu ms (window %d ms)\n",
            (unsigned long long)took, HB_MS * HB_MISS);
    ck_assert_uint_ge(took, HB_MS * (HB_MISS - 1));
    ck_assert_uint_lt(took, 3000); // the bound for the defaults
    // Healed: a new session, calls work again.
    ck_assert_int_eq(sh("ip -n %s link set p3 up", g_ns[0]), 0);
    uint64_t dl = ra_test_now_ms() + 15000;
    do {
        ck_assert(ra_test_now_ms() < dl);
        call_i64(&m, g_info[3].echo, TAG_CALL, 3, 1000, &rc);
    } while (rc != 0);
    me_stop(&m);
}
END_TEST

START_TEST(test_process_kill_noconnection)
{
    // A node process of our own to kill: node 2, process 2.  Forked
    // before this process starts threads (ThreadSanitizer forbids a fork
    // after).
    int ctl[2];
    ck_assert_int_eq(pipe(ctl), 0);
    node_info_t v;
    pid_t victim = spawn_node(2, 2, ctl[0], &v);
    ck_assert_int_gt(victim, 0);
    close(ctl[0]);
    me_t m;
    me_start(&m, 4, g_cert);
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://10.77.%u.2:%d", g_net, PORT + 1);
    RA_CK_OK(ra_link_route(m.l, 2, 2, ep));
    int rc;
    call_i64(&m, v.echo, TAG_CALL, 1, WAIT_MS, &rc);
    RA_CK_OK(rc);
    uint64_t ref;
    RA_CK_OK(ra_monitor(m.ctx, v.echo, &ref));
    call_i64(&m, v.echo, TAG_CALL, 2, WAIT_MS, &rc);
    RA_CK_OK(rc);
    uint64_t t0 = ra_test_now_ms();
    kill(victim, SIGKILL);
    ra_msg_t *x = ra_test_recv_kind(m.ctx, RA_MSG_DOWN, WAIT_MS);
    uint64_t took = ra_test_now_ms() - t0;
    ra_reason_t why;
    uint64_t mref;
    RA_CK_OK(ra_msg_down_info(x, &mref, NULL, &why));
    ck_assert_uint_eq(mref, ref);
    RA_CK_REASON_EQ(why, RA_NOCONNECTION);
    ra_msg_unref(&x);
    fprintf(stderr, "killed process detected in %llu ms\n",
            (unsigned long long)took);
    ck_assert_uint_lt(took, HB_MS * HB_MISS + 1000);
    waitpid(victim, NULL, 0);
    close(ctl[1]);
    // A call to it now fails: no connection.
    call_i64(&m, v.echo, TAG_CALL, 3, WAIT_MS, &rc);
    RA_CK_ERR(rc, RA_ENOCONN);
    me_stop(&m);
}
END_TEST

START_TEST(test_unknown_certificate_refused)
{
    me_t m;
    me_start(&m, 5, g_cert);
    ra_link_stats_t st0, st1;
    remote_stats(&m, 2, &st0);
    // A node with a certificate of its own cannot join.
    char other[256];
    snprintf(other, sizeof other, "%s/other-%d.cert", g_dir, (int)getpid());
    RA_CK_OK(ra_link_cert_create(other));
    ra_runtime_t *rt = NULL;
    ra_runtime_opts_t ro = {.threads = 1, .node = 1, .proc = 50};
    RA_CK_OK(ra_runtime_new(&rt, &ro));
    ra_link_opts_t lo = {.bind = "tcp://127.0.0.1:0", .cert = other};
    ra_link_t *l = NULL;
    RA_CK_OK(ra_link_start(rt, &lo, &l));
    char ep[64];
    addr(ep, sizeof ep, 2);
    RA_CK_ERR(ra_link_connect(l, ep, 1500, NULL, NULL), RA_ETIMEOUT);
    ra_link_stop(&l);
    ra_runtime_destroy(&rt);
    // A client with the server's public key but a key pair of its own gets
    // to the ZAP handler and is refused there.
    char spub[41];
    ra_test_cert_keys(g_cert, spub, NULL);
    char cpub[41], csec[41];
    ck_assert_int_eq(zmq_curve_keypair(cpub, csec), 0);
    void *zc = zmq_ctx_new();
    void *s = ra_test_dealer(zc, ep, spub, cpub, csec);
    zmq_send(s, "hello?", 6, ZMQ_DONTWAIT);
    uint64_t dl = ra_test_now_ms() + WAIT_MS;
    do {
        ck_assert(ra_test_now_ms() < dl);
        ra_test_sleep_ms(50);
        remote_stats(&m, 2, &st1);
    } while (st1.auth_denied == st0.auth_denied);
    ck_assert_uint_eq(st1.wire.bad_bson, st0.wire.bad_bson); // never read
    zmq_close(s);
    zmq_ctx_term(zc);
    me_stop(&m);
}
END_TEST

START_TEST(test_fuzzed_frames_live_node)
{
    me_t m;
    me_start(&m, 6, g_cert);
    ra_link_stats_t st0, st1;
    remote_stats(&m, 3, &st0);
    // An authenticated client (it holds the certificate) sending garbage.
    char pub[41], sec[41];
    ra_test_cert_keys(g_cert, pub, sec);
    char ep[64];
    addr(ep, sizeof ep, 3);
    void *zc = zmq_ctx_new();
    void *s = ra_test_dealer(zc, ep, pub, pub, sec);
    unsigned seed = ra_test_seed("test_fuzzed_frames_live_node");
    // Start from valid frames and mutate them: most get deep into the
    // decoder before failing.
    ra_wire_frame_t hf = {0};
    hf.kind = RA_WIRE_HELLO;
    hf.hello = (ra_wire_hello_t){.node = 9, .proc = 9, .vmin = 1, .vmax = 1,
                                 .inc = 3, .sess = 4};
    uint8_t *hello = NULL;
    size_t hlen = 0;
    RA_CK_OK(ra_wire_encode(&hf, 0, &hello, &hlen));
    ra_msg_t *body = ra_test_msg("fuzz");
    uint8_t *msg = NULL;
    size_t mlen = 0;
    RA_CK_OK(ra_wire_encode_msg(body, g_info[3].echo, g_info[3].echo, 1, 0,
                                0, &msg, &mlen));
    ra_msg_unref(&body);
    int n = (int)ra_test_scaled(20000);
    uint8_t buf[512];
    for (int i = 0; i < n; i++) {
        const uint8_t *src = i % 2 ? hello : msg;
        size_t len = i % 2 ? hlen : mlen;
        memcpy(buf, src, len);
        int flips = 1 + rand_r(&seed) % 4;
        for (int k = 0; k < flips; k++) {
            buf[rand_r(&seed) % len] = (uint8_t)rand_r(&seed);
        }
        if (i % 13 == 0) {
            len = (size_t)rand_r(&seed) % len; // truncated
        }
        zmq_send(s, buf, len, 0);
    }
    ra_wire_free(hello);
    ra_wire_free(msg);
    uint64_t dl = ra_test_now_ms() + WAIT_MS;
    do {
        ck_assert(ra_test_now_ms() < dl);
        ra_test_sleep_ms(50);
        remote_stats(&m, 3, &st1);
    } while (st1.frames_in - st0.frames_in < (uint64_t)n / 2);
    uint64_t drops = (st1.wire.bad_bson - st0.wire.bad_bson) +
                     (st1.wire.bad_field - st0.wire.bad_field) +
                     (st1.wire.bad_kind - st0.wire.bad_kind) +
                     (st1.wire.bad_version - st0.wire.bad_version) +
                     (st1.refused - st0.refused);
    fprintf(stderr, "live node dropped %llu of %d fuzzed frames\n",
            (unsigned long long)drops, n);
    ck_assert_uint_gt(drops, 0);
    zmq_close(s);
    zmq_ctx_term(zc);
    // The node still serves.
    int rc;
    ck_assert_int_eq(call_i64(&m, g_info[3].echo, TAG_CALL, 42, WAIT_MS, &rc),
                     42);
    RA_CK_OK(rc);
    me_stop(&m);
}
END_TEST

static Suite *
netns_suite(void)
{
    Suite *s = suite_create("netns");
    TCase *tc = tcase_create("three_nodes");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_remote_send_and_call);
    tcase_add_test(tc, test_order_across_reconnect);
    tcase_add_test(tc, test_partition_noconnection);
    tcase_add_test(tc, test_process_kill_noconnection);
    tcase_add_test(tc, test_unknown_certificate_refused);
    tcase_add_test(tc, test_fuzzed_frames_live_node);
    suite_add_tcase(s, tc);
    return s;
}

static void
on_signal(int sig)
{
    cluster_teardown();
    signal(sig, SIG_DFL);
    raise(sig);
}

int
main(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    cluster_setup();
    if (g_skip[0] != 0) {
        // automake counts exit status 77 as a skipped test.
        cluster_teardown();
        fprintf(stderr, "SKIP: %s\n", g_skip);
        return 77;
    }
    Suite *s = netns_suite();
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    cluster_teardown();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

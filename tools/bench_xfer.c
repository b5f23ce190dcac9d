// bench_xfer.c - the cross-node part of `rayo bench store`: a large object
// copied between the object stores of two nodes, beside bare libzmq tcp.
//
// ra__bench_xfer starts two node daemons of one cluster on this machine
// (this executable's `rayo start`, in a private temporary directory), the
// head on 127.0.0.1 and a second node on 127.0.0.2 that offers the custom
// resource "bench_far", each with a store that holds the object.  This
// process joins the head's node as a driver; a task that needs bench_far
// makes the object on the second node, and the head node's object manager
// pulls it into the head's store before ra_get returns.  The rate is the
// object manager's own count (ra_transfer_stats: bytes over the time from
// asking to a sealed copy) of the timed copies; one untimed copy first
// faults the stores' pages in.  The links are tcp with CurveZMQ, as every
// link between nodes is.
//
// Beside it, in this process: SIZE bytes pushed through a libzmq PUSH/PULL
// pair over tcp on 127.0.0.1, in 4 MiB messages between buffers that are
// faulted in, plain and with CURVE (two contexts, so each side has an I/O
// thread of its own, as the two nodes have).
//
// Loopback, not network namespaces: the bench runs without root.  The
// namespace tests (tests/net/objects_netns.sh) log each large pull's rate
// too.
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

#define XFER_MSG ((size_t)4 << 20)
#define XFER_SLACK ((size_t)64 << 20)

// bench_blob: {i64 bytes} -> that many bytes (a pattern, so that the pages
// are written).  Runs on the node with bench_far.
static int
bench_blob(ra_task_t *t)
{
    int64_t n = ra_task_arg_i64(t, 0);
    uint8_t *p = malloc(n > 0 ? (size_t)n : 1);
    if (p == NULL) {
        return ra_task_fail(t, "out of memory for %lld bytes",
                            (long long)n);
    }
    for (int64_t i = 0; i < n; i += 4096) {
        p[i] = (uint8_t)(i >> 12);
    }
    memset(p, 0x5a, (size_t)(n < 4096 ? n : 4096));
    int rc = ra_task_return_bytes(t, p, (size_t)n);
    free(p);
    return rc;
}
RA_REMOTE_REGISTER(bench_blob)

// run_cmd runs this executable with args, its stdout into out (cap bytes,
// first line only) and its stderr to /dev/null.  Returns its exit status,
// or -1.
static int
run_cmd(char *const args[], char *out, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) {
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        // Its notes go to the nodes' logs, not among the bench's.
        int null = open("/dev/null", O_WRONLY);
        dup2(fd[1], 1);
        if (null >= 0) {
            dup2(null, 2);
            close(null);
        }
        close(fd[0]);
        close(fd[1]);
        execv("/proc/self/exe", args);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    ssize_t k;
    while (len + 1 < cap &&
           (k = read(fd[0], out + len, cap - 1 - len)) > 0) {
        len += (size_t)k;
    }
    close(fd[0]);
    out[len] = '\0';
    char *nl = strchr(out, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// gcs_port reads the head's port from its node file.
static int
gcs_port(const char *session)
{
    char path[4400], line[512];
    snprintf(path, sizeof path, "%s/node.info", session);
    FILE *f = fopen(path, "r");
    int port = -1;
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        const char *p = strstr(line, "gcs_endpoint tcp://");
        const char *c = p != NULL ? strrchr(p, ':') : NULL;
        if (c != NULL) {
            port = atoi(c + 1);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return port;
}

static void
stop_node(const char *temp)
{
    char out[64];
    char *args[] = {"rayo", "stop", "--force", "--temp-dir", (char *)temp,
                    NULL};
    (void)run_cmd(args, out, sizeof out);
}

// rayo_xfer measures the object managers' copy; *gbps and *s on success.
static int
rayo_xfer(const char *dir, size_t size, unsigned times, double *gbps,
          double *s)
{
    char ta[4200], tb[4200], sa[4300], sb[4300], mem[32], hp[64];
    snprintf(ta, sizeof ta, "%s/a", dir);
    snprintf(tb, sizeof tb, "%s/b", dir);
    snprintf(mem, sizeof mem, "%zu", size + XFER_SLACK);
    char *head[] = {"rayo", "start", "--head", "--node-ip", "127.0.0.1",
                    "--port", "0", "--num-cpus", "1",
                    "--object-store-memory", mem, "--temp-dir", ta, NULL};
    if (run_cmd(head, sa, sizeof sa) != 0) {
        fprintf(stderr, "rayo bench store: transfer: the head node did "
                "not start (see %s/daemon.log)\n", ta);
        return RA_TOOL_FAIL;
    }
    int port = gcs_port(sa);
    char cert[4400];
    snprintf(cert, sizeof cert, "%s/cluster.cert", sa);
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    char *node[] = {"rayo", "start", "--address", hp, "--node-ip",
                    "127.0.0.2", "--cert", cert, "--num-cpus", "1",
                    "--resources", "{\"bench_far\": 1}",
                    "--object-store-memory", mem, "--temp-dir", tb, NULL};
    int rc = RA_TOOL_FAIL;
    if (port <= 0 || run_cmd(node, sb, sizeof sb) != 0) {
        fprintf(stderr, "rayo bench store: transfer: the second node did "
                "not start (see %s/daemon.log)\n", tb);
        stop_node(ta);
        return RA_TOOL_FAIL;
    }
    ra_init_opts_t io = {.address = sa};
    if ((rc = ra_init_opts(&io)) != 0) {
        fprintf(stderr, "rayo bench store: transfer: cannot join %s: %s\n",
                sa, ra_strerror(rc));
        stop_node(tb);
        stop_node(ta);
        return RA_TOOL_FAIL;
    }
    ra_task_opts_t o = RA_TASK_OPTS_INIT;
    ra_resources_t x = {0};
    (void)ra_resources_set(&x, "bench_far", 1);
    o.resources = &x;
    o.num_cpus = 0.1;
    ra_transfer_stats_t t0 = {0}, t1 = {0};
    rc = 0;
    for (unsigned i = 0; i <= times && rc == 0; i++) {
        if (i == 1 && (rc = ra_transfer_stats(&t0)) != 0) {
            break;
        }
        ra_ref_t r;
        ra_value_t *v = NULL;
        // The second node may still be joining: its resource is then
        // unknown for a moment.
        for (int k = 0; k < 100; k++) {
            rc = ra_remote("bench_blob", &RA_ARG_I64((int64_t)size), 1, &o,
                           &r);
            if (rc == 0) {
                rc = ra_get(r, 600000, &v);
            }
            if (rc != RA_EINFEASIBLE) {
                break;
            }
            ra_release(r);
            nanosleep(&(struct timespec){0, 100000000L}, NULL);
        }
        size_t len = 0;
        const uint8_t *d = rc == 0 ? ra_value_data(v, &len) : NULL;
        if (rc == 0 && (len != size || d[0] != 0x5a)) {
            rc = RA_EBADMSG;
        }
        if (rc != 0) {
            fprintf(stderr, "rayo bench store: transfer: %s %s\n",
                    ra_strerror(rc), v != NULL ? ra_value_error(v) : "");
        }
        ra_value_free(&v);
        ra_release(r);
    }
    if (rc == 0) {
        rc = ra_transfer_stats(&t1);
    }
    ra_shutdown();
    stop_node(tb);
    stop_node(ta);
    uint64_t bytes = t1.pulled_bytes - t0.pulled_bytes;
    uint64_t us = t1.pull_us - t0.pull_us;
    if (rc != 0 || t1.pulls - t0.pulls != times || us == 0) {
        fprintf(stderr, "rayo bench store: transfer: %s (%llu pulls seen)\n",
                rc != 0 ? ra_strerror(rc) : "the object manager counted "
                "no copies", (unsigned long long)(t1.pulls - t0.pulls));
        return RA_TOOL_FAIL;
    }
    *s = (double)us / 1e6;
    *gbps = (double)bytes / 1e3 / (double)us;
    return RA_TOOL_OK;
}

// ---- bare libzmq ----------------------------------------------------------

typedef struct zside {
    void *ctx, *sock;
    size_t size;
    uint8_t *buf;
    double end;
    int rc;
} zside_t;

static void *
zrecv_main(void *arg)
{
    zside_t *z = arg;
    size_t got = 0;
    while (got < z->size) {
        int n = zmq_recv(z->sock, z->buf, XFER_MSG, 0);
        if (n < 0) {
            z->rc = -1;
            return NULL;
        }
        got += (size_t)n;
    }
    z->end = ra__bench_now_s();
    return NULL;
}

// zmq_xfer pushes size bytes through PUSH/PULL over tcp; GB/s.
static double
zmq_xfer(size_t size, bool curve)
{
    zside_t rx = {.size = size}, tx = {.size = size};
    char pub_s[41], sec_s[41], pub_c[41], sec_c[41], ep[128];
    size_t eplen = sizeof ep;
    double gbps = -1;
    pthread_t th;
    int one = 1, hwm = 0;
    // As the node daemons do (ra_node_run): message buffers come from
    // the heap and are reused, not freshly mapped for each message.
    (void)mallopt(M_MMAP_THRESHOLD, 32 << 20);
    (void)mallopt(M_TRIM_THRESHOLD, 256 << 20);
    rx.ctx = zmq_ctx_new();
    tx.ctx = zmq_ctx_new();
    rx.buf = malloc(XFER_MSG);
    tx.buf = malloc(XFER_MSG);
    if (rx.ctx == NULL || tx.ctx == NULL || rx.buf == NULL ||
        tx.buf == NULL) {
        goto out;
    }
    memset(rx.buf, 1, XFER_MSG);
    memset(tx.buf, 2, XFER_MSG);
    rx.sock = zmq_socket(rx.ctx, ZMQ_PULL);
    tx.sock = zmq_socket(tx.ctx, ZMQ_PUSH);
    if (rx.sock == NULL || tx.sock == NULL) {
        goto out;
    }
    (void)zmq_setsockopt(rx.sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    (void)zmq_setsockopt(tx.sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (curve) {
        if (zmq_curve_keypair(pub_s, sec_s) != 0 ||
            zmq_curve_keypair(pub_c, sec_c) != 0 ||
            zmq_setsockopt(rx.sock, ZMQ_CURVE_SERVER, &one, sizeof one) !=
                0 ||
            zmq_setsockopt(rx.sock, ZMQ_CURVE_SECRETKEY, sec_s, 40) != 0 ||
            zmq_setsockopt(tx.sock, ZMQ_CURVE_SERVERKEY, pub_s, 40) != 0 ||
            zmq_setsockopt(tx.sock, ZMQ_CURVE_PUBLICKEY, pub_c, 40) != 0 ||
            zmq_setsockopt(tx.sock, ZMQ_CURVE_SECRETKEY, sec_c, 40) != 0) {
            goto out;
        }
    }
    if (zmq_bind(rx.sock, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(rx.sock, ZMQ_LAST_ENDPOINT, ep, &eplen) != 0 ||
        zmq_connect(tx.sock, ep) != 0 ||
        pthread_create(&th, NULL, zrecv_main, &rx) != 0) {
        goto out;
    }
    double t0 = ra__bench_now_s();
    for (size_t sent = 0; sent < size; sent += XFER_MSG) {
        size_t n = size - sent < XFER_MSG ? size - sent : XFER_MSG;
        if (zmq_send(tx.sock, tx.buf, n, 0) < 0) {
            tx.rc = -1;
            break;
        }
    }
    pthread_join(th, NULL);
    if (tx.rc == 0 && rx.rc == 0 && rx.end > t0) {
        gbps = (double)size / 1e9 / (rx.end - t0);
    }
out:
    if (rx.sock != NULL) {
        zmq_close(rx.sock);
    }
    if (tx.sock != NULL) {
        int zero = 0;
        zmq_setsockopt(tx.sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(tx.sock);
    }
    if (rx.ctx != NULL) {
        zmq_ctx_term(rx.ctx);
    }
    if (tx.ctx != NULL) {
        zmq_ctx_term(tx.ctx);
    }
    free(rx.buf);
    free(tx.buf);
    return gbps;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    (void)(flag == FTW_DP ? rmdir(path) : unlink(path));
    return 0;
}

int
ra__bench_xfer(const char *dir, size_t size, unsigned times,
               ra__xfer_result_t *out)
{
    memset(out, 0, sizeof *out);
    fprintf(stderr, "rayo bench store: transfer: two nodes on 127.0.0.1 "
            "and 127.0.0.2, %u copies of %zu bytes\n", times, size);
    int rc = rayo_xfer(dir, size, times, &out->rayo_gbps, &out->rayo_s);
    // The nodes' sessions (logs, tables) go with the directory.
    (void)nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != RA_TOOL_OK) {
        return rc;
    }
    out->times = times;
    out->zmq_gbps = zmq_xfer(size, false);
    out->zmq_curve_gbps = zmq_xfer(size, true);
    if (out->zmq_gbps <= 0 || out->zmq_curve_gbps <= 0) {
        fprintf(stderr, "rayo bench store: transfer: the libzmq runs "
                "failed\n");
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

// bench_store.c - `rayo bench store`: the shared-memory object store.
//
// Each run makes fresh stores in /dev/shm (named after this process) and a
// private spill directory under $TMPDIR, and removes them at the end.
// Results go to stdout as one JSON object per line (the shape of `rayo
// bench actor`: suite, workload, value, unit, n, seconds, run), and with
// --repeat N > 1 a line with "stat":"median" per workload follows the
// runs.  Progress and notes go to stderr.
//
// Workloads, in the order they run:
//   create_s         seconds to create the large store with
//                    RA_OBJSTORE_PREFAULT_FULL (process and kernel touch
//                    every page)
//   small_put        1 KiB puts (alloc, copy, seal), ops/s
//   small_get        gets and releases of those objects, random order, ops/s
//   memcpy_gbps      memcpy of SIZE bytes between two faulted buffers
//   large_put_gbps   one SIZE-byte put from a faulted buffer ("ratio": over
//                    memcpy_gbps of the same run)
//   large_get_us     the get of that object: a pin and a pointer, constant
//                    time whatever SIZE
//   large_get_gbps   get, a copy of every byte out of the view, release
//   file_write_gbps  SIZE bytes write()n to a new file in the spill
//                    directory's file system, no fsync (the page cache, as
//                    a spill); an untimed write and read of the same size
//                    before it warm the page cache and the buffers
//   file_read_gbps   the same file read back
//   spill_gbps       ra_objstore_spill of the SIZE-byte object ("ratio":
//                    over file_write_gbps)
//   restore_gbps     the get that reads it back ("ratio": over
//                    file_read_gbps)
//   transfer_gbps    a SIZE-byte task result copied from the store of one
//                    node to another's by their object managers (two node
//                    daemons on 127.0.0.1 and 127.0.0.2, tcp with CURVE;
//                    bench_xfer.c), 3 copies (1 with --quick) after an
//                    untimed one ("ratio": over zmq_tcp_gbps)
//   zmq_tcp_gbps     SIZE bytes in 4 MiB messages through a bare libzmq
//                    PUSH/PULL pair over tcp on 127.0.0.1
//   zmq_tcp_curve_gbps  the same with CURVE ("ratio": transfer_gbps over
//                    it)
// GB are 10^9 bytes.  sync() runs (untimed) before each timed write so
// that earlier dirty pages do not throttle it.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

#define SMALL_SIZE 1024
#define SMALL_OPS 200000u
#define QUICK_SMALL_OPS 5000u
#define LARGE_SIZE ((size_t)1 << 30)
#define QUICK_LARGE_SIZE ((size_t)64 << 20)
#define MAX_LINES 16
#define STORE_SLACK ((size_t)16 << 20)

typedef struct line {
    const char *workload;
    const char *unit;
    double value;
    uint64_t n;
    double seconds;
    double ratio; // < 0: none
} line_t;

typedef struct run {
    line_t lines[MAX_LINES];
    size_t nlines;
} run_t;

typedef struct opts {
    bool quick;
    unsigned repeat;
    size_t size;
    char dir[4096];   // private temporary directory, for the plain file
    char spill[4200]; // the stores' spill directory inside it
} opts_t;

static void
add(run_t *r, const char *workload, const char *unit, double value,
    uint64_t n, double seconds, double ratio)
{
    if (r->nlines < MAX_LINES) {
        r->lines[r->nlines++] =
            (line_t){workload, unit, value, n, seconds, ratio};
    }
}

static void
print_line(const line_t *l, const char *stat, unsigned run, unsigned repeat,
           size_t size)
{
    printf("{\"suite\":\"store\",\"workload\":\"%s\"", l->workload);
    if (stat != NULL) {
        printf(",\"stat\":\"%s\"", stat);
    }
    printf(",\"value\":%.3f,\"unit\":\"%s\",\"n\":%" PRIu64
           ",\"seconds\":%.6f,\"repeat\":%u,\"size\":%zu",
           l->value, l->unit, l->n, l->seconds, repeat, size);
    if (l->ratio >= 0) {
        printf(",\"ratio\":%.3f", l->ratio);
    }
    if (stat == NULL) {
        printf(",\"run\":%u", run);
    }
    printf("}\n");
    fflush(stdout);
}

static ra_oid_t
oid_of(uint64_t a, uint64_t b)
{
    ra_oid_t o;

    memcpy(o.b, &a, 8);
    memcpy(o.b + 8, &b, 8);
    return o;
}

static int
fail(const char *what, int rc)
{
    fprintf(stderr, "rayo bench store: %s: %s (%s)\n", what,
            ra_strerror(rc), ra_err_name(rc));
    return RA_TOOL_FAIL;
}

// faulted_buffer returns size bytes of anonymous memory with every page
// written (a fresh page costs several microseconds on a VM), or NULL.
static uint8_t *
faulted_buffer(size_t size, int fill)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

    if (p == MAP_FAILED) {
        return NULL;
    }
    memset(p, fill, size);
    return p;
}

// ---- small objects ---------------------------------------------------------

static int
bench_small(const opts_t *o, run_t *r)
{
    unsigned nops = o->quick ? QUICK_SMALL_OPS : SMALL_OPS;
    ra_objstore_opts_t so = {
        .capacity = (size_t)nops * (SMALL_SIZE + 64) + STORE_SLACK,
        .max_objects = nops + 1024, .spill_dir = o->spill};
    char name[64], data[SMALL_SIZE];
    ra_objstore_t *st = NULL;
    ra_objstore_view_t v;
    uint32_t *order;
    double t0, t;
    int rc;

    snprintf(name, sizeof name, "rayo-bench-small-%d", (int)getpid());
    memset(data, 0x5a, sizeof data);
    if ((rc = ra_objstore_create(&st, name, &so)) != 0) {
        return fail("create", rc);
    }
    if ((order = malloc(sizeof *order * nops)) == NULL) {
        ra_objstore_destroy(&st);
        return fail("malloc", RA_ENOMEM);
    }
    t0 = ra__bench_now_s();
    for (uint32_t i = 0; i < nops; i++) {
        if ((rc = ra_objstore_put(st, oid_of(1, i), data, sizeof data)) !=
            0) {
            goto out;
        }
    }
    t = ra__bench_now_s() - t0;
    add(r, "small_put", "ops/s", nops / t, nops, t, -1);
    // Random order, so the index and the pins are not walked in sequence.
    for (uint32_t i = 0; i < nops; i++) {
        order[i] = i;
    }
    srand(42);
    for (uint32_t i = nops - 1; i > 0; i--) {
        uint32_t j = (uint32_t)rand() % (i + 1), x = order[i];

        order[i] = order[j];
        order[j] = x;
    }
    t0 = ra__bench_now_s();
    for (uint32_t i = 0; i < nops; i++) {
        if ((rc = ra_objstore_get(st, oid_of(1, order[i]), 0, &v)) != 0 ||
            (rc = ra_objstore_release(st, &v)) != 0) {
            goto out;
        }
    }
    t = ra__bench_now_s() - t0;
    add(r, "small_get", "ops/s", nops / t, nops, t, -1);
out:
    free(order);
    ra_objstore_destroy(&st);
    return rc == 0 ? RA_TOOL_OK : fail("small objects", rc);
}

// ---- large objects ---------------------------------------------------------

static int
write_whole(const char *path, const uint8_t *p, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    while (size > 0 && rc == 0) {
        ssize_t n = write(fd, p, size < ((size_t)1 << 30) ? size
                                                          : (size_t)1 << 30);

        if (n < 0) {
            rc = errno == EINTR ? 0 : -errno;
            continue;
        }
        p += n;
        size -= (size_t)n;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

static int
read_whole(const char *path, uint8_t *p, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (size > 0 && rc == 0) {
        ssize_t n = read(fd, p, size < ((size_t)1 << 30) ? size
                                                         : (size_t)1 << 30);

        if (n < 0) {
            rc = errno == EINTR ? 0 : -errno;
            continue;
        }
        if (n == 0) {
            rc = -EIO;
            continue;
        }
        p += n;
        size -= (size_t)n;
    }
    close(fd);
    return rc;
}

typedef struct large {
    const opts_t *o;
    run_t *r;
    ra_objstore_t *st;
    uint8_t *src, *dst;
    size_t size;
    double memcpy_gbps, write_gbps, read_gbps;
} large_t;

static double
gbps(size_t size, double t)
{
    return (double)size / t / 1e9;
}

static int
bench_memcpy_put_get(large_t *b)
{
    ra_oid_t id = oid_of(2, 1);
    ra_objstore_view_t v;
    double t0, t, tg;
    void *p = NULL;
    int rc;

    memcpy(b->dst, b->src, b->size); // warm both buffers once
    t0 = ra__bench_now_s();
    memcpy(b->dst, b->src, b->size);
    t = ra__bench_now_s() - t0;
    b->memcpy_gbps = gbps(b->size, t);
    add(b->r, "memcpy_gbps", "GB/s", b->memcpy_gbps, 1, t, -1);
    t0 = ra__bench_now_s();
    if ((rc = ra_objstore_alloc(b->st, id, b->size, &p)) != 0) {
        return fail("large alloc", rc);
    }
    memcpy(p, b->src, b->size);
    if ((rc = ra_objstore_seal(b->st, id)) != 0) {
        return fail("large seal", rc);
    }
    t = ra__bench_now_s() - t0;
    add(b->r, "large_put_gbps", "GB/s", gbps(b->size, t), 1, t,
        gbps(b->size, t) / b->memcpy_gbps);
    t0 = ra__bench_now_s();
    if ((rc = ra_objstore_get(b->st, id, 0, &v)) != 0) {
        return fail("large get", rc);
    }
    tg = ra__bench_now_s() - t0;
    memcpy(b->dst, v.data, v.size);
    if ((rc = ra_objstore_release(b->st, &v)) != 0) {
        return fail("large release", rc);
    }
    t = ra__bench_now_s() - t0;
    add(b->r, "large_get_us", "us", tg * 1e6, 1, tg, -1);
    add(b->r, "large_get_gbps", "GB/s", gbps(b->size, t), 1, t,
        gbps(b->size, t) / b->memcpy_gbps);
    return RA_TOOL_OK;
}

// bench_files times a plain write and read of the large object's bytes.
// A first, untimed write and read warm the page cache and the kernel's
// view of both buffers: on a VM the first use of a page, by the process or
// by the kernel, costs several microseconds, which would make whichever of
// the plain file and the spill goes first look several times slower.  The
// store gets the same treatment from RA_OBJSTORE_PREFAULT_FULL.
static int
bench_files(large_t *b)
{
    char path[4200];
    double t0, t;
    int rc;

    snprintf(path, sizeof path, "%s/plain.bin", b->o->dir);
    if ((rc = write_whole(path, b->src, b->size)) == 0) {
        rc = read_whole(path, b->dst, b->size);
    }
    unlink(path);
    if (rc != 0) {
        return fail("file warm-up", rc);
    }
    sync();
    t0 = ra__bench_now_s();
    rc = write_whole(path, b->src, b->size);
    t = ra__bench_now_s() - t0;
    if (rc != 0) {
        unlink(path);
        return fail("file write", rc);
    }
    b->write_gbps = gbps(b->size, t);
    add(b->r, "file_write_gbps", "GB/s", b->write_gbps, 1, t, -1);
    t0 = ra__bench_now_s();
    rc = read_whole(path, b->dst, b->size);
    t = ra__bench_now_s() - t0;
    unlink(path);
    if (rc != 0) {
        return fail("file read", rc);
    }
    b->read_gbps = gbps(b->size, t);
    add(b->r, "file_read_gbps", "GB/s", b->read_gbps, 1, t, -1);
    return RA_TOOL_OK;
}

static int
bench_spill(large_t *b)
{
    ra_oid_t id = oid_of(2, 1);
    ra_objstore_view_t v;
    double t0, t;
    int rc;

    if ((rc = ra_objstore_ref(b->st, id)) != 0) {
        return fail("ref", rc);
    }
    sync();
    t0 = ra__bench_now_s();
    if ((rc = ra_objstore_spill(b->st, id)) != 0) {
        return fail("spill", rc);
    }
    t = ra__bench_now_s() - t0;
    add(b->r, "spill_gbps", "GB/s", gbps(b->size, t), 1, t,
        gbps(b->size, t) / b->write_gbps);
    t0 = ra__bench_now_s();
    if ((rc = ra_objstore_get(b->st, id, 0, &v)) != 0) {
        return fail("restore", rc);
    }
    t = ra__bench_now_s() - t0;
    add(b->r, "restore_gbps", "GB/s", gbps(b->size, t), 1, t,
        gbps(b->size, t) / b->read_gbps);
    if (v.size != b->size || memcmp(v.data, b->src, b->size) != 0) {
        fprintf(stderr, "rayo bench store: the restored object differs\n");
        ra_objstore_release(b->st, &v);
        return RA_TOOL_FAIL;
    }
    if ((rc = ra_objstore_release(b->st, &v)) != 0) {
        return fail("release", rc);
    }
    return RA_TOOL_OK;
}

static int
bench_large(const opts_t *o, run_t *r)
{
    ra_objstore_opts_t so = {.capacity = o->size + STORE_SLACK,
                             .spill_dir = o->spill,
                             .prefault = RA_OBJSTORE_PREFAULT_FULL};
    large_t b = {.o = o, .r = r, .size = o->size};
    char name[64];
    double t0, t;
    int rc = RA_TOOL_FAIL;

    snprintf(name, sizeof name, "rayo-bench-large-%d", (int)getpid());
    b.src = faulted_buffer(o->size, 0x3c);
    b.dst = faulted_buffer(o->size, 0);
    if (b.src == NULL || b.dst == NULL) {
        fprintf(stderr, "rayo bench store: cannot map 2 x %zu bytes\n",
                o->size);
        goto out;
    }
    for (size_t i = 0; i < o->size; i += 4096) {
        b.src[i] = (uint8_t)(i >> 12); // not all one byte
    }
    t0 = ra__bench_now_s();
    if ((rc = ra_objstore_create(&b.st, name, &so)) != 0) {
        rc = fail("create", rc);
        goto out;
    }
    t = ra__bench_now_s() - t0;
    add(r, "create_s", "s", t, 1, t, -1);
    if ((rc = bench_memcpy_put_get(&b)) == RA_TOOL_OK &&
        (rc = bench_files(&b)) == RA_TOOL_OK) {
        rc = bench_spill(&b);
    }
out:
    ra_objstore_destroy(&b.st);
    if (b.src != NULL) {
        munmap(b.src, o->size);
    }
    if (b.dst != NULL) {
        munmap(b.dst, o->size);
    }
    return rc;
}

// bench_transfer: a large object between the stores of two nodes
// (bench_xfer.c), beside bare libzmq tcp plain and with CURVE.
static int
bench_transfer(const opts_t *o, run_t *r)
{
    char dir[4200];
    ra__xfer_result_t x;
    unsigned times = o->quick ? 1 : 3;

    snprintf(dir, sizeof dir, "%s/nodes", o->dir);
    if (mkdir(dir, 0700) != 0) {
        return fail("mkdir", -errno);
    }
    int rc = ra__bench_xfer(dir, o->size, times, &x);
    if (rc != RA_TOOL_OK) {
        return rc;
    }
    add(r, "transfer_gbps", "GB/s", x.rayo_gbps, times, x.rayo_s,
        x.rayo_gbps / x.zmq_gbps);
    add(r, "zmq_tcp_gbps", "GB/s", x.zmq_gbps, 1,
        (double)o->size / 1e9 / x.zmq_gbps, -1);
    add(r, "zmq_tcp_curve_gbps", "GB/s", x.zmq_curve_gbps, 1,
        (double)o->size / 1e9 / x.zmq_curve_gbps,
        x.rayo_gbps / x.zmq_curve_gbps);
    return RA_TOOL_OK;
}

// ---- the command -----------------------------------------------------------

static void
print_medians(const run_t *runs, unsigned repeat, size_t size)
{
    double v[64], s[64];

    for (size_t k = 0; k < runs[0].nlines; k++) {
        line_t m = runs[0].lines[k];
        double ratio[64];

        for (unsigned i = 0; i < repeat; i++) {
            v[i] = runs[i].lines[k].value;
            s[i] = runs[i].lines[k].seconds;
            ratio[i] = runs[i].lines[k].ratio;
        }
        m.value = ra__bench_median(v, repeat);
        m.seconds = ra__bench_median(s, repeat);
        if (m.ratio >= 0) {
            m.ratio = ra__bench_median(ratio, repeat);
        }
        print_line(&m, "median", 0, repeat, size);
    }
}

// fit_size lowers o->size (by halves) until the store and its slack fit in
// /dev/shm's free space, saying so on stderr.
static void
fit_size(opts_t *o)
{
    struct statvfs vfs;
    uint64_t avail;

    if (statvfs("/dev/shm", &vfs) != 0) {
        return;
    }
    avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    while (o->size > ((size_t)1 << 20) &&
           (uint64_t)o->size + 2 * STORE_SLACK > avail / 10 * 9) {
        o->size /= 2;
    }
    if ((uint64_t)o->size + 2 * STORE_SLACK > avail / 10 * 9) {
        return;
    }
    if (o->size != LARGE_SIZE && !o->quick) {
        fprintf(stderr, "rayo bench store: note: /dev/shm has %" PRIu64
                " bytes free; large objects are %zu bytes\n", avail,
                o->size);
    }
}

static const char usage[] =
    "Usage: rayo bench store [OPTIONS]\n"
    "Benchmark the shared-memory object store: small puts and gets, a\n"
    "large put and get beside memcpy, spill and restore beside plain file\n"
    "I/O, and a large object copied between two nodes (two node daemons\n"
    "started on 127.0.0.1 and 127.0.0.2) beside bare libzmq tcp.  Prints\n"
    "one JSON object per line and run on stdout.\n"
    "\n"
    "Options:\n"
    "  -q, --quick        5,000 small objects and a 64 MiB large one\n"
    "                     (default 200,000 and 1 GiB, less when /dev/shm\n"
    "                     is too small)\n"
    "  -s, --size BYTES   the large object's size (at least 1 MiB)\n"
    "  -r, --repeat N     run everything N times (default 1) and add a\n"
    "                     line with \"stat\":\"median\" per workload\n"
    "  -h, --help         show this help\n"
    "\n"
    "Spill files and the plain file go to a new directory under $TMPDIR\n"
    "(default /tmp), removed at the end.\n"
    "\n"
    "Exit status: 0 when every step worked, 1 when one failed, 2 for a bad\n"
    "command line.\n";

// parse_size reads --size into the size_t at ctx.
static int
parse_size(const char *prog, const char *s, void *ctx)
{
    size_t *out = ctx;
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 ||
        v < (1ull << 20) || v > (1ull << 40)) {
        return ra__tool_usage_error(prog, "--size needs a number of bytes "
                                    "from 1048576 to 2^40, not '%s'", s);
    }
    *out = (size_t)v;
    return RA_TOOL_OK;
}

int
ra__tool_bench_store(const char *prog, int argc, char **argv)
{
    opts_t o = {.repeat = 1};
    bool sized = false;
    const ra_bench_opt_t opts[] = {
        {.name = "size", .letter = 's', .flag = &sized, .parse = parse_size,
         .ctx = &o.size},
    };
    const ra_bench_cmd_t cmd = {
        .usage = usage,
        .max_repeat = 64,
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    const char *tmp = getenv("TMPDIR");
    ra_bench_args_t a;
    run_t *runs;
    int rc = ra__bench_parse_args(prog, &cmd, argc, argv, &a);

    if (rc != RA_TOOL_OK || a.help) {
        return rc;
    }
    o.quick = a.quick;
    o.repeat = a.repeat;
    if (!sized) {
        o.size = o.quick ? QUICK_LARGE_SIZE : LARGE_SIZE;
    }
    fit_size(&o);
    snprintf(o.dir, sizeof o.dir, "%s/rayo-bench-store-XXXXXX",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp");
    if (mkdtemp(o.dir) == NULL) {
        perror("rayo bench store: mkdtemp");
        return RA_TOOL_FAIL;
    }
    snprintf(o.spill, sizeof o.spill, "%s/spill", o.dir);
    if ((runs = calloc(o.repeat, sizeof *runs)) == NULL) {
        rmdir(o.dir);
        return fail("calloc", RA_ENOMEM);
    }
    for (unsigned i = 0; i < o.repeat && rc == RA_TOOL_OK; i++) {
        run_t *r = &runs[i];

        fprintf(stderr, "rayo bench store: run %u of %u (large objects: "
                "%zu bytes)\n", i + 1, o.repeat, o.size);
        if ((rc = bench_small(&o, r)) == RA_TOOL_OK) {
            rc = bench_large(&o, r);
        }
        if (rc == RA_TOOL_OK) {
            rc = bench_transfer(&o, r);
        }
        for (size_t k = 0; k < r->nlines; k++) {
            print_line(&r->lines[k], NULL, i + 1, o.repeat, o.size);
        }
    }
    if (rc == RA_TOOL_OK && o.repeat > 1) {
        print_medians(runs, o.repeat, o.size);
    }
    free(runs);
    rmdir(o.dir);
    return rc;
}

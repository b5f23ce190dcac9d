// check_objstore.c - tests of the shared-memory object store.
//
// One Suite, "objstore", with one TCase per behaviour group.  Every test
// makes a real store in /dev/shm (a name with this process's pid) and a
// spill directory under a mkdtemp directory, uses real forked processes
// for the multi-process and crash cases, and removes everything afterwards.
// Only the public header is used.  Loop sizes scale with RAYO_TEST_SCALE.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rayo.h"
#include "testutil.h"

// ---- helpers (test thread only, unless marked) -----------------------------

typedef struct fixture {
    char top[64];     // the mkdtemp directory
    char spill[96];   // the spill directory inside it
    char name[64];    // the store's name in /dev/shm
} fixture_t;

static void
setup(fixture_t *f)
{
    static unsigned seq;

    strcpy(f->top, "/tmp/rayo-objstore-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->top));
    snprintf(f->spill, sizeof f->spill, "%s/spill", f->top);
    snprintf(f->name, sizeof f->name, "rayo-test-%d-%u", (int)getpid(),
             seq++);
}

static void
teardown(fixture_t *f)
{
    char path[128];

    snprintf(path, sizeof path, "/dev/shm/%s", f->name);
    unlink(path);
    rmdir(f->spill);
    ck_assert_int_eq(rmdir(f->top), 0);
}

static ra_objstore_t *
create_store(const fixture_t *f, size_t capacity, uint32_t max_objects)
{
    ra_objstore_opts_t o = {.capacity = capacity,
                            .max_objects = max_objects,
                            .spill_dir = f->spill};
    ra_objstore_t *st = NULL;

    RA_CK_OK(ra_objstore_create(&st, f->name, &o));
    ck_assert_ptr_nonnull(st);
    return st;
}

static ra_oid_t
oid_of(uint64_t a, uint64_t b)
{
    ra_oid_t o;

    memcpy(o.b, &a, 8);
    memcpy(o.b + 8, &b, 8);
    return o;
}

// fill writes n bytes derived from seed (xorshift); safe in children.
static void
fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * UINT64_C(0x9e3779b97f4a7c15) + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

// same says whether the n bytes at p are what fill(seed) writes; safe in
// children.
static bool
same(const uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * UINT64_C(0x9e3779b97f4a7c15) + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (p[i] != (uint8_t)x) {
            return false;
        }
    }
    return true;
}

// put_seeded puts an object of n bytes of fill(seed); safe in children.
static int
put_seeded(ra_objstore_t *st, ra_oid_t oid, size_t n, uint64_t seed)
{
    void *p = NULL;
    int rc = ra_objstore_alloc(st, oid, n, &p);

    if (rc != 0) {
        return rc;
    }
    fill(p, n, seed);
    return ra_objstore_seal(st, oid);
}

// expect_seeded asserts that oid holds n bytes of fill(seed).
static void
expect_seeded(ra_objstore_t *st, ra_oid_t oid, size_t n, uint64_t seed)
{
    ra_objstore_view_t v;
    char hex[RA_OID_STRLEN];

    RA_CK_OK(ra_objstore_get(st, oid, 0, &v));
    ck_assert_ptr_nonnull(v.data);
    ck_assert_uint_eq(v.size, n);
    ck_assert_msg(same(v.data, n, seed), "object %s has wrong bytes",
                  ra_oid_str(oid, hex));
    RA_CK_OK(ra_objstore_release(st, &v));
    ck_assert_ptr_null(v.data);
}

static ra_objstore_stats_t
stats_of(ra_objstore_t *st)
{
    ra_objstore_stats_t s;

    RA_CK_OK(ra_objstore_stats(st, &s));
    return s;
}

static unsigned
count_spill_files(const fixture_t *f)
{
    DIR *d = opendir(f->spill);
    struct dirent *de;
    unsigned n = 0;

    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        n += strstr(de->d_name, ".spill") != NULL;
    }
    closedir(d);
    return n;
}

// wait_child waits for pid and returns its exit status, or 128 + signal.
static int
wait_child(pid_t pid)
{
    int status = 0;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status)
                             : 128 + WTERMSIG(status);
}

// ---- basic -----------------------------------------------------------------

START_TEST(test_objstore_oid_helpers)
{
    ra_oid_t a = oid_of(0x0123456789abcdefu, 0xfedcba9876543210u);
    ra_oid_t b = a;
    char hex[RA_OID_STRLEN];

    ck_assert(ra_oid_eq(a, b));
    b.b[15] ^= 1;
    ck_assert(!ra_oid_eq(a, b));
    ck_assert_str_eq(ra_oid_str(a, hex), "efcdab89674523011032547698badcfe");
}
END_TEST

START_TEST(test_objstore_alloc_seal_get)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_oid_t id = oid_of(1, 1);
    ra_objstore_view_t v, v2;
    ra_objstore_info_t info;
    ra_objstore_stats_t s;
    void *p = NULL;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    s = stats_of(st);
    ck_assert_uint_eq(s.capacity, 1 << 20);
    ck_assert_uint_eq(s.used, 0);
    ck_assert_uint_eq(s.clients, 1);
    RA_CK_OK(ra_objstore_alloc(st, id, 1000, &p));
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 64, 0);
    RA_CK_OK(ra_objstore_info(st, id, &info));
    ck_assert_int_eq(info.state, RA_OBJ_CREATING);
    ck_assert_int_eq(info.writer, (int)getpid());
    ck_assert_uint_eq(stats_of(st).creating, 1);
    // Readers do not see it until it is sealed.
    RA_CK_ERR(ra_objstore_get(st, id, 0, &v), RA_ETIMEOUT);
    ck_assert_ptr_null(v.data);
    fill(p, 1000, 7);
    RA_CK_OK(ra_objstore_seal(st, id));
    RA_CK_ERR(ra_objstore_seal(st, id), RA_EALREADY);
    RA_CK_ERR(ra_objstore_abort(st, id), RA_EALREADY);
    RA_CK_OK(ra_objstore_get(st, id, 0, &v));
    ck_assert_ptr_eq(v.data, p); // no copy: the same shared bytes
    ck_assert_uint_eq(v.size, 1000);
    ck_assert(same(v.data, 1000, 7));
    RA_CK_OK(ra_objstore_get(st, id, 0, &v2));
    RA_CK_OK(ra_objstore_info(st, id, &info));
    ck_assert_int_eq(info.state, RA_OBJ_SEALED);
    ck_assert_uint_eq(info.pins, 2);
    s = stats_of(st);
    ck_assert_uint_eq(s.objects, 1);
    ck_assert_uint_eq(s.creating, 0);
    ck_assert_uint_eq(s.pinned, 1);
    ck_assert_uint_eq(s.used, 64 + 1024);
    RA_CK_OK(ra_objstore_release(st, &v));
    RA_CK_ERR(ra_objstore_release(st, &v), RA_EINVAL); // twice
    RA_CK_OK(ra_objstore_release(st, &v2));
    ck_assert_uint_eq(stats_of(st).pinned, 0);
    // A one-shot put, and an empty object.
    RA_CK_OK(ra_objstore_put(st, oid_of(1, 2), "hello", 5));
    RA_CK_OK(ra_objstore_put(st, oid_of(1, 3), NULL, 0));
    RA_CK_OK(ra_objstore_get(st, oid_of(1, 2), 0, &v));
    ck_assert_int_eq(memcmp(v.data, "hello", 5), 0);
    RA_CK_OK(ra_objstore_release(st, &v));
    RA_CK_OK(ra_objstore_get(st, oid_of(1, 3), 0, &v));
    ck_assert_ptr_nonnull(v.data);
    ck_assert_uint_eq(v.size, 0);
    RA_CK_OK(ra_objstore_release(st, &v));
    // Delete gives the space back.
    RA_CK_OK(ra_objstore_delete(st, id));
    RA_CK_ERR(ra_objstore_delete(st, id), RA_ENOENT);
    RA_CK_ERR(ra_objstore_get(st, id, 0, &v), RA_ENOENT);
    RA_CK_OK(ra_objstore_delete(st, oid_of(1, 2)));
    RA_CK_OK(ra_objstore_delete(st, oid_of(1, 3)));
    s = stats_of(st);
    ck_assert_uint_eq(s.used, 0);
    ck_assert_uint_eq(s.objects, 0);
    ra_objstore_destroy(&st);
    ck_assert_ptr_null(st);
    ra_objstore_destroy(&st); // safe twice
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_get_unsealed_times_out)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;
    uint64_t t0;
    void *p;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    RA_CK_OK(ra_objstore_alloc(st, oid_of(2, 1), 100, &p));
    t0 = ra_test_now_ms();
    RA_CK_ERR(ra_objstore_get(st, oid_of(2, 1), 150, &v), RA_ETIMEOUT);
    ck_assert_uint_ge(ra_test_now_ms() - t0, 140);
    // An id nobody made: RA_ENOENT after the wait.
    t0 = ra_test_now_ms();
    RA_CK_ERR(ra_objstore_get(st, oid_of(2, 2), 50, &v), RA_ENOENT);
    ck_assert_uint_ge(ra_test_now_ms() - t0, 45);
    RA_CK_OK(ra_objstore_abort(st, oid_of(2, 1)));
    RA_CK_ERR(ra_objstore_get(st, oid_of(2, 1), 0, &v), RA_ENOENT);
    ck_assert_uint_eq(stats_of(st).used, 0);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_get_waits_for_seal_in_other_process)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;
    pid_t pid;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ra_objstore_t *c = NULL;
        void *p = NULL;
        int rc = ra_objstore_attach(&c, f.name, NULL);

        if (rc == 0) {
            rc = ra_objstore_alloc(c, oid_of(3, 1), 5000, &p);
        }
        if (rc == 0) {
            ra_test_sleep_ms(100); // the parent is waiting by now
            fill(p, 5000, 31);
            rc = ra_objstore_seal(c, oid_of(3, 1));
        }
        ra_objstore_close(&c);
        _exit(rc == 0 ? 0 : 1);
    }
    RA_CK_OK(ra_objstore_get(st, oid_of(3, 1), 10000, &v));
    ck_assert(same(v.data, 5000, 31));
    RA_CK_OK(ra_objstore_release(st, &v));
    ck_assert_int_eq(wait_child(pid), 0);
    ck_assert_uint_eq(stats_of(st).clients, 1);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_duplicate_id)
{
    fixture_t f;
    ra_objstore_t *st;
    void *p;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    RA_CK_OK(ra_objstore_alloc(st, oid_of(4, 1), 10, &p));
    RA_CK_ERR(ra_objstore_alloc(st, oid_of(4, 1), 10, &p), RA_EEXIST);
    ck_assert_ptr_null(p);
    RA_CK_OK(ra_objstore_seal(st, oid_of(4, 1)));
    RA_CK_ERR(ra_objstore_put(st, oid_of(4, 1), "x", 1), RA_EEXIST);
    // A spilled object still owns its id.
    RA_CK_OK(ra_objstore_ref(st, oid_of(4, 1)));
    RA_CK_OK(ra_objstore_spill(st, oid_of(4, 1)));
    RA_CK_ERR(ra_objstore_put(st, oid_of(4, 1), "x", 1), RA_EEXIST);
    // After delete the id is free again.
    RA_CK_OK(ra_objstore_delete(st, oid_of(4, 1)));
    RA_CK_OK(ra_objstore_put(st, oid_of(4, 1), "x", 1));
    ck_assert_uint_eq(stats_of(st).objects, 1);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_too_large)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_stats_t s;
    void *p = &p;

    setup(&f);
    st = create_store(&f, 256 << 10, 0);
    s = stats_of(st);
    RA_CK_ERR(ra_objstore_alloc(st, oid_of(5, 1), s.capacity + 1, &p),
              -ENOSPC);
    ck_assert_ptr_null(p);
    RA_CK_ERR(ra_objstore_alloc(st, oid_of(5, 1), s.capacity, &p), -ENOSPC);
    RA_CK_ERR(ra_objstore_alloc(st, oid_of(5, 1), SIZE_MAX, &p), -ENOSPC);
    RA_CK_ERR(ra_objstore_put(st, oid_of(5, 1), "x", SIZE_MAX - 10),
              -ENOSPC);
    // The largest object that fits: the whole arena less one header.
    RA_CK_OK(ra_objstore_alloc(st, oid_of(5, 1), s.capacity - 64, &p));
    ck_assert_uint_eq(stats_of(st).used, s.capacity);
    // Nothing else fits now, and nothing can be evicted.
    RA_CK_ERR(ra_objstore_put(st, oid_of(5, 2), "x", 1), RA_EFULL);
    RA_CK_OK(ra_objstore_abort(st, oid_of(5, 1)));
    RA_CK_OK(ra_objstore_put(st, oid_of(5, 2), "x", 1));
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_bad_arguments)
{
    fixture_t f;
    ra_objstore_t *st = NULL;
    ra_objstore_opts_t o = {.capacity = 1000};
    ra_objstore_view_t v = {0};
    ra_objstore_stats_t s;
    char path[128];
    void *p;
    FILE *fp;

    setup(&f);
    RA_CK_ERR(ra_objstore_create(NULL, f.name, NULL), RA_EINVAL);
    RA_CK_ERR(ra_objstore_create(&st, NULL, NULL), RA_EINVAL);
    RA_CK_ERR(ra_objstore_create(&st, "", NULL), RA_EINVAL);
    RA_CK_ERR(ra_objstore_create(&st, f.name, &o), RA_EINVAL); // tiny
    o = (ra_objstore_opts_t){.capacity = 1 << 20, .max_clients = 1};
    RA_CK_ERR(ra_objstore_create(&st, f.name, &o), RA_EINVAL);
    ck_assert_ptr_null(st);
    RA_CK_ERR(ra_objstore_attach(&st, f.name, NULL), RA_ENOENT);
    // A file that is not a store.
    snprintf(path, sizeof path, "/dev/shm/%s", f.name);
    fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    for (int i = 0; i < 10000; i++) {
        fputs("not a store ", fp);
    }
    fclose(fp);
    RA_CK_ERR(ra_objstore_attach(&st, f.name, NULL), RA_EBADMSG);
    ck_assert_ptr_null(st);
    st = create_store(&f, 1 << 20, 0); // replaces the junk
    RA_CK_ERR(ra_objstore_alloc(NULL, oid_of(1, 1), 1, &p), RA_EINVAL);
    RA_CK_ERR(ra_objstore_alloc(st, oid_of(1, 1), 1, NULL), RA_EINVAL);
    RA_CK_ERR(ra_objstore_seal(st, oid_of(1, 1)), RA_ENOENT);
    RA_CK_ERR(ra_objstore_abort(st, oid_of(1, 1)), RA_ENOENT);
    RA_CK_ERR(ra_objstore_get(st, oid_of(1, 1), 0, NULL), RA_EINVAL);
    RA_CK_ERR(ra_objstore_release(st, &v), RA_EINVAL);
    RA_CK_ERR(ra_objstore_put(st, oid_of(1, 1), NULL, 5), RA_EINVAL);
    RA_CK_ERR(ra_objstore_ref(st, oid_of(1, 1)), RA_ENOENT);
    RA_CK_ERR(ra_objstore_unref(st, oid_of(1, 1)), RA_ENOENT);
    RA_CK_OK(ra_objstore_put(st, oid_of(1, 1), "x", 1));
    RA_CK_ERR(ra_objstore_unref(st, oid_of(1, 1)), RA_EINVAL);
    RA_CK_ERR(ra_objstore_stats(st, NULL), RA_EINVAL);
    RA_CK_ERR(ra_objstore_stats(NULL, &s), RA_EINVAL);
    RA_CK_ERR(ra_objstore_sweep(NULL, NULL), RA_EINVAL);
    ck_assert_str_eq(ra_objstore_path(st), path);
    ra_objstore_close(NULL);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_handle_unusable_after_fork)
{
    fixture_t f;
    ra_objstore_t *st;
    pid_t pid;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ra_objstore_stats_t s;
        int ok = ra_objstore_stats(st, &s) == RA_EINVAL &&
                 ra_objstore_put(st, oid_of(9, 9), "x", 1) == RA_EINVAL;

        ra_objstore_close(&st); // unmaps only: the parent's slot stays
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_eq(wait_child(pid), 0);
    ck_assert_uint_eq(stats_of(st).clients, 1);
    RA_CK_OK(ra_objstore_put(st, oid_of(9, 9), "x", 1));
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_delete_pinned)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v, v2;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    RA_CK_OK(put_seeded(st, oid_of(6, 1), 3000, 61));
    RA_CK_OK(ra_objstore_get(st, oid_of(6, 1), 0, &v));
    RA_CK_OK(ra_objstore_delete(st, oid_of(6, 1)));
    RA_CK_ERR(ra_objstore_get(st, oid_of(6, 1), 0, &v2), RA_ENOENT);
    ck_assert_uint_eq(stats_of(st).objects, 0);
    // The pinned bytes stay until the release, even under a new object
    // with the same id.
    RA_CK_OK(put_seeded(st, oid_of(6, 1), 3000, 62));
    ck_assert(same(v.data, 3000, 61));
    expect_seeded(st, oid_of(6, 1), 3000, 62);
    RA_CK_OK(ra_objstore_release(st, &v));
    RA_CK_OK(ra_objstore_delete(st, oid_of(6, 1)));
    ck_assert_uint_eq(stats_of(st).used, 0);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_recreate_starts_clean)
{
    fixture_t f;
    ra_objstore_t *st, *old = NULL;
    ra_objstore_view_t v;
    ra_objstore_stats_t s;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    RA_CK_OK(put_seeded(st, oid_of(7, 1), 1000, 71));
    RA_CK_OK(put_seeded(st, oid_of(7, 2), 1000, 72));
    RA_CK_OK(ra_objstore_ref(st, oid_of(7, 2)));
    RA_CK_OK(ra_objstore_spill(st, oid_of(7, 2)));
    ck_assert_uint_eq(count_spill_files(&f), 1);
    RA_CK_OK(ra_objstore_attach(&old, f.name, NULL));
    ra_objstore_close(&st);
    st = create_store(&f, 2 << 20, 0);
    s = stats_of(st);
    ck_assert_uint_eq(s.capacity, 2 << 20);
    ck_assert_uint_eq(s.objects, 0);
    ck_assert_uint_eq(s.used, 0);
    ck_assert_uint_eq(s.clients, 1);
    ck_assert_uint_eq(count_spill_files(&f), 0);
    RA_CK_ERR(ra_objstore_get(st, oid_of(7, 1), 0, &v), RA_ENOENT);
    // A process attached to the old store keeps it (its memory part).
    expect_seeded(old, oid_of(7, 1), 1000, 71);
    ra_objstore_close(&old);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// ---- eviction --------------------------------------------------------------

START_TEST(test_objstore_evict_lru_order)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;
    ra_objstore_stats_t s;
    const size_t obj = 8192 - 64; // one 8 KiB block each
    uint32_t n;

    setup(&f);
    st = create_store(&f, 64 << 10, 0);
    n = (uint32_t)(stats_of(st).capacity / 8192);
    ck_assert_uint_eq(n, 8);
    for (uint32_t i = 0; i < n; i++) {
        RA_CK_OK(put_seeded(st, oid_of(10, i), obj, i));
    }
    ck_assert_uint_eq(stats_of(st).used, stats_of(st).capacity);
    // Use 0 and 2 again: now 1 is the least recently used, then 3.
    RA_CK_OK(ra_objstore_get(st, oid_of(10, 0), 0, &v));
    RA_CK_OK(ra_objstore_release(st, &v));
    RA_CK_OK(ra_objstore_get(st, oid_of(10, 2), 0, &v));
    RA_CK_OK(ra_objstore_release(st, &v));
    RA_CK_OK(put_seeded(st, oid_of(10, 100), obj, 100));
    RA_CK_ERR(ra_objstore_get(st, oid_of(10, 1), 0, &v), RA_ENOENT);
    expect_seeded(st, oid_of(10, 0), obj, 0);
    RA_CK_OK(put_seeded(st, oid_of(10, 101), obj, 101));
    RA_CK_ERR(ra_objstore_get(st, oid_of(10, 3), 0, &v), RA_ENOENT);
    // One object of two blocks evicts the next two in order: 4 and 5.
    RA_CK_OK(put_seeded(st, oid_of(10, 102), 2 * obj, 102));
    RA_CK_ERR(ra_objstore_get(st, oid_of(10, 4), 0, &v), RA_ENOENT);
    RA_CK_ERR(ra_objstore_get(st, oid_of(10, 5), 0, &v), RA_ENOENT);
    expect_seeded(st, oid_of(10, 6), obj, 6);
    expect_seeded(st, oid_of(10, 2), obj, 2);
    s = stats_of(st);
    ck_assert_uint_eq(s.evictions, 4);
    ck_assert_uint_eq(s.spills, 0);
    ck_assert_uint_eq(s.objects, 7);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_pin_prevents_eviction)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v[8];
    const size_t obj = 8192 - 64;

    setup(&f);
    st = create_store(&f, 64 << 10, 0);
    for (uint32_t i = 0; i < 8; i++) {
        RA_CK_OK(put_seeded(st, oid_of(11, i), obj, i));
        RA_CK_OK(ra_objstore_get(st, oid_of(11, i), 0, &v[i]));
    }
    ck_assert_uint_eq(stats_of(st).pinned, 8);
    RA_CK_ERR(put_seeded(st, oid_of(11, 100), obj, 100), RA_EFULL);
    ck_assert_uint_eq(stats_of(st).evictions, 0);
    // Releasing 5 makes exactly it evictable.
    RA_CK_OK(ra_objstore_release(st, &v[5]));
    RA_CK_OK(put_seeded(st, oid_of(11, 100), obj, 100));
    RA_CK_ERR(ra_objstore_get(st, oid_of(11, 5), 0, &v[5]), RA_ENOENT);
    for (uint32_t i = 0; i < 8; i++) {
        if (i != 5) {
            ck_assert(same(v[i].data, obj, i));
            RA_CK_OK(ra_objstore_release(st, &v[i]));
        }
    }
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_object_table_full)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;

    setup(&f);
    st = create_store(&f, 1 << 20, 16);
    for (uint32_t i = 0; i < 16; i++) {
        RA_CK_OK(ra_objstore_put(st, oid_of(12, i), "x", 1));
        RA_CK_OK(ra_objstore_ref(st, oid_of(12, i)));
    }
    // Full table, everything referenced: spilling frees no entry.
    RA_CK_ERR(ra_objstore_put(st, oid_of(12, 100), "x", 1), RA_EFULL);
    RA_CK_OK(ra_objstore_unref(st, oid_of(12, 3)));
    RA_CK_OK(ra_objstore_put(st, oid_of(12, 100), "y", 1));
    RA_CK_ERR(ra_objstore_get(st, oid_of(12, 3), 0, &v), RA_ENOENT);
    ck_assert_uint_eq(stats_of(st).objects, 16);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// ---- spilling --------------------------------------------------------------

START_TEST(test_objstore_spill_and_restore)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_stats_t s;
    ra_objstore_info_t info;
    const size_t obj = 64 << 10;
    const uint32_t n = 40; // 2.5 MiB into a 1 MiB store

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    for (uint32_t i = 0; i < n; i++) {
        void *p = NULL;

        RA_CK_OK(ra_objstore_alloc(st, oid_of(13, i), obj, &p));
        RA_CK_OK(ra_objstore_ref(st, oid_of(13, i))); // before the seal
        fill(p, obj, 1300 + i);
        RA_CK_OK(ra_objstore_seal(st, oid_of(13, i)));
    }
    s = stats_of(st);
    ck_assert_uint_eq(s.objects, n);
    ck_assert_uint_eq(s.evictions, 0);
    ck_assert_uint_ge(s.spills, n - 16);
    ck_assert_uint_eq(s.spilled, s.spills);
    ck_assert_uint_eq(s.spilled_bytes, s.spilled * obj);
    // A spill writes a batch of objects into one file.
    ck_assert_uint_ge(count_spill_files(&f), 1);
    ck_assert_uint_le(count_spill_files(&f), s.spilled);
    RA_CK_OK(ra_objstore_info(st, oid_of(13, 0), &info));
    ck_assert_int_eq(info.state, RA_OBJ_SPILLED);
    ck_assert_uint_eq(info.refs, 1);
    // Every object reads back byte for byte, restored where needed (which
    // spills others again).
    for (uint32_t i = 0; i < n; i++) {
        expect_seeded(st, oid_of(13, i), obj, 1300 + i);
    }
    s = stats_of(st);
    ck_assert_uint_ge(s.restores, n - 16);
    ck_assert_uint_eq(s.evictions, 0);
    // Restored objects keep their place in their files (a second spill
    // writes nothing), so the files stay while their objects live.
    ck_assert_uint_ge(count_spill_files(&f), 1);
    // Deleting spilled objects removes their files.
    for (uint32_t i = 0; i < n; i++) {
        RA_CK_OK(ra_objstore_delete(st, oid_of(13, i)));
    }
    s = stats_of(st);
    ck_assert_uint_eq(s.spilled, 0);
    ck_assert_uint_eq(s.used, 0);
    ck_assert_uint_eq(count_spill_files(&f), 0);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// ra_objstore_delete_prefix: the objects of one owner (ids that start
// alike) go at once, wherever they are; others stay.
START_TEST(test_objstore_delete_prefix)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;
    ra_objstore_info_t info;
    const size_t obj = 64 << 10;
    const uint32_t n = 24; // 1.5 MiB into a 1 MiB store: some spill
    unsigned gone = 99;
    void *p = NULL;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    for (uint32_t i = 0; i < n; i++) {
        // Owner 21 (even i) and owner 22 (odd i), interleaved.
        RA_CK_OK(ra_objstore_alloc(st, oid_of(21 + i % 2, i), obj, &p));
        RA_CK_OK(ra_objstore_ref(st, oid_of(21 + i % 2, i)));
        fill(p, obj, 2100 + i);
        RA_CK_OK(ra_objstore_seal(st, oid_of(21 + i % 2, i)));
    }
    ck_assert_uint_ge(stats_of(st).spilled, 1);
    // One of owner 21's is pinned by a reader, one is being created.
    expect_seeded(st, oid_of(21, n - 2), obj, 2100 + n - 2);
    RA_CK_OK(ra_objstore_get(st, oid_of(21, n - 2), 0, &v));
    RA_CK_OK(ra_objstore_alloc(st, oid_of(21, 1000), 100, &p));
    RA_CK_OK(ra_objstore_delete_prefix(st, oid_of(21, 0).b, 8, &gone));
    ck_assert_uint_eq(gone, n / 2);
    for (uint32_t i = 0; i < n; i++) {
        if (i % 2 == 0) {
            RA_CK_ERR(ra_objstore_info(st, oid_of(21, i), &info),
                      RA_ENOENT);
        } else {
            expect_seeded(st, oid_of(22, i), obj, 2100 + i);
        }
    }
    ck_assert_uint_eq(stats_of(st).objects, n / 2);
    ck_assert_uint_eq(stats_of(st).creating, 1);
    // The reader still has its bytes; the writer still has its object.
    ck_assert(same(v.data, obj, 2100 + n - 2));
    RA_CK_OK(ra_objstore_release(st, &v));
    RA_CK_OK(ra_objstore_info(st, oid_of(21, 1000), &info));
    ck_assert_int_eq(info.state, RA_OBJ_CREATING);
    RA_CK_OK(ra_objstore_abort(st, oid_of(21, 1000)));
    // Nothing more to delete; bad arguments.
    RA_CK_OK(ra_objstore_delete_prefix(st, oid_of(21, 0).b, 8, &gone));
    ck_assert_uint_eq(gone, 0);
    RA_CK_ERR(ra_objstore_delete_prefix(st, oid_of(21, 0).b, 0, NULL),
              RA_EINVAL);
    RA_CK_ERR(ra_objstore_delete_prefix(st, oid_of(21, 0).b, 17, NULL),
              RA_EINVAL);
    RA_CK_ERR(ra_objstore_delete_prefix(st, NULL, 8, NULL), RA_EINVAL);
    RA_CK_ERR(ra_objstore_delete_prefix(NULL, oid_of(21, 0).b, 8, NULL),
              RA_EINVAL);
    // Owner 22's go too: the store is empty, its spill files removed.
    RA_CK_OK(ra_objstore_delete_prefix(st, oid_of(22, 0).b, 8, NULL));
    ck_assert_uint_eq(stats_of(st).objects, 0);
    ck_assert_uint_eq(stats_of(st).used, 0);
    ck_assert_uint_eq(count_spill_files(&f), 0);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// Small objects spill many to a file: creating a file costs far more than
// writing a kilobyte.
START_TEST(test_objstore_small_objects_spill_in_batches)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_stats_t s;
    const uint32_t n = 3000; // 3 MiB of 1000-byte objects into 1 MiB

    setup(&f);
    st = create_store(&f, 1 << 20, 4096);
    for (uint32_t i = 0; i < n; i++) {
        RA_CK_OK(put_seeded(st, oid_of(18, i), 1000, 1800 + i));
        RA_CK_OK(ra_objstore_ref(st, oid_of(18, i)));
    }
    s = stats_of(st);
    ck_assert_uint_ge(s.spills, n / 2);
    ck_assert_uint_le(count_spill_files(&f), s.spills / 16);
    for (uint32_t i = 0; i < n; i++) {
        expect_seeded(st, oid_of(18, i), 1000, 1800 + i);
    }
    // Freeing the objects of a file one by one frees the file with the
    // last of them.
    for (uint32_t i = 0; i < n; i++) {
        RA_CK_OK(ra_objstore_delete(st, oid_of(18, i)));
    }
    ck_assert_uint_eq(count_spill_files(&f), 0);
    ck_assert_uint_eq(stats_of(st).used, 0);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_unreferenced_evicted_before_spill)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_stats_t s;
    ra_objstore_view_t v;
    const size_t obj = 8192 - 64;

    setup(&f);
    st = create_store(&f, 64 << 10, 0);
    for (uint32_t i = 0; i < 8; i++) {
        RA_CK_OK(put_seeded(st, oid_of(14, i), obj, i));
        if (i < 4) {
            RA_CK_OK(ra_objstore_ref(st, oid_of(14, i)));
        }
    }
    // 0-3 are referenced and older; 4-7 go first, then 0 is spilled.
    for (uint32_t i = 0; i < 5; i++) {
        RA_CK_OK(put_seeded(st, oid_of(14, 100 + i), obj, 100 + i));
        RA_CK_OK(ra_objstore_ref(st, oid_of(14, 100 + i)));
    }
    s = stats_of(st);
    ck_assert_uint_eq(s.evictions, 4);
    ck_assert_uint_eq(s.spills, 1);
    for (uint32_t i = 4; i < 8; i++) {
        RA_CK_ERR(ra_objstore_get(st, oid_of(14, i), 0, &v), RA_ENOENT);
    }
    for (uint32_t i = 0; i < 4; i++) {
        expect_seeded(st, oid_of(14, i), obj, i);
    }
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_pin_prevents_spill)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v[8];
    const size_t obj = 8192 - 64;

    setup(&f);
    st = create_store(&f, 64 << 10, 0);
    for (uint32_t i = 0; i < 8; i++) {
        RA_CK_OK(put_seeded(st, oid_of(15, i), obj, i));
        RA_CK_OK(ra_objstore_ref(st, oid_of(15, i)));
        RA_CK_OK(ra_objstore_get(st, oid_of(15, i), 0, &v[i]));
    }
    RA_CK_ERR(ra_objstore_spill(st, oid_of(15, 0)), RA_EAGAIN);
    RA_CK_ERR(put_seeded(st, oid_of(15, 100), obj, 100), RA_EFULL);
    ck_assert_uint_eq(stats_of(st).spills, 0);
    ck_assert_uint_eq(count_spill_files(&f), 0);
    RA_CK_OK(ra_objstore_release(st, &v[6]));
    RA_CK_OK(put_seeded(st, oid_of(15, 100), obj, 100));
    ck_assert_uint_eq(stats_of(st).spills, 1);
    for (uint32_t i = 0; i < 8; i++) {
        if (i != 6) {
            ck_assert(same(v[i].data, obj, i));
            RA_CK_OK(ra_objstore_release(st, &v[i]));
        }
    }
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_no_spill)
{
    fixture_t f;
    ra_objstore_t *st = NULL;
    ra_objstore_opts_t o = {.capacity = 64 << 10, .no_spill = true};

    setup(&f);
    RA_CK_OK(ra_objstore_create(&st, f.name, &o));
    for (uint32_t i = 0; i < 8; i++) {
        RA_CK_OK(put_seeded(st, oid_of(16, i), 8192 - 64, i));
        RA_CK_OK(ra_objstore_ref(st, oid_of(16, i)));
    }
    RA_CK_ERR(ra_objstore_spill(st, oid_of(16, 0)), RA_ENOTSUP);
    RA_CK_ERR(put_seeded(st, oid_of(16, 100), 100, 100), RA_EFULL);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// full_store puts many referenced objects of random sizes, four times the
// capacity in all, each put must find room by spilling; then every object
// reads back, in random order, with the right bytes.
START_TEST(test_objstore_full_store_with_spilling)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_stats_t s;
    unsigned seed = ra_test_seed("full_store_with_spilling");
    const size_t cap = 4 << 20;
    uint32_t n = 0;
    size_t *sizes, total = 0;

    setup(&f);
    st = create_store(&f, cap, 0);
    sizes = calloc(4096, sizeof *sizes);
    ck_assert_ptr_nonnull(sizes);
    srand(seed);
    while (total < 4 * cap && n < 4096) {
        sizes[n] = (size_t)rand() % (256 << 10);
        RA_CK_OK(put_seeded(st, oid_of(17, n), sizes[n], 1700 + n));
        RA_CK_OK(ra_objstore_ref(st, oid_of(17, n)));
        total += sizes[n];
        n++;
    }
    s = stats_of(st);
    ck_assert_uint_eq(s.objects, n);
    ck_assert_uint_gt(s.spilled, 0);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)rand() % n;

        expect_seeded(st, oid_of(17, i), sizes[i], 1700 + i);
    }
    s = stats_of(st);
    ck_assert_uint_eq(s.evictions, 0);
    ck_assert_uint_gt(s.restores, 0);
    ck_assert_uint_le(s.used, s.capacity);
    for (uint32_t i = 0; i < n; i++) {
        RA_CK_OK(ra_objstore_delete(st, oid_of(17, i)));
    }
    s = stats_of(st);
    ck_assert_uint_eq(s.used, 0);
    ck_assert_uint_eq(s.spilled, 0);
    ck_assert_uint_eq(count_spill_files(&f), 0);
    free(sizes);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// ---- concurrency -----------------------------------------------------------

// A worker (thread or process) puts its own objects, reads the objects of
// the others (waiting for them), checks every byte, and deletes some of
// its own.  Object (w, i) has size_of(w, i) bytes of fill(seed_of(w, i)).
#define NWORKERS 4

static size_t
size_of(uint32_t w, uint32_t i)
{
    return ((size_t)(w * 7919u + i * 104729u) % 30000u) + 1;
}

static uint64_t
seed_of(uint32_t w, uint32_t i)
{
    return ((uint64_t)w << 32) | i;
}

// worker_run returns 0 when every check passed, else a line number; safe
// in children and threads (no assertions).  progress[w] is how many
// objects worker w has sealed: a reader waits for an object only while its
// writer has not reached it, since an object that was sealed and then
// evicted looks, to a get, like one not made yet.
static int
worker_steps(ra_objstore_t *st, uint32_t w, uint32_t nops,
             atomic_uint *progress)
{
    for (uint32_t i = 0; i < nops; i++) {
        ra_objstore_view_t v;
        uint32_t other = (w + 1 + i % (NWORKERS - 1)) % NWORKERS;
        uint64_t deadline = ra_test_now_ms() + 20000;
        int rc;

        if (put_seeded(st, oid_of(w, i), size_of(w, i), seed_of(w, i)) !=
            0) {
            return __LINE__;
        }
        atomic_store(&progress[w], i + 1);
        // Every third object is referenced for a while (so some spill and
        // come back), the others may be evicted at once.
        if (i % 3 == 0 && ra_objstore_ref(st, oid_of(w, i)) != 0 &&
            ra_objstore_get(st, oid_of(w, i), 0, &v) != RA_ENOENT) {
            return __LINE__; // only eviction may beat the ref
        }
        if (i >= 300 && i % 3 == 0 &&
            (rc = ra_objstore_unref(st, oid_of(w, i - 300))) != 0 &&
            rc != RA_ENOENT && rc != RA_EINVAL) {
            return __LINE__; // evicted before the ref, or deleted
        }
        // An older referenced object of its own: likely spilled by now.
        if (i >= 150 && i % 7 == 0) {
            uint32_t j = (i - 150) / 3 * 3;

            rc = ra_objstore_get(st, oid_of(w, j), 0, &v);
            if (rc == 0 && (v.size != size_of(w, j) ||
                            !same(v.data, v.size, seed_of(w, j)) ||
                            ra_objstore_release(st, &v) != 0)) {
                return __LINE__;
            }
            if (rc != 0 && rc != RA_ENOENT) {
                return __LINE__;
            }
        }
        // The other worker's object i: wait for it in short slices (which
        // exercises the wait for a seal) until its writer got past it.
        do {
            bool written = atomic_load(&progress[other]) > i;

            rc = ra_objstore_get(st, oid_of(other, i), written ? 0 : 2,
                                 &v);
            if (written || (rc != RA_ENOENT && rc != RA_ETIMEOUT)) {
                break;
            }
        } while (ra_test_now_ms() < deadline);
        if (rc == 0) {
            if (v.size != size_of(other, i) ||
                !same(v.data, v.size, seed_of(other, i))) {
                return __LINE__;
            }
            if (ra_objstore_release(st, &v) != 0) {
                return __LINE__;
            }
        } else if (rc != RA_ENOENT) {
            return __LINE__;
        }
        if (i % 5 == 4 && ra_objstore_delete(st, oid_of(w, i - 2)) != 0 &&
            ra_objstore_get(st, oid_of(w, i - 2), 0, &v) != RA_ENOENT) {
            return __LINE__;
        }
    }
    return 0;
}

// worker_run runs the steps; a worker that fails says it is past every
// object, so that the others do not wait for objects it will never make.
static int
worker_run(ra_objstore_t *st, uint32_t w, uint32_t nops,
           atomic_uint *progress)
{
    int rc = worker_steps(st, w, nops, progress);

    if (rc != 0) {
        atomic_store(&progress[w], UINT32_MAX);
    }
    return rc;
}

typedef struct thread_arg {
    ra_objstore_t *st;
    uint32_t w;
    uint32_t nops;
    atomic_uint *progress;
    int rc;
} thread_arg_t;

static void *
worker_thread(void *arg)
{
    thread_arg_t *a = arg;

    a->rc = worker_run(a->st, a->w, a->nops, a->progress);
    return NULL;
}

static void
check_idle(ra_objstore_t *st)
{
    ra_objstore_stats_t s = stats_of(st);

    fprintf(stderr, "concurrency: %" PRIu64 " evictions, %" PRIu64
            " spills, %" PRIu64 " restores\n", s.evictions, s.spills,
            s.restores);

    ck_assert_uint_eq(s.creating, 0);
    ck_assert_uint_eq(s.pinned, 0);
    ck_assert_uint_le(s.used, s.capacity);
}

START_TEST(test_objstore_concurrent_threads)
{
    fixture_t f;
    ra_objstore_t *st;
    pthread_t th[NWORKERS];
    thread_arg_t args[NWORKERS];
    atomic_uint progress[NWORKERS] = {0};
    uint32_t nops = (uint32_t)ra_test_scaled(2000);

    setup(&f);
    st = create_store(&f, 4 << 20, 16384);
    for (uint32_t w = 0; w < NWORKERS; w++) {
        args[w] = (thread_arg_t){.st = st, .w = w, .nops = nops,
                                 .progress = progress};
        ck_assert_int_eq(
            pthread_create(&th[w], NULL, worker_thread, &args[w]), 0);
    }
    for (uint32_t w = 0; w < NWORKERS; w++) {
        pthread_join(th[w], NULL);
        ck_assert_msg(args[w].rc == 0, "worker %u failed at line %d", w,
                      args[w].rc);
    }
    check_idle(st);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_concurrent_processes)
{
    fixture_t f;
    ra_objstore_t *st;
    pid_t pids[NWORKERS];
    uint32_t nops = (uint32_t)ra_test_scaled(3000);
    atomic_uint *progress =
        mmap(NULL, sizeof *progress * NWORKERS, PROT_READ | PROT_WRITE,
             MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ck_assert_ptr_ne(progress, MAP_FAILED);
    setup(&f);
    st = create_store(&f, 4 << 20, 16384);
    for (uint32_t w = 0; w < NWORKERS; w++) {
        pids[w] = fork();
        ck_assert_int_ge(pids[w], 0);
        if (pids[w] == 0) {
            ra_objstore_t *c = NULL;
            int rc = ra_objstore_attach(&c, f.name, NULL);

            if (rc == 0) {
                rc = worker_run(c, w, nops, progress);
            }
            ra_objstore_close(&c);
            _exit(rc == 0 ? 0 : rc % 250 + 1);
        }
    }
    for (uint32_t w = 0; w < NWORKERS; w++) {
        int status = wait_child(pids[w]);

        ck_assert_msg(status == 0, "worker %u exited with %d", w, status);
    }
    check_idle(st);
    ck_assert_uint_eq(stats_of(st).clients, 1);
    munmap(progress, sizeof *progress * NWORKERS);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// ---- crashes ---------------------------------------------------------------

START_TEST(test_objstore_writer_killed_mid_put)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;
    ra_objstore_info_t info;
    ra_objstore_stats_t s0, s;
    unsigned reclaimed = 0;
    pid_t pid;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    RA_CK_OK(put_seeded(st, oid_of(20, 0), 1000, 200));
    s0 = stats_of(st);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ra_objstore_t *c = NULL;
        void *p = NULL;

        if (ra_objstore_attach(&c, f.name, NULL) == 0 &&
            ra_objstore_alloc(c, oid_of(20, 1), 500000, &p) == 0) {
            memset(p, 0xab, 250000); // half written
            raise(SIGKILL);
        }
        _exit(1);
    }
    ck_assert_int_eq(wait_child(pid), 128 + SIGKILL);
    RA_CK_OK(ra_objstore_info(st, oid_of(20, 1), &info));
    ck_assert_int_eq(info.state, RA_OBJ_CREATING);
    ck_assert_int_eq(info.writer, (int)pid);
    ck_assert_uint_gt(stats_of(st).used, s0.used);
    RA_CK_OK(ra_objstore_sweep(st, &reclaimed));
    ck_assert_uint_eq(reclaimed, 1);
    RA_CK_ERR(ra_objstore_get(st, oid_of(20, 1), 0, &v), RA_ENOENT);
    s = stats_of(st);
    ck_assert_uint_eq(s.used, s0.used);
    ck_assert_uint_eq(s.creating, 0);
    ck_assert_uint_eq(s.clients, 1);
    ck_assert_uint_eq(s.reclaimed, 1);
    expect_seeded(st, oid_of(20, 0), 1000, 200);
    RA_CK_OK(put_seeded(st, oid_of(20, 1), 500000, 201));
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// A get waiting for an object whose writer died does not wait out its
// timeout: it finds the writer dead, sweeps, and says the object is gone.
START_TEST(test_objstore_get_sees_dead_writer)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;
    int fds[2];
    char c = 0;
    uint64_t t0;
    pid_t pid;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ra_objstore_t *cs = NULL;
        void *p = NULL;

        close(fds[0]);
        if (ra_objstore_attach(&cs, f.name, NULL) == 0 &&
            ra_objstore_alloc(cs, oid_of(23, 1), 100, &p) == 0 &&
            write(fds[1], "a", 1) == 1) {
            ra_test_sleep_ms(300);
            raise(SIGKILL);
        }
        _exit(1);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    close(fds[0]);
    t0 = ra_test_now_ms();
    RA_CK_ERR(ra_objstore_get(st, oid_of(23, 1), 30000, &v), RA_ENOENT);
    ck_assert_uint_lt(ra_test_now_ms() - t0, 10000);
    ck_assert_int_eq(wait_child(pid), 128 + SIGKILL);
    ck_assert_uint_eq(stats_of(st).used, 0);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// A dead writer's space comes back by itself when an allocation needs it.
START_TEST(test_objstore_dead_writer_reclaimed_under_pressure)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_stats_t s;
    pid_t pid;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ra_objstore_t *c = NULL;
        void *p = NULL;

        if (ra_objstore_attach(&c, f.name, NULL) == 0 &&
            ra_objstore_alloc(c, oid_of(21, 1), 900000, &p) == 0) {
            raise(SIGKILL);
        }
        _exit(1);
    }
    ck_assert_int_eq(wait_child(pid), 128 + SIGKILL);
    RA_CK_OK(put_seeded(st, oid_of(21, 2), 900000, 212));
    s = stats_of(st);
    ck_assert_uint_eq(s.reclaimed, 1);
    ck_assert_uint_eq(s.creating, 0);
    expect_seeded(st, oid_of(21, 2), 900000, 212);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

START_TEST(test_objstore_reader_killed_holding_pin)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_info_t info;
    ra_objstore_stats_t s;
    unsigned reclaimed = 0;
    int fds[2];
    char c = 0;
    pid_t pid;

    setup(&f);
    st = create_store(&f, 1 << 20, 0);
    RA_CK_OK(put_seeded(st, oid_of(22, 1), 40000, 221));
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ra_objstore_t *cs = NULL;
        ra_objstore_view_t v;

        close(fds[0]);
        if (ra_objstore_attach(&cs, f.name, NULL) == 0 &&
            ra_objstore_get(cs, oid_of(22, 1), 0, &v) == 0 &&
            write(fds[1], "p", 1) == 1) {
            raise(SIGKILL);
        }
        _exit(1);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    close(fds[0]);
    ck_assert_int_eq(wait_child(pid), 128 + SIGKILL);
    RA_CK_OK(ra_objstore_info(st, oid_of(22, 1), &info));
    ck_assert_uint_eq(info.pins, 1);
    ck_assert_uint_eq(stats_of(st).clients, 2);
    // Deleted while the dead process still pins it: the space stays...
    RA_CK_OK(ra_objstore_delete(st, oid_of(22, 1)));
    ck_assert_uint_gt(stats_of(st).used, 0);
    // ... until the sweep releases the dead process's pin.
    RA_CK_OK(ra_objstore_sweep(st, &reclaimed));
    ck_assert_uint_eq(reclaimed, 1);
    s = stats_of(st);
    ck_assert_uint_eq(s.pinned, 0);
    ck_assert_uint_eq(s.used, 0);
    ck_assert_uint_eq(s.clients, 1);
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

// A process killed at random moments of a busy loop dies, now and then,
// inside the store's lock.  Whatever it was doing, the store stays
// consistent: every visible object has its bytes, and once everything is
// deleted the whole arena is one free block again.
START_TEST(test_objstore_killed_at_random_moments)
{
    fixture_t f;
    ra_objstore_t *st;
    ra_objstore_view_t v;
    ra_objstore_stats_t s;
    unsigned seed = ra_test_seed("killed_at_random_moments");
    uint32_t rounds = (uint32_t)ra_test_scaled(30);
    void *p;

    setup(&f);
    st = create_store(&f, 2 << 20, 8192);
    srand(seed);
    for (uint32_t r = 0; r < rounds; r++) {
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            ra_objstore_t *c = NULL;

            if (ra_objstore_attach(&c, f.name, NULL) != 0) {
                _exit(1);
            }
            for (uint32_t i = 0;; i++) {
                ra_oid_t id = oid_of(30 + r, i % 64);
                size_t n = size_of(r, i) % 20000;

                if (put_seeded(c, id, n, seed_of(r, i % 64) + n) == 0 &&
                    i % 2 == 0) {
                    ra_objstore_ref(c, id);
                }
                if (ra_objstore_get(c, oid_of(30 + r, (i + 7) % 64), 0,
                                    &v) == 0) {
                    ra_objstore_release(c, &v);
                }
                if (i % 3 == 0) {
                    ra_objstore_delete(c, oid_of(30 + r, (i + 32) % 64));
                }
            }
        }
        ra_test_sleep_ms(1 + (unsigned)rand() % 15);
        kill(pid, SIGKILL);
        ck_assert_int_eq(wait_child(pid), 128 + SIGKILL);
        RA_CK_OK(ra_objstore_sweep(st, NULL));
    }
    s = stats_of(st);
    fprintf(stderr, "killed_at_random_moments: %u kills, %" PRIu64
            " lock repairs, %" PRIu64 " objects left\n", rounds, s.repairs,
            s.objects);
    ck_assert_uint_eq(s.creating, 0);
    ck_assert_uint_eq(s.pinned, 0);
    ck_assert_uint_eq(s.clients, 1);
    for (uint32_t r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < 64; i++) {
            ra_oid_t id = oid_of(30 + r, i);

            if (ra_objstore_get(st, id, 0, &v) != 0) {
                continue;
            }
            ck_assert_msg(same(v.data, v.size, seed_of(r, i) + v.size),
                          "round %u object %u has wrong bytes", r, i);
            RA_CK_OK(ra_objstore_release(st, &v));
            RA_CK_OK(ra_objstore_delete(st, id));
        }
    }
    s = stats_of(st);
    ck_assert_uint_eq(s.objects, 0);
    ck_assert_uint_eq(s.spilled, 0);
    ck_assert_uint_eq(s.used, 0);
    ck_assert_uint_eq(count_spill_files(&f), 0);
    RA_CK_OK(ra_objstore_alloc(st, oid_of(99, 0), s.capacity - 64, &p));
    RA_CK_OK(ra_objstore_abort(st, oid_of(99, 0)));
    ra_objstore_destroy(&st);
    teardown(&f);
}
END_TEST

static Suite *
objstore_suite(void)
{
    Suite *s = suite_create("objstore");
    TCase *tc;

    tc = tcase_create("basic");
    tcase_add_test(tc, test_objstore_oid_helpers);
    tcase_add_test(tc, test_objstore_alloc_seal_get);
    tcase_add_test(tc, test_objstore_get_unsealed_times_out);
    tcase_add_test(tc, test_objstore_get_waits_for_seal_in_other_process);
    tcase_add_test(tc, test_objstore_duplicate_id);
    tcase_add_test(tc, test_objstore_too_large);
    tcase_add_test(tc, test_objstore_bad_arguments);
    tcase_add_test(tc, test_objstore_handle_unusable_after_fork);
    tcase_add_test(tc, test_objstore_delete_pinned);
    tcase_add_test(tc, test_objstore_recreate_starts_clean);
    suite_add_tcase(s, tc);

    tc = tcase_create("evict");
    tcase_add_test(tc, test_objstore_evict_lru_order);
    tcase_add_test(tc, test_objstore_pin_prevents_eviction);
    tcase_add_test(tc, test_objstore_object_table_full);
    suite_add_tcase(s, tc);

    tc = tcase_create("spill");
    tcase_add_test(tc, test_objstore_spill_and_restore);
    tcase_add_test(tc, test_objstore_small_objects_spill_in_batches);
    tcase_add_test(tc, test_objstore_unreferenced_evicted_before_spill);
    tcase_add_test(tc, test_objstore_pin_prevents_spill);
    tcase_add_test(tc, test_objstore_no_spill);
    tcase_add_test(tc, test_objstore_full_store_with_spilling);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_objstore_delete_prefix);
    suite_add_tcase(s, tc);

    tc = tcase_create("concurrency");
    tcase_add_test(tc, test_objstore_concurrent_threads);
    tcase_add_test(tc, test_objstore_concurrent_processes);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);

    tc = tcase_create("crash");
    tcase_add_test(tc, test_objstore_writer_killed_mid_put);
    tcase_add_test(tc, test_objstore_get_sees_dead_writer);
    tcase_add_test(tc, test_objstore_dead_writer_reclaimed_under_pressure);
    tcase_add_test(tc, test_objstore_reader_killed_holding_pin);
    tcase_add_test(tc, test_objstore_killed_at_random_moments);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(objstore_suite());
}

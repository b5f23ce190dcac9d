// check_table.c - tests of the LMDB-backed tables.
//
// One Suite, "table", with one TCase per behaviour group.  Every test works
// on real LMDB files in a fresh directory under a mkdtemp directory, and
// removes them afterwards.  Only the public header is used.
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rayo.h"
#include "testutil.h"

// ---- helpers (test thread only) -----------------------------------------

typedef struct fixture {
    char top[64];   // the mkdtemp directory
    char dir[96];   // the database directory inside it, made by open
} fixture_t;

static void
setup(fixture_t *f)
{
    strcpy(f->top, "/tmp/rayo-table-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(f->top));
    snprintf(f->dir, sizeof(f->dir), "%s/db", f->top);
}

static void
teardown(fixture_t *f)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[160];

    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", f->dir, files[i]);
        unlink(path);
    }
    rmdir(f->dir);
    ck_assert_int_eq(rmdir(f->top), 0);
}

static ra_tables_t *
open_tables(const fixture_t *f, const ra_tables_opts_t *opts)
{
    ra_tables_t *t = NULL;

    RA_CK_OK(ra_tables_open(&t, f->dir, opts));
    ck_assert_ptr_nonnull(t);
    return t;
}

static int
put_str(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
        const char *key, const char *val)
{
    return ra_table_put(t, txn, table, key, strlen(key), val, strlen(val), 0);
}

// expect_val asserts that key in table holds exactly the string want.
static void
expect_val(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
           const char *key, const char *want)
{
    void *val = NULL;
    size_t len = 0;

    RA_CK_OK(ra_table_get(t, txn, table, key, strlen(key), &val, &len));
    ck_assert_ptr_nonnull(val);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_msg(memcmp(val, want, len) == 0, "%s/%s is \"%.*s\", not %s",
                  table, key, (int)len, (const char *)val, want);
    free(val);
}

static void
expect_missing(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
               const char *key)
{
    RA_CK_ERR(ra_table_get(t, txn, table, key, strlen(key), NULL, NULL),
              RA_ENOENT);
}

// A scan collects the keys it sees, joined by spaces, and stops after
// `limit` entries when limit is not 0.
typedef struct seen {
    char keys[512];
    unsigned n;
    unsigned limit;
} seen_t;

static int
collect(void *user, const void *key, size_t klen, const void *val,
        size_t vlen)
{
    seen_t *s = user;
    size_t used = strlen(s->keys);

    (void)val;
    (void)vlen;
    snprintf(s->keys + used, sizeof(s->keys) - used, "%s%.*s",
             used > 0 ? " " : "", (int)klen, (const char *)key);
    s->n++;
    return s->limit != 0 && s->n == s->limit ? 42 : 0;
}

// ---- basic: put, get, delete ---------------------------------------------

START_TEST(test_table_put_get_delete_round_trip)
{
    fixture_t f;
    ra_tables_t *t;
    const unsigned char bin[] = {0, 1, 2, 0xff, 0};
    void *val = NULL;
    size_t len = 0;

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(put_str(t, NULL, "nodes", "n1", "alive"));
    expect_val(t, NULL, "nodes", "n1", "alive");
    RA_CK_OK(put_str(t, NULL, "nodes", "n1", "dead"));   // overwrite
    expect_val(t, NULL, "nodes", "n1", "dead");
    // Values are bytes: embedded NULs and an empty value survive.
    RA_CK_OK(ra_table_put(t, NULL, "nodes", "bin", 3, bin, sizeof(bin), 0));
    RA_CK_OK(ra_table_get(t, NULL, "nodes", "bin", 3, &val, &len));
    ck_assert_uint_eq(len, sizeof(bin));
    ck_assert_int_eq(memcmp(val, bin, len), 0);
    free(val);
    val = NULL;
    RA_CK_OK(ra_table_put(t, NULL, "nodes", "empty", 5, NULL, 0, 0));
    len = 99;
    RA_CK_OK(ra_table_get(t, NULL, "nodes", "empty", 5, &val, &len));
    ck_assert_ptr_nonnull(val);
    ck_assert_uint_eq(len, 0);
    free(val);
    RA_CK_OK(ra_table_get(t, NULL, "nodes", "n1", 2, NULL, &len));
    ck_assert_uint_eq(len, 4);
    RA_CK_OK(ra_table_delete(t, NULL, "nodes", "n1", 2));
    expect_missing(t, NULL, "nodes", "n1");
    RA_CK_ERR(ra_table_delete(t, NULL, "nodes", "n1", 2), RA_ENOENT);
    // A table never written does not exist.
    expect_missing(t, NULL, "jobs", "j1");
    RA_CK_ERR(ra_table_delete(t, NULL, "jobs", "j1", 2), RA_ENOENT);
    ra_tables_close(&t);
    ck_assert_ptr_null(t);
    ra_tables_close(&t);            // safe twice
    teardown(&f);
}
END_TEST

START_TEST(test_table_put_nooverwrite)
{
    fixture_t f;
    ra_tables_t *t;

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(ra_table_put(t, NULL, "names", "a", 1, "1", 1,
                          RA_TABLE_NOOVERWRITE));
    RA_CK_ERR(ra_table_put(t, NULL, "names", "a", 1, "2", 1,
                           RA_TABLE_NOOVERWRITE), RA_EEXIST);
    expect_val(t, NULL, "names", "a", "1");
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

START_TEST(test_table_multiple_tables)
{
    fixture_t f;
    ra_tables_t *t;
    ra_tables_opts_t opts = {.max_tables = 3};

    setup(&f);
    t = open_tables(&f, &opts);
    RA_CK_OK(put_str(t, NULL, "nodes", "k", "node"));
    RA_CK_OK(put_str(t, NULL, "jobs", "k", "job"));
    RA_CK_OK(put_str(t, NULL, "actors", "k", "actor"));
    expect_val(t, NULL, "nodes", "k", "node");
    expect_val(t, NULL, "jobs", "k", "job");
    expect_val(t, NULL, "actors", "k", "actor");
    RA_CK_OK(ra_table_delete(t, NULL, "jobs", "k", 1));
    expect_val(t, NULL, "nodes", "k", "node");
    expect_missing(t, NULL, "jobs", "k");
    // One table more than max_tables is refused, and nothing else breaks.
    RA_CK_ERR(put_str(t, NULL, "kv", "k", "kv"), RA_EFULL);
    expect_val(t, NULL, "actors", "k", "actor");
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

// ---- scan ------------------------------------------------------------------

START_TEST(test_table_scan_prefix_in_key_order)
{
    fixture_t f;
    ra_tables_t *t;
    static const char *const keys[] = {"b/2", "a/1", "b/10", "c", "b/1",
                                       "b", "b/"};
    seen_t s = {0};

    setup(&f);
    t = open_tables(&f, NULL);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        RA_CK_OK(put_str(t, NULL, "kv", keys[i], "v"));
    }
    RA_CK_OK(ra_table_scan(t, NULL, "kv", "b/", 2, collect, &s));
    ck_assert_str_eq(s.keys, "b/ b/1 b/10 b/2");
    ck_assert_uint_eq(s.n, 4);
    memset(&s, 0, sizeof(s));
    RA_CK_OK(ra_table_scan(t, NULL, "kv", NULL, 0, collect, &s));
    ck_assert_str_eq(s.keys, "a/1 b b/ b/1 b/10 b/2 c");
    // A non-zero return stops the scan and comes back.
    memset(&s, 0, sizeof(s));
    s.limit = 2;
    ck_assert_int_eq(ra_table_scan(t, NULL, "kv", "b", 1, collect, &s), 42);
    ck_assert_str_eq(s.keys, "b b/");
    // No match past the end, nothing in an empty range, no table.
    memset(&s, 0, sizeof(s));
    RA_CK_OK(ra_table_scan(t, NULL, "kv", "d", 1, collect, &s));
    RA_CK_OK(ra_table_scan(t, NULL, "kv", "a/2", 3, collect, &s));
    ck_assert_uint_eq(s.n, 0);
    RA_CK_ERR(ra_table_scan(t, NULL, "none", NULL, 0, collect, &s),
              RA_ENOENT);
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

// ---- explicit transactions -------------------------------------------------

START_TEST(test_table_txn_visible_after_commit)
{
    fixture_t f;
    ra_tables_t *t;
    ra_tables_txn_t *txn = NULL;
    seen_t s = {0};

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(put_str(t, NULL, "nodes", "n1", "old"));
    RA_CK_OK(ra_tables_begin(t, &txn));
    ck_assert_ptr_nonnull(txn);
    RA_CK_OK(put_str(t, txn, "nodes", "n1", "new"));
    RA_CK_OK(put_str(t, txn, "actors", "a1", "on n1"));   // a new table
    // A missing key does not abort the transaction.
    RA_CK_ERR(ra_table_delete(t, txn, "nodes", "gone", 4), RA_ENOENT);
    // Reads through the transaction see its writes; others do not.
    expect_val(t, txn, "nodes", "n1", "new");
    expect_val(t, txn, "actors", "a1", "on n1");
    RA_CK_OK(ra_table_scan(t, txn, "actors", "a", 1, collect, &s));
    ck_assert_str_eq(s.keys, "a1");
    expect_val(t, NULL, "nodes", "n1", "old");
    expect_missing(t, NULL, "actors", "a1");
    RA_CK_OK(ra_tables_commit(&txn));
    ck_assert_ptr_null(txn);
    expect_val(t, NULL, "nodes", "n1", "new");
    expect_val(t, NULL, "actors", "a1", "on n1");
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

START_TEST(test_table_txn_abort_leaves_nothing)
{
    fixture_t f;
    ra_tables_t *t;
    ra_tables_txn_t *txn = NULL;

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(put_str(t, NULL, "nodes", "n1", "old"));
    RA_CK_OK(ra_tables_begin(t, &txn));
    RA_CK_OK(put_str(t, txn, "nodes", "n1", "new"));
    RA_CK_OK(put_str(t, txn, "nodes", "n2", "new"));
    RA_CK_OK(put_str(t, txn, "jobs", "j1", "new"));       // a new table
    ra_tables_abort(&txn);
    ck_assert_ptr_null(txn);
    ra_tables_abort(&txn);                                // safe on NULL
    expect_val(t, NULL, "nodes", "n1", "old");
    expect_missing(t, NULL, "nodes", "n2");
    expect_missing(t, NULL, "jobs", "j1");
    // The aborted table can still be created afterwards.
    RA_CK_OK(put_str(t, NULL, "jobs", "j2", "later"));
    expect_val(t, NULL, "jobs", "j2", "later");
    expect_missing(t, NULL, "jobs", "j1");
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

START_TEST(test_table_txn_same_thread_write_is_edeadlk)
{
    fixture_t f;
    ra_tables_t *t;
    ra_tables_txn_t *txn = NULL;
    ra_tables_txn_t *second = NULL;

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(ra_tables_begin(t, &txn));
    // These would wait on LMDB's writer lock, held by this very thread.
    RA_CK_ERR(put_str(t, NULL, "nodes", "n1", "x"), RA_EDEADLK);
    RA_CK_ERR(ra_tables_begin(t, &second), RA_EDEADLK);
    ck_assert_ptr_null(second);
    // Reads without a transaction are fine meanwhile.
    expect_missing(t, NULL, "nodes", "n1");
    RA_CK_OK(put_str(t, txn, "nodes", "n1", "y"));
    RA_CK_OK(ra_tables_commit(&txn));
    RA_CK_OK(put_str(t, NULL, "nodes", "n2", "z"));
    expect_val(t, NULL, "nodes", "n1", "y");
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

// ---- restart ---------------------------------------------------------------

START_TEST(test_table_reopen_keeps_data)
{
    fixture_t f;
    ra_tables_t *t;
    seen_t s = {0};

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(put_str(t, NULL, "nodes", "n1", "alive"));
    RA_CK_OK(put_str(t, NULL, "names", "ns/a", "pid1"));
    RA_CK_OK(put_str(t, NULL, "names", "ns/b", "pid2"));
    ra_tables_close(&t);
    // A restarted head opens the same directory and finds every table.
    t = open_tables(&f, NULL);
    expect_val(t, NULL, "nodes", "n1", "alive");
    RA_CK_OK(ra_table_scan(t, NULL, "names", "ns/", 3, collect, &s));
    ck_assert_str_eq(s.keys, "ns/a ns/b");
    RA_CK_OK(put_str(t, NULL, "nodes", "n2", "alive"));
    ra_tables_close(&t);
    t = open_tables(&f, NULL);
    expect_val(t, NULL, "nodes", "n2", "alive");
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

// The child opens the tables itself (an environment must not cross fork),
// writes inside a transaction it never commits, tells the parent, and
// waits to be killed.
static void
child_write_forever(const char *dir, int ready_fd)
{
    ra_tables_t *t = NULL;
    ra_tables_txn_t *txn = NULL;
    char key[32];

    if (ra_tables_open(&t, dir, NULL) != 0 || ra_tables_begin(t, &txn) != 0) {
        _exit(2);
    }
    for (unsigned i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "partial/%04u", i);
        if (put_str(t, txn, "nodes", key, "half") != 0) {
            _exit(3);
        }
    }
    if (put_str(t, txn, "fresh", "k", "half") != 0 ||
        put_str(t, txn, "nodes", "base", "overwritten") != 0 ||
        write(ready_fd, "r", 1) != 1) {
        _exit(4);
    }
    for (;;) {
        pause();
    }
}

START_TEST(test_table_sigkill_mid_txn_leaves_db_consistent)
{
    fixture_t f;
    ra_tables_t *t;
    int fds[2];
    char c;
    pid_t pid;
    int status = 0;
    seen_t s = {0};

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(put_str(t, NULL, "nodes", "base", "committed"));
    ra_tables_close(&t);
    ck_assert_int_eq(pipe(fds), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_write_forever(f.dir, fds[1]);
    }
    close(fds[1]);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    close(fds[0]);
    // Open while the child holds the writer lock, then kill it: the next
    // write must take over the lock the dead child left.
    t = open_tables(&f, NULL);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    expect_val(t, NULL, "nodes", "base", "committed");
    RA_CK_OK(put_str(t, NULL, "nodes", "after", "kill"));
    RA_CK_OK(ra_table_scan(t, NULL, "nodes", NULL, 0, collect, &s));
    ck_assert_str_eq(s.keys, "after base");
    ra_tables_close(&t);
    // And a fresh open (a restarted head) sees the same.
    t = open_tables(&f, NULL);
    expect_val(t, NULL, "nodes", "base", "committed");
    expect_val(t, NULL, "nodes", "after", "kill");
    expect_missing(t, NULL, "nodes", "partial/0000");
    expect_missing(t, NULL, "fresh", "k");
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

// ---- limits ----------------------------------------------------------------

START_TEST(test_table_map_full_is_efull_and_keeps_data)
{
    fixture_t f;
    ra_tables_t *t;
    ra_tables_txn_t *txn = NULL;
    ra_tables_opts_t opts = {.map_size = (size_t)1 << 20};
    static char big[16384];
    char key[32];
    unsigned i;
    int rc = 0;

    setup(&f);
    memset(big, 'x', sizeof(big));
    // A log line must tell the user to raise map_size.
    static ra_test_log_t advice;
    ra_test_log_start(&advice, RA_LOG_ERR, "store", "map_size");
    t = open_tables(&f, &opts);
    RA_CK_OK(put_str(t, NULL, "kv", "base", "committed"));
    for (i = 0; i < 1000 && rc == 0; i++) {
        snprintf(key, sizeof(key), "fill/%04u", i);
        rc = ra_table_put(t, NULL, "kv", key, strlen(key), big,
                          sizeof(big), 0);
    }
    RA_CK_ERR(rc, RA_EFULL);
    ck_assert_int_gt(ra_test_log_caught(&advice, NULL, 0), 0);
    expect_missing(t, NULL, "kv", key);     // the failed put left nothing
    expect_val(t, NULL, "kv", "base", "committed");
    // In a transaction the first RA_EFULL aborts it all.
    RA_CK_OK(ra_table_delete(t, NULL, "kv", "fill/0000", 9));
    RA_CK_OK(ra_tables_begin(t, &txn));
    RA_CK_OK(put_str(t, txn, "kv", "txn", "small"));
    rc = 0;
    for (i = 0; i < 1000 && rc == 0; i++) {
        snprintf(key, sizeof(key), "more/%04u", i);
        rc = ra_table_put(t, txn, "kv", key, strlen(key), big, sizeof(big),
                          0);
    }
    RA_CK_ERR(rc, RA_EFULL);
    RA_CK_ERR(put_str(t, txn, "kv", "late", "x"), RA_EFULL);
    RA_CK_ERR(ra_tables_commit(&txn), RA_EFULL);
    ck_assert_ptr_null(txn);
    expect_missing(t, NULL, "kv", "txn");
    expect_missing(t, NULL, "kv", "more/0000");
    // Small writes still fit, and everything survives a reopen.
    RA_CK_OK(put_str(t, NULL, "kv", "after", "full"));
    ra_tables_close(&t);
    t = open_tables(&f, &opts);
    expect_val(t, NULL, "kv", "base", "committed");
    expect_val(t, NULL, "kv", "after", "full");
    expect_missing(t, NULL, "kv", "txn");
    ra_tables_close(&t);
    ra_test_log_stop();
    teardown(&f);
}
END_TEST

// ---- arguments -------------------------------------------------------------

START_TEST(test_table_bad_arguments_are_einval)
{
    fixture_t f;
    ra_tables_t *t = NULL;
    ra_tables_txn_t *txn = NULL;
    ra_tables_opts_t bad_dur = {.durability = (ra_durability_t)7};
    ra_tables_opts_t bad_max = {.max_tables = 1u << 20};
    size_t max;
    char *long_key;
    seen_t s = {0};

    setup(&f);
    RA_CK_ERR(ra_tables_open(NULL, f.dir, NULL), RA_EINVAL);
    RA_CK_ERR(ra_tables_open(&t, NULL, NULL), RA_EINVAL);
    RA_CK_ERR(ra_tables_open(&t, "", NULL), RA_EINVAL);
    RA_CK_ERR(ra_tables_open(&t, f.dir, &bad_dur), RA_EINVAL);
    RA_CK_ERR(ra_tables_open(&t, f.dir, &bad_max), RA_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_uint_eq(ra_tables_max_key(NULL), 0);
    t = open_tables(&f, NULL);
    max = ra_tables_max_key(t);
    ck_assert_uint_gt(max, 0);
    long_key = malloc(max + 2);
    ck_assert_ptr_nonnull(long_key);
    memset(long_key, 'k', max + 1);
    long_key[max + 1] = '\0';

    RA_CK_ERR(ra_table_put(NULL, NULL, "t", "k", 1, "v", 1, 0), RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, NULL, "k", 1, "v", 1, 0), RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, "", "k", 1, "v", 1, 0), RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, long_key, "k", 1, "v", 1, 0), RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, "t", NULL, 1, "v", 1, 0), RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, "t", "k", 0, "v", 1, 0), RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, "t", long_key, max + 1, "v", 1, 0),
              RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, "t", "k", 1, NULL, 1, 0), RA_EINVAL);
    RA_CK_ERR(ra_table_put(t, NULL, "t", "k", 1, "v", 1, 0x80), RA_EINVAL);
    RA_CK_OK(ra_table_put(t, NULL, "t", long_key, max, "v", 1, 0));

    RA_CK_ERR(ra_table_get(NULL, NULL, "t", "k", 1, NULL, NULL), RA_EINVAL);
    RA_CK_ERR(ra_table_get(t, NULL, "", "k", 1, NULL, NULL), RA_EINVAL);
    RA_CK_ERR(ra_table_get(t, NULL, "t", NULL, 1, NULL, NULL), RA_EINVAL);
    RA_CK_ERR(ra_table_get(t, NULL, "t", long_key, max + 1, NULL, NULL),
              RA_EINVAL);
    RA_CK_ERR(ra_table_delete(t, NULL, NULL, "k", 1), RA_EINVAL);
    RA_CK_ERR(ra_table_delete(t, NULL, "t", "k", 0), RA_EINVAL);
    RA_CK_ERR(ra_table_scan(t, NULL, "t", NULL, 0, NULL, &s), RA_EINVAL);
    RA_CK_ERR(ra_table_scan(t, NULL, "t", NULL, 1, collect, &s), RA_EINVAL);
    RA_CK_ERR(ra_table_scan(t, NULL, "", NULL, 0, collect, &s), RA_EINVAL);
    RA_CK_ERR(ra_table_scan(t, NULL, "t", long_key, max + 1, collect, &s),
              RA_EINVAL);

    RA_CK_ERR(ra_tables_begin(NULL, &txn), RA_EINVAL);
    RA_CK_ERR(ra_tables_begin(t, NULL), RA_EINVAL);
    RA_CK_ERR(ra_tables_commit(NULL), RA_EINVAL);
    RA_CK_ERR(ra_tables_commit(&txn), RA_EINVAL);
    // A bad argument does not abort an explicit transaction.
    RA_CK_OK(ra_tables_begin(t, &txn));
    RA_CK_ERR(ra_table_put(t, txn, "t", "k", 0, "v", 1, 0), RA_EINVAL);
    RA_CK_OK(ra_table_put(t, txn, "t", "k", 1, "v", 1, 0));
    RA_CK_OK(ra_tables_commit(&txn));
    expect_val(t, NULL, "t", "k", "v");
    free(long_key);
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

// ---- files -----------------------------------------------------------------

START_TEST(test_table_dir_0700_files_0600)
{
    fixture_t f;
    ra_tables_t *t;
    struct stat st;
    char path[160];

    setup(&f);
    t = open_tables(&f, NULL);
    RA_CK_OK(put_str(t, NULL, "kv", "k", "v"));
    ck_assert_int_eq(stat(f.dir, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    snprintf(path, sizeof(path), "%s/data.mdb", f.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    snprintf(path, sizeof(path), "%s/lock.mdb", f.dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ra_tables_close(&t);
    teardown(&f);
}
END_TEST

START_TEST(test_table_not_a_directory_fails)
{
    fixture_t f;
    ra_tables_t *t = NULL;
    FILE *fp;

    setup(&f);
    fp = fopen(f.dir, "w");         // a plain file where the dir should be
    ck_assert_ptr_nonnull(fp);
    fclose(fp);
    RA_CK_ERR(ra_tables_open(&t, f.dir, NULL), -ENOTDIR);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(unlink(f.dir), 0);
    teardown(&f);
}
END_TEST

START_TEST(test_table_durability_modes_work)
{
    static const ra_durability_t modes[] = {RA_DURABLE_FULL,
                                            RA_DURABLE_DATA};
    fixture_t f;
    ra_tables_t *t;
    ra_tables_txn_t *txn = NULL;

    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        ra_tables_opts_t opts = {.durability = modes[i]};

        setup(&f);
        t = open_tables(&f, &opts);
        RA_CK_OK(put_str(t, NULL, "kv", "a", "1"));
        RA_CK_OK(ra_tables_begin(t, &txn));
        RA_CK_OK(put_str(t, txn, "kv", "b", "2"));
        RA_CK_OK(ra_tables_commit(&txn));
        ra_tables_close(&t);
        t = open_tables(&f, &opts);
        expect_val(t, NULL, "kv", "a", "1");
        expect_val(t, NULL, "kv", "b", "2");
        ra_tables_close(&t);
        teardown(&f);
    }
}
END_TEST

// ---- threads ---------------------------------------------------------------

enum { NREADERS = 4, NTABLES = 8 };

typedef struct race {
    ra_tables_t *t;
    atomic_bool stop;
    atomic_uint found;      // reads that saw a committed table
    atomic_uint bad;        // reads that returned anything else than 0/ENOENT
} race_t;

static void *
reader_main(void *arg)
{
    race_t *r = arg;
    char table[16];
    void *val;
    size_t len;
    int rc;

    while (!atomic_load(&r->stop)) {
        for (unsigned i = 0; i < NTABLES; i++) {
            snprintf(table, sizeof(table), "t%u", i);
            val = NULL;
            rc = ra_table_get(r->t, NULL, table, "k", 1, &val, &len);
            if (rc == 0 && len == 1 && memcmp(val, "v", 1) == 0) {
                atomic_fetch_add(&r->found, 1);
            } else if (rc != RA_ENOENT) {
                atomic_fetch_add(&r->bad, 1);
            }
            free(val);
        }
    }
    return NULL;
}

// Tables are created by write transactions (half of them first aborted)
// while other threads read them: a reader sees a table whole or not at all.
START_TEST(test_table_tables_created_while_threads_read)
{
    fixture_t f;
    race_t r = {0};
    pthread_t readers[NREADERS];
    ra_tables_txn_t *txn = NULL;
    char table[16];
    seen_t s = {0};

    setup(&f);
    r.t = open_tables(&f, NULL);
    for (unsigned i = 0; i < NREADERS; i++) {
        ck_assert_int_eq(pthread_create(&readers[i], NULL, reader_main, &r),
                         0);
    }
    for (unsigned i = 0; i < NTABLES; i++) {
        snprintf(table, sizeof(table), "t%u", i);
        RA_CK_OK(ra_tables_begin(r.t, &txn));
        RA_CK_OK(put_str(r.t, txn, table, "k", "v"));
        ra_test_sleep_ms(2);
        if (i % 2 == 1) {
            ra_tables_abort(&txn);
            RA_CK_OK(put_str(r.t, NULL, table, "k", "v"));
        } else {
            RA_CK_OK(ra_tables_commit(&txn));
        }
        ra_test_sleep_ms(2);
    }
    RA_CK_WAIT(atomic_load(&r.found) >= NREADERS * NTABLES, 5000);
    atomic_store(&r.stop, true);
    for (unsigned i = 0; i < NREADERS; i++) {
        pthread_join(readers[i], NULL);
    }
    ck_assert_uint_eq(atomic_load(&r.bad), 0);
    RA_CK_OK(ra_table_scan(r.t, NULL, "t7", NULL, 0, collect, &s));
    ck_assert_str_eq(s.keys, "k");
    ra_tables_close(&r.t);
    teardown(&f);
}
END_TEST

static Suite *
table_suite(void)
{
    Suite *s = suite_create("table");
    TCase *tc;

    tc = tcase_create("basic");
    tcase_add_test(tc, test_table_put_get_delete_round_trip);
    tcase_add_test(tc, test_table_put_nooverwrite);
    tcase_add_test(tc, test_table_multiple_tables);
    suite_add_tcase(s, tc);

    tc = tcase_create("scan");
    tcase_add_test(tc, test_table_scan_prefix_in_key_order);
    suite_add_tcase(s, tc);

    tc = tcase_create("txn");
    tcase_add_test(tc, test_table_txn_visible_after_commit);
    tcase_add_test(tc, test_table_txn_abort_leaves_nothing);
    tcase_add_test(tc, test_table_txn_same_thread_write_is_edeadlk);
    suite_add_tcase(s, tc);

    tc = tcase_create("restart");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_table_reopen_keeps_data);
    tcase_add_test(tc, test_table_sigkill_mid_txn_leaves_db_consistent);
    suite_add_tcase(s, tc);

    tc = tcase_create("limits");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_table_map_full_is_efull_and_keeps_data);
    tcase_add_test(tc, test_table_bad_arguments_are_einval);
    suite_add_tcase(s, tc);

    tc = tcase_create("files");
    tcase_add_test(tc, test_table_dir_0700_files_0600);
    tcase_add_test(tc, test_table_not_a_directory_fails);
    tcase_add_test(tc, test_table_durability_modes_work);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_table_tables_created_while_threads_read);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(table_suite());
}

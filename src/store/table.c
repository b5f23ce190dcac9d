// table.c - named tables of bytes in one LMDB environment.
//
// LMDB table handles (MDB_dbi) are process-wide, but opening one is not
// thread-safe: mdb_dbi_open must not run in two transactions at once, and a
// handle opened in a write transaction that aborts is closed again.  So
// handles are opened in two places only: at ra_tables_open, for every table
// already on disk, and inside write transactions, which LMDB serialises.  A
// handle opened by a write transaction is kept in the transaction's pending
// list and published to the shared cache only after its commit; read
// transactions use the cache alone and never call mdb_dbi_open.
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ra_error.h"
#include "ra_log.h"
#include "ra_table.h"

// LMDB stores dbi flags in 16 bits of its slot tables; far more tables than
// a GCS needs, and a bound that catches a garbage max_tables.
#define MAX_TABLES_LIMIT 32767u

typedef struct dbi_entry {
    char *name;
    MDB_dbi dbi;
} dbi_entry_t;

struct ra_tables {
    MDB_env *env;
    char *dir;
    size_t map_size;          // as LMDB rounded it, for the map-full log
    size_t max_key;
    unsigned max_tables;
    bool lock_ready;
    pthread_mutex_t lock;     // guards tables, ntables and the writer fields
    dbi_entry_t *tables;      // committed tables, max_tables slots
    unsigned ntables;
    bool writer_active;       // a write transaction of this handle is open
    pthread_t writer;         // the thread that owns it
};

struct ra_tables_txn {
    ra_tables_t *t;
    MDB_txn *txn;             // NULL once committed or aborted
    int err;                  // the error that aborted txn, sticky
    bool rdonly;
    pthread_t owner;
    dbi_entry_t *pending;     // tables first opened here, max_tables slots
    unsigned npending;
};

// translate turns an LMDB or system error into ours.  It is the only place
// where LMDB's codes are seen, so the map-full advice is logged here, once
// per failed call.
static int
translate(const ra_tables_t *t, int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return RA_ENOENT;
    case MDB_KEYEXIST:
        return RA_EEXIST;
    case MDB_MAP_FULL:
        ra_log_err("store", "%s: database map full (%zu bytes): raise "
                   "ra_tables_opts_t.map_size and reopen; the transaction "
                   "was rolled back", t->dir, t->map_size);
        return RA_EFULL;
    case MDB_DBS_FULL:
        ra_log_err("store", "%s: too many tables (max_tables %u): raise "
                   "ra_tables_opts_t.max_tables and reopen", t->dir,
                   t->max_tables);
        return RA_EFULL;
    case MDB_TXN_FULL:
        return RA_EFULL;
    case MDB_READERS_FULL:
    case MDB_MAP_RESIZED:
        return RA_EAGAIN;
    case MDB_BAD_VALSIZE:
    case MDB_BAD_DBI:
    case MDB_INCOMPATIBLE:
        return RA_EINVAL;
    case ENOMEM:
        return RA_ENOMEM;
    default:
        break;
    }
    if (rc > 0) {
        return -rc;
    }
    // Corruption, a version mismatch, a panic or an internal limit: none is
    // the caller's fault, and the LMDB text is the only useful detail.
    ra_log_err("store", "%s: lmdb: %s", t->dir, mdb_strerror(rc));
    return RA_EBADMSG;
}

static bool
cache_lookup(ra_tables_t *t, const char *name, MDB_dbi *dbi)
{
    bool found = false;

    pthread_mutex_lock(&t->lock);
    for (unsigned i = 0; i < t->ntables; i++) {
        if (strcmp(t->tables[i].name, name) == 0) {
            *dbi = t->tables[i].dbi;
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

// load_tables opens a handle for every table on disk.  Table names are the
// keys of LMDB's main database.  The read transaction is committed, not
// aborted, because only a commit keeps the handles it opened.
static int
load_tables(ra_tables_t *t)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi main_dbi;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_txn_begin(t->env, NULL, MDB_RDONLY, &txn)) != 0) {
        return translate(t, rc);
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
        (rc = mdb_cursor_open(txn, main_dbi, &cur)) != 0) {
        goto done;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char *name = strndup(k.mv_data, k.mv_size);
        MDB_dbi dbi;

        if (name == NULL) {
            rc = ENOMEM;
            break;
        }
        rc = mdb_dbi_open(txn, name, 0, &dbi);
        if (rc == MDB_INCOMPATIBLE) {
            free(name);         // a plain key someone else put there
            continue;
        }
        if (rc != 0 || t->ntables == t->max_tables) {
            free(name);
            rc = rc != 0 ? rc : MDB_DBS_FULL;
            break;
        }
        t->tables[t->ntables++] = (dbi_entry_t){name, dbi};
    }
    if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
done:
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else {
        mdb_txn_abort(txn);
    }
    return translate(t, rc);
}

int
ra_tables_open(ra_tables_t **out, const char *dir,
               const ra_tables_opts_t *opts)
{
    ra_tables_opts_t o = {0};
    ra_tables_t *t = NULL;
    unsigned flags = MDB_NOTLS;
    MDB_envinfo info;
    int dead = 0;
    int rc;

    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || dir == NULL || *dir == '\0') {
        return RA_EINVAL;
    }
    if (opts != NULL) {
        o = *opts;
    }
    o.map_size = o.map_size != 0 ? o.map_size : RA_TABLES_MAP_SIZE_DEFAULT;
    o.max_tables = o.max_tables != 0 ? o.max_tables : RA_TABLES_MAX_DEFAULT;
    if (o.max_tables > MAX_TABLES_LIMIT) {
        return RA_EINVAL;
    }
    switch (o.durability) {
    case RA_DURABLE_FULL:
        break;
    case RA_DURABLE_DATA:
        flags |= MDB_NOMETASYNC;    // never NOSYNC or MAPASYNC: see header
        break;
    default:
        return RA_EINVAL;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        return RA_ENOMEM;
    }
    t->max_tables = o.max_tables;
    t->map_size = o.map_size;
    t->dir = strdup(dir);
    t->tables = calloc(o.max_tables, sizeof(*t->tables));
    if (t->dir == NULL || t->tables == NULL) {
        rc = RA_ENOMEM;
        goto fail;
    }
    if ((rc = pthread_mutex_init(&t->lock, NULL)) != 0) {
        rc = -rc;
        goto fail;
    }
    t->lock_ready = true;
    if ((rc = mdb_env_create(&t->env)) != 0) {
        t->env = NULL;
        rc = translate(t, rc);
        goto fail;
    }
    if ((rc = mdb_env_set_mapsize(t->env, o.map_size)) != 0 ||
        (rc = mdb_env_set_maxdbs(t->env, o.max_tables)) != 0 ||
        (rc = mdb_env_open(t->env, dir, flags, 0600)) != 0) {
        rc = translate(t, rc);
        goto fail;
    }
    // A process that died inside a read transaction leaves its reader slot
    // taken, which pins old pages and makes the file grow; free them now.
    if ((rc = mdb_reader_check(t->env, &dead)) != 0) {
        rc = translate(t, rc);
        goto fail;
    }
    if (dead > 0) {
        ra_log_info("store", "%s: cleared %d stale reader slot(s)", dir, dead);
    }
    if (mdb_env_info(t->env, &info) == 0) {
        t->map_size = info.me_mapsize;
    }
    t->max_key = (size_t)mdb_env_get_maxkeysize(t->env);
    if ((rc = load_tables(t)) != 0) {
        goto fail;
    }
    *out = t;
    return 0;
fail:
    ra_tables_close(&t);
    return rc;
}

void
ra_tables_close(ra_tables_t **tp)
{
    ra_tables_t *t;

    if (tp == NULL || (t = *tp) == NULL) {
        return;
    }
    if (t->env != NULL) {
        mdb_env_close(t->env);      // closes every table handle too
    }
    for (unsigned i = 0; i < t->ntables; i++) {
        free(t->tables[i].name);
    }
    free(t->tables);
    free(t->dir);
    if (t->lock_ready) {
        pthread_mutex_destroy(&t->lock);
    }
    free(t);
    *tp = NULL;
}

size_t
ra_tables_max_key(const ra_tables_t *t)
{
    return t != NULL ? t->max_key : 0;
}

// txn_start begins an LMDB transaction for x.  A thread that asks for a
// second write transaction would wait forever on LMDB's writer lock, which
// it holds itself; it gets RA_EDEADLK instead.
static int
txn_start(ra_tables_t *t, ra_tables_txn_t *x, bool rdonly)
{
    bool mine;
    int rc;

    memset(x, 0, sizeof(*x));
    x->t = t;
    x->rdonly = rdonly;
    x->owner = pthread_self();
    if (!rdonly) {
        pthread_mutex_lock(&t->lock);
        mine = t->writer_active && pthread_equal(t->writer, x->owner);
        pthread_mutex_unlock(&t->lock);
        if (mine) {
            return RA_EDEADLK;
        }
    }
    rc = mdb_txn_begin(t->env, NULL, rdonly ? MDB_RDONLY : 0, &x->txn);
    if (rc != 0) {
        x->txn = NULL;
        return translate(t, rc);
    }
    if (!rdonly) {
        pthread_mutex_lock(&t->lock);
        t->writer_active = true;
        t->writer = x->owner;
        pthread_mutex_unlock(&t->lock);
    }
    return 0;
}

static void
drop_pending(ra_tables_txn_t *x)
{
    for (unsigned i = 0; i < x->npending; i++) {
        free(x->pending[i].name);
    }
    free(x->pending);
    x->pending = NULL;
    x->npending = 0;
}

// publish moves the handles of a committed transaction into the cache.
// LMDB returns the same handle for a name opened twice, so a name already
// cached is only freed.
static void
publish(ra_tables_txn_t *x)
{
    ra_tables_t *t = x->t;

    pthread_mutex_lock(&t->lock);
    for (unsigned i = 0; i < x->npending; i++) {
        bool known = false;

        for (unsigned j = 0; j < t->ntables && !known; j++) {
            known = strcmp(t->tables[j].name, x->pending[i].name) == 0;
        }
        if (!known && t->ntables < t->max_tables) {
            t->tables[t->ntables++] = x->pending[i];
            x->pending[i].name = NULL;
        }
    }
    pthread_mutex_unlock(&t->lock);
    drop_pending(x);
}

// txn_end commits or aborts x's LMDB transaction.  The writer mark is
// cleared before the LMDB call: once LMDB lets its writer lock go another
// thread may begin and set the mark, which must not be undone here.
static int
txn_end(ra_tables_txn_t *x, bool commit)
{
    ra_tables_t *t = x->t;
    int rc = 0;

    if (x->txn == NULL) {
        drop_pending(x);
        return 0;
    }
    if (!x->rdonly) {
        pthread_mutex_lock(&t->lock);
        t->writer_active = false;
        pthread_mutex_unlock(&t->lock);
    }
    if (commit && !x->rdonly) {
        rc = translate(t, mdb_txn_commit(x->txn)); // aborts on failure
    } else {
        mdb_txn_abort(x->txn);
    }
    x->txn = NULL;
    if (rc == 0 && commit) {
        publish(x);
    } else {
        drop_pending(x);            // LMDB closed these handles
    }
    return rc;
}

// table_dbi finds the handle of table for x, opening (and, with create,
// creating) it inside a write transaction when it is not cached yet.
static int
table_dbi(ra_tables_txn_t *x, const char *table, bool create, MDB_dbi *dbi)
{
    ra_tables_t *t = x->t;
    char *name;
    int rc;

    if (cache_lookup(t, table, dbi)) {
        return 0;
    }
    if (x->rdonly) {
        return RA_ENOENT;
    }
    for (unsigned i = 0; i < x->npending; i++) {
        if (strcmp(x->pending[i].name, table) == 0) {
            *dbi = x->pending[i].dbi;
            return 0;
        }
    }
    rc = mdb_dbi_open(x->txn, table, create ? MDB_CREATE : 0, dbi);
    if (rc != 0) {
        return translate(t, rc);
    }
    if (x->pending == NULL &&
        (x->pending = calloc(t->max_tables, sizeof(*x->pending))) == NULL) {
        return RA_ENOMEM;           // fatal: the abort closes the handle
    }
    if ((name = strdup(table)) == NULL) {
        return RA_ENOMEM;
    }
    x->pending[x->npending++] = (dbi_entry_t){name, *dbi};
    return 0;
}

static bool
bad_name(const ra_tables_t *t, const char *table)
{
    return table == NULL || *table == '\0' || strlen(table) > t->max_key;
}

static bool
bad_key(const ra_tables_t *t, const void *key, size_t klen)
{
    return key == NULL || klen == 0 || klen > t->max_key;
}

// use_txn checks that txn may be used by this call.
static int
use_txn(ra_tables_t *t, ra_tables_txn_t *txn)
{
    if (txn->t != t || !pthread_equal(txn->owner, pthread_self())) {
        return RA_EINVAL;
    }
    return txn->err;
}

// What op_begin prepares for: a read, a write to an existing table, or a
// write that creates the table.
enum { OP_READ, OP_WRITE, OP_CREATE };

// op_begin gives the transaction and table handle for one call: the
// caller's transaction, or own.  A read of its own resolves the table before
// it begins, so that the handle is older than the snapshot (LMDB rejects a
// handle opened after the transaction began).
static int
op_begin(ra_tables_t *t, ra_tables_txn_t *txn, ra_tables_txn_t *own,
         const char *table, int mode, ra_tables_txn_t **x, MDB_dbi *dbi)
{
    int rc;

    *x = NULL;
    if (txn != NULL) {
        if ((rc = use_txn(t, txn)) != 0) {
            return rc;
        }
        *x = txn;
    } else if (mode == OP_READ) {
        if (!cache_lookup(t, table, dbi)) {
            return RA_ENOENT;
        }
        *x = own;
        return txn_start(t, own, true);
    } else {
        *x = own;
        if ((rc = txn_start(t, own, false)) != 0) {
            return rc;
        }
    }
    return table_dbi(*x, table, mode == OP_CREATE, dbi);
}

// op_end finishes one call.  A transaction of its own is committed after a
// write that worked and aborted otherwise.  In an explicit transaction a
// failure that LMDB may have left half-done aborts it at once, so that it
// can never be committed.
static int
op_end(ra_tables_txn_t *x, ra_tables_txn_t *own, int rc)
{
    if (x == NULL) {
        return rc;
    }
    if (x == own) {
        int end = txn_end(own, rc == 0);

        return rc != 0 ? rc : end;
    }
    if (rc != 0 && rc != RA_ENOENT && rc != RA_EEXIST && rc != RA_EINVAL) {
        txn_end(x, false);
        x->err = rc;
    }
    return rc;
}

int
ra_tables_begin(ra_tables_t *t, ra_tables_txn_t **out)
{
    ra_tables_txn_t *x;
    int rc;

    if (out != NULL) {
        *out = NULL;
    }
    if (t == NULL || out == NULL) {
        return RA_EINVAL;
    }
    if ((x = malloc(sizeof(*x))) == NULL) {
        return RA_ENOMEM;
    }
    if ((rc = txn_start(t, x, false)) != 0) {
        free(x);
        return rc;
    }
    *out = x;
    return 0;
}

int
ra_tables_commit(ra_tables_txn_t **txnp)
{
    ra_tables_txn_t *x;
    int rc;

    if (txnp == NULL || (x = *txnp) == NULL) {
        return RA_EINVAL;
    }
    if (!pthread_equal(x->owner, pthread_self())) {
        return RA_EINVAL;           // LMDB's writer lock is the owner's
    }
    rc = x->err != 0 ? x->err : txn_end(x, true);
    free(x);
    *txnp = NULL;
    return rc;
}

void
ra_tables_abort(ra_tables_txn_t **txnp)
{
    if (txnp == NULL || *txnp == NULL) {
        return;
    }
    txn_end(*txnp, false);
    free(*txnp);
    *txnp = NULL;
}

int
ra_table_put(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
             const void *key, size_t klen, const void *val, size_t vlen,
             unsigned flags)
{
    ra_tables_txn_t own, *x;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key};
    MDB_val v = {vlen, (void *)val};
    unsigned mflags = 0;
    int rc;

    if (t == NULL || bad_name(t, table) || bad_key(t, key, klen) ||
        (val == NULL && vlen > 0) || (flags & ~RA_TABLE_NOOVERWRITE) != 0) {
        return RA_EINVAL;
    }
    if (flags & RA_TABLE_NOOVERWRITE) {
        mflags |= MDB_NOOVERWRITE;
    }
    rc = op_begin(t, txn, &own, table, OP_CREATE, &x, &dbi);
    if (rc == 0) {
        rc = translate(t, mdb_put(x->txn, dbi, &k, &v, mflags));
    }
    return op_end(x, &own, rc);
}

int
ra_table_get(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
             const void *key, size_t klen, void **val, size_t *vlen)
{
    ra_tables_txn_t own, *x;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key};
    MDB_val v;
    void *copy;
    int rc;

    if (t == NULL || bad_name(t, table) || bad_key(t, key, klen)) {
        return RA_EINVAL;
    }
    rc = op_begin(t, txn, &own, table, OP_READ, &x, &dbi);
    if (rc == 0) {
        rc = translate(t, mdb_get(x->txn, dbi, &k, &v));
    }
    // The value lives in the map only as long as the transaction, so it is
    // copied before the transaction ends.
    if (rc == 0 && val != NULL) {
        if ((copy = malloc(v.mv_size > 0 ? v.mv_size : 1)) == NULL) {
            rc = RA_ENOMEM;
        } else {
            memcpy(copy, v.mv_data, v.mv_size);
            *val = copy;
        }
    }
    if (rc == 0 && vlen != NULL) {
        *vlen = v.mv_size;
    }
    return op_end(x, &own, rc);
}

int
ra_table_delete(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
                const void *key, size_t klen)
{
    ra_tables_txn_t own, *x;
    MDB_dbi dbi;
    MDB_val k = {klen, (void *)key};
    int rc;

    if (t == NULL || bad_name(t, table) || bad_key(t, key, klen)) {
        return RA_EINVAL;
    }
    rc = op_begin(t, txn, &own, table, OP_WRITE, &x, &dbi);
    if (rc == 0) {
        rc = translate(t, mdb_del(x->txn, dbi, &k, NULL));
    }
    return op_end(x, &own, rc);
}

int
ra_table_scan(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
              const void *prefix, size_t plen, ra_table_scan_fn fn,
              void *user)
{
    ra_tables_txn_t own, *x;
    MDB_cursor *cur = NULL;
    MDB_dbi dbi;
    MDB_val k = {plen, (void *)prefix};
    MDB_val v;
    MDB_cursor_op op = plen > 0 ? MDB_SET_RANGE : MDB_FIRST;
    int stop = 0;
    int rc;

    if (t == NULL || bad_name(t, table) || fn == NULL ||
        (prefix == NULL && plen > 0) || plen > t->max_key) {
        return RA_EINVAL;
    }
    rc = op_begin(t, txn, &own, table, OP_READ, &x, &dbi);
    if (rc == 0) {
        rc = translate(t, mdb_cursor_open(x->txn, dbi, &cur));
    }
    while (rc == 0) {
        int mrc = mdb_cursor_get(cur, &k, &v, op);

        op = MDB_NEXT;
        if (mrc != 0) {
            rc = mrc == MDB_NOTFOUND ? 0 : translate(t, mrc);
            break;
        }
        // Keys sort by bytes, so the first key without the prefix ends it.
        if (plen > 0 && (k.mv_size < plen ||
                         memcmp(k.mv_data, prefix, plen) != 0)) {
            break;
        }
        if ((stop = fn(user, k.mv_data, k.mv_size, v.mv_data,
                       v.mv_size)) != 0) {
            break;
        }
    }
    if (cur != NULL) {
        mdb_cursor_close(cur);
    }
    // The callback's value is not a failure of the transaction.
    rc = op_end(x, &own, rc);
    return rc != 0 ? rc : stop;
}

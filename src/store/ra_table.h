// ra_table.h - durable named tables of bytes, kept in LMDB.
//
// A ra_tables_t is one LMDB environment in a directory: a set of named
// tables, each an ordered map from byte keys to byte values (the GCS keeps
// BSON documents in them: nodes, jobs, actors, names, placement groups, KV).
// Every committed write is on disk when the call returns, so a head that
// restarts and opens the same directory finds all its tables again.
//
// Keys are 1 to ra_tables_max_key() bytes and sort as unsigned bytes,
// shorter first on a common prefix.  Values are 0 or more bytes.  Table
// names are NUL-terminated, non-empty and at most ra_tables_max_key() bytes.
// A table is created by the first write to it; reading, deleting or scanning
// a table that was never written gives RA_ENOENT.
//
// Every operation takes a transaction, txn.  NULL means "a transaction of
// its own": reads see the last committed state and a write is committed (or
// not done at all) before the call returns.  An explicit write transaction
// from ra_tables_begin groups writes to several tables into one atomic
// commit; reads through it see its own writes.
//
// Durability: see ra_durability_t.  Neither mode can corrupt the database
// on a crash or power loss; LMDB's unsafe modes (MDB_NOSYNC,
// MDB_WRITEMAP|MDB_MAPASYNC) are never used.  A full map gives RA_EFULL and
// a full disk -ENOSPC; in both cases the failed transaction is rolled back
// whole and everything committed before it stays.
//
// Threads: a ra_tables_t may be shared by any number of threads.  Calls with
// txn == NULL may come from any thread, concurrently; writes are serialised
// (one writer at a time, across processes too), reads never wait for
// writers.  An explicit transaction belongs to the thread that began it: only
// that thread may use, commit or abort it, and while it is open that thread
// must not make writes with txn == NULL or begin another one (both give
// RA_EDEADLK instead of hanging).  Other threads that write wait until it
// ends.  Read transactions are not tied to threads (MDB_NOTLS).
//
// Processes: several processes may open the same directory (LMDB locks it),
// but each must open it itself; a ra_tables_t must not be used across fork.
// A table that another process creates after this one opened the directory
// is seen here only after a reopen.
#ifndef RA_TABLE_H
#define RA_TABLE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ra_tables ra_tables_t;
typedef struct ra_tables_txn ra_tables_txn_t;

// RA_TABLES_MAP_SIZE_DEFAULT is the default map size: 8 GiB of address
// space.  Disk is used only as data grows.
#define RA_TABLES_MAP_SIZE_DEFAULT ((size_t)8 << 30)

// RA_TABLES_MAX_DEFAULT is the default number of named tables.
#define RA_TABLES_MAX_DEFAULT 64u

// ra_durability_t says when a commit returns.
//
// RA_DURABLE_FULL (the default) flushes the data and then the meta page
// before ra_tables_commit returns: a commit that returned survives power
// loss.
//
// RA_DURABLE_DATA (MDB_NOMETASYNC) flushes the data but leaves the meta page
// to the next commit's flush, saving one fsync per commit.  Trade-off: on
// power loss (not on a process crash, where the kernel still writes the
// page) the last committed transaction may be lost, and the database opens
// in the state before it.  The database never corrupts.
typedef enum ra_durability {
    RA_DURABLE_FULL = 0,
    RA_DURABLE_DATA = 1
} ra_durability_t;

// ra_tables_opts_t holds the options of ra_tables_open.  A zeroed struct
// (or NULL) gives the defaults.
typedef struct ra_tables_opts {
    // map_size is the largest size the database may grow to, in bytes,
    // rounded up to the page size by LMDB; 0 gives
    // RA_TABLES_MAP_SIZE_DEFAULT.  Writes past it give RA_EFULL.  Reopening
    // with a larger value grows an existing database.
    size_t map_size;
    // max_tables is how many named tables the directory may hold; 0 gives
    // RA_TABLES_MAX_DEFAULT.  Creating one more gives RA_EFULL.
    unsigned max_tables;
    // durability is RA_DURABLE_FULL or RA_DURABLE_DATA.
    ra_durability_t durability;
} ra_tables_opts_t;

// ra_table_put flags.
enum {
    // RA_TABLE_NOOVERWRITE makes ra_table_put fail with RA_EEXIST, changing
    // nothing, when the key is already there.
    RA_TABLE_NOOVERWRITE = 1u << 0
};

// ra_tables_open opens the tables kept in directory dir, creating dir (mode
// 0700, parent must exist) and the database files (mode 0600) when they are
// missing, and stores the handle in *out.  opts may be NULL for the
// defaults.  Reader slots left by dead processes are cleared, and tables
// written before (by an earlier run, or a process that crashed) are there
// again.  Returns 0; RA_EINVAL (NULL out or dir, empty dir, an unknown
// durability, max_tables over 32767); RA_ENOMEM; RA_EBADMSG when dir holds
// something that is not a database of this format; RA_EAGAIN when every
// reader slot is taken; or -errno from the file system (-EACCES, -ENOTDIR,
// -ENOSPC, ...).  On failure *out is NULL.  Caller owns the result and
// frees it with ra_tables_close.  Thread-safe, but a process must not open
// the same directory twice at the same time (LMDB's locks are per process).
int ra_tables_open(ra_tables_t **out, const char *dir,
                   const ra_tables_opts_t *opts);

// ra_tables_close closes the tables and sets *t to NULL.  Everything
// committed is already on disk; nothing is flushed here.  Every explicit
// transaction must have been committed or aborted, and no other thread may
// be using *t.  Safe on NULL and on a NULL *t.
void ra_tables_close(ra_tables_t **t);

// ra_tables_max_key returns the largest key (and table name) size in bytes
// that t accepts, LMDB's mdb_env_get_maxkeysize (511 on Debian's build).
// Returns 0 when t is NULL.  Any thread.
size_t ra_tables_max_key(const ra_tables_t *t);

// ra_tables_begin starts an explicit write transaction on t and stores it in
// *out.  Writes through it become visible to others, all at once, only when
// ra_tables_commit succeeds; ra_tables_abort drops them all.  Waits while
// another thread or process has a write transaction open.  Returns 0;
// RA_EINVAL (NULL argument); RA_EDEADLK when the calling thread already has
// one open on t; RA_ENOMEM; or an error as from ra_table_put.  On failure
// *out is NULL.  The transaction belongs to the calling thread, and it must
// be committed or aborted before t is closed.
int ra_tables_begin(ra_tables_t *t, ra_tables_txn_t **out);

// ra_tables_commit makes the writes of *txn durable (see ra_durability_t)
// and visible, frees the transaction and sets *txn to NULL, whatever the
// outcome but RA_EINVAL, which changes nothing.  Returns 0; RA_EINVAL (NULL,
// or a thread other than the one that began *txn); RA_EFULL when the map is
// full (a log line says to raise ra_tables_opts_t.map_size); -ENOSPC or
// another -errno when the disk write failed; or the error that already
// aborted the transaction (see ra_table_put).  On any failure nothing of
// the transaction was written and everything committed before is intact.
// Only the thread that began *txn.
int ra_tables_commit(ra_tables_txn_t **txn);

// ra_tables_abort drops the writes of *txn, frees it and sets *txn to NULL.
// Safe on NULL, on a NULL *txn and on a transaction that an error already
// aborted.  Only the thread that began *txn.
void ra_tables_abort(ra_tables_txn_t **txn);

// ra_table_put stores the vlen bytes at val under the klen bytes at key in
// table, creating the table on first use; an existing value is replaced
// unless flags has RA_TABLE_NOOVERWRITE.  The bytes are copied; the caller
// keeps key and val.  val may be NULL when vlen is 0.  txn is NULL or an
// explicit transaction of the calling thread.  Returns 0; RA_EINVAL (NULL
// t, table, key; an empty or oversized table name or key; unknown flags);
// RA_EEXIST (RA_TABLE_NOOVERWRITE and the key is there); RA_EFULL (the map
// is full, with a log line saying to raise the map size; or max_tables is
// reached); RA_EDEADLK (txn is NULL and this thread has an explicit
// transaction open); RA_ENOMEM; RA_EBADMSG (the database is corrupt);
// -ENOSPC or another -errno from the disk.  Any failure other than
// RA_EINVAL and RA_EEXIST aborts an explicit txn at once: nothing of it will
// be written, and later calls through it, ra_tables_commit included, return
// the same error.  Passing txn from a thread other than its owner gives
// RA_EINVAL.
int ra_table_put(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
                 const void *key, size_t klen, const void *val, size_t vlen,
                 unsigned flags);

// ra_table_get looks key up in table.  When val is not NULL, *val receives
// a copy of the value (caller owns it and frees it with free(); never NULL
// on success, even for an empty value) and *vlen, when not NULL, its
// length.  With val NULL it only tests that the key is there.  txn is NULL
// (read the last committed state) or an explicit transaction (its own
// writes included).  Returns 0; RA_ENOENT (no such key or table); RA_EINVAL
// (NULL t, table or key; an empty or oversized name or key); RA_ENOMEM; or
// an error as from ra_table_put.  On failure *val is left alone.  Any
// thread for txn NULL; otherwise the thread that owns txn.
int ra_table_get(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
                 const void *key, size_t klen, void **val, size_t *vlen);

// ra_table_delete removes key from table.  Returns 0; RA_ENOENT (no such key
// or table); RA_EINVAL; RA_EDEADLK; or an error as from ra_table_put.  An
// explicit txn survives RA_ENOENT; other failures abort it as in
// ra_table_put.
int ra_table_delete(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
                    const void *key, size_t klen);

// ra_table_scan_fn receives one entry of a scan.  key and val are borrowed
// from the database and valid only until the callback returns; copy what you
// keep.  Return 0 to go on, any other value to stop the scan (which then
// returns that value; use positive values to tell them from errors).
typedef int (*ra_table_scan_fn)(void *user, const void *key, size_t klen,
                                const void *val, size_t vlen);

// ra_table_scan calls fn for every entry of table whose key starts with the
// plen bytes at prefix (every entry when plen is 0; prefix may then be
// NULL), in key order, on the thread that called ra_table_scan.  With txn
// NULL the scan reads one consistent snapshot: writes made meanwhile, by
// fn or others, are not seen.  fn may call ra_table_* with txn NULL (reads
// and, unless the thread owns an explicit transaction, writes) but must not
// write through txn.  Returns 0 when every entry was seen, fn's non-zero
// value when it stopped the scan, RA_ENOENT when the table does not exist
// (an existing empty table gives 0 without calls), RA_EINVAL (NULL t, table
// or fn; NULL prefix with plen > 0; plen or the name longer than
// ra_tables_max_key()), or an error
// as from ra_table_get.
int ra_table_scan(ra_tables_t *t, ra_tables_txn_t *txn, const char *table,
                  const void *prefix, size_t plen, ra_table_scan_fn fn,
                  void *user);

#ifdef __cplusplus
}
#endif
#endif

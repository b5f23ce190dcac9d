// objstore.c - the object store's file, its lock, and the public calls.
//
// The lock is a robust, process-shared pthread mutex in the header.  It
// guards short bookkeeping only: no call copies object bytes or does file
// I/O while holding it, so a 1 GiB put holds it for as long as a 1 KiB one.
// Waiting (for a seal, a restore, another process's spill) uses futex
// words in the header (one per wait channel) rather than a process-shared
// condition variable: glibc's condition variables can leave a signaller
// waiting for a waiter that was killed, and a futex word carries no such
// state.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "objstore_impl.h"
#include "ra_error.h"
#include "ra_log.h"

#define DEFAULT_CLIENTS 128u
#define MAX_CLIENTS 65536u
#define MIN_OBJECTS 16u
#define MAX_OBJECTS (1u << 24)
#define PAGE ((size_t)4096)
// Pin records: one per (object, attachment) pair pinned at once.
#define PINS_PER_CLIENT 64u
// A get that waits on a writer or restorer looks at whether it died this
// often.
#define WAIT_SLICE_MS 200

// ---- fork detection --------------------------------------------------------

// Global: fork_gen counts forks of this process (the atfork child handler
// bumps it in the child); set up once under fork_once.  A handle records it
// at open, and a mismatch means the handle was inherited through fork.
static atomic_uint fork_gen;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void
on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}

static void
fork_init(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static unsigned
current_fork_gen(void)
{
    pthread_once(&fork_once, fork_init);
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

// usable says whether st may be used by this process.
static bool
usable(const ra_objstore_t *st)
{
    return st != NULL &&
           st->fork_gen == atomic_load_explicit(&fork_gen,
                                                memory_order_relaxed);
}

// ---- small helpers ---------------------------------------------------------

char *
ra_oid_str(ra_oid_t oid, char *buf)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < sizeof oid.b; i++) {
        buf[2 * i] = digits[oid.b[i] >> 4];
        buf[2 * i + 1] = digits[oid.b[i] & 15];
    }
    buf[2 * sizeof oid.b] = '\0';
    return buf;
}

// ra__os_bsize is the block an object of size bytes needs: its header and
// the size rounded up to 64.  The caller has checked size against the
// arena, so this cannot overflow.
uint64_t
ra__os_bsize(uint64_t size)
{
    return RA__OS_BLKHDR + ((size + RA__OS_ALIGN - 1) & ~(uint64_t)63);
}

static size_t
align_up(size_t v, size_t a)
{
    return (v + a - 1) / a * a;
}

// ---- the lock and the futex ------------------------------------------------

// LOCK_SPIN is how many times ra__os_lock tries before it sleeps.
#define LOCK_SPIN 200

static inline void
cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// ra__os_lock takes the store's lock.  The lock is held for a few hundred
// nanoseconds at a time, so a short spin on trylock first saves most
// sleeps on the futex (glibc's robust mutexes never spin by themselves),
// and a sleep and wake-up cost tens of microseconds on a VM.
int
ra__os_lock(ra_objstore_t *st)
{
    int rc = EBUSY;

    for (int i = 0; i < LOCK_SPIN && rc == EBUSY; i++) {
        if ((rc = pthread_mutex_trylock(&st->hdr->lock)) == EBUSY) {
            cpu_relax();
        }
    }
    if (rc == EBUSY) {
        rc = pthread_mutex_lock(&st->hdr->lock);
    }
    if (rc == 0) {
        return 0;
    }
    if (rc == EOWNERDEAD) {
        ra__os_repair(st);
        pthread_mutex_consistent(&st->hdr->lock);
        return 0;
    }
    ra_log_err("store", "%s: the store's lock is unusable (%s); re-create "
               "the store", st->path, ra_strerror(-rc));
    return RA_EBADMSG;
}

static void
futex_wake(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

// ra__os_unlock drops the lock and then makes the FUTEX_WAKEs that
// ra__os_wake asked for under it: sleepers woken while the lock is still
// held would only go to sleep again on the mutex.
void
ra__os_unlock(ra_objstore_t *st)
{
    uint64_t mask;

    pthread_mutex_unlock(&st->hdr->lock);
    if (atomic_load_explicit(&st->wake_mask, memory_order_relaxed) != 0 &&
        (mask = atomic_exchange(&st->wake_mask, 0)) != 0) {
        while (mask != 0) {
            futex_wake(&st->hdr->event[__builtin_ctzll(mask)]);
            mask &= mask - 1;
        }
    }
    if (atomic_load_explicit(&st->wake_space, memory_order_relaxed) &&
        atomic_exchange(&st->wake_space, false)) {
        futex_wake(&st->hdr->event[RA__OS_CHAN_SPACE]);
    }
}

// ra__os_chan is the wait channel of object oid.
unsigned
ra__os_chan(ra_oid_t oid)
{
    unsigned h = 0;

    for (size_t i = 0; i < sizeof oid.b; i++) {
        h = h * 31u + oid.b[i];
    }
    return h % RA__OS_NCHAN_OBJ;
}

// ra__os_wake tells the sleepers of channel chan that something happened.
// Lock held, which orders it against a sleeper that is about to sleep (see
// ra__os_wait); the wake-up itself is made by ra__os_unlock.  If this
// process dies in between, the sleepers wake at the end of their time
// slice (at most WAIT_SLICE_MS) and look again.
void
ra__os_wake(ra_objstore_t *st, unsigned chan)
{
    ra__os_hdr_t *h = st->hdr;

    __atomic_add_fetch(&h->event[chan], 1, __ATOMIC_SEQ_CST);
    if (__atomic_exchange_n(&h->waiters[chan], 0, __ATOMIC_SEQ_CST) == 0) {
        return;
    }
    if (chan == RA__OS_CHAN_SPACE) {
        atomic_store(&st->wake_space, true);
    } else {
        atomic_fetch_or(&st->wake_mask, (uint64_t)1 << chan);
    }
}

// ra__os_wait drops the lock, sleeps until the next ra__os_wake of chan or
// for ms milliseconds, and takes the lock again.  The flag and the counter
// are read under the lock, so a wake that comes after the unlock either
// finds the flag set (and wakes us) or changed the counter (and FUTEX_WAIT
// returns at once).  Returns 0 or RA_EBADMSG (lock lost).
int
ra__os_wait(ra_objstore_t *st, unsigned chan, int ms)
{
    ra__os_hdr_t *h = st->hdr;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    uint32_t seq;

    __atomic_store_n(&h->waiters[chan], 1, __ATOMIC_SEQ_CST);
    seq = __atomic_load_n(&h->event[chan], __ATOMIC_SEQ_CST);
    ra__os_unlock(st);
    syscall(SYS_futex, &h->event[chan], FUTEX_WAIT, seq, &ts, NULL, 0);
    return ra__os_lock(st);
}

// ---- layout ----------------------------------------------------------------

typedef struct layout {
    uint64_t clients_off, entries_off, buckets_off, pins_off, sfiles_off;
    uint64_t arena_off, file_size;
    uint32_t nbuckets, npins;
} layout_t;

static void
compute_layout(layout_t *l, uint32_t max_clients, uint32_t max_objects,
               uint64_t arena_size)
{
    uint64_t off = align_up(sizeof(ra__os_hdr_t), RA__OS_ALIGN);

    l->nbuckets = 16;
    while (l->nbuckets < max_objects) {
        l->nbuckets <<= 1;
    }
    l->npins = max_objects + PINS_PER_CLIENT * max_clients;
    l->clients_off = off;
    off = align_up(off + (uint64_t)max_clients * sizeof(ra__os_client_t),
                   RA__OS_ALIGN);
    l->entries_off = off;
    off = align_up(off + (uint64_t)max_objects * sizeof(ra__os_entry_t),
                   RA__OS_ALIGN);
    l->buckets_off = off;
    off = align_up(off + (uint64_t)l->nbuckets * sizeof(uint32_t),
                   RA__OS_ALIGN);
    l->pins_off = off;
    off = align_up(off + (uint64_t)l->npins * sizeof(ra__os_pin_t),
                   RA__OS_ALIGN);
    l->sfiles_off = off;
    off = align_up(off + (uint64_t)max_objects * sizeof(ra__os_sfile_t),
                   PAGE);
    l->arena_off = off;
    l->file_size = off + arena_size;
}

static void
bind_tables(ra_objstore_t *st)
{
    ra__os_hdr_t *h = st->hdr;

    st->clients = (ra__os_client_t *)(st->base + h->clients_off);
    st->entries = (ra__os_entry_t *)(st->base + h->entries_off);
    st->buckets = (uint32_t *)(st->base + h->buckets_off);
    st->pins = (ra__os_pin_t *)(st->base + h->pins_off);
    st->sfiles = (ra__os_sfile_t *)(st->base + h->sfiles_off);
    st->arena = st->base + h->arena_off;
}

// resolve_path turns a store name into its file's path.
static int
resolve_path(const char *name, char *path, size_t len)
{
    int n;

    if (name == NULL || name[0] == '\0') {
        return RA_EINVAL;
    }
    if (strchr(name, '/') != NULL) {
        n = snprintf(path, len, "%s", name);
    } else {
        n = snprintf(path, len, "/dev/shm/%s", name);
    }
    return n > 0 && (size_t)n < len - 32 ? 0 : RA_EINVAL;
}

// ---- prefaulting -----------------------------------------------------------

// touch_pages writes every page of [p, p+len).  At create nobody else can
// see the file, so plain stores do.  At attach other processes are using
// it, so each page gets a locked add of 0: a write as far as the MMU is
// concerned, no change to the bytes.
static void
touch_pages(uint8_t *p, size_t len, bool shared)
{
    for (size_t off = 0; off < len; off += PAGE) {
        if (shared) {
            __atomic_fetch_add((uint64_t *)(p + off), 0, __ATOMIC_RELAXED);
        } else {
            *(volatile uint8_t *)(p + off) = 0;
        }
    }
}

// kernel_touch makes the kernel touch every page of [p, p+len), which on
// VMs that shadow the kernel's page tables apart from the process's costs
// as much as a user-mode first touch: without it the first spill of each
// page reads at about 0.5 GB/s instead of several GB/s.  At create
// (fresh, all zeros) it reads /dev/zero over the pages, a write access; at
// attach the bytes are live, so it copies one word of each page into a
// scratch memfd, a read access.  Failures only cost speed, so they are
// ignored.
static void
kernel_touch(uint8_t *p, size_t len, bool shared)
{
    struct iovec iov[IOV_MAX];
    int fd, n = 0;

    if (!shared) {
        if ((fd = open("/dev/zero", O_RDONLY | O_CLOEXEC)) < 0) {
            return;
        }
        for (size_t off = 0; off < len;) {
            ssize_t r = read(fd, p + off, len - off < ((size_t)1 << 30)
                                              ? len - off
                                              : (size_t)1 << 30);

            if (r <= 0) {
                break;
            }
            off += (size_t)r;
        }
        close(fd);
        return;
    }
    if ((fd = memfd_create("rayo-touch", MFD_CLOEXEC)) < 0) {
        return;
    }
    for (size_t off = 0; off < len; off += PAGE) {
        iov[n++] = (struct iovec){p + off, sizeof(uint64_t)};
        if (n == IOV_MAX || off + PAGE >= len) {
            if (pwritev(fd, iov, n, 0) < 0) {
                break;
            }
            n = 0;
        }
    }
    close(fd);
}

static int
map_file(int fd, size_t size, ra_objstore_prefault_t pf, uint8_t **out)
{
    int flags = MAP_SHARED | (pf == RA_OBJSTORE_PREFAULT_NONE ? 0
                                                              : MAP_POPULATE);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);

    if (p == MAP_FAILED) {
        return -errno;
    }
    *out = p;
    return 0;
}

// ---- spill directory -------------------------------------------------------

// is_spill_name says whether s is the name of a spill file,
// "<16 hex>.spill", or of one being removed (".spill.dead").
static bool
is_spill_name(const char *s)
{
    size_t n = strlen(s);

    if ((n != 22 && n != 27) || strncmp(s + 16, ".spill", 6) != 0 ||
        (n == 27 && strcmp(s + 22, ".dead") != 0)) {
        return false;
    }
    for (size_t i = 0; i < 16; i++) {
        if (strchr("0123456789abcdef", s[i]) == NULL || s[i] == '\0') {
            return false;
        }
    }
    return true;
}

// clean_spill_dir removes the spill files in dir (and dir itself with
// rmdir_too, when it is then empty).  Other files are left alone.
static void
clean_spill_dir(const char *dir, bool rmdir_too)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[PATH_MAX + 64];

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (is_spill_name(de->d_name)) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
    if (rmdir_too) {
        rmdir(dir);
    }
}

static int
resolve_spill_dir(const char *path, const ra_objstore_opts_t *o, char *out)
{
    const char *tmp = getenv("TMPDIR");
    const char *base = strrchr(path, '/') + 1;
    char cwd[PATH_MAX];
    int n;

    if (o->spill_dir != NULL) {
        if (o->spill_dir[0] == '\0') {
            return RA_EINVAL;
        }
        if (o->spill_dir[0] == '/') {
            n = snprintf(out, PATH_MAX, "%s", o->spill_dir);
        } else if (getcwd(cwd, sizeof cwd) != NULL) {
            n = snprintf(out, PATH_MAX, "%s/%s", cwd, o->spill_dir);
        } else {
            return -errno;
        }
    } else {
        if (tmp == NULL || tmp[0] != '/') {
            tmp = "/tmp";
        }
        n = snprintf(out, PATH_MAX, "%s/rayo-spill-%s", tmp, base);
    }
    // Room for "/<oid>-<gen>.spill" after it.
    return n > 0 && n < PATH_MAX - 64 ? 0 : RA_EINVAL;
}

// ---- clients ---------------------------------------------------------------

// take_slot gives st a client slot.  Lock held.  Returns 0 or RA_EFULL.
static int
take_slot(ra_objstore_t *st)
{
    ra__os_hdr_t *h = st->hdr;

    for (uint32_t i = 0; i < h->max_clients; i++) {
        ra__os_client_t *c = &st->clients[i];

        if (c->used == 0) {
            c->pid = st->pid;
            c->start = ra__os_proc_start(st->pid);
            __atomic_store_n(&c->used, 1, __ATOMIC_RELEASE);
            h->nclients++;
            st->slot = i;
            return 0;
        }
    }
    return RA_EFULL;
}

static ra_objstore_t *
new_handle(const char *path)
{
    ra_objstore_t *st = calloc(1, sizeof *st);

    if (st == NULL) {
        return NULL;
    }
    snprintf(st->path, sizeof st->path, "%s", path);
    pthread_mutex_init(&st->graves_lock, NULL);
    st->pid = (int32_t)getpid();
    st->fork_gen = current_fork_gen();
    st->slot = RA__OS_NIL;
    return st;
}

static void
free_handle(ra_objstore_t *st)
{
    ra__os_flush_graves(st);
    pthread_mutex_destroy(&st->graves_lock);
    if (st->base != NULL) {
        munmap(st->base, st->map_size);
    }
    free(st);
}

// ---- create ----------------------------------------------------------------

static uint64_t
default_capacity(const char *path)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long psize = sysconf(_SC_PAGESIZE);
    uint64_t cap = pages > 0 && psize > 0
                       ? (uint64_t)pages * (uint64_t)psize / 100 *
                             RA_OBJSTORE_CAPACITY_PERCENT
                       : (uint64_t)1 << 30;
    char dir[PATH_MAX];
    struct statvfs vfs;
    char *slash;

    snprintf(dir, sizeof dir, "%s", path);
    slash = strrchr(dir, '/');
    if (slash == dir) {
        slash[1] = '\0';
    } else if (slash != NULL) {
        *slash = '\0';
    }
    if (statvfs(dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize / 10 * 9;

        if (avail < cap) {
            cap = avail;
        }
    }
    return cap;
}

// check_opts fills the defaults into o and checks the ranges.
static int
check_opts(const char *path, ra_objstore_opts_t *o)
{
    if (o->capacity == 0) {
        o->capacity = default_capacity(path);
    }
    o->capacity = o->capacity / PAGE * PAGE;
    if (o->capacity < RA__OS_MIN_CAPACITY) {
        return RA_EINVAL;
    }
    if (o->max_objects == 0) {
        uint64_t n = o->capacity / ((size_t)64 << 10);

        o->max_objects = n < 1024 ? 1024 : n > (1u << 20) ? 1u << 20
                                                          : (uint32_t)n;
    }
    if (o->max_clients == 0) {
        o->max_clients = DEFAULT_CLIENTS;
    }
    if (o->max_objects < MIN_OBJECTS || o->max_objects > MAX_OBJECTS ||
        o->max_clients < 2 || o->max_clients > MAX_CLIENTS ||
        (unsigned)o->prefault > RA_OBJSTORE_PREFAULT_FULL) {
        return RA_EINVAL;
    }
    return 0;
}

static int
init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int rc;

    if ((rc = pthread_mutexattr_init(&a)) != 0) {
        return -rc;
    }
    if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) ==
            0 &&
        (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0) {
        rc = pthread_mutex_init(m, &a);
    }
    pthread_mutexattr_destroy(&a);
    return -rc;
}

// init_header writes a new store's header and tables.
static int
init_header(ra_objstore_t *st, const ra_objstore_opts_t *o,
            const layout_t *l, const char *spill_dir)
{
    ra__os_hdr_t *h = st->hdr;
    int rc;

    memset(h, 0, sizeof *h);
    h->version = RA__OS_VERSION;
    h->hdr_size = (uint32_t)sizeof *h;
    h->file_size = l->file_size;
    h->arena_off = l->arena_off;
    h->arena_size = o->capacity;
    h->clients_off = l->clients_off;
    h->entries_off = l->entries_off;
    h->buckets_off = l->buckets_off;
    h->pins_off = l->pins_off;
    h->sfiles_off = l->sfiles_off;
    h->max_clients = o->max_clients;
    h->max_objects = o->max_objects;
    h->nbuckets = l->nbuckets;
    h->npins = l->npins;
    h->no_spill = o->no_spill ? 1 : 0;
    h->gen = 1;
    h->file_seq = 1;
    snprintf(h->spill_dir, sizeof h->spill_dir, "%s", spill_dir);
    if ((rc = init_mutex(&h->lock)) != 0) {
        return rc;
    }
    bind_tables(st);
    ra__os_init_tables(st);
    return 0;
}

int
ra_objstore_create(ra_objstore_t **out, const char *name,
                   const ra_objstore_opts_t *opts)
{
    ra_objstore_opts_t o = opts != NULL ? *opts : (ra_objstore_opts_t){0};
    char path[PATH_MAX], tmp[PATH_MAX + 32], spill_dir[PATH_MAX];
    ra_objstore_t *st = NULL;
    layout_t l;
    int fd = -1, rc;

    if (out == NULL) {
        return RA_EINVAL;
    }
    *out = NULL;
    if ((rc = resolve_path(name, path, sizeof path)) != 0 ||
        (rc = check_opts(path, &o)) != 0 ||
        (rc = resolve_spill_dir(path, &o, spill_dir)) != 0) {
        return rc;
    }
    if ((st = new_handle(path)) == NULL) {
        return RA_ENOMEM;
    }
    compute_layout(&l, o.max_clients, o.max_objects, o.capacity);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)st->pid);
    unlink(tmp);
    if ((fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0) {
        rc = -errno;
        goto fail;
    }
    if (ftruncate(fd, (off_t)l.file_size) != 0) {
        rc = -errno;
        goto fail;
    }
    // Reserve the pages now: tmpfs would otherwise hand out a SIGBUS at
    // the first touch of a page it has no room for.
    if ((rc = posix_fallocate(fd, 0, (off_t)l.file_size)) != 0) {
        ra_log_err("store", "%s: cannot reserve %" PRIu64 " bytes: %s; "
                   "give a smaller capacity", path, l.file_size,
                   strerror(rc));
        rc = -rc;
        goto fail;
    }
    st->map_size = l.file_size;
    if ((rc = map_file(fd, st->map_size, o.prefault, &st->base)) != 0) {
        goto fail;
    }
    if (o.prefault == RA_OBJSTORE_PREFAULT_FULL) {
        kernel_touch(st->base, st->map_size, false);
    }
    if (o.prefault != RA_OBJSTORE_PREFAULT_NONE) {
        touch_pages(st->base, st->map_size, false);
    }
    st->hdr = (ra__os_hdr_t *)st->base;
    if ((rc = init_header(st, &o, &l, spill_dir)) != 0) {
        goto fail;
    }
    if (!o.no_spill) {
        if (mkdir(spill_dir, 0700) != 0 && errno != EEXIST) {
            rc = -errno;
            ra_log_err("store", "%s: cannot make spill directory %s: %s",
                       path, spill_dir, strerror(errno));
            goto fail;
        }
        clean_spill_dir(spill_dir, false);
    }
    if ((rc = take_slot(st)) != 0) {
        goto fail;
    }
    __atomic_store_n(&st->hdr->magic, RA__OS_MAGIC, __ATOMIC_RELEASE);
    if (rename(tmp, path) != 0) {
        rc = -errno;
        goto fail;
    }
    close(fd);
    *out = st;
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free_handle(st);
    return rc;
}

// ---- attach ----------------------------------------------------------------

// check_header says whether the mapped header describes a store of this
// build whose tables fit the file.
static bool
check_header(const ra__os_hdr_t *h, uint64_t file_size)
{
    layout_t l;

    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != RA__OS_MAGIC ||
        h->version != RA__OS_VERSION || h->hdr_size != sizeof *h ||
        h->file_size != file_size || h->max_objects < MIN_OBJECTS ||
        h->max_objects > MAX_OBJECTS || h->max_clients < 2 ||
        h->max_clients > MAX_CLIENTS || h->arena_size > file_size ||
        memchr(h->spill_dir, '\0', sizeof h->spill_dir) == NULL) {
        return false;
    }
    compute_layout(&l, h->max_clients, h->max_objects, h->arena_size);
    return l.file_size == file_size && l.arena_off == h->arena_off &&
           l.clients_off == h->clients_off &&
           l.entries_off == h->entries_off &&
           l.buckets_off == h->buckets_off && l.pins_off == h->pins_off &&
           l.sfiles_off == h->sfiles_off &&
           l.nbuckets == h->nbuckets && l.npins == h->npins;
}

int
ra_objstore_attach(ra_objstore_t **out, const char *name,
                   const ra_objstore_opts_t *opts)
{
    ra_objstore_prefault_t pf =
        opts != NULL ? opts->prefault : RA_OBJSTORE_PREFAULT_DEFAULT;
    char path[PATH_MAX];
    ra_objstore_t *st;
    struct stat sb;
    int fd, rc;

    if (out == NULL) {
        return RA_EINVAL;
    }
    *out = NULL;
    if ((rc = resolve_path(name, path, sizeof path)) != 0 ||
        (unsigned)pf > RA_OBJSTORE_PREFAULT_FULL) {
        return RA_EINVAL;
    }
    if ((st = new_handle(path)) == NULL) {
        return RA_ENOMEM;
    }
    if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
        rc = errno == ENOENT ? RA_ENOENT : -errno;
        goto fail;
    }
    if (fstat(fd, &sb) != 0) {
        rc = -errno;
        goto fail;
    }
    if ((uint64_t)sb.st_size < sizeof(ra__os_hdr_t)) {
        rc = RA_EBADMSG;
        goto fail;
    }
    st->map_size = (size_t)sb.st_size;
    if ((rc = map_file(fd, st->map_size, pf, &st->base)) != 0) {
        goto fail;
    }
    close(fd);
    fd = -1;
    st->hdr = (ra__os_hdr_t *)st->base;
    if (!check_header(st->hdr, st->map_size)) {
        rc = RA_EBADMSG;
        goto fail;
    }
    bind_tables(st);
    if (pf == RA_OBJSTORE_PREFAULT_FULL) {
        kernel_touch(st->base, st->map_size, true);
        touch_pages(st->base, st->map_size, true);
    }
    if ((rc = ra__os_lock(st)) != 0) {
        goto fail;
    }
    if ((rc = take_slot(st)) == RA_EFULL &&
        (rc = ra__os_sweep_locked(st, NULL)) == 0) {
        rc = take_slot(st);
    }
    if (rc != RA_EBADMSG) {
        ra__os_unlock(st);
    }
    if (rc != 0) {
        goto fail;
    }
    *out = st;
    return 0;
fail:
    if (fd >= 0) {
        close(fd);
    }
    free_handle(st);
    return rc;
}

// ---- close -----------------------------------------------------------------

void
ra_objstore_close(ra_objstore_t **stp)
{
    ra_objstore_t *st;

    if (stp == NULL || (st = *stp) == NULL) {
        return;
    }
    *stp = NULL;
    if (usable(st) && st->slot != RA__OS_NIL && ra__os_lock(st) == 0) {
        ra__os_cleanup_client(st, st->slot);
        ra__os_unlock(st);
    }
    free_handle(st);
}

void
ra_objstore_destroy(ra_objstore_t **stp)
{
    char path[PATH_MAX], spill_dir[PATH_MAX];
    bool owned;
    ra_objstore_t *st;

    if (stp == NULL || (st = *stp) == NULL) {
        return;
    }
    owned = usable(st);
    snprintf(path, sizeof path, "%s", st->path);
    snprintf(spill_dir, sizeof spill_dir, "%s", st->hdr->spill_dir);
    ra_objstore_close(stp);
    if (owned) {
        unlink(path);
        clean_spill_dir(spill_dir, true);
    }
}

const char *
ra_objstore_path(const ra_objstore_t *st)
{
    return st != NULL ? st->path : NULL;
}

// ---- put -------------------------------------------------------------------

int
ra_objstore_alloc(ra_objstore_t *st, ra_oid_t oid, size_t size, void **data)
{
    ra__os_room_t room = {0};
    ra__os_entry_t *e;
    uint64_t bsize, blk = RA__OS_BNIL;
    uint32_t idx;
    int rc;

    if (data != NULL) {
        *data = NULL;
    }
    if (!usable(st) || data == NULL) {
        return RA_EINVAL;
    }
    if (size > st->hdr->arena_size - RA__OS_BLKHDR ||
        (bsize = ra__os_bsize(size)) > st->hdr->arena_size) {
        return -ENOSPC;
    }
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    for (;;) {
        if (ra__os_lookup(st, oid) != RA__OS_NIL) {
            rc = RA_EEXIST;
            goto out;
        }
        if (st->hdr->free_entry == RA__OS_NIL) {
            rc = ra__os_make_room(st, 0, true, &room);
        } else if ((blk = ra__os_arena_alloc(st, bsize, st->hdr->free_entry))
                   != RA__OS_BNIL) {
            break;
        } else {
            rc = ra__os_make_room(st, bsize, false, &room);
        }
        if (rc == RA_EBADMSG) {
            return rc;
        }
        if (rc != 0) {
            goto out;
        }
    }
    idx = ra__os_entry_take(st);
    e = &st->entries[idx];
    e->oid = oid;
    e->flags = 0;
    e->size = size;
    e->block = blk;
    e->bsize = ((ra__os_blk_t *)(st->arena + blk))->size;
    e->gen = st->hdr->gen++;
    e->pid = st->pid;
    e->slot = st->slot;
    e->refs = 0;
    e->pins = 0;
    e->pin_head = RA__OS_NIL;
    e->lprev = e->lnext = RA__OS_NIL;
    __atomic_store_n(&e->state, RA__OS_CREATING, __ATOMIC_RELEASE);
    ra__os_index_insert(st, idx);
    st->hdr->creating++;
    *data = st->arena + blk + RA__OS_BLKHDR;
out:
    ra__os_unlock(st);
    ra__os_flush_graves(st);
    return rc;
}

// find_mine looks up the object oid that this handle is creating.
static int
find_mine(ra_objstore_t *st, ra_oid_t oid, uint32_t *idx)
{
    const ra__os_entry_t *e;

    if ((*idx = ra__os_lookup(st, oid)) == RA__OS_NIL) {
        return RA_ENOENT;
    }
    e = &st->entries[*idx];
    if (e->state != RA__OS_CREATING) {
        return RA_EALREADY;
    }
    return e->slot == st->slot ? 0 : RA_EINVAL;
}

int
ra_objstore_seal(ra_objstore_t *st, ra_oid_t oid)
{
    uint32_t idx;
    int rc;

    if (!usable(st)) {
        return RA_EINVAL;
    }
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    if ((rc = find_mine(st, oid, &idx)) == 0) {
        __atomic_store_n(&st->entries[idx].state, RA__OS_SEALED,
                         __ATOMIC_RELEASE);
        ra__os_lru_push(st, idx);
        st->hdr->creating--;
        st->hdr->objects++;
        ra__os_wake(st, ra__os_chan(oid));
    }
    ra__os_unlock(st);
    return rc;
}

int
ra_objstore_abort(ra_objstore_t *st, ra_oid_t oid)
{
    uint32_t idx;
    int rc;

    if (!usable(st)) {
        return RA_EINVAL;
    }
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    if ((rc = find_mine(st, oid, &idx)) == 0) {
        st->hdr->creating--;
        ra__os_entry_free(st, idx);
        ra__os_wake(st, ra__os_chan(oid));
    }
    ra__os_unlock(st);
    return rc;
}

int
ra_objstore_put(ra_objstore_t *st, ra_oid_t oid, const void *data,
                size_t size)
{
    void *p = NULL;
    int rc;

    if (data == NULL && size > 0) {
        return RA_EINVAL;
    }
    if ((rc = ra_objstore_alloc(st, oid, size, &p)) != 0) {
        return rc;
    }
    if (size > 0) {
        memcpy(p, data, size);
    }
    return ra_objstore_seal(st, oid);
}

// ---- get -------------------------------------------------------------------

// ra__os_now_ms is CLOCK_MONOTONIC in milliseconds: the same clock in
// every process of the node.
uint64_t
ra__os_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

// pin_view pins sealed entry idx for st and fills view.  Lock held.
static int
pin_view(ra_objstore_t *st, uint32_t idx, ra_objstore_view_t *view)
{
    ra__os_entry_t *e = &st->entries[idx];
    uint32_t pin = ra__os_pin_add(st, idx, st->slot);

    if (pin == RA__OS_NIL) {
        return RA_EFULL;
    }
    ra__os_lru_touch(st, idx);
    view->data = st->arena + e->block + RA__OS_BLKHDR;
    view->size = e->size;
    view->ra_priv.idx = idx;
    view->ra_priv.pin = pin;
    view->ra_priv.gen = e->gen;
    return 0;
}

// check_busy_owner looks at whether the process that entry idx waits on
// (its writer, or the one restoring it) has died, and if so sweeps, which
// drops and retakes the lock; *swept says so.  Lock held.  Returns 0 or
// an error from ra__os_sweep_locked.
static int
check_busy_owner(ra_objstore_t *st, uint32_t idx, bool *swept)
{
    const ra__os_entry_t *e = &st->entries[idx];

    *swept = false;
    if (e->slot == st->slot ||
        (e->state != RA__OS_CREATING && e->state != RA__OS_RESTORING) ||
        !ra__os_proc_dead(e->pid, 0)) {
        return 0;
    }
    *swept = true;
    return ra__os_sweep_locked(st, NULL);
}

int
ra_objstore_get(ra_objstore_t *st, ra_oid_t oid, int timeout_ms,
                ra_objstore_view_t *view)
{
    ra__os_room_t room = {0};
    uint64_t deadline, next_check = 0;
    bool exists = false, existed = false, swept = false;
    int rc;

    if (view != NULL) {
        view->data = NULL;
        view->size = 0;
    }
    if (!usable(st) || view == NULL) {
        return RA_EINVAL;
    }
    deadline = timeout_ms > 0 ? ra__os_now_ms() + (uint64_t)timeout_ms : 0;
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    for (;;) {
        uint32_t idx = ra__os_lookup(st, oid);
        uint64_t now;
        int ms;

        exists = idx != RA__OS_NIL;
        if (!exists && existed) {
            rc = RA_ENOENT; // aborted, or its writer died: no use waiting
            break;
        }
        existed = exists;
        if (exists) {
            const ra__os_entry_t *e = &st->entries[idx];

            if (e->state == RA__OS_SEALED) {
                rc = pin_view(st, idx, view);
                break;
            }
            if (e->state == RA__OS_SPILLED) {
                rc = ra__os_restore(st, idx, &room);
                if (rc == 0 || rc == RA_EAGAIN || rc == RA_ENOENT) {
                    continue;
                }
                if (rc == RA_EBADMSG) {
                    return rc;
                }
                break;
            }
            // Being created or restored by someone else.  Whether that
            // process died is a kill and a /proc read: once per slice.
            if ((now = ra__os_now_ms()) >= next_check) {
                next_check = now + WAIT_SLICE_MS;
                if ((rc = check_busy_owner(st, idx, &swept)) != 0) {
                    if (rc == RA_EBADMSG) {
                        return rc;
                    }
                    break;
                }
                if (swept) {
                    continue;
                }
            }
        }
        now = ra__os_now_ms();
        if (timeout_ms == 0 || (timeout_ms > 0 && now >= deadline)) {
            rc = exists ? RA_ETIMEOUT : RA_ENOENT;
            break;
        }
        ms = WAIT_SLICE_MS;
        if (timeout_ms > 0 && deadline - now < (uint64_t)ms) {
            ms = (int)(deadline - now);
        }
        if ((rc = ra__os_wait(st, ra__os_chan(oid), ms)) != 0) {
            return rc;
        }
    }
    ra__os_unlock(st);
    ra__os_flush_graves(st);
    return rc;
}

int
ra_objstore_release(ra_objstore_t *st, ra_objstore_view_t *view)
{
    uint32_t idx, pin;
    const ra__os_pin_t *r;
    int rc;

    if (!usable(st) || view == NULL || view->data == NULL) {
        return RA_EINVAL;
    }
    idx = view->ra_priv.idx;
    pin = view->ra_priv.pin;
    if (idx >= st->hdr->max_objects || pin >= st->hdr->npins) {
        return RA_EINVAL;
    }
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    r = &st->pins[pin];
    if (st->entries[idx].gen != view->ra_priv.gen || r->entry != idx ||
        r->client != st->slot || r->count == 0) {
        rc = RA_EINVAL;
    } else {
        ra__os_pin_drop(st, pin, 1);
        ra__os_reap(st, idx);
        view->data = NULL;
        view->size = 0;
    }
    ra__os_unlock(st);
    ra__os_flush_graves(st);
    return rc;
}

// ---- references, delete, spill, info ---------------------------------------

// lock_find takes the store's lock and finds oid's entry: 0 with the lock
// held and *idx set, or an error with the lock not held (RA_ENOENT when
// the store has no such object).
static int
lock_find(ra_objstore_t *st, ra_oid_t oid, uint32_t *idx)
{
    int rc = ra__os_lock(st);
    if (rc != 0) {
        return rc;
    }
    if ((*idx = ra__os_lookup(st, oid)) == RA__OS_NIL) {
        ra__os_unlock(st);
        return RA_ENOENT;
    }
    return 0;
}

int
ra_objstore_ref(ra_objstore_t *st, ra_oid_t oid)
{
    uint32_t idx;
    int rc;

    if (!usable(st)) {
        return RA_EINVAL;
    }
    if ((rc = lock_find(st, oid, &idx)) != 0) {
        return rc;
    }
    st->entries[idx].refs++;
    ra__os_unlock(st);
    return rc;
}

int
ra_objstore_unref(ra_objstore_t *st, ra_oid_t oid)
{
    uint32_t idx;
    int rc;

    if (!usable(st)) {
        return RA_EINVAL;
    }
    if ((rc = lock_find(st, oid, &idx)) != 0) {
        return rc;
    }
    if (st->entries[idx].refs == 0) {
        rc = RA_EINVAL;
    } else {
        st->entries[idx].refs--;
    }
    ra__os_unlock(st);
    return rc;
}

// doom_locked deletes sealed or spilled entry idx: gets no longer find
// it, and its space goes once its last pin does.  The lock is held.
static void
doom_locked(ra_objstore_t *st, uint32_t idx)
{
    ra__os_entry_t *e = &st->entries[idx];

    if (e->state == RA__OS_SEALED) {
        ra__os_lru_remove(st, idx);
    }
    e->flags |= RA__OS_F_DOOMED;
    st->hdr->objects--;
    ra__os_reap(st, idx);
}

int
ra_objstore_delete(ra_objstore_t *st, ra_oid_t oid)
{
    ra__os_entry_t *e;
    uint32_t idx;
    int rc;

    if (!usable(st)) {
        return RA_EINVAL;
    }
    if ((rc = lock_find(st, oid, &idx)) != 0) {
        return rc;
    }
    e = &st->entries[idx];
    if (e->state == RA__OS_CREATING) {
        rc = RA_EAGAIN;
    } else {
        doom_locked(st, idx);
    }
    ra__os_unlock(st);
    ra__os_flush_graves(st);
    return rc;
}

int
ra_objstore_delete_prefix(ra_objstore_t *st, const uint8_t *prefix,
                          size_t len, unsigned *deleted)
{
    uint32_t n = 0;
    int rc;

    if (deleted != NULL) {
        *deleted = 0;
    }
    if (!usable(st) || prefix == NULL || len == 0 ||
        len > sizeof(ra_oid_t)) {
        return RA_EINVAL;
    }
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    for (uint32_t idx = 0; idx < st->hdr->max_objects; idx++) {
        ra__os_entry_t *e = &st->entries[idx];
        if ((e->state != RA__OS_SEALED && e->state != RA__OS_SPILLED) ||
            (e->flags & RA__OS_F_DOOMED) ||
            memcmp(e->oid.b, prefix, len) != 0) {
            continue;
        }
        doom_locked(st, idx);
        n++;
    }
    ra__os_unlock(st);
    ra__os_flush_graves(st);
    if (deleted != NULL) {
        *deleted = n;
    }
    return 0;
}

int
ra_objstore_spill(ra_objstore_t *st, ra_oid_t oid)
{
    const ra__os_entry_t *e;
    uint32_t idx;
    int rc;

    if (!usable(st)) {
        return RA_EINVAL;
    }
    if (st->hdr->no_spill != 0) {
        return RA_ENOTSUP;
    }
    if ((rc = lock_find(st, oid, &idx)) != 0) {
        return rc;
    }
    e = &st->entries[idx];
    if (e->state == RA__OS_SPILLED) {
        rc = RA_EALREADY;
        goto out;
    }
    if (e->state != RA__OS_SEALED || e->pins != 0 ||
        (e->flags & RA__OS_F_SPILLING) != 0) {
        rc = RA_EAGAIN;
        goto out;
    }
    if ((rc = ra__os_spill_one(st, idx)) == RA_EBADMSG) {
        return rc;
    }
    // The spill may have been cancelled by a get that pinned the object.
    if (rc == 0 && st->entries[idx].state != RA__OS_SPILLED) {
        rc = RA_EAGAIN;
    }
out:
    ra__os_unlock(st);
    ra__os_flush_graves(st);
    return rc;
}

int
ra_objstore_info(ra_objstore_t *st, ra_oid_t oid, ra_objstore_info_t *info)
{
    const ra__os_entry_t *e;
    uint32_t idx;
    int rc;

    if (!usable(st) || info == NULL) {
        return RA_EINVAL;
    }
    if ((rc = lock_find(st, oid, &idx)) != 0) {
        return rc;
    }
    e = &st->entries[idx];
    *info = (ra_objstore_info_t){
        .size = e->size, .state = (ra_objstore_state_t)e->state,
        .refs = e->refs, .pins = e->pins,
        .writer = e->state == RA__OS_CREATING ? e->pid : 0};
    ra__os_unlock(st);
    return rc;
}

int
ra_objstore_sweep(ra_objstore_t *st, unsigned *reclaimed)
{
    int rc;

    if (reclaimed != NULL) {
        *reclaimed = 0;
    }
    if (!usable(st)) {
        return RA_EINVAL;
    }
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    if ((rc = ra__os_sweep_locked(st, reclaimed)) != RA_EBADMSG) {
        ra__os_unlock(st);
    }
    ra__os_flush_graves(st);
    return rc;
}

int
ra_objstore_stats(ra_objstore_t *st, ra_objstore_stats_t *out)
{
    const ra__os_hdr_t *h;
    int rc;

    if (!usable(st) || out == NULL) {
        return RA_EINVAL;
    }
    if ((rc = ra__os_lock(st)) != 0) {
        return rc;
    }
    h = st->hdr;
    *out = (ra_objstore_stats_t){
        .capacity = h->arena_size, .used = h->used, .objects = h->objects,
        .creating = h->creating, .pinned = h->pinned, .spilled = h->spilled,
        .spilled_bytes = h->spilled_bytes, .evictions = h->evictions,
        .spills = h->spills, .restores = h->restores,
        .reclaimed = h->reclaimed, .repairs = h->repairs,
        .max_objects = h->max_objects, .clients = h->nclients};
    ra__os_unlock(st);
    return 0;
}

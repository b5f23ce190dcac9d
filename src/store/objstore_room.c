// objstore_room.c - making room (eviction, spilling), restoring spilled
// objects, and cleaning up after dead processes.
//
// Spill and restore I/O runs without the lock.  The entry is marked first
// (SPILLING, or state RESTORING, with this handle's slot), which keeps its
// block where it is: eviction and other spills skip marked entries, and a
// delete only dooms them.  A get may still pin an object that is being
// spilled (its bytes are intact); the spill then sees the pin when it
// finishes and leaves the object in memory.  If the process doing the I/O
// dies, the sweep that finds its slot dead rolls the mark back.
//
// One spill writes a batch of objects into one file, each at a 64-byte
// aligned offset: creating a file costs far more than writing a small
// object (about 0.4 ms on ext4 here), so small objects would otherwise
// spill at a few thousand per second.  An object keeps its place in the
// file after a restore, so spilling it again writes nothing; the file is
// removed when its last object is freed.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "objstore_impl.h"
#include "ra_error.h"
#include "ra_log.h"

// SPILL_BATCH bounds the objects one spill writes.
#define SPILL_BATCH 64
// SPILL_MIN is how many bytes a spill made to find room tries to write at
// least (a sixteenth of the store when that is less), so that one file
// creation serves many small objects.
#define SPILL_MIN ((uint64_t)4 << 20)
// IO_CHUNK is the most one read or write call moves (Linux moves at most
// 2 GiB - 4 KiB per call anyway).
#define IO_CHUNK ((size_t)1 << 30)
// IO_WAIT_MS is how long an allocation that can only wait for other
// processes' spills sleeps before it looks again.
#define IO_WAIT_MS 100
// SWEEP_EVERY_MS: see ra__os_make_room.
#define SWEEP_EVERY_MS 1000

static const uint8_t zeros[RA__OS_ALIGN];

void
ra__os_file_path(const ra_objstore_t *st, uint64_t id, char *buf,
                 size_t len)
{
    snprintf(buf, len, "%s/%016" PRIx64 ".spill", st->hdr->spill_dir, id);
}

// ---- file I/O --------------------------------------------------------------

// writev_all writes the n buffers of iov in order, whatever partial writes
// the kernel makes.  iov is consumed.
static int
writev_all(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        ssize_t w = writev(fd, iov, n < IOV_MAX ? n : IOV_MAX);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static int
read_at(const char *path, uint64_t off, uint8_t *p, uint64_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0) {
        return -errno;
    }
    posix_fadvise(fd, (off_t)off, (off_t)size, POSIX_FADV_SEQUENTIAL);
    while (size > 0) {
        ssize_t n = pread(fd, p, size < IO_CHUNK ? size : IO_CHUNK,
                          (off_t)off);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            rc = -errno;
            break;
        }
        if (n == 0) {
            rc = -EIO; // the file is shorter than the object
            break;
        }
        p += n;
        off += (uint64_t)n;
        size -= (uint64_t)n;
    }
    close(fd);
    return rc;
}

// ---- reaping and evicting --------------------------------------------------

// ra__os_reap frees entry idx if it was deleted and nothing holds it any
// more: no pin, no spill or restore under way.
void
ra__os_reap(ra_objstore_t *st, uint32_t idx)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_entry_t *e = &st->entries[idx];

    if ((e->flags & RA__OS_F_DOOMED) == 0 || e->pins != 0 ||
        (e->flags & RA__OS_F_SPILLING) != 0 ||
        e->state == RA__OS_RESTORING || e->state == RA__OS_FREE) {
        return;
    }
    if (e->state == RA__OS_SPILLED) {
        h->spilled--;
        h->spilled_bytes -= e->size;
    }
    ra__os_entry_free(st, idx); // buries the spill file, if any
    ra__os_wake(st, RA__OS_CHAN_SPACE);
}

// ---- graves ----------------------------------------------------------------

typedef struct ra__os_grave {
    struct ra__os_grave *next;
    char path[];
} grave_t;

// bury_path renames the spill file at path to "<path>.dead" and queues it
// for unlinking once the lock is dropped.  Lock held.  When memory is
// short it is unlinked at once instead.
static void
bury_path(ra_objstore_t *st, const char *path)
{
    size_t len = strlen(path) + sizeof ".dead";
    grave_t *g = malloc(sizeof *g + len);

    if (g == NULL) {
        unlink(path);
        return;
    }
    snprintf(g->path, len, "%s.dead", path);
    if (rename(path, g->path) != 0) {
        free(g); // no file (a failed spill removed it)
        return;
    }
    pthread_mutex_lock(&st->graves_lock);
    g->next = st->graves;
    st->graves = g;
    atomic_fetch_add(&st->ngraves, 1);
    pthread_mutex_unlock(&st->graves_lock);
}

// ra__os_file_unref drops one entry's use of spill file f; the last one
// frees the slot and buries the file.  Lock held.
void
ra__os_file_unref(ra_objstore_t *st, uint32_t f)
{
    ra__os_sfile_t *sf = &st->sfiles[f];
    char path[PATH_MAX + 64];

    if (sf->live > 0 && --sf->live > 0) {
        return;
    }
    // The rename before the slot is freed: a crash in between leaves a
    // slot without objects, which repair frees, and a ".dead" file, which
    // the sweep that finds this process dead removes.  The other order
    // could leak a file that nothing names.
    ra__os_file_path(st, sf->id, path, sizeof path);
    bury_path(st, path);
    __atomic_store_n(&sf->state, RA__OS_SF_FREE, __ATOMIC_RELEASE);
    sf->next = st->hdr->free_sfile;
    st->hdr->free_sfile = f;
}

// file_take gives this handle a new spill file slot, WRITING, or returns
// RA__OS_NIL when all are taken.  Lock held.
static uint32_t
file_take(ra_objstore_t *st)
{
    ra__os_hdr_t *h = st->hdr;
    uint32_t f = h->free_sfile;
    ra__os_sfile_t *sf;

    if (f == RA__OS_NIL) {
        return f;
    }
    sf = &st->sfiles[f];
    h->free_sfile = sf->next;
    sf->id = h->file_seq++;
    sf->slot = st->slot;
    sf->live = 0;
    __atomic_store_n(&sf->state, RA__OS_SF_WRITING, __ATOMIC_RELEASE);
    return f;
}

// file_drop frees spill file slot f that is still WRITING (its write
// failed, or its writer died) and buries what was written.  Lock held.
static void
file_drop(ra_objstore_t *st, uint32_t f)
{
    st->sfiles[f].live = 0;
    ra__os_file_unref(st, f);
}

// ra__os_flush_graves unlinks the files this handle buried.  Lock not
// held; any thread.
void
ra__os_flush_graves(ra_objstore_t *st)
{
    grave_t *g;

    if (atomic_load_explicit(&st->ngraves, memory_order_relaxed) == 0) {
        return;
    }
    pthread_mutex_lock(&st->graves_lock);
    g = st->graves;
    st->graves = NULL;
    atomic_store(&st->ngraves, 0);
    pthread_mutex_unlock(&st->graves_lock);
    while (g != NULL) {
        grave_t *next = g->next;

        unlink(g->path);
        free(g);
        g = next;
    }
}

// remove_dead_files unlinks every "*.spill.dead" file in the spill
// directory: graves that a process queued and did not live to unlink.
// Lock not held.  A live process may unlink the same file at the same
// time; one of the two unlinks fails, harmlessly.
static void
remove_dead_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[PATH_MAX + 64];
    size_t n;

    if (d == NULL) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        n = strlen(de->d_name);
        if (n > 11 && strcmp(de->d_name + n - 11, ".spill.dead") == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

static void
evict(ra_objstore_t *st, uint32_t idx)
{
    st->hdr->objects--;
    st->hdr->evictions++;
    ra__os_entry_free(st, idx);
}

// ---- spilling --------------------------------------------------------------

typedef struct spill_job {
    uint32_t idx;
    bool write;          // false when the object is in a file already
    const uint8_t *data;
    uint64_t size;
    uint64_t off;        // its offset in the new file
} spill_job_t;

static bool
spillable(const ra__os_entry_t *e)
{
    return e->state == RA__OS_SEALED && e->pins == 0 &&
           (e->flags & (RA__OS_F_SPILLING | RA__OS_F_DOOMED)) == 0;
}

// write_batch writes the objects of jobs that need it into a new file at
// path, at their offsets.  Lock not held.
static int
write_batch(const char *path, const spill_job_t *jobs, uint32_t n)
{
    struct iovec iov[2 * SPILL_BATCH];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int niov = 0, rc;

    if (fd < 0) {
        return -errno;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t pad = (size_t)(-jobs[i].size & (RA__OS_ALIGN - 1));

        if (!jobs[i].write) {
            continue;
        }
        iov[niov++] = (struct iovec){(void *)jobs[i].data, jobs[i].size};
        if (pad > 0) {
            iov[niov++] = (struct iovec){(void *)zeros, pad};
        }
    }
    rc = writev_all(fd, iov, niov);
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
    }
    return rc;
}

// finish_spill ends job j with the lock held again: the object's memory is
// freed, unless the write failed, a get pinned it or a delete doomed it
// meanwhile (then it stays as it was, or is freed now).
static void
finish_spill(ra_objstore_t *st, const spill_job_t *j, int rc)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_entry_t *e = &st->entries[j->idx];

    e->flags &= ~(uint32_t)RA__OS_F_SPILLING;
    h->io_inflight--;
    if (rc != 0 || e->pins != 0 || (e->flags & RA__OS_F_DOOMED) != 0) {
        ra__os_reap(st, j->idx);
        return;
    }
    ra__os_lru_remove(st, j->idx);
    // The state first: a crash between the two lines leaves a SPILLED
    // entry and a block that repair sees as free.
    __atomic_store_n(&e->state, RA__OS_SPILLED, __ATOMIC_RELEASE);
    ra__os_arena_free(st, e->block);
    h->spilled++;
    h->spilled_bytes += e->size;
    h->spills++;
}

// spill_batch spills the n entries in idx, all spillable: the ones not in
// a file yet go into one new file.  Lock held; it is dropped while the
// file is written.  Returns 0, the write's -errno, RA_EFULL when no spill
// file slot is free, or RA_EBADMSG when the lock could not be taken again.
static int
spill_batch(ra_objstore_t *st, const uint32_t *idx, uint32_t n)
{
    spill_job_t jobs[SPILL_BATCH];
    char path[PATH_MAX + 64];
    uint32_t nwrite = 0, f = RA__OS_NIL;
    uint64_t off = 0;
    int rc = 0;

    for (uint32_t i = 0; i < n; i++) {
        const ra__os_entry_t *e = &st->entries[idx[i]];

        jobs[i] = (spill_job_t){.idx = idx[i],
                                .write = (e->flags & RA__OS_F_FILE) == 0,
                                .data = st->arena + e->block + RA__OS_BLKHDR,
                                .size = e->size, .off = off};
        if (jobs[i].write) {
            off += (e->size + RA__OS_ALIGN - 1) & ~(uint64_t)63;
            nwrite++;
        }
    }
    if (nwrite > 0 && (f = file_take(st)) == RA__OS_NIL) {
        return RA_EFULL;
    }
    for (uint32_t i = 0; i < n; i++) {
        ra__os_entry_t *e = &st->entries[idx[i]];

        e->flags |= RA__OS_F_SPILLING;
        e->slot = st->slot;
        e->pid = st->pid;
        st->hdr->io_inflight++;
    }
    if (nwrite > 0) {
        ra__os_file_path(st, st->sfiles[f].id, path, sizeof path);
        ra__os_unlock(st);
        rc = write_batch(path, jobs, n);
        {
            int lrc = ra__os_lock(st);

            if (lrc != 0) {
                return lrc;
            }
        }
        if (rc != 0) {
            file_drop(st, f);
            ra_log_warn("store", "%s: cannot spill to %s: %s", st->path,
                        path, ra_strerror(rc));
        } else {
            // The entries take the file before it counts as complete, so
            // a crash in between leaves a WRITING file that repair removes
            // and entries whose file reference repair drops.
            for (uint32_t i = 0; i < n; i++) {
                ra__os_entry_t *e = &st->entries[jobs[i].idx];

                if (jobs[i].write) {
                    e->sfile = f;
                    e->soff = jobs[i].off;
                    e->flags |= RA__OS_F_FILE;
                    st->sfiles[f].live++;
                }
            }
            __atomic_store_n(&st->sfiles[f].state, RA__OS_SF_LIVE,
                             __ATOMIC_RELEASE);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        finish_spill(st, &jobs[i], jobs[i].write ? rc : 0);
    }
    ra__os_wake(st, RA__OS_CHAN_SPACE);
    return rc;
}

// ra__os_spill_one spills entry idx, which the caller found spillable.
int
ra__os_spill_one(ra_objstore_t *st, uint32_t idx)
{
    return spill_batch(st, &idx, 1);
}

// ---- making room -----------------------------------------------------------

// ra__os_make_room takes one step towards a free block of bsize bytes (or,
// with need_entry, a free table entry): evict the least recently used
// object nobody references or pins; else sweep dead processes, if nobody
// did for SWEEP_EVERY_MS; else spill a batch of referenced objects; else
// sweep, once per allocation; else wait a little for other processes'
// spills.  Lock held; all but the eviction drop it for a while.  Returns 0
// when the caller should look again, RA_EFULL when no step is left, or
// RA_EBADMSG.  A sweep looks at every attached process (kill and /proc),
// which takes a while with many of them, hence the rate limit before
// spilling; when nothing is left to spill, it always runs.
int
ra__os_make_room(ra_objstore_t *st, uint64_t bsize, bool need_entry,
                 ra__os_room_t *room)
{
    ra__os_hdr_t *h = st->hdr;
    uint32_t cand[SPILL_BATCH], n = 0;
    uint64_t sum = 0;
    int rc;

    for (uint32_t i = h->lru_head; i != RA__OS_NIL;
         i = st->entries[i].lnext) {
        const ra__os_entry_t *e = &st->entries[i];

        if (e->refs == 0 && e->pins == 0 &&
            (e->flags & RA__OS_F_SPILLING) == 0) {
            evict(st, i);
            return 0;
        }
    }
    if (!room->swept &&
        ra__os_now_ms() - h->last_sweep_ms >= SWEEP_EVERY_MS) {
        room->swept = true;
        return ra__os_sweep_locked(st, NULL);
    }
    if (!need_entry && h->no_spill == 0) {
        uint64_t want = h->arena_size / 16 < SPILL_MIN ? h->arena_size / 16
                                                       : SPILL_MIN;

        want = bsize > want ? bsize : want;
        for (uint32_t i = h->lru_head; i != RA__OS_NIL && n < SPILL_BATCH &&
                                       sum < want;
             i = st->entries[i].lnext) {
            if (spillable(&st->entries[i])) {
                cand[n++] = i;
                sum += st->entries[i].bsize;
            }
        }
        if (n > 0) {
            rc = spill_batch(st, cand, n);
            return rc == RA_EBADMSG ? rc : rc == 0 ? 0 : RA_EFULL;
        }
    }
    if (!room->swept) {
        room->swept = true;
        return ra__os_sweep_locked(st, NULL);
    }
    if (h->io_inflight > 0) {
        return ra__os_wait(st, RA__OS_CHAN_SPACE, IO_WAIT_MS);
    }
    return RA_EFULL;
}

// ---- restoring -------------------------------------------------------------

// ra__os_restore reads spilled entry idx back into memory.  Lock held; it
// is dropped to make room and to read.  Returns 0 when the entry is SEALED
// (the caller pins it before dropping the lock), RA_EAGAIN when the entry
// changed hands meanwhile (look it up again), RA_ENOENT when it was deleted
// while being read, RA_EFULL, RA_EBADMSG or the read's -errno.
int
ra__os_restore(ra_objstore_t *st, uint32_t idx, ra__os_room_t *room)
{
    ra__os_hdr_t *h = st->hdr;
    ra__os_entry_t *e = &st->entries[idx];
    uint64_t gen = e->gen, bsize = ra__os_bsize(e->size), blk;
    uint64_t size, soff;
    uint8_t *dst;
    char path[PATH_MAX + 64];
    int rc;

    for (;;) {
        if ((blk = ra__os_arena_alloc(st, bsize, idx)) != RA__OS_BNIL) {
            break;
        }
        if ((rc = ra__os_make_room(st, bsize, false, room)) != 0) {
            return rc;
        }
        if (e->gen != gen || e->state != RA__OS_SPILLED ||
            (e->flags & RA__OS_F_DOOMED) != 0) {
            return RA_EAGAIN;
        }
    }
    e->block = blk;
    e->bsize = ((ra__os_blk_t *)(st->arena + blk))->size;
    e->slot = st->slot;
    e->pid = st->pid;
    __atomic_store_n(&e->state, RA__OS_RESTORING, __ATOMIC_RELEASE);
    h->io_inflight++;
    h->spilled--;
    h->spilled_bytes -= e->size;
    ra__os_file_path(st, st->sfiles[e->sfile].id, path, sizeof path);
    size = e->size;
    soff = e->soff;
    dst = st->arena + e->block + RA__OS_BLKHDR;
    ra__os_unlock(st);
    // The file stays: if the object is spilled again it need not be
    // written again.  It goes when its last object does.
    rc = read_at(path, soff, dst, size);
    {
        int lrc = ra__os_lock(st);

        if (lrc != 0) {
            return lrc;
        }
    }
    h->io_inflight--;
    if (rc != 0) {
        // Back to the file (which is still there) and the block goes.
        __atomic_store_n(&e->state, RA__OS_SPILLED, __ATOMIC_RELEASE);
        ra__os_arena_free(st, e->block);
        h->spilled++;
        h->spilled_bytes += e->size;
        ra__os_wake(st, ra__os_chan(e->oid));
        ra__os_wake(st, RA__OS_CHAN_SPACE);
        ra_log_warn("store", "%s: cannot restore %s: %s", st->path, path,
                    ra_strerror(rc));
        return rc;
    }
    __atomic_store_n(&e->state, RA__OS_SEALED, __ATOMIC_RELEASE);
    h->restores++;
    ra__os_wake(st, ra__os_chan(e->oid));
    ra__os_wake(st, RA__OS_CHAN_SPACE);
    if ((e->flags & RA__OS_F_DOOMED) != 0) {
        ra__os_reap(st, idx);
        return RA_ENOENT;
    }
    ra__os_lru_push(st, idx);
    return 0;
}

// ---- dead processes --------------------------------------------------------

// proc_stat reads the state letter and start time (field 22, in clock
// ticks since boot) of pid from /proc.  Returns false when the process is
// not there.
static bool
proc_stat(int32_t pid, char *state, uint64_t *start)
{
    char path[64], buf[1024];
    const char *p;
    unsigned long long t = 0;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "re")) == NULL) {
        return false;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    // The command name may hold spaces and parentheses: skip to the last
    // ')'.  Then come the state (field 3) and 18 fields before starttime.
    if ((p = strrchr(buf, ')')) == NULL ||
        sscanf(p + 1, " %c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
                      "%*s %*s %*s %*s %*s %*s %llu",
               state, &t) != 2) {
        *state = '?';
        t = 0;
    }
    *start = (uint64_t)t;
    return true;
}

// ra__os_proc_start returns the start time of pid, or 0 when /proc cannot
// say.
uint64_t
ra__os_proc_start(int32_t pid)
{
    char state;
    uint64_t start = 0;

    return proc_stat(pid, &state, &start) ? start : 0;
}

// ra__os_proc_dead says whether the process that attached as (pid, start)
// is gone: no such pid, a zombie, or a newer process under a reused pid.
bool
ra__os_proc_dead(int32_t pid, uint64_t start)
{
    char state;
    uint64_t now = 0;

    if (pid <= 0) {
        return true;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
        return true;
    }
    if (!proc_stat(pid, &state, &now)) {
        return access("/proc/self/stat", F_OK) == 0; // gone meanwhile
    }
    return state == 'Z' || state == 'X' ||
           (start != 0 && now != 0 && now != start);
}

// ra__os_cleanup_client undoes what client slot holds (objects being
// created, pins, spills and restores under way) and frees the slot.  Lock
// held.
void
ra__os_cleanup_client(ra_objstore_t *st, uint32_t slot)
{
    ra__os_hdr_t *h = st->hdr;

    for (uint32_t i = 0; i < h->max_objects; i++) {
        ra__os_entry_t *e = &st->entries[i];

        if (e->state == RA__OS_FREE || e->slot != slot) {
            continue;
        }
        if (e->state == RA__OS_CREATING) {
            h->creating--;
            ra__os_wake(st, ra__os_chan(e->oid));
            ra__os_entry_free(st, i);
        } else if (e->state == RA__OS_RESTORING) {
            ra__os_wake(st, ra__os_chan(e->oid));
            __atomic_store_n(&e->state, RA__OS_SPILLED, __ATOMIC_RELEASE);
            ra__os_arena_free(st, e->block);
            h->spilled++;
            h->spilled_bytes += e->size;
            h->io_inflight--;
            ra__os_reap(st, i);
        } else if ((e->flags & RA__OS_F_SPILLING) != 0) {
            e->flags &= ~(uint32_t)RA__OS_F_SPILLING;
            h->io_inflight--;
            ra__os_reap(st, i);
        }
    }
    for (uint32_t f = 0; f < h->max_objects; f++) {
        if (st->sfiles[f].state == RA__OS_SF_WRITING &&
            st->sfiles[f].slot == slot) {
            file_drop(st, f); // a partial file
        }
    }
    for (uint32_t p = 0; p < h->npins; p++) {
        ra__os_pin_t *r = &st->pins[p];

        if (r->count != 0 && r->client == slot) {
            uint32_t idx = r->entry;

            ra__os_pin_drop(st, p, r->count);
            ra__os_reap(st, idx);
        }
    }
    st->clients[slot].used = 0;
    h->nclients--;
    ra__os_wake(st, RA__OS_CHAN_SPACE);
}

typedef struct victim {
    uint32_t slot;
    int32_t pid;
    uint64_t start;
} victim_t;

// ra__os_sweep_locked cleans up the slots of dead processes.  Lock held;
// it is dropped while the processes are looked at (kill and /proc), so the
// caller must look at the store again afterwards.  Returns 0, RA_ENOMEM or
// RA_EBADMSG; *reclaimed (if not NULL) gets the number of slots cleaned.
int
ra__os_sweep_locked(ra_objstore_t *st, unsigned *reclaimed)
{
    ra__os_hdr_t *h = st->hdr;
    victim_t *v = malloc(sizeof *v * h->max_clients);
    uint32_t n = 0, dead = 0;
    int rc;

    if (reclaimed != NULL) {
        *reclaimed = 0;
    }
    if (v == NULL) {
        return RA_ENOMEM;
    }
    h->last_sweep_ms = ra__os_now_ms();
    for (uint32_t i = 0; i < h->max_clients; i++) {
        if (st->clients[i].used != 0 && i != st->slot) {
            v[n++] = (victim_t){i, st->clients[i].pid, st->clients[i].start};
        }
    }
    ra__os_unlock(st);
    for (uint32_t i = 0; i < n; i++) {
        if (ra__os_proc_dead(v[i].pid, v[i].start)) {
            v[dead++] = v[i];
        }
    }
    if (dead > 0 && h->no_spill == 0) {
        remove_dead_files(h->spill_dir);
    }
    if ((rc = ra__os_lock(st)) != 0) {
        free(v);
        return rc;
    }
    n = 0;
    for (uint32_t i = 0; i < dead; i++) {
        const ra__os_client_t *c = &st->clients[v[i].slot];

        if (c->used != 0 && c->pid == v[i].pid && c->start == v[i].start) {
            ra_log_info("store", "%s: process %d died attached; releasing "
                        "what it held", st->path, (int)v[i].pid);
            ra__os_cleanup_client(st, v[i].slot);
            h->reclaimed++;
            n++;
        }
    }
    free(v);
    if (reclaimed != NULL) {
        *reclaimed = n;
    }
    return 0;
}

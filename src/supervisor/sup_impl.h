// sup_impl.h - internals of the supervisor module (src/ only).
#ifndef RA_SUP_IMPL_H
#define RA_SUP_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ra_supervisor.h"

// ---- OS-process children (osproc.c) ----
//
// One process-wide watcher thread (started on first use) holds a pidfd for
// every process started here and reaps each one when it ends, so there are
// no zombies and the application's other children are never waited for.

// The message the watcher sends to a process's owner when it ends: tag
// RA__TAG_OSEXIT, bytes payload ra__osexit_t.
#define RA__TAG_OSEXIT (-1102)

typedef struct ra__osexit {
    int64_t ospid;
    int status;     // as from waitpid
    uint64_t token; // the token given to ra__os_spawn
} ra__osexit_t;

// ra__os_spawn starts argv[0] with argv and envp (NULL: inherit) by
// posix_spawn: stdin from /dev/null, stdout and stderr inherited, every
// other descriptor closed, default signal mask and dispositions.  The
// watcher reaps it and sends owner (in rt) an RA__TAG_OSEXIT message with
// token, unless ra__os_stop is stopping it.  With fork_server the process
// is forked by the fork server of argv and envp instead, started first if
// there is none (see ra_fork_server_main); where no server can serve,
// posix_spawn it is.  Returns 0 and *out, -errno (ENOENT for a missing
// executable) or RA_ENOMEM.
int ra__os_spawn(ra_runtime_t *rt, ra_pid_t owner, const char *const *argv,
                 const char *const *envp, bool fork_server, uint64_t token,
                 pid_t *out);

// ra__strv_copy copies the NULL-terminated string array v, with extra
// (unless NULL) appended; NULL without memory.  ra__strv_free frees such a
// copy (NULL is fine).
char **ra__strv_copy(const char *const *v, const char *extra);
void ra__strv_free(char **v);

// The fork server's sockets (descriptors in the server) and messages.
#define RA__FS_CTL 3 // requests: one byte; answers: ra__fs_reply_t
#define RA__FS_EV 4  // exit reports: ra__fs_exit_t
#define RA__FS_NAME "rayo-forksrv" // the server's process name (comm)

// ra__fs_idle_ms reads a value of RAYO_FORK_SERVER_IDLE_MS: a server's
// idle time in ms (1 to 3600000), RA__FS_IDLE_MS for NULL, -1 for anything
// else (the server then takes RA__FS_IDLE_MS; its starter warns).
#define RA__FS_IDLE_MS 60000
int ra__fs_idle_ms(const char *v);

typedef struct ra__fs_reply {
    int32_t pid; // the child, or -1
    int32_t err; // errno value when pid is -1 (ENOTSUP: refused)
} ra__fs_reply_t;

typedef struct ra__fs_exit {
    int32_t pid;
    int32_t status; // as from waitpid
} ra__fs_exit_t;

// ra__os_stop stops a process started by ra__os_spawn: SIGTERM, then waits
// up to timeout_ms (negative: forever; 0: SIGKILL at once), then SIGKILL,
// and waits until the watcher has reaped it.  No RA__TAG_OSEXIT is sent for
// it.  Blocks the calling thread (a scheduler thread hands its queue on
// meanwhile).  Returns 0 and the wait status in
// *status (may be NULL), or RA_ENOENT if the process is unknown (it has
// already been reaped and its RA__TAG_OSEXIT message sent).
int ra__os_stop(pid_t pid, int64_t timeout_ms, int *status);

// ra__sched_wait_begin and ra__sched_wait_end (the actor runtime's)
// bracket a wait that blocks this thread: on a scheduler thread the
// actors queued on it move to other threads, and a spare thread starts
// if fewer than the configured number would be left running.
bool ra__sched_wait_begin(void);
void ra__sched_wait_end(bool began);

// ra__os_reason maps a wait status to an exit reason (RA_NORMAL,
// RA_OS_EXIT(n), RA_OS_SIGNAL(n)).
ra_reason_t ra__os_reason(int status);

#endif

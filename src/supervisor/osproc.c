// osproc.c - OS processes as supervisor children: spawn, reap, stop.
//
// One process-wide watcher thread polls a pidfd per process started here
// (plus an eventfd that wakes it when one is added) and reaps each process
// with waitpid(pid) as soon as its pidfd turns readable.  Waiting for
// exactly our pids, never waitpid(-1) or SIGCHLD, leaves the application's
// other children alone and needs no signal handler in a library.
//
// Each process has an entry in a list under one mutex.  An entry moves
// RUNNING -> EXITED (reaped, its owner not yet told) -> SENDING (the
// watcher is sending RA__TAG_OSEXIT outside the mutex) -> freed.  An entry
// that ra__os_stop is stopping is never told about: the watcher records
// its status and the last stopper frees it.  Entries are separate
// allocations so a stopper can sleep on the condition variable holding a
// pointer to its entry.
//
// Where pidfd_open fails (valgrind up to 3.19 does not know it, kernels
// before 5.3 lack it, or the process is out of descriptors) the process is
// still started and watched: the watcher then wakes every TICK_MS and
// tries waitpid(pid, WNOHANG) on it, so its exit is seen a little later.
//
// Only the watcher closes pidfds, so a descriptor it polls cannot be
// closed and reused under it.  Signals are sent with the mutex held and
// only to entries not yet reaped: a reaped pid may already belong to a new
// process.
//
// Fork servers (ra_child_spec_t fork_server; the server's side is
// forksrv.c): one per argv and envp, itself an entry here that nobody is
// told about.  Its children are entries with srv set: not our children,
// so the watcher does not wait for them but reads their exits from the
// server's report socket, and signals them through the pidfd the server
// passed (the server reaps them, so their pid may be reused once the
// report is out).  A spawner holds the mutex from its request to the
// child's entry, so a report never comes before the entry it is for.
// When the server dies its children die too (PR_SET_PDEATHSIG): the
// watcher reports each as killed.  Only the watcher closes a server's
// sockets; a spawner that finds a server broken marks it and kills it.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ra_log.h"
#include "sup_impl.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 // the same number on every architecture
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define TICK_MS 10    // checking processes that have no pidfd
#define RETRY_MS 100  // retrying after running out of memory
#define SERVE_WAIT_MS 2000 // most a spawner waits for a ready server's fork

extern char **environ;

typedef enum osstate {
    OS_RUNNING = 0,
    OS_EXITED = 1,  // reaped; the owner is still to be told
    OS_SENDING = 2, // the watcher is telling the owner, outside the mutex
    OS_REAPED = 3   // reaped while being stopped; the stoppers free it
} osstate_t;

// A fork server, under mtx.  Freed once its sockets are closed, its own
// process reaped and no entry points at it.
typedef struct fsrv {
    struct fsrv *next;
    char **argv;       // what it runs: the key, with envp
    char **envp;       // NULL: it inherited the environment
    int ctl, ev;       // our ends of its sockets; -1 once closed
    bool ready;        // it has said so: it serves requests
    bool broken;       // no more requests: it is dying
    bool refused;      // the program cannot serve: never start it again
    bool proc;         // its own entry is not freed yet
    unsigned users;    // entries of its children
} fsrv_t;

typedef struct osent {
    struct osent *next;
    pid_t pid;
    int pidfd; // -1 once reaped, or if pidfd_open failed
    osstate_t state;
    unsigned stoppers; // ra__os_stop calls waiting on this entry
    int status;
    ra_runtime_t *rt;
    ra_pid_t owner;
    uint64_t token;
    fsrv_t *srv;    // forked by this server (not our child)
    fsrv_t *serves; // this entry is that server's own process
} osent_t;

// Global: the entries, the eventfd and the watcher's start-up state, all
// under mtx; cond (CLOCK_MONOTONIC) is broadcast whenever an entry is
// reaped or freed.  The watcher starts on the first ra__os_spawn and is
// never stopped: it is detached, blocks every signal and sleeps in poll(),
// so it keeps no process from exiting (exit() ends it) and steals no
// signal from the application.  It is never joined, so its stack and its
// poll buffer stay allocated until the process exits.
static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static bool started;
static int evfd = -1;
static osent_t *ents;
static fsrv_t *servers;

static osent_t *
find(pid_t pid)
{
    for (osent_t *e = ents; e != NULL; e = e->next) {
        if (e->pid == pid) {
            return e;
        }
    }
    return NULL;
}

void
ra__strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        free(v[i]);
    }
    free(v);
}

char **
ra__strv_copy(const char *const *v, const char *extra)
{
    size_t n = 0;
    while (v[n] != NULL) {
        n++;
    }
    char **c = calloc(n + 2, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    for (size_t i = 0; i <= n; i++) {
        const char *src = i < n ? v[i] : extra;
        if (src == NULL) {
            break;
        }
        if ((c[i] = strdup(src)) == NULL) {
            ra__strv_free(c);
            return NULL;
        }
    }
    return c;
}

// server_put frees s once nothing needs it; the mutex is held.  A server
// that refused stays, so that its program is not started again.
static void
server_put(fsrv_t *s)
{
    if (s->ctl >= 0 || s->ev >= 0 || s->proc || s->users > 0 || s->refused) {
        return;
    }
    for (fsrv_t **pp = &servers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    ra__strv_free(s->argv);
    ra__strv_free(s->envp);
    free(s);
}

static void
unlink_free(osent_t *dead)
{
    for (osent_t **pp = &ents; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == dead) {
            *pp = dead->next;
            if (dead->srv != NULL) {
                dead->srv->users--;
                server_put(dead->srv);
            }
            if (dead->serves != NULL) {
                dead->serves->proc = false;
                server_put(dead->serves);
            }
            free(dead);
            return;
        }
    }
}

static void
wake_watcher(void)
{
    uint64_t one = 1;
    // A full counter (2^64 - 2 pending wake-ups) fails with EAGAIN, and
    // the watcher is then due to wake anyway.
    while (write(evfd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

// ended records status as e's end; the mutex is held.  e's pidfd is
// closed (only the watcher calls this).
static void
ended(osent_t *e, int status)
{
    if (e->pidfd >= 0) {
        close(e->pidfd);
        e->pidfd = -1;
    }
    e->status = status;
    e->state = e->stoppers > 0 ? OS_REAPED : OS_EXITED;
    if (e->stoppers > 0) {
        pthread_cond_broadcast(&cond);
    }
}

// reap collects e's status; the mutex is held.  Returns false when the
// process is not waitable yet.
static bool
reap(osent_t *e)
{
    int status = 0;
    pid_t r;
    do {
        r = waitpid(e->pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        return false;
    }
    if (r < 0) {
        // Someone else waited for it (SIGCHLD set to SIG_IGN, or a
        // waitpid(-1) in the application), so its status is lost.
        ra_log_warn("supervisor", "os process %ld was reaped elsewhere: %s",
                    (long)e->pid, ra_err_name(-errno));
        status = W_EXITCODE(255, 0);
    }
    ended(e, status);
    return true;
}

// tell_owner sends e's RA__TAG_OSEXIT message; called without the mutex
// while e is OS_SENDING, which keeps ra__os_stop from returning (and the
// supervisor from destroying rt) meanwhile.  Returns false if the message
// could not be made, to be retried.
static bool
tell_owner(const osent_t *e)
{
    ra__osexit_t ex;
    ra_msg_t *msg = NULL;
    int rc;

    memset(&ex, 0, sizeof ex); // no stray padding bytes in the message
    ex.ospid = e->pid;
    ex.status = e->status;
    ex.token = e->token;
    if (ra_msg_new_bytes(&msg, RA__TAG_OSEXIT, &ex, sizeof ex) != 0) {
        return false;
    }
    rc = ra_runtime_send(e->rt, e->owner, &msg);
    if (rc != 0) {
        // The owner has ended (or refuses messages): nobody is left to
        // restart the process, so the news goes nowhere.
        ra_log_debug("supervisor", "exit of os process %ld not delivered: %s",
                     (long)e->pid, ra_err_name(rc));
        ra_msg_unref(&msg);
    }
    return true;
}

// send_exits tells the owners of all EXITED entries.  Returns true if a
// message could not be made and must be retried later.
static bool
send_exits(void)
{
    bool retry = false;

    pthread_mutex_lock(&mtx);
    for (;;) {
        osent_t *e = ents;
        while (e != NULL && e->state != OS_EXITED) {
            e = e->next;
        }
        if (e == NULL) {
            break;
        }
        if (e->serves != NULL) {
            // A fork server's own end: its sockets tell the rest.
            unlink_free(e);
            continue;
        }
        e->state = OS_SENDING;
        pthread_mutex_unlock(&mtx);
        bool sent = tell_owner(e);
        pthread_mutex_lock(&mtx);
        if (!sent) {
            // Out of memory: keep it, and skip the others for now; the
            // watcher polls with a timeout and tries again.
            e->state = OS_EXITED;
            retry = true;
            break;
        }
        unlink_free(e);
        pthread_cond_broadcast(&cond); // a stopper may wait for SENDING
    }
    pthread_mutex_unlock(&mtx);
    return retry;
}

// Global: the watcher's poll buffer, only touched by the watcher thread.
// A slot holds an entry's pidfd (ppids) or a fork server's report socket
// (psrvs).
static struct pollfd *pfds;
static pid_t *ppids;
static fsrv_t **psrvs;
static size_t pcap;

// server_lost closes s's sockets (it died, or refused, or a spawner found
// it broken): its children die with it (PR_SET_PDEATHSIG), and each is
// killed here too, in case it has not set that yet, and reported as
// killed.  The mutex is held; only the watcher calls this.
static void
server_lost(fsrv_t *s)
{
    if (s->ctl >= 0) {
        close(s->ctl);
        s->ctl = -1;
    }
    if (s->ev >= 0) {
        close(s->ev);
        s->ev = -1;
    }
    s->broken = true;
    for (osent_t *e = ents; e != NULL; e = e->next) {
        if (e->srv == s && e->state == OS_RUNNING) {
            if (e->pidfd >= 0) {
                (void)syscall(SYS_pidfd_send_signal, e->pidfd, SIGKILL, NULL,
                              0);
            }
            ended(e, SIGKILL);
        }
    }
    server_put(s);
}

// server_reports reads what s reports: its children's exits; the mutex is
// held.
static void
server_reports(fsrv_t *s)
{
    for (;;) {
        ra__fs_exit_t ex;
        ssize_t n = recv(s->ev, &ex, sizeof ex, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n != (ssize_t)sizeof ex) {
            server_lost(s); // end of file: the server is gone
            return;
        }
        if (ex.pid == 0) { // its greeting: ready, or refusing
            s->ready = ex.status == 0;
            if (ex.status != 0 && !s->refused) {
                s->refused = true;
                ra_log_warn("supervisor", "%s had other threads when it "
                            "reached ra_fork_server_main, so it cannot fork "
                            "children: they are executed afresh",
                            s->argv[0]);
            }
            continue;
        }
        for (osent_t *e = ents; e != NULL; e = e->next) {
            if (e->srv == s && e->pid == ex.pid && e->state == OS_RUNNING) {
                ended(e, ex.status);
                break;
            }
        }
    }
}

// fill_pollset puts the eventfd and every running entry's pidfd into the
// poll buffer and returns how many.  Returns in *timeout how long poll may
// sleep: TICK_MS if some running entry has no pidfd, RETRY_MS if some did
// not fit (the buffer could not grow), else forever.
static size_t
fill_pollset(int *timeout)
{
    size_t n = 1, want = 1;
    bool tick = false;

    pthread_mutex_lock(&mtx);
    for (osent_t *e = ents; e != NULL; e = e->next) {
        // A fork server's child is heard of through its server.
        bool own = e->state == OS_RUNNING && e->srv == NULL;
        want += own && e->pidfd >= 0;
        tick = tick || (own && e->pidfd < 0);
    }
    for (fsrv_t *s = servers; s != NULL; s = s->next) {
        want += s->ev >= 0;
    }
    if (want > pcap) {
        size_t cap = want + want / 2 + 8;
        struct pollfd *p = realloc(pfds, cap * sizeof *p);
        if (p != NULL) {
            pfds = p;
            pid_t *q = realloc(ppids, cap * sizeof *q);
            if (q != NULL) {
                ppids = q;
                fsrv_t **r = realloc(psrvs, cap * sizeof *r);
                if (r != NULL) {
                    psrvs = r;
                    pcap = cap;
                }
            }
        }
    }
    *timeout = tick ? TICK_MS : want > pcap ? RETRY_MS : *timeout;
    if (pcap == 0) {
        pthread_mutex_unlock(&mtx);
        return 0; // not even room for the eventfd: sleep and try again
    }
    pfds[0] = (struct pollfd){.fd = evfd, .events = POLLIN};
    for (fsrv_t *s = servers; s != NULL && n < pcap; s = s->next) {
        if (s->ev >= 0) {
            pfds[n] = (struct pollfd){.fd = s->ev, .events = POLLIN};
            ppids[n] = 0;
            psrvs[n] = s;
            n++;
        }
    }
    for (osent_t *e = ents; e != NULL && n < pcap; e = e->next) {
        if (e->state == OS_RUNNING && e->srv == NULL && e->pidfd >= 0) {
            pfds[n] = (struct pollfd){.fd = e->pidfd, .events = POLLIN};
            ppids[n] = e->pid;
            psrvs[n] = NULL;
            n++;
        }
    }
    pthread_mutex_unlock(&mtx);
    return n;
}

// find_own finds the entry of our own child pid.
static osent_t *
find_own(pid_t pid)
{
    for (osent_t *e = ents; e != NULL; e = e->next) {
        if (e->pid == pid && e->srv == NULL) {
            return e;
        }
    }
    return NULL;
}

static void *
watcher(void *arg)
{
    for (;;) {
        int timeout = send_exits() ? RETRY_MS : -1;
        size_t n = fill_pollset(&timeout);

        if (poll(pfds, n, timeout) < 0) {
            continue; // EINTR; ENOMEM is retried too
        }
        if (n > 0 && pfds[0].revents != 0) {
            uint64_t count;
            if (read(evfd, &count, sizeof count) < 0) {
                // EAGAIN: another read drained it; nothing else can fail.
            }
        }
        pthread_mutex_lock(&mtx);
        for (size_t i = 1; i < n; i++) {
            if (pfds[i].revents == 0) {
                continue;
            }
            if (psrvs[i] != NULL) {
                // Servers are freed only here (server_lost, or the entry
                // of its process in send_exits, this thread too), so it is
                // still there.
                server_reports(psrvs[i]);
                continue;
            }
            osent_t *e = find_own(ppids[i]);
            // Only this thread moves an entry out of RUNNING, so it is
            // still there; the check is for peace of mind.
            if (e != NULL && e->state == OS_RUNNING) {
                reap(e);
            }
        }
        for (osent_t *e = ents; e != NULL; e = e->next) {
            if (e->state == OS_RUNNING && e->srv == NULL && e->pidfd < 0) {
                reap(e); // false (still running) is the common case
            }
        }
        // A server a spawner found broken: the watcher closes it.
        for (fsrv_t *s = servers, *next; s != NULL; s = next) {
            next = s->next;
            if (s->broken && s->ev >= 0) {
                server_lost(s);
            }
        }
        pthread_mutex_unlock(&mtx);
    }
    return NULL;
}

// start_watcher starts the watcher if it is not running; the mutex is
// held.  It is not a pthread_once so that a failed start (out of memory or
// descriptors) is tried again by the next spawn.
static int
start_watcher(void)
{
    pthread_condattr_t ca;
    pthread_attr_t ta;
    pthread_t th;
    sigset_t all, old;
    int rc;

    if (started) {
        return 0;
    }
    if (evfd < 0) {
        evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (evfd < 0) {
            return -errno;
        }
        // The cond is made once, with the eventfd, and kept: a thread may
        // already wait on it if a later step fails.
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        rc = pthread_cond_init(&cond, &ca);
        pthread_condattr_destroy(&ca);
        if (rc != 0) {
            close(evfd);
            evfd = -1;
            return -rc;
        }
    }
    if ((rc = pthread_attr_init(&ta)) != 0) {
        return -rc;
    }
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    // The watcher inherits a full mask, so process-directed signals go to
    // the application's threads and poll is never interrupted.
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&th, &ta, watcher, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&ta);
    if (rc != 0) {
        return -rc;
    }
    started = true;
    return 0;
}

// spawn_child runs posix_spawn with the attributes described in
// sup_impl.h; ctl and ev (-1: none) become the child's descriptors
// RA__FS_CTL and RA__FS_EV (they must be above both).  Returns 0 or
// -errno.
static int
spawn_child(const char *const *argv, const char *const *envp, int ctl,
            int ev, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t sa;
    sigset_t none, all;
    int rc;

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        return -rc;
    }
    if ((rc = posix_spawnattr_init(&sa)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    // The runtime's threads block signals and may ignore SIGPIPE; the
    // child must start as if from a shell, with nothing blocked or
    // ignored.  SIGKILL and SIGSTOP cannot be changed and are left out.
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    // Closing first leaves the child room to open /dev/null even when the
    // parent is at its descriptor limit.
    if (ctl >= 0 &&
        ((rc = posix_spawn_file_actions_adddup2(&fa, ctl, RA__FS_CTL)) != 0 ||
         (rc = posix_spawn_file_actions_adddup2(&fa, ev, RA__FS_EV)) != 0)) {
        goto done;
    }
    if ((rc = posix_spawn_file_actions_addclosefrom_np(
             &fa, ctl >= 0 ? RA__FS_EV + 1 : 3)) != 0 ||
        (rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                               0)) != 0 ||
        (rc = posix_spawnattr_setflags(
             &sa, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0 ||
        (rc = posix_spawnattr_setsigmask(&sa, &none)) != 0 ||
        (rc = posix_spawnattr_setsigdefault(&sa, &all)) != 0) {
        goto done;
    }
    // posix_spawn copies argv and envp into the new image; the casts only
    // drop the const that its old prototype lacks.
    rc = posix_spawn(pid, argv[0], &fa, &sa, (char *const *)argv,
                     envp != NULL ? (char *const *)envp : environ);
done:
    posix_spawnattr_destroy(&sa);
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
}

static bool
same_strv(char *const *a, const char *const *b)
{
    if (a == NULL || b == NULL) {
        return a == NULL && b == NULL;
    }
    size_t i = 0;
    for (; a[i] != NULL && b[i] != NULL; i++) {
        if (strcmp(a[i], b[i]) != 0) {
            return false;
        }
    }
    return a[i] == NULL && b[i] == NULL;
}

// high_fd moves *fd above the descriptors a server's sockets take in it.
static int
high_fd(int *fd)
{
    int h = fcntl(*fd, F_DUPFD_CLOEXEC, RA__FS_EV + 1);
    if (h < 0) {
        return -errno;
    }
    close(*fd);
    *fd = h;
    return 0;
}

// warn_idle says so when env's RAYO_FORK_SERVER_IDLE_MS is not a time
// that the server for program can take (it then takes the default).
static void
warn_idle(const char *program, char *const *env)
{
    static const char key[] = "RAYO_FORK_SERVER_IDLE_MS=";
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        if (strncmp(env[i], key, sizeof key - 1) == 0 &&
            ra__fs_idle_ms(env[i] + sizeof key - 1) < 0) {
            ra_log_warn("supervisor", "%s is not a whole number of ms "
                        "from 1 to 3600000: the fork server for %s exits "
                        "%d ms after its last child", env[i], program,
                        RA__FS_IDLE_MS);
        }
    }
}

// server_start starts a fork server for argv and envp and makes its entry
// (owner rt); the mutex is held.  Returns it, or NULL.
static fsrv_t *
server_start(ra_runtime_t *rt, const char *const *argv,
             const char *const *envp)
{
    int c[2] = {-1, -1}, v[2] = {-1, -1};
    fsrv_t *s = calloc(1, sizeof *s);
    osent_t *e = calloc(1, sizeof *e);
    char mark[64];
    snprintf(mark, sizeof mark, "RAYO_FORK_SERVER=%ld", (long)getpid());
    char **env = ra__strv_copy(envp != NULL ? envp : (const char *const *)environ,
                           mark);
    warn_idle(argv[0], env);
    int rc = RA_ENOMEM;
    if (s == NULL || e == NULL || env == NULL ||
        (s->argv = ra__strv_copy(argv, NULL)) == NULL ||
        (envp != NULL && (s->envp = ra__strv_copy(envp, NULL)) == NULL)) {
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c) != 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, v) != 0) {
        rc = -errno;
        goto fail;
    }
    if ((rc = high_fd(&c[1])) != 0 || (rc = high_fd(&v[1])) != 0) {
        goto fail;
    }
    pid_t pid;
    if ((rc = spawn_child(argv, (const char *const *)env, c[1], v[1], &pid)) !=
        0) {
        goto fail;
    }
    close(c[1]);
    close(v[1]);
    ra__strv_free(env);
    s->ctl = c[0];
    s->ev = v[0];
    s->proc = true;
    *e = (osent_t){.pid = pid, .pidfd = (int)syscall(SYS_pidfd_open, pid, 0),
                   .state = OS_RUNNING, .rt = rt, .serves = s};
    e->next = ents;
    ents = e;
    s->next = servers;
    servers = s;
    wake_watcher(); // its pidfd and report socket join the poll set
    return s;
fail:
    ra_log_warn("supervisor", "cannot start a fork server for %s (%s): its "
                "children are executed afresh", argv[0], ra_err_name(rc));
    for (int i = 0; i < 2; i++) {
        if (c[i] >= 0) {
            close(c[i]);
        }
        if (v[i] >= 0) {
            close(v[i]);
        }
    }
    ra__strv_free(env);
    if (s != NULL) {
        ra__strv_free(s->argv);
        ra__strv_free(s->envp);
    }
    free(s);
    free(e);
    return NULL;
}

// server_break gives up on s: no more requests, its process killed (the
// watcher then closes its sockets and reports its children as killed).
// The mutex is held.
static void
server_break(fsrv_t *s)
{
    s->broken = true;
    for (osent_t *e = ents; e != NULL; e = e->next) {
        if (e->serves == s && e->state == OS_RUNNING) {
            kill(e->pid, SIGKILL); // not reaped: still our child's pid
        }
    }
    wake_watcher();
}

// server_fork asks the ready server s for a child; the mutex is held (a
// report of the child's end waits for its entry).  Returns 0 with *pid
// and *pidfd (-1 if the server has none), or an error (s is then broken).
static int
server_fork(fsrv_t *s, pid_t *pid, int *pidfd)
{
    ra__fs_reply_t r;
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct iovec iov = {.iov_base = &r, .iov_len = sizeof r};
    struct msghdr mh;
    ssize_t n;
    int rc = RA_ECLOSED;
    *pidfd = -1;
    do {
        n = send(s->ctl, "F", 1, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    struct pollfd p = {.fd = s->ctl, .events = POLLIN};
    int k;
    do {
        k = n == 1 ? poll(&p, 1, SERVE_WAIT_MS) : -1;
    } while (k < 0 && n == 1 && errno == EINTR);
    if (k <= 0) {
        goto broken; // dead, or hung
    }
    memset(&mh, 0, sizeof mh);
    memset(&u, 0, sizeof u);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    do {
        n = recvmsg(s->ctl, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof r) {
        goto broken;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
         c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int))) {
            memcpy(pidfd, CMSG_DATA(c), sizeof(int));
        }
    }
    if (r.pid > 0) {
        *pid = (pid_t)r.pid;
        return 0;
    }
    if (*pidfd >= 0) {
        close(*pidfd);
        *pidfd = -1;
    }
    rc = r.err > 0 ? -r.err : RA_EINVAL;
    ra_log_warn("supervisor", "the fork server of %s could not fork: %s",
                s->argv[0], ra_err_name(rc));
    if (r.err == EAGAIN || r.err == ENOMEM) {
        return rc; // the machine's limits: executing it may fail too
    }
broken:
    ra_log_debug("supervisor", "the fork server of %s does not serve: "
                 "starting another", s->argv[0]);
    server_break(s);
    return rc;
}

// spawn_forked makes a child of argv and envp through their fork server;
// the mutex is held.  Returns 0 with *srv, *pid and *pidfd, or an error:
// the caller then executes the child itself.  With no server yet, one is
// started and this child is executed: the server serves once it has
// greeted (it first runs the program up to ra_fork_server_main).
static int
spawn_forked(ra_runtime_t *rt, const char *const *argv,
             const char *const *envp, fsrv_t **srv, pid_t *pid, int *pidfd)
{
    fsrv_t *s = NULL;
    for (fsrv_t *r = servers; r != NULL; r = r->next) {
        if (!same_strv(r->argv, argv) || !same_strv(r->envp, envp)) {
            continue;
        }
        if (r->refused) {
            return RA_ENOTSUP;
        }
        if (!r->broken) {
            s = r;
        }
    }
    if (s == NULL) {
        (void)server_start(rt, argv, envp);
        return RA_EAGAIN;
    }
    if (!s->ready) {
        return RA_EAGAIN;
    }
    int rc = server_fork(s, pid, pidfd);
    if (rc == 0) {
        *srv = s;
    }
    return rc;
}

int
ra__os_spawn(ra_runtime_t *rt, ra_pid_t owner, const char *const *argv,
             const char *const *envp, bool fork_server, uint64_t token,
             pid_t *out)
{
    osent_t *e = NULL;
    pid_t pid = -1;
    int rc, pidfd;

    if (rt == NULL || argv == NULL || argv[0] == NULL || out == NULL) {
        return RA_EINVAL;
    }
    // Everything that can fail is done before the child exists, so that a
    // failure never leaves a process nobody watches.
    if ((e = calloc(1, sizeof *e)) == NULL) {
        return RA_ENOMEM;
    }
    pthread_mutex_lock(&mtx);
    rc = start_watcher();
    pthread_mutex_unlock(&mtx);
    if (rc != 0) {
        goto fail;
    }
    // posix_spawn reports a failed exec itself, except where vfork is
    // emulated by fork (valgrind): there the child would just exit 127.
    // Checking first gives the same -ENOENT or -EACCES everywhere.
    if (access(argv[0], X_OK) != 0) {
        rc = -errno;
        goto fail;
    }
    fsrv_t *srv = NULL;
    pthread_mutex_lock(&mtx);
    if (!fork_server ||
        spawn_forked(rt, argv, envp, &srv, &pid, &pidfd) != 0) {
        srv = NULL;
        pthread_mutex_unlock(&mtx);
        if ((rc = spawn_child(argv, envp, -1, -1, &pid)) != 0) {
            goto fail;
        }
        // The child may already have ended: a pidfd for a zombie is fine
        // and readable at once, and nobody else reaps our children.
        // Without a pidfd the watcher checks on the process every TICK_MS
        // instead.
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
            ra_log_debug("supervisor", "pidfd_open(%ld): %s; polling instead",
                         (long)pid, ra_err_name(-errno));
        }
        pthread_mutex_lock(&mtx);
    }
    // A forked child's entry is made before the mutex is let go since its
    // server was asked: its exit report finds it.
    *e = (osent_t){.pid = pid, .pidfd = pidfd, .state = OS_RUNNING,
                   .rt = rt, .owner = owner, .token = token, .srv = srv};
    if (srv != NULL) {
        srv->users++;
    }
    e->next = ents;
    ents = e;
    wake_watcher();
    pthread_mutex_unlock(&mtx);
    *out = pid;
    return 0;
fail:
    free(e);
    return rc;
}

static void
deadline_after(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

// signal_entry signals e unless it has been reaped (then its pid may be
// another process's); the mutex is held.
static void
send_signal(const osent_t *e, int sig)
{
    // A fork server's child is reaped by the server: its pid may be
    // another process's before its report is read, its pidfd never is.
    if (e->srv != NULL && e->pidfd >= 0) {
        (void)syscall(SYS_pidfd_send_signal, e->pidfd, sig, NULL, 0);
    } else {
        kill(e->pid, sig);
    }
}

static void
signal_entry(const osent_t *e, int sig)
{
    if (e->state == OS_RUNNING) {
        send_signal(e, sig);
        if (sig == SIGTERM) {
            // A stopped process would hold SIGTERM until continued.
            send_signal(e, SIGCONT);
        }
    }
}

int
ra__os_stop(pid_t pid, int64_t timeout_ms, int *status)
{
    struct timespec deadline;
    osent_t *e;
    int st;
    // Called from a supervisor's handler, this blocks a scheduler thread
    // for up to timeout_ms: its other actors move to other threads.
    bool waiting = ra__sched_wait_begin();

    pthread_mutex_lock(&mtx);
    // An entry being reported is as good as gone: wait until the message
    // is out, so that after we return the watcher no longer uses its rt.
    while ((e = find(pid)) != NULL && e->state == OS_SENDING) {
        pthread_cond_wait(&cond, &mtx);
    }
    if (e == NULL) {
        pthread_mutex_unlock(&mtx);
        ra__sched_wait_end(waiting);
        return RA_ENOENT;
    }
    // From here on the watcher will not report it, even if it was reaped
    // (OS_EXITED) before we came.
    e->stoppers++;
    if (e->state == OS_EXITED) {
        e->state = OS_REAPED;
    }
    signal_entry(e, timeout_ms == 0 ? SIGKILL : SIGTERM);
    if (timeout_ms > 0) {
        deadline_after(&deadline, timeout_ms);
        while (e->state != OS_REAPED &&
               pthread_cond_timedwait(&cond, &mtx, &deadline) != ETIMEDOUT) {
        }
        signal_entry(e, SIGKILL);
    }
    while (e->state != OS_REAPED) {
        pthread_cond_wait(&cond, &mtx);
    }
    st = e->status;
    if (--e->stoppers == 0) {
        unlink_free(e);
    }
    pthread_mutex_unlock(&mtx);
    ra__sched_wait_end(waiting);
    if (status != NULL) {
        *status = st;
    }
    return 0;
}

ra_reason_t
ra__os_reason(int status)
{
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status) == 0 ? RA_NORMAL
                                        : RA_OS_EXIT(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
        return RA_OS_SIGNAL(WTERMSIG(status));
    }
    // Stopped or continued: never seen, as the watcher does not ask for
    // WUNTRACED or WCONTINUED.
    return RA_OS_EXIT(255);
}

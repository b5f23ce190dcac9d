// forksrv.c - the fork server's own side: a copy of a program that forks
// the OS children a supervisor asks for, instead of the supervisor
// executing the program afresh for each (see ra_fork_server_main in
// ra_supervisor.h, and osproc.c for the supervisor's side).
//
// The server is started by osproc.c with two sequenced-packet sockets as
// descriptors 3 (requests) and 4 (exit reports) and RAYO_FORK_SERVER set
// to the starter's pid.  It is single-threaded: it polls the request
// socket and a signalfd for SIGCHLD.  A request is one byte; the answer is
// an ra__fs_reply_t with the new child's pidfd attached (SCM_RIGHTS) when
// pidfd_open works.  An ended child is reported as an ra__fs_exit_t and
// reaped only once the report is out, so that the exit is never lost to a
// full socket; the socket is non-blocking and the server polls for room.
//
// Its process name (comm) is RA__FS_NAME ("rayo-forksrv").
//
// The server exits when its starter closes the request socket, when its
// starter's thread dies (PR_SET_PDEATHSIG), or after idle_ms() without a
// request while it has no children.  Its children die with it
// (PR_SET_PDEATHSIG): nobody would be left to report their exits.
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/single_threaded.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include "sup_impl.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int
ra__fs_idle_ms(const char *v)
{
    if (v == NULL) {
        return RA__FS_IDLE_MS;
    }
    char *end = NULL;
    errno = 0;
    long ms = strtol(v, &end, 10);
    return end != v && *end == '\0' && errno == 0 && ms >= 1 &&
                   ms <= 3600000
               ? (int)ms
               : -1;
}

// idle_ms is how long the server waits, childless, for a request before it
// exits: RAYO_FORK_SERVER_IDLE_MS in its environment, else a minute.
static int
idle_ms(void)
{
    int ms = ra__fs_idle_ms(getenv("RAYO_FORK_SERVER_IDLE_MS"));
    return ms > 0 ? ms : RA__FS_IDLE_MS;
}

// wait_status rebuilds the status waitpid would give from si.
static int
wait_status(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED:
        return (si->si_status & 0xff) << 8;
    case CLD_DUMPED:
        return (si->si_status & 0x7f) | 0x80;
    default: // CLD_KILLED
        return si->si_status & 0x7f;
    }
}

// report_exits reports every ended child on RA__FS_EV and then reaps it.
// Returns true when the socket is full and a report waits for room.
static bool
report_exits(unsigned *live)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        // WNOWAIT: the child stays a zombie (its pid taken) until its
        // report is out.
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
            si.si_pid == 0) {
            return false;
        }
        ra__fs_exit_t ex;
        memset(&ex, 0, sizeof ex);
        ex.pid = (int32_t)si.si_pid;
        ex.status = wait_status(&si);
        ssize_t n;
        do {
            n = send(RA__FS_EV, &ex, sizeof ex, MSG_NOSIGNAL | MSG_DONTWAIT);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        // Sent, or nobody listens any more (EPIPE): reap it either way.
        while (waitpid(si.si_pid, NULL, 0) < 0 && errno == EINTR) {
        }
        if (*live > 0) {
            (*live)--;
        }
    }
}

// reply answers a request: the child's pid or -1 and an errno value, and
// its pidfd when there is one.
static void
reply(int32_t pid, int32_t err, int pidfd)
{
    ra__fs_reply_t r;
    memset(&r, 0, sizeof r);
    r.pid = pid;
    r.err = err;
    struct iovec iov = {.iov_base = &r, .iov_len = sizeof r};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } u;
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (pidfd >= 0) {
        memset(&u, 0, sizeof u);
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof u.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pidfd, sizeof(int));
    }
    // The starter waits for this answer; if it is gone, the next read of
    // the request socket says so.
    while (sendmsg(RA__FS_CTL, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR) {
    }
}

int
ra_fork_server_main(void)
{
    const char *v = getenv("RAYO_FORK_SERVER");
    if (v == NULL) {
        return 0;
    }
    pid_t starter = (pid_t)atol(v);
    // The children must not take themselves for servers.
    unsetenv("RAYO_FORK_SERVER");
    // A server must not outlive the process that started it.
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != starter) {
        _exit(0);
    }
    // Forking a process with other threads leaves the child with locks
    // that those threads held: such a program is refused (its starter
    // then executes each child afresh).
    bool usable = __libc_single_threaded;
    pid_t self = getpid();
    // ps shows the server as such; each child takes the program's name
    // back.
    char name[16] = "";
    (void)prctl(PR_GET_NAME, name);
    (void)prctl(PR_SET_NAME, RA__FS_NAME);
    sigset_t chld, old;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    (void)fcntl(RA__FS_CTL, F_SETFD, FD_CLOEXEC);
    (void)fcntl(RA__FS_EV, F_SETFD, FD_CLOEXEC);
    if (sfd < 0) {
        usable = false;
    }
    // The greeting: the starter sends requests only after it.
    ra__fs_exit_t hello;
    memset(&hello, 0, sizeof hello);
    hello.status = usable ? 0 : ENOTSUP;
    while (send(RA__FS_EV, &hello, sizeof hello, MSG_NOSIGNAL) < 0 &&
           errno == EINTR) {
    }
    if (!usable) {
        _exit(0);
    }
    unsigned live = 0;
    bool full = false;
    int idle = idle_ms();
    for (;;) {
        struct pollfd p[3] = {
            {.fd = RA__FS_CTL, .events = POLLIN},
            {.fd = sfd, .events = POLLIN},
            {.fd = RA__FS_EV, .events = full ? POLLOUT : 0},
        };
        int n = poll(p, 3, live == 0 && !full ? idle : -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            _exit(70);
        }
        if (n == 0) {
            _exit(0); // idle and childless
        }
        if (p[1].revents != 0) {
            struct signalfd_siginfo ssi;
            while (read(sfd, &ssi, sizeof ssi) == (ssize_t)sizeof ssi) {
            }
        }
        // Exits are looked for on every turn, not only on SIGCHLD: one
        // signal may stand for several children.
        full = report_exits(&live);
        if ((p[0].revents & POLLIN) == 0) {
            if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) {
                _exit(0); // the starter is gone
            }
            continue;
        }
        char req;
        ssize_t r = recv(RA__FS_CTL, &req, 1, 0);
        if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
            _exit(0);
        }
        if (r != 1) {
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(RA__FS_CTL);
            close(RA__FS_EV);
            close(sfd);
            sigprocmask(SIG_SETMASK, &old, NULL);
            (void)prctl(PR_SET_NAME, name);
            (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != self) {
                _exit(0); // the server died meanwhile
            }
            return 1;
        }
        int err = pid < 0 ? errno : 0;
        int pidfd = -1;
        if (pid > 0) {
            live++;
            pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        }
        reply(pid > 0 ? (int32_t)pid : -1, err, pidfd);
        if (pidfd >= 0) {
            close(pidfd);
        }
    }
}

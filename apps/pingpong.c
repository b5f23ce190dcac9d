// pingpong.c - rayo's first example: two actors play ping-pong, then a
// worker crashes and the actors linked to it and monitoring it are told.
//
// Build it against an installed rayo with
//     cc pingpong.c $(pkg-config --cflags --libs rayo) -o pingpong
// It exits 0 only if everything happened as described, so it is a test too.
#include <rayo.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

// A tag says what a message means, like the atom an Erlang receive matches.
enum { SERVE = 1, BALL, DONE, START_WORKER, WORKER, BAD_REQUEST, EXITED };

// An actor's state is any C data.  Both players use this one.
typedef struct player {
    ra_pid_t peer; // ping: whom to serve to
    ra_pid_t main; // ping: who wants to know when the rally is over
    long left;     // ping: balls still to return
    long hits;
} player_t;

// What the boss tells main when it gets an exit signal.
typedef struct report {
    ra_pid_t from;
    ra_reason_t reason;
} report_t;

// A payload is bytes (or a BSON document) copied into the message.
static int
send_bytes(ra_ctx_t *ctx, ra_pid_t to, int tag, const void *p, size_t len)
{
    ra_msg_t *m = NULL;
    int rc = ra_msg_new_bytes(&m, tag, p, len);

    if (rc == 0 && (rc = ra_send(ctx, to, &m)) != 0) {
        ra_msg_unref(&m); // a failed send leaves the message with us
    }
    return rc;
}

static long
msg_long(const ra_msg_t *m)
{
    long v = 0;

    memcpy(&v, ra_msg_data(m, NULL), sizeof v);
    return v;
}

// ping serves when told to and returns the ball until the rally is over.
// Messages are immutable and reference-counted, so instead of making a
// new ball for each hit it sends the same one back (ra_msg_ref).
static int
ping(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    player_t *p = state;
    ra_msg_t *ball = NULL;
    long verbose;
    int rc;

    if (ra_msg_tag(msg) == SERVE) {
        p->left = msg_long(msg);
        verbose = p->left <= 10; // the ball tells pong whether to print
        rc = ra_msg_new_bytes(&ball, BALL, &verbose, sizeof verbose);
        if (rc != 0) {
            return rc; // a negative value ends this actor with that reason
        }
    } else if (--p->left == 0) {
        return send_bytes(ctx, p->main, DONE, &p->hits, sizeof p->hits);
    } else {
        verbose = msg_long(msg);
        ball = ra_msg_ref(msg);
    }
    if (verbose) {
        printf("  ping\n");
    }
    p->hits++;
    if ((rc = ra_send(ctx, p->peer, &ball)) != 0) {
        ra_msg_unref(&ball);
    }
    return rc;
}

// pong hits the ball back to whoever sent it.
static int
pong(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    player_t *p = state;
    ra_msg_t *ball = ra_msg_ref(msg);
    int rc;

    if (msg_long(msg)) {
        printf("      pong\n");
    }
    p->hits++;
    if ((rc = ra_send(ctx, ra_sender(ctx), &ball)) != 0) {
        ra_msg_unref(&ball);
    }
    return rc;
}

// worker understands nothing: any message makes it fail with RA_EBADMSG,
// the way an Erlang process crashes on a bad match.
static int
worker(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    printf("worker: I cannot handle this message, crashing\n");
    return RA_EBADMSG;
}

static const ra_behaviour_t worker_b = {"worker", NULL, worker, NULL};

// boss is spawned trapping exits: a linked worker's death reaches it as a
// message instead of killing it too.  That is how a supervisor watches its
// children.
static int
boss(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    const ra_pid_t *main_pid = state;
    ra_spawn_opts_t link = {.flags = RA_SPAWN_LINK};
    char pid[RA_PID_STRLEN], why[64];
    report_t r;
    int rc;

    if (ra_msg_kind(msg) == RA_MSG_EXIT) {
        ra_msg_exit_info(msg, &r.from, &r.reason);
        printf("boss: got EXIT from %s, reason %s; I trap exits, so I "
               "live on\n", ra_pid_str(r.from, pid),
               ra_reason_str(r.reason, why, sizeof why));
        return send_bytes(ctx, *main_pid, EXITED, &r, sizeof r);
    }
    // START_WORKER: spawn a worker linked to us and tell main its pid.
    rc = ra_spawn_from(ctx, &worker_b, NULL, &link, &r.from, NULL);
    if (rc != 0) {
        return rc;
    }
    printf("boss: started worker %s, linked to me\n",
           ra_pid_str(r.from, pid));
    return send_bytes(ctx, *main_pid, WORKER, &r.from, sizeof r.from);
}

static const ra_behaviour_t ping_b = {"ping", NULL, ping, NULL};
static const ra_behaviour_t pong_b = {"pong", NULL, pong, NULL};
static const ra_behaviour_t boss_b = {"boss", NULL, boss, NULL};

// rally has ping play balls round trips and returns how many it counted.
static long
rally(ra_ctx_t *me, ra_pid_t pinger, long balls)
{
    ra_msg_t *m = NULL;
    long hits = -1;

    if (send_bytes(me, pinger, SERVE, &balls, sizeof balls) == 0 &&
        ra_receive(me, 10000, &m) == 0 && ra_msg_tag(m) == DONE) {
        hits = msg_long(m);
    }
    ra_msg_unref(&m);
    return hits;
}

// check says which expectation failed, so a failing test explains itself.
static int
check(int ok, const char *what)
{
    if (!ok) {
        printf("FAILED: %s\n", what);
    }
    return ok;
}

int
main(void)
{
    ra_runtime_t *rt = NULL;
    ra_ctx_t *me = NULL; // the main thread, as an actor
    player_t a = {0}, b = {0};
    ra_spawn_opts_t trap = {.flags = RA_SPAWN_TRAP_EXIT};
    ra_pid_t pinger, boss_pid, worker_pid = RA_PID_NIL, down_pid = RA_PID_NIL;
    ra_reason_t down_reason = -1;
    report_t r = {RA_PID_NIL, -1};
    struct timespec t0, t1;
    char why[64];
    ra_msg_t *m = NULL;
    uint64_t mref;
    int ok;

    if (ra_runtime_new(&rt, NULL) != 0 || ra_scope_new(rt, &me) != 0) {
        return check(0, "starting a runtime");
    }
    a.main = ra_self(me);
    ok = check(ra_spawn(rt, &pong_b, &b, NULL, &a.peer) == 0 &&
               ra_spawn(rt, &ping_b, &a, NULL, &pinger) == 0, "spawn");

    printf("Two actors, ping and pong, play 5 rounds:\n");
    ok = ok && check(rally(me, pinger, 5) == 5, "5 rounds");
    a.hits = b.hits = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ok = ok && check(rally(me, pinger, 100000) == 100000 &&
                     b.hits == 100000, "100000 round trips");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("Then 100000 silent round trips: %.0f round trips/s\n\n",
           1e5 / ((double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9));

    printf("Now a crash.  A boss spawns a worker linked to it; main "
           "monitors the worker.\n");
    ok = ok && check(ra_spawn(rt, &boss_b, &a.main, &trap, &boss_pid) == 0 &&
                     send_bytes(me, boss_pid, START_WORKER, NULL, 0) == 0 &&
                     ra_receive(me, 10000, &m) == 0 &&
                     ra_msg_tag(m) == WORKER, "the boss starts a worker");
    if (ok) {
        memcpy(&worker_pid, ra_msg_data(m, NULL), sizeof worker_pid);
    }
    ra_msg_unref(&m);
    ok = ok && check(ra_monitor(me, worker_pid, &mref) == 0 &&
                     send_bytes(me, worker_pid, BAD_REQUEST, NULL, 0) == 0,
                     "monitor the worker and send it a bad request");

    // The boss's report and the monitor's DOWN may come in either order.
    for (int i = 0; ok && i < 2; i++) {
        ok = check(ra_receive(me, 10000, &m) == 0, "EXIT and DOWN arrive");
        if (ok && ra_msg_kind(m) == RA_MSG_DOWN) {
            ra_msg_down_info(m, NULL, &down_pid, &down_reason);
            printf("main: monitor says the worker is DOWN, reason %s\n",
                   ra_reason_str(down_reason, why, sizeof why));
        } else if (ok && ra_msg_tag(m) == EXITED) {
            memcpy(&r, ra_msg_data(m, NULL), sizeof r);
        }
        ra_msg_unref(&m);
    }
    ok = ok && check(ra_pid_eq(down_pid, worker_pid) &&
                     down_reason == RA_EBADMSG, "DOWN names worker, reason") &&
         check(ra_pid_eq(r.from, worker_pid) && r.reason == RA_EBADMSG,
               "EXIT names worker, reason") &&
         check(ra_is_alive(rt, boss_pid) && !ra_is_alive(rt, worker_pid),
               "the boss lives on, the worker is gone");

    ra_scope_destroy(&me);
    ra_runtime_destroy(&rt); // stops the actors that are left
    if (ok) {
        printf("Everything happened as expected.\n");
    }
    return ok ? 0 : 1;
}

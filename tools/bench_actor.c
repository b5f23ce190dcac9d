// bench_actor.c - `rayo bench actor`: benchmarks of the in-process runtime.
//
// Each workload starts a fresh runtime, makes the main thread an actor with
// a scope, builds its actors, starts the clock, sends "go", waits in
// ra_receive for the actors' "done", stops the clock, checks the counts and
// destroys the runtime.  Results go to stdout as one JSON object per line;
// progress and errors go to stderr, so `rayo bench actor > out.jsonl` keeps
// the data clean.
//
// Actor states are owned by the workload function, not by the actors: they
// outlive the runtime, so main can read the counters after "done" (the
// message that said "done" orders those reads after the actors' writes) and
// no behaviour needs a terminate callback.
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

// Message tags.  Every message carries one uint64_t (see send_u64).
enum {
    TAG_GO = 1,  // main -> the actor that starts the work
    TAG_CONT,    // an actor to itself: do the next batch
    TAG_DONE,    // an actor -> main, with its count
    TAG_BALL,    // ping_pong
    TAG_WAKE,    // spawn: a child to itself
    TAG_REPLY,   // spawn: a child to its parent
    TAG_INC,     // counting
    TAG_GET,     // counting: the final call
    TAG_DATA,    // fork_join
    TAG_ACK,     // fork_join: receiver -> sender, messages handled so far
    TAG_TOKEN,   // thread_ring
    TAG_REQ      // call
};

// BATCH is how many messages an actor sends per handler invocation before
// it sends itself TAG_CONT, so other actors on its thread get a turn.
#define BATCH 1000
// FJ_WINDOW bounds the fork_join messages a sender has in flight.  Without
// it a sender that outruns its receiver fills memory with its backlog; one
// batch in flight keeps each pair's messages (64 KiB) in the core's cache.
// The receiver acknowledges every FJ_BATCH messages.
#define FJ_BATCH BATCH
#define FJ_WINDOW (2 * FJ_BATCH)
#define CALL_TIMEOUT_MS 60000
#define MAX_LINES 2 // JSON lines one run of a workload may print
#define MAX_WATCH 16

typedef struct bench_opts {
    bool quick;
    bool in_process;
    unsigned threads;
    unsigned repeat;
    unsigned timeout_s;
} bench_opts_t;

// line_t is one JSON line's worth of result.  extra holds more fields,
// each starting with a comma.
typedef struct line {
    const char *workload;
    const char *unit;
    double value;
    uint64_t n;
    double seconds;
    unsigned threads;
    char extra[160];
} line_t;

typedef struct watch {
    ra_pid_t pid;
    const char *role;
} watch_t;

// bench_t is one run of one workload.
typedef struct bench {
    const bench_opts_t *o;
    const char *name;
    ra_runtime_t *rt;
    ra_ctx_t *scope;
    ra_pid_t main;
    struct timespec t0;
    watch_t watch[MAX_WATCH];
    size_t nwatch;
    line_t lines[MAX_LINES];
    size_t nlines;
} bench_t;

// ---------------------------------------------------------------------
// The watchdog (bench_util.h): each phase of a run says what it waits for.

static void
phase(const bench_t *b, const char *what)
{
    ra__bench_watchdog_arm(b->o->timeout_s,
                           "rayo bench actor: %s: still %s after %u s "
                           "(--timeout); the runtime seems to hang\n",
                           b->name, what, b->o->timeout_s);
}

// ---------------------------------------------------------------------
// Messages and measurements.

static int
send_u64(ra_ctx_t *ctx, ra_pid_t to, int32_t tag, uint64_t v)
{
    ra_msg_t *m = NULL;
    int rc = ra_msg_new_bytes(&m, tag, &v, sizeof v);

    if (rc == 0 && (rc = ra_send(ctx, to, &m)) != 0) {
        ra_msg_unref(&m);
    }
    return rc;
}

static uint64_t
msg_u64(const ra_msg_t *m)
{
    size_t len = 0;
    const void *p = ra_msg_data(m, &len);
    uint64_t v = 0;

    if (p != NULL && len == sizeof v) {
        memcpy(&v, p, sizeof v);
    }
    return v;
}

// forward sends another reference to msg on: the payload is never copied.
static int
forward(ra_ctx_t *ctx, ra_pid_t to, ra_msg_t *msg)
{
    ra_msg_t *m = ra_msg_ref(msg);
    int rc = ra_send(ctx, to, &m);

    if (rc != 0) {
        ra_msg_unref(&m);
    }
    return rc;
}

static double
elapsed_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) +
           (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static uint64_t
rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) {
        resident = 0;
    }
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

// peak_rss_reset makes VmHWM start again from the current RSS, so a
// workload's peak is not an earlier workload's.  Returns false where the
// kernel does not allow it (then the peak is the process's).
static bool
peak_rss_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    bool ok;

    if (f == NULL) {
        return false;
    }
    ok = fputs("5", f) >= 0;
    ok = fclose(f) == 0 && ok;
    return ok;
}

static uint64_t
peak_rss_bytes(void)
{
    char row[256];
    unsigned long kb = 0;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL) {
        return 0;
    }
    while (fgets(row, sizeof row, f) != NULL) {
        if (sscanf(row, "VmHWM: %lu kB", &kb) == 1) {
            break;
        }
    }
    fclose(f);
    return (uint64_t)kb * 1024;
}

// ---------------------------------------------------------------------
// The harness shared by the workloads.

static uint64_t
scaled(const bench_t *b, uint64_t n)
{
    uint64_t s = b->o->quick ? n / 100 : n;

    return s > 0 ? s : 1;
}

static int
fail(const bench_t *b, const char *what, int rc)
{
    fprintf(stderr, "rayo bench actor: %s: %s: %s (%s)\n", b->name, what,
            ra_err_name(rc), ra_strerror(rc));
    return RA_TOOL_FAIL;
}

static int
bench_open(bench_t *b)
{
    ra_runtime_opts_t opts = {.threads = b->o->threads};
    int rc;

    phase(b, "starting the runtime");
    if ((rc = ra_runtime_new(&b->rt, &opts)) != 0) {
        return fail(b, "ra_runtime_new", rc);
    }
    if ((rc = ra_scope_new(b->rt, &b->scope)) != 0) {
        return fail(b, "ra_scope_new", rc);
    }
    b->main = ra_self(b->scope);
    return RA_TOOL_OK;
}

static void
bench_close(bench_t *b)
{
    phase(b, "destroying the runtime");
    ra_scope_destroy(&b->scope);
    ra_runtime_destroy(&b->rt);
    alarm(0);
}

// bench_spawn spawns an actor of behaviour beh with state arg, and has the
// scope monitor it, so an actor that dies reports instead of hanging the
// run.
static int
bench_spawn(bench_t *b, const ra_behaviour_t *beh, void *arg,
            const char *role, ra_pid_t *out)
{
    uint64_t mref;
    int rc;

    if ((rc = ra_spawn(b->rt, beh, arg, NULL, out)) != 0) {
        return fail(b, "ra_spawn", rc);
    }
    if ((rc = ra_monitor(b->scope, *out, &mref)) != 0) {
        return fail(b, "ra_monitor", rc);
    }
    if (b->nwatch < MAX_WATCH) {
        b->watch[b->nwatch++] = (watch_t){*out, role};
    }
    return RA_TOOL_OK;
}

static const char *
role_of(const bench_t *b, ra_pid_t pid)
{
    for (size_t i = 0; i < b->nwatch; i++) {
        if (ra_pid_eq(b->watch[i].pid, pid)) {
            return b->watch[i].role;
        }
    }
    return "actor";
}

// bench_go sends TAG_GO to pid and starts the clock.
static int
bench_go(bench_t *b, ra_pid_t pid)
{
    int rc;

    clock_gettime(CLOCK_MONOTONIC, &b->t0);
    if ((rc = send_u64(b->scope, pid, TAG_GO, 0)) != 0) {
        return fail(b, "sending go", rc);
    }
    return RA_TOOL_OK;
}

// bench_wait receives until ndone TAG_DONE messages arrived, storing their
// values in done[], and returns the seconds since bench_go.  A DOWN from a
// watched actor, or anything else unexpected, fails the run.
static int
bench_wait(bench_t *b, size_t ndone, uint64_t *done, double *seconds)
{
    char pid[RA_PID_STRLEN], why[64];
    ra_reason_t reason;
    ra_pid_t who;
    ra_msg_t *m = NULL;
    size_t got = 0;
    int rc;

    phase(b, "waiting for the actors' done message");
    while (got < ndone) {
        if ((rc = ra_receive(b->scope, -1, &m)) != 0) {
            return fail(b, "ra_receive", rc);
        }
        if (ra_msg_kind(m) == RA_MSG_DOWN) {
            ra_msg_down_info(m, NULL, &who, &reason);
            ra_msg_unref(&m);
            fprintf(stderr,
                    "rayo bench actor: %s: the %s %s ended with reason %s "
                    "before the work was done\n",
                    b->name, role_of(b, who), ra_pid_str(who, pid),
                    ra_reason_str(reason, why, sizeof why));
            return RA_TOOL_FAIL;
        }
        if (ra_msg_tag(m) != TAG_DONE) {
            fprintf(stderr, "rayo bench actor: %s: unexpected message "
                    "(kind %d, tag %d)\n", b->name, (int)ra_msg_kind(m),
                    (int)ra_msg_tag(m));
            ra_msg_unref(&m);
            return RA_TOOL_FAIL;
        }
        done[got++] = msg_u64(m);
        ra_msg_unref(&m);
    }
    *seconds = elapsed_since(&b->t0);
    return RA_TOOL_OK;
}

static int
check_count(const bench_t *b, const char *what, uint64_t got, uint64_t want)
{
    if (got == want) {
        return RA_TOOL_OK;
    }
    fprintf(stderr, "rayo bench actor: %s: %s: expected %" PRIu64
            ", counted %" PRIu64 "\n", b->name, what, want, got);
    return RA_TOOL_FAIL;
}

static line_t *
add_line(bench_t *b, const char *workload, const char *unit, uint64_t n,
         double seconds, double value)
{
    line_t *l = &b->lines[b->nlines++];

    *l = (line_t){.workload = workload, .unit = unit, .value = value,
                  .n = n, .seconds = seconds,
                  .threads = ra_runtime_threads(b->rt)};
    return l;
}

// ---------------------------------------------------------------------
// ping_pong: two actors bounce one message back and forth.

typedef struct pp_state {
    ra_pid_t peer; // ping: pong's pid (pong answers its sender)
    ra_pid_t main;
    uint64_t n;
    uint64_t count;
} pp_state_t;

static int
ping_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    pp_state_t *s = state;

    switch (ra_msg_tag(msg)) {
    case TAG_GO:
        return send_u64(ctx, s->peer, TAG_BALL, 0);
    case TAG_BALL:
        if (++s->count == s->n) {
            return send_u64(ctx, s->main, TAG_DONE, s->count);
        }
        return forward(ctx, s->peer, msg);
    default:
        return RA_EBADMSG;
    }
}

static int
pong_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    pp_state_t *s = state;

    s->count++;
    return forward(ctx, ra_sender(ctx), msg);
}

static const ra_behaviour_t ping_b = {"bench_ping", NULL, ping_handle, NULL};
static const ra_behaviour_t pong_b = {"bench_pong", NULL, pong_handle, NULL};

static int
wl_ping_pong(bench_t *b)
{
    uint64_t n = scaled(b, 1000000), done;
    pp_state_t ping = {.n = n}, pong = {0};
    int rc = RA_TOOL_FAIL;
    ra_pid_t ping_pid;
    double sec;

    if (bench_open(b) != 0 ||
        bench_spawn(b, &pong_b, &pong, "pong", &ping.peer) != 0) {
        goto out;
    }
    ping.main = b->main;
    if (bench_spawn(b, &ping_b, &ping, "ping", &ping_pid) != 0 ||
        bench_go(b, ping_pid) != 0 || bench_wait(b, 1, &done, &sec) != 0 ||
        check_count(b, "round trips seen by ping", done, n) != 0 ||
        check_count(b, "balls seen by pong", pong.count, n) != 0) {
        goto out;
    }
    add_line(b, "ping_pong", "round_trips/s", n, sec, (double)n / sec);
    rc = RA_TOOL_OK;
out:
    bench_close(b); // before return: the actors point into this frame
    return rc;
}

// ---------------------------------------------------------------------
// spawn: a parent spawns children; each child's init sends itself a
// message, so it goes through a run queue like a fresh Erlang process, and
// on that message it replies to the parent and exits.

typedef struct spawn_state {
    ra_pid_t self; // the parent; children read it to reply
    ra_pid_t main;
    uint64_t n;
    uint64_t spawned;
    uint64_t replies;
} spawn_state_t;

static int
child_init(ra_ctx_t *ctx, void **state)
{
    return send_u64(ctx, ra_self(ctx), TAG_WAKE, 0);
}

static int
child_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    const spawn_state_t *parent = state;
    int rc;

    if (ra_msg_tag(msg) != TAG_WAKE) {
        return RA_EBADMSG;
    }
    if ((rc = send_u64(ctx, parent->self, TAG_REPLY, 0)) != 0) {
        return rc;
    }
    ra_exit(ctx, RA_NORMAL);
    return 0;
}

static const ra_behaviour_t child_b = {"bench_child", child_init,
                                       child_handle, NULL};

static int
parent_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    spawn_state_t *s = state;
    uint64_t end;
    int rc;

    switch (ra_msg_tag(msg)) {
    case TAG_GO:
    case TAG_CONT:
        end = s->spawned + BATCH < s->n ? s->spawned + BATCH : s->n;
        for (; s->spawned < end; s->spawned++) {
            rc = ra_spawn_from(ctx, &child_b, s, NULL, NULL, NULL);
            if (rc != 0) {
                return rc;
            }
        }
        return s->spawned < s->n ? send_u64(ctx, s->self, TAG_CONT, 0) : 0;
    case TAG_REPLY:
        if (++s->replies == s->n) {
            return send_u64(ctx, s->main, TAG_DONE, s->replies);
        }
        return 0;
    default:
        return RA_EBADMSG;
    }
}

static const ra_behaviour_t parent_b = {"bench_parent", NULL, parent_handle,
                                        NULL};

// wait_actors waits up to 10 s until at most want actors are alive, so a
// check can tell children that exit late from children that never exit.
static size_t
wait_actors(bench_t *b, size_t want)
{
    struct timespec t0;
    size_t alive;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    while ((alive = ra_runtime_actor_count(b->rt)) > want &&
           elapsed_since(&t0) < 10.0) {
        usleep(1000);
    }
    return alive;
}

static int
wl_spawn(bench_t *b)
{
    uint64_t n = scaled(b, 1000000), done, peak;
    spawn_state_t s = {.n = n};
    int rc = RA_TOOL_FAIL;
    bool reset;
    double sec;
    line_t *l;

    if (bench_open(b) != 0) {
        goto out;
    }
    s.main = b->main;
    reset = peak_rss_reset();
    if (bench_spawn(b, &parent_b, &s, "parent", &s.self) != 0 ||
        bench_go(b, s.self) != 0 || bench_wait(b, 1, &done, &sec) != 0) {
        goto out;
    }
    peak = peak_rss_bytes();
    if (check_count(b, "replies from children", done, n) != 0 ||
        check_count(b, "children spawned", s.spawned, n) != 0 ||
        check_count(b, "actors alive after the children exited (parent "
                    "and main)", wait_actors(b, 2), 2) != 0) {
        goto out;
    }
    l = add_line(b, "spawn", "actors/s", n, sec, (double)n / sec);
    snprintf(l->extra, sizeof l->extra, ",\"peak_rss_bytes\":%" PRIu64
             ",\"peak_rss_scope\":\"%s\"", peak,
             reset ? "workload" : "process");
    rc = RA_TOOL_OK;
out:
    bench_close(b); // before return: the actors point into this frame
    return rc;
}

// ---------------------------------------------------------------------
// counting: one sender floods one counter, then asks it for the count.

typedef struct count_state {
    ra_pid_t peer; // sender: the counter
    ra_pid_t main;
    uint64_t n;
    uint64_t count;
} count_state_t;

static int
counter_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    count_state_t *s = state;
    ra_msg_t *r = NULL;
    int rc;

    switch (ra_msg_tag(msg)) {
    case TAG_INC:
        s->count++;
        return 0;
    case TAG_GET:
        rc = ra_msg_new_bytes(&r, TAG_REPLY, &s->count, sizeof s->count);
        if (rc == 0 && (rc = ra_reply(ctx, &r)) != 0) {
            ra_msg_unref(&r);
        }
        return rc;
    default:
        return RA_EBADMSG;
    }
}

static int
sender_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    count_state_t *s = state;
    ra_msg_t *req = NULL, *reply = NULL;
    uint64_t zero = 0, count;
    int rc;

    if (ra_msg_tag(msg) != TAG_GO) {
        return RA_EBADMSG;
    }
    for (uint64_t i = 0; i < s->n; i++) {
        if ((rc = send_u64(ctx, s->peer, TAG_INC, i)) != 0) {
            return rc;
        }
    }
    // Messages from one sender arrive in order, so the call is answered
    // after every increment was counted.
    if ((rc = ra_msg_new_bytes(&req, TAG_GET, &zero, sizeof zero)) != 0) {
        return rc;
    }
    rc = ra_call(ctx, s->peer, &req, CALL_TIMEOUT_MS, &reply);
    ra_msg_unref(&req);
    if (rc != 0) {
        return rc;
    }
    count = msg_u64(reply);
    ra_msg_unref(&reply);
    return send_u64(ctx, s->main, TAG_DONE, count);
}

static const ra_behaviour_t counter_b = {"bench_counter", NULL,
                                         counter_handle, NULL};
static const ra_behaviour_t sender_b = {"bench_sender", NULL, sender_handle,
                                        NULL};

static int
wl_counting(bench_t *b)
{
    uint64_t n = scaled(b, 1000000), done;
    count_state_t counter = {0}, sender = {.n = n};
    int rc = RA_TOOL_FAIL;
    ra_pid_t sender_pid;
    double sec;

    if (bench_open(b) != 0 ||
        bench_spawn(b, &counter_b, &counter, "counter", &sender.peer) != 0) {
        goto out;
    }
    sender.main = b->main;
    if (bench_spawn(b, &sender_b, &sender, "sender", &sender_pid) != 0 ||
        bench_go(b, sender_pid) != 0 || bench_wait(b, 1, &done, &sec) != 0 ||
        check_count(b, "count returned by ra_call", done, n) != 0) {
        goto out;
    }
    add_line(b, "counting", "msgs/s", n, sec, (double)n / sec);
    rc = RA_TOOL_OK;
out:
    bench_close(b); // before return: the actors point into this frame
    return rc;
}

// ---------------------------------------------------------------------
// thread_ring: a token goes round a ring of actors.  Actor 0 starts it and
// counts laps; a hop is one send from an actor to the next.

#define RING_SIZE 1000

typedef struct ring_state {
    ra_pid_t next;
    ra_pid_t main;
    bool first;
    uint64_t laps_needed; // first only
    uint64_t laps;        // first only
    uint64_t forwarded;
} ring_state_t;

static int
ring_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    ring_state_t *s = state;
    int rc;

    switch (ra_msg_tag(msg)) {
    case TAG_GO:
        rc = send_u64(ctx, s->next, TAG_TOKEN, 0);
        break;
    case TAG_TOKEN:
        if (s->first && ++s->laps == s->laps_needed) {
            return send_u64(ctx, s->main, TAG_DONE, s->laps * RING_SIZE);
        }
        rc = forward(ctx, s->next, msg);
        break;
    default:
        return RA_EBADMSG;
    }
    s->forwarded += rc == 0;
    return rc;
}

static const ra_behaviour_t ring_b = {"bench_ring", NULL, ring_handle, NULL};

static int
wl_thread_ring(bench_t *b)
{
    uint64_t laps = scaled(b, 10000000) / RING_SIZE, n, done, sum = 0;
    ring_state_t *ring = calloc(RING_SIZE, sizeof *ring);
    ra_pid_t pids[RING_SIZE];
    int rc = RA_TOOL_FAIL;
    double sec;

    laps = laps > 0 ? laps : 1;
    n = laps * RING_SIZE;
    if (ring == NULL) {
        fprintf(stderr, "rayo bench actor: out of memory\n");
        return RA_TOOL_FAIL;
    }
    if (bench_open(b) != 0) {
        goto out;
    }
    for (size_t i = 0; i < RING_SIZE; i++) {
        ring[i].main = b->main;
        if (bench_spawn(b, &ring_b, &ring[i], "ring member", &pids[i]) !=
            0) {
            goto out;
        }
    }
    // The actors read next only when the token reaches them, and the token
    // is sent after these writes.
    for (size_t i = 0; i < RING_SIZE; i++) {
        ring[i].next = pids[(i + 1) % RING_SIZE];
    }
    ring[0].first = true;
    ring[0].laps_needed = laps;
    if (bench_go(b, pids[0]) != 0 || bench_wait(b, 1, &done, &sec) != 0) {
        goto out;
    }
    for (size_t i = 0; i < RING_SIZE; i++) {
        sum += ring[i].forwarded;
    }
    if (check_count(b, "hops reported by actor 0", done, n) != 0 ||
        check_count(b, "hops forwarded by all actors", sum, n) != 0) {
        goto out;
    }
    add_line(b, "thread_ring", "hops/s", n, sec, (double)n / sec);
    rc = RA_TOOL_OK;
out:
    bench_close(b); // before free: the actors point into ring
    free(ring);
    return rc;
}

// ---------------------------------------------------------------------
// fork_join: independent sender/receiver pairs run at once.  A sender
// sends a batch per handler invocation and keeps at most FJ_WINDOW
// messages unacknowledged.

#define FJ_PAIRS 8

typedef struct fj_state {
    ra_pid_t self;
    ra_pid_t peer;
    ra_pid_t main;
    uint64_t n;
    uint64_t sent;  // sender
    uint64_t acked; // sender: what the receiver reported handled
    bool cont_pending;
    uint64_t count; // receiver
} fj_state_t;

static int
fj_pump(ra_ctx_t *ctx, fj_state_t *s)
{
    uint64_t end;
    int rc;

    if (s->cont_pending || s->sent >= s->n ||
        s->sent - s->acked >= FJ_WINDOW) {
        return 0; // a TAG_CONT or an ACK will call again
    }
    end = s->sent + FJ_BATCH < s->n ? s->sent + FJ_BATCH : s->n;
    for (; s->sent < end; s->sent++) {
        if ((rc = send_u64(ctx, s->peer, TAG_DATA, s->sent)) != 0) {
            return rc;
        }
    }
    if (s->sent < s->n && s->sent - s->acked < FJ_WINDOW) {
        s->cont_pending = true;
        return send_u64(ctx, s->self, TAG_CONT, 0);
    }
    return 0;
}

static int
fj_sender_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    fj_state_t *s = state;

    switch (ra_msg_tag(msg)) {
    case TAG_GO:
        break;
    case TAG_CONT:
        s->cont_pending = false;
        break;
    case TAG_ACK:
        s->acked = msg_u64(msg);
        break;
    default:
        return RA_EBADMSG;
    }
    return fj_pump(ctx, s);
}

static int
fj_receiver_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    fj_state_t *s = state;
    int rc;

    if (ra_msg_tag(msg) != TAG_DATA) {
        return RA_EBADMSG;
    }
    if (msg_u64(msg) != s->count) {
        return RA_EBADMSG; // out of order
    }
    s->count++;
    if (s->count % FJ_BATCH != 0 && s->count != s->n) {
        return 0;
    }
    if ((rc = send_u64(ctx, s->peer, TAG_ACK, s->count)) != 0) {
        return rc;
    }
    return s->count == s->n ? send_u64(ctx, s->main, TAG_DONE, s->count) : 0;
}

static const ra_behaviour_t fj_sender_b = {"bench_fj_sender", NULL,
                                           fj_sender_handle, NULL};
static const ra_behaviour_t fj_receiver_b = {"bench_fj_receiver", NULL,
                                             fj_receiver_handle, NULL};

static int
wl_fork_join(bench_t *b)
{
    uint64_t n = scaled(b, 1000000), done[FJ_PAIRS];
    fj_state_t snd[FJ_PAIRS], rcv[FJ_PAIRS];
    int rc = RA_TOOL_FAIL, err;
    double sec;
    line_t *l;

    if (bench_open(b) != 0) {
        goto out;
    }
    for (size_t i = 0; i < FJ_PAIRS; i++) {
        rcv[i] = (fj_state_t){.main = b->main, .n = n};
        snd[i] = (fj_state_t){.main = b->main, .n = n};
        if (bench_spawn(b, &fj_receiver_b, &rcv[i], "receiver",
                        &rcv[i].self) != 0 ||
            bench_spawn(b, &fj_sender_b, &snd[i], "sender", &snd[i].self) !=
                0) {
            goto out;
        }
        snd[i].peer = rcv[i].self;
        rcv[i].peer = snd[i].self;
    }
    clock_gettime(CLOCK_MONOTONIC, &b->t0);
    for (size_t i = 0; i < FJ_PAIRS; i++) {
        if ((err = send_u64(b->scope, snd[i].self, TAG_GO, 0)) != 0) {
            fail(b, "sending go", err);
            goto out;
        }
    }
    if (bench_wait(b, FJ_PAIRS, done, &sec) != 0) {
        goto out;
    }
    for (size_t i = 0; i < FJ_PAIRS; i++) {
        if (check_count(b, "messages received by a receiver", done[i], n) !=
                0 ||
            check_count(b, "messages sent by a sender", snd[i].sent, n) !=
                0) {
            goto out;
        }
    }
    l = add_line(b, "fork_join", "msgs/s", n * FJ_PAIRS, sec,
                 (double)(n * FJ_PAIRS) / sec);
    snprintf(l->extra, sizeof l->extra, ",\"pairs\":%d", FJ_PAIRS);
    rc = RA_TOOL_OK;
out:
    bench_close(b); // before return: the actors point into this frame
    return rc;
}

// ---------------------------------------------------------------------
// idle_memory: what an actor that waits for a message costs in RSS.

static int
idle_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    return 0;
}

static const ra_behaviour_t idle_b = {"bench_idle", NULL, idle_handle, NULL};

static int
idle_run(bench_t *b, const char *workload, uint64_t n)
{
    uint64_t rss0, rss1, alive;
    struct timespec t0;
    double sec;
    line_t *l;
    int rc;

    if (bench_open(b) != 0) {
        return RA_TOOL_FAIL;
    }
    // Give memory freed by earlier workloads back to the kernel first, or
    // the new actors would fill it and look free.
    malloc_trim(0);
    phase(b, "spawning idle actors");
    rss0 = rss_bytes();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t i = 0; i < n; i++) {
        if ((rc = ra_spawn(b->rt, &idle_b, NULL, NULL, NULL)) != 0) {
            return fail(b, "ra_spawn", rc);
        }
    }
    sec = elapsed_since(&t0);
    rss1 = rss_bytes();
    alive = ra_runtime_actor_count(b->rt);
    if (check_count(b, "actors alive (idle actors and main)", alive,
                    n + 1) != 0) {
        return RA_TOOL_FAIL;
    }
    l = add_line(b, workload, "bytes/actor", n, sec,
                 rss1 > rss0 ? (double)(rss1 - rss0) / (double)n : 0.0);
    snprintf(l->extra, sizeof l->extra,
             ",\"rss_delta_bytes\":%" PRIu64 ",\"spawns_per_s\":%.1f",
             rss1 > rss0 ? rss1 - rss0 : 0, (double)n / sec);
    return RA_TOOL_OK;
}

static int
wl_idle_memory(bench_t *b)
{
    int rc = idle_run(b, "idle_memory", scaled(b, 100000));

    bench_close(b);
    if (rc == RA_TOOL_OK && !b->o->quick) {
        rc = idle_run(b, "idle_memory_1m", 1000000);
        bench_close(b);
    }
    return rc;
}

// ---------------------------------------------------------------------
// call: sequential request/reply between two actors.

typedef struct call_state {
    ra_pid_t peer; // caller: the server
    ra_pid_t main;
    uint64_t n;
    uint64_t count;
} call_state_t;

static int
server_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    call_state_t *s = state;
    ra_msg_t *r = NULL;
    int rc;

    if (ra_msg_tag(msg) != TAG_REQ || ra_call_ref(ctx) == 0) {
        return RA_EBADMSG;
    }
    s->count++;
    rc = ra_msg_new_bytes(&r, TAG_REPLY, &s->count, sizeof s->count);
    if (rc == 0 && (rc = ra_reply(ctx, &r)) != 0) {
        ra_msg_unref(&r);
    }
    return rc;
}

static int
caller_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    call_state_t *s = state;
    ra_msg_t *req = NULL, *reply = NULL;
    uint64_t got;
    int rc;

    if (ra_msg_tag(msg) != TAG_GO) {
        return RA_EBADMSG;
    }
    for (uint64_t i = 1; i <= s->n; i++) {
        if ((rc = ra_msg_new_bytes(&req, TAG_REQ, &i, sizeof i)) != 0) {
            return rc;
        }
        rc = ra_call(ctx, s->peer, &req, CALL_TIMEOUT_MS, &reply);
        ra_msg_unref(&req);
        if (rc != 0) {
            fprintf(stderr, "rayo bench actor: call: call %" PRIu64
                    " failed: %s\n", i, ra_err_name(rc));
            return rc;
        }
        got = msg_u64(reply);
        ra_msg_unref(&reply);
        if (got != i) {
            fprintf(stderr, "rayo bench actor: call: call %" PRIu64
                    " was answered by the server's call %" PRIu64 "\n",
                    i, got);
            return RA_EBADMSG;
        }
        s->count++;
    }
    return send_u64(ctx, s->main, TAG_DONE, s->count);
}

static const ra_behaviour_t server_b = {"bench_server", NULL, server_handle,
                                        NULL};
static const ra_behaviour_t caller_b = {"bench_caller", NULL, caller_handle,
                                        NULL};

static int
wl_call(bench_t *b)
{
    uint64_t n = scaled(b, 100000), done;
    call_state_t server = {0}, caller = {.n = n};
    int rc = RA_TOOL_FAIL;
    ra_pid_t caller_pid;
    double sec;

    if (bench_open(b) != 0 ||
        bench_spawn(b, &server_b, &server, "server", &caller.peer) != 0) {
        goto out;
    }
    caller.main = b->main;
    if (bench_spawn(b, &caller_b, &caller, "caller", &caller_pid) != 0 ||
        bench_go(b, caller_pid) != 0 || bench_wait(b, 1, &done, &sec) != 0 ||
        check_count(b, "calls answered", done, n) != 0 ||
        check_count(b, "calls handled by the server", server.count, n) !=
            0) {
        goto out;
    }
    add_line(b, "call", "calls/s", n, sec, (double)n / sec);
    rc = RA_TOOL_OK;
out:
    bench_close(b); // before return: the actors point into this frame
    return rc;
}

// ---------------------------------------------------------------------
// The workload table, results and the command.

typedef struct workload {
    const char *name;
    int (*fn)(bench_t *b);
    const char *summary;
} workload_t;

static const workload_t workloads[] = {
    {"ping_pong", wl_ping_pong, "2 actors, 1M round trips of one message"},
    {"spawn", wl_spawn,
     "1M children that message themselves, reply and exit"},
    {"counting", wl_counting, "1M sends to one counter, then one ra_call"},
    {"thread_ring", wl_thread_ring,
     "token passed 10M hops round a ring of 1000 actors"},
    {"fork_join", wl_fork_join, "8 sender/receiver pairs, 1M msgs each"},
    {"idle_memory", wl_idle_memory,
     "RSS per idle actor, 100k actors (and 1M: idle_memory_1m)"},
    {"call", wl_call, "100k sequential ra_call round trips"},
};

// Global: whether runs happen in child processes; set once from the
// options before any run.
static bool isolated_runs = true;


static void
print_line(const line_t *l, const char *stat, unsigned run, unsigned repeat)
{
    printf("{\"suite\":\"actor\",\"workload\":\"%s\"", l->workload);
    if (stat != NULL) {
        printf(",\"stat\":\"%s\"", stat);
    }
    printf(",\"value\":%.1f,\"unit\":\"%s\",\"threads\":%u,\"n\":%" PRIu64
           ",\"seconds\":%.6f,\"repeat\":%u",
           l->value, l->unit, l->threads, l->n, l->seconds, repeat);
    printf(",\"isolated\":%s", isolated_runs ? "true" : "false");
    if (stat == NULL) {
        printf(",\"run\":%u%s", run, l->extra);
    }
    printf("}\n");
    fflush(stdout);
}

// print_medians prints a "median" line for each line a workload printed
// per run; runs[r].lines[k] is line k of run r.
static int
print_medians(const bench_t *runs, unsigned repeat)
{
    double *values = calloc(repeat, sizeof *values);
    double *secs = calloc(repeat, sizeof *secs);
    line_t m;

    if (values == NULL || secs == NULL) {
        free(values);
        free(secs);
        fprintf(stderr, "rayo bench actor: out of memory\n");
        return RA_TOOL_FAIL;
    }
    for (size_t k = 0; k < runs[0].nlines; k++) {
        for (unsigned r = 0; r < repeat; r++) {
            values[r] = runs[r].lines[k].value;
            secs[r] = runs[r].lines[k].seconds;
        }
        m = runs[0].lines[k];
        m.value = ra__bench_median(values, repeat);
        m.seconds = ra__bench_median(secs, repeat);
        print_line(&m, "median", 0, repeat);
    }
    free(values);
    free(secs);
    return RA_TOOL_OK;
}

// Runs one run of w in a child process, so that every run starts from the
// same clean process (no allocator or page-cache state left by earlier
// runs), the way each of the Erlang and CAF programs we compare with was
// started afresh.  The child sends its result lines back through a pipe;
// workload and unit point at string literals, valid in both processes.
static int
run_isolated(const workload_t *w, bench_t *b)
{
    int fd[2];
    if (pipe(fd) != 0) {
        perror("rayo bench actor: pipe");
        return RA_TOOL_FAIL;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("rayo bench actor: fork");
        close(fd[0]);
        close(fd[1]);
        return RA_TOOL_FAIL;
    }
    if (pid == 0) {
        close(fd[0]);
        int rc = w->fn(b);
        size_t want = sizeof(b->nlines) + b->nlines * sizeof(line_t);
        if (rc == RA_TOOL_OK &&
            (write(fd[1], &b->nlines, sizeof(b->nlines)) !=
                 (ssize_t)sizeof(b->nlines) ||
             write(fd[1], b->lines, b->nlines * sizeof(line_t)) !=
                 (ssize_t)(want - sizeof(b->nlines)))) {
            rc = RA_TOOL_FAIL;
        }
        close(fd[1]);
        fflush(NULL);
        _exit(rc);
    }
    close(fd[1]);
    size_t n = 0;
    int rc = RA_TOOL_OK;
    if (read(fd[0], &n, sizeof(n)) != (ssize_t)sizeof(n) || n > MAX_LINES ||
        read(fd[0], b->lines, n * sizeof(line_t)) !=
            (ssize_t)(n * sizeof(line_t))) {
        n = 0;
        rc = RA_TOOL_FAIL;
    }
    close(fd[0]);
    b->nlines = n;
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
        WEXITSTATUS(status) != RA_TOOL_OK) {
        if (WIFSIGNALED(status)) {
            fprintf(stderr, "rayo bench actor: %s: run died of signal %d\n",
                    w->name, WTERMSIG(status));
        }
        rc = RA_TOOL_FAIL;
    }
    return rc;
}

static int
run_workload(const bench_opts_t *o, const workload_t *w)
{
    isolated_runs = !o->in_process;
    bench_t *runs = calloc(o->repeat, sizeof *runs);
    int rc = RA_TOOL_OK;

    if (runs == NULL) {
        fprintf(stderr, "rayo bench actor: out of memory\n");
        return RA_TOOL_FAIL;
    }
    for (unsigned r = 0; r < o->repeat && rc == RA_TOOL_OK; r++) {
        bench_t *b = &runs[r];

        *b = (bench_t){.o = o, .name = w->name};
        fprintf(stderr, "rayo bench actor: %s (run %u of %u)\n", w->name,
                r + 1, o->repeat);
        // Each run closes its runtime before it returns.
        rc = o->in_process ? w->fn(b) : run_isolated(w, b);
        for (size_t k = 0; k < b->nlines && rc == RA_TOOL_OK; k++) {
            print_line(&b->lines[k], NULL, r + 1, o->repeat);
        }
    }
    if (rc == RA_TOOL_OK && o->repeat > 1) {
        rc = print_medians(runs, o->repeat);
    }
    free(runs);
    return rc;
}

static const char usage[] =
    "Usage: rayo bench actor [OPTIONS]\n"
    "Benchmark the in-process actor runtime.  Prints one JSON object per\n"
    "line and run on stdout; progress and errors go to stderr.\n"
    "\n"
    "Options:\n"
    "  -q, --quick            divide the sizes by 100 (a smoke test for CI)\n"
    "  -t, --threads N        scheduler threads (default 0: online CPUs)\n"
    "  -r, --repeat N         run each workload N times (default 1) and\n"
    "                         add a line with \"stat\":\"median\"\n"
    "  -w, --workload LIST    comma-separated workloads (default: all)\n"
    "      --in-process       run every run in this process (default: each\n"
    "                         run in a fresh child process, so no run\n"
    "                         inherits allocator state from an earlier one)\n"
    "      --timeout SECONDS  fail when starting, running or stopping a\n"
    "                         workload takes longer (default 600)\n"
    "  -h, --help             show this help\n"
    "\n"
    "Workloads:\n";

static const char tail[] =
    "\nExit status: 0 when every check passed, 1 when a check or the "
    "runtime\nfailed, 2 for a bad command line.\n";

int
ra__tool_bench_actor(const char *prog, int argc, char **argv)
{
    bench_opts_t o = {.timeout_s = 600};
    const ra_bench_opt_t opts[] = {
        {.name = "in-process", .flag = &o.in_process},
        RA_BENCH_OPT_THREADS(&o.threads),
        RA_BENCH_OPT_TIMEOUT(&o.timeout_s),
    };
    const ra_bench_cmd_t cmd = {
        .usage = usage,
        .width = 12,
        .tail = tail,
        .workloads = RA_BENCH_TABLE(workloads, workload_t, summary),
        .select = "workload",
        .select_letter = 'w',
        .max_repeat = 1000,
        .opts = opts,
        .nopts = sizeof opts / sizeof opts[0],
    };
    ra_bench_args_t a;
    int rc = ra__bench_parse_args(prog, &cmd, argc, argv, &a);

    if (rc != RA_TOOL_OK || a.help) {
        return rc;
    }
    o.quick = a.quick;
    o.repeat = a.repeat;
    ra__bench_watchdog_install();
    for (size_t i = 0; i < a.nsel; i++) {
        if (run_workload(&o, &workloads[a.sel[i]]) != RA_TOOL_OK) {
            rc = RA_TOOL_FAIL; // go on: the other numbers are still useful
        }
    }
    return rc;
}

// worker.c - a worker process: the executor that runs tasks one at a
// time, the host that starts actor instances, and the instances.
//
// A raylet starts a worker by running the program's own executable again
// with RAYO_WORKER=1 and the addresses it needs in the environment; the
// program's ra_init (or ra_worker_main) lands here and never returns.  The
// worker joins the raylet's link, registers its executor and host, and
// then only answers messages.  It ends when the raylet tells it to (STOP),
// when the raylet's process is lost (a worker must not outlive its node),
// or by a signal.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core_impl.h"
#include "mailbox_impl.h"
#include "hmap.h"
#include "ra_objstore.h"
#include "ra_error.h"
#include "ra_link.h"
#include "ra_log.h"

// The task the executor is running, and whether it was asked to stop.
// Global: written by the executor (running) and the host (cancel), both
// atomics.
static _Atomic uint64_t running_id;
static _Atomic bool cancel_flag;
// Whether this thread is the executor, inside a task.
static _Thread_local bool in_task;

bool
ra__worker_in_task(void)
{
    return in_task;
}

void
ra__worker_notify_blocked(bool on)
{
    ra__cluster_t *c = ra__g;
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    if (c == NULL || !c->worker) {
        return;
    }
    ra__wb_u32(&b, (uint32_t)getpid());
    ra__wb_u8(&b, on);
    if (ra__wb_msg(&b, RA__T_BLOCKED, &m) == 0 &&
        ra_runtime_send(c->rt, c->raylet, &m) != 0) {
        ra_msg_unref(&m);
    }
}

// ---- GPUs ----

// set_gpu_env sets CUDA_VISIBLE_DEVICES from a GPU_ENV message, sent by a
// lease's owner before the lease's first task or actor.  Only that
// variable, and only to device numbers or UUIDs.
static void
set_gpu_env(ra_msg_t *msg)
{
    ra__rbuf_t r;
    char vis[RA__VISIBLE_MAX];
    ra__rb_init(&r, msg);
    ra__rb_str(&r, vis, sizeof vis);
    if (r.bad || !ra__gpu_env_ok(vis)) {
        ra_log_warn("worker", "malformed GPU environment dropped");
        return;
    }
    const char *now = getenv("CUDA_VISIBLE_DEVICES");
    if (now == NULL || strcmp(now, vis) != 0) {
        (void)setenv("CUDA_VISIBLE_DEVICES", vis, 1);
    }
}

// ---- the executor ----

static int
exec_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)state;
    if (ra_msg_tag(msg) == RA__T_GPU_ENV) {
        set_gpu_env(msg);
        return 0;
    }
    if (ra_msg_tag(msg) != RA__T_TASK) {
        return 0;
    }
    ra__task_view_t v;
    int rc = ra__task_decode(msg, &v);
    if (rc != 0) {
        ra_log_warn("worker", "malformed task dropped: %s",
                    ra_err_name(rc));
        return 0;
    }
    ra_task_fn fn = v.type == RA__TASK_FN ? ra__fn_lookup(v.name) : NULL;
    char why[256] = "";
    if (fn == NULL) {
        snprintf(why, sizeof why, "no remote function named \"%s\" in "
                 "this executable (register it with RA_REMOTE_REGISTER)",
                 v.name);
    }
    for (uint32_t i = 0; i < v.nargs && why[0] == '\0'; i++) {
        if (v.args[i].kind == RA_ARG_REF) {
            snprintf(why, sizeof why, "argument %u is an unresolved "
                     "reference", i);
        }
    }
    atomic_store(&cancel_flag, false);
    atomic_store(&running_id, v.id);
    in_task = true;
    ra__task_run(ctx, ra_sender(ctx), fn, &v, NULL,
                 why[0] != '\0' ? RA_ETASK : 0,
                 why[0] != '\0' ? why : NULL);
    in_task = false;
    atomic_store(&running_id, 0);
    free(v.args);
    return 0;
}

static const ra_behaviour_t exec_beh = {
    .name = "rayo-executor",
    .handle = exec_handle,
};

// ---- actor instances ----

// A call waiting for a thread of an instance with max_concurrency > 1.
typedef struct call {
    ra_msg_t *msg;
    ra_pid_t from;
    struct call *next;
} call_t;

typedef struct inst {
    const ra_actor_class_t *cls;
    void *state;
    ra_pid_t owner;      // during init: who gets the constructor's result
    uint64_t id;
    uint32_t attempt;
    // max_concurrency > 1: calls run on conc threads of the instance's own
    // (started by inst_init), fed in order through a queue.  The instance
    // and its threads each hold a reference; the last one out runs fini.
    unsigned conc;
    ra_runtime_t *rt;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    call_t *head, *tail;
    bool stop;
    unsigned refs;
} inst_t;

// inst_init tells the owner that the actor is up; sent by the instance
// itself, so that the owner learns its pid from the sender.
// The actor instances this worker hosts, and whether the owner of its
// (detached) actors is gone (RA__T_ORPHANED): the worker then exits once
// none is left, which gives their lease back.
static _Atomic unsigned live_insts;
static _Atomic bool orphaned;

// ---- borrows kept by actors ----
//
// ra_borrow inside an actor (its constructor, a method, its fini) makes
// the keep that actor's: when the actor ends, what it still keeps is let
// go, as if its process had exited.  The records are few (one per actor
// and reference kept), in one list.

typedef struct keep_rec {
    const inst_t *in;
    ra_ref_t ref;
    unsigned n;
    struct keep_rec *next;
} keep_rec_t;

static pthread_mutex_t keeps_mu = PTHREAD_MUTEX_INITIALIZER;
static keep_rec_t *keeps;
// The actor whose code this thread runs (NULL: none).
static _Thread_local const inst_t *cur_inst;

static bool
same_ref(ra_ref_t a, ra_ref_t b)
{
    return a.node == b.node && a.proc == b.proc && a.id == b.id;
}

void
ra__worker_kept(ra_ref_t ref)
{
    const inst_t *in = cur_inst;
    if (in == NULL) {
        return;
    }
    pthread_mutex_lock(&keeps_mu);
    keep_rec_t *k = keeps;
    while (k != NULL && !(k->in == in && same_ref(k->ref, ref))) {
        k = k->next;
    }
    if (k == NULL && (k = calloc(1, sizeof *k)) != NULL) {
        k->in = in;
        k->ref = ref;
        k->next = keeps;
        keeps = k;
    }
    if (k != NULL) {
        k->n++;   // (out of memory: the keep stays the process's)
    }
    pthread_mutex_unlock(&keeps_mu);
}

void
ra__worker_let_go(ra_ref_t ref)
{
    if (ra__g == NULL || !ra__g->worker) {
        return;   // a driver's: no actors here
    }
    pthread_mutex_lock(&keeps_mu);
    keep_rec_t **pp = NULL;
    for (keep_rec_t **q = &keeps; *q != NULL; q = &(*q)->next) {
        if (same_ref((*q)->ref, ref) && (pp == NULL || (*q)->in == cur_inst)) {
            pp = q;
            if ((*q)->in == cur_inst) {
                break;
            }
        }
    }
    if (pp != NULL && --(*pp)->n == 0) {
        keep_rec_t *k = *pp;
        *pp = k->next;
        free(k);
    }
    pthread_mutex_unlock(&keeps_mu);
}

// keeps_end lets go of what actor in still keeps; it has ended.
static void
keeps_end(const inst_t *in, const char *cls)
{
    keep_rec_t *mine = NULL;
    pthread_mutex_lock(&keeps_mu);
    for (keep_rec_t **q = &keeps; *q != NULL;) {
        keep_rec_t *k = *q;
        if (k->in == in) {
            *q = k->next;
            k->next = mine;
            mine = k;
        } else {
            q = &k->next;
        }
    }
    pthread_mutex_unlock(&keeps_mu);
    unsigned total = 0;
    while (mine != NULL) {
        keep_rec_t *k = mine;
        mine = k->next;
        for (unsigned i = 0; i < k->n && ra__g != NULL; i++) {
            total += ra__fref_release(ra__g, k->ref);
        }
        free(k);
    }
    if (total != 0) {
        ra_log_info("worker", "actor of class %s ended keeping %u borrowed "
                    "references: let go", cls, total);
    }
}

static void
exit_if_orphaned(void)
{
    if (atomic_load(&orphaned) && atomic_load(&live_insts) == 0) {
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    }
}

// run_call runs one method call of in, from caller from, on ctx, and
// answers it.  With threads, each call sees the state as the constructor
// left it (methods that run at once must not replace it).
static void
run_call(ra_ctx_t *ctx, inst_t *in, ra_msg_t *msg, ra_pid_t from)
{
    ra__task_view_t v;
    int rc = ra__task_decode(msg, &v);
    if (rc != 0 || v.type != RA__TASK_METHOD) {
        free(v.args);
        ra_log_warn("worker", "malformed actor call dropped");
        return;
    }
    ra_task_fn fn = NULL;
    for (size_t i = 0; i < in->cls->nmethods; i++) {
        if (strcmp(in->cls->methods[i].name, v.name) == 0) {
            fn = in->cls->methods[i].fn;
            break;
        }
    }
    char why[256] = "";
    if (fn == NULL) {
        snprintf(why, sizeof why, "class %s has no method \"%s\"",
                 in->cls->name, v.name);
    }
    void *shared = in->state;
    cur_inst = in;
    ra__task_run(ctx, from, fn, &v, in->conc > 1 ? &shared : &in->state,
                 fn == NULL ? RA_ETASK : 0, fn == NULL ? why : NULL);
    cur_inst = NULL;
    free(v.args);
}

// inst_unref drops a reference to in; the last one ends the instance.
static void
inst_unref(inst_t *in)
{
    pthread_mutex_lock(&in->mu);
    bool last = --in->refs == 0;
    pthread_mutex_unlock(&in->mu);
    if (!last) {
        return;
    }
    while (in->head != NULL) {   // calls never started: no answer
        call_t *c = in->head;
        in->head = c->next;
        ra_msg_unref(&c->msg);
        free(c);
    }
    if (in->cls->fini != NULL) {
        cur_inst = in;
        in->cls->fini(in->state);
        cur_inst = NULL;
    }
    keeps_end(in, in->cls->name);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->cv);
    free(in);
    atomic_fetch_sub(&live_insts, 1);
    exit_if_orphaned();
}

// lane_main is one of the threads of an instance with max_concurrency > 1.
static void *
lane_main(void *arg)
{
    inst_t *in = arg;
    pthread_setname_np(pthread_self(), "rayo-actor-lane");
    ra_ctx_t *ctx = NULL;
    int rc = ra_scope_new(in->rt, &ctx);
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (!in->stop && in->head == NULL) {
            pthread_cond_wait(&in->cv, &in->mu);
        }
        call_t *c = in->stop ? NULL : in->head;
        if (c != NULL) {
            in->head = c->next;
            if (in->head == NULL) {
                in->tail = NULL;
            }
        }
        pthread_mutex_unlock(&in->mu);
        if (c == NULL) {
            break;
        }
        if (rc == 0) {
            run_call(ctx, in, c->msg, c->from);
        }
        ra_msg_unref(&c->msg);
        free(c);
    }
    ra_scope_destroy(&ctx);
    inst_unref(in);
    return NULL;
}

static int
inst_init(ra_ctx_t *ctx, void **state)
{
    inst_t *in = *state;
    atomic_fetch_add(&live_insts, 1);   // terminate runs from here on
    in->rt = ra_ctx_runtime(ctx);
    for (unsigned i = 1; in->conc > 1 && i <= in->conc; i++) {
        pthread_t th;
        pthread_mutex_lock(&in->mu);
        in->refs++;
        pthread_mutex_unlock(&in->mu);
        if (pthread_create(&th, NULL, lane_main, in) != 0) {
            pthread_mutex_lock(&in->mu);
            in->refs--;
            pthread_mutex_unlock(&in->mu);
            ra_log_warn("worker", "actor %s: only %u of %u threads "
                        "started", in->cls->name, i - 1, in->conc);
            if (i == 1) {
                in->conc = 1;   // none: calls run on the instance itself
            }
            break;
        }
        pthread_detach(th);
    }
    ra_msg_t *res = NULL;
    int rc = ra__result_msg(in->id, in->attempt, 0, RA_VAL_NONE, NULL, 0,
                            &res);
    if (rc == 0 && (rc = ra_send(ctx, in->owner, &res)) != 0) {
        ra_msg_unref(&res);
    }
    return rc;
}

static int
inst_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    inst_t *in = state;
    if (ra_msg_tag(msg) != RA__T_TASK) {
        return 0;
    }
    if (in->conc <= 1) {
        run_call(ctx, in, msg, ra_sender(ctx));
        return 0;
    }
    call_t *c = malloc(sizeof *c);
    if (c == NULL) {
        ra_log_warn("worker", "actor %s: out of memory: a call dropped",
                    in->cls->name);
        return 0;
    }
    *c = (call_t){ra_msg_ref(msg), ra_sender(ctx), NULL};
    pthread_mutex_lock(&in->mu);
    if (in->tail != NULL) {
        in->tail->next = c;
    } else {
        in->head = c;
    }
    in->tail = c;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
    return 0;
}

static void
inst_terminate(ra_ctx_t *ctx, void *state, ra_reason_t reason)
{
    (void)ctx;
    (void)reason;
    inst_t *in = state;
    // Threads running a method finish it (its answer still goes out);
    // calls not started are dropped, as with one thread.
    pthread_mutex_lock(&in->mu);
    in->stop = true;
    pthread_cond_broadcast(&in->cv);
    pthread_mutex_unlock(&in->mu);
    inst_unref(in);
}

static const ra_behaviour_t inst_beh = {
    .name = "rayo-actor",
    .init = inst_init,
    .handle = inst_handle,
    .terminate = inst_terminate,
};

// ---- the host ----

// The instances of shared actors, by the lease their owner holds for
// them, and the last leases that ended.  The raylet ends a lease when the
// placement group it came from is removed or its owner is gone
// (RA__T_LEASE_END): the instance is killed, the process and the other
// actors in it stay.  An ended lease is remembered a while, because its
// constructor can still be on its way from the owner (it travels on
// another link).  Only the host's actor touches these.
static ra__hmap_t hinst;   // {lease, 0} -> ra_pid_t * (malloc'd)
#define ENDED_KEEP 256
static uint64_t ended[ENDED_KEEP];
static size_t nended;

static bool
lease_ended(uint64_t lease)
{
    for (size_t i = 0; i < ENDED_KEEP && i < nended; i++) {
        if (ended[i] == lease) {
            return true;
        }
    }
    return false;
}

static void
hinst_add(uint64_t lease, ra_pid_t pid)
{
    ra_pid_t *p = malloc(sizeof *p);
    if (p == NULL || ra__hmap_put(&hinst, (ra__hkey_t){lease, 0}, p) != 0) {
        free(p);
        ra_log_warn("worker", "out of memory: the instance of lease %"
                    PRIu64 " cannot be ended with it", lease);
        return;
    }
    *p = pid;
}

// on_lease_end ends the instance of a shared actor whose lease the raylet
// ended: {u64 lease, u8 kill}.
static void
on_lease_end(ra_ctx_t *ctx, ra_msg_t *msg)
{
    ra__rbuf_t r;
    ra__rb_init(&r, msg);
    uint64_t lease = ra__rb_u64(&r);
    bool kill_it = ra__rb_u8(&r) != 0;
    if (r.bad || ra__g == NULL || !ra_pid_eq(ra_sender(ctx), ra__g->raylet)) {
        ra_log_warn("worker", "lease end from %s dropped",
                    r.bad ? "a malformed message" : "another than the raylet");
        return;
    }
    ra_pid_t *p = ra__hmap_del(&hinst, (ra__hkey_t){lease, 0});
    if (p == NULL) {
        ended[nended++ % ENDED_KEEP] = lease;
        return;
    }
    if (kill_it) {
        (void)ra_exit_pid(ctx, *p, RA_KILL);
    }
    free(p);
}

// new_actor constructs an instance.  The constructor runs here, as the
// host, before the instance exists; its result goes to the owner from the
// instance (so that the owner learns its pid from the sender), or from the
// host when the constructor failed.
static void
new_actor(ra_ctx_t *ctx, ra_msg_t *msg)
{
    ra__task_view_t v;
    int rc = ra__task_decode(msg, &v);
    ra_pid_t owner = ra_sender(ctx);
    if (rc != 0 || v.type != RA__TASK_CTOR) {
        free(v.args);
        ra_log_warn("worker", "malformed actor creation dropped");
        return;
    }
    if (v.lease != 0 && lease_ended(v.lease)) {
        // Its placement group was removed (or its owner went) while the
        // constructor was on its way.
        static const char why[] = "its lease ended before it was "
                                  "constructed (its placement group was "
                                  "removed)";
        ra_msg_t *res = NULL;
        if (ra__result_msg(v.id, v.attempt, RA_ETASK, RA_VAL_NONE, why,
                           sizeof why - 1, &res) == 0 &&
            ra_send(ctx, owner, &res) != 0) {
            ra_msg_unref(&res);
        }
        free(v.args);
        return;
    }
    const ra_actor_class_t *cls = ra__class_lookup(v.name);
    inst_t *in = cls != NULL ? calloc(1, sizeof *in) : NULL;
    if (in == NULL) {
        char why[256];
        snprintf(why, sizeof why, cls == NULL
                 ? "no actor class named \"%s\" in this executable "
                   "(register it with RA_ACTOR_CLASS_REGISTER)"
                 : "out of memory creating an actor of class %s", v.name);
        ra_msg_t *res = NULL;
        if (ra__result_msg(v.id, v.attempt, RA_ETASK, RA_VAL_NONE, why,
                           strlen(why), &res) == 0 &&
            ra_send(ctx, owner, &res) != 0) {
            ra_msg_unref(&res);
        }
        free(v.args);
        return;
    }
    in->cls = cls;
    in->conc = v.conc > 1 ? v.conc : 1;
    in->refs = 1;
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->cv, NULL);
    ra_task_t t = {.view = &v};
    void *maps = NULL;
    char mwhy[900] = "";
    rc = ra__args_map(ctx, &v, &maps, mwhy, sizeof mwhy);
    if (rc == 0) {
        cur_inst = in;
        rc = cls->init != NULL ? cls->init(&t) : 0;
        cur_inst = NULL;
    }
    ra__args_unmap(ctx, &v, &maps);
    in->state = t.state;
    if (rc != 0) {
        char why[1100];
        snprintf(why, sizeof why, "%s", mwhy[0] != '\0' ? mwhy
                 : t.errtext != NULL ? t.errtext : ra_err_name(rc));
        ra_msg_t *res = NULL;
        if (ra__result_msg(v.id, v.attempt, RA_ETASK, RA_VAL_NONE, why,
                           strlen(why), &res) == 0 &&
            ra_send(ctx, owner, &res) != 0) {
            ra_msg_unref(&res);
        }
        if (cls->fini != NULL) {
            cur_inst = in;
            cls->fini(in->state);
            cur_inst = NULL;
        }
        keeps_end(in, cls->name);
        pthread_mutex_destroy(&in->mu);
        pthread_cond_destroy(&in->cv);
        free(in);
        free(t.rdata);
        free(t.errtext);
        free(v.args);
        return;
    }
    free(t.rdata);
    free(t.errtext);
    in->owner = owner;
    in->id = v.id;
    in->attempt = v.attempt;
    ra_pid_t ipid = RA_PID_NIL;
    rc = ra_spawn(ra_ctx_runtime(ctx), &inst_beh, in, NULL, &ipid);
    if (rc == 0 && v.lease != 0) {
        hinst_add(v.lease, ipid);
    }
    if (rc != 0) {
        // init failed to send, or the spawn itself failed: in is freed by
        // terminate only if the actor existed, so tell the owner here.
        char why[128];
        snprintf(why, sizeof why, "the instance could not start: %s",
                 ra_err_name(rc));
        ra_msg_t *res = NULL;
        if (ra__result_msg(v.id, v.attempt, RA_ETASK, RA_VAL_NONE, why,
                           strlen(why), &res) == 0 &&
            ra_send(ctx, owner, &res) != 0) {
            ra_msg_unref(&res);
        }
    }
    free(v.args);
}

// retire_later keeps an idle worker that the raylet retires alive while
// other processes borrow objects it owns (ra_task_return_ref, or
// RA_ARG_BORROW of its own objects): they would be lost with it.  The
// raylet no longer leases it; it asks itself again every 250 ms and goes
// once the last borrow has ended.  Only the raylet is believed.
static bool
retire_later(ra_ctx_t *ctx, ra_msg_t *msg)
{
    static bool said;
    size_t n = 0;
    const uint8_t *b = ra_msg_data(msg, &n);
    ra_pid_t from = ra_sender(ctx);
    bool idle = n == 1 && b[0] == RA__STOP_IDLE;
    // (A timer's message, ours, has no sender.)
    bool trusted = ra_pid_is_nil(from) || ra_pid_eq(from, ra_self(ctx)) ||
                   (ra__g != NULL && from.node == ra__g->raylet.node &&
                    from.proc == ra__g->raylet.proc);
    unsigned lent = ra__g != NULL && ra__g->cs != NULL
                        ? atomic_load(&ra__g->cs->nborrowers)
                        : 0;
    if (!idle || !trusted || lent == 0) {
        return false;
    }
    if (!said) {
        said = true;
        ra_log_info("worker", "retired while %u processes borrow objects "
                    "of this one: exiting once they let go", lent);
    }
    ra_msg_t *m = NULL;
    uint8_t again = RA__STOP_IDLE;
    if (ra_msg_new_bytes(&m, RA__T_STOP, &again, 1) == 0 &&
        ra_send_after(ra_ctx_runtime(ctx), ra_self(ctx), 250, &m, NULL) != 0) {
        ra_msg_unref(&m);
        return false;
    }
    return true;
}

static int
host_handle(ra_ctx_t *ctx, void *state, ra_msg_t *msg)
{
    (void)state;
    ra__rbuf_t r;
    switch (ra_msg_tag(msg)) {
    case RA__T_ACTOR_NEW:
        new_actor(ctx, msg);
        break;
    case RA__T_GPU_ENV:
        set_gpu_env(msg);
        break;
    case RA__T_LEASE_END:
        on_lease_end(ctx, msg);
        break;
    case RA__T_CANCEL:
        ra__rb_init(&r, msg);
        uint64_t id = ra__rb_u64(&r);
        if (!r.bad && id != 0 && atomic_load(&running_id) == id) {
            atomic_store(&cancel_flag, true);
        }
        break;
    case RA__T_ORPHANED:
        if (ra_sender(ctx).node == ra_self(ctx).node) {
            atomic_store(&orphaned, true);
            exit_if_orphaned();
        }
        break;
    case RA__T_STOP:
        if (retire_later(ctx, msg)) {
            break;
        }
        fflush(stdout);
        fflush(stderr);
        _exit(0);
    default:
        break;
    }
    return 0;
}

static const ra_behaviour_t host_beh = {
    .name = "rayo-host",
    .handle = host_handle,
};

const _Atomic bool *
ra__worker_cancel_flag(void)
{
    return &cancel_flag;
}

// ---- the worker's output ----

// A worker's stdout and stderr are pipes read by a thread of its own,
// which appends what comes to the worker's log files
// (SESSION/logs/worker-PID.out and .err) and writes each line, prefixed
// with "(pid=PID) " as Ray does, to the stream the worker inherited (the
// driver's terminal).  A line of up to PIPE_BUF bytes is written in one
// call, so lines of several workers do not interleave.

// On a node daemon's cluster the worker's inherited streams are the
// daemon's log, so lines go to the job's driver instead (RAYO_DRIVER), as
// RA__T_OUTPUT messages that its core writes to its own stdout or stderr
// (prefixed "(pid=PID, node=N) " when the worker is on another node).
// They start once the worker's runtime and link run (out_ready).
static _Atomic bool out_ready;
static ra_pid_t out_driver;

typedef struct out_stream {
    int pipe_rd;
    int orig;                 // the inherited stream
    int file;                 // the log file
    char line[4096];
    size_t len;
} out_stream_t;

// out_to_driver sends one line to the driver; false when it cannot.
static bool
out_to_driver(int stream, const char *line, size_t n)
{
    static ra_ctx_t *scope;   // the output thread's own
    if (!atomic_load(&out_ready) || ra_pid_is_nil(out_driver)) {
        return false;
    }
    if (scope == NULL && ra_scope_new(ra__g->rt, &scope) != 0) {
        return false;
    }
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u8(&b, (uint8_t)stream);
    ra__wb_bytes(&b, line, n);
    if (ra__wb_msg(&b, RA__T_OUTPUT, &m) != 0) {
        return false;
    }
    if (ra_send(scope, out_driver, &m) != 0) {
        ra_msg_unref(&m);
        return false;
    }
    return true;
}

static void
out_flush_line(out_stream_t *o, int stream, const char *prefix, size_t plen)
{
    char buf[4096 + 64];
    memcpy(buf, prefix, plen);
    memcpy(buf + plen, o->line, o->len);
    size_t n = plen + o->len;
    if (n == 0 || buf[n - 1] != '\n') {
        buf[n++] = '\n';
    }
    if (!out_to_driver(stream, buf, n)) {
        ssize_t w = write(o->orig, buf, n);
        (void)w;
    }
    o->len = 0;
}

static void *
out_main(void *arg)
{
    out_stream_t *o = arg;
    char prefix[64];
    const char *node = getenv("RAYO_NODE");
    size_t plen =
        !ra_pid_is_nil(out_driver) && node != NULL &&
                (uint32_t)strtoul(node, NULL, 10) != out_driver.node
            ? (size_t)snprintf(prefix, sizeof prefix, "(pid=%d, node=%s) ",
                               (int)getpid(), node)
            : (size_t)snprintf(prefix, sizeof prefix, "(pid=%d) ",
                               (int)getpid());
    char buf[4096];
    struct pollfd pf[2] = {{o[0].pipe_rd, POLLIN, 0},
                           {o[1].pipe_rd, POLLIN, 0}};
    int open_n = 2;
    while (open_n > 0) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || pf[i].revents == 0) {
                continue;
            }
            ssize_t n = read(pf[i].fd, buf, sizeof buf);
            if (n <= 0) {
                if (o[i].len > 0) {
                    out_flush_line(&o[i], i + 1, prefix, plen);
                }
                pf[i].fd = -1;
                open_n--;
                continue;
            }
            ssize_t w = write(o[i].file, buf, (size_t)n);
            (void)w;
            for (ssize_t k = 0; k < n; k++) {
                o[i].line[o[i].len++] = buf[k];
                if (buf[k] == '\n' || o[i].len == sizeof o[i].line) {
                    out_flush_line(&o[i], i + 1, prefix, plen);
                }
            }
        }
    }
    return NULL;
}

// capture_output sets up the pipes, files and thread; on any failure the
// worker keeps its inherited streams.
static void
capture_output(const char *sess)
{
    static out_stream_t o[2];
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/logs", sess);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        int p[2];
        snprintf(path, sizeof path, "%s/worker-%d.%s", dir, (int)getpid(),
                 i == 0 ? "out" : "err");
        o[i].file = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                         0600);
        o[i].orig = dup(i + 1);
        if (o[i].file < 0 || o[i].orig < 0 || pipe2(p, O_CLOEXEC) != 0) {
            return;
        }
        o[i].pipe_rd = p[0];
        if (dup2(p[1], i + 1) < 0) {
            return;
        }
        close(p[1]);
        (void)fcntl(o[i].orig, F_SETFD, FD_CLOEXEC);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t th;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    (void)pthread_create(&th, &at, out_main, o);
    pthread_attr_destroy(&at);
}

// ---- the worker process ----

static int
env_pid(const char *name, ra_pid_t *p)
{
    const char *s = getenv(name);
    unsigned n, pr, id, gen;
    if (s == NULL || sscanf(s, "%u.%u.%u.%u", &n, &pr, &id, &gen) != 4) {
        return RA_EINVAL;
    }
    *p = (ra_pid_t){n, pr, id, gen};
    return 0;
}

static void
die_early(const char *what, int rc)
{
    fprintf(stderr, "rayo worker %d: %s: %s\n", (int)getpid(), what,
            ra_strerror(rc));
    _exit(70);
}

void
ra__worker_run(bool forked)
{
    static ra__cluster_t c;
    int rc;
    // A worker must not outlive the process that started it (a forked
    // one: its fork server, which must not outlive the raylet's process).
    const char *pp = getenv("RAYO_PPID");
    if (!forked) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (pp == NULL || (pid_t)atol(pp) != getppid()) {
            _exit(0);
        }
    }
    const char *sess = getenv("RAYO_SESSION");
    const char *ep = getenv("RAYO_RAYLET_EP");
    const char *node = getenv("RAYO_NODE");
    const char *ns = getenv("RAYO_NS");
    const char *th = getenv("RAYO_THREADS");
    if (sess == NULL || ep == NULL || node == NULL ||
        env_pid("RAYO_RAYLET", &c.raylet) != 0 ||
        env_pid("RAYO_GCS", &c.gcs) != 0) {
        die_early("incomplete worker environment", RA_EINVAL);
    }
    (void)env_pid("RAYO_DRIVER", &out_driver);
    // The node's object manager keeps results made for owners on other
    // nodes (none: they travel inline).
    if (env_pid("RAYO_OBJMGR", &c.objmgr) == 0) {
        snprintf(c.node_ep, sizeof c.node_ep, "%s", ep);
    }
    capture_output(sess);
    // A daemon's worker runs where its driver runs.
    const char *cwd = getenv("RAYO_CWD");
    if (cwd != NULL && chdir(cwd) != 0) {
        fprintf(stderr, "rayo worker %d: cannot enter the driver's "
                "directory %s: %s\n", (int)getpid(), cwd, strerror(errno));
    }
    const char *env = getenv("RAYO_ENV");
    c.env = env != NULL ? (uint32_t)strtoul(env, NULL, 10) : 0;
    // The runtime environment's libraries register their functions.
    if ((rc = ra__load_libs(NULL, NULL)) != 0) {
        die_early("runtime environment libraries", rc);
    }
    c.worker = true;
    c.inline_max = RA__INLINE_MAX_DEFAULT;
    // A worker starts with small message regions: it may serve one
    // actor, and its start is what an isolated actor waits for.
    ra__pool_start_small();
    const char *store = getenv("RAYO_STORE");
    if (store != NULL) {
        ra_objstore_t *st = NULL;
        ra_objstore_opts_t so = {.prefault = RA_OBJSTORE_PREFAULT_NONE};
        if ((rc = ra_objstore_attach(&st, store, &so)) != 0) {
            fprintf(stderr, "rayo worker %d: object store %s: %s; large "
                    "results travel inline\n", (int)getpid(), store,
                    ra_strerror(rc));
        }
        c.store = st;
    }
    c.node = (uint32_t)atol(node);
    c.proc = (uint32_t)getpid();
    snprintf(c.session, sizeof c.session, "%s", sess);
    snprintf(c.ns, sizeof c.ns, "%s", ns != NULL ? ns : "default");
    ra_runtime_opts_t ro = {.node = c.node, .proc = (uint32_t)getpid(),
                            .threads = th != NULL ? (unsigned)atoi(th) : 0,
                            .spin = ra__cluster_spin()};
    if ((rc = ra_runtime_new(&c.rt, &ro)) != 0) {
        die_early("runtime", rc);
    }
    char dir[600];
    snprintf(dir, sizeof dir, "%s/sock", sess);
    // On a cluster of several nodes workers speak tcp too.
    const char *bind = getenv("RAYO_BIND");
    const char *cert = getenv("RAYO_CERT");
    const char *gcs_ep = getenv("RAYO_GCS_EP");
    ra_link_opts_t lo = {.ipc_dir = dir, .idle_ms = UINT32_MAX,
                         .bind = bind, .cert = cert};
    ra__link_env_opts(&lo);
    ra_link_t *l = NULL;
    if ((rc = ra_link_start(c.rt, &lo, &l)) != 0) {
        die_early("link", rc);
    }
    c.link = l;
    if ((rc = ra_link_route(l, c.raylet.node, c.raylet.proc, ep)) != 0) {
        die_early("route to the raylet", rc);
    }
    if (gcs_ep != NULL && gcs_ep[0] != '\0' &&
        (rc = ra_link_route(l, c.gcs.node, c.gcs.proc, gcs_ep)) != 0) {
        die_early("route to the GCS", rc);
    }
    if (gcs_ep != NULL) {
        snprintf(c.gcs_ep, sizeof c.gcs_ep, "%s", gcs_ep);
    }
    ra__g = &c;
    if ((rc = ra__core_start(&c)) != 0) {
        die_early("core", rc);
    }
    atomic_store(&out_ready, true);
    ra_pid_t exec, host;
    if ((rc = ra_spawn(c.rt, &exec_beh, NULL, NULL, &exec)) != 0 ||
        (rc = ra_spawn(c.rt, &host_beh, NULL, NULL, &host)) != 0) {
        die_early("executor", rc);
    }
    ra_ctx_t *scope = NULL;
    if ((rc = ra_scope_new(c.rt, &scope)) != 0) {
        die_early("scope", rc);
    }
    ra__wbuf_t b = {0};
    ra_msg_t *m = NULL;
    ra__wb_u32(&b, (uint32_t)getpid());
    ra__wb_pid(&b, exec);
    ra__wb_pid(&b, host);
    ra__wb_pid(&b, c.core);
    ra__wb_str(&b, bind != NULL ? ra_link_endpoint(l) : "");
    if ((rc = ra__wb_msg(&b, RA__T_REGISTER, &m)) != 0 ||
        (rc = ra_send(scope, c.raylet, &m)) != 0) {
        die_early("register with the raylet", rc);
    }
    uint64_t ref;
    if ((rc = ra_link_monitor_node(scope, c.raylet.node, c.raylet.proc,
                                   &ref)) != 0) {
        die_early("watch the raylet", rc);
    }
    for (;;) {
        ra_msg_t *in = NULL;
        if (ra_receive(scope, -1, &in) == 0) {
            bool down = ra_msg_kind(in) == RA_MSG_DOWN;
            ra_msg_unref(&in);
            if (down) {
                // The raylet's process is gone: so is our reason to be.
                fflush(stdout);
                fflush(stderr);
                _exit(0);
            }
        }
    }
}

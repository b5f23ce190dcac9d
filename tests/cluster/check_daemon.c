// check_daemon.c - a node daemon (ra_node_run in a child process) and the
// drivers that join it: tasks and large values from a joined driver, two
// drivers' jobs kept apart, resources and workers back after a job,
// malformed job messages refused, the daemon's loss failing pending work
// at once, and the errors of ra_init for addresses with no cluster.
//
// Real processes throughout: the daemon is a fork of this binary, its
// workers are this binary re-executed in worker mode, drivers are forks.
#include <check.h>
#include <errno.h>
#include <rayo.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster_impl.h"
#include "testutil.h"

// ---- remote functions ----

static int
add(ra_task_t *t)
{
    return ra_task_return_i64(t, ra_task_arg_i64(t, 0) +
                                     ra_task_arg_i64(t, 1));
}
RA_REMOTE_REGISTER(add)

static int
my_pid(ra_task_t *t)
{
    return ra_task_return_i64(t, (int64_t)getpid());
}
RA_REMOTE_REGISTER(my_pid)

// big returns arg 0 bytes, byte i being i % 251: through the object store.
static int
big(ra_task_t *t)
{
    size_t n = (size_t)ra_task_arg_i64(t, 0);
    uint8_t *p = malloc(n);
    if (p == NULL) {
        return ra_task_fail(t, "no memory");
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(i % 251);
    }
    int rc = ra_task_return_bytes(t, p, n);
    free(p);
    return rc;
}
RA_REMOTE_REGISTER(big)

static int
nap(ra_task_t *t)
{
    int64_t ms = ra_task_arg_i64(t, 0);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    return ra_task_return_i64(t, ms);
}
RA_REMOTE_REGISTER(nap)

// Tally: a counter actor; bump() -> the count after adding 1, pid() ->
// its worker's process id.
static int
tally_init(ra_task_t *t)
{
    int64_t *n = calloc(1, sizeof *n);
    if (n == NULL) {
        return RA_ENOMEM;
    }
    ra_task_set_state(t, n);
    return 0;
}

static int
tally_bump(ra_task_t *t)
{
    int64_t *n = ra_task_state(t);
    return ra_task_return_i64(t, ++*n);
}

static int
tally_pid(ra_task_t *t)
{
    return ra_task_return_i64(t, (int64_t)getpid());
}

static const ra_method_t tally_methods[] = {
    {"bump", tally_bump},
    {"pid", tally_pid},
};

static const ra_actor_class_t Tally = {
    .name = "Tally",
    .init = tally_init,
    .fini = free,
    .methods = tally_methods,
    .nmethods = 2,
};
RA_ACTOR_CLASS_REGISTER(Tally)

// ---- the daemon fixture ----

static char temp[256];
static char session[600];
static pid_t daemon_pid = -1;

static void
daemon_up(void)
{
    snprintf(temp, sizeof temp, "/tmp/rayo-check-daemon.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(temp));
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    daemon_pid = fork();
    ck_assert_int_ge(daemon_pid, 0);
    if (daemon_pid == 0) {
        close(p[0]);
        ra_init_opts_t o = {.num_cpus = 2, .workers = 1, .temp_dir = temp,
                            .object_store_memory = 64 << 20};
        int rc = ra_node_run(&o, p[1]);
        _exit(rc == 0 ? 0 : rc == RA_EACTOR ? 3 : 1);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len < sizeof session - 1 &&
           (n = read(p[0], session + len, sizeof session - 1 - len)) > 0) {
        len += (size_t)n;
    }
    close(p[0]);
    session[len] = '\0';
    char *nl = strchr(session, '\n');
    ck_assert_msg(nl != NULL, "the daemon did not start");
    *nl = '\0';
}

static void
daemon_down(void)
{
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGTERM);
        int st;
        (void)waitpid(daemon_pid, &st, 0);
        daemon_pid = -1;
    }
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", temp);
    ck_assert_int_eq(system(cmd), 0);
}

// node_quiet waits until the node's CPUs are all free and it has no
// workers left (the jobs ended), up to 5 s; returns whether it got there.
static bool
node_quiet(unsigned *workers, double *cpus)
{
    ra_init_opts_t o = {.address = session, .workers = RA_WORKERS_NONE};
    RA_CK_OK(ra_init_opts(&o));
    bool quiet = false;
    for (int i = 0; i < 100 && !quiet; i++) {
        ra_node_info_t *nodes = NULL;
        size_t n = 0;
        RA_CK_OK(ra_node_list(&nodes, &n));
        ck_assert_uint_eq(n, 1);
        *workers = nodes[0].workers;
        *cpus = nodes[0].cpus_avail;
        quiet = *workers == 0 && *cpus == 2;
        ra_node_list_free(nodes, n);
        if (!quiet) {
            usleep(50000);
        }
    }
    ra_shutdown();
    return quiet;
}

// ---- tests ----

START_TEST(test_daemon_runs_a_joined_drivers_tasks)
{
    ra_init_opts_t o = {.address = session};
    RA_CK_OK(ra_init_opts(&o));
    ck_assert_str_eq(ra_cluster_session_dir(), session);
    ra_arg_t args[2] = {RA_ARG_I64(40), RA_ARG_I64(2)};
    ra_ref_t r;
    RA_CK_OK(ra_remote("add", args, 2, NULL, &r));
    int64_t x = 0;
    RA_CK_OK(ra_get_i64(r, 10000, &x));
    ck_assert_int_eq(x, 42);
    ra_release(r);
    // The task ran in a worker the daemon started, not here.
    RA_CK_OK(ra_remote("my_pid", NULL, 0, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 10000, &x));
    ck_assert_int_ne(x, getpid());
    ck_assert_int_ne(x, daemon_pid);
    ra_release(r);
    // 1 MiB comes back through the daemon's object store.
    ra_arg_t n = RA_ARG_I64(1 << 20);
    RA_CK_OK(ra_remote("big", &n, 1, NULL, &r));
    ra_value_t *v = NULL;
    RA_CK_OK(ra_get(r, 10000, &v));
    size_t len = 0;
    const uint8_t *p = ra_value_data(v, &len);
    ck_assert_uint_eq(len, 1u << 20);
    for (size_t i = 0; i < len; i += 4093) {
        ck_assert_uint_eq(p[i], i % 251);
    }
    ra_value_free(&v);
    ra_release(r);
    ra_shutdown();
    unsigned workers = 99;
    double cpus = -1;
    ck_assert_msg(node_quiet(&workers, &cpus), "after the job: %u workers, "
                  "%g CPUs free (want 0 and 2)", workers, cpus);
}
END_TEST

// driver_job runs in a forked driver: it joins, asks for the pids of the
// workers of 8 tasks, writes them to fd and exits 0 when all went well.
static void
driver_job(int fd)
{
    ra_init_opts_t o = {.address = session};
    if (ra_init_opts(&o) != 0) {
        _exit(2);
    }
    ra_ref_t refs[8];
    for (int i = 0; i < 8; i++) {
        if (ra_remote("my_pid", NULL, 0, NULL, &refs[i]) != 0) {
            _exit(3);
        }
    }
    for (int i = 0; i < 8; i++) {
        int64_t pid = 0;
        if (ra_get_i64(refs[i], 20000, &pid) != 0) {
            _exit(4);
        }
        if (write(fd, &pid, sizeof pid) != (ssize_t)sizeof pid) {
            _exit(5);
        }
    }
    ra_shutdown();
    _exit(0);
}

START_TEST(test_daemon_keeps_two_drivers_jobs_apart)
{
    int p[2][2];
    pid_t d[2];
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(pipe(p[k]), 0);
        d[k] = fork();
        ck_assert_int_ge(d[k], 0);
        if (d[k] == 0) {
            close(p[k][0]);
            driver_job(p[k][1]);
        }
        close(p[k][1]);
    }
    int64_t pids[2][8];
    for (int k = 0; k < 2; k++) {
        int st = 0;
        ck_assert_int_eq(waitpid(d[k], &st, 0), d[k]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "driver %d ended with status %d", k, st);
        ck_assert_int_eq(read(p[k][0], pids[k], sizeof pids[k]),
                         (ssize_t)sizeof pids[k]);
        close(p[k][0]);
    }
    // A worker serves one job: no pid answers for both drivers.
    for (int i = 0; i < 8; i++) {
        for (int j = 0; j < 8; j++) {
            ck_assert_msg(pids[0][i] != pids[1][j],
                          "worker %lld ran tasks of both jobs",
                          (long long)pids[0][i]);
        }
    }
    unsigned workers = 99;
    double cpus = -1;
    ck_assert_msg(node_quiet(&workers, &cpus), "after two jobs: %u workers, "
                  "%g CPUs free", workers, cpus);
}
END_TEST

// job_call sends a RA__T_JOB body to the daemon's raylet and returns the
// status of the answer.
static int
job_call(const uint8_t *body, size_t len)
{
    ra_msg_t *rep = NULL;
    int rc = ra_test_call_bytes(ra__g->rt, ra__g->raylet, RA__T_JOB, body,
                                len, &rep);
    if (rc != 0) {
        return rc;
    }
    ra__rbuf_t r;
    ra__rb_init(&r, rep);
    int status = (int32_t)ra__rb_u32(&r);
    ra_msg_unref(&rep);
    return status;
}

static int
job_call_buf(ra__wbuf_t *b)
{
    int rc = job_call(b->p, b->len);
    ra__wb_free(b);
    return rc;
}

START_TEST(test_daemon_refuses_malformed_job_messages)
{
    ra_init_opts_t o = {.address = session, .workers = RA_WORKERS_NONE};
    RA_CK_OK(ra_init_opts(&o));
    // Empty, an unknown operation, a truncated registration.
    RA_CK_ERR(job_call(NULL, 0), RA_EBADMSG);
    static const uint8_t op9[] = {9};
    RA_CK_ERR(job_call(op9, sizeof op9), RA_EBADMSG);
    static const uint8_t trunc[] = {RA__JOB_REGISTER, 1, 0};
    RA_CK_ERR(job_call(trunc, sizeof trunc), RA_EBADMSG);
    // A relative executable; a driver pid of another process; a count
    // of arguments far beyond the message.
    for (int k = 0; k < 3; k++) {
        ra__wbuf_t b = {0};
        ra__wb_u8(&b, RA__JOB_REGISTER);
        ra_pid_t drv = ra__g->core;
        if (k == 1) {
            drv.proc = 1;
        }
        ra__wb_pid(&b, drv);
        ra__wb_u64(&b, (uint64_t)getpid());
        ra__wb_u32(&b, k == 2 ? 4000 : 1);
        ra__wb_str(&b, k == 0 ? "relative/exe" : "/bin/true");
        ra__wb_u32(&b, 0);
        ra__wb_str(&b, "/");
        ra__wb_u32(&b, 0);
        RA_CK_ERR(job_call_buf(&b), RA_EBADMSG);
    }
    // Ending a job that does not exist.
    ra__wbuf_t e = {0};
    ra__wb_u8(&e, RA__JOB_END);
    ra__wb_u32(&e, 4242);
    RA_CK_ERR(job_call_buf(&e), RA_ENOENT);
    ra_shutdown();
    // Another driver may not end a job: a second process tries to end
    // ours while we run.  It is forked now, before this process has
    // threads again, and waits for the job's number.
    int to_child[2], from_child[2];
    ck_assert_int_eq(pipe(to_child), 0);
    ck_assert_int_eq(pipe(from_child), 0);
    pid_t other = fork();
    ck_assert_int_ge(other, 0);
    if (other == 0) {
        uint32_t env = 0;
        int32_t got = -1;
        if (read(to_child[0], &env, sizeof env) == (ssize_t)sizeof env) {
            ra_init_opts_t oc = {.address = session,
                                 .workers = RA_WORKERS_NONE};
            if (ra_init_opts(&oc) == 0) {
                ra__wbuf_t e2 = {0};
                ra__wb_u8(&e2, RA__JOB_END);
                ra__wb_u32(&e2, env);
                got = job_call(e2.p, e2.len);
                ra__wb_free(&e2);
                ra_shutdown();
            }
        }
        _exit(write(from_child[1], &got, sizeof got) == (ssize_t)sizeof got
                  ? 0 : 1);
    }
    // The daemon lives on and serves a job.
    ck_assert_int_eq(kill(daemon_pid, 0), 0);
    ra_init_opts_t o2 = {.address = session};
    RA_CK_OK(ra_init_opts(&o2));
    ra_arg_t args[2] = {RA_ARG_I64(1), RA_ARG_I64(2)};
    ra_ref_t r;
    RA_CK_OK(ra_remote("add", args, 2, NULL, &r));
    int64_t x = 0;
    RA_CK_OK(ra_get_i64(r, 10000, &x));
    ck_assert_int_eq(x, 3);
    ra_release(r);
    uint32_t mine = ra__g->env;
    ck_assert_int_eq(write(to_child[1], &mine, sizeof mine),
                     (ssize_t)sizeof mine);
    int32_t got = 0;
    ck_assert_int_eq(read(from_child[0], &got, sizeof got),
                     (ssize_t)sizeof got);
    int st = 0;
    ck_assert_int_eq(waitpid(other, &st, 0), other);
    RA_CK_ERR(got, RA_EACCES);
    // Our job still runs.
    RA_CK_OK(ra_remote("add", args, 2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 10000, &x));
    ck_assert_int_eq(x, 3);
    ra_shutdown();
}
END_TEST

START_TEST(test_daemon_loss_fails_pending_work_at_once)
{
    ra_init_opts_t o = {.address = session};
    RA_CK_OK(ra_init_opts(&o));
    ra_arg_t ms = RA_ARG_I64(30000);
    ra_ref_t r;
    RA_CK_OK(ra_remote("nap", &ms, 1, NULL, &r));
    usleep(300000);
    kill(daemon_pid, SIGKILL);
    int st;
    (void)waitpid(daemon_pid, &st, 0);
    daemon_pid = -1;
    uint64_t t0 = ra_test_now_ms();
    int64_t x = 0;
    RA_CK_ERR(ra_get_i64(r, 20000, &x), RA_ENOCONN);
    uint64_t took = ra_test_now_ms() - t0;
    ck_assert_msg(took < 10000, "the loss took %llu ms to show",
                  (unsigned long long)took);
    // New work fails at once too.
    ra_ref_t r2;
    if (ra_remote("nap", &ms, 1, NULL, &r2) == 0) {
        RA_CK_ERR(ra_get_i64(r2, 5000, &x), RA_ENOCONN);
    }
    ra_shutdown();
    // The session is known, its daemon is not running.
    ra_init_opts_t o2 = {.address = session};
    RA_CK_ERR(ra_init_opts(&o2), RA_ENOCONN);
    char s[600];
    RA_CK_ERR(ra_cluster_locate(session, NULL, s, sizeof s, NULL),
              RA_ENOCONN);
}
END_TEST

START_TEST(test_join_errors_name_the_address)
{
    char s[600];
    int pid = 0;
    RA_CK_OK(ra_cluster_locate("auto", temp, s, sizeof s, &pid));
    ck_assert_str_eq(s, session);
    ck_assert_int_eq(pid, daemon_pid);
    ra_init_opts_t o = {.address = "10.0.0.1:6380"};
    RA_CK_ERR(ra_init_opts(&o), RA_ENOTSUP);
    o.address = "/nonexistent/session";
    RA_CK_ERR(ra_init_opts(&o), RA_ENOCONN);
    ra_init_opts_t a = {.address = "auto", .temp_dir = "/nonexistent"};
    RA_CK_ERR(ra_init_opts(&a), RA_ENOCONN);
    ck_assert(!ra_is_initialized());
}
END_TEST

// call_i64 calls method of a and returns its answer (asserting success).
static int64_t
call_i64(ra_actor_t a, const char *method)
{
    ra_ref_t r;
    int64_t v = -1;
    RA_CK_OK(ra_actor_call(a, method, NULL, 0, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &v));
    return v;
}

// expect_daemon_stops waits up to 10 s for the daemon to end with
// RA_EACTOR (exit status 3 here) after what happened.
static void
expect_daemon_stops(const char *after)
{
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 200 && w == 0; i++) {
        if ((w = waitpid(daemon_pid, &st, WNOHANG)) == 0) {
            usleep(50000);
        }
    }
    ck_assert_msg(w == daemon_pid, "the daemon served on for 10 s after "
                  "this: %s", after);
    daemon_pid = -1;
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 3,
                  "the daemon ended with status %d, not RA_EACTOR", st);
}

// expect_add_works runs a task (add 20 22) and checks its answer.
static void
expect_add_works(void)
{
    ra_arg_t args[2] = {RA_ARG_I64(20), RA_ARG_I64(22)};
    ra_ref_t r;
    int64_t v = 0;
    RA_CK_OK(ra_remote("add", args, 2, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &v));
    ck_assert_int_eq(v, 42);
    ra_release(r);
}

// give_up ends victim, a system actor of the daemon that its supervisor
// restarts in place, `more` times, each followed by check(arg) (work goes
// on), and then once more: past five restarts a minute the supervisor
// gives up and the daemon stops for its keeper (RA_EACTOR).
static void
give_up(ra_pid_t victim, int more, void (*check)(void *), void *arg,
        const char *what)
{
    for (int k = 0; k < more; k++) {
        ra_test_kill_wait(ra__g->rt, victim);
        ck_assert(waitpid(daemon_pid, NULL, WNOHANG) == 0);
        check(arg);
    }
    ra_test_kill_wait(ra__g->rt, victim);
    expect_daemon_stops(what);
}

static void
add_works(void *arg)
{
    (void)arg;
    expect_add_works();
}

// expect_gone waits up to 5 s for process pid to end (a worker stopped
// with what).
static void
expect_gone(int64_t pid, const char *what)
{
    bool gone = false;
    for (int i = 0; i < 100 && !gone; i++) {
        gone = kill((pid_t)pid, 0) != 0 && errno == ESRCH;
        if (!gone) {
            usleep(50000);
        }
    }
    ck_assert_msg(gone, "worker %lld outlived %s", (long long)pid, what);
}

// The daemon's GCS, ended by an exit signal, is restarted in place by its
// supervisor: the daemon serves on, the GCS has the same pid, its tables
// (a detached named actor) are there, this node is registered again, and
// it watches again what the ended one watched: the detached actor's
// process, whose loss releases the name.  Past five restarts a minute the
// supervisor gives up and the daemon stops for its keeper (RA_EACTOR).
// name_gone: the name of the detached actor whose process was killed
// stays released through the GCS's restarts.
static void
name_gone(void *arg)
{
    (void)arg;
    ra_actor_t b;
    RA_CK_ERR(ra_actor_lookup("tally", NULL, &b), RA_ENOENT);
}

START_TEST(test_daemon_restarts_its_gcs_in_place)
{
    // Another program makes the detached actor and ends: then only the
    // GCS's watch on the actor's process releases its name.
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t maker = fork();
    ck_assert_int_ge(maker, 0);
    if (maker == 0) {
        close(p[0]);
        ra_init_opts_t mo = {.address = session};
        ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
        ao.name = "tally";
        ao.detached = true;
        ra_actor_t a;
        ra_ref_t r;
        int64_t v = -1;
        if (ra_init_opts(&mo) != 0 ||
            ra_actor_create("Tally", NULL, 0, &ao, &a) != 0 ||
            ra_actor_call(a, "pid", NULL, 0, &r) != 0 ||
            ra_get_i64(r, 30000, &v) != 0 ||
            write(p[1], &v, sizeof v) != (ssize_t)sizeof v) {
            _exit(1);
        }
        ra_shutdown();
        _exit(0);
    }
    close(p[1]);
    int64_t apid = 0;
    ck_assert_int_eq(read(p[0], &apid, sizeof apid), (ssize_t)sizeof apid);
    close(p[0]);
    int mst = 0;
    ck_assert_int_eq(waitpid(maker, &mst, 0), maker);
    ck_assert(WIFEXITED(mst) && WEXITSTATUS(mst) == 0);
    // A driver that runs on through the restart (its job is watched
    // again: when it is lost, its job fails).
    ck_assert_int_eq(pipe(p), 0);
    pid_t stayer = fork();
    ck_assert_int_ge(stayer, 0);
    if (stayer == 0) {
        close(p[0]);
        ra_init_opts_t so = {.address = session};
        char ok = 1;
        if (ra_init_opts(&so) != 0 || write(p[1], &ok, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    close(p[1]);
    char ok = 0;
    ck_assert_int_eq(read(p[0], &ok, 1), 1);
    close(p[0]);
    ra_init_opts_t o = {.address = session};
    RA_CK_OK(ra_init_opts(&o));
    ra_actor_t a;
    RA_CK_OK(ra_actor_lookup("tally", NULL, &a));
    ck_assert_int_eq(call_i64(a, "bump"), 1);
    ck_assert_int_eq(call_i64(a, "pid"), apid);
    ra_pid_t gcs = ra__g->gcs;
    ck_assert_uint_eq(gcs.proc, (unsigned)daemon_pid);

    ra_test_kill_wait(ra__g->rt, gcs);
    // Asked at once: the call waits out the restart.
    uint64_t t0 = ra_test_now_ms();
    ra_actor_t b;
    RA_CK_OK(ra_actor_lookup("tally", NULL, &b));
    uint64_t took = ra_test_now_ms() - t0;
    ck_assert_msg(took < 1000, "the name was found %llu ms after the "
                  "GCS ended", (unsigned long long)took);
    ck_assert_int_eq(call_i64(b, "bump"), 2);
    RA_CK_PID_EQ(ra__g->gcs, gcs);
    ck_assert(waitpid(daemon_pid, NULL, WNOHANG) == 0);
    // This node registered again (the GCS keeps nodes in memory).
    bool listed = false;
    for (int i = 0; i < 100 && !listed; i++) {
        ra_node_info_t *nodes = NULL;
        size_t n = 0;
        RA_CK_OK(ra_node_list(&nodes, &n));
        listed = n == 1 && nodes[0].alive && nodes[0].total.cpus == 2;
        ra_node_list_free(nodes, n);
        if (!listed) {
            usleep(20000);
        }
    }
    ck_assert_msg(listed, "the node did not register again");
    // The detached actor's process is watched again: when it is lost,
    // its name goes.
    ck_assert_int_eq(kill((pid_t)apid, SIGKILL), 0);
    int rc = 0;
    for (int i = 0; i < 100 && rc != RA_ENOENT; i++) {
        rc = ra_actor_lookup("tally", NULL, &b);
        if (rc != RA_ENOENT) {
            usleep(50000);
        }
    }
    ck_assert_msg(rc == RA_ENOENT, "the name of the lost detached actor "
                  "stayed: %s", ra_err_name(rc));
    ck_assert_int_eq(kill(stayer, SIGKILL), 0);
    ck_assert_int_eq(waitpid(stayer, NULL, 0), stayer);
    ra_job_state_t js = RA_JOB_RUNNING;
    for (int i = 0; i < 100 && js == RA_JOB_RUNNING; i++) {
        ra_job_info_t *jobs = NULL;
        size_t n = 0;
        RA_CK_OK(ra_job_list(&jobs, &n));
        for (size_t k = 0; k < n; k++) {
            if (jobs[k].pid == stayer) {
                js = jobs[k].state;
            }
        }
        free(jobs);
        if (js == RA_JOB_RUNNING) {
            usleep(50000);
        }
    }
    ck_assert_msg(js == RA_JOB_FAILED, "the lost driver's job is %s",
                  ra_job_state_name(js));
    // Work goes on.
    expect_add_works();

    // Four more restarts are allowed within the minute; the sixth end is
    // one too many.
    give_up(gcs, 4, name_gone, NULL, "its GCS supervisor gave up");
    ra_shutdown();
}
END_TEST

// The daemon's raylet, ended by an exit signal, is restarted in place by
// its supervisor: the daemon serves on and the raylet has the same pid.
// Its workers are stopped with it: a task that ran there is retried, an
// actor with a restart left comes back from its constructor, and a task
// that waited for a CPU runs; this driver registers its job again and
// works on.  Past five restarts a minute the supervisor gives up and the
// daemon stops for its keeper (RA_EACTOR).
START_TEST(test_daemon_restarts_its_raylet_in_place)
{
    ra_init_opts_t o = {.address = session};
    RA_CK_OK(ra_init_opts(&o));
    ra_actor_opts_t ao = RA_ACTOR_OPTS_INIT;
    ao.max_restarts = 1;
    ao.max_task_retries = -1;
    ra_actor_t a;
    RA_CK_OK(ra_actor_create("Tally", NULL, 0, &ao, &a));
    ck_assert_int_eq(call_i64(a, "bump"), 1);
    int64_t apid = call_i64(a, "pid");
    // Two naps hold both CPUs, a third waits for one.
    ra_ref_t naps[3];
    for (int i = 0; i < 3; i++) {
        RA_CK_OK(ra_remote("nap", &RA_ARG_I64(400), 1, NULL, &naps[i]));
    }
    ra_test_sleep_ms(100);
    ra_pid_t raylet = ra__g->raylet;
    ck_assert_uint_eq(raylet.proc, (unsigned)daemon_pid);
    ra_test_kill_wait(ra__g->rt, raylet);
    for (int i = 0; i < 3; i++) {
        int64_t v = 0;
        RA_CK_OK(ra_get_i64(naps[i], 30000, &v));
        ck_assert_int_eq(v, 400);
        ra_release(naps[i]);
    }
    ck_assert(waitpid(daemon_pid, NULL, WNOHANG) == 0);
    RA_CK_PID_EQ(ra__g->raylet, raylet);
    // The actor's old worker was stopped; it came back from its
    // constructor.
    expect_gone(apid, "its raylet");
    ck_assert_int_eq(call_i64(a, "bump"), 1);
    ck_assert_int_ne(call_i64(a, "pid"), apid);
    expect_add_works();
    ra_actor_kill(a);
    // Every CPU came back to the new incarnation.
    double ct = 0, ca = -1, gt = 0, ga = -1;
    for (int i = 0; i < 250; i++) {
        RA_CK_OK(ra_cluster_resources(&ct, &ca, &gt, &ga));
        if (ct == ca) {
            break;
        }
        usleep(20000);
    }
    ck_assert_msg(ct == 2 && ca == 2, "CPU %g of %g free", ca, ct);

    // Four more restarts are allowed within the minute (work runs after
    // each); the sixth end is one too many.
    give_up(raylet, 4, add_works, NULL, "its raylet supervisor gave up");
    ra_shutdown();
}
END_TEST

// The daemon's object manager, ended by an exit signal as a fault tool
// would, is restarted in place by its supervisor: the daemon serves on,
// the object manager has the same pid and answers, and work goes on.
// Past five restarts a minute the supervisor gives up: the daemon must not
// serve on without it.  It stops, its workers with it, and ra_node_run
// returns RA_EACTOR (exit status 3 here), so that its supervisor starts it
// again.  Without the watch it served on: the wait below ran out with the
// daemon still running.
// objmgr_answers: the object manager *arg, restarted in place, keeps its
// pid and answers at once (the call waits out the restart); work goes on.
static void
objmgr_answers(void *arg)
{
    ra_transfer_stats_t st;
    RA_CK_OK(ra_transfer_stats(&st));
    RA_CK_PID_EQ(ra__g->objmgr, *(ra_pid_t *)arg);
    expect_add_works();
}

START_TEST(test_daemon_restarts_its_object_manager_in_place)
{
    ra_init_opts_t o = {.address = session};
    RA_CK_OK(ra_init_opts(&o));
    // A worker of this job runs, so that its end can be checked too.
    ra_arg_t a = RA_ARG_I64(0);
    ra_ref_t r;
    int64_t worker = 0;
    RA_CK_OK(ra_remote("my_pid", &a, 1, NULL, &r));
    RA_CK_OK(ra_get_i64(r, 30000, &worker));
    ck_assert_int_gt(worker, 0);
    ra_pid_t victim = ra__g->objmgr;
    ck_assert_msg(!ra_pid_is_nil(victim), "no object manager pid");
    ck_assert_uint_eq(victim.proc, (unsigned)daemon_pid);
    // Five restarts within the minute; the sixth end is one too many.
    give_up(victim, 5, objmgr_answers, &victim,
            "its object manager supervisor gave up");
    // Its worker went with it.
    expect_gone(worker, "its daemon");
    ra_shutdown();
}
END_TEST

static Suite *
daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("daemon");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, daemon_up, daemon_down);
    tcase_add_test(tc, test_daemon_runs_a_joined_drivers_tasks);
    tcase_add_test(tc, test_daemon_keeps_two_drivers_jobs_apart);
    tcase_add_test(tc, test_daemon_refuses_malformed_job_messages);
    tcase_add_test(tc, test_daemon_loss_fails_pending_work_at_once);
    tcase_add_test(tc, test_join_errors_name_the_address);
    tcase_add_test(tc, test_daemon_restarts_its_object_manager_in_place);
    tcase_add_test(tc, test_daemon_restarts_its_gcs_in_place);
    tcase_add_test(tc, test_daemon_restarts_its_raylet_in_place);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    // Worker processes are this binary again: they must serve, not test.
    ra_worker_main();
    return ra_test_run(daemon_suite());
}

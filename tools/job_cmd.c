// job_cmd.c - `rayo job`: run a program on a running cluster as a job
// and follow it, as `ray job` does.
//
// `rayo job submit -- CMD ARGS` starts a small supervisor process (a new
// session, detached from the terminal) that runs CMD with RAYO_ADDRESS
// naming the cluster and RAYO_SUBMISSION_ID naming the submission, its
// output in SESSION/logs/job-ID.log, and records how it ended.  The
// submission's files live in SESSION/jobs/: ID.pid (the command's process
// group), ID.cmd, and ID.status once it ended ("SUCCEEDED", "FAILED exit
// N", "FAILED signal N" or "STOPPED").  When CMD joins the cluster, its
// driver is also a job of the GCS's table (rayo list jobs), which names
// the submission.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <rayo.h>

#include "rayo_tool.h"

static const char submit_usage[] =
    "Usage: rayo job submit [OPTIONS] -- CMD [ARGS...]\n"
    "Run CMD on the cluster as a job: detached from this terminal, with\n"
    "RAYO_ADDRESS naming the cluster, its output kept in the session's\n"
    "logs/job-ID.log.  Prints the submission id on stdout, then follows\n"
    "the output until the job ends (unless --no-wait).\n"
    "\n"
    "Options:\n"
    "  --address ADDR          the cluster (\"auto\" by default, or a\n"
    "                          session directory)\n"
    "  --temp-dir DIR          the temp dir the cluster was started with\n"
    "  --submission-id ID      the job's id (default: rayosubmit_TIME_PID)\n"
    "  --runtime-env-json J    {\"env_vars\": {\"NAME\": \"value\"},\n"
    "                          \"working_dir\": \"DIR\"}: set for CMD;\n"
    "                          checked before the job is submitted\n"
    "  --no-wait               return once it started\n"
    "  -h, --help              show this help\n"
    "\n"
    "Exit status: without --no-wait, 0 when the job succeeded and 1 when\n"
    "it failed or was stopped; 2 a bad command line.\n";

static const char job_usage[] =
    "Usage: rayo job COMMAND [OPTIONS]\n"
    "Run programs on a running cluster as jobs and follow them.\n";

static const char status_usage[] =
    "Usage: rayo job status|logs|stop ID [OPTIONS]\n"
    "  status   PENDING, RUNNING, SUCCEEDED, FAILED (with the exit status\n"
    "           or signal) or STOPPED\n"
    "  logs     the job's output so far (--follow: until it ends)\n"
    "  stop     SIGTERM to the job's processes, SIGKILL after 10 s\n"
    "\n"
    "Options: --address ADDR, --temp-dir DIR, --follow (logs), -h.\n"
    "Exit status: 0 done, 1 no such job or cluster, 2 a bad command line.\n";

typedef struct jopts {
    ra_tool_where_t where;   // --address, --temp-dir
    const char *id;
    const char *env_json;
    bool no_wait;
    bool follow;
} jopts_t;

// find_session locates the cluster and fills session (cap bytes).
static int
find_session(const char *prog, const jopts_t *o, char *session, size_t cap)
{
    return ra__tool_find_cluster(prog, o->where.address, o->where.temp, session, cap);
}

static int
parse(const char *prog, const char *usage, int argc, char **argv,
      jopts_t *o, bool want_id)
{
    enum { O_ID = 1000, O_ENV, O_NOWAIT, O_FOLLOW };
    static const struct option longopts[] = {
        RA_TOOL_WHERE_LONGOPTS,
        {"submission-id", required_argument, NULL, O_ID},
        {"runtime-env-json", required_argument, NULL, O_ENV},
        {"no-wait", no_argument, NULL, O_NOWAIT},
        {"follow", no_argument, NULL, O_FOLLOW},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    opterr = 0;
    // '+': stop at the first word that is not an option (the command).
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return -1;
        case O_ID:
            o->id = optarg;
            break;
        case O_ENV:
            o->env_json = optarg;
            break;
        case O_NOWAIT:
            o->no_wait = true;
            break;
        case O_FOLLOW:
            o->follow = true;
            break;
        default:
            if (ra__tool_where_opt(c, optarg, &o->where)) {
                break;
            }
            return ra__tool_bad_option(prog, c, argv);
        }
    }
    if (want_id) {
        if (optind != argc - 1) {
            return ra__tool_usage_error(prog, "give one job id");
        }
        o->id = argv[optind];
    }
    if (o->id != NULL) {
        for (const char *p = o->id; *p != '\0'; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) {
                return ra__tool_usage_error(prog, "job id '%s': letters, "
                                            "digits, '_' and '-' only",
                                            o->id);
            }
        }
        if (o->id[0] == '\0' || strlen(o->id) > 100) {
            return ra__tool_usage_error(prog, "job id: 1 to 100 characters");
        }
    }
    return RA_TOOL_OK;
}

static void
job_path(char *buf, size_t cap, const char *session, const char *id,
         const char *ext)
{
    if (strcmp(ext, "log") == 0) {
        snprintf(buf, cap, "%s/logs/job-%s.log", session, id);
    } else {
        snprintf(buf, cap, "%s/jobs/%s.%s", session, id, ext);
    }
}

static bool
read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (ok) {
        buf[strcspn(buf, "\n")] = '\0';
    }
    return ok;
}

static int
write_text(const char *path, const char *text)
{
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (f == NULL) {
        return -1;
    }
    fputs(text, f);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        return -1;
    }
    return 0;
}

// runtime_env reads a --runtime-env-json value: an object with
// "env_vars" (names to strings) and "working_dir" (a directory), nothing
// else.  With apply it sets them (in the job's process); without, it only
// checks them.  Returns 0, or -1 with the reason in why.
static int
runtime_env(const char *json, bool apply, char *why, size_t cap)
{
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &err);
    if (doc == NULL) {
        snprintf(why, cap, "not a JSON object: %.200s", err.message);
        return -1;
    }
    bson_iter_t it, sub;
    int rc = 0;
    why[0] = '\0';
    if (!bson_iter_init(&it, doc)) {
        rc = -1;
    }
    while (rc == 0 && bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (strcmp(key, "env_vars") == 0) {
            if (!BSON_ITER_HOLDS_DOCUMENT(&it) ||
                !bson_iter_recurse(&it, &sub)) {
                snprintf(why, cap, "env_vars must be an object");
                rc = -1;
            }
            while (rc == 0 && bson_iter_next(&sub)) {
                if (!BSON_ITER_HOLDS_UTF8(&sub) ||
                    bson_iter_key(&sub)[0] == '\0' ||
                    strchr(bson_iter_key(&sub), '=') != NULL) {
                    snprintf(why, cap, "env_vars must map names to strings "
                             "(\"%s\" does not)", bson_iter_key(&sub));
                    rc = -1;
                } else if (apply) {
                    setenv(bson_iter_key(&sub), bson_iter_utf8(&sub, NULL),
                           1);
                }
            }
        } else if (strcmp(key, "working_dir") == 0) {
            struct stat st;
            const char *dir = BSON_ITER_HOLDS_UTF8(&it)
                                  ? bson_iter_utf8(&it, NULL) : NULL;
            if (dir == NULL || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
                (apply && chdir(dir) != 0)) {
                snprintf(why, cap, "working_dir must be a directory (%s)",
                         dir != NULL ? dir : "not a string");
                rc = -1;
            }
        } else {
            snprintf(why, cap, "\"%s\" is not supported (only env_vars and "
                     "working_dir are)", key);
            rc = -1;
        }
    }
    bson_destroy(doc);
    return rc;
}

// supervise runs in the job's supervisor: it starts the command in a
// process group of its own, waits for it and records how it ended.
static void __attribute__((noreturn))
supervise(const char *session, const jopts_t *o, char **cmd)
{
    char path[1100], text[64];
    (void)setsid();
    pid_t kid = fork();
    if (kid == 0) {
        (void)setpgid(0, 0);
        char why[512];
        if (o->env_json != NULL &&
            runtime_env(o->env_json, true, why, sizeof why) != 0) {
            fprintf(stderr, "rayo job: --runtime-env-json: %s\n", why);
            _exit(126);
        }
        execvp(cmd[0], cmd);
        fprintf(stderr, "rayo job: cannot run %s: %s\n", cmd[0],
                strerror(errno));
        _exit(127);
    }
    if (kid < 0) {
        job_path(path, sizeof path, session, o->id, "status");
        (void)write_text(path, "FAILED cannot start\n");
        _exit(1);
    }
    (void)setpgid(kid, kid);
    snprintf(text, sizeof text, "%d\n", (int)kid);
    job_path(path, sizeof path, session, o->id, "pid");
    (void)write_text(path, text);
    int st = 0;
    while (waitpid(kid, &st, 0) < 0 && errno == EINTR) {
    }
    char stopped[1100];
    job_path(stopped, sizeof stopped, session, o->id, "stopping");
    if (access(stopped, F_OK) == 0) {
        snprintf(text, sizeof text, "STOPPED\n");
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        snprintf(text, sizeof text, "SUCCEEDED\n");
    } else if (WIFEXITED(st)) {
        snprintf(text, sizeof text, "FAILED exit %d\n", WEXITSTATUS(st));
    } else {
        snprintf(text, sizeof text, "FAILED signal %d\n", WTERMSIG(st));
    }
    job_path(path, sizeof path, session, o->id, "status");
    (void)write_text(path, text);
    _exit(0);
}

// job_state reads a submission's state into buf; false if unknown.
static bool
job_state(const char *session, const char *id, char *buf, size_t cap)
{
    char path[1100];
    job_path(path, sizeof path, session, id, "status");
    if (read_line(path, buf, cap)) {
        return true;
    }
    job_path(path, sizeof path, session, id, "pid");
    if (read_line(path, buf, cap)) {
        snprintf(buf, cap, "RUNNING");
        return true;
    }
    job_path(path, sizeof path, session, id, "cmd");
    if (access(path, F_OK) == 0) {
        snprintf(buf, cap, "PENDING");
        return true;
    }
    return false;
}

// follow copies the log to stdout from offset *off until the job ends
// (or once, without wait).
static void
follow(const char *session, const char *id, bool wait)
{
    char log[1100], state[128];
    job_path(log, sizeof log, session, id, "log");
    long off = 0;
    for (;;) {
        bool ended = job_state(session, id, state, sizeof state) &&
                     strcmp(state, "RUNNING") != 0 &&
                     strcmp(state, "PENDING") != 0;
        off = ra__tool_copy_from(log, off);
        if (!wait || ended) {
            return;
        }
        ra__tool_nap_ms(100);
    }
}

static int
job_submit(const char *prog, int argc, char **argv)
{
    jopts_t o = {0};
    int rc = parse(prog, submit_usage, argc, argv, &o, false);
    if (rc != RA_TOOL_OK) {
        return rc < 0 ? RA_TOOL_OK : rc;
    }
    char **cmd = argv + optind;
    if (optind < argc && strcmp(argv[optind], "--") == 0) {
        cmd++;
    }
    if (cmd[0] == NULL) {
        return ra__tool_usage_error(prog, "give the command to run after "
                                    "'--'");
    }
    char why[512];
    if (o.env_json != NULL &&
        runtime_env(o.env_json, false, why, sizeof why) != 0) {
        return ra__tool_usage_error(prog, "option '--runtime-env-json': %s",
                                    why);
    }
    char session[600];
    if ((rc = find_session(prog, &o, session, sizeof session)) != 0) {
        return rc;
    }
    char id[128];
    if (o.id == NULL) {
        snprintf(id, sizeof id, "rayosubmit_%ld_%d", (long)time(NULL),
                 (int)getpid());
        o.id = id;
    }
    char path[1100], dir[700];
    snprintf(dir, sizeof dir, "%s/jobs", session);
    (void)mkdir(dir, 0700);
    snprintf(dir, sizeof dir, "%s/logs", session);
    (void)mkdir(dir, 0700);
    job_path(path, sizeof path, session, o.id, "cmd");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "%s: job %s: %s\n", prog, o.id,
                errno == EEXIST ? "a job of that id exists already"
                                : strerror(errno));
        return RA_TOOL_FAIL;
    }
    for (char **a = cmd; *a != NULL; a++) {
        dprintf(fd, "%s%s", a == cmd ? "" : " ", *a);
    }
    dprintf(fd, "\n");
    close(fd);
    char log[1100];
    job_path(log, sizeof log, session, o.id, "log");
    fflush(stdout);
    fflush(stderr);
    pid_t sup = fork();
    if (sup < 0) {
        fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
        return RA_TOOL_FAIL;
    }
    if (sup == 0) {
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(out, 2) < 0) {
            _exit(1);
        }
        close(in);
        close(out);
        setenv("RAYO_ADDRESS", session, 1);
        setenv("RAYO_SUBMISSION_ID", o.id, 1);
        // A second fork: the supervisor is nobody's child to wait for.
        pid_t s2 = fork();
        if (s2 == 0) {
            supervise(session, &o, cmd);
        }
        _exit(s2 < 0 ? 1 : 0);
    }
    int st;
    (void)waitpid(sup, &st, 0);
    printf("%s\n", o.id);
    fflush(stdout);
    fprintf(stderr, "%s: job %s submitted; its output: %s\n", prog, o.id,
            log);
    if (o.no_wait) {
        return RA_TOOL_OK;
    }
    follow(session, o.id, true);
    char state[128] = "";
    (void)job_state(session, o.id, state, sizeof state);
    fprintf(stderr, "%s: job %s %s\n", prog, o.id, state);
    return strcmp(state, "SUCCEEDED") == 0 ? RA_TOOL_OK : RA_TOOL_FAIL;
}

// open_job parses `rayo job status|logs|stop ID` and finds the job: its
// session and state.  Returns RA_TOOL_OK, or the exit status to return
// (-1 after --help, which is success).
static int
open_job(const char *prog, int argc, char **argv, jopts_t *o, char *session,
         size_t scap, char *state, size_t stcap)
{
    int rc = parse(prog, status_usage, argc, argv, o, true);
    if (rc != RA_TOOL_OK) {
        return rc;
    }
    if ((rc = find_session(prog, o, session, scap)) != 0) {
        return rc;
    }
    if (!job_state(session, o->id, state, stcap)) {
        fprintf(stderr, "%s: no job %s in %s\n", prog, o->id, session);
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

static int
job_status(const char *prog, int argc, char **argv)
{
    jopts_t o = {0};
    char session[600], state[128];
    int rc = open_job(prog, argc, argv, &o, session, sizeof session, state,
                      sizeof state);
    if (rc != RA_TOOL_OK) {
        return rc < 0 ? RA_TOOL_OK : rc;
    }
    printf("%s\n", state);
    return RA_TOOL_OK;
}

static int
job_logs(const char *prog, int argc, char **argv)
{
    jopts_t o = {0};
    char session[600], state[128];
    int rc = open_job(prog, argc, argv, &o, session, sizeof session, state,
                      sizeof state);
    if (rc != RA_TOOL_OK) {
        return rc < 0 ? RA_TOOL_OK : rc;
    }
    follow(session, o.id, o.follow);
    return RA_TOOL_OK;
}

static int
job_stop(const char *prog, int argc, char **argv)
{
    jopts_t o = {0};
    char session[600], state[128], path[1100], pidtext[64];
    int rc = open_job(prog, argc, argv, &o, session, sizeof session, state,
                      sizeof state);
    if (rc != RA_TOOL_OK) {
        return rc < 0 ? RA_TOOL_OK : rc;
    }
    job_path(path, sizeof path, session, o.id, "pid");
    if (strcmp(state, "RUNNING") != 0 ||
        !read_line(path, pidtext, sizeof pidtext) || atoi(pidtext) <= 0) {
        fprintf(stderr, "%s: job %s is %s: nothing to stop\n", prog, o.id,
                state);
        return RA_TOOL_OK;
    }
    pid_t pg = (pid_t)atoi(pidtext);
    job_path(path, sizeof path, session, o.id, "stopping");
    (void)write_text(path, "stop\n");
    // Its driver's record in the GCS says STOPPED, not FAILED.
    ra_init_opts_t io = {.address = session, .workers = RA_WORKERS_NONE,
                         .threads = 1};
    if (ra_init_opts(&io) == 0) {
        ra_job_info_t *jobs = NULL;
        size_t n = 0;
        if (ra_job_list(&jobs, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                if (jobs[i].state == RA_JOB_RUNNING &&
                    strcmp(jobs[i].submission, o.id) == 0) {
                    (void)ra_job_end(jobs[i].id, RA_JOB_STOPPED,
                                     "stopped by rayo job stop");
                }
            }
            free(jobs);
        }
        ra_shutdown();
    }
    (void)kill(-pg, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (job_state(session, o.id, state, sizeof state) &&
            strcmp(state, "RUNNING") != 0) {
            break;
        }
        ra__tool_nap_ms(100);
    }
    if (strcmp(state, "RUNNING") == 0) {
        (void)kill(-pg, SIGKILL);
    }
    fprintf(stderr, "%s: job %s stopped\n", prog, o.id);
    return RA_TOOL_OK;
}

int
ra__tool_print_jobs(bool json)
{
    ra_job_info_t *jobs = NULL;
    size_t n = 0;
    int rc = ra_job_list(&jobs, &n);
    if (rc != 0) {
        return rc;
    }
    if (json) {
        printf("[");
    } else {
        printf("%-6s %-10s %-8s %-11s %-28s %s\n", "JOB", "STATUS", "PID",
               "NODE", "SUBMISSION", "ENTRYPOINT");
    }
    for (size_t i = 0; i < n; i++) {
        const ra_job_info_t *j = &jobs[i];
        if (json) {
            bson_t d = BSON_INITIALIZER;
            BSON_APPEND_INT64(&d, "job_id", (int64_t)j->id);
            BSON_APPEND_UTF8(&d, "status", ra_job_state_name(j->state));
            BSON_APPEND_INT64(&d, "driver_pid", j->pid);
            BSON_APPEND_INT64(&d, "node", j->node);
            BSON_APPEND_INT64(&d, "start_time_ms", j->start_ms);
            BSON_APPEND_INT64(&d, "end_time_ms", j->end_ms);
            BSON_APPEND_UTF8(&d, "entrypoint", j->entrypoint);
            BSON_APPEND_UTF8(&d, "submission_id", j->submission);
            BSON_APPEND_UTF8(&d, "message", j->message);
            char *s = bson_as_relaxed_extended_json(&d, NULL);
            printf("%s%s", i > 0 ? ", " : "", s != NULL ? s : "null");
            bson_free(s);
            bson_destroy(&d);
        } else {
            printf("%-6llu %-10s %-8lld %-11u %-28s %.80s\n",
                   (unsigned long long)j->id, ra_job_state_name(j->state),
                   (long long)j->pid, j->node,
                   j->submission[0] != '\0' ? j->submission : "-",
                   j->entrypoint);
        }
    }
    if (json) {
        printf("]\n");
    }
    free(jobs);
    return 0;
}

static int
job_list(const char *prog, int argc, char **argv)
{
    return ra__tool_list_jobs(prog, argc, argv);
}

static const ra_tool_cmd_t job_cmds[] = {
    {"submit", job_submit, "run a command on the cluster as a job"},
    {"status", job_status, "a job's state"},
    {"logs", job_logs, "a job's output (--follow)"},
    {"stop", job_stop, "stop a job"},
    {"list", job_list, "the jobs the GCS recorded"},
};

int
ra__tool_job(const char *prog, int argc, char **argv)
{
    return ra__tool_dispatch(prog, job_usage, job_cmds,
                             sizeof job_cmds / sizeof job_cmds[0], argc,
                             argv);
}

// node_cmd.c - `rayo start` and `rayo stop`: the node daemon.
//
// `rayo start --head` runs ra_node_run in a daemon process of its own (a
// new session, stdin from /dev/null, stdout and stderr to TEMP/daemon.log)
// and waits until it is ready or has failed; `--block` runs it in the
// foreground instead.  `rayo stop` signals the daemon that
// ra_cluster_locate finds and waits for it to end.
//
// What goes to stdout is the session directory (the address drivers can
// give to ra_init); everything for people goes to stderr.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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

bool ra__proc_alive(int pid);   // api.c

static const char start_usage[] =
    "Usage: rayo start --head [OPTIONS]\n"
    "       rayo start --address HOST:PORT --node-ip IP --cert FILE [OPTIONS]\n"
    "Start the node daemon of a cluster on this machine: its raylet and\n"
    "object store, and on the head node the GCS.  Programs on the machine\n"
    "join it with ra_init(\"auto\") or RAYO_ADDRESS=auto; each becomes a\n"
    "job whose workers the daemons start from the program's own\n"
    "executable.\n"
    "\n"
    "Options:\n"
    "  --head                   start the head node (with the GCS)\n"
    "  --node-ip IP             this node's address: the cluster then spans\n"
    "                           machines, over tcp with CurveZMQ (without\n"
    "                           it the cluster is this machine only)\n"
    "  --port N                 the head's port for other nodes (default\n"
    "                           6390; 0 picks a free one); with --node-ip\n"
    "  --address HOST:PORT      join the head node at that address\n"
    "  --cert FILE              the cluster certificate: the head makes\n"
    "                           SESSION/cluster.cert unless given one; a\n"
    "                           joining node needs the head's (or\n"
    "                           $RAYO_CERT)\n"
    "  --num-cpus N             CPUs the node offers (default: online CPUs)\n"
    "  --num-gpus N             GPU devices it offers, a whole number\n"
    "                           (default: those the CUDA driver finds)\n"
    "  --resources JSON         memory and custom resources, such as\n"
    "                           '{\"ssd\": 2, \"memory\": 8e9}'\n"
    "  --workers N              worker processes started for each job at\n"
    "                           once (default: --num-cpus)\n"
    "  --max-workers N          cap of the worker pool (default: 4 x CPUs + 4)\n"
    "  --object-store-memory B  bytes of the shared-memory object store\n"
    "                           (default 256 MiB)\n"
    "  --temp-dir DIR           where the session directory goes (default\n"
    "                           $RAYO_TEMP_DIR, else /tmp/rayo); clusters\n"
    "                           with different temp dirs run side by side\n"
    "  --block                  stay in the foreground until SIGTERM or\n"
    "                           SIGINT (for containers and supervisors)\n"
    "  --restart                keep the daemon up: a supervisor process\n"
    "                           starts it again after it dies other than\n"
    "                           by rayo stop (at most 5 times in 60 s);\n"
    "                           a head started again takes over its GCS\n"
    "                           tables, and nodes and drivers reconnect\n"
    "  -h, --help               show this help\n"
    "\n"
    "On success the session directory is printed on stdout: it names the\n"
    "cluster (RAYO_ADDRESS may be it, or \"auto\" for the newest one in the\n"
    "temp dir).  The daemon's log is TEMP/daemon.log; workers' output is in\n"
    "the session's logs/ directory.\n"
    "\n"
    "Exit status: 0 started, 1 it could not start (the message says why),\n"
    "2 a bad command line.\n";

static const char stop_usage[] =
    "Usage: rayo stop [OPTIONS]\n"
    "Stop the node daemon (and every worker it started) of the cluster on\n"
    "this machine.\n"
    "\n"
    "Options:\n"
    "  --address ADDR   the cluster: \"auto\" (default: the newest in the\n"
    "                   temp dir) or a session directory\n"
    "  --temp-dir DIR   the temp dir the cluster was started with (default\n"
    "                   $RAYO_TEMP_DIR, else /tmp/rayo)\n"
    "  --force          kill it (SIGKILL) instead of asking it to stop\n"
    "  --timeout S      seconds to wait for it to end (default 30)\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 stopped (or nothing was running), 1 it did not end in\n"
    "time, 2 a bad command line.\n";

static int
parse_num(const char *prog, const char *opt, const char *s, double min,
          double max, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max)) {
        return ra__tool_usage_error(prog, "option '%s': '%s' is not a "
                                    "number from %g to %g", opt, s, min,
                                    max);
    }
    *out = v;
    return RA_TOOL_OK;
}

// parse_resources turns a JSON object of names and amounts into res.
static int
parse_resources(const char *prog, const char *json, ra_resources_t *res)
{
    bson_error_t err;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &err);
    bson_iter_t it;
    int rc = doc != NULL && bson_iter_init(&it, doc) ? 0 : -1;
    while (rc == 0 && bson_iter_next(&it)) {
        const char *name = bson_iter_key(&it);
        double v = BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_double(&it)
                                               : -1;
        if (strcmp(name, "CPU") == 0 || strcmp(name, "GPU") == 0 ||
            ra_resources_set(res, name, v) != 0) {
            rc = -1;
        }
    }
    if (doc != NULL) {
        bson_destroy(doc);
    }
    if (rc != 0) {
        return ra__tool_usage_error(prog, "option '--resources': expected a "
                                    "JSON object of names and non-negative "
                                    "amounts other than CPU and GPU, such "
                                    "as '{\"ssd\": 2}'; got '%s'", json);
    }
    return RA_TOOL_OK;
}

// proc_alive tells whether OS process pid still runs (a zombie does not).
static bool
proc_alive(int pid)
{
    return ra__proc_alive(pid);
}

static void
show_log_tail(const char *log)
{
    FILE *f = fopen(log, "re");
    if (f == NULL) {
        return;
    }
    char lines[10][512];
    unsigned n = 0;
    while (fgets(lines[n % 10], sizeof lines[0], f) != NULL) {
        n++;
    }
    fclose(f);
    unsigned first = n > 10 ? n - 10 : 0;
    if (n > 0) {
        fprintf(stderr, "Last lines of %s:\n", log);
    }
    for (unsigned i = first; i < n; i++) {
        fprintf(stderr, "  %s", lines[i % 10]);
    }
}

// daemon_said tells stderr (the daemon log) why ra_node_run returned rc,
// when it failed: it could not start, or (RA_EACTOR) it stopped because
// one of its system actors ended (its log line names it).
static void
daemon_said(int rc)
{
    if (rc == RA_EACTOR) {
        fprintf(stderr, "rayo daemon: stopped: one of its system actors "
                "ended (the line above names it); a supervisor (rayo start "
                "--restart, systemd) starts it again\n");
    } else if (rc != 0) {
        fprintf(stderr, "rayo daemon: could not start: %s\n",
                ra_strerror(rc));
    }
}

// ---- the daemon's supervisor (rayo start --restart) ----
//
// The keeper is the daemon's parent: it starts the daemon (a child
// process that runs ra_node_run), and when the daemon dies other than by
// a stop signal (kill -9, a crash), starts it again, as an OTP supervisor
// restarts a permanent child: at most KEEP_MAX_RESTARTS times within
// KEEP_PERIOD_S, then it gives up.  A daemon that exits with status 0 was
// stopped (rayo stop sends it SIGTERM): the keeper ends too.  A stop
// signal sent to the keeper is passed to the daemon.  Its pid is in
// TEMP/keeper.pid while it runs.

#define KEEP_MAX_RESTARTS 5
#define KEEP_PERIOD_S 60

static volatile sig_atomic_t keep_stop;
static volatile pid_t keep_child;

static void
keep_on_signal(int sig)
{
    keep_stop = 1;
    if (keep_child > 0) {
        (void)kill(keep_child, sig == SIGINT ? SIGINT : SIGTERM);
    }
}

// keep_session reads the daemon's session line from fd (until it closes
// it): true when the daemon came up.
static bool
keep_session(int fd, char *line, size_t cap)
{
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t n = read(fd, line + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (memchr(line, '\n', len) != NULL) {
            break;
        }
    }
    line[len] = '\0';
    return strchr(line, '\n') != NULL;
}

static void
keep_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
keep_log(const char *fmt, ...)
{
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "rayo[keeper] %s\n", buf);
    fflush(stderr);
}

static int
keep_daemon(const ra_init_opts_t *o, int ready_fd, const char *temp)
{
    char pidfile[700];
    snprintf(pidfile, sizeof pidfile, "%s/keeper.pid", temp);
    FILE *f = fopen(pidfile, "we");
    if (f != NULL) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
    struct sigaction sa = {.sa_handler = keep_on_signal};
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGHUP, &sa, NULL);
    time_t starts[KEEP_MAX_RESTARTS] = {0};
    unsigned nstarts = 0;
    int status = 0;
    for (bool first = true; !keep_stop; first = false) {
        int rp[2];
        if (pipe2(rp, O_CLOEXEC) != 0) {
            status = 1;
            break;
        }
        pid_t d = fork();
        if (d < 0) {
            close(rp[0]);
            close(rp[1]);
            status = 1;
            break;
        }
        if (d == 0) {
            close(rp[0]);
            if (ready_fd >= 0) {
                close(ready_fd);
            }
            signal(SIGTERM, SIG_DFL);
            signal(SIGINT, SIG_DFL);
            signal(SIGHUP, SIG_DFL);
            int rc = ra_node_run(o, rp[1]);
            daemon_said(rc);
            _exit(rc == 0 ? 0 : 1);
        }
        keep_child = d;
        close(rp[1]);
        char line[700];
        bool up = keep_session(rp[0], line, sizeof line);
        close(rp[0]);
        if (first && ready_fd >= 0) {
            // rayo start waits for this line (EOF: the daemon failed).
            if (up) {
                ssize_t w = write(ready_fd, line, strlen(line));
                (void)w;
            }
            close(ready_fd);
            ready_fd = -1;
        }
        if (up) {
            line[strcspn(line, "\n")] = '\0';
            keep_log("daemon %d serves session %s%s", (int)d, line,
                     first ? "" : " (started again)");
        }
        int st = 0;
        while (waitpid(d, &st, 0) < 0 && errno == EINTR) {
        }
        keep_child = 0;
        if (keep_stop || (WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            break;   // stopped
        }
        if (!up) {
            keep_log("daemon %d did not start (status %d)", (int)d,
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            status = 1;
            if (first) {
                break;
            }
        } else if (WIFSIGNALED(st)) {
            keep_log("daemon %d died of signal %d (%s)", (int)d,
                     WTERMSIG(st), strsignal(WTERMSIG(st)));
        } else {
            keep_log("daemon %d exited with status %d", (int)d,
                     WEXITSTATUS(st));
        }
        // Intensity: KEEP_MAX_RESTARTS within KEEP_PERIOD_S, then give up.
        time_t now = time(NULL);
        if (nstarts == KEEP_MAX_RESTARTS &&
            now - starts[0] < KEEP_PERIOD_S) {
            keep_log("%d restarts within %d s: giving up (see the log "
                     "above; start it again with rayo start)",
                     KEEP_MAX_RESTARTS, KEEP_PERIOD_S);
            status = 1;
            break;
        }
        // starts[] holds the last restarts' times, the oldest first.
        memmove(starts, starts + 1, sizeof starts - sizeof starts[0]);
        starts[KEEP_MAX_RESTARTS - 1] = now;
        if (nstarts < KEEP_MAX_RESTARTS) {
            nstarts++;
        }
        struct timespec pause = {0, 200 * 1000000};
        nanosleep(&pause, NULL);
        keep_log("starting the daemon again (restart %u)", nstarts);
    }
    (void)unlink(pidfile);
    return status;
}

int
ra__tool_start(const char *prog, int argc, char **argv)
{
    enum {
        O_HEAD = 1000, O_ADDRESS, O_CPUS, O_GPUS, O_RES, O_WORKERS,
        O_MAXW, O_STORE, O_TEMP, O_BLOCK, O_IP, O_PORT, O_CERT, O_RESTART
    };
    static const struct option longopts[] = {
        {"head", no_argument, NULL, O_HEAD},
        {"address", required_argument, NULL, O_ADDRESS},
        {"num-cpus", required_argument, NULL, O_CPUS},
        {"num-gpus", required_argument, NULL, O_GPUS},
        {"resources", required_argument, NULL, O_RES},
        {"workers", required_argument, NULL, O_WORKERS},
        {"max-workers", required_argument, NULL, O_MAXW},
        {"object-store-memory", required_argument, NULL, O_STORE},
        {"temp-dir", required_argument, NULL, O_TEMP},
        {"block", no_argument, NULL, O_BLOCK},
        {"restart", no_argument, NULL, O_RESTART},
        {"node-ip", required_argument, NULL, O_IP},
        {"port", required_argument, NULL, O_PORT},
        {"cert", required_argument, NULL, O_CERT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    ra_init_opts_t o = {.port = 6390};
    bool head = false, block = false, restart = false;
    const char *address = NULL;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        double v;
        unsigned u;
        int rc = RA_TOOL_OK;
        switch (c) {
        case 'h':
            fputs(start_usage, stdout);
            return RA_TOOL_OK;
        case O_HEAD:
            head = true;
            break;
        case O_ADDRESS:
            address = optarg;
            break;
        case O_CPUS:
            rc = parse_num(prog, "--num-cpus", optarg, 0, 1e6, &v);
            o.num_cpus = v;
            break;
        case O_GPUS:
            rc = parse_num(prog, "--num-gpus", optarg, 0, 4096, &v);
            if (rc == RA_TOOL_OK && v != (double)(long)v) {
                rc = ra__tool_usage_error(prog, "option '--num-gpus': a node "
                                          "offers whole GPU devices (got "
                                          "%s)", optarg);
            }
            o.num_gpus = v;
            break;
        case O_RES:
            rc = parse_resources(prog, optarg, &o.resources);
            break;
        case O_WORKERS:
            rc = ra__tool_parse_uint(prog, "--workers", optarg, 1, 100000,
                                     &u);
            o.workers = u;
            break;
        case O_MAXW:
            rc = ra__tool_parse_uint(prog, "--max-workers", optarg, 1,
                                     100000, &u);
            o.max_workers = u;
            break;
        case O_STORE:
            rc = parse_num(prog, "--object-store-memory", optarg, 1 << 20,
                           1e15, &v);
            o.object_store_memory = (size_t)v;
            break;
        case O_TEMP:
            o.temp_dir = optarg;
            break;
        case O_RESTART:
            restart = true;
            break;
        case O_BLOCK:
            block = true;
            break;
        case O_IP:
            o.node_ip = optarg;
            break;
        case O_PORT:
            rc = ra__tool_parse_uint(prog, "--port", optarg, 0, 65535, &u);
            o.port = u;
            break;
        case O_CERT:
            o.cert = optarg;
            break;
        default:
            return ra__tool_bad_option(prog, c, argv);
        }
        if (rc != RA_TOOL_OK) {
            return rc;
        }
    }
    if (optind < argc) {
        return ra__tool_usage_error(prog, "unexpected argument '%s'",
                                    argv[optind]);
    }
    if (head && address != NULL) {
        return ra__tool_usage_error(prog, "give --head or --address, not "
                                    "both");
    }
    if (!head && address == NULL) {
        return ra__tool_usage_error(prog, "say what to start: --head, or "
                                    "--address HOST:PORT to join a head");
    }
    if (address != NULL && (o.node_ip == NULL || strchr(address, ':') ==
                                                     NULL)) {
        return ra__tool_usage_error(prog, "joining a head needs its "
                                    "--address HOST:PORT and this node's "
                                    "--node-ip");
    }
    o.head = address;
    const char *temp = ra_cluster_temp_dir(o.temp_dir);
    o.temp_dir = temp;
    char session[600];
    int dpid = 0;
    if (ra_cluster_locate("auto", temp, session, sizeof session, &dpid) ==
        0) {
        fprintf(stderr, "%s: a cluster is already running under %s "
                "(daemon %d, session %s); stop it with 'rayo stop', or give "
                "another --temp-dir\n", prog, temp, dpid, session);
        return RA_TOOL_FAIL;
    }
    if (mkdir(temp, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", prog, temp,
                strerror(errno));
        return RA_TOOL_FAIL;
    }
    if (block && restart) {
        return ra__tool_usage_error(prog, "--restart keeps a daemon in the "
                                    "background; with --block, whatever "
                                    "runs rayo restarts it");
    }
    if (block) {
        fflush(stdout);
        int rc = ra_node_run(&o, dup(STDOUT_FILENO));
        if (rc == RA_EACTOR) {
            daemon_said(rc);
            return RA_TOOL_FAIL;
        }
        if (rc != 0) {
            fprintf(stderr, "%s: the node daemon could not start: %s\n",
                    prog, ra_strerror(rc));
            return RA_TOOL_FAIL;
        }
        return RA_TOOL_OK;
    }
    char log[700];
    snprintf(log, sizeof log, "%s/daemon.log", temp);
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
        return RA_TOOL_FAIL;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
        return RA_TOOL_FAIL;
    }
    if (pid == 0) {
        close(p[0]);
        (void)setsid();
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
            dup2(out, 2) < 0) {
            _exit(1);
        }
        close(in);
        close(out);
        if (getenv("RAYO_LOG") == NULL) {
            (void)setenv("RAYO_LOG", "info", 1);
        }
        if (restart) {
            _exit(keep_daemon(&o, p[1], temp));
        }
        int rc = ra_node_run(&o, p[1]);
        daemon_said(rc);
        _exit(rc == 0 ? 0 : 1);
    }
    close(p[1]);
    // Wait for the session line (ready) or EOF (it failed).
    char line[700];
    size_t len = 0;
    struct pollfd pfd = {.fd = p[0], .events = POLLIN};
    time_t until = time(NULL) + 120;
    while (len < sizeof line - 1 && time(NULL) < until) {
        if (poll(&pfd, 1, 1000) <= 0) {
            continue;
        }
        ssize_t n = read(p[0], line + len, sizeof line - 1 - len);
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
        if (memchr(line, '\n', len) != NULL) {
            break;
        }
    }
    close(p[0]);
    line[len] = '\0';
    char *nl = strchr(line, '\n');
    if (nl == NULL) {
        int st = 0;
        (void)waitpid(pid, &st, WNOHANG);
        fprintf(stderr, "%s: the node daemon did not start\n", prog);
        show_log_tail(log);
        return RA_TOOL_FAIL;
    }
    *nl = '\0';
    printf("%s\n", line);
    fflush(stdout);
    // A cluster of several nodes: say how others join.
    char info[800], l2[700], ep[600] = "";
    snprintf(info, sizeof info, "%s/node.info", line);
    FILE *f = fopen(info, "re");
    while (f != NULL && fgets(l2, sizeof l2, f) != NULL) {
        if (strncmp(l2, "endpoint tcp://", 15) == 0) {
            snprintf(ep, sizeof ep, "%.590s", l2 + 15);
            ep[strcspn(ep, "\n")] = '\0';
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    if (ep[0] != '\0' && head) {
        fprintf(stderr, "  Other nodes join with:\n"
                "    rayo start --address %s --node-ip THEIR_IP --cert "
                "%s/cluster.cert\n", ep,
                o.cert != NULL ? "(this cluster's certificate)" : line);
    }
    dpid = 0;
    if (restart) {
        // The daemon is the keeper's child; node.info has its pid.
        f = fopen(info, "re");
        while (f != NULL && fgets(l2, sizeof l2, f) != NULL) {
            if (strncmp(l2, "pid ", 4) == 0) {
                dpid = atoi(l2 + 4);
            }
        }
        if (f != NULL) {
            fclose(f);
        }
        fprintf(stderr, "  Kept up by supervisor process %d (--restart).\n",
                (int)pid);
    }
    fprintf(stderr,
            "Started the %s node: daemon %d, session %s.\n"
            "  Run a program on it:  RAYO_ADDRESS=auto ./program   "
            "(or ra_init(\"auto\"))\n"
            "  See it:               rayo status\n"
            "  Stop it:              rayo stop\n"
            "  Daemon log:           %s\n",
            head ? "head" : "worker", dpid != 0 ? dpid : (int)pid, line, log);
    return RA_TOOL_OK;
}

int
ra__tool_stop(const char *prog, int argc, char **argv)
{
    enum { O_ADDRESS = 1000, O_TEMP, O_FORCE, O_TIMEOUT };
    static const struct option longopts[] = {
        {"address", required_argument, NULL, O_ADDRESS},
        {"temp-dir", required_argument, NULL, O_TEMP},
        {"force", no_argument, NULL, O_FORCE},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *address = NULL, *temp = NULL;
    bool force = false;
    unsigned timeout = 30;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(stop_usage, stdout);
            return RA_TOOL_OK;
        case O_ADDRESS:
            address = optarg;
            break;
        case O_TEMP:
            temp = optarg;
            break;
        case O_FORCE:
            force = true;
            break;
        case O_TIMEOUT:
            if (ra__tool_parse_uint(prog, "--timeout", optarg, 1, 86400,
                                    &timeout) != RA_TOOL_OK) {
                return RA_TOOL_USAGE;
            }
            break;
        default:
            return ra__tool_bad_option(prog, c, argv);
        }
    }
    if (optind < argc) {
        return ra__tool_usage_error(prog, "unexpected argument '%s'",
                                    argv[optind]);
    }
    temp = ra_cluster_temp_dir(temp);
    char session[600];
    int dpid = 0;
    int rc = ra_cluster_locate(address, temp, session, sizeof session, &dpid);
    if (rc == RA_ENOTSUP) {
        return ra__tool_usage_error(prog, "option '--address': give \"auto\" "
                                    "or a session directory");
    }
    if (rc == RA_ENOENT || rc == RA_ENOCONN) {
        fprintf(stderr, "%s: no cluster is running under %s: nothing to "
                "stop\n", prog, rc == RA_ENOCONN ? session : temp);
        if (rc == RA_ENOCONN && dpid > 0) {
            ra_cluster_forget(session);   // killed without cleaning up
        }
        return RA_TOOL_OK;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: cannot read the cluster under %s: %s\n", prog,
                temp, ra_strerror(rc));
        return RA_TOOL_FAIL;
    }
    // A daemon kept up by rayo start --restart: its supervisor must not
    // start it again.  SIGTERM ends the daemon normally, and the keeper
    // with it; --force kills the keeper first.
    char kfile[700];
    snprintf(kfile, sizeof kfile, "%s/keeper.pid", temp);
    int kpid = 0;
    FILE *kf = fopen(kfile, "re");
    if (kf != NULL) {
        if (fscanf(kf, "%d", &kpid) != 1 || kpid <= 1 || !proc_alive(kpid)) {
            kpid = 0;
        }
        fclose(kf);
    }
    if (force && kpid > 0 && kill(kpid, SIGKILL) == 0) {
        (void)unlink(kfile);
    }
    if (kill(dpid, force ? SIGKILL : SIGTERM) != 0) {
        fprintf(stderr, "%s: cannot signal daemon %d: %s\n", prog, dpid,
                strerror(errno));
        return RA_TOOL_FAIL;
    }
    fprintf(stderr, "%s: %s daemon %d (session %s)\n", prog,
            force ? "killed" : "stopping", dpid, session);
    struct timespec ts = {0, 50 * 1000000};
    for (unsigned i = 0; i < timeout * 20u && proc_alive(dpid); i++) {
        nanosleep(&ts, NULL);
    }
    for (unsigned i = 0; i < timeout * 20u && !force && kpid > 0 &&
                         proc_alive(kpid);
         i++) {
        nanosleep(&ts, NULL);
    }
    if (proc_alive(dpid)) {
        fprintf(stderr, "%s: daemon %d is still running after %u s; kill it "
                "with '%s --force'\n", prog, dpid, timeout, prog);
        return RA_TOOL_FAIL;
    }
    if (force) {
        ra_cluster_forget(session);   // its workers die with it
    }
    fprintf(stderr, "%s: stopped\n", prog);
    return RA_TOOL_OK;
}

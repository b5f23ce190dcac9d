// logs_cmd.c - `rayo logs`: the log files of a running node, as `ray logs`
// shows them.
//
// A node keeps its logs in its session directory's logs/: each worker
// process's stdout and stderr (worker-PID.out, worker-PID.err, written by
// the worker's output thread, see src/cluster/worker.c) and each submitted
// job's output (job-ID.log, `rayo job`); the daemon's own log is
// daemon.log in the temp dir above the session.  Without a file name the
// command lists them (name, size, age); with one it prints it, its last
// lines (--tail) or what is appended to it until interrupted (--follow).
// --pid picks a worker's two files, --job a job's.
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <rayo.h>

#include "rayo_tool.h"

static const char usage[] =
    "Usage: rayo logs [OPTIONS] [FILE]\n"
    "Show the log files of a running node (its session directory's logs/\n"
    "and the daemon's log).  Without FILE, list them: name, size, and how\n"
    "long ago each last changed.  With FILE (a name from the list, such as\n"
    "worker-1234.err, job-ID.log or daemon.log), print it.\n"
    "\n"
    "Options:\n"
    "  --pid PID        the output of worker process PID: its .out file,\n"
    "                   then its .err file\n"
    "  --job ID         the output of the job submitted as ID\n"
    "  -n, --tail N     only the last N lines of each file\n"
    "  -f, --follow     keep printing what is appended to the file until\n"
    "                   interrupted (one file)\n"
    "  --address ADDR   the cluster: \"auto\" (default: $RAYO_ADDRESS, else\n"
    "                   the newest in the temp dir) or a session directory\n"
    "  --temp-dir DIR   where sessions are (default $RAYO_TEMP_DIR, else\n"
    "                   /tmp/rayo)\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 done, 1 no such cluster or file, 2 a bad command "
    "line.\n";

typedef struct lopts {
    ra_tool_where_t where;   // --address, --temp-dir
    const char *file;
    const char *job;
    unsigned pid;
    unsigned tail;           // 0: the whole file
    bool follow;
} lopts_t;

static int
parse(const char *prog, int argc, char **argv, lopts_t *o)
{
    enum { O_PID = 1000, O_JOB };
    static const struct option longopts[] = {
        RA_TOOL_WHERE_LONGOPTS,
        {"pid", required_argument, NULL, O_PID},
        {"job", required_argument, NULL, O_JOB},
        {"tail", required_argument, NULL, 'n'},
        {"follow", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":hfn:", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(usage, stdout);
            return -1;
        case O_PID:
            if (ra__tool_parse_uint(prog, "--pid", optarg, 1, INT_MAX,
                                    &o->pid) != RA_TOOL_OK) {
                return RA_TOOL_USAGE;
            }
            break;
        case O_JOB:
            o->job = optarg;
            break;
        case 'n':
            if (ra__tool_parse_uint(prog, "--tail", optarg, 1, 100000000,
                                    &o->tail) != RA_TOOL_OK) {
                return RA_TOOL_USAGE;
            }
            break;
        case 'f':
            o->follow = true;
            break;
        default:
            if (ra__tool_where_opt(c, optarg, &o->where)) {
                break;
            }
            return ra__tool_bad_option(prog, c, argv);
        }
    }
    if (optind < argc) {
        o->file = argv[optind++];
    }
    if (optind < argc) {
        return ra__tool_usage_error(prog, "unexpected argument '%s'",
                                    argv[optind]);
    }
    if ((o->file != NULL) + (o->pid != 0) + (o->job != NULL) > 1) {
        return ra__tool_usage_error(prog, "give one of FILE, --pid and "
                                    "--job");
    }
    if (o->file != NULL &&
        (o->file[0] == '\0' || strchr(o->file, '/') != NULL ||
         strcmp(o->file, ".") == 0 || strcmp(o->file, "..") == 0)) {
        return ra__tool_usage_error(prog, "FILE '%s' must be a name from "
                                    "'rayo logs' (no directories)",
                                    o->file);
    }
    if (o->job != NULL && (o->job[0] == '\0' || strchr(o->job, '/'))) {
        return ra__tool_usage_error(prog, "--job '%s' is not a submission "
                                    "id", o->job);
    }
    if (o->follow && o->pid != 0) {
        return ra__tool_usage_error(prog, "--follow takes one file: give "
                                    "worker-%u.out or worker-%u.err",
                                    o->pid, o->pid);
    }
    if (o->follow && o->file == NULL && o->job == NULL) {
        return ra__tool_usage_error(prog, "--follow needs a FILE or --job");
    }
    return RA_TOOL_OK;
}

// path_of stores where log file name is: daemon.log beside the session
// directories, the others in SESSION/logs.
static void
path_of(char *buf, size_t cap, const char *session, const char *name)
{
    if (strcmp(name, "daemon.log") == 0) {
        const char *slash = strrchr(session, '/');
        int dl = slash != NULL ? (int)(slash - session) : 0;
        snprintf(buf, cap, "%.*s/daemon.log", dl, dl > 0 ? session : ".");
    } else {
        snprintf(buf, cap, "%s/logs/%s", session, name);
    }
}

static void
print_entry(const char *name, const char *path, time_t now)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        return;
    }
    long age = (long)(now - st.st_mtime);
    printf("%-28s %12lld  %6ld s ago\n", name, (long long)st.st_size,
           age < 0 ? 0 : age);
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// list prints the node's log files, the daemon's first, then by name.
static int
list(const char *prog, const char *session)
{
    char path[PATH_MAX + 300], dir[PATH_MAX + 16];
    time_t now = time(NULL);
    printf("%-28s %12s  %s\n", "FILE", "BYTES", "CHANGED");
    path_of(path, sizeof path, session, "daemon.log");
    print_entry("daemon.log", path, now);
    snprintf(dir, sizeof dir, "%s/logs", session);
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return RA_TOOL_OK;    // nothing logged yet
        }
        fprintf(stderr, "%s: %s: %s\n", prog, dir, strerror(errno));
        return RA_TOOL_FAIL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = RA_TOOL_OK;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap != 0 ? 2 * cap : 64;
            char **v = realloc(names, ncap * sizeof *v);
            if (v == NULL) {
                rc = RA_TOOL_FAIL;
                break;
            }
            names = v;
            cap = ncap;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rc = RA_TOOL_FAIL;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc != RA_TOOL_OK) {
        fprintf(stderr, "%s: out of memory\n", prog);
    }
    qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        print_entry(names[i], path, now);
        free(names[i]);
    }
    free(names);
    return rc;
}

// tail_offset returns where the last lines of path begin (0: from the
// start), reading it backwards in blocks.
static long
tail_offset(FILE *f, unsigned lines)
{
    if (fseek(f, 0, SEEK_END) != 0) {
        return 0;
    }
    long end = ftell(f), pos = end;
    unsigned seen = 0;
    char buf[4096];
    while (pos > 0) {
        long want = pos < (long)sizeof buf ? pos : (long)sizeof buf;
        pos -= want;
        if (fseek(f, pos, SEEK_SET) != 0 ||
            fread(buf, 1, (size_t)want, f) != (size_t)want) {
            return 0;
        }
        for (long i = want - 1; i >= 0; i--) {
            // A final newline ends the last line; it does not start one.
            if (buf[i] == '\n' && pos + i != end - 1 && ++seen == lines) {
                return pos + i + 1;
            }
        }
    }
    return 0;
}

// show prints the file name (its last lines with tail) and, with follow,
// what is appended to it until the command is interrupted.
static int
show(const char *prog, const char *session, const char *name, unsigned tail,
     bool follow, bool heading)
{
    char path[PATH_MAX + 300];
    path_of(path, sizeof path, session, name);
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        fprintf(stderr, "%s: no log file '%s' in %s (%s); 'rayo logs' "
                "lists them\n", prog, name, session, strerror(errno));
        return RA_TOOL_FAIL;
    }
    long off = tail > 0 ? tail_offset(f, tail) : 0;
    fclose(f);
    if (heading) {
        printf("==> %s <==\n", name);
        fflush(stdout);
    }
    off = ra__tool_copy_from(path, off);
    while (follow) {
        ra__tool_nap_ms(200);
        off = ra__tool_copy_from(path, off);
    }
    return RA_TOOL_OK;
}

int
ra__tool_logs(const char *prog, int argc, char **argv)
{
    lopts_t o = {0};
    int rc = parse(prog, argc, argv, &o);
    if (rc != RA_TOOL_OK) {
        return rc < 0 ? RA_TOOL_OK : rc;
    }
    char session[600];
    if ((rc = ra__tool_find_cluster(prog, o.where.address, o.where.temp, session,
                                    sizeof session)) != RA_TOOL_OK) {
        return rc;
    }
    char name[300];
    if (o.pid != 0) {
        snprintf(name, sizeof name, "worker-%u.out", o.pid);
        rc = show(prog, session, name, o.tail, false, true);
        if (rc == RA_TOOL_OK) {
            snprintf(name, sizeof name, "worker-%u.err", o.pid);
            rc = show(prog, session, name, o.tail, false, true);
        }
        return rc;
    }
    if (o.job != NULL) {
        snprintf(name, sizeof name, "job-%s.log", o.job);
        return show(prog, session, name, o.tail, o.follow, false);
    }
    if (o.file != NULL) {
        return show(prog, session, o.file, o.tail, o.follow, false);
    }
    return list(prog, session);
}

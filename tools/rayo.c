// rayo.c - the rayo command: argument dispatch and the command tables.
//
// `rayo COMMAND [SUBCOMMAND] [OPTIONS]`.  Each level is a table of
// {name, fn, summary}; see rayo_tool.h.  Output meant for programs goes to
// stdout, everything meant for people (errors, progress) to stderr.
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <rayo.h>

#include "rayo_tool.h"

int
ra__tool_usage_error(const char *prog, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
    return RA_TOOL_USAGE;
}

int
ra__tool_bad_option(const char *prog, int c, char **argv)
{
    // glibc leaves optopt 0 for an unknown long option, which is then
    // argv[optind - 1] as typed ("--bogus"); for a short option, or a long
    // one given a value it does not take ("--quick=1"), optopt is the
    // option's letter.
    const char *word = optind > 0 ? argv[optind - 1] : "?";

    if (c == ':') {
        return ra__tool_usage_error(prog, "option '%s' needs an argument",
                                    word);
    }
    if (optopt == 0) {
        return ra__tool_usage_error(prog, "unknown option '%s'", word);
    }
    if (strncmp(word, "--", 2) == 0 && strchr(word, '=') != NULL) {
        return ra__tool_usage_error(prog, "option '%s' takes no argument",
                                    word);
    }
    return ra__tool_usage_error(prog, "unknown option '-%c'", optopt);
}

static void
print_commands(FILE *out, const ra_tool_cmd_t *cmds, size_t ncmds)
{
    fprintf(out, "\nCommands:\n");
    for (size_t i = 0; i < ncmds; i++) {
        fprintf(out, "  %-12s %s\n", cmds[i].name, cmds[i].summary);
    }
}

int
ra__tool_dispatch(const char *prog, const char *usage,
                  const ra_tool_cmd_t *cmds, size_t ncmds, int argc,
                  char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    char sub[RA_TOOL_PROGLEN];
    int c;

    // '+' stops at the first word that is not an option: it and everything
    // after it belong to the subcommand.  optind = 0 makes glibc start
    // afresh for this argv.
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            printf("%s", usage);
            print_commands(stdout, cmds, ncmds);
            printf("\nRun '%s COMMAND --help' for a command's options.\n",
                   prog);
            return RA_TOOL_OK;
        default:
            return ra__tool_bad_option(prog, c, argv);
        }
    }
    if (optind >= argc) {
        return ra__tool_usage_error(prog, "missing command");
    }
    for (size_t i = 0; i < ncmds; i++) {
        if (strcmp(argv[optind], cmds[i].name) == 0) {
            snprintf(sub, sizeof sub, "%s %s", prog, cmds[i].name);
            return cmds[i].fn(sub, argc - optind, argv + optind);
        }
    }
    return ra__tool_usage_error(prog, "unknown command '%s'", argv[optind]);
}

static const char bench_usage[] =
    "Usage: rayo bench COMMAND [OPTIONS]\n"
    "Run a benchmark suite; results are JSON objects, one per line.\n";

static const ra_tool_cmd_t bench_cmds[] = {
    {"actor", ra__tool_bench_actor,
     "in-process actor runtime: messaging, spawn, calls, memory"},
    {"link", ra__tool_bench_link,
     "links between processes: round trips, throughput, vs libzmq"},
    {"supervisor", ra__tool_bench_supervisor,
     "supervisors: restart latency and rate, dynamic children"},
    {"store", ra__tool_bench_store,
     "shared-memory object store: puts, gets, spill vs memcpy and files"},
    {"core", ra__tool_bench_core,
     "cluster API: tasks, actor calls, objects, actor creation"},
    {"pg", ra__tool_bench_pg,
     "placement groups: placement decisions (more to come)"},
};

static int
cmd_bench(const char *prog, int argc, char **argv)
{
    return ra__tool_dispatch(prog, bench_usage, bench_cmds,
                             sizeof bench_cmds / sizeof bench_cmds[0], argc,
                             argv);
}

static const char rayo_usage[] =
    "Usage: rayo COMMAND [ARGS...]\n"
    "       rayo help [COMMAND]\n"
    "       rayo --version\n"
    "The command-line tool of rayo, an actor runtime for C.\n";

static int cmd_help(const char *prog, int argc, char **argv);

static const ra_tool_cmd_t rayo_cmds[] = {
    {"bench", cmd_bench, "run benchmarks, print JSON lines"},
    {"start", ra__tool_start, "start the node daemon of a cluster"},
    {"stop", ra__tool_stop, "stop the node daemon and its workers"},
    {"status", ra__tool_status, "show nodes, resources and demand"},
    {"list", ra__tool_list, "list jobs, nodes, workers or placement groups"},
    {"job", ra__tool_job, "run a program on the cluster as a job"},
    {"logs", ra__tool_logs, "list or show a node's log files"},
    {"topo", ra__tool_topo, "show CPUs, caches, GPUs and GPU links"},
    {"help", cmd_help, "show help for rayo or for a command"},
};

#define RAYO_NCMDS (sizeof rayo_cmds / sizeof rayo_cmds[0])

// cmd_help is `rayo help [COMMAND...]`: the same text as `--help` at that
// level, so there is one source of help per command.
static int
cmd_help(const char *prog, int argc, char **argv)
{
    char *args[16];
    int n = 0;

    if (argc > (int)(sizeof args / sizeof args[0]) - 2) {
        return ra__tool_usage_error(prog, "too many arguments");
    }
    args[n++] = "rayo";
    for (int i = 1; i < argc; i++) {
        args[n++] = argv[i];
    }
    args[n++] = "--help";
    args[n] = NULL;
    return ra__tool_dispatch("rayo", rayo_usage, rayo_cmds, RAYO_NCMDS, n,
                             args);
}

int
ra__tool_parse_uint(const char *prog, const char *opt, const char *s,
                    unsigned min, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    if (s[0] < '0' || s[0] > '9') {
        return ra__tool_usage_error(prog, "%s needs a whole number from %u "
                                    "to %u, not '%s'", opt, min, max, s);
    }
    errno = 0;
    v = strtoul(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < min || v > max) {
        return ra__tool_usage_error(prog, "%s needs a whole number from %u "
                                    "to %u, not '%s'", opt, min, max, s);
    }
    *out = (unsigned)v;
    return RA_TOOL_OK;
}

int
ra__tool_parse_names(const char *prog, const char *list, const void *table,
                     size_t stride, size_t count, size_t *sel, size_t *nsel,
                     size_t max)
{
    const char *p = list;

    for (;;) {
        size_t len = strcspn(p, ","), i;

        if (len == 0) {
            return ra__tool_usage_error(prog, "empty workload name in '%s'",
                                        list);
        }
        for (i = 0; i < count; i++) {
            const char *name;
            memcpy(&name, (const char *)table + i * stride, sizeof(name));
            if (strlen(name) == len && strncmp(name, p, len) == 0) {
                break;
            }
        }
        if (i == count) {
            return ra__tool_usage_error(prog, "unknown workload '%.*s'",
                                        (int)len, p);
        }
        if (*nsel == max) {
            return ra__tool_usage_error(prog, "too many workloads");
        }
        sel[(*nsel)++] = i;
        if (p[len] == '\0') {
            return RA_TOOL_OK;
        }
        p += len + 1;
    }
}

// RAYO_LOG=error|warning|info|debug sends the library's log to stderr at
// that level (default: warning).
static void
log_from_env(void)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {{"error", RA_LOG_ERR},
                  {"warning", RA_LOG_WARNING},
                  {"info", RA_LOG_INFO},
                  {"debug", RA_LOG_DEBUG}};
    const char *v = getenv("RAYO_LOG");
    int level = RA_LOG_WARNING;
    if (v != NULL && *v != 0) {
        bool known = false;
        for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
            if (strcmp(v, levels[i].name) == 0) {
                level = levels[i].level;
                known = true;
            }
        }
        if (!known) {
            fprintf(stderr, "rayo: RAYO_LOG=%s is not a level (error, "
                    "warning, info, debug): using warning\n", v);
        }
    }
    ra_log_set_level(level);
    ra_log_set_sink(ra_log_stderr, NULL);
}

int
main(int argc, char **argv)
{
    // `rayo bench core` starts worker processes that run this executable
    // again, with the same arguments: they must serve, not run the command.
    ra_worker_main();
    log_from_env();
    // --version is only meaningful at the top, so it is handled here rather
    // than by the generic dispatcher.
    if (argc >= 2 && (strcmp(argv[1], "--version") == 0 ||
                      strcmp(argv[1], "-V") == 0)) {
        if (argc > 2) {
            return ra__tool_usage_error("rayo", "unexpected argument '%s' "
                                        "after %s", argv[2], argv[1]);
        }
        printf("rayo %s (librayo %s)\n", RA_VERSION_STRING, ra_version());
        return RA_TOOL_OK;
    }
    if (argc < 2) {
        fprintf(stderr, "%s", rayo_usage);
        print_commands(stderr, rayo_cmds, RAYO_NCMDS);
        return RA_TOOL_USAGE;
    }
    return ra__tool_dispatch("rayo", rayo_usage, rayo_cmds, RAYO_NCMDS, argc,
                             argv);
}

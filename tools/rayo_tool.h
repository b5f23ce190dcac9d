// rayo_tool.h - what the files of the rayo command share.
//
// The command is a tree: `rayo` dispatches to a command (`bench`), a command
// may dispatch again to its own subcommands (`bench actor`), and the leaves
// parse their options with getopt_long.  Each level is a table of
// ra_tool_cmd_t, so adding a command is one row and one function.
//
// Exit status, everywhere: 0 success, 1 the work failed (a benchmark check,
// a runtime error), 2 the command line was wrong.
//
// Threads: everything here runs on the main thread before or after any
// runtime exists; nothing is thread-safe and nothing needs to be.
#ifndef RAYO_TOOL_H
#define RAYO_TOOL_H

#include <stdbool.h>
#include <stddef.h>

enum {
    RA_TOOL_OK = 0,
    RA_TOOL_FAIL = 1,
    RA_TOOL_USAGE = 2
};

// RA_TOOL_PROGLEN bounds the command path shown in messages
// ("rayo bench actor").
#define RA_TOOL_PROGLEN 128

// ra_tool_fn runs one command.  prog is its full path for messages ("rayo
// bench"), argv[0] is its own name and argv[1..] its arguments.  It returns
// the process exit status.
typedef int (*ra_tool_fn)(const char *prog, int argc, char **argv);

// ra_tool_cmd_t is one row of a command table.
typedef struct ra_tool_cmd {
    const char *name;
    ra_tool_fn fn;
    const char *summary; // one line for the parent's --help
} ra_tool_cmd_t;

// ra__tool_dispatch runs a command that only chooses a subcommand: it
// accepts --help/-h, then runs the row of cmds named by the first argument
// with the rest.  usage is printed above the table of subcommands by
// --help.  Returns the subcommand's exit status, or RA_TOOL_USAGE after
// printing an error for a missing or unknown subcommand or option.
int ra__tool_dispatch(const char *prog, const char *usage,
                      const ra_tool_cmd_t *cmds, size_t ncmds, int argc,
                      char **argv);

// ra__tool_bad_option prints the error for getopt_long's return c ('?' for
// an unknown option, ':' for a missing argument) and returns RA_TOOL_USAGE.
// Call it right after getopt_long returned, with the same argv.
int ra__tool_bad_option(const char *prog, int c, char **argv);

// ra__tool_usage_error prints "prog: what" and the hint to run
// "prog --help" on stderr, and returns RA_TOOL_USAGE.
int ra__tool_usage_error(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// ra__tool_parse_uint reads s, the argument of option opt, as a decimal
// number in [min, max] into *out.  Returns RA_TOOL_OK, or prints the error
// and returns RA_TOOL_USAGE.
int ra__tool_parse_uint(const char *prog, const char *opt, const char *s,
                        unsigned min, unsigned max, unsigned *out);

// ra__tool_parse_names appends to sel (which holds *nsel of at most max
// entries) the indexes of the names in the comma-separated list, looked up
// in a table of count entries of stride bytes each, whose first member is
// the name (a const char *).  Returns RA_TOOL_OK, or prints the error and
// returns RA_TOOL_USAGE.
int ra__tool_parse_names(const char *prog, const char *list,
                         const void *table, size_t stride, size_t count,
                         size_t *sel, size_t *nsel, size_t max);

// The options of every command that works on a running cluster:
// RA_TOOL_WHERE_LONGOPTS goes into its getopt_long table (<getopt.h>), and
// ra__tool_where_opt, called for what getopt_long returned, stores
// --address and --temp-dir in a ra_tool_where_t and returns true (false
// for any other option).
enum { RA_TOOL_O_ADDRESS = 900, RA_TOOL_O_TEMP_DIR = 901 };
#define RA_TOOL_WHERE_LONGOPTS                                              \
    {"address", required_argument, NULL, RA_TOOL_O_ADDRESS},                \
    {"temp-dir", required_argument, NULL, RA_TOOL_O_TEMP_DIR}

typedef struct ra_tool_where {
    const char *address;      // NULL: $RAYO_ADDRESS, else "auto"
    const char *temp;         // NULL: $RAYO_TEMP_DIR, else /tmp/rayo
} ra_tool_where_t;

bool ra__tool_where_opt(int c, const char *arg, ra_tool_where_t *w);

// ra__tool_find_cluster finds the running cluster that address names
// ("auto", a session directory; NULL: $RAYO_ADDRESS, else "auto") under
// temp (NULL: the default temp dir) and stores its session directory in
// session (cap bytes).  Returns RA_TOOL_OK; else prints why on stderr (and
// that 'rayo start --head' starts one) and returns RA_TOOL_FAIL, or
// RA_TOOL_USAGE for an address of a form not supported.
int ra__tool_find_cluster(const char *prog, const char *address,
                          const char *temp, char *session, size_t cap);

// ra__tool_copy_from writes file path from byte off on to stdout and
// returns the offset reached (off when it cannot be read).
long ra__tool_copy_from(const char *path, long off);

// ra__tool_nap_ms sleeps ms milliseconds.
void ra__tool_nap_ms(long ms);

// ra__tool_logs is `rayo logs` (logs_cmd.c): a node's log files.
int ra__tool_logs(const char *prog, int argc, char **argv);

// ra__tool_start and ra__tool_stop are `rayo start` and `rayo stop`: the
// node daemon (node_cmd.c).
int ra__tool_start(const char *prog, int argc, char **argv);
int ra__tool_stop(const char *prog, int argc, char **argv);

// ra__tool_status and ra__tool_list are `rayo status` and `rayo list`
// (status_cmd.c).
int ra__tool_status(const char *prog, int argc, char **argv);
int ra__tool_list(const char *prog, int argc, char **argv);

// ra__tool_job is `rayo job` (job_cmd.c); ra__tool_print_jobs prints the
// GCS's job table as a table or JSON once the cluster is joined, and
// ra__tool_list_jobs is `rayo list jobs` (status_cmd.c).
int ra__tool_job(const char *prog, int argc, char **argv);
int ra__tool_print_jobs(bool json);
int ra__tool_list_jobs(const char *prog, int argc, char **argv);

// ra__tool_bench_actor is `rayo bench actor`: the actor runtime benchmarks.
int ra__tool_bench_actor(const char *prog, int argc, char **argv);

// ra__tool_bench_link is `rayo bench link`: round trips and throughput of
// links between two processes (ipc, tcp with CURVE) beside bare libzmq.
int ra__tool_bench_link(const char *prog, int argc, char **argv);

// ra__tool_bench_supervisor is `rayo bench supervisor`: restart latency and
// rate, dynamic children.
int ra__tool_bench_supervisor(const char *prog, int argc, char **argv);

// ra__tool_bench_store is `rayo bench store`: the shared-memory object
// store's small puts and gets, a large put and get beside memcpy, spill
// and restore beside plain file I/O.
int ra__tool_bench_store(const char *prog, int argc, char **argv);

// ra__tool_bench_core is `rayo bench core`: the cluster API's tasks, actor
// calls, objects and actor creation, shaped like `ray microbenchmark`, on
// one embedded cluster whose workers are this executable (main calls
// ra_worker_main first).
int ra__tool_bench_core(const char *prog, int argc, char **argv);

// ra__tool_bench_pg is `rayo bench pg`: placement groups; for now the
// placement decision (ra_place_bundles) on simulated clusters of 1,000 and
// 10,000 nodes.
int ra__tool_bench_pg(const char *prog, int argc, char **argv);

// ra__tool_topo is `rayo topo`: the topology of this machine, or of a
// synthetic or XML description with an optional GPU inventory (ra_topo.h),
// as a table or as one JSON object.
int ra__tool_topo(const char *prog, int argc, char **argv);

#endif

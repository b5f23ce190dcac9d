// bench_util.h - the harness the `rayo bench` commands share.
//
// Every bench command parses the same kind of command line (--quick, a
// list of workloads, --repeat, --help, and a few options of its own),
// prints the same kind of --help (a text, the workloads with their
// summaries, a closing text), times with the monotonic clock and takes
// medians and percentiles of its runs.  The commands whose workloads each
// print one line (`rayo bench core`, `rayo bench pg`) also share the run
// loop and the line: the median of the runs as "value", every run in
// "runs", and the target with "met".  Output formats belong to the
// commands' users (tables, tools/bootstrap), so nothing here changes a
// byte of what a command printed before it used this file.
//
// Threads: everything here runs on the main thread, like rayo_tool.h.
// The clocks and the statistics may be called from any thread, and
// ra__bench_watchdog_msg from a signal handler.
#ifndef RAYO_BENCH_UTIL_H
#define RAYO_BENCH_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// RA_BENCH_MAX_EXTRA bounds the extra measured fields of one line.
#define RA_BENCH_MAX_EXTRA 16
// RA_BENCH_MAX_COUNTS bounds the whole-number fields of one line ("nodes",
// "clients", ...).
#define RA_BENCH_MAX_COUNTS 2
// RA_BENCH_MAX_SELECTED bounds the workloads one command line may name.
#define RA_BENCH_MAX_SELECTED 64
// RA_BENCH_MAX_OPTS bounds a command's options of its own.
#define RA_BENCH_MAX_OPTS 8

// ---------------------------------------------------------------------
// Objects between two nodes (bench_xfer.c), for `rayo bench store`.

// ra__xfer_result_t: the object managers' copy rate (rayo_gbps over
// rayo_s seconds of copying, times copies), and bare libzmq PUSH/PULL over
// tcp, plain and CURVE, in GB/s (10^9 bytes).
typedef struct ra__xfer_result {
    double rayo_gbps, rayo_s, zmq_gbps, zmq_curve_gbps;
    unsigned times;
} ra__xfer_result_t;

// ra__bench_xfer starts two node daemons under dir (an empty private
// directory), copies a size-byte task result from one to the other times
// times after one untimed copy, stops them and removes dir, then runs the
// libzmq figures.
// Progress on stderr.  Returns RA_TOOL_OK or RA_TOOL_FAIL (said why).
int ra__bench_xfer(const char *dir, size_t size, unsigned times,
                   ra__xfer_result_t *out);

// ---------------------------------------------------------------------
// Clocks and statistics.

// ra__bench_now_s returns CLOCK_MONOTONIC in seconds.
double ra__bench_now_s(void);

// ra__bench_now_ns returns CLOCK_MONOTONIC in nanoseconds.
uint64_t ra__bench_now_ns(void);

// ra__bench_cmp_double orders doubles for qsort, ascending.
int ra__bench_cmp_double(const void *a, const void *b);

// ra__bench_median sorts the n (at least 1) numbers of v and returns their
// median: the middle one, or the mean of the two middle ones.
double ra__bench_median(double *v, size_t n);

// ra__bench_percentile returns the p-th percentile, by nearest rank
// (rounded), of the n (at least 1) sorted numbers of v.
double ra__bench_percentile(const double *v, size_t n, double p);

// ---------------------------------------------------------------------
// The watchdog.  A benchmark of a runtime under construction can hang in
// ways no return code reports (a lost wake-up, an actor never placed, a
// destroy that never returns), so a command arms alarm() for each phase
// with a message that says which phase stalled; the SIGALRM handler
// prints it and exits.

// ra__bench_watchdog_install makes SIGALRM print the message of the last
// ra__bench_watchdog_arm on stderr and _exit with RA_TOOL_FAIL.  A command
// with a handler of its own (one that cleans up first) skips this and
// prints ra__bench_watchdog_msg itself.
void ra__bench_watchdog_install(void);

// ra__bench_watchdog_arm formats the message for a stall of the phase
// starting now (at most 255 bytes are kept) and arms alarm(timeout_s).
// alarm(0) disarms it.  Main thread only.
void ra__bench_watchdog_arm(unsigned timeout_s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

// ra__bench_watchdog_msg returns the message of the last
// ra__bench_watchdog_arm ("" before the first), whole: safe to call from a
// signal handler.  Borrowed until the next ra__bench_watchdog_arm but one.
const char *ra__bench_watchdog_msg(void);

// ---------------------------------------------------------------------
// The command line.

// ra_bench_table_t describes a command's table of workloads: count rows
// of stride bytes each, whose first member is the name (a const char *)
// and whose member at byte summary_at is the line --help shows (a const
// char *).  Make one with RA_BENCH_TABLE.
typedef struct ra_bench_table {
    const void *rows;
    size_t stride;
    size_t count;
    size_t summary_at;
} ra_bench_table_t;

#define RA_BENCH_TABLE(rows, type, summary)                                \
    {(rows), sizeof(type), sizeof(rows) / sizeof((rows)[0]),              \
     offsetof(type, summary)}

// ra_bench_opt_t is an option of one command beyond --quick, the list of
// workloads, --repeat and --help.  It takes a number when num is set (in
// [min, max], into *num), an argument that parse reads (returning
// RA_TOOL_OK, or printing the error and returning RA_TOOL_USAGE) when
// parse is set, and nothing otherwise.  *flag, when flag is set, becomes
// true each time the option is given.
typedef struct ra_bench_opt {
    const char *name;   // the long name, without "--"
    int letter;         // the short name, or 0 for none
    bool *flag;
    unsigned *num;
    unsigned min, max;
    int (*parse)(const char *prog, const char *arg, void *ctx);
    void *ctx;
} ra_bench_opt_t;

// RA_BENCH_OPT_THREADS is -t, --threads N: scheduler threads, 0 (one
// per online CPU) to 1024, into the unsigned at p.
#define RA_BENCH_OPT_THREADS(p)                                            \
    {.name = "threads", .letter = 't', .num = (p), .min = 0, .max = 1024}

// RA_BENCH_OPT_TIMEOUT is --timeout SECONDS, 1 to 86400, into the
// unsigned at p: the time a command's watchdog allows one step.
#define RA_BENCH_OPT_TIMEOUT(p)                                            \
    {.name = "timeout", .num = (p), .min = 1, .max = 86400}

// ra_bench_cmd_t is one bench command's command line and --help.
typedef struct ra_bench_cmd {
    // --help prints usage, then "  NAME SUMMARY" for each workload with
    // the names padded to width, then tail (when not NULL).
    const char *usage;
    int width;
    const char *tail;
    ra_bench_table_t workloads; // rows may be NULL: none to list or name
    // The option that names workloads ("only" or "workload") and its
    // letter; NULL when the command has none.
    const char *select;
    int select_letter;
    unsigned max_repeat;
    const ra_bench_opt_t *opts; // the command's own options
    size_t nopts;               // at most RA_BENCH_MAX_OPTS
} ra_bench_cmd_t;

// ra_bench_args_t is what ra__bench_parse_args found.
typedef struct ra_bench_args {
    bool quick;
    bool help;              // --help was given, and the help printed
    unsigned repeat;        // 1 when not given
    size_t sel[RA_BENCH_MAX_SELECTED]; // indexes in the workload table
    size_t nsel;
} ra_bench_args_t;

// ra__bench_print_usage prints cmd's --help on stdout.
void ra__bench_print_usage(const ra_bench_cmd_t *cmd);

// ra__bench_parse_args parses argv (argv[0] is the command's name) with
// getopt_long into *a and the targets of cmd's own options.  When no
// workloads were named, a->sel holds them all, in table order.  --help
// prints cmd's help and stops there with a->help set.  Returns RA_TOOL_OK,
// or RA_TOOL_USAGE after printing the error, prefixed with prog.
int ra__bench_parse_args(const char *prog, const ra_bench_cmd_t *cmd,
                         int argc, char **argv, ra_bench_args_t *a);

// ---------------------------------------------------------------------
// Workloads that print one line each.

enum {
    RA_BENCH_TARGET_NONE,
    RA_BENCH_TARGET_MIN, // the median must reach target
    RA_BENCH_TARGET_MAX, // the median must stay at or below target
    // The median must reach half the median of the first extra field
    // (a rate measured beside the workload's own); printed as
    // "target_min".
    RA_BENCH_TARGET_HALF_X0
};

// ra_bench_workload_t is what the harness needs of one workload; the
// rows of a command's table begin with it.
typedef struct ra_bench_workload {
    const char *name;
    const char *unit;
    // Names of ra_bench_run_t.x[i], up to the first NULL.  A workload
    // whose value is not a rate of n operations over seconds sets
    // ra_bench_run_t.value itself (sets_value).
    const char *extra[RA_BENCH_MAX_EXTRA];
    bool sets_value;
    int target_kind;
    double target;
    const char *summary;
} ra_bench_workload_t;

// ra_bench_run_t is what one run of one workload measured.
typedef struct ra_bench_run {
    double value;
    uint64_t n;         // operations timed
    double seconds;
    double x[RA_BENCH_MAX_EXTRA];
    unsigned count[RA_BENCH_MAX_COUNTS]; // 0: not shown
} ra_bench_run_t;

// ra_bench_run_fn runs run number run (0 .. repeat - 1) of the workload in
// row (a row of the suite's table) and fills *out, which starts zeroed.
// Returns RA_TOOL_OK, or RA_TOOL_FAIL after saying why on stderr.
typedef int (*ra_bench_run_fn)(void *ctx, const void *row, unsigned run,
                               ra_bench_run_t *out);

// ra_bench_suite_t is a command whose workloads print one line each:
//   {"bench":BENCH,"workload":...,"value":...,"unit":...,"n":...,
//    "seconds":...,"cpus":..., COUNTS, EXTRA,"repeat":...,"runs":[...],
//    "target_min" or "target_max","met"}
// with each count field present when the first run's is not 0, and the
// target when the workload has one.  Messages on stderr begin
// "rayo bench BENCH: ".
typedef struct ra_bench_suite {
    const char *bench;
    ra_bench_table_t workloads; // rows begin with ra_bench_workload_t
    const char *counts[RA_BENCH_MAX_COUNTS]; // names, NULL: unused
    unsigned repeat;
    unsigned cpus;
    ra_bench_run_fn run;
    void *ctx;
} ra_bench_suite_t;

// ra__bench_print_line prints w's line from the repeat runs in runs: the
// median of each measure over the runs.
void ra__bench_print_line(const ra_bench_suite_t *s,
                          const ra_bench_workload_t *w,
                          const ra_bench_run_t *runs);

// ra__bench_run_selected runs each of the nsel workloads in sel s->repeat
// times (until a run fails), saying so on stderr, and prints the line of
// each whose runs all worked.  A failed workload does not stop the
// others: their numbers are still useful.  Returns RA_TOOL_OK when all
// worked, else RA_TOOL_FAIL.
int ra__bench_run_selected(const ra_bench_suite_t *s, const size_t *sel,
                           size_t nsel);

#endif

// bench_util.c - the harness the `rayo bench` commands share.
//
// See bench_util.h.  What each line and each message looks like was fixed
// by the commands before they shared this code; keep every format here
// byte for byte, or the tables built from their output break.
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rayo.h>

#include "bench_util.h"
#include "rayo_tool.h"

// ---------------------------------------------------------------------
// Clocks and statistics.

double
ra__bench_now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t
ra__bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int
ra__bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double
ra__bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, ra__bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double
ra__bench_percentile(const double *v, size_t n, double p)
{
    size_t k = (size_t)(p / 100.0 * (double)n + 0.5);

    return v[k == 0 ? 0 : k > n ? n - 1 : k - 1];
}

// ---------------------------------------------------------------------
// The watchdog.
//
// Global: watch_msg points at one of two buffers; the main thread fills
// the other one and then swaps the pointer, so a signal handler never
// sees a half-written message.

static char watch_buf[2][256];
static const char *volatile watch_msg = watch_buf[0];

const char *
ra__bench_watchdog_msg(void)
{
    return watch_msg;
}

static void
on_alarm(int sig)
{
    const char *m = watch_msg;

    (void)sig;
    if (write(STDERR_FILENO, m, strlen(m)) < 0) {
        // Nothing left to do: the process is exiting.
    }
    _exit(RA_TOOL_FAIL);
}

void
ra__bench_watchdog_install(void)
{
    struct sigaction sa = {.sa_handler = on_alarm};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
}

void
ra__bench_watchdog_arm(unsigned timeout_s, const char *fmt, ...)
{
    char *buf = watch_buf[watch_msg == watch_buf[0] ? 1 : 0];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof watch_buf[0], fmt, ap);
    va_end(ap);
    watch_msg = buf;
    alarm(timeout_s);
}

// ---------------------------------------------------------------------
// The command line.

static const void *
table_row(const ra_bench_table_t *t, size_t i)
{
    return (const char *)t->rows + i * t->stride;
}

static const char *
table_str(const ra_bench_table_t *t, size_t i, size_t at)
{
    const char *s;

    // The member is a const char * at byte at of the row; memcpy reads it
    // whatever the row's type, as ra__tool_parse_names does.
    memcpy(&s, (const char *)table_row(t, i) + at, sizeof s);
    return s;
}

void
ra__bench_print_usage(const ra_bench_cmd_t *cmd)
{
    const ra_bench_table_t *t = &cmd->workloads;

    printf("%s", cmd->usage);
    for (size_t i = 0; t->rows != NULL && i < t->count; i++) {
        printf("  %-*s %s\n", cmd->width, table_str(t, i, 0),
               table_str(t, i, t->summary_at));
    }
    if (cmd->tail != NULL) {
        printf("%s", cmd->tail);
    }
}

// OPT_OWN + i is what getopt_long returns for own option i when it has no
// letter: above every char, so no short option can be mistaken for it.
enum { OPT_OWN = 256 };

static int
own_val(const ra_bench_opt_t *o, size_t i)
{
    return o->letter != 0 ? o->letter : OPT_OWN + (int)i;
}

// find_own returns the index of the own option getopt_long returned as c,
// or cmd->nopts.
static size_t
find_own(const ra_bench_cmd_t *cmd, int c)
{
    size_t i = 0;

    while (i < cmd->nopts && own_val(&cmd->opts[i], i) != c) {
        i++;
    }
    return i;
}

// build_opts fills the tables getopt_long reads.  The short options
// start with ':' so that a missing argument is told from an unknown
// option (ra__tool_bad_option says which).
static void
build_opts(const ra_bench_cmd_t *cmd, struct option *lo, char *so)
{
    size_t nl = 0, ns = 0;

    so[ns++] = ':';
    so[ns++] = 'q';
    lo[nl++] = (struct option){"quick", no_argument, NULL, 'q'};
    if (cmd->select != NULL) {
        lo[nl++] = (struct option){cmd->select, required_argument, NULL,
                                   cmd->select_letter};
        so[ns++] = (char)cmd->select_letter;
        so[ns++] = ':';
    }
    lo[nl++] = (struct option){"repeat", required_argument, NULL, 'r'};
    so[ns++] = 'r';
    so[ns++] = ':';
    for (size_t i = 0; i < cmd->nopts; i++) {
        const ra_bench_opt_t *o = &cmd->opts[i];
        bool arg = o->num != NULL || o->parse != NULL;

        lo[nl++] = (struct option){o->name,
                                   arg ? required_argument : no_argument,
                                   NULL, own_val(o, i)};
        if (o->letter != 0) {
            so[ns++] = (char)o->letter;
            if (arg) {
                so[ns++] = ':';
            }
        }
    }
    lo[nl++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[nl] = (struct option){NULL, 0, NULL, 0};
    so[ns++] = 'h';
    so[ns] = '\0';
}

static int
parse_own(const char *prog, const ra_bench_opt_t *o, const char *arg)
{
    char opt[64];

    if (o->flag != NULL) {
        *o->flag = true;
    }
    if (o->num != NULL) {
        snprintf(opt, sizeof opt, "--%s", o->name);
        return ra__tool_parse_uint(prog, opt, arg, o->min, o->max, o->num);
    }
    if (o->parse != NULL) {
        return o->parse(prog, arg, o->ctx);
    }
    return RA_TOOL_OK;
}

int
ra__bench_parse_args(const char *prog, const ra_bench_cmd_t *cmd, int argc,
                     char **argv, ra_bench_args_t *a)
{
    struct option lo[RA_BENCH_MAX_OPTS + 5];
    char so[2 * RA_BENCH_MAX_OPTS + 10];
    const ra_bench_table_t *t = &cmd->workloads;
    int c, rc = RA_TOOL_OK;

    *a = (ra_bench_args_t){.repeat = 1};
    if (cmd->nopts > RA_BENCH_MAX_OPTS) {
        fprintf(stderr, "%s: too many options (a bug)\n", prog);
        return RA_TOOL_FAIL;
    }
    build_opts(cmd, lo, so);
    // optind = 0 makes glibc start afresh for this argv.
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
        size_t i = find_own(cmd, c);

        if (c == 'q') {
            a->quick = true;
        } else if (c == 'r') {
            rc = ra__tool_parse_uint(prog, "--repeat", optarg, 1,
                                     cmd->max_repeat, &a->repeat);
        } else if (c == 'h') {
            ra__bench_print_usage(cmd);
            a->help = true;
            return RA_TOOL_OK;
        } else if (cmd->select != NULL && c == cmd->select_letter) {
            rc = ra__tool_parse_names(prog, optarg, t->rows, t->stride,
                                      t->count, a->sel, &a->nsel,
                                      RA_BENCH_MAX_SELECTED);
        } else if (i < cmd->nopts) {
            rc = parse_own(prog, &cmd->opts[i], optarg);
        } else {
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
    if (a->nsel == 0 && t->rows != NULL) {
        for (; a->nsel < t->count; a->nsel++) {
            a->sel[a->nsel] = a->nsel;
        }
    }
    return RA_TOOL_OK;
}

// ---------------------------------------------------------------------
// Workloads that print one line each.

void
ra__bench_print_line(const ra_bench_suite_t *s, const ra_bench_workload_t *w,
                     const ra_bench_run_t *runs)
{
    unsigned repeat = s->repeat;
    double *v = calloc(repeat, sizeof *v);
    double value, target = w->target;

    if (v == NULL) {
        fprintf(stderr, "rayo bench %s: %s: out of memory\n", s->bench,
                w->name);
        return;
    }
    for (unsigned r = 0; r < repeat; r++) {
        v[r] = runs[r].value;
    }
    value = ra__bench_median(v, repeat);
    printf("{\"bench\":\"%s\",\"workload\":\"%s\",\"value\":%.1f,"
           "\"unit\":\"%s\",\"n\":%" PRIu64, s->bench, w->name, value,
           w->unit, runs[0].n);
    for (unsigned r = 0; r < repeat; r++) {
        v[r] = runs[r].seconds;
    }
    printf(",\"seconds\":%.6f,\"cpus\":%u", ra__bench_median(v, repeat),
           s->cpus);
    for (size_t k = 0; k < RA_BENCH_MAX_COUNTS; k++) {
        if (s->counts[k] != NULL && runs[0].count[k] != 0) {
            printf(",\"%s\":%u", s->counts[k], runs[0].count[k]);
        }
    }
    for (size_t k = 0; k < RA_BENCH_MAX_EXTRA && w->extra[k] != NULL; k++) {
        for (unsigned r = 0; r < repeat; r++) {
            v[r] = runs[r].x[k];
        }
        printf(",\"%s\":%.1f", w->extra[k], ra__bench_median(v, repeat));
        if (k == 0 && w->target_kind == RA_BENCH_TARGET_HALF_X0) {
            target = ra__bench_median(v, repeat) / 2;
        }
    }
    printf(",\"repeat\":%u,\"runs\":[", repeat);
    for (unsigned r = 0; r < repeat; r++) {
        printf("%s%.1f", r != 0 ? "," : "", runs[r].value);
    }
    printf("]");
    if (w->target_kind == RA_BENCH_TARGET_MAX) {
        printf(",\"target_max\":%.1f,\"met\":%s", target,
               value <= target ? "true" : "false");
    } else if (w->target_kind != RA_BENCH_TARGET_NONE) {
        printf(",\"target_min\":%.1f,\"met\":%s", target,
               value >= target ? "true" : "false");
    }
    printf("}\n");
    fflush(stdout);
    free(v);
}

static int
run_workload(const ra_bench_suite_t *s, const void *row)
{
    const ra_bench_workload_t *w = row;
    ra_bench_run_t *runs = calloc(s->repeat, sizeof *runs);
    int rc = RA_TOOL_OK;

    if (runs == NULL) {
        fprintf(stderr, "rayo bench %s: out of memory\n", s->bench);
        return RA_TOOL_FAIL;
    }
    for (unsigned r = 0; r < s->repeat && rc == RA_TOOL_OK; r++) {
        ra_bench_run_t *b = &runs[r];

        fprintf(stderr, "rayo bench %s: %s (run %u of %u)\n", s->bench,
                w->name, r + 1, s->repeat);
        rc = s->run(s->ctx, row, r, b);
        if (rc == RA_TOOL_OK && !w->sets_value) {
            b->value = b->seconds > 0 ? (double)b->n / b->seconds : 0;
        }
    }
    if (rc == RA_TOOL_OK) {
        ra__bench_print_line(s, w, runs);
    }
    free(runs);
    return rc;
}

int
ra__bench_run_selected(const ra_bench_suite_t *s, const size_t *sel,
                       size_t nsel)
{
    int rc = RA_TOOL_OK;

    for (size_t i = 0; i < nsel; i++) {
        if (run_workload(s, table_row(&s->workloads, sel[i])) !=
            RA_TOOL_OK) {
            rc = RA_TOOL_FAIL; // go on: the other numbers are still useful
        }
    }
    return rc;
}

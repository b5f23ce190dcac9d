// log.c - the process-wide log sink.
#include <stdatomic.h>
#include <stdio.h>

#include "ra_log.h"

// Global: the sink, its user pointer and the level, published with atomics
// (a sink and its pointer are stored as one pair so a reader never mixes
// an old sink with a new pointer).
typedef struct {
    ra_log_sink_fn fn;
    void *user;
} sink_t;

static sink_t sinks[2];
static atomic_int sink_ix = -1;
static atomic_int log_level = RA_LOG_WARNING;

void
ra_log_set_sink(ra_log_sink_fn sink, void *user)
{
    if (sink == NULL) {
        atomic_store(&sink_ix, -1);
        return;
    }
    int next = atomic_load(&sink_ix) == 0 ? 1 : 0;
    sinks[next].fn = sink;
    sinks[next].user = user;
    atomic_store(&sink_ix, next);
}

void
ra_log_set_level(int level)
{
    atomic_store(&log_level, level);
}

void
ra_log_stderr(void *user, int level, const char *component, const char *line)
{
    static const char *names[] = {"emerg", "alert", "crit", "error",
                                  "warning", "notice", "info", "debug"};
    const char *lv = level >= 0 && level <= 7 ? names[level] : "?";
    (void)user;
    fprintf(stderr, "rayo[%s] %s: %s\n", component, lv, line);
}

void
ra_log(int level, const char *component, const char *fmt, ...)
{
    int ix = atomic_load(&sink_ix);
    if (ix < 0 || level > atomic_load(&log_level)) {
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sinks[ix].fn(sinks[ix].user, level, component, line);
}

// cluster_tool.c - what the commands that work on a running cluster share:
// finding its session (--address, --temp-dir, RAYO_ADDRESS) with the same
// messages everywhere, and copying a file to stdout as it grows.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rayo.h>

#include "rayo_tool.h"

bool
ra__tool_where_opt(int c, const char *arg, ra_tool_where_t *w)
{
    if (c == RA_TOOL_O_ADDRESS) {
        w->address = arg;
    } else if (c == RA_TOOL_O_TEMP_DIR) {
        w->temp = arg;
    } else {
        return false;
    }
    return true;
}

int
ra__tool_find_cluster(const char *prog, const char *address,
                      const char *temp, char *session, size_t cap)
{
    if (address == NULL) {
        address = getenv("RAYO_ADDRESS");
    }
    if (address == NULL || address[0] == '\0') {
        address = "auto";
    }
    int rc = ra_cluster_locate(address, temp, session, cap, NULL);
    if (rc == RA_ENOTSUP) {
        fprintf(stderr, "%s: address '%s': give \"auto\" or a session "
                "directory (remote clusters are not supported yet)\n", prog,
                address);
        return RA_TOOL_USAGE;
    }
    if (rc == RA_ENOENT || rc == RA_ENOCONN) {
        fprintf(stderr, "%s: no cluster is running%s%s; start one with "
                "'rayo start --head'\n", prog,
                rc == RA_ENOCONN ? " in " : "",
                rc == RA_ENOCONN ? session : "");
        return RA_TOOL_FAIL;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: cannot find the cluster at '%s': %s\n", prog,
                address, ra_strerror(rc));
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

long
ra__tool_copy_from(const char *path, long off)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return off;
    }
    if (fseek(f, off, SEEK_SET) == 0) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
            fwrite(buf, 1, n, stdout);
            off += (long)n;
        }
    }
    fclose(f);
    fflush(stdout);
    return off;
}

void
ra__tool_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

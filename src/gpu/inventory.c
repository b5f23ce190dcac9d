// inventory.c - GPU inventory files (the JSON format of ra_topo.h).
//
// An inventory describes GPUs that this process cannot see (a simulated
// cluster, a test, a machine whose driver is elsewhere), so every field is
// checked and a bad file is rejected whole with RA_EBADMSG and one log line
// naming the problem: placement must never run on a half-read matrix.
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "gpu_impl.h"
#include "ra_error.h"
#include "ra_log.h"

#define LOG "topo"

// An inventory is a few kilobytes; anything far larger is not one.
#define MAX_FILE (4u << 20)

// NVLink counts are stored in a byte; real GPUs have at most 18 links.
#define MAX_NVLINKS 255u

static int
read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n;
    int rc = 0;

    if (f == NULL) {
        return -errno;
    }
    if ((buf = malloc(MAX_FILE + 1)) == NULL) {
        rc = RA_ENOMEM;
        goto done;
    }
    n = fread(buf, 1, MAX_FILE + 1, f);
    if (ferror(f)) {
        rc = -EIO;
        goto done;
    }
    if (n > MAX_FILE) {
        ra_log_warn(LOG, "%s: larger than %u bytes", path, MAX_FILE);
        rc = RA_EBADMSG;
        goto done;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
done:
    free(buf);
    fclose(f);
    return rc;
}

static bool
iter_int(const bson_iter_t *it, int64_t *v)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32:
        *v = bson_iter_int32(it);
        return true;
    case BSON_TYPE_INT64:
        *v = bson_iter_int64(it);
        return true;
    default:
        return false;
    }
}

// parse_code reads one cell of the link matrix.
static bool
parse_code(const char *s, uint8_t *code, uint8_t *nvl)
{
    static const struct {
        const char *name;
        ra__link_code_t code;
    } fixed[] = {{"X", RA__CODE_X},     {"PIX", RA__CODE_PIX},
                 {"PXB", RA__CODE_PXB}, {"PHB", RA__CODE_PHB},
                 {"NODE", RA__CODE_NODE}, {"SYS", RA__CODE_SYS}};
    unsigned long n = 0;

    *nvl = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(s, fixed[i].name) == 0) {
            *code = (uint8_t)fixed[i].code;
            return true;
        }
    }
    if (strncmp(s, "NV", 2) != 0 || s[2] < '1' || s[2] > '9') {
        return false;
    }
    for (const char *p = s + 2; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || (n = n * 10 + (unsigned)(*p - '0'))
                                        > MAX_NVLINKS) {
            return false;
        }
    }
    *code = RA__CODE_NV;
    *nvl = (uint8_t)n;
    return true;
}

static int
parse_gpu(ra_topo_t *t, const char *path, unsigned i, bson_iter_t *it)
{
    ra_gpu_info_t *g = &t->gpus[i];
    bool have_numa = false;
    bson_iter_t f;
    int64_t v;

    if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &f)) {
        ra_log_warn(LOG, "%s: gpus[%u] is not an object", path, i);
        return RA_EBADMSG;
    }
    while (bson_iter_next(&f)) {
        const char *k = bson_iter_key(&f);
        const char *s = BSON_ITER_HOLDS_UTF8(&f) ? bson_iter_utf8(&f, NULL)
                                                  : NULL;
        int maj, min;
        char tail;

        if (strcmp(k, "name") == 0 && s != NULL && strlen(s) > 0
            && strlen(s) < sizeof(g->name)) {
            strcpy(g->name, s);
        } else if (strcmp(k, "pci") == 0 && s != NULL
                   && ra__topo_norm_busid(s, g->pci_bus_id,
                                          sizeof(g->pci_bus_id))
                          == 0) {
            // Stored by ra__topo_norm_busid, in the canonical spelling.
        } else if (strcmp(k, "memory_mib") == 0 && iter_int(&f, &v)
                   && v >= 0 && v <= (INT64_MAX >> 20)) {
            g->memory_bytes = (uint64_t)v << 20;
        } else if (strcmp(k, "cc") == 0 && s != NULL
                   && sscanf(s, "%d.%d%c", &maj, &min, &tail) == 2
                   && maj >= 0 && min >= 0) {
            g->cc_major = maj;
            g->cc_minor = min;
        } else if (strcmp(k, "numa") == 0 && iter_int(&f, &v) && v >= -1
                   && v < 4096) {
            g->numa_node = (int)v;
            have_numa = true;
        } else {
            ra_log_warn(LOG, "%s: gpus[%u].%s is missing a valid value "
                             "or unknown",
                        path, i, k);
            return RA_EBADMSG;
        }
    }
    if (g->name[0] == '\0') {
        ra_log_warn(LOG, "%s: gpus[%u] has no name", path, i);
        return RA_EBADMSG;
    }
    if (!have_numa && g->pci_bus_id[0] != '\0') {
        g->numa_node = ra__topo_pci_numa(t, g->pci_bus_id);
    }
    return 0;
}

static int
parse_gpus(ra_topo_t *t, const char *path, const bson_t *doc)
{
    bson_iter_t it, arr;
    unsigned n = 0;
    int rc;

    if (!bson_iter_init_find(&it, doc, "gpus")
        || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr)) {
        ra_log_warn(LOG, "%s: no \"gpus\" array", path);
        return RA_EBADMSG;
    }
    while (bson_iter_next(&arr)) {
        n++;
    }
    if (n > RA__MAX_GPUS) {
        ra_log_warn(LOG, "%s: %u GPUs, at most %u supported", path, n,
                    RA__MAX_GPUS);
        return RA_EBADMSG;
    }
    if ((rc = ra__topo_alloc_gpus(t, n)) != 0) {
        return rc;
    }
    bson_iter_recurse(&it, &arr);
    for (unsigned i = 0; bson_iter_next(&arr); i++) {
        if ((rc = parse_gpu(t, path, i, &arr)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int
parse_row(ra_topo_t *t, const char *path, unsigned a, bson_iter_t *it)
{
    bson_iter_t cell;
    unsigned b = 0;

    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &cell)) {
        ra_log_warn(LOG, "%s: links[%u] is not an array", path, a);
        return RA_EBADMSG;
    }
    for (; bson_iter_next(&cell); b++) {
        size_t k = (size_t)a * t->ngpus + b;
        const char *s;

        if (b >= t->ngpus) {
            b++;                    // too long: fail the count below
            break;
        }
        s = BSON_ITER_HOLDS_UTF8(&cell) ? bson_iter_utf8(&cell, NULL) : NULL;
        if (s == NULL || !parse_code(s, &t->code[k], &t->nvlinks[k])) {
            ra_log_warn(LOG, "%s: links[%u][%u] is not a link code", path,
                        a, b);
            return RA_EBADMSG;
        }
        if ((t->code[k] == RA__CODE_X) != (a == b)) {
            ra_log_warn(LOG, "%s: links[%u][%u] is %s; \"X\" belongs on the "
                             "diagonal only",
                        path, a, b, s);
            return RA_EBADMSG;
        }
    }
    if (b != t->ngpus) {
        ra_log_warn(LOG, "%s: links[%u] does not have %u entries", path, a,
                    t->ngpus);
        return RA_EBADMSG;
    }
    return 0;
}

static int
parse_links(ra_topo_t *t, const char *path, const bson_t *doc)
{
    bson_iter_t it, rows;
    unsigned a = 0;
    int rc;

    if (!bson_iter_init_find(&it, doc, "links")) {
        // A lone GPU has nothing to link; several GPUs without a matrix
        // would leave placement guessing.
        if (t->ngpus <= 1) {
            return 0;
        }
        ra_log_warn(LOG, "%s: no \"links\" matrix for %u GPUs", path,
                    t->ngpus);
        return RA_EBADMSG;
    }
    if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &rows)) {
        ra_log_warn(LOG, "%s: \"links\" is not an array", path);
        return RA_EBADMSG;
    }
    for (; bson_iter_next(&rows); a++) {
        if (a >= t->ngpus) {
            a++;                    // too many rows: fail the count below
            break;
        }
        if ((rc = parse_row(t, path, a, &rows)) != 0) {
            return rc;
        }
    }
    if (a != t->ngpus) {
        ra_log_warn(LOG, "%s: \"links\" does not have %u rows", path,
                    t->ngpus);
        return RA_EBADMSG;
    }
    for (a = 0; a < t->ngpus; a++) {
        for (unsigned b = a + 1; b < t->ngpus; b++) {
            size_t ab = (size_t)a * t->ngpus + b;
            size_t ba = (size_t)b * t->ngpus + a;

            if (t->code[ab] != t->code[ba]
                || t->nvlinks[ab] != t->nvlinks[ba]) {
                ra_log_warn(LOG, "%s: links[%u][%u] and links[%u][%u] "
                                 "differ",
                            path, a, b, b, a);
                return RA_EBADMSG;
            }
        }
    }
    return 0;
}

int
ra__topo_load_inventory(ra_topo_t *t, const char *path)
{
    bson_error_t err;
    bson_t *doc = NULL;
    bson_iter_t it;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if ((rc = read_file(path, &text, &len)) != 0) {
        goto done;
    }
    if ((doc = bson_new_from_json((const uint8_t *)text, (ssize_t)len,
                                  &err))
        == NULL) {
        ra_log_warn(LOG, "%s: not JSON: %s", path, err.message);
        rc = RA_EBADMSG;
        goto done;
    }
    // Unknown top-level keys are most likely typos ("link") that would
    // otherwise silently drop the matrix.
    bson_iter_init(&it, doc);
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);

        if (strcmp(k, "gpus") != 0 && strcmp(k, "links") != 0) {
            ra_log_warn(LOG, "%s: unknown key \"%s\"", path, k);
            rc = RA_EBADMSG;
            goto done;
        }
    }
    if ((rc = parse_gpus(t, path, doc)) != 0
        || (rc = parse_links(t, path, doc)) != 0) {
        goto done;
    }
done:
    // On failure ra_topo_load destroys t, tables and all.
    if (doc != NULL) {
        bson_destroy(doc);
    }
    free(text);
    return rc;
}

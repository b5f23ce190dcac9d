// place.c - placing placement-group bundles on nodes (ra_place_bundles)
// and the resource-set helpers of ra_place.h.
//
// A call first copies what it needs into dense arrays: one row of k
// doubles per alive node, for the k kinds of resource the group asks for
// (CPU, GPU, memory and each custom name some bundle asks for; the kinds
// nobody asks for are left out).  Everything after that is arithmetic on
// rows, with no names to compare and no dead nodes to skip, which is what
// keeps a decision on 1,000 nodes in the tens of microseconds.
//
// An attempt places the whole group on a copy of one base (the available
// amounts, then, if that fails, the totals) and changes only the copy, so
// the caller's nodes are never written and a failed attempt needs no undo.
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ra_error.h"
#include "ra_place.h"

// Amounts are doubles, and fractions such as 0.1 CPU do not add up
// exactly, so comparisons allow this much (see ra_place.h).
#define ABS_TOL 1e-9
#define REL_TOL 1e-12

// When PACK opens another node, it counts how many of the next
// PACK_WINDOW bundles each candidate could take.  A window keeps the cost
// of one opening at O(PACK_WINDOW n k) for groups of any size; a real
// group rarely has more bundles than that.
#define PACK_WINDOW 32

#define NONE SIZE_MAX

// ---------------------------------------------------------------------
// Resource sets.

static bool
le(double need, double have)
{
    return need <= have + ABS_TOL + REL_TOL * fabs(need);
}

// minus is have - need, made exactly 0 when it is within the tolerance
// of 0, so that used fractions give back a node that is exactly empty.
static double
minus(double have, double need)
{
    double x = have - need;

    return fabs(x) <= ABS_TOL + REL_TOL * fabs(need) ? 0 : x;
}

static bool
amount_ok(double x)
{
    return isfinite(x) && x >= 0;
}

// reserved tells whether name is one of the fields' names, which a custom
// resource may not take (ra_resources_set would never reach it).
static bool
reserved(const char *name)
{
    return strcmp(name, "CPU") == 0 || strcmp(name, "GPU") == 0 ||
           strcmp(name, "memory") == 0;
}

static bool
valid(const ra_resources_t *r)
{
    if (r->ncustom > RA_RES_CUSTOM_MAX || !amount_ok(r->cpus) ||
        !amount_ok(r->gpus) || !amount_ok(r->memory)) {
        return false;
    }
    for (size_t i = 0; i < r->ncustom; i++) {
        const char *name = r->custom[i].name;

        if (name[0] == '\0' || memchr(name, '\0', RA_RES_NAME_MAX) == NULL ||
            reserved(name) || !amount_ok(r->custom[i].amount)) {
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(r->custom[j].name, name) == 0) {
                return false;
            }
        }
    }
    return true;
}

// find returns the index of the custom resource called name in r, or -1.
// strncmp keeps a name that lacks its NUL from being read past its array.
static int
find(const ra_resources_t *r, const char *name)
{
    size_t n = r->ncustom < RA_RES_CUSTOM_MAX ? r->ncustom
                                              : RA_RES_CUSTOM_MAX;

    for (size_t i = 0; i < n; i++) {
        if (strncmp(r->custom[i].name, name, RA_RES_NAME_MAX) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int
ra_resources_set(ra_resources_t *r, const char *name, double amount)
{
    int i;

    if (r == NULL || name == NULL || name[0] == '\0' ||
        strlen(name) >= RA_RES_NAME_MAX || !amount_ok(amount) ||
        r->ncustom > RA_RES_CUSTOM_MAX) {
        return RA_EINVAL;
    }
    if (strcmp(name, "CPU") == 0) {
        r->cpus = amount;
        return 0;
    }
    if (strcmp(name, "GPU") == 0) {
        r->gpus = amount;
        return 0;
    }
    if (strcmp(name, "memory") == 0) {
        r->memory = amount;
        return 0;
    }
    i = find(r, name);
    if (i >= 0 && amount == 0) {
        r->ncustom--;
        memmove(&r->custom[i], &r->custom[i + 1],
                (r->ncustom - (size_t)i) * sizeof r->custom[0]);
        return 0;
    }
    if (i >= 0) {
        r->custom[i].amount = amount;
        return 0;
    }
    if (amount == 0) {
        return 0;
    }
    if (r->ncustom == RA_RES_CUSTOM_MAX) {
        return RA_EINVAL;
    }
    memset(r->custom[r->ncustom].name, 0, RA_RES_NAME_MAX);
    memcpy(r->custom[r->ncustom].name, name, strlen(name));
    r->custom[r->ncustom].amount = amount;
    r->ncustom++;
    return 0;
}

double
ra_resources_get(const ra_resources_t *r, const char *name)
{
    int i;

    if (r == NULL || name == NULL) {
        return 0;
    }
    if (strcmp(name, "CPU") == 0) {
        return r->cpus;
    }
    if (strcmp(name, "GPU") == 0) {
        return r->gpus;
    }
    if (strcmp(name, "memory") == 0) {
        return r->memory;
    }
    i = find(r, name);
    return i >= 0 ? r->custom[i].amount : 0;
}

bool
ra_resources_fit(const ra_resources_t *need, const ra_resources_t *have)
{
    size_t n;

    if (need == NULL || have == NULL) {
        return false;
    }
    if (!le(need->cpus, have->cpus) || !le(need->gpus, have->gpus) ||
        !le(need->memory, have->memory)) {
        return false;
    }
    n = need->ncustom < RA_RES_CUSTOM_MAX ? need->ncustom : RA_RES_CUSTOM_MAX;
    for (size_t i = 0; i < n; i++) {
        int j;

        if (need->custom[i].amount <= 0) {
            continue; // an amount of 0 is no need at all
        }
        j = find(have, need->custom[i].name);
        if (j < 0 || !le(need->custom[i].amount, have->custom[j].amount)) {
            return false;
        }
    }
    return true;
}

int
ra_resources_sub(ra_resources_t *have, const ra_resources_t *need)
{
    if (have == NULL || need == NULL || !valid(have) || !valid(need) ||
        !ra_resources_fit(need, have)) {
        return RA_EINVAL;
    }
    have->cpus = minus(have->cpus, need->cpus);
    have->gpus = minus(have->gpus, need->gpus);
    have->memory = minus(have->memory, need->memory);
    for (size_t i = 0; i < need->ncustom; i++) {
        int j = find(have, need->custom[i].name);

        if (j >= 0) {
            have->custom[j].amount =
                minus(have->custom[j].amount, need->custom[i].amount);
        }
    }
    return 0;
}

int
ra_resources_add(ra_resources_t *have, const ra_resources_t *more)
{
    size_t fresh = 0;

    if (have == NULL || more == NULL || !valid(have) || !valid(more)) {
        return RA_EINVAL;
    }
    // Count the new names first, so that a set without room for them is
    // left as it was.
    for (size_t i = 0; i < more->ncustom; i++) {
        if (more->custom[i].amount > 0 &&
            find(have, more->custom[i].name) < 0) {
            fresh++;
        }
    }
    if (have->ncustom + fresh > RA_RES_CUSTOM_MAX) {
        return RA_EINVAL;
    }
    have->cpus += more->cpus;
    have->gpus += more->gpus;
    have->memory += more->memory;
    for (size_t i = 0; i < more->ncustom; i++) {
        int j = find(have, more->custom[i].name);

        if (j >= 0) {
            have->custom[j].amount += more->custom[i].amount;
        } else if (more->custom[i].amount > 0) {
            have->custom[have->ncustom] = more->custom[i];
            have->ncustom++;
        }
    }
    return 0;
}

// ---------------------------------------------------------------------
// Strategies.

static const char *const strategy_names[] = {
    [RA_PG_PACK] = "PACK",
    [RA_PG_SPREAD] = "SPREAD",
    [RA_PG_STRICT_PACK] = "STRICT_PACK",
    [RA_PG_STRICT_SPREAD] = "STRICT_SPREAD",
};

#define NSTRATEGIES (sizeof strategy_names / sizeof strategy_names[0])

const char *
ra_pg_strategy_name(ra_pg_strategy_t s)
{
    return (unsigned)s < NSTRATEGIES ? strategy_names[s] : "?";
}

int
ra_pg_strategy_parse(const char *s, ra_pg_strategy_t *out)
{
    if (s == NULL || out == NULL) {
        return RA_EINVAL;
    }
    for (size_t i = 0; i < NSTRATEGIES; i++) {
        if (strcasecmp(s, strategy_names[i]) == 0) {
            *out = (ra_pg_strategy_t)i;
            return 0;
        }
    }
    return RA_EINVAL;
}

// ---------------------------------------------------------------------
// The dense copy.

enum { FIELD_CPU, FIELD_GPU, FIELD_MEMORY, FIELD_CUSTOM };

// kind_t is one kind of resource the group asks for.
typedef struct kind {
    int field;
    const char *name; // FIELD_CUSTOM: borrowed from a bundle
} kind_t;

static double
amount_of(const ra_resources_t *r, const kind_t *k)
{
    int i;

    switch (k->field) {
    case FIELD_CPU:
        return r->cpus;
    case FIELD_GPU:
        return r->gpus;
    case FIELD_MEMORY:
        return r->memory;
    default:
        i = find(r, k->name);
        return i >= 0 ? r->custom[i].amount : 0;
    }
}

// place_t is one decision.  Rows are alive nodes, in the caller's order;
// row-major arrays hold k doubles per row or per bundle.
typedef struct place {
    size_t n;          // alive nodes (rows)
    size_t k;          // kinds
    size_t nb;         // bundles
    size_t ncand;      // candidates kept per bundle for the matching
    kind_t *kinds;     // [k]
    size_t *node;      // [n] the caller's index of each row
    double *total;     // [n k]
    double *avail;     // [n k]
    double *inv;       // [n k] 1 / the row's total (see fill_rows)
    double *work;      // [n k] what one attempt has left
    double *need;      // [nb k]
    double *sum;       // [k] the whole group
    double *fill;      // [k] scratch for opening a node (PACK)
    size_t *order;     // [nb] bundles, larger first
    size_t *at;        // [nb] the row of each bundle, NONE while unplaced
    uint32_t *count;   // [n] bundles of the group on each row
    size_t *owner;     // [n] the bundle matched to each row, or NONE
    uint32_t *seen;    // [n] the last search that visited the row
    uint32_t stamp;
    size_t *cand;      // [nb ncand] each bundle's best rows, best first
    size_t *ncands;    // [nb]
    double *cscore;    // [ncand] their scores, while one list is built
    void *block;       // one allocation holding the arrays from total on
} place_t;

static void
place_fini(place_t *p)
{
    free(p->kinds);
    free(p->block);
}

// check_args validates everything and counts the alive nodes.
static int
check_args(const ra_place_node_t *nodes, size_t nnodes,
           const ra_resources_t *bundles, size_t nb,
           ra_pg_strategy_t strategy, const size_t *node_of, size_t *alive)
{
    if ((nodes == NULL && nnodes != 0) || bundles == NULL ||
        node_of == NULL || nb == 0 || nb > RA_PLACE_MAX_BUNDLES ||
        (unsigned)strategy >= NSTRATEGIES) {
        return RA_EINVAL;
    }
    for (size_t b = 0; b < nb; b++) {
        const ra_resources_t *r = &bundles[b];
        bool any = r->cpus > 0 || r->gpus > 0 || r->memory > 0;

        if (!valid(r)) {
            return RA_EINVAL;
        }
        for (size_t i = 0; i < r->ncustom; i++) {
            any = any || r->custom[i].amount > 0;
        }
        if (!any) {
            return RA_EINVAL;
        }
    }
    *alive = 0;
    for (size_t i = 0; i < nnodes; i++) {
        if (!valid(&nodes[i].total) || !valid(&nodes[i].avail)) {
            return RA_EINVAL;
        }
        *alive += nodes[i].alive ? 1 : 0;
    }
    return 0;
}

// collect_kinds lists the kinds some bundle asks for into p->kinds, which
// has room for 3 + RA_RES_CUSTOM_MAX nb.
static void
collect_kinds(place_t *p, const ra_resources_t *bundles)
{
    bool cpu = false, gpu = false, mem = false;

    for (size_t b = 0; b < p->nb; b++) {
        cpu = cpu || bundles[b].cpus > 0;
        gpu = gpu || bundles[b].gpus > 0;
        mem = mem || bundles[b].memory > 0;
    }
    p->k = 0;
    if (cpu) {
        p->kinds[p->k++] = (kind_t){FIELD_CPU, NULL};
    }
    if (gpu) {
        p->kinds[p->k++] = (kind_t){FIELD_GPU, NULL};
    }
    if (mem) {
        p->kinds[p->k++] = (kind_t){FIELD_MEMORY, NULL};
    }
    for (size_t b = 0; b < p->nb; b++) {
        for (size_t i = 0; i < bundles[b].ncustom; i++) {
            const char *name = bundles[b].custom[i].name;
            size_t j = 0;

            if (bundles[b].custom[i].amount <= 0) {
                continue;
            }
            while (j < p->k && (p->kinds[j].field != FIELD_CUSTOM ||
                                strcmp(p->kinds[j].name, name) != 0)) {
                j++;
            }
            if (j == p->k) {
                p->kinds[p->k++] = (kind_t){FIELD_CUSTOM, name};
            }
        }
    }
}

// carve returns the next count items of size bytes from *at, or NULL
// while only measuring (base NULL), and moves *at past them, 8-aligned.
static void *
carve(char *base, size_t *at, size_t count, size_t size)
{
    void *q = base != NULL ? base + *at : NULL;

    *at += (count * size + 7) & ~(size_t)7;
    return q;
}

// layout places the arrays in base (NULL: only measures) and returns the
// bytes they take.
static size_t
layout(place_t *p, char *base)
{
    size_t n = p->n, k = p->k, nb = p->nb, at = 0;

    p->total = carve(base, &at, n * k, sizeof *p->total);
    p->avail = carve(base, &at, n * k, sizeof *p->avail);
    p->inv = carve(base, &at, n * k, sizeof *p->inv);
    p->work = carve(base, &at, n * k, sizeof *p->work);
    p->need = carve(base, &at, nb * k, sizeof *p->need);
    p->sum = carve(base, &at, k, sizeof *p->sum);
    p->fill = carve(base, &at, k, sizeof *p->fill);
    p->cscore = carve(base, &at, p->ncand, sizeof *p->cscore);
    p->node = carve(base, &at, n, sizeof *p->node);
    p->order = carve(base, &at, nb, sizeof *p->order);
    p->at = carve(base, &at, nb, sizeof *p->at);
    p->owner = carve(base, &at, n, sizeof *p->owner);
    p->cand = carve(base, &at, nb * p->ncand, sizeof *p->cand);
    p->ncands = carve(base, &at, nb, sizeof *p->ncands);
    p->count = carve(base, &at, n, sizeof *p->count);
    p->seen = carve(base, &at, n, sizeof *p->seen);
    return at;
}

// place_alloc makes the arrays in one block: one allocation per call, and
// one that the allocator can keep for the next call.  Separate arrays of
// 10,000 rows each went to mmap and back, and the page faults of fresh
// pages cost more than the decision.
static int
place_alloc(place_t *p)
{
    // Far below SIZE_MAX, so that the products in layout cannot wrap.
    if (p->n > SIZE_MAX / 64 / p->k || p->nb > SIZE_MAX / 64 / p->ncand) {
        return RA_ENOMEM;
    }
    p->block = malloc(layout(p, NULL));
    if (p->block == NULL) {
        return RA_ENOMEM;
    }
    layout(p, p->block);
    p->sum = memset(p->sum, 0, p->k * sizeof *p->sum);
    return 0;
}

// fill_rows copies the alive nodes' amounts of each kind into rows.  The
// fractions of the best fit are taken over the larger of total and avail,
// so that a node reporting more free than it has cannot score below 0.
static void
fill_rows(place_t *p, const ra_place_node_t *nodes, size_t nnodes)
{
    size_t r = 0, k = p->k;

    for (size_t i = 0; i < nnodes; i++) {
        if (!nodes[i].alive) {
            continue;
        }
        p->node[r] = i;
        for (size_t j = 0; j < k; j++) {
            double t = amount_of(&nodes[i].total, &p->kinds[j]);
            double a = amount_of(&nodes[i].avail, &p->kinds[j]);
            double top = t > a ? t : a;

            p->total[r * k + j] = t;
            p->avail[r * k + j] = a;
            p->inv[r * k + j] = top > 0 ? 1 / top : 0;
        }
        r++;
    }
}

typedef struct size_key {
    double size;
    size_t b;
} size_key_t;

static int
cmp_size(const void *x, const void *y)
{
    const size_key_t *a = x, *b = y;

    if (a->size != b->size) {
        return a->size > b->size ? -1 : 1;
    }
    return (a->b > b->b) - (a->b < b->b);
}

// order_bundles copies the bundles' needs into rows and sorts them larger
// first.  A bundle's size is the sum of its amounts, each over the largest
// total of its kind, so that 1 GPU weighs as much as 8 CPUs on a cluster
// of 8-GPU, 64-CPU nodes.
static int
order_bundles(place_t *p, const ra_resources_t *bundles)
{
    size_t k = p->k;
    size_key_t *keys = malloc(p->nb * sizeof *keys);
    double *top = calloc(k, sizeof *top);

    if (keys == NULL || top == NULL) {
        free(keys);
        free(top);
        return RA_ENOMEM;
    }
    for (size_t i = 0; i < p->n * k; i++) {
        double t = p->total[i] > p->avail[i] ? p->total[i] : p->avail[i];

        top[i % k] = t > top[i % k] ? t : top[i % k];
    }
    for (size_t b = 0; b < p->nb; b++) {
        double size = 0;

        for (size_t j = 0; j < k; j++) {
            double x = amount_of(&bundles[b], &p->kinds[j]);

            p->need[b * k + j] = x;
            p->sum[j] += x;
            size += top[j] > 0 ? x / top[j] : x;
        }
        keys[b] = (size_key_t){size, b};
    }
    qsort(keys, p->nb, sizeof *keys, cmp_size);
    for (size_t i = 0; i < p->nb; i++) {
        p->order[i] = keys[i].b;
    }
    free(keys);
    free(top);
    return 0;
}

// ---------------------------------------------------------------------
// Choosing rows.

// score tells whether need fits row r of have and, if so, stores its best
// fit score: the leftover of each kind need asks for, as a fraction of the
// row's total, summed.  Lower is a better fit.
static bool
score(const place_t *p, const double *need, const double *have, size_t r,
      double *out)
{
    const double *h = have + r * p->k, *inv = p->inv + r * p->k;
    double s = 0;

    for (size_t j = 0; j < p->k; j++) {
        if (need[j] > 0) {
            if (!le(need[j], h[j])) {
                return false;
            }
            s += (h[j] - need[j]) * inv[j];
        }
    }
    *out = s;
    return true;
}

// How pick chooses among the rows that fit.
enum {
    PICK_BEST,   // the best fit
    PICK_USED,   // the best fit among rows the group already uses
    PICK_FEWEST  // the fewest bundles of the group, then the best fit
};

// pick returns the row for need on p->work by rule, or NONE.  Rows are
// scanned in order and a row replaces the choice only when strictly
// better, so ties go to the lowest index.
static size_t
pick(const place_t *p, const double *need, int rule)
{
    size_t best = NONE;
    uint32_t best_count = 0;
    double best_score = 0;

    for (size_t r = 0; r < p->n; r++) {
        double s;

        if (rule == PICK_USED && p->count[r] == 0) {
            continue;
        }
        if (rule == PICK_FEWEST && best != NONE &&
            p->count[r] > best_count) {
            continue;
        }
        if (!score(p, need, p->work, r, &s)) {
            continue;
        }
        if (best == NONE || (rule == PICK_FEWEST && p->count[r] < best_count)
            || s < best_score) {
            best = r;
            best_count = p->count[r];
            best_score = s;
        }
    }
    return best;
}

static void
reset(place_t *p, const double *base)
{
    memcpy(p->work, base, p->n * p->k * sizeof *p->work);
    memset(p->count, 0, p->n * sizeof *p->count);
    for (size_t b = 0; b < p->nb; b++) {
        p->at[b] = NONE;
    }
}

static void
put(place_t *p, size_t b, size_t r)
{
    double *w = p->work + r * p->k;
    const double *need = p->need + b * p->k;

    for (size_t j = 0; j < p->k; j++) {
        w[j] = minus(w[j], need[j]);
    }
    p->at[b] = r;
    p->count[r]++;
}

// greedy places each bundle not yet placed, larger first, on the row
// rule picks.
static bool
greedy(place_t *p, int rule)
{
    for (size_t i = 0; i < p->nb; i++) {
        size_t b = p->order[i], r;

        if (p->at[b] != NONE) {
            continue;
        }
        r = pick(p, p->need + b * p->k, rule);
        if (r == NONE) {
            return false;
        }
        put(p, b, r);
    }
    return true;
}

// ---------------------------------------------------------------------
// The strategies, each on p->work freshly reset to a base.

static bool
strict_pack(place_t *p)
{
    size_t r = pick(p, p->sum, PICK_BEST);

    if (r == NONE) {
        return false;
    }
    for (size_t b = 0; b < p->nb; b++) {
        put(p, b, r);
    }
    return true;
}

// open_row returns the unused row that can take the most of the bundles
// order[i], order[i + 1], ... (at most PACK_WINDOW of them, each taken if
// it fits what the earlier ones left, order[i] first and always), ties to
// the least leftover after them (the fractions over the group's kinds,
// summed), then the lowest index; or NONE.
static size_t
open_row(place_t *p, size_t i)
{
    size_t k = p->k, best = NONE, end = p->nb;
    unsigned best_n = 0;
    double best_left = 0;

    if (end - i > PACK_WINDOW) {
        end = i + PACK_WINDOW;
    }
    for (size_t r = 0; r < p->n; r++) {
        const double *inv = p->inv + r * k;
        unsigned taken = 0;
        double left = 0;

        if (p->count[r] != 0) {
            continue;
        }
        memcpy(p->fill, p->work + r * k, k * sizeof *p->fill);
        for (size_t q = i; q < end; q++) {
            const double *need = p->need + p->order[q] * k;
            bool fits = true;

            for (size_t j = 0; j < k && fits; j++) {
                fits = le(need[j], p->fill[j]);
            }
            if (!fits && q == i) {
                break;
            }
            if (fits) {
                for (size_t j = 0; j < k; j++) {
                    p->fill[j] = minus(p->fill[j], need[j]);
                }
                taken++;
            }
        }
        if (taken == 0) {
            continue;
        }
        for (size_t j = 0; j < k; j++) {
            left += p->fill[j] * inv[j];
        }
        if (best == NONE || taken > best_n ||
            (taken == best_n && left < best_left)) {
            best = r;
            best_n = taken;
            best_left = left;
        }
    }
    return best;
}

static bool
pack_greedy(place_t *p)
{
    for (size_t i = 0; i < p->nb; i++) {
        size_t b = p->order[i];
        size_t r = pick(p, p->need + b * p->k, PICK_USED);

        if (r == NONE) {
            r = open_row(p, i);
        }
        if (r == NONE) {
            return false;
        }
        put(p, b, r);
    }
    return true;
}

// candidates keeps in p->cand the p->ncand rows on which bundle b fits
// best, best first (ties: the lower row first).  A matching of bundles to
// distinct rows never needs more: if bundle b sits on a row outside its
// first nb, the other nb - 1 bundles leave one of those free for it.
static void
candidates(place_t *p, size_t b)
{
    const double *need = p->need + b * p->k;
    size_t *c = p->cand + b * p->ncand, m = 0;
    double *cs = p->cscore;

    for (size_t r = 0; r < p->n; r++) {
        double s;
        size_t j;

        if (!score(p, need, p->work, r, &s) ||
            (m == p->ncand && s >= cs[m - 1])) {
            continue;
        }
        j = m < p->ncand ? m++ : m - 1;
        for (; j > 0 && cs[j - 1] > s; j--) {
            cs[j] = cs[j - 1];
            c[j] = c[j - 1];
        }
        cs[j] = s;
        c[j] = r;
    }
    p->ncands[b] = m;
}

// augment finds a row for bundle b: a free candidate if there is one (so
// the matching is the greedy choice whenever that works), else one whose
// bundle can move to another row, recursively (Kuhn's augmenting path).
// The depth is at most nb.
static bool
augment(place_t *p, size_t b)
{
    const size_t *c = p->cand + b * p->ncand;

    for (size_t i = 0; i < p->ncands[b]; i++) {
        if (p->owner[c[i]] == NONE) {
            p->owner[c[i]] = b;
            p->at[b] = c[i];
            return true;
        }
    }
    for (size_t i = 0; i < p->ncands[b]; i++) {
        size_t r = c[i];

        if (p->seen[r] == p->stamp) {
            continue;
        }
        p->seen[r] = p->stamp;
        if (augment(p, p->owner[r])) {
            p->owner[r] = b;
            p->at[b] = r;
            return true;
        }
    }
    return false;
}

// match places as many bundles as it can on distinct rows of p->work (a
// maximum matching: a bundle for which no augmenting path exists now will
// never have one later in the same pass) and returns how many.
static size_t
match(place_t *p)
{
    size_t m = 0;

    for (size_t r = 0; r < p->n; r++) {
        p->owner[r] = NONE;
        p->seen[r] = 0;
    }
    p->stamp = 0;
    for (size_t b = 0; b < p->nb; b++) {
        candidates(p, b);
    }
    for (size_t i = 0; i < p->nb; i++) {
        p->stamp++;
        m += augment(p, p->order[i]) ? 1 : 0;
    }
    // Charge the matched bundles to their rows, for SPREAD's next step.
    for (size_t b = 0; b < p->nb; b++) {
        size_t r = p->at[b];

        if (r != NONE) {
            p->at[b] = NONE;
            put(p, b, r);
        }
    }
    return m;
}

static bool
pack(place_t *p, const double *base)
{
    if (strict_pack(p) || pack_greedy(p)) {
        return true;
    }
    reset(p, base);
    if (greedy(p, PICK_BEST)) {
        return true;
    }
    // The greedy choices can take the one node a later bundle needs (a
    // big CPU bundle on the only node with a custom resource); the
    // matching moves it.
    reset(p, base);
    return match(p) == p->nb || greedy(p, PICK_FEWEST);
}

static bool
spread(place_t *p, const double *base)
{
    if (match(p) == p->nb || greedy(p, PICK_FEWEST)) {
        return true;
    }
    reset(p, base);
    if (greedy(p, PICK_FEWEST)) {
        return true;
    }
    reset(p, base);
    if (greedy(p, PICK_BEST)) {
        return true;
    }
    reset(p, base);
    return pack_greedy(p);
}

static bool
attempt(place_t *p, ra_pg_strategy_t s, const double *base)
{
    reset(p, base);
    switch (s) {
    case RA_PG_STRICT_PACK:
        return strict_pack(p);
    case RA_PG_PACK:
        return pack(p, base);
    case RA_PG_STRICT_SPREAD:
        return match(p) == p->nb;
    default:
        return spread(p, base);
    }
}

int
ra_place_bundles(const ra_place_node_t *nodes, size_t nnodes,
                 const ra_resources_t *bundles, size_t nb,
                 ra_pg_strategy_t strategy, size_t *node_of)
{
    place_t p = {.nb = nb};
    int rc;

    rc = check_args(nodes, nnodes, bundles, nb, strategy, node_of, &p.n);
    if (rc != 0) {
        return rc;
    }
    if (p.n == 0) {
        return RA_EINFEASIBLE;
    }
    p.ncand = nb < p.n ? nb : p.n;
    p.kinds = malloc((3 + RA_RES_CUSTOM_MAX * nb) * sizeof *p.kinds);
    if (p.kinds == NULL) {
        rc = RA_ENOMEM;
        goto out;
    }
    collect_kinds(&p, bundles);
    if ((rc = place_alloc(&p)) != 0) {
        goto out;
    }
    fill_rows(&p, nodes, nnodes);
    if ((rc = order_bundles(&p, bundles)) != 0) {
        goto out;
    }
    if (attempt(&p, strategy, p.avail)) {
        for (size_t b = 0; b < nb; b++) {
            node_of[b] = p.node[p.at[b]];
        }
        rc = 0;
    } else if (attempt(&p, strategy, p.total)) {
        rc = RA_EAGAIN;
    } else {
        rc = RA_EINFEASIBLE;
    }
out:
    place_fini(&p);
    return rc;
}

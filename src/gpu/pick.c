// pick.c - choosing a set of GPUs (ra_topo_pick_gpus).
//
// The score is a tuple compared field by field (see ra_topo.h).  A machine
// has at most a few dozen GPUs and a request is small, so the search is
// exhaustive whenever the number of combinations is modest (C(16,8) is
// 12870); only beyond that does it fall back to a greedy build, which is
// good but not guaranteed best.
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "gpu_impl.h"
#include "ra_error.h"

// Above this many combinations the greedy search takes over.
#define MAX_COMBOS 2000000u

typedef struct score {
    int worst;               // worst pair link, lower is better
    unsigned nworst;         // pairs at that link, fewer is better
    unsigned spread;         // distinct NUMA nodes, fewer is better
    unsigned nvl;            // NVLinks summed over pairs, more is better
} score_t;

static score_t
score_of(const ra_topo_t *t, const unsigned *set, unsigned k)
{
    score_t s = {RA_LINK_SELF, 0, 0, 0};

    for (unsigned i = 0; i < k; i++) {
        bool seen = false;

        for (unsigned j = 0; j < i; j++) {
            seen = seen || t->gpus[set[j]].numa_node
                               == t->gpus[set[i]].numa_node;
        }
        s.spread += seen ? 0 : 1;
        for (unsigned j = i + 1; j < k; j++) {
            int l = (int)ra_topo_gpu_link(t, set[i], set[j]);

            s.nvl += ra_topo_gpu_nvlinks(t, set[i], set[j]);
            if (l > s.worst) {
                s.worst = l;
                s.nworst = 0;
            }
            s.nworst += l == s.worst ? 1 : 0;
        }
    }
    return s;
}

// better tells whether a beats b.  Equal scores are not better, so the
// first set found in ascending order (the lowest indices) is kept.
static bool
better(score_t a, score_t b)
{
    if (a.worst != b.worst) {
        return a.worst < b.worst;
    }
    if (a.nworst != b.nworst) {
        return a.nworst < b.nworst;
    }
    if (a.spread != b.spread) {
        return a.spread < b.spread;
    }
    return a.nvl > b.nvl;
}

static uint64_t
combos(unsigned n, unsigned k)
{
    uint64_t c = 1;

    // C(n, i) = C(n, i-1) * (n-i+1) / i stays exact at every step.
    for (unsigned i = 1; i <= k; i++) {
        c = c * (n - k + i) / i;
        if (c > MAX_COMBOS) {
            return (uint64_t)MAX_COMBOS + 1;
        }
    }
    return c;
}

static void
exhaustive(const ra_topo_t *t, const unsigned *av, unsigned m, unsigned k,
           unsigned *best)
{
    unsigned pos[RA__MAX_GPUS], set[RA__MAX_GPUS];
    score_t top = {0};
    bool have = false;

    for (unsigned i = 0; i < k; i++) {
        pos[i] = i;
    }
    for (;;) {
        score_t s;
        int i;

        for (unsigned j = 0; j < k; j++) {
            set[j] = av[pos[j]];
        }
        s = score_of(t, set, k);
        if (!have || better(s, top)) {
            top = s;
            have = true;
            memcpy(best, set, k * sizeof(*set));
        }
        // Next combination in lexicographic order.
        for (i = (int)k - 1; i >= 0 && pos[i] == m - k + (unsigned)i; i--) {
        }
        if (i < 0) {
            return;
        }
        pos[i]++;
        for (unsigned j = (unsigned)i + 1; j < k; j++) {
            pos[j] = pos[j - 1] + 1;
        }
    }
}

static void
greedy(const ra_topo_t *t, const unsigned *av, unsigned m, unsigned k,
       unsigned *best)
{
    bool used[RA__MAX_GPUS] = {false};
    unsigned have = 0;

    // Seed with the best pair (k >= 2 here: k = 1 is always exhaustive),
    // then add whichever GPU keeps the set's score best.
    exhaustive(t, av, m, 2, best);
    for (unsigned i = 0; i < m; i++) {
        used[i] = av[i] == best[0] || av[i] == best[1];
    }
    for (have = 2; have < k; have++) {
        score_t top = {0};
        unsigned pick = 0;
        bool found = false;

        for (unsigned i = 0; i < m; i++) {
            score_t s;

            if (used[i]) {
                continue;
            }
            best[have] = av[i];
            s = score_of(t, best, have + 1);
            if (!found || better(s, top)) {
                top = s;
                pick = i;
                found = true;
            }
        }
        used[pick] = true;
        best[have] = av[pick];
    }
    // Ascending order, as the API promises.
    for (unsigned i = 1; i < k; i++) {
        for (unsigned j = i; j > 0 && best[j - 1] > best[j]; j--) {
            unsigned x = best[j];

            best[j] = best[j - 1];
            best[j - 1] = x;
        }
    }
}

static int
majority_numa(const ra_topo_t *t, const unsigned *set, unsigned k)
{
    int numa = -1;
    unsigned most = 0;

    for (unsigned i = 0; i < k; i++) {
        int n = t->gpus[set[i]].numa_node;
        unsigned c = 0;

        for (unsigned j = 0; j < k; j++) {
            c += t->gpus[set[j]].numa_node == n ? 1 : 0;
        }
        // Ties go to the lowest node, so the answer does not depend on
        // the order of the set.
        if (n >= 0 && (c > most || (c == most && n < numa))) {
            most = c;
            numa = n;
        }
    }
    return numa;
}

int
ra_topo_pick_gpus(const ra_topo_t *t, unsigned want, const bool *avail,
                  unsigned *out, int *numa)
{
    unsigned av[RA__MAX_GPUS];
    unsigned m = 0;

    if (t == NULL || out == NULL || want == 0) {
        return RA_EINVAL;
    }
    for (unsigned i = 0; i < t->ngpus && m < RA__MAX_GPUS; i++) {
        if (avail == NULL || avail[i]) {
            av[m++] = i;
        }
    }
    if (want > m) {
        return RA_EAGAIN;
    }
    if (combos(m, want) <= MAX_COMBOS) {
        exhaustive(t, av, m, want, out);
    } else {
        greedy(t, av, m, want, out);
    }
    if (numa != NULL) {
        *numa = majority_numa(t, out, want);
    }
    return 0;
}

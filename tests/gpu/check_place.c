// check_place.c - tests of placement-group placement (ra_place.h):
// resource sets, strategy names, each strategy on small clusters with the
// exact answer, the errors, and a randomised property test.
//
// One Suite, "place".  Clusters are built by hand with node(); in the
// comments "8c" is a node of 8 CPUs, "4c1g" one of 4 CPUs and 1 GPU.  The
// expected answers follow from the best-fit score of ra_place.h: the
// leftover of each kind a bundle asks for over the node's total, summed,
// lowest wins, ties to the lowest index.
//
// The property test draws small clusters (at most 5 nodes, 4 bundles) so
// that a depth-first search can decide exactly whether any assignment
// exists, and checks every answer against it.
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rayo.h"
#include "testutil.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MAXN 16

// ---- helpers ---------------------------------------------------------------

static ra_place_node_t
node(double cpus, double gpus)
{
    static uint32_t next_id = 100;
    ra_place_node_t n = {.id = next_id++, .alive = true};

    n.total.cpus = cpus;
    n.total.gpus = gpus;
    n.total.memory = 64 * GIB;
    n.avail = n.total;
    return n;
}

static ra_resources_t
res(double cpus, double gpus)
{
    ra_resources_t r = {.cpus = cpus, .gpus = gpus};

    return r;
}

static void
set_both(ra_place_node_t *n, const char *name, double amount)
{
    RA_CK_OK(ra_resources_set(&n->total, name, amount));
    RA_CK_OK(ra_resources_set(&n->avail, name, amount));
}

// place runs ra_place_bundles and checks that it left the nodes alone.
static int
place(const ra_place_node_t *nodes, size_t n, const ra_resources_t *b,
      size_t nb, ra_pg_strategy_t s, size_t *out)
{
    ra_place_node_t copy[MAXN];
    int rc;

    ck_assert_uint_le(n, MAXN);
    if (n == 0) {
        return ra_place_bundles(nodes, n, b, nb, s, out);
    }
    memcpy(copy, nodes, n * sizeof *nodes);
    rc = ra_place_bundles(nodes, n, b, nb, s, out);
    ck_assert_msg(memcmp(copy, nodes, n * sizeof *nodes) == 0,
                  "ra_place_bundles changed the nodes");
    return rc;
}

// expect asserts that place succeeds with exactly the answer want.
static void
expect(const ra_place_node_t *nodes, size_t n, const ra_resources_t *b,
       size_t nb, ra_pg_strategy_t s, const size_t *want)
{
    size_t got[RA_PLACE_MAX_BUNDLES];
    char gs[256] = "", ws[256] = "";

    RA_CK_OK(place(nodes, n, b, nb, s, got));
    for (size_t i = 0; i < nb; i++) {
        snprintf(gs + strlen(gs), sizeof gs - strlen(gs), " %zu", got[i]);
        snprintf(ws + strlen(ws), sizeof ws - strlen(ws), " %zu", want[i]);
    }
    ck_assert_msg(strcmp(gs, ws) == 0, "%s placed bundles on [%s ], "
                  "expected [%s ]", ra_pg_strategy_name(s), gs, ws);
}

// ---- resource sets ---------------------------------------------------------

START_TEST(test_place_resources_set_get)
{
    ra_resources_t r = {0};
    char long_name[RA_RES_NAME_MAX + 1];

    RA_CK_OK(ra_resources_set(&r, "CPU", 4));
    RA_CK_OK(ra_resources_set(&r, "GPU", 0.5));
    RA_CK_OK(ra_resources_set(&r, "memory", GIB));
    RA_CK_OK(ra_resources_set(&r, "ssd", 2));
    RA_CK_OK(ra_resources_set(&r, "accelerator_type:A100", 1));
    ck_assert(r.cpus == 4 && r.gpus == 0.5 && r.memory == GIB);
    ck_assert_uint_eq(r.ncustom, 2);
    ck_assert(ra_resources_get(&r, "CPU") == 4);
    ck_assert(ra_resources_get(&r, "GPU") == 0.5);
    ck_assert(ra_resources_get(&r, "memory") == GIB);
    ck_assert(ra_resources_get(&r, "ssd") == 2);
    ck_assert(ra_resources_get(&r, "accelerator_type:A100") == 1);
    ck_assert(ra_resources_get(&r, "tpu") == 0);
    RA_CK_OK(ra_resources_set(&r, "ssd", 3)); // replaces, adds nothing
    ck_assert_uint_eq(r.ncustom, 2);
    ck_assert(ra_resources_get(&r, "ssd") == 3);
    RA_CK_OK(ra_resources_set(&r, "ssd", 0)); // 0 removes
    ck_assert_uint_eq(r.ncustom, 1);
    ck_assert_str_eq(r.custom[0].name, "accelerator_type:A100");

    memset(long_name, 'x', RA_RES_NAME_MAX);
    long_name[RA_RES_NAME_MAX] = '\0';
    RA_CK_ERR(ra_resources_set(&r, long_name, 1), RA_EINVAL);
    long_name[RA_RES_NAME_MAX - 1] = '\0'; // 31 bytes: the longest
    RA_CK_OK(ra_resources_set(&r, long_name, 1));
    RA_CK_ERR(ra_resources_set(&r, "", 1), RA_EINVAL);
    RA_CK_ERR(ra_resources_set(&r, NULL, 1), RA_EINVAL);
    RA_CK_ERR(ra_resources_set(NULL, "CPU", 1), RA_EINVAL);
    RA_CK_ERR(ra_resources_set(&r, "CPU", -1), RA_EINVAL);
    RA_CK_ERR(ra_resources_set(&r, "CPU", NAN), RA_EINVAL);
    RA_CK_ERR(ra_resources_set(&r, "CPU", INFINITY), RA_EINVAL);
    ck_assert(r.cpus == 4); // unchanged by the failures
    ck_assert(ra_resources_get(NULL, "CPU") == 0);
}
END_TEST

START_TEST(test_place_resources_set_full)
{
    ra_resources_t r = {0};
    char name[16];

    for (int i = 0; i < RA_RES_CUSTOM_MAX; i++) {
        snprintf(name, sizeof name, "r%d", i);
        RA_CK_OK(ra_resources_set(&r, name, i + 1));
    }
    RA_CK_ERR(ra_resources_set(&r, "one_more", 1), RA_EINVAL);
    RA_CK_OK(ra_resources_set(&r, "r3", 9)); // an existing one still works
    RA_CK_OK(ra_resources_set(&r, "one_more", 0)); // removing nothing
    ck_assert_uint_eq(r.ncustom, RA_RES_CUSTOM_MAX);
}
END_TEST

START_TEST(test_place_resources_fit)
{
    ra_resources_t have = res(4, 1), need = res(4, 1);

    RA_CK_OK(ra_resources_set(&have, "ssd", 1));
    ck_assert(ra_resources_fit(&need, &have));
    need.cpus = 4.5;
    ck_assert(!ra_resources_fit(&need, &have));
    need = res(1, 0);
    RA_CK_OK(ra_resources_set(&need, "ssd", 1));
    ck_assert(ra_resources_fit(&need, &have));
    // A custom resource the node lacks does not fit, not even a little.
    RA_CK_OK(ra_resources_set(&need, "tpu", 0.25));
    ck_assert(!ra_resources_fit(&need, &have));
    // An amount of 0 is no need at all.
    need.custom[1].amount = 0;
    ck_assert(ra_resources_fit(&need, &have));
    ck_assert(!ra_resources_fit(NULL, &have));
    ck_assert(!ra_resources_fit(&need, NULL));
}
END_TEST

START_TEST(test_place_resources_sub_add)
{
    ra_resources_t have = res(0.3, 1), tenth = res(0.1, 0);
    ra_resources_t fifth = res(0.2, 0), half_gpu = res(0, 0.5);
    ra_resources_t ssd = {0}, before;

    // 0.1 + 0.2 of a CPU fit in 0.3, and taking them leaves exactly 0.
    ck_assert(0.1 + 0.2 > 0.3); // why a tolerance is needed at all
    RA_CK_OK(ra_resources_sub(&have, &tenth));
    RA_CK_OK(ra_resources_sub(&have, &fifth));
    ck_assert(have.cpus == 0);
    RA_CK_OK(ra_resources_sub(&have, &half_gpu));
    RA_CK_OK(ra_resources_sub(&have, &half_gpu));
    ck_assert(have.gpus == 0);
    before = have;
    RA_CK_ERR(ra_resources_sub(&have, &half_gpu), RA_EINVAL);
    ck_assert(memcmp(&before, &have, sizeof have) == 0);

    // add brings a custom resource the set lacked; sub keeps it at 0.
    RA_CK_OK(ra_resources_set(&ssd, "ssd", 2));
    RA_CK_OK(ra_resources_add(&have, &ssd));
    ck_assert(ra_resources_get(&have, "ssd") == 2);
    RA_CK_OK(ra_resources_add(&have, &ssd));
    ck_assert(ra_resources_get(&have, "ssd") == 4);
    RA_CK_OK(ra_resources_add(&have, &tenth));
    ck_assert(have.cpus == 0.1);
    ssd.custom[0].amount = 4;
    RA_CK_OK(ra_resources_sub(&have, &ssd));
    ck_assert_uint_eq(have.ncustom, 1);
    ck_assert(ra_resources_get(&have, "ssd") == 0);

    RA_CK_ERR(ra_resources_sub(NULL, &ssd), RA_EINVAL);
    RA_CK_ERR(ra_resources_add(&have, NULL), RA_EINVAL);
    ssd.cpus = -1;
    RA_CK_ERR(ra_resources_add(&have, &ssd), RA_EINVAL);
}
END_TEST

START_TEST(test_place_resources_add_no_room)
{
    ra_resources_t have = {0}, more = {0}, before;
    char name[16];

    for (int i = 0; i < RA_RES_CUSTOM_MAX; i++) {
        snprintf(name, sizeof name, "r%d", i);
        RA_CK_OK(ra_resources_set(&have, name, 1));
    }
    RA_CK_OK(ra_resources_set(&more, "r0", 1));
    RA_CK_OK(ra_resources_set(&more, "new", 1));
    more.cpus = 1;
    before = have;
    RA_CK_ERR(ra_resources_add(&have, &more), RA_EINVAL);
    ck_assert(memcmp(&before, &have, sizeof have) == 0);
}
END_TEST

// ---- strategy names --------------------------------------------------------

START_TEST(test_place_strategy_names)
{
    static const char *const names[] = {"PACK", "SPREAD", "STRICT_PACK",
                                        "STRICT_SPREAD"};
    ra_pg_strategy_t s = RA_PG_PACK;

    for (int i = 0; i < 4; i++) {
        ck_assert_str_eq(ra_pg_strategy_name((ra_pg_strategy_t)i),
                         names[i]);
        RA_CK_OK(ra_pg_strategy_parse(names[i], &s));
        ck_assert_int_eq(s, i);
    }
    ck_assert_str_eq(ra_pg_strategy_name((ra_pg_strategy_t)7), "?");
    RA_CK_OK(ra_pg_strategy_parse("strict_spread", &s));
    ck_assert_int_eq(s, RA_PG_STRICT_SPREAD);
    RA_CK_OK(ra_pg_strategy_parse("Pack", &s));
    ck_assert_int_eq(s, RA_PG_PACK);
    RA_CK_ERR(ra_pg_strategy_parse("STRICT-PACK", &s), RA_EINVAL);
    RA_CK_ERR(ra_pg_strategy_parse("", &s), RA_EINVAL);
    RA_CK_ERR(ra_pg_strategy_parse("PACKED", &s), RA_EINVAL);
    RA_CK_ERR(ra_pg_strategy_parse(NULL, &s), RA_EINVAL);
    RA_CK_ERR(ra_pg_strategy_parse("PACK", NULL), RA_EINVAL);
}
END_TEST

// ---- STRICT_PACK -----------------------------------------------------------

START_TEST(test_place_strict_pack_best_fit)
{
    // 8c, 16c, 4c; two bundles of 2: the sum 4 leaves 4/8, 12/16 and 0/4.
    ra_place_node_t n[] = {node(8, 0), node(16, 0), node(4, 0)};
    ra_resources_t b[] = {res(2, 0), res(2, 0)};

    expect(n, 3, b, 2, RA_PG_STRICT_PACK, (size_t[]){2, 2});
    // With 3 CPUs free on the small node, the 8c node fits best.
    n[2].avail.cpus = 3;
    expect(n, 3, b, 2, RA_PG_STRICT_PACK, (size_t[]){0, 0});
}
END_TEST

START_TEST(test_place_strict_pack_eagain_einfeasible)
{
    ra_place_node_t n[] = {node(8, 0), node(16, 0)};
    ra_resources_t b[] = {res(4, 0), res(4, 0), res(4, 0)};
    size_t out[3] = {99, 99, 99};

    // 12 CPUs: only the 16c node, which has 4 free: wait.
    n[1].avail.cpus = 4;
    RA_CK_ERR(place(n, 2, b, 3, RA_PG_STRICT_PACK, out), RA_EAGAIN);
    ck_assert_uint_eq(out[0], 99); // written only on success
    // 3 x 8 = 24 is more than any node has, though each bundle fits.
    for (int i = 0; i < 3; i++) {
        b[i].cpus = 8;
    }
    RA_CK_ERR(place(n, 2, b, 3, RA_PG_STRICT_PACK, out), RA_EINFEASIBLE);
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_STRICT_PACK, out), RA_EAGAIN);
}
END_TEST

// ---- PACK ------------------------------------------------------------------

START_TEST(test_place_pack_one_node)
{
    ra_place_node_t n[] = {node(8, 0), node(16, 0), node(4, 0)};
    ra_resources_t b[] = {res(1, 0), res(2, 0), res(1, 0)};

    expect(n, 3, b, 3, RA_PG_PACK, (size_t[]){2, 2, 2});
}
END_TEST

START_TEST(test_place_pack_falls_back_to_several_nodes)
{
    // 4c, 12c, 8c; four bundles of 4 (16 CPUs: no node holds them all).
    // The 12c node takes the most (3), then the fourth goes where it
    // leaves least: 4c (0/4 left) beats 8c (4/8).
    ra_place_node_t n[] = {node(4, 0), node(12, 0), node(8, 0)};
    ra_resources_t b[] = {res(4, 0), res(4, 0), res(4, 0), res(4, 0)};

    expect(n, 3, b, 4, RA_PG_PACK, (size_t[]){1, 1, 1, 0});
    // 8c, 8c, 4c: two nodes, the first two bundles on the first.
    n[0] = node(8, 0);
    n[1] = node(8, 0);
    n[2] = node(4, 0);
    expect(n, 3, b, 4, RA_PG_PACK, (size_t[]){0, 0, 1, 1});
}
END_TEST

START_TEST(test_place_larger_bundles_first)
{
    // 6c, 10c.  The 6 goes first and takes the 6c node (0 left), the 2
    // the other.  In the given order the 2 would have taken the 6c node
    // (4/6 left beats 8/10) and left the 6 the 10c one.
    ra_place_node_t n[] = {node(6, 0), node(10, 0)};
    ra_resources_t b[] = {res(2, 0), res(6, 0), res(3, 0)};

    expect(n, 2, b, 2, RA_PG_STRICT_SPREAD, (size_t[]){1, 0});
    expect(n, 2, b, 2, RA_PG_SPREAD, (size_t[]){1, 0});
    // PACK (11 CPUs: no one node): the 10c node can take two of them (6
    // and 3), the 6c node one, so the 10c opens first; the 2 no longer
    // fits there and opens the 6c node.
    expect(n, 2, b, 3, RA_PG_PACK, (size_t[]){0, 1, 1});
}
END_TEST

START_TEST(test_place_pack_needs_the_matching)
{
    // 8c with "ssd", 16c.  On CPUs alone the 8-CPU bundle fits 8c best,
    // but the small one needs the ssd.  Opening a node counts what is
    // left of every kind the group asks for, ssd included, so the big
    // bundle leaves the ssd node alone.
    ra_place_node_t n[] = {node(8, 0), node(16, 0)};
    ra_resources_t b[] = {res(8, 0), res(1, 0)};

    set_both(&n[0], "ssd", 100);
    RA_CK_OK(ra_resources_set(&b[1], "ssd", 1));
    expect(n, 2, b, 2, RA_PG_PACK, (size_t[]){1, 0});
}
END_TEST

// ---- STRICT_SPREAD ---------------------------------------------------------

START_TEST(test_place_strict_spread_distinct)
{
    // Bundles of 2 leave 6/8, 14/16 and 2/4: 4c, then 8c, then 16c.
    ra_place_node_t n[] = {node(8, 0), node(16, 0), node(4, 0)};
    ra_resources_t b[] = {res(2, 0), res(2, 0), res(2, 0)};

    expect(n, 3, b, 3, RA_PG_STRICT_SPREAD, (size_t[]){2, 0, 1});
    expect(n, 3, b, 1, RA_PG_STRICT_SPREAD, (size_t[]){2});
}
END_TEST

START_TEST(test_place_strict_spread_too_many_bundles)
{
    ra_place_node_t n[] = {node(8, 0), node(16, 0), node(4, 0), node(64, 0)};
    ra_resources_t b[] = {res(1, 0), res(1, 0), res(1, 0), res(1, 0)};
    size_t out[4];

    RA_CK_ERR(place(n, 3, b, 4, RA_PG_STRICT_SPREAD, out), RA_EINFEASIBLE);
    // A fourth node that is dead is no node.
    n[3].alive = false;
    RA_CK_ERR(place(n, 4, b, 4, RA_PG_STRICT_SPREAD, out), RA_EINFEASIBLE);
    // Nor is one too small for any bundle.
    n[3] = node(0.5, 0);
    RA_CK_ERR(place(n, 4, b, 4, RA_PG_STRICT_SPREAD, out), RA_EINFEASIBLE);
    // A busy one would do, later.
    n[3] = node(2, 0);
    n[3].avail.cpus = 0;
    RA_CK_ERR(place(n, 4, b, 4, RA_PG_STRICT_SPREAD, out), RA_EAGAIN);
    n[3].avail.cpus = 1;
    expect(n, 4, b, 4, RA_PG_STRICT_SPREAD, (size_t[]){3, 2, 0, 1});
}
END_TEST

START_TEST(test_place_strict_spread_greedy_fails_matching_works)
{
    // 8c with "ssd", 16c.  The 8-CPU bundle is larger, goes first and
    // fits 8c best (0 left against 8/16); the small one fits only 8c.
    // Greedy would fail; the augmenting path moves the big one.
    ra_place_node_t n[] = {node(8, 0), node(16, 0)};
    ra_resources_t b[] = {res(8, 0), res(1, 0)};

    set_both(&n[0], "ssd", 100);
    RA_CK_OK(ra_resources_set(&b[1], "ssd", 1));
    expect(n, 2, b, 2, RA_PG_STRICT_SPREAD, (size_t[]){1, 0});
    expect(n, 2, b, 2, RA_PG_SPREAD, (size_t[]){1, 0});
}
END_TEST

START_TEST(test_place_strict_spread_long_augmenting_path)
{
    // A chain: bundle i (larger first) fits nodes i and i+1 and prefers
    // node i; the last bundle fits only node 0.  Every bundle must move
    // one node along.
    // A chain: bundle i < 5 (8 - i CPUs and 1 "k<i>", larger first)
    // fits nodes i and i + 1, which tie, so the greedy choice is node i;
    // the last and smallest bundle needs "z", which only node 0 has.
    // Every bundle must move one node along.
    enum { N = 6 };
    ra_place_node_t n[N];
    ra_resources_t b[N];
    size_t want[N];
    char name[16];

    for (int i = 0; i < N; i++) {
        n[i] = node(8, 0);
        b[i] = res(i < N - 1 ? 8 - i : 0.5, 0);
        want[i] = (size_t)(i + 1) % N;
    }
    set_both(&n[0], "z", 1);
    RA_CK_OK(ra_resources_set(&b[N - 1], "z", 1));
    for (int i = 0; i < N - 1; i++) {
        snprintf(name, sizeof name, "k%d", i);
        set_both(&n[i], name, 1);
        set_both(&n[i + 1], name, 1);
        RA_CK_OK(ra_resources_set(&b[i], name, 1));
    }
    expect(n, N, b, N, RA_PG_STRICT_SPREAD, want);
    expect(n, N, b, N, RA_PG_SPREAD, want);
}
END_TEST

// ---- SPREAD ----------------------------------------------------------------

START_TEST(test_place_spread_distinct_when_possible)
{
    ra_place_node_t n[] = {node(8, 0), node(16, 0), node(4, 0)};
    ra_resources_t b[] = {res(2, 0), res(2, 0), res(2, 0)};

    expect(n, 3, b, 3, RA_PG_SPREAD, (size_t[]){2, 0, 1});
}
END_TEST

START_TEST(test_place_spread_reuses_nodes)
{
    // Two nodes, three and then four bundles: as even as possible, ties
    // to the lower node.
    ra_place_node_t n[] = {node(8, 0), node(8, 0)};
    ra_resources_t b[] = {res(2, 0), res(2, 0), res(2, 0), res(2, 0)};
    size_t out[4];

    expect(n, 2, b, 3, RA_PG_SPREAD, (size_t[]){0, 1, 0});
    expect(n, 2, b, 4, RA_PG_SPREAD, (size_t[]){0, 1, 0, 1});
    // One node: all on it.
    expect(n, 1, b, 4, RA_PG_SPREAD, (size_t[]){0, 0, 0, 0});
    // STRICT_SPREAD refuses what SPREAD does.
    RA_CK_ERR(place(n, 2, b, 3, RA_PG_STRICT_SPREAD, out), RA_EINFEASIBLE);
}
END_TEST

START_TEST(test_place_spread_uneven_nodes)
{
    // 16c and 2c, three bundles of 2: one on each, then the third where
    // there is room (16c), not on the full one.
    ra_place_node_t n[] = {node(16, 0), node(2, 0)};
    ra_resources_t b[] = {res(2, 0), res(2, 0), res(2, 0)};

    expect(n, 2, b, 3, RA_PG_SPREAD, (size_t[]){1, 0, 0});
}
END_TEST

// ---- errors ----------------------------------------------------------------

START_TEST(test_place_busy_eagain_too_big_einfeasible)
{
    ra_place_node_t n[] = {node(8, 1), node(16, 0)};
    ra_resources_t b[] = {res(4, 0), res(4, 0)};
    size_t out[2];

    n[0].avail.cpus = 2;
    n[1].avail.cpus = 2;
    for (int s = 0; s < 4; s++) {
        RA_CK_ERR(place(n, 2, b, 2, (ra_pg_strategy_t)s, out), RA_EAGAIN);
    }
    // Larger than every node, for every strategy.
    b[0].cpus = 17;
    for (int s = 0; s < 4; s++) {
        RA_CK_ERR(place(n, 2, b, 2, (ra_pg_strategy_t)s, out),
                  RA_EINFEASIBLE);
    }
    // A GPU bundle fits only the GPU node: busy there is EAGAIN.
    b[0] = res(1, 1);
    n[0].avail.gpus = 0;
    RA_CK_ERR(place(n, 2, b, 1, RA_PG_PACK, out), RA_EAGAIN);
    b[0].gpus = 2;
    RA_CK_ERR(place(n, 2, b, 1, RA_PG_PACK, out), RA_EINFEASIBLE);
    // 2 x 7 CPUs would fit the idle 16c node: wait.  2 x 9: each fits
    // the 16c node, but not both, and neither fits 8c: never.
    b[0] = res(7, 0);
    b[1] = res(7, 0);
    for (int s = 0; s < 4; s++) {
        RA_CK_ERR(place(n, 2, b, 2, (ra_pg_strategy_t)s, out), RA_EAGAIN);
    }
    b[0].cpus = b[1].cpus = 9;
    for (int s = 0; s < 4; s++) {
        RA_CK_ERR(place(n, 2, b, 2, (ra_pg_strategy_t)s, out),
                  RA_EINFEASIBLE);
    }
}
END_TEST

START_TEST(test_place_dead_nodes_get_nothing)
{
    // The 4c node fits best but is dead; so is the 16c one.
    ra_place_node_t n[] = {node(4, 0), node(8, 0), node(16, 0)};
    ra_resources_t b[] = {res(2, 0), res(2, 0)};
    size_t out[2];

    n[0].alive = false;
    for (int s = 0; s < 4; s++) {
        size_t want_spread[] = {1, 2};
        size_t want_pack[] = {1, 1};

        expect(n, 3, b, 2, (ra_pg_strategy_t)s,
               s == RA_PG_SPREAD || s == RA_PG_STRICT_SPREAD ? want_spread
                                                             : want_pack);
    }
    n[2].alive = false;
    expect(n, 3, b, 2, RA_PG_SPREAD, (size_t[]){1, 1});
    RA_CK_ERR(place(n, 3, b, 2, RA_PG_STRICT_SPREAD, out), RA_EINFEASIBLE);
    n[1].alive = false;
    for (int s = 0; s < 4; s++) {
        RA_CK_ERR(place(n, 3, b, 2, (ra_pg_strategy_t)s, out),
                  RA_EINFEASIBLE);
    }
    RA_CK_ERR(place(NULL, 0, b, 2, RA_PG_PACK, out), RA_EINFEASIBLE);
}
END_TEST

START_TEST(test_place_gpus_and_custom)
{
    // 16c, 16c4g, 8c8g with "A100".
    ra_place_node_t n[] = {node(16, 0), node(16, 4), node(8, 8)};
    ra_resources_t b[3];
    size_t out[3];

    set_both(&n[2], "accelerator_type:A100", 1);
    // 1 CPU 1 GPU leaves 15/16 + 3/4 on 16c4g, 7/8 + 7/8 on 8c8g.
    b[0] = res(1, 1);
    expect(n, 3, b, 1, RA_PG_PACK, (size_t[]){1});
    // A CPU bundle: the 16c nodes leave 15/16, 8c8g leaves 7/8.
    b[0] = res(1, 0);
    expect(n, 3, b, 1, RA_PG_PACK, (size_t[]){2});
    // The A100 only on the node that has it.
    b[0] = res(1, 1);
    RA_CK_OK(ra_resources_set(&b[0], "accelerator_type:A100", 1));
    b[1] = res(1, 1);
    expect(n, 3, b, 2, RA_PG_STRICT_SPREAD, (size_t[]){2, 1});
    expect(n, 3, b, 2, RA_PG_STRICT_PACK, (size_t[]){2, 2});
    // Two A100 bundles cannot spread over one A100 node, ever.
    b[1] = b[0];
    RA_CK_ERR(place(n, 3, b, 2, RA_PG_STRICT_SPREAD, out), RA_EINFEASIBLE);
    // Nor can 2 of a resource where a node has 1.
    RA_CK_ERR(place(n, 3, b, 2, RA_PG_STRICT_PACK, out), RA_EINFEASIBLE);
    // A resource no node has.
    b[0] = res(1, 0);
    RA_CK_OK(ra_resources_set(&b[0], "tpu", 1));
    RA_CK_ERR(place(n, 3, b, 1, RA_PG_PACK, out), RA_EINFEASIBLE);
    // Memory counts too: 100 GiB is more than 64 GiB.
    b[0] = res(1, 0);
    b[0].memory = 100 * GIB;
    RA_CK_ERR(place(n, 3, b, 1, RA_PG_SPREAD, out), RA_EINFEASIBLE);
    b[0].memory = 60 * GIB;
    n[0].avail.memory = 10 * GIB;
    n[1].avail.memory = 10 * GIB;
    expect(n, 3, b, 1, RA_PG_PACK, (size_t[]){2});
}
END_TEST

START_TEST(test_place_fractional_gpus)
{
    ra_place_node_t n[] = {node(4, 1), node(4, 1)};
    ra_resources_t b[] = {res(1, 0.5), res(1, 0.5), res(1, 0.5),
                          res(1, 0.5)};
    size_t out[4];

    // Two halves share one GPU.
    expect(n, 2, b, 2, RA_PG_STRICT_PACK, (size_t[]){0, 0});
    expect(n, 2, b, 2, RA_PG_PACK, (size_t[]){0, 0});
    expect(n, 2, b, 4, RA_PG_PACK, (size_t[]){0, 0, 1, 1});
    RA_CK_ERR(place(n, 2, b, 3, RA_PG_STRICT_PACK, out), RA_EINFEASIBLE);
    // A node with half a GPU free takes one half, not two.
    n[0].avail.gpus = 0.5;
    expect(n, 2, b, 3, RA_PG_PACK, (size_t[]){1, 1, 0});
    // Tenths add up: ten bundles of 0.1 GPU on one GPU.
    {
        ra_resources_t t[10];

        for (int i = 0; i < 10; i++) {
            t[i] = res(0, 0.1);
        }
        n[0].avail.gpus = 1;
        expect(n, 2, t, 10, RA_PG_STRICT_PACK,
               (size_t[]){0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
        n[0].avail.gpus = 0.3;
        n[1].avail.gpus = 0;
        RA_CK_OK(place(n, 2, t, 3, RA_PG_STRICT_PACK, out));
        RA_CK_ERR(place(n, 2, t, 4, RA_PG_STRICT_PACK, out), RA_EAGAIN);
    }
}
END_TEST

START_TEST(test_place_bad_arguments)
{
    ra_place_node_t n[] = {node(8, 0), node(8, 0)};
    ra_resources_t b[] = {res(1, 0), res(1, 0)};
    static ra_resources_t many[RA_PLACE_MAX_BUNDLES + 1];
    size_t out[2];
    static size_t many_out[RA_PLACE_MAX_BUNDLES + 1];

    RA_CK_ERR(place(n, 2, b, 0, RA_PG_PACK, out), RA_EINVAL);
    RA_CK_ERR(ra_place_bundles(NULL, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    RA_CK_ERR(ra_place_bundles(n, 2, NULL, 2, RA_PG_PACK, out), RA_EINVAL);
    RA_CK_ERR(ra_place_bundles(n, 2, b, 2, RA_PG_PACK, NULL), RA_EINVAL);
    RA_CK_ERR(place(n, 2, b, 2, (ra_pg_strategy_t)4, out), RA_EINVAL);
    RA_CK_ERR(place(n, 2, b, 2, (ra_pg_strategy_t)-1, out), RA_EINVAL);
    // A bundle that asks for nothing, Ray rejects too.
    b[1] = res(0, 0);
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    RA_CK_OK(ra_resources_set(&b[1], "ssd", 0)); // still nothing
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    b[1] = res(-1, 0);
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    b[1] = res(NAN, 0);
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    b[1] = res(1, 0);
    // Bad custom entries: duplicate, reserved, empty, unterminated, too
    // many.
    b[1].ncustom = 2;
    strcpy(b[1].custom[0].name, "ssd");
    strcpy(b[1].custom[1].name, "ssd");
    b[1].custom[0].amount = b[1].custom[1].amount = 1;
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    strcpy(b[1].custom[1].name, "CPU");
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    b[1].custom[1].name[0] = '\0';
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    memset(b[1].custom[1].name, 'x', RA_RES_NAME_MAX);
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    b[1].ncustom = RA_RES_CUSTOM_MAX + 1;
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    b[1] = res(1, 0);
    // A node's sets are checked too, dead or alive.
    n[1].alive = false;
    n[1].avail.gpus = -0.5;
    RA_CK_ERR(place(n, 2, b, 2, RA_PG_PACK, out), RA_EINVAL);
    n[1].avail.gpus = 0;
    RA_CK_OK(place(n, 2, b, 2, RA_PG_PACK, out));
    // Too many bundles.
    for (size_t i = 0; i <= RA_PLACE_MAX_BUNDLES; i++) {
        many[i] = res(0.001, 0);
    }
    RA_CK_ERR(ra_place_bundles(n, 2, many, RA_PLACE_MAX_BUNDLES + 1,
                               RA_PG_PACK, many_out), RA_EINVAL);
    RA_CK_OK(ra_place_bundles(n, 2, many, RA_PLACE_MAX_BUNDLES, RA_PG_PACK,
                              many_out));
}
END_TEST

// ---- the property test -----------------------------------------------------

// rng_next is xorshift64*: the same sequence on every platform, unlike
// rand().
static uint64_t
rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static unsigned
rng_below(uint64_t *s, unsigned n)
{
    return (unsigned)(rng_next(s) >> 33) % n;
}

// halves returns a multiple of 0.5 in [0, max], exact in binary.
static double
halves(uint64_t *s, unsigned max)
{
    return rng_below(s, 2 * max + 1) / 2.0;
}

static void
random_node(uint64_t *s, ra_place_node_t *n)
{
    static const char *const names[] = {"a", "b"};

    memset(n, 0, sizeof *n);
    n->alive = rng_below(s, 8) != 0;
    n->total.cpus = halves(s, 8);
    n->total.gpus = rng_below(s, 3) == 0 ? halves(s, 2) : 0;
    n->total.memory = rng_below(s, 4) * GIB;
    for (int i = 0; i < 2; i++) {
        if (rng_below(s, 3) == 0) {
            RA_CK_OK(ra_resources_set(&n->total, names[i],
                                      1 + rng_below(s, 2)));
        }
    }
    // Part of it in use.
    n->avail = n->total;
    if (rng_below(s, 2) == 0) {
        n->avail.cpus = halves(s, (unsigned)n->total.cpus);
        n->avail.gpus = n->total.gpus > 0 ? n->total.gpus / 2 : 0;
        n->avail.memory = n->total.memory > 0 ? GIB : 0;
    }
}

static void
random_bundle(uint64_t *s, ra_resources_t *b)
{
    memset(b, 0, sizeof *b);
    b->cpus = halves(s, 4);
    b->gpus = rng_below(s, 4) == 0 ? halves(s, 1) : 0;
    b->memory = rng_below(s, 4) == 0 ? GIB : 0;
    if (rng_below(s, 5) == 0) {
        RA_CK_OK(ra_resources_set(b, rng_below(s, 2) ? "a" : "b", 1));
    }
    if (b->cpus == 0 && b->gpus == 0 && b->memory == 0 && b->ncustom == 0) {
        b->cpus = 0.5;
    }
}

// exists searches every assignment of bundles[i..nb) to the alive nodes
// whose remaining amounts are left, with distinct nodes if distinct (used
// marks them), for one that fits.
static bool
exists(const ra_place_node_t *nodes, size_t n, ra_resources_t *left,
       bool *used, const ra_resources_t *b, size_t i, size_t nb,
       bool distinct)
{
    if (i == nb) {
        return true;
    }
    for (size_t j = 0; j < n; j++) {
        bool ok;

        if (!nodes[j].alive || (distinct && used[j]) ||
            !ra_resources_fit(&b[i], &left[j])) {
            continue;
        }
        RA_CK_OK(ra_resources_sub(&left[j], &b[i]));
        used[j] = true;
        ok = exists(nodes, n, left, used, b, i + 1, nb, distinct);
        used[j] = false;
        RA_CK_OK(ra_resources_add(&left[j], &b[i]));
        if (ok) {
            return true;
        }
    }
    return false;
}

static bool
exists_on(const ra_place_node_t *nodes, size_t n, bool totals,
          const ra_resources_t *b, size_t nb, bool distinct)
{
    ra_resources_t left[MAXN];
    bool used[MAXN] = {false};

    for (size_t j = 0; j < n; j++) {
        left[j] = totals ? nodes[j].total : nodes[j].avail;
    }
    return exists(nodes, n, left, used, b, 0, nb, distinct);
}

// one_node tells whether some alive node's avail (or total) holds the
// whole group.
static bool
one_node(const ra_place_node_t *nodes, size_t n, bool totals,
         const ra_resources_t *b, size_t nb)
{
    ra_resources_t sum = {0};

    for (size_t i = 0; i < nb; i++) {
        RA_CK_OK(ra_resources_add(&sum, &b[i]));
    }
    for (size_t j = 0; j < n; j++) {
        if (nodes[j].alive &&
            ra_resources_fit(&sum, totals ? &nodes[j].total
                                          : &nodes[j].avail)) {
            return true;
        }
    }
    return false;
}

// check_valid asserts that out is a valid answer for strategy s: alive
// nodes, the bundles on each node fit its avail, the strategy's rule.
static void
check_valid(const ra_place_node_t *nodes, size_t n, const ra_resources_t *b,
            size_t nb, ra_pg_strategy_t s, const size_t *out, unsigned seed,
            unsigned iter)
{
    ra_resources_t load[MAXN];
    unsigned per[MAXN] = {0};

    memset(load, 0, sizeof load);
    for (size_t i = 0; i < nb; i++) {
        ck_assert_msg(out[i] < n && nodes[out[i]].alive,
                      "seed %u iteration %u: bundle %zu on node %zu", seed,
                      iter, i, out[i]);
        RA_CK_OK(ra_resources_add(&load[out[i]], &b[i]));
        per[out[i]]++;
    }
    for (size_t j = 0; j < n; j++) {
        ck_assert_msg(ra_resources_fit(&load[j], &nodes[j].avail),
                      "seed %u iteration %u: node %zu overcommitted", seed,
                      iter, j);
        ck_assert_msg(s != RA_PG_STRICT_SPREAD || per[j] <= 1,
                      "seed %u iteration %u: STRICT_SPREAD put %u bundles "
                      "on node %zu", seed, iter, per[j], j);
        ck_assert_msg(s != RA_PG_STRICT_PACK || per[j] == 0 || per[j] == nb,
                      "seed %u iteration %u: STRICT_PACK split the group",
                      seed, iter);
    }
}

START_TEST(test_place_random_properties)
{
    unsigned seed = ra_test_seed("test_place_random_properties");
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ seed;
    unsigned iters = (unsigned)ra_test_scaled(20000);
    unsigned placed = 0, pending = 0, infeasible = 0, misses = 0;

    for (unsigned it = 0; it < iters; it++) {
        ra_place_node_t nodes[5];
        ra_resources_t b[4];
        size_t n = 1 + rng_below(&rng, 5), nb = 1 + rng_below(&rng, 4);
        ra_pg_strategy_t s = (ra_pg_strategy_t)rng_below(&rng, 4);
        bool distinct = s == RA_PG_STRICT_SPREAD, single = false;
        bool fit_avail, fit_total;
        size_t out[4];
        int rc;

        for (size_t j = 0; j < n; j++) {
            random_node(&rng, &nodes[j]);
        }
        for (size_t i = 0; i < nb; i++) {
            random_bundle(&rng, &b[i]);
        }
        rc = place(nodes, n, b, nb, s, out);
        if (s == RA_PG_STRICT_PACK) {
            fit_avail = one_node(nodes, n, false, b, nb);
            fit_total = one_node(nodes, n, true, b, nb);
        } else {
            fit_avail = exists_on(nodes, n, false, b, nb, distinct);
            fit_total = exists_on(nodes, n, true, b, nb, distinct);
        }
        if (rc == 0) {
            placed++;
            check_valid(nodes, n, b, nb, s, out, seed, it);
        } else if (rc == RA_EAGAIN) {
            pending++;
            // It waits only for what idle nodes could hold.
            ck_assert_msg(fit_total, "seed %u iteration %u: %s RA_EAGAIN "
                          "but the group never fits", seed, it,
                          ra_pg_strategy_name(s));
        } else {
            RA_CK_ERR(rc, RA_EINFEASIBLE);
            infeasible++;
        }
        // STRICT_PACK and STRICT_SPREAD are exact: they fail only when
        // nothing would do.
        if (s == RA_PG_STRICT_PACK || s == RA_PG_STRICT_SPREAD) {
            ck_assert_msg(rc == (fit_avail   ? 0
                                 : fit_total ? RA_EAGAIN
                                             : RA_EINFEASIBLE),
                          "seed %u iteration %u: %s returned %s, but an "
                          "answer exists on avail: %d, on totals: %d",
                          seed, it, ra_pg_strategy_name(s), ra_err_name(rc),
                          fit_avail, fit_total);
        }
        // A bundle no alive node could ever hold makes every strategy
        // RA_EINFEASIBLE.
        for (size_t i = 0; i < nb; i++) {
            if (!exists_on(nodes, n, true, &b[i], 1, false)) {
                RA_CK_ERR(rc, RA_EINFEASIBLE);
            }
        }
        // PACK keeps a group on one node whenever one node holds it.
        if (s == RA_PG_PACK && one_node(nodes, n, false, b, nb)) {
            RA_CK_OK(rc);
            for (size_t i = 1; i < nb; i++) {
                single = single || out[i] != out[0];
            }
            ck_assert_msg(!single, "seed %u iteration %u: PACK split a "
                          "group one node holds", seed, it);
        }
        // SPREAD uses distinct nodes whenever distinct nodes can hold it.
        if (s == RA_PG_SPREAD && exists_on(nodes, n, false, b, nb, true)) {
            RA_CK_OK(rc);
            for (size_t i = 0; i < nb; i++) {
                for (size_t j = 0; j < i; j++) {
                    ck_assert_msg(out[i] != out[j], "seed %u iteration %u: "
                                  "SPREAD reused a node needlessly", seed,
                                  it);
                }
            }
        }
        // PACK and SPREAD are heuristics beyond that: count the groups
        // they leave waiting (or call infeasible) that fit.
        if ((s == RA_PG_PACK || s == RA_PG_SPREAD) &&
            ((rc != 0 && fit_avail) ||
             (rc == RA_EINFEASIBLE && fit_total))) {
            misses++;
        }
    }
    fprintf(stderr, "test_place_random_properties: %u groups: %u placed, "
            "%u pending, %u infeasible; PACK/SPREAD missed %u that fit\n",
            iters, placed, pending, infeasible, misses);
    // Every kind of answer came up, so the test tested something.
    ck_assert_uint_gt(placed, iters / 10);
    ck_assert_uint_gt(pending, 0);
    ck_assert_uint_gt(infeasible, 0);
    // The heuristics miss rarely: about 1 group in 10,000 of these, all
    // tight packings of several kinds at once.  A jump means a broken
    // fallback.
    ck_assert_uint_le(misses, iters / 1000);
}
END_TEST

// ---- a large cluster -------------------------------------------------------

START_TEST(test_place_large_cluster_valid_and_deterministic)
{
    enum { N = 1000, NB = 8 };
    static ra_place_node_t nodes[N];
    unsigned seed = ra_test_seed("test_place_large_cluster");
    uint64_t rng = 0x2545f4914f6cdd1dull ^ seed;

    for (size_t j = 0; j < N; j++) {
        random_node(&rng, &nodes[j]);
        nodes[j].total.cpus *= 8;
        nodes[j].avail.cpus *= 8;
    }
    for (unsigned it = 0; it < 50; it++) {
        ra_resources_t b[NB];
        size_t out[NB], again[NB];
        ra_pg_strategy_t s = (ra_pg_strategy_t)(it % 4);
        int rc;

        for (size_t i = 0; i < NB; i++) {
            random_bundle(&rng, &b[i]);
        }
        rc = ra_place_bundles(nodes, N, b, NB, s, out);
        ck_assert_msg(rc == 0 || rc == RA_EAGAIN || rc == RA_EINFEASIBLE,
                      "%s", ra_err_name(rc));
        if (rc != 0) {
            continue;
        }
        {
            static ra_resources_t load[N];
            unsigned per[N] = {0};

            memset(load, 0, sizeof load);
            for (size_t i = 0; i < NB; i++) {
                ck_assert(out[i] < N && nodes[out[i]].alive);
                RA_CK_OK(ra_resources_add(&load[out[i]], &b[i]));
                per[out[i]]++;
            }
            for (size_t j = 0; j < N; j++) {
                ck_assert(ra_resources_fit(&load[j], &nodes[j].avail));
                ck_assert(s != RA_PG_STRICT_SPREAD || per[j] <= 1);
                ck_assert(s != RA_PG_STRICT_PACK || per[j] % NB == 0);
            }
        }
        RA_CK_OK(ra_place_bundles(nodes, N, b, NB, s, again));
        ck_assert(memcmp(out, again, sizeof out) == 0);
    }
}
END_TEST

static Suite *
place_suite(void)
{
    Suite *s = suite_create("place");
    TCase *tc;

    tc = tcase_create("resources");
    tcase_add_test(tc, test_place_resources_set_get);
    tcase_add_test(tc, test_place_resources_set_full);
    tcase_add_test(tc, test_place_resources_fit);
    tcase_add_test(tc, test_place_resources_sub_add);
    tcase_add_test(tc, test_place_resources_add_no_room);
    tcase_add_test(tc, test_place_strategy_names);
    suite_add_tcase(s, tc);

    tc = tcase_create("strategies");
    tcase_add_test(tc, test_place_strict_pack_best_fit);
    tcase_add_test(tc, test_place_strict_pack_eagain_einfeasible);
    tcase_add_test(tc, test_place_pack_one_node);
    tcase_add_test(tc, test_place_pack_falls_back_to_several_nodes);
    tcase_add_test(tc, test_place_larger_bundles_first);
    tcase_add_test(tc, test_place_pack_needs_the_matching);
    tcase_add_test(tc, test_place_strict_spread_distinct);
    tcase_add_test(tc, test_place_strict_spread_too_many_bundles);
    tcase_add_test(tc, test_place_strict_spread_greedy_fails_matching_works);
    tcase_add_test(tc, test_place_strict_spread_long_augmenting_path);
    tcase_add_test(tc, test_place_spread_distinct_when_possible);
    tcase_add_test(tc, test_place_spread_reuses_nodes);
    tcase_add_test(tc, test_place_spread_uneven_nodes);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_place_busy_eagain_too_big_einfeasible);
    tcase_add_test(tc, test_place_dead_nodes_get_nothing);
    tcase_add_test(tc, test_place_gpus_and_custom);
    tcase_add_test(tc, test_place_fractional_gpus);
    tcase_add_test(tc, test_place_bad_arguments);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_test(tc, test_place_random_properties);
    tcase_add_test(tc, test_place_large_cluster_valid_and_deterministic);
    tcase_set_timeout(tc, 120); // valgrind
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(place_suite());
}

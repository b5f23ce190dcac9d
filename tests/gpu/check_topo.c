// check_topo.c - tests of the topology module: hwloc counts, GPU inventory
// files, GPU placement, the summary and BSON export, CPU binding.
//
// One Suite, "topo".  Inventory files are written to a temporary directory
// made by an unchecked fixture.  The GPU set is a DGX-1 style hybrid cube
// mesh: eight V100s, four per socket, each with six NVLinks spread over
// NV1 and NV2 links, GPUs 0-3 on the first socket and 4-7 on the second,
// two GPUs per NUMA node (the synthetic machine has four).
#include <bson/bson.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rayo.h"
#include "testutil.h"

#include "dgx1.h"

// Four PCIe GPUs without NVLink: 0 and 1 behind one switch port, 2 on the
// same NUMA node behind another host bridge, 3 on the other socket.
#define PCIE                                                               \
    "{\"gpus\": [{\"name\": \"L4\", \"numa\": 0}, {\"name\": \"L4\", "     \
    "\"numa\": 0}, {\"name\": \"L4\", \"numa\": 0}, {\"name\": \"L4\", "   \
    "\"numa\": 2}],"                                                       \
    "\"links\": [[\"X\", \"PIX\", \"NODE\", \"SYS\"],"                     \
    "[\"PIX\", \"X\", \"NODE\", \"SYS\"], [\"NODE\", \"NODE\", \"X\", "    \
    "\"SYS\"], [\"SYS\", \"SYS\", \"SYS\", \"X\"]]}"

// ---- fixtures and helpers ------------------------------------------------

static char tmpdir[PATH_MAX];
static char invpath[PATH_MAX + 32];

static void
make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");

    snprintf(tmpdir, sizeof(tmpdir), "%s/check_topo.XXXXXX",
             base != NULL && *base != '\0' ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(invpath, sizeof(invpath), "%s/gpus.json", tmpdir);
}

static void
remove_tmpdir(void)
{
    unlink(invpath);
    rmdir(tmpdir);
}

// The log sink keeps the last warning, so tests can check that a bad file
// was rejected for the right reason.
// Warnings the library logs during a test (checked fixture).
static ra_test_log_t logs;

static void
log_setup(void)
{
    ra_test_log_start(&logs, RA_LOG_WARNING, NULL, NULL);
}

static void
log_teardown(void)
{
    ra_test_log_stop();
}

// load_inv writes json to the inventory file and loads it on the
// synthetic machine.
static int
load_inv(const char *json, ra_topo_t **out)
{
    ra_topo_opts_t o = {.synthetic = MACHINE, .gpu_file = invpath};
    FILE *f = fopen(invpath, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(json, 1, strlen(json), f), strlen(json));
    ck_assert_int_eq(fclose(f), 0);
    return ra_topo_load(out, &o);
}

static ra_topo_t *
dgx1(void)
{
    ra_topo_t *t = NULL;

    RA_CK_OK(load_inv(DGX1, &t));
    ck_assert_ptr_nonnull(t);
    return t;
}

// RA_CK_PICK asserts that picking `want` GPUs from the mask gives the
// listed indices and NUMA node.
#define RA_CK_PICK(t, want, avail, numa_want, ...)                         \
    do {                                                                   \
        const unsigned exp_[] = {__VA_ARGS__};                             \
        unsigned got_[8] = {0};                                            \
        char gs_[64], es_[64];                                             \
        int numa_ = -2;                                                    \
                                                                           \
        ck_assert_uint_eq(sizeof(exp_) / sizeof(exp_[0]), (want));         \
        RA_CK_OK(ra_topo_pick_gpus((t), (want), (avail), got_, &numa_));   \
        ra_topo_visible_devices(got_, (want), gs_, sizeof(gs_));           \
        ra_topo_visible_devices(exp_, (want), es_, sizeof(es_));           \
        ck_assert_str_eq(gs_, es_);                                        \
        ck_assert_int_eq(numa_, (numa_want));                              \
    } while (0)

// ---- hwloc ---------------------------------------------------------------

START_TEST(test_topo_synthetic_counts)
{
    ra_topo_opts_t o = {.synthetic = MACHINE};
    ra_topo_t *t = NULL;

    RA_CK_OK(ra_topo_load(&t, &o));
    ck_assert_uint_eq(ra_topo_packages(t), 2);
    ck_assert_uint_eq(ra_topo_numa_nodes(t), 4);
    ck_assert_uint_eq(ra_topo_cores(t), 32);
    ck_assert_uint_eq(ra_topo_pus(t), 32);
    for (unsigned n = 0; n < 4; n++) {
        ck_assert_uint_eq(ra_topo_numa_cores(t, n), 8);
    }
    ck_assert_uint_eq(ra_topo_numa_cores(t, 4), 0);
    ck_assert_uint_eq(ra_topo_gpus(t), 0); // no CUDA probe off the machine
    ra_topo_destroy(&t);
    ck_assert_ptr_null(t);
    ra_topo_destroy(&t);                    // safe twice
}
END_TEST

// The cache descriptions name their NUMA level: without one hwloc inserts
// it by shifting its level table with an overlapping memcpy, which valgrind
// reports as an error of ours.
START_TEST(test_topo_synthetic_caches)
{
    ra_topo_opts_t o = {
        .synthetic = "package:1 numa:1 l3:1(size=32MiB) l2:4(size=1MiB) "
                     "l1d:1(size=48KiB) core:1 pu:2"};
    ra_topo_t *t = NULL;

    RA_CK_OK(ra_topo_load(&t, &o));
    ck_assert_uint_eq(ra_topo_cores(t), 4);
    ck_assert_uint_eq(ra_topo_pus(t), 8);
    ck_assert_uint_eq(ra_topo_cache_bytes(t, 1), 48u << 10);
    ck_assert_uint_eq(ra_topo_cache_bytes(t, 2), 1u << 20);
    ck_assert_uint_eq(ra_topo_cache_bytes(t, 3), 32u << 20);
    ck_assert_uint_eq(ra_topo_cache_bytes(t, 4), 0);
    ck_assert_uint_eq(ra_topo_cache_bytes(t, 0), 0);
    ck_assert_uint_eq(ra_topo_cache_bytes(t, 6), 0);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_bad_sources_fail)
{
    ra_topo_opts_t bad = {.synthetic = "bogus:3"};
    ra_topo_opts_t both = {.synthetic = MACHINE, .xml_path = "/x.xml"};
    ra_topo_opts_t noxml = {.xml_path = "/nonexistent/topo.xml"};
    ra_topo_t *t = NULL;

    RA_CK_ERR(ra_topo_load(&t, &bad), RA_EINVAL);
    ck_assert_ptr_null(t);
    RA_CK_ERR(ra_topo_load(&t, &both), RA_EINVAL);
    RA_CK_ERR(ra_topo_load(&t, &noxml), -ENOENT);
    RA_CK_ERR(ra_topo_load(NULL, NULL), RA_EINVAL);
    ck_assert_ptr_null(t);
}
END_TEST

// ---- this machine --------------------------------------------------------

START_TEST(test_topo_this_machine_loads)
{
    ra_topo_t *t = NULL;

    // Without a CUDA driver: zero GPUs, no error.  With one (the GPU
    // machine), each GPU found has a name, memory and a PCI bus id.
    void *cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    RA_CK_OK(ra_topo_load(&t, NULL));
    ck_assert_uint_ge(ra_topo_pus(t), 1);
    ck_assert_uint_ge(ra_topo_cores(t), 1);
    ck_assert_uint_ge(ra_topo_numa_nodes(t), 1);
    ck_assert_uint_ge(ra_topo_numa_cores(t, 0), 1);
    if (cuda == NULL) {
        ck_assert_uint_eq(ra_topo_gpus(t), 0);
    }
    for (unsigned i = 0; i < ra_topo_gpus(t); i++) {
        ra_gpu_info_t g;
        RA_CK_OK(ra_topo_gpu(t, i, &g));
        ck_assert_uint_gt(strlen(g.name), 0);
        ck_assert_uint_gt(g.memory_bytes, 0);
        ck_assert_uint_eq(strlen(g.pci_bus_id), 12);
        ck_assert_int_ge(g.cc_major, 1);
    }
    ck_assert_int_eq(ra_test_log_caught(&logs, NULL, 0), 0);
    if (cuda != NULL) {
        dlclose(cuda);
    }
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_this_machine_no_cuda)
{
    ra_topo_opts_t o = {.no_cuda = true};
    ra_topo_t *t = NULL;

    RA_CK_OK(ra_topo_load(&t, &o));
    ck_assert_uint_ge(ra_topo_pus(t), 1);
    ck_assert_uint_eq(ra_topo_gpus(t), 0);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_bind_numa_this_machine)
{
    ra_topo_opts_t o = {.no_cuda = true};
    ra_topo_t *t = NULL;

    RA_CK_OK(ra_topo_load(&t, &o));
    RA_CK_OK(ra_topo_bind_numa(t, 0));
    RA_CK_ERR(ra_topo_bind_numa(t, ra_topo_numa_nodes(t)), RA_EINVAL);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_bind_numa_synthetic_einval)
{
    ra_topo_opts_t o = {.synthetic = MACHINE};
    ra_topo_t *t = NULL;

    RA_CK_OK(ra_topo_load(&t, &o));
    RA_CK_ERR(ra_topo_bind_numa(t, 0), RA_EINVAL);
    ra_topo_destroy(&t);
}
END_TEST

// ---- inventory files -----------------------------------------------------

START_TEST(test_topo_inventory_gpu_fields)
{
    ra_topo_t *t = dgx1();
    ra_gpu_info_t g;
    const int numa[8] = {0, 0, 1, 1, 2, 2, 3, 3};

    ck_assert_uint_eq(ra_topo_gpus(t), 8);
    RA_CK_OK(ra_topo_gpu(t, 0, &g));
    ck_assert_uint_eq(g.index, 0);
    ck_assert_str_eq(g.name, "V100");
    ck_assert_str_eq(g.pci_bus_id, "0000:06:00.0");
    ck_assert_uint_eq(g.memory_bytes, 32768ull << 20);
    ck_assert_int_eq(g.cc_major, 7);
    ck_assert_int_eq(g.cc_minor, 0);
    ck_assert_uint_eq(g.nvlinks_max, 2);
    // Bus ids come back in one spelling: lower case, 4-digit domain.
    RA_CK_OK(ra_topo_gpu(t, 2, &g));
    ck_assert_str_eq(g.pci_bus_id, "0000:0a:00.0");
    RA_CK_OK(ra_topo_gpu(t, 7, &g));
    ck_assert_str_eq(g.pci_bus_id, "0000:8a:00.0");
    ck_assert_uint_eq(g.index, 7);
    ck_assert_uint_eq(g.memory_bytes, 0);
    for (unsigned i = 0; i < 8; i++) {
        RA_CK_OK(ra_topo_gpu(t, i, &g));
        ck_assert_int_eq(g.numa_node, numa[i]);
    }
    RA_CK_ERR(ra_topo_gpu(t, 8, &g), RA_EINVAL);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_inventory_nvlinks_read_back)
{
    ra_topo_t *t = dgx1();

    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 0), RA_LINK_SELF);
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 1), RA_LINK_NVLINK);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 0, 1), 1);
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 3), RA_LINK_NVLINK);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 0, 3), 2);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 3, 0), 2);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 0, 4), 2);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 3, 7), 1);
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 5), RA_LINK_SYSTEM);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 0, 5), 0);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 0, 0), 0);
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 8), RA_LINK_UNKNOWN);
    ck_assert_uint_eq(ra_topo_gpu_nvlinks(t, 8, 0), 0);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_inventory_pcie_links_read_back)
{
    ra_topo_t *t = NULL;

    RA_CK_OK(load_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}, "
                      "{\"name\": \"C\"}],"
                      "\"links\": [[\"X\", \"PXB\", \"PHB\"], [\"PXB\", "
                      "\"X\", \"NODE\"], [\"PHB\", \"NODE\", \"X\"]]}",
                      &t));
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 1), RA_LINK_PCIE_SWITCH);
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 2), RA_LINK_HOST_BRIDGE);
    ck_assert_int_eq(ra_topo_gpu_link(t, 1, 2), RA_LINK_NUMA);
    ra_topo_destroy(&t);
    t = NULL;
    RA_CK_OK(load_inv(PCIE, &t));
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 1), RA_LINK_PCIE_SWITCH);
    ck_assert_int_eq(ra_topo_gpu_link(t, 1, 2), RA_LINK_NUMA);
    ck_assert_int_eq(ra_topo_gpu_link(t, 2, 3), RA_LINK_SYSTEM);
    ra_topo_destroy(&t);
}
END_TEST

// bad_inv asserts that json is rejected with RA_EBADMSG and a warning
// containing why.
static void
bad_inv(const char *json, const char *why)
{
    ra_topo_t *t = NULL;

    RA_CK_ERR(load_inv(json, &t), RA_EBADMSG);
    ck_assert_ptr_null(t);
    char last[sizeof logs.last];
    ck_assert_int_ge(ra_test_log_caught(&logs, last, sizeof last), 1);
    ck_assert_msg(strstr(last, why) != NULL, "logged \"%s\", want \"%s\"",
                  last, why);
}

START_TEST(test_topo_inventory_bad_json)
{
    bad_inv("{\"gpus\": [{\"name\": \"V100\"}", "not JSON");
}
END_TEST

START_TEST(test_topo_inventory_missing_gpus)
{
    bad_inv("{\"links\": [[\"X\"]]}", "no \"gpus\" array");
    bad_inv("{\"gpus\": {\"name\": \"V100\"}}", "no \"gpus\" array");
}
END_TEST

START_TEST(test_topo_inventory_non_square)
{
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"SYS\"], [\"SYS\"]]}",
            "links[1] does not have 2 entries");
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"SYS\", \"SYS\"], [\"SYS\", \"X\"]]}",
            "links[0] does not have 2 entries");
}
END_TEST

START_TEST(test_topo_inventory_wrong_gpu_count)
{
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"SYS\"], [\"SYS\", \"X\"], "
            "[\"SYS\", \"SYS\"]]}",
            "does not have 2 rows");
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"SYS\"]]}",
            "does not have 2 rows");
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}]}",
            "no \"links\" matrix");
}
END_TEST

START_TEST(test_topo_inventory_unknown_code)
{
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"NVX\"], [\"NVX\", \"X\"]]}",
            "links[0][1] is not a link code");
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"NV0\"], [\"NV0\", \"X\"]]}",
            "links[0][1] is not a link code");
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", 2], [2, \"X\"]]}",
            "links[0][1] is not a link code");
}
END_TEST

START_TEST(test_topo_inventory_asymmetric)
{
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"NV2\"], [\"NV1\", \"X\"]]}",
            "links[0][1] and links[1][0] differ");
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"PIX\"], [\"SYS\", \"X\"]]}",
            "links[0][1] and links[1][0] differ");
}
END_TEST

START_TEST(test_topo_inventory_bad_diagonal)
{
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"SYS\", \"SYS\"], [\"SYS\", \"X\"]]}",
            "links[0][0] is SYS");
    bad_inv("{\"gpus\": [{\"name\": \"A\"}, {\"name\": \"B\"}],"
            "\"links\": [[\"X\", \"X\"], [\"X\", \"X\"]]}",
            "links[0][1] is X");
}
END_TEST

START_TEST(test_topo_inventory_bad_gpu_fields)
{
    bad_inv("{\"gpus\": [{\"name\": 7}]}", "gpus[0].name");
    bad_inv("{\"gpus\": [{\"pci\": \"0000:06:00.0\"}]}",
            "gpus[0] has no name");
    bad_inv("{\"gpus\": [{\"name\": \"A\", \"memory_mib\": \"lots\"}]}",
            "gpus[0].memory_mib");
    bad_inv("{\"gpus\": [{\"name\": \"A\", \"memory_mib\": -1}]}",
            "gpus[0].memory_mib");
    bad_inv("{\"gpus\": [{\"name\": \"A\", \"cc\": 9.0}]}", "gpus[0].cc");
    bad_inv("{\"gpus\": [{\"name\": \"A\", \"numa\": \"0\"}]}",
            "gpus[0].numa");
    bad_inv("{\"gpus\": [{\"name\": \"A\", \"pci\": \"slot 3\"}]}",
            "gpus[0].pci");
    bad_inv("{\"gpus\": [{\"name\": \"A\", \"colour\": \"green\"}]}",
            "gpus[0].colour");
    bad_inv("{\"gpus\": [\"A\"]}", "gpus[0] is not an object");
    bad_inv("{\"gpus\": [], \"link\": []}", "unknown key \"link\"");
}
END_TEST

START_TEST(test_topo_inventory_missing_file_enoent)
{
    ra_topo_opts_t o = {.synthetic = MACHINE,
                        .gpu_file = "/nonexistent/gpus.json"};
    ra_topo_t *t = NULL;

    RA_CK_ERR(ra_topo_load(&t, &o), -ENOENT);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_topo_inventory_single_gpu_no_links)
{
    ra_topo_t *t = NULL;
    unsigned got = 9;
    int numa = -2;

    RA_CK_OK(load_inv("{\"gpus\": [{\"name\": \"T4\"}]}", &t));
    ck_assert_uint_eq(ra_topo_gpus(t), 1);
    RA_CK_OK(ra_topo_pick_gpus(t, 1, NULL, &got, &numa));
    ck_assert_uint_eq(got, 0);
    ck_assert_int_eq(numa, -1);             // no "numa", no PCI match
    ra_topo_destroy(&t);
}
END_TEST

// ---- placement -----------------------------------------------------------

START_TEST(test_topo_pick_two_most_nvlinks)
{
    ra_topo_t *t = dgx1();

    // NV2 pairs: 0-3, 1-2, 2-3, 0-4, 1-5, 4-7, 5-6, 6-7; only 2-3 and 6-7
    // share a NUMA node, and 2-3 has the lower indices.
    RA_CK_PICK(t, 2, NULL, 1, 2, 3);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_three_nvlink_sum_breaks_tie)
{
    ra_topo_t *t = dgx1();

    // Every 3-clique sits on one socket and spans two NUMA nodes; {0,2,3}
    // and {1,2,3} have five NVLinks, {0,1,2} and {0,1,3} four.
    RA_CK_PICK(t, 3, NULL, 1, 0, 2, 3);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_four_clique_one_socket)
{
    ra_topo_t *t = dgx1();
    bool avail[8] = {false, true, true, true, true, true, true, true};

    RA_CK_PICK(t, 4, NULL, 0, 0, 1, 2, 3);
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 2), RA_LINK_NVLINK);
    // Without GPU 0 the other socket is the only clique left.
    RA_CK_PICK(t, 4, avail, 2, 4, 5, 6, 7);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_all_eight)
{
    ra_topo_t *t = dgx1();

    RA_CK_PICK(t, 8, NULL, 0, 0, 1, 2, 3, 4, 5, 6, 7);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_only_cross_socket_left)
{
    ra_topo_t *t = dgx1();
    bool avail[8] = {true, false, false, false, false, true, false, false};

    RA_CK_PICK(t, 2, avail, 0, 0, 5);
    ck_assert_int_eq(ra_topo_gpu_link(t, 0, 5), RA_LINK_SYSTEM);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_avoids_sys_pairs)
{
    ra_topo_t *t = dgx1();
    bool avail[8] = {false, true, false, false, true, false, true, false};

    // 1-4 and 1-6 are SYS, 4-6 is NV1.
    RA_CK_PICK(t, 2, avail, 2, 4, 6);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_spread_before_nvlinks)
{
    ra_topo_t *t = dgx1();
    bool avail[8] = {true, true, false, true, false, false, false, false};

    // 0-3 has two NVLinks but spans NUMA nodes 0 and 1; 0-1 has one
    // NVLink on node 0, and the spread counts first.
    RA_CK_PICK(t, 2, avail, 0, 0, 1);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_pcie_order)
{
    ra_topo_t *t = NULL;
    bool no01[4] = {true, false, true, true};
    bool far[4] = {false, false, true, true};

    RA_CK_OK(load_inv(PCIE, &t));
    RA_CK_PICK(t, 2, NULL, 0, 0, 1);         // PCIe switch
    RA_CK_PICK(t, 2, no01, 0, 0, 2);         // same NUMA node beats SYS
    RA_CK_PICK(t, 2, far, 0, 2, 3);          // only SYS is left
    RA_CK_PICK(t, 3, NULL, 0, 0, 1, 2);      // worst NODE beats worst SYS
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_too_few_eagain)
{
    ra_topo_t *t = dgx1();
    bool avail[8] = {true, true, true, false, false, false, false, false};
    unsigned out[9];
    int numa = 0;

    RA_CK_ERR(ra_topo_pick_gpus(t, 4, avail, out, &numa), RA_EAGAIN);
    RA_CK_ERR(ra_topo_pick_gpus(t, 9, NULL, out, &numa), RA_EAGAIN);
    RA_CK_ERR(ra_topo_pick_gpus(t, 0, NULL, out, &numa), RA_EINVAL);
    RA_CK_ERR(ra_topo_pick_gpus(t, 1, NULL, NULL, &numa), RA_EINVAL);
    RA_CK_OK(ra_topo_pick_gpus(t, 3, avail, out, NULL));   // numa optional
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_pick_no_gpus_eagain)
{
    ra_topo_opts_t o = {.synthetic = MACHINE};
    ra_topo_t *t = NULL;
    unsigned out[1];
    int numa = 0;

    RA_CK_OK(ra_topo_load(&t, &o));
    RA_CK_ERR(ra_topo_pick_gpus(t, 1, NULL, out, &numa), RA_EAGAIN);
    ra_topo_destroy(&t);
}
END_TEST

// ---- output --------------------------------------------------------------

START_TEST(test_topo_summary)
{
    ra_topo_opts_t o = {.synthetic = MACHINE};
    ra_topo_t *t = NULL;
    char buf[128], small[12];

    RA_CK_OK(ra_topo_load(&t, &o));
    ck_assert_str_eq(ra_topo_summary(t, buf, sizeof(buf)),
                     "2 packages, 4 NUMA nodes, 32 cores, 32 PUs, 0 GPUs");
    ra_topo_destroy(&t);
    t = dgx1();
    ck_assert_str_eq(ra_topo_summary(t, buf, sizeof(buf)),
                     "2 packages, 4 NUMA nodes, 32 cores, 32 PUs, 8 GPUs "
                     "(V100, NVLink)");
    ck_assert_str_eq(ra_topo_summary(t, small, sizeof(small)),
                     "2 packages,");
    ra_topo_destroy(&t);
    RA_CK_OK(load_inv(PCIE, &t));
    ck_assert_str_eq(ra_topo_summary(t, buf, sizeof(buf)),
                     "2 packages, 4 NUMA nodes, 32 cores, 32 PUs, 4 GPUs "
                     "(L4, PCIe switch)");
    ra_topo_destroy(&t);
}
END_TEST

static void
ck_bson_int(const bson_t *doc, const char *path, int64_t want)
{
    bson_iter_t it, f;

    ck_assert(bson_iter_init(&it, doc));
    ck_assert_msg(bson_iter_find_descendant(&it, path, &f), "no %s", path);
    ck_assert_msg(BSON_ITER_HOLDS_NUMBER(&f), "%s is not a number", path);
    ck_assert_int_eq(bson_iter_as_int64(&f), want);
}

static void
ck_bson_str(const bson_t *doc, const char *path, const char *want)
{
    bson_iter_t it, f;

    ck_assert(bson_iter_init(&it, doc));
    ck_assert_msg(bson_iter_find_descendant(&it, path, &f), "no %s", path);
    ck_assert_msg(BSON_ITER_HOLDS_UTF8(&f), "%s is not a string", path);
    ck_assert_str_eq(bson_iter_utf8(&f, NULL), want);
}

START_TEST(test_topo_append_bson)
{
    ra_topo_t *t = dgx1();
    bson_t doc = BSON_INITIALIZER;
    bson_iter_t it, f;

    RA_CK_OK(ra_topo_append_bson(t, &doc, "topo"));
    ck_bson_int(&doc, "topo.packages", 2);
    ck_bson_int(&doc, "topo.numa_nodes", 4);
    ck_bson_int(&doc, "topo.cores", 32);
    ck_bson_int(&doc, "topo.pus", 32);
    ck_bson_str(&doc, "topo.gpus.0.name", "V100");
    ck_bson_str(&doc, "topo.gpus.2.pci", "0000:0a:00.0");
    ck_bson_int(&doc, "topo.gpus.0.memory_bytes", 32768ll << 20);
    ck_bson_int(&doc, "topo.gpus.0.cc_major", 7);
    ck_bson_int(&doc, "topo.gpus.0.cc_minor", 0);
    ck_bson_int(&doc, "topo.gpus.7.numa", 3);
    ck_bson_int(&doc, "topo.gpus.7.index", 7);
    ck_bson_int(&doc, "topo.gpus.5.nvlinks_max", 2);
    ck_bson_str(&doc, "topo.links.0.0", "X");
    ck_bson_str(&doc, "topo.links.0.1", "NV1");
    ck_bson_str(&doc, "topo.links.0.3", "NV2");
    ck_bson_str(&doc, "topo.links.7.0", "SYS");
    ck_assert(bson_iter_init(&it, &doc));
    ck_assert(!bson_iter_find_descendant(&it, "topo.gpus.8", &f));
    ck_assert(bson_iter_init(&it, &doc));
    ck_assert(!bson_iter_find_descendant(&it, "topo.links.0.8", &f));
    ck_assert(bson_iter_init(&it, &doc));
    ck_assert(!bson_iter_find_descendant(&it, "topo.peer", &f));
    ck_assert(bson_iter_init(&it, &doc));
    ck_assert(bson_iter_find_descendant(&it, "topo.caches", &f));
    ck_assert(BSON_ITER_HOLDS_DOCUMENT(&f));
    bson_destroy(&doc);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_append_bson_caches_and_pcie)
{
    ra_topo_opts_t o = {.synthetic = "package:1 numa:1 l3:1(size=32MiB) "
                                     "l2:2(size=1MiB) core:1 pu:1"};
    ra_topo_t *t = NULL;
    bson_t doc = BSON_INITIALIZER;
    bson_iter_t it, f;

    RA_CK_OK(ra_topo_load(&t, &o));
    RA_CK_OK(ra_topo_append_bson(t, &doc, "t"));
    ck_bson_int(&doc, "t.caches.L3", 32ll << 20);
    ck_bson_int(&doc, "t.caches.L2", 1ll << 20);
    ck_assert(bson_iter_init(&it, &doc));
    ck_assert(!bson_iter_find_descendant(&it, "t.caches.L1", &f));
    ck_assert(bson_iter_init(&it, &doc));
    ck_assert(bson_iter_find_descendant(&it, "t.gpus", &f));
    ck_assert(BSON_ITER_HOLDS_ARRAY(&f));
    bson_destroy(&doc);
    ra_topo_destroy(&t);

    bson_init(&doc);
    RA_CK_OK(load_inv(PCIE, &t));
    RA_CK_OK(ra_topo_append_bson(t, &doc, "t"));
    ck_bson_str(&doc, "t.links.0.1", "PIX");
    ck_bson_str(&doc, "t.links.1.2", "NODE");
    ck_bson_str(&doc, "t.links.3.2", "SYS");
    ck_bson_int(&doc, "t.gpus.3.numa", 2);
    bson_destroy(&doc);
    ra_topo_destroy(&t);
}
END_TEST

START_TEST(test_topo_visible_devices)
{
    const unsigned idx[] = {0, 3, 12};
    char buf[32], small[5];

    ck_assert_str_eq(ra_topo_visible_devices(idx, 2, buf, sizeof(buf)),
                     "0,3");
    ck_assert_str_eq(ra_topo_visible_devices(idx, 3, buf, sizeof(buf)),
                     "0,3,12");
    ck_assert_str_eq(ra_topo_visible_devices(idx, 1, buf, sizeof(buf)), "0");
    ck_assert_str_eq(ra_topo_visible_devices(idx, 0, buf, sizeof(buf)), "");
    // Too small for "0,3,12": whole entries only, never a cut "1".
    ck_assert_str_eq(ra_topo_visible_devices(idx, 3, small, sizeof(small)),
                     "0,3");
}
END_TEST

static Suite *
topo_suite(void)
{
    Suite *s = suite_create("topo");
    TCase *tc;

    tc = tcase_create("hwloc");
    tcase_add_checked_fixture(tc, log_setup, log_teardown);
    tcase_add_test(tc, test_topo_synthetic_counts);
    tcase_add_test(tc, test_topo_synthetic_caches);
    tcase_add_test(tc, test_topo_bad_sources_fail);
    suite_add_tcase(s, tc);

    tc = tcase_create("machine");
    tcase_add_checked_fixture(tc, log_setup, log_teardown);
    tcase_add_test(tc, test_topo_this_machine_loads);
    tcase_add_test(tc, test_topo_this_machine_no_cuda);
    tcase_add_test(tc, test_topo_bind_numa_this_machine);
    tcase_add_test(tc, test_topo_bind_numa_synthetic_einval);
    tcase_set_timeout(tc, 60);              // hwloc reads sysfs, slowly
    suite_add_tcase(s, tc);                 // under valgrind

    tc = tcase_create("inventory");
    tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_checked_fixture(tc, log_setup, log_teardown);
    tcase_add_test(tc, test_topo_inventory_gpu_fields);
    tcase_add_test(tc, test_topo_inventory_nvlinks_read_back);
    tcase_add_test(tc, test_topo_inventory_pcie_links_read_back);
    tcase_add_test(tc, test_topo_inventory_bad_json);
    tcase_add_test(tc, test_topo_inventory_missing_gpus);
    tcase_add_test(tc, test_topo_inventory_non_square);
    tcase_add_test(tc, test_topo_inventory_wrong_gpu_count);
    tcase_add_test(tc, test_topo_inventory_unknown_code);
    tcase_add_test(tc, test_topo_inventory_asymmetric);
    tcase_add_test(tc, test_topo_inventory_bad_diagonal);
    tcase_add_test(tc, test_topo_inventory_bad_gpu_fields);
    tcase_add_test(tc, test_topo_inventory_missing_file_enoent);
    tcase_add_test(tc, test_topo_inventory_single_gpu_no_links);
    suite_add_tcase(s, tc);

    tc = tcase_create("pick");
    tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, test_topo_pick_two_most_nvlinks);
    tcase_add_test(tc, test_topo_pick_three_nvlink_sum_breaks_tie);
    tcase_add_test(tc, test_topo_pick_four_clique_one_socket);
    tcase_add_test(tc, test_topo_pick_all_eight);
    tcase_add_test(tc, test_topo_pick_only_cross_socket_left);
    tcase_add_test(tc, test_topo_pick_avoids_sys_pairs);
    tcase_add_test(tc, test_topo_pick_spread_before_nvlinks);
    tcase_add_test(tc, test_topo_pick_pcie_order);
    tcase_add_test(tc, test_topo_pick_too_few_eagain);
    tcase_add_test(tc, test_topo_pick_no_gpus_eagain);
    suite_add_tcase(s, tc);

    tc = tcase_create("output");
    tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_test(tc, test_topo_summary);
    tcase_add_test(tc, test_topo_append_bson);
    tcase_add_test(tc, test_topo_append_bson_caches_and_pcie);
    tcase_add_test(tc, test_topo_visible_devices);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    return ra_test_run(topo_suite());
}

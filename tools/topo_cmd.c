// topo_cmd.c - `rayo topo`: the machine as placement sees it (ra_topo.h),
// as a table for people or as one JSON object for programs.
//
// The topology is this machine's (hwloc and the CUDA driver), or a
// synthetic description or an hwloc XML file, with GPUs from an inventory
// file.  The options override RAYO_TOPOLOGY_SYNTHETIC, RAYO_TOPOLOGY_XML
// and RAYO_GPU_FILE, which the embedded cluster reads too, so this command
// shows what a cluster started in the same environment would place on.
// The result is all that goes to stdout; notes and errors go to stderr.
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rayo.h>

#include "rayo_tool.h"

static const char usage[] =
    "Usage: rayo topo [OPTIONS]\n"
    "Print the machine as rayo's placement sees it: packages, NUMA nodes,\n"
    "cores, caches, GPUs and how the GPUs are linked.\n"
    "\n"
    "Options:\n"
    "  --synthetic DESC   an hwloc synthetic topology instead of this\n"
    "                     machine, e.g. \"package:2 numa:2 core:8 pu:1\"\n"
    "  --xml FILE         an hwloc XML export (lstopo FILE.xml) instead\n"
    "                     of this machine\n"
    "  --gpu-file FILE    GPUs and their links from an inventory file (JSON,\n"
    "                     see doc/topology.md) instead of the CUDA driver\n"
    "  --no-cuda          do not ask the CUDA driver: no GPUs unless\n"
    "                     --gpu-file names some\n"
    "  --format FORMAT    table (default), or json: one object with the\n"
    "                     counts, caches, gpus and the links matrix\n"
    "  -h, --help         show this help\n"
    "\n"
    "GPUs come from the CUDA driver (which honours CUDA_VISIBLE_DEVICES)\n"
    "only for this machine; a synthetic or XML topology has none unless\n"
    "an inventory file names them.\n"
    "\n"
    "Environment (the embedded cluster reads the same variables):\n"
    "  RAYO_TOPOLOGY_SYNTHETIC  as --synthetic, when neither --synthetic\n"
    "                           nor --xml is given\n"
    "  RAYO_TOPOLOGY_XML        as --xml, likewise; set at most one of the\n"
    "                           two\n"
    "  RAYO_GPU_FILE            as --gpu-file, when it is not given\n"
    "  RAYO_LOG                 the library's log level on stderr (error,\n"
    "                           warning (default), info, debug)\n"
    "\n"
    "Exit status: 0 when the topology was printed, 1 when it could not be\n"
    "loaded, 2 for a bad command line.\n";

// topo_args_t is the parsed command line.  The *_from fields name where a
// source came from (an option or a variable), for the messages.
typedef struct topo_args {
    ra_topo_opts_t o;
    const char *hw_from;
    const char *gpu_from;
    bool json;
    bool help;               // --help was printed: nothing more to do
} topo_args_t;

// env returns the variable's value, or NULL when it is unset or empty (as
// the embedded cluster reads it).
static const char *
env(const char *name)
{
    const char *v = getenv(name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

// from_env fills the sources the command line left open.  The options
// choose the hardware as a whole, so --xml also sets aside
// RAYO_TOPOLOGY_SYNTHETIC.  A variable set long ago is easy to forget,
// so using one is noted on stderr.
static int
from_env(const char *prog, topo_args_t *a)
{
    const char *syn = env("RAYO_TOPOLOGY_SYNTHETIC");
    const char *xml = env("RAYO_TOPOLOGY_XML");
    const char *gpu = env("RAYO_GPU_FILE");

    if (a->hw_from == NULL && syn != NULL && xml != NULL) {
        return ra__tool_usage_error(prog, "RAYO_TOPOLOGY_SYNTHETIC and "
                                    "RAYO_TOPOLOGY_XML are both set; unset "
                                    "one, or give --synthetic or --xml");
    }
    if (a->hw_from == NULL && (syn != NULL || xml != NULL)) {
        a->o.synthetic = syn;
        a->o.xml_path = xml;
        a->hw_from = syn != NULL ? "RAYO_TOPOLOGY_SYNTHETIC"
                                 : "RAYO_TOPOLOGY_XML";
        fprintf(stderr, "%s: note: %s=%s\n", prog, a->hw_from,
                syn != NULL ? syn : xml);
    }
    if (a->gpu_from == NULL && gpu != NULL) {
        a->o.gpu_file = gpu;
        a->gpu_from = "RAYO_GPU_FILE";
        fprintf(stderr, "%s: note: RAYO_GPU_FILE=%s\n", prog, gpu);
    }
    return RA_TOOL_OK;
}

static int
parse_args(const char *prog, int argc, char **argv, topo_args_t *a)
{
    enum { OPT_SYN = 256, OPT_XML, OPT_GPU, OPT_NOCUDA, OPT_FORMAT };
    static const struct option longopts[] = {
        {"synthetic", required_argument, NULL, OPT_SYN},
        {"xml", required_argument, NULL, OPT_XML},
        {"gpu-file", required_argument, NULL, OPT_GPU},
        {"no-cuda", no_argument, NULL, OPT_NOCUDA},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SYN:
            a->o.synthetic = optarg;
            a->hw_from = "--synthetic";
            break;
        case OPT_XML:
            a->o.xml_path = optarg;
            a->hw_from = "--xml";
            break;
        case OPT_GPU:
            a->o.gpu_file = optarg;
            a->gpu_from = "--gpu-file";
            break;
        case OPT_NOCUDA:
            a->o.no_cuda = true;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "table") != 0 && strcmp(optarg, "json") != 0) {
                return ra__tool_usage_error(prog, "--format takes table or "
                                            "json, not '%s'", optarg);
            }
            a->json = strcmp(optarg, "json") == 0;
            break;
        case 'h':
            printf("%s", usage);
            a->help = true;
            return RA_TOOL_OK;
        default:
            return ra__tool_bad_option(prog, c, argv);
        }
    }
    if (optind < argc) {
        return ra__tool_usage_error(prog, "unexpected argument '%s'",
                                    argv[optind]);
    }
    if (a->o.synthetic != NULL && a->o.xml_path != NULL) {
        return ra__tool_usage_error(prog, "--synthetic and --xml both "
                                    "describe the hardware; give one");
    }
    return from_env(prog, a);
}

// load_failed explains a failed ra_topo_load: which input, and what to do.
// The library has already logged the detail of a bad description or
// inventory (which field, which cell) on the line above.
static int
load_failed(const char *prog, const topo_args_t *a, int rc)
{
    const ra_topo_opts_t *o = &a->o;
    // A -errno is about a file: the XML file is opened first, so when it
    // is there the inventory was the one that failed.
    bool xml = o->xml_path != NULL && access(o->xml_path, R_OK) != 0;
    const char *path = xml ? o->xml_path : o->gpu_file;
    struct stat st;

    if (rc == RA_EBADMSG && o->gpu_file != NULL) {
        fprintf(stderr, "%s: %s (%s) is not a valid GPU inventory; fix it "
                "as the line above says (the format is in ra_topo.h and "
                "doc/topology.md)\n", prog, o->gpu_file, a->gpu_from);
    } else if (rc == RA_EINVAL && o->synthetic != NULL) {
        fprintf(stderr, "%s: hwloc rejected the synthetic topology \"%s\" "
                "(%s); list levels with counts from the top down to pu, "
                "such as \"package:2 numa:2 core:8 pu:1\"\n", prog,
                o->synthetic, a->hw_from);
    } else if (rc == RA_EINVAL && o->xml_path != NULL) {
        fprintf(stderr, "%s: hwloc could not read %s (%s) as an XML "
                "topology; export one with 'lstopo FILE.xml' on the machine "
                "to describe\n", prog, o->xml_path, a->hw_from);
    } else if (rc < 0 && rc > RA_EBASE && path != NULL) {
        // Reading a directory fails as EIO, which would send a user
        // looking at the disk.
        fprintf(stderr, "%s: cannot read %s %s (%s): %s; check the path\n",
                prog, xml ? "the hwloc XML file" : "the GPU inventory",
                path, xml ? a->hw_from : a->gpu_from,
                stat(path, &st) == 0 && S_ISDIR(st.st_mode)
                    ? "it is a directory" : ra_strerror(rc));
    } else {
        fprintf(stderr, "%s: cannot load the topology: %s (%s)\n", prog,
                ra_strerror(rc), ra_err_name(rc));
    }
    return RA_TOOL_FAIL;
}

// fmt_bytes writes a size in the largest binary unit that holds it
// exactly ("48 KiB", "1280 KiB", "32 MiB"), or "-" for 0 (unknown).
static const char *
fmt_bytes(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    unsigned u = 0;

    if (b == 0) {
        return "-";
    }
    while (u + 1 < sizeof units / sizeof units[0] && b % 1024 == 0) {
        b /= 1024;
        u++;
    }
    snprintf(buf, len, "%" PRIu64 " %s", b, units[u]);
    return buf;
}

// link_name spells the link between GPUs a and b as `nvidia-smi topo -m`
// does.  The API keeps PIX and PXB together as RA_LINK_PCIE_SWITCH, so
// both print as PXB (the JSON output keeps the inventory's spelling).
static const char *
link_name(const ra_topo_t *t, unsigned a, unsigned b, char *buf, size_t len)
{
    switch (ra_topo_gpu_link(t, a, b)) {
    case RA_LINK_SELF:
        return "X";
    case RA_LINK_NVLINK:
        snprintf(buf, len, "NV%u", ra_topo_gpu_nvlinks(t, a, b));
        return buf;
    case RA_LINK_PCIE_SWITCH:
        return "PXB";
    case RA_LINK_HOST_BRIDGE:
        return "PHB";
    case RA_LINK_NUMA:
        return "NODE";
    case RA_LINK_SYSTEM:
        return "SYS";
    default:
        return "?";
    }
}

static void
print_gpus(const ra_topo_t *t)
{
    unsigned n = ra_topo_gpus(t);
    ra_gpu_info_t g;
    int w = 4;
    char mem[24], cc[24], numa[16], link[16];

    for (unsigned i = 0; i < n; i++) {
        if (ra_topo_gpu(t, i, &g) == 0 && (int)strlen(g.name) > w) {
            w = (int)strlen(g.name);
        }
    }
    printf("\n%-4s  %-*s  %-12s  %10s  %-5s  %4s  %7s\n", "GPU", w, "name",
           "PCI bus id", "memory MiB", "cc", "NUMA", "NVLinks");
    for (unsigned i = 0; i < n && ra_topo_gpu(t, i, &g) == 0; i++) {
        snprintf(mem, sizeof mem, "%" PRIu64, g.memory_bytes >> 20);
        snprintf(cc, sizeof cc, "%d.%d", g.cc_major, g.cc_minor);
        snprintf(numa, sizeof numa, "%d", g.numa_node);
        printf("%-4u  %-*s  %-12s  %10s  %-5s  %4s  %7u\n", i, w, g.name,
               g.pci_bus_id[0] != '\0' ? g.pci_bus_id : "-",
               g.memory_bytes != 0 ? mem : "-",
               g.cc_major > 0 ? cc : "-", g.numa_node >= 0 ? numa : "-",
               g.nvlinks_max);
    }
    if (n < 2) {
        return;
    }
    printf("\n%-6s", "");
    for (unsigned b = 0; b < n; b++) {
        snprintf(link, sizeof link, "GPU%u", b);
        printf("%-6s", link);
    }
    printf("NUMA\n");
    for (unsigned a = 0; a < n && ra_topo_gpu(t, a, &g) == 0; a++) {
        snprintf(link, sizeof link, "GPU%u", a);
        printf("%-6s", link);
        for (unsigned b = 0; b < n; b++) {
            printf("%-6s", link_name(t, a, b, link, sizeof link));
        }
        snprintf(numa, sizeof numa, "%d", g.numa_node);
        printf("%s\n", g.numa_node >= 0 ? numa : "-");
    }
    printf("\nX = self, NV# = # NVLinks, PXB = PCIe switches, PHB = host "
           "bridge,\nNODE = host bridges of one NUMA node, SYS = across "
           "sockets\n");
}

// check_numa warns about the first GPU whose NUMA node the topology
// lacks: the inventory's "numa" fields are not checked against hwloc, and
// placement could not bind that GPU's tasks anywhere.
static void
check_numa(const char *prog, const ra_topo_t *t)
{
    unsigned nn = ra_topo_numa_nodes(t);
    ra_gpu_info_t g;

    for (unsigned i = 0; ra_topo_gpu(t, i, &g) == 0; i++) {
        if (g.numa_node >= (int)nn) {
            fprintf(stderr, "%s: warning: GPU %u is on NUMA node %d, but "
                    "the topology has only %u NUMA node%s; describe the "
                    "machine the GPUs belong to with --synthetic or --xml\n",
                    prog, i, g.numa_node, nn, nn == 1 ? "" : "s");
            return;
        }
    }
}

static void
print_table(const ra_topo_t *t)
{
    char buf[256], size[32];
    unsigned nn = ra_topo_numa_nodes(t);

    printf("%s\n\n", ra_topo_summary(t, buf, sizeof buf));
    printf("%-20s %u\n", "packages", ra_topo_packages(t));
    printf("%-20s %u\n", "NUMA nodes", nn);
    printf("%-20s %u\n", "cores", ra_topo_cores(t));
    printf("%-20s %u\n", "PUs", ra_topo_pus(t));
    printf("%-20s", "cores per NUMA node");
    for (unsigned i = 0; i < nn; i++) {
        printf(" %u:%u", i, ra_topo_numa_cores(t, i));
    }
    printf("%s\n", nn == 0 ? " -" : "");
    for (unsigned l = 1; l <= 3; l++) {
        snprintf(buf, sizeof buf, "L%u cache", l);
        printf("%-20s %s\n", buf,
               fmt_bytes(ra_topo_cache_bytes(t, l), size, sizeof size));
    }
    printf("%-20s %u\n", "GPUs", ra_topo_gpus(t));
    if (ra_topo_gpus(t) > 0) {
        print_gpus(t);
    }
}

// print_json prints the document ra_topo_append_bson builds, without the
// key it is appended under, as relaxed extended JSON: plain numbers for
// the 64-bit sizes rather than {"$numberLong": ...}.
static int
print_json(const ra_topo_t *t)
{
    bson_t doc = BSON_INITIALIZER, inner;
    bson_iter_t it;
    const uint8_t *data = NULL;
    uint32_t len = 0;
    char *json = NULL;
    int rc;

    if ((rc = ra_topo_append_bson(t, &doc, "topology")) == 0
        && bson_iter_init_find(&it, &doc, "topology")
        && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_document(&it, &len, &data);
    }
    if (data == NULL || !bson_init_static(&inner, data, len)
        || (json = bson_as_relaxed_extended_json(&inner, NULL)) == NULL) {
        rc = rc != 0 ? rc : RA_ENOMEM;
    } else {
        printf("%s\n", json);
    }
    bson_free(json);
    bson_destroy(&doc);
    return rc;
}

int
ra__tool_topo(const char *prog, int argc, char **argv)
{
    topo_args_t a = {.json = false};
    ra_topo_t *t = NULL;
    int rc;

    if ((rc = parse_args(prog, argc, argv, &a)) != RA_TOOL_OK || a.help) {
        return rc;
    }
    if ((rc = ra_topo_load(&t, &a.o)) != 0) {
        return load_failed(prog, &a, rc);
    }
    check_numa(prog, t);
    if (a.json) {
        rc = print_json(t);
    } else {
        print_table(t);
    }
    ra_topo_destroy(&t);
    if (rc != 0) {
        fprintf(stderr, "%s: cannot build the JSON: %s (%s)\n", prog,
                ra_strerror(rc), ra_err_name(rc));
        return RA_TOOL_FAIL;
    }
    if (fflush(stdout) != 0) {
        perror(prog);
        return RA_TOOL_FAIL;
    }
    return RA_TOOL_OK;
}

// ra_topo.h - the machine as placement sees it: packages, NUMA nodes,
// cores, caches, GPUs and how the GPUs are linked.
//
// hwloc describes the CPUs, caches and NUMA nodes (of this machine, or of a
// synthetic description or XML file, for tests and simulation).  GPUs come
// from the CUDA driver, loaded at run time (a machine without a GPU or a
// driver has zero GPUs, and that is not an error), or from a GPU inventory
// file that describes devices and links by hand.  Debian's hwloc has no
// CUDA plugin, so a GPU is mapped to its NUMA node through its PCI bus id.
//
// GPU inventory files are JSON:
//
//   {"gpus": [{"name": "H100", "pci": "0000:18:00.0", "memory_mib": 81559,
//              "cc": "9.0", "numa": 0}, ...],
//    "links": [["X", "NV18", "PXB", "SYS"], ...]}
//
// "links" is the matrix `nvidia-smi topo -m` prints: X (self), NV<n>
// (NVLink with n links), PIX or PXB (through PCIe switches), PHB (through
// the host bridge), NODE (across host bridges within a NUMA node), SYS
// (across the inter-socket link).  "numa" may be omitted when "pci" maps
// to a PCI device of the hwloc topology.
//
// Threads: a topology is immutable once loaded; any thread may read it.
#ifndef RA_TOPO_H
#define RA_TOPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <bson/bson.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ra_topo ra_topo_t;

// How two GPUs talk, best first.  The scoring of GPU sets (ra_topo_pick_gpus)
// is built on this order.
typedef enum ra_gpu_link {
    RA_LINK_SELF = 0,
    RA_LINK_NVLINK = 1,      // NV<n>
    RA_LINK_PCIE_SWITCH = 2, // PIX, PXB
    RA_LINK_HOST_BRIDGE = 3, // PHB
    RA_LINK_NUMA = 4,        // NODE: same NUMA node, different bridges
    RA_LINK_SYSTEM = 5,      // SYS: across sockets
    RA_LINK_UNKNOWN = 6
} ra_gpu_link_t;

typedef struct ra_gpu_info {
    unsigned index;
    char name[96];
    char pci_bus_id[32];     // "0000:18:00.0", lower case
    uint64_t memory_bytes;
    int cc_major, cc_minor;  // compute capability
    int numa_node;           // -1 when unknown
    unsigned nvlinks_max;    // most NVLinks to any other GPU
} ra_gpu_info_t;

// Where a topology comes from.  All NULL: this machine (hwloc) and its
// CUDA devices.
typedef struct ra_topo_opts {
    const char *synthetic;   // hwloc synthetic description, e.g.
                             // "package:2 numa:2 core:8 pu:1"
    const char *xml_path;    // an hwloc XML export
    const char *gpu_file;    // a GPU inventory file (JSON, see above);
                             // replaces CUDA discovery
    bool no_cuda;            // skip CUDA discovery (zero GPUs unless a file)
} ra_topo_opts_t;

// ra_topo_load builds a topology.  Returns 0; RA_EINVAL (both synthetic and
// xml_path, or a malformed description); -ENOENT for a missing file;
// RA_EBADMSG for a malformed inventory file (logged with the reason);
// RA_ENOMEM.  A missing CUDA driver is not an error.  Caller owns *out.
int ra_topo_load(ra_topo_t **out, const ra_topo_opts_t *opts);

// ra_topo_destroy frees the topology and sets *t to NULL.  Safe on NULL.
void ra_topo_destroy(ra_topo_t **t);

// Counts of hardware objects.
unsigned ra_topo_packages(const ra_topo_t *t);
unsigned ra_topo_numa_nodes(const ra_topo_t *t);
unsigned ra_topo_cores(const ra_topo_t *t);
unsigned ra_topo_pus(const ra_topo_t *t);

// ra_topo_numa_cores returns how many cores NUMA node `numa` has (0 for an
// unknown node).
unsigned ra_topo_numa_cores(const ra_topo_t *t, unsigned numa);

// ra_topo_cache_bytes returns the size of the first cache of `level`
// (1-5) found, or 0.
uint64_t ra_topo_cache_bytes(const ra_topo_t *t, unsigned level);

// ra_topo_gpus returns the number of GPUs; ra_topo_gpu fills *out for GPU i
// (RA_EINVAL if i is out of range).
unsigned ra_topo_gpus(const ra_topo_t *t);
int ra_topo_gpu(const ra_topo_t *t, unsigned i, ra_gpu_info_t *out);

// ra_topo_gpu_link tells how GPUs a and b are linked (RA_LINK_UNKNOWN for an
// index out of range); ra_topo_gpu_nvlinks how many NVLinks join them.
ra_gpu_link_t ra_topo_gpu_link(const ra_topo_t *t, unsigned a, unsigned b);
unsigned ra_topo_gpu_nvlinks(const ra_topo_t *t, unsigned a, unsigned b);

// ra_topo_pick_gpus chooses `want` GPUs among those with avail[i] true
// (avail NULL: all) whose links are best, and stores their indices in
// out[0..want) in ascending order.  The score of a set is its worst pair
// link (lower is better), then the number of pairs at that link, then the
// spread over NUMA nodes, then the sum of NVLink counts (higher is better),
// then the lowest indices: an NVLink clique beats GPUs behind one PCIe
// switch, which beat GPUs on one NUMA node, which beat GPUs across
// sockets.  *numa is the NUMA node holding most of them (-1 if unknown).
// Returns 0, RA_EINVAL, or RA_EAGAIN when fewer than want are available.
int ra_topo_pick_gpus(const ra_topo_t *t, unsigned want, const bool *avail,
                      unsigned *out, int *numa);

// ra_topo_summary writes one line such as "2 packages, 4 NUMA nodes, 32
// cores, 32 PUs, 8 GPUs (H100, NVLink)" into buf.  Returns buf.
char *ra_topo_summary(const ra_topo_t *t, char *buf, size_t len);

// ra_topo_append_bson appends the topology (counts, caches, GPUs with their
// fields, the link matrix as strings like "NV18") to doc under key.
// Returns 0 or RA_ENOMEM.
int ra_topo_append_bson(const ra_topo_t *t, bson_t *doc, const char *key);

// ra_topo_bind_numa binds the calling thread to the cores of NUMA node
// `numa` of this machine's topology (hwloc cpubind).  Returns 0, RA_EINVAL
// (unknown node, or a synthetic or XML topology, which has nothing real to
// bind to, unless the XML was loaded with HWLOC_THISSYSTEM=1: then hwloc
// takes it as this machine's) or -errno.
int ra_topo_bind_numa(const ra_topo_t *t, unsigned numa);

// ra_topo_bind_pid binds every thread of process pid to the cores of NUMA
// node numa, or, with numa < 0, to all the cores this machine allows
// (which undoes a binding).  Threads it starts later inherit it.  Returns
// 0, RA_EINVAL (as for ra_topo_bind_numa, or pid <= 0) or -errno (-ESRCH:
// no such process; -EPERM).
int ra_topo_bind_pid(const ra_topo_t *t, pid_t pid, int numa);

// ra_topo_visible_devices writes the CUDA_VISIBLE_DEVICES value for GPUs
// idx[0..n) ("0,3") into buf.  Returns buf.
char *ra_topo_visible_devices(const unsigned *idx, size_t n, char *buf,
                              size_t len);

#ifdef __cplusplus
}
#endif
#endif

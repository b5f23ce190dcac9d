// gpu_impl.h - the topology's fields and the interface between topo.c and
// the GPU probe backends (gpu_cuda.c or gpu_none.c, chosen by configure).
//
// Internal to src/: nothing here is installed.
#ifndef RA_GPU_IMPL_H
#define RA_GPU_IMPL_H

#include <hwloc.h>

#include "ra_topo.h"

// The link codes of an inventory file, kept per pair so that a topology
// reports the same strings it was given (PIX and PXB are both a PCIe
// switch to placement, but not to a person reading the matrix).
typedef enum ra__link_code {
    RA__CODE_X = 0,
    RA__CODE_NV,
    RA__CODE_PIX,
    RA__CODE_PXB,
    RA__CODE_PHB,
    RA__CODE_NODE,
    RA__CODE_SYS,
    RA__CODE_UNKNOWN
} ra__link_code_t;

// The most GPUs a topology holds: the link matrix is n*n and placement
// scans sets of them; 64 is far more than one machine holds today.
#define RA__MAX_GPUS 64u

struct ra_topo {
    hwloc_topology_t hw;
    bool hw_loaded;          // hwloc_topology_load succeeded
    bool this_machine;       // neither synthetic nor XML: binding is real
    bool bindable;           // this machine, or an XML description of it
                             // (HWLOC_THISSYSTEM=1): binding is real
    unsigned ngpus;
    ra_gpu_info_t *gpus;     // ngpus entries
    uint8_t *code;           // ngpus * ngpus ra__link_code_t
    uint8_t *nvlinks;        // ngpus * ngpus NVLink counts
    uint8_t *peer;           // ngpus * ngpus peer access, or NULL (only
                             // the CUDA probe knows it)
};

// ra__topo_alloc_gpus sizes the GPU tables of t for n GPUs, zeroed, with
// every link RA__CODE_UNKNOWN except the diagonal.  Returns 0 or RA_ENOMEM.
int ra__topo_alloc_gpus(ra_topo_t *t, unsigned n);

// ra__topo_finish_gpus sets each GPU's index and nvlinks_max from the
// tables once they are filled.
void ra__topo_finish_gpus(ra_topo_t *t);

// ra__topo_pci_numa returns the logical index of the NUMA node nearest the
// PCI device bus_id ("0000:18:00.0") in t's hwloc topology, or -1 when the
// device is unknown or its locality spans several nodes.
int ra__topo_pci_numa(const ra_topo_t *t, const char *bus_id);

// ra__topo_pci_link classifies the PCIe path between two PCI devices of
// t's hwloc topology as nvidia-smi would: PIX, PXB, PHB, NODE or SYS;
// RA__CODE_UNKNOWN when either device is missing.
ra__link_code_t ra__topo_pci_link(const ra_topo_t *t, const char *bus_a,
                                  const char *bus_b);

// ra__topo_norm_busid rewrites a PCI bus id in any common spelling
// ("00000000:18:00.0", "0000:18:00.0", upper or lower case) as
// "dddd:bb:dd.f" in lower case.  Returns 0 or RA_EINVAL (unparsable).
int ra__topo_norm_busid(const char *in, char *out, size_t len);

// ra__gpu_probe fills t's GPU tables from the CUDA driver of this machine.
// A missing driver or a failing cuInit leaves zero GPUs and returns 0.
// Returns 0, RA_ENOMEM, or RA_ENOTSUP in a build without the CUDA probe.
int ra__gpu_probe(ra_topo_t *t);

// ra__topo_load_inventory fills t's GPU tables from the inventory file at
// path.  Returns 0, -errno (-ENOENT for a missing file), RA_EBADMSG (the
// reason is logged) or RA_ENOMEM.
int ra__topo_load_inventory(ra_topo_t *t, const char *path);

#endif

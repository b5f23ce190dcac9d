// gpu_cuda.c - the GPU probe through the CUDA driver API, loaded with
// dlopen at run time so that librayo neither links libcuda nor needs a GPU
// to start: a machine without the driver simply has zero GPUs.
//
// The few driver entry points used are declared here as function pointer
// types (their C ABI has been stable since CUDA 4), so the build does not
// depend on cuda.h.  NVLink counts come from NVML, also loaded at run
// time and optional: without it GPUs are linked through the PCI tree only.
#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_impl.h"
#include "ra_error.h"
#include "ra_log.h"

#define LOG "topo"

// ---- the CUDA driver -----------------------------------------------------

typedef int cu_result_t;     // CUresult: 0 is CUDA_SUCCESS
typedef int cu_device_t;     // CUdevice: an ordinal

enum {
    CU_ATTR_CC_MAJOR = 75,   // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
    CU_ATTR_CC_MINOR = 76    // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR
};

typedef struct cuda {
    void *lib;
    cu_result_t (*init)(unsigned flags);
    cu_result_t (*count)(int *n);
    cu_result_t (*get)(cu_device_t *dev, int ordinal);
    cu_result_t (*name)(char *buf, int len, cu_device_t dev);
    cu_result_t (*total_mem)(size_t *bytes, cu_device_t dev);
    cu_result_t (*attr)(int *v, int attr, cu_device_t dev);
    cu_result_t (*bus_id)(char *buf, int len, cu_device_t dev);
    cu_result_t (*can_peer)(int *can, cu_device_t a, cu_device_t b);
} cuda_t;

// sym stores the address of name in *fn; dlsym returns void *, which C
// only lets us turn into a function pointer through memcpy.
static bool
sym(void *lib, const char *name, void *fn, size_t size)
{
    void *p = dlsym(lib, name);

    if (p == NULL) {
        ra_log_debug(LOG, "CUDA driver lacks %s", name);
        return false;
    }
    memcpy(fn, &p, size);
    return true;
}

#define SYM(lib, name, fn) sym((lib), (name), &(fn), sizeof(fn))

static bool
cuda_open(cuda_t *cu)
{
    cu->lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (cu->lib == NULL) {
        ra_log_debug(LOG, "no CUDA driver (%s): 0 GPUs", dlerror());
        return false;
    }
    // cuDeviceTotalMem_v2 is what cuda.h maps cuDeviceTotalMem to: the
    // original symbol has a 32-bit size.
    if (SYM(cu->lib, "cuInit", cu->init)
        && SYM(cu->lib, "cuDeviceGetCount", cu->count)
        && SYM(cu->lib, "cuDeviceGet", cu->get)
        && SYM(cu->lib, "cuDeviceGetName", cu->name)
        && SYM(cu->lib, "cuDeviceTotalMem_v2", cu->total_mem)
        && SYM(cu->lib, "cuDeviceGetAttribute", cu->attr)
        && SYM(cu->lib, "cuDeviceGetPCIBusId", cu->bus_id)
        && SYM(cu->lib, "cuDeviceCanAccessPeer", cu->can_peer)) {
        return true;
    }
    dlclose(cu->lib);
    cu->lib = NULL;
    return false;
}

// ---- NVML, for NVLink counts ---------------------------------------------

typedef int nvml_return_t;   // nvmlReturn_t: 0 is NVML_SUCCESS
typedef void *nvml_device_t;

// nvmlPciInfo_t as of NVML 11 and 12; only busId is read.
typedef struct nvml_pci {
    char bus_id_legacy[16];
    unsigned domain, bus, device, pci_device_id, pci_subsystem_id;
    char bus_id[32];
} nvml_pci_t;

// NVML_NVLINK_MAX_LINKS of current drivers; asking for a link a GPU does
// not have just fails.
#define NVLINK_MAX 18u

typedef struct nvml {
    void *lib;
    nvml_return_t (*init)(void);
    nvml_return_t (*shutdown)(void);
    nvml_return_t (*by_bus)(const char *bus_id, nvml_device_t *dev);
    nvml_return_t (*state)(nvml_device_t dev, unsigned link, int *active);
    nvml_return_t (*remote)(nvml_device_t dev, unsigned link, nvml_pci_t *pci);
} nvml_t;

static int
gpu_by_bus(const ra_topo_t *t, const char *bus_id)
{
    char norm[32];

    if (ra__topo_norm_busid(bus_id, norm, sizeof(norm)) != 0) {
        return -1;
    }
    for (unsigned i = 0; i < t->ngpus; i++) {
        if (strcmp(t->gpus[i].pci_bus_id, norm) == 0) {
            return (int)i;
        }
    }
    return -1;
}

// count_links adds GPU i's active NVLinks to its row of t->nvlinks and
// returns how many lead to something other than a GPU we know: an
// NVSwitch, through which every GPU reaches every other.
static unsigned
count_links(ra_topo_t *t, nvml_t *nv, unsigned i)
{
    nvml_device_t dev = NULL;
    unsigned to_switch = 0;

    if (nv->by_bus(t->gpus[i].pci_bus_id, &dev) != 0) {
        return 0;
    }
    for (unsigned l = 0; l < NVLINK_MAX; l++) {
        nvml_pci_t pci;
        int active = 0;
        int peer;

        memset(&pci, 0, sizeof(pci));
        if (nv->state(dev, l, &active) != 0 || !active
            || nv->remote(dev, l, &pci) != 0) {
            continue;
        }
        pci.bus_id[sizeof(pci.bus_id) - 1] = '\0';
        peer = gpu_by_bus(t, pci.bus_id);
        if (peer < 0) {
            to_switch++;
        } else if ((unsigned)peer != i) {
            uint8_t *c = &t->nvlinks[(size_t)i * t->ngpus + (unsigned)peer];

            *c = *c < 255 ? (uint8_t)(*c + 1) : *c;
        }
    }
    return to_switch;
}

// nvml_links fills in NVLink counts and codes.  Every failure here only
// costs information, so it is logged at debug level and ignored.
static void
nvml_links(ra_topo_t *t)
{
    unsigned sw[RA__MAX_GPUS] = {0};
    nvml_t nv = {0};

    nv.lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (nv.lib == NULL) {
        ra_log_debug(LOG, "no NVML (%s): NVLinks unknown", dlerror());
        return;
    }
    if (!SYM(nv.lib, "nvmlInit_v2", nv.init)
        || !SYM(nv.lib, "nvmlShutdown", nv.shutdown)
        || !SYM(nv.lib, "nvmlDeviceGetHandleByPciBusId_v2", nv.by_bus)
        || !SYM(nv.lib, "nvmlDeviceGetNvLinkState", nv.state)
        || !SYM(nv.lib, "nvmlDeviceGetNvLinkRemotePciInfo_v2", nv.remote)) {
        goto done;
    }
    if (nv.init() != 0) {
        ra_log_debug(LOG, "nvmlInit failed: NVLinks unknown");
        goto done;
    }
    for (unsigned i = 0; i < t->ngpus; i++) {
        sw[i] = count_links(t, &nv, i);
    }
    nv.shutdown();
    for (unsigned a = 0; a < t->ngpus; a++) {
        for (unsigned b = 0; b < t->ngpus; b++) {
            size_t k = (size_t)a * t->ngpus + b;
            size_t r = (size_t)b * t->ngpus + a;
            unsigned n = t->nvlinks[k] < t->nvlinks[r] ? t->nvlinks[k]
                                                       : t->nvlinks[r];

            // Each side counts its own links; the smaller count keeps the
            // matrix symmetric if one side's report is incomplete.  Across
            // an NVSwitch a pair gets the links both have to the fabric.
            if (n == 0 && a != b && sw[a] > 0 && sw[b] > 0) {
                n = sw[a] < sw[b] ? sw[a] : sw[b];
            }
            if (a != b && n > 0) {
                t->code[k] = RA__CODE_NV;
            }
            t->nvlinks[k] = a == b ? 0 : (uint8_t)(n > 255 ? 255 : n);
        }
    }
done:
    dlclose(nv.lib);
}

// ---- the probe -----------------------------------------------------------

static void
probe_gpu(ra_topo_t *t, cuda_t *cu, unsigned i, const cu_device_t *dev)
{
    ra_gpu_info_t *g = &t->gpus[i];
    char bus[32] = "";
    size_t mem = 0;

    if (cu->name(g->name, (int)sizeof(g->name), dev[i]) != 0) {
        snprintf(g->name, sizeof(g->name), "GPU %u", i);
    }
    g->name[sizeof(g->name) - 1] = '\0';
    if (cu->total_mem(&mem, dev[i]) == 0) {
        g->memory_bytes = mem;
    }
    if (cu->attr(&g->cc_major, CU_ATTR_CC_MAJOR, dev[i]) != 0
        || cu->attr(&g->cc_minor, CU_ATTR_CC_MINOR, dev[i]) != 0) {
        g->cc_major = g->cc_minor = 0;
    }
    if (cu->bus_id(bus, (int)sizeof(bus), dev[i]) == 0
        && ra__topo_norm_busid(bus, g->pci_bus_id, sizeof(g->pci_bus_id))
               == 0) {
        g->numa_node = ra__topo_pci_numa(t, g->pci_bus_id);
    }
}

// Whether this build runs under AddressSanitizer (gcc defines the first,
// clang answers the second).
#if defined(__SANITIZE_ADDRESS__)
#define RA__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RA__ASAN 1
#endif
#endif

// cuda_say_failed logs why a machine with the CUDA driver gets no GPUs:
// cuInit or cuDeviceGetCount returned rc, or the count n is 0.  A driver
// without a device (CUDA_ERROR_NO_DEVICE, 100) is a normal machine and is
// logged at debug level; any other failure hides GPUs that are there and
// is a warning that says what to try.
static void
cuda_say_failed(cu_result_t rc, int n)
{
    enum { CU_NO_DEVICE = 100 };

    if (rc == 0 || rc == CU_NO_DEVICE) {
        ra_log_debug(LOG, "CUDA driver: no device (%d, %d found): 0 GPUs",
                     rc, n);
        return;
    }
#ifdef RA__ASAN
    // Under ASan the driver fails when the shadow gap, where it maps
    // memory, is protected.
    ra_log_warn(LOG, "CUDA driver: cuInit/cuDeviceGetCount failed with "
                     "error %d under AddressSanitizer: run with "
                     "ASAN_OPTIONS=protect_shadow_gap=0 so that the driver "
                     "can map its memory; 0 GPUs",
                rc);
#else
    ra_log_warn(LOG, "CUDA driver: cuInit/cuDeviceGetCount failed with "
                     "error %d (a CUresult, see cuda.h; nvidia-smi shows "
                     "whether the driver and its devices work): 0 GPUs",
                rc);
#endif
}

int
ra__gpu_probe(ra_topo_t *t)
{
    cu_device_t dev[RA__MAX_GPUS];
    cuda_t cu = {0};
    unsigned m;
    int n = 0;
    int rc;

    if (!cuda_open(&cu)) {
        return 0;
    }
    if ((rc = cu.init(0)) != 0 || (rc = cu.count(&n)) != 0 || n <= 0) {
        cuda_say_failed(rc, n);
        return 0;                   // the library stays loaded, see below
    }
    if ((unsigned)n > RA__MAX_GPUS) {
        ra_log_warn(LOG, "%d CUDA devices, using the first %u", n,
                    RA__MAX_GPUS);
        n = (int)RA__MAX_GPUS;
    }
    // A device that cannot be opened would leave a hole in the ordinals
    // that CUDA_VISIBLE_DEVICES refers to; keep the ones before it.
    for (m = 0; m < (unsigned)n && cu.get(&dev[m], (int)m) == 0; m++) {
    }
    if (m < (unsigned)n) {
        ra_log_warn(LOG, "CUDA device %u unreadable: keeping %u GPUs", m, m);
    }
    if (m == 0) {
        return 0;
    }
    if ((rc = ra__topo_alloc_gpus(t, m)) != 0
        || (t->peer = calloc((size_t)m * m, 1)) == NULL) {
        return RA_ENOMEM;           // ra_topo_load frees the tables
    }
    for (unsigned i = 0; i < m; i++) {
        probe_gpu(t, &cu, i, dev);
    }
    for (unsigned a = 0; a < m; a++) {
        for (unsigned b = 0; b < m; b++) {
            size_t k = (size_t)a * m + b;
            int can = a == b;

            if (a != b) {
                can = cu.can_peer(&can, dev[a], dev[b]) == 0 && can;
                t->code[k] = (uint8_t)ra__topo_pci_link(
                    t, t->gpus[a].pci_bus_id, t->gpus[b].pci_bus_id);
            }
            t->peer[k] = (uint8_t)(can != 0);
        }
    }
    nvml_links(t);
    // libcuda stays loaded: after cuInit the driver runs threads of its
    // own, and unloading it under them is not safe.
    return 0;
}

// topo.c - loading a topology (see ra_topo.h): hwloc for the CPUs, caches,
// NUMA nodes and PCI tree, then GPUs from an inventory file or the probe
// backend; the queries, the summary, the BSON export and CPU binding.
//
// Everything is computed at load time or read from hwloc, which is
// read-only once loaded, so a topology needs no lock.
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <bson/bson.h>
#include <hwloc.h>

#include "gpu_impl.h"
#include "ra_error.h"
#include "ra_log.h"
#include "ra_topo.h"

#define LOG "topo"

void
ra_topo_destroy(ra_topo_t **t)
{
    if (t == NULL || *t == NULL) {
        return;
    }
    if ((*t)->hw != NULL) {
        hwloc_topology_destroy((*t)->hw);
    }
    free((*t)->gpus);
    free((*t)->code);
    free((*t)->nvlinks);
    free((*t)->peer);
    free(*t);
    *t = NULL;
}

int
ra__topo_alloc_gpus(ra_topo_t *t, unsigned n)
{
    size_t nn = (size_t)n * n;

    if (n == 0) {
        return 0;
    }
    t->gpus = calloc(n, sizeof(*t->gpus));
    t->code = malloc(nn);
    t->nvlinks = calloc(nn, 1);
    if (t->gpus == NULL || t->code == NULL || t->nvlinks == NULL) {
        return RA_ENOMEM;           // destroy frees whatever was allocated
    }
    memset(t->code, RA__CODE_UNKNOWN, nn);
    for (unsigned i = 0; i < n; i++) {
        t->code[(size_t)i * n + i] = RA__CODE_X;
        t->gpus[i].numa_node = -1;
    }
    t->ngpus = n;
    return 0;
}

void
ra__topo_finish_gpus(ra_topo_t *t)
{
    for (unsigned i = 0; i < t->ngpus; i++) {
        unsigned most = 0;

        for (unsigned j = 0; j < t->ngpus; j++) {
            unsigned nv = t->nvlinks[(size_t)i * t->ngpus + j];

            most = nv > most ? nv : most;
        }
        t->gpus[i].index = i;
        t->gpus[i].nvlinks_max = most;
    }
}

int
ra__topo_norm_busid(const char *in, char *out, size_t len)
{
    unsigned dom, bus, dev, fn;
    char tail;

    if (in == NULL
        || sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4
        || bus > 0xff || dev > 0x1f || fn > 7) {
        return RA_EINVAL;
    }
    snprintf(out, len, "%04x:%02x:%02x.%x", dom & 0xffffu, bus, dev, fn);
    return 0;
}

static hwloc_obj_t
pcidev(const ra_topo_t *t, const char *bus_id)
{
    char norm[32];

    if (t->hw == NULL || !t->hw_loaded
        || ra__topo_norm_busid(bus_id, norm, sizeof(norm)) != 0) {
        return NULL;
    }
    return hwloc_get_pcidev_by_busidstring(t->hw, norm);
}

static int
obj_numa(const ra_topo_t *t, hwloc_obj_t obj)
{
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(t->hw, obj);
    hwloc_obj_t node;

    // A device whose nearest CPU-side object spans several NUMA nodes
    // (attached to the whole machine) is near none of them in particular.
    if (anc == NULL || anc->nodeset == NULL
        || hwloc_bitmap_weight(anc->nodeset) != 1) {
        return -1;
    }
    node = hwloc_get_numanode_obj_by_os_index(
        t->hw, (unsigned)hwloc_bitmap_first(anc->nodeset));
    return node == NULL ? -1 : (int)node->logical_index;
}

int
ra__topo_pci_numa(const ra_topo_t *t, const char *bus_id)
{
    hwloc_obj_t obj = pcidev(t, bus_id);

    return obj == NULL ? -1 : obj_numa(t, obj);
}

ra__link_code_t
ra__topo_pci_link(const ra_topo_t *t, const char *bus_a, const char *bus_b)
{
    hwloc_obj_t a = pcidev(t, bus_a);
    hwloc_obj_t b = pcidev(t, bus_b);
    hwloc_obj_t lca = NULL;
    int na, nb;

    if (a == NULL || b == NULL) {
        return RA__CODE_UNKNOWN;
    }
    // hwloc_get_common_ancestor_obj compares depths, which I/O objects do
    // not have in a usable form, so walk the parents by hand.
    for (hwloc_obj_t x = a->parent; x != NULL && lca == NULL; x = x->parent) {
        for (hwloc_obj_t y = b->parent; y != NULL; y = y->parent) {
            if (x == y) {
                lca = x;
                break;
            }
        }
    }
    if (lca != NULL && lca->type == HWLOC_OBJ_BRIDGE) {
        if (lca->attr->bridge.upstream_type == HWLOC_OBJ_BRIDGE_HOST) {
            return RA__CODE_PHB;
        }
        // One switch port above both is PIX; a path through several
        // bridges of the same switch tree is PXB.
        return a->parent == lca && b->parent == lca ? RA__CODE_PIX
                                                    : RA__CODE_PXB;
    }
    na = obj_numa(t, a);
    nb = obj_numa(t, b);
    if (na >= 0 && na == nb) {
        return RA__CODE_NODE;
    }
    return RA__CODE_SYS;
}

static int
hw_load(ra_topo_t *t, const ra_topo_opts_t *o)
{
    struct stat st;

    if (hwloc_topology_init(&t->hw) != 0) {
        t->hw = NULL;
        return RA_ENOMEM;
    }
    if (o->synthetic != NULL) {
        if (hwloc_topology_set_synthetic(t->hw, o->synthetic) != 0) {
            ra_log_warn(LOG, "bad synthetic topology \"%s\"", o->synthetic);
            return RA_EINVAL;
        }
    } else if (o->xml_path != NULL) {
        // hwloc reports a missing file only as a failed load; look first
        // so the caller gets -ENOENT rather than a vague RA_EINVAL.
        if (stat(o->xml_path, &st) != 0) {
            return -errno;
        }
        if (hwloc_topology_set_xml(t->hw, o->xml_path) != 0) {
            ra_log_warn(LOG, "%s: not an hwloc XML file", o->xml_path);
            return RA_EINVAL;
        }
    } else {
        t->this_machine = true;
    }
    // GPUs are placed through their PCI bus ids, so the PCI tree (bridges
    // included) must be kept; hwloc drops I/O objects by default.
    if (o->synthetic == NULL) {
        hwloc_topology_set_io_types_filter(t->hw,
                                           HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    }
    // On Linux hwloc's own sysfs reader finds the same PCI devices and
    // bridges as its libpciaccess component, which also reads every
    // device's config space and leaks a little on each load.  Older hwloc
    // lacks the call; the load then simply uses both.
    //
    // hwloc's GPU components (plugins where a distribution ships them, as
    // Ubuntu's libhwloc-plugins does) start the vendors' libraries (NVML,
    // CUDA, OpenCL, ROCm SMI, Level Zero) on every load: hundreds of
    // milliseconds, and what they allocate is reported as leaked once the
    // plugin is unloaded.  rayo asks the CUDA driver itself (gpu_cuda.c) and
    // places GPUs through the PCI tree, so none of them is needed.
    if (t->this_machine) {
        static const char *const off[] = {
            "pci", "cuda", "nvml", "opencl", "rsmi", "levelzero", "gl",
        };

        for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
            (void)hwloc_topology_set_components(
                t->hw, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, off[i]);
        }
    }
    if (hwloc_topology_load(t->hw) != 0) {
        ra_log_warn(LOG, "hwloc could not load the topology: %s",
                    strerror(errno));
        return RA_EINVAL;
    }
    t->hw_loaded = true;
    // An XML file loaded with HWLOC_THISSYSTEM=1 describes this machine,
    // as one made by `lstopo` here would: hwloc binds through it.
    t->bindable = t->this_machine ||
                  (o->synthetic == NULL && hwloc_topology_is_thissystem(t->hw));
    return 0;
}

int
ra_topo_load(ra_topo_t **out, const ra_topo_opts_t *opts)
{
    static const ra_topo_opts_t none;
    const ra_topo_opts_t *o = opts != NULL ? opts : &none;
    ra_topo_t *t = NULL;
    int rc;

    if (out == NULL || (o->synthetic != NULL && o->xml_path != NULL)) {
        return RA_EINVAL;
    }
    *out = NULL;
    if ((t = calloc(1, sizeof(*t))) == NULL) {
        return RA_ENOMEM;
    }
    if ((rc = hw_load(t, o)) != 0) {
        goto fail;
    }
    if (o->gpu_file != NULL) {
        rc = ra__topo_load_inventory(t, o->gpu_file);
    } else if (!o->no_cuda && t->this_machine) {
        // A build without the probe sees no GPUs, as a machine without a
        // driver does: placement then simply has none to hand out.
        rc = ra__gpu_probe(t);
        if (rc == RA_ENOTSUP) {
            ra_log_debug(LOG, "built without the CUDA probe: 0 GPUs");
            rc = 0;
        }
    }
    if (rc != 0) {
        goto fail;
    }
    ra__topo_finish_gpus(t);
    *out = t;
    return 0;
fail:
    ra_topo_destroy(&t);
    return rc;
}

static unsigned
count(const ra_topo_t *t, hwloc_obj_type_t type)
{
    int n;

    if (t == NULL || t->hw == NULL) {
        return 0;
    }
    n = hwloc_get_nbobjs_by_type(t->hw, type);
    return n > 0 ? (unsigned)n : 0;
}

unsigned
ra_topo_packages(const ra_topo_t *t)
{
    return count(t, HWLOC_OBJ_PACKAGE);
}

unsigned
ra_topo_numa_nodes(const ra_topo_t *t)
{
    return count(t, HWLOC_OBJ_NUMANODE);
}

unsigned
ra_topo_cores(const ra_topo_t *t)
{
    return count(t, HWLOC_OBJ_CORE);
}

unsigned
ra_topo_pus(const ra_topo_t *t)
{
    return count(t, HWLOC_OBJ_PU);
}

static hwloc_obj_t
numa_obj(const ra_topo_t *t, unsigned numa)
{
    if (t == NULL || t->hw == NULL) {
        return NULL;
    }
    return hwloc_get_obj_by_type(t->hw, HWLOC_OBJ_NUMANODE, numa);
}

unsigned
ra_topo_numa_cores(const ra_topo_t *t, unsigned numa)
{
    hwloc_obj_t node = numa_obj(t, numa);
    int n;

    if (node == NULL || node->cpuset == NULL) {
        return 0;
    }
    n = hwloc_get_nbobjs_inside_cpuset_by_type(t->hw, node->cpuset,
                                               HWLOC_OBJ_CORE);
    return n > 0 ? (unsigned)n : 0;
}

uint64_t
ra_topo_cache_bytes(const ra_topo_t *t, unsigned level)
{
    static const hwloc_obj_type_t types[] = {
        HWLOC_OBJ_L1CACHE, HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L3CACHE,
        HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L5CACHE};
    hwloc_obj_t c;

    if (t == NULL || t->hw == NULL || level < 1 || level > 5) {
        return 0;
    }
    // These are the data or unified caches; hwloc keeps instruction caches
    // apart (HWLOC_OBJ_L1ICACHE), and they are not what anyone sizing a
    // working set means by "L1".
    c = hwloc_get_obj_by_type(t->hw, types[level - 1], 0);
    return c == NULL ? 0 : c->attr->cache.size;
}

unsigned
ra_topo_gpus(const ra_topo_t *t)
{
    return t == NULL ? 0 : t->ngpus;
}

int
ra_topo_gpu(const ra_topo_t *t, unsigned i, ra_gpu_info_t *out)
{
    if (t == NULL || out == NULL || i >= t->ngpus) {
        return RA_EINVAL;
    }
    *out = t->gpus[i];
    return 0;
}

static ra_gpu_link_t
code_link(ra__link_code_t c)
{
    switch (c) {
    case RA__CODE_X:
        return RA_LINK_SELF;
    case RA__CODE_NV:
        return RA_LINK_NVLINK;
    case RA__CODE_PIX:
    case RA__CODE_PXB:
        return RA_LINK_PCIE_SWITCH;
    case RA__CODE_PHB:
        return RA_LINK_HOST_BRIDGE;
    case RA__CODE_NODE:
        return RA_LINK_NUMA;
    case RA__CODE_SYS:
        return RA_LINK_SYSTEM;
    default:
        return RA_LINK_UNKNOWN;
    }
}

ra_gpu_link_t
ra_topo_gpu_link(const ra_topo_t *t, unsigned a, unsigned b)
{
    if (t == NULL || a >= t->ngpus || b >= t->ngpus) {
        return RA_LINK_UNKNOWN;
    }
    return code_link((ra__link_code_t)t->code[(size_t)a * t->ngpus + b]);
}

unsigned
ra_topo_gpu_nvlinks(const ra_topo_t *t, unsigned a, unsigned b)
{
    if (t == NULL || a >= t->ngpus || b >= t->ngpus) {
        return 0;
    }
    return t->nvlinks[(size_t)a * t->ngpus + b];
}

// link_str writes the nvidia-smi spelling of the link between a and b.
static const char *
link_str(const ra_topo_t *t, unsigned a, unsigned b, char *buf, size_t len)
{
    static const char *const names[] = {"X",   "NV",   "PIX", "PXB",
                                        "PHB", "NODE", "SYS", "?"};
    size_t k = (size_t)a * t->ngpus + b;

    if (t->code[k] == RA__CODE_NV) {
        snprintf(buf, len, "NV%u", (unsigned)t->nvlinks[k]);
        return buf;
    }
    return names[t->code[k] <= RA__CODE_UNKNOWN ? t->code[k]
                                                : RA__CODE_UNKNOWN];
}

char *
ra_topo_summary(const ra_topo_t *t, char *buf, size_t len)
{
    ra_gpu_link_t best = RA_LINK_UNKNOWN;
    static const char *const kinds[] = {"self",        "NVLink",
                                        "PCIe switch", "host bridge",
                                        "NUMA",        "system",
                                        "unknown"};
    int n;

    if (buf == NULL || len == 0) {
        return buf;
    }
    n = snprintf(buf, len, "%u packages, %u NUMA nodes, %u cores, %u PUs, "
                           "%u GPUs",
                 ra_topo_packages(t), ra_topo_numa_nodes(t), ra_topo_cores(t),
                 ra_topo_pus(t), ra_topo_gpus(t));
    if (n < 0 || (size_t)n >= len || ra_topo_gpus(t) == 0) {
        return buf;
    }
    // The best link between any two GPUs says what a job of two can hope
    // for; a single GPU has no link to report.
    for (unsigned a = 0; a < t->ngpus; a++) {
        for (unsigned b = a + 1; b < t->ngpus; b++) {
            ra_gpu_link_t l = ra_topo_gpu_link(t, a, b);

            best = l < best ? l : best;
        }
    }
    if (t->ngpus > 1) {
        snprintf(buf + n, len - (size_t)n, " (%s, %s)", t->gpus[0].name,
                 kinds[best]);
    } else {
        snprintf(buf + n, len - (size_t)n, " (%s)", t->gpus[0].name);
    }
    return buf;
}

static bool
append_gpus(const ra_topo_t *t, bson_t *doc)
{
    bson_t arr, g, row, links;
    char key[16], s[16];
    bool ok = true;

    ok = ok && BSON_APPEND_ARRAY_BEGIN(doc, "gpus", &arr);
    for (unsigned i = 0; ok && i < t->ngpus; i++) {
        const ra_gpu_info_t *gi = &t->gpus[i];

        snprintf(key, sizeof(key), "%u", i);
        ok = ok && bson_append_document_begin(&arr, key, -1, &g)
             && BSON_APPEND_INT32(&g, "index", (int32_t)gi->index)
             && BSON_APPEND_UTF8(&g, "name", gi->name)
             && BSON_APPEND_UTF8(&g, "pci", gi->pci_bus_id)
             && BSON_APPEND_INT64(&g, "memory_bytes",
                                  (int64_t)gi->memory_bytes)
             && BSON_APPEND_INT32(&g, "cc_major", gi->cc_major)
             && BSON_APPEND_INT32(&g, "cc_minor", gi->cc_minor)
             && BSON_APPEND_INT32(&g, "numa", gi->numa_node)
             && BSON_APPEND_INT32(&g, "nvlinks_max",
                                  (int32_t)gi->nvlinks_max)
             && bson_append_document_end(&arr, &g);
    }
    ok = ok && bson_append_array_end(doc, &arr);
    ok = ok && BSON_APPEND_ARRAY_BEGIN(doc, "links", &links);
    for (unsigned a = 0; ok && a < t->ngpus; a++) {
        snprintf(key, sizeof(key), "%u", a);
        ok = ok && bson_append_array_begin(&links, key, -1, &row);
        for (unsigned b = 0; ok && b < t->ngpus; b++) {
            snprintf(key, sizeof(key), "%u", b);
            ok = ok && BSON_APPEND_UTF8(&row, key,
                                        link_str(t, a, b, s, sizeof(s)));
        }
        ok = ok && bson_append_array_end(&links, &row);
    }
    ok = ok && bson_append_array_end(doc, &links);
    if (!ok || t->peer == NULL) {
        return ok;
    }
    ok = ok && BSON_APPEND_ARRAY_BEGIN(doc, "peer", &links);
    for (unsigned a = 0; ok && a < t->ngpus; a++) {
        snprintf(key, sizeof(key), "%u", a);
        ok = ok && bson_append_array_begin(&links, key, -1, &row);
        for (unsigned b = 0; ok && b < t->ngpus; b++) {
            snprintf(key, sizeof(key), "%u", b);
            ok = ok && BSON_APPEND_BOOL(&row, key,
                                        t->peer[(size_t)a * t->ngpus + b]);
        }
        ok = ok && bson_append_array_end(&links, &row);
    }
    return ok && bson_append_array_end(doc, &links);
}

int
ra_topo_append_bson(const ra_topo_t *t, bson_t *doc, const char *key)
{
    bson_t sub, caches;
    bool ok;

    if (t == NULL || doc == NULL || key == NULL) {
        return RA_EINVAL;
    }
    // libbson fails an append only when the document would pass its size
    // limit, which for a topology means memory ran out.
    ok = bson_append_document_begin(doc, key, -1, &sub)
         && BSON_APPEND_INT32(&sub, "packages", (int32_t)ra_topo_packages(t))
         && BSON_APPEND_INT32(&sub, "numa_nodes",
                              (int32_t)ra_topo_numa_nodes(t))
         && BSON_APPEND_INT32(&sub, "cores", (int32_t)ra_topo_cores(t))
         && BSON_APPEND_INT32(&sub, "pus", (int32_t)ra_topo_pus(t))
         && BSON_APPEND_DOCUMENT_BEGIN(&sub, "caches", &caches);
    for (unsigned l = 1; ok && l <= 5; l++) {
        char name[4];
        uint64_t bytes = ra_topo_cache_bytes(t, l);

        snprintf(name, sizeof(name), "L%u", l);
        ok = bytes == 0 || BSON_APPEND_INT64(&caches, name, (int64_t)bytes);
    }
    ok = ok && bson_append_document_end(&sub, &caches)
         && append_gpus(t, &sub) && bson_append_document_end(doc, &sub);
    return ok ? 0 : RA_ENOMEM;
}

int
ra_topo_bind_numa(const ra_topo_t *t, unsigned numa)
{
    hwloc_obj_t node = numa_obj(t, numa);

    if (node == NULL || !t->bindable || node->cpuset == NULL
        || hwloc_bitmap_iszero(node->cpuset)) {
        return RA_EINVAL;
    }
    if (hwloc_set_cpubind(t->hw, node->cpuset, HWLOC_CPUBIND_THREAD) != 0) {
        return errno != 0 ? -errno : RA_EINVAL;
    }
    return 0;
}

int
ra_topo_bind_pid(const ra_topo_t *t, pid_t pid, int numa)
{
    hwloc_const_cpuset_t set;

    if (t == NULL || !t->bindable || pid <= 0) {
        return RA_EINVAL;
    }
    if (numa >= 0) {
        hwloc_obj_t node = numa_obj(t, (unsigned)numa);
        if (node == NULL || node->cpuset == NULL ||
            hwloc_bitmap_iszero(node->cpuset)) {
            return RA_EINVAL;
        }
        set = node->cpuset;
    } else {
        set = hwloc_topology_get_allowed_cpuset(t->hw);
    }
    // Every thread of the process, not only its main one.
    if (hwloc_set_proc_cpubind(t->hw, pid, set, HWLOC_CPUBIND_PROCESS) != 0) {
        return errno != 0 ? -errno : RA_EINVAL;
    }
    return 0;
}

char *
ra_topo_visible_devices(const unsigned *idx, size_t n, char *buf, size_t len)
{
    size_t used = 0;

    if (buf == NULL || len == 0) {
        return buf;
    }
    buf[0] = '\0';
    for (size_t i = 0; idx != NULL && i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%u", i ? "," : "",
                         idx[i]);

        // A cut-off "12" would read as device 1: keep whole entries only.
        if (w < 0 || used + (size_t)w >= len) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)w;
    }
    return buf;
}

// dgx1.h - the GPU inventory the GPU tests share: a DGX-1 style hybrid
// cube mesh of eight V100s, four per socket, each with six NVLinks spread
// over NV1 and NV2 links, GPUs 0-3 on the first socket and 4-7 on the
// second, two GPUs per NUMA node of the synthetic machine MACHINE (which
// has four).
#ifndef RA_TEST_DGX1_H
#define RA_TEST_DGX1_H

#define MACHINE "package:2 numa:2 core:8 pu:1"

#define DGX1                                                               \
    "{\"gpus\": ["                                                         \
    "{\"name\": \"V100\", \"pci\": \"0000:06:00.0\", \"memory_mib\": 32768," \
    " \"cc\": \"7.0\", \"numa\": 0},"                                      \
    "{\"name\": \"V100\", \"pci\": \"0000:07:00.0\", \"numa\": 0},"        \
    "{\"name\": \"V100\", \"pci\": \"0000:0A:00.0\", \"numa\": 1},"        \
    "{\"name\": \"V100\", \"pci\": \"0000:0b:00.0\", \"numa\": 1},"        \
    "{\"name\": \"V100\", \"pci\": \"0000:85:00.0\", \"numa\": 2},"        \
    "{\"name\": \"V100\", \"pci\": \"0000:86:00.0\", \"numa\": 2},"        \
    "{\"name\": \"V100\", \"pci\": \"0000:89:00.0\", \"numa\": 3},"        \
    "{\"name\": \"V100\", \"pci\": \"00000000:8A:00.0\", \"numa\": 3}],"   \
    "\"links\": ["                                                         \
    "[\"X\",  \"NV1\", \"NV1\", \"NV2\", \"NV2\", \"SYS\", \"SYS\", \"SYS\"]," \
    "[\"NV1\", \"X\",  \"NV2\", \"NV1\", \"SYS\", \"NV2\", \"SYS\", \"SYS\"]," \
    "[\"NV1\", \"NV2\", \"X\",  \"NV2\", \"SYS\", \"SYS\", \"NV1\", \"SYS\"]," \
    "[\"NV2\", \"NV1\", \"NV2\", \"X\",  \"SYS\", \"SYS\", \"SYS\", \"NV1\"]," \
    "[\"NV2\", \"SYS\", \"SYS\", \"SYS\", \"X\",  \"NV1\", \"NV1\", \"NV2\"]," \
    "[\"SYS\", \"NV2\", \"SYS\", \"SYS\", \"NV1\", \"X\",  \"NV2\", \"NV1\"]," \
    "[\"SYS\", \"SYS\", \"NV1\", \"SYS\", \"NV1\", \"NV2\", \"X\",  \"NV2\"]," \
    "[\"SYS\", \"SYS\", \"SYS\", \"NV1\", \"NV2\", \"NV1\", \"NV2\", \"X\"]]}"

#ifdef RA_API_H
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>

// dgx1_start makes a temporary directory (path in dir), writes DGX1 to
// dir/gpus.json (path in inv) and starts an embedded cluster of cpus
// CPUs on MACHINE with those GPUs.
static inline void
dgx1_start(double cpus, char *dir, size_t dcap, char *inv, size_t icap)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, dcap, "%s/check_gpu.XXXXXX",
             base != NULL && base[0] != '\0' ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(inv, icap, "%s/gpus.json", dir);
    FILE *f = fopen(inv, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_ge(fputs(DGX1, f), 0);
    ck_assert_int_eq(fclose(f), 0);
    ra_init_opts_t o = {
        .num_cpus = cpus,
        .workers = 2,
        .max_workers = 16,
        .topology_synthetic = MACHINE,
        .gpu_file = inv,
    };
    ck_assert_int_eq(ra_init_opts(&o), 0);
}
#endif

#endif

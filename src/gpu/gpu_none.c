// gpu_none.c - the GPU probe of a build without CUDA: there is nothing to
// ask, so the topology has no GPUs unless an inventory file names some.
#include "gpu_impl.h"
#include "ra_error.h"

int
ra__gpu_probe(ra_topo_t *t)
{
    (void)t;
    return RA_ENOTSUP;
}

// cuda_vadd.h - a test helper that adds two float vectors on a GPU through
// the CUDA driver API, which it loads at run time with
// dlopen("libcuda.so.1").  It needs neither cuda.h nor libcuda to build, so
// it compiles, and reports VADD_NO_DRIVER, on a machine without a GPU.
//
// Threads: vadd_run may be called from any thread.  Concurrent calls each
// use the primary context of device 0 and their own memory and module.
// The calling thread's current CUDA context is the same on return as it
// was on entry.
#ifndef RA_CUDA_VADD_H
#define RA_CUDA_VADD_H

#include <stddef.h>

// VADD_NO_DRIVER is what vadd_run returns when there is no GPU to use:
// libcuda.so.1 cannot be loaded, it is the stub library, or cuInit or
// cuDeviceGetCount find no device.  A test maps it to exit status 77.
#define VADD_NO_DRIVER 1

// VADD_EINVAL is what vadd_run returns for n == 0, a NULL out, or an n
// whose vectors do not fit in size_t.
#define VADD_EINVAL (-100000)
// VADD_EHOST is what vadd_run returns when host memory runs out or when
// libcuda.so.1 lacks an entry point it needs (a driver older than CUDA
// 11).  It lies below any negated CUresult.
#define VADD_EHOST (-100001)

// vadd_result_t is the result of one vadd_run.
typedef struct vadd_result {
    int device_count;          // devices the driver sees, after
                               // CUDA_VISIBLE_DEVICES
    char device_name[96];      // of device 0, NUL-terminated
    char pci_bus_id[32];       // of device 0, as "0000:3b:00.0"
    unsigned n;                // elements added
    unsigned mismatches;       // elements where c[i] != a[i] + b[i]
    double kernel_ms;          // time of the launch and the synchronize,
                               // by the host's monotonic clock
} vadd_result_t;

// vadd_run adds two float vectors of n elements on device 0 of those
// visible, in its primary context, with a kernel JIT-compiled from PTX
// (ISA 9.0, target sm_75, so it needs a driver for CUDA 13.0 or later and
// a GPU of compute capability 7.5 or later), copies the sum back and
// checks every element on the host.  n = 1 << 20 is a good size.
//
// Returns 0 and fills *out; a result with out->mismatches > 0 is still a
// return of 0, and it is the caller who decides that this is a failure.
// Returns VADD_NO_DRIVER when there is no driver or no device (see above);
// *out then has device_count 0 and n set, and err says why.  Returns a
// negative value on any other failure: -CUresult (for example -218,
// CUDA_ERROR_INVALID_PTX) when a driver call fails, VADD_EINVAL or
// VADD_EHOST.  On failure err holds a message that names the failing call,
// its CUresult and, where the driver has them, the texts of
// cuGetErrorName and cuGetErrorString, and, for a failing
// cuModuleLoadDataEx, the start of the JIT's error log; the fields of *out
// filled before the failure are kept.
//
// err may be NULL or errlen 0; otherwise err is always NUL-terminated and
// is "" on success.  Device memory, the module and the primary context
// reference are released on every path.  libcuda.so.1 stays loaded once
// cuInit has been called, because the driver then runs threads of its own
// and unloading it under them is not safe.
int vadd_run(unsigned n, vadd_result_t *out, char *err, size_t errlen);

#endif

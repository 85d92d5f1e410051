//===- CudaDriver.h - The CUDA driver API, loaded at run time ---*- C++ -*-===//
//
// This file declares the few CUDA driver entry points normrt needs beyond
// Halide's CUDA runtime: finding the driver and a device (for a clear error
// at layer creation), the calling thread's context or a device's primary
// context (the one PyTorch and the CUDA runtime API use), and, for tests,
// device memory. The driver is loaded with dlopen on first use, so normrt
// and the programs that link it run on machines without one.
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_CUDADRIVER_H
#define NORMRT_CUDADRIVER_H

#include <cstddef>
#include <cstdint>
#include <string>

namespace normrt {
namespace cuda {

using Result = int; // CUresult
using Device = int; // CUdevice
using Context = void *;
using DevicePtr = uint64_t;

struct Driver {
  Result (*init)(unsigned);
  Result (*deviceGetCount)(int *);
  Result (*deviceGet)(Device *, int);
  Result (*deviceGetName)(char *, int, Device);
  Result (*primaryCtxRetain)(Context *, Device);
  Result (*primaryCtxRelease)(Device);
  Result (*ctxGetCurrent)(Context *);
  Result (*ctxPushCurrent)(Context);
  Result (*ctxPopCurrent)(Context *);
  Result (*ctxSynchronize)();
  Result (*memAlloc)(DevicePtr *, size_t);
  Result (*memFree)(DevicePtr);
  Result (*memcpyHtoD)(DevicePtr, const void *, size_t);
  Result (*memcpyDtoH)(void *, DevicePtr, size_t);
  Result (*getErrorString)(Result, const char **);
};

/// The driver, loaded and initialized (cuInit) once per process; null with
/// `error` set when there is no driver or no device.
const Driver *driver(std::string &error);

/// "CUDA_ERROR_... : text" for a driver result.
std::string describe(const Driver &d, Result result);

/// The context for a new layer: the calling thread's current context, else
/// the primary context of device HL_GPU_DEVICE (default 0), retained (then
/// `retainedDevice` is set; release it with primaryCtxRelease). Returns
/// false with `error` set when that fails.
bool defaultContext(Context &context, int &retainedDevice,
                    std::string &error);

} // namespace cuda
} // namespace normrt

#endif // NORMRT_CUDADRIVER_H

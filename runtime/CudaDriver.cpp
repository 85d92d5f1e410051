//===- CudaDriver.cpp - The CUDA driver API, loaded at run time -----------===//

#include "CudaDriver.h"

#include <cstdlib>
#include <dlfcn.h>
#include <mutex>

namespace normrt {
namespace cuda {

namespace {

constexpr Result kSuccess = 0;

/// The driver's entry points have versioned names (cuMemAlloc_v2, ...);
/// the first name found wins.
template <typename Fn>
bool bind(void *library, Fn &fn, std::initializer_list<const char *> names,
          std::string &missing) {
  for (const char *name : names)
    if (void *symbol = dlsym(library, name)) {
      fn = reinterpret_cast<Fn>(symbol);
      return true;
    }
  missing = *names.begin();
  return false;
}

struct Loaded {
  Driver driver{};
  bool ok = false;
  std::string error;
};

Loaded load() {
  Loaded l;
  // RTLD_GLOBAL: Halide's CUDA runtime looks the same symbols up in the
  // process before it tries to load a library of its own.
  void *library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
  if (!library)
    library = dlopen("libcuda.so", RTLD_NOW | RTLD_GLOBAL);
  if (!library) {
    l.error = "no CUDA driver on this machine (libcuda.so.1 not found)";
    return l;
  }
  Driver &d = l.driver;
  std::string missing;
  bool bound =
      bind(library, d.init, {"cuInit"}, missing) &&
      bind(library, d.deviceGetCount, {"cuDeviceGetCount"}, missing) &&
      bind(library, d.deviceGet, {"cuDeviceGet"}, missing) &&
      bind(library, d.deviceGetName, {"cuDeviceGetName"}, missing) &&
      bind(library, d.primaryCtxRetain, {"cuDevicePrimaryCtxRetain"},
           missing) &&
      bind(library, d.primaryCtxRelease,
           {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"},
           missing) &&
      bind(library, d.ctxGetCurrent, {"cuCtxGetCurrent"}, missing) &&
      bind(library, d.ctxPushCurrent,
           {"cuCtxPushCurrent_v2", "cuCtxPushCurrent"}, missing) &&
      bind(library, d.ctxPopCurrent, {"cuCtxPopCurrent_v2", "cuCtxPopCurrent"},
           missing) &&
      bind(library, d.ctxSynchronize, {"cuCtxSynchronize"}, missing) &&
      bind(library, d.memAlloc, {"cuMemAlloc_v2", "cuMemAlloc"}, missing) &&
      bind(library, d.memFree, {"cuMemFree_v2", "cuMemFree"}, missing) &&
      bind(library, d.memcpyHtoD, {"cuMemcpyHtoD_v2", "cuMemcpyHtoD"},
           missing) &&
      bind(library, d.memcpyDtoH, {"cuMemcpyDtoH_v2", "cuMemcpyDtoH"},
           missing) &&
      bind(library, d.getErrorString, {"cuGetErrorString"}, missing);
  if (!bound) {
    l.error = "the CUDA driver library lacks " + missing;
    return l;
  }
  if (Result r = d.init(0)) {
    l.error = "the CUDA driver did not initialize (cuInit: " +
              describe(d, r) + ")";
    return l;
  }
  int count = 0;
  if (Result r = d.deviceGetCount(&count)) {
    l.error = "cuDeviceGetCount failed: " + describe(d, r);
    return l;
  }
  if (count == 0) {
    l.error = "the CUDA driver reports no device";
    return l;
  }
  l.ok = true;
  return l;
}

} // namespace

const Driver *driver(std::string &error) {
  static const Loaded loaded = load();
  if (!loaded.ok) {
    error = loaded.error;
    return nullptr;
  }
  return &loaded.driver;
}

std::string describe(const Driver &d, Result result) {
  const char *text = nullptr;
  if (d.getErrorString && d.getErrorString(result, &text) == kSuccess && text)
    return std::string(text) + " (error " + std::to_string(result) + ")";
  return "error " + std::to_string(result);
}

bool defaultContext(Context &context, int &retainedDevice,
                    std::string &error) {
  retainedDevice = -1;
  const Driver *d = driver(error);
  if (!d)
    return false;
  context = nullptr;
  if (d->ctxGetCurrent(&context) == kSuccess && context)
    return true;
  int ordinal = 0;
  if (const char *env = std::getenv("HL_GPU_DEVICE"))
    ordinal = std::atoi(env);
  Device device;
  if (Result r = d->deviceGet(&device, ordinal)) {
    error = "no CUDA device " + std::to_string(ordinal) + ": " +
            describe(*d, r);
    return false;
  }
  if (Result r = d->primaryCtxRetain(&context, device)) {
    error = "cannot retain the primary context of CUDA device " +
            std::to_string(ordinal) + ": " + describe(*d, r);
    return false;
  }
  retainedDevice = device;
  return true;
}

} // namespace cuda
} // namespace normrt

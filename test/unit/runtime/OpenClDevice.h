//===- OpenClDevice.h - Is an OpenCL device present? ------------*- C++ -*-===//
//
// The OpenCL tests run the GPU schedules on whatever OpenCL device the
// machine has (pocl's CPU device where there is no GPU) and skip, with the
// reason, where there is none. The probe asks the OpenCL ICD loader the way
// Halide's OpenCL runtime will: loaded at run time, so that the tests link
// on machines without it.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_TEST_UNIT_OPENCLDEVICE_H
#define NORMC_TEST_UNIT_OPENCLDEVICE_H

#include <dlfcn.h>

#include <cstdint>
#include <string>

namespace testing_support {

/// True when an OpenCL platform with at least one device is present;
/// otherwise `why` says what is missing.
inline bool openClDevice(std::string &why) {
  void *lib = dlopen("libOpenCL.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!lib)
    lib = dlopen("libOpenCL.so", RTLD_LAZY | RTLD_LOCAL);
  if (!lib) {
    why = "no OpenCL ICD loader (libOpenCL.so.1)";
    return false;
  }
  using GetPlatformIDs = int32_t (*)(uint32_t, void **, uint32_t *);
  using GetDeviceIDs = int32_t (*)(void *, uint64_t, uint32_t, void **,
                                   uint32_t *);
  auto getPlatforms =
      reinterpret_cast<GetPlatformIDs>(dlsym(lib, "clGetPlatformIDs"));
  auto getDevices = reinterpret_cast<GetDeviceIDs>(dlsym(lib, "clGetDeviceIDs"));
  if (!getPlatforms || !getDevices) {
    why = "the OpenCL loader lacks clGetPlatformIDs or clGetDeviceIDs";
    return false;
  }
  void *platforms[16];
  uint32_t numPlatforms = 0;
  if (getPlatforms(16, platforms, &numPlatforms) != 0 || numPlatforms == 0) {
    why = "no OpenCL platform is installed (e.g. pocl-opencl-icd)";
    return false;
  }
  const uint64_t kAllDevices = 0xFFFFFFFF; // CL_DEVICE_TYPE_ALL
  for (uint32_t i = 0; i < numPlatforms && i < 16; ++i) {
    uint32_t numDevices = 0;
    if (getDevices(platforms[i], kAllDevices, 0, nullptr, &numDevices) == 0 &&
        numDevices > 0)
      return true;
  }
  why = "no OpenCL platform has a device";
  return false;
}

} // namespace testing_support

#endif // NORMC_TEST_UNIT_OPENCLDEVICE_H

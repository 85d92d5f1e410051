//===- CpuFeatures.h - Which x86 features this CPU has ----------*- C++ -*-===//
//
// This file declares normrt's reading of the CPU it runs on, for the features
// of normrt/cpu_features.h: CPUID says what the processor implements, XCR0
// what the operating system lets programs use. A kernel variant is run only
// when every feature its module recorded for it is present.
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_CPUFEATURES_H
#define NORMRT_CPUFEATURES_H

#include <cstdint>
#include <string>

namespace normrt {

/// Whether this CPU (and OS) supports `name`, a feature of cpu_features.h.
/// Names normrt does not know are reported missing. For tests,
/// NORMRT_TEST_CPU_FEATURES="-avx512f,-avx2" masks features off.
bool cpuHasFeature(const std::string &name);

/// The features of `list` (comma-separated) this CPU lacks, comma-separated;
/// "" when it has all of them.
std::string missingCpuFeatures(const char *list);

/// The size of the last-level cache CPU 0 reaches, from Linux's sysfs
/// (/sys/devices/system/cpu/cpu0/cache/index*/): the size of its highest
/// level; 0 when the system does not say.
int64_t lastLevelCacheBytes();

} // namespace normrt

#endif // NORMRT_CPUFEATURES_H

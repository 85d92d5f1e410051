//===- HostTarget.h - Halide targets true to the CPU they run on -*- C++ -*-===//
//
// This file declares how normc turns `host` in a target string into a Halide
// target that the CPU can run, and which CPU features the code of a Halide
// target may use. Halide 14's own host detection enables
// avx512_sapphirerapids on CPUs without AVX512-FP16 (AMD Zen 4), and LLVM's
// `sapphirerapids` CPU then emits AVX512-FP16 instructions: code built for
// "host" died with SIGILL on the machine that built it. normc resolves `host`
// from the features LLVM reads off the CPU (CPUID and XCR0) and enables a
// Halide feature only when every instruction-set extension the resulting LLVM
// subtarget may use is one the CPU has.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_HOSTTARGET_H
#define NORMC_COMPILER_HOSTTARGET_H

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace Halide {
struct Target;
}

namespace normc {

/// CPU features by LLVM's names, present or not (only x86 names matter).
using CpuFeatures = llvm::StringMap<bool>;

/// The instruction-set extensions normc checks (normrt/cpu_features.h).
const std::vector<std::string> &checkedCpuFeatures();

/// The features of the CPU normc runs on, as LLVM detects them.
CpuFeatures detectHostCpuFeatures();

/// The features of LLVM's CPU `cpu` (like "znver3" or "sapphirerapids"),
/// changed by `changes` ("+avx512f,-avx2"), for planning a build for another
/// machine. Fails on an unknown CPU or feature name.
llvm::Expected<CpuFeatures> cpuFeaturesOf(llvm::StringRef cpu,
                                          llvm::StringRef changes = "");

/// The checked features that code compiled for `target` may use: those of
/// the LLVM subtarget (CPU and attributes) Halide compiles the target for.
/// Empty for targets other than x86.
llvm::Expected<std::vector<std::string>>
requiredCpuFeatures(const Halide::Target &target);

/// The names in `required` that `cpu` lacks.
std::vector<std::string> missingCpuFeatures(
    const std::vector<std::string> &required, const CpuFeatures &cpu);

/// Resolves one target string: `host` (alone or as `host-<features>`) becomes
/// the best x86 target `cpu` runs, plus the features written after it; other
/// strings are returned as Halide normalizes them. On a non-x86 machine
/// `host` is Halide's own host target.
llvm::Expected<std::string> resolveTarget(llvm::StringRef target,
                                          const CpuFeatures &cpu);

} // namespace normc

#endif // NORMC_COMPILER_HOSTTARGET_H

//===- Autoschedule.h - Halide's autoschedulers as a baseline ---*- C++ -*-===//
//
// This file declares the one alternative to normc's own schedules: handing a
// kernel's pipeline to one of the autoschedulers that ship with Halide 14
// (Adams2019 and Mullapudi2016 for CPUs, Li2018 for CPUs and GPUs). They
// plan for one tensor shape, given as an estimate, so the result is a
// baseline to measure normc's schedules against (normc-bench), not a
// replacement: the kernels still accept every shape.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_AUTOSCHEDULE_H
#define NORMC_COMPILER_AUTOSCHEDULE_H

#include "compiler/KernelAlgorithms.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>
#include <vector>

namespace normc {

struct AutoscheduleOptions {
  /// The autoscheduler's registered name (Adams2019, Mullapudi2016,
  /// Li2018); empty: normc's schedules.
  std::string name;
  /// The plugin library that registers it.
  std::string plugin;
  /// The tensor shape to plan for: N, C, then the spatial extents.
  std::vector<int64_t> shape;
  /// Halide's MachineParams as "parallelism,last_level_cache_bytes,balance";
  /// empty: Halide's generic machine.
  std::string machineParams;

  bool enabled() const { return !name.empty(); }
};

/// Parses a shape written "64x64x112x112" (N x C x spatial extents; at least
/// N and C, every extent positive).
llvm::Expected<std::vector<int64_t>> parseShape(llvm::StringRef text);

/// The plugin file for an autoscheduler's name in Halide's plugin directory,
/// or an error naming the known autoschedulers.
llvm::Expected<std::string> autoschedulerPlugin(llvm::StringRef name,
                                                llvm::StringRef pluginDir);

/// Loads options.plugin (once per process; loading it again is harmless).
llvm::Error loadAutoscheduler(const AutoscheduleOptions &options);

/// Gives every input and output of `algorithm` the estimates of
/// options.shape and lets the autoscheduler schedule `pipeline` (built from
/// algorithm.outputs) for `target`. Throws Halide::Error on failure.
void autoschedule(KernelAlgorithm &algorithm, Halide::Pipeline &pipeline,
                  const Halide::Target &target,
                  const AutoscheduleOptions &options);

} // namespace normc

#endif // NORMC_COMPILER_AUTOSCHEDULE_H

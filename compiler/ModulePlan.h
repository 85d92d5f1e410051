//===- ModulePlan.h - What a module's library will contain ------*- C++ -*-===//
//
// This file declares the plan the emitter works from: for a lowered module
// (norm.target, norm.layer and norm.kernel ops), which Halide functions are
// compiled, for which targets (one variant per target of a CPU target list),
// and which functions each layer calls. Kernels whose code would be identical
// (same kind, types, flags, eps or momentum, and targets) are planned once
// and shared by their layers.
//
// Preconditions: the module passed norm-verify, norm-resolve-targets and
// norm-expand-kernels.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_MODULEPLAN_H
#define NORMC_COMPILER_MODULEPLAN_H

#include "compiler/Autoschedule.h"
#include "compiler/KernelAlgorithms.h"
#include "compiler/NormDialect.h"

#include "Halide.h"

#include "llvm/Support/Error.h"

#include <array>
#include <string>
#include <vector>

namespace normc {

/// One norm.target: a label and the variants its kernels are compiled for.
struct PlannedTarget {
  std::string label;
  std::string targetString; ///< as resolved (comma-separated for a list)
  /// One Halide target per variant, best first.
  std::vector<Halide::Target> variants;
  /// Per variant: the CPU features (normrt/cpu_features.h) its code may use.
  std::vector<std::vector<std::string>> cpuFeatures;
  int32_t device = 0; ///< normrt_device_kind
};

/// One Halide function, compiled once per variant of its target.
struct PlannedKernel {
  std::string function; ///< C symbol prefix of the Halide pipeline
  KernelConfig config;
  int target = -1;                ///< index into ModulePlan::targets
  std::vector<std::string> users; ///< "layer/target" for the header
  /// The kernel's arguments after the user context (normrt_arg_role), for
  /// the layer table's signatures.
  std::vector<int32_t> roles;
  /// The outputs whose stores the kernel's streaming variant makes
  /// non-temporal (StreamingStores.h): its whole-tensor outputs on a CPU
  /// target; empty when the kernel has no streaming variant.
  std::vector<std::string> streamingBuffers;
  /// Set when a Halide autoscheduler, not normc, schedules the kernel.
  AutoscheduleOptions autoschedule;
};

struct PlannedLayer {
  norm::LayerOp op;
  int target = -1; ///< index into ModulePlan::targets
  std::array<int, norm::kNumKernelKinds> kernel; ///< into kernels, or -1
  PlannedLayer() { kernel.fill(-1); }
};

struct ModulePlan {
  std::vector<PlannedTarget> targets;
  std::vector<PlannedKernel> kernels;
  std::vector<PlannedLayer> layers;
  /// The target of the module's one Halide runtime: the architecture and OS
  /// of every target, with the device APIs its layers use.
  Halide::Target runtimeTarget;

  /// The C symbol of variant `variant` of `kernel`: the function name for a
  /// single target, suffixed by the variant's instruction set in a list.
  std::string variantFunction(const PlannedKernel &kernel,
                              size_t variant) const;
};

/// Plans the library of `module`. `moduleName` prefixes every symbol.
llvm::Expected<ModulePlan> makeModulePlan(mlir::ModuleOp module,
                                          const std::string &moduleName,
                                          const AutoscheduleOptions &autoschedule);

/// The Halide element type of a dtype attribute.
Halide::Type halideType(mlir::Type type);

/// normrt_dtype of a Halide element type.
int32_t normrtDtype(const Halide::Type &type);

} // namespace normc

#endif // NORMC_COMPILER_MODULEPLAN_H

//===- KernelAlgorithms.h - The math of every BatchNorm kernel --*- C++ -*-===//
//
// This file declares the Halide algorithms of the kernel set of docs/design.md. They
// are math only: each returns its Funcs through schedules::KernelStages and
// the schedule for the target decides how they run. The argument order of
// each kernel is the runtime's contract (runtime/include/normrt/module.h).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_KERNELALGORITHMS_H
#define NORMC_COMPILER_KERNELALGORITHMS_H

#include "compiler/NormDialect.h"
#include "schedules/KernelStages.h"

#include "llvm/ADT/Optional.h"

#include <cstdint>

namespace normc {

/// How a kernel converts f16 values.
enum class HalfConversion {
  /// Halide's casts: native on GPU backends. (On CPUs Halide 14 emulates
  /// them with integer code whose f32 to f16 rounding turns NaN into
  /// infinity; normc's CPU kernels use one of the two below.)
  HalideCast,
  /// F16C's VCVTPH2PS / VCVTPS2PH, for x86 targets that have it.
  Hardware,
  /// normc's integer code, for CPUs without F16C.
  Integer,
};

/// Everything about a layer that changes a kernel's code.
struct KernelConfig {
  norm::KernelKind kind;
  Halide::Type ioType;    ///< x, y, dy, dx, residual
  Halide::Type paramType; ///< weight, bias, statistics
  /// The plan of the layer's batch-statistics kernels (normrt/kinds.h); the
  /// running-statistics kernels use runningStatsPlan(plan).
  normrt::kinds::ReductionPlan plan;
  bool affine = true;
  bool bias = true;            ///< the affine form has a bias
  bool trackRunning = false;   ///< train forward also writes batch_var
  bool countsBatches = true;   ///< update_stats keeps num_batches_tracked
  normrt::kinds::Activation activation = normrt::kinds::Activation::None;
  bool residual = false;       ///< y = act(norm(x) + residual)
  double eps = 1e-5;
  llvm::Optional<double> momentum = 0.1; ///< None: cumulative average
  /// bf16 tensors as uint16 buffers of their bits, converted with integer
  /// shifts and rounding instead of Halide's bf16 casts, which LLVM 14's
  /// NVPTX backend cannot select (it aborts) and OpenCL C cannot express;
  /// set for GPU targets. Same values either way.
  bool bfloatAsBits = false;
  /// f64 constants (eps, momentum) as reinterpreted uint64 bits: Halide 14's
  /// OpenCL C backend prints an f64 constant as a float literal, rounding
  /// it to 24 bits; set for OpenCL targets.
  bool f64ConstantsAsBits = false;
  /// How f16 tensors convert to and from f32 (HalfConversions.h).
  HalfConversion halfConversion = HalfConversion::HalideCast;

  /// The plan this kernel computes with.
  normrt::kinds::ReductionPlan kernelPlan() const;
  /// A key that is equal for two configs exactly when their kernels are.
  std::string key() const;
};

/// The type reductions and elementwise math run in: f64 for f32 and f64
/// tensors, f32 for f16 and bf16 (PyTorch's CPU accumulation types).
Halide::Type accumulatorType(const Halide::Type &ioType);

/// The type of weight, bias and statistics for tensors of `ioType`: f64 for
/// f64 tensors, f32 for every other dtype.
Halide::Type parameterType(const Halide::Type &ioType);

/// One kernel's algorithm, ready for a schedule and for compilation.
struct KernelAlgorithm {
  std::vector<Halide::Func> outputs;     ///< in argument order
  std::vector<Halide::Argument> inputs;  ///< in argument order
  /// The buffer inputs among `inputs`, for binding them in JIT tests.
  std::vector<Halide::ImageParam> images;
  /// The scalar inputs among `inputs` (update_stats' count), for estimates.
  std::vector<Halide::Internal::Parameter> scalars;
  /// The role of each argument, inputs then outputs (normrt/module.h's
  /// normrt_arg_role, NORMRT_ARG_OUTPUT set on outputs): what normrt and
  /// normc-bench bind to it.
  std::vector<int32_t> roles;
  schedules::KernelStages stages;
};

KernelAlgorithm buildKernelAlgorithm(const KernelConfig &config);

/// The arguments of the kernel of `config` after the user context, in call
/// order (normrt_arg_role, NORMRT_ARG_OUTPUT on outputs): the one definition
/// of the calling convention, which the algorithm's arguments are ordered
/// by and the layer table hands to normrt and normc-bench.
std::vector<int32_t> kernelSignature(const KernelConfig &config);

} // namespace normc

#endif // NORMC_COMPILER_KERNELALGORITHMS_H

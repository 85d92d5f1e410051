//===- NormDialect.h - The norm dialect -------------------------*- C++ -*-===//
//
// This file declares the `norm` dialect (NormOps.td) and the kernel kinds that
// norm-expand-kernels creates and the emitter builds.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_NORMDIALECT_H
#define NORMC_COMPILER_NORMDIALECT_H

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"

#include "runtime/include/normrt/kinds.h"

#include <string>

#include "compiler/NormOpsDialect.h.inc"

namespace normc {
namespace norm {
class TargetOp;
class LayerOp;
class KernelOp;
mlir::LogicalResult verifyTarget(TargetOp op);
mlir::LogicalResult verifyLayer(LayerOp op);
mlir::LogicalResult verifyKernel(KernelOp op);

/// The Halide target strings of a target: one, or a comma-separated list
/// (best first, baseline last) for a multi-target library.
llvm::SmallVector<std::string> splitTargets(llvm::StringRef targets);

/// The location of one argument of a layer (`eps`, `momentum`, ...) or of its
/// `kind`/`name`, as MLIRGen recorded it; the op's location otherwise.
mlir::Location argumentLoc(mlir::Operation *op, llvm::StringRef argument);

/// "BatchNorm1d, ..., LayerNorm or RMSNorm", for messages.
std::string knownKinds();
} // namespace norm
} // namespace normc

#define GET_OP_CLASSES
#include "compiler/NormOps.h.inc"

namespace normc {
namespace norm {

/// The kernels of the kernel set of docs/design.md, in the order of the runtime's
/// normrt_kernel_kind enum.
enum class KernelKind {
  ForwardTrain = 0,
  UpdateStats = 1,
  ForwardEval = 2,
  Backward = 3,
  BackwardEval = 4,
  // SyncBatchNorm's training kernels split at the reductions.
  BatchStats = 5,
  BackwardReduce = 6,
  BackwardElemt = 7,
};
constexpr int kNumKernelKinds = 8;

/// Layer and target names become parts of C symbols and object file names
/// (`<module>__<layer>_<target>_<kind>`), which must stay under 255 bytes.
constexpr size_t kMaxNameLength = 64;

/// Diagnoses a layer or target name longer than kMaxNameLength.
mlir::LogicalResult verifyNameLength(mlir::Operation *op);

llvm::StringRef stringifyKernelKind(KernelKind kind);
llvm::Optional<KernelKind> symbolizeKernelKind(llvm::StringRef name);

} // namespace norm
} // namespace normc

#endif // NORMC_COMPILER_NORMDIALECT_H

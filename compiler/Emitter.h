//===- Emitter.h - From norm.kernel ops to an AOT library -------*- C++ -*-===//
//
// This file declares the last stage of normc: it builds the Halide algorithm
// of every `norm.kernel` (KernelAlgorithms.h), schedules it for its target
// (schedules/), and compiles the module ahead of time into
//   <dir>/<module>.a   kernels + one Halide runtime + the module's layer table
//   <dir>/<module>.h   declarations of the kernels and of the table
//   <dir>/lib<module>.so  (optional) all of the above plus the normrt runtime.
// Kernels whose code would be identical (same kind, types, flags, eps or
// momentum, and target) are compiled once and shared by the layers.
//
// Preconditions: the module passed norm-verify and norm-expand-kernels.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_EMITTER_H
#define NORMC_COMPILER_EMITTER_H

#include "compiler/Autoschedule.h"

#include "mlir/IR/BuiltinOps.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

namespace normc {

struct EmitOptions {
  std::string moduleName;   ///< a C identifier: prefixes every symbol
  std::string specFilename; ///< for comments in the header
  std::string outputDir;
  bool shared = false;      ///< also link lib<module>.so
  std::string runtimeLib;   ///< libnormrt.a, needed when `shared`
  /// A Halide autoscheduler instead of normc's schedules (a baseline).
  AutoscheduleOptions autoschedule;
};

/// Writes `<module>.a` and `<module>.h` (and the .so) into outputDir.
llvm::Error emitLibrary(mlir::ModuleOp module, const EmitOptions &options);

/// Prints the header `emitLibrary` would write.
llvm::Error emitHeader(mlir::ModuleOp module, const EmitOptions &options,
                       llvm::raw_ostream &os);

/// Prints Halide's lowered statement of every (deduplicated) kernel.
llvm::Error emitStmt(mlir::ModuleOp module, const EmitOptions &options,
                     llvm::raw_ostream &os);

} // namespace normc

#endif // NORMC_COMPILER_EMITTER_H

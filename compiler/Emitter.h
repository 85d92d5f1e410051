//===- Emitter.h - From norm.kernel ops to an AOT library -------*- C++ -*-===//
//
// This file declares the last stage of normc: it builds the Halide algorithm
// of every `norm.kernel` (KernelAlgorithms.h), schedules it for its target
// (schedules/), and compiles the module ahead of time into
//   <dir>/<module>.a   kernels + one Halide runtime + the module's layer table
//   <dir>/<module>.h   declarations of the kernels and of the table
//   <dir>/lib<module>.so  (optional) all of the above plus the normrt runtime.
// Kernels whose code would be identical (same kind, types, flags, eps or
// momentum, and target) are compiled once and shared by the layers; the
// kernels are compiled in parallel, and through a cache when one is given.
//
// Preconditions: the module passed norm-verify, norm-resolve-targets and
// norm-expand-kernels.
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

/// When the emitter shows `[3/12] layer kernel (target)` lines on stderr.
enum class ProgressMode {
  Never,
  Auto,  ///< once a compile has run for 2 s
  Always ///< from the first kernel on
};

struct EmitOptions {
  std::string moduleName;   ///< a C identifier: prefixes every symbol
  std::string specFilename; ///< for comments in the header
  std::string outputDir;
  bool shared = false;      ///< also link lib<module>.so
  std::string runtimeLib;   ///< libnormrt.a, needed when `shared`
  /// A Halide autoscheduler instead of normc's schedules (a baseline).
  AutoscheduleOptions autoschedule;
  /// The kernel cache's directory; "" compiles every kernel.
  std::string cacheDir;
  ProgressMode progress = ProgressMode::Never;
  /// Kernels compiled at once; 0 = one per core.
  unsigned jobs = 0;
};

/// Creates `dir` when missing and checks that it is a writable directory,
/// so that a compile does not fail only at its end.
llvm::Error checkOutputDirectory(const std::string &dir);

/// Writes `<module>.a` and `<module>.h` (and the .so) into outputDir.
llvm::Error emitLibrary(mlir::ModuleOp module, const EmitOptions &options);

/// Prints the header `emitLibrary` would write.
llvm::Error emitHeader(mlir::ModuleOp module, const EmitOptions &options,
                       llvm::raw_ostream &os);

/// What emitKernelText prints of each kernel variant.
enum class KernelText {
  Stmt, ///< Halide's lowered statement
  LLVM  ///< the LLVM IR normc emits objects from: Halide's module after
        ///< normc's passes, with the streaming variant where there is one
};

/// Prints every (deduplicated) kernel variant as `text` says.
llvm::Error emitKernelText(mlir::ModuleOp module, const EmitOptions &options,
                           KernelText text, llvm::raw_ostream &os);

} // namespace normc

#endif // NORMC_COMPILER_EMITTER_H

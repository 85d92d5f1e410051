//===- Passes.h - Passes over the norm dialect ------------------*- C++ -*-===//
//
// This file declares the passes of Passes.td and the pipeline normc runs.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_PASSES_H
#define NORMC_COMPILER_PASSES_H

#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

#include <memory>

namespace normc {

std::unique_ptr<mlir::Pass> createVerifyLayersPass();
std::unique_ptr<mlir::Pass> createExpandKernelsPass();
/// norm-resolve-targets for the CPU normc runs on, or for LLVM CPU `hostCpu`
/// changed by `hostCpuFeatures` ("+avx512f,-avx2") when one is given.
std::unique_ptr<mlir::Pass>
createResolveTargetsPass(llvm::StringRef hostCpu = "",
                         llvm::StringRef hostCpuFeatures = "");

/// Registers the passes with MLIR's registry (for --help and pass pipelines).
void registerNormPasses();

} // namespace normc

#endif // NORMC_COMPILER_PASSES_H

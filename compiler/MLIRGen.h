//===- MLIRGen.h - From the .norm AST to the norm dialect -------*- C++ -*-===//
//
// This file declares the translation of a parsed spec into a module of the
// `norm` dialect. MLIRGen binds constructor arguments to BatchNorm's
// parameters (positional or keyword, PyTorch's defaults) and checks that each
// value has the right type; ranges and names are the verifiers' job.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_MLIRGEN_H
#define NORMC_COMPILER_MLIRGEN_H

#include "dsl/AST.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"

#include "llvm/Support/SourceMgr.h"

namespace normc {

/// Emits a module for `spec`, reporting errors through the context's
/// diagnostic engine. A layer with errors in its arguments is left out and
/// `hadErrors` set, so the verifier can still check the others in the same
/// run. A spec without any `target` gets an implicit `target cpu = "host"`.
mlir::OwningOpRef<mlir::ModuleOp> mlirGen(mlir::MLIRContext &context,
                                          const llvm::SourceMgr &sourceMgr,
                                          const dsl::SpecFile &spec,
                                          bool &hadErrors);

} // namespace normc

#endif // NORMC_COMPILER_MLIRGEN_H

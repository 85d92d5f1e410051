//===- KernelObject.h - A Halide kernel through LLVM to an object -*- C++ -*-===//
//
// This file declares how the emitter turns one lowered Halide kernel into
// object code: Halide lowers it to an LLVM module (with Halide's own LLVM
// optimizations), normc's LLVM passes run on it, and LLVM's TargetMachine
// for the kernel's target, CPU and features emits the object.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_KERNELOBJECT_H
#define NORMC_COMPILER_KERNELOBJECT_H

#include "Halide.h"

#include "llvm/ADT/ArrayRef.h"
#include "llvm/Support/Error.h"

#include <memory>
#include <string>

namespace llvm {
class LLVMContext;
class Module;
} // namespace llvm

namespace normc {

/// The suffix of a kernel's streaming variant: `<function>_streaming`,
/// `<function>_streaming_argv`, ...
inline constexpr const char *kStreamingSuffix = "_streaming";

/// The LLVM module of Halide kernel `kernel`, whose symbols start with
/// `function`. When `streamingBuffers` is not empty the module also holds
/// the streaming variant: a copy whose symbols start with
/// `function + kStreamingSuffix` and whose vector stores into those
/// buffers are non-temporal (StreamingStoresPass).
llvm::Expected<std::unique_ptr<llvm::Module>>
lowerKernelToLLVM(const Halide::Module &kernel, const std::string &function,
                  llvm::ArrayRef<std::string> streamingBuffers,
                  llvm::LLVMContext &context);

/// Writes `module` as an object file with LLVM's TargetMachine for the
/// target triple, CPU and features Halide recorded in it.
llvm::Error writeKernelObject(llvm::Module &module, const std::string &path);

} // namespace normc

#endif // NORMC_COMPILER_KERNELOBJECT_H

//===- Support.h - Small helpers shared by the compiler's files -*- C++ -*-===//
//
// This file declares what several compiler files need alike: an llvm::Error
// from a message, and the one-time registration of LLVM's targets.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_SUPPORT_H
#define NORMC_COMPILER_SUPPORT_H

#include "llvm/ADT/Twine.h"
#include "llvm/Support/Error.h"
#include "llvm/Support/TargetSelect.h"

namespace normc {

/// An error carrying `message`, for llvm::Error and llvm::Expected returns.
inline llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 message.str());
}

/// Registers every LLVM target, its MC layer and its assembly printer, once
/// per process.
inline void initializeLLVMTargets() {
  static bool initialized = [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    return true;
  }();
  (void)initialized;
}

} // namespace normc

#endif // NORMC_COMPILER_SUPPORT_H

//===- StreamingStores.h - Non-temporal stores of tensor outputs -*- C++ -*-===//
//
// This file declares normc's LLVM pass over a kernel that Halide lowered to
// LLVM IR: it makes the vector stores into named output buffers (the `y`,
// `grad_input` and `grad_residual` of a kernel) non-temporal, so that a
// kernel whose tensors do not fit the last-level cache writes its output
// without first reading each line for ownership. The emitter runs it on a
// copy of each CPU kernel (the `_streaming` variant, ModulePlan.h); normrt
// calls that variant only for tensors larger than the cache.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_STREAMINGSTORES_H
#define NORMC_COMPILER_STREAMINGSTORES_H

#include "llvm/IR/PassManager.h"

#include <string>
#include <vector>

namespace llvm {
class Instruction;
class Module;
} // namespace llvm

namespace normc {

/// Marks the vector stores into `buffers` `!nontemporal`.
///
/// A store is into buffer B when its TBAA access tag descends from the node
/// Halide names B under its "Halide buffer" root (Halide tags every load
/// and store it emits that way). A non-temporal vector store needs an
/// address aligned to its size (x86's MOVNTPS/VMOVNTPS); Halide knows that
/// alignment only when the buffer's strides and extents say so, so a store
/// whose alignment is not known is guarded: aligned addresses at run time
/// take the streaming store, the others keep the ordinary one. Scalar
/// stores (loop tails) stay ordinary. On x86 each function that streams
/// ends with an SFENCE, so that the stores are visible to the thread that
/// joins the parallel loop before it returns.
class StreamingStoresPass
    : public llvm::PassInfoMixin<StreamingStoresPass> {
public:
  explicit StreamingStoresPass(std::vector<std::string> buffers)
      : buffers(std::move(buffers)) {}

  llvm::PreservedAnalyses run(llvm::Module &module,
                              llvm::ModuleAnalysisManager &);

  /// What the last run did, for tests and remarks.
  unsigned streamed = 0; ///< stores marked in place (alignment known)
  unsigned guarded = 0;  ///< stores given a run-time alignment check

private:
  std::vector<std::string> buffers;
};

/// The Halide buffer a load or store accesses, from its TBAA tag; "" when
/// it has none.
std::string halideBufferOf(const llvm::Instruction &access);

} // namespace normc

#endif // NORMC_COMPILER_STREAMINGSTORES_H

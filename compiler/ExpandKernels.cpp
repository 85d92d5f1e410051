//===- ExpandKernels.cpp - A layer becomes the kernels it needs -----------===//
//
// This file implements norm-expand-kernels. Preconditions: the module passed
// norm-verify. For each layer and each target it appends `norm.kernel` ops
// after the layer, following the kernel set of docs/design.md:
//   forward_train, backward                         always
//   update_stats, forward_eval, backward_eval       with running statistics
//                                                   (kinds that keep them)
//   forward_eval, batch_stats, backward_reduce,     SyncBatchNorm (the split
//   backward_elemt                                  training kernels)
// A layer that already has kernels is left alone, so the pass is idempotent.
//
//===----------------------------------------------------------------------===//

#include "compiler/PassDetail.h"

#include "mlir/IR/Builders.h"

#include "llvm/ADT/SmallVector.h"

using namespace mlir;
using namespace normc;
using norm::KernelKind;

namespace {
struct ExpandKernelsPass : public ExpandKernelsBase<ExpandKernelsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    llvm::SmallVector<norm::TargetOp> targets(module.getOps<norm::TargetOp>());
    llvm::SmallVector<norm::LayerOp> layers(module.getOps<norm::LayerOp>());

    llvm::DenseSet<StringRef> expanded;
    for (norm::KernelOp kernel : module.getOps<norm::KernelOp>())
      expanded.insert(kernel.layer());

    for (norm::LayerOp layer : layers) {
      if (expanded.contains(layer.sym_name()))
        continue;
      llvm::SmallVector<KernelKind, 8> kinds = {KernelKind::ForwardTrain,
                                                KernelKind::Backward};
      if (layer.tracksRunningStats())
        kinds = {KernelKind::ForwardTrain, KernelKind::UpdateStats,
                 KernelKind::ForwardEval, KernelKind::Backward,
                 KernelKind::BackwardEval};
      if (layer.getKindInfo()->syncs) {
        if (!layer.tracksRunningStats())
          kinds.push_back(KernelKind::ForwardEval);
        kinds.append({KernelKind::BatchStats, KernelKind::BackwardReduce,
                      KernelKind::BackwardElemt});
      }
      OpBuilder builder(layer->getContext());
      builder.setInsertionPointAfter(layer);
      for (norm::TargetOp target : targets) {
        for (KernelKind kind : kinds) {
          std::string name = (layer.sym_name() + "_" + target.sym_name() +
                              "_" + norm::stringifyKernelKind(kind))
                                 .str();
          auto kernel = builder.create<norm::KernelOp>(
              layer.getLoc(), builder.getStringAttr(name),
              builder.getStringAttr(norm::stringifyKernelKind(kind)),
              FlatSymbolRefAttr::get(layer.sym_nameAttr()),
              FlatSymbolRefAttr::get(target.sym_nameAttr()));
          // Keep symbol names unique even if a layer is named like a kernel:
          // the table renames the new symbol on a clash.
          symbols.insert(kernel);
        }
      }
    }
  }
};
} // namespace

std::unique_ptr<Pass> normc::createExpandKernelsPass() {
  return std::make_unique<ExpandKernelsPass>();
}

namespace {
#define GEN_PASS_REGISTRATION
#include "compiler/Passes.h.inc"
} // namespace

void normc::registerNormPasses() { registerPasses(); }

//===- VerifyLayers.cpp - Report every semantic error of a spec -----------===//
//
// This file implements norm-verify. MLIR's own verifier stops at the first op
// that fails; a user fixing a spec wants every problem at once, so this pass
// runs each op's verifier separately and then checks the module-wide rule
// that layer and target names are unique (with a note at the first use),
// that they fit the length of C symbols and file names, and that kernels
// name existing layers and targets (looked up in one symbol table, so the
// pass is linear in the size of the module).
//
//===----------------------------------------------------------------------===//

#include "compiler/PassDetail.h"

#include "mlir/IR/Verifier.h"

#include "llvm/ADT/StringMap.h"

using namespace mlir;
using namespace normc;

namespace {
struct VerifyLayersPass : public VerifyLayersBase<VerifyLayersPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    bool ok = true;
    llvm::StringMap<Operation *> firstDefinition;
    for (Operation &op : module.getBody()->getOperations()) {
      if (failed(mlir::verify(&op)))
        ok = false;
      if (!isa<norm::KernelOp>(op) && failed(norm::verifyNameLength(&op)))
        ok = false;

      auto name = op.getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName());
      if (!name)
        continue;
      auto inserted = firstDefinition.try_emplace(name.getValue(), &op);
      if (inserted.second)
        continue;
      ok = false;
      Operation *first = inserted.first->second;
      bool isLayer = isa<norm::LayerOp>(op);
      InFlightDiagnostic diag =
          emitError(norm::argumentLoc(&op, "name"))
          << (isLayer ? "layer" : "target") << " name '" << name.getValue()
          << "' is already defined";
      diag.attachNote(norm::argumentLoc(first, "name"))
          << "previous definition is here";
    }
    for (norm::KernelOp kernel : module.getOps<norm::KernelOp>()) {
      if (!isa_and_nonnull<norm::LayerOp>(
              firstDefinition.lookup(kernel.layer()))) {
        kernel.emitOpError() << "refers to unknown layer " << kernel.layerAttr();
        ok = false;
      }
      if (!isa_and_nonnull<norm::TargetOp>(
              firstDefinition.lookup(kernel.target()))) {
        kernel.emitOpError() << "refers to unknown target "
                             << kernel.targetAttr();
        ok = false;
      }
    }
    if (!ok)
      signalPassFailure();
  }
};
} // namespace

std::unique_ptr<Pass> normc::createVerifyLayersPass() {
  return std::make_unique<VerifyLayersPass>();
}

//===- VerifyLayers.cpp - Report every semantic error of a spec -----------===//
//
// This file implements norm-verify. MLIR's own verifier stops at the first op
// that fails; a user fixing a spec wants every problem at once, so this pass
// runs each op's verifier separately and then checks the module-wide rule
// that layer and target names are unique (with a note at the first use).
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
    if (!ok)
      signalPassFailure();
  }
};
} // namespace

std::unique_ptr<Pass> normc::createVerifyLayersPass() {
  return std::make_unique<VerifyLayersPass>();
}

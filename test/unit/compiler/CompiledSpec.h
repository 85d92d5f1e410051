//===- CompiledSpec.h - A spec taken through the front end for tests -*- C++ -*-===//
//
// Parses a spec held in a string, runs MLIRGen, and collects the error
// diagnostics as strings, for the MLIRGen and pass tests.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_TEST_UNIT_COMPILEDSPEC_H
#define NORMC_TEST_UNIT_COMPILEDSPEC_H

#include "compiler/MLIRGen.h"
#include "compiler/NormDialect.h"
#include "dsl/Parser.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"

#include <memory>
#include <string>
#include <vector>

namespace testing_support {

struct CompiledSpec {
  mlir::MLIRContext context;
  llvm::SourceMgr sourceMgr;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::vector<std::string> errors;
  unsigned syntaxErrors = 0;
  bool argumentErrors = false;

  explicit CompiledSpec(llvm::StringRef text) {
    unsigned id = sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(text, "t.norm"), llvm::SMLoc());
    auto spec = normc::dsl::parseSpec(sourceMgr, id, syntaxErrors);
    context.getDiagEngine().registerHandler([this](mlir::Diagnostic &d) {
      if (d.getSeverity() == mlir::DiagnosticSeverity::Error)
        errors.push_back(d.str());
      return mlir::success();
    });
    module = normc::mlirGen(context, sourceMgr, *spec, argumentErrors);
  }

  mlir::LogicalResult run(std::unique_ptr<mlir::Pass> pass) {
    mlir::PassManager pm(&context);
    pm.addPass(std::move(pass));
    return pm.run(*module);
  }

  std::vector<normc::norm::LayerOp> layers() {
    auto ops = module->getOps<normc::norm::LayerOp>();
    return std::vector<normc::norm::LayerOp>(ops.begin(), ops.end());
  }
};

} // namespace testing_support

#endif // NORMC_TEST_UNIT_COMPILEDSPEC_H

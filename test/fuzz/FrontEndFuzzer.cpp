//===- FrontEndFuzzer.cpp - libFuzzer target over normc's front end -------===//
//
// Feeds arbitrary bytes through everything normc does before code
// generation: the lexer and parser (dsl/), MLIRGen, norm-verify (which calls
// Halide's target-string parser) and norm-expand-kernels, and prints the
// resulting IR to a null stream. Diagnostics are discarded. A crash, a hang,
// or a sanitizer report is a bug.
//
//===----------------------------------------------------------------------===//

#include "compiler/MLIRGen.h"
#include "compiler/NormDialect.h"
#include "compiler/Passes.h"
#include "dsl/Parser.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cstddef>
#include <cstdint>
#include <memory>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A context is far more expensive to make than the work per input, but it
  // keeps every attribute and location it ever uniqued: share one among a
  // few hundred inputs, then start afresh so memory stays bounded.
  static std::unique_ptr<mlir::MLIRContext> context;
  static unsigned uses = 0;
  if (!context || ++uses % 512 == 0) {
    context = std::make_unique<mlir::MLIRContext>(
        mlir::MLIRContext::Threading::DISABLED);
    context->getOrLoadDialect<normc::norm::NormDialect>();
    context->getDiagEngine().registerHandler(
        [](mlir::Diagnostic &) { return mlir::success(); });
  }

  llvm::SourceMgr sourceMgr;
  sourceMgr.setDiagHandler([](const llvm::SMDiagnostic &, void *) {});
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          llvm::StringRef(reinterpret_cast<const char *>(data), size),
          "fuzz.norm"),
      llvm::SMLoc());

  unsigned syntaxErrors = 0;
  auto spec = normc::dsl::parseSpec(sourceMgr, 1, syntaxErrors);
  bool argumentErrors = false;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      normc::mlirGen(*context, sourceMgr, *spec, argumentErrors);
  if (!module)
    return 0;

  mlir::PassManager verify(context.get());
  verify.addPass(normc::createVerifyLayersPass());
  if (mlir::failed(verify.run(*module)))
    return 0;
  mlir::PassManager lower(context.get());
  lower.addPass(normc::createExpandKernelsPass());
  lower.addPass(normc::createVerifyLayersPass());
  if (mlir::succeeded(lower.run(*module)))
    module->print(llvm::nulls());
  return 0;
}

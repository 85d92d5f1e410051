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

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // One context for the whole run: creating it is far more expensive than
  // the work per input. Threading off: passes run inline.
  static mlir::MLIRContext *context = [] {
    auto *ctx = new mlir::MLIRContext(mlir::MLIRContext::Threading::DISABLED);
    ctx->getOrLoadDialect<normc::norm::NormDialect>();
    ctx->getDiagEngine().registerHandler(
        [](mlir::Diagnostic &) { return mlir::success(); });
    return ctx;
  }();

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

  mlir::PassManager verify(context);
  verify.addPass(normc::createVerifyLayersPass());
  if (mlir::failed(verify.run(*module)))
    return 0;
  mlir::PassManager lower(context);
  lower.addPass(normc::createExpandKernelsPass());
  lower.addPass(normc::createVerifyLayersPass());
  if (mlir::succeeded(lower.run(*module)))
    module->print(llvm::nulls());
  return 0;
}

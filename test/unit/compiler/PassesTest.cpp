//===- PassesTest.cpp - norm-verify and norm-expand-kernels ---------------===//

#include "compiler/MLIRGen.h"
#include "compiler/NormDialect.h"
#include "compiler/Passes.h"
#include "dsl/Parser.h"

#include "gtest/gtest.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace normc;

namespace {

struct Pipeline {
  mlir::MLIRContext context;
  llvm::SourceMgr sourceMgr;
  mlir::OwningOpRef<mlir::ModuleOp> module;
  std::vector<std::string> errors;

  explicit Pipeline(llvm::StringRef text) {
    unsigned id = sourceMgr.AddNewSourceBuffer(
        llvm::MemoryBuffer::getMemBufferCopy(text, "t.norm"), llvm::SMLoc());
    unsigned syntaxErrors = 0;
    auto spec = dsl::parseSpec(sourceMgr, id, syntaxErrors);
    context.getDiagEngine().registerHandler([this](mlir::Diagnostic &d) {
      if (d.getSeverity() == mlir::DiagnosticSeverity::Error)
        errors.push_back(d.str());
      return mlir::success();
    });
    bool hadErrors = false;
    module = mlirGen(context, sourceMgr, *spec, hadErrors);
  }
  mlir::LogicalResult run(std::unique_ptr<mlir::Pass> pass) {
    mlir::PassManager pm(&context);
    pm.addPass(std::move(pass));
    return pm.run(*module);
  }
  std::vector<std::string> kernelKinds(llvm::StringRef layer) {
    std::vector<std::string> kinds;
    for (norm::KernelOp k : module->getOps<norm::KernelOp>())
      if (k.layer() == layer)
        kinds.push_back(k.kind().str());
    return kinds;
  }
};

TEST(VerifyLayers, ReportsEveryErrorNotJustTheFirst) {
  Pipeline p("target t = \"not-a-target\"\n"
             "layer a = BatchNorm5d(3)\n"
             "layer b = BatchNorm2d(0, eps=0, momentum=2)\n"
             "layer a = BatchNorm2d(3, dtype=f16)\n");
  EXPECT_TRUE(mlir::failed(p.run(createVerifyLayersPass())));
  EXPECT_EQ(p.errors.size(), 7u);
}

TEST(VerifyLayers, AcceptsAValidSpec) {
  Pipeline p("layer a = BatchNorm1d(3, momentum=0)\n"
             "layer b = BatchNorm3d(1, momentum=1, eps=1e-12)\n");
  EXPECT_TRUE(mlir::succeeded(p.run(createVerifyLayersPass())));
  EXPECT_TRUE(p.errors.empty());
}

TEST(ExpandKernels, FollowsTheKernelSet) {
  Pipeline p("target a = \"host\"\ntarget b = \"x86-64-linux-sse41\"\n"
             "layer tracked = BatchNorm2d(3)\n"
             "layer untracked = BatchNorm2d(3, track_running_stats=false)\n");
  ASSERT_TRUE(mlir::succeeded(p.run(createExpandKernelsPass())));
  std::vector<std::string> all = {"forward_train", "update_stats",
                                  "forward_eval",  "backward",
                                  "backward_eval"};
  std::vector<std::string> twice;
  for (int t = 0; t < 2; ++t)
    twice.insert(twice.end(), all.begin(), all.end());
  // Per target, in kernel-set order.
  std::vector<std::string> kinds = p.kernelKinds("tracked");
  EXPECT_EQ(kinds.size(), 10u);
  EXPECT_EQ(p.kernelKinds("untracked"),
            (std::vector<std::string>{"forward_train", "backward",
                                      "forward_train", "backward"}));
}

TEST(ExpandKernels, IsIdempotent) {
  Pipeline p("layer bn = BatchNorm2d(3)\n");
  ASSERT_TRUE(mlir::succeeded(p.run(createExpandKernelsPass())));
  ASSERT_TRUE(mlir::succeeded(p.run(createExpandKernelsPass())));
  EXPECT_EQ(p.kernelKinds("bn").size(), 5u);
}

} // namespace

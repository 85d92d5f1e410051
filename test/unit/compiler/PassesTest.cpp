//===- PassesTest.cpp - norm-verify and norm-expand-kernels ---------------===//

#include "CompiledSpec.h"
#include "compiler/Passes.h"

#include "gtest/gtest.h"


using namespace normc;
using testing_support::CompiledSpec;

namespace {

/// The kinds of the kernels that norm-expand-kernels gave `layer`.
std::vector<std::string> kernelKinds(CompiledSpec &p, llvm::StringRef layer) {
  std::vector<std::string> kinds;
  for (norm::KernelOp k : p.module->getOps<norm::KernelOp>())
    if (k.layer() == layer)
      kinds.push_back(k.kind().str());
  return kinds;
}

TEST(VerifyLayers, ReportsEveryErrorNotJustTheFirst) {
  CompiledSpec p("target t = \"not-a-target\"\n"
             "layer a = BatchNorm5d(3)\n"
             "layer b = BatchNorm2d(0, eps=0, momentum=2)\n"
             "layer a = BatchNorm2d(3, layout=NDHWC)\n");
  EXPECT_TRUE(mlir::failed(p.run(createVerifyLayersPass())));
  // The target; the unknown kind (MLIRGen binds arguments by kind, so that
  // layer is not made); eps, momentum and num_features of b; the layout.
  EXPECT_EQ(p.errors.size(), 6u);
}

TEST(VerifyLayers, AcceptsAValidSpec) {
  CompiledSpec p("layer a = BatchNorm1d(3, momentum=0)\n"
             "layer b = BatchNorm3d(1, momentum=1, eps=1e-12)\n");
  EXPECT_TRUE(mlir::succeeded(p.run(createVerifyLayersPass())));
  EXPECT_TRUE(p.errors.empty());
}

TEST(ExpandKernels, FollowsTheKernelSet) {
  CompiledSpec p("target a = \"host\"\ntarget b = \"x86-64-linux-sse41\"\n"
             "layer tracked = BatchNorm2d(3)\n"
             "layer untracked = BatchNorm2d(3, track_running_stats=false)\n");
  ASSERT_TRUE(mlir::succeeded(p.run(createExpandKernelsPass())));
  // Per target, in kernel-set order.
  std::vector<std::string> all = {"forward_train", "update_stats",
                                  "forward_eval",  "backward",
                                  "backward_eval"};
  std::vector<std::string> twice = all;
  twice.insert(twice.end(), all.begin(), all.end());
  EXPECT_EQ(kernelKinds(p, "tracked"), twice);
  EXPECT_EQ(kernelKinds(p, "untracked"),
            (std::vector<std::string>{"forward_train", "backward",
                                      "forward_train", "backward"}));
}

TEST(ExpandKernels, IsIdempotent) {
  CompiledSpec p("layer bn = BatchNorm2d(3)\n");
  ASSERT_TRUE(mlir::succeeded(p.run(createExpandKernelsPass())));
  ASSERT_TRUE(mlir::succeeded(p.run(createExpandKernelsPass())));
  EXPECT_EQ(kernelKinds(p, "bn").size(), 5u);
}

} // namespace

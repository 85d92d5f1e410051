//===- MLIRGenTest.cpp - From the AST to the norm dialect -----------------===//

#include "CompiledSpec.h"

#include "gtest/gtest.h"


using namespace normc;
using testing_support::CompiledSpec;

namespace {

std::unique_ptr<CompiledSpec> generate(llvm::StringRef text) {
  auto g = std::make_unique<CompiledSpec>(text);
  EXPECT_EQ(g->syntaxErrors, 0u);
  return g;
}

TEST(MLIRGen, AppliesPyTorchDefaults) {
  auto g = generate("layer bn = BatchNorm2d(64)\n");
  ASSERT_FALSE(g->argumentErrors);
  auto layers = g->layers();
  ASSERT_EQ(layers.size(), 1u);
  norm::LayerOp bn = layers[0];
  EXPECT_EQ(bn.num_featuresAttr().getInt(), 64);
  EXPECT_DOUBLE_EQ(bn.eps().convertToDouble(), 1e-5);
  ASSERT_TRUE(bn.momentum().hasValue());
  EXPECT_DOUBLE_EQ(bn.momentum()->convertToDouble(), 0.1);
  EXPECT_TRUE(bn.affine());
  EXPECT_TRUE(bn.track_running_stats());
  EXPECT_TRUE(bn.dtype().isF32());
  EXPECT_EQ(bn.getSpatialRank(), 2);
  // The implicit target.
  auto targets = llvm::to_vector(g->module->getOps<norm::TargetOp>());
  ASSERT_EQ(targets.size(), 1u);
  EXPECT_EQ(targets[0].target(), "host");
}

TEST(MLIRGen, BindsPositionalThenKeyword) {
  auto g = generate("layer bn = BatchNorm3d(8, 1e-3, None, affine=false, "
                    "dtype=f64)\n");
  ASSERT_FALSE(g->argumentErrors);
  norm::LayerOp bn = *g->module->getOps<norm::LayerOp>().begin();
  EXPECT_DOUBLE_EQ(bn.eps().convertToDouble(), 1e-3);
  EXPECT_FALSE(bn.momentum().hasValue());
  EXPECT_FALSE(bn.affine());
  EXPECT_TRUE(bn.dtype().isF64());
}

TEST(MLIRGen, ReportsArgumentErrorsAndKeepsGoodLayers) {
  auto g = generate("layer a = BatchNorm2d(3, bogus=1)\n"
                    "layer b = BatchNorm2d(3, eps=true)\n"
                    "layer c = BatchNorm2d(3, num_features=3)\n"
                    "layer ok = BatchNorm2d(3)\n");
  EXPECT_TRUE(g->argumentErrors);
  ASSERT_EQ(g->errors.size(), 3u);
  EXPECT_NE(g->errors[0].find("unknown argument 'bogus'"), std::string::npos);
  EXPECT_NE(g->errors[1].find("argument 'eps' expects a number"), std::string::npos);
  EXPECT_NE(g->errors[2].find("given more than once"), std::string::npos);
  auto layers = g->layers();
  ASSERT_EQ(layers.size(), 1u);
  EXPECT_EQ(layers[0].sym_name(), "ok");
}

TEST(MLIRGen, RecordsArgumentLocations) {
  auto g = generate("layer bn = BatchNorm2d(3,\n    eps=0.5)\n");
  norm::LayerOp bn = *g->module->getOps<norm::LayerOp>().begin();
  auto loc = norm::argumentLoc(bn, "eps").dyn_cast<mlir::FileLineColLoc>();
  ASSERT_TRUE(loc);
  EXPECT_EQ(loc.getLine(), 2u);
  EXPECT_EQ(loc.getColumn(), 9u);
}

} // namespace

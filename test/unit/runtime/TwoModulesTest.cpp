//===- TwoModulesTest.cpp - Two normc modules in one program --------------===//
//
// matrix.norm and second.norm are compiled separately, each with its own
// Halide runtime, and linked into one test binary. Both register; layers of
// either can be created; a name both define needs the module's prefix.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "matrix.h"
#include "second.h"
#include "normrt/module.h"

using namespace testing_support;

namespace {

TEST(TwoModules, LayersOfBothModulesWork) {
  normrt::Layer a("bn2d_at_m01_f32", "cpu");
  normrt::Layer b("extra", "cpu");
  EXPECT_EQ(b.info().num_features, 8);
  std::vector<float> x(2 * 8 * 9), y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i % 5);
  normrt_tensor xv = normrt::tensor(x.data(), {2, 8, 3, 3});
  normrt_tensor yv = normrt::tensor(y.data(), {2, 8, 3, 3});
  b.forward(xv, yv);
  EXPECT_EQ(*static_cast<int64_t *>(b.state("num_batches_tracked").data), 1);
}

TEST(TwoModules, AmbiguousNamesNeedTheModulePrefix) {
  EXPECT_EQ(normrt_layer_create("shared", "cpu"), nullptr);
  EXPECT_NE(std::string(normrt_last_error()).find("is defined by modules"),
            std::string::npos)
      << normrt_last_error();
  normrt::Layer fromMatrix("matrix.shared", "cpu");
  normrt::Layer fromSecond("second.shared", "cpu");
  EXPECT_EQ(fromMatrix.info().num_features, 6);
  EXPECT_EQ(fromSecond.info().num_features, 4);
  EXPECT_EQ(fromSecond.info().affine, 0);
}

TEST(TwoModules, RegistrationIsIdempotent) {
  EXPECT_EQ(normrt_register_module(&normc_module_second), 0);
  EXPECT_EQ(normrt_register_module(&normc_module_second), 0);
  normrt::Layer b("extra", "cpu"); // still unambiguous
  EXPECT_EQ(normrt_register_module(nullptr), 1);
}

} // namespace

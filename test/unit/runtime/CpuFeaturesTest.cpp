//===- CpuFeaturesTest.cpp - normrt never runs code the CPU lacks ---------===//
//
// specs/cpu_features.norm has a layer on an AVX2 target and on an AVX2 +
// SSE4.1 list. Here normrt picks the best variant the CPU runs; under
// NORMRT_TEST_CPU_FEATURES=-avx2 (the ctest cpu_features_masked) the AVX2
// target is refused with a message naming the feature, and the list falls
// back to its SSE4.1 variant, which still matches the float64 reference.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
#include "TestSupport.h"

#include "cpu_features.h"
#include "normrt/module.h"

#include <cstdlib>
#include <string>

using namespace testing_support;

namespace {

bool avx2Masked() {
  const char *mask = std::getenv("NORMRT_TEST_CPU_FEATURES");
  return mask && std::string(mask).find("-avx2") != std::string::npos;
}

/// The layer table entry of `target`'s `cf`.
const normrt_layer_desc *desc(const char *target) {
  const normrt_module &m = normc_module_cpu_features;
  for (int32_t i = 0; i < m.num_layers; ++i)
    if (std::string(m.layers[i].target) == target)
      return &m.layers[i];
  return nullptr;
}

TEST(CpuFeatures, ModuleRecordsWhatEachVariantNeeds) {
  const normrt_layer_desc *list = desc("list");
  ASSERT_NE(list, nullptr);
  ASSERT_EQ(list->num_variants, 2);
  EXPECT_NE(std::string(list->variants[0].cpu_features).find("avx2"),
            std::string::npos);
  EXPECT_EQ(std::string(list->variants[1].cpu_features).find("avx"),
            std::string::npos)
      << list->variants[1].cpu_features;
}

TEST(CpuFeatures, BestRunnableVariant) {
  if (avx2Masked())
    GTEST_SKIP() << "AVX2 is masked off; see MaskedFeatures";
  const normrt_layer_desc *list = desc("list");
  ASSERT_NE(list, nullptr);
  int32_t variant = normrt_runnable_variant(list);
  ASSERT_GE(variant, 0);
  normrt::Layer layer("cf", "list");
  EXPECT_STREQ(layer.info().target_string,
               list->variants[variant].target_string);
}

TEST(CpuFeatures, MaskedFeatures) {
  if (!avx2Masked())
    GTEST_SKIP() << "run by the ctest cpu_features_masked, with "
                    "NORMRT_TEST_CPU_FEATURES=-avx2";
  EXPECT_EQ(normrt_layer_create("cf", "avx2"), nullptr);
  std::string message = normrt_last_error();
  EXPECT_NE(message.find("lacks (avx2"), std::string::npos) << message;
  EXPECT_NE(message.find("x86-64-linux-avx-avx2-f16c-fma-sse41"),
            std::string::npos)
      << message;

  normrt::Layer layer("cf", "list");
  normrt_layer_info info = layer.info();
  EXPECT_STREQ(info.target_string, "x86-64-linux-sse41");
  reference::BatchNorm ref(referenceConfig<reference::Config>(info));
  std::mt19937 rng(5);
  for (bool training : {true, false}) {
    layer.train(training);
    ref.training = training;
    expectForwardMatches(layer, ref, {3, 6, 5, 4}, rng, 1.0, 2.0);
  }
}

} // namespace

//===- MultiTargetTest.cpp - A multi-target module against float64 --------===//
//
// specs/multitarget.norm is compiled into one library with AVX-512, AVX2 and
// SSE4.1 variants and a dispatcher per kernel; whichever variant this
// machine runs must match the reference like any other kernel.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
#include "TestSupport.h"

#include "multitarget.h"

using namespace testing_support;

namespace {

TEST(MultiTarget, KernelsMatchReference) {
  for (const char *name : {"mt2d", "mt1d_nlc"}) {
    SCOPED_TRACE(name);
    normrt::Layer layer(name, "cpu");
    normrt_layer_info info = layer.info();
    reference::BatchNorm ref(referenceConfig<reference::Config>(info));
    std::vector<int64_t> shape = info.spatial_rank == 2
                                     ? std::vector<int64_t>{3, 5, 9, 7}
                                     : std::vector<int64_t>{4, 7, 11};
    std::mt19937 rng(21);
    for (bool training : {true, true, false}) {
      layer.train(training);
      ref.training = training;
      expectForwardMatches(layer, ref, shape, rng, 2.0, 3.0);
    }
  }
}

} // namespace

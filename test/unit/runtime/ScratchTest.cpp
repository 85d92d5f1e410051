//===- ScratchTest.cpp - normrt's cache of the kernels' scratch memory ----===//
//
// Kernels allocate their large intermediates (a channels-last reduction's
// per-task partial sums) through normrt's scratch allocator, which keeps
// freed blocks for the next call instead of mapping fresh pages each time:
// the cache fills on the first call, is reused by later ones without
// growing, and normrt_release_scratch empties it.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "matrix.h"

#include <random>

using namespace testing_support;

namespace {

TEST(Scratch, CallsReuseCachedBlocksAndReleaseFreesThem) {
  normrt::Layer layer("matrix.wide2d_nhwc_c1040", "cpu");
  // 8 images of 4 x 4: 128 rows in groups of 15, so 9 tasks' partials of
  // 1040 double pairs, 150 KB, above the 64 KB that the cache keeps.
  Tensor x(NORMRT_FLOAT32, {8, 1040, 4, 4}, /*channelsLast=*/true),
      y(NORMRT_FLOAT32, {8, 1040, 4, 4}, true);
  std::mt19937 rng(11);
  x.fillNormal(rng, 0.5, 2.0);
  normrt_tensor xv = x.view(), yv = y.view();

  normrt_release_scratch();
  layer.forward(xv, yv);
  size_t afterOne = normrt_release_scratch();
  EXPECT_GE(afterOne, size_t(64 * 1024));
  EXPECT_EQ(normrt_release_scratch(), size_t(0));

  for (int i = 0; i < 5; ++i)
    layer.forward(xv, yv);
  EXPECT_EQ(normrt_release_scratch(), afterOne)
      << "later calls took the cached blocks again";

  // Released or not, the results are the same.
  std::vector<double> first = y.values();
  layer.forward(xv, yv);
  EXPECT_EQ(y.values(), first);
}

} // namespace

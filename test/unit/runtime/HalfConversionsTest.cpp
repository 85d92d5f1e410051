//===- HalfConversionsTest.cpp - F16C kernels equal the emulated ones -----===//
//
// specs/half.norm compiles f16 layers for a target with F16C, whose kernels
// convert with VCVTPH2PS / VCVTPS2PH, and for the same target without it,
// whose kernels convert in integer arithmetic (HalfConversions.h). Widening
// is exact and narrowing rounds to nearest even either way, NaN stays NaN,
// so every result must be the same bits (a NaN's payload aside): eval on
// every one of the 65536 f16 values (zeros, subnormals, the largest finite
// values, infinities, NaNs) with outputs that round to subnormals and
// overflow to infinity, and train forward and backward on random data.
// (Halide 14's own emulation turns NaN into infinity and fails the first.)
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "half.h"

#include <cstdio>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>

using namespace testing_support;

namespace {

/// The layer `name` on `target`, or null (with the reason in `why`) where
/// this CPU cannot run the target's code.
std::unique_ptr<normrt::Layer> tryLayer(const char *name, const char *target,
                                        std::string &why) {
  try {
    return std::make_unique<normrt::Layer>(name, target);
  } catch (const normrt::Error &e) {
    why = e.what();
    return nullptr;
  }
}

uint16_t bitsAt(const Tensor &t, size_t i) {
  uint16_t h;
  std::memcpy(&h, &t.bytes[i * 2], 2);
  return h;
}

bool isNaNBits(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/// Equal bits, or both NaN (the payload of a NaN is not specified).
::testing::AssertionResult sameBits(const Tensor &got, const Tensor &want) {
  size_t differ = 0, first = 0;
  for (size_t i = 0; i < got.bytes.size() / 2; ++i) {
    uint16_t a = bitsAt(got, i), b = bitsAt(want, i);
    if (a != b && !(isNaNBits(a) && isNaNBits(b)) && differ++ == 0)
      first = i;
  }
  if (differ == 0)
    return ::testing::AssertionSuccess();
  char bits[32];
  std::snprintf(bits, sizeof bits, "0x%04x vs 0x%04x", bitsAt(got, first),
                bitsAt(want, first));
  return ::testing::AssertionFailure()
         << differ << " of " << got.bytes.size() / 2
         << " values differ; first at " << first << ": " << bits;
}

void setState(normrt::Layer &layer, const char *name,
              double (*value)(int64_t)) {
  normrt_tensor view = layer.state(name);
  for (int64_t c = 0; c < view.shape[0]; ++c)
    viewSet(view, c, value(c));
}

/// The parameter's layer on both targets; skipped where the CPU lacks F16C.
class HalfConversions : public ::testing::TestWithParam<const char *> {
protected:
  void SetUp() override {
    std::string why;
    f16c = tryLayer(GetParam(), "f16c", why);
    if (f16c)
      emulated = tryLayer(GetParam(), "emulated", why);
    if (!emulated)
      GTEST_SKIP() << why;
  }
  std::unique_ptr<normrt::Layer> f16c, emulated;
};

TEST_P(HalfConversions, EvalOnEveryHalfValue) {
  normrt_layer_info info = f16c->info();
  if (!info.track_running_stats)
    GTEST_SKIP() << "untracked: eval normalizes with batch statistics";
  int64_t channels = info.num_features;
  // Every bit pattern once per channel; the last axis holds them.
  std::vector<int64_t> shape = {1, channels, 256, 256};
  if (info.spatial_rank == 1)
    shape = {1, channels, 65536};
  Tensor x(NORMRT_FLOAT16, shape, info.channels_last);
  for (size_t i = 0; i < x.size(); ++i) {
    uint16_t h = uint16_t(i);
    std::memcpy(&x.bytes[x.physical(i) * 2], &h, 2);
  }
  Tensor yF16c(NORMRT_FLOAT16, shape, info.channels_last),
      yEmulated(NORMRT_FLOAT16, shape, info.channels_last);
  for (normrt::Layer *layer : {f16c.get(), emulated.get()}) {
    layer->eval();
    // Scales around 1 (ties and subnormal results), one far above it
    // (overflow to infinity) and one far below (results that flush into
    // the subnormals).
    setState(*layer, "running_mean", [](int64_t c) { return 0.125 * c; });
    setState(*layer, "running_var", [](int64_t c) { return 0.75 + c; });
    if (info.affine) {
      setState(*layer, "weight", [](int64_t c) {
        return c % 4 == 1 ? 900.0 : c % 4 == 2 ? 1.0 / 3000 : 1.0 + c / 7.0;
      });
      setState(*layer, "bias", [](int64_t c) { return c % 3 - 1.0; });
    }
  }
  normrt_tensor xv = x.view(), a = yF16c.view(), b = yEmulated.view();
  f16c->forward(xv, a);
  emulated->forward(xv, b);
  EXPECT_TRUE(sameBits(yF16c, yEmulated));

  // The outputs reach the special values the conversions must get right.
  size_t infinities = 0, subnormals = 0, nans = 0;
  for (size_t i = 0; i < yF16c.size(); ++i) {
    uint16_t h = bitsAt(yF16c, i) & 0x7fff;
    infinities += h == 0x7c00;
    subnormals += h != 0 && h < 0x0400;
    nans += h > 0x7c00;
  }
  EXPECT_GT(infinities, 0u);
  EXPECT_GT(nans, 0u);
  if (info.affine)
    EXPECT_GT(subnormals, 0u);
}

TEST_P(HalfConversions, TrainAndBackwardOnRandomData) {
  normrt_layer_info info = f16c->info();
  std::vector<int64_t> shape = {8, info.num_features, 7, 9};
  if (info.spatial_rank == 1)
    shape = {37, info.num_features};
  std::mt19937 rng(11);
  Tensor x(NORMRT_FLOAT16, shape, info.channels_last),
      dy(NORMRT_FLOAT16, shape, info.channels_last);
  x.fillNormal(rng, 3.0, 2.0);
  dy.fillNormal(rng, 0.0, 1.0);
  Tensor y[2] = {Tensor(NORMRT_FLOAT16, shape, info.channels_last),
                 Tensor(NORMRT_FLOAT16, shape, info.channels_last)};
  Tensor dx[2] = {Tensor(NORMRT_FLOAT16, shape, info.channels_last),
                  Tensor(NORMRT_FLOAT16, shape, info.channels_last)};
  std::vector<float> dweight[2], dbias[2];
  normrt::Layer *layers[2] = {f16c.get(), emulated.get()};
  for (int t = 0; t < 2; ++t) {
    layers[t]->train();
    normrt_tensor xv = x.view(), yv = y[t].view(), dyv = dy.view(),
                  dxv = dx[t].view();
    for (int step = 0; step < 2; ++step)
      layers[t]->forward(xv, yv);
    dweight[t].assign(size_t(info.num_features), 0.0f);
    dbias[t].assign(size_t(info.num_features), 0.0f);
    normrt_tensor dw = normrt::tensor(dweight[t].data(), {info.num_features}),
                  db = normrt::tensor(dbias[t].data(), {info.num_features});
    layers[t]->backward(xv, dyv, dxv, info.affine ? &dw : nullptr,
                        info.affine ? &db : nullptr);
  }
  EXPECT_TRUE(sameBits(y[0], y[1]));
  EXPECT_TRUE(sameBits(dx[0], dx[1]));
  EXPECT_EQ(dweight[0], dweight[1]);
  EXPECT_EQ(dbias[0], dbias[1]);
  if (info.track_running_stats)
    for (const char *name : {"running_mean", "running_var"})
      EXPECT_EQ(viewValues(layers[0]->state(name)),
                viewValues(layers[1]->state(name)))
          << name;
}

INSTANTIATE_TEST_SUITE_P(Layers, HalfConversions,
                         ::testing::Values("half2d", "half2d_nhwc",
                                           "half1d_none"));

} // namespace

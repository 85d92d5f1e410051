//===- StreamingTest.cpp - Streaming kernels: same results, chosen by size ===//
//
// Every CPU kernel that writes a whole tensor has a streaming variant
// (non-temporal stores, normrt/module.h) that normrt runs when a call's
// tensors exceed normrt_streaming_threshold() and its output rows are whole
// cache lines (normrt_streaming_applies). The variants differ only in
// how they store, so their results must be bit for bit those of the plain
// kernels: here on aligned and misaligned tensors, planar and channels-last,
// in each dtype. (The ctest streaming_matrix runs the whole float64
// reference matrix with NORMRT_STREAMING_THRESHOLD=0.)
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "matrix.h"
#include "normrt/module.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

using namespace testing_support;

namespace {

TEST(Streaming, TensorKernelsHaveStreamingVariants) {
  const normrt_module &m = normc_module_matrix;
  for (int32_t i = 0; i < m.num_layers; ++i) {
    const normrt_layer_desc &d = m.layers[i];
    SCOPED_TRACE(d.name);
    for (int32_t v = 0; v < d.num_variants; ++v) {
      const normrt_kernel_variant &k = d.variants[v];
      ASSERT_NE(k.kernels[NORMRT_KERNEL_FORWARD_TRAIN], nullptr);
      ASSERT_NE(k.kernels[NORMRT_KERNEL_BACKWARD], nullptr);
      // Untracked layers have no eval kernels (eval uses batch statistics).
      for (int kind : {NORMRT_KERNEL_FORWARD_TRAIN, NORMRT_KERNEL_FORWARD_EVAL,
                       NORMRT_KERNEL_BACKWARD, NORMRT_KERNEL_BACKWARD_EVAL}) {
        EXPECT_EQ(k.streaming_kernels[kind] != nullptr,
                  k.kernels[kind] != nullptr)
            << kind;
        if (k.kernels[kind])
          EXPECT_NE(k.streaming_kernels[kind], k.kernels[kind]) << kind;
      }
      EXPECT_EQ(k.streaming_kernels[NORMRT_KERNEL_UPDATE_STATS], nullptr);
    }
  }
}

TEST(Streaming, ThresholdIsSettableAndRestorable) {
  int64_t initial = normrt_streaming_threshold();
  EXPECT_GE(initial, 0);
  EXPECT_EQ(normrt_set_streaming_threshold(0), initial);
  EXPECT_EQ(normrt_streaming_threshold(), 0);
  EXPECT_EQ(normrt_set_streaming_threshold(INT64_MAX), 0);
  EXPECT_EQ(normrt_set_streaming_threshold(-1), INT64_MAX);
  EXPECT_EQ(normrt_streaming_threshold(), initial);
  if (!std::getenv("NORMRT_STREAMING_THRESHOLD"))
    EXPECT_GT(initial, 0) << "the default is the last-level cache's size";
}

TEST(Streaming, AppliesToLargeTensorsOfWholeLineRows) {
  int64_t previous = normrt_set_streaming_threshold(1 << 20);
  // NCHW f32 rows: 56 x 56 values are 196 lines, 14 x 14 are 12.25.
  EXPECT_EQ(normrt_streaming_applies((1 << 20) + 1, 56 * 56 * 4), 1);
  EXPECT_EQ(normrt_streaming_applies((1 << 20) + 1, 14 * 14 * 4), 0);
  EXPECT_EQ(normrt_streaming_applies((1 << 20) + 1, 64), 1);
  EXPECT_EQ(normrt_streaming_applies((1 << 20) + 1, 96), 0);
  EXPECT_EQ(normrt_streaming_applies(1 << 20, 56 * 56 * 4), 0);
  // Threshold 0 streams every call, whatever its rows.
  normrt_set_streaming_threshold(0);
  EXPECT_EQ(normrt_streaming_applies(1, 14 * 14 * 4), 1);
  normrt_set_streaming_threshold(INT64_MAX);
  EXPECT_EQ(normrt_streaming_applies(INT64_MAX, 64), 0);
  normrt_set_streaming_threshold(previous);
}

/// A tensor's bytes at `shift` bytes past a 64-byte boundary, so that rows
/// start aligned (shift 0) or not.
struct Placed {
  std::unique_ptr<uint8_t[]> storage;
  normrt_tensor view;
  size_t bytes;
  Placed(Tensor &t, size_t shift) : bytes(t.bytes.size()) {
    storage.reset(new uint8_t[bytes + 128]);
    auto address = reinterpret_cast<uintptr_t>(storage.get());
    uint8_t *data = storage.get() + ((64 - address % 64) % 64) + shift;
    std::memcpy(data, t.data(), bytes);
    view = t.view();
    view.data = data;
  }
  bool operator==(const Placed &o) const {
    return bytes == o.bytes && std::memcmp(view.data, o.view.data, bytes) == 0;
  }
};

/// Train forward, eval forward and backward of a fresh layer `name` on
/// `shape`, with streaming on (threshold 0) or off: outputs and state.
struct LayerRun {
  std::vector<std::unique_ptr<Placed>> outputs;
  Snapshot state;
};
LayerRun runLayer(const char *name, const std::vector<int64_t> &shape, size_t shift,
             bool streaming) {
  int64_t previous =
      normrt_set_streaming_threshold(streaming ? 0 : INT64_MAX);
  normrt::Layer layer(name);
  normrt_layer_info info = layer.info();
  std::mt19937 rng(11);
  Tensor x(info.dtype, shape, info.channels_last),
      dy(info.dtype, shape, info.channels_last),
      zeros(info.dtype, shape, info.channels_last);
  x.fillNormal(rng, 0.5, 2.0);
  dy.fillNormal(rng, 0.0, 1.0);
  Placed px(x, shift), pdy(dy, shift);
  LayerRun run;
  auto out = [&] {
    run.outputs.push_back(std::make_unique<Placed>(zeros, shift));
    return &run.outputs.back()->view;
  };
  layer.train(true);
  layer.forward(px.view, *out());
  layer.backward(px.view, pdy.view, *out());
  layer.eval();
  layer.forward(px.view, *out());
  run.state = snapshot(layer.get());
  normrt_set_streaming_threshold(previous);
  return run;
}

TEST(Streaming, SameBitsAsThePlainKernels) {
  struct Case {
    const char *layer;
    std::vector<int64_t> shape;
  };
  const Case cases[] = {
      {"wide2d", {4, 64, 16, 16}},          // planar rows of 256
      {"wide2d", {3, 64, 7, 9}},            // planar rows of 63
      {"wide2d_nhwc", {4, 64, 8, 8}},       // channels-last rows of 64
      {"bn2d_cl_at_f64", {5, 3, 6, 7}},     // channels-last, 3 channels
      {"wide3d_ndhwc_bf16", {2, 19, 4, 4, 4}},
      {"wide1d_nlc_f16", {8, 37, 16}},
      {"wide3d", {2, 16, 4, 8, 8}},         // f64
      {"wide1d", {64, 37}},
  };
  for (const Case &c : cases)
    for (size_t shift : {size_t(0), size_t(4)}) {
      SCOPED_TRACE(std::string(c.layer) + " shift " + std::to_string(shift));
      LayerRun plain = runLayer(c.layer, c.shape, shift, false);
      LayerRun streaming = runLayer(c.layer, c.shape, shift, true);
      ASSERT_EQ(plain.outputs.size(), streaming.outputs.size());
      for (size_t i = 0; i < plain.outputs.size(); ++i)
        EXPECT_TRUE(*plain.outputs[i] == *streaming.outputs[i])
            << "output " << i << " differs";
      EXPECT_TRUE(plain.state == streaming.state);
    }
}

} // namespace

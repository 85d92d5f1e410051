//===- StateTest.cpp - Layer state, modes and views -----------------------===//
//
// Initial state as PyTorch creates it, state views that read and write the
// layer's own storage, mode switches, layer info and the layer listing.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "matrix.h"

#include <atomic>
#include <thread>
#include "normrt/module.h"

using namespace testing_support;

namespace {

TEST(State, InitialValuesArePyTorchs) {
  normrt::Layer layer("bn2d_at_m01_f64", "cpu");
  EXPECT_EQ(viewValues(layer.state("weight")), std::vector<double>(3, 1.0));
  EXPECT_EQ(viewValues(layer.state("bias")), std::vector<double>(3, 0.0));
  EXPECT_EQ(viewValues(layer.state("running_mean")), std::vector<double>(3, 0.0));
  EXPECT_EQ(viewValues(layer.state("running_var")), std::vector<double>(3, 1.0));
  normrt_tensor counter = layer.state("num_batches_tracked");
  EXPECT_EQ(counter.dtype, NORMRT_INT64);
  EXPECT_EQ(counter.ndim, 0);
  EXPECT_EQ(*static_cast<int64_t *>(counter.data), 0);
  EXPECT_EQ(layer.state("weight").dtype, NORMRT_FLOAT64);
  EXPECT_EQ(layer.info().training, 1);
}

TEST(State, ViewsAreTheLayersOwnStorage) {
  normrt::Layer layer("bn1d_at_m01_f32", "cpu");
  normrt_tensor w = layer.state("weight"), b = layer.state("bias");
  for (int c = 0; c < 3; ++c) {
    viewSet(w, c, 2.0);
    viewSet(b, c, 0.5);
  }
  std::vector<float> x = {1, 2, 3, 3, 2, 1}, y(6);
  normrt_tensor xv = normrt::tensor(x.data(), {2, 3});
  normrt_tensor yv = normrt::tensor(y.data(), {2, 3});
  layer.forward(xv, yv);
  // Per channel the two values are mean -/+ 1 std: normalized -1 and +1, then
  // scaled by 2 and shifted by 0.5.
  EXPECT_NEAR(y[0], 0.5 - 2.0, 1e-4);
  EXPECT_NEAR(y[3], 0.5 + 2.0, 1e-4);
  EXPECT_NEAR(y[1], 0.5, 1e-6); // channel 1 has no variance: (x - mean) = 0
  // Views handed out before a call stay valid after it.
  normrt_tensor mean = layer.state("save_mean");
  EXPECT_FLOAT_EQ(float(viewGet(mean, 0)), 2.0f);
  layer.forward(xv, yv);
  EXPECT_FLOAT_EQ(float(viewGet(mean, 0)), 2.0f);
  // Writing running statistics changes what eval mode does.
  normrt_tensor rm = layer.state("running_mean"), rv = layer.state("running_var");
  for (int c = 0; c < 3; ++c) {
    viewSet(rm, c, 1.0);
    viewSet(rv, c, 4.0 - 1e-5);
  }
  layer.eval();
  layer.forward(xv, yv);
  EXPECT_NEAR(y[0], (1.0 - 1.0) / 2.0 * 2.0 + 0.5, 1e-5);
  EXPECT_NEAR(y[2], (3.0 - 1.0) / 2.0 * 2.0 + 0.5, 1e-5);
}

TEST(State, MomentumNoneIsACumulativeAverage) {
  normrt::Layer layer("bn1d_at_mN_f64", "cpu");
  for (int step = 0; step < 4; ++step) {
    double base = 10.0 * step;
    std::vector<double> x = {base, base + 2, base, base + 2, base, base + 2},
                        y(6);
    normrt_tensor xv = normrt::tensor(x.data(), {2, 3});
    normrt_tensor yv = normrt::tensor(y.data(), {2, 3});
    layer.forward(xv, yv);
  }
  // After k batches the running mean is the plain average of the k means.
  double average = (1 + 11 + 21 + 31) / 4.0;
  EXPECT_NEAR(viewGet(layer.state("running_mean"), 0), average, 1e-12);
  // Unbiased batch variance of {b, b+2}: 2; initial 1 is forgotten entirely
  // after the first step (factor 1/1).
  EXPECT_NEAR(viewGet(layer.state("running_var"), 0), 2.0, 1e-12);
  EXPECT_EQ(*static_cast<int64_t *>(layer.state("num_batches_tracked").data), 4);
}

TEST(State, MomentumZeroFreezesStatisticsButCounts) {
  normrt::Layer layer("bn2d_at_m0_f32", "cpu");
  std::vector<float> x(2 * 3 * 4, 5.0f), y(x.size());
  x[0] = 7.0f;
  normrt_tensor xv = normrt::tensor(x.data(), {2, 3, 2, 2});
  normrt_tensor yv = normrt::tensor(y.data(), {2, 3, 2, 2});
  layer.forward(xv, yv);
  layer.forward(xv, yv);
  EXPECT_EQ(viewValues(layer.state("running_mean")), std::vector<double>(3, 0.0));
  EXPECT_EQ(viewValues(layer.state("running_var")), std::vector<double>(3, 1.0));
  EXPECT_EQ(*static_cast<int64_t *>(layer.state("num_batches_tracked").data), 2);
}

TEST(State, InfoDescribesTheSpec) {
  normrt::Layer layer("eps2d", "cpu");
  normrt_layer_info info = layer.info();
  EXPECT_STREQ(info.kind, "BatchNorm2d");
  EXPECT_EQ(info.spatial_rank, 2);
  EXPECT_EQ(info.num_features, 5);
  EXPECT_DOUBLE_EQ(info.eps, 1e-2);
  EXPECT_EQ(info.momentum_is_none, 1);
  EXPECT_EQ(info.affine, 1);
  EXPECT_EQ(info.dtype, NORMRT_FLOAT32);
  layer.eval();
  EXPECT_EQ(layer.info().training, 0);
}

TEST(State, LayerListingCoversTheModule) {
  int count = 0;
  bool sawWide = false;
  const char *target = nullptr;
  for (int i = 0; const char *name = normrt_layer_name_at(i, &target); ++i) {
    ++count;
    sawWide |= std::string(name) == "wide2d";
    // The test program links CPU modules, one CUDA and one OpenCL module,
    // the CPU-feature module with its "avx2" and "list" labels and the f16
    // module with its "f16c" and "emulated" ones.
    std::string label = target;
    EXPECT_TRUE(label == "cpu" || label == "cuda" || label == "opencl" ||
                label == "avx2" || label == "list" || label == "f16c" ||
                label == "emulated")
        << target;
  }
  EXPECT_GE(count, normc_module_matrix.num_layers);
  EXPECT_TRUE(sawWide);
}

TEST(State, ThreadCountIsSettable) {
  int previous = normrt_set_num_threads(1);
  normrt::Layer layer("wide2d", "cpu");
  std::vector<float> x(4 * 64 * 9), y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = float(i % 17);
  normrt_tensor xv = normrt::tensor(x.data(), {4, 64, 3, 3});
  normrt_tensor yv = normrt::tensor(y.data(), {4, 64, 3, 3});
  layer.forward(xv, yv);
  std::vector<float> single = y;
  normrt_set_num_threads(previous > 0 ? previous : 2);
  normrt::Layer again("wide2d", "cpu");
  again.forward(xv, yv);
  EXPECT_EQ(single, y); // same reductions per channel, any thread count
  normrt_set_num_threads(previous);
}

TEST(State, CreateDestroyUnderLoadIsIndependent) {
  // Many layers of the same name are independent objects.
  std::vector<std::unique_ptr<normrt::Layer>> layers;
  for (int i = 0; i < 64; ++i)
    layers.push_back(std::make_unique<normrt::Layer>("bn2d_at_m01_f32"));
  normrt_tensor w0 = layers[0]->state("weight");
  viewSet(w0, 0, 3.0);
  EXPECT_EQ(viewGet(layers[1]->state("weight"), 0), 1.0);
  EXPECT_EQ(viewGet(layers[0]->state("weight"), 0), 3.0);
}

/// Layers created and destroyed from several threads at once, each used for
/// a forward and backward: nothing is shared between them, and nothing leaks
/// (the sanitizer run checks with LeakSanitizer).
TEST(State, CreateDestroyFromManyThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t, &failures] {
      std::vector<double> x(2 * 3 * 5), y(x.size()), dy(x.size(), 1.0),
          dx(x.size());
      for (size_t i = 0; i < x.size(); ++i)
        x[i] = double((i * 7 + t) % 11);
      for (int i = 0; i < 200; ++i) {
        normrt_layer *layer = normrt_layer_create("bn1d_at_mN_f64", "cpu");
        if (!layer) {
          ++failures;
          continue;
        }
        normrt_tensor xv = normrt::tensor(x.data(), {2, 3, 5});
        normrt_tensor yv = normrt::tensor(y.data(), {2, 3, 5});
        normrt_tensor dyv = normrt::tensor(dy.data(), {2, 3, 5});
        normrt_tensor dxv = normrt::tensor(dx.data(), {2, 3, 5});
        if (normrt_layer_forward(layer, &xv, &yv) != 0 ||
            normrt_layer_backward(layer, &xv, &dyv, &dxv, nullptr, nullptr) != 0)
          ++failures;
        normrt_tensor counter;
        normrt_layer_state(layer, "num_batches_tracked", &counter);
        if (*static_cast<int64_t *>(counter.data) != 1)
          ++failures;
        normrt_layer_destroy(layer);
      }
    });
  for (std::thread &t : threads)
    t.join();
  EXPECT_EQ(failures.load(), 0);
}

} // namespace

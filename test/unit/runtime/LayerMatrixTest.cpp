//===- LayerMatrixTest.cpp - Every layer config against float64 -----------===//
//
// For every layer of specs/matrix.norm (rank x affine x tracking x momentum
// {0.1, 0, None} x dtype, plus wider shapes), runs train steps with changing
// batch sizes, eval steps, and train again, and compares after each step the
// output, save_mean, save_invstd, running statistics, num_batches_tracked,
// and the gradients dx, dweight, dbias with the float64 reference. The same
// checks run for the GPU modules (CUDA where a GPU is present; OpenCL, with
// CUDA's schedules, on any OpenCL device, pocl's CPU device included), plus
// batches large enough that the statistics kernels split every channel over
// many blocks and serial runs (and, on the CPU, over tasks).
//
//===----------------------------------------------------------------------===//

#include "OpenClDevice.h"
#include "Reference.h"
#include "TestSupport.h"

#include "cudamatrix.h"
#include "matrix.h"
#include "openclmatrix.h"
#include "normrt/module.h"

#include "CudaDriver.h"

#include <functional>

using namespace testing_support;

namespace {

/// One layer of a module, on the target it was compiled for.
struct MatrixCase {
  std::string module, layer, target;
  int32_t device; ///< normrt_layer_desc::device
};

void PrintTo(const MatrixCase &c, std::ostream *os) {
  *os << c.module << "." << c.layer << " on " << c.target;
}

std::vector<MatrixCase> moduleLayers(const normrt_module &module) {
  std::vector<MatrixCase> cases;
  for (int32_t i = 0; i < module.num_layers; ++i)
    cases.push_back({module.name, module.layers[i].name,
                     module.layers[i].target, module.layers[i].device});
  return cases;
}

int64_t spatialSize(const std::vector<int64_t> &shape) {
  int64_t s = 1;
  for (size_t i = 2; i < shape.size(); ++i)
    s *= shape[i];
  return s;
}

/// Batch shapes per rank: odd sizes, the smallest legal batches (n = 2),
/// spatial extents shorter and longer than a vector, and (N, C) for 1d.
std::vector<std::vector<int64_t>> shapesFor(int rank, int64_t c) {
  switch (rank) {
  case 1:
    return {{3, c}, {2, c, 5}, {4, c, 19}, {2, c}};
  case 2:
    return {{2, c, 5, 7}, {3, c, 4, 4}, {2, c, 1, 1}, {1, c, 3, 11}};
  default:
    return {{2, c, 3, 4, 5}, {3, c, 2, 3, 3}, {2, c, 1, 5, 7}, {1, c, 2, 1, 1}};
  }
}

class LayerMatrix : public ::testing::TestWithParam<MatrixCase> {
protected:
  void SetUp() override {
    const MatrixCase &p = GetParam();
    std::string why;
    if (p.device == 1 && !normrt::cuda::driver(why))
      GTEST_SKIP() << "CUDA layers need a GPU: " << why;
    if (p.device == 2 && !openClDevice(why))
      GTEST_SKIP() << "OpenCL layers need an OpenCL device: " << why;
    // Qualified: `shared` is defined by second.norm as well.
    layer = std::make_unique<normrt::Layer>((p.module + "." + p.layer).c_str(),
                                            p.target.c_str());
    info = layer->info();
    ref = std::make_unique<reference::BatchNorm>(
        referenceConfig<reference::Config>(info));
    tol = toleranceFor(info.dtype);
    rng.seed(uint32_t(std::hash<std::string>()(p.layer)));
    if (info.affine) {
      // Random parameters, written through the state views; the reference
      // takes them back as stored (rounded to the parameter type).
      normrt_tensor w = layer->state("weight"), b = layer->state("bias");
      std::uniform_real_distribution<double> dist(-1.5, 1.5);
      for (int64_t c = 0; c < info.num_features; ++c) {
        viewSet(w, c, dist(rng));
        viewSet(b, c, dist(rng));
      }
      ref->weight = viewValues(w);
      ref->bias = viewValues(b);
    }
  }

  /// One forward and backward in the given mode, checked field by field.
  void step(const std::vector<int64_t> &shape, bool training, double mean,
            double stddev) {
    SCOPED_TRACE(std::string(training ? "train" : "eval") + " step on " +
                 std::to_string(shape.size()) + "-d input, N=" +
                 std::to_string(shape[0]));
    layer->train(training);
    ref->training = training;
    const int64_t n = shape[0], s = spatialSize(shape), C = info.num_features;
    const bool cl = info.channels_last;
    Tensor x(info.dtype, shape, cl), y(info.dtype, shape, cl),
        dy(info.dtype, shape, cl), dx(info.dtype, shape, cl);
    x.fillNormal(rng, mean, stddev);
    dy.fillNormal(rng, 0.0, 1.0);

    normrt_tensor xv = x.view(), yv = y.view(), dyv = dy.view(),
                  dxv = dx.view();
    if (!training && info.track_running_stats) {
      // Eval normalizes with the running statistics as stored (checked
      // against float64 after every train step); with data far from zero an
      // f32 running_mean's rounding alone moves y by ulp(1e3)/std = 6e-5.
      ref->runningMean = viewValues(layer->state("running_mean"));
      ref->runningVar = viewValues(layer->state("running_var"));
    }
    ASSERT_NO_THROW(layer->forward(xv, yv));
    std::vector<double> want = ref->forward(x.values(), n, s);
    EXPECT_TRUE(allClose(y.values(), want, tol)) << "y";
    if (training || !info.track_running_stats) {
      EXPECT_TRUE(allClose(viewValues(layer->state("save_mean")),
                           ref->saveMean, tol))
          << "save_mean";
      EXPECT_TRUE(allClose(viewValues(layer->state("save_invstd")),
                           ref->saveInvstd, tol))
          << "save_invstd";
    }
    if (info.track_running_stats) {
      EXPECT_TRUE(allClose(viewValues(layer->state("running_mean")),
                           ref->runningMean, tol))
          << "running_mean";
      EXPECT_TRUE(allClose(viewValues(layer->state("running_var")),
                           ref->runningVar, tol))
          << "running_var";
      EXPECT_EQ(*static_cast<int64_t *>(
                    layer->state("num_batches_tracked").data),
                ref->numBatchesTracked);
    }

    Tensor dw(info.param_dtype, {C}), db(info.param_dtype, {C});
    normrt_tensor dwv = dw.view(), dbv = db.view();
    ASSERT_NO_THROW(layer->backward(xv, dyv, dxv, info.affine ? &dwv : nullptr,
                                    info.affine ? &dbv : nullptr));
    // Backward is a function of the statistics the forward saved. They were
    // just checked against float64; from here the reference uses them as
    // stored (f32 for f32 layers, as PyTorch stores them), so that the check
    // measures the backward math and not the rounding of invstd, which
    // (1 - xhat^2) cancellation amplifies when a channel's variance is
    // much larger than eps and n is small.
    if (training || !info.track_running_stats) {
      ref->saveMean = viewValues(layer->state("save_mean"));
      ref->saveInvstd = viewValues(layer->state("save_invstd"));
    }
    std::vector<double> wantDx, wantDw, wantDb;
    ref->backward(x.values(), dy.values(), n, s, wantDx, wantDw, wantDb);
    EXPECT_TRUE(allClose(dx.values(), wantDx, tol)) << "dx";
    if (info.affine) {
      // Sums over n*s terms: allow for their size.
      Tolerance sumTol{tol.atol * double(n * s), tol.rtol};
      EXPECT_TRUE(allClose(dw.values(), wantDw, sumTol)) << "dweight";
      EXPECT_TRUE(allClose(db.values(), wantDb, sumTol)) << "dbias";
    }
  }

  std::unique_ptr<normrt::Layer> layer;
  normrt_layer_info info;
  std::unique_ptr<reference::BatchNorm> ref;
  Tolerance tol;
  std::mt19937 rng;
};

TEST_P(LayerMatrix, TrainEvalTrainMatchesFloat64Reference) {
  auto shapes = shapesFor(info.spatial_rank, info.num_features);
  // Three train steps with different batch sizes, eval, then train again.
  step(shapes[0], true, 0.5, 2.0);
  step(shapes[1], true, -1.0, 0.5);
  step(shapes[2], true, 3.0, 1.5);
  step(shapes[1], false, 0.5, 2.0);
  step(shapes[3], false, 0.0, 1.0); // eval may see a single value per channel
  step(shapes[0], true, 0.25, 1.0);
}

// Data far from zero (mean 1e3, std 1): E[x^2] - E[x]^2 would lose every
// digit of the variance in f32 (PyTorch issue 5410); two-pass statistics in
// f64 must not.
TEST_P(LayerMatrix, OffsetDataKeepsPrecision) {
  auto shapes = shapesFor(info.spatial_rank, info.num_features);
  step(shapes[1], true, 1e3, 1.0);
  step(shapes[2], true, 1e3, 1.0);
  step(shapes[1], false, 1e3, 1.0);
}

std::string caseName(const ::testing::TestParamInfo<MatrixCase> &p) {
  return p.param.layer;
}

INSTANTIATE_TEST_SUITE_P(Matrix, LayerMatrix,
                         ::testing::ValuesIn(moduleLayers(normc_module_matrix)),
                         caseName);
// The same checks for the CUDA kernels (host tensors, host state views);
// skipped, with the reason, where there is no GPU.
INSTANTIATE_TEST_SUITE_P(Cuda, LayerMatrix,
                         ::testing::ValuesIn(
                             moduleLayers(normc_module_cudamatrix)),
                         caseName);
INSTANTIATE_TEST_SUITE_P(OpenCl, LayerMatrix,
                         ::testing::ValuesIn(
                             moduleLayers(normc_module_openclmatrix)),
                         caseName);

/// Batches of about a million values, shaped so that the GPU partials
/// kernels give each thread a serial run along the stride-1 axis (first
/// shape) and along the batch (second), with tails everywhere, and that the
/// CPU kernels split channels and images over tasks.
class LargeBatchMatrix : public LayerMatrix {
protected:
  std::vector<std::vector<int64_t>> largeShapes() const {
    const int64_t c = info.num_features, target = int64_t(1) << 20;
    auto batch = [&](int64_t perImage) {
      return std::max<int64_t>(2, target / (c * perImage));
    };
    switch (info.spatial_rank) {
    case 1:
      return {{batch(301), c, 301}, {batch(1), c}};
    case 2:
      return {{batch(30 * 31), c, 30, 31}, {batch(6), c, 2, 3}};
    default:
      return {{batch(4 * 15 * 15), c, 4, 15, 15}, {batch(6), c, 1, 2, 3}};
    }
  }
};

TEST_P(LargeBatchMatrix, LargeBatchesMatchFloat64Reference) {
  auto shapes = largeShapes();
  step(shapes[0], true, 0.5, 2.0);
  step(shapes[1], true, -1.0, 0.5);
  step(shapes[0], false, 0.5, 2.0);
  step(shapes[1], true, 1e3, 1.0);
}

/// The CPU module's wider layers (every layout and rank; the GPU modules'
/// layers all run).
std::vector<MatrixCase> wideLayers(const normrt_module &module) {
  std::vector<MatrixCase> cases;
  for (const MatrixCase &c : moduleLayers(module))
    if (c.layer.rfind("wide", 0) == 0)
      cases.push_back(c);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Matrix, LargeBatchMatrix,
                         ::testing::ValuesIn(wideLayers(normc_module_matrix)),
                         caseName);
INSTANTIATE_TEST_SUITE_P(Cuda, LargeBatchMatrix,
                         ::testing::ValuesIn(
                             moduleLayers(normc_module_cudamatrix)),
                         caseName);
INSTANTIATE_TEST_SUITE_P(OpenCl, LargeBatchMatrix,
                         ::testing::ValuesIn(
                             moduleLayers(normc_module_openclmatrix)),
                         caseName);

/// Channels-last layers of 3 channels on images larger than a task's run of
/// positions (5472), not a multiple of it, so that each image's last task
/// of the outputs overlaps the one before it (scheduleFewChannels), and on
/// images of a vector or more but less than a run (whole images a task,
/// the last vector shifted inwards), forward and backward in both modes.
class FewChannelsMatrix : public LayerMatrix {};

TEST_P(FewChannelsMatrix, ImageSizedBatchesMatchFloat64Reference) {
  std::vector<std::vector<int64_t>> shapes =
      info.spatial_rank == 1
          ? std::vector<std::vector<int64_t>>{{2, 3, 6001}, {5, 3, 37}}
          : std::vector<std::vector<int64_t>>{{2, 3, 75, 77}, {5, 3, 7, 9}};
  step(shapes[0], true, 0.5, 2.0);
  step(shapes[1], true, -1.0, 0.5);
  step(shapes[0], false, 0.5, 2.0);
  step(shapes[1], false, -1.0, 0.5);
}

std::vector<MatrixCase> fewChannelLayers(const normrt_module &module) {
  std::vector<MatrixCase> cases;
  for (const MatrixCase &c : moduleLayers(module))
    if (c.layer.find("_cl_at_") != std::string::npos &&
        c.layer.rfind("bn3d", 0) != 0)
      cases.push_back(c);
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Matrix, FewChannelsMatrix,
                         ::testing::ValuesIn(fewChannelLayers(normc_module_matrix)),
                         caseName);

/// In eval mode with running statistics a sample's output does not depend on
/// the rest of its batch.
TEST(EvalMode, OutputDoesNotDependOnTheBatch) {
  normrt::Layer layer("bn2d_at_m01_f32", "cpu");
  std::mt19937 rng(7);
  Tensor train(NORMRT_FLOAT32, {4, 3, 5, 5}), out(NORMRT_FLOAT32, {4, 3, 5, 5});
  train.fillNormal(rng, 2.0, 3.0);
  normrt_tensor tv = train.view(), ov = out.view();
  layer.forward(tv, ov);
  layer.eval();
  layer.forward(tv, ov);
  Tensor alone(NORMRT_FLOAT32, {1, 3, 5, 5}), aloneOut(NORMRT_FLOAT32, {1, 3, 5, 5});
  for (size_t i = 0; i < alone.size(); ++i)
    alone.set(i, train.get(2 * alone.size() + i)); // sample 2
  normrt_tensor av = alone.view(), aov = aloneOut.view();
  layer.forward(av, aov);
  for (size_t i = 0; i < alone.size(); ++i)
    EXPECT_EQ(aloneOut.get(i), out.get(2 * alone.size() + i)) << i;
}

/// Channels-last tensors may also come with their strides spelled out, as
/// PyTorch's channels_last memory format gives them; a contiguous tensor is
/// rejected by a channels-last layer.
TEST(Layouts, ExplicitChannelsLastStrides) {
  normrt::Layer layer("matrix.bn2d_cl_at_f32", "cpu");
  Tensor x(NORMRT_FLOAT32, {2, 3, 4, 5}, /*channelsLast=*/true),
      y(NORMRT_FLOAT32, {2, 3, 4, 5}, true);
  std::mt19937 rng(5);
  x.fillNormal(rng, 1.0, 2.0);
  normrt_tensor xv = x.view(), yv = y.view();
  const int64_t strides[4] = {60, 1, 15, 3}; // N, C, H, W of NHWC storage
  for (int i = 0; i < 4; ++i)
    xv.strides[i] = yv.strides[i] = strides[i];
  layer.forward(xv, yv);
  reference::Config cfg;
  cfg.channels = 3;
  reference::BatchNorm ref(cfg);
  EXPECT_TRUE(allClose(y.values(), ref.forward(x.values(), 2, 20),
                       toleranceFor(NORMRT_FLOAT32)));
  const int64_t contiguous[4] = {60, 20, 5, 1};
  for (int i = 0; i < 4; ++i)
    xv.strides[i] = contiguous[i];
  EXPECT_THROW(layer.forward(xv, yv), normrt::Error);
}

/// Larger shapes with vector tails (17 x 19 = 323) and many channels, so the
/// parallel and predicated paths of the schedules run.
TEST(LargerShapes, WideLayersMatchReference) {
  struct Case {
    const char *layer;
    std::vector<int64_t> shape;
  };
  for (const Case &k : {Case{"wide2d", {5, 64, 17, 19}},
                        Case{"wide1d", {33, 37}},
                        Case{"wide1d", {6, 37, 41}},
                        Case{"wide3d", {2, 16, 3, 9, 11}},
                        Case{"single2d", {7, 1, 13, 3}},
                        Case{"eps2d", {2, 5, 8, 8}},
                        Case{"wide2d_nhwc", {3, 64, 9, 11}},
                        Case{"wide3d_ndhwc_bf16", {2, 19, 3, 5, 7}},
                        Case{"wide1d_nlc_f16", {4, 37, 13}},
                        Case{"wide2d_bf16", {3, 72, 16, 17}},
                        Case{"wide1d_c1040", {37, 1040}},
                        Case{"wide1d_c1040", {5, 1040}},
                        Case{"wide1d_bf16", {19, 40}},
                        Case{"wide1d_bf16", {70, 40}},
                        // 1 x 1 images: train forward's rows of channels.
                        Case{"wide2d", {37, 64, 1, 1}},
                        Case{"wide2d_bf16", {70, 72, 1, 1}},
                        Case{"wide3d", {9, 16, 1, 1, 1}}}) {
    SCOPED_TRACE(k.layer);
    normrt::Layer layer(k.layer, "cpu");
    normrt_layer_info info = layer.info();
    reference::BatchNorm ref(referenceConfig<reference::Config>(info));
    std::mt19937 rng(11);
    for (int i = 0; i < 3; ++i)
      expectForwardMatches(layer, ref, k.shape, rng, double(i), 1.0 + i);
  }
}

} // namespace

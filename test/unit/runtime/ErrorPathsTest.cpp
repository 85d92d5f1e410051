//===- ErrorPathsTest.cpp - Bad calls fail cleanly and change nothing -----===//
//
// Every rejected call must return non-zero, leave a message (PyTorch's words
// where PyTorch has one) in normrt_last_error(), and leave the layer's state
// exactly as it was.
//
//===----------------------------------------------------------------------===//

#include "TestSupport.h"

#include "HalideRuntime.h"
#include "matrix.h"
#include "normrt/module.h"

using namespace testing_support;

namespace {

/// A layer that has been trained once, so its state is not the initial one.
class ErrorPaths : public ::testing::Test {
protected:
  void SetUp() override { layer = make("bn2d_at_m01_f32"); }
  void TearDown() override {
    for (normrt_layer *l : layers)
      normrt_layer_destroy(l);
  }
  normrt_layer *make(const char *name) {
    normrt_layer *l = normrt_layer_create(name, "cpu");
    EXPECT_NE(l, nullptr) << normrt_last_error();
    layers.push_back(l);
    normrt_layer_info info;
    normrt_layer_get_info(l, &info);
    std::vector<int64_t> shape = {2, info.num_features, 3, 3};
    if (info.spatial_rank == 1)
      shape = {2, info.num_features};
    if (info.spatial_rank == 3)
      shape = {2, info.num_features, 2, 2, 2};
    Tensor x(info.dtype, shape), y(info.dtype, shape);
    std::mt19937 rng(3);
    x.fillNormal(rng, 1.0, 2.0);
    normrt_tensor xv = x.view(), yv = y.view();
    EXPECT_EQ(normrt_layer_forward(l, &xv, &yv), 0) << normrt_last_error();
    return l;
  }

  /// Runs `call`, which must fail with a message containing `phrase`, and
  /// checks that the state of `target` did not change.
  template <typename Call>
  void expectFailure(normrt_layer *target, const std::string &phrase,
                     Call call) {
    Snapshot before = snapshot(target);
    int rc = call();
    EXPECT_NE(rc, 0);
    EXPECT_NE(std::string(normrt_last_error()).find(phrase), std::string::npos)
        << "message: " << normrt_last_error();
    EXPECT_TRUE(snapshot(target) == before) << "state changed by a failed call";
  }

  normrt_layer *layer = nullptr;
  std::vector<normrt_layer *> layers;
};

TEST_F(ErrorPaths, WrongRankUsesPyTorchWords) {
  Tensor x3(NORMRT_FLOAT32, {2, 3, 4}), y3(NORMRT_FLOAT32, {2, 3, 4});
  normrt_tensor xv = x3.view(), yv = y3.view();
  expectFailure(layer, "expected 4D input (got 3D input)",
                [&] { return normrt_layer_forward(layer, &xv, &yv); });

  normrt_layer *bn1 = make("bn1d_at_m01_f32");
  Tensor x4(NORMRT_FLOAT32, {2, 3, 4, 4}), y4(NORMRT_FLOAT32, {2, 3, 4, 4});
  normrt_tensor x4v = x4.view(), y4v = y4.view();
  expectFailure(bn1, "expected 2D or 3D input (got 4D input)",
                [&] { return normrt_layer_forward(bn1, &x4v, &y4v); });

  normrt_layer *bn3 = make("bn3d_at_m01_f32");
  expectFailure(bn3, "expected 5D input (got 4D input)",
                [&] { return normrt_layer_forward(bn3, &x4v, &y4v); });
}

TEST_F(ErrorPaths, ChannelMismatch) {
  Tensor x(NORMRT_FLOAT32, {2, 64, 4, 4}), y(NORMRT_FLOAT32, {2, 64, 4, 4});
  normrt_tensor xv = x.view(), yv = y.view();
  expectFailure(layer, "running_mean should contain 64 elements not 3",
                [&] { return normrt_layer_forward(layer, &xv, &yv); });
  normrt_layer *affineOnly = make("bn2d_au_m01_f32");
  expectFailure(affineOnly, "weight should contain 64 elements not 3",
                [&] { return normrt_layer_forward(affineOnly, &xv, &yv); });
  normrt_layer *plain = make("bn2d_nu_m01_f32");
  expectFailure(plain, "expected input with 3 channels, got 64 channels",
                [&] { return normrt_layer_forward(plain, &xv, &yv); });
}

TEST_F(ErrorPaths, SingleValuePerChannelInTraining) {
  normrt_layer *bn1 = make("bn1d_at_m01_f32");
  Tensor x(NORMRT_FLOAT32, {1, 3}), y(NORMRT_FLOAT32, {1, 3});
  normrt_tensor xv = x.view(), yv = y.view();
  expectFailure(bn1,
                "Expected more than 1 value per channel when training, got "
                "input size [1, 3]",
                [&] { return normrt_layer_forward(bn1, &xv, &yv); });
  Tensor x4(NORMRT_FLOAT32, {1, 3, 1, 1}), y4(NORMRT_FLOAT32, {1, 3, 1, 1});
  normrt_tensor x4v = x4.view(), y4v = y4.view();
  expectFailure(layer, "got input size [1, 3, 1, 1]",
                [&] { return normrt_layer_forward(layer, &x4v, &y4v); });
  // Eval with running statistics accepts it ...
  normrt_layer_set_training(layer, 0);
  EXPECT_EQ(normrt_layer_forward(layer, &x4v, &y4v), 0) << normrt_last_error();
  // ... eval without them normalizes with batch statistics, so it does not.
  normrt_layer *untracked = make("bn2d_au_m01_f32");
  normrt_layer_set_training(untracked, 0);
  expectFailure(untracked, "Expected more than 1 value per channel",
                [&] { return normrt_layer_forward(untracked, &x4v, &y4v); });
}

TEST_F(ErrorPaths, NullPointers) {
  Tensor x(NORMRT_FLOAT32, {2, 3, 4, 4}), y(NORMRT_FLOAT32, {2, 3, 4, 4});
  normrt_tensor xv = x.view(), yv = y.view();
  EXPECT_NE(normrt_layer_forward(nullptr, &xv, &yv), 0);
  EXPECT_NE(std::string(normrt_last_error()), "");
  expectFailure(layer, "input must not be NULL",
                [&] { return normrt_layer_forward(layer, nullptr, &yv); });
  expectFailure(layer, "output must not be NULL",
                [&] { return normrt_layer_forward(layer, &xv, nullptr); });
  normrt_tensor noData = xv;
  noData.data = nullptr;
  expectFailure(layer, "input has no data",
                [&] { return normrt_layer_forward(layer, &noData, &yv); });
  EXPECT_EQ(normrt_layer_create(nullptr, "cpu"), nullptr);
  EXPECT_NE(normrt_layer_state(layer, nullptr, &xv), 0);
}

TEST_F(ErrorPaths, DtypeAndDeviceMismatch) {
  Tensor x(NORMRT_FLOAT64, {2, 3, 4, 4}), y(NORMRT_FLOAT64, {2, 3, 4, 4});
  normrt_tensor xv = x.view(), yv = y.view();
  expectFailure(layer, "input has dtype float64, but the layer expects float32",
                [&] { return normrt_layer_forward(layer, &xv, &yv); });
  Tensor xf(NORMRT_FLOAT32, {2, 3, 4, 4}), yd(NORMRT_FLOAT64, {2, 3, 4, 4});
  normrt_tensor xfv = xf.view(), ydv = yd.view();
  expectFailure(layer, "output has dtype float64",
                [&] { return normrt_layer_forward(layer, &xfv, &ydv); });
  normrt_tensor onGpu = xfv;
  onGpu.device = 1;
  expectFailure(layer, "input is a CUDA tensor (device 1)",
                [&] { return normrt_layer_forward(layer, &onGpu, &ydv); });
}

TEST_F(ErrorPaths, MalformedTensors) {
  Tensor x(NORMRT_FLOAT32, {2, 3, 4, 4}), y(NORMRT_FLOAT32, {2, 3, 4, 4});
  normrt_tensor xv = x.view(), yv = y.view();
  normrt_tensor bad = xv;
  bad.ndim = 9;
  expectFailure(layer, "ndim 9",
                [&] { return normrt_layer_forward(layer, &bad, &yv); });
  bad = xv;
  bad.ndim = -1;
  expectFailure(layer, "ndim -1",
                [&] { return normrt_layer_forward(layer, &bad, &yv); });
  bad = xv;
  bad.shape[2] = -4;
  expectFailure(layer, "negative extent",
                [&] { return normrt_layer_forward(layer, &bad, &yv); });
  bad = xv;
  bad.shape[0] = 0;
  normrt_tensor emptyOut = bad;
  expectFailure(layer, "has no elements",
                [&] { return normrt_layer_forward(layer, &bad, &emptyOut); });
  // Transposed strides (H and W swapped) are not contiguous.
  bad = xv;
  bad.strides[0] = 48;
  bad.strides[1] = 16;
  bad.strides[2] = 1;
  bad.strides[3] = 4;
  expectFailure(layer, "does not have the layer's contiguous layout",
                [&] { return normrt_layer_forward(layer, &bad, &yv); });
  Tensor small(NORMRT_FLOAT32, {2, 3, 4, 3});
  normrt_tensor smallView = small.view();
  expectFailure(layer, "output has size [2, 3, 4, 3], but the input has size "
                       "[2, 3, 4, 4]",
                [&] { return normrt_layer_forward(layer, &xv, &smallView); });
}

TEST_F(ErrorPaths, TooManyElementsForThe32BitKernels) {
  // Shape only: the check happens before any data is touched.
  float dummy = 0;
  normrt_tensor huge = normrt::tensor(&dummy, {70000, 3, 128, 128});
  normrt_tensor out = huge;
  expectFailure(layer, "more than 2147483647 elements",
                [&] { return normrt_layer_forward(layer, &huge, &out); });
}

TEST_F(ErrorPaths, InPlaceIsRejected) {
  Tensor x(NORMRT_FLOAT32, {2, 3, 4, 4});
  normrt_tensor xv = x.view();
  expectFailure(layer, "output overlaps input",
                [&] { return normrt_layer_forward(layer, &xv, &xv); });
  Tensor dy(NORMRT_FLOAT32, {2, 3, 4, 4});
  normrt_tensor dyv = dy.view();
  expectFailure(layer, "grad_input overlaps grad_output", [&] {
    return normrt_layer_backward(layer, &xv, &dyv, &dyv, nullptr, nullptr);
  });
}

TEST_F(ErrorPaths, BackwardChecks) {
  Tensor x(NORMRT_FLOAT32, {2, 3, 4, 4}), dy(NORMRT_FLOAT32, {2, 3, 4, 4}),
      dx(NORMRT_FLOAT32, {2, 3, 4, 4});
  normrt_tensor xv = x.view(), dyv = dy.view(), dxv = dx.view();
  Tensor dw(NORMRT_FLOAT32, {4});
  normrt_tensor dwv = dw.view();
  expectFailure(layer, "grad_weight has size [4]; expected [3]", [&] {
    return normrt_layer_backward(layer, &xv, &dyv, &dxv, &dwv, nullptr);
  });
  Tensor dyShort(NORMRT_FLOAT32, {2, 3, 4, 2});
  normrt_tensor dyShortView = dyShort.view();
  expectFailure(layer, "grad_output has size [2, 3, 4, 2]", [&] {
    return normrt_layer_backward(layer, &xv, &dyShortView, &dxv, nullptr,
                                 nullptr);
  });
  normrt_layer *plain = make("bn2d_nt_m01_f32");
  Tensor dw3(NORMRT_FLOAT32, {3});
  normrt_tensor dw3v = dw3.view();
  expectFailure(plain, "has affine=False", [&] {
    return normrt_layer_backward(plain, &xv, &dyv, &dxv, &dw3v, nullptr);
  });
  normrt_layer *fresh = normrt_layer_create("bn2d_at_m01_f32", "cpu");
  layers.push_back(fresh);
  expectFailure(fresh, "backward needs a forward call first", [&] {
    return normrt_layer_backward(fresh, &xv, &dyv, &dxv, nullptr, nullptr);
  });
  // Backward differentiates the last forward: another x shape is refused.
  Tensor y(NORMRT_FLOAT32, {2, 3, 4, 4});
  normrt_tensor yv = y.view();
  ASSERT_EQ(normrt_layer_forward(fresh, &xv, &yv), 0) << normrt_last_error();
  Tensor xBig(NORMRT_FLOAT32, {4, 3, 4, 4}), dyBig(NORMRT_FLOAT32, {4, 3, 4, 4}),
      dxBig(NORMRT_FLOAT32, {4, 3, 4, 4});
  normrt_tensor xBigView = xBig.view(), dyBigView = dyBig.view(),
                dxBigView = dxBig.view();
  expectFailure(fresh,
                "backward got an input of size [4, 3, 4, 4], but the last "
                "forward's input had size [2, 3, 4, 4]",
                [&] {
                  return normrt_layer_backward(fresh, &xBigView, &dyBigView,
                                               &dxBigView, nullptr, nullptr);
                });
}

TEST_F(ErrorPaths, StateViews) {
  normrt_tensor view;
  expectFailure(layer, "unknown state 'gamma'",
                [&] { return normrt_layer_state(layer, "gamma", &view); });
  normrt_layer *plain = make("bn2d_nu_m01_f32");
  expectFailure(plain, "has affine=False: it has no weight",
                [&] { return normrt_layer_state(plain, "weight", &view); });
  expectFailure(plain, "has track_running_stats=False: it has no running_var",
                [&] { return normrt_layer_state(plain, "running_var", &view); });
}

TEST_F(ErrorPaths, UnknownLayerOrTarget) {
  EXPECT_EQ(normrt_layer_create("no_such_layer", "cpu"), nullptr);
  EXPECT_NE(std::string(normrt_last_error()).find("no layer named 'no_such_layer'"),
            std::string::npos);
  EXPECT_EQ(normrt_layer_create("bn2d_at_m01_f32", "gpu"), nullptr);
  EXPECT_NE(std::string(normrt_last_error()).find("not compiled for target 'gpu'"),
            std::string::npos);
}

/// A kernel called directly with inconsistent buffers reports a Halide error
/// through the runtime's handler instead of aborting the process.
TEST_F(ErrorPaths, HalideErrorsDoNotAbort) {
  float x[2 * 3 * 4] = {0}, y[2 * 3 * 2] = {0}, rm[3] = {0}, rv[3] = {1, 1, 1},
        w[3] = {1, 1, 1}, b[3] = {0};
  auto buffer = [](float *data, std::vector<int> extents,
                   std::vector<halide_dimension_t> &dims) {
    halide_buffer_t buf = {};
    int stride = 1;
    for (int extent : extents) {
      dims.push_back({0, extent, stride, 0});
      stride *= extent;
    }
    buf.host = reinterpret_cast<uint8_t *>(data);
    buf.type = halide_type_t(halide_type_float, 32);
    buf.dimensions = int32_t(extents.size());
    buf.dim = dims.data();
    return buf;
  };
  std::vector<halide_dimension_t> dx, dy, drm, drv, dw, db;
  dx.reserve(3);
  dy.reserve(3);
  halide_buffer_t big = buffer(x, {4, 3, 2}, dx);
  halide_buffer_t small = buffer(y, {2, 3, 2}, dy);
  halide_buffer_t rmb = buffer(rm, {3}, drm), rvb = buffer(rv, {3}, drv),
                  wb = buffer(w, {3}, dw), bb = buffer(b, {3}, db);
  // Input x (2 wide) is smaller than output y (4 wide): the kernel's bounds
  // check fails. (Layers sharing a configuration share a kernel, named after
  // the first of them, bn1d_at_m01_f32.)
  int rc = matrix__bn1d_at_m01_f32_cpu_forward_eval(nullptr, &small, &rmb,
                                                   &rvb, &wb, &bb, &big);
  EXPECT_NE(rc, 0);
}

} // namespace

//===- OpenClTest.cpp - OpenCL layers: the GPU path without a GPU ---------===//
//
// normc gives OpenCL targets the schedules it gives CUDA, and normrt runs
// them with host tensors; on a machine without a GPU an OpenCL CPU device
// (pocl) runs them, so these tests and the OpenCL instances of LayerMatrix
// exercise the GPU schedules and normrt's device-state handling (uploads,
// device-side commits, host views kept coherent) where CUDA cannot run.
// Tests that need a device skip with the reason where there is none; the
// ctest `opencl_without_device` runs CreateWithoutADeviceFailsCleanly with
// the OpenCL loader pointed at no platforms.
//
//===----------------------------------------------------------------------===//

#include "OpenClDevice.h"
#include "TestSupport.h"

#include "matrix.h"
#include "normrt/module.h"
#include "openclmatrix.h"

using namespace testing_support;

namespace {

TEST(OpenClModule, CarriesOpenClKernelsAndRuntime) {
  const normrt_module &m = normc_module_openclmatrix;
  ASSERT_NE(m.opencl_device_interface, nullptr);
  EXPECT_NE(m.opencl_device_interface(), nullptr);
  EXPECT_EQ(m.cuda, nullptr);
  expectDeviceLayers(m, 2, "opencl");
  // A CPU-only module carries no OpenCL runtime.
  EXPECT_EQ(normc_module_matrix.opencl_device_interface, nullptr);
}

class OnOpenCl : public ::testing::Test {
protected:
  void SetUp() override {
    std::string why;
    if (!openClDevice(why))
      GTEST_SKIP() << "needs an OpenCL device: " << why;
  }
};

TEST_F(OnOpenCl, TakesNoCudaStreamAndNoCudaTensors) {
  normrt::Layer layer("openclmatrix.wide2d", "opencl");
  EXPECT_EQ(layer.info().device, 2);
  EXPECT_NE(normrt_layer_set_cuda_stream(layer.get(), nullptr, nullptr), 0);
  EXPECT_NE(std::string(normrt_last_error()).find("runs on OpenCL"),
            std::string::npos)
      << normrt_last_error();

  Tensor x(NORMRT_FLOAT32, {2, 64, 3, 3}), y(NORMRT_FLOAT32, {2, 64, 3, 3});
  std::mt19937 rng(5);
  x.fillNormal(rng, 0.0, 1.0);
  normrt_tensor xv = x.view(), yv = y.view();
  xv.device = 1;
  Snapshot before = snapshot(layer.get());
  EXPECT_NE(normrt_layer_forward(layer.get(), &xv, &yv), 0);
  EXPECT_NE(std::string(normrt_last_error())
                .find("is a CUDA tensor (device 1), but layer 'wide2d' runs "
                      "on OpenCL"),
            std::string::npos)
      << normrt_last_error();
  EXPECT_TRUE(snapshot(layer.get()) == before);
}

/// A layer whose state stays on the device for several calls, then is
/// viewed from the host (downloads), written there (uploads), and used in
/// eval: it must agree with the same layer on the CPU at every point.
TEST_F(OnOpenCl, StateViewsTakenLateStayCoherent) {
  for (const char *name : {"wide2d", "wide2d_nhwc"}) {
    SCOPED_TRACE(name);
    normrt::Layer gpu((std::string("openclmatrix.") + name).c_str(), "opencl");
    normrt::Layer cpu((std::string("matrix.") + name).c_str(), "cpu");
    normrt_layer_info info = gpu.info();
    ASSERT_EQ(info.num_features, cpu.info().num_features);
    ASSERT_EQ(info.channels_last, cpu.info().channels_last);
    Tolerance tol = toleranceFor(info.dtype);
    std::vector<int64_t> shape = {3, info.num_features, 5, 7};
    std::mt19937 rng(11);
    Tensor x(info.dtype, shape, info.channels_last),
        y1(info.dtype, shape, info.channels_last),
        y2(info.dtype, shape, info.channels_last);
    normrt_tensor xv = x.view(), y1v = y1.view(), y2v = y2.view();
    for (int step = 0; step < 3; ++step) {
      x.fillNormal(rng, 0.5 * step, 1.0 + step);
      cpu.forward(xv, y1v);
      gpu.forward(xv, y2v);
    }
    EXPECT_TRUE(allClose(y2.values(), y1.values(), tol)) << "y";
    EXPECT_EQ(*static_cast<int64_t *>(gpu.state("num_batches_tracked").data),
              3);
    for (const char *state : {"running_mean", "running_var", "save_mean",
                              "save_invstd"})
      EXPECT_TRUE(allClose(viewValues(gpu.state(state)),
                           viewValues(cpu.state(state)), tol))
          << state;

    // Written on the host, used on the device.
    normrt_tensor gm = gpu.state("running_mean"), cm = cpu.state("running_mean");
    normrt_tensor gw = gpu.state("weight"), cw = cpu.state("weight");
    for (int64_t c = 0; c < info.num_features; ++c) {
      viewSet(gm, c, 0.25 * double(c % 5));
      viewSet(cm, c, 0.25 * double(c % 5));
      viewSet(gw, c, 1.0 + 0.125 * double(c % 3));
      viewSet(cw, c, 1.0 + 0.125 * double(c % 3));
    }
    cpu.eval();
    gpu.eval();
    cpu.forward(xv, y1v);
    gpu.forward(xv, y2v);
    EXPECT_TRUE(allClose(y2.values(), y1.values(), tol)) << "eval y";
    EXPECT_EQ(viewValues(gpu.state("running_mean")),
              viewValues(cpu.state("running_mean")));
  }
}

/// A GPU layer with state bound to host memory and statistics kept by the
/// caller: uploaded before each call, written back after it, and the same
/// results as the CPU layer's.
TEST_F(OnOpenCl, BoundStateAndSavedStatisticsMatchTheCpu) {
  normrt::Layer gpu("openclmatrix.wide2d", "opencl");
  normrt::Layer cpu("matrix.wide2d", "cpu");
  normrt_layer_info info = gpu.info();
  ASSERT_EQ(info.param_dtype, NORMRT_FLOAT32);
  const int64_t c = info.num_features;
  Tolerance tol = toleranceFor(info.dtype);
  const size_t n = size_t(c);
  std::vector<float> weight(n), mean(n, 0.5f), var(n, 2.0f);
  for (int64_t i = 0; i < c; ++i)
    weight[size_t(i)] = 1.0f + 0.25f * float(i % 4);
  int64_t counter = 0;
  normrt_tensor w = normrt::tensor(weight.data(), {c}),
                rm = normrt::tensor(mean.data(), {c}),
                rv = normrt::tensor(var.data(), {c}),
                nbt = normrt::tensor(&counter, {});
  gpu.bindState("weight", &w);
  gpu.bindState("running_mean", &rm);
  gpu.bindState("running_var", &rv);
  gpu.bindState("num_batches_tracked", &nbt);
  for (const char *state : {"weight", "running_mean", "running_var"}) {
    normrt_tensor view = cpu.state(state);
    std::vector<float> &src = state[0] == 'w' ? weight
                              : state[8] == 'm' ? mean
                                                : var;
    for (int64_t i = 0; i < c; ++i)
      viewSet(view, i, src[size_t(i)]);
  }
  std::vector<int64_t> shape = {3, c, 5, 7};
  std::mt19937 rng(2);
  Tensor x(info.dtype, shape), dy(info.dtype, shape), y1(info.dtype, shape),
      y2(info.dtype, shape), dx1(info.dtype, shape), dx2(info.dtype, shape);
  x.fillNormal(rng, 1.0, 2.0);
  dy.fillNormal(rng, 0.0, 1.0);
  std::vector<float> smean(n), sinvstd(n);
  normrt_saved_stats saved;
  std::memset(&saved, 0, sizeof(saved));
  saved.mean = normrt::tensor(smean.data(), {c});
  saved.invstd = normrt::tensor(sinvstd.data(), {c});
  normrt_tensor xv = x.view(), dyv = dy.view(), y1v = y1.view(),
                y2v = y2.view(), dx1v = dx1.view(), dx2v = dx2.view();
  cpu.forward(xv, y1v);
  gpu.forwardSaved(xv, y2v, saved);
  EXPECT_EQ(saved.batch_stats, 1);
  EXPECT_TRUE(allClose(y2.values(), y1.values(), tol)) << "y";
  EXPECT_EQ(counter, 1);
  std::vector<double> got(mean.begin(), mean.end());
  EXPECT_TRUE(allClose(got, viewValues(cpu.state("running_mean")), tol));
  got.assign(smean.begin(), smean.end());
  EXPECT_TRUE(allClose(got, viewValues(cpu.state("save_mean")), tol));
  // The client changes a weight on the host; backward uses it.
  weight[0] = 3.0f;
  normrt_tensor cpuWeight = cpu.state("weight");
  viewSet(cpuWeight, 0, 3.0);
  gpu.backwardSaved(xv, dyv, dx2v, saved);
  cpu.backward(xv, dyv, dx1v);
  EXPECT_TRUE(allClose(dx2.values(), dx1.values(), tol)) << "dx";
}

/// Run by the ctest opencl_without_device with OCL_ICD_VENDORS pointing at
/// an empty directory, so that the OpenCL loader finds no platform.
TEST(OpenClLayer, CreateWithoutADeviceFailsCleanly) {
  std::string why;
  if (openClDevice(why))
    GTEST_SKIP() << "an OpenCL device is present; the ctest "
                    "opencl_without_device runs this without one";
  normrt_layer *layer = normrt_layer_create("openclmatrix.wide2d", "opencl");
  EXPECT_EQ(layer, nullptr);
  std::string message = normrt_last_error();
  EXPECT_NE(message.find("cannot create layer 'wide2d' on OpenCL target "
                         "'opencl': copying its state to the device failed"),
            std::string::npos)
      << message;
  normrt_layer_destroy(layer);
}

} // namespace

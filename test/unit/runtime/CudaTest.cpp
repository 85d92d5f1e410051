//===- CudaTest.cpp - CUDA layers: what holds with and without a GPU ------===//
//
// Without a GPU (or driver): the module carries CUDA kernels and the Halide
// CUDA runtime's entry points, and creating a CUDA layer fails with a clear
// message instead of aborting. With one: device tensors (wrapped, no
// copies) give the same results and state as host tensors, and a layer runs
// in the context and stream it is given. LayerMatrixTest runs every CUDA
// layer against the float64 reference.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
#include "TestSupport.h"

#include "CudaDriver.h"
#include "cudamatrix.h"
#include "matrix.h"
#include "normrt/module.h"

using namespace testing_support;

namespace {

TEST(CudaModule, CarriesCudaKernelsAndRuntime) {
  const normrt_module &m = normc_module_cudamatrix;
  ASSERT_NE(m.cuda, nullptr);
  EXPECT_NE(m.cuda->device_interface, nullptr);
  EXPECT_NE(m.cuda->wrap_device_ptr, nullptr);
  EXPECT_NE(m.cuda->detach_device_ptr, nullptr);
  EXPECT_NE(m.cuda->set_acquire_context, nullptr);
  EXPECT_NE(m.cuda->set_release_context, nullptr);
  EXPECT_NE(m.cuda->set_get_stream, nullptr);
  expectDeviceLayers(m, 1, "cuda");
  for (int32_t i = 0; i < m.num_layers; ++i)
    EXPECT_NE(std::string(m.layers[i].target_string).find("cuda_capability_80"),
              std::string::npos);
  // A CPU-only module carries no CUDA runtime.
  EXPECT_EQ(normc_module_matrix.cuda, nullptr);
}

TEST(CudaLayer, CreateWithoutAGpuFailsCleanly) {
  std::string why;
  if (normrt::cuda::driver(why))
    GTEST_SKIP() << "a GPU is present; this checks the machines without one";
  normrt_layer *layer = normrt_layer_create("cudamatrix.wide2d", "cuda");
  EXPECT_EQ(layer, nullptr);
  std::string message = normrt_last_error();
  EXPECT_NE(message.find("cannot create layer 'wide2d' on CUDA target 'cuda'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find(why), std::string::npos) << message;
  normrt_layer_destroy(layer);
}

TEST(CudaLayer, CpuLayerTakesNoCudaStream) {
  normrt::Layer layer("matrix.wide2d", "cpu");
  EXPECT_NE(normrt_layer_set_cuda_stream(layer.get(), nullptr, nullptr), 0);
  EXPECT_NE(std::string(normrt_last_error()).find("runs on the CPU"),
            std::string::npos)
      << normrt_last_error();
  EXPECT_EQ(layer.info().device, 0);
}

/// Device memory in the primary context of device 0, made current on this
/// thread, so that layers created here run in it.
class OnGpu : public ::testing::Test {
protected:
  void SetUp() override {
    std::string why;
    driver = normrt::cuda::driver(why);
    if (!driver)
      GTEST_SKIP() << "needs a GPU: " << why;
    normrt::cuda::Device device;
    ASSERT_EQ(driver->deviceGet(&device, 0), 0);
    ASSERT_EQ(driver->primaryCtxRetain(&context, device), 0);
    ASSERT_EQ(driver->ctxPushCurrent(context), 0);
    retained = device;
  }
  void TearDown() override {
    if (!driver)
      return;
    for (normrt::cuda::DevicePtr p : allocations)
      driver->memFree(p);
    normrt::cuda::Context popped;
    driver->ctxPopCurrent(&popped);
    if (retained >= 0)
      driver->primaryCtxRelease(retained);
  }

  /// A device copy of a host tensor, described as a device tensor.
  normrt_tensor toDevice(Tensor &host) {
    normrt_tensor view = host.view();
    size_t bytes = host.size() * elementSize(view.dtype);
    normrt::cuda::DevicePtr p = 0;
    EXPECT_EQ(driver->memAlloc(&p, bytes), 0);
    allocations.push_back(p);
    EXPECT_EQ(driver->memcpyHtoD(p, view.data, bytes), 0);
    view.data = reinterpret_cast<void *>(p);
    view.device = 1;
    return view;
  }
  void toHost(const normrt_tensor &device, Tensor &host) {
    EXPECT_EQ(driver->ctxSynchronize(), 0);
    normrt_tensor view = host.view();
    EXPECT_EQ(driver->memcpyDtoH(view.data,
                                 reinterpret_cast<normrt::cuda::DevicePtr>(
                                     device.data),
                                 host.size() * elementSize(view.dtype)),
              0);
  }

  const normrt::cuda::Driver *driver = nullptr;
  normrt::cuda::Context context = nullptr;
  int retained = -1;
  std::vector<normrt::cuda::DevicePtr> allocations;
};

TEST_F(OnGpu, DeviceTensorsMatchHostTensors) {
  for (const char *name : {"cudamatrix.wide2d", "cudamatrix.wide2d_nhwc",
                           "cudamatrix.bn2d_nt_m0_bf16"}) {
    SCOPED_TRACE(name);
    normrt::Layer onHost(name, "cuda"), onDevice(name, "cuda");
    normrt_layer_info info = onHost.info();
    EXPECT_EQ(info.device, 1);
    std::vector<int64_t> shape = {4, info.num_features, 9, 13};
    std::mt19937 rng(3);
    Tensor x(info.dtype, shape, info.channels_last),
        dy(info.dtype, shape, info.channels_last),
        y1(info.dtype, shape, info.channels_last),
        y2(info.dtype, shape, info.channels_last),
        dx1(info.dtype, shape, info.channels_last),
        dx2(info.dtype, shape, info.channels_last);
    x.fillNormal(rng, 1.0, 2.0);
    dy.fillNormal(rng, 0.0, 1.0);
    normrt_tensor xv = x.view(), dyv = dy.view(), y1v = y1.view(),
                  dx1v = dx1.view();
    normrt_tensor xd = toDevice(x), dyd = toDevice(dy), y2d = toDevice(y2),
                  dx2d = toDevice(dx2);
    for (int step = 0; step < 2; ++step) {
      onHost.forward(xv, y1v);
      onDevice.forward(xd, y2d);
      onHost.backward(xv, dyv, dx1v, nullptr, nullptr);
      onDevice.backward(xd, dyd, dx2d, nullptr, nullptr);
    }
    toHost(y2d, y2);
    toHost(dx2d, dx2);
    EXPECT_EQ(y1.values(), y2.values());
    EXPECT_EQ(dx1.values(), dx2.values());
    if (info.track_running_stats) {
      EXPECT_EQ(viewValues(onHost.state("running_var")),
                viewValues(onDevice.state("running_var")));
      EXPECT_EQ(*static_cast<int64_t *>(
                    onDevice.state("num_batches_tracked").data),
                2);
    }
  }
}

TEST_F(OnGpu, RunsInTheGivenContextAndStream) {
  normrt::Layer layer("cudamatrix.wide2d", "cuda");
  ASSERT_EQ(normrt_layer_set_cuda_stream(layer.get(), context, nullptr), 0)
      << normrt_last_error();
  normrt_layer_info info = layer.info();
  reference::BatchNorm ref(referenceConfig<reference::Config>(info));
  std::mt19937 rng(9);
  expectForwardMatches(layer, ref, {3, info.num_features, 7, 5}, rng, 0.5,
                       2.0);
}

} // namespace

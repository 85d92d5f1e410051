//===- normrt.cpp - The normc runtime -------------------------------------===//
//
// This file implements the layers of normrt.h: their state with PyTorch's
// initial values, the tensor checks (with PyTorch's messages), devices, and
// the calls into the generated kernels through their Halide `_argv` entry
// points, with the arguments each kernel's signature in the layer table
// lists (normrt/module.h), bound by role. The registry of modules is in
// Registry.cpp, the kinds' shape rules in Geometry.cpp, errors and dtype
// helpers in Support.cpp.
//
// A layer's state may live in memory its client owns (bind_state: the
// StateBuffer's `client`), its saved statistics in the client's tensors
// (forward_saved/backward_saved), and a layer with several dtypes or
// layouts has a form per pair, of which each call runs one (selectForm).
//
// Failure atomicity: kernels write batch statistics and updated running
// statistics into per-layer scratch space; the layer's own state is updated
// only after every kernel of the call has succeeded. A layer is, like a torch
// module, not meant to be called from two threads at once; different layers
// may be used concurrently.
//
// CUDA layers (docs/runtime.md): state lives on the device in the Halide
// buffers of the layer, with host copies behind the state views; tensors
// with device = 1 are wrapped without copies, host tensors are copied in
// and out. Kernels run in the layer's context and stream, which normrt's
// handlers for Halide's halide_cuda_acquire_context / get_stream hooks hand
// to Halide's CUDA runtime while the layer is being called. OpenCL layers
// work the same way with host tensors, in the context Halide's OpenCL
// runtime makes.
//
//===----------------------------------------------------------------------===//

#include "CpuFeatures.h"
#include "CudaDriver.h"
#include "Geometry.h"
#include "Registry.h"
#include "Support.h"
#include "normrt/module.h"
#include "normrt/normrt.h"

#include "HalideRuntime.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

using namespace normrt::support;

/// A halide_buffer_t with its dimensions stored alongside.
struct HalideBuffer {
  halide_buffer_t buffer;
  halide_dimension_t dims[normrt::kinds::kNumAxes];
  HalideBuffer() {
    std::memset(&buffer, 0, sizeof(buffer));
    std::memset(dims, 0, sizeof(dims));
    buffer.dim = dims;
  }
  HalideBuffer(const HalideBuffer &) = delete;
  HalideBuffer &operator=(const HalideBuffer &) = delete;

  /// A view of `data` with the dimensions `from`.
  void set(void *data, int32_t dtype, const halide_dimension_t *from,
           int count) {
    buffer.host = static_cast<uint8_t *>(data);
    buffer.type = halideType(dtype);
    buffer.dimensions = count;
    for (int i = 0; i < count; ++i)
      dims[i] = from[i];
  }
  /// The tensor view of a dense tensor of geometry `g`.
  void tensor(void *data, int32_t dtype, const normrt::Geometry &g) {
    halide_dimension_t d[normrt::kinds::kNumAxes];
    set(data, dtype, d, g.tensorDims(d));
  }
  void vector(void *data, int32_t dtype, int64_t c) {
    halide_dimension_t d = {0, int32_t(c), 1, 0};
    set(data, dtype, &d, 1);
  }
  void scalar(void *data, int32_t dtype) { set(data, dtype, nullptr, 0); }
  halide_buffer_t *get() { return &buffer; }
};

} // namespace

namespace {

/// One piece of layer state: host storage (what state views point at) and
/// the Halide buffer the kernels get, which for CUDA layers also holds the
/// device copy.
struct StateBuffer {
  std::vector<uint8_t> host;
  /// Client memory bound as this state's storage (normrt_layer_bind_state);
  /// null while the layer's own `host` holds the values.
  void *client = nullptr;
  HalideBuffer halide;

  /// Where the values are on the host.
  void *data() { return client ? client : host.data(); }

  /// A per-channel vector of `count` values, or (count < 0) a 0-D scalar.
  void init(int64_t count, int32_t dtype, double value) {
    int64_t n = count < 0 ? 1 : count;
    host.assign(n * dtypeSize(dtype), 0);
    for (int64_t i = 0; i < n; ++i) {
      if (dtype == NORMRT_INT64) {
        int64_t v = static_cast<int64_t>(value);
        std::memcpy(&host[i * 8], &v, 8);
      } else if (dtype == NORMRT_FLOAT64) {
        std::memcpy(&host[i * 8], &value, 8);
      } else {
        float f = static_cast<float>(value);
        std::memcpy(&host[i * 4], &f, 4);
      }
    }
    if (count < 0)
      halide.scalar(host.data(), dtype);
    else
      halide.vector(host.data(), dtype, count);
  }
  halide_buffer_t *get() { return halide.get(); }
  bool empty() const { return host.empty(); }
};

} // namespace

struct normrt_layer {
  /// The form a call runs: its desc, and the variant of desc->variants this
  /// CPU runs. Layers with several dtypes or layouts pick a form for each
  /// call by its input (selectForm); between calls it is the last call's.
  const normrt_layer_desc *desc;
  const normrt_kernel_variant *variant = nullptr;
  /// Every form (dtype and layout), in the spec's order; one for most.
  struct Form {
    const normrt_layer_desc *desc;
    const normrt_kernel_variant *variant;
  };
  std::vector<Form> forms;
  const normrt::kinds::Kind *kind = nullptr;
  /// The Halide runtime of the layer's module.
  const normrt_halide_api *halide = nullptr;
  bool training = true;
  /// Values of weight and bias (channels, or normalized elements).
  int64_t params;
  StateBuffer weight, bias, runningMean, runningVar, counter, saveMean,
      saveInvstd;
  /// The last successful forward, which backward differentiates (as
  /// autograd does): the shape of its input (empty before any forward;
  /// every kind's input has a dimension) and whether it normalized with
  /// batch statistics (then save_mean/save_invstd are its statistics).
  std::vector<int64_t> forwardShape;
  bool forwardUsedBatchStats = false;
  /// ... and whether its statistics were summed across processes.
  bool forwardSynced = false;
  /// SyncBatchNorm: sums values across processes (normrt_layer_set_allreduce);
  /// null: the layer behaves as BatchNorm.
  normrt_allreduce_fn allreduce = nullptr;
  void *allreduceContext = nullptr;
  // Scratch written by kernels and committed on success.
  StateBuffer newMean, newInvstd, newVar, newRunningMean, newRunningVar,
      newCounter, gradWeight, gradBias;

  // GPU layers only: Halide's device interface (CUDA or OpenCL).
  const halide_device_interface_t *deviceInterface = nullptr;
  // CUDA layers only.
  const normrt_cuda_api *cuda = nullptr;
  void *cuContext = nullptr; ///< CUcontext the kernels run in
  void *cuStream = nullptr;  ///< CUstream; null: the context's default
  int retainedDevice = -1;   ///< primary context retained for this device
  /// A state view was handed out: keep host copies current after each call
  /// and take the host's values (which the caller may have written) before.
  bool hostViews = false;

  bool onDevice() const { return deviceInterface != nullptr; }
  /// The persistent buffers, for moving them between host and device.
  std::vector<StateBuffer *> stateBuffers() {
    return {&weight,     &bias,          &runningMean,    &runningVar,
            &counter,    &saveMean,      &saveInvstd,     &newMean,
            &newInvstd,  &newVar,        &newRunningMean, &newRunningVar,
            &newCounter, &gradWeight,    &gradBias};
  }
};

namespace {

//===----------------------------------------------------------------------===//
// CUDA: the context and stream hooks, device buffers
//===----------------------------------------------------------------------===//

/// The layer whose call is in progress on this thread: Halide's CUDA runtime
/// calls the hooks below from the thread that called the kernel, with the
/// user context the kernel got, which is that layer.
thread_local normrt_layer *callingLayer = nullptr;

struct CallScope {
  normrt_layer *previous;
  explicit CallScope(normrt_layer *layer) : previous(callingLayer) {
    callingLayer = layer;
    clearHalideMessage();
  }
  ~CallScope() { callingLayer = previous; }
};

/// Halide's handlers, for user contexts that are not normrt's (other Halide
/// code in the process keeps its behaviour).
normrt_cuda_acquire_context_fn defaultAcquire = nullptr;
normrt_cuda_release_context_fn defaultRelease = nullptr;
normrt_cuda_get_stream_fn defaultGetStream = nullptr;

bool isCallingLayer(void *userContext) {
  return userContext && userContext == callingLayer && callingLayer->cuda;
}

int acquireContext(void *userContext, void **context, bool create) {
  if (isCallingLayer(userContext)) {
    *context = callingLayer->cuContext;
    return 0;
  }
  return defaultAcquire ? defaultAcquire(userContext, context, create) : -1;
}

int releaseContext(void *userContext) {
  if (isCallingLayer(userContext))
    return 0;
  return defaultRelease ? defaultRelease(userContext) : 0;
}

int getStream(void *userContext, void *context, void **stream) {
  if (isCallingLayer(userContext)) {
    *stream = callingLayer->cuStream;
    return 0;
  }
  if (defaultGetStream)
    return defaultGetStream(userContext, context, stream);
  *stream = nullptr;
  return 0;
}

/// Installs the hooks once per process (one Halide runtime serves every
/// module: its symbols are weak and the linker keeps one copy).
void installCudaHooks(const normrt_cuda_api *api) {
  static std::once_flag once;
  std::call_once(once, [api] {
    defaultAcquire = api->set_acquire_context(acquireContext);
    defaultRelease = api->set_release_context(releaseContext);
    defaultGetStream = api->set_get_stream(getStream);
  });
}

/// GPU kernels allocate temporaries (partial sums) on every call: keep freed
/// device memory for reuse instead of freeing and allocating it each time.
void reuseDeviceAllocations(const normrt_halide_api *halide) {
  static std::once_flag once;
  std::call_once(once,
                 [halide] { halide->reuse_device_allocations(nullptr, true); });
}

int halideFailure(const normrt_layer *layer, const char *what, int rc) {
  return fail("%s for layer '%s' failed (Halide error %d): %s", what,
              layer->desc->name, rc, halideText());
}

/// Waits for the layer's stream, then copies the buffer's device values to
/// its host storage if they are newer.
int downloadToHost(normrt_layer *layer, halide_buffer_t *buffer) {
  if (!buffer->device || !(buffer->flags & halide_buffer_flag_device_dirty))
    return 0;
  if (int rc = layer->halide->device_sync(layer, buffer))
    return halideFailure(layer, "waiting for the device", rc);
  if (int rc = layer->halide->copy_to_host(layer, buffer))
    return halideFailure(layer, "copying state to the host", rc);
  return 0;
}

/// Before a call on a layer with host views: the host copy of the state is
/// authoritative (the caller may have written it), so kernels upload it.
void markStateHostDirty(normrt_layer *layer) {
  if (!layer->onDevice() || !layer->hostViews)
    return;
  for (StateBuffer *s : {&layer->weight, &layer->bias, &layer->runningMean,
                         &layer->runningVar, &layer->counter, &layer->saveMean,
                         &layer->saveInvstd})
    if (!s->empty() && !(s->get()->flags & halide_buffer_flag_device_dirty))
      s->get()->flags |= halide_buffer_flag_host_dirty;
}

/// Takes the kernels' results into the state: host copies on the CPU; on
/// a GPU the device allocations change places (no copy), and the host copy
/// follows when views were handed out.
int commit(normrt_layer *layer, StateBuffer &state, StateBuffer &scratch) {
  if (!layer->onDevice()) {
    std::memcpy(state.data(), scratch.host.data(), state.host.size());
    return 0;
  }
  halide_buffer_t *a = state.get(), *b = scratch.get();
  std::swap(a->device, b->device);
  std::swap(a->device_interface, b->device_interface);
  std::swap(a->flags, b->flags);
  if (layer->hostViews)
    return downloadToHost(layer, a);
  return 0;
}

/// Frees the device copies of a layer's state (after saving newer values
/// to the host, when `keepValues`).
int releaseDeviceState(normrt_layer *layer, bool keepValues) {
  CallScope scope(layer);
  int rc = 0;
  for (StateBuffer *s : layer->stateBuffers()) {
    if (s->empty() || !s->get()->device)
      continue;
    if (keepValues && !rc)
      rc = downloadToHost(layer, s->get());
    layer->halide->device_free(layer, s->get());
    s->get()->flags = keepValues ? halide_buffer_flag_host_dirty : 0;
  }
  return rc;
}

/// A tensor argument of one call: host or device memory, bound to a Halide
/// buffer; undone (outputs copied back, device memory released) on exit.
class TensorArg {
public:
  TensorArg(normrt_layer *layer, bool output)
      : layer(layer), output(output) {}
  TensorArg(const TensorArg &) = delete;
  TensorArg &operator=(const TensorArg &) = delete;
  ~TensorArg() {
    halide_buffer_t *b = buffer.get();
    if (!layer->onDevice() || !bound)
      return;
    if (wrapped)
      layer->cuda->detach_device_ptr(layer, b);
    else if (b->device)
      layer->halide->device_free(layer, b);
  }

  /// Binds a tensor of geometry g (dense; strides checked before).
  int bindTensor(void *data, int32_t device, int32_t dtype,
                 const normrt::Geometry &g) {
    buffer.tensor(data, dtype, g);
    // GPU kernels take bf16 tensors as their bits (module.h).
    if (layer->desc->device != NORMRT_DEVICE_HOST && dtype == NORMRT_BFLOAT16)
      buffer.get()->type = halide_type_t(halide_type_uint, 16);
    return bindMemory(data, device);
  }
  /// Binds statistics of the call of geometry g (dense, flat).
  int bindStats(void *data, int32_t device, int32_t dtype,
                const normrt::Geometry &g) {
    halide_dimension_t d[normrt::kinds::kNumAxes];
    buffer.set(data, dtype, d, g.statDims(d));
    return bindMemory(data, device);
  }
  /// Binds a gradient of the parameters, shaped like `like`.
  int bindParams(void *data, int32_t device, int32_t dtype,
                 const halide_buffer_t *like) {
    buffer.set(data, dtype, like->dim, like->dimensions);
    return bindMemory(data, device);
  }

  /// After the kernel: host outputs of a GPU layer get their values.
  int finish() {
    if (layer->onDevice() && output && !wrapped)
      return downloadToHost(layer, buffer.get());
    return 0;
  }
  halide_buffer_t *get() { return buffer.get(); }

private:
  int bindMemory(void *data, int32_t device) {
    bound = true;
    if (!layer->onDevice())
      return 0;
    halide_buffer_t *b = buffer.get();
    if (device == 1) { // a CUDA layer's (checkTensorBasics)
      b->host = nullptr;
      wrapped = true;
      if (int rc = layer->cuda->wrap_device_ptr(
              layer, b, reinterpret_cast<uint64_t>(data))) {
        wrapped = false;
        return halideFailure(layer, "wrapping a CUDA pointer", rc);
      }
      return 0;
    }
    // A host tensor: inputs are uploaded by the kernel.
    if (!output)
      b->flags |= halide_buffer_flag_host_dirty;
    return 0;
  }

  normrt_layer *layer;
  bool output;
  bool bound = false;
  bool wrapped = false;
  HalideBuffer buffer;
};

/// What one call binds to each argument role of its kernels: inputs and
/// outputs separately (update_stats reads running_mean and writes its
/// successor). Halide buffers, or the address of a scalar.
struct Bindings {
  void *in[NORMRT_ARG_ROLE_COUNT] = {};
  void *out[NORMRT_ARG_ROLE_COUNT] = {};
};

/// The bytes of the tensors bound for one call (inputs and outputs of the
/// tensor's shape), which decide whether a kernel's streaming variant runs.
int64_t tensorBytes(const Bindings &bound) {
  int64_t bytes = 0;
  for (int32_t role : {NORMRT_ARG_X, NORMRT_ARG_RESIDUAL, NORMRT_ARG_GRAD_OUTPUT})
    if (auto *b = static_cast<const halide_buffer_t *>(bound.in[role]))
      bytes += int64_t(b->size_in_bytes());
  for (int32_t role : {NORMRT_ARG_Y, NORMRT_ARG_GRAD_INPUT,
                       NORMRT_ARG_GRAD_RESIDUAL})
    if (auto *b = static_cast<const halide_buffer_t *>(bound.out[role]))
      bytes += int64_t(b->size_in_bytes());
  return bytes;
}

/// The bytes of one row of `b`: the run along its stride-1 dimension.
int64_t rowBytes(const halide_buffer_t *b) {
  int64_t bytes = b->type.bytes();
  for (int d = 0; d < b->dimensions; ++d)
    if (b->dim[d].stride == 1 && b->dim[d].extent > 1)
      bytes *= b->dim[d].extent;
  return bytes;
}

/// Whether a call with these tensors runs a kernel's streaming variant
/// (normrt_streaming_applies, for every tensor output's rows).
bool runsStreaming(const Bindings &bound) {
  int64_t bytes = tensorBytes(bound);
  for (int32_t role : {NORMRT_ARG_Y, NORMRT_ARG_GRAD_INPUT,
                       NORMRT_ARG_GRAD_RESIDUAL})
    if (auto *b = static_cast<const halide_buffer_t *>(bound.out[role]))
      if (!normrt_streaming_applies(bytes, rowBytes(b)))
        return false;
  return true;
}

/// Calls kernel `kind` of the layer with the arguments its signature lists:
/// its streaming variant where normrt_streaming_applies says so.
int callKernel(normrt_layer *layer, normrt_kernel_kind kind,
               const Bindings &bound) {
  normrt_kernel_fn fn = layer->variant->kernels[kind];
  if (normrt_kernel_fn streaming = layer->variant->streaming_kernels[kind])
    if (runsStreaming(bound))
      fn = streaming;
  const normrt_kernel_signature &sig = layer->desc->signatures[kind];
  if (!fn)
    return fail("layer '%s' has no kernel of kind %d", layer->desc->name,
                int(kind));
  // args[0]: the address of Halide's user context, the layer.
  void *userContext = layer;
  std::vector<void *> args = {&userContext};
  for (int32_t i = 0; i < sig.num_args; ++i) {
    int32_t entry = sig.args[i];
    int32_t role = entry & ~NORMRT_ARG_OUTPUT;
    void *arg = role >= 0 && role < NORMRT_ARG_ROLE_COUNT
                    ? (entry & NORMRT_ARG_OUTPUT ? bound.out : bound.in)[role]
                    : nullptr;
    if (!arg)
      return fail("kernel %d of layer '%s' takes %s '%s', which this normrt "
                  "does not provide; rebuild the module with this normc",
                  int(kind), layer->desc->name,
                  entry & NORMRT_ARG_OUTPUT ? "output" : "input",
                  normrt_arg_role_name(entry));
    args.push_back(arg);
  }
  CallScope scope(layer);
  int rc = fn(args.data());
  if (rc != 0)
    return fail("kernel of layer '%s' failed (Halide error %d): %s",
                layer->desc->name, rc, halideText());
  return 0;
}

/// Where layer `d` runs, for messages: "the CPU", "CUDA" or "OpenCL".
const char *runsOn(const normrt_layer_desc *d) {
  switch (d->device) {
  case NORMRT_DEVICE_HOST:
    return "the CPU";
  case NORMRT_DEVICE_CUDA:
    return "CUDA";
  case NORMRT_DEVICE_OPENCL:
    return "OpenCL";
  default:
    return "an unknown device";
  }
}

/// Copies a new GPU layer's initial state to the device (which proves that
/// the driver, the device and Halide's runtime work).
int uploadInitialState(normrt_layer *layer) {
  const normrt_layer_desc *d = layer->desc;
  CallScope scope(layer);
  for (StateBuffer *s : {&layer->weight, &layer->bias, &layer->runningMean,
                         &layer->runningVar, &layer->counter}) {
    if (s->empty())
      continue;
    s->get()->flags |= halide_buffer_flag_host_dirty;
    if (int rc = layer->halide->copy_to_device(layer, s->get(),
                                                layer->deviceInterface))
      return fail("cannot create layer '%s' on %s target '%s': copying its "
                  "state to the device failed (Halide error %d): %s",
                  d->name, runsOn(d), d->target, rc, halideText());
  }
  return 0;
}

/// A GPU layer from a module whose runtime lacks that GPU's part.
int missingDeviceRuntime(const normrt_layer_desc *d) {
  return fail("layer '%s' on target '%s' runs on %s, but its module "
              "carries no %s runtime; rebuild it with this normc",
              d->name, d->target, runsOn(d), runsOn(d));
}

/// Sets up a CUDA layer: its context, and its initial state on the device.
int setUpCudaLayer(normrt_layer *layer, const normrt_module *module) {
  const normrt_layer_desc *d = layer->desc;
  if (!module->cuda)
    return missingDeviceRuntime(d);
  std::string error;
  if (!normrt::cuda::defaultContext(layer->cuContext, layer->retainedDevice,
                                    error))
    return fail("cannot create layer '%s' on CUDA target '%s': %s", d->name,
                d->target, error.c_str());
  installCudaHooks(module->cuda);
  layer->cuda = module->cuda;
  layer->deviceInterface = module->cuda->device_interface();
  return uploadInitialState(layer);
}

/// Sets up an OpenCL layer: Halide's OpenCL runtime makes its context (the
/// first platform's device, as HL_OCL_PLATFORM_NAME and HL_OCL_DEVICE_TYPE
/// choose) on first use.
int setUpOpenClLayer(normrt_layer *layer, const normrt_module *module) {
  if (!module->opencl_device_interface)
    return missingDeviceRuntime(layer->desc);
  layer->deviceInterface = module->opencl_device_interface();
  return uploadInitialState(layer);
}

int setUpDeviceLayer(normrt_layer *layer, const normrt_module *module) {
  reuseDeviceAllocations(layer->halide);
  switch (layer->desc->device) {
  case NORMRT_DEVICE_CUDA:
    return setUpCudaLayer(layer, module);
  case NORMRT_DEVICE_OPENCL:
    return setUpOpenClLayer(layer, module);
  default:
    return fail("layer '%s' on target '%s' runs on device kind %d, which "
                "this normrt does not know; rebuild the module with this normc",
                layer->desc->name, layer->desc->target, layer->desc->device);
  }
}

/// Releases the primary context the layer retained, if it did.
void releasePrimaryContext(normrt_layer *layer) {
  std::string ignored;
  if (layer->retainedDevice >= 0)
    if (const normrt::cuda::Driver *d = normrt::cuda::driver(ignored))
      d->primaryCtxRelease(layer->retainedDevice);
  layer->retainedDevice = -1;
}

void destroyLayer(normrt_layer *layer) {
  if (layer->onDevice()) {
    releaseDeviceState(layer, /*keepValues=*/false);
    releasePrimaryContext(layer);
  }
  delete layer;
}

int checkTensorBasics(const normrt_layer *layer, const normrt_tensor *t,
                      const char *what, int32_t dtype) {
  if (!t)
    return fail("%s must not be NULL", what);
  if (t->ndim < 0 || t->ndim > NORMRT_MAX_DIMS)
    return fail("%s has ndim %d; expected 0 to %d dimensions", what, t->ndim,
                NORMRT_MAX_DIMS);
  for (int32_t i = 0; i < t->ndim; ++i)
    if (t->shape[i] < 0)
      return fail("%s has a negative extent %lld in dimension %d", what,
                  (long long)t->shape[i], i);
  if (t->device != 0 && t->device != 1)
    return fail("%s has device %d; expected 0 (host) or 1 (CUDA)", what,
                t->device);
  if (t->device == 1 && layer->desc->device != NORMRT_DEVICE_CUDA)
    return fail("%s is a CUDA tensor (device 1), but layer '%s' runs on %s; "
                "pass host tensors or create the layer on a CUDA target",
                what, layer->desc->name, runsOn(layer->desc));
  if (t->dtype != dtype)
    return fail("%s has dtype %s, but the layer expects %s", what,
                dtypeName(t->dtype), dtypeName(dtype));
  return 0;
}

/// The strides of a dense tensor of t's shape in PyTorch order: contiguous,
/// or channels-last (channels, at `featureDim`, innermost, then the spatial
/// dims, then the batch).
void denseStrides(const normrt_tensor *t, bool channelsLast, int featureDim,
                  int64_t *out) {
  int64_t expected = 1;
  if (!channelsLast || t->ndim < featureDim + 2) {
    for (int32_t i = t->ndim - 1; i >= 0; --i) {
      out[i] = expected;
      expected *= t->shape[i];
    }
    return;
  }
  out[featureDim] = 1;
  expected = t->shape[featureDim];
  for (int32_t i = t->ndim - 1; i > featureDim; --i) {
    out[i] = expected;
    expected *= t->shape[i];
  }
  for (int32_t i = featureDim - 1; i >= 0; --i) {
    out[i] = expected;
    expected *= t->shape[i];
  }
}

/// The dimension of x that holds the channels: 1, or 0 for unbatched
/// InstanceNorm inputs.
int featureDim(const normrt_layer *layer, const normrt_tensor *x) {
  const normrt_layer_desc *d = layer->desc;
  if (layer->kind->unbatched && x->ndim == d->spatial_rank + 1)
    return 0;
  return 1;
}

/// The first dimension whose stride is not that of a dense tensor in the
/// layout (writing the expected stride), or -1 when t fits it. All-zero
/// strides mean dense in any layout; extent-1 dimensions may have any
/// stride, as in PyTorch.
int32_t layoutMismatch(const normrt_tensor *t, bool channelsLast,
                       int featureDim, int64_t *expectedStride) {
  bool allZero = true;
  for (int32_t i = 0; i < t->ndim; ++i)
    allZero &= t->strides[i] == 0;
  if (allZero)
    return -1;
  int64_t expected[NORMRT_MAX_DIMS];
  denseStrides(t, channelsLast, featureDim, expected);
  for (int32_t i = 0; i < t->ndim; ++i)
    if (t->shape[i] != 1 && t->strides[i] != expected[i]) {
      *expectedStride = expected[i];
      return i;
    }
  return -1;
}

/// Strides must be all zero (dense in the layer's layout) or those of a
/// dense tensor in the layer's layout.
int checkLayout(const normrt_layer *layer, const normrt_tensor *t,
                const char *what, int featureDim) {
  bool channelsLast = layer->desc->layout != 0;
  int64_t expected = 0;
  int32_t dim = layoutMismatch(t, channelsLast, featureDim, &expected);
  if (dim >= 0)
    return fail("%s does not have the layer's %s layout (stride %lld in "
                "dimension %d, expected %lld)",
                what, channelsLast ? "channels-last" : "contiguous",
                (long long)t->strides[dim], dim, (long long)expected);
  return 0;
}

/// For a layer with several forms, makes the form whose dtype is x's and
/// whose layout fits x's strides the call's (the first that does); a
/// layer with one form keeps it, and its checks say what does not fit.
int selectForm(normrt_layer *layer, const normrt_tensor *x) {
  if (layer->forms.size() < 2 || !x || x->ndim < 0 ||
      x->ndim > NORMRT_MAX_DIMS)
    return 0; // the checks say what is wrong
  int fd = featureDim(layer, x);
  for (const normrt_layer::Form &form : layer->forms) {
    int64_t ignored;
    if (form.desc->dtype == x->dtype &&
        layoutMismatch(x, form.desc->layout != 0, fd, &ignored) < 0) {
      layer->desc = form.desc;
      layer->variant = form.variant;
      return 0;
    }
  }
  std::string forms;
  for (const normrt_layer::Form &form : layer->forms)
    forms += std::string(forms.empty() ? "" : ", ") +
             dtypeName(form.desc->dtype) +
             (form.desc->layout ? " channels-last" : " contiguous");
  std::string strides = "[";
  for (int32_t i = 0; i < x->ndim; ++i)
    strides += (i ? ", " : "") + std::to_string(x->strides[i]);
  return fail("layer '%s' has no form for an input of dtype %s with strides "
              "%s]; it was compiled for %s",
              layer->desc->name, dtypeName(x->dtype), strides.c_str(),
              forms.c_str());
}

/// Checks x as the torch.nn module of the layer's kind does, and maps it
/// onto the kernels' view.
int checkInput(const normrt_layer *layer, const normrt_tensor *x,
               const char *what, bool batchStats, normrt::Geometry &g,
               bool emptyBatch = false) {
  const normrt_layer_desc *d = layer->desc;
  if (checkTensorBasics(layer, x, what, d->dtype))
    return 1;
  if (normrt::mapInput(d, *layer->kind, x, batchStats, g, emptyBatch))
    return 1;
  if (!x->data && g.elements() > 0)
    return fail("%s has no data (NULL pointer)", what);
  return checkLayout(layer, x, what, featureDim(layer, x));
}

int checkSameShape(const normrt_layer *layer, const normrt_tensor *x,
                   const normrt_tensor *t, const char *what, int32_t dtype) {
  if (checkTensorBasics(layer, t, what, dtype))
    return 1;
  bool same = t->ndim == x->ndim;
  int64_t elements = 1;
  for (int32_t i = 0; i < t->ndim; ++i)
    elements *= t->shape[i];
  if (!t->data && elements > 0)
    return fail("%s has no data (NULL pointer)", what);
  for (int32_t i = 0; same && i < x->ndim; ++i)
    same = t->shape[i] == x->shape[i];
  if (!same)
    return fail("%s has size %s, but the input has size %s", what,
                shapeString(t).c_str(), shapeString(x).c_str());
  return checkLayout(layer, t, what, featureDim(layer, x));
}

int64_t byteSize(const normrt_tensor *t) {
  int64_t elements = 1;
  for (int32_t i = 0; i < t->ndim; ++i)
    elements *= t->shape[i];
  return elements * int64_t(dtypeSize(t->dtype));
}

/// Whether [a, a + aBytes) and [b, b + bBytes) share a byte.
bool memoryOverlaps(const void *a, int64_t aBytes, const void *b,
                    int64_t bBytes) {
  auto p = reinterpret_cast<uintptr_t>(a), q = reinterpret_cast<uintptr_t>(b);
  return aBytes > 0 && bBytes > 0 && p < q + uint64_t(bBytes) &&
         q < p + uint64_t(aBytes);
}

/// Outputs are written while inputs are still read (vector tails overlap),
/// so they must not share memory with them.
int checkNoOverlap(const normrt_tensor *out, const char *outName,
                   const normrt_tensor *in, const char *inName) {
  if (!out || !in || out->device != in->device)
    return 0; // absent, or different memories
  if (memoryOverlaps(out->data, byteSize(out), in->data, byteSize(in)))
    return fail("%s overlaps %s in memory; in-place normalization is not "
                "supported, pass a separate output tensor",
                outName, inName);
  return 0;
}

/// The shape of the layer's weight: normalized_shape for LayerNorm and
/// RMSNorm, [num_features] otherwise.
std::vector<int64_t> paramShape(const normrt_layer *layer) {
  const normrt_layer_desc *d = layer->desc;
  if (d->normalized_ndim > 0)
    return std::vector<int64_t>(d->normalized_shape,
                                d->normalized_shape + d->normalized_ndim);
  return {layer->params};
}

/// Strides all zero, or those of a contiguous tensor (any for extent 1).
int checkContiguous(const normrt_tensor *t, const char *what) {
  int64_t expected[NORMRT_MAX_DIMS];
  denseStrides(t, false, 1, expected);
  for (int32_t i = 0; i < t->ndim; ++i)
    if (t->strides[i] != 0 && t->shape[i] != 1 && t->strides[i] != expected[i])
      return fail("%s is not contiguous", what);
  return 0;
}

/// A gradient of weight or bias: the weight's shape (or flat), dense.
int checkParamTensor(const normrt_layer *layer, const normrt_tensor *t,
                     const char *what) {
  if (checkTensorBasics(layer, t, what, layer->desc->param_dtype))
    return 1;
  if (!t->data)
    return fail("%s has no data (NULL pointer)", what);
  std::vector<int64_t> shape = paramShape(layer);
  bool flat = t->ndim == 1 && t->shape[0] == layer->params;
  bool same = std::equal(shape.begin(), shape.end(), t->shape,
                         t->shape + t->ndim);
  if (!flat && !same)
    return fail("%s has size %s; expected %s", what, shapeString(t).c_str(),
                shapeString(shape).c_str());
  return checkContiguous(t, what);
}

/// A tensor of saved statistics for a call with `count` of them.
int checkStatsTensor(const normrt_layer *layer, const normrt_tensor *t,
                     const char *what, int64_t count) {
  if (checkTensorBasics(layer, t, what, layer->desc->param_dtype))
    return 1;
  int64_t elements = 1;
  for (int32_t i = 0; i < t->ndim; ++i)
    elements *= t->shape[i];
  if (elements != count)
    return fail("%s has size %s (%lld values), but this input has %lld "
                "statistics",
                what, shapeString(t).c_str(), (long long)elements,
                (long long)count);
  if (!t->data && count)
    return fail("%s has no data (NULL pointer)", what);
  return checkContiguous(t, what);
}

/// Remembers a successful forward for backward.
void recordForward(normrt_layer *layer, const normrt_tensor *x,
                   bool batchStats, bool synced = false) {
  layer->forwardUsedBatchStats = batchStats;
  layer->forwardSynced = synced;
  layer->forwardShape.assign(x->shape, x->shape + x->ndim);
}

/// Batch statistics are used in training mode and, without running
/// statistics, in eval mode too (F.batch_norm's `training or not tracking`).
bool usesBatchStats(const normrt_layer *layer) {
  return layer->training || !layer->desc->track_running_stats;
}

/// Sizes a statistics buffer for the statistics of geometry `g` (their
/// number depends on the batch for per-instance kinds).
void shapeStats(normrt_layer *layer, StateBuffer &b,
                const normrt::Geometry &g) {
  int32_t p = layer->desc->param_dtype;
  size_t bytes = size_t(g.statCount()) * dtypeSize(p);
  if (b.host.size() != bytes) {
    if (b.get()->device)
      layer->halide->device_free(layer, b.get());
    b.get()->flags = 0;
    b.host.assign(bytes, 0);
  }
  halide_dimension_t dims[normrt::kinds::kNumAxes];
  int n = g.statDims(dims);
  b.halide.set(b.host.data(), p, dims, n);
}

/// commit() for statistics whose number may have changed since the last
/// call: then the values go through the host.
int commitStats(normrt_layer *layer, StateBuffer &state, StateBuffer &scratch) {
  if (state.host.size() == scratch.host.size()) {
    halide_buffer_t *b = state.get();
    int dims = scratch.get()->dimensions;
    b->dimensions = dims;
    for (int i = 0; i < dims; ++i)
      b->dim[i] = scratch.get()->dim[i];
    return commit(layer, state, scratch);
  }
  if (layer->onDevice()) {
    if (downloadToHost(layer, scratch.get()))
      return 1;
    if (state.get()->device)
      layer->halide->device_free(layer, state.get());
  }
  state.host = scratch.host;
  halide_buffer_t *from = scratch.get();
  state.halide.set(state.host.data(), layer->desc->param_dtype, from->dim,
                   from->dimensions);
  if (layer->onDevice())
    state.get()->flags = halide_buffer_flag_host_dirty;
  return 0;
}

} // namespace

extern "C" {

normrt_layer *normrt_layer_create(const char *name, const char *target) {
  if (!name || !target) {
    fail("normrt_layer_create: layer name and target label must not be NULL");
    return nullptr;
  }
  const normrt_module *module = nullptr;
  const normrt_layer_desc *desc = normrt::findLayer(name, target, &module);
  if (!desc)
    return nullptr;
  // The best variant whose CPU features this machine has: never one whose
  // code would stop the program with an illegal instruction.
  int32_t variant = normrt_runnable_variant(desc);
  if (variant < 0) {
    std::string missing = desc->num_variants > 0
                              ? normrt::missingCpuFeatures(
                                    desc->variants[desc->num_variants - 1]
                                        .cpu_features)
                              : "no variants";
    fail("layer '%s' on target '%s' was compiled for \"%s\", which needs "
         "CPU features this machine lacks (%s); compile it for this CPU "
         "(target \"host\") or add a baseline target to the label's list",
         name, target, desc->target_string, missing.c_str());
    return nullptr;
  }
  const normrt::kinds::Kind *kind = normrt::kinds::findKind(desc->kind);
  if (!kind) {
    fail("layer '%s' is of kind '%s', which this normrt does not know; "
         "rebuild the module with this normc",
         name, desc->kind);
    return nullptr;
  }
  module->halide->set_error_handler(onHalideError);

  auto *layer = new normrt_layer;
  layer->kind = kind;
  for (int32_t i = 0; i < std::max(desc->num_forms, 1); ++i) {
    const normrt_layer_desc *form = desc + i;
    int32_t v = normrt_runnable_variant(form);
    if (v < 0 || form->param_dtype != desc->param_dtype) {
      fail("layer '%s' on target '%s': its form %d (%s) does not fit its "
           "first; rebuild the module with this normc",
           name, target, int(i), dtypeName(form->dtype));
      delete layer;
      return nullptr;
    }
    layer->forms.push_back({form, &form->variants[v]});
  }
  layer->desc = desc;
  layer->variant = layer->forms.front().variant;
  layer->halide = module->halide;
  layer->params = desc->num_features;
  int32_t p = desc->param_dtype;
  int64_t c = desc->num_features;
  normrt::kinds::ReductionPlan plan =
      normrt::kinds::planFor(*kind, desc->layout != 0, desc->spatial_rank);
  halide_dimension_t paramDims[2];
  int numParamDims =
      normrt::paramDims(plan, desc->num_features, desc->num_groups, paramDims);
  if (desc->affine) {
    layer->weight.init(c, p, 1.0);
    if (desc->bias)
      layer->bias.init(c, p, 0.0);
  }
  layer->gradWeight.init(c, p, 0.0);
  layer->gradBias.init(c, p, 0.0);
  // Weight, bias and their gradients have the parameters' dimensions.
  for (StateBuffer *s : {&layer->weight, &layer->bias, &layer->gradWeight,
                         &layer->gradBias})
    if (!s->empty())
      s->halide.set(s->host.data(), p, paramDims, numParamDims);
  if (desc->track_running_stats) {
    layer->runningMean.init(c, p, 0.0);
    layer->runningVar.init(c, p, 1.0);
    layer->counter.init(-1, NORMRT_INT64, 0.0);
    layer->newRunningMean.init(c, p, 0.0);
    layer->newRunningVar.init(c, p, 0.0);
    layer->newCounter.init(-1, NORMRT_INT64, 0.0);
  }
  // Batch statistics: sized by each forward (per-instance kinds have a
  // statistic per instance); per channel before the first.
  for (StateBuffer *s : {&layer->saveMean, &layer->saveInvstd, &layer->newMean,
                         &layer->newInvstd, &layer->newVar})
    s->init(plan.kept(normrt::kinds::N) ? 0 : c, p, 0.0);
  if (desc->device != NORMRT_DEVICE_HOST && setUpDeviceLayer(layer, module)) {
    destroyLayer(layer);
    return nullptr;
  }
  succeed();
  return layer;
}

void normrt_layer_destroy(normrt_layer *layer) {
  if (layer)
    destroyLayer(layer);
}

int normrt_layer_set_training(normrt_layer *layer, int training) {
  if (!layer)
    return fail("normrt_layer_set_training: layer must not be NULL");
  layer->training = training != 0;
  succeed();
  return 0;
}

int normrt_layer_set_cuda_stream(normrt_layer *layer, void *context,
                                 void *stream) {
  if (!layer)
    return fail("normrt_layer_set_cuda_stream: layer must not be NULL");
  if (!layer->cuda)
    return fail("layer '%s' runs on %s (target '%s'); only CUDA layers "
                "take a CUDA context and stream",
                layer->desc->name, runsOn(layer->desc), layer->desc->target);
  if (context && context != layer->cuContext) {
    // The state's device memory belongs to the old context: bring its
    // values to the host; the next call uploads them into the new one.
    if (releaseDeviceState(layer, /*keepValues=*/true))
      return 1;
    releasePrimaryContext(layer);
    layer->cuContext = context;
  }
  layer->cuStream = stream;
  succeed();
  return 0;
}

int32_t normrt_layer_num_forms(const normrt_layer *layer) {
  return layer ? int32_t(layer->forms.size()) : 0;
}

int normrt_layer_form(const normrt_layer *layer, int32_t index,
                      normrt_dtype *dtype, int32_t *channels_last) {
  if (!layer || !dtype || !channels_last)
    return fail("normrt_layer_form: layer, dtype and channels_last must not "
                "be NULL");
  if (index < 0 || size_t(index) >= layer->forms.size())
    return fail("layer '%s' has %d form(s); there is no form %d",
                layer->desc->name, int(layer->forms.size()), int(index));
  const normrt_layer_desc *d = layer->forms[size_t(index)].desc;
  *dtype = normrt_dtype(d->dtype);
  *channels_last = d->layout != 0;
  succeed();
  return 0;
}

int normrt_layer_get_info(const normrt_layer *layer, normrt_layer_info *info) {
  if (!layer || !info)
    return fail("normrt_layer_get_info: layer and info must not be NULL");
  // The first form's (the layer's only one, for most).
  const normrt_layer_desc *d = layer->forms.front().desc;
  std::memset(info, 0, sizeof(*info));
  info->name = d->name;
  info->target = d->target;
  info->kind = d->kind;
  info->spatial_rank = d->spatial_rank;
  info->num_features = d->num_features;
  info->eps = d->eps;
  info->momentum = d->momentum;
  info->momentum_is_none = d->momentum_is_none;
  info->affine = d->affine;
  info->track_running_stats = d->track_running_stats;
  info->dtype = normrt_dtype(d->dtype);
  info->param_dtype = normrt_dtype(d->param_dtype);
  info->training = layer->training;
  info->channels_last = d->layout != 0;
  info->device = d->device;
  info->target_string = layer->forms.front().variant->target_string;
  info->num_groups = d->num_groups;
  info->normalized_ndim = d->normalized_ndim;
  for (int32_t i = 0; i < d->normalized_ndim && i < NORMRT_MAX_DIMS; ++i)
    info->normalized_shape[i] = d->normalized_shape[i];
  info->bias = d->bias;
  info->activation = d->activation;
  info->residual = d->residual;
  succeed();
  return 0;
}

namespace {

/// The residual input: required exactly for layers with residual=true.
int checkResidual(const normrt_layer *layer, const normrt_tensor *x,
                  const normrt_tensor *residual, const char *call) {
  const normrt_layer_desc *d = layer->desc;
  if (!d->residual) {
    if (residual)
      return fail("layer '%s' has residual=false: %s takes no residual "
                  "tensor",
                  d->name, call);
    return 0;
  }
  if (!residual)
    return fail("layer '%s' has residual=true: %s needs the residual tensor "
                "(y = %s(norm(x) + residual)); use normrt_layer_forward_args "
                "and normrt_layer_backward_args",
                d->name, call,
                normrt::kinds::activationName(
                    normrt::kinds::Activation(d->activation)));
  return checkSameShape(layer, x, residual, "residual", d->dtype);
}

} // namespace

namespace {

/// The caller's saved statistics of one call, bound to the kernels.
struct SavedArgs {
  TensorArg mean, invstd;
  SavedArgs(normrt_layer *layer, bool output)
      : mean(layer, output), invstd(layer, output) {}
};

/// Binds a backward kernel's inputs: x, the residual (or none), dy, the
/// statistics of the forward it differentiates (the caller's when `saved`,
/// else the layer's last), the running statistics, weight and bias.
void bindBackwardInputs(normrt_layer *layer, Bindings &bound,
                        halide_buffer_t *x, halide_buffer_t *z,
                        halide_buffer_t *dy, const normrt_saved_stats *saved,
                        SavedArgs &savedArgs) {
  bound.in[NORMRT_ARG_X] = x;
  bound.in[NORMRT_ARG_RESIDUAL] = z;
  bound.in[NORMRT_ARG_GRAD_OUTPUT] = dy;
  bound.in[NORMRT_ARG_SAVE_MEAN] =
      saved ? savedArgs.mean.get() : layer->saveMean.get();
  bound.in[NORMRT_ARG_SAVE_INVSTD] =
      saved ? savedArgs.invstd.get() : layer->saveInvstd.get();
  bound.in[NORMRT_ARG_RUNNING_MEAN] = layer->runningMean.get();
  bound.in[NORMRT_ARG_RUNNING_VAR] = layer->runningVar.get();
  bound.in[NORMRT_ARG_WEIGHT] = layer->weight.get();
  bound.in[NORMRT_ARG_BIAS] = layer->bias.get();
}

/// Checks the caller's saved statistics for a call of geometry g (with x and
/// the call's outputs, which they must not overlap) and binds them.
int bindSaved(normrt_layer *layer, const normrt_saved_stats *saved,
              const normrt::Geometry &g, const normrt_tensor *x,
              const normrt_tensor *out, SavedArgs &args) {
  bool centered = layer->kind->statistic == normrt::kinds::Statistic::MeanVar;
  int64_t count = g.statCount();
  const normrt_tensor *mean = &saved->mean, *invstd = &saved->invstd;
  if ((centered && checkStatsTensor(layer, mean, "saved mean", count)) ||
      checkStatsTensor(layer, invstd, "saved invstd", count) ||
      (centered && (checkNoOverlap(mean, "saved mean", invstd, "saved invstd") ||
                    checkNoOverlap(mean, "saved mean", x, "input") ||
                    checkNoOverlap(mean, "saved mean", out, "the output"))) ||
      checkNoOverlap(invstd, "saved invstd", x, "input") ||
      checkNoOverlap(invstd, "saved invstd", out, "the output"))
    return 1;
  int32_t p = layer->desc->param_dtype;
  if (centered && args.mean.bindStats(mean->data, mean->device, p, g))
    return 1;
  return args.invstd.bindStats(invstd->data, invstd->device, p, g);
}

/// update_stats: the running statistics' and the counter's successors
/// (committed by the caller) from a batch's mean and biased variance over
/// `count` values per channel.
int updateRunningStats(normrt_layer *layer, halide_buffer_t *mean,
                       halide_buffer_t *var, int64_t &count) {
  Bindings u;
  u.in[NORMRT_ARG_SAVE_MEAN] = mean;
  u.in[NORMRT_ARG_BATCH_VAR] = var;
  u.in[NORMRT_ARG_RUNNING_MEAN] = layer->runningMean.get();
  u.in[NORMRT_ARG_RUNNING_VAR] = layer->runningVar.get();
  u.in[NORMRT_ARG_NUM_BATCHES_TRACKED] = layer->counter.get();
  u.in[NORMRT_ARG_COUNT] = &count;
  u.out[NORMRT_ARG_RUNNING_MEAN] = layer->newRunningMean.get();
  u.out[NORMRT_ARG_RUNNING_VAR] = layer->newRunningVar.get();
  u.out[NORMRT_ARG_NUM_BATCHES_TRACKED] = layer->newCounter.get();
  return callKernel(layer, NORMRT_KERNEL_UPDATE_STATS, u);
}

/// The checks of a forward's tensors (input, residual, output), mapping the
/// input onto the kernels' view.
int checkForward(normrt_layer *layer, const normrt_forward_args *a,
                 bool batchStats, normrt::Geometry &g,
                 bool emptyBatch = false) {
  const normrt_tensor *x = a->input, *z = a->residual, *y = a->output;
  return checkInput(layer, x, "input", batchStats, g, emptyBatch) ||
         checkResidual(layer, x, z, "forward") ||
         checkSameShape(layer, x, y, "output", layer->desc->dtype) ||
         checkNoOverlap(y, "output", x, "input") ||
         checkNoOverlap(y, "output", z, "residual");
}

/// The checks of a backward's tensors (input, residual, gradients).
int checkBackward(normrt_layer *layer, const normrt_backward_args *a,
                  normrt::Geometry &g, bool emptyBatch = false) {
  const normrt_layer_desc *d = layer->desc;
  const normrt_tensor *x = a->input, *z = a->residual, *dy = a->grad_output;
  const normrt_tensor *dx = a->grad_input, *dz = a->grad_residual;
  const normrt_tensor *dweight = a->grad_weight, *dbias = a->grad_bias;
  if (checkInput(layer, x, "input", false, g, emptyBatch) ||
      checkResidual(layer, x, z, "backward") ||
      checkSameShape(layer, x, dy, "grad_output", d->dtype) ||
      checkSameShape(layer, x, dx, "grad_input", d->dtype) ||
      checkNoOverlap(dx, "grad_input", x, "input") ||
      checkNoOverlap(dx, "grad_input", dy, "grad_output") ||
      checkNoOverlap(dx, "grad_input", z, "residual"))
    return 1;
  if (dz && (!d->residual ||
             checkSameShape(layer, x, dz, "grad_residual", d->dtype) ||
             checkNoOverlap(dz, "grad_residual", x, "input") ||
             checkNoOverlap(dz, "grad_residual", dy, "grad_output") ||
             checkNoOverlap(dz, "grad_residual", dx, "grad_input")))
    return d->residual ? 1
                       : fail("layer '%s' has residual=false: it has no "
                              "grad_residual",
                              d->name);
  if (!d->affine && (dweight || dbias))
    return fail("layer '%s' has affine=False: it has no weight or bias, so "
                "dweight and dbias must be NULL",
                d->name);
  if (!d->bias && dbias)
    return fail("layer '%s' has no bias, so dbias must be NULL", d->name);
  return (dweight && checkParamTensor(layer, dweight, "grad_weight")) ||
         (dbias && checkParamTensor(layer, dbias, "grad_bias"));
}

int runSyncForward(normrt_layer *layer, const normrt_forward_args *a,
                   normrt_saved_stats *saved);
int runSyncBackward(normrt_layer *layer, const normrt_backward_args *a,
                    const normrt_saved_stats *saved);

/// normrt_layer_forward_args, with the saved statistics in `saved` (the
/// caller's) or, when it is null, in the layer.
int runForward(normrt_layer *layer, const normrt_forward_args *a,
               normrt_saved_stats *saved) {
  // SyncBatchNorm syncs in training mode only (an eval forward without
  // running statistics normalizes each process's batch by itself, as
  // torch.nn.SyncBatchNorm does).
  if (layer->allreduce && layer->training)
    return runSyncForward(layer, a, saved);
  if (selectForm(layer, a->input))
    return 1;
  const normrt_layer_desc *d = layer->desc;
  bool batchStats = usesBatchStats(layer);
  normrt::Geometry g;
  const normrt_tensor *x = a->input, *z = a->residual;
  normrt_tensor *y = a->output;
  if (checkForward(layer, a, batchStats, g))
    return 1;
  SavedArgs savedArgs(layer, /*output=*/true);
  if (saved && batchStats && bindSaved(layer, saved, g, x, y, savedArgs))
    return 1;

  markStateHostDirty(layer);
  TensorArg xb(layer, false), zb(layer, false), yb(layer, true);
  if (xb.bindTensor(x->data, x->device, d->dtype, g) ||
      (z && zb.bindTensor(z->data, z->device, d->dtype, g)) ||
      yb.bindTensor(y->data, y->device, d->dtype, g))
    return 1;
  Bindings bound;
  bound.in[NORMRT_ARG_X] = xb.get();
  bound.in[NORMRT_ARG_RESIDUAL] = z ? zb.get() : nullptr;
  bound.in[NORMRT_ARG_WEIGHT] = layer->weight.get();
  bound.in[NORMRT_ARG_BIAS] = layer->bias.get();
  bound.out[NORMRT_ARG_Y] = yb.get();

  if (!batchStats) {
    bound.in[NORMRT_ARG_RUNNING_MEAN] = layer->runningMean.get();
    bound.in[NORMRT_ARG_RUNNING_VAR] = layer->runningVar.get();
    if (callKernel(layer, NORMRT_KERNEL_FORWARD_EVAL, bound) || yb.finish())
      return 1;
    if (saved)
      saved->batch_stats = 0;
    else
      recordForward(layer, x, /*batchStats=*/false);
    succeed();
    return 0;
  }

  shapeStats(layer, layer->newVar, g);
  halide_buffer_t *mean = savedArgs.mean.get(),
                  *invstd = savedArgs.invstd.get();
  if (!saved) {
    shapeStats(layer, layer->newMean, g);
    shapeStats(layer, layer->newInvstd, g);
    mean = layer->newMean.get();
    invstd = layer->newInvstd.get();
  }
  bound.out[NORMRT_ARG_SAVE_MEAN] = mean;
  bound.out[NORMRT_ARG_SAVE_INVSTD] = invstd;
  bound.out[NORMRT_ARG_BATCH_VAR] = layer->newVar.get();
  if (callKernel(layer, NORMRT_KERNEL_FORWARD_TRAIN, bound))
    return 1;

  bool update = layer->training && d->track_running_stats;
  int64_t count = g.valuesPerStat();
  if (update && updateRunningStats(layer, mean, layer->newVar.get(), count))
    return 1;
  if (yb.finish() ||
      (saved && (savedArgs.mean.finish() || savedArgs.invstd.finish())))
    return 1;

  // Every kernel succeeded: commit. (On the CPU copies, not swaps: state
  // views handed out earlier must stay valid.)
  CallScope scope(layer);
  if (!saved && (commitStats(layer, layer->saveMean, layer->newMean) ||
                 commitStats(layer, layer->saveInvstd, layer->newInvstd)))
    return 1;
  if (update && (commit(layer, layer->runningMean, layer->newRunningMean) ||
                 commit(layer, layer->runningVar, layer->newRunningVar) ||
                 (layer->kind->countsBatches &&
                  commit(layer, layer->counter, layer->newCounter))))
    return 1;
  if (saved)
    saved->batch_stats = 1;
  else
    recordForward(layer, x, /*batchStats=*/true);
  succeed();
  return 0;
}

/// normrt_layer_backward_args, from the caller's saved statistics when
/// `saved` is not null, else from the layer's last forward.
int runBackward(normrt_layer *layer, const normrt_backward_args *a,
                const normrt_saved_stats *saved) {
  // The backward of a synchronized forward is synchronized too.
  bool synced = saved ? saved->batch_stats == NORMRT_SAVED_SYNCED
                      : layer->forwardUsedBatchStats && layer->forwardSynced;
  if (synced)
    return runSyncBackward(layer, a, saved);
  if (selectForm(layer, a->input))
    return 1;
  const normrt_layer_desc *d = layer->desc;
  const normrt_tensor *x = a->input, *z = a->residual, *dy = a->grad_output;
  normrt_tensor *dx = a->grad_input, *dz = a->grad_residual;
  normrt_tensor *dweight = a->grad_weight, *dbias = a->grad_bias;
  bool batchStats =
      saved ? saved->batch_stats != 0 : layer->forwardUsedBatchStats;
  normrt::Geometry g;
  if (checkBackward(layer, a, g))
    return 1;
  SavedArgs savedArgs(layer, /*output=*/false);
  if (saved) {
    if (!batchStats && !d->track_running_stats)
      return fail("layer '%s' has track_running_stats=False, so its forwards "
                  "always use batch statistics; the saved statistics say "
                  "running statistics (batch_stats = 0)",
                  d->name);
    if (batchStats && bindSaved(layer, saved, g, x, dx, savedArgs))
      return 1;
  } else if (layer->forwardShape.empty()) {
    // Backward differentiates the last forward: its mode and statistics,
    // not the layer's mode now (eval() between the two changes nothing).
    return fail("layer '%s': backward needs a forward call first (it "
                "differentiates the last forward, with that forward's "
                "statistics)",
                d->name);
  } else if (!std::equal(layer->forwardShape.begin(),
                         layer->forwardShape.end(), x->shape,
                         x->shape + x->ndim)) {
    return fail("layer '%s': backward got an input of size %s, but the last "
                "forward's input had size %s; backward differentiates the "
                "last forward",
                d->name, shapeString(x).c_str(),
                shapeString(layer->forwardShape).c_str());
  }

  markStateHostDirty(layer);
  TensorArg xb(layer, false), zb(layer, false), dyb(layer, false),
      dxb(layer, true), dzb(layer, true), dwb(layer, true), dbb(layer, true);
  // Without grad_residual from the caller, host scratch takes it.
  std::vector<uint8_t> dzScratch;
  void *dzData = dz ? dz->data : nullptr;
  int32_t dzDevice = dz ? dz->device : 0;
  if (d->residual && !dz) {
    dzScratch.resize(size_t(g.elements()) * dtypeSize(d->dtype));
    dzData = dzScratch.data();
  }
  if (xb.bindTensor(x->data, x->device, d->dtype, g) ||
      (z && zb.bindTensor(z->data, z->device, d->dtype, g)) ||
      dyb.bindTensor(dy->data, dy->device, d->dtype, g) ||
      dxb.bindTensor(dx->data, dx->device, d->dtype, g) ||
      (d->residual && dzb.bindTensor(dzData, dzDevice, d->dtype, g)))
    return 1;
  // Without dweight or dbias from the caller, the layer's scratch takes them.
  Bindings bound;
  bound.out[NORMRT_ARG_GRAD_WEIGHT] = layer->gradWeight.get();
  bound.out[NORMRT_ARG_GRAD_BIAS] = layer->gradBias.get();
  halide_buffer_t *paramLike = layer->gradWeight.get();
  if (dweight) {
    if (dwb.bindParams(dweight->data, dweight->device, d->param_dtype,
                       paramLike))
      return 1;
    bound.out[NORMRT_ARG_GRAD_WEIGHT] = dwb.get();
  }
  if (dbias) {
    if (dbb.bindParams(dbias->data, dbias->device, d->param_dtype, paramLike))
      return 1;
    bound.out[NORMRT_ARG_GRAD_BIAS] = dbb.get();
  }
  bindBackwardInputs(layer, bound, xb.get(), z ? zb.get() : nullptr,
                     dyb.get(), saved, savedArgs);
  bound.out[NORMRT_ARG_GRAD_INPUT] = dxb.get();
  bound.out[NORMRT_ARG_GRAD_RESIDUAL] = d->residual ? dzb.get() : nullptr;
  if (callKernel(layer, batchStats ? NORMRT_KERNEL_BACKWARD
                                   : NORMRT_KERNEL_BACKWARD_EVAL,
                 bound))
    return 1;
  if (dxb.finish() || (d->residual && dzb.finish()) ||
      (dweight && dwb.finish()) || (dbias && dbb.finish()))
    return 1;
  succeed();
  return 0;
}

//===----------------------------------------------------------------------===//
// SyncBatchNorm: statistics and gradient sums across processes
//===----------------------------------------------------------------------===//
//
// A synchronized training forward (a SyncBatchNorm layer with an allreduce
// hook, in training mode) runs the train forward split at its reduction:
//   batch_stats   local mean m_i and sum of squared deviations M2_i per
//                 channel, over this process's n_i values
//   allreduce 1   [failures, n_i, n_i m_i]         -> N, mean = sum / N
//   allreduce 2   [M2_i + n_i (m_i - mean)^2]      -> M2 (Chan et al.)
//   finalize      var = M2 / N, invstd = 1 / sqrt(var + eps), running
//                 statistics with N's unbiased variance (update_stats)
//   forward_eval  y with the global mean and var
// and its backward:
//   backward_reduce  local sum(dy), sum(dy (x - mean)) per channel; this
//                    process's grad_weight and grad_bias come from them
//   allreduce 3      [failures, n_i, sum(dy), sum(dy (x - mean))]
//   backward_elemt   dx from the global sums and N
// All values cross processes in f64. Every process calls each collective,
// also one whose checks or kernels failed: it adds 1 to `failures`, so all
// of them return an error instead of waiting for it. A process with an
// empty share (n_i = 0) runs no kernels and adds zeros.

/// The accumulator dtype of the split kernels' per-channel outputs: f64
/// for f32 and f64 tensors, f32 for f16 and bf16.
int32_t accumulatorDtype(const normrt_layer_desc *d) {
  return d->dtype == NORMRT_FLOAT32 || d->dtype == NORMRT_FLOAT64
             ? NORMRT_FLOAT64
             : NORMRT_FLOAT32;
}

/// Per-channel host values of an f32 or f64 dtype.
struct ChannelValues {
  std::vector<uint8_t> bytes;
  int32_t dtype;
  HalideBuffer halide;
  ChannelValues(int32_t dtype, int64_t c)
      : bytes(size_t(c) * dtypeSize(dtype), 0), dtype(dtype) {
    halide.vector(bytes.data(), dtype, c);
  }
  double get(int64_t i) const { return load(bytes.data(), dtype, i); }
  void set(int64_t i, double v) { store(bytes.data(), dtype, i, v); }
  halide_buffer_t *buffer() { return halide.get(); }

  static double load(const void *data, int32_t dtype, int64_t i) {
    if (dtype == NORMRT_FLOAT64)
      return static_cast<const double *>(data)[i];
    return static_cast<const float *>(data)[i];
  }
  static void store(void *data, int32_t dtype, int64_t i, double v) {
    if (dtype == NORMRT_FLOAT64)
      static_cast<double *>(data)[i] = v;
    else
      static_cast<float *>(data)[i] = static_cast<float>(v);
  }
};

/// One collective: `values` summed over the processes in place. `failed`
/// (the first value of the first collective of a call) counts the
/// processes that could not go on; when any could not, every process
/// returns an error (this one keeps its own message).
int allreduce(normrt_layer *layer, std::vector<double> &values,
              bool failedHere) {
  std::string ownError = failedHere ? normrt_last_error() : "";
  int rc = layer->allreduce(values.data(), int64_t(values.size()),
                            NORMRT_FLOAT64, layer->allreduceContext);
  if (rc != 0)
    return fail("layer '%s': the allreduce hook failed (returned %d); the "
                "call was not completed and the layer's state is unchanged",
                layer->desc->name, rc);
  if (failedHere)
    return fail("%s", ownError.c_str());
  if (values[0] > 0)
    return fail("layer '%s': %.0f other process(es) failed this synchronized "
                "call (their input checks or kernels); no process changed "
                "its state",
                layer->desc->name, values[0]);
  return 0;
}

/// The number of values per channel of a synchronized call's global batch,
/// which must be more than one (the first collective's second value).
int checkGlobalCount(normrt_layer *layer, const normrt_tensor *x,
                     double total) {
  if (total > 1)
    return 0;
  return fail("Expected more than 1 value per channel when training, got "
              "input size %s (%.0f value(s) per channel over all processes)",
              shapeString(x).c_str(), total);
}

/// Binds the layer's halide buffers of weight and bias.
void bindParams(normrt_layer *layer, Bindings &bound) {
  bound.in[NORMRT_ARG_WEIGHT] = layer->weight.get();
  bound.in[NORMRT_ARG_BIAS] = layer->bias.get();
}

int runSyncForward(normrt_layer *layer, const normrt_forward_args *a,
                   normrt_saved_stats *saved) {
  const int64_t C = layer->params;
  // Collective 1: failures, values, then the channels' sums.
  std::vector<double> sums(size_t(C) + 2, 0.0);
  normrt::Geometry g;
  const normrt_tensor *x = a->input, *z = a->residual;
  normrt_tensor *y = a->output;
  SavedArgs savedArgs(layer, /*output=*/true);
  HalideBuffer xb, zb, yb;
  bool failed = selectForm(layer, x) ||
                checkForward(layer, a, /*batchStats=*/false, g,
                             /*emptyBatch=*/true) ||
                (saved && bindSaved(layer, saved, g, x, y, savedArgs));
  const normrt_layer_desc *d = layer->desc;
  int32_t acc = accumulatorDtype(d), p = d->param_dtype;
  ChannelValues localMean(acc, C), localM2(acc, C);
  int64_t n = failed ? 0 : g.valuesPerStat();
  if (!failed && n > 0) {
    xb.tensor(x->data, d->dtype, g);
    Bindings bound;
    bound.in[NORMRT_ARG_X] = xb.get();
    bound.out[NORMRT_ARG_BATCH_MEAN] = localMean.buffer();
    bound.out[NORMRT_ARG_BATCH_M2] = localM2.buffer();
    failed = callKernel(layer, NORMRT_KERNEL_BATCH_STATS, bound) != 0;
  }
  sums[0] = failed ? 1 : 0;
  sums[1] = failed ? 0 : double(n);
  for (int64_t c = 0; !failed && c < C; ++c)
    sums[2 + c] = double(n) * localMean.get(c);
  if (allreduce(layer, sums, failed))
    return 1;
  double total = sums[1];
  if (checkGlobalCount(layer, x, total))
    return 1;

  // Collective 2: the sums of squared deviations from the global mean.
  std::vector<double> mean(static_cast<size_t>(C)), m2(size_t(C) + 1, 0.0);
  for (int64_t c = 0; c < C; ++c) {
    mean[c] = sums[2 + c] / total;
    if (n > 0) {
      double delta = localMean.get(c) - mean[c];
      m2[1 + c] = localM2.get(c) + double(n) * delta * delta;
    }
  }
  if (allreduce(layer, m2, false))
    return 1;

  // Finalize, in the parameter dtype the kernels and the caller take.
  ChannelValues globalMean(p, C), globalVar(p, C), invstd(p, C);
  for (int64_t c = 0; c < C; ++c) {
    double var = m2[1 + c] / total;
    globalMean.set(c, mean[c]);
    globalVar.set(c, var);
    invstd.set(c, 1.0 / std::sqrt(var + d->eps));
  }
  if (n > 0) {
    xb.tensor(x->data, d->dtype, g);
    yb.tensor(y->data, d->dtype, g);
    if (z)
      zb.tensor(z->data, d->dtype, g);
    Bindings bound;
    bound.in[NORMRT_ARG_X] = xb.get();
    bound.in[NORMRT_ARG_RESIDUAL] = z ? zb.get() : nullptr;
    bound.in[NORMRT_ARG_RUNNING_MEAN] = globalMean.buffer();
    bound.in[NORMRT_ARG_RUNNING_VAR] = globalVar.buffer();
    bindParams(layer, bound);
    bound.out[NORMRT_ARG_Y] = yb.get();
    if (callKernel(layer, NORMRT_KERNEL_FORWARD_EVAL, bound))
      return 1;
  }
  bool update = d->track_running_stats;
  int64_t count = int64_t(total);
  if (update && updateRunningStats(layer, globalMean.buffer(),
                                    globalVar.buffer(), count))
    return 1;

  // Every kernel succeeded: commit.
  size_t statBytes = size_t(C) * dtypeSize(p);
  if (saved) {
    std::memcpy(saved->mean.data, globalMean.bytes.data(), statBytes);
    std::memcpy(saved->invstd.data, invstd.bytes.data(), statBytes);
    saved->batch_stats = NORMRT_SAVED_SYNCED;
  } else {
    shapeStats(layer, layer->saveMean, g);
    shapeStats(layer, layer->saveInvstd, g);
    std::memcpy(layer->saveMean.data(), globalMean.bytes.data(), statBytes);
    std::memcpy(layer->saveInvstd.data(), invstd.bytes.data(), statBytes);
    recordForward(layer, x, /*batchStats=*/true, /*synced=*/true);
  }
  if (update && (commit(layer, layer->runningMean, layer->newRunningMean) ||
                 commit(layer, layer->runningVar, layer->newRunningVar) ||
                 commit(layer, layer->counter, layer->newCounter)))
    return 1;
  succeed();
  return 0;
}

int runSyncBackward(normrt_layer *layer, const normrt_backward_args *a,
                    const normrt_saved_stats *saved) {
  const int64_t C = layer->params;
  // Collective 3: failures, values, sum(dy) and sum(dy (x - mean)).
  std::vector<double> sums(2 * size_t(C) + 2, 0.0);
  normrt::Geometry g;
  const normrt_tensor *x = a->input, *z = a->residual, *dy = a->grad_output;
  normrt_tensor *dx = a->grad_input, *dz = a->grad_residual;
  SavedArgs savedArgs(layer, /*output=*/false);
  bool failed =
      selectForm(layer, x) || checkBackward(layer, a, g, /*emptyBatch=*/true);
  if (!failed && !layer->allreduce)
    failed = fail("layer '%s': this backward differentiates a forward whose "
                  "statistics were summed across processes, but the layer "
                  "has no allreduce hook now (normrt_layer_set_allreduce)",
                  layer->desc->name) != 0;
  if (layer->allreduce == nullptr)
    return 1; // no collective to join
  if (!failed && !saved && !std::equal(layer->forwardShape.begin(),
                                       layer->forwardShape.end(), x->shape,
                                       x->shape + x->ndim))
    failed = fail("layer '%s': backward got an input of size %s, but the "
                  "last forward's input had size %s; backward differentiates "
                  "the last forward",
                  layer->desc->name, shapeString(x).c_str(),
                  shapeString(layer->forwardShape).c_str()) != 0;
  if (!failed && saved)
    failed = bindSaved(layer, saved, g, x, dx, savedArgs) != 0;
  const normrt_layer_desc *d = layer->desc;
  int32_t acc = accumulatorDtype(d), p = d->param_dtype;
  ChannelValues localDy(acc, C), localDyXmu(acc, C);
  int64_t n = failed ? 0 : g.valuesPerStat();
  HalideBuffer xb, zb, dyb, dxb, dzb;
  // Without grad_residual from the caller, host scratch takes it.
  std::vector<uint8_t> dzScratch;
  Bindings bound;
  if (!failed && n > 0) {
    xb.tensor(x->data, d->dtype, g);
    dyb.tensor(dy->data, d->dtype, g);
    if (z)
      zb.tensor(z->data, d->dtype, g);
    bindBackwardInputs(layer, bound, xb.get(), z ? zb.get() : nullptr,
                       dyb.get(), saved, savedArgs);
    bound.out[NORMRT_ARG_SUM_DY] = localDy.buffer();
    bound.out[NORMRT_ARG_SUM_DY_XMU] = localDyXmu.buffer();
    failed = callKernel(layer, NORMRT_KERNEL_BACKWARD_REDUCE, bound) != 0;
  }
  sums[0] = failed ? 1 : 0;
  sums[1] = failed ? 0 : double(n);
  for (int64_t c = 0; !failed && c < C; ++c) {
    sums[2 + c] = localDy.get(c);
    sums[2 + C + c] = localDyXmu.get(c);
  }
  // This process's parameter gradients, from its own sums (as PyTorch's
  // SyncBatchNorm leaves them, for data-parallel gradient averaging).
  const void *invstd = (saved ? savedArgs.invstd.get()
                              : layer->saveInvstd.get())->host;
  ChannelValues gradWeight(p, C), gradBias(p, C);
  for (int64_t c = 0; !failed && c < C; ++c) {
    gradBias.set(c, localDy.get(c));
    gradWeight.set(c, localDyXmu.get(c) * ChannelValues::load(invstd, p, c));
  }
  if (allreduce(layer, sums, failed))
    return 1;

  if (n > 0) {
    ChannelValues globalDy(acc, C), globalDyXmu(acc, C);
    for (int64_t c = 0; c < C; ++c) {
      globalDy.set(c, sums[2 + c]);
      globalDyXmu.set(c, sums[2 + C + c]);
    }
    void *dzData = dz ? dz->data : nullptr;
    if (d->residual && !dz) {
      dzScratch.resize(size_t(g.elements()) * dtypeSize(d->dtype));
      dzData = dzScratch.data();
    }
    dxb.tensor(dx->data, d->dtype, g);
    if (d->residual)
      dzb.tensor(dzData, d->dtype, g);
    int64_t count = int64_t(sums[1]);
    bound.in[NORMRT_ARG_SUM_DY] = globalDy.buffer();
    bound.in[NORMRT_ARG_SUM_DY_XMU] = globalDyXmu.buffer();
    bound.in[NORMRT_ARG_COUNT] = &count;
    bound.out[NORMRT_ARG_GRAD_INPUT] = dxb.get();
    bound.out[NORMRT_ARG_GRAD_RESIDUAL] = d->residual ? dzb.get() : nullptr;
    if (callKernel(layer, NORMRT_KERNEL_BACKWARD_ELEMT, bound))
      return 1;
  }
  size_t paramBytes = size_t(C) * dtypeSize(p);
  if (d->affine) {
    std::memcpy(a->grad_weight ? a->grad_weight->data
                               : layer->gradWeight.data(),
                gradWeight.bytes.data(), paramBytes);
    if (d->bias)
      std::memcpy(a->grad_bias ? a->grad_bias->data : layer->gradBias.data(),
                  gradBias.bytes.data(), paramBytes);
  }
  succeed();
  return 0;
}

/// One piece of state by its name (normrt_layer_state's names), or null
/// with the reason as the thread's error. `bindable`: only those a client
/// may own (not the saved statistics).
StateBuffer *findState(normrt_layer *layer, const char *name, bool bindable) {
  const normrt_layer_desc *d = layer->desc;
  // Each state: its storage, and what the layer must have for it.
  struct Entry {
    const char *name;
    StateBuffer *storage;
    bool present;
    const char *missing; ///< why a layer lacks it
  };
  bool centered =
      layer->kind->statistic == normrt::kinds::Statistic::MeanVar;
  const Entry entries[] = {
      {"weight", &layer->weight, bool(d->affine), "affine=False"},
      {"bias", &layer->bias, d->affine && d->bias,
       d->affine ? "no bias" : "affine=False"},
      {"running_mean", &layer->runningMean, bool(d->track_running_stats),
       "track_running_stats=False"},
      {"running_var", &layer->runningVar, bool(d->track_running_stats),
       "track_running_stats=False"},
      {"num_batches_tracked", &layer->counter, bool(d->track_running_stats),
       "track_running_stats=False"},
      {"save_mean", &layer->saveMean, centered, "no mean (RMSNorm)"},
      {"save_invstd", &layer->saveInvstd, true, ""},
  };
  const size_t count = bindable ? 5 : 7;
  for (size_t i = 0; i < count; ++i) {
    const Entry &e = entries[i];
    if (std::strcmp(name, e.name))
      continue;
    if (!e.present) {
      fail("layer '%s' has %s: it has no %s", d->name, e.missing, name);
      return nullptr;
    }
    return e.storage;
  }
  if (bindable)
    fail("cannot bind state '%s'; expected weight, bias, running_mean, "
         "running_var or num_batches_tracked",
         name);
  else
    fail("unknown state '%s'; expected weight, bias, running_mean, "
         "running_var, num_batches_tracked, save_mean or save_invstd",
         name);
  return nullptr;
}

/// The shape of a state's view: PyTorch's.
std::vector<int64_t> stateShape(normrt_layer *layer, StateBuffer *storage) {
  if (storage == &layer->counter)
    return {};
  if (storage == &layer->weight || storage == &layer->bias)
    return paramShape(layer);
  return {int64_t(storage->host.size() / dtypeSize(layer->desc->param_dtype))};
}

/// Keeps the host copies of a GPU layer's state current from now on
/// (markStateHostDirty, commit), after bringing them up to date once.
int keepHostCopies(normrt_layer *layer) {
  if (!layer->onDevice() || layer->hostViews)
    return 0;
  CallScope scope(layer);
  for (StateBuffer *s : layer->stateBuffers())
    if (!s->empty() && downloadToHost(layer, s->get()))
      return 1;
  layer->hostViews = true;
  return 0;
}

/// Checks `storage` as the memory of `state` (normrt_layer_bind_state).
int checkBindable(normrt_layer *layer, const char *name, StateBuffer *state,
                  const normrt_tensor *storage) {
  const normrt_layer_desc *d = layer->desc;
  bool counter = state == &layer->counter;
  int32_t dtype = counter ? int32_t(NORMRT_INT64) : d->param_dtype;
  if (checkTensorBasics(layer, storage, name, dtype))
    return 1;
  if (storage->device != 0)
    return fail("%s is a CUDA tensor; layer state is bound to host memory "
                "(device 0)",
                name);
  std::vector<int64_t> shape = stateShape(layer, state);
  int64_t values = int64_t(state->host.size() / dtypeSize(dtype));
  bool same = std::equal(shape.begin(), shape.end(), storage->shape,
                         storage->shape + storage->ndim);
  bool flat = storage->ndim == 1 && storage->shape[0] == values;
  if (!same && !flat)
    return fail("%s has size %s; layer '%s' expects %s", name,
                shapeString(storage).c_str(), d->name,
                shapeString(shape).c_str());
  if (!storage->data)
    return fail("%s has no data (NULL pointer)", name);
  if (checkContiguous(storage, name))
    return 1;
  // No two states in the same memory (one update would clobber the other).
  for (StateBuffer *other : {&layer->weight, &layer->bias, &layer->runningMean,
                             &layer->runningVar, &layer->counter}) {
    if (other != state && other->client &&
        memoryOverlaps(storage->data, byteSize(storage), other->client,
                       int64_t(other->host.size())))
      return fail("%s overlaps the memory bound to another state of layer "
                  "'%s'; each state needs its own",
                  name, d->name);
  }
  return 0;
}

} // namespace

int normrt_layer_forward_args(normrt_layer *layer,
                              const normrt_forward_args *a) {
  if (!layer || !a)
    return fail("normrt_layer_forward_args: layer and args must not be NULL");
  return runForward(layer, a, nullptr);
}

int normrt_layer_forward_saved(normrt_layer *layer,
                               const normrt_forward_args *a,
                               normrt_saved_stats *saved) {
  if (!layer || !a || !saved)
    return fail("normrt_layer_forward_saved: layer, args and saved must not "
                "be NULL");
  return runForward(layer, a, saved);
}

int normrt_layer_forward(normrt_layer *layer, const normrt_tensor *x,
                         normrt_tensor *y) {
  if (!layer)
    return fail("normrt_layer_forward: layer must not be NULL");
  normrt_forward_args args = {x, nullptr, y};
  return normrt_layer_forward_args(layer, &args);
}

int normrt_layer_backward_args(normrt_layer *layer,
                               const normrt_backward_args *a) {
  if (!layer || !a)
    return fail("normrt_layer_backward_args: layer and args must not be NULL");
  return runBackward(layer, a, nullptr);
}

int normrt_layer_backward_saved(normrt_layer *layer,
                                const normrt_backward_args *a,
                                const normrt_saved_stats *saved) {
  if (!layer || !a || !saved)
    return fail("normrt_layer_backward_saved: layer, args and saved must not "
                "be NULL");
  return runBackward(layer, a, saved);
}

int normrt_layer_backward(normrt_layer *layer, const normrt_tensor *x,
                          const normrt_tensor *dy, normrt_tensor *dx,
                          normrt_tensor *dweight, normrt_tensor *dbias) {
  if (!layer)
    return fail("normrt_layer_backward: layer must not be NULL");
  normrt_backward_args args = {x, nullptr, dy, dx, nullptr, dweight, dbias};
  return normrt_layer_backward_args(layer, &args);
}

int normrt_layer_stats_count(const normrt_layer *layer, const normrt_tensor *x,
                             int64_t *count) {
  if (!layer || !count)
    return fail("normrt_layer_stats_count: layer and count must not be NULL");
  // The count does not depend on the form; the checks do.
  if (selectForm(const_cast<normrt_layer *>(layer), x))
    return 1;
  normrt::Geometry g;
  if (checkInput(layer, x, "input", false, g))
    return 1;
  *count = g.statCount();
  succeed();
  return 0;
}

int normrt_layer_state(normrt_layer *layer, const char *name,
                       normrt_tensor *view) {
  if (!layer || !name || !view)
    return fail("normrt_layer_state: layer, name and view must not be NULL");
  StateBuffer *storage = findState(layer, name, /*bindable=*/false);
  if (!storage || keepHostCopies(layer))
    return 1;
  std::memset(view, 0, sizeof(*view));
  view->device = 0;
  view->data = storage->data();
  view->dtype = storage == &layer->counter
                    ? NORMRT_INT64
                    : normrt_dtype(layer->desc->param_dtype);
  std::vector<int64_t> shape = stateShape(layer, storage);
  view->ndim = int32_t(shape.size());
  int64_t stride = 1;
  for (int32_t i = view->ndim - 1; i >= 0; --i) {
    view->shape[i] = shape[i];
    view->strides[i] = stride;
    stride *= shape[i];
  }
  succeed();
  return 0;
}

int normrt_layer_bind_state(normrt_layer *layer, const char *name,
                            const normrt_tensor *storage) {
  if (!layer || !name)
    return fail("normrt_layer_bind_state: layer and name must not be NULL");
  StateBuffer *state = findState(layer, name, /*bindable=*/true);
  if (!state || (storage && checkBindable(layer, name, state, storage)))
    return 1;
  // GPU layers: the host memory becomes authoritative before each call
  // and receives the results after it.
  if (keepHostCopies(layer))
    return 1;
  if (storage) {
    state->client = storage->data;
  } else if (state->client) {
    std::memcpy(state->host.data(), state->client, state->host.size());
    state->client = nullptr;
  }
  halide_buffer_t *b = state->get();
  b->host = static_cast<uint8_t *>(state->data());
  if (layer->onDevice())
    b->flags = (b->flags & ~halide_buffer_flag_device_dirty) |
               halide_buffer_flag_host_dirty;
  succeed();
  return 0;
}


int normrt_layer_set_allreduce(normrt_layer *layer, normrt_allreduce_fn fn,
                               void *context) {
  if (!layer)
    return fail("normrt_layer_set_allreduce: layer must not be NULL");
  const normrt_layer_desc *d = layer->desc;
  if (!layer->kind->syncs)
    return fail("layer '%s' is a %s; only SyncBatchNorm layers sum their "
                "statistics across processes",
                d->name, d->kind);
  if (layer->onDevice())
    return fail("layer '%s' runs on %s; SyncBatchNorm's allreduce hook is "
                "supported for CPU layers only (docs/runtime.md, "
                "\"SyncBatchNorm\")",
                d->name, runsOn(d));
  layer->allreduce = fn;
  layer->allreduceContext = fn ? context : nullptr;
  succeed();
  return 0;
}

} // extern "C"

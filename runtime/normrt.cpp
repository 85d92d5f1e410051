//===- normrt.cpp - The normc runtime -------------------------------------===//
//
// This file implements the C ABI of normrt.h: the registry of compiled
// modules, layer state with PyTorch's initial values, the input checks (with
// PyTorch's messages), and the calls into the generated kernels through their
// Halide `_argv` entry points (argument orders: normrt/module.h).
//
// Failure atomicity: kernels write batch statistics and updated running
// statistics into per-layer scratch space; the layer's own state is updated
// only after every kernel of the call has succeeded. A layer is, like a torch
// module, not meant to be called from two threads at once; different layers
// may be used concurrently.
//
//===----------------------------------------------------------------------===//

#include "normrt/module.h"
#include "normrt/normrt.h"

#include "HalideRuntime.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace {

thread_local std::string lastError;
thread_local std::string halideMessage;

int fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
int fail(const char *format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  lastError = buffer;
  return 1;
}

void succeed() { lastError.clear(); }

/// Halide's default handler prints and aborts; ours keeps the message for
/// normrt_last_error() and lets the kernel return its error code.
void onHalideError(void *, const char *message) {
  halideMessage = message ? message : "";
  while (!halideMessage.empty() && halideMessage.back() == '\n')
    halideMessage.pop_back();
}

struct Registry {
  std::mutex mutex;
  std::vector<const normrt_module *> modules;
};

Registry &registry() {
  static Registry instance; // constructed on first use, safe from ctors
  return instance;
}

size_t dtypeSize(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT32:
    return 4;
  case NORMRT_FLOAT64:
  case NORMRT_INT64:
    return 8;
  case NORMRT_FLOAT16:
  case NORMRT_BFLOAT16:
    return 2;
  }
  return 0;
}

const char *dtypeName(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT32:
    return "float32";
  case NORMRT_FLOAT64:
    return "float64";
  case NORMRT_FLOAT16:
    return "float16";
  case NORMRT_BFLOAT16:
    return "bfloat16";
  case NORMRT_INT64:
    return "int64";
  }
  return "unknown";
}

halide_type_t halideType(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT64:
    return halide_type_t(halide_type_float, 64);
  case NORMRT_FLOAT16:
    return halide_type_t(halide_type_float, 16);
  case NORMRT_BFLOAT16:
    return halide_type_t(halide_type_bfloat, 16);
  case NORMRT_INT64:
    return halide_type_t(halide_type_int, 64);
  default:
    return halide_type_t(halide_type_float, 32);
  }
}

/// The shape of an input as the kernels see it, and its layout.
struct Geometry {
  int64_t s = 1, c = 0, n = 0;
  bool channelsLast = false;
  int64_t count() const { return s * n; } ///< values per channel
};

/// A halide_buffer_t with its dimensions stored alongside.
struct HalideBuffer {
  halide_buffer_t buffer;
  halide_dimension_t dims[3];
  HalideBuffer() {
    std::memset(&buffer, 0, sizeof(buffer));
    std::memset(dims, 0, sizeof(dims));
    buffer.dim = dims;
  }
  HalideBuffer(const HalideBuffer &) = delete;
  HalideBuffer &operator=(const HalideBuffer &) = delete;

  /// [s, c, n] view of a dense tensor of geometry `g`.
  void tensor(void *data, int32_t dtype, const Geometry &g) {
    buffer.host = static_cast<uint8_t *>(data);
    buffer.type = halideType(dtype);
    buffer.dimensions = 3;
    dims[0] = {0, int32_t(g.s), int32_t(g.channelsLast ? g.c : 1), 0};
    dims[1] = {0, int32_t(g.c), int32_t(g.channelsLast ? 1 : g.s), 0};
    dims[2] = {0, int32_t(g.n), int32_t(g.s * g.c), 0};
  }
  void vector(void *data, int32_t dtype, int64_t c) {
    buffer.host = static_cast<uint8_t *>(data);
    buffer.type = halideType(dtype);
    buffer.dimensions = 1;
    dims[0] = {0, int32_t(c), 1, 0};
  }
  void scalar(void *data, int32_t dtype) {
    buffer.host = static_cast<uint8_t *>(data);
    buffer.type = halideType(dtype);
    buffer.dimensions = 0;
  }
  halide_buffer_t *get() { return &buffer; }
};


std::string shapeString(const normrt_tensor *t) {
  std::string text = "[";
  for (int32_t i = 0; i < t->ndim; ++i) {
    if (i)
      text += ", ";
    text += std::to_string(t->shape[i]);
  }
  return text + "]";
}

} // namespace

struct normrt_layer {
  const normrt_layer_desc *desc;
  bool training = true;
  int64_t channels;
  std::vector<uint8_t> weight, bias, runningMean, runningVar, saveMean,
      saveInvstd;
  int64_t numBatchesTracked = 0;
  bool haveSaved = false;
  // Scratch written by kernels and committed on success.
  std::vector<uint8_t> newMean, newInvstd, newVar, newRunningMean,
      newRunningVar, gradWeight, gradBias;
  int64_t newNumBatchesTracked = 0;
};

namespace {

std::vector<uint8_t> filled(int64_t count, int32_t dtype, double value) {
  std::vector<uint8_t> bytes(count * dtypeSize(dtype));
  for (int64_t i = 0; i < count; ++i) {
    if (dtype == NORMRT_FLOAT64) {
      std::memcpy(&bytes[i * 8], &value, 8);
    } else {
      float f = static_cast<float>(value);
      std::memcpy(&bytes[i * 4], &f, 4);
    }
  }
  return bytes;
}

int callKernel(const normrt_layer *layer, normrt_kernel_kind kind,
               std::vector<void *> &args) {
  normrt_kernel_fn fn = layer->desc->kernels[kind];
  if (!fn)
    return fail("layer '%s' has no kernel of kind %d", layer->desc->name,
                int(kind));
  halideMessage.clear();
  int rc = fn(args.data());
  if (rc != 0)
    return fail("kernel of layer '%s' failed (Halide error %d): %s",
                layer->desc->name, rc,
                halideMessage.empty() ? "no message" : halideMessage.c_str());
  return 0;
}

int checkTensorBasics(const normrt_tensor *t, const char *what,
                      int32_t dtype) {
  if (!t)
    return fail("%s must not be NULL", what);
  if (t->ndim < 0 || t->ndim > NORMRT_MAX_DIMS)
    return fail("%s has ndim %d; expected 0 to %d dimensions", what, t->ndim,
                NORMRT_MAX_DIMS);
  for (int32_t i = 0; i < t->ndim; ++i)
    if (t->shape[i] < 0)
      return fail("%s has a negative extent %lld in dimension %d", what,
                  (long long)t->shape[i], i);
  if (t->device != 0)
    return fail("%s is on device %d, but this layer runs on the CPU "
                "(device 0)",
                what, t->device);
  if (t->dtype != dtype)
    return fail("%s has dtype %s, but the layer expects %s", what,
                dtypeName(t->dtype), dtypeName(dtype));
  return 0;
}

/// The strides of a dense tensor of t's shape in PyTorch order: contiguous,
/// or channels-last (channels innermost, then the spatial dims, then N).
void denseStrides(const normrt_tensor *t, bool channelsLast, int64_t *out) {
  int64_t expected = 1;
  if (!channelsLast || t->ndim < 3) {
    for (int32_t i = t->ndim - 1; i >= 0; --i) {
      out[i] = expected;
      expected *= t->shape[i];
    }
    return;
  }
  out[1] = 1;
  expected = t->shape[1];
  for (int32_t i = t->ndim - 1; i >= 2; --i) {
    out[i] = expected;
    expected *= t->shape[i];
  }
  out[0] = expected;
}

/// Strides must be all zero (dense in the layer's layout) or those of a
/// dense tensor in the layer's layout; extent-1 dimensions may have any
/// stride, as in PyTorch.
int checkLayout(const normrt_tensor *t, const char *what, bool channelsLast) {
  bool allZero = true;
  for (int32_t i = 0; i < t->ndim; ++i)
    allZero &= t->strides[i] == 0;
  if (allZero)
    return 0;
  int64_t expected[NORMRT_MAX_DIMS];
  denseStrides(t, channelsLast, expected);
  for (int32_t i = 0; i < t->ndim; ++i)
    if (t->shape[i] != 1 && t->strides[i] != expected[i])
      return fail("%s does not have the layer's %s layout (stride %lld in "
                  "dimension %d, expected %lld)",
                  what, channelsLast ? "channels-last" : "contiguous",
                  (long long)t->strides[i], i, (long long)expected[i]);
  return 0;
}

/// Checks x like torch.nn.BatchNorm*d's _check_input_dim and F.batch_norm.
int checkInput(const normrt_layer *layer, const normrt_tensor *x,
               const char *what, Geometry &g) {
  const normrt_layer_desc *d = layer->desc;
  if (checkTensorBasics(x, what, d->dtype))
    return 1;
  switch (d->spatial_rank) {
  case 1:
    if (x->ndim != 2 && x->ndim != 3)
      return fail("expected 2D or 3D input (got %dD input)", x->ndim);
    break;
  case 2:
    if (x->ndim != 4)
      return fail("expected 4D input (got %dD input)", x->ndim);
    break;
  default:
    if (x->ndim != 5)
      return fail("expected 5D input (got %dD input)", x->ndim);
    break;
  }
  if (!x->data)
    return fail("%s has no data (NULL pointer)", what);
  g.channelsLast = d->layout != 0;
  if (checkLayout(x, what, g.channelsLast))
    return 1;
  g.n = x->shape[0];
  g.c = x->shape[1];
  g.s = 1;
  for (int32_t i = 2; i < x->ndim; ++i)
    g.s *= x->shape[i];
  if (g.c != d->num_features) {
    if (d->track_running_stats)
      return fail("running_mean should contain %lld elements not %lld",
                  (long long)g.c, (long long)d->num_features);
    if (d->affine)
      return fail("weight should contain %lld elements not %lld",
                  (long long)g.c, (long long)d->num_features);
    return fail("expected input with %lld channels, got %lld channels "
                "(input size %s)",
                (long long)d->num_features, (long long)g.c,
                shapeString(x).c_str());
  }
  if (g.n == 0 || g.s == 0)
    return fail("input size %s has no elements; empty inputs are not "
                "supported",
                shapeString(x).c_str());
  // Halide indexes buffers with 32-bit signed integers.
  if (g.s > INT32_MAX / g.c || g.s * g.c > INT32_MAX / g.n)
    return fail("input size %s has more than 2147483647 elements, more than "
                "the kernels' 32-bit indexing allows",
                shapeString(x).c_str());
  return 0;
}

int checkSameShape(const normrt_tensor *x, const normrt_tensor *t,
                   const char *what, int32_t dtype, const Geometry &g) {
  if (checkTensorBasics(t, what, dtype))
    return 1;
  if (!t->data)
    return fail("%s has no data (NULL pointer)", what);
  bool same = t->ndim == x->ndim;
  for (int32_t i = 0; same && i < x->ndim; ++i)
    same = t->shape[i] == x->shape[i];
  if (!same)
    return fail("%s has size %s, but the input has size %s", what,
                shapeString(t).c_str(), shapeString(x).c_str());
  return checkLayout(t, what, g.channelsLast);
}

int64_t byteSize(const normrt_tensor *t) {
  int64_t elements = 1;
  for (int32_t i = 0; i < t->ndim; ++i)
    elements *= t->shape[i];
  return elements * int64_t(dtypeSize(t->dtype));
}

/// Outputs are written while inputs are still read (vector tails overlap),
/// so they must not share memory with them.
int checkNoOverlap(const normrt_tensor *out, const char *outName,
                   const normrt_tensor *in, const char *inName) {
  const uint8_t *a = static_cast<const uint8_t *>(out->data);
  const uint8_t *b = static_cast<const uint8_t *>(in->data);
  if (a < b + byteSize(in) && b < a + byteSize(out))
    return fail("%s overlaps %s in memory; in-place BatchNorm is not "
                "supported, pass a separate output tensor",
                outName, inName);
  return 0;
}

int checkChannelVector(const normrt_layer *layer, const normrt_tensor *t,
                       const char *what) {
  if (checkTensorBasics(t, what, layer->desc->param_dtype))
    return 1;
  if (!t->data)
    return fail("%s has no data (NULL pointer)", what);
  if (t->ndim != 1 || t->shape[0] != layer->channels)
    return fail("%s has size %s; expected [%lld]", what,
                shapeString(t).c_str(), (long long)layer->channels);
  if (t->strides[0] != 0 && t->strides[0] != 1)
    return fail("%s is not contiguous", what);
  return 0;
}

/// Batch statistics are used in training mode and, without running
/// statistics, in eval mode too (F.batch_norm's `training or not tracking`).
bool usesBatchStats(const normrt_layer *layer) {
  return layer->training || !layer->desc->track_running_stats;
}

} // namespace

extern "C" {

int normrt_register_module(const normrt_module *module) {
  if (!module)
    return fail("normrt_register_module: module must not be NULL");
  if (module->abi_version != NORMRT_MODULE_ABI_VERSION)
    return fail("module '%s' was built for normrt module ABI %d, but this "
                "runtime speaks ABI %d; rebuild it with the matching normc",
                module->name ? module->name : "?", module->abi_version,
                NORMRT_MODULE_ABI_VERSION);
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (std::find(r.modules.begin(), r.modules.end(), module) == r.modules.end())
    r.modules.push_back(module);
  halide_set_error_handler(onHalideError);
  succeed();
  return 0;
}

int normrt_set_num_threads(int threads) {
  return halide_set_num_threads(threads);
}

const char *normrt_layer_name_at(int index, const char **target) {
  Registry &r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const normrt_module *m : r.modules) {
    if (index < m->num_layers) {
      if (target)
        *target = m->layers[index].target;
      return m->layers[index].name;
    }
    index -= m->num_layers;
  }
  return nullptr;
}

normrt_layer *normrt_layer_create(const char *name, const char *target) {
  if (!name || !target) {
    fail("normrt_layer_create: layer name and target label must not be NULL");
    return nullptr;
  }
  // "module.layer" picks a layer of one module; a bare name must be unique.
  std::string moduleName, layerName = name;
  if (const char *dot = std::strchr(name, '.')) {
    moduleName.assign(name, dot);
    layerName = dot + 1;
  }
  const normrt_layer_desc *desc = nullptr;
  const normrt_layer_desc *sameName = nullptr;
  const char *descModule = nullptr;
  std::string ambiguous;
  {
    Registry &r = registry();
    std::lock_guard<std::mutex> lock(r.mutex);
    for (const normrt_module *m : r.modules) {
      if (!moduleName.empty() && moduleName != m->name)
        continue;
      for (int32_t i = 0; i < m->num_layers; ++i) {
        const normrt_layer_desc &d = m->layers[i];
        if (layerName != d.name)
          continue;
        sameName = &d;
        if (std::strcmp(d.target, target) != 0)
          continue;
        if (desc)
          ambiguous = std::string(descModule) + "' and '" + m->name;
        else {
          desc = &d;
          descModule = m->name;
        }
      }
    }
  }
  if (!ambiguous.empty()) {
    fail("layer '%s' on target '%s' is defined by modules '%s'; name it as "
         "'module.%s'",
         name, target, ambiguous.c_str(), layerName.c_str());
    return nullptr;
  }
  if (!desc) {
    if (sameName)
      fail("layer '%s' was not compiled for target '%s' (it has target "
           "'%s', among others)",
           name, target, sameName->target);
    else
      fail("no layer named '%s' in the modules linked into this program "
           "(include a module's header or link it with --whole-archive)",
           name);
    return nullptr;
  }
  if (desc->device != 0) {
    fail("layer '%s' on target '%s' runs on a GPU; this runtime has no "
         "device support yet",
         name, target);
    return nullptr;
  }
  halide_set_error_handler(onHalideError);

  auto *layer = new normrt_layer;
  layer->desc = desc;
  layer->channels = desc->num_features;
  int32_t p = desc->param_dtype;
  int64_t c = desc->num_features;
  if (desc->affine) {
    layer->weight = filled(c, p, 1.0);
    layer->bias = filled(c, p, 0.0);
  }
  if (desc->track_running_stats) {
    layer->runningMean = filled(c, p, 0.0);
    layer->runningVar = filled(c, p, 1.0);
    layer->newRunningMean = filled(c, p, 0.0);
    layer->newRunningVar = filled(c, p, 0.0);
  }
  layer->saveMean = filled(c, p, 0.0);
  layer->saveInvstd = filled(c, p, 0.0);
  layer->newMean = filled(c, p, 0.0);
  layer->newInvstd = filled(c, p, 0.0);
  layer->newVar = filled(c, p, 0.0);
  layer->gradWeight = filled(c, p, 0.0);
  layer->gradBias = filled(c, p, 0.0);
  succeed();
  return layer;
}

void normrt_layer_destroy(normrt_layer *layer) { delete layer; }

int normrt_layer_set_training(normrt_layer *layer, int training) {
  if (!layer)
    return fail("normrt_layer_set_training: layer must not be NULL");
  layer->training = training != 0;
  succeed();
  return 0;
}

int normrt_layer_get_info(const normrt_layer *layer, normrt_layer_info *info) {
  if (!layer || !info)
    return fail("normrt_layer_get_info: layer and info must not be NULL");
  const normrt_layer_desc *d = layer->desc;
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
  succeed();
  return 0;
}

int normrt_layer_forward(normrt_layer *layer, const normrt_tensor *x,
                         normrt_tensor *y) {
  if (!layer)
    return fail("normrt_layer_forward: layer must not be NULL");
  const normrt_layer_desc *d = layer->desc;
  Geometry g;
  if (checkInput(layer, x, "input", g) ||
      checkSameShape(x, y, "output", d->dtype, g) ||
      checkNoOverlap(y, "output", x, "input"))
    return 1;

  HalideBuffer xb, yb, wb, bb;
  xb.tensor(x->data, d->dtype, g);
  yb.tensor(y->data, d->dtype, g);
  if (d->affine) {
    wb.vector(layer->weight.data(), d->param_dtype, g.c);
    bb.vector(layer->bias.data(), d->param_dtype, g.c);
  }

  if (!usesBatchStats(layer)) {
    HalideBuffer rm, rv;
    rm.vector(layer->runningMean.data(), d->param_dtype, g.c);
    rv.vector(layer->runningVar.data(), d->param_dtype, g.c);
    std::vector<void *> args = {xb.get(), rm.get(), rv.get()};
    if (d->affine) {
      args.push_back(wb.get());
      args.push_back(bb.get());
    }
    args.push_back(yb.get());
    if (callKernel(layer, NORMRT_KERNEL_FORWARD_EVAL, args))
      return 1;
    succeed();
    return 0;
  }

  if (g.count() <= 1)
    return fail("Expected more than 1 value per channel when training, got "
                "input size %s",
                shapeString(x).c_str());

  HalideBuffer mean, invstd, var;
  mean.vector(layer->newMean.data(), d->param_dtype, g.c);
  invstd.vector(layer->newInvstd.data(), d->param_dtype, g.c);
  var.vector(layer->newVar.data(), d->param_dtype, g.c);
  std::vector<void *> args = {xb.get()};
  if (d->affine) {
    args.push_back(wb.get());
    args.push_back(bb.get());
  }
  args.insert(args.end(), {yb.get(), mean.get(), invstd.get(), var.get()});
  if (callKernel(layer, NORMRT_KERNEL_FORWARD_TRAIN, args))
    return 1;

  bool update = layer->training && d->track_running_stats;
  if (update) {
    HalideBuffer rm, rv, counter, rmOut, rvOut, counterOut;
    rm.vector(layer->runningMean.data(), d->param_dtype, g.c);
    rv.vector(layer->runningVar.data(), d->param_dtype, g.c);
    counter.scalar(&layer->numBatchesTracked, NORMRT_INT64);
    rmOut.vector(layer->newRunningMean.data(), d->param_dtype, g.c);
    rvOut.vector(layer->newRunningVar.data(), d->param_dtype, g.c);
    counterOut.scalar(&layer->newNumBatchesTracked, NORMRT_INT64);
    int64_t count = g.count();
    std::vector<void *> updateArgs = {mean.get(),    var.get(),   rm.get(),
                                      rv.get(),      counter.get(), &count,
                                      rmOut.get(),   rvOut.get(), counterOut.get()};
    if (callKernel(layer, NORMRT_KERNEL_UPDATE_STATS, updateArgs))
      return 1;
  }

  // Every kernel succeeded: commit.
  // (copies, not swaps: state views handed out earlier must stay valid)
  std::memcpy(layer->saveMean.data(), layer->newMean.data(),
              layer->saveMean.size());
  std::memcpy(layer->saveInvstd.data(), layer->newInvstd.data(),
              layer->saveInvstd.size());
  if (update) {
    std::memcpy(layer->runningMean.data(), layer->newRunningMean.data(),
                layer->runningMean.size());
    std::memcpy(layer->runningVar.data(), layer->newRunningVar.data(),
                layer->runningVar.size());
    layer->numBatchesTracked = layer->newNumBatchesTracked;
  }
  layer->haveSaved = true;
  succeed();
  return 0;
}

int normrt_layer_backward(normrt_layer *layer, const normrt_tensor *x,
                          const normrt_tensor *dy, normrt_tensor *dx,
                          normrt_tensor *dweight, normrt_tensor *dbias) {
  if (!layer)
    return fail("normrt_layer_backward: layer must not be NULL");
  const normrt_layer_desc *d = layer->desc;
  Geometry g;
  if (checkInput(layer, x, "input", g) ||
      checkSameShape(x, dy, "grad_output", d->dtype, g) ||
      checkSameShape(x, dx, "grad_input", d->dtype, g) ||
      checkNoOverlap(dx, "grad_input", x, "input") ||
      checkNoOverlap(dx, "grad_input", dy, "grad_output"))
    return 1;
  if (!d->affine && (dweight || dbias))
    return fail("layer '%s' has affine=False: it has no weight or bias, so "
                "dweight and dbias must be NULL",
                d->name);
  if (dweight && checkChannelVector(layer, dweight, "grad_weight"))
    return 1;
  if (dbias && checkChannelVector(layer, dbias, "grad_bias"))
    return 1;
  bool batchStats = usesBatchStats(layer);
  if (batchStats && !layer->haveSaved)
    return fail("backward in training mode needs the saved statistics of a "
                "forward call in training mode; call forward first");

  HalideBuffer xb, dyb, dxb, m, second, wb, dwb, dbb;
  xb.tensor(x->data, d->dtype, g);
  dyb.tensor(dy->data, d->dtype, g);
  dxb.tensor(dx->data, d->dtype, g);
  if (batchStats) {
    m.vector(layer->saveMean.data(), d->param_dtype, g.c);
    second.vector(layer->saveInvstd.data(), d->param_dtype, g.c);
  } else {
    m.vector(layer->runningMean.data(), d->param_dtype, g.c);
    second.vector(layer->runningVar.data(), d->param_dtype, g.c);
  }
  dwb.vector(dweight ? dweight->data : layer->gradWeight.data(),
             d->param_dtype, g.c);
  dbb.vector(dbias ? dbias->data : layer->gradBias.data(), d->param_dtype,
             g.c);
  std::vector<void *> args = {xb.get(), dyb.get(), m.get(), second.get()};
  if (d->affine) {
    wb.vector(layer->weight.data(), d->param_dtype, g.c);
    args.push_back(wb.get());
  }
  args.insert(args.end(), {dxb.get(), dwb.get(), dbb.get()});
  if (callKernel(layer, batchStats ? NORMRT_KERNEL_BACKWARD
                                   : NORMRT_KERNEL_BACKWARD_EVAL,
                 args))
    return 1;
  succeed();
  return 0;
}

int normrt_layer_state(normrt_layer *layer, const char *name,
                       normrt_tensor *view) {
  if (!layer || !name || !view)
    return fail("normrt_layer_state: layer, name and view must not be NULL");
  const normrt_layer_desc *d = layer->desc;
  std::vector<uint8_t> *storage = nullptr;
  bool counter = false;
  if (!std::strcmp(name, "weight") || !std::strcmp(name, "bias")) {
    if (!d->affine)
      return fail("layer '%s' has affine=False: it has no %s", d->name, name);
    storage = name[0] == 'w' ? &layer->weight : &layer->bias;
  } else if (!std::strcmp(name, "running_mean") ||
             !std::strcmp(name, "running_var") ||
             !std::strcmp(name, "num_batches_tracked")) {
    if (!d->track_running_stats)
      return fail("layer '%s' has track_running_stats=False: it has no %s",
                  d->name, name);
    if (!std::strcmp(name, "num_batches_tracked"))
      counter = true;
    else
      storage = name[8] == 'm' ? &layer->runningMean : &layer->runningVar;
  } else if (!std::strcmp(name, "save_mean")) {
    storage = &layer->saveMean;
  } else if (!std::strcmp(name, "save_invstd")) {
    storage = &layer->saveInvstd;
  } else {
    return fail("unknown state '%s'; expected weight, bias, running_mean, "
                "running_var, num_batches_tracked, save_mean or save_invstd",
                name);
  }
  std::memset(view, 0, sizeof(*view));
  view->device = 0;
  if (counter) {
    view->data = &layer->numBatchesTracked;
    view->ndim = 0;
    view->dtype = NORMRT_INT64;
  } else {
    view->data = storage->data();
    view->ndim = 1;
    view->shape[0] = layer->channels;
    view->strides[0] = 1;
    view->dtype = normrt_dtype(d->param_dtype);
  }
  succeed();
  return 0;
}

const char *normrt_last_error(void) { return lastError.c_str(); }

} // extern "C"

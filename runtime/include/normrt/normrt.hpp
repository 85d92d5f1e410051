//===- normrt.hpp - C++ wrapper of the normrt C ABI -------------*- C++ -*-===//
//
// A thin RAII layer over normrt.h: normrt::Layer owns a normrt_layer and
// turns failing calls into normrt::Error exceptions carrying
// normrt_last_error(). normrt::tensor() builds a normrt_tensor view of a
// contiguous array.
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_NORMRT_HPP
#define NORMRT_NORMRT_HPP

#include "normrt/normrt.h"

#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>

namespace normrt {

class Error : public std::runtime_error {
public:
  explicit Error(const std::string &message) : std::runtime_error(message) {}
};

inline void check(int rc) {
  if (rc != 0)
    throw Error(normrt_last_error());
}

template <typename T> constexpr normrt_dtype dtypeOf();
template <> constexpr normrt_dtype dtypeOf<float>() { return NORMRT_FLOAT32; }
template <> constexpr normrt_dtype dtypeOf<double>() { return NORMRT_FLOAT64; }
template <> constexpr normrt_dtype dtypeOf<int64_t>() { return NORMRT_INT64; }

/// A contiguous host tensor view of `data` with PyTorch-order `shape`.
template <typename T>
normrt_tensor tensor(T *data, std::initializer_list<int64_t> shape) {
  normrt_tensor t;
  std::memset(&t, 0, sizeof(t));
  t.data = data;
  t.dtype = dtypeOf<T>();
  for (int64_t extent : shape) {
    if (t.ndim == NORMRT_MAX_DIMS)
      throw Error("normrt::tensor: more than 8 dimensions");
    t.shape[t.ndim++] = extent;
  }
  return t;
}

/// A layer of a compiled module, like a torch.nn.BatchNorm*d instance.
class Layer {
public:
  Layer(const char *name, const char *target = "cpu")
      : layer(normrt_layer_create(name, target)) {
    if (!layer)
      throw Error(normrt_last_error());
  }
  ~Layer() { normrt_layer_destroy(layer); }
  Layer(const Layer &) = delete;
  Layer &operator=(const Layer &) = delete;
  Layer(Layer &&other) noexcept : layer(other.layer) { other.layer = nullptr; }

  void train(bool training = true) {
    check(normrt_layer_set_training(layer, training));
  }
  void eval() { train(false); }

  void forward(const normrt_tensor &x, normrt_tensor &y) {
    check(normrt_layer_forward(layer, &x, &y));
  }
  void backward(const normrt_tensor &x, const normrt_tensor &dy,
                normrt_tensor &dx, normrt_tensor *dweight = nullptr,
                normrt_tensor *dbias = nullptr) {
    check(normrt_layer_backward(layer, &x, &dy, &dx, dweight, dbias));
  }
  /// A writable view of weight, bias, running_mean, running_var,
  /// num_batches_tracked, save_mean or save_invstd.
  normrt_tensor state(const char *name) {
    normrt_tensor view;
    check(normrt_layer_state(layer, name, &view));
    return view;
  }
  /// Makes `storage` the memory of weight, bias, running_mean, running_var
  /// or num_batches_tracked (null: back to the layer's own storage).
  void bindState(const char *name, const normrt_tensor *storage) {
    check(normrt_layer_bind_state(layer, name, storage));
  }
  /// The number of statistics a batch-statistics forward on x saves.
  int64_t statsCount(const normrt_tensor &x) const {
    int64_t count = 0;
    check(normrt_layer_stats_count(layer, &x, &count));
    return count;
  }
  /// forward and backward with the saved statistics kept by the caller.
  void forwardSaved(const normrt_tensor &x, normrt_tensor &y,
                    normrt_saved_stats &saved) {
    normrt_forward_args args = {&x, nullptr, &y};
    check(normrt_layer_forward_saved(layer, &args, &saved));
  }
  void backwardSaved(const normrt_tensor &x, const normrt_tensor &dy,
                     normrt_tensor &dx, const normrt_saved_stats &saved,
                     normrt_tensor *dweight = nullptr,
                     normrt_tensor *dbias = nullptr) {
    normrt_backward_args args = {&x,      nullptr, &dy, &dx, nullptr,
                                 dweight, dbias};
    check(normrt_layer_backward_saved(layer, &args, &saved));
  }
  normrt_layer_info info() const {
    normrt_layer_info result;
    check(normrt_layer_get_info(layer, &result));
    return result;
  }
  /// SyncBatchNorm: sum statistics across processes with `fn` (null: no
  /// longer; the layer then behaves as BatchNorm).
  void setAllreduce(normrt_allreduce_fn fn, void *context) {
    check(normrt_layer_set_allreduce(layer, fn, context));
  }
  normrt_layer *get() { return layer; }

private:
  normrt_layer *layer;
};

} // namespace normrt

#endif // NORMRT_NORMRT_HPP

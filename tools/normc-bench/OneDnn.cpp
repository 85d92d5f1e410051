//===- OneDnn.cpp - oneDNN's batch normalization, timed the same way ------===//
//
// Builds oneDNN 2.6 batch_normalization primitives (scale and shift on, as an
// affine BatchNorm) for a 4-D f32 or bf16 tensor N x C x S x 1 in nchw or
// nhwc order.
//
//===----------------------------------------------------------------------===//

#include "OneDnn.h"

#include "oneapi/dnnl/dnnl.hpp"

#include <cstring>
#include <vector>

using namespace dnnl;

namespace normc_bench {

namespace {
/// The tensors of one normalization primitive and the calls that run it:
/// batch and layer normalization take the same arguments.
struct Tensors {
  engine eng{engine::kind::cpu, 0};
  stream strm{eng};
  memory src, dst, mean, variance, scale, shift, diffDst, diffSrc, diffScale,
      diffShift;

  /// The tensors of `data`'s shape, statistics of `stat`'s and scale and
  /// shift of `param`'s, filled with values around 1.
  void allocate(const memory::desc &data, const memory::desc &stat,
                const memory::desc &param);

  void forward(const primitive &p) {
    p.execute(strm, {{DNNL_ARG_SRC, src},
                     {DNNL_ARG_DST, dst},
                     {DNNL_ARG_MEAN, mean},
                     {DNNL_ARG_VARIANCE, variance},
                     {DNNL_ARG_SCALE, scale},
                     {DNNL_ARG_SHIFT, shift}});
    strm.wait();
  }
  void backward(const primitive &p) {
    p.execute(strm, {{DNNL_ARG_SRC, src},
                     {DNNL_ARG_DIFF_DST, diffDst},
                     {DNNL_ARG_MEAN, mean},
                     {DNNL_ARG_VARIANCE, variance},
                     {DNNL_ARG_SCALE, scale},
                     {DNNL_ARG_SHIFT, shift},
                     {DNNL_ARG_DIFF_SRC, diffSrc},
                     {DNNL_ARG_DIFF_SCALE, diffScale},
                     {DNNL_ARG_DIFF_SHIFT, diffShift}});
    strm.wait();
  }
};

struct State : Tensors {
  batch_normalization_forward train, infer;
  batch_normalization_backward back;
};

memory filled(const memory::desc &md, const engine &eng, float value) {
  memory m(md, eng);
  bool bf16 = md.data_type() == memory::data_type::bf16;
  size_t count = md.get_size() / (bf16 ? 2 : 4);
  for (size_t i = 0; i < count; ++i) {
    float v = value + float(i % 7) * 0.25f;
    if (bf16) {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      static_cast<uint16_t *>(m.get_data_handle())[i] = uint16_t(bits >> 16);
    } else {
      static_cast<float *>(m.get_data_handle())[i] = v;
    }
  }
  return m;
}
void Tensors::allocate(const memory::desc &data, const memory::desc &stat,
                       const memory::desc &param) {
  src = filled(data, eng, 1.0f);
  dst = filled(data, eng, 0.0f);
  diffDst = filled(data, eng, 0.5f);
  diffSrc = filled(data, eng, 0.0f);
  mean = filled(stat, eng, 0.0f);
  variance = filled(stat, eng, 1.0f);
  scale = filled(param, eng, 1.0f);
  shift = filled(param, eng, 0.0f);
  diffScale = filled(param, eng, 0.0f);
  diffShift = filled(param, eng, 0.0f);
}
} // namespace

bool makeOneDnnKernels(const OneDnnCase &shape, OneDnnKernels &out) {
  try {
    auto s = std::make_shared<State>();
    memory::dims dims = {shape.n, shape.c, shape.spatial, 1};
    memory::desc data(dims,
                      shape.bf16 ? memory::data_type::bf16
                                 : memory::data_type::f32,
                      shape.channelsLast ? memory::format_tag::nhwc
                                         : memory::format_tag::nchw);
    memory::desc channel({shape.c}, memory::data_type::f32,
                         memory::format_tag::a);
    const float eps = 1e-5f;
    auto flags = normalization_flags::use_scale | normalization_flags::use_shift;

    batch_normalization_forward::primitive_desc trainPd(
        {prop_kind::forward_training, data, eps, flags}, s->eng);
    batch_normalization_forward::primitive_desc inferPd(
        {prop_kind::forward_inference, data, eps,
         flags | normalization_flags::use_global_stats},
        s->eng);
    batch_normalization_backward::primitive_desc backPd(
        {prop_kind::backward, data, data, eps, flags}, s->eng, trainPd);
    s->train = batch_normalization_forward(trainPd);
    s->infer = batch_normalization_forward(inferPd);
    s->back = batch_normalization_backward(backPd);

    s->allocate(data, channel, channel);

    State *p = s.get();
    out.forwardTrain = [p] { p->forward(p->train); };
    out.forwardEval = [p] { p->forward(p->infer); };
    out.backward = [p] { p->backward(p->back); };
    out.keepAlive = s;
    return true;
  } catch (const dnnl::error &) {
    out = OneDnnKernels();
    return false;
  }
}

bool makeOneDnnLayerNorm(int64_t rows, int64_t features, OneDnnKernels &out) {
  struct LnState : Tensors {
    layer_normalization_forward train;
    layer_normalization_backward back;
  };
  try {
    auto s = std::make_shared<LnState>();
    memory::desc data({rows, features}, memory::data_type::f32,
                      memory::format_tag::ab);
    memory::desc stat({rows}, memory::data_type::f32, memory::format_tag::a);
    memory::desc param({features}, memory::data_type::f32,
                       memory::format_tag::a);
    const float eps = 1e-5f;
    auto flags = normalization_flags::use_scale | normalization_flags::use_shift;
    layer_normalization_forward::primitive_desc trainPd(
        {prop_kind::forward_training, data, stat, eps, flags}, s->eng);
    layer_normalization_backward::primitive_desc backPd(
        {prop_kind::backward, data, data, stat, eps, flags}, s->eng, trainPd);
    s->train = layer_normalization_forward(trainPd);
    s->back = layer_normalization_backward(backPd);
    s->allocate(data, stat, param);
    LnState *p = s.get();
    out.forwardTrain = [p] { p->forward(p->train); };
    out.backward = [p] { p->backward(p->back); };
    out.keepAlive = s;
    return true;
  } catch (const dnnl::error &) {
    out = OneDnnKernels();
    return false;
  }
}

} // namespace normc_bench

//===- TestSupport.h - Helpers shared by the runtime tests ------*- C++ -*-===//
//
// Typed host tensors, random data, tolerance checks against float64 values,
// and snapshots of a layer's whole state (to prove failed calls change
// nothing).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_TEST_UNIT_TESTSUPPORT_H
#define NORMC_TEST_UNIT_TESTSUPPORT_H

#include "normrt/module.h"
#include "normrt/normrt.hpp"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace testing_support {

/// Per-dtype tolerances for |got - want| <= atol + rtol * |want|, with want
/// computed in float64 from the same (rounded) inputs.
///  f64: sums of a few hundred terms in a different order differ by ~1e-14.
///  f32: the kernels accumulate and compute in f64 and round once, so the
///       error is a few f32 ulps of the result plus the rounding of
///       f32-stored statistics (relative 6e-8 each); 1e-5 / 1e-4 leaves a
///       wide margin without hiding a wrong formula (those are off by 1e-2
///       or more).
///  f16: results are rounded to 11 significant bits (half an ulp is 2^-11
///       relative, 2e-3 absolute at |y| = 4); accumulation is f32.
///  bf16: 8 significant bits: half an ulp is 2^-8 = 3.9e-3 relative.
struct Tolerance {
  double atol, rtol;
};
inline Tolerance toleranceFor(normrt_dtype dtype) {
  switch (dtype) {
  case NORMRT_FLOAT64:
    return {1e-11, 1e-10};
  case NORMRT_FLOAT16:
    return {2e-3, 1e-3};
  case NORMRT_BFLOAT16:
    return {1.6e-2, 8e-3};
  default:
    return {1e-5, 1e-4};
  }
}

/// IEEE binary16 and bfloat16 conversions (round to nearest even).
inline uint16_t floatToBits(float f, normrt_dtype dtype) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (dtype == NORMRT_BFLOAT16) {
    if ((u & 0x7fffffffu) > 0x7f800000u)
      return uint16_t((u >> 16) | 0x40);
    return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
  // binary16
  uint32_t sign = (u >> 16) & 0x8000u;
  int32_t exponent = int32_t((u >> 23) & 0xff) - 127 + 15;
  uint32_t mantissa = u & 0x7fffffu;
  if (exponent >= 31)
    return uint16_t(sign | 0x7c00u);
  if (exponent <= 0) {
    if (exponent < -10)
      return uint16_t(sign);
    mantissa |= 0x800000u;
    uint32_t shift = uint32_t(14 - exponent);
    uint32_t half = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1);
    uint32_t midpoint = 1u << (shift - 1);
    if (rest > midpoint || (rest == midpoint && (half & 1u)))
      ++half;
    return uint16_t(sign | half);
  }
  uint32_t half = sign | (uint32_t(exponent) << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (half & 1u)))
    ++half;
  return uint16_t(half);
}

inline float bitsToFloat(uint16_t h, normrt_dtype dtype) {
  uint32_t u;
  if (dtype == NORMRT_BFLOAT16) {
    u = uint32_t(h) << 16;
  } else {
    uint32_t sign = uint32_t(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0) {
      float f = std::ldexp(float(mantissa), -24);
      return sign ? -f : f;
    }
    if (exponent == 31)
      u = sign | 0x7f800000u | (mantissa << 13);
    else
      u = sign | ((exponent - 15 + 127) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline size_t elementSize(normrt_dtype dtype) {
  return dtype == NORMRT_FLOAT64 ? 8 : dtype == NORMRT_FLOAT32 ? 4 : 2;
}

/// A host tensor of any float dtype, in the contiguous or the channels-last
/// layout. Elements are addressed by their logical (contiguous, N C S)
/// index, so the float64 reference needs no knowledge of the layout.
struct Tensor {
  normrt_dtype dtype;
  std::vector<int64_t> shape;
  bool channelsLast;
  std::vector<uint8_t> bytes;

  Tensor(normrt_dtype dtype, std::vector<int64_t> shape,
         bool channelsLast = false)
      : dtype(dtype), shape(std::move(shape)), channelsLast(channelsLast) {
    bytes.assign(size() * elementSize(dtype), 0);
  }
  size_t size() const {
    size_t n = 1;
    for (int64_t e : shape)
      n *= size_t(e);
    return n;
  }
  /// Storage position of logical element i.
  size_t physical(size_t i) const {
    if (!channelsLast || shape.size() < 3)
      return i;
    size_t c = size_t(shape[1]), s = size() / (size_t(shape[0]) * c);
    size_t n = i / (c * s), ch = (i / s) % c, pos = i % s;
    return (n * s + pos) * c + ch;
  }
  double get(size_t i) const {
    const uint8_t *p = &bytes[physical(i) * elementSize(dtype)];
    switch (dtype) {
    case NORMRT_FLOAT64: {
      double v;
      std::memcpy(&v, p, 8);
      return v;
    }
    case NORMRT_FLOAT32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    default: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return bitsToFloat(v, dtype);
    }
    }
  }
  void set(size_t i, double value) {
    uint8_t *p = &bytes[physical(i) * elementSize(dtype)];
    if (dtype == NORMRT_FLOAT64) {
      std::memcpy(p, &value, 8);
    } else if (dtype == NORMRT_FLOAT32) {
      float f = float(value);
      std::memcpy(p, &f, 4);
    } else {
      uint16_t h = floatToBits(float(value), dtype);
      std::memcpy(p, &h, 2);
    }
  }
  /// Values as float64, after rounding to the tensor's own type.
  std::vector<double> values() const {
    std::vector<double> out(size());
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = get(i);
    return out;
  }
  void *data() { return bytes.data(); }
  normrt_tensor view() {
    normrt_tensor t;
    std::memset(&t, 0, sizeof(t));
    t.data = data();
    t.dtype = dtype;
    t.ndim = int32_t(shape.size());
    for (size_t i = 0; i < shape.size(); ++i)
      t.shape[i] = shape[i];
    return t;
  }
  void fillNormal(std::mt19937 &rng, double mean, double stddev) {
    std::normal_distribution<double> dist(mean, stddev);
    for (size_t i = 0; i < size(); ++i)
      set(i, dist(rng));
  }
};

inline double viewGet(const normrt_tensor &t, int64_t i) {
  return t.dtype == NORMRT_FLOAT64 ? static_cast<const double *>(t.data)[i]
                                   : static_cast<const float *>(t.data)[i];
}
inline void viewSet(normrt_tensor &t, int64_t i, double v) {
  if (t.dtype == NORMRT_FLOAT64)
    static_cast<double *>(t.data)[i] = v;
  else
    static_cast<float *>(t.data)[i] = float(v);
}
inline std::vector<double> viewValues(const normrt_tensor &t) {
  std::vector<double> out(size_t(t.shape[0]));
  for (int64_t i = 0; i < t.shape[0]; ++i)
    out[size_t(i)] = viewGet(t, i);
  return out;
}

/// Checks every element; reports the count and the worst one.
inline ::testing::AssertionResult allClose(const std::vector<double> &got,
                                           const std::vector<double> &want,
                                           Tolerance tol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure()
           << "size " << got.size() << " != " << want.size();
  size_t bad = 0, worst = 0;
  double worstExcess = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double limit = tol.atol + tol.rtol * std::fabs(want[i]);
    double err = std::fabs(got[i] - want[i]);
    if (!(err <= limit)) { // NaN counts as bad
      ++bad;
      double excess = std::isnan(err) ? INFINITY : err / limit;
      if (excess >= worstExcess) {
        worstExcess = excess;
        worst = i;
      }
    }
  }
  if (bad == 0)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " values differ; worst at [" << worst
         << "]: got " << got[worst] << ", want " << want[worst];
}

/// The float64 reference's configuration for a compiled layer.
template <typename Config> Config referenceConfig(const normrt_layer_info &info) {
  Config cfg;
  cfg.channels = info.num_features;
  cfg.eps = info.eps;
  cfg.hasMomentum = !info.momentum_is_none;
  cfg.momentum = info.momentum;
  cfg.affine = info.affine;
  cfg.track = info.track_running_stats;
  return cfg;
}

/// One forward of `layer` and of the float64 reference `ref` on fresh random
/// data of `shape` in the layer's layout; checks y and the running variance.
template <typename Reference>
void expectForwardMatches(normrt::Layer &layer, Reference &ref,
                          const std::vector<int64_t> &shape, std::mt19937 &rng,
                          double mean, double stddev) {
  normrt_layer_info info = layer.info();
  int64_t spatial = 1;
  for (size_t i = 2; i < shape.size(); ++i)
    spatial *= shape[i];
  Tensor x(info.dtype, shape, info.channels_last),
      y(info.dtype, shape, info.channels_last);
  x.fillNormal(rng, mean, stddev);
  normrt_tensor xv = x.view(), yv = y.view();
  layer.forward(xv, yv);
  Tolerance tol = toleranceFor(info.dtype);
  EXPECT_TRUE(allClose(y.values(), ref.forward(x.values(), shape[0], spatial), tol));
  if (info.track_running_stats) {
    normrt_tensor rv = layer.state("running_var");
    EXPECT_TRUE(allClose(viewValues(rv), ref.runningVar, tol));
  }
}

/// Everything a layer owns, copied out.
struct Snapshot {
  std::vector<std::vector<double>> vectors;
  int64_t counter = -1;
  bool operator==(const Snapshot &o) const {
    return vectors == o.vectors && counter == o.counter;
  }
};

inline Snapshot snapshot(normrt_layer *layer) {
  Snapshot s;
  for (const char *name : {"weight", "bias", "running_mean", "running_var",
                           "save_mean", "save_invstd"}) {
    normrt_tensor view;
    if (normrt_layer_state(layer, name, &view) == 0)
      s.vectors.push_back(viewValues(view));
    else
      s.vectors.push_back({});
  }
  normrt_tensor counter;
  if (normrt_layer_state(layer, "num_batches_tracked", &counter) == 0)
    s.counter = *static_cast<int64_t *>(counter.data);
  return s;
}

/// Every layer of a GPU module runs on `device` under target label `target`
/// and has the kernels its configuration needs.
inline void expectDeviceLayers(const normrt_module &m, int32_t device,
                               const char *target) {
  ASSERT_GT(m.num_layers, 0);
  for (int32_t i = 0; i < m.num_layers; ++i) {
    const normrt_layer_desc &d = m.layers[i];
    SCOPED_TRACE(d.name);
    EXPECT_EQ(d.device, device);
    EXPECT_STREQ(d.target, target);
    ASSERT_EQ(d.num_variants, 1); // GPU targets are never lists
    const normrt_kernel_fn *k = d.variants[0].kernels;
    EXPECT_NE(k[NORMRT_KERNEL_FORWARD_TRAIN], nullptr);
    EXPECT_NE(k[NORMRT_KERNEL_BACKWARD], nullptr);
    EXPECT_EQ(k[NORMRT_KERNEL_UPDATE_STATS] != nullptr,
              d.track_running_stats != 0);
    if (d.track_running_stats) {
      EXPECT_NE(k[NORMRT_KERNEL_FORWARD_EVAL], nullptr);
      EXPECT_NE(k[NORMRT_KERNEL_BACKWARD_EVAL], nullptr);
    }
  }
}

} // namespace testing_support

#endif // NORMC_TEST_UNIT_TESTSUPPORT_H

//===- TestSupport.h - Helpers shared by the runtime tests ------*- C++ -*-===//
//
// Typed host tensors, random data, tolerance checks against float64 values,
// and snapshots of a layer's whole state (to prove failed calls change
// nothing).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_TEST_UNIT_TESTSUPPORT_H
#define NORMC_TEST_UNIT_TESTSUPPORT_H

#include "normrt/normrt.hpp"

#include "gtest/gtest.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace testing_support {

/// Per-dtype tolerances for |got - want| <= atol + rtol * |want|, with want
/// computed in float64 from the same (rounded) inputs. f32: the kernels
/// accumulate and compute in f64 and round once, so the error is a few f32
/// ulps of the result plus the rounding of f32-stored statistics (relative
/// 6e-8 each); 1e-5 absolute / 1e-4 relative leaves a wide margin without
/// hiding a wrong formula (those are off by 1e-2 or more). f64: sums of a
/// few hundred terms in a different order differ by ~1e-14.
struct Tolerance {
  double atol, rtol;
};
inline Tolerance toleranceFor(normrt_dtype dtype) {
  return dtype == NORMRT_FLOAT64 ? Tolerance{1e-11, 1e-10}
                                 : Tolerance{1e-5, 1e-4};
}

/// A host tensor of either float type, with float64 access for comparisons.
struct Tensor {
  normrt_dtype dtype;
  std::vector<int64_t> shape;
  std::vector<float> f32;
  std::vector<double> f64;

  Tensor(normrt_dtype dtype, std::vector<int64_t> shape)
      : dtype(dtype), shape(std::move(shape)) {
    size_t n = 1;
    for (int64_t e : this->shape)
      n *= size_t(e);
    if (dtype == NORMRT_FLOAT64)
      f64.assign(n, 0.0);
    else
      f32.assign(n, 0.0f);
  }
  size_t size() const { return dtype == NORMRT_FLOAT64 ? f64.size() : f32.size(); }
  double get(size_t i) const { return dtype == NORMRT_FLOAT64 ? f64[i] : f32[i]; }
  void set(size_t i, double v) {
    if (dtype == NORMRT_FLOAT64)
      f64[i] = v;
    else
      f32[i] = float(v);
  }
  /// Values as float64, after rounding to the tensor's own type.
  std::vector<double> values() const {
    std::vector<double> out(size());
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = get(i);
    return out;
  }
  void *data() {
    return dtype == NORMRT_FLOAT64 ? static_cast<void *>(f64.data())
                                   : static_cast<void *>(f32.data());
  }
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

} // namespace testing_support

#endif // NORMC_TEST_UNIT_TESTSUPPORT_H

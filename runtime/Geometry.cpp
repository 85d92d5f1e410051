//===- Geometry.cpp - PyTorch shapes onto the kernels' view ---------------===//
//
// This file implements the shape rules of each kind, in PyTorch's words:
//   BatchNorm*d      (N, C, *spatial) of the kind's rank; BatchNorm1d also
//                    (N, C)
//   SyncBatchNorm    (N, C, *); with a channels-last layout the layout's rank
//   InstanceNorm*d   (N, C, *spatial) or unbatched (C, *spatial)
//   GroupNorm        (N, C, *) with C divisible by num_groups
//   LayerNorm        (*, *normalized_shape), RMSNorm the same
// and the Halide dimensions of each view.
//
//===----------------------------------------------------------------------===//

#include "Geometry.h"
#include "Support.h"

#include <cstdarg>
#include <cstdio>

using namespace normrt;
using namespace normrt::kinds;
using normrt::support::fail;

int64_t Geometry::valuesPerStat() const {
  int64_t v = 1;
  for (int a = 0; a < kNumAxes; ++a)
    if (plan.has[a] && plan.reduced[a])
      v *= extent[a];
  return v;
}

int64_t Geometry::statCount() const {
  int64_t v = 1;
  for (int a = 0; a < kNumAxes; ++a)
    if (plan.kept(Axis(a)))
      v *= extent[a];
  return v;
}

int64_t Geometry::elements() const {
  return extent[S] * extent[K] * extent[C] * extent[N];
}

int Geometry::tensorDims(halide_dimension_t *dims) const {
  int64_t stride[kNumAxes] = {0, 0, 0, 0};
  int64_t next = 1;
  for (Axis a : plan.order) {
    if (!plan.has[a])
      continue;
    stride[a] = next;
    next *= extent[a];
  }
  int d = 0;
  for (int a = 0; a < kNumAxes; ++a)
    if (plan.has[a])
      dims[d++] = {0, int32_t(extent[a]), int32_t(stride[a]), 0};
  return d;
}

int Geometry::statDims(halide_dimension_t *dims) const {
  int d = 0;
  int64_t stride = 1;
  for (int a = 0; a < kNumAxes; ++a) {
    if (!plan.kept(Axis(a)))
      continue;
    dims[d++] = {0, int32_t(extent[a]), int32_t(stride), 0};
    stride *= extent[a];
  }
  return d;
}

int normrt::paramDims(const ReductionPlan &plan, int64_t numFeatures,
                      int64_t numGroups, halide_dimension_t *dims) {
  if (plan.has[K] && plan.param[K] && plan.param[C]) {
    int64_t perGroup = numFeatures / (numGroups > 0 ? numGroups : 1);
    dims[0] = {0, int32_t(perGroup), 1, 0};
    dims[1] = {0, int32_t(numGroups), int32_t(perGroup), 0};
    return 2;
  }
  dims[0] = {0, int32_t(numFeatures), 1, 0};
  return 1;
}

std::string normrt::shapeString(const int64_t *shape, int ndim) {
  std::string text = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i)
      text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

namespace {

/// The batch-statistics kinds: BatchNorm*d's _check_input_dim and
/// F.batch_norm's checks.
int mapBatchNorm(const normrt_layer_desc *d, const normrt_tensor *x,
                 bool batchStats, Geometry &g) {
  int rank = d->spatial_rank;
  if (rank < 0) { // SyncBatchNorm in a contiguous layout: any rank from 2
    if (x->ndim < 2)
      return fail("expected at least 2D input (got %dD input)", x->ndim);
  } else if (rank == 1 ? (x->ndim != 2 && x->ndim != 3)
                       : x->ndim != rank + 2) {
    return rank == 1
               ? fail("expected 2D or 3D input (got %dD input)", x->ndim)
               : fail("expected %dD input (got %dD input)", rank + 2, x->ndim);
  }
  int64_t c = x->shape[1], s = 1;
  for (int i = 2; i < x->ndim; ++i)
    s *= x->shape[i];
  if (c != d->num_features) {
    if (d->track_running_stats)
      return fail("running_mean should contain %lld elements not %lld",
                  (long long)c, (long long)d->num_features);
    else if (d->affine)
      return fail("weight should contain %lld elements not %lld", (long long)c,
                  (long long)d->num_features);
    else
      return fail("expected input with %lld channels, got %lld channels "
                  "(input size %s)",
                  (long long)d->num_features, (long long)c,
                  shapeString(x->shape, x->ndim).c_str());
  }
  g.extent[S] = s, g.extent[C] = c, g.extent[N] = x->shape[0];
  if (batchStats && s * x->shape[0] <= 1 && s * x->shape[0] > 0) {
    return fail("Expected more than 1 value per channel when training, "
                "got input size %s",
                shapeString(x->shape, x->ndim).c_str());
  }
  return 0;
}

/// InstanceNorm*d: _InstanceNorm._check_input_dim, its channel check, and
/// F.instance_norm's spatial-size check.
int mapInstanceNorm(const normrt_layer_desc *d, const normrt_tensor *x,
                    bool batchStats, Geometry &g) {
  int rank = d->spatial_rank;
  if (x->ndim != rank + 1 && x->ndim != rank + 2) {
    return fail("expected %dD or %dD input (got %dD input)", rank + 1, rank + 2,
                x->ndim);
  }
  bool batched = x->ndim == rank + 2;
  int featureDim = batched ? 1 : 0;
  int64_t c = x->shape[featureDim], s = 1;
  for (int i = featureDim + 1; i < x->ndim; ++i)
    s *= x->shape[i];
  // Without weight or running statistics torch only warns about another
  // channel count, and normalizes each channel the same way.
  if (c != d->num_features && (d->affine || d->track_running_stats)) {
    return fail("expected input's size at dim=%d to match num_features "
                "(%lld), but got: %lld.",
                featureDim, (long long)d->num_features, (long long)c);
  }
  g.extent[S] = s, g.extent[C] = c, g.extent[N] = batched ? x->shape[0] : 1;
  if (batchStats && s == 1) {
    return fail("Expected more than 1 spatial element when training, got "
                "input size %s",
                shapeString(x->shape, x->ndim).c_str());
  }
  return 0;
}

/// GroupNorm: F.group_norm's and native_group_norm's checks.
int mapGroupNorm(const normrt_layer_desc *d, const normrt_tensor *x,
                 Geometry &g) {
  if (x->ndim < 2) {
    return fail("Expected at least 2 dimensions for input tensor but "
                "received %d",
                x->ndim);
  }
  if (d->spatial_rank > 0 && x->ndim != d->spatial_rank + 2) {
    return fail("expected %dD input for layout %s (got %dD input)",
                d->spatial_rank + 2, d->layout ? "channels-last" : "contiguous",
                x->ndim);
  }
  int64_t c = x->shape[1], s = 1, groups = d->num_groups;
  for (int i = 2; i < x->ndim; ++i)
    s *= x->shape[i];
  if (c % groups != 0) {
    return fail("Expected number of channels in input to be divisible by "
                "num_groups, but got input of shape %s and num_groups=%lld",
                shapeString(x->shape, x->ndim).c_str(), (long long)groups);
  }
  if (d->affine && c != d->num_features) {
    return fail("Expected weight to be a vector of size equal to the "
                "number of channels in input, but got weight of shape "
                "[%lld] and input of shape %s",
                (long long)d->num_features,
                shapeString(x->shape, x->ndim).c_str());
  }
  g.extent[S] = s, g.extent[K] = c / groups, g.extent[C] = groups;
  g.extent[N] = x->shape[0];
  return 0;
}

/// LayerNorm and RMSNorm: the trailing dimensions are normalized_shape.
int mapTrailing(const normrt_layer_desc *d, const normrt_tensor *x,
                Geometry &g) {
  int m = d->normalized_ndim;
  bool ok = x->ndim >= m;
  for (int i = 0; ok && i < m; ++i)
    ok = x->shape[x->ndim - m + i] == d->normalized_shape[i];
  if (!ok) {
    std::string expected = "[*";
    for (int i = 0; i < m; ++i)
      expected += ", " + std::to_string(d->normalized_shape[i]);
    return fail("Given normalized_shape=%s, expected input with shape %s], "
                "but got input of size%s",
                shapeString(d->normalized_shape, m).c_str(), expected.c_str(),
                shapeString(x->shape, x->ndim).c_str());
  }
  int64_t rows = 1;
  for (int i = 0; i < x->ndim - m; ++i)
    rows *= x->shape[i];
  g.extent[K] = d->num_features, g.extent[N] = rows;
  return 0;
}

} // namespace

int normrt::mapInput(const normrt_layer_desc *d, const Kind &kind,
                     const normrt_tensor *x, bool batchStats, Geometry &g,
                     bool emptyBatch) {
  g.plan = planFor(kind, d->layout != 0, d->spatial_rank);
  for (int64_t &e : g.extent)
    e = 1;
  int rc;
  if (kind.trailing)
    rc = mapTrailing(d, x, g);
  else if (kind.grouped)
    rc = mapGroupNorm(d, x, g);
  else if (kind.batchStats)
    rc = mapBatchNorm(d, x, batchStats, g);
  else
    rc = mapInstanceNorm(d, x, batchStats, g);
  if (rc)
    return rc;
  bool emptyShare = emptyBatch && g.extent[N] == 0 &&
                    g.extent[S] * g.extent[K] * g.extent[C] > 0;
  if (g.elements() == 0 && !emptyShare) {
    return fail("input size %s has no elements; empty inputs are not "
                "supported",
                shapeString(x->shape, x->ndim).c_str());
  }
  // Halide indexes buffers with 32-bit signed integers.
  int64_t total = 1;
  for (int64_t e : g.extent) {
    if (e > INT32_MAX / total) {
      return fail("input size %s has more than 2147483647 elements, more "
                  "than the kernels' 32-bit indexing allows",
                  shapeString(x->shape, x->ndim).c_str());
    }
    total *= e;
  }
  return 0;
}

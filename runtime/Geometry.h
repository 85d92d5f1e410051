//===- Geometry.h - How a layer's kernels see a tensor ----------*- C++ -*-===//
//
// The view of one input as the kernels of its layer's kind see it
// (normrt/kinds.h): the extents of [s, k, c, n], and the Halide dimensions of
// the tensors, the statistics and the parameters (normrt/module.h). The
// checks that map a PyTorch shape onto the view, with PyTorch's messages,
// are in Geometry.cpp.
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_GEOMETRY_H
#define NORMRT_GEOMETRY_H

#include "normrt/kinds.h"
#include "normrt/module.h"
#include "normrt/normrt.h"

#include "HalideRuntime.h"

#include <string>

namespace normrt {

struct Geometry {
  kinds::ReductionPlan plan;
  int64_t extent[kinds::kNumAxes] = {1, 1, 1, 1};

  /// Values of one statistic (the product of the reduced extents).
  int64_t valuesPerStat() const;
  /// Statistics of one call (the product of the kept extents).
  int64_t statCount() const;
  /// Elements of the tensor.
  int64_t elements() const;
  /// The tensors' Halide dimensions: the plan's axes in [s, k, c, n] order
  /// with the strides of the layout. Returns their number.
  int tensorDims(halide_dimension_t *dims) const;
  /// The statistics' dimensions: the kept axes, dense in [s, k, c, n] order
  /// (PyTorch's (N, C) and (N, G) order).
  int statDims(halide_dimension_t *dims) const;
};

/// Dimensions of the parameters of a layer with `plan`: the parameter axes,
/// dense (GroupNorm: [C / G, G]).
int paramDims(const kinds::ReductionPlan &plan, int64_t numFeatures,
              int64_t numGroups, halide_dimension_t *dims);

/// "[2, 3, 4]".
std::string shapeString(const int64_t *shape, int ndim);

/// Maps input `x` of a layer of `desc` onto its view. Returns 0, or 1 with
/// PyTorch's message as the thread's error (normrt_last_error). `batchStats`
/// is whether the call normalizes with batch statistics (some kinds need
/// more than one value per statistic then). `emptyBatch`: a batch of 0
/// samples is allowed (a process's share of a synchronized SyncBatchNorm
/// call may be empty; the global count decides).
int mapInput(const normrt_layer_desc *desc, const kinds::Kind &kind,
             const normrt_tensor *x, bool batchStats, Geometry &g,
             bool emptyBatch = false);

} // namespace normrt

#endif // NORMRT_GEOMETRY_H

//===- OneDnn.h - oneDNN's batch normalization, timed the same way -*- C++ -*-===//
//
// The incumbent normc-bench compares against: oneDNN's batch_normalization
// primitives for f32 and bf16, NCHW and NHWC (training forward, inference
// forward, backward), on tensors of the same shape, timed with the same loop.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_TOOLS_BENCH_ONEDNN_H
#define NORMC_TOOLS_BENCH_ONEDNN_H

#include <cstdint>
#include <functional>
#include <memory>

namespace normc_bench {

struct OneDnnCase {
  int64_t n, c, spatial; ///< spatial = prod of the spatial extents
  bool channelsLast;
  bool bf16 = false; ///< bf16 tensors (f32 scale, shift and statistics)
};

/// The three primitives for one shape, with their buffers. Each function runs
/// one call and waits for it.
struct OneDnnKernels {
  std::function<void()> forwardTrain, forwardEval, backward;
  std::shared_ptr<void> keepAlive;
};

/// Returns false (and leaves `out` empty) when oneDNN cannot build the
/// primitives for this shape.
bool makeOneDnnKernels(const OneDnnCase &shape, OneDnnKernels &out);

/// oneDNN's layer_normalization (scale and shift on) over the last axis of
/// a rows x features f32 tensor: training forward and backward.
bool makeOneDnnLayerNorm(int64_t rows, int64_t features, OneDnnKernels &out);

} // namespace normc_bench

#endif // NORMC_TOOLS_BENCH_ONEDNN_H

//===- CpuChannelsLast.cpp - CPU schedules for channels-last tensors ------===//
//
// This file implements the CPU schedule of every kernel for channels-last
// tensors (NLC, NHWC, NDHWC), seen as [s, c, n] with c the stride-1 axis.
//
// A channel's values are C elements apart, so per-channel reductions run
// across all channels at once, vectorized along c: each parallel task sums a
// block of rows (spatial positions of one image) into its own vector of
// per-channel partial sums (rfactor over the batch), and the partials are
// added at the end. Elementwise outputs are vectorized along c and parallel
// over rows of (s, n).
//
// Status: correctness-first baseline without cache blocking: train forward
// reads x three times (4 transfers is the channels-last floor, see
// DESIGN.md's performance model).
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

using namespace Halide;

namespace normc {
namespace schedules {

static void scheduleReduction(Func f, RDom r, const KernelStages &k, int V) {
  Var c = k.c;
  f.compute_root().vectorize(c, V, TailStrategy::GuardWithIf);
  // One partial vector of channel sums per image, computed in parallel;
  // within an image, positions outer and channels inner (contiguous).
  Var image("image");
  Func partial = f.update().rfactor(r.y, image);
  partial.compute_root()
      .vectorize(c, V, TailStrategy::GuardWithIf)
      .parallel(image);
  partial.update()
      .reorder(c, r.x, image)
      .vectorize(c, V, TailStrategy::GuardWithIf)
      .parallel(image);
  f.update().vectorize(c, V, TailStrategy::GuardWithIf);
}

void scheduleCpuChannelsLast(KernelStages &k, const Target &target) {
  const int V = target.natural_vector_size(k.ioType);
  Var s = k.s, c = k.c, n = k.n;

  for (auto &reduction : k.reductions)
    scheduleReduction(reduction.first, reduction.second, k, V);
  for (Func f : k.channelFuncs)
    f.compute_root().vectorize(c, V, TailStrategy::GuardWithIf);
  for (Func f : k.channelOutputs)
    f.vectorize(c, V, TailStrategy::GuardWithIf);

  for (Func f : k.tensorOutputs) {
    Var row("row"), rowOuter("row_outer");
    // Rows of C contiguous values; 16 rows a task keeps tasks coarse enough
    // for small C.
    f.reorder(c, s, n)
        .fuse(s, n, row)
        .split(row, rowOuter, row, 16, TailStrategy::GuardWithIf)
        .parallel(rowOuter)
        .vectorize(c, V, TailStrategy::GuardWithIf);
  }
}

} // namespace schedules
} // namespace normc

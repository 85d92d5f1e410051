//===- CpuChannelsLast.cpp - CPU schedules for channels-last tensors ------===//
//
// This file implements the CPU schedule of every kernel for channels-last
// tensors (NLC, NHWC, NDHWC), seen as [s, c, n] with c the stride-1 axis.
//
// A channel's values are C elements apart, so per-channel reductions run
// across all channels at once, vectorized along c: each parallel task sums a
// block of rows (1024 spatial positions of one image) into its own vector of
// per-channel partial sums (rfactor over position chunks and images), and
// the partials are added at the end. Train forward's statistics are one pass
// of shifted sums (compiler/KernelAlgorithms.cpp), so x is read twice: 4
// transfers, the channels-last floor of DESIGN.md's performance model.
// Elementwise outputs are vectorized along c and parallel over blocks of
// rows of (s, n).
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

using namespace Halide;

namespace normc {
namespace schedules {

/// Spatial positions per parallel reduction task (per image): 1024 x C
/// values, 256 KB of f32 for C = 64, enough to amortise a task and few
/// enough partial vectors (C x ceil(S / 1024) x N) to stay small.
constexpr int kPositionsPerTask = 1024;

static void scheduleReduction(Func f, RDom r, const KernelStages &k, int V) {
  Var c = k.c;
  f.compute_root().vectorize(c, V, TailStrategy::GuardWithIf);
  // Partial per-channel sums for each (chunk of positions, image), computed
  // in parallel with channels innermost (contiguous), then added up.
  RVar chunkInner("chunk_inner"), chunk("chunk");
  Var u("u"), image("image"), task("task");
  Func partial =
      f.update()
          .split(r.x, chunk, chunkInner, kPositionsPerTask,
                 TailStrategy::GuardWithIf)
          .rfactor({{chunk, u}, {r.y, image}});
  partial.compute_root()
      .vectorize(c, V, TailStrategy::GuardWithIf)
      .fuse(u, image, task)
      .parallel(task);
  partial.update()
      .reorder(c, chunkInner, u, image)
      .vectorize(c, V, TailStrategy::GuardWithIf)
      .fuse(u, image, task)
      .parallel(task);
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
    // Rows of C contiguous values, 256 rows a task (64 KB of f32 at C = 64):
    // 16 rows a task measured 1.28x a copy on 64x64x112x112 NHWC f32, the
    // task overhead of 50,000 tasks showing.
    f.reorder(c, s, n)
        .fuse(s, n, row)
        .split(row, rowOuter, row, 256, TailStrategy::GuardWithIf)
        .parallel(rowOuter)
        .vectorize(c, V, TailStrategy::GuardWithIf);
  }
}

} // namespace schedules
} // namespace normc

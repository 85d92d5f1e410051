//===- GpuCuda.cpp - CUDA schedules for both layouts ----------------------===//
//
// This file implements the GPU schedule of every kernel, for contiguous
// (NCHW-family) and channels-last tensors, seen as [s, c, n].
//
// Per-channel reductions run in two kernels, neither with atomics (the sums
// are Tuples of f64 or f32, which Halide cannot update atomically on a GPU):
//  1. partials: about kTargetBlocks blocks, each thread summing a strided
//     run of one channel's values into its own partial (rfactor over the
//     block and thread indices), with loads coalesced across the threads of
//     a warp: along s in the contiguous layout (256 threads a block, one
//     channel a block), along c channels-last (32 channels x 8 images a
//     block). A thread's serial run is unrolled so that each warp keeps
//     several loads in flight.
//  2. per channel: a block of threads adds a channel's partials, then one
//     thread (contiguous) or each channel's thread (channels-last) adds the
//     threads' sums from shared memory.
// BatchNorm1d on (N, C) or (N, C, L) uses the channels-last schedule: with
// L = 1 its channels are the stride-1 axis.
//
// Elementwise outputs (y, dx) use one thread per element, blocks along the
// stride-1 axis; the per-channel coefficients they read (scale, shift, ...)
// are computed by each block for its channels, so they cost no kernels of
// their own. Per-channel outputs (save_mean, dweight, ...) are small kernels
// over c.
//
// Not measured yet: no GPU has been available to this project (see
// docs/performance.md); the block and unroll factors follow the usual
// memory-bound rules of thumb (enough blocks for every SM, 8+ warps each).
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

using namespace Halide;

namespace normc {
namespace schedules {

namespace {

constexpr int kWarp = 32;
/// Threads of a contiguous-layout block (all along s).
constexpr int kSpatialLanes = 256;
/// Images (or positions) a channels-last block spans, each warp one.
constexpr int kRowLanes = 8;
/// Blocks the partials kernel aims for: several per SM on an H100 (132).
constexpr int kTargetBlocks = 1024;
/// Serial steps unrolled, for loads in flight per warp.
constexpr int kUnroll = 4;

Expr ceilDiv(const Expr &a, const Expr &b) { return (a + b - 1) / b; }

/// A thread's serial run in the partials kernel, unrolled so that each warp
/// keeps several loads in flight.
void unrollSerialRun(Func partial, const RVar &run) {
  RVar outer("run_outer"), inner("run_inner");
  partial.update()
      .split(run, outer, inner, kUnroll, TailStrategy::GuardWithIf)
      .unroll(inner);
}

/// Per-channel reduction f(c) += g(r.x, c, r.y) for the contiguous layout.
void reduceAlongSpatial(Func f, const RDom &r, const KernelStages &k) {
  Var c = k.c, v("v"), u("u"), t("t"), w("w");
  RVar rs = r.x, rn = r.y;
  Expr sSteps = ceilDiv(k.spatial, kSpatialLanes);
  Expr perThread =
      max(1, ceilDiv(k.spatial * k.batch * k.channels,
                     kTargetBlocks * kSpatialLanes));
  Expr ks = min(sSteps, perThread);
  Expr kn = max(1, perThread / sSteps);

  RVar rso("rso"), rsr("rsr"), rsm("rsm"), rsi("rsi"), rno("rno"), rnm("rnm");
  Stage update = f.update();
  update.split(rs, rso, rsr, ks * kSpatialLanes, TailStrategy::GuardWithIf)
      .split(rsr, rsm, rsi, kSpatialLanes, TailStrategy::GuardWithIf)
      .split(rn, rno, rnm, kn, TailStrategy::GuardWithIf);
  // partial(c, v, u, t): thread t of block (v, u, c), summed in registers
  // (both stages inside the thread loop of the wrapper that stores it).
  Func partial = update.rfactor({{rso, v}, {rno, u}, {rsi, t}});
  Func partialOut = partial.in();
  partialOut.compute_root()
      .reorder_storage(t, v, u, c)
      .reorder(t, v, u, c)
      .gpu_blocks(v, u, c)
      .gpu_threads(t);
  partial.compute_at(partialOut, t);
  unrollSerialRun(partial, rsm);

  // f(c): the block of channel c sums its partials, thread w taking those of
  // thread index w of every partials block; one thread adds the 256 sums.
  Func lanes = f.update().rfactor(rsi, w);
  Func fOut = f.in();
  fOut.compute_root().gpu_blocks(c);
  f.compute_at(fOut, c);
  lanes.compute_at(f, c).reorder(w, c).gpu_threads(w);
  lanes.update().reorder(rso, rno, w, c).gpu_threads(w);
}

/// Per-channel reduction for channels-last tensors (and BatchNorm1d).
void reduceAcrossChannels(Func f, const RDom &r, const KernelStages &k) {
  Var c = k.c, v("v"), u("u"), t("t"), w("w"), co("co"), ci("ci");
  RVar rs = r.x, rn = r.y;
  Expr channelBlocks = ceilDiv(k.channels, kWarp);
  Expr perThread = max(1, ceilDiv(k.spatial * k.batch * channelBlocks,
                                  kTargetBlocks * kRowLanes));
  Expr ks = min(k.spatial, perThread);
  Expr kn = max(1, perThread / k.spatial);

  RVar rso("rso"), rsm("rsm"), rno("rno"), rnr("rnr"), rnm("rnm"), rni("rni");
  Stage update = f.update();
  update.split(rs, rso, rsm, ks, TailStrategy::GuardWithIf)
      .split(rn, rno, rnr, kn * kRowLanes, TailStrategy::GuardWithIf)
      .split(rnr, rnm, rni, kRowLanes, TailStrategy::GuardWithIf);
  // partial(c, v, u, t): channel lane c of row lane t in block (c/32, v, u),
  // summed in registers.
  Func partial = update.rfactor({{rso, v}, {rno, u}, {rni, t}});
  Func partialOut = partial.in();
  partialOut.compute_root()
      .split(c, co, ci, kWarp, TailStrategy::GuardWithIf)
      .reorder(ci, t, co, v, u)
      .gpu_blocks(co, v, u)
      .gpu_threads(ci, t);
  partial.compute_at(partialOut, ci);
  unrollSerialRun(partial, rsm);

  // f(c): a block per 32 channels; thread (c, w) sums row lane w's partials
  // of channel c, then each channel's thread adds its 8 sums.
  Func lanes = f.update().rfactor(rni, w);
  Func fOut = f.in();
  fOut.compute_root()
      .split(c, co, ci, kWarp, TailStrategy::GuardWithIf)
      .gpu_blocks(co)
      .gpu_threads(ci);
  f.compute_at(fOut, ci);
  lanes.compute_at(fOut, co).reorder(c, w).gpu_threads(c, w);
  lanes.update().reorder(rso, rno, c, w).gpu_threads(c, w);
}

bool isReadByReductions(const KernelStages &k, const Func &f) {
  for (const Func &g : k.reductionInputs)
    if (g.name() == f.name())
      return true;
  return false;
}

} // namespace

void scheduleGpuCuda(KernelStages &k, const Target &target) {
  (void)target;
  Var s = k.s, c = k.c, n = k.n;
  // Contiguous layers with a spatial extent (2d, 3d) are reduced along s;
  // channels-last and BatchNorm1d layers across channels.
  bool alongSpatial = k.plan.unitStrideReduced() && k.plan.longRows;

  for (auto &reduction : k.reductions) {
    if (alongSpatial)
      reduceAlongSpatial(reduction.f, reduction.r, k);
    else
      reduceAcrossChannels(reduction.f, reduction.r, k);
  }

  Var so("so"), si("si"), co("co"), ci("ci");
  for (Func f : k.tensorOutputs) {
    if (alongSpatial)
      f.split(s, so, si, kSpatialLanes, TailStrategy::GuardWithIf)
          .reorder(si, so, c, n)
          .gpu_blocks(so, c, n)
          .gpu_threads(si);
    else
      f.split(c, co, ci, kWarp, TailStrategy::GuardWithIf)
          .split(s, so, si, kRowLanes, TailStrategy::GuardWithIf)
          .reorder(ci, si, so, co, n)
          .gpu_blocks(so, co, n)
          .gpu_threads(ci, si);
  }

  // Per-channel coefficients: computed by each block of the elementwise
  // kernel for its own channels, unless a reduction reads them too (then
  // they stay inline: a load or two per element, from cache).
  for (Func f : k.channelFuncs) {
    // With two tensor outputs (grad_input and grad_residual) both read
    // them: computed once at root.
    if (k.tensorOutputs.size() != 1) {
      f.compute_root().gpu_tile(c, co, ci, kWarp, TailStrategy::GuardWithIf);
    } else if (!isReadByReductions(k, f)) {
      f.compute_at(k.tensorOutputs.front(), so);
      if (!alongSpatial)
        f.gpu_threads(c);
    }
  }
  for (Func f : k.channelOutputs)
    f.compute_root().gpu_tile(c, co, ci, 2 * kWarp,
                              TailStrategy::GuardWithIf);
  for (Func f : k.paramFuncs)
    f.compute_root().gpu_tile(c, co, ci, kWarp, TailStrategy::GuardWithIf);
  for (Func f : k.scalarOutputs)
    f.compute_root().gpu_single_thread();
}

} // namespace schedules
} // namespace normc

//===- KernelStages.h - What an algorithm hands its schedule ----*- C++ -*-===//
//
// This file declares the small struct through which a kernel's algorithm
// (compiler/KernelAlgorithms.cpp, math only) hands its Funcs to a schedule.
// Schedules see Halide and this struct, nothing of the compiler.
//
// Conventions every algorithm follows:
//  - tensors are 3-D [s, c, n]: s the flattened spatial position (innermost,
//    stride 1), c the channel, n the batch index;
//  - a per-channel reduction is f(c) = 0; f(c) += g(r.x, c, r.y) over
//    r = [0, spatial) x [0, batch), possibly Tuple-valued;
//  - per-channel Funcs are f(c) on [0, channels).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_SCHEDULES_KERNELSTAGES_H
#define NORMC_SCHEDULES_KERNELSTAGES_H

#include "Halide.h"

#include <string>
#include <utility>
#include <vector>

namespace normc {
namespace schedules {

struct KernelStages {
  std::string kernel; ///< forward_train, update_stats, ...
  Halide::Var s{"s"}, c{"c"}, n{"n"};
  Halide::Expr spatial, channels, batch; ///< extents of the input tensor
  Halide::Type ioType;                   ///< element type of x and y
  bool channelsLast = false;             ///< c, not s, is the stride-1 axis
  /// Layers whose spatial extent is usually a vector or more (2d, 3d): the
  /// schedule may work channel by channel.
  bool blockChannels = false;

  /// Per-channel reductions over (s, n), each with its RDom.
  std::vector<std::pair<Halide::Func, Halide::RDom>> reductions;
  /// Small per-channel intermediates (mean, scale, shift) read per element.
  std::vector<Halide::Func> channelFuncs;
  /// The channelFuncs that the reductions read as well (the shift of the
  /// shifted sums, the mean in backward).
  std::vector<Halide::Func> reductionInputs;
  /// Per-channel outputs: save_mean, save_invstd, dweight, ...
  std::vector<Halide::Func> channelOutputs;
  /// Tensor outputs y(s, c, n) or dx(s, c, n).
  std::vector<Halide::Func> tensorOutputs;
  /// 0-D outputs (the batch counter).
  std::vector<Halide::Func> scalarOutputs;
};

/// Values a parallel task should have at least. Tasks of one small image
/// (7 x 7) or a few rows cost more in scheduling than in work: measured 93x
/// a copy on 32x2048x7x7 with one task per image, so schedules group rows
/// and images until a task has about this many values (64 KB of f32).
constexpr int kValuesPerTask = 16384;

/// How many units of `valuesPerUnit` values make one task (at least 1).
inline Halide::Expr unitsPerTask(const Halide::Expr &valuesPerUnit) {
  return Halide::max(1, kValuesPerTask / Halide::max(valuesPerUnit, 1));
}

/// CPU schedule for the PyTorch-order (planar, NC[D][H]W) layout:
/// vectorized along the spatial axis, parallel over channels and batch,
/// vectorized across channels when the spatial extent is shorter than a
/// vector (BatchNorm1d on (N, C)). CpuPlanar.cpp.
void scheduleCpuPlanar(KernelStages &stages, const Halide::Target &target);

/// CPU schedule for channels-last (N[D][H]WC) tensors: vectorized across
/// channels, parallel over the batch and spatial positions.
/// CpuChannelsLast.cpp.
void scheduleCpuChannelsLast(KernelStages &stages,
                             const Halide::Target &target);

/// CUDA schedule for both layouts: reductions in a partials kernel and a
/// per-channel kernel (rfactor twice, no atomics), elementwise outputs one
/// thread per element. GpuCuda.cpp.
void scheduleGpuCuda(KernelStages &stages, const Halide::Target &target);

/// The per-channel intermediates at root and the per-channel outputs,
/// vectorized across channels: the same in every CPU schedule that does not
/// block by channel.
void scheduleChannelStagesAtRoot(KernelStages &stages, int vectorSize);

/// Picks the schedule for `target`; reports an error for targets that have no
/// schedule yet (returns false and sets `error`).
bool applySchedule(KernelStages &stages, const Halide::Target &target,
                   std::string &error);

} // namespace schedules
} // namespace normc

#endif // NORMC_SCHEDULES_KERNELSTAGES_H

//===- KernelStages.h - What an algorithm hands its schedule ----*- C++ -*-===//
//
// This file declares the small struct through which a kernel's algorithm
// (compiler/KernelAlgorithms.cpp, math only) hands its Funcs to a schedule.
// Schedules see Halide, this struct and the kernel's reduction plan
// (normrt/kinds.h), nothing of the compiler, and key on the plan, never on
// the kind of layer or of kernel.
//
// Conventions every algorithm follows:
//  - tensors have the plan's axes of [s, k, c, n] in that order (BatchNorm:
//    [s, c, n]), with the layout's stride-1 axis (plan.unitStride());
//  - a statistics reduction is f(kept axes) = 0; f(kept) += g(...) over an
//    RDom of the reduced axes, innermost in memory first (BatchNorm: r.x = s,
//    r.y = n), possibly Tuple-valued; a parameter-gradient reduction is
//    indexed by the parameter axes and reduces the others;
//  - per-statistic Funcs are indexed by the kept axes, per-parameter ones by
//    the parameter axes (the same axes for BatchNorm: the channel).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_SCHEDULES_KERNELSTAGES_H
#define NORMC_SCHEDULES_KERNELSTAGES_H

#include "Halide.h"
#include "runtime/include/normrt/kinds.h"

#include <string>
#include <utility>
#include <vector>

namespace normc {
namespace schedules {

/// One reduction of a kernel, with the axes its Func is indexed by.
struct Reduction {
  Halide::Func f;
  Halide::RDom r;
  std::vector<Halide::Var> vars; ///< the Func's arguments
  /// Reduces for the parameter gradients (over the non-parameter axes), not
  /// for the statistics.
  bool overParams = false;
};

struct KernelStages {
  normrt::kinds::ReductionPlan plan;
  Halide::Var s{"s"}, k{"k"}, c{"c"}, n{"n"};
  /// Extents of the tensor view's axes (1 for axes the plan lacks).
  Halide::Expr spatial, groupSize, channels, batch;
  Halide::Type ioType; ///< element type of x and y
  bool channelsLast = false; ///< the unit-stride axis is k or c, not s
  /// The kernel reduces and then writes a tensor from the statistics (train
  /// forward): a schedule may compute both per statistic group.
  bool reducesThenWrites = false;

  /// Reductions; for per-channel plans (BatchNorm) f(c) over r = (s, n).
  std::vector<Reduction> reductions;
  /// Small per-statistic intermediates (mean, scale, ...) read per element.
  std::vector<Halide::Func> channelFuncs;
  /// Small per-parameter intermediates (weight and bias in the arithmetic
  /// type) where parameters are not indexed by the statistics' axes.
  std::vector<Halide::Func> paramFuncs;
  /// The channelFuncs that the reductions read as well (the shift of the
  /// shifted sums, the mean in backward).
  std::vector<Halide::Func> reductionInputs;
  /// Per-statistic or per-parameter outputs: save_mean, grad_weight, ...
  std::vector<Halide::Func> channelOutputs;
  /// Tensor outputs y, grad_input, grad_residual.
  std::vector<Halide::Func> tensorOutputs;
  /// 0-D outputs (the batch counter).
  std::vector<Halide::Func> scalarOutputs;

  /// The Var of a view axis.
  Halide::Var var(normrt::kinds::Axis a) const {
    switch (a) {
    case normrt::kinds::S:
      return s;
    case normrt::kinds::K:
      return k;
    case normrt::kinds::C:
      return c;
    default:
      return n;
    }
  }
  /// The extent of a view axis.
  Halide::Expr extent(normrt::kinds::Axis a) const {
    switch (a) {
    case normrt::kinds::S:
      return spatial;
    case normrt::kinds::K:
      return groupSize;
    case normrt::kinds::C:
      return channels;
    default:
      return batch;
    }
  }
  /// Per-channel plans: statistics and parameters indexed by c alone, the
  /// shape the BatchNorm schedules (CpuPlanar, CpuChannelsLast, GpuCuda)
  /// are written for.
  bool perChannel() const {
    return plan.has[normrt::kinds::C] && plan.kept(normrt::kinds::C) &&
           !plan.kept(normrt::kinds::N) && !plan.has[normrt::kinds::K] &&
           plan.paramsAreStatGroups();
  }
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

/// Tasks an elementwise pass over a tensor is cut into at most. Each task
/// costs the thread pool a claim and the prefetchers a new stream to pick
/// up: a 206 MB f32 tensor in tasks of kValuesPerTask values is 3136
/// tasks, and a channels-last eval loop over it (a read and a streaming
/// write) measured 10.1 ms in such tasks against 8.5-8.7 ms in 64 to 196
/// (means of 8 alternated runs on 2 cores of a Zen 4, 1 us a task). 256
/// still leaves 16 tasks a core on 16 cores to balance.
constexpr int kMaxTasksPerPass = 256;

/// How many of `units` units of `valuesPerUnit` values make one task of an
/// elementwise pass: about kValuesPerTask values, and no more than
/// kMaxTasksPerPass tasks in all.
inline Halide::Expr unitsPerTask(const Halide::Expr &valuesPerUnit,
                                 const Halide::Expr &units) {
  return Halide::max(unitsPerTask(valuesPerUnit),
                     (units + kMaxTasksPerPass - 1) / kMaxTasksPerPass);
}

/// Length of the runs `units` units are cut into when a task takes at most
/// `unitsPerTask` of them: runs of equal length (at least 1), so that the
/// last is not a short task of its own.
inline Halide::Expr equalRunLength(const Halide::Expr &units,
                                   const Halide::Expr &unitsPerTask) {
  Halide::Expr runs = Halide::max((units + unitsPerTask - 1) / unitsPerTask, 1);
  return Halide::max((units + runs - 1) / runs, 1);
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

/// Schedules a per-channel reduction's update stage (or a specialization of
/// it) over rows of C contiguous values, r = (s, n): parallel tasks of
/// image groups or row groups, each summing its rows into per-channel
/// partials vectorized along c, in strips of channels where the tensor is
/// cache-resident and its rows whole strips or where a row's partials
/// outgrow L1; the partials are added a task at a time. The
/// channels-last reductions, and planar ones whose rows are one value long
/// ((N, C) BatchNorm1d input). The partials are computed at `partialsAt`
/// (the loop the reduction itself is computed in, where that is not the
/// root). CpuChannelsLast.cpp.
void scheduleRowsReduction(
    Halide::Stage update, Halide::RDom r, const KernelStages &stages,
    int vectorSize,
    Halide::LoopLevel partialsAt = Halide::LoopLevel::root());

/// CUDA schedule for both layouts: reductions in a partials kernel and a
/// per-channel kernel (rfactor twice, no atomics), elementwise outputs one
/// thread per element. GpuCuda.cpp.
void scheduleGpuCuda(KernelStages &stages, const Halide::Target &target);

/// The per-channel intermediates at root and the per-channel outputs,
/// vectorized across channels: the same in every CPU schedule that does not
/// block by channel.
void scheduleChannelStagesAtRoot(KernelStages &stages, int vectorSize);

/// CPU schedule for plans whose statistics are per instance (InstanceNorm,
/// GroupNorm, LayerNorm, RMSNorm), either layout. CpuInstance.cpp.
void scheduleCpuInstance(KernelStages &stages, const Halide::Target &target);

/// GPU schedule for plans whose statistics are per instance. GpuInstance.cpp.
void scheduleGpuInstance(KernelStages &stages, const Halide::Target &target);

/// Fuses `vars` (innermost first, adjacent loops of `stage`) into one Var,
/// which it returns (the first of `vars` when there is one).
Halide::Var fuseAll(Halide::Stage stage, const std::vector<Halide::Var> &vars,
                    const std::string &name);

/// Picks the schedule for `target`; reports an error for targets that have no
/// schedule yet (returns false and sets `error`).
bool applySchedule(KernelStages &stages, const Halide::Target &target,
                   std::string &error);

} // namespace schedules
} // namespace normc

#endif // NORMC_SCHEDULES_KERNELSTAGES_H

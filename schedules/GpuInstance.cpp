//===- GpuInstance.cpp - GPU schedules for per-instance statistics --------===//
//
// This file implements the GPU schedule (CUDA and OpenCL) of every kernel
// whose statistics are per instance: InstanceNorm, GroupNorm, LayerNorm and
// RMSNorm. It keys on the reduction plan only:
//  - each reduction is one block per statistic (or per parameter, for the
//    weight gradients) whose kLanes threads sum a strided run of the
//    reduction's first axis (the stride-1 axis where it is reduced, so that
//    a warp's loads are coalesced), then one thread adds the lanes;
//  - tensor outputs are one thread per element, blocks along the stride-1
//    axis and over the other axes fused;
//  - small per-statistic and per-parameter Funcs are computed at root, one
//    thread per value.
// Not measured on a GPU yet (docs/performance.md).
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

using namespace Halide;
using namespace normrt::kinds;

namespace normc {
namespace schedules {

namespace {

constexpr int kLanes = 128;
constexpr int kThreads = 64;

/// One thread per value of `f`, all its axes fused, in each of its stages
/// (a small reduction's update too: each thread sums its value's terms).
void scheduleFlat(Func f, bool root) {
  if (root)
    f.compute_root();
  std::vector<Var> args = f.args();
  if (args.empty()) {
    f.gpu_single_thread();
    for (int i = 0; i < f.num_update_definitions(); ++i)
      f.update(i).gpu_single_thread();
    return;
  }
  std::vector<Stage> stages = {Stage(f)};
  for (int i = 0; i < f.num_update_definitions(); ++i)
    stages.push_back(f.update(i));
  for (Stage stage : stages) {
    Var fused = fuseAll(stage, args, f.name() + "_f");
    Var bo("bo"), bi("bi");
    stage.split(fused, bo, bi, kThreads, TailStrategy::GuardWithIf)
        .gpu_blocks(bo)
        .gpu_threads(bi);
  }
}

void scheduleSum(const Reduction &red) {
  Func f = red.f;
  RDom r = red.r;
  RVar ro("ro"), ri("ri");
  Var lane("lane");
  Func partial = f.update()
                     .split(r[0], ro, ri, kLanes, TailStrategy::GuardWithIf)
                     .rfactor(ri, lane);
  // One block per value of f, its axes fused.
  f.compute_root();
  Var fused = fuseAll(f, red.vars, f.name() + "_b");
  Stage update = f.update();
  fuseAll(update, red.vars, f.name() + "_b");
  f.gpu_blocks(fused);
  update.gpu_blocks(fused);
  partial.compute_at(f, fused).gpu_threads(lane);
  std::vector<VarOrRVar> order = {ro};
  for (int i = 1; i < r.dimensions(); ++i)
    order.push_back(r[i]);
  order.push_back(lane);
  partial.update().reorder(order).gpu_threads(lane);
}

} // namespace

void scheduleGpuInstance(KernelStages &k, const Target &target) {
  (void)target;
  for (const Reduction &red : k.reductions)
    scheduleSum(red);
  for (Func f : k.channelFuncs)
    scheduleFlat(f, true);
  for (Func f : k.paramFuncs)
    scheduleFlat(f, true);
  for (Func f : k.channelOutputs)
    scheduleFlat(f, true);
  for (Func f : k.scalarOutputs)
    f.compute_root().gpu_single_thread();

  Var unit = k.var(k.plan.unitStride());
  for (Func f : k.tensorOutputs) {
    std::vector<Var> rows;
    for (Axis a : k.plan.order)
      if (k.plan.has[a] && a != k.plan.unitStride())
        rows.push_back(k.var(a));
    Var row = fuseAll(f, rows, f.name() + "_row");
    Var uo("uo"), ui("ui");
    f.split(unit, uo, ui, kThreads, TailStrategy::GuardWithIf)
        .reorder(ui, uo, row)
        .gpu_blocks(uo, row)
        .gpu_threads(ui);
  }
}

} // namespace schedules
} // namespace normc

//===- CpuInstance.cpp - CPU schedules for per-instance statistics --------===//
//
// This file implements the CPU schedule of every kernel whose statistics are
// per instance: InstanceNorm, GroupNorm, LayerNorm and RMSNorm, in either
// layout. It keys on the reduction plan (normrt/kinds.h) only:
//  - a reduction whose Func keeps the stride-1 axis (channels-last
//    InstanceNorm, LayerNorm's weight gradient) is vectorized across that
//    axis, and its outermost reduced axis is split into groups of rows
//    summed as parallel tasks (rfactor), then added;
//  - a reduction over the stride-1 axis (the statistics of contiguous
//    tensors and of LayerNorm rows) sums V lane accumulators along it
//    (rfactor over the lanes), one parallel task per group of statistics;
//  - tensor outputs are vectorized along the stride-1 axis and parallel
//    over groups of rows of about kValuesPerTask values;
//  - per-statistic and per-parameter intermediates are computed at root,
//    vectorized along their first axis.
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

using namespace Halide;
using namespace normrt::kinds;

namespace normc {
namespace schedules {

namespace {

/// Parallel partial sums of a reduction that keeps the stride-1 axis: enough
/// tasks for the cores of a large machine, few enough that the partials
/// stay small.
constexpr int kMaxPartials = 64;

bool hasVar(const std::vector<Var> &vars, const Var &v) {
  for (const Var &x : vars)
    if (x.name() == v.name())
      return true;
  return false;
}

/// The Func's vars in memory order (stride-1 first).
std::vector<Var> memoryOrder(const KernelStages &k,
                             const std::vector<Var> &vars) {
  std::vector<Var> out;
  for (Axis a : k.plan.order)
    if (k.plan.has[a] && hasVar(vars, k.var(a)))
      out.push_back(k.var(a));
  return out;
}

void scheduleSum(const Reduction &red, const KernelStages &k, int V) {
  Func f = red.f;
  RDom r = red.r;
  Var unit = k.var(k.plan.unitStride());
  f.compute_root();
  std::vector<Var> vars = memoryOrder(k, red.vars);
  if (hasVar(red.vars, unit)) {
    // Vectorized across the kept stride-1 axis.
    f.vectorize(unit, V, TailStrategy::GuardWithIf);
    std::vector<Var> others(vars.begin() + 1, vars.end());
    if (!others.empty()) {
      // Other kept axes (the batch of channels-last InstanceNorm) give
      // parallel tasks already.
      std::vector<VarOrRVar> order = {unit};
      for (int i = 0; i < r.dimensions(); ++i)
        order.push_back(r[i]);
      for (const Var &v : others)
        order.push_back(v);
      f.update().reorder(order).vectorize(unit, V, TailStrategy::GuardWithIf);
      f.update().parallel(others.back());
      return;
    }
    // Rows of the outermost reduced axis in groups, each a parallel task.
    RVar outer = r[r.dimensions() - 1];
    RVar group("group"), groupInner("group_inner");
    Var task("task");
    Expr rowValues = k.extent(k.plan.unitStride());
    for (int i = 0; i + 1 < r.dimensions(); ++i)
      rowValues = rowValues * r[i].extent();
    // At most kMaxPartials groups: each has a partial of the whole kept
    // axis (LayerNorm's 4096 weights), so one group per 16K values would
    // make an intermediate larger than the tensor.
    Expr rowsPerGroup = max(unitsPerTask(rowValues),
                            (outer.extent() + kMaxPartials - 1) / kMaxPartials);
    Func partial = f.update()
                       .split(outer, group, groupInner, rowsPerGroup,
                              TailStrategy::GuardWithIf)
                       .rfactor(group, task);
    partial.compute_root()
        .vectorize(unit, V, TailStrategy::GuardWithIf)
        .parallel(task);
    std::vector<VarOrRVar> order = {unit};
    for (int i = 0; i + 1 < r.dimensions(); ++i)
      order.push_back(r[i]);
    order.push_back(groupInner);
    order.push_back(task);
    partial.update()
        .reorder(order)
        .vectorize(unit, V, TailStrategy::GuardWithIf)
        .parallel(task);
    f.update().vectorize(unit, V, TailStrategy::GuardWithIf);
    return;
  }
  // The stride-1 axis is reduced (it is r's first dimension): V lane
  // accumulators along it, one task per group of statistics.
  RVar rxo("rxo"), rxi("rxi");
  Var lane("lane");
  Stage update = f.update();
  Func partial = update.split(r[0], rxo, rxi, V, TailStrategy::GuardWithIf)
                     .rfactor(rxi, lane);
  Var fused = fuseAll(f.update(), vars, f.name() + "_group");
  Var outer("stat_group"), inner("stat_inner");
  Expr statValues = 1;
  for (int i = 0; i < r.dimensions(); ++i)
    statValues = statValues * r[i].extent();
  f.update()
      .split(fused, outer, inner, unitsPerTask(statValues),
             TailStrategy::GuardWithIf)
      .parallel(outer);
  partial.compute_at(f, inner).vectorize(lane);
  std::vector<VarOrRVar> order = {lane, rxo};
  for (int i = 1; i < r.dimensions(); ++i)
    order.push_back(r[i]);
  partial.update().reorder(order).vectorize(lane);
}

/// Per-statistic and per-parameter Funcs: at root, vectorized along their
/// first axis.
void scheduleSmall(Func f, int V, bool root) {
  if (root)
    f.compute_root();
  std::vector<Var> args = f.args();
  if (args.empty())
    return;
  // Every stage: the small reductions of the per-cell sums (InstanceNorm's
  // backward) have an update, vectorized the same way.
  f.vectorize(args.front(), V, TailStrategy::GuardWithIf);
  for (int i = 0; i < f.num_update_definitions(); ++i)
    f.update(i).vectorize(args.front(), V, TailStrategy::GuardWithIf);
}

} // namespace

void scheduleCpuInstance(KernelStages &k, const Target &target) {
  const int V = target.natural_vector_size(k.ioType);
  for (const Reduction &red : k.reductions)
    scheduleSum(red, k, V);
  for (Func f : k.channelFuncs)
    scheduleSmall(f, V, true);
  for (Func f : k.paramFuncs)
    scheduleSmall(f, V, true);
  for (Func f : k.channelOutputs)
    scheduleSmall(f, V, false);

  Axis unitAxis = k.plan.unitStride();
  Var unit = k.var(unitAxis);
  Expr unitExtent = k.extent(unitAxis);
  for (Func f : k.tensorOutputs) {
    std::vector<Var> vars = memoryOrder(k, f.args());
    std::vector<VarOrRVar> order(vars.begin(), vars.end());
    f.reorder(order);
    std::vector<Var> rows(vars.begin() + 1, vars.end());
    Expr rowCount = 1;
    for (Axis a : k.plan.order)
      if (k.plan.has[a] && a != unitAxis && hasVar(rows, k.var(a)))
        rowCount = rowCount * k.extent(a);
    Var row = fuseAll(f, rows, f.name() + "_row");
    Var rowGroup("row_group");
    f.split(row, rowGroup, row, unitsPerTask(unitExtent, rowCount),
            TailStrategy::GuardWithIf)
        .parallel(rowGroup);
    f.specialize(unitExtent >= V)
        .vectorize(unit, V, TailStrategy::ShiftInwards);
    f.vectorize(unit, V, TailStrategy::GuardWithIf);
  }
}

} // namespace schedules
} // namespace normc

//===- Schedules.cpp - Choosing a kernel's schedule for its target --------===//
//
// This file implements applySchedule: the one place that maps a target and a
// layout to the schedule file that handles them.
//
//===----------------------------------------------------------------------===//

#include "schedules/KernelStages.h"

namespace normc {
namespace schedules {

void scheduleChannelStagesAtRoot(KernelStages &k, int V) {
  for (Halide::Func f : k.channelFuncs)
    f.compute_root().vectorize(k.c, V, Halide::TailStrategy::GuardWithIf);
  for (Halide::Func f : k.paramFuncs)
    f.compute_root().vectorize(k.c, V, Halide::TailStrategy::GuardWithIf);
  for (Halide::Func f : k.channelOutputs)
    f.vectorize(k.c, V, Halide::TailStrategy::GuardWithIf);
}

Halide::Var fuseAll(Halide::Stage stage, const std::vector<Halide::Var> &vars,
                    const std::string &name) {
  Halide::Var fused = vars.front();
  for (size_t i = 1; i < vars.size(); ++i) {
    Halide::Var next(name + std::to_string(i));
    stage.fuse(fused, vars[i], next);
    fused = next;
  }
  return fused;
}

bool applySchedule(KernelStages &stages, const Halide::Target &target,
                   std::string &error) {
  if (target.has_gpu_feature()) {
    // The GPU schedules name blocks and threads only, so OpenCL gets CUDA's.
    if (!target.has_feature(Halide::Target::CUDA) &&
        !target.has_feature(Halide::Target::OpenCL)) {
      error = "GPU target " + target.to_string() +
              " has no schedules; normc schedules CUDA (host-cuda-...), "
              "OpenCL (host-opencl-cl_doubles) and CPU targets";
      return false;
    }
    if (stages.perChannel())
      scheduleGpuCuda(stages, target);
    else
      scheduleGpuInstance(stages, target);
    return true;
  }
  if (!stages.perChannel())
    scheduleCpuInstance(stages, target);
  else if (stages.channelsLast)
    scheduleCpuChannelsLast(stages, target);
  else
    scheduleCpuPlanar(stages, target);
  return true;
}

} // namespace schedules
} // namespace normc

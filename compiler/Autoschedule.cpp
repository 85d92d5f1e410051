//===- Autoschedule.cpp - Halide's autoschedulers as a baseline -----------===//
//
// Tensors are [s, c, n] (schedules/KernelStages.h), so an estimate of shape
// N x C x D1 x ... becomes s in [0, D1 * ...), c in [0, C), n in [0, N);
// per-channel buffers get c's estimate and 0-D buffers need none.
//
//===----------------------------------------------------------------------===//

#include "compiler/Autoschedule.h"
#include "compiler/Support.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

using namespace normc;

llvm::Expected<std::vector<int64_t>> normc::parseShape(llvm::StringRef text) {
  llvm::SmallVector<llvm::StringRef> parts;
  text.split(parts, 'x');
  std::vector<int64_t> shape;
  for (llvm::StringRef part : parts) {
    int64_t extent;
    if (part.getAsInteger(10, extent) || extent <= 0 || extent > INT32_MAX)
      return makeError("bad shape '" + text +
                       "': expected positive extents N x C x spatial..., "
                       "like 64x64x112x112");
    shape.push_back(extent);
  }
  if (shape.size() < 2)
    return makeError("bad shape '" + text + "': give at least N x C");
  return shape;
}

llvm::Expected<std::string>
normc::autoschedulerPlugin(llvm::StringRef name, llvm::StringRef pluginDir) {
  std::string file = llvm::StringSwitch<std::string>(name)
                         .Case("Adams2019", "libautoschedule_adams2019.so")
                         .Case("Mullapudi2016", "libautoschedule_mullapudi2016.so")
                         .Case("Li2018", "libautoschedule_li2018.so")
                         .Default("");
  if (file.empty())
    return makeError("unknown autoscheduler '" + name +
                     "': Halide 14 has Adams2019, Mullapudi2016 and Li2018");
  llvm::SmallString<256> path(pluginDir);
  llvm::sys::path::append(path, file);
  return path.str().str();
}

llvm::Error normc::loadAutoscheduler(const AutoscheduleOptions &options) {
  if (!llvm::sys::fs::exists(options.plugin))
    return makeError("autoscheduler plugin " + options.plugin +
                     " not found (Halide's plugins come with its package; "
                     "--autoscheduler-plugin names another)");
  try {
    Halide::load_plugin(options.plugin);
  } catch (const Halide::Error &e) {
    return makeError("cannot load " + options.plugin + ": " + e.what());
  }
  return llvm::Error::success();
}

namespace {

/// Estimates for an n-D buffer of the kernel: 3-D tensors [s, c, n],
/// 1-D per-channel vectors [c], 0-D scalars none.
Halide::Region estimateRegion(int dimensions, const std::vector<int64_t> &shape) {
  int64_t spatial = 1;
  for (size_t i = 2; i < shape.size(); ++i)
    spatial *= shape[i];
  auto range = [](int64_t extent) {
    return Halide::Range(0, Halide::Expr(int32_t(extent)));
  };
  if (dimensions == 3)
    return {range(spatial), range(shape[1]), range(shape[0])};
  if (dimensions == 1)
    return {range(shape[1])};
  return {};
}

} // namespace

void normc::autoschedule(KernelAlgorithm &algorithm, Halide::Pipeline &pipeline,
                         const Halide::Target &target,
                         const AutoscheduleOptions &options) {
  for (Halide::ImageParam &image : algorithm.images)
    image.set_estimates(estimateRegion(image.dimensions(), options.shape));
  for (Halide::Func &out : algorithm.outputs)
    out.set_estimates(estimateRegion(out.dimensions(), options.shape));
  // update_stats' count: the values per channel of the estimated tensor.
  int64_t perChannel = options.shape[0];
  for (size_t i = 2; i < options.shape.size(); ++i)
    perChannel *= options.shape[i];
  for (Halide::Internal::Parameter &scalar : algorithm.scalars)
    scalar.set_estimate(Halide::Expr(perChannel));
  Halide::MachineParams machine =
      options.machineParams.empty()
          ? Halide::MachineParams::generic()
          : Halide::MachineParams(options.machineParams);
  pipeline.auto_schedule(options.name, target, machine);
}

//===- ModulePlan.cpp - What a module's library will contain --------------===//
//
// This file implements makeModulePlan (ModulePlan.h). Symbols are looked up
// in one SymbolTable built up front, so planning is linear in the number of
// layers; identical kernels are found by a key of their configuration and
// targets.
//
//===----------------------------------------------------------------------===//

#include "compiler/ModulePlan.h"
#include "compiler/Support.h"
#include "compiler/HostTarget.h"
#include "runtime/include/normrt/module.h"

#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/StringMap.h"

using namespace mlir;
using namespace normc;
using norm::KernelKind;

namespace {


/// Where a target's kernels run, as normrt_layer_desc::device says.
int32_t deviceOf(const Halide::Target &t) {
  if (t.has_feature(Halide::Target::CUDA))
    return NORMRT_DEVICE_CUDA;
  if (t.has_feature(Halide::Target::OpenCL))
    return NORMRT_DEVICE_OPENCL;
  return NORMRT_DEVICE_HOST;
}

/// The instruction set of one variant, for its symbol's suffix.
std::string isaName(const Halide::Target &target) {
  for (auto feature : {Halide::Target::AVX512_SapphireRapids,
                       Halide::Target::AVX512_Cannonlake,
                       Halide::Target::AVX512_Skylake, Halide::Target::AVX512,
                       Halide::Target::AVX2, Halide::Target::AVX,
                       Halide::Target::SSE41}) {
    if (target.has_feature(feature)) {
      std::string name = Halide::Target().with_feature(feature).to_string();
      return name.substr(name.rfind('-') + 1);
    }
  }
  return "baseline";
}

llvm::Expected<PlannedTarget> planTarget(norm::TargetOp op) {
  PlannedTarget planned;
  planned.label = op.sym_name().str();
  planned.targetString = op.target().str();
  for (const std::string &part : norm::splitTargets(op.target())) {
    Halide::Target t(part);
    auto features = requiredCpuFeatures(t);
    if (!features)
      return features.takeError();
    planned.variants.push_back(t);
    planned.cpuFeatures.push_back(*features);
  }
  planned.device = deviceOf(planned.variants.front());
  return planned;
}

} // namespace

Halide::Type normc::halideType(Type type) {
  if (type.isF64())
    return Halide::Float(64);
  if (type.isF16())
    return Halide::Float(16);
  if (type.isBF16())
    return Halide::BFloat(16);
  return Halide::Float(32);
}

int32_t normc::normrtDtype(const Halide::Type &type) {
  if (type == Halide::Float(64))
    return 1; // NORMRT_FLOAT64
  if (type == Halide::Float(16))
    return 2;
  if (type == Halide::BFloat(16))
    return 3;
  return 0; // NORMRT_FLOAT32
}

std::string ModulePlan::variantFunction(const PlannedKernel &kernel,
                                        size_t variant) const {
  const PlannedTarget &target = targets[kernel.target];
  if (target.variants.size() == 1)
    return kernel.function;
  return kernel.function + "__v" + std::to_string(variant) + "_" +
         isaName(target.variants[variant]);
}

llvm::Expected<ModulePlan>
normc::makeModulePlan(ModuleOp module, const std::string &moduleName,
                      const AutoscheduleOptions &autoschedule) {
  ModulePlan plan;
  llvm::StringMap<int> targetIndex;
  for (norm::TargetOp op : module.getOps<norm::TargetOp>()) {
    auto planned = planTarget(op);
    if (!planned)
      return planned.takeError();
    // The baseline (last) of a multi-target list stands for the list.
    const Halide::Target &t = planned->variants.back();
    if (plan.targets.empty()) {
      plan.runtimeTarget = Halide::Target(t.os, t.arch, t.bits);
    } else if (t.os != plan.runtimeTarget.os ||
               t.arch != plan.runtimeTarget.arch ||
               t.bits != plan.runtimeTarget.bits) {
      return makeError("target '" + planned->label + "' (" +
                       planned->targetString +
                       ") has another architecture or OS than the module's "
                       "first target; put it in a spec of its own");
    }
    // The module's one runtime carries the device parts its layers need.
    for (Halide::Target::Feature api :
         {Halide::Target::CUDA, Halide::Target::OpenCL})
      if (t.has_feature(api))
        plan.runtimeTarget = plan.runtimeTarget.with_feature(api);
    targetIndex[planned->label] = plan.targets.size();
    plan.targets.push_back(std::move(*planned));
  }
  if (plan.targets.empty())
    return makeError("the module has no targets");

  SymbolTable symbols(module);
  llvm::StringMap<int> byKey;
  llvm::StringMap<int> layerIndex; // "layer/target" -> plan.layers index
  for (norm::KernelOp kernel : module.getOps<norm::KernelOp>()) {
    auto layer = symbols.lookup<norm::LayerOp>(kernel.layer());
    auto target = targetIndex.find(kernel.target());
    if (!layer || target == targetIndex.end())
      return makeError("kernel '" + kernel.sym_name() +
                       "' refers to a missing layer or target");
    const PlannedTarget &planned = plan.targets[target->second];
    KernelKind kind = *norm::symbolizeKernelKind(kernel.kind());

    KernelConfig config;
    config.kind = kind;
    config.ioType = halideType(layer.dtype());
    config.paramType = parameterType(config.ioType);
    config.plan = layer.getPlan();
    config.affine = layer.affine();
    config.bias = layer.bias();
    config.trackRunning = layer.tracksRunningStats();
    config.countsBatches = layer.getKindInfo()->countsBatches;
    config.activation = layer.getActivationKind();
    config.residual = layer.residual();
    config.eps = layer.eps().convertToDouble();
    if (auto momentum = layer.momentum())
      config.momentum = momentum->convertToDouble();
    else
      config.momentum = llvm::None;

    const Halide::Target &t = planned.variants.front();
    if (config.ioType == Halide::Float(16) &&
        t.has_feature(Halide::Target::OpenCL) &&
        !t.has_feature(Halide::Target::CLHalf))
      return makeError("layer '" + layer.sym_name().str() +
                       "' has dtype f16, which OpenCL target '" +
                       planned.label + "' runs only with the cl_half feature (\"" +
                       t.to_string() + "-cl_half\")");
    std::string key = config.key() + "@" + planned.targetString;
    auto found = byKey.try_emplace(key, plan.kernels.size());
    if (found.second) {
      PlannedKernel kernelPlan;
      kernelPlan.function = moduleName + "__" + kernel.sym_name().str();
      kernelPlan.config = config;
      kernelPlan.target = target->second;
      kernelPlan.autoschedule = autoschedule;
      kernelPlan.roles = kernelSignature(config);
      const int32_t tensorOutputs[] = {NORMRT_ARG_Y, NORMRT_ARG_GRAD_INPUT,
                                       NORMRT_ARG_GRAD_RESIDUAL};
      if (planned.device == NORMRT_DEVICE_HOST)
        for (int32_t role : kernelPlan.roles)
          if ((role & NORMRT_ARG_OUTPUT) &&
              llvm::is_contained(tensorOutputs, role & ~NORMRT_ARG_OUTPUT))
            kernelPlan.streamingBuffers.push_back(
                normrt_arg_role_name(role));
      plan.kernels.push_back(std::move(kernelPlan));
    }
    int index = found.first->second;
    std::string user = (layer.sym_name() + "/" + planned.label).str();
    plan.kernels[index].users.push_back(user);

    auto slot = layerIndex.try_emplace(user, plan.layers.size());
    if (slot.second) {
      PlannedLayer layerPlan;
      layerPlan.op = layer;
      layerPlan.target = target->second;
      plan.layers.push_back(layerPlan);
    }
    plan.layers[slot.first->second].kernel[static_cast<int>(kind)] = index;
  }
  return plan;
}

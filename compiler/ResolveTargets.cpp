//===- ResolveTargets.cpp - `host` becomes the CPU's real target ----------===//
//
// This file implements norm-resolve-targets (Passes.td): each `norm.target`
// string that starts with `host` is rewritten into the Halide target that the
// CPU runs (HostTarget.h), so that every later stage, the layer table and the
// header name the target the kernels were really compiled for.
// Preconditions: the module passed norm-verify.
//
//===----------------------------------------------------------------------===//

#include "compiler/HostTarget.h"
#include "compiler/PassDetail.h"

using namespace mlir;
using namespace normc;

namespace {
struct ResolveTargetsPass : public ResolveTargetsBase<ResolveTargetsPass> {
  ResolveTargetsPass() = default;
  ResolveTargetsPass(StringRef cpu, StringRef changes) {
    hostCpu = cpu.str();
    hostCpuFeatures = changes.str();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    CpuFeatures cpu;
    if (hostCpu.empty() && hostCpuFeatures.empty()) {
      cpu = detectHostCpuFeatures();
    } else {
      auto named = cpuFeaturesOf(hostCpu.empty() ? StringRef("x86-64")
                                                 : StringRef(hostCpu),
                                 hostCpuFeatures);
      if (!named) {
        module.emitError() << llvm::toString(named.takeError());
        return signalPassFailure();
      }
      cpu = std::move(*named);
    }
    for (norm::TargetOp target : module.getOps<norm::TargetOp>()) {
      std::string resolved;
      for (const std::string &part : norm::splitTargets(target.target())) {
        auto one = resolveTarget(part, cpu);
        if (!one) {
          emitError(norm::argumentLoc(target, "target"))
              << llvm::toString(one.takeError());
          return signalPassFailure();
        }
        resolved += (resolved.empty() ? "" : ",") + *one;
      }
      target.targetAttr(StringAttr::get(&getContext(), resolved));
    }
  }
};
} // namespace

std::unique_ptr<Pass> normc::createResolveTargetsPass(StringRef hostCpu,
                                                      StringRef changes) {
  return std::make_unique<ResolveTargetsPass>(hostCpu, changes);
}

//===- Passes.td - Passes over the norm dialect -------------*- tablegen -*-===//
//
// Each pass lives in its own file of the same name; this file is their
// summaries and descriptions, which `normc --help` and the docs show.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_PASSES
#define NORMC_PASSES

include "mlir/Pass/PassBase.td"

def VerifyLayers : Pass<"norm-verify", "mlir::ModuleOp"> {
  let summary = "Check every target and layer and report all errors";
  let description = [{
    Runs each op's verifier (layer kind, num_features >= 1, eps > 0,
    momentum in [0, 1], supported dtype, valid Halide target string) and the
    module-wide rules (layer and target names unique). Unlike MLIR's built-in
    verifier it does not stop at the first failure, so one run of normc
    reports every problem in a spec.
  }];
  let constructor = "::normc::createVerifyLayersPass()";
}

def ResolveTargets : Pass<"norm-resolve-targets", "mlir::ModuleOp"> {
  let summary = "Replace `host` in target strings by the CPU's real target";
  let description = [{
    Rewrites every `norm.target` whose string starts with `host` into the
    Halide target the CPU can run: the x86 features of Halide's ladder
    (sse41, avx, f16c, fma, avx2, avx512, avx512_skylake, avx512_cannonlake,
    avx512_sapphirerapids) are added one by one, and each is kept only when
    every instruction-set extension of the LLVM subtarget it leads to is one
    the CPU has (LLVM's CPUID and XCR0 reading, or the CPU named by the
    options). Features written after `host-` are kept. Other target strings
    are normalized by Halide's parser. Preconditions: the module passed
    norm-verify.
  }];
  let constructor = "::normc::createResolveTargetsPass()";
  let options = [
    Option<"hostCpu", "host-cpu", "std::string", /*default=*/"",
           "Resolve `host` for this LLVM CPU (like znver3) instead of the "
           "CPU normc runs on">,
    Option<"hostCpuFeatures", "host-cpu-features", "std::string",
           /*default=*/"",
           "Feature changes (+name,-name) to the CPU `host` is resolved for">,
  ];
}

def ExpandKernels : Pass<"norm-expand-kernels", "mlir::ModuleOp"> {
  let summary = "Give each layer the kernels it needs on each target";
  let description = [{
    For every `norm.layer` and every `norm.target`, adds `norm.kernel` ops:
    forward_train and backward always; update_stats, forward_eval and
    backward_eval only when the layer tracks running statistics (without them
    PyTorch normalizes with batch statistics in eval mode too, and updates
    nothing). Layers whose kind syncs across processes (SyncBatchNorm) also
    get the split training kernels batch_stats, backward_reduce and
    backward_elemt, and forward_eval (which normalizes with the global
    statistics) whether they track or not. Kernel symbols are
    `<layer>_<target>_<kind>`.
  }];
  let constructor = "::normc::createExpandKernelsPass()";
}

#endif // NORMC_PASSES

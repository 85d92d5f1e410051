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

def ExpandKernels : Pass<"norm-expand-kernels", "mlir::ModuleOp"> {
  let summary = "Give each layer the kernels it needs on each target";
  let description = [{
    For every `norm.layer` and every `norm.target`, adds `norm.kernel` ops:
    forward_train and backward always; update_stats, forward_eval and
    backward_eval only when the layer tracks running statistics (without them
    PyTorch normalizes with batch statistics in eval mode too, and updates
    nothing). Kernel symbols are `<layer>_<target>_<kind>`.
  }];
  let constructor = "::normc::createExpandKernelsPass()";
}

#endif // NORMC_PASSES

//===- NormOps.td - The norm dialect ------------------------*- tablegen -*-===//
//
// The `norm` dialect describes normalization layers as configured in a .norm
// spec (`norm.layer`), the compilation targets they are built for
// (`norm.target`) and, after `norm-expand-kernels`, the kernels each layer
// needs on each target (`norm.kernel`). All three are symbols in the module.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_NORM_OPS
#define NORMC_NORM_OPS

include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"

def Norm_Dialect : Dialect {
  let name = "norm";
  let cppNamespace = "::normc::norm";
  let summary = "Normalization layers, their targets and their kernels";
  let description = [{
    A module of the `norm` dialect is one .norm spec: `norm.target` ops name
    Halide targets, `norm.layer` ops carry one layer's configuration with
    PyTorch's meaning, and `norm.kernel` ops (made by norm-expand-kernels)
    name each kernel that the emitter builds with Halide.
  }];
}

class Norm_Op<string mnemonic, list<Trait> traits = []>
    : Op<Norm_Dialect, mnemonic, traits>;

def Norm_TargetOp : Norm_Op<"target", [Symbol]> {
  let summary = "a compilation target: a label and a Halide target string";
  let description = [{
    ```mlir
    norm.target @cpu "host"
    ```
    The verifier checks the string with Halide's own target parser.
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrAttr:$target);
  let assemblyFormat = "$sym_name $target attr-dict";
  let verifier = [{ return ::normc::norm::verifyTarget(*this); }];
}

def Norm_LayerOp : Norm_Op<"layer", [Symbol]> {
  let summary = "one BatchNorm layer and its configuration";
  let description = [{
    The attributes mirror `torch.nn.BatchNorm{1,2,3}d`. A missing `momentum`
    means `momentum=None` (a cumulative moving average). `dtype` is the type of
    the input and output tensors; weight, bias and statistics use it too for
    f32 and f64, and f32 for f16 and bf16. `layout` names the memory order of
    the tensors in PyTorch's words: NC, NCL, NCHW, NCDHW (the default,
    contiguous) or NLC, NHWC, NDHWC (channels-last).
    ```mlir
    norm.layer @bn {affine = true, dtype = f32, eps = 1.0e-05 : f64,
                    kind = "BatchNorm2d", layout = "NCHW", momentum = 1.0e-01 : f64,
                    num_features = 64 : i64, track_running_stats = true}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrAttr:$kind,
                       I64Attr:$num_features, F64Attr:$eps,
                       OptionalAttr<F64Attr>:$momentum, BoolAttr:$affine,
                       BoolAttr:$track_running_stats, TypeAttr:$dtype,
                       StrAttr:$layout);
  let assemblyFormat = "$sym_name attr-dict";
  let verifier = [{ return ::normc::norm::verifyLayer(*this); }];
  let extraClassDeclaration = [{
    /// 1, 2 or 3 for BatchNorm1d/2d/3d; 0 for an unknown kind.
    int64_t getSpatialRank();
    /// True for NLC, NHWC and NDHWC.
    bool isChannelsLast();
  }];
}

def Norm_KernelOp : Norm_Op<"kernel", [Symbol]> {
  let summary = "one generated kernel of a layer on a target";
  let description = [{
    `kind` is one of forward_train, update_stats, forward_eval, backward,
    backward_eval (the kernel set of docs/design.md).
    ```mlir
    norm.kernel @bn_cpu_forward_train {kind = "forward_train",
                                       layer = @bn, target = @cpu}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrAttr:$kind,
                       FlatSymbolRefAttr:$layer, FlatSymbolRefAttr:$target);
  let assemblyFormat = "$sym_name attr-dict";
  let verifier = [{ return ::normc::norm::verifyKernel(*this); }];
}

#endif // NORMC_NORM_OPS

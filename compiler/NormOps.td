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
  let summary = "one normalization layer and its configuration";
  let description = [{
    The attributes mirror the torch.nn class of `kind` (the kind table,
    normrt/kinds.h). `num_features` is the number of channels (BatchNorm,
    InstanceNorm, GroupNorm's num_channels) or of normalized elements
    (LayerNorm, RMSNorm: the product of `normalized_shape`). A missing
    `momentum` means `momentum=None` (a cumulative moving average); RMSNorm's
    eps=None is resolved to the machine epsilon of `dtype`. `affine` is
    `affine` or `elementwise_affine`; `bias` is LayerNorm's (true elsewhere).
    `dtype` is the type of the tensors; weight, bias and statistics are f64
    for f64 tensors and f32 otherwise. `layout` is the memory order in
    PyTorch's words: NCL, NCHW, NCDHW (contiguous) or NLC, NHWC, NDHWC
    (channels-last), or `contiguous` for kinds of any rank. The epilogue is
    y = activation(norm(x) + residual). A spec layer with lists of dtypes or
    layouts becomes one op per (dtype, layout) form, each with its own
    `sym_name` (the first form's is the spec's name, the others add
    `__<dtype>_<layout>`) and all with `layer_name`, the spec's name, which
    the runtime looks them up by.
    ```mlir
    norm.layer @bn {activation = "none", affine = true, bias = true,
                    dtype = f32, eps = 1.0e-05 : f64, kind = "BatchNorm2d",
                    layout = "NCHW", momentum = 1.0e-01 : f64,
                    num_features = 64 : i64, residual = false,
                    track_running_stats = true}
    ```
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrAttr:$kind,
                       I64Attr:$num_features, OptionalAttr<I64Attr>:$num_groups,
                       OptionalAttr<I64ArrayAttr>:$normalized_shape,
                       F64Attr:$eps, OptionalAttr<F64Attr>:$momentum,
                       BoolAttr:$affine, BoolAttr:$bias,
                       BoolAttr:$track_running_stats, TypeAttr:$dtype,
                       StrAttr:$layout, StrAttr:$activation,
                       BoolAttr:$residual, OptionalAttr<StrAttr>:$layer_name);
  let assemblyFormat = "$sym_name attr-dict";
  let verifier = [{ return ::normc::norm::verifyLayer(*this); }];
  let extraClassDeclaration = [{
    /// The kind's record; null for an unknown kind.
    const ::normrt::kinds::Kind *getKindInfo();
    /// Spatial dimensions after (N, C): 1, 2, 3; -1 for any (GroupNorm with
    /// the contiguous layout); 0 for LayerNorm and RMSNorm.
    int64_t getSpatialRank();
    /// True for NLC, NHWC and NDHWC.
    bool isChannelsLast();
    /// The plan of the batch-statistics kernels.
    ::normrt::kinds::ReductionPlan getPlan();
    ::normrt::kinds::Activation getActivationKind();
    /// Whether the layer keeps running statistics (and has their kernels).
    bool tracksRunningStats();
    /// The layer's name in the spec: `layer_name` for a form of a layer
    /// with several dtypes or layouts, else `sym_name`.
    ::llvm::StringRef getLayerName();
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

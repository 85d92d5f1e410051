//===- NormDialect.cpp - The norm dialect and its verifiers ---------------===//
//
// This file implements the `norm` dialect's registration and the verifiers
// that own the semantic rules of a spec: which layer kinds exist, the ranges
// PyTorch accepts for num_features, eps and momentum, the dtypes normc
// supports, and that target strings parse as Halide targets. Diagnostics point
// at the offending argument when MLIRGen recorded where it was written.
//
//===----------------------------------------------------------------------===//

#include "compiler/NormDialect.h"

#include "Halide.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

#include "llvm/Support/Format.h"

#include <cmath>

/// Numbers in diagnostics as the user wrote them, more or less: 1e-05, 1.5.
static std::string formatNumber(double value) {
  std::string text;
  llvm::raw_string_ostream(text) << llvm::format("%g", value);
  return text;
}

using namespace mlir;
using namespace normc::norm;

#include "compiler/NormOpsDialect.cpp.inc"

void NormDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "compiler/NormOps.cpp.inc"
      >();
}

#define GET_OP_CLASSES
#include "compiler/NormOps.cpp.inc"

Location normc::norm::argumentLoc(Operation *op, StringRef argument) {
  if (auto fused = op->getLoc().dyn_cast<FusedLoc>()) {
    for (Location loc : fused.getLocations())
      if (auto named = loc.dyn_cast<NameLoc>())
        if (named.getName() == argument)
          return named.getChildLoc();
  }
  return op->getLoc();
}

StringRef normc::norm::stringifyKernelKind(KernelKind kind) {
  switch (kind) {
  case KernelKind::ForwardTrain:
    return "forward_train";
  case KernelKind::UpdateStats:
    return "update_stats";
  case KernelKind::ForwardEval:
    return "forward_eval";
  case KernelKind::Backward:
    return "backward";
  case KernelKind::BackwardEval:
    return "backward_eval";
  case KernelKind::BatchStats:
    return "batch_stats";
  case KernelKind::BackwardReduce:
    return "backward_reduce";
  case KernelKind::BackwardElemt:
    return "backward_elemt";
  }
  return "";
}

llvm::Optional<KernelKind> normc::norm::symbolizeKernelKind(StringRef name) {
  for (int i = 0; i < kNumKernelKinds; ++i)
    if (stringifyKernelKind(static_cast<KernelKind>(i)) == name)
      return static_cast<KernelKind>(i);
  return llvm::None;
}

const normrt::kinds::Kind *LayerOp::getKindInfo() {
  return normrt::kinds::findKind(kind().str().c_str());
}

/// The spatial rank a layout names: NCL/NLC 1, NCHW/NHWC 2, NCDHW/NDHWC 3;
/// 0 for `contiguous` and unknown names.
static int64_t layoutRank(StringRef layout) {
  return llvm::StringSwitch<int64_t>(layout)
      .Cases("NCL", "NLC", "NC", 1)
      .Cases("NCHW", "NHWC", 2)
      .Cases("NCDHW", "NDHWC", 3)
      .Default(0);
}

StringRef LayerOp::getLayerName() {
  if (auto name = layer_name())
    return *name;
  return sym_name();
}

int64_t LayerOp::getSpatialRank() {
  const normrt::kinds::Kind *k = getKindInfo();
  if (!k)
    return 0;
  if (k->spatialRank < 0) // GroupNorm: an explicit layout fixes the rank
    return layoutRank(layout()) ? layoutRank(layout()) : -1;
  return k->spatialRank;
}

bool LayerOp::isChannelsLast() {
  StringRef l = layout();
  return l == "NLC" || l == "NHWC" || l == "NDHWC";
}

normrt::kinds::ReductionPlan LayerOp::getPlan() {
  return normrt::kinds::planFor(*getKindInfo(), isChannelsLast(),
                                getSpatialRank());
}

normrt::kinds::Activation LayerOp::getActivationKind() {
  return llvm::StringSwitch<normrt::kinds::Activation>(activation())
      .Case("relu", normrt::kinds::Activation::ReLU)
      .Case("silu", normrt::kinds::Activation::SiLU)
      .Default(normrt::kinds::Activation::None);
}

bool LayerOp::tracksRunningStats() {
  const normrt::kinds::Kind *k = getKindInfo();
  return k && k->runningStats && track_running_stats();
}

/// The layouts of each rank: the contiguous one first, then channels-last.
/// BatchNorm1d also takes (N, C) input, which is the same in both.
static llvm::ArrayRef<llvm::StringLiteral> layoutsForRank(int64_t rank) {
  static const llvm::StringLiteral one[] = {"NCL", "NLC", "NC"};
  static const llvm::StringLiteral two[] = {"NCHW", "NHWC"};
  static const llvm::StringLiteral three[] = {"NCDHW", "NDHWC"};
  if (rank == 1)
    return one;
  if (rank == 3)
    return three;
  return two;
}

SmallVector<std::string> normc::norm::splitTargets(StringRef targets) {
  SmallVector<StringRef> parts;
  targets.split(parts, ',');
  SmallVector<std::string> out;
  for (StringRef part : parts)
    out.push_back(part.trim().str());
  return out;
}

LogicalResult normc::norm::verifyTarget(TargetOp op) {
  SmallVector<StringRef> parts;
  op.target().split(parts, ',');
  for (StringRef part : parts) {
    std::string target = part.trim().str();
    if (!Halide::Target::validate_target_string(target))
      return emitError(argumentLoc(op, "target"))
             << "invalid Halide target string '" << target
             << "' (examples: \"host\", \"x86-64-linux-avx2\", "
                "\"host-cuda-cuda_capability_80\")";
    // Statistics are summed in f64 for f32 and f64 layers.
    Halide::Target t(target);
    if (t.has_feature(Halide::Target::OpenCL) &&
        !t.has_feature(Halide::Target::CLDoubles))
      return emitError(argumentLoc(op, "target"))
             << "OpenCL target '" << target
             << "' needs the cl_doubles feature: normc sums statistics in "
                "f64 (\"host-opencl-cl_doubles\")";
  }
  if (parts.size() == 1)
    return success();
  // Several targets: one library picks the best at run time; the last is
  // the baseline every machine of the architecture can run.
  SmallVector<Halide::Target> targets;
  for (const std::string &t : splitTargets(op.target()))
    targets.push_back(Halide::Target(t));
  for (const Halide::Target &t : targets) {
    if (t.os != targets[0].os || t.arch != targets[0].arch ||
        t.bits != targets[0].bits)
      return emitError(argumentLoc(op, "target"))
             << "the targets of a multi-target list must share one "
                "architecture and OS ('"
             << op.target() << "')";
    if (t.has_gpu_feature())
      return emitError(argumentLoc(op, "target"))
             << "a multi-target list is for CPU variants; give a GPU its own "
                "target label ('"
             << t.to_string() << "')";
  }
  return success();
}

/// "A, B or C" of the kinds' names, for messages.
static std::string kindList() {
  std::string text;
  for (int i = 0; i < normrt::kinds::kNumKinds; ++i) {
    if (i)
      text += i + 1 == normrt::kinds::kNumKinds ? " or " : ", ";
    text += normrt::kinds::kKinds[i].name;
  }
  return text;
}

std::string normc::norm::knownKinds() { return kindList(); }

/// The layout rules of a known kind.
static bool verifyLayout(LayerOp op, const normrt::kinds::Kind &kind) {
  Operation *raw = op.getOperation();
  StringRef layout = op.layout();
  if (kind.trailing) {
    if (layout == "contiguous")
      return true;
    emitError(argumentLoc(raw, "layout"))
        << "layout '" << layout << "' does not fit " << kind.name
        << ", which normalizes the trailing dimensions of contiguous "
           "tensors; expected contiguous";
    return false;
  }
  if (kind.spatialRank < 0) {
    if (layout == "contiguous" || (layoutRank(layout) && layout != "NC"))
      return true;
    emitError(argumentLoc(raw, "layout"))
        << "layout '" << layout << "' does not fit " << kind.name
        << "; expected contiguous (any rank), NCL, NCHW, NCDHW or their "
           "channels-last forms NLC, NHWC, NDHWC";
    return false;
  }
  auto layouts = layoutsForRank(kind.spatialRank);
  if (!llvm::is_contained(layouts, layout) ||
      (layout == "NC" && !kind.batchStats)) {
    emitError(argumentLoc(raw, "layout"))
        << "layout '" << layout << "' does not fit " << kind.name
        << "; expected " << layouts[0] << " (contiguous) or " << layouts[1]
        << " (channels-last)";
    return false;
  }
  return true;
}

LogicalResult normc::norm::verifyLayer(LayerOp op) {
  Operation *raw = op.getOperation();
  const normrt::kinds::Kind *kind = op.getKindInfo();
  if (!kind)
    return emitError(argumentLoc(raw, "kind"))
           << "unknown layer kind '" << op.kind() << "'; expected "
           << kindList();
  bool ok = true;
  int64_t features = op.num_featuresAttr().getInt();
  if (kind->trailing) {
    auto shape = op.normalized_shape();
    if (!shape || shape->empty()) {
      emitError(argumentLoc(raw, "normalized_shape"))
          << "normalized_shape must have at least one dimension";
      ok = false;
    } else {
      int64_t product = 1;
      for (Attribute a : *shape) {
        int64_t d = a.cast<IntegerAttr>().getInt();
        if (d < 1) {
          emitError(argumentLoc(raw, "normalized_shape"))
              << "normalized_shape dimensions must be at least 1, got " << d;
          ok = false;
          break;
        }
        product = d > INT32_MAX / product ? int64_t(INT32_MAX) + 1
                                          : product * d;
      }
      if (ok && product > INT32_MAX) {
        emitError(argumentLoc(raw, "normalized_shape"))
            << "normalized_shape has more than 2147483647 elements";
        ok = false;
      }
    }
  } else if (features < 1) {
    const char *name = kind->grouped ? "num_channels" : "num_features";
    emitError(argumentLoc(raw, name))
        << name << " must be at least 1, got " << features;
    ok = false;
  }
  if (kind->grouped) {
    int64_t groups = op.num_groups() ? int64_t(*op.num_groups()) : 0;
    if (groups < 1) {
      emitError(argumentLoc(raw, "num_groups"))
          << "num_groups must be at least 1, got " << groups;
      ok = false;
    } else if (features >= 1 && features % groups != 0) {
      emitError(argumentLoc(raw, "num_groups"))
          << "num_channels must be divisible by num_groups (" << features
          << " channels in " << groups << " groups)";
      ok = false;
    }
  }
  double eps = op.eps().convertToDouble();
  if (!(eps > 0.0) || !std::isfinite(eps)) {
    emitError(argumentLoc(raw, "eps"))
        << "eps must be a positive finite number, got " << formatNumber(eps);
    ok = false;
  }
  if (auto momentum = op.momentum()) {
    double m = momentum->convertToDouble();
    if (!(m >= 0.0 && m <= 1.0)) {
      emitError(argumentLoc(raw, "momentum"))
          << "momentum must be in [0, 1] or None, got " << formatNumber(m);
      ok = false;
    }
  } else if (kind->runningStats && !kind->countsBatches &&
             op.track_running_stats()) {
    // torch.instance_norm takes a float momentum: None fails in forward.
    emitError(argumentLoc(raw, "momentum"))
        << kind->name
        << " with track_running_stats=true needs a number for momentum "
           "(torch.instance_norm has no cumulative average); got None";
    ok = false;
  }
  Type dtype = op.dtype();
  if (!dtype.isF32() && !dtype.isF64() && !dtype.isF16() && !dtype.isBF16()) {
    emitError(argumentLoc(raw, "dtype"))
        << "dtype " << dtype << " is not supported; expected f32, f64, f16 "
        << "or bf16";
    ok = false;
  }
  ok &= verifyLayout(op, *kind);
  StringRef activation = op.activation();
  if (activation != "none" && activation != "relu" && activation != "silu") {
    emitError(argumentLoc(raw, "activation"))
        << "unknown activation '" << op.activation()
        << "'; expected none, relu or silu";
    ok = false;
  }
  return success(ok);
}

LogicalResult normc::norm::verifyKernel(KernelOp op) {
  // The layer and target it names are checked by norm-verify against one
  // symbol table: a lookup per kernel here would scan the module each time.
  if (!symbolizeKernelKind(op.kind()))
    return op.emitOpError() << "unknown kernel kind '" << op.kind() << "'";
  return success();
}

LogicalResult normc::norm::verifyNameLength(Operation *op) {
  // A layer's forms are checked by the spec's name (their own add a
  // suffix that normc chose).
  auto name = op->getAttrOfType<StringAttr>("layer_name");
  if (!name)
    name = op->getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName());
  if (!name || name.getValue().size() <= kMaxNameLength)
    return success();
  return emitError(argumentLoc(op, "name"))
         << (isa<LayerOp>(op) ? "layer" : "target") << " name '"
         << name.getValue().take_front(16) << "...' is "
         << name.getValue().size() << " characters long; normc allows at most "
         << kMaxNameLength
         << " (names become parts of C symbols and file names)";
}

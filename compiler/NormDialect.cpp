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
  }
  return "";
}

llvm::Optional<KernelKind> normc::norm::symbolizeKernelKind(StringRef name) {
  for (int i = 0; i < kNumKernelKinds; ++i)
    if (stringifyKernelKind(static_cast<KernelKind>(i)) == name)
      return static_cast<KernelKind>(i);
  return llvm::None;
}

int64_t LayerOp::getSpatialRank() {
  return llvm::StringSwitch<int64_t>(kind())
      .Case("BatchNorm1d", 1)
      .Case("BatchNorm2d", 2)
      .Case("BatchNorm3d", 3)
      .Default(0);
}

bool LayerOp::isChannelsLast() {
  StringRef l = layout();
  return l == "NLC" || l == "NHWC" || l == "NDHWC";
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

LogicalResult normc::norm::verifyLayer(LayerOp op) {
  Operation *raw = op.getOperation();
  bool ok = true;
  if (op.getSpatialRank() == 0) {
    emitError(argumentLoc(raw, "kind"))
        << "unknown layer kind '" << op.kind()
        << "'; expected BatchNorm1d, BatchNorm2d or BatchNorm3d";
    ok = false;
  }
  if (op.num_featuresAttr().getInt() < 1) {
    emitError(argumentLoc(raw, "num_features"))
        << "num_features must be at least 1, got " << op.num_featuresAttr().getInt();
    ok = false;
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
  }
  Type dtype = op.dtype();
  if (!dtype.isF32() && !dtype.isF64() && !dtype.isF16() && !dtype.isBF16()) {
    emitError(argumentLoc(raw, "dtype"))
        << "dtype " << dtype << " is not supported; expected f32, f64, f16 "
        << "or bf16";
    ok = false;
  }
  if (int64_t rank = op.getSpatialRank()) {
    auto layouts = layoutsForRank(rank);
    if (!llvm::is_contained(layouts, op.layout())) {
      emitError(argumentLoc(raw, "layout"))
          << "layout '" << op.layout() << "' does not fit " << op.kind()
          << "; expected " << layouts[0] << " (contiguous) or " << layouts[1]
          << " (channels-last)";
      ok = false;
    }
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
  auto name = op->getAttrOfType<StringAttr>(SymbolTable::getSymbolAttrName());
  if (!name || name.getValue().size() <= kMaxNameLength)
    return success();
  return emitError(argumentLoc(op, "name"))
         << (isa<LayerOp>(op) ? "layer" : "target") << " name '"
         << name.getValue().take_front(16) << "...' is "
         << name.getValue().size() << " characters long; normc allows at most "
         << kMaxNameLength
         << " (names become parts of C symbols and file names)";
}

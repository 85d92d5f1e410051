//===- MLIRGen.cpp - From the .norm AST to the norm dialect ---------------===//
//
// This file implements MLIRGen. Each layer's location is a FusedLoc of named
// locations (`layer`, `name`, `kind` and one per argument), so verifiers can
// put the caret under the argument they reject.
//
// BatchNorm's signature, as in torch.nn.BatchNorm*d:
//   (num_features, eps=1e-5, momentum=0.1, affine=True,
//    track_running_stats=True, *, dtype=f32, layout=<contiguous>)
// The default layout is the contiguous one of the kind's rank (NCL for 1d,
// NCHW for 2d, NCDHW for 3d); the verifier checks that an explicit layout
// fits the rank.
//
//===----------------------------------------------------------------------===//

#include "compiler/MLIRGen.h"
#include "compiler/NormDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace normc;
using ASTValue = normc::dsl::Value;

namespace {

/// BatchNorm's parameters in positional order; dtype is keyword-only.
constexpr llvm::StringLiteral kParameters[] = {
    "num_features", "eps",   "momentum", "affine", "track_running_stats",
    "dtype",        "layout"};
constexpr unsigned kNumPositional = 5;

class MLIRGenImpl {
public:
  MLIRGenImpl(MLIRContext &context, const llvm::SourceMgr &sourceMgr)
      : builder(&context), sourceMgr(sourceMgr) {}

  OwningOpRef<ModuleOp> gen(const dsl::SpecFile &spec) {
    module = ModuleOp::create(loc(llvm::SMLoc(), spec.filename));
    builder.setInsertionPointToEnd(module->getBody());
    filename = spec.filename;
    if (spec.targets.empty()) {
      builder.create<norm::TargetOp>(
          NameLoc::get(builder.getStringAttr("implicit target cpu")),
          builder.getStringAttr("cpu"), builder.getStringAttr("host"));
    }
    for (const dsl::TargetDecl &target : spec.targets)
      genTarget(target);
    for (const dsl::LayerDecl &layer : spec.layers)
      genLayer(layer);
    return std::move(module);
  }

private:
  Location loc(llvm::SMLoc where, StringRef file = "") {
    if (!where.isValid())
      return FileLineColLoc::get(builder.getStringAttr(file), 0, 0);
    auto lineCol = sourceMgr.getLineAndColumn(where);
    return FileLineColLoc::get(builder.getStringAttr(filename), lineCol.first,
                               lineCol.second);
  }
  Location named(StringRef name, llvm::SMLoc where) {
    return NameLoc::get(builder.getStringAttr(name), loc(where));
  }
  void error(llvm::SMLoc where, const Twine &message) {
    failed = true;
    emitError(loc(where)) << message.str();
  }

  void genTarget(const dsl::TargetDecl &target) {
    Location where = FusedLoc::get(
        builder.getContext(), {loc(target.loc), named("name", target.labelLoc),
                               named("target", target.stringLoc)});
    builder.create<norm::TargetOp>(where, builder.getStringAttr(target.label),
                                   builder.getStringAttr(target.targetString));
  }

  bool expectKind(const dsl::Argument &arg, StringRef param, bool ok,
                  StringRef expected) {
    if (!ok)
      error(arg.value.loc, "argument '" + param + "' expects " + expected +
                               ", got " + arg.value.kindName() + " '" +
                               arg.value.text + "'");
    return ok;
  }

  void genLayer(const dsl::LayerDecl &layer) {
    // Bind arguments to parameters.
    llvm::StringMap<const dsl::Argument *> bound;
    SmallVector<std::pair<StringRef, const dsl::Argument *>> ordered;
    unsigned position = 0;
    bool ok = true;
    for (const dsl::Argument &arg : layer.args) {
      StringRef param;
      llvm::SMLoc where = arg.isKeyword() ? arg.nameLoc : arg.value.loc;
      if (arg.isKeyword()) {
        param = arg.name;
        if (!llvm::is_contained(kParameters, param)) {
          error(where, "unknown argument '" + param + "' to " + layer.kind +
                           "; expected one of num_features, eps, momentum, "
                           "affine, track_running_stats, dtype, layout");
          ok = false;
          continue;
        }
      } else {
        if (position >= kNumPositional) {
          error(where, layer.kind + " takes at most " +
                           Twine(kNumPositional) +
                           " positional arguments (dtype and layout are "
                           "keyword-only)");
          ok = false;
          continue;
        }
        param = kParameters[position++];
      }
      if (!bound.try_emplace(param, &arg).second) {
        error(where, "argument '" + param + "' given more than once");
        ok = false;
        continue;
      }
      ordered.emplace_back(param, &arg);
    }
    if (!bound.count("num_features") && ok) {
      error(layer.kindLoc,
            layer.kind + " missing required argument 'num_features'");
      ok = false;
    }

    // Defaults are PyTorch's.
    int64_t numFeatures = 1;
    double eps = 1e-5;
    Optional<double> momentum = 0.1;
    bool affine = true, track = true;
    Type dtype = builder.getF32Type();
    std::string layout = llvm::StringSwitch<std::string>(layer.kind)
                             .Case("BatchNorm1d", "NCL")
                             .Case("BatchNorm3d", "NCDHW")
                             .Default("NCHW");
    SmallVector<Location> locs = {loc(layer.loc), named("name", layer.nameLoc),
                                  named("kind", layer.kindLoc)};

    for (auto &entry : ordered) {
      StringRef param = entry.first;
      const dsl::Argument &arg = *entry.second;
      const ASTValue &v = arg.value;
      locs.push_back(named(param, v.loc));
      bool isNumber =
          v.kind == ASTValue::Kind::Integer || v.kind == ASTValue::Kind::Float;
      double number =
          v.kind == ASTValue::Kind::Integer ? double(v.intValue) : v.floatValue;
      if (param == "num_features") {
        ok &= expectKind(arg, param, v.kind == ASTValue::Kind::Integer,
                         "an integer");
        numFeatures = v.intValue;
      } else if (param == "eps") {
        ok &= expectKind(arg, param, isNumber, "a number");
        eps = number;
      } else if (param == "momentum") {
        ok &= expectKind(arg, param, isNumber || v.kind == ASTValue::Kind::None,
                         "a number or None");
        momentum = v.kind == ASTValue::Kind::None ? Optional<double>()
                                               : Optional<double>(number);
      } else if (param == "affine" || param == "track_running_stats") {
        ok &= expectKind(arg, param, v.kind == ASTValue::Kind::Bool,
                         "true or false");
        (param == "affine" ? affine : track) = v.boolValue;
      } else if (param == "dtype") {
        if (!expectKind(arg, param, v.kind == ASTValue::Kind::Identifier,
                        "a dtype name such as f32")) {
          ok = false;
          continue;
        }
        Type parsed = llvm::StringSwitch<Type>(v.text)
                          .Cases("f32", "float32", "float", builder.getF32Type())
                          .Cases("f64", "float64", "double", builder.getF64Type())
                          .Cases("f16", "float16", "half", builder.getF16Type())
                          .Cases("bf16", "bfloat16", builder.getBF16Type())
                          .Default(Type());
        if (!parsed) {
          error(v.loc, "unknown dtype '" + v.text +
                           "'; expected f32, f64, f16 or bf16");
          ok = false;
          continue;
        }
        dtype = parsed;
      } else if (param == "layout") {
        if (!expectKind(arg, param, v.kind == ASTValue::Kind::Identifier,
                        "a layout name such as NCHW or NHWC")) {
          ok = false;
          continue;
        }
        layout = v.text;
      }
    }
    if (!ok)
      return;

    Location where = FusedLoc::get(builder.getContext(), locs);
    builder.create<norm::LayerOp>(
        where, builder.getStringAttr(layer.name),
        builder.getStringAttr(layer.kind), builder.getI64IntegerAttr(numFeatures),
        builder.getF64FloatAttr(eps),
        momentum ? builder.getF64FloatAttr(*momentum) : FloatAttr(),
        builder.getBoolAttr(affine), builder.getBoolAttr(track),
        TypeAttr::get(dtype), builder.getStringAttr(layout));
  }

public:
  bool failed = false;

private:
  OpBuilder builder;
  const llvm::SourceMgr &sourceMgr;
  OwningOpRef<ModuleOp> module;
  std::string filename;
};

} // namespace

OwningOpRef<ModuleOp> normc::mlirGen(MLIRContext &context,
                                     const llvm::SourceMgr &sourceMgr,
                                     const dsl::SpecFile &spec,
                                     bool &hadErrors) {
  context.getOrLoadDialect<norm::NormDialect>();
  MLIRGenImpl gen(context, sourceMgr);
  OwningOpRef<ModuleOp> module = gen.gen(spec);
  hadErrors = gen.failed;
  return module;
}

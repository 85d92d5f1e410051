//===- MLIRGen.cpp - From the .norm AST to the norm dialect ---------------===//
//
// This file implements MLIRGen. Each layer's location is a FusedLoc of named
// locations (`layer`, `name`, `kind` and one per argument), so verifiers can
// put the caret under the argument they reject.
//
// Arguments are bound to the signature of the layer's kind as the kind table
// (normrt/kinds.h) writes it: PyTorch's parameters in positional order with
// their defaults, then the keyword-only dtype, layout, activation and
// residual. The default layout is the contiguous one of the kind's rank
// (NCL for 1d, NCHW for 2d, NCDHW for 3d, `contiguous` for kinds of any
// rank); the verifier checks that an explicit layout fits the kind.
//
// `dtype` and `layout` may be lists: the layer then has one form per
// (dtype, layout) pair, each a norm.layer op of its own (NormOps.td), which
// the runtime picks from by the tensors of a call. Its forms share one
// state, so their parameter dtypes must agree: f64 cannot be listed with
// the others.
//
//===----------------------------------------------------------------------===//

#include "compiler/MLIRGen.h"
#include "compiler/NormDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Diagnostics.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSwitch.h"

using namespace mlir;
using namespace normc;
using ASTValue = normc::dsl::Value;
using normrt::kinds::ParamType;

namespace {

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

  /// The values of one layer's arguments, with the kind's defaults.
  struct LayerValues {
    int64_t numFeatures = 1, numGroups = 0;
    SmallVector<int64_t> normalizedShape;
    Optional<double> eps = 1e-5;
    Optional<double> momentum = 0.1;
    bool affine = true, bias = true, track = true, residual = false;
    Type dtype;
    std::string layout, activation = "none";
    /// dtype=[...] and layout=[...]: every value (empty when not a list).
    SmallVector<Type> dtypes;
    SmallVector<std::string> layouts;
  };

  /// The dtype a name spells, or a null Type.
  Type parseDtype(StringRef text) {
    return llvm::StringSwitch<Type>(text)
        .Cases("f32", "float32", "float", builder.getF32Type())
        .Cases("f64", "float64", "double", builder.getF64Type())
        .Cases("f16", "float16", "half", builder.getF16Type())
        .Cases("bf16", "bfloat16", builder.getBF16Type())
        .Default(Type());
  }

  /// The values of a dtype or layout argument: one identifier, or a list of
  /// distinct identifiers. Reports and returns false otherwise.
  bool identifierList(const dsl::Argument &arg, StringRef param,
                      StringRef expected,
                      SmallVectorImpl<const ASTValue *> &out) {
    const ASTValue &v = arg.value;
    if (v.kind != ASTValue::Kind::List) {
      if (!expectKind(arg, param, v.kind == ASTValue::Kind::Identifier,
                      expected))
        return false;
      out.push_back(&v);
      return true;
    }
    if (v.elements.empty()) {
      error(v.loc, "argument '" + param + "' has an empty list; expected " +
                       expected + " or a list of them");
      return false;
    }
    for (const ASTValue &e : v.elements) {
      if (e.kind != ASTValue::Kind::Identifier) {
        error(e.loc, "argument '" + param + "' expects " + expected +
                         " in its list, got " + e.kindName() + " '" + e.text +
                         "'");
        return false;
      }
      out.push_back(&e);
    }
    return true;
  }

  /// Checks one value against its parameter's type and stores it; reports
  /// and returns false when it does not fit.
  bool bindValue(const normrt::kinds::Parameter &param, const dsl::Argument &arg,
                 LayerValues &out) {
    const ASTValue &v = arg.value;
    StringRef name = param.name;
    bool isNumber =
        v.kind == ASTValue::Kind::Integer || v.kind == ASTValue::Kind::Float;
    double number =
        v.kind == ASTValue::Kind::Integer ? double(v.intValue) : v.floatValue;
    switch (param.type) {
    case ParamType::Integer:
      if (!expectKind(arg, name, v.kind == ASTValue::Kind::Integer,
                      "an integer"))
        return false;
      (name == "num_groups" ? out.numGroups : out.numFeatures) = v.intValue;
      return true;
    case ParamType::Number:
      if (!expectKind(arg, name, isNumber, "a number"))
        return false;
      out.eps = number;
      return true;
    case ParamType::NumberOrNone: {
      if (!expectKind(arg, name, isNumber || v.kind == ASTValue::Kind::None,
                      "a number or None"))
        return false;
      Optional<double> value;
      if (isNumber)
        value = number;
      (name == "eps" ? out.eps : out.momentum) = value;
      return true;
    }
    case ParamType::Bool:
      if (!expectKind(arg, name, v.kind == ASTValue::Kind::Bool,
                      "true or false"))
        return false;
      if (name == "track_running_stats")
        out.track = v.boolValue;
      else if (name == "bias")
        out.bias = v.boolValue;
      else if (name == "residual")
        out.residual = v.boolValue;
      else
        out.affine = v.boolValue;
      return true;
    case ParamType::Shape: {
      bool isList = v.kind == ASTValue::Kind::List;
      bool ok = v.kind == ASTValue::Kind::Integer || isList;
      for (const ASTValue &e : v.elements)
        ok &= e.kind == ASTValue::Kind::Integer;
      if (!expectKind(arg, name, ok, "an integer or a list of integers"))
        return false;
      out.normalizedShape.clear();
      if (!isList)
        out.normalizedShape.push_back(v.intValue);
      for (const ASTValue &e : v.elements)
        out.normalizedShape.push_back(e.intValue);
      return true;
    }
    case ParamType::DType: {
      SmallVector<const ASTValue *> names;
      if (!identifierList(arg, name, "a dtype name such as f32", names))
        return false;
      for (const ASTValue *e : names) {
        Type parsed = parseDtype(e->text);
        if (!parsed) {
          error(e->loc, "unknown dtype '" + e->text +
                            "'; expected f32, f64, f16 or bf16");
          return false;
        }
        if (llvm::is_contained(out.dtypes, parsed)) {
          error(e->loc, "dtype '" + e->text + "' is listed twice");
          return false;
        }
        out.dtypes.push_back(parsed);
      }
      // f64 layers keep f64 parameters and statistics, the others f32.
      bool wide = out.dtypes.front().isF64();
      for (size_t i = 1; i < out.dtypes.size(); ++i)
        if (out.dtypes[i].isF64() != wide) {
          error(names[i]->loc,
                "dtype '" + names[i]->text + "' cannot be listed with '" +
                    names[0]->text +
                    "': a layer's forms share its parameters and statistics, "
                    "which are f64 for f64 and f32 for f32, f16 and bf16; "
                    "declare another layer for it");
          return false;
        }
      out.dtype = out.dtypes.front();
      return true;
    }
    case ParamType::Layout: {
      SmallVector<const ASTValue *> names;
      if (!identifierList(arg, name, "a layout name such as NCHW or NHWC",
                          names))
        return false;
      for (const ASTValue *e : names) {
        if (llvm::is_contained(out.layouts, e->text)) {
          error(e->loc, "layout '" + e->text + "' is listed twice");
          return false;
        }
        out.layouts.push_back(e->text);
      }
      out.layout = out.layouts.front();
      return true;
    }
    case ParamType::Activation:
      if (!expectKind(arg, name,
                      v.kind == ASTValue::Kind::Identifier ||
                          v.kind == ASTValue::Kind::None,
                      "none, relu or silu"))
        return false;
      out.activation = v.kind == ASTValue::Kind::None ? "none" : v.text;
      return true;
    }
    return false;
  }

  void genLayer(const dsl::LayerDecl &layer) {
    const normrt::kinds::Kind *kind =
        normrt::kinds::findKind(layer.kind.c_str());
    if (!kind) {
      error(layer.kindLoc, "unknown layer kind '" + layer.kind +
                               "'; expected " + norm::knownKinds());
      return;
    }
    ArrayRef<normrt::kinds::Parameter> params(kind->params, kind->numParams);
    auto findParam = [&](StringRef name) -> const normrt::kinds::Parameter * {
      for (const normrt::kinds::Parameter &p : params)
        if (name == p.name)
          return &p;
      return nullptr;
    };

    // Bind arguments to parameters.
    llvm::StringMap<const dsl::Argument *> bound;
    SmallVector<std::pair<const normrt::kinds::Parameter *, const dsl::Argument *>>
        ordered;
    int position = 0;
    bool ok = true;
    for (const dsl::Argument &arg : layer.args) {
      const normrt::kinds::Parameter *param;
      llvm::SMLoc where = arg.isKeyword() ? arg.nameLoc : arg.value.loc;
      if (arg.isKeyword()) {
        param = findParam(arg.name);
        if (!param) {
          SmallVector<StringRef> names;
          for (const normrt::kinds::Parameter &p : params)
            names.push_back(p.name);
          error(where, "unknown argument '" + arg.name + "' to " + layer.kind +
                           "; expected one of " + llvm::join(names, ", "));
          ok = false;
          continue;
        }
      } else {
        if (position >= kind->numPositional) {
          SmallVector<StringRef> names;
          for (const normrt::kinds::Parameter &p :
               params.drop_front(kind->numPositional))
            names.push_back(p.name);
          error(where, layer.kind + " takes at most " +
                           Twine(kind->numPositional) +
                           " positional arguments (" +
                           llvm::join(names.begin(), names.end() - 1, ", ") +
                           " and " + names.back() + " are keyword-only)");
          ok = false;
          continue;
        }
        param = &params[position++];
      }
      if (!bound.try_emplace(param->name, &arg).second) {
        error(where, "argument '" + Twine(param->name) + "' given more than once");
        ok = false;
        continue;
      }
      ordered.emplace_back(param, &arg);
    }
    if (ok) {
      for (const normrt::kinds::Parameter &p : params) {
        if (p.defaultValue || p.type == ParamType::Layout || bound.count(p.name))
          continue;
        error(layer.kindLoc,
              layer.kind + " missing required argument '" + p.name + "'");
        ok = false;
      }
    }

    // Defaults are PyTorch's, from the kind table.
    LayerValues values;
    values.dtype = builder.getF32Type();
    for (const normrt::kinds::Parameter &p : params) {
      if (!p.defaultValue)
        continue;
      StringRef text = p.defaultValue;
      if (p.type == ParamType::Bool) {
        bool value = text == "true";
        if (StringRef(p.name) == "track_running_stats")
          values.track = value;
        else if (StringRef(p.name) == "bias")
          values.bias = value;
        else if (StringRef(p.name) == "affine" ||
                 StringRef(p.name) == "elementwise_affine")
          values.affine = value;
      } else if (p.type == ParamType::Number ||
                 p.type == ParamType::NumberOrNone) {
        Optional<double> number;
        double parsed;
        if (text != "None" && !text.getAsDouble(parsed))
          number = parsed;
        (StringRef(p.name) == "eps" ? values.eps : values.momentum) = number;
      }
    }
    switch (kind->spatialRank) {
    case 1:
      values.layout = "NCL";
      break;
    case 2:
      values.layout = "NCHW";
      break;
    case 3:
      values.layout = "NCDHW";
      break;
    default:
      values.layout = "contiguous";
    }
    SmallVector<Location> locs = {loc(layer.loc), named("name", layer.nameLoc),
                                  named("kind", layer.kindLoc)};
    for (auto &entry : ordered) {
      locs.push_back(named(entry.first->name, entry.second->value.loc));
      ok &= bindValue(*entry.first, *entry.second, values);
    }
    if (!ok)
      return;

    if (kind->trailing) {
      values.numFeatures = 1;
      for (int64_t d : values.normalizedShape)
        values.numFeatures =
            d < 1 || values.numFeatures > INT32_MAX ? values.numFeatures
                                                    : values.numFeatures * d;
    }
    if (!kind->runningStats)
      values.track = false;
    if (!kind->hasBias)
      values.bias = false;
    if (values.dtypes.empty())
      values.dtypes.push_back(values.dtype);
    if (values.layouts.empty())
      values.layouts.push_back(values.layout);
    bool forms = values.dtypes.size() * values.layouts.size() > 1;
    Location where = FusedLoc::get(builder.getContext(), locs);
    for (Type dtype : values.dtypes)
      for (const std::string &layout : values.layouts) {
        std::string symbol = layer.name;
        if (forms && (dtype != values.dtypes.front() ||
                      layout != values.layouts.front()))
          symbol += "__" + dtypeName(dtype) + "_" + layout;
        values.dtype = dtype;
        values.layout = layout;
        createLayerOp(where, *kind, layer, symbol, values,
                      forms ? builder.getStringAttr(layer.name) : StringAttr());
      }
  }

  static std::string dtypeName(Type t) {
    return t.isF64() ? "f64" : t.isF16() ? "f16" : t.isBF16() ? "bf16" : "f32";
  }

  /// One norm.layer op: the layer, or one of its forms.
  void createLayerOp(Location where, const normrt::kinds::Kind &kind,
                     const dsl::LayerDecl &layer, StringRef symbol,
                     const LayerValues &values, StringAttr layerName) {
    // RMSNorm's eps=None: the machine epsilon of the input dtype.
    double eps = values.eps
                     ? *values.eps
                     : normrt::kinds::machineEpsilon(
                           values.dtype.getIntOrFloatBitWidth(),
                           values.dtype.isBF16());
    builder.create<norm::LayerOp>(
        where, builder.getStringAttr(symbol),
        builder.getStringAttr(layer.kind),
        builder.getI64IntegerAttr(values.numFeatures),
        kind.grouped ? builder.getI64IntegerAttr(values.numGroups)
                     : IntegerAttr(),
        kind.trailing ? builder.getI64ArrayAttr(values.normalizedShape)
                      : ArrayAttr(),
        builder.getF64FloatAttr(eps),
        values.momentum && kind.runningStats
            ? builder.getF64FloatAttr(*values.momentum)
            : FloatAttr(),
        builder.getBoolAttr(values.affine), builder.getBoolAttr(values.bias),
        builder.getBoolAttr(values.track), TypeAttr::get(values.dtype),
        builder.getStringAttr(values.layout),
        builder.getStringAttr(values.activation),
        builder.getBoolAttr(values.residual), layerName);
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

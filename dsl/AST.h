//===- AST.h - Syntax tree of a .norm spec ----------------------*- C++ -*-===//
//
// This file declares the abstract syntax tree that the parser builds from a
// `.norm` file. The tree is purely syntactic: argument names are not checked
// against BatchNorm's signature and values are not range-checked here; MLIRGen
// maps arguments onto the `norm` dialect and the dialect's verifiers own the
// semantic rules. Every node keeps the llvm::SMLoc of its first character so
// that later stages can point diagnostics back into the source.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_DSL_AST_H
#define NORMC_DSL_AST_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace normc {
namespace dsl {

/// A literal or bare word on the right of `=` in an argument list.
struct Value {
  enum class Kind { Integer, Float, Bool, None, Identifier, String, List };
  Kind kind = Kind::None;
  int64_t intValue = 0;
  double floatValue = 0.0;
  bool boolValue = false;
  std::string text; ///< identifier or string contents, or the literal's spelling
  std::vector<Value> elements; ///< a List's values, `[64, 7, 7]`
  llvm::SMLoc loc;

  /// Human-readable name of the value's kind, for "expected X, got Y" messages.
  llvm::StringRef kindName() const;
};

/// One argument of a layer constructor: positional when `name` is empty.
struct Argument {
  std::string name;
  llvm::SMLoc nameLoc;
  Value value;
  bool isKeyword() const { return !name.empty(); }
};

/// `layer NAME = KIND(ARGS)`.
struct LayerDecl {
  std::string name;
  llvm::SMLoc nameLoc;
  std::string kind;
  llvm::SMLoc kindLoc;
  std::vector<Argument> args;
  llvm::SMLoc loc; ///< the `layer` keyword
};

/// `target LABEL = "halide-target-string"`.
struct TargetDecl {
  std::string label;
  llvm::SMLoc labelLoc;
  std::string targetString;
  llvm::SMLoc stringLoc;
  llvm::SMLoc loc; ///< the `target` keyword
};

/// A whole `.norm` file, declarations in source order.
struct SpecFile {
  std::string filename;
  std::vector<TargetDecl> targets;
  std::vector<LayerDecl> layers;
};

/// Prints the tree in an indented, stable form (`normc --emit=ast`).
/// `lineCol` maps a location to "line:col" text.
void dump(const SpecFile &spec, llvm::raw_ostream &os,
          const std::function<std::string(llvm::SMLoc)> &lineCol);

} // namespace dsl
} // namespace normc

#endif // NORMC_DSL_AST_H

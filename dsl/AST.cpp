//===- AST.cpp - Printing the syntax tree of a .norm spec -----------------===//
//
// This file implements the AST dump behind `normc --emit=ast`. The format is
// meant to be read by people and matched by FileCheck: one node a line,
// children indented by two spaces, locations as `@line:col`.
//
//===----------------------------------------------------------------------===//

#include "dsl/AST.h"

#include "llvm/Support/Format.h"

using namespace normc::dsl;

llvm::StringRef Value::kindName() const {
  switch (kind) {
  case Kind::Integer:
    return "integer";
  case Kind::Float:
    return "float";
  case Kind::Bool:
    return "bool";
  case Kind::None:
    return "None";
  case Kind::Identifier:
    return "identifier";
  case Kind::String:
    return "string";
  case Kind::List:
    return "list";
  }
  return "value";
}

static void printValue(const Value &v, llvm::raw_ostream &os) {
  switch (v.kind) {
  case Value::Kind::Integer:
    os << "Integer " << v.intValue;
    break;
  case Value::Kind::Float:
    os << "Float " << llvm::format("%g", v.floatValue);
    break;
  case Value::Kind::Bool:
    os << "Bool " << (v.boolValue ? "true" : "false");
    break;
  case Value::Kind::None:
    os << "None";
    break;
  case Value::Kind::Identifier:
    os << "Identifier " << v.text;
    break;
  case Value::Kind::String:
    os << "String \"" << v.text << "\"";
    break;
  case Value::Kind::List:
    os << "List [";
    for (size_t i = 0; i < v.elements.size(); ++i) {
      os << (i ? ", " : "");
      printValue(v.elements[i], os);
    }
    os << "]";
    break;
  }
}

void normc::dsl::dump(const SpecFile &spec, llvm::raw_ostream &os,
                      const std::function<std::string(llvm::SMLoc)> &lineCol) {
  os << "Spec " << spec.filename << "\n";
  for (const TargetDecl &t : spec.targets)
    os << "  Target " << t.label << " = \"" << t.targetString << "\" @"
       << lineCol(t.loc) << "\n";
  for (const LayerDecl &l : spec.layers) {
    os << "  Layer " << l.name << " = " << l.kind << " @" << lineCol(l.loc)
       << "\n";
    for (const Argument &a : l.args) {
      os << "    Arg ";
      if (a.isKeyword())
        os << a.name << " = ";
      else
        os << "(positional) ";
      printValue(a.value, os);
      os << " @" << lineCol(a.value.loc) << "\n";
    }
  }
}

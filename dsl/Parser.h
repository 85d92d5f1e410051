//===- Parser.h - Recursive-descent parser for .norm specs ------*- C++ -*-===//
//
// This file declares the parser that turns a `.norm` buffer into a SpecFile.
// No semantic checks or name resolution are performed: which arguments a
// BatchNorm takes, their types and ranges, and duplicate names are checked by
// MLIRGen and the `norm` dialect's verifiers. The parser reports every syntax
// error it finds (it resynchronises at the next `layer` or `target` that
// starts a line). The tree it returns holds every statement that parsed, so
// that the later stages can report their errors in the same run.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_DSL_PARSER_H
#define NORMC_DSL_PARSER_H

#include "dsl/AST.h"
#include "dsl/Lexer.h"

#include <memory>

namespace normc {
namespace dsl {

class Parser {
public:
  Parser(llvm::SourceMgr &sourceMgr, unsigned bufferID);

  /// Parses the whole buffer; never returns null. Check errorCount().
  std::unique_ptr<SpecFile> parseSpec();

  /// Errors reported so far, the lexer's included.
  unsigned errorCount() const { return errors + lexer.errorCount(); }

private:
  bool parseStatement(SpecFile &spec);
  bool parseTarget(SpecFile &spec);
  bool parseLayer(SpecFile &spec);
  bool parseArgument(LayerDecl &layer, bool &sawKeyword);
  bool parseValue(Value &value);
  bool expectEndOfStatement(llvm::StringRef what);

  void consume() { tok = lexer.next(); }
  bool expect(TokenKind kind, llvm::StringRef context);
  bool error(llvm::SMLoc loc, const llvm::Twine &message);
  void recover();

  llvm::SourceMgr &sourceMgr;
  unsigned bufferID;
  Lexer lexer;
  Token tok;
  llvm::SMLoc statementStart;
  unsigned errors = 0;
};

/// Convenience: parse `bufferID` of `sourceMgr`; sets `errorCount` to the
/// number of errors reported.
std::unique_ptr<SpecFile> parseSpec(llvm::SourceMgr &sourceMgr,
                                    unsigned bufferID, unsigned &errorCount);

} // namespace dsl
} // namespace normc

#endif // NORMC_DSL_PARSER_H

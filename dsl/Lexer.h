//===- Lexer.h - Tokens of the .norm language -------------------*- C++ -*-===//
//
// This file declares the lexer for `.norm` specs. It works on one buffer owned
// by an llvm::SourceMgr and reports malformed input (stray bytes, bad numbers,
// unterminated strings) through that SourceMgr, then returns an Error token so
// the parser can resynchronise and keep looking for further errors.
//
// Comments run from `#` to the end of the line and may hold any bytes but NUL;
// everywhere else the input must be printable ASCII or whitespace.
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_DSL_LEXER_H
#define NORMC_DSL_LEXER_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"
#include "llvm/Support/SourceMgr.h"

#include <cstdint>
#include <string>

namespace normc {
namespace dsl {

enum class TokenKind {
  Eof,
  Error,      ///< already diagnosed by the lexer
  Identifier, ///< includes the keywords below before classification
  KwLayer,
  KwTarget,
  KwNone,
  KwTrue,
  KwFalse,
  Integer,
  Float,
  String,
  Equal,
  Comma,
  LParen,
  RParen,
  LBracket,
  RBracket,
  Minus,
};

struct Token {
  TokenKind kind = TokenKind::Eof;
  llvm::StringRef spelling; ///< exact source text
  std::string stringValue;  ///< contents of a String token
  int64_t intValue = 0;
  double floatValue = 0.0;
  bool startsLine = false; ///< first token on its source line
  llvm::SMLoc loc() const { return llvm::SMLoc::getFromPointer(spelling.data()); }
  bool is(TokenKind k) const { return kind == k; }
};

/// Returns the spelling used in "expected X" diagnostics.
llvm::StringRef tokenKindName(TokenKind kind);

/// Describes a token as found, e.g. `'foo'` or `end of file`.
std::string describe(const Token &tok);

class Lexer {
public:
  Lexer(llvm::SourceMgr &sourceMgr, unsigned bufferID);

  /// Lexes and returns the next token. After Eof, keeps returning Eof.
  Token next();

  /// Number of errors the lexer has reported.
  unsigned errorCount() const { return errors; }

private:
  void error(const char *at, const llvm::Twine &message);
  Token make(TokenKind kind, const char *start);
  Token lexNumber(const char *start);
  Token lexString(const char *start);
  void skipWhitespaceAndComments();

  llvm::SourceMgr &sourceMgr;
  const char *cur;
  const char *end;
  bool atLineStart = true;
  unsigned errors = 0;
};

} // namespace dsl
} // namespace normc

#endif // NORMC_DSL_LEXER_H

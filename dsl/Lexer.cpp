//===- Lexer.cpp - Tokens of the .norm language ---------------------------===//
//
// This file implements the `.norm` lexer. Numbers are converted here, so an
// integer that does not fit in 64 bits or a float that overflows double is a
// lexical error with a caret under the literal.
//
//===----------------------------------------------------------------------===//

#include "dsl/Lexer.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/Format.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

using namespace normc::dsl;

llvm::StringRef normc::dsl::tokenKindName(TokenKind kind) {
  switch (kind) {
  case TokenKind::Eof:
    return "end of file";
  case TokenKind::Error:
    return "invalid token";
  case TokenKind::Identifier:
    return "identifier";
  case TokenKind::KwLayer:
    return "'layer'";
  case TokenKind::KwTarget:
    return "'target'";
  case TokenKind::KwNone:
    return "'None'";
  case TokenKind::KwTrue:
    return "'true'";
  case TokenKind::KwFalse:
    return "'false'";
  case TokenKind::Integer:
    return "integer";
  case TokenKind::Float:
    return "float";
  case TokenKind::String:
    return "string";
  case TokenKind::Equal:
    return "'='";
  case TokenKind::Comma:
    return "','";
  case TokenKind::LParen:
    return "'('";
  case TokenKind::RParen:
    return "')'";
  case TokenKind::LBracket:
    return "'['";
  case TokenKind::RBracket:
    return "']'";
  case TokenKind::Minus:
    return "'-'";
  }
  return "token";
}

std::string normc::dsl::describe(const Token &tok) {
  if (tok.is(TokenKind::Eof))
    return "end of file";
  if (tok.is(TokenKind::String))
    return "string " + tok.spelling.str();
  return "'" + tok.spelling.str() + "'";
}

static bool isIdentStart(char c) { return llvm::isAlpha(c) || c == '_'; }
static bool isIdentBody(char c) { return llvm::isAlnum(c) || c == '_'; }

Lexer::Lexer(llvm::SourceMgr &sourceMgr, unsigned bufferID)
    : sourceMgr(sourceMgr) {
  const llvm::MemoryBuffer *buffer = sourceMgr.getMemoryBuffer(bufferID);
  cur = buffer->getBufferStart();
  end = buffer->getBufferEnd();
}

void Lexer::error(const char *at, const llvm::Twine &message) {
  ++errors;
  sourceMgr.PrintMessage(llvm::SMLoc::getFromPointer(at),
                         llvm::SourceMgr::DK_Error, message);
}

Token Lexer::make(TokenKind kind, const char *start) {
  Token tok;
  tok.kind = kind;
  tok.spelling = llvm::StringRef(start, cur - start);
  tok.startsLine = atLineStart;
  atLineStart = false;
  return tok;
}

void Lexer::skipWhitespaceAndComments() {
  while (cur != end) {
    char c = *cur;
    if (c == '\n') {
      atLineStart = true;
      ++cur;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      ++cur;
    } else if (c == '#') {
      // Comments may hold UTF-8 or any other bytes, but a NUL is still a stray
      // byte: it usually means the file is not text at all.
      while (cur != end && *cur != '\n') {
        if (*cur == '\0')
          error(cur, "stray NUL byte in comment");
        ++cur;
      }
    } else {
      return;
    }
  }
}

// number ::= digits ('.' digits?)? exponent? | '.' digits exponent?
// exponent ::= [eE] [+-]? digits
Token Lexer::lexNumber(const char *start) {
  bool isFloat = false;
  while (cur != end && llvm::isDigit(*cur))
    ++cur;
  if (cur != end && *cur == '.') {
    isFloat = true;
    ++cur;
    while (cur != end && llvm::isDigit(*cur))
      ++cur;
  }
  if (cur != end && (*cur == 'e' || *cur == 'E')) {
    const char *expStart = cur;
    ++cur;
    if (cur != end && (*cur == '+' || *cur == '-'))
      ++cur;
    if (cur == end || !llvm::isDigit(*cur)) {
      while (cur != end && isIdentBody(*cur))
        ++cur;
      error(expStart, "malformed exponent in number '" +
                          llvm::StringRef(start, cur - start) + "'");
      return make(TokenKind::Error, start);
    }
    while (cur != end && llvm::isDigit(*cur))
      ++cur;
    isFloat = true;
  }
  if (cur != end && (isIdentStart(*cur) || *cur == '.')) {
    while (cur != end && (isIdentBody(*cur) || *cur == '.'))
      ++cur;
    error(start, "invalid identifier or number '" +
                     llvm::StringRef(start, cur - start) +
                     "': identifiers start with a letter or '_'");
    return make(TokenKind::Error, start);
  }

  Token tok = make(isFloat ? TokenKind::Float : TokenKind::Integer, start);
  std::string text = tok.spelling.str();
  errno = 0;
  char *parsedEnd = nullptr;
  if (isFloat) {
    tok.floatValue = std::strtod(text.c_str(), &parsedEnd);
    if (errno == ERANGE && std::isinf(tok.floatValue)) {
      error(start, "floating-point literal '" + text + "' is out of range");
      tok.kind = TokenKind::Error;
    }
  } else {
    tok.intValue = std::strtoll(text.c_str(), &parsedEnd, 10);
    if (errno == ERANGE) {
      error(start, "integer literal '" + text +
                       "' is too large (at most 9223372036854775807)");
      tok.kind = TokenKind::Error;
    }
  }
  return tok;
}

// string ::= '"' printable-ascii-but-quote* '"'   (no escapes, no newlines)
Token Lexer::lexString(const char *start) {
  ++cur; // opening quote
  bool bad = false;
  while (cur != end && *cur != '"' && *cur != '\n') {
    unsigned char c = static_cast<unsigned char>(*cur);
    if (c < 0x20 || c >= 0x7f) {
      error(cur, "invalid byte 0x" + llvm::utohexstr(c, /*LowerCase=*/true) +
                     " in string literal");
      bad = true;
    }
    ++cur;
  }
  if (cur == end || *cur != '"') {
    error(start, "unterminated string literal");
    return make(TokenKind::Error, start);
  }
  ++cur; // closing quote
  Token tok = make(bad ? TokenKind::Error : TokenKind::String, start);
  tok.stringValue = tok.spelling.drop_front().drop_back().str();
  return tok;
}

Token Lexer::next() {
  skipWhitespaceAndComments();
  const char *start = cur;
  if (cur == end)
    return make(TokenKind::Eof, start);

  char c = *cur;
  if (isIdentStart(c)) {
    while (cur != end && isIdentBody(*cur))
      ++cur;
    Token tok = make(TokenKind::Identifier, start);
    tok.kind = llvm::StringSwitch<TokenKind>(tok.spelling)
                   .Case("layer", TokenKind::KwLayer)
                   .Case("target", TokenKind::KwTarget)
                   .Case("None", TokenKind::KwNone)
                   .Cases("true", "True", TokenKind::KwTrue)
                   .Cases("false", "False", TokenKind::KwFalse)
                   .Default(TokenKind::Identifier);
    return tok;
  }
  if (llvm::isDigit(c) || (c == '.' && cur + 1 != end && llvm::isDigit(cur[1])))
    return lexNumber(start);
  if (c == '"')
    return lexString(start);

  ++cur;
  switch (c) {
  case '=':
    return make(TokenKind::Equal, start);
  case ',':
    return make(TokenKind::Comma, start);
  case '(':
    return make(TokenKind::LParen, start);
  case ')':
    return make(TokenKind::RParen, start);
  case '[':
    return make(TokenKind::LBracket, start);
  case ']':
    return make(TokenKind::RBracket, start);
  case '-':
    return make(TokenKind::Minus, start);
  default:
    break;
  }

  unsigned char byte = static_cast<unsigned char>(c);
  if (byte == 0) {
    error(start, "stray NUL byte in spec");
  } else if (byte >= 0x80) {
    // Swallow the rest of a UTF-8 sequence so one character is one error.
    while (cur != end && (static_cast<unsigned char>(*cur) & 0xC0) == 0x80)
      ++cur;
    error(start, "non-ASCII byte 0x" +
                     llvm::utohexstr(byte, /*LowerCase=*/true) +
                     " in spec (only comments may hold non-ASCII text)");
  } else if (llvm::isPrint(c)) {
    error(start, llvm::Twine("stray character '") + llvm::Twine(c) +
                     "' in spec");
  } else {
    error(start, "stray control byte 0x" +
                     llvm::utohexstr(byte, /*LowerCase=*/true) + " in spec");
  }
  return make(TokenKind::Error, start);
}

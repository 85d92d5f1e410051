//===- Parser.cpp - Recursive-descent parser for .norm specs --------------===//
//
// This file implements the `.norm` grammar, written out above each method and
// in docs/dsl.md. Statements are line oriented: a statement starts a line, and
// anything after its end on the same line is a "trailing tokens" error.
// Argument lists may span lines.
//
//===----------------------------------------------------------------------===//

#include "dsl/Parser.h"

using namespace normc::dsl;

Parser::Parser(llvm::SourceMgr &sourceMgr, unsigned bufferID)
    : sourceMgr(sourceMgr), bufferID(bufferID), lexer(sourceMgr, bufferID) {}

bool Parser::error(llvm::SMLoc loc, const llvm::Twine &message) {
  ++errors;
  sourceMgr.PrintMessage(loc, llvm::SourceMgr::DK_Error, message);
  return false;
}

bool Parser::expect(TokenKind kind, llvm::StringRef context) {
  if (tok.is(kind)) {
    consume();
    return true;
  }
  if (tok.is(TokenKind::Error)) // the lexer has said why already
    return false;
  return error(tok.loc(), "expected " + tokenKindName(kind) + " " + context +
                              ", got " + describe(tok));
}

/// Skips to the next `layer` or `target` keyword that starts a line. The
/// failing statement may have stopped on one already (a missing ')'), which
/// is kept unless the failing statement itself began there.
void Parser::recover() {
  auto atStatement = [&] {
    return tok.startsLine &&
           (tok.is(TokenKind::KwLayer) || tok.is(TokenKind::KwTarget)) &&
           tok.loc() != statementStart;
  };
  while (!tok.is(TokenKind::Eof) && !atStatement())
    consume();
}

std::unique_ptr<SpecFile> Parser::parseSpec() {
  auto spec = std::make_unique<SpecFile>();
  spec->filename =
      sourceMgr.getMemoryBuffer(bufferID)->getBufferIdentifier().str();
  consume();
  // spec ::= statement*
  while (!tok.is(TokenKind::Eof)) {
    if (!parseStatement(*spec))
      recover();
  }
  return spec;
}

// statement ::= target-decl | layer-decl
bool Parser::parseStatement(SpecFile &spec) {
  statementStart = tok.loc();
  if (tok.is(TokenKind::KwTarget))
    return parseTarget(spec);
  if (tok.is(TokenKind::KwLayer))
    return parseLayer(spec);
  if (tok.is(TokenKind::Error))
    return false;
  return error(tok.loc(), "expected 'layer' or 'target' at the start of a "
                          "statement, got " +
                              describe(tok));
}

/// After the last token of a statement, the next token must start a new line.
bool Parser::expectEndOfStatement(llvm::StringRef what) {
  if (tok.is(TokenKind::Eof) || tok.startsLine)
    return true;
  if (tok.is(TokenKind::Error))
    return false;
  return error(tok.loc(), "unexpected " + describe(tok) + " after " + what +
                              "; each statement ends at the end of its line");
}

// target-decl ::= 'target' identifier '=' string
bool Parser::parseTarget(SpecFile &spec) {
  TargetDecl target;
  target.loc = tok.loc();
  consume();
  if (!tok.is(TokenKind::Identifier)) {
    if (tok.is(TokenKind::Error))
      return false;
    return error(tok.loc(), "expected target label after 'target', got " +
                                describe(tok));
  }
  target.label = tok.spelling.str();
  target.labelLoc = tok.loc();
  consume();
  if (!expect(TokenKind::Equal, "after target label"))
    return false;
  if (!tok.is(TokenKind::String)) {
    if (tok.is(TokenKind::Error))
      return false;
    return error(tok.loc(),
                 "expected a quoted Halide target string such as \"host\", "
                 "got " +
                     describe(tok));
  }
  target.targetString = tok.stringValue;
  target.stringLoc = tok.loc();
  consume();
  if (!expectEndOfStatement("target declaration"))
    return false;
  spec.targets.push_back(std::move(target));
  return true;
}

// layer-decl ::= 'layer' identifier '=' identifier '(' arg-list? ')'
// arg-list   ::= argument (',' argument)* ','?
bool Parser::parseLayer(SpecFile &spec) {
  LayerDecl layer;
  layer.loc = tok.loc();
  consume();
  if (!tok.is(TokenKind::Identifier)) {
    if (tok.is(TokenKind::Error))
      return false;
    return error(tok.loc(),
                 "expected layer name after 'layer', got " + describe(tok));
  }
  layer.name = tok.spelling.str();
  layer.nameLoc = tok.loc();
  consume();
  if (!expect(TokenKind::Equal, "after layer name"))
    return false;
  if (!tok.is(TokenKind::Identifier)) {
    if (tok.is(TokenKind::Error))
      return false;
    return error(tok.loc(),
                 "expected layer kind such as BatchNorm2d, got " +
                     describe(tok));
  }
  layer.kind = tok.spelling.str();
  layer.kindLoc = tok.loc();
  consume();
  if (!expect(TokenKind::LParen, "after layer kind"))
    return false;

  bool sawKeyword = false;
  while (!tok.is(TokenKind::RParen)) {
    if (!parseArgument(layer, sawKeyword))
      return false;
    if (tok.is(TokenKind::Comma)) {
      consume();
      continue;
    }
    if (!tok.is(TokenKind::RParen)) {
      if (tok.is(TokenKind::Error))
        return false;
      return error(tok.loc(), "expected ',' or ')' in argument list, got " +
                                  describe(tok));
    }
  }
  consume(); // ')'
  if (!expectEndOfStatement("layer declaration"))
    return false;
  spec.layers.push_back(std::move(layer));
  return true;
}

// argument ::= (identifier '=')? value
bool Parser::parseArgument(LayerDecl &layer, bool &sawKeyword) {
  Argument arg;
  if (tok.is(TokenKind::Identifier)) {
    Token name = tok;
    consume();
    if (tok.is(TokenKind::Equal)) {
      consume();
      arg.name = name.spelling.str();
      arg.nameLoc = name.loc();
      sawKeyword = true;
      if (!parseValue(arg.value))
        return false;
      layer.args.push_back(std::move(arg));
      return true;
    }
    // A bare identifier is a positional value (for example `dtype` values).
    arg.value.kind = Value::Kind::Identifier;
    arg.value.text = name.spelling.str();
    arg.value.loc = name.loc();
  } else if (!parseValue(arg.value)) {
    return false;
  }
  if (sawKeyword)
    return error(arg.value.loc, "positional argument follows keyword argument");
  layer.args.push_back(std::move(arg));
  return true;
}

// value ::= '-'? (integer | float) | 'None' | 'true' | 'false'
//         | identifier | string | list
// list  ::= '[' (value (',' value)* ','?)? ']'     (values other than lists)
bool Parser::parseValue(Value &value) {
  value.loc = tok.loc();
  if (tok.is(TokenKind::LBracket)) {
    const char *start = tok.spelling.data();
    consume();
    value.kind = Value::Kind::List;
    while (!tok.is(TokenKind::RBracket)) {
      if (tok.is(TokenKind::LBracket))
        return error(tok.loc(), "a list holds values, not lists");
      Value element;
      if (!parseValue(element))
        return false;
      value.elements.push_back(std::move(element));
      if (tok.is(TokenKind::Comma)) {
        consume();
        continue;
      }
      if (!tok.is(TokenKind::RBracket)) {
        if (tok.is(TokenKind::Error))
          return false;
        return error(tok.loc(),
                     "expected ',' or ']' in a list, got " + describe(tok));
      }
    }
    value.text = std::string(start, tok.spelling.end());
    consume(); // ']'
    return true;
  }
  bool negative = false;
  if (tok.is(TokenKind::Minus)) {
    negative = true;
    consume();
    if (!tok.is(TokenKind::Integer) && !tok.is(TokenKind::Float)) {
      if (tok.is(TokenKind::Error))
        return false;
      return error(tok.loc(), "expected a number after '-', got " +
                                  describe(tok));
    }
  }
  switch (tok.kind) {
  case TokenKind::Integer:
    value.kind = Value::Kind::Integer;
    value.intValue = negative ? -tok.intValue : tok.intValue;
    break;
  case TokenKind::Float:
    value.kind = Value::Kind::Float;
    value.floatValue = negative ? -tok.floatValue : tok.floatValue;
    break;
  case TokenKind::KwNone:
    value.kind = Value::Kind::None;
    break;
  case TokenKind::KwTrue:
  case TokenKind::KwFalse:
    value.kind = Value::Kind::Bool;
    value.boolValue = tok.is(TokenKind::KwTrue);
    break;
  case TokenKind::Identifier:
    value.kind = Value::Kind::Identifier;
    value.text = tok.spelling.str();
    break;
  case TokenKind::String:
    value.kind = Value::Kind::String;
    value.text = tok.stringValue;
    break;
  case TokenKind::Error:
    return false;
  default:
    return error(tok.loc(), "expected an argument value, got " + describe(tok));
  }
  value.text = value.kind == Value::Kind::String ? value.text
                                                 : tok.spelling.str();
  if (negative)
    value.text = "-" + value.text;
  consume();
  return true;
}

std::unique_ptr<SpecFile> normc::dsl::parseSpec(llvm::SourceMgr &sourceMgr,
                                                unsigned bufferID,
                                                unsigned &errorCount) {
  Parser parser(sourceMgr, bufferID);
  std::unique_ptr<SpecFile> spec = parser.parseSpec();
  errorCount = parser.errorCount();
  return spec;
}

//===- ParserTest.cpp - The .norm lexer and parser ------------------------===//

#include "dsl/Lexer.h"
#include "dsl/Parser.h"

#include "gtest/gtest.h"

#include "llvm/Support/MemoryBuffer.h"

using namespace normc::dsl;

namespace {

struct Parsed {
  llvm::SourceMgr sourceMgr;
  std::string diagnostics;
  std::unique_ptr<SpecFile> spec;
  unsigned errors = 0;
};

std::unique_ptr<Parsed> parse(llvm::StringRef text) {
  auto p = std::make_unique<Parsed>();
  unsigned id = p->sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(text, "test.norm"), llvm::SMLoc());
  Parsed *raw = p.get();
  p->sourceMgr.setDiagHandler(
      [](const llvm::SMDiagnostic &d, void *context) {
        llvm::raw_string_ostream os(static_cast<Parsed *>(context)->diagnostics);
        d.print(nullptr, os, /*ShowColors=*/false);
      },
      raw);
  p->spec = parseSpec(p->sourceMgr, id, p->errors);
  return p;
}

TEST(Lexer, ClassifiesTokens) {
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy(
          "layer x = BatchNorm2d(64, eps=1e-3, momentum=None, affine=True) "
          "\"host\" -",
          "t"),
      llvm::SMLoc());
  Lexer lexer(sm, id);
  std::vector<TokenKind> kinds;
  for (Token t = lexer.next(); !t.is(TokenKind::Eof); t = lexer.next())
    kinds.push_back(t.kind);
  std::vector<TokenKind> want = {
      TokenKind::KwLayer,  TokenKind::Identifier, TokenKind::Equal,
      TokenKind::Identifier, TokenKind::LParen,   TokenKind::Integer,
      TokenKind::Comma,    TokenKind::Identifier, TokenKind::Equal,
      TokenKind::Float,    TokenKind::Comma,      TokenKind::Identifier,
      TokenKind::Equal,    TokenKind::KwNone,     TokenKind::Comma,
      TokenKind::Identifier, TokenKind::Equal,    TokenKind::KwTrue,
      TokenKind::RParen,   TokenKind::String,     TokenKind::Minus};
  EXPECT_EQ(kinds, want);
  EXPECT_EQ(lexer.errorCount(), 0u);
}

TEST(Lexer, ConvertsNumbers) {
  llvm::SourceMgr sm;
  unsigned id = sm.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBufferCopy("9223372036854775807 .5 2.5e-3", "t"),
      llvm::SMLoc());
  Lexer lexer(sm, id);
  EXPECT_EQ(lexer.next().intValue, INT64_MAX);
  EXPECT_DOUBLE_EQ(lexer.next().floatValue, 0.5);
  EXPECT_DOUBLE_EQ(lexer.next().floatValue, 2.5e-3);
}

TEST(Parser, BuildsTheTree) {
  auto p = parse("target cpu = \"host\"\n"
                 "layer a = BatchNorm2d(64)\n"
                 "layer b = BatchNorm1d(512, eps=1e-3,\n"
                 "                      momentum=None)\n");
  ASSERT_EQ(p->errors, 0u) << p->diagnostics;
  ASSERT_EQ(p->spec->targets.size(), 1u);
  EXPECT_EQ(p->spec->targets[0].label, "cpu");
  EXPECT_EQ(p->spec->targets[0].targetString, "host");
  ASSERT_EQ(p->spec->layers.size(), 2u);
  const LayerDecl &b = p->spec->layers[1];
  EXPECT_EQ(b.name, "b");
  EXPECT_EQ(b.kind, "BatchNorm1d");
  ASSERT_EQ(b.args.size(), 3u);
  EXPECT_FALSE(b.args[0].isKeyword());
  EXPECT_EQ(b.args[0].value.intValue, 512);
  EXPECT_EQ(b.args[1].name, "eps");
  EXPECT_EQ(b.args[2].value.kind, Value::Kind::None);
}

TEST(Parser, RecoversAndReportsEveryError) {
  auto p = parse("layer a = BatchNorm2d(3) extra\n"
                 "layer ok = BatchNorm2d(3)\n"
                 "layer = BatchNorm2d(3)\n"
                 "layer c = BatchNorm2d(eps=1, 3)\n"
                 "layer ok2 = BatchNorm2d(4)\n");
  EXPECT_EQ(p->errors, 3u) << p->diagnostics;
  ASSERT_EQ(p->spec->layers.size(), 2u);
  EXPECT_EQ(p->spec->layers[0].name, "ok");
  EXPECT_EQ(p->spec->layers[1].name, "ok2");
  EXPECT_NE(p->diagnostics.find("test.norm:1:26: error:"), std::string::npos);
  EXPECT_NE(p->diagnostics.find("test.norm:4:30: error: positional argument "
                                "follows keyword argument"),
            std::string::npos)
      << p->diagnostics;
}

TEST(Parser, StrayBytesAreErrorsNotCrashes) {
  std::string text = "layer a = BatchNorm2d(3)";
  text.push_back('\0');
  text += "\nlayer b\xff = BatchNorm2d(3)\n";
  auto p = parse(text);
  EXPECT_EQ(p->errors, 2u) << p->diagnostics;
  EXPECT_NE(p->diagnostics.find("stray NUL byte"), std::string::npos);
  EXPECT_NE(p->diagnostics.find("non-ASCII byte 0xff"), std::string::npos);
}

TEST(Parser, EveryPrefixOfASpecIsHandled) {
  // Truncating a valid spec anywhere must give errors, never a crash.
  std::string text = "target cpu = \"host\"\nlayer a = BatchNorm2d(64, eps=1e-3, "
                     "momentum=None, dtype=f64)\n";
  for (size_t n = 0; n <= text.size(); ++n) {
    auto p = parse(text.substr(0, n));
    EXPECT_NE(p->spec, nullptr);
  }
}

} // namespace

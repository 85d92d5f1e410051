//===- HalfConversions.cpp - f16 conversions with the CPU's instructions --===//
//
// This file implements HalfConversions.h. The functions are always inlined.
// They enter Halide's module as weak_odr definitions (LLVM's linker drops
// local and link-once definitions nothing references yet, and Halide only
// calls them after linking); once Halide has optimized the kernel,
// localizeHalfConversions deletes them, or makes them internal should a
// call remain, so that no kernel object exports them.
//
//===----------------------------------------------------------------------===//

#include "compiler/HalfConversions.h"
#include "compiler/Support.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/Triple.h"
#include "llvm/Bitcode/BitcodeWriter.h"
#include "llvm/IR/DerivedTypes.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

using namespace normc;

namespace {

constexpr const char *kHalfToFloat = "normc_half_to_float";
constexpr const char *kFloatToHalf = "normc_float_to_half";
/// The widest vector form: 64 f16 values are two 512-bit registers of f32.
constexpr unsigned kMaxLanes = 64;

llvm::Type *withLanes(llvm::Type *scalar, unsigned lanes) {
  if (lanes == 1)
    return scalar;
  return llvm::FixedVectorType::get(scalar, lanes);
}

/// Defines `name` (with Halide's `xN` suffix when `lanes` > 1) over `lanes`
/// values: f16 bits to f32 when `widen`, f32 to f16 bits otherwise.
void defineConversion(llvm::Module &module, const std::string &name,
                      unsigned lanes, bool widen) {
  llvm::LLVMContext &context = module.getContext();
  llvm::Type *bits = withLanes(llvm::Type::getInt16Ty(context), lanes);
  llvm::Type *half = withLanes(llvm::Type::getHalfTy(context), lanes);
  llvm::Type *single = withLanes(llvm::Type::getFloatTy(context), lanes);
  auto *type = llvm::FunctionType::get(widen ? single : bits,
                                       {widen ? bits : single}, false);
  std::string symbol = lanes == 1 ? name : name + "x" + std::to_string(lanes);
  auto *fn = llvm::Function::Create(type, llvm::Function::WeakODRLinkage,
                                    symbol, module);
  fn->addFnAttr(llvm::Attribute::AlwaysInline);
  fn->addFnAttr(llvm::Attribute::NoUnwind);
  fn->setDoesNotAccessMemory();
  llvm::IRBuilder<> builder(llvm::BasicBlock::Create(context, "entry", fn));
  llvm::Value *arg = fn->getArg(0);
  llvm::Value *result =
      widen ? builder.CreateFPExt(builder.CreateBitCast(arg, half), single)
            : builder.CreateBitCast(builder.CreateFPTrunc(arg, half), bits);
  builder.CreateRet(result);
}

bool isConversion(const llvm::Function &fn) {
  llvm::StringRef name = fn.getName();
  return name.startswith(kHalfToFloat) || name.startswith(kFloatToHalf);
}

/// The bitcode of the conversions for `target`'s triple and data layout
/// (LLVM's linker warns when they differ from the kernel's).
std::vector<uint8_t> conversionBitcode(const Halide::Target &target) {
  llvm::LLVMContext context;
  llvm::Module module("normc_half_conversions", context);
  initializeLLVMTargets();
  llvm::Triple triple = Halide::Internal::get_triple_for_target(target);
  std::string error;
  if (const llvm::Target *backend =
          llvm::TargetRegistry::lookupTarget(triple.str(), error)) {
    std::unique_ptr<llvm::TargetMachine> machine(backend->createTargetMachine(
        triple.str(), "generic", "", llvm::TargetOptions(), llvm::None));
    if (machine) {
      module.setTargetTriple(triple.str());
      module.setDataLayout(machine->createDataLayout());
    }
  }
  for (unsigned lanes = 1; lanes <= kMaxLanes; lanes *= 2) {
    defineConversion(module, kHalfToFloat, lanes, /*widen=*/true);
    defineConversion(module, kFloatToHalf, lanes, /*widen=*/false);
  }
  llvm::SmallVector<char, 0> buffer;
  llvm::raw_svector_ostream os(buffer);
  llvm::WriteBitcodeToFile(module, os);
  return std::vector<uint8_t>(buffer.begin(), buffer.end());
}

} // namespace

bool normc::hasHardwareHalfConversions(const Halide::Target &target) {
  using T = Halide::Target;
  if (target.arch != T::X86 || target.has_gpu_feature())
    return false;
  // Halide gives every AVX2 target F16C (complete_x86_target).
  for (auto feature : {T::F16C, T::AVX2, T::AVX512, T::AVX512_KNL,
                       T::AVX512_Skylake, T::AVX512_Cannonlake,
                       T::AVX512_SapphireRapids})
    if (target.has_feature(feature))
      return true;
  return false;
}

Halide::Expr normc::halfBitsToFloat(Halide::Expr bits) {
  return Halide::Internal::Call::make(Halide::Float(32), kHalfToFloat,
                                      {std::move(bits)},
                                      Halide::Internal::Call::PureExtern);
}

Halide::Expr normc::floatToHalfBits(Halide::Expr value) {
  return Halide::Internal::Call::make(Halide::UInt(16), kFloatToHalf,
                                      {std::move(value)},
                                      Halide::Internal::Call::PureExtern);
}

Halide::Expr normc::roundToHalfBits(Halide::Expr value) {
  using namespace Halide;
  Expr bits = reinterpret(UInt(32), std::move(value));
  Expr sign = cast(UInt(16), (bits >> 16) & 0x8000);
  Expr a = bits & 0x7fffffff; // |value|
  // NaN: quiet, with the top 9 bits of the payload.
  Expr nan = cast(UInt(16), 0x7e00 | ((a >> 13) & 0x1ff));
  // Normal results: rebias the exponent (127 - 15 = 112) and round the 23
  // mantissa bits to 10, ties to even; a carry into the exponent is right.
  Expr normal =
      cast(UInt(16), (a - 0x38000000 + 0xfff + ((a >> 13) & 1)) >> 13);
  // Below 2^-14: the significand with its leading one, shifted to units of
  // 2^-24 (the smallest subnormal), ties to even; 25 places or more leave
  // nothing, f32 subnormals included.
  Expr exponent = cast(Int(32), a >> 23);
  // (Clamped below too, so that no lane shifts by more than 31.)
  Expr shift = cast(UInt(32), clamp(126 - exponent, 14, 25));
  Expr significand = (a & 0x7fffff) | 0x800000;
  Expr belowHalf = (cast(UInt(32), 1) << (shift - 1)) - 1;
  Expr subnormal =
      cast(UInt(16),
           (significand + belowHalf + ((significand >> shift) & 1)) >> shift);
  Expr magnitude = select(a > 0x7f800000, nan,
                          // 65520 and above round to infinity
                          a >= 0x477ff000, cast(UInt(16), 0x7c00),
                          a >= 0x38800000, normal, subnormal);
  return sign | magnitude;
}

Halide::ExternalCode normc::halfConversionCode(const Halide::Target &target) {
  return Halide::ExternalCode::bitcode_wrapper(
      target, conversionBitcode(target), "normc_half_conversions");
}

void normc::localizeHalfConversions(llvm::Module &module) {
  for (llvm::Function &fn : llvm::make_early_inc_range(module)) {
    if (fn.isDeclaration() || !isConversion(fn))
      continue;
    if (fn.use_empty())
      fn.eraseFromParent();
    else
      fn.setLinkage(llvm::GlobalValue::InternalLinkage);
  }
}

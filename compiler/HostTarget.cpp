//===- HostTarget.cpp - Halide targets true to the CPU they run on --------===//
//
// This file implements host resolution (HostTarget.h). What a Halide target
// needs of a CPU is read from Halide itself: a trivial pipeline compiled for
// the target to LLVM IR carries the LLVM CPU and attributes Halide chose
// (module flags halide_mcpu and halide_mattrs), and LLVM's subtarget for them
// tells which instruction-set extensions the code may use. Nothing here is a
// hand-written copy of Halide's or LLVM's feature tables, so the answers stay
// true to the Halide and LLVM normc is built with.
//
//===----------------------------------------------------------------------===//

#include "compiler/HostTarget.h"
#include "compiler/Support.h"
#include "runtime/include/normrt/cpu_features.h"

#include "Halide.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/Host.h"
#include "llvm/Support/TargetSelect.h"

#include <map>
#include <memory>
#include <mutex>

using namespace normc;

namespace {


/// Halide's x86 instruction-set features, weakest first: host resolution
/// tries to add each in turn.
const Halide::Target::Feature kX86Ladder[] = {
    Halide::Target::SSE41,          Halide::Target::AVX,
    Halide::Target::F16C,           Halide::Target::FMA,
    Halide::Target::AVX2,           Halide::Target::AVX512,
    Halide::Target::AVX512_Skylake, Halide::Target::AVX512_Cannonlake,
    Halide::Target::AVX512_SapphireRapids};

/// Every Halide feature that changes the x86 code Halide asks LLVM for.
bool isX86IsaFeature(Halide::Target::Feature f) {
  return llvm::is_contained(kX86Ladder, f) || f == Halide::Target::FMA4 ||
         f == Halide::Target::AVX512_KNL;
}

const llvm::Target *x86Backend(const std::string &triple) {
  initializeLLVMTargets();
  std::string error;
  return llvm::TargetRegistry::lookupTarget(triple, error);
}

/// The checked features LLVM's subtarget (`cpu`, `attrs`) enables.
llvm::Expected<std::vector<std::string>>
subtargetFeatures(const std::string &triple, llvm::StringRef cpu,
                  llvm::StringRef attrs) {
  const llvm::Target *backend = x86Backend(triple);
  if (!backend)
    return makeError("this normc has no LLVM backend for " + triple);
  // Checked first: LLVM warns on stderr about a CPU it does not know.
  std::unique_ptr<llvm::MCSubtargetInfo> generic(
      backend->createMCSubtargetInfo(triple, "", ""));
  if (!generic || !generic->isCPUStringValid(cpu))
    return makeError("LLVM does not know the CPU '" + cpu + "'");
  std::unique_ptr<llvm::MCSubtargetInfo> sti(
      backend->createMCSubtargetInfo(triple, cpu, attrs));
  std::vector<std::string> features;
  for (const std::string &name : checkedCpuFeatures())
    if (sti->checkFeatures("+" + name))
      features.push_back(name);
  return features;
}

} // namespace

const std::vector<std::string> &normc::checkedCpuFeatures() {
  static const std::vector<std::string> names = {
#define NORMC_FEATURE_NAME(name, leaf, subleaf, reg, bit, xcr0) name,
      NORMRT_X86_FEATURES(NORMC_FEATURE_NAME)
#undef NORMC_FEATURE_NAME
  };
  return names;
}

CpuFeatures normc::detectHostCpuFeatures() {
  CpuFeatures features;
  llvm::sys::getHostCPUFeatures(features);
  for (const std::string &name : checkedCpuFeatures())
    features.try_emplace(name, false);
  return features;
}

llvm::Expected<CpuFeatures> normc::cpuFeaturesOf(llvm::StringRef cpu,
                                                 llvm::StringRef changes) {
  auto present = subtargetFeatures("x86_64-unknown-linux-gnu", cpu, "");
  if (!present)
    return present.takeError();
  CpuFeatures features;
  for (const std::string &name : checkedCpuFeatures())
    features[name] = llvm::is_contained(*present, name);
  llvm::SmallVector<llvm::StringRef> parts;
  changes.split(parts, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef part : parts) {
    part = part.trim();
    llvm::StringRef name = part.drop_front();
    if ((!part.startswith("+") && !part.startswith("-")) ||
        !llvm::is_contained(checkedCpuFeatures(), name.str()))
      return makeError("bad CPU feature change '" + part +
                       "': expected +name or -name with a name from "
                       "normrt/cpu_features.h");
    features[name] = part.startswith("+");
  }
  return features;
}

llvm::Expected<std::vector<std::string>>
normc::requiredCpuFeatures(const Halide::Target &target) {
  if (target.arch != Halide::Target::X86)
    return std::vector<std::string>();
  // Only the instruction-set features decide the LLVM subtarget.
  Halide::Target isa(target.os, target.arch, target.bits);
  for (Halide::Target::Feature f : kX86Ladder)
    if (target.has_feature(f))
      isa = isa.with_feature(f);
  for (Halide::Target::Feature f :
       {Halide::Target::FMA4, Halide::Target::AVX512_KNL})
    if (target.has_feature(f))
      isa = isa.with_feature(f);

  static std::mutex mutex;
  static std::map<std::string, std::vector<std::string>> cache;
  std::string key = isa.to_string();
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto found = cache.find(key);
    if (found != cache.end())
      return found->second;
  }
  std::string cpu, attrs, triple;
  try {
    Halide::Func probe("normc_isa_probe");
    Halide::Var x;
    probe(x) = x;
    Halide::Module module = probe.compile_to_module(
        {}, "normc_isa_probe", isa.with_feature(Halide::Target::NoRuntime));
    llvm::LLVMContext context;
    std::unique_ptr<llvm::Module> ir =
        Halide::compile_module_to_llvm_module(module, context);
    auto flag = [&](const char *name) {
      auto *text =
          llvm::dyn_cast_or_null<llvm::MDString>(ir->getModuleFlag(name));
      return text ? text->getString().str() : std::string();
    };
    cpu = flag("halide_mcpu");
    attrs = flag("halide_mattrs");
    triple = ir->getTargetTriple();
  } catch (const Halide::Error &e) {
    return makeError("Halide cannot compile for " + key + ": " + e.what());
  }
  auto features = subtargetFeatures(triple, cpu, attrs);
  if (!features)
    return features.takeError();
  std::lock_guard<std::mutex> lock(mutex);
  cache[key] = *features;
  return *features;
}

std::vector<std::string>
normc::missingCpuFeatures(const std::vector<std::string> &required,
                          const CpuFeatures &cpu) {
  std::vector<std::string> missing;
  for (const std::string &name : required) {
    auto found = cpu.find(name);
    if (found == cpu.end() || !found->second)
      missing.push_back(name);
  }
  return missing;
}

llvm::Expected<std::string> normc::resolveTarget(llvm::StringRef target,
                                                 const CpuFeatures &cpu) {
  std::string text = target.trim().str();
  if (!Halide::Target::validate_target_string(text))
    return makeError("invalid Halide target string '" + text + "'");
  llvm::StringRef rest;
  llvm::StringRef first;
  std::tie(first, rest) = llvm::StringRef(text).split('-');
  if (first != "host")
    return Halide::Target(text).to_string();
  Halide::Target halideHost = Halide::get_host_target();
  if (halideHost.arch != Halide::Target::X86)
    return Halide::Target(text).to_string();

  // Halide's host target without its instruction-set guesses, then each x86
  // feature whose code the CPU runs.
  Halide::Target resolved = halideHost;
  for (int f = 0; f < Halide::Target::FeatureEnd; ++f)
    if (isX86IsaFeature(Halide::Target::Feature(f)))
      resolved = resolved.without_feature(Halide::Target::Feature(f));
  for (Halide::Target::Feature f : kX86Ladder) {
    Halide::Target candidate = resolved.with_feature(f);
    auto required = requiredCpuFeatures(candidate);
    if (!required)
      return required.takeError();
    if (missingCpuFeatures(*required, cpu).empty())
      resolved = candidate;
  }
  if (rest.empty())
    return resolved.to_string();
  std::string full = resolved.to_string() + "-" + rest.str();
  if (!Halide::Target::validate_target_string(full))
    return makeError("invalid Halide target string '" + text + "'");
  return Halide::Target(full).to_string();
}

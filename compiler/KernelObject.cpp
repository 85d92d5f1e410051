//===- KernelObject.cpp - A Halide kernel through LLVM to an object -------===//
//
// This file implements lowerKernelToLLVM and writeKernelObject
// (KernelObject.h). Halide records the target it generated code for as
// module flags (halide_mcpu, halide_mattrs, halide_use_pic, ...); the
// TargetMachine here is made from them, with the floating-point options
// Halide's own object writer would use, so that an object is what Halide
// would have written plus normc's passes.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelObject.h"
#include "compiler/HalfConversions.h"
#include "compiler/StreamingStores.h"
#include "compiler/Support.h"

#include "llvm/IR/Constants.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/IR/PassInstrumentation.h"
#include "llvm/Linker/Linker.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/Transforms/Utils/Cloning.h"

using namespace normc;

namespace {

std::string stringFlag(const llvm::Module &module, llvm::StringRef name) {
  if (auto *s = llvm::dyn_cast_or_null<llvm::MDString>(module.getModuleFlag(name)))
    return s->getString().str();
  return "";
}

bool boolFlag(const llvm::Module &module, llvm::StringRef name, bool dflt) {
  if (auto *c = llvm::mdconst::dyn_extract_or_null<llvm::ConstantInt>(
          module.getModuleFlag(name)))
    return !c->isZero();
  return dflt;
}

/// Renames every symbol the kernel exports, `function...` to
/// `function_streaming...`.
void renameToStreaming(llvm::Module &module, const std::string &function) {
  for (llvm::GlobalValue &value : module.global_values()) {
    if (value.isDeclaration() || value.hasLocalLinkage())
      continue;
    llvm::StringRef name = value.getName();
    if (name.startswith(function))
      value.setName(function + kStreamingSuffix +
                    name.drop_front(function.size()));
  }
}

} // namespace

llvm::Expected<std::unique_ptr<llvm::Module>>
normc::lowerKernelToLLVM(const Halide::Module &kernel,
                         const std::string &function,
                         llvm::ArrayRef<std::string> streamingBuffers,
                         llvm::LLVMContext &context) {
  std::unique_ptr<llvm::Module> module;
  try {
    module = Halide::compile_module_to_llvm_module(kernel, context);
  } catch (const Halide::Error &e) {
    return makeError("Halide failed to compile " + function + ": " + e.what());
  }
  localizeHalfConversions(*module);
  if (streamingBuffers.empty())
    return std::move(module);

  std::unique_ptr<llvm::Module> streaming = llvm::CloneModule(*module);
  renameToStreaming(*streaming, function);
  llvm::ModuleAnalysisManager analyses;
  analyses.registerPass([] { return llvm::PassInstrumentationAnalysis(); });
  llvm::ModulePassManager passes;
  passes.addPass(StreamingStoresPass(
      std::vector<std::string>(streamingBuffers.begin(), streamingBuffers.end())));
  passes.run(*streaming, analyses);
  if (llvm::Linker::linkModules(*module, std::move(streaming)))
    return makeError("cannot link the streaming variant of " + function);
  return std::move(module);
}

llvm::Error normc::writeKernelObject(llvm::Module &module,
                                     const std::string &path) {
  initializeLLVMTargets();
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(module.getTargetTriple(), error);
  if (!target)
    return makeError("no LLVM backend for " + module.getTargetTriple() + ": " +
                     error);

  // The options Halide's object writer derives from the same flags.
  bool perInstructionFastMath =
      boolFlag(module, "halide_per_instruction_fast_math_flags", false);
  llvm::TargetOptions options;
  options.AllowFPOpFusion = perInstructionFastMath ? llvm::FPOpFusion::Strict
                                                   : llvm::FPOpFusion::Fast;
  options.UnsafeFPMath = !perInstructionFastMath;
  options.NoInfsFPMath = !perInstructionFastMath;
  options.NoNaNsFPMath = !perInstructionFastMath;
  options.HonorSignDependentRoundingFPMathOption = !perInstructionFastMath;
  options.NoZerosInBSS = false;
  options.GuaranteedTailCallOpt = false;
  options.FunctionSections = true;
  options.UseInitArray = true;
  options.FloatABIType =
      boolFlag(module, "halide_use_soft_float_abi", false)
          ? llvm::FloatABI::Soft
          : llvm::FloatABI::Hard;
  options.RelaxELFRelocations = false;
  options.MCOptions.ABIName = stringFlag(module, "halide_mabi");

  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      module.getTargetTriple(), stringFlag(module, "halide_mcpu"),
      stringFlag(module, "halide_mattrs"), options,
      boolFlag(module, "halide_use_pic", true) ? llvm::Reloc::PIC_
                                               : llvm::Reloc::Static,
      boolFlag(module, "halide_use_large_code_model", false)
          ? llvm::CodeModel::Large
          : llvm::CodeModel::Small,
      llvm::CodeGenOpt::Aggressive));
  if (!machine)
    return makeError("no LLVM target machine for " + module.getTargetTriple());
  module.setDataLayout(machine->createDataLayout());

  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return makeError("cannot write '" + path + "': " + ec.message());
  llvm::legacy::PassManager passes;
  if (machine->addPassesToEmitFile(passes, out, nullptr,
                                   llvm::CGFT_ObjectFile))
    return makeError("LLVM cannot emit an object for " +
                     module.getTargetTriple());
  passes.run(module);
  out.close();
  if (out.has_error())
    return makeError("cannot write '" + path + "': " + out.error().message());
  return llvm::Error::success();
}

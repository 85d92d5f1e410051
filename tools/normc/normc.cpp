//===- normc.cpp - The normc compiler driver ------------------------------===//
//
// This file implements `normc`, the driver: it reads a .norm spec, parses it
// (dsl/), builds the `norm` dialect (MLIRGen), runs the pass pipeline
// (norm-verify, norm-expand-kernels), and emits the Halide kernels as an
// ahead-of-time library. `--emit=STAGE` stops after any stage and prints it.
//
// Exit codes: 0 success, 1 errors in the spec, 2 usage or I/O errors,
// 3 failures while generating code.
//
//===----------------------------------------------------------------------===//

#include "compiler/Emitter.h"
#include "compiler/MLIRGen.h"
#include "compiler/NormDialect.h"
#include "compiler/Passes.h"
#include "dsl/Parser.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"

using namespace normc;
namespace cl = llvm::cl;

namespace {
enum class Emit { AST, MLIR, Kernels, Stmt, Header, Lib };

enum ExitCode { kOk = 0, kSpecError = 1, kUsageError = 2, kCodegenError = 3 };

cl::OptionCategory normcCategory("normc options");

cl::opt<std::string> inputFilename(cl::Positional, cl::desc("<spec.norm>"),
                                   cl::Required, cl::cat(normcCategory));
cl::opt<std::string> outputDir("o", cl::desc("Output directory for --emit=lib"),
                               cl::value_desc("dir"), cl::init("."),
                               cl::cat(normcCategory));
cl::opt<std::string>
    moduleNameOpt("module",
                  cl::desc("Module name (default: the spec's file stem)"),
                  cl::value_desc("name"), cl::cat(normcCategory));
cl::opt<Emit> emitAction(
    "emit", cl::desc("Stage to stop after and print or write"),
    cl::init(Emit::Lib),
    cl::values(clEnumValN(Emit::AST, "ast", "the parsed syntax tree"),
               clEnumValN(Emit::MLIR, "mlir",
                          "the norm dialect after verification"),
               clEnumValN(Emit::Kernels, "kernels",
                          "the norm dialect after norm-expand-kernels"),
               clEnumValN(Emit::Stmt, "stmt",
                          "Halide's lowered statement of every kernel"),
               clEnumValN(Emit::Header, "header", "the generated C header"),
               clEnumValN(Emit::Lib, "lib",
                          "write <module>.a and <module>.h (default)")),
    cl::cat(normcCategory));
cl::opt<bool> sharedLib("shared",
                        cl::desc("Also write lib<module>.so with the normrt "
                                 "runtime inside, for FFI users"),
                        cl::cat(normcCategory));
cl::opt<std::string>
    runtimeLib("runtime-lib",
               cl::desc("The normrt static library that --shared links in "
                        "(default: found beside normc)"),
               cl::value_desc("path"), cl::cat(normcCategory));

cl::opt<std::string> autoscheduler(
    "autoschedule",
    cl::desc("Schedule every kernel with one of Halide's autoschedulers "
             "(Adams2019, Mullapudi2016, Li2018) instead of normc's own "
             "schedules: a baseline for normc-bench; needs --estimate"),
    cl::value_desc("name"), cl::cat(normcCategory));
cl::opt<std::string> estimate(
    "estimate",
    cl::desc("The tensor shape an autoscheduler plans for, N x C x spatial "
             "extents (like 64x64x112x112)"),
    cl::value_desc("shape"), cl::cat(normcCategory));
cl::opt<std::string> machineParams(
    "machine-params",
    cl::desc("Halide MachineParams for the autoscheduler: parallelism,"
             "last-level cache bytes,balance (default: Halide's generic)"),
    cl::value_desc("P,LLC,B"), cl::cat(normcCategory));
cl::opt<std::string> autoschedulerPluginOpt(
    "autoscheduler-plugin",
    cl::desc("The plugin library that registers the autoscheduler (default: "
             "Halide's, found where normc was built against)"),
    cl::value_desc("path"), cl::cat(normcCategory));

llvm::Error usageError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// The autoscheduler options from the command line, or an error for a
/// usage mistake.
llvm::Expected<AutoscheduleOptions> autoscheduleOptions() {
  AutoscheduleOptions options;
  if (autoscheduler.empty()) {
    if (!estimate.empty() || !machineParams.empty() ||
        !autoschedulerPluginOpt.empty())
      return usageError("--estimate, --machine-params and "
                        "--autoscheduler-plugin only apply with --autoschedule");
    return options;
  }
  options.name = autoscheduler;
  if (estimate.empty())
    return usageError("--autoschedule=" + autoscheduler +
                      " needs --estimate=NxCx...: the tensor shape to plan for");
  auto shape = parseShape(estimate);
  if (!shape)
    return shape.takeError();
  options.shape = *shape;
  if (!machineParams.empty()) {
    llvm::SmallVector<llvm::StringRef> parts;
    llvm::StringRef(machineParams).split(parts, ',');
    double value;
    if (parts.size() != 3 ||
        llvm::any_of(parts, [&](llvm::StringRef p) {
          return p.trim().getAsDouble(value) || value <= 0;
        }))
      return usageError("bad --machine-params '" + machineParams +
                        "': expected parallelism,cache bytes,balance (like "
                        "16,16777216,40)");
    options.machineParams = machineParams;
  }
  if (!autoschedulerPluginOpt.empty()) {
    options.plugin = autoschedulerPluginOpt;
  } else {
    auto plugin = autoschedulerPlugin(options.name, NORMC_HALIDE_PLUGIN_DIR);
    if (!plugin)
      return plugin.takeError();
    options.plugin = *plugin;
  }
  return options;
}

/// A C identifier made from `name`.
std::string sanitizeModuleName(llvm::StringRef name) {
  std::string out;
  for (char c : name)
    out += llvm::isAlnum(c) || c == '_' ? c : '_';
  if (out.empty() || llvm::isDigit(out[0]))
    out = "_" + out;
  return out;
}

/// libnormrt.a in the build tree (tools/normc/../../runtime) or an install
/// prefix (bin/../lib).
std::string findRuntimeLib(const char *argv0) {
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&findRuntimeLib));
  llvm::SmallString<256> dir(llvm::sys::path::parent_path(exe));
  for (const char *relative :
       {"../../runtime/libnormrt.a", "../lib/libnormrt.a", "libnormrt.a"}) {
    llvm::SmallString<256> candidate(dir);
    llvm::sys::path::append(candidate, relative);
    llvm::sys::path::remove_dots(candidate, /*remove_dot_dot=*/true);
    if (llvm::sys::fs::exists(candidate))
      return candidate.str().str();
  }
  return "";
}

int reportError(llvm::Error error, int code) {
  llvm::WithColor::error(llvm::errs(), "normc") << llvm::toString(std::move(error)) << "\n";
  return code;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  registerNormPasses();
  cl::HideUnrelatedOptions({&normcCategory, &cl::getGeneralCategory()});
  cl::ParseCommandLineOptions(
      argc, argv,
      "normc: ahead-of-time compiler for normalization layers\n\n"
      "  normc SPEC.norm -o DIR      writes DIR/<module>.a and DIR/<module>.h\n"
      "  normc SPEC.norm --emit=mlir prints a stage (ast, mlir, kernels, "
      "stmt, header)\n");

  auto autoschedule = autoscheduleOptions();
  if (!autoschedule)
    return reportError(autoschedule.takeError(), kUsageError);

  auto file = llvm::MemoryBuffer::getFileOrSTDIN(inputFilename);
  if (std::error_code ec = file.getError()) {
    llvm::WithColor::error(llvm::errs(), "normc")
        << "cannot read '" << inputFilename << "': " << ec.message() << "\n";
    return kUsageError;
  }
  llvm::SourceMgr sourceMgr;
  unsigned bufferID = sourceMgr.AddNewSourceBuffer(std::move(*file), llvm::SMLoc());

  // Syntax errors do not stop the front end: the statements that parsed still
  // go through MLIRGen and verification, so one run reports every error.
  unsigned syntaxErrors = 0;
  std::unique_ptr<dsl::SpecFile> spec =
      dsl::parseSpec(sourceMgr, bufferID, syntaxErrors);
  if (emitAction == Emit::AST) {
    if (syntaxErrors)
      return kSpecError;
    dsl::dump(*spec, llvm::outs(), [&](llvm::SMLoc loc) {
      auto lc = sourceMgr.getLineAndColumn(loc, bufferID);
      return std::to_string(lc.first) + ":" + std::to_string(lc.second);
    });
    return kOk;
  }

  mlir::MLIRContext context;
  context.getOrLoadDialect<norm::NormDialect>();
  mlir::SourceMgrDiagnosticHandler diagnostics(sourceMgr, &context);

  bool argumentErrors = false;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlirGen(context, sourceMgr, *spec, argumentErrors);

  mlir::PassManager verify(&context);
  mlir::applyPassManagerCLOptions(verify);
  verify.addPass(createVerifyLayersPass());
  if (mlir::failed(verify.run(*module)) || syntaxErrors || argumentErrors)
    return kSpecError;
  if (emitAction == Emit::MLIR) {
    module->print(llvm::outs());
    llvm::outs() << "\n";
    return kOk;
  }

  mlir::PassManager lower(&context);
  mlir::applyPassManagerCLOptions(lower);
  lower.addPass(createExpandKernelsPass());
  lower.addPass(createVerifyLayersPass());
  if (mlir::failed(lower.run(*module)))
    return kCodegenError;
  if (emitAction == Emit::Kernels) {
    module->print(llvm::outs());
    llvm::outs() << "\n";
    return kOk;
  }

  EmitOptions options;
  options.specFilename = inputFilename;
  options.moduleName = sanitizeModuleName(
      moduleNameOpt.empty() ? llvm::sys::path::stem(inputFilename)
                            : llvm::StringRef(moduleNameOpt));
  options.outputDir = outputDir;
  options.shared = sharedLib;
  options.autoschedule = *autoschedule;
  options.runtimeLib = runtimeLib.empty() ? findRuntimeLib(argv[0])
                                          : std::string(runtimeLib);

  switch (emitAction) {
  case Emit::Stmt:
    if (llvm::Error error = emitStmt(*module, options, llvm::outs()))
      return reportError(std::move(error), kCodegenError);
    return kOk;
  case Emit::Header:
    if (llvm::Error error = emitHeader(*module, options, llvm::outs()))
      return reportError(std::move(error), kCodegenError);
    return kOk;
  default:
    if (llvm::Error error = emitLibrary(*module, options))
      return reportError(std::move(error), kCodegenError);
    return kOk;
  }
}

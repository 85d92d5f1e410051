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
#include "compiler/KernelCache.h"
#include "compiler/MLIRGen.h"
#include "compiler/NormDialect.h"
#include "compiler/Passes.h"
#include "dsl/Parser.h"

#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Pass/PassManager.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/WithColor.h"

using namespace normc;
namespace cl = llvm::cl;

namespace {
enum class Emit { AST, MLIR, Kernels, Stmt, LLVM, Header, Lib };

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
               clEnumValN(Emit::LLVM, "llvm",
                          "the LLVM IR of every kernel after normc's "
                          "passes (with its streaming variant)"),
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

cl::opt<bool> printTarget(
    "print-target",
    cl::desc("Print each target label's resolved Halide target and exit"),
    cl::cat(normcCategory));
cl::opt<std::string> hostCpu(
    "host-cpu",
    cl::desc("Resolve `host` for this LLVM CPU (like znver3 or "
             "sapphirerapids) instead of the CPU normc runs on"),
    cl::value_desc("cpu"), cl::cat(normcCategory));
cl::opt<std::string> hostCpuFeatures(
    "host-cpu-features",
    cl::desc("Changes to the CPU features `host` is resolved for "
             "(+avx512f,-avx2)"),
    cl::value_desc("+f,-f"), cl::cat(normcCategory));
cl::opt<std::string> cacheDirOpt(
    "cache-dir",
    cl::desc("Kernel cache directory (default: $NORMC_CACHE_DIR, "
             "$XDG_CACHE_HOME/normc or ~/.cache/normc)"),
    cl::value_desc("dir"), cl::cat(normcCategory));
cl::opt<bool> noCache("no-cache",
                      cl::desc("Compile every kernel; read and write no cache"),
                      cl::cat(normcCategory));
cl::opt<unsigned> jobsOpt("j",
                          cl::desc("Kernels compiled at once (default: one "
                                   "per core)"),
                          cl::value_desc("N"), cl::init(0), cl::Prefix,
                          cl::cat(normcCategory));
cl::opt<bool> quiet("quiet", cl::desc("Show no progress"),
                    cl::cat(normcCategory));
cl::opt<bool> progressOpt(
    "progress",
    cl::desc("Show progress even when stderr is not a terminal"),
    cl::cat(normcCategory));

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

/// Module names become C symbol prefixes and file names.
constexpr size_t kMaxModuleName = 64;

/// Checks that `name` can prefix C symbols, or says why not.
llvm::Error checkModuleName(llvm::StringRef name) {
  auto bad = [&](const llvm::Twine &why) {
    return usageError("module name '" + name + "' " + why);
  };
  if (name.empty())
    return bad("is empty");
  if (llvm::isDigit(name[0]) ||
      llvm::any_of(name, [](char c) { return !llvm::isAlnum(c) && c != '_'; }))
    return bad("is not a C identifier (letters, digits and '_', not starting "
               "with a digit)");
  if (name.size() > kMaxModuleName)
    return bad("is longer than " + llvm::Twine(kMaxModuleName) +
               " characters");
  return llvm::Error::success();
}

/// The module name a spec's file name gives: its stem, with every character
/// that cannot be in a C identifier written as '_' (and '_' before a leading
/// digit).
std::string moduleNameFromStem(llvm::StringRef stem) {
  std::string out;
  for (char c : stem)
    out += llvm::isAlnum(c) || c == '_' ? c : '_';
  if (out.empty() || llvm::isDigit(out[0]))
    out = "_" + out;
  return out;
}

/// libnormrt.a beside an installed normc (bin/../lib), else the one of the
/// build tree normc was built in.
std::string findRuntimeLib(const char *argv0) {
  std::string exe = llvm::sys::fs::getMainExecutable(
      argv0, reinterpret_cast<void *>(&findRuntimeLib));
  llvm::SmallString<256> installed(llvm::sys::path::parent_path(exe));
  llvm::sys::path::append(installed, NORMC_INSTALLED_RUNTIME_LIB);
  llvm::sys::path::remove_dots(installed, /*remove_dot_dot=*/true);
  if (llvm::sys::fs::exists(installed))
    return installed.str().str();
  if (llvm::sys::fs::exists(NORMC_BUILD_RUNTIME_LIB))
    return NORMC_BUILD_RUNTIME_LIB;
  return "";
}

void printVersion(llvm::raw_ostream &os) {
  os << "normc " << NORMC_VERSION << "\n  Halide " << NORMC_HALIDE_VERSION
     << "\n  LLVM " << LLVM_VERSION_STRING << " (MLIR "
     << LLVM_VERSION_STRING << ")\n";
}

int reportError(llvm::Error error, int code) {
  llvm::WithColor::error(llvm::errs(), "normc") << llvm::toString(std::move(error)) << "\n";
  return code;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  // MLIR's options (--print-ir-after-all, --mlir-print-debuginfo, ...) work
  // but stay out of --help, which lists normc's own.
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  mlir::registerPassManagerCLOptions();
  registerNormPasses();
  cl::HideUnrelatedOptions(normcCategory);
  cl::SetVersionPrinter(printVersion);
  if (!cl::ParseCommandLineOptions(
          argc, argv,
          "normc: ahead-of-time compiler for normalization layers\n\n"
          "  normc SPEC.norm -o DIR      writes DIR/<module>.a and "
          "DIR/<module>.h\n"
          "  normc SPEC.norm --emit=mlir prints a stage (ast, mlir, kernels, "
          "stmt, llvm, header)\n\n"
          "Exit codes: 1 errors in the spec, 2 usage or I/O errors, 3 code "
          "generation failures.\n",
          &llvm::errs()))
    return kUsageError;

  auto autoschedule = autoscheduleOptions();
  if (!autoschedule)
    return reportError(autoschedule.takeError(), kUsageError);
  bool writesFiles = emitAction == Emit::Lib && !printTarget;
  if (!writesFiles && (outputDir.getNumOccurrences() || sharedLib ||
                       runtimeLib.getNumOccurrences()))
    return reportError(usageError("-o, --shared and --runtime-lib only apply "
                                  "when normc writes a library (--emit=lib)"),
                       kUsageError);
  if (!sharedLib && runtimeLib.getNumOccurrences())
    return reportError(usageError("--runtime-lib only applies with --shared"),
                       kUsageError);
  if (noCache && cacheDirOpt.getNumOccurrences())
    return reportError(usageError("--cache-dir and --no-cache exclude each "
                                  "other"),
                       kUsageError);

  // Everything a compile needs is checked before it starts.
  // An explicit --module is used as written or rejected; a name taken from
  // the file name is made an identifier, and normc says so when it writes
  // files under it.
  std::string stem = llvm::sys::path::stem(inputFilename).str();
  std::string moduleName = moduleNameOpt.empty() ? moduleNameFromStem(stem)
                                                 : std::string(moduleNameOpt);
  if (emitAction >= Emit::Stmt && !printTarget)
    if (llvm::Error error = checkModuleName(moduleName))
      return reportError(std::move(error), kUsageError);
  if (writesFiles && moduleNameOpt.empty() && moduleName != stem)
    llvm::WithColor::note(llvm::errs(), "normc")
        << "module name '" << moduleName << "' from the file name '"
        << llvm::sys::path::filename(inputFilename)
        << "' (--module names it otherwise)\n";
  std::string runtime;
  if (writesFiles && sharedLib) {
    runtime = runtimeLib.empty() ? findRuntimeLib(argv[0])
                                 : std::string(runtimeLib);
    if (runtime.empty())
      return reportError(usageError("--shared needs the normrt static library "
                                    "(libnormrt.a), which is not beside this "
                                    "normc; pass it with --runtime-lib"),
                         kUsageError);
    if (!llvm::sys::fs::is_regular_file(runtime))
      return reportError(usageError("cannot read the normrt library '" +
                                    runtime + "' (--runtime-lib)"),
                         kUsageError);
  }
  // A failed compile leaves no trace: not even the output directory, when
  // normc created it.
  bool createdOutputDir = writesFiles && !llvm::sys::fs::exists(outputDir);
  if (writesFiles)
    if (llvm::Error error = checkOutputDirectory(outputDir))
      return reportError(std::move(error), kUsageError);
  auto removeCreatedDir = llvm::make_scope_exit([&] {
    if (createdOutputDir)
      llvm::sys::fs::remove(outputDir); // only when still empty
  });

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
  if (emitAction == Emit::MLIR && !printTarget) {
    module->print(llvm::outs());
    llvm::outs() << "\n";
    return kOk;
  }

  mlir::PassManager resolve(&context);
  mlir::applyPassManagerCLOptions(resolve);
  resolve.addPass(createResolveTargetsPass(hostCpu, hostCpuFeatures));
  if (mlir::failed(resolve.run(*module)))
    return kUsageError;
  if (printTarget) {
    for (norm::TargetOp target : module->getOps<norm::TargetOp>())
      llvm::outs() << target.sym_name() << ": " << target.target() << "\n";
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
  options.moduleName = moduleName;
  options.outputDir = outputDir;
  options.shared = sharedLib;
  options.autoschedule = *autoschedule;
  options.runtimeLib = runtime;
  options.cacheDir = noCache ? std::string()
                     : cacheDirOpt.empty() ? defaultKernelCacheDir()
                                           : std::string(cacheDirOpt);
  options.jobs = jobsOpt;
  options.progress = quiet         ? ProgressMode::Never
                     : progressOpt ? ProgressMode::Always
                     : llvm::sys::Process::StandardErrIsDisplayed()
                         ? ProgressMode::Auto
                         : ProgressMode::Never;

  switch (emitAction) {
  case Emit::Stmt:
  case Emit::LLVM:
    if (llvm::Error error = emitKernelText(
            *module, options,
            emitAction == Emit::Stmt ? KernelText::Stmt : KernelText::LLVM,
            llvm::outs()))
      return reportError(std::move(error), kCodegenError);
    return kOk;
  case Emit::Header:
    if (llvm::Error error = emitHeader(*module, options, llvm::outs()))
      return reportError(std::move(error), kCodegenError);
    return kOk;
  default:
    if (llvm::Error error = emitLibrary(*module, options))
      return reportError(std::move(error), kCodegenError);
    removeCreatedDir.release();
    return kOk;
  }
}

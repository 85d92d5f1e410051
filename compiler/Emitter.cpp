//===- Emitter.cpp - From norm.kernel ops to an AOT library ---------------===//
//
// This file implements the emitter's driver. It plans the module
// (ModulePlan.h), compiles every kernel variant with Halide into an object
// file (in parallel, on all cores, and through the kernel cache when one is
// given), compiles one standalone Halide runtime for all targets, writes the
// layer table (LayerTable.cpp) and the header (ModuleHeader.cpp), and
// archives the objects with LLVM's archive writer.
//
// Outputs appear whole or not at all: everything is written under temporary
// names in the output directory and renamed into place at the end; on
// failure, or when the process is interrupted, the temporaries are removed.
//
//===----------------------------------------------------------------------===//

#include "compiler/Emitter.h"
#include "compiler/Support.h"
#include "compiler/KernelCache.h"
#include "compiler/HalfConversions.h"
#include "compiler/KernelObject.h"
#include "compiler/ModuleFiles.h"
#include "compiler/ModulePlan.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Object/ArchiveWriter.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Process.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/Signals.h"
#include "llvm/Support/ThreadPool.h"
#include "llvm/Support/Threading.h"
#include "llvm/Support/ToolOutputFile.h"

#include <atomic>
#include <chrono>
#include <mutex>

using namespace mlir;
using namespace normc;

namespace {


/// Every kernel is compiled without a runtime of its own (the module has one)
/// and takes Halide's user context: the runtime passes the calling layer.
Halide::Target kernelTarget(const Halide::Target &target) {
  return target.with_feature(Halide::Target::NoRuntime)
      .with_feature(Halide::Target::UserContext);
}

/// Builds, schedules and lowers one kernel for one target into a Halide
/// module named `function`. Halide errors are thrown as Halide::Error.
Halide::Module lowerKernel(const PlannedKernel &kernel,
                           const Halide::Target &target,
                           const std::string &function) {
  KernelConfig targetConfig = kernel.config;
  targetConfig.bfloatAsBits = target.has_gpu_feature();
  targetConfig.f64ConstantsAsBits = target.has_feature(Halide::Target::OpenCL);
  if (!target.has_gpu_feature() && kernel.config.ioType == Halide::Float(16))
    targetConfig.halfConversion = hasHardwareHalfConversions(target)
                                      ? HalfConversion::Hardware
                                      : HalfConversion::Integer;
  KernelAlgorithm algorithm = buildKernelAlgorithm(targetConfig);
  Halide::Pipeline pipeline(algorithm.outputs);
  if (kernel.autoschedule.enabled()) {
    autoschedule(algorithm, pipeline, target, kernel.autoschedule);
  } else {
    std::string error;
    if (!schedules::applySchedule(algorithm.stages, target, error))
      throw Halide::CompileError(function + ": " + error);
  }
  Halide::Module module = pipeline.compile_to_module(
      algorithm.inputs, function, kernelTarget(target));
  if (targetConfig.halfConversion == HalfConversion::Hardware)
    module.append(halfConversionCode(kernelTarget(target)));
  return module;
}

/// The LLVM module of one kernel variant, with its streaming copy where the
/// kernel has one.
llvm::Expected<std::unique_ptr<llvm::Module>>
lowerToLLVM(const PlannedKernel &kernel, const Halide::Target &target,
            const std::string &function, llvm::LLVMContext &context) {
  try {
    return lowerKernelToLLVM(lowerKernel(kernel, target, function), function,
                             kernel.streamingBuffers, context);
  } catch (const Halide::Error &e) {
    return makeError("Halide failed to compile " + function + ": " + e.what());
  }
}

/// Everything that decides the object code of one kernel variant.
std::string variantKey(const PlannedKernel &kernel,
                       const Halide::Target &target,
                       const std::string &function) {
  std::string key = function + "|" + kernel.config.key() + "|" +
                    kernelTarget(target).to_string() + "|streaming=" +
                    llvm::join(kernel.streamingBuffers, ",");
  const AutoscheduleOptions &a = kernel.autoschedule;
  if (a.enabled()) {
    key += "|autoschedule=" + a.name + "," + a.plugin + "," + a.machineParams;
    for (int64_t extent : a.shape)
      key += "x" + std::to_string(extent);
  }
  return key;
}

/// One object file to make: a kernel compiled for one variant.
struct CompileJob {
  const PlannedKernel *kernel;
  size_t variant;
  std::string function;
  std::string object; ///< where it goes
};

/// Shows `[3/12] stem_bn forward_train (cpu)` lines on stderr once a compile
/// has run for a couple of seconds, when enabled.
class Progress {
public:
  Progress(ProgressMode mode, size_t total) : mode(mode), total(total) {}

  void done(const ModulePlan &plan, const CompileJob &job, bool cached) {
    size_t index = ++finished;
    if (mode == ProgressMode::Never ||
        (mode == ProgressMode::Auto &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(2)))
      return;
    const PlannedKernel &k = *job.kernel;
    const PlannedTarget &t = plan.targets[k.target];
    std::lock_guard<std::mutex> lock(mutex);
    llvm::errs() << "[" << index << "/" << total << "] "
                 << llvm::StringRef(k.users.front()).split('/').first << " "
                 << norm::stringifyKernelKind(k.config.kind) << " ("
                 << t.label;
    if (t.variants.size() > 1)
      llvm::errs() << ", " << t.variants[job.variant].to_string();
    llvm::errs() << ")" << (cached ? " cached" : "") << "\n";
  }

private:
  ProgressMode mode;
  size_t total;
  std::atomic<size_t> finished{0};
  std::mutex mutex;
  std::chrono::steady_clock::time_point start =
      std::chrono::steady_clock::now();
};

/// Compiles one job's object, or takes it from the cache.
llvm::Error runJob(const ModulePlan &plan, const CompileJob &job,
                   const KernelCache *cache, bool &cached) {
  const PlannedKernel &kernel = *job.kernel;
  const Halide::Target &target =
      plan.targets[kernel.target].variants[job.variant];
  cached = false;
  std::string key;
  if (cache) {
    key = variantKey(kernel, target, job.function);
    std::string entry = cache->lookup(key);
    if (!entry.empty() && !llvm::sys::fs::copy_file(entry, job.object)) {
      cached = true;
      return llvm::Error::success();
    }
  }
  llvm::LLVMContext context;
  auto module = lowerToLLVM(kernel, target, job.function, context);
  if (!module)
    return module.takeError();
  if (llvm::Error error = writeKernelObject(**module, job.object))
    return error;
  if (cache)
    llvm::consumeError(cache->store(key, job.object)); // a cache is optional
  return llvm::Error::success();
}

/// Files that exist only until the emitter finishes: removed on failure, on
/// SIGINT/SIGTERM (through LLVM's signal handlers), and when done. Scratch
/// objects are single files in the temporary directory, so that a signal
/// leaves nothing behind.
class Temporaries {
public:
  Temporaries() = default;
  Temporaries(const Temporaries &) = delete;
  ~Temporaries() {
    for (const std::string &file : files) {
      llvm::sys::fs::remove(file);
      llvm::sys::DontRemoveFileOnSignal(file);
    }
  }
  /// A new scratch file in the temporary directory.
  llvm::Expected<std::string> scratch(llvm::StringRef prefix,
                                      llvm::StringRef suffix) {
    llvm::SmallString<256> path;
    std::lock_guard<std::mutex> lock(mutex);
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile(prefix, suffix, path))
      return makeError("cannot create a temporary file: " + ec.message());
    llvm::sys::RemoveFileOnSignal(path);
    files.push_back(path.str().str());
    return files.back();
  }
  /// Registers `file` (to be written) for removal.
  void add(const std::string &file) {
    std::lock_guard<std::mutex> lock(mutex);
    llvm::sys::RemoveFileOnSignal(file);
    files.push_back(file);
  }
  /// Takes `file` off the list: it has been renamed into place.
  void keep(const std::string &file) {
    std::lock_guard<std::mutex> lock(mutex);
    llvm::sys::DontRemoveFileOnSignal(file);
    files.erase(std::remove(files.begin(), files.end(), file), files.end());
  }

private:
  std::mutex mutex;
  std::vector<std::string> files;
};

/// An object file of the archive: where it is, and its member name.
struct ArchiveObject {
  std::string path;
  std::string member;
};

/// Compiles every kernel variant of `plan` into scratch objects, on all
/// cores.
llvm::Error compileKernels(const ModulePlan &plan, const EmitOptions &options,
                           Temporaries &temporaries,
                           std::vector<ArchiveObject> &objects) {
  std::vector<CompileJob> jobs;
  for (const PlannedKernel &kernel : plan.kernels) {
    for (size_t v = 0; v < plan.targets[kernel.target].variants.size(); ++v) {
      CompileJob job{&kernel, v, plan.variantFunction(kernel, v), ""};
      auto object = temporaries.scratch("normc-kernel", "o");
      if (!object)
        return object.takeError();
      job.object = *object;
      jobs.push_back(std::move(job));
    }
  }
  llvm::Optional<KernelCache> cache;
  if (!options.cacheDir.empty()) {
    auto opened = KernelCache::open(options.cacheDir);
    if (!opened)
      return opened.takeError();
    cache = std::move(*opened);
  }
  Progress progress(options.progress, jobs.size());

  std::mutex mutex;
  llvm::Error firstError = llvm::Error::success();
  std::atomic<bool> failed{false};
  llvm::ThreadPool pool(llvm::hardware_concurrency(options.jobs));
  for (const CompileJob &job : jobs) {
    pool.async([&, jobPtr = &job] {
      if (failed)
        return;
      bool cached = false;
      llvm::Error error = runJob(plan, *jobPtr, cache ? &*cache : nullptr,
                                 cached);
      if (error) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!failed.exchange(true))
          firstError = std::move(error);
        else
          llvm::consumeError(std::move(error));
        return;
      }
      progress.done(plan, *jobPtr, cached);
    });
  }
  pool.wait();
  for (const CompileJob &job : jobs)
    objects.push_back({job.object, job.function + ".o"});
  return firstError;
}

llvm::Error writeText(const std::string &path, const std::string &text) {
  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_Text);
  if (ec)
    return makeError("cannot write '" + path + "': " + ec.message());
  out << text;
  out.close();
  if (out.has_error())
    return makeError("cannot write '" + path + "': " + out.error().message());
  return llvm::Error::success();
}

llvm::Error linkShared(const EmitOptions &options, const std::string &archive,
                       const std::string &output) {
  auto linker = llvm::sys::findProgramByName("c++");
  if (!linker)
    linker = llvm::sys::findProgramByName("g++");
  if (!linker)
    linker = llvm::sys::findProgramByName("clang++");
  if (!linker)
    return makeError("--shared needs a C++ linker driver (c++) on PATH");
  std::vector<std::string> args = {*linker,
                                   "-shared",
                                   "-o",
                                   output,
                                   "-Wl,--whole-archive",
                                   archive,
                                   options.runtimeLib,
                                   "-Wl,--no-whole-archive",
                                   "-lpthread",
                                   "-ldl",
                                   "-lm"};
  std::vector<llvm::StringRef> argRefs(args.begin(), args.end());
  std::string message;
  int rc = llvm::sys::ExecuteAndWait(*linker, argRefs, llvm::None, {}, 0, 0,
                                     &message);
  if (rc != 0)
    return makeError("linking " + output + " failed" +
                     (message.empty() ? "" : ": " + message));
  return llvm::Error::success();
}

/// Halide's lowered statement of one kernel variant, into `text`.
llvm::Error lowerStmt(const PlannedKernel &kernel, const Halide::Target &target,
                      const std::string &function, std::string &text) {
  llvm::SmallString<128> tmp;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("normc", "stmt", tmp))
    return makeError("cannot create a temporary file: " + ec.message());
  llvm::sys::RemoveFileOnSignal(tmp);
  auto remove = llvm::make_scope_exit([&] {
    llvm::sys::fs::remove(tmp);
    llvm::sys::DontRemoveFileOnSignal(tmp);
  });
  try {
    lowerKernel(kernel, target, function)
        .compile({{Halide::OutputFileType::stmt, tmp.str().str()}});
  } catch (const Halide::Error &e) {
    return makeError("Halide failed to compile " + function + ": " + e.what());
  }
  auto read = llvm::MemoryBuffer::getFile(tmp);
  if (!read)
    return makeError("cannot read the lowered statement of " + function);
  text = (*read)->getBuffer().str();
  return llvm::Error::success();
}

llvm::Expected<ModulePlan> planFor(ModuleOp module,
                                   const EmitOptions &options) {
  if (options.autoschedule.enabled())
    if (llvm::Error error = loadAutoscheduler(options.autoschedule))
      return std::move(error);
  return makeModulePlan(module, options.moduleName, options.autoschedule);
}


} // namespace

llvm::Error normc::checkOutputDirectory(const std::string &dir) {
  if (std::error_code ec = llvm::sys::fs::create_directories(
          dir, /*IgnoreExisting=*/true, llvm::sys::fs::all_all))
    return makeError("cannot create the output directory '" + dir +
                     "': " + ec.message());
  if (!llvm::sys::fs::is_directory(dir))
    return makeError("the output path '" + dir + "' is not a directory");
  llvm::SmallString<256> probe;
  int fd;
  llvm::SmallString<256> model(dir);
  llvm::sys::path::append(model, ".normc-probe-%%%%%%");
  if (std::error_code ec = llvm::sys::fs::createUniqueFile(model, fd, probe))
    return makeError("cannot write to the output directory '" + dir +
                     "': " + ec.message());
  llvm::sys::Process::SafelyCloseFileDescriptor(fd);
  llvm::sys::fs::remove(probe);
  return llvm::Error::success();
}

llvm::Error normc::emitHeader(ModuleOp module, const EmitOptions &options,
                              llvm::raw_ostream &os) {
  auto plan = planFor(module, options);
  if (!plan)
    return plan.takeError();
  os << moduleHeaderText(*plan, options.moduleName, options.specFilename);
  return llvm::Error::success();
}

llvm::Error normc::emitKernelText(ModuleOp module, const EmitOptions &options,
                                  KernelText text, llvm::raw_ostream &os) {
  auto plan = planFor(module, options);
  if (!plan)
    return plan.takeError();
  for (const PlannedKernel &kernel : plan->kernels) {
    const PlannedTarget &target = plan->targets[kernel.target];
    for (size_t v = 0; v < target.variants.size(); ++v) {
      std::string function = plan->variantFunction(kernel, v);
      std::string printed;
      if (text == KernelText::LLVM) {
        llvm::LLVMContext context;
        auto lowered = lowerToLLVM(kernel, target.variants[v], function, context);
        if (!lowered)
          return lowered.takeError();
        llvm::raw_string_ostream out(printed);
        (*lowered)->print(out, nullptr);
      } else if (llvm::Error error =
                     lowerStmt(kernel, target.variants[v], function, printed)) {
        return error;
      }
      os << "// kernel " << function << " ("
         << norm::stringifyKernelKind(kernel.config.kind) << ", target "
         << target.variants[v].to_string() << ")\n"
         << printed << "\n";
    }
  }
  return llvm::Error::success();
}

llvm::Error normc::emitLibrary(ModuleOp module, const EmitOptions &options) {
  auto plan = planFor(module, options);
  if (!plan)
    return plan.takeError();
  if (llvm::Error error = checkOutputDirectory(options.outputDir))
    return error;

  Temporaries temporaries;
  std::vector<ArchiveObject> objects;
  if (llvm::Error error =
          compileKernels(*plan, options, temporaries, objects))
    return error;

  auto runtime = temporaries.scratch("normc-runtime", "o");
  if (!runtime)
    return runtime.takeError();
  try {
    Halide::compile_standalone_runtime(*runtime, plan->runtimeTarget);
  } catch (const Halide::Error &e) {
    return makeError(std::string("Halide failed to compile its runtime: ") +
                     e.what());
  }
  objects.push_back({*runtime, options.moduleName + "_halide_runtime.o"});

  auto table = temporaries.scratch("normc-table", "o");
  if (!table)
    return table.takeError();
  if (llvm::Error error =
          writeLayerTableObject(*plan, options.moduleName, *table))
    return error;
  objects.push_back({*table, options.moduleName + "_layer_table.o"});

  // Final files are written beside their destination under temporary names
  // and renamed into place once all of them exist.
  auto outputPath = [&](const std::string &file) {
    llvm::SmallString<256> path(options.outputDir);
    llvm::sys::path::append(path, file);
    return path.str().str();
  };
  std::vector<std::pair<std::string, std::string>> outputs; // temp -> final
  auto stage = [&](const std::string &file) -> llvm::Expected<std::string> {
    llvm::SmallString<256> temp;
    int fd;
    if (std::error_code ec = llvm::sys::fs::createUniqueFile(
            outputPath("." + file + ".%%%%%%.tmp"), fd, temp))
      return makeError("cannot write to '" + options.outputDir +
                       "': " + ec.message());
    llvm::sys::Process::SafelyCloseFileDescriptor(fd);
    temporaries.add(temp.str().str());
    outputs.emplace_back(temp.str().str(), outputPath(file));
    return temp.str().str();
  };

  std::vector<llvm::NewArchiveMember> members;
  for (const ArchiveObject &object : objects) {
    auto member =
        llvm::NewArchiveMember::getFile(object.path, /*Deterministic=*/true);
    if (!member)
      return member.takeError();
    // Members are named for what they hold, not for their scratch files.
    member->MemberName = object.member;
    members.push_back(std::move(*member));
  }
  auto archive = stage(options.moduleName + ".a");
  if (!archive)
    return archive.takeError();
  if (llvm::Error error =
          llvm::writeArchive(*archive, members, /*WriteSymtab=*/true,
                             llvm::object::Archive::K_GNU,
                             /*Deterministic=*/true, /*Thin=*/false))
    return error;
  auto header = stage(options.moduleName + ".h");
  if (!header)
    return header.takeError();
  if (llvm::Error error = writeText(
          *header,
          moduleHeaderText(*plan, options.moduleName, options.specFilename)))
    return error;
  if (options.shared) {
    auto shared = stage("lib" + options.moduleName + ".so");
    if (!shared)
      return shared.takeError();
    if (llvm::Error error = linkShared(options, *archive, *shared))
      return error;
  }

  for (const auto &output : outputs) {
    if (std::error_code ec = llvm::sys::fs::rename(output.first, output.second))
      return makeError("cannot write '" + output.second + "': " + ec.message());
    temporaries.keep(output.first);
  }
  return llvm::Error::success();
}

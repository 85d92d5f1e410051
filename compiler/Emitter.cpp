//===- Emitter.cpp - From norm.kernel ops to an AOT library ---------------===//
//
// This file implements the emitter. It plans first (which kernel functions
// exist, which layers use them), then compiles each planned kernel with
// Halide into an object, compiles one standalone Halide runtime for all
// targets, writes the module's layer table (runtime/include/normrt/module.h)
// as an LLVM object with a constructor that registers it, and archives the
// objects with LLVM's archive writer.
//
//===----------------------------------------------------------------------===//

#include "compiler/Emitter.h"
#include "compiler/Autoschedule.h"
#include "compiler/KernelAlgorithms.h"
#include "compiler/NormDialect.h"
#include "runtime/include/normrt/module.h"

#include "Halide.h"

#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Object/Archive.h"
#include "llvm/Object/ArchiveWriter.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/Transforms/Utils/ModuleUtils.h"

#include <array>

using namespace mlir;
using namespace normc;
using norm::KernelKind;

namespace {

struct PlannedKernel {
  std::string function; ///< C symbol of the Halide pipeline
  KernelConfig config;
  /// One target, or several (best first, baseline last) compiled into one
  /// function that picks the best the machine supports at run time.
  std::vector<Halide::Target> targets;
  std::vector<std::string> users; ///< "layer/target" for the header
  /// Set when a Halide autoscheduler, not normc, schedules the kernel.
  AutoscheduleOptions autoschedule;
};

struct PlannedLayer {
  norm::LayerOp op;
  std::string targetLabel;
  std::string targetString;
  int32_t device = 0;
  std::array<int, norm::kNumKernelKinds> kernel;
  PlannedLayer() { kernel.fill(-1); }
};

struct Plan {
  std::vector<PlannedKernel> kernels;
  std::vector<PlannedLayer> layers;
  Halide::Target runtimeTarget;
};

llvm::Error makeError(const Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 message.str());
}

/// Writes each member of the archive at `path` to `prefix`_<n>.o.
llvm::Error extractArchive(const std::string &path, const std::string &prefix,
                           std::vector<std::string> &objects) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return makeError("cannot read " + path);
  auto archive = llvm::object::Archive::create((*buffer)->getMemBufferRef());
  if (!archive)
    return archive.takeError();
  llvm::Error error = llvm::Error::success();
  int index = 0;
  for (const llvm::object::Archive::Child &child : (*archive)->children(error)) {
    auto data = child.getBuffer();
    if (!data)
      return data.takeError();
    std::string object = prefix + "_" + std::to_string(index++) + ".o";
    std::error_code ec;
    llvm::raw_fd_ostream os(object, ec);
    if (ec)
      return makeError("cannot write " + object + ": " + ec.message());
    os << *data;
    objects.push_back(object);
  }
  if (error)
    return error;
  llvm::sys::fs::remove(path);
  return llvm::Error::success();
}

Halide::Type halideType(Type type) {
  if (type.isF64())
    return Halide::Float(64);
  if (type.isF16())
    return Halide::Float(16);
  if (type.isBF16())
    return Halide::BFloat(16);
  return Halide::Float(32);
}

int32_t normrtDtype(const Halide::Type &type) {
  if (type == Halide::Float(64))
    return 1; // NORMRT_FLOAT64
  if (type == Halide::Float(16))
    return 2;
  if (type == Halide::BFloat(16))
    return 3;
  return 0; // NORMRT_FLOAT32
}

/// Where a target's kernels run, as normrt_layer_desc::device says.
int32_t deviceOf(const Halide::Target &t) {
  if (t.has_feature(Halide::Target::CUDA))
    return NORMRT_DEVICE_CUDA;
  if (t.has_feature(Halide::Target::OpenCL))
    return NORMRT_DEVICE_OPENCL;
  return NORMRT_DEVICE_HOST;
}

llvm::Expected<Plan> makePlan(ModuleOp module, const EmitOptions &options) {
  if (options.autoschedule.enabled())
    if (llvm::Error error = loadAutoscheduler(options.autoschedule))
      return std::move(error);
  Plan plan;
  llvm::StringMap<int> byKey;
  llvm::StringMap<int> layerIndex; // "layer/target" -> plan.layers index
  bool haveRuntimeTarget = false;

  for (norm::TargetOp target : module.getOps<norm::TargetOp>()) {
    // The baseline (last) of a multi-target list stands for the list.
    Halide::Target t(norm::splitTargets(target.target()).back());
    if (!haveRuntimeTarget) {
      plan.runtimeTarget = Halide::Target(t.os, t.arch, t.bits);
      haveRuntimeTarget = true;
    } else if (t.os != plan.runtimeTarget.os ||
               t.arch != plan.runtimeTarget.arch ||
               t.bits != plan.runtimeTarget.bits) {
      return makeError("target '" + target.sym_name() + "' (" +
                       target.target() +
                       ") has another architecture or OS than the module's "
                       "first target; put it in a spec of its own");
    }
    // The module's one runtime carries the device parts its layers need.
    for (Halide::Target::Feature api :
         {Halide::Target::CUDA, Halide::Target::OpenCL})
      if (t.has_feature(api))
        plan.runtimeTarget = plan.runtimeTarget.with_feature(api);
  }
  if (!haveRuntimeTarget)
    return makeError("the module has no targets");

  for (norm::KernelOp kernel : module.getOps<norm::KernelOp>()) {
    auto layer = SymbolTable::lookupNearestSymbolFrom<norm::LayerOp>(
        kernel, kernel.layerAttr());
    auto target = SymbolTable::lookupNearestSymbolFrom<norm::TargetOp>(
        kernel, kernel.targetAttr());
    if (!layer || !target)
      return makeError("kernel '" + kernel.sym_name() +
                       "' refers to a missing layer or target");
    KernelKind kind = *norm::symbolizeKernelKind(kernel.kind());

    KernelConfig config;
    config.kind = kind;
    config.ioType = halideType(layer.dtype());
    config.paramType = parameterType(config.ioType);
    config.affine = layer.affine();
    config.channelsLast = layer.isChannelsLast();
    config.blockChannels = layer.getSpatialRank() >= 2;
    config.eps = layer.eps().convertToDouble();
    if (auto momentum = layer.momentum())
      config.momentum = momentum->convertToDouble();
    else
      config.momentum = llvm::None;

    std::vector<Halide::Target> targets;
    std::string targetKey;
    for (const std::string &part : norm::splitTargets(target.target())) {
      targets.emplace_back(part);
      targetKey += "@" + targets.back().to_string();
    }
    const Halide::Target &t = targets.front();
    if (config.ioType == Halide::Float(16) &&
        t.has_feature(Halide::Target::OpenCL) &&
        !t.has_feature(Halide::Target::CLHalf))
      return makeError("layer '" + layer.sym_name().str() +
                       "' has dtype f16, which OpenCL target '" +
                       target.sym_name().str() +
                       "' runs only with the cl_half feature (\"" +
                       t.to_string() + "-cl_half\")");
    std::string key = config.key() + targetKey;
    auto found = byKey.find(key);
    int index;
    if (found == byKey.end()) {
      index = plan.kernels.size();
      byKey[key] = index;
      PlannedKernel planned;
      planned.function = options.moduleName + "__" + kernel.sym_name().str();
      planned.config = config;
      planned.targets = targets;
      planned.autoschedule = options.autoschedule;
      plan.kernels.push_back(std::move(planned));
    } else {
      index = found->second;
    }
    std::string user = (layer.sym_name() + "/" + target.sym_name()).str();
    plan.kernels[index].users.push_back(user);

    auto slot = layerIndex.try_emplace(user, plan.layers.size());
    if (slot.second) {
      PlannedLayer planned;
      planned.op = layer;
      planned.targetLabel = target.sym_name().str();
      planned.targetString = target.target().str();
      planned.device = deviceOf(t);
      plan.layers.push_back(planned);
    }
    plan.layers[slot.first->second].kernel[static_cast<int>(kind)] = index;
  }
  return plan;
}

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
  KernelAlgorithm algorithm = buildKernelAlgorithm(targetConfig);
  Halide::Pipeline pipeline(algorithm.outputs);
  if (kernel.autoschedule.enabled()) {
    autoschedule(algorithm, pipeline, target, kernel.autoschedule);
  } else {
    std::string error;
    if (!schedules::applySchedule(algorithm.stages, target, error))
      throw Halide::CompileError(function + ": " + error);
  }
  return pipeline.compile_to_module(algorithm.inputs, function,
                                    kernelTarget(target));
}

llvm::Expected<Halide::Module> compileKernel(const PlannedKernel &kernel,
                                             const Halide::Target &target) {
  try {
    return lowerKernel(kernel, target, kernel.function);
  } catch (const Halide::Error &e) {
    return makeError("Halide failed to compile " + kernel.function + ": " +
                     e.what());
  }
}

/// A name for one target of a multi-target list, for symbol suffixes.
std::string targetSuffix(const Halide::Target &target, size_t index) {
  std::string suffix = "v" + std::to_string(index);
  for (auto feature : {Halide::Target::AVX512_SapphireRapids,
                       Halide::Target::AVX512_Cannonlake,
                       Halide::Target::AVX512_Skylake, Halide::Target::AVX512,
                       Halide::Target::AVX2, Halide::Target::AVX,
                       Halide::Target::SSE41})
    if (target.has_feature(feature)) {
      std::string name = Halide::Target().with_feature(feature).to_string();
      return suffix + "_" + name.substr(name.rfind('-') + 1);
    }
  return suffix + "_baseline";
}

/// Compiles a kernel into object files in `dir`, appending their paths to
/// `objects`: one object for one target; for several, Halide's multi-target
/// library (one object per target and a dispatcher) taken apart.
llvm::Error compileKernelObjects(const PlannedKernel &kernel,
                                 const std::string &dir,
                                 std::vector<std::string> &objects) {
  llvm::SmallString<256> base(dir);
  llvm::sys::path::append(base, kernel.function);
  try {
    if (kernel.targets.size() == 1) {
      Halide::Module module =
          lowerKernel(kernel, kernel.targets[0], kernel.function);
      std::string object = (base + ".o").str();
      module.compile({{Halide::OutputFileType::object, object}});
      objects.push_back(object);
      return llvm::Error::success();
    }
    std::vector<Halide::Target> targets;
    std::vector<std::string> suffixes;
    for (size_t i = 0; i < kernel.targets.size(); ++i) {
      targets.push_back(kernelTarget(kernel.targets[i]));
      suffixes.push_back(targetSuffix(kernel.targets[i], i));
    }
    std::string library = (base + "_multi.a").str();
    Halide::compile_multitarget(
        kernel.function, {{Halide::OutputFileType::static_library, library}},
        targets, suffixes,
        [&kernel](const std::string &name, const Halide::Target &target) {
          return lowerKernel(kernel, target, name);
        });
    return extractArchive(library, base.str().str(), objects);
  } catch (const Halide::Error &e) {
    return makeError("Halide failed to compile " + kernel.function + ": " +
                     e.what());
  }
}

std::string cType(const Halide::Type &type) {
  if (type.is_float())
    return type.bits() == 64 ? "double" : "float";
  return (type.is_uint() ? "uint" : "int") + std::to_string(type.bits()) +
         "_t";
}

/// The C declaration of a kernel, from its algorithm's arguments.
std::string declaration(const PlannedKernel &kernel) {
  KernelAlgorithm algorithm = buildKernelAlgorithm(kernel.config);
  std::string text = "int " + kernel.function + "(void *__user_context";
  bool first = false;
  auto add = [&](const std::string &param) {
    text += (first ? "" : ", ") + param;
    first = false;
  };
  for (const Halide::Argument &arg : algorithm.inputs)
    add(arg.is_buffer() ? "struct halide_buffer_t *" + arg.name
                        : cType(arg.type) + " " + arg.name);
  // Halide makes Func names unique per process ("y$3"); the prefix is ours.
  for (const Halide::Func &out : algorithm.outputs)
    add("struct halide_buffer_t *" +
        llvm::StringRef(out.name()).split('$').first.str());
  return text + ");";
}

std::string layerSummary(norm::LayerOp layer) {
  std::string text;
  llvm::raw_string_ostream os(text);
  os << layer.sym_name() << " = " << layer.kind() << "("
     << layer.num_featuresAttr().getInt()
     << ", eps=" << llvm::format("%g", layer.eps().convertToDouble())
     << ", momentum=";
  if (auto m = layer.momentum())
    os << llvm::format("%g", m->convertToDouble());
  else
    os << "None";
  os << ", affine=" << (layer.affine() ? "true" : "false")
     << ", track_running_stats="
     << (layer.track_running_stats() ? "true" : "false")
     << ", dtype=" << layer.dtype() << ", layout=" << layer.layout() << ")";
  return os.str();
}

std::string headerText(const Plan &plan, const EmitOptions &options) {
  std::string guard = "NORMC_MODULE_" + llvm::StringRef(options.moduleName).upper() + "_H";
  std::string text;
  llvm::raw_string_ostream os(text);
  os << "/* " << options.moduleName << ".h - generated by normc from "
     << llvm::sys::path::filename(options.specFilename)
     << "; do not edit.\n *\n"
     << " * Layers (create them with normrt_layer_create(name, target)):\n";
  for (const PlannedLayer &layer : plan.layers)
    os << " *   " << layerSummary(layer.op) << "  on target '"
       << layer.targetLabel << "' (\"" << layer.targetString << "\")\n";
  os << " */\n#ifndef " << guard << "\n#define " << guard << "\n\n"
     << "#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
     << "struct halide_buffer_t;\nstruct halide_filter_metadata_t;\n"
     << "struct normrt_module;\n\n";
  for (const PlannedKernel &kernel : plan.kernels) {
    os << "/* " << norm::stringifyKernelKind(kernel.config.kind) << " for ";
    for (size_t i = 0; i < kernel.users.size(); ++i)
      os << (i ? ", " : "") << kernel.users[i];
    os << " */\n"
       << declaration(kernel) << "\n"
       << "int " << kernel.function << "_argv(void **args);\n"
       << "const struct halide_filter_metadata_t *" << kernel.function
       << "_metadata(void);\n\n";
  }
  os << "/* The layer table that the normrt runtime reads. */\n"
     << "extern const struct normrt_module normc_module_" << options.moduleName
     << ";\n\n#ifdef __cplusplus\n}\n#endif\n\n"
     << "/* Referencing the table pulls it, and the constructor that registers\n"
     << " * it with normrt, out of the static library. */\n"
     << "#if defined(__GNUC__) || defined(__clang__)\n"
     << "__attribute__((used))\n#endif\n"
     << "static const void *const normc_module_" << options.moduleName
     << "_link = &normc_module_" << options.moduleName << ";\n\n"
     << "#endif /* " << guard << " */\n";
  return os.str();
}

/// Writes the layer table and its registering constructor as an object file.
llvm::Error writeRegistryObject(const Plan &plan, const EmitOptions &options,
                                const std::string &path) {
  static bool initialized = [] {
    llvm::InitializeAllTargetInfos();
    llvm::InitializeAllTargets();
    llvm::InitializeAllTargetMCs();
    llvm::InitializeAllAsmPrinters();
    return true;
  }();
  (void)initialized;

  llvm::Triple triple = Halide::Internal::get_triple_for_target(plan.runtimeTarget);
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple.str(), error);
  if (!target)
    return makeError("no LLVM backend for " + triple.str() + ": " + error);
  llvm::TargetOptions targetOptions;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple.str(), "generic", "", targetOptions, llvm::Reloc::PIC_));

  llvm::LLVMContext context;
  llvm::Module module(options.moduleName + "_registry", context);
  module.setTargetTriple(triple.str());
  module.setDataLayout(machine->createDataLayout());

  llvm::Type *i8p = llvm::Type::getInt8PtrTy(context);
  llvm::Type *i32 = llvm::Type::getInt32Ty(context);
  llvm::Type *i64 = llvm::Type::getInt64Ty(context);
  llvm::Type *f64 = llvm::Type::getDoubleTy(context);
  llvm::ArrayType *kernelArray = llvm::ArrayType::get(i8p, NORMRT_KERNEL_COUNT);
  // Mirrors normrt_layer_desc field by field.
  llvm::StructType *descType = llvm::StructType::create(
      context,
      {i8p, i8p, i8p, i8p, kernelArray, i64, f64, f64, i32, i32, i32, i32, i32,
       i32, i32, i32},
      "normrt_layer_desc");
  // Mirrors normrt_cuda_api: six function pointers.
  llvm::StructType *cudaApiType = llvm::StructType::create(
      context, std::vector<llvm::Type *>(6, i8p), "normrt_cuda_api");
  llvm::StructType *moduleType = llvm::StructType::create(
      context,
      {i32, i32, i8p, descType->getPointerTo(), cudaApiType->getPointerTo(),
       i8p},
      "normrt_module");

  auto stringPtr = [&](llvm::StringRef s) -> llvm::Constant * {
    llvm::Constant *data = llvm::ConstantDataArray::getString(context, s);
    auto *global = new llvm::GlobalVariable(
        module, data->getType(), /*isConstant=*/true,
        llvm::GlobalValue::PrivateLinkage, data, ".str");
    global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    return llvm::ConstantExpr::getPointerCast(global, i8p);
  };
  llvm::FunctionType *argvType = llvm::FunctionType::get(
      i32, {i8p->getPointerTo()}, /*isVarArg=*/false);

  std::vector<llvm::Constant *> descs;
  for (const PlannedLayer &layer : plan.layers) {
    norm::LayerOp op = layer.op;
    std::vector<llvm::Constant *> kernels;
    for (int index : layer.kernel) {
      if (index < 0) {
        kernels.push_back(llvm::ConstantPointerNull::get(
            llvm::cast<llvm::PointerType>(i8p)));
        continue;
      }
      llvm::FunctionCallee callee = module.getOrInsertFunction(
          plan.kernels[index].function + "_argv", argvType);
      kernels.push_back(llvm::ConstantExpr::getPointerCast(
          llvm::cast<llvm::Constant>(callee.getCallee()), i8p));
    }
    Halide::Type io = halideType(op.dtype());
    Halide::Type param = parameterType(io);
    auto m = op.momentum();
    descs.push_back(llvm::ConstantStruct::get(
        descType,
        {stringPtr(op.sym_name()), stringPtr(layer.targetLabel),
         stringPtr(layer.targetString), stringPtr(op.kind()),
         llvm::ConstantArray::get(kernelArray, kernels),
         llvm::ConstantInt::get(i64, op.num_featuresAttr().getInt()),
         llvm::ConstantFP::get(f64, op.eps().convertToDouble()),
         llvm::ConstantFP::get(f64, m ? m->convertToDouble() : 0.0),
         llvm::ConstantInt::get(i32, op.getSpatialRank()),
         llvm::ConstantInt::get(i32, m ? 0 : 1),
         llvm::ConstantInt::get(i32, op.affine() ? 1 : 0),
         llvm::ConstantInt::get(i32, op.track_running_stats() ? 1 : 0),
         llvm::ConstantInt::get(i32, normrtDtype(io)),
         llvm::ConstantInt::get(i32, normrtDtype(param)),
         llvm::ConstantInt::get(i32, layer.device),
         llvm::ConstantInt::get(i32, op.isChannelsLast() ? 1 : 0)}));
  }
  llvm::ArrayType *tableType = llvm::ArrayType::get(descType, descs.size());
  auto *table = new llvm::GlobalVariable(
      module, tableType, /*isConstant=*/true, llvm::GlobalValue::PrivateLinkage,
      llvm::ConstantArray::get(tableType, descs), "layers");
  llvm::Constant *zero = llvm::ConstantInt::get(i32, 0);
  llvm::Constant *firstDesc = llvm::ConstantExpr::getInBoundsGetElementPtr(
      tableType, table, llvm::ArrayRef<llvm::Constant *>{zero, zero});
  // The Halide CUDA runtime's entry points, when the module has CUDA layers.
  llvm::Constant *cudaApi =
      llvm::ConstantPointerNull::get(cudaApiType->getPointerTo());
  if (plan.runtimeTarget.has_feature(Halide::Target::CUDA)) {
    std::vector<llvm::Constant *> entries;
    for (const char *name :
         {"halide_cuda_device_interface", "halide_cuda_wrap_device_ptr",
          "halide_cuda_detach_device_ptr", "halide_set_cuda_acquire_context",
          "halide_set_cuda_release_context", "halide_set_cuda_get_stream"}) {
      // Declared with a placeholder type: only the address is taken.
      llvm::FunctionCallee callee = module.getOrInsertFunction(
          name, llvm::FunctionType::get(i32, {}, false));
      entries.push_back(llvm::ConstantExpr::getPointerCast(
          llvm::cast<llvm::Constant>(callee.getCallee()), i8p));
    }
    cudaApi = new llvm::GlobalVariable(
        module, cudaApiType, /*isConstant=*/true,
        llvm::GlobalValue::PrivateLinkage,
        llvm::ConstantStruct::get(cudaApiType, entries), "cuda_api");
  }
  // Halide's OpenCL device interface, when the module has OpenCL layers.
  llvm::Constant *openclInterface =
      llvm::ConstantPointerNull::get(llvm::cast<llvm::PointerType>(i8p));
  if (plan.runtimeTarget.has_feature(Halide::Target::OpenCL)) {
    llvm::FunctionCallee callee = module.getOrInsertFunction(
        "halide_opencl_device_interface",
        llvm::FunctionType::get(i32, {}, false));
    openclInterface = llvm::ConstantExpr::getPointerCast(
        llvm::cast<llvm::Constant>(callee.getCallee()), i8p);
  }
  auto *moduleTable = new llvm::GlobalVariable(
      module, moduleType, /*isConstant=*/true,
      llvm::GlobalValue::ExternalLinkage,
      llvm::ConstantStruct::get(
          moduleType,
          {llvm::ConstantInt::get(i32, NORMRT_MODULE_ABI_VERSION),
           llvm::ConstantInt::get(i32, descs.size()),
           stringPtr(options.moduleName), firstDesc, cudaApi,
           openclInterface}),
      "normc_module_" + options.moduleName);

  // static void register(void) { normrt_register_module(&table); }
  llvm::FunctionCallee registerFn = module.getOrInsertFunction(
      "normrt_register_module",
      llvm::FunctionType::get(i32, {moduleType->getPointerTo()}, false));
  auto *ctor = llvm::Function::Create(
      llvm::FunctionType::get(llvm::Type::getVoidTy(context), false),
      llvm::GlobalValue::InternalLinkage,
      "normc_register_" + options.moduleName, module);
  llvm::IRBuilder<> builder(llvm::BasicBlock::Create(context, "entry", ctor));
  builder.CreateCall(registerFn, {moduleTable});
  builder.CreateRetVoid();
  llvm::appendToGlobalCtors(module, ctor, /*Priority=*/65535);

  std::error_code ec;
  llvm::ToolOutputFile out(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return makeError("cannot write " + path + ": " + ec.message());
  llvm::legacy::PassManager passes;
  if (machine->addPassesToEmitFile(passes, out.os(), nullptr,
                                   llvm::CGFT_ObjectFile))
    return makeError("LLVM cannot emit objects for " + triple.str());
  passes.run(module);
  out.keep();
  return llvm::Error::success();
}

llvm::Error writeText(const std::string &path, const std::string &text) {
  std::error_code ec;
  llvm::ToolOutputFile out(path, ec, llvm::sys::fs::OF_Text);
  if (ec)
    return makeError("cannot write " + path + ": " + ec.message());
  out.os() << text;
  out.keep();
  return llvm::Error::success();
}

llvm::Error linkShared(const EmitOptions &options, const std::string &archive,
                       const std::string &output) {
  if (options.runtimeLib.empty() || !llvm::sys::fs::exists(options.runtimeLib))
    return makeError("--shared needs the normrt static library (libnormrt.a); "
                     "pass it with --runtime-lib");
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

} // namespace

llvm::Error normc::emitHeader(ModuleOp module, const EmitOptions &options,
                              llvm::raw_ostream &os) {
  auto plan = makePlan(module, options);
  if (!plan)
    return plan.takeError();
  os << headerText(*plan, options);
  return llvm::Error::success();
}

llvm::Error normc::emitStmt(ModuleOp module, const EmitOptions &options,
                            llvm::raw_ostream &os) {
  auto plan = makePlan(module, options);
  if (!plan)
    return plan.takeError();
  llvm::SmallString<128> tmp;
  if (std::error_code ec =
          llvm::sys::fs::createTemporaryFile("normc", "stmt", tmp))
    return makeError("cannot create a temporary file: " + ec.message());
  llvm::FileRemover remover(tmp);
  for (const PlannedKernel &kernel : plan->kernels) {
    for (const Halide::Target &target : kernel.targets) {
      auto compiled = compileKernel(kernel, target);
      if (!compiled)
        return compiled.takeError();
      try {
        compiled->compile({{Halide::OutputFileType::stmt, tmp.str().str()}});
      } catch (const Halide::Error &e) {
        return makeError("Halide failed to lower " + kernel.function + ": " +
                         e.what());
      }
      auto text = llvm::MemoryBuffer::getFile(tmp);
      if (!text)
        return makeError("cannot read the lowered statement of " +
                         kernel.function);
      os << "// kernel " << kernel.function << " ("
         << norm::stringifyKernelKind(kernel.config.kind) << ", target "
         << target.to_string() << ")\n"
         << (*text)->getBuffer() << "\n";
    }
  }
  return llvm::Error::success();
}

llvm::Error normc::emitLibrary(ModuleOp module, const EmitOptions &options) {
  auto plan = makePlan(module, options);
  if (!plan)
    return plan.takeError();
  if (std::error_code ec = llvm::sys::fs::create_directories(options.outputDir))
    return makeError("cannot create " + options.outputDir + ": " +
                     ec.message());

  auto outputPath = [&](const std::string &file) {
    llvm::SmallString<256> path(options.outputDir);
    llvm::sys::path::append(path, file);
    return path.str().str();
  };
  llvm::SmallString<128> scratch;
  if (std::error_code ec = llvm::sys::fs::createUniqueDirectory(
          "normc-" + options.moduleName, scratch))
    return makeError("cannot create a scratch directory: " + ec.message());
  std::vector<std::string> objects;
  auto cleanUp = llvm::make_scope_exit([&] {
    for (const std::string &object : objects)
      llvm::sys::fs::remove(object);
    llvm::sys::fs::remove(scratch);
  });
  auto scratchPath = [&](const std::string &file) {
    llvm::SmallString<256> path(scratch);
    llvm::sys::path::append(path, file);
    return path.str().str();
  };

  for (const PlannedKernel &kernel : plan->kernels)
    if (llvm::Error error =
            compileKernelObjects(kernel, scratch.str().str(), objects))
      return error;

  std::string runtime = scratchPath(options.moduleName + "_halide_runtime.o");
  try {
    Halide::compile_standalone_runtime(runtime, plan->runtimeTarget);
  } catch (const Halide::Error &e) {
    return makeError(std::string("Halide failed to compile its runtime: ") +
                     e.what());
  }
  objects.push_back(runtime);

  std::string registry = scratchPath(options.moduleName + "_registry.o");
  if (llvm::Error error = writeRegistryObject(*plan, options, registry))
    return error;
  objects.push_back(registry);

  std::vector<llvm::NewArchiveMember> members;
  std::vector<std::string> memberNames; // storage for the members' names
  memberNames.reserve(objects.size());
  for (const std::string &object : objects) {
    auto member = llvm::NewArchiveMember::getFile(object, /*Deterministic=*/true);
    if (!member)
      return member.takeError();
    // Members are named by file name alone: no scratch paths in the archive.
    memberNames.push_back(llvm::sys::path::filename(object).str());
    member->MemberName = memberNames.back();
    members.push_back(std::move(*member));
  }
  std::string archive = outputPath(options.moduleName + ".a");
  if (llvm::Error error =
          llvm::writeArchive(archive, members, /*WriteSymtab=*/true,
                             llvm::object::Archive::K_GNU,
                             /*Deterministic=*/true, /*Thin=*/false))
    return error;

  if (llvm::Error error = writeText(outputPath(options.moduleName + ".h"),
                                    headerText(*plan, options)))
    return error;

  if (options.shared)
    return linkShared(options, archive,
                      outputPath("lib" + options.moduleName + ".so"));
  return llvm::Error::success();
}

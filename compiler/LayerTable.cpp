//===- LayerTable.cpp - The layer table of a module as an object file -----===//
//
// This file implements writeLayerTableObject (ModuleFiles.h). The table's
// structs (runtime/include/normrt/module.h) are mirrored here as LLVM IR
// types, field by field: a change to one is a change to the other and to
// NORMRT_MODULE_ABI_VERSION. Each layer gets an array of kernel variants
// (one per target of its label, with the CPU features each variant's code
// may use); the module gets the Halide runtime entry points normrt calls,
// and its device interfaces when it has GPU layers. A constructor registers
// the table with normrt when the object is linked in or loaded.
//
//===----------------------------------------------------------------------===//

#include "compiler/ModuleFiles.h"
#include "compiler/Support.h"
#include "runtime/include/normrt/module.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/IR/Constants.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/Transforms/Utils/ModuleUtils.h"

using namespace normc;

namespace {


/// Builds the table's constants in one LLVM module.
class TableBuilder {
public:
  TableBuilder(llvm::Module &module)
      : module(module), context(module.getContext()),
        i8p(llvm::Type::getInt8PtrTy(context)),
        i32(llvm::Type::getInt32Ty(context)),
        i64(llvm::Type::getInt64Ty(context)),
        f64(llvm::Type::getDoubleTy(context)) {}

  llvm::Module &module;
  llvm::LLVMContext &context;
  llvm::Type *i8p, *i32, *i64, *f64;

  llvm::Constant *string(llvm::StringRef s) {
    llvm::Constant *data = llvm::ConstantDataArray::getString(context, s);
    auto *global = new llvm::GlobalVariable(
        module, data->getType(), /*isConstant=*/true,
        llvm::GlobalValue::PrivateLinkage, data, ".str");
    global->setUnnamedAddr(llvm::GlobalValue::UnnamedAddr::Global);
    return llvm::ConstantExpr::getPointerCast(global, i8p);
  }
  /// The address of an external function; only the address is taken, so the
  /// declared type is a placeholder.
  llvm::Constant *function(llvm::StringRef name) {
    llvm::FunctionCallee callee = module.getOrInsertFunction(
        name, llvm::FunctionType::get(i32, {}, false));
    return llvm::ConstantExpr::getPointerCast(
        llvm::cast<llvm::Constant>(callee.getCallee()), i8p);
  }
  llvm::Constant *null() {
    return llvm::ConstantPointerNull::get(llvm::cast<llvm::PointerType>(i8p));
  }
  /// A private constant global; returns its address as i8*.
  llvm::Constant *global(llvm::Constant *value, llvm::StringRef name) {
    auto *g = new llvm::GlobalVariable(module, value->getType(),
                                       /*isConstant=*/true,
                                       llvm::GlobalValue::PrivateLinkage,
                                       value, name);
    return llvm::ConstantExpr::getPointerCast(g, i8p);
  }
  /// A struct of function addresses, as a private global.
  llvm::Constant *functionTable(llvm::ArrayRef<const char *> names,
                                llvm::StringRef globalName) {
    std::vector<llvm::Constant *> entries;
    for (const char *name : names)
      entries.push_back(function(name));
    auto *type = llvm::StructType::get(
        context, std::vector<llvm::Type *>(entries.size(), i8p));
    return global(llvm::ConstantStruct::get(type, entries), globalName);
  }
};

std::unique_ptr<llvm::TargetMachine> tableMachine(const ModulePlan &plan,
                                                  std::string &tripleOut,
                                                  std::string &error) {
  initializeLLVMTargets();
  llvm::Triple triple =
      Halide::Internal::get_triple_for_target(plan.runtimeTarget);
  tripleOut = triple.str();
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple.str(), error);
  if (!target)
    return nullptr;
  llvm::TargetOptions options;
  return std::unique_ptr<llvm::TargetMachine>(target->createTargetMachine(
      triple.str(), "generic", "", options, llvm::Reloc::PIC_));
}

} // namespace

llvm::Error normc::writeLayerTableObject(const ModulePlan &plan,
                                         const std::string &moduleName,
                                         const std::string &path) {
  std::string triple, error;
  std::unique_ptr<llvm::TargetMachine> machine =
      tableMachine(plan, triple, error);
  if (!machine)
    return makeError("no LLVM backend for " + triple + ": " + error);

  llvm::LLVMContext context;
  llvm::Module module(moduleName + "_layer_table", context);
  module.setTargetTriple(triple);
  module.setDataLayout(machine->createDataLayout());
  TableBuilder b(module);

  llvm::ArrayType *kernelArray =
      llvm::ArrayType::get(b.i8p, NORMRT_KERNEL_COUNT);
  // Mirrors normrt_kernel_variant.
  llvm::StructType *variantType = llvm::StructType::create(
      context, {b.i8p, b.i8p, kernelArray}, "normrt_kernel_variant");
  // Mirrors normrt_layer_desc field by field.
  std::vector<llvm::Type *> descFields = {b.i8p, b.i8p, b.i8p, b.i8p, b.i8p,
                                          b.i64, b.f64, b.f64};
  descFields.insert(descFields.end(), 9, b.i32);
  llvm::StructType *descType =
      llvm::StructType::create(context, descFields, "normrt_layer_desc");
  // Mirrors normrt_module.
  llvm::StructType *moduleType = llvm::StructType::create(
      context, {b.i32, b.i32, b.i8p, b.i8p, b.i8p, b.i8p, b.i8p},
      "normrt_module");

  std::vector<llvm::Constant *> descs;
  for (const PlannedLayer &layer : plan.layers) {
    norm::LayerOp op = layer.op;
    const PlannedTarget &target = plan.targets[layer.target];
    std::vector<llvm::Constant *> variants;
    for (size_t v = 0; v < target.variants.size(); ++v) {
      std::vector<llvm::Constant *> kernels;
      for (int index : layer.kernel)
        kernels.push_back(
            index < 0 ? b.null()
                      : b.function(plan.variantFunction(plan.kernels[index], v) +
                                   "_argv"));
      variants.push_back(llvm::ConstantStruct::get(
          variantType,
          {b.string(target.variants[v].to_string()),
           b.string(llvm::join(target.cpuFeatures[v], ",")),
           llvm::ConstantArray::get(kernelArray, kernels)}));
    }
    auto *variantArrayType = llvm::ArrayType::get(variantType, variants.size());
    llvm::Constant *variantArray = b.global(
        llvm::ConstantArray::get(variantArrayType, variants), "variants");

    Halide::Type io = halideType(op.dtype());
    Halide::Type param = parameterType(io);
    auto m = op.momentum();
    descs.push_back(llvm::ConstantStruct::get(
        descType,
        {b.string(op.sym_name()), b.string(target.label),
         b.string(target.targetString), b.string(op.kind()), variantArray,
         llvm::ConstantInt::get(b.i64, op.num_featuresAttr().getInt()),
         llvm::ConstantFP::get(b.f64, op.eps().convertToDouble()),
         llvm::ConstantFP::get(b.f64, m ? m->convertToDouble() : 0.0),
         llvm::ConstantInt::get(b.i32, op.getSpatialRank()),
         llvm::ConstantInt::get(b.i32, m ? 0 : 1),
         llvm::ConstantInt::get(b.i32, op.affine() ? 1 : 0),
         llvm::ConstantInt::get(b.i32, op.track_running_stats() ? 1 : 0),
         llvm::ConstantInt::get(b.i32, normrtDtype(io)),
         llvm::ConstantInt::get(b.i32, normrtDtype(param)),
         llvm::ConstantInt::get(b.i32, target.device),
         llvm::ConstantInt::get(b.i32, op.isChannelsLast() ? 1 : 0),
         llvm::ConstantInt::get(b.i32, variants.size())}));
  }
  llvm::ArrayType *tableType = llvm::ArrayType::get(descType, descs.size());
  llvm::Constant *layers =
      b.global(llvm::ConstantArray::get(tableType, descs), "layers");

  // Mirrors normrt_halide_api, in its field order.
  llvm::Constant *halideApi = b.functionTable(
      {"halide_set_error_handler", "halide_set_num_threads",
       "halide_copy_to_device", "halide_copy_to_host", "halide_device_free",
       "halide_device_sync", "halide_reuse_device_allocations"},
      "halide_api");
  // Mirrors normrt_cuda_api, when the module has CUDA layers.
  llvm::Constant *cudaApi = b.null();
  if (plan.runtimeTarget.has_feature(Halide::Target::CUDA))
    cudaApi = b.functionTable(
        {"halide_cuda_device_interface", "halide_cuda_wrap_device_ptr",
         "halide_cuda_detach_device_ptr", "halide_set_cuda_acquire_context",
         "halide_set_cuda_release_context", "halide_set_cuda_get_stream"},
        "cuda_api");
  llvm::Constant *openclInterface =
      plan.runtimeTarget.has_feature(Halide::Target::OpenCL)
          ? b.function("halide_opencl_device_interface")
          : b.null();
  auto *moduleTable = new llvm::GlobalVariable(
      module, moduleType, /*isConstant=*/true,
      llvm::GlobalValue::ExternalLinkage,
      llvm::ConstantStruct::get(
          moduleType,
          {llvm::ConstantInt::get(b.i32, NORMRT_MODULE_ABI_VERSION),
           llvm::ConstantInt::get(b.i32, descs.size()), b.string(moduleName),
           layers, halideApi, cudaApi, openclInterface}),
      "normc_module_" + moduleName);

  // static void register(void) { normrt_register_module(&table); }
  llvm::FunctionCallee registerFn = module.getOrInsertFunction(
      "normrt_register_module",
      llvm::FunctionType::get(b.i32, {moduleType->getPointerTo()}, false));
  auto *ctor = llvm::Function::Create(
      llvm::FunctionType::get(llvm::Type::getVoidTy(context), false),
      llvm::GlobalValue::InternalLinkage, "normc_register_" + moduleName,
      module);
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
    return makeError("LLVM cannot emit objects for " + triple);
  passes.run(module);
  out.keep();
  return llvm::Error::success();
}

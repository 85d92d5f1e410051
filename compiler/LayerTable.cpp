//===- LayerTable.cpp - The layer table of a module as an object file -----===//
//
// This file implements writeLayerTableObject (ModuleFiles.h). The table's
// structs (runtime/include/normrt/module.h) are mirrored here as LLVM IR
// types built from field lists (kDescFields, ...) that static_asserts hold
// to the C declarations: every field at its offsetof, the list covering the
// whole struct. A change to module.h that is not made here fails to compile. Each layer gets an array of kernel variants
// (one per target of its label, with the CPU features each variant's code
// may use); the module gets the Halide runtime entry points normrt calls,
// and its device interfaces when it has GPU layers. A constructor registers
// the table with normrt when the object is linked in or loaded.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelObject.h"
#include "compiler/ModuleFiles.h"
#include "compiler/Support.h"
#include "runtime/include/normrt/module.h"

#include "llvm/ADT/StringExtras.h"

#include <cstddef>
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

/// The LLVM type of a mirrored field.
enum class FieldType { Pointer, I64, F64, I32 };

constexpr size_t fieldSize(FieldType t) {
  return t == FieldType::I32 ? 4 : 8;
}

struct Field {
  size_t offset; ///< offsetof in the C struct
  FieldType type;
};

/// The fields, in order, tile the struct: each starts where the previous
/// ended (with natural alignment), and the last ends at its size (rounded
/// up to 8, the struct's alignment).
template <size_t N>
constexpr bool tiles(const Field (&fields)[N], size_t structSize) {
  size_t end = 0;
  for (size_t i = 0; i < N; ++i) {
    size_t size = fieldSize(fields[i].type);
    size_t aligned = (end + size - 1) / size * size;
    if (fields[i].offset != aligned)
      return false;
    end = aligned + size;
  }
  return (end + 7) / 8 * 8 == structSize;
}

#define NORMRT_FIELD(type, member, kind)                                       \
  Field { offsetof(type, member), FieldType::kind }

constexpr Field kDescFields[] = {
    NORMRT_FIELD(normrt_layer_desc, name, Pointer),
    NORMRT_FIELD(normrt_layer_desc, target, Pointer),
    NORMRT_FIELD(normrt_layer_desc, target_string, Pointer),
    NORMRT_FIELD(normrt_layer_desc, kind, Pointer),
    NORMRT_FIELD(normrt_layer_desc, variants, Pointer),
    NORMRT_FIELD(normrt_layer_desc, signatures, Pointer),
    NORMRT_FIELD(normrt_layer_desc, normalized_shape, Pointer),
    NORMRT_FIELD(normrt_layer_desc, num_features, I64),
    NORMRT_FIELD(normrt_layer_desc, num_groups, I64),
    NORMRT_FIELD(normrt_layer_desc, eps, F64),
    NORMRT_FIELD(normrt_layer_desc, momentum, F64),
    NORMRT_FIELD(normrt_layer_desc, spatial_rank, I32),
    NORMRT_FIELD(normrt_layer_desc, momentum_is_none, I32),
    NORMRT_FIELD(normrt_layer_desc, affine, I32),
    NORMRT_FIELD(normrt_layer_desc, track_running_stats, I32),
    NORMRT_FIELD(normrt_layer_desc, dtype, I32),
    NORMRT_FIELD(normrt_layer_desc, param_dtype, I32),
    NORMRT_FIELD(normrt_layer_desc, device, I32),
    NORMRT_FIELD(normrt_layer_desc, layout, I32),
    NORMRT_FIELD(normrt_layer_desc, num_variants, I32),
    NORMRT_FIELD(normrt_layer_desc, normalized_ndim, I32),
    NORMRT_FIELD(normrt_layer_desc, bias, I32),
    NORMRT_FIELD(normrt_layer_desc, activation, I32),
    NORMRT_FIELD(normrt_layer_desc, residual, I32),
    NORMRT_FIELD(normrt_layer_desc, num_forms, I32),
};
static_assert(tiles(kDescFields, sizeof(normrt_layer_desc)),
              "kDescFields must mirror normrt_layer_desc field by field");

constexpr Field kSignatureFields[] = {
    NORMRT_FIELD(normrt_kernel_signature, args, Pointer),
    NORMRT_FIELD(normrt_kernel_signature, num_args, I32),
    NORMRT_FIELD(normrt_kernel_signature, reserved, I32),
};
static_assert(tiles(kSignatureFields, sizeof(normrt_kernel_signature)),
              "kSignatureFields must mirror normrt_kernel_signature");

constexpr Field kVariantFields[] = {
    NORMRT_FIELD(normrt_kernel_variant, target_string, Pointer),
    NORMRT_FIELD(normrt_kernel_variant, cpu_features, Pointer),
};
static_assert(offsetof(normrt_kernel_variant, kernels) == 16 &&
                  offsetof(normrt_kernel_variant, streaming_kernels) ==
                      16 + NORMRT_KERNEL_COUNT * sizeof(void *) &&
                  sizeof(normrt_kernel_variant) ==
                      16 + 2 * NORMRT_KERNEL_COUNT * sizeof(void *),
              "normrt_kernel_variant: two strings, the kernels, then their "
              "streaming variants");

constexpr Field kModuleFields[] = {
    NORMRT_FIELD(normrt_module, abi_version, I32),
    NORMRT_FIELD(normrt_module, num_layers, I32),
    NORMRT_FIELD(normrt_module, name, Pointer),
    NORMRT_FIELD(normrt_module, layers, Pointer),
    NORMRT_FIELD(normrt_module, halide, Pointer),
    NORMRT_FIELD(normrt_module, cuda, Pointer),
    NORMRT_FIELD(normrt_module, opencl_device_interface, Pointer),
};
static_assert(tiles(kModuleFields, sizeof(normrt_module)),
              "kModuleFields must mirror normrt_module");
static_assert(sizeof(normrt_halide_api) == 9 * sizeof(void *) &&
                  sizeof(normrt_cuda_api) == 6 * sizeof(void *),
              "the Halide and CUDA entry-point tables below list every "
              "member of normrt_halide_api and normrt_cuda_api");
#undef NORMRT_FIELD

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
  llvm::Type *type(FieldType t) {
    switch (t) {
    case FieldType::Pointer:
      return i8p;
    case FieldType::I64:
      return i64;
    case FieldType::F64:
      return f64;
    case FieldType::I32:
      return i32;
    }
    return i32;
  }
  /// The LLVM struct of a field list.
  template <size_t N>
  llvm::StructType *structType(const Field (&fields)[N],
                               std::vector<llvm::Type *> extra,
                               llvm::StringRef name) {
    std::vector<llvm::Type *> types;
    for (const Field &f : fields)
      types.push_back(type(f.type));
    types.insert(types.end(), extra.begin(), extra.end());
    return llvm::StructType::create(context, types, name);
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
  llvm::StructType *variantType =
      b.structType(kVariantFields, {kernelArray, kernelArray},
                   "normrt_kernel_variant");
  llvm::StructType *signatureType =
      b.structType(kSignatureFields, {}, "normrt_kernel_signature");
  llvm::StructType *descType =
      b.structType(kDescFields, {}, "normrt_layer_desc");
  llvm::StructType *moduleType =
      b.structType(kModuleFields, {}, "normrt_module");
  auto i32 = [&](int64_t v) { return llvm::ConstantInt::get(b.i32, v); };

  // The forms of one spec layer on one target (a norm.layer op per dtype
  // and layout) are consecutive descs: the first has num_forms = their
  // number, the others 0.
  std::vector<std::pair<const PlannedLayer *, int32_t>> ordered;
  std::vector<bool> taken(plan.layers.size(), false);
  for (size_t i = 0; i < plan.layers.size(); ++i) {
    if (taken[i])
      continue;
    norm::LayerOp first = plan.layers[i].op;
    size_t start = ordered.size();
    for (size_t j = i; j < plan.layers.size(); ++j) {
      norm::LayerOp op = plan.layers[j].op;
      if (taken[j] || plan.layers[j].target != plan.layers[i].target ||
          op.getLayerName() != first.getLayerName())
        continue;
      taken[j] = true;
      ordered.emplace_back(&plan.layers[j], 0);
    }
    ordered[start].second = int32_t(ordered.size() - start);
  }

  std::vector<llvm::Constant *> descs;
  for (const auto &entry : ordered) {
    const PlannedLayer &layer = *entry.first;
    norm::LayerOp op = layer.op;
    const PlannedTarget &target = plan.targets[layer.target];
    std::vector<llvm::Constant *> variants;
    for (size_t v = 0; v < target.variants.size(); ++v) {
      std::vector<llvm::Constant *> kernels, streaming;
      for (int index : layer.kernel) {
        if (index < 0) {
          kernels.push_back(b.null());
          streaming.push_back(b.null());
          continue;
        }
        const PlannedKernel &kernel = plan.kernels[index];
        std::string function = plan.variantFunction(kernel, v);
        kernels.push_back(b.function(function + "_argv"));
        streaming.push_back(kernel.streamingBuffers.empty()
                                ? b.null()
                                : b.function(function + kStreamingSuffix +
                                             "_argv"));
      }
      variants.push_back(llvm::ConstantStruct::get(
          variantType, {b.string(target.variants[v].to_string()),
                        b.string(llvm::join(target.cpuFeatures[v], ",")),
                        llvm::ConstantArray::get(kernelArray, kernels),
                        llvm::ConstantArray::get(kernelArray, streaming)}));
    }
    auto *variantArrayType = llvm::ArrayType::get(variantType, variants.size());
    llvm::Constant *variantArray = b.global(
        llvm::ConstantArray::get(variantArrayType, variants), "variants");

    // The kernels' signatures: their arguments' roles.
    std::vector<llvm::Constant *> signatures;
    for (int index : layer.kernel) {
      if (index < 0) {
        signatures.push_back(llvm::ConstantStruct::get(
            signatureType, {b.null(), i32(0), i32(0)}));
        continue;
      }
      const std::vector<int32_t> &roles = plan.kernels[index].roles;
      std::vector<llvm::Constant *> entries;
      for (int32_t role : roles)
        entries.push_back(i32(role));
      llvm::Constant *args = b.global(
          llvm::ConstantArray::get(llvm::ArrayType::get(b.i32, entries.size()),
                                   entries),
          "signature");
      signatures.push_back(llvm::ConstantStruct::get(
          signatureType, {args, i32(roles.size()), i32(0)}));
    }
    llvm::Constant *signatureArray = b.global(
        llvm::ConstantArray::get(
            llvm::ArrayType::get(signatureType, signatures.size()), signatures),
        "signatures");

    llvm::Constant *normalizedShape = b.null();
    int64_t normalizedNdim = 0;
    if (auto shape = op.normalized_shape()) {
      std::vector<llvm::Constant *> dims;
      for (mlir::Attribute a : *shape)
        dims.push_back(llvm::ConstantInt::get(
            b.i64, a.cast<mlir::IntegerAttr>().getInt()));
      normalizedNdim = dims.size();
      normalizedShape = b.global(
          llvm::ConstantArray::get(llvm::ArrayType::get(b.i64, dims.size()),
                                   dims),
          "normalized_shape");
    }

    Halide::Type io = halideType(op.dtype());
    Halide::Type param = parameterType(io);
    auto m = op.momentum();
    // In kDescFields' order.
    descs.push_back(llvm::ConstantStruct::get(
        descType,
        {b.string(op.getLayerName()), b.string(target.label),
         b.string(target.targetString), b.string(op.kind()), variantArray,
         signatureArray, normalizedShape,
         llvm::ConstantInt::get(b.i64, op.num_featuresAttr().getInt()),
         llvm::ConstantInt::get(b.i64, op.num_groups() ? *op.num_groups() : 0),
         llvm::ConstantFP::get(b.f64, op.eps().convertToDouble()),
         llvm::ConstantFP::get(b.f64, m ? m->convertToDouble() : 0.0),
         i32(op.getSpatialRank()), i32(m ? 0 : 1), i32(op.affine() ? 1 : 0),
         i32(op.tracksRunningStats() ? 1 : 0), i32(normrtDtype(io)),
         i32(normrtDtype(param)), i32(target.device),
         i32(op.isChannelsLast() ? 1 : 0), i32(variants.size()),
         i32(normalizedNdim), i32(op.bias() ? 1 : 0),
         i32(int32_t(op.getActivationKind())), i32(op.residual() ? 1 : 0),
         i32(entry.second)}));
  }
  llvm::ArrayType *tableType = llvm::ArrayType::get(descType, descs.size());
  llvm::Constant *layers =
      b.global(llvm::ConstantArray::get(tableType, descs), "layers");

  // Mirrors normrt_halide_api, in its field order.
  llvm::Constant *halideApi = b.functionTable(
      {"halide_set_error_handler", "halide_set_num_threads",
       "halide_copy_to_device", "halide_copy_to_host", "halide_device_free",
       "halide_device_sync", "halide_reuse_device_allocations",
       "halide_set_custom_malloc", "halide_set_custom_free"},
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
          {i32(NORMRT_MODULE_ABI_VERSION), i32(descs.size()),
           b.string(moduleName),
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

//===- StreamingStores.cpp - Non-temporal stores of tensor outputs --------===//
//
// This file implements StreamingStoresPass (StreamingStores.h). It runs on
// the LLVM module Halide made of one kernel, after Halide's optimizations
// and before instruction selection, so the stores it sees are the stores
// the kernel executes.
//
//===----------------------------------------------------------------------===//

#include "compiler/StreamingStores.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/ADT/Triple.h"
#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/Instructions.h"
#include "llvm/IR/IntrinsicsX86.h"
#include "llvm/IR/Metadata.h"
#include "llvm/IR/Module.h"
#include "llvm/Transforms/Utils/BasicBlockUtils.h"

using namespace llvm;

namespace {

/// The widest store one instruction makes (a 512-bit register); wider IR
/// vectors are split into stores of this size, each aligned when the whole
/// is.
constexpr uint64_t kMaxStoreBytes = 64;

/// The name Halide gives a TBAA type node: its first operand.
StringRef nodeName(const MDNode *node) {
  if (!node || node->getNumOperands() == 0)
    return "";
  if (auto *name = dyn_cast<MDString>(node->getOperand(0)))
    return name->getString();
  return "";
}

/// The node's parent in the TBAA type tree (second operand), or null.
const MDNode *parentOf(const MDNode *node) {
  if (!node || node->getNumOperands() < 2)
    return nullptr;
  return dyn_cast<MDNode>(node->getOperand(1));
}

/// The buffer `access` touches, without the "$n" Halide appends to make a
/// second Func of the same name in one process unique.
std::string bufferName(const Instruction &access) {
  std::string name = normc::halideBufferOf(access);
  return name.substr(0, name.find('$'));
}

/// A vector of half or bfloat stored as the integers of its bits, in place
/// of `store`. x86 has no legal f16 vector type without AVX512-FP16: such a
/// value that reaches a store in another basic block (the guarded streaming
/// store below) travels as one register per element, and instruction
/// selection would store it element by element.
void storeAsIntegers(StoreInst *store) {
  auto *type = cast<VectorType>(store->getValueOperand()->getType());
  if (!type->getElementType()->isHalfTy() &&
      !type->getElementType()->isBFloatTy())
    return;
  IRBuilder<> b(store);
  Type *bits = VectorType::getInteger(type);
  Value *pointer = store->getPointerOperand();
  store->setOperand(0, b.CreateBitCast(store->getValueOperand(), bits));
  store->setOperand(
      1, b.CreateBitCast(pointer, bits->getPointerTo(
                                      pointer->getType()->getPointerAddressSpace())));
}

/// Makes `store` non-temporal at `alignment`.
void makeStreaming(StoreInst *store, uint64_t alignment) {
  store->setAlignment(Align(alignment));
  MDNode *one = MDNode::get(
      store->getContext(),
      ConstantAsMetadata::get(
          ConstantInt::get(Type::getInt32Ty(store->getContext()), 1)));
  store->setMetadata(LLVMContext::MD_nontemporal, one);
}

} // namespace

std::string normc::halideBufferOf(const Instruction &access) {
  // An access tag is (base type, access type, offset); Halide's base types
  // hang under the buffer's node, which hangs under "Halide buffer".
  const MDNode *tag = access.getMetadata(LLVMContext::MD_tbaa);
  if (!tag || tag->getNumOperands() < 1)
    return "";
  for (const MDNode *node = dyn_cast<MDNode>(tag->getOperand(0)); node;
       node = parentOf(node))
    if (nodeName(parentOf(node)) == "Halide buffer")
      return nodeName(node).str();
  return "";
}

PreservedAnalyses normc::StreamingStoresPass::run(Module &module,
                                                  ModuleAnalysisManager &) {
  streamed = guarded = 0;
  StringSet<> names;
  for (const std::string &b : buffers)
    names.insert(b);
  const DataLayout &layout = module.getDataLayout();
  bool x86 = Triple(module.getTargetTriple()).isX86();

  for (Function &fn : module) {
    std::vector<StoreInst *> stores;
    for (BasicBlock &block : fn)
      for (Instruction &inst : block)
        if (auto *store = dyn_cast<StoreInst>(&inst))
          if (store->getValueOperand()->getType()->isVectorTy() &&
              !store->isVolatile() && names.count(bufferName(*store)))
            stores.push_back(store);

    unsigned inFunction = 0;
    for (StoreInst *store : stores) {
      uint64_t bytes =
          layout.getTypeStoreSize(store->getValueOperand()->getType())
              .getFixedSize();
      // Non-temporal stores exist for 16, 32 and 64 bytes (and whole
      // multiples of 64, which instruction selection splits).
      if (bytes < 16 || (bytes < kMaxStoreBytes && !isPowerOf2_64(bytes)) ||
          (bytes > kMaxStoreBytes && bytes % kMaxStoreBytes != 0))
        continue;
      uint64_t alignment = std::min(bytes, kMaxStoreBytes);
      ++inFunction;
      storeAsIntegers(store);
      if (store->getAlign().value() >= alignment) {
        makeStreaming(store, alignment);
        ++streamed;
        continue;
      }
      // if (address % alignment == 0) streaming store; else the store.
      IRBuilder<> b(store);
      Value *address = b.CreatePtrToInt(store->getPointerOperand(),
                                        layout.getIntPtrType(store->getContext()));
      Value *aligned = b.CreateICmpEQ(
          b.CreateAnd(address, alignment - 1),
          ConstantInt::get(address->getType(), 0), "streaming.aligned");
      Instruction *thenTerm = nullptr, *elseTerm = nullptr;
      SplitBlockAndInsertIfThenElse(aligned, store, &thenTerm, &elseTerm);
      auto *streaming = cast<StoreInst>(store->clone());
      streaming->insertBefore(thenTerm);
      makeStreaming(streaming, alignment);
      store->moveBefore(elseTerm);
      ++guarded;
    }

    if (inFunction == 0 || !x86)
      continue;
    // Streaming stores are weakly ordered: fence them before the function
    // hands its work back (a task returning to Halide's thread pool).
    Function *sfence = Intrinsic::getDeclaration(&module, Intrinsic::x86_sse_sfence);
    for (BasicBlock &block : fn)
      if (auto *ret = dyn_cast<ReturnInst>(block.getTerminator()))
        CallInst::Create(sfence, "", ret);
  }
  return streamed + guarded ? PreservedAnalyses::none()
                            : PreservedAnalyses::all();
}

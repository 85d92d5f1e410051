//===- HalfConversions.h - f16 conversions with the CPU's instructions -*- C++ -*-===//
//
// This file declares how CPU kernels convert f16 tensors. Halide 14 lowers
// every f16 cast to integer emulation (a dozen vector operations a value)
// even on targets with F16C, which made f16 kernels three to four times
// slower than bf16 ones. On x86 targets with F16C (every AVX2 CPU) the
// kernels instead call two functions normc defines in LLVM IR, handed to
// Halide as external bitcode: `fpext half` and `fptrunc ... to half`, which
// LLVM selects as VCVTPH2PS and VCVTPS2PH. Halide finds their vector forms
// by its naming convention (`fnxN` is the N-lane form of `fn`) and inlines
// them; the values are those of Halide's casts and PyTorch's (exact
// widening, round to nearest even).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_COMPILER_HALFCONVERSIONS_H
#define NORMC_COMPILER_HALFCONVERSIONS_H

#include "Halide.h"

namespace llvm {
class Module;
} // namespace llvm

namespace normc {

/// Whether kernels for `target` convert f16 with hardware instructions: an
/// x86 CPU target with F16C (which every AVX2 target has).
bool hasHardwareHalfConversions(const Halide::Target &target);

/// The f32 value of f16 bits (a UInt(16) Expr).
Halide::Expr halfBitsToFloat(Halide::Expr bits);

/// The f16 bits (UInt(16)) of an f32 Expr, rounded to nearest even.
Halide::Expr floatToHalfBits(Halide::Expr value);

/// The f16 bits (UInt(16)) of an f32 Expr, rounded to nearest even, in
/// integer arithmetic: for CPUs without F16C. (Halide 14's own emulation
/// tests for infinity before NaN and turns every NaN into an infinity.)
/// NaNs stay NaN, quieted, with the top of their payload, as F16C keeps it.
Halide::Expr roundToHalfBits(Halide::Expr value);

/// LLVM bitcode defining the two functions above in scalar form and in
/// vector forms of 2 to 64 lanes, for kernels compiled for `target`
/// (append it to the kernel's Halide::Module).
Halide::ExternalCode halfConversionCode(const Halide::Target &target);

/// Removes the conversions' definitions from a kernel Halide has lowered to
/// LLVM (they are inlined by then), or makes them internal where a call is
/// left, so that kernel objects linked together do not clash.
void localizeHalfConversions(llvm::Module &module);

} // namespace normc

#endif // NORMC_COMPILER_HALFCONVERSIONS_H

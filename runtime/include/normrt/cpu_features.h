/*===- cpu_features.h - The x86 CPU features normc kernels are checked for -*- C -*-===*\
 *
 * One table, read by both sides of a module: normc records, for each kernel
 * variant it compiles, which of these features the variant's code may use
 * (the features that LLVM's subtarget for the variant's Halide target
 * enables), and normrt checks them against the CPU it runs on before it
 * hands a layer out, so that a kernel never dies with SIGILL.
 *
 * The names are LLVM's (llvm::sys::getHostCPUFeatures). The list holds every
 * instruction-set extension that LLVM's code generator may use in arithmetic
 * code; system extensions (TSX, SGX, ...) are left out because kernels never
 * contain their instructions. Each entry gives where CPUID reports the
 * feature and which XSAVE state components (XCR0 bits) the OS must enable for
 * it to be usable:
 *   NORMRT_X86_FEATURE(name, leaf, subleaf, register, bit, xcr0)
 * with register 0 EAX, 1 EBX, 2 ECX, 3 EDX.
\*===----------------------------------------------------------------------===*/

#ifndef NORMRT_CPU_FEATURES_H
#define NORMRT_CPU_FEATURES_H

/* XSAVE state the OS must enable: SSE/AVX registers, AVX-512 opmask and
 * upper ZMM registers, AMX tiles. */
#define NORMRT_XCR0_AVX 0x6u
#define NORMRT_XCR0_AVX512 0xe6u
#define NORMRT_XCR0_AMX 0x60000u

#define NORMRT_X86_FEATURES(X)                                                 \
  X("sse", 1, 0, 3, 25, 0)                                                     \
  X("sse2", 1, 0, 3, 26, 0)                                                    \
  X("sse3", 1, 0, 2, 0, 0)                                                     \
  X("pclmul", 1, 0, 2, 1, 0)                                                   \
  X("ssse3", 1, 0, 2, 9, 0)                                                    \
  X("fma", 1, 0, 2, 12, NORMRT_XCR0_AVX)                                       \
  X("sse4.1", 1, 0, 2, 19, 0)                                                  \
  X("sse4.2", 1, 0, 2, 20, 0)                                                  \
  X("movbe", 1, 0, 2, 22, 0)                                                   \
  X("popcnt", 1, 0, 2, 23, 0)                                                  \
  X("aes", 1, 0, 2, 25, 0)                                                     \
  X("avx", 1, 0, 2, 28, NORMRT_XCR0_AVX)                                       \
  X("f16c", 1, 0, 2, 29, NORMRT_XCR0_AVX)                                      \
  X("bmi", 7, 0, 1, 3, 0)                                                      \
  X("avx2", 7, 0, 1, 5, NORMRT_XCR0_AVX)                                       \
  X("bmi2", 7, 0, 1, 8, 0)                                                     \
  X("avx512f", 7, 0, 1, 16, NORMRT_XCR0_AVX512)                                \
  X("avx512dq", 7, 0, 1, 17, NORMRT_XCR0_AVX512)                               \
  X("adx", 7, 0, 1, 19, 0)                                                     \
  X("avx512ifma", 7, 0, 1, 21, NORMRT_XCR0_AVX512)                             \
  X("avx512pf", 7, 0, 1, 26, NORMRT_XCR0_AVX512)                               \
  X("avx512er", 7, 0, 1, 27, NORMRT_XCR0_AVX512)                               \
  X("avx512cd", 7, 0, 1, 28, NORMRT_XCR0_AVX512)                               \
  X("sha", 7, 0, 1, 29, 0)                                                     \
  X("avx512bw", 7, 0, 1, 30, NORMRT_XCR0_AVX512)                               \
  X("avx512vl", 7, 0, 1, 31, NORMRT_XCR0_AVX512)                               \
  X("avx512vbmi", 7, 0, 2, 1, NORMRT_XCR0_AVX512)                              \
  X("avx512vbmi2", 7, 0, 2, 6, NORMRT_XCR0_AVX512)                             \
  X("gfni", 7, 0, 2, 8, 0)                                                     \
  X("vaes", 7, 0, 2, 9, NORMRT_XCR0_AVX)                                       \
  X("vpclmulqdq", 7, 0, 2, 10, NORMRT_XCR0_AVX)                                \
  X("avx512vnni", 7, 0, 2, 11, NORMRT_XCR0_AVX512)                             \
  X("avx512bitalg", 7, 0, 2, 12, NORMRT_XCR0_AVX512)                           \
  X("avx512vpopcntdq", 7, 0, 2, 14, NORMRT_XCR0_AVX512)                        \
  X("avx512vp2intersect", 7, 0, 3, 8, NORMRT_XCR0_AVX512)                      \
  X("amx-bf16", 7, 0, 3, 22, NORMRT_XCR0_AMX)                                  \
  X("avx512fp16", 7, 0, 3, 23, NORMRT_XCR0_AVX512)                             \
  X("amx-tile", 7, 0, 3, 24, NORMRT_XCR0_AMX)                                  \
  X("amx-int8", 7, 0, 3, 25, NORMRT_XCR0_AMX)                                  \
  X("avxvnni", 7, 1, 0, 4, NORMRT_XCR0_AVX)                                    \
  X("avx512bf16", 7, 1, 0, 5, NORMRT_XCR0_AVX512)                              \
  X("lzcnt", 0x80000001u, 0, 2, 5, 0)                                          \
  X("sse4a", 0x80000001u, 0, 2, 6, 0)                                          \
  X("xop", 0x80000001u, 0, 2, 11, NORMRT_XCR0_AVX)                             \
  X("fma4", 0x80000001u, 0, 2, 16, NORMRT_XCR0_AVX)

#endif /* NORMRT_CPU_FEATURES_H */

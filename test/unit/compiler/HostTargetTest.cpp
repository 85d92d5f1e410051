//===- HostTargetTest.cpp - `host` resolves to what the CPU runs ----------===//
//
// Resolution of `host` for the feature sets of real CPUs (LLVM's processor
// definitions; Zen 4, which LLVM 14 predates, as Zen 3 plus its AVX-512
// extensions), and the agreement of normrt's CPUID reading with LLVM's on
// the machine running the test.
//
//===----------------------------------------------------------------------===//

#include "compiler/HostTarget.h"
#include "CpuFeatures.h"

#include "Halide.h"

#include "gtest/gtest.h"

using namespace normc;

namespace {

/// Zen 4's AVX-512 subset: no AVX512-FP16, no AMX, no AVX-VNNI.
constexpr const char *kZen4Additions =
    "+avx512f,+avx512cd,+avx512bw,+avx512dq,+avx512vl,+avx512ifma,"
    "+avx512vbmi,+avx512vbmi2,+avx512vnni,+avx512bitalg,+avx512vpopcntdq,"
    "+avx512bf16,+gfni,+vaes,+vpclmulqdq";

std::string resolveFor(llvm::StringRef cpu, llvm::StringRef changes,
                       llvm::StringRef target = "host") {
  auto features = cpuFeaturesOf(cpu, changes);
  if (!features)
    return "error: " + llvm::toString(features.takeError());
  auto resolved = resolveTarget(target, *features);
  if (!resolved)
    return "error: " + llvm::toString(resolved.takeError());
  return *resolved;
}

class HostTarget : public ::testing::Test {
protected:
  void SetUp() override {
    if (Halide::get_host_target().arch != Halide::Target::X86 ||
        Halide::get_host_target().os != Halide::Target::Linux)
      GTEST_SKIP() << "the expected strings are those of an x86-64 Linux host";
  }
};

TEST_F(HostTarget, RealCpus) {
  const std::string base = "x86-64-linux-";
  EXPECT_EQ(resolveFor("znver3", kZen4Additions),
            base + "avx-avx2-avx512-avx512_cannonlake-avx512_skylake-f16c-"
                   "fma-sse41")
      << "Zen 4";
  EXPECT_EQ(resolveFor("znver3", ""), base + "avx-avx2-f16c-fma-sse41");
  EXPECT_EQ(resolveFor("sapphirerapids", ""),
            base + "avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-"
                   "avx512_skylake-f16c-fma-sse41");
  EXPECT_EQ(resolveFor("icelake-server", ""),
            base + "avx-avx2-avx512-avx512_cannonlake-avx512_skylake-f16c-fma-"
                   "sse41");
  EXPECT_EQ(resolveFor("skylake-avx512", ""),
            base + "avx-avx2-avx512-avx512_skylake-f16c-fma-sse41");
  EXPECT_EQ(resolveFor("haswell", ""), base + "avx-avx2-f16c-fma-sse41");
  EXPECT_EQ(resolveFor("penryn", ""), base + "sse41") << "SSE4.1 only";
  EXPECT_EQ(resolveFor("x86-64", ""), "x86-64-linux") << "SSE2 only";
}

TEST_F(HostTarget, FeaturesAfterHostAreKept) {
  EXPECT_EQ(resolveFor("haswell", "", "host-cuda-cuda_capability_80"),
            "x86-64-linux-avx-avx2-cuda-cuda_capability_80-f16c-fma-sse41");
  EXPECT_EQ(resolveFor("haswell", "", "x86-64-linux-sse41"),
            "x86-64-linux-sse41")
      << "explicit targets are left as written";
}

TEST_F(HostTarget, SapphireRapidsCodeNeedsAvx512Fp16) {
  // Why Halide's own host target crashed on Zen 4: LLVM's sapphirerapids CPU
  // brings AVX512-FP16, which Zen 4 lacks.
  auto required = requiredCpuFeatures(
      Halide::Target("x86-64-linux-avx-avx2-avx512-avx512_cannonlake-"
                     "avx512_sapphirerapids-avx512_skylake-f16c-fma-sse41"));
  ASSERT_TRUE(bool(required)) << llvm::toString(required.takeError());
  EXPECT_NE(llvm::find(*required, "avx512fp16"), required->end());
  auto zen4 = cpuFeaturesOf("znver3", kZen4Additions);
  ASSERT_TRUE(bool(zen4));
  EXPECT_EQ(missingCpuFeatures(*required, *zen4),
            (std::vector<std::string>{"avx512vp2intersect", "amx-bf16",
                                      "avx512fp16", "amx-tile", "amx-int8",
                                      "avxvnni"}));
}

TEST_F(HostTarget, BaselineNeedsNoExtension) {
  auto required = requiredCpuFeatures(Halide::Target("x86-64-linux"));
  ASSERT_TRUE(bool(required));
  for (const std::string &name : *required)
    EXPECT_TRUE(name == "sse" || name == "sse2") << name;
}

TEST(CpuFeatures, BadChangesAreErrors) {
  EXPECT_FALSE(bool(cpuFeaturesOf("haswell", "avx2")));
  EXPECT_FALSE(bool(cpuFeaturesOf("haswell", "+avx9000")));
  EXPECT_FALSE(bool(cpuFeaturesOf("no-such-cpu", "")));
}

TEST(CpuFeatures, NormrtReadsTheCpuAsLlvmDoes) {
  // normc resolves `host` with LLVM's reading and normrt checks variants with
  // its own: on this machine both must say the same of every feature.
  if (getenv("NORMRT_TEST_CPU_FEATURES"))
    GTEST_SKIP() << "NORMRT_TEST_CPU_FEATURES masks normrt's reading";
  CpuFeatures llvmView = detectHostCpuFeatures();
  for (const std::string &name : checkedCpuFeatures())
    EXPECT_EQ(normrt::cpuHasFeature(name), llvmView.lookup(name)) << name;
}

} // namespace

//===- KernelAlgorithmsTest.cpp - Algorithms and schedules, JIT-compiled --===//
//
// Runs the kernels' algorithms with their CPU schedules through Halide's JIT,
// independently of the AOT path, and checks the math on small inputs.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelAlgorithms.h"

#include "gtest/gtest.h"

#include <cmath>

using namespace normc;
using normc::norm::KernelKind;

namespace {

KernelConfig config(KernelKind kind, bool affine = true) {
  KernelConfig c;
  c.kind = kind;
  c.ioType = Halide::Float(32);
  c.paramType = Halide::Float(32);
  c.affine = affine;
  c.plan = normrt::kinds::planFor(*normrt::kinds::findKind("BatchNorm2d"),
                                  /*channelsLast=*/false, 2);
  c.trackRunning = true;
  return c;
}

TEST(KernelConfig, KeyCapturesExactlyWhatChangesTheCode) {
  KernelConfig a = config(KernelKind::Backward);
  KernelConfig b = a;
  b.eps = 1e-3; // the train backward does not use eps
  b.momentum = llvm::None;
  EXPECT_EQ(a.key(), b.key());
  b.affine = false;
  EXPECT_NE(a.key(), b.key());
  KernelConfig f = config(KernelKind::ForwardTrain), g = f;
  g.eps = 1e-3;
  EXPECT_NE(f.key(), g.key());
  KernelConfig u = config(KernelKind::UpdateStats), v = u;
  v.momentum = llvm::None;
  EXPECT_NE(u.key(), v.key());
  v.eps = 0.5; // the update does not use eps
  u.momentum = llvm::None;
  EXPECT_EQ(u.key(), v.key());
}

TEST(KernelAlgorithms, ForwardTrainJitMatchesFormula) {
  KernelAlgorithm a = buildKernelAlgorithm(config(KernelKind::ForwardTrain));
  std::string error;
  Halide::Target host = Halide::get_jit_target_from_environment();
  ASSERT_TRUE(schedules::applySchedule(a.stages, host, error)) << error;

  const int S = 11, C = 3, N = 2;
  Halide::Buffer<float> x(S, C, N), w(C), b(C);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int s = 0; s < S; ++s)
        x(s, c, n) = float(1000 + s * (c + 1) + n);
  for (int c = 0; c < C; ++c) {
    w(c) = 2.0f;
    b(c) = float(c);
  }
  Halide::Pipeline pipeline(a.outputs);
  Halide::Buffer<float> y(S, C, N), mean(C), invstd(C), var(C);
  ASSERT_EQ(a.images.size(), 3u); // x, weight, bias
  a.images[0].set(x);
  a.images[1].set(w);
  a.images[2].set(b);
  pipeline.realize(Halide::Realization({y, mean, invstd, var}), host);
  for (int c = 0; c < C; ++c) {
    double sum = 0, sq = 0;
    for (int n = 0; n < N; ++n)
      for (int s = 0; s < S; ++s)
        sum += x(s, c, n);
    double m = sum / (S * N);
    for (int n = 0; n < N; ++n)
      for (int s = 0; s < S; ++s)
        sq += (x(s, c, n) - m) * (x(s, c, n) - m);
    double v = sq / (S * N), is = 1.0 / std::sqrt(v + 1e-5);
    EXPECT_NEAR(mean(c), m, 1e-3);
    EXPECT_NEAR(var(c), v, 1e-4 * v);
    EXPECT_NEAR(invstd(c), is, 1e-5 * is);
    for (int n = 0; n < N; ++n)
      for (int s = 0; s < S; ++s)
        EXPECT_NEAR(y(s, c, n), (x(s, c, n) - m) * is * 2.0 + c, 1e-4);
  }
}

} // namespace

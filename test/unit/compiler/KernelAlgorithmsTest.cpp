//===- KernelAlgorithmsTest.cpp - Algorithms and schedules, JIT-compiled --===//
//
// Runs the kernels' algorithms with their CPU schedules through Halide's JIT,
// independently of the AOT path, and checks the math on small inputs.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelAlgorithms.h"
#include "runtime/include/normrt/module.h"

#include "gtest/gtest.h"

#include <algorithm>
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

namespace {

using normrt::kinds::planFor;

const normrt::kinds::Kind &kind(const char *name) {
  return *normrt::kinds::findKind(name);
}

TEST(ReductionPlan, EachKindReducesItsAxes) {
  using namespace normrt::kinds;
  ReductionPlan bn = planFor(kind("BatchNorm2d"), false, 2);
  EXPECT_TRUE(bn.reduced[S] && bn.reduced[N] && bn.kept(C) && !bn.has[K]);
  EXPECT_TRUE(bn.paramsAreStatGroups());
  EXPECT_EQ(bn.unitStride(), S);
  ReductionPlan in = planFor(kind("InstanceNorm2d"), true, 2);
  EXPECT_TRUE(in.kept(C) && in.kept(N) && in.reduced[S]);
  EXPECT_EQ(in.unitStride(), C);
  EXPECT_FALSE(in.unitStrideReduced());
  ReductionPlan gn = planFor(kind("GroupNorm"), false, -1);
  EXPECT_TRUE(gn.reduced[S] && gn.reduced[K] && gn.kept(C) && gn.kept(N));
  EXPECT_TRUE(gn.param[K] && gn.param[C] && !gn.paramsAreStatGroups());
  ReductionPlan ln = planFor(kind("LayerNorm"), false, 0);
  EXPECT_TRUE(ln.has[K] && ln.has[N] && !ln.has[S] && !ln.has[C]);
  EXPECT_TRUE(ln.unitStrideReduced());
  EXPECT_EQ(planFor(kind("RMSNorm"), false, 0).statistic,
            Statistic::MeanSquare);
  // The running-statistics kernels of InstanceNorm have BatchNorm's shape.
  ReductionPlan eval = runningStatsPlan(planFor(kind("InstanceNorm2d"), false, 2));
  EXPECT_TRUE(eval.reduced[N] && eval.paramsAreStatGroups());
}

TEST(KernelSignature, ListsTheArgumentsTheAlgorithmTakes) {
  KernelConfig c;
  c.kind = KernelKind::Backward;
  c.ioType = Halide::Float(32);
  c.paramType = Halide::Float(32);
  c.plan = planFor(kind("GroupNorm"), false, -1);
  c.activation = normrt::kinds::Activation::SiLU;
  c.residual = true;
  std::vector<int32_t> expected = {
      NORMRT_ARG_X,          NORMRT_ARG_RESIDUAL,
      NORMRT_ARG_GRAD_OUTPUT, NORMRT_ARG_SAVE_MEAN,
      NORMRT_ARG_SAVE_INVSTD, NORMRT_ARG_WEIGHT,
      NORMRT_ARG_BIAS,       NORMRT_ARG_GRAD_INPUT | NORMRT_ARG_OUTPUT,
      NORMRT_ARG_GRAD_RESIDUAL | NORMRT_ARG_OUTPUT,
      NORMRT_ARG_GRAD_WEIGHT | NORMRT_ARG_OUTPUT,
      NORMRT_ARG_GRAD_BIAS | NORMRT_ARG_OUTPUT};
  EXPECT_EQ(kernelSignature(c), expected);
  // The algorithm's arguments come in that order, by their Halide names.
  KernelAlgorithm a = buildKernelAlgorithm(c);
  ASSERT_EQ(a.inputs.size() + a.outputs.size(), expected.size());
  for (size_t i = 0; i < a.inputs.size(); ++i)
    EXPECT_EQ(a.inputs[i].name, normrt_arg_role_name(expected[i]));
  c.kind = KernelKind::ForwardTrain;
  c.plan = planFor(kind("RMSNorm"), false, 0);
  c.activation = normrt::kinds::Activation::None;
  c.residual = false;
  c.bias = false;
  EXPECT_EQ(kernelSignature(c),
            (std::vector<int32_t>{NORMRT_ARG_X, NORMRT_ARG_WEIGHT,
                                  NORMRT_ARG_Y | NORMRT_ARG_OUTPUT,
                                  NORMRT_ARG_SAVE_INVSTD | NORMRT_ARG_OUTPUT}));
}

TEST(KernelAlgorithms, LayerNormForwardJitMatchesFormula) {
  KernelConfig c;
  c.kind = KernelKind::ForwardTrain;
  c.ioType = Halide::Float(32);
  c.paramType = Halide::Float(32);
  c.plan = planFor(kind("LayerNorm"), false, 0);
  c.activation = normrt::kinds::Activation::ReLU;
  KernelAlgorithm a = buildKernelAlgorithm(c);
  std::string error;
  Halide::Target host = Halide::get_jit_target_from_environment();
  ASSERT_TRUE(schedules::applySchedule(a.stages, host, error)) << error;
  const int K = 37, N = 5;
  Halide::Buffer<float> x(K, N), w(K), b(K), y(K, N), mean(N), invstd(N);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k)
      x(k, n) = float(100 * n + (k * 7) % 11);
  for (int k = 0; k < K; ++k) {
    w(k) = 1.0f + 0.01f * k;
    b(k) = 0.1f * (k % 3) - 0.1f;
  }
  ASSERT_EQ(a.images.size(), 3u);
  a.images[0].set(x);
  a.images[1].set(w);
  a.images[2].set(b);
  Halide::Pipeline(a.outputs)
      .realize(Halide::Realization({y, mean, invstd}), host);
  for (int n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (int k = 0; k < K; ++k)
      m += x(k, n);
    m /= K;
    for (int k = 0; k < K; ++k)
      v += (x(k, n) - m) * (x(k, n) - m);
    double is = 1.0 / std::sqrt(v / K + 1e-5);
    EXPECT_NEAR(mean(n), m, 1e-4);
    for (int k = 0; k < K; ++k)
      EXPECT_NEAR(y(k, n),
                  std::max(0.0, (x(k, n) - m) * is * w(k) + b(k)), 1e-5);
  }
}

} // namespace

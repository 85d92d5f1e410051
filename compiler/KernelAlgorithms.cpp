//===- KernelAlgorithms.cpp - The math of every BatchNorm kernel ----------===//
//
// This file implements the algorithms of the five kernels with PyTorch's
// semantics (DESIGN.md, "Semantics"); n = N * prod(spatial) per channel.
//
// Numerics: every reduction accumulates in f64, whatever the tensor type, and
// statistics are two-pass (mean first, then the mean of squared deviations),
// never E[x^2] - E[x]^2, which loses all digits on data far from zero
// (PyTorch issue 5410). Elementwise math runs in f64 too and rounds once to
// the output type; these kernels are memory-bound, so the wider arithmetic
// costs bandwidth nothing.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelAlgorithms.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <sstream>

using namespace Halide;
using normc::norm::KernelKind;

namespace normc {

std::string KernelConfig::key() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  std::ostringstream types;
  types << "/io=" << ioType << "/p=" << paramType;
  os << norm::stringifyKernelKind(kind) << types.str();
  switch (kind) {
  case KernelKind::ForwardTrain:
  case KernelKind::ForwardEval:
  case KernelKind::BackwardEval:
    os << "/affine=" << affine << "/eps=" << llvm::format("%a", eps);
    break;
  case KernelKind::Backward:
    os << "/affine=" << affine;
    break;
  case KernelKind::UpdateStats:
    if (momentum)
      os << "/momentum=" << llvm::format("%a", *momentum);
    else
      os << "/momentum=None";
    break;
  }
  return os.str();
}

namespace {

const Type kAcc = Float(64);

/// Shared set-up: the input tensor, its extents and the reduction domain.
struct TensorInput {
  ImageParam x;
  RDom r;
  Expr count; ///< n = N * prod(spatial), as f64 (no 32-bit overflow)
  TensorInput(Type type, const std::string &name, schedules::KernelStages &k)
      : x(type, 3, name) {
    k.spatial = x.dim(0).extent();
    k.channels = x.dim(1).extent();
    k.batch = x.dim(2).extent();
    r = RDom(0, k.spatial, 0, k.batch, "r");
    count = cast(kAcc, k.spatial) * cast(kAcc, k.batch);
  }
};

Expr acc(Expr e) { return cast(kAcc, std::move(e)); }

/// sum over (s, n) of `value(r.x, r.y)` for each channel.
Func channelSum(const std::string &name, const RDom &r, Var c,
                const std::function<Tuple(Expr, Expr)> &value,
                schedules::KernelStages &k) {
  Func f(name);
  Tuple first = value(r.x, r.y);
  std::vector<Expr> zeros(first.size(), cast(kAcc, 0));
  f(c) = Tuple(zeros);
  std::vector<Expr> updated;
  for (size_t i = 0; i < first.size(); ++i)
    updated.push_back(first.size() == 1 ? f(c) + first[i] : f(c)[i] + first[i]);
  f(c) = Tuple(updated);
  k.reductions.emplace_back(f, r);
  return f;
}

/// Weight and bias; only affine layers take them as arguments.
struct AffineParams {
  ImageParam w, b;
  explicit AffineParams(Type type) : w(type, 1, "weight"), b(type, 1, "bias") {}
};

/// The buffer arguments of a kernel: `images`, then weight (and bias) for
/// affine layers.
void setImages(KernelAlgorithm &a, std::vector<ImageParam> images,
               const KernelConfig &cfg, const AffineParams &p, bool withBias) {
  if (cfg.affine) {
    images.push_back(p.w);
    if (withBias)
      images.push_back(p.b);
  }
  a.images = std::move(images);
  a.inputs.assign(a.images.begin(), a.images.end());
}

/// y = (x - mean) * (invstd * w) + b: the normalization both forwards share,
/// with per-channel scale and shift computed once per channel.
Func normalize(const KernelConfig &cfg, const TensorInput &in, Func mean,
               Func invstd, const AffineParams &p, schedules::KernelStages &k) {
  Var s = k.s, c = k.c, n = k.n;
  Func scale("scale"), shift("shift"), y("y");
  scale(c) = cfg.affine ? invstd(c) * acc(p.w(c)) : invstd(c);
  shift(c) = cfg.affine ? acc(p.b(c)) : cast(kAcc, 0);
  y(s, c, n) =
      cast(cfg.ioType, (acc(in.x(s, c, n)) - mean(c)) * scale(c) + shift(c));
  k.channelFuncs.insert(k.channelFuncs.end(), {mean, scale, shift});
  k.tensorOutputs.push_back(y);
  return y;
}

/// train forward:
///   mean = E[x], var = E[(x - mean)^2], invstd = 1 / sqrt(var + eps)
///   y = (x - mean) * invstd * w + b
KernelAlgorithm forwardTrain(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  Var c = k.c;
  TensorInput in(cfg.ioType, "x", k);
  AffineParams params(cfg.paramType);

  Func sumX = channelSum(
      "sum_x", in.r, c,
      [&](Expr rs, Expr rn) { return Tuple(acc(in.x(rs, c, rn))); }, k);
  Func mean("mean");
  mean(c) = sumX(c) / in.count;
  Func sumSq = channelSum(
      "sum_sq_dev", in.r, c,
      [&](Expr rs, Expr rn) {
        Expr d = acc(in.x(rs, c, rn)) - mean(c);
        return Tuple(d * d);
      },
      k);
  Func var("var"), invstd("invstd");
  var(c) = sumSq(c) / in.count;
  invstd(c) = Expr(1.0) / sqrt(var(c) + Expr(cfg.eps));
  Func y = normalize(cfg, in, mean, invstd, params, k);

  Func saveMean("save_mean"), saveInvstd("save_invstd"), batchVar("batch_var");
  saveMean(c) = cast(cfg.paramType, mean(c));
  saveInvstd(c) = cast(cfg.paramType, invstd(c));
  batchVar(c) = cast(cfg.paramType, var(c));

  setImages(a, {in.x}, cfg, params, /*withBias=*/true);
  a.outputs = {y, saveMean, saveInvstd, batchVar};
  k.channelOutputs = {saveMean, saveInvstd, batchVar};
  return a;
}

/// running statistics, after a train forward over n values per channel:
///   counter += 1; f = momentum, or 1 / counter when momentum is None
///   running_mean = (1 - f) running_mean + f mean
///   running_var  = (1 - f) running_var  + f var * n / (n - 1)
KernelAlgorithm updateStats(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  Var c = k.c;
  ImageParam batchMean(cfg.paramType, 1, "batch_mean"),
      batchVar(cfg.paramType, 1, "batch_var"),
      runningMean(cfg.paramType, 1, "running_mean"),
      runningVar(cfg.paramType, 1, "running_var"),
      counter(Int(64), 0, "num_batches_tracked");
  Param<int64_t> count("count");
  k.spatial = 1;
  k.channels = runningMean.dim(0).extent();
  k.batch = 1;

  Func counterOut("num_batches_tracked_out");
  counterOut() = counter() + 1;
  Expr f = cfg.momentum ? Expr(*cfg.momentum)
                        : Expr(1.0) / cast(kAcc, counter() + 1);
  Expr unbias = cast(kAcc, count) / cast(kAcc, count - 1);
  Func meanOut("running_mean_out"), varOut("running_var_out");
  meanOut(c) = cast(cfg.paramType, (Expr(1.0) - f) * acc(runningMean(c)) +
                                       f * acc(batchMean(c)));
  varOut(c) = cast(cfg.paramType, (Expr(1.0) - f) * acc(runningVar(c)) +
                                      f * acc(batchVar(c)) * unbias);

  a.images = {batchMean, batchVar, runningMean, runningVar, counter};
  a.inputs.assign(a.images.begin(), a.images.end());
  a.inputs.push_back(count);
  a.outputs = {meanOut, varOut, counterOut};
  k.ioType = cfg.paramType;
  k.channelOutputs = {meanOut, varOut};
  k.scalarOutputs = {counterOut};
  return a;
}

/// eval forward with running statistics:
///   y = (x - running_mean) / sqrt(running_var + eps) * w + b
KernelAlgorithm forwardEval(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  Var c = k.c;
  TensorInput in(cfg.ioType, "x", k);
  ImageParam runningMean(cfg.paramType, 1, "running_mean"),
      runningVar(cfg.paramType, 1, "running_var");
  AffineParams params(cfg.paramType);

  Func mean("mean"), invstd("invstd");
  mean(c) = acc(runningMean(c));
  invstd(c) = Expr(1.0) / sqrt(acc(runningVar(c)) + Expr(cfg.eps));
  Func y = normalize(cfg, in, mean, invstd, params, k);

  setImages(a, {in.x, runningMean, runningVar}, cfg, params,
            /*withBias=*/true);
  a.outputs = {y};
  return a;
}

/// backward through normalization with statistics `mean` and `invstd`
/// (batch statistics in training, running ones in eval):
///   xhat = (x - mean) * invstd, db = sum(dy), dw = sum(dy * xhat)
///   train: dx = w * invstd * (dy - db / n - xhat * dw / n)
///   eval:  dx = w * invstd * dy          (the statistics are constants)
KernelAlgorithm backward(const KernelConfig &cfg, bool eval) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  Var s = k.s, c = k.c, n = k.n;
  TensorInput in(cfg.ioType, "x", k);
  ImageParam dy(cfg.ioType, 3, "dy");
  ImageParam statMean(cfg.paramType, 1, eval ? "running_mean" : "save_mean");
  ImageParam statSecond(cfg.paramType, 1,
                        eval ? "running_var" : "save_invstd");
  AffineParams params(cfg.paramType);
  ImageParam w = params.w;

  Func mean("mean"), invstd("invstd");
  mean(c) = acc(statMean(c));
  invstd(c) = eval ? Expr(1.0) / sqrt(acc(statSecond(c)) + Expr(cfg.eps))
                   : acc(statSecond(c));

  Func sums = channelSum(
      "sum_dy_dyxmu", in.r, c,
      [&](Expr rs, Expr rn) {
        Expr g = acc(dy(rs, c, rn));
        return Tuple(g, g * (acc(in.x(rs, c, rn)) - mean(c)));
      },
      k);
  Func dweight("dweight"), dbias("dbias");
  dbias(c) = cast(cfg.paramType, sums(c)[0]);
  dweight(c) = cast(cfg.paramType, sums(c)[1] * invstd(c));

  Func gain("gain"), meanDy("mean_dy"), k2("xmu_coeff");
  gain(c) = cfg.affine ? invstd(c) * acc(w(c)) : invstd(c);
  Func dx("dx");
  if (eval) {
    dx(s, c, n) = cast(cfg.ioType, acc(dy(s, c, n)) * gain(c));
    k.channelFuncs = {gain};
  } else {
    meanDy(c) = sums(c)[0] / in.count;
    k2(c) = invstd(c) * invstd(c) * sums(c)[1] / in.count;
    dx(s, c, n) = cast(cfg.ioType, (acc(dy(s, c, n)) - meanDy(c) -
                                    (acc(in.x(s, c, n)) - mean(c)) * k2(c)) *
                                       gain(c));
    k.channelFuncs = {mean, gain, meanDy, k2};
  }

  setImages(a, {in.x, dy, statMean, statSecond}, cfg, params,
            /*withBias=*/false);
  a.outputs = {dx, dweight, dbias};
  k.channelOutputs = {dweight, dbias};
  k.tensorOutputs = {dx};
  return a;
}

} // namespace

KernelAlgorithm buildKernelAlgorithm(const KernelConfig &cfg) {
  KernelAlgorithm a;
  switch (cfg.kind) {
  case KernelKind::ForwardTrain:
    a = forwardTrain(cfg);
    break;
  case KernelKind::UpdateStats:
    a = updateStats(cfg);
    break;
  case KernelKind::ForwardEval:
    a = forwardEval(cfg);
    break;
  case KernelKind::Backward:
    a = backward(cfg, /*eval=*/false);
    break;
  case KernelKind::BackwardEval:
    a = backward(cfg, /*eval=*/true);
    break;
  }
  a.stages.kernel = norm::stringifyKernelKind(cfg.kind).str();
  if (a.stages.ioType.bits() == 0)
    a.stages.ioType = cfg.ioType;
  return a;
}

} // namespace normc

//===- KernelAlgorithms.cpp - The math of every BatchNorm kernel ----------===//
//
// This file implements the algorithms of the five kernels with PyTorch's
// semantics (docs/design.md, "Semantics"); n = N * prod(spatial) per channel.
//
// Numerics: reductions and elementwise math run in the accumulator type that
// PyTorch's CPU kernels use (f64 for f32 and f64 tensors, f32 for f16 and
// bf16) and round once to the output type; these kernels are memory-bound,
// so wider arithmetic costs bandwidth nothing. Batch statistics are shifted
// sums (one pass, stable: see forwardTrain), never E[x^2] - E[x]^2, which
// loses all digits on data far from zero (PyTorch issue 5410).
//
// Layouts: the math indexes tensors as [s, c, n] either way. Contiguous
// (NCHW) tensors have s innermost; channels-last (NHWC) ones have c
// innermost, which the kernels state as constraints on their buffers so
// that Halide knows the stride-1 dimension.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelAlgorithms.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <sstream>

using namespace Halide;
using normc::norm::KernelKind;

namespace normc {

Type accumulatorType(const Type &ioType) {
  return ioType.bits() >= 32 ? Float(64) : Float(32);
}

Type parameterType(const Type &ioType) {
  return ioType.bits() == 64 ? Float(64) : Float(32);
}

std::string KernelConfig::key() const {
  std::string text;
  llvm::raw_string_ostream os(text);
  std::ostringstream types;
  types << "/io=" << ioType << "/p=" << paramType;
  os << norm::stringifyKernelKind(kind) << types.str();
  if (bfloatAsBits)
    os << "/bf16bits";
  if (f64ConstantsAsBits)
    os << "/f64bits";
  if (kind != KernelKind::UpdateStats)
    os << "/layout=" << (channelsLast ? "channels_last" : "contiguous")
       << "/blocked=" << blockChannels;
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

/// The arithmetic type of one kernel, and constants and casts in it.
struct Arith {
  Type type;
  /// Write f64 constants as their bits (KernelConfig::f64ConstantsAsBits).
  bool f64AsBits = false;
  Expr operator()(Expr e) const { return cast(type, std::move(e)); }
  Expr constant(double value) const {
    if (f64AsBits && type == Float(64) && double(float(value)) != value) {
      uint64_t bits;
      std::memcpy(&bits, &value, sizeof bits);
      return reinterpret(Float(64), Internal::make_const(UInt(64), bits));
    }
    return Internal::make_const(type, value);
  }
};

Arith arith(const KernelConfig &cfg, Type type) {
  return Arith{type, cfg.f64ConstantsAsBits};
}

/// The element type of the x, dy, y and dx buffers: bf16 tensors travel as
/// their bits (uint16) when the config asks for it, so that no bf16 value
/// reaches a GPU backend (OpenCL C has no bf16 type; NVPTX in LLVM 14 cannot
/// select bf16 casts). normrt hands such kernels bf16 tensors as uint16.
Type tensorType(const KernelConfig &cfg) {
  if (cfg.bfloatAsBits && cfg.ioType.is_bfloat())
    return UInt(16);
  return cfg.ioType;
}

/// An element of x or dy as a value to compute with: bf16 bits widened to
/// f32, other types as they are.
Expr ioValue(const KernelConfig &cfg, Expr e) {
  if (!cfg.bfloatAsBits || !cfg.ioType.is_bfloat())
    return e;
  Expr bits = cast(UInt(32), e) << 16;
  return reinterpret(Float(32), bits);
}

/// A computed value rounded to the tensor type; for bf16 through its bits:
/// round to nearest even on the f32 bits, NaN kept quiet (as Halide's cast).
Expr ioResult(const KernelConfig &cfg, Expr v) {
  if (!cfg.bfloatAsBits || !cfg.ioType.is_bfloat())
    return cast(cfg.ioType, std::move(v));
  Expr f = cast(Float(32), std::move(v));
  Expr bits = reinterpret(UInt(32), f);
  Expr rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
  Expr result = select(is_nan(f), cast(UInt(32), 0x7fc0), rounded);
  return cast(UInt(16), result);
}

/// Tells Halide which dimension of a [s, c, n] tensor has stride 1.
void constrainLayout(OutputImageParam buffer, bool channelsLast) {
  if (channelsLast) {
    buffer.dim(0).set_stride(Expr());
    buffer.dim(1).set_stride(1);
  }
}

/// Shared set-up: the input tensor, its extents and the reduction domain.
struct TensorInput {
  ImageParam x;
  RDom r;
  Expr count; ///< n = N * prod(spatial), in the arithmetic type
  TensorInput(const KernelConfig &cfg, const Arith &A, const std::string &name,
              schedules::KernelStages &k)
      : x(tensorType(cfg), 3, name) {
    constrainLayout(x, cfg.channelsLast);
    k.spatial = x.dim(0).extent();
    k.channels = x.dim(1).extent();
    k.batch = x.dim(2).extent();
    r = RDom(0, k.spatial, 0, k.batch, "r");
    // Product in f64 first: N * S may overflow 32 bits, not the tensor.
    count = A(cast(Float(64), k.spatial) * cast(Float(64), k.batch));
  }
};

/// sum over (s, n) of `value(s, n)` for each channel. The images are summed
/// last to first: a channel-blocked schedule that writes the channel's output
/// first to last then starts on the images it read last, which are the ones
/// still in the core's cache (schedules/CpuPlanar.cpp).
Func channelSum(const std::string &name, const RDom &r, Var c, const Arith &A,
                const std::function<Tuple(Expr, Expr)> &value,
                schedules::KernelStages &k) {
  Func f(name);
  Tuple first = value(r.x, k.batch - 1 - r.y);
  std::vector<Expr> zeros(first.size(), A.constant(0));
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

/// A tensor output in the kernel's layout.
Func tensorOutput(const std::string &name, schedules::KernelStages &k) {
  Func f(name);
  k.tensorOutputs.push_back(f);
  return f;
}

/// Applies the layout constraints to the tensor outputs, once defined.
void constrainOutputs(const KernelConfig &cfg, schedules::KernelStages &k) {
  for (Func f : k.tensorOutputs)
    constrainLayout(f.output_buffer(), cfg.channelsLast);
}

/// y = (x - mean) * (invstd * w) + b: the normalization both forwards share,
/// with per-channel mean, scale and shift computed once per channel in the
/// accumulator type and the per-element math in `E`.
Func normalize(const KernelConfig &cfg, const Arith &A, const Arith &E,
               const TensorInput &in, Func mean, Func invstd,
               const AffineParams &p, schedules::KernelStages &k) {
  Var s = k.s, c = k.c, n = k.n;
  Func meanE("mean_e"), scale("scale"), shift("shift");
  meanE(c) = E(mean(c));
  scale(c) = E(cfg.affine ? invstd(c) * A(p.w(c)) : invstd(c));
  shift(c) = E(cfg.affine ? A(p.b(c)) : A.constant(0));
  Func y = tensorOutput("y", k);
  y(s, c, n) =
      ioResult(cfg, (E(ioValue(cfg, in.x(s, c, n))) - meanE(c)) * scale(c) +
                    shift(c));
  k.channelFuncs.insert(k.channelFuncs.end(), {meanE, scale, shift});
  return y;
}

/// The per-element arithmetic type where it may be narrower than the
/// accumulator: f32 tensors whose statistics are read as stored (f32). Then
/// x - mean is exact wherever it cancels (Sterbenz: x within a factor 2 of
/// the mean) and each element costs one rounding per operation of f32, not
/// f64 throughput.
Type elementType(const KernelConfig &cfg, const Arith &A) {
  return cfg.ioType == Float(32) ? Float(32) : A.type;
}

/// train forward:
///   mean = E[x], var = E[(x - mean)^2], invstd = 1 / sqrt(var + eps)
///   y = (x - mean) * invstd * w + b
KernelAlgorithm forwardTrain(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  Var c = k.c;
  Arith A = arith(cfg, accumulatorType(cfg.ioType));
  TensorInput in(cfg, A, "x", k);
  AffineParams params(cfg.paramType);

  // Statistics in one pass of shifted sums: with K a value of the channel
  // (its first), d = x - K,  mean = K + E[d],  var = E[d^2] - E[d]^2.
  // |mean - K| is of the order of the standard deviation, so the
  // subtraction cancels only about one digit of the accumulator's 16 (f64 for
  // f32/f64 tensors) or 7 (f32 for f16/bf16), unlike E[x^2] - E[x]^2, which
  // cancels log10(mean^2 / var) of them (PyTorch issue 5410; the offset-data
  // tests hold it to the float64 reference at mean 1e3, std 1). One pass
  // instead of two: measured 2.39x -> 2.06x a copy on 64x64x112x112 NCHW and
  // 2.33x -> 1.69x on 32x64x56x56; channels-last saves a DRAM read.
  Func shift("shift_k");
  shift(c) = A(ioValue(cfg, in.x(0, c, 0)));
  k.channelFuncs.push_back(shift);
  k.reductionInputs.push_back(shift);
  Func sums = channelSum(
      "sum_d_d2", in.r, c, A,
      [&](Expr rs, Expr rn) {
        Expr d = A(ioValue(cfg, in.x(rs, c, rn))) - shift(c);
        return Tuple(d, d * d);
      },
      k);
  Func mean("mean"), var("var"), invstd("invstd");
  Expr meanD = sums(c)[0] / in.count;
  mean(c) = shift(c) + meanD;
  var(c) = max(sums(c)[1] / in.count - meanD * meanD, A.constant(0));
  invstd(c) = A.constant(1) / sqrt(var(c) + A.constant(cfg.eps));
  // Per-element math in the accumulator type: the mean here is the f64 batch
  // mean, whose f32 rounding would move y by ulp(mean) / std on data far
  // from zero.
  Func y = normalize(cfg, A, A, in, mean, invstd, params, k);

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
/// Always in f64, like PyTorch's update.
KernelAlgorithm updateStats(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  Var c = k.c;
  Arith A = arith(cfg, Float(64));
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
  Expr f = cfg.momentum ? A.constant(*cfg.momentum)
                        : A.constant(1) / A(counter() + 1);
  Expr unbias = A(count) / A(count - 1);
  Func meanOut("running_mean_out"), varOut("running_var_out");
  meanOut(c) = cast(cfg.paramType, (A.constant(1) - f) * A(runningMean(c)) +
                                       f * A(batchMean(c)));
  varOut(c) = cast(cfg.paramType, (A.constant(1) - f) * A(runningVar(c)) +
                                      f * A(batchVar(c)) * unbias);

  a.images = {batchMean, batchVar, runningMean, runningVar, counter};
  a.inputs.assign(a.images.begin(), a.images.end());
  a.inputs.push_back(count);
  a.scalars.push_back(count.parameter());
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
  Arith A = arith(cfg, accumulatorType(cfg.ioType));
  TensorInput in(cfg, A, "x", k);
  ImageParam runningMean(cfg.paramType, 1, "running_mean"),
      runningVar(cfg.paramType, 1, "running_var");
  AffineParams params(cfg.paramType);

  Func mean("mean"), invstd("invstd");
  mean(c) = A(runningMean(c));
  invstd(c) = A.constant(1) / sqrt(A(runningVar(c)) + A.constant(cfg.eps));
  Func y = normalize(cfg, A, Arith{elementType(cfg, A)}, in, mean, invstd,
                     params, k);

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
  Arith A = arith(cfg, accumulatorType(cfg.ioType));
  TensorInput in(cfg, A, "x", k);
  ImageParam dy(tensorType(cfg), 3, "dy");
  constrainLayout(dy, cfg.channelsLast);
  ImageParam statMean(cfg.paramType, 1, eval ? "running_mean" : "save_mean");
  ImageParam statSecond(cfg.paramType, 1,
                        eval ? "running_var" : "save_invstd");
  AffineParams params(cfg.paramType);

  Func mean("mean"), invstd("invstd");
  mean(c) = A(statMean(c));
  invstd(c) = eval ? A.constant(1) / sqrt(A(statSecond(c)) +
                                          A.constant(cfg.eps))
                   : A(statSecond(c));

  // One pass over x and dy for both sums.
  Func sums = channelSum(
      "sum_dy_dyxmu", in.r, c, A,
      [&](Expr rs, Expr rn) {
        Expr g = A(ioValue(cfg, dy(rs, c, rn)));
        return Tuple(g, g * (A(ioValue(cfg, in.x(rs, c, rn))) - mean(c)));
      },
      k);
  Func dweight("dweight"), dbias("dbias");
  dbias(c) = cast(cfg.paramType, sums(c)[0]);
  dweight(c) = cast(cfg.paramType, sums(c)[1] * invstd(c));

  // Per-channel coefficients in the accumulator type, per-element math in
  // E (the statistics are read as stored, see elementType).
  Arith E{elementType(cfg, A)};
  Func gain("gain"), meanE("mean_e"), meanDy("mean_dy"),
      xmuCoeff("xmu_coeff");
  gain(c) = E(cfg.affine ? invstd(c) * A(params.w(c)) : invstd(c));
  Func dx = tensorOutput("dx", k);
  if (eval) {
    dx(s, c, n) = ioResult(cfg, E(ioValue(cfg, dy(s, c, n))) * gain(c));
    k.channelFuncs = {gain};
  } else {
    meanE(c) = E(mean(c));
    meanDy(c) = E(sums(c)[0] / in.count);
    xmuCoeff(c) = E(invstd(c) * invstd(c) * sums(c)[1] / in.count);
    dx(s, c, n) = ioResult(cfg, (E(ioValue(cfg, dy(s, c, n))) - meanDy(c) -
                                 (E(ioValue(cfg, in.x(s, c, n))) - meanE(c)) *
                                     xmuCoeff(c)) *
                                       gain(c));
    k.channelFuncs = {mean, meanE, gain, meanDy, xmuCoeff};
    k.reductionInputs = {mean};
  }

  setImages(a, {in.x, dy, statMean, statSecond}, cfg, params,
            /*withBias=*/false);
  a.outputs = {dx, dweight, dbias};
  k.channelOutputs = {dweight, dbias};
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
  constrainOutputs(cfg, a.stages);
  a.stages.kernel = norm::stringifyKernelKind(cfg.kind).str();
  a.stages.channelsLast = cfg.channelsLast;
  a.stages.blockChannels = cfg.blockChannels;
  if (a.stages.ioType.bits() == 0)
    a.stages.ioType = cfg.ioType;
  return a;
}

} // namespace normc

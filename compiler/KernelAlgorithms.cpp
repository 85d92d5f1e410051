//===- KernelAlgorithms.cpp - The math of every normalization kernel ------===//
//
// This file implements the algorithms of the kernel set with PyTorch's
// semantics (docs/design.md, "Semantics") once for every kind: each kernel
// is written over the reduction plan of its layer (normrt/kinds.h), the
// view [s, k, c, n] with the axes the statistics reduce, the axes that index
// weight and bias, and the statistic (mean and variance, or mean square).
// n below is the number of values a statistic reduces.
//
// Numerics: reductions and elementwise math run in the accumulator type that
// PyTorch's CPU kernels use (f64 for f32 and f64 tensors, f32 for f16 and
// bf16) and round once to the output type; these kernels are memory-bound,
// so wider arithmetic costs bandwidth nothing. Batch statistics are shifted
// sums (one pass, stable: see forwardTrain), never E[x^2] - E[x]^2, which
// loses all digits on data far from zero (PyTorch issue 5410).
//
// Epilogues: y = act(norm(x) + residual). Backward never reads y: it
// recomputes the pre-activation from x, the residual and the saved
// statistics, so the chain rule through act needs no stored output.
//
//===----------------------------------------------------------------------===//

#include "compiler/KernelAlgorithms.h"
#include "compiler/HalfConversions.h"
#include "runtime/include/normrt/module.h"

#include "llvm/Support/ErrorHandling.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <cstring>
#include <sstream>

using namespace Halide;
using normc::norm::KernelKind;
using namespace normrt::kinds;

namespace normc {

Type accumulatorType(const Type &ioType) {
  return ioType.bits() >= 32 ? Float(64) : Float(32);
}

Type parameterType(const Type &ioType) {
  return ioType.bits() == 64 ? Float(64) : Float(32);
}

ReductionPlan KernelConfig::kernelPlan() const {
  if (kind == KernelKind::ForwardEval || kind == KernelKind::BackwardEval)
    return runningStatsPlan(plan);
  return plan;
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
  if (ioType == Float(16) && halfConversion != HalfConversion::HalideCast)
    os << (halfConversion == HalfConversion::Hardware ? "/f16=hw" : "/f16=int");
  ReductionPlan p = kernelPlan();
  os << "/plan=";
  for (int a = 0; a < kNumAxes; ++a)
    os << (p.has[a] ? kAxisNames[a] : "-") << (p.reduced[a] ? "r" : "")
       << (p.param[a] ? "p" : "");
  os << "/order=";
  for (Axis a : p.order)
    os << kAxisNames[a];
  os << "/stat=" << int(p.statistic) << "/long=" << p.longRows;
  if (kind == KernelKind::UpdateStats) {
    os << "/counts=" << countsBatches;
    if (momentum)
      os << "/momentum=" << llvm::format("%a", *momentum);
    else
      os << "/momentum=None";
    return os.str();
  }
  os << "/affine=" << affine << "/bias=" << bias
     << "/act=" << activationName(activation) << "/residual=" << residual;
  if (kind == KernelKind::ForwardTrain)
    os << "/track=" << trackRunning;
  bool usesEps = kind != KernelKind::Backward &&
                 kind != KernelKind::BatchStats &&
                 kind != KernelKind::BackwardReduce &&
                 kind != KernelKind::BackwardElemt;
  if (usesEps)
    os << "/eps=" << llvm::format("%a", eps);
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

/// How this kernel's f16 tensor values convert (HalideCast for other types).
HalfConversion halfConversion(const KernelConfig &cfg) {
  return cfg.ioType == Float(16) ? cfg.halfConversion
                                 : HalfConversion::HalideCast;
}

/// An element of x or dy as a value to compute with: bf16 bits widened to
/// f32, f16 widened to f32 where the target converts it in hardware, other
/// types as they are.
Expr ioValue(const KernelConfig &cfg, Expr e) {
  if (halfConversion(cfg) == HalfConversion::Hardware)
    return halfBitsToFloat(reinterpret(UInt(16), std::move(e)));
  if (!cfg.bfloatAsBits || !cfg.ioType.is_bfloat())
    return e;
  Expr bits = cast(UInt(32), e) << 16;
  return reinterpret(Float(32), bits);
}

/// A computed value rounded to the tensor type; for bf16 through its bits:
/// round to nearest even on the f32 bits, NaN kept quiet (as Halide's cast).
Expr ioResult(const KernelConfig &cfg, Expr v) {
  // An f64 value would round twice through f32; f16 kernels compute in f32.
  if (halfConversion(cfg) == HalfConversion::Hardware && v.type().bits() <= 32)
    return reinterpret(Float(16), floatToHalfBits(cast(Float(32), v)));
  if (halfConversion(cfg) == HalfConversion::Integer && v.type().bits() <= 32)
    return reinterpret(Float(16), roundToHalfBits(cast(Float(32), v)));
  if (!cfg.bfloatAsBits || !cfg.ioType.is_bfloat())
    return cast(cfg.ioType, std::move(v));
  Expr f = cast(Float(32), std::move(v));
  Expr bits = reinterpret(UInt(32), f);
  Expr rounded = (bits + 0x7fff + ((bits >> 16) & 1)) >> 16;
  Expr result = select(is_nan(f), cast(UInt(32), 0x7fc0), rounded);
  return cast(UInt(16), result);
}

/// Which axes of the view an index has: all the plan has, the statistics'
/// (kept) ones, or the parameters'.
using AxisFilter = bool (*)(const ReductionPlan &, Axis);
bool present(const ReductionPlan &p, Axis a) { return p.has[a]; }
bool keptAxis(const ReductionPlan &p, Axis a) { return p.kept(a); }
bool paramAxis(const ReductionPlan &p, Axis a) { return p.has[a] && p.param[a]; }

/// The entries of `at` for the axes `filter` selects, in [s, k, c, n] order.
std::vector<Expr> selectAxes(const ReductionPlan &p,
                             const Expr (&at)[kNumAxes], AxisFilter filter) {
  std::vector<Expr> out;
  for (int a = 0; a < kNumAxes; ++a)
    if (filter(p, Axis(a)))
      out.push_back(at[a]);
  return out;
}

/// The pure Vars of the axes `filter` selects, in [s, k, c, n] order.
std::vector<Var> axisVars(const schedules::KernelStages &k,
                          const ReductionPlan &p, AxisFilter filter) {
  std::vector<Var> vars;
  for (int a = 0; a < kNumAxes; ++a)
    if (filter(p, Axis(a)))
      vars.push_back(k.var(Axis(a)));
  return vars;
}

/// Tells Halide which dimension of a tensor has stride 1. For per-channel
/// plans, `unitExtent` (x's extent along the unit-stride axis, for tensors
/// other than x) is the stride of the next axis (a position's stride in
/// channels-last tensors, a channel's in planar ones); undefined: the
/// tensor's own extent there.
void constrainLayout(OutputImageParam buffer, const ReductionPlan &p,
                     Expr unitExtent = Expr()) {
  Axis unit = p.unitStride();
  int dim = 0, unitDim = -1, channelDim = -1;
  for (int a = 0; a < kNumAxes; ++a) {
    if (!p.has[a])
      continue;
    if (Axis(a) == unit) {
      buffer.dim(dim).set_stride(1);
      unitDim = dim;
    } else if (dim == 0) {
      buffer.dim(0).set_stride(Expr());
    }
    if (Axis(a) == C)
      channelDim = dim;
    ++dim;
  }
  bool perChannel = p.kept(C) && !p.kept(N) && !p.has[K];
  auto ownExtent = [&](int d) -> Expr {
    return Internal::Variable::make(Int(32), buffer.name() + ".extent." +
                                                 std::to_string(d));
  };
  // Channels-last per-channel tensors are dense and of x's shape (normrt
  // checks): a position is C values, so schedules that specialize on x's C
  // know every stride (with grad_output's own extent there, its loads of
  // stride C stayed gathers). A tensor's own extent is named, not taken from
  // buffer.dim(): that Expr holds the buffer's Parameter, and a constraint
  // of a Parameter holding itself is a reference cycle that Halide never
  // frees. (x's extent cannot be named instead: a kernel that does not read
  // x, backward in eval mode, has no such symbol.)
  if (unit == C && perChannel && p.has[S] && unitDim > 0)
    buffer.dim(0).set_stride(unitExtent.defined() ? unitExtent
                                                  : ownExtent(unitDim));
  // Planar per-channel tensors likewise: a channel is S values, so where
  // a schedule specializes on x's S (S = 1: BatchNorm1d on (N, C)) the
  // channels' loads and stores are dense, not gathers of stride S.
  if (unit == S && perChannel && unitDim == 0 && channelDim == 1)
    buffer.dim(1).set_stride(unitExtent.defined() ? unitExtent
                                                  : ownExtent(0));
}

/// An image of the tensor view (x, grad_output, residual); `unitExtent` as
/// for constrainLayout.
ImageParam tensorImage(const KernelConfig &cfg, const ReductionPlan &p,
                       const std::string &name, Expr unitExtent = Expr()) {
  int dims = 0;
  for (int a = 0; a < kNumAxes; ++a)
    dims += p.has[a];
  ImageParam image(tensorType(cfg), dims, name);
  constrainLayout(image, p, unitExtent);
  return image;
}

/// A vector image indexed by the axes `filter` selects (statistics,
/// parameters).
ImageParam smallImage(Type type, const ReductionPlan &p, AxisFilter filter,
                      const std::string &name) {
  int dims = 0;
  for (int a = 0; a < kNumAxes; ++a)
    dims += filter(p, Axis(a));
  return ImageParam(type, dims, name);
}

/// Shared set-up: the input tensor, its extents, and the reduction domain of
/// the statistics (reduced axes, innermost in memory first).
struct TensorInput {
  ImageParam x;
  RDom r;
  /// The reduced axes' positions of r: index into r of each axis, or -1.
  int rdim[kNumAxes] = {-1, -1, -1, -1};
  Expr count; ///< values per statistic, in the arithmetic type
  TensorInput(const KernelConfig &cfg, const ReductionPlan &p, const Arith &A,
              schedules::KernelStages &k)
      : x(tensorImage(cfg, p, "x")) {
    int dim = 0;
    Expr extents[kNumAxes];
    for (int a = 0; a < kNumAxes; ++a)
      extents[a] = p.has[a] ? x.dim(dim++).extent() : Expr(1);
    k.spatial = extents[S];
    k.groupSize = extents[K];
    k.channels = extents[C];
    k.batch = extents[N];
    std::vector<std::pair<Expr, Expr>> ranges;
    Expr product = cast(Float(64), 1);
    for (Axis a : p.order) {
      if (!p.has[a] || !p.reduced[a])
        continue;
      rdim[a] = int(ranges.size());
      ranges.emplace_back(0, extents[a]);
      product = product * cast(Float(64), extents[a]);
    }
    Region region;
    for (auto &range : ranges)
      region.push_back(Range(range.first, range.second));
    r = RDom(region, "r");
    // Product in f64 first: N * S may overflow 32 bits, not the tensor.
    count = A(product);
  }

  /// The element at the reduction's point for the statistic at `kept`
  /// (pure vars for the kept axes). The batch axis is walked last to first:
  /// a channel-blocked schedule that writes the channel's output first to
  /// last then starts on the images it read last, which are the ones still
  /// in the core's cache (schedules/CpuPlanar.cpp).
  void at(const schedules::KernelStages &k, Expr (&out)[kNumAxes]) const {
    for (int a = 0; a < kNumAxes; ++a) {
      if (rdim[a] < 0) {
        out[a] = k.var(Axis(a));
        continue;
      }
      Expr rv = r[rdim[a]];
      out[a] = Axis(a) == N ? k.batch - 1 - rv : rv;
    }
  }
};

/// f(vars) = 0; f(vars) += terms (each element of a Tuple), the terms
/// written over the reduction's variables.
void defineSum(Func f, const std::vector<Var> &vars, const Tuple &terms,
               const Arith &A) {
  std::vector<Expr> zeros(terms.size(), A.constant(0));
  f(vars) = Tuple(zeros);
  std::vector<Expr> updated;
  for (size_t i = 0; i < terms.size(); ++i)
    updated.push_back(terms.size() == 1 ? f(vars) + terms[i]
                                        : f(vars)[i] + terms[i]);
  f(vars) = Tuple(updated);
}

/// sum over the reduction domain of `value(at)` for each statistic.
Func statSum(const std::string &name, const TensorInput &in,
             const ReductionPlan &p, const Arith &A,
             const std::function<Tuple(const Expr (&)[kNumAxes])> &value,
             schedules::KernelStages &k) {
  Func f(name);
  std::vector<Var> vars = axisVars(k, p, keptAxis);
  Expr at[kNumAxes];
  in.at(k, at);
  defineSum(f, vars, value(at), A);
  k.reductions.push_back({f, in.r, vars, false});
  return f;
}

/// Whether backward sums per cell first (see backward): the statistics
/// reduce axes that do not index the parameters, and only those, so that a
/// cell is a whole statistic (InstanceNorm: per instance and channel). When
/// they also reduce parameter axes (GroupNorm's channels of a group) the
/// cells are C/G times smaller than the statistics and the per-cell
/// overhead outweighs the saved pass: measured 6.0x a copy instead of 4.3x
/// on 8x512x32x32 (32 groups, 2-core EPYC).
bool sumsPerCell(const ReductionPlan &p) {
  bool free = false;
  for (int a = 0; a < kNumAxes; ++a) {
    if (!p.has[a] || !p.reduced[a])
      continue;
    if (p.param[a])
      return false;
    free = true;
  }
  return free;
}

/// Axes of the per-cell partial sums in backward: all but those reduced for
/// the statistics that do not index the parameters (InstanceNorm's spatial
/// axis).
bool cellAxis(const ReductionPlan &p, Axis a) {
  return p.has[a] && (!p.reduced[a] || p.param[a]);
}

/// sum over the axes `keep` does not select of `value(at)`, for each point
/// of the axes it selects (the parameters', or the cells').
Func partialSum(const std::string &name, AxisFilter keep,
                const ReductionPlan &p, const Arith &A,
                const std::function<Tuple(const Expr (&)[kNumAxes])> &value,
                schedules::KernelStages &k) {
  Func f(name);
  std::vector<Var> vars = axisVars(k, p, keep);
  Region region;
  int rdim[kNumAxes] = {-1, -1, -1, -1};
  for (Axis a : p.order) {
    if (!p.has[a] || keep(p, a))
      continue;
    rdim[a] = int(region.size());
    region.push_back(Range(0, k.extent(a)));
  }
  RDom r(region, "rp");
  Expr at[kNumAxes];
  for (int a = 0; a < kNumAxes; ++a)
    at[a] = rdim[a] < 0 ? Expr(k.var(Axis(a))) : Expr(r[rdim[a]]);
  defineSum(f, vars, value(at), A);
  k.reductions.push_back({f, r, vars, keep == paramAxis});
  return f;
}

/// sum over the non-parameter axes of `value(at)` for each parameter.
Func paramSum(const std::string &name, const ReductionPlan &p, const Arith &A,
              const std::function<Tuple(const Expr (&)[kNumAxes])> &value,
              schedules::KernelStages &k) {
  return partialSum(name, paramAxis, p, A, value, k);
}

/// A small reduction of `cells` (a Func of the cell axes): for each point of
/// the axes `keep` selects, the sum over the other cell axes of
/// `term(at)` (at: pure Vars for the kept axes, RVars for the others).
Func cellReduce(const std::string &name, AxisFilter keep,
                const ReductionPlan &p, const Arith &A,
                const std::function<Tuple(const Expr (&)[kNumAxes])> &term,
                const schedules::KernelStages &k) {
  Func f(name);
  std::vector<Var> vars = axisVars(k, p, keep);
  Region region;
  int rdim[kNumAxes] = {-1, -1, -1, -1};
  for (Axis a : p.order) {
    if (!cellAxis(p, a) || keep(p, a))
      continue;
    rdim[a] = int(region.size());
    region.push_back(Range(0, k.extent(a)));
  }
  Expr at[kNumAxes];
  if (region.empty()) {
    for (int a = 0; a < kNumAxes; ++a)
      at[a] = k.var(Axis(a));
    f(vars) = term(at);
    return f;
  }
  RDom r(region, name + "_r");
  for (int a = 0; a < kNumAxes; ++a)
    at[a] = rdim[a] < 0 ? Expr(k.var(Axis(a))) : Expr(r[rdim[a]]);
  defineSum(f, vars, term(at), A);
  return f;
}

/// The element Funcs of a kernel: the epilogue's inputs, weight and bias,
/// and the tensor outputs.
struct Elementwise {
  const KernelConfig &cfg;
  ReductionPlan p;
  Arith A; ///< per-statistic arithmetic
  Arith E; ///< per-element arithmetic
  schedules::KernelStages &k;
  ImageParam w, b, z;
  Func wE, bE; ///< weight and bias in E, per parameter

  Elementwise(const KernelConfig &cfg, const ReductionPlan &p, Arith A,
              Arith E, schedules::KernelStages &k)
      : cfg(cfg), p(p), A(A), E(E), k(k) {
    if (cfg.affine) {
      w = smallImage(cfg.paramType, p, paramAxis, "weight");
      if (cfg.bias)
        b = smallImage(cfg.paramType, p, paramAxis, "bias");
    }
    if (cfg.residual)
      z = tensorImage(cfg, p, "residual", k.extent(p.unitStride()));
  }
  /// The weight at `at` (1 without affine), in E.
  Expr weight(const Expr (&at)[kNumAxes]) const {
    return cfg.affine ? E(A(w(select(at, paramAxis)))) : E.constant(1);
  }
  Expr biasAt(const Expr (&at)[kNumAxes]) const {
    return cfg.affine && cfg.bias ? E(A(b(select(at, paramAxis))))
                                  : E.constant(0);
  }
  std::vector<Expr> select(const Expr (&at)[kNumAxes],
                           AxisFilter filter) const {
    return selectAxes(p, at, filter);
  }
  /// act(u + residual) for the forward; the residual at `at`.
  Expr epilogue(Expr u, const Expr (&at)[kNumAxes]) const {
    if (cfg.residual)
      u = u + E(ioValue(cfg, z(select(at, present))));
    // The activation runs in the tensor type where it is f32 or f64 (f32
    // for f16 and bf16): its input is rounded to that once, and SiLU's exp
    // in f64 would cost an f32 layer several times its memory time.
    Arith T{cfg.ioType.bits() >= 32 ? cfg.ioType : Float(32)};
    switch (cfg.activation) {
    case Activation::ReLU:
      return max(u, E.constant(0));
    case Activation::SiLU: {
      Expr v = T(u);
      return v / (T.constant(1) + exp(-v));
    }
    default:
      return u;
    }
  }
  /// The gradient of act at its input v = u + residual, times g.
  Expr activationGrad(Expr v, Expr g) const {
    switch (cfg.activation) {
    case Activation::ReLU:
      return Halide::select(v > E.constant(0), g, E.constant(0));
    case Activation::SiLU: {
      Expr sig = E.constant(1) / (E.constant(1) + exp(-v));
      return g * sig * (E.constant(1) + v * (E.constant(1) - sig));
    }
    default:
      return g;
    }
  }
  /// The arguments: `images`, then residual, weight and bias as the kernel
  /// takes them.
  void setInputs(KernelAlgorithm &a, std::vector<ImageParam> front,
                 std::vector<ImageParam> stats, bool withBias) const {
    std::vector<ImageParam> images = std::move(front);
    if (cfg.residual)
      images.insert(images.begin() + 1, z);
    images.insert(images.end(), stats.begin(), stats.end());
    if (cfg.affine) {
      images.push_back(w);
      if (cfg.bias && withBias)
        images.push_back(b);
    }
    a.images = std::move(images);
    a.inputs.assign(a.images.begin(), a.images.end());
  }
};

/// A tensor output in the kernel's layout.
Func tensorOutput(const std::string &name, schedules::KernelStages &k) {
  Func f(name);
  k.tensorOutputs.push_back(f);
  return f;
}

/// The per-element arithmetic type where it may be narrower than the
/// accumulator: f32 tensors whose statistics are read as stored (f32). Then
/// x - mean is exact wherever it cancels (Sterbenz: x within a factor 2 of
/// the mean) and each element costs one rounding per operation of f32, not
/// f64 throughput.
Type elementType(const KernelConfig &cfg, const Arith &A) {
  return cfg.ioType == Float(32) ? Float(32) : A.type;
}

/// y = act((x - mean) * invstd * w + b + residual) with the statistics
/// `mean` (null for RMSNorm) and `invstd` indexed by the kept axes. When
/// weight and bias are indexed by the statistics' axes too (BatchNorm),
/// scale = invstd * w and shift = b are computed once per statistic.
/// A mean wider than the per-element type (train forward of f32 tensors:
/// the f64 batch mean) is subtracted as two parts, its rounding to E and
/// the rest: x - hi is exact where it cancels (Sterbenz), so x - mean costs
/// two roundings of E, not the ulp(mean) / std that an E-rounded mean would
/// move y by on data far from zero, and the elements run at E's throughput
/// (f32: twice the lanes of f64 and no conversions).
Func normalize(const KernelConfig &cfg, const ReductionPlan &p,
               const Elementwise &el, const TensorInput &in, Func mean,
               Func invstd, schedules::KernelStages &k,
               bool wideMean = false) {
  const Arith &A = el.A, &E = el.E;
  std::vector<Var> kept = axisVars(k, p, keptAxis);
  Expr at[kNumAxes];
  for (int a = 0; a < kNumAxes; ++a)
    at[a] = k.var(Axis(a));
  std::vector<Expr> keptAt = el.select(at, keptAxis);
  Func y = tensorOutput("y", k);
  Expr xv = E(ioValue(cfg, in.x(el.select(at, present))));
  Expr centered = xv;
  // The rest of a wide mean, in A, where it is taken out of the shift
  // (below) rather than out of each element.
  Expr restA;
  bool splitMean = mean.defined() && wideMean && E.type != A.type;
  if (mean.defined()) {
    Func meanE("mean_e");
    meanE(kept) = E(mean(kept));
    k.channelFuncs.push_back(meanE);
    centered = xv - meanE(keptAt);
    if (splitMean && p.paramsAreStatGroups()) {
      restA = mean(kept) - A(meanE(kept));
    } else if (splitMean) {
      Func meanRest("mean_rest");
      meanRest(kept) = E(mean(kept) - A(meanE(kept)));
      k.channelFuncs.push_back(meanRest);
      // strict_float: the simplifier would otherwise fold the two
      // subtractions into x - (hi + rest), and hi + rest rounds to hi.
      centered = strict_float(centered - meanRest(keptAt));
    }
  }
  Expr u;
  if (p.paramsAreStatGroups()) {
    // With the mean split in two, (x - hi - rest) * scale + shift is
    // computed as (x - hi) * scale + (shift - rest * scale), the second
    // term once per statistic in A: one rounding of E fewer per element,
    // and one per-statistic value fewer to load with each vector of x (the
    // channels-last loop loaded four, x's channels apart).
    Func scale("scale"), shift("shift");
    Expr scaleA = cfg.affine ? invstd(kept) * A(el.w(kept)) : invstd(kept);
    Expr shiftA = cfg.affine && cfg.bias ? A(el.b(kept)) : A.constant(0);
    if (restA.defined())
      shiftA = shiftA - restA * scaleA;
    scale(kept) = E(scaleA);
    shift(kept) = E(shiftA);
    k.channelFuncs.insert(k.channelFuncs.end(), {scale, shift});
    u = centered * scale(keptAt) + shift(keptAt);
  } else {
    Func invstdE("invstd_e");
    invstdE(kept) = E(invstd(kept));
    k.channelFuncs.push_back(invstdE);
    u = centered * invstdE(keptAt);
    if (cfg.affine) {
      std::vector<Var> params = axisVars(k, p, paramAxis);
      Func wE("weight_e"), bE("bias_e");
      wE(params) = el.weight(at);
      k.paramFuncs.push_back(wE);
      u = u * wE(el.select(at, paramAxis));
      if (cfg.bias) {
        bE(params) = el.biasAt(at);
        k.paramFuncs.push_back(bE);
        u = u + bE(el.select(at, paramAxis));
      }
    }
  }
  y(el.select(at, present)) = ioResult(cfg, el.epilogue(u, at));
  return y;
}

/// Mean and biased variance per statistic in one pass of shifted sums: with
/// K a value of the group (its first), d = x - K,
///   mean = K + E[d],  var = E[d^2] - E[d]^2.
/// |mean - K| is of the order of the standard deviation, so the subtraction
/// cancels only about one digit of the accumulator's 16 (f64 for f32/f64
/// tensors) or 7 (f32 for f16/bf16), unlike E[x^2] - E[x]^2, which cancels
/// log10(mean^2 / var) of them (PyTorch issue 5410; the offset-data tests
/// hold it to the float64 reference at mean 1e3, std 1). One pass instead
/// of two: measured 2.39x -> 2.06x a copy on 64x64x112x112 NCHW and 2.33x ->
/// 1.69x on 32x64x56x56.
void shiftedMoments(const KernelConfig &cfg, const ReductionPlan &p,
                    const Arith &A, const TensorInput &in,
                    schedules::KernelStages &k, Func mean, Func var) {
  std::vector<Var> kept = axisVars(k, p, keptAxis);
  Expr first[kNumAxes];
  for (int a = 0; a < kNumAxes; ++a)
    first[a] = p.reduced[a] ? Expr(0) : Expr(k.var(Axis(a)));
  Func shift("shift_k");
  shift(kept) = A(ioValue(cfg, in.x(selectAxes(p, first, present))));
  k.channelFuncs.push_back(shift);
  k.reductionInputs.push_back(shift);
  Func sums = statSum(
      "sum_d_d2", in, p, A,
      [&](const Expr(&at)[kNumAxes]) {
        Expr d = A(ioValue(cfg, in.x(selectAxes(p, at, present)))) -
                 shift(kept);
        return Tuple(d, d * d);
      },
      k);
  Expr meanD = sums(kept)[0] / in.count;
  mean(kept) = shift(kept) + meanD;
  var(kept) = max(sums(kept)[1] / in.count - meanD * meanD, A.constant(0));
}

/// train forward:
///   mean = E[x], var = E[(x - mean)^2], invstd = 1 / sqrt(var + eps)
///   y = act((x - mean) * invstd * w + b + residual)
/// RMSNorm: ms = E[x^2], rstd = 1 / sqrt(ms + eps), y = act(x * rstd * w + ...)
KernelAlgorithm forwardTrain(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  ReductionPlan p = cfg.plan;
  Arith A = arith(cfg, accumulatorType(cfg.ioType));
  TensorInput in(cfg, p, A, k);
  Elementwise el(cfg, p, A, Arith{elementType(cfg, A)}, k);
  std::vector<Var> kept = axisVars(k, p, keptAxis);

  Func mean("mean"), var("var"), invstd("invstd");
  if (p.centered()) {
    shiftedMoments(cfg, p, A, in, k, mean, var);
  } else {
    Func sums = statSum(
        "sum_x2", in, p, A,
        [&](const Expr(&at)[kNumAxes]) {
          Expr v = A(ioValue(cfg, in.x(el.select(at, present))));
          return Tuple(v * v);
        },
        k);
    var(kept) = sums(kept) / in.count;
  }
  invstd(kept) = A.constant(1) / sqrt(var(kept) + A.constant(cfg.eps));
  // Per-element math in f32 for f32 tensors, with the f64 batch mean
  // subtracted in two parts (normalize).
  Func y = normalize(cfg, p, el, in, p.centered() ? mean : Func(), invstd, k,
                     /*wideMean=*/true);

  a.outputs = {y};
  if (p.centered()) {
    Func saveMean("save_mean");
    saveMean(kept) = cast(cfg.paramType, mean(kept));
    a.outputs.push_back(saveMean);
    k.channelOutputs.push_back(saveMean);
  }
  Func saveInvstd("save_invstd");
  saveInvstd(kept) = cast(cfg.paramType, invstd(kept));
  a.outputs.push_back(saveInvstd);
  k.channelOutputs.push_back(saveInvstd);
  if (cfg.trackRunning) {
    Func batchVar("batch_var");
    batchVar(kept) = cast(cfg.paramType, var(kept));
    a.outputs.push_back(batchVar);
    k.channelOutputs.push_back(batchVar);
  }
  el.setInputs(a, {in.x}, {}, /*withBias=*/true);
  k.reducesThenWrites = true;
  return a;
}

/// SyncBatchNorm's local statistics, the first half of the train forward,
/// in the accumulator type for the merge across processes (normrt adds
/// them with Chan et al.'s formula):
///   batch_mean = E[x],  batch_m2 = sum((x - batch_mean)^2)
KernelAlgorithm batchStats(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  ReductionPlan p = cfg.plan;
  if (!p.centered() || !p.paramsAreStatGroups())
    llvm::report_fatal_error("batch_stats is built for per-channel mean and "
                             "variance plans only");
  Arith A = arith(cfg, accumulatorType(cfg.ioType));
  TensorInput in(cfg, p, A, k);
  std::vector<Var> kept = axisVars(k, p, keptAxis);
  Func mean("mean"), var("var");
  shiftedMoments(cfg, p, A, in, k, mean, var);
  Func batchMean("batch_mean"), batchM2("batch_m2");
  batchMean(kept) = mean(kept);
  batchM2(kept) = var(kept) * in.count;
  a.outputs = {batchMean, batchM2};
  k.channelOutputs = {batchMean, batchM2};
  a.images = {in.x};
  a.inputs = {in.x};
  return a;
}

/// running statistics, after a train forward with n values per statistic:
///   counter += 1; f = momentum, or 1 / counter when momentum is None
///   running_mean = (1 - f) running_mean + f mean
///   running_var  = (1 - f) running_var  + f var * n / (n - 1)
/// Statistics per instance (InstanceNorm) are averaged over the batch first,
/// as torch.instance_norm does. Always in f64, like PyTorch's update.
KernelAlgorithm updateStats(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  Var c = k.c;
  Arith A = arith(cfg, Float(64));
  bool perInstance = cfg.plan.kept(N);
  int statDims = perInstance ? 2 : 1;
  ImageParam batchMean(cfg.paramType, statDims, "save_mean"),
      batchVar(cfg.paramType, statDims, "batch_var"),
      runningMean(cfg.paramType, 1, "running_mean"),
      runningVar(cfg.paramType, 1, "running_var"),
      counter(Int(64), 0, "num_batches_tracked");
  Param<int64_t> count("count");
  k.spatial = 1;
  k.groupSize = 1;
  k.channels = runningMean.dim(0).extent();
  k.batch = 1;
  k.plan = runningStatsPlan(cfg.plan);

  Expr meanIn, varIn;
  if (perInstance) {
    RDom rn(0, batchMean.dim(1).extent(), "rn");
    Expr instances = A(batchMean.dim(1).extent());
    meanIn = sum(A(batchMean(c, rn)), "mean_over_batch") / instances;
    varIn = sum(A(batchVar(c, rn)), "var_over_batch") / instances;
  } else {
    meanIn = A(batchMean(c));
    varIn = A(batchVar(c));
  }
  Expr f = cfg.momentum ? A.constant(*cfg.momentum)
                        : A.constant(1) / A(counter() + 1);
  Expr unbias = A(count) / A(count - 1);
  Func meanOut("running_mean_out"), varOut("running_var_out");
  meanOut(c) =
      cast(cfg.paramType, (A.constant(1) - f) * A(runningMean(c)) + f * meanIn);
  varOut(c) = cast(cfg.paramType, (A.constant(1) - f) * A(runningVar(c)) +
                                      f * varIn * unbias);

  a.images = {batchMean, batchVar, runningMean, runningVar};
  if (cfg.countsBatches)
    a.images.push_back(counter);
  a.inputs.assign(a.images.begin(), a.images.end());
  a.inputs.push_back(count);
  a.scalars.push_back(count.parameter());
  a.outputs = {meanOut, varOut};
  k.ioType = cfg.paramType;
  k.channelOutputs = {meanOut, varOut};
  if (cfg.countsBatches) {
    Func counterOut("num_batches_tracked_out");
    counterOut() = counter() + 1;
    a.outputs.push_back(counterOut);
    k.scalarOutputs = {counterOut};
  }
  return a;
}

/// eval forward with running statistics:
///   y = act((x - running_mean) / sqrt(running_var + eps) * w + b + residual)
KernelAlgorithm forwardEval(const KernelConfig &cfg) {
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  ReductionPlan p = cfg.kernelPlan();
  Var c = k.c;
  Arith A = arith(cfg, accumulatorType(cfg.ioType));
  TensorInput in(cfg, p, A, k);
  ImageParam runningMean(cfg.paramType, 1, "running_mean"),
      runningVar(cfg.paramType, 1, "running_var");
  Elementwise el(cfg, p, A, Arith{elementType(cfg, A)}, k);

  Func mean("mean"), invstd("invstd");
  mean(c) = A(runningMean(c));
  invstd(c) = A.constant(1) / sqrt(A(runningVar(c)) + A.constant(cfg.eps));
  Func y = normalize(cfg, p, el, in, mean, invstd, k);

  el.setInputs(a, {in.x}, {runningMean, runningVar}, /*withBias=*/true);
  a.outputs = {y};
  return a;
}

/// backward through y = act(norm(x) + residual) with statistics `mean` and
/// `invstd` (batch statistics in training, running ones in eval). With
/// v the recomputed pre-activation, g = act'(v) * dy (= grad_residual),
/// xhat = (x - mean) * invstd and w the weight at each element:
///   grad_bias = sum(g), grad_weight = sum(g * xhat)   over non-parameter axes
///   train: dx = invstd * (g w - E_R[g w] - xhat * E_R[g w xhat])
///   eval:  dx = invstd * g w              (the statistics are constants)
/// with E_R the mean over the values of each statistic. RMSNorm has no mean:
/// xhat = x * rstd and no E_R[g w] term.
/// SyncBatchNorm splits the train backward at its reduction (per-channel
/// plans only): backward_reduce writes the local sum(g) and sum(g (x -
/// mean)) (sum_dy, sum_dy_xmu), which normrt sums across processes, and
/// backward_elemt takes those global sums and the global count and writes
/// dx (and grad_residual) as the train backward does.
enum class BackwardMode { Train, Eval, Reduce, Elemt };

KernelAlgorithm backward(const KernelConfig &cfg, BackwardMode mode) {
  bool eval = mode == BackwardMode::Eval;
  bool split = mode == BackwardMode::Reduce || mode == BackwardMode::Elemt;
  KernelAlgorithm a;
  schedules::KernelStages &k = a.stages;
  ReductionPlan p = cfg.kernelPlan();
  Arith A = arith(cfg, accumulatorType(cfg.ioType));
  TensorInput in(cfg, p, A, k);
  ImageParam dy = tensorImage(cfg, p, "grad_output", k.extent(p.unitStride()));
  bool centered = p.centered();
  ImageParam statMean, statSecond;
  if (eval) {
    statMean = ImageParam(cfg.paramType, 1, "running_mean");
    statSecond = ImageParam(cfg.paramType, 1, "running_var");
  } else {
    if (centered)
      statMean = smallImage(cfg.paramType, p, keptAxis, "save_mean");
    statSecond = smallImage(cfg.paramType, p, keptAxis, "save_invstd");
  }
  // Per-statistic coefficients in the accumulator type, per-element math in
  // E (the statistics are read as stored, see elementType).
  Arith E{elementType(cfg, A)};
  bool needsBias = cfg.activation != Activation::None;
  Elementwise el(cfg, p, A, E, k);
  std::vector<Var> kept = axisVars(k, p, keptAxis);
  std::vector<Var> params = axisVars(k, p, paramAxis);

  Func mean("mean"), invstd("invstd"), meanE("mean_e"), invstdE("invstd_e");
  mean(kept) = centered ? A(statMean(kept)) : A.constant(0);
  invstd(kept) = eval ? A.constant(1) / sqrt(A(statSecond(kept)) +
                                             A.constant(cfg.eps))
                      : A(statSecond(kept));
  meanE(kept) = E(mean(kept));
  invstdE(kept) = E(invstd(kept));
  Func wE("weight_e"), bE("bias_e");
  Expr pure[kNumAxes];
  for (int i = 0; i < kNumAxes; ++i)
    pure[i] = k.var(Axis(i));
  wE(params) = el.weight(pure);
  bE(params) = el.biasAt(pure);

  // g at an element: dy, through the activation at the recomputed
  // pre-activation when there is one.
  auto gradAt = [&](const Expr(&at)[kNumAxes], bool useE) {
    std::vector<Expr> idx = el.select(at, present);
    std::vector<Expr> keptAt = el.select(at, keptAxis);
    std::vector<Expr> paramAt = el.select(at, paramAxis);
    Expr g = E(ioValue(cfg, dy(idx)));
    if (cfg.activation == Activation::None)
      return g;
    Expr xhat = (E(ioValue(cfg, in.x(idx))) - (useE ? meanE(keptAt)
                                                     : E(mean(keptAt)))) *
                (useE ? invstdE(keptAt) : E(invstd(keptAt)));
    Expr v = xhat * wE(paramAt) + bE(paramAt);
    if (cfg.residual)
      v = v + E(ioValue(cfg, el.z(idx)));
    return el.activationGrad(v, g);
  };
  auto xmuAt = [&](const Expr(&at)[kNumAxes]) {
    return A(ioValue(cfg, in.x(el.select(at, present)))) -
           mean(el.select(at, keptAxis));
  };

  Func dx = tensorOutput("grad_input", k);
  Func gradWeight("grad_weight"), gradBias("grad_bias");
  std::vector<Expr> keptPure = el.select(pure, keptAxis);
  std::vector<Expr> paramPure = el.select(pure, paramAxis);
  Expr g = gradAt(pure, true);
  // The terms of the one pass over x and dy: g and g (x - mean).
  auto gAndGxmu = [&](const Expr(&at)[kNumAxes]) {
    Expr gr = A(gradAt(at, false));
    return Tuple(gr, gr * xmuAt(at));
  };
  // dx of per-instance statistics from E_R[g w] and E_R[g w (x - mean)]
  // per statistic (their sums `first` and `second`).
  auto instanceDx = [&](Expr first, Expr second) {
    Func meanGw("mean_gw"), xmuCoeff("xmu_coeff");
    meanGw(kept) = E(centered ? first / in.count : A.constant(0));
    xmuCoeff(kept) = E(invstd(kept) * invstd(kept) * second / in.count);
    dx(el.select(pure, present)) = ioResult(
        cfg, (g * wE(paramPure) - meanGw(keptPure) -
              (E(ioValue(cfg, in.x(el.select(pure, present)))) -
               meanE(keptPure)) *
                  xmuCoeff(keptPure)) *
                 invstdE(keptPure));
    k.channelFuncs = {mean, meanE, invstdE, meanGw, xmuCoeff};
    k.reductionInputs = {mean, invstd};
    k.paramFuncs = {wE, bE};
  };
  if (split && (!centered || !p.paramsAreStatGroups()))
    llvm::report_fatal_error("the split backward kernels are built for "
                             "per-channel mean and variance plans only");
  // backward_elemt: the global sums and count, as inputs.
  ImageParam sumDyIn, sumDyXmuIn;
  Param<int64_t> globalCount("count");
  if (mode == BackwardMode::Reduce) {
    Func sums = statSum("sum_dy_dyxmu", in, p, A, gAndGxmu, k);
    Func sumDy("sum_dy"), sumDyXmu("sum_dy_xmu");
    sumDy(kept) = sums(kept)[0];
    sumDyXmu(kept) = sums(kept)[1];
    k.reductionInputs = {mean, invstd};
    k.channelFuncs = {};
    k.paramFuncs = {};
    if (cfg.activation != Activation::None)
      k.paramFuncs = {wE, bE};
    k.channelOutputs = {sumDy, sumDyXmu};
    k.tensorOutputs.clear();
    el.setInputs(a, {in.x, dy}, {statMean, statSecond}, needsBias);
    a.outputs = {sumDy, sumDyXmu};
    return a;
  }
  if (p.paramsAreStatGroups()) {
    // One pass over x and dy: sum(g) and sum(g (x - mean)) per statistic
    // give dx and, as the weight is constant there, the parameter gradients.
    Expr sumG, sumGxmu, count = in.count;
    if (mode == BackwardMode::Elemt) {
      sumDyIn = ImageParam(A.type, 1, "sum_dy");
      sumDyXmuIn = ImageParam(A.type, 1, "sum_dy_xmu");
      sumG = sumDyIn(kept);
      sumGxmu = sumDyXmuIn(kept);
      count = A(globalCount);
    } else {
      Func sums = statSum(
          "sum_dy_dyxmu", in, p, A,
          gAndGxmu,
          k);
      sumG = sums(kept)[0];
      sumGxmu = sums(kept)[1];
    }
    gradBias(kept) = cast(cfg.paramType, sumG);
    gradWeight(kept) = cast(cfg.paramType, sumGxmu * invstd(kept));
    Func gain("gain");
    gain(kept) = E(cfg.affine ? invstd(kept) * A(el.w(kept)) : invstd(kept));
    if (eval) {
      dx(el.select(pure, present)) = ioResult(cfg, g * gain(keptPure));
      k.channelFuncs = {meanE, invstdE, gain};
    } else {
      Func meanDy("mean_dy"), xmuCoeff("xmu_coeff");
      meanDy(kept) = E(centered ? sumG / count : A.constant(0));
      xmuCoeff(kept) = E(invstd(kept) * invstd(kept) * sumGxmu / count);
      dx(el.select(pure, present)) =
          ioResult(cfg, (g - meanDy(keptPure) -
                         (E(ioValue(cfg, in.x(el.select(pure, present)))) -
                          meanE(keptPure)) *
                             xmuCoeff(keptPure)) *
                            gain(keptPure));
      k.channelFuncs = {mean, meanE, invstdE, gain, meanDy, xmuCoeff};
    }
    k.reductionInputs = {mean, invstd};
    k.paramFuncs = {};
    if (cfg.activation != Activation::None)
      k.paramFuncs = {wE, bE};
  } else if (sumsPerCell(p)) {
    // Statistics per instance over axes that do not index the weight
    // (InstanceNorm's spatial axis): one pass sums g and g (x - mean) per
    // cell (instance x channel), and the statistics' sums and the parameter
    // gradients are small reductions of the cells, as torch's GroupNorm
    // backward does (two passes over x and dy, not three).
    Func cells = partialSum(
        "cell_g_gxmu", cellAxis, p, A,
        gAndGxmu,
        k);
    auto cellAt = [&](const Expr(&at)[kNumAxes]) {
      return cells(el.select(at, cellAxis));
    };
    auto weightAt = [&](const Expr(&at)[kNumAxes]) {
      return cfg.affine ? A(wE(el.select(at, paramAxis))) : A.constant(1);
    };
    Func sums = cellReduce(
        "sum_gw_gwxmu", keptAxis, p, A,
        [&](const Expr(&at)[kNumAxes]) {
          Expr w = weightAt(at);
          return Tuple(w * cellAt(at)[0], w * cellAt(at)[1]);
        },
        k);
    instanceDx(sums(kept)[0], sums(kept)[1]);
    k.channelFuncs.push_back(sums);
    if (cfg.affine) {
      Func psums = cellReduce(
          "sum_g_gxhat", paramAxis, p, A,
          [&](const Expr(&at)[kNumAxes]) {
            return Tuple(cellAt(at)[0],
                         cellAt(at)[1] * invstd(el.select(at, keptAxis)));
          },
          k);
      gradBias(params) = cast(cfg.paramType, psums(params)[0]);
      gradWeight(params) = cast(cfg.paramType, psums(params)[1]);
      k.paramFuncs.push_back(psums);
    }
  } else {
    // Statistics per instance, weight per element: E_R[g w] and
    // E_R[g w (x - mean)] per statistic; the parameter gradients reduce
    // the other axes.
    Func sums = statSum(
        "sum_gw_gwxmu", in, p, A,
        [&](const Expr(&at)[kNumAxes]) {
          Expr gw = A(gradAt(at, false)) * A(wE(el.select(at, paramAxis)));
          return centered ? Tuple(gw, gw * xmuAt(at)) : Tuple(gw * xmuAt(at));
        },
        k);
    if (centered)
      instanceDx(sums(kept)[0], sums(kept)[1]);
    else
      instanceDx(Expr(), sums(kept));
    if (cfg.affine) {
      Func psums = paramSum(
          "sum_g_gxhat", p, A,
          [&](const Expr(&at)[kNumAxes]) {
            Expr gr = A(gradAt(at, false));
            std::vector<Expr> keptAt = el.select(at, keptAxis);
            return Tuple(gr, gr * xmuAt(at) * invstd(keptAt));
          },
          k);
      gradBias(params) = cast(cfg.paramType, psums(params)[0]);
      gradWeight(params) = cast(cfg.paramType, psums(params)[1]);
    }
  }

  std::vector<ImageParam> stats;
  if (statMean.defined())
    stats.push_back(statMean);
  stats.push_back(statSecond);
  el.setInputs(a, {in.x, dy}, stats, needsBias);
  a.outputs = {dx};
  if (cfg.residual) {
    Func dz = tensorOutput("grad_residual", k);
    dz(el.select(pure, present)) = ioResult(cfg, g);
    a.outputs.push_back(dz);
  }
  if (mode == BackwardMode::Elemt) {
    k.reductionInputs.clear();
    // The parameter gradients are the local sums' (normrt's), not dx's.
    a.images.insert(a.images.end(), {sumDyIn, sumDyXmuIn});
    a.inputs.assign(a.images.begin(), a.images.end());
    a.inputs.push_back(globalCount);
    a.scalars.push_back(globalCount.parameter());
    return a;
  }
  if (cfg.affine) {
    a.outputs.push_back(gradWeight);
    k.channelOutputs.push_back(gradWeight);
    if (cfg.bias) {
      a.outputs.push_back(gradBias);
      k.channelOutputs.push_back(gradBias);
    }
  }
  return a;
}

/// The role of a Halide argument name (normrt/module.h).
int32_t roleOf(const std::string &name, bool output) {
  // Halide uniquifies a Func name used before as "name$N".
  std::string base = name.substr(0, name.find('$'));
  if (output && base.size() > 4 && base.compare(base.size() - 4, 4, "_out") == 0)
    base.resize(base.size() - 4);
  for (int32_t r = 0; r < NORMRT_ARG_ROLE_COUNT; ++r)
    if (base == normrt_arg_role_name(r))
      return r | (output ? NORMRT_ARG_OUTPUT : 0);
  return -1;
}

} // namespace

std::vector<int32_t> kernelSignature(const KernelConfig &cfg) {
  constexpr int32_t OUT = NORMRT_ARG_OUTPUT;
  bool bias = cfg.affine && cfg.bias;
  bool centered = cfg.plan.centered();
  std::vector<int32_t> sig;
  auto add = [&](bool when, std::initializer_list<int32_t> roles) {
    if (when)
      sig.insert(sig.end(), roles);
  };
  switch (cfg.kind) {
  case KernelKind::ForwardTrain:
    add(true, {NORMRT_ARG_X});
    add(cfg.residual, {NORMRT_ARG_RESIDUAL});
    add(cfg.affine, {NORMRT_ARG_WEIGHT});
    add(bias, {NORMRT_ARG_BIAS});
    add(true, {NORMRT_ARG_Y | OUT});
    add(centered, {NORMRT_ARG_SAVE_MEAN | OUT});
    add(true, {NORMRT_ARG_SAVE_INVSTD | OUT});
    add(cfg.trackRunning, {NORMRT_ARG_BATCH_VAR | OUT});
    break;
  case KernelKind::UpdateStats:
    add(true, {NORMRT_ARG_SAVE_MEAN, NORMRT_ARG_BATCH_VAR,
               NORMRT_ARG_RUNNING_MEAN, NORMRT_ARG_RUNNING_VAR});
    add(cfg.countsBatches, {NORMRT_ARG_NUM_BATCHES_TRACKED});
    add(true, {NORMRT_ARG_COUNT, NORMRT_ARG_RUNNING_MEAN | OUT,
               NORMRT_ARG_RUNNING_VAR | OUT});
    add(cfg.countsBatches, {NORMRT_ARG_NUM_BATCHES_TRACKED | OUT});
    break;
  case KernelKind::ForwardEval:
    add(true, {NORMRT_ARG_X});
    add(cfg.residual, {NORMRT_ARG_RESIDUAL});
    add(true, {NORMRT_ARG_RUNNING_MEAN, NORMRT_ARG_RUNNING_VAR});
    add(cfg.affine, {NORMRT_ARG_WEIGHT});
    add(bias, {NORMRT_ARG_BIAS});
    add(true, {NORMRT_ARG_Y | OUT});
    break;
  case KernelKind::Backward:
  case KernelKind::BackwardEval: {
    bool eval = cfg.kind == KernelKind::BackwardEval;
    add(true, {NORMRT_ARG_X});
    add(cfg.residual, {NORMRT_ARG_RESIDUAL});
    add(true, {NORMRT_ARG_GRAD_OUTPUT});
    add(eval, {NORMRT_ARG_RUNNING_MEAN, NORMRT_ARG_RUNNING_VAR});
    add(!eval && centered, {NORMRT_ARG_SAVE_MEAN});
    add(!eval, {NORMRT_ARG_SAVE_INVSTD});
    add(cfg.affine, {NORMRT_ARG_WEIGHT});
    add(bias && cfg.activation != Activation::None, {NORMRT_ARG_BIAS});
    add(true, {NORMRT_ARG_GRAD_INPUT | OUT});
    add(cfg.residual, {NORMRT_ARG_GRAD_RESIDUAL | OUT});
    add(cfg.affine, {NORMRT_ARG_GRAD_WEIGHT | OUT});
    add(bias, {NORMRT_ARG_GRAD_BIAS | OUT});
    break;
  }
  case KernelKind::BatchStats:
    add(true, {NORMRT_ARG_X, NORMRT_ARG_BATCH_MEAN | OUT,
               NORMRT_ARG_BATCH_M2 | OUT});
    break;
  case KernelKind::BackwardReduce:
  case KernelKind::BackwardElemt: {
    bool elemt = cfg.kind == KernelKind::BackwardElemt;
    add(true, {NORMRT_ARG_X});
    add(cfg.residual, {NORMRT_ARG_RESIDUAL});
    add(true, {NORMRT_ARG_GRAD_OUTPUT, NORMRT_ARG_SAVE_MEAN,
               NORMRT_ARG_SAVE_INVSTD});
    add(cfg.affine, {NORMRT_ARG_WEIGHT});
    add(bias && cfg.activation != Activation::None, {NORMRT_ARG_BIAS});
    add(elemt, {NORMRT_ARG_SUM_DY, NORMRT_ARG_SUM_DY_XMU, NORMRT_ARG_COUNT,
                NORMRT_ARG_GRAD_INPUT | OUT});
    add(elemt && cfg.residual, {NORMRT_ARG_GRAD_RESIDUAL | OUT});
    add(!elemt, {NORMRT_ARG_SUM_DY | OUT, NORMRT_ARG_SUM_DY_XMU | OUT});
    break;
  }
  }
  return sig;
}

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
    a = backward(cfg, BackwardMode::Train);
    break;
  case KernelKind::BackwardEval:
    a = backward(cfg, BackwardMode::Eval);
    break;
  case KernelKind::BatchStats:
    a = batchStats(cfg);
    break;
  case KernelKind::BackwardReduce:
    a = backward(cfg, BackwardMode::Reduce);
    break;
  case KernelKind::BackwardElemt:
    a = backward(cfg, BackwardMode::Elemt);
    break;
  }
  if (cfg.kind != KernelKind::UpdateStats)
    a.stages.plan = cfg.kernelPlan();
  // Outputs are dense and of x's shape (normrt checks): x's extent along
  // the unit-stride axis is their next axis' stride too.
  for (Func f : a.stages.tensorOutputs)
    constrainLayout(f.output_buffer(), a.stages.plan,
                    a.stages.extent(a.stages.plan.unitStride()));
  a.stages.channelsLast = a.stages.plan.unitStride() != S;
  if (a.stages.ioType.bits() == 0)
    a.stages.ioType = cfg.ioType;
  // The arguments in the order of the kernel's signature, which normrt
  // and normc-bench read from the layer table.
  a.roles = kernelSignature(cfg);
  std::vector<Argument> inputs;
  std::vector<Func> outputs;
  for (int32_t role : a.roles) {
    bool found = false;
    if (role & NORMRT_ARG_OUTPUT) {
      for (Func f : a.outputs)
        if (roleOf(f.name(), true) == role)
          outputs.push_back(f), found = true;
    } else {
      for (const Argument &arg : a.inputs)
        if (roleOf(arg.name, false) == role)
          inputs.push_back(arg), found = true;
    }
    if (!found)
      llvm::report_fatal_error(llvm::Twine("kernel ") +
                               norm::stringifyKernelKind(cfg.kind) +
                               " lacks its argument " +
                               normrt_arg_role_name(role));
  }
  if (inputs.size() != a.inputs.size() || outputs.size() != a.outputs.size())
    llvm::report_fatal_error(llvm::Twine("kernel ") +
                             norm::stringifyKernelKind(cfg.kind) +
                             " has arguments its signature does not list");
  a.inputs = std::move(inputs);
  a.outputs = std::move(outputs);
  return a;
}

} // namespace normc

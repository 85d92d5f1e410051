//===- kinds.h - The normalization kinds and their reduction plans -*- C++ -*-===//
//
// The one description of every layer kind that normc compiles: its PyTorch
// signature and defaults, the inputs it takes, the layouts it allows, which
// axes its statistics reduce and which carry its parameters. The parser's
// consumers (MLIRGen, the verifier, norm-expand-kernels), the kernel
// algorithms and schedules, the emitter and normrt all read this header;
// adding a kind is adding a record here (docs/design.md, "Adding a kind").
//
// Every kind sees its tensors through one four-axis view [s, k, c, n]:
//   s  the flattened spatial positions
//   k  channels within a group (GroupNorm), or the normalized elements
//      (LayerNorm, RMSNorm)
//   c  channels (BatchNorm, InstanceNorm), or groups (GroupNorm)
//   n  the batch (BatchNorm, InstanceNorm, GroupNorm), or the rows in front
//      of the normalized shape (LayerNorm, RMSNorm)
// A kind uses the axes it has (BatchNorm: s, c, n); its plan says which are
// reduced for the statistics, which index the weight and bias, and which
// has stride 1 in memory.
//
//===----------------------------------------------------------------------===//

#ifndef NORMRT_KINDS_H
#define NORMRT_KINDS_H

#include <cstdint>
#include <cstring>

namespace normrt {
namespace kinds {

/// The axes of the view, innermost first in PyTorch's contiguous order.
enum Axis : int { S = 0, K = 1, C = 2, N = 3 };
constexpr int kNumAxes = 4;
constexpr const char *kAxisNames[kNumAxes] = {"s", "k", "c", "n"};

/// What the statistics are.
enum class Statistic {
  MeanVar,   ///< mean and biased variance; y = (x - mean) * invstd
  MeanSquare ///< mean of squares; y = x * rstd (RMSNorm)
};

/// How an argument of a kind's constructor is written and checked.
enum class ParamType {
  Integer,      ///< an integer >= 1
  Number,       ///< eps: a positive finite number
  NumberOrNone, ///< momentum in [0, 1] or None; RMSNorm's eps or None
  Bool,
  Shape,      ///< an integer or a list of integers, each >= 1
  DType,      ///< f32, f64, f16, bf16 (keyword-only)
  Layout,     ///< NCHW, NHWC, ... (keyword-only)
  Activation, ///< none, relu, silu (keyword-only)
};

struct Parameter {
  const char *name;
  ParamType type;
  /// The default as written in a spec; nullptr for a required argument.
  const char *defaultValue;
};

/// One layer kind.
struct Kind {
  const char *name;       ///< as written in a spec: "BatchNorm2d"
  const char *torchClass; ///< torch.nn class it mirrors
  /// Spatial dimensions after (N, C): 1, 2 or 3; -1 for any number
  /// (GroupNorm takes (N, C, *)); 0 for kinds normalized over trailing
  /// dimensions (LayerNorm, RMSNorm), whose input is (*, normalized_shape).
  int spatialRank;
  Statistic statistic;
  bool batchStats;      ///< statistics over the batch too (BatchNorm)
  bool grouped;         ///< channels in num_groups groups (GroupNorm)
  bool trailing;        ///< over the trailing normalized_shape dims
  bool runningStats;    ///< may track running statistics
  bool channelsLast;    ///< channels-last layouts allowed
  bool unbatched;       ///< also takes inputs without the batch dimension
  bool countsBatches;   ///< keeps num_batches_tracked (BatchNorm)
  /// Parameters in positional order; the keyword-only ones follow.
  const Parameter *params;
  int numParams;
  int numPositional;
  /// Names of the spec arguments for affine (weight) and bias; bias is
  /// nullptr when the kind's affine form has a bias always (or never:
  /// hasBias).
  const char *affineParam;
  const char *biasParam;
  bool hasBias; ///< the affine form has a bias
  /// Batch statistics that may be summed across processes through an
  /// allreduce hook (SyncBatchNorm): the layer also gets the split training
  /// kernels (batch_stats, backward_reduce, backward_elemt).
  bool syncs = false;
};

namespace detail {
// Keyword-only arguments every kind takes.
#define NORMRT_KEYWORD_PARAMS                                                  \
  {"dtype", ParamType::DType, "f32"}, {"layout", ParamType::Layout, nullptr},  \
      {"activation", ParamType::Activation, "none"},                         \
      {"residual", ParamType::Bool, "false"}

constexpr Parameter kBatchNorm[] = {
    {"num_features", ParamType::Integer, nullptr},
    {"eps", ParamType::Number, "1e-5"},
    {"momentum", ParamType::NumberOrNone, "0.1"},
    {"affine", ParamType::Bool, "true"},
    {"track_running_stats", ParamType::Bool, "true"},
    NORMRT_KEYWORD_PARAMS};
constexpr Parameter kInstanceNorm[] = {
    {"num_features", ParamType::Integer, nullptr},
    {"eps", ParamType::Number, "1e-5"},
    {"momentum", ParamType::NumberOrNone, "0.1"},
    {"affine", ParamType::Bool, "false"},
    {"track_running_stats", ParamType::Bool, "false"},
    NORMRT_KEYWORD_PARAMS};
constexpr Parameter kGroupNorm[] = {
    {"num_groups", ParamType::Integer, nullptr},
    {"num_channels", ParamType::Integer, nullptr},
    {"eps", ParamType::Number, "1e-5"},
    {"affine", ParamType::Bool, "true"},
    NORMRT_KEYWORD_PARAMS};
constexpr Parameter kLayerNorm[] = {
    {"normalized_shape", ParamType::Shape, nullptr},
    {"eps", ParamType::Number, "1e-5"},
    {"elementwise_affine", ParamType::Bool, "true"},
    {"bias", ParamType::Bool, "true"},
    NORMRT_KEYWORD_PARAMS};
constexpr Parameter kRMSNorm[] = {
    {"normalized_shape", ParamType::Shape, nullptr},
    {"eps", ParamType::NumberOrNone, "None"},
    {"elementwise_affine", ParamType::Bool, "true"},
    NORMRT_KEYWORD_PARAMS};
#undef NORMRT_KEYWORD_PARAMS

template <int N> constexpr int count(const Parameter (&)[N]) { return N; }
} // namespace detail

#define NORMRT_BATCHNORM(rank)                                                 \
  {"BatchNorm" #rank "d", "torch.nn.BatchNorm" #rank "d", rank,              \
   Statistic::MeanVar, true, false, false, true, true, false, true,          \
   detail::kBatchNorm, detail::count(detail::kBatchNorm), 5, "affine",       \
   nullptr, true}
#define NORMRT_INSTANCENORM(rank)                                              \
  {"InstanceNorm" #rank "d", "torch.nn.InstanceNorm" #rank "d", rank,        \
   Statistic::MeanVar, false, false, false, true, true, true, false,         \
   detail::kInstanceNorm, detail::count(detail::kInstanceNorm), 5, "affine", \
   nullptr, true}

/// Every kind, in the order docs/dsl.md lists them.
constexpr Kind kKinds[] = {
    NORMRT_BATCHNORM(1),
    NORMRT_BATCHNORM(2),
    NORMRT_BATCHNORM(3),
    {"SyncBatchNorm", "torch.nn.SyncBatchNorm", -1, Statistic::MeanVar, true,
     false, false, true, true, false, true, detail::kBatchNorm,
     detail::count(detail::kBatchNorm), 5, "affine", nullptr, true,
     /*syncs=*/true},
    NORMRT_INSTANCENORM(1),
    NORMRT_INSTANCENORM(2),
    NORMRT_INSTANCENORM(3),
    {"GroupNorm", "torch.nn.GroupNorm", -1, Statistic::MeanVar, false, true,
     false, false, true, false, false, detail::kGroupNorm,
     detail::count(detail::kGroupNorm), 4, "affine", nullptr, true},
    {"LayerNorm", "torch.nn.LayerNorm", 0, Statistic::MeanVar, false, false,
     true, false, false, false, false, detail::kLayerNorm,
     detail::count(detail::kLayerNorm), 4, "elementwise_affine", "bias", true},
    {"RMSNorm", "torch.nn.RMSNorm", 0, Statistic::MeanSquare, false, false,
     true, false, false, false, false, detail::kRMSNorm,
     detail::count(detail::kRMSNorm), 3, "elementwise_affine", nullptr, false},
};
#undef NORMRT_BATCHNORM
#undef NORMRT_INSTANCENORM
constexpr int kNumKinds = sizeof(kKinds) / sizeof(kKinds[0]);

/// The kind named `name`, or nullptr.
inline const Kind *findKind(const char *name) {
  for (const Kind &k : kKinds)
    if (name && std::strcmp(k.name, name) == 0)
      return &k;
  return nullptr;
}

/// The epilogue fused after the normalization: y = act(norm(x) + z).
enum class Activation : int32_t { None = 0, ReLU = 1, SiLU = 2 };
inline const char *activationName(Activation a) {
  switch (a) {
  case Activation::ReLU:
    return "relu";
  case Activation::SiLU:
    return "silu";
  default:
    return "none";
  }
}

/// What a kernel computes over, per the kind and the layout.
struct ReductionPlan {
  bool has[kNumAxes] = {};     ///< axes of the tensor view
  bool reduced[kNumAxes] = {}; ///< reduced for the statistics
  bool param[kNumAxes] = {};   ///< index weight and bias
  /// Axes innermost first in memory (only those of `has`).
  Axis order[kNumAxes] = {S, K, C, N};
  Statistic statistic = Statistic::MeanVar;
  /// Rows along s are usually a vector or longer (BatchNorm2d/3d, ...): a
  /// hint to the schedules, not a rule.
  bool longRows = false;

  bool kept(Axis a) const { return has[a] && !reduced[a]; }
  Axis unitStride() const {
    for (Axis a : order)
      if (has[a])
        return a;
    return N;
  }
  bool unitStrideReduced() const { return reduced[unitStride()]; }
  bool centered() const { return statistic == Statistic::MeanVar; }
  /// Weight and bias are indexed by exactly the statistics' axes (BatchNorm,
  /// and the eval kernels of running statistics): one reduction gives both
  /// dx's sums and the parameter gradients.
  bool paramsAreStatGroups() const {
    for (int a = 0; a < kNumAxes; ++a)
      if (has[a] && param[a] != kept(Axis(a)))
        return false;
    return true;
  }
  bool operator==(const ReductionPlan &o) const {
    for (int a = 0; a < kNumAxes; ++a)
      if (has[a] != o.has[a] || reduced[a] != o.reduced[a] ||
          param[a] != o.param[a] || order[a] != o.order[a])
        return false;
    return statistic == o.statistic && longRows == o.longRows;
  }
};

/// The plan of `kind`'s batch-statistics kernels (train forward, backward).
inline ReductionPlan planFor(const Kind &kind, bool channelsLast,
                             int spatialRank) {
  ReductionPlan p;
  p.statistic = kind.statistic;
  if (kind.trailing) {
    p.has[K] = p.has[N] = true;
    p.reduced[K] = true;
    p.param[K] = true;
    p.order[0] = K, p.order[1] = N, p.order[2] = S, p.order[3] = C;
    return p;
  }
  p.has[S] = p.has[C] = p.has[N] = true;
  p.has[K] = kind.grouped;
  p.reduced[S] = true;
  p.reduced[K] = kind.grouped;
  p.reduced[N] = kind.batchStats;
  p.param[C] = true;
  p.param[K] = kind.grouped;
  p.longRows = spatialRank != 1;
  if (channelsLast)
    p.order[0] = K, p.order[1] = C, p.order[2] = S, p.order[3] = N;
  return p;
}

/// The plan of the kernels that use running statistics (eval forward and
/// backward, and the update): per channel, over everything else.
inline ReductionPlan runningStatsPlan(const ReductionPlan &batchPlan) {
  ReductionPlan p = batchPlan;
  for (int a = 0; a < kNumAxes; ++a)
    p.reduced[a] = p.has[a] && a != C;
  return p;
}

/// The smallest positive e with 1 + e != 1 in a dtype of `bits` (RMSNorm's
/// eps=None: torch.finfo(dtype).eps); bfloat16 when `bfloat`.
inline double machineEpsilon(int bits, bool bfloat) {
  if (bfloat)
    return 0.0078125; // 2^-7
  switch (bits) {
  case 16:
    return 0.0009765625; // 2^-10
  case 64:
    return 2.220446049250313e-16; // 2^-52
  default:
    return 1.1920928955078125e-07; // 2^-23
  }
}

} // namespace kinds
} // namespace normrt

#endif // NORMRT_KINDS_H

//===- main.cpp - normc-bench: BatchNorm kernels against the memory system ===//
//
// Times every kernel of normc's BatchNorm (train forward with the statistics
// update, eval forward, backward) on a suite of shapes, for each layout and
// dtype, and reports the median time, the effective bandwidth and the ratio
// to the kernel's floor: what the memory system allows for the traffic the
// kernel must make, built from a read, memcpy and a streaming copy (non-
// temporal stores) of the same tensor measured in the same run on the same
// Halide thread pool (kernelFloor says which). oneDNN's batch normalization
// (f32 and bf16, NCHW and NHWC) runs beside it where it has the op. Prints
// a table, and optionally writes CSV and draws a chart of the ratios with
// gnuplot.
//
// Kernels do not depend on num_features, so the benchmark calls the
// kernels of bench.norm's layers directly (normrt/module.h) on each shape,
// with the arguments their signatures in the layer table list. The family
// suite (--suite=family) runs every kind of family.norm through normrt.
//
//===----------------------------------------------------------------------===//

#include "OneDnn.h"
#include "bench.h"
#include "bench_adams2019.h"
#include "bench_family.h"
#include "bench_mullapudi2016.h"
#include "normrt/module.h"
#include "normrt/normrt.h"

#include "HalideRuntime.h"
#include "halide_benchmark.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace cl = llvm::cl;
using namespace normc_bench;

namespace {

cl::OptionCategory benchCategory("normc-bench options");

cl::opt<std::string> suiteName("suite",
                               cl::desc("Shapes: quick, issue, resnet50, "
                                        "misc, default (issue + misc + a "
                                        "ResNet-50 sample), all; or family "
                                        "(every kind of family.norm)"),
                               cl::init("default"), cl::cat(benchCategory));
cl::opt<std::string> shapeList(
    "shapes",
    cl::desc("Comma-separated shapes N x C x spatial extents (like "
             "32x2048x7x7,4096x1024) to run instead of --suite's"),
    cl::cat(benchCategory));
cl::opt<std::string> configList("configs",
                                cl::desc("Comma-separated layouts x dtypes "
                                          "(nchw_f32, nhwc_f32, nchw_f16, "
                                         "nhwc_f16, nchw_bf16, nhwc_bf16, "
                                         "nc_f32, nc_bf16), f32 or all"),
                                cl::init("all"), cl::cat(benchCategory));
cl::opt<int> threads("num-threads",
                     cl::desc("Worker threads (default: all cores)"),
                     cl::init(0), cl::cat(benchCategory));
cl::opt<int> samples("samples", cl::desc("Timed calls per kernel (median)"),
                     cl::init(9), cl::cat(benchCategory));
cl::opt<std::string> csvPath("csv", cl::desc("Write the results as CSV"),
                             cl::value_desc("file"), cl::cat(benchCategory));
cl::opt<std::string> chartPath("chart",
                               cl::desc("Draw ratio-to-floor bars with "
                                        "gnuplot into this PNG"),
                               cl::value_desc("file.png"),
                               cl::cat(benchCategory));
cl::opt<bool> noOneDnn("no-onednn", cl::desc("Skip the oneDNN comparison"),
                       cl::cat(benchCategory));
cl::opt<std::string> baselineList(
    "baselines",
    cl::desc("Comma-separated Halide autoschedulers whose schedules of the "
             "same kernels run beside normc's (Adams2019, Mullapudi2016; "
             "the f32 2d layers, planned for 64x64x112x112), or none"),
    cl::init("Adams2019,Mullapudi2016"), cl::cat(benchCategory));

struct Shape {
  std::string name;
  int64_t n, c;
  std::vector<int64_t> spatial;
  int64_t spatialSize() const {
    int64_t s = 1;
    for (int64_t e : spatial)
      s *= e;
    return s;
  }
  int64_t elements() const { return n * c * spatialSize(); }
};

Shape shape(int64_t n, int64_t c, std::vector<int64_t> spatial) {
  std::string name = std::to_string(n) + "x" + std::to_string(c);
  for (int64_t e : spatial)
    name += "x" + std::to_string(e);
  return {name, n, c, std::move(spatial)};
}

/// Parses --shapes: N x C [x spatial...] items, positive extents, at most 3
/// spatial ones. Returns false on a malformed item.
bool parseShapes(llvm::StringRef list, std::vector<Shape> &out) {
  llvm::SmallVector<llvm::StringRef, 8> items;
  list.split(items, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef item : items) {
    llvm::SmallVector<llvm::StringRef, 5> parts;
    item.trim().split(parts, 'x');
    std::vector<int64_t> extents;
    for (llvm::StringRef p : parts) {
      int64_t e = 0;
      if (p.getAsInteger(10, e) || e <= 0)
        return false;
      extents.push_back(e);
    }
    if (extents.size() < 2 || extents.size() > 5)
      return false;
    out.push_back(shape(extents[0], extents[1],
                        std::vector<int64_t>(extents.begin() + 2,
                                             extents.end())));
  }
  return !out.empty();
}

std::vector<Shape> suite(const std::string &which) {
  std::vector<Shape> issue = {shape(64, 64, {112, 112}),
                              shape(32, 256, {14, 14})};
  // BatchNorm1d (N, C), a 3-channel image batch (few channels, many values:
  // must still use every core) and a video BatchNorm3d.
  std::vector<Shape> misc = {shape(4096, 1024, {}), shape(256, 4096, {}),
                             shape(32, 3, {224, 224}),
                             shape(8, 64, {16, 56, 56})};
  std::vector<Shape> resnet;
  const int64_t layers[][2] = {{64, 112},  {64, 56},  {256, 56}, {128, 56},
                               {128, 28},  {512, 28}, {256, 28}, {256, 14},
                               {1024, 14}, {512, 14}, {512, 7},  {2048, 7}};
  for (int64_t batch : {32, 64})
    for (auto &l : layers)
      resnet.push_back(shape(batch, l[0], {l[1], l[1]}));
  if (which == "none")
    return {};
  if (which == "quick")
    return {shape(4, 16, {32, 32}), shape(64, 256, {})};
  if (which == "issue")
    return issue;
  if (which == "misc")
    return misc;
  if (which == "resnet50")
    return resnet;
  std::vector<Shape> out = issue;
  if (which == "all") {
    out.insert(out.end(), resnet.begin(), resnet.end());
  } else {
    out.push_back(shape(32, 64, {56, 56}));
    out.push_back(shape(32, 2048, {7, 7}));
  }
  out.insert(out.end(), misc.begin(), misc.end());
  return out;
}

/// A 64-byte-aligned host allocation.
struct Block {
  void *data = nullptr;
  size_t bytes = 0;
  explicit Block(size_t size) : bytes(size) {
    data = std::aligned_alloc(64, (size + 63) / 64 * 64);
    std::memset(data, 0, size);
  }
  ~Block() { std::free(data); }
  Block(const Block &) = delete;
  Block &operator=(const Block &) = delete;
};

struct Buffer {
  halide_buffer_t buffer{};
  halide_dimension_t dims[3]{};
  Buffer() { buffer.dim = dims; }
  halide_buffer_t *get() { return &buffer; }
};

halide_type_t halideType(int32_t dtype) {
  switch (dtype) {
  case NORMRT_FLOAT16:
    return halide_type_t(halide_type_float, 16);
  case NORMRT_BFLOAT16:
    return halide_type_t(halide_type_bfloat, 16);
  case NORMRT_FLOAT64:
    return halide_type_t(halide_type_float, 64);
  default:
    return halide_type_t(halide_type_float, 32);
  }
}

void tensorBuffer(Buffer &b, void *data, int32_t dtype, const Shape &s,
                  bool channelsLast) {
  int64_t S = s.spatialSize();
  b.buffer.host = static_cast<uint8_t *>(data);
  b.buffer.type = halideType(dtype);
  b.buffer.dimensions = 3;
  b.dims[0] = {0, int32_t(S), int32_t(channelsLast ? s.c : 1), 0};
  b.dims[1] = {0, int32_t(s.c), int32_t(channelsLast ? 1 : S), 0};
  b.dims[2] = {0, int32_t(s.n), int32_t(S * s.c), 0};
}

void vectorBuffer(Buffer &b, void *data, int64_t c) {
  b.buffer.host = static_cast<uint8_t *>(data);
  b.buffer.type = halideType(NORMRT_FLOAT32);
  b.buffer.dimensions = 1;
  b.dims[0] = {0, int32_t(c), 1, 0};
}

/// Fills a tensor with values around 1 of its dtype, so no kernel sees
/// denormals or NaNs.
void fillTensor(void *data, int32_t dtype, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    float v = 0.5f + float(i % 13) * 0.125f;
    if (dtype == NORMRT_FLOAT32) {
      static_cast<float *>(data)[i] = v;
    } else {
      uint32_t bits;
      std::memcpy(&bits, &v, 4);
      uint16_t h = dtype == NORMRT_BFLOAT16
                       ? uint16_t(bits >> 16)
                       : uint16_t(((bits >> 16) & 0x8000) |
                                  ((((bits >> 23) & 0xff) - 112) << 10) |
                                  ((bits >> 13) & 0x3ff));
      static_cast<uint16_t *>(data)[i] = h;
    }
  }
}

/// How long an op is called untimed before its timed calls. oneDNN runs
/// on OpenMP, whose idle threads spin for a while after each parallel
/// region (libgomp's GOMP_SPINCOUNT) and so share the cores with whatever
/// runs next: right after a oneDNN call, normc's 32x256x14x14 NHWC f32
/// eval took 0.19 ms a call for 8 to 12 ms, then 0.09 ms (2 cores of a
/// Zen 4). With one warm-up call, a shape's floors and normc's first
/// kernel were timed in the spin of the previous shape's oneDNN calls.
constexpr double kWarmUpSeconds = 0.03;

double medianSeconds(const std::function<void()> &op) {
  // Warm up: page faults, thread pool start, and other pools' spinning
  // threads gone idle (kWarmUpSeconds).
  auto start = std::chrono::steady_clock::now();
  do
    op();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start)
             .count() < kWarmUpSeconds);
  std::vector<double> times;
  for (int i = 0; i < samples; ++i)
    times.push_back(Halide::Tools::benchmark(1, 1, op));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// One pass over `bytes` from src (to dst), as parallel tasks on Halide's
/// pool: the passes the floors are made of.
enum class Pass { Read, Memcpy, Stream };
struct PassJob {
  const uint8_t *src;
  uint8_t *dst;
  size_t bytes, chunk;
  Pass pass;
  uint64_t sink[64]; ///< one slot per task (the read's result)
};

/// Reads [begin, end) as 64-bit words into eight independent accumulators,
/// so that the loop is bound by loads, not by a dependency chain.
uint64_t readWords(const uint8_t *p, size_t bytes) {
  const uint64_t *w = reinterpret_cast<const uint64_t *>(p);
  size_t n = bytes / 8;
  uint64_t a[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k)
      a[k] ^= w[i + k];
  for (; i < n; ++i)
    a[0] ^= w[i];
  return a[0] ^ a[1] ^ a[2] ^ a[3] ^ a[4] ^ a[5] ^ a[6] ^ a[7];
}

/// A copy that writes around the cache: 16-byte non-temporal stores (SSE2,
/// part of every x86-64 CPU), then a fence. Other CPUs copy with memcpy.
void streamCopy(const uint8_t *src, uint8_t *dst, size_t bytes) {
#if defined(__SSE2__)
  size_t n = bytes / 16;
  const __m128i *s = reinterpret_cast<const __m128i *>(src);
  __m128i *d = reinterpret_cast<__m128i *>(dst);
  for (size_t i = 0; i < n; ++i)
    _mm_stream_si128(d + i, _mm_load_si128(s + i));
  std::memcpy(dst + n * 16, src + n * 16, bytes - n * 16);
  _mm_sfence();
#else
  std::memcpy(dst, src, bytes);
#endif
}

int passTask(void *, int index, uint8_t *closure) {
  auto *job = reinterpret_cast<PassJob *>(closure);
  size_t begin = size_t(index) * job->chunk;
  size_t end = std::min(job->bytes, begin + job->chunk);
  if (begin >= end)
    return 0;
  switch (job->pass) {
  case Pass::Read:
    job->sink[index % 64] ^= readWords(job->src + begin, end - begin);
    break;
  case Pass::Memcpy:
    std::memcpy(job->dst + begin, job->src + begin, end - begin);
    break;
  case Pass::Stream:
    streamCopy(job->src + begin, job->dst + begin, end - begin);
    break;
  }
  return 0;
}

/// Runs `pass` over `bytes` as `tasks` tasks of whole 64-byte lines.
void parallelPass(Pass pass, const void *src, void *dst, size_t bytes,
                  int tasks) {
  static PassJob job; // the sink outlives the call: reads are not dead
  job.src = static_cast<const uint8_t *>(src);
  job.dst = static_cast<uint8_t *>(dst);
  job.bytes = bytes;
  job.pass = pass;
  job.chunk = ((bytes + size_t(tasks) - 1) / size_t(tasks) + 63) / 64 * 64;
  halide_do_par_for(nullptr, passTask, 0, tasks,
                    reinterpret_cast<uint8_t *>(&job));
}

/// What the memory system allows for one tensor on this pool, this run.
struct Floors {
  double read = 0, memcpy = 0, stream = 0;
  /// The faster of the two ways to copy.
  double copy() const { return std::min(memcpy, stream); }
};

Floors measureFloors(const void *src, void *dst, size_t bytes, int tasks) {
  Floors f;
  f.read = medianSeconds([&] { parallelPass(Pass::Read, src, dst, bytes, tasks); });
  f.memcpy = medianSeconds([&] { parallelPass(Pass::Memcpy, src, dst, bytes, tasks); });
  f.stream = medianSeconds([&] { parallelPass(Pass::Stream, src, dst, bytes, tasks); });
  return f;
}

/// The least traffic a kernel must make, as floors. Eval reads x and writes
/// y: a copy. Train reads x twice (statistics, then normalization) and
/// writes y; planar kernels re-read a channel's slab from cache, so a copy,
/// while channels-last kernels (and (N, C) tensors, whose stride-1 axis is
/// C too) cannot keep every channel's values between the two passes: a
/// read and a copy. Backward reads x and dy for the sums and again for dx:
/// planar re-reads from cache (a read and a copy), channels-last reads
/// three times (x, dy, then both again) and writes dx once.
double kernelFloor(const Floors &f, llvm::StringRef kernel,
                   bool strideOneChannels) {
  if (kernel == "eval")
    return f.copy();
  if (kernel == "train")
    return strideOneChannels ? f.read + f.copy() : f.copy();
  return (strideOneChannels ? 3 : 1) * f.read + f.copy();
}

struct Row {
  std::string shape, config, kernel;
  double seconds, gbps;
  double floor = 0; ///< seconds; 0 for the floor rows themselves
  double onednnSeconds = 0;
  double ratio() const { return floor > 0 ? seconds / floor : 0; }
  double onednnRatio() const {
    return floor > 0 && onednnSeconds > 0 ? onednnSeconds / floor : 0;
  }
};

/// The floor rows of one tensor: time and bandwidth of a read, memcpy and
/// a streaming copy of it.
std::vector<Row> floorRows(const std::string &shape, const std::string &config,
                           const Floors &f, size_t bytes) {
  auto row = [&](const char *name, double seconds, double transfers) {
    return Row{shape, config, name, seconds,
               transfers * double(bytes) / seconds / 1e9};
  };
  return {row("read", f.read, 1), row("memcpy", f.memcpy, 2),
          row("stream", f.stream, 2)};
}

/// The baselines: bench.norm's f32 2d layers scheduled by Halide's
/// autoschedulers instead of normc's schedules.
struct Scheduled {
  const char *schedule; ///< the autoscheduler's name
  const normrt_module *module;
};
const Scheduled kBaselines[] = {
    {"Adams2019", &normc_module_bench_adams2019},
    {"Mullapudi2016", &normc_module_bench_mullapudi2016},
};

const normrt_layer_desc *findLayer(const normrt_module &module,
                                   const std::string &name) {
  for (int32_t i = 0; i < module.num_layers; ++i)
    if (name == module.layers[i].name)
      return &module.layers[i];
  return nullptr;
}

void check(int rc, const char *what) {
  if (rc != 0) {
    llvm::errs() << "normc-bench: " << what << " failed with " << rc << "\n";
    std::exit(1);
  }
}

/// Every tensor and per-channel vector of one shape, and the argument lists
/// of the kernels (normrt/module.h) over them.
struct ShapeData {
  const Shape &shape;
  size_t bytes;
  Block x, y, dy, dx;
  std::vector<float> w, b, mean, invstd, var, rm, rv, rm2, rv2, dw, db;
  int64_t counter = 0, counter2 = 0, count;
  Buffer xb, yb, dyb, dxb, wb, bb, mb, ib, vb, rmb, rvb, rm2b, rv2b, dwb, dbb,
      cb, c2b;
  // Every kernel takes Halide's user context first.
  void *userContext = nullptr;

  ShapeData(const Shape &s, int32_t dtype, bool cl)
      : shape(s),
        bytes(size_t(s.elements()) * (dtype == NORMRT_FLOAT32 ? 4 : 2)),
        x(bytes), y(bytes), dy(bytes), dx(bytes), w(s.c, 1.0f), b(s.c, 0.0f),
        mean(s.c), invstd(s.c), var(s.c), rm(s.c, 0.0f), rv(s.c, 1.0f),
        rm2(s.c), rv2(s.c), dw(s.c), db(s.c), count(s.n * s.spatialSize()) {
    fillTensor(x.data, dtype, s.elements());
    fillTensor(dy.data, dtype, s.elements());
    tensorBuffer(xb, x.data, dtype, s, cl);
    tensorBuffer(yb, y.data, dtype, s, cl);
    tensorBuffer(dyb, dy.data, dtype, s, cl);
    tensorBuffer(dxb, dx.data, dtype, s, cl);
    for (auto [buf, vec] :
         {std::pair{&wb, &w}, {&bb, &b}, {&mb, &mean}, {&ib, &invstd},
          {&vb, &var}, {&rmb, &rm}, {&rvb, &rv}, {&rm2b, &rm2},
          {&rv2b, &rv2}, {&dwb, &dw}, {&dbb, &db}})
      vectorBuffer(*buf, vec->data(), s.c);
    for (auto [buf, value] : {std::pair{&cb, &counter}, {&c2b, &counter2}}) {
      buf->buffer.host = reinterpret_cast<uint8_t *>(value);
      buf->buffer.type = halide_type_t(halide_type_int, 64);
      buf->buffer.dimensions = 0;
    }
  }

  /// The arguments of kernel `kind` of layer `d`, in the order of its
  /// signature in the layer table (normrt/module.h): what each role is
  /// bound to here. The update reads the train forward's statistics and
  /// writes the running statistics' successors.
  std::vector<void *> args(const normrt_layer_desc *d, normrt_kernel_kind kind) {
    void *in[NORMRT_ARG_ROLE_COUNT] = {};
    void *out[NORMRT_ARG_ROLE_COUNT] = {};
    in[NORMRT_ARG_X] = xb.get();
    in[NORMRT_ARG_GRAD_OUTPUT] = dyb.get();
    in[NORMRT_ARG_WEIGHT] = wb.get();
    in[NORMRT_ARG_BIAS] = bb.get();
    in[NORMRT_ARG_RUNNING_MEAN] = rmb.get();
    in[NORMRT_ARG_RUNNING_VAR] = rvb.get();
    in[NORMRT_ARG_NUM_BATCHES_TRACKED] = cb.get();
    in[NORMRT_ARG_SAVE_MEAN] = mb.get();
    in[NORMRT_ARG_SAVE_INVSTD] = ib.get();
    in[NORMRT_ARG_BATCH_VAR] = vb.get();
    in[NORMRT_ARG_COUNT] = &count;
    out[NORMRT_ARG_Y] = yb.get();
    out[NORMRT_ARG_SAVE_MEAN] = mb.get();
    out[NORMRT_ARG_SAVE_INVSTD] = ib.get();
    out[NORMRT_ARG_BATCH_VAR] = vb.get();
    out[NORMRT_ARG_RUNNING_MEAN] = rm2b.get();
    out[NORMRT_ARG_RUNNING_VAR] = rv2b.get();
    out[NORMRT_ARG_NUM_BATCHES_TRACKED] = c2b.get();
    out[NORMRT_ARG_GRAD_INPUT] = dxb.get();
    out[NORMRT_ARG_GRAD_WEIGHT] = dwb.get();
    out[NORMRT_ARG_GRAD_BIAS] = dbb.get();
    std::vector<void *> list = {&userContext};
    const normrt_kernel_signature &sig = d->signatures[kind];
    for (int32_t i = 0; i < sig.num_args; ++i) {
      int32_t role = sig.args[i] & ~NORMRT_ARG_OUTPUT;
      void *arg = (sig.args[i] & NORMRT_ARG_OUTPUT ? out : in)[role];
      if (!arg) {
        llvm::errs() << "normc-bench: kernel " << int(kind) << " of "
                     << d->name << " takes "
                     << normrt_arg_role_name(sig.args[i])
                     << ", which the benchmark does not have\n";
        std::exit(1);
      }
      list.push_back(arg);
    }
    return list;
  }
};

/// One row per kernel of layer `d` on `data`, each with its floor. A baseline's
/// kernels may reject a shape (an autoscheduler plans for one shape and may
/// split loops by more than a smaller tensor's extent): no rows then.
std::vector<Row> kernelRows(const normrt_layer_desc *d, ShapeData &data,
                            const Floors &floors, const std::string &config) {
  int32_t variant = normrt_runnable_variant(d);
  if (variant < 0) {
    llvm::errs() << "\nnormc-bench: " << config << " was compiled for \""
                 << d->target_string << "\", which this CPU cannot run; no rows\n";
    return {};
  }
  // (N, C) tensors have C as their stride-1 axis, as channels-last ones.
  bool strideOneChannels = d->layout != 0 || data.shape.spatial.empty();
  // The kernels normrt would call: the streaming variant when the call's
  // tensors (x and y; x, dy and dx in backward) and the output's rows (C
  // values, or a plane of H x W) say so.
  int64_t rowBytes = int64_t(data.bytes) / data.shape.n /
                     (strideOneChannels ? data.shape.spatialSize() : data.shape.c);
  const normrt_kernel_variant &v = d->variants[variant];
  normrt_kernel_fn k[NORMRT_KERNEL_COUNT];
  for (int kind = 0; kind < NORMRT_KERNEL_COUNT; ++kind) {
    int64_t tensors = kind == NORMRT_KERNEL_BACKWARD ? 3 : 2;
    bool stream = v.streaming_kernels[kind] &&
                  normrt_streaming_applies(tensors * int64_t(data.bytes), rowBytes);
    k[kind] = stream ? v.streaming_kernels[kind] : v.kernels[kind];
  }
  std::vector<void *> train = data.args(d, NORMRT_KERNEL_FORWARD_TRAIN),
                      update = data.args(d, NORMRT_KERNEL_UPDATE_STATS),
                      eval = data.args(d, NORMRT_KERNEL_FORWARD_EVAL),
                      back = data.args(d, NORMRT_KERNEL_BACKWARD);
  if (k[NORMRT_KERNEL_FORWARD_TRAIN](train.data()) != 0) {
    llvm::errs() << "\nnormc-bench: " << config << " cannot run "
                 << data.shape.name << "; no rows\n";
    return {};
  }
  auto row = [&](const char *kernel, double seconds, double transfers) {
    Row r{data.shape.name, config, kernel, seconds,
          transfers * double(data.bytes) / seconds / 1e9};
    r.floor = kernelFloor(floors, kernel, strideOneChannels);
    return r;
  };
  std::vector<Row> rows;
  rows.push_back(row("train", medianSeconds([&] {
                       check(k[NORMRT_KERNEL_FORWARD_TRAIN](train.data()),
                             "forward_train");
                       check(k[NORMRT_KERNEL_UPDATE_STATS](update.data()),
                             "update_stats");
                     }),
                     2));
  rows.push_back(row("eval", medianSeconds([&] {
                       check(k[NORMRT_KERNEL_FORWARD_EVAL](eval.data()),
                             "forward_eval");
                     }),
                     2));
  rows.push_back(row("backward", medianSeconds([&] {
                       check(k[NORMRT_KERNEL_BACKWARD](back.data()),
                             "backward");
                     }),
                     3));
  return rows;
}

/// normc's rows for layer `config` on shape `s` (with oneDNN beside them),
/// then the rows of each autoscheduled baseline that has the layer.
std::vector<Row> runShape(const Shape &s, const std::string &config,
                          const std::vector<std::string> &baselines,
                          int tasks) {
  const normrt_layer_desc *d = findLayer(normc_module_bench, config);
  const bool cl = d->layout != 0;
  ShapeData data(s, d->dtype, cl);
  Floors floors = measureFloors(data.x.data, data.y.data, data.bytes, tasks);
  std::vector<Row> rows = floorRows(s.name, config, floors, data.bytes);
  std::vector<Row> kernels = kernelRows(d, data, floors, config);
  if (kernels.empty())
    std::exit(1); // normc's own kernels must run every shape
  size_t first = rows.size();
  rows.insert(rows.end(), kernels.begin(), kernels.end());

  OneDnnKernels dnnl;
  bool dnnlType = d->dtype == NORMRT_FLOAT32 || d->dtype == NORMRT_BFLOAT16;
  OneDnnCase dnnlCase{s.n, s.c, s.spatialSize(), cl,
                      d->dtype == NORMRT_BFLOAT16};
  if (!noOneDnn && dnnlType && makeOneDnnKernels(dnnlCase, dnnl)) {
    rows[first].onednnSeconds = medianSeconds(dnnl.forwardTrain);
    rows[first + 1].onednnSeconds = medianSeconds(dnnl.forwardEval);
    rows[first + 2].onednnSeconds = medianSeconds(dnnl.backward);
  }

  for (const Scheduled &m : kBaselines) {
    if (llvm::find(baselines, m.schedule) == baselines.end())
      continue;
    if (const normrt_layer_desc *b = findLayer(*m.module, config)) {
      std::vector<Row> more =
          kernelRows(b, data, floors, config + "/" + m.schedule);
      rows.insert(rows.end(), more.begin(), more.end());
    }
  }
  return rows;
}

void printTable(const std::vector<Row> &rows, llvm::raw_ostream &os) {
  os << "shape                config                  kernel            ms "
        "    GB/s  x floor   oneDNN ms  x floor vs oneDNN\n";
  for (const Row &r : rows) {
    os << llvm::format("%-20s %-23s %-9s %10.3f %8.2f", r.shape.c_str(),
                       r.config.c_str(), r.kernel.c_str(), r.seconds * 1e3,
                       r.gbps);
    if (r.floor > 0)
      os << llvm::format(" %8.2f", r.ratio());
    if (r.onednnSeconds > 0)
      os << llvm::format(" %11.3f %8.2f %8.2fx", r.onednnSeconds * 1e3,
                         r.onednnRatio(), r.onednnSeconds / r.seconds);
    os << "\n";
  }
}

void writeCsv(const std::vector<Row> &rows, llvm::raw_ostream &os) {
  os << "shape,config,kernel,ms,gbps,floor_ms,ratio_to_floor,onednn_ms,"
        "onednn_ratio_to_floor\n";
  for (const Row &r : rows) {
    os << r.shape << "," << r.config << "," << r.kernel << ","
       << llvm::format("%.4f,%.3f,", r.seconds * 1e3, r.gbps);
    if (r.floor > 0)
      os << llvm::format("%.4f,%.4f,", r.floor * 1e3, r.ratio());
    else
      os << ",,";
    if (r.onednnSeconds > 0)
      os << llvm::format("%.4f,%.4f", r.onednnSeconds * 1e3, r.onednnRatio());
    else
      os << ",";
    os << "\n";
  }
}

/// Grouped bars: one group per shape and config, one bar per kernel.
int drawChart(const std::vector<Row> &rows, const std::string &png) {
  auto gnuplot = llvm::sys::findProgramByName("gnuplot");
  if (!gnuplot) {
    llvm::errs() << "normc-bench: gnuplot not found; no chart drawn\n";
    return 1;
  }
  std::string data = png + ".dat", script = png + ".gp";
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(data, ec);
    os << "case train eval backward\n";
    std::map<std::string, std::map<std::string, double>> groups;
    std::vector<std::string> order;
    for (const Row &r : rows) {
      if (r.floor <= 0)
        continue;
      std::string key = r.shape + "/" + r.config;
      if (!groups.count(key))
        order.push_back(key);
      groups[key][r.kernel] = r.ratio();
    }
    for (const std::string &key : order) {
      auto &g = groups[key];
      os << key << " " << g["train"] << " " << g["eval"] << " "
         << g["backward"] << "\n";
    }
  }
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(script, ec);
    os << "set terminal pngcairo size 1600,700\nset output '" << png << "'\n"
       << "set style data histograms\nset style histogram clustered\n"
       << "set style fill solid 0.8\nset key top left\n"
       << "set ylabel 'time / floor of the kernel'\n"
       << "set xtics rotate by -45 font ',8'\nset grid ytics\n"
       << "set title 'normc kernels: time relative to the floor the memory "
          "system allows (1.0 = floor)'\n"
       << "plot '" << data << "' using 2:xtic(1) title 'train', '' using 3 "
       << "title 'eval', '' using 4 title 'backward', 1 with lines lc rgb "
          "'black' title 'floor'\n";
  }
  llvm::StringRef args[] = {*gnuplot, script};
  return llvm::sys::ExecuteAndWait(*gnuplot, args);
}

//===----------------------------------------------------------------------===//
// The family suite: every kind through normrt on the shapes its layers of
// family.norm were compiled for, against oneDNN's layer_normalization and
// against the unfused pair a fused layer replaces.
//===----------------------------------------------------------------------===//

/// A host tensor for normrt.
struct HostTensor {
  Block block;
  normrt_tensor t{};
  /// Zero strides: dense in the layer's layout.
  explicit HostTensor(const std::vector<int64_t> &shape)
      : block(bytesOf(shape)) {
    t.data = block.data;
    t.ndim = int32_t(shape.size());
    for (size_t i = 0; i < shape.size(); ++i)
      t.shape[i] = shape[i];
    t.dtype = NORMRT_FLOAT32;
    fillTensor(block.data, NORMRT_FLOAT32, elements(shape));
  }
  static int64_t elements(const std::vector<int64_t> &shape) {
    int64_t e = 1;
    for (int64_t d : shape)
      e *= d;
    return e;
  }
  static size_t bytesOf(const std::vector<int64_t> &shape) {
    return size_t(elements(shape)) * 4;
  }
};

/// An elementwise pass over `count` f32 values on Halide's pool: the
/// separate activation (and residual add) a fused layer saves.
struct ElementwiseJob {
  const float *a, *b;
  float *out;
  int64_t count, chunk;
  int op; ///< 0 silu, 1 relu(a + b), 2 silu backward, 3 relu backward
};
int elementwiseTask(void *, int index, uint8_t *closure) {
  auto *job = reinterpret_cast<ElementwiseJob *>(closure);
  int64_t begin = index * job->chunk;
  int64_t end = std::min(job->count, begin + job->chunk);
  for (int64_t i = begin; i < end; ++i) {
    float v = job->a[i];
    switch (job->op) {
    case 0:
      job->out[i] = v / (1.0f + std::exp(-v));
      break;
    case 1:
      job->out[i] = std::max(v + job->b[i], 0.0f);
      break;
    case 2: { // dy * silu'(u), u = b
      float u = job->b[i], sig = 1.0f / (1.0f + std::exp(-u));
      job->out[i] = v * sig * (1.0f + u * (1.0f - sig));
      break;
    }
    default: // dy where u > 0
      job->out[i] = job->b[i] > 0.0f ? v : 0.0f;
    }
  }
  return 0;
}
void elementwise(const float *a, const float *b, float *out, int64_t count,
                 int op, int tasks) {
  ElementwiseJob job{a, b, out, count, (count + tasks - 1) / tasks, op};
  halide_do_par_for(nullptr, elementwiseTask, 0, tasks,
                    reinterpret_cast<uint8_t *>(&job));
}

struct FamilyCase {
  const char *layer;
  std::vector<int64_t> shape;
  /// The unfused pair: a layer without the epilogue and the pass after it
  /// (0 silu, 1 residual add + relu); null when the layer is not fused.
  const char *unfused = nullptr;
  int pass = 0;
};

std::string shapeName(const std::vector<int64_t> &shape) {
  std::string name;
  for (int64_t d : shape)
    name += (name.empty() ? "" : "x") + std::to_string(d);
  return name;
}

normrt_layer *createLayer(const char *name) {
  normrt_layer *layer = normrt_layer_create(name, "cpu");
  if (!layer) {
    llvm::errs() << "normc-bench: " << normrt_last_error() << "\n";
    std::exit(1);
  }
  return layer;
}

std::vector<Row> familyRows(int tasks) {
  const FamilyCase cases[] = {
      {"ln768", {8192, 768}},
      {"ln4096", {4096, 4096}},
      {"rms4096", {4096, 4096}},
      {"gn512", {8, 512, 32, 32}},
      {"gn512_silu", {8, 512, 32, 32}, "gn512", 0},
      {"in64", {8, 64, 128, 128}},
      {"in64_nhwc", {8, 64, 128, 128}},
      {"bn_res_relu", {32, 256, 28, 28}, "bn256", 1},
  };
  std::vector<Row> rows;
  for (const FamilyCase &c : cases) {
    normrt_layer *layer = createLayer(c.layer);
    normrt_layer_info info;
    check(normrt_layer_get_info(layer, &info), "normrt_layer_get_info");
    HostTensor x(c.shape), y(c.shape), z(c.shape), dy(c.shape), dx(c.shape),
        dz(c.shape), u(c.shape);
    size_t bytes = HostTensor::bytesOf(c.shape);
    int64_t count = HostTensor::elements(c.shape);
    std::string name = shapeName(c.shape);
    std::string config = std::string(c.layer) + " (" + info.kind + ")";
    Floors floors = measureFloors(x.block.data, y.block.data, bytes, tasks);
    // Per-instance rows are short enough to be re-read from cache: train's
    // floor is a copy and backward's a read and a copy; a residual adds a
    // read (z) to train and a copy (z in, dz out) to backward.
    int residual = info.residual ? 1 : 0;
    auto row = [&](const char *kernel, double seconds, double transfers,
                   double floor) {
      Row r{name, config, kernel, seconds,
            transfers * double(bytes) / seconds / 1e9};
      r.floor = floor;
      return r;
    };
    normrt_forward_args fwd = {&x.t, info.residual ? &z.t : nullptr, &y.t};
    normrt_backward_args bwd = {&x.t,  info.residual ? &z.t : nullptr,
                                &dy.t, &dx.t,
                                info.residual ? &dz.t : nullptr,
                                nullptr, nullptr};
    double train = medianSeconds(
        [&] { check(normrt_layer_forward_args(layer, &fwd), "forward"); });
    double back = medianSeconds(
        [&] { check(normrt_layer_backward_args(layer, &bwd), "backward"); });
    std::vector<Row> floorList = floorRows(name, config, floors, bytes);
    rows.insert(rows.end(), floorList.begin(), floorList.end());
    rows.push_back(row("train", train, 2 + residual,
                       floors.copy() + residual * floors.read));
    rows.push_back(row("backward", back, 3 + 2 * residual,
                       floors.read + floors.copy() * (1 + residual)));
    size_t first = rows.size() - 2;
    OneDnnKernels dnnl;
    if (!noOneDnn && std::strncmp(info.kind, "LayerNorm", 9) == 0 &&
        makeOneDnnLayerNorm(c.shape[0], c.shape[1], dnnl)) {
      rows[first].onednnSeconds = medianSeconds(dnnl.forwardTrain);
      rows[first + 1].onednnSeconds = medianSeconds(dnnl.backward);
    }
    if (c.unfused) {
      // The unfused pair: the plain layer, then the pass (forward); the
      // pass's gradient, then the plain layer's backward.
      normrt_layer *plain = createLayer(c.unfused);
      normrt_forward_args pf = {&x.t, nullptr, &u.t};
      normrt_backward_args pb = {&x.t, nullptr, &dz.t, &dx.t,
                                 nullptr, nullptr, nullptr};
      const float *uf = static_cast<float *>(u.block.data);
      float *yf = static_cast<float *>(y.block.data);
      rows[first].onednnSeconds = medianSeconds([&] {
        check(normrt_layer_forward_args(plain, &pf), "forward (unfused)");
        elementwise(uf, static_cast<float *>(z.block.data), yf, count, c.pass,
                    tasks);
      });
      rows[first + 1].onednnSeconds = medianSeconds([&] {
        elementwise(static_cast<float *>(dy.block.data), uf,
                    static_cast<float *>(dz.block.data), count, c.pass + 2,
                    tasks);
        check(normrt_layer_backward_args(plain, &pb), "backward (unfused)");
      });
      for (size_t i = first; i < first + 2; ++i)
        rows[i].config += " vs unfused";
      normrt_layer_destroy(plain);
    }
    normrt_layer_destroy(layer);
    printTable(std::vector<Row>(rows.end() - 5, rows.end()), llvm::outs());
    llvm::outs().flush();
  }
  return rows;
}

} // namespace

int main(int argc, char **argv) {
  cl::HideUnrelatedOptions(benchCategory);
  cl::ParseCommandLineOptions(argc, argv,
                              "normc-bench: normalization kernels against the "
                              "memory system's floors "
                              "of the same tensor and against oneDNN\n");
  // Kernels are called directly, not through normrt: print Halide's
  // message of a failed call before check() stops the run.
  halide_set_error_handler([](void *, const char *message) {
    llvm::errs() << "normc-bench: " << message;
  });
  int workers = threads > 0 ? int(threads)
                            : int(std::max(1u, std::thread::hardware_concurrency()));
  halide_set_num_threads(workers);
  omp_set_num_threads(workers);

  std::vector<std::string> configs;
  if (configList == "all") {
    for (int32_t i = 0; i < normc_module_bench.num_layers; ++i)
      configs.push_back(normc_module_bench.layers[i].name);
  } else if (configList == "f32") {
    configs = {"nchw_f32", "nhwc_f32", "nc_f32"};
  } else {
    llvm::SmallVector<llvm::StringRef> parts;
    llvm::StringRef(configList).split(parts, ',');
    for (llvm::StringRef p : parts)
      configs.push_back(p.trim().str());
  }

  std::vector<std::string> baselines;
  if (baselineList != "none") {
    llvm::SmallVector<llvm::StringRef> parts;
    llvm::StringRef(baselineList).split(parts, ',', -1, false);
    for (llvm::StringRef p : parts) {
      std::string name = p.trim().str();
      if (llvm::none_of(kBaselines, [&](const Scheduled &m) {
            return name == m.schedule;
          })) {
        llvm::errs() << "normc-bench: unknown baseline '" << name
                     << "' (Adams2019, Mullapudi2016 or none)\n";
        return 2;
      }
      baselines.push_back(name);
    }
  }

  llvm::outs() << "normc-bench: " << workers << " threads, median of "
               << samples << " calls, streaming threshold "
               << normrt_streaming_threshold() << " bytes; x floor = time / "
               << "the kernel's floor (read, memcpy, stream: passes over x "
               << "on the same threads)\n";
  std::vector<Row> rows;
  if (suiteName == "family") {
    // The oneDNN columns hold oneDNN's layer_normalization for LayerNorm
    // rows and the unfused pair for fused rows.
    rows = familyRows(workers * 4);
    configs.clear();
  }
  std::vector<Shape> shapes;
  if (shapeList.empty()) {
    shapes = suite(suiteName == "family" ? std::string("none") : suiteName);
  } else if (!parseShapes(shapeList, shapes)) {
    llvm::errs() << "normc-bench: --shapes takes N x C x spatial extents "
                    "separated by commas, like 32x2048x7x7,4096x1024\n";
    return 2;
  }
  for (const Shape &s : shapes) {
    for (const std::string &config : configs) {
      const normrt_layer_desc *d = findLayer(normc_module_bench, config);
      if (!d) {
        llvm::errs() << "normc-bench: unknown config '" << config << "'\n";
        return 2;
      }
      // (N, C) shapes on BatchNorm1d layers, the others on 2d layers.
      if ((d->spatial_rank == 1) != s.spatial.empty())
        continue;
      std::vector<Row> shapeRows = runShape(s, config, baselines, workers * 4);
      printTable(shapeRows, llvm::outs());
      llvm::outs().flush();
      rows.insert(rows.end(), shapeRows.begin(), shapeRows.end());
    }
  }
  llvm::outs() << "\nsummary\n";
  printTable(rows, llvm::outs());
  if (!csvPath.empty()) {
    std::error_code ec;
    llvm::raw_fd_ostream os(csvPath, ec);
    if (ec) {
      llvm::errs() << "normc-bench: cannot write " << csvPath << "\n";
      return 2;
    }
    writeCsv(rows, os);
  }
  if (!chartPath.empty() && drawChart(rows, chartPath) != 0)
    return 3;
  return 0;
}

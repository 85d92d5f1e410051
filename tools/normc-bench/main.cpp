//===- main.cpp - normc-bench: BatchNorm kernels against the memory system ===//
//
// Times every kernel of normc's BatchNorm (train forward with the statistics
// update, eval forward, backward) on a suite of shapes, for each layout and
// dtype, and reports the median time, the effective bandwidth and the ratio
// to a multithreaded copy of the same tensor measured in the same run, on
// the same Halide thread pool. oneDNN's batch normalization (f32, NCHW and
// NHWC) runs beside it where it has the op. Prints a table, and optionally
// writes CSV and draws a chart of the ratios with gnuplot.
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

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

namespace cl = llvm::cl;
using namespace normc_bench;

namespace {

cl::opt<std::string> suiteName("suite",
                               cl::desc("Shapes: quick, issue, resnet50, "
                                        "misc, default (issue + misc + a "
                                        "ResNet-50 sample), all; or family "
                                        "(every kind of family.norm)"),
                               cl::init("default"));
cl::opt<std::string> configList("configs",
                                cl::desc("Comma-separated layouts x dtypes "
                                          "(nchw_f32, nhwc_f32, nchw_f16, "
                                         "nhwc_f16, nchw_bf16, nhwc_bf16, "
                                         "nc_f32, nc_bf16), f32 or all"),
                                cl::init("all"));
cl::opt<int> threads("num-threads",
                     cl::desc("Worker threads (default: all cores)"),
                     cl::init(0));
cl::opt<int> samples("samples", cl::desc("Timed calls per kernel (median)"),
                     cl::init(9));
cl::opt<std::string> csvPath("csv", cl::desc("Write the results as CSV"),
                             cl::value_desc("file"));
cl::opt<std::string> chartPath("chart",
                               cl::desc("Draw ratio-to-copy bars with "
                                        "gnuplot into this PNG"),
                               cl::value_desc("file.png"));
cl::opt<bool> noOneDnn("no-onednn", cl::desc("Skip the oneDNN comparison"));
cl::opt<std::string> baselineList(
    "baselines",
    cl::desc("Comma-separated Halide autoschedulers whose schedules of the "
             "same kernels run beside normc's (Adams2019, Mullapudi2016; "
             "the f32 2d layers, planned for 64x64x112x112), or none"),
    cl::init("Adams2019,Mullapudi2016"));

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

double medianSeconds(const std::function<void()> &op) {
  op(); // warm up: page faults, thread pool start
  std::vector<double> times;
  for (int i = 0; i < samples; ++i)
    times.push_back(Halide::Tools::benchmark(1, 1, op));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

/// Copy of `bytes` from src to dst as parallel tasks on Halide's pool.
struct CopyJob {
  const uint8_t *src;
  uint8_t *dst;
  size_t bytes, chunk;
};
int copyTask(void *, int index, uint8_t *closure) {
  auto *job = reinterpret_cast<CopyJob *>(closure);
  size_t begin = size_t(index) * job->chunk;
  size_t end = std::min(job->bytes, begin + job->chunk);
  if (begin < end)
    std::memcpy(job->dst + begin, job->src + begin, end - begin);
  return 0;
}
void parallelCopy(const void *src, void *dst, size_t bytes, int tasks) {
  CopyJob job{static_cast<const uint8_t *>(src), static_cast<uint8_t *>(dst),
              bytes, (bytes + size_t(tasks) - 1) / size_t(tasks)};
  job.chunk = (job.chunk + 63) / 64 * 64;
  halide_do_par_for(nullptr, copyTask, 0, tasks,
                    reinterpret_cast<uint8_t *>(&job));
}

struct Row {
  std::string shape, config, kernel;
  double seconds, gbps, ratio;
  double onednnSeconds = 0, onednnRatio = 0;
};

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

/// The copy row and one row per kernel of layer `d` on `data`. A baseline's
/// kernels may reject a shape (an autoscheduler plans for one shape and may
/// split loops by more than a smaller tensor's extent): no rows then.
std::vector<Row> kernelRows(const normrt_layer_desc *d, ShapeData &data,
                            double copy, const std::string &config) {
  int32_t variant = normrt_runnable_variant(d);
  if (variant < 0) {
    llvm::errs() << "\nnormc-bench: " << config << " was compiled for \""
                 << d->target_string << "\", which this CPU cannot run; no rows\n";
    return {};
  }
  const normrt_kernel_fn *k = d->variants[variant].kernels;
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
    return Row{data.shape.name, config, kernel, seconds,
               transfers * double(data.bytes) / seconds / 1e9, seconds / copy};
  };
  std::vector<Row> rows;
  rows.push_back(row("copy", copy, 2));
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
  double copy = medianSeconds(
      [&] { parallelCopy(data.x.data, data.y.data, data.bytes, tasks); });
  std::vector<Row> rows = kernelRows(d, data, copy, config);
  if (rows.empty())
    std::exit(1); // normc's own kernels must run every shape

  OneDnnKernels dnnl;
  if (!noOneDnn && d->dtype == NORMRT_FLOAT32 &&
      makeOneDnnKernels({s.n, s.c, s.spatialSize(), cl}, dnnl)) {
    rows[1].onednnSeconds = medianSeconds(dnnl.forwardTrain);
    rows[2].onednnSeconds = medianSeconds(dnnl.forwardEval);
    rows[3].onednnSeconds = medianSeconds(dnnl.backward);
    for (int i = 1; i <= 3; ++i)
      rows[i].onednnRatio = rows[i].onednnSeconds / copy;
  }

  for (const Scheduled &m : kBaselines) {
    if (llvm::find(baselines, m.schedule) == baselines.end())
      continue;
    if (const normrt_layer_desc *b = findLayer(*m.module, config)) {
      std::vector<Row> more =
          kernelRows(b, data, copy, config + "/" + m.schedule);
      rows.insert(rows.end(), more.begin(), more.end());
    }
  }
  return rows;
}

void printTable(const std::vector<Row> &rows, llvm::raw_ostream &os) {
  os << "shape                config                  kernel            ms "
        "    GB/s   x copy   oneDNN ms   x copy vs oneDNN\n";
  for (const Row &r : rows) {
    os << llvm::format("%-20s %-23s %-9s %10.3f %8.2f %8.2f", r.shape.c_str(),
                       r.config.c_str(), r.kernel.c_str(), r.seconds * 1e3,
                       r.gbps, r.ratio);
    if (r.onednnSeconds > 0)
      os << llvm::format(" %11.3f %8.2f %8.2fx", r.onednnSeconds * 1e3,
                         r.onednnRatio, r.onednnSeconds / r.seconds);
    os << "\n";
  }
}

void writeCsv(const std::vector<Row> &rows, llvm::raw_ostream &os) {
  os << "shape,config,kernel,ms,gbps,ratio_to_copy,onednn_ms,onednn_ratio_to_copy\n";
  for (const Row &r : rows) {
    os << r.shape << "," << r.config << "," << r.kernel << ","
       << llvm::format("%.4f,%.3f,%.4f,", r.seconds * 1e3, r.gbps, r.ratio);
    if (r.onednnSeconds > 0)
      os << llvm::format("%.4f,%.4f", r.onednnSeconds * 1e3, r.onednnRatio);
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
    for (size_t i = 0; i + 3 < rows.size(); i += 4)
      os << rows[i].shape << "/" << rows[i].config << " " << rows[i + 1].ratio
         << " " << rows[i + 2].ratio << " " << rows[i + 3].ratio << "\n";
  }
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(script, ec);
    os << "set terminal pngcairo size 1600,700\nset output '" << png << "'\n"
       << "set style data histograms\nset style histogram clustered\n"
       << "set style fill solid 0.8\nset key top left\n"
       << "set ylabel 'time / multithreaded copy of x'\n"
       << "set xtics rotate by -45 font ',8'\nset grid ytics\n"
       << "set title 'normc BatchNorm kernels: time relative to a copy of "
          "the same tensor (1.0 = copy)'\n"
       << "plot '" << data << "' using 2:xtic(1) title 'train', '' using 3 "
       << "title 'eval', '' using 4 title 'backward', 1 with lines lc rgb "
          "'black' title 'copy'\n";
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
    double copy =
        medianSeconds([&] { parallelCopy(x.block.data, y.block.data, bytes, tasks); });
    auto row = [&](const char *kernel, double seconds, double transfers) {
      return Row{name, config, kernel, seconds,
                 transfers * double(bytes) / seconds / 1e9, seconds / copy};
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
    int residualReads = info.residual ? 1 : 0;
    rows.push_back(row("copy", copy, 2));
    rows.push_back(row("train", train, 2 + residualReads));
    rows.push_back(row("backward", back, 3 + 2 * residualReads));
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
    for (size_t i = first; i < first + 2; ++i)
      rows[i].onednnRatio = rows[i].onednnSeconds / copy;
    normrt_layer_destroy(layer);
    printTable(std::vector<Row>(rows.end() - 3, rows.end()), llvm::outs());
    llvm::outs().flush();
  }
  return rows;
}

} // namespace

int main(int argc, char **argv) {
  cl::ParseCommandLineOptions(argc, argv,
                              "normc-bench: BatchNorm kernels against a copy "
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
               << samples << " calls; x copy = time / copy of x with the "
               << "same threads\n";
  std::vector<Row> rows;
  if (suiteName == "family") {
    // The oneDNN columns hold oneDNN's layer_normalization for LayerNorm
    // rows and the unfused pair for fused rows.
    rows = familyRows(workers * 4);
    configs.clear();
  }
  for (const Shape &s :
       suite(suiteName == "family" ? std::string("none") : suiteName)) {
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

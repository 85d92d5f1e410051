//===- main.cpp - normc-sync-bench: what SyncBatchNorm costs over MPI -----===//
//
// Run under mpirun: every process times one training forward + backward of
// a SyncBatchNorm layer on its share (the same shape on each process),
// synchronized through normrt_mpi and unsynchronized (no hook: the fused
// BatchNorm kernels), and splits the synchronized time into the time spent
// inside the allreduce hook (communication, including waiting for the
// slowest process) and the rest (kernels and normrt's host work). Prints
// rank 0's medians and the maximum over the processes.
//
//   mpirun -np 2 normc-sync-bench [--shape=N,C,H,W] [--samples=S]
//
//===----------------------------------------------------------------------===//

#include "normrt/normrt.hpp"
#include "normrt_mpi.h"
#include "sync.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

namespace cl = llvm::cl;

static cl::OptionCategory benchCategory("normc-sync-bench options");
static cl::opt<std::string> shapeOpt("shape", cl::desc("Each process's N,C,H,W"),
                                     cl::init("16,64,56,56"),
                                     cl::cat(benchCategory));
static cl::opt<unsigned> samplesOpt("samples", cl::desc("Timed steps"),
                                    cl::init(15), cl::cat(benchCategory));

namespace {

double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The MPI hook, timed.
double hookSeconds = 0;
int timedAllreduce(void *data, int64_t count, int32_t dtype, void *context) {
  double start = now();
  int rc = normrt_mpi_allreduce(data, count, dtype, context);
  hookSeconds += now() - start;
  return rc;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double maxOverProcesses(double v) {
  MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return v;
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  cl::HideUnrelatedOptions(benchCategory);
  cl::ParseCommandLineOptions(argc, argv, "normc-sync-bench\n");
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::vector<int64_t> shape;
  bool shapeOk = true;
  for (llvm::StringRef rest = shapeOpt; !rest.empty();) {
    auto [head, tail] = rest.split(',');
    int64_t extent = 0;
    shapeOk &= !head.trim().getAsInteger(10, extent) && extent > 0;
    shape.push_back(extent);
    rest = tail;
  }
  if (!shapeOk || samplesOpt == 0 || shape.size() != 4 || shape[1] != 64) {
    if (rank == 0)
      llvm::errs() << "normc-sync-bench: --shape must be N,64,H,W with "
                      "positive extents (the layers have 64 channels) and "
                      "--samples positive\n";
    MPI_Finalize();
    return 2;
  }
  normrt_mpi_group *group = normrt_mpi_group_create(MPI_COMM_WORLD);
  int64_t elements = shape[0] * shape[1] * shape[2] * shape[3];
  const size_t count = static_cast<size_t>(elements);
  std::vector<float> x(count), dy(count), y(count), dx(count), dw(64), db(64);
  std::mt19937 rng{static_cast<unsigned>(rank)};
  std::normal_distribution<float> normal(1.0f, 2.0f);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = normal(rng), dy[i] = normal(rng);
  if (rank == 0)
    llvm::outs() << "normc-sync-bench: " << size << " process(es), each "
                 << shapeOpt << " f32 (" << elements * 4 / 1e6
                 << " MB), median of " << samplesOpt
                 << " training forward+backward steps, ms (max over "
                    "processes in brackets)\n";
  for (const char *name : {"sbn_nchw", "sbn_nhwc"}) {
    bool channelsLast = std::string(name) == "sbn_nhwc";
    normrt::Layer layer(name, "cpu");
    auto view = [&](std::vector<float> &v) {
      normrt_tensor t = {};
      t.data = v.data();
      t.dtype = NORMRT_FLOAT32;
      t.ndim = 4;
      for (int i = 0; i < 4; ++i)
        t.shape[i] = shape[i];
      int64_t c = shape[1], h = shape[2], w = shape[3];
      int64_t strides[4] = {c * h * w, h * w, w, 1};
      if (channelsLast)
        strides[0] = c * h * w, strides[1] = 1, strides[2] = w * c,
        strides[3] = c;
      for (int i = 0; i < 4; ++i)
        t.strides[i] = strides[i];
      return t;
    };
    normrt_tensor xv = view(x), yv = view(y), dyv = view(dy), dxv = view(dx);
    normrt_tensor dwv = {}, dbv = {};
    for (normrt_tensor *t : {&dwv, &dbv}) {
      t->dtype = NORMRT_FLOAT32, t->ndim = 1, t->shape[0] = 64,
      t->strides[0] = 1;
    }
    dwv.data = dw.data(), dbv.data = db.data();
    // Unsynchronized and synchronized steps alternate, so that drift in a
    // shared machine's speed hits both alike.
    std::vector<double> total[2], comm[2];
    for (unsigned i = 0; i < samplesOpt + 2; ++i) {
      for (bool synced : {false, true}) {
        layer.setAllreduce(synced ? timedAllreduce : nullptr, group);
        MPI_Barrier(MPI_COMM_WORLD);
        hookSeconds = 0;
        double start = now();
        layer.forward(xv, yv);
        layer.backward(xv, dyv, dxv, &dwv, &dbv);
        double t = now() - start;
        if (i >= 2)
          total[synced].push_back(t), comm[synced].push_back(hookSeconds);
      }
    }
    for (bool synced : {false, true}) {
      double t = median(total[synced]) * 1e3, c = median(comm[synced]) * 1e3;
      double tMax = maxOverProcesses(t), cMax = maxOverProcesses(c);
      double kMax = maxOverProcesses(t - c);
      if (rank == 0) {
        llvm::outs() << "  " << name << (synced ? "  synced    " : "  unsynced  ")
                     << llvm::format("total %8.3f [%8.3f]", t, tMax);
        if (synced)
          llvm::outs() << llvm::format(
              "  = kernels+host %8.3f [%8.3f] + allreduce %7.3f [%7.3f]",
              t - c, kMax, c, cMax);
        llvm::outs() << "\n";
      }
    }
  }
  normrt_mpi_group_destroy(group);
  MPI_Finalize();
  return 0;
}

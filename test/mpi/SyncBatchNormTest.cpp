//===- SyncBatchNormTest.cpp - SyncBatchNorm over MPI, held to one process ===//
//
// Run under mpirun with 1 to 4 processes. Every process builds the same
// global batch, takes its own share of it (uneven; with 3 or more
// processes one share is empty) and runs a SyncBatchNorm layer attached to
// MPI_COMM_WORLD through normrt_mpi. The shares' outputs, the running
// statistics, num_batches_tracked, dx, and dweight/dbias summed over the
// processes are held to the float64 reference of single-process BatchNorm
// on the whole batch. Failures on one process fail every process, and
// leave every layer's state as it was.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
#include "TestSupport.h"

#include "normrt_mpi.h"
#include "sync.h"

#include <memory>
#include <numeric>

using namespace testing_support;

namespace {

int worldRank = 0, worldSize = 1;

/// The processes' shares of the global batch: uneven, one empty from 3
/// processes on.
std::vector<int64_t> shares() {
  if (worldSize == 1)
    return {4};
  const int64_t pattern[] = {3, 1, 0, 2};
  std::vector<int64_t> s;
  for (int r = 0; r < worldSize; ++r)
    s.push_back(pattern[r % 4]);
  return s;
}

struct GroupDeleter {
  void operator()(normrt_mpi_group *g) const { normrt_mpi_group_destroy(g); }
};
using Group = std::unique_ptr<normrt_mpi_group, GroupDeleter>;

Group worldGroup() {
  Group g(normrt_mpi_group_create(MPI_COMM_WORLD));
  EXPECT_NE(g, nullptr) << normrt_mpi_last_error();
  return g;
}

std::vector<int64_t> shapeOf(int64_t n, int64_t c,
                             const std::vector<int64_t> &spatial) {
  std::vector<int64_t> shape = {n, c};
  shape.insert(shape.end(), spatial.begin(), spatial.end());
  return shape;
}

/// Logical elements [from, from + count) of a tensor into a new tensor of
/// `shape` (the same dtype and layout).
Tensor slice(const Tensor &t, size_t from, std::vector<int64_t> shape) {
  Tensor out(t.dtype, std::move(shape), t.channelsLast);
  for (size_t i = 0; i < out.size(); ++i)
    out.set(i, t.get(from + i));
  return out;
}

std::vector<double> sumOverProcesses(std::vector<double> v) {
  MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_DOUBLE, MPI_SUM,
                MPI_COMM_WORLD);
  return v;
}

Tolerance toleranceOf(normrt_dtype dtype) {
  // f64: the 1e-12 relative (values of order 1: the same absolute).
  if (dtype == NORMRT_FLOAT64)
    return {1e-12, 1e-12};
  return toleranceFor(dtype);
}

struct Case {
  const char *layer;
  normrt_dtype dtype;
  std::vector<int64_t> spatial;
  bool channelsLast;
};

class Synced : public ::testing::TestWithParam<Case> {};

TEST_P(Synced, SharesMatchOneProcessOnTheWholeBatch) {
  const Case &cs = GetParam();
  normrt::Layer layer(cs.layer, "cpu");
  Group group = worldGroup();
  ASSERT_EQ(normrt_mpi_attach(layer.get(), group.get()), 0)
      << normrt_last_error();
  normrt_layer_info info = layer.info();
  reference::BatchNorm ref(referenceConfig<reference::Config>(info));
  const int64_t C = info.num_features;
  normrt_dtype p = normrt_dtype(info.param_dtype);
  if (info.affine) {
    normrt_tensor w = layer.state("weight"), b = layer.state("bias");
    for (int64_t c = 0; c < C; ++c) {
      viewSet(w, c, 1.0 + 0.25 * double(c));
      viewSet(b, c, 0.1 * double(c) - 0.2);
    }
    ref.weight = viewValues(w);
    ref.bias = viewValues(b);
  }
  std::vector<int64_t> share = shares();
  const int64_t N = std::accumulate(share.begin(), share.end(), int64_t(0));
  const int64_t n = share[size_t(worldRank)];
  const int64_t start = std::accumulate(share.begin(),
                                        share.begin() + worldRank, int64_t(0));
  int64_t S = 1;
  for (int64_t e : cs.spatial)
    S *= e;
  Tolerance tol = toleranceOf(cs.dtype);

  for (int step = 0; step < 3; ++step) {
    std::mt19937 rng(100 + step); // the same global batch on every process
    Tensor gx(cs.dtype, shapeOf(N, C, cs.spatial), cs.channelsLast),
        gdy(cs.dtype, shapeOf(N, C, cs.spatial), cs.channelsLast);
    gx.fillNormal(rng, 3.0, 2.0); // off zero: the merge must not cancel
    gdy.fillNormal(rng, 0.0, 1.0);
    std::vector<int64_t> local = shapeOf(n, C, cs.spatial);
    size_t from = size_t(start * C * S), count = size_t(n * C * S);
    Tensor x = slice(gx, from, local), dy = slice(gdy, from, local);
    Tensor y(cs.dtype, local, cs.channelsLast),
        dx(cs.dtype, local, cs.channelsLast);
    normrt_tensor xv = x.view(), yv = y.view(), dyv = dy.view(),
                  dxv = dx.view();
    Tensor dweight(p, {C}), dbias(p, {C});
    normrt_tensor dwv = dweight.view(), dbv = dbias.view();
    normrt_tensor *dw = info.affine ? &dwv : nullptr;
    normrt_tensor *db = info.affine ? &dbv : nullptr;

    // Odd steps keep the saved statistics in the caller's tensors.
    bool savedByCaller = step % 2 == 1;
    normrt_saved_stats saved;
    std::memset(&saved, 0, sizeof(saved));
    Tensor savedMean(p, {C}), savedInvstd(p, {C});
    saved.mean = savedMean.view();
    saved.invstd = savedInvstd.view();
    if (savedByCaller) {
      layer.forwardSaved(xv, yv, saved);
      EXPECT_EQ(saved.batch_stats, NORMRT_SAVED_SYNCED);
    } else {
      layer.forward(xv, yv);
    }
    std::vector<double> yWant = ref.forward(gx.values(), N, S);
    EXPECT_TRUE(allClose(y.values(),
                         std::vector<double>(yWant.begin() + from,
                                             yWant.begin() + from + count),
                         tol))
        << cs.layer << " step " << step << " rank " << worldRank;
    if (info.track_running_stats) {
      EXPECT_TRUE(allClose(viewValues(layer.state("running_mean")),
                           ref.runningMean, tol));
      EXPECT_TRUE(allClose(viewValues(layer.state("running_var")),
                           ref.runningVar, tol));
      EXPECT_EQ(*static_cast<int64_t *>(
                    layer.state("num_batches_tracked").data),
                ref.numBatchesTracked);
    }

    if (savedByCaller)
      layer.backwardSaved(xv, dyv, dxv, saved, dw, db);
    else
      layer.backward(xv, dyv, dxv, dw, db);
    std::vector<double> dxWant, dwWant, dbWant;
    ref.backward(gx.values(), gdy.values(), N, S, dxWant, dwWant, dbWant);
    EXPECT_TRUE(allClose(dx.values(),
                         std::vector<double>(dxWant.begin() + from,
                                             dxWant.begin() + from + count),
                         tol))
        << cs.layer << " step " << step << " rank " << worldRank;
    if (info.affine) {
      // Each process's own contribution: their sum is the whole batch's.
      EXPECT_TRUE(allClose(sumOverProcesses(dweight.values()), dwWant, tol));
      EXPECT_TRUE(allClose(sumOverProcesses(dbias.values()), dbWant, tol));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, Synced,
    ::testing::Values(Case{"sbn2d_f64", NORMRT_FLOAT64, {3, 5}, false},
                      Case{"sbn_nhwc_f64", NORMRT_FLOAT64, {2, 3}, true},
                      Case{"sbn1d_noaffine_f64", NORMRT_FLOAT64, {}, false},
                      Case{"sbn1d_noaffine_f64", NORMRT_FLOAT64, {7}, false},
                      Case{"sbn3d_untracked_f64", NORMRT_FLOAT64, {2, 2, 3},
                           false},
                      Case{"sbn2d_f32", NORMRT_FLOAT32, {4, 4}, false}),
    [](const ::testing::TestParamInfo<Case> &info) {
      return std::string(info.param.layer) + "_rank" +
             std::to_string(info.param.spatial.size() + 2);
    });

/// Running statistics and the counter, to show a failed call changed none.
std::vector<double> stateOf(normrt::Layer &layer) {
  std::vector<double> s = viewValues(layer.state("running_mean"));
  std::vector<double> v = viewValues(layer.state("running_var"));
  s.insert(s.end(), v.begin(), v.end());
  s.push_back(double(
      *static_cast<int64_t *>(layer.state("num_batches_tracked").data)));
  return s;
}

TEST(SyncErrors, BadInputOnOneProcessFailsEveryProcess) {
  normrt::Layer layer("sbn2d_f64", "cpu");
  Group group = worldGroup();
  ASSERT_EQ(normrt_mpi_attach(layer.get(), group.get()), 0);
  std::vector<double> before = stateOf(layer);
  // The last process passes 4 channels to a layer of 3.
  bool bad = worldRank == worldSize - 1;
  std::vector<int64_t> shape = {2, bad ? 4 : 3, 2, 2};
  Tensor x(NORMRT_FLOAT64, shape), y(NORMRT_FLOAT64, shape);
  std::mt19937 rng(7);
  x.fillNormal(rng, 0.0, 1.0);
  normrt_tensor xv = x.view(), yv = y.view();
  EXPECT_NE(normrt_layer_forward(layer.get(), &xv, &yv), 0);
  std::string message = normrt_last_error();
  if (bad)
    EXPECT_NE(message.find("running_mean should contain 4 elements not 3"),
              std::string::npos)
        << message;
  else
    EXPECT_NE(message.find("1 other process(es) failed"), std::string::npos)
        << message;
  EXPECT_EQ(stateOf(layer), before);
  // The group is still usable: a good call after the failed one works.
  Tensor good(NORMRT_FLOAT64, {2, 3, 2, 2}), out(NORMRT_FLOAT64, {2, 3, 2, 2});
  good.fillNormal(rng, 0.0, 1.0);
  normrt_tensor gv = good.view(), ov = out.view();
  EXPECT_EQ(normrt_layer_forward(layer.get(), &gv, &ov), 0)
      << normrt_last_error();
}

TEST(SyncErrors, OneValuePerChannelOverAllProcessesIsRefusedEverywhere) {
  normrt::Layer layer("sbn1d_noaffine_f64", "cpu");
  Group group = worldGroup();
  ASSERT_EQ(normrt_mpi_attach(layer.get(), group.get()), 0);
  std::vector<double> before = stateOf(layer);
  std::vector<int64_t> shape = {worldRank == 0 ? 1 : 0, 5};
  Tensor x(NORMRT_FLOAT64, shape), y(NORMRT_FLOAT64, shape);
  normrt_tensor xv = x.view(), yv = y.view();
  EXPECT_NE(normrt_layer_forward(layer.get(), &xv, &yv), 0);
  EXPECT_NE(std::string(normrt_last_error())
                .find("Expected more than 1 value per channel when training"),
            std::string::npos)
      << normrt_last_error();
  EXPECT_EQ(stateOf(layer), before);
}

int failingHook(void *, int64_t, int32_t, void *) { return 3; }

TEST(SyncErrors, AFailingHookIsAnErrorAndChangesNothing) {
  normrt::Layer layer("sbn2d_f64", "cpu");
  layer.setAllreduce(failingHook, nullptr);
  std::vector<double> before = stateOf(layer);
  Tensor x(NORMRT_FLOAT64, {2, 3, 2, 2}), y(NORMRT_FLOAT64, {2, 3, 2, 2});
  std::mt19937 rng(9);
  x.fillNormal(rng, 0.0, 1.0);
  normrt_tensor xv = x.view(), yv = y.view();
  EXPECT_NE(normrt_layer_forward(layer.get(), &xv, &yv), 0);
  EXPECT_NE(std::string(normrt_last_error())
                .find("the allreduce hook failed (returned 3)"),
            std::string::npos)
      << normrt_last_error();
  EXPECT_EQ(stateOf(layer), before);
}

TEST(SyncErrors, OnlySyncBatchNormTakesAHook) {
  normrt::Layer layer("bn_plain", "cpu");
  EXPECT_NE(normrt_layer_set_allreduce(layer.get(), failingHook, nullptr), 0);
  EXPECT_NE(std::string(normrt_last_error())
                .find("only SyncBatchNorm layers sum their statistics"),
            std::string::npos)
      << normrt_last_error();
}

TEST(SyncModes, EvalAndNoHookDoNotCommunicate) {
  normrt::Layer layer("sbn2d_f64", "cpu");
  Group group = worldGroup();
  ASSERT_EQ(normrt_mpi_attach(layer.get(), group.get()), 0);
  reference::BatchNorm ref(referenceConfig<reference::Config>(layer.info()));
  std::mt19937 rng(11 + worldRank);
  Tensor x(NORMRT_FLOAT64, {3, 3, 2, 2}), y(NORMRT_FLOAT64, {3, 3, 2, 2});
  x.fillNormal(rng, 1.0, 2.0);
  normrt_tensor xv = x.view(), yv = y.view();
  // Eval: running statistics, no collective (only rank 0 calls: were it to
  // wait for the others, the test would time out).
  layer.eval();
  ref.training = false;
  if (worldRank == 0) {
    layer.forward(xv, yv);
    EXPECT_TRUE(allClose(y.values(), ref.forward(x.values(), 3, 4),
                         toleranceOf(NORMRT_FLOAT64)));
  }
  // No hook: BatchNorm on this process's batch alone.
  layer.train();
  ref.training = true;
  layer.setAllreduce(nullptr, nullptr);
  layer.forward(xv, yv);
  EXPECT_TRUE(allClose(y.values(), ref.forward(x.values(), 3, 4),
                       toleranceOf(NORMRT_FLOAT64)));
  EXPECT_TRUE(allClose(viewValues(layer.state("running_mean")),
                       ref.runningMean, toleranceOf(NORMRT_FLOAT64)));
  MPI_Barrier(MPI_COMM_WORLD);
}

} // namespace

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &worldRank);
  MPI_Comm_size(MPI_COMM_WORLD, &worldSize);
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  // One process's failure is the run's.
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}

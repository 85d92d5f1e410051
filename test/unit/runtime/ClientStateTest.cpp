//===- ClientStateTest.cpp - State a framework owns, statistics it keeps --===//
//
// normrt_layer_bind_state: the layer reads and writes memory the caller
// owns (as a framework's parameters and buffers are), takes its values when
// bound and gives them back when unbound; bad storage is refused without
// changing anything. normrt_layer_forward_saved / backward_saved: one layer
// serves several forwards before their backwards, each backward held to the
// float64 reference of its own forward, whatever the layer did in between.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
#include "TestSupport.h"

#include "matrix.h"

using namespace testing_support;

namespace {

normrt_tensor vectorView(std::vector<double> &v) {
  return normrt::tensor(v.data(), {int64_t(v.size())});
}

/// Saved statistics over caller-owned vectors of `count` values.
struct Saved {
  std::vector<double> mean, invstd;
  normrt_saved_stats stats;
  explicit Saved(int64_t count) : mean(size_t(count)), invstd(size_t(count)) {
    std::memset(&stats, 0, sizeof(stats));
    stats.mean = vectorView(mean);
    stats.invstd = vectorView(invstd);
    stats.batch_stats = -1; // written by the forward
  }
};

TEST(ClientState, BoundMemoryIsReadAndWritten) {
  normrt::Layer layer("bn2d_at_m01_f64", "cpu");
  reference::Config cfg = referenceConfig<reference::Config>(layer.info());
  reference::BatchNorm ref(cfg);
  std::vector<double> weight = {2.0, 0.5, -1.0}, bias = {0.1, 0.2, 0.3},
                      mean = {1.0, -1.0, 0.0}, var = {4.0, 0.25, 1.0};
  int64_t counter = 7;
  normrt_tensor w = vectorView(weight), b = vectorView(bias),
                rm = vectorView(mean), rv = vectorView(var);
  normrt_tensor nbt = normrt::tensor(&counter, {});
  layer.bindState("weight", &w);
  layer.bindState("bias", &b);
  layer.bindState("running_mean", &rm);
  layer.bindState("running_var", &rv);
  layer.bindState("num_batches_tracked", &nbt);
  // The layer took the memory's values, and its views point at it.
  EXPECT_EQ(layer.state("weight").data, weight.data());
  EXPECT_EQ(layer.state("num_batches_tracked").data, &counter);
  ref.weight = weight;
  ref.bias = bias;
  ref.runningMean = mean;
  ref.runningVar = var;
  ref.numBatchesTracked = counter;

  std::mt19937 rng(3);
  const std::vector<int64_t> shape = {4, 3, 3, 5};
  Tolerance tol = toleranceFor(NORMRT_FLOAT64);
  for (int step = 0; step < 3; ++step) {
    // The client changes a parameter between calls, as an optimizer does.
    weight[1] += 0.25;
    ref.weight = weight;
    Tensor x(NORMRT_FLOAT64, shape), y(NORMRT_FLOAT64, shape);
    x.fillNormal(rng, 0.5, 2.0);
    normrt_tensor xv = x.view(), yv = y.view();
    layer.forward(xv, yv);
    EXPECT_TRUE(allClose(y.values(), ref.forward(x.values(), 4, 15), tol));
    // The updates are in the client's memory.
    EXPECT_TRUE(allClose(mean, ref.runningMean, tol));
    EXPECT_TRUE(allClose(var, ref.runningVar, tol));
    EXPECT_EQ(counter, 8 + step);
  }
  // Eval mode reads the client's running statistics.
  layer.eval();
  ref.training = false;
  mean = {3.0, 2.0, 1.0};
  ref.runningMean = mean;
  Tensor x(NORMRT_FLOAT64, shape), y(NORMRT_FLOAT64, shape);
  x.fillNormal(rng, 0.0, 1.0);
  normrt_tensor xv = x.view(), yv = y.view();
  layer.forward(xv, yv);
  EXPECT_TRUE(allClose(y.values(), ref.forward(x.values(), 4, 15), tol));

  // Unbinding copies the values back into the layer's own storage.
  layer.bindState("running_mean", nullptr);
  normrt_tensor own = layer.state("running_mean");
  EXPECT_NE(own.data, mean.data());
  EXPECT_EQ(viewValues(own), mean);
  mean[0] = 100.0; // no longer the layer's
  EXPECT_EQ(viewGet(layer.state("running_mean"), 0), 3.0);
}

TEST(ClientState, FlatAndSingleElementShapesAreAccepted) {
  normrt::Layer layer("bn1d_at_m01_f32", "cpu");
  std::vector<float> weight = {1, 2, 3};
  int64_t counter = 0;
  normrt_tensor w = normrt::tensor(weight.data(), {3});
  normrt_tensor nbt = normrt::tensor(&counter, {1});
  layer.bindState("weight", &w);
  layer.bindState("num_batches_tracked", &nbt);
  std::vector<float> x = {1, 2, 3, 3, 2, 1}, y(6);
  normrt_tensor xv = normrt::tensor(x.data(), {2, 3}),
                yv = normrt::tensor(y.data(), {2, 3});
  layer.forward(xv, yv);
  EXPECT_EQ(counter, 1);
  // Each channel's two values normalize to -1 and +1, then are scaled by
  // the bound weight: 1 on channel 0, 3 on channel 2.
  EXPECT_NEAR(y[0], -1.0, 1e-4);
  EXPECT_NEAR(y[2], 3.0, 1e-4);
  EXPECT_NEAR(y[5], -3.0, 1e-4);
}

TEST(ClientState, BadStorageIsRefusedAndChangesNothing) {
  normrt::Layer layer("bn2d_at_m01_f64", "cpu");
  normrt::Layer untracked("bn2d_au_m01_f64", "cpu");
  normrt::Layer noAffine("bn2d_nt_m01_f64", "cpu");
  std::vector<double> four(4, 5.0), three(3, 5.0), six(6, 5.0);
  std::vector<float> threeF(3, 5.0f);
  Snapshot before = snapshot(layer.get());
  struct Case {
    normrt_layer *layer;
    const char *name;
    normrt_tensor storage;
    const char *message;
  };
  normrt_tensor wrongShape = vectorView(four);
  normrt_tensor wrongDtype = normrt::tensor(threeF.data(), {3});
  normrt_tensor noData = vectorView(three);
  noData.data = nullptr;
  normrt_tensor strided = normrt::tensor(six.data(), {3});
  strided.strides[0] = 2;
  normrt_tensor onCuda = vectorView(three);
  onCuda.device = 1;
  normrt_tensor good = vectorView(three);
  const Case cases[] = {
      {layer.get(), "weight", wrongShape, "weight has size [4]"},
      {layer.get(), "running_var", wrongDtype,
       "running_var has dtype float32, but the layer expects float64"},
      {layer.get(), "bias", noData, "bias has no data"},
      {layer.get(), "running_mean", strided, "running_mean is not contiguous"},
      {layer.get(), "weight", onCuda, "is a CUDA tensor"},
      {layer.get(), "num_batches_tracked", good, "num_batches_tracked has dtype"},
      {layer.get(), "save_mean", good, "cannot bind state 'save_mean'"},
      {untracked.get(), "running_mean", good,
       "has track_running_stats=False: it has no running_mean"},
      {noAffine.get(), "weight", good, "has affine=False: it has no weight"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_NE(normrt_layer_bind_state(c.layer, c.name, &c.storage), 0);
    EXPECT_NE(std::string(normrt_last_error()).find(c.message),
              std::string::npos)
        << normrt_last_error();
  }
  EXPECT_TRUE(snapshot(layer.get()) == before);
  // Two states in one memory would clobber each other.
  layer.bindState("running_mean", &good);
  EXPECT_NE(normrt_layer_bind_state(layer.get(), "running_var", &good), 0);
  EXPECT_NE(std::string(normrt_last_error()).find("overlaps the memory bound "
                                                  "to another state"),
            std::string::npos);
  // Rebinding the same state to the same memory is fine.
  layer.bindState("running_mean", &good);
}

/// Forward in training mode on two batches of different sizes with saved
/// statistics, the layer used in between (eval forward, a plain forward),
/// then both backwards in reverse order: each is the reference backward of
/// its own forward.
TEST(SavedStats, ManyForwardsBeforeTheirBackwards) {
  normrt::Layer layer("bn2d_at_m01_f64", "cpu");
  reference::Config cfg = referenceConfig<reference::Config>(layer.info());
  std::mt19937 rng(11);
  struct Call {
    int64_t n;
    std::vector<double> dx, dw, db;
  };
  std::vector<Tensor> xs, dys;
  std::vector<Saved> saved;
  std::vector<reference::BatchNorm> refs;
  reference::BatchNorm running(cfg);
  const int64_t s = 12, batches[] = {2, 5};
  Tolerance tol = toleranceFor(NORMRT_FLOAT64);
  for (int64_t n : batches) {
    const std::vector<int64_t> shape = {n, 3, 3, 4};
    xs.emplace_back(NORMRT_FLOAT64, shape);
    dys.emplace_back(NORMRT_FLOAT64, shape);
    xs.back().fillNormal(rng, 1.0, 2.0);
    dys.back().fillNormal(rng, 0.0, 1.0);
    normrt_tensor xv = xs.back().view();
    saved.emplace_back(layer.statsCount(xv));
    EXPECT_EQ(saved.back().mean.size(), 3u);
    Tensor y(NORMRT_FLOAT64, shape);
    normrt_tensor yv = y.view();
    layer.forwardSaved(xv, yv, saved.back().stats);
    EXPECT_EQ(saved.back().stats.batch_stats, 1);
    std::vector<double> want = running.forward(xs.back().values(), n, s);
    EXPECT_TRUE(allClose(y.values(), want, tol));
    EXPECT_TRUE(allClose(saved.back().mean, running.saveMean, tol));
    EXPECT_TRUE(allClose(saved.back().invstd, running.saveInvstd, tol));
    refs.push_back(running); // the reference as that forward left it
  }
  // Running statistics and the counter were updated by both forwards.
  EXPECT_TRUE(allClose(viewValues(layer.state("running_var")),
                       running.runningVar, tol));
  EXPECT_EQ(*static_cast<int64_t *>(layer.state("num_batches_tracked").data), 2);
  // forward_saved leaves the layer's own saved statistics alone: a plain
  // backward has no forward to differentiate.
  {
    Tensor dx(NORMRT_FLOAT64, {2, 3, 3, 4});
    normrt_tensor xv = xs[0].view(), dyv = dys[0].view(), dxv = dx.view();
    EXPECT_NE(normrt_layer_backward(layer.get(), &xv, &dyv, &dxv, nullptr,
                                    nullptr),
              0);
  }
  // Other work on the layer in between, and eval mode now.
  {
    Tensor x(NORMRT_FLOAT64, {3, 3, 3, 4}), y(NORMRT_FLOAT64, {3, 3, 3, 4});
    x.fillNormal(rng, -1.0, 0.5);
    normrt_tensor xv = x.view(), yv = y.view();
    layer.forward(xv, yv);
    layer.eval();
    layer.forward(xv, yv);
  }
  for (int i = 1; i >= 0; --i) {
    SCOPED_TRACE(i);
    int64_t n = batches[i];
    Tensor dx(NORMRT_FLOAT64, xs[size_t(i)].shape), dw(NORMRT_FLOAT64, {3}),
        db(NORMRT_FLOAT64, {3});
    normrt_tensor xv = xs[size_t(i)].view(), dyv = dys[size_t(i)].view(),
                  dxv = dx.view(), dwv = dw.view(), dbv = db.view();
    layer.backwardSaved(xv, dyv, dxv, saved[size_t(i)].stats, &dwv, &dbv);
    std::vector<double> wantDx, wantDw, wantDb;
    refs[size_t(i)].backward(xs[size_t(i)].values(), dys[size_t(i)].values(), n,
                             s, wantDx, wantDw, wantDb);
    EXPECT_TRUE(allClose(dx.values(), wantDx, tol));
    EXPECT_TRUE(allClose(dw.values(), wantDw, tol));
    EXPECT_TRUE(allClose(db.values(), wantDb, tol));
  }
}

/// An eval forward saves nothing and its backward uses the running
/// statistics; the results equal the layer-held path's bit for bit.
TEST(SavedStats, EvalAndTrainingMatchThePlainPath) {
  for (bool training : {true, false}) {
    SCOPED_TRACE(training);
    normrt::Layer plain("bn2d_at_m01_f32", "cpu"), kept("bn2d_at_m01_f32", "cpu");
    std::mt19937 rng(5);
    const std::vector<int64_t> shape = {3, 3, 4, 4};
    Tensor x(NORMRT_FLOAT32, shape), dy(NORMRT_FLOAT32, shape);
    x.fillNormal(rng, 2.0, 3.0);
    dy.fillNormal(rng, 0.0, 1.0);
    // Same running statistics in both, away from 0 and 1.
    for (normrt::Layer *l : {&plain, &kept}) {
      Tensor y(NORMRT_FLOAT32, shape);
      normrt_tensor xv = x.view(), yv = y.view();
      l->forward(xv, yv);
      l->train(training);
    }
    Tensor y1(NORMRT_FLOAT32, shape), y2(NORMRT_FLOAT32, shape),
        dx1(NORMRT_FLOAT32, shape), dx2(NORMRT_FLOAT32, shape);
    std::vector<float> dw1(3), dw2(3), db1(3), db2(3), mean(3), invstd(3);
    normrt_tensor xv = x.view(), dyv = dy.view(), y1v = y1.view(),
                  y2v = y2.view(), dx1v = dx1.view(), dx2v = dx2.view();
    normrt_tensor dw1v = normrt::tensor(dw1.data(), {3}),
                  dw2v = normrt::tensor(dw2.data(), {3}),
                  db1v = normrt::tensor(db1.data(), {3}),
                  db2v = normrt::tensor(db2.data(), {3});
    normrt_saved_stats saved;
    std::memset(&saved, 0, sizeof(saved));
    saved.mean = normrt::tensor(mean.data(), {3});
    saved.invstd = normrt::tensor(invstd.data(), {3});
    if (!training)
      saved.mean.data = saved.invstd.data = nullptr; // not needed in eval
    plain.forward(xv, y1v);
    kept.forwardSaved(xv, y2v, saved);
    EXPECT_EQ(saved.batch_stats, training ? 1 : 0);
    plain.backward(xv, dyv, dx1v, &dw1v, &db1v);
    kept.backwardSaved(xv, dyv, dx2v, saved, &dw2v, &db2v);
    EXPECT_EQ(y1.bytes, y2.bytes);
    EXPECT_EQ(dx1.bytes, dx2.bytes);
    EXPECT_EQ(dw1, dw2);
    EXPECT_EQ(db1, db2);
    if (training) {
      EXPECT_EQ(viewValues(plain.state("save_mean")),
                std::vector<double>(mean.begin(), mean.end()));
      EXPECT_TRUE(snapshot(plain.get()) == snapshot(kept.get()));
    }
  }
}

TEST(SavedStats, BadSavedStatisticsAreRefusedAndChangeNothing) {
  normrt::Layer layer("bn2d_at_m01_f64", "cpu");
  normrt::Layer untracked("bn2d_au_m01_f64", "cpu");
  const std::vector<int64_t> shape = {2, 3, 2, 2};
  Tensor x(NORMRT_FLOAT64, shape), y(NORMRT_FLOAT64, shape),
      dx(NORMRT_FLOAT64, shape);
  std::mt19937 rng(1);
  x.fillNormal(rng, 0.0, 1.0);
  normrt_tensor xv = x.view(), yv = y.view(), dxv = dx.view();
  normrt_forward_args fa = {&xv, nullptr, &yv};
  normrt_backward_args ba = {&xv, nullptr, &xv, &dxv, nullptr, nullptr, nullptr};

  Saved wrongCount(4), good(3);
  std::vector<float> floats(3);
  Saved wrongDtype(3);
  wrongDtype.stats.invstd = normrt::tensor(floats.data(), {3});
  Saved overlapping(3);
  overlapping.stats.invstd = overlapping.stats.mean;
  Snapshot before = snapshot(layer.get());
  struct Case {
    normrt_saved_stats *saved;
    const char *message;
  } cases[] = {
      {&wrongCount.stats, "saved mean has size [4] (4 values), but this input "
                          "has 3 statistics"},
      {&wrongDtype.stats, "saved invstd has dtype float32"},
      {&overlapping.stats, "saved mean overlaps saved invstd"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.message);
    EXPECT_NE(normrt_layer_forward_saved(layer.get(), &fa, c.saved), 0);
    EXPECT_NE(std::string(normrt_last_error()).find(c.message),
              std::string::npos)
        << normrt_last_error();
    c.saved->batch_stats = 1;
    EXPECT_NE(normrt_layer_backward_saved(layer.get(), &ba, c.saved), 0);
  }
  EXPECT_TRUE(snapshot(layer.get()) == before);
  EXPECT_NE(normrt_layer_forward_saved(layer.get(), &fa, nullptr), 0);
  // Running statistics that an untracked layer does not have.
  good.stats.batch_stats = 0;
  EXPECT_NE(normrt_layer_backward_saved(untracked.get(), &ba, &good.stats), 0);
  EXPECT_NE(std::string(normrt_last_error()).find("track_running_stats=False"),
            std::string::npos);
  // An input of another shape than the saved statistics'.
  normrt::Layer other("bn2d_at_m01_f64", "cpu");
  other.forwardSaved(xv, yv, good.stats);
  Tensor wide(NORMRT_FLOAT64, {2, 3, 2, 2});
  normrt_tensor wv = wide.view();
  wv.shape[1] = 4; // 4 channels: the layer has 3
  EXPECT_NE(normrt_layer_stats_count(other.get(), &wv, nullptr), 0);
  int64_t count = 0;
  EXPECT_NE(normrt_layer_stats_count(other.get(), &wv, &count), 0);
  EXPECT_NE(std::string(normrt_last_error()).find("running_mean should contain "
                                                  "4 elements not 3"),
            std::string::npos)
      << normrt_last_error();
}

} // namespace

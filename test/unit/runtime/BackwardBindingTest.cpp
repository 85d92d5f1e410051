//===- BackwardBindingTest.cpp - Backward differentiates its forward ------===//
//
// Like autograd, normrt's backward uses the mode and statistics of the last
// forward, not the layer's mode at the time of the call: forward in training
// mode, eval(), backward gives training-mode gradients (and the reverse).
// Checked against the float64 reference run in the forward's mode, and
// against the other mode's gradients, which differ, so that the test fails
// if backward followed the current mode.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
#include "TestSupport.h"

#include "matrix.h"

using namespace testing_support;

namespace {

struct Gradients {
  std::vector<double> dx, dw, db;
};

/// Forward in `forwardTraining` mode, switch to the other mode, backward:
/// returns normrt's gradients and the reference's in either mode.
void runAcrossModeSwitch(bool forwardTraining, Gradients &got,
                         Gradients &forwardMode, Gradients &otherMode) {
  normrt::Layer layer("bn2d_at_m01_f64", "cpu");
  normrt_layer_info info = layer.info();
  reference::BatchNorm ref(referenceConfig<reference::Config>(info));
  const std::vector<int64_t> shape = {4, 3, 5, 5};
  const int64_t n = 4, s = 25;
  std::mt19937 rng(7);
  // Running statistics away from the initial 0 / 1, so that the modes differ.
  for (int step = 0; step < 3; ++step)
    expectForwardMatches(layer, ref, shape, rng, 1.5, 2.0);

  Tensor x(info.dtype, shape), y(info.dtype, shape), dy(info.dtype, shape),
      dx(info.dtype, shape), dw(info.param_dtype, {3}), db(info.param_dtype, {3});
  x.fillNormal(rng, 0.5, 3.0);
  dy.fillNormal(rng, 0.0, 1.0);
  normrt_tensor xv = x.view(), yv = y.view(), dyv = dy.view(), dxv = dx.view(),
                dwv = dw.view(), dbv = db.view();
  layer.train(forwardTraining);
  ref.training = forwardTraining;
  layer.forward(xv, yv);
  ref.forward(x.values(), n, s);

  layer.train(!forwardTraining);
  layer.backward(xv, dyv, dxv, &dwv, &dbv);
  got = {dx.values(), dw.values(), db.values()};
  ref.backward(x.values(), dy.values(), n, s, forwardMode.dx, forwardMode.dw,
               forwardMode.db);
  ref.training = !forwardTraining;
  ref.backward(x.values(), dy.values(), n, s, otherMode.dx, otherMode.dw,
               otherMode.db);
}

void expectForwardModeGradients(bool forwardTraining) {
  Gradients got, want, other;
  runAcrossModeSwitch(forwardTraining, got, want, other);
  Tolerance tol = toleranceFor(NORMRT_FLOAT64);
  EXPECT_TRUE(allClose(got.dx, want.dx, tol));
  EXPECT_TRUE(allClose(got.dw, want.dw, tol));
  EXPECT_TRUE(allClose(got.db, want.db, tol));
  EXPECT_FALSE(allClose(got.dx, other.dx, tol))
      << "the two modes' gradients should differ for this check to mean "
         "anything";
}

TEST(BackwardBinding, TrainForwardEvalBackward) {
  expectForwardModeGradients(/*forwardTraining=*/true);
}

TEST(BackwardBinding, EvalForwardTrainBackward) {
  expectForwardModeGradients(/*forwardTraining=*/false);
}

} // namespace

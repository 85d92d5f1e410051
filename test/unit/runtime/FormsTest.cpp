//===- FormsTest.cpp - One layer, several dtypes and layouts --------------===//
//
// A spec layer with dtype=[...] and layout=[...] has one compiled form per
// pair, consecutive in the module's table under one name; the layer picks
// a form per call by its input's dtype and strides, and the forms share one
// state: a sequence of calls in different forms is held to one float64
// reference. An input no form fits is refused with the forms listed.
//
//===----------------------------------------------------------------------===//

#include "Reference.h"
#include "TestSupport.h"

#include "forms.h"

#include <set>

using namespace testing_support;

namespace {

/// The view of `t` with PyTorch's explicit strides for its layout (all-zero
/// strides would mean "dense in the first fitting form's layout").
normrt_tensor stridedView(Tensor &t) {
  normrt_tensor v = t.view();
  int64_t stride = 1;
  if (!t.channelsLast) {
    for (int i = v.ndim - 1; i >= 0; --i) {
      v.strides[i] = stride;
      stride *= v.shape[i];
    }
    return v;
  }
  v.strides[1] = 1;
  stride = v.shape[1];
  for (int i = v.ndim - 1; i >= 2; --i) {
    v.strides[i] = stride;
    stride *= v.shape[i];
  }
  v.strides[0] = stride;
  return v;
}

TEST(Forms, TableHasConsecutiveFormsUnderOneName) {
  const normrt_module &m = normc_module_forms;
  ASSERT_EQ(m.num_layers, 4 + 4 + 1);
  const normrt_layer_desc *bn = &m.layers[0];
  EXPECT_STREQ(bn->name, "bn_forms");
  EXPECT_EQ(bn->num_forms, 4);
  const int32_t dtypes[] = {NORMRT_FLOAT32, NORMRT_FLOAT32, NORMRT_BFLOAT16,
                            NORMRT_BFLOAT16};
  for (int i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    EXPECT_STREQ(bn[i].name, "bn_forms");
    EXPECT_EQ(bn[i].dtype, dtypes[i]);
    EXPECT_EQ(bn[i].layout, i % 2);
    EXPECT_EQ(bn[i].param_dtype, NORMRT_FLOAT32);
    EXPECT_EQ(bn[i].num_forms, i == 0 ? 4 : 0);
  }
  EXPECT_EQ(m.layers[8].num_forms, 1); // ln_forms: a list of one dtype
  // The listing names each layer once.
  std::multiset<std::string> names;
  for (int i = 0; const char *name = normrt_layer_name_at(i, nullptr); ++i)
    names.insert(name);
  EXPECT_EQ(names.count("bn_forms"), 1u);
  EXPECT_EQ(names.count("gn_forms"), 1u);
}

TEST(Forms, LayerListsItsForms) {
  normrt::Layer layer("bn_forms", "cpu");
  ASSERT_EQ(normrt_layer_num_forms(layer.get()), 4);
  normrt_dtype dtype;
  int32_t channelsLast;
  ASSERT_EQ(normrt_layer_form(layer.get(), 3, &dtype, &channelsLast), 0);
  EXPECT_EQ(dtype, NORMRT_BFLOAT16);
  EXPECT_EQ(channelsLast, 1);
  EXPECT_NE(normrt_layer_form(layer.get(), 4, &dtype, &channelsLast), 0);
  EXPECT_NE(std::string(normrt_last_error()).find("has 4 form(s)"),
            std::string::npos);
  // get_info describes the first form.
  EXPECT_EQ(layer.info().dtype, NORMRT_FLOAT32);
  EXPECT_EQ(layer.info().channels_last, 0);
  normrt::Layer single("ln_forms", "cpu");
  EXPECT_EQ(normrt_layer_num_forms(single.get()), 1);
  EXPECT_EQ(single.info().dtype, NORMRT_FLOAT64);
}

/// Forwards in each form in turn, then a backward: one state, every result
/// held to the float64 reference run over the same sequence.
TEST(Forms, CallsInEveryFormShareOneState) {
  normrt::Layer layer("bn_forms", "cpu");
  reference::BatchNorm ref(referenceConfig<reference::Config>(layer.info()));
  std::mt19937 rng(9);
  const std::vector<int64_t> shape = {3, 3, 4, 5};
  struct Step {
    normrt_dtype dtype;
    bool channelsLast;
  } steps[] = {{NORMRT_FLOAT32, false},
               {NORMRT_BFLOAT16, true},
               {NORMRT_FLOAT32, true},
               {NORMRT_BFLOAT16, false}};
  int count = 0;
  for (const Step &step : steps) {
    SCOPED_TRACE(count);
    Tensor x(step.dtype, shape, step.channelsLast),
        y(step.dtype, shape, step.channelsLast);
    x.fillNormal(rng, 0.5 * count, 1.0 + count);
    normrt_tensor xv = stridedView(x), yv = stridedView(y);
    layer.forward(xv, yv);
    Tolerance tol = toleranceFor(step.dtype);
    EXPECT_TRUE(allClose(y.values(), ref.forward(x.values(), 3, 20), tol));
    // Running statistics are f32 in every form: f32's tolerance.
    EXPECT_TRUE(allClose(viewValues(layer.state("running_var")), ref.runningVar,
                         toleranceFor(NORMRT_FLOAT32)));
    ++count;

    if (step.dtype == NORMRT_BFLOAT16 && step.channelsLast) {
      Tensor dy(step.dtype, shape, true), dx(step.dtype, shape, true);
      dy.fillNormal(rng, 0.0, 1.0);
      normrt_tensor dyv = stridedView(dy), dxv = stridedView(dx);
      layer.backward(xv, dyv, dxv);
      std::vector<double> wantDx, wantDw, wantDb;
      ref.backward(x.values(), dy.values(), 3, 20, wantDx, wantDw, wantDb);
      EXPECT_TRUE(allClose(dx.values(), wantDx, tol));
    }
  }
  EXPECT_EQ(*static_cast<int64_t *>(layer.state("num_batches_tracked").data),
            4);
}

TEST(Forms, InputThatNoFormFitsIsRefused) {
  normrt::Layer layer("bn_forms", "cpu");
  Snapshot before = snapshot(layer.get());
  Tensor x(NORMRT_FLOAT64, {2, 3, 2, 2}), y(NORMRT_FLOAT64, {2, 3, 2, 2});
  normrt_tensor xv = stridedView(x), yv = stridedView(y);
  EXPECT_NE(normrt_layer_forward(layer.get(), &xv, &yv), 0);
  EXPECT_NE(std::string(normrt_last_error())
                .find("layer 'bn_forms' has no form for an input of dtype "
                      "float64 with strides [12, 4, 2, 1]; it was compiled "
                      "for float32 contiguous, float32 channels-last, "
                      "bfloat16 contiguous, bfloat16 channels-last"),
            std::string::npos)
      << normrt_last_error();
  // Strides of neither layout (a transposed H and W).
  Tensor f(NORMRT_FLOAT32, {2, 3, 2, 4}), g(NORMRT_FLOAT32, {2, 3, 2, 4});
  normrt_tensor fv = stridedView(f), gv = stridedView(g);
  std::swap(fv.strides[2], fv.strides[3]);
  EXPECT_NE(normrt_layer_forward(layer.get(), &fv, &gv), 0);
  EXPECT_NE(std::string(normrt_last_error()).find("has no form"),
            std::string::npos);
  EXPECT_TRUE(snapshot(layer.get()) == before);
  // The output must be in the input's form.
  Tensor x2(NORMRT_FLOAT32, {2, 3, 2, 4}), y2(NORMRT_FLOAT32, {2, 3, 2, 4}, true);
  normrt_tensor x2v = stridedView(x2), y2v = stridedView(y2);
  EXPECT_NE(normrt_layer_forward(layer.get(), &x2v, &y2v), 0);
  EXPECT_NE(std::string(normrt_last_error())
                .find("output does not have the layer's contiguous layout"),
            std::string::npos)
      << normrt_last_error();
}

/// GroupNorm in f16 channels-last and f32 contiguous: each normalizes per
/// (instance, group) to mean 0 and variance 1 (weight 1, bias 0).
TEST(Forms, GroupNormFormsNormalizeEachGroup) {
  normrt::Layer layer("gn_forms", "cpu");
  ASSERT_EQ(normrt_layer_num_forms(layer.get()), 4);
  std::mt19937 rng(4);
  for (normrt_dtype dtype : {NORMRT_FLOAT16, NORMRT_FLOAT32})
    for (bool channelsLast : {true, false}) {
      SCOPED_TRACE(std::to_string(dtype) + (channelsLast ? " NHWC" : " NCHW"));
      const std::vector<int64_t> shape = {2, 4, 3, 3};
      Tensor x(dtype, shape, channelsLast), y(dtype, shape, channelsLast);
      x.fillNormal(rng, 2.0, 3.0);
      normrt_tensor xv = stridedView(x), yv = stridedView(y);
      layer.forward(xv, yv);
      std::vector<double> v = y.values();
      for (int n = 0; n < 2; ++n)
        for (int group = 0; group < 2; ++group) {
          double sum = 0, sq = 0;
          for (int i = 0; i < 18; ++i) {
            double e = v[size_t(n * 36 + group * 18 + i)];
            sum += e;
            sq += e * e;
          }
          EXPECT_NEAR(sum / 18, 0.0, dtype == NORMRT_FLOAT16 ? 2e-3 : 1e-6);
          EXPECT_NEAR(sq / 18, 1.0, dtype == NORMRT_FLOAT16 ? 4e-3 : 1e-4);
        }
    }
}

} // namespace

// main.cpp - a C++ program that includes the module's header and uses the
// C++ wrapper; it trains the f64 layer and checks the cumulative average of
// momentum=None.
#include "model.h"
#include "normrt/normrt.hpp"

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  normrt::Layer head("head", "cpu");
  std::vector<double> x(4 * 3), y(4 * 3);
  double sums[3] = {0, 0, 0};
  for (int step = 1; step <= 3; ++step) {
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = double(i % 5) * step;
    normrt_tensor xt = normrt::tensor(x.data(), {4, 3});
    normrt_tensor yt = normrt::tensor(y.data(), {4, 3});
    head.forward(xt, yt);
    for (int c = 0; c < 3; ++c) {
      double mean = 0;
      for (int n = 0; n < 4; ++n)
        mean += x[n * 3 + c] / 4;
      sums[c] += mean;
    }
  }
  normrt_tensor rm = head.state("running_mean");
  for (int c = 0; c < 3; ++c) {
    double got = static_cast<const double *>(rm.data)[c];
    if (std::fabs(got - sums[c] / 3) > 1e-12) {
      std::fprintf(stderr, "running_mean[%d] = %g, want %g\n", c, got,
                   sums[c] / 3);
      return 1;
    }
  }
  std::printf("c++ program: ok\n");
  return 0;
}

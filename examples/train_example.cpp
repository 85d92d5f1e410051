//===- train_example.cpp - Train a normc layer, then evaluate it ----------===//
//
// The README's first command runs this program. It creates `stem_bn` from
// resnet.norm (a BatchNorm2d(64)), trains it for a few steps on random
// batches whose channels have different means and scales, switches to eval
// mode, and prints what PyTorch users would look at: the running statistics,
// num_batches_tracked, and the per-channel mean and std of the outputs.
//
//===----------------------------------------------------------------------===//

#include "resnet.h"

#include "normrt/normrt.hpp"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace {
struct Moments {
  double mean, std;
};

Moments channelMoments(const std::vector<float> &t, int64_t n, int64_t c,
                       int64_t hw, int64_t channel) {
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < hw; ++j)
      sum += t[(i * c + channel) * hw + j];
  double mean = sum / double(n * hw);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < hw; ++j) {
      double d = t[(i * c + channel) * hw + j] - mean;
      sq += d * d;
    }
  return {mean, std::sqrt(sq / double(n * hw))};
}

/// Prints the mean and std of output channels 0 and 63.
void printMoments(const char *label, const std::vector<float> &y, int64_t n,
                  int64_t c, int64_t hw) {
  Moments first = channelMoments(y, n, c, hw, 0);
  Moments last = channelMoments(y, n, c, hw, c - 1);
  std::printf("  %s: y[:,0] mean %+.2e std %.4f | y[:,%lld] mean %+.2e std "
              "%.4f\n",
              label, first.mean, first.std, (long long)(c - 1), last.mean,
              last.std);
}
} // namespace

int main() {
  const int64_t N = 8, C = 64, H = 16, W = 16, HW = H * W;
  normrt::Layer bn("stem_bn", "cpu");
  std::mt19937 rng(42);
  std::vector<float> x(N * C * HW), y(x.size());

  std::printf("stem_bn = BatchNorm2d(64): training for 5 steps on "
              "%lldx%lldx%lldx%lld batches\n",
              (long long)N, (long long)C, (long long)H, (long long)W);
  for (int step = 0; step < 5; ++step) {
    for (int64_t i = 0; i < N; ++i)
      for (int64_t c = 0; c < C; ++c) {
        // Channel c has mean c / 8 and std 1 + c / 32.
        std::normal_distribution<float> dist(float(c) / 8.0f,
                                             1.0f + float(c) / 32.0f);
        for (int64_t j = 0; j < HW; ++j)
          x[(i * C + c) * HW + j] = dist(rng);
      }
    normrt_tensor xt = normrt::tensor(x.data(), {N, C, H, W});
    normrt_tensor yt = normrt::tensor(y.data(), {N, C, H, W});
    bn.forward(xt, yt);
    std::string label = "train step " + std::to_string(step + 1);
    printMoments(label.c_str(), y, N, C, HW);
  }

  normrt_tensor counter = bn.state("num_batches_tracked");
  normrt_tensor rm = bn.state("running_mean");
  normrt_tensor rv = bn.state("running_var");
  const float *runningMean = static_cast<const float *>(rm.data);
  const float *runningVar = static_cast<const float *>(rv.data);
  std::printf("num_batches_tracked = %lld\n",
              (long long)*static_cast<int64_t *>(counter.data));
  for (int64_t c : {0, 32, 63})
    std::printf("  channel %2lld: running_mean %.4f (data mean %.4f), "
                "running_var %.4f (data var %.4f)\n",
                (long long)c, runningMean[c], double(c) / 8.0, runningVar[c],
                std::pow(1.0 + double(c) / 32.0, 2.0));

  bn.eval();
  normrt_tensor xt = normrt::tensor(x.data(), {N, C, H, W});
  normrt_tensor yt = normrt::tensor(y.data(), {N, C, H, W});
  bn.forward(xt, yt);
  std::printf("eval mode normalizes with the running statistics, which after "
              "5 steps at momentum 0.1 hold 1 - 0.9^5 = 41%% of the data's:\n");
  printMoments("eval", y, N, C, HW);

  // Errors come back as exceptions with PyTorch's words.
  try {
    normrt_tensor bad = normrt::tensor(x.data(), {N, C, HW});
    bn.forward(bad, yt);
  } catch (const normrt::Error &e) {
    std::printf("a 3-D input is rejected: %s\n", e.what());
  }
  return 0;
}

//===- Reference.h - A float64 BatchNorm written from PyTorch's docs -*- C++ -*-===//
//
// The tests' oracle inside C++: torch.nn.BatchNorm*d's forward, running
// statistics and backward, written directly from the formulas in docs/design.md
// in the most obvious way (two passes, float64 values), sharing no code
// with the kernels. Sums over a channel accumulate in long double, so that
// the reference's own rounding stays far below the tolerances even for the
// million-value batches of the GPU tests (a float64 running sum of 350,000
// terms is off by 1e-10 relative, as much as the f64 tolerance). Tensors are
// contiguous (N, C, S) with S = prod(spatial).
//
//===----------------------------------------------------------------------===//

#ifndef NORMC_TEST_UNIT_REFERENCE_H
#define NORMC_TEST_UNIT_REFERENCE_H

#include <cmath>
#include <cstdint>
#include <vector>

namespace reference {

/// The accumulator of the reference's sums.
using Sum = long double;

struct Config {
  int64_t channels = 1;
  double eps = 1e-5;
  bool hasMomentum = true;
  double momentum = 0.1;
  bool affine = true;
  bool track = true;
};

struct BatchNorm {
  Config cfg;
  std::vector<double> weight, bias, runningMean, runningVar, saveMean,
      saveInvstd;
  int64_t numBatchesTracked = 0;
  bool training = true;

  explicit BatchNorm(const Config &c)
      : cfg(c), weight(c.channels, 1.0), bias(c.channels, 0.0),
        runningMean(c.channels, 0.0), runningVar(c.channels, 1.0),
        saveMean(c.channels, 0.0), saveInvstd(c.channels, 0.0) {}

  bool batchStats() const { return training || !cfg.track; }

  std::vector<double> forward(const std::vector<double> &x, int64_t n,
                              int64_t s) {
    const int64_t C = cfg.channels;
    std::vector<double> y(x.size());
    for (int64_t c = 0; c < C; ++c) {
      double mean, invstd;
      if (batchStats()) {
        Sum sum = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < s; ++j)
            sum += x[(i * C + c) * s + j];
        const double count = double(n * s);
        mean = double(sum / count);
        Sum sq = 0;
        for (int64_t i = 0; i < n; ++i)
          for (int64_t j = 0; j < s; ++j) {
            Sum d = Sum(x[(i * C + c) * s + j]) - mean;
            sq += d * d;
          }
        double var = double(sq / count);
        invstd = 1.0 / std::sqrt(var + cfg.eps);
        saveMean[c] = mean;
        saveInvstd[c] = invstd;
        if (training && cfg.track) {
          double f = cfg.hasMomentum
                         ? cfg.momentum
                         : 1.0 / double(numBatchesTracked + 1);
          runningMean[c] = (1 - f) * runningMean[c] + f * mean;
          runningVar[c] = (1 - f) * runningVar[c] + f * var * count / (count - 1);
        }
      } else {
        mean = runningMean[c];
        invstd = 1.0 / std::sqrt(runningVar[c] + cfg.eps);
      }
      double w = cfg.affine ? weight[c] : 1.0;
      double b = cfg.affine ? bias[c] : 0.0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < s; ++j) {
          int64_t k = (i * C + c) * s + j;
          y[k] = (x[k] - mean) * invstd * w + b;
        }
    }
    if (training && cfg.track)
      ++numBatchesTracked;
    return y;
  }

  /// dx, and dweight/dbias (meaningful for affine layers).
  void backward(const std::vector<double> &x, const std::vector<double> &dy,
                int64_t n, int64_t s, std::vector<double> &dx,
                std::vector<double> &dweight, std::vector<double> &dbias) {
    const int64_t C = cfg.channels;
    const double count = double(n * s);
    dx.assign(x.size(), 0.0);
    dweight.assign(C, 0.0);
    dbias.assign(C, 0.0);
    for (int64_t c = 0; c < C; ++c) {
      double mean = batchStats() ? saveMean[c] : runningMean[c];
      double invstd = batchStats() ? saveInvstd[c]
                                   : 1.0 / std::sqrt(runningVar[c] + cfg.eps);
      double w = cfg.affine ? weight[c] : 1.0;
      Sum sumDyWide = 0, sumDyXhatWide = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < s; ++j) {
          int64_t k = (i * C + c) * s + j;
          sumDyWide += dy[k];
          sumDyXhatWide += Sum(dy[k]) * (Sum(x[k]) - mean) * invstd;
        }
      const double sumDy = double(sumDyWide), sumDyXhat = double(sumDyXhatWide);
      dbias[c] = sumDy;
      dweight[c] = sumDyXhat;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < s; ++j) {
          int64_t k = (i * C + c) * s + j;
          double xhat = (x[k] - mean) * invstd;
          dx[k] = batchStats()
                      ? w * invstd / count *
                            (count * dy[k] - sumDy - xhat * sumDyXhat)
                      : dy[k] * w * invstd;
        }
    }
  }
};

} // namespace reference

#endif // NORMC_TEST_UNIT_REFERENCE_H

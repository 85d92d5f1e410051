/* main.c - a C program that uses a normc module through normrt's C ABI.
 * It includes no header of the module: linking the module must still bring
 * its layers (and everything they need). Prints the running mean after one
 * training step on a known batch and checks it against the formula. */
#include "normrt/normrt.h"

#include <math.h>
#include <stdio.h>

int main(void) {
  normrt_layer *bn = normrt_layer_create("bn", "cpu");
  if (!bn) {
    fprintf(stderr, "create: %s\n", normrt_last_error());
    return 1;
  }
  enum { N = 2, C = 4, H = 3, W = 3 };
  static float x[N * C * H * W], y[N * C * H * W];
  for (int i = 0; i < N * C * H * W; ++i)
    x[i] = (float)(i % 7);
  normrt_tensor xt = {x, 4, {N, C, H, W}, {0}, NORMRT_FLOAT32, 0};
  normrt_tensor yt = {y, 4, {N, C, H, W}, {0}, NORMRT_FLOAT32, 0};
  if (normrt_layer_forward(bn, &xt, &yt) != 0) {
    fprintf(stderr, "forward: %s\n", normrt_last_error());
    return 1;
  }
  normrt_tensor rm;
  if (normrt_layer_state(bn, "running_mean", &rm) != 0)
    return 1;
  for (int c = 0; c < C; ++c) {
    double sum = 0;
    for (int n = 0; n < N; ++n)
      for (int s = 0; s < H * W; ++s)
        sum += x[(n * C + c) * H * W + s];
    double want = 0.1 * sum / (N * H * W);
    double got = ((const float *)rm.data)[c];
    if (fabs(got - want) > 1e-6) {
      fprintf(stderr, "running_mean[%d] = %g, want %g\n", c, got, want);
      return 1;
    }
  }
  normrt_layer_destroy(bn);
  printf("c program: ok\n");
  return 0;
}

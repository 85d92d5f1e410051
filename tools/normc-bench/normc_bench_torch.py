#!/usr/bin/env python3
"""normc's family layers against torch's CPU kernels on the same shapes.

Usage: normc_bench_torch.py LIBRARY.so [--samples N] [--threads N]

LIBRARY.so is family.norm compiled with `normc --shared` (the build makes
tools/normc-bench/bench_family_py_module.normc/libbench_family_py.so). For
each case of normc-bench's family suite: the median time of normc's train
forward and backward (through normrt, ctypes), of torch.nn's module forward
and its backward (autograd, the input's gradient and the parameters'), and
of torch's copy of the same tensor (x.copy_ on torch's threads) as the
floor. Prints ms, ratios to the copy and torch / normc.
"""

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "runtime", "python"))
import normrt  # noqa: E402

CASES = [
    ("ln768", (8192, 768), lambda: torch.nn.LayerNorm(768)),
    ("ln4096", (4096, 4096), lambda: torch.nn.LayerNorm(4096)),
    ("gn512", (8, 512, 32, 32), lambda: torch.nn.GroupNorm(32, 512)),
    ("gn512_silu", (8, 512, 32, 32),
     lambda: torch.nn.Sequential(torch.nn.GroupNorm(32, 512), torch.nn.SiLU())),
    ("in64", (8, 64, 128, 128), lambda: torch.nn.InstanceNorm2d(64, affine=True)),
    ("bn256", (32, 256, 28, 28), lambda: torch.nn.BatchNorm2d(256)),
]


# Seconds an op is called untimed before its timed calls: torch runs on
# OpenMP, whose idle threads spin for several milliseconds after each
# parallel region and take a core from whatever runs next (normc-bench's
# kWarmUpSeconds, docs/performance.md).
WARM_UP_SECONDS = 0.03


def median(fn, samples):
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < WARM_UP_SECONDS:
        fn()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("--samples", type=int, default=9)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lib = normrt.Library(args.library)
    lib.lib.normrt_set_num_threads(args.threads)
    print("normc vs torch %s on %d threads, median of %d; x copy = time / "
          "torch's copy of x" % (torch.__version__, args.threads, args.samples))
    print("%-20s %-12s %-9s %9s %7s %9s %7s %8s" % (
        "shape", "layer", "pass", "normc ms", "x copy", "torch ms", "x copy",
        "torch/normc"))
    for name, shape, make in CASES:
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        dy = np.ones(shape, np.float32)
        layer = lib.layer(name)
        y = np.empty_like(x)
        xt = torch.from_numpy(x)
        yt = torch.empty_like(xt)
        copy = median(lambda: yt.copy_(xt), args.samples)
        ours_fwd = median(lambda: layer.forward(x, out=y), args.samples)
        ours_bwd = median(lambda: layer.backward(x, dy), args.samples)
        module = make().train()
        xg = xt.clone().requires_grad_(True)
        dyt = torch.from_numpy(dy)
        params = [p for p in module.parameters()]

        def forward():
            with torch.no_grad():
                module(xt)
        out = module(xg)

        def backward():
            torch.autograd.grad(out, [xg] + params, dyt, retain_graph=True)
        torch_fwd = median(forward, args.samples)
        torch_bwd = median(backward, args.samples)
        label = "x".join(map(str, shape))
        for what, ours, theirs in (("train", ours_fwd, torch_fwd),
                                   ("backward", ours_bwd, torch_bwd)):
            print("%-20s %-12s %-9s %9.3f %7.2f %9.3f %7.2f %8.2fx" % (
                label, name, what, ours * 1e3, ours / copy, theirs * 1e3,
                theirs / copy, theirs / ours))


if __name__ == "__main__":
    main()

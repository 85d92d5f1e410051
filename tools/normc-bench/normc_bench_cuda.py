#!/usr/bin/env python3
"""normc-bench-cuda: normc's CUDA kernels against a device-to-device copy and
torch.nn.BatchNorm*d on CUDA (cuDNN), measured in the same run.

For each shape of a suite and each layout and dtype (NCHW and channels-last;
f32, f16, bf16; (N, C) shapes on BatchNorm1d), it times one train step
(forward with batch statistics and the running-statistics update), an eval
forward and a backward, of normc's layer and of PyTorch's module on the same
CUDA tensors, and a copy of x on the same stream. Times are medians of CUDA
event intervals on PyTorch's current stream, which normrt is handed, so that
both libraries' kernels are ordered and timed alike. `x copy` is a time over
the copy's; the issue's goals (eval at 85% of copy bandwidth or better, train
at most 1.5x and backward at most 2.5x a copy, at or ahead of PyTorch) are
checked at the end.

The library is lib<module>.so built from the spec CMake writes for the suites'
channel counts (tools/normc-bench/CMakeLists.txt): layers `<config>_c<C>` on
targets `cuda` and `cpu`. With --li2018 LIB the same f32 layers scheduled by
Halide's Li2018 autoscheduler are timed too. --device=cpu runs the same
harness on the CPU layers and torch on the CPU: a check of the harness on
machines without a GPU, not a benchmark (normc-bench is the CPU benchmark).

    normc_bench_cuda.py build/tools/normc-bench/cuda_bench_module.normc/libcuda_bench.so \\
        --li2018 build/tools/normc-bench/cuda_bench_li2018_module.normc/libcuda_bench_li2018.so
"""

import argparse
import csv
import math
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "runtime", "python"))
import normrt  # noqa: E402

# (name, layout, dtype); names as the spec CMake writes.
CONFIGS = [("nchw_f32", "nchw", torch.float32), ("nhwc_f32", "nhwc", torch.float32),
           ("nchw_f16", "nchw", torch.float16), ("nhwc_f16", "nhwc", torch.float16),
           ("nchw_bf16", "nchw", torch.bfloat16), ("nhwc_bf16", "nhwc", torch.bfloat16)]
NC_CONFIGS = [("nc_f32", "nc", torch.float32), ("nc_f16", "nc", torch.float16),
              ("nc_bf16", "nc", torch.bfloat16)]
SUITES = {
    # The CPU benchmark's default shapes plus a larger batch for the GPU.
    "default": [(64, 64, 112, 112), (32, 256, 14, 14), (32, 64, 56, 56),
                (32, 2048, 7, 7), (256, 64, 56, 56), (4096, 1024), (256, 4096)],
    "smoke": [(2, 64, 5, 7), (8, 256), (3, 3, 4, 4)],
}
GOALS = {"train": 1.5, "eval": 1 / 0.85, "backward": 2.5}
# Transfers of the tensor's size each kernel needs at least (as normc-bench).
TRANSFERS = {"copy": 2, "train": 2, "eval": 2, "backward": 3}


class Cuda:
    name = "cuda"

    def __init__(self):
        if not torch.cuda.is_available():
            raise SystemExit("normc-bench-cuda: no CUDA device (torch.cuda."
                             "is_available() is False); --device=cpu checks "
                             "the harness without one")
        self.device = torch.device("cuda")
        self.label = torch.cuda.get_device_name(0)

    def adopt(self, layer):
        layer.set_cuda_stream(torch.cuda.current_stream().cuda_stream)

    def forward(self, layer, x, y):
        layer.forward_device(x, y)

    def backward(self, layer, x, dy, dx, dw, db):
        layer.backward_device(x, dy, dx, dw, db)

    def interval_ms(self, fn, repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / repeats


class Cpu:
    """The harness on the CPU layers: numpy views of torch CPU tensors."""
    name = "cpu"
    label = "CPU (harness check, not a benchmark)"

    def __init__(self):
        self.device = torch.device("cpu")

    def adopt(self, layer):
        pass

    @staticmethod
    def array(t):
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy().view("uint16")
        return t.numpy()

    def forward(self, layer, x, y):
        layer.forward(self.array(x), out=self.array(y))

    def backward(self, layer, x, dy, dx, dw, db):
        out, _, _ = layer.backward(self.array(x), self.array(dy),
                                   want_params=False)
        self.array(dx)[...] = out

    def interval_ms(self, fn, repeats):
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        return (time.perf_counter() - start) * 1e3 / repeats


def median_ms(device, fn, samples, repeats):
    fn()  # warm: first launches load modules and allocate
    return statistics.median(device.interval_ms(fn, repeats)
                             for _ in range(samples))


def shape_name(shape):
    return "x".join(str(e) for e in shape)


def make_inputs(device, shape, layout, dtype):
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(shape, generator=g).to(device.device, dtype)
    dy = torch.randn(shape, generator=g).to(device.device, dtype)
    if layout == "nhwc":
        x = x.contiguous(memory_format=torch.channels_last)
        dy = dy.contiguous(memory_format=torch.channels_last)
    return x, dy


def torch_module(shape, device):
    cls = {2: torch.nn.BatchNorm1d, 3: torch.nn.BatchNorm1d,
           4: torch.nn.BatchNorm2d, 5: torch.nn.BatchNorm3d}[len(shape)]
    # Parameters and statistics in f32 for every input dtype, as normc's.
    return cls(shape[1]).to(device.device)


def time_ours(device, library, layer_name, target, x, dy, timing):
    layer = library.layer(layer_name, target)
    device.adopt(layer)
    y, dx = torch.empty_like(x), torch.empty_like(x)
    c = x.shape[1]
    dw = torch.empty(c, device=device.device)
    db = torch.empty(c, device=device.device)
    out = {}
    layer.train(True)
    out["train"] = timing(lambda: device.forward(layer, x, y))
    layer.eval()
    out["eval"] = timing(lambda: device.forward(layer, x, y))
    layer.train(True)
    device.forward(layer, x, y)  # the statistics backward uses
    out["backward"] = timing(lambda: device.backward(layer, x, dy, dx, dw, db))
    return out


def time_torch(device, shape, x, dy, timing):
    bn = torch_module(shape, device)
    out = {}
    with torch.no_grad():
        bn.train()
        out["train"] = timing(lambda: bn(x))
        bn.eval()
        out["eval"] = timing(lambda: bn(x))
    bn.train()
    xg = x.detach().requires_grad_()
    y = bn(xg)
    params = [xg, bn.weight, bn.bias]
    out["backward"] = timing(
        lambda: torch.autograd.grad(y, params, dy, retain_graph=True))
    return out


def run(args, device):
    library = normrt.Library(args.library)
    baselines = []
    if args.li2018 and device.name == "cuda":
        baselines.append(("Li2018", normrt.Library(args.li2018)))
    names = {name for name, _ in library.layers()}
    rows = []
    for shape in SUITES[args.suite]:
        configs = NC_CONFIGS if len(shape) == 2 else CONFIGS
        for config, layout, dtype in configs:
            if args.configs and config not in args.configs:
                continue
            layer_name = f"{config}_c{shape[1]}"
            if layer_name not in names:
                raise SystemExit(f"normc-bench-cuda: the library has no layer "
                                 f"'{layer_name}'; add {shape[1]} to "
                                 f"NORMC_CUDA_BENCH_CHANNELS and rebuild")
            x, dy = make_inputs(device, shape, layout, dtype)
            y = torch.empty_like(x)
            copy_once = device.interval_ms(lambda: y.copy_(x), 3)
            repeats = max(1, math.ceil(args.min_ms / max(copy_once, 1e-3)))

            def timing(fn):
                return median_ms(device, fn, args.samples, repeats)

            copy = timing(lambda: y.copy_(x))
            nbytes = x.numel() * x.element_size()

            def add(config_label, kernel, ms, theirs=None):
                rows.append({
                    "shape": shape_name(shape), "config": config_label,
                    "kernel": kernel, "ms": ms,
                    "gbps": TRANSFERS[kernel] * nbytes / (ms * 1e-3) / 1e9,
                    "x_copy": ms / copy,
                    "torch_ms": theirs, "torch_x_copy":
                        None if theirs is None else theirs / copy})

            add(config, "copy", copy)
            ours = time_ours(device, library, layer_name, device.name, x, dy,
                             timing)
            try:
                theirs = time_torch(device, shape, x, dy, timing)
            except RuntimeError as error:  # e.g. no f16 batch_norm on a CPU
                print(f"normc-bench-cuda: torch cannot run {config} on "
                      f"{shape_name(shape)}: {error}", file=sys.stderr)
                theirs = {}
            for kernel in ("train", "eval", "backward"):
                add(config, kernel, ours[kernel], theirs.get(kernel))
            for label, baseline in baselines:
                if config in ("nchw_f32", "nhwc_f32"):
                    try:
                        times = time_ours(device, baseline, layer_name, "cuda",
                                          x, dy, timing)
                    except normrt.NormrtError as error:
                        print(f"normc-bench-cuda: {label} cannot run "
                              f"{layer_name} on {shape_name(shape)}: {error}",
                              file=sys.stderr)
                        continue
                    for kernel in ("train", "eval", "backward"):
                        add(f"{config}/{label}", kernel, times[kernel])
            print(f"  {shape_name(shape)} {config}: done", file=sys.stderr)
    return rows


def print_table(rows, device):
    print(f"normc-bench-cuda on {device.label}; x copy = time / copy of x in "
          "the same run; vs torch = torch's time / normc's")
    print(f"{'shape':<18} {'config':<16} {'kernel':<9} {'ms':>9} {'GB/s':>8} "
          f"{'x copy':>7} {'torch ms':>9} {'x copy':>7} {'vs torch':>8}")
    for r in rows:
        line = (f"{r['shape']:<18} {r['config']:<16} {r['kernel']:<9} "
                f"{r['ms']:9.4f} {r['gbps']:8.1f} {r['x_copy']:7.2f}")
        if r["torch_ms"] is not None:
            line += (f" {r['torch_ms']:9.4f} {r['torch_x_copy']:7.2f} "
                     f"{r['torch_ms'] / r['ms']:7.2f}x")
        print(line)


def check_goals(rows):
    misses, checked = [], 0
    for r in rows:
        if "/" in r["config"] or r["kernel"] not in GOALS:
            continue
        checked += 1
        if r["x_copy"] > GOALS[r["kernel"]]:
            misses.append(f"{r['shape']} {r['config']} {r['kernel']}: "
                          f"{r['x_copy']:.2f}x copy (goal {GOALS[r['kernel']]:.2f}x)")
        if r["torch_ms"] is not None and r["torch_ms"] < r["ms"]:
            misses.append(f"{r['shape']} {r['config']} {r['kernel']}: "
                          f"{r['ms'] / r['torch_ms']:.2f}x torch's time")
    print(f"goals: {checked} cases, {len(misses)} misses")
    for m in misses:
        print("  " + m)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("library", help="lib<module>.so of the bench spec")
    parser.add_argument("--li2018", help="the Li2018-scheduled library")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--suite", choices=sorted(SUITES), default="default")
    parser.add_argument("--configs", nargs="*", help="only these configs")
    parser.add_argument("--samples", type=int, default=9)
    parser.add_argument("--min-ms", type=float, default=2.0,
                        help="repeat calls within a sample for at least this "
                             "much copy time")
    parser.add_argument("--csv", help="write the rows here too")
    args = parser.parse_args()
    if args.samples < 1:
        parser.error("--samples must be at least 1")
    device = Cuda() if args.device == "cuda" else Cpu()
    torch.manual_seed(0)
    rows = run(args, device)
    print_table(rows, device)
    if device.name == "cuda":
        check_goals(rows)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train torchvision's ResNet-18 with normc's BatchNorm kernels.

    PYTHONPATH=build/python python3 examples/torch_resnet.py --normc build/tools/normc

Takes torchvision.models.resnet18(weights=None), writes the .norm spec of its
BatchNorm layers (normrt.torch.spec_from_model), compiles it with normc,
swaps the model's BatchNorm2d modules for normc's (normrt.torch.convert,
state copied), and trains it for a few SGD steps on synthetic data next to an
unconverted copy of the same model, printing both losses and the time per
step of each.
"""

import argparse
import copy
import os
import sys
import tempfile
import time

import torch
import torchvision

import normrt.torch as nt


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--normc", help="the normc executable (default: $NORMC, or on PATH)")
    parser.add_argument("--work", help="where the spec and library go (default: a temporary "
                                       "directory)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=112, help="image height and width")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for torch and for normc's kernels (default: each "
                             "library's own default)")
    parser.add_argument("--channels-last", action="store_true",
                        help="compile NHWC layers and feed channels-last images")
    args = parser.parse_args()

    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    model = torchvision.models.resnet18(weights=None).to(dtype)
    reference = copy.deepcopy(model)

    work = args.work or tempfile.mkdtemp(prefix="normc-resnet18-")
    layout = "channels_last" if args.channels_last else "contiguous"
    t0 = time.perf_counter()
    library = nt.compile_model(model, work, normc=args.normc, module="resnet18", layout=layout)
    layers = len(library.layers())
    if args.threads:
        torch.set_num_threads(args.threads)
        library.set_num_threads(args.threads)
    nt.convert(model, library)
    print("spec %s: %d layers, compiled and loaded in %.1f s"
          % (os.path.join(work, "resnet18.norm"), layers, time.perf_counter() - t0))
    print("%s, batch %d, %dx%d images, torch on %d threads%s"
          % (args.dtype, args.batch, args.size, args.size, torch.get_num_threads(),
             ", normc's kernels on %d" % args.threads if args.threads else ""))

    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    reference = reference.to(memory_format=memory_format)
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
                  for m in (reference, model)]
    loss_fn = torch.nn.CrossEntropyLoss()
    times = {"torch": [], "normc": []}
    first = None
    print("step  loss (torch)      loss (normc)      ms/step torch  ms/step normc")
    for step in range(args.steps):
        x = torch.randn(args.batch, 3, args.size, args.size, dtype=dtype)
        x = x.contiguous(memory_format=memory_format)
        labels = torch.randint(0, 1000, (args.batch,))
        losses = []
        for name, m, opt in zip(("torch", "normc"), (reference, model), optimizers):
            start = time.perf_counter()
            opt.zero_grad()
            loss = loss_fn(m(x), labels)
            loss.backward()
            opt.step()
            times[name].append(time.perf_counter() - start)
            losses.append(loss.item())
        if first is None:
            first = abs(losses[0] - losses[1]) / abs(losses[0])
        print("%4d  %.12f    %.12f    %10.1f     %10.1f"
              % (step, losses[0], losses[1], 1e3 * times["torch"][-1],
                 1e3 * times["normc"][-1]))
    steady = slice(1, None) if args.steps > 1 else slice(None)
    mean = {k: sum(v[steady]) / len(v[steady]) for k, v in times.items()}
    print("mean time per step (after the first): torch %.1f ms, normc %.1f ms (%.2fx)"
          % (1e3 * mean["torch"], 1e3 * mean["normc"], mean["torch"] / mean["normc"]))
    last = abs(losses[0] - losses[1]) / abs(losses[0])
    # The first step's losses differ only by rounding; later ones drift
    # apart as training amplifies it (in float32 visibly).
    print("losses differ by %.2e relative at the first step, %.2e at the last" % (first, last))
    return 0 if first < (1e-4 if dtype == torch.float32 else 1e-10) else 1


if __name__ == "__main__":
    sys.exit(main())

"""SyncBatchNorm through torch.distributed (gloo): normrt.torch modules of
SyncBatchNorm layers in WORLD processes, each with its own uneven share of
one global batch (with 3 or more processes one share is empty), held to
torch's own BatchNorm on the whole batch in one process: outputs, input
gradients, running statistics, num_batches_tracked, and weight/bias
gradients summed over the processes (each process keeps its own
contribution, as torch.nn.SyncBatchNorm does). Then one process passes a
bad input and every process must raise NormrtError, none hang.

    python3 test_sync.py libsyncmods.so WORLD
"""
import datetime
import os
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import normrt
import normrt.torch

SHARES = [3, 1, 0, 2]

# layer, torch's module on the whole batch, one sample's shape, tolerance
CASES = [
    ("sbn_f64", lambda: torch.nn.BatchNorm2d(3, dtype=torch.float64), (3, 4, 5), 1e-12),
    ("sbn_momnone_noaffine_f64",
     lambda: torch.nn.BatchNorm1d(4, momentum=None, affine=False, dtype=torch.float64),
     (4,), 1e-12),
    ("sbn_f32", lambda: torch.nn.BatchNorm3d(2, momentum=0.3, dtype=torch.float32),
     (2, 2, 3, 2), 1e-5),
    # y = relu(bn(x) + z): the split backward recomputes the activation.
    ("sbn_relu_residual_f64", lambda: torch.nn.BatchNorm2d(3, dtype=torch.float64),
     (3, 2, 3), 1e-12),
]


def shares(world):
    return [4] if world == 1 else [SHARES[r % 4] for r in range(world)]


def close(name, got, want, tol):
    got, want = got.detach().double(), want.detach().double()
    if got.shape != want.shape:
        raise AssertionError("%s: shape %s, want %s" % (name, tuple(got.shape), tuple(want.shape)))
    if got.numel() == 0:
        return
    err = ((got - want).abs() / want.abs().clamp(min=1.0)).max().item()
    if not err <= tol:
        raise AssertionError("%s: worst relative difference %.3g > %.3g" % (name, err, tol))


def run_case(lib, rank, world, name, make, sample, tol):
    share = shares(world)
    n, start, total = share[rank], sum(share[:rank]), sum(share)
    ref = make()
    module = lib.module(name)
    dtype = ref.running_mean.dtype
    if ref.affine:
        with torch.no_grad():
            ref.weight.copy_(torch.linspace(0.5, 1.5, ref.num_features, dtype=dtype))
            ref.bias.copy_(torch.linspace(-0.2, 0.3, ref.num_features, dtype=dtype))
    module.load_state_dict(ref.state_dict())
    for step in range(3):
        gen = torch.Generator().manual_seed(10 + step)  # one global batch
        x = (torch.randn((total,) + sample, generator=gen, dtype=torch.float64) * 2 + 3).to(dtype)
        weights = torch.randn((total,) + sample, generator=gen, dtype=torch.float64).to(dtype)
        fused = module.residual
        z = torch.randn((total,) + sample, generator=gen, dtype=torch.float64).to(dtype)
        xr, zr = x.clone().requires_grad_(), z.clone().requires_grad_()
        yr = torch.relu(ref(xr) + zr) if fused else ref(xr)
        (yr * weights).sum().backward()
        xl = x[start:start + n].clone().requires_grad_()
        zl = z[start:start + n].clone().requires_grad_()
        yl = module(xl, zl) if fused else module(xl)
        (yl * weights[start:start + n]).sum().backward()
        where = "%s step %d rank %d/%d" % (name, step, rank, world)
        close(where + " y", yl, yr[start:start + n], tol)
        close(where + " dx", xl.grad, xr.grad[start:start + n], tol)
        if fused:
            close(where + " dz", zl.grad, zr.grad[start:start + n], tol)
        close(where + " running_mean", module.running_mean, ref.running_mean, tol)
        close(where + " running_var", module.running_var, ref.running_var, tol)
        if int(module.num_batches_tracked) != int(ref.num_batches_tracked):
            raise AssertionError(where + " num_batches_tracked")
        if ref.affine:
            for param in ("weight", "bias"):
                grad = getattr(module, param).grad.clone().double()
                dist.all_reduce(grad)
                close(where + " d" + param + " summed", grad, getattr(ref, param).grad, tol)
                getattr(module, param).grad = None
                getattr(ref, param).grad = None


def bad_input_fails_everywhere(lib, rank, world):
    module = lib.module("sbn_f64")
    before = {k: v.clone() for k, v in module.state_dict().items()}
    bad = rank == world - 1
    x = torch.randn(2, 4 if bad else 3, 4, 5, dtype=torch.float64)
    try:
        module(x)
    except normrt.NormrtError as e:
        text = str(e)
        want = "running_mean should contain 4 elements not 3" if bad else "other process(es) failed"
        if want not in text:
            raise AssertionError("rank %d: unexpected message: %s" % (rank, text))
    else:
        raise AssertionError("rank %d: a bad input on rank %d raised nothing" % (rank, world - 1))
    for k, v in module.state_dict().items():
        if not torch.equal(v, before[k]):
            raise AssertionError("rank %d: a failed call changed %s" % (rank, k))


def worker(rank, world, library, init):
    dist.init_process_group("gloo", init_method="file://" + init, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    torch.set_num_threads(1)
    lib = normrt.load(library)
    lib.set_num_threads(1)
    for case in CASES:
        run_case(lib, rank, world, *case)
    bad_input_fails_everywhere(lib, rank, world)
    dist.barrier()
    dist.destroy_process_group()


def main():
    library, world = sys.argv[1], int(sys.argv[2])
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory() as work:
        mp.spawn(worker, args=(world, library, os.path.join(work, "init")), nprocs=world,
                 join=True)
    # The spec side: torch.nn.SyncBatchNorm modules become SyncBatchNorm layers.
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.SyncBatchNorm(8, momentum=None))
    spec = normrt.torch.spec_from_model(model)
    line = "layer _1 = SyncBatchNorm(8, eps=1e-05, momentum=None, affine=true, " \
           "track_running_stats=true, dtype=f32)"
    if line not in spec:
        raise AssertionError("spec_from_model wrote:\n" + spec)
    print("test_sync: %d processes: outputs, gradients and running statistics match torch's "
          "BatchNorm on the whole batch; a bad input fails every process" % world)


if __name__ == "__main__":
    main()

"""PyTorch as the judge, on the GPU: normc's CUDA layers against
torch.nn.BatchNorm*d on CUDA and in float64 on the CPU.

Drives a CUDA module made with `normc --shared` (test/unit/specs/cuda.norm:
every rank, both layouts, every dtype, each momentum kind) through the normrt
C ABI with torch CUDA tensors passed as device tensors (device = 1, no
copies). Each step of test_conformance.py's sequence (changing batch sizes,
n = 2, eval, data far from zero) is compared
  - with the float64 CPU oracle of test_conformance.py, same tolerances:
    y, save_mean, save_invstd, running statistics, num_batches_tracked, dx,
    dweight, dbias;
  - with the same module on CUDA in the layer's dtype (cuDNN or PyTorch's
    CUDA kernels, parameters in f32 as PyTorch keeps them for f16/bf16): y
    within twice the dtype's tolerance, since both sides round.

Without a GPU (a CPU-only torch, no NVIDIA driver, or no device) every test
is skipped with the reason; nothing fails.

Usage: python3 test_conformance_cuda.py LIBRARY.so
"""

import os
import sys
import unittest
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "runtime", "python"))
import normrt  # noqa: E402
import test_conformance as conf

TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64,
               np.float16: torch.float16, np.uint16: torch.bfloat16}


def to_device(stored):
    """A numpy tensor of the layer's storage (a strided view for
    channels-last) -> a torch CUDA tensor with the same strides."""
    array = stored.view(np.int16) if stored.dtype == np.uint16 else stored
    t = torch.from_numpy(array)
    if stored.dtype == np.uint16:
        t = t.view(torch.bfloat16)
    return t.to("cuda")


def to_host(t, like):
    """A torch CUDA tensor -> numpy in the storage type of `like`."""
    cpu = t.detach().to("cpu")
    if t.dtype == torch.bfloat16:
        return cpu.view(torch.int16).numpy().view(np.uint16)
    return cpu.numpy().astype(like.dtype, copy=False)


class CudaRunner(conf.Runner):
    """A Runner whose layer runs on the GPU on torch CUDA tensors, with a
    torch CUDA twin in the layer's dtype beside the float64 oracle."""

    def __init__(self, case, name, seed=0):
        super().__init__(case, name, seed, target="cuda")
        twin = conf.torch_module(self.info)  # float64
        if self.dtype is not np.float64:
            twin = twin.float()  # f32 parameters, as PyTorch keeps them
        self.gpu_twin = twin.to("cuda")

    def sync_twin_parameters(self):
        """The twin takes our parameters and running statistics as stored."""
        names = (("weight", "bias") if self.info.affine else ()) + \
            (("running_mean", "running_var") if self.info.track_running_stats else ())
        with torch.no_grad():
            for name in names:
                getattr(self.gpu_twin, name).copy_(
                    torch.from_numpy(self.ours.state(name)))

    def forward_ours(self, x):
        self.sync_twin_parameters()
        xd = to_device(x)
        yd = torch.empty_like(xd)  # same strides as x
        self.ours.forward_device(xd, yd)
        torch.cuda.synchronize()
        # The twin, in the layer's dtype on CUDA, in the same mode.
        self.gpu_twin.train(self.torch.training)
        with torch.no_grad():
            want = self.gpu_twin(xd)
        dt = self.dtype
        atol, rtol = conf.TOLERANCE[dt]
        conf.TOLERANCE[dt] = (2 * atol, 2 * rtol)
        try:
            conf.assert_close(self.case, "y vs torch on CUDA",
                              self.decode(to_host(yd, x)),
                              self.decode(to_host(want, x)), dt)
        finally:
            conf.TOLERANCE[dt] = (atol, rtol)
        return to_host(yd, x)

    def backward_ours(self, x, dy):
        xd, dyd = to_device(x), to_device(dy)
        dxd = torch.empty_like(xd)
        dw = db = None
        if self.info.affine:
            pdtype = TORCH_DTYPE[normrt._NUMPY[self.info.param_dtype]]
            c = self.info.num_features
            dw = torch.empty(c, dtype=pdtype, device="cuda")
            db = torch.empty(c, dtype=pdtype, device="cuda")
        self.ours.backward_device(xd, dyd, dxd, dw, db)
        torch.cuda.synchronize()
        return (to_host(dxd, x),
                None if dw is None else dw.cpu().numpy(),
                None if db is None else db.cpu().numpy())


def gpu_unavailable():
    """Why the GPU tests cannot run here, or None."""
    if not torch.cuda.is_available():
        return "torch sees no CUDA device (CPU-only build, no driver or no GPU)"
    return None


class CudaMatrix(unittest.TestCase):
    """Every CUDA layer: the sequence of test_conformance.Matrix."""

    def setUp(self):
        reason = gpu_unavailable()
        if reason:
            self.skipTest(reason)


def make_cuda_test(name):
    def test(self):
        run = CudaRunner(self, name, seed=zlib.crc32(name.encode()))
        run.randomize_parameters()
        shapes = conf.shapes_for(run.info.spatial_rank, run.info.num_features)
        run.step(shapes[0], True)
        run.step(shapes[1], True, mean=-1.0, std=0.5)
        run.step(shapes[2], True, mean=3.0, std=1.5)
        run.step(shapes[1], False)
        run.step(shapes[3], False)
        run.step(shapes[0], True, mean=0.25, std=1.0)
        run.step(shapes[1], True, mean=1e3, std=1.0)
        run.step(shapes[1], False, mean=1e3, std=1.0)
    return test


class CudaCreate(unittest.TestCase):
    """Creating a CUDA layer gives a device layer, or fails with normrt's
    message; it fails only where torch sees no GPU either."""

    def test_create_matches_the_machine(self):
        name = conf.layer_names()[0]
        try:
            layer = conf.LIBRARY.layer(name, "cuda")
        except normrt.NormrtError as error:
            self.assertIn(f"cannot create layer '{name}' on CUDA target",
                          str(error))
            self.assertIsNotNone(gpu_unavailable(),
                                 f"torch sees a GPU, but: {error}")
            return
        self.assertEqual(layer.info.device, 1)


def main():
    path = sys.argv.pop(1) if len(sys.argv) > 1 else os.environ["NORMC_CONFORMANCE_CUDA_LIB"]
    conf.LIBRARY = normrt.Library(path)
    for name in conf.layer_names():
        setattr(CudaMatrix, f"test_{name}", make_cuda_test(name))
    program = unittest.main(exit=False, verbosity=1)
    if not gpu_unavailable():
        print(conf.summary())
    sys.exit(0 if program.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()

"""PyTorch as the judge: normc layers against torch.nn.BatchNorm*d.

Drives a library made with `normc --shared` through the normrt C ABI (ctypes)
and compares, step after step, with torch.nn.BatchNorm{1,2,3}d evaluated in
float64 on the same inputs: outputs, save_mean, save_invstd, running_mean,
running_var, num_batches_tracked, and dx, dweight, dbias in train and in eval
mode. Gradients come from PyTorch's own native_batch_norm_backward.

Usage: python3 test_conformance.py LIBRARY.so  (or NORMC_CONFORMANCE_LIB=...)

Tolerances (|ours - torch| <= atol + rtol * |torch|), torch in float64 on the
inputs as our layer saw them (f32-rounded for f32 layers):
  f64: atol 1e-10, rtol 1e-9. Both compute in f64; sums in a different order
       differ by ~n * 1e-16, far below this.
  f16: atol 2e-3, rtol 1e-3; bf16: atol 1.6e-2, rtol 8e-3. Results are
       rounded to 11 (f16) or 8 (bf16) significant bits: half an ulp is
       2^-11 or 2^-8 relative; statistics and parameters are f32 and
       accumulation is f32, as in PyTorch's mixed-precision CPU kernels.
  f32: atol 1e-5, rtol 1e-4. Our kernels accumulate and compute in f64 and
       round the result to f32 once (relative 6e-8); statistics are stored in
       f32 as PyTorch stores them. Where a step depends on stored statistics
       (eval mode, backward), torch is given the values we stored (they were
       compared right after they were produced), so rounding of a stored f32
       running_mean of data near 1e3 (6e-5) is not counted twice. A wrong
       formula (biased vs unbiased variance, momentum the other way round)
       is off by 1e-2 or more.
"""

import math
import os
import sys
import unittest
import zlib

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "runtime", "python"))
import normrt  # noqa: E402

torch.set_num_threads(1)
LIBRARY = None
# Keyed by the layer's numpy storage type (np.uint16 holds bfloat16).
TOLERANCE = {np.float32: (1e-5, 1e-4), np.float64: (1e-10, 1e-9),
             np.float16: (2e-3, 1e-3), np.uint16: (1.6e-2, 8e-3)}
DTYPE_NAMES = ((np.float32, "f32"), (np.float64, "f64"), (np.float16, "f16"),
               (np.uint16, "bf16"))


class Stats:
    """Compared values and the worst error, per dtype, for the summary."""

    def __init__(self):
        self.count = {dt: 0 for dt, _ in DTYPE_NAMES}
        self.worst_abs = {dt: 0.0 for dt, _ in DTYPE_NAMES}
        self.worst_rel = {dt: 0.0 for dt, _ in DTYPE_NAMES}
        self.worst_used = {dt: 0.0 for dt, _ in DTYPE_NAMES}  # err / allowed
        self.steps = 0
        self.layers = set()


STATS = Stats()


def assert_close(case, what, got, want, dtype):
    got = np.asarray(got, dtype=np.float64).ravel()
    want = np.asarray(want, dtype=np.float64).ravel()
    case.assertEqual(got.shape, want.shape, what)
    atol, rtol = TOLERANCE[dtype]
    err = np.abs(got - want)
    limit = atol + rtol * np.abs(want)
    bad = ~(err <= limit)
    STATS.count[dtype] += got.size
    if got.size:
        STATS.worst_abs[dtype] = max(STATS.worst_abs[dtype], float(err.max()))
        rel = err / np.maximum(np.abs(want), 1e-3)
        STATS.worst_rel[dtype] = max(STATS.worst_rel[dtype], float(rel.max()))
        STATS.worst_used[dtype] = max(STATS.worst_used[dtype], float((err / limit).max()))
    if bad.any():
        i = int(np.argmax(np.where(bad, err / limit, 0)))
        case.fail(f"{what}: {int(bad.sum())} of {got.size} values differ; "
                  f"worst [{i}] got {got[i]!r} want {want[i]!r}")


def torch_module(info):
    cls = {1: torch.nn.BatchNorm1d, 2: torch.nn.BatchNorm2d,
           3: torch.nn.BatchNorm3d}[info.spatial_rank]
    momentum = None if info.momentum_is_none else info.momentum
    return cls(info.num_features, eps=info.eps, momentum=momentum,
               affine=bool(info.affine),
               track_running_stats=bool(info.track_running_stats)).double()


def shapes_for(rank, c):
    """Batch shapes of a sequence: sizes change, n = 2 appears, 1d has (N, C)."""
    return {1: [(4, c), (3, c, 5), (2, c), (5, c, 9)],
            2: [(2, c, 5, 7), (3, c, 4, 4), (2, c, 1, 1), (1, c, 3, 6)],
            3: [(2, c, 3, 4, 5), (3, c, 2, 3, 3), (2, c, 1, 1, 1),
                (1, c, 2, 3, 2)]}[rank]


class Runner:
    """One normc layer and its torch twin, stepped together."""

    def __init__(self, case, name, seed=0, target="cpu"):
        self.case = case
        self.ours = LIBRARY.layer(name, target)
        self.info = self.ours.info
        self.dtype = self.ours.dtype
        self.torch = torch_module(self.info)
        self.rng = np.random.default_rng(seed)
        STATS.layers.add(name)

    def randomize_parameters(self):
        """Random weight and bias, written through our state views."""
        if not self.info.affine:
            return
        c = self.info.num_features
        self.ours.state("weight")[:] = self.rng.uniform(-1.5, 1.5, c)
        self.ours.state("bias")[:] = self.rng.uniform(-1.5, 1.5, c)
        with torch.no_grad():
            self.torch.weight.copy_(torch.from_numpy(self.ours.state("weight").astype(np.float64)))
            self.torch.bias.copy_(torch.from_numpy(self.ours.state("bias").astype(np.float64)))

    def encode(self, values):
        """float64 values (logical N, C, ... order) -> the layer's storage:
        its dtype, and NHWC-style memory order for channels-last layers,
        returned as a strided view in logical order."""
        if self.dtype is np.uint16:
            stored = normrt.to_bfloat16(values)
        else:
            stored = values.astype(self.dtype)
        if self.info.channels_last and stored.ndim >= 3:
            order = (0,) + tuple(range(2, stored.ndim)) + (1,)
            inverse = np.argsort(order)
            stored = np.ascontiguousarray(stored.transpose(order)).transpose(inverse)
        return stored

    def decode(self, stored):
        """The layer's storage -> float64 in logical order."""
        if self.dtype is np.uint16:
            return normrt.from_bfloat16(stored).astype(np.float64)
        return np.asarray(stored, dtype=np.float64)

    def forward_ours(self, x):
        """Our layer's y for the stored tensor x (numpy, in and out)."""
        return self.ours.forward(x)

    def backward_ours(self, x, dy):
        """Our layer's dx, dweight, dbias (numpy)."""
        return self.ours.backward(x, dy)

    def uses_batch_stats(self, training):
        return training or not self.info.track_running_stats

    def step(self, shape, training, mean=0.5, std=2.0):
        STATS.steps += 1
        c, dt, case = self.info.num_features, self.dtype, self.case
        where = f"{'train' if training else 'eval'} {shape}"
        x = self.encode(self.rng.normal(mean, std, shape))
        dy = self.encode(self.rng.normal(0.0, 1.0, shape))
        self.ours.train(training)
        self.torch.train(training)
        if not training and self.info.track_running_stats:
            with torch.no_grad():  # eval reads the statistics as stored
                self.torch.running_mean.copy_(torch.from_numpy(self.ours.state("running_mean").astype(np.float64)))
                self.torch.running_var.copy_(torch.from_numpy(self.ours.state("running_var").astype(np.float64)))

        y = self.forward_ours(x)
        xt = torch.from_numpy(self.decode(x))
        with torch.no_grad():
            yt = self.torch(xt)
        assert_close(case, f"y ({where})", self.decode(y), yt.numpy(), dt)

        if self.uses_batch_stats(training):
            _, save_mean, save_invstd = torch.native_batch_norm(
                xt, None, None, None, None, True, 0.0, self.info.eps)
            assert_close(case, f"save_mean ({where})", self.ours.state("save_mean"), save_mean.numpy(), dt)
            assert_close(case, f"save_invstd ({where})", self.ours.state("save_invstd"), save_invstd.numpy(), dt)
        if self.info.track_running_stats:
            assert_close(case, f"running_mean ({where})", self.ours.state("running_mean"),
                         self.torch.running_mean.numpy(), dt)
            assert_close(case, f"running_var ({where})", self.ours.state("running_var"),
                         self.torch.running_var.numpy(), dt)
            case.assertEqual(int(self.ours.state("num_batches_tracked")),
                             int(self.torch.num_batches_tracked), f"num_batches_tracked ({where})")

        dx, dw, db = self.backward_ours(x, dy)
        as64 = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
        dy64 = torch.from_numpy(self.decode(dy))
        weight = self.torch.weight.detach() if self.info.affine else None
        batch = self.uses_batch_stats(training)
        grads = torch.ops.aten.native_batch_norm_backward(
            dy64, xt, weight,
            None if batch else as64(self.ours.state("running_mean")),
            None if batch else as64(self.ours.state("running_var")),
            as64(self.ours.state("save_mean")) if batch else None,
            as64(self.ours.state("save_invstd")) if batch else None,
            batch, self.info.eps, [True, bool(self.info.affine), bool(self.info.affine)])
        assert_close(case, f"dx ({where})", self.decode(dx), grads[0].numpy(), dt)
        if self.info.affine:
            # Sums over n values per channel: allow for their count.
            n = x.size // c
            atol, rtol = TOLERANCE[dt]
            TOLERANCE[dt] = (atol * n, rtol)
            try:
                assert_close(case, f"dweight ({where})", dw, grads[1].numpy(), dt)
                assert_close(case, f"dbias ({where})", db, grads[2].numpy(), dt)
            finally:
                TOLERANCE[dt] = (atol, rtol)
        return self.decode(y)


def layer_names():
    return [name for name, _ in LIBRARY.layers()]


class Matrix(unittest.TestCase):
    """Every configuration: three train steps of changing batch size, eval,
    train again, and data far from zero."""


def make_matrix_test(name):
    def test(self):
        run = Runner(self, name, seed=zlib.crc32(name.encode()))
        run.randomize_parameters()
        shapes = shapes_for(run.info.spatial_rank, run.info.num_features)
        run.step(shapes[0], True)
        run.step(shapes[1], True, mean=-1.0, std=0.5)
        run.step(shapes[2], True, mean=3.0, std=1.5)   # n = 2, the smallest legal batch
        run.step(shapes[1], False)
        run.step(shapes[3], False)
        run.step(shapes[0], True, mean=0.25, std=1.0)
        run.step(shapes[1], True, mean=1e3, std=1.0)    # offset data (PyTorch issue 5410)
        run.step(shapes[1], False, mean=1e3, std=1.0)
    return test


class Errors(unittest.TestCase):
    """Bad calls: both raise, our message has PyTorch's key phrase, and our
    state is unchanged."""

    def expect_both_fail(self, name, x, training=True):
        ours = LIBRARY.layer(name)
        theirs = torch_module(ours.info)
        ours.train(training)
        theirs.train(training)
        # Move the state away from its initial values first.
        rank, c = ours.info.spatial_rank, ours.info.num_features
        warm_shape = (4, c) + ((3,) * rank if rank > 1 else ())
        warm = np.random.default_rng(1).normal(size=warm_shape).astype(ours.dtype)
        ours.train(True)
        ours.forward(warm)
        ours.train(training)
        before = ours.snapshot()
        with self.assertRaises(Exception) as torch_error:
            theirs(torch.from_numpy(x.astype(np.float64)))
        with self.assertRaises(normrt.NormrtError) as our_error:
            ours.forward(x)
        key = str(torch_error.exception).split(", got input size")[0]
        self.assertIn(key, str(our_error.exception))
        after = ours.snapshot()
        self.assertEqual(before.keys(), after.keys())
        for k in before:
            np.testing.assert_array_equal(before[k], after[k], err_msg=k)

    def test_rank(self):
        self.expect_both_fail("c2d_at_m01_e5_f32", np.zeros((2, 3, 4), np.float32))
        self.expect_both_fail("c1d_at_m01_e5_f32", np.zeros((2, 3, 4, 4), np.float32))
        self.expect_both_fail("c3d_at_m01_e5_f64", np.zeros((2, 3, 4, 4), np.float64))
        self.expect_both_fail("c1d_at_m01_e5_f64", np.zeros((3,), np.float64))

    def test_channels(self):
        self.expect_both_fail("c2d_at_m01_e5_f32", np.zeros((2, 5, 4, 4), np.float32))
        self.expect_both_fail("c2d_au_m01_e5_f32", np.zeros((2, 5, 4, 4), np.float32))
        self.expect_both_fail("c1d_at_mN_e2_f64", np.zeros((2, 7), np.float64), training=False)

    def test_one_value_per_channel_in_training(self):
        self.expect_both_fail("c1d_at_m01_e5_f32", np.ones((1, 3), np.float32))
        self.expect_both_fail("c2d_nt_m07_e5_f64", np.ones((1, 3, 1, 1), np.float64))
        self.expect_both_fail("c3d_au_m01_e5_f32", np.ones((1, 3, 1, 1, 1), np.float32))
        # Without running statistics eval mode uses batch statistics too.
        self.expect_both_fail("c2d_au_m01_e5_f32", np.ones((1, 3, 1, 1), np.float32), training=False)


class Examples(unittest.TestCase):
    """The examples of torch.nn.BatchNorm*d's documentation and common use."""

    def test_batchnorm2d_100_and_affine_false(self):
        for name in ("doc_bn2d", "doc_bn2d_noaffine"):
            run = Runner(self, name, seed=5)
            run.step((20, 100, 35, 45), True, mean=0.0, std=1.0)
            run.step((20, 100, 35, 45), False, mean=0.0, std=1.0)

    def test_batchnorm1d_100(self):
        run = Runner(self, "doc_bn1d", seed=6)
        run.step((20, 100), True, mean=0.0, std=1.0)
        run.step((20, 100), False, mean=0.0, std=1.0)

    def test_three_channels_normalize_then_eval(self):
        run = Runner(self, "rgb_bn", seed=7)
        y = run.step((2, 3, 4, 4), True, mean=5.0, std=3.0)
        for ch in range(3):
            self.assertLess(abs(float(y[:, ch].mean())), 1e-5)
            self.assertAlmostEqual(float(y[:, ch].std()), 1.0, delta=1e-3)
        run.step((2, 3, 4, 4), False, mean=5.0, std=3.0)

    def test_conv_bn_eval_has_no_batch_dependence(self):
        run = Runner(self, "conv_bn", seed=8)
        run.step((8, 64, 32, 32), True)
        run.step((8, 64, 32, 32), False)
        x = run.rng.normal(0.0, 1.0, (8, 64, 32, 32)).astype(np.float32)
        batch = run.ours.forward(x)
        alone = run.ours.forward(np.ascontiguousarray(x[3:4]))
        np.testing.assert_array_equal(batch[3:4], alone)

    def test_channels_last_and_bfloat16_resnet_layer(self):
        for name in ("conv_bn_nhwc", "conv_bn_bf16"):
            run = Runner(self, name, seed=10)
            run.randomize_parameters()
            run.step((8, 64, 16, 16), True)
            run.step((4, 64, 16, 16), True)
            run.step((8, 64, 16, 16), False)

    def test_wrong_rank_message(self):
        layer = LIBRARY.layer("conv_bn")
        with self.assertRaises(normrt.NormrtError) as error:
            layer.forward(np.zeros((8, 64, 32), np.float32))
        self.assertEqual(str(error.exception), "expected 4D input (got 3D input)")

    def test_channel_extremes(self):
        for name, shapes in (("one_channel", [(4, 1, 3, 3), (2, 1, 5, 1)]),
                             ("one_channel_f64", [(2, 1, 2, 3, 3), (3, 1, 1, 2, 2)]),
                             ("thousand", [(4, 1000), (2, 1000, 3)]),
                             ("thousand_f64", [(2, 1000, 2, 3), (3, 1000, 1, 1)])):
            run = Runner(self, name, seed=9)
            run.randomize_parameters()
            for shape in shapes:
                run.step(shape, True)
            run.step(shapes[0], False)


def summary():
    lines = [f"conformance: {len(STATS.layers)} layers, {STATS.steps} steps compared with torch"]
    for dt, label in DTYPE_NAMES:
        lines.append(f"  {label}: {STATS.count[dt]} values, worst |error| "
                     f"{STATS.worst_abs[dt]:.3e}, worst relative {STATS.worst_rel[dt]:.3e}"
                     f" (|x| >= 1e-3), worst error / tolerance {STATS.worst_used[dt]:.3f}")
    return "\n".join(lines)


def main():
    global LIBRARY
    path = sys.argv.pop(1) if len(sys.argv) > 1 else os.environ["NORMC_CONFORMANCE_LIB"]
    LIBRARY = normrt.Library(path)
    for name in layer_names():
        if name.startswith("c") and name[1].isdigit():
            setattr(Matrix, f"test_{name}", make_matrix_test(name))
    program = unittest.main(exit=False, verbosity=1)
    print(summary())
    sys.exit(0 if program.result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()

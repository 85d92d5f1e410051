"""The normalization family against PyTorch and the float64 formulas.

Drives a library made with `normc --shared` from specs/family.norm through
the normrt C ABI (ctypes). For every layer: forward in training mode (and
eval mode where the layer keeps running statistics), then backward, compared
with torch evaluated in float64 on the inputs as the layer saw them:
  InstanceNorm*d  torch.nn.functional.instance_norm (running statistics too)
  GroupNorm       torch.nn.functional.group_norm
  LayerNorm       torch.nn.functional.layer_norm (bias=False: no bias, the
                  torch 1.13 function with bias None is that formula)
  RMSNorm         x * rsqrt(mean(x^2) + eps) * w, the float64 formula (torch
                  1.13 has no RMSNorm); eps=None is the dtype's machine eps
  BatchNorm*d     torch.nn.functional.batch_norm
  epilogues       activation(norm(x) + residual) composed from torch ops
Gradients (dx, dresidual, dweight, dbias) come from torch autograd in
float64. The float64 layers' backward is also held to central finite
differences of the layer's own forward.

Usage: python3 test_family.py LIBRARY.so [TARGET]   (TARGET: cpu, or ocl for
the GPU schedules on OpenCL)

Tolerances (|ours - torch| <= atol + rtol * |torch|): f64 1e-9/1e-8 (f64
everywhere, sums in another order); f32 1e-4/1e-4 (f64 accumulation, f32
rounding of results and of stored statistics, which later steps read);
f16 4e-3/4e-3 and bf16 3e-2/3e-2 (results rounded to 11 or 8 bits, f32
accumulation). A wrong formula (biased for unbiased variance, a missed mean
term in backward) is off by 1e-2 or more at these sizes.
"""

import os
import sys
import unittest

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "runtime", "python"))
import normrt  # noqa: E402

torch.set_num_threads(1)
LIBRARY = None
TARGET = "cpu"  # the target label whose layers are tested (cpu, ocl)
TOLERANCE = {np.float32: (1e-4, 1e-4), np.float64: (1e-9, 1e-8),
             np.float16: (4e-3, 4e-3), np.uint16: (3e-2, 3e-2)}
KINDS_WITH_RUNNING = ("BatchNorm", "InstanceNorm")


def storage_to_f64(a, dtype):
    if dtype is np.uint16:
        return normrt.from_bfloat16(a).astype(np.float64)
    return np.asarray(a, dtype=np.float64)


def f64_to_storage(a, dtype):
    if dtype is np.uint16:
        return normrt.to_bfloat16(a.astype(np.float32))
    return a.astype(dtype)


class FamilyLayer:
    """One layer, its torch reference and its inputs."""

    def __init__(self, name):
        self.layer = LIBRARY.layer(name, TARGET)
        info = self.layer.info
        self.info = info
        self.kind = info.kind.decode()
        self.dtype = self.layer.dtype
        self.param_shape = self.layer.param_shape()
        self.rng = np.random.default_rng(sum(map(ord, name)))

    def shape(self, batch=2):
        info = self.info
        if self.kind.startswith(("LayerNorm", "RMSNorm")):
            return (batch, 3) + self.param_shape
        rank = info.spatial_rank if info.spatial_rank > 0 else 2
        spatial = {1: (7,), 2: (5, 4), 3: (3, 4, 2)}[rank]
        return (batch, info.num_features) + spatial

    def array(self, shape, offset=0.0):
        """Random data of `shape` in the layer's layout (a strided view for
        channels-last layers), and its float64 value."""
        values = self.rng.standard_normal(shape) * 2.0 + offset
        stored = f64_to_storage(values, self.dtype)
        if self.info.channels_last and len(shape) >= 3:
            perm = (0,) + tuple(range(2, len(shape))) + (1,)
            inverse = np.argsort(perm)
            stored = np.ascontiguousarray(stored.transpose(perm)).transpose(inverse)
        return stored, storage_to_f64(stored, self.dtype)

    def like(self, x):
        out = np.empty(x.shape, x.dtype)
        if self.info.channels_last and x.ndim >= 3:
            perm = (0,) + tuple(range(2, x.ndim)) + (1,)
            out = np.empty(tuple(x.shape[i] for i in perm),
                           x.dtype).transpose(np.argsort(perm))
        return out

    def params(self):
        """Random weight and bias written into the layer's state."""
        w = b = None
        if self.info.affine:
            view = self.layer.state("weight")
            view[...] = self.rng.uniform(0.5, 1.5, view.shape)
            w = np.array(view, dtype=np.float64)
            if self.info.bias:
                view = self.layer.state("bias")
                view[...] = self.rng.uniform(-0.5, 0.5, view.shape)
                b = np.array(view, dtype=np.float64)
        return w, b

    def reference(self, x, z, w, b, training, running=None):
        """torch's forward in float64 (autograd-ready tensors)."""
        info = self.info
        eps = info.eps
        if self.kind.startswith("InstanceNorm"):
            rm, rv = running if running else (None, None)
            unbatched = x.dim() == info.spatial_rank + 1
            xin = x.unsqueeze(0) if unbatched else x
            y = F.instance_norm(xin, rm, rv, w, b,
                                use_input_stats=training or rm is None,
                                momentum=info.momentum, eps=eps)
            y = y.squeeze(0) if unbatched else y
        elif self.kind == "GroupNorm":
            y = F.group_norm(x, info.num_groups, w, b, eps)
        elif self.kind == "LayerNorm":
            y = F.layer_norm(x, self.param_shape, w, b, eps)
        elif self.kind == "RMSNorm":
            dims = tuple(range(x.dim() - len(self.param_shape), x.dim()))
            y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps)
            if w is not None:
                y = y * w
        else:
            rm, rv = running if running else (None, None)
            y = F.batch_norm(x, rm, rv, w, b, training=training or rm is None,
                             momentum=info.momentum, eps=eps)
        if z is not None:
            y = y + z
        if info.activation == 1:
            y = torch.relu(y)
        elif info.activation == 2:
            y = F.silu(y)
        return y


class FamilyTest(unittest.TestCase):
    def check(self, what, ours, ref, dtype):
        atol, rtol = TOLERANCE[dtype]
        ours = np.asarray(ours, dtype=np.float64)
        ref = np.asarray(ref, dtype=np.float64).reshape(ours.shape)
        err = np.abs(ours - ref) - (atol + rtol * np.abs(ref))
        worst = int(np.argmax(err))
        self.assertLessEqual(
            err.flat[worst], 0.0,
            "%s: %r vs torch %r at %d" % (what, ours.flat[worst],
                                          ref.flat[worst], worst))

    def run_layer(self, name):
        L = FamilyLayer(name)
        info, dtype = L.info, L.dtype
        w, b = L.params()
        tracked = info.track_running_stats and L.kind.startswith(KINDS_WITH_RUNNING)
        rm = torch.zeros(info.num_features, dtype=torch.float64)
        rv = torch.ones(info.num_features, dtype=torch.float64)
        steps = [(True, 0.0), (True, 3.0)] + ([(False, 1.0)] if tracked else [])
        for training, offset in steps:
            L.layer.train(training)
            shape = L.shape()
            x, x64 = L.array(shape, offset)
            z = z64 = None
            if info.residual:
                z, z64 = L.array(shape)
            y = L.like(x)
            L.layer.forward(x, out=y, residual=z)
            xt = torch.tensor(x64, requires_grad=True)
            zt = torch.tensor(z64, requires_grad=True) if z is not None else None
            wt = torch.tensor(w, requires_grad=True) if w is not None else None
            bt = torch.tensor(b, requires_grad=True) if b is not None else None
            running = (rm, rv) if tracked else None
            yt = L.reference(xt, zt, wt, bt, training, running)
            self.check(name + " y", storage_to_f64(y, dtype), yt.detach(), dtype)
            if tracked:
                self.check(name + " running_mean", L.layer.state("running_mean"),
                           rm, dtype)
                self.check(name + " running_var", L.layer.state("running_var"),
                           rv, dtype)
            dy, dy64 = L.array(shape)
            yt.backward(torch.tensor(dy64))
            grads = L.layer.backward(x, dy, residual=z)
            self.check(name + " dx", storage_to_f64(grads[0], dtype),
                       xt.grad, dtype)
            if wt is not None:
                self.check(name + " dweight", grads[1], wt.grad, dtype)
            if bt is not None:
                self.check(name + " dbias", grads[2], bt.grad, dtype)
            if zt is not None:
                self.check(name + " dresidual", storage_to_f64(grads[3], dtype),
                           zt.grad, dtype)
        if dtype is np.float64:
            self.finite_differences(L, name)

    def finite_differences(self, L, name):
        """d/dx and d/dresidual of sum(y * dy) by central differences of
        the layer's own forward, against its backward."""
        L.layer.train(True)
        shape = L.shape()
        x, _ = L.array(shape)
        z = L.array(shape)[0] if L.info.residual else None
        dy, _ = L.array(shape)

        def loss(xv, zv):
            y = L.layer.forward(xv, out=L.like(xv), residual=zv)
            return float(np.sum(y * dy))

        loss(x, z)
        grads = L.layer.backward(x, dy, residual=z)
        h = 1e-6
        for target, grad in ((x, grads[0]),) + (((z, grads[3]),) if z is not None else ()):
            for flat in L.rng.choice(target.size, size=6, replace=False):
                index = np.unravel_index(flat, target.shape)
                saved = target[index]
                target[index] = saved + h
                up = loss(x, z)
                target[index] = saved - h
                down = loss(x, z)
                target[index] = saved
                numeric = (up - down) / (2 * h)
                self.assertAlmostEqual(grad[index], numeric, delta=1e-5 + 1e-5 * abs(numeric),
                                       msg="%s finite differences at %s" % (name, index))

    def test_unbatched_instance_norm(self):
        L = FamilyLayer("in1")
        x, x64 = L.array((5, 7))
        y = L.layer.forward(x)
        ref = F.instance_norm(torch.tensor(x64).unsqueeze(0), eps=L.info.eps).squeeze(0)
        self.check("in1 unbatched", y, ref, np.float32)

    def test_errors_in_torch_words(self):
        ln = LIBRARY.layer("ln", TARGET)
        with self.assertRaisesRegex(normrt.NormrtError, r"Given normalized_shape=\[5, 3\], expected input with shape \[\*, 5, 3\]"):
            ln.forward(np.zeros((2, 3, 4), np.float32))
        gn = LIBRARY.layer("gn_noaff", TARGET)
        with self.assertRaisesRegex(normrt.NormrtError, "divisible by num_groups"):
            # 1 group divides everything: GroupNorm(2, 6) does not take 5.
            LIBRARY.layer("gn", TARGET).forward(np.zeros((2, 5, 3), np.float32))
        with self.assertRaisesRegex(normrt.NormrtError, "residual=true"):
            gn.forward(np.zeros((2, 6, 3), np.float32))
        inl = LIBRARY.layer("in2_at", TARGET)
        with self.assertRaisesRegex(normrt.NormrtError, "more than 1 spatial element"):
            inl.forward(np.zeros((2, 4, 1, 1), np.float32))


def add_layer_tests():
    """A test per layer of the library on TARGET (f16 layers are not built
    for OpenCL, whose pocl device has no cl_khr_fp16)."""
    for name, target in LIBRARY.layers():
        if target == TARGET:
            setattr(FamilyTest, "test_" + name,
                    lambda self, name=name: self.run_layer(name))


if __name__ == "__main__":
    path = sys.argv.pop(1) if len(sys.argv) > 1 else os.environ.get("NORMC_FAMILY_LIB")
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        TARGET = sys.argv.pop(1)
    LIBRARY = normrt.Library(path)
    add_layer_tests()
    unittest.main(verbosity=1)

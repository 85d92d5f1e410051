"""normrt.torch against torch itself: NormModule and its autograd Function.

    test_torch.py LIBRARY   (libtorchmods.so built from specs/torch.norm)

The normrt package is imported from PYTHONPATH (the build tree's python/ or
an installed prefix's share/normc/python).
"""

import sys
import unittest

import torch
import torch.nn.functional as F

import normrt
import normrt.torch as nt

LIBRARY = None
torch.manual_seed(0)


def lib():
    global LIBRARY
    if isinstance(LIBRARY, str):
        LIBRARY = normrt.load(LIBRARY)
    return LIBRARY


def rel_err(got, want):
    got, want = got.detach().double(), want.detach().double()
    scale = want.abs().max().item() or 1.0
    return (got - want).abs().max().item() / scale


# Layer name -> (input shape, torch module of the same configuration or None,
# residual, activation).
F64_LAYERS = {
    "bn1": ((5, 3), lambda: torch.nn.BatchNorm1d(3)),
    "bn1_nlc": ((4, 4, 3), lambda: torch.nn.BatchNorm1d(4, momentum=None)),
    "bn2": ((3, 3, 2, 3), lambda: torch.nn.BatchNorm2d(3)),
    "bn2_nhwc": ((2, 5, 3, 2), lambda: torch.nn.BatchNorm2d(5)),
    "bn2_noaff": ((3, 3, 2, 2), lambda: torch.nn.BatchNorm2d(3, affine=False)),
    "bn2_untracked": ((3, 3, 2, 2), lambda: torch.nn.BatchNorm2d(3, track_running_stats=False)),
    "bn3": ((2, 2, 2, 2, 3), lambda: torch.nn.BatchNorm3d(2, momentum=None)),
    "bn2_res_relu": ((2, 4, 3, 2), lambda: torch.nn.BatchNorm2d(4)),
    "in1": ((2, 3, 5), lambda: torch.nn.InstanceNorm1d(3)),
    "in2_at": ((2, 3, 3, 3), lambda: torch.nn.InstanceNorm2d(3, affine=True,
                                                             track_running_stats=True)),
    "gn": ((2, 6, 2, 2), lambda: torch.nn.GroupNorm(2, 6)),
    "gn_nhwc_silu": ((2, 4, 3, 2), lambda: torch.nn.GroupNorm(2, 4)),
    "ln": ((3, 2, 4, 3), lambda: torch.nn.LayerNorm([4, 3])),
    "ln_nobias": ((4, 5), None),
    "rms": ((3, 2, 6), None),
}


def reference(name, module, x, residual=None):
    """What torch computes for layer `name`, given module `module` (torch's,
    with the same state) or the formula where torch 1.13 has no module."""
    if name == "ln_nobias":
        mean = x.mean(-1, keepdim=True)
        var = x.var(-1, unbiased=False, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * module.weight
    if name == "rms":
        eps = torch.finfo(x.dtype).eps
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * module.weight
    y = module(x)
    if name == "bn2_res_relu":
        y = torch.relu(y + residual)
    if name == "gn_nhwc_silu":
        y = F.silu(y)
    return y


class Gradcheck(unittest.TestCase):
    """torch.autograd.gradcheck in float64 for every configuration class,
    in training and (where the layer tracks statistics) in eval mode."""

    def check(self, name, training):
        m = lib().module(name)
        m.train(training)
        shape = F64_LAYERS[name][0]
        x = torch.randn(*shape, dtype=torch.float64) * 2 + 0.5
        if m.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        inputs = [x]
        if m.residual:
            inputs.append(torch.randn(*shape, dtype=torch.float64, requires_grad=True))
        params = [p for p in (m.weight, m.bias) if p is not None]
        with torch.no_grad():
            for p in params:  # away from 1 and 0
                p.copy_(torch.randn(p.shape, dtype=p.dtype))
        if not training and m.track_running_stats:
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.running_mean.shape, dtype=torch.float64))
                m.running_var.copy_(torch.rand(m.running_var.shape, dtype=torch.float64) + 0.5)

        def fn(*args):
            return m(args[0], args[1] if m.residual else None)

        self.assertTrue(torch.autograd.gradcheck(fn, tuple(inputs + params), eps=1e-6,
                                                 atol=1e-7, rtol=1e-5))

    def test_training(self):
        for name in F64_LAYERS:
            with self.subTest(name=name):
                self.check(name, True)

    def test_eval(self):
        for name in F64_LAYERS:
            with self.subTest(name=name):
                self.check(name, False)


class AgainstTorch(unittest.TestCase):
    def test_forward_backward_and_state_match_torch(self):
        """Every f64 layer and torch's module (state copied): outputs,
        gradients and running statistics over three training steps, then
        an eval step."""
        for name, (shape, make) in F64_LAYERS.items():
            with self.subTest(name=name):
                m = lib().module(name)
                t = make().double() if make else None
                if t is None:  # the formula's parameters are m's
                    t = m
                else:
                    t.load_state_dict(m.state_dict())
                    with torch.no_grad():
                        for p, q in zip(t.parameters(), m.parameters()):
                            p.copy_(torch.randn(p.shape, dtype=p.dtype))
                            q.copy_(p)
                for step in range(4):
                    if step == 3:
                        m.eval()
                        t.eval()
                    x = torch.randn(*shape, dtype=torch.float64) * (1 + step) + step
                    z = torch.randn(*shape, dtype=torch.float64) if m.residual else None
                    xa = x.clone().requires_grad_(True)
                    xb = x.clone().requires_grad_(True)
                    ya = m(xa, z)
                    yb = reference(name, t, xb, z)
                    self.assertLess(rel_err(ya, yb), 1e-12, "y, step %d" % step)
                    g = torch.randn(*shape, dtype=torch.float64)
                    params = [p for p in m.parameters()]
                    ref_params = [p for p in t.parameters()] if t is not m else []
                    grads = torch.autograd.grad(ya, [xa] + params, g)
                    if t is m:
                        continue
                    want = torch.autograd.grad(yb, [xb] + ref_params, g)
                    for i, (a, b) in enumerate(zip(grads, want)):
                        self.assertLess(rel_err(a, b), 1e-11, "grad %d, step %d" % (i, step))
                    for buf in ("running_mean", "running_var"):
                        if getattr(t, buf, None) is not None:
                            self.assertLess(rel_err(getattr(m, buf), getattr(t, buf)), 1e-12,
                                            buf)
                    if getattr(t, "num_batches_tracked", None) is not None and \
                            name.startswith("bn"):
                        self.assertEqual(int(m.num_batches_tracked), int(t.num_batches_tracked))

    def test_two_batches_before_one_backward(self):
        """The same module on two batches (of different sizes), one loss,
        one backward: each batch's gradients come from its own forward's
        statistics, as with torch's module."""
        for name in ("bn2", "bn2_nhwc", "gn", "in2_at"):
            with self.subTest(name=name):
                m = lib().module(name)
                t = F64_LAYERS[name][1]().double()
                t.load_state_dict(m.state_dict())
                shape = F64_LAYERS[name][0]
                x1 = torch.randn(*shape, dtype=torch.float64)
                x2 = torch.randn(shape[0] + 2, *shape[1:], dtype=torch.float64) * 3 + 1
                g1, g2 = torch.randn_like(x1), torch.randn_like(x2)
                inputs = []
                for module in (m, t):
                    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
                    loss = (module(a) * g1).sum() + (module(b) * g2).sum()
                    loss.backward()
                    inputs.append((a.grad, b.grad, [p.grad for p in module.parameters()]))
                (ma, mb, mp), (ta, tb, tp) = inputs
                self.assertLess(rel_err(ma, ta), 1e-11)
                self.assertLess(rel_err(mb, tb), 1e-11)
                for a, b in zip(mp, tp):
                    self.assertLess(rel_err(a, b), 1e-11)
                if m.track_running_stats:
                    self.assertLess(rel_err(m.running_var, t.running_var), 1e-12)

    def test_optimizer_steps_on_bound_parameters(self):
        """SGD with momentum updates the Parameters in place; the layer uses
        the new values at the next step, as torch's module does."""
        m = lib().module("bn2")
        t = torch.nn.BatchNorm2d(3).double()
        t.load_state_dict(m.state_dict())
        om = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
        ot = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9)
        for step in range(5):
            x = torch.randn(4, 3, 3, 3, dtype=torch.float64) + step
            target = torch.randn(4, 3, 3, 3, dtype=torch.float64)
            for module, opt in ((m, om), (t, ot)):
                opt.zero_grad()
                F.mse_loss(module(x), target).backward()
                opt.step()
        for a, b in zip(list(m.parameters()) + list(m.buffers()),
                        list(t.parameters()) + list(t.buffers())):
            self.assertLess(rel_err(a, b), 1e-12)
        self.assertEqual(int(m.num_batches_tracked), 5)
        self.assertNotEqual(float(m.weight[0]), 1.0)


class StateDict(unittest.TestCase):
    def test_round_trips_with_torch_batchnorm(self):
        """torch -> normrt and normrt -> torch, f32 layers of each rank:
        same keys, values and results."""
        cases = {"bn1_f32": (torch.nn.BatchNorm1d(3), (6, 3)),
                 "bn2_f32": (torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.2), (3, 4, 3, 3)),
                 "bn3_f32": (torch.nn.BatchNorm3d(2), (2, 2, 3, 2, 2)),
                 "bn2_nhwc_f32": (torch.nn.BatchNorm2d(4), (3, 4, 3, 3))}
        for name, (t, shape) in cases.items():
            with self.subTest(name=name):
                # Give torch's module a history, then move it into normrt.
                for _ in range(3):
                    t(torch.randn(*shape))
                with torch.no_grad():
                    t.weight.mul_(1.5)
                    t.bias.add_(0.25)
                m = lib().module(name)
                self.assertEqual(list(m.state_dict().keys()), list(t.state_dict().keys()))
                m.load_state_dict(t.state_dict())
                for key, value in t.state_dict().items():
                    self.assertTrue(torch.equal(m.state_dict()[key], value), key)
                x = torch.randn(*shape)
                if m.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                self.assertLess(rel_err(m(x), t(x)), 1e-5)
                m.eval()
                t.eval()
                self.assertLess(rel_err(m(x), t(x)), 1e-5)
                # And back: a fresh torch module takes normrt's state.
                back = type(t)(t.num_features, eps=t.eps, momentum=t.momentum)
                back.load_state_dict(m.state_dict())
                for key, value in m.state_dict().items():
                    self.assertTrue(torch.equal(back.state_dict()[key], value), key)
                self.assertEqual(int(back.num_batches_tracked), 4)

    def test_bf16_layer_keeps_f32_state(self):
        m = lib().module("bn2_bf16")
        t = torch.nn.BatchNorm2d(4)
        m.load_state_dict(t.state_dict())
        self.assertEqual(m.weight.dtype, torch.float32)
        x = torch.randn(2, 4, 3, 3)
        y = m(x.bfloat16())
        self.assertEqual(y.dtype, torch.bfloat16)
        self.assertLess(rel_err(y.float(), t(x.bfloat16().float())), 2e-2)

    def test_moved_state_is_rebound(self):
        """Assigning new tensors (what .to() and friends do) rebinds them."""
        m = lib().module("bn2")
        with torch.no_grad():
            m.running_mean = torch.full((3,), 2.0, dtype=torch.float64)
            m.weight = torch.nn.Parameter(torch.full((3,), 3.0, dtype=torch.float64))
        m.eval()
        x = torch.randn(2, 3, 2, 2, dtype=torch.float64)
        want = (x - 2.0) / torch.sqrt(torch.tensor(1 + 1e-5, dtype=torch.float64)) * 3.0
        self.assertLess(rel_err(m(x), want), 1e-12)
        m.train()
        m(x)
        self.assertEqual(int(m.num_batches_tracked), 1)
        self.assertNotEqual(float(m.running_mean[0]), 2.0)


class Copies(unittest.TestCase):
    def test_deepcopy_and_pickle(self):
        """copy.deepcopy gives a new layer with the same state (then
        independent); torch.save/torch.load of the module makes it again
        from the library's path."""
        import copy
        import io
        m = lib().module("bn2")
        x = torch.randn(3, 3, 2, 2, dtype=torch.float64)
        m(x)
        with torch.no_grad():
            m.weight.fill_(2.0)
        for name in ("deepcopy", "pickle"):
            with self.subTest(name=name):
                if name == "deepcopy":
                    c = copy.deepcopy(m)
                else:
                    buffer = io.BytesIO()
                    torch.save(m, buffer)
                    buffer.seek(0)
                    c = torch.load(buffer)
                self.assertIsNot(c._layer, m._layer)
                for key, value in m.state_dict().items():
                    self.assertTrue(torch.equal(c.state_dict()[key], value), key)
                    self.assertNotEqual(c.state_dict()[key].data_ptr(), value.data_ptr())
                m.eval()
                c.eval()
                self.assertTrue(torch.equal(c(x), m(x)))
                m.train()
                c.train()
                c(x * 3)  # the copy's statistics move, the original's do not
                self.assertEqual(int(m.num_batches_tracked), 1)
                self.assertEqual(int(c.num_batches_tracked), 2)


class Layouts(unittest.TestCase):
    def test_channels_last_and_contiguous_inputs(self):
        m = lib().module("bn2_nhwc")
        t = torch.nn.BatchNorm2d(5).double()
        x = torch.randn(2, 5, 3, 4, dtype=torch.float64)
        for fmt in (torch.channels_last, torch.contiguous_format):
            with self.subTest(format=str(fmt)):
                y = m(x.contiguous(memory_format=fmt))
                self.assertTrue(y.is_contiguous(memory_format=torch.channels_last))
                self.assertLess(rel_err(y, t(x)), 1e-12)


class Forms(unittest.TestCase):
    def test_dtypes_and_layouts_of_one_layer(self):
        """A layer compiled for f32 and bf16 in NCHW and NHWC: inputs of
        each are used as they are (outputs in the input's layout), the forms
        share one state, and torch's module agrees."""
        m = lib().module("bn2_forms")
        self.assertEqual(m.forms, [(torch.float32, False), (torch.float32, True),
                                   (torch.bfloat16, False), (torch.bfloat16, True)])
        t = torch.nn.BatchNorm2d(4)
        for step, fmt in enumerate((torch.contiguous_format, torch.channels_last) * 2):
            x = (torch.randn(3, 4, 3, 5) * (1 + step) + step).contiguous(memory_format=fmt)
            if step >= 2:  # bf16: compare with torch on the same rounded values
                x = x.bfloat16()
            y = m(x)
            self.assertEqual(y.dtype, x.dtype)
            self.assertTrue(y.is_contiguous(memory_format=fmt))
            want = t(x.float())
            self.assertLess(rel_err(y, want), 2e-2 if step >= 2 else 1e-5, "step %d" % step)
            self.assertLess(rel_err(m.running_var, t.running_var), 1e-5)
        self.assertEqual(int(m.num_batches_tracked), 4)
        with self.assertRaises(normrt.NormrtError) as cm:
            m(torch.randn(3, 4, 3, 5, dtype=torch.float64))
        self.assertIn("has no form for an input of dtype float64", str(cm.exception))
        # A model moved to bf16 keeps the layer's f32 state and runs its bf16 forms.
        model = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 1), m).to(torch.bfloat16)
        self.assertEqual(model[0].weight.dtype, torch.bfloat16)
        self.assertEqual(m.weight.dtype, torch.float32)
        y = model(torch.randn(3, 4, 3, 5, dtype=torch.bfloat16))
        self.assertEqual(y.dtype, torch.bfloat16)
        self.assertEqual(int(m.num_batches_tracked), 5)


class Specs(unittest.TestCase):
    def test_spec_from_model(self):
        """One layer per normalization module, named by its path, with the
        module's arguments; lists for dtypes and both layouts."""
        model = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8, eps=1e-3, momentum=None),
            torch.nn.Sequential(torch.nn.GroupNorm(2, 8), torch.nn.InstanceNorm2d(8)),
            torch.nn.LayerNorm([5, 5], elementwise_affine=False))
        text = nt.spec_from_model(model)
        self.assertIn('target cpu = "host"', text)
        self.assertIn("layer _1 = BatchNorm2d(8, eps=0.001, momentum=None, affine=true, "
                      "track_running_stats=true, dtype=f32)", text)
        self.assertIn("layer _2_0 = GroupNorm(2, 8, eps=1e-05, affine=true, dtype=f32)", text)
        self.assertIn("layer _2_1 = InstanceNorm2d(8, eps=1e-05, momentum=0.1, affine=false, "
                      "track_running_stats=false, dtype=f32)", text)
        self.assertIn("layer _3 = LayerNorm([5, 5], eps=1e-05, elementwise_affine=false, "
                      "dtype=f32)", text)
        self.assertEqual(text.count("\nlayer "), 4)
        both = nt.spec_from_model(model.double(), layout="both",
                                  dtypes=[torch.float32, torch.bfloat16])
        self.assertIn("dtype=[f32, bf16], layout=[NCHW, NHWC])", both)
        self.assertIn("layer _3 = LayerNorm([5, 5], eps=1e-05, elementwise_affine=false, "
                      "dtype=[f32, bf16])", both)
        self.assertIn("dtype=f64", nt.spec_from_model(model))


class Misuse(unittest.TestCase):
    """Wrong inputs raise NormrtError with normrt's (PyTorch's) words."""

    def raises(self, text, fn):
        with self.assertRaises(normrt.NormrtError) as cm:
            fn()
        self.assertIn(text, str(cm.exception))

    def test_wrong_dtype_shape_and_device(self):
        m = lib().module("bn2")
        before = {k: v.clone() for k, v in m.state_dict().items()}
        self.raises("input has dtype float32, but the layer expects float64",
                    lambda: m(torch.randn(2, 3, 2, 2)))
        self.raises("running_mean should contain 4 elements not 3",
                    lambda: m(torch.randn(2, 4, 2, 2, dtype=torch.float64)))
        self.raises("expected 4D input (got 3D input)",
                    lambda: m(torch.randn(2, 3, 2, dtype=torch.float64)))
        self.raises("Expected more than 1 value per channel when training",
                    lambda: m(torch.randn(1, 3, 1, 1, dtype=torch.float64)))
        self.raises("not tensors on device 'meta'",
                    lambda: m(torch.empty(2, 3, 2, 2, dtype=torch.float64, device="meta")))
        for key, value in m.state_dict().items():
            self.assertTrue(torch.equal(value, before[key]), key)

    def test_state_of_the_wrong_dtype(self):
        m = lib().module("bn2_f32")
        m.double()  # the state keeps the layer's parameter dtype
        self.assertEqual(m.weight.dtype, torch.float32)
        self.assertEqual(m.running_var.dtype, torch.float32)
        self.raises("input has dtype float64, but the layer expects float32",
                    lambda: m(torch.randn(2, 4, 2, 2, dtype=torch.float64)))
        with torch.no_grad():  # a tensor of another dtype put in by hand
            m.weight = torch.nn.Parameter(torch.ones(4, dtype=torch.float64))
        self.raises("weight has dtype float64, but the layer expects float32",
                    lambda: m(torch.randn(2, 4, 2, 2)))

    def test_unknown_layer_and_bad_library(self):
        self.raises("no_such_layer", lambda: lib().module("no_such_layer"))
        self.raises("cannot load normc library", lambda: normrt.load("/nonexistent/libx.so"))

    def test_closed_library(self):
        closed = normrt.load(lib().path)
        m = closed.module("bn1")
        x = torch.randn(4, 3, dtype=torch.float64)
        m(x)
        closed.close()
        self.raises("has been closed", lambda: m(x))
        self.raises("has been closed", lambda: closed.module("bn1"))


if __name__ == "__main__":
    LIBRARY = sys.argv.pop(1)
    unittest.main(verbosity=1)

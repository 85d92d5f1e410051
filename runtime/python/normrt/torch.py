"""normrt layers as torch.nn.Modules, specs from torch models, conversion.

    import normrt, normrt.torch
    spec = normrt.torch.spec_from_model(model)           # .norm text
    # normc model.norm --shared -o build/            -> libmodel.so
    lib = normrt.load("build/libmodel.so")
    normrt.torch.convert(model, lib)                     # swaps the norm modules

or, the three steps at once, `lib = normrt.torch.compile_model(model, "build")`.

A module made by `lib.module(name)` (NormModule) has the parameters and
buffers of the torch.nn class of its kind, with torch's names and shapes
(`weight`, `bias`, `running_mean`, `running_var`, `num_batches_tracked`), so
state_dict() and load_state_dict() go both ways between it and torch's
module. They are ordinary torch tensors bound to the normrt layer as its
storage (normrt_layer_bind_state): the kernels read them and write the
running statistics into them, with no copies. Replacing them (`.to()`,
assigning new tensors) is noticed at the next call, which binds the new
tensors, or fails with normrt's message when the layer cannot take them.
Dtype conversions of a model (`.double()`, `.to(torch.bfloat16)`) leave
them in the layer's parameter dtype, which normc's kernels need. train()/eval() are the layer's
modes. Autograd goes through a torch.autograd.Function whose forward keeps
the saved statistics in the graph (normrt_layer_forward_saved), so one
module may be applied to several batches before one backward.

A layer compiled with several dtypes or layouts (dtype=[f32, bf16],
layout=[NCHW, NHWC]) takes inputs of each of its dtypes. Inputs may be in
any memory format: one dense in a layout the layer has for the input's dtype
is used as it is, others are made dense in the first such layout; outputs
are in the layout used. Modules run CPU layers; a CUDA or OpenCL layer is
refused when the module is made.

A SyncBatchNorm layer (from a torch.nn.SyncBatchNorm) sums its statistics
and its gradient sums over torch.distributed's group (`process_group`; None
is the default group) in training mode when the group has more than one
process, through normrt's allreduce hook and dist.all_reduce; otherwise it
normalizes its own batch, as torch's module does.
"""

import ctypes
import os
import shutil
import subprocess

import torch

import normrt as _core

_TORCH_DTYPE = {_core.FLOAT32: torch.float32, _core.FLOAT64: torch.float64,
                _core.FLOAT16: torch.float16, _core.BFLOAT16: torch.bfloat16,
                _core.INT64: torch.int64}
_NORMRT_DTYPE = {v: k for k, v in _TORCH_DTYPE.items()}
_SPEC_DTYPE = {torch.float32: "f32", torch.float64: "f64",
               torch.float16: "f16", torch.bfloat16: "bf16"}
# The state a client may own, in normrt's (and torch's) names.
_STATE = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


_SHAPE = ctypes.c_int64 * 8


def _tensor(t):
    """A normrt_tensor for the torch tensor `t`, strides included."""
    device = t.device.type
    if device not in ("cpu", "cuda"):
        raise _core.NormrtError("normrt takes CPU and CUDA tensors, not tensors on device '%s'"
                                % t.device)
    dtype = _NORMRT_DTYPE.get(t.dtype)
    if dtype is None:
        raise _core.NormrtError("normrt has no dtype %s" % t.dtype)
    ndim = t.dim()
    if ndim > 8:
        raise _core.NormrtError("normrt tensors have at most 8 dimensions, got %d" % ndim)
    return _core.Tensor(t.data_ptr(), ndim, _SHAPE(*t.shape), _SHAPE(*t.stride()), dtype,
                        1 if device == "cuda" else 0)


def _ptr(struct):
    return ctypes.pointer(struct) if struct is not None else None


class _NormFunction(torch.autograd.Function):
    """y = layer(x[, residual]) with weight and bias as inputs, so that
    autograd hands their gradients to the Parameters. The saved statistics
    live in the graph (ctx), not in the layer."""

    @staticmethod
    def forward(ctx, module, x, residual, weight, bias):
        layer = module._layer
        x = module._in_layout(x)
        residual = module._in_layout(residual) if residual is not None else None
        y = torch.empty_like(x)
        xt, yt = _tensor(x), _tensor(y)
        rt = _tensor(residual) if residual is not None else None
        # (SyncBatchNorm: one statistic per channel, also for an empty
        # share of a synchronized batch, which stats_count refuses.)
        count = module.num_features if module.kind == "SyncBatchNorm" \
            else layer.stats_count(xt)
        batch_stats = module.training or not module.track_running_stats
        n = count if batch_stats else 0
        mean = torch.empty(n, dtype=module.param_dtype)
        invstd = torch.empty(n, dtype=module.param_dtype)
        saved = _core.SavedStats(_tensor(mean), _tensor(invstd), -1, 0)
        layer.forward_saved(_core.ForwardArgs(_ptr(xt), _ptr(rt), _ptr(yt)), saved)
        ctx.module = module
        ctx.batch_stats = saved.batch_stats
        ctx.save_for_backward(x, residual, mean, invstd)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        module = ctx.module
        layer = module._layer
        x, residual, mean, invstd = ctx.saved_tensors
        module._sync_state()
        dy = module._in_layout(grad_output)
        dx = torch.empty_like(x)
        need = ctx.needs_input_grad  # module, x, residual, weight, bias
        dz = torch.empty_like(x) if residual is not None and need[2] else None
        dw = db = None
        if module._affine:
            shape = module._param_shape
            if need[3]:
                dw = torch.empty(shape, dtype=module.param_dtype)
            if module._has_bias and need[4]:
                db = torch.empty(shape, dtype=module.param_dtype)
        ts = [_tensor(t) if t is not None else None
              for t in (x, residual, dy, dx, dz, dw, db)]
        saved = _core.SavedStats(_tensor(mean), _tensor(invstd), ctx.batch_stats, 0)
        layer.backward_saved(_core.BackwardArgs(*[_ptr(t) for t in ts]), saved)
        return (None, dx if need[1] else None, dz, dw, db)


class NormModule(torch.nn.Module):
    """A layer of a normc library as a torch.nn.Module of its kind."""

    def __init__(self, library, name, target="cpu"):
        super().__init__()
        layer = library.layer(name, target)
        info = layer.info
        if info.device != 0:
            where = {1: "CUDA", 2: "OpenCL"}.get(info.device, "a device")
            raise _core.NormrtError(
                "layer '%s' on target '%s' runs on %s; normrt.torch modules run CPU layers "
                "(use normrt.Layer for device layers)" % (name, target, where))
        self._layer = layer
        self.layer_name = name
        self.target = target
        self.kind = info.kind.decode()
        self.eps = info.eps
        self.momentum = None if info.momentum_is_none else info.momentum
        self.track_running_stats = bool(info.track_running_stats)
        # (torch dtype, channels_last) of each compiled form.
        self.forms = [(_TORCH_DTYPE[d], cl) for d, cl in layer.forms()]
        self.channels_last = bool(info.channels_last)
        self.dtype = _TORCH_DTYPE[info.dtype]
        self.param_dtype = _TORCH_DTYPE[info.param_dtype]
        self.activation = {0: None, 1: "relu", 2: "silu"}[info.activation]
        self.residual = bool(info.residual)
        self._affine = bool(info.affine)
        self._has_bias = bool(info.affine and info.bias)
        self._param_shape = tuple(layer.param_shape())
        self._spatial_rank = info.spatial_rank
        # The attributes torch's module of this kind has.
        if self.kind.startswith(("BatchNorm", "InstanceNorm", "SyncBatchNorm")):
            self.num_features = info.num_features
            self.affine = self._affine
        if self.kind == "SyncBatchNorm":
            # torch.distributed's group to sync over (None: the default
            # group), as torch.nn.SyncBatchNorm's process_group.
            self.process_group = None
            self._synced_group = False
        elif self.kind == "GroupNorm":
            self.num_groups = info.num_groups
            self.num_channels = info.num_features
            self.affine = self._affine
        else:  # LayerNorm, RMSNorm
            self.normalized_shape = self._param_shape
            self.elementwise_affine = self._affine
        if self._affine:
            self.weight = torch.nn.Parameter(torch.ones(self._param_shape, dtype=self.param_dtype))
            if self._has_bias:
                self.bias = torch.nn.Parameter(torch.zeros(self._param_shape,
                                                           dtype=self.param_dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if self.track_running_stats:
            c = info.num_features
            self.register_buffer("running_mean", torch.zeros(c, dtype=self.param_dtype))
            self.register_buffer("running_var", torch.ones(c, dtype=self.param_dtype))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(buffer, None)
        # name -> (tensor, what it was bound as): the bound memory stays alive.
        self._bound = {}
        self._sync_state()
        self._layer_training = None
        self.train(self.training)

    def _apply(self, fn, *args, **kwargs):
        """Module.to() and friends, keeping the parameters and statistics in
        the layer's parameter dtype (f32 for f32, f16 and bf16 layers), as
        normc's kernels need: `model.to(torch.bfloat16)` changes the dtype
        of the activations, not of the normalization state."""
        super()._apply(fn, *args, **kwargs)
        for name in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(self, name, None)
            if t is None or t.dtype == self.param_dtype:
                continue
            with torch.no_grad():
                if isinstance(t, torch.nn.Parameter):
                    t.data = t.data.to(self.param_dtype)
                else:
                    self._buffers[name] = t.to(self.param_dtype)
        return self

    def _copy_into(self, new):
        """new (a fresh module of the same layer) with this one's state,
        mode and requires_grad flags."""
        new.load_state_dict(self.state_dict())
        new.train(self.training)
        for p, q in zip(self.parameters(), new.parameters()):
            q.requires_grad_(p.requires_grad)
        return new

    def __deepcopy__(self, memo):
        """A new layer of the same library with a copy of this one's state
        (copy.deepcopy of a model copies its normc modules this way)."""
        new = NormModule(self._layer.library, self.layer_name, self.target)
        memo[id(self)] = new
        return self._copy_into(new)

    def __reduce__(self):
        """Pickled (torch.save of a whole model) as the library's path, the
        layer's name and target, and its state: unpickling loads the library
        again and makes the layer."""
        state = {k: v.detach().clone() for k, v in self.state_dict().items()}
        return (_restore, (self._layer.library.path, self.layer_name, self.target, state,
                           self.training))

    def extra_repr(self):
        return "%s '%s' (target %s), eps=%g, momentum=%s, affine=%s, track_running_stats=%s, " \
               "dtype=%s%s" % (self.kind, self.layer_name, self.target, self.eps, self.momentum,
                               self._affine, self.track_running_stats, self.dtype,
                               ", channels_last" if self.channels_last else "")

    def train(self, mode=True):
        super().train(mode)
        self._sync_mode()
        return self

    def _sync_mode(self):
        if self._layer_training != self.training:
            self._layer.train(self.training)
            self._layer_training = self.training

    def _sync_state(self):
        """Binds each parameter and buffer that is not bound as it is now
        (new tensors after .to(), load_state_dict with assignment, ...)."""
        for name in _STATE:
            t = getattr(self, name, None)
            if t is None:
                continue
            key = (t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride()), t.device)
            bound = self._bound.get(name)
            if bound is not None and bound[1] == key:
                continue
            self._layer.bind_state(name, _tensor(t.detach()))
            self._bound[name] = (t, key)

    def _feature_dim(self, t):
        unbatched = self.kind.startswith("InstanceNorm") and t.dim() == self._spatial_rank + 1
        return 0 if unbatched else 1

    def _in_layout(self, t):
        """t, dense in a layout the layer has for t's dtype: as it is when
        it already is, else a copy in the first such layout."""
        layouts = [cl for dtype, cl in self.forms if dtype == t.dtype] or \
            [cl for _, cl in self.forms]
        if t.dim() < 3:
            return t.contiguous()
        c = self._feature_dim(t)
        order = [d for d in range(t.dim()) if d != c] + [c]
        inverse = [order.index(d) for d in range(t.dim())]
        for channels_last in layouts:
            if (t.permute(order) if channels_last else t).is_contiguous():
                return t
        if not layouts[0]:
            return t.contiguous()
        return t.permute(order).contiguous().permute(inverse)

    def _sync_processes(self):
        """SyncBatchNorm: in training mode with torch.distributed initialized
        and more than one process in the group, the layer's statistics and
        gradient sums are summed over the group with dist.all_reduce (as
        torch.nn.SyncBatchNorm); otherwise it normalizes its own batch."""
        import torch.distributed as dist
        group = None
        if self.training and dist.is_available() and dist.is_initialized():
            group = self.process_group or dist.group.WORLD
            if dist.get_world_size(group) < 2:
                group = None
        if group is self._synced_group:
            return
        self._layer.set_allreduce(_allreduce_over(group) if group is not None else None)
        self._synced_group = group

    def forward(self, input, residual=None):
        self._sync_state()
        self._sync_mode()
        if self.kind == "SyncBatchNorm":
            self._sync_processes()
        return _NormFunction.apply(self, input, residual, self.weight, self.bias)


def _allreduce_over(group):
    """normrt's allreduce hook as dist.all_reduce (sum) over `group`."""
    import torch.distributed as dist
    ctype = {_core.FLOAT64: ctypes.c_double, _core.FLOAT32: ctypes.c_float}

    def allreduce(data, count, dtype):
        values = (ctype[dtype] * count).from_address(data)
        dist.all_reduce(torch.frombuffer(values, dtype=_TORCH_DTYPE[dtype]), group=group)
        return 0
    return allreduce


def _restore(path, name, target, state, training):
    """Unpickles a NormModule (NormModule.__reduce__)."""
    module = NormModule(_core.load(path), name, target)
    module.load_state_dict(state)
    module.train(training)
    return module


# ---- Models -----------------------------------------------------------------

def _norm_kinds():
    """(torch class, normc kind), most derived first."""
    nn = torch.nn
    kinds = [(nn.BatchNorm1d, "BatchNorm1d"), (nn.BatchNorm2d, "BatchNorm2d"),
             (nn.BatchNorm3d, "BatchNorm3d"), (nn.InstanceNorm1d, "InstanceNorm1d"),
             (nn.InstanceNorm2d, "InstanceNorm2d"), (nn.InstanceNorm3d, "InstanceNorm3d"),
             (nn.GroupNorm, "GroupNorm"), (nn.LayerNorm, "LayerNorm"),
             (nn.SyncBatchNorm, "SyncBatchNorm")]
    if hasattr(nn, "RMSNorm"):
        kinds.append((nn.RMSNorm, "RMSNorm"))
    return kinds


def _kind_of(module):
    for cls, kind in _norm_kinds():
        if isinstance(module, cls):
            return kind
    return None


def layer_name(path):
    """The spec layer name of the module at `path` ("layer1.0.bn1" ->
    "layer1_0_bn1"; a leading digit gets an underscore before it)."""
    name = "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in path) or "_"
    if name[0].isdigit():
        name = "_" + name
    return name


def norm_modules(model):
    """(path, module, kind) of every normalization module of `model` that
    normc has a kind for."""
    out = []
    for path, module in model.named_modules():
        kind = _kind_of(module)
        if kind is not None and not isinstance(module, NormModule):
            out.append((path, module, kind))
    return out


def _number(value):
    return repr(float(value))


def _module_dtype(module):
    for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _spec_line(path, module, kind, layout, dtypes):
    dtypes = dtypes or [_module_dtype(module)]
    for dtype in dtypes:
        if dtype not in _SPEC_DTYPE:
            raise ValueError("module '%s' would have dtype %s, which normc does not compile"
                             % (path, dtype))
    args = []
    if kind.startswith(("BatchNorm", "InstanceNorm", "SyncBatchNorm")):
        momentum = "None" if module.momentum is None else _number(module.momentum)
        args += [str(module.num_features), "eps=" + _number(module.eps), "momentum=" + momentum,
                 "affine=" + str(bool(module.affine)).lower(),
                 "track_running_stats=" + str(bool(module.track_running_stats)).lower()]
    elif kind == "GroupNorm":
        args += [str(module.num_groups), str(module.num_channels), "eps=" + _number(module.eps),
                 "affine=" + str(bool(module.affine)).lower()]
    else:
        shape = "[" + ", ".join(str(int(e)) for e in module.normalized_shape) + "]"
        args += [shape]
        if module.eps is not None:
            args.append("eps=" + _number(module.eps))
        args.append("elementwise_affine=" + str(bool(module.elementwise_affine)).lower())
        if kind == "LayerNorm" and module.elementwise_affine and module.bias is None:
            args.append("bias=false")
    names = [_SPEC_DTYPE[d] for d in dtypes]
    args.append("dtype=" + (names[0] if len(names) == 1 else "[" + ", ".join(names) + "]"))
    rank = {"1d": 1, "2d": 2, "3d": 3}.get(kind[-2:])
    if layout != "contiguous" and kind.startswith(("BatchNorm", "InstanceNorm")) and rank:
        last = {1: "NLC", 2: "NHWC", 3: "NDHWC"}[rank]
        first = {1: "NCL", 2: "NCHW", 3: "NCDHW"}[rank]
        args.append("layout=" + (last if layout == "channels_last"
                                 else "[%s, %s]" % (first, last)))
    return "layer %s = %s(%s)" % (layer_name(path), kind, ", ".join(args))


def spec_from_model(model, target="host", path=None, layout="contiguous", label="cpu",
                    dtypes=None):
    """The .norm spec of every normalization module of `model`: one layer
    per module, named by its module path (dots as underscores), with its
    num_features (or groups, or normalized_shape), eps, momentum, affine,
    track_running_stats and dtype. `layout="channels_last"` compiles the
    channels-last layout of BatchNorm and InstanceNorm, `"both"` both
    layouts (a layer with two forms); `dtypes` (torch dtypes) compiles those
    instead of each module's own (a layer with a form per dtype). The spec's
    one target is `label` = `target` (a Halide target string, "host" for
    this CPU). Written to `path` when given; returned either way."""
    if layout not in ("contiguous", "channels_last", "both"):
        raise ValueError("layout must be 'contiguous', 'channels_last' or 'both', not %r"
                         % (layout,))
    lines = ["# Normalization layers of %s, written by normrt.torch.spec_from_model."
             % type(model).__name__,
             'target %s = "%s"' % (label, target), ""]
    names = set()
    for module_path, module, kind in norm_modules(model):
        line = _spec_line(module_path, module, kind, layout, dtypes)
        name = layer_name(module_path)
        if name in names:
            raise ValueError("two modules map to the layer name '%s'; rename one" % name)
        names.add(name)
        lines.append(line)
    text = "\n".join(lines) + "\n"
    if path is not None:
        with open(path, "w") as f:
            f.write(text)
    return text


def convert(model, library, target="cpu"):
    """Replaces every normalization module of `model` with the layer of
    `library` of the same name (spec_from_model's names), its state copied
    and its mode kept. Returns the model (changed in place); a module the
    library has no layer for raises NormrtError before anything changes."""
    plan = []
    for module_path, module, kind in norm_modules(model):
        replacement = library.module(layer_name(module_path), target)
        if replacement.kind != kind:
            raise _core.NormrtError("layer '%s' is a %s, but module '%s' is a %s"
                                    % (replacement.layer_name, replacement.kind, module_path,
                                       kind))
        replacement.load_state_dict(module.state_dict())
        replacement.train(module.training)
        if kind == "SyncBatchNorm":
            replacement.process_group = module.process_group
        plan.append((module_path, replacement))
    for module_path, replacement in plan:
        parent_path, _, attr = module_path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, attr, replacement)
    return model


def compile_model(model, directory, normc=None, module="model", target="host",
                  layout="contiguous", dtypes=None):
    """spec_from_model(model) written to `directory`/`module`.norm, compiled
    there with `normc --shared` (the executable `normc`, else $NORMC, else
    normc on PATH), and loaded. Returns the Library; NormrtError with
    normc's diagnostics when the compile fails."""
    normc = normc or os.environ.get("NORMC") or shutil.which("normc")
    if not normc:
        raise _core.NormrtError("normc not found: pass normc=PATH, set NORMC or put it on PATH")
    os.makedirs(directory, exist_ok=True)
    spec = os.path.join(directory, module + ".norm")
    spec_from_model(model, target=target, path=spec, layout=layout, dtypes=dtypes)
    run = subprocess.run([normc, spec, "-o", directory, "--module", module, "--shared",
                          "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    if run.returncode != 0:
        raise _core.NormrtError("normc failed on %s (exit %d):\n%s"
                                % (spec, run.returncode, run.stdout))
    return _core.load(os.path.join(directory, "lib%s.so" % module))

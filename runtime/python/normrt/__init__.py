"""normrt from Python: the C ABI of a library made with `normc --shared`.

    lib = normrt.load("libresnet.so")
    lib.layers()                      # [(name, target label), ...]
    layer = lib.layer("stem_bn")      # numpy arrays in and out
    m = lib.module("stem_bn")         # a torch.nn.Module (normrt.torch)

Layers run forward/backward on numpy arrays (host) and torch CUDA tensors
(device = 1); their state is viewable as numpy arrays that alias the layer's
storage, or bound to memory the caller owns (bind_state); statistics for
backward can be kept by the caller (forward_saved / backward_saved). Every
failing call raises NormrtError with normrt_last_error()'s message. A library
closed with Library.close() destroys its layers; using them afterwards raises
NormrtError instead of touching freed memory. normrt.torch (which needs
torch) builds torch.nn.Modules, specs from models and model conversion on
top of this module, which needs only numpy.
"""

import ctypes
import weakref

import numpy as np

FLOAT32, FLOAT64, FLOAT16, BFLOAT16, INT64 = range(5)
# numpy has no bfloat16: bf16 tensors travel as uint16 bit patterns.
_NUMPY = {FLOAT32: np.float32, FLOAT64: np.float64, FLOAT16: np.float16,
          BFLOAT16: np.uint16, INT64: np.int64}
_DTYPE = {np.dtype(np.float32): FLOAT32, np.dtype(np.float64): FLOAT64,
          np.dtype(np.float16): FLOAT16, np.dtype(np.uint16): BFLOAT16}


def to_bfloat16(values):
    """float values -> bfloat16 bit patterns (uint16), rounding to nearest even."""
    bits = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bfloat16(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("ndim", ctypes.c_int32),
                ("shape", ctypes.c_int64 * 8), ("strides", ctypes.c_int64 * 8),
                ("dtype", ctypes.c_int), ("device", ctypes.c_int32)]


class LayerInfo(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("target", ctypes.c_char_p),
                ("kind", ctypes.c_char_p), ("spatial_rank", ctypes.c_int32),
                ("num_features", ctypes.c_int64), ("eps", ctypes.c_double),
                ("momentum", ctypes.c_double),
                ("momentum_is_none", ctypes.c_int32),
                ("affine", ctypes.c_int32),
                ("track_running_stats", ctypes.c_int32),
                ("dtype", ctypes.c_int), ("param_dtype", ctypes.c_int),
                ("training", ctypes.c_int32),
                ("channels_last", ctypes.c_int32),
                ("device", ctypes.c_int32),
                ("target_string", ctypes.c_char_p),
                ("num_groups", ctypes.c_int64),
                ("normalized_ndim", ctypes.c_int32),
                ("normalized_shape", ctypes.c_int64 * 8),
                ("bias", ctypes.c_int32),
                ("activation", ctypes.c_int32),
                ("residual", ctypes.c_int32)]


class ForwardArgs(ctypes.Structure):
    _fields_ = [("input", ctypes.POINTER(Tensor)),
                ("residual", ctypes.POINTER(Tensor)),
                ("output", ctypes.POINTER(Tensor))]


class BackwardArgs(ctypes.Structure):
    _fields_ = [(name, ctypes.POINTER(Tensor)) for name in
                ("input", "residual", "grad_output", "grad_input",
                 "grad_residual", "grad_weight", "grad_bias")]


class SavedStats(ctypes.Structure):
    """normrt_saved_stats: the statistics one forward saves for its backward."""
    _fields_ = [("mean", Tensor), ("invstd", Tensor),
                ("batch_stats", ctypes.c_int32), ("reserved", ctypes.c_int32)]


# normrt_saved_stats.batch_stats of a forward whose statistics were summed
# across processes (SyncBatchNorm with an allreduce hook, in training mode).
SAVED_SYNCED = 2

# normrt_allreduce_fn: (data, count, dtype, context) -> 0, or non-zero on failure.
ALLREDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int64,
                                ctypes.c_int32, ctypes.c_void_p)


class NormrtError(RuntimeError):
    pass


def load(path):
    """The layers of a `normc --shared` library at `path`."""
    return Library(path)


class Library:
    def __init__(self, path):
        self.path = str(path)
        try:
            lib = ctypes.CDLL(self.path)
        except OSError as e:
            raise NormrtError("cannot load normc library '%s': %s" % (self.path, e)) from None
        if not hasattr(lib, "normrt_layer_create"):
            raise NormrtError("'%s' is not a normc library (it has no normrt_layer_create); "
                              "build it with normc --shared" % self.path)
        self._layers = weakref.WeakSet()
        self.closed = False
        lib.normrt_layer_create.restype = ctypes.c_void_p
        lib.normrt_layer_create.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        lib.normrt_layer_destroy.argtypes = [ctypes.c_void_p]
        lib.normrt_layer_set_training.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.normrt_layer_forward.argtypes = [ctypes.c_void_p,
                                             ctypes.POINTER(Tensor),
                                             ctypes.POINTER(Tensor)]
        lib.normrt_layer_backward.argtypes = [ctypes.c_void_p] + \
            [ctypes.POINTER(Tensor)] * 5
        lib.normrt_layer_forward_args.argtypes = [ctypes.c_void_p,
                                                  ctypes.POINTER(ForwardArgs)]
        lib.normrt_layer_backward_args.argtypes = [ctypes.c_void_p,
                                                   ctypes.POINTER(BackwardArgs)]
        lib.normrt_layer_state.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                           ctypes.POINTER(Tensor)]
        lib.normrt_layer_get_info.argtypes = [ctypes.c_void_p,
                                              ctypes.POINTER(LayerInfo)]
        lib.normrt_layer_set_cuda_stream.argtypes = [ctypes.c_void_p,
                                                     ctypes.c_void_p,
                                                     ctypes.c_void_p]
        lib.normrt_layer_name_at.restype = ctypes.c_char_p
        lib.normrt_layer_name_at.argtypes = [ctypes.c_int,
                                             ctypes.POINTER(ctypes.c_char_p)]
        lib.normrt_last_error.restype = ctypes.c_char_p
        lib.normrt_set_num_threads.argtypes = [ctypes.c_int]
        lib.normrt_layer_num_forms.restype = ctypes.c_int32
        lib.normrt_layer_num_forms.argtypes = [ctypes.c_void_p]
        lib.normrt_layer_form.argtypes = [ctypes.c_void_p, ctypes.c_int32,
                                          ctypes.POINTER(ctypes.c_int),
                                          ctypes.POINTER(ctypes.c_int32)]
        lib.normrt_layer_bind_state.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                ctypes.POINTER(Tensor)]
        lib.normrt_layer_stats_count.argtypes = [ctypes.c_void_p, ctypes.POINTER(Tensor),
                                                 ctypes.POINTER(ctypes.c_int64)]
        lib.normrt_layer_forward_saved.argtypes = [ctypes.c_void_p,
                                                   ctypes.POINTER(ForwardArgs),
                                                   ctypes.POINTER(SavedStats)]
        lib.normrt_layer_backward_saved.argtypes = [ctypes.c_void_p,
                                                    ctypes.POINTER(BackwardArgs),
                                                    ctypes.POINTER(SavedStats)]
        lib.normrt_layer_set_allreduce.argtypes = [ctypes.c_void_p, ALLREDUCE_FN,
                                                   ctypes.c_void_p]
        self.lib = lib

    def set_num_threads(self, threads):
        """Worker threads of the CPU kernels (0: Halide's default, which
        honours HL_NUM_THREADS). Returns the previous setting."""
        self._check_open()
        return self.lib.normrt_set_num_threads(int(threads))

    def close(self):
        """Destroys every layer made from this library; they (and it) raise
        NormrtError from now on. (The shared object itself stays mapped:
        Python cannot unload it safely.)"""
        for layer in list(self._layers):
            layer.destroy()
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_open(self):
        if self.closed:
            raise NormrtError("library '%s' has been closed" % self.path)

    def last_error(self):
        return self.lib.normrt_last_error().decode()

    def check(self, rc):
        if rc != 0:
            raise NormrtError(self.last_error())

    def layer(self, name, target="cpu"):
        self._check_open()
        layer = Layer(self, name, target)
        self._layers.add(layer)
        return layer

    def module(self, name, target="cpu"):
        """Layer `name` as a torch.nn.Module (see normrt.torch)."""
        from normrt import torch as normrt_torch
        return normrt_torch.NormModule(self, name, target)

    def layers(self):
        """(name, target label) of every layer the library holds."""
        out, i = [], 0
        while True:
            target = ctypes.c_char_p()
            name = self.lib.normrt_layer_name_at(i, ctypes.byref(target))
            if name is None:
                return out
            out.append((name.decode(), target.value.decode()))
            i += 1


def tensor(array):
    """A normrt_tensor view of a numpy array, strides included (a transposed
    view of NHWC storage is an NCHW tensor in the channels-last layout). The
    caller keeps the array alive."""
    t = Tensor()
    t.data = array.ctypes.data
    t.ndim = array.ndim
    for i, extent in enumerate(array.shape):
        t.shape[i] = extent
        t.strides[i] = array.strides[i] // array.itemsize
    t.dtype = _DTYPE[array.dtype]
    t.device = 0
    return t


def device_tensor(t):
    """A normrt_tensor (device = 1) for a torch CUDA tensor, strides
    included; bf16 and the other dtypes by torch's dtype."""
    import torch
    dtypes = {torch.float32: FLOAT32, torch.float64: FLOAT64,
              torch.float16: FLOAT16, torch.bfloat16: BFLOAT16}
    out = Tensor()
    out.data = t.data_ptr()
    out.ndim = t.dim()
    for i, extent in enumerate(t.shape):
        out.shape[i] = extent
        out.strides[i] = t.stride(i)
    out.dtype = dtypes[t.dtype]
    out.device = 1
    return out


class Layer:
    def __init__(self, library, name, target):
        self.library = library
        self.lib = library.lib
        handle = self.lib.normrt_layer_create(name.encode(), target.encode())
        if not handle:
            raise NormrtError(library.last_error())
        self.handle = handle
        info = LayerInfo()
        library.check(self.lib.normrt_layer_get_info(handle, ctypes.byref(info)))
        self.info = info
        self.dtype = _NUMPY[info.dtype]

    def __del__(self):
        self.destroy()

    def destroy(self):
        """Frees the layer; calls on it raise NormrtError from now on."""
        handle, self.handle = getattr(self, "handle", None), None
        if handle:
            self.lib.normrt_layer_destroy(handle)

    def _h(self):
        """The live handle, or NormrtError for a destroyed layer."""
        if not self.handle:
            self.library._check_open()
            raise NormrtError("layer '%s' has been destroyed" % self.info.name.decode())
        return self.handle

    def forms(self):
        """(dtype, channels_last) of each compiled form, in the spec's order:
        one for a layer of one dtype and layout."""
        out = []
        for i in range(self.lib.normrt_layer_num_forms(self._h())):
            dtype, channels_last = ctypes.c_int(), ctypes.c_int32()
            self.library.check(self.lib.normrt_layer_form(
                self._h(), i, ctypes.byref(dtype), ctypes.byref(channels_last)))
            out.append((dtype.value, bool(channels_last.value)))
        return out

    def bind_state(self, name, storage):
        """Makes the memory of `storage` (a Tensor struct; None unbinds) the
        storage of weight, bias, running_mean, running_var or
        num_batches_tracked. The caller keeps that memory alive."""
        ptr = ctypes.byref(storage) if storage is not None else None
        self.library.check(self.lib.normrt_layer_bind_state(self._h(), name.encode(), ptr))

    def set_allreduce(self, fn):
        """SyncBatchNorm: `fn(data, count, dtype)` sums `count` values of
        normrt dtype `dtype` at address `data` in place over all processes and
        returns 0 (non-zero on failure); normrt calls it in training forwards
        and their backwards. None removes it (the layer then behaves as
        BatchNorm). The layer keeps the callback alive."""
        if fn is None:
            callback = ctypes.cast(None, ALLREDUCE_FN)
        else:
            def call(data, count, dtype, _context):
                try:
                    return int(fn(data, count, dtype) or 0)
                except Exception:  # an exception must not cross the C frames
                    return 1
            callback = ALLREDUCE_FN(call)
        self.library.check(self.lib.normrt_layer_set_allreduce(self._h(), callback, None))
        self._allreduce = callback

    def stats_count(self, x):
        """Statistics a batch-statistics forward on `x` (a Tensor struct) saves."""
        count = ctypes.c_int64()
        self.library.check(self.lib.normrt_layer_stats_count(
            self._h(), ctypes.byref(x), ctypes.byref(count)))
        return count.value

    def forward_saved(self, args, saved):
        """normrt_layer_forward_saved on ForwardArgs and SavedStats structs."""
        self.library.check(self.lib.normrt_layer_forward_saved(
            self._h(), ctypes.byref(args), ctypes.byref(saved)))

    def backward_saved(self, args, saved):
        """normrt_layer_backward_saved on BackwardArgs and SavedStats structs."""
        self.library.check(self.lib.normrt_layer_backward_saved(
            self._h(), ctypes.byref(args), ctypes.byref(saved)))

    def train(self, training=True):
        self.library.check(self.lib.normrt_layer_set_training(self._h(), int(training)))

    def eval(self):
        self.train(False)

    def param_shape(self):
        """The shape of weight and bias."""
        if self.info.normalized_ndim:
            return tuple(self.info.normalized_shape[i]
                         for i in range(self.info.normalized_ndim))
        return (self.info.num_features,)

    def forward(self, x, out=None, residual=None):
        y = np.empty_like(x) if out is None else out
        ts = [tensor(a) if a is not None else None for a in (x, residual, y)]
        args = ForwardArgs(*[ctypes.pointer(t) if t is not None else None
                             for t in ts])
        self.library.check(self.lib.normrt_layer_forward_args(
            self._h(), ctypes.byref(args)))
        return y

    def backward(self, x, dy, want_params=True, residual=None):
        """(dx, dweight, dbias), and dresidual after them for layers with a
        residual."""
        dx = np.empty_like(x)
        dz = np.empty_like(x) if self.info.residual else None
        dw = db = None
        if want_params and self.info.affine:
            pdtype = _NUMPY[self.info.param_dtype]
            dw = np.empty(self.param_shape(), pdtype)
            if self.info.bias:
                db = np.empty(self.param_shape(), pdtype)
        ts = [tensor(a) if a is not None else None
              for a in (x, residual, dy, dx, dz, dw, db)]
        args = BackwardArgs(*[ctypes.pointer(t) if t is not None else None
                              for t in ts])
        self.library.check(self.lib.normrt_layer_backward_args(
            self._h(), ctypes.byref(args)))
        if self.info.residual:
            return dx, dw, db, dz
        return dx, dw, db

    def set_cuda_stream(self, stream, context=None):
        """Runs this CUDA layer's kernels on `stream` (a CUstream handle as an
        int, e.g. torch.cuda.current_stream().cuda_stream), in `context`
        (None keeps the layer's)."""
        self.library.check(self.lib.normrt_layer_set_cuda_stream(
            self._h(), context, stream))

    def forward_device(self, x, y):
        """forward on torch CUDA tensors (device = 1, no copies)."""
        xt, yt = device_tensor(x), device_tensor(y)
        self.library.check(self.lib.normrt_layer_forward(
            self._h(), ctypes.byref(xt), ctypes.byref(yt)))

    def backward_device(self, x, dy, dx, dw=None, db=None):
        """backward on torch CUDA tensors; dw and db may be None."""
        ts = [device_tensor(t) if t is not None else None
              for t in (x, dy, dx, dw, db)]
        self.library.check(self.lib.normrt_layer_backward(
            self._h(), *[ctypes.byref(t) if t is not None else None
                           for t in ts]))

    def state(self, name):
        """A numpy array aliasing the layer's storage for `name`."""
        view = Tensor()
        self.library.check(self.lib.normrt_layer_state(
            self._h(), name.encode(), ctypes.byref(view)))
        dtype = _NUMPY[view.dtype]
        shape = tuple(view.shape[i] for i in range(view.ndim))
        count = int(np.prod(shape)) if shape else 1
        if count == 0:
            return np.empty(shape, dtype)
        buffer = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(view.data)
        array = np.frombuffer(buffer, dtype=dtype, count=count)
        return array.reshape(shape)

    def snapshot(self):
        """Copies of every state array the layer has, by name."""
        out = {}
        for name in ("weight", "bias", "running_mean", "running_var",
                     "num_batches_tracked", "save_mean", "save_invstd"):
            try:
                out[name] = np.array(self.state(name), copy=True)
            except NormrtError:
                pass
        return out

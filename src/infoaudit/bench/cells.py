"""What one benchmark cell is: an op of a backend's registry, its inputs, its byte count.

The ops come from the backends' own ``ops()`` tables (the same registry the audits use): the
first variant, or ``"jit"`` for JAX. Minimum bytes are the inputs read plus the outputs written
in the audited dtype (labels int64), i.e. the traffic of a perfect single-pass kernel; a
framework that keeps temporaries moves more, which is what the fraction of the limit shows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dtypes import np_dtype

__all__ = ["OPS", "DTYPES", "BACKENDS", "DEFAULT_SHAPES", "QUICK_SHAPES", "ITEMSIZE", "LABEL_BYTES",
           "TEMPERATURE", "SAMPLED_SOFTMAX", "SAMPLED_SOFTMAX_QUICK_BATCH", "itemsize", "min_bytes",
           "parse_shape", "shape_str", "InputSet", "BackendHandle", "load_backend", "pick_op",
           "device_matches", "is_cuda", "limit_device", "syncs", "cuda_absent_reason", "prealloc_op"]

# The ops under benchmark, in report order.
OPS = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "kl_divergence",
       "binary_cross_entropy_with_logits", "distillation_loss")
DTYPES = ("float16", "bfloat16", "float32", "float64")
BACKENDS = ("numpy", "scipy", "torch", "jax")
DEFAULT_SHAPES = ((64, 1_000), (64, 50_257), (1_024, 50_257))
QUICK_SHAPES = ((64, 1_000), (64, 50_257))
ITEMSIZE = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
LABEL_BYTES = 8        # int64 class index
TEMPERATURE = 2.0      # distillation temperature T
# The seed chapter's sampled-softmax setting (bench.sampled): vocabulary V, K samples, batch of
# rows (tokens), hidden size d of the output layer; the quick run uses a smaller batch.
SAMPLED_SOFTMAX = {"vocab": 100_000, "k": 5_000, "batch": 32, "d": 512}
SAMPLED_SOFTMAX_QUICK_BATCH = 8


def itemsize(dtype: str) -> int:
    return ITEMSIZE[dtype]


def min_bytes(op: str, batch: int, vocab: int, dtype: str) -> dict:
    """Minimum bytes read and written by ``op`` on a (batch, vocab) input in ``dtype``."""
    s = itemsize(dtype)
    n = batch * vocab
    read, written = {
        "softmax": (n * s, n * s),
        "log_softmax": (n * s, n * s),
        "logsumexp": (n * s, batch * s),
        "cross_entropy": (n * s + batch * LABEL_BYTES, batch * s),
        "kl_divergence": (2 * n * s, batch * s),
        "binary_cross_entropy_with_logits": (2 * n * s, n * s),
        "distillation_loss": (2 * n * s, batch * s),
    }[op]
    return {"read": read, "written": written, "total": read + written}


def parse_shape(text: str) -> tuple:
    """'64x50257' (also '64,50257', '64X50_257') -> (64, 50257); ValueError otherwise."""
    t = text.strip().lower().replace("_", "").replace(",", "x").replace("*", "x")
    parts = t.split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or min(int(p) for p in parts) < 1:
        raise ValueError(f"shape {text!r}: expected BATCHxVOCAB with positive integers, e.g. 64x50257")
    return int(parts[0]), int(parts[1])


def shape_str(shape) -> str:
    return f"{shape[0]}x{shape[1]}"


class InputSet:
    """Random inputs for one shape, generated once (float32) and rounded once to each dtype.

    Logits are N(0, 2^2); the teacher's logits are the student's plus N(0, 0.5^2); p and q are
    their softmaxes (rows sum to 1); BCE targets are U(0, 1); labels are uniform class indices.
    """

    def __init__(self, shape, seed=0):
        b, v = shape
        rng = np.random.default_rng(seed)
        self.shape = (b, v)
        z = rng.standard_normal((b, v), dtype=np.float32)
        z *= 2
        zt = rng.standard_normal((b, v), dtype=np.float32)
        zt *= 0.5
        zt += z
        self._base = {"z": z, "zt": zt, "t": rng.random((b, v), dtype=np.float32),
                      "p": _softmax32(zt), "q": _softmax32(z)}
        self.labels = rng.integers(0, v, size=b, dtype=np.int64)
        self._cache = {}

    def get(self, key, dtype):
        k = (key, dtype)
        if k not in self._cache:
            self._cache[k] = self._base[key].astype(np_dtype(dtype))
        return self._cache[k]

    def args(self, op, dtype):
        g = lambda k: self.get(k, dtype)  # noqa: E731
        return {
            "softmax": lambda: [g("z")],
            "log_softmax": lambda: [g("z")],
            "logsumexp": lambda: [g("z")],
            "cross_entropy": lambda: [g("z"), self.labels],
            "kl_divergence": lambda: [g("p"), g("q")],
            "binary_cross_entropy_with_logits": lambda: [g("z"), g("t")],
            "distillation_loss": lambda: [g("z"), g("zt"), TEMPERATURE],
        }[op]()

    def drop_dtype(self, dtype):
        for k in [k for k in self._cache if k[1] == dtype]:
            del self._cache[k]


def _softmax32(z):
    m = z.max(axis=-1, keepdims=True)
    e = np.exp(z - m)
    e /= e.sum(axis=-1, keepdims=True)
    return e


@dataclass
class BackendHandle:
    name: str
    module: object = None
    reason: str = ""
    devices: tuple = ()
    version: str = ""

    @property
    def ok(self):
        return self.module is not None


def load_backend(name) -> BackendHandle:
    """The backend module through ``infoaudit.backends.load``, or the reason it cannot run."""
    from ..backends import BackendUnavailable, load

    try:
        mod = load(name)
    except BackendUnavailable as e:
        return BackendHandle(name, reason=str(e))
    except ModuleNotFoundError as e:
        return BackendHandle(name, reason=f"backend {name!r} not installed here: {e}")
    except Exception as e:  # a broken backend must not stop the other backends' cells
        return BackendHandle(name, reason=f"backend {name!r} failed to load: {type(e).__name__}: {e}")
    try:
        devs = tuple(mod.devices())
    except Exception as e:
        return BackendHandle(name, reason=f"backend {name!r}: devices() failed: {type(e).__name__}: {e}")
    try:
        version = str(mod.info().get("version", ""))
    except Exception:
        version = ""
    return BackendHandle(name, mod, "", devs, version)


def pick_op(handle: BackendHandle, op: str):
    """The registry entry a benchmark times: 'jit' for JAX, else the first variant."""
    table = handle.module.ops()
    choices = table.get(op) or []
    if not choices:
        return None, f"{handle.name} has no op for {op}"
    if handle.name == "jax":
        for o in choices:
            if o.variant == "jit":
                return o, ""
    return choices[0], ""


def device_matches(device: str, wanted: str) -> bool:
    """'cuda' matches 'cuda', 'cuda:0' and JAX's 'gpu'; 'cpu' matches 'cpu'."""
    if device == wanted or device.startswith(wanted + ":"):
        return True
    return is_cuda(device) and is_cuda(wanted) and ":" not in wanted


def is_cuda(device: str) -> bool:
    d = str(device)
    return d.startswith("cuda") or d == "gpu" or d.startswith("gpu:")


def limit_device(device: str) -> str:
    """The device whose measured copy bandwidth limits a cell: 'cuda' for any GPU, else itself."""
    return "cuda" if is_cuda(device) else device


def syncs(handle: BackendHandle, device: str):
    """(sync(out), barrier()) for the backend and device: JAX blocks on its result, CUDA syncs."""
    if handle.name == "jax":
        import jax

        return (lambda out: jax.block_until_ready(out)), None
    if handle.name == "torch" and is_cuda(device):
        import torch

        return None, torch.cuda.synchronize
    return None, None


def cuda_absent_reason() -> str:
    """Why there is no CUDA device here (for the skipped cells)."""
    try:
        import torch
    except ImportError:
        return "no CUDA device: PyTorch is not installed"
    if torch.cuda.is_available():
        return ""
    build = torch.version.cuda
    return (f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, "
            f"{'CUDA ' + build if build else 'CPU-only build'})")


# --- preallocated-output variants -------------------------------------------------------------

def prealloc_op(handle: BackendHandle, op: str, args, device):
    """(fn, call, reason): the same computation writing into preallocated outputs, if possible.

    NumPy: the backend's formula with every temporary preallocated (ufunc ``out=``). PyTorch:
    the native kernels' ``out=`` overloads. The difference to the allocating call is the cost of
    allocation (for big arrays: fresh pages from the OS, zero-filled on first touch).
    """
    if handle.name == "numpy":
        f = _NUMPY_OUT.get(op)
        if f is None:
            return None, "", "composite loss: the NumPy formula allocates its temporaries (no single out= form)"
        return f(*args), f"numpy ufuncs with out= ({op})", ""
    if handle.name == "scipy":
        return None, "", ("scipy.special.softmax/log_softmax/logsumexp take no out= argument; "
                          "the composed losses allocate temporaries")
    if handle.name == "torch":
        return _torch_out(op, args, device)
    if handle.name == "jax":
        return None, "", "XLA owns its buffers: JAX has no out= (jit donation reuses inputs only)"
    return None, "", f"no preallocated form known for {handle.name}"


def _np_softmax_out(z):
    b = z.shape[0]
    m = np.empty((b, 1), z.dtype)
    s = np.empty((b, 1), z.dtype)
    out = np.empty_like(z)

    def f():
        np.max(z, axis=-1, keepdims=True, out=m)
        np.subtract(z, m, out=out)
        np.exp(out, out=out)
        np.sum(out, axis=-1, keepdims=True, out=s)
        np.divide(out, s, out=out)
        return out
    return f


def _np_log_softmax_out(z):
    b = z.shape[0]
    m = np.empty((b, 1), z.dtype)
    s = np.empty((b, 1), z.dtype)
    out = np.empty_like(z)
    tmp = np.empty_like(z)

    def f():
        np.max(z, axis=-1, keepdims=True, out=m)
        np.subtract(z, m, out=out)
        np.exp(out, out=tmp)
        np.sum(tmp, axis=-1, keepdims=True, out=s)
        np.log(s, out=s)
        np.subtract(out, s, out=out)
        return out
    return f


def _np_logsumexp_out(z):
    b = z.shape[0]
    m = np.empty((b, 1), z.dtype)
    out = np.empty((b, 1), z.dtype)
    tmp = np.empty_like(z)

    def f():
        np.max(z, axis=-1, keepdims=True, out=m)
        np.subtract(z, m, out=tmp)
        np.exp(tmp, out=tmp)
        np.sum(tmp, axis=-1, keepdims=True, out=out)
        np.log(out, out=out)
        np.add(out, m, out=out)
        return out[:, 0]
    return f


def _np_bce_logits_out(z, t):
    a = np.empty_like(z)
    b = np.empty_like(z)
    out = np.empty_like(z)

    def f():
        np.maximum(z, 0, out=a)
        np.abs(z, out=b)
        np.negative(b, out=b)
        np.exp(b, out=b)
        np.log1p(b, out=b)
        np.add(a, b, out=out)
        np.multiply(t, z, out=b)
        np.subtract(out, b, out=out)
        return out
    return f


_NUMPY_OUT = {"softmax": _np_softmax_out, "log_softmax": _np_log_softmax_out,
              "logsumexp": _np_logsumexp_out, "binary_cross_entropy_with_logits": _np_bce_logits_out}


def _torch_out(op, args, device):
    import torch

    z = args[0]
    if op == "softmax":
        o = torch.empty_like(z)
        return (lambda: torch.softmax(z, -1, out=o)), "torch.softmax(z, -1, out=o)", ""
    if op == "log_softmax":
        o = torch.empty_like(z)
        return (lambda: torch.log_softmax(z, -1, out=o)), "torch.log_softmax(z, -1, out=o)", ""
    if op == "logsumexp":
        o = torch.empty(z.shape[:-1], dtype=z.dtype, device=z.device)
        return (lambda: torch.logsumexp(z, -1, out=o)), "torch.logsumexp(z, -1, out=o)", ""
    if op == "binary_cross_entropy_with_logits":
        t = args[1]
        o = torch.empty_like(z)
        k = torch.ops.aten.binary_cross_entropy_with_logits.out
        return ((lambda: k(z, t, None, None, 0, out=o)),
                "aten.binary_cross_entropy_with_logits.out(z, t, reduction=none, out=o)", "")
    return None, "", "torch.nn.functional's composite losses take no out= argument"

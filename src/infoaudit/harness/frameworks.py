"""The framework adapters: numpy / torch / JAX arrays to and from NumPy on a device, dtype names,
literals for reproducers; which framework a user's function uses; the dtypes audited by default.
"""
from __future__ import annotations

import contextlib
import inspect
import sys

import numpy as np

from ..dtypes import dtype_name

__all__ = ["GateUsageError", "Adapter", "framework_adapter", "default_dtypes", "infer_framework"]


class GateUsageError(Exception):
    """A usage or input error (exit 2): bad module path, unknown quantity, framework missing, ..."""


class Adapter:
    """A framework's arrays: to and from NumPy, dtype names, literals for reproducers."""
    name = "?"
    device = "cpu"
    has_bfloat16 = True
    label_dtype = np.int64

    def x64(self, on):
        return contextlib.nullcontext()


class _NumpyAdapter(Adapter):
    name = "numpy"
    has_bfloat16 = False  # only through ml_dtypes; audited on request with --dtype bfloat16

    def __init__(self, device):
        if device not in (None, "cpu"):
            raise GateUsageError(f"numpy runs on the cpu only, not on device {device!r}")
        self.device = "cpu"

    def to_framework(self, a):
        return np.array(a, copy=True)

    def to_numpy(self, x):
        return np.array(x, copy=True)

    def is_array(self, x):
        return isinstance(x, np.ndarray)

    def array_type(self):
        return "numpy.ndarray"

    def dtype_of(self, x):
        try:
            return dtype_name(x.dtype)
        except ValueError:
            return str(x.dtype)

    def literal(self, values, dtype, shape):
        if dtype == "bfloat16":
            return f"np.array({values}, dtype=np.float64).astype(ml_dtypes.bfloat16)"
        return f"np.array({values}, dtype=np.{dtype})"

    def full(self, shape, value, dtype):
        if dtype == "bfloat16":
            return f"np.full({shape}, {value}).astype(ml_dtypes.bfloat16)"
        return f"np.full({shape}, {value}, dtype=np.{dtype})"

    def label_literal(self, values):
        return f"np.array({values}, dtype=np.int64)"

    imports = "import numpy as np"


class _TorchAdapter(Adapter):
    name = "torch"

    def __init__(self, device):
        try:
            import torch
        except Exception as e:  # ImportError or a broken install
            raise GateUsageError(f"framework 'torch' is not installed here ({type(e).__name__}: {e}); "
                                 "pip install torch, or choose --framework numpy|jax") from None
        self.torch = torch
        dev = device or "cpu"
        if str(dev).startswith("cuda") and not torch.cuda.is_available():
            raise GateUsageError(f"device {dev!r} is not available to torch here (torch.cuda.is_available() is False)")
        try:
            self.dev = torch.device(dev)
            torch.zeros(1, device=self.dev)
        except Exception as e:
            raise GateUsageError(f"torch cannot use device {dev!r}: {e}") from None
        self.device = str(dev)

    def to_framework(self, a):
        torch = self.torch
        a = np.ascontiguousarray(a)
        if "bfloat16" in str(a.dtype):
            t = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
        else:
            t = torch.from_numpy(a.copy())
        return t.to(self.dev)

    def to_numpy(self, x):
        import ml_dtypes

        torch = self.torch
        x = x.detach().cpu().contiguous()
        if x.dtype == torch.bfloat16:
            return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
        return x.numpy().copy()

    def is_array(self, x):
        return isinstance(x, self.torch.Tensor)

    def array_type(self):
        return "torch.Tensor"

    def dtype_of(self, x):
        s = str(x.dtype).replace("torch.", "")
        return s

    def _dev(self):
        return "" if self.device == "cpu" else f", device={self.device!r}"

    def literal(self, values, dtype, shape):
        return f"torch.tensor({values}, dtype=torch.{dtype}{self._dev()})"

    def full(self, shape, value, dtype):
        return f"torch.full({shape}, {value}, dtype=torch.{dtype}{self._dev()})"

    def label_literal(self, values):
        return f"torch.tensor({values}, dtype=torch.int64{self._dev()})"

    imports = "import torch"


class _JaxAdapter(Adapter):
    name = "jax"
    label_dtype = np.int32

    def __init__(self, device):
        try:
            import jax
            import jax.numpy as jnp
        except Exception as e:
            raise GateUsageError(f"framework 'jax' is not installed here ({type(e).__name__}: {e}); "
                                 "pip install jax, or choose --framework numpy|torch") from None
        self.jax, self.jnp = jax, jnp
        dev = device or "cpu"
        platform = "gpu" if str(dev).startswith(("cuda", "gpu")) else str(dev)
        try:
            self.dev = jax.devices(platform)[0]
        except Exception as e:
            raise GateUsageError(f"jax has no {platform!r} device here ({type(e).__name__}: {e})") from None
        self.device = str(dev)

    def x64(self, on):
        if not on:
            return contextlib.nullcontext()
        return self.jax.enable_x64(True)

    def to_framework(self, a):
        a = np.asarray(a)
        if a.dtype.kind in "iu":
            a = a.astype(np.int32)
        with self.x64(a.dtype == np.float64):
            return self.jax.device_put(self.jnp.asarray(a), self.dev)

    def to_numpy(self, x):
        return np.array(x, copy=True)

    def is_array(self, x):
        return isinstance(x, self.jax.Array)

    def array_type(self):
        return "jax.Array"

    def dtype_of(self, x):
        return str(x.dtype)

    def literal(self, values, dtype, shape):
        return f"jnp.array({values}, dtype=jnp.{dtype})"

    def full(self, shape, value, dtype):
        return f"jnp.full({shape}, {value}, dtype=jnp.{dtype})"

    def label_literal(self, values):
        return f"jnp.array({values}, dtype=jnp.int32)"

    imports = "import jax, jax.numpy as jnp"


_ADAPTERS = {"numpy": _NumpyAdapter, "torch": _TorchAdapter, "jax": _JaxAdapter}


_adapter_cache: dict = {}


def framework_adapter(framework: str, device="cpu") -> Adapter:
    if framework not in _ADAPTERS:
        raise GateUsageError(f"unknown framework {framework!r}; choose one of {', '.join(_ADAPTERS)}")
    key = (framework, device or "cpu")
    if key not in _adapter_cache:
        _adapter_cache[key] = _ADAPTERS[framework](device)
    return _adapter_cache[key]


def default_dtypes(framework: str) -> tuple:
    return ("float32", "float16") + (("bfloat16",) if framework in ("torch", "jax") else ())


def infer_framework(fn) -> str:
    """torch / jax when the function's module imported it, else numpy."""
    mod = sys.modules.get(getattr(fn, "__module__", "") or "")
    names = set()
    for v in list(vars(mod).values()) if mod else []:
        m = getattr(v, "__module__", None) if not inspect.ismodule(v) else v.__name__
        if isinstance(m, str):
            names.add(m.split(".")[0])
    for fw in ("torch", "jax"):
        if fw in names or fw + "lib" in names:
            return fw
    return "numpy"

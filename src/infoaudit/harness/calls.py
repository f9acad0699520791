"""What the gate's value and gradient audits share: calling a user's implementation safely.

The framework adapters (numpy / torch / jax arrays to and from NumPy, literals for reproducers),
the per-call timeout with its watchdog, the :class:`Harness` that calls the implementation and
checks what comes back (raised, hung, not an array, wrong shape or dtype, mutated input), the
memoised exact reference, the reduction of a failing case to its one row / element, and the
literal helpers of the copy-paste reproducers. :mod:`.gate` (values) and :mod:`.gate_grad`
(gradients) both build on it; neither imports the other's internals.
"""
from __future__ import annotations

import contextlib
import inspect
import math
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .. import quantities as Q
from ..dtypes import dtype_name

__all__ = ["GateUsageError", "framework_adapter", "default_dtypes", "infer_framework", "Outcome", "install_watchdog",
           "call_with_timeout", "describe_exception", "Harness", "expected_shape", "case_key", "exact_values",
           "ReferenceFailure", "reduce_to_unit", "short_number", "ulp_text", "py_value", "nested_literal",
           "array_literal", "array_summary", "jsonable"]


class GateUsageError(Exception):
    """A usage or input error (exit 2): bad module path, unknown quantity, framework missing, ..."""


# ====================================================================== framework adapters


class _Adapter:
    name = "?"
    device = "cpu"
    has_bfloat16 = True
    label_dtype = np.int64

    def x64(self, on):
        return contextlib.nullcontext()


class _NumpyAdapter(_Adapter):
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


class _TorchAdapter(_Adapter):
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


class _JaxAdapter(_Adapter):
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


def framework_adapter(framework: str, device="cpu") -> _Adapter:
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


# ====================================================================== calling the implementation


class _CallTimeout(BaseException):
    """Raised in the main thread by SIGALRM when the implementation overruns (not an Exception,
    so that a bare ``except Exception`` in user code does not swallow it)."""


@dataclass
class Outcome:
    kind: str                      # ok | raised | timeout | not_array | wrong_shape | wrong_dtype | mutated | unreadable
    value: np.ndarray | None = None   # float64 result when kind == ok
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self):
        return self.kind == "ok"


class _Watchdog:
    """Last resort for a hang in native code that SIGALRM cannot interrupt (CLI only): after
    ``timeout + grace`` seconds it prints what happened and ends the process with exit 1."""

    def __init__(self, on_hang):
        self.on_hang = on_hang
        self.deadline = None
        self.lock = threading.Lock()
        t = threading.Thread(target=self._run, daemon=True, name="infoaudit-gate-watchdog")
        t.start()

    def arm(self, seconds):
        with self.lock:
            self.deadline = time.monotonic() + seconds

    def disarm(self):
        with self.lock:
            self.deadline = None

    def _run(self):
        while True:
            time.sleep(0.5)
            with self.lock:
                d = self.deadline
            if d is not None and time.monotonic() > d:
                try:
                    self.on_hang()
                finally:
                    os._exit(1)


_WATCHDOG: _Watchdog | None = None


def install_watchdog(on_hang):
    global _WATCHDOG
    _WATCHDOG = _Watchdog(on_hang)


def call_with_timeout(fn, args, timeout):
    """(result, None) or (None, 'timeout') or (None, exception)."""
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if main:
        def handler(signum, frame):
            raise _CallTimeout()
        try:
            old = signal.signal(signal.SIGALRM, handler)
        except ValueError:  # not allowed here (embedded interpreter)
            main = False
    if main:
        if _WATCHDOG:
            _WATCHDOG.arm(timeout + max(10.0, timeout))
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout, 0.5)  # re-fires until cancelled
            try:
                return fn(*args), None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _CallTimeout:
            return None, "timeout"
        except Exception as e:  # noqa: BLE001 - the implementation raised
            return None, e
        except BaseException as e:  # SystemExit etc. from user code: a failure, not our exit
            if isinstance(e, KeyboardInterrupt):
                raise
            return None, e
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            if _WATCHDOG:
                _WATCHDOG.disarm()
    box = {}

    def target():
        try:
            box["r"] = fn(*args)
        except BaseException as e:  # noqa: BLE001
            box["e"] = e
    t = threading.Thread(target=target, daemon=True, name="infoaudit-gate-call")
    t.start()
    t.join(timeout)
    if t.is_alive():
        return None, "timeout"  # the thread is abandoned (daemon)
    if "e" in box:
        return None, box["e"]
    return box.get("r"), None


def describe_exception(e):
    tb = traceback.extract_tb(e.__traceback__)
    where = ""
    for fr in reversed(tb):
        if "infoaudit" not in fr.filename.replace("\\", "/").split("/site-packages/")[-1].split("/src/")[-1][:9]:
            where = f" (at {os.path.basename(fr.filename)}:{fr.lineno})"
            break
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}{where}" if msg else f"{type(e).__name__}{where}"


class Harness:
    """Calls the implementation on framework copies of numpy inputs and checks what comes back."""

    def __init__(self, fn, quantity, adapter: _Adapter, dtype, timeout=20.0):
        self.fn = fn
        self.q = Q.get(quantity)
        self.ad = adapter
        self.dtype = dtype
        self.timeout = float(timeout)

    def framework_args(self, inputs):
        out = []
        for arg, v in zip(self.q.args, inputs):
            if arg.is_index_array:
                out.append(self.ad.to_framework(np.asarray(v).astype(self.ad.label_dtype)))
            elif arg.is_float_array:
                out.append(self.ad.to_framework(v))
            else:
                out.append(float(v))
        return out

    def call(self, inputs) -> Outcome:
        with self.ad.x64(self.dtype == "float64"):
            return self._call(inputs)

    def _call(self, inputs):
        try:
            fargs = self.framework_args(inputs)
        except Exception as e:  # noqa: BLE001 - e.g. a dtype the device lacks
            return Outcome("unsupported", message=f"cannot build {self.ad.name} inputs: {describe_exception(e)}")
        t0 = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out, err = call_with_timeout(self.fn, fargs, self.timeout)
        dt = time.perf_counter() - t0
        if err == "timeout":
            return Outcome("timeout", message=f"did not return within the per-call timeout of {self.timeout:g} s "
                           "(hang); --timeout sets it", seconds=dt)
        if err is not None:
            return Outcome("raised", message=f"raised {describe_exception(err)}", seconds=dt)
        if dt > self.timeout:  # it swallowed the interrupt and finished late: still a hang
            return Outcome("timeout", message=f"returned only after {dt:.1f} s, past the per-call timeout of "
                           f"{self.timeout:g} s (it caught the interrupt); --timeout sets it", seconds=dt)
        # mutated inputs?
        for arg, v, fa in zip(self.q.args, inputs, fargs):
            if not (arg.is_float_array or arg.is_index_array):
                continue
            try:
                now = self.ad.to_numpy(fa)
            except Exception:  # noqa: BLE001
                continue
            before = np.asarray(v).astype(self.ad.label_dtype) if arg.is_index_array else np.asarray(v)
            if now.shape != before.shape or now.tobytes() != before.tobytes():
                changed = int(np.sum(now.reshape(-1).view(np.uint8) != before.reshape(-1).view(np.uint8))) \
                    if now.shape == before.shape and now.dtype == before.dtype else -1
                what = f"{changed} byte(s) changed" if changed >= 0 else f"now shape {now.shape}, dtype {now.dtype}"
                return Outcome("mutated", message=f"mutated its input {arg.name!r} in place ({what}); "
                               "an implementation must not write to its arguments", seconds=dt)
        if not self.ad.is_array(out):
            return Outcome("not_array", message=f"returned {type(out).__module__}.{type(out).__qualname__}"
                           f" ({_short_repr(out)}) instead of a {self.ad.array_type()}", seconds=dt)
        expect_shape = expected_shape(self.q, inputs)
        shape = tuple(out.shape)
        if shape != tuple(expect_shape):
            return Outcome("wrong_shape", message=f"returned shape {shape}; expected {tuple(expect_shape)} "
                           f"({_shape_rule(self.q)})", seconds=dt)
        got = self.ad.dtype_of(out)
        if got != self.dtype:
            return Outcome("wrong_dtype", message=f"returned dtype {got}; expected {self.dtype} (the dtype of its "
                           "inputs; round the result once to it)", seconds=dt)
        try:
            y = self.ad.to_numpy(out).astype(np.float64)
        except Exception as e:  # noqa: BLE001
            return Outcome("unreadable", message=f"result could not be read back: {describe_exception(e)}", seconds=dt)
        return Outcome("ok", y, seconds=dt)


def _short_repr(x, n=60):
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001
        r = "<unrepresentable>"
    return r if len(r) <= n else r[: n - 3] + "..."


def expected_shape(q, inputs):
    vals = [np.asarray(v).astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind != "i" else v
            for v in inputs]
    return Q.output_shape(q, vals)


def _shape_rule(q):
    return {Q.ELEMENTWISE: "elementwise: the broadcast shape of the inputs",
            Q.ROW: "same shape as the input",
            Q.ROW_REDUCE: "one value per row: the input shape without the last axis",
            Q.TABLE_REDUCE: "one value per table: the input shape without the last two axes",
            Q.ADAPTIVE: "(batch, V): one log-probability per class and row of h"}[q.structure]


# ====================================================================== exact reference (cached)

_REF_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
_REF_CACHE_MAX = 20_000


def case_key(qname, dtype, inputs):
    parts = [qname, dtype]
    for v in inputs:
        if isinstance(v, np.ndarray):
            parts.append((str(v.dtype), v.shape, v.tobytes()))
        else:
            parts.append(float(v))
    return tuple(parts)


def exact_values(qname, dtype, inputs):
    """reference.evaluate on the inputs (exactly widened), memoised across gate runs."""
    from .. import reference

    k = case_key(qname, dtype, inputs)
    hit = _REF_CACHE.get(k)
    if hit is not None:
        _REF_CACHE.move_to_end(k)
        return hit
    args = [v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind not in "iu" else v for v in inputs]
    ex = reference.evaluate(qname, *args)
    _REF_CACHE[k] = ex
    if len(_REF_CACHE) > _REF_CACHE_MAX:
        _REF_CACHE.popitem(last=False)
    return ex



def short_number(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.9g}"


def ulp_text(u):
    if not np.isfinite(u):
        return "ULP n/a"
    return f"{u:.3g} ULP" if u < 1e6 else f"{u:.3e} ULP"



def reduce_to_unit(q, inputs, index):
    """The one row / element / table of ``inputs`` that produces output ``index`` (batch of 1)."""
    if index is None:
        return None
    vals = [np.asarray(v) if isinstance(v, np.ndarray) else v for v in inputs]
    out_shape = expected_shape(q, vals)
    if int(np.prod(out_shape)) <= 1:
        return None
    if q.structure == Q.ELEMENTWISE:
        red = []
        for arg, v in zip(q.args, vals):
            if isinstance(v, np.ndarray):
                b = np.broadcast_to(v, out_shape)
                red.append(np.array([b[index]], dtype=v.dtype))
            else:
                red.append(v)
        return red
    lead = index if q.structure not in (Q.ROW, Q.ADAPTIVE) else index[:-1]
    if len(lead) == 0:
        return None
    red = []
    for arg, v in zip(q.args, vals):
        if q.structure == Q.ADAPTIVE and arg.kind == Q.WEIGHT:
            red.append(v)  # weights are shared by every row
        elif arg.is_float_array or arg.is_index_array:
            red.append(np.ascontiguousarray(v[lead][None]))
        else:
            red.append(v)
    return red



def py_value(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def nested_literal(a):
    a = np.asarray(a)
    if a.ndim == 0:
        return py_value(a) if a.dtype.kind == "f" else str(int(a))
    return "[" + ", ".join(nested_literal(x) for x in a) + "]"


def array_literal(ad, a, dtype, is_label=False, name="x"):
    a = np.asarray(a)
    if is_label:
        return ad.label_literal(nested_literal(a.astype(np.int64)))
    f64 = a.astype(np.float64)
    if f64.size > 1 and np.all(f64 == f64.flat[0]) and np.isfinite(f64.flat[0]):
        return ad.full(tuple(f64.shape), py_value(f64.flat[0]), dtype)
    return ad.literal(nested_literal(f64), dtype, a.shape)



def array_summary(a):
    a = np.asarray(a, dtype=np.float64)
    return f"<{a.shape} array; first values {nested_literal(a.reshape(-1)[:8])}>"



class ReferenceFailure(Exception):
    """The exact reference (or the judge) could not evaluate this input (reported as a note, case skipped)."""



def jsonable(v):
    if isinstance(v, np.ndarray):
        a = v.astype(np.float64) if v.dtype.kind not in "iu" else v
        return {"dtype": str(v.dtype), "shape": list(v.shape),
                "values": a.tolist() if v.dtype.kind in "iu" else [py_value(x) for x in a.reshape(-1)]}
    if isinstance(v, float):
        return py_value(v)
    return v

"""The numerical-correctness gate: audit a user's own implementation of one quantity.

``run_gate(fn, quantity, framework, dtypes=..., profile=...)`` drives ``fn`` with the fixed corpus
(the shared known-hard cases plus the gate's own probes) and then a seeded hypothesis search, in
each dtype, judges every result against the exact reference with the profile's thresholds, and
returns a :class:`GateReport`: per dtype a verdict, the metrics against the thresholds and, for a
failure, a shrunk copy-paste reproducer (inputs, the exact value, what the implementation
returned).

The implementation is called as ``fn(*args)`` with the quantity's arguments in the DESIGN table
order, as arrays of the framework in the audited dtype (labels int64 -- int32 under JAX without
x64 --, scalars Python floats), on fresh copies. Anything other than a correct array is a
failure with what happened: an exception, a hang past the per-call timeout, a non-array, the
wrong shape or dtype, a mutated input. The gate itself never crashes on a hostile implementation
and never passes one.

With ``grad=True`` (``infoaudit gate --grad``) each dtype's forward audit is followed by an audit
of the implementation's gradients through its framework's autodiff on the same inputs
(:mod:`.gate_grad`); its verdict is ``DtypeResult.grad``.
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
from dataclasses import dataclass, field

import numpy as np

from .. import quantities as Q
from ..dtypes import cast, dtype_name, fmt, ulp_of
from ..results.compare_cells import grew
from . import ftz as FTZ
from . import profiles as P
from .metrics import element_errors


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


def _fmt_exc(e):
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
            if arg.kind == Q.LABEL:
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
            return Outcome("unsupported", message=f"cannot build {self.ad.name} inputs: {_fmt_exc(e)}")
        t0 = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out, err = call_with_timeout(self.fn, fargs, self.timeout)
        dt = time.perf_counter() - t0
        if err == "timeout":
            return Outcome("timeout", message=f"did not return within the per-call timeout of {self.timeout:g} s "
                           "(hang); --timeout sets it", seconds=dt)
        if err is not None:
            return Outcome("raised", message=f"raised {_fmt_exc(err)}", seconds=dt)
        if dt > self.timeout:  # it swallowed the interrupt and finished late: still a hang
            return Outcome("timeout", message=f"returned only after {dt:.1f} s, past the per-call timeout of "
                           f"{self.timeout:g} s (it caught the interrupt); --timeout sets it", seconds=dt)
        # mutated inputs?
        for arg, v, fa in zip(self.q.args, inputs, fargs):
            if not (arg.is_float_array or arg.kind == Q.LABEL):
                continue
            try:
                now = self.ad.to_numpy(fa)
            except Exception:  # noqa: BLE001
                continue
            before = np.asarray(v).astype(self.ad.label_dtype) if arg.kind == Q.LABEL else np.asarray(v)
            if now.shape != before.shape or now.tobytes() != before.tobytes():
                changed = int(np.sum(now.reshape(-1).view(np.uint8) != before.reshape(-1).view(np.uint8))) \
                    if now.shape == before.shape and now.dtype == before.dtype else -1
                what = f"{changed} byte(s) changed" if changed >= 0 else f"now shape {now.shape}, dtype {now.dtype}"
                return Outcome("mutated", message=f"mutated its input {arg.name!r} in place ({what}); "
                               "an implementation must not write to its arguments", seconds=dt)
        if not self.ad.is_array(out):
            return Outcome("not_array", message=f"returned {type(out).__module__}.{type(out).__qualname__}"
                           f" ({_short_repr(out)}) instead of a {self.ad.array_type()}", seconds=dt)
        expect_shape = _expected_shape(self.q, inputs)
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
            return Outcome("unreadable", message=f"result could not be read back: {_fmt_exc(e)}", seconds=dt)
        return Outcome("ok", y, seconds=dt)


def _short_repr(x, n=60):
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001
        r = "<unrepresentable>"
    return r if len(r) <= n else r[: n - 3] + "..."


def _expected_shape(q, inputs):
    vals = [np.asarray(v).astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind != "i" else v
            for v in inputs]
    return Q.output_shape(q, vals)


def _shape_rule(q):
    return {Q.ELEMENTWISE: "elementwise: the broadcast shape of the inputs",
            Q.ROW: "same shape as the input",
            Q.ROW_REDUCE: "one value per row: the input shape without the last axis",
            Q.TABLE_REDUCE: "one value per table: the input shape without the last two axes"}[q.structure]


# ====================================================================== exact reference (cached)

_REF_CACHE: "OrderedDict[tuple, object]" = OrderedDict()
_REF_CACHE_MAX = 20_000


def _key(qname, dtype, inputs):
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

    k = _key(qname, dtype, inputs)
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


# ====================================================================== judging one case


@dataclass
class Judgement:
    failed: bool
    kind: str                      # ok | numerical | raised | timeout | ... (harness kinds)
    message: str
    inputs: list
    y: np.ndarray | None = None
    exact: object = None
    expected: np.ndarray | None = None
    score: np.ndarray | None = None      # error / allowed per element (<= 1 passes)
    ulp: np.ndarray | None = None
    abs_err: np.ndarray | None = None
    nonfinite: np.ndarray | None = None
    invariants: list = field(default_factory=list)
    worst: tuple | None = None
    label: str = ""
    flushed: int = 0
    fw_score: float | None = None         # relative rule: the framework op's max error / unit

    @property
    def max_score(self):
        if self.score is None or self.score.size == 0:
            return 0.0
        s = self.score[np.isfinite(self.score)]
        return float(s.max()) if s.size else 0.0

    @property
    def nonfinite_count(self):
        return 0 if self.nonfinite is None else int(np.count_nonzero(self.nonfinite != ""))

    def target_value(self):
        if self.kind not in ("ok", "numerical"):
            return 1e6
        return min(1e6, self.max_score + 1e3 * self.nonfinite_count)


@dataclass
class Context:
    """Everything needed to judge cases of one quantity x dtype."""

    q: object
    dtype: str
    harness: Harness
    thresholds: P.Thresholds
    ftz: object = None                 # FTZ probe result (or None)
    flush_requested: bool = False
    baseline: dict | None = None       # baseline cell (regression mode)
    fw_op: object = None               # relative rule: callable(*framework args) -> framework array
    seen: list = field(default_factory=list)   # (label, prepared inputs, fixed?) of every case judged

    @property
    def flushing(self):
        return self.flush_requested or bool(self.ftz and self.ftz.active)


def _errors_against(ctx, y, ex, inputs):
    """(score, ulp, abs, nonfinite, expected, flushed_mask) of y against one Exact."""
    t = ctx.thresholds
    d = ctx.dtype
    f = fmt(d)
    errs = element_errors(y, ex, d, ctx.q.name, inputs)
    expected = errs.expected
    abs_err = errs.abs.copy()
    ulp = errs.ulp.copy()
    nonfinite = errs.nonfinite.copy()
    flushed = np.zeros(y.shape, bool)
    with np.errstate(all="ignore"):
        # exact value finite but beyond the dtype's range: a finite y near +-max is judged by its error
        beyond = np.isfinite(ex.hi) & ~np.isfinite(expected) & np.isfinite(y) & (nonfinite != "")
        if beyond.any():
            nonfinite = np.where(beyond, "", nonfinite)
            abs_err = np.where(beyond, np.abs(y - ex.hi), abs_err)
            ulp = np.where(beyond, abs_err / ulp_of(ex.hi, f), ulp)
        # an overflow to the right infinity where |exact| is within the margin of max
        if t.overflow_margin > 1:
            near = (np.isfinite(ex.hi) & np.isinf(y) & (np.sign(y) == np.sign(ex.hi))
                    & (np.abs(ex.hi) > f.max / t.overflow_margin) & (nonfinite != ""))
            if near.any():
                nonfinite = np.where(near, "", nonfinite)
                abs_err = np.where(near, 0.0, abs_err)
                ulp = np.where(near, 0.0, ulp)
    unjudged = np.zeros(y.shape, bool)
    if t.infinite_inputs == "masks":
        unjudged = P.unjudged_mask(ctx.q.name, inputs)
        if unjudged.any():
            nonfinite = np.where(unjudged, "", nonfinite)
            abs_err = np.where(unjudged, 0.0, abs_err)
            ulp = np.where(unjudged, 0.0, ulp)
    if not t.require_nan:
        undefined = np.isnan(ex.hi) & (nonfinite != "")
        nonfinite = np.where(undefined, "", nonfinite)
        abs_err = np.where(undefined, 0.0, abs_err)
        ulp = np.where(undefined, 0.0, ulp)
    if ctx.flushing:
        # the platform rounds subnormal results to zero: judge against the flushed rounding
        sub = np.isfinite(expected) & (expected != 0) & (np.abs(expected) < f.tiny)
        flushed = sub & (y == 0)
        abs_err = np.where(flushed, 0.0, abs_err)
        ulp = np.where(flushed, 0.0, ulp)
        expected = np.where(flushed, 0.0, expected)
    n = P.reduction_length(ctx.q.name, inputs)
    with np.errstate(all="ignore"):
        u_ulp = ulp_of(ex.hi, f)
        allowed = t.ulp_limit(n) * u_ulp
        if t.floor:
            S = P.scale(ctx.q.name, inputs)
            allowed = np.maximum(allowed, t.floor * f.unit_roundoff * S)
        if t.rel is not None:
            allowed = np.maximum(allowed, t.rel * np.abs(ex.hi))
        score = np.where(np.isfinite(abs_err), abs_err / allowed, np.nan)
        score = np.where(nonfinite != "", np.nan, score)
    ctx.unjudged_count = getattr(ctx, "unjudged_count", 0) + int(unjudged.sum())
    return score, ulp, abs_err, nonfinite, expected, flushed, allowed


def judge(ctx: Context, inputs, outcome: Outcome, label="") -> Judgement:
    """Judge one implementation outcome on ``inputs`` (numpy arrays in the dtype)."""
    if not outcome.ok:
        return Judgement(True, outcome.kind, outcome.message, inputs, label=label)
    y = outcome.value
    try:
        ex = exact_values(ctx.q.name, ctx.dtype, inputs)
    except Exception as e:  # noqa: BLE001 - a reference limitation must not fail the user's build
        raise _ReferenceError(_fmt_exc(e)) from e
    score, ulp, abs_err, nonfinite, expected, flushed, allowed = _errors_against(ctx, y, ex, inputs)
    if ctx.flushing and ctx.ftz is not None and ctx.ftz.flushes_inputs and any(
            isinstance(v, np.ndarray) and v.dtype.kind not in "iu" and FTZ.has_subnormal(v, ctx.dtype) for v in inputs):
        # the platform reads subnormal inputs as zero: also accept the exact value of the flushed inputs
        fin = [cast(FTZ.flush(v, ctx.dtype), ctx.dtype) if isinstance(v, np.ndarray) and v.dtype.kind not in "iu"
               else v for v in inputs]
        try:
            ex2 = exact_values(ctx.q.name, ctx.dtype, fin)
            s2, u2, a2, n2, e2, f2, _ = _errors_against(ctx, y, ex2, fin)
            better = (n2 == "") & ((nonfinite != "") | (np.nan_to_num(s2, nan=np.inf) < np.nan_to_num(score, nan=np.inf)))
            score = np.where(better, s2, score)
            ulp = np.where(better, u2, ulp)
            abs_err = np.where(better, a2, abs_err)
            nonfinite = np.where(better, n2, nonfinite)
            flushed = flushed | (better & f2)
        except Exception:  # noqa: BLE001 - flushed inputs outside the quantity's domain
            pass
    t = ctx.thresholds
    j = Judgement(False, "ok", "", inputs, y=y, exact=ex, expected=expected, score=score, ulp=ulp,
                  abs_err=abs_err, nonfinite=nonfinite, label=label, flushed=int(flushed.sum()))
    reasons = []
    nf = j.nonfinite_count
    if t.relative_k and ctx.fw_op is not None:
        return _judge_relative(ctx, j, inputs, ex)
    if nf > t.nonfinite:
        first = tuple(int(i) for i in np.argwhere(nonfinite != "")[0])
        cls = nonfinite[first]
        reasons.append(f"{nf} non-finite mismatch(es) (limit {t.nonfinite}): returned {_num(y[first])} where the "
                       f"exact value is {_num(ex.hi[first])} [{cls}] at index {first}")
        j.worst = first
    fin = np.isfinite(score)
    bad = fin & (score > 1.0)
    if bad.any():
        w = tuple(int(i) for i in np.unravel_index(np.argmax(np.where(fin, score, -1)), score.shape))
        reasons.append(f"error {score[w]:.3g}x the allowed at index {w}: returned {_num(y[w])}, exact "
                       f"{_num(ex.hi[w])} ({_ulp_txt(ulp[w])}, abs {abs_err[w]:.3g}; allowed "
                       f"{allowed[w]:.3g} = max({t.ulp_limit(P.reduction_length(ctx.q.name, inputs)):.3g} ULP"
                       + (f", {t.floor:g}*u*S" if t.floor else "") + "))")
        if j.worst is None:
            j.worst = w
    if t.invariants:
        tol = np.where(np.isfinite(allowed), allowed, 0.0)
        j.invariants = P.invariant_violations(ctx.q.name, y, tol, inputs, ctx.dtype, ex.hi)
        if j.invariants:
            reasons.append("invariant violated: " + "; ".join(j.invariants))
    if ctx.baseline is not None:
        return _judge_baseline(ctx, j, reasons)
    if reasons:
        j.failed = True
        j.kind = "numerical"
        j.message = "; ".join(reasons)
    if j.worst is None and score.size:
        j.worst = tuple(int(i) for i in np.unravel_index(np.argmax(np.nan_to_num(score, nan=0.0)), score.shape))
    return j


def _judge_baseline(ctx, j, reasons):
    b = ctx.baseline
    worse = []
    if j.nonfinite_count and not (b.get("nonfinite_total", 0) or b.get("fixed_nonfinite", 0)):
        worse.append(f"{j.nonfinite_count} non-finite mismatch(es); the baseline had none")
    lim = max(float(b.get("max_score", 0.0)), float(b.get("fixed_max_score", 0.0)))
    # the comparison of `infoaudit diff` (results.compare_cells.grew): beyond the baseline's worst
    # (factor 1, up to rounding) and beyond the profile's limit (floor 1 = the allowed error)
    if grew(lim + 1e-12, j.max_score, factor=1 + 1e-9, floor=1.0):
        worse.append(f"error {j.max_score:.3g}x the allowed; the baseline's worst was {lim:.3g}x")
    if worse:
        j.failed = True
        j.kind = "numerical"
        j.message = "worse than the baseline: " + "; ".join(worse) + (" (" + "; ".join(reasons) + ")" if reasons else "")
    return j


def _judge_relative(ctx, j, inputs, ex):
    """FlashAttention-style rule: max error <= k x the framework op's max error (+ the ULP limit)."""
    t = ctx.thresholds
    f = fmt(ctx.dtype)
    fw = Outcome("raised", message="no framework op")
    try:
        fargs = ctx.harness.framework_args(inputs)
        with ctx.harness.ad.x64(ctx.dtype == "float64"), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = ctx.fw_op(*fargs)
        y_fw = ctx.harness.ad.to_numpy(out).astype(np.float64).reshape(j.y.shape)
        fw = Outcome("ok", y_fw)
    except Exception as e:  # noqa: BLE001
        fw = Outcome("raised", message=_fmt_exc(e))
    with np.errstate(all="ignore"):
        S = P.scale(ctx.q.name, inputs)
        unit = np.maximum(ulp_of(ex.hi, f), f.unit_roundoff * S)
        e_impl = np.where(np.isfinite(j.abs_err), j.abs_err / unit, np.nan)
        mi = float(np.nanmax(e_impl)) if np.isfinite(e_impl).any() else 0.0
        if fw.ok:
            ferr = element_errors(fw.value, ex, ctx.dtype, ctx.q.name, inputs)
            e_fw = np.where(np.isfinite(ferr.abs), ferr.abs / unit, np.nan)
            mf = float(np.nanmax(e_fw)) if np.isfinite(e_fw).any() else 0.0
            fw_bad = ferr.nonfinite != ""
        else:
            mf = 0.0
            fw_bad = np.zeros(j.y.shape, bool)
    j.fw_score = mf
    j.score = np.where(np.isfinite(e_impl), e_impl / (t.relative_k * mf + t.ulp), np.nan)
    extra_nf = int(np.count_nonzero((j.nonfinite != "") & ~fw_bad))
    reasons = []
    if extra_nf > t.nonfinite:
        first = tuple(int(i) for i in np.argwhere((j.nonfinite != "") & ~fw_bad)[0])
        reasons.append(f"{extra_nf} non-finite mismatch(es) where the framework op is finite-correct: returned "
                       f"{_num(j.y[first])}, exact {_num(ex.hi[first])} at index {first}")
        j.worst = first
    if mi > t.relative_k * mf + t.ulp:
        w = tuple(int(i) for i in np.unravel_index(np.nanargmax(e_impl), e_impl.shape))
        reasons.append(f"max error {mi:.3g} units > {t.relative_k:g} x the framework op's {mf:.3g} + {t.ulp:g} "
                       f"(unit = max(ULP, u*S)) at index {w}")
        j.worst = j.worst or w
    if not fw.ok:
        reasons.append(f"(the framework op itself failed: {fw.message})")
    if reasons and (extra_nf > t.nonfinite or mi > t.relative_k * mf + t.ulp):
        j.failed = True
        j.kind = "numerical"
        j.message = "; ".join(reasons)
    return j


def _num(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.9g}"


def _ulp_txt(u):
    if not np.isfinite(u):
        return "ULP n/a"
    return f"{u:.3g} ULP" if u < 1e6 else f"{u:.3e} ULP"


# ====================================================================== inputs: probes, corpus, search


def _A(v, dtype):
    """Nested lists -> array in dtype (one rounding; beyond-range values clipped to +-max)."""
    a = np.array(v, dtype=np.float64)
    f = fmt(dtype)
    with np.errstate(invalid="ignore"):
        a = np.where(np.isfinite(a), np.clip(a, -f.max, f.max), a)
    return cast(a, dtype)


def probes(quantity, dtype) -> list:
    """The gate's own fixed cases: inputs on which each textbook instability shows, per dtype.

    ``[(label, args)]``. They complement :func:`infoaudit.corpus.cases` and make the verdict on
    the classic mistakes independent of the search's luck.
    """
    q = Q.get(quantity)
    d = dtype_name(dtype)
    f = fmt(d)
    X = math.log(f.max)                       # exp overflows above X
    U = -math.log(f.smallest_subnormal)       # exp underflows to 0 below -U
    sub = f.smallest_subnormal
    A = lambda v: _A(v, d)  # noqa: E731
    kinds = tuple(a.kind for a in q.args)
    I64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    out = []
    logit_rows = [
        ("probe: logits beyond the exp overflow threshold", [[2 * X, X + 1, 0.5 * X, 0.0]]),
        ("probe: logits far below (exp underflows)", [[-2 * X - 8, -2 * X - 9, -2 * X - 11, -2 * X - 12]]),
        ("probe: spread into the subnormal range", [[0.0, -0.5 * U, -0.95 * U, -1.5 * U]]),
        ("probe: confident row", [[0.5 * X, 0.0, -1.0, -0.5 * X]]),
        ("probe: -inf masks", [[0.0, -math.inf, 1.0, -math.inf]]),
        ("probe: all -inf row", [[-math.inf, -math.inf, -math.inf, -math.inf]]),
    ]
    long_row = d in ("float16", "bfloat16")
    if kinds == (Q.LOGITS,):
        out = [(lab, (A(z),)) for lab, z in logit_rows]
        if long_row:
            out.append(("probe: 3000 equal logits (a sequential low-precision sum stalls)", (A(np.zeros((1, 3000))),)))
    elif kinds in ((Q.LOGITS, Q.LABEL), (Q.LOGITS, Q.LABEL, Q.EPS)):
        extra = (0.1,) if len(kinds) == 3 else ()
        for lab, z in logit_rows[:5]:
            za = A(z)
            for y in (0, 3):
                out.append((f"{lab}, y = {y}", (za, I64([y])) + extra))
        if len(kinds) == 3:
            out.append(("probe: K = 3 moderate logits, eps = 0.2", (A([[1.5, -0.5, 0.25]]), I64([0]), 0.2)))
        if long_row:
            out.append(("probe: 3000 equal logits", (A(np.zeros((1, 3000))), I64([5])) + extra))
    elif kinds == (Q.LOGPROBS, Q.LABEL):
        lp = A([[-1e-4, -0.5 * X, -U, -2.0]])
        out = [(f"probe: log-probabilities, y = {y}", (lp, I64([y]))) for y in (0, 1, 2)]
    elif kinds in ((Q.LOGITS, Q.LOGITS, Q.TEMPERATURE), (Q.LOGITS, Q.LOGITS, Q.BETA)):
        s = 2.0 if q.name == "distillation_loss" else 1.0
        z1 = [[1.0, -0.5, 2.0, 0.25]]
        z2 = [[0.5, 1.5, -1.0, 0.0]]
        out = [("probe: moderate logits", (A(z1), A(z2), s)),
               ("probe: moderate logits, T = 4" if s == 2.0 else "probe: moderate logits, beta = 0.5",
                (A(z2), A(z1), 4.0 if s == 2.0 else 0.5)),
               ("probe: logits beyond the exp overflow threshold", (A([[2 * X, 0.0, X + 1]]), A([[X + 1, 2 * X, 0.0]]), s)),
               ("probe: nearly equal rows (cancellation)", (A(z1), A([[1.0, -0.5, 2.0, 0.25 + 2 * f.eps]]), s)),
               ("probe: teacher/policy spread into the subnormal range",
                (A([[0.0, -0.95 * U * s, 1.0]]), A([[0.0, -0.3 * U * s, 1.0]]), s))]
    elif kinds == (Q.REAL,):
        xs = [[-2 * U, -1.1 * U, -0.95 * U, -X - 1, -X + 0.5, -0.5 * X, -40.0, -20.0, -1.0, -1e-3, 0.0,
               1e-3, 1.0, 20.0, 40.0, 0.5 * X, X - 0.5, X + 1, 0.95 * U, 2 * U]]
        out = [("probe: around the exp overflow/underflow thresholds", (A(xs),))]
    elif kinds == (Q.REAL, Q.TARGET01):
        xs = [-2 * U, -0.95 * U, -X - 1, -40.0, -20.0, -1.0, 0.0, 1.0, 20.0, 40.0, X + 1, 0.95 * U, 2 * U]
        for t in (0.0, 1.0, 0.5, 0.875):
            out.append((f"probe: logits around the thresholds, t = {t}", (A([xs]), A([[t] * len(xs)]))))
    elif kinds in ((Q.PROB,), (Q.PROB, Q.TARGET01)):
        ps = [0.0, sub, 3 * sub, f.tiny, 1e-3, 0.125, 0.5, 0.9, 1.0 - f.eps, 1.0]
        if kinds == (Q.PROB,):
            out = [("probe: 0, subnormal, tiny, near 1, 1", (A([ps]),))]
        else:
            for t in (0.0, 1.0, 0.25):
                out.append((f"probe: p from 0 to 1, t = {t}", (A([ps]), A([[t] * len(ps)]))))
    elif kinds == (Q.PROBS,):
        out = [("probe: exact zeros", (A([[0.0, 0.5, 0.25, 0.25]]),)),
               ("probe: subnormal entries", (A([[sub, 4 * sub, 0.5, 0.5 - 5 * sub]]),)),
               ("probe: one near 1", (A([[1.0 - f.eps, f.eps / 2, f.eps / 2, 0.0]]),))]
    elif kinds == (Q.PROBS, Q.PROBS):
        out = [("probe: zeros in p", (A([[0.0, 0.5, 0.5, 0.0]]), A([[0.25, 0.25, 0.25, 0.25]]))),
               ("probe: q subnormal where p is not (p/q overflows)",
                (A([[0.5, 0.25, 0.25, 0.0]]), A([[sub, 0.5, 0.5 - sub, 0.0]]))),
               ("probe: q = 0 where p > 0 (exact +inf)", (A([[0.5, 0.5, 0.0, 0.0]]), A([[0.0, 0.5, 0.5, 0.0]]))),
               ("probe: q small, p moderate", (A([[0.5, 0.5, 0.0, 0.0]]), A([[1e-4 * f.eps, 1.0 - 1e-4 * f.eps, 0.0, 0.0]]))),
               ("probe: p = q + tiny (cancellation)",
                (A([[0.25, 0.25, 0.25 + 2 * f.eps, 0.25 - 2 * f.eps]]), A([[0.25, 0.25, 0.25, 0.25]])))]
    elif kinds == (Q.MU, Q.LOGVAR):
        out = [("probe: logvar near 0 (cancellation)", (A([[0.0, 1e-3, 0.0]]), A([[2 * f.eps, -2 * f.eps, 1e-3]]))),
               ("probe: logvar far below (exp(logvar) underflows)", (A([[0.0, 0.5]]), A([[-1.5 * U, -1.1 * U]]))),
               ("probe: moderate", (A([[0.5, -1.0, 2.0]]), A([[0.5, -1.0, 1.5]])))]
    elif kinds == (Q.TABLE,):
        out = [("probe: zeros in the table", (A([[[0.5, 0.0], [0.25, 0.25]]]),)),
               ("probe: subnormal cells", (A([[[sub, 0.5 - sub], [0.25, 0.25]]]),)),
               ("probe: independent 2x2", (A([[[0.25, 0.25], [0.25, 0.25]]]),))]
    good = []
    for lab, args in out:
        try:
            Q.validate(q, args)
        except Q.InputError:
            continue
        good.append((lab, tuple(args)))
    return good


def fixed_cases(quantity, dtype) -> list:
    """Probes, then the shared corpus (``infoaudit.corpus.cases``) when it is installed."""
    out = list(probes(quantity, dtype))
    try:
        from .. import corpus
    except ModuleNotFoundError:
        return out
    try:
        for c in corpus.cases(quantity, dtype):
            if isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str):
                out.append((c[0], tuple(c[1])))
            elif hasattr(c, "args"):
                out.append((getattr(c, "label", "") or getattr(c, "name", "corpus"), tuple(c.args)))
            else:
                out.append(("corpus", tuple(c)))
    except Exception as e:  # noqa: BLE001 - a broken corpus must not break the gate
        out.append(("(corpus unavailable: %s)" % _fmt_exc(e), None))
    return [c for c in out if c[1] is not None]


def search_strategy(quantity, dtype, inputs="quick"):
    from .. import strategies

    return strategies.arguments(quantity, dtype, inputs)


def _prepare(q, args, dtype):
    from .compare import prepare_inputs

    return prepare_inputs(q, args, dtype)


def reduce_to_unit(q, inputs, index):
    """The one row / element / table of ``inputs`` that produces output ``index`` (batch of 1)."""
    if index is None:
        return None
    vals = [np.asarray(v) if isinstance(v, np.ndarray) else v for v in inputs]
    out_shape = _expected_shape(q, vals)
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
    lead = index if q.structure != Q.ROW else index[:-1]
    if len(lead) == 0:
        return None
    red = []
    for arg, v in zip(q.args, vals):
        if arg.is_float_array or arg.kind == Q.LABEL:
            red.append(np.ascontiguousarray(v[lead][None]))
        else:
            red.append(v)
    return red


# ====================================================================== results


@dataclass
class DtypeResult:
    dtype: str
    verdict: str                     # pass | fail | skipped
    cases: int = 0
    elements: int = 0
    max_ulp: float = 0.0
    max_abs: float = 0.0
    max_score: float = 0.0           # max error / allowed (<= 1 passes)
    nonfinite_total: int = 0
    fixed_max_score: float = 0.0     # over the fixed cases only (all of them always run)
    fixed_nonfinite: int = 0
    thresholds: dict = field(default_factory=dict)
    threshold_text: str = ""
    failure: dict | None = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    calls: int = 0
    call_seconds: float = 0.0
    grad: dict | None = None         # --grad: the gradient audit of this dtype (gate_grad.grad_cell)

    @property
    def grad_failed(self):
        return bool(self.grad) and self.grad.get("verdict") == "fail"

    @property
    def failed(self):
        return self.verdict == "fail" or self.grad_failed

    def as_dict(self):
        d = dict(self.__dict__)
        if d.get("grad") is None:
            d.pop("grad", None)
        return d


@dataclass
class GateReport:
    quantity: str
    impl: str
    framework: str
    device: str
    profile: str
    seed: int
    examples: int
    results: list
    source: tuple | None = None      # (file, line) of the implementation
    grad: bool = False               # gradients audited too (--grad)

    @property
    def passed(self):
        return all(r.verdict in ("pass", "skipped") and not r.grad_failed for r in self.results) and any(
            r.verdict == "pass" for r in self.results)

    @property
    def exit_code(self):
        return 0 if self.passed else 1

    def as_dict(self):
        return {"infoaudit_gate": 1, "quantity": self.quantity, "impl": self.impl, "framework": self.framework,
                "device": self.device, "profile": self.profile, "seed": self.seed, "examples": self.examples,
                "grad": self.grad, "passed": self.passed, "exit_code": self.exit_code,
                "cells": {r.dtype: r.as_dict() for r in self.results}}


# ====================================================================== the reproducer


def _pyval(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def _nested(a):
    a = np.asarray(a)
    if a.ndim == 0:
        return _pyval(a) if a.dtype.kind == "f" else str(int(a))
    return "[" + ", ".join(_nested(x) for x in a) + "]"


def _lit(ad, a, dtype, is_label=False, name="x"):
    a = np.asarray(a)
    if is_label:
        return ad.label_literal(_nested(a.astype(np.int64)))
    f64 = a.astype(np.float64)
    if f64.size > 1 and np.all(f64 == f64.flat[0]) and np.isfinite(f64.flat[0]):
        return ad.full(tuple(f64.shape), _pyval(f64.flat[0]), dtype)
    return ad.literal(_nested(f64), dtype, a.shape)


def reproducer(ctx: Context, j: Judgement, impl_import: str, fn_name: str) -> str:
    """Copy-paste Python that calls the implementation on the failing inputs."""
    ad = ctx.harness.ad
    q = ctx.q
    lines = [f"# infoaudit gate reproducer: {q.signature()}, {ctx.dtype}, {ad.name}"
             + (f" on {ad.device}" if ad.device != "cpu" else "")]
    imports = [ad.imports, "inf, nan = float('inf'), float('nan')"]
    if ad.name == "numpy" and ctx.dtype == "bfloat16":
        imports.insert(1, "import ml_dtypes")
    lines += imports
    lines.append(impl_import)
    names = []
    big = sum(np.asarray(v).size for v in j.inputs if isinstance(v, np.ndarray)) > 20000
    for arg, v in zip(q.args, j.inputs):
        names.append(arg.name)
        if isinstance(v, np.ndarray):
            if big and arg.is_float_array and np.asarray(v).size > 20000:
                lines.append(f"{arg.name} = ...  # {v.shape} {ctx.dtype} array: too large to print; see the JSON report")
            else:
                lines.append(f"{arg.name} = {_lit(ad, v, ctx.dtype, arg.kind == Q.LABEL, arg.name)}")
        else:
            lines.append(f"{arg.name} = {_pyval(v)}")
    lines.append(f"out = {fn_name}({', '.join(names)})")
    if j.y is not None:
        lines.append(f"# returned: {_nested(j.y) if j.y.size <= 64 else _summ(j.y)}")
        lines.append(f"# expected: {_nested(j.expected) if j.expected.size <= 64 else _summ(j.expected)}"
                     f"   (exact value correctly rounded to {ctx.dtype}"
                     + (", subnormals flushed to zero as this platform does" if ctx.flushing else "") + ")")
        if j.worst is not None:
            w = j.worst
            lines.append(f"# worst at {w}: returned {_pyval(j.y[w])}, exact {_pyval(j.exact.hi[w])}"
                         f" (+ {j.exact.lo[w]:.3g}), {_ulp_txt(j.ulp[w]) if j.ulp is not None else ''}")
    lines.append(f"# problem: {j.message}")
    return "\n".join(lines)


def _summ(a):
    a = np.asarray(a, dtype=np.float64)
    return f"<{a.shape} array; first values {_nested(a.reshape(-1)[:8])}>"


# ====================================================================== the search for one dtype


class _ReferenceError(Exception):
    """The exact reference could not evaluate this input (reported as a note, case skipped)."""


class _Found(Exception):
    def __init__(self, j):
        super().__init__(j.message)
        self.j = j


def gate_dtype(ctx: Context, *, examples=60, seed=0, inputs="quick", shrink_s=10.0, log=None) -> tuple:
    """(DtypeResult fields, failing Judgement or None) for one dtype: fixed cases, then search."""
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings, target

    stats = {"cases": 0, "elements": 0, "max_ulp": 0.0, "max_abs": 0.0, "max_score": 0.0, "nonfinite": 0,
             "calls": 0, "call_seconds": 0.0, "fixed_max_score": 0.0, "fixed_nonfinite": 0}
    notes = []

    def account(j, outcome):
        stats["calls"] += 1
        stats["call_seconds"] += outcome.seconds
        if j.kind in ("ok", "numerical") and j.score is not None:
            stats["cases"] += 1
            stats["elements"] += int(j.score.size)
            fin = np.isfinite(j.ulp)
            if fin.any():
                stats["max_ulp"] = max(stats["max_ulp"], float(j.ulp[fin].max()))
            fa = np.isfinite(j.abs_err) & (j.nonfinite == "")
            if fa.any():
                stats["max_abs"] = max(stats["max_abs"], float(j.abs_err[fa].max()))
            stats["max_score"] = max(stats["max_score"], j.max_score)
            stats["nonfinite"] += j.nonfinite_count

    def run_case(args, label="", fixed=False):
        inputs = _prepare(ctx.q, args, ctx.dtype)
        outcome = ctx.harness.call(inputs)
        j = judge(ctx, inputs, outcome, label)
        account(j, outcome)
        ctx.seen.append((label, inputs, fixed))
        return j

    ref_skips = []

    def note_ref(e):
        ref_skips.append(str(e))

    # 1. the fixed corpus: every case runs (complete, deterministic statistics for --baseline)
    first_fail = None
    for label, args in fixed_cases(ctx.q.name, ctx.dtype):
        try:
            j = run_case(args, label, fixed=True)
        except Q.InputError:
            continue
        except _ReferenceError as e:
            note_ref(e)
            continue
        if j.failed and first_fail is None:
            first_fail = j
            if j.kind == "timeout":
                break  # a hanging implementation would hang on every case
    stats["fixed_max_score"] = stats["max_score"]
    stats["fixed_nonfinite"] = stats["nonfinite"]
    if first_fail is not None:
        return stats, _shrink_fixed(ctx, first_fail), notes + _ref_note(ref_skips)
    # 2. the seeded search
    if examples <= 0:
        return stats, None, notes
    try:
        strat = search_strategy(ctx.q.name, ctx.dtype, inputs)
    except ModuleNotFoundError:
        notes.append("infoaudit.strategies is not installed: fixed cases only")
        return stats, None, notes
    state = {"best": None, "stop": False, "t_fail": None}

    def same_args(a, b):
        return _key("", "", [np.asarray(x) if isinstance(x, np.ndarray) else x for x in a]) == \
            _key("", "", [np.asarray(x) if isinstance(x, np.ndarray) else x for x in b])

    @settings(max_examples=examples, database=None, deadline=None, derandomize=False, print_blob=False,
              phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), verbosity=__import__("hypothesis").Verbosity.quiet)
    @hseed(seed)
    @given(strat)
    def prop(args):
        best = state["best"]
        if state["stop"]:
            # out of shrinking budget (or a hang): only the best failure keeps failing
            if best is not None and same_args(args, best.inputs_raw):
                raise _Found(best)
            return
        try:
            j = run_case(args)
        except (Q.InputError, _ReferenceError) as e:
            if isinstance(e, _ReferenceError):
                note_ref(e)
            from hypothesis import reject
            reject()
        j.inputs_raw = args
        target(float(j.target_value()), label="error")
        if j.failed:
            if best is None or _size(j.inputs) <= _size(best.inputs):
                state["best"] = j
            if state["t_fail"] is None:
                state["t_fail"] = time.monotonic()
            if j.kind == "timeout" or time.monotonic() - state["t_fail"] > shrink_s:
                state["stop"] = True
            raise _Found(j)
        if state["t_fail"] is not None and time.monotonic() - state["t_fail"] > shrink_s:
            state["stop"] = True

    found = None
    try:
        prop()
        if ref_skips:
            notes.append(f"{len(ref_skips)} case(s) skipped: the exact reference failed ({ref_skips[0]})")
    except _Found as e:
        found = e.j
    except Exception as e:  # noqa: BLE001 - Flaky / hypothesis internals: keep the best failure seen
        found = state["best"]
        if found is None:
            notes.append(f"search stopped: {_fmt_exc(e)}")
    if found is not None:
        found = _shrink_fixed(ctx, found)
    if ref_skips and not any("exact reference failed" in n for n in notes):
        notes += _ref_note(ref_skips)
    return stats, found, notes


def _ref_note(skips):
    return [f"{len(skips)} case(s) skipped: the exact reference failed ({skips[0]})"] if skips else []


def _size(inputs):
    return sum(int(np.asarray(v).size) for v in inputs if isinstance(v, np.ndarray))


def _shrink_fixed(ctx, j):
    """Reduce a failing case to its worst row / element when that alone still fails."""
    if j.kind != "numerical":
        return j
    red = reduce_to_unit(ctx.q, j.inputs, j.worst)
    if red is None:
        return j
    try:
        outcome = ctx.harness.call(red)
        j2 = judge(ctx, red, outcome, j.label)
    except (Exception, _ReferenceError):  # noqa: BLE001
        return j
    if j2.failed:
        return j2
    return j


# ====================================================================== the gate


def describe_impl(fn):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    mod = getattr(fn, "__module__", None)
    try:
        src = inspect.getsourcefile(fn)
        line = inspect.getsourcelines(fn)[1]
    except (TypeError, OSError):
        src, line = None, None
    return (f"{mod}:{name}" if mod else name), ((src, line) if src else None)


def run_gate(fn, quantity, framework=None, *, dtypes=None, device="cpu", profile="default", examples=60,
             seed=0, timeout=20.0, relative=None, baseline=None, flush_to_zero=False, inputs="quick",
             impl_name=None, impl_import=None, fn_name="impl", user_profiles=None, log=None,
             grad=False) -> GateReport:
    """Gate ``fn`` as an implementation of ``quantity``; see the module docstring.

    ``grad``: also audit the gradients of ``fn`` through its framework's autodiff after each
    dtype's forward audit (:mod:`.gate_grad`; torch and jax only).

    Raises :class:`GateUsageError` for usage errors (unknown quantity/framework/dtype, bad profile,
    unreadable baseline, --grad without autodiff); implementation failures are verdicts, never
    exceptions.
    """
    try:
        q = Q.get(quantity)
    except Q.InputError as e:
        raise GateUsageError(str(e)) from None
    if not callable(fn):
        raise GateUsageError(f"{impl_name or fn!r} is not callable (it is a {type(fn).__name__})")
    framework = framework or infer_framework(fn)
    if grad:
        from . import gate_grad as GG
        GG.check_usage(framework, q.name)
    ad = framework_adapter(framework, device)
    if grad:
        try:
            GG._backend(framework)
        except Exception as e:  # noqa: BLE001 - BackendUnavailable
            raise GateUsageError(f"--grad: {e}") from None
    if isinstance(profile, P.Profile):
        prof = profile
    else:
        try:
            prof = P.load(profile or "default", user_profiles)
        except P.ProfileError as e:
            raise GateUsageError(str(e)) from None
    if relative:
        prof = prof.with_relative(relative)
    dts = tuple(dtypes) if dtypes else default_dtypes(framework)
    for d in dts:
        try:
            dtype_name(d)
        except ValueError as e:
            raise GateUsageError(str(e)) from None
    base_cells = _load_baseline(baseline, q.name) if baseline else None
    name, src = describe_impl(fn)
    impl_name = impl_name or name
    if impl_import is None:
        mod = getattr(fn, "__module__", None)
        if mod and mod != "__main__" and "<locals>" not in (getattr(fn, "__qualname__", "") or "") \
                and getattr(fn, "__name__", "").isidentifier():
            impl_import = f"from {mod} import {fn.__name__} as impl"
        else:
            where = f" ({src[0]}:{src[1]})" if src else ""
            impl_import = f"impl = ...  # your {getattr(fn, '__name__', 'function')}{where}"
    results = []
    for d in dts:
        t0 = time.perf_counter()
        d = dtype_name(d)
        th = prof.thresholds(q.name, d)
        res = DtypeResult(d, "pass", thresholds=th.as_dict(), threshold_text=th.describe())
        if d == "bfloat16" and not ad.has_bfloat16 and dtypes is None:
            res.verdict = "skipped"
            res.notes.append(f"{framework} has no native bfloat16")
            results.append(res)
            continue
        probe = FTZ.probe(framework, d, ad.device)
        fw_op = _framework_op(framework, q.name, device) if th.relative_k else None
        if th.relative_k and fw_op is None:
            res.notes.append(f"relative rule: {framework} has no op for {q.name}; judged by the absolute thresholds")
            th.relative_k = None
        ctx = Context(q, d, Harness(fn, q, ad, d, timeout), th, probe, bool(flush_to_zero),
                      base_cells.get(d) if base_cells is not None else None, fw_op)
        if base_cells is not None and d not in base_cells:
            res.notes.append("baseline has no cell for this dtype: judged by the profile")
        if probe.active:
            res.notes.append(probe.describe() + ": judged against the exact value rounded with subnormals "
                             "flushed to zero, as this platform rounds")
        elif flush_to_zero:
            res.notes.append("--flush-to-zero: subnormal results may be returned as zero")
        if probe.error:
            res.notes.append(probe.describe())
        if log:
            log(f"  {d}: running fixed cases + {examples} examples ...")
        stats, failing, notes = gate_dtype(ctx, examples=examples, seed=seed, inputs=inputs)
        res.notes += notes
        if getattr(ctx, "unjudged_count", 0):
            res.notes.append(f"{ctx.unjudged_count} output element(s) with +-inf/NaN inputs other than -inf masks "
                             "not judged (profile: infinite_inputs = masks)")
        res.cases = stats["cases"]
        res.elements = stats["elements"]
        res.max_ulp = stats["max_ulp"]
        res.max_abs = stats["max_abs"]
        res.max_score = stats["max_score"]
        res.nonfinite_total = stats["nonfinite"]
        res.fixed_max_score = stats["fixed_max_score"]
        res.fixed_nonfinite = stats["fixed_nonfinite"]
        res.calls = stats["calls"]
        res.call_seconds = round(stats["call_seconds"], 4)
        if failing is not None:
            res.verdict = "fail"
            res.failure = {
                "kind": failing.kind,
                "message": failing.message,
                "label": failing.label,
                "reproducer": reproducer(ctx, failing, impl_import, fn_name),
                "inputs": [_jsonable(v) for v in failing.inputs],
                "returned": _jsonable(failing.y) if failing.y is not None else None,
                "expected": _jsonable(failing.expected) if failing.expected is not None else None,
                "exact_hi": _jsonable(failing.exact.hi) if failing.exact is not None else None,
                "worst_index": list(failing.worst) if failing.worst is not None else None,
            }
            if failing.kind == "numerical":
                res.max_score = max(res.max_score, failing.max_score)
        elif res.cases == 0 and res.calls == 0:
            res.verdict = "fail"
            res.failure = {"kind": "no_cases", "message": "no case could be run", "reproducer": ""}
        if grad:
            skip = None
            if failing is not None and failing.kind == "timeout":
                skip = "not differentiated: the implementation hung on its forward pass"
            elif res.cases == 0:
                skip = "not differentiated: no forward case ran"
            res.grad = GG.grad_cell(ctx, fn, examples=examples, impl_import=impl_import, fn_name=fn_name,
                                    timeout=timeout, baseline_cell=(base_cells.get(d) if base_cells is not None
                                                                    else None),
                                    skip_reason=skip, log=log)
        res.seconds = round(time.perf_counter() - t0, 3)
        results.append(res)
    return GateReport(q.name, impl_name, framework, ad.device, prof.name, seed, examples, results, src, bool(grad))


def _jsonable(v):
    if isinstance(v, np.ndarray):
        a = v.astype(np.float64) if v.dtype.kind not in "iu" else v
        return {"dtype": str(v.dtype), "shape": list(v.shape),
                "values": a.tolist() if v.dtype.kind in "iu" else [_pyval(x) for x in a.reshape(-1)]}
    if isinstance(v, float):
        return _pyval(v)
    return v


def _framework_op(framework, qname, device):
    """The framework's own op for ``qname`` (callable on framework arrays), or None."""
    try:
        from ..backends import load
        mod = load(framework)
        ops = mod.ops().get(qname)
    except Exception:  # noqa: BLE001
        return None
    if not ops:
        return None
    op = next((o for o in ops if o.native), ops[0])
    return op.fn


def _load_baseline(path, qname):
    """The baseline's cells ``{dtype: cell}`` (:func:`infoaudit.results.compare_cells.load_gate_document`,
    the loader ``infoaudit diff`` shares); GateUsageError with its one line."""
    from ..results.compare_cells import DocumentError, load_gate_document

    try:
        return load_gate_document(path, qname)
    except DocumentError as e:
        raise GateUsageError(str(e)) from None

"""Calling a user's implementation safely and checking what comes back.

:class:`Harness` calls the function on fresh framework copies of NumPy inputs under the per-call
timeout (:mod:`.timeout`) and returns an :class:`Outcome`: ``ok`` with the float64 result, or what
went wrong (raised, hung, not an array, wrong shape or dtype, mutated input, unreadable).
:func:`reduce_to_unit` cuts a failing case to the one row / element / table of one output
element. The gate's value and gradient audits both build on it.
"""
from __future__ import annotations

import os
import time
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

from .. import quantities as Q
from .frameworks import Adapter
from .timeout import call_with_timeout

__all__ = ["Outcome", "describe_exception", "Harness", "expected_shape", "reduce_to_unit", "ReferenceFailure"]


@dataclass
class Outcome:
    kind: str                      # ok | raised | timeout | not_array | wrong_shape | wrong_dtype | mutated | unreadable
    value: np.ndarray | None = None   # float64 result when kind == ok
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self):
        return self.kind == "ok"


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

    def __init__(self, fn, quantity, adapter: Adapter, dtype, timeout=20.0):
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


class ReferenceFailure(Exception):
    """The exact reference (or the judge) could not evaluate this input (reported as a note, case skipped)."""

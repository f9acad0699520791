"""The one invariant checker: laws of a quantity that a result must keep, needing no reference.

The rules come from the quantity's tags (:mod:`.tags`):

* bounds, per element: ``nonnegative`` y >= 0 (losses, divergences, entropies, softplus),
  ``nonpositive`` y <= 0 (log-probabilities), ``unit_interval`` 0 <= y <= 1 (softmax, sigmoid,
  binary entropy in bits), ``max_log_n`` y <= log n (entropy over a row of n, joint entropy over
  a table of n = nx ny; log2 for bits), ``max_log_ny`` H(Y | X) <= log ny,
  ``max_log_min_nx_ny`` I(X; Y) <= log min(nx, ny), ``logsumexp_bounds``
  max z <= logsumexp(z) <= max z + log n.
  A bound is broken when the result lies beyond it by more than the element's tolerance ``tol``:
  the judge passes the element's allowance (the larger of its conditioned and envelope
  allowances, see :mod:`.grades`), so a stable algorithm's rounding near a bound (KL = -1e-9 at
  p = q) is never called a violation; without ``tol`` the same allowance is computed from the
  inputs with |y| in place of |y*|.
* ``row_sums_to_one``, per row (softmax): |sum_i y_i - 1| <= (n + c(n)) u, plus lambda (the
  smallest normal) for each element flushed to zero on a flushing platform. The exact row sums to
  1 whatever the conditioning of the logits; a max-shifted algorithm divides the same rounded
  exponentials it summed, so its sum is within about (n + 2) u of 1 (n u: a sequential sum, the
  DESIGN's tolerance; c(n) u: the few roundings of a stable algorithm, as everywhere else).

Where the rules apply: with ``exact`` (the exact values, float64), a bound is checked only where
the exact value satisfies it, and a row sum only on rows whose exact values are all finite -- the
search also feeds unnormalised probabilities, for which KL >= 0 or H <= log n need not hold.
Without ``exact``, only on units whose inputs are in the domain the laws assume: probability rows
and tables summing to 1 within (n + 2) u, log-probabilities <= 0, beta >= 0, logit rows without
NaN or +inf and not fully masked. Non-finite results are left to the non-finite class.

Shift invariance (softmax(z + c) = softmax(z)) needs a second call of the implementation; it
stays with the caller that can make one (the run audit's shift check).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import quantities as Q
from ..dtypes import fmt
from .grades import allowance_constant
from .scales import N_SAFETY, as_float64_args, envelope, reduction_length, sensitivity, table_shape
from .tags import tags

__all__ = ["InvariantCheck", "check_invariants", "row_sum_tolerance", "reference_free_tolerance"]


@dataclass
class InvariantCheck:
    """What :func:`check_invariants` found.

    ``bound``: elements beyond one of their bounds (output shape); ``row``: elements of rows whose
    sum breaks ``row_sums_to_one`` (output shape); ``messages``: one line per broken rule;
    ``rules``: {rule: elements it flags (output shape)} per broken rule, keyed by a fixed name
    (``"y >= 0"``, ``"rows sum to 1"``, ...: counts per rule stay comparable across inputs).
    """

    bound: np.ndarray
    row: np.ndarray
    messages: list = field(default_factory=list)
    rules: dict = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.messages)


def row_sum_tolerance(n: int, dtype) -> float:
    """(n + c(n)) u: how far from 1 a softmax row of n computed in ``dtype`` may sum."""
    return (n + allowance_constant(n)) * fmt(dtype).unit_roundoff


def reference_free_tolerance(quantity, inputs, y, dtype) -> np.ndarray:
    """c(n) u (max(N + |y|, S) + lambda) from the inputs and the computed y (no reference)."""
    q = Q.get(quantity)
    f = fmt(dtype)
    vals = as_float64_args(q, inputs)
    n = reduction_length(q, vals)
    with np.errstate(all="ignore"):
        N = sensitivity(q, vals) * N_SAFETY
        N = np.where(np.isnan(N), 0.0, N)
        mag = np.where(np.isfinite(y), np.abs(y), 0.0)
        S = envelope(q, vals)
        return allowance_constant(n) * f.unit_roundoff * (np.maximum(N + mag, S) + f.tiny)


def _log(x, bits):
    return math.log2(x) if bits else math.log(x)


def _to_output(q, bad_input, shape):
    """Reduce a per-input-entry mask to the output shape (a unit is bad when any entry is)."""
    if q.structure == Q.ELEMENTWISE:
        return np.broadcast_to(bad_input, shape)
    if q.structure == Q.ROW:
        return np.broadcast_to(np.any(bad_input, axis=-1, keepdims=True), shape)
    if q.structure == Q.ROW_REDUCE:
        return np.any(bad_input, axis=-1)
    return np.any(bad_input, axis=(-2, -1))


def _domain(q, vals, shape, dtype):
    """Units whose inputs lie where the laws hold (used when no exact value is given)."""
    u = fmt(dtype).unit_roundoff
    ok = np.ones(shape, bool)
    with np.errstate(all="ignore"):
        for arg, v in zip(q.args, vals):
            if arg.kind in (Q.PROBS, Q.TABLE):
                axes = (-2, -1) if arg.kind == Q.TABLE else (-1,)
                n = int(np.prod([v.shape[a] for a in axes]))
                s = np.sum(v, axis=axes)
                good = np.abs(s - 1) <= (n + 2) * u
                ok &= good if q.structure != Q.ROW else np.broadcast_to(good[..., None], shape)
            elif arg.kind == Q.LOGPROBS:
                ok &= ~_to_output(q, ~(v <= 0), shape)
            elif arg.kind == Q.LOGITS:
                bad = np.isnan(v) | (v == np.inf)
                masked_row = np.all(v == -np.inf, axis=-1, keepdims=True)
                ok &= ~_to_output(q, bad | np.broadcast_to(masked_row, v.shape), shape)
            elif arg.kind == Q.BETA and not v >= 0:
                ok &= False
    return ok


def _bounds(q, vals, shape, bits):
    """[(tag, lo, hi)] of the quantity's per-element bounds (lo/hi scalars or arrays, +-inf open)."""
    t = tags(q)
    out = []
    if "nonnegative" in t:
        out.append(("nonnegative", 0.0, math.inf))
    if "nonpositive" in t:
        out.append(("nonpositive", -math.inf, 0.0))
    if "unit_interval" in t:
        out.append(("unit_interval", 0.0, 1.0))
    n = reduction_length(q, vals)
    if "max_log_n" in t:
        out.append(("max_log_n", -math.inf, _log(n, bits)))
    ts = table_shape(q, vals)
    if "max_log_ny" in t and ts:
        out.append(("max_log_ny", -math.inf, _log(ts[1], bits)))
    if "max_log_min_nx_ny" in t and ts:
        out.append(("max_log_min_nx_ny", -math.inf, _log(min(ts), bits)))
    if "logsumexp_bounds" in t:
        z = vals[0]
        with np.errstate(all="ignore"):
            m = np.max(np.where(np.isnan(z), -np.inf, z), axis=-1)
        out.append(("logsumexp_bounds", m, m + _log(n, bits)))
    return out


_TEXT = {"nonnegative": ">= 0", "nonpositive": "<= 0", "unit_interval": "in [0, 1]",
         "max_log_n": "<= log n", "max_log_ny": "<= log ny", "max_log_min_nx_ny": "<= log min(nx, ny)",
         "logsumexp_bounds": "in [max z, max z + log n]"}


def check_invariants(quantity, inputs, y, dtype, *, exact=None, tol=None, flushed=None) -> InvariantCheck:
    """Check ``y`` (the computed result, output shape) against the quantity's laws.

    ``inputs``: the arguments in the DESIGN order (as audited); ``exact``: exact values (float64
    array, e.g. ``Exact.hi``) or None; ``tol``: per-element tolerance of the bounds (the judge's
    allowance) or None (computed without a reference); ``flushed``: elements returned as 0 by a
    flushing platform (bool, output shape), each excused lambda in its row's sum.
    """
    q = Q.get(quantity)
    f = fmt(dtype)
    vals = as_float64_args(q, inputs)
    shape = tuple(Q.output_shape(q, vals))
    y = np.asarray(y, dtype=np.float64).reshape(shape)
    if tol is None:
        tol = reference_free_tolerance(q, vals, y, dtype)
    tol = np.broadcast_to(np.where(np.isfinite(tol), tol, 0.0), shape)
    bits = q.unit == "bits"
    bound = np.zeros(shape, bool)
    row = np.zeros(shape, bool)
    msgs = []
    rules = {}
    ex = None if exact is None else np.asarray(exact, dtype=np.float64).reshape(shape)
    dom = _domain(q, vals, shape, dtype) if ex is None else None
    with np.errstate(all="ignore"):
        fin = np.isfinite(y)
        for tag, lo, hi in _bounds(q, vals, shape, bits):
            lo = np.broadcast_to(lo, shape)
            hi = np.broadcast_to(hi, shape)
            if ex is not None:
                where = fin & np.isfinite(ex) & (ex >= lo) & (ex <= hi)
            else:
                where = fin & dom
            bad = where & ((y < lo - tol) | (y > hi + tol))
            if bad.any():
                i = tuple(int(k) for k in np.argwhere(bad)[0])
                msgs.append(f"{int(bad.sum())} value(s) not {_TEXT[tag]} ({q.name} {_TEXT[tag]}), "
                            f"first {y[i]:.8g} at index {i}")
                bound |= bad
                rules[f"y {_TEXT[tag]}"] = bad
        if "row_sums_to_one" in tags(q) and len(shape) >= 1:
            n = shape[-1]
            rows_ok = np.all(fin, axis=-1)
            rows_ok &= np.all(np.isfinite(ex), axis=-1) if ex is not None else np.all(dom, axis=-1)
            s = np.sum(np.where(fin, y, 0.0), axis=-1)
            k = np.zeros(shape[:-1]) if flushed is None else np.sum(np.asarray(flushed, bool).reshape(shape), axis=-1)
            lim = row_sum_tolerance(n, dtype) + k * f.tiny
            bad = rows_ok & (np.abs(s - 1) > lim)
            if bad.any():
                i = np.unravel_index(np.argmax(np.where(bad, np.abs(s - 1), -1)), bad.shape)
                msgs.append(f"{int(bad.sum())} row(s) do not sum to 1 within (n + c(n)) u = "
                            f"{row_sum_tolerance(n, dtype):.3g} (worst sum {s[i]:.8g}, n = {n})")
                row = np.broadcast_to(bad[..., None], shape).copy()
                rules["rows sum to 1"] = row
    return InvariantCheck(bound, row, msgs, rules)

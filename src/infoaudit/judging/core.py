"""Judging a computed result against the exact one: metrics, scales, one grade per element.

:func:`judge` is the entry point for a quantity's values; :func:`grade_elements` is the same
core for anything whose scales the caller supplies (a gradient component with N from second
derivatives and S from the closed-form VJP's terms). Both return a :class:`Judgement`: per
element the metrics (ULP with subnormals, relative, absolute, non-finite class; from
:func:`infoaudit.judging.metrics.element_errors`), the scales N and S, the two allowances and a
grade code; per cell its worst grade, the counts per grade, and a verdict under a profile.

Allowances (absolute; :mod:`.grades` states c(n), u and lambda)::

    conditioned   c(n) u (N * N_SAFETY + |y*| + lambda)
    envelope      c(n) u (S + lambda)

An exact value that is finite but beyond the dtype's range (its correct rounding is +-inf) is
judged by the error of a finite result rather than as a non-finite mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import quantities as Q
from .. import reference
from ..dtypes import dtype_name, fmt, ulp_of
from .grades import (
    CODE,
    CONDITIONED,
    CORRECTLY_ROUNDED,
    ENVELOPE,
    FAITHFUL,
    FLUSHED,
    GRADES,
    INVARIANT,
    NONFINITE,
    UNSTABLE,
    allowance_constant,
)
from .invariants import check_invariants
from .metrics import element_errors
from .scales import N_SAFETY, as_float64_args, envelope, reduction_length, sensitivity

__all__ = ["Judgement", "judge", "grade_elements", "flush_flags", "infinite_input_mask", "format_ulps"]

_CR, _FA, _FL, _CO, _EN, _UN, _IN, _NF = (CODE[g] for g in (CORRECTLY_ROUNDED, FAITHFUL, FLUSHED, CONDITIONED,
                                                            ENVELOPE, UNSTABLE, INVARIANT, NONFINITE))


def format_ulps(x) -> str:
    """A ULP count for a one-line verdict: '0.5', '37', '2,517', '1.5e+08'."""
    x = float(x)
    if not np.isfinite(x):
        return "inf" if x > 0 else "nan"
    if x < 10:
        return f"{x:.2g}"
    if x < 1e7:
        return f"{x:,.0f}"
    return f"{x:.2g}"


@dataclass
class Judgement:
    """Per-element judgement of one result (arrays have the output's shape).

    ``codes`` index :data:`GRADES`; ``nonfinite`` holds the non-finite class name or "";
    ``undefined`` marks elements whose exact value is NaN (a convention, judged only by profiles
    that require NaN there); ``infinite_inputs`` marks elements whose unit holds +-inf or NaN
    inputs other than -inf masks of logits / log-probabilities (judged only by profiles that
    judge limit conventions).
    """

    quantity: str
    dtype: str
    n: int
    c: float
    computed: np.ndarray
    exact_hi: np.ndarray
    expected: np.ndarray
    ulp: np.ndarray
    rel: np.ndarray
    abs: np.ndarray
    nonfinite: np.ndarray
    N: np.ndarray
    S: np.ndarray
    allow_conditioned: np.ndarray
    allow_envelope: np.ndarray
    codes: np.ndarray
    undefined: np.ndarray
    infinite_inputs: np.ndarray
    invariants: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    band_codes: np.ndarray | None = None   # the grades before the invariant class was applied

    # ------------------------------------------------------------ cell level

    @property
    def grades(self) -> dict:
        """Element counts per grade (grades with no element left out), best to worst."""
        counts = np.bincount(self.codes.ravel().astype(np.int64), minlength=len(GRADES))
        return {g: int(k) for g, k in zip(GRADES, counts) if k}

    @property
    def grade(self) -> str | None:
        """The worst element's grade (None for an empty result)."""
        return GRADES[int(self.codes.max())] if self.codes.size else None

    def element_grades(self) -> np.ndarray:
        """The grade name of every element (object array)."""
        return np.asarray(GRADES, dtype=object)[self.codes]

    @property
    def kappa(self) -> np.ndarray:
        """N / |y*|: the componentwise condition number (inf where y* = 0 < N)."""
        with np.errstate(all="ignore"):
            mag = np.abs(self.exact_hi)
            return np.where(mag > 0, self.N / mag, np.where(self.N == 0, 0.0, np.inf))

    def worst_index(self, mask=None):
        """Index of the worst element (worst grade, then the largest error over its allowance),
        among ``mask`` when given; None when there is none."""
        sel = np.ones(self.codes.shape, bool) if mask is None else np.asarray(mask, bool)
        if not sel.any():
            return None
        with np.errstate(all="ignore"):
            ratio = self.abs / np.maximum(self.allow_conditioned, self.allow_envelope)
        ratio = np.where(np.isfinite(ratio), ratio, np.where(np.isnan(ratio), 0.0, 1e300))
        key = np.where(sel, self.codes.astype(np.float64) * 1e4 + np.minimum(ratio, 1e3) / 1e3 * 0.999, -1.0)
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(key)), key.shape))

    def describe(self, index) -> str:
        """One line on one element: its ULPs, both allowances in ULPs, and its grade."""
        i = tuple(index)
        code = int(self.codes[i])
        g = GRADES[code]
        y, hi = float(self.computed[i]), float(self.exact_hi[i])
        if code == _NF:
            return f"returned {y:.6g} where the exact value is {hi:.6g} ({self.nonfinite[i]}) -> {g}"
        if code == _FL:
            return (f"returned {y:.6g} where the exact value {hi:.6g} is subnormal in {self.dtype} "
                    f"(or its inputs are), as a flushing platform rounds -> {g}")
        with np.errstate(all="ignore"):
            unit = float(ulp_of(np.array([hi]), self.dtype)[0]) if np.isfinite(hi) else np.nan
            ac = float(self.allow_conditioned[i]) / unit
            ae = float(self.allow_envelope[i]) / unit
        line = (f"{format_ulps(self.ulp[i])} ULP: the conditioning allows {format_ulps(ac)} ULP, "
                f"a stable algorithm's envelope {format_ulps(ae)} ULP -> {g}")
        if code == _IN and self.invariants:
            line += f" ({'; '.join(self.invariants)})"
        return line

    def verdict(self, profile="default", accepted=None) -> str:
        """"pass" or "fail" under a profile (a :class:`judging.profiles.Profile` or its name);
        ``accepted``: elements the caller accepts whatever their grade (see ``profiles.failing_mask``)."""
        from .profiles import verdict
        return verdict(self, profile, accepted)

    def explain(self, profile="default", accepted=None) -> str:
        """The verdict in one line, naming the grade reached and both allowances."""
        from .profiles import explain
        return explain(self, profile, accepted)

    def summary(self, profile="default", accepted=None) -> dict:
        """The cell-level fields of the results JSON: grade, grades, verdict, profile, why."""
        from .profiles import explain, get, verdict
        p = get(profile)
        return {"grade": self.grade, "grades": self.grades, "verdict": verdict(self, p, accepted), "profile": p.name,
                "why": explain(self, p, accepted)}


def flush_flags(ftz) -> tuple:
    """(flushes outputs, flushes inputs) from a flush-to-zero probe result (anything with
    ``flushes_outputs`` / ``flushes_inputs``, e.g. ``infoaudit.harness.ftz.FTZ``), a bool (True: the
    platform flushes subnormal results, as ``--flush-to-zero`` asks) or None."""
    if ftz is None or ftz is False:
        return False, False
    if ftz is True:
        return True, False
    return bool(getattr(ftz, "flushes_outputs", False)), bool(getattr(ftz, "flushes_inputs", False))


def infinite_input_mask(quantity, inputs) -> np.ndarray:
    """Elements whose unit holds +-inf or NaN inputs other than -inf in logits / log-probabilities."""
    q = Q.get(quantity)
    vals = as_float64_args(q, inputs)
    shape = tuple(Q.output_shape(q, vals))
    out = np.zeros(shape, bool)
    with np.errstate(all="ignore"):
        for arg, v in zip(q.args, vals):
            if arg.is_scalar:
                if not np.isfinite(v):
                    out |= True
                continue
            if not arg.is_float_array:
                continue
            bad = (np.isnan(v) | (v == np.inf)) if arg.kind in (Q.LOGITS, Q.LOGPROBS) else ~np.isfinite(v)
            if q.structure == Q.ADAPTIVE:  # h's row, or any weight entry (shared by every row)
                out |= (np.any(bad, axis=-1)[:, None] if arg.kind == Q.HIDDEN else np.any(bad))
            elif q.structure == Q.ELEMENTWISE:
                out |= np.broadcast_to(bad, shape)
            elif q.structure == Q.ROW:
                out |= np.broadcast_to(np.any(bad, axis=-1, keepdims=True), shape)
            elif q.structure == Q.ROW_REDUCE:
                out |= np.any(bad, axis=-1)
            else:
                out |= np.any(bad, axis=(-2, -1))
    return out


def grade_elements(computed, exact, dtype, *, n, N, S, ftz=None, quantity="", inputs=()) -> Judgement:
    """Grade every element of ``computed`` against ``exact`` (a :class:`reference.Exact`) with
    the caller's scales ``N`` and ``S`` (output shape; NaN N counts as 0) and reduction length
    ``n``. No invariants (those are a quantity's; :func:`judge` adds them). ``quantity`` and
    ``inputs`` only name the non-finite classes (see ``metrics.classify_nonfinite``)."""
    dname = dtype_name(dtype)
    f = fmt(dname)
    qname = quantity.name if isinstance(quantity, Q.Quantity) else str(quantity or "")
    y = np.asarray(computed).astype(np.float64)
    shape = exact.hi.shape
    if y.shape != shape:
        if y.size != int(np.prod(shape)):
            raise ValueError(f"result has shape {y.shape}, expected {shape}")
        y = y.reshape(shape)
    errs = element_errors(y, exact, dname, qname, tuple(inputs))
    hi = np.asarray(exact.hi, dtype=np.float64)
    ulp, rel, err = errs.ulp.copy(), errs.rel.copy(), errs.abs.copy()
    expected = errs.expected.copy()
    nonfinite = errs.nonfinite.copy()
    c = allowance_constant(n)
    u, lam = f.unit_roundoff, f.tiny
    with np.errstate(all="ignore"):
        # a finite exact value beyond the dtype's range: a finite result is judged by its error
        beyond = np.isfinite(hi) & ~np.isfinite(expected) & np.isfinite(y) & (nonfinite != "")
        nonfinite = np.where(beyond, "", nonfinite)
        Nv = np.broadcast_to(np.asarray(N, dtype=np.float64), shape)
        Sv = np.broadcast_to(np.asarray(S, dtype=np.float64), shape)
        Nn = np.where(np.isnan(Nv), 0.0, Nv) * N_SAFETY
        Sn = np.where(np.isnan(Sv), 0.0, Sv)
        mag = np.where(np.isfinite(hi), np.abs(hi), 0.0)
        allow_c = c * u * (Nn + mag + lam)
        allow_e = c * u * (Sn + lam)
        codes = np.full(shape, _UN, dtype=np.int8)
        codes[err <= allow_e] = _EN
        codes[err <= allow_c] = _CO
        codes[ulp < 1] = _FA
        codes[ulp <= 0.5] = _CR
        # the correctly rounded value itself (Exact.lo only keeps its sign below 2^-1074, which
        # reads as 1 ULP against a float64 subnormal result)
        exact_match = np.isfinite(y) & (y == expected)
        ulp = np.where(exact_match, np.minimum(ulp, 0.5), ulp)
        codes[exact_match] = _CR
        out_flush, in_flush = flush_flags(ftz)
        if out_flush or in_flush:
            sub = np.isfinite(expected) & (expected != 0) & (np.abs(expected) < f.tiny) & (y == 0)
            codes[sub & (codes > _FA)] = _FL
        codes[nonfinite != ""] = _NF
    return Judgement(qname, dname, int(n), c, y, hi, expected, ulp, rel, err, nonfinite,
                     np.asarray(Nv, dtype=np.float64).copy(), np.asarray(Sv, dtype=np.float64).copy(),
                     allow_c, allow_e, codes, np.isnan(hi), np.zeros(shape, bool))


def _infer_dtype(q, inputs):
    for arg, v in zip(q.args, inputs):
        if arg.is_float_array:
            return dtype_name(np.asarray(v).dtype)
    raise ValueError(f"{q.name}: no float argument to take the dtype from; pass dtype=")


def _flush_subnormal_inputs(q, inputs, dname):
    """The inputs as a denormals-are-zero platform reads them (None when none is subnormal)."""
    tiny = fmt(dname).tiny
    out, any_sub = [], False
    for arg, v in zip(q.args, inputs):
        if arg.is_float_array:
            a = np.asarray(v)
            x = a.astype(np.float64)
            with np.errstate(invalid="ignore"):
                sub = np.isfinite(x) & (x != 0) & (np.abs(x) < tiny)
            if sub.any():
                any_sub = True
                a = np.where(sub, np.copysign(0.0, x), x).astype(a.dtype)
            out.append(a)
        else:
            out.append(v)
    return out if any_sub else None


def _scales(q, inputs, hi):
    vals = as_float64_args(q, inputs)
    return reduction_length(q, vals), sensitivity(q, vals, hi), envelope(q, vals)


def judge(quantity, inputs, computed, exact=None, dtype=None, *, ftz=None) -> Judgement:
    """Judge ``computed`` (the implementation's result for ``quantity(*inputs)``) exactly.

    ``quantity``: a registry entry (or its name); ``inputs``: the arguments in the DESIGN order
    as the implementation received them (arrays in the audited dtype, int64 labels, float
    scalars); ``computed``: its result (any float dtype; a wider one should have been rounded
    once to ``dtype`` by the caller, as ``compare`` does); ``exact``: the
    :class:`reference.Exact` of the same inputs (evaluated here when None); ``dtype``: the
    audited dtype (default: the first float argument's); ``ftz``: the platform's flush-to-zero
    probe result (``infoaudit.harness.ftz.probe(...)``), True to accept flushed results, or None.

    On a platform that reads subnormal inputs as zero, an element that is better judged against
    the exact value of the flushed inputs takes that judgement, graded ``flushed`` where it is
    then faithful or better.
    """
    q = Q.get(quantity)
    dname = dtype_name(dtype) if dtype is not None else _infer_dtype(q, inputs)
    if exact is None:
        exact = reference.evaluate(q, *as_float64_args(q, inputs))
    n, N, S = _scales(q, inputs, exact.hi)
    j = grade_elements(computed, exact, dname, n=n, N=N, S=S, ftz=ftz, quantity=q, inputs=inputs)
    j.infinite_inputs = infinite_input_mask(q, inputs)
    _, in_flush = flush_flags(ftz)
    if in_flush:
        flushed_inputs = _flush_subnormal_inputs(q, inputs, dname)
        if flushed_inputs is not None:
            _take_flushed_inputs(j, q, flushed_inputs, computed, dname, ftz)
    j.band_codes = j.codes.copy()
    tol = np.maximum(j.allow_conditioned, j.allow_envelope)
    inv = check_invariants(q, inputs, j.computed, dname, exact=j.exact_hi, tol=tol, flushed=j.codes == _FL)
    if inv.any:
        j.invariants = list(inv.messages)
        j.codes[inv.bound & (j.codes != _NF)] = _IN
        j.codes[inv.row & (j.codes > _FA) & (j.codes != _FL) & (j.codes != _NF)] = _IN
    return j


def _take_flushed_inputs(j, q, inputs2, computed, dname, ftz):
    try:
        ex2 = reference.evaluate(q, *as_float64_args(q, inputs2))
    except (Q.InputError, ValueError, ArithmeticError):  # flushed inputs outside the domain
        return
    n, N, S = _scales(q, inputs2, ex2.hi)
    j2 = grade_elements(computed, ex2, dname, n=n, N=N, S=S, ftz=ftz, quantity=q, inputs=inputs2)
    better = j2.codes < j.codes
    if not better.any():
        return
    for name in ("exact_hi", "expected", "ulp", "rel", "abs", "nonfinite", "N", "S", "allow_conditioned",
                 "allow_envelope", "undefined"):
        a = getattr(j, name)
        setattr(j, name, np.where(better, getattr(j2, name), a))
    codes = np.where(better, np.where(j2.codes <= _FL, _FL, j2.codes), j.codes).astype(np.int8)
    j.codes = codes
    j.notes.append(f"{int(better.sum())} element(s) judged against the exact value of the inputs with "
                   f"subnormals read as zero, as this platform reads them")

"""Adaptive-precision evaluation (Ziv's strategy) and the container of exact results.

A formula is evaluated at precisions p, 2p, 4p, ... until, at two consecutive precisions,

1. the error bound ``scale * 2**(GUARD - p)`` is below ``2**-TARGET_BITS * |value|`` (so the
   value is known to ~TARGET_BITS bits: a float64 hi/lo pair is exact to a fraction of an ULP),
2. the value is not within that bound of a rounding boundary of any audited format
   (float16, bfloat16, float32, float64: both ends of the error interval round alike), and
3. both precisions round identically in every format (the Ziv agreement test).

An exactly zero value is accepted only with a zero scale (every term exactly zero). NaN and
infinities are accepted when both precisions agree. A value still undecided at MAX_PREC bits
is kept and flagged (``Exact.undecided``); in practice this is an exact value of a quantity
whose terms cancel exactly (e.g. a table built to have I(X;Y) = 0 through inexact terms).

A caller may cap the working precision with :func:`precision_budget` (the audit runner does, so
that what gets judged never depends on the machine's speed): inside the block, a unit that is
still undecided at the cap raises :class:`PrecisionBudgetExceeded` instead of going on to more
bits. The cap only decides *whether* an evaluation succeeds, never *what* it returns: every
value that comes back is the one the uncapped loop returns (decided elements are exact,
undecided ones flagged). Results served from a cache of unit values are checked against the cap
too, through :attr:`Exact.max_prec` (see there), so an input is refused under a cap exactly when
a fresh evaluation would be -- for ``reference.evaluate`` / ``evaluate_mpmath``, which record it.
``derivatives.vjp`` does not record it (its per-unit cache returns values only), so a cached
gradient unit is checked only when it is first evaluated: callers keep one cap per process for
gradients (the gradient runner's cap is fixed per profile).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field

import mpmath
import numpy as np
from mpmath import mp

from ..dtypes import DTYPES, FORMATS, dtype_name, round_dd, round_mpf

__all__ = ["START_PREC", "MAX_PREC", "TARGET_BITS", "GUARD", "PrecisionBudgetExceeded", "precision_budget",
           "precision_limit", "check_precision", "to_mp", "evaluate_unit", "Exact", "hi_lo"]

START_PREC = 64
MAX_PREC = 1 << 14
TARGET_BITS = 112
GUARD = 12


class PrecisionBudgetExceeded(ArithmeticError):
    """An element needs more working precision than the active :func:`precision_budget` allows."""

    def __init__(self, needed: int, limit: int):
        super().__init__(f"the exact reference needs more than {limit} bits here (reached {needed}); "
                         f"the precision budget is {limit} bits")
        self.needed = needed
        self.limit = limit


_BUDGET: contextvars.ContextVar = contextvars.ContextVar("infoaudit_precision_budget", default=None)


@contextlib.contextmanager
def precision_budget(max_bits):
    """Within the block, no evaluation uses more than ``max_bits`` bits of working precision.

    A unit still undecided at the largest precision of the doubling schedule that fits
    (``64 * 2**k <= max_bits``) raises :class:`PrecisionBudgetExceeded`; ``None`` (or a cap of at
    least ``MAX_PREC``) leaves the engine as it is: undecided at ``MAX_PREC`` is returned and
    flagged. Whether an input passes is a function of the input and the cap alone -- never of
    the machine's speed, of its load or of what a cache happens to hold.
    """
    if max_bits is not None and int(max_bits) < 2 * START_PREC:
        raise ValueError(f"a precision budget below {2 * START_PREC} bits decides nothing (got {max_bits})")
    token = _BUDGET.set(None if max_bits is None else int(max_bits))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def precision_limit():
    """The active precision budget in bits, or None."""
    return _BUDGET.get()


def check_precision(bits) -> None:
    """Raise :class:`PrecisionBudgetExceeded` when ``bits`` of working precision exceed the budget."""
    limit = _BUDGET.get()
    if limit is not None and bits is not None and int(bits) > limit:
        raise PrecisionBudgetExceeded(int(bits), limit)


def to_mp(x):
    """A unit's input as mpmath values: floats (and float arrays' elements) exactly as mpf,
    lists/tuples element by element, Python ints (labels) unchanged."""
    if isinstance(x, (list, tuple)):
        return [to_mp(v) for v in x]
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    return mpmath.mpf(x)


def _same(a, b) -> bool:
    if mpmath.isnan(a) or mpmath.isnan(b):
        return bool(mpmath.isnan(a) and mpmath.isnan(b))
    return a == b


def _roundings(v):
    return tuple(round_mpf(v, FORMATS[d]) for d in DTYPES)


def _decided(v_lo, v_hi, scale, prec) -> bool:
    if mpmath.isnan(v_hi) or mpmath.isinf(v_hi):
        return _same(v_lo, v_hi)
    if v_hi == 0:
        return scale == 0 and v_lo == 0
    if mpmath.isnan(v_lo) or mpmath.isinf(v_lo):
        return False
    err = mpmath.mpf(scale) * mpmath.ldexp(1, GUARD - prec)
    if err > abs(v_hi) * mpmath.ldexp(1, -TARGET_BITS):
        return False
    # The ends of the error interval, rounded outwards at a precision that holds v_hi: v_hi may
    # carry more bits than the working precision (an exact value a plus a stand-in for a tiny
    # correction, formulas._exact_plus_small), and v_hi -+ err rounded to the working precision
    # would fall back onto a -- a rounding boundary when a is an exact float64 tie.
    ends_prec = max(prec, int(v_hi._mpf_[3])) + 64
    lo_end = mpmath.fsub(v_hi, err, prec=ends_prec, rounding="d")
    hi_end = mpmath.fadd(v_hi, err, prec=ends_prec, rounding="u")
    # Cheap sufficient test: every rounding boundary of every audited format is a number with at
    # most 54 significant bits, so an error interval strictly inside one cell of the 54-bit grid
    # (and agreeing with the lower precision's cell) holds no boundary.
    c = _cell54(lo_end)
    if c is not None and c == _cell54(hi_end) and c == _cell54(v_lo):
        return True
    r = _roundings(v_hi)
    if _roundings(lo_end) != r or _roundings(hi_end) != r:
        return False
    return _roundings(v_lo) == r


def _cell54(x):
    """The open cell of the 54-bit grid holding x, or None when x lies on the grid."""
    sign, man, exp, bc = x._mpf_
    if bc <= 54:
        return None
    return sign, int(man) >> (bc - 54), exp + bc - 54


def evaluate_unit(formula, unit):
    """Evaluate ``formula(*unit)`` adaptively; returns (values, max_prec_used, undecided_flags)."""
    prec = START_PREC
    with mp.workprec(prec):
        prev = formula(*unit)
    while True:
        prec *= 2
        check_precision(prec)  # the budget is checked before the work, not after
        with mp.workprec(prec):
            cur = formula(*unit)
            flags = [not _decided(a[0], b[0], b[1], prec) for a, b in zip(prev, cur)]
        if not any(flags):
            return [v for v, _ in cur], prec, flags
        if prec >= MAX_PREC:
            return [v for v, _ in cur], prec, flags
        prev = cur


@dataclass
class Exact:
    """Exact values of one quantity on one input.

    ``hi`` is each value correctly rounded to float64 and ``lo`` the remainder (a double-double:
    from mpmath ``lo`` is the correctly rounded remainder, ~106 bits in all; from the certified
    fast path it is accurate to ~2^-80 relative -- either way float64 results are judged to a tiny
    fraction of an ULP; a remainder below the smallest subnormal keeps its sign as +-2^-1074);
    ``rounded(dtype)`` rounds each value once, directly to that dtype (see ``dtypes.round_dd``).
    ``values`` keeps the mpf values when mpmath produced them (None for fast-path results).
    ``undecided`` flags elements whose rounding was not certain at MAX_PREC bits.
    ``max_prec``: the largest working precision the mpmath units needed (None when unknown);
    recording it checks it against the active :func:`precision_budget` (raising
    :class:`PrecisionBudgetExceeded`), which is what makes units served from a cache count like
    freshly evaluated ones.
    """

    hi: np.ndarray
    lo: np.ndarray
    values: np.ndarray | None = None
    undecided: np.ndarray | None = None
    source: str = "mpmath"
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self):
        return self.hi.shape

    @property
    def max_prec(self):
        return self.__dict__.get("_max_prec")

    @max_prec.setter
    def max_prec(self, bits):
        self.__dict__["_max_prec"] = bits
        check_precision(bits)

    def rounded(self, dtype) -> np.ndarray:
        """float64 array holding each exact value rounded once to ``dtype``."""
        key = dtype_name(dtype)
        if key not in self._cache:
            self._cache[key] = round_dd(self.hi, self.lo, key)
        return self._cache[key]

    def __array__(self, dtype=None, copy=None):
        return self.hi if dtype is None else self.hi.astype(dtype)

    def __repr__(self):
        return f"Exact(shape={self.shape}, source={self.source!r}, hi={self.hi!r})"


def hi_lo(v) -> tuple[float, float]:
    """float64 double-double of an mpf: hi = round(v), lo = round(v - hi)."""
    h = round_mpf(v, FORMATS["float64"])
    if not (mpmath.isfinite(v) and math.isfinite(h)):
        return h, 0.0
    with mp.workprec(max(mp.prec, 2200)):
        rem = v - mpmath.mpf(h)
        lo = round_mpf(rem, FORMATS["float64"])
    if lo == 0 and rem != 0:
        # remainder below the smallest subnormal: keep its sign, which decides narrow-format ties
        lo = math.copysign(5e-324, float(mpmath.sign(rem)))
    return h, lo

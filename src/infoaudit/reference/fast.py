"""Certified float64 fast paths for the logit-row quantities (and, through :mod:`.fast_more`, the
elementwise and probability-row quantities: docs/fast_reference.md states their evaluations,
error bounds and escalation rules).

``FAST`` maps a quantity name to ``fn(*validated_args) -> (hi, lo, ok)`` or None (input not
handled: the caller uses mpmath). ``hi``/``lo`` are float64 arrays of the output shape;
where ``ok`` is True they satisfy **guarantee (b)**:

* ``hi`` is the exact value correctly rounded to float64 (proved, not assumed);
* ``dtypes.round_dd(hi, lo, f)`` is the exact value correctly rounded to every audited format
  f (float16, bfloat16, float32, float64) -- no double rounding: where ``hi`` is itself a
  rounding midpoint of a narrower format the sign of ``lo`` is proved to be the sign of
  (exact - hi);
* ``lo`` approximates (exact - hi) with absolute error <= A, where A is the element's proved
  error bound, at most ~2^-80 relative to the value; the float64 ULP-error metric
  ``|(y - hi) - lo| / ulp`` is therefore exact to ~2^-28 ULP. (``lo`` is *not* claimed to be the
  correctly rounded remainder, i.e. the ~2^-106 accuracy of the mpmath reference.)

Elements where the bound cannot prove all of this get ``ok = False`` and the caller escalates
them (whole rows for softmax / log_softmax) to mpmath.

Method (all arithmetic IEEE binary64 round-to-nearest through numpy, which does not contract
a*b+c into an FMA nor reassociate; no library exp/log is trusted):

1. ``m`` = row max (exact); ``d = z - m`` as an exact double-double by TwoSum.
2. ``exp(d)`` in double-double by :func:`exp_dd`: Cody-Waite reduction
   ``d = N ln2/2^16 + b + rr`` with ln2/2^16 split in 26 + 26 + 53 bits (the two products with N
   and the two subtractions are exact), a 65,536-entry double-double table of 2^(j/2^16) built
   with integer arithmetic, a degree-4 polynomial for exp(b) - 1 - b (|b| <= 2^-17.5) and an
   exact product T_hi26 * b_hi26. Proved relative error bound ``EXP_REL`` = 2^-84 (the
   individual rounding errors add up to < 2^-85.5; a factor ~3 margin); exactly 0 for d = 0.
3. ``s = sum exp(d)``: pairwise TwoSum tree (exact error terms), the error terms and the low
   parts summed with numpy pairwise sums whose error is bounded a posteriori by
   ``(log2 n + 8) u sum|terms|``; terms with d < -800 (< e^-800 each) are dropped and bounded.
4. Per row, from the ball s +- E_s: ``log s`` (as log1p(s - 1), so that a dominant class with
   p = 1 - 1e-30 keeps relative accuracy) and ``1/s`` as rigorous python-flint ``arb`` balls at
   320 bits. Without python-flint (a dev dependency) every FAST function returns None and mpmath
   answers.
5. Results: ``log_softmax = d - log s``, ``logsumexp = m + log s``,
   ``cross_entropy = (m - z_y) + log s`` (TwoSum, no cancellation: both parts >= 0),
   ``softmax = exp(d) * (1/s)`` (exact TwoProduct by splitting), each with its error bound A.
6. Decision: with hi + lo renormalised (|lo| <= ulp(hi)/2), ``ok`` iff |lo| + A < ulp(hi)/2
   (ulp(hi)/4 when lo points below a power of two: the exact value is strictly inside hi's
   float64 rounding cell) and either
   |lo| > A or hi is not a midpoint of float16/bfloat16/float32 (incl. subnormal midpoints and
   the overflow thresholds). Outputs below 2^-1000 in magnitude are only accepted when they
   are provably below 2^-1076 (then hi = lo = 0, the correct rounding in every format).

Special values follow the conventions of docs/design.md exactly (NaN anywhere -> NaN; +inf -> NaN for
softmax/log_softmax, +inf for logsumexp, NaN/+inf for cross_entropy; -inf entries -> 0 / -inf;
all -inf row -> NaN / -inf / NaN; masked target -> +inf) and are always ``ok``.
Engines. The same algorithm runs on one of two engines, ``ENGINE`` (module attribute):

* ``"numba"`` (default whenever numba imports): the compiled kernels of :mod:`.fast_kernels` --
  per row one fused pass (max, exact shift, exp_dd bit-identical to :func:`exp_dd`, a 4-lane
  TwoSum sum with an a posteriori bound, double-double ``log s`` -- table-based, relatively
  accurate down to ``s - 1 = 2^-900`` -- and ``1/s``, the outputs and the decision), no FMA,
  no fastmath; the module proves the parts that differ from the numpy passes (summation order,
  double-double row scalars). Rows it cannot prove its row scalars for (a single finite term,
  ``s - 1 < 2^-900``) get them from the arb balls of step 4, as on the numpy engine.
  ``@njit(cache=True)``: compiled once per machine (~10-20 s), then loaded from
  ``__pycache__`` (~0.7 s per process).
* ``"numpy"``: the numpy passes of this module (steps 1-6 above), always available.

``INFOAUDIT_FAST=numpy`` forces the numpy engine at import (numba is then not even imported),
``INFOAUDIT_FAST=numba`` requires the compiled one; :func:`use_engine` / :func:`set_engine`
switch within a process (tests and benchmarks run both side by side). The engines return the
same ``hi`` wherever both certify it (both are the correct rounding), hence the same roundings
to every format; ``lo`` (and, in principle, the ``ok`` mask) may differ within the proved bounds
because their row sums ``s`` are accumulated in different orders with different proved error
bounds ``err``, and because ``log s`` / ``1/s`` come from double-double instead of arb balls.

Cost (softmax / log_softmax / logsumexp / cross_entropy, float32 inputs, 64 x 1,000 and
4 x 50,257, through ``reference.evaluate``; shared 2-core Xeon, Sapphire Rapids KVM, load
average ~4): numba engine 12.6-18.2 ns per element (min of 15 rounds; medians 13-26 ns), numpy
engine 86-168 ns in the same run (numba/numpy 0.11-0.18), mpmath 41-194 us; rows with a
dominant class cost the same (~20 ns) on the numba engine. See benchmarks/bench_reference.py,
which prints both engines side by side with the machine load.
"""
from __future__ import annotations

import contextlib
import math
import os

import numpy as np

from . import fast_more

__all__ = ["FAST", "row_parts", "ENGINE", "use_engine", "set_engine", "available_engines", "exp_dd",
           "EXP_REL", "softmax", "log_softmax", "logsumexp", "cross_entropy"]

ENV_VAR = "INFOAUDIT_FAST"  # "numpy" forces the numpy passes, "numba" requires the compiled kernels
_kernels = None  # .fast_kernels once imported


def _load_kernels():
    """Import the numba kernels (None when numba is missing or does not import)."""
    global _kernels
    if _kernels is None:
        try:
            from . import fast_kernels
        except ImportError:
            return None
        _kernels = fast_kernels
    return _kernels


def available_engines():
    """The engines this process can run: ("numba", "numpy") or ("numpy",)."""
    return ("numba", "numpy") if _load_kernels() is not None else ("numpy",)


def set_engine(name):
    """Select the engine used by FAST from now on ("numba" or "numpy")."""
    global ENGINE
    if name not in ("numba", "numpy"):
        raise ValueError(f"unknown fast-path engine {name!r} (expected 'numba' or 'numpy')")
    if name == "numba" and _load_kernels() is None:
        raise ImportError("the numba fast-path engine needs numba (pip install numba)")
    ENGINE = name


@contextlib.contextmanager
def use_engine(name):
    """Context manager: run FAST with the given engine, restore the previous one after."""
    old = ENGINE
    set_engine(name)
    try:
        yield
    finally:
        set_engine(old)


_env = os.environ.get(ENV_VAR, "").strip().lower()
if _env == "numpy":
    ENGINE = "numpy"  # numba not even imported (it would still load on use_engine("numba"))
elif _env == "numba":
    ENGINE = "numpy"
    set_engine("numba")
elif _env in ("", "auto"):
    ENGINE = "numba" if _load_kernels() is not None else "numpy"
else:
    raise ValueError(f"{ENV_VAR}={_env!r}: expected 'numba', 'numpy' or 'auto'")

U = 2.0 ** -53
EXP_REL = 2.0 ** -84      # proved relative error bound of exp_dd (see module docstring)
TBITS = 16
TSIZE = 1 << TBITS
DMIN = -800.0              # exp(d) for d < DMIN is < 2^-1154: dropped (bounded) / rounds to 0
_SHIFTER = 1.5 * 2.0 ** 52
_SHIFTER_BITS = np.array([_SHIFTER]).view(np.int64)[0]
_MASK26 = np.int64(~((1 << 27) - 1))  # keep sign, exponent and the top 26 significand bits

_tables = None


def _consts():
    """Tables and split constants, built once with exact integer arithmetic."""
    global _tables
    if _tables is not None:
        return _tables
    import mpmath

    P = 240
    with mpmath.workprec(P + 40):
        base = int(mpmath.floor(mpmath.power(2, mpmath.mpf(1) / TSIZE) * mpmath.mpf(2) ** P))
        ln2 = int(mpmath.floor(mpmath.log(2) * mpmath.mpf(2) ** P))
    one = 1 << P
    thi = np.empty(TSIZE)
    tlo = np.empty(TSIZE)
    t = one
    for j in range(TSIZE):  # t = 2^(j/2^16) 2^P, error < j * 2^-P (negligible)
        h = t / one
        thi[j] = h
        rem = t - int(h * 2.0 ** P)
        tlo[j] = rem / one
        t = (t * base) >> P
    # L = ln2 / 2^16 = L1 + L2a + L2b, L1 and L2a with 26 significant bits (N * L1, N * L2a exact
    # for |N| < 2^27), L2b the rounded remainder (< 2^-68).
    Lint = ln2  # L * 2^(P + 16)
    scale = P + TBITS

    def top_bits(v, bits):
        bl = v.bit_length()
        return (v >> (bl - bits)) << (bl - bits) if bl > bits else v

    L1i = top_bits(Lint, 26)
    L2ai = top_bits(Lint - L1i, 26)
    L2bi = Lint - L1i - L2ai
    L1 = L1i / 2 ** scale
    L2a = L2ai / 2 ** scale
    L2b = L2bi / 2 ** scale
    assert int(L1 * 2.0 ** scale) == L1i and int(L2a * 2.0 ** scale) == L2ai
    inv = float(mpmath.mpf(TSIZE) / mpmath.log(2))
    _tables = (thi, tlo, L1, L2a, L2b, inv)
    return _tables


def _hi26(x):
    """x with the low 27 significand bits cleared (26 significant bits kept; exact split)."""
    return (x.view(np.int64) & _MASK26).view(np.float64)


def exp_dd(x_hi, x_lo):
    """exp(x_hi + x_lo) = 2^k (H + L) (1 + delta), |delta| <= EXP_REL (delta = 0 when x = 0).

    Valid for DMIN <= x_hi <= 700 and |x_lo| <= 2^-53 |x_hi| (as TwoSum produces). Returns
    (H, L, k) with H in [1, 2], |L| <= ulp(H)/2, k int64.

    Error budget (relative, |b| <= 2^-17.5, |rr| <= 2^-41.3): polynomial rounding 2^-87.4,
    truncation b^5/120 < 2^-94, rr^3 terms < 2^-120, the low-part sum 2^-87, the L2b rounding
    2^-94, table 2^-106: total < 2^-85.5; EXP_REL = 2^-84 keeps a factor ~3.
    """
    thi, tlo, L1, L2a, L2b, inv = _consts()
    y = x_hi * inv + _SHIFTER
    Nf = y - _SHIFTER
    Ni = y.view(np.int64) - _SHIFTER_BITS
    j = Ni & (TSIZE - 1)
    k = Ni >> TBITS
    Th = np.take(thi, j)
    Tl = np.take(tlo, j)
    b = (x_hi - Nf * L1) - Nf * L2a  # both subtractions exact (Cody-Waite grid argument)
    rr = x_lo - Nf * L2b
    sq = b * b
    B = sq * ((b * (1.0 / 24) + (1.0 / 6)) * b + 0.5)
    q_lo = (((b + B) + 0.5 * rr) * rr + rr) + B  # exp(b + rr) = 1 + b + q_lo
    ba = _hi26(b)
    bb = b - ba
    T26 = _hi26(Th)
    Tmid = Th - T26
    S1 = T26 * ba  # exact
    h = Th + S1
    e = S1 - (h - Th)  # Fast2Sum, |Th| >= |S1|
    lo = (((Tl * b + Tmid * b) + T26 * bb) + Tl) + e
    lo = lo + Th * q_lo
    H = h + lo
    L = lo - (H - h)
    return H, L, k


CHUNK = 16384  # elements per exp_dd call: keeps its ~25 temporaries in cache (~2x faster)


def _exp_scaled(xh, xl):
    """exp_dd over a 2-D array in cache-sized chunks; also Eh, El = (H, L) * 2^k (np.ldexp:
    correctly rounded, error <= 2^-1075 only where the result is subnormal)."""
    shape = xh.shape
    xh, xl = xh.reshape(-1), xl.reshape(-1)
    out = [np.empty(xh.size) for _ in range(5)]
    out[2] = np.empty(xh.size, np.int64)
    for i in range(0, xh.size, CHUNK):
        sl = slice(i, i + CHUNK)
        H, L, k = exp_dd(xh[sl], xl[sl])
        ki = k.astype(np.int32)
        out[0][sl], out[1][sl], out[2][sl] = H, L, k
        out[3][sl] = np.ldexp(H, ki)
        out[4][sl] = np.ldexp(L, ki)
    return tuple(o.reshape(shape) for o in out)


def _pow2(k):
    """2.0**k for int64 k >= -1022 as float64; 0.0 for k <= -1023 (k <= 1023 assumed)."""
    kk = np.maximum(k, -1023) + 1023
    return (kk << 52).view(np.float64)


def _two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _tree_sum(x):
    """Row sums of x (R, n) >= 0: (s, c, bound) with sum = s + c + delta, |delta| <= bound."""
    R = x.shape[0]
    errs = np.zeros(R)
    aerr = np.zeros(R)
    left = []
    levels = 0
    while x.shape[1] > 1:
        n = x.shape[1]
        h = n // 2
        if n % 2:
            left.append(x[:, 2 * h:])
        a = x[:, :h]
        b = x[:, h:2 * h]
        s, e = _two_sum(a, b)
        errs += e.sum(axis=1)
        aerr += np.abs(e).sum(axis=1)
        x = s
        levels += 1
        if x.shape[1] == 1 and left:
            x = np.concatenate([x] + left[::-1], axis=1)
            left = []
    s = x[:, 0]
    # |sum(e) computed - exact| <= (log2(count) + levels + 2) u sum|e| per level accumulation
    bound = (2 * levels + 8) * U * aerr * 1.01
    return s, errs, bound


def _row_scalars(nzero, rest, c, err):
    """log s and 1/s, s = nzero + rest + c +- err >= 1, as (hi, lo, rad) triples per row."""
    R = rest.shape[0]
    out = np.zeros((7, R))  # row 6: 1.0 where the log s ball is certainly below 2^-1076
    from flint import arb, ctx

    old = ctx.prec
    ctx.prec = 320
    try:
        for r in range(R):
            w = (arb(int(nzero[r]) - 1) + arb(float(rest[r]))) + arb(float(c[r]), float(err[r]))
            Lb = w.log1p()
            Cb = 1 / (w + 1)
            out[0, r], out[1, r], out[2, r] = _ball_dd(Lb)
            out[3, r], out[4, r], out[5, r] = _ball_dd(Cb)
            out[6, r] = float(bool(Lb.upper() < arb(2) ** -1076))
    finally:
        ctx.prec = old
    return out


def _ball_dd(x):
    """(hi, lo, rad) floats with |x - (hi + lo)| <= rad for every point of the arb ball x."""
    from flint import arb

    mid = x.mid()
    h = float(mid)
    r1 = mid - arb(h)
    lo = float(r1)
    r2 = (r1 - arb(lo)).abs_upper() + x.rad()
    rad = float(r2.upper()) * (1 + 2.0 ** -40) + 2.0 ** -1074
    return h, lo, rad


# ---------------------------------------------------------------- decision

_NARROW = ((11, -14), (8, -126), (24, -126))  # (precision, emin) of float16, bfloat16, float32


def _is_narrow_midpoint(h):
    """True where h (finite float64) is a rounding midpoint of some narrower audited format."""
    out = np.zeros(h.shape, bool)
    with np.errstate(all="ignore"):
        _, e = np.frexp(np.abs(h))
        e = e.astype(np.int64) - 1
        for p, emin in _NARROW:
            q = np.maximum(e, emin) - p + 1
            t = np.ldexp(h, (1 - q).astype(np.int32))
            out |= (h != 0) & (t == np.round(t)) & (np.mod(t, 2) != 0)
    return out


def _decide(hi, lo, A):
    """ok mask for normalised hi + lo with absolute error bound A (see module docstring).

    Requires |hi| >= 2^-1000 (callers handle tiny outputs)."""
    bits = hi.view(np.int64)
    ulp = (bits & np.int64(0x7FF0000000000000)).view(np.float64) * 2.0 ** -52
    # half-gap towards the exact value: ulp/2, or ulp/4 below a power of two (binade edge)
    edge = ((bits & np.int64(0x000FFFFFFFFFFFFF)) == 0) & ((lo < 0) == (hi > 0)) & (lo != 0)
    half = np.where(edge, 0.25, 0.5) * ulp
    alo = np.abs(lo)
    ok = alo + A < half
    amb = ok & ~(alo > A)
    if amb.any():
        idx = np.nonzero(amb)
        ok[idx] = ~_is_narrow_midpoint(hi[idx])
    return ok


def _renorm(a, b):
    """Fast2Sum for |a| >= |b| (or a = 0)."""
    s = a + b
    return s, b - (s - a)


# ---------------------------------------------------------------- the row pipeline


class _Rows:
    """Shared per-row work for one (R, n) float64 logit array."""

    def __init__(self, z):
        self.z = z
        with np.errstate(invalid="ignore"):
            m = z.max(axis=1)
        self.nan_row = np.isnan(m)
        self.pinf_row = m == np.inf
        self.ninf_row = m == -np.inf
        self.special = self.nan_row | self.pinf_row | self.ninf_row
        m = np.where(self.special, 0.0, m)
        self.m = m
        zz = z
        if self.special.any():
            zz = z.copy()
            zz[self.special] = 0.0
        self.zz = zz
        mm = -m[:, None]
        with np.errstate(invalid="ignore"):
            d = zz + mm
            bb = d - zz
            dl = (zz - (d - bb)) + (mm - bb)
        self.d_hi = d
        self.d_lo = dl  # NaN where z = -inf
        self.active = d >= DMIN  # False for -inf entries and for exp(d) < e^-800
        self.all_active = bool(self.active.all())
        if self.all_active:
            xh, xl = d, dl
        else:
            xh = np.where(self.active, d, 0.0)
            xl = np.where(self.active, dl, 0.0)
        self._exp = None
        self._xh, self._xl = xh, xl
        self._sum()

    def _sum(self):
        H, L, k, Eh, El = _exp_scaled(self._xh, self._xl)
        if not self.all_active:
            Eh = np.where(self.active, Eh, 0.0)
            El = np.where(self.active, El, 0.0)
        self._exp = (H, L, k, Eh, El)
        n = self.z.shape[1]
        # s = nzero + rest: the terms with d = 0 are exactly 1 and are counted, not summed, so
        # that rest = sum of the other terms keeps its relative accuracy (dominant class).
        exact_one = (self.d_hi == 0) & (self.d_lo == 0)
        nzero = exact_one.sum(axis=1)
        rest, errs, tbound = _tree_sum(Eh - exact_one)
        lsum = El.sum(axis=1)
        c = errs + lsum
        # error: exp_dd (relative, per term), the tree, the low-part sum, c's rounding, dropped
        # terms (< e^-800 each, or < 2^-1021 once scaled out) and subnormal El = L 2^k roundings.
        ndrop = ((~self.active) & (self.z > -np.inf)).sum(axis=1)  # each < e^-800 < 2^-1154
        nsub = (self.active & (k < -960)).sum(axis=1)  # Eh or El subnormal: <= 2^-1075 each
        err = (EXP_REL * np.maximum(rest + c + tbound, 0.0) * (1 + 2.0 ** -50) + tbound
               + (math.log2(n) + 8) * U * np.abs(El).sum(axis=1) * 1.01
               + U * np.abs(c) + ndrop * 2.0 ** -1150 + nsub * 2.0 ** -1074)
        self.ndrop = ndrop
        self.nzero, self.rest, self.s_c, self.s_err = nzero, rest, c, err
        # log s > 0 strictly when some finite entry other than the maxima exists (it may still
        # round to 0: then only its sign is known, which decides narrow-format midpoint ties)
        self.L_pos = (rest > 0) | (ndrop > 0)
        sc6 = _row_scalars(nzero, rest, c, err)
        self.L_hi, self.L_lo, self.L_rad, self.C_hi, self.C_lo, self.C_rad, tiny = sc6
        self.L_tiny = tiny > 0


def _have_flint():
    try:
        import flint  # noqa: F401
    except ImportError:
        return False
    return True


def _rows(z):
    if not _have_flint():  # the per-row balls need python-flint; without it mpmath answers
        return None, None
    z = np.asarray(z, dtype=np.float64)
    if z.ndim < 1 or z.shape[-1] == 0:
        return None, None
    n = z.shape[-1]
    z2 = z.reshape(-1, n)
    if z2.shape[0] == 0:
        return None, None
    return z2, z.shape


def _engine_rows(z2):
    """Per-row sums and scalars (mode 0) by the active engine."""
    if ENGINE == "numba":
        return _nb_rows(z2, 0)[0]
    return _Rows(z2)


def logsumexp(z):
    z2, shape = _rows(z)
    if z2 is None:
        return None
    r = _engine_rows(z2)
    hi, e = _two_sum(r.m, r.L_hi)
    lo = e + r.L_lo
    hi, lo = _renorm_any(hi, lo)
    A = r.L_rad + 2.0 ** -52 * (np.abs(e) + np.abs(r.L_lo))
    ok = _decide_safe(hi, lo, A)
    hi, lo, ok = _sign_only(r, hi, lo, A, ok, 1.0)
    hi, lo, ok = _apply_special(r, hi, lo, ok, {"nan": np.nan, "pinf": np.inf, "ninf": -np.inf})
    out = shape[:-1]
    return hi.reshape(out), lo.reshape(out), ok.reshape(out)


def cross_entropy(z, y):
    z2, shape = _rows(z)
    if z2 is None:
        return None
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    r = _engine_rows(z2)
    zy = z2[np.arange(z2.shape[0]), y]
    zy_safe = np.where(np.isfinite(zy), zy, 0.0)
    a, ea = _two_sum(r.m, -zy_safe)  # a >= 0
    hi, eb = _two_sum(a, r.L_hi)
    lo = (ea + eb) + r.L_lo
    hi, lo = _renorm_any(hi, lo)
    A = r.L_rad + 2.0 ** -51 * (np.abs(ea) + np.abs(eb) + np.abs(r.L_lo))
    with np.errstate(all="ignore"):
        ok = np.where(hi == 0, (lo == 0) & (A == 0), _decide_safe(hi, lo, A))
    hi, lo, ok = _sign_only(r, hi, lo, A, ok, 1.0)
    hi, lo, ok = _apply_special(r, hi, lo, ok, {"nan": np.nan, "pinf": np.inf, "ninf": np.nan})
    # +inf rows: NaN if z_y = +inf, else +inf; masked target in a valid row: +inf
    hi = np.where(r.pinf_row & (zy == np.inf) & ~r.nan_row, np.nan, hi)
    masked = ~r.special & (zy == -np.inf)
    hi = np.where(masked, np.inf, hi)
    lo = np.where(masked, 0.0, lo)
    ok = ok | masked
    out = shape[:-1]
    return hi.reshape(out), lo.reshape(out), ok.reshape(out)


def log_softmax(z):
    z2, shape = _rows(z)
    if z2 is None:
        return None
    if ENGINE == "numba":
        hi, lo, ok = _nb_log_softmax(z2)
        return hi.reshape(shape), lo.reshape(shape), ok.reshape(shape)
    r = _Rows(z2)
    Lh = r.L_hi[:, None]
    with np.errstate(invalid="ignore"):
        hi, e = _two_sum(r.d_hi, -Lh)
        lo = (r.d_lo - r.L_lo[:, None]) + e
        hi, lo = _renorm_any(hi, lo)
        A = r.L_rad[:, None] + 2.0 ** -51 * (np.abs(r.d_lo) + np.abs(r.L_lo)[:, None] + np.abs(e))
        ok = _decide_safe(hi, lo, A)
    hi, lo, ok = _sign_only(r, hi, lo, A, ok, -1.0)
    neg = r.z == -np.inf
    hi = np.where(neg, -np.inf, hi)
    lo = np.where(neg, 0.0, lo)
    ok = ok | neg
    hi, lo, ok = _apply_special(r, hi, lo, ok, {"nan": np.nan, "pinf": np.nan, "ninf": np.nan})
    return hi.reshape(shape), lo.reshape(shape), ok.reshape(shape)


def softmax(z):
    z2, shape = _rows(z)
    if z2 is None:
        return None
    if ENGINE == "numba":
        hi, lo, ok = _nb_softmax(z2)
        return hi.reshape(shape), lo.reshape(shape), ok.reshape(shape)
    r = _Rows(z2)
    H, L, k, Eh, El = r._exp
    Ch = r.C_hi[:, None]
    Cl = r.C_lo[:, None]
    Ca = _hi26(np.ascontiguousarray(r.C_hi))[:, None]
    Cb = Ch - Ca
    # p = 2^k (H + L) (C_hi + C_lo): exact TwoProduct of H and C_hi by 26-bit splits
    Ha = _hi26(H)
    Hb = H - Ha
    ph = H * Ch
    pe = (((Ha * Ca - ph) + Ha * Cb) + Hb * Ca) + Hb * Cb
    pl = pe + (H * Cl + L * Ch)
    hi_u, lo_u = _renorm(ph, pl)
    # relative error: exp_dd (0 where d = 0), 1/s ball, product roundings (< 2^-100)
    exact_one = (r.d_hi == 0) & (r.d_lo == 0)
    rel = np.where(exact_one, 0.0, EXP_REL) + (r.C_rad / r.C_hi)[:, None] + 2.0 ** -100
    # scale by 2^k: exact while the result stays >= 2^-1000 (k >= -985 since hi_u >= 2^-17)
    big = k >= -980
    sc = _pow2(k)
    hi = hi_u * sc
    lo = lo_u * sc
    A = rel * np.abs(hi) * 1.01
    with np.errstate(all="ignore"):
        ok = _decide(np.where(big, hi, 1.0), np.where(big, lo, 0.0), np.where(big, A, 0.0)) & big
    # tiny outputs: p = 2^k hi_u (1 +- rel) with hi_u < 2 -> p < 2^(k+1); k < -1077 -> p < 2^-1076
    tiny = (~big & (k < -1077)) | ~r.active
    hi = np.where(tiny, 0.0, hi)
    lo = np.where(tiny, 0.0, lo)
    ok = ok | tiny
    bad = ~ok & ~r.special[:, None]
    nb = int(bad.sum())
    if 0 < nb <= ARB_ELEMENT_LIMIT:
        _softmax_arb_fix(r, hi, lo, ok, np.nonzero(bad))
    hi, lo, ok = _apply_special(r, hi, lo, ok, {"nan": np.nan, "pinf": np.nan, "ninf": np.nan})
    return hi.reshape(shape), lo.reshape(shape), ok.reshape(shape)


ARB_ELEMENT_LIMIT = 20_000  # undecided softmax elements re-evaluated one by one with arb


def _softmax_arb_fix(r, hi, lo, ok, idx):
    """Element-level escalation for softmax (mostly outputs in the float64 subnormal range):
    p = exp(d) * (1/s) as an arb ball from the exact d and the row's certified 1/s ball; accept
    where the ball decides the rounding in every format. Avoids sending whole long rows to mpmath."""
    try:
        from flint import arb, ctx
    except ImportError:  # pragma: no cover
        return
    import mpmath
    from mpmath.libmp import from_man_exp

    from ..dtypes import DTYPES, FORMATS, round_mpf

    def to_mpf(x):
        m, e = x.man_exp()
        return mpmath.mp.make_mpf(from_man_exp(int(m), int(e)))

    old = ctx.prec
    ctx.prec = 160
    try:
        for i, j in zip(*idx):
            C = arb(float(r.C_hi[i])) + arb(float(r.C_lo[i]), float(r.C_rad[i]))
            p = (arb(float(r.d_hi[i, j])) + arb(float(r.d_lo[i, j]))).exp() * C
            pm, pr = to_mpf(p.mid()), to_mpf(p.rad())
            a, b = mpmath.fsub(pm, pr, exact=True), mpmath.fadd(pm, pr, exact=True)
            with mpmath.workprec(max(64, int(max(a._mpf_[3], b._mpf_[3])) + 8)):  # no pre-rounding
                ra = [round_mpf(a, FORMATS[d]) for d in DTYPES]
                if ra != [round_mpf(b, FORMATS[d]) for d in DTYPES]:
                    continue
            h = ra[-1]
            if h == 0.0:
                hi[i, j], lo[i, j], ok[i, j] = 0.0, 0.0, True
                continue
            rem_a = float(a - mpmath.mpf(h))
            rem_b = float(b - mpmath.mpf(h))
            # the sign of (exact - hi) must be certain where hi is a narrow-format midpoint
            if (a - h) * (b - h) <= 0 and _is_narrow_midpoint(np.array([h]))[0]:
                continue
            hi[i, j], lo[i, j], ok[i, j] = h, 0.5 * (rem_a + rem_b), True
    finally:
        ctx.prec = old


def _sign_only(r, hi, lo, A, ok, sign):
    """Where log s rounds to 0 but is known > 0 and hi + lo is otherwise exact, the exact value is
    hi + sign * (0 < t <= A): hi is the float64 rounding when A < ulp/4, and lo = sign * 2^-1074
    carries the sign of the remainder for round_dd (its value is below any ULP in question)."""
    rows = (r.L_hi == 0) & (r.L_lo == 0) & r.L_pos
    if not rows.any():
        return hi, lo, ok
    if hi.ndim == 2:
        rows = rows[:, None]
    with np.errstate(all="ignore"):
        cond = ~ok & (lo == 0) & rows & np.isfinite(hi)
        if not cond.any():
            return hi, lo, ok
        ulp = (hi.view(np.int64) & np.int64(0x7FF0000000000000)).view(np.float64) * 2.0 ** -52
        good = cond & (np.abs(hi) >= 2.0 ** -1000) & (A < 0.25 * ulp)
        # hi = 0: the exact value is sign * log s (+ exact zero), log s < 2^-1076 -> rounds to 0
        tiny = r.L_tiny[:, None] if hi.ndim == 2 else r.L_tiny
        zero = cond & (hi == 0) & tiny
    lo = np.where(good, sign * 2.0 ** -1074, lo)
    hi = np.where(zero, sign * 0.0, hi)
    return hi, lo, ok | good | zero


def _renorm_any(a, b):
    """TwoSum renormalisation (no ordering assumption)."""
    with np.errstate(invalid="ignore"):
        return _two_sum(a, b)


def _decide_safe(hi, lo, A):
    """_decide, but False for |hi| < 2^-1000, non-finite or zero results."""
    with np.errstate(all="ignore"):
        good = np.isfinite(hi) & (np.abs(hi) >= 2.0 ** -1000) & np.isfinite(A)
        res = np.zeros(hi.shape, bool)
        if good.all():
            return _decide(hi, lo, A)
        idx = np.nonzero(good)
        res[idx] = _decide(hi[idx], lo[idx], A[idx])
    return res


def _apply_special(r, hi, lo, ok, values):
    """Overwrite rows with NaN / +inf / all -inf inputs by their conventional value (ok)."""
    if not r.special.any():
        return hi, lo, ok
    hi, lo, ok = hi.copy(), lo.copy(), ok.copy()
    for key, mask in (("ninf", r.ninf_row), ("pinf", r.pinf_row), ("nan", r.nan_row)):
        if mask.any():
            hi[mask] = values[key]
            lo[mask] = 0.0
            ok[mask] = True
    return hi, lo, ok


# ---------------------------------------------------------------- the numba engine


class _KRows:
    """The per-row results of fast_kernels.row_pass, with the attributes of _Rows that the
    engine-independent code (logsumexp, cross_entropy, _sign_only, _softmax_arb_fix,
    _apply_special) reads."""

    def __init__(self, z, info):
        K = _kernels
        self.z = z
        code = info[:, K.F_CODE]
        self.nan_row = code == K.CODE_NAN
        self.pinf_row = code == K.CODE_PINF
        self.ninf_row = code == K.CODE_NINF
        self.special = code != 0
        self.m = info[:, K.F_M].copy()
        self.nzero, self.rest, self.s_c, self.s_err = (info[:, K.F_NZERO], info[:, K.F_REST],
                                                       info[:, K.F_C], info[:, K.F_ERR])
        self.ndrop = info[:, K.F_NDROP]
        self.L_hi, self.L_lo, self.L_rad = info[:, K.F_LHI], info[:, K.F_LLO], info[:, K.F_LRAD]
        self.C_hi, self.C_lo, self.C_rad = info[:, K.F_CHI], info[:, K.F_CLO], info[:, K.F_CRAD]
        self.L_pos = info[:, K.F_LPOS] != 0
        self.L_tiny = info[:, K.F_LTINY] != 0
        self._d = None

    def _shift(self):
        if self._d is None:
            mm = -self.m[:, None]
            with np.errstate(invalid="ignore"):
                d = self.z + mm
                bb = d - self.z
                self._d = (d, (self.z - (d - bb)) + (mm - bb))
        return self._d

    @property
    def d_hi(self):
        return self._shift()[0]

    @property
    def d_lo(self):
        return self._shift()[1]


def _nb_rows(z2, mode):
    """Run the compiled row kernel; rows whose log s / 1/s it could not prove in double-double
    get them from python-flint (_row_scalars) and, for modes 1 / 2, their outputs afterwards."""
    K = _kernels
    thi, tlo, L1, L2a, L2b, inv = _consts()
    z2 = np.ascontiguousarray(z2, dtype=np.float64)
    R, n = z2.shape
    info = np.empty((R, K.NF))
    if mode:
        out_hi = np.empty((R, n))
        out_lo = np.empty((R, n))
        out_ok = np.empty((R, n), bool)
    else:
        out_hi = out_lo = np.empty((1, 1))
        out_ok = np.empty((1, 1), bool)
    K.row_pass(z2, mode, thi, tlo, L1, L2a, L2b, inv, info, out_hi, out_lo, out_ok)
    need = info[:, K.F_NEEDARB] != 0
    if need.any():
        idx = np.nonzero(need)[0]
        sc = _row_scalars(info[idx, K.F_NZERO].astype(np.int64), info[idx, K.F_REST],
                          info[idx, K.F_C], info[idx, K.F_ERR])
        for f, row in zip((K.F_LHI, K.F_LLO, K.F_LRAD, K.F_CHI, K.F_CLO, K.F_CRAD, K.F_LTINY), sc):
            info[idx, f] = row
        if mode:
            K.rows_outputs(z2, idx.astype(np.int64), mode, thi, tlo, L1, L2a, L2b, inv, info,
                           out_hi, out_lo, out_ok)
    return _KRows(z2, info), out_hi, out_lo, out_ok


def _nb_softmax(z2):
    r, hi, lo, ok = _nb_rows(z2, _kernels.MODE_SOFTMAX)
    nok = int(np.count_nonzero(ok))
    nb = ok.size - nok
    if 0 < nb <= ARB_ELEMENT_LIMIT:
        _softmax_arb_fix(r, hi, lo, ok, np.nonzero(~ok))
    return hi, lo, ok


def _nb_log_softmax(z2):
    r, hi, lo, ok = _nb_rows(z2, _kernels.MODE_LOG_SOFTMAX)
    rows = (r.L_hi == 0) & (r.L_lo == 0) & r.L_pos & ~r.special
    if rows.any():  # log s rounds to 0 (arb rows only): _sign_only, with A as log_softmax forms it
        idx = np.nonzero(rows)[0]
        d, dl = r.d_hi[idx], r.d_lo[idx]
        with np.errstate(invalid="ignore"):
            _, e = _two_sum(d, -r.L_hi[idx][:, None])
            A = r.L_rad[idx][:, None] + 2.0 ** -51 * ((np.abs(dl) + np.abs(r.L_lo[idx])[:, None]) + np.abs(e))
        sub = _SubRows(r, idx)
        h2, l2, o2 = _sign_only(sub, hi[idx], lo[idx], A, ok[idx], -1.0)
        hi[idx], lo[idx], ok[idx] = h2, l2, o2
    return hi, lo, ok


class _SubRows:
    """The row attributes _sign_only reads, restricted to some rows."""

    def __init__(self, r, idx):
        self.L_hi, self.L_lo, self.L_pos, self.L_tiny = r.L_hi[idx], r.L_lo[idx], r.L_pos[idx], r.L_tiny[idx]


FAST: dict = {
    "softmax": softmax,
    "log_softmax": log_softmax,
    "logsumexp": logsumexp,
    "cross_entropy": cross_entropy,
}


def row_parts(z2):
    """The logsumexp row pass of the active engine on (R, n) float64 logits: an object with ``m``
    (row max), ``L_hi``, ``L_lo``, ``L_rad`` (certified log s) and the special-row masks
    ``nan_row``, ``pinf_row``, ``ninf_row``; None without python-flint."""
    if not _have_flint():
        return None
    return _engine_rows(np.ascontiguousarray(z2, dtype=np.float64))


def _engine_name():
    return ENGINE


# the other quantities (docs/fast_reference.md): compiled kernels only, imported on first use
FAST.update(fast_more.make(_consts, row_parts, _engine_name))

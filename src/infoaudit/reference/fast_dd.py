"""Compiled double-double building blocks with proved error bounds (the certified fast path of
the quantities beyond softmax: see docs/fast_reference.md, sections 1-3, for the proofs).

Same floating-point model as :mod:`.fast_kernels` (``@njit`` without fastmath: every operation
one IEEE binary64 round-to-nearest operation in the order written, no FMA contraction). Each
function returns a double-double ``(h, l)`` (``|l| <= ulp(h)``) and an absolute error bound, or
a ``good`` flag that is False where its preconditions fail (the caller then escalates):

* :func:`log_dd` -- ``log(xh + xl)``, table-based (the 65,536-entry ``2^(j/2^16)`` table of
  ``.fast``), absolute bound ``2^-100 + |N| 2^-120 + 2^-50 S``; where ``x`` is within
  ``2^-17.5`` of 1 (``N = 0``) the bound is *relative*: ``2^-85 |x - 1|``.
* :func:`log1p_dd` -- ``log1p(xh + xl)``: the series (relative ``2^-85``) for ``|x| <= 2^-17``,
  ``log_dd(1 + x)`` otherwise.
* :func:`div_d` -- ``a / b`` of two doubles, error ``<= 2^-51.9 |ql|`` (0 when exact).
* :func:`mul_dd` -- ``(ah + al)(bh + bl)``, error ``<= 2^-101 |p|``.
* :func:`decide1` -- the decision rule of :mod:`.fast` for one element (``|hi| >= 2^-1000``:
  ``decide_core`` and the narrow-midpoint test; exact zeros; provably tiny values round to 0);
  where ``|lo| <= A`` (the sign of the remainder is unknown, so hi is no narrow midpoint) lo is
  set to 0, within 2A of the remainder.
* :func:`finish_scaled` -- the decision for a value ``2^k (Uh + Ul) +- 2^k Au`` that may be
  subnormal or underflow (sigmoid / softplus of very negative x), on the exactly scaled grid.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .fast_kernels import (
    decide_core,
    f2i,
    fast_two_sum,
    i2f,
    is_narrow_midpoint,
    log1p_small,
    pow2,
    two_prod,
    two_sum,
)

__all__ = ["log_dd", "log_core", "log2_estimate", "log_array", "log1p_dd", "div_d", "mul_dd", "decide1", "decide_exact_plus_small", "finish_scaled",
           "scale_exact"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)
# powers of two as module constants (numba freezes globals; a literal 2.0 ** -n is a runtime power)
P2P52 = 2.0 ** 52
P2P200 = 2.0 ** 200
P2P1000 = 2.0 ** 1000
P2M17 = 2.0 ** -17
P2M40 = 2.0 ** -40
P2M50 = 2.0 ** -50
P2M51 = 2.0 ** -51
P2M85 = 2.0 ** -85
P2M100 = 2.0 ** -100
P2M101 = 2.0 ** -101
P2M120 = 2.0 ** -120
P2M200 = 2.0 ** -200
P2M474 = 2.0 ** -474
P2M60 = 2.0 ** -60
P2M600 = 2.0 ** -600
P2M900 = 2.0 ** -900
P2M968 = 2.0 ** -968
P2M970 = 2.0 ** -970
P2M1000 = 2.0 ** -1000
P2M1060 = 2.0 ** -1060
P2M1068 = 2.0 ** -1068
P2M1074 = 2.0 ** -1074
P2M1076 = 2.0 ** -1076
INF = math.inf
TINY = 2.0 ** -1074  # the sign-carrying remainder of a result that rounds to +-0 (Exact's convention)


@njit(**_JIT)
def log_dd(xh, xl, thi, tlo, L1, L2a, L2b):
    """log(xh + xl) for 0 < xh < inf, |xl| <= 2^-52 xh (xl = 0 where xh < 2^-1000):
    (Lh, Ll, rad, good), |Lh + Ll - log x| <= rad where good (docs/fast_reference.md, 1.1)."""
    off = 0
    if xh < P2M1000:
        xh = xh * P2P200
        xl = xl * P2P200
        off = -200
    elif xh >= P2P1000:
        xh = xh * P2M200
        xl = xl * P2M200
        off = 200
    N0 = int(math.floor(math.log2(xh) * 65536.0 + 0.5))  # a choice only: what matters is checked
    j = N0 & 65535
    return log_core(xh, xl, N0, thi[j], tlo[j], off, L1, L2a, L2b)


@njit(**_JIT)
def log_core(xh, xl, N0, Th, Tl, off, L1, L2a, L2b):
    """The part of :func:`log_dd` after the choice of N0 (any integer: the checks decide) and the
    table loads Th, Tl = T_(N0 mod 2^16); xh in [2^-1000, 2^1000) once scaled by 2^-off."""
    E = N0 >> 16
    sc = pow2(-E)
    Mh = xh * sc  # exact scalings
    Ml = xl * sc
    Dh, Dl = two_sum(Mh - Th, Ml - Tl)  # Mh - Th exact (Sterbenz)
    vh = Dh / Th
    p, pe = two_prod(vh, Th)
    rv = (((Dh - p) - pe) + Dl) - vh * Tl  # Dh - p exact (Sterbenz)
    vl = rv / Th
    good = (abs(vh) <= P2M17) & (abs(vl) <= P2M50 * abs(vh))
    lh, ll = log1p_small(vh, vl)
    N = N0 + off * 65536
    Nf = float(N)
    a1 = Nf * L1  # exact (|N| < 2^27, 26-bit constant)
    a2 = Nf * L2a  # exact
    a3 = Nf * L2b
    h1, e1 = two_sum(a1, a2)
    Lh, e2 = two_sum(h1, lh)
    Ll = ((e1 + e2) + a3) + ll
    S = ((abs(e1) + abs(e2)) + abs(a3)) + abs(ll)
    Lh, Ll = fast_two_sum(Lh, Ll)
    # N = 0: x = 1 + v exactly (T_0 = 1): relative bound
    rad0 = (P2M85 * abs(vh) + (P2M1060 if vh != 0.0 else 0.0)) * (1.0 + P2M40)
    rad1 = ((P2M100 + abs(Nf) * P2M120) + P2M50 * S) * (1.0 + P2M40)
    rad = rad0 if N == 0 else rad1
    return Lh, Ll, rad, good


@njit(**_JIT)
def log2_estimate(x):
    """A branch-free estimate of log2 x for normal x (error < 2^-23): the choice of N0 in the
    vectorised kernels (no libm call); any error only costs a failed check (escalation)."""
    bits = f2i(x)
    e = ((bits >> 52) & 2047) - 1023
    m = i2f((bits & 4503599627370495) | 4607182418800017408)  # mantissa in [1, 2)
    big = m > 1.4142135623730951
    m = m * 0.5 if big else m
    ef = float(e) + (1.0 if big else 0.0)
    t = (m - 1.0) / (m + 1.0)
    t2 = t * t
    return ef + t * (2.8853900817779268 + t2 * (0.9617966939259756 + t2 * (0.5770780163555854 + t2 * 0.4121985831111324)))


@njit(**_JIT)
def log1p_dd(xh, xl, thi, tlo, L1, L2a, L2b):
    """log1p(xh + xl) for xh + xl > -1, |xl| <= 2^-52 |xh|: (Lh, Ll, rad, good)
    (docs/fast_reference.md, 1.2)."""
    ax = abs(xh)
    if ax <= P2M17:
        if ax < P2M970:  # |log1p(x) - x| <= x^2 <= |x| 2^-969
            return xh, xl, ax * P2M968, True
        Lh, Ll = log1p_small(xh, xl)
        return Lh, Ll, (P2M85 * ax + P2M1060) * (1.0 + P2M40), True
    sh, se = two_sum(1.0, xh)
    sl, dropped = two_sum(se, xl)
    yh, yl = fast_two_sum(sh, sl)
    if not (yh > 0.0):
        return 0.0, 0.0, INF, False
    Lh, Ll, rad, good = log_dd(yh, yl, thi, tlo, L1, L2a, L2b)
    rad = (rad + abs(dropped) / (yh * (1.0 - P2M50))) * (1.0 + P2M40)
    return Lh, Ll, rad, good


@njit(**_JIT)
def div_d(a, b):
    """a / b for doubles with a, b, a / b in [2^-900, 2^900] in magnitude: (qh, ql, err),
    |qh + ql - a/b| <= err = 2^-51.9 |ql| (0 when the division is exact)."""
    q = a / b
    p, pe = two_prod(q, b)
    r = (a - p) - pe  # a - p exact (Sterbenz)
    ql = r / b
    qh, ql2 = fast_two_sum(q, ql)
    return qh, ql2, abs(ql) * P2M51


@njit(**_JIT)
def mul_dd(ah, al, bh, bl):
    """(ah + al)(bh + bl), |al| <= 2^-52 |ah|, |bl| <= 2^-52 |bh|, |ah|, |bh| < 2^990:
    (ph, pl, err), err = 2^-101 |p| (+ 2^-1068 where |p| < 2^-900: underflow of the partial
    products; an exact zero factor gives err = 0)."""
    p, pe = two_prod(ah, bh)
    t = ah * bl + al * bh
    ph, pl = fast_two_sum(p, pe + t)
    slop = P2M1068 if (abs(p) < P2M900 and ah != 0.0 and bh != 0.0) else 0.0
    return ph, pl, P2M101 * abs(p) + slop


@njit(**_JIT)
def scale_exact(x, k):
    """x 2^k for -1100 <= k <= 1023 with one rounding (exact when the result is normal)."""
    if k >= -1022:
        return x * pow2(k)
    return (x * pow2(k + 600)) * P2M600


@njit(**_JIT)
def decide1(hi, lo, A):
    """(hi, lo, ok) for a normalised finite hi + lo with absolute error bound A (the rule of
    .fast._decide_safe, the exact-zero rule and the provably-below-2^-1076 rule)."""
    ah = abs(hi)
    if ah >= P2M1000 and ah < INF and A < INF:
        ok, amb = decide_core(hi, lo, A)
        if amb:
            ok = not is_narrow_midpoint(hi)
            # |lo| <= A: the remainder is not distinguishable from 0 (an exact value such as
            # entropy_bits of a uniform row = 8 has remainder 0): lo = 0, within 2A of it
            lo = 0.0
        return hi, lo, ok
    if hi == 0.0 and lo == 0.0:
        return hi, lo, A == 0.0
    if ah < P2M1000 and ((ah + abs(lo)) + A) * (1.0 + P2M50) < P2M1076:
        v = hi + lo  # rounds to +-0 in every format; the remainder keeps its sign where it is certain
        return 0.0 * hi, (0.0 if abs(v) <= A else (TINY if v > 0.0 else -TINY)), True
    return hi, lo, False


@njit(**_JIT)
def finish_scaled(Uh, Ul, Au, k):
    """Decision for the value 2^k (Uh + Ul) +- 2^k Au, 2^-4 <= |Uh| <= 2^4, |Ul| <= 2^-52 |Uh|,
    Au <= 2^-40 |Uh|, k <= 1000: (hi, lo, ok) (docs/fast_reference.md, 1.5)."""
    if k >= -990:
        hi = scale_exact(Uh, k)
        lo = scale_exact(Ul, k)
        A = scale_exact(Au, k) * (1.0 + P2M50) + P2M1074
        return decide1(hi, lo, A)
    if k < -1082:  # |value| < 2^5 2^-1082 < 2^-1076, of the sign of Uh: +-0 with the remainder's sign
        return 0.0 * Uh, (TINY if Uh > 0.0 else -TINY), True
    t = k + 1074  # value 2^1074 = (Uh + Ul) 2^t: the float64 grid below 2^-1021 is the integers
    s = pow2(t)
    th = Uh * s
    tl = Ul * s
    As = Au * s * (1.0 + P2M50) + P2M900
    if abs(th) >= P2P52:  # a normal value: decide on the scaled grid (exact scaling)
        hs, ls = fast_two_sum(th, tl)
        ok, amb = decide_core(hs, ls, As)
        # every value below 2^-986 rounds to 0 in the narrow formats: no narrow midpoint here
        return (hs * P2M600) * P2M474, (ls * P2M600) * P2M474, ok | amb
    nr = float(math.floor(th + 0.5))  # th + 0.5 exact (|th| < 2^52); a tie is refused below
    rem = (th - nr) + tl  # th - nr exact
    ok = (abs(rem) + As) * (1.0 + P2M50) < 0.5
    lo = 0.0
    if abs(rem) > As:
        lo = P2M1074 if rem > 0 else -(P2M1074)
    return (nr * P2M600) * P2M474, lo, ok


@njit(**_JIT)
def decide_exact_plus_small(ah, al, b, berr):
    """(hi, lo, ok, applies) for the value ah + al + b with ah + al exact and b known only to
    |b - bc| <= berr but with a certain sign (|b| > berr) and negligible size
    ((|b| + berr) < 2^-60 ulp(ah)): the rounding of ah + al, where a tie is broken by the sign of b
    (docs/fast_reference.md, 1.6). ``applies`` is False where these premises fail."""
    if not (abs(ah) > P2M900 and abs(ah) < INF and abs(b) > berr):
        return ah, al, False, False
    ah, al = fast_two_sum(ah, al)
    m, e = math.frexp(ah)
    ulp = math.ldexp(1.0, e - 53)
    if not ((abs(b) + berr) * (1.0 + P2M50) < ulp * P2M60):
        return ah, al, False, False
    toward0 = (al < 0.0) == (ah > 0.0)
    gap = 0.25 * ulp if (abs(m) == 0.5 and toward0 and al != 0.0) else 0.5 * ulp
    if al == 0.0:
        return ah, b, True, True  # exact - hi = b: its sign decides narrow-format ties
    if abs(al) < gap:
        return ah, al, True, True
    if (al > 0.0) == (b > 0.0):  # a tie, b pushes past it: the neighbour of ah beyond the tie
        return ah + 2.0 * al, -al, True, True
    return ah, al, True, True  # a tie, b pulls back: ah, remainder al + b of al's sign


LBLK = 256


@njit(**_JIT)
def log_array(xh, xl, thi, tlo, L1, L2a, L2b, Lh, Ll, rad, good):
    """:func:`log_dd` over flat arrays, vectorised in blocks (N0 from :func:`log2_estimate`, the
    table loads, :func:`log_core`); entries outside [2^-1000, 2^1000) go through the scalar
    :func:`log_dd`; entries <= 0 or not finite get good = False."""
    n = xh.size
    bN = np.empty(LBLK, np.int64)
    bTh = np.empty(LBLK)
    bTl = np.empty(LBLK)
    for i0 in range(0, n, LBLK):
        mb = min(LBLK, n - i0)
        for ii in range(mb):
            a = xh[i0 + ii]
            ok = (a >= P2M1000) & (a < P2P1000)
            bN[ii] = int(math.floor(log2_estimate(a if ok else 1.0) * 65536.0 + 0.5))
        for ii in range(mb):
            j = bN[ii] & 65535
            bTh[ii] = thi[j]
            bTl[ii] = tlo[j]
        for ii in range(mb):
            a = xh[i0 + ii]
            ok = (a >= P2M1000) & (a < P2P1000)
            h, l, r, g = log_core(a if ok else 1.0, xl[i0 + ii] if ok else 0.0, bN[ii], bTh[ii], bTl[ii], 0, L1, L2a,
                                  L2b)
            Lh[i0 + ii] = h
            Ll[i0 + ii] = l
            rad[i0 + ii] = r
            good[i0 + ii] = g & ok
        for ii in range(mb):
            a = xh[i0 + ii]
            if not ((a >= P2M1000) & (a < P2P1000)) and a > 0.0 and a < INF:
                h, l, r, g = log_dd(a, xl[i0 + ii], thi, tlo, L1, L2a, L2b)
                Lh[i0 + ii] = h
                Ll[i0 + ii] = l
                rad[i0 + ii] = r
                good[i0 + ii] = g
            elif not good[i0 + ii] and a >= P2M1000 and a < P2P1000:  # a failed check: libm's choice
                h, l, r, g = log_dd(a, xl[i0 + ii], thi, tlo, L1, L2a, L2b)
                Lh[i0 + ii] = h
                Ll[i0 + ii] = l
                rad[i0 + ii] = r
                good[i0 + ii] = g

"""Compiled (numba) kernels of the certified float64 fast path of :mod:`.fast`.

Same algorithm, same guarantee (b), same decision rule as the numpy passes of :mod:`.fast` (read
its module docstring first); this module changes *how* the per-element work is executed -- one
compiled pass over each row, vectorised by LLVM where the code is branch-free, instead of
~100-190 numpy passes over temporaries -- plus two things that are proved here: the summation
order (item 3) and double-double per-row scalars (last section).

Floating-point model
--------------------
Every kernel is compiled by ``@njit(cache=True, error_model="numpy")`` **without** ``fastmath``:
numba emits plain LLVM ``fadd``/``fmul``/``fsub``/``fdiv`` with no fast-math flags, so LLVM may
not reassociate, may not contract ``a*b + c`` into an FMA (no ``contract`` flag; numba never emits
``llvm.fmuladd``) and may not assume finite values; vectorisation (4 lanes of the same IEEE
operations) does not change a single result. Every operation below is therefore one IEEE binary64
round-to-nearest-even operation, in the order written -- the model the proofs of :mod:`.fast`
assume. ``tests/test_reference_fast_kernels.py`` checks it: TwoSum and Dekker's TwoProduct (by
Veltkamp splitting) compiled here are exact on random inputs, the compiled exp is bit-identical to
``.fast.exp_dd``, and the machine code of the kernels contains no FMA instruction (the hosts have
FMA units, so contraction would show). Float/integer bit reinterpretation (``_f2i``/``_i2f``) is an
LLVM ``bitcast``.

Per row of ``z`` (float64):

1. ``m = max z`` (NaN / +inf / all -inf rows are special: conventional value, ``ok``);
   ``(d, dl) = TwoSum(z, -m)``, exact -- the operations of :mod:`.fast`.
2. ``exp(d) = 2^k (H + L)(1 + delta)``, ``|delta| <= EXP_REL = 2^-84``: :func:`_exp_a` (table-free
   half) and :func:`_exp_c` (table half) are, operation for operation, :func:`.fast.exp_dd` (the
   65,536-entry double-double table, Cody-Waite split, degree-4 polynomial; error budget proved
   there), so ``(H, L, k)`` are bit-identical to the numpy engine's. In the row kernel they run as
   three loops per chunk of ``BLK`` elements (table-free part vectorised; table loads scalar, as
   LLVM emits no gathers here; table part vectorised). ``Eh = H 2^k``, ``El = L 2^k`` by one
   correctly rounded multiplication each, like ``np.ldexp`` (for ``k < -1022``: an exact product
   by ``2^(k+600)`` then one rounding by ``2^-600``).
3. The sum -- the one place where the engines differ. ``s = nzero + sum' (Eh + El)``: ``nzero``
   counts the exact ones (``z = m``), ``sum'`` runs over the other terms with ``d >= -800``
   (the others, ``< e^-800 < 2^-1154`` each, are dropped and counted in ``ndrop``).

   * The ``Eh`` go round-robin into four lanes, each accumulated by TwoSum,
     ``s_j <- s_j + Eh`` with its rounding error ``e`` exact; the lanes are merged by three more
     TwoSums (errors ``e1..e3`` exact). So ``sum Eh = rest + sum e`` exactly.
   * The ``e`` (and ``e1..e3``) are accumulated by plain additions into ``c`` (four lanes, then
     merged). With round-to-nearest, ``|fl(x) - x| <= u |fl(x)|`` (``u = 2^-53``), so every
     addition errs by at most ``u`` times its *computed* result, and
     ``|c - sum e| <= u sum |c_partial| <= u * ca * (1 + 2(n + 16)u) = tb``, where ``ca`` is the
     float sum of the magnitudes of every partial result (lanes and merge); the factor bounds
     ``ca``'s own rounding, ``(1 - u)^-(n + 16) <= 1 + 2(n + 16)u`` for nonnegative terms.
   * The ``El`` likewise into ``l`` with bound ``lb``; ``c_tot = c + l`` (error ``<= u |c_tot|``).
   * Subnormal ``Eh`` / ``El`` (``k < -960``, counted in ``nsub``) err by ``<= 2^-1075`` each.

   Hence ``s = nzero + rest + c_tot +- err`` with ::

     err = [EXP_REL (rest + c_tot + tb + lb)(1 + 2^-50) + tb + lb + u |c_tot|
            + ndrop 2^-1150 + nsub 2^-1074] (1 + 2^-40)

   (``EXP_REL`` times the computed terms' sum bounds ``sum |(Eh + El) delta|``, exact ones have
   ``delta = 0``; the last factor covers the rounding of this nonnegative 7-term expression).
   This a posteriori bound is typically ``~ n^1.5 u^2 s / 2`` (a random walk of ``c``), far below
   the ``EXP_REL s`` term for long rows, like the numpy tree's ``(2 levels + 8) u sum|e|``.
   ``rest``, ``c_tot`` and ``err`` therefore differ slightly from the numpy engine's -- with the
   row scalars of item 4, the only source of differences between the engines (see "Engines" in
   :mod:`.fast`).
4. Per row, ``log s`` and ``1/s``, in double-double by :func:`_row_scalars_dd` (below) with
   proved radii -- ``log s`` by a table-based ``log`` that keeps relative accuracy down to
   ``s - 1 = 2^-900`` (a dominant class). The rare rows it refuses (a single finite term,
   ``s - 1 < 2^-900``, an oversized ball) are flagged and :mod:`.fast` computes both as 320-bit
   python-flint ``arb`` balls from the same ``(nzero, rest, c_tot, err)``, as the numpy engine
   does for every row.
5. Results and the decision: operation for operation the formulas of :mod:`.fast` (``_decide``
   split into a branch-free part and a rare scalar pass for the narrow-format midpoint test,
   ``_decide_safe``, the ``2^-1000`` / ``2^-1076`` tiny-output rules, ``-inf`` entries, special
   rows). Softmax reuses ``(H, L, k)`` from a per-row scratch (cache resident); log_softmax
   recomputes the exact ``(d, dl)``.

Double-double row scalars (``_row_scalars_dd``)
-----------------------------------------------
Input: ``s_true`` in ``[s_mid - err2, s_mid + err2]``, ``s_mid = sh + sl``. Required (else the
row goes to arb): ``err2 <= 2^-60 sh``, ``sh < 2^700``, and the case conditions below.
(``u = 2^-53``; every "rounding" is one RN operation, ``|fl(x) - x| <= u |x|``.)

* ``(sh, sl) = TwoSum(nzero, rest)``; ``sl2 = fl(sl + c_tot)`` (error ``<= u |sl2|``, added:
  ``err2 = (err + u |sl2|)(1 + 2^-40)``); ``(sh, sl) = Fast2Sum(sh, sl2)`` (exact,
  ``|sl| <= u sh``); ``den = sh(1 - 2^-50) - err2 <= s_mid - err2``.
* ``1/s``: ``Ch = fl(1/sh)`` (``|1 - Ch sh| <= u``); ``(p, pe) = TwoProduct(Ch, sh)`` exact;
  ``r = fl(fl(fl(1 - p) - pe) - fl(Ch sl))``: ``1 - p`` is exact (Sterbenz), the other three
  roundings are ``<= u 3u, u u, u 4u``: ``|r - r_true| < 2^-103`` with
  ``r_true = 1 - Ch s_mid``, ``|r_true| <= 2u(1 + u) < 2^-51.9``. Since
  ``1/s_mid = Ch (1 + r_true + r_true^2 / (1 - r_true))``, ``Cl = fl(Ch r)`` gives
  ``|Ch + Cl - 1/s_mid| <= Ch (2^-103 + u 2^-51.9 + 2^-103.7) < 2^-101.5 Ch`` (then an exact
  Fast2Sum). ``C_rad = [2^-100 Ch + (err2 / den) / (sh (1 - 2^-50))](1 + 2^-40)``: the second
  term bounds ``|1/s_true - 1/s_mid|`` (divided twice, not by the product, which could
  overflow); the final factor covers the rounding of the expression.
* ``log1p(vh + vl)`` for ``|vh| <= 2^-17``, ``|vl| <= 2^-50 |vh|`` (:func:`log1p_small`):
  ``(qh, ql) = TwoProduct(vh, vh)`` (exact, ``= vh^2``);
  ``tail = fl(fl(qh vh) fl(P(vh)))``, ``P(v) = 1/3 - v(1/4 - v(1/5 - v(1/6 - v/7)))`` with the
  coefficients rounded: ``|tail| <= 2^-35.6 |vh|`` and its relative error is ``<= 5u`` (``qh``,
  the product, ``fl(1/3)``, the outer subtraction, the product with ``P``; the inner Horner
  terms are ``< 2^-18`` of ``P``), i.e. ``<= 2^-86.3 |vh|``; the truncation after ``v^7`` is
  ``<= |vh|^8 / (8 (1 - |vh|)) < 2^-121 |vh|``. ``corr = fl(vl fl(fl(1 - vh) + qh))`` is
  ``log1p(vh + vl) - log1p(vh)`` to ``|vl| (|vh|^3 + 2u + vl/2) < 2^-100 |vh|``.
  ``(Lh, e) = TwoSum(vh, -qh/2)`` (``qh/2``, ``ql/2`` exact), ``Ll = fl(fl(fl(e - ql/2) + tail)
  + corr)``: partial sums ``<= 2^-35.5 |vh|``, three roundings ``<= 2^-87 |vh|``; exact Fast2Sum.
  Total ``<= 2^-85.5 |vh|``; taken as ``2^-85 |vh| + 2^-1060`` (the last term: underflow in
  ``vh^2`` and its products, ``<= 2^-1075`` per operation, for tiny ``vh``).
* ``log s``, case (A) -- a dominant class, ``nzero = 1``, ``w = rest + c_tot`` with
  ``(wh, wl) = TwoSum(rest, c_tot)``, ``2^-900 <= wh < 2^-17``, ``err <= 2^-40 wh``:
  ``log s_mid = log1p(wh + wl)`` by :func:`log1p_small` (``|wl| <= u wh``), relative accuracy
  ``2^-85`` however small ``w`` is (``log_softmax`` of a class with ``p = 1 - 1e-30``), and
  ``|log1p(w_true) - log1p(w_mid)| <= err / (1 - err) <= err (1 + 2^-30)``:
  ``L_rad = [2^-85 wh + 2^-1060 + err (1 + 2^-30)](1 + 2^-40)``. (Below ``2^-900`` -- where
  ``log s`` may round to 0 and only its sign matters -- arb answers.)
* ``log s``, case (B) -- otherwise (``s >= 1 + 2^-17``): ``N = round(2^16 log2 sh)`` (libm, only a
  choice: what matters is checked), ``E = N >> 16``, ``j = N mod 2^16``, so
  ``s = 2^E T_j (1 + v)`` with ``T_j = 2^(j/2^16)`` the exp table entry (relative error
  ``<= 2^-105``; ``log T_j`` is taken as exact and its error ``<= 2^-105`` absolute is counted).
  ``M = (sh 2^-E, sl 2^-E)`` (exact); ``(Dh, Dl) = TwoSum(fl(Mh - Th), fl(Ml - Tl))`` with
  ``Mh - Th`` exact (Sterbenz: ``Mh / Th`` in ``[1/2, 2]``) and ``|Ml - Tl| <= 4u``, rounding
  ``<= 2^-103``; ``vh = fl(Dh / Th)``, ``(p, pe) = TwoProduct(vh, Th)``,
  ``rv = fl(fl(fl(fl(Dh - p) - pe) + Dl) - fl(vh Tl))`` (``Dh - p`` exact by Sterbenz; the others
  ``<= 12 u^2 |Dh|``), ``vl = fl(rv / Th)``: ``|vh + vl - (M/T_j - 1)| <= 2^-103 + 18 u^2 |v|
  < 2^-102.8``. Checked: ``|vh| <= 2^-17``, ``|vl| <= 2^-50 |vh|``. ``(lh, ll) = log1p(v)`` as
  above (``<= 2^-85 * 2^-17 + 2^-1060``). ``log s = N ln2 / 2^16 + log1p(v)``, with
  ``ln2 / 2^16 = L1 + L2a + L2b + eta``, ``|eta| < 2^-124``: ``N L1``, ``N L2a`` exact
  (``N < 2^26``, 26-bit constants), ``a3 = fl(N L2b)`` (``<= u |a3|``);
  ``(h1, e1) = TwoSum(N L1, N L2a)``, ``(Lh, e2) = TwoSum(h1, lh)``,
  ``Ll = fl(fl(fl(e1 + e2) + a3) + ll)``: three roundings ``<= 3u S``,
  ``S = |e1| + |e2| + |a3| + |ll|``; exact Fast2Sum. Total
  ``<= 2^-102 + 2^-102.8 + 2^-105 + N 2^-124 + (3 + 1)u S + 2^-1060``, and
  ``L_rad = [2^-100 + N 2^-120 + 2^-50 S + err2 / den](1 + 2^-40)``, the last term bounding
  ``|log s_true - log s_mid|`` (mean value theorem on the ball). Relative to ``log s``
  (``>= 2^-17.1`` here) this is ``< 2^-82.9`` however ``s`` sits -- the same order as the arb
  route's radius (``~ err / s``, itself ``>= EXP_REL (s - 1) / s``).

So every row whose max is unique up to ``s - 1 >= 2^-900`` gets both scalars here; arb is left
with rows of exactly one finite term or a remainder ``< 2^-900``, and with unreasonably wide
balls. ``tests/test_reference_fast_kernels.py`` checks both against arb on random and edge ``s``.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["U", "EXP_REL", "TBITS", "TSIZE", "DMIN", "SHIFTER", "SHIFTER_BITS", "MASK26", "EXPMASK",
           "MANTMASK", "C24", "C6", "C3", "C5", "C7", "SPLITTER", "INF", "NAN", "F_M", "F_CODE", "F_NZERO",
           "F_REST", "F_C", "F_ERR", "F_NDROP", "F_LHI", "F_LLO", "F_LRAD", "F_CHI", "F_CLO", "F_CRAD",
           "F_LTINY", "F_LPOS", "F_NEEDARB", "NF", "CODE_NAN", "CODE_PINF", "CODE_NINF", "MODE_SUM",
           "MODE_SOFTMAX", "MODE_LOG_SOFTMAX", "two_sum", "fast_two_sum", "split", "two_prod", "hi26",
           "pow2", "exp_dd1", "exp_dd", "two_sum_arr", "two_prod_arr", "is_narrow_midpoint", "decide_core",
           "decide_safe_core", "log1p_small", "BLK", "row_pass", "rows_outputs"]

# ---------------------------------------------------------------- bit casts


@intrinsic
def _f2i(typingctx, x):
    """float64 -> its int64 bit pattern (LLVM bitcast)."""
    if not isinstance(x, types.Float) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _i2f(typingctx, x):
    """int64 bit pattern -> float64 (LLVM bitcast)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.bitcast(v, ir.DoubleType())

    return types.float64(x), codegen


# ---------------------------------------------------------------- constants (mirrors .fast)

U = 2.0 ** -53
EXP_REL = 2.0 ** -84
TBITS = 16
TSIZE = 1 << TBITS
DMIN = -800.0
SHIFTER = 1.5 * 2.0 ** 52
SHIFTER_BITS = int(np.array([SHIFTER]).view(np.int64)[0])
MASK26 = ~((1 << 27) - 1)
EXPMASK = 0x7FF0000000000000
MANTMASK = 0x000FFFFFFFFFFFFF
C24 = 1.0 / 24
C6 = 1.0 / 6
C3 = 1.0 / 3
C5 = 1.0 / 5
C7 = 1.0 / 7
SPLITTER = 134217729.0  # 2^27 + 1 (Veltkamp)
INF = math.inf
NAN = math.nan

# fields of the per-row info array
F_M, F_CODE, F_NZERO, F_REST, F_C, F_ERR, F_NDROP, F_LHI, F_LLO, F_LRAD, F_CHI, F_CLO, F_CRAD, \
    F_LTINY, F_LPOS, F_NEEDARB = range(16)
NF = 16
CODE_NAN, CODE_PINF, CODE_NINF = 1.0, 2.0, 3.0

MODE_SUM, MODE_SOFTMAX, MODE_LOG_SOFTMAX = 0, 1, 2

_JIT = dict(cache=True, error_model="numpy", nogil=True)

# ---------------------------------------------------------------- error-free transformations


@njit(**_JIT)
def two_sum(a, b):
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@njit(**_JIT)
def fast_two_sum(a, b):
    s = a + b
    return s, b - (s - a)


@njit(**_JIT)
def split(a):
    """Veltkamp split: a = hi + lo, both with <= 26 significant bits (|a| < 2^995)."""
    c = SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


@njit(**_JIT)
def two_prod(a, b):
    """Dekker's TwoProduct by splitting: a*b = p + e exactly (no underflow / overflow)."""
    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    e = ((ah * bh - p) + ah * bl + al * bh) + al * bl
    return p, e


@njit(**_JIT)
def hi26(x):
    return _i2f(_f2i(x) & MASK26)


@njit(**_JIT)
def pow2(k):
    """2.0**k for -1022 <= k <= 1023 (exact)."""
    return _i2f((k + 1023) << 52)


@njit(**_JIT)
def _exp_a(x_hi, x_lo, L1, L2a, L2b, inv):
    """First half of .fast.exp_dd (no table): (j, k, b, ba, q_lo)."""
    y = x_hi * inv + SHIFTER
    Nf = y - SHIFTER
    Ni = _f2i(y) - SHIFTER_BITS
    j = Ni & (TSIZE - 1)
    k = Ni >> TBITS
    b = (x_hi - Nf * L1) - Nf * L2a
    rr = x_lo - Nf * L2b
    sq = b * b
    B = sq * ((b * C24 + C6) * b + 0.5)
    q_lo = (((b + B) + 0.5 * rr) * rr + rr) + B
    return j, k, b, hi26(b), q_lo


@njit(**_JIT)
def _exp_c(Th, Tl, b, ba, q_lo):
    """Second half of .fast.exp_dd, given the table entry: (H, L)."""
    bb = b - ba
    T26 = hi26(Th)
    Tmid = Th - T26
    S1 = T26 * ba
    h = Th + S1
    e = S1 - (h - Th)
    lo = (((Tl * b + Tmid * b) + T26 * bb) + Tl) + e
    lo = lo + Th * q_lo
    H = h + lo
    L = lo - (H - h)
    return H, L


@njit(**_JIT)
def exp_dd1(x_hi, x_lo, thi, tlo, L1, L2a, L2b, inv):
    """.fast.exp_dd for one element, operation for operation: (H, L, k)."""
    j, k, b, ba, q_lo = _exp_a(x_hi, x_lo, L1, L2a, L2b, inv)
    H, L = _exp_c(thi[j], tlo[j], b, ba, q_lo)
    return H, L, k


@njit(**_JIT)
def exp_dd(x_hi, x_lo, thi, tlo, L1, L2a, L2b, inv):
    """Array version of :func:`exp_dd1` (tests compare it bit for bit with .fast.exp_dd)."""
    n = x_hi.size
    H = np.empty(n)
    L = np.empty(n)
    K = np.empty(n, np.int64)
    for i in range(n):
        H[i], L[i], K[i] = exp_dd1(x_hi[i], x_lo[i], thi, tlo, L1, L2a, L2b, inv)
    return H, L, K


@njit(**_JIT)
def two_sum_arr(a, b):
    s = np.empty(a.size)
    e = np.empty(a.size)
    for i in range(a.size):
        s[i], e[i] = two_sum(a[i], b[i])
    return s, e


@njit(**_JIT)
def two_prod_arr(a, b):
    p = np.empty(a.size)
    e = np.empty(a.size)
    for i in range(a.size):
        p[i], e[i] = two_prod(a[i], b[i])
    return p, e


# ---------------------------------------------------------------- decision (as .fast._decide)


@njit(**_JIT)
def is_narrow_midpoint(h):
    """.fast._is_narrow_midpoint for one finite h with |h| >= 2^-1000."""
    if h == 0.0:
        return False
    e = ((_f2i(h) >> 52) & 0x7FF) - 1023
    for fmt in range(3):
        if fmt == 0:
            p, emin = 11, -14
        elif fmt == 1:
            p, emin = 8, -126
        else:
            p, emin = 24, -126
        q = max(e, emin) - p + 1
        t = h * pow2(1 - q)
        if t == math.floor(t) and t - 2.0 * math.floor(t * 0.5) != 0.0:
            return True
    return False


@njit(**_JIT)
def decide_core(hi, lo, A):
    """The branch-free part of .fast._decide (|hi| >= 2^-1000, finite): (ok, amb). amb marks
    the elements that pass only if hi is not a narrow-format midpoint (|lo| <= A); ok is final
    where amb is False."""
    bits = _f2i(hi)
    ulp = _i2f(bits & EXPMASK) * 2.0 ** -52
    edge = ((bits & MANTMASK) == 0) & ((lo < 0.0) == (hi > 0.0)) & (lo != 0.0)
    half = (0.25 if edge else 0.5) * ulp
    alo = abs(lo)
    q = alo + A < half
    amb = q & (not (alo > A))
    return q & (not amb), amb


@njit(**_JIT)
def decide_safe_core(hi, lo, A):
    """.fast._decide_safe, branch-free part: (ok, amb) as decide_core, False, False where hi is
    not finite, |hi| < 2^-1000 or A is not finite."""
    valid = (abs(hi) < INF) & (abs(hi) >= 2.0 ** -1000) & (abs(A) < INF)
    h = hi if valid else 1.0
    ok, amb = decide_core(h, lo, A)
    return ok & valid, amb & valid


# ---------------------------------------------------------------- row scalars in double-double


@njit(**_JIT)
def log1p_small(vh, vl):
    """log1p(vh + vl) for |vh| <= 2^-17, |vl| <= 2^-50 |vh| (proof in the module docstring):
    (Lh, Ll) with |Lh + Ll - log1p(vh + vl)| <= 2^-85 |vh| + 2^-1060."""
    qh, ql = two_prod(vh, vh)  # vh^2 exactly
    tail = (qh * vh) * (C3 - vh * (0.25 - vh * (C5 - vh * (C6 - vh * C7))))
    corr = vl * ((1.0 - vh) + qh)  # log1p(vh + vl) - log1p(vh) = vl (1 - vh + vh^2 - ...)
    Lh, e = two_sum(vh, -0.5 * qh)
    Ll = ((e - 0.5 * ql) + tail) + corr
    return fast_two_sum(Lh, Ll)


@njit(**_JIT)
def _row_scalars_dd(nzero, rest, c_tot, err, thi, tlo, L1, L2a, L2b, inv, info, r):
    """log s and 1/s as (hi, lo, rad) with the bounds of the module docstring; returns False
    (info untouched) where the preconditions fail and arb must answer."""
    sh, sl = two_sum(float(nzero), rest)
    sl2 = sl + c_tot
    err2 = (err + U * abs(sl2)) * (1.0 + 2.0 ** -40)
    sh, sl = fast_two_sum(sh, sl2)
    if not (sh >= 1.0 and err2 <= 2.0 ** -60 * sh and sh < 2.0 ** 700):
        return False
    den = sh * (1.0 - 2.0 ** -50) - err2
    wh, wl = two_sum(rest, c_tot)
    if nzero == 1 and wh < 2.0 ** -17:
        # (A) s = 1 + w, w small: log1p(w) straight from w = rest + c_tot
        if not (wh >= 2.0 ** -900 and err <= 2.0 ** -40 * wh):
            return False
        Lh, Ll = log1p_small(wh, wl)
        L_rad = ((2.0 ** -85 * wh + 2.0 ** -1060) + err * (1.0 + 2.0 ** -30)) * (1.0 + 2.0 ** -40)
    else:
        # (B) s = 2^(N/2^16) (1 + v): N ln2/2^16 from the Cody-Waite constants, log1p(v) by series
        N = int(math.log2(sh) * 65536.0 + 0.5)
        E = N >> TBITS
        j = N & (TSIZE - 1)
        sc = pow2(-E)
        Mh = sh * sc  # exact scalings
        Ml = sl * sc
        Th = thi[j]
        Tl = tlo[j]
        Dh, Dl = two_sum(Mh - Th, Ml - Tl)  # Mh - Th exact (Sterbenz)
        vh = Dh / Th
        p, pe = two_prod(vh, Th)
        rv = (((Dh - p) - pe) + Dl) - vh * Tl  # Dh - p exact (Sterbenz)
        vl = rv / Th
        if not (abs(vh) <= 2.0 ** -17 and abs(vl) <= 2.0 ** -50 * abs(vh)):
            return False
        lh, ll = log1p_small(vh, vl)
        Nf = float(N)
        a1 = Nf * L1  # exact (N < 2^26, L1 has 26 bits)
        a2 = Nf * L2a  # exact
        a3 = Nf * L2b
        h1, e1 = two_sum(a1, a2)
        Lh, e2 = two_sum(h1, lh)
        Ll = ((e1 + e2) + a3) + ll
        S = ((abs(e1) + abs(e2)) + abs(a3)) + abs(ll)
        Lh, Ll = fast_two_sum(Lh, Ll)
        L_rad = (((2.0 ** -100 + Nf * 2.0 ** -120) + 2.0 ** -50 * S) + err2 / den) * (1.0 + 2.0 ** -40)
    # 1/s
    Ch = 1.0 / sh
    p, pe = two_prod(Ch, sh)
    rr = ((1.0 - p) - pe) - Ch * sl
    Cl = Ch * rr
    Ch, Cl = fast_two_sum(Ch, Cl)
    C_rad = (2.0 ** -100 * Ch + (err2 / den) / (sh * (1.0 - 2.0 ** -50))) * (1.0 + 2.0 ** -40)
    info[r, F_LHI] = Lh
    info[r, F_LLO] = Ll
    info[r, F_LRAD] = L_rad
    info[r, F_CHI] = Ch
    info[r, F_CLO] = Cl
    info[r, F_CRAD] = C_rad
    info[r, F_LTINY] = 0.0
    return True


# ---------------------------------------------------------------- per-row outputs


@njit(**_JIT)
def _fix_ambiguous(r, n, out_hi, out_ok, amb):
    """Second, scalar pass over a row's elements that decide_core left ambiguous."""
    for i in range(n):
        if amb[i]:
            out_ok[r, i] = not is_narrow_midpoint(out_hi[r, i])


@njit(**_JIT)
def _softmax_row(z, r, info, out_hi, out_lo, out_ok, sH, sL, sK, amb, have, thi, tlo, L1, L2a, L2b,
                 inv):
    """softmax outputs of row r (.fast.softmax before its arb fix), from the scratch (H, L, k)
    when `have`, else recomputing them."""
    n = z.shape[1]
    m = info[r, F_M]
    mm = -m
    if not have:
        for i in range(n):
            zi = z[r, i]
            d = zi + mm
            bb = d - zi
            dl = (zi - (d - bb)) + (mm - bb)
            act = d >= DMIN
            sH[i], sL[i], sK[i] = exp_dd1(d if act else 0.0, dl if act else 0.0, thi, tlo, L1, L2a,
                                          L2b, inv)
    Ch = info[r, F_CHI]
    Cl = info[r, F_CLO]
    Ca = hi26(Ch)
    Cb = Ch - Ca
    crel = info[r, F_CRAD] / Ch
    namb = 0
    for i in range(n):  # branch-free (vectorised by LLVM)
        zi = z[r, i]
        act = zi + mm >= DMIN  # False for -inf entries and exp(d) < e^-800: output 0 (ok)
        H = sH[i]
        L = sL[i]
        k = sK[i]
        Ha = hi26(H)
        Hb = H - Ha
        ph = H * Ch
        pe = (((Ha * Ca - ph) + Ha * Cb) + Hb * Ca) + Hb * Cb
        pl = pe + (H * Cl + L * Ch)
        hi_u, lo_u = fast_two_sum(ph, pl)
        rel = ((0.0 if zi == m else EXP_REL) + crel) + 2.0 ** -100
        big = k >= -980
        normal = k >= -1022
        sc = pow2(k if normal else 0)
        sc = sc if normal else 0.0  # .fast._pow2: 0 for k <= -1023
        hi = hi_u * sc
        lo = lo_u * sc
        A = rel * abs(hi) * 1.01
        ok, am = decide_core(hi if big else 1.0, lo if big else 0.0, A if big else 0.0)
        zero = (not act) | ((not big) & (k < -1077))
        ok = (ok & big) | zero
        am = am & big & act
        out_hi[r, i] = 0.0 if zero else hi
        out_lo[r, i] = 0.0 if zero else lo
        out_ok[r, i] = ok
        amb[i] = am
        namb += am
    if namb:
        _fix_ambiguous(r, n, out_hi, out_ok, amb)


@njit(**_JIT)
def _log_softmax_row(z, r, info, out_hi, out_lo, out_ok, amb):
    """log_softmax outputs of row r (.fast.log_softmax before _sign_only)."""
    n = z.shape[1]
    mm = -info[r, F_M]
    Lh = info[r, F_LHI]
    Ll = info[r, F_LLO]
    Lrad = info[r, F_LRAD]
    aLl = abs(Ll)
    namb = 0
    for i in range(n):  # branch-free (vectorised by LLVM)
        zi = z[r, i]
        neg = zi == -INF
        d = zi + mm
        bb = d - zi
        dl = (zi - (d - bb)) + (mm - bb)
        hi, e = two_sum(d, -Lh)
        lo = (dl - Ll) + e
        hi, lo = two_sum(hi, lo)
        A = Lrad + 2.0 ** -51 * ((abs(dl) + aLl) + abs(e))
        ok, am = decide_safe_core(hi, lo, A)
        am = am & (not neg)
        out_hi[r, i] = -INF if neg else hi
        out_lo[r, i] = 0.0 if neg else lo
        out_ok[r, i] = ok | neg
        amb[i] = am
        namb += am
    if namb:
        _fix_ambiguous(r, n, out_hi, out_ok, amb)


@njit(**_JIT)
def _special_row(r, mode, out_hi, out_lo, out_ok):
    """Conventional outputs of a NaN / +inf / all -inf row: NaN for softmax and log_softmax."""
    if mode == MODE_SUM:
        return
    n = out_hi.shape[1]
    for i in range(n):
        out_hi[r, i] = NAN
        out_lo[r, i] = 0.0
        out_ok[r, i] = True


# ---------------------------------------------------------------- the row kernel

BLK = 256  # elements per chunk: the chunk buffers stay in L1


@njit(**_JIT)
def _row_max(z, r, n):
    """(max, has_nan) of row r, four independent lanes."""
    m0 = m1 = m2 = m3 = -INF
    nan = False
    n4 = n - n % 4
    for i in range(0, n4, 4):
        v0 = z[r, i]
        v1 = z[r, i + 1]
        v2 = z[r, i + 2]
        v3 = z[r, i + 3]
        nan |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
    for i in range(n4, n):
        v0 = z[r, i]
        nan |= v0 != v0
        m0 = v0 if v0 > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return (m2 if m2 > m0 else m0), nan


@njit(**_JIT)
def row_pass(z, mode, thi, tlo, L1, L2a, L2b, inv, info, out_hi, out_lo, out_ok):
    """All rows of z (R, n) float64, C-contiguous: max, exact shift, exp, certified sum, row
    scalars (double-double where proved, else F_NEEDARB = 1) and, for mode 1 / 2, the outputs of
    every row whose scalars are known. Fills info (R, NF).

    The exp of a chunk runs as three loops -- the table-free part (vectorised), the two table
    loads (scalar: LLVM emits no gathers here), the table-dependent part (vectorised) -- which
    are operation for operation :func:`exp_dd1`; the sum runs in four interleaved TwoSum lanes."""
    R, n = z.shape
    store = mode == MODE_SOFTMAX
    ns = n if store else BLK
    sH = np.empty(ns)
    sL = np.empty(ns)
    sK = np.empty(ns, np.int64)
    amb = np.empty(n if mode != MODE_SUM else 1, np.bool_)
    bj = np.empty(BLK, np.int64)
    bk = np.empty(BLK, np.int64)
    bb_ = np.empty(BLK)
    bba = np.empty(BLK)
    bq = np.empty(BLK)
    buse = np.empty(BLK, np.bool_)
    bTh = np.empty(BLK)
    bTl = np.empty(BLK)
    bEh = np.empty(BLK)
    bEl = np.empty(BLK)
    for r in range(R):
        for f in range(NF):
            info[r, f] = 0.0
        m, nan = _row_max(z, r, n)
        code = 0.0
        if nan:
            code = CODE_NAN
        elif m == INF:
            code = CODE_PINF
        elif m == -INF:
            code = CODE_NINF
        if code != 0.0:
            info[r, F_CODE] = code
            _special_row(r, mode, out_hi, out_lo, out_ok)
            continue
        info[r, F_M] = m
        mm = -m
        s0 = s1 = s2 = s3 = 0.0
        c0 = c1 = c2 = c3 = 0.0
        ca0 = ca1 = ca2 = ca3 = 0.0
        l0 = l1 = l2 = l3 = 0.0
        la0 = la1 = la2 = la3 = 0.0
        nzero = 0
        ndrop = 0
        nsub = 0
        for i0 in range(0, n, BLK):
            mb = min(BLK, n - i0)
            off = i0 if store else 0
            for ii in range(mb):  # d, flags, table-free part of exp_dd
                zi = z[r, i0 + ii]
                d = zi + mm
                bb = d - zi
                dl = (zi - (d - bb)) + (mm - bb)
                act = d >= DMIN
                one = (d == 0.0) & (dl == 0.0)
                ndrop += (not act) & (zi > -INF)
                nzero += one
                buse[ii] = act & (not one)
                j, k, b, ba, q = _exp_a(d if act else 0.0, dl if act else 0.0, L1, L2a, L2b, inv)
                bj[ii] = j
                bk[ii] = k
                bb_[ii] = b
                bba[ii] = ba
                bq[ii] = q
            for ii in range(mb):  # table loads
                j = bj[ii]
                bTh[ii] = thi[j]
                bTl[ii] = tlo[j]
            for ii in range(mb):  # table-dependent part, scaling by 2^k (as np.ldexp)
                H, L = _exp_c(bTh[ii], bTl[ii], bb_[ii], bba[ii], bq[ii])
                k = bk[ii]
                use = buse[ii]
                sH[off + ii] = H  # unconditional (branch-free loop): a chunk-sized scratch
                sL[off + ii] = L  # unless softmax keeps the row's (H, L, k)
                sK[off + ii] = k
                nsub += use & (k < -960)
                low = k < -1022
                p1 = pow2(k + 600 if low else k)  # exact; then one rounding (x 2^-600 or x 1)
                f2 = 2.0 ** -600 if low else 1.0
                Eh = (H * p1) * f2
                El = (L * p1) * f2
                bEh[ii] = Eh if use else 0.0
                bEl[ii] = El if use else 0.0
            for ii in range(mb, BLK):  # pad: adding exact zeros changes nothing
                bEh[ii] = 0.0
                bEl[ii] = 0.0
            for ii in range(0, BLK, 4):  # four TwoSum lanes; c_i and l_i with their |.| sums
                x = bEh[ii]
                t = s0 + x
                bv = t - s0
                c0 = c0 + ((s0 - (t - bv)) + (x - bv))
                s0 = t
                ca0 = ca0 + abs(c0)
                x = bEh[ii + 1]
                t = s1 + x
                bv = t - s1
                c1 = c1 + ((s1 - (t - bv)) + (x - bv))
                s1 = t
                ca1 = ca1 + abs(c1)
                x = bEh[ii + 2]
                t = s2 + x
                bv = t - s2
                c2 = c2 + ((s2 - (t - bv)) + (x - bv))
                s2 = t
                ca2 = ca2 + abs(c2)
                x = bEh[ii + 3]
                t = s3 + x
                bv = t - s3
                c3 = c3 + ((s3 - (t - bv)) + (x - bv))
                s3 = t
                ca3 = ca3 + abs(c3)
                l0 = l0 + bEl[ii]
                la0 = la0 + abs(l0)
                l1 = l1 + bEl[ii + 1]
                la1 = la1 + abs(l1)
                l2 = l2 + bEl[ii + 2]
                la2 = la2 + abs(l2)
                l3 = l3 + bEl[ii + 3]
                la3 = la3 + abs(l3)
        # merge the lanes: s by TwoSum (errors into c); every further addition into c or l adds
        # its result's magnitude to the |.| sums (the bound u sum|partial| stays valid)
        s, e1 = two_sum(s0, s1)
        t, e2 = two_sum(s2, s3)
        s, e3 = two_sum(s, t)
        c01 = c0 + c1
        c23 = c2 + c3
        c = c01 + c23
        ca = ((ca0 + ca1) + (ca2 + ca3)) + ((abs(c01) + abs(c23)) + abs(c))
        c = c + e1
        ca = ca + abs(c)
        c = c + e2
        ca = ca + abs(c)
        c = c + e3
        ca = ca + abs(c)
        l01 = l0 + l1
        l23 = l2 + l3
        l = l01 + l23
        la = ((la0 + la1) + (la2 + la3)) + ((abs(l01) + abs(l23)) + abs(l))
        slack = 1.0 + 2.0 * (n + 16) * U
        tb = U * ca * slack
        lb = U * la * slack
        c_tot = c + l
        err = (EXP_REL * max(s + c_tot + tb + lb, 0.0) * (1.0 + 2.0 ** -50) + tb + lb
               + U * abs(c_tot) + ndrop * 2.0 ** -1150 + nsub * 2.0 ** -1074) * (1.0 + 2.0 ** -40)
        info[r, F_NZERO] = nzero
        info[r, F_REST] = s
        info[r, F_C] = c_tot
        info[r, F_ERR] = err
        info[r, F_NDROP] = ndrop
        info[r, F_LPOS] = 1.0 if (s > 0.0 or ndrop > 0) else 0.0
        if not _row_scalars_dd(nzero, s, c_tot, err, thi, tlo, L1, L2a, L2b, inv, info, r):
            info[r, F_NEEDARB] = 1.0
            continue
        if mode == MODE_SOFTMAX:
            _softmax_row(z, r, info, out_hi, out_lo, out_ok, sH, sL, sK, amb, True, thi, tlo, L1,
                         L2a, L2b, inv)
        elif mode == MODE_LOG_SOFTMAX:
            _log_softmax_row(z, r, info, out_hi, out_lo, out_ok, amb)


@njit(**_JIT)
def rows_outputs(z, rows, mode, thi, tlo, L1, L2a, L2b, inv, info, out_hi, out_lo, out_ok):
    """Outputs (mode 1 / 2) of the given rows once their scalars are in info (arb rows)."""
    n = z.shape[1]
    sH = np.empty(n)
    sL = np.empty(n)
    sK = np.empty(n, np.int64)
    amb = np.empty(n, np.bool_)
    for r in rows:
        if mode == MODE_SOFTMAX:
            _softmax_row(z, r, info, out_hi, out_lo, out_ok, sH, sL, sK, amb, False, thi, tlo, L1,
                         L2a, L2b, inv)
        else:
            _log_softmax_row(z, r, info, out_hi, out_lo, out_ok, amb)


# public names of the two halves of exp_dd1 (the block kernels of .fast_elem_kernels split them
# around the table loads, as row_pass does)
exp_a = _exp_a
exp_c = _exp_c
f2i = _f2i
i2f = _i2f

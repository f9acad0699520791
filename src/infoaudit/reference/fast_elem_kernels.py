"""Compiled certified kernels of the elementwise quantities (docs/fast_reference.md, section 2).

sigmoid, softplus, log_sigmoid, binary_cross_entropy_with_logits, binary_cross_entropy,
self_information_bits, binary_entropy_bits: each element gives ``(hi, lo, ok)`` with guarantee (b)
of :mod:`.fast` where ``ok`` (else the caller escalates it to mpmath). Conventions (NaN, +-inf,
0 log 0 = 0) are those of :mod:`.formulas`, exactly. Built from :mod:`.fast_dd` and
``fast_kernels.exp_dd1`` (relative error ``EXP_REL = 2^-84``, valid for ``-800 <= x <= 700``).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .fast_dd import (
    decide1,
    decide_exact_plus_small,
    finish_scaled,
    log1p_dd,
    log_array,
    log_dd,
    mul_dd,
    scale_exact,
)
from .fast_kernels import (
    EXP_REL,
    decide_core,
    exp_a,
    exp_c,
    exp_dd1,
    fast_two_sum,
    log1p_small,
    pow2,
    two_prod,
    two_sum,
)

__all__ = ["elementwise", "KERNELS", "softplus_neg", "sigmoid_blocks", "softplus_array", "bce_logits_array", "log_family", "xlog_combine",
           "self_info_combine"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)
# powers of two as module constants (numba freezes globals; a literal 2.0 ** -n is a runtime power)
P2P900 = 2.0 ** 900
P2M40 = 2.0 ** -40
P2M50 = 2.0 ** -50
P2M52 = 2.0 ** -52
P2M60 = 2.0 ** -60
P2M85 = 2.0 ** -85
P2M100 = 2.0 ** -100
P2M101 = 2.0 ** -101
P2M104 = 2.0 ** -104
P2M897 = 2.0 ** -897
P2M899 = 2.0 ** -899
P2M900 = 2.0 ** -900
P2M1060 = 2.0 ** -1060
P2M1066 = 2.0 ** -1066
P2M1073 = 2.0 ** -1073
P2M1074 = 2.0 ** -1074
INF = math.inf
NAN = math.nan
TINY = P2M1074
C48 = 1.0 / 48
C480 = 1.0 / 480
P2M20 = 2.0 ** -20
P2M300 = 2.0 ** -300
P2M1020 = 2.0 ** -1020


@njit(**_JIT)
def softplus_neg(x, thi, tlo, L1, L2a, L2b, inv):
    """softplus(x) = log1p(e^x) for finite x <= 0 as 2^k (Uh + Ul) +- 2^k Au, plus good
    (docs/fast_reference.md, 2.2)."""
    if x < -800.0:  # e^x < 2^-1154: the value is in (0, 2^-1153)
        return 1.0, 0.0, 1.0, -1154, True
    H, L, k = exp_dd1(x, 0.0, thi, tlo, L1, L2a, L2b, inv)
    if k >= -17:
        Eh = H * pow2(k)  # exact: k in [-17, 0]
        El = L * pow2(k)
        bh, bl, rad, good = log1p_dd(Eh, El, thi, tlo, L1, L2a, L2b)
        return bh, bl, (rad + EXP_REL * Eh * 1.01) * (1.0 + P2M40), 0, good
    if k >= -900:
        Eh = scale_exact(H, k)
        El = scale_exact(L, k)
        bh, bl = log1p_small(Eh, El)
        return bh, bl, ((P2M85 + EXP_REL * 1.01) * Eh + P2M1060) * (1.0 + P2M40), 0, True
    # log1p(e) = e (1 - theta), 0 <= theta <= e / 2 < 2^-899
    return H, L, (EXP_REL * 1.01 + P2M897) * H, k, True


@njit(**_JIT)
def sigmoid1(x, thi, tlo, L1, L2a, L2b, inv):
    if x != x:
        return NAN, 0.0, True
    if x == INF:
        return 1.0, 0.0, True
    if x == -INF:
        return 0.0, 0.0, True
    if x < -800.0:
        return 0.0, TINY, True  # 0 < exact value < 2^-1154: rounds to +0, the remainder is > 0
    if x > 700.0:  # 1 - e^-x (1 - ...), e^-x < 2^-1009
        return 1.0, -TINY, True
    if abs(x) < P2M20 and x != 0.0:
        # 1/2 + x/4 - x^3/48 + x^5/480 - (<= |x|^7 / 4000): 1/2 + x/4 may be an exact float64 tie,
        # the cubic term decides (docs/fast_reference.md, 2)
        h, l = two_sum(0.5, 0.25 * x)
        x3 = (x * x) * x
        c = -x3 * (C48 - (x * x) * C480)
        slop = P2M1020 if abs(x) < P2M300 else 0.0
        cerr = (P2M50 * abs(c) + abs(x3) * (x * x) * (x * x) * 0.00025 + slop) * (1.0 + P2M40)
        if abs(x) >= P2M1020:  # 0.25 x exact: 1/2 + x/4 = h + l exactly
            hh, ll, ok, applies = decide_exact_plus_small(h, l, c, cerr)
            if applies:
                return hh, ll, ok
        lo = l + c
        A = (cerr + P2M52 * abs(lo) + (P2M1074 if abs(x) < P2M1020 else 0.0)) * (1.0 + P2M40)
        hi, lo = fast_two_sum(h, lo)
        return decide1(hi, lo, A)
    H, L, k = exp_dd1(-abs(x), 0.0, thi, tlo, L1, L2a, L2b, inv)
    Eh = scale_exact(H, k)
    El = scale_exact(L, k)
    sh, se = two_sum(1.0, Eh)
    sl, drop = two_sum(se, El)
    sh, sl = fast_two_sum(sh, sl)
    ds = (EXP_REL * 1.01 * Eh + abs(drop) + P2M1073) * (1.0 + P2M40)  # |s - (sh + sl)| (s >= 1)
    if x >= 0.0:  # 1 / s
        Ch = 1.0 / sh
        p, pe = two_prod(Ch, sh)
        r = ((1.0 - p) - pe) - Ch * sl
        Cl = Ch * r
        Ch, Cl = fast_two_sum(Ch, Cl)
        A = (P2M101 * Ch + ds * Ch * 1.01) * (1.0 + P2M40)
        return decide1(Ch, Cl, A)
    # e / s = 2^k (H + L) / s
    qh = H / sh
    p, pe = two_prod(qh, sh)
    r = (((H - p) - pe) + L) - qh * sl  # H - p exact (Sterbenz)
    ql = r / sh
    qh, ql = fast_two_sum(qh, ql)
    Au = (P2M100 + EXP_REL * 1.01 + ds * 1.01) * abs(qh) * (1.0 + P2M40)
    return finish_scaled(qh, ql, Au, k)


@njit(**_JIT)
def softplus1(x, thi, tlo, L1, L2a, L2b, inv):
    if x != x:
        return NAN, 0.0, True
    if x == INF:
        return INF, 0.0, True
    if x == -INF:
        return 0.0, 0.0, True
    if x > 745.0:  # x + log1p(e^-x), 0 < log1p(e^-x) < 2^-1074
        return x, TINY, True
    if x <= 0.0:
        Uh, Ul, Au, k, good = softplus_neg(x, thi, tlo, L1, L2a, L2b, inv)
        if not good:
            return NAN, 0.0, False
        return finish_scaled(Uh, Ul, Au, k)
    Uh, Ul, Au, k, good = softplus_neg(-x, thi, tlo, L1, L2a, L2b, inv)
    if not good:
        return NAN, 0.0, False
    bh = scale_exact(Uh, k)
    bl = scale_exact(Ul, k)
    Ab = scale_exact(Au, k) * 1.01 + P2M1073
    if bh < P2M60 * x:  # x + b, 0 < b far below ulp(x) / 4: hi = x, the remainder b > 0
        lo = bh + bl
        return x, (lo if lo > 0.0 else TINY), True
    hi, e = two_sum(x, bh)
    lo = e + bl
    hi, lo = fast_two_sum(hi, lo)
    return decide1(hi, lo, (Ab + P2M52 * abs(lo)) * (1.0 + P2M40))


@njit(**_JIT)
def log_sigmoid1(x, thi, tlo, L1, L2a, L2b, inv):
    h, l, ok = softplus1(-x, thi, tlo, L1, L2a, L2b, inv)
    return -h, -l, ok


@njit(**_JIT)
def bce_logits1(z, t, thi, tlo, L1, L2a, L2b, inv):
    """softplus(z) - t z = a + softplus(-|z|), a = (1 - t) z (z > 0) or t |z| (z <= 0), both >= 0."""
    if z != z or t != t:
        return NAN, 0.0, True
    if z == INF:
        return (0.0 if t == 1.0 else INF), 0.0, True
    if z == -INF:
        return (0.0 if t == 0.0 else INF), 0.0, True
    if abs(z) > P2P900:
        return NAN, 0.0, False
    ah, al, Aa = bce_logits_parts(z, t)
    Uh, Ul, Au, k, good = softplus_neg(-abs(z), thi, tlo, L1, L2a, L2b, inv)
    if not good:
        return NAN, 0.0, False
    return bce_logits_combine(ah, al, Aa, Uh, Ul, Au, k)


@njit(**_JIT)
def bce_logits_parts(z, t):
    """a = (1 - t) z (z > 0) or t |z| (z <= 0) for finite z, |z| <= 2^900: (ah, al, Aa),
    |a - (ah + al)| <= Aa (0 where exact)."""
    if z > 0.0:
        oh, ol = two_sum(1.0, -t)  # exact
        p1, e1 = two_prod(oh, z)
        p2, e2 = two_prod(ol, z)
    else:
        p1, e1 = two_prod(t, -z)
        p2 = 0.0
        e2 = 0.0
    ah, al0 = two_sum(p1, p2)
    s1, s2 = two_sum(al0, e1)
    if s2 == 0.0 and e2 == 0.0:
        al = s1
        Aa = 0.0
    else:
        t2 = s2 + e2
        al = s1 + t2
        Aa = P2M52 * (abs(t2) + abs(al))
    if abs(p1) < P2M900 and p1 != 0.0:
        Aa += P2M1066  # underflow inside the products
    return ah, al, Aa


@njit(**_JIT)
def bce_logits_combine(ah, al, Aa, Uh, Ul, Au, k):
    """a + b, a = ah + al +- Aa >= 0, b = softplus(-|z|) = 2^k (Uh + Ul) +- 2^k Au > 0."""
    if ah == 0.0 and al == 0.0 and Aa == 0.0:
        return finish_scaled(Uh, Ul, Au, k)
    bh = scale_exact(Uh, k)
    bl = scale_exact(Ul, k)
    Ab = scale_exact(Au, k) * 1.01 + P2M1073
    if Aa == 0.0:  # a = ah + al exactly: where b > 0 is negligible only its sign matters (a tie)
        bb = bh + bl
        h, l, ok, applies = decide_exact_plus_small(ah, al, bb if bb > 0.0 else TINY, Ab if bb > Ab else 0.0)
        if applies:
            return h, l, ok
    hi, e = two_sum(ah, bh)
    lo1 = e + al
    lo = lo1 + bl
    A = (Aa + Ab + P2M52 * (abs(lo1) + abs(lo))) * (1.0 + P2M40)
    hi, lo = two_sum(hi, lo)
    return decide1(hi, lo, A)


@njit(**_JIT)
def _xlog_terms(p, t, thi, tlo, L1, L2a, L2b):
    """t log p + (1 - t) log(1 - p) for p, t in [0, 1] (0 log 0 = 0) as (h, l, A, code):
    code 0 finite, 1 -inf, 2 not certified (docs/fast_reference.md, 2)."""
    g1 = False
    L1h = L1l = r1 = 0.0
    if p > 0.0:
        L1h, L1l, r1, g1 = log_dd(p, 0.0, thi, tlo, L1, L2a, L2b)
    g2 = False
    L2h = L2l = r2 = 0.0
    if P2M900 <= p < 1.0:
        L2h, L2l, r2, g2 = log1p_dd(-p, 0.0, thi, tlo, L1, L2a, L2b)
    return xlog_combine(p, t, L1h, L1l, r1, g1, L2h, L2l, r2, g2)


@njit(**_JIT)
def xlog_combine(p, t, L1h, L1l, r1, g1, L2h, L2l, r2, g2):
    """:func:`_xlog_terms` from log p = L1h + L1l (+- r1, valid where g1) and log(1 - p) =
    L2h + L2l (+- r2, valid where g2; used for 2^-900 <= p < 1)."""
    m1h = 0.0
    m1l = 0.0
    err1 = 0.0
    if t != 0.0:
        if p == 0.0:
            return 0.0, 0.0, 0.0, 1
        if not g1:
            return 0.0, 0.0, 0.0, 2
        if not (L1h == 0.0 and L1l == 0.0 and r1 == 0.0):
            m1h, m1l, me = mul_dd(t, 0.0, L1h, L1l)
            err1 = me + t * r1 * 1.01
    m2h = 0.0
    m2l = 0.0
    err2 = 0.0
    oh, ol = two_sum(1.0, -t)  # 1 - t exactly
    if oh != 0.0:
        if p == 1.0:
            return 0.0, 0.0, 0.0, 1
        if p == 0.0:
            L2h = 0.0
            L2l = 0.0
            r2 = 0.0
        elif p < P2M900:  # log1p(-p) = -p (1 + theta), 0 <= theta <= p
            L2h = -p
            L2l = 0.0
            r2 = p * P2M899
        elif not g2:
            return 0.0, 0.0, 0.0, 2
        if not (L2h == 0.0 and L2l == 0.0 and r2 == 0.0):
            m2h, m2l, me = mul_dd(oh, ol, L2h, L2l)
            err2 = me + abs(oh) * r2 * 1.01
    hi, e = two_sum(m1h, m2h)
    lo1 = e + m1l
    lo = lo1 + m2l
    A = (err1 + err2 + P2M52 * (abs(lo1) + abs(lo))) * (1.0 + P2M40)
    hi, lo = two_sum(hi, lo)
    return hi, lo, A, 0


@njit(**_JIT)
def bce1(p, t, thi, tlo, L1, L2a, L2b, inv):
    if p != p or t != t:
        return NAN, 0.0, True
    h, l, A, code = _xlog_terms(p, t, thi, tlo, L1, L2a, L2b)
    if code == 1:
        return INF, 0.0, True
    if code == 2:
        return NAN, 0.0, False
    return decide1(-h, -l, A)


@njit(**_JIT)
def self_information_bits1(p, thi, tlo, L1, L2a, L2b, inv, lg_h, lg_l):
    g = False
    Lh = Ll = rad = 0.0
    if p > 0.0 and p < INF:
        Lh, Ll, rad, g = log_dd(p, 0.0, thi, tlo, L1, L2a, L2b)
    return self_info_combine(p, Lh, Ll, rad, g, lg_h, lg_l)


@njit(**_JIT)
def self_info_combine(p, Lh, Ll, rad, good, lg_h, lg_l):
    """-log2 p from log p = Lh + Ll +- rad (valid where good)."""
    if p != p:
        return NAN, 0.0, True
    if p == 0.0:
        return INF, 0.0, True
    if p == INF or not good:
        return NAN, 0.0, False
    if Lh == 0.0 and Ll == 0.0 and rad == 0.0:
        return 0.0, 0.0, True
    h, l, me = mul_dd(Lh, Ll, lg_h, lg_l)
    A = (me + rad * lg_h * 1.01 + P2M104 * abs(h)) * (1.0 + P2M40)
    return decide1(-h, -l, A)


@njit(**_JIT)
def binary_entropy_bits1(p, thi, tlo, L1, L2a, L2b, inv, lg_h, lg_l):
    if p != p:
        return NAN, 0.0, True
    h, l, A, code = _xlog_terms(p, p, thi, tlo, L1, L2a, L2b)
    if code != 0:
        return NAN, 0.0, False
    if h == 0.0 and l == 0.0 and A == 0.0:
        return 0.0, 0.0, True
    bh, bl, me = mul_dd(h, l, lg_h, lg_l)
    A2 = (me + A * lg_h * 1.01 + P2M104 * abs(bh)) * (1.0 + P2M40)
    return decide1(-bh, -bl, A2)


# ---------------------------------------------------------------- array drivers

Q_SIGMOID, Q_SOFTPLUS, Q_LOG_SIGMOID, Q_BCE_LOGITS, Q_BCE, Q_SELF_INFO, Q_BIN_ENT = range(7)
KERNELS = {"sigmoid": Q_SIGMOID, "softplus": Q_SOFTPLUS, "log_sigmoid": Q_LOG_SIGMOID,
           "binary_cross_entropy_with_logits": Q_BCE_LOGITS, "binary_cross_entropy": Q_BCE,
           "self_information_bits": Q_SELF_INFO, "binary_entropy_bits": Q_BIN_ENT}


@njit(**_JIT)
def elementwise(q, x, y, thi, tlo, L1, L2a, L2b, inv, lg_h, lg_l, out_hi, out_lo, out_ok):
    """Quantity q (Q_*) on the flat float64 arrays x (and y for the two-argument ones)."""
    n = x.size
    for i in range(n):
        a = x[i]
        if q == Q_SIGMOID:
            h, l, ok = sigmoid1(a, thi, tlo, L1, L2a, L2b, inv)
        elif q == Q_SOFTPLUS:
            h, l, ok = softplus1(a, thi, tlo, L1, L2a, L2b, inv)
        elif q == Q_LOG_SIGMOID:
            h, l, ok = log_sigmoid1(a, thi, tlo, L1, L2a, L2b, inv)
        elif q == Q_BCE_LOGITS:
            h, l, ok = bce_logits1(a, y[i], thi, tlo, L1, L2a, L2b, inv)
        elif q == Q_BCE:
            h, l, ok = bce1(a, y[i], thi, tlo, L1, L2a, L2b, inv)
        elif q == Q_SELF_INFO:
            h, l, ok = self_information_bits1(a, thi, tlo, L1, L2a, L2b, inv, lg_h, lg_l)
        else:
            h, l, ok = binary_entropy_bits1(a, thi, tlo, L1, L2a, L2b, inv, lg_h, lg_l)
        out_hi[i] = h
        out_lo[i] = l
        out_ok[i] = ok


BLK = 256  # elements per block: the block buffers stay in L1


@njit(**_JIT)
def sigmoid_blocks(x, thi, tlo, L1, L2a, L2b, inv, out_hi, out_lo, out_ok):
    """sigmoid over a flat array, vectorised: per block of BLK elements the table-free half of
    exp (vectorised), the table loads (scalar), then the rest of :func:`sigmoid1` operation for
    operation and branch-free for the common case (finite x, -686 <= x <= 700, |x| >= 2^-20: k >= -990,
    no special value, not sigmoid1's series branch), the decision's branch-free part; every other element (specials, tiny or
    saturated results, narrow-midpoint ambiguity, anything not decided) is recomputed by the
    scalar :func:`sigmoid1`.
    Same results as sigmoid1 element for element."""
    n = x.size
    bj = np.empty(BLK, np.int64)
    bk = np.empty(BLK, np.int64)
    bb_ = np.empty(BLK)
    bba = np.empty(BLK)
    bq = np.empty(BLK)
    bTh = np.empty(BLK)
    bTl = np.empty(BLK)
    slow = np.empty(BLK, np.bool_)
    for i0 in range(0, n, BLK):
        mb = min(BLK, n - i0)
        for ii in range(mb):
            xv = x[i0 + ii]
            common = (xv >= -686.0) & (xv <= 700.0) & (abs(xv) >= P2M20)  # False for NaN, +-inf, tiny x
            xa = -abs(xv) if common else 0.0
            j, k, b, ba, q = exp_a(xa, 0.0, L1, L2a, L2b, inv)
            bj[ii] = j
            bk[ii] = k
            bb_[ii] = b
            bba[ii] = ba
            bq[ii] = q
            slow[ii] = not common
        for ii in range(mb):
            j = bj[ii]
            bTh[ii] = thi[j]
            bTl[ii] = tlo[j]
        for ii in range(mb):
            xv = x[i0 + ii]
            H, L = exp_c(bTh[ii], bTl[ii], bb_[ii], bba[ii], bq[ii])
            k = bk[ii]
            sc = pow2(k)  # k >= -990 in the common case
            Eh = H * sc
            El = L * sc  # (sigmoid1: scale_exact, the same single rounding for k >= -1022)
            sh, se = two_sum(1.0, Eh)
            sl, drop = two_sum(se, El)
            sh, sl = fast_two_sum(sh, sl)
            ds = (EXP_REL * 1.01 * Eh + abs(drop) + P2M1073) * (1.0 + P2M40)
            pos = xv >= 0.0
            # x >= 0: 1 / s
            Ch = 1.0 / sh
            p, pe = two_prod(Ch, sh)
            r = ((1.0 - p) - pe) - Ch * sl
            Cl = Ch * r
            Ch, Cl = fast_two_sum(Ch, Cl)
            A1 = (P2M101 * Ch + ds * Ch * 1.01) * (1.0 + P2M40)
            # x < 0: 2^k (H + L) / s, scaled as finish_scaled does for k >= -990
            qh = H / sh
            p2, pe2 = two_prod(qh, sh)
            r2 = (((H - p2) - pe2) + L) - qh * sl
            ql = r2 / sh
            qh, ql = fast_two_sum(qh, ql)
            Au = (P2M100 + EXP_REL * 1.01 + ds * 1.01) * abs(qh) * (1.0 + P2M40)
            h2 = qh * sc
            l2 = ql * sc
            A2 = (Au * sc) * (1.0 + P2M50) + P2M1074
            hi = Ch if pos else h2
            lo = Cl if pos else l2
            A = A1 if pos else A2
            ok, amb = decide_core(hi, lo, A)
            out_hi[i0 + ii] = hi
            out_lo[i0 + ii] = lo
            out_ok[i0 + ii] = ok
            slow[ii] = slow[ii] | amb | (not ok)
        for ii in range(mb):
            if slow[ii]:
                h, l, ok = sigmoid1(x[i0 + ii], thi, tlo, L1, L2a, L2b, inv)
                out_hi[i0 + ii] = h
                out_lo[i0 + ii] = l
                out_ok[i0 + ii] = ok


@njit(**_JIT)
def log_family(q, p, t, thi, tlo, L1, L2a, L2b, lg_h, lg_l, out_hi, out_lo, out_ok):
    """self_information_bits, binary_cross_entropy and binary_entropy_bits over flat arrays with
    the logs from the vectorised ``fast_dd.log_array`` (log p and log(1 - p) as the double-double
    1 - p), then the scalar combination of :func:`self_info_combine` / :func:`xlog_combine`."""
    n = p.size
    L1h = np.empty(n)
    L1l = np.empty(n)
    r1 = np.empty(n)
    g1 = np.empty(n, np.bool_)
    log_array(p, np.zeros(n), thi, tlo, L1, L2a, L2b, L1h, L1l, r1, g1)
    if q == Q_SELF_INFO:
        for i in range(n):
            out_hi[i], out_lo[i], out_ok[i] = self_info_combine(p[i], L1h[i], L1l[i], r1[i], g1[i], lg_h, lg_l)
        return
    oh = np.empty(n)
    ol = np.empty(n)
    for i in range(n):
        pi = p[i]
        a, b = two_sum(1.0, -pi)  # 1 - p exactly
        ok = (pi >= P2M900) & (pi < 1.0)
        oh[i] = a if ok else 1.0
        ol[i] = b if ok else 0.0
    L2h = np.empty(n)
    L2l = np.empty(n)
    r2 = np.empty(n)
    g2 = np.empty(n, np.bool_)
    log_array(oh, ol, thi, tlo, L1, L2a, L2b, L2h, L2l, r2, g2)
    for i in range(n):
        pi = p[i]
        ti = pi if q == Q_BIN_ENT else t[i]
        if pi != pi or ti != ti:
            out_hi[i], out_lo[i], out_ok[i] = NAN, 0.0, True
            continue
        h, l, A, code = xlog_combine(pi, ti, L1h[i], L1l[i], r1[i], g1[i], L2h[i], L2l[i], r2[i], g2[i])
        if q == Q_BCE:
            if code == 1:
                out_hi[i], out_lo[i], out_ok[i] = INF, 0.0, True
            elif code == 2:
                out_hi[i], out_lo[i], out_ok[i] = NAN, 0.0, False
            else:
                out_hi[i], out_lo[i], out_ok[i] = decide1(-h, -l, A)
        else:
            if code != 0:
                out_hi[i], out_lo[i], out_ok[i] = NAN, 0.0, False
            elif h == 0.0 and l == 0.0 and A == 0.0:
                out_hi[i], out_lo[i], out_ok[i] = 0.0, 0.0, True
            else:
                bh, bl, me = mul_dd(h, l, lg_h, lg_l)
                A2 = (me + A * lg_h * 1.01 + P2M104 * abs(bh)) * (1.0 + P2M40)
                out_hi[i], out_lo[i], out_ok[i] = decide1(-bh, -bl, A2)


@njit(**_JIT)
def softplus_array(x, sign, thi, tlo, L1, L2a, L2b, inv, out_hi, out_lo, out_ok):
    softplus_like_array(0, x, x, sign, thi, tlo, L1, L2a, L2b, inv, out_hi, out_lo, out_ok)


@njit(**_JIT)
def bce_logits_array(z, t, thi, tlo, L1, L2a, L2b, inv, out_hi, out_lo, out_ok):
    """binary_cross_entropy_with_logits over flat arrays: softplus(-|z|) for |z| <= 11 from the
    vectorised log_array, then :func:`bce_logits_combine`; other elements by :func:`bce_logits1`."""
    softplus_like_array(1, z, t, 1.0, thi, tlo, L1, L2a, L2b, inv, out_hi, out_lo, out_ok)


@njit(**_JIT)
def softplus_like_array(kind, x, t, sign, thi, tlo, L1, L2a, L2b, inv, out_hi, out_lo, out_ok):
    """softplus(sign * x) (sign = 1: softplus, sign = -1: -log_sigmoid's argument) over a flat
    array, negated back for sign = -1 (log_sigmoid). For |x| <= 11 (where e^-|x| >= 2^-17 and
    log1p_dd takes the log_dd(1 + e) branch) the log comes from the vectorised
    ``fast_dd.log_array``; the operations around it are :func:`softplus1`'s; every other element
    goes through :func:`softplus1` itself."""
    n = x.size
    yh = np.empty(n)
    yl = np.empty(n)
    drop = np.empty(n)
    Ehs = np.empty(n)
    common = np.empty(n, np.bool_)
    for i in range(n):
        v = sign * x[i]
        c = abs(v) <= 11.0  # False for NaN and +-inf
        H, L, k = exp_dd1(-abs(v) if c else 0.0, 0.0, thi, tlo, L1, L2a, L2b, inv)
        Eh = H * pow2(k)  # exact: k in [-17, 0] here
        El = L * pow2(k)
        sh, se = two_sum(1.0, Eh)
        sl, dd = two_sum(se, El)
        a, b = fast_two_sum(sh, sl)
        c = c & (k >= -17)
        yh[i] = a if c else 1.0
        yl[i] = b if c else 0.0
        drop[i] = dd
        Ehs[i] = Eh
        common[i] = c
    Lh = np.empty(n)
    Ll = np.empty(n)
    rad = np.empty(n)
    good = np.empty(n, np.bool_)
    log_array(yh, yl, thi, tlo, L1, L2a, L2b, Lh, Ll, rad, good)
    for i in range(n):
        v = sign * x[i]
        if kind == 1:
            if common[i] and good[i] and t[i] == t[i]:
                r = (rad[i] + abs(drop[i]) / (yh[i] * (1.0 - P2M50))) * (1.0 + P2M40)
                Au = (r + EXP_REL * Ehs[i] * 1.01) * (1.0 + P2M40)
                ah, al, Aa = bce_logits_parts(x[i], t[i])
                h, l, ok = bce_logits_combine(ah, al, Aa, Lh[i], Ll[i], Au, 0)
            else:
                h, l, ok = bce_logits1(x[i], t[i], thi, tlo, L1, L2a, L2b, inv)
            out_hi[i] = h
            out_lo[i] = l
            out_ok[i] = ok
            continue
        if common[i] and good[i]:
            # softplus_neg's k >= -17 branch with log1p_dd's log_dd(1 + e) branch
            r = (rad[i] + abs(drop[i]) / (yh[i] * (1.0 - P2M50))) * (1.0 + P2M40)
            Au = (r + EXP_REL * Ehs[i] * 1.01) * (1.0 + P2M40)
            bh = Lh[i]
            bl = Ll[i]
            if v <= 0.0:  # finish_scaled(bh, bl, Au, 0)
                h, l, ok = decide1(bh, bl, Au * (1.0 + P2M50) + P2M1074)
            else:
                Ab = Au * 1.01 + P2M1073
                hi, e = two_sum(v, bh)
                lo = e + bl
                hi, lo = fast_two_sum(hi, lo)
                h, l, ok = decide1(hi, lo, (Ab + P2M52 * abs(lo)) * (1.0 + P2M40))
        else:
            h, l, ok = softplus1(v, thi, tlo, L1, L2a, L2b, inv)
        if sign < 0:
            h = -h
            l = -l
        out_hi[i] = h
        out_lo[i] = l
        out_ok[i] = ok

"""Compiled certified kernels of the row reductions (docs/fast_reference.md, section 3).

entropy (and entropy_bits), cross_entropy_probs, kl_divergence, gaussian_kl, and the per-row
part of label_smoothing_cross_entropy. Per row: every term as a double-double with an absolute
error bound, summed by TwoSum (errors and low parts accumulated with the a posteriori bound of
.fast_kernels, item 3), then the decision rule (``fast_dd.decide1``). Row codes: ``CODE_OK``
(decided or not: see ``ok``), ``CODE_NAN`` / ``CODE_PINF`` (the conventional value, exact),
``CODE_ESCALATE`` (a term outside the proved domain: the row goes to mpmath).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from .fast_dd import decide1, div_d, log2_estimate, log_core, log_dd, mul_dd, scale_exact
from .fast_kernels import EXP_REL, U, exp_dd1, fast_two_sum, two_prod, two_sum

__all__ = ["reduce_rows", "reduce_rows_log", "label_smoothing_rows", "ROW_KERNELS", "CODE_OK", "CODE_NAN", "CODE_PINF",
           "CODE_ESCALATE"]

_JIT = dict(cache=True, error_model="numpy", nogil=True)
# powers of two as module constants (numba freezes globals; a literal 2.0 ** -n is a runtime power)
P2P500 = 2.0 ** 500
P2P900 = 2.0 ** 900
P2P1000 = 2.0 ** 1000
P2M40 = 2.0 ** -40
P2M50 = 2.0 ** -50
P2M52 = 2.0 ** -52
P2M95 = 2.0 ** -95
P2M100 = 2.0 ** -100
P2M104 = 2.0 ** -104
P2M450 = 2.0 ** -450
P2M900 = 2.0 ** -900
P2M1000 = 2.0 ** -1000
P2M1020 = 2.0 ** -1020
P2M1060 = 2.0 ** -1060
P2M1073 = 2.0 ** -1073
P2M1074 = 2.0 ** -1074
P2M1075 = 2.0 ** -1075
P2M1153 = 2.0 ** -1153
INF = math.inf
NAN = math.nan
CODE_OK, CODE_NAN, CODE_PINF, CODE_ESCALATE = 0, 1, 2, 3
R_ENTROPY, R_XENT_PROBS, R_KL, R_GAUSS = range(4)
ROW_KERNELS = {"entropy": R_ENTROPY, "cross_entropy_probs": R_XENT_PROBS, "kl_divergence": R_KL,
               "gaussian_kl": R_GAUSS}
TAYLOR_TOP = 17  # f(x) = expm1(x) - x = x^2 sum_{k=2}^{17} x^(k-2) / k! (+ < 2^-99 relative) for |x| < 1/8


@njit(**_JIT)
def expm1_minus_x(x, thi, tlo, L1, L2a, L2b, inv, ch, cl):
    """f(x) / 2 = (expm1(x) - x) / 2 >= 0 for finite x < 710.48 (halved so that e^x / 2 stays
    finite up to there): (h, l, err, good) (docs/fast_reference.md, 3.4)."""
    ax = abs(x)
    if ax < 0.125:
        if x == 0.0:
            return 0.0, 0.0, 0.0, True
        gh = ch[TAYLOR_TOP]
        gl = cl[TAYLOR_TOP]
        for k in range(TAYLOR_TOP - 1, 1, -1):  # g = g x + 1/k!
            ph, pe = two_prod(gh, x)
            pl = pe + gl * x
            sh, se = two_sum(ch[k], ph)
            sl = (se + pl) + cl[k]
            gh, gl = fast_two_sum(sh, sl)
        qh, ql = two_prod(x, x)
        h, l, me = mul_dd(qh, ql, gh, gl)
        slop = P2M1060 if ax < P2M450 else 0.0
        err = P2M95 * abs(h) + me + slop
        # halving is exact unless the halves are subnormal (then <= 2^-1075 each)
        return 0.5 * h, 0.5 * l, 0.5 * err + (P2M1074 if abs(h) < P2M1020 else 0.0), True
    if x < -800.0:  # (-1 - x + e^x) / 2, 0 < e^x < 2^-1154
        h, l = two_sum(-0.5, -0.5 * x)
        return h, l, P2M1153, True
    rel = EXP_REL * 1.01
    if x > 700.0:  # e^x = (e^(x/2))^2 (x/2 exact), relative error <= 2 EXP_REL (1.01) + 2^-101
        H2, L2, k2 = exp_dd1(0.5 * x, 0.0, thi, tlo, L1, L2a, L2b, inv)
        H, L, _ = mul_dd(H2, L2, H2, L2)
        k = 2 * k2
        rel = EXP_REL * 2.03 + P2M100
    else:
        H, L, k = exp_dd1(x, 0.0, thi, tlo, L1, L2a, L2b, inv)
    Eh = scale_exact(H, k - 1)  # e^x / 2
    El = scale_exact(L, k - 1)
    if not (Eh < INF):
        return 0.0, 0.0, 0.0, False
    h, l1 = two_sum(Eh, -0.5)
    h, e2 = two_sum(h, -0.5 * x)  # 0.5 x exact (|x| >= 1/8)
    t = l1 + e2
    l = t + El
    err = (rel * Eh + P2M52 * (abs(t) + abs(l)) + P2M1073) * (1.0 + P2M40)
    h, l = fast_two_sum(h, l)
    return h, l, err, True


@njit(**_JIT)
def _term(q, a, b, thi, tlo, L1, L2a, L2b, inv, ch, cl):
    """One term (th, tl, err, code) of row quantity q at entries a (= p or mu), b (= q or logvar);
    code: 0 term, 1 NaN, 2 +inf result, 3 escalate, 4 zero term (skip), 5 a finite term so large
    that the row value rounds to +inf."""
    if q == R_ENTROPY:  # p log p
        if a != a:
            return 0.0, 0.0, 0.0, 1
        if a == 0.0:
            return 0.0, 0.0, 0.0, 4
        if a == INF:
            return 0.0, 0.0, 0.0, 3
        Lh, Ll, rad, good = log_dd(a, 0.0, thi, tlo, L1, L2a, L2b)
        if not good:
            return 0.0, 0.0, 0.0, 3
        if Lh == 0.0 and Ll == 0.0 and rad == 0.0:
            return 0.0, 0.0, 0.0, 4
        mh, ml, me = mul_dd(a, 0.0, Lh, Ll)
        return mh, ml, me + a * rad * 1.01, 0
    if q == R_XENT_PROBS:  # p log q
        if a != a or b != b:
            return 0.0, 0.0, 0.0, 1
        if a == INF or b == INF:
            return 0.0, 0.0, 0.0, 3
        if a == 0.0:
            return 0.0, 0.0, 0.0, 4
        if b == 0.0:
            return 0.0, 0.0, 0.0, 2
        Lh, Ll, rad, good = log_dd(b, 0.0, thi, tlo, L1, L2a, L2b)
        if not good:
            return 0.0, 0.0, 0.0, 3
        if Lh == 0.0 and Ll == 0.0 and rad == 0.0:
            return 0.0, 0.0, 0.0, 4
        mh, ml, me = mul_dd(a, 0.0, Lh, Ll)
        return mh, ml, me + a * rad * 1.01, 0
    if q == R_KL:  # p log(p / q)
        if a != a or b != b:
            return 0.0, 0.0, 0.0, 1
        if a == INF or b == INF:
            return 0.0, 0.0, 0.0, 3
        if a == 0.0:
            return 0.0, 0.0, 0.0, 4
        if b == 0.0:
            return 0.0, 0.0, 0.0, 2
        if not (P2M900 <= a <= P2P900 and P2M900 <= b <= P2P900):
            return 0.0, 0.0, 0.0, 3
        rh, rl, rerr = div_d(a, b)
        if not (P2M900 <= rh <= P2P900):
            return 0.0, 0.0, 0.0, 3
        Lh, Ll, rad, good = log_dd(rh, rl, thi, tlo, L1, L2a, L2b)
        if not good:
            return 0.0, 0.0, 0.0, 3
        rad = rad + rerr / (rh * (1.0 - P2M50)) * (1.0 + P2M40)
        if Lh == 0.0 and Ll == 0.0 and rad == 0.0:
            return 0.0, 0.0, 0.0, 4
        mh, ml, me = mul_dd(a, 0.0, Lh, Ll)
        return mh, ml, me + a * rad * 1.01, 0
    # gaussian_kl: expm1(lv) - lv + mu^2 (a = mu, b = lv)
    if a != a or b != b:
        return 0.0, 0.0, 0.0, 1
    if b == INF or b == -INF or a == INF or a == -INF:
        return 0.0, 0.0, 0.0, 2
    if b >= 710.48:  # (e^b - 1 - b) / 2 > 2^1024.006: +inf in every format (unless a later entry is NaN / inf)
        return 0.0, 0.0, 0.0, 5
    aa = abs(a)
    if aa > P2P500:
        return 0.0, 0.0, 0.0, 3
    fh, fl, ferr, good = expm1_minus_x(b, thi, tlo, L1, L2a, L2b, inv, ch, cl)
    if not good:
        return 0.0, 0.0, 0.0, 3
    qh, ql = two_prod(a, a)
    qh = 0.5 * qh  # mu^2 / 2: exact unless subnormal (covered by the slop below)
    ql = 0.5 * ql
    if aa < P2M450 and a != 0.0:
        ferr += P2M1060
    h, e = two_sum(fh, qh)
    t = e + fl
    l = t + ql
    err = ferr + P2M52 * (abs(t) + abs(l))
    h, l = two_sum(h, l)
    if h == 0.0 and l == 0.0 and err == 0.0:
        return 0.0, 0.0, 0.0, 4
    return h, l, err, 0


@njit(**_JIT)
def reduce_rows(q, x, y, thi, tlo, L1, L2a, L2b, inv, ch, cl, bits, lg_h, lg_l, out_hi, out_lo, out_ok,
                out_code):
    """Rows of x (R, n) (and y, same shape, for two-argument quantities): the row value of q
    (entropy: -sum p log p; cross_entropy_probs: -sum p log q; KL: sum p log(p / q);
    gaussian_kl: sum of the halved terms (expm1(lv) - lv)/2 + mu^2/2), times 1/ln 2 = lg_h + lg_l when ``bits``,
    with its decision."""
    R, n = x.shape
    slack = (1.0 + 2.0 * (2 * n + 16) * U) * (1.0 + P2M50)
    for r in range(R):
        s = 0.0
        c = 0.0
        ca = 0.0
        aerr = 0.0
        event = 0
        esc = False
        huge = False
        for i in range(n):
            th, tl, terr, code = _term(q, x[r, i], y[r, i], thi, tlo, L1, L2a, L2b, inv, ch, cl)
            if code == 0:
                s, e = two_sum(s, th)
                c = c + e
                ca = ca + abs(c)
                c = c + tl
                ca = ca + abs(c)
                aerr = aerr + terr
            elif code == 3:
                esc = True
            elif code == 5:
                huge = True
            elif code != 4 and event == 0:
                event = code
        _row_finish(q, r, s, c, ca, aerr, event, esc, huge, slack, bits, lg_h, lg_l, x, y, n, out_hi, out_lo,
                    out_ok, out_code)


@njit(**_JIT)
def _row_finish(q, r, s, c, ca, aerr, event, esc, huge, slack, bits, lg_h, lg_l, x, y, n, out_hi, out_lo, out_ok,
                out_code):
    """Row r's result from its sum s + c (|error| <= (u ca + aerr) slack) and its event codes."""
    out_lo[r] = 0.0
    if event == 1 or (event != 0 and q != R_KL and q != R_GAUSS and _has_nan(q, x, y, r, n)):
        out_hi[r] = NAN
        out_ok[r] = True
        out_code[r] = CODE_NAN
        return
    if esc:
        out_hi[r] = NAN
        out_ok[r] = False
        out_code[r] = CODE_ESCALATE
        return
    if event == 2 or huge:
        out_hi[r] = INF
        out_ok[r] = True
        out_code[r] = CODE_PINF
        return
    A = (U * ca + aerr) * slack
    hi, lo = two_sum(s, c)
    if q == R_ENTROPY or q == R_XENT_PROBS:
        hi = -hi
        lo = -lo
    if bits and not (hi == 0.0 and lo == 0.0 and A == 0.0):
        bh, bl, me = mul_dd(hi, lo, lg_h, lg_l)
        A = (me + A * lg_h * 1.01 + P2M104 * abs(bh)) * (1.0 + P2M40)
        hi, lo = bh, bl
    h, l, ok = decide1(hi, lo, A)
    out_hi[r] = h
    out_lo[r] = l
    out_ok[r] = ok
    out_code[r] = CODE_OK


BLK = 256  # elements per block of the vectorised kernel


@njit(**_JIT)
def reduce_rows_log(q, x, y, thi, tlo, L1, L2a, L2b, inv, ch, cl, bits, lg_h, lg_l, out_hi, out_lo, out_ok,
                    out_code):
    """:func:`reduce_rows` for entropy, cross_entropy_probs and KL, vectorised: per block, the
    log argument (p, q or the double-double p / q) and N0 = round(2^16 log2_estimate) branch-free,
    the table loads, then ``fast_dd.log_core`` and the product (the operations of :func:`_term`
    with N0 chosen without libm); entries outside [2^-1000, 2^1000) (KL: [2^-900, 2^900]), zeros,
    NaN, inf and failed checks go through the scalar :func:`_term`, in order."""
    R, n = x.shape
    slack = (1.0 + 2.0 * (2 * n + 16) * U) * (1.0 + P2M50)
    bh = np.empty(BLK)
    bl = np.empty(BLK)
    brel = np.empty(BLK)
    bN = np.empty(BLK, np.int64)
    bTh = np.empty(BLK)
    bTl = np.empty(BLK)
    bth = np.empty(BLK)
    btl = np.empty(BLK)
    berr = np.empty(BLK)
    bslow = np.empty(BLK, np.bool_)
    for r in range(R):
        s = 0.0
        c = 0.0
        ca = 0.0
        aerr = 0.0
        event = 0
        esc = False
        huge = False
        for i0 in range(0, n, BLK):
            mb = min(BLK, n - i0)
            for ii in range(mb):
                a = x[r, i0 + ii]
                b = y[r, i0 + ii]
                if q == R_ENTROPY:
                    valid = (a >= P2M1000) & (a < P2P1000)
                    ah = a if valid else 1.0
                    al = 0.0
                    rel = 0.0
                elif q == R_XENT_PROBS:
                    valid = (a >= P2M1000) & (a < P2P1000) & (b >= P2M1000) & (b < P2P1000)
                    ah = b if valid else 1.0
                    al = 0.0
                    rel = 0.0
                else:
                    valid = (a >= P2M900) & (a <= P2P900) & (b >= P2M900) & (b <= P2P900)
                    qh, ql, qerr = div_d(a if valid else 1.0, b if valid else 1.0)
                    valid = valid & (qh >= P2M900) & (qh <= P2P900)
                    ah = qh if valid else 1.0
                    al = ql if valid else 0.0
                    rel = (qerr / (ah * (1.0 - P2M50))) * (1.0 + P2M40)
                bh[ii] = ah
                bl[ii] = al
                brel[ii] = rel
                bN[ii] = int(math.floor(log2_estimate(ah) * 65536.0 + 0.5))
                bslow[ii] = not valid
            for ii in range(mb):
                j = bN[ii] & 65535
                bTh[ii] = thi[j]
                bTl[ii] = tlo[j]
            for ii in range(mb):
                w = x[r, i0 + ii]
                Lh, Ll, rad, good = log_core(bh[ii], bl[ii], bN[ii], bTh[ii], bTl[ii], 0, L1, L2a, L2b)
                rad = rad + brel[ii]
                w = w if not bslow[ii] else 0.0
                mh, ml, me = mul_dd(w, 0.0, Lh, Ll)
                use = good & (not bslow[ii])
                bth[ii] = mh if use else 0.0
                btl[ii] = ml if use else 0.0
                berr[ii] = (me + w * rad * 1.01) if use else 0.0
                bslow[ii] = not use
            for ii in range(mb):
                s, e = two_sum(s, bth[ii])
                c = c + e
                ca = ca + abs(c)
                c = c + btl[ii]
                ca = ca + abs(c)
                aerr = aerr + berr[ii]
            for ii in range(mb):
                if bslow[ii]:
                    th, tl, terr, code = _term(q, x[r, i0 + ii], y[r, i0 + ii], thi, tlo, L1, L2a, L2b, inv, ch, cl)
                    if code == 0:
                        s, e = two_sum(s, th)
                        c = c + e
                        ca = ca + abs(c)
                        c = c + tl
                        ca = ca + abs(c)
                        aerr = aerr + terr
                    elif code == 3:
                        esc = True
                    elif code == 5:
                        huge = True
                    elif code != 4 and event == 0:
                        event = code
        _row_finish(q, r, s, c, ca, aerr, event, esc, huge, slack, bits, lg_h, lg_l, x, y, n, out_hi, out_lo,
                    out_ok, out_code)


@njit(**_JIT)
def _has_nan(q, x, y, r, n):
    for i in range(n):
        if x[r, i] != x[r, i]:
            return True
        if q != R_ENTROPY and y[r, i] != y[r, i]:
            return True
    return False


@njit(**_JIT)
def label_smoothing_rows(z, y, m, Lh, Ll, Lrad, eps, out_hi, out_lo, out_ok):
    """Rows of label_smoothing_cross_entropy with finite max m and certified log s = L (from the
    logsumexp row pass): L + (1 - eps)(m - z_y) + (eps / K) sum_i (m - z_i), three terms >= 0
    (docs/fast_reference.md, 3.5). Rows with -inf entries are handled by the caller."""
    R, n = z.shape
    slack = (1.0 + 2.0 * (2 * n + 16) * U) * (1.0 + P2M50)
    oh, ol = two_sum(1.0, -eps)  # exact
    use_w = eps != 0.0
    wh = 0.0
    wl = 0.0
    werr = 0.0
    if use_w:
        wh, wl, werr = div_d(eps, float(n))
    for r in range(R):
        mr = m[r]
        s = 0.0
        c = 0.0
        ca = 0.0
        if use_w:
            for i in range(n):
                dh, dl = two_sum(mr, -z[r, i])
                s, e = two_sum(s, dh)
                c = c + e
                ca = ca + abs(c)
                c = c + dl
                ca = ca + abs(c)
        Dh, Dl = two_sum(s, c)
        Derr = U * ca * slack
        ah, al = two_sum(mr, -z[r, y[r]])
        t1h, t1l, e1 = mul_dd(oh, ol, ah, al)
        t2h = 0.0
        t2l = 0.0
        e2 = 0.0
        if use_w and Dh != 0.0:
            t2h, t2l, e2 = mul_dd(wh, wl, Dh, Dl)
            e2 = e2 + (werr * Dh + wh * Derr) * 1.01
        h, ea = two_sum(t1h, t2h)
        h, eb = two_sum(h, Lh[r])
        lo1 = ea + eb
        lo2 = lo1 + t1l
        lo3 = lo2 + t2l
        lo = lo3 + Ll[r]
        A = (Lrad[r] + e1 + e2 + P2M52 * (abs(lo1) + abs(lo2) + abs(lo3) + abs(lo))) * (1.0 + P2M40)
        hi, lo = two_sum(h, lo)
        hh, ll, ok = decide1(hi, lo, A)
        out_hi[r] = hh
        out_lo[r] = ll
        out_ok[r] = ok

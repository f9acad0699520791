"""Exact derivatives: vector-Jacobian products of every quantity, correctly rounded.

``vjp(name, *args, cotangent=None)`` returns ``{argument name: Exact}``: the exact gradient of
``sum(cotangent * quantity(*args))`` with respect to every float argument (arrays *and* the scalar
temperature / eps / beta), each element correctly rounded (float64 hi/lo double-double, rounded
once to any audited dtype by ``Exact.rounded``). The cotangent has the output's shape; the default
(:func:`default_cotangent`) is ones for scalar-per-row and elementwise outputs (the VJP is then the
gradient / elementwise derivative) and a fixed small dyadic vector for softmax / log_softmax. The
gradient with respect to a scalar argument is the sum over all rows (what autodiff returns).

Evaluation reuses the adaptive-precision engine (:func:`engine.evaluate_unit`, Ziv loop): each
gradient formula below returns ``(value, scale)`` pairs at the current working precision, the
scale bounding the magnitude whose rounding errors reach the value. Formulas avoid cancellation
where a closed form allows (``p_y - 1 = -sum_{i != y} p_i``, ``log1p((1 - 2p) / p)`` for
``log((1 - p) / p)``) and *prove* exact zeros (the engine accepts 0 only with scale 0): by the
Lindemann-Weierstrass theorem, ``sum_g C_g exp(z_g)`` over distinct finite floats z_g with
rational C_g vanishes only if every C_g does, so the zeros of softmax-type gradients are decided
by exact rational arithmetic on the inputs and the cotangent.

Conventions (the forward conventions of :mod:`.formulas`, extended to derivatives):

* A NaN in a unit (row, table, element) makes its whole gradient NaN; so does a +inf logit in a
  softmax-family row (the forward softmax is NaN there).
* An all -inf logit row (fully masked): the gradient is 0 for every entry, never NaN (docs/design.md's
  masked-attention convention); the same for distillation / RLHF rows whose teacher or student row
  is all -inf, and for the scalar-argument contribution of such rows.
* A -inf (masked) logit gets the limit of the derivative as z_j -> -inf with its softmax weight
  p_j = 0: 0 for softmax, logsumexp, cross-entropy (non-target), KL-of-logits; for log_softmax the
  limit of ``c_j - p_j sum(c)`` is ``c_j`` (what d/dz_j (z_j - lse) tends to). Distillation / RLHF
  rows where the first distribution has mass on an entry the second masks (KL = +inf) get NaN.
* Probabilities at the boundary: one-sided derivatives, +-inf where a log diverges (entropy at
  p_j = 0 -> +inf, KL d/dp at p_j = 0 < q_j -> -inf, d/dq at q_j = 0 < p_j -> -inf); a term that is
  0 by the 0 log 0 = 0 convention contributes the derivative of that constant (e.g. KL d/dq_j = 0
  where p_j = 0; BCE d/dp at p = 0 with t = 0 is 1).
* A zero cotangent entry contributes exactly 0, even against an infinite partial derivative.
* Elementwise quantities: arguments are broadcast to the output shape first; gradients are with
  respect to the broadcast arrays (callers pass the broadcast copies to the frameworks too).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import mpmath
import numpy as np
from mpmath import mp

from . import formulas as F
from .engine import Exact, evaluate_unit, hi_lo, to_mp

INF, NINF, NAN = mpmath.inf, mpmath.ninf, mpmath.nan
EXACT_PREC = 2300  # exact sums/differences of float64 values fit in this many bits


def _zero():
    return (mpmath.mpf(0), 0)


def _nanp():
    return (NAN, 0)


def _isnan(x):
    return mpmath.isnan(x)


def _times(c, pair):
    """c * (value, scale); a zero cotangent gives an exact 0 even against inf/NaN."""
    v, s = pair
    if c == 0:
        return _zero()
    if _isnan(v):
        return _nanp()
    if mpmath.isinf(v):
        return (v if c > 0 else -v, 0)
    if v == 0:
        return (mpmath.mpf(0), 0) if s == 0 else (mpmath.mpf(0), abs(c) * s)
    if s == 0:  # an exact value stays exact (it may sit exactly on a rounding tie)
        return (mpmath.fmul(c, v, exact=True), 0)
    return (c * v, abs(c) * (s + abs(v)))


def _mpf_frac(fr: Fraction):
    """(value, scale) of an exact rational: scale 0 when it is dyadic (then exact in mpf)."""
    num, den = fr.numerator, fr.denominator
    if den & (den - 1) == 0:
        return (mpmath.ldexp(mpmath.mpf(num), -(den.bit_length() - 1)) if num else mpmath.mpf(0), 0)
    v = mpmath.mpf(num) / den
    return (v, 2 * abs(v))


def _div(num, den):
    """num / den with scale 0 when the quotient is exact (it may be a rounding tie)."""
    v = num / den
    if mpmath.fmul(v, den, exact=True) == num:
        return (v, 0)
    return (v, 4 * abs(v))


def _frac(x) -> Fraction:
    """The exact rational value of a finite mpf (None for inf/NaN)."""
    x = mpmath.mpf(x)
    if not mpmath.isfinite(x):
        return None
    sign, man, exp, _ = x._mpf_
    v = Fraction(int(man)) * (Fraction(2) ** exp)
    return -v if sign else v


def _exact_sub(a, b):
    return mpmath.fsub(a, b, exact=True)


def softmax_weights(u):
    """Softmax weights of a finite-or-masked row: (p, lse, M), p_j = exp(u_j - lse) (0 if -inf).

    M bounds the relative error of each p_j in units of 2^-prec (argument roundings of size
    (|u_j| + |lse|) 2^-prec, lse's own error, the exp).
    """
    lse, m, s = F.lse_parts(u)
    zmax = F.max_abs_finite(u)
    finite = [v for v in u if v != NINF]
    if len(finite) == 1:  # a single unmasked entry holds all the mass: p = 1 exactly
        return [mpmath.mpf(1) if v != NINF else mpmath.mpf(0) for v in u], lse, 0
    p = [mp.exp(v - lse) if v != NINF else mpmath.mpf(0) for v in u]
    return p, lse, 4 * zmax + 2 * abs(lse) + 8


def bad_logits(z):
    """'nan' when the row holds NaN or +inf, 'masked' when all -inf, '' otherwise."""
    if any(_isnan(v) or v == INF for v in z):
        return "nan"
    if all(v == NINF for v in z):
        return "masked"
    return ""


def _groups(z, vals):
    """Group exact rational ``vals`` by the (finite) logit value: {z: (count, sum)}."""
    g = {}
    for zi, vi in zip(z, vals):
        if zi == NINF:
            continue
        n, s = g.get(zi, (0, Fraction(0)))
        g[zi] = (n + 1, s + vi)
    return g


def _uniform_mean(groups):
    """The common mean of the groups' values, or None when the means differ."""
    means = {s / n for n, s in groups.values()}
    return means.pop() if len(means) == 1 else None


# ---------------------------------------------------------------- logits (rows)


def softmax(z, c):
    n = len(z)
    bad = bad_logits(z)
    if bad:
        return [_nanp() if bad == "nan" else _zero() for _ in range(n)]
    p, lse, M = softmax_weights(z)
    s = mp.fsum(pi * ci for pi, ci in zip(p, c))
    sabs = mp.fsum(pi * abs(ci) for pi, ci in zip(p, c))
    mean = _uniform_mean(_groups(z, [_frac(ci) for ci in c]))
    out = []
    for pj, cj in zip(p, c):
        if pj == 0 or (mean is not None and _frac(cj) == mean):
            out.append(_zero())  # masked entry, or sum_i p_i (c_j - c_i) = 0 exactly
            continue
        v = pj * (cj - s)
        out.append((v, pj * (abs(cj) + sabs) * (M + 4)))
    return out


def log_softmax(z, c):
    n = len(z)
    bad = bad_logits(z)
    if bad:
        return [_nanp() if bad == "nan" else _zero() for _ in range(n)]
    p, lse, M = softmax_weights(z)
    cf = [_frac(ci) for ci in c]
    S = sum(cf, Fraction(0))
    groups = _groups(z, [Fraction(0)] * n)
    Smp = mpmath.mpf(S.numerator) / S.denominator
    cabs = mp.fsum(abs(ci) for ci in c)
    out = []
    for zj, pj, cj, cjf in zip(z, p, c, cf):
        if pj == 0:
            out.append((cj, 0))  # limit of c_j - p_j sum(c) as z_j -> -inf
            continue
        if M == 0:  # single unmasked entry, p_j = 1
            out.append(_mpf_frac(cjf - S))
            continue
        # c_j sum_i e^{z_i} - e^{z_j} S = 0  iff  every group's coefficient vanishes
        own = groups[zj][0]
        if (len(groups) == 1 or cjf == 0) and own * cjf == S:
            out.append(_zero())
            continue
        out.append((cj - pj * Smp, abs(cj) + pj * cabs * (M + 4)))
    return out


def logsumexp(z, c):
    n = len(z)
    bad = bad_logits(z)
    if bad:
        return [_nanp() if bad == "nan" else _zero() for _ in range(n)]
    p, lse, M = softmax_weights(z)
    return [_times(c, (pj, pj * M)) if pj != 0 else _zero() for pj in p]


def cross_entropy(z, y, c):
    n = len(z)
    bad = bad_logits(z)
    if bad:
        return [_nanp() if bad == "nan" else _zero() for _ in range(n)]
    p, lse, M = softmax_weights(z)
    out = []
    for j, pj in enumerate(p):
        if j != y:
            out.append(_times(c, (pj, pj * M)) if pj != 0 else _zero())
        elif z[y] == NINF:
            out.append((-c, 0))  # masked target: d/dz_y (lse - z_y) = p_y - 1 = -1
        else:
            rest = [pi for i, pi in enumerate(p) if i != y and pi != 0]
            if not rest:
                out.append(_zero())  # p_y = 1 exactly
            else:
                r = mp.fsum(rest)  # p_y - 1 = -sum_{i != y} p_i, no cancellation
                out.append(_times(c, (-r, r * M)))
    return out


def nll_loss(logp, y, c):
    return [(-c, 0) if j == y else _zero() for j in range(len(logp))]


def label_smoothing_cross_entropy(z, y, eps, c):
    n = len(z)
    bad = bad_logits(z)
    if _isnan(eps):
        bad = "nan"
    if bad:
        return [_nanp() if bad == "nan" else _zero() for _ in range(n + 1)]
    K = n
    p, lse, M = softmax_weights(z)
    epsf = _frac(eps)
    finite = [v for v in z if v != NINF]
    equal = all(v == finite[0] for v in finite)
    out = []
    for j, pj in enumerate(p):
        tf = epsf / K + ((1 - epsf) if j == y else 0)
        t = mpmath.mpf(tf.numerator) / tf.denominator
        if pj == 0:
            out.append(_times(c, _mpf_frac(-tf)))
        elif equal:  # p_j = 1 / (number of unmasked entries), rational
            out.append(_times(c, _mpf_frac(Fraction(1, len(finite)) - tf)))
        else:
            out.append(_times(c, (pj - t, (pj * M + abs(t)) * 2)))
    # d/d eps = z_y - mean(z) (the logsumexp cancels); exact numerator
    if any(v == NINF for v in z):
        de = (NAN, 0) if z[y] == NINF else (INF, 0)
    else:
        with mp.workprec(EXACT_PREC + 64):
            num = mpmath.mpf(0)
            for v in z:
                num = mpmath.fadd(num, _exact_sub(z[y], v), exact=True)
        de = _div(num, mpmath.mpf(K)) if num != 0 else _zero()
    out.append(_times(c, de))
    return out


def _kl_logits_grad(a, b, T):
    """Partials of KL(softmax(a / T) || softmax(b / T)): (dKL/da, dKL/db, dKL/dT, KL) as pairs.

    dKL/da_j = pa_j sum_i pa_i (d_j - d_i) / T^2 (d = a - b),  dKL/db_j = (pb_j - pa_j) / T,
    dKL/dT = -(1/T^3) sum_i pa_i (a_i - abar) d_i + (1/T^2) sum_i (pa_i - pb_i) b_i.
    Returns None (NaN everywhere) or "masked" (0 everywhere) for the convention cases.
    """
    n = len(a)
    if any(_isnan(v) or v == INF for v in list(a) + list(b)) or _isnan(T):
        return None
    if all(v == NINF for v in a) or all(v == NINF for v in b):
        return "masked"
    A = [i for i in range(n) if a[i] != NINF]
    B = set(i for i in range(n) if b[i] != NINF)
    if not set(A) <= B:
        return None  # KL = +inf
    pa, lse_a, Ma = softmax_weights([v / T if v != NINF else NINF for v in a])
    pb, lse_b, Mb = softmax_weights([v / T if v != NINF else NINF for v in b])
    M = Ma + Mb
    k = max(A, key=lambda i: a[i])
    kb = max(B, key=lambda i: b[i])
    d = {i: _exact_sub(a[i], b[i]) for i in A}
    dc = {i: _exact_sub(d[i], d[k]) for i in A}
    ac = {i: _exact_sub(a[i], a[k]) for i in A}
    bc = {i: _exact_sub(b[i], b[kb]) for i in B}
    shift = all(v == 0 for v in dc.values()) and set(A) == B  # a - b constant: KL = 0 identically
    T2 = T * T
    zero_all = ([_zero()] * n, [_zero()] * n, _zero(), _zero())
    if shift:
        return zero_all
    # dKL/da
    Dbar = mp.fsum(pa[i] * dc[i] for i in A)
    Dabs = mp.fsum(pa[i] * abs(dc[i]) for i in A)
    gmean = _uniform_mean(_groups([a[i] for i in A], [_frac(dc[i]) for i in A]))
    da = []
    for j in range(n):
        if j not in d or pa[j] == 0:
            da.append(_zero())
        elif gmean is not None and _frac(dc[j]) == gmean:
            da.append(_zero())
        else:
            v = pa[j] * (dc[j] - Dbar) / T2
            da.append((v, pa[j] * (abs(dc[j]) + Dabs) * (M + 4) / T2))
    # dKL/db
    db = []
    for j in range(n):
        if j not in B:
            db.append(_zero())
            continue
        v = (pb[j] - pa[j]) / T
        sc = (pb[j] + pa[j]) * (M + 4) / abs(T)
        if j in d and abs(v) * abs(T) <= sc * mpmath.ldexp(1, 32 - mp.prec):
            # suspiciously small: pb_j = pa_j exactly iff the multisets {a_i - a_j} = {b_i - b_j}
            if set(A) == B and sorted(_exact_sub(a[i], a[j]) for i in A) == sorted(_exact_sub(b[i], b[j]) for i in B):
                db.append(_zero())
                continue
        db.append((v, sc))
    # dKL/dT
    abar = mp.fsum(pa[i] * ac[i] for i in A)
    aabs = mp.fsum(pa[i] * abs(ac[i]) for i in A)
    c1 = mp.fsum(pa[i] * (ac[i] - abar) * dc[i] for i in A)
    s1 = mp.fsum(pa[i] * (abs(ac[i]) + aabs) * abs(dc[i]) for i in A)
    c2 = mp.fsum((pa[i] - pb[i]) * bc[i] for i in B)
    s2 = mp.fsum((pa[i] + pb[i]) * abs(bc[i]) for i in B)
    dT = -c1 / (T2 * T) + c2 / T2
    sT = (s1 / abs(T2 * T) + s2 / T2) * (M + 8)
    kl = F.kl_logits(a, b, T)[0]
    return da, db, (dT, sT), kl


def _scaled(pair, f, fs=None):
    v, s = pair
    if _isnan(v) or mpmath.isinf(v):
        return (v * f if f != 0 else NAN, 0)
    return (v * f, (s + abs(v)) * abs(fs if fs is not None else f))


def distillation_loss(zs, zt, T, c):
    """L = T^2 KL(softmax(zt/T) || softmax(zs/T)): returns dL/dzs (n), dL/dzt (n), dL/dT."""
    n = len(zs)
    r = _kl_logits_grad(zt, zs, T)
    if r is None:
        return [_nanp()] * (2 * n + 1)
    if r == "masked":
        return [_zero()] * (2 * n + 1)
    da, db, dT, kl = r
    T2 = T * T
    g_zs = [_times(c, _scaled(p, T2)) for p in db]
    g_zt = [_times(c, _scaled(p, T2)) for p in da]
    klv, kls = kl
    v = 2 * T * klv + T2 * dT[0]
    s = 2 * abs(T) * (kls + abs(klv)) + T2 * (dT[1] + abs(dT[0])) + abs(v)
    gT = _zero() if (klv == 0 and kls == 0 and dT == (0, 0)) else (v, s)
    return g_zs + g_zt + [_times(c, gT)]


def rlhf_kl_penalty(z_policy, z_ref, beta, c):
    """L = beta KL(softmax(z_policy) || softmax(z_ref)): dL/dz_policy, dL/dz_ref, dL/dbeta."""
    n = len(z_policy)
    r = _kl_logits_grad(z_policy, z_ref, mpmath.mpf(1))
    if r is None:
        return [_nanp()] * (2 * n + 1)
    if r == "masked":
        return [_zero()] * (2 * n + 1)
    da, db, _, kl = r
    g_p = [_times(c, _scaled(p, beta)) for p in da]
    g_r = [_times(c, _scaled(p, beta)) for p in db]
    return g_p + g_r + [_times(c, kl)]


# ---------------------------------------------------------------- elementwise


def _sig(x):
    """(sigmoid(x), 1 - sigmoid(x)) without cancellation; x finite."""
    e = mp.exp(-abs(x))
    a, b = 1 / (1 + e), e / (1 + e)
    return (a, b) if x >= 0 else (b, a)


def sigmoid(x, c):
    if _isnan(x):
        return [_nanp()]
    if mpmath.isinf(x):
        return [_zero()]
    s, t = _sig(x)
    v = s * t
    return [_times(c, (v, 4 * v))]


def softplus(x, c):
    if _isnan(x):
        return [_nanp()]
    if mpmath.isinf(x):
        return [_times(c, (mpmath.mpf(1 if x > 0 else 0), 0))]
    s, _ = _sig(x)
    return [_times(c, (s, 4 * s))]


def log_sigmoid(x, c):
    if _isnan(x):
        return [_nanp()]
    if mpmath.isinf(x):
        return [_times(c, (mpmath.mpf(0 if x > 0 else 1), 0))]
    _, t = _sig(x)
    return [_times(c, (t, 4 * t))]


def binary_cross_entropy_with_logits(z, t, c):
    """d/dz = sigmoid(z) - t, d/dt = -z."""
    if _isnan(z) or _isnan(t):
        return [_nanp(), _nanp()]
    if mpmath.isinf(z):
        dz = (_exact_sub(1, t), 0) if z > 0 else (-t, 0)
    elif z == 0 and t == 0.5:
        dz = _zero()
    else:
        s, u = _sig(z)
        if z >= 0:
            a, b = _exact_sub(1, t), u  # s - t = (1 - t) - (1 - s)
            dz = (a - b, 4 * (abs(a) + b))
        else:
            dz = (s - t, 4 * (s + abs(t)))
    dt = (-z, 0)
    return [_times(c, dz), _times(c, dt)]


def binary_cross_entropy(p, t, c):
    """d/dp = (p - t) / (p (1 - p)) (one-sided at p = 0, 1), d/dt = log((1 - p) / p)."""
    if _isnan(p) or _isnan(t):
        return [_nanp(), _nanp()]
    if p == 0:
        dp = (NINF, 0) if t > 0 else (mpmath.mpf(1), 0)
        dt = (INF, 0)
    elif p == 1:
        dp = (INF, 0) if t < 1 else (mpmath.mpf(-1), 0)
        dt = (NINF, 0)
    else:
        num = _exact_sub(p, t)
        if num == 0:
            dp = _zero()
        else:
            dp = _div(num, mpmath.fmul(p, _exact_sub(1, p), exact=True))
        dt = _log1p_ratio(p)
    return [_times(c, dp), _times(c, dt)]


def _log1p_ratio(p):
    """log((1 - p) / p) = log1p((1 - 2p) / p) for 0 < p < 1, exact 0 at p = 1/2."""
    d = _exact_sub(1, mpmath.fmul(2, p, exact=True))
    if d == 0:
        return _zero()
    v = mp.log1p(d / p)
    return (v, 4 * abs(v))


def self_information_bits(p, c):
    if _isnan(p):
        return [_nanp()]
    if p == 0:
        return [_times(c, (NINF, 0))]
    v = -1 / (p * mp.ln2)
    return [_times(c, (v, 4 * abs(v)))]


def binary_entropy_bits(p, c):
    """d/dp H2(p) = log2((1 - p) / p)."""
    if _isnan(p):
        return [_nanp()]
    if p == 0:
        return [_times(c, (INF, 0))]
    if p == 1:
        return [_times(c, (NINF, 0))]
    v, s = _log1p_ratio(p)
    return [_times(c, (v / mp.ln2, 2 * s))]


# ---------------------------------------------------------------- probability rows


def _neg_log_e(pj):
    """-(log p + 1): +inf at p = 0."""
    if pj == 0:
        return (INF, 0)
    lg = mp.log(pj)
    return (-(lg + 1), 4 * (abs(lg) + 1))


def entropy(p, c):
    if any(_isnan(v) for v in p):
        return [_nanp()] * len(p)
    return [_times(c, _neg_log_e(v)) for v in p]


def entropy_bits(p, c):
    if any(_isnan(v) for v in p):
        return [_nanp()] * len(p)
    return [_times(c, _scaled(_neg_log_e(v), 1 / mp.ln2)) for v in p]


def _log(q):
    """log q with relative accuracy near q = 1 (exact 0 at q = 1)."""
    if mpmath.mpf(0.5) < q < 2:
        d = _exact_sub(q, 1)
        if d == 0:
            return _zero()
        v = mp.log1p(d)
    else:
        v = mp.log(q)
    return (v, 4 * abs(v))


def kl_divergence(p, q, c):
    """d/dp_j = log(p_j / q_j) + 1, d/dq_j = -p_j / q_j (per term, one-sided at 0)."""
    n = len(p)
    if any(_isnan(v) for v in list(p) + list(q)):
        return [_nanp()] * (2 * n)
    dp, dq = [], []
    for a, b in zip(p, q):
        if b == 0:
            dp.append((INF, 0))
        elif a == 0:
            dp.append((NINF, 0))
        else:
            lg = mp.log(a / b)
            dp.append((lg + 1, 4 * (abs(lg) + 1)))
        if a == 0:
            dq.append(_zero())
        elif b == 0:
            dq.append((NINF, 0))
        else:
            dq.append(_div(-a, b))
    return [_times(c, x) for x in dp + dq]


def cross_entropy_probs(p, q, c):
    """d/dp_j = -log q_j, d/dq_j = -p_j / q_j."""
    n = len(p)
    if any(_isnan(v) for v in list(p) + list(q)):
        return [_nanp()] * (2 * n)
    dp, dq = [], []
    for a, b in zip(p, q):
        if b == 0:
            dp.append((INF, 0))
        else:
            v, s = _log(b)
            dp.append((-v, s))
        if a == 0:
            dq.append(_zero())
        elif b == 0:
            dq.append((NINF, 0))
        else:
            dq.append(_div(-a, b))
    return [_times(c, x) for x in dp + dq]


def gaussian_kl(mu, logvar, c):
    """d/dmu_j = mu_j, d/dlogvar_j = expm1(logvar_j) / 2."""
    n = len(mu)
    if any(_isnan(v) for v in list(mu) + list(logvar)):
        return [_nanp()] * (2 * n)
    dm = [(m, 0) for m in mu]
    dl = []
    for lv in logvar:
        if lv == INF:
            dl.append((INF, 0))
        elif lv == NINF:
            dl.append((mpmath.mpf(-0.5), 0))
        else:
            v = mp.expm1(lv) / 2
            dl.append((v, 4 * abs(v)))
    return [_times(c, x) for x in dm + dl]


# ---------------------------------------------------------------- joint tables


def _flat(P):
    return [v for row in P for v in row]


def joint_entropy(P, c):
    return entropy(_flat(P), c)


def conditional_entropy(P, c):
    """d/dP_xy H(Y|X) = log(P_x / P_xy) = log1p(sum_{y' != y} P_xy' / P_xy); 0 on a zero row."""
    flat = _flat(P)
    if any(_isnan(v) for v in flat):
        return [_nanp()] * len(flat)
    out = []
    for row in P:
        for j, v in enumerate(row):
            rest = [w for k, w in enumerate(row) if k != j and w != 0]
            if v == 0:
                out.append(_times(c, (INF, 0)) if rest else _zero())
            elif not rest:
                out.append(_zero())
            else:
                r = mp.log1p(mp.fsum(rest) / v)
                out.append(_times(c, (r, 4 * r)))
    return out


def mutual_information(P, c):
    """d/dP_xy I(X;Y) = log(P_xy / (P_x P_y)) - 1 (limits on zero rows / columns)."""
    flat = _flat(P)
    if any(_isnan(v) for v in flat):
        return [_nanp()] * len(flat)
    px = [mp.fsum(row) for row in P]
    py = [mp.fsum(P[i][j] for i in range(len(P))) for j in range(len(P[0]))]
    out = []
    for i, row in enumerate(P):
        for j, v in enumerate(row):
            if px[i] == 0 and py[j] == 0:
                out.append(_times(c, (INF, 0)))
                continue
            if px[i] == 0:
                lg = -mp.log(py[j])
            elif py[j] == 0:
                lg = -mp.log(px[i])
            elif v == 0:
                out.append(_times(c, (NINF, 0)))
                continue
            else:
                lg = mp.log(v / (px[i] * py[j]))
            out.append(_times(c, (lg - 1, 4 * (abs(lg) + 1))))
    return out


GRADIENTS = {f.__name__: f for f in (
    softmax, log_softmax, logsumexp, sigmoid, softplus, log_sigmoid, entropy, entropy_bits,
    self_information_bits, binary_entropy_bits, kl_divergence, cross_entropy_probs, cross_entropy,
    nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits, label_smoothing_cross_entropy,
    distillation_loss, rlhf_kl_penalty, gaussian_kl, joint_entropy, conditional_entropy,
    mutual_information)}


# ---------------------------------------------------------------- driver


def differentiable_args(q):
    """Indices of the arguments a gradient is taken with respect to (float arrays and scalars)."""
    return tuple(i for i, a in enumerate(q.args) if a.is_float_array or a.is_scalar)


def default_cotangent(q, shape) -> np.ndarray:
    """Ones, except for softmax / log_softmax: a fixed small dyadic vector (exact in bfloat16).

    (With ones the softmax VJP is identically 0.) c_i = ((3 i + 5 b) mod 9 - 4) / 4 per row b.
    """
    from .. import quantities

    q = quantities.get(q)
    if q.structure != quantities.ROW:
        return np.ones(shape, dtype=np.float64)
    n = shape[-1] if len(shape) else 1
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    i = np.arange(n)[None, :]
    b = np.arange(rows)[:, None]
    return (((3 * i + 5 * b) % 9 - 4) / 4.0).reshape(shape)


def _freeze(x):
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    return x


def _thaw(x):
    if isinstance(x, tuple):
        return [_thaw(v) for v in x]
    return x


def _runner(name):
    g = GRADIENTS[name]

    def run(*unit_and_c):
        return g(*[to_mp(v) for v in unit_and_c])
    return run


@lru_cache(maxsize=100_000)
def _unit_cached(name, frozen):
    unit = [_thaw(v) for v in frozen]
    vals, prec, flags = evaluate_unit(_runner(name), unit)
    with mp.workprec(prec):
        pairs = [hi_lo(v) for v in vals]
    return tuple(pairs), tuple(flags), prec


def prepare(q, args, cotangent=None):
    """Validated values (elementwise args broadcast to the output shape), output shape, cotangent."""
    from .. import quantities

    vals = quantities.validate(q, args)
    shape = quantities.output_shape(q, vals)
    if q.structure == quantities.ELEMENTWISE:
        vals = [np.ascontiguousarray(np.broadcast_to(v, shape)) if isinstance(v, np.ndarray) else v for v in vals]
    if cotangent is None:
        c = default_cotangent(q, shape)
    else:
        c = np.asarray(cotangent, dtype=np.float64)
        if c.shape != tuple(shape):
            try:
                c = np.ascontiguousarray(np.broadcast_to(c, shape))
            except ValueError:
                raise quantities.InputError(
                    f"{q.name}: cotangent has shape {c.shape}, expected the output shape {tuple(shape)}") from None
    if not np.isfinite(c).all():
        raise quantities.InputError(f"{q.name}: the cotangent must be finite")
    return vals, tuple(shape), c


def cot_units(q, c, shape):
    from .. import quantities

    if q.structure == quantities.ROW:
        n = shape[-1]
        return [tuple(r) for r in c.reshape(-1, n).tolist()]
    return c.reshape(-1).tolist()


def vjp(name, *args, cotangent=None) -> dict:
    """Exact gradient of sum(cotangent * quantity(*args)) w.r.t. each float argument.

    Returns {argument name: Exact} in argument order; arrays have the argument's (broadcast)
    shape, scalar arguments (T, eps, beta) a 0-d Exact holding the total over all rows. Served
    by the active reference cache, if any (the persistent store of :mod:`.cache`, as values).
    """
    from . import active_cache

    cache = active_cache()
    if cache is not None and hasattr(cache, "vjp"):
        return cache.vjp(name, args, cotangent, vjp_uncached)
    return vjp_uncached(name, *args, cotangent=cotangent)


def vjp_uncached(name, *args, cotangent=None) -> dict:
    """:func:`vjp` computed here (no cache)."""
    from .. import quantities

    q = quantities.get(name)
    vals, shape, c = prepare(q, args, cotangent)
    units = list(quantities.units(q, vals))
    cots = cot_units(q, c, shape)
    diff = differentiable_args(q)
    arrays = [i for i in diff if q.args[i].is_float_array]
    scalars = [i for i in diff if q.args[i].is_scalar]
    per_arr = {i: ([], [], []) for i in arrays}
    for unit, cu in zip(units, cots):
        pairs, flags, _ = _unit_cached(q.name, _freeze(list(unit) + [cu]))
        pos = 0
        for i in arrays:
            m = unit_size(q, vals[i])
            h, lo, u = per_arr[i]
            for (a, b), f in zip(pairs[pos:pos + m], flags[pos:pos + m]):
                h.append(a)
                lo.append(b)
                u.append(f)
            pos += m
    out = {}
    for i in diff:
        argname = q.args[i].name
        if i in per_arr:
            h, lo, u = per_arr[i]
            shp = vals[i].shape
            out[argname] = Exact(np.array(h, np.float64).reshape(shp), np.array(lo, np.float64).reshape(shp),
                                 undecided=np.array(u, bool).reshape(shp), source="mpmath")
        else:
            k = len(scalars) - scalars.index(i)
            out[argname] = _scalar_total(q.name, units, cots, k)
    return out


def unit_size(q, v):
    from .. import quantities

    if q.structure == quantities.ELEMENTWISE:
        return 1
    if q.structure == quantities.TABLE_REDUCE:
        return v.shape[-1] * v.shape[-2]
    return v.shape[-1]


def _scalar_total(name, units, cots, k_from_end):
    """sum over rows of the scalar-argument partial (the k-th output from the end), certified."""
    g = GRADIENTS[name]
    frozen = [(_freeze(list(u)), cu) for u, cu in zip(units, cots)]

    def batch():
        vals, scales = [], []
        for u, cu in frozen:
            v, s = g(*[to_mp(x) for x in _thaw(u)], to_mp(_thaw(cu)))[-k_from_end]
            vals.append(v)
            scales.append(s)
        if any(_isnan(v) for v in vals):
            return [_nanp()]
        infs = {int(mpmath.sign(v)) for v in vals if mpmath.isinf(v)}
        if infs:
            return [_nanp()] if len(infs) == 2 else [(INF if infs == {1} else NINF, 0)]
        return [(mp.fsum(vals), mp.fsum(scales) + mp.fsum(abs(v) for v in vals))]

    vals, prec, flags = evaluate_unit(batch, [])
    with mp.workprec(prec):
        h, lo = hi_lo(vals[0])
    return Exact(np.array(h, np.float64), np.array(lo, np.float64), undecided=np.array(flags[0]), source="mpmath")


def grad_formula(name):
    """The raw gradient formula of a quantity: fn(*unit, cotangent) -> [(value, scale)] at mp.prec."""
    return GRADIENTS[name]


__all__ = ["vjp", "vjp_uncached", "default_cotangent", "differentiable_args", "GRADIENTS", "grad_formula", "prepare", "bad_logits", "softmax_weights", "cot_units", "unit_size"]

"""Independent certification of the reference with python-flint ``arb`` ball arithmetic.

Every quantity of :data:`infoaudit.quantities.REGISTRY` is implemented here a second time, with
the conventions of :mod:`infoaudit.reference.formulas` but without sharing its code: each unit
(element, row or table) gives, per output element, either an exact conventional value (NaN,
+-inf, an exact 0 of a quantity whose terms cancel identically) or an ``arb`` ball that is
*guaranteed* to contain the exact value.

:func:`check` evaluates the reference (or takes an :class:`Exact` you pass), then raises the arb
precision (128, 256, ... bits) until both ends of every ball round alike in the format under
test, and compares: float64 ``hi`` and ``rounded(dtype)`` for float16 / bfloat16 / float32. An
element whose ball never decides the rounding (an exact value on a rounding boundary that arb
cannot prove, e.g. I(X;Y) = 0 of a product table built from inexact terms) is reported as
*undecided*, separately from wrong roundings.

Requires python-flint (the ``dev`` extra).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import mpmath
import numpy as np
from mpmath.libmp import from_man_exp

from ..dtypes import DTYPES, FORMATS, round_mpf

__all__ = ["NAN", "INF", "PRECS", "ZERO", "Shifted", "a_softmax", "a_log_softmax", "a_logsumexp",
           "a_cross_entropy", "a_nll_loss", "a_label_smoothing_cross_entropy", "a_distillation_loss",
           "a_rlhf_kl_penalty", "a_gaussian_kl", "a_sigmoid", "a_softplus", "a_log_sigmoid",
           "a_binary_cross_entropy_with_logits", "a_binary_cross_entropy", "a_self_information_bits",
           "a_binary_entropy_bits", "a_entropy", "a_entropy_bits", "a_kl_divergence",
           "a_cross_entropy_probs", "a_joint_entropy", "a_conditional_entropy", "a_mutual_information",
           "a_sampled_softmax_cross_entropy", "a_adaptive_log_softmax",
           "ARB", "enclosures", "ball_ends", "round_exact", "CheckResult", "check"]

try:
    from flint import arb, ctx
except ImportError as e:  # pragma: no cover
    raise ImportError("infoaudit.reference.arb_check needs python-flint (pip install python-flint)") from e

NAN = math.nan
INF = math.inf
PRECS = (128, 256, 512, 1024, 2048, 4096)


ZERO = 0.0  # an exactly-zero result by identity (terms cancel exactly)


def _a(x):
    return arb(float(x))


def _is_special(v):
    return isinstance(v, float)


# ---------------------------------------------------------------- logits rows


class Shifted:
    """value = base + corr: base an exact mpf (e.g. z_i - max z), corr an arb ball.

    Lets a tiny correction (log1p of e^-1e30) decide the rounding of an exactly representable
    base by its sign, which no fixed-precision ball around base + corr could do."""

    __slots__ = ("base", "corr")

    def __init__(self, base, corr):
        self.base, self.corr = base, corr

    def as_arb(self):
        return _arb_exact(self.base) + self.corr


def _arb_exact(x):
    """arb of an mpf (exact when the current precision holds it)."""
    if not x:
        return arb(0)
    sign, man, exp, bc = x._mpf_
    v = arb(int(man)) * arb(2) ** int(exp)
    return -v if sign else v


def _mp(x):
    return mpmath.mpf(x)


def _sub_exact(a, b):
    return mpmath.fsub(a, b, exact=True)


def _lse(z):
    """(kind, value): kind 'nan' | 'pinf' | 'ninf' | 'ok'; value = (m, nmax, rest, log s).

    s = sum exp(z - m) = nmax + rest, nmax = number of entries equal to the max m."""
    if any(math.isnan(v) for v in z):
        return "nan", None
    if any(v == INF for v in z):
        return "pinf", None
    fin = [v for v in z if v != -INF]
    if not fin:
        return "ninf", None
    m = max(fin)
    nmax = sum(1 for v in fin if v == m)
    rest = sum(((_a(v) - _a(m)).exp() for v in fin if v != m), arb(0))
    logs = (rest / nmax).log1p() if nmax == 1 else arb(nmax).log() + (rest / nmax).log1p()
    return "ok", (m, nmax, rest, logs)


def a_softmax(z):
    kind, v = _lse(z)
    if kind != "ok":
        return [NAN] * len(z)
    m, nmax, rest, _ = v
    s = rest + nmax
    return [ZERO if x == -INF else (_a(x) - _a(m)).exp() / s for x in z]


def a_log_softmax(z):
    kind, v = _lse(z)
    if kind != "ok":
        return [NAN] * len(z)
    m, _, _, L = v
    return [-INF if x == -INF else Shifted(_sub_exact(x, m), -L) for x in z]


def a_logsumexp(z):
    kind, v = _lse(z)
    if kind != "ok":
        return [{"nan": NAN, "pinf": INF, "ninf": -INF}[kind]]
    return [Shifted(_mp(v[0]), v[3])]


def a_cross_entropy(z, y):
    kind, v = _lse(z)
    zy = z[y]
    if kind == "nan" or math.isnan(zy):
        return [NAN]
    if kind == "pinf":
        return [NAN if zy == INF else INF]
    if kind == "ninf":
        return [NAN]
    if zy == -INF:
        return [INF]
    m, _, _, L = v
    return [Shifted(_sub_exact(m, zy), L)]


def a_nll_loss(logp, y):
    return [-logp[y]]


def a_label_smoothing_cross_entropy(z, y, eps):
    K = len(z)
    kind, v = _lse(z)
    if kind != "ok" or math.isnan(eps):
        return [NAN]
    m, _, _, L = v
    e = _a(eps)
    wy = 1 - e
    wu = e / K
    total = _a(m) + L
    for i, x in enumerate(z):
        t = wu + (wy if i == y else 0)
        if t.is_zero():
            continue
        if x == -INF:
            return [INF]
        total = total - t * _a(x)
    return [total]


def _kl_logits(za, zb, T):
    """KL(softmax(za / T) || softmax(zb / T)) as a ball intersected with [0, inf) (Gibbs).

    Two enclosures, the narrower one kept (both are certified, so either may be used):

    * direct: sum_{pa_i > 0} pa_i (la_i - lb_i), log-softmaxes la, lb with la_i - lb_i formed as
      (za_i - zb_i) / T - (lse_a - lse_b), the difference za_i - zb_i exact. Tight unless KL is
      tiny next to its terms (pa = pb up to e^-1e4).
    * shift-invariant (no masks): sum pa_i e_i - log1p(sum pb_j expm1(e_j)), e = (d - d_k) / T.
      Tight when KL is tiny, but when the student puts almost all mass where the teacher does not
      (1 + sum pb expm1(e) ~ e^-17000 at logit gaps ~1e4, T = 0.7) the log1p argument's ball
      contains -1 up to ~24,000 bits and the enclosure is useless: the direct form decides those.

    Exact 0 exactly when pa = pb: the same entries masked and za - zb constant on the others.
    """
    if any(math.isnan(v) for v in za + zb) or math.isnan(T):
        return NAN
    if any(v == INF for v in za + zb):
        return NAN
    if all(v == -INF for v in za) or all(v == -INF for v in zb):
        return NAN
    fin = [i for i, a in enumerate(za) if a != -INF]
    if any(zb[i] == -INF for i in fin):
        return INF  # pa_i > 0 = pb_i
    diffs = {i: mpmath.fsub(za[i], zb[i], exact=True) for i in fin}
    masks_equal = all((a == -INF) == (b == -INF) for a, b in zip(za, zb))
    if masks_equal and all(diffs[i] == diffs[fin[0]] for i in fin):
        return ZERO
    Ta = _a(T)
    la_all = _lse_scaled(za, Ta)
    lb_all = _lse_scaled(zb, Ta)
    shift = la_all - lb_all
    direct = arb(0)
    for i in fin:
        la = _a(za[i]) / Ta - la_all
        direct += la.exp() * (_arb_exact(diffs[i]) / Ta - shift)
    best = direct
    if masks_equal and len(fin) == len(za):
        k = max(range(len(za)), key=lambda i: za[i])
        dk = diffs[k]
        e = [_arb_exact(mpmath.fsub(diffs[i], dk, exact=True)) / Ta for i in range(len(za))]
        pa = [(_a(v) / Ta - la_all).exp() for v in za]
        pb = [(_a(v) / Ta - lb_all).exp() for v in zb]
        first = sum((p * ei for p, ei in zip(pa, e)), arb(0))
        inner = sum((p * ei.expm1() for p, ei in zip(pb, e)), arb(0))
        si = first - inner.log1p()
        if si.is_finite() and (not best.is_finite() or si.rad() < best.rad()):
            best = si
    return best.nonnegative_part()


def _lse_scaled(z, Ta):
    fin = [v for v in z if v != -INF]
    m = _a(max(fin)) / Ta
    return m + sum(((_a(v) / Ta - m).exp() for v in fin), arb(0)).log()


def a_distillation_loss(zs, zt, T):
    v = _kl_logits(zt, zs, T)
    if _is_special(v):
        return [v]
    return [_a(T) * _a(T) * v]


def a_rlhf_kl_penalty(zp, zr, beta):
    v = _kl_logits(zp, zr, 1.0)
    if _is_special(v):
        return [beta * v]
    return [_a(beta) * v]


def a_gaussian_kl(mu, logvar):
    total = arb(0)
    for m, lv in zip(mu, logvar):
        if math.isnan(m) or math.isnan(lv):
            return [NAN]
        if lv == INF or math.isinf(m) or lv == -INF:
            return [INF]
        L = _a(lv)
        total += L.expm1() - L + _a(m) * _a(m)
    if total.is_zero():
        return [ZERO]
    return [total / 2]


# ---------------------------------------------------------------- elementwise


def _softplus(x):
    if math.isnan(x):
        return NAN
    if x == INF:
        return INF
    if x == -INF:
        return ZERO
    X = _a(x)
    if x > 0:
        return X + (-X).exp().log1p()
    return X.exp().log1p()


def a_sigmoid(x):
    if math.isnan(x):
        return [NAN]
    if x == INF:
        return [1.0]
    if x == -INF:
        return [ZERO]
    return [1 / (1 + (-_a(x)).exp())]


def _softplus_shifted(x):
    """softplus(x); for x > 0 as Shifted(x, log1p(e^-x)): x + e^-4.7e32 at a bfloat16 midpoint x
    is decided by the correction's sign, which no ball around the sum could show."""
    if not math.isnan(x) and 0 < x < INF:
        return Shifted(_mp(x), (-_a(x)).exp().log1p())
    return _softplus(x)


def a_softplus(x):
    return [_softplus_shifted(x)]


def a_log_sigmoid(x):
    v = _softplus_shifted(-x)
    if isinstance(v, Shifted):
        return [Shifted(mpmath.fneg(v.base, exact=True), -v.corr)]
    return [-v]


def a_binary_cross_entropy_with_logits(z, t):
    if math.isnan(z) or math.isnan(t):
        return [NAN]
    if z == INF:
        return [ZERO if t == 1 else INF]
    if z == -INF:
        return [ZERO if t == 0 else INF]
    # exact part a = (1 - t) z (z > 0) or -t z (z <= 0) plus log1p(e^-|z|) > 0, as a Shifted pair:
    # softplus(z) - t z formed in a ball loses everything when t = 1, z = 1e38 (value e^-1e38)
    mz, mt = _mp(z), _mp(t)
    if z > 0:
        base = mpmath.fmul(mpmath.fsub(1, mt, exact=True), mz, exact=True)
        corr = (-_a(z)).exp().log1p()
    else:
        base = mpmath.fneg(mpmath.fmul(mt, mz, exact=True), exact=True)
        corr = _a(z).exp().log1p()
    return [Shifted(base, corr)]


def _xlogy(x, y):
    """x log y as arb / special, x and y arb-or-float exact; 0 log anything = 0."""
    if x.is_zero():
        return ZERO
    if y.is_zero():
        return -INF
    return x * y.log()


def a_binary_cross_entropy(p, t):
    if math.isnan(p) or math.isnan(t):
        return [NAN]
    P, Tt = _a(p), _a(t)
    terms = [_xlogy(Tt, P), _xlogy(1 - Tt, 1 - P)]
    if any(v == -INF for v in terms if _is_special(v)):
        return [INF]
    arbs = [v for v in terms if not _is_special(v)]
    if not arbs:
        return [ZERO]
    return [-sum(arbs, arb(0))]


def a_self_information_bits(p):
    if math.isnan(p):
        return [NAN]
    if p == 0:
        return [INF]
    return [-_a(p).log() / arb(2).log()]


def a_binary_entropy_bits(p):
    if math.isnan(p):
        return [NAN]
    P = _a(p)
    a = _xlogy(P, P)
    b = _xlogy(1 - P, 1 - P)
    tot = (arb(0) if _is_special(a) else a) + (arb(0) if _is_special(b) else b)
    if tot.is_zero():
        return [ZERO]
    return [-tot / arb(2).log()]


# ---------------------------------------------------------------- probability rows / tables


def _entropy_arb(p):
    if any(math.isnan(v) for v in p):
        return NAN
    tot = arb(0)
    for v in p:
        if v == 0:
            continue
        if math.isinf(v):
            return -INF if v > 0 else NAN
        P = _a(v)
        tot += P * P.log()
    if tot.is_zero():
        return ZERO
    return -tot


def a_entropy(p):
    return [_entropy_arb(p)]


def a_entropy_bits(p):
    v = _entropy_arb(p)
    return [v if _is_special(v) else v / arb(2).log()]


def a_kl_divergence(p, q):
    tot = arb(0)
    any_term = False
    for a, b in zip(p, q):
        if math.isnan(a) or math.isnan(b):
            return [NAN]
        if a == 0:
            continue
        if b == 0:
            return [INF]
        any_term = True
        A = _a(a)
        tot += A * (A / _a(b)).log()
    if not any_term or tot.is_zero():
        return [ZERO]
    return [tot]


def a_cross_entropy_probs(p, q):
    tot = arb(0)
    inf = False
    for a, b in zip(p, q):
        if math.isnan(a) or math.isnan(b):
            return [NAN]
        if a == 0:
            continue
        if b == 0:
            inf = True
            continue
        tot += _a(a) * _a(b).log()
    if inf:
        return [INF]
    if tot.is_zero():
        return [ZERO]
    return [-tot]


def _ext_sub(a, b):
    """a - b for floats in the extended reals: an exact mpf, or NaN / +-inf."""
    if math.isnan(a) or math.isnan(b) or (math.isinf(a) and a == b):
        return NAN
    if math.isinf(a):
        return a
    if math.isinf(b):
        return -b
    return _sub_exact(_mp(a), _mp(b))


def _exact_log_softmax_parts(vals):
    """(m, L) of a row of exact mpf values (at least one): m = max, L = arb ball of
    log(sum exp(v - m)) = log(nmax) + log1p(rest / nmax), every v - m exact."""
    m = max(vals)
    nmax = sum(1 for v in vals if v == m)
    rest = sum(((_arb_exact(_sub_exact(v, m))).exp() for v in vals if v != m), arb(0))
    return m, (rest / nmax).log1p() if nmax == 1 else arb(nmax).log() + (rest / nmax).log1p()


def _shifted_or_ball(base, corr):
    """Shifted(base, corr) when base lies on the 2^(e - 64) grid (_decide's sign rule for a tiny
    corr holds only then), else the ball base + corr: a base such as (z_k - log q_k) - (z_y - log q_y)
    with z ~ 1e30 carries bits far below that grid, and a boundary can lie between base and base + corr."""
    if base and int(base._mpf_[2]) < _top_exp(base) - 64:
        return _arb_exact(base) + corr
    return Shifted(base, corr)


def a_sampled_softmax_cross_entropy(z, y, samples, log_q):
    """-a_y + logsumexp(a_T), T = [y] + samples other than y, a = z - log q (exact)."""
    a = [_ext_sub(z[j], log_q[j]) for j in [y] + [s for s in samples if s != y]]
    if any(isinstance(v, float) and math.isnan(v) for v in a):
        return [NAN]
    if any(isinstance(v, float) and v == INF for v in a):
        return [NAN if isinstance(a[0], float) and a[0] == INF else INF]
    fin = [v for v in a if not isinstance(v, float)]
    if not fin:
        return [NAN]
    if isinstance(a[0], float):  # -inf target
        return [INF]
    m, L = _exact_log_softmax_parts(fin)
    return [_shifted_or_ball(_sub_exact(m, a[0]), L)]


def _exact_dot(w, x):
    """sum w_k x_k of exact mpf/float values, exactly (NaN / +-inf by IEEE rules)."""
    tot = mpmath.mpf(0)
    infs = set()
    for a, b in zip(w, x):
        p = mpmath.fmul(a if isinstance(a, mpmath.mpf) else _mp(a), b if isinstance(b, mpmath.mpf) else _mp(b),
                        exact=True)  # mpf(x) of an mpf would round it to the working precision
        if mpmath.isnan(p):
            return NAN
        if mpmath.isinf(p):
            infs.add(1 if p > 0 else -1)
            continue
        tot = mpmath.fadd(tot, p, exact=True)
    if infs:
        return NAN if len(infs) == 2 else INF * infs.pop()
    return tot


def _a_log_softmax_exact(vals):
    """Per entry: NaN / -inf, or (base exact mpf, corr arb) of v - logsumexp(vals)."""
    if any(isinstance(v, float) and (math.isnan(v) or v == INF) for v in vals):
        return [NAN] * len(vals)
    fin = [v for v in vals if not isinstance(v, float)]
    if not fin:
        return [NAN] * len(vals)
    m, L = _exact_log_softmax_parts(fin)
    return [-INF if isinstance(v, float) else (_sub_exact(v, m), -L) for v in vals]


def a_adaptive_log_softmax(h, head_weight, proj_1, out_1, proj_2, out_2):
    """Head log_softmax over S + 2 entries, cluster i's classes head[S + i] + tail log_softmax;
    all matrix products exact."""
    S = len(head_weight) - 2
    head = _a_log_softmax_exact([_exact_dot(row, h) for row in head_weight])
    out = [v if isinstance(v, float) else _shifted_or_ball(*v) for v in head[:S]]
    for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2))):
        u = [_exact_dot(row, h) for row in P]
        if any(isinstance(v, float) and math.isnan(v) for v in u):
            tail = [NAN] * len(O)
        else:
            tail = _a_log_softmax_exact([_exact_dot(row, u) for row in O])
        g = head[S + i]
        for t in tail:
            if isinstance(g, float) or isinstance(t, float):
                gv = g if isinstance(g, float) else 0.0
                tv = t if isinstance(t, float) else 0.0
                out.append(NAN if math.isnan(gv) or math.isnan(tv) else -INF)
            else:
                out.append(_shifted_or_ball(mpmath.fadd(g[0], t[0], exact=True), g[1] + t[1]))
    return out


def a_joint_entropy(P):
    return a_entropy([v for row in P for v in row])


def a_conditional_entropy(P):
    if any(math.isnan(v) for row in P for v in row):
        return [NAN]
    tot = arb(0)
    any_term = False
    for row in P:
        px = sum((_a(v) for v in row), arb(0))
        for v in row:
            if v == 0:
                continue
            any_term = True
            V = _a(v)
            tot += V * (V / px).log()
    if not any_term or tot.is_zero():
        return [ZERO]
    return [-tot]


def a_mutual_information(P):
    if any(math.isnan(v) for row in P for v in row):
        return [NAN]
    px = [sum((_a(v) for v in row), arb(0)) for row in P]
    py = [sum((_a(P[i][j]) for i in range(len(P))), arb(0)) for j in range(len(P[0]))]
    tot = arb(0)
    any_term = False
    for i, row in enumerate(P):
        for j, v in enumerate(row):
            if v == 0:
                continue
            any_term = True
            V = _a(v)
            tot += V * (V / (px[i] * py[j])).log()
    if not any_term or tot.is_zero():
        return [ZERO]
    return [tot]


ARB = {
    "softmax": a_softmax,
    "log_softmax": a_log_softmax,
    "logsumexp": a_logsumexp,
    "sigmoid": a_sigmoid,
    "softplus": a_softplus,
    "log_sigmoid": a_log_sigmoid,
    "entropy": a_entropy,
    "entropy_bits": a_entropy_bits,
    "self_information_bits": a_self_information_bits,
    "binary_entropy_bits": a_binary_entropy_bits,
    "kl_divergence": a_kl_divergence,
    "cross_entropy_probs": a_cross_entropy_probs,
    "cross_entropy": a_cross_entropy,
    "nll_loss": a_nll_loss,
    "binary_cross_entropy": a_binary_cross_entropy,
    "binary_cross_entropy_with_logits": a_binary_cross_entropy_with_logits,
    "label_smoothing_cross_entropy": a_label_smoothing_cross_entropy,
    "distillation_loss": a_distillation_loss,
    "rlhf_kl_penalty": a_rlhf_kl_penalty,
    "gaussian_kl": a_gaussian_kl,
    "joint_entropy": a_joint_entropy,
    "conditional_entropy": a_conditional_entropy,
    "mutual_information": a_mutual_information,
    "sampled_softmax_cross_entropy": a_sampled_softmax_cross_entropy,
    "adaptive_log_softmax": a_adaptive_log_softmax,
}


# ---------------------------------------------------------------- enclosures and the check


def _to_mpf(x):
    m, e = x.man_exp()
    return mpmath.mp.make_mpf(from_man_exp(int(m), int(e)))


def enclosures(name, *args, prec=128) -> list:
    """Per output element (flattened, C order): a float (conventional/exact value) or an arb ball."""
    from .. import quantities

    q = quantities.get(name)
    vals = quantities.validate(q, args)
    f = ARB[q.name]
    old = ctx.prec
    ctx.prec = prec
    try:
        out = []
        for unit in quantities.units(q, vals):
            out.extend(f(*unit))
        return out
    finally:
        ctx.prec = old


def _decide(v, dtype):
    """The rounding of an enclosure to dtype, or None when the ball straddles a boundary."""
    f = FORMATS[dtype]
    if isinstance(v, float):
        return round_mpf(v, f) if not math.isnan(v) else NAN
    if isinstance(v, Shifted):
        c = v.corr
        if c.is_zero():
            return round_exact(v.base, f)
        if v.base and (c > 0 or c < 0):
            e = int(v.base._mpf_[2]) + int(v.base._mpf_[3]) - 1  # floor(log2 |base|)
            # base is a multiple of 2^lsb; every rounding boundary is a 54-bit number, so a
            # boundary is base itself or at least min(2^(e - 54), 2^lsb) away from it: none lies
            # strictly between base and base + corr, and base + sign(corr) 2^(unit - 64) rounds
            # the same way (base = (1 - 2^-1074) 802 carries bits far below 2^(e - 64))
            unit = min(e - 64, int(v.base._mpf_[2]))
            if c.abs_upper() < arb(2) ** unit:
                sgn = 1 if c > 0 else -1
                return round_exact(mpmath.fadd(v.base, mpmath.ldexp(sgn, unit - 64), exact=True), f)
        v = v.as_arb()
    if v.is_nan() or not v.is_finite():
        return None
    lo, hi = ball_ends(v)
    a, b = round_exact(lo, f), round_exact(hi, f)
    return a if a == b else None


def ball_ends(v):
    """Ends (mid - rad, mid + rad) of an arb ball as mpf values, never narrower than the ball.

    Exact where mid and rad are fewer than 4096 binary orders apart; otherwise (a value like
    exp(-3e38) with a radius far below it, or an O(1) sum whose radius carries e^-4e31) the ends
    are rounded outwards at 64 bits beyond the longer mantissa: a superset of the ball that can
    only leave an element undecided, never decide it wrongly.
    """
    m, r = _to_mpf(v.mid()), _to_mpf(v.rad())
    if not r:
        return m, m
    if not m:
        return -r, r
    # exact when the span of the two fits in ``prec`` bits, otherwise rounded outwards; never an
    # exact sum across a gap of ~1e38 bits (a ball like e^-4e31 +- 2^-128 next to O(1) terms:
    # gmpy2 would abort the whole process with "overflow in mpz type")
    top = max(_top_exp(m), _top_exp(r))
    low = min(int(m._mpf_[2]), int(r._mpf_[2]))
    prec = top - low + 2 if top - low < 4096 else max(int(m._mpf_[3]), int(r._mpf_[3])) + 64
    return mpmath.fsub(m, r, prec=prec, rounding="d"), mpmath.fadd(m, r, prec=prec, rounding="u")


def _top_exp(x):
    """floor(log2 |x|) + 1 of a nonzero finite mpf."""
    return int(x._mpf_[2]) + int(x._mpf_[3])


def round_exact(x, f):
    """dtypes.round_mpf of an exact mpf, at a working precision that holds x without rounding.

    (round_mpf re-creates its argument with mpmath.mpf(), which rounds to the *current*
    precision: called at the default 53 bits it would round twice.)"""
    if not x or not mpmath.isfinite(x):
        return round_mpf(x, f)
    sign, man, exp, bc = x._mpf_
    e = int(exp) + int(bc) - 1
    # far outside the format (round_mpf would build a 2^huge integer): 0 or overflow
    if e < f.emin - f.precision - 2:
        return -0.0 if sign else 0.0
    if e > f.emax + 2:
        return -math.inf if sign else math.inf
    with mpmath.workprec(max(64, int(bc) + 8)):
        return round_mpf(x, f)


@dataclass
class CheckResult:
    name: str
    checked: int = 0
    wrong: list = field(default_factory=list)      # (flat index, dtype, reference, certified)
    undecided: list = field(default_factory=list)  # (flat index, dtype, reference)
    escalations: int = 0  # elements that needed more than the first precision

    @property
    def n_wrong(self):
        return len(self.wrong)

    def summary(self) -> str:
        return (f"{self.name}: {self.checked} element-roundings checked, {self.n_wrong} wrong, "
                f"{len(self.undecided)} undecided, {self.escalations} needed > {PRECS[0]} bits")


def _same(a, b):
    return (a == b) or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def check(name, *args, ref=None, dtypes=DTYPES, max_prec=PRECS[-1]) -> CheckResult:
    """Compare the reference (``reference.evaluate`` unless ``ref`` is given) with arb.

    For every output element and every dtype in ``dtypes``: the reference value (float64 ``hi``
    for float64, ``ref.rounded(dtype)`` otherwise) must equal the rounding of the exact value,
    which arb proves by raising the precision until the ball's ends round alike. Conventional
    values (NaN, +-inf, exact zeros) are compared as values.
    """
    from . import evaluate

    if ref is None:
        ref = evaluate(name, *args)
    res = CheckResult(name)
    refs = {d: (np.asarray(ref.hi) if d == "float64" else np.asarray(ref.rounded(d))).reshape(-1) for d in dtypes}
    pending = None  # indices still undecided in some dtype
    decided = {}
    for prec in PRECS:
        if prec > max_prec:
            break
        encl = enclosures(name, *args, prec=prec)
        idx = range(len(encl)) if pending is None else pending
        still = []
        old = ctx.prec
        ctx.prec = prec  # Shifted.as_arb() inside _decide works at this precision
        try:
            still = _decide_all(encl, idx, dtypes, decided)
        finally:
            ctx.prec = old
        if pending is None and still:
            res.escalations = len(still)
        pending = still
        if not pending:
            break
    return _compare(res, refs, dtypes, decided)


def _decide_all(encl, idx, dtypes, decided):
    still = []
    for i in idx:
        ok_all = True
        for d in dtypes:
            if (i, d) in decided:
                continue
            r = _decide(encl[i], d)
            if r is None:
                ok_all = False
            else:
                decided[(i, d)] = r
        if not ok_all:
            still.append(i)
    return still


def _compare(res, refs, dtypes, decided):
    n = len(refs[dtypes[0]])
    for i in range(n):
        for d in dtypes:
            res.checked += 1
            rv = float(refs[d][i])
            if (i, d) not in decided:
                res.undecided.append((i, d, rv))
                continue
            cv = decided[(i, d)]
            if not _same(rv, cv):
                res.wrong.append((i, d, rv, cv))
    return res

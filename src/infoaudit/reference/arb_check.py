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
    if any(math.isnan(v) for v in za + zb) or math.isnan(T):
        return NAN
    if any(v == INF for v in za + zb):
        return NAN
    if all(v == -INF for v in za) or all(v == -INF for v in zb):
        return NAN
    Ta = _a(T)
    if any(v == -INF for v in za + zb):
        la_all = _lse_scaled(za, Ta)
        lb_all = _lse_scaled(zb, Ta)
        total = arb(0)
        for a, b in zip(za, zb):
            if a == -INF:
                continue
            if b == -INF:
                return INF
            la = _a(a) / Ta - la_all
            lb = _a(b) / Ta - lb_all
            total += la.exp() * (la - lb)
        return total
    # shift-invariant form, exact 0 when za - zb is constant
    d = [_a(a) - _a(b) for a, b in zip(za, zb)]
    k = max(range(len(za)), key=lambda i: za[i])
    diffs = [mpmath.fsub(a, b, exact=True) for a, b in zip(za, zb)]
    if all(x == diffs[k] for x in diffs):
        return ZERO
    e = [(di - d[k]) / Ta for di in d]
    la_all = _lse_scaled(za, Ta)
    lb_all = _lse_scaled(zb, Ta)
    pa = [(_a(v) / Ta - la_all).exp() for v in za]
    pb = [(_a(v) / Ta - lb_all).exp() for v in zb]
    first = sum((p * ei for p, ei in zip(pa, e)), arb(0))
    inner = sum((p * ei.expm1() for p, ei in zip(pb, e)), arb(0))
    return first - inner.log1p()


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


def a_softplus(x):
    return [_softplus(x)]


def a_log_sigmoid(x):
    v = _softplus(-x)
    return [-v if _is_special(v) else -v]


def a_binary_cross_entropy_with_logits(z, t):
    if math.isnan(z) or math.isnan(t):
        return [NAN]
    if z == INF:
        return [ZERO if t == 1 else INF]
    if z == -INF:
        return [ZERO if t == 0 else INF]
    return [_softplus(z) - _a(t) * _a(z)]


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
            if c.abs_upper() < arb(2) ** (e - 64):
                # every rounding boundary is a 54-bit number: none lies strictly between base and
                # base + corr, so base + sign(corr) 2^(e - 128) rounds the same way
                sgn = 1 if c > 0 else -1
                return round_exact(mpmath.fadd(v.base, mpmath.ldexp(sgn, e - 128), exact=True), f)
        v = v.as_arb()
    if v.is_nan() or not v.is_finite():
        return None
    lo, hi = ball_ends(v)
    a, b = round_exact(lo, f), round_exact(hi, f)
    return a if a == b else None


def ball_ends(v):
    """Ends (mid - rad, mid + rad) of an arb ball as mpf values, never narrower than the ball.

    Exact where the sum fits in memory; where mid and rad are exponents apart (a value like
    exp(-3e38) with a radius far below it) the ends are rounded outwards at 512 bits instead.
    """
    m, r = _to_mpf(v.mid()), _to_mpf(v.rad())
    try:
        return mpmath.fsub(m, r, exact=True), mpmath.fadd(m, r, exact=True)
    except OverflowError:
        return (mpmath.fsub(m, r, prec=512, rounding="d"), mpmath.fadd(m, r, prec=512, rounding="u"))


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

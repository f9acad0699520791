"""Exact formulas of every quantity, evaluated by mpmath at the *current* working precision.

Each formula takes one unit of input (an element, a row, or a table; floats already converted
exactly to mpf, labels as int, scalars as mpf) and returns a list of ``(value, scale)`` pairs, one
per output element. ``scale`` bounds the magnitude of the intermediate quantities whose rounding
errors reach the value: the absolute error of ``value`` is at most about ``scale * 2**-prec``.
For a sum with cancellation it is the sum of the absolute values of the terms; it is zero only
when every term is exactly zero, so that an exactly zero result (KL of p = q, Gaussian KL at
mu = logvar = 0, distillation with zs = zt) is recognised as exact instead of being refined
forever. The precision loop in :mod:`infoaudit.reference.engine` uses the scale to decide how
many bits a value still needs.

Formulas are written in the forms that keep relative accuracy (log1p, expm1, shifted
exponentials), so that precision is spent only on genuine cancellation.
"""
from __future__ import annotations

import mpmath
from mpmath import mp

__all__ = ["GUARD_BITS", "INF", "NINF", "NAN", "lse_parts", "logsumexp", "log_softmax", "softmax",
           "max_abs_finite", "cross_entropy", "nll_loss", "label_smoothing_cross_entropy", "kl_logits",
           "distillation_loss", "rlhf_kl_penalty", "sigmoid", "softplus", "log_sigmoid",
           "binary_cross_entropy_with_logits", "binary_cross_entropy", "self_information_bits",
           "binary_entropy_bits", "entropy", "entropy_bits", "kl_divergence", "cross_entropy_probs",
           "gaussian_kl", "joint_entropy", "conditional_entropy", "mutual_information",
           "sampled_softmax_cross_entropy", "adaptive_log_softmax", "formula"]

GUARD_BITS = 12  # = engine.GUARD: the engine's error bound is scale * 2^(GUARD - prec)
INF = mpmath.inf
NINF = mpmath.ninf
NAN = mpmath.nan


def _isnan(x):
    return mpmath.isnan(x)


def _isinf(x):
    return mpmath.isinf(x)


def _one_minus(x):
    """1 - x exactly (no rounding at the working precision: tiny x keeps its log(1 - x) term)."""
    if _isnan(x) or _isinf(x):
        return 1 - x
    return mpmath.fsub(1, x, exact=True)


def _xlogy(x, y):
    """x * log(y) with 0 * log(anything >= 0) = 0 (the 0 log 0 = 0 convention)."""
    if _isnan(x) or _isnan(y):
        return NAN
    if x == 0:
        return mpmath.mpf(0)
    if y == 0:
        return NINF if x > 0 else INF
    return x * mp.log(y)


# ---------------------------------------------------------------- logits (rows)


def lse_parts(z):
    """Return (lse, m, s) with lse = m + log(s), m = max finite z, s = sum exp(z - m).

    Conventions: any NaN -> NaN; any +inf -> +inf; all -inf (or empty) -> -inf.
    """
    if any(_isnan(v) for v in z):
        return NAN, NAN, NAN
    if any(v == INF for v in z):
        return INF, INF, NAN
    finite = [v for v in z if v != NINF]
    if not finite:
        return NINF, NINF, mpmath.mpf(0)
    m = max(finite)
    s = mp.fsum(mp.exp(v - m) for v in finite)  # v - m rounds; covered by the scale below
    return m + mp.log(s), m, s


def _lse_split(z):
    """(m, L) with logsumexp(z) = m + L, m = max z (finite entries, at least one), computed as
    L = log1p(sum_{j != k} exp(z_j - m)) (k the first argmax, z_j - m exact): L >= 0 is accurate
    to a few units of the working precision *relative to itself*, however small it is."""
    finite = [v for v in z if v != NINF]
    m = max(finite)
    k = finite.index(m)
    t = mp.fsum(mp.exp(mpmath.fsub(v, m, exact=True)) for j, v in enumerate(finite) if j != k)
    return m, mp.log1p(t)


def _exact_plus_small(a, b):
    """(value, scale) of a + b with ``a`` exact and ``b`` accurate to 4 units of itself.

    When |b| is far below the working precision of a (log_softmax of z_i = m - 1e11 next to a
    dominant logit: b = -e^-1e11), a + b cannot be formed, but its rounding in every audited
    format is that of a + delta, with delta = sign(b) 2^(e_a - prec - 8): both lie strictly
    inside the same cell of the 54-bit grid that holds every rounding boundary (delta is taken below
    a's own last bit when a carries more bits than the working precision). The scale then
    states the error of that stand-in (below |delta| / 2), so the precision loop accepts it.
    """
    if b == 0:
        return a, mpmath.mpf(0)
    if a == 0:
        return b, 4 * abs(b)
    e_a = mpmath.frexp(a)[1]  # |a| in [2^(e_a - 1), 2^e_a)
    prec = mp.prec
    # the grid a lies on: 2^(e_a - prec), or finer when a carries more bits than the working
    # precision (a = (1 - t) z with t = 2^-1074 needs ~1,080: a boundary may then lie just above a
    # and only a delta below a's last bit is on the same side of it as a + b)
    unit = min(e_a - prec, int(a.man_exp[1]))
    if abs(b) < mpmath.ldexp(1, unit - 64):
        delta = mpmath.ldexp(1 if b > 0 else -1, unit - 8)
        return mpmath.fadd(a, delta, exact=True), abs(delta) * mpmath.ldexp(1, prec - GUARD_BITS - 1)
    return a + b, abs(a) + 4 * abs(b)


def logsumexp(z):
    lse, _, _ = lse_parts(z)
    if not mpmath.isfinite(lse):
        return [(lse, mpmath.mpf(0))]
    m, L = _lse_split(z)
    return [_exact_plus_small(m, L)]


def log_softmax(z):
    """z_i - lse = (z_i - m) - L with z_i - m exact (see _lse_split, _exact_plus_small)."""
    lse, _, _ = lse_parts(z)
    out = []
    if mpmath.isfinite(lse):
        m, L = _lse_split(z)
    for v in z:
        if _isnan(lse) or _isnan(v) or not mpmath.isfinite(lse):
            out.append((NAN, 0))  # NaN input, +inf entry (inf - inf), all -inf row
        elif v == NINF:
            out.append((NINF, 0))
        else:
            out.append(_exact_plus_small(mpmath.fsub(v, m, exact=True), -L))
    return out


def softmax(z):
    lse, _, _ = lse_parts(z)
    zmax = max_abs_finite(z)
    out = []
    for v in z:
        if _isnan(lse) or _isnan(v) or not mpmath.isfinite(lse):
            out.append((NAN, 0))  # NaN input, +inf entry (inf/inf), or all -inf row (0/0)
        elif v == NINF:
            out.append((mpmath.mpf(0), 0))
        else:
            p = mp.exp(v - lse)
            # relative error of p = absolute error of (v - lse) ~ (|v| + |lse| + max|z|) 2^-prec
            out.append((p, p * (abs(v) + abs(lse) + 2 * zmax + 1)))
    return out


def max_abs_finite(z):
    vals = [abs(v) for v in z if mpmath.isfinite(v)]
    return max(vals) if vals else mpmath.mpf(0)


def cross_entropy(z, y):
    """logsumexp(z) - z_y; masked target (z_y = -inf) -> +inf; all -inf row -> NaN."""
    lse, _, _ = lse_parts(z)
    zy = z[y]
    if _isnan(lse) or _isnan(zy):
        return [(NAN, 0)]
    if lse == INF:
        return [(NAN, 0) if zy == INF else (INF, 0)]
    if lse == NINF:
        return [(NAN, 0)]
    if zy == NINF:
        return [(INF, 0)]
    m, L = _lse_split(z)
    return [_exact_plus_small(mpmath.fsub(m, zy, exact=True), L)]


def nll_loss(logp, y):
    v = logp[y]
    return [(-v, 0)]  # exact negation


def label_smoothing_cross_entropy(z, y, eps):
    """-sum_i t_i log_softmax(z)_i with t = (1 - eps) onehot(y) + eps / K.

    = lse - (1 - eps) z_y - (eps / K) sum_i z_i. Entries with t_i = 0 contribute 0.
    """
    K = len(z)
    lse, _, _ = lse_parts(z)
    if _isnan(lse) or any(_isnan(v) for v in z) or _isnan(eps):
        return [(NAN, 0)]
    if lse == NINF:
        return [(NAN, 0)]
    if lse == INF:
        return [(NAN, 0)]
    terms = [lse]
    w_y = 1 - eps
    w_u = eps / K
    for i, v in enumerate(z):
        t = w_u + (w_y if i == y else 0)
        if t == 0:
            continue
        if v == NINF:
            return [(INF, 0)]
        terms.append(-t * v)
    val = mp.fsum(terms)
    scale = mp.fsum(abs(t) for t in terms) + 2 * max_abs_finite(z)
    return [(val, scale)]


def kl_logits(za, zb, T):
    """KL(softmax(za / T) || softmax(zb / T)) for one row.

    With d_i = (za_i - zb_i) computed exactly and e_i = (d_i - d_k) / T (k = argmax za):
        KL = sum_i pa_i e_i - log1p(sum_j pb_j expm1(e_j)),
    which is exactly 0 when za - zb is constant (shift invariance) and has no cancellation
    between two large logsumexps. Rows with -inf masks, and rows where the log1p argument is
    near -1 (KL large), use the direct form sum_{pa_i > 0} pa_i (log pa_i - log pb_i).
    """
    if any(_isnan(v) for v in za) or any(_isnan(v) for v in zb) or _isnan(T):
        return [(NAN, 0)]
    if any(v == INF for v in za) or any(v == INF for v in zb):
        return [(NAN, 0)]
    if all(v == NINF for v in za) or all(v == NINF for v in zb):
        return [(NAN, 0)]
    if any(v == NINF for v in za) or any(v == NINF for v in zb):
        if all((a == NINF) == (b == NINF) for a, b in zip(za, zb)):
            d = {mpmath.fsub(a, b, exact=True) for a, b in zip(za, zb) if a != NINF}
            if len(d) == 1:
                return [(mpmath.mpf(0), 0)]  # same masks, za - zb constant: pa = pb exactly
        return _kl_logits_direct(za, zb, T)
    d = [mpmath.fsub(a, b, exact=True) for a, b in zip(za, zb)]
    k = max(range(len(za)), key=lambda i: za[i])
    e = [mpmath.fsub(di, d[k], exact=True) / T for di in d]
    if all(v == 0 for v in e):
        return [(mpmath.mpf(0), 0)]
    lse_a, _, _ = lse_parts([v / T for v in za])
    lse_b, _, _ = lse_parts([v / T for v in zb])
    pa = [mp.exp(v / T - lse_a) for v in za]
    pb = [mp.exp(v / T - lse_b) for v in zb]
    first = mp.fsum(p * ei for p, ei in zip(pa, e))
    inner = mp.fsum(p * mp.expm1(ei) for p, ei in zip(pb, e))
    if inner < -0.5:
        # inner = sum pb exp(e) - 1 close to -1: log1p would need ~|log(1 + inner)| extra bits
        # (1 - exp(-huge)); here KL >= log 2 - sum pa e is far from 0, so the direct form
        # sum pa (log pa - log pb) has no harmful cancellation
        return _kl_logits_direct(za, zb, T)
    second = mp.log1p(inner)
    val = first - second
    zmax = max(max(abs(v) for v in za), max(abs(v) for v in zb)) / abs(T)
    # errors: pa/pb carry relative error ~ (|z/T| + |lse|) 2^-prec; e_i/T rounding is relative
    scale = (mp.fsum(abs(p * ei) for p, ei in zip(pa, e)) + abs(second)
             + mp.fsum(abs(p * mp.expm1(ei)) for p, ei in zip(pb, e))) * (4 * zmax + abs(lse_a) + abs(lse_b) + 1)
    return [(val, scale)]


def _kl_logits_direct(za, zb, T):
    """sum_{pa_i > 0} pa_i (log pa_i - log pb_i) with log-softmaxes (masks allowed)."""
    lse_a, _, _ = lse_parts([v / T for v in za])
    lse_b, _, _ = lse_parts([v / T for v in zb])
    terms = []
    mag = mpmath.mpf(0)
    for a, b in zip(za, zb):
        if a == NINF:
            continue  # pa_i = 0 contributes 0
        if b == NINF:
            return [(INF, 0)]
        la = a / T - lse_a
        lb = b / T - lse_b
        p = mp.exp(la)
        terms.append(p * (la - lb))
        mag += p * (abs(a / T) + abs(b / T) + abs(lse_a) + abs(lse_b) + 1)
    if not terms:
        return [(NAN, 0)]
    return [(mp.fsum(terms), mag * 4)]


def _positive_below_every_format(val, scale, sign):
    """(value, scale) of a quantity known to be sign * (a number > 0).

    KL(pa || pb) > 0 whenever pa != pb (Gibbs), but when pa and pb agree up to e^-1e4 the value
    is far below the precision the terms allow (cancellation beyond MAX_PREC bits). Once the
    error interval proves |value| <= 2^-1075 (half the smallest float64 subnormal, a tie that
    rounds to the even 0), every audited format rounds it to sign * 0 and its float64 hi/lo pair
    is (+-0, +-2^-1074) whatever the value is; the stand-in sign * 2^-1100 has the same roundings
    and the same hi/lo, with a scale small enough for the engine's relative-accuracy test.
    """
    if not mpmath.isfinite(val):
        return val, scale
    err = mpmath.mpf(scale) * mpmath.ldexp(1, GUARD_BITS - mp.prec)
    if abs(val) + err > mpmath.ldexp(1, -1075):
        return val, scale
    tiny = mpmath.ldexp(sign, -1100)
    return tiny, mpmath.ldexp(1, -1100 - 120 + mp.prec - GUARD_BITS)


def distillation_loss(zs, zt, T):
    """T^2 * KL(softmax(zt / T) || softmax(zs / T)); teacher zt, student zs."""
    (v, s), = kl_logits(zt, zs, T)
    if (v == 0 and s == 0) or not mpmath.isfinite(v):
        return [(T * T * v, T * T * s)]
    return [_positive_below_every_format(T * T * v, T * T * s, 1)]


def rlhf_kl_penalty(z_policy, z_ref, beta):
    """beta * KL(softmax(z_policy) || softmax(z_ref)) for one token."""
    (v, s), = kl_logits(z_policy, z_ref, mpmath.mpf(1))
    if beta == 0 or (v == 0 and s == 0) or not mpmath.isfinite(v):
        return [(beta * v, abs(beta) * s)]
    return [_positive_below_every_format(beta * v, abs(beta) * s, 1 if beta > 0 else -1)]


# ---------------------------------------------------------------- elementwise


def sigmoid(x):
    if _isnan(x):
        return [(NAN, 0)]
    if x == INF:
        return [(mpmath.mpf(1), 0)]
    if x == NINF:
        return [(mpmath.mpf(0), 0)]
    v = 1 / (1 + mp.exp(-x))
    return [(v, v)]


def _softplus(x):
    if _isnan(x):
        return NAN
    if x == INF:
        return INF
    if x == NINF:
        return mpmath.mpf(0)
    if x > 0:
        return x + mp.log1p(mp.exp(-x))
    return mp.log1p(mp.exp(x))


def _softplus_pair(x):
    """(value, scale) of softplus(x). For x > 0 it is x (exact) + log1p(e^-x): at x = 4.7e32, a
    bfloat16 midpoint, the sum cannot be formed at any working precision, and the sign of the
    e^-4.7e32 decides the rounding (_exact_plus_small)."""
    if _isnan(x) or mpmath.isinf(x):
        return _softplus(x), 0
    if x > 0:
        return _exact_plus_small(x, mp.log1p(mp.exp(-x)))
    v = mp.log1p(mp.exp(x))
    return v, abs(v)


def softplus(x):
    return [_softplus_pair(x)]


def log_sigmoid(x):
    """-softplus(-x): for x < 0, x - log1p(e^x) with x exact (see _softplus_pair)."""
    v, s = _softplus_pair(-x)
    return [(mpmath.fneg(v, exact=True), s)]  # v may hold more bits than the working precision


def binary_cross_entropy_with_logits(z, t):
    """softplus(z) - t z; t in [0, 1]."""
    if _isnan(z) or _isnan(t):
        return [(NAN, 0)]
    if mpmath.isinf(z):
        # softplus(z) - t z: z = +inf -> (1 - t) * inf (NaN-free only if t < 1; t = 1 -> 0 by limit)
        if z == INF:
            return [(mpmath.mpf(0), 0) if t == 1 else (INF, 0)]
        return [(mpmath.mpf(0), 0) if t == 0 else (INF, 0)]
    # softplus(z) - t z = a + log1p(exp(-|z|)) with a = (1 - t) z (z > 0) or -t z (z <= 0) exact:
    # no cancellation between softplus(z) ~ z and t z (t = 1, z = 1e38: the value is
    # e^-1e38, rounding to +0; z (1 - t) an exact float64 tie plus e^-z decides by the sign)
    if z > 0:
        a = mpmath.fmul(_one_minus(t), z, exact=True)
        b = mp.log1p(mp.exp(-z))
    else:
        a = mpmath.fneg(mpmath.fmul(t, z, exact=True), exact=True)
        b = mp.log1p(mp.exp(z))
    return [_exact_plus_small(a, b)]


def binary_cross_entropy(p, t):
    """-(t log p + (1 - t) log(1 - p)), exact (no clamping), 0 log 0 = 0."""
    a = _xlogy(t, p)
    b = _xlogy(_one_minus(t), _one_minus(p))
    if _isnan(a) or _isnan(b):
        return [(NAN, 0)]
    if mpmath.isinf(a) or mpmath.isinf(b):
        v = -(a + b)
        return [(v, 0)]
    return [(-(a + b), abs(a) + abs(b))]


def self_information_bits(p):
    if _isnan(p):
        return [(NAN, 0)]
    if p == 0:
        return [(INF, 0)]
    v = -mp.log(p) / mp.ln2
    return [(v, abs(v))]


def binary_entropy_bits(p):
    a = _xlogy(p, p)
    q = _one_minus(p)
    b = _xlogy(q, q)
    if _isnan(a) or _isnan(b):
        return [(NAN, 0)]
    v = -(a + b) / mp.ln2
    return [(v, (abs(a) + abs(b)) / mp.ln2)]


# ---------------------------------------------------------------- probability rows


def entropy(p):
    terms = [_xlogy(v, v) for v in p]
    if any(_isnan(t) for t in terms):
        return [(NAN, 0)]
    if any(mpmath.isinf(t) for t in terms):
        return [(-mp.fsum(terms), 0)]
    return [(-mp.fsum(terms), mp.fsum(abs(t) for t in terms))]


def entropy_bits(p):
    (v, s), = entropy(p)
    return [(v / mp.ln2, s / mp.ln2)]


def kl_divergence(p, q):
    """sum p_i log(p_i / q_i); 0 where p_i = 0; +inf where p_i > 0 = q_i."""
    terms = []
    for a, b in zip(p, q):
        if _isnan(a) or _isnan(b):
            return [(NAN, 0)]
        if a == 0:
            continue
        if b == 0:
            return [(INF, 0)]
        terms.append(a * mp.log(a / b))
    if not terms:
        return [(mpmath.mpf(0), 0)]
    return [(mp.fsum(terms), mp.fsum(abs(t) for t in terms))]


def cross_entropy_probs(p, q):
    """-sum p_i log q_i; 0 where p_i = 0; +inf where p_i > 0 = q_i."""
    terms = [_xlogy(a, b) for a, b in zip(p, q)]
    if any(_isnan(t) for t in terms):
        return [(NAN, 0)]
    if any(mpmath.isinf(t) for t in terms):
        return [(-mp.fsum(terms), 0)]
    return [(-mp.fsum(terms), mp.fsum(abs(t) for t in terms))]


def gaussian_kl(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)) = 0.5 sum(expm1(logvar) - logvar + mu^2)."""
    terms = []
    for m, lv in zip(mu, logvar):
        if _isnan(m) or _isnan(lv):
            return [(NAN, 0)]
        if lv == INF or mpmath.isinf(m):
            return [(INF, 0)]
        if lv == NINF:
            return [(INF, 0)]  # -logvar -> +inf
        terms += [mp.expm1(lv), -lv, m * m]
    val = mp.fsum(terms) / 2
    return [(val, mp.fsum(abs(t) for t in terms) / 2)]


# ---------------------------------------------------------------- joint tables


def _marginals(P):
    px = [mp.fsum(row) for row in P]
    py = [mp.fsum(P[i][j] for i in range(len(P))) for j in range(len(P[0]))]
    return px, py


def _table_nan(P):
    return any(_isnan(v) for row in P for v in row)


def joint_entropy(P):
    """H(X, Y) = -sum P_xy log P_xy (table rows index x, columns y)."""
    return entropy([v for row in P for v in row])


def conditional_entropy(P):
    """H(Y | X) = -sum P_xy log(P_xy / P_x), P_x = sum_y P_xy."""
    if _table_nan(P):
        return [(NAN, 0)]
    px, _ = _marginals(P)
    terms = []
    for i, row in enumerate(P):
        for v in row:
            if v == 0:
                continue
            terms.append(v * mp.log(v / px[i]))
    if not terms:
        return [(mpmath.mpf(0), 0)]
    return [(-mp.fsum(terms), mp.fsum(abs(t) for t in terms))]


def mutual_information(P):
    """I(X; Y) = sum P_xy log(P_xy / (P_x P_y))."""
    if _table_nan(P):
        return [(NAN, 0)]
    px, py = _marginals(P)
    terms = []
    for i, row in enumerate(P):
        for j, v in enumerate(row):
            if v == 0:
                continue
            terms.append(v * mp.log(v / (px[i] * py[j])))
    if not terms:
        return [(mpmath.mpf(0), 0)]
    return [(mp.fsum(terms), mp.fsum(abs(t) for t in terms))]


# ---------------------------------------------------------------- large-vocabulary losses


def _sampled_terms(z, y, samples, log_q):
    """[a_y] + [a_s for s in samples if s != y], a_j = z_j - log q_j formed exactly."""
    idx = [y] + [s for s in samples if s != y]  # accidental hits removed, duplicates kept
    return [mpmath.fsub(z[j], log_q[j], exact=True) for j in idx]


def sampled_softmax_cross_entropy(z, y, samples, log_q):
    """-a_y + logsumexp(a_T), T = [y] + samples without y, a_j = z_j - log q_j (exact).

    It is the cross-entropy of the corrected logits a_T with target 0, so the same split
    (max m of a_T; (m - a_y) exact + log1p(sum exp(a_j - m))) and the same conventions: a NaN
    term -> NaN; a_y = -inf -> +inf unless every term is -inf (NaN); a_y = +inf -> NaN.
    """
    return cross_entropy(_sampled_terms(z, y, samples, log_q), 0)


def _dot(w, x):
    """sum_k w_k x_k exactly: every product formed exactly, summed exactly (no rounding at all);
    a NaN product or +inf and -inf products -> NaN, otherwise an infinite product wins."""
    prods = [mpmath.fmul(a, b, exact=True) for a, b in zip(w, x)]
    if any(_isnan(t) for t in prods):
        return NAN
    infs = {t for t in prods if _isinf(t)}
    if infs:
        return NAN if len(infs) == 2 else infs.pop()
    total = mpmath.mpf(0)
    for t in prods:
        total = mpmath.fadd(total, t, exact=True)
    return total


def adaptive_log_softmax(h, head_weight, proj_1, out_1, proj_2, out_2):
    """log p(c | h) of the two-cluster adaptive softmax (AdaptiveLogSoftmaxWithLoss, no head bias).

    head = log_softmax(W_head h) over S shortlist + 2 cluster entries; class c < S: head[c];
    c in cluster i: head[S + i] + log_softmax(O_i (P_i h))[c - start_i]. Every matrix product
    is exact (exact products of the float inputs, summed exactly: the projected hidden state
    P_i h and the tail logits O_i (P_i h) are exact real numbers), so the only roundings are
    those of the log-softmaxes (see :func:`log_softmax`, whose -inf / NaN conventions apply to
    each softmax) and of the final sum head[S + i] + tail[c].
    """
    S = len(head_weight) - 2
    lh = log_softmax([_dot(row, h) for row in head_weight])
    out = list(lh[:S])
    for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2))):
        u = [_dot(row, h) for row in P]
        lt = log_softmax([_dot(row, u) for row in O])
        gv, gs = lh[S + i]
        for v, s in lt:
            val = gv + v
            out.append((val, gs + s + abs(gv) + abs(v) if mpmath.isfinite(val) else 0))
    return out


def formula(name: str):
    """The exact formula of the registry's quantity ``name``: a function of one unit's values
    (mpf numbers, lists of them, int labels) returning a list of (value, error scale)."""
    f = globals().get(name)
    if name.startswith("_") or not callable(f) or name == "formula":
        raise KeyError(f"no exact formula for {name!r}")
    return f

"""The two scales of an element's error: N (conditioning) and S (a stable algorithm's envelope).

**N = sum_j |dy/dx_j| |x_j|** over every float input x_j that output y depends on (a row's
entries for row quantities, both arguments of elementwise ones, and the scalar arguments T / eps /
beta): to first order, perturbing every input by a relative u moves y by at most u N. So no
algorithm whose inputs carry a relative error u can promise better than about u (N + |y*|), and
kappa = N / |y*| is the componentwise relative condition number.

N is evaluated in float64 from the closed-form first derivatives (those of
:mod:`infoaudit.reference.derivatives`, written as stable float64 expressions here): every sum
is of non-negative terms, exclude-one sums (1 - p_i, sum_{j != i} p_j |z_j|) are prefix + suffix
sums (no cancellation), and softmax weights come from the max-shifted exponentials, so N carries
a relative error below about 2^-40 where no derivative itself cancels (sigmoid(z) - t, p_j - t_j,
log(p / q) + 1: there its absolute error is below about 2^-50 times the terms' scale). A
condition number needs a few digits; ``N_SAFETY`` = 1 + 2^-20 is the stated margin the grades
multiply N by, so the conditioned allowance is never below its exact value through N's own
rounding. tests/test_judging.py checks N against the 96-bit :func:`infoaudit.judging.condition.forward_condition`.

Conventions (as in ``forward_condition``): an input that is 0 or non-finite is not moved by a
relative perturbation and contributes nothing; a partial derivative that is infinite at a finite
nonzero input (the boundary of a log's domain: binary entropy at p = 1, BCE's d/dt at p = 1)
has no first-order bound and contributes nothing either (that element is judged by its ULPs and
its envelope); N is NaN where the exact value is undefined (NaN / +inf logits) and +inf where it
exceeds float64's range.

**S** is the gate's forced-error scale, now the one definition (``SCALES``: per quantity the
function and its one-line reason): the magnitudes of the terms of the exact formula and of the
intermediates whose rounding reaches the result (for a few quantities plus the componentwise
condition, stated in the reason). A stable algorithm evaluates each term with a relative error
of a few u, so it loses at most a small multiple of u S, whatever cancellation the formula has
(KL of p = q, Gaussian KL near logvar = 0, cross-entropy of a confident prediction). S is 0 where
it is undefined (a non-finite exact value, judged as non-finite) and float64's max where it
overflows.
"""
from __future__ import annotations

import math

import numpy as np

from .. import quantities as Q

__all__ = ["N_SAFETY", "SCALES", "sensitivity", "envelope", "scale_reason", "reduction_length", "table_shape",
           "as_float64_args"]

N_SAFETY = 1.0 + 2.0 ** -20
LN2 = math.log(2.0)


def _quiet():
    return np.errstate(all="ignore")


def as_float64_args(q, inputs) -> list:
    """The arguments as the judge computes with them: float arrays widened exactly to float64
    (bfloat16 included), labels int64, scalars float."""
    out = []
    for arg, v in zip(q.args, inputs):
        if arg.is_float_array:
            out.append(np.asarray(v).astype(np.float64))
        elif arg.kind in Q.INDEX_KINDS:
            out.append(np.asarray(v).astype(np.int64))
        else:
            out.append(float(v))
    return out


def reduction_length(quantity, inputs) -> int:
    """n of c(n): the row length (row quantities), nx * ny (tables) or 1 (elementwise)."""
    q = Q.get(quantity)
    first = np.asarray(next(v for v, arg in zip(inputs, q.args) if arg.is_float_array))
    if q.structure in (Q.ROW, Q.ROW_REDUCE):
        return int(first.shape[-1])
    if q.structure == Q.TABLE_REDUCE:
        return int(first.shape[-1] * first.shape[-2])
    if q.structure == Q.ADAPTIVE:  # the longest dot product (d) plus the longest softmax
        d, S, o1, o2, _ = Q.adaptive_sizes([np.asarray(v) for v in inputs])
        return int(d + max(S + 2, o1, o2))
    return 1


def table_shape(quantity, inputs) -> tuple:
    """(nx, ny) of a table quantity's input (None for the others)."""
    q = Q.get(quantity)
    if q.structure != Q.TABLE_REDUCE:
        return None
    first = np.asarray(next(v for v, arg in zip(inputs, q.args) if arg.is_float_array))
    return int(first.shape[-2]), int(first.shape[-1])


# ---------------------------------------------------------------- shared float64 pieces


def _fin_abs(x):
    """|x| where x is finite, 0 elsewhere (0 and non-finite inputs are not moved)."""
    with _quiet():
        return np.where(np.isfinite(x), np.abs(x), 0.0)


def _exclude_one(a, axis=-1):
    """sum_{j != i} a_j for every i along ``axis``: the sum before i plus the sum after i, each
    of non-negative terms (a_j >= 0), so no cancellation even where a_i dominates."""
    a = np.moveaxis(a, axis, -1)
    zero = np.zeros_like(a[..., :1])
    before = np.concatenate([zero, np.cumsum(a, axis=-1)[..., :-1]], axis=-1)
    after = np.concatenate([np.cumsum(a[..., ::-1], axis=-1)[..., ::-1][..., 1:], zero], axis=-1)
    return np.moveaxis(before + after, -1, axis)


def _softmax_rows(z):
    """(p, w = p |z|, bad) of logit rows: p by the max-shifted exponentials (0 at -inf), w with
    0 where p or z is not finite, bad = the row holds NaN or +inf (N undefined)."""
    with _quiet():
        fin = np.isfinite(z)
        zf = np.where(fin, z, -np.inf)
        m = np.max(zf, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(zf - m)
        s = np.sum(e, axis=-1, keepdims=True)
        p = np.where(s > 0, e / np.where(s > 0, s, 1.0), 0.0)
        w = p * _fin_abs(z)
        bad = np.any(np.isnan(z) | (z == np.inf), axis=-1)
    return p, w, bad


def _sigmoid(x):
    with _quiet():
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _log1p_ratio(p):
    """log((1 - p) / p) = log1p((1 - 2p) / p) for 0 < p < 1 (log1p(-p) - log p where the ratio
    overflows: p subnormal)."""
    with _quiet():
        r = (1 - 2 * p) / p
        return np.where(np.isfinite(r), np.log1p(r), np.log1p(-p) - np.log(p))


# ---------------------------------------------------------------- N per quantity


def _n_softmax(z, log=False):
    p, w, bad = _softmax_rows(z)
    rest = _exclude_one(p)            # 1 - p_i without cancellation
    others = _exclude_one(w)          # sum_{j != i} p_j |z_j|
    n = rest * _fin_abs(z) + others   # sum_j |delta_ij - p_j| |z_j|
    if not log:
        n = p * n
    return np.where(bad[..., None], np.nan, n)


def _n_log_softmax(z):
    return _n_softmax(z, log=True)


def _n_logsumexp(z):
    p, w, bad = _softmax_rows(z)
    return np.where(bad, np.nan, np.sum(w, axis=-1))


def _take(a, y):
    return np.take_along_axis(a, y[..., None].astype(np.int64), axis=-1)[..., 0]


def _n_cross_entropy(z, y):
    p, w, bad = _softmax_rows(z)
    n = _take(_exclude_one(p), y) * _take(_fin_abs(z), y) + _take(_exclude_one(w), y)
    return np.where(bad, np.nan, n)


def _n_nll_loss(logp, y):
    return _take(_fin_abs(logp), y)


def _n_label_smoothing(z, y, eps):
    p, w, bad = _softmax_rows(z)
    K = z.shape[-1]
    onehot = np.arange(K) == y[..., None]
    t = eps / K + np.where(onehot, 1.0 - eps, 0.0)
    with _quiet():
        one_minus_t = np.where(onehot, eps - eps / K, 1.0 - eps / K)
        pt = np.where(p > 0.5, one_minus_t - _exclude_one(p), p - t)    # p - t, no cancellation at p ~ 1
        n = np.sum(np.abs(pt) * _fin_abs(z), axis=-1)
        allfin = np.all(np.isfinite(z), axis=-1)
        zy = _take(np.where(np.isfinite(z), z, 0.0), y)
        de = np.abs(np.mean(zy[..., None] - np.where(np.isfinite(z), z, 0.0), axis=-1))  # d/deps = z_y - mean z
        n = n + np.where(allfin & (eps != 0), de * abs(eps), 0.0)
    return np.where(bad, np.nan, n)


def _kl_logits_n(a, b, T, factor):
    """N of factor * KL(softmax(a / T) || softmax(b / T)) over a and b (the scalar's term is added
    by the caller): dKL/da_j = pa_j (d_j - D) / T^2 (d = a - b, D = sum pa d), dKL/db_j =
    (pb_j - pa_j) / T. ``factor`` scales both (T^2 for distillation, beta for RLHF).

    Cancellation-free where it matters: d is centred at the entry k that holds pa's mass
    (d_k - D = -sum_{j != k} pa_j (d_j - d_k)), and pb_j - pa_j is (1 - pa_j) - (1 - pb_j) from
    exclude-one sums where either weight exceeds 1/2."""
    with _quiet():
        pa, _, bad_a = _softmax_rows(a / T)
        pb, _, bad_b = _softmax_rows(b / T)
        live = pa > 0
        k = np.argmax(pa, axis=-1)[..., None]
        d = np.where(live, a - b, 0.0)
        dc = np.where(live, d - np.take_along_axis(d, k, axis=-1), 0.0)
        D = np.sum(pa * dc, axis=-1, keepdims=True)
        da = np.where(live, pa * (dc - D), 0.0) / (T * T)
        big = np.maximum(pa, pb) > 0.5
        diff = np.where(big, _exclude_one(pa) - _exclude_one(pb), pb - pa)
        db = diff / T
        n = abs(factor) * (np.sum(np.abs(da) * _fin_abs(a), axis=-1) + np.sum(np.abs(db) * _fin_abs(b), axis=-1))
        bad = bad_a | bad_b | np.any(live & ~(pb > 0) & np.isneginf(b), axis=-1)
    return n, pa, pb, live, dc, D, k, bad


def _kl_of_logits_f64(a, b):
    """float64 KL(softmax(a) || softmax(b)) through log-softmaxes (for N's scalar term when no
    exact value is given)."""
    with _quiet():
        def logsm(z):
            fin = np.where(np.isfinite(z), z, -np.inf)
            m = np.max(fin, axis=-1, keepdims=True)
            m = np.where(np.isfinite(m), m, 0.0)
            return z - (m + np.log(np.sum(np.exp(fin - m), axis=-1, keepdims=True)))
        la, lb = logsm(a), logsm(b)
        pa = np.exp(la)
        return np.sum(np.where(pa > 0, pa * (la - lb), 0.0), axis=-1)


def _n_distillation(zs, zt, T, y=None):
    # L = T^2 KL(softmax(zt / T) || softmax(zs / T)); a = zt (teacher), b = zs (student)
    n, pa, pb, live, dc, D, k, bad = _kl_logits_n(zt, zs, T, T * T)
    with _quiet():
        kl = _kl_of_logits_f64(zt / T, zs / T) if y is None else np.asarray(y) / (T * T)
        ac = np.where(live, zt - np.take_along_axis(np.where(live, zt, 0.0), k, axis=-1), 0.0)
        abar = np.sum(pa * ac, axis=-1, keepdims=True)
        c1 = np.sum(pa * (ac - abar) * (dc - D), axis=-1)                       # sum pa (a - abar) d
        fb = np.isfinite(zs)
        bc = np.where(fb, zs - np.max(np.where(fb, zs, -np.inf), axis=-1, keepdims=True), 0.0)
        c2 = np.sum(np.where((pa > 0) | (pb > 0), (pa - pb) * bc, 0.0), axis=-1)  # sum (pa - pb) b
        dT = 2 * T * kl - c1 / T + c2                                             # dL/dT
        n = n + np.where(np.isfinite(dT), np.abs(dT) * abs(T), 0.0)
    return np.where(bad, np.nan, n)


def _n_rlhf(zp, zr, beta, y=None):
    n, pa, pb, live, dc, D, k, bad = _kl_logits_n(zp, zr, 1.0, beta)
    with _quiet():
        if beta != 0:
            kl = _kl_of_logits_f64(zp, zr) if y is None else np.asarray(y) / beta
            n = n + np.where(np.isfinite(kl), np.abs(kl) * abs(beta), 0.0)          # dL/dbeta = KL
    return np.where(bad, np.nan, n)


def _n_sigmoid(x):
    s = _sigmoid(x)
    return s * _sigmoid(-x) * _fin_abs(x)


def _n_softplus(x):
    return _sigmoid(x) * _fin_abs(x)


def _n_log_sigmoid(x):
    return _sigmoid(-x) * _fin_abs(x)


def _n_self_information_bits(p):
    with _quiet():
        return np.where((p > 0) & np.isfinite(p), 1 / LN2, np.where(np.isnan(p), np.nan, 0.0))


def _n_binary_entropy_bits(p):
    with _quiet():
        inside = (p > 0) & (p < 1)
        return np.where(inside, p * np.abs(_log1p_ratio(np.where(inside, p, 0.5))) / LN2,
                        np.where(np.isnan(p), np.nan, 0.0))


def _n_bce(p, t):
    with _quiet():
        inside = (p > 0) & (p < 1)
        pi = np.where(inside, p, 0.5)
        dp = np.where(inside, np.abs(p - t) / (1 - pi), np.where((p == 1) & (t == 1), 1.0, 0.0))
        dp = np.where((p == 1) & (t < 1), np.inf, dp)                 # the exact value is +inf there
        dt = np.where(inside, t * np.abs(_log1p_ratio(pi)), 0.0)
        return np.where(np.isnan(p) | np.isnan(t), np.nan, dp + dt)


def _n_bce_logits(z, t):
    with _quiet():
        fz = np.isfinite(z)
        s = _sigmoid(z)
        dz = np.where(z >= 0, (1 - t) - _sigmoid(-z), s - t)       # sigmoid(z) - t
        n = np.where(fz, np.abs(dz) * np.abs(z) + np.abs(z) * _fin_abs(t), 0.0)
        return np.where(np.isnan(z) | np.isnan(t), np.nan, n)


def _n_entropy(p, bits=False):
    with _quiet():
        live = (p > 0) & np.isfinite(p)
        lp = np.log(np.where(live, p, 1.0))
        n = np.sum(np.where(live, p * np.abs(lp + 1), 0.0), axis=-1)
        n = np.where(np.any(np.isnan(p), axis=-1), np.nan, n)
    return n / LN2 if bits else n


def _n_entropy_bits(p):
    return _n_entropy(p, bits=True)


def _n_kl(p, q):
    with _quiet():
        live = (p > 0) & np.isfinite(p)
        lr = np.log(np.where(live, p, 1.0)) - np.log(np.where(live, q, 1.0))   # log(p / q); q = 0 -> +inf
        n = np.sum(np.where(live, p * (np.abs(lr + 1) + 1), 0.0), axis=-1)      # |dp| p + |dq| q = ... + p
        return np.where(np.any(np.isnan(p) | np.isnan(q), axis=-1), np.nan, n)


def _n_cross_entropy_probs(p, q):
    with _quiet():
        live = (p > 0) & np.isfinite(p)
        lq = np.log(np.where(live, q, 1.0))
        n = np.sum(np.where(live, p * (np.abs(lq) + 1), 0.0), axis=-1)
        return np.where(np.any(np.isnan(p) | np.isnan(q), axis=-1), np.nan, n)


def _n_gaussian_kl(mu, logvar):
    with _quiet():
        a = np.sum(np.where(np.isfinite(mu), mu * mu, 0.0), axis=-1)
        fl = np.isfinite(logvar)
        b = np.sum(np.where(fl, np.abs(np.expm1(np.where(fl, logvar, 0.0)) / 2) * np.abs(logvar), 0.0), axis=-1)
        return np.where(np.any(np.isnan(mu) | np.isnan(logvar), axis=-1), np.nan, a + b)


def _flat(P):
    return P.reshape(P.shape[:-2] + (-1,))


def _n_joint_entropy(P):
    return _n_entropy(_flat(P))


def _n_conditional_entropy(P):
    # dH(Y|X)/dP_xy = log(P_x / P_xy) = log1p(sum_{y' != y} P_xy' / P_xy)
    with _quiet():
        live = (P > 0) & np.isfinite(P)
        rest = _exclude_one(np.where(np.isfinite(P), P, 0.0))
        Pl = np.where(live, P, 1.0)
        r = rest / Pl
        lg = np.where(np.isfinite(r), np.log1p(r), np.log(rest) - np.log(Pl))   # ratio overflows: P subnormal
        n = np.sum(np.where(live, P * lg, 0.0), axis=(-2, -1))
        return np.where(np.any(np.isnan(P), axis=(-2, -1)), np.nan, n)


def _n_mutual_information(P):
    # dI/dP_xy = log(P_xy / (P_x P_y)) - 1
    with _quiet():
        live = (P > 0) & np.isfinite(P)
        px = np.sum(P, axis=-1, keepdims=True)
        py = np.sum(P, axis=-2, keepdims=True)
        g = np.log(np.where(live, P, 1.0)) - np.log(np.where(live, px, 1.0)) - np.log(np.where(live, py, 1.0)) - 1
        n = np.sum(np.where(live, P * np.abs(g), 0.0), axis=(-2, -1))
        return np.where(np.any(np.isnan(P), axis=(-2, -1)), np.nan, n)


def _sampled_parts(z, y, samples, log_q):
    """(p, zt, lt, bad) over T = [y] + samples: p = softmax(a_T) with hits at weight 0, the
    gathered z and log q, bad = NaN or +inf among the corrected terms (N undefined)."""
    idx = np.concatenate([y[..., None], samples], axis=-1).astype(np.int64)
    zt = np.take_along_axis(z, idx, axis=-1)
    lt = np.take_along_axis(log_q, idx, axis=-1)
    with _quiet():
        a = zt - lt
        hit = np.concatenate([np.zeros(y.shape + (1,), bool), samples == y[..., None]], axis=-1)
        a = np.where(hit, -np.inf, a)
        p, _, bad = _softmax_rows(a)
    return p, zt, lt, bad


def _n_sampled_softmax(z, y, samples, log_q):
    # dL/da_t = p_t - [t = 0]: the target's is -(sum_{t > 0} p_t); a_t = z_t - log q_t, so each
    # gathered entry contributes |dL/da_t| (|z_t| + |log q_t|) (duplicates have equal signs)
    p, zt, lt, bad = _sampled_parts(z, y, samples, log_q)
    with _quiet():
        w = _fin_abs(zt) + _fin_abs(lt)
        rest = np.sum(p[..., 1:], axis=-1)
        n = rest * w[..., 0] + np.sum(np.where(p[..., 1:] > 0, p[..., 1:] * w[..., 1:], 0.0), axis=-1)
    return np.where(bad, np.nan, n)


def _adaptive_parts(h, head, p1, o1, p2, o2):
    """Per row: the head's softmax P and |W||h| products A, and per cluster the tail softmax and
    its magnitudes B (|O||u| + |O||P||h|: u = P h's own rounding and conditioning propagated)."""
    with _quiet():
        ah = np.abs(h)
        lh = h @ head.T
        P, _, badh = _softmax_rows(lh)
        A = ah @ np.abs(head).T
        tails = []
        for Pm, O in ((p1, o1), (p2, o2)):
            u = h @ Pm.T
            t = u @ O.T
            Pt, _, badt = _softmax_rows(t)
            B = np.abs(u) @ np.abs(O).T + (ah @ np.abs(Pm).T) @ np.abs(O).T
            tails.append((Pt, B, t, badt))
    return lh, P, A, badh, tails


def _lsm_n(P, A):
    """Upper bound of N of log_softmax(l)_c with l_k = sum_j W_kj x_j and A_k = sum_j |W_kj x_j|:
    sum_k |[k = c] - P_k| 2 A_k (W and x both move; triangle inequality over the inner sums)."""
    return 2 * (_exclude_one(P) * A + _exclude_one(P * A))


def _n_adaptive(h, head, p1, o1, p2, o2):
    lh, P, A, badh, tails = _adaptive_parts(h, head, p1, o1, p2, o2)
    S = head.shape[0] - 2
    with _quiet():
        nh = _lsm_n(P, A)
        parts = [nh[:, :S]]
        for i, (Pt, B, t, badt) in enumerate(tails):
            parts.append(nh[:, S + i:S + i + 1] + _lsm_n(Pt, B) + np.where(badt, np.nan, 0.0)[:, None])
        n = np.concatenate(parts, axis=-1)
    return np.where(badh[:, None], np.nan, n)


_SENSITIVITY = {
    "softmax": _n_softmax, "log_softmax": _n_log_softmax, "logsumexp": _n_logsumexp,
    "sigmoid": _n_sigmoid, "softplus": _n_softplus, "log_sigmoid": _n_log_sigmoid,
    "entropy": _n_entropy, "entropy_bits": _n_entropy_bits, "self_information_bits": _n_self_information_bits,
    "binary_entropy_bits": _n_binary_entropy_bits, "kl_divergence": _n_kl,
    "cross_entropy_probs": _n_cross_entropy_probs, "cross_entropy": _n_cross_entropy, "nll_loss": _n_nll_loss,
    "binary_cross_entropy": _n_bce, "binary_cross_entropy_with_logits": _n_bce_logits,
    "label_smoothing_cross_entropy": _n_label_smoothing, "distillation_loss": _n_distillation,
    "rlhf_kl_penalty": _n_rlhf, "gaussian_kl": _n_gaussian_kl, "joint_entropy": _n_joint_entropy,
    "conditional_entropy": _n_conditional_entropy, "mutual_information": _n_mutual_information,
    "sampled_softmax_cross_entropy": _n_sampled_softmax, "adaptive_log_softmax": _n_adaptive,
}
_NEEDS_VALUE = ("distillation_loss", "rlhf_kl_penalty")  # their scalar argument's partial is y / T, y / beta


def sensitivity(quantity, inputs, exact_hi=None) -> np.ndarray:
    """N = sum_j |dy/dx_j| |x_j| of every output element (float64, output shape), without the
    safety factor. ``inputs`` in the DESIGN table's order (any audited float dtype). ``exact_hi``
    (optional, float64): N is NaN where it is not finite, and it gives the scalar argument's
    partial of distillation / RLHF (y / T, y / beta); without it that partial uses a float64 KL
    estimate, whose absolute error is about 2^-52 times the log-softmax terms."""
    q = Q.get(quantity)
    vals = as_float64_args(q, inputs)
    shape = Q.output_shape(q, vals)
    if q.structure == Q.ELEMENTWISE:
        vals = [np.broadcast_to(v, shape) if isinstance(v, np.ndarray) else v for v in vals]
    fn = _SENSITIVITY[q.name]
    with _quiet():
        if q.name in _NEEDS_VALUE:
            y = None if exact_hi is None else np.where(np.isfinite(exact_hi), exact_hi, np.nan)
            n = fn(*vals, y=y)
        else:
            n = fn(*vals)
    n = np.asarray(np.broadcast_to(n, shape), dtype=np.float64)
    if exact_hi is not None:  # no condition number where the exact value is not finite
        n = np.where(np.isfinite(np.asarray(exact_hi, dtype=np.float64)), n, np.nan)
    return n


# ---------------------------------------------------------------- S per quantity (the gate's table)


def _lse_parts(z):
    """m (max finite entry, 0 for an all -inf row), s = sum exp(z - m), p = softmax, lse."""
    with _quiet():
        fin = np.where(np.isfinite(z), z, -np.inf)
        m = np.max(fin, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(z - m)
        s = np.sum(e, axis=-1, keepdims=True)
        p = e / s
        lse = m + np.log(s)
    return m, s, p, lse


def _wsum(p, x, axis=-1):
    """sum of p * x over axis, with 0 * anything = 0."""
    with _quiet():
        return np.sum(np.where(p > 0, p * x, 0.0), axis=axis)


def _softplus(x):
    with _quiet():
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _xlogy_abs(x, y):
    with _quiet():
        return np.where(x > 0, np.abs(x * np.log(y)), 0.0)


def _s_softmax(z):
    m, s, p, lse = _lse_parts(z)
    k = _wsum(p, _fin_abs(z))[..., None]
    with _quiet():
        return np.where(p > 0, p * (1 + _fin_abs(z) + k), 0.0)


def _s_log_softmax(z):
    m, s, p, lse = _lse_parts(z)
    with _quiet():
        return _fin_abs(z) + np.abs(m) + np.log(s) + 1


def _s_logsumexp(z):
    m, s, p, lse = _lse_parts(z)
    with _quiet():
        return (np.abs(m) + np.log(s) + 1)[..., 0]


def _s_sigmoid(x):
    y = _sigmoid(x)
    return y * (1 + _fin_abs(x) * (1 - y))


def _s_softplus(x):
    return _fin_abs(_softplus(x)) + _sigmoid(x) * _fin_abs(x)


def _s_log_sigmoid(x):
    return _fin_abs(_softplus(-x)) + _sigmoid(-x) * _fin_abs(x)


def _s_entropy(p):
    return np.sum(_fin_abs(_xlogy_abs(p, p)), axis=-1)


def _s_entropy_bits(p):
    return _s_entropy(p) / LN2


def _s_self_information_bits(p):
    with _quiet():
        return _fin_abs(np.log2(p)) + 1 / LN2


def _s_binary_entropy_bits(p):
    with _quiet():
        q = 1 - p
        cond = np.where((p > 0) & (q > 0), p * np.abs(np.log(q) - np.log(p)), 0.0)
        return (_fin_abs(_xlogy_abs(p, p)) + _fin_abs(np.where(q > 0, np.abs(q * np.log1p(-p)), 0.0)) + cond) / LN2


def _s_kl(p, q):
    with _quiet():
        return _wsum(p, _fin_abs(np.log(p)) + _fin_abs(np.log(q)))


def _s_cross_entropy_probs(p, q):
    with _quiet():
        return _wsum(p, _fin_abs(np.log(q)))


def _s_cross_entropy(z, y):
    m, s, p, lse = _lse_parts(z)
    with _quiet():
        return np.abs(m[..., 0]) + np.log(s[..., 0]) + 1 + _fin_abs(_take(z, y))


def _s_nll_loss(logp, y):
    return np.zeros(logp.shape[:-1])


def _s_bce(p, t):
    with _quiet():
        a = np.where(t > 0, _fin_abs(t * np.log(p)), 0.0)
        b = np.where(t < 1, _fin_abs((1 - t) * np.log1p(-p)), 0.0)
        kp = np.where((p > 0) & (p < 1), np.abs(-t + (1 - t) * p / (1 - p)), 0.0)
        kt = np.where((p > 0) & (p < 1), t * np.abs(np.log(p) - np.log1p(-p)), 0.0)
        return _fin_abs(a + b + kp + kt)


def _s_bce_logits(z, t):
    with _quiet():
        sp = _fin_abs(_softplus(z))
        return sp + 2 * _fin_abs(t * z) + np.abs(_sigmoid(z) - t) * _fin_abs(z)


def _s_label_smoothing(z, y, eps):
    m, s, p, lse = _lse_parts(z)
    K = z.shape[-1]
    with _quiet():
        return (np.abs(m[..., 0]) + np.log(s[..., 0]) + 1 + (1 - eps) * _fin_abs(_take(z, y))
                + (eps / K) * np.sum(_fin_abs(z), axis=-1))


def _s_kl_logits(za, zb, T):
    """T^2-free scale of KL(softmax(za/T) || softmax(zb/T)) computed via log-softmaxes."""
    with _quiet():
        a = za / T
        b = zb / T
        ma, sa, pa, la = _lse_parts(a)
        mb, sb, pb, lb = _lse_parts(b)
        inner = _fin_abs(a - la) + _fin_abs(b - lb) + _fin_abs(a) + _fin_abs(b) + np.abs(ma) + np.abs(mb)
        return _wsum(pa, inner) + 2


def _s_distillation(zs, zt, T):
    return T * T * _s_kl_logits(zt, zs, T)


def _s_rlhf(zp, zr, beta):
    return abs(beta) * _s_kl_logits(zp, zr, 1.0)


def _s_gaussian_kl(mu, logvar):
    with _quiet():
        return 0.5 * np.sum(_fin_abs(np.exp(logvar)) + 1 + _fin_abs(logvar) + _fin_abs(mu * mu), axis=-1)


def _s_joint_entropy(P):
    return _s_entropy(_flat(P))


def _s_conditional_entropy(P):
    with _quiet():
        px = np.sum(P, axis=-1, keepdims=True)
        w = _fin_abs(np.log(P)) + _fin_abs(np.log(px)) + 1
        return np.sum(np.where(P > 0, P * w, 0.0), axis=(-2, -1))


def _s_mutual_information(P):
    with _quiet():
        px = np.sum(P, axis=-1, keepdims=True)
        py = np.sum(P, axis=-2, keepdims=True)
        w = _fin_abs(np.log(P)) + _fin_abs(np.log(px)) + _fin_abs(np.log(py)) + 2
        return np.sum(np.where(P > 0, P * w, 0.0), axis=(-2, -1))


def _s_sampled_softmax(z, y, samples, log_q):
    p, zt, lt, bad = _sampled_parts(z, y, samples, log_q)
    with _quiet():
        a = np.where(np.concatenate([np.zeros(y.shape + (1,), bool), samples == y[..., None]], -1), -np.inf, zt - lt)
        m, s, _, _ = _lse_parts(a)
        w = _fin_abs(zt) + _fin_abs(lt)
        return (np.abs(m[..., 0]) + np.log(s[..., 0]) + 1 + _fin_abs(a[..., 0]) + w[..., 0]
                + np.sum(np.where(p > 0, p * w, 0.0), axis=-1))


def _s_adaptive(h, head, p1, o1, p2, o2):
    lh, P, A, badh, tails = _adaptive_parts(h, head, p1, o1, p2, o2)
    S = head.shape[0] - 2

    def lsm_terms(l, P, mag):
        m, s, _, _ = _lse_parts(l)
        return _fin_abs(l) + np.abs(m) + np.log(s) + 1 + mag + np.sum(P * mag, axis=-1, keepdims=True)

    with _quiet():
        sh = lsm_terms(lh, P, A)
        parts = [sh[:, :S]] + [sh[:, S + i:S + i + 1] + lsm_terms(t, Pt, B)
                               for i, (Pt, B, t, _) in enumerate(tails)]
        return np.concatenate(parts, axis=-1)


# name -> (S of the float64 inputs, one-line statement of S and its reason)
SCALES = {
    "softmax": (_s_softmax, "S = p_i (1 + |z_i| + sum_j p_j |z_j|): componentwise condition number + 1"),
    "log_softmax": (_s_log_softmax, "S = |z_i| + |max z| + log s + 1: terms of z_i - m - log(sum exp(z - m))"),
    "logsumexp": (_s_logsumexp, "S = |max z| + log s + 1: terms of m + log(sum exp(z - m))"),
    "sigmoid": (_s_sigmoid, "S = y (1 + |x| (1 - y)): condition number + 1"),
    "softplus": (_s_softplus, "S = |y| + sigmoid(x) |x|: value + condition"),
    "log_sigmoid": (_s_log_sigmoid, "S = |y| + sigmoid(-x) |x|: value + condition"),
    "entropy": (_s_entropy, "S = sum |p_i log p_i|: terms of the sum"),
    "entropy_bits": (_s_entropy_bits, "S = sum |p_i log2 p_i|: terms of the sum"),
    "self_information_bits": (_s_self_information_bits, "S = |log2 p| + 1/ln 2: value + condition"),
    "binary_entropy_bits": (_s_binary_entropy_bits,
                            "S = (|p ln p| + |(1-p) ln(1-p)| + p |ln((1-p)/p)|)/ln 2: terms + condition"),
    "kl_divergence": (_s_kl, "S = sum p_i (|log p_i| + |log q_i|): terms of sum p_i (log p_i - log q_i)"),
    "cross_entropy_probs": (_s_cross_entropy_probs, "S = sum |p_i log q_i|: terms of the sum"),
    "cross_entropy": (_s_cross_entropy, "S = |max z| + log s + 1 + |z_y|: terms of lse(z) - z_y"),
    "nll_loss": (_s_nll_loss, "S = 0: an exact negation forces no error"),
    "binary_cross_entropy": (_s_bce, "S = |t log p| + |(1-t) log(1-p)| + condition in p and t"),
    "binary_cross_entropy_with_logits": (_s_bce_logits,
                                         "S = softplus(z) + 2|t z| + |sigmoid(z) - t||z|: terms + condition"),
    "label_smoothing_cross_entropy": (_s_label_smoothing,
                                      "S = |max z| + log s + 1 + (1-eps)|z_y| + eps/K sum|z_i|: terms of the exact formula"),
    "distillation_loss": (_s_distillation,
                          "S = T^2 (sum pt_i (|log pt_i| + |log ps_i| + |z/T| terms) + 2): terms of the log-softmax KL"),
    "rlhf_kl_penalty": (_s_rlhf,
                        "S = |beta| (sum pp_i (|log pp_i| + |log pr_i| + |z| terms) + 2): terms of the log-softmax KL"),
    "gaussian_kl": (_s_gaussian_kl, "S = 0.5 sum(exp(logvar) + 1 + |logvar| + mu^2): terms of the DESIGN formula"),
    "joint_entropy": (_s_joint_entropy, "S = sum |P log P|: terms of the sum"),
    "conditional_entropy": (_s_conditional_entropy, "S = sum P (|log P| + |log P_x| + 1): terms + marginal sums"),
    "mutual_information": (_s_mutual_information,
                           "S = sum P (|log P| + |log P_x| + |log P_y| + 2): terms + marginal sums"),
    "sampled_softmax_cross_entropy": (
        _s_sampled_softmax, "S = |max a| + log s + 1 + |a_y| + |z_y| + |log q_y| + sum_t p_t (|z_t| + |log q_t|): "
        "terms of lse(a_T) - a_y and the rounding of a_t = z_t - log q_t"),
    "adaptive_log_softmax": (
        _s_adaptive, "S = per log_softmax |l_c| + |max l| + log s + 1 + A_c + sum_k P_k A_k, A = |W||x| (the "
        "dot products' terms; tails add |O||u| + |O||P||h|), head and tail summed for cluster classes"),
}


def envelope(quantity, inputs) -> np.ndarray:
    """S of every output element (float64, output shape): 0 where undefined, float64's max where
    its terms overflow."""
    q = Q.get(quantity)
    vals = as_float64_args(q, inputs)
    shape = Q.output_shape(q, vals)
    with _quiet():
        s = np.asarray(SCALES[q.name][0](*vals), dtype=np.float64)
    s = np.where(np.isnan(s), 0.0, np.where(np.isinf(s), np.finfo(np.float64).max, s))
    return np.asarray(np.broadcast_to(s, shape), dtype=np.float64)


def scale_reason(quantity) -> str:
    """The one-line statement of S for a quantity."""
    return SCALES[Q.get(quantity).name][1]

"""NumPy members of the zoo (and the array-API-generic builder that zoo_jax reuses).

Stable members: the stable formula computed in float64 and rounded once to the input dtype
("f64"), and the same formula computed in the input dtype ("dtype"). Unstable members: the
textbook mistakes of the issue, one per function.
"""
from __future__ import annotations

import math

import numpy as np

from . import register

LN2 = math.log(2.0)
FRAMEWORK = "numpy"
MEMBERS: list = []


def build(xp, g, members, framework, wide, narrow, seq_sum, take, cast=None, stable_only=False, extra_tag=""):
    """Define every member with array module ``xp``.

    ``wide(x)`` widens an input for the "wide" route, ``narrow(y, like)`` rounds the result once to
    the input's dtype, ``seq_sum(e)`` sums the last axis sequentially in e's dtype, ``take(a, y)``
    gathers a[..., y].
    """
    cast = cast or (lambda y, like: y.astype(like.dtype))

    def reg(q, name, fn, stable, why):
        return register(g, framework, members, q, name + extra_tag, fn, stable, why)

    def zeros(x):
        return xp.zeros_like(x)

    # ---- stable building blocks (in whatever dtype they are given)
    def lse(z, keepdims=False):
        m = xp.max(z, axis=-1, keepdims=True)
        m = xp.where(xp.isfinite(m), m, zeros(m))
        out = m + xp.log(xp.sum(xp.exp(z - m), axis=-1, keepdims=True))
        return out if keepdims else out[..., 0]

    def softmax(z):
        m = xp.max(z, axis=-1, keepdims=True)
        m = xp.where(xp.isfinite(m), m, zeros(m))
        e = xp.exp(z - m)
        return e / xp.sum(e, axis=-1, keepdims=True)

    def log_softmax(z):
        return z - lse(z, keepdims=True)

    def sigmoid(x):
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))

    def softplus(x):
        return xp.maximum(x, zeros(x)) + xp.log1p(xp.exp(-xp.abs(x)))

    def xlogy(x, y):
        safe = xp.where(x > 0, y, xp.ones_like(y))
        return xp.where(x > 0, x * xp.log(safe), zeros(x))

    def x_log1p_neg(x, p):
        """x * log1p(-p), 0 where x = 0."""
        safe = xp.where(x > 0, p, zeros(p))
        return xp.where(x > 0, x * xp.log1p(-safe), zeros(x))

    def entropy(p):
        return -xp.sum(xlogy(p, p), axis=-1)

    def kl(p, q):
        safe_p = xp.where(p > 0, p, xp.ones_like(p))
        return xp.sum(xp.where(p > 0, p * (xp.log(safe_p) - xp.log(q)), zeros(p)), axis=-1)

    def row_max(z):
        m = xp.max(z, axis=-1, keepdims=True)
        return xp.where(xp.isfinite(m), m, zeros(m))

    def shifted(z, T):
        """(z - max z) / T: shifting before dividing keeps |z| / T from overflowing for T < 1."""
        return (z - row_max(z)) / T

    def kl_logits(za, zb, T, scale=1.0):
        """scale * sum pa_i (log pa_i - log pb_i) with log pa_i - log pb_i = (za_i - zb_i) / T - (lse_a - lse_b):
        the difference of the logits is formed first, so log-probabilities far below the dtype's
        range (which a difference of two log_softmaxes would need) are never materialised. It is
        formed in halves: (za_i - ma) - (zb_i - mb) reaches twice the dtype's max (float16 logits
        +-55,000), its half does not; the scale (beta, T^2) multiplies the probabilities before the
        final doubling, so a KL beyond the dtype's range whose scaled value fits is kept."""
        la = log_softmax(shifted(za, T))
        pa = xp.exp(la)
        keep = (za > -xp.inf) & (pa > 0)
        both = (za > -xp.inf) & (zb > -xp.inf)
        # every term is shifted by its row max before dividing by T, so m / T (which overflows
        # float16 for |z| = 1e4, T = 0.05) is never formed; halving and doubling are exact
        ma, mb = row_max(za), row_max(zb)
        half_d = xp.where(both, za / 2 - ma / 2, zeros(za)) - xp.where(both, zb / 2 - mb / 2, zeros(zb))
        half_gap = (half_d / T) - (xp.log(xp.sum(xp.exp((za - ma) / T), axis=-1, keepdims=True))
                                   - xp.log(xp.sum(xp.exp((zb - mb) / T), axis=-1, keepdims=True))) / 2
        terms = xp.where(keep & both, (pa * scale) * xp.where(both, half_gap, zeros(half_gap)), zeros(la))
        kl = xp.sum(terms, axis=-1) * 2
        # an entry the first distribution keeps (za > -inf) but the second masks: KL = +inf exactly,
        # even when pa underflows to 0 in this dtype
        masked_b = xp.any((za > -xp.inf) & (zb == -xp.inf), axis=-1)
        return xp.where(masked_b, xp.full_like(kl, math.inf * scale), kl)

    def binary_entropy_bits(p):
        return -(xlogy(p, p) + x_log1p_neg(1 - p, p)) / LN2

    def bce(p, t):
        return -(xlogy(t, p) + x_log1p_neg(1 - t, p))

    def bce_logits(z, t):
        return xp.maximum(z, zeros(z)) - t * z + xp.log1p(xp.exp(-xp.abs(z)))

    def label_smoothing(z, y, eps):
        """(1 - eps)(lse - z_y) + eps (lse - mean z): the DESIGN formula, without materialising
        log_softmax (whose entries can leave the dtype's range when the loss does not)."""
        l = lse(z)
        nll = l - take(z, y)
        if eps == 0:
            return nll
        mean_z = xp.sum(z / z.shape[-1], axis=-1)  # divide first: the sum stays in range
        smooth = eps * (l - mean_z)
        return smooth if eps == 1 else (1 - eps) * nll + smooth  # t_y = 0 contributes 0, not 0 * inf

    def gaussian_kl(mu, logvar):
        return 0.5 * xp.sum(xp.expm1(logvar) - logvar + mu * mu, axis=-1)

    def flat2(P):
        return P.reshape(P.shape[:-2] + (-1,))

    def cond_entropy(P):
        px = xp.sum(P, axis=-1, keepdims=True)
        safe = xp.where(P > 0, P, xp.ones_like(P))
        return -xp.sum(flat2(xp.where(P > 0, P * (xp.log(safe) - xp.log(px)), zeros(P))), axis=-1)

    def mutual_info(P):
        px = xp.sum(P, axis=-1, keepdims=True)
        py = xp.sum(P, axis=-2, keepdims=True)
        safe = xp.where(P > 0, P, xp.ones_like(P))
        return xp.sum(flat2(xp.where(P > 0, P * (xp.log(safe) - xp.log(px) - xp.log(py)), zeros(P))), axis=-1)

    def take_along(a, idx):
        if hasattr(xp, "take_along_axis"):
            return xp.take_along_axis(a, idx, axis=-1)
        return xp.take_along_dim(a, idx, dim=-1)  # torch

    def sampled_terms(z, y, samples, log_q):
        """a_T = z_T - log q_T over T = [y] + samples, accidental hits (samples == y) at -inf."""
        idx = xp.concatenate([y[..., None], samples], axis=-1)
        a = take_along(z, idx) - take_along(log_q, idx)
        hit = xp.concatenate([y[..., None] != y[..., None], samples == y[..., None]], axis=-1)
        return xp.where(hit, xp.full_like(a, -math.inf), a)

    def sampled_ce(z, y, samples, log_q):
        a = sampled_terms(z, y, samples, log_q)
        return lse(a) - a[..., 0]

    def adaptive(h, W, P1, O1, P2, O2, lsm=None):
        lsm = lsm or log_softmax
        S = W.shape[0] - 2
        head = lsm(h @ W.T)
        parts = [head[..., :S]] + [head[..., S + i:S + i + 1] + lsm((h @ P.T) @ O.T)
                                   for i, (P, O) in enumerate(((P1, O1), (P2, O2)))]
        return xp.concatenate(parts, axis=-1)

    stable = {
        "sampled_softmax_cross_entropy": lambda z, y, samples, log_q: sampled_ce(z, y, samples, log_q),
        "adaptive_log_softmax": lambda h, W, P1, O1, P2, O2: adaptive(h, W, P1, O1, P2, O2),
        "softmax": lambda z: softmax(z),
        "log_softmax": lambda z: log_softmax(z),
        "logsumexp": lambda z: lse(z),
        "sigmoid": lambda x: sigmoid(x),
        "softplus": lambda x: softplus(x),
        "log_sigmoid": lambda x: -softplus(-x),
        "entropy": lambda p: entropy(p),
        "entropy_bits": lambda p: entropy(p) / LN2,
        "self_information_bits": lambda p: -xp.log2(p),
        "binary_entropy_bits": lambda p: binary_entropy_bits(p),
        "kl_divergence": lambda p, q: kl(p, q),
        "cross_entropy_probs": lambda p, q: -xp.sum(xlogy(p, q), axis=-1),
        "cross_entropy": lambda z, y: lse(z) - take(z, y),
        "nll_loss": lambda logp, y: -take(logp, y),
        "binary_cross_entropy": lambda p, t: bce(p, t),
        "binary_cross_entropy_with_logits": lambda z, t: bce_logits(z, t),
        "label_smoothing_cross_entropy": lambda z, y, eps: label_smoothing(z, y, eps),
        "distillation_loss": lambda zs, zt, T: kl_logits(zt, zs, T, T * T),
        "rlhf_kl_penalty": lambda zp, zr, beta: kl_logits(zp, zr, 1.0, beta),
        "gaussian_kl": lambda mu, logvar: gaussian_kl(mu, logvar),
        "joint_entropy": lambda P: entropy(flat2(P)),
        "conditional_entropy": lambda P: cond_entropy(P),
        "mutual_information": lambda P: mutual_info(P),
    }

    def wide_route(f):
        def fn(*args):
            like = next(a for a in args if hasattr(a, "dtype") and "float" in str(a.dtype))
            wargs = [wide(a) if (hasattr(a, "dtype") and "float" in str(a.dtype)) else a for a in args]
            return narrow(f(*wargs), like)
        return fn

    def same_dtype(f):
        def fn(*args):
            like = next(a for a in args if hasattr(a, "dtype") and "float" in str(a.dtype))
            return cast(f(*args), like)
        return fn

    for q, f in stable.items():
        reg(q, f"{q}_wide", wide_route(f), True, "stable formula computed wide (float64 / float32) and rounded once")
        reg(q, f"{q}_dtype", same_dtype(f), True, "stable formula computed in the input dtype")
    if stable_only:
        return

    # ---- the textbook-unstable ones
    U = []

    def bad(q, name, why):
        def deco(f):
            U.append((q, name, same_dtype(f), why))
            return f
        return deco

    @bad("softmax", "softmax_no_max_shift", "exp(z) / sum exp(z): overflows without the max shift")
    def _(z):
        e = xp.exp(z)
        return e / xp.sum(e, axis=-1, keepdims=True)

    @bad("softmax", "softmax_sequential_sum", "normaliser accumulated sequentially in the input dtype (stalls in float16)")
    def _(z):
        m = xp.max(z, axis=-1, keepdims=True)
        m = xp.where(xp.isfinite(m), m, zeros(m))
        e = xp.exp(z - m)
        return e / seq_sum(e)

    @bad("log_softmax", "log_softmax_log_of_softmax", "log(softmax(z)): log of an underflowed probability")
    def _(z):
        return xp.log(softmax(z))

    @bad("logsumexp", "logsumexp_no_max_shift", "log(sum(exp(z))): overflows/underflows without the max shift")
    def _(z):
        return xp.log(xp.sum(xp.exp(z), axis=-1))

    @bad("logsumexp", "logsumexp_no_inf_guard", "max shift without the all -inf guard: -inf - -inf = NaN")
    def _(z):
        m = xp.max(z, axis=-1, keepdims=True)
        return (m + xp.log(xp.sum(xp.exp(z - m), axis=-1, keepdims=True)))[..., 0]

    @bad("sigmoid", "sigmoid_naive", "1 / (1 + exp(-x)): exp(-x) overflows for very negative x")
    def _(x):
        return 1 / (1 + xp.exp(-x))

    @bad("softplus", "softplus_naive", "log(1 + exp(x)): overflows, and 1 + exp(x) loses exp(x)")
    def _(x):
        return xp.log(1 + xp.exp(x))

    @bad("log_sigmoid", "log_sigmoid_log_of_sigmoid", "log(sigmoid(x)): log of an underflowed sigmoid")
    def _(x):
        return xp.log(sigmoid(x))

    @bad("entropy", "entropy_no_zero_guard", "-sum p log p without 0 log 0 = 0: 0 * -inf = NaN")
    def _(p):
        return -xp.sum(p * xp.log(p), axis=-1)

    @bad("entropy_bits", "entropy_bits_no_zero_guard", "-sum p log2 p without 0 log 0 = 0")
    def _(p):
        return -xp.sum(p * xp.log2(p), axis=-1)

    @bad("self_information_bits", "self_information_bits_eps", "-log2(p + 1e-7): an epsilon inside the log")
    def _(p):
        return -xp.log2(p + 1e-7)

    @bad("binary_entropy_bits", "binary_entropy_bits_no_zero_guard", "no 0 log 0 guard: NaN at p = 0 or 1")
    def _(p):
        return -(p * xp.log2(p) + (1 - p) * xp.log2(1 - p))

    @bad("binary_entropy_bits", "binary_entropy_bits_log_one_minus", "log(1 - p) instead of log1p(-p): loses small p")
    def _(p):
        q = 1 - p
        return -(xlogy(p, p) + xlogy(q, q)) / LN2

    @bad("kl_divergence", "kl_log_of_ratio", "p log(p / q): the ratio overflows/underflows")
    def _(p, q):
        safe_p = xp.where(p > 0, p, xp.ones_like(p))
        return xp.sum(xp.where(p > 0, p * xp.log(safe_p / q), zeros(p)), axis=-1)

    @bad("kl_divergence", "kl_no_zero_guard", "sum p (log p - log q) without the p = 0 guard: NaN")
    def _(p, q):
        return xp.sum(p * (xp.log(p) - xp.log(q)), axis=-1)

    @bad("cross_entropy_probs", "cross_entropy_probs_eps", "-sum p log(q + 1e-7): an epsilon inside the log")
    def _(p, q):
        return -xp.sum(p * xp.log(q + 1e-7), axis=-1)

    @bad("cross_entropy_probs", "cross_entropy_probs_no_zero_guard", "-sum p log q with 0 * log 0 = NaN")
    def _(p, q):
        return -xp.sum(p * xp.log(q), axis=-1)

    @bad("cross_entropy", "cross_entropy_log_softmax_of_probs", "-log(softmax(z)[y]): log of an underflowed probability")
    def _(z, y):
        return -xp.log(take(softmax(z), y))

    @bad("cross_entropy", "cross_entropy_eps_in_log", "-log(softmax(z)[y] + 1e-7): an epsilon inside the log")
    def _(z, y):
        return -xp.log(take(softmax(z), y) + 1e-7)

    @bad("nll_loss", "nll_loss_exp_log_roundtrip", "-log(exp(logp)[y]): a round trip through probabilities")
    def _(logp, y):
        return -xp.log(take(xp.exp(logp), y))

    @bad("binary_cross_entropy", "bce_clamped", "p clipped to [1e-7, 1 - 1e-7]: an epsilon clamp")
    def _(p, t):
        pc = xp.clip(p, 1e-7, 1 - 1e-7)
        return -(t * xp.log(pc) + (1 - t) * xp.log(1 - pc))

    @bad("binary_cross_entropy", "bce_log_one_minus", "log(1 - p) instead of log1p(-p): loses small p")
    def _(p, t):
        q = 1 - p
        return -(xlogy(t, p) + xlogy(1 - t, q))

    @bad("binary_cross_entropy_with_logits", "bce_logits_via_log_sigmoid", "BCE of sigmoid(z) via log: log(1 - 1) = -inf")
    def _(z, t):
        s = sigmoid(z)
        return -(t * xp.log(s) + (1 - t) * xp.log(1 - s))

    @bad("label_smoothing_cross_entropy", "label_smoothing_eps_over_k_minus_1",
         "target (1 - eps) on y and eps/(K-1) elsewhere: not the eps/K definition")
    def _(z, y, eps):
        K = z.shape[-1]
        ls = log_softmax(z)
        ly = take(ls, y)
        others = xp.sum(xp.where(xp.isfinite(ls), ls, zeros(ls)), axis=-1) - xp.where(xp.isfinite(ly), ly, zeros(ly))
        return -((1 - eps) * ly + (eps / max(K - 1, 1)) * others)

    @bad("distillation_loss", "distillation_without_T2", "KL(softmax(zt/T) || softmax(zs/T)) without the T^2 factor")
    def _(zs, zt, T):
        return kl_logits(zt, zs, T)

    @bad("rlhf_kl_penalty", "rlhf_kl_log_of_ratio", "beta sum p log(p / q) on softmax probabilities: ratio of underflowed values")
    def _(zp, zr, beta):
        p = softmax(zp)
        q = softmax(zr)
        safe_p = xp.where(p > 0, p, xp.ones_like(p))
        return beta * xp.sum(xp.where(p > 0, p * xp.log(safe_p / q), zeros(p)), axis=-1)

    @bad("gaussian_kl", "gaussian_kl_through_sigma2", "0.5 sum(s2 + mu^2 - 1 - log s2) with s2 = exp(logvar): log of an underflowed variance")
    def _(mu, logvar):
        s2 = xp.exp(logvar)
        return 0.5 * xp.sum(s2 + mu * mu - 1 - xp.log(s2), axis=-1)

    @bad("joint_entropy", "joint_entropy_no_zero_guard", "-sum P log P without 0 log 0 = 0")
    def _(P):
        return -xp.sum(flat2(P * xp.log(P)), axis=-1)

    @bad("conditional_entropy", "conditional_entropy_no_zero_guard", "-sum P log(P / P_x) without the zero guard")
    def _(P):
        px = xp.sum(P, axis=-1, keepdims=True)
        return -xp.sum(flat2(P * xp.log(P / px)), axis=-1)

    @bad("mutual_information", "mutual_information_log_of_ratio", "sum P log(P / (P_x P_y)): the product of marginals underflows")
    def _(P):
        px = xp.sum(P, axis=-1, keepdims=True)
        py = xp.sum(P, axis=-2, keepdims=True)
        safe = xp.where(P > 0, P, xp.ones_like(P))
        return xp.sum(flat2(xp.where(P > 0, P * xp.log(safe / (px * py)), zeros(P))), axis=-1)

    @bad("sampled_softmax_cross_entropy", "sampled_softmax_no_max_shift",
         "log(sum exp(a)) - a_y over the corrected logits: exp overflows without the max shift")
    def _(z, y, samples, log_q):
        a = sampled_terms(z, y, samples, log_q)
        return xp.log(xp.sum(xp.exp(a), axis=-1)) - a[..., 0]

    @bad("adaptive_log_softmax", "adaptive_softmax_log_of_softmax",
         "log(exp(l) / sum exp(l)) per softmax, no max shift: overflow, and log(0) of underflowed probabilities")
    def _(h, W, P1, O1, P2, O2):
        def lsm(x):
            e = xp.exp(x)
            return xp.log(e / xp.sum(e, axis=-1, keepdims=True))
        return adaptive(h, W, P1, O1, P2, O2, lsm)

    for q, name, fn, why in U:
        reg(q, name, fn, False, why)


def _take(a, y):
    return np.take_along_axis(a, y[..., None], axis=-1)[..., 0]


def _seq_sum(e):
    return np.add.accumulate(e, axis=-1)[..., -1:]


build(np, globals(), MEMBERS, FRAMEWORK,
      wide=lambda a: np.asarray(a).astype(np.float64),
      narrow=lambda y, like: np.asarray(y).astype(like.dtype),
      seq_sum=_seq_sum, take=_take)

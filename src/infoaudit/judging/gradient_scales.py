"""The gradient's envelope scale: the terms of each quantity's closed-form vector-Jacobian product.

The gradient twin of :data:`.scales.SCALES`: for each quantity the magnitudes of the terms of its
closed-form VJP g = J^T c (softmax - onehot, s (1 - s), log p + 1, ...), per gradient component,
in float64 from the exact inputs and the cotangent c. Evaluating that closed form in the dtype --
what every framework's backward does -- loses up to a few u times these terms (dCE/dz_y = p_y - 1
at a confident target: the terms are p_y and 1, the exact value 4e-9 is lost to float32's
u = 6e-8). The gradient audit passes these as S to :func:`.core.grade_elements` (the envelope
allowance c(n) u (S + lambda)); N is the gradient's own sensitivity from second derivatives
(``infoaudit.judging.condition.gradient_condition``). Scalar arguments (T, eps, beta) get the total over
rows. Entries where a term is infinite or undefined get 0 (the non-finite class judges those).

Low-precision lift (``grad_scale(..., dtype=...)``): a probability (or sigmoid) below the dtype's
smallest normal is held with an absolute error of half a subnormal ULP = u * tiny, not u * p, so
its terms count as tiny; on a platform that flushes subnormals (probed) it is held as 0, an
absolute error up to tiny itself, so its terms count as tiny / u. Exact zeros stay 0 (a masked
entry's gradient must be exactly 0).
"""
from __future__ import annotations

import math

import numpy as np

from ..dtypes import fmt

__all__ = ["GRAD_SCALES", "grad_scale", "grad_scale_reason"]


def _e():
    return np.errstate(all="ignore")


def _absfin(x):
    with _e():
        return np.where(np.isfinite(x), np.abs(x), 0.0)


def _sig(x):
    with _e():
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _lse_parts(z):
    """m (max finite entry, 0 for an all -inf row), s = sum exp(z - m), p = softmax, lse."""
    with _e():
        fin = np.where(np.isfinite(z), z, -np.inf)
        m = np.max(fin, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(z - m)
        s = np.sum(e, axis=-1, keepdims=True)
        p = e / s
        lse = m + np.log(s)
    return m, s, p, lse


def _fin0(x):
    with _e():
        return np.where(np.isfinite(x), x, 0.0)


def _pos(p, x):
    """p * x with 0 * anything = 0."""
    with _e():
        return np.where(p > 0, p * x, 0.0)


def _onehot(y, n):
    return (np.arange(n) == np.asarray(y)[..., None]).astype(np.float64)


def _softmax_parts(z, lift):
    """(p, log-softmax, K) of rows with -inf masks; an all -inf row gives p = 0, lsm = -inf.

    K_j = 1 + |z_j| + sum_k p_k |z_k| is the relative condition of p_j (rounding the logits moves
    p_j by about u K_j p_j): the terms of a softmax-type VJP carry it.
    """
    m, s, p, lse = _lse_parts(z)
    with _e():
        p = np.where(np.isfinite(p), p, 0.0)
        lsm = z - lse
        az = _absfin(z)
        K = 1 + az + np.sum(_pos(p, az), axis=-1, keepdims=True)
    return lift(p), lsm, K


def _g_softmax(lift, c, z):
    p, _, K = _softmax_parts(z, lift)
    return {"z": p * K * (np.abs(c) + np.sum(_pos(p, np.abs(c)), axis=-1, keepdims=True))}


def _g_log_softmax(lift, c, z):
    p, _, K = _softmax_parts(z, lift)
    return {"z": np.abs(c) + p * K * np.sum(np.abs(c), axis=-1, keepdims=True)}


def _g_logsumexp(lift, c, z):
    p, _, K = _softmax_parts(z, lift)
    return {"z": np.abs(c)[..., None] * p * K}


def _g_cross_entropy(lift, c, z, y):
    p, _, K = _softmax_parts(z, lift)
    return {"z": np.abs(c)[..., None] * (p * K + _onehot(y, z.shape[-1]))}


def _g_nll_loss(lift, c, logp, y):
    return {"logp": np.abs(c)[..., None] * _onehot(y, logp.shape[-1])}


def _g_label_smoothing(lift, c, z, y, eps):
    p, lsm, Kp = _softmax_parts(z, lift)
    K = z.shape[-1]
    oh = _onehot(y, K)
    t = (1 - eps) * oh + eps / K
    a = _absfin(lsm)
    eterm = np.sum(oh * a, axis=-1) + np.mean(a, axis=-1)
    return {"z": np.abs(c)[..., None] * (p * Kp + t), "eps": float(np.sum(np.abs(c) * eterm))}


def _kl_logit_parts(za, zb, T, lift):
    """Parts of KL(softmax(za/T) || softmax(zb/T)): a, b, pa, pb, |log pa|, |log pb|, their
    conditions Ka, Kb and Kt = sum pa (|log pa| + |log pb|)."""
    with _e():
        a, b = za / T, zb / T
    pa, la, Ka = _softmax_parts(a, lift)
    pb, lb, Kb = _softmax_parts(b, lift)
    la, lb = _absfin(la), _absfin(lb)
    kt = np.sum(_pos(pa, la + lb), axis=-1, keepdims=True)
    return a, b, pa, pb, la, lb, Ka, Kb, kt


def _kl_first_terms(a, b, pa, pb, la, lb, Ka, Kb, kt):
    """Terms of pa_j (log pa_j - log pb_j - KL): the factor pa_j (relative condition Ka_j) times the
    logs, plus the logs' own rounding (|a_j| + |b_j| + their means + 1)."""
    ea = np.sum(_pos(pa, _absfin(a)), axis=-1, keepdims=True)
    eb = np.sum(_pos(pb, _absfin(b)), axis=-1, keepdims=True)
    return _pos(pa, (la + lb + kt) * Ka + _absfin(a) + _absfin(b) + ea + eb + 1)


def _g_distillation(lift, c, zs, zt, T):
    a, b, pt, ps, lt, ls, Kt, Ks, kt = _kl_logit_parts(zt, zs, T, lift)
    ac = np.abs(c)[..., None]
    aT = abs(T)
    g_zs = ac * aT * (ps * Ks + pt * Kt)
    g_zt = ac * aT * _kl_first_terms(a, b, pt, ps, lt, ls, Kt, Ks, kt)
    w = np.sum(_pos(pt, _absfin(a) * (lt + ls + kt) * Kt) + _absfin(b) * (ps * Ks + pt * Kt), axis=-1, keepdims=True)
    g_T = float(np.sum(ac * aT * (2 * kt + w)))
    return {"zs": g_zs, "zt": g_zt, "T": g_T}


def _g_rlhf(lift, c, zp, zr, beta):
    a, b, pp, pr, lp, lr, Kp, Kr, kt = _kl_logit_parts(zp, zr, 1.0, lift)
    ac = np.abs(c)[..., None]
    ab = abs(beta)
    return {"z_policy": ac * ab * _kl_first_terms(a, b, pp, pr, lp, lr, Kp, Kr, kt),
            "z_ref": ac * ab * (pr * Kr + pp * Kp), "beta": float(np.sum(ac * kt))}


def _g_sigmoid(lift, c, x):
    return {"x": np.abs(c) * lift(_sig(x))}


def _g_softplus(lift, c, x):
    # sigmoid(x) = exp(x - softplus(x)) (the logaddexp VJP): the exponent's terms are |x| large
    return {"x": np.abs(c) * lift(_sig(x)) * (1 + _absfin(x))}


def _g_log_sigmoid(lift, c, x):
    return {"x": np.abs(c) * lift(_sig(-x)) * (1 + _absfin(x))}


def _g_bce_logits(lift, c, z, t):
    return {"z": np.abs(c) * (lift(_sig(z)) * (1 + _absfin(z)) + np.abs(t)), "t": np.abs(c) * _absfin(z)}


def _g_bce(lift, c, p, t):
    with _e():
        tp = np.where(t != 0, np.abs(t) / p, 0.0)
        tq = np.where(t != 1, np.abs(1 - t) / (1 - p), 0.0)
        lp = np.where(p > 0, np.abs(np.log(p)), 0.0)
        lq = np.where(p < 1, np.abs(np.log1p(-p)), 0.0)
    return {"p": np.abs(c) * _fin0(tp + tq), "t": np.abs(c) * _fin0(lp + lq)}


def _logabs(p):
    with _e():
        return _absfin(np.log(p))


def _g_entropy(lift, c, p):
    return {"p": np.abs(c)[..., None] * (_logabs(p) + 1)}


def _g_entropy_bits(lift, c, p):
    return {"p": np.abs(c)[..., None] * (_logabs(p) + 1) / math.log(2)}


def _g_self_information_bits(lift, c, p):
    with _e():
        return {"p": np.abs(c) * _fin0(1 / (p * math.log(2)))}


def _g_binary_entropy_bits(lift, c, p):
    with _e():
        lq = _absfin(np.log1p(-p))
    return {"p": np.abs(c) * (_logabs(p) + lq + 1) / math.log(2)}


def _g_kl(lift, c, p, q):
    ac = np.abs(c)[..., None]
    with _e():
        r = _fin0(np.where(p > 0, p / q, 0.0))
    return {"p": ac * (_logabs(p) + _logabs(q) + 1), "q": ac * r}


def _g_cross_entropy_probs(lift, c, p, q):
    ac = np.abs(c)[..., None]
    with _e():
        r = _fin0(np.where(p > 0, p / q, 0.0))
    return {"p": ac * _logabs(q), "q": ac * r}


def _g_gaussian_kl(lift, c, mu, logvar):
    ac = np.abs(c)[..., None]
    with _e():
        ev = _fin0(np.exp(logvar))
    return {"mu": ac * _absfin(mu), "logvar": ac * (ev * (1 + _absfin(logvar)) + 1) / 2}


def _g_joint_entropy(lift, c, P):
    return {"P": np.abs(c)[..., None, None] * (_logabs(P) + 1)}


def _g_conditional_entropy(lift, c, P):
    px = np.sum(P, axis=-1, keepdims=True)
    return {"P": np.abs(c)[..., None, None] * (_logabs(P) + _logabs(px) + 2)}


def _g_mutual_information(lift, c, P):
    px = np.sum(P, axis=-1, keepdims=True)
    py = np.sum(P, axis=-2, keepdims=True)
    return {"P": np.abs(c)[..., None, None] * (_logabs(P) + _logabs(px) + _logabs(py) + 3)}


# name -> (S function (lift, cotangent, *inputs) -> {argument: S}, one-line statement of S)
GRAD_SCALES = {
    "softmax": (_g_softmax, "T = p_i K_i (|c_i| + sum_j p_j |c_j|): terms of p_i (c_i - sum_j p_j c_j), "
                "K_i = 1 + |z_i| + sum_j p_j |z_j| the condition of p_i"),
    "log_softmax": (_g_log_softmax, "T = |c_i| + p_i K_i sum_j |c_j|: terms of c_i - p_i sum_j c_j"),
    "logsumexp": (_g_logsumexp, "T = |c| p_i K_i: the product c softmax(z)_i"),
    "sigmoid": (_g_sigmoid, "T = |c| s: terms of c s (1 - s) with s = sigmoid(x)"),
    "softplus": (_g_softplus, "T = |c| sigmoid(x) (1 + |x|): terms of exp(x - softplus(x))"),
    "log_sigmoid": (_g_log_sigmoid, "T = |c| sigmoid(-x) (1 + |x|): terms of exp(-x - softplus(-x))"),
    "entropy": (_g_entropy, "T = |c| (|log p_i| + 1): terms of -(log p_i + 1)"),
    "entropy_bits": (_g_entropy_bits, "T = |c| (|log p_i| + 1) / ln 2"),
    "self_information_bits": (_g_self_information_bits, "T = |c| / (p ln 2)"),
    "binary_entropy_bits": (_g_binary_entropy_bits, "T = |c| (|log p| + |log(1-p)| + 1) / ln 2: terms of log2((1-p)/p)"),
    "kl_divergence": (_g_kl, "T_p = |c| (|log p_i| + |log q_i| + 1), T_q = |c| p_i / q_i"),
    "cross_entropy_probs": (_g_cross_entropy_probs, "T_p = |c| |log q_i|, T_q = |c| p_i / q_i"),
    "cross_entropy": (_g_cross_entropy, "T = |c| (p_i K_i + [i = y]): terms of softmax - onehot"),
    "nll_loss": (_g_nll_loss, "T = |c| [i = y]"),
    "binary_cross_entropy": (_g_bce, "T_p = |c| (t/p + (1-t)/(1-p)), T_t = |c| (|log p| + |log(1-p)|)"),
    "binary_cross_entropy_with_logits": (_g_bce_logits, "T_z = |c| (sigmoid(z) (1 + |z|) + |t|): terms of sigmoid(z) - t; T_t = |c z|"),
    "label_smoothing_cross_entropy": (_g_label_smoothing,
                                      "T_z = |c| (p_i K_i + target_i): terms of softmax - target; T_eps = sum |c| (|lsm_y| + mean |lsm|)"),
    "distillation_loss": (_g_distillation,
                          "T_zs = |c T| (ps_i K_i + pt_i K_i); T_zt = |c T| pt_i ((|log pt_i| + |log ps_i| + sum pt (|log pt| + |log ps|)) K_i + |z/T| terms); T_T: terms of 2T KL + T^2 dKL/dT"),
    "rlhf_kl_penalty": (_g_rlhf, "T_policy = |c beta| pp_i ((|log pp_i| + |log pr_i| + KL terms) K_i + |z| terms); T_ref = |c beta| (pr_i K_i + pp_i K_i); T_beta = |c| KL terms"),
    "gaussian_kl": (_g_gaussian_kl, "T_mu = |c mu|, T_logvar = |c| (exp(logvar) (1 + |logvar|) + 1) / 2: terms of (exp(logvar) - 1) / 2 and their condition"),
    "joint_entropy": (_g_joint_entropy, "T = |c| (|log P| + 1)"),
    "conditional_entropy": (_g_conditional_entropy, "T = |c| (|log P| + |log P_x| + 2)"),
    "mutual_information": (_g_mutual_information, "T = |c| (|log P| + |log P_x| + |log P_y| + 3)"),
}


def _no_lift(p):
    return p


def _lifter(threshold, value):
    def lift(p):
        with _e():
            return np.where((p > 0) & (p < threshold), value, p)
    return lift


def grad_scale(quantity, inputs, cotangent, dtype=None, flushing=False) -> dict:
    """{argument name: S} for the gradient of ``quantity`` (a registry entry or its name) at
    ``inputs`` (float arrays in any float dtype, broadcast for elementwise quantities; labels;
    scalars) with ``cotangent``. With ``dtype``, probabilities below its smallest normal count as
    that normal, or as normal / u on a platform that flushes subnormals (``flushing``; see the
    module docstring)."""
    name = getattr(quantity, "name", quantity)
    args = [np.asarray(a).astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind not in "iu"
            else a for a in inputs]
    fn = GRAD_SCALES[name][0]
    if dtype is not None:
        f = fmt(dtype)
        lift = _lifter(f.tiny, f.tiny / f.unit_roundoff if flushing else f.tiny)
    else:
        lift = _no_lift
    with _e():
        out = fn(lift, np.asarray(cotangent, dtype=np.float64), *args)
    res = {}
    for k, v in out.items():
        v = np.asarray(v, dtype=np.float64)
        res[k] = np.where(np.isnan(v), 0.0, np.where(np.isinf(v), np.finfo(np.float64).max, v))
    return res


def grad_scale_reason(quantity) -> str:
    """The one-line statement of the gradient's S for a quantity."""
    return GRAD_SCALES[getattr(quantity, "name", quantity)][1]

"""SciPy adapters: scipy.special's native ops (softmax, log_softmax, logsumexp, expit, log_expit,
softplus, entr, rel_entr, xlogy), composed into the loss where SciPy has no single op.

SciPy's ufuncs choose their own loop: float16 input is computed (and returned) in float32 or
float64 by several of them, and bfloat16 is cast to float64. The audit records the returned
dtype and rounds the result once to the audited dtype, as a user casting back would.
"""
from __future__ import annotations

import numpy as np

from . import Op
from . import numpy_backend as _np

__all__ = ["NAME", "DTYPES", "available", "info", "devices", "to_backend", "to_numpy", "ops"]

NAME = "scipy"
DTYPES = ("float16", "bfloat16", "float32", "float64")


def available():
    try:
        import scipy  # noqa: F401
    except ImportError as e:  # pragma: no cover - scipy is a hard dependency
        return False, f"scipy not importable: {e}"
    return True, ""


def info():
    import scipy
    return {"version": scipy.__version__, "devices": ["cpu"]}


def devices():
    return ["cpu"]


to_backend = _np.to_backend
to_numpy = _np.to_numpy


def _ops():
    import scipy.special as sp
    import scipy.stats as st

    ln2 = np.log(2.0)

    def take(a, y):
        return np.take_along_axis(a, y[..., None], axis=-1)[..., 0]

    def kl_logits(za, zb, T):
        la = sp.log_softmax(za / T, axis=-1)
        lb = sp.log_softmax(zb / T, axis=-1)
        return np.sum(sp.rel_entr(np.exp(la), np.exp(lb)), axis=-1)

    def label_smoothing(z, y, eps):
        ls = sp.log_softmax(z, axis=-1)
        return (1 - eps) * -take(ls, y) + eps * -np.mean(ls, axis=-1)

    def sampled(z, y, samples, log_q):
        a = _np.sampled_terms(z, y, samples, log_q)
        return sp.logsumexp(a, axis=-1) - a[..., 0]

    def adaptive(h, head_weight, proj_1, out_1, proj_2, out_2):
        S = head_weight.shape[0] - 2
        head = sp.log_softmax(h @ head_weight.T, axis=-1)
        parts = [head[:, :S]] + [head[:, S + i:S + i + 1] + sp.log_softmax((h @ P.T) @ O.T, axis=-1)
                                 for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2)))]
        return np.concatenate(parts, axis=-1)

    table = {
        "softmax": [Op("native", lambda z: sp.softmax(z, axis=-1), True, "scipy.special.softmax(z, axis=-1)")],
        "log_softmax": [Op("native", lambda z: sp.log_softmax(z, axis=-1), True, "scipy.special.log_softmax(z, axis=-1)")],
        "logsumexp": [Op("native", lambda z: sp.logsumexp(z, axis=-1), True, "scipy.special.logsumexp(z, axis=-1)")],
        "sigmoid": [Op("native", sp.expit, True, "scipy.special.expit(x)")],
        "softplus": [Op("native", sp.softplus, True, "scipy.special.softplus(x)")],
        "log_sigmoid": [Op("native", sp.log_expit, True, "scipy.special.log_expit(x)")],
        "entropy": [
            Op("entr", lambda p: np.sum(sp.entr(p), axis=-1), False, "scipy.special.entr(p).sum(-1)"),
            Op("stats", lambda p: st.entropy(p, axis=-1), True, "scipy.stats.entropy(p, axis=-1)",
               "normalises p first"),
        ],
        "entropy_bits": [
            Op("entr", lambda p: np.sum(sp.entr(p), axis=-1) / ln2, False, "scipy.special.entr(p).sum(-1) / log(2)"),
            Op("stats", lambda p: st.entropy(p, base=2, axis=-1), True, "scipy.stats.entropy(p, base=2, axis=-1)",
               "normalises p first"),
        ],
        "self_information_bits": [Op("composed", lambda p: -np.log2(p), False, "-numpy.log2(p)", "no SciPy op")],
        "binary_entropy_bits": [Op("entr", lambda p: (sp.entr(p) + sp.entr(1 - p)) / ln2, False,
                                   "(scipy.special.entr(p) + entr(1 - p)) / log(2)")],
        "kl_divergence": [
            Op("rel_entr", lambda p, q: np.sum(sp.rel_entr(p, q), axis=-1), False, "scipy.special.rel_entr(p, q).sum(-1)"),
            Op("stats", lambda p, q: st.entropy(p, q, axis=-1), True, "scipy.stats.entropy(p, q, axis=-1)",
               "normalises p and q first"),
        ],
        "cross_entropy_probs": [Op("xlogy", lambda p, q: -np.sum(sp.xlogy(p, q), axis=-1), False,
                                   "-scipy.special.xlogy(p, q).sum(-1)")],
        "cross_entropy": [Op("logsumexp", lambda z, y: sp.logsumexp(z, axis=-1) - take(z, y), False,
                             "scipy.special.logsumexp(z, axis=-1) - z[y]")],
        "nll_loss": [Op("composed", lambda lp, y: -take(lp, y), False, "-logp[y]", "no SciPy op")],
        "binary_cross_entropy": [Op("xlogy", lambda p, t: -(sp.xlogy(t, p) + sp.xlogy(1 - t, 1 - p)), False,
                                    "-(xlogy(t, p) + xlogy(1 - t, 1 - p))")],
        "binary_cross_entropy_with_logits": [Op(
            "log_expit", lambda z, t: -(t * sp.log_expit(z) + (1 - t) * sp.log_expit(-z)), False,
            "-(t * log_expit(z) + (1 - t) * log_expit(-z))")],
        "label_smoothing_cross_entropy": [Op("log_softmax", label_smoothing, False,
                                             "(1 - eps) * nll(log_softmax) + eps * mean(-log_softmax)")],
        "distillation_loss": [Op("rel_entr", lambda zs, zt, T: T * T * kl_logits(zt, zs, T), False,
                                 "T**2 * rel_entr(softmax(zt/T), softmax(zs/T)).sum(-1)")],
        "rlhf_kl_penalty": [Op("rel_entr", lambda zp, zr, beta: beta * kl_logits(zp, zr, 1.0), False,
                               "beta * rel_entr(softmax(zp), softmax(zr)).sum(-1)")],
        "gaussian_kl": [Op("composed", _np.gaussian_kl, False, "0.5 * sum(expm1(logvar) - logvar + mu**2)",
                           "no SciPy op: NumPy formula")],
        "joint_entropy": [Op("entr", lambda P: np.sum(sp.entr(P), axis=(-2, -1)), False, "entr(P).sum()")],
        "conditional_entropy": [Op("xlogy", lambda P: -np.sum(sp.xlogy(P, P / np.sum(P, -1, keepdims=True)), axis=(-2, -1)),
                                   False, "-xlogy(P, P / P.sum(-1)).sum()")],
        "mutual_information": [Op("rel_entr", lambda P: np.sum(sp.rel_entr(P, np.sum(P, -1, keepdims=True) * np.sum(P, -2, keepdims=True)),
                                                               axis=(-2, -1)), False, "rel_entr(P, Px * Py).sum()")],
        "sampled_softmax_cross_entropy": [Op("logsumexp", sampled, False,
                                             "scipy.special.logsumexp(a, axis=-1) - a[..., 0], a = z[T] - log_q[T], "
                                             "T = [y] + samples, hits -inf")],
        "adaptive_log_softmax": [Op("log_softmax", adaptive, False,
                                    "head = log_softmax(h @ W_head.T); tail_i = head[S+i] + "
                                    "log_softmax((h @ P_i.T) @ O_i.T)")],
    }
    return table


def ops():
    return _ops()

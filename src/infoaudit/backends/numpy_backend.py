"""NumPy adapters: stable composed formulas in plain NumPy (NumPy has no native softmax/xlogy).

Each op computes in the input dtype with the textbook-stable algorithm a careful NumPy user
writes (max shift, log1p/expm1, 0 log 0 = 0 via np.where). Reductions use NumPy's pairwise sum.
"""
from __future__ import annotations

import numpy as np

from . import Op

__all__ = ["NAME", "DTYPES", "available", "info", "devices", "to_backend", "to_numpy", "softmax",
           "log_softmax", "logsumexp", "sigmoid", "softplus", "log_sigmoid", "entropy", "entropy_bits",
           "self_information_bits", "binary_entropy_bits", "kl_divergence", "cross_entropy_probs",
           "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "label_smoothing_cross_entropy", "distillation_loss", "rlhf_kl_penalty", "gaussian_kl",
           "joint_entropy", "conditional_entropy", "mutual_information", "sampled_terms",
           "sampled_softmax_cross_entropy", "adaptive_log_softmax", "ops"]

NAME = "numpy"
DTYPES = ("float16", "bfloat16", "float32", "float64")


def available():
    return True, ""


def info():
    return {"version": np.__version__, "devices": ["cpu"]}


def devices():
    return ["cpu"]


def to_backend(a, device="cpu"):
    return np.array(a, copy=True)


def to_numpy(x):
    return np.asarray(x)


def _lse(z):
    m = np.max(z, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, np.zeros_like(m))
    return (m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))).astype(z.dtype)


def softmax(z):
    m = np.max(z, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, np.zeros_like(m))
    e = np.exp(z - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def log_softmax(z):
    return z - _lse(z)


def logsumexp(z):
    return _lse(z)[..., 0]


def sigmoid(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def softplus(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


def log_sigmoid(x):
    return -softplus(-x)


def _xlogy(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, np.zeros_like(x), x * np.log(y)).astype(x.dtype)


def entropy(p):
    return -np.sum(_xlogy(p, p), axis=-1)


def entropy_bits(p):
    return (entropy(p) / np.log(2).astype(p.dtype)).astype(p.dtype)


def self_information_bits(p):
    return -np.log2(p)


def binary_entropy_bits(p):
    return (-(_xlogy(p, p) + _xlogy(1 - p, 1 - p)) / np.log(2).astype(p.dtype)).astype(p.dtype)


def kl_divergence(p, q):
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p == 0, np.zeros_like(p), p * (np.log(p) - np.log(q)))
    return np.sum(t, axis=-1).astype(p.dtype)


def cross_entropy_probs(p, q):
    return -np.sum(_xlogy(p, q), axis=-1)


def cross_entropy(z, y):
    return (_lse(z)[..., 0] - np.take_along_axis(z, y[..., None], axis=-1)[..., 0]).astype(z.dtype)


def nll_loss(logp, y):
    return -np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]


def binary_cross_entropy(p, t):
    return (-(_xlogy(t, p) + _xlogy(1 - t, 1 - p))).astype(p.dtype)


def binary_cross_entropy_with_logits(z, t):
    return (softplus(z) - t * z).astype(z.dtype)


def label_smoothing_cross_entropy(z, y, eps):
    K = z.shape[-1]
    ls = log_softmax(z)
    nll = -np.take_along_axis(ls, y[..., None], axis=-1)[..., 0]
    smooth = -np.mean(ls, axis=-1)
    return ((1 - eps) * nll + eps * smooth).astype(z.dtype) if K else nll


def _kl_logits(za, zb, T):
    la = log_softmax(za / np.asarray(T, za.dtype))
    lb = log_softmax(zb / np.asarray(T, zb.dtype))
    with np.errstate(invalid="ignore"):
        t = np.where(np.isneginf(la), np.zeros_like(la), np.exp(la) * (la - lb))
    return np.sum(t, axis=-1).astype(za.dtype)


def distillation_loss(zs, zt, T):
    return (T * T * _kl_logits(zt, zs, T)).astype(zs.dtype)


def rlhf_kl_penalty(z_policy, z_ref, beta):
    return (beta * _kl_logits(z_policy, z_ref, 1.0)).astype(z_policy.dtype)


def gaussian_kl(mu, logvar):
    return (0.5 * np.sum(np.expm1(logvar) - logvar + mu * mu, axis=-1)).astype(mu.dtype)


def joint_entropy(P):
    return -np.sum(_xlogy(P, P), axis=(-2, -1))


def conditional_entropy(P):
    px = np.sum(P, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(P == 0, np.zeros_like(P), P * (np.log(P) - np.log(px)))
    return (-np.sum(t, axis=(-2, -1))).astype(P.dtype)


def mutual_information(P):
    px = np.sum(P, axis=-1, keepdims=True)
    py = np.sum(P, axis=-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(P == 0, np.zeros_like(P), P * (np.log(P) - np.log(px) - np.log(py)))
    return np.sum(t, axis=(-2, -1)).astype(P.dtype)


def sampled_terms(z, y, samples, log_q):
    """a_T = z_T - log_q_T over T = [y] + samples, accidental hits (samples == y) set to -inf."""
    idx = np.concatenate([y[..., None], samples], axis=-1)
    a = np.take_along_axis(z, idx, axis=-1) - np.take_along_axis(log_q, idx, axis=-1)
    hit = np.concatenate([np.zeros(y.shape + (1,), bool), samples == y[..., None]], axis=-1)
    return np.where(hit, np.array(-np.inf, a.dtype), a).astype(z.dtype)


def sampled_softmax_cross_entropy(z, y, samples, log_q):
    """logsumexp(a_T) - a_y (gather + max-shifted logsumexp, as in TF's sampled_softmax_loss)."""
    a = sampled_terms(z, y, samples, log_q)
    return (_lse(a)[..., 0] - a[..., 0]).astype(z.dtype)


def adaptive_log_softmax(h, head_weight, proj_1, out_1, proj_2, out_2):
    """Head log_softmax over shortlist + 2 cluster tokens, plus each cluster's tail log_softmax."""
    S = head_weight.shape[0] - 2
    head = log_softmax(h @ head_weight.T)
    parts = [head[:, :S]]
    for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2))):
        parts.append(head[:, S + i:S + i + 1] + log_softmax((h @ P.T) @ O.T))
    return np.concatenate(parts, axis=-1).astype(h.dtype)


_FNS = {f.__name__: f for f in (
    softmax, log_softmax, logsumexp, sigmoid, softplus, log_sigmoid, entropy, entropy_bits,
    self_information_bits, binary_entropy_bits, kl_divergence, cross_entropy_probs, cross_entropy,
    nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits, label_smoothing_cross_entropy,
    distillation_loss, rlhf_kl_penalty, gaussian_kl, joint_entropy, conditional_entropy,
    mutual_information, sampled_softmax_cross_entropy, adaptive_log_softmax)}


def ops():
    return {name: [Op("composed", fn, False, f"infoaudit.backends.numpy_backend.{name}",
                      "stable NumPy formula in the input dtype")] for name, fn in _FNS.items()}

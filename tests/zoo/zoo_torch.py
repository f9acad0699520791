"""PyTorch members of the zoo: the framework's own ops (where stable), the stable formula in
float64 rounded once ("wide") and in the input dtype ("dtype"), and the textbook-unstable ones."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import register
from .zoo_numpy import build

FRAMEWORK = "torch"
MEMBERS: list = []
LN2 = math.log(2.0)


class _XP:
    """The few array-API spellings the generic builder uses, mapped onto torch."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def max(x, axis=None, keepdims=False):
        return torch.amax(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return torch.sum(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return torch.mean(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def clip(x, lo, hi):
        return torch.clamp(x, lo, hi)


def _take(a, y):
    return torch.gather(a, -1, y.unsqueeze(-1)).squeeze(-1)


def _seq_sum(e):
    """Sum of the last axis accumulated left to right in e's dtype (no wider accumulator)."""
    s = e[..., 0:1].clone()
    for i in range(1, e.shape[-1]):
        s = s + e[..., i:i + 1]
    return s


build(_XP(), globals(), MEMBERS, FRAMEWORK,
      wide=lambda a: a.to(torch.float64),
      narrow=lambda y, like: y.to(like.dtype),
      seq_sum=_seq_sum, take=_take, cast=lambda y, like: y.to(like.dtype))


def _reg(q, name, fn, why, finding=""):
    register(globals(), FRAMEWORK, MEMBERS, q, name, fn, True, why, finding)


def _kl_log_target(la, lb):
    return F.kl_div(lb, la, reduction="none", log_target=True).sum(-1)


_reg("softmax", "softmax_native", lambda z: torch.softmax(z, dim=-1), "torch.softmax")
_reg("log_softmax", "log_softmax_native", lambda z: torch.log_softmax(z, dim=-1), "torch.log_softmax")
_reg("logsumexp", "logsumexp_native", lambda z: torch.logsumexp(z, dim=-1), "torch.logsumexp")
_reg("sigmoid", "sigmoid_native", torch.sigmoid, "torch.sigmoid",
     finding="float32 (CPU and CUDA) returns 0 for x below about -88.7 where the exact value is a representable subnormal")
_reg("softplus", "softplus_native", lambda x: F.softplus(x), "F.softplus (threshold 20)")
_reg("log_sigmoid", "log_sigmoid_native", F.logsigmoid, "F.logsigmoid")
_reg("entropy", "entropy_native", lambda p: torch.special.entr(p).sum(-1), "torch.special.entr(p).sum(-1)")
_reg("entropy_bits", "entropy_bits_native", lambda p: torch.special.entr(p).sum(-1) / LN2, "entr(p).sum(-1) / ln 2")
_reg("self_information_bits", "self_information_bits_native", lambda p: -torch.log2(p), "-torch.log2(p)")
_reg("kl_divergence", "kl_divergence_native", lambda p, q: F.kl_div(torch.log(q), p, reduction="none").sum(-1),
     "F.kl_div(log q, p, reduction='none').sum(-1)",
     finding="NaN where p_i = q_i = 0 (0 * (log 0 - log 0) instead of the 0 convention)")
_reg("cross_entropy_probs", "cross_entropy_probs_native", lambda p, q: -torch.special.xlogy(p, q).sum(-1),
     "-torch.special.xlogy(p, q).sum(-1)")
_reg("cross_entropy", "cross_entropy_native", lambda z, y: F.cross_entropy(z, y, reduction="none"),
     "F.cross_entropy(reduction='none')")
_reg("nll_loss", "nll_loss_native", lambda lp, y: F.nll_loss(lp, y, reduction="none"), "F.nll_loss(reduction='none')")
_reg("binary_cross_entropy_with_logits", "bce_with_logits_native",
     lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="none"),
     "F.binary_cross_entropy_with_logits(reduction='none')",
     finding="float32 returns 0 for z around -20, t = 0 where the loss is 2e-9: log(exp(-m) + exp(-z-m)) cancels")
_reg("label_smoothing_cross_entropy", "label_smoothing_native",
     lambda z, y, eps: F.cross_entropy(z, y, reduction="none", label_smoothing=eps),
     "F.cross_entropy(label_smoothing=eps)",
     finding="float16: inf on a 4096-long row whose loss is 42.6 (the smoothing term sums log-probabilities in float16)")
_reg("distillation_loss", "distillation_native",
     lambda zs, zt, T: T * T * _kl_log_target(F.log_softmax(zt / T, -1), F.log_softmax(zs / T, -1)),
     "T^2 F.kl_div(log_softmax(zs/T), log_softmax(zt/T), log_target=True)",
     finding="z / T overflows to inf for |z| > T * max (divide before the max shift): NaN where the loss is 0")
_reg("rlhf_kl_penalty", "rlhf_kl_native",
     lambda zp, zr, beta: beta * _kl_log_target(F.log_softmax(zp, -1), F.log_softmax(zr, -1)),
     "beta F.kl_div(log_softmax(z_ref), log_softmax(z_policy), log_target=True)",
     finding="NaN when the policy row has a -inf mask, every dtype: log_target=True computes exp(-inf) * (-inf - x)")
_reg("gaussian_kl", "gaussian_kl_expm1", lambda mu, lv: 0.5 * (torch.expm1(lv) - lv + mu * mu).sum(-1),
     "0.5 sum(expm1(logvar) - logvar + mu^2) in torch")

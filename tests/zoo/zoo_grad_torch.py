"""PyTorch members of the gradient zoo (``infoaudit gate --grad``).

Every function here computes sound *forward* values (the gate without --grad passes it); the
gradient-broken ones differ from the sound ones only in their backward pass, which only
``--grad`` sees. The frameworks' own ops are listed too (``module="tests.zoo.zoo_torch"``), with
the gradient behaviours the gate rejects recorded as findings (measured on torch 2.13 CPU).
"""
from __future__ import annotations

import numpy as np
import torch

from . import GradMember

FRAMEWORK = "torch"
GRAD_MEMBERS: list = []


def _m(quantity, name, sound, why, finding="", module="", forward_finding=False, expect_kind="numerical"):
    GRAD_MEMBERS.append(GradMember(FRAMEWORK, quantity, name, sound, why, finding, module, forward_finding,
                                   expect_kind))


# ---------------------------------------------------------------- softmax with a hand-written backward


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        p = torch.softmax(z, dim=-1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        return p * (g - (p * g).sum(-1, keepdim=True))


class _SoftmaxForgetsSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        p = torch.softmax(z, dim=-1)
        ctx.save_for_backward(p)
        return p

    @staticmethod
    def backward(ctx, g):
        (p,) = ctx.saved_tensors
        return p * g  # forgets the - p * sum(p * g) term of the Jacobian diag(p) - p p^T


def softmax_custom_backward(z):
    return _Softmax.apply(z)


def softmax_backward_forgets_sum(z):
    return _SoftmaxForgetsSum.apply(z)


_m("softmax", "softmax_custom_backward", True, "torch.autograd.Function with the exact softmax VJP p (g - sum p g)")
_m("softmax", "softmax_backward_forgets_sum", False, "hand-written backward p * g: the -p sum(p g) term is missing")


# ---------------------------------------------------------------- logsumexp on fully masked rows


def logsumexp_max_shift(z):
    """m + log(sum(exp(z - m))) with the max shift guarded for all -inf rows: right values
    (-inf on a fully masked row), but the gradient there is exp(-inf) / 0 = NaN."""
    m = torch.amax(z, dim=-1, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    return (m + torch.log(torch.sum(torch.exp(z - m), dim=-1, keepdim=True)))[..., 0]


def logsumexp_masked_safe(z):
    """The same with the double-where trick: a fully masked row gets -inf and a zero gradient."""
    m = torch.amax(z, dim=-1, keepdim=True).detach()
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    s = torch.sum(torch.exp(z - m), dim=-1, keepdim=True)
    live = s > 0
    safe = torch.where(live, s, torch.ones_like(s))
    out = torch.where(live, m + torch.log(safe), torch.full_like(s, -torch.inf))
    return out[..., 0]


_m("logsumexp", "logsumexp_max_shift", False,
   "max-shifted log(sum(exp(z - m))): NaN gradient on an all -inf (fully masked) row, where the exact gradient is 0")
_m("logsumexp", "logsumexp_masked_safe", True, "max shift + double where: 0 gradient on a fully masked row")


# ---------------------------------------------------------------- BCE with a clamped backward


def _bce_forward(p, t):
    w = torch.float64
    pw, tw = p.to(w), t.to(w)
    a = torch.where(tw > 0, tw * torch.log(torch.where(tw > 0, pw, torch.ones_like(pw))), torch.zeros_like(pw))
    b = torch.where(tw < 1, (1 - tw) * torch.log1p(-torch.where(tw < 1, pw, torch.zeros_like(pw))),
                    torch.zeros_like(pw))
    return (-(a + b)).to(p.dtype)


class _BCEClamped(torch.autograd.Function):
    EPS = 1e-7

    @staticmethod
    def forward(ctx, p, t):
        ctx.save_for_backward(p, t)
        return _bce_forward(p, t)

    @staticmethod
    def backward(ctx, g):
        p, t = ctx.saved_tensors
        pc = p.clamp(_BCEClamped.EPS, 1 - _BCEClamped.EPS)  # the "safe" clamp of many hand-written losses
        gp = g * (pc - t) / (pc * (1 - pc))
        gt = g * (torch.log1p(-p) - torch.log(p))
        return gp, gt


class _BCEExact(torch.autograd.Function):
    @staticmethod
    def forward(ctx, p, t):
        ctx.save_for_backward(p, t)
        return _bce_forward(p, t)

    @staticmethod
    def backward(ctx, g):
        p, t = ctx.saved_tensors
        w = torch.float64
        pw, tw, gw = p.to(w), t.to(w), g.to(w)
        # -t/p + (1-t)/(1-p), each term 0 where its coefficient is 0 (the 0 log 0 = 0 convention)
        a = torch.where(tw != 0, -tw / torch.where(tw != 0, pw, torch.ones_like(pw)), torch.zeros_like(pw))
        b = torch.where(tw != 1, (1 - tw) / (1 - torch.where(tw != 1, pw, torch.zeros_like(pw))), torch.zeros_like(pw))
        gp = gw * (a + b)
        gt = gw * (torch.log1p(-pw) - torch.log(pw))
        return gp.to(p.dtype), gt.to(t.dtype)


def bce_clamped_backward(p, t):
    return _BCEClamped.apply(p, t)


def bce_exact_backward(p, t):
    return _BCEExact.apply(p, t)


_m("binary_cross_entropy", "bce_clamped_backward", False,
   "exact forward, backward with p clamped to [1e-7, 1 - 1e-7]: the gradient is wrong (-1e7 instead of -1/p) at the clamp")
_m("binary_cross_entropy", "bce_exact_backward", True, "exact forward and backward, computed in float64 and rounded once")


# ---------------------------------------------------------------- not differentiable


def softmax_through_numpy(z):
    """A sound softmax computed in NumPy: right values, but .numpy() cuts the autograd graph."""
    a = z.float().numpy()  # RuntimeError under autograd: the tensor requires grad
    m = np.max(a, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(all="ignore"):
        e = np.exp(a - m)
        p = e / e.sum(-1, keepdims=True)
    return torch.from_numpy(p).to(z.dtype)


class _NoBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        return torch.softmax(z, dim=-1)

    @staticmethod
    def backward(ctx, g):
        raise NotImplementedError("backward of the fused softmax kernel is not implemented yet")


def softmax_backward_raises(z):
    return _NoBackward.apply(z)


_m("softmax", "softmax_through_numpy", False, "calls .numpy() on its input: not differentiable",
   expect_kind="not_differentiable")
_m("softmax", "softmax_backward_raises", False, "autograd.Function whose backward raises NotImplementedError",
   expect_kind="not_differentiable")


# ---------------------------------------------------------------- the framework's own ops (tests.zoo.zoo_torch)

_Z = "tests.zoo.zoo_torch"
_m("log_softmax", "log_softmax_native", True, "torch.log_softmax", module=_Z)
_m("softmax", "softmax_native", True, "torch.softmax", module=_Z)
_m("cross_entropy", "cross_entropy_native", True, "F.cross_entropy(reduction='none')", module=_Z)
_m("entropy", "entropy_native", True, "torch.special.entr(p).sum(-1)", module=_Z)
_m("softplus", "softplus_native", True, "F.softplus", module=_Z)
_m("log_sigmoid", "log_sigmoid_native", True, "F.logsigmoid", module=_Z)
_m("nll_loss", "nll_loss_native", True, "F.nll_loss", module=_Z)
_m("gaussian_kl", "gaussian_kl_expm1", True, "0.5 sum(expm1(logvar) - logvar + mu^2)", module=_Z)
_m("logsumexp", "logsumexp_native", True, "torch.logsumexp", module=_Z,
   finding="NaN gradient on an all -inf (fully masked) row, every dtype, where the exact gradient is 0 (DESIGN's "
           "masked-row convention)")
_m("cross_entropy_probs", "cross_entropy_probs_native", True, "-torch.special.xlogy(p, q).sum(-1)", module=_Z,
   finding="d/dq is NaN where p_i = q_i = 0 (xlogy's x / y = 0 / 0), every dtype; the exact gradient is 0")

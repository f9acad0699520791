"""PyTorch adapters: the op a PyTorch user calls for each quantity, on CPU and CUDA.

Native ops: ``torch.softmax`` / ``log_softmax`` / ``logsumexp`` / ``sigmoid``, ``F.softplus``
(default ``threshold=20``: it returns ``x`` unchanged above 20), ``F.logsigmoid``,
``torch.special.entr`` / ``xlogy``, ``F.kl_div`` (log-probability input, and ``log_target=True``),
``F.cross_entropy`` (``reduction='none'``, ``label_smoothing=eps``), ``F.nll_loss``,
``F.binary_cross_entropy`` (clamps its logs at -100), ``F.binary_cross_entropy_with_logits``,
``torch.distributions`` (Categorical entropy / KL, Normal KL). Composed ops are the short
expressions a user writes around them; every Op says which (``native``).

Transport is bit-exact: float16/float32/float64 through ``torch.from_numpy`` and ``.numpy()``,
bfloat16 through 16-bit integer views (NumPy has no bfloat16; ml_dtypes' bfloat16 on our side).
Nothing here imports torch at module import time.
"""
from __future__ import annotations

import math

import numpy as np

from . import BackendUnavailable, Op

__all__ = ["NAME", "DTYPES", "LN2", "available", "devices", "info", "to_backend", "to_numpy", "ops",
           "extra_ops"]

NAME = "torch"
DTYPES = ("float16", "bfloat16", "float32", "float64")
LN2 = math.log(2.0)


def available():
    try:
        import torch  # noqa: F401
    except Exception as e:  # ImportError, or a broken install (missing shared library)
        return False, f"torch not importable: {type(e).__name__}: {e}"
    return True, ""


def _cuda_status():
    import torch

    if not torch.backends.cuda.is_built():
        return False, f"cuda: torch.cuda.is_available() is False (this torch build {torch.__version__} has no CUDA support)"
    try:
        ok = torch.cuda.is_available()
    except Exception as e:  # pragma: no cover - driver problems
        return False, f"cuda: torch.cuda.is_available() raised {type(e).__name__}: {e}"
    if not ok:
        return False, "cuda: torch.cuda.is_available() is False (no CUDA device or driver visible)"
    return True, ""


def devices():
    ok, _ = _cuda_status()
    return ["cpu", "cuda"] if ok else ["cpu"]


def info():
    import torch

    out = {"version": torch.__version__, "devices": devices(), "skipped": []}
    ok, why = _cuda_status()
    if ok:
        out["device_names"] = {"cuda": torch.cuda.get_device_name(0)}
        out["cuda_version"] = torch.version.cuda
    else:
        out["skipped"].append(why)
    return out


def _device(device):
    import torch

    dev = str(device or "cpu")
    if dev.startswith("cuda") or dev == "gpu":
        ok, why = _cuda_status()
        if not ok:
            raise BackendUnavailable(why)
        return torch.device("cuda" if dev == "gpu" else dev)
    if dev != "cpu":
        raise BackendUnavailable(f"torch device {dev!r} is not supported here (cpu, cuda)")
    return torch.device("cpu")


def to_backend(a, device="cpu"):
    """numpy array (float16/bfloat16/float32/float64/int) -> torch tensor with identical bits."""
    import torch

    dev = _device(device)
    a = np.ascontiguousarray(a)
    if "bfloat16" in str(a.dtype):
        t = torch.from_numpy(a.view(np.int16).copy()).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a.copy())
    return t.to(dev)


def to_numpy(x):
    """torch tensor -> numpy array with identical bits (bfloat16 -> ml_dtypes.bfloat16)."""
    import ml_dtypes
    import torch

    if not isinstance(x, torch.Tensor):
        return np.asarray(x)
    x = x.detach().cpu().contiguous()
    if x.dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return x.numpy().copy()


def _ops():
    import torch
    import torch.nn.functional as F
    from torch.distributions import Categorical, Normal, kl_divergence

    def take(a, y):
        return torch.gather(a, -1, y.unsqueeze(-1)).squeeze(-1)

    def entr_sum(p, dims=-1):
        return torch.special.entr(p).sum(dims)

    def kl_logits(za, zb, T):
        """KL(softmax(za/T) || softmax(zb/T)) as F.kl_div with log-probability targets."""
        la = F.log_softmax(za / T, dim=-1)
        lb = F.log_softmax(zb / T, dim=-1)
        return F.kl_div(lb, la, reduction="none", log_target=True).sum(-1)

    def kl_logits_probs(za, zb, T):
        """The same with probability targets (the Hinton-distillation code path)."""
        return F.kl_div(F.log_softmax(zb / T, dim=-1), F.softmax(za / T, dim=-1), reduction="none").sum(-1)

    def kl_explicit(za, zb):
        la = torch.log_softmax(za, dim=-1)
        lb = torch.log_softmax(zb, dim=-1)
        return (la.exp() * (la - lb)).sum(-1)

    def gaussian_closed(mu, logvar):
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)

    def gaussian_dist(mu, logvar):
        p = Normal(mu, torch.exp(0.5 * logvar), validate_args=False)
        q = Normal(torch.zeros_like(mu), torch.ones_like(mu), validate_args=False)
        return kl_divergence(p, q).sum(-1)

    def cond_entropy(P):
        px = P.sum(-1, keepdim=True)
        return -(torch.special.xlogy(P, P) - torch.special.xlogy(P, px)).sum((-2, -1))

    def mutual_info(P):
        px = P.sum(-1, keepdim=True)
        py = P.sum(-2, keepdim=True)
        return (torch.special.xlogy(P, P) - torch.special.xlogy(P, px) - torch.special.xlogy(P, py)).sum((-2, -1))

    def sampled_terms(z, y, samples, log_q):
        """a_T = z_T - log_q_T, T = [y] + samples, accidental hits masked with -inf."""
        idx = torch.cat([y.unsqueeze(-1), samples], dim=-1)
        a = z.gather(-1, idx) - log_q.gather(-1, idx)
        hit = torch.cat([torch.zeros_like(y, dtype=torch.bool).unsqueeze(-1), samples == y.unsqueeze(-1)], dim=-1)
        return a.masked_fill(hit, float("-inf"))

    def sampled_lse(z, y, samples, log_q):
        a = sampled_terms(z, y, samples, log_q)
        return torch.logsumexp(a, dim=-1) - a[..., 0]

    def sampled_ce(z, y, samples, log_q):
        a = sampled_terms(z, y, samples, log_q)
        return F.cross_entropy(a, torch.zeros_like(y), reduction="none")

    def adaptive_module(h, head_weight, proj_1, out_1, proj_2, out_2):
        """torch.nn.AdaptiveLogSoftmaxWithLoss(d, V, cutoffs=[S, S + o_1], head_bias=False) with
        the given weights (in the input dtype, on the input's device), .log_prob(h)."""
        S = head_weight.shape[0] - 2
        o1 = out_1.shape[0]
        V = S + o1 + out_2.shape[0]
        m = torch.nn.AdaptiveLogSoftmaxWithLoss(h.shape[-1], V, cutoffs=[S, S + o1], div_value=1.0,
                                                head_bias=False)
        m = m.to(device=h.device, dtype=h.dtype)
        with torch.no_grad():
            m.head.weight = torch.nn.Parameter(head_weight.clone(), requires_grad=False)
            for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2))):
                m.tail[i][0].weight = torch.nn.Parameter(P.clone(), requires_grad=False)
                m.tail[i][1].weight = torch.nn.Parameter(O.clone(), requires_grad=False)
            return m.log_prob(h)

    N, C = True, False  # native / composed
    return {
        "softmax": [Op("native", lambda z: torch.softmax(z, dim=-1), N, "torch.softmax(z, dim=-1)")],
        "log_softmax": [Op("native", lambda z: torch.log_softmax(z, dim=-1), N, "torch.log_softmax(z, dim=-1)")],
        "logsumexp": [Op("native", lambda z: torch.logsumexp(z, dim=-1), N, "torch.logsumexp(z, dim=-1)")],
        "sigmoid": [Op("native", torch.sigmoid, N, "torch.sigmoid(x)")],
        "softplus": [Op("native", F.softplus, N, "F.softplus(x)",
                        "default beta=1, threshold=20: returns x unchanged for x > 20")],
        "log_sigmoid": [Op("native", F.logsigmoid, N, "F.logsigmoid(x)")],
        "entropy": [
            Op("entr", entr_sum, C, "torch.special.entr(p).sum(-1)"),
            Op("distributions", lambda p: Categorical(probs=p, validate_args=False).entropy(), N,
               "Categorical(probs=p, validate_args=False).entropy()", "normalises p; log p clamped at finfo.min"),
        ],
        "entropy_bits": [Op("entr", lambda p: entr_sum(p) / LN2, C, "torch.special.entr(p).sum(-1) / math.log(2)")],
        "self_information_bits": [Op("native", lambda p: -torch.log2(p), C, "-torch.log2(p)")],
        "binary_entropy_bits": [Op("entr", lambda p: (torch.special.entr(p) + torch.special.entr(1 - p)) / LN2, C,
                                   "(entr(p) + entr(1 - p)) / math.log(2)")],
        "kl_divergence": [
            Op("native", lambda p, q: F.kl_div(q.log(), p, reduction="none").sum(-1), N,
               "F.kl_div(q.log(), p, reduction='none').sum(-1)"),
            Op("log_target", lambda p, q: F.kl_div(q.log(), p.log(), reduction="none", log_target=True).sum(-1), N,
               "F.kl_div(q.log(), p.log(), reduction='none', log_target=True).sum(-1)"),
            Op("distributions", lambda p, q: kl_divergence(Categorical(probs=p, validate_args=False),
                                                           Categorical(probs=q, validate_args=False)), N,
               "kl_divergence(Categorical(probs=p), Categorical(probs=q))", "normalises p and q"),
        ],
        "cross_entropy_probs": [Op("xlogy", lambda p, q: -torch.special.xlogy(p, q).sum(-1), C,
                                   "-torch.special.xlogy(p, q).sum(-1)")],
        "cross_entropy": [Op("native", lambda z, y: F.cross_entropy(z, y, reduction="none"), N,
                             "F.cross_entropy(z, y, reduction='none')")],
        "nll_loss": [Op("native", lambda lp, y: F.nll_loss(lp, y, reduction="none"), N,
                        "F.nll_loss(logp, y, reduction='none')")],
        "binary_cross_entropy": [Op("native", lambda p, t: F.binary_cross_entropy(p, t, reduction="none"), N,
                                    "F.binary_cross_entropy(p, t, reduction='none')", "clamps log at -100")],
        "binary_cross_entropy_with_logits": [Op(
            "native", lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="none"), N,
            "F.binary_cross_entropy_with_logits(z, t, reduction='none')")],
        "label_smoothing_cross_entropy": [Op(
            "native", lambda z, y, eps: F.cross_entropy(z, y, reduction="none", label_smoothing=eps), N,
            "F.cross_entropy(z, y, reduction='none', label_smoothing=eps)")],
        "distillation_loss": [
            Op("native", lambda zs, zt, T: kl_logits_probs(zt, zs, T) * (T * T), C,
               "F.kl_div(F.log_softmax(zs/T), F.softmax(zt/T), reduction='none').sum(-1) * T**2"),
            Op("log_target", lambda zs, zt, T: kl_logits(zt, zs, T) * (T * T), C,
               "F.kl_div(F.log_softmax(zs/T), F.log_softmax(zt/T), reduction='none', log_target=True).sum(-1) * T**2"),
        ],
        "rlhf_kl_penalty": [
            Op("log_target", lambda zp, zr, beta: beta * kl_logits(zp, zr, 1.0), C,
               "beta * F.kl_div(F.log_softmax(z_ref), F.log_softmax(z_policy), reduction='none', "
               "log_target=True).sum(-1)"),
            Op("composed", lambda zp, zr, beta: beta * kl_explicit(zp, zr), C,
               "beta * (lp.exp() * (lp - lr)).sum(-1), lp/lr = torch.log_softmax(z_policy/z_ref)"),
        ],
        "gaussian_kl": [
            Op("closed_form", gaussian_closed, C, "-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)"),
            Op("distributions", gaussian_dist, N,
               "kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0, 1)).sum(-1)",
               "validate_args=False: with the default validation a zero scale (logvar = -inf, or "
               "exp(0.5 * logvar) underflowing) raises ValueError for the whole batch"),
        ],
        "joint_entropy": [Op("entr", lambda P: entr_sum(P, (-2, -1)), C, "torch.special.entr(P).sum((-2, -1))")],
        "conditional_entropy": [Op("xlogy", cond_entropy, C, "-(xlogy(P, P) - xlogy(P, P.sum(-1, keepdim=True))).sum()")],
        "mutual_information": [Op("xlogy", mutual_info, C, "(xlogy(P, P) - xlogy(P, Px) - xlogy(P, Py)).sum()")],
        "sampled_softmax_cross_entropy": [
            Op("logsumexp", sampled_lse, C, "torch.logsumexp(a, -1) - a[..., 0], a = z.gather(-1, T) - "
               "log_q.gather(-1, T), T = cat([y[:, None], samples]), hits masked_fill -inf"),
            Op("cross_entropy", sampled_ce, C, "F.cross_entropy(a, zeros_like(y), reduction='none') on the same a "
               "(TF sampled_softmax_loss's form: softmax cross-entropy with the true class at 0)"),
        ],
        "adaptive_log_softmax": [Op(
            "native", adaptive_module, N, "nn.AdaptiveLogSoftmaxWithLoss(d, V, cutoffs=[S, S + o_1], "
            "head_bias=False).log_prob(h) with the given weights",
            "head and tails as nn.Linear (weight (out_features, in_features), no bias)")],
    }


_TABLE = None


def ops():
    global _TABLE
    if _TABLE is None:
        _TABLE = _ops()
    return _TABLE


_EXTRA = None


def extra_ops():
    """Variants ``infoaudit run`` audits beyond :func:`ops` (kept out of it so that per-op tests
    and benchmarks do not compile): every op under ``torch.compile`` (:mod:`.torch_compiled`)
    and under ``torch.autocast`` with the upcast patterns (:mod:`.autocast`), with
    ``Op.profiles``, ``Op.baseline`` and ``Op.dtypes``."""
    global _EXTRA
    if _EXTRA is None:
        from .autocast import autocast_ops
        from .torch_compiled import compiled_ops

        table = ops()
        extra = compiled_ops(table)
        for qname, more in autocast_ops(table).items():
            extra[qname] = extra.get(qname, []) + more
        _EXTRA = extra
    return _EXTRA

"""Fused kernels from libraries as gate targets: Liger-Kernel's fused cross-entropy and KL, and
torch's own cross-entropy on CUDA (log_softmax + nll in one kernel), in the quantities'
signatures, so that ``infoaudit gate --impl infoaudit.backends.fused:liger_cross_entropy
--quantity cross_entropy --framework torch --device cuda`` audits them like a user's function.

They run only where a CUDA device is present (Liger's kernels are Triton GPU kernels; torch's
fused path is its CUDA kernel). :func:`status` says for each target whether it can run here and
why not (no CUDA device, liger-kernel not installed); calling a target that cannot run raises
:class:`infoaudit.backends.BackendUnavailable` with that reason. Liger-Kernel is not a dependency
of infoaudit (``pip install liger-kernel`` on a GPU machine). Liger's JSD has no quantity in the
registry and is not a target. Nothing here imports torch at import time.
"""
from __future__ import annotations

from . import BackendUnavailable

__all__ = ["TARGETS", "status", "liger_cross_entropy", "liger_kl_divergence", "torch_cuda_cross_entropy"]


def _cuda_reason() -> str:
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        return f"torch not importable: {type(e).__name__}: {e}"
    if not torch.cuda.is_available():
        return "needs a CUDA device (torch.cuda.is_available() is False here)"
    return ""


def _liger_reason() -> str:
    why = _cuda_reason()
    if why:
        return why
    try:
        import liger_kernel  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"liger-kernel not installed ({type(e).__name__}: {e}); pip install liger-kernel on a GPU machine"
    return ""


def _need(reason_fn):
    why = reason_fn()
    if why:
        raise BackendUnavailable(why)


def liger_cross_entropy(z, y):
    """``LigerCrossEntropyLoss(reduction="none")(z, y)``: Liger's fused softmax cross-entropy."""
    _need(_liger_reason)
    from liger_kernel.transformers import LigerCrossEntropyLoss

    return LigerCrossEntropyLoss(reduction="none")(z, y)


def liger_kl_divergence(p, q):
    """KL(p || q) per row with Liger's fused KL: ``LigerKLDIVLoss(reduction="none")(q.log(), p).sum(-1)``."""
    _need(_liger_reason)
    from liger_kernel.transformers import LigerKLDIVLoss

    return LigerKLDIVLoss(reduction="none")(q.log(), p).sum(-1)


def torch_cuda_cross_entropy(z, y):
    """``F.cross_entropy(z, y, reduction="none")`` on a CUDA device (the fused CUDA kernel)."""
    _need(_cuda_reason)
    import torch.nn.functional as F

    if z.device.type != "cuda":
        raise BackendUnavailable("torch_cuda_cross_entropy: pass --device cuda (the inputs are on "
                                 f"{z.device.type})")
    return F.cross_entropy(z, y, reduction="none")


# target -> (quantity, why it may not run here)
TARGETS = {"liger_cross_entropy": ("cross_entropy", _liger_reason),
           "liger_kl_divergence": ("kl_divergence", _liger_reason),
           "torch_cuda_cross_entropy": ("cross_entropy", _cuda_reason)}


def status() -> list:
    """``[{"target", "quantity", "impl", "available", "reason"}]`` for every fused target."""
    rows = []
    for name, (qname, why) in TARGETS.items():
        r = why()
        rows.append({"target": name, "quantity": qname, "impl": f"infoaudit.backends.fused:{name}",
                     "available": not r, "reason": r})
    return rows

"""A user's own softmax kernels (the code a CI gate protects).

``softmax`` is the stable algorithm (max shift, masked-row guard, float32 accumulation for 16-bit
inputs, one rounding at the end). ``naive_softmax`` is the textbook exp(z) / sum(exp(z)) that
overflows: the gate rejects it with a reproducer.
"""
import torch


def softmax(z: torch.Tensor) -> torch.Tensor:
    acc = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
    m = acc.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf (masked) rows
    e = torch.exp(acc - m)
    return (e / e.sum(dim=-1, keepdim=True)).to(z.dtype)


def naive_softmax(z: torch.Tensor) -> torch.Tensor:
    e = torch.exp(z)
    return e / e.sum(dim=-1, keepdim=True)

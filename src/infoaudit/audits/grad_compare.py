"""Moved to :mod:`infoaudit.grad_compare`; ``infoaudit.audits.grad_compare`` re-exports its
public names.

(Differential comparison of a backend's *gradients* against the exact derivative.)
"""
from __future__ import annotations

from ..grad_compare import (
    GradComparison,
    GradResult,
    compare_grad,
    judge_gradient,
    prepare_grad_inputs,
)

__all__ = ["GradComparison", "GradResult", "prepare_grad_inputs", "compare_grad", "judge_gradient"]

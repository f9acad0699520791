"""Moved to :mod:`infoaudit.reproducers.gradients`; ``infoaudit.report.grad_reproducer`` re-exports
its public names.

(Copy-paste reproducers of *gradient* findings, in the framework's own autodiff.)
"""
from __future__ import annotations

from ..reproducers.gradients import best_grad_snippet, grad_snippet

__all__ = ["grad_snippet", "best_grad_snippet"]

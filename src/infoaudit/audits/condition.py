"""Moved to :mod:`infoaudit.judging.condition`; ``infoaudit.audits.condition`` re-exports its public
names.

(Condition-aware error: tell the error the problem forces from the error the algorithm adds.)
"""
from __future__ import annotations

from ..judging.condition import (
    FD_PREC,
    FD_STEP,
    NINF_,
    PREC,
    Condition,
    condition_aware_error,
    forward_condition,
    gradient_condition,
    unit_roundoff,
    worked_examples,
)

__all__ = ["PREC", "FD_PREC", "FD_STEP", "Condition", "unit_roundoff", "condition_aware_error",
           "forward_condition", "gradient_condition", "NINF_", "worked_examples"]

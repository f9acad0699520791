"""Moved to :mod:`infoaudit.judging.metrics`; ``infoaudit.audits.metrics`` re-exports its public
names.

(Error metrics of a computed result against the exact reference.)
"""
from __future__ import annotations

from ..judging.metrics import (
    CLASSES,
    LOG_OF_ZERO,
    MISSING_NONFINITE,
    NAN,
    NAN_INF_ARITH,
    OVERFLOW,
    WRONG_INF,
    ElementErrors,
    classify_nonfinite,
    element_errors,
)

__all__ = ["OVERFLOW", "LOG_OF_ZERO", "NAN_INF_ARITH", "NAN", "MISSING_NONFINITE", "WRONG_INF", "CLASSES",
           "ElementErrors", "element_errors", "classify_nonfinite"]

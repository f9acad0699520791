"""Moved to :mod:`infoaudit.differential`; ``infoaudit.audits.compare`` re-exports its public
names.

(Differential comparison of one backend op against the exact reference on given inputs.)
"""
from __future__ import annotations

from ..differential import (
    Comparison,
    Unsupported,
    compare,
    np_dtype,
    pick_op,
    prepare_inputs,
    run_op,
)

__all__ = ["Unsupported", "Comparison", "prepare_inputs", "pick_op", "run_op", "compare", "np_dtype"]

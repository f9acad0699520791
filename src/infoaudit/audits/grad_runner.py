"""Moved to :mod:`infoaudit.run.gradients`; ``infoaudit.audits.grad_runner`` re-exports its public
names.

(Gradient cells of ``infoaudit run``: every autodiff backend's op, differentiated, judged exactly.)
"""
from __future__ import annotations

from ..run.gradients import (
    CAE_SHRINK,
    GRAD_METRICS,
    GRAD_SETTINGS,
    GRAD_SHAPES,
    ULP_SHRINK,
    GradCell,
    GradGroup,
    grad_cell_dict,
    grad_cell_key,
    grad_search,
    grad_shapes,
    grad_targets,
    has_gradient,
    run_grad_group,
    shrink_to_unit,
    unit_case,
)

__all__ = ["GRAD_SETTINGS", "GRAD_SHAPES", "GRAD_METRICS", "CAE_SHRINK", "ULP_SHRINK", "grad_cell_key",
           "has_gradient", "grad_shapes", "grad_targets", "GradCell", "unit_case", "GradGroup",
           "shrink_to_unit", "grad_cell_dict", "grad_search", "run_grad_group"]

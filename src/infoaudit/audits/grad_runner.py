"""Moved to :mod:`infoaudit.run.grad_group`, :mod:`infoaudit.run.gradients`;
``infoaudit.audits.grad_runner`` re-exports its public names.

(Gradient cells of ``infoaudit run``: every autodiff backend's op, differentiated, judged exactly.)
"""
from __future__ import annotations

from ..run.grad_group import (
    CAE_SHRINK,
    GRAD_SETTINGS,
    ULP_SHRINK,
    GradCell,
    GradGroup,
    shrink_to_unit,
    unit_case,
)
from ..run.gradients import (
    GRAD_METRICS,
    GRAD_SHAPES,
    grad_cell_dict,
    grad_cell_key,
    grad_search,
    grad_shapes,
    grad_targets,
    has_gradient,
    run_grad_group,
)

__all__ = ["GRAD_SETTINGS", "GRAD_SHAPES", "GRAD_METRICS", "CAE_SHRINK", "ULP_SHRINK", "grad_cell_key",
           "has_gradient", "grad_shapes", "grad_targets", "GradCell", "unit_case", "GradGroup",
           "shrink_to_unit", "grad_cell_dict", "grad_search", "run_grad_group"]

"""Moved to :mod:`infoaudit.gate.gradients`, :mod:`infoaudit.gate.grad_calls`,
:mod:`infoaudit.gate.grad_judge`, :mod:`infoaudit.reproducers.user`; ``infoaudit.audits.gate_grad``
re-exports its public names.

(``infoaudit gate --grad``: audit the *gradients* of a user's implementation.)
"""
from __future__ import annotations

from ..gate.grad_calls import (
    GRAD_MAX_ELEMENTS,
    GRAD_SEARCH_INPUTS,
    MAX_CONDITION_UNIT,
    GradOutcome,
    check_usage,
    evaluate,
    exact_vjp,
    load_backend,
    user_op,
)
from ..gate.grad_judge import ArgVerdict, GradJudgement, judge
from ..gate.gradients import (
    AUTODIFF,
    GradContext,
    failure_dict,
    gate_grad_dtype,
    grad_cell,
    select_cases,
)
from ..reproducers.user import gradient_reproducer as reproducer

__all__ = ["AUTODIFF", "GRAD_SEARCH_INPUTS", "GRAD_MAX_ELEMENTS", "MAX_CONDITION_UNIT", "check_usage",
           "load_backend", "user_op", "exact_vjp", "GradOutcome", "evaluate", "ArgVerdict",
           "GradJudgement", "judge", "GradContext", "select_cases", "gate_grad_dtype", "reproducer",
           "failure_dict", "grad_cell"]

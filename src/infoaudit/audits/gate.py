"""Moved to :mod:`infoaudit.gate.core`; ``infoaudit.audits.gate`` re-exports its public names.

(The numerical-correctness gate: audit a user's own implementation of one quantity.)
"""
from __future__ import annotations

from ..gate.core import (
    Context,
    DtypeResult,
    FlushFlags,
    GateReport,
    GateUsageError,
    Harness,
    Judgement,
    Outcome,
    call_with_timeout,
    default_dtypes,
    describe_impl,
    exact_values,
    fixed_cases,
    framework_adapter,
    gate_dtype,
    grade_case,
    infer_framework,
    install_watchdog,
    judge,
    probes,
    reduce_to_unit,
    reproducer,
    run_gate,
    search_strategy,
)

__all__ = ["FlushFlags", "Judgement", "Context", "grade_case", "judge", "probes", "fixed_cases",
           "search_strategy", "DtypeResult", "GateReport", "reproducer", "gate_dtype", "describe_impl",
           "run_gate", "GateUsageError", "Harness", "Outcome", "call_with_timeout", "default_dtypes",
           "exact_values", "framework_adapter", "infer_framework", "install_watchdog", "reduce_to_unit"]

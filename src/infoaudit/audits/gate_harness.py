"""Moved to :mod:`infoaudit.harness.calls`; ``infoaudit.audits.gate_harness`` re-exports its public names.

(What the gate's value and gradient audits share: calling a user's implementation safely.)
"""
from __future__ import annotations

from ..harness.calls import (
    GateUsageError,
    Harness,
    Outcome,
    ReferenceFailure,
    array_literal,
    array_summary,
    call_with_timeout,
    case_key,
    default_dtypes,
    describe_exception,
    exact_values,
    expected_shape,
    framework_adapter,
    infer_framework,
    install_watchdog,
    jsonable,
    nested_literal,
    py_value,
    reduce_to_unit,
    short_number,
    ulp_text,
)

__all__ = ["GateUsageError", "framework_adapter", "default_dtypes", "infer_framework", "Outcome",
           "install_watchdog", "call_with_timeout", "describe_exception", "Harness", "expected_shape",
           "case_key", "exact_values", "short_number", "ulp_text", "reduce_to_unit", "py_value",
           "nested_literal", "array_literal", "array_summary", "ReferenceFailure", "jsonable"]

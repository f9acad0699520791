"""Moved to :mod:`infoaudit.harness.frameworks`, :mod:`infoaudit.harness.calls`,
:mod:`infoaudit.harness.timeout`, :mod:`infoaudit.reference.cache`,
:mod:`infoaudit.reproducers.literals`, :mod:`infoaudit.results.schema`;
``infoaudit.audits.gate_harness`` re-exports its public names.

(What the gate's value and gradient audits share: calling a user's implementation safely.)
"""
from __future__ import annotations

from ..harness.calls import (
    Harness,
    Outcome,
    ReferenceFailure,
    describe_exception,
    expected_shape,
    reduce_to_unit,
)
from ..harness.frameworks import GateUsageError, default_dtypes, framework_adapter, infer_framework
from ..harness.timeout import call_with_timeout, install_watchdog
from ..reference.cache import case_key, exact_values
from ..reproducers.literals import (
    array_literal,
    array_summary,
    nested_literal,
    py_value,
    short_number,
    ulp_text,
)
from ..results.schema import jsonable

__all__ = ["GateUsageError", "framework_adapter", "default_dtypes", "infer_framework", "Outcome",
           "install_watchdog", "call_with_timeout", "describe_exception", "Harness", "expected_shape",
           "case_key", "exact_values", "short_number", "ulp_text", "reduce_to_unit", "py_value",
           "nested_literal", "array_literal", "array_summary", "ReferenceFailure", "jsonable"]

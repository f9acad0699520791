"""Moved to :mod:`infoaudit.gate.verdict`, :mod:`infoaudit.probes`, :mod:`infoaudit.gate.report`,
:mod:`infoaudit.gate.search`, :mod:`infoaudit.gate.core`, :mod:`infoaudit.harness.frameworks`,
:mod:`infoaudit.harness.calls`, :mod:`infoaudit.harness.timeout`, :mod:`infoaudit.reference.cache`,
:mod:`infoaudit.reproducers.user`; ``infoaudit.audits.gate`` re-exports its public names.

(The numerical-correctness gate: audit a user's own implementation of one quantity.)
"""
from __future__ import annotations

from ..gate.core import describe_impl, run_gate
from ..gate.report import DtypeResult, GateReport
from ..gate.search import gate_dtype
from ..gate.verdict import Context, FlushFlags, Judgement, grade_case, judge
from ..harness.calls import Harness, Outcome, reduce_to_unit
from ..harness.frameworks import GateUsageError, default_dtypes, framework_adapter, infer_framework
from ..harness.timeout import call_with_timeout, install_watchdog
from ..probes import fixed_cases, probes, search_strategy
from ..reference.cache import exact_values
from ..reproducers.user import value_reproducer as reproducer

__all__ = ["FlushFlags", "Judgement", "Context", "grade_case", "judge", "probes", "fixed_cases",
           "search_strategy", "DtypeResult", "GateReport", "reproducer", "gate_dtype", "describe_impl",
           "run_gate", "GateUsageError", "Harness", "Outcome", "call_with_timeout", "default_dtypes",
           "exact_values", "framework_adapter", "infer_framework", "install_watchdog", "reduce_to_unit"]

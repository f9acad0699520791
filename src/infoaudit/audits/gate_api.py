"""Moved to :mod:`infoaudit.gate.api`; ``infoaudit.audits.gate_api`` re-exports its public names.

(Python API of the gate: ``assert_stable(fn, "cross_entropy", framework="torch")``.)
"""
from __future__ import annotations

from ..gate.api import GateFailure, GateUsage, assert_stable, gate

__all__ = ["GateFailure", "GateUsage", "gate", "assert_stable"]

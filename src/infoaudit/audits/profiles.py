"""Moved to :mod:`infoaudit.gate.profiles`; ``infoaudit.audits.profiles`` re-exports its public
names.

(Gate profiles: which grade of the one judge (:mod:`infoaudit.judging`) passes, per quantity x)
"""
from __future__ import annotations

from ..gate.profiles import (
    BUILTIN,
    EXCEPTIONS,
    FORWARD_METRICS,
    GRAD_EXCEPTIONS,
    GRAD_METRICS,
    METRICS,
    PASSING,
    Profile,
    ProfileError,
    Rule,
    Thresholds,
    load,
    parse_rules,
)

__all__ = ["PASSING", "FORWARD_METRICS", "GRAD_METRICS", "METRICS", "EXCEPTIONS", "GRAD_EXCEPTIONS",
           "BUILTIN", "ProfileError", "Rule", "Thresholds", "Profile", "parse_rules", "load"]

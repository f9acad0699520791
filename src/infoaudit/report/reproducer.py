"""Moved to :mod:`infoaudit.reproducers.values`; ``infoaudit.report.reproducer`` re-exports its
public names.

(Copy-paste Python reproducers of findings, in the framework's own terms.)
"""
from __future__ import annotations

from ..reproducers.values import (
    PREAMBLE,
    best_snippet,
    build_args,
    imports_for,
    literal,
    snippet,
    verify,
)

__all__ = ["PREAMBLE", "literal", "build_args", "imports_for", "snippet", "verify", "best_snippet"]

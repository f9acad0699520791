"""Moved to :mod:`infoaudit.run.shrink`; ``infoaudit.audits.shrink`` re-exports its public names.

(Shrinking a finding to a minimal reproducer: a deterministic structural shrinker.)
"""
from __future__ import annotations

from ..run.shrink import Shrinker

__all__ = ["Shrinker"]

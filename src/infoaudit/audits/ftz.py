"""Moved to :mod:`infoaudit.harness.ftz`; ``infoaudit.audits.ftz`` re-exports its public names.

(Flush-to-zero probing: does a framework, on a device, flush subnormal results (FTZ) or read)
"""
from __future__ import annotations

from ..harness.ftz import FTZ, flush, has_subnormal, probe

__all__ = ["FTZ", "probe", "flush", "has_subnormal"]

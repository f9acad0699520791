"""Test support: Hypothesis searches that do not depend on which modules the process imported.

The runner and the gate search inside :func:`infoaudit.strategies.without_local_constants`
(Hypothesis 6.131+ mixes the literals of every local module in ``sys.modules`` into generation;
infoaudit is local when installed editable). Tests that compare runs use the same guard.
"""
from __future__ import annotations

from infoaudit.strategies import without_local_constants

__all__ = ["without_local_constants", "has_local_constants"]


def has_local_constants() -> bool:
    """Whether this Hypothesis mixes local modules' literals into generation."""
    try:
        from hypothesis.internal.conjecture import providers
    except ImportError:
        return False
    return hasattr(providers, "_get_local_constants")

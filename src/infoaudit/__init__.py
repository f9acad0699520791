"""infoaudit: differential testing and numerical-stability audits of ML information quantities."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["compare", "reference", "REGISTRY", "__version__"]


def __getattr__(name):
    if name == "REGISTRY":
        from .quantities import REGISTRY
        return REGISTRY
    if name == "compare":
        from .differential import compare
        return compare
    if name == "assert_stable":
        from .gate.api import assert_stable
        return assert_stable
    raise AttributeError(name)

"""Test support: Hypothesis searches that do not depend on which modules the process imported.

Hypothesis (6.131 and later) draws now and then from the numeric and string literals of every
*local* module in ``sys.modules`` -- infoaudit is local when installed editable (``pip install
-e``), not from a wheel -- so what a group generates depends on the modules the process
happened to import before and during the search (a pool worker, a Dask worker, a first and a
second group in one process differ). Tests comparing runs made in different processes, or
before and after other imports, run them inside :func:`without_local_constants` until the
runner does so itself (``test_merge.test_generation_ignores_imported_modules`` tracks that).
"""
from __future__ import annotations

import contextlib

__all__ = ["without_local_constants", "has_local_constants"]


def _providers():
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:
        return None, None
    if not hasattr(providers, "_get_local_constants"):
        return None, None
    return providers, Constants


def has_local_constants() -> bool:
    """Whether this Hypothesis mixes local modules' literals into generation."""
    return _providers()[0] is not None


@contextlib.contextmanager
def without_local_constants():
    """Within the block Hypothesis sees no local constants (its own global ones stay)."""
    providers, constants = _providers()
    if providers is None:
        yield
        return
    saved = providers._get_local_constants
    empty = constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = saved
        providers.CONSTANTS_CACHE.cache.clear()

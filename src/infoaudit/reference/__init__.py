"""Exact reference values of every registered quantity.

``evaluate(name, *args)`` returns an :class:`Exact` (float64 hi/lo double-double per output
element, correctly rounded, plus ``rounded(dtype)``); ``infoaudit.reference.softmax(z)`` etc. are
shorthands. Inputs are taken as the exact real numbers their (float) bits denote. A certified
float64 fast path answers first where it has one (see :mod:`.fast`); whatever it cannot decide
goes to mpmath with adaptive precision (:mod:`.engine`).

A persistent cache of exact values (:mod:`.cache`) answers ``evaluate`` while one is active in
the current context (:func:`set_active_cache`); with none active nothing changes.
"""
from __future__ import annotations

import contextvars
from functools import lru_cache

import numpy as np
from mpmath import mp

from .engine import Exact, evaluate_unit, hi_lo, to_mp
from .formulas import formula

__all__ = ["Exact", "evaluate", "evaluate_mpmath", "evaluate_uncached", "active_cache", "set_active_cache",
           "reset_active_cache", "clear_memo"]

_ACTIVE_CACHE: contextvars.ContextVar = contextvars.ContextVar("infoaudit_reference_cache", default=None)


def set_active_cache(cache):
    """Let ``cache`` (an object with ``evaluate(name, args, compute)``, e.g. a
    :class:`.cache.ReferenceCache`) answer :func:`evaluate` in this context; returns the token
    for :func:`reset_active_cache`. ``None`` deactivates."""
    return _ACTIVE_CACHE.set(cache)


def reset_active_cache(token) -> None:
    """Restore the cache that was active before :func:`set_active_cache` returned ``token``."""
    _ACTIVE_CACHE.reset(token)


def active_cache():
    """The cache :func:`evaluate` consults in this context, or None."""
    return _ACTIVE_CACHE.get()


def _freeze(x):
    if isinstance(x, list):
        return tuple(_freeze(v) for v in x)
    return x


def _make_runner(formula):
    def run(*unit):
        return formula(*[to_mp(v) if not isinstance(v, int) else v for v in unit])
    return run


@lru_cache(maxsize=200_000)
def _unit_cached(name, frozen_unit):
    unit = [list(v) if isinstance(v, tuple) else v for v in frozen_unit]
    unit = [_thaw(v) for v in unit]
    vals, prec, flags = evaluate_unit(_make_runner(formula(name)), unit)
    with mp.workprec(prec):
        pairs = [hi_lo(v) for v in vals]
    return tuple(pairs), tuple(flags), prec


def clear_memo() -> None:
    """Forget mpmath's in-process memo of unit values (benchmarks time fresh evaluations)."""
    _unit_cached.cache_clear()


def _thaw(v):
    if isinstance(v, (tuple, list)):
        return [_thaw(x) for x in v]
    return v


def evaluate_mpmath(name, *args) -> Exact:
    """Exact values by mpmath alone (the reference of record), no fast path."""
    from .. import quantities

    q = quantities.get(name)
    vals = quantities.validate(q, args)
    shape = quantities.output_shape(q, vals)
    his, los, und = [], [], []
    maxprec = 0
    for unit in quantities.units(q, vals):
        pairs, flags, prec = _unit_cached(q.name, _freeze(list(unit)))
        maxprec = max(maxprec, prec)
        for (h, lo), f in zip(pairs, flags):
            his.append(h)
            los.append(lo)
            und.append(f)
    ex = Exact(np.array(his, dtype=np.float64).reshape(shape), np.array(los, dtype=np.float64).reshape(shape),
               undecided=np.array(und, dtype=bool).reshape(shape), source="mpmath")
    ex.max_prec = maxprec
    return ex


def evaluate(name, *args) -> Exact:
    """Exact values of quantity ``name`` on ``args`` (the DESIGN table's argument order); served
    by the active cache, if any (:func:`set_active_cache`)."""
    cache = _ACTIVE_CACHE.get()
    if cache is not None:
        return cache.evaluate(name, args, evaluate_uncached)
    return evaluate_uncached(name, *args)


def evaluate_uncached(name, *args) -> Exact:
    """:func:`evaluate` without the cache: the fast path, then mpmath for what it leaves undecided."""
    from .. import quantities
    from . import fast

    q = quantities.get(name)
    if q.name in fast.FAST:
        vals = quantities.validate(q, args)
        res = fast.FAST[q.name](*vals)
        if res is not None:
            hi, lo, ok = res
            undecided = np.zeros(hi.shape, bool)
            if not ok.all():
                ex = evaluate_mpmath(q.name, *_undecided_rows(q, vals, ok))
                hi, lo = hi.copy(), lo.copy()
                _fill(q, ok, (hi, ex.hi), (lo, ex.lo), (undecided, ex.undecided))
                out = Exact(hi, lo, undecided=undecided, source="fast+mpmath")
                out.max_prec = ex.max_prec  # the escalated units' precision (checked against the budget)
                return out
            return Exact(hi, lo, undecided=undecided, source="fast")
    return evaluate_mpmath(q.name, *args)


def _undecided_rows(q, vals, ok):
    """Inputs restricted to the units that hold an undecided element (rows for row quantities)."""
    from .. import quantities

    bad = ~ok
    if q.structure == quantities.ROW:
        rows = bad.reshape(-1, bad.shape[-1]).any(axis=1)
    else:
        rows = bad.reshape(-1)
    out = []
    for arg, v in zip(q.args, vals):
        if arg.is_float_array and q.structure == quantities.ELEMENTWISE:
            v = np.broadcast_to(v, bad.shape)  # elementwise arguments broadcast to the output
        if arg.is_float_array:
            n = v.shape[-1] if q.structure != quantities.ELEMENTWISE else 1
            out.append(v.reshape(-1, n)[rows] if q.structure != quantities.ELEMENTWISE else v.reshape(-1)[rows])
        elif arg.kind == quantities.LABEL:
            out.append(v.reshape(-1)[rows])
        else:
            out.append(v)
    return out


def _fill(q, ok, *pairs):
    """Write mpmath's values for the escalated units into the fast path's arrays, in place."""
    from .. import quantities

    bad = ~ok
    for dst, src in pairs:
        if q.structure == quantities.ROW:
            rows = bad.reshape(-1, bad.shape[-1]).any(axis=1)
            dst.reshape(-1, bad.shape[-1])[rows] = src
        else:
            dst.reshape(-1)[bad.reshape(-1)] = src.reshape(-1)


def __getattr__(name):
    from .. import quantities

    if name in quantities.REGISTRY:
        def f(*args):
            return evaluate(name, *args)
        f.__name__ = name
        f.__doc__ = quantities.REGISTRY[name].doc
        return f
    raise AttributeError(name)

"""Shrinking a finding to a minimal reproducer: a deterministic structural shrinker.

The shrinker knows nothing of the runner: like hypothesis's shrinker it is handed a predicate,
``holds(args) -> bool`` ("does the finding still show on these inputs?"), which the caller builds
from its own evaluation (the run audit: the exact reference, the target's call and the judge).
:class:`Shrinker` reduces the inputs of one quantity in one dtype: one unit (row, element or
table), then one repeated value per array, then ddmin over row entries (labels follow their
column), then simpler values (0, integers, fewer significant bits) -- each step kept only if the
predicate holds, within a step budget and a budget of input elements evaluated (the reference's
cost). Deterministic: no randomness, no clock.
"""
from __future__ import annotations

import math

import numpy as np

from .. import quantities as Q
from ..dtypes import cast, dtype_name


def _simplicity(v: float):
    """Smaller is simpler: zero, then few significant bits, then small magnitude."""
    if v == 0 or v != v:
        return (0, 0, 0.0)
    if math.isinf(v):
        return (1, 0, 0.0)
    m, e = math.frexp(abs(v))
    bits = 0
    while m != int(m) and bits < 60:
        m *= 2
        bits += 1
    return (2, bits, abs(e))


def _candidates(v: float, kind: str, dname: str):
    out = [0.0]
    if kind in (Q.PROBS, Q.PROB, Q.TABLE, Q.TARGET01):
        out += [1.0, 0.5]
    else:
        out += [1.0, -1.0]
    if math.isfinite(v) and v != 0:
        out.append(float(round(v)))
        m, e = math.frexp(v)
        for bits in (1, 2, 3, 4, 6, 8, 12, 16, 24):
            try:
                out.append(math.ldexp(round(m * 2 ** bits) / 2 ** bits, e))
            except OverflowError:
                pass
    res = []
    for c in out:
        cc = float(cast(np.array([c]), dname).astype(np.float64)[0])
        if cc != v and _simplicity(cc) < _simplicity(v) and cc not in res:
            res.append(cc)
    return res


class Shrinker:
    """Deterministic structural shrinker: one unit, fewer entries, simpler values.

    ``quantity``: the registry entry (or its name); ``dtype``: the audited dtype (candidate values
    are rounded to it); ``holds(args) -> bool``: the caller's predicate (an exception counts as
    False); ``budget``: predicate calls; ``elements``: input elements evaluated in all (None: no
    limit). :meth:`run` returns the smallest inputs found; ``steps`` the predicate calls made.
    """

    def __init__(self, quantity, dtype, holds, budget: int, elements: int | None = None):
        self.q = Q.get(quantity)
        self.dtype = dtype_name(dtype)
        self.holds = holds
        self.budget = budget
        self.elements = elements if elements is not None else 10 ** 12
        self.spent = 0
        self.steps = 0
        self._worst_col = None

    def test(self, args) -> bool:
        size = sum(int(np.size(a)) for a, arg in zip(args, self.q.args) if arg.is_float_array)
        if self.steps >= self.budget or (self.spent + size > self.elements and self.steps > 0):
            return False
        self.steps += 1
        self.spent += size
        try:
            Q.validate(self.q, args)
        except Q.InputError:
            return False
        try:
            return bool(self.holds(tuple(args)))
        except Exception:  # noqa: BLE001 - an input the evaluation cannot take does not show the finding
            return False

    def run(self, args, index):
        args = tuple(args)
        self._worst_col = int(index[-1]) if index and self.q.structure in (Q.ROW, Q.ELEMENTWISE) else None
        args = self._one_unit(args, index)
        args = self._uniformize(args)
        args = self._drop_entries(args)
        args = self._simplify_values(args)
        return args

    # -- step 1b: a whole array replaced by one repeated value (its largest, smallest, or median entry)
    def _uniformize(self, args):
        args = list(args)
        for ai, arg in enumerate(self.q.args):
            if not arg.is_float_array or args[ai].size <= 2:
                continue
            a = args[ai].astype(np.float64)
            fin = a[np.isfinite(a)]
            if fin.size == 0 or np.all(a == a.ravel()[0]):
                continue
            for v in (fin.max(), fin.min(), float(np.median(fin))):
                cand = list(args)
                cand[ai] = cast(np.where(np.isfinite(a), v, a), self.dtype)
                if self.test(tuple(cand)):
                    args = cand
                    break
        return tuple(args)

    # -- step 1: the unit holding the worst element
    def _one_unit(self, args, index):
        q = self.q
        st = q.structure
        lead = index[:-1] if st in (Q.ROW, Q.ADAPTIVE) else index
        if st == Q.ELEMENTWISE:
            cand = []
            for a, arg in zip(args, q.args):
                if arg.is_float_array:
                    b = np.broadcast_to(a, self._out_shape(args))
                    cand.append(np.asarray(b[index]).reshape(1, 1).copy())
                else:
                    cand.append(a)
        else:
            nred = 2 if st == Q.TABLE_REDUCE else 1
            cand = []
            for a, arg in zip(args, q.args):
                if arg.kind == Q.WEIGHT:
                    cand.append(a)  # adaptive softmax: weights are shared by every row
                elif arg.is_float_array:
                    sub = a[tuple(lead[: a.ndim - nred])]
                    cand.append(np.asarray(sub).reshape((1,) + sub.shape[-nred:]).copy())
                elif arg.kind == Q.LABEL:
                    cand.append(np.asarray(a[tuple(lead[: a.ndim])]).reshape(1).astype(np.int64))
                elif arg.kind == Q.SAMPLES:
                    cand.append(np.asarray(a[tuple(lead[: a.ndim - 1])]).reshape(1, -1).astype(np.int64))
                else:
                    cand.append(a)
        cand = tuple(cand)
        if sum(np.size(v) for v in cand if isinstance(v, np.ndarray)) < \
                sum(np.size(v) for v in args if isinstance(v, np.ndarray)) and self.test(cand):
            return cand
        return args

    def _out_shape(self, args):
        return np.broadcast_shapes(*[a.shape for a, arg in zip(args, self.q.args) if arg.is_float_array])

    # -- step 2: ddmin over row entries (labels follow their column); tables drop rows/columns
    def _drop_entries(self, args):
        q = self.q
        if q.structure in (Q.ROW, Q.ROW_REDUCE):
            return self._ddmin_axis(args, -1)
        if q.structure == Q.TABLE_REDUCE:
            args = self._ddmin_axis(args, -2)
            return self._ddmin_axis(args, -1)
        if q.structure == Q.ELEMENTWISE:
            return self._ddmin_axis(args, -1)
        return args

    def _take(self, args, axis, keep):
        keep = np.asarray(keep)
        out = []
        for a, arg in zip(args, self.q.args):
            if arg.is_float_array:
                out.append(np.take(a, keep, axis=axis))
            elif arg.is_index_array and axis == -1:
                pos = np.searchsorted(keep, a)
                pos = np.minimum(pos, len(keep) - 1)
                if not np.array_equal(keep[pos], a):
                    return None  # a label's column was removed
                out.append(pos.astype(np.int64).reshape(a.shape))
            else:
                out.append(a)
        return tuple(out)

    def affordable(self, args, fraction=1.0) -> bool:
        size = sum(int(np.size(a)) for a, arg in zip(args, self.q.args) if arg.is_float_array) * fraction
        return self.steps < self.budget and self.spent + size <= self.elements

    def _importance(self, args, axis):
        """Column order for the greedy truncation: the worst column, labels, extremes, non-finite, |value|."""
        floats = [a.astype(np.float64) for a, arg in zip(args, self.q.args) if arg.is_float_array]
        n = floats[0].shape[axis]
        first = []
        if self._worst_col is not None and axis == -1 and self._worst_col < n:
            first.append(self._worst_col)
        for a, arg in zip(args, self.q.args):
            if arg.is_index_array and axis == -1:
                first += [int(v) for v in a.ravel()]
        score = np.zeros(n)
        for f in floats:
            m = np.moveaxis(f, axis, -1).reshape(-1, n)
            with np.errstate(invalid="ignore", over="ignore"):
                nonfin = (~np.isfinite(m)).any(axis=0)
                mag = np.nan_to_num(np.abs(m), nan=0.0, posinf=0.0, neginf=0.0).max(axis=0)
                tiny = np.where(np.abs(m) > 0, np.abs(m), np.inf).min(axis=0)
            score = np.maximum(score, np.where(nonfin, np.inf, mag))
            first += [int(np.argmax(np.nan_to_num(m, nan=-np.inf).max(axis=0)))]
            first += [int(np.argmin(tiny))]
        rest = list(np.argsort(-score, kind="stable"))
        seen, order = set(), []
        for i in first + [int(i) for i in rest]:
            if i not in seen:
                seen.add(i)
                order.append(i)
        return order

    def _ddmin_axis(self, args, axis):
        first = next(a for a, arg in zip(args, self.q.args) if arg.is_float_array)
        n = first.shape[axis]
        keep = np.arange(n)
        # greedy truncation first: the k most important columns, k = 1, 2, 4, ... (cheap references)
        if n > 2:
            order = self._importance(args, axis)
            k = 1
            while k < n and self.steps < self.budget:
                trial = np.array(sorted(order[:k]))
                cand = self._take(args, axis, trial)
                if cand is not None and self.test(cand):
                    args, keep = cand, np.arange(len(trial))
                    break
                k *= 2
            n = len(keep)
        chunk = max(1, len(keep) // 2)
        while chunk >= 1 and len(keep) > 1 and self.steps < self.budget:
            i = 0
            removed_any = False
            while i < len(keep) and len(keep) > 1 and self.steps < self.budget:
                trial = np.concatenate([keep[:i], keep[i + chunk:]])
                if len(trial) == 0 or not self.affordable(args, len(trial) / max(n, 1)):
                    i += chunk
                    continue
                cand = self._take(args, axis, trial)
                if cand is not None and self.test(cand):
                    keep = trial
                    removed_any = True
                else:
                    i += chunk
            if not removed_any or chunk > len(keep):
                chunk //= 2
            if chunk > len(keep) // 2 and len(keep) > 1:
                chunk = max(1, len(keep) // 2)
        out = self._take(args, axis, keep)
        return out if out is not None else args

    # -- step 3: simpler values
    def _simplify_values(self, args):
        args = list(args)
        q = self.q
        for ai, arg in enumerate(q.args):
            if self.steps >= self.budget:
                break
            if arg.is_float_array:
                a = args[ai]
                flat = a.astype(np.float64).ravel()
                # whole-array replacement by one simple value first, then element by element
                for pos in range(flat.size):
                    if self.steps >= self.budget:
                        break
                    for c in _candidates(float(flat[pos]), arg.kind, self.dtype):
                        trial = flat.copy()
                        trial[pos] = c
                        cand = list(args)
                        cand[ai] = cast(trial.reshape(a.shape), self.dtype)
                        if self.test(tuple(cand)):
                            flat = trial
                            args = cand
                            break
            elif arg.kind == Q.LABEL:
                a = args[ai]
                if a.size and int(a.ravel()[0]) != 0:
                    cand = list(args)
                    cand[ai] = np.zeros_like(a)
                    if self.test(tuple(cand)):
                        args = cand
            elif arg.is_scalar:
                for c in (1.0, 0.5, 2.0, 0.1) if arg.kind != Q.EPS else (0.0, 0.5, 1.0, 0.1):
                    v = float(cast(np.array([c]), self.dtype).astype(np.float64)[0])
                    if v != args[ai] and _simplicity(v) < _simplicity(args[ai]):
                        cand = list(args)
                        cand[ai] = v
                        if self.test(tuple(cand)):
                            args = cand
                            break
        return tuple(args)



__all__ = ["Shrinker"]

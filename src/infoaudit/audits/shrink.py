"""Shrinking a runner finding to a minimal reproducer (step 4 of :mod:`.runner`).

For each cell, the worst input per metric is reduced by a deterministic structural shrinker: one
unit (row, element or table), then ddmin over row entries (labels follow their column), then
simpler values (0, integers, fewer significant bits) -- each step kept only if the finding
persists, within a step budget and a budget of input elements sent to the reference. The shrunk
input is re-judged (:func:`_rejudge`) and gets the reference's amplification (scale / |value|).
"""
from __future__ import annotations

import math

import numpy as np

from .. import quantities as Q
from ..dtypes import cast
from ..reference.formulas import formula
from .runner import (ULP_SHRINK_THRESHOLD, CellState, Group, Worst, _shift_check, fingerprint, invariant_violations,
                     judge, scaled_errors)


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
    """Deterministic structural shrinker: one unit, fewer entries, simpler values."""

    def __init__(self, group: Group, cell: CellState, predicate, budget: int, elements: int | None = None):
        self.g = group
        self.q = group.q
        self.cell = cell
        self.pred = predicate
        self.budget = budget
        self.elements = elements if elements is not None else (group.shrink_elements or 10 ** 12)
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
            exact = self.g.exact(args)
            y, errs, _ = judge(self.q, self.cell.target, list(args), exact, self.g.dtype)
        except Exception:  # noqa: BLE001
            return False
        return bool(self.pred(args, y, errs, exact))

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
                cand[ai] = cast(np.where(np.isfinite(a), v, a), self.g.dtype)
                if self.test(tuple(cand)):
                    args = cand
                    break
        return tuple(args)

    # -- step 1: the unit holding the worst element
    def _one_unit(self, args, index):
        q = self.q
        st = q.structure
        lead = index[:-1] if st == Q.ROW else index
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
                if arg.is_float_array:
                    sub = a[tuple(lead[: a.ndim - nred])]
                    cand.append(np.asarray(sub).reshape((1,) + sub.shape[-nred:]).copy())
                elif arg.kind == Q.LABEL:
                    cand.append(np.asarray(a[tuple(lead[: a.ndim])]).reshape(1).astype(np.int64))
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
            elif arg.kind == Q.LABEL and axis == -1:
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
            if arg.kind == Q.LABEL and axis == -1:
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
                    for c in _candidates(float(flat[pos]), arg.kind, self.g.dtype):
                        trial = flat.copy()
                        trial[pos] = c
                        cand = list(args)
                        cand[ai] = cast(trial.reshape(a.shape), self.g.dtype)
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
                    v = float(cast(np.array([c]), self.g.dtype).astype(np.float64)[0])
                    if v != args[ai] and _simplicity(v) < _simplicity(args[ai]):
                        cand = list(args)
                        cand[ai] = v
                        if self.test(tuple(cand)):
                            args = cand
                            break
        return tuple(args)


def _predicate(metric, w: Worst, group=None):
    if metric == "nonfinite":
        return lambda args, y, errs, exact: bool((errs.nonfinite == w.klass).any())
    if metric == "scaled":
        thr_s = max(ULP_SHRINK_THRESHOLD, 0.5 * w.scaled)

        def pred(args, y, errs, exact):
            sc = scaled_errors(group.q, list(args), errs, exact, group.dtype)
            return bool(np.nan_to_num(sc, nan=0.0).max() >= thr_s)
        return pred
    thr = max(ULP_SHRINK_THRESHOLD, 0.5 * w.ulp)
    return lambda args, y, errs, exact: bool(np.nan_to_num(errs.ulp, nan=0.0).max() >= thr)


def _cost_rank(cell):
    """Cheap targets drive the shared shrinking (a jit backend compiles every new shape)."""
    b = cell.target.backend
    return (1 if b.startswith("jax") else 0, 0 if cell.target.mod is None else 0)


def _finding_pred(group, cell, metric, w):
    if metric == "invariant" and w.klass.startswith("shift"):
        return _shift_predicate(group, cell)
    if metric == "invariant":
        def pred(args, y, errs, exact, _k=w.klass):
            return _k in invariant_violations(group.q, list(args), y, exact, group.dtype)
        return pred
    return _predicate(metric, w, group)


def shrink_group(group: Group, budget: int):
    """Shrink every cell's findings; cells whose worst input and finding coincide share one shrink.

    The cheapest cell of each set drives the shrinker; the reproducer it finds is re-judged on
    the others and kept where it still shows their finding; where it does not, that cell is
    shrunk on its own with a quarter of the budget.
    """
    jobs = {}
    for cell in group.cells:
        if cell.target.unsupported:
            continue
        for metric in ("nonfinite", "invariant", "scaled", "ulp"):
            w = cell.worst.get(metric)
            if w is None or (metric == "ulp" and w.ulp < ULP_SHRINK_THRESHOLD) or \
                    (metric == "scaled" and not w.scaled >= ULP_SHRINK_THRESHOLD):
                continue
            jobs.setdefault((metric, w.klass, fingerprint(w.args)), []).append(cell)
    for (metric, klass, _), cells in jobs.items():
        cells = sorted(cells, key=_cost_rank)
        driver = cells[0]
        w = driver.worst[metric]
        sh = Shrinker(group, driver, _finding_pred(group, driver, metric, w), budget)
        small = sh.run(w.args, w.index)
        for k, cell in enumerate(cells):
            wc = cell.worst[metric]
            res = _rejudge(group, cell, small, metric, klass)
            ok = res is not None and (metric != "ulp" or res.ulp >= max(ULP_SHRINK_THRESHOLD, 0.5 * wc.ulp)) and \
                (metric != "scaled" or res.scaled >= max(ULP_SHRINK_THRESHOLD, 0.5 * wc.scaled))
            steps = sh.steps if k == 0 else 1
            if not ok:
                sh2 = Shrinker(group, cell, _finding_pred(group, cell, metric, wc), max(4, budget // 4))
                res = _rejudge(group, cell, sh2.run(wc.args, wc.index), metric, klass)
                steps = sh2.steps
            wc.shrunk = res
            wc.shrink_steps = steps
            if res is not None:
                res.amplification = amplification(group.q, res)


def _shift_predicate(group, cell):
    def pred(args, y, errs, exact):
        return _shift_check(group.q, cell.target, list(args), y, errs, exact, group.dtype) is not None
    return pred


def _rejudge(group, cell, args, metric, klass):
    q = group.q
    try:
        exact = group.exact(args)
        y, errs, _ = judge(q, cell.target, list(args), exact, group.dtype)
    except Exception:  # noqa: BLE001
        return None
    if metric == "nonfinite":
        hits = np.argwhere(errs.nonfinite == klass)
        if not hits.size:
            return None
        idx = tuple(int(i) for i in hits[0])
        val = float((errs.nonfinite != "").sum())
    elif metric == "invariant":
        inv = invariant_violations(q, list(args), y, exact, group.dtype)
        if klass.startswith("shift"):
            sh = _shift_check(q, cell.target, list(args), y, errs, exact, group.dtype)
            if sh is not None:
                inv[klass] = sh[0]
        if klass not in inv:
            return None
        idx = tuple(int(i) for i in np.argwhere(inv[klass])[0])
        val = float(inv[klass].sum())
    elif metric == "scaled":
        sc = np.nan_to_num(scaled_errors(q, list(args), errs, exact, group.dtype), nan=-1.0)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(sc)), sc.shape))
        val = float(sc[idx])
    else:
        u = np.nan_to_num(errs.ulp, nan=-1.0)
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(u)), u.shape))
        val = float(u[idx])
    return group._worst(metric, val, list(args), idx, y, errs, exact, klass, "shrunk", None)


def amplification(q, w: Worst):
    """scale / |value| of the reference formula at the worst element (a condition-number proxy)."""
    import mpmath
    from mpmath import mp

    if not (math.isfinite(w.exact_hi) and w.exact_hi != 0):
        return None
    try:
        vals = Q.validate(q, list(w.args))
        shape = Q.output_shape(q, vals)
        units = list(Q.units(q, vals))
        if q.structure == Q.ROW:
            ui = int(np.ravel_multi_index(w.index[:-1], shape[:-1])) if len(shape) > 1 else 0
            oi = w.index[-1]
        else:
            ui = int(np.ravel_multi_index(w.index, shape)) if shape else 0
            oi = 0
        unit = units[ui]
        with mp.workprec(80):
            conv = [mpmath.mpf(v) if isinstance(v, float) else
                    ([mpmath.mpf(x) for x in v] if isinstance(v, list) and v and not isinstance(v[0], list) else
                     ([[mpmath.mpf(x) for x in r] for r in v] if isinstance(v, list) else v)) for v in unit]
            out = formula(q.name)(*conv)
            val, scale = out[oi]
            if val == 0 or not mpmath.isfinite(val):
                return None
            return float(abs(mpmath.mpf(scale) / val))
    except Exception:  # noqa: BLE001
        return None


__all__ = ["shrink_group", "Shrinker", "amplification"]

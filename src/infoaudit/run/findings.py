"""Findings after the search: each cell's worst inputs shrunk to minimal reproducers, then run
on the group's other cells.
"""
from __future__ import annotations

import numpy as np

from ..judging import profiles as JP
from ..judging.grades import CODE, GRADES
from .group import (
    SHIFT_INVARIANCE,
    SHRUNK_METRICS,
    Group,
    element_value,
    finding_masks,
    fingerprint,
    rank_key,
    scores,
    shift_check,
)

_EN, _UN, _NF = CODE["envelope"], CODE["unstable"], CODE["nonfinite"]

__all__ = ["shrink_findings", "compare_on_findings"]


def _same_nonfinite(classes, klass):
    """Elements of ``classes`` (non-finite class names) in the class ``klass``; NaN from inf - inf
    and a plain NaN count as one (the class of a NaN depends on whether the batch holds an
    infinite input anywhere, which removing rows changes)."""
    nan = ("nan", "nan_inf_arith")
    return np.isin(classes, nan) if klass in nan else (classes == klass)


def _finding_holds(group, cell, metric, w):
    """The predicate handed to the shrinker: does ``w``'s finding show on ``args``?"""
    p = group.judge_profile
    code = CODE.get(w.grade, _UN)

    def holds(args):
        args = list(args)
        if metric == "invariant" and w.klass == SHIFT_INVARIANCE:
            _, j, _ = group.judge_cell(cell, args)
            return shift_check(group.q, cell.target, args, j, group.exact(args), group.dtype, p,
                                cell.ftz) is not None
        _, j, _ = group.judge_cell(cell, args)
        judged = JP.judged_mask(j, p)
        if metric == "nonfinite":
            return bool((judged & (j.codes == _NF) & _same_nonfinite(j.nonfinite, w.klass)).any())
        if metric == "invariant":
            return w.klass in group.invariant_masks(args, j, judged)
        band, wc = finding_masks(j, judged)
        if metric == "grade":
            sc = scores(j)
            return bool((band & (j.codes >= code) & (np.nan_to_num(sc, nan=np.inf) >= 0.5 * min(w.value, 1e3))).any())
        return bool((wc & (j.rel >= 0.5 * w.rel)).any())   # well_conditioned
    return holds


def _needs_shrinking(metric, w) -> bool:
    """Non-finite, invariant and well-conditioned findings always; the worst-grade input when it
    is beyond the conditioning (``envelope`` or ``unstable``)."""
    return metric != "grade" or CODE.get(w.grade, 0) in (_EN, _UN)


def _rejudge(group, cell, args, metric, klass):
    """The finding ``metric`` of ``cell`` on ``args`` as a Worst (None when it does not show)."""
    p = group.judge_profile
    try:
        exact = group.exact(list(args))
        _, j, _ = group.judge_cell(cell, args, exact)
    except Exception:  # noqa: BLE001
        return None
    judged = JP.judged_mask(j, p)
    if metric == "nonfinite":
        hits = np.argwhere(judged & (j.codes == _NF) & _same_nonfinite(j.nonfinite, klass))
        if not hits.size:
            return None
        idx, val = tuple(int(i) for i in hits[0]), float(np.count_nonzero(judged & (j.codes == _NF)))
        klass = str(j.nonfinite[idx])
    elif metric == "invariant":
        inv = group.invariant_masks(list(args), j, judged)
        if klass == SHIFT_INVARIANCE:
            sh = shift_check(group.q, cell.target, list(args), j, exact, group.dtype, p, cell.ftz)
            if sh is not None:
                inv[klass] = sh[0]
        if klass not in inv:
            return None
        idx, val = tuple(int(i) for i in np.argwhere(inv[klass])[0]), float(inv[klass].sum())
    else:
        band, wc = finding_masks(j, judged)
        if metric == "grade":
            idx = j.worst_index(band)
            if idx is None:
                return None
            val = rank_key(j, idx, scores(j))[1]
        else:
            if not wc.any():
                return None
            r = np.where(wc, j.rel, -1.0)
            idx = tuple(int(k) for k in np.unravel_index(int(np.argmax(r)), r.shape))
            val = float(r[idx])
    return group.worst_record(metric, val, list(args), idx, j, exact, klass, "shrunk", None)


def _cost_rank(cell):
    """Cheap targets drive the shared shrinking (a jit backend compiles every new shape)."""
    return 1 if cell.target.backend.startswith("jax") else 0


def shrink_findings(group: Group, budget: int):
    """Shrink every cell's findings (:data:`SHRUNK_METRICS`) with :class:`.shrink.Shrinker`;
    cells whose worst input and finding coincide share one shrink.

    The cheapest cell of each set drives the shrinker; the reproducer it finds is re-judged on
    the others and kept where it still shows their finding; where it does not, that cell is
    shrunk on its own with a quarter of the budget.
    """
    from .shrink import Shrinker

    jobs = {}
    for cell in group.cells:
        if cell.target.unsupported:
            continue
        for metric in SHRUNK_METRICS:
            w = cell.worst.get(metric)
            if w is None or not _needs_shrinking(metric, w):
                continue
            jobs.setdefault((metric, w.klass, fingerprint(w.args)), []).append(cell)
    for (metric, klass, _), cells in jobs.items():
        cells = sorted(cells, key=_cost_rank)
        driver = cells[0]
        w = driver.worst[metric]
        sh = Shrinker(group.q, group.dtype, _finding_holds(group, driver, metric, w), budget, group.shrink_elements)
        small = sh.run(w.args, w.index)
        for k, cell in enumerate(cells):
            wc = cell.worst[metric]
            res = _rejudge(group, cell, small, metric, klass)
            ok = res is not None and _finding_holds(group, cell, metric, wc)(small)
            steps = sh.steps if k == 0 else 1
            if not ok:
                sh2 = Shrinker(group.q, group.dtype, _finding_holds(group, cell, metric, wc), max(4, budget // 4),
                               group.shrink_elements)
                res = _rejudge(group, cell, sh2.run(wc.args, wc.index), metric, klass)
                steps = sh2.steps
            wc.shrunk = res
            wc.shrink_steps = steps


def compare_on_findings(group: Group):
    """Run every finding's input (the shrunk one where there is one) on the other live cells of
    the group: ``Worst.others`` holds their result at the same element (ULPs, relative error,
    grade), so the report can name the best implementation on that input."""
    for cell in group.cells:
        for metric in SHRUNK_METRICS:
            w = cell.worst.get(metric)
            if w is None:
                continue
            case = w.shrunk or w
            others = []
            for other in group.cells:
                if other is cell or other.target.unsupported:
                    continue
                try:
                    _, j, _ = group.judge_cell(other, case.args)
                    i = tuple(case.index)
                    others.append({"backend": other.target.backend, "variant": other.target.variant,
                                   "device": other.target.device, "call": other.target.call,
                                   "computed": element_value(j.computed, i), "ulp": element_value(j.ulp, i), "rel": element_value(j.rel, i),
                                   "grade": GRADES[int(j.codes[i])]})
                except Exception:  # noqa: BLE001 - the other cell refuses this input: nothing to compare
                    continue
            case.others = others

"""Compiled cells against their eager op on the same inputs (the k-times rule's ratio in the run).

A target with a ``baseline`` (a compiled variant: ``Op.baseline`` names the eager variant it
compiles) is paired with the cell of that variant on the same backend and device. On every input
both judged, the ratio of their errors against the exact value is accumulated with
:class:`infoaudit.judging.relative.Ratio` (per element and per cell); the input where the
per-element ratio was largest is kept, cut to the unit (row, element or table) that holds it and
re-run on both: when the candidate is still worse there, the cell's ``relative`` record carries
a reproducer that runs both (:func:`infoaudit.reproducers.compiled.snippet`).
"""
from __future__ import annotations

import numpy as np

from .. import quantities as Q
from ..judging import profiles as JP
from ..judging.relative import Ratio, element_errors, element_ratios

__all__ = ["pair_cells", "relate", "relative_record", "unit_slice"]

MAX_CASE_ELEMENTS = 4096   # a reproducer's input is cut to one unit; an uncut input above this is not kept


def pair_cells(cells) -> list:
    """[(candidate index, baseline index)] of the cells whose target names a baseline variant
    present in ``cells``; sets each candidate's ``relative`` accumulator."""
    pairs = []
    for i, c in enumerate(cells):
        t = c.target
        if not getattr(t, "baseline", ""):
            continue
        for k, o in enumerate(cells):
            u = o.target
            if (u.variant, u.backend, u.device) == (t.baseline, t.backend, t.device):
                c.relative = Ratio(candidate=t.variant, baseline=t.baseline, label=f"eager {t.baseline}")
                pairs.append((i, k))
                break
    return pairs


def relate(group, pairs, judgements: dict, inputs, source=""):
    """Add one input's errors of every (candidate, baseline) pair both judged on it."""
    p = group.judge_profile
    for i, k in pairs:
        jc, jb = judgements.get(i), judgements.get(k)
        if jc is None or jb is None:
            continue
        c = group.cells[i]
        before = c.relative.max_element
        ec = element_errors(jc, JP.judged_mask(jc, p))
        eb = element_errors(jb, JP.judged_mask(jb, p))
        c.relative.add(ec, eb, key=source if isinstance(source, str) else None)
        if c.relative.max_element > before and c.relative.worst:
            c.relative_case = (tuple(v.copy() if isinstance(v, np.ndarray) else v for v in inputs),
                               tuple(c.relative.worst["index"]))


def unit_slice(q, inputs, index):
    """(inputs of the unit holding output element ``index``, that element's index in them):
    the row (``row``, ``row_reduce``), the table (``table_reduce``) or the element
    (``elementwise``), with a leading axis of length 1 kept where the original had one."""
    index = tuple(index)
    out = []
    if q.structure == Q.ELEMENTWISE:
        arrays = [v for v in inputs if isinstance(v, np.ndarray)]
        shape = np.broadcast_shapes(*[a.shape for a in arrays]) if arrays else ()
        for v in inputs:
            out.append(np.broadcast_to(v, shape)[index].reshape(1).copy() if isinstance(v, np.ndarray) else v)
        return out, (0,)
    lead = index[:-1] if q.structure == Q.ROW else index
    for v, a in zip(inputs, q.args):
        if isinstance(v, np.ndarray) and v.ndim > len(lead) and lead:
            out.append(v[lead][None, ...].copy())
        elif isinstance(v, np.ndarray) and a.kind == Q.LABEL and lead:
            out.append(np.asarray(v[lead]).reshape(1).copy())
        else:
            out.append(v.copy() if isinstance(v, np.ndarray) else v)
    if not lead:
        return out, index
    return out, ((0,) + (index[-1:] if q.structure == Q.ROW else ()))


def _ratio_on(group, ci, bi, inputs, index):
    """(per-element ratio at ``index``, candidate value, baseline value, expected) on ``inputs``."""
    exact = group.exact(list(inputs))
    _, jc, _ = group.judge_cell(group.cells[ci], inputs, exact)
    _, jb, _ = group.judge_cell(group.cells[bi], inputs, exact)
    p = group.judge_profile
    r = element_ratios(element_errors(jc, JP.judged_mask(jc, p)), element_errors(jb, JP.judged_mask(jb, p)))
    return float(r[index]), float(jc.computed[index]), float(jb.computed[index]), float(jc.expected[index])


def relative_record(group, pairs, i: int) -> dict | None:
    """The cell's ``relative`` record (:meth:`Ratio.summary`) and, where the candidate is worse,
    a reproducer case that runs both: ``case`` (encoded args, index, values) and ``snippet``."""
    from ..reproducers.compiled import snippet
    from ..results import schema as R

    c = group.cells[i]
    if getattr(c, "relative", None) is None:
        return None
    rec = c.relative.summary()
    case = getattr(c, "relative_case", None)
    if not (c.relative.ratio > 1 and case is not None):
        return rec
    k = next(b for a, b in pairs if a == i)
    inputs, index = case
    found = None
    try:
        cut = [unit_slice(group.q, list(inputs), index)]
    except (IndexError, ValueError):   # broadcast arguments: keep the whole input
        cut = []
    for args, idx in cut + [(list(inputs), index)]:
        if sum(int(np.size(v)) for v in args if isinstance(v, np.ndarray)) > MAX_CASE_ELEMENTS:
            continue
        try:
            r, yc, yb, ye = _ratio_on(group, i, k, args, idx)
        except Exception:  # noqa: BLE001 - the reference or a target refusing the cut input
            continue
        if r > 1:
            found = (args, idx, r, yc, yb, ye)
            break
    if found is None:
        rec["reproducer"] = None
        rec["reproducer_why"] = "the candidate was not worse on the unit cut out of the input (or it was too large)"
        return rec
    args, idx, r, yc, yb, ye = found
    base = group.cells[k].target
    cand = c.target
    rc = {"args": R.encode_args(args), "index": list(idx), "ratio": R.num(r), "computed": R.num(yc),
          "baseline_computed": R.num(yb), "expected": R.num(ye)}
    rec["case"] = rc
    rec["reproducer"] = snippet(group.q.name, group.dtype, cand.device, cand.call, base.call, rc)
    return rec

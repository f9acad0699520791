"""A cell's record in the results JSON (summary, grades, findings with reproducers).
"""
from __future__ import annotations

import math

import numpy as np

from .group import CellState, Group, magnitude_label
from .relative_cells import relative_record

__all__ = ["cell_dict"]


def cell_dict(group: Group, c: CellState, encode=True) -> dict:
    from ..results import schema as R

    t = c.target
    ulps = np.concatenate(c.ulps) if c.ulps else np.zeros(0)
    status = "unsupported" if t.unsupported else ("ok" if c.examples else "no-data")
    d = {
        "quantity": c.quantity, "backend": t.backend, "variant": t.variant, "dtype": c.dtype, "device": t.device,
        "call": t.call, "native": bool(t.native), "note": t.note, "status": status,
        "reason": t.unsupported or "", "errors": t.errors, "first_error": t.first_error,
        "examples": c.examples, "elements": c.elements,
        "max_ulp": float(c.max_ulp), "p99_ulp": float(np.percentile(ulps, 99)) if ulps.size else 0.0,
        "median_ulp": float(np.median(ulps)) if ulps.size else 0.0,
        "max_rel": float(c.max_rel), "max_abs": float(c.max_abs), "max_score": R.num(c.max_score),
        **group.verdict(c),
        "flush_to_zero": c.ftz.describe() if c.ftz is not None else "",
        "nonfinite": dict(sorted(c.nonfinite.items())), "nonfinite_total": int(sum(c.nonfinite.values())),
        "invariants": dict(sorted(c.invariants.items())), "invariant_total": int(sum(c.invariants.values())),
        "search_hits": dict(sorted(c.search_hits.items())),
        "notes": sorted(c.notes),
        "x_label": magnitude_label(group.q),
        "points": [[R.num(_sig(a)), R.num(_sig(b)), R.num(_sig(r))] for a, b, r in c.points],
        "worst": {m: R.worst_dict(w, encode) for m, w in c.worst.items()},
    }
    if c.relative is not None:   # a compiled cell: its error against its eager op's
        d["relative"] = relative_record(group, group.pairs, next(i for i, x in enumerate(group.cells) if x is c))
    if encode:
        _attach_snippets(d, t)
    return d


def _sig(x, digits=4):
    """x rounded to a few significant digits (plot data only)."""
    x = float(x)
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def _attach_snippets(d, target):
    """A verified copy-paste reproducer for every shrunk finding of the cell."""
    from ..reproducers.values import best_snippet

    if target.fn is None or d["backend"].startswith("user"):
        return
    for m, w in d["worst"].items():
        case = (w or {}).get("shrunk")
        if not case or case.get("args") is None:
            continue
        try:
            _, kind, ok = best_snippet(d, case, target.mod)
        except Exception:  # noqa: BLE001
            kind, ok = "none", False
        case["snippet_kind"] = kind  # the text is regenerated from the arguments by the report
        case["reproduced"] = bool(ok)

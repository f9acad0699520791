"""What compiling cost a run, and what it did to the floating-point state.

A task takes :func:`mark` before its search and :func:`since` after it: the compiles
(:func:`infoaudit.backends.torch_compiled.compile_log`) that happened in between, stored with its
group. :func:`summary` folds every group's entries into the results' environment
(``environment.compiled``): compile seconds per variant, quantity and dtype, the total, and the
FTZ/DAZ state before the first compile and after the last, with the (framework/device, dtype)
pairs it changed (pytorch issue 126848: compiling switched the process to flush-to-zero).
Nothing here imports torch: a process that compiled nothing has nothing to report.
"""
from __future__ import annotations

import sys

__all__ = ["mark", "since", "summary"]

_MODULE = "infoaudit.backends.torch_compiled"


def mark() -> int:
    mod = sys.modules.get(_MODULE)
    return len(mod.compile_log()) if mod is not None else 0


def since(n: int) -> list:
    mod = sys.modules.get(_MODULE)
    return mod.compile_log()[n:] if mod is not None else []


def _changes(before, after) -> list:
    out = []
    for place, states in (after or {}).items():
        if not isinstance(states, dict):
            continue
        for dt, s in states.items():
            b = ((before or {}).get(place) or {}).get(dt) if isinstance((before or {}).get(place), dict) else None
            if b != s:
                out.append(f"{place} {dt}: {b} -> {s}")
    return out


def summary(doc: dict) -> dict:
    """``{"compiles", "seconds", "per_cell": {"variant|quantity|dtype|device|grad": seconds},
    "fp_before", "fp_after", "fp_changed": [...]}`` over the document's groups."""
    entries = [e for g in (doc.get("groups") or {}).values() for e in (g.get("compile") or [])]
    per = {}
    for e in entries:
        k = "|".join(str(e.get(f)) for f in ("variant", "quantity", "dtype", "device")) + ("|grad" if e.get("grad") else "")
        per[k] = round(per.get(k, 0.0) + float(e.get("seconds", 0.0)), 3)
    changed = sorted({c for e in entries for c in _changes(e.get("fp_before"), e.get("fp_after"))})
    return {"compiles": len(entries), "seconds": round(sum(float(e.get("seconds", 0.0)) for e in entries), 3),
            "per_cell": dict(sorted(per.items())), "fp_before": entries[0].get("fp_before") if entries else None,
            "fp_after": entries[-1].get("fp_after") if entries else None, "fp_changed": changed}

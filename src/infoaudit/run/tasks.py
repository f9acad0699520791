"""The process-pool tasks of ``infoaudit run``: one group (:func:`run_group`), and the softmax
precision panel (:func:`softmax_precision`).
"""
from __future__ import annotations

import time

import numpy as np

from .. import quantities as Q
from ..differential import Unsupported
from ..dtypes import cast
from . import compile_log
from .driver import search
from .group import judge
from .profiles import (
    DEFAULT_REFERENCE_WORK,
    PROFILE_SETTINGS,
    ReferenceOverBudget,
    exact_within_budget,
    group_seed,
)
from .targets import profile_variants, targets_for, user_targets

__all__ = ["run_group", "PANEL_SIZES", "PANEL_ROWS", "shared_logits", "softmax_precision"]


def run_group(task: dict) -> dict:
    """Process-pool task: audit one (quantity, dtype) on the installed backends (``backends``)
    and, with ``impl`` (``MODULE:FUNCTION``) and ``framework``, on a user's implementation;
    ``judge_profile``: the judging profile of the verdicts. Returns a JSON-able dict."""
    t0 = time.perf_counter()
    n_compiled = compile_log.mark()
    backends = task.get("backends")
    targets, skipped = [], []
    if backends or not task.get("impl"):
        targets, skipped = targets_for(task["quantity"], task["dtype"], backends, task.get("devices"))
        targets = profile_variants(targets, skipped, task["profile"])
    if task.get("impl"):
        targets = user_targets(task["impl"], task["quantity"], task["dtype"], task.get("framework"),
                               (task.get("devices") or [None])[0]) + targets
    regressions = [(label, task["dtype"], lists) for label, lists in task.get("extra_lists") or ()]
    res = search(task["quantity"], targets, task["dtype"], task["profile"], task["seed"],
                 use_corpus=task.get("corpus", True), extra_cases=list(task.get("extra_cases", ())),
                 corpus_extra=regressions, examples=task.get("examples"),
                 nonfinite_examples=task.get("nonfinite_examples"),
                 judge_profile=task.get("judge_profile", "default"))
    return {"group": f"{task['quantity']}|{task['dtype']}", "quantity": task["quantity"], "dtype": task["dtype"],
            "cells": res.cells, "skipped": [list(s) for s in skipped], "examples": res.examples,
            "reference_errors": res.reference_errors, "reference_over_budget": res.reference_over_budget,
            "seconds": time.perf_counter() - t0, "compile": compile_log.since(n_compiled)}


PANEL_SIZES = {"quick": (16, 256, 4096), "default": (16, 128, 1024, 4096, 16384, 50257),
               "thorough": (16, 128, 1024, 4096, 16384, 50257, 131072)}


PANEL_ROWS = {"quick": 2, "default": 4, "thorough": 8}


def shared_logits(rng, shape, scale):
    """Logits exactly representable in float16, bfloat16, float32 and float64 (bfloat16 values
    within float16's normal range, or 0): the same inputs in every dtype."""
    v = cast(rng.standard_normal(shape) * scale, "bfloat16").astype(np.float64)
    v = np.where(np.abs(v) < 2.0 ** -14, 0.0, v)
    return np.clip(v, -60000.0, 60000.0)


def softmax_precision(task: dict) -> dict:
    """The FP16 / BF16 / FP32 / FP64 softmax panel: every backend's softmax in every dtype on the
    *same* logits (representable in all four formats), against one exact reference, per
    vocabulary size. Returns a JSON-able dict with one row per (backend, variant, dtype, n, scale)."""
    from ..results import schema as R

    t0 = time.perf_counter()
    profile = task.get("profile", "default")
    sizes = tuple(task.get("sizes") or PANEL_SIZES[profile])
    nrows = int(task.get("rows") or PANEL_ROWS[profile])
    dtypes = task.get("dtypes") or ["float16", "bfloat16", "float32", "float64"]
    q = Q.get("softmax")
    rng = np.random.default_rng(group_seed(task.get("seed", 0), "softmax_precision"))
    targets = {d: [t for t in targets_for(q, d, task.get("backends"))[0] if not t.profiles or profile in t.profiles]
               for d in dtypes}
    work = PROFILE_SETTINGS[profile].get("reference_work", DEFAULT_REFERENCE_WORK)
    rows = []
    over_budget = []
    for scale in (1.0, 4.0):
        for n in sizes:
            z = shared_logits(rng, (nrows, n), scale)
            try:
                exact = exact_within_budget(q, [z], work)
            except ReferenceOverBudget:
                over_budget.append([n, scale])
                continue
            for d in dtypes:
                zd = cast(z, d)
                assert np.array_equal(zd.astype(np.float64), z)
                for t in targets[d]:
                    if t.unsupported:
                        continue
                    try:
                        y, errs, _ = judge(q, t, [zd], exact, d, t.flush_probe(d))
                    except Unsupported as e:
                        t.unsupported = str(e)
                        continue
                    u = errs.ulp[np.isfinite(errs.ulp)]
                    r = errs.rel[np.isfinite(errs.rel)]
                    with np.errstate(invalid="ignore"):
                        sum_err = float(np.nanmax(np.abs(np.sum(y, axis=-1) - 1.0)))
                    rows.append({"backend": t.backend, "variant": t.variant, "device": t.device, "dtype": d, "n": n,
                                 "scale": scale, "max_ulp": R.num(u.max() if u.size else 0.0),
                                 "p99_ulp": R.num(np.percentile(u, 99) if u.size else 0.0),
                                 "mean_ulp": R.num(u.mean() if u.size else 0.0),
                                 "max_rel": R.num(r.max() if r.size else 0.0),
                                 "nonfinite": int((errs.nonfinite != "").sum()), "sum_err": R.num(sum_err)})
    unsupported = sorted({(t.backend, t.variant, d, t.unsupported) for d in dtypes for t in targets[d] if t.unsupported})
    return {"quantity": "softmax", "sizes": list(sizes), "rows_per_size": nrows, "scales": [1.0, 4.0],
            "input": "N(0, scale^2) logits rounded to bfloat16 and kept in float16's normal range: "
                     "exactly the same values in every dtype",
            "results": rows, "unsupported": [list(u) for u in unsupported], "reference_over_budget": over_budget,
            "seconds": round(time.perf_counter() - t0, 2)}

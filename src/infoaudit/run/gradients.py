"""Gradient cells of ``infoaudit run``: every autodiff backend's op, differentiated, judged exactly.

One gradient *group* is a (quantity, dtype) pair; its cells are the targets of the backends with
autodiff (torch autograd, JAX ``vjp`` jit and eager; NumPy / SciPy are skipped: "no autodiff").
Every input goes through :func:`infoaudit.grad_compare.compare_grad` on every cell against
**one** exact VJP (:func:`infoaudit.reference.derivatives.vjp`) and one condition computation
(second derivatives, :func:`infoaudit.judging.condition.gradient_condition`), both shared by the
cells of the group.

Inputs, as for forward values: the fixed corpus (cases up to ``corpus_max`` elements), then a
hypothesis search over :func:`infoaudit.strategies.cases` restricted to the gradient shape menu
(rows up to 512: the condition of a gradient component needs O(n^2) high-precision work, and each
JAX jit variant compiles once per shape), half exploring, half climbing ``target()`` on the
gradient ULP and condition-aware errors, and a non-finite search. Metrics per cell, over every
float argument's gradient: ULP / relative error, non-finite classes, *flushed* components (0 where
the exact gradient rounds to a nonzero value), *boundary* components (finite where the exact
derivative is infinite) and the condition-aware error ``cae = |g - g*| / (u (N + |g*|))``.

Every component is graded by the one judge (:func:`infoaudit.judging.grade_elements`) with N = the
gradient's sensitivity sum_j |dg/dx_j| |x_j| (the same second-derivative condition; 0 where it was
not computed) and S = the magnitudes of the closed-form VJP's terms (the gate's
:data:`infoaudit.judging.GRAD_SCALES`), n = the row length (or, for a scalar argument T / eps /
beta, the number of entries its gradient sums over); the cell carries the grades, a verdict under
the judging profile and its one-line why, as forward cells do. Units whose inputs hold infinities
other than -inf masks are judged only under a profile that judges infinite inputs (``strict``),
which also judges a finite gradient where the exact one is a one-sided infinity at a domain
boundary (``default`` accepts it: frameworks clamp there by design).

The worst input per metric (``nonfinite``, ``flushed``, ``grade``, ``cae``, ``ulp``) is reduced to the one
unit (row, element or table) holding the worst component and re-judged; it is kept as the shrunk
reproducer when the finding persists there, with a copy-paste snippet that was executed and
reproduces the framework's gradient.

The exact VJP runs under a fixed precision budget per profile (``reference_max_bits``; gradient
shapes are small and bounded by the profile's menu): an input whose exact gradient needs more
bits, or stays undecided at the engine's limit, is skipped and counted (``reference_over_budget``)
-- the same inputs on a fast and a slow machine, never judged against a guess.
"""
from __future__ import annotations

import time

import numpy as np

from .. import quantities as Q
from ..dtypes import dtype_name
from . import compile_log
from .driver import hypothesis_phase, stack_cases
from .grad_group import GRAD_SETTINGS, GradCell, GradGroup, shrink_to_unit
from .profiles import group_seed
from .targets import cell_key, profile_variants

__all__ = ["GRAD_SHAPES", "GRAD_METRICS", "grad_cell_key", "has_gradient", "grad_shapes", "grad_targets", "grad_cell_dict", "grad_search", "run_grad_group"]


GRAD_SHAPES = {
    Q.ROW: {"quick": ((2, 16),), "default": ((2, 3), (2, 16), (2, 32), (1, 512)),
            "thorough": ((2, 2), (2, 3), (4, 8), (2, 17), (2, 64), (2, 129), (1, 1000), (1, 4096))},
    Q.ELEMENTWISE: {"quick": ((2, 16),), "default": ((2, 16), (1, 64)), "thorough": ((2, 16), (4, 64), (1, 1000))},
    Q.TABLE_REDUCE: {"quick": ((1, 3, 4),), "default": ((2, 2, 3), (1, 8, 8)),
                     "thorough": ((2, 2, 3), (1, 8, 8), (1, 16, 16))},
}


GRAD_METRICS = ("nonfinite", "flushed", "grade", "cae", "ulp")


def grad_cell_key(quantity, backend, variant, dtype, device="cpu") -> str:
    return cell_key(quantity, backend, variant, dtype, device) + "|grad"


def has_gradient(quantity) -> bool:
    """True when the quantity has a float argument to differentiate."""
    from ..reference import derivatives as D

    q = Q.get(quantity)
    return q.name in D.GRADIENTS and bool(D.differentiable_args(q))


def grad_shapes(q, profile):
    """The gradient shape menu of ``q`` (row lengths within what its strategies may draw)."""
    from .. import strategies

    key = Q.ROW if q.structure in (Q.ROW, Q.ROW_REDUCE) else q.structure
    menu = GRAD_SHAPES[key][profile]
    if key == Q.ROW:
        L = strategies.max_len(q, profile)
        menu = tuple(s for s in menu if s[-1] <= L) or (menu[0],)
    return tuple(tuple(s) for s in menu)


def grad_targets(quantity, dtype, backends=None, devices=None):
    """Targets of the installed backends that have autodiff; skipped [(backend, reason)]."""
    from ..backends.grad import supports
    from .targets import targets_for

    targets, skipped = targets_for(quantity, dtype, backends, devices)
    out = []
    seen = set()
    for t in targets:
        ok, why = supports(t.mod)
        if ok:
            out.append(t)
        elif t.backend not in seen:
            seen.add(t.backend)
            skipped.append((t.backend, f"gradients: {why}"))
    return out, skipped


def _encode_case(w, limit, dtype) -> dict:
    """JSON-able worst case; the arrays are left out above ``limit`` elements (shapes kept); the
    cotangent (exact in ``dtype``) is stored in ``dtype``."""
    from ..dtypes import cast
    from ..results import schema as R

    d = {k: (R.num(v) if isinstance(v, float) else v) for k, v in w.items()
         if k not in ("inputs", "cotangent", "shrunk", "recipe")}
    size = sum(np.size(a) for a in w["inputs"] if isinstance(a, np.ndarray))
    d["shapes"] = [list(a.shape) for a in w["inputs"] if isinstance(a, np.ndarray)]
    keep = size <= limit
    d["args"] = R.encode_args(w["inputs"]) if keep else None
    d["cotangent"] = R.encode_array(cast(np.asarray(w["cotangent"], dtype=np.float64), dtype)) if keep else None
    d["recipe"] = R.jsonable(w.get("recipe", {}))
    return d


def grad_cell_dict(cell: GradCell, group: GradGroup) -> dict:
    from ..results import schema as R

    t = cell.target
    ulps = np.concatenate(cell.ulps) if cell.ulps else np.zeros(0)
    caes = np.concatenate(cell.caes) if cell.caes else np.zeros(0)
    status = "unsupported" if t.unsupported else ("ok" if cell.examples else "no-data")
    worst = {}
    for m, w in cell.worst.items():
        d = _encode_case(w, R.MAX_STORED_ELEMENTS, cell.dtype)
        d["shrunk"] = _encode_case(w["shrunk"], R.MAX_STORED_SHRUNK, cell.dtype) if w.get("shrunk") else None
        worst[m] = d
    return {
        "quantity": cell.quantity, "backend": t.backend, "variant": t.variant, "dtype": cell.dtype,
        "device": t.device, "kind": "grad", "call": t.call, "native": bool(t.native), "how": cell.how,
        "status": status, "reason": t.unsupported or "", "errors": t.errors, "first_error": t.first_error,
        "examples": cell.examples, "elements": cell.elements,
        "max_ulp": R.num(cell.max_ulp), "p99_ulp": R.num(np.percentile(ulps, 99) if ulps.size else 0.0),
        "median_ulp": R.num(np.median(ulps) if ulps.size else 0.0), "max_rel": R.num(cell.max_rel),
        "max_cae": R.num(cell.max_cae), "p99_cae": R.num(np.percentile(caes, 99) if caes.size else 0.0),
        **group.verdict(cell), "flush_to_zero": cell.ftz.describe() if cell.ftz is not None else "",
        "cae_elements": int(caes.size),
        "flushed": cell.flushed, "boundary": cell.boundary,
        "nonfinite": dict(sorted(cell.nonfinite.items())), "nonfinite_total": int(sum(cell.nonfinite.values())),
        "invariants": {}, "invariant_total": 0,
        "args": R.jsonable(cell.per_arg), "skipped_args": dict(cell.skipped_args),
        "search_hits": dict(sorted(cell.search_hits.items())), "notes": sorted(cell.notes),
        "worst": worst,
    }


def grad_search(quantity, targets, dtype, profile="default", seed=0, *, use_corpus=True, examples=None,
                nonfinite_examples=None, shrink=True, judge_profile="default"):
    """The gradient audit of one (quantity, dtype) on ``targets``; (GradGroup, {cell key: dict})."""
    q = Q.get(quantity)
    d = dtype_name(dtype)
    st = GRAD_SETTINGS[profile]
    group = GradGroup(q, d, targets, profile, seed, judge_profile)
    if use_corpus:
        from .. import corpus

        fixed = [(f"corpus: {label}", args) for label, args in corpus.cases(q, d)
                 if sum(np.size(a) for a in args if isinstance(a, np.ndarray)) <= st["corpus_max"]]
        for labels, args in stack_cases(q, fixed):
            group.evaluate(args, source=labels)
    n = st["examples"] if examples is None else examples
    n_nf = st["nonfinite_examples"] if nonfinite_examples is None else nonfinite_examples
    shapes = list(grad_shapes(q, profile))
    n_explore = n // 2
    for k, shape in enumerate(shapes):
        share = n_explore // len(shapes) + (1 if k < n_explore % len(shapes) else 0)
        hypothesis_phase(group, "any", share, group_seed(seed, q.name, d, "grad-explore", k), targeted=False,
                          shapes=[shape])
    hypothesis_phase(group, "any", n - n_explore, group_seed(seed, q.name, d, "grad-ulp"), shapes=shapes)
    hypothesis_phase(group, "nonfinite", n_nf, group_seed(seed, q.name, d, "grad-nonfinite"), shapes=shapes)
    cells = {}
    for cell in group.cells:
        if shrink:
            for m in GRAD_METRICS:
                shrink_to_unit(group, cell, m)
        dct = grad_cell_dict(cell, group)
        _attach_grad_snippets(dct, cell.target)
        cells[grad_cell_key(q.name, cell.target.backend, cell.target.variant, d, cell.target.device)] = dct
    return group, cells


def _attach_grad_snippets(d, target):
    """A verified copy-paste reproducer for every shrunk gradient finding of the cell."""
    from ..reproducers.gradients import best_grad_snippet

    for w in d["worst"].values():
        case = (w or {}).get("shrunk")
        if not case or case.get("args") is None:
            continue
        try:
            _, kind, ok = best_grad_snippet(d, case)
        except Exception:  # noqa: BLE001
            kind, ok = "none", False
        case["snippet_kind"] = kind
        case["reproduced"] = bool(ok)


def run_grad_group(task: dict) -> dict:
    """Process-pool task: the gradient audit of one (quantity, dtype); JSON-able dict."""
    t0 = time.perf_counter()
    n_compiled = compile_log.mark()
    targets, skipped = grad_targets(task["quantity"], task["dtype"], task.get("backends"), task.get("devices"))
    targets = profile_variants(targets, skipped, task["profile"])
    if not GRAD_SETTINGS[task["profile"]]["jax_eager"]:
        from ..backends.grad import is_jit_variant

        keep = []
        for t in targets:
            if t.backend == "jax" and not is_jit_variant(t.variant):
                skipped.append((t.backend, f"variant {t.variant!r}: gradients of JAX eager variants are audited by "
                                           f"the thorough profile ({task['profile']} differentiates the jitted op, "
                                           "as a training step does)"))
            else:
                keep.append(t)
        targets = keep
    group, cells = grad_search(task["quantity"], targets, task["dtype"], task["profile"], task["seed"],
                               examples=task.get("examples"), nonfinite_examples=task.get("nonfinite_examples"),
                               judge_profile=task.get("judge_profile", "default"))
    return {"group": f"{task['quantity']}|{task['dtype']}|grad", "quantity": task["quantity"],
            "dtype": task["dtype"], "kind": "grad", "cells": cells, "skipped": [list(s) for s in skipped],
            "examples": group.examples, "reference_errors": group.reference_errors,
            "reference_over_budget": group.reference_over_budget, "seconds": time.perf_counter() - t0,
            "compile": compile_log.since(n_compiled)}

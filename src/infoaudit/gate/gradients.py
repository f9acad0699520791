"""``infoaudit gate --grad``: audit the *gradients* of a user's implementation.

After the forward audit of each dtype, the gate differentiates the user's function with its own
framework's autodiff (``torch.autograd.grad`` / ``jax.vjp``, through
:func:`infoaudit.backends.grad.vjp_function`) on the gate's inputs of that dtype -- the fixed cases
and a sample of the search's generated inputs -- and grades each gradient component against the
exact vector-Jacobian product (:func:`infoaudit.reference.derivatives.vjp`) with the one judge
(:func:`infoaudit.judging.grade_elements`):

* N = sum_j |dg/dx_j| |x_j|, the gradient's sensitivity from exact second derivatives
  (:mod:`.condition`), gives the ``conditioned`` allowance c(n) u (N + |g*| + lambda); S = the
  magnitudes of the terms of the closed-form VJP (:data:`infoaudit.judging.GRAD_SCALES`) the
  ``envelope`` allowance c(n) u (S + lambda); n is the row length, or for a scalar argument
  (T, eps, beta) the number of entries its gradient sums over. The profile's ``grad_pass``
  (default ``envelope``, strict ``conditioned``) is the worst grade that passes;
* a non-finite gradient where the exact one is finite (NaN, +-inf), the wrong infinity, or NaN
  where it is infinite fails (beyond ``grad_nonfinite``); a finite value where the exact gradient
  is a one-sided +-inf at a domain boundary (p = 0 in log p) is accepted unless ``grad_boundary``
  says otherwise;
* a failing component returned as 0 where the exact gradient rounds to a nonzero value
  ("flushed") is counted apart (beyond ``grad_flushed``); below the dtype's smallest normal on a
  platform that flushes subnormals (probed; or ``--flush-to-zero``) it grades ``flushed`` and passes.

A function that cannot be differentiated (calls ``.numpy()`` inside, detaches, raises in its
backward) fails with the framework's own error; a hang past the per-call timeout fails too.
Every failure carries a copy-paste reproducer that recomputes the user's gradient with the
framework's autodiff, shrunk to the failing row / element.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .. import judging
from .. import quantities as Q
from ..harness.calls import ReferenceFailure, reduce_to_unit
from ..reference.cache import case_key
from ..reproducers.user import gradient_reproducer
from ..results.schema import jsonable
from . import profiles as P
from .grad_calls import (
    AUTODIFF,
    GRAD_MAX_ELEMENTS,
    GRAD_SEARCH_INPUTS,
    evaluate,
    load_backend,
    user_op,
)
from .grad_judge import judge, tolerated_why

__all__ = ["GradContext", "select_cases", "gate_grad_dtype", "failure_dict", "grad_cell"]


@dataclass
class GradContext:
    """Everything needed to audit the gradients of one quantity x dtype."""

    q: object
    dtype: str
    thresholds: P.Thresholds
    mod: object                    # the framework's backend module (infoaudit.backends.*)
    op: object                     # the user's function as a backend Op
    adapter: object                # the gate's framework adapter (literals for the reproducer)
    device: str = "cpu"
    timeout: float = 20.0
    flushing: bool = False         # the platform flushes subnormals (probed) or --flush-to-zero
    flushes_inputs: bool = False   # the platform reads subnormal inputs as zero (probed DAZ)

    @property
    def flush_flags(self):
        """For :func:`judging.grade_elements`: a flushing platform's zeros where the exact gradient is
        subnormal grade ``flushed`` (flushed inputs are judged by :func:`_with_flushed_inputs`)."""
        return True if self.flushing else None

    @property
    def profile(self) -> judging.Profile:
        """The judge's profile for gradients: ``grad_pass`` and the value conventions."""
        p = self.__dict__.get("_profile")
        if p is None:
            p = self.thresholds.judging_profile(grad=True)
            self.__dict__["_profile"] = p
        return p


def select_cases(seen, examples, max_search=GRAD_SEARCH_INPUTS, max_elements=GRAD_MAX_ELEMENTS):
    """(cases, notes): the forward audit's fixed cases (all that fit ``max_elements``) and an evenly
    spaced sample of at most ``min(examples, max_search)`` of its generated inputs, deduplicated."""

    keys, fixed, search, big = set(), [], [], 0
    for label, inputs, is_fixed in seen:
        size = sum(int(np.asarray(v).size) for v in inputs if isinstance(v, np.ndarray))
        k = case_key("", "", list(inputs))
        if k in keys:
            continue
        keys.add(k)
        if size > max_elements:
            big += is_fixed
            continue
        (fixed if is_fixed else search).append((label, inputs))
    k = min(int(examples), int(max_search))
    if k <= 0:
        search = []
    elif len(search) > k:
        idx = np.unique(np.linspace(0, len(search) - 1, k).round().astype(int))
        search = [search[i] for i in idx]
    notes = []
    if big:
        notes.append(f"{big} fixed case(s) over {max_elements:,} elements not differentiated (exact VJP cost)")
    return fixed + search, notes


def gate_grad_dtype(gctx: GradContext, cases, log=None):
    """(stats, failing GradJudgement or None, notes) over ``cases`` [(label, inputs)]."""

    stats = {"cases": 0, "components": 0, "max_score": 0.0, "max_cae": None, "nonfinite_total": 0, "flushed": 0,
             "flushed_bad": 0, "boundary": 0, "unjudged": 0, "calls": 0, "call_seconds": 0.0, "grades": {}}
    worst = None   # (key, line) of the worst judged component over every case
    notes, ref_skips, undiff = [], [], {}
    first_fail = None
    for label, inputs in cases:
        try:
            outcome = evaluate(gctx.mod, gctx.op, gctx.q, gctx.dtype, inputs, device=gctx.device,
                               timeout=gctx.timeout)
        except Q.InputError:
            continue
        except ReferenceFailure as e:
            ref_skips.append(str(e))
            continue
        stats["calls"] += 1
        stats["call_seconds"] += outcome.seconds
        undiff.update(outcome.undifferentiated)
        j = judge(gctx, inputs, outcome, label)
        if j.kind in ("ok", "numerical"):
            stats["cases"] += 1
            stats["components"] += j.components
            stats["max_score"] = max(stats["max_score"], j.max_score)
            mc = j.max_cae
            if mc is not None:
                stats["max_cae"] = mc if stats["max_cae"] is None else max(stats["max_cae"], mc)
            stats["nonfinite_total"] += j.count("nonfinite")
            stats["flushed"] += j.count("flushed")
            stats["flushed_bad"] += j.count("flushed_bad")
            stats["boundary"] += j.count("boundary")
            stats["unjudged"] += j.count("unjudged")
            stats["grades"] = judging.merge_grades(stats["grades"], j.grades)
            w = j.worst_component()
            if w is not None and (worst is None or w[0] > worst[0]):
                key, name, i = w
                v = j.args[name]
                line = f"d/d{name} at {i}: {v.graded.describe(i)}"
                if not v.failing[i] and v.codes[i] > judging.grades.code_of(gctx.profile.passing):
                    line += f" ({tolerated_why(gctx.thresholds, v, i)})"
                worst = (key, line)
        if j.failed and first_fail is None:
            first_fail = j
        if j.kind in ("timeout", "not_differentiable"):
            break  # it would fail the same way on every case
    stats["call_seconds"] = round(stats["call_seconds"], 4)
    for name, why in undiff.items():
        why = " ".join(str(why).split("\n")[0].split())
        notes.append(f"gradient with respect to {name!r} not taken: {why}")
    if ref_skips:
        notes.append(f"{len(ref_skips)} case(s) skipped: the exact gradient failed ({ref_skips[0]})")
    if stats["boundary"]:
        notes.append(f"{stats['boundary']} component(s) finite where the exact gradient is a one-sided +-inf "
                     f"(domain boundary, e.g. p = 0 under a log)"
                     + (": accepted (grad_boundary = accept)" if gctx.thresholds.grad_boundary == "accept" else ""))
    excused = stats["flushed"] - stats["flushed_bad"]
    if excused:
        notes.append(f"{excused} component(s) returned as 0 where the exact gradient is tiny, within the allowed error"
                     + (" or below the smallest normal on this flushing platform" if gctx.flushing else ""))
    if first_fail is not None:
        first_fail = _shrink(gctx, first_fail)
    stats["worst_line"] = worst[1] if worst is not None else ""
    return stats, first_fail, notes


def _shrink(gctx, j):
    """Reduce a numerical failure to the one row / element holding its worst component."""

    if j.kind != "numerical" or j.worst is None:
        return j
    name, idx = j.worst
    q = gctx.q
    arg = q.args[q.arg_names.index(name)]
    if arg.is_scalar or not idx:
        return j
    out_idx = {Q.ROW_REDUCE: idx[:-1], Q.TABLE_REDUCE: idx[:-2]}.get(q.structure, idx)
    v = j.args[name]
    gin, cot = v.comparison.inputs, v.comparison.cotangent
    red = reduce_to_unit(q, gin, out_idx)
    if red is None:
        return j
    lead = out_idx if q.structure != Q.ROW else out_idx[:-1]
    rc = np.asarray(cot[lead])[None] if q.structure != Q.ELEMENTWISE else np.asarray([cot[out_idx]])
    try:
        o = evaluate(gctx.mod, gctx.op, q, gctx.dtype, red, device=gctx.device, timeout=gctx.timeout, cotangent=rc)
        j2 = judge(gctx, red, o, j.label)
    except Exception:  # noqa: BLE001
        return j
    return j2 if j2.failed else j


def failure_dict(gctx, j, impl_import, fn_name):

    out = {"kind": j.kind, "message": j.message, "label": j.label,
           "reproducer": gradient_reproducer(gctx, j, impl_import, fn_name)}
    if j.args:
        first = next(iter(j.args.values())).comparison
        out["inputs"] = [jsonable(v) for v in first.inputs]
        out["cotangent"] = jsonable(np.asarray(first.cotangent, dtype=np.float64))
        out["gradients"] = {name: {"returned": jsonable(np.asarray(v.comparison.result)),
                                   "expected": jsonable(np.asarray(v.comparison.errors.expected)),
                                   "exact_hi": jsonable(np.asarray(v.comparison.exact.hi, dtype=np.float64))}
                            for name, v in j.args.items()}
        if j.worst is not None:
            out["worst"] = {"arg": j.worst[0], "index": list(j.worst[1])}
    else:
        out["inputs"] = [jsonable(v) for v in j.inputs]
    return out


def grad_cell(ctx, fn, *, examples, impl_import, fn_name, timeout, baseline_cell=None, skip_reason=None, log=None):
    """The ``grad`` entry of one dtype's result (JSON-able): verdict, statistics against the
    profile's grad_* thresholds, notes and, on failure, the shrunk failure with its reproducer.

    ``ctx``: the forward :class:`~infoaudit.gate.core.Context` of this dtype (its judged inputs,
    thresholds, adapter, flush-to-zero state); ``baseline_cell``: the baseline's cell for this
    dtype (regression mode: fail only where the gradients got worse than its ``grad`` entry).
    """
    t0 = time.perf_counter()
    th = ctx.thresholds
    cell = {"verdict": "pass", "grade": None, "grades": {}, "profile": th.profile, "why": "", "cases": 0,
            "components": 0, "max_score": 0.0, "max_cae": None, "nonfinite_total": 0,
            "flushed": 0, "flushed_bad": 0, "boundary": 0, "unjudged": 0, "calls": 0, "call_seconds": 0.0,
            "thresholds": th.grad_as_dict(), "threshold_text": th.grad_describe(), "notes": [], "failure": None,
            "how": "", "seconds": 0.0}
    if skip_reason:
        cell["verdict"] = "skipped"
        cell["notes"].append(skip_reason)
        return cell
    ad = ctx.harness.ad
    mod = load_backend(ad.name)
    if ctx.dtype not in getattr(mod, "DTYPES", (ctx.dtype,)):
        cell["verdict"] = "skipped"
        cell["notes"].append(f"{ad.name} has no {ctx.dtype} gradients here")
        return cell
    cell["how"] = AUTODIFF[ad.name]
    gctx = GradContext(ctx.q, ctx.dtype, th, mod, user_op(fn, fn_name), ad, ad.device, timeout, ctx.flushing,
                       bool(ctx.flushing and ctx.ftz is not None and ctx.ftz.flushes_inputs))
    cases, notes = select_cases(ctx.seen, examples)
    if log:
        log(f"  {ctx.dtype}: differentiating {len(cases)} case(s) ...")
    stats, failing, more = gate_grad_dtype(gctx, cases)
    worst_line = stats.pop("worst_line", "")
    cell.update(stats)
    cell["grade"] = judging.worst_grade(cell["grades"])
    prof = gctx.profile
    cell["why"] = f"PASS under {prof.name} ({prof.passing} and better pass): " + (worst_line or "no component judged")
    cell["notes"] += notes + more
    base = (baseline_cell or {}).get("grad") if baseline_cell is not None else None
    if baseline_cell is not None and not isinstance(base, dict):
        cell["notes"].append("baseline has no gradient result for this dtype: judged by the profile")
        base = None
    if failing is not None:
        cell["failure"] = failure_dict(gctx, failing, impl_import, fn_name)
        if failing.kind == "numerical":
            cell["max_score"] = max(cell["max_score"], failing.max_score)
    if base is not None:
        worse = []
        if cell["nonfinite_total"] > int(base.get("nonfinite_total", 0)):
            worse.append(f"{cell['nonfinite_total']} non-finite gradient component(s); the baseline had "
                         f"{int(base.get('nonfinite_total', 0))}")
        if cell["flushed_bad"] > int(base.get("flushed_bad", 0)):
            worse.append(f"{cell['flushed_bad']} flushed component(s); the baseline had {int(base.get('flushed_bad', 0))}")
        lim = float(base.get("max_score", 0.0))
        if cell["max_score"] > lim * (1 + 1e-9) + 1e-12 and cell["max_score"] > 1.0:
            worse.append(f"gradient error {cell['max_score']:.3g}x the larger allowance; the baseline's worst was "
                         f"{lim:.3g}x")
        if failing is not None and failing.kind not in ("numerical",) and (base.get("failure") or {}).get("kind") != failing.kind:
            worse.append(failing.message)
        if worse:
            cell["verdict"] = "fail"
            msg = "worse than the baseline: " + "; ".join(worse)
            cell["why"] = msg
            if cell["failure"] is None:
                cell["failure"] = {"kind": "numerical", "message": msg, "label": "", "reproducer": ""}
            else:
                cell["failure"]["message"] = msg + " (" + cell["failure"]["message"] + ")"
        else:
            cell["failure"] = None
            cell["why"] = "no worse than the baseline; " + cell["why"]
    elif failing is not None:
        cell["verdict"] = "fail"
        cell["why"] = failing.message
    elif cell["cases"] == 0 and cell["calls"] == 0:
        cell["verdict"] = "fail" if cases else "skipped"
        if cases:
            cell["failure"] = {"kind": "no_cases", "message": "no gradient case could be run", "reproducer": ""}
        else:
            cell["notes"].append("no case to differentiate")
    cell["seconds"] = round(time.perf_counter() - t0, 3)
    return cell

"""A gradient group: the VJP cells of one (quantity, dtype) judged on shared inputs and cotangents
against one exact VJP per input, each cell's worst inputs per finding, shrunk to one unit.
"""
from __future__ import annotations

import warnings

import numpy as np

from .. import judging
from .. import quantities as Q
from ..differential import Unsupported
from ..dtypes import FORMATS, dtype_name
from ..grad_compare import output_mask_to_arg
from ..judging import profiles as JP
from ..judging.core import infinite_input_mask
from ..judging.grades import CODE, GRADES
from ..judging.scales import reduction_length
from ..reference.engine import PrecisionBudgetExceeded, precision_budget
from .group import scores, why_line
from .profiles import ReferenceOverBudget

__all__ = ["GRAD_SETTINGS", "CAE_SHRINK", "ULP_SHRINK", "GradCell", "unit_case", "GradGroup", "shrink_to_unit"]


# examples of the search / of the non-finite search per group; corpus cases up to corpus_max elements;
# max_unit: largest unit (inputs) whose gradient condition (cae) is computed; jax_eager: also
# differentiate JAX's eager variants (the jitted ones always); reference_max_bits: the working
# precision the exact VJP may use (one fixed cap per profile, so that every gradient evaluation of
# a run -- and the per-unit cache of reference.derivatives -- sees the same budget)
GRAD_SETTINGS = {
    "quick": dict(examples=4, nonfinite_examples=2, corpus_max=32, max_unit=64, jax_eager=False,
                  reference_max_bits=2048),
    "default": dict(examples=6, nonfinite_examples=3, corpus_max=64, max_unit=32, jax_eager=False,
                    reference_max_bits=2048),
    "thorough": dict(examples=120, nonfinite_examples=60, corpus_max=4096, max_unit=128, jax_eager=True,
                     reference_max_bits=4096),
}


CAE_SHRINK = 16.0        # a worst-cae input is re-judged on its unit only from this size on


ULP_SHRINK = 16.0


class GradCell:
    """Accumulated gradient metrics of one target (over all its float arguments)."""

    def __init__(self, target, quantity, dtype):
        self.target = target
        self.quantity = quantity
        self.dtype = dtype
        self.examples = 0
        self.elements = 0
        self.ulps = []
        self.caes = []
        self.max_ulp = 0.0
        self.max_rel = 0.0
        self.max_cae = 0.0
        self.flushed = 0
        self.boundary = 0
        self.nonfinite = {}
        self.per_arg = {}
        self.skipped_args = {}
        self.how = ""
        self.notes = set()
        self.worst = {}          # metric -> dict (see _worst)
        self.search_hits = {}
        self.ftz = target.flush_probe(dtype)
        self.grade_counts = np.zeros(len(GRADES), np.int64)
        self.unjudged = 0
        self.failing = 0
        self.why = ""
        self.why_key = (-1, -1, -1.0)
        self.grade_key = (-1, -1.0)


def _unit_lead(q, idx):
    if q.structure == Q.ELEMENTWISE:
        return tuple(idx)
    return tuple(idx[:-2]) if q.structure == Q.TABLE_REDUCE else tuple(idx[:-1])


def unit_case(q, inputs, cot, idx):
    """The one unit (row / element / table) of ``inputs`` holding output index ``idx``, kept 2-D
    (batch of 1) so that the op sees the same layout; (args, cotangent, index within the unit)."""
    lead = _unit_lead(q, idx)
    args = []
    for arg, v in zip(q.args, inputs):
        if isinstance(v, np.ndarray):
            a = v
            if q.structure == Q.ELEMENTWISE and a.shape != np.shape(cot):
                a = np.broadcast_to(a, np.shape(cot))
            a = a[lead]
            args.append(np.ascontiguousarray(a)[None] if np.ndim(a) else np.asarray([a]))
        else:
            args.append(v)
    c = np.asarray(cot)[lead]
    c = c[None] if np.ndim(c) else np.asarray([c])
    rest = tuple(idx[len(lead):])
    return tuple(args), c, (0,) + rest


class GradGroup:
    """Gradient search state of one (quantity, dtype) over its autodiff targets."""

    def __init__(self, quantity, dtype, targets, profile="default", seed=0, judge_profile="default"):
        self.q = Q.get(quantity)
        self.dtype = dtype_name(dtype)
        self.profile = profile
        self.judge_profile = JP.get(judge_profile)
        self.seed = seed
        self.settings = GRAD_SETTINGS[profile]
        self.cells = [GradCell(t, self.q.name, self.dtype) for t in targets]
        self.examples = 0
        self.reference_errors = 0       # inputs skipped: the reference refused or failed (over budget included)
        self.reference_over_budget = 0  # of which: past the deterministic precision budget
        self.reference_max_bits = self.settings.get("reference_max_bits")
        self.u = FORMATS[self.dtype].unit_roundoff

    def exact(self, args, cotangent=None):
        """(inputs rounded to the dtype, cotangent, exact VJP, conditions) or raises
        (:class:`~infoaudit.run.profiles.ReferenceOverBudget` past the precision budget)."""
        from ..grad_compare import prepare_grad_inputs
        from ..judging.condition import gradient_condition
        from ..reference import derivatives as D

        inputs, ref, cot = prepare_grad_inputs(self.q, args, self.dtype, cotangent)

        def both():
            ex = D.vjp(self.q.name, *ref, cotangent=cot)
            co = gradient_condition(self.q.name, *ref, cotangent=cot, exact=ex, max_unit=self.settings["max_unit"])
            return ex, co

        try:
            with precision_budget(self.reference_max_bits):
                ex, co = both()
        except PrecisionBudgetExceeded as e:
            raise ReferenceOverBudget(str(e)) from e
        undecided = sum(int(np.sum(e.undecided)) for e in ex.values() if e.undecided is not None)
        if undecided:
            raise ReferenceOverBudget(f"{undecided} gradient component(s) undecided at the engine's limit")
        return inputs, cot, ex, co

    def judge_cell(self, cell, inputs, cot, ex, co):
        """compare_grad of one cell on prepared inputs; Unsupported on refusal."""
        from ..backends import Op
        from ..grad_compare import compare_grad

        t = cell.target
        op = Op(t.variant, t.fn, t.native, t.call, t.note)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return compare_grad(self.q.name, t.mod, *inputs, dtype=self.dtype, device=t.device, op=op,
                                cotangent=cot, exact=ex, conditions=co)

    def evaluate(self, args, source="", recipe=None):
        """Judge ``args`` on every live cell; {cell index: (max ulp, max cae, non-finite + flushed)}."""
        try:
            inputs, cot, ex, co = self.exact(list(args))
        except ReferenceOverBudget:  # deterministic: the same input is skipped on every machine
            self.reference_errors += 1
            self.reference_over_budget += 1
            return {}
        except Exception:  # noqa: BLE001 - an input the reference cannot differentiate is skipped
            self.reference_errors += 1
            return {}
        self.examples += 1
        res = {}
        for i, cell in enumerate(self.cells):
            t = cell.target
            if t.unsupported:
                continue
            try:
                r = self.judge_cell(cell, inputs, cot, ex, co)
            except Unsupported as e:
                t.errors += 1
                t.first_error = t.first_error or str(e)
                if t.successes == 0 and t.errors >= 3:
                    t.unsupported = t.first_error
                continue
            except Exception as e:  # noqa: BLE001 - the framework failed in an unexpected way
                t.errors += 1
                t.first_error = t.first_error or f"{type(e).__name__}: {e}"
                continue
            t.successes += 1
            res[i] = self._record(cell, r, source, recipe)
        return res

    def grade(self, cell, gc, S_all=None):
        """(Judgement, judged, failing) of one argument's gradient ``gc`` (a GradComparison) on
        ``cell``: :func:`judging.grade_elements` with N = the gradient's sensitivity (second
        derivatives; 0 where not computed) and S = the closed-form VJP's terms, under the group's
        judging profile. ``judged`` leaves out units with infinite inputs other than -inf masks
        and finite values at a one-sided infinite derivative (domain boundary) unless the profile
        judges infinite inputs; ``failing``: judged components whose grade the profile does not pass."""
        p = self.judge_profile
        q = self.q
        if S_all is None:
            S_all = judging.grad_scale(q, gc.inputs, gc.cotangent, self.dtype, cell.ftz is not None)
        hi = np.asarray(gc.exact.hi, dtype=np.float64)
        y = np.asarray(gc.result, dtype=np.float64).reshape(hi.shape)
        arg = q.args[q.arg_names.index(gc.arg)]
        if arg.is_scalar:
            first = next(np.asarray(v) for v, a in zip(gc.inputs, q.args) if a.is_float_array)
            n = max(1, int(first.size))   # its gradient sums every entry's partial
        else:
            n = reduction_length(q, gc.inputs)
        N = gc.condition.sensitivity if gc.condition is not None else np.zeros(hi.shape)
        S = np.asarray(S_all.get(gc.arg, np.zeros(hi.shape)), dtype=np.float64)
        g = judging.grade_elements(y, gc.exact, self.dtype, n=n, N=np.broadcast_to(N, hi.shape),
                                   S=np.broadcast_to(S, hi.shape), ftz=cell.ftz, inputs=gc.inputs)
        judged = JP.judged_mask(g, p)
        if not p.judge_infinite_inputs:
            unit = infinite_input_mask(q, gc.inputs)
            judged &= ~(np.array(bool(unit.any())) if arg.is_scalar else output_mask_to_arg(q, unit, hi.shape))
            with np.errstate(invalid="ignore"):
                judged &= ~(np.isinf(hi) & np.isfinite(y))   # a domain boundary: accepted by convention
        fail = JP.failing_mask(g, p) & judged
        return g, judged, fail

    def _record(self, cell, r, source, recipe):
        cell.examples += 1
        cell.skipped_args.update(r.skipped)
        top_ulp = top_score = 0.0
        bad = 0
        from_search = isinstance(source, str) and source.startswith("search")
        p = self.judge_profile
        S_all = None
        for gc in r:
            cell.how = gc.how
            cell.notes.update(gc.notes)
            e = gc.errors
            if S_all is None:
                S_all = judging.grad_scale(self.q, gc.inputs, gc.cotangent, self.dtype, cell.ftz is not None)
            g, judged, fail = self.grade(cell, gc, S_all)
            cell.elements += int(e.ulp.size)
            pa = cell.per_arg.setdefault(gc.arg, {"max_ulp": 0.0, "max_cae": 0.0, "flushed": 0, "nonfinite": 0,
                                                  "grades": {}})
            fin = np.isfinite(e.ulp)
            if fin.any():
                u = e.ulp[fin]
                cell.ulps.append(u)
                top_ulp = max(top_ulp, float(u.max()))
                pa["max_ulp"] = max(pa["max_ulp"], float(u.max()))
            rels = e.rel[np.isfinite(e.rel)]
            if rels.size:
                cell.max_rel = max(cell.max_rel, float(rels.max()))
            cae = _cae_defined(gc)
            fc = np.isfinite(cae)
            if fc.any():
                cell.caes.append(cae[fc])
                pa["max_cae"] = max(pa["max_cae"], float(cae[fc].max()))
            sc = scores(g)
            fs = judged & np.isfinite(sc)
            if fs.any():
                top_score = max(top_score, float(sc[fs].max()))
            # grades, the failing components and the verdict's deciding component
            counts = np.bincount(np.asarray(g.codes)[judged].ravel().astype(np.int64), minlength=len(GRADES))
            cell.grade_counts += counts
            pa["grades"] = judging.merge_grades(pa["grades"], {k: int(v) for k, v in zip(GRADES, counts) if v})
            cell.unjudged += int(np.count_nonzero(~judged))
            n_fail = int(np.count_nonzero(fail))
            cell.failing += n_fail
            decide = g.worst_index(fail if n_fail else judged)
            if decide is not None:
                key = (1 if n_fail else 0, int(g.codes[decide]), min(float(np.nan_to_num(sc[decide], nan=1e3)), 1e3))
                if key > cell.why_key:
                    cell.why_key = key
                    where = f"[{', '.join(str(k) for k in decide)}]" if decide else ""
                    cell.why = why_line(g, p, fail, judged, prefix=f"d/d{gc.arg}{where}: ")
            nf = judged & (g.codes == CODE["nonfinite"])
            n_nf = int(nf.sum())
            for c in g.nonfinite[nf].ravel():
                cell.nonfinite[c] = cell.nonfinite.get(c, 0) + 1
                if from_search:
                    cell.search_hits[c] = cell.search_hits.get(c, 0) + 1
            fl = gc.flushed
            n_fl = int(fl.sum())
            cell.flushed += n_fl
            cell.boundary += int(gc.boundary.sum())
            if n_fl and from_search:
                cell.search_hits["flushed"] = cell.search_hits.get("flushed", 0) + n_fl
            pa["flushed"] += n_fl
            pa["nonfinite"] += n_nf
            bad += n_nf + n_fl
            # worst per metric
            if n_nf and ("nonfinite" not in cell.worst or n_nf > cell.worst["nonfinite"]["value"]):
                idx = tuple(int(i) for i in np.argwhere(nf)[0])
                cell.worst["nonfinite"] = _worst(gc, g, "nonfinite", n_nf, idx, str(g.nonfinite[idx]), source, recipe)
            if n_fl and ("flushed" not in cell.worst or n_fl > cell.worst["flushed"]["value"]):
                mag = np.where(fl, np.abs(e.expected), -1.0)
                idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(mag)), mag.shape))
                cell.worst["flushed"] = _worst(gc, g, "flushed", n_fl, idx, "flushed", source, recipe)
            band = judged & (g.codes <= CODE["unstable"])
            i = g.worst_index(band)
            if i is not None:
                key = (int(g.codes[i]), min(float(np.nan_to_num(sc[i], nan=1e3)), 1e3))
                if key > cell.grade_key:
                    cell.grade_key = key
                    cell.worst["grade"] = _worst(gc, g, "grade", key[1], i, "", source, recipe)
            if fc.any() and float(cae[fc].max()) > cell.max_cae:
                cell.max_cae = float(cae[fc].max())
                idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(fc, cae, -1.0))), cae.shape))
                cell.worst["cae"] = _worst(gc, g, "cae", cell.max_cae, idx, "", source, recipe)
            if fin.any() and float(e.ulp[fin].max()) > cell.max_ulp:
                cell.max_ulp = float(e.ulp[fin].max())
                idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(fin, e.ulp, -1.0))), e.ulp.shape))
                cell.worst["ulp"] = _worst(gc, g, "ulp", cell.max_ulp, idx, "", source, recipe)
        return top_ulp, top_score, bad

    def verdict(self, cell) -> dict:
        """The cell's judging fields (as :meth:`.group.Group.verdict`): grade, grades, verdict, profile, why."""
        grades = {g: int(k) for g, k in zip(GRADES, cell.grade_counts) if k}
        ran = cell.examples and not cell.target.unsupported
        return {"grade": judging.worst_grade(grades), "grades": grades,
                "verdict": ("fail" if cell.failing else "pass") if ran else None,
                "profile": self.judge_profile.name, "why": cell.why, "unjudged": cell.unjudged,
                "failing": cell.failing}


def _cae_defined(gc) -> np.ndarray:
    """The condition-aware error where it is defined: NaN where no condition was computed (units
    over ``max_unit``) and where the exact gradient component is exactly 0 (a stationary point,
    e.g. d/dT of the distillation loss at zs = zt): there N is ~0 too, and the computed value is
    rounding noise of intermediate terms that no input perturbation models (judged by the
    non-finite and flushed rules and shown as ULP / absolute error, not as cae)."""
    if gc.cae is None:
        return np.full(gc.errors.ulp.shape, np.nan)
    with np.errstate(invalid="ignore"):
        return np.where(np.asarray(gc.exact.hi) == 0, np.nan, gc.cae)


def _worst(gc, g, metric, value, idx, klass, source, recipe) -> dict:
    """The worst element of one argument's gradient (``g``: its Judgement), with everything
    needed to rerun it and the judge's grade and one line there."""
    if isinstance(source, list):
        source = source[idx[0]] if idx and idx[0] < len(source) else ", ".join(source)
    e = gc.errors
    return {"metric": metric, "value": float(value), "arg": gc.arg, "index": list(idx),
            "inputs": [v.copy() if isinstance(v, np.ndarray) else v for v in gc.inputs],
            "cotangent": np.array(gc.cotangent, copy=True),
            "computed": float(gc.result[idx]), "expected": float(e.expected[idx]),
            "exact_hi": float(gc.exact.hi[idx]), "exact_lo": float(gc.exact.lo[idx]),
            "ulp": float(e.ulp[idx]), "rel": float(e.rel[idx]), "abs": float(e.abs[idx]),
            "cae": _num_or_none(_cae_defined(gc)[idx]),
            "kappa": None if gc.condition is None else float(gc.condition.kappa[idx]),
            "grade": GRADES[int(g.codes[idx])], "why": g.describe(idx),
            "class": klass, "source": source, "recipe": dict(recipe or {})}


def _num_or_none(x):
    x = float(x)
    return None if x != x else x


def _persists(metric, w, gc, idx, g=None):
    """Does the finding ``w`` hold on the re-judged unit (comparison ``gc``, element ``idx``,
    ``g`` its Judgement)?"""
    e = gc.errors
    if metric == "grade":
        return g is not None and int(g.codes[idx]) >= CODE.get(w["grade"], 0)
    if metric == "nonfinite":
        nan = ("nan", "nan_inf_arith")   # one class: which NaN depends on the batch's other inputs
        got = str((g.nonfinite if g is not None else e.nonfinite)[idx])
        return got == w["class"] or (got in nan and w["class"] in nan)
    if metric == "flushed":
        return bool(gc.flushed[idx])
    if metric == "cae":
        cae = _cae_defined(gc)
        return bool(np.isfinite(cae[idx])) and float(cae[idx]) >= min(CAE_SHRINK, w["value"])
    return np.isfinite(e.ulp[idx]) and float(e.ulp[idx]) >= min(ULP_SHRINK, w["value"])


def shrink_to_unit(group: GradGroup, cell: GradCell, metric: str):
    """Re-judge the worst input's unit alone; store it as ``shrunk`` when the finding persists."""
    w = cell.worst.get(metric)
    if w is None:
        return
    if metric == "cae" and w["value"] < CAE_SHRINK or metric == "ulp" and w["value"] < ULP_SHRINK:
        return
    if metric == "grade" and CODE.get(w["grade"], 0) < CODE["envelope"]:
        return
    q = group.q
    if w["index"]:
        args, cot, idx = unit_case(q, w["inputs"], w["cotangent"], w["index"])
    else:  # the gradient of a scalar argument (T, eps, beta) sums over every unit: re-judge all
        args, cot, idx = tuple(w["inputs"]), w["cotangent"], ()
    try:
        inputs, cot, ex, co = group.exact(list(args), cot)
        r = group.judge_cell(cell, inputs, cot, ex, co)
    except Exception:  # noqa: BLE001 - no shrunk case; the original is kept
        return
    gc = r.args.get(w["arg"])
    if gc is None:
        return
    g, _, _ = group.grade(cell, gc)
    if not _persists(metric, w, gc, idx, g):
        return
    klass = str(g.nonfinite[idx]) if metric == "nonfinite" else w["class"]
    w["shrunk"] = _worst(gc, g, metric, w["value"], idx, klass, w["source"], None)

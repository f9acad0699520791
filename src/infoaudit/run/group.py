"""A group: the cells of one (quantity, dtype) judged on shared inputs against one exact evaluation.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .. import judging
from .. import quantities as Q
from ..differential import Unsupported
from ..dtypes import FORMATS, cast, dtype_name, ulp_of
from ..judging import profiles as JP
from ..judging.grades import CODE, GRADES, WELL_CONDITIONED
from .profiles import DEFAULT_REFERENCE_WORK, ReferenceOverBudget, exact_within_budget, group_seed
from .relative_cells import pair_cells, relate
from .targets import Target

__all__ = ["METRICS", "SHRUNK_METRICS", "SHIFT_INVARIANCE", "judge", "invariant_masks", "shift_check", "Worst", "CellState", "fingerprint", "element_value", "scores", "rank_key", "why_line", "finding_masks", "Group", "unit_magnitudes", "magnitude_label"]


# the worst input kept per cell: grade (worst grade, then error over its allowance),
# well_conditioned (largest relative error beyond the conditioning at kappa <= WELL_CONDITIONED),
# ulp, rel, nonfinite, invariant
METRICS = ("grade", "well_conditioned", "ulp", "rel", "nonfinite", "invariant")


SHRUNK_METRICS = ("nonfinite", "invariant", "grade", "well_conditioned")   # findings shrunk to a reproducer


SHIFT_INVARIANCE = "shift invariance (z + c)"


_CR, _FA, _FL, _CO, _EN, _UN, _IN, _NF = (CODE[g] for g in GRADES)


def judge(q, target: Target, inputs, exact, dname, ftz=None):
    """Run ``target`` on ``inputs`` and judge the result with the one judge.

    Returns ``(y float64, judging.Judgement, notes)``; raises :class:`Unsupported` when the
    target refuses. A backend op's result of the same size but another shape is reshaped, one in
    a wider dtype rounded once to ``dname`` (both noted); a user's implementation must return the
    expected shape and dtype, as the gate requires (:attr:`Target.user`). ``ftz``: the
    platform's flush-to-zero probe (:meth:`Target.flush_probe`) or None.
    """
    raw = target(inputs)
    notes = []
    returned = dtype_name(raw.dtype) if (raw.dtype.kind == "f" or "bfloat16" in str(raw.dtype)) else str(raw.dtype)
    if raw.shape != exact.shape:
        if raw.size == exact.size and not target.user:
            notes.append(f"returned shape {raw.shape}, expected {exact.shape}; reshaped")
            raw = raw.reshape(exact.shape)
        else:
            raise Unsupported(f"returned shape {raw.shape}, expected {exact.shape}")
    if returned != dname:
        if target.user:
            raise Unsupported(f"returned dtype {returned}; expected {dname} (the dtype of its inputs)")
        notes.append(f"returned {returned}; rounded once to {dname}")
        try:
            raw = cast(raw.astype(np.float64), dname)
        except (TypeError, ValueError) as e:
            raise Unsupported(f"returned {returned}: {e}") from e
    y = raw.astype(np.float64)
    return y, judging.judge(q, inputs, y, exact, dname, ftz=ftz), notes


def invariant_masks(q, inputs, j, dname, judged=None) -> dict:
    """{rule: elements the judge graded ``invariant`` under it} of one judgement (among
    ``judged``), keyed by the rule names of :func:`infoaudit.judging.check_invariants` (e.g.
    ``"y >= 0"``, ``"rows sum to 1"``); empty when no element is graded ``invariant``."""
    graded = j.codes == _IN
    if judged is not None:
        graded = graded & judged
    if not graded.any():
        return {}
    band = j.band_codes if getattr(j, "band_codes", None) is not None else j.codes
    tol = np.maximum(j.allow_conditioned, j.allow_envelope)
    inv = judging.check_invariants(q, inputs, j.computed, dname, exact=j.exact_hi, tol=tol, flushed=band == _FL)
    out = {rule: np.asarray(m, bool) & graded for rule, m in inv.rules.items()}
    out = {rule: m for rule, m in out.items() if m.any()}
    return out or {"invariant": graded}


def shift_check(q, target, inputs, j, exact, dname, profile, ftz=None):
    """softmax / log_softmax(z + c) equals softmax / log_softmax(z) (c exact, the exact values
    the same): a second call on the shifted logits, judged by the same judge. Returns (mask of
    elements whose shifted result fails ``profile`` -- or is non-finite -- where the first call's
    passes, c) or None. Not part of the cell's verdict: the gate, which calls an implementation
    once per input, cannot make this check, and the verdicts of both are the judge's."""
    if q.name not in ("softmax", "log_softmax"):
        return None
    z = inputs[0].astype(np.float64)
    fin = np.isfinite(z)
    if not fin.any():
        return None
    zmax = float(np.max(np.abs(z[fin])))
    for c in (FORMATS[dname].max / 4, 64.0, -64.0):
        with np.errstate(over="ignore", invalid="ignore"):
            zc = z + c
        if not np.isfinite(zc[fin]).all() or (np.abs(zc[fin]) > FORMATS[dname].max).any():
            continue
        zcd = cast(zc, dname)
        if not np.array_equal(zcd.astype(np.float64), zc, equal_nan=True):
            continue
        if zmax + abs(c) > FORMATS[dname].max:
            continue
        try:
            _, j2, _ = judge(q, target, [zcd], exact, dname, ftz)
        except Unsupported:
            return None
        first = JP.failing_mask(j, profile) | (j.codes == _NF)
        bad = (JP.failing_mask(j2, profile) | (j2.codes == _NF)) & ~first
        return (bad, c) if bad.any() else None
    return None


@dataclass
class Worst:
    """The worst input seen for one metric of one cell (arrays in the audited dtype), with the
    judge's verdict on its worst element."""

    metric: str
    value: float
    args: tuple
    index: tuple
    computed: float
    expected: float        # exact value correctly rounded to the dtype
    exact_hi: float
    exact_lo: float
    ulp: float
    rel: float
    abs: float
    klass: str = ""        # non-finite class or invariant rule
    source: str = ""       # corpus label or "search:any" / "search:nonfinite"
    recipe: dict = field(default_factory=dict)
    shrunk: "Worst | None" = None
    shrink_steps: int = 0
    grade: str = ""        # the judge's grade of the element
    kappa: float = math.nan          # condition number N / |y*| at the element
    allow_conditioned: float = math.nan  # the conditioned allowance, in ULPs of the exact value
    allow_envelope: float = math.nan     # a stable algorithm's envelope, in ULPs
    why: str = ""          # the judge's one line on the element (ULPs, both allowances, grade)
    others: list = field(default_factory=list)  # the other cells of the group on the same input


@dataclass
class CellState:
    target: Target
    quantity: str
    dtype: str
    ftz: object = None     # flush-to-zero probe (active) or None
    examples: int = 0
    elements: int = 0
    max_ulp: float = 0.0
    max_rel: float = 0.0
    max_score: float = 0.0  # |err| / the larger allowance, over judged finite elements
    max_abs: float = 0.0
    nonfinite: dict = field(default_factory=dict)
    invariants: dict = field(default_factory=dict)
    worst: dict = field(default_factory=dict)
    ulps: list = field(default_factory=list)
    points: list = field(default_factory=list)
    search_hits: dict = field(default_factory=dict)  # finding class -> count on hypothesis-generated inputs
    notes: set = field(default_factory=set)
    grade_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(GRADES), np.int64))
    unjudged: int = 0      # elements the judging profile does not judge (undefined exact value, inf inputs)
    failing: int = 0       # judged elements whose grade the profile does not pass
    why: str = ""          # the verdict's one line: the deciding element of the deciding input
    why_key: tuple = (-1, -1, -1.0)
    keys: dict = field(default_factory=dict)  # metric -> ranking key of the stored worst input
    relative: object = None       # judging.relative.Ratio against the baseline cell (compiled vs eager)
    relative_case: tuple = None   # (inputs, index) where the per-element error ratio was largest


def fingerprint(args) -> bytes:
    import hashlib

    h = hashlib.sha1()
    for a in args:
        if isinstance(a, np.ndarray):
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(repr(a).encode())
        h.update(b"|")
    return h.digest()


def element_value(a, idx):
    try:
        return float(np.asarray(a)[idx])
    except (IndexError, TypeError):
        return math.nan


def scores(j) -> np.ndarray:
    """|err| / max(conditioned, envelope allowance) per element (NaN where not finite)."""
    with np.errstate(all="ignore"):
        s = j.abs / np.maximum(j.allow_conditioned, j.allow_envelope)
    return np.where(np.isfinite(s), s, np.nan)


def rank_key(j, i, sc):
    """Ranking of one element: (grade code, min(score, 1e3))."""
    s = float(sc[i]) if np.isfinite(sc[i]) else 1e3
    return int(j.codes[i]), min(s, 1e3)


def why_line(j, profile, fail, judged, prefix="") -> str:
    """The verdict in one line: PASS/FAIL, the profile and its passing grade, and the deciding
    element (the worst failing one, else the worst judged one) with its ULPs, both allowances and
    grade (:meth:`judging.Judgement.describe`)."""
    head = f"{'FAIL' if fail.any() else 'PASS'} under {profile.name} ({profile.passing} and better pass)"
    i = j.worst_index(fail if fail.any() else judged)
    if i is None:
        return f"{head}: no element judged"
    line = f"{head}: {prefix}{j.describe(i)}"
    if int(fail.sum()) > 1:
        counts = np.bincount(j.codes[fail].astype(np.int64), minlength=len(GRADES))
        line += " [failing: " + ", ".join(f"{k} {g}" for g, k in zip(GRADES, counts) if k) + "]"
    return line


def finding_masks(j, judged):
    """(band, well-conditioned) masks of one judgement: judged elements graded by their error
    (not a class: ``nonfinite`` / ``invariant`` findings have their own); and judged elements beyond
    the conditioning (``envelope``, ``unstable``, ``invariant``) at kappa <= WELL_CONDITIONED."""
    band = judged & (j.codes <= _UN)
    with np.errstate(all="ignore"):
        wc = judged & np.isin(j.codes, (_EN, _UN, _IN)) & (j.kappa <= WELL_CONDITIONED) & np.isfinite(j.rel)
    return band, wc


class Group:
    """Search state of one (quantity, dtype) over its targets."""

    def __init__(self, quantity, dtype, targets, profile="default", seed=0, max_points=150, judge_profile="default"):
        self.q = Q.get(quantity)
        self.dtype = dtype_name(dtype)
        self.targets = list(targets)
        self.profile = profile
        self.judge_profile = JP.get(judge_profile)
        self.seed = seed
        self.cells = [CellState(t, self.q.name, self.dtype, t.flush_probe(self.dtype)) for t in self.targets]
        self.examples = 0
        self.reference_errors = 0      # inputs skipped: the reference refused or failed (over budget included)
        self.reference_over_budget = 0  # of which: past the deterministic precision budget
        self.reference_seconds = 0.0
        self.backend_seconds = 0.0
        self.max_points = max_points
        self.shrink_elements = None
        self.reference_work = DEFAULT_REFERENCE_WORK
        self._exact_cache = {}
        self._rng = np.random.default_rng(group_seed(seed, "points", self.q.name, self.dtype))
        self.pairs = pair_cells(self.cells)   # (compiled cell, its eager cell): relative_cells

    # -- one input on every cell
    def exact(self, args):
        """Reference values of ``args`` (memoised on the bytes of the inputs)."""
        key = fingerprint(args)
        ex = self._exact_cache.get(key)
        if ex is None:
            ex = exact_within_budget(self.q, list(args), self.reference_work)
            if len(self._exact_cache) > 512:
                self._exact_cache.clear()
            self._exact_cache[key] = ex
        return ex

    def judge_cell(self, cell, args, exact=None):
        """(y, Judgement, notes) of one cell on ``args`` (the exact values from the group's cache
        when not given); raises Unsupported, ReferenceOverBudget or the reference's error."""
        if exact is None:
            exact = self.exact(list(args))
        return judge(self.q, cell.target, list(args), exact, self.dtype, cell.ftz)

    def evaluate(self, args, source="", recipe=None):
        """Judge ``args`` on every live cell; returns {cell index: (max finite ulp, max score,
        non-finite + invariant count)}.

        ``source`` is a label, or a list with one label per batch row (stacked corpus cases).
        """
        q = self.q
        inputs = list(args)
        t0 = time.perf_counter()
        try:
            exact = self.exact(inputs)
        except ReferenceOverBudget:  # deterministic: the same input is skipped on every machine
            self.reference_errors += 1
            self.reference_over_budget += 1
            return {}
        except Exception:  # noqa: BLE001 - an input the reference cannot evaluate is skipped
            self.reference_errors += 1
            return {}
        self.reference_seconds += time.perf_counter() - t0
        self.examples += 1
        mags = unit_magnitudes(q, inputs, exact.shape)
        res, judgements = {}, {}
        t0 = time.perf_counter()
        for i, cell in enumerate(self.cells):
            t = cell.target
            if t.unsupported:
                continue
            try:
                y, j, notes = self.judge_cell(cell, inputs, exact)
            except Unsupported as e:
                t.errors += 1
                t.first_error = t.first_error or str(e)
                if t.successes == 0 and t.errors >= 3:
                    t.unsupported = t.first_error
                continue
            t.successes += 1
            cell.notes.update(notes)
            res[i] = self._record(cell, inputs, y, j, exact, mags, source, recipe)
            judgements[i] = j
        if self.pairs:
            relate(self, self.pairs, judgements, inputs, source)
        self.backend_seconds += time.perf_counter() - t0
        return res

    def _record(self, cell, inputs, y, j, exact, mags, source, recipe):
        p = self.judge_profile
        judged = JP.judged_mask(j, p)
        fail = JP.failing_mask(j, p)
        cell.examples += 1
        cell.elements += int(y.size)
        fin = np.isfinite(j.ulp)
        u = j.ulp[fin]
        if u.size:
            cell.ulps.append(u)
        top_ulp = float(u.max()) if u.size else 0.0
        rels = j.rel[np.isfinite(j.rel)]
        top_rel = float(rels.max()) if rels.size else 0.0
        cell.max_abs = max(cell.max_abs, float(np.max(j.abs[fin])) if fin.any() else 0.0)
        sc = scores(j)
        fs = judged & np.isfinite(sc) & (j.codes != _NF)
        top_score = float(sc[fs].max()) if fs.any() else 0.0
        cell.max_score = max(cell.max_score, top_score)
        # grades of the judged elements, the failing ones, and the verdict's deciding element
        cell.grade_counts += np.bincount(j.codes[judged].ravel().astype(np.int64), minlength=len(GRADES))
        cell.unjudged += int(np.count_nonzero(~judged))
        n_fail = int(np.count_nonzero(fail))
        cell.failing += n_fail
        decide = j.worst_index(fail if n_fail else judged)
        if decide is not None:
            key = (1 if n_fail else 0,) + rank_key(j, decide, sc)
            if key > cell.why_key:
                cell.why_key = key
                cell.why = why_line(j, p, fail, judged)
        from_search = isinstance(source, str) and source.startswith("search")
        nf = judged & (j.codes == _NF)
        n_nf = int(nf.sum())
        for c in j.nonfinite[nf].ravel():
            cell.nonfinite[c] = cell.nonfinite.get(c, 0) + 1
            if from_search:
                cell.search_hits[c] = cell.search_hits.get(c, 0) + 1
        inv = {rule: np.asarray(m) for rule, m in self.invariant_masks(inputs, j, judged).items()}
        sh = shift_check(self.q, cell.target, inputs, j, exact, self.dtype, p, cell.ftz)
        if sh is not None:
            inv[SHIFT_INVARIANCE] = sh[0]
        n_inv = 0
        for name, mask in inv.items():
            k = int(mask.sum())
            n_inv += k
            cell.invariants[name] = cell.invariants.get(name, 0) + k
            if from_search:
                cell.search_hits[name] = cell.search_hits.get(name, 0) + k
        # the worst input per metric
        band, wc = finding_masks(j, judged)
        i = j.worst_index(band)
        if i is not None:
            key = rank_key(j, i, sc)
            if key > cell.keys.get("grade", (-1, -1.0)):
                cell.keys["grade"] = key
                cell.worst["grade"] = self.worst_record("grade", key[1], inputs, i, j, exact, "", source, recipe)
        if wc.any():
            r = np.where(wc, j.rel, -1.0)
            i = tuple(int(k) for k in np.unravel_index(int(np.argmax(r)), r.shape))
            if float(r[i]) > cell.keys.get("well_conditioned", -1.0):
                cell.keys["well_conditioned"] = float(r[i])
                cell.worst["well_conditioned"] = self.worst_record("well_conditioned", float(r[i]), inputs, i, j, exact,
                                                             "", source, recipe)
        if u.size and top_ulp > cell.max_ulp:
            cell.max_ulp = top_ulp
            i = np.unravel_index(int(np.nanargmax(np.where(fin, j.ulp, -1.0))), j.ulp.shape)
            cell.worst["ulp"] = self.worst_record("ulp", top_ulp, inputs, i, j, exact, "", source, recipe)
        if rels.size and top_rel > cell.max_rel:
            cell.max_rel = top_rel
            r = np.where(np.isfinite(j.rel), j.rel, -1.0)
            i = np.unravel_index(int(np.argmax(r)), r.shape)
            cell.worst["rel"] = self.worst_record("rel", top_rel, inputs, i, j, exact, "", source, recipe)
        if n_nf and "nonfinite" not in cell.worst:  # the first non-finite input found (corpus, then search)
            i = tuple(int(k) for k in np.argwhere(nf)[0])
            cell.worst["nonfinite"] = self.worst_record("nonfinite", n_nf, inputs, i, j, exact, str(j.nonfinite[i]),
                                                  source, recipe)
        if n_inv and ("invariant" not in cell.worst or n_inv > cell.worst["invariant"].value):
            name, mask = next((k, m) for k, m in inv.items() if m.any())
            i = tuple(int(k) for k in np.argwhere(mask)[0])
            cell.worst["invariant"] = self.worst_record("invariant", n_inv, inputs, i, j, exact, name, source, recipe)
        # points for the error-vs-magnitude plot
        self._points(cell, j, mags)
        return top_ulp, top_score, n_nf + n_inv

    def invariant_masks(self, inputs, j, judged) -> dict:
        """``{rule: mask}`` of the invariants the judged elements break (:func:`invariant_masks`)."""
        return invariant_masks(self.q, inputs, j, self.dtype, judged)

    def worst_record(self, metric, value, inputs, idx, j, exact, klass, source, recipe):
        """The :class:`Worst` record of element ``idx`` of judgement ``j`` for ``metric``."""
        idx = tuple(int(i) for i in idx)
        if isinstance(source, list):
            source = source[idx[0]] if idx and idx[0] < len(source) else ", ".join(source)
        hi = element_value(j.exact_hi, idx)
        with np.errstate(all="ignore"):
            unit = float(ulp_of(np.array([hi]), self.dtype)[0]) if math.isfinite(hi) else math.nan
        return Worst(metric, float(value), tuple(v.copy() if isinstance(v, np.ndarray) else v for v in inputs), idx,
                     element_value(j.computed, idx), element_value(j.expected, idx), hi, element_value(exact.lo, idx),
                     element_value(j.ulp, idx), element_value(j.rel, idx), element_value(j.abs, idx), klass, source, dict(recipe or {}),
                     grade=GRADES[int(j.codes[idx])], kappa=element_value(j.kappa, idx),
                     allow_conditioned=element_value(j.allow_conditioned, idx) / unit,
                     allow_envelope=element_value(j.allow_envelope, idx) / unit, why=j.describe(idx))

    def _points(self, cell, j, mags):
        flat_u = j.ulp.ravel()
        flat_r = j.rel.ravel()
        flat_m = mags.ravel()
        fin = np.flatnonzero(np.isfinite(flat_u))
        if not fin.size:
            return
        pick = [int(fin[np.argmax(flat_u[fin])])]
        if fin.size > 1:
            pick += [int(i) for i in self._rng.choice(fin, size=min(3, fin.size), replace=False)]
        for i in pick:
            p = (float(flat_m[i]), float(flat_u[i]), float(flat_r[i]))
            if len(cell.points) < self.max_points:
                cell.points.append(p)
            else:
                k = int(self._rng.integers(0, len(cell.points) + 1))
                if k < len(cell.points) and i == pick[0] and p[1] > cell.points[k][1]:
                    cell.points[k] = p

    # -- the verdict of a cell
    def verdict(self, cell) -> dict:
        """The cell's judging fields: ``grade`` (its worst judged element's), ``grades`` (judged
        elements per grade), ``verdict`` ("pass" / "fail"; None for a backend cell that did not
        run), ``profile``, ``why``, ``unjudged``, ``failing``. A user's implementation that raised
        or returned the wrong shape or dtype fails, as in the gate."""
        t = cell.target
        grades = {g: int(k) for g, k in zip(GRADES, cell.grade_counts) if k}
        out = {"grade": judging.worst_grade(grades), "grades": grades, "verdict": None,
               "profile": self.judge_profile.name, "why": cell.why, "unjudged": cell.unjudged,
               "failing": cell.failing}
        if t.user and t.errors:
            out["verdict"] = "fail"
            out["why"] = (f"FAIL under {self.judge_profile.name}: the implementation failed on {t.errors} "
                          f"input(s): {t.first_error}")
        elif cell.examples and not t.unsupported:
            out["verdict"] = "fail" if cell.failing else "pass"
        return out


def unit_magnitudes(q, inputs, out_shape):
    """Per output element: the largest finite |input| of its unit (the smallest positive value for probabilities)."""
    fa = [(a, v) for a, v in zip(q.args, inputs) if a.is_float_array]
    arg, v = fa[0]
    x = np.abs(v.astype(np.float64))
    probs = arg.kind in (Q.PROBS, Q.PROB, Q.TABLE)
    with np.errstate(invalid="ignore"):
        if probs:
            x = np.where(x > 0, x, np.inf)
        else:
            x = np.where(np.isfinite(x), x, -np.inf if not probs else np.inf)
        if q.structure == Q.ELEMENTWISE:
            m = np.broadcast_to(x, out_shape)
        elif q.structure == Q.TABLE_REDUCE:
            m = (np.min if probs else np.max)(x.reshape(*x.shape[:-2], -1), axis=-1)
        else:
            m = (np.min if probs else np.max)(x, axis=-1)
            if q.structure in (Q.ROW, Q.ADAPTIVE):
                m = np.broadcast_to(m[..., None], out_shape)
    m = np.where(np.isfinite(m), m, 0.0)
    return np.asarray(m, dtype=np.float64)


def magnitude_label(q) -> str:
    """The x axis of the error-vs-magnitude plot for quantity ``q`` (a registry entry or name)."""
    q = Q.get(q)
    arg = next(a for a in q.args if a.is_float_array)
    if arg.kind in (Q.PROBS, Q.PROB, Q.TABLE):
        return "smallest positive probability"
    if q.structure == Q.ELEMENTWISE:
        return "|input|"
    return "largest finite |input| in the row"

"""The gate's verdict on one case: the implementation's outcome judged by the one judge under the
profile's rules (flush-to-zero, a baseline, the documented widening exceptions).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import judging
from .. import quantities as Q
from ..harness.calls import Harness, Outcome, ReferenceFailure, describe_exception
from ..judging import profiles as JP
from ..judging import relative as REL
from ..judging.metrics import element_errors
from ..reference.cache import exact_values
from ..reproducers.literals import short_number
from ..results.compare_cells import grew
from . import profiles as P

__all__ = ["FlushFlags", "Judgement", "Context", "grade_case", "judge"]


@dataclass(frozen=True)
class FlushFlags:
    """What the judge needs to know of the platform's flush-to-zero behaviour (``judging.judge(ftz=...)``)."""

    flushes_outputs: bool
    flushes_inputs: bool


@dataclass
class Judgement:
    """One implementation outcome on one case, judged by the one judge (:mod:`infoaudit.judging`)."""

    failed: bool
    kind: str                      # ok | numerical | raised | timeout | ... (harness kinds)
    message: str
    inputs: list
    y: np.ndarray | None = None
    exact: object = None
    expected: np.ndarray | None = None
    score: np.ndarray | None = None      # |err| / max(conditioned, envelope allowance); NaN non-finite; 0 unjudged
    ulp: np.ndarray | None = None
    abs_err: np.ndarray | None = None
    nonfinite: np.ndarray | None = None  # non-finite class of judged, not tolerated elements ("" elsewhere)
    invariants: list = field(default_factory=list)
    worst: tuple | None = None
    label: str = ""
    flushed: int = 0
    fw_score: float | None = None         # relative rule: the framework op's max error / allowance
    graded: object = None                 # the judging.Judgement
    judged: np.ndarray | None = None      # elements the profile judges
    failing: np.ndarray | None = None     # elements whose grade the profile does not pass
    accepted: np.ndarray | None = None    # elements the profile's documented exceptions accept
    worst_key: tuple = (-1, 0.0)          # (grade code, min(score, 1e3)) of the worst judged element
    worst_line: str = ""                  # judging's one-line description of that element

    @property
    def max_score(self):
        if self.score is None or self.score.size == 0:
            return 0.0
        s = self.score[np.isfinite(self.score)]
        return float(s.max()) if s.size else 0.0

    @property
    def nonfinite_count(self):
        return 0 if self.nonfinite is None else int(np.count_nonzero(self.nonfinite != ""))

    @property
    def grades(self) -> dict:
        """Counts per grade of the judged elements."""
        if self.graded is None:
            return {}
        codes = self.graded.codes[self.judged] if self.judged is not None else self.graded.codes
        counts = np.bincount(codes.ravel().astype(np.int64), minlength=len(judging.GRADES))
        return {g: int(k) for g, k in zip(judging.GRADES, counts) if k}

    def target_value(self):
        if self.kind not in ("ok", "numerical"):
            return 1e6
        return min(1e6, self.max_score + 1e3 * self.nonfinite_count)


@dataclass
class Context:
    """Everything needed to judge cases of one quantity x dtype."""

    q: object
    dtype: str
    harness: Harness
    thresholds: P.Thresholds
    ftz: object = None                 # FTZ probe result (or None)
    flush_requested: bool = False
    baseline: dict | None = None       # baseline cell (regression mode)
    fw_op: object = None               # relative rule: callable(*framework args) -> framework array
    relative: object = None            # relative rule: judging.relative.Ratio over the cases judged
    seen: list = field(default_factory=list)   # (label, prepared inputs, fixed?) of every case judged

    @property
    def flushing(self):
        return self.flush_requested or bool(self.ftz and self.ftz.active)

    @property
    def flush_flags(self):
        """The platform's flushing as the judge takes it (None on an IEEE platform)."""
        if not self.flushing:
            return None
        probe = self.ftz
        return FlushFlags(bool(self.flush_requested or (probe is not None and probe.flushes_outputs)),
                          bool(probe is not None and probe.flushes_inputs))

    @property
    def profile(self) -> judging.Profile:
        """The judge's profile for this quantity x dtype (its passing grade and conventions)."""
        p = self.__dict__.get("_profile")
        if p is None:
            p = self.thresholds.judging_profile()
            self.__dict__["_profile"] = p
        return p


def _index(i):
    return tuple(int(k) for k in i)


def grade_case(ctx: Context, inputs, y, ex, label="") -> Judgement:
    """The judge's grades of ``y`` on ``inputs`` under the context's profile (not yet a verdict
    for the relative rule or the baseline)."""
    t = ctx.thresholds
    prof = ctx.profile
    try:
        g = judging.judge(ctx.q, inputs, y, ex, ctx.dtype, ftz=ctx.flush_flags)
    except (Q.InputError, ValueError, ArithmeticError) as e:
        raise ReferenceFailure("the judge failed: " + describe_exception(e)) from e
    judged = JP.judged_mask(g, prof)
    accepted = t.accepted(g)
    nf_code = judging.grades.CODE[judging.NONFINITE]
    fail = JP.failing_mask(g, prof, accepted)
    nf_fail = fail & (g.codes == nf_code)
    if nf_fail.any() and int(nf_fail.sum()) <= t.nonfinite:  # the profile tolerates this many
        accepted = nf_fail if accepted is None else (accepted | nf_fail)
        fail = fail & ~nf_fail
    # non-finite elements that are judged and not tolerated by the overflow margin
    nf = judged & (g.codes == nf_code) & JP.failing_mask(g, prof)
    with np.errstate(all="ignore"):
        score = g.abs / np.maximum(g.allow_conditioned, g.allow_envelope)
        score = np.where(nf, np.nan, np.where(judged & (g.codes != nf_code), score, 0.0))
    expected = g.expected
    fl_code = judging.grades.CODE[judging.FLUSHED]
    if ctx.flushing:  # show the flushed rounding in the reproducer
        expected = np.where((g.codes == fl_code) & (g.computed == 0), 0.0, expected)
    j = Judgement(False, "ok", "", inputs, y=y, exact=ex, expected=expected, score=score,
                  ulp=np.where(judged & ~nf & (g.codes != nf_code), g.ulp, 0.0),
                  abs_err=np.where(judged & (g.codes != nf_code), g.abs, 0.0),
                  nonfinite=np.where(nf, g.nonfinite, ""), invariants=list(g.invariants), label=label,
                  flushed=int(np.count_nonzero(judged & (g.codes == fl_code))), graded=g, judged=judged,
                  failing=fail, accepted=accepted)
    w = g.worst_index(judged)
    if w is not None:
        s = float(score[w]) if np.isfinite(score[w]) else 1e3
        j.worst_key = (int(g.codes[w]), min(s, 1e3))
        j.worst_line = g.describe(w)
        if not fail[w] and g.codes[w] > judging.grades.code_of(prof.passing):
            j.worst_line += f" ({_tolerated(t, accepted is not None and bool(accepted[w]), int(g.codes[w]))})"
    return j


def _tolerated(t, accepted, code):
    """Why an element below the passing grade passes: the profile's exceptions or conventions."""
    if accepted:
        ex = ", ".join(f"{k} = {v!r}" for k, v in t.exceptions().items())
        if code == judging.grades.CODE[judging.NONFINITE] and t.nonfinite:
            ex = ", ".join(x for x in (ex, f"nonfinite = {t.nonfinite}") if x)
        return f"accepted by the profile's {ex}"
    return f"tolerated: an overflow within a factor {t.overflow_margin:g} of the dtype's max (overflow_margin)"


def judge(ctx: Context, inputs, outcome: Outcome, label="") -> Judgement:
    """Judge one implementation outcome on ``inputs`` (numpy arrays in the dtype): the one judge's
    grades (:func:`infoaudit.judging.judge`) under the profile's passing grade for this quantity x
    dtype; a failure's message is the judge's one-line explanation (the grade reached and both
    allowances)."""
    if not outcome.ok:
        return Judgement(True, outcome.kind, outcome.message, inputs, label=label)
    try:
        ex = exact_values(ctx.q.name, ctx.dtype, inputs)
    except Exception as e:  # noqa: BLE001 - a reference limitation must not fail the user's build
        raise ReferenceFailure(describe_exception(e)) from e
    j = grade_case(ctx, inputs, outcome.value, ex, label)
    if ctx.thresholds.relative_k and ctx.fw_op is not None:
        return _judge_relative(ctx, j, inputs, ex)
    if ctx.baseline is not None:
        return _judge_baseline(ctx, j)
    g = j.graded
    if j.failing.any():
        w = g.worst_index(j.failing)
        j.failed = True
        j.kind = "numerical"
        j.worst = w
        j.message = (g.explain(ctx.profile, j.accepted)
                     + f"; at index {w}: returned {short_number(j.y[w])}, exact {short_number(ex.hi[w])}")
    else:
        j.worst = g.worst_index(j.judged)
    return j


def _judge_baseline(ctx, j):
    """Regression mode: fail only where the case is worse than the baseline cell."""
    b = ctx.baseline
    worse = []
    if j.nonfinite_count and not (b.get("nonfinite_total", 0) or b.get("fixed_nonfinite", 0)):
        worse.append(f"{j.nonfinite_count} non-finite mismatch(es); the baseline had none")
    lim = max(float(b.get("max_score", 0.0)), float(b.get("fixed_max_score", 0.0)))
    # the comparison of `infoaudit diff` (results.compare_cells.grew): beyond the baseline's worst
    # (factor 1, up to rounding) and beyond both allowances (floor 1)
    if grew(lim + 1e-12, j.max_score, factor=1 + 1e-9, floor=1.0):
        worse.append(f"error {j.max_score:.3g}x the larger allowance; the baseline's worst was {lim:.3g}x")
    g = j.graded
    j.worst = g.worst_index(j.failing) if j.failing.any() else g.worst_index(j.judged)
    if worse:
        j.failed = True
        j.kind = "numerical"
        why = g.explain(ctx.profile, j.accepted) if j.failing.any() else ""
        j.message = "worse than the baseline: " + "; ".join(worse) + (f" ({why})" if why else "")
    return j


def _judge_relative(ctx, j, inputs, ex):
    """The k-times rule (:mod:`infoaudit.judging.relative`, FlashAttention's and torch._dynamo's):
    the case fails when its worst error against the exact value exceeds k x the baseline op's
    worst error on the same inputs (ULPs, floored at 1), or when it is non-finite where the
    baseline is finite-correct; the ratios accumulate in ``ctx.relative``."""
    t = ctx.thresholds
    g = j.graded
    fw = Outcome("raised", message="no framework op")
    try:
        fargs = ctx.harness.framework_args(inputs)
        with ctx.harness.ad.x64(ctx.dtype == "float64"), warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = ctx.fw_op(*fargs)
        y_fw = ctx.harness.ad.to_numpy(out).astype(np.float64).reshape(j.y.shape)
        fw = Outcome("ok", y_fw)
    except Exception as e:  # noqa: BLE001
        fw = Outcome("raised", message=describe_exception(e))
    with np.errstate(all="ignore"):
        unit = np.maximum(g.allow_conditioned, g.allow_envelope)
        e_impl = np.where(np.isfinite(j.score), j.score, np.nan)
        if fw.ok:
            ferr = element_errors(fw.value, ex, ctx.dtype, ctx.q.name, inputs)
            e_fw = np.where(np.isfinite(ferr.abs) & j.judged, ferr.abs / unit, np.nan)
            mf = float(np.nanmax(e_fw)) if np.isfinite(e_fw).any() else 0.0
            fw_bad = ferr.nonfinite != ""
        else:
            mf = 0.0
            fw_bad = np.zeros(j.y.shape, bool)
    j.fw_score = mf
    e_c = REL.ulp_errors(g.ulp, g.nonfinite, j.judged)
    e_b = REL.ulp_errors(ferr.ulp, ferr.nonfinite, j.judged) if fw.ok else np.full(j.y.shape, np.inf)
    ratio = REL.cell_ratio(e_c, e_b)
    if ctx.relative is not None:
        ctx.relative.add(e_c, e_b, key=j.label)
    limit = t.relative_k * mf + 1.0
    j.score = np.where(np.isfinite(e_impl), e_impl / limit, np.nan)
    extra = (j.nonfinite != "") & ~fw_bad
    extra_nf = int(np.count_nonzero(extra))
    reasons = []
    if extra_nf > t.nonfinite:
        first = _index(np.argwhere(extra)[0])
        reasons.append(f"{extra_nf} non-finite mismatch(es) where the framework op is finite-correct: "
                       f"{g.describe(first)} at index {first}")
        j.worst = first
    over = not REL.passes(ratio, t.relative_k)
    if over:
        r = np.nan_to_num(REL.element_ratios(e_c, e_b), nan=-1.0)
        w = _index(np.unravel_index(int(np.argmax(r)), r.shape))
        reasons.append(f"{REL.describe(ratio, 'the implementation', 'the baseline')} (worst error ratio {ratio:.3g} > "
                       f"k = {t.relative_k:g}) at index {w}: {g.describe(w)}")
        j.worst = j.worst or w
    if not fw.ok:
        reasons.append(f"(the framework op itself failed: {fw.message})")
    if j.worst is None:
        j.worst = g.worst_index(j.judged)
    if extra_nf > t.nonfinite or over:
        j.failed = True
        j.kind = "numerical"
        j.message = "; ".join(reasons)
    return j

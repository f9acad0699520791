"""The gate's verdict on one differentiated case: each gradient component graded by the one judge
(N from second derivatives, S from the closed-form VJP's terms) under the profile's rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import judging
from .. import quantities as Q
from ..dtypes import FORMATS, cast, fmt
from ..grad_compare import output_mask_to_arg
from ..judging import profiles as JP
from ..judging.core import infinite_input_mask
from ..reference.cache import exact_values
from ..reproducers.literals import short_number
from .grad_calls import GradOutcome, exact_vjp

__all__ = ["ArgVerdict", "GradJudgement", "judge", "tolerated_why"]


@dataclass
class ArgVerdict:
    """One argument's gradient on one case, graded by the one judge (:func:`judging.grade_elements`)."""

    comparison: object             # GradComparison
    S: np.ndarray                  # the envelope scale (judging.GRAD_SCALES: the closed-form VJP's terms)
    allowed: np.ndarray            # the larger of the two allowances, max(conditioned, envelope)
    score: np.ndarray              # |err| / allowed; NaN where non-finite; 0 where unjudged or accepted
    nonfinite: np.ndarray          # bool: judged, failing non-finite mismatches
    flushed: np.ndarray            # bool: 0 returned where the exact gradient rounds nonzero
    flushed_bad: np.ndarray        # bool: flushed and failing
    boundary: np.ndarray           # bool: finite where the exact gradient is a one-sided +-inf
    unjudged: np.ndarray           # bool
    n: int = 1
    scalar: bool = False
    abs_err: np.ndarray | None = None   # |g - g*| as judged (0 where correctly rounded or unjudged)
    graded: object = None          # the judging.Judgement of this argument's gradient
    codes: np.ndarray | None = None     # grade codes (flushed-input judgements taken where better)
    failing: np.ndarray | None = None   # bool: judged components whose grade the profile does not pass
    accepted: np.ndarray | None = None  # bool: accepted whatever the grade (boundary, the profile's exceptions)

    @property
    def cae(self):
        return self.comparison.cae

    @property
    def errors(self) -> np.ndarray:
        """Failing components that are neither non-finite nor flushed (judged by their error)."""
        return self.failing & ~self.nonfinite & ~self.flushed_bad


@dataclass
class GradJudgement:
    failed: bool
    kind: str                      # ok | numerical | not_differentiable | timeout | wrong_shape
    message: str
    inputs: list                   # the gate inputs (prepared, in the dtype)
    label: str = ""
    outcome: GradOutcome | None = None
    args: dict = field(default_factory=dict)      # name -> ArgVerdict
    worst: tuple | None = None     # (argument name, index)

    @property
    def max_score(self):
        vals = [float(np.nanmax(np.where(np.isfinite(a.score), a.score, np.nan)))
                for a in self.args.values() if np.isfinite(a.score).any()]
        return max(vals) if vals else 0.0

    def count(self, what):
        return int(sum(int(np.count_nonzero(getattr(a, what))) for a in self.args.values()))

    @property
    def components(self):
        return int(sum(a.score.size for a in self.args.values()))

    @property
    def grades(self) -> dict:
        """Judged components per grade, over every argument."""
        counts = np.zeros(len(judging.GRADES), np.int64)
        for a in self.args.values():
            if a.codes is not None:
                counts += np.bincount(np.asarray(a.codes)[~a.unjudged].ravel().astype(np.int64),
                                      minlength=len(judging.GRADES))
        return {g: int(k) for g, k in zip(judging.GRADES, counts) if k}

    def worst_component(self):
        """((grade code, min(score, 1e3)), argument name, index) of the worst judged component, or None."""
        best = None
        for name, a in self.args.items():
            if a.codes is None:
                continue
            with np.errstate(all="ignore"):
                s = np.where(np.isfinite(a.score), np.minimum(a.score, 1e3), 1e3)
            key = np.where(~a.unjudged, np.asarray(a.codes, np.float64) * 1e4 + s, -1.0)
            if key.size == 0 or key.max() < 0:
                continue
            i = np.unravel_index(int(np.argmax(key)), key.shape)
            i = tuple(int(k) for k in i)
            k = (int(a.codes[i]), float(s[i]))
            if best is None or k > best[0]:
                best = (k, name, i)
        return best

    @property
    def max_cae(self):
        vals = []
        for a in self.args.values():
            if a.cae is None:
                continue
            c = np.where(~a.unjudged & ~a.nonfinite, a.cae, np.nan)
            c = c[np.isfinite(c)]
            if c.size:
                vals.append(float(c.max()))
        return max(vals) if vals else None

    def target_value(self):
        if self.kind not in ("ok", "numerical"):
            return 1e6
        return min(1e6, self.max_score + 1e3 * (self.count("nonfinite") + self.count("flushed_bad")))


def _unit_masks(gctx, gin):
    """Output-shaped masks of units whose gradient is not judged: +-inf/NaN inputs other than -inf
    masks (profile infinite_inputs = masks) and, lazily, units whose forward value is undefined."""
    th = gctx.thresholds
    vals = [np.asarray(v).astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind not in "iu" else v
            for v in gin]
    shape = Q.output_shape(gctx.q, vals)
    m = np.zeros(shape, bool)
    if th.infinite_inputs == "masks":
        m |= infinite_input_mask(gctx.q, gin)
    return m


def _forward_undefined(gctx, gin):

    try:
        ex = exact_values(gctx.q.name, gctx.dtype, gin)
    except Exception:  # noqa: BLE001
        return None
    return np.isnan(np.asarray(ex.hi, dtype=np.float64))


def judge(gctx, inputs, outcome: GradOutcome, label="") -> GradJudgement:
    """Grade the user's gradient on one case with the one judge under the profile's ``grad_pass``."""
    if not outcome.ok:
        return GradJudgement(True, outcome.kind, outcome.message, inputs, label, outcome)
    res = outcome.result
    j = GradJudgement(False, "ok", "", inputs, label, outcome)
    if not res.args:
        return j
    first = next(iter(res.args.values()))
    gin, cot = first.inputs, first.cotangent
    S_all = judging.grad_scale(gctx.q, gin, cot, gctx.dtype, gctx.flushing)
    unit_mask = _unit_masks(gctx, gin)
    verdicts = _judge_args(gctx, res, S_all, unit_mask)
    if not gctx.thresholds.require_nan and _any_failure(gctx, verdicts):
        und = _forward_undefined(gctx, gin)  # lazily: only where something would fail
        if und is not None and und.any():
            unit_mask = unit_mask | und
            verdicts = _judge_args(gctx, res, S_all, unit_mask)
    if gctx.flushes_inputs and _any_failure(gctx, verdicts):
        verdicts = _with_flushed_inputs(gctx, res, verdicts, unit_mask)
    j.args = verdicts
    _explain(gctx, j)
    return j


def _flush_subnormals(a, dtype):
    """Values (float64) that are subnormal in ``dtype`` replaced by a zero of the same sign."""
    tiny = fmt(dtype).tiny
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        sub = np.isfinite(a) & (a != 0) & (np.abs(a) < tiny)
    return np.where(sub, np.copysign(0.0, a), a), bool(sub.any())


def _with_flushed_inputs(gctx, res, verdicts, unit_mask):
    """On a platform that reads subnormal inputs as zero (XLA on CPU, probed), a component also
    passes when it matches the exact gradient at the flushed inputs (as forward values do)."""
    from dataclasses import replace as dc_replace

    from ..grad_compare import GradResult
    from ..judging.condition import condition_aware_error
    from ..judging.metrics import element_errors

    first = next(iter(res.args.values()))
    gin, cot = first.inputs, first.cotangent
    float_args = [a.is_float_array for a in gctx.q.args]
    fin, any_sub = [], False
    for fa, v in zip(float_args, gin):
        if fa:
            f64, sub = _flush_subnormals(v, gctx.dtype)
            any_sub |= sub
            fin.append(cast(f64, gctx.dtype))
        else:
            fin.append(v)
    if not any_sub:
        return verdicts
    ref = [v.astype(np.float64) if fa else v for fa, v in zip(float_args, fin)]
    try:
        exact, conds = exact_vjp(gctx.q, gctx.dtype, ref, cot)
    except Exception:  # noqa: BLE001 - flushed inputs outside the quantity's domain
        return verdicts
    u = FORMATS[gctx.dtype].unit_roundoff
    alt = GradResult(res.quantity, res.backend, res.variant, res.dtype, {}, dict(res.skipped))
    for name, c in res.args.items():
        errs = element_errors(c.result, exact[name], gctx.dtype, "", fin)
        cond = conds.get(name)
        cae = condition_aware_error(errs, cond, u) if cond is not None else None
        alt.args[name] = dc_replace(c, inputs=fin, exact=exact[name], errors=errs, condition=cond, cae=cae)
    v2 = _judge_args(gctx, alt, judging.grad_scale(gctx.q, fin, cot, gctx.dtype, gctx.flushing), unit_mask)
    out = {}
    fl = judging.grades.CODE[judging.FLUSHED]
    for name, a in verdicts.items():
        b = v2[name]
        take = a.failing & ~b.failing
        codes = np.where(take, np.where(b.codes <= fl, fl, b.codes), a.codes)
        out[name] = dc_replace(a, score=np.where(take, b.score, a.score), nonfinite=np.where(take, b.nonfinite, a.nonfinite),
                               flushed_bad=np.where(take, b.flushed_bad, a.flushed_bad),
                               boundary=np.where(take, b.boundary, a.boundary),
                               abs_err=np.where(take, b.abs_err, a.abs_err), codes=codes.astype(np.int8),
                               failing=a.failing & ~take)
    return out


def _any_failure(gctx, verdicts):
    return any(bool(np.any(v.failing)) for v in verdicts.values())


def _judge_args(gctx, res, S_all, unit_mask):
    """Grade every argument's gradient: :func:`judging.grade_elements` with N = the gradient's
    sensitivity sum_j |dg/dx_j| |x_j| (exact second derivatives, :mod:`.condition`; 0 where not
    computed) and S = the closed-form VJP's terms (:data:`judging.GRAD_SCALES`); n = the row
    length, or for a scalar argument the number of entries its gradient sums over. Then the
    profile: ``grad_pass``, the boundary convention, the exceptions, and the tolerated counts of
    non-finite and flushed components."""
    th = gctx.thresholds
    prof = gctx.profile
    q = gctx.q
    nf_code = judging.grades.CODE[judging.NONFINITE]
    out = {}
    for name, c in res.args.items():
        arg = q.args[q.arg_names.index(name)]
        scalar = arg.is_scalar
        hi = np.asarray(c.exact.hi, dtype=np.float64)
        y = np.asarray(c.result, dtype=np.float64).reshape(hi.shape)
        if scalar:
            first = next(np.asarray(v) for v, a in zip(c.inputs, q.args) if a.is_float_array)
            n = max(1, int(first.size))   # its gradient sums every entry's partial
            unj = np.array(bool(unit_mask.any()))
        else:
            n = judging.reduction_length(q, c.inputs)
            unj = output_mask_to_arg(q, unit_mask, hi.shape)
        N = c.condition.sensitivity if c.condition is not None else np.zeros(hi.shape)
        S = np.asarray(S_all.get(name, np.zeros(hi.shape)), dtype=np.float64)
        g = judging.grade_elements(y, c.exact, gctx.dtype, n=n, N=np.broadcast_to(N, hi.shape),
                                   S=np.broadcast_to(S, hi.shape), ftz=gctx.flush_flags)
        with np.errstate(all="ignore"):
            boundary = np.isinf(hi) & np.isfinite(y) & ~unj
            accepted = th.grad_accepted(g, scalar)
            accepted = np.zeros(hi.shape, bool) if accepted is None else accepted
            if th.grad_boundary == "accept":
                accepted = accepted | boundary
            fail = JP.failing_mask(g, prof, accepted) & ~unj
            judged = JP.judged_mask(g, prof) & ~unj
            nonfinite = fail & (g.codes == nf_code)
            flushed = (y == 0) & (g.expected != 0) & np.isfinite(g.expected) & judged
            flushed_bad = flushed & fail & ~nonfinite
            allowed = np.maximum(g.allow_conditioned, g.allow_envelope)
            score = np.where(np.isfinite(g.abs), g.abs / allowed, np.nan)
            score = np.where(nonfinite, np.nan, score)
            # unjudged, accepted and passing components score 0 only where their error is not finite
            score = np.where(~judged | (accepted & ~fail) | flushed_bad, 0.0, score)
            score = np.where(np.isnan(score) & ~nonfinite, 0.0, score)
        out[name] = ArgVerdict(c, S, allowed, np.asarray(score, dtype=np.float64), np.asarray(nonfinite, bool),
                               np.asarray(flushed, bool), np.asarray(flushed_bad, bool), np.asarray(boundary, bool),
                               np.asarray(~judged, bool), n, scalar, np.where(judged, g.abs, 0.0), g,
                               g.codes.copy(), np.asarray(fail, bool), np.asarray(accepted, bool))
    return out


def tolerated_why(th, v, i):
    """Why a component below the passing grade passes: a convention or the profile's exceptions."""
    if v.boundary[i] and th.grad_boundary == "accept":
        return "accepted: a finite value at a one-sided infinite derivative (grad_boundary = accept)"
    if v.accepted[i]:
        return "accepted by the profile's " + ", ".join(f"{k} = {x!r}" for k, x in th.exceptions(grad=True).items())
    if v.flushed[i]:
        return f"tolerated: grad_flushed = {th.grad_flushed}"
    if v.codes[i] == judging.grades.CODE[judging.NONFINITE]:
        return (f"tolerated: grad_nonfinite = {th.grad_nonfinite}" if th.grad_nonfinite else
                f"tolerated: an overflow within a factor {th.overflow_margin:g} of the dtype's max (overflow_margin)")
    return "tolerated by the profile"


def _idx(a, mask):
    w = np.argwhere(mask)
    return tuple(int(i) for i in w[0]) if w.size else ()


def _worst_of(v, mask):
    """Index of the worst component of ``mask`` in one argument (largest score, non-finite first)."""
    with np.errstate(all="ignore"):
        s = np.where(mask, np.where(np.isfinite(v.score), v.score, 1e300), -1.0)
    return tuple(int(k) for k in np.unravel_index(int(np.argmax(s)), s.shape)) if s.ndim else ()


def _explain(gctx, j):
    """Set failed / kind / message / worst from the argument verdicts: the count limits of the
    profile, then the worst failing component with its grade and both allowances."""
    th = gctx.thresholds
    prof = gctx.profile
    reasons = []
    nf = j.count("nonfinite")
    if nf > th.grad_nonfinite:
        for name, v in j.args.items():
            if v.nonfinite.any():
                i = _idx(v.nonfinite, v.nonfinite)
                c = v.comparison
                reasons.append(f"{nf} non-finite gradient component(s) (limit {th.grad_nonfinite}): d/d{name} returned "
                               f"{short_number(c.result[i])} where the exact gradient is {short_number(c.exact.hi[i])} "
                               f"[{v.graded.nonfinite[i] or c.errors.nonfinite[i]}] at index {i} -> nonfinite")
                j.worst = j.worst or (name, i)
                break
    fl = j.count("flushed_bad")
    if fl > th.grad_flushed:
        for name, v in j.args.items():
            if v.flushed_bad.any():
                i = _worst_of(v, v.flushed_bad)
                c = v.comparison
                reasons.append(f"{fl} gradient component(s) flushed to 0 (limit {th.grad_flushed}): d/d{name} returned 0 "
                               f"where the exact gradient is {short_number(c.exact.hi[i])} (rounds to "
                               f"{short_number(c.errors.expected[i])} in {gctx.dtype}) at index {i}: {v.graded.describe(i)}")
                j.worst = j.worst or (name, i)
                break
    worst = None
    for name, v in j.args.items():
        err = v.errors
        if err.any():
            i = _worst_of(v, err)
            s = float(v.score[i]) if np.isfinite(v.score[i]) else np.inf
            if worst is None or s > worst[0]:
                worst = (s, name, i, v)
    if worst is not None:
        _, name, i, v = worst
        c = v.comparison
        kappa = c.condition.kappa[i] if c.condition is not None else np.nan
        cond = f"kappa {kappa:.3g}" if np.isfinite(kappa) else "gradient condition not computed"
        reasons.append(f"d/d{name} error at index {i}: returned {short_number(c.result[i])}, exact {short_number(c.exact.hi[i])} "
                       f"({cond}{', n = %d summed' % v.n if v.scalar else ''}): {v.graded.describe(i)}")
        j.worst = j.worst or (name, i)
    if reasons:
        j.failed = True
        j.kind = "numerical"
        j.message = f"FAIL under {prof.name} ({prof.passing} and better pass): " + "; ".join(reasons)

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
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .. import judging
from .. import quantities as Q
from ..dtypes import FORMATS, cast, fmt
from ..harness.calls import (
    GateUsageError,
    ReferenceFailure,
    array_literal,
    array_summary,
    call_with_timeout,
    case_key,
    describe_exception,
    exact_values,
    jsonable,
    nested_literal,
    py_value,
    reduce_to_unit,
    short_number,
    ulp_text,
)
from ..judging import profiles as JP
from ..judging.core import infinite_input_mask
from . import profiles as P

AUTODIFF = {"torch": "torch.autograd.grad", "jax": "jax.vjp"}
GRAD_SEARCH_INPUTS = 12        # generated (search) inputs per dtype differentiated after the fixed cases
GRAD_MAX_ELEMENTS = 5000       # fixed cases larger than this are not differentiated (exact VJP cost)
MAX_CONDITION_UNIT = 64        # gradient condition (second derivatives) for units up to this size


def check_usage(framework, quantity):
    """GateUsageError (exit 2) when --grad cannot apply: no autodiff, or nothing to differentiate."""

    if framework not in AUTODIFF:
        raise GateUsageError(f"--grad needs autodiff: {framework} has none (gradients are taken with "
                             "torch.autograd or jax.vjp; use --framework torch|jax, or drop --grad)")
    q = Q.get(quantity)
    if not any(a.is_float_array or a.is_scalar for a in q.args):
        raise GateUsageError(f"--grad: {q.signature()} has no float argument to differentiate")


def load_backend(framework):
    from ..backends import load

    return load(framework)


def user_op(fn, call="impl"):
    """The user's function as a backend Op (a plain closure: ``__wrapped__`` of a jax.custom_vjp /
    jax.jit object would otherwise be unwrapped by the JAX adapter, bypassing the user's rule)."""
    from ..backends import Op

    def user(*args):
        return fn(*args)
    return Op("user", user, False, call)


# ====================================================================== exact VJP (memoised)

_VJP_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()
_VJP_CACHE_MAX = 2000


def _key(qname, dtype, inputs, cot):

    return case_key(qname, dtype, list(inputs) + [np.asarray(cot, dtype=np.float64)])


def exact_vjp(q, dtype, ref, cot, max_unit=MAX_CONDITION_UNIT):
    """(exact {arg: Exact}, condition {arg: Condition}) for the rounded inputs and cotangent."""
    from ..judging.condition import gradient_condition
    from ..reference import derivatives as D

    k = _key(q.name, dtype, ref, cot)
    hit = _VJP_CACHE.get(k)
    if hit is not None:
        _VJP_CACHE.move_to_end(k)
        return hit
    exact = D.vjp(q.name, *ref, cotangent=cot)
    try:
        cond = gradient_condition(q.name, *ref, cotangent=cot, exact=exact, max_unit=max_unit)
    except Exception:  # noqa: BLE001 - the condition is an aid; its absence falls back to the floor
        cond = {}
    _VJP_CACHE[k] = (exact, cond)
    if len(_VJP_CACHE) > _VJP_CACHE_MAX:
        _VJP_CACHE.popitem(last=False)
    return exact, cond


# ====================================================================== one gradient evaluation


@dataclass
class GradOutcome:
    kind: str                      # ok | not_differentiable | timeout | wrong_shape
    result: object = None          # GradResult when ok
    message: str = ""
    seconds: float = 0.0
    undifferentiated: dict = field(default_factory=dict)   # scalar arg -> why it was not differentiated

    @property
    def ok(self):
        return self.kind == "ok"


def evaluate(mod, op, q, dtype, inputs, *, device="cpu", timeout=20.0, cotangent=None):
    """The user's gradient on ``inputs`` (numpy in the dtype), with its exact VJP and condition.

    Raises Q.InputError (inputs outside the gradient's domain) or ReferenceFailure.
    """
    from ..backends.grad import GradUnsupported, vjp_function
    from ..judging.grad_compare import GradResult, judge_gradient, prepare_grad_inputs

    gin, ref, cot = prepare_grad_inputs(q, inputs, dtype, cotangent)
    try:
        exact, conds = exact_vjp(q, dtype, ref, cot)
    except Exception as e:  # noqa: BLE001 - a reference limitation must not fail the user's build
        raise ReferenceFailure(describe_exception(e)) from e
    run = vjp_function(mod, op, q, device)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        out, err = call_with_timeout(run, (gin, cot), timeout)
    dt = time.perf_counter() - t0
    how = AUTODIFF[mod.NAME]
    if err == "timeout":
        return GradOutcome("timeout", message=f"its gradient ({how}) did not return within the per-call timeout "
                           f"of {timeout:g} s (hang); --timeout sets it", seconds=dt)
    if err is not None:
        msg = str(err).strip() if isinstance(err, GradUnsupported) else describe_exception(err)
        msg = msg.splitlines()[0] if msg else type(err).__name__
        return GradOutcome("not_differentiable", message=f"not differentiable with {how}: {msg}", seconds=dt)
    if dt > timeout:
        return GradOutcome("timeout", message=f"its gradient returned only after {dt:.1f} s, past the per-call "
                           f"timeout of {timeout:g} s", seconds=dt)
    res = GradResult(q.name, mod.NAME, op.variant, dtype, {}, dict(out.skipped))
    undiff = dict(out.skipped)
    scalar_names = {a.name for a in q.args if a.is_scalar}
    for name, g in out.grads.items():
        if name in scalar_names and any(n.startswith(f"{name}: not connected") for n in out.notes):
            undiff[name] = "not connected in the autograd graph (used as a constant)"
            continue
        ex = exact[name]
        raw = np.asarray(g)
        if raw.shape != ex.shape and raw.size != ex.size:
            return GradOutcome("wrong_shape", message=f"its gradient with respect to {name!r} has shape "
                               f"{raw.shape}, expected {ex.shape}", seconds=dt)
        notes = [n for n in out.notes if not n.startswith(tuple(f"{s}: not connected" for s in scalar_names))]
        res.args[name] = judge_gradient(q, mod.NAME, op, dtype, device, name, raw, ex, conds.get(name), gin, cot,
                                        out.how, notes)
    return GradOutcome("ok", res, seconds=dt, undifferentiated=undiff)


# ====================================================================== judging one case


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


def _to_arg_shape(q, out_mask, arg_shape):
    """An output-shaped (per unit) mask -> the argument's shape (each unit's entries)."""
    m = np.asarray(out_mask, dtype=bool)
    if q.structure == Q.ELEMENTWISE:
        return np.broadcast_to(m, arg_shape).copy()
    if q.structure == Q.ROW:
        m = np.any(m, axis=-1, keepdims=True) if m.ndim else m
        return np.broadcast_to(m, arg_shape).copy()
    if q.structure == Q.ROW_REDUCE:
        return np.broadcast_to(m[..., None], arg_shape).copy()
    return np.broadcast_to(m[..., None, None], arg_shape).copy()


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

    from ..judging.condition import condition_aware_error
    from ..judging.grad_compare import GradResult
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
            unj = _to_arg_shape(q, unit_mask, hi.shape)
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


def _tolerated(th, v, i):
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


# ====================================================================== one dtype


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
                    line += f" ({_tolerated(gctx.thresholds, v, i)})"
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


# ====================================================================== the reproducer


def reproducer(gctx: GradContext, j: GradJudgement, impl_import: str, fn_name: str) -> str:
    """Copy-paste Python that recomputes the user's gradient with the framework's autodiff."""

    ad = gctx.adapter
    q = gctx.q
    d = gctx.dtype
    fw = ad.name
    comp = next(iter(j.args.values())).comparison if j.args else None
    inputs = comp.inputs if comp is not None else j.inputs
    undiff = j.outcome.undifferentiated if j.outcome is not None else {}
    how = AUTODIFF.get(fw, "autodiff")
    lines = [f"# infoaudit gate --grad reproducer: {q.signature()}, {d}, {fw}"
             + (f" on {ad.device}" if ad.device != "cpu" else "") + f"; the gradient by {how}"]
    lines += [ad.imports, "inf, nan = float('inf'), float('nan')"]
    if fw == "jax" and d == "float64":
        lines.append("jax.config.update('jax_enable_x64', True)")
    lines.append(impl_import)
    names, diff = [], []
    for arg, v in zip(q.args, inputs):
        names.append(arg.name)
        if isinstance(v, np.ndarray):
            if arg.kind == Q.LABEL:
                lines.append(f"{arg.name} = {array_literal(ad, v, d, True)}")
                continue
            if v.size > 20000:
                lines.append(f"{arg.name} = ...  # {v.shape} {d} array: too large to print; see the JSON report")
            else:
                lit = array_literal(ad, v, d)
                lines.append(f"{arg.name} = {lit}" + (".requires_grad_()" if fw == "torch" else ""))
            diff.append(arg.name)
        elif arg.is_scalar and arg.name not in undiff:
            if fw == "torch":
                lines.append(f"{arg.name} = torch.tensor({py_value(v)}, dtype=torch.{d}"
                             + (f", device={ad.device!r}" if ad.device != "cpu" else "") + ", requires_grad=True)")
            else:
                lines.append(f"{arg.name} = jnp.array({py_value(v)}, dtype=jnp.{d})")
            diff.append(arg.name)
        else:
            lines.append(f"{arg.name} = {py_value(v)}")
    call = f"{fn_name}({', '.join(names)})"
    grads = ", ".join(f"grad_{n}" for n in diff) + ("," if len(diff) == 1 else "")
    cot = comp.cotangent if comp is not None else None
    if cot is not None:
        cot_lit = _cotangent_literal(ad, q, cot, d)
    if fw == "torch":
        lines.append(f"out = {call}")
        if cot is not None:
            lines.append(f"cotangent = {cot_lit}  # d(loss)/d(out): the gate's cotangent")
            lines.append(f"{grads} = torch.autograd.grad(out, [{', '.join(diff)}], grad_outputs=cotangent)")
    else:
        lines.append(f"out, pullback = jax.vjp(lambda {', '.join(diff)}: {call}, {', '.join(diff)})")
        if cot is not None:
            lines.append(f"cotangent = {cot_lit}  # d(loss)/d(out): the gate's cotangent")
            lines.append(f"{grads} = pullback(cotangent)")
    for name, v in j.args.items():
        c = v.comparison
        y, e = c.result, c.errors.expected
        lines.append(f"# d/d{name} returned: {nested_literal(y) if y.size <= 64 else array_summary(y)}")
        lines.append(f"# d/d{name} exact:    {nested_literal(e) if e.size <= 64 else array_summary(e)}   (exact gradient correctly "
                     f"rounded to {d})")
    if j.worst is not None and j.worst[0] in j.args:
        name, i = j.worst
        c = j.args[name].comparison
        cae = f", condition-aware error {c.cae[i]:.3g}" if c.cae is not None and np.isfinite(c.cae[i]) else ""
        lines.append(f"# worst: d/d{name} at {i}: returned {py_value(c.result[i])}, exact {py_value(c.exact.hi[i])}"
                     f" (+ {float(c.exact.lo[i]):.3g}), {ulp_text(c.errors.ulp[i])}{cae}")
    lines.append(f"# problem: {j.message}")
    return "\n".join(lines)


def _cotangent_literal(ad, q, cot, d):
    """The cotangent as code: the default pattern of softmax / log_softmax rows as a formula
    (reference.derivatives.default_cotangent), anything else as a literal."""
    from ..reference.derivatives import default_cotangent

    cot = np.asarray(cot, dtype=np.float64)
    if cot.ndim == 0:
        return py_value(cot)
    if q.structure == Q.ROW and cot.ndim == 2 and cot.size > 8 and np.array_equal(cot, default_cotangent(q, cot.shape)):
        B, n = cot.shape
        rows = f"[[((3 * i + 5 * b) % 9 - 4) / 4 for i in range({n})] for b in range({B})]"
        return ad.literal(rows, d, cot.shape)
    return array_literal(ad, cot, d)


def failure_dict(gctx, j, impl_import, fn_name):

    out = {"kind": j.kind, "message": j.message, "label": j.label,
           "reproducer": reproducer(gctx, j, impl_import, fn_name)}
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


# ====================================================================== the gate's gradient cell


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


__all__ = ["check_usage", "load_backend", "user_op", "evaluate", "exact_vjp", "judge", "select_cases", "gate_grad_dtype", "reproducer",
           "grad_cell",
           "GradContext", "GradOutcome", "GradJudgement", "ArgVerdict", "AUTODIFF"]

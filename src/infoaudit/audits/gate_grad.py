"""``infoaudit gate --grad``: audit the *gradients* of a user's implementation.

After the forward audit of each dtype, the gate differentiates the user's function with its own
framework's autodiff (``torch.autograd.grad`` / ``jax.vjp``, through
:func:`infoaudit.backends.grad.vjp_function`) on the gate's inputs of that dtype -- the fixed cases
and a sample of the search's generated inputs -- and judges each gradient component against the
exact vector-Jacobian product (:func:`infoaudit.reference.derivatives.vjp`) with the profile's
``grad_*`` thresholds (:class:`infoaudit.audits.profiles.Thresholds.grad_allowed`):

* a non-finite gradient where the exact one is finite (NaN, +-inf), the wrong infinity, or NaN
  where it is infinite fails (``grad_nonfinite``); a finite value where the exact gradient is a
  one-sided +-inf at a domain boundary (p = 0 in log p) is accepted unless ``grad_boundary``
  says otherwise;
* each component's error must be within ``(grad_cae + grad_cae_per_log2n log2 n) u (N + |g*|)``
  (the condition-aware error, N the gradient's componentwise sensitivity from second derivatives;
  :mod:`.condition`) or within ``grad_floor u T`` (T the magnitudes of the terms of the closed-form
  VJP, :data:`.profiles.GRAD_SCALES`); scalar arguments (T, eps, beta) use ``grad_cae_scalar``;
* a component returned as 0 where the exact gradient rounds to a nonzero value ("flushed") fails
  beyond ``grad_flushed`` -- except below the dtype's smallest normal on a platform that flushes
  subnormals (probed; or ``--flush-to-zero``), as for forward values.

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

from .. import quantities as Q
from ..dtypes import FORMATS, cast, fmt
from . import profiles as P

AUTODIFF = {"torch": "torch.autograd.grad", "jax": "jax.vjp"}
GRAD_SEARCH_INPUTS = 12        # generated (search) inputs per dtype differentiated after the fixed cases
GRAD_MAX_ELEMENTS = 5000       # fixed cases larger than this are not differentiated (exact VJP cost)
MAX_CONDITION_UNIT = 64        # gradient condition (second derivatives) for units up to this size


def check_usage(framework, quantity):
    """GateUsageError (exit 2) when --grad cannot apply: no autodiff, or nothing to differentiate."""
    from .gate import GateUsageError

    if framework not in AUTODIFF:
        raise GateUsageError(f"--grad needs autodiff: {framework} has none (gradients are taken with "
                             "torch.autograd or jax.vjp; use --framework torch|jax, or drop --grad)")
    q = Q.get(quantity)
    if not any(a.is_float_array or a.is_scalar for a in q.args):
        raise GateUsageError(f"--grad: {q.signature()} has no float argument to differentiate")


def _backend(framework):
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
    from .gate import _key as fkey

    return fkey(qname, dtype, list(inputs) + [np.asarray(cot, dtype=np.float64)])


def exact_vjp(q, dtype, ref, cot, max_unit=MAX_CONDITION_UNIT):
    """(exact {arg: Exact}, condition {arg: Condition}) for the rounded inputs and cotangent."""
    from ..reference import derivatives as D
    from .condition import gradient_condition

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

    Raises Q.InputError (inputs outside the gradient's domain) or _ReferenceError.
    """
    from ..backends.grad import GradUnsupported, vjp_function
    from .gate import _fmt_exc, _ReferenceError, call_with_timeout
    from .grad_compare import GradResult, judge_gradient, prepare_grad_inputs

    gin, ref, cot = prepare_grad_inputs(q, inputs, dtype, cotangent)
    try:
        exact, conds = exact_vjp(q, dtype, ref, cot)
    except Exception as e:  # noqa: BLE001 - a reference limitation must not fail the user's build
        raise _ReferenceError(_fmt_exc(e)) from e
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
        msg = str(err).strip() if isinstance(err, GradUnsupported) else _fmt_exc(err)
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
    """One argument's gradient on one case, judged."""

    comparison: object             # GradComparison
    T: np.ndarray                  # term scale (GRAD_SCALES)
    allowed: np.ndarray
    score: np.ndarray              # error / allowed (<= 1 passes); NaN where non-finite; 0 where unjudged
    nonfinite: np.ndarray          # bool: judged non-finite mismatches
    flushed: np.ndarray            # bool: 0 returned where the exact gradient rounds nonzero
    flushed_bad: np.ndarray        # bool: flushed and not excused
    boundary: np.ndarray           # bool: finite where the exact gradient is a one-sided +-inf
    unjudged: np.ndarray           # bool
    n: int = 1
    scalar: bool = False
    abs_err: np.ndarray | None = None   # |g - g*| as judged (0 where correctly rounded or unjudged)

    @property
    def cae(self):
        return self.comparison.cae


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
        m |= P.unjudged_mask(gctx.q.name, gin)
    return m


def _forward_undefined(gctx, gin):
    from .gate import exact_values

    try:
        ex = exact_values(gctx.q.name, gctx.dtype, gin)
    except Exception:  # noqa: BLE001
        return None
    return np.isnan(np.asarray(ex.hi, dtype=np.float64))


def judge(gctx, inputs, outcome: GradOutcome, label="") -> GradJudgement:
    """Judge the user's gradient on one case with the profile's grad_* thresholds."""
    if not outcome.ok:
        return GradJudgement(True, outcome.kind, outcome.message, inputs, label, outcome)
    res = outcome.result
    j = GradJudgement(False, "ok", "", inputs, label, outcome)
    if not res.args:
        return j
    first = next(iter(res.args.values()))
    gin, cot = first.inputs, first.cotangent
    T_all = P.grad_scale(gctx.q.name, gin, cot, gctx.dtype, gctx.flushing)
    unit_mask = _unit_masks(gctx, gin)
    verdicts = _judge_args(gctx, res, T_all, unit_mask)
    if not gctx.thresholds.require_nan and _any_failure(gctx, verdicts):
        und = _forward_undefined(gctx, gin)  # lazily: only where something would fail
        if und is not None and und.any():
            unit_mask = unit_mask | und
            verdicts = _judge_args(gctx, res, T_all, unit_mask)
    if gctx.flushes_inputs and _any_failure(gctx, verdicts):
        verdicts = _with_flushed_inputs(gctx, res, verdicts, unit_mask)
    j.args = verdicts
    _explain(gctx, j)
    return j


def _with_flushed_inputs(gctx, res, verdicts, unit_mask):
    """On a platform that reads subnormal inputs as zero (XLA on CPU, probed), a component also
    passes when it matches the exact gradient at the flushed inputs (as forward values do)."""
    from dataclasses import replace as dc_replace

    from . import ftz as FTZ
    from .condition import condition_aware_error
    from .grad_compare import GradResult
    from .metrics import element_errors

    first = next(iter(res.args.values()))
    gin, cot = first.inputs, first.cotangent
    float_args = [a.is_float_array for a in gctx.q.args]
    if not any(fa and FTZ.has_subnormal(v, gctx.dtype) for fa, v in zip(float_args, gin)):
        return verdicts
    fin = [cast(FTZ.flush(v, gctx.dtype), gctx.dtype) if fa else v for fa, v in zip(float_args, gin)]
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
    v2 = _judge_args(gctx, alt, P.grad_scale(gctx.q.name, fin, cot, gctx.dtype, gctx.flushing), unit_mask)
    out = {}
    for name, a in verdicts.items():
        b = v2[name]
        with np.errstate(all="ignore"):
            bad_a = a.nonfinite | a.flushed_bad | (np.nan_to_num(a.score, nan=np.inf) > 1)
            bad_b = b.nonfinite | b.flushed_bad | (np.nan_to_num(b.score, nan=np.inf) > 1)
            take = bad_a & ~bad_b
        out[name] = dc_replace(a, score=np.where(take, b.score, a.score), nonfinite=np.where(take, b.nonfinite, a.nonfinite),
                               flushed_bad=np.where(take, b.flushed_bad, a.flushed_bad),
                               boundary=np.where(take, b.boundary, a.boundary),
                               abs_err=np.where(take, b.abs_err, a.abs_err))
    return out


def _any_failure(gctx, verdicts):
    th = gctx.thresholds
    nf = sum(int(v.nonfinite.sum()) for v in verdicts.values())
    fl = sum(int(v.flushed_bad.sum()) for v in verdicts.values())
    bad = any(bool(np.any(np.nan_to_num(v.score, nan=0.0) > 1.0) & True) for v in verdicts.values())
    return nf > th.grad_nonfinite or fl > th.grad_flushed or bad


def _judge_args(gctx, res, T_all, unit_mask):
    from ..dtypes import ulp_of

    th = gctx.thresholds
    q = gctx.q
    f = fmt(gctx.dtype)
    u = f.unit_roundoff
    out = {}
    for name, c in res.args.items():
        arg = q.args[q.arg_names.index(name)]
        scalar = arg.is_scalar
        y = c.result
        hi = np.asarray(c.exact.hi, dtype=np.float64)
        expected = c.errors.expected
        n = P.reduction_length(q.name, c.inputs) if not scalar else max(1, int(np.prod(unit_mask.shape)))
        if scalar:
            unj = np.array(bool(unit_mask.any()))
        else:
            unj = _to_arg_shape(q, unit_mask, y.shape)
        with np.errstate(all="ignore"):
            if not th.require_nan:
                unj = unj | np.isnan(hi)
            nfc = c.errors.nonfinite
            nonfinite = (nfc != "") & ~unj
            boundary = np.isinf(hi) & np.isfinite(y)
            if th.grad_boundary == "accept":
                nonfinite &= ~boundary
            abs_err = np.asarray(c.errors.abs, dtype=np.float64).copy()
            # the exact value is finite but beyond the dtype's range: a finite y is judged by its error
            beyond = np.isfinite(hi) & ~np.isfinite(expected) & np.isfinite(y) & nonfinite
            nonfinite &= ~beyond
            abs_err = np.where(beyond, np.abs(y - hi), abs_err)
            if th.overflow_margin > 1:  # an infinity of the right sign next to the top of the range
                near = (np.isfinite(hi) & np.isinf(y) & (np.sign(y) == np.sign(hi))
                        & (np.abs(hi) > f.max / th.overflow_margin) & nonfinite)
                nonfinite &= ~near
                abs_err = np.where(near, 0.0, abs_err)
            exact_ok = np.isfinite(y) & (y == expected)   # correctly rounded: no error at all
            abs_err = np.where(exact_ok, 0.0, abs_err)
            T = np.asarray(T_all.get(name, np.zeros(y.shape)), dtype=np.float64)
            N = c.condition.sensitivity if c.condition is not None else None
            ulp = np.where(np.isfinite(hi), ulp_of(hi, f), f.smallest_subnormal)
            allowed = th.grad_allowed(n, u, N, np.where(np.isfinite(hi), np.abs(hi), 0.0), T, ulp, scalar)
            score = np.where(np.isfinite(abs_err), abs_err / allowed, np.nan)
            score = np.where(nonfinite, np.nan, score)
            score = np.where(unj | (exact_ok & ~nonfinite), 0.0, score)
            if th.grad_boundary == "accept":
                score = np.where(boundary & ~unj, 0.0, score)
            flushed = (y == 0) & (expected != 0) & np.isfinite(expected) & ~unj
            sub = np.abs(expected) < f.tiny
            excused = flushed & ((sub & gctx.flushing) | (np.nan_to_num(score, nan=np.inf) <= 1.0))
            score = np.where(flushed & sub & gctx.flushing, 0.0, score)
            flushed_bad = flushed & ~excused
            # flushed components are judged by the flush count, not again by the error rule
            score = np.where(flushed_bad, 0.0, score)
        out[name] = ArgVerdict(c, T, allowed, np.asarray(score, dtype=np.float64), np.asarray(nonfinite, bool),
                               np.asarray(flushed, bool), np.asarray(flushed_bad, bool),
                               np.asarray(boundary & ~unj, bool), np.asarray(unj, bool), n, scalar,
                               np.where(unj, 0.0, abs_err))
    return out


def _idx(a, mask):
    w = np.argwhere(mask)
    return tuple(int(i) for i in w[0]) if w.size else ()


def _num(v):
    from .gate import _num as fnum

    return fnum(v)


def _explain(gctx, j):
    """Set failed / kind / message / worst from the argument verdicts."""
    th = gctx.thresholds
    reasons = []
    nf = j.count("nonfinite")
    if nf > th.grad_nonfinite:
        for name, v in j.args.items():
            if v.nonfinite.any():
                i = _idx(v.nonfinite, v.nonfinite)
                c = v.comparison
                reasons.append(f"{nf} non-finite gradient component(s) (limit {th.grad_nonfinite}): d/d{name} returned "
                               f"{_num(c.result[i])} where the exact gradient is {_num(c.exact.hi[i])} "
                               f"[{c.errors.nonfinite[i]}] at index {i}")
                j.worst = j.worst or (name, i)
                break
    fl = j.count("flushed_bad")
    if fl > th.grad_flushed:
        for name, v in j.args.items():
            if v.flushed_bad.any():
                i = _idx(v.flushed_bad, v.flushed_bad)
                c = v.comparison
                cae = f"; condition-aware error {c.cae[i]:.3g}" if c.cae is not None and np.isfinite(c.cae[i]) else ""
                reasons.append(f"{fl} gradient component(s) flushed to 0 (limit {th.grad_flushed}): d/d{name} returned 0 "
                               f"where the exact gradient is {_num(c.exact.hi[i])} (rounds to "
                               f"{_num(c.errors.expected[i])} in {gctx.dtype}) at index {i}{cae}")
                j.worst = j.worst or (name, i)
                break
    worst = None
    for name, v in j.args.items():
        s = np.where(np.isfinite(v.score), v.score, -1.0)
        if s.size and s.max() > 1.0:
            i = tuple(int(k) for k in np.unravel_index(int(np.argmax(s)), s.shape)) if s.ndim else ()
            if worst is None or s[i] > worst[0]:
                worst = (float(s[i]), name, i, v)
    if worst is not None:
        sc, name, i, v = worst
        c = v.comparison
        L = th.grad_cae_limit(v.n, v.scalar)
        F = th.grad_floor_limit(v.n)
        cae = c.cae[i] if c.cae is not None else np.nan
        kappa = c.condition.kappa[i] if c.condition is not None else np.nan
        cae_txt = (f"condition-aware error {cae:.3g} (kappa {kappa:.3g}), limit {L:.3g}" if np.isfinite(cae)
                   else f"gradient condition not computed; relative error {c.errors.rel[i]:.3g}")
        reasons.append(f"d/d{name} error {sc:.3g}x the allowed at index {i}: returned {_num(c.result[i])}, exact "
                       f"{_num(c.exact.hi[i])} ({cae_txt}; abs {abs(float(c.result[i]) - float(c.exact.hi[i])):.3g} > "
                       f"allowed {v.allowed[i]:.3g} = max({L:.3g} u (N + |g*|), {F:.3g} u T, {th.grad_ulp:g} ULP))")
        j.worst = j.worst or (name, i)
    if reasons:
        j.failed = True
        j.kind = "numerical"
        j.message = "; ".join(reasons)


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


def select_cases(seen, examples, max_search=GRAD_SEARCH_INPUTS, max_elements=GRAD_MAX_ELEMENTS):
    """(cases, notes): the forward audit's fixed cases (all that fit ``max_elements``) and an evenly
    spaced sample of at most ``min(examples, max_search)`` of its generated inputs, deduplicated."""
    from .gate import _key as fkey

    keys, fixed, search, big = set(), [], [], 0
    for label, inputs, is_fixed in seen:
        size = sum(int(np.asarray(v).size) for v in inputs if isinstance(v, np.ndarray))
        k = fkey("", "", list(inputs))
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
    from .gate import _ReferenceError

    stats = {"cases": 0, "components": 0, "max_score": 0.0, "max_cae": None, "nonfinite_total": 0, "flushed": 0,
             "flushed_bad": 0, "boundary": 0, "unjudged": 0, "calls": 0, "call_seconds": 0.0}
    notes, ref_skips, undiff = [], [], {}
    first_fail = None
    for label, inputs in cases:
        try:
            outcome = evaluate(gctx.mod, gctx.op, gctx.q, gctx.dtype, inputs, device=gctx.device,
                               timeout=gctx.timeout)
        except Q.InputError:
            continue
        except _ReferenceError as e:
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
    return stats, first_fail, notes


def _shrink(gctx, j):
    """Reduce a numerical failure to the one row / element holding its worst component."""
    from .gate import reduce_to_unit

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
    from .gate import _lit, _nested, _pyval, _summ, _ulp_txt

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
                lines.append(f"{arg.name} = {_lit(ad, v, d, True)}")
                continue
            if v.size > 20000:
                lines.append(f"{arg.name} = ...  # {v.shape} {d} array: too large to print; see the JSON report")
            else:
                lit = _lit(ad, v, d)
                lines.append(f"{arg.name} = {lit}" + (".requires_grad_()" if fw == "torch" else ""))
            diff.append(arg.name)
        elif arg.is_scalar and arg.name not in undiff:
            if fw == "torch":
                lines.append(f"{arg.name} = torch.tensor({_pyval(v)}, dtype=torch.{d}"
                             + (f", device={ad.device!r}" if ad.device != "cpu" else "") + ", requires_grad=True)")
            else:
                lines.append(f"{arg.name} = jnp.array({_pyval(v)}, dtype=jnp.{d})")
            diff.append(arg.name)
        else:
            lines.append(f"{arg.name} = {_pyval(v)}")
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
        lines.append(f"# d/d{name} returned: {_nested(y) if y.size <= 64 else _summ(y)}")
        lines.append(f"# d/d{name} exact:    {_nested(e) if e.size <= 64 else _summ(e)}   (exact gradient correctly "
                     f"rounded to {d})")
    if j.worst is not None and j.worst[0] in j.args:
        name, i = j.worst
        c = j.args[name].comparison
        cae = f", condition-aware error {c.cae[i]:.3g}" if c.cae is not None and np.isfinite(c.cae[i]) else ""
        lines.append(f"# worst: d/d{name} at {i}: returned {_pyval(c.result[i])}, exact {_pyval(c.exact.hi[i])}"
                     f" (+ {float(c.exact.lo[i]):.3g}), {_ulp_txt(c.errors.ulp[i])}{cae}")
    lines.append(f"# problem: {j.message}")
    return "\n".join(lines)


def _cotangent_literal(ad, q, cot, d):
    """The cotangent as code: the default pattern of softmax / log_softmax rows as a formula
    (reference.derivatives.default_cotangent), anything else as a literal."""
    from ..reference.derivatives import default_cotangent
    from .gate import _lit, _pyval

    cot = np.asarray(cot, dtype=np.float64)
    if cot.ndim == 0:
        return _pyval(cot)
    if q.structure == Q.ROW and cot.ndim == 2 and cot.size > 8 and np.array_equal(cot, default_cotangent(q, cot.shape)):
        B, n = cot.shape
        rows = f"[[((3 * i + 5 * b) % 9 - 4) / 4 for i in range({n})] for b in range({B})]"
        return ad.literal(rows, d, cot.shape)
    return _lit(ad, cot, d)


def failure_dict(gctx, j, impl_import, fn_name):
    from .gate import _jsonable

    out = {"kind": j.kind, "message": j.message, "label": j.label,
           "reproducer": reproducer(gctx, j, impl_import, fn_name)}
    if j.args:
        first = next(iter(j.args.values())).comparison
        out["inputs"] = [_jsonable(v) for v in first.inputs]
        out["cotangent"] = _jsonable(np.asarray(first.cotangent, dtype=np.float64))
        out["gradients"] = {name: {"returned": _jsonable(np.asarray(v.comparison.result)),
                                   "expected": _jsonable(np.asarray(v.comparison.errors.expected)),
                                   "exact_hi": _jsonable(np.asarray(v.comparison.exact.hi, dtype=np.float64))}
                            for name, v in j.args.items()}
        if j.worst is not None:
            out["worst"] = {"arg": j.worst[0], "index": list(j.worst[1])}
    else:
        out["inputs"] = [_jsonable(v) for v in j.inputs]
    return out


# ====================================================================== the gate's gradient cell


def grad_cell(ctx, fn, *, examples, impl_import, fn_name, timeout, baseline_cell=None, skip_reason=None, log=None):
    """The ``grad`` entry of one dtype's result (JSON-able): verdict, statistics against the
    profile's grad_* thresholds, notes and, on failure, the shrunk failure with its reproducer.

    ``ctx``: the forward :class:`~infoaudit.audits.gate.Context` of this dtype (its judged inputs,
    thresholds, adapter, flush-to-zero state); ``baseline_cell``: the baseline's cell for this
    dtype (regression mode: fail only where the gradients got worse than its ``grad`` entry).
    """
    t0 = time.perf_counter()
    th = ctx.thresholds
    cell = {"verdict": "pass", "cases": 0, "components": 0, "max_score": 0.0, "max_cae": None, "nonfinite_total": 0,
            "flushed": 0, "flushed_bad": 0, "boundary": 0, "unjudged": 0, "calls": 0, "call_seconds": 0.0,
            "thresholds": th.grad_as_dict(), "threshold_text": th.grad_describe(), "notes": [], "failure": None,
            "how": "", "seconds": 0.0}
    if skip_reason:
        cell["verdict"] = "skipped"
        cell["notes"].append(skip_reason)
        return cell
    ad = ctx.harness.ad
    mod = _backend(ad.name)
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
    cell.update(stats)
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
            worse.append(f"gradient error {cell['max_score']:.3g}x the allowed; the baseline's worst was {lim:.3g}x")
        if failing is not None and failing.kind not in ("numerical",) and (base.get("failure") or {}).get("kind") != failing.kind:
            worse.append(failing.message)
        if worse:
            cell["verdict"] = "fail"
            msg = "worse than the baseline: " + "; ".join(worse)
            if cell["failure"] is None:
                cell["failure"] = {"kind": "numerical", "message": msg, "label": "", "reproducer": ""}
            else:
                cell["failure"]["message"] = msg + " (" + cell["failure"]["message"] + ")"
        else:
            cell["failure"] = None
    elif failing is not None:
        cell["verdict"] = "fail"
    elif cell["cases"] == 0 and cell["calls"] == 0:
        cell["verdict"] = "fail" if cases else "skipped"
        if cases:
            cell["failure"] = {"kind": "no_cases", "message": "no gradient case could be run", "reproducer": ""}
        else:
            cell["notes"].append("no case to differentiate")
    cell["seconds"] = round(time.perf_counter() - t0, 3)
    return cell


__all__ = ["check_usage", "user_op", "evaluate", "exact_vjp", "judge", "select_cases", "gate_grad_dtype", "reproducer",
           "grad_cell",
           "GradContext", "GradOutcome", "GradJudgement", "ArgVerdict", "AUTODIFF"]

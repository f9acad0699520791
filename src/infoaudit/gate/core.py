"""The numerical-correctness gate: audit a user's own implementation of one quantity.

``run_gate(fn, quantity, framework, dtypes=..., profile=...)`` drives ``fn`` with the fixed corpus
(the shared known-hard cases plus the gate's own probes) and then a seeded hypothesis search, in
each dtype, grades every result with the one judge (:func:`infoaudit.judging.judge`: per element
``correctly_rounded`` ... ``unstable``, ``invariant``, ``nonfinite``) under the profile's passing
grade for that quantity x dtype (:mod:`.profiles`: ``default`` passes ``envelope`` and better,
``strict`` ``conditioned`` and better), and returns a :class:`GateReport`: per dtype a verdict,
the grade reached with the deciding element's ULPs and both allowances, and for a failure a
shrunk copy-paste reproducer (inputs, the exact value, what the implementation returned).

The implementation is called as ``fn(*args)`` with the quantity's arguments in the DESIGN table
order, as arrays of the framework in the audited dtype (labels int64 -- int32 under JAX without
x64 --, scalars Python floats), on fresh copies (:mod:`.gate_harness`). Anything other than a
correct array is a failure with what happened: an exception, a hang past the per-call timeout, a
non-array, the wrong shape or dtype, a mutated input. The gate itself never crashes on a hostile
implementation and never passes one.

With ``grad=True`` (``infoaudit gate --grad``) each dtype's forward audit is followed by an audit
of the implementation's gradients through its framework's autodiff on the same inputs
(:mod:`.gate_grad`); its verdict is ``DtypeResult.grad``.
"""
from __future__ import annotations

import inspect
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import judging
from .. import quantities as Q
from ..dtypes import cast, dtype_name, fmt
from ..harness import ftz as FTZ
from ..harness.calls import (
    GateUsageError,
    Harness,
    Outcome,
    ReferenceFailure,
    array_literal,
    array_summary,
    call_with_timeout,
    case_key,
    default_dtypes,
    describe_exception,
    exact_values,
    framework_adapter,
    infer_framework,
    install_watchdog,
    jsonable,
    nested_literal,
    py_value,
    reduce_to_unit,
    short_number,
    ulp_text,
)
from ..judging import profiles as JP
from ..judging.metrics import element_errors
from ..results.compare_cells import grew
from . import profiles as P

# re-exported: the gate's public API before the harness moved to .gate_harness
__all__ = ["run_gate", "GateReport", "DtypeResult", "Context", "Judgement", "FlushFlags", "judge", "grade_case",
           "probes", "fixed_cases", "reproducer", "gate_dtype", "describe_impl", "GateUsageError", "Harness",
           "Outcome", "call_with_timeout", "default_dtypes", "exact_values", "framework_adapter", "infer_framework",
           "install_watchdog", "reduce_to_unit", "search_strategy"]


# ====================================================================== judging one case


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
    """FlashAttention-style rule: max error <= k x the framework op's max error + 1, both in
    units of the element's larger allowance max(conditioned, envelope)."""
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
        mi = float(np.nanmax(e_impl)) if np.isfinite(e_impl).any() else 0.0
        if fw.ok:
            ferr = element_errors(fw.value, ex, ctx.dtype, ctx.q.name, inputs)
            e_fw = np.where(np.isfinite(ferr.abs) & j.judged, ferr.abs / unit, np.nan)
            mf = float(np.nanmax(e_fw)) if np.isfinite(e_fw).any() else 0.0
            fw_bad = ferr.nonfinite != ""
        else:
            mf = 0.0
            fw_bad = np.zeros(j.y.shape, bool)
    j.fw_score = mf
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
    if mi > limit:
        w = _index(np.unravel_index(np.nanargmax(e_impl), e_impl.shape))
        reasons.append(f"max error {mi:.3g}x the element's larger allowance > {t.relative_k:g} x the framework "
                       f"op's {mf:.3g}x + 1 at index {w}: {g.describe(w)}")
        j.worst = j.worst or w
    if not fw.ok:
        reasons.append(f"(the framework op itself failed: {fw.message})")
    if j.worst is None:
        j.worst = g.worst_index(j.judged)
    if extra_nf > t.nonfinite or mi > limit:
        j.failed = True
        j.kind = "numerical"
        j.message = "; ".join(reasons)
    return j


# ====================================================================== inputs: probes, corpus, search


def _A(v, dtype):
    """Nested lists -> array in dtype (one rounding; beyond-range values clipped to +-max)."""
    a = np.array(v, dtype=np.float64)
    f = fmt(dtype)
    with np.errstate(invalid="ignore"):
        a = np.where(np.isfinite(a), np.clip(a, -f.max, f.max), a)
    return cast(a, dtype)


def probes(quantity, dtype) -> list:
    """The gate's own fixed cases: inputs on which each textbook instability shows, per dtype.

    ``[(label, args)]``. They complement :func:`infoaudit.corpus.cases` and make the verdict on
    the classic mistakes independent of the search's luck.
    """
    q = Q.get(quantity)
    d = dtype_name(dtype)
    f = fmt(d)
    X = math.log(f.max)                       # exp overflows above X
    U = -math.log(f.smallest_subnormal)       # exp underflows to 0 below -U
    sub = f.smallest_subnormal
    A = lambda v: _A(v, d)  # noqa: E731
    kinds = tuple(a.kind for a in q.args)
    I64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    out = []
    logit_rows = [
        ("probe: logits beyond the exp overflow threshold", [[2 * X, X + 1, 0.5 * X, 0.0]]),
        ("probe: logits far below (exp underflows)", [[-2 * X - 8, -2 * X - 9, -2 * X - 11, -2 * X - 12]]),
        ("probe: spread into the subnormal range", [[0.0, -0.5 * U, -0.95 * U, -1.5 * U]]),
        ("probe: confident row", [[0.5 * X, 0.0, -1.0, -0.5 * X]]),
        ("probe: -inf masks", [[0.0, -math.inf, 1.0, -math.inf]]),
        ("probe: all -inf row", [[-math.inf, -math.inf, -math.inf, -math.inf]]),
    ]
    long_row = d in ("float16", "bfloat16")
    if kinds == (Q.LOGITS,):
        out = [(lab, (A(z),)) for lab, z in logit_rows]
        if long_row:
            out.append(("probe: 3000 equal logits (a sequential low-precision sum stalls)", (A(np.zeros((1, 3000))),)))
    elif kinds in ((Q.LOGITS, Q.LABEL), (Q.LOGITS, Q.LABEL, Q.EPS)):
        extra = (0.1,) if len(kinds) == 3 else ()
        for lab, z in logit_rows[:5]:
            za = A(z)
            for y in (0, 3):
                out.append((f"{lab}, y = {y}", (za, I64([y])) + extra))
        if len(kinds) == 3:
            out.append(("probe: K = 3 moderate logits, eps = 0.2", (A([[1.5, -0.5, 0.25]]), I64([0]), 0.2)))
        if long_row:
            out.append(("probe: 3000 equal logits", (A(np.zeros((1, 3000))), I64([5])) + extra))
    elif kinds == (Q.LOGPROBS, Q.LABEL):
        lp = A([[-1e-4, -0.5 * X, -U, -2.0]])
        out = [(f"probe: log-probabilities, y = {y}", (lp, I64([y]))) for y in (0, 1, 2)]
    elif kinds in ((Q.LOGITS, Q.LOGITS, Q.TEMPERATURE), (Q.LOGITS, Q.LOGITS, Q.BETA)):
        s = 2.0 if q.name == "distillation_loss" else 1.0
        z1 = [[1.0, -0.5, 2.0, 0.25]]
        z2 = [[0.5, 1.5, -1.0, 0.0]]
        out = [("probe: moderate logits", (A(z1), A(z2), s)),
               ("probe: moderate logits, T = 4" if s == 2.0 else "probe: moderate logits, beta = 0.5",
                (A(z2), A(z1), 4.0 if s == 2.0 else 0.5)),
               ("probe: logits beyond the exp overflow threshold", (A([[2 * X, 0.0, X + 1]]), A([[X + 1, 2 * X, 0.0]]), s)),
               ("probe: nearly equal rows (cancellation)", (A(z1), A([[1.0, -0.5, 2.0, 0.25 + 2 * f.eps]]), s)),
               ("probe: teacher/policy spread into the subnormal range",
                (A([[0.0, -0.95 * U * s, 1.0]]), A([[0.0, -0.3 * U * s, 1.0]]), s))]
    elif kinds == (Q.REAL,):
        xs = [[-2 * U, -1.1 * U, -0.95 * U, -X - 1, -X + 0.5, -0.5 * X, -40.0, -20.0, -1.0, -1e-3, 0.0,
               1e-3, 1.0, 20.0, 40.0, 0.5 * X, X - 0.5, X + 1, 0.95 * U, 2 * U]]
        out = [("probe: around the exp overflow/underflow thresholds", (A(xs),))]
    elif kinds == (Q.REAL, Q.TARGET01):
        xs = [-2 * U, -0.95 * U, -X - 1, -40.0, -20.0, -1.0, 0.0, 1.0, 20.0, 40.0, X + 1, 0.95 * U, 2 * U]
        for t in (0.0, 1.0, 0.5, 0.875):
            out.append((f"probe: logits around the thresholds, t = {t}", (A([xs]), A([[t] * len(xs)]))))
    elif kinds in ((Q.PROB,), (Q.PROB, Q.TARGET01)):
        ps = [0.0, sub, 3 * sub, f.tiny, 1e-3, 0.125, 0.5, 0.9, 1.0 - f.eps, 1.0]
        if kinds == (Q.PROB,):
            out = [("probe: 0, subnormal, tiny, near 1, 1", (A([ps]),))]
        else:
            for t in (0.0, 1.0, 0.25):
                out.append((f"probe: p from 0 to 1, t = {t}", (A([ps]), A([[t] * len(ps)]))))
    elif kinds == (Q.PROBS,):
        out = [("probe: exact zeros", (A([[0.0, 0.5, 0.25, 0.25]]),)),
               ("probe: subnormal entries", (A([[sub, 4 * sub, 0.5, 0.5 - 5 * sub]]),)),
               ("probe: one near 1", (A([[1.0 - f.eps, f.eps / 2, f.eps / 2, 0.0]]),))]
    elif kinds == (Q.PROBS, Q.PROBS):
        out = [("probe: zeros in p", (A([[0.0, 0.5, 0.5, 0.0]]), A([[0.25, 0.25, 0.25, 0.25]]))),
               ("probe: q subnormal where p is not (p/q overflows)",
                (A([[0.5, 0.25, 0.25, 0.0]]), A([[sub, 0.5, 0.5 - sub, 0.0]]))),
               ("probe: q = 0 where p > 0 (exact +inf)", (A([[0.5, 0.5, 0.0, 0.0]]), A([[0.0, 0.5, 0.5, 0.0]]))),
               ("probe: q small, p moderate", (A([[0.5, 0.5, 0.0, 0.0]]), A([[1e-4 * f.eps, 1.0 - 1e-4 * f.eps, 0.0, 0.0]]))),
               ("probe: p = q + tiny (cancellation)",
                (A([[0.25, 0.25, 0.25 + 2 * f.eps, 0.25 - 2 * f.eps]]), A([[0.25, 0.25, 0.25, 0.25]])))]
    elif kinds == (Q.MU, Q.LOGVAR):
        out = [("probe: logvar near 0 (cancellation)", (A([[0.0, 1e-3, 0.0]]), A([[2 * f.eps, -2 * f.eps, 1e-3]]))),
               ("probe: logvar far below (exp(logvar) underflows)", (A([[0.0, 0.5]]), A([[-1.5 * U, -1.1 * U]]))),
               ("probe: moderate", (A([[0.5, -1.0, 2.0]]), A([[0.5, -1.0, 1.5]])))]
    elif kinds == (Q.TABLE,):
        out = [("probe: zeros in the table", (A([[[0.5, 0.0], [0.25, 0.25]]]),)),
               ("probe: subnormal cells", (A([[[sub, 0.5 - sub], [0.25, 0.25]]]),)),
               ("probe: independent 2x2", (A([[[0.25, 0.25], [0.25, 0.25]]]),))]
    good = []
    for lab, args in out:
        try:
            Q.validate(q, args)
        except Q.InputError:
            continue
        good.append((lab, tuple(args)))
    return good


def fixed_cases(quantity, dtype) -> list:
    """Probes, then the shared corpus (``infoaudit.corpus.cases``) when it is installed."""
    out = list(probes(quantity, dtype))
    try:
        from .. import corpus
    except ModuleNotFoundError:
        return out
    try:
        for c in corpus.cases(quantity, dtype):
            if isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str):
                out.append((c[0], tuple(c[1])))
            elif hasattr(c, "args"):
                out.append((getattr(c, "label", "") or getattr(c, "name", "corpus"), tuple(c.args)))
            else:
                out.append(("corpus", tuple(c)))
    except Exception as e:  # noqa: BLE001 - a broken corpus must not break the gate
        out.append(("(corpus unavailable: %s)" % describe_exception(e), None))
    return [c for c in out if c[1] is not None]


def search_strategy(quantity, dtype, inputs="quick"):
    from .. import strategies

    return strategies.arguments(quantity, dtype, inputs)


def _prepare(q, args, dtype):
    from ..judging.compare import prepare_inputs

    return prepare_inputs(q, args, dtype)


# ====================================================================== results


@dataclass
class DtypeResult:
    dtype: str
    verdict: str                     # pass | fail | skipped
    cases: int = 0
    elements: int = 0
    grade: str | None = None         # the worst judged element's grade (infoaudit.judging)
    grades: dict = field(default_factory=dict)   # judged elements per grade
    profile: str = "default"         # the profile the cell was judged under
    why: str = ""                    # one line: the grade reached and both allowances (or what failed)
    unjudged: int = 0                # elements the profile does not judge (undefined exact value, inf inputs)
    max_ulp: float = 0.0
    max_abs: float = 0.0
    max_score: float = 0.0           # max |err| / max(conditioned, envelope allowance)
    nonfinite_total: int = 0
    fixed_max_score: float = 0.0     # over the fixed cases only (all of them always run)
    fixed_nonfinite: int = 0
    thresholds: dict = field(default_factory=dict)
    threshold_text: str = ""
    failure: dict | None = None
    notes: list = field(default_factory=list)
    seconds: float = 0.0
    calls: int = 0
    call_seconds: float = 0.0
    grad: dict | None = None         # --grad: the gradient audit of this dtype (gate_grad.grad_cell)

    @property
    def grad_failed(self):
        return bool(self.grad) and self.grad.get("verdict") == "fail"

    @property
    def failed(self):
        return self.verdict == "fail" or self.grad_failed

    def as_dict(self):
        d = dict(self.__dict__)
        if d.get("grad") is None:
            d.pop("grad", None)
        return d


@dataclass
class GateReport:
    quantity: str
    impl: str
    framework: str
    device: str
    profile: str
    seed: int
    examples: int
    results: list
    source: tuple | None = None      # (file, line) of the implementation
    grad: bool = False               # gradients audited too (--grad)

    @property
    def passed(self):
        return all(r.verdict in ("pass", "skipped") and not r.grad_failed for r in self.results) and any(
            r.verdict == "pass" for r in self.results)

    @property
    def exit_code(self):
        return 0 if self.passed else 1

    def as_dict(self):
        return {"infoaudit_gate": 1, "quantity": self.quantity, "impl": self.impl, "framework": self.framework,
                "device": self.device, "profile": self.profile, "seed": self.seed, "examples": self.examples,
                "grad": self.grad, "passed": self.passed, "exit_code": self.exit_code,
                "cells": {r.dtype: r.as_dict() for r in self.results}}


# ====================================================================== the reproducer


def reproducer(ctx: Context, j: Judgement, impl_import: str, fn_name: str) -> str:
    """Copy-paste Python that calls the implementation on the failing inputs."""
    ad = ctx.harness.ad
    q = ctx.q
    lines = [f"# infoaudit gate reproducer: {q.signature()}, {ctx.dtype}, {ad.name}"
             + (f" on {ad.device}" if ad.device != "cpu" else "")]
    imports = [ad.imports, "inf, nan = float('inf'), float('nan')"]
    if ad.name == "numpy" and ctx.dtype == "bfloat16":
        imports.insert(1, "import ml_dtypes")
    lines += imports
    lines.append(impl_import)
    names = []
    big = sum(np.asarray(v).size for v in j.inputs if isinstance(v, np.ndarray)) > 20000
    for arg, v in zip(q.args, j.inputs):
        names.append(arg.name)
        if isinstance(v, np.ndarray):
            if big and arg.is_float_array and np.asarray(v).size > 20000:
                lines.append(f"{arg.name} = ...  # {v.shape} {ctx.dtype} array: too large to print; see the JSON report")
            else:
                lines.append(f"{arg.name} = {array_literal(ad, v, ctx.dtype, arg.kind == Q.LABEL, arg.name)}")
        else:
            lines.append(f"{arg.name} = {py_value(v)}")
    lines.append(f"out = {fn_name}({', '.join(names)})")
    if j.y is not None:
        lines.append(f"# returned: {nested_literal(j.y) if j.y.size <= 64 else array_summary(j.y)}")
        lines.append(f"# expected: {nested_literal(j.expected) if j.expected.size <= 64 else array_summary(j.expected)}"
                     f"   (exact value correctly rounded to {ctx.dtype}"
                     + (", subnormals flushed to zero as this platform does" if ctx.flushing else "") + ")")
        if j.worst is not None:
            w = j.worst
            lines.append(f"# worst at {w}: returned {py_value(j.y[w])}, exact {py_value(j.exact.hi[w])}"
                         f" (+ {j.exact.lo[w]:.3g}), {ulp_text(j.ulp[w]) if j.ulp is not None else ''}")
    lines.append(f"# problem: {j.message}")
    return "\n".join(lines)


# ====================================================================== the search for one dtype


class _Found(Exception):
    def __init__(self, j):
        super().__init__(j.message)
        self.j = j


def gate_dtype(ctx: Context, *, examples=60, seed=0, inputs="quick", shrink_s=10.0, log=None) -> tuple:
    """(DtypeResult fields, failing Judgement or None) for one dtype: fixed cases, then search."""
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed

    stats = {"cases": 0, "elements": 0, "max_ulp": 0.0, "max_abs": 0.0, "max_score": 0.0, "nonfinite": 0,
             "calls": 0, "call_seconds": 0.0, "fixed_max_score": 0.0, "fixed_nonfinite": 0, "grades": {},
             "unjudged": 0, "worst_key": (-1, 0.0), "worst_line": "", "accepted": 0}
    notes = []

    def account(j, outcome):
        stats["calls"] += 1
        stats["call_seconds"] += outcome.seconds
        if j.kind in ("ok", "numerical") and j.score is not None:
            stats["cases"] += 1
            stats["elements"] += int(j.score.size)
            fin = np.isfinite(j.ulp)
            if fin.any():
                stats["max_ulp"] = max(stats["max_ulp"], float(j.ulp[fin].max()))
            fa = np.isfinite(j.abs_err) & (j.nonfinite == "")
            if fa.any():
                stats["max_abs"] = max(stats["max_abs"], float(j.abs_err[fa].max()))
            stats["max_score"] = max(stats["max_score"], j.max_score)
            stats["nonfinite"] += j.nonfinite_count
            stats["grades"] = judging.merge_grades(stats["grades"], j.grades)
            if j.judged is not None:
                stats["unjudged"] += int(np.count_nonzero(~j.judged))
            if j.accepted is not None and j.failing is not None:
                passing = judging.grades.code_of(ctx.profile.passing)
                stats["accepted"] += int(np.count_nonzero(j.accepted & j.judged & (j.graded.codes > passing)))
            if j.worst_key > stats["worst_key"]:
                stats["worst_key"], stats["worst_line"] = j.worst_key, j.worst_line

    def run_case(args, label="", fixed=False):
        inputs = _prepare(ctx.q, args, ctx.dtype)
        outcome = ctx.harness.call(inputs)
        j = judge(ctx, inputs, outcome, label)
        account(j, outcome)
        ctx.seen.append((label, inputs, fixed))
        return j

    ref_skips = []

    def note_ref(e):
        ref_skips.append(str(e))

    # 1. the fixed corpus: every case runs (complete, deterministic statistics for --baseline)
    first_fail = None
    for label, args in fixed_cases(ctx.q.name, ctx.dtype):
        try:
            j = run_case(args, label, fixed=True)
        except Q.InputError:
            continue
        except ReferenceFailure as e:
            note_ref(e)
            continue
        if j.failed and first_fail is None:
            first_fail = j
            if j.kind == "timeout":
                break  # a hanging implementation would hang on every case
    stats["fixed_max_score"] = stats["max_score"]
    stats["fixed_nonfinite"] = stats["nonfinite"]
    if first_fail is not None:
        return stats, _shrink_fixed(ctx, first_fail), notes + _ref_note(ref_skips)
    # 2. the seeded search
    if examples <= 0:
        return stats, None, notes
    try:
        strat = search_strategy(ctx.q.name, ctx.dtype, inputs)
    except ModuleNotFoundError:
        notes.append("infoaudit.strategies is not installed: fixed cases only")
        return stats, None, notes
    state = {"best": None, "stop": False, "t_fail": None}

    def same_args(a, b):
        return case_key("", "", [np.asarray(x) if isinstance(x, np.ndarray) else x for x in a]) == \
            case_key("", "", [np.asarray(x) if isinstance(x, np.ndarray) else x for x in b])

    @settings(max_examples=examples, database=None, deadline=None, derandomize=False, print_blob=False,
              phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False,
              suppress_health_check=list(HealthCheck), verbosity=__import__("hypothesis").Verbosity.quiet)
    @hseed(seed)
    @given(strat)
    def prop(args):
        best = state["best"]
        if state["stop"]:
            # out of shrinking budget (or a hang): only the best failure keeps failing
            if best is not None and same_args(args, best.inputs_raw):
                raise _Found(best)
            return
        try:
            j = run_case(args)
        except (Q.InputError, ReferenceFailure) as e:
            if isinstance(e, ReferenceFailure):
                note_ref(e)
            from hypothesis import reject
            reject()
        j.inputs_raw = args
        target(float(j.target_value()), label="error")
        if j.failed:
            if best is None or _size(j.inputs) <= _size(best.inputs):
                state["best"] = j
            if state["t_fail"] is None:
                state["t_fail"] = time.monotonic()
            if j.kind == "timeout" or time.monotonic() - state["t_fail"] > shrink_s:
                state["stop"] = True
            raise _Found(j)
        if state["t_fail"] is not None and time.monotonic() - state["t_fail"] > shrink_s:
            state["stop"] = True

    found = None
    try:
        from ..strategies import without_local_constants

        with without_local_constants():  # same seed, same inputs, whatever was imported
            prop()
        if ref_skips:
            notes.append(f"{len(ref_skips)} case(s) skipped: the exact reference failed ({ref_skips[0]})")
    except _Found as e:
        found = e.j
    except Exception as e:  # noqa: BLE001 - Flaky / hypothesis internals: keep the best failure seen
        found = state["best"]
        if found is None:
            notes.append(f"search stopped: {describe_exception(e)}")
    if found is not None:
        found = _shrink_fixed(ctx, found)
    if ref_skips and not any("exact reference failed" in n for n in notes):
        notes += _ref_note(ref_skips)
    return stats, found, notes


def _ref_note(skips):
    return [f"{len(skips)} case(s) skipped: the exact reference failed ({skips[0]})"] if skips else []


def _size(inputs):
    return sum(int(np.asarray(v).size) for v in inputs if isinstance(v, np.ndarray))


def _shrink_fixed(ctx, j):
    """Reduce a failing case to its worst row / element when that alone still fails."""
    if j.kind != "numerical":
        return j
    red = reduce_to_unit(ctx.q, j.inputs, j.worst)
    if red is None:
        return j
    try:
        outcome = ctx.harness.call(red)
        j2 = judge(ctx, red, outcome, j.label)
    except (Exception, ReferenceFailure):  # noqa: BLE001
        return j
    if j2.failed:
        return j2
    return j


# ====================================================================== the gate


def describe_impl(fn):
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    mod = getattr(fn, "__module__", None)
    try:
        src = inspect.getsourcefile(fn)
        line = inspect.getsourcelines(fn)[1]
    except (TypeError, OSError):
        src, line = None, None
    return (f"{mod}:{name}" if mod else name), ((src, line) if src else None)


def run_gate(fn, quantity, framework=None, *, dtypes=None, device="cpu", profile="default", examples=60,
             seed=0, timeout=20.0, relative=None, baseline=None, flush_to_zero=False, inputs="quick",
             impl_name=None, impl_import=None, fn_name="impl", user_profiles=None, log=None,
             grad=False) -> GateReport:
    """Gate ``fn`` as an implementation of ``quantity``; see the module docstring.

    ``grad``: also audit the gradients of ``fn`` through its framework's autodiff after each
    dtype's forward audit (:mod:`.gate_grad`; torch and jax only).

    Raises :class:`GateUsageError` for usage errors (unknown quantity/framework/dtype, bad profile,
    unreadable baseline, --grad without autodiff); implementation failures are verdicts, never
    exceptions.
    """
    try:
        q = Q.get(quantity)
    except Q.InputError as e:
        raise GateUsageError(str(e)) from None
    if not callable(fn):
        raise GateUsageError(f"{impl_name or fn!r} is not callable (it is a {type(fn).__name__})")
    framework = framework or infer_framework(fn)
    if grad:
        from . import gradients as GG
        GG.check_usage(framework, q.name)
    ad = framework_adapter(framework, device)
    if grad:
        try:
            GG.load_backend(framework)
        except Exception as e:  # noqa: BLE001 - BackendUnavailable
            raise GateUsageError(f"--grad: {e}") from None
    if isinstance(profile, P.Profile):
        prof = profile
    else:
        try:
            prof = P.load(profile or "default", user_profiles)
        except P.ProfileError as e:
            raise GateUsageError(str(e)) from None
    if relative:
        prof = prof.with_relative(relative)
    dts = tuple(dtypes) if dtypes else default_dtypes(framework)
    for d in dts:
        try:
            dtype_name(d)
        except ValueError as e:
            raise GateUsageError(str(e)) from None
    base_cells = _load_baseline(baseline, q.name) if baseline else None
    name, src = describe_impl(fn)
    impl_name = impl_name or name
    if impl_import is None:
        mod = getattr(fn, "__module__", None)
        if mod and mod != "__main__" and "<locals>" not in (getattr(fn, "__qualname__", "") or "") \
                and getattr(fn, "__name__", "").isidentifier():
            impl_import = f"from {mod} import {fn.__name__} as impl"
        else:
            where = f" ({src[0]}:{src[1]})" if src else ""
            impl_import = f"impl = ...  # your {getattr(fn, '__name__', 'function')}{where}"
    results = []
    for d in dts:
        t0 = time.perf_counter()
        d = dtype_name(d)
        th = prof.thresholds(q.name, d)
        res = DtypeResult(d, "pass", thresholds=th.as_dict(), threshold_text=th.describe())
        if d == "bfloat16" and not ad.has_bfloat16 and dtypes is None:
            res.verdict = "skipped"
            res.notes.append(f"{framework} has no native bfloat16")
            results.append(res)
            continue
        probe = FTZ.probe(framework, d, ad.device)
        fw_op = _framework_op(framework, q.name, device) if th.relative_k else None
        if th.relative_k and fw_op is None:
            res.notes.append(f"relative rule: {framework} has no op for {q.name}; judged by the profile's grade")
            th.relative_k = None
        ctx = Context(q, d, Harness(fn, q, ad, d, timeout), th, probe, bool(flush_to_zero),
                      base_cells.get(d) if base_cells is not None else None, fw_op)
        if base_cells is not None and d not in base_cells:
            res.notes.append("baseline has no cell for this dtype: judged by the profile")
        if probe.active:
            res.notes.append(probe.describe() + ": judged against the exact value rounded with subnormals "
                             "flushed to zero, as this platform rounds")
        elif flush_to_zero:
            res.notes.append("--flush-to-zero: subnormal results may be returned as zero")
        if probe.error:
            res.notes.append(probe.describe())
        if log:
            log(f"  {d}: running fixed cases + {examples} examples ...")
        stats, failing, notes = gate_dtype(ctx, examples=examples, seed=seed, inputs=inputs)
        res.notes += notes
        res.profile = ctx.profile.name
        res.grades = stats["grades"]
        res.grade = judging.worst_grade(res.grades)
        res.unjudged = stats["unjudged"]
        if res.unjudged:
            res.notes.append(f"{res.unjudged} output element(s) not judged under {ctx.profile.name}: undefined exact "
                             "value (require_nan = false) or +-inf/NaN inputs other than -inf masks "
                             "(infinite_inputs = masks)")
        if stats["accepted"]:
            res.notes.append(f"{stats['accepted']} element(s) below the passing grade accepted by the profile's "
                             + ", ".join(f"{k} = {v!r}" for k, v in th.exceptions().items()) + " rule(s)")
        head = f"under {ctx.profile.name} ({ctx.profile.passing} and better pass)"
        if stats["worst_line"]:
            res.why = f"PASS {head}: {stats['worst_line']}"
        else:
            res.why = f"PASS {head}: no element judged"
        if ctx.baseline is not None:
            res.why = "no worse than the baseline; " + res.why
        res.cases = stats["cases"]
        res.elements = stats["elements"]
        res.max_ulp = stats["max_ulp"]
        res.max_abs = stats["max_abs"]
        res.max_score = stats["max_score"]
        res.nonfinite_total = stats["nonfinite"]
        res.fixed_max_score = stats["fixed_max_score"]
        res.fixed_nonfinite = stats["fixed_nonfinite"]
        res.calls = stats["calls"]
        res.call_seconds = round(stats["call_seconds"], 4)
        if failing is not None:
            res.verdict = "fail"
            res.failure = {
                "kind": failing.kind,
                "message": failing.message,
                "label": failing.label,
                "reproducer": reproducer(ctx, failing, impl_import, fn_name),
                "inputs": [jsonable(v) for v in failing.inputs],
                "returned": jsonable(failing.y) if failing.y is not None else None,
                "expected": jsonable(failing.expected) if failing.expected is not None else None,
                "exact_hi": jsonable(failing.exact.hi) if failing.exact is not None else None,
                "worst_index": list(failing.worst) if failing.worst is not None else None,
            }
            if failing.kind == "numerical":
                res.max_score = max(res.max_score, failing.max_score)
                res.why = failing.message
            else:
                res.why = f"the implementation {_KIND_WHY.get(failing.kind, failing.kind)} (values judged before: " \
                          + (f"grade {res.grade}; {stats['worst_line']})" if stats["worst_line"] else "none)")
        elif res.cases == 0 and res.calls == 0:
            res.verdict = "fail"
            res.failure = {"kind": "no_cases", "message": "no case could be run", "reproducer": ""}
            res.why = "no case could be run"
        if grad:
            skip = None
            if failing is not None and failing.kind == "timeout":
                skip = "not differentiated: the implementation hung on its forward pass"
            elif res.cases == 0:
                skip = "not differentiated: no forward case ran"
            res.grad = GG.grad_cell(ctx, fn, examples=examples, impl_import=impl_import, fn_name=fn_name,
                                    timeout=timeout, baseline_cell=(base_cells.get(d) if base_cells is not None
                                                                    else None),
                                    skip_reason=skip, log=log)
        res.seconds = round(time.perf_counter() - t0, 3)
        results.append(res)
    return GateReport(q.name, impl_name, framework, ad.device, prof.name, seed, examples, results, src, bool(grad))


_KIND_WHY = {"raised": "raised", "timeout": "hung", "not_array": "returned a non-array", "wrong_shape":
             "returned the wrong shape", "wrong_dtype": "returned the wrong dtype", "mutated": "mutated its input",
             "unreadable": "returned an unreadable result", "unsupported": "could not be given its inputs"}


def _framework_op(framework, qname, device):
    """The framework's own op for ``qname`` (callable on framework arrays), or None."""
    try:
        from ..backends import load
        mod = load(framework)
        ops = mod.ops().get(qname)
    except Exception:  # noqa: BLE001
        return None
    if not ops:
        return None
    op = next((o for o in ops if o.native), ops[0])
    return op.fn


def _load_baseline(path, qname):
    """The baseline's cells ``{dtype: cell}`` (:func:`infoaudit.results.compare_cells.load_gate_document`,
    the loader ``infoaudit diff`` shares); GateUsageError with its one line."""
    from ..results.compare_cells import DocumentError, load_gate_document

    try:
        return load_gate_document(path, qname)
    except DocumentError as e:
        raise GateUsageError(str(e)) from None

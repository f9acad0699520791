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
x64 --, scalars Python floats), on fresh copies (:mod:`infoaudit.harness.calls`). Anything other than a
correct array is a failure with what happened: an exception, a hang past the per-call timeout, a
non-array, the wrong shape or dtype, a mutated input. The gate itself never crashes on a hostile
implementation and never passes one.

With ``grad=True`` (``infoaudit gate --grad``) each dtype's forward audit is followed by an audit
of the implementation's gradients through its framework's autodiff on the same inputs
(:mod:`.gradients`); its verdict is ``DtypeResult.grad``.
"""
from __future__ import annotations

import inspect
import time

from .. import judging
from .. import quantities as Q
from ..dtypes import dtype_name
from ..harness import ftz as FTZ
from ..harness.calls import Harness
from ..harness.frameworks import GateUsageError, default_dtypes, framework_adapter, infer_framework
from ..judging.relative import Ratio
from ..reproducers.user import value_reproducer
from ..results.schema import jsonable
from . import profiles as P
from .report import DtypeResult, GateReport
from .search import gate_dtype
from .targets import COMPILE_TIMEOUT, baseline_op, reproducer_lines
from .targets import wrap as wrap_target
from .verdict import Context

__all__ = ["describe_impl", "run_gate"]


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
             grad=False, compile=None, autocast=None, relative_to=None) -> GateReport:
    """Gate ``fn`` as an implementation of ``quantity``; see the module docstring.

    ``grad``: also audit the gradients of ``fn`` through its framework's autodiff after each
    dtype's forward audit (:mod:`.gradients`; torch and jax only).
    ``compile`` / ``autocast`` / ``relative_to``: audit ``torch.compile(fn)`` or ``fn`` under
    ``torch.autocast`` (on float32 inputs), and what ``relative`` compares with (:mod:`.targets`).

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
        from . import grad_calls as GC
        from . import gradients as GG
        GC.check_usage(framework, q)
    ad = framework_adapter(framework, device)
    if grad:
        try:
            GC.load_backend(framework)
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
    eager_fn = fn
    fn, mode_notes = wrap_target(fn, framework, compile, autocast)
    if compile or autocast:
        impl_import = impl_import + "\n" + reproducer_lines(fn_name, compile, autocast)
    if autocast and dtypes is None:
        dts = ("float32",)
    if compile and timeout < COMPILE_TIMEOUT:   # a call that compiles takes seconds to minutes
        mode_notes.append(f"per-call timeout raised from {timeout:g} s to {COMPILE_TIMEOUT:g} s: calls that compile")
        timeout = COMPILE_TIMEOUT
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
        fw_op, fw_name = baseline_op(relative_to, framework, q.name, device, eager_fn) if th.relative_k else (None, "")
        if th.relative_k and fw_op is None:
            res.notes.append(f"relative rule: {framework} has no op for {q.name}; judged by the profile's grade")
            th.relative_k = None
        ctx = Context(q, d, Harness(fn, q, ad, d, timeout), th, probe, bool(flush_to_zero),
                      base_cells.get(d) if base_cells is not None else None, fw_op)
        res.notes += mode_notes
        if fw_op is not None:
            ctx.relative = Ratio(candidate="the implementation", baseline=fw_name)
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
        if ctx.relative is not None and ctx.relative.elements:
            rs = ctx.relative.summary()
            ulps = [f"{v:.3g}" if isinstance(v, float) else str(v) for v in (rs["max_error"], rs["baseline_max_error"])]
            res.notes.append(f"relative to {fw_name}: {rs['text']} (worst error {ulps[0]} vs {ulps[1]} ULP over "
                             f"{rs['elements']} elements; worse on {rs['worse']}, better on {rs['better']})")
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
                "reproducer": value_reproducer(ctx, failing, impl_import, fn_name),
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

"""Reproducers of a user's implementation (``infoaudit gate``): copy-paste Python that calls the
function on the failing inputs in its own framework -- the values (:func:`value_reproducer`) or the
gradient through the framework's autodiff with the gate's cotangent (:func:`gradient_reproducer`).

Arrays are written with the framework adapter's literals (:mod:`.literals`); a constant array as
a ``full`` call; arrays beyond 20,000 elements are elided (the JSON report holds them).
"""
from __future__ import annotations

import numpy as np

from .. import quantities as Q
from ..backends.grad import AUTODIFF
from ..reference.derivatives import default_cotangent
from .literals import array_literal, array_summary, nested_literal, py_value, ulp_text

__all__ = ["value_reproducer", "gradient_reproducer", "cotangent_literal"]


def value_reproducer(ctx, j, impl_import: str, fn_name: str) -> str:
    """Copy-paste Python that calls the implementation on the failing inputs (``ctx``: the gate's
    :class:`~infoaudit.gate.verdict.Context`, ``j`` its :class:`~infoaudit.gate.verdict.Judgement`)."""
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
                lines.append(f"{arg.name} = {array_literal(ad, v, ctx.dtype, arg.is_index_array, arg.name)}")
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


def gradient_reproducer(gctx, j, impl_import: str, fn_name: str) -> str:
    """Copy-paste Python that recomputes the user's gradient with the framework's autodiff
    (``gctx``: :class:`~infoaudit.gate.gradients.GradContext`, ``j`` its
    :class:`~infoaudit.gate.grad_judge.GradJudgement`)."""

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
        cot_lit = cotangent_literal(ad, q, cot, d)
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


def cotangent_literal(ad, q, cot, d):
    """The cotangent as code: the default pattern of softmax / log_softmax rows as a formula
    (reference.derivatives.default_cotangent), anything else as a literal."""
    cot = np.asarray(cot, dtype=np.float64)
    if cot.ndim == 0:
        return py_value(cot)
    if q.structure == Q.ROW and cot.ndim == 2 and cot.size > 8 and np.array_equal(cot, default_cotangent(q, cot.shape)):
        B, n = cot.shape
        rows = f"[[((3 * i + 5 * b) % 9 - 4) / 4 for i in range({n})] for b in range({B})]"
        return ad.literal(rows, d, cot.shape)
    return array_literal(ad, cot, d)

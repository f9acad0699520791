"""Copy-paste reproducers of *gradient* findings, in the framework's own autodiff.

``grad_snippet(cell, case, native=True)`` builds a standalone script from a gradient cell
(backend, variant, call, dtype, device) and one worst case (encoded ``args``, ``cotangent``,
``arg``, ``index``):

* native torch: the differentiated argument created with ``requires_grad=True``, the op's call
  expression, ``torch.autograd.grad(value, (arg,), grad_outputs=cotangent)``;
* native JAX: ``jax.vjp`` of the call expression with respect to that argument (under
  ``jax.jit`` for jitted variants), pulled back with the cotangent;
* otherwise (a call that is not an expression, a scalar argument such as T) a *table* snippet
  that reruns :func:`infoaudit.grad_compare.compare_grad` with the same inputs.

The gradient ends in ``out``; :func:`best_grad_snippet` executes the native snippet and keeps it
when it reproduces the recorded gradient component, else falls back to the table snippet.
"""
from __future__ import annotations

from .values import PREAMBLE, build_args, imports_for, literal, verify


def _call_expr(call: str, names):
    """(expression in the argument names, jitted) or (None, False)."""
    expr = (call or "").strip()
    jit = False
    if expr.startswith("jax.jit(") and expr.endswith(")"):
        expr, jit = expr[len("jax.jit("):-1], True
    elif "(" not in expr and "." in expr:
        expr = f"{expr}({', '.join(names)})"
    if not expr:
        return None, False
    try:
        compile(expr, "<call>", "eval")
    except SyntaxError:
        return None, False
    return expr, jit


def _tail(cell, case):
    index = case.get("index") or []
    idx = "[" + ", ".join(str(i) for i in index) + "]" if index else ""
    arg = case.get("arg")
    return [
        f"print(out{idx})",
        f"# {cell['backend']} ({cell.get('how', '')}) returns d/d{arg} = {literal(case.get('computed'))}"
        + (f" at {idx}" if idx else ""),
        f"# exact VJP component, correctly rounded to {cell['dtype']}: {literal(case.get('expected'))}"
        f"  (float64 hi + lo: {literal(case.get('exact_hi'))} + {literal(case.get('exact_lo'))})",
        f"# reference: infoaudit.reference.derivatives.vjp({cell['quantity']!r}, *args, cotangent=ct)[{arg!r}]",
    ]


def grad_snippet(cell: dict, case: dict, native: bool = True) -> str:
    """A standalone reproducer of the gradient component of ``case`` (encoded args and cotangent)."""
    from .. import quantities as Q

    q = Q.get(cell["quantity"])
    names = list(q.arg_names)
    args, ct, arg = case.get("args"), case.get("cotangent"), case.get("arg")
    if args is None or ct is None or arg not in names:
        return ""
    backend, device, dt = cell["backend"], cell.get("device", "cpu"), cell["dtype"]
    k = names.index(arg)
    expr, jit = _call_expr(cell.get("call", ""), names) if native and backend in ("torch", "jax") else (None, False)
    if expr is not None and isinstance(args[k], dict):
        lines, needs_ml = build_args(backend, names, args, device, True)
        ct_line, _ = build_args(backend, ["ct"], [ct], device, True)
        head = list(PREAMBLE[backend]) + imports_for(expr)
        if needs_ml:
            head.append("import ml_dtypes")
        if backend == "torch":
            lines[k] = lines[k][:-1] + ", requires_grad=True)"
            body = lines + ct_line + [f"value = {expr}",
                                      f"(out,) = torch.autograd.grad(value, ({arg},), grad_outputs=ct.to(value.dtype))"]
        else:
            if dt == "float64":
                head.append('jax.config.update("jax_enable_x64", True)')
            fn = f"lambda {arg}: {expr}"
            pull = f"lambda {', '.join(names)}, ct: jax.vjp({fn}, {arg})[1](ct)[0]"
            call = f"({pull})" if not jit else f"jax.jit({pull})"
            body = lines + ct_line + [f"out = {call}({', '.join(names)}, ct)"]
        return "\n".join(head + [""] + body + _tail(cell, case)) + "\n"
    lines, needs_ml = build_args(backend, names, args, device, False)
    ct_line, _ = build_args(backend, ["ct"], [ct], device, False)
    head = ["import numpy as np"] + (["import ml_dtypes"] if needs_ml else []) + [
        "from infoaudit.grad_compare import compare_grad", ""]
    body = lines + ct_line + [
        f"r = compare_grad({q.name!r}, {backend!r}, {', '.join(names)}, dtype={dt!r}, variant={cell['variant']!r}, "
        f"device={device!r}, cotangent=ct, condition=False)" + (f"  # {cell.get('call')}" if cell.get("call") else ""),
        f"out = r[{arg!r}].result  # the framework's gradient ({cell.get('how', '')})",
    ]
    return "\n".join(head + body + _tail(cell, case)) + "\n"


def best_grad_snippet(cell: dict, case: dict):
    """(code, kind, verified): the native snippet when it reproduces the gradient, else the table one."""
    from ..backends import load

    try:
        mod = load(cell["backend"])
    except Exception:  # noqa: BLE001
        mod = None
    code = grad_snippet(cell, case, native=True)
    if code and "compare_grad(" not in code and verify(code, case, mod, cell["dtype"]):
        return code, "native", True
    code = grad_snippet(cell, case, native=False)
    if not code:
        return "", "none", False
    return code, "table", verify(code, case, None, cell["dtype"])


__all__ = ["grad_snippet", "best_grad_snippet"]

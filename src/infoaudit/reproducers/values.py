"""Copy-paste Python reproducers of findings, in the framework's own terms.

``snippet(cell, case)`` builds a standalone script from a results cell (backend, variant, call,
dtype, device) and one worst case (encoded arguments, index, computed and exact values):

* a *native* snippet when the op's ``call`` string is a Python expression in the argument names
  (``torch.softmax(z, dim=-1)``, ``scipy.special.logsumexp(z, axis=-1)``; ``jax.jit(EXPR)`` becomes
  ``jax.jit(lambda z: EXPR)(z)``), building the inputs with the framework's own constructor;
* otherwise a *table* snippet that calls the same op through ``infoaudit.backends``.

Both end with the framework's result at the worst index and the exact reference value as
comments. :func:`verify` executes a snippet and checks that it reproduces the recorded value.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import sys

import numpy as np

PREAMBLE = {
    "torch": ["import math", "import torch", "import torch.nn.functional as F",
              "from torch.distributions import Categorical, Normal, kl_divergence"],
    "jax": ["import math", "import numpy as np", "import jax", "import jax.numpy as jnp",
            "from jax.scipy.special import entr, xlogy, rel_entr, kl_div"],
    "scipy": ["import math", "import numpy as np", "import scipy.special", "import scipy.stats",
              "from scipy.special import entr, xlogy, rel_entr, log_expit, expit"],
    "numpy": ["import math", "import numpy as np", "import numpy"],
}


def literal(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    if isinstance(v, str):
        return {"inf": 'float("inf")', "-inf": 'float("-inf")', "nan": 'float("nan")'}.get(v, repr(v))
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else 'float("-inf")'
        return repr(v)
    return repr(v)


def _constant(a):
    """The single value of an encoded array whose entries are all equal, else None."""
    def flat(v):
        return [x for y in v for x in flat(y)] if isinstance(v, list) else [v]
    vals = flat(a["values"])
    return vals[0] if vals and all(v == vals[0] for v in vals) else None


def _np_dtype_expr(dt):
    return "ml_dtypes.bfloat16" if dt == "bfloat16" else f"np.{dt}"


def build_args(backend, names, args, device, native):
    """Lines creating the arguments; the framework constructor when native."""
    lines = []
    needs_ml = any(isinstance(a, dict) and a.get("dtype") == "bfloat16" for a in args)
    for name, a in zip(names, args):
        if isinstance(a, dict) and _constant(a) is not None and np.prod(a["shape"]) > 4:
            v, dt, shape = literal(_constant(a)), a["dtype"], tuple(a["shape"])
            if native and backend == "torch":
                tdt = "torch.int64" if dt == "int64" else f"torch.{dt}"
                lines.append(f"{name} = torch.full({shape}, {v}, dtype={tdt})")
            elif native and backend == "jax":
                jdt = "np.int32" if dt == "int64" else _np_dtype_expr(dt)
                lines.append(f"{name} = jnp.asarray(np.full({shape}, {v}, dtype={jdt}))")
            else:
                lines.append(f"{name} = np.full({shape}, {v}, dtype={_np_dtype_expr(dt)})")
            continue
        if isinstance(a, dict):
            vals = literal(a["values"])
            dt = a["dtype"]
            if native and backend == "torch":
                tdt = "torch.int64" if dt == "int64" else f"torch.{dt}"
                dev = "" if device in ("cpu", "", None) else f", device={device!r}"
                lines.append(f"{name} = torch.tensor({vals}, dtype={tdt}{dev})")
            elif native and backend == "jax":
                if dt == "int64":
                    lines.append(f"{name} = jnp.asarray(np.array({vals}, dtype=np.int32))")
                else:
                    lines.append(f"{name} = jnp.asarray(np.array({vals}, dtype={_np_dtype_expr(dt)}))")
            else:
                lines.append(f"{name} = np.array({vals}, dtype={_np_dtype_expr(dt)})")
        else:
            lines.append(f"{name} = {literal(a)}")
    return lines, needs_ml


def _native_expr(backend, call, names):
    """The call as a Python expression, or None."""
    expr = call.strip()
    if not expr:
        return None
    if backend == "jax" and expr.startswith("jax.jit(") and expr.endswith(")"):
        inner = expr[len("jax.jit("):-1]
        expr = f"jax.jit(lambda {', '.join(names)}: {inner})({', '.join(names)})"
    elif "(" not in expr and "." in expr:  # a dotted function path: call it on the arguments
        expr = f"{expr}({', '.join(names)})"
    try:
        compile(expr, "<call>", "eval")
    except SyntaxError:
        return None
    return expr


def imports_for(expr):
    extra = []
    if "infoaudit." in expr:
        mod = expr.split("(")[0].rsplit(".", 1)[0]
        extra.append(f"import {mod}")
        extra.append("import infoaudit")
    if "optax" in expr:
        extra.append("import optax")
    return extra


def _tail(cell, case, index):
    dt = cell["dtype"]
    idx = "[" + ", ".join(str(i) for i in index) + "]" if index else ""
    lo = case.get("exact_lo")
    return [
        f"# {cell['backend']} returns out{idx} = {literal(case.get('computed'))}"
        + (f" (after rounding once to {dt}: " + "; ".join(n for n in cell.get("notes", []) if n.startswith("returned"))
           + ")" if any(n.startswith("returned") for n in cell.get("notes", [])) else ""),
        f"# exact value, correctly rounded to {dt}: {literal(case.get('expected'))}"
        + (f"  (float64 hi + lo: {literal(case.get('exact_hi'))} + {literal(lo)})" if lo not in (None, 0.0, "nan") else ""),
        f"# reference: infoaudit.reference.evaluate({cell['quantity']!r}, *args)",
    ]


def snippet(cell: dict, case: dict, native: bool = True) -> str:
    """A standalone reproducer for ``case`` (a worst-case dict with encoded ``args``) of ``cell``."""
    from .. import quantities as Q

    q = Q.get(cell["quantity"])
    names = list(q.arg_names)
    args = case.get("args")
    if args is None:
        return ""
    backend = cell["backend"]
    device = cell.get("device", "cpu")
    index = case.get("index") or []
    idx = "[" + ", ".join(str(i) for i in index) + "]" if index else ""
    expr = _native_expr(backend, cell.get("call", ""), names) if native and backend in PREAMBLE else None
    if expr is not None:
        arg_lines, needs_ml = build_args(backend, names, args, device, True)
        head = list(PREAMBLE[backend])
        if backend == "jax" and cell["dtype"] == "float64":
            head.append('jax.config.update("jax_enable_x64", True)')
        head += imports_for(expr)
        if needs_ml:
            head.append("import ml_dtypes")
        body = arg_lines + [f"out = {expr}", f"print(out{idx})"]
        return "\n".join(head + [""] + body + _tail(cell, case, index)) + "\n"
    # table snippet: the very op the audit ran, through infoaudit's backend table
    arg_lines, needs_ml = build_args(backend, names, args, device, False)
    head = ["import numpy as np"] + (["import ml_dtypes"] if needs_ml else []) + [
        "from infoaudit.backends import load", "",
        f"backend = load({backend!r})",
        f"op = next(o for o in backend.ops()[{q.name!r}] if o.variant == {cell['variant']!r})"
        + (f"  # {cell.get('call')}" if cell.get("call") else ""),
    ]
    conv = ", ".join(f"backend.to_backend({n}, {device!r})" if isinstance(a, dict) else n
                     for n, a in zip(names, args))
    body = arg_lines + [f"out = backend.to_numpy(op.fn({conv}))", f"print(out{idx})"]
    return "\n".join(head + body + _tail(cell, case, index)) + "\n"


def _result_value(out, index, mod=None):
    if mod is not None:
        try:
            out = mod.to_numpy(out)
        except Exception:  # noqa: BLE001
            pass
    a = np.asarray(out)
    if a.dtype == object:
        a = a.astype(np.float64)
    return float(np.asarray(a.astype(np.float64))[tuple(index)] if index else a.astype(np.float64))


@contextlib.contextmanager
def _process_state_kept():
    """Undo what a snippet changes in the process: a float64 JAX snippet switches on
    ``jax_enable_x64`` globally (as a user's script must), which would leak into every later audit
    of the worker that verified it (results would depend on the task order)."""
    jax = sys.modules.get("jax")
    x64 = bool(jax.config.jax_enable_x64) if jax is not None else \
        os.environ.get("JAX_ENABLE_X64", "").lower() in ("1", "true", "yes")
    try:
        yield
    finally:
        jax = sys.modules.get("jax")
        if jax is not None and bool(jax.config.jax_enable_x64) != x64:
            jax.config.update("jax_enable_x64", x64)


def verify(code: str, case: dict, backend_mod=None, dtype=None) -> bool:
    """Execute ``code``; True when ``out`` at the case's index equals the recorded computed value
    (after rounding once to ``dtype``, as the audit does when a backend returns a wider dtype).
    The process state the snippet changes (JAX's x64 flag) is restored afterwards."""
    ns = {"__name__": "__infoaudit_repro__"}
    try:
        with contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"), _process_state_kept():
            exec(compile(code, "<reproducer>", "exec"), ns)  # noqa: S102 - our own generated snippet
        got = _result_value(ns["out"], case.get("index") or [], backend_mod)
    except Exception:  # noqa: BLE001
        return False
    want = case.get("computed")
    want = float(want) if not isinstance(want, str) else float(want)
    if math.isnan(want):
        return math.isnan(got)
    if dtype is not None and not (got == want):
        from ..dtypes import cast

        got = float(cast(np.array([got]), dtype).astype(np.float64)[0])
    return got == want and (math.copysign(1, got) == math.copysign(1, want) or want != 0)


def best_snippet(cell: dict, case: dict, backend_mod=None):
    """(code, kind, verified): the native snippet when it reproduces, else the table snippet."""
    code = snippet(cell, case, native=True)
    dt = cell.get("dtype")
    if code and "backend = load(" not in code and verify(code, case, backend_mod, dt):
        return code, "native", True
    code = snippet(cell, case, native=False)
    if not code:
        return "", "none", False
    return code, "table", verify(code, case, None, dt)


__all__ = ["snippet", "verify", "best_snippet", "literal", "build_args", "imports_for", "PREAMBLE"]

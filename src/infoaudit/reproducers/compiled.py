"""A reproducer that runs both: a candidate (a compiled call) and its baseline (the eager call) on
the same torch inputs, each compared with the exact value of infoaudit's reference.

``snippet(quantity, dtype, device, candidate_call, baseline_call, case)``: ``case`` holds the
encoded arguments (:func:`infoaudit.results.schema.encode_args`), the output ``index`` and the
values recorded by the audit; the calls are expressions in the quantity's argument names (a
compiled variant's call is ``torch.compile(lambda z: EXPR, dynamic=True)(z)``).
"""
from __future__ import annotations

from .values import PREAMBLE, build_args, literal

__all__ = ["snippet"]


def snippet(quantity: str, dtype: str, device: str, candidate_call: str, baseline_call: str, case: dict) -> str:
    from .. import quantities as Q

    q = Q.get(quantity)
    names = list(q.arg_names)
    args = case["args"]
    index = case.get("index") or []
    idx = "[" + ", ".join(str(i) for i in index) + "]" if index else ""
    arg_lines, needs_ml = build_args("torch", names, args, device, True)
    head = list(PREAMBLE["torch"]) + ["import numpy as np", "import infoaudit.reference"]
    conv = ", ".join(f"{n}.detach().cpu().double().numpy() if {n}.is_floating_point() else {n}.cpu().numpy()"
                     if isinstance(a, dict) else n for n, a in zip(names, args))
    body = arg_lines + [
        f"eager = {baseline_call}",
        f"compiled = {candidate_call}",
        f"exact = infoaudit.reference.evaluate({quantity!r}, {conv}).hi{idx}",
        "print('exact   ', exact)",
        f"print('eager   ', eager{idx}.item(), 'error', abs(eager{idx}.double().item() - exact))",
        f"print('compiled', compiled{idx}.item(), 'error', abs(compiled{idx}.double().item() - exact))",
        f"# recorded in {dtype}: compiled {literal(case.get('computed'))}, eager {literal(case.get('baseline_computed'))}, "
        f"exact rounded {literal(case.get('expected'))}; error ratio {literal(case.get('ratio'))}",
    ]
    return "\n".join(head + [""] + body) + "\n"

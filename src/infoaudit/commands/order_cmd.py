"""``infoaudit order``: which terms each backend's row sum adds first (FPRev's +M / -M probe).

Prints one line per target (NumPy, torch eager, torch.compile, jax.jit): the order of
``x.sum(-1)`` over rows of ``--n`` terms in ``--dtype`` (:mod:`infoaudit.summation_order`), so a
difference between two results can be read next to "compiled sums in 8 lanes, eager in 32".
"""
from __future__ import annotations

import json

__all__ = ["add_arguments", "main"]


def add_arguments(p):
    from ..summation_order import TARGETS

    p.add_argument("--n", type=int, default=64, help="terms per row (default 64; n(n-1)/2 rows are summed)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="the dtype summed in")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated subset of {', '.join(TARGETS)}")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def main(args) -> int:
    from ..summation_order import TARGETS, probe_all

    names = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in names if t not in TARGETS]
    if unknown or args.n < 2:
        print(f"infoaudit order: unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}" if unknown
              else "infoaudit order: --n must be at least 2")
        return 2
    rows = probe_all(args.n, args.dtype, names)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        what = r.get("order") or f"skipped: {r.get('skipped')}"
        print(f"{r['target']:<15} {r['call']}\n                {what}")
    return 0

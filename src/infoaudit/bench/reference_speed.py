"""``infoaudit bench --reference``: ns per input element of the exact reference, per quantity.

Three paths on the same float32 inputs, measured side by side in one run on this machine:

* ``fast`` (wall clock; ``fast cpu``: the process's CPU clock) : ``reference.evaluate`` without the exact-value cache, mpmath's memo cleared before
  every call (fresh inputs) -- what an audit pays: the certified compiled fast path where
  the quantity has one (docs/fast_reference.md), mpmath for the elements it escalates (the share
  escalated is printed) and for quantities without one. Best of ``rounds`` (default 3) after a
  warm-up call, on a batch of rows of n elements (elementwise quantities: n elements per row),
  grown until one call takes >= ``target_s``.
* ``arb``: python-flint ball enclosures (``reference.arb_check.enclosures`` at 128 bits, the
  independent certification), one call on a *sample*: the first row (elementwise: the first
  ``sample`` elements).
* ``mpmath``: ``reference.evaluate_mpmath`` (the adaptive-precision reference of record, its memo
  cache cleared first), one call on the same sample.

Inputs: ``moderate`` (logits ~ N(0, 4^2), probabilities from a softmax of such logits,
[0, 1]-uniform probabilities and targets, logvar ~ N(0, 1)) and ``extreme`` (a third moderate, a
third log-uniform magnitudes across the float32 range, a third uniform in [-800, 800];
probabilities with tiny, near-1, exact 0/1 entries; -inf masks in logits), rows of 1,000 and
50,257 by default. By default arb and mpmath are measured only at n <= 1,000 (one row of 50,257
takes seconds to minutes there); ``--ref-full`` measures them at every n. Timings on a shared
machine vary by +-30%; the table prints the load average.
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

__all__ = ["DEFAULT_SIZES", "inputs", "measure", "run", "format_table", "main"]

DEFAULT_SIZES = (1000, 50257)
KINDS = ("moderate", "extreme")
F32 = np.float32


def _extreme_signed(rng, shape, hi_exp=38.5):
    size = int(np.prod(shape))
    pick = rng.integers(0, 3, size)
    mag = 10.0 ** rng.uniform(-45, hi_exp, size) * rng.choice([-1, 1], size)
    v = np.where(pick == 0, rng.standard_normal(size) * 10, np.where(pick == 1, mag, rng.uniform(-800, 800, size)))
    with np.errstate(over="ignore"):
        return v.reshape(shape).astype(F32)


def _extreme_unit(rng, shape):
    size = int(np.prod(shape))
    pick = rng.integers(0, 5, size)
    v = np.where(pick == 0, 10.0 ** rng.uniform(-45, 0, size),
                 np.where(pick == 1, 1 - 2.0 ** -rng.integers(1, 25, size),
                          np.where(pick == 2, rng.integers(0, 2, size).astype(float), rng.random(size))))
    return np.clip(v, 0, 1).astype(F32).reshape(shape)


def _softmax_rows(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(F32)


def inputs(q, rows, n, kind, seed=0):
    """Arguments of quantity ``q`` (a registry entry) for ``rows`` rows of ``n`` elements, or None
    when an argument kind is not generated here (the quantity is then reported as skipped)."""
    from .. import quantities as Q

    rng = np.random.default_rng(seed)
    ext = kind == "extreme"
    if q.structure == Q.TABLE_REDUCE:
        nx = max(1, int(round(n ** 0.5)))
        shape = (rows, nx, max(1, n // nx))
    else:
        shape = (rows, n) if q.structure != Q.ELEMENTWISE else (rows * n,)
    out = []
    for a in q.args:
        k = a.kind
        if k in (Q.LOGITS, Q.REAL, Q.MU):
            v = _extreme_signed(rng, shape) if ext else (rng.standard_normal(shape) * 4).astype(F32)
            if ext and k == Q.LOGITS:
                v[rng.random(shape) < 0.03] = -np.inf
            out.append(v)
        elif k == Q.LOGVAR:
            out.append(_extreme_signed(rng, shape, 4.0) if ext else rng.standard_normal(shape).astype(F32))
        elif k == Q.LOGPROBS:
            z = _extreme_signed(rng, shape) if ext else (rng.standard_normal(shape) * 4).astype(F32)
            out.append(-np.abs(z) if ext else (z - np.log(np.exp(z.astype(float)).sum(-1, keepdims=True))).astype(F32))
        elif k in (Q.PROB, Q.TARGET01):
            out.append(_extreme_unit(rng, shape) if ext else rng.random(shape).astype(F32))
        elif k in (Q.PROBS, Q.TABLE):
            if ext:
                out.append(_extreme_unit(rng, shape))
            else:
                p = _softmax_rows((rng.standard_normal((shape[0], int(np.prod(shape[1:])))) * 2))
                out.append(p.reshape(shape))
        elif k == Q.LABEL:
            out.append(rng.integers(0, n, rows))
        elif k == Q.TEMPERATURE:
            out.append(2.0)
        elif k == Q.EPS:
            out.append(0.1)
        elif k == Q.BETA:
            out.append(0.1)
        else:
            return None
    return out


def _elements(q, args):
    return int(sum(a.size for a in args if isinstance(a, np.ndarray) and a.dtype.kind == "f"))


def _sample(q, args, sample):
    """The first row (elementwise: the first ``sample`` elements) of every array argument."""
    from .. import quantities as Q

    if q.structure == Q.ELEMENTWISE:
        return [a[:sample] if isinstance(a, np.ndarray) else a for a in args]
    return [a[:1] if isinstance(a, np.ndarray) else a for a in args]


def _best(fn, rounds, clock=time.perf_counter):
    """Best time of ``rounds`` calls on ``clock`` (wall by default), mpmath's memo cache cleared
    before each (untimed): an escalated or mpmath-only unit is evaluated afresh every time."""
    from .. import reference

    best = float("inf")
    for _ in range(rounds):
        reference.clear_memo()
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def measure(name, n, kind, rounds=3, sample=1000, target_s=0.05, max_rows=64, slow_paths=True):
    """One table row: dict with ns/element of fast / arb / mpmath (None where not measured)."""
    from .. import quantities as Q
    from .. import reference

    q = Q.get(name)
    row = dict(quantity=name, n=n, inputs=kind, fast_ns=None, fast_cpu_ns=None, escalated=None, arb_ns=None, mpmath_ns=None,
               source=None, rows=0, skipped=None)
    args = inputs(q, 1, n, kind)
    if args is None:
        row["skipped"] = "input kind not generated by the benchmark"
        return row
    rows = 1
    t1 = _best(lambda: reference.evaluate_uncached(name, *args), 1)  # warm-up (kernels, tables)
    t1 = _best(lambda: reference.evaluate_uncached(name, *args), 1)
    if q.structure != Q.ELEMENTWISE and t1 > 0:
        rows = int(min(max_rows, max(1, target_s / t1)))
        if rows > 1:
            args = inputs(q, rows, n, kind)
    elif q.structure == Q.ELEMENTWISE and t1 > 0 and t1 < target_s:
        rows = int(min(max_rows, max(1, target_s / t1)))
        if rows > 1:
            args = inputs(q, rows, n, kind)
    ex = reference.evaluate_uncached(name, *args)
    elems = _elements(q, args)
    secs = _best(lambda: reference.evaluate_uncached(name, *args), rounds)
    cpu = _best(lambda: reference.evaluate_uncached(name, *args), rounds, time.process_time)
    row.update(rows=rows, fast_ns=secs / elems * 1e9, fast_cpu_ns=cpu / elems * 1e9, source=ex.source)
    row["escalated"] = _escalated(name, args)
    if slow_paths:
        s_args = _sample(q, args, sample)
        s_el = _elements(q, s_args)
        try:
            from ..reference import arb_check

            t = _best(lambda: arb_check.enclosures(name, *s_args, prec=128), 1)
            row["arb_ns"] = t / s_el * 1e9
        except ImportError:  # python-flint missing: no arb column
            pass
        t = _best(lambda: reference.evaluate_mpmath(name, *s_args), 1)
        row["mpmath_ns"] = t / s_el * 1e9
    return row


def _escalated(name, args):
    """Share of output elements the fast path left to mpmath (None: no fast path here)."""
    from .. import quantities as Q
    from ..reference import fast

    q = Q.get(name)
    if q.name not in fast.FAST:
        return None
    res = fast.FAST[q.name](*Q.validate(q, args))
    if res is None:
        return None
    ok = res[2]
    return float((~ok).mean()) if ok.size else 0.0


def run(names=None, sizes=DEFAULT_SIZES, kinds=KINDS, rounds=3, sample=1000, full=False, progress=None):
    """All table rows (dicts, see :func:`measure`)."""
    from .. import quantities as Q

    names = list(names or Q.REGISTRY)
    out = []
    for name in names:
        for n in sizes:
            for kind in kinds:
                if progress:
                    progress(f"{name} n={n} {kind}")
                out.append(measure(name, n, kind, rounds=rounds, sample=sample, slow_paths=full or n <= 1000))
    return out


def _fmt(v, width=10):
    if v is None:
        return f"{'-':>{width}}"
    return f"{v:>{width},.0f}" if v >= 100 else f"{v:>{width}.1f}"


def format_table(rows, rounds=3, sample=1000):
    """The table printed by ``infoaudit bench --reference``."""
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover
        load = "unknown"
    lines = [f"exact reference, ns per input element (float32 inputs; load average {load} on {os.cpu_count()} CPUs)",
             f"fast = reference.evaluate (certified fast path + mpmath for what it escalates), best of {rounds}; "
             f"arb / mpmath: one call on the first row (elementwise: first {sample} elements)",
             "fast cpu: the same calls timed on this process's CPU clock (less sensitive to a shared machine's load)",
             f"{'quantity':34s} {'n':>6s} {'inputs':>8s} {'fast':>10s} {'fast cpu':>10s} {'escalated':>9s} {'arb':>10s} "
             f"{'mpmath':>10s}  path"]
    for r in rows:
        if r["skipped"]:
            lines.append(f"{r['quantity']:34s} {r['n']:6d} {r['inputs']:>8s}  skipped: {r['skipped']}")
            continue
        esc = "-" if r["escalated"] is None else f"{100 * r['escalated']:.2f}%"
        lines.append(f"{r['quantity']:34s} {r['n']:6d} {r['inputs']:>8s} {_fmt(r['fast_ns'])} {_fmt(r['fast_cpu_ns'])} {esc:>9s} "
                     f"{_fmt(r['arb_ns'])} {_fmt(r['mpmath_ns'])}  {r['source']}")
    return "\n".join(lines)


def main(args) -> int:
    """Entry of ``infoaudit bench --reference`` (arguments from bench_cmd)."""
    import json

    from .. import quantities as Q

    names = args.ref_quantity or list(Q.REGISTRY)
    bad = [n for n in names if n not in Q.REGISTRY]
    if bad:
        print(f"infoaudit bench: unknown quantity {', '.join(bad)}", file=sys.stderr)
        return 2
    try:
        sizes = tuple(int(s) for s in args.ref_sizes.split(",") if s.strip())
    except ValueError:
        print(f"infoaudit bench: --ref-sizes must be integers, got {args.ref_sizes!r}", file=sys.stderr)
        return 2
    if not sizes or min(sizes) < 1 or args.ref_rounds < 1:
        print("infoaudit bench: --ref-sizes and --ref-rounds must be >= 1", file=sys.stderr)
        return 2
    kinds = tuple(args.ref_inputs.split(",")) if args.ref_inputs else KINDS
    if any(k not in KINDS for k in kinds):
        print(f"infoaudit bench: --ref-inputs takes {', '.join(KINDS)}", file=sys.stderr)
        return 2

    def progress(msg):
        if not args.quiet:
            print(f"  {msg}", file=sys.stderr, flush=True)

    rows = run(names, sizes, kinds, rounds=args.ref_rounds, sample=args.ref_sample, full=args.ref_full,
               progress=progress)
    print(format_table(rows, rounds=args.ref_rounds, sample=args.ref_sample))
    if args.ref_json:
        with open(args.ref_json, "w") as f:
            json.dump({"schema": "infoaudit.bench.reference", "version": 1, "rows": rows}, f, indent=1)
    return 0

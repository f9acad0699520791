"""The textbook-instability probes: per argument kind, the inputs on which each classic mistake
shows in a dtype (logits beyond exp's overflow threshold, rows spread into the subnormal range,
-inf masks, zeros in p, q subnormal where p is not, logvar near 0, ...).

Shared by the gate (before its search) and the run audit (before the corpus), so that the verdict
on the classic mistakes does not depend on the search's luck. ``probes(quantity, dtype)`` ->
``[(label, args)]``, arguments validated against the quantity's registry entry.
"""
from __future__ import annotations

import math

import numpy as np

from . import quantities as Q
from .dtypes import cast, dtype_name, fmt
from .harness.calls import (
    describe_exception,
)

__all__ = ["probes", "fixed_cases", "search_strategy"]


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
    elif kinds == (Q.LOGITS, Q.LABEL, Q.SAMPLES, Q.LOG_PROPOSAL):
        lq = A([[math.log(0.4), math.log(0.3), math.log(0.2), math.log(0.1)]])
        for lab, z in logit_rows[:5]:
            out.append((f"{lab}, y = 0, samples [1, 2, 3, 3]", (A(z), I64([0]), I64([[1, 2, 3, 3]]), lq)))
        out.append(("probe: rare samples (log q = -X - 1): corrected logits beyond the exp overflow threshold",
                    (A([[0.0, 1.0, 0.5, 0.0]]), I64([0]), I64([[1, 2]]), A([[-1.0, -X - 1, -X - 1, -1.0]]))))
        out.append(("probe: accidental hits and a dominant target", (A([[0.5 * X, 0.0, -1.0, 0.0]]), I64([0]),
                                                                   I64([[0, 1, 0, 2]]), lq)))
    elif q.structure == Q.ADAPTIVE:
        # distinct hidden sizes d (3, 5, 6): the run stacks fixed cases of equal trailing shapes along
        # the batch axis, which must never merge two probes' shared weights
        z3, z5, z6 = np.zeros((1, 3)), np.zeros((1, 5)), np.zeros((1, 6))
        out = [("probe: head logits beyond the exp overflow threshold",
                (A([[X, 1.0, -1.0]]), A([[2.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]]), A(z3), A([[1.0], [0.0]]),
                 A(z3), A([[0.0], [1.0]]))),
               ("probe: head log-probability near 0 (a tail below the unit roundoff)",
                (A([[1.0, 1.0, 1.0, 1.0, 1.0]]), A([[12.0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]), A(z5),
                 A([[0.0], [0.0]]), A(z5), A([[0.0]]))),
               ("probe: tail logits far below (exp underflows)",
                (A([[1.0, 0, 0, 0, 0, 0]]), A(np.zeros((3, 6))), A([[1.0, 0, 0, 0, 0, 0]]), A([[-2 * X], [0.0], [-X]]),
                 A(z6), A([[0.0], [0.0]])))]
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
        from . import corpus
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
    from . import strategies

    return strategies.arguments(quantity, dtype, inputs)

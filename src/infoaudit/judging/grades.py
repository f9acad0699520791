"""The grades, their order, and the one constant c(n) of the allowances.

Every element of a judged result gets exactly one grade (``GRADES``, best to worst):

=====================  ================================================================
``correctly_rounded``  <= 0.5 ULP of the exact value (subnormals counted)
``faithful``           < 1 ULP
``flushed``            a class: 0 where the exact value is subnormal in the dtype, on a
                       platform that flushes subnormals (probed, see ``judge(ftz=...)``), or
                       correct for the inputs as a denormals-are-zero platform reads them
``conditioned``        |err| <= c(n) u (N + |y*| + lambda): within what the problem's
                       conditioning forces (N, see :mod:`.scales`)
``envelope``           |err| <= c(n) u (S + lambda): within what a stable algorithm for the
                       exact formula loses (S, see :mod:`.scales`)
``unstable``           beyond both allowances
``invariant``          a class: outside one of the quantity's bounds by more than its
                       allowance, or worse than faithful in a row whose sum is off
                       (see :mod:`.invariants`)
``nonfinite``          a class: NaN / +-inf where the exact value is finite, finite where it
                       is not, or the wrong infinity (class name in ``Judgement.nonfinite``)
=====================  ================================================================

u is the dtype's unit roundoff and lambda its smallest normal number: ``u * lambda`` is half
the smallest subnormal, the absolute error one gradually underflowing operation may add (the
model fl(x op y) = (x op y)(1 + delta) + eta, |eta| <= u lambda, of Higham, *Accuracy and
Stability of Numerical Algorithms*, section 2.1); without it a result in the subnormal range
could not grade better than unstable unless correctly rounded or faithful.

The constant: ``c(n) = 8 + 2 ceil(log2 n)`` (n = the reduction length: row length, table size,
1 for elementwise quantities). A stable algorithm for any quantity here is a chain of at most
four elementary steps (shift, exp / log / log1p, divide, scale), each allowed 1 ULP = 2u of its
exact result (correctly rounded arithmetic is within 0.5 ULP, the vectorised exp / log of the
CPU backends within about 1 ULP): 8u. A pairwise or blocked sum of n terms adds about u per
level of its tree, ceil(log2 n) levels, doubled for the sequential tails of blocked sums:
2 ceil(log2 n) u.

Why this constant among those in use before: it contains the gate's former ULP default exactly --
``ulp = 4`` + ``ulp_per_log2n = 1`` ULPs is at most (8 + 2 log2 n) u |y*| (1 ULP <= 2u|y*|; 2u
lambda in the subnormal range) and ``floor = 8`` is 8 u S -- so every element error the gate's
default accepted (calibrated on every framework's native ops and the zoo's stable members)
passes ``default`` here, and it is the tightest constant of that form that does. The
differential tests' ``C = 16 + 2 ceil(log2 n)`` (tests/known_findings.py) is twice as wide: with
it a float16 distillation loss that forgets its T^2 factor (a 4x error at T = 2, n = 16) still
lies inside the envelope. The softmax row-sum rule of :mod:`.invariants` is stricter than the
gate's was.
"""
from __future__ import annotations

import math

__all__ = ["CORRECTLY_ROUNDED", "FAITHFUL", "FLUSHED", "CONDITIONED", "ENVELOPE", "UNSTABLE", "INVARIANT",
           "NONFINITE", "GRADES", "CODE", "CLASSES", "C_BASE", "C_PER_LEVEL", "allowance_constant", "code_of",
           "worst_grade", "merge_grades", "WELL_CONDITIONED"]

CORRECTLY_ROUNDED = "correctly_rounded"
FAITHFUL = "faithful"
FLUSHED = "flushed"
CONDITIONED = "conditioned"
ENVELOPE = "envelope"
UNSTABLE = "unstable"
INVARIANT = "invariant"
NONFINITE = "nonfinite"

# Best to worst; an element's code is its index here. A cell's grade is its worst element's.
GRADES = (CORRECTLY_ROUNDED, FAITHFUL, FLUSHED, CONDITIONED, ENVELOPE, UNSTABLE, INVARIANT, NONFINITE)
CODE = {g: i for i, g in enumerate(GRADES)}
CLASSES = (FLUSHED, INVARIANT, NONFINITE)  # the grades that are classes rather than error bands

# An input is *well conditioned* when kappa = N / |y*| <= WELL_CONDITIONED: relative input
# perturbations of u then move y by at most 64 u relative (6 bits), so a large relative error there
# is the algorithm's, not the problem's. The run's findings and the report's ten worst use it.
WELL_CONDITIONED = 64.0

C_BASE = 8        # four elementary steps x 1 ULP (= 2u) each
C_PER_LEVEL = 2   # u per level of a pairwise sum, doubled for blocked sums' sequential tails


def allowance_constant(n: int) -> float:
    """c(n) = 8 + 2 ceil(log2 n) (8 for n <= 1); see the module docstring for the reason."""
    n = int(n)
    return float(C_BASE + (C_PER_LEVEL * math.ceil(math.log2(n)) if n > 1 else 0))


def code_of(grade: str) -> int:
    """The position of ``grade`` in :data:`GRADES` (ValueError naming the grades otherwise)."""
    try:
        return CODE[grade]
    except KeyError:
        raise ValueError(f"unknown grade {grade!r}; grades: {', '.join(GRADES)}") from None


def worst_grade(counts: dict) -> str | None:
    """The worst grade with a nonzero count in ``counts`` ({grade: count}); None when empty."""
    present = [g for g, k in counts.items() if k]
    return max(present, key=code_of) if present else None


def merge_grades(*counts: dict) -> dict:
    """Element counts per grade summed over several judgements (cells are many cases)."""
    out = {g: 0 for g in GRADES}
    for c in counts:
        for g, k in c.items():
            code_of(g)
            out[g] += int(k)
    return {g: k for g, k in out.items() if k}

"""Run profiles (``quick``, ``default``, ``thorough``: examples, shapes, shrink budget) and the
exact reference's deterministic precision budget per input (a cost model, not a clock).
"""
from __future__ import annotations

import zlib

import numpy as np

from .. import reference
from ..reference.engine import MAX_PREC, PrecisionBudgetExceeded, precision_budget

__all__ = ["PROFILE_SETTINGS", "DEFAULT_REFERENCE_WORK", "MIN_REFERENCE_BITS", "reference_precision_cap", "float_elements", "magnitude_bits", "ReferenceOverBudget", "exact_within_budget", "group_seed", "exact_of"]


PROFILE_SETTINGS = {
    # examples of the ULP search / of the non-finite search per group; shrink step budget;
    # points kept per cell for the error-vs-magnitude plot
    # variants: "first" audits each backend's primary op only; corpus_max: largest fixed case (elements)
    # shrink_elements: the shrinker's budget in input elements sent to the reference (its cost)
    # reference_work: the exact reference's budget per input, in element-bits^2: an input of n float
    # values may use p bits of working precision with n (p + e)^2 <= reference_work, e the binary
    # exponent of its largest value (see reference_precision_cap); an input it cannot decide within
    # p bits is skipped and counted. Deterministic: the same on a fast and a slow machine, unlike the
    # wall-clock timeout it replaces (3 / 8 / 120 s; the budgets are about that on a 2-core Xeon).
    "quick": dict(ulp_examples=6, nonfinite_examples=4, shrink_steps=15, shrink_elements=3_000, points=40,
                  variants="first", corpus_max=64, reference_work=2 ** 30),
    "default": dict(ulp_examples=70, nonfinite_examples=35, shrink_steps=120, shrink_elements=20_000, points=60,
                    variants="all", corpus_max=None, reference_work=2 ** 31),
    "thorough": dict(ulp_examples=600, nonfinite_examples=300, shrink_steps=400, shrink_elements=400_000,
                     points=200, variants="all", corpus_max=None, reference_work=2 ** 35),
}


DEFAULT_REFERENCE_WORK = 2 ** 31  # reference budget of a Group built without a profile (element-bits^2)


MIN_REFERENCE_BITS = 128        # the first precision at which the reference decides anything


def reference_precision_cap(n_elements: int, work: float | None, magnitude_bits: int = 0) -> int | None:
    """The working precision (bits) the exact reference may use on one input: the largest power
    of two ``p`` in [MIN_REFERENCE_BITS, MAX_PREC] with ``n_elements * (p + magnitude_bits)**2 <=
    work`` (MIN_REFERENCE_BITS, the first precision at which the reference decides anything, when
    none fits); None (no cap) when ``work`` is None.

    A cost model, not a clock: mpmath's cost per element grows about like the square of the
    bits it carries, which are the working precision plus the binary exponent of the largest
    input (``magnitude_bits``: exp(z) of z ~ 1e296 reduces its argument with ~985 extra bits).
    Measured on a 2-core Xeon: a 256-entry RLHF-KL row of float64 logits up to 1e296 needs 4096
    bits (28 s), and ~10 s just to reach 1024 bits; ~3.8e-9 s per element-bit^2 per Ziv step.
    Both inputs of the model are properties of the input alone, so the cap -- and with it what
    gets judged -- is the same on every machine. The floor keeps inputs with huge values
    auditable (many are cheap: masked, shifted or saturated rows are decided at 128 bits); for
    them the work can exceed ``work`` (bounded by the profile's input sizes).
    """
    if work is None:
        return None
    n = max(int(n_elements), 1)
    e = max(int(magnitude_bits), 0)
    p = MIN_REFERENCE_BITS
    while p < MAX_PREC and n * (2 * p + e) ** 2 <= work:
        p *= 2
    return p


def float_elements(q, inputs) -> int:
    """Number of float values in ``inputs`` (array elements and float scalars; labels excluded)."""
    return sum(int(np.size(v)) for v, a in zip(inputs, q.args) if a.is_float_array) + \
        sum(1 for a in q.args if a.is_scalar)


def magnitude_bits(q, inputs) -> int:
    """The binary exponent (>= 0) of the largest finite |value| among the float inputs."""
    top = 0.0
    for v, a in zip(inputs, q.args):
        if not (a.is_float_array or a.is_scalar):
            continue
        x = np.abs(np.asarray(v, dtype=np.float64))
        x = x[np.isfinite(x)]
        if x.size:
            top = max(top, float(x.max()))
    return max(int(np.frexp(top)[1]), 0) if top > 0 else 0


class ReferenceOverBudget(Exception):
    """The exact reference could not decide an input within its deterministic precision budget."""


def exact_within_budget(q, inputs, work):
    """The exact reference of ``inputs`` under the precision budget for their size and magnitude
    (:func:`reference_precision_cap`); raises :class:`ReferenceOverBudget` when some element
    needs more bits than the budget allows or stays undecided at the engine's limit. Otherwise
    returns exactly what :func:`exact_of` returns.
    """
    cap = reference_precision_cap(float_elements(q, inputs), work, magnitude_bits(q, inputs))
    try:
        with precision_budget(cap):
            ex = exact_of(q, inputs)
    except PrecisionBudgetExceeded as e:
        raise ReferenceOverBudget(str(e)) from e
    if ex.undecided is not None and np.any(ex.undecided):
        raise ReferenceOverBudget(f"{int(np.sum(ex.undecided))} element(s) undecided at {MAX_PREC} bits")
    return ex


def group_seed(seed: int, *parts) -> int:
    """A stable per-group seed (independent of PYTHONHASHSEED and of the group order)."""
    return zlib.crc32(("|".join(str(p) for p in (seed, *parts))).encode()) & 0x7FFFFFFF


def _f64(v):
    if isinstance(v, np.ndarray) and (v.dtype.kind == "f" or "bfloat16" in str(v.dtype)):
        return v.astype(np.float64)
    return v


def exact_of(q, inputs):
    return reference.evaluate(q.name, *[_f64(v) for v in inputs])

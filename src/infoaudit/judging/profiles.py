"""Profiles: which grade passes, and the one-line explanation of a verdict.

``default`` passes ``envelope`` and better: what a stable algorithm for the quantity's formula
may lose in the dtype is accepted, even where the problem is well conditioned and a better
algorithm exists. ``strict`` passes ``conditioned`` and better: the result must be as accurate as
the problem's conditioning allows. ``flushed`` (a platform's probed flush-to-zero rounding) is
better than both and passes both; ``unstable``, ``invariant`` and ``nonfinite`` fail both.

Besides the passing grade, a profile says which elements it judges at all (the gate's existing
conventions, one line of reason each):

* ``require_nan``: elements whose exact value is undefined (NaN by the DESIGN conventions) are
  judged -- a finite result there is ``nonfinite`` -- only when True;
* ``judge_infinite_inputs``: elements whose inputs hold +-inf / NaN other than -inf masks (limit
  conventions) are judged only when True;
* ``overflow_margin``: an infinity of the right sign where |y*| > max / margin (a stable
  formula's larger terms overflowing next to the top of the range) is accepted (1: never).

A verdict line names the verdict, the profile, the grade reached and both allowances, e.g.
``FAIL under default (envelope and better pass): 2,517 ULP: the conditioning allows 19 ULP, a
stable algorithm's envelope 19 ULP -> unstable`` (torch's float16 BCE with logits at z = -35.4).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dtypes import fmt
from .grades import CODE, CONDITIONED, ENVELOPE, GRADES, NONFINITE, code_of

__all__ = ["Profile", "DEFAULT", "STRICT", "PROFILES", "get", "passes", "judged_mask", "failing_mask", "verdict",
           "explain"]


@dataclass(frozen=True)
class Profile:
    name: str
    passing: str                 # the worst grade that passes
    reason: str                  # one line: why this grade
    require_nan: bool = False
    judge_infinite_inputs: bool = False
    overflow_margin: float = 1.0
    reasons: tuple = ()          # (setting, one-line reason) for the three settings above

    def passes(self, grade: str) -> bool:
        return code_of(grade) <= code_of(self.passing)


DEFAULT = Profile(
    "default", ENVELOPE,
    "a stable algorithm for the formula loses up to c(n) u S; the default accepts any stable algorithm",
    require_nan=False, judge_infinite_inputs=False, overflow_margin=4.0,
    reasons=(("require_nan", "where the exact value is undefined (0/0, inf - inf) any result is a convention, "
                             "not numerics"),
             ("judge_infinite_inputs", "+-inf inputs other than -inf masks have limit conventions, not numerics"),
             ("overflow_margin", "a result within a factor 4 of the dtype's max may overflow in a stable "
                                 "formula's larger terms (0.5 exp(logvar))")))
STRICT = Profile(
    "strict", CONDITIONED,
    "the result must be as accurate as the problem's conditioning allows: c(n) u (N + |y*|)",
    require_nan=True, judge_infinite_inputs=True, overflow_margin=1.0,
    reasons=(("require_nan", "the DESIGN conventions for undefined results (NaN) are part of the contract"),
             ("judge_infinite_inputs", "every DESIGN convention for infinite inputs is part of the contract"),
             ("overflow_margin", "no intermediate overflow tolerated")))
PROFILES = {p.name: p for p in (DEFAULT, STRICT)}


def get(profile="default") -> Profile:
    """A profile by name (or the Profile itself); ValueError naming the profiles otherwise."""
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[str(profile)]
    except KeyError:
        raise ValueError(f"unknown judging profile {profile!r}; profiles: {', '.join(PROFILES)}") from None


def passes(grade: str, profile="default") -> bool:
    return get(profile).passes(grade)


def judged_mask(j, profile="default") -> np.ndarray:
    """The elements of a :class:`Judgement` that ``profile`` judges."""
    p = get(profile)
    m = np.ones(j.codes.shape, bool)
    if not p.require_nan:
        m &= ~np.asarray(j.undefined, bool)
    if not p.judge_infinite_inputs:
        m &= ~np.asarray(j.infinite_inputs, bool)
    return m


def _overflow_ok(j, p) -> np.ndarray:
    if p.overflow_margin <= 1:
        return np.zeros(j.codes.shape, bool)
    with np.errstate(all="ignore"):
        return ((j.codes == CODE[NONFINITE]) & np.isfinite(j.exact_hi) & np.isinf(j.computed)
                & (np.sign(j.computed) == np.sign(j.exact_hi))
                & (np.abs(j.exact_hi) > fmt(j.dtype).max / p.overflow_margin))


def failing_mask(j, profile="default", accepted=None) -> np.ndarray:
    """The judged elements whose grade ``profile`` does not pass. ``accepted`` (optional, the
    output's shape): elements the caller accepts whatever their grade (a gate profile's
    documented exception, e.g. a rule ``ulp = 6`` for one quantity x dtype)."""
    p = get(profile)
    fail = judged_mask(j, p) & (j.codes > code_of(p.passing)) & ~_overflow_ok(j, p)
    if accepted is not None:
        fail &= ~np.asarray(accepted, bool)
    return fail


def verdict(j, profile="default", accepted=None) -> str:
    """"pass" when every judged element's grade passes ``profile`` (or is ``accepted``), else "fail"."""
    return "fail" if failing_mask(j, profile, accepted).any() else "pass"


def explain(j, profile="default", accepted=None) -> str:
    """One line: the verdict, the profile and its passing grade, and the deciding element (the
    worst failing one, else the worst judged one) with its ULPs, both allowances and grade."""
    p = get(profile)
    fail = failing_mask(j, p, accepted)
    head = f"{'FAIL' if fail.any() else 'PASS'} under {p.name} ({p.passing} and better pass)"
    judged = judged_mask(j, p)
    skipped = int((~judged).sum())
    tail = (f" ({skipped} element(s) not judged under {p.name}: undefined exact value or infinite inputs)"
            if skipped else "")
    i = j.worst_index(fail if fail.any() else judged)
    if i is None:
        return f"{head}: no element judged{tail}"
    line = f"{head}: {j.describe(i)}"
    if fail.sum() > 1:
        counts = np.bincount(j.codes[fail].astype(np.int64), minlength=len(GRADES))
        line += " [failing: " + ", ".join(f"{k} {g}" for g, k in zip(GRADES, counts) if k) + "]"
    return line + tail

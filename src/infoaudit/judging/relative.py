"""The k-times rule with the exact value as the oracle: a candidate's error against the exact
value, relative to a baseline's error on the same inputs.

The rule of torch._dynamo's accuracy checker (``same(..., cast_to_fp64=True)``) and of
FlashAttention's tests: a candidate (a compiled function, a fused kernel) is acceptable when its
error against a high-precision reference is at most ``k`` times the error of a baseline (the
eager op). infoaudit has the exact value, so both errors are measured against it, in ULPs of the
dtype at the exact value (:mod:`.metrics`):

* per element ``r = max(e_c, F) / max(e_b, F)``, with the floor ``F = 1`` ULP (the additive
  tolerance of the maintainers' rules: two faithful results have ratio 1, and a correctly rounded
  baseline does not make a 1.2-ULP candidate 2.4 x worse); a non-finite mismatch (:data:`.metrics.CLASSES`) is an error
  of +inf: inf / inf = 1, inf / finite = inf, finite / inf = 0; elements whose exact value is
  undefined (NaN) are left out;
* per cell ``R = max(e_c) / max(e_b)`` over all its elements (both floored): the cell's worst
  error against the baseline's worst error. ``R > 1``: the candidate is R x *less* accurate;
  ``R < 1``: 1/R x *more* accurate (an ``allclose`` triage would have called that a bug).

:class:`Ratio` accumulates both over the inputs of a cell; :func:`passes` is the rule itself.
The run (compiled cells against their eager op) and the gate (``--relative K --relative-to``)
both call this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["FLOOR_ULPS", "element_errors", "ulp_errors", "element_ratios", "cell_ratio", "describe", "passes", "Ratio"]

FLOOR_ULPS = 1.0


def element_errors(j, judged=None) -> np.ndarray:
    """Errors in ULPs of a :class:`.core.Judgement` (float64, its shape): the ULP error where
    finite, +inf at a non-finite mismatch, NaN where not judged (``judged`` False or the ULP
    error undefined, e.g. a matching infinity counts as 0 already)."""
    return ulp_errors(j.ulp, j.nonfinite, judged)


def ulp_errors(ulp, nonfinite, judged=None) -> np.ndarray:
    """:func:`element_errors` from the arrays of :func:`.metrics.element_errors` (``ulp``, the
    non-finite classes) and an optional mask of the elements judged."""
    u = np.asarray(ulp, dtype=np.float64)
    nf = np.asarray(nonfinite).astype(str) != ""
    e = np.where(nf, np.inf, u)
    if judged is not None:
        e = np.where(np.asarray(judged, dtype=bool), e, np.nan)
    return e


def _floor(e, floor):
    return np.where(np.isnan(e), np.nan, np.maximum(e, floor))


def element_ratios(err_c, err_b, floor=FLOOR_ULPS) -> np.ndarray:
    """Per element ``max(e_c, F) / max(e_b, F)`` (inf / inf = 1; NaN where either is NaN)."""
    c = _floor(np.asarray(err_c, dtype=np.float64), floor)
    b = _floor(np.asarray(err_b, dtype=np.float64), floor)
    with np.errstate(all="ignore"):
        r = c / b
    return np.where(np.isinf(c) & np.isinf(b), 1.0, r)


def cell_ratio(err_c, err_b, floor=FLOOR_ULPS) -> float:
    """``max(e_c) / max(e_b)`` over the elements judged in both (floored; inf / inf = 1; 1.0
    when no element is)."""
    c = np.asarray(err_c, dtype=np.float64).ravel()
    b = np.asarray(err_b, dtype=np.float64).ravel()
    ok = ~(np.isnan(c) | np.isnan(b))
    if not ok.any():
        return 1.0
    mc = max(float(c[ok].max()), floor)
    mb = max(float(b[ok].max()), floor)
    return _ratio(mc, mb)


def _ratio(mc, mb):
    if math.isinf(mc) and math.isinf(mb):
        return 1.0
    return mc / mb


def describe(ratio: float, candidate: str = "compiled", baseline: str = "eager") -> str:
    """``"compiled is 3.2 x less accurate than eager"``, ``"... 4 x more accurate ..."``,
    ``"... as accurate as ..."`` (within 1%)."""
    if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return f"{candidate} and {baseline}: no element judged in both"
    if abs(ratio - 1.0) <= 0.01:
        return f"{candidate} is as accurate as {baseline} (error ratio {ratio:.3g})"
    if ratio > 1:
        k = "inf" if math.isinf(ratio) else f"{ratio:.3g}"
        return f"{candidate} is {k} x less accurate than {baseline}"
    k = "inf" if ratio == 0 else f"{1 / ratio:.3g}"
    return f"{candidate} is {k} x more accurate than {baseline}"


def passes(ratio: float, k: float) -> bool:
    """The k-times rule: the candidate's worst error is at most ``k`` times the baseline's."""
    return not math.isnan(ratio) and ratio <= k


@dataclass
class Ratio:
    """The error ratio of a candidate cell to a baseline cell, accumulated over inputs."""

    candidate: str = "compiled"
    baseline: str = "eager"
    label: str = ""           # how the text names the baseline (default: ``baseline``)
    floor: float = FLOOR_ULPS
    elements: int = 0
    worse: int = 0            # elements where the candidate's (floored) error is larger
    better: int = 0
    max_c: float = 0.0        # worst floored errors seen (ULPs)
    max_b: float = 0.0
    max_element: float = 1.0  # the largest / smallest per-element ratio
    min_element: float = 1.0
    log_sum: float = 0.0      # sum of log(ratio) over elements with a finite, nonzero ratio
    logged: int = 0
    worst: dict = field(default_factory=dict)   # where the per-element ratio was largest: {"ratio", "key"}

    def add(self, err_c, err_b, key=None):
        """Add one input's element errors (same shape); ``key``: a label of that input."""
        c = np.asarray(err_c, dtype=np.float64)
        b = np.asarray(err_b, dtype=np.float64)
        r = element_ratios(c, b, self.floor)
        ok = ~np.isnan(r)
        if not ok.any():
            return None
        rr = r[ok]
        self.elements += int(rr.size)
        self.worse += int(np.count_nonzero(rr > 1))
        self.better += int(np.count_nonzero(rr < 1))
        self.max_c = max(self.max_c, float(np.max(_floor(c[ok], self.floor))))
        self.max_b = max(self.max_b, float(np.max(_floor(b[ok], self.floor))))
        fin = rr[np.isfinite(rr) & (rr > 0)]
        self.log_sum += float(np.log(fin).sum())
        self.logged += int(fin.size)
        top = float(rr.max())
        self.min_element = min(self.min_element, float(rr.min()))
        if top > self.max_element:
            self.max_element = top
            flat = np.where(ok, r, -1.0)
            idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(flat)), r.shape))
            self.worst = {"ratio": top, "key": key, "index": list(idx),
                          "error": float(c[idx]), "baseline_error": float(b[idx])}
        return top

    @property
    def ratio(self) -> float:
        """The per-cell ratio ``max(e_c) / max(e_b)`` (1.0 before any element)."""
        if not self.elements:
            return 1.0
        return _ratio(max(self.max_c, self.floor), max(self.max_b, self.floor))

    def summary(self) -> dict:
        """JSON-able: ``ratio`` (per cell), ``text``, ``elements``, ``worse``, ``better``,
        ``max_error`` / ``baseline_max_error`` (ULPs), ``max_element_ratio``,
        ``min_element_ratio``, ``geomean_element_ratio``, ``worst`` (where it was largest)."""
        def num(x):
            return x if math.isfinite(x) else ("inf" if x > 0 else "nan")

        geo = math.exp(self.log_sum / self.logged) if self.logged else 1.0
        return {"baseline": self.baseline, "ratio": num(self.ratio), "text": describe(self.ratio, self.candidate,
                                                                                       self.label or self.baseline),
                "elements": self.elements, "worse": self.worse, "better": self.better,
                "max_error": num(self.max_c), "baseline_max_error": num(self.max_b),
                "max_element_ratio": num(self.max_element), "min_element_ratio": num(self.min_element),
                "geomean_element_ratio": num(geo), "floor_ulps": self.floor,
                "worst": {k: (num(v) if isinstance(v, float) else v) for k, v in self.worst.items()}}

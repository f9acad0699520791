"""Error metrics of a computed result against the exact reference.

For each output element (y computed in dtype d, y* exact):

* ``ulp``: |y - y*| / ulp_d(y*), ulp at the exact value in the output dtype with subnormals
  counted (ulp near 0 is the smallest subnormal). Correct rounding is <= 0.5. Computed from the
  double-double of y* so float64 results are judged to a fraction of an ULP.
* ``rel``: |y - y*| / |y*| (inf where y* = 0 and y != 0), ``abs``: |y - y*|.
* non-finite mismatch against the correctly rounded value r = round_d(y*): NaN or +-inf where r is
  finite, finite where r is not, or the wrong infinity. Each mismatch gets a class.

When r itself is +-inf (y* beyond the dtype's range), returning that infinity is correct.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dtypes import FORMATS, dtype_name, to_f64, ulp_of

__all__ = ["OVERFLOW", "LOG_OF_ZERO", "NAN_INF_ARITH", "NAN", "MISSING_NONFINITE", "WRONG_INF", "CLASSES",
           "ElementErrors", "element_errors", "classify_nonfinite"]

# Non-finite mismatch classes
OVERFLOW = "overflow"                 # +-inf where the exact result is finite, large magnitude input
LOG_OF_ZERO = "log_of_underflow"      # +-inf where finite expected: log of a value that underflowed to 0
NAN_INF_ARITH = "nan_inf_arith"       # NaN from inf - inf or 0 * inf (inputs hold +-inf)
NAN = "nan"                           # NaN where finite expected (0/0, 0*inf from underflow/overflow)
MISSING_NONFINITE = "finite_expected_nonfinite"  # finite where the exact result is +-inf or NaN
WRONG_INF = "wrong_infinity"          # +inf vs -inf, or NaN where an infinity is expected
CLASSES = (OVERFLOW, LOG_OF_ZERO, NAN_INF_ARITH, NAN, MISSING_NONFINITE, WRONG_INF)



@dataclass
class ElementErrors:
    """Per-element error arrays (float64, output shape) and non-finite classes (object array)."""

    ulp: np.ndarray
    rel: np.ndarray
    abs: np.ndarray
    expected: np.ndarray       # exact value correctly rounded to the output dtype
    nonfinite: np.ndarray      # class name or "" per element

    def summary(self) -> dict:
        fin = np.isfinite(self.ulp)
        ulp = self.ulp[fin]
        rel = self.rel[np.isfinite(self.rel)]
        counts = {}
        for c in self.nonfinite.ravel():
            if c:
                counts[c] = counts.get(c, 0) + 1
        return {
            "elements": int(self.ulp.size),
            "max_ulp": float(ulp.max()) if ulp.size else 0.0,
            "p99_ulp": float(np.percentile(ulp, 99)) if ulp.size else 0.0,
            "max_rel": float(rel.max()) if rel.size else 0.0,
            "max_abs": float(np.nanmax(self.abs[fin])) if fin.any() else 0.0,
            "nonfinite": counts,
            "nonfinite_total": int(sum(counts.values())),
        }


def element_errors(y, exact, dtype, quantity: str = "", inputs=()) -> ElementErrors:
    """Compare computed values ``y`` (any float dtype, output shape) with an :class:`Exact`."""
    name = dtype_name(dtype)
    f = FORMATS[name]
    y = np.asarray(y).astype(np.float64)
    hi, lo = exact.hi, exact.lo
    expected = exact.rounded(name)
    if y.shape != hi.shape:
        raise ValueError(f"result has shape {y.shape}, expected {hi.shape}")
    with np.errstate(all="ignore"):
        both = np.isfinite(y) & np.isfinite(hi)
        d = np.where(both, (y - hi) - lo, np.nan)
        err = np.abs(d)
        u = ulp_of(hi, f)
        ulp = np.where(both, err / u, np.nan)
        rel = np.where(both, np.where(hi != 0, err / np.abs(hi), np.where(err == 0, 0.0, np.inf)), np.nan)
        # exact value beyond the dtype's range: y = the correctly rounded infinity has no error
        ok_inf = ~np.isfinite(expected) & ~np.isnan(expected) & (y == expected)
        ulp = np.where(ok_inf, 0.0, ulp)
        rel = np.where(ok_inf, 0.0, rel)
        err = np.where(ok_inf, 0.0, err)
        nan_ok = np.isnan(y) & np.isnan(expected)
        ulp = np.where(nan_ok, 0.0, ulp)
        rel = np.where(nan_ok, 0.0, rel)
        err = np.where(nan_ok, 0.0, err)
    nonfinite = classify_nonfinite(y, expected, quantity, inputs)
    return ElementErrors(ulp, rel, err, expected, nonfinite)


def _is_float_array(a) -> bool:
    if not isinstance(a, np.ndarray):
        return False
    try:
        dtype_name(a.dtype)  # float16, bfloat16 (numpy kind "V"), float32, float64
    except ValueError:
        return False
    return True


def _tags(quantity) -> tuple:
    """The registry's tags of ``quantity`` (a name or an entry; none for "" or an unknown name)."""
    from ..quantities import REGISTRY, Quantity

    if isinstance(quantity, Quantity):
        return quantity.tags
    q = REGISTRY.get(quantity)
    return q.tags if q is not None else ()


def classify_nonfinite(y, expected, quantity="", inputs=()):
    """Class of each non-finite mismatch ('' where there is none)."""
    y = np.asarray(y, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    has_inf_input = any(np.isinf(to_f64(a)).any() for a in inputs if _is_float_array(a))
    out = np.full(y.shape, "", dtype=object)
    e_fin = np.isfinite(e)
    y_fin = np.isfinite(y)
    out[e_fin & np.isnan(y)] = NAN_INF_ARITH if has_inf_input else NAN
    inf_bad = e_fin & np.isinf(y)
    # -inf in a log-type result is log(0) of an underflowed value; +inf is -log(0) in a loss, but
    # an overflowing exp in the quantities that contain exp(x) outside any log argument.
    tags = _tags(quantity)
    log_zero = inf_bad & ("log_like" in tags) & ((y < 0) | ("exp_outside_log" not in tags))
    out[inf_bad] = OVERFLOW
    out[log_zero] = LOG_OF_ZERO
    out[~e_fin & y_fin] = MISSING_NONFINITE
    out[np.isinf(e) & np.isnan(y)] = WRONG_INF
    out[np.isinf(e) & np.isinf(y) & (np.sign(e) != np.sign(y))] = WRONG_INF
    return out

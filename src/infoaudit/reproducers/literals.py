"""Number and array literals for reproducers and verdict lines: Python values that read back to
the same float (``inf`` / ``nan`` by name), nested lists, a framework adapter's array
constructors (a constant array as a ``full`` call), short summaries of large arrays.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["short_number", "ulp_text", "py_value", "nested_literal", "array_literal", "array_summary"]


def short_number(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.9g}"


def ulp_text(u):
    if not np.isfinite(u):
        return "ULP n/a"
    return f"{u:.3g} ULP" if u < 1e6 else f"{u:.3e} ULP"


def py_value(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def nested_literal(a):
    a = np.asarray(a)
    if a.ndim == 0:
        return py_value(a) if a.dtype.kind == "f" else str(int(a))
    return "[" + ", ".join(nested_literal(x) for x in a) + "]"


def array_literal(ad, a, dtype, is_label=False, name="x"):
    a = np.asarray(a)
    if is_label:
        return ad.label_literal(nested_literal(a.astype(np.int64)))
    f64 = a.astype(np.float64)
    if f64.size > 1 and np.all(f64 == f64.flat[0]) and np.isfinite(f64.flat[0]):
        return ad.full(tuple(f64.shape), py_value(f64.flat[0]), dtype)
    return ad.literal(nested_literal(f64), dtype, a.shape)


def array_summary(a):
    a = np.asarray(a, dtype=np.float64)
    return f"<{a.shape} array; first values {nested_literal(a.reshape(-1)[:8])}>"

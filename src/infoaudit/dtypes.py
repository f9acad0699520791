"""Floating-point formats under audit: numpy dtypes, format parameters, exact rounding.

Every audited value is exactly representable in float64 (float16, bfloat16 and float32 are
subsets of it), so float64 is the lossless carrier between modules. Rounding an
arbitrary-precision value to a format is done **once**, directly to that format
(round-to-nearest-even, subnormals and overflow to +-inf included) -- never through float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import ml_dtypes
import mpmath
import numpy as np

__all__ = ["DTYPES", "Format", "FORMATS", "fmt", "dtype_name", "np_dtype", "round_mpf", "ulp_of", "cast",
           "to_f64", "round_dd"]

DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Format:
    """An IEEE-style binary format: `precision` significand bits (implicit bit included)."""

    name: str
    precision: int
    emin: int  # exponent of the smallest normal number
    emax: int  # exponent of the largest finite number

    @property
    def unit_roundoff(self) -> float:
        return 2.0 ** -self.precision

    @property
    def eps(self) -> float:
        """Distance from 1.0 to the next larger number (= 1 ULP at 1.0)."""
        return 2.0 ** (1 - self.precision)

    @property
    def tiny(self) -> float:
        """Smallest positive normal number."""
        return 2.0 ** self.emin

    @property
    def smallest_subnormal(self) -> float:
        return 2.0 ** (self.emin - self.precision + 1)

    @property
    def max(self) -> float:
        return (2.0 - 2.0 ** (1 - self.precision)) * 2.0 ** self.emax

    @property
    def np_dtype(self) -> np.dtype:
        return np_dtype(self.name)


FORMATS = {
    "float16": Format("float16", 11, -14, 15),
    "bfloat16": Format("bfloat16", 8, -126, 127),
    "float32": Format("float32", 24, -126, 127),
    "float64": Format("float64", 53, -1022, 1023),
}


def fmt(name) -> Format:
    """The Format for a dtype name or numpy dtype; ValueError naming the choices otherwise."""
    key = dtype_name(name)
    return FORMATS[key]


def dtype_name(d) -> str:
    if isinstance(d, Format):
        return d.name
    if isinstance(d, str) and d in FORMATS:
        return d
    try:
        nd = np.dtype(d)
    except TypeError:
        nd = None
    if nd is not None:
        if nd == np.dtype(ml_dtypes.bfloat16):
            return "bfloat16"
        if nd.name in FORMATS:
            return nd.name
    raise ValueError(f"unsupported dtype {d!r}; choose one of {', '.join(DTYPES)}")


def np_dtype(name) -> np.dtype:
    key = dtype_name(name)
    return np.dtype(ml_dtypes.bfloat16) if key == "bfloat16" else np.dtype(key)


def round_mpf(x, fmt_or_name) -> float:
    """Round an mpmath number (or int/float) once to the format, nearest-even; returns a float.

    The result is exactly representable in the format (subnormals included); values past the
    overflow threshold become +-inf, NaN stays NaN.
    """
    f = fmt_or_name if isinstance(fmt_or_name, Format) else fmt(fmt_or_name)
    if not isinstance(x, mpmath.mpf):
        # mpf(int) would round to the working precision: convert ints exactly
        x = mpmath.mpf(mpmath.libmp.from_int(x)) if isinstance(x, int) else mpmath.mpf(float(x))
    if mpmath.isnan(x):
        return math.nan
    if mpmath.isinf(x):
        return math.inf if x > 0 else -math.inf
    if x == 0:
        return 0.0
    sign, man, exp, bc = x._mpf_  # value = (-1)^sign * man * 2^exp, man odd, bc = bitlength
    man = int(man)
    e = exp + bc - 1  # floor(log2 |x|)
    if e > f.emax + 1:
        return -math.inf if sign else math.inf
    if e < f.emin - f.precision - 1:  # below half the smallest subnormal: rounds to zero
        return -0.0 if sign else 0.0
    q = max(e, f.emin) - f.precision + 1  # exponent of the quantum (ULP) at |x|
    shift = q - exp
    if shift <= 0:
        r = man << (-shift)
        r_man, r_exp = man, exp
    else:
        r = man >> shift
        rem = man - (r << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and (r & 1)):
            r += 1
        r_man, r_exp = r, q
    # overflow: |value| >= 2^(emax+1) after rounding
    if r_man and (r_man.bit_length() + r_exp - 1) > f.emax:
        return -math.inf if sign else math.inf
    v = math.ldexp(r_man, r_exp) if r_man else 0.0
    return -v if sign else v


def ulp_of(x: np.ndarray, fmt_or_name) -> np.ndarray:
    """ULP of the format at |x| (x float64, taken as the exact value): 2^(max(e, emin) - p + 1).

    Subnormal range and zero get the smallest subnormal; the ULP of inf/NaN is NaN.
    """
    f = fmt_or_name if isinstance(fmt_or_name, Format) else fmt(fmt_or_name)
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        _, e = np.frexp(np.abs(x))  # |x| = m * 2^e, m in [0.5, 1)
        e = np.where(x == 0, f.emin, e.astype(np.int64) - 1)
        e = np.maximum(e, f.emin)
        u = np.ldexp(1.0, (e - f.precision + 1).astype(np.int32))
    u = np.asarray(u, dtype=np.float64)
    u = np.where(np.isfinite(x), u, np.nan)
    return u


def cast(a, name) -> np.ndarray:
    """Cast values to the dtype with one round-to-nearest-even rounding (exact where representable)."""
    target = np_dtype(name)
    a = np.asarray(a)
    if a.dtype == target:
        return a
    if a.dtype.kind in "iu":
        a = a.astype(np.float64)
    if dtype_name(target) == "bfloat16" and a.dtype == np.float64:
        # ml_dtypes goes float64 -> float32 -> bfloat16 (double rounding: 1 + 2^-8 + 2^-30 gives
        # 1.0). Round to float32 with round-to-odd first; odd rounding to p + 2 bits followed by
        # nearest-even rounding to p bits is exact.
        return _round_to_odd_f32(a).astype(target)
    with np.errstate(over="ignore"):  # overflow to +-inf is the correct rounding
        return a.astype(target)


def _round_to_odd_f32(a: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        t = a.astype(np.float32)
        back = t.astype(np.float64)
        inexact = (back != a) & ~np.isnan(a)
        too_far = inexact & (np.abs(back) > np.abs(a))
        t = np.where(too_far, np.nextafter(t, np.float32(0)), t)
        bits = t.view(np.uint32)
        bits = np.where(inexact, bits | np.uint32(1), bits)
    return bits.astype(np.uint32).view(np.float32)


def to_f64(a) -> np.ndarray:
    """Exact widening of any audited dtype to float64."""
    return np.asarray(a).astype(np.float64)


def round_dd(hi, lo, name) -> np.ndarray:
    """Round the double-double hi + lo once to the dtype (nearest-even); float64 array out.

    hi is the float64 rounding of the exact value and lo the rounded remainder, so hi + lo can
    only be mis-rounded through hi when hi is exactly a rounding tie of the narrower format;
    there the sign of lo decides, as it does for the exact value.
    """
    hi = np.asarray(hi, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.float64)
    key = dtype_name(name)
    if key == "float64":
        return hi.copy()
    target = np_dtype(key)
    f = FORMATS[key]
    with np.errstate(all="ignore"):
        r = cast(hi, key)
        rb = r.astype(np.float64)
        up = hi > rb
        other = np.where(up, np.nextafter(r, target.type(np.inf)), np.nextafter(r, target.type(-np.inf)))
        ob = other.astype(np.float64)
        finite = np.isfinite(rb) & np.isfinite(hi)
        tie = finite & (hi != rb) & (np.abs(hi - rb) == np.abs(ob - hi))
        flip = tie & (np.sign(lo) == np.sign(ob - hi)) & (lo != 0)
        out = np.where(flip, ob, rb)
        # overflow threshold tie: hi = (2 - 2^-p) 2^emax rounds to inf unless lo < 0 pulls it down
        thr = (2.0 - 2.0 ** -f.precision) * 2.0 ** f.emax
        out = np.where((np.abs(hi) == thr) & (lo != 0) & (np.sign(lo) != np.sign(hi)), np.sign(hi) * f.max, out)
    return out

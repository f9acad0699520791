"""Hand-made tests of infoaudit.dtypes: format parameters, ULPs, single rounding, ties, casts."""
from __future__ import annotations

import math
from fractions import Fraction

import ml_dtypes
import mpmath
import numpy as np
import pytest

from infoaudit.dtypes import DTYPES, FORMATS, cast, fmt, np_dtype, round_dd, round_mpf, ulp_of

BF16 = np.dtype(ml_dtypes.bfloat16)


def nearest_even(x: Fraction, p: int, emin: int, emax: int) -> float:
    """Independent rounding of an exact rational to a binary format (p bits), nearest-even."""
    if x == 0:
        return 0.0
    s = -1 if x < 0 else 1
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()
    if Fraction(2) ** e > a:
        e -= 1
    q = max(e, emin) - p + 1                      # quantum exponent
    scaled = a / Fraction(2) ** q
    n = math.floor(scaled)
    r = scaled - n
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and n % 2 == 1):
        n += 1
    v = Fraction(n) * Fraction(2) ** q
    if v >= Fraction(2) ** (emax + 1):
        return s * math.inf
    return s * float(v)


def test_format_parameters():
    f16 = fmt("float16")
    assert f16.max == 65504.0 and f16.tiny == 2.0 ** -14 and f16.smallest_subnormal == 2.0 ** -24
    assert fmt("bfloat16").eps == 2.0 ** -7 and fmt("bfloat16").max == float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    assert fmt("float32").max == float(np.finfo(np.float32).max)
    assert fmt("float64").smallest_subnormal == 5e-324
    for d in DTYPES:
        f = FORMATS[d]
        assert f.unit_roundoff == f.eps / 2
        if d != "bfloat16":
            fi = np.finfo(np_dtype(d))
            assert f.eps == float(fi.eps) and f.tiny == float(fi.tiny) and f.max == float(fi.max)
    assert np_dtype("bfloat16") == BF16
    with pytest.raises(ValueError, match="float16"):
        fmt("int8")


@pytest.mark.parametrize("d", DTYPES)
@pytest.mark.parametrize("x", [1.0, 0.75, 3.0, -2.5, 1e-3, 100.0])
def test_nextafter_is_exactly_one_ulp(d, x):
    t = np_dtype(d)
    a = cast(np.array([x]), d)
    b = np.nextafter(a, np.array([np.inf], dtype=t))
    gap = b.astype(np.float64) - a.astype(np.float64)
    assert np.array_equal(gap, ulp_of(a.astype(np.float64), d))


@pytest.mark.parametrize("d", DTYPES)
def test_zero_and_smallest_subnormal_are_one_ulp_apart(d):
    f = FORMATS[d]
    t = np_dtype(d)
    z = np.zeros(1, dtype=t)
    s = np.nextafter(z, np.array([1], dtype=t)).astype(np.float64)
    assert s[0] == f.smallest_subnormal
    assert ulp_of(np.array([0.0]), d)[0] == f.smallest_subnormal
    assert ulp_of(s, d)[0] == f.smallest_subnormal
    assert ulp_of(np.array([f.tiny]), d)[0] == f.smallest_subnormal   # ULP is flat across the subnormals
    assert ulp_of(np.array([2 * f.tiny]), d)[0] == 2 * f.smallest_subnormal


def test_ulp_at_one():
    assert ulp_of(np.array([1.0]), "bfloat16")[0] == 2.0 ** -7
    assert ulp_of(np.array([1.0]), "float16")[0] == 2.0 ** -10
    assert ulp_of(np.array([1.0]), "float32")[0] == 2.0 ** -23
    assert ulp_of(np.array([1.0]), "float64")[0] == 2.0 ** -52
    assert ulp_of(np.array([0.999]), "float64")[0] == 2.0 ** -53
    assert np.isnan(ulp_of(np.array([np.inf, np.nan]), "float32")).all()


def test_float16_max_and_overflow_threshold():
    assert round_mpf(65504, "float16") == 65504.0
    assert round_mpf(65520, "float16") == math.inf          # the tie at the threshold goes to "2^16"
    assert round_mpf(mpmath.mpf("65519.99"), "float16") == 65504.0
    assert round_mpf(-65520, "float16") == -math.inf
    with np.errstate(over="ignore"):
        assert np.float16(65520.0) == np.inf and np.float16(65519.99) == 65504
    # cast() itself lets numpy warn "overflow encountered in cast" (reported; not asserted here)
    assert cast(np.array([65520.0, 65519.99]), "float16").astype(np.float64).tolist() == [math.inf, 65504.0]


def test_round_mpf_specials_and_subnormals():
    assert math.isnan(round_mpf(mpmath.nan, "float32"))
    assert round_mpf(mpmath.inf, "float16") == math.inf
    assert round_mpf(2.0 ** -25, "float16") == 0.0                           # tie -> even (0)
    assert round_mpf(mpmath.mpf(2) ** -25 * (1 + mpmath.mpf(2) ** -40), "float16") == 2.0 ** -24
    assert round_mpf(3 * 2.0 ** -25, "float16") == 2 * 2.0 ** -24            # tie 1.5 q -> 2 q
    assert round_mpf(mpmath.mpf(2) ** -1075, "float64") == 0.0
    assert round_mpf(mpmath.mpf(2) ** -1075 * 3, "float64") == 2 * 5e-324


@pytest.mark.parametrize("d", DTYPES)
def test_round_mpf_matches_independent_rounding_and_numpy(d):
    f = FORMATS[d]
    rng = np.random.default_rng(1234)
    # exact rationals spanning normal, subnormal and overflow ranges of the format
    exps = rng.integers(f.emin - f.precision - 2, f.emax + 2, size=200)
    mans = rng.integers(1, 2 ** 62, size=200, dtype=np.int64)
    signs = rng.choice([-1, 1], size=200)
    for m, e, s in zip(mans.tolist(), exps.tolist(), signs.tolist()):
        x = Fraction(s * m, 2 ** 62) * Fraction(2) ** e
        want = nearest_even(x, f.precision, f.emin, f.emax)
        mp_x = mpmath.mpf(s * m) * mpmath.mpf(2) ** (e - 62)
        with mpmath.workprec(200):
            got = round_mpf(mp_x, f)
        assert got == want, (d, x, got, want)
    # numpy's float64 -> float32 / float16 casts are correctly rounded: round_mpf must agree
    if d in ("float32", "float16"):
        xs = rng.standard_normal(500) * np.exp2(rng.integers(-30, 20, size=500))
        with np.errstate(over="ignore"):
            ref = xs.astype(np_dtype(d)).astype(np.float64)
        got = np.array([round_mpf(x, d) for x in xs.tolist()])
        assert np.array_equal(got, ref)
    if d == "bfloat16":
        # from float32 sources ml_dtypes' single rounding is correct
        xs = (rng.standard_normal(500) * 10).astype(np.float32)
        ref = xs.astype(BF16).astype(np.float64)
        got = np.array([round_mpf(float(x), d) for x in xs.tolist()])
        assert np.array_equal(got, ref)


def test_bfloat16_cast_avoids_double_rounding():
    x = 1 + 2.0 ** -8 + 2.0 ** -30
    assert cast(np.array([x]), "bfloat16").astype(np.float64)[0] == 1.0078125
    assert round_mpf(x, "bfloat16") == 1.0078125
    # the naive route float64 -> float32 -> bfloat16 rounds to 1.0 (the tie 1 + 2^-8 goes to even)
    assert np.float64(x).astype(np.float32).astype(BF16).astype(np.float64) == 1.0
    # below the tie stays down, exact ties to even
    assert cast(np.array([1 + 2.0 ** -8 - 2.0 ** -30]), "bfloat16").astype(np.float64)[0] == 1.0
    assert cast(np.array([1 + 2.0 ** -8]), "bfloat16").astype(np.float64)[0] == 1.0
    assert cast(np.array([1 + 3 * 2.0 ** -8]), "bfloat16").astype(np.float64)[0] == 1 + 2.0 ** -6


def test_cast_bfloat16_against_independent_rounding():
    rng = np.random.default_rng(7)
    xs = rng.standard_normal(300) * np.exp2(rng.integers(-140, 120, size=300))
    xs = np.concatenate([xs, [np.inf, -np.inf, 0.0, -0.0, 3.3895313892515355e38, 3.4e38]])
    got = cast(xs, "bfloat16").astype(np.float64)
    f = FORMATS["bfloat16"]
    for x, g in zip(xs.tolist(), got.tolist()):
        want = x if not math.isfinite(x) else nearest_even(Fraction(x), f.precision, f.emin, f.emax)
        assert g == want or (g == 0 and want == 0), (x, g, want)
    assert np.isnan(cast(np.array([np.nan]), "bfloat16").astype(np.float64)[0])


F16_TIE = 1 + 2.0 ** -11           # midway between 1 and 1 + 2^-10 (1 is even)
F16_TIE_ODD = 1 + 3 * 2.0 ** -11   # midway between 1 + 2^-10 (odd) and 1 + 2^-9 (even)


@pytest.mark.parametrize("hi,lo,want", [
    (F16_TIE, 0.0, 1.0),
    (F16_TIE, 2.0 ** -70, 1 + 2.0 ** -10),
    (F16_TIE, -(2.0 ** -70), 1.0),
    (F16_TIE_ODD, 0.0, 1 + 2.0 ** -9),
    (F16_TIE_ODD, -(2.0 ** -70), 1 + 2.0 ** -10),
    (F16_TIE_ODD, 2.0 ** -70, 1 + 2.0 ** -9),
    (-F16_TIE, 2.0 ** -70, -1.0),
    (-F16_TIE, -(2.0 ** -70), -(1 + 2.0 ** -10)),
    (2.0 ** -25, 0.0, 0.0),                       # subnormal tie 0 | 2^-24
    (2.0 ** -25, 2.0 ** -90, 2.0 ** -24),
    (-(2.0 ** -25), -(2.0 ** -90), -(2.0 ** -24)),
    (65520.0, 0.0, math.inf),                     # overflow threshold tie
    (65520.0, -(2.0 ** -40), 65504.0),
    (65520.0, 2.0 ** -40, math.inf),
    (-65520.0, 2.0 ** -40, -65504.0),
    (1.5, 2.0 ** -60, 1.5),                       # representable hi: lo irrelevant
])
def test_round_dd_float16_ties(hi, lo, want):
    got = round_dd(np.array([hi]), np.array([lo]), "float16")[0]
    assert got == want
    exact = mpmath.mpf(hi) + mpmath.mpf(lo)
    with mpmath.workprec(300):
        assert round_mpf(mpmath.mpf(hi) + mpmath.mpf(lo), "float16") == want, exact


@pytest.mark.parametrize("d", ["bfloat16", "float32"])
def test_round_dd_ties_other_formats(d):
    p = FORMATS[d].precision
    tie = 1 + 2.0 ** -p
    up = 1 + 2.0 ** (1 - p)
    assert round_dd(np.array([tie, tie, tie]), np.array([0.0, 1e-30, -1e-30]), d).tolist() == [1.0, up, 1.0]
    assert round_dd(np.array([2.5]), np.array([1e-20]), "float64")[0] == 2.5


def test_round_dd_agrees_with_round_mpf_on_random_double_doubles():
    rng = np.random.default_rng(99)
    hi = rng.standard_normal(300) * np.exp2(rng.integers(-20, 14, size=300))  # inside float16 range
    # make a third of them exact float16 / bfloat16 midpoints
    for k in range(0, 300, 3):
        d = "float16" if k % 2 else "bfloat16"
        r = cast(np.array([hi[k]]), d).astype(np.float64)[0]
        u = ulp_of(np.array([r]), d)[0]
        hi[k] = r + u / 2
    lo = hi * 2.0 ** -60 * rng.choice([-1.0, 0.0, 1.0], size=300)
    for d in ("float16", "bfloat16", "float32"):
        got = round_dd(hi, lo, d)
        with mpmath.workprec(300):
            want = [round_mpf(mpmath.mpf(h) + mpmath.mpf(l), d) for h, l in zip(hi.tolist(), lo.tolist())]
        assert got.tolist() == want, d

"""Hand-made tests of infoaudit.judging.metrics: ULP / relative / absolute error and non-finite classes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from infoaudit.dtypes import DTYPES, FORMATS, cast, np_dtype
from infoaudit.judging import metrics as M
from infoaudit.reference import Exact


def exact(hi, lo=None):
    hi = np.asarray(hi, dtype=np.float64)
    lo = np.zeros_like(hi) if lo is None else np.asarray(lo, dtype=np.float64)
    return Exact(hi, lo)


@pytest.mark.parametrize("d", DTYPES)
@pytest.mark.parametrize("x", [1.0, -3.0, 0.1, 1000.0, 2.0 ** -20])
def test_nextafter_is_one_ulp(d, x):
    t = np_dtype(d)
    r = cast(np.array([x]), d)
    n = np.nextafter(r, np.array([np.inf], dtype=t))
    e = M.element_errors(n, exact(r.astype(np.float64)), d)
    assert e.ulp[0] == 1.0
    e0 = M.element_errors(r, exact(r.astype(np.float64)), d)
    assert e0.ulp[0] == 0.0 and e0.abs[0] == 0.0 and e0.rel[0] == 0.0


@pytest.mark.parametrize("d", DTYPES)
def test_zero_vs_smallest_subnormal_is_one_ulp(d):
    s = FORMATS[d].smallest_subnormal
    e = M.element_errors(np.array([s]), exact([0.0]), d)
    assert e.ulp[0] == 1.0 and e.abs[0] == s and e.rel[0] == math.inf
    e = M.element_errors(np.array([0.0]), exact([s]), d)
    assert e.ulp[0] == 1.0 and e.rel[0] == 1.0


def test_ulp_uses_the_exact_value_and_lo():
    # y = 1 + 2^-52 against exact 1 + 2^-53 (hi = 1, lo = 2^-53): error 2^-53 = 0.5 ULP at 1
    e = M.element_errors(np.array([1 + 2.0 ** -52]), exact([1.0], [2.0 ** -53]), "float64")
    assert e.ulp[0] == 0.5
    # bfloat16 ULP at 1.0 is 2^-7; at 0.999 (binade below) 2^-8
    e = M.element_errors(np.array([1.0078125]), exact([1.0]), "bfloat16")
    assert e.ulp[0] == 1.0
    e = M.element_errors(np.array([1.0]), exact([1 - 2.0 ** -8]), "bfloat16")
    assert e.ulp[0] == 1.0
    # correct rounding of a non-representable value is <= 0.5 ULP
    third = 1 / 3
    y = cast(np.array([third]), "float16").astype(np.float64)
    e = M.element_errors(y, exact([third], [1 / 3 - third]), "float16")
    assert e.ulp[0] <= 0.5
    assert e.expected[0] == y[0]


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        M.element_errors(np.zeros(3), exact(np.zeros(2)), "float32")


def test_correct_infinities_and_nans_are_not_errors():
    # exact 70000 overflows float16: returning +inf is the correctly rounded answer
    e = M.element_errors(np.array([np.inf, np.nan, -np.inf]), exact([70000.0, np.nan, -np.inf]), "float16")
    assert e.ulp.tolist() == [0.0, 0.0, 0.0] and e.abs.tolist() == [0.0, 0.0, 0.0]
    assert (e.nonfinite == "").all()
    assert e.summary()["nonfinite_total"] == 0


def classes(y, hi, quantity="", inputs=()):
    return M.classify_nonfinite(np.asarray(y, float), np.asarray(hi, float), quantity, inputs).tolist()


def test_nonfinite_classes():
    # NaN where finite expected: plain NaN, or inf-arithmetic NaN when an input holds +-inf
    assert classes([np.nan], [1.0], "softmax") == [M.NAN]
    assert classes([np.nan], [1.0], "softmax", (np.array([np.inf, 0.0]),)) == [M.NAN_INF_ARITH]
    # +inf in a loss is -log(0) of an underflowed value; -inf in a log-type result is log(0)
    assert classes([np.inf], [3.0], "cross_entropy") == [M.LOG_OF_ZERO]
    assert classes([-np.inf], [-3.0], "log_softmax") == [M.LOG_OF_ZERO]
    # +inf where exp sits outside any log (logsumexp, softplus, gaussian_kl): overflow
    assert classes([np.inf], [3.0], "logsumexp") == [M.OVERFLOW]
    assert classes([np.inf], [3.0], "softmax") == [M.OVERFLOW]
    assert classes([-np.inf], [-3.0], "logsumexp") == [M.LOG_OF_ZERO]
    # finite where the exact value is not
    assert classes([1.0], [np.inf], "kl_divergence") == [M.MISSING_NONFINITE]
    assert classes([1.0], [np.nan], "softmax") == [M.MISSING_NONFINITE]
    # wrong infinity, and NaN where an infinity is expected
    assert classes([-np.inf], [np.inf], "cross_entropy") == [M.WRONG_INF]
    assert classes([np.nan], [np.inf], "cross_entropy") == [M.WRONG_INF]
    # no mismatch
    assert classes([np.inf, np.nan, 2.0], [np.inf, np.nan, 2.5], "cross_entropy") == ["", "", ""]


def test_element_errors_classifies_against_the_rounded_value():
    # exact 1e-30 is finite but rounds to 0 in float16: -inf from log is then a mismatch of class
    # log_of_underflow only if the exact value in the dtype is finite (here it is: 0 is finite)
    e = M.element_errors(np.array([-np.inf]), exact([-69.0]), "float16", "log_softmax")
    assert e.nonfinite[0] == M.LOG_OF_ZERO
    # exact 1e6 overflows float16 -> the expected value is +inf; finite 65504 is "finite expected nonfinite"
    e = M.element_errors(np.array([65504.0]), exact([1e6]), "float16", "logsumexp")
    assert e.nonfinite[0] == M.MISSING_NONFINITE


def test_summary_counts():
    hi = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 2.0 + 2.0 ** -51, np.nan, np.inf])
    e = M.element_errors(y, exact(hi), "float64", "cross_entropy")
    s = e.summary()
    assert s["elements"] == 4
    assert s["max_ulp"] == 1.0          # 2^-51 at 2 (ULP 2^-51)
    assert s["nonfinite"] == {M.NAN: 1, M.LOG_OF_ZERO: 1}
    assert s["nonfinite_total"] == 2
    assert s["max_abs"] == 2.0 ** -51


@pytest.mark.parametrize("d", DTYPES)
def test_inf_inputs_are_seen_in_every_dtype(d):
    """BUG (metrics.classify_nonfinite): inputs are scanned with ``a.dtype.kind == "f"``, but
    ml_dtypes.bfloat16 arrays have dtype.kind 'V', so a NaN caused by an infinite bfloat16 input is
    classed 'nan' instead of 'nan_inf_arith'. Fails for bfloat16 until metrics detects bfloat16
    (e.g. via infoaudit.dtypes.dtype_name / to_f64)."""
    z = cast(np.array([np.inf, 0.0]), d)
    assert classes([np.nan], [1.0], "softmax", (z,)) == [M.NAN_INF_ARITH]

"""Condition numbers and the condition-aware error, with the worked example of the report.

log_softmax(z) at z = [1000, 1000], float32: kappa = 1000 / log 2 by hand; the stable algorithm's
488-ULP error is forced by the conditioning (cae < 1). softplus as log(1 + exp(x)) at x = -20:
kappa = 20, relative error 1, cae ~ 8e5: the algorithm, not the problem.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from infoaudit import reference
from infoaudit.dtypes import FORMATS
from infoaudit.judging import condition as C
from infoaudit.judging.metrics import element_errors


def test_worked_example_log_softmax_ill_conditioned():
    z = np.array([[1000.0, 1000.0]], dtype=np.float32)
    m = z.max(-1, keepdims=True)
    y = z - (m + np.log(np.sum(np.exp(z - m), -1, keepdims=True)))  # stable algorithm, float32
    assert y.dtype == np.float32 and float(y[0, 0]) == -0.69317626953125
    z64 = z.astype(np.float64)
    exact = reference.evaluate("log_softmax", z64)
    err = element_errors(y.astype(np.float64), exact, "float32", "log_softmax")
    cond = C.forward_condition("log_softmax", z64, exact=exact)
    # by hand: dy_i/dz_j = delta_ij - 1/2, N_i = 1/2 |1000| + 1/2 |1000| = 1000, kappa = 1000 / log 2
    assert cond.sensitivity[0, 0] == pytest.approx(1000.0, rel=1e-12)
    assert cond.kappa[0, 0] == pytest.approx(1000 / math.log(2), rel=1e-12)
    assert 480 < err.ulp[0, 0] < 500          # hundreds of ULPs ...
    cae = C.condition_aware_error(err, cond, "float32")
    assert 0.4 < cae[0, 0] < 0.6              # ... all of them forced by the problem
    # the relative-error / kappa form agrees where y* != 0
    alt = C.condition_aware_error(err.rel, cond.kappa, FORMATS["float32"].unit_roundoff)
    assert alt[0, 0] == pytest.approx(cae[0, 0], rel=1e-9)


def test_worked_example_softplus_unstable():
    x = np.array([-20.0], dtype=np.float32)
    y = np.log(np.float32(1) + np.exp(x))      # 1 + 2e-9 rounds to 1: y = 0
    assert y[0] == 0
    exact = reference.evaluate("softplus", x.astype(np.float64))
    err = element_errors(y.astype(np.float64), exact, "float32", "softplus")
    cond = C.forward_condition("softplus", x.astype(np.float64), exact=exact)
    # kappa = |x sigmoid(x) / softplus(x)|, ~ 20 for x = -20
    s = 1 / (1 + math.exp(20))
    assert cond.kappa[0] == pytest.approx(20 * s / math.log1p(math.exp(-20)), rel=1e-12)
    cae = C.condition_aware_error(err, cond, "float32")
    assert err.rel[0] == 1.0 and cae[0] > 1e5
    good = np.log1p(np.exp(x))
    cae_good = C.condition_aware_error(element_errors(good.astype(np.float64), exact, "float32"), cond, "float32")
    assert cae_good[0] <= 1


def test_softmax_kappa_closed_form_and_exact_zero_output():
    z = np.array([[1.0, 2.0, -3.0, -math.inf]])
    cond = C.forward_condition("softmax", z)
    p = np.exp(z[0, :3] - np.log(np.sum(np.exp(z[0, :3]))))
    a = np.abs(z[0, :3])
    want = [(1 - p[i]) * a[i] + sum(p[j] * a[j] for j in range(3) if j != i) for i in range(3)]
    np.testing.assert_allclose(cond.kappa[0, :3], want, rtol=1e-12)
    assert cond.kappa[0, 3] == 0  # masked output is the constant 0
    # KL of p = q: y* = 0, N > 0: kappa = inf, and the absolute form still scores errors
    P = np.array([[0.25, 0.75]])
    c = C.forward_condition("kl_divergence", P, P)
    assert c.magnitude[0] == 0 and c.kappa[0] == math.inf and c.sensitivity[0] > 0


def test_condition_aware_error_conventions():
    k = np.array([0.0, 1.0, np.inf, np.nan])
    r = C.condition_aware_error(np.array([2.0 ** -24, 2.0 ** -24, 1.0, 0.0]), k, "float32")
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(0.5) and r[2] == 0 and np.isnan(r[3])


def test_gradient_condition_closed_forms_match_finite_differences(monkeypatch):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2, 6)) * 3
    cases = {"logsumexp": (z,), "cross_entropy": (z, np.array([1, 4])), "log_softmax": (z,),
             "label_smoothing_cross_entropy": (z, np.array([0, 5]), 0.3)}
    closed = {n: C.gradient_condition(n, *a) for n, a in cases.items()}
    monkeypatch.setattr(C, "_grad_sensitivity_closed", lambda *a: None)
    for n, a in cases.items():
        fd = C.gradient_condition(n, *a)
        for arg in fd:
            np.testing.assert_allclose(closed[n][arg].sensitivity, fd[arg].sensitivity, rtol=1e-12)


def test_confident_target_gradient_is_well_conditioned():
    # d CE/dz_y = p_y - 1 ~ -4e-9 is tiny but well conditioned in z (kappa ~ |z|): computing it as
    # softmax - onehot in float32 (0) is an algorithmic failure, not the problem's
    g = C.gradient_condition("cross_entropy", np.array([[20.0, 0.0, 0.0]]), np.array([0]))["z"]
    assert 19 < g.kappa[0, 0] < 21 and g.magnitude[0, 0] < 1e-8


def test_worked_examples_of_the_report():
    """The report's table (condition.worked_examples, computed during `infoaudit run`) matches the
    hand derivations above: log_softmax [1000, 1000] kappa = 1000 / log 2, cae < 1 although the
    error is hundreds of ULPs; softplus(-20) as log(1 + exp(x)) returns 0 (cae ~ 8e5), log1p is right."""
    ls, bad, good = C.worked_examples()
    assert ls["computed"] == -0.69317626953125 and ls["exact"] == -math.log(2)
    assert ls["kappa"] == pytest.approx(1000 / math.log(2), rel=1e-12) and ls["sensitivity"] == pytest.approx(1000)
    assert 480 < ls["ulp"] < 500 and ls["cae"] < 0.6 and ls["verdict"] == "ill-conditioned"
    s = 1 / (1 + math.exp(20))
    assert bad["computed"] == 0.0 and bad["rel"] == 1.0 and bad["cae"] > 1e5 and bad["verdict"] == "unstable"
    assert bad["kappa"] == pytest.approx(20 * s / math.log1p(math.exp(-20)), rel=1e-12)
    assert good["exact"] == pytest.approx(math.log1p(math.exp(-20)), rel=1e-15)
    assert good["ulp"] <= 0.5 and good["cae"] <= 0.5 and good["verdict"] == "stable"

"""The judging core (src/infoaudit/judging): grades, allowances, scales, invariants, profiles.

Expected values come from the exact reference (infoaudit.reference) or are derived by hand in
the test; none is copied from the judge's own output.
"""
from __future__ import annotations

import ast
import math
import os

import mpmath
import numpy as np
import pytest
from mpmath import mp

from infoaudit import judging, quantities, reference
from infoaudit.dtypes import FORMATS, cast, ulp_of
from infoaudit.judging import grades as G
from infoaudit.judging import profiles as P
from infoaudit.reference.derivatives import grad_formula


class Probe:
    """A stand-in for a flush-to-zero probe result (infoaudit.harness.ftz.FTZ has the same two fields)."""

    def __init__(self, outputs=False, inputs=False):
        self.flushes_outputs = outputs
        self.flushes_inputs = inputs


def _torch():
    try:
        import torch
    except Exception:  # noqa: BLE001 - torch absent or broken: the tests build the value by hand
        return None
    return torch


# ------------------------------------------------------------------ the two findings


def test_bce_with_logits_float16_is_unstable():
    z = cast(np.array([-35.4]), "float16")          # -35.40625
    t = cast(np.array([0.0003402]), "float16")
    torch = _torch()
    if torch is not None:
        y = torch.nn.functional.binary_cross_entropy_with_logits(
            torch.from_numpy(z), torch.from_numpy(t), reduction="none").numpy()
    else:
        y = np.array([0.03125], dtype=np.float16)  # what torch 2.x returns on CPU
    assert float(y[0]) == 0.03125
    ex = reference.evaluate("binary_cross_entropy_with_logits", z.astype(np.float64), t.astype(np.float64))
    assert ex.hi[0] == pytest.approx(0.012046, rel=1e-4)
    j = judging.judge(quantities.get("binary_cross_entropy_with_logits"), [z, t], y, ex, "float16")
    # by hand: dy/dz = sigmoid(z) - t, dy/dt = -z, so N = |sigmoid(z) - t||z| + |z| t ~ 2 |z| t
    zf, tf = float(z[0]), float(t[0])
    sig = 1 / (1 + math.exp(-zf))
    N = abs(sig - tf) * abs(zf) + abs(zf) * tf
    assert j.N[0] == pytest.approx(N, rel=1e-12)
    assert j.kappa[0] == pytest.approx(N / ex.hi[0], rel=1e-9)
    assert 1.9 < j.kappa[0] < 2.1                               # well conditioned
    # error in ULPs: exact in [2^-7, 2^-6), float16 has 10 fraction bits: ulp = 2^-17
    assert j.ulp[0] == pytest.approx((0.03125 - ex.hi[0]) / 2.0 ** -17, rel=1e-9)
    u, c = 2.0 ** -11, 8.0                                       # c(1) = 8
    assert j.allow_conditioned[0] == pytest.approx(c * u * (N * judging.N_SAFETY + ex.hi[0] + 2.0 ** -14), rel=1e-9)
    assert j.grade == "unstable" and j.grades == {"unstable": 1}
    assert j.verdict("default") == "fail" and j.verdict("strict") == "fail"
    line = j.explain("default")
    assert line.startswith("FAIL under default (envelope and better pass): 2,517 ULP: the conditioning allows ")
    assert "a stable algorithm's envelope" in line and line.endswith("-> unstable")


def test_logsumexp_float32_is_envelope():
    z = cast(np.array([[0.0, -16.635532]]), "float32")
    torch = _torch()
    if torch is not None:
        y = torch.logsumexp(torch.from_numpy(z), dim=-1).numpy()
    else:
        y = np.array([0.0], dtype=np.float32)  # 1 + exp(-16.6) rounds to 1 in float32: log 1 = 0
    assert float(y[0]) == 0.0
    ex = reference.evaluate("logsumexp", z.astype(np.float64))
    assert ex.hi[0] == pytest.approx(5.96e-8, rel=1e-3)
    j = judging.judge("logsumexp", [z], y, ex, "float32")
    # by hand: N = sum_j p_j |z_j| = p_2 |z_2|, p_2 = e^z2 / (1 + e^z2)
    z2 = float(z[0, 1])
    p2 = math.exp(z2) / (1 + math.exp(z2))
    assert j.N[0] == pytest.approx(p2 * abs(z2), rel=1e-12)
    assert j.kappa[0] == pytest.approx(16.6, rel=0.01)
    assert j.grade == "envelope"
    assert j.verdict("default") == "pass" and j.verdict("strict") == "fail"
    d, s = j.explain("default"), j.explain("strict")
    assert d.startswith("PASS under default (envelope and better pass): ") and d.endswith("-> envelope")
    assert s.startswith("FAIL under strict (conditioned and better pass): ") and s.endswith("-> envelope")
    # both allowances, in ULPs of the exact value (float32 ulp there: 2^-48): c(2) = 10, u = 2^-24
    unit = 2.0 ** -48
    cond = 10 * 2.0 ** -24 * (p2 * abs(z2) + ex.hi[0] + 2.0 ** -126) / unit
    assert f"the conditioning allows {judging.format_ulps(cond)} ULP" in s
    env = 10 * 2.0 ** -24 * (1 + math.log1p(math.exp(z2))) / unit     # S = |max z| + log s + 1
    assert f"envelope {judging.format_ulps(env)} ULP" in s


# ------------------------------------------------------------------ the grades one by one


def test_correctly_rounded_and_faithful():
    x = cast(np.linspace(-3, 3, 41), "float32")
    ex = reference.evaluate("softplus", x.astype(np.float64))
    r = ex.rounded("float32")
    j = judging.judge("softplus", [x], r.astype(np.float32), ex, "float32")
    assert j.grades == {"correctly_rounded": 41} and j.verdict("strict") == "pass"
    # the neighbour across the exact value, where it is 0.2-0.45 ULP from its rounding: 0.55-0.8 ULP
    u = ulp_of(ex.hi, "float32")
    d = (ex.hi - r + ex.lo) / u
    k = int(np.argmax((np.abs(d) > 0.2) & (np.abs(d) < 0.45)))
    assert 0.2 < abs(d[k]) < 0.45
    y = r.astype(np.float32)
    y[k] = np.nextafter(y[k], np.float32(np.inf) if d[k] > 0 else np.float32(-np.inf))
    j = judging.judge("softplus", [x], y, ex, "float32")
    assert j.ulp[k] == pytest.approx(1 - abs(d[k]), rel=1e-6)
    assert j.element_grades()[k] == "faithful" and j.grade == "faithful"
    assert j.grades == {"correctly_rounded": 40, "faithful": 1}


def test_nan_where_exact_is_finite_is_nonfinite():
    x = cast(np.array([0.5, 2.0]), "float32")
    y = np.array([np.nan, 0.0], dtype=np.float32)
    y[1] = float(reference.evaluate("sigmoid", x.astype(np.float64)).rounded("float32")[1])
    j = judging.judge("sigmoid", [x], y, None, "float32")
    assert list(j.element_grades()) == ["nonfinite", "correctly_rounded"]
    assert j.nonfinite[0] == "nan" and j.grade == "nonfinite"
    assert j.verdict("default") == "fail"
    assert "(nan) -> nonfinite" in j.explain("default")


def test_softmax_row_summing_to_1_1_is_invariant():
    z = np.zeros((2, 4), dtype=np.float32)
    y = np.full((2, 4), 0.25, dtype=np.float32)
    y[0, 3] = 0.35                                            # row 0 sums to 1.1
    j = judging.judge("softmax", [z], y, None, "float32")
    g = j.element_grades()
    assert g[0, 3] == "invariant"
    assert list(g[0, :3]) == ["correctly_rounded"] * 3 and list(g[1]) == ["correctly_rounded"] * 4
    assert any("do not sum to 1" in m and "1.1" in m for m in j.invariants)
    assert j.verdict("default") == "fail" and j.explain("default").endswith(")")


def test_row_sum_tolerance_and_bounds():
    from infoaudit.judging.invariants import row_sum_tolerance

    assert row_sum_tolerance(4, "float32") == (4 + 12) * 2.0 ** -24
    # a row off by 3 ULPs of 0.25 in each entry still sums within (n + c(n)) u: no violation
    z = np.zeros((1, 4), dtype=np.float32)
    y = np.full((1, 4), 0.25, dtype=np.float32) + np.float32(3 * 2.0 ** -25)
    assert not judging.check_invariants("softmax", [z], y, "float32").any
    # KL < 0 beyond any rounding on normalised rows (no reference needed); unnormalised rows skipped
    p = np.array([[0.5, 0.5], [0.9, 0.9]], dtype=np.float32)
    q = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    chk = judging.check_invariants("kl_divergence", [p, q], np.array([-0.1, -0.1]), "float32")
    assert list(chk.bound) == [True, False] and "not >= 0" in chk.messages[0]
    # with the exact values: judged where the exact value satisfies the bound
    ex = reference.evaluate("kl_divergence", p.astype(np.float64), q.astype(np.float64)).hi
    chk = judging.check_invariants("kl_divergence", [p, q], np.array([-0.1, -0.1]), "float32", exact=ex)
    assert list(chk.bound) == [True, True]
    # entropy above log n, logsumexp below max z
    chk = judging.check_invariants("entropy", [np.full((1, 4), 0.25, np.float32)], np.array([1.5]), "float32")
    assert chk.bound[0] and "<= log n" in chk.messages[0]
    chk = judging.check_invariants("logsumexp", [np.array([[3.0, 1.0]], np.float32)], np.array([2.5]), "float32")
    assert chk.bound[0]


def test_subnormal_result_flushed_to_zero():
    x = cast(np.array([-100.0, 0.0]), "float32")         # sigmoid(-100) = 3.7e-44: subnormal in float32
    ex = reference.evaluate("sigmoid", x.astype(np.float64))
    assert 0 < ex.hi[0] < FORMATS["float32"].tiny
    y = np.array([0.0, 0.5], dtype=np.float32)
    plain = judging.judge("sigmoid", [x], y, ex, "float32")
    assert plain.element_grades()[0] == "unstable"        # 26 subnormal ULPs, nothing forces them
    flushing = judging.judge("sigmoid", [x], y, ex, "float32", ftz=Probe(outputs=True))
    assert list(flushing.element_grades()) == ["flushed", "correctly_rounded"]
    assert flushing.verdict("default") == "pass" and flushing.verdict("strict") == "pass"
    assert "flushing platform" in flushing.explain("default")


def test_subnormal_input_read_as_zero():
    p = cast(np.array([2.0 ** -140, 0.5]), "float32")   # -log2(2^-140) = 140; a DAZ platform sees -log2(0)
    y = np.array([np.inf, 1.0], dtype=np.float32)
    plain = judging.judge("self_information_bits", [p], y, None, "float32")
    assert plain.element_grades()[0] == "nonfinite"
    daz = judging.judge("self_information_bits", [p], y, None, "float32", ftz=Probe(inputs=True))
    assert list(daz.element_grades()) == ["flushed", "correctly_rounded"]
    assert daz.notes and "read as zero" in daz.notes[0]


# ------------------------------------------------------------------ allowances and c(n)


def test_allowance_constant():
    assert [G.allowance_constant(n) for n in (1, 2, 3, 16, 17, 50257)] == [8, 10, 12, 16, 18, 40]


def test_conditioned_versus_envelope_bands():
    # log_softmax at z = [1000, 1000] float32: N = 1000 (the rounding of logsumexp is forced)
    z = np.array([[1000.0, 1000.0]], dtype=np.float32)
    ex = reference.evaluate("log_softmax", z.astype(np.float64))
    j = judging.judge("log_softmax", [z], np.array([[-0.69317627, -0.69317627]], np.float32), ex, "float32")
    assert j.N[0, 0] == pytest.approx(1000.0, rel=1e-12)
    assert j.ulp[0, 0] > 400 and j.grade == "conditioned" and j.verdict("strict") == "pass"


def test_grade_elements_for_a_gradient():
    # the core with caller-supplied scales: 3 ULPs off with N = 0 is within c(1) u |y*| = 4 ULP
    ex = reference.evaluate("sigmoid", np.array([0.0, 0.0]))       # exact 0.5, 0.5
    y = np.array([0.5, 0.5 + 3 * 2.0 ** -24])
    j = judging.grade_elements(y, ex, "float32", n=1, N=np.zeros(2), S=np.ones(2))
    assert list(j.element_grades()) == ["correctly_rounded", "conditioned"]
    j = judging.grade_elements(y + [0, 2.0 ** -18], ex, "float32", n=1, N=np.zeros(2), S=np.full(2, 64.0))
    assert list(j.element_grades()) == ["correctly_rounded", "envelope"]
    assert j.verdict("default") == "pass" and j.verdict("strict") == "fail"


def test_profiles_and_conventions():
    assert P.get("default").passing == "envelope" and P.get("strict").passing == "conditioned"
    assert P.passes("flushed", "strict") and not P.passes("unstable", "default")
    with pytest.raises(ValueError, match="profiles: default, strict"):
        P.get("lenient")
    # an all -inf softmax row: the exact value is undefined (NaN); a finite result is judged only by strict
    z = np.array([[-np.inf, -np.inf]], dtype=np.float32)
    j = judging.judge("softmax", [z], np.array([[0.0, 0.0]], np.float32), None, "float32")
    assert j.grade == "nonfinite" and j.undefined.all()
    assert j.verdict("default") == "pass" and j.verdict("strict") == "fail"
    assert "not judged under default" in j.explain("default")
    # an overflow next to the top of the range: tolerated by default (margin 4), not by strict
    mu = np.zeros((1, 2), np.float16)
    lv = cast(np.array([[math.log(80000.0), 0.0]]), "float16")
    ex = reference.evaluate("gaussian_kl", mu.astype(np.float64), lv.astype(np.float64))
    assert FORMATS["float16"].max / 4 < ex.hi[0] < FORMATS["float16"].max
    j = judging.judge("gaussian_kl", [mu, lv], np.array([np.inf], np.float16), ex, "float16")
    assert j.grade == "nonfinite" and j.verdict("default") == "pass" and j.verdict("strict") == "fail"


def test_merge_and_worst():
    a = {"correctly_rounded": 3, "envelope": 1}
    b = {"faithful": 2, "envelope": 1}
    assert G.merge_grades(a, b) == {"correctly_rounded": 3, "faithful": 2, "envelope": 2}
    assert G.worst_grade(G.merge_grades(a, b)) == "envelope"
    assert G.worst_grade({}) is None
    assert judging.format_ulps(2517.1) == "2,517" and judging.format_ulps(0.7) == "0.7"


def test_registry_tags_are_known_and_read_by_the_judge():
    from infoaudit.judging.tags import TAGS

    assert set(TAGS) <= set(quantities.TAGS)
    for name, q in quantities.REGISTRY.items():
        assert set(q.tags) <= set(quantities.TAGS), (name, q.tags)
        assert judging.tags(name) <= set(TAGS)
    assert "row_sums_to_one" in judging.tags("softmax")
    assert "nonnegative" in judging.tags("nll_loss") and "nonnegative" in judging.tags("rlhf_kl_penalty")


# ------------------------------------------------------------------ N against high-precision derivatives


def _mp_sensitivity(q, args, prec=800):
    """N by the exact gradient formulas at ``prec`` bits (Jacobian rows by one-hot cotangents for
    row outputs); 0 and non-finite inputs, and infinite partials, contribute nothing."""
    vals = quantities.validate(q, args)
    shape = quantities.output_shape(q, vals)
    if q.structure == quantities.ELEMENTWISE:
        vals = [np.broadcast_to(v, shape) if isinstance(v, np.ndarray) else v for v in vals]
    g = grad_formula(q.name)

    def mpv(v):
        if isinstance(v, list):
            return [mpv(x) for x in v]
        return v if isinstance(v, int) else mpmath.mpf(v)

    def flat(mu):
        xs = []
        for arg, v in zip(q.args, mu):
            if arg.is_float_array:
                if q.structure == quantities.TABLE_REDUCE:
                    xs += [x for row in v for x in row]
                elif isinstance(v, list):
                    xs += v
                else:
                    xs.append(v)
        return xs + [v for arg, v in zip(q.args, mu) if arg.is_scalar]

    def total(gs, xs):
        tot = mpmath.mpf(0)
        for gj, xj in zip(gs, xs):
            if xj == 0 or not mpmath.isfinite(xj) or mpmath.isinf(gj):
                continue
            if mpmath.isnan(gj):
                return mpmath.nan
            tot += abs(gj) * abs(xj)
        return tot

    out = []
    with mp.workprec(prec):
        for unit in quantities.units(q, vals):
            mu = [mpv(v) for v in unit]
            xs = flat(mu)
            if q.structure == quantities.ROW:
                n = len(mu[0])
                for i in range(n):
                    c = [mpmath.mpf(1) if k == i else mpmath.mpf(0) for k in range(n)]
                    out.append(total([v for v, _ in g(*mu, c)], xs))
            else:
                out.append(total([v for v, _ in g(*mu, mpmath.mpf(1))], xs))
    return np.array([float(v) for v in out]).reshape(shape)


NINF = -np.inf
_LOGITS = np.array([[0.0, -16.635532, 3.0, 1e4, 1e4 - 1], [NINF, 2.0, NINF, 5.0, -3.0],
                    [30.0, -30.0, 0.0, 29.9, 1e-3], [100.0, 0.0, 0.0, 0.0, 0.0], [0.1, 0.2, -0.3, 0.4, 0.5]])
_LOGITS2 = np.array([[0.5, -16.0, 3.1, 1e4, 1e4 - 2], [NINF, 2.5, NINF, 5.0, -3.5],
                     [30.0, -31.0, 0.1, 29.0, 1e-3], [100.0, 0.0, 0.0, 0.0, 1.0], [0.1, 0.2, -0.3, 0.4, 0.5]])
_PROBS = np.array([[1.0, 0, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [1e-40, 1 - 1e-7, 1e-7, 0, 0], [0.2] * 5,
                   [0.9999, 1e-4, 0, 0, 0]])
_PROBS2 = np.array([[0.9, 0.1, 0, 0, 0], [0.5, 0.5, 0, 0, 0], [1e-30, 1 - 1e-6, 1e-6, 0, 0],
                    [0.1, 0.3, 0.2, 0.2, 0.2], [0.9999, 1e-4, 0, 0, 0]])
_REAL = np.array([-100.0, -20.0, -1e-8, 0.0, 3e-5, 20.0, 88.0, -35.40625])
_PROB = np.array([0.0, 1e-40, 1e-7, 0.5, 1 - 2.0 ** -24, 0.999, 0.25, 0.9])
_T01 = np.array([0.0, 1.0, 0.3, 0.5, 1.0, 1.0, 0.0, 0.0003402233])


def _n_case(q):
    out = []
    for arg in q.args:
        k = arg.kind
        if k == quantities.LOGITS:
            out.append(_LOGITS2 if out else _LOGITS)
        elif k == quantities.LOGPROBS:
            out.append(np.where(_PROBS > 0, np.log(np.where(_PROBS > 0, _PROBS, 1.0)), NINF))
        elif k == quantities.PROBS:
            out.append(_PROBS2 if out else _PROBS)
        elif k == quantities.PROB:
            out.append(_PROB)
        elif k == quantities.TARGET01:
            out.append(_T01)
        elif k == quantities.REAL:
            out.append(_REAL)
        elif k == quantities.MU:
            out.append(np.tile([0.0, 1e-3, -2.0, 40.0, 0.1], (5, 1)))
        elif k == quantities.LOGVAR:
            out.append(np.tile([0.0, 1e-4, -1e-4, 30.0, -30.0], (5, 1)))
        elif k == quantities.TABLE:
            out.append(np.array([[[0.5, 0], [0, 0.5]], [[0.25, 0.25], [0.25, 0.25]], [[1 - 1e-9, 1e-9], [0, 0]],
                                 [[0.1, 0.2], [0.3, 0.4]], [[1, 0], [0, 0]]]))
        elif k == quantities.LABEL:
            out.append(np.array([0, 1, 1, 3, 4]))
        elif k == quantities.TEMPERATURE:
            out.append(0.5)
        elif k == quantities.EPS:
            out.append(0.1)
        elif k == quantities.BETA:
            out.append(0.3)
    return out


@pytest.mark.parametrize("name", [n for n, q in quantities.REGISTRY.items() if "value_only" not in q.tags])
def test_sensitivity_matches_high_precision_derivatives(name):
    q = quantities.get(name)
    args = _n_case(q)
    ex = reference.evaluate(q, *args)
    mine = judging.sensitivity(q, args, ex.hi)
    ref = _mp_sensitivity(q, args)
    judged = np.isfinite(ex.hi) & np.isfinite(ref)
    assert judged.sum() >= 3
    np.testing.assert_allclose(mine[judged], ref[judged], rtol=1e-9, atol=1e-300)
    assert np.isnan(mine[~np.isfinite(ex.hi)]).all()


def test_boundary_partials_contribute_nothing():
    # binary entropy at p = 1: d/dp = -inf at a finite input; no first-order bound, N = 0
    n = judging.sensitivity("binary_entropy_bits", [np.array([1.0, 0.5])])
    assert n[0] == 0 and n[1] == 0    # and at p = 1/2 the derivative log2((1 - p) / p) is 0


def test_float64_subnormals():
    # the correctly rounded value of a float64 subnormal result grades correctly_rounded
    x = np.array([-740.0])                                  # sigmoid(-740) = 4.2e-322
    ex = reference.evaluate("sigmoid", x)
    assert 0 < ex.hi[0] < FORMATS["float64"].tiny
    j = judging.judge("sigmoid", [x], ex.rounded("float64"), ex, "float64")
    assert j.grade == "correctly_rounded" and j.ulp[0] <= 0.5
    # N stays finite where a ratio with a subnormal denominator overflows float64
    P = np.array([[[1e-320, 0.5], [0.25, 0.25]]])
    p = np.array([1e-320, 0.3])
    for name, args in (("conditional_entropy", [P]), ("binary_entropy_bits", [p])):
        q = quantities.get(name)
        mine = judging.sensitivity(q, args)
        assert np.isfinite(mine).all()
        np.testing.assert_allclose(mine, _mp_sensitivity(q, args), rtol=1e-9)


# ------------------------------------------------------------------ S is the gate's table, one definition


def test_envelope_is_the_one_scale():
    """S has one definition (judging.scales.SCALES); the gate's profiles no longer carry a copy,
    nor their own invariant checker, unjudged mask or reduction length."""
    from infoaudit.gate import profiles

    for gone in ("SCALES", "scale", "GRAD_SCALES", "grad_scale", "invariant_violations", "unjudged_mask",
                 "reduction_length"):
        assert not hasattr(profiles, gone), gone
    assert set(judging.SCALES) == set(quantities.REGISTRY)
    assert set(judging.GRAD_SCALES) == {n for n, q in quantities.REGISTRY.items() if "value_only" not in q.tags}
    assert judging.scale_reason("nll_loss").startswith("S = 0")


@pytest.mark.parametrize("name", list(quantities.REGISTRY))
def test_envelope_is_finite_nonnegative_and_shaped_like_the_output(name):
    from infoaudit.probes import probes

    q = quantities.get(name)
    for _, args in probes(name, "float32"):
        vals = quantities.validate(q, args)
        with np.errstate(all="ignore"):
            s = judging.envelope(q, args)
        assert s.shape == quantities.output_shape(q, vals)
        assert np.all(np.isfinite(s)) and np.all(s >= 0)


def test_envelope_is_the_sum_of_term_magnitudes():
    p, q = np.array([[0.5, 0.5]]), np.array([[0.25, 0.75]])
    s = judging.envelope("kl_divergence", [p, q])[0]
    assert s == pytest.approx(0.5 * (abs(math.log(0.5)) + abs(math.log(0.25))) +
                              0.5 * (abs(math.log(0.5)) + abs(math.log(0.75))))
    mu = np.zeros((1, 1))
    near = judging.envelope("gaussian_kl", [mu, np.array([[1e-4]])])[0]
    assert near == pytest.approx(0.5 * (math.exp(1e-4) + 1 + 1e-4))  # ~1: forces ~u absolute error
    far = judging.envelope("gaussian_kl", [mu, np.array([[-50.0]])])[0]
    assert far == pytest.approx(0.5 * (math.exp(-50) + 1 + 50))


# ------------------------------------------------------------------ package hygiene


ALLOWED = {"infoaudit", "infoaudit.dtypes", "infoaudit.quantities", "infoaudit.reference",
           "infoaudit.judging.metrics", "infoaudit.harness.ftz"}


def test_judging_imports_only_its_foundations():
    root = os.path.join(os.path.dirname(judging.__file__))
    for fname in sorted(os.listdir(root)):
        if not fname.endswith(".py"):
            continue
        tree = ast.parse(open(os.path.join(root, fname), encoding="utf-8").read())
        names = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets)]
        assert names, f"{fname} has no __all__"
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = "infoaudit.judging" if node.level == 1 else "infoaudit"
                mod = f"{base}.{node.module}" if node.module else base
                if mod.startswith("infoaudit.judging"):
                    assert not any(a.name.startswith("_") for a in node.names), (fname, node.module)
                    continue
                assert mod in ALLOWED or any(f"{mod}.{a.name}" in ALLOWED for a in node.names), (fname, mod)
                assert not any(a.name.startswith("_") for a in node.names), (fname, mod)


def test_compare_carries_the_one_judges_grade_and_why():
    """infoaudit.compare's summary is the judge's: the issue's two torch cases, through the backend."""
    pytest.importorskip("torch")
    import infoaudit

    c = infoaudit.compare("logsumexp", "torch", np.array([[0.0, -16.635532]]), dtype="float32")
    s = c.summary
    assert (s["grade"], s["verdict"]) == ("envelope", "pass") and "-> envelope" in s["why"]
    assert c.verdict_summary("strict")["verdict"] == "fail"
    c = infoaudit.compare("binary_cross_entropy_with_logits", "torch", np.array([-35.4]), np.array([0.0003402]),
                          dtype="float16")
    assert (c.summary["grade"], c.summary["verdict"]) == ("unstable", "fail")

"""Exact derivatives: closed forms (reference.derivatives) vs mpmath numerical differentiation.

For every quantity with float inputs, every float argument (arrays and the scalar T / eps / beta)
and every entry, d/dx_k sum_i c_i f_i(x) is computed by ``mpmath.diff`` of the *forward* exact
formula at 40 significant digits and compared with the correctly rounded closed-form VJP.
Then the edge-case conventions (DESIGN "Gradients"), exact zeros and certification.
"""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from mpmath import mp

from infoaudit import quantities as Q
from infoaudit.reference import derivatives as D
from infoaudit.reference.formulas import formula

NAMES = [n for n, q in Q.REGISTRY.items() if "value_only" not in q.tags]  # value-only: no exact derivative


def _inputs(q, seed=0, b=2, n=4):
    rng = np.random.default_rng(seed + 17 * NAMES.index(q.name))
    out = []
    for a in q.args:
        k = a.kind
        if k in (Q.LOGITS, Q.REAL, Q.MU, Q.LOGVAR, Q.LOGPROBS):
            shape = (b,) if q.structure == Q.ELEMENTWISE else (b, n)
            v = rng.normal(size=shape) * 3 + 0.25  # away from 0 (branch points of the formulas)
            out.append(-np.abs(v) if k == Q.LOGPROBS else v)
        elif k == Q.PROBS:
            v = rng.random((b, n)) + 0.05
            out.append(v / v.sum(-1, keepdims=True))
        elif k in (Q.PROB, Q.TARGET01):
            out.append(rng.random(b) * 0.9 + 0.05)
        elif k == Q.TABLE:
            v = rng.random((b, 2, 3)) + 0.05
            out.append(v / v.sum((-2, -1), keepdims=True))
        elif k == Q.LABEL:
            out.append(np.arange(b, dtype=np.int64) % n)
        elif k == Q.TEMPERATURE:
            out.append(2.5)
        elif k == Q.EPS:
            out.append(0.1)
        elif k == Q.BETA:
            out.append(0.7)
    return out


def _cotangent(q, shape, seed):
    rng = np.random.default_rng(seed)
    return np.round(rng.normal(size=shape) * 8) / 8 + 0.0625  # dyadic, nonzero


def _objective(q, units, cots):
    """sum_units sum_i c_i f_i(unit) with the forward exact formula at the current precision."""
    total = mpmath.mpf(0)
    for unit, cu in zip(units, cots):
        vals = formula(q.name)(*[D.to_mp(v) for v in unit])
        cs = cu if isinstance(cu, (list, tuple)) else [cu]
        for (v, _), ci in zip(vals, cs):
            total += mpmath.mpf(ci) * v
    return total


def _numeric_grad(q, vals, cot):
    """{arg name: float64 array} by mpmath.diff of the forward formula, 40 digits."""
    shape = Q.output_shape(q, vals)
    cots = D.cot_units(q, cot, shape)
    out = {}
    with mp.workdps(40):
        for i in D.differentiable_args(q):
            arg = q.args[i]
            if arg.is_scalar:
                def f(t, i=i):
                    vv = list(vals)
                    vv[i] = t
                    return _objective(q, list(_units(q, vv)), cots)
                out[arg.name] = np.array(float(mpmath.diff(f, mpmath.mpf(vals[i]))))
                continue
            arr = vals[i]
            g = np.zeros(arr.shape)
            for idx in np.ndindex(*arr.shape):
                def f(t, idx=idx, i=i):
                    vv = list(vals)
                    a = vv[i].astype(object)
                    a[idx] = t
                    vv[i] = a
                    return _objective(q, list(_units(q, vv)), cots)
                g[idx] = float(mpmath.diff(f, mpmath.mpf(float(arr[idx]))))
            out[arg.name] = g
    return out


def _units(q, vals):
    """quantities.units for object arrays holding one mpf (the perturbed entry)."""
    shape = Q.output_shape(q, [np.asarray(v, dtype=float) if isinstance(v, np.ndarray) else v for v in vals])
    if q.structure == Q.ELEMENTWISE:
        for idx in np.ndindex(*shape):
            yield tuple(v[idx] if isinstance(v, np.ndarray) else v for v in vals)
        return
    lead = shape if q.structure != Q.ROW else shape[:-1]
    for idx in np.ndindex(*lead):
        unit = []
        for arg, v in zip(q.args, vals):
            if arg.is_float_array:
                unit.append(np.asarray(v[idx], dtype=object).tolist())
            elif arg.kind == Q.LABEL:
                unit.append(int(v[idx]))
            else:
                unit.append(v)
        yield tuple(unit)


@pytest.mark.parametrize("name", NAMES)
def test_closed_form_matches_numerical_derivative(name):
    q = Q.get(name)
    args = _inputs(q)
    vals, shape, _ = D.prepare(q, args)
    cot = _cotangent(q, shape, seed=NAMES.index(name))
    exact = D.vjp(name, *args, cotangent=cot)
    num = _numeric_grad(q, vals, cot)
    assert set(exact) == set(num) == {q.args[i].name for i in D.differentiable_args(q)}
    for arg, ex in exact.items():
        assert not ex.undecided.any(), arg
        want = num[arg]
        err = np.abs(ex.hi - want)
        tol = 2.0 ** -50 * np.maximum(np.abs(want), 1e-300) + 1e-300
        assert (err <= tol).all(), (name, arg, ex.hi, want)


@pytest.mark.parametrize("name", NAMES)
def test_default_cotangent(name):
    q = Q.get(name)
    args = _inputs(q, seed=3)
    vals, shape, c = D.prepare(q, args)
    if q.structure == Q.ROW:
        assert not np.all(c == 1) and np.all(c * 4 == np.round(c * 4))
    else:
        assert np.all(c == 1)
    ex = D.vjp(name, *args)
    for i in D.differentiable_args(q):
        a = q.args[i]
        assert ex[a.name].shape == (() if a.is_scalar else vals[i].shape)


def _g(name, *args, c=None):
    return {k: v.hi for k, v in D.vjp(name, *args, cotangent=c).items()}


NINF = -math.inf


def test_all_masked_row_gradient_is_zero():
    z = np.array([[NINF, NINF, NINF], [0.0, 1.0, NINF]])
    for name in ("softmax", "log_softmax", "logsumexp"):
        g = _g(name, z)["z"]
        assert np.array_equal(g[0], np.zeros(3)), name
        assert np.isfinite(g).all()
    assert np.array_equal(_g("cross_entropy", z, np.array([0, 1]))["z"][0], np.zeros(3))
    g = _g("label_smoothing_cross_entropy", z[:1], np.array([0]), 0.1)
    assert np.array_equal(g["z"], np.zeros((1, 3))) and g["eps"] == 0
    g = _g("distillation_loss", z[:1], np.array([[0.0, 1.0, 2.0]]), 2.0)
    assert not any(np.any(v) for v in g.values())


def test_masked_entries():
    z = np.array([[0.0, NINF, 1.0]])
    assert _g("logsumexp", z)["z"][0, 1] == 0
    assert _g("softmax", z)["z"][0, 1] == 0
    c = np.array([[0.5, -0.75, 1.0]])
    g = _g("log_softmax", z, c=c)["z"]
    assert g[0, 1] == -0.75  # limit of c_j - p_j sum(c) as z_j -> -inf
    assert _g("cross_entropy", z, np.array([2]))["z"][0, 1] == 0
    # masked target: d/dz_y (lse - z_y) -> -1
    assert _g("cross_entropy", z, np.array([1]))["z"][0, 1] == -1
    # target holds all the mass: p_y = 1 exactly, gradient exactly 0
    assert np.array_equal(_g("cross_entropy", np.array([[NINF, 3.0]]), np.array([1]))["z"], [[0.0, 0.0]])


def test_nan_and_plus_inf_rows():
    g = _g("logsumexp", np.array([[0.0, math.nan, 1.0], [0.0, math.inf, 1.0]]))["z"]
    assert np.isnan(g).all()


def test_probability_boundaries():
    g = _g("entropy", np.array([[0.0, 0.25, 0.75]]))["p"]
    assert g[0, 0] == math.inf and np.isfinite(g[0, 1:]).all()
    g = _g("kl_divergence", np.array([[0.0, 0.5, 0.5]]), np.array([[0.5, 0.5, 0.0]]))
    assert g["p"][0, 0] == -math.inf and g["q"][0, 0] == 0      # p = 0 < q
    assert g["p"][0, 2] == math.inf and g["q"][0, 2] == -math.inf  # q = 0 < p
    assert g["p"][0, 1] == 1.0 and g["q"][0, 1] == -1.0         # log(1) + 1, -p/q
    g = _g("binary_cross_entropy", np.array([0.0, 0.5, 1.0, 0.3]), np.array([0.0, 0.2, 1.0, 0.3]))
    assert g["p"].tolist()[:3] == [1.0, 1.2, -1.0] and g["p"][3] == 0  # p = t: exactly 0
    assert g["t"][0] == math.inf and g["t"][1] == 0 and g["t"][2] == -math.inf
    assert _g("binary_entropy_bits", np.array([0.5, 0.0]))["p"].tolist() == [0.0, math.inf]
    g = _g("cross_entropy_probs", np.array([[0.0, 1.0]]), np.array([[0.0, 1.0]]))
    assert g["p"].tolist() == [[math.inf, 0.0]] and g["q"].tolist() == [[0.0, -1.0]]
    g = _g("conditional_entropy", np.array([[[0.0, 0.5], [0.0, 0.0]]]))["P"]
    assert g.tolist() == [[[math.inf, 0.0], [0.0, 0.0]]]


def test_elementwise_limits():
    x = np.array([-math.inf, 0.0, math.inf])
    assert _g("sigmoid", x)["x"].tolist() == [0.0, 0.25, 0.0]
    assert _g("softplus", x)["x"].tolist() == [0.0, 0.5, 1.0]
    assert _g("log_sigmoid", x)["x"].tolist() == [1.0, 0.5, 0.0]
    g = _g("binary_cross_entropy_with_logits", np.array([0.0, math.inf, 2.0]), np.array([0.5, 0.25, 1.0]))
    assert g["z"][0] == 0 and g["z"][1] == 0.75 and g["t"].tolist() == [-0.0, -math.inf, -2.0]
    # tiny gradients are not flushed: softplus'(-100) = sigmoid(-100) ~ 3.7e-44
    assert _g("softplus", np.array([-100.0]))["x"][0] == pytest.approx(3.720075976020836e-44, rel=1e-15)
    g = _g("gaussian_kl", np.array([[0.0, 2.0]]), np.array([[0.0, NINF]]))
    assert g["mu"].tolist() == [[0.0, 2.0]] and g["logvar"].tolist() == [[0.0, -0.5]]


def test_exact_zeros_are_proved():
    # ties: sum_i p_i (c_j - c_i) = 0 exactly for j = 2 when the tied group's mean c equals c_2
    g = D.vjp("softmax", np.array([[0.0, 0.0, 5.0]]), cotangent=np.array([[1.0, 3.0, 2.0]]))["z"]
    assert g.hi[0, 2] == 0 and g.hi[0, 0] != 0 and not g.undecided.any()
    g = _g("log_softmax", np.array([[1.5, 1.5]]), c=np.array([[2.0, 2.0]]))["z"]
    assert g.tolist() == [[0.0, 0.0]]
    # distillation: zt - zs constant -> loss identically 0 -> every gradient exactly 0
    zs = np.array([[0.5, -1.0, 3.0]])
    g = D.vjp("distillation_loss", zs, zs + 3.0, 2.0)
    assert all(not np.any(v.hi) and not v.undecided.any() for v in g.values())
    # permutation: pt_j = ps_j for j = 0 though zt != zs + const
    g = D.vjp("distillation_loss", np.array([[0.0, 2.0, 1.0]]), np.array([[0.0, 1.0, 2.0]]), 1.0)
    assert g["zs"].hi[0, 0] == 0 and g["zs"].hi[0, 1] != 0 and not g["zs"].undecided.any()
    # label smoothing: equal logits, eps = 1 -> p = t = 1/K
    g = _g("label_smoothing_cross_entropy", np.array([[2.0, 2.0, 2.0, 2.0]]), np.array([1]), 1.0)
    assert not np.any(g["z"])


def test_confident_target_is_not_cancelled():
    # d CE / dz_y = p_y - 1 = -sum_{i != y} p_i = -2 e^-40 / (1 + 2 e^-40), not 0 (softmax - onehot
    # in float64 gives 0 here)
    g = _g("cross_entropy", np.array([[40.0, 0.0, 0.0]]), np.array([0]))["z"]
    e = mpmath.exp(-40)
    assert g[0, 0] == float(-2 * e / (1 + 2 * e)) and g[0, 0] != 0


def test_scalar_argument_gradient_is_summed_over_rows():
    z = np.array([[0.5, -1.0, 3.0], [1.0, 2.0, -2.0]])
    one = [float(D.vjp("label_smoothing_cross_entropy", z[i:i + 1], np.array([0]), 0.2)["eps"].hi) for i in range(2)]
    both = float(D.vjp("label_smoothing_cross_entropy", z, np.array([0, 0]), 0.2)["eps"].hi)
    assert both == pytest.approx(sum(one), rel=1e-15)
    assert one[0] == pytest.approx(0.5 - (0.5 - 1 + 3) / 3, rel=1e-15)  # z_y - mean(z)


def test_rounded_once_to_narrow_dtypes():
    g = D.vjp("sigmoid", np.array([3.0]))["x"]
    with mp.workdps(50):
        x = mpmath.mpf(3)
        s = 1 / (1 + mpmath.exp(-x))
        exact = s * (1 - s)
    from infoaudit.dtypes import round_mpf
    for d in ("float16", "bfloat16", "float32", "float64"):
        assert g.rounded(d)[0] == round_mpf(exact, d)

"""The reference against independent arb ball arithmetic: zero wrong roundings allowed.

Every quantity of the registry on random moderate and extreme inputs; every float64 ``hi`` and
every ``rounded(dtype)`` (float16, bfloat16, float32) must be the rounding of a value inside an
arb enclosure that decides it. Plus closed forms.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("flint")

from infoaudit import quantities as Q  # noqa: E402
from infoaudit import reference  # noqa: E402
from infoaudit.reference import arb_check as ac  # noqa: E402

INF, NAN = math.inf, math.nan
F32 = np.float32


def _assert_certified(name, *args):
    ref = reference.evaluate(name, *args)
    res = ac.check(name, *args, ref=ref)
    assert res.n_wrong == 0, f"{res.summary()}; first wrong: {res.wrong[:5]}"
    und = np.asarray(ref.undecided).reshape(-1) if ref.undecided is not None else None
    for i, d, _ in res.undecided:
        # arb may only fail to decide where the exact value sits on a boundary that the
        # reference also could not prove (flagged undecided there)
        assert und is not None and und[i], f"{name}: arb undecided at {i} ({d}) but the reference claims it"
    return res


# ---------------------------------------------------------------- inputs


def _rng(seed=0):
    return np.random.default_rng(seed)


def _probs(rng, B, n, dtype=F32):
    x = rng.random((B, n)) ** 3
    x[rng.random((B, n)) < 0.15] = 0.0
    x[:, 0] += 1e-3
    return (x / x.sum(-1, keepdims=True)).astype(dtype)


def moderate_args(q, rng, B=3, n=6):
    out = []
    for a in q.args:
        k = a.kind
        if k in (Q.LOGITS, Q.LOGPROBS, Q.REAL, Q.MU, Q.LOGVAR):
            shape = (B * n,) if q.structure == Q.ELEMENTWISE else (B, n)
            v = rng.standard_normal(shape) * 4
            if k == Q.LOGPROBS:
                v = -np.abs(v)
            out.append(v.astype(F32))
        elif k == Q.PROBS:
            out.append(_probs(rng, B, n))
        elif k in (Q.PROB, Q.TARGET01):
            out.append(rng.random(B * n).astype(F32))
        elif k == Q.TABLE:
            t = rng.random((B, 3, 4))
            out.append((t / t.sum((-1, -2), keepdims=True)).astype(F32))
        elif k == Q.LABEL:
            out.append(rng.integers(0, n, B))
        elif k == Q.TEMPERATURE:
            out.append(2.0)
        elif k == Q.EPS:
            out.append(0.1)
        elif k == Q.BETA:
            out.append(0.05)
    return out


EXTREME_LOGIT_ROWS = [
    [1e4, -1e4, 0.0, 3e4],
    [3.0e38, -3.0e38, 0.0, 1.0],
    [65504.0, -65504.0, 0.0, 1.0],
    [69.07755279, 0.0, -1.0, -2.0],        # dominant class: p = 1 - 1e-30
    [0.0, -745.0, -740.0, -1000.0],        # subnormal / underflowing probabilities
    [-INF, 0.0, 1.0, 2.0],                 # mask
    [-INF, -INF, -INF, -INF],              # fully masked
    [5.0, 5.0, 5.0, 5.0],                  # ties
    [1e-30, -1e-30, 0.0, 1e-45],
    [-1e4, -1e4 + 1, -1e4 + 2, -1e4 + 3],  # large negative, shift-invariant
    [700.0, 0.0, -700.0, 0.5],
    [INF, 0.0, 1.0, 2.0],
    [NAN, 0.0, 1.0, 2.0],
]
EXTREME_REALS = [-1e4, -800.0, -745.0, -710.0, -100.0, -40.0, -1e-30, -0.0, 0.0, 1e-30, 1e-45, 0.5, 17.0,
                 36.7, 40.0, 88.0, 710.0, 745.0, 800.0, 1e4, 3.0e38, -3.0e38, INF, -INF, NAN]
EXTREME_PROBS = [
    [1.0, 0.0, 0.0, 0.0],
    [1e-45, 1.0 - 1e-7, 1e-7 - 1e-45, 0.0],
    [0.25, 0.25, 0.25, 0.25],
    [1e-38, 1e-30, 0.5, 0.5],
    [0.9, 0.1, 0.0, 0.0],
    [1e-20, 1e-25, 1e-30, 1.0],
]
EXTREME_PROB = [0.0, 1e-38, 1e-30, 1e-7, 0.1, 0.5, 0.9, 1.0 - 2.0 ** -24, 1.0]


def extreme_args(q):
    """A handful of extreme inputs for q (float32)."""
    n = 4
    k0 = q.args[0].kind
    if q.structure == Q.ELEMENTWISE:
        if k0 == Q.REAL:
            x = np.array(EXTREME_REALS, dtype=F32)
            if len(q.args) == 2:  # (z, t)
                t = np.resize(np.array([0.0, 1.0, 0.5, 0.25, 1e-30], dtype=F32), x.shape)
                return [x, t]
            return [x]
        p = np.array(EXTREME_PROB + [float(np.nextafter(F32(1), F32(0)))], dtype=F32)
        if len(q.args) == 2:
            t = np.resize(np.array([0.0, 1.0, 0.5, 1e-30], dtype=F32), p.shape)
            return [p, t]
        return [p]
    if q.structure == Q.TABLE_REDUCE:
        P = np.array([[[0.25, 0.25], [0.25, 0.25]], [[0.5, 0.0], [0.0, 0.5]], [[1.0, 0.0], [0.0, 0.0]],
                      [[1e-30, 0.5], [0.5 - 1e-30, 0.0]]], dtype=F32)
        return [P]
    if k0 == Q.LOGITS:
        z = np.array(EXTREME_LOGIT_ROWS, dtype=F32)
        B = z.shape[0]
        rest = []
        for a in q.args[1:]:
            if a.kind == Q.LABEL:
                rest.append(np.array([i % n for i in range(B)], dtype=np.int64))
            elif a.kind == Q.LOGITS:
                zt = z.astype(np.float64) + 3.0  # zs = zt + c
                zt[::3] = np.array(EXTREME_LOGIT_ROWS[::-1], dtype=np.float64)[: len(zt[::3])]
                rest.append(zt.astype(F32))
            elif a.kind == Q.TEMPERATURE:
                rest.append(4.0)
            elif a.kind == Q.EPS:
                rest.append(0.1)
            elif a.kind == Q.BETA:
                rest.append(0.1)
        return [z] + rest
    if k0 == Q.LOGPROBS:
        return [np.array([[-1e30, 0.0, -1e-30, -INF]], dtype=F32), np.array([2])]
    if k0 == Q.PROBS:
        p = np.array(EXTREME_PROBS, dtype=F32)
        if len(q.args) == 2:
            return [p, p[::-1].copy()] if q.name != "kl_divergence" else [p, p.copy()]
        return [p]
    if k0 == Q.MU:
        mu = np.array([[0.0, 0.0], [1e15, 0.0], [1e-20, 3.0], [0.0, 0.0]], dtype=F32)
        lv = np.array([[0.0, 0.0], [-1000.0, 0.0], [1e-30, -1e-30], [88.0, -88.0]], dtype=F32)
        return [mu, lv]
    raise AssertionError(q.name)


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("name", list(Q.REGISTRY))
def test_moderate_random_inputs(name):
    q = Q.REGISTRY[name]
    _assert_certified(name, *moderate_args(q, _rng(hash(name) % 1000)))


@pytest.mark.parametrize("name", list(Q.REGISTRY))
def test_extreme_inputs(name):
    q = Q.REGISTRY[name]
    args = extreme_args(q)
    _assert_certified(name, *args)


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "cross_entropy"])
def test_long_extreme_rows_float16_and_float32(name):
    rng = _rng(7)
    for dt, big in ((np.float16, 6e4), (F32, 1e4)):
        with np.errstate(over="ignore"):
            z = (rng.standard_normal((4, 200)) * np.array([[1.0], [30.0], [300.0], [big]])).astype(dt)
        z[0, :5] = -np.inf
        args = (z, rng.integers(0, 200, 4)) if name == "cross_entropy" else (z,)
        _assert_certified(name, *args)


def test_p_equals_q_and_shift_are_exact_zero():
    p = _probs(_rng(1), 3, 5)
    r = reference.evaluate("kl_divergence", p, p)
    assert np.all(r.hi == 0) and np.all(r.lo == 0)
    zt = (np.round(np.random.default_rng(2).standard_normal((3, 5)) * 256) / 64).astype(F32)
    zs = zt + F32(1.5)  # exact shift
    for name, args in (("distillation_loss", (zs, zt, 2.0)), ("rlhf_kl_penalty", (zs, zt, 0.3))):
        r = reference.evaluate(name, *args)
        assert np.all(r.hi == 0), name
    r = reference.evaluate("gaussian_kl", np.zeros((2, 3), F32), np.zeros((2, 3), F32))
    assert np.all(r.hi == 0)


def _mp_round(x, dtype):
    import mpmath

    return ac.round_exact(mpmath.mpf(x), ac.FORMATS[dtype])


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 1000])
def test_closed_forms_uniform(n):
    import mpmath

    z = np.full((1, n), 2.5, dtype=F32)
    sm = reference.evaluate("softmax", z)
    lse = reference.evaluate("logsumexp", z)
    with mpmath.workprec(300):
        inv, logn = mpmath.mpf(1) / n, mpmath.log(n)
        for d in ("float16", "bfloat16", "float32", "float64"):
            assert sm.rounded(d)[0, 0] == _mp_round(inv, d)  # softmax of equal logits = 1/n
            assert lse.rounded(d)[0] == _mp_round(2.5 + logn, d)  # logsumexp = z + log n
            if n & (n - 1) == 0:  # 1/n exact: entropy of uniform = log n nats = log2 n bits
                p = np.full((1, n), 1.0 / n)
                assert reference.evaluate("entropy", p).rounded(d)[0] == _mp_round(logn, d)
                assert reference.evaluate("entropy_bits", p).rounded(d)[0] == math.log2(n)


def test_closed_forms_scalars():
    assert reference.evaluate("sigmoid", np.array([0.0])).hi[0] == 0.5
    assert reference.evaluate("binary_entropy_bits", np.array([0.5])).hi[0] == 1.0
    assert reference.evaluate("binary_entropy_bits", np.array([0.0, 1.0])).hi.tolist() == [0.0, 0.0]
    assert reference.evaluate("self_information_bits", np.array([0.25, 1.0, 0.0])).hi.tolist() == [2.0, 0.0, INF]
    assert reference.evaluate("softplus", np.array([0.0])).hi[0] == math.log(2)
    # biased coin 0.9 / 0.1 -> 0.469 bits (seed example)
    assert abs(reference.evaluate("binary_entropy_bits", np.array([0.9])).hi[0] - 0.4689955935892812) < 1e-15
    # softplus(-800) = log1p(e^-800) ~ e^-800 rounds to 0 in float64 (below half the smallest subnormal)
    assert reference.evaluate("softplus", np.array([-800.0])).hi[0] == 0.0
    assert reference.evaluate("softplus", np.array([-700.0])).hi[0] == math.exp(-700.0)


def test_dominant_class_log_softmax():
    z = np.array([[69.07755278982137, 0.0]])  # p = 1 / (1 + e^-69.08) = 1 - 1e-30
    r = _assert_certified("log_softmax", z)
    ls = reference.evaluate("log_softmax", z)
    assert ls.hi[0, 0] < 0 and abs(ls.hi[0, 0] + 1e-30) < 1e-40  # -log1p(e^-69.0776) ~ -1e-30
    assert reference.evaluate("softmax", z).hi[0, 0] == 1.0
    assert r.n_wrong == 0


def test_remainder_below_smallest_subnormal_keeps_its_sign():
    # CE = (m - z_y) + log1p(e^-1001.00003); m - z_y = 1001 + 2^-15 is a float32 midpoint
    z = np.array([[2.0 ** -15, -1001.0]], dtype=F32)
    res = ac.check("cross_entropy", z, np.array([1]), ref=reference.evaluate_mpmath("cross_entropy", z, np.array([1])))
    assert res.n_wrong == 0, res.wrong


@pytest.mark.parametrize("name,args", [
    ("binary_entropy_bits", (np.array([1e-45], dtype=F32),)),      # H = p (log2(1/p) + 1/ln 2)
    ("binary_cross_entropy", (np.array([1e-45], dtype=F32), np.array([0.0], dtype=F32))),  # = p
])
def test_tiny_p_keeps_the_one_minus_p_term(name, args):
    _assert_certified(name, *args)


def test_round_mpf_far_below_range():
    # sigmoid(-3e38) = exp(-3e38) rounds to +0 in every format; +inf sits far above every range
    ex = reference.evaluate_mpmath("sigmoid", np.array([-3.0e38, 3.0e38], dtype=F32))
    assert ex.hi.tolist() == [0.0, 1.0]
    assert ex.rounded("float16").tolist() == [0.0, 1.0]


def test_round_exact_avoids_default_precision_double_rounding():
    import mpmath

    with mpmath.workprec(200):
        x = mpmath.mpf(1) + mpmath.mpf(2) ** -24 + mpmath.mpf(2) ** -60
    assert ac.round_exact(x, ac.FORMATS["float32"]) == 1.0 + 2.0 ** -23


@pytest.mark.slow
@pytest.mark.parametrize("name", list(Q.REGISTRY))
def test_bigger_random_sweep(name):
    q = Q.REGISTRY[name]
    for seed in range(5):
        _assert_certified(name, *moderate_args(q, _rng(100 + seed), B=20, n=16))

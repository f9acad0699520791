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


def large_vocab_args(q, rng, B, n, extreme=False, dtype=np.float64):
    """Arguments of sampled_softmax_cross_entropy / adaptive_log_softmax (None for the others):
    B rows of n logits with K = n // 2 + 1 samples and a Zipf log q; or h (B, n) with S = 3,
    tails of 4 and 2 classes through projections of n // 2 and n // 4 (at least 1)."""
    if q.name == "sampled_softmax_cross_entropy":
        scale = np.array([1.0, 30.0, 1e3, 1e30])[np.arange(B) % 4][:, None] if extreme else 4.0
        z = rng.standard_normal((B, n)) * scale
        if extreme:
            z[::3, 0] = -np.inf
        y = rng.integers(0, n, B).astype(np.int64)
        smp = rng.integers(0, n, (B, n // 2 + 1)).astype(np.int64)
        smp[::2, 0] = y[::2]  # accidental hits
        lw = -np.log(np.arange(1, n + 1))
        lq = np.broadcast_to(lw - np.log(np.exp(lw).sum()), (B, n)).copy()
        return [z.astype(dtype), y, smp, lq.astype(dtype)]
    if q.name == "adaptive_log_softmax":
        shapes = [(5, n), (max(1, n // 2), n), (4, max(1, n // 2)), (max(1, n // 4), n), (2, max(1, n // 4))]
        h = rng.standard_normal((B, n)) * (np.array([1.0, 30.0, 300.0, 1e-3])[np.arange(B) % 4][:, None] if extreme else 1.0)
        return [h.astype(dtype)] + [rng.uniform(-1, 1, s).astype(dtype) for s in shapes]
    return None


def moderate_args(q, rng, B=3, n=6):
    special = large_vocab_args(q, rng, B, n)
    if special is not None:
        return special
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
    special = large_vocab_args(q, np.random.default_rng(11), 8, 8, extreme=True, dtype=F32)
    if special is not None:
        return special
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


def _certified_and_decided(name, *args):
    """Reference decided everywhere (no undecided flag) and arb decides and agrees everywhere."""
    ref = reference.evaluate(name, *args)
    assert not np.asarray(ref.undecided).any(), f"{name}: reference undecided"
    res = ac.check(name, *args, ref=ref)
    assert res.n_wrong == 0 and res.undecided == [], res.summary()
    return ref


# z_1 - m = -(2^33 + 2^10 - 3 * 2^-20) is a float64 midpoint (54 significant bits); the exact value
# lies beyond it by log1p(e^-8.6e9), so it rounds *away* from the tie-to-even neighbour. Such
# elements were flagged undecided: engine._decided rounded the ends of the error interval at the
# working precision, back onto the midpoint.
TIE_ROW = np.array([[2.0 ** 33 + 2.0 ** 10, 3 * 2.0 ** -20]], dtype=F32)
TIE_ABS = 2.0 ** 33 + 2.0 ** 10 - 2.0 ** -19  # the odd neighbour (ties-to-even would pick - 2^-18)


def test_float64_tie_plus_tiny_correction_is_decided():
    for ex in (reference.evaluate("log_softmax", TIE_ROW), reference.evaluate_mpmath("log_softmax", TIE_ROW)):
        assert not ex.undecided.any()
        assert ex.hi[0, 1] == -TIE_ABS
    _certified_and_decided("log_softmax", TIE_ROW)
    ce = _certified_and_decided("cross_entropy", TIE_ROW, np.array([1]))
    assert ce.hi[0] == TIE_ABS


def test_bce_with_logits_has_no_softplus_minus_tz_cancellation():
    # softplus(z) - t z = (1 - t) z + log1p(e^-z) for z > 0, -t z + log1p(e^z) otherwise
    z = np.array([1.196937196089674e+38, 391604850393088.0, -162462711808.0, 2.2300349e19], dtype=F32)
    t = np.array([1.0, 0.007607049774378538, 1.6815581571897805e-44, 1.0], dtype=F32)
    ref = _certified_and_decided("binary_cross_entropy_with_logits", z, t)
    assert ref.hi[0] == 0.0 and math.copysign(1, ref.hi[0]) == 1  # e^-1.2e38 > 0 rounds to +0
    assert ref.lo[0] > 0  # ... and its remainder keeps the sign


def test_softplus_of_a_bfloat16_midpoint_rounds_up():
    # x = 2^100 (1 + 2^-8) is a bfloat16 tie (ties-to-even: 2^100); softplus(x) = x + e^-1.3e30
    # lies beyond it, log_sigmoid(-x) = -softplus(x) too. Both were undecided at MAX_PREC (and
    # log_sigmoid's negation rounded the reference's x + tiny stand-in back onto the tie)
    x = np.array([2.0 ** 100 * (1 + 2.0 ** -8)], dtype=F32)
    for name, arg, sign in (("softplus", x, 1), ("log_sigmoid", -x, -1)):
        ref = _certified_and_decided(name, arg)
        assert ref.hi[0] == sign * float(x[0])
        assert ref.rounded("bfloat16")[0] == sign * 2.0 ** 100 * (1 + 2.0 ** -7), name


def test_kl_of_logits_student_mass_where_teacher_has_none():
    # T = 0.7, student dominant at a logit gap ~1.2e4 where the teacher is not: in the
    # shift-invariant form 1 + sum pb expm1(e) ~ e^-17455, which arb cannot separate from 0 below
    # ~25,000 bits (it reported these as undecided at 4,096); arb_check keeps the narrower of that
    # ball and the direct sum pa (la - lb), which is tight here.
    zs = np.array([[12218.96875, 0.0, -18.65822410583496],
                   [7145.033203125, -580.42529296875, 331.6971130371094]], dtype=F32)
    zt = np.array([[-774.2650756835938, 114.59814453125, 0.0],
                   [1.0033259391784668, -7.910557270050049, 477.5669250488281]], dtype=F32)
    ref = _certified_and_decided("distillation_loss", zs, zt, 0.7)
    assert ref.hi[0] > 8000 and ref.hi[1] > 4000


def test_kl_of_logits_full_float32_range():
    # logit gaps ~6e38 / T: arb_check used to abort the process inside GMP (an exact mpmath sum of
    # a ball's mid and radius ~5.8e31 binary orders apart, in ball_ends)
    inf = math.inf
    zs = np.array([[4.535502910614014, -487.32147216796875, 4.17169500009608e+18, -25.33165740966797],
                   [3.0e38, -3.0e38, 0.0, 1.0]], dtype=F32)
    zt = np.array([[-inf, 8.454082489013672, 140611667623936.0, -2.829034632203717e+31],
                   [-3.0e38, 3.0e38, 1.0, 0.0]], dtype=F32)
    ref = _certified_and_decided("distillation_loss", zs, zt, 0.7)
    # both put all mass on the same entry up to e^-5.9e18: KL > 0 but below 2^-1075, so +0 in
    # every format (the reference proves the bound, Gibbs gives the sign)
    assert ref.hi[0] == 0.0 and ref.lo[0] > 0
    _certified_and_decided("rlhf_kl_penalty", zs, zt, 0.05)
    neg = _certified_and_decided("rlhf_kl_penalty", zs, zt, -0.05)
    assert math.copysign(1, neg.hi[0]) == -1


def test_kl_of_logits_equal_masked_rows_are_exact_zero():
    inf = math.inf
    za = np.array([[-inf, 1.0, 2.0, 5.0]], dtype=F32)
    zb = np.array([[-inf, 3.0, 4.0, 7.0]], dtype=F32)  # same mask, za - zb = -2 on the rest
    for name, args in (("distillation_loss", (za, zb, 0.7)), ("rlhf_kl_penalty", (za, zb, 0.05))):
        ref = _certified_and_decided(name, *args)
        assert ref.hi[0] == 0 and ref.lo[0] == 0, name


@pytest.mark.slow
@pytest.mark.parametrize("name", list(Q.REGISTRY))
def test_bigger_random_sweep(name):
    q = Q.REGISTRY[name]
    for seed in range(5):
        _assert_certified(name, *moderate_args(q, _rng(100 + seed), B=20, n=16))

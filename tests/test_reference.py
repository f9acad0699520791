"""The exact reference against closed forms and hand derivations, one block per DESIGN table row.

Expected values are derived here (mpmath at 400 bits from the exact float inputs, or exact
rationals) and rounded to float64 by Python's correctly rounded ``float(Fraction)``; the
reference must return that float64 as ``hi`` and carry the remainder in ``lo`` (``hi + lo``
within 2^-100 relative of the exact value). Edge-case conventions follow DESIGN.md.
"""
from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from mpmath import mp

from infoaudit import reference
from infoaudit.quantities import REGISTRY, InputError

INF, NAN = math.inf, math.nan
M = mpmath.mpf
REL = mpmath.mpf(2) ** -100
# The certified float64 fast path (reference/fast.py) promises hi correctly rounded and lo within
# its proved bound, "at most ~2^-80 relative" -- not the correctly rounded remainder of mpmath.
FAST_REL = mpmath.mpf(2) ** -80


@pytest.fixture(autouse=True)
def _prec():
    with mp.workprec(400):
        yield


def frac(x) -> Fraction:
    sign, man, exp, _ = M(x)._mpf_
    man = (-1) ** sign * int(man)
    return Fraction(man * 2 ** exp) if exp >= 0 else Fraction(man, 2 ** -exp)


def cr64(x) -> float:
    """Correct float64 rounding of an exact value (mpf / Fraction / special)."""
    if isinstance(x, float):
        return x
    if isinstance(x, Fraction):
        return float(x)
    x = M(x)
    if mpmath.isnan(x):
        return NAN
    if mpmath.isinf(x):
        return INF if x > 0 else -INF
    return float(frac(x))


def check(ex, expected, rel=REL):
    """ex: Exact; expected: list (flattened, C order) of exact values (mpf/Fraction/float)."""
    if "fast" in ex.source:
        rel = max(rel, FAST_REL)
    hi = ex.hi.ravel()
    lo = ex.lo.ravel()
    assert hi.size == len(expected)
    for k, e in enumerate(expected):
        h = float(hi[k])
        if isinstance(e, float) and math.isnan(e):
            assert math.isnan(h), (k, h)
            continue
        want = cr64(e)
        assert h == want or (math.isnan(h) and math.isnan(want)), (k, h, want)
        if math.isfinite(want):
            got = M(h) + M(float(lo[k]))
            e_m = M(e.numerator) / e.denominator if isinstance(e, Fraction) else M(e)
            if e_m == 0:
                assert got == 0, (k, got)
            elif abs(e_m) >= M(2) ** -900:  # lo is representable (not in float64's subnormal range)
                assert abs(got - e_m) <= rel * abs(e_m), (k, got, e_m)


def ev(name, *args):
    return reference.evaluate(name, *[np.asarray(a) if isinstance(a, list) else a for a in args])


def evm(name, *args):
    return reference.evaluate_mpmath(name, *[np.asarray(a) if isinstance(a, list) else a for a in args])


def lse(zs):
    zs = [M(z) for z in zs if z != -INF]
    m = max(zs)
    return m + mp.log(mp.fsum(mp.exp(z - m) for z in zs))


def test_every_design_row_is_tested_here():
    design = ["softmax", "log_softmax", "logsumexp", "sigmoid", "softplus", "log_sigmoid", "entropy",
              "entropy_bits", "self_information_bits", "binary_entropy_bits", "kl_divergence",
              "cross_entropy_probs", "cross_entropy", "nll_loss", "binary_cross_entropy",
              "binary_cross_entropy_with_logits", "label_smoothing_cross_entropy", "distillation_loss",
              "rlhf_kl_penalty", "gaussian_kl", "joint_entropy", "conditional_entropy",
              "mutual_information", "sampled_softmax_cross_entropy", "adaptive_log_softmax"]
    assert sorted(design) == sorted(REGISTRY)
    import sys
    mod = sys.modules[__name__]
    for name in design:
        assert hasattr(mod, f"test_{name}"), name


# ---------------------------------------------------------------- logits rows


def test_softmax():
    check(ev("softmax", [[0.0, 0.0, 0.0, 0.0]]), [Fraction(1, 4)] * 4)
    z = [1.0, 2.0, 3.0]
    check(ev("softmax", [z]), [mp.exp(M(v) - lse(z)) for v in z])
    # shift invariance is exact in the reference (z + 2^k with exact adds)
    a = ev("softmax", [[0.5, -1.25, 2.0]]).hi
    b = ev("softmax", [[1024.5, 1022.75, 1026.0]]).hi
    assert np.array_equal(a, b)
    # huge logits and a 700-nat gap: e^-700 is a normal float64
    check(ev("softmax", [[700.0, 0.0]]), [1 / (1 + mp.exp(-700)), mp.exp(-700) / (1 + mp.exp(-700))])
    # -inf masks give 0; an all -inf row, a +inf entry or a NaN gives NaN
    check(ev("softmax", [[0.0, -INF, 0.0]]), [Fraction(1, 2), Fraction(0), Fraction(1, 2)])
    check(ev("softmax", [[-INF, -INF]]), [NAN, NAN])
    check(ev("softmax", [[INF, 0.0]]), [NAN, NAN])
    check(ev("softmax", [[NAN, 0.0], [0.0, 0.0]]), [NAN, NAN, Fraction(1, 2), Fraction(1, 2)])
    assert ev("softmax", np.zeros((2, 3, 4))).shape == (2, 3, 4)


def test_log_softmax():
    check(ev("log_softmax", [[0.0, 0.0]]), [-mp.log(2)] * 2)
    z = [0.5, -3.0, 2.25]
    check(ev("log_softmax", [z]), [M(v) - lse(z) for v in z])
    # a dominant class with p = 1 - 1e-30: log p = -log1p(e^-d) ~ -1e-30, not 0
    d = 69.07755278982137
    ex = ev("log_softmax", [[0.0, -d]])
    want0 = -mp.log1p(mp.exp(-M(d)))
    check(ex, [want0, -M(d) - mp.log1p(mp.exp(-M(d)))])
    assert -1.0000001e-30 < ex.hi[0, 0] < -0.9999999e-30
    check(ev("log_softmax", [[0.0, -INF]]), [Fraction(0), -INF])
    check(ev("log_softmax", [[-INF, -INF]]), [NAN, NAN])
    check(ev("log_softmax", [[INF, 1.0]]), [NAN, NAN])
    check(ev("log_softmax", [[NAN, 1.0]]), [NAN, NAN])


def test_logsumexp():
    check(ev("logsumexp", [[0.0, 0.0]]), [mp.log(2)])
    check(ev("logsumexp", [[1e308, 1e308]]), [M(1e308) + mp.log(2)])  # no overflow
    check(ev("logsumexp", [[-INF, -INF]]), [-INF])
    check(ev("logsumexp", [[INF, 0.0]]), [INF])
    check(ev("logsumexp", [[INF, -INF]]), [INF])
    check(ev("logsumexp", [[NAN, 0.0]]), [NAN])
    check(ev("logsumexp", [[3.0, -INF]]), [M(3)])
    # cancellation: a = fl(-log 2), lse([a, a]) = a + log 2 ~ 2e-17 (relative accuracy required)
    a = -math.log(2)
    want = M(a) + mp.log(2)
    assert want != 0
    check(ev("logsumexp", [[a, a]]), [want])
    assert ev("logsumexp", np.zeros((2, 3, 4))).shape == (2, 3)


def test_sigmoid():
    check(ev("sigmoid", [0.0, 1.0, -700.0, INF, -INF, NAN]),
          [Fraction(1, 2), 1 / (1 + mp.exp(-1)), 1 / (1 + mp.exp(700)), M(1), M(0), NAN])
    # -800: e^-800 ~ 3.6e-348 underflows float64: correctly rounded to +0.0
    ex = ev("sigmoid", [-800.0])
    assert ex.hi[0] == 0.0 and not math.copysign(1, ex.hi[0]) < 0


def test_softplus():
    check(ev("softplus", [0.0, 1.0, -30.0, 30.0, INF, -INF, NAN]),
          [mp.log(2), mp.log1p(mp.e), mp.log1p(mp.exp(-30)), 30 + mp.log1p(mp.exp(-30)), INF, M(0), NAN])
    ex = ev("softplus", [-800.0, 800.0])
    # e^-800 rounds to 0 in float64; the remainder keeps its sign as +2^-1074 (Exact convention)
    assert ex.hi[0] == 0.0 and ex.lo[0] == 5e-324
    assert ex.hi[1] == 800.0


@pytest.mark.parametrize("x", [-30.0, -40.0, -700.0, -1e-300, 2.0 ** -60, 37.0])
def test_softplus_evaluate_mpmath_hi_lo_accuracy(x):  # noqa: D103
    """evaluate_mpmath keeps ~106 bits: hi + lo agrees with log1p(e^x) to 2^-100 relative."""
    ex = reference.evaluate_mpmath("softplus", np.array([x]))
    want = mp.log1p(mp.exp(M(x)))
    assert ex.hi[0] == cr64(want)
    got = M(float(ex.hi[0])) + M(float(ex.lo[0]))
    if abs(want) > M(2) ** -900:
        assert abs(got - want) <= REL * abs(want)
    assert ex.source == "mpmath" and not ex.undecided.any()


def test_log_sigmoid():
    check(ev("log_sigmoid", [0.0, 30.0, -30.0, INF, -INF, NAN]),
          [-mp.log(2), -mp.log1p(mp.exp(-30)), -30 - mp.log1p(mp.exp(-30)), M(0), -INF, NAN])


LOGIT_CASES = [
    ("softmax", ([[1.0, 2.0, 3.0], [700.0, 0.0, -3.5]],), lambda z: [mp.exp(M(v) - lse(r)) for r in z for v in r]),
    ("log_softmax", ([[0.0, -69.07755278982137], [0.5, -3.0]],), lambda z: [M(v) - lse(r) for r in z for v in r]),
    ("logsumexp", ([[-math.log(2), -math.log(2)], [1e308, 1e308]],), lambda z: [lse(r) for r in z]),
    ("cross_entropy", ([[2.0, 1.0, 0.1], [40.0, 0.0, 0.0]], np.array([0, 0])),
     lambda z, y: [lse(r) - M(r[k]) for r, k in zip(z, y)]),
]


@pytest.mark.parametrize("name,args,want", LOGIT_CASES, ids=[c[0] for c in LOGIT_CASES])
def test_evaluate_mpmath_is_the_reference_of_record(name, args, want):
    """mpmath alone: hi correctly rounded, lo to 2^-100; evaluate (fast path) has the same hi."""
    exm = evm(name, *args)
    assert exm.source == "mpmath"
    check(exm, want(*args), rel=REL)
    exf = ev(name, *args)
    assert np.array_equal(exf.hi, exm.hi)
    for d in ("float16", "bfloat16", "float32"):
        assert np.array_equal(exf.rounded(d), exm.rounded(d))


# ---------------------------------------------------------------- probability rows


def test_entropy():
    check(ev("entropy", [[0.5, 0.5], [1.0, 0.0], [0.25, 0.25]]),
          [mp.log(2), M(0), M(0.5) * mp.log(4)])   # rows need not be normalised
    check(ev("entropy", [[0.25] * 4, [0.5, 0.5, 0.0, 0.0]]), [mp.log(4), mp.log(2)])   # 0 log 0 = 0
    ex = ev("entropy", [[1.0, 0.0, 0.0]])
    assert ex.hi[0] == 0 and ex.lo[0] == 0
    check(ev("entropy", [[NAN, 0.5]]), [NAN])
    p = [0.1, 0.2, 0.7]
    check(ev("entropy", [p]), [-mp.fsum(M(v) * mp.log(M(v)) for v in p)])


def test_entropy_bits():
    check(ev("entropy_bits", [[0.25] * 4, [0.5, 0.5, 0.0, 0.0]]), [M(2), M(1)])
    p = [0.1, 0.5, 0.1, 0.3]
    check(ev("entropy_bits", [p]), [-mp.fsum(M(v) * mp.log(M(v)) for v in p) / mp.ln2])


def test_self_information_bits():
    check(ev("self_information_bits", [1 / 64, 0.5, 1.0, 0.0, 2.0 ** -1074, 0.3, NAN]),
          [M(6), M(1), M(0), INF, M(1074), -mp.log(M(0.3)) / mp.ln2, NAN])


def test_binary_entropy_bits():
    check(ev("binary_entropy_bits", [0.5, 0.0, 1.0, 0.9, 0.25]),
          [M(1), M(0), M(0), -(M(0.9) * mp.log(M(0.9)) + (1 - M(0.9)) * mp.log(1 - M(0.9))) / mp.ln2,
           M(2) - M(3) / 4 * mp.log(M(3)) / mp.ln2])


def test_kl_divergence():
    # KL([1/2, 1/2] || [1/4, 3/4]) = 1/2 log 2 + 1/2 log(2/3)
    check(ev("kl_divergence", [[0.5, 0.5]], [[0.25, 0.75]]), [(mp.log(2) + mp.log(M(2) / 3)) / 2])
    p, q = [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]
    check(ev("kl_divergence", [p], [q]), [mp.fsum(M(a) * mp.log(M(a) / M(b)) for a, b in zip(p, q))])
    # p = q -> exactly 0 (hi and lo)
    ex = ev("kl_divergence", [[0.1, 0.2, 0.7]], [[0.1, 0.2, 0.7]])
    assert ex.hi[0] == 0.0 and ex.lo[0] == 0.0 and not ex.undecided.any()
    # 0 where p_i = 0 (even with q_i = 0); +inf where p_i > 0 = q_i
    check(ev("kl_divergence", [[0.0, 1.0]], [[0.5, 0.5]]), [mp.log(2)])
    check(ev("kl_divergence", [[0.0, 1.0]], [[0.0, 1.0]]), [M(0)])
    check(ev("kl_divergence", [[0.5, 0.5]], [[1.0, 0.0]]), [INF])
    check(ev("kl_divergence", [[NAN, 0.5]], [[0.5, 0.5]]), [NAN])
    # near-zero q: KL stays exact (log of a subnormal)
    check(ev("kl_divergence", [[0.5, 0.5]], [[1.0, 2.0 ** -1074]]),
          [M(0.5) * mp.log(M(0.5)) + M(0.5) * (mp.log(M(0.5)) + 1074 * mp.log(2))])


def test_cross_entropy_probs():
    check(ev("cross_entropy_probs", [[1.0, 0.0]], [[0.5, 0.5]]), [mp.log(2)])
    check(ev("cross_entropy_probs", [[0.0, 1.0]], [[0.0, 1.0]]), [M(0)])      # 0 log 0 = 0
    check(ev("cross_entropy_probs", [[0.5, 0.5]], [[1.0, 0.0]]), [INF])
    p, q = [0.2, 0.6, 0.2], [0.7, 0.2, 0.1]
    check(ev("cross_entropy_probs", [p], [q]), [-mp.fsum(M(a) * mp.log(M(b)) for a, b in zip(p, q))])


def test_cross_entropy():
    check(ev("cross_entropy", [[0.0, 0.0, 0.0]], np.array([1])), [mp.log(3)])
    z = [[2.0, 1.0, 0.1], [0.5, 2.5, 1.0]]
    check(ev("cross_entropy", z, np.array([0, 1])), [lse(z[0]) - 2, lse(z[1]) - M(2.5)])
    # dominant target: log1p(e^-40) ~ 4.2e-18 computed to full relative accuracy
    check(ev("cross_entropy", [[40.0, 0.0]], np.array([0])), [mp.log1p(mp.exp(-40))])
    check(ev("cross_entropy", [[0.0, 40.0]], np.array([0])), [40 + mp.log1p(mp.exp(-40))])
    # masked target -> +inf; all -inf row -> NaN; masked non-target ignored
    check(ev("cross_entropy", [[0.0, -INF]], np.array([1])), [INF])
    check(ev("cross_entropy", [[-INF, -INF]], np.array([0])), [NAN])
    check(ev("cross_entropy", [[0.0, -INF, 0.0]], np.array([0])), [mp.log(2)])
    check(ev("cross_entropy", [[NAN, 0.0]], np.array([1])), [NAN])


def test_nll_loss():
    check(ev("nll_loss", [[-0.5, -1.5], [-2.0, -0.25]], np.array([1, 0])), [M(1.5), M(2)])
    check(ev("nll_loss", [[-INF, 0.0]], np.array([0])), [INF])


def test_binary_cross_entropy():
    check(ev("binary_cross_entropy", [0.5, 0.0, 0.0, 1.0, 1.0, 0.3], [1.0, 1.0, 0.0, 1.0, 0.0, 0.4]),
          [mp.log(2), INF, M(0), M(0), INF,
           -(M(0.4) * mp.log(M(0.3)) + (1 - M(0.4)) * mp.log(1 - M(0.3)))])
    # no clamping: p = 1 - 2^-53 with t = 1 gives -log(1 - 2^-53), not 0
    check(ev("binary_cross_entropy", [1 - 2.0 ** -53], [1.0]), [-mp.log1p(-M(2) ** -53)])


def test_binary_cross_entropy_with_logits():
    check(ev("binary_cross_entropy_with_logits", [0.0, 0.0, 30.0, -30.0, 2.0], [0.0, 0.7, 1.0, 0.0, 0.25]),
          [mp.log(2), mp.log(2), mp.log1p(mp.exp(-30)), mp.log1p(mp.exp(-30)),
           mp.log1p(mp.exp(2)) - M(0.5)])
    check(ev("binary_cross_entropy_with_logits", [INF, INF, -INF, -INF], [1.0, 0.5, 0.0, 1.0]),
          [M(0), INF, M(0), INF])
    ex = ev("binary_cross_entropy_with_logits", [800.0], [1.0])
    assert ex.hi[0] == 0.0                           # log1p(e^-800) rounds to 0 in float64
    # broadcasting of elementwise arguments
    assert ev("binary_cross_entropy_with_logits", np.zeros((2, 3)), np.array([1.0])).shape == (2, 3)


def test_label_smoothing_cross_entropy():
    check(ev("label_smoothing_cross_entropy", [[0.0] * 4], np.array([2]), 0.1), [mp.log(4)])
    # z = [1, 0, 0], y = 0, eps = 0.1: lse - (1 - eps) z_y - eps/K sum z = lse - 0.9 - 0.1/3
    z = [1.0, 0.0, 0.0]
    eps = M(0.1)
    want = lse(z) - (1 - eps) - eps / 3
    wrong_k_minus_1 = lse(z) - (1 - eps)             # eps/(K-1) smoothing of the other classes
    ex = ev("label_smoothing_cross_entropy", [z], np.array([0]), 0.1)
    check(ex, [want])
    assert ex.hi[0] != cr64(wrong_k_minus_1)
    check(ev("label_smoothing_cross_entropy", [z], np.array([0]), 0.0), [lse(z) - 1])
    check(ev("label_smoothing_cross_entropy", [z], np.array([0]), 1.0), [lse(z) - M(1) / 3])
    # a -inf logit with t_i > 0 gives +inf; eps = 0 ignores masked non-targets
    check(ev("label_smoothing_cross_entropy", [[0.0, -INF]], np.array([0]), 0.1), [INF])
    check(ev("label_smoothing_cross_entropy", [[0.0, -INF]], np.array([0]), 0.0), [M(0)])


def kl_logits(za, zb, T):
    la = [M(v) / T - lse([M(x) / T for x in za]) for v in za]
    lb = [M(v) / T - lse([M(x) / T for x in zb]) for v in zb]
    return mp.fsum(mp.exp(a) * (a - b) for a, b in zip(la, lb))


def test_distillation_loss():
    zs, zt = [1.0, -0.5, 2.0], [0.25, 1.5, -1.0]
    T = M(2)
    check(ev("distillation_loss", [zs], [zt], 2.0), [T * T * kl_logits(zt, zs, T)])  # KL(teacher || student)
    assert cr64(kl_logits(zs, zt, T) * 4) != cr64(kl_logits(zt, zs, T) * 4)        # argument order matters
    # zs = zt + c -> exactly 0
    zt2 = [1.5, -2.25, 3.0]
    ex = ev("distillation_loss", [[v + 0.5 for v in zt2]], [zt2], 3.0)
    assert ex.hi[0] == 0.0 and ex.lo[0] == 0.0
    check(ev("distillation_loss", [[0.0, 0.0]], [[0.0, -INF]], 1.0), [mp.log(2)])
    check(ev("distillation_loss", [[0.0, -INF]], [[0.0, 0.0]], 1.0), [INF])


def test_rlhf_kl_penalty():
    zp, zr = [0.5, 1.0, -2.0], [0.0, 0.0, 0.0]
    check(ev("rlhf_kl_penalty", [zp], [zr], 0.1), [M(0.1) * kl_logits(zp, zr, M(1))])
    ex = ev("rlhf_kl_penalty", [[v + 4.0 for v in zp]], [zp], 0.1)
    assert ex.hi[0] == 0.0 and ex.lo[0] == 0.0


def test_gaussian_kl():
    ex = ev("gaussian_kl", [[0.0, 0.0]], [[0.0, 0.0]])
    assert ex.hi[0] == 0.0 and ex.lo[0] == 0.0
    check(ev("gaussian_kl", [[3.0]], [[0.0]]), [M(4.5)])
    check(ev("gaussian_kl", [[0.0]], [[1.0]]), [(mp.e - 2) / 2])
    # logvar = -1000: 0.5 (e^-1000 + 1000 - 1) = 499.5 + e^-1000 / 2
    ex = ev("gaussian_kl", [[0.0]], [[-1000.0]])
    assert ex.hi[0] == 499.5
    # tiny logvar: 0.5 (expm1(l) - l) = l^2/4 + l^3/12 + l^4/48 + ... (l the float64 nearest 1e-10)
    l_ = M(1e-10)
    series = l_ ** 2 / 4 + l_ ** 3 / 12 + l_ ** 4 / 48 + l_ ** 5 / 240 + l_ ** 6 / 1440
    check(ev("gaussian_kl", [[0.0]], [[1e-10]]), [series], rel=M(2) ** -95)
    check(ev("gaussian_kl", [[0.0]], [[-INF]]), [INF])
    check(ev("gaussian_kl", [[NAN]], [[0.0]]), [NAN])


# ---------------------------------------------------------------- joint tables


def test_joint_entropy():
    check(ev("joint_entropy", [[[0.25, 0.25], [0.25, 0.25]]]), [mp.log(4)])
    check(ev("joint_entropy", [[[0.5, 0.0], [0.0, 0.5]]]), [mp.log(2)])
    check(ev("joint_entropy", [[[0.1, 0.5], [0.1, 0.3]]]),
          [-mp.fsum(M(v) * mp.log(M(v)) for v in (0.1, 0.5, 0.1, 0.3))])
    assert ev("joint_entropy", np.full((3, 2, 2), 0.25)).shape == (3,)


def test_conditional_entropy():
    # independent dyadic table: H(Y|X) = H(1/4, 3/4)
    h = -(M(1) / 4 * mp.log(M(1) / 4) + M(3) / 4 * mp.log(M(3) / 4))
    check(ev("conditional_entropy", [[[0.125, 0.375], [0.125, 0.375]]]), [h])
    ex = ev("conditional_entropy", [[[0.5, 0.0], [0.0, 0.5]]])
    assert ex.hi[0] == 0.0 and ex.lo[0] == 0.0                   # Y determined by X
    # chain rule on a general table: H(Y|X) = H(X,Y) - H(X)
    P = [[0.1, 0.2], [0.3, 0.4]]
    hxy = -mp.fsum(M(v) * mp.log(M(v)) for r in P for v in r)
    px = [M(r[0]) + M(r[1]) for r in P]
    hx = -mp.fsum(v * mp.log(v) for v in px)
    check(ev("conditional_entropy", [P]), [hxy - hx])


def test_mutual_information():
    check(ev("mutual_information", [[[0.5, 0.0], [0.0, 0.5]]]), [mp.log(2)])
    ex = ev("mutual_information", [[[0.125, 0.375], [0.125, 0.375]]])
    assert ex.hi[0] == 0.0 and ex.lo[0] == 0.0                   # independent: every term is 0
    P = [[0.1, 0.2], [0.3, 0.4]]
    px = [M(0.1) + M(0.2), M(0.3) + M(0.4)]
    py = [M(0.1) + M(0.3), M(0.2) + M(0.4)]
    want = mp.fsum(M(P[i][j]) * mp.log(M(P[i][j]) / (px[i] * py[j])) for i in range(2) for j in range(2))
    check(ev("mutual_information", [P]), [want])


def test_sampled_softmax_cross_entropy():
    # a = z - log q = [2, 4, 2, 4]; y = 0, samples [1, 2, 0] (the hit on 0 removed): log(e^2 + e^4 + e^2) - 2
    ex = ev("sampled_softmax_cross_entropy", [[1.0, 2.0, 0.0, 3.0]], np.array([0]), np.array([[1, 2, 0]]),
            [[-1.0, -2.0, -2.0, -1.0]])
    check(ex, [lse([2, 4, 2]) - 2])      # more tests: tests/test_sampled_softmax.py


def test_adaptive_log_softmax():
    # d = 1, h = 2, S = 1: head logits [2, 0, 2] (rows 1, 0, 1); tail 1 logits 2 * [1, -1] (proj 1),
    # tail 2 one class: log p = [2 - L, -L + (2 - lse(2, -2)), -L + (-2 - lse(2, -2)), 2 - L], L = lse(2, 0, 2)
    ex = ev("adaptive_log_softmax", [[2.0]], [[1.0], [0.0], [1.0]], [[1.0]], [[1.0], [-1.0]], [[1.0]], [[3.0]])
    L, T = lse([2, 0, 2]), lse([2, -2])
    check(ex, [2 - L, -L + 2 - T, -L - 2 - T, 2 - L])      # more tests: tests/test_adaptive_softmax.py


# ---------------------------------------------------------------- rounding to narrower dtypes


def test_rounded_to_dtypes_is_single_rounding():
    ex = ev("softmax", [[0.0, 0.0, 0.0]])
    # 1/3 in float16: 0.333251953125 (nearest of the 11-bit grid)
    assert ex.rounded("float16")[0, 0] == float(np.float16(1 / 3))
    assert ex.rounded("float32")[0, 0] == float(np.float32(1 / 3))


# ---------------------------------------------------------------- bad input


def test_unknown_quantity_lists_known_ones():
    with pytest.raises(InputError) as e:
        reference.evaluate("softmaxx", np.zeros((1, 2)))
    msg = str(e.value)
    assert "softmaxx" in msg
    for name in REGISTRY:
        assert name in msg


@pytest.mark.parametrize("name,args,fragment", [
    ("kl_divergence", ([[0.5, 0.5]], [[0.3, 0.3, 0.4]]), "shape"),
    ("cross_entropy", ([[0.0, 1.0]], np.array([2])), "out of range"),
    ("cross_entropy", ([[0.0, 1.0]], np.array([-1])), "out of range"),
    ("cross_entropy", ([[0.0, 1.0], [1.0, 0.0]], np.array([0])), "shape"),
    ("cross_entropy", ([[0.0, 1.0]], np.array([0.0])), "integer"),
    ("entropy", ([[0.5, -0.5]],), "negative"),
    ("kl_divergence", ([[0.5, 0.5]], [[1.5, -0.5]]), "negative"),
    ("binary_cross_entropy", ([1.5], [1.0]), "above 1"),
    ("softmax", ([[0.0]], [[1.0]]), "argument"),
    ("kl_divergence", ([[0.5, 0.5]],), "argument"),
    ("distillation_loss", ([[0.0, 1.0]], [[0.0, 1.0]], 0.0), "temperature"),
    ("label_smoothing_cross_entropy", ([[0.0, 1.0]], np.array([0]), 1.5), "eps"),
    ("joint_entropy", ([0.5, 0.5],), "dimension"),
    ("softmax", (np.zeros((2, 0)),), "empty"),
    ("softmax", (np.array([["a"]], dtype=object),), "float"),
    ("binary_cross_entropy_with_logits", (np.zeros(3), np.zeros(2)), "broadcast"),
])
def test_bad_input_errors(name, args, fragment):
    with pytest.raises(InputError) as e:
        reference.evaluate(name, *[np.asarray(a) if isinstance(a, list) else a for a in args])
    assert fragment in str(e.value)

"""The certified float64 fast path (reference/fast.py) against the mpmath reference of record.

Wherever the fast path says ``ok``, its hi/lo must round to exactly what mpmath's value rounds to
in every audited format (zero wrong roundings), and its lo must match to a tiny fraction of a
float64 ULP. Escalated (not-ok) elements are counted and reported. The small versions run in
`make test`; the >= 10^5-element sweeps per quantity and dtype are marked slow. Every test that
goes through ``fast.FAST`` runs once per available engine (``engine`` fixture: the compiled numba
kernels and the numpy passes); tests/test_reference_fast_kernels.py compares the two directly.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from infoaudit import dtypes
from infoaudit.reference import evaluate, evaluate_mpmath, fast

pytest.importorskip("flint")  # the fast path needs python-flint (dev extra); without it mpmath answers

FAST_Q = ["softmax", "log_softmax", "logsumexp", "cross_entropy"]
ENGINES = fast.available_engines()


@pytest.fixture(params=ENGINES)
def engine(request):
    """Run the test with fast.FAST on the given engine ("numba" or "numpy")."""
    with fast.use_engine(request.param):
        yield request.param


def extreme_rows(rng, B, n, dtype):
    """Extreme logit rows of the dtype: scales from 1 to the dtype's range, masks, ties,
    dominant classes, fully masked rows, +inf and NaN rows."""
    fmax = float(dtypes.fmt(dtypes.dtype_name(dtype)).max)
    scales = np.array([1.0, 8.0, 50.0, 300.0, 1000.0, 1e4, fmax / 8])
    s = scales[rng.integers(0, len(scales), B)][:, None]
    z = rng.standard_normal((B, n)) * s + rng.standard_normal((B, 1)) * s
    kind = rng.integers(0, 10, B)
    z[kind == 1, 0] = z[kind == 1].max(axis=1) + 69.08          # dominant class, p ~ 1 - 1e-30
    z[kind == 2] = np.round(z[kind == 2])                        # ties
    z[(kind == 3)[:, None] & (rng.random((B, n)) < 0.3)] = -np.inf  # masks
    if B > 8:
        z[1] = -np.inf
        z[2, n // 2] = np.inf
        z[3, 0] = np.nan
    with np.errstate(over="ignore"):
        return z.astype(dtype)


def _args(name, z, rng):
    if name == "cross_entropy":
        return (z, rng.integers(0, z.shape[-1], z.shape[0]))
    return (z,)


def compare_fast(name, *args, lo_sample=2000):
    """(n_outputs, n_escalated, n_wrong, max lo error in float64 ULPs) of the fast path.

    Ground truth: arb enclosures that decide each rounding (reference/arb_check.py), i.e. the
    exact value, independent of mpmath's code path; only elements the fast path calls ok count.
    """
    from infoaudit import quantities as Q
    from infoaudit.reference import Exact
    from infoaudit.reference import arb_check as ac

    vals = Q.validate(Q.get(name), args)
    hi, lo, ok = fast.FAST[name](*vals)
    res = ac.check(name, *args, ref=Exact(hi, lo))
    okf = ok.reshape(-1)
    wrong = [w for w in res.wrong if okf[w[0]]]
    undecided = [u for u in res.undecided if okf[u[0]]]
    assert not undecided, undecided[:5]
    # lo accuracy on a sample of ok, finite, nonzero outputs
    idx = np.nonzero(okf & np.isfinite(hi.reshape(-1)) & (hi.reshape(-1) != 0))[0][:lo_sample]
    encl = ac.enclosures(name, *args, prec=256)
    import mpmath

    worst = 0.0
    hf, lf = hi.reshape(-1), lo.reshape(-1)
    old = ac.ctx.prec
    ac.ctx.prec = 256
    try:
        for i in idx:
            e = encl[i]
            if isinstance(e, float):
                continue
            if isinstance(e, ac.Shifted):  # remainder = (base - hi) + corr, base - hi exact
                rem = ac._arb_exact(mpmath.fsub(e.base, float(hf[i]), exact=True)) + e.corr
            else:
                rem = e - ac.arb(float(hf[i]))
            err = abs(float((rem - ac.arb(float(lf[i]))).mid()))
            worst = max(worst, err / float(dtypes.ulp_of(hf[i], "float64")))
    finally:
        ac.ctx.prec = old
    return int(hi.size), int((~ok).sum()), len(wrong), worst


def compare_fast_to_mpmath(name, *args):
    """Wrong roundings of ok fast-path elements against the mpmath reference of record."""
    from infoaudit import quantities as Q

    vals = Q.validate(Q.get(name), args)
    hi, lo, ok = fast.FAST[name](*vals)
    ref = evaluate_mpmath(name, *args)
    wrong = 0
    for d in dtypes.DTYPES:
        r, e = dtypes.round_dd(hi, lo, d), ref.rounded(d)
        wrong += int((ok & ~((r == e) | (np.isnan(r) & np.isnan(e)))).sum())
    return wrong


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", FAST_Q)
def test_fast_path_small(name, dtype, engine):
    rng = np.random.default_rng(11)
    z = extreme_rows(rng, 24, 64, dtype)
    n, esc, wrong, lo_err = compare_fast(name, *_args(name, z, rng))
    print(f"[{engine}] {name} {np.dtype(dtype).name}: {n} outputs, {esc} escalated, {wrong} wrong, lo err {lo_err:.2g} ulp")
    assert wrong == 0
    assert lo_err < 1e-6
    assert esc <= max(3, n // 50)


@pytest.mark.parametrize("name", FAST_Q)
def test_fast_path_agrees_with_mpmath_on_moderate_rows(name, engine):
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((16, 40)) * 20).astype(np.float32)
    assert compare_fast_to_mpmath(name, *_args(name, z, rng)) == 0


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("name", FAST_Q)
def test_fast_path_1e5_extreme_elements(name, dtype, engine):
    rng = np.random.default_rng(12345)
    total = esc_total = 0
    rows = 1000 if name in ("softmax", "log_softmax") else 2000
    n = 100 if name in ("softmax", "log_softmax") else 50
    z = extreme_rows(rng, rows, n, dtype)
    args = _args(name, z, rng)
    count, esc, wrong, lo_err = compare_fast(name, *args)
    total += count
    esc_total += esc
    print(f"[{engine}] {name} {np.dtype(dtype).name}: {count} outputs ({z.size} input elements), {esc} escalated, "
          f"{wrong} wrong, lo err {lo_err:.2g} ulp")
    assert z.size >= 100_000
    assert wrong == 0
    assert lo_err < 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("name", FAST_Q)
def test_numba_engine_1e5_moderate_elements(name):
    """Moderate rows, all of whose log s and 1/s the compiled engine proves in double-double (the
    extreme sweep above sends ~25 % of its rows -- s - 1 < 2^-900 -- to arb instead)."""
    if "numba" not in ENGINES:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(54321)
    rows, n = (500, 200) if name in ("softmax", "log_softmax") else (5000, 20)
    scale = np.array([0.5, 1.0, 2.0, 4.0])[rng.integers(0, 4, rows)][:, None]
    z = (rng.standard_normal((rows, n)) * scale).astype(np.float32)
    from infoaudit.reference import fast_kernels as K

    info = _numba_row_info(z)
    assert (info[:, K.F_NEEDARB] == 0).mean() > 0.95  # the double-double row scalars answer
    with fast.use_engine("numba"):
        count, esc, wrong, lo_err = compare_fast(name, *_args(name, z, rng))
    print(f"[numba] {name} moderate float32: {count} outputs ({z.size} input elements), {esc} escalated, "
          f"{wrong} wrong, lo err {lo_err:.2g} ulp")
    assert z.size >= 100_000
    assert wrong == 0
    assert lo_err < 1e-6


def _numba_row_info(z):
    """The compiled engine's per-row record (fast_kernels.F_* fields) for z."""
    from infoaudit.reference import fast_kernels as K

    z2 = np.ascontiguousarray(z, dtype=np.float64)
    info = np.empty((z2.shape[0], K.NF))
    dummy = np.empty((1, 1))
    K.row_pass(z2, 0, *fast._consts(), info, dummy, dummy, np.empty((1, 1), bool))
    return info


def test_exp_dd_error_bound_against_arb():
    flint = pytest.importorskip("flint")
    arb, ctx = flint.arb, flint.ctx
    rng = np.random.default_rng(3)
    L = math.log(2) / 65536
    x = np.concatenate([rng.uniform(-800, 0, 3000), rng.uniform(-1e-3, 0, 500),
                        -np.arange(1, 400) * L * 0.5,             # around reduction boundaries
                        np.array([0.0, -5e-324, -1e-300, -745.1332191019411, -708.3964185322641])])
    xl = x * rng.uniform(-2.0 ** -53, 2.0 ** -53, x.size)        # TwoSum-like low parts
    xl[x == 0] = 0.0
    H, Lo, k = fast.exp_dd(x, xl)
    old = ctx.prec
    ctx.prec = 256
    try:
        worst = 0.0
        for xi, xli, h, lo_, kk in zip(x, xl, H, Lo, k):
            ex = (arb(float(xi)) + arb(float(xli))).exp()
            got = (arb(float(h)) + arb(float(lo_))) * arb(2) ** int(kk)
            rel = abs(float(((got - ex) / ex).mid()))
            worst = max(worst, rel)
        assert worst <= fast.EXP_REL, math.log2(worst)
    finally:
        ctx.prec = old
    assert H[x == 0].tolist() == [1.0] and Lo[x == 0].tolist() == [0.0] and k[x == 0].tolist() == [0]


def test_special_rows_follow_conventions(engine):
    z = np.array([[-np.inf, -np.inf], [np.inf, 0.0], [np.nan, 0.0], [-np.inf, 1.0], [np.inf, np.inf]])
    y = np.array([0, 1, 0, 0, 0])
    sm = evaluate("softmax", z)
    assert np.isnan(sm.hi[:3]).all() and sm.hi[3].tolist() == [0.0, 1.0]
    ls = evaluate("log_softmax", z)
    assert np.isnan(ls.hi[:3]).all() and ls.hi[3].tolist() == [-np.inf, 0.0]
    lse = evaluate("logsumexp", z)
    assert lse.hi[0] == -np.inf and lse.hi[1] == np.inf and np.isnan(lse.hi[2]) and lse.hi[3] == 1.0
    ce = evaluate("cross_entropy", z, y)
    assert np.isnan(ce.hi[0]) and ce.hi[1] == np.inf and np.isnan(ce.hi[2]) and ce.hi[3] == np.inf
    assert np.isnan(ce.hi[4])  # +inf target in a +inf row: inf - inf
    for name, args in (("softmax", (z,)), ("log_softmax", (z,)), ("logsumexp", (z,)), ("cross_entropy", (z, y))):
        ref = evaluate_mpmath(name, *args)
        got = evaluate(name, *args)
        assert np.array_equal(ref.hi, got.hi, equal_nan=True), name


def test_fast_path_is_used_and_long_rows_mostly_fast(engine):
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((2, 50257)) * 4).astype(np.float32)
    hi, lo, ok = fast.softmax(z.astype(np.float64))
    assert ok.all()
    ex = evaluate("softmax", z)
    assert ex.source == "fast"
    assert abs(math.fsum(ex.hi[0]) - 1.0) < 1e-12


def test_dominant_class_keeps_relative_accuracy(engine):
    z = np.array([[69.07755278982137, 0.0, -1.0]])
    hi, lo, ok = fast.log_softmax(z)
    ref = evaluate_mpmath("log_softmax", z)
    assert ok.all()
    assert hi[0, 0] == ref.hi[0, 0] and hi[0, 0] < 0
    hi, lo, ok = fast.cross_entropy(z, np.array([0]))
    assert ok.all() and hi[0] == evaluate_mpmath("cross_entropy", z, np.array([0])).hi[0] > 0


# ---------------------------------------------------------------- the other quantities
# (reference/fast_more.py: compiled kernels only; docs/fast_reference.md)

MORE_Q = ["sigmoid", "softplus", "log_sigmoid", "binary_cross_entropy_with_logits", "binary_cross_entropy",
          "self_information_bits", "binary_entropy_bits", "entropy", "entropy_bits", "kl_divergence",
          "cross_entropy_probs", "gaussian_kl", "nll_loss", "label_smoothing_cross_entropy"]


@pytest.fixture
def numba_engine():
    if "numba" not in ENGINES:
        pytest.skip("numba is not installed: these quantities have no fast path without it")
    with fast.use_engine("numba"):
        yield


def more_args(name, rng, n_elements=1200, n=16):
    """Extreme float32 inputs of the bulk test's kinds (tests/test_reference_arb_bulk.py)."""
    import test_reference_arb_bulk as bulk

    old = bulk.N_ELEMENTS
    bulk.N_ELEMENTS = n_elements
    try:
        from infoaudit import quantities as Q

        return bulk.bulk_args(Q.get(name), rng)
    finally:
        bulk.N_ELEMENTS = old


def check_against_arb(name, *args):
    """(outputs, escalated, wrong) of fast.FAST[name] against arb; undecided-by-arb ok elements fail."""
    from infoaudit import quantities as Q
    from infoaudit.reference import Exact
    from infoaudit.reference import arb_check as ac

    hi, lo, ok = fast.FAST[name](*Q.validate(Q.get(name), args))
    res = ac.check(name, *args, ref=Exact(hi, lo))
    okf = ok.reshape(-1)
    assert not [u for u in res.undecided if okf[u[0]]]
    return int(hi.size), int((~ok).sum()), len([w for w in res.wrong if okf[w[0]]])


@pytest.mark.parametrize("name", MORE_Q)
def test_more_fast_paths_extreme_inputs_against_arb(name, numba_engine):
    rng = np.random.default_rng(7 + MORE_Q.index(name))
    n, esc, wrong = check_against_arb(name, *more_args(name, rng))
    print(f"{name}: {n} outputs, {esc} escalated, {wrong} wrong")
    assert wrong == 0
    assert esc <= max(2, n // 20)


HAND = {  # extreme and boundary inputs of each elementwise quantity
    "real": [0.0, -0.0, 5e-324, -5e-324, 1e-300, -1e-300, 1e-8, -1e-8, 0.5, -0.5, 1.0, 17.0, -17.0, 36.7, 37.5,
             -36.7, 88.7, -88.7, 700.0, -700.0, 708.4, -708.4, 709.8, -709.8, 745.1, -745.1, 745.2, -745.2, 800.0,
             -800.0, 802.0, -802.0, 1e4, -1e4, 3.4e38, -3.4e38, 1.7e308, -1.7e308, np.inf, -np.inf, np.nan],
    "unit": [0.0, 5e-324, 1e-320, 1e-310, 1e-300, 1e-45, 1e-30, 2.0 ** -18, 2.0 ** -17, 1e-5, 0.25, 0.5,
             0.5 - 2.0 ** -30, 0.75, 1 - 2.0 ** -24, 1 - 2.0 ** -53, 1.0, np.nan],
}


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "log_sigmoid", "self_information_bits",
                                  "binary_entropy_bits", "binary_cross_entropy", "binary_cross_entropy_with_logits"])
def test_more_fast_paths_hand_picked_against_mpmath(name, numba_engine):
    from infoaudit import quantities as Q

    q = Q.get(name)
    if len(q.args) == 1:
        kind = "unit" if q.args[0].kind == Q.PROB else "real"
        args = (np.array(HAND[kind]),)
    else:
        first = np.array(HAND["unit" if q.args[0].kind == Q.PROB else "real"])
        # (t = 5e-324 with z = 802 is in test_bce_logits_tiny_target_hand_derived: both references
        # mis-round it)
        t = np.array([0.0, 2.0 ** -60, 0.1, 0.5, 1 - 2.0 ** -53, 1.0])
        args = (np.repeat(first, t.size), np.tile(t, first.size))
    assert compare_fast_to_mpmath(name, *args) == 0
    hi, lo, ok = fast.FAST[name](*Q.validate(q, args))
    ref = evaluate_mpmath(name, *args)
    special = ~np.isfinite(ref.hi) | (ref.hi == 0)
    assert np.array_equal(hi[special & ok], ref.hi[special & ok], equal_nan=True)
    got = evaluate(name, *args)  # escalated elements come from mpmath
    assert np.array_equal(got.hi, ref.hi, equal_nan=True)
    print(f"{name}: {args[0].size} hand-picked inputs, {int((~ok).sum())} escalated")


def test_bce_logits_tiny_target_hand_derived(numba_engine):
    """softplus(z) - t z at z = 802, t = 2^-1074: exactly 802 - 802 2^-1074 + log1p(e^-802), i.e.
    just below 802, a bfloat16 tie (800 | 804): rounds to 800 (hand derivation). The fast path, the
    mpmath reference and the arb check must all say so (the references once said 804: their exact
    part (1 - t) z carries ~1,080 bits and the tiny-correction rule assumed it lay on the working
    precision's grid)."""
    z, t = np.array([802.0]), np.array([5e-324])
    hi, lo, ok = fast.FAST["binary_cross_entropy_with_logits"](z, t)
    assert ok[0] and hi[0] == 802.0 and lo[0] < 0
    assert dtypes.round_dd(hi, lo, "bfloat16")[0] == 800.0
    assert dtypes.round_dd(hi, lo, "float16")[0] == 802.0  # representable in float16
    ref = evaluate_mpmath("binary_cross_entropy_with_logits", z, t)
    assert ref.hi[0] == 802.0 and ref.lo[0] < 0
    assert dtypes.round_dd(ref.hi, ref.lo, "bfloat16")[0] == 800.0
    from infoaudit.reference import arb_check

    res = arb_check.check("binary_cross_entropy_with_logits", z, t, ref=ref)
    assert res.checked and not res.wrong and not res.undecided, res


def test_more_fast_paths_cancellation_is_decided_or_escalated(numba_engine):
    """Where the terms cancel (KL at p ~ q, BCE with logits at softplus(z) ~ t z, gaussian_kl at
    logvar ~ 0, entropy of a one-hot row) the bound is relative to the result: 0 wrong, exact zeros."""
    rng = np.random.default_rng(9)
    p = rng.random((6, 32))
    p /= p.sum(axis=1, keepdims=True)
    q = p * (1 + rng.standard_normal(p.shape) * 2.0 ** -20)
    q[0] = p[0]  # KL exactly 0
    n, esc, wrong = check_against_arb("kl_divergence", p, q)
    assert wrong == 0
    assert fast.FAST["kl_divergence"](p, q)[0][0] == 0.0 and fast.FAST["kl_divergence"](p, q)[2][0]
    z = np.array([30.0, 60.0, 700.0, 745.5, 1e5, -30.0, -745.5])
    t = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    assert check_against_arb("binary_cross_entropy_with_logits", z, t)[2] == 0
    mu = np.zeros((3, 8))
    lv = np.array([[0.0] * 8, [1e-8, -1e-8] * 4, [2.0 ** -30] * 8])
    assert check_against_arb("gaussian_kl", mu, lv)[2] == 0
    hi, lo, ok = fast.FAST["gaussian_kl"](mu, lv)
    assert hi[0] == 0.0 and ok[0]
    onehot = np.eye(5)
    hi, lo, ok = fast.FAST["entropy"](onehot)
    assert ok.all() and (hi == 0).all()
    zl = np.array([[1.0, -np.inf, 3.0], [2.0, 2.0, -np.inf]])
    for eps in (0.0, 0.3):
        assert compare_fast_to_mpmath("label_smoothing_cross_entropy", zl, np.array([0, 2]), eps) == 0


def _hyp_floats():
    from hypothesis import strategies as st

    return st.floats(allow_nan=True, allow_infinity=True, width=32)


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "log_sigmoid", "binary_cross_entropy_with_logits"])
def test_more_fast_paths_hypothesis_against_mpmath(name, numba_engine):
    from hypothesis import given
    from hypothesis import strategies as st

    unit = st.floats(0, 1, width=32)

    @given(st.lists(st.tuples(_hyp_floats(), unit), min_size=1, max_size=12))
    def check(pairs):
        x = np.array([a for a, _ in pairs], dtype=np.float32)
        t = np.array([b for _, b in pairs], dtype=np.float32)
        args = (x, t) if name == "binary_cross_entropy_with_logits" else (x,)
        assert compare_fast_to_mpmath(name, *args) == 0

    check()


@pytest.mark.parametrize("name", ["entropy", "kl_divergence", "cross_entropy_probs", "gaussian_kl",
                                  "binary_cross_entropy"])
def test_more_fast_paths_hypothesis_probabilities_against_mpmath(name, numba_engine):
    from hypothesis import given
    from hypothesis import strategies as st

    from infoaudit import quantities as Q

    q = Q.get(name)
    elem = st.floats(0, 1, width=32) if name != "gaussian_kl" else st.floats(-50, 50, width=32)

    @given(st.lists(st.tuples(elem, elem), min_size=1, max_size=10))
    def check(pairs):
        a = np.array([[u for u, _ in pairs]], dtype=np.float32)
        b = np.array([[v for _, v in pairs]], dtype=np.float32)
        if q.structure == Q.ELEMENTWISE:
            a, b = a[0], b[0]
        args = (a,) if len(q.args) == 1 else (a, b)
        assert compare_fast_to_mpmath(name, *args) == 0

    check()


@pytest.mark.slow
@pytest.mark.parametrize("name", MORE_Q)
def test_more_fast_paths_1e5_extreme_elements(name, numba_engine):
    """The bulk sweep for the compiled kernels alone: 10^5 extreme input elements, every decided
    element checked against arb (0 wrong), escalations counted."""
    rng = np.random.default_rng(424242 + MORE_Q.index(name))
    args = more_args(name, rng, n_elements=100_000)
    n, esc, wrong = check_against_arb(name, *args)
    print(f"{name}: {n} outputs, {esc} escalated ({100 * esc / n:.3f}%), {wrong} wrong")
    assert wrong == 0
    assert esc <= n // 50

"""The compiled (numba) engine of the certified fast path, reference/fast_kernels.py.

* the floating-point model its proofs assume: TwoSum and TwoProduct-by-splitting compiled by
  numba are exact, the compiled exp is bit-identical to the numpy one, and no FMA instruction
  appears in the machine code (the full-kernel inspection recompiles, so it is marked slow);
* the double-double row scalars (log s, 1/s) enclose the exact values (arb) within their radii;
* the numba and numpy engines agree: identical ``hi`` and identical roundings to every audited
  format wherever both certify, the same special-value conventions, and ``lo`` within the bound.

The arb wrong-rounding sweeps of both engines are in tests/test_fast_path.py (engine fixture).
"""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from infoaudit import dtypes
from infoaudit.reference import fast

pytest.importorskip("flint")
pytest.importorskip("numba")
K = pytest.importorskip("infoaudit.reference.fast_kernels")

FAST_Q = ["softmax", "log_softmax", "logsumexp", "cross_entropy"]


def _wide_floats(rng, n, lo=-300, hi=300):
    """Random signed floats with exponents spread over [lo, hi] and random significands."""
    return rng.choice([-1.0, 1.0], n) * rng.uniform(1, 2, n) * np.exp2(rng.integers(lo, hi, n).astype(float))


# ---------------------------------------------------------------- floating-point model


def test_two_sum_is_exact_in_compiled_code():
    rng = np.random.default_rng(1)
    a = _wide_floats(rng, 4000, -1070, 1000)
    b = np.concatenate([_wide_floats(rng, 2000, -1070, 1000), a[:2000] * rng.uniform(0.5, 2, 2000)])
    b[:100] = -a[:100]                                   # exact cancellation
    a[100:200] = 5e-324 * rng.integers(1, 1000, 100)     # subnormals
    s, e = K.two_sum_arr(a, b)
    for x, y, hs, es in zip(a, b, s, e):
        assert Fraction(hs) + Fraction(es) == Fraction(x) + Fraction(y)
        assert hs == x + y


def test_two_prod_by_splitting_is_exact_in_compiled_code():
    rng = np.random.default_rng(2)
    a = _wide_floats(rng, 4000, -400, 400)
    b = _wide_floats(rng, 4000, -400, 400)
    a[:50] = 1.0 + 2.0 ** -52 * rng.integers(0, 2 ** 52, 50).astype(float)  # full significands
    b[:50] = 2.0 - 2.0 ** -52 * rng.integers(0, 2 ** 52, 50).astype(float)
    p, e = K.two_prod_arr(a, b)
    for x, y, hp, ep in zip(a, b, p, e):
        assert Fraction(hp) + Fraction(ep) == Fraction(x) * Fraction(y)
        assert hp == x * y


def _exp_inputs(rng):
    L = math.log(2) / 65536
    x = np.concatenate([rng.uniform(-800, 0, 20000), rng.uniform(-1e-3, 0, 2000), rng.uniform(0, 700, 500),
                        -np.arange(1, 2000) * L * 0.5,
                        np.array([0.0, -0.0, -5e-324, -1e-300, -745.1332191019411, -708.3964185322641, -800.0])])
    xl = x * rng.uniform(-2.0 ** -53, 2.0 ** -53, x.size)
    xl[x == 0] = 0.0
    return x, xl


def test_compiled_exp_is_bit_identical_to_numpy_exp_dd():
    x, xl = _exp_inputs(np.random.default_rng(3))
    H, L, k = fast.exp_dd(x, xl)
    H2, L2, k2 = K.exp_dd(x, xl, *fast._consts())
    assert np.array_equal(H.view(np.int64), H2.view(np.int64))
    assert np.array_equal(L.view(np.int64), L2.view(np.int64))
    assert np.array_equal(k, k2)


def _fresh_asm(fn, *args):
    """Machine code of fn recompiled without the cache (cached code cannot be inspected)."""
    import numba

    f = numba.njit(error_model="numpy")(fn.py_func)
    f(*args)
    return "\n".join(f.inspect_asm().values())


FMA_RE = re.compile(r"\bv?f(n)?m(add|sub)(sub|add)?\d*[sp][sd]\b", re.I)


def test_no_fma_in_compiled_exp_and_error_free_transformations():
    x, xl = _exp_inputs(np.random.default_rng(4))
    for fn, args in ((K.exp_dd, (x[:10], xl[:10], *fast._consts())), (K.two_prod_arr, (x[:10], xl[:10])),
                     (K.two_sum_arr, (x[:10], xl[:10]))):
        asm = _fresh_asm(fn, *args)
        assert re.search(r"\bv?(add|mul)[sp]d\b", asm)  # the inspection shows arithmetic
        assert not FMA_RE.search(asm), FMA_RE.search(asm).group(0)


@pytest.mark.slow
def test_no_fma_in_compiled_row_kernels():
    z = np.random.default_rng(5).standard_normal((3, 40))
    c = fast._consts()
    info = np.empty((3, K.NF))
    out = (np.empty((3, 40)), np.empty((3, 40)), np.empty((3, 40), bool))
    for fn, args in ((K.row_pass, (z, 1, *c, info, *out)),
                     (K.rows_outputs, (z, np.arange(3), 1, *c, info, *out))):
        asm = _fresh_asm(fn, *args)
        assert re.search(r"\bv?(add|mul)[sp]d\b", asm)
        assert not FMA_RE.search(asm), FMA_RE.search(asm).group(0)


# ---------------------------------------------------------------- double-double row scalars


def _rows_for(nzero, rest, c, err):
    info = np.zeros((len(nzero), K.NF))
    consts = fast._consts()
    okd = np.array([K._row_scalars_dd(int(a), float(b), float(cc), float(e), *consts, info, i)
                    for i, (a, b, cc, e) in enumerate(zip(nzero, rest, c, err))])
    return okd, info


def test_row_scalars_dd_enclose_exact_values():
    from flint import arb, ctx

    rng = np.random.default_rng(6)
    N = 4000
    nzero = np.where(rng.random(N) < 0.6, 1, rng.integers(2, 4, N))
    rest = np.concatenate([10.0 ** rng.uniform(-250, -6, N // 4),        # (A): dominant class
                           10.0 ** rng.uniform(-6, -1, N // 4),          # (A) / (B) near s = 1
                           rng.uniform(0.0625, 3, N // 8), np.exp(rng.uniform(0, 11, N // 8)),
                           10.0 ** rng.uniform(-3, 200, N - N // 2 - 2 * (N // 8))])
    rest[:20] = 2.0 ** -17 * (1 + 2.0 ** -50 * np.arange(-10, 10))   # at the (A) / (B) border
    rest[20:40] = 2.0 ** -900 * (1 + np.arange(20))                   # at the (A) floor
    nzero[:40] = 1
    c = rest * rng.uniform(-2.0 ** -53, 2.0 ** -53, N)
    err = np.where(rng.random(N) < 0.5, 0.0, rest * 2.0 ** rng.uniform(-100, -62, N))
    okd, info = _rows_for(nzero, rest, c, err)
    assert okd.mean() > 0.99, np.nonzero(~okd)[0][:10]
    old = ctx.prec
    ctx.prec = 3200
    try:
        worstL = worstC = 0.0
        for i in np.nonzero(okd)[0]:
            w = arb(float(rest[i])) + arb(float(c[i])) + arb(int(nzero[i]) - 1)
            for sgn in (-1, 1):  # both ends of the ball s_mid +- err
                wt = w + sgn * arb(float(err[i]))
                Lx, Cx = wt.log1p(), 1 / (wt + 1)
                dL = abs(float(((arb(info[i, K.F_LHI]) + arb(info[i, K.F_LLO])) - Lx).mid()))
                dC = abs(float(((arb(info[i, K.F_CHI]) + arb(info[i, K.F_CLO])) - Cx).mid()))
                assert dL <= info[i, K.F_LRAD], (i, dL, info[i, K.F_LRAD])
                assert dC <= info[i, K.F_CRAD], (i, dC, info[i, K.F_CRAD])
                if err[i] == 0:  # the computation's own error against its proved bound
                    worstL = max(worstL, dL / info[i, K.F_LRAD])
                    worstC = max(worstC, dC / info[i, K.F_CRAD])
            # radii stay tight: <= 2^-82 relative to log s (+ the input ball), ~2^-100 for 1/s
            L = float(Lx.mid())
            assert info[i, K.F_LRAD] <= 2.0 ** -82 * L + 1.01 * err[i] / (nzero[i] + rest[i] - err[i]), i
            assert info[i, K.F_CRAD] <= 2.0 ** -99 * info[i, K.F_CHI] + 1.01 * err[i] / (nzero[i] + rest[i]) / (nzero[i] + rest[i])
    finally:
        ctx.prec = old
    print(f"row scalars (exact inputs): worst |error| / radius: log s {worstL:.3g}, 1/s {worstC:.3g}")


def test_log1p_small_against_arb():
    from flint import arb, ctx

    rng = np.random.default_rng(10)
    vh = rng.choice([-1.0, 1.0], 3000) * 2.0 ** rng.uniform(-60, -17, 3000)
    vh[:5] = [2.0 ** -17, -2.0 ** -17, 2.0 ** -900, -2.0 ** -900, 0.0]
    vl = vh * rng.uniform(-2.0 ** -50, 2.0 ** -50, vh.size)
    old = ctx.prec
    ctx.prec = 3200
    try:
        for h, l in zip(vh, vl):
            Lh, Ll = K.log1p_small(float(h), float(l))
            ex = (arb(float(h)) + arb(float(l))).log1p()
            d = abs(float(((arb(Lh) + arb(Ll)) - ex).mid()))
            assert d <= 2.0 ** -85 * abs(h) + 2.0 ** -1060, (h, l, d)
    finally:
        ctx.prec = old


def test_row_scalars_dd_refuse_what_they_cannot_prove():
    # a single finite term (s = 1), a remainder below 2^-900, and a too wide ball go to arb
    okd, info = _rows_for([1, 1, 1, 2], [0.0, 1e-280, 1e-6, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1e-17, 1e-10])
    assert okd.tolist() == [False, False, False, False]
    assert not info.any()


# ---------------------------------------------------------------- the two engines agree


def _extreme(rng, B, n, dtype):
    from test_fast_path import extreme_rows

    return extreme_rows(rng, B, n, dtype)


def _both(name, *args):
    with fast.use_engine("numba"):
        a = fast.FAST[name](*args)
    with fast.use_engine("numpy"):
        b = fast.FAST[name](*args)
    return a, b


def _agree(name, z, rng, max_ok_diff=0.002):
    args = (z, rng.integers(0, z.shape[-1], z.shape[0])) if name == "cross_entropy" else (z,)
    from infoaudit import quantities as Q

    vals = Q.validate(Q.get(name), args)
    (h1, l1, o1), (h2, l2, o2) = _both(name, *vals)
    both = o1 & o2
    # hi: the correctly rounded float64 value where both certify it
    assert np.array_equal(h1[both], h2[both], equal_nan=True), name
    # every format's rounding (round_dd decides float16/bfloat16/float32 ties by lo's sign)
    for d in dtypes.DTYPES:
        r1, r2 = dtypes.round_dd(h1, l1, d), dtypes.round_dd(h2, l2, d)
        same = (r1 == r2) | (np.isnan(r1) & np.isnan(r2))
        assert same[both].all(), (name, d)
    # lo: both within ~2^-80 relative of exact - hi, so within 2^-26 float64 ULP of each other
    fin = both & np.isfinite(h1) & (h1 != 0)
    if fin.any():
        ulp = np.spacing(np.abs(h1[fin]))
        assert (np.abs(l1[fin] - l2[fin]) <= 2.0 ** -26 * ulp).all(), name
    # rounding decisions: the ok masks may differ only through the engines' different (both
    # proved) bounds on the row sum; on these inputs they essentially never do
    diff = int((o1 != o2).sum())
    assert diff <= max(2, max_ok_diff * o1.size), (name, diff, o1.size)
    return diff, int((~o1).sum()), int((~o2).sum())


@pytest.mark.parametrize("name", FAST_Q)
def test_engines_agree_on_random_rows(name):
    rng = np.random.default_rng(7)
    for B, n, scale, dt in ((3, 5000, 4.0, np.float32), (40, 37, 30.0, np.float64), (64, 256, 1.0, np.float16),
                            (2, 50257, 8.0, np.float32)):
        z = (rng.standard_normal((B, n)) * scale).astype(dt)
        diff, e1, e2 = _agree(name, z, rng)
        print(f"{name} {B}x{n} {np.dtype(dt).name}: ok differs on {diff}, escalated numba {e1} numpy {e2}")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("name", FAST_Q)
def test_engines_agree_on_extreme_rows(name, dtype):
    rng = np.random.default_rng(8)
    z = _extreme(rng, 60, 70, dtype)
    diff, e1, e2 = _agree(name, z, rng)
    print(f"{name} extreme {np.dtype(dtype).name}: ok differs on {diff}, escalated numba {e1} numpy {e2}")


@pytest.mark.parametrize("name", FAST_Q)
def test_engines_identical_on_special_values(name):
    inf, nan = np.inf, np.nan
    z = np.array([[-inf, -inf, -inf], [inf, 0.0, 1.0], [nan, 0.0, 1.0], [-inf, 1.0, 2.0], [inf, inf, 0.0],
                  [nan, inf, -inf], [0.0, -0.0, 0.0], [5e-324, -5e-324, 0.0], [1e308, -1e308, 1e308],
                  [-1000.0, 0.0, -inf], [3.0, 3.0, 3.0]])
    y = np.array([0, 1, 0, 0, 0, 1, 1, 0, 1, 2, 2])
    args = (z, y) if name == "cross_entropy" else (z,)
    with np.errstate(all="ignore"):
        (h1, l1, o1), (h2, l2, o2) = _both(name, *args)
    assert np.array_equal(o1, o2)
    assert o1[[0, 1, 2, 3, 4, 5, 9]].all()  # conventional values are always certified
    assert np.array_equal(h1[o1], h2[o2], equal_nan=True)
    fin = np.isfinite(h1) & o1
    conv = ~np.isfinite(h1) & o1
    assert (l1[conv] == 0).all() and (l2[conv] == 0).all()  # conventional values carry lo = 0
    assert (np.abs(l1 - l2)[fin] <= 2.0 ** -26 * np.spacing(np.abs(h1[fin]))).all()
    # the conventions themselves (DESIGN): spot checks
    if name == "softmax":
        assert np.isnan(h1[:3]).all() and h1[3, 0] == 0.0 and abs(h1[3, 1:].sum() - 1) < 1e-15
        assert h1[10].tolist() == [1 / 3] * 3 and h1[9, 2] == 0.0
    if name == "logsumexp":
        assert h1[0] == -inf and h1[1] == inf and np.isnan(h1[2]) and h1[4] == inf and np.isnan(h1[5])
    if name == "cross_entropy":
        assert np.isnan(h1[0]) and h1[1] == inf and np.isnan(h1[2]) and h1[3] == inf and np.isnan(h1[4])
        assert h1[9] == inf  # masked target
    if name == "log_softmax":
        assert np.isnan(h1[:3]).all() and h1[3, 0] == -inf and h1[9, 2] == -inf


def test_engines_agree_on_long_dominant_rows():
    # rows whose log s < 0.061 (arb row scalars) and rows just above it (double-double), long
    rng = np.random.default_rng(9)
    z = rng.standard_normal((4, 3000)) - 12.0
    z[:, 0] = np.array([0.0, 3.0, 8.0, 20.0])
    for name in FAST_Q:
        _agree(name, z, rng)


# ---------------------------------------------------------------- selection


def test_engine_selection_and_env_var():
    assert fast.ENGINE in ("numba", "numpy")
    assert "numba" in fast.available_engines()
    with fast.use_engine("numpy"):
        assert fast.ENGINE == "numpy"
        with fast.use_engine("numba"):
            assert fast.ENGINE == "numba"
        assert fast.ENGINE == "numpy"
    with pytest.raises(ValueError):
        fast.set_engine("cuda")
    code = "from infoaudit.reference import fast; print(fast.ENGINE)"
    env = dict(os.environ, INFOAUDIT_FAST="numpy")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
    env.pop("INFOAUDIT_FAST")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numba"


def test_sigmoid_block_kernel_matches_the_scalar_kernel():
    """fast_elem_kernels.sigmoid_blocks (vectorised common case) is sigmoid1 element for element."""
    pytest.importorskip("numba")
    from infoaudit.reference import fast_elem_kernels as EK

    rng = np.random.default_rng(8)
    x = np.concatenate([rng.standard_normal(3000) * 4, rng.uniform(-800, 800, 3000),
                        10.0 ** rng.uniform(-45, 38, 1000) * rng.choice([-1, 1], 1000),
                        [np.nan, np.inf, -np.inf, 0.0, -0.0, 700.0, 700.0001, -686.0, -686.0001, -745.2, 5e-324]])
    tabs = fast._consts()
    out = []
    for blocks in (True, False):
        hi, lo, ok = np.empty(x.size), np.empty(x.size), np.empty(x.size, bool)
        if blocks:
            EK.sigmoid_blocks(x, *tabs, hi, lo, ok)
        else:
            EK.elementwise(EK.KERNELS["sigmoid"], x, x, *tabs, 1.0, 0.0, hi, lo, ok)
        out.append((hi, lo, ok))
    for a, b in zip(*out):
        assert np.array_equal(a, b, equal_nan=True)

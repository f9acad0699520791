"""Gradient differential tests: torch autograd and JAX vjp (eager and jit) vs the exact derivative.

1. Every quantity, every registered variant, all four dtypes, on small moderate inputs: no
   non-finite mismatch and a condition-aware error |g - g*| / (u (N + |g*|)) within a bound that
   grows with the row length (what a backward-stable computation in that dtype achieves).
2. The gradient behaviours infoaudit reports, asserted specifically (measured on torch 2.13 CPU
   and jax 0.10.2 CPU): NaN gradients on fully masked rows, softmax - onehot cancellation at a
   confident target, sigmoid'(x) = s (1 - s) cancellation, XLA's flush of subnormal gradients,
   F.softplus's threshold, xlogy / clamped-log gradients at p = 0, 1 - exp(logvar) cancellation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import backend_or_skip
from infoaudit import quantities as Q
from infoaudit.backends.grad import is_jit_variant
from infoaudit.differential import Unsupported
from infoaudit.grad_compare import compare_grad

DTYPES = ("float16", "bfloat16", "float32", "float64")
NINF = -math.inf

# Variants whose *function* differs from the quantity off the probability simplex (they normalise
# their inputs, or add -p + q): their gradients are checked by their own identities below.
OFF_SIMPLEX = {("torch", "entropy", "distributions"), ("torch", "kl_divergence", "distributions"),
               ("jax", "kl_divergence", "kl_div_jit"), ("jax", "kl_divergence", "kl_div_eager")}


def _moderate(q, b=2, n=4):
    rng = np.random.default_rng(5 + list(Q.REGISTRY).index(q.name))
    out = []
    for a in q.args:
        k = a.kind
        if k in (Q.LOGITS, Q.REAL, Q.MU, Q.LOGVAR, Q.LOGPROBS):
            shape = (b,) if q.structure == Q.ELEMENTWISE else (b, n)
            v = rng.uniform(0.5, 2.0, size=shape) * rng.choice([-1, 1], size=shape)
            out.append(-np.abs(v) - 0.5 if k == Q.LOGPROBS else v)
        elif k == Q.PROBS:
            v = rng.uniform(0.1, 1.0, (b, n))
            out.append(v / v.sum(-1, keepdims=True))
        elif k in (Q.PROB, Q.TARGET01):
            out.append(rng.uniform(0.1, 0.9, b))
        elif k == Q.TABLE:
            v = rng.uniform(0.1, 1.0, (b, 2, 3))
            out.append(v / v.sum((-2, -1), keepdims=True))
        elif k == Q.LABEL:
            out.append(np.arange(b, dtype=np.int64) % n)
        else:
            out.append({Q.TEMPERATURE: 2.0, Q.EPS: 0.125, Q.BETA: 0.5}[k])
    return out


def _variants(be, full=False):
    """torch: every variant in every dtype. jax (XLA compiles every op of an eager VJP: ~1 s a
    call on CPU): the first jit variant of each quantity in every dtype and the first eager one in
    float32; ``full``: every variant in every dtype (the slow test)."""
    mod = backend_or_skip(be)
    rows = []
    for name, ops in mod.ops().items():
        if "value_only" in Q.get(name).tags:  # no exact derivative registered
            continue
        first_jit = next((op.variant for op in ops if is_jit_variant(op.variant)), None)
        first_eager = next((op.variant for op in ops if not is_jit_variant(op.variant)), None)
        for op in ops:
            for dt in DTYPES:
                if be == "jax" and not full and not (op.variant == first_jit or
                                                     (op.variant == first_eager and dt == "float32")):
                    continue
                rows.append((name, op.variant, dt))
    return mod, rows


def _bound(q, n=4):
    units = {Q.ROW: n, Q.ROW_REDUCE: n, Q.TABLE_REDUCE: 6, Q.ELEMENTWISE: 1}[q.structure]
    return 8.0 * units * max(1, len(q.float_args)) + 8


def _check_moderate(be, full):
    mod, rows = _variants(be, full)
    failures, checked = [], 0
    for name, variant, dt in rows:
        q = Q.get(name)
        args = _moderate(q)
        try:
            res = compare_grad(name, mod, *args, dtype=dt, variant=variant)
        except Unsupported as e:
            failures.append((name, variant, dt, f"unsupported: {e}"))
            continue
        for c in res:
            checked += 1
            s = c.summary
            if (be, name, variant) in OFF_SIMPLEX:
                continue
            if s["nonfinite_total"]:
                failures.append((name, variant, dt, c.arg, s["nonfinite"]))
            bound = 2000.0 if q.args[q.arg_names.index(c.arg)].is_scalar else _bound(q)
            if s["max_cae"] is not None and s["max_cae"] > bound:
                failures.append((name, variant, dt, c.arg, "cae", s["max_cae"], bound))
    assert checked > 80
    assert not failures, failures


@pytest.mark.parametrize("be", ["torch", "jax"])
def test_gradients_match_exact_on_moderate_inputs(be):
    _check_moderate(be, full=False)


@pytest.mark.slow
def test_every_jax_variant_in_every_dtype():
    _check_moderate("jax", full=True)


def test_off_simplex_variants_obey_their_own_identities():
    torch = backend_or_skip("torch")
    p = np.array([[0.125, 0.25, 0.625]])
    q = np.array([[0.25, 0.5, 0.25]])
    r = compare_grad("entropy", torch, p, dtype="float64", variant="distributions")["p"]
    g = r.exact.hi
    # Categorical(probs=p) normalises: gradient of H(p / sum p) = g - (g . p) 1 on the simplex
    np.testing.assert_allclose(r.result, g - np.sum(g * p, -1, keepdims=True), rtol=1e-13)
    jax = backend_or_skip("jax")
    res = compare_grad("kl_divergence", jax, p, q, dtype="float64", variant="kl_div_jit")
    # jax.scipy.special.kl_div = p log(p/q) - p + q: gradients shifted by (-1, +1)
    np.testing.assert_allclose(res["p"].result, res["p"].exact.hi - 1, rtol=1e-13)
    np.testing.assert_allclose(res["q"].result, res["q"].exact.hi + 1, rtol=1e-13)


def test_numpy_and_scipy_have_no_autodiff():
    for be in ("numpy", "scipy"):
        mod = backend_or_skip(be)
        with pytest.raises(Unsupported, match="no autodiff"):
            compare_grad("softmax", mod, np.zeros((1, 3)), dtype="float32")


# ---------------------------------------------------------------- specific findings


MASKED = np.array([[NINF, NINF, NINF], [0.0, 1.0, NINF]])


@pytest.mark.parametrize("be,variant", [("torch", None), ("jax", "jit"), ("jax", "eager")])
@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_row_gives_nan_gradient(be, variant, dtype):
    """Exact (DESIGN convention): 0 on an all -inf row. torch and jax.nn: NaN, every dtype."""
    mod = backend_or_skip(be)
    if be == "jax" and variant == "eager" and dtype != "float32":
        pytest.skip("eager: float32 only (XLA compile time); jit covers every dtype")
    cases = [("logsumexp", ()), ("softmax", ()), ("log_softmax", ()), ("cross_entropy", (np.array([0, 1]),))]
    if be == "jax" and (variant == "eager" or dtype != "float32"):
        cases = cases[:2]  # compile time
    for name, extra in cases:
        c = compare_grad(name, mod, MASKED, *extra, dtype=dtype, variant=variant)["z"]
        assert np.isnan(c.result[0]).all(), name
        assert (c.errors.expected[0] == 0).all()
        assert (c.errors.nonfinite[0] != "").all()
        assert np.isfinite(c.result[1]).all() and c.result[1, 2] == c.errors.expected[1, 2]  # masked entry ok


@pytest.mark.parametrize("be,variant", [("torch", None), ("jax", "jit")])
def test_confident_target_cross_entropy_gradient_cancels(be, variant):
    """dCE/dz_y = p_y - 1 = -2e^-20/(1 + 2e^-20): softmax - onehot gives 0 in float32 and ~1e8 ULP
    in float64, while kappa ~ 20: instability, not conditioning."""
    mod = backend_or_skip(be)
    z, y = np.array([[20.0, 0.0, 0.0]]), np.array([0])
    c32 = compare_grad("cross_entropy", mod, z, y, dtype="float32", variant=variant)["z"]
    assert c32.result[0, 0] == 0 and c32.errors.expected[0, 0] == pytest.approx(-4.122307e-9, rel=1e-6)
    assert c32.flushed[0, 0] and c32.cae[0, 0] > 1e5
    c64 = compare_grad("cross_entropy", mod, z, y, dtype="float64", variant=variant)["z"]
    assert c64.errors.rel[0, 0] > 1e-9 and c64.cae[0, 0] > 1e5


@pytest.mark.parametrize("be,variant", [("torch", None), ("jax", "jit")])
def test_sigmoid_gradient_cancellation(be, variant):
    """sigmoid'(25) = e^-25 / (1 + e^-25)^2 ~ 1.389e-11; s (1 - s) loses it: float32 0,
    float64 relative error ~4e-6."""
    mod = backend_or_skip(be)
    x = np.array([25.0])
    c32 = compare_grad("sigmoid", mod, x, dtype="float32", variant=variant)["x"]
    assert c32.result[0] == 0 and c32.errors.expected[0] > 1e-11
    c64 = compare_grad("sigmoid", mod, x, dtype="float64", variant=variant)["x"]
    assert 1e-6 < c64.errors.rel[0] < 1e-5 and c64.cae[0] > 1e6


def test_subnormal_gradients_flushed_by_xla_not_by_torch():
    """softplus'(-100) = sigmoid(-100) = 3.78e-44, a float32 subnormal: torch returns it exactly,
    XLA on CPU flushes it to 0 (flush-to-zero), jit and eager alike."""
    torch, jax = backend_or_skip("torch"), backend_or_skip("jax")
    x = np.array([-100.0])
    t = compare_grad("softplus", torch, x, dtype="float32")["x"]
    assert t.result[0] == t.errors.expected[0] > 0
    for v in ("eager", "jit"):
        j = compare_grad("softplus", jax, x, dtype="float32", variant=v)["x"]
        assert j.result[0] == 0 and j.flushed[0]


def test_torch_softplus_threshold_gradient():
    """F.softplus returns x above threshold=20, so its gradient there is exactly 1."""
    torch = backend_or_skip("torch")
    c = compare_grad("softplus", torch, np.array([25.0]), dtype="float64")["x"]
    assert c.result[0] == 1.0 and c.errors.expected[0] < 1.0 and c.errors.ulp[0] > 1e5


def test_bce_gradient_at_zero_probability_and_target():
    """d BCE/dp at p = t = 0 is exactly 1 (the t log p term is 0 by convention). torch's
    F.binary_cross_entropy: 0 in float32 / float64, NaN in float16; xlogy-based (jax): NaN."""
    torch, jax = backend_or_skip("torch"), backend_or_skip("jax")
    p, t = np.array([0.0, 0.5]), np.array([0.0, 0.5])
    for dt in ("float32", "float64"):
        c = compare_grad("binary_cross_entropy", torch, p, t, dtype=dt)["p"]
        assert c.result[0] == 0 and c.errors.expected[0] == 1
    assert np.isnan(compare_grad("binary_cross_entropy", torch, p, t, dtype="float16")["p"].result[0])
    for dt in DTYPES:
        c = compare_grad("binary_cross_entropy", jax, p, t, dtype=dt, variant="jit")["p"]
        assert np.isnan(c.result[0]) and c.errors.nonfinite[0] == "nan"


def test_kl_gradient_at_zero_probability():
    """d KL/dp_j at p_j = 0 < q_j is -inf (one-sided). F.kl_div: NaN (wrong infinity);
    jax rel_entr: 0 (finite at the boundary)."""
    torch, jax = backend_or_skip("torch"), backend_or_skip("jax")
    p, q = np.array([[0.0, 0.5, 0.5]]), np.array([[0.5, 0.25, 0.25]])
    c = compare_grad("kl_divergence", torch, p, q, dtype="float32", variant="native")["p"]
    assert np.isnan(c.result[0, 0]) and c.errors.expected[0, 0] == -math.inf
    assert c.errors.nonfinite[0, 0] == "wrong_infinity"
    c = compare_grad("kl_divergence", jax, p, q, dtype="float32", variant="jit")["p"]
    assert c.result[0, 0] == 0 and c.boundary[0, 0]


@pytest.mark.parametrize("be,variant", [("torch", "closed_form"), ("jax", "jit")])
def test_gaussian_kl_logvar_gradient_cancellation(be, variant):
    """d/dlogvar = expm1(logvar)/2; the closed form's -(1 - exp(logvar))/2 cancels near 0."""
    mod = backend_or_skip(be)
    mu, lv = np.array([[0.5, 0.5]]), np.array([[1e-3, -2e-3]])
    for dt in ("float32", "float64"):
        c = compare_grad("gaussian_kl", mod, mu, lv, dtype=dt, variant=variant)["logvar"]
        assert c.cae.max() > 20
    c = compare_grad("gaussian_kl", mod, mu, lv, dtype="bfloat16", variant=variant)["logvar"]
    assert c.flushed.any()


def test_label_smoothing_masked_row_and_eps_gradient():
    torch, jax = backend_or_skip("torch"), backend_or_skip("jax")
    z, y = np.array([[0.0, 1.0, 2.0], [NINF, NINF, NINF]]), np.array([1, 0])
    r = compare_grad("label_smoothing_cross_entropy", torch, z, y, 0.125, dtype="float32")
    assert np.isnan(r["z"].result[1]).all() and "eps" in r.skipped and "float" in r.skipped["eps"]
    r = compare_grad("label_smoothing_cross_entropy", jax, z, y, 0.125, dtype="float32", variant="eager")
    assert np.isnan(r["z"].result[1]).all() and np.isnan(r["eps"].result) and r["eps"].exact.hi == 0
    r = compare_grad("label_smoothing_cross_entropy", jax, z, y, 0.125, dtype="float32", variant="jit")
    assert "eps" in r.skipped and "static" in r.skipped["eps"]


def test_jax_custom_vjp_rule_is_used_when_passed_directly():
    """A jax.custom_vjp object carries __wrapped__ (the undecorated function); the adapter must
    differentiate the object itself, so a (deliberately doubled) custom rule shows in the gradient."""
    backend_or_skip("jax")
    import jax

    from infoaudit.backends import Op

    @jax.custom_vjp
    def lse(z):
        return jax.nn.logsumexp(z, axis=-1)

    def fwd(z):
        return lse(z), z

    def bwd(z, g):
        return (2.0 * g[..., None] * jax.nn.softmax(z, axis=-1),)

    lse.defvjp(fwd, bwd)
    z = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    r = compare_grad("logsumexp", "jax", z, dtype="float32", op=Op("user", lse, False, "lse"), condition=False)
    exact = r["z"].errors.expected
    assert np.allclose(r["z"].result, 2.0 * exact, rtol=1e-6)

"""Bit-exact transport: values generated in the audited dtype reach NumPy, torch and JAX with
identical bits (bfloat16 included) and results come back without a rounding step."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from infoaudit.backends import BackendUnavailable, Op, load
from infoaudit.differential import compare, prepare_inputs, run_op
from infoaudit.dtypes import DTYPES, cast, np_dtype
from infoaudit.quantities import REGISTRY

UINT = {"float16": np.uint16, "bfloat16": np.uint16, "float32": np.uint32, "float64": np.uint64}
BACKENDS = ("numpy", "torch", "jax")


def _mod(name):
    try:
        return load(name)
    except BackendUnavailable as e:
        pytest.skip(str(e))


def _devices(mod):
    return mod.devices()


def bit_patterns(dtype, n_random=20000):
    """Every bit pattern for the 16-bit formats; specials plus random patterns for the others."""
    u = UINT[dtype]
    if u is np.uint16:
        bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    else:
        rng = np.random.default_rng(5)
        width = np.dtype(u).itemsize * 8
        rnd = rng.integers(0, 1 << 62, size=n_random, dtype=np.uint64)
        rnd = (rnd << np.uint64(2)) | rng.integers(0, 4, size=n_random, dtype=np.uint64)
        rnd = rnd.astype(u) if width == 32 else rnd
        f = np.array([0.0, -0.0, np.inf, -np.inf, 1.0, -1.0], dtype=np_dtype(dtype)).view(u)
        sub = np.arange(1, 64, dtype=u)  # smallest subnormals
        sub = np.concatenate([sub, sub | (u(1) << u(width - 1))])
        bits = np.concatenate([f, sub, rnd.astype(u)])
    return bits.view(np_dtype(dtype))


def _same_bits(a, b, dtype):
    """Identical bits; NaNs must stay NaN with the same sign (payload may be quieted)."""
    u = UINT[dtype]
    a = np.asarray(a)
    b = np.asarray(b)
    assert a.dtype == b.dtype == np_dtype(dtype), (a.dtype, b.dtype)
    av, bv = a.view(u), b.view(u)
    with np.errstate(invalid="ignore"):
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
    nan = np.isnan(a64)
    assert np.array_equal(np.isnan(b64), nan)
    assert np.array_equal(av[~nan], bv[~nan]), np.argwhere(av != bv)[:5]
    assert np.array_equal(np.signbit(a64[nan]), np.signbit(b64[nan]))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_bits(backend, dtype):
    mod = _mod(backend)
    a = bit_patterns(dtype)
    for dev in _devices(mod):
        back = mod.to_numpy(mod.to_backend(a, dev))
        _same_bits(a, back, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_sees_the_same_values(dtype):
    """Inside torch, the tensor holds the values NumPy holds (checked in float64, exactly)."""
    mod = _mod("torch")
    import torch

    a = bit_patterns(dtype)
    t = mod.to_backend(a, "cpu")
    assert str(t.dtype) == f"torch.{dtype}"
    got = t.to(torch.float64).numpy()
    with np.errstate(invalid="ignore"):
        want = a.astype(np.float64)
    fin = ~np.isnan(want)
    assert np.array_equal(got[fin], want[fin]) and np.isnan(got[~fin]).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_jax_sees_the_same_values(dtype):
    mod = _mod("jax")
    import jax
    import jax.numpy as jnp

    a = bit_patterns(dtype)
    x = mod.to_backend(a, "cpu")
    assert str(x.dtype) == dtype
    # widen inside JAX to float32 (exact for float16/bfloat16). Not to float64: XLA:CPU's
    # bfloat16 -> float64 convert flushes bfloat16 subnormals to 0 (denormals-are-zero, see the
    # DAZ findings), which is arithmetic, not transport.
    with jax.enable_x64(dtype == "float64"):
        got = np.asarray(x.astype(jnp.float32) if dtype in ("float16", "bfloat16") else x)
    with np.errstate(invalid="ignore"):
        got = got.astype(np.float64)
    with np.errstate(invalid="ignore"):
        want = a.astype(np.float64)
    fin = ~np.isnan(want)
    assert np.array_equal(got[fin], want[fin]) and np.isnan(got[~fin]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_reach_the_op_bit_exact(backend, dtype):
    """What an op receives is exactly prepare_inputs' rounding (the bits the reference sees)."""
    mod = _mod(backend)
    seen = {}

    def spy(z):
        seen["z"] = mod.to_numpy(z)
        return z

    # near-ties of every format: values whose rounding to bfloat16 through float32 would differ
    z = np.array([[1 + 2.0 ** -8 + 2.0 ** -30, 1 + 2.0 ** -11 + 2.0 ** -40, 1e-40, -3.3e38, 65519.0,
                   np.pi, -np.e, 1e-300, 1 + 2.0 ** -24 + 2.0 ** -60]])
    q = REGISTRY["softmax"]
    inputs = prepare_inputs(q, [z], dtype)
    assert inputs[0].dtype == np_dtype(dtype)
    assert np.array_equal(inputs[0].view(UINT[dtype]), cast(z, dtype).view(UINT[dtype]))
    for dev in _devices(mod):
        out = run_op(mod, Op("spy", spy, False, "identity"), inputs, dev)
        _same_bits(inputs[0], seen["z"], dtype)
        _same_bits(inputs[0], out, dtype)


def test_bfloat16_single_rounding_reaches_torch():
    """1 + 2^-8 + 2^-30 is just above a bfloat16 tie: one correct rounding gives 1 + 2^-7; a
    float64 -> float32 -> bfloat16 double rounding would give 1.0. torch must see 1 + 2^-7."""
    mod = _mod("torch")
    import torch

    x = prepare_inputs(REGISTRY["sigmoid"], [np.array([1 + 2.0 ** -8 + 2.0 ** -30])], "bfloat16")[0]
    t = mod.to_backend(x, "cpu")
    assert t.dtype == torch.bfloat16 and float(t[0]) == 1 + 2.0 ** -7


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", ("torch", "jax"))
def test_outputs_come_back_unrounded(backend, dtype):
    """Results are returned in the audited dtype and read back as-is: compare() adds no cast."""
    mod = _mod(backend)
    z = np.random.default_rng(0).normal(size=(3, 7)) * 3
    c = compare("log_softmax", mod, z, dtype=dtype, variant=mod.ops()["log_softmax"][0].variant)
    assert c.returned_dtype == dtype and c.notes == []
    # the values compare() judged are the framework's own output bits
    raw = mod.to_numpy(mod.ops()["log_softmax"][0].fn(*[mod.to_backend(v, "cpu") for v in c.inputs]))
    assert raw.dtype == np_dtype(dtype)
    assert np.array_equal(raw.astype(np.float64), c.result)


def test_bfloat16_numpy_dtype_is_ml_dtypes():
    assert np_dtype("bfloat16") == np.dtype(ml_dtypes.bfloat16)

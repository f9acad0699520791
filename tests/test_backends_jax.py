"""JAX backend: differential tests of every quantity x variant (jit, eager, optax) x dtype x device
on fixed moderate and extreme inputs against the exact reference (tolerances and known findings:
tests/known_findings.py), x64 containment, and the backend module's interface."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import known_findings as K
from conftest import backend_or_skip
from infoaudit.backends import BackendUnavailable, Op
from infoaudit.dtypes import DTYPES
from infoaudit.quantities import REGISTRY

BACKEND = "jax"
DEVICES = K.devices(BACKEND)   # "cpu" + "gpu" where one exists


def _variants():
    return K.variants(BACKEND)


@pytest.mark.jax
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", K.CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("quantity,variant", _variants())
def test_differential(quantity, variant, dtype, case, device):
    K.run_differential(BACKEND, quantity, variant, dtype, case, device)


def test_differential_gpu_collected_where_present():
    """The gpu parametrisations exist exactly when a device does; otherwise one skip says why."""
    why = K.accelerator_skip_reason(BACKEND, "gpu")
    if why:
        assert "gpu" not in DEVICES
        pytest.skip(why)
    assert "gpu" in DEVICES


@pytest.mark.jax
def test_every_quantity_has_jit_and_eager():
    mod = backend_or_skip(BACKEND)
    table = mod.ops()
    assert set(table) == set(REGISTRY), set(REGISTRY) ^ set(table)
    for q, ops in table.items():
        names = [o.variant for o in ops]
        assert "jit" in names and "eager" in names, (q, names)
        assert len(names) == len(set(names)), (q, names)
        assert all(isinstance(o, Op) and isinstance(o.native, bool) and o.call for o in ops)


@pytest.mark.jax
def test_optax_variants_present_when_installed():
    mod = backend_or_skip(BACKEND)
    pytest.importorskip("optax")
    table = mod.ops()
    for q in ("kl_divergence", "cross_entropy", "binary_cross_entropy_with_logits",
              "label_smoothing_cross_entropy", "distillation_loss", "rlhf_kl_penalty"):
        assert {"optax", "optax_eager"} <= {o.variant for o in table[q]}, q
    assert "optax" in mod.info()


@pytest.mark.jax
def test_optax_absent_is_skipped_with_reason(monkeypatch):
    mod = backend_or_skip(BACKEND)
    monkeypatch.setattr(mod, "_optax", lambda: (None, "optax variants: optax not importable (test)"))
    monkeypatch.setattr(mod, "_TABLE", None)
    table = mod.ops()
    assert not any(o.variant.startswith("optax") for ops in table.values() for o in ops)
    assert "optax variants: optax not importable (test)" in mod.info()["skipped"]
    monkeypatch.setattr(mod, "_TABLE", None)


@pytest.mark.jax
def test_findings_table_is_current():
    mod = backend_or_skip(BACKEND)
    assert K.stale_findings(BACKEND, mod.ops()) == []


@pytest.mark.jax
@pytest.mark.parametrize("variant", ["jit", "eager"])
def test_float64_runs_in_x64_without_leaking(variant):
    """float64 is computed in float64 (not silently truncated to float32) and x64 stays off."""
    mod = backend_or_skip(BACKEND)
    import jax
    import jax.numpy as jnp

    from infoaudit.differential import compare

    before = jax.config.read("jax_enable_x64")
    z = np.array([[1.0, 1.0 + 2.0 ** -40, -3.0, 700.0]])
    c = compare("logsumexp", mod, z, dtype="float64", variant=variant)
    assert c.returned_dtype == "float64" and not c.notes
    assert c.summary["max_ulp"] <= 1.0          # a float32 computation would be ~1e9 ULP off
    assert jax.config.read("jax_enable_x64") == before
    if not before:
        assert jnp.asarray(np.zeros(2)).dtype == jnp.float32  # the process default is untouched


def test_x64_state_in_a_fresh_process():
    """In a fresh default process: x64 off before, float64 audit, x64 still off after."""
    code = (
        "import numpy as np, jax, jax.numpy as jnp\n"
        "from infoaudit.differential import compare\n"
        "assert not jax.config.read('jax_enable_x64')\n"
        "for v in ('jit', 'eager'):\n"
        "    c = compare('softplus', 'jax', np.array([1e-20, 3.0, -40.0]), dtype='float64', variant=v)\n"
        "    assert c.returned_dtype == 'float64', c.returned_dtype\n"
        "assert not jax.config.read('jax_enable_x64')\n"
        "assert jnp.asarray(np.zeros(2)).dtype == jnp.float32\n"
        "print('ok')\n")
    pytest.importorskip("jax")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_module_import_does_not_import_jax():
    code = ("import sys, infoaudit, infoaudit.backends.jax_backend as j; "
            "from infoaudit.backends import status; "
            "assert 'jax' not in sys.modules and 'optax' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


@pytest.mark.jax
def test_info_devices_and_skip_reasons():
    mod = backend_or_skip(BACKEND)
    import jax

    info = mod.info()
    assert info["version"].startswith(jax.__version__)
    assert info["devices"][0] == "cpu"
    try:
        has_gpu = bool(jax.devices("gpu"))
    except RuntimeError:
        has_gpu = False
    if not has_gpu:
        assert any(s.startswith("gpu:") for s in info["skipped"]), info
        with pytest.raises(BackendUnavailable, match="gpu"):
            mod.to_backend(np.zeros(3, np.float32), "gpu")

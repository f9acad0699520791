"""PyTorch backend: differential tests of every quantity x variant x dtype x device on fixed
moderate and extreme inputs against the exact reference (tolerances and known findings:
tests/known_findings.py), plus the backend module's interface."""
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

BACKEND = "torch"
DEVICES = K.devices(BACKEND)   # "cpu" + "cuda" where one exists


def _variants():
    return K.variants(BACKEND)


@pytest.mark.torch
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", K.CASES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("quantity,variant", _variants())
def test_differential(quantity, variant, dtype, case, device):
    K.run_differential(BACKEND, quantity, variant, dtype, case, device)


def test_differential_cuda_collected_where_present():
    """The cuda parametrisations exist exactly when a device does; otherwise one skip says why."""
    why = K.accelerator_skip_reason(BACKEND, "cuda")
    if why:
        assert "cuda" not in DEVICES
        pytest.skip(why)
    assert "cuda" in DEVICES


@pytest.mark.torch
def test_every_quantity_has_an_op():
    mod = backend_or_skip(BACKEND)
    table = mod.ops()
    assert set(table) == set(REGISTRY), set(REGISTRY) ^ set(table)
    for q, ops in table.items():
        assert ops and all(isinstance(o, Op) and isinstance(o.native, bool) and o.call for o in ops), q
        names = [o.variant for o in ops]
        assert len(names) == len(set(names)), (q, names)
    # the two common ways of the Gaussian KL are both registered
    assert {o.variant for o in table["gaussian_kl"]} == {"closed_form", "distributions"}
    assert {"native", "log_target"} <= {o.variant for o in table["kl_divergence"]}


@pytest.mark.torch
def test_findings_table_is_current():
    mod = backend_or_skip(BACKEND)
    assert K.stale_findings(BACKEND, mod.ops()) == []


def test_module_import_does_not_import_torch():
    code = ("import sys, infoaudit, infoaudit.backends.torch_backend as t; "
            "from infoaudit.backends import status; "
            "assert 'torch' not in sys.modules, 'imported at module import'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


@pytest.mark.torch
def test_info_devices_and_skip_reasons():
    mod = backend_or_skip(BACKEND)
    import torch

    info = mod.info()
    assert info["version"] == torch.__version__
    assert info["devices"][0] == "cpu"
    if torch.cuda.is_available():
        assert "cuda" in info["devices"]
    else:
        assert "cuda" not in info["devices"]
        assert any("torch.cuda.is_available() is False" in s for s in info["skipped"]), info
        with pytest.raises(BackendUnavailable, match="cuda"):
            mod.to_backend(np.zeros(3, np.float32), "cuda")


@pytest.mark.torch
def test_list_backends_shows_torch(capsys):
    backend_or_skip(BACKEND)
    from infoaudit.cli import main

    assert main(["list", "--backends"]) == 0
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if ln.startswith("torch")]
    assert line and "devices: cpu" in line[0], out

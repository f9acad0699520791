"""The environment fingerprint (infoaudit.results.fingerprint) and its hooks in the run's
environment, the gate's --json and the bench environment."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infoaudit.results import fingerprint as F

STATES = {"ieee", "ftz", "daz", "ftz+daz"}


def test_fingerprint_numpy_only_is_complete_and_json():
    fp = F.fingerprint(frameworks=("numpy",))
    json.dumps(fp, allow_nan=False)
    for k in ("fingerprint", "python", "platform", "machine", "packages", "cpu", "env", "threads", "frameworks", "fp"):
        assert k in fp, k
    # every package is listed; absent ones as None
    assert set(fp["packages"]) == set(F.PACKAGES)
    assert fp["packages"]["numpy"] and fp["packages"]["mpmath"]
    assert all(v is None or isinstance(v, str) for v in fp["packages"].values())
    assert fp["cpu"]["model"] and isinstance(fp["cpu"]["flags"], list)
    assert fp["frameworks"]["numpy"]["available"] is True
    # FTZ/DAZ probed per dtype for numpy
    ftz = fp["fp"]["ftz"]["numpy/cpu"]
    assert set(ftz) == set(F.FP_DTYPES) and set(ftz.values()) <= STATES
    assert ftz["float64"] == "ieee"  # numpy keeps float64 subnormals unless something switched the CPU to FTZ


def test_probe_fp_false_skips_the_probes():
    fp = F.fingerprint(probe_fp=False, frameworks=("numpy",))
    assert fp["fp"]["ftz"] is None and "settings" in fp["fp"]


def test_importing_and_a_numpy_fingerprint_import_neither_torch_nor_jax():
    code = ("import sys, infoaudit.results.fingerprint as F, infoaudit.results.diff, infoaudit.results.compare_cells, "
            "infoaudit.results.diff_cmd\n"
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules\n"
            "fp = F.fingerprint(frameworks=('numpy',))\n"
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, 'imported'\n"
            "for fw in ('torch', 'jax'):\n"
            "    info = fp['frameworks'][fw]\n"
            "    assert info.get('probed') is False or info['available'] is False, info\n"
            "    assert info.get('reason'), info\n"
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_a_framework_that_fails_to_import_is_recorded_with_the_reason(monkeypatch):
    real = F._import

    def fake(name):
        if name == "torch":
            return None, "import failed: ImportError: libcudart.so.12: cannot open shared object file"
        return real(name)

    monkeypatch.setattr(F, "_import", fake)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    fp = F.fingerprint(frameworks=("numpy", "torch"))
    t = fp["frameworks"]["torch"]
    assert t["available"] is False and "libcudart" in t["reason"]
    assert "torch/cpu" not in fp["fp"]["ftz"]


def test_cpu_flags_keep_the_kernel_selecting_ones(tmp_path, monkeypatch):
    x86 = tmp_path / "cpuinfo"
    x86.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                   "flags\t\t: fpu vme sse2 ssse3 sse4_1 avx avx2 fma f16c avx512f avx512bw avx512_bf16 amx_tile "
                   "amx_bf16 hypervisor lm\n\nprocessor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu\n")
    real_open = open

    def fake_open(path, *a, **k):
        return real_open(x86 if path == "/proc/cpuinfo" else path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    info = F._cpuinfo()
    assert info["model"] == "Test CPU 9000"
    assert info["flags"] == sorted(["sse2", "ssse3", "sse4_1", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw",
                                    "avx512_bf16", "amx_tile", "amx_bf16"])
    arm = tmp_path / "cpuinfo"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimdhp fphp sve bf16 i8mm crc32\nCPU part\t: 0xd40\n")
    assert F._cpuinfo()["flags"] == ["asimd", "asimdhp", "bf16", "fphp", "i8mm", "sve"]


def test_env_vars_that_change_answers_are_recorded(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=true")
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = F.env_vars()
    assert env["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=true" and env["NVIDIA_TF32_OVERRIDE"] == "0"
    assert "OMP_NUM_THREADS" not in env


def test_fp_state_is_probed_again_not_cached(monkeypatch):
    from infoaudit.harness import ftz

    calls = []
    raw = ftz.probe.__wrapped__

    def counting(*a):
        calls.append(a)
        return raw(*a)

    monkeypatch.setattr(ftz.probe, "__wrapped__", counting)
    F.fp_state(frameworks=("numpy",))
    F.fp_state(frameworks=("numpy",))
    assert len([c for c in calls if c[0] == "numpy"]) == 2 * len(F.FP_DTYPES)


def test_fp_changes_names_the_differences_and_orders_them():
    a = {"packages": {"ml_dtypes": "0.6.0", "numpy": "2.4.6"}, "fp": {"taken": "t1", "ftz": {"jax/cpu": {"float32": "ieee"}}},
         "threads": {"torch": 2}, "taken": "x"}
    b = {"packages": {"ml_dtypes": "0.7.0", "numpy": "2.4.6"}, "fp": {"taken": "t2", "ftz": {"jax/cpu": {"float32": "ftz+daz"}}},
         "threads": {"torch": 8}, "taken": "y"}
    ch = F.fp_changes(a, b)
    assert [c["path"] for c in ch] == ["packages.ml_dtypes", "fp.ftz.jax/cpu.float32", "threads.torch"]
    assert [c["kind"] for c in ch] == ["version", "fp", "threads"]
    assert F.fp_changes(a, a) == []
    # only_common: a path one side never recorded is not a change
    assert F.fp_changes({"packages": {"numpy": "1"}}, {"packages": {"numpy": "1"}, "cpu": {"flags": ["avx"]}},
                        only_common=True) == []


def test_run_environment_has_the_fingerprint():
    from infoaudit.results import schema as R

    env = R.environment([{"backend": "numpy", "available": True}, {"backend": "scipy", "available": True},
                         {"backend": "torch", "available": False, "reason": "not installed"}])
    fp = env["fingerprint"]
    assert fp["fingerprint"] == F.FINGERPRINT_VERSION and "numpy/cpu" in fp["fp"]["ftz"]
    json.dumps(env, allow_nan=False)


def test_gate_json_document_has_the_fingerprint():
    from infoaudit.gate.cli import json_document

    class Rep:
        framework = "numpy"

        def as_dict(self):
            return {"infoaudit_gate": 1, "quantity": "softmax", "cells": {}}

    d = json_document(Rep())
    assert d["quantity"] == "softmax" and d["fingerprint"]["fp"]["ftz"]["numpy/cpu"]


def test_bench_environment_fingerprint():
    from infoaudit.bench.environment import fingerprint_of

    fp = fingerprint_of(())
    assert fp["frameworks"]["numpy"]["available"] and "numpy/cpu" in fp["fp"]["ftz"]


def test_torch_settings_and_probe():
    pytest.importorskip("torch")
    fp = F.fingerprint(frameworks=("torch",))
    t = fp["frameworks"]["torch"]
    assert t["available"] and t["version"] and "cpu" in t["devices"]
    s = fp["fp"]["settings"]["torch"]
    assert isinstance(s["allow_tf32_matmul"], bool) and isinstance(s["allow_tf32_cudnn"], bool)
    assert s["float32_matmul_precision"] in ("highest", "high", "medium")
    assert set(fp["fp"]["ftz"]["torch/cpu"].values()) <= STATES
    assert isinstance(fp["threads"]["torch"], int)


def test_jax_settings_and_probe():
    pytest.importorskip("jax")
    fp = F.fingerprint(frameworks=("jax",))
    j = fp["frameworks"]["jax"]
    assert j["available"] and j["jaxlib"] and j["devices"]
    assert "jax_default_matmul_precision" in fp["fp"]["settings"]["jax"]
    ftz = fp["fp"]["ftz"]["jax/cpu"]
    assert set(ftz.values()) <= STATES
    # XLA on CPU keeps float16 subnormals (the docstring of infoaudit.harness.ftz)
    assert ftz["float16"] == "ieee"

"""`infoaudit gate` as a CI step: exit codes, output, annotations, reports, config and hostile input.

Every test runs the real command in a subprocess (the process boundary is what CI sees).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def gate(*args, cwd=ROOT, env=None, timeout=300):
    e = dict(os.environ)
    e.pop("GITHUB_ACTIONS", None)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "infoaudit.cli", "gate", *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=timeout)


def write(tmp_path, name, code):
    p = tmp_path / name
    p.write_text(textwrap.dedent(code))
    return p


NUMPY_IMPLS = """
import numpy as np, time

def good(z):
    m = np.max(z, -1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp((z - m).astype(np.float64))
    return (e / e.sum(-1, keepdims=True)).astype(z.dtype)

def naive(z):
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)

def raises(z):
    raise ValueError("not implemented for this shape")

def wrong_shape(z):
    return good(z)[..., 0]

def wrong_dtype(z):
    return good(z).astype(np.float64)

def not_array(z):
    return float(good(z).sum())

def mutates(z):
    z[...] = 0
    return good(z)

def hangs(z):
    time.sleep(1000)

def hangs_in_native_code(z):
    import signal
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # the alarm goes to another thread
    time.sleep(1000)  # ... and this C call never returns to the interpreter loop

value = 3
"""


@pytest.fixture
def impls(tmp_path):
    write(tmp_path, "user_impls.py", NUMPY_IMPLS)
    return tmp_path


def test_stable_passes_unstable_fails_with_reproducer(impls):
    ok = gate("--impl", "user_impls:good", "--quantity", "softmax", "--examples", "10", cwd=impls)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS  softmax float32" in ok.stdout and "PASS  softmax float16" in ok.stdout
    line = next(ln for ln in ok.stdout.splitlines() if ln.startswith("PASS  softmax float32"))
    assert "grade " in line and "under default (envelope and better pass)" in line, line
    assert "the conditioning allows" in line and "a stable algorithm's envelope" in line and " -> " in line, line
    bad = gate("--impl", "user_impls:naive", "--quantity", "softmax", "--examples", "10", cwd=impls)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "FAIL  softmax float32" in bad.stdout and "numerical failure: FAIL under default" in bad.stdout
    assert "reproducer" in bad.stdout and "from user_impls import naive" in bad.stdout
    assert "# expected:" in bad.stdout and "# returned:" in bad.stdout


def test_zoo_member_via_cli():
    r = gate("--impl", "tests.zoo.zoo_numpy:logsumexp_no_inf_guard", "--quantity", "logsumexp", "--examples", "5")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "all -inf" in r.stdout or "-inf" in r.stdout


@pytest.mark.parametrize("impl, needle", [
    ("nosuchmodule:f", "does not import"),
    ("user_impls:nosuch", "has no attribute"),
    ("user_impls:value", "is not callable"),
    ("user_impls", "expected MODULE:FUNCTION"),
])
def test_bad_impl_is_a_usage_error(impls, impl, needle):
    r = gate("--impl", impl, "--quantity", "softmax", cwd=impls)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_module_raising_on_import_is_a_usage_error(tmp_path):
    write(tmp_path, "broken.py", "raise RuntimeError('config file missing')\n")
    r = gate("--impl", "broken:f", "--quantity", "softmax", cwd=tmp_path)
    assert r.returncode == 2 and "RuntimeError: config file missing" in r.stderr


def test_unknown_quantity_lists_the_known_ones(impls):
    r = gate("--impl", "user_impls:good", "--quantity", "softmx", cwd=impls)
    assert r.returncode == 2
    assert "unknown quantity 'softmx'" in r.stderr and "log_softmax" in r.stderr and "gaussian_kl" in r.stderr


def test_framework_not_installed_is_a_usage_error(impls, tmp_path):
    fake = tmp_path / "fake_site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named torch (blocked for the test)')\n")
    r = gate("--impl", "user_impls:good", "--quantity", "softmax", "--framework", "torch", cwd=impls,
             env={"PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{tmp_path / 'fake_site'}"})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "'torch' is not installed" in r.stderr


def test_bad_option_values_are_usage_errors(impls):
    r = gate("--impl", "user_impls:good", "--quantity", "softmax", "--dtype", "float8", cwd=impls)
    assert r.returncode == 2 and "unknown dtype" in r.stderr
    r = gate("--impl", "user_impls:good", "--quantity", "softmax", "--framework", "tensorflow", cwd=impls)
    assert r.returncode == 2
    r = gate("--impl", "user_impls:good", "--quantity", "softmax", "--profile", "nope", cwd=impls)
    assert r.returncode == 2 and "unknown profile" in r.stderr


@pytest.mark.parametrize("impl, kind", [
    ("raises", "implementation raised: raised ValueError: not implemented for this shape"),
    ("wrong_shape", "wrong shape"),
    ("wrong_dtype", "wrong dtype"),
    ("not_array", "not an array"),
    ("mutates", "mutated its input"),
])
def test_hostile_implementations_fail_with_what_happened(impls, impl, kind):
    r = gate("--impl", f"user_impls:{impl}", "--quantity", "softmax", "--dtype", "float32", "--examples", "3", cwd=impls)
    assert r.returncode == 1, r.stdout + r.stderr
    assert kind in r.stdout, r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_hang_is_reported_as_a_failure(impls):
    t0 = time.monotonic()
    r = gate("--impl", "user_impls:hangs", "--quantity", "softmax", "--dtype", "float32", "--timeout", "1", cwd=impls)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "implementation hung" in r.stdout and "timeout of 1 s" in r.stdout
    assert time.monotonic() - t0 < 60


def test_hang_in_native_code_ends_the_gate_with_exit_1(impls):
    r = gate("--impl", "user_impls:hangs_in_native_code", "--quantity", "softmax", "--dtype", "float32",
             "--timeout", "1", cwd=impls, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "could not be interrupted" in r.stdout


def test_github_annotations_junit_and_json(impls, tmp_path):
    junit = tmp_path / "out" / "gate.xml"
    js = tmp_path / "out" / "gate.json"
    r = gate("--impl", "user_impls:naive", "--quantity", "softmax", "--examples", "3", "--junit-xml", str(junit),
             "--json", str(js), cwd=impls, env={"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(impls)})
    assert r.returncode == 1
    errs = [ln for ln in r.stdout.splitlines() if ln.startswith("::error ")]
    assert errs and "file=user_impls.py" in errs[0] and "line=" in errs[0] and "%0A" in errs[0]
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite.get("failures") == "2" and suite.get("tests") == "2"
    assert "reproducer" in (suite.find("testcase/failure").text or "")
    doc = json.loads(js.read_text())
    assert doc["exit_code"] == 1 and doc["cells"]["float32"]["verdict"] == "fail"
    assert doc["cells"]["float32"]["failure"]["reproducer"]
    cell = doc["cells"]["float32"]
    assert cell["profile"] == "default" and cell["grade"] in ("unstable", "invariant", "nonfinite")
    assert cell["grades"][cell["grade"]] > 0 and cell["why"].startswith("FAIL under default")
    assert cell["thresholds"]["pass"] == "envelope" and cell["thresholds"]["reasons"]["pass"]
    # the JSON is a baseline: the same implementation is not worse than itself
    r2 = gate("--impl", "user_impls:naive", "--quantity", "softmax", "--examples", "3", "--baseline", str(js), cwd=impls)
    assert r2.returncode == 0, r2.stdout + r2.stderr


def test_pyproject_configuration_and_custom_profile(impls):
    (impls / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.infoaudit]
        examples = 4
        dtype = "float32"
        profile = "lenient"

        [tool.infoaudit.profiles.lenient]
        extends = "default"
        [[tool.infoaudit.profiles.lenient.rule]]
        quantity = "softmax"
        dtype = "*"
        nonfinite = 1000
        reason = "only for this test: tolerate the overflow NaNs of the naive softmax"
        [[tool.infoaudit.profiles.lenient.rule]]
        quantity = "softmax"
        dtype = "*"
        ulp = 1e30
        reason = "only for this test"
        [[tool.infoaudit.profiles.lenient.rule]]
        quantity = "softmax"
        dtype = "*"
        invariants = false
        reason = "only for this test"
    """))
    r = gate("--impl", "user_impls:naive", "--quantity", "softmax", cwd=impls)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "profile lenient" in r.stdout and "4 examples" in r.stdout and "float16" not in r.stdout
    # the command line wins over pyproject
    r = gate("--impl", "user_impls:naive", "--quantity", "softmax", "--profile", "default", cwd=impls)
    assert r.returncode == 1


def test_profile_without_reasons_is_rejected(impls, tmp_path):
    p = write(tmp_path, "p.toml", """
        [[rule]]
        quantity = "*"
        ulp = 3
    """)
    r = gate("--impl", "user_impls:good", "--quantity", "softmax", "--profile", str(p), cwd=impls)
    assert r.returncode == 2 and "reason" in r.stderr


def test_relative_rule_and_flush_to_zero_flags(impls):
    r = gate("--impl", "user_impls:good", "--quantity", "softmax", "--dtype", "float32", "--examples", "3",
             "--relative", "2", cwd=impls)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "relative rule k = 2" in r.stdout
    r = gate("--impl", "user_impls:good", "--quantity", "softmax", "--dtype", "float32", "--examples", "3",
             "--flush-to-zero", cwd=impls)
    assert r.returncode == 0 and "flush" in r.stdout


def test_jax_flush_to_zero_is_probed_and_said(tmp_path):
    pytest.importorskip("jax")
    write(tmp_path, "jimpl.py", """
        import jax
        def softmax(z):
            return jax.nn.softmax(z, axis=-1)
    """)
    r = gate("--impl", "jimpl:softmax", "--quantity", "softmax", "--dtype", "float32,float16", "--examples", "3",
             cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "framework jax" in r.stdout  # inferred from the module
    f32 = [ln for ln in r.stdout.splitlines() if "jax/cpu/float32" in ln]
    assert f32 and "flushes subnormal results to zero" in f32[0] and "(probed)" in f32[0]
    assert not [ln for ln in r.stdout.splitlines() if "jax/cpu/float16" in ln]


@pytest.mark.slow
def test_one_quantity_gate_time_budget():
    """One gate run (float32 + float16, default profile and budget) stays under 60 s."""
    t0 = time.monotonic()
    r = gate("--impl", "tests.zoo.zoo_torch:cross_entropy_native", "--quantity", "cross_entropy",
             "--dtype", "float32,float16")
    dt = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert dt < 60, dt

"""The pytest plugin (entry point pytest11 = infoaudit.pytest_plugin), used as a user would: a
separate directory with its own module and tests, run by pytest in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env():
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + ([e["PYTHONPATH"]] if e.get("PYTHONPATH") else []))
    e.pop("HYPOTHESIS_PROFILE", None)
    e.pop("GITHUB_ACTIONS", None)
    return e


def test_plugin_module_is_light():
    code = ("import sys, infoaudit.pytest_plugin; "
            "print(sorted(m for m in ('numpy', 'torch', 'jax', 'hypothesis', 'mpmath', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), check=True)
    assert out.stdout.strip() == "[]", out.stdout


USER_MODULE = """
import numpy as np

def good_softmax(z):
    m = np.max(z, -1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp((z - m).astype(np.float64))
    return (e / e.sum(-1, keepdims=True)).astype(z.dtype)

def naive_softmax(z):
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)
"""

USER_TESTS = """
import pytest
import infoaudit
from mylib import good_softmax, naive_softmax

def test_good():
    infoaudit.assert_stable(good_softmax, "softmax", framework="numpy")

def test_naive():
    infoaudit.assert_stable(naive_softmax, "softmax", framework="numpy")

def test_fixture(infoaudit_gate):
    infoaudit_gate(good_softmax, "softmax", framework="numpy")

@pytest.mark.infoaudit(impl=naive_softmax, quantity="softmax", framework="numpy", examples=2)
def test_marker_gates_after_the_body():
    pass

@pytest.mark.infoaudit(dtype="float16")
def test_marker_options_reach_assert_stable():
    rep = infoaudit.assert_stable(good_softmax, "softmax", framework="numpy")
    assert [r.dtype for r in rep.results] == ["float16"]

def test_unrelated():
    assert 1 + 1 == 2
"""


def test_user_suite_gates_inside_pytest(tmp_path):
    (tmp_path / "mylib.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "test_mylib.py").write_text(textwrap.dedent(USER_TESTS))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--infoaudit-examples", "3",
                        "--infoaudit-dtype", "float32", "test_mylib.py"],
                       cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "2 failed, 4 passed" in out, out
    assert "FAILED test_mylib.py::test_naive" in out and "FAILED test_mylib.py::test_marker_gates_after_the_body" in out
    # the same report as the CLI, with the copy-paste reproducer; the command-line dtype applies
    assert "FAIL  softmax float32" in out and "reproducer (shrunk; copy-paste)" in out
    assert "from mylib import naive_softmax as impl" in out
    assert "softmax float16" not in out.split("test_marker_options")[0]


def test_ini_options(tmp_path):
    (tmp_path / "mylib.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "pytest.ini").write_text("[pytest]\ninfoaudit_examples = 2\ninfoaudit_dtype = float16\n")
    (tmp_path / "test_ini.py").write_text(textwrap.dedent("""
        import infoaudit
        from mylib import good_softmax

        def test_it():
            rep = infoaudit.assert_stable(good_softmax, "softmax", framework="numpy")
            assert [r.dtype for r in rep.results] == ["float16"] and rep.examples == 2
    """))
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_ini.py"],
                       cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


def test_assert_stable_api_in_process():
    import pytest

    import infoaudit
    from infoaudit.gate.api import GateFailure, GateUsage

    def naive(z):
        import numpy as np
        e = np.exp(z)
        return e / e.sum(-1, keepdims=True)

    with pytest.raises(GateFailure) as ei:
        infoaudit.assert_stable(naive, "softmax", framework="numpy", dtype=["float32"], examples=0)
    assert "reproducer" in str(ei.value) and ei.value.report.exit_code == 1
    with pytest.raises(GateUsage, match="unknown option"):
        infoaudit.assert_stable(naive, "softmax", framework="numpy", exmaples=3)
    with pytest.raises(GateUsage, match="known quantities"):
        infoaudit.assert_stable(naive, "softmaks", framework="numpy")

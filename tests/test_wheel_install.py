"""infoaudit as a user installs it: the wheel of this checkout in a fresh venv, with the example
project examples/ci_gate (its gate command and its pytest suite) run there.

Nothing is downloaded. The wheel is built offline (``pip wheel --no-deps --no-build-isolation
--no-index``, from a copy of the sources so that the shared checkout gets no build/ or egg-info
writes). The fresh venv gets only the wheel (``pip --python VENV/bin/python install --no-deps
--no-index``); its dependencies (numpy, torch, numba, pytest, ...) come from the running
interpreter's site-packages through a ``.pth`` file with plain path lines. Python adds such a line
to sys.path without processing the ``.pth`` files inside that directory, so the editable install
of infoaudit that lives there (a ``.pth`` naming ``src/``, or an import-hook finder) stays
invisible: the test checks that before the wheel is installed ``import infoaudit`` does not find
the source tree, and afterwards that ``infoaudit.__file__`` is in the new venv's site-packages.

The example's gate and tests run with fewer generated examples than its pyproject sets (60), and
with the exact reference's numpy engine (``INFOAUDIT_FAST=numpy``) instead of the numba kernels,
which a fresh install compiles once (~15-20 s on 2 cores; the compiled engine is tested in
test_fast_path.py / test_reference_fast_kernels.py): this test is about installation, not
numerics (the same gate is covered in test_gate*.py), and it takes 35-65 s on a 2-core machine
shared with other work (~30 CPU-seconds) instead of ~80 s.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
EXAMPLE = ROOT / "examples" / "ci_gate"

# the gate step of examples/ci_gate/.github/workflows/numerics.yml (checked below to stay in sync)
GATE_ARGS = ["--impl", "my_softmax:softmax", "--quantity", "softmax", "--framework", "torch",
             "--junit-xml", "reports/infoaudit-gate.xml", "--json", "reports/infoaudit-gate.json"]
EXAMPLES = "8"  # generated examples per dtype after the fixed corpus (the example's pyproject: 60)
CACHES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".hypothesis", ".pytest_cache",
                                "build", "dist", "reports")


def run(cmd, *, cwd, env, timeout=600):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def show(p):
    return f"exit {p.returncode}\n--- stdout ---\n{p.stdout[-6000:]}\n--- stderr ---\n{p.stderr[-6000:]}"


def user_env(venv: Path) -> dict:
    """The environment of a user whose venv is activated (nothing of the test session leaks in)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTEST_ADDOPTS",
                        "PYTEST_PLUGINS", "PYTEST_CURRENT_TEST", "HYPOTHESIS_PROFILE", "INFOAUDIT_FAST",
                        "GITHUB_ACTIONS")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
    env["PYTHONNOUSERSITE"] = "1"
    env["INFOAUDIT_FAST"] = "numpy"  # skip the one-off numba compile of a fresh install (see above)
    return env


def dependency_dirs() -> list[str]:
    """site-packages of the running interpreter (where the dependencies are installed)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def source_files() -> set[str]:
    """Every file of the source package, as wheel member names (infoaudit/...)."""
    out = set()
    for p in (SRC / "infoaudit").rglob("*"):
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo"):
            out.add(p.relative_to(SRC).as_posix())
    return out


PROBE = r"""
import importlib.metadata as md, json, sys, sysconfig
import infoaudit
from infoaudit.gate import profiles
print(json.dumps({
    "file": infoaudit.__file__,
    "purelib": sysconfig.get_paths()["purelib"],
    "version": md.version("infoaudit"),
    "profile": profiles._builtin_path("default"),
    "sys_path": sys.path,
    "meta_path": [type(f).__name__ for f in sys.meta_path],
}))
"""


@pytest.mark.torch
def test_wheel_installs_and_runs_the_ci_gate_example(tmp_path):
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed: examples/ci_gate gates a torch softmax (pip install torch)")
    env = user_env(tmp_path / "venv")

    # 1. the wheel, built offline from a copy of the sources
    srccopy = tmp_path / "srccopy"
    shutil.copytree(SRC, srccopy / "src", ignore=CACHES)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, srccopy / name)
    dist = tmp_path / "dist"
    p = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "--disable-pip-version-check", "-q", "-w", dist, srccopy], cwd=tmp_path, env=env)
    assert p.returncode == 0, ("pip wheel failed (an offline build: the running environment needs the "
                               "[build-system] requirements of pyproject.toml, i.e. setuptools)\n" + show(p))
    wheels = list(dist.glob("infoaudit-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]

    # 2. the wheel is complete: every module and every data file of src/infoaudit (the gate needs
    #    profiles/*.toml, the report renderer its templates)
    with zipfile.ZipFile(wheel) as z:
        members = set(z.namelist())
        dist_info = {m.split("/", 1)[0] for m in members if ".dist-info/" in m}
        assert len(dist_info) == 1, dist_info
        eps = z.read(f"{dist_info.pop()}/entry_points.txt").decode()
    missing = sorted(source_files() - members)
    assert not missing, (f"{wheel.name} lacks {len(missing)} file(s) of src/infoaudit (add them to "
                         f"[tool.setuptools.package-data] or make the folder a package): {missing}")
    for needed in ("infoaudit/profiles/default.toml", "infoaudit/profiles/strict.toml",
                   "infoaudit/report/templates/report.html.j2"):
        assert needed in members, needed
    assert "infoaudit = infoaudit.cli:main" in eps and "infoaudit = infoaudit.pytest_plugin" in eps, eps

    # 3. a fresh venv; the dependencies come from the running interpreter's site-packages
    venv = tmp_path / "venv"
    p = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path, env=env)
    assert p.returncode == 0, show(p)
    py = venv / "bin" / "python"
    p = run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path, env=env)
    purelib = Path(p.stdout.strip())
    assert purelib.is_dir(), show(p)
    pth = purelib / "_infoaudit_test_dependencies.pth"
    deps = dependency_dirs()
    pth.write_text("".join(d + "\n" for d in deps))

    # the source tree must not be importable through those paths (a plain path line in a .pth
    # does not process the .pth files -- the editable install -- inside that directory)
    p = run([py, "-c", "import importlib.util as u, json, sys; s = u.find_spec('infoaudit'); "
                       "print(json.dumps([s and s.origin, sys.path]))"], cwd=tmp_path, env=env)
    assert p.returncode == 0, show(p)
    origin, path = json.loads(p.stdout)
    assert str(SRC) not in path, path
    assert origin is None or not Path(origin).resolve().is_relative_to(ROOT), (
        f"the fresh venv imports infoaudit from the checkout ({origin}) before the wheel is installed")

    # 4. install the wheel alone (without the .pth pip would see the dependencies' editable
    #    infoaudit and try to replace it)
    pth.unlink()
    p = run([sys.executable, "-m", "pip", "--python", py, "install", "--no-deps", "--no-index",
             "--disable-pip-version-check", "-q", wheel], cwd=tmp_path, env=env)
    assert p.returncode == 0, "pip install of the wheel failed\n" + show(p)
    pth.write_text("".join(d + "\n" for d in deps))
    script = venv / "bin" / "infoaudit"
    assert script.is_file() and str(py) in "\n".join(script.read_text().splitlines()[:3]), (
        f"{script} does not run the fresh venv's python")

    p = run([py, "-c", PROBE], cwd=tmp_path, env=env)
    assert p.returncode == 0, show(p)
    info = json.loads(p.stdout)
    assert Path(info["file"]).resolve().is_relative_to(purelib.resolve()), (
        f"infoaudit imported from {info['file']}, not from the wheel in {purelib}")
    assert Path(info["profile"]).resolve().is_file()
    assert Path(info["profile"]).resolve().is_relative_to(purelib.resolve()), info["profile"]
    assert str(SRC) not in info["sys_path"], info["sys_path"]
    assert not any("Editable" in f for f in info["meta_path"]), info["meta_path"]

    # 5. the example project, copied as a user copies it; its gate command as the workflow runs it
    project = tmp_path / "ci_gate"
    shutil.copytree(EXAMPLE, project, ignore=CACHES)
    workflow = " ".join((project / ".github" / "workflows" / "numerics.yml").read_text().split())
    assert "infoaudit gate " + " ".join(GATE_ARGS) in workflow, "the test's gate command left the workflow's"
    p = run([script, "gate", *GATE_ARGS, "--examples", EXAMPLES], cwd=project, env=env)
    assert p.returncode == 0, "the example's gate failed in the fresh venv\n" + show(p)
    assert "result: PASS -> exit 0" in p.stdout, show(p)
    rep = json.loads((project / "reports" / "infoaudit-gate.json").read_text())
    assert rep["passed"] is True and rep["exit_code"] == 0, rep
    assert set(rep["cells"]) == {"float32", "float16", "bfloat16"}, list(rep["cells"])
    assert all(c["verdict"] == "pass" for c in rep["cells"].values()), rep["cells"]
    assert (project / "reports" / "infoaudit-gate.xml").stat().st_size > 0

    # 6. the example's pytest suite (the plugin is registered by the wheel's entry point)
    p = run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--infoaudit-examples", EXAMPLES,
             "test_my_softmax.py"], cwd=project, env=env)
    assert p.returncode == 0, "the example's pytest suite failed in the fresh venv\n" + show(p)
    assert "3 passed, 1 xfailed" in p.stdout, show(p)

"""No process outlives ``infoaudit run`` / ``gate`` / ``bench`` (issue 18, item 6).

Each command runs as a subprocess with a unique environment marker, which every process it
starts inherits (pool workers, multiprocessing's resource tracker). After the command has exited
no live process may carry the marker (zombies, already dead and waiting to be reaped by init, do
not count). ``infoaudit run`` (one quantity, one dtype, ``-j 2``) is checked on a normal end and
interrupted by SIGINT, SIGTERM and SIGKILL while both pool workers are alive; the interruptions
happen at a known point (the run is held after its first finished group by the run_cmd test
hook), never raced.

For the clean exits (normal end, SIGINT, SIGTERM) the command joins its workers before it exits,
so none may be alive when it has returned; only multiprocessing's resource tracker, which exits
when it reads end-of-file from the dead parent, gets a bounded wait. After SIGKILL the workers
die through the parent-death signal, asynchronously: they get the same bounded wait. The bound
(60 s) is a safety net for a busy machine, not a timing claim: the orphan this guards against
was still alive 70 minutes later.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from test_runner import start_paused_run

psutil = pytest.importorskip("psutil")

MARK = "INFOAUDIT_ORPHAN_CHECK"
GRACE_S = 60.0
RUN = [sys.executable, "-m", "infoaudit.cli", "run", "--profile", "quick", "--quantities", "sigmoid",
       "--dtypes", "float32", "--backends", "numpy", "--no-report", "--no-grad", "--no-panels", "-j", "2", "-q"]


def _marked(token):
    """Live (non-zombie) processes whose environment carries MARK=token."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get(MARK) == token and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _describe(procs):
    rows = []
    for p in procs:
        try:
            rows.append(f"pid {p.pid} ppid {p.ppid()} {p.status()}: {' '.join(p.cmdline())[:160]}")
        except psutil.Error:
            rows.append(f"pid {p.pid} (gone)")
    return "\n".join(rows)


def _is_resource_tracker(p):
    try:
        return "resource_tracker" in " ".join(p.cmdline())
    except psutil.Error:
        return False


def _left_after(token, allow_now=lambda p: False):
    """Processes still alive: first those present right after the command ended that
    ``allow_now`` does not excuse; then whatever has not gone within GRACE_S."""
    now = [p for p in _marked(token) if not allow_now(p)]
    if now:
        return now
    deadline = time.monotonic() + GRACE_S
    while time.monotonic() < deadline:
        left = _marked(token)
        if not left:
            return []
        time.sleep(0.2)
    return _marked(token)


def _env(token):
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    pp = os.pathsep.join([src] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
    return dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=pp, **{MARK: token})


def _spawn_workers(parent_pid):
    kids = psutil.Process(parent_pid).children()
    return [k for k in kids if "spawn_main" in " ".join(k.cmdline())]


def test_run_normal_end_leaves_no_process(tmp_path):
    """A complete ``infoaudit run -j 2`` exits 0 with its workers already reaped; nothing carrying
    its marker survives it (the resource tracker gets the bounded wait)."""
    token = uuid.uuid4().hex
    r = subprocess.run(RUN + ["--output", str(tmp_path / "r")], env=_env(token), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    left = _left_after(token, allow_now=_is_resource_tracker)
    assert not left, _describe(left)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_run_interrupted_leaves_no_process(tmp_path, sig, code):
    """``infoaudit run -j 2`` held after its first finished group, with both spawn workers alive,
    gets ``sig``: SIGINT and SIGTERM take the clean shutdown (exit 130 / 143, results marked
    "interrupted", workers reaped before the exit); SIGKILL gives the command no chance to clean
    up, and its workers must die with it (parent-death signal). Either way no process with the
    run's marker survives."""
    token = uuid.uuid4().hex
    out = tmp_path / "r"
    proc = start_paused_run(RUN + ["--output", str(out)], 1, env=_env(token))
    try:
        workers = _spawn_workers(proc.pid)
        assert len(workers) == 2, _describe(workers)
        proc.send_signal(sig)
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code
    if sig != signal.SIGKILL:
        import json

        assert json.loads((out / "results.json").read_text())["status"] == "interrupted"
        left = _left_after(token, allow_now=_is_resource_tracker)
    else:
        left = _left_after(token, allow_now=lambda p: True)
    assert not left, _describe(left)


def test_gate_and_bench_leave_no_process(tmp_path):
    """``infoaudit gate`` (a numpy implementation, two examples) and ``infoaudit bench`` (one
    tiny shape) start no process of their own that outlives them."""
    (tmp_path / "oimpl.py").write_text(textwrap.dedent("""
        import numpy as np

        def softmax(z):
            e = np.exp(z - np.max(z, axis=-1, keepdims=True))
            return e / np.sum(e, axis=-1, keepdims=True)
    """))
    token = uuid.uuid4().hex
    env = _env(token)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    g = subprocess.run([sys.executable, "-m", "infoaudit.cli", "gate", "--impl", "oimpl:softmax", "--quantity",
                        "softmax", "--framework", "numpy", "--dtype", "float32", "--examples", "2"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert g.returncode in (0, 1), g.stdout[-1000:] + g.stderr[-2000:]
    b = subprocess.run([sys.executable, "-m", "infoaudit.cli", "bench", "--no-default-shapes", "--shape", "2x16",
                        "--backend", "numpy", "--dtype", "float32", "--op", "softmax", "--budget", "0.002",
                        "--output", str(tmp_path / "b"), "--quiet"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert b.returncode == 0, b.stderr[-2000:]
    left = _left_after(token, allow_now=_is_resource_tracker)
    assert not left, _describe(left)

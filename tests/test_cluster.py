"""``infoaudit run`` on Dask distributed (issue 15): real clusters on loopback, workers killed.

* a LocalCluster (two worker processes on 127.0.0.1) gives exactly the in-process cells of a few
  groups and of the softmax panel (same seed, same results);
* a real ``dask scheduler`` + two ``dask worker`` processes: one worker SIGKILLed while it runs a
  task -> every task completes (the lost one reruns on the other worker);
* a task that kills every worker that runs it fails with KilledWorker and the reason; the others
  complete;
* a task needing the GPU resource that no worker declares fails with the reason, not a hang;
* an unreachable scheduler (a closed port) and a scheduler without workers: ClusterError, one line;
* Dask absent: the install hint; importing the package imports no Dask.

Every process a test starts is gone when it ends. All traffic stays on 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from infoaudit.cluster import ClusterError, TaskFailed, Unrunnable, executor, place  # noqa: E402
from infoaudit.cluster import worker as W  # noqa: E402
from support_hypothesis import without_local_constants  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- task functions (run on the workers)


def audit_task(kind, payload):
    """run_cmd's task convention for the kinds these tests use (Hypothesis without the
    literals of the modules this process imported: see support_hypothesis)."""
    from infoaudit.run.tasks import run_group, softmax_precision

    with without_local_constants():
        if kind == "group":
            return kind, payload, run_group(payload), None
        if kind == "panel":
            return kind, payload, softmax_precision(payload), None
    raise ValueError(kind)


def sleepy(kind, payload):
    """Mark the start (which process runs which task), sleep, return the process id."""
    with open(os.path.join(payload["dir"], f"started-{payload['i']}-{os.getpid()}"), "w"):
        pass
    time.sleep(payload["s"])
    return kind, payload, {"i": payload["i"], "pid": os.getpid()}, None


def crash(kind, payload):
    """A framework that segfaults: the worker process dies at once."""
    os._exit(139)


# ---------------------------------------------------------------- helpers


def _children():
    """Our child processes, less multiprocessing's resource tracker (it lives as long as we do)."""
    out = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" not in " ".join(p.cmdline()):
                out.add(p.pid)
        except psutil.Error:
            pass
    return out


def _listening(pids):
    """Addresses (ip, port) the processes listen on."""
    out = []
    for pid in pids:
        try:
            out += [c.laddr for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        except psutil.Error:
            pass
    return out


def _gone(pids, timeout=20.0):
    """Wait until none of ``pids`` is alive (zombies count as gone); the pids still alive."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def _no_seconds(d):
    return {k: v for k, v in d.items() if k != "seconds"}


@pytest.fixture(scope="module")
def local2():
    before = _children()
    ex = executor(cluster="local:2", unrunnable_after_s=2.0)
    started = _children() - before
    assert len(started) == 2
    listen = _listening(started | {os.getpid()})
    assert listen and all(a.ip == "127.0.0.1" for a in listen), listen   # loopback only
    try:
        yield ex
    finally:
        ex.shutdown(cancel_futures=True)
        assert _gone(started) == [], "LocalCluster worker processes outlived the executor"


# ---------------------------------------------------------------- tests


def test_local_cluster_equals_in_process(local2):
    from infoaudit.run.tasks import run_group

    base = {"profile": "quick", "seed": 0, "backends": ["numpy", "scipy"], "extra_lists": []}
    tasks = [("group", dict(base, quantity=q, dtype=d)) for q, d in
             [("sigmoid", "float32"), ("softplus", "float64"), ("entropy", "float32"), ("log_softmax", "float64")]]
    tasks.append(("panel", {"name": "softmax_precision", "profile": "quick", "seed": 0, "backends": ["numpy"],
                            "dtypes": ["float32", "float64"]}))
    futs = [local2.submit(audit_task, k, p) for k, p in tasks]
    for (kind, payload), fut in zip(tasks, futs):
        k, sent, res, err = fut.result(timeout=300)
        assert err is None and k == kind
        if kind == "group":
            assert sent["devices"] == ["cpu"]   # pinned: a GPU worker would give the same cells
            with without_local_constants():
                local = run_group(payload)
            assert res["cells"] and res["cells"] == local["cells"]
            assert _no_seconds(res) == _no_seconds(local)
        else:
            assert _no_seconds(res) == _no_seconds(audit_task(kind, payload)[2])
    assert local2.stats["failed"] == 0 and len(local2.workers) == 2
    ran = {t["task"]: t for t in local2.timings}   # the task stream: where and when each task ran
    assert {f"group|{p['quantity']}|{p['dtype']}" for k, p in tasks if k == "group"} | {"panel|softmax_precision"} <= set(ran)
    assert all(0 <= t["seconds"] == t["stop"] - t["start"] and t["overhead_s"] >= 0 and t["worker"] in local2.workers
               for t in ran.values())


def test_a_task_no_worker_can_run_is_reported(local2):
    gpu = local2.submit(audit_task, "group", {"quantity": "sigmoid", "dtype": "float32", "profile": "quick",
                                              "seed": 0, "backends": ["torch"], "devices": ["cuda"]})
    cpu = local2.submit(audit_task, "group", {"quantity": "sigmoid", "dtype": "float64", "profile": "quick",
                                              "seed": 0, "backends": ["numpy"]})
    t0 = time.monotonic()
    with pytest.raises(Unrunnable, match="no worker declares the GPU resource") as ei:
        gpu.result(timeout=60)
    assert time.monotonic() - t0 < 30 and "--resources GPU=1" in str(ei.value)
    assert cpu.result(timeout=120)[2]["cells"]


@pytest.mark.parametrize("allowed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_a_task_that_kills_its_workers_fails_and_the_rest_completes(tmp_path, allowed):
    """allowed=0: the first death fails the task; allowed=1 (slow: two worker restarts): it is
    retried on another worker first, kills that one too, then fails."""
    before = _children()
    ex = executor(cluster="local:2", allowed_failures=allowed)
    started = _children() - before
    try:
        bad = ex.submit(crash, "group", {"quantity": "softmax", "dtype": "float16"})
        good = [ex.submit(sleepy, "group", {"quantity": "sigmoid", "dtype": f"d{i}", "i": i, "s": 0.2,
                                            "dir": str(tmp_path)}) for i in range(4)]
        with pytest.raises(TaskFailed) as ei:
            bad.result(timeout=120)
        msg = str(ei.value)
        died = "1 worker died" if allowed == 0 else f"{allowed + 1} workers died"
        assert msg.startswith(f"KilledWorker: group-softmax-float16: {died} while running it")
        assert "\n" not in msg
        assert sorted(f.result(timeout=120)[2]["i"] for f in good) == [0, 1, 2, 3]
        assert ex.stats["killed_worker"] == 1
    finally:
        ex.shutdown(cancel_futures=True)
    assert _gone(started) == []


def _free_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_within_seconds():
    addr = f"tcp://127.0.0.1:{_free_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(ClusterError) as ei:
        executor(scheduler=addr, timeout=2)
    assert time.monotonic() - t0 < 15
    msg = str(ei.value)
    assert "\n" not in msg and msg.startswith(f"cannot reach the Dask scheduler at {addr} within 2 s")


def _start(args, log, env):
    return subprocess.Popen([sys.executable, "-m", "dask", *args], stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait(timeout=30)


def test_sigkill_of_a_worker_loses_no_task(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE] + [p for p in sys.path if p]))
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "cluster.log", "w")
    procs = []
    ex = None
    try:
        procs.append(_start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                             "--dashboard-address", "127.0.0.1:0", "--scheduler-file", str(sched_file)], log, env))
        deadline = time.monotonic() + 60
        while not sched_file.exists() or not sched_file.read_text().strip():
            assert time.monotonic() < deadline and procs[0].poll() is None, "the scheduler did not start"
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        t0 = time.monotonic()   # a scheduler without workers: one line, not a hang
        with pytest.raises(ClusterError, match="no Dask worker joined the scheduler"):
            executor(scheduler=address, timeout=10, worker_timeout=1)
        assert time.monotonic() - t0 < 20
        workers = [_start(["worker", address, "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1",
                           "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--death-timeout", "60",
                           "--name", f"w{i}"], log, env) for i in range(2)]
        procs += workers
        ex = executor(scheduler=address, timeout=20, worker_timeout=60)
        deadline = time.monotonic() + 60
        while len(ex.workers) < 2:
            assert time.monotonic() < deadline, "the second worker did not join"
            time.sleep(0.2)
        listen = _listening(p.pid for p in procs)
        assert len(listen) >= 3 and all(a.ip == "127.0.0.1" for a in listen), listen   # loopback only
        tasks = [{"quantity": "q", "dtype": f"d{i}", "i": i, "s": 1.0, "dir": str(tmp_path)} for i in range(4)]
        futs = [ex.submit(sleepy, "group", t) for t in tasks]
        victim = workers[0].pid
        deadline = time.monotonic() + 60
        while not [f for f in os.listdir(tmp_path) if f.endswith(f"-{victim}")]:
            assert time.monotonic() < deadline, "no task reached the victim worker"
            time.sleep(0.05)
        os.kill(victim, signal.SIGKILL)   # mid-task
        (lost,) = [int(f.split("-")[1]) for f in os.listdir(tmp_path) if f.endswith(f"-{victim}")]
        results = {f.result(timeout=120)[2]["i"]: f.result()[2]["pid"] for f in futs}
        assert sorted(results) == list(range(4))
        assert results[lost] == workers[1].pid   # rerun on the surviving worker
        assert ex.stats["failed"] == 0 and workers[0].wait(timeout=10) == -signal.SIGKILL
    finally:
        if ex is not None:
            ex.shutdown(cancel_futures=True)
        _stop(procs)
        log.close()
    assert all(p.poll() is not None for p in procs)


def test_missing_dask_gives_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ClusterError, match=r"pip install infoaudit\[cluster\]"):
        executor(cluster="local:1")


def test_importing_the_package_imports_no_dask():
    code = ("import sys, infoaudit.cluster, infoaudit.cluster.merge_cmd, infoaudit.reference.cache; "
            "print([m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


@pytest.mark.parametrize("kw", [{}, {"scheduler": "tcp://127.0.0.1:1", "cluster": "local"}, {"cluster": "local:0"},
                                {"cluster": "remote"}])
def test_bad_arguments(kw):
    with pytest.raises(ClusterError):
        executor(**kw)


def test_placement():
    g = {"quantity": "softmax", "dtype": "float32", "backends": ["numpy", "torch"]}
    p = place("group", g)
    assert p.payload["devices"] == ["cpu"] and p.resources is None and "devices" not in g
    assert place("group", g, gpu=True).resources == {"GPU": 1}
    assert "devices" not in place("group", g, gpu=True).payload   # the GPU worker finds its devices
    assert place("group", dict(g, backends=["numpy"]), gpu=True).resources is None
    assert place("group", dict(g, backends=[])).payload["devices"] == ["cpu"]
    assert place("grad", dict(g, devices=["cuda"])).resources == {"GPU": 1}
    assert place("panel", {"name": "softmax_precision"}).cpu_only
    assert not place("panel", {"name": "softmax_precision"}, gpu=True).cpu_only
    assert place("environment", {}, gpu=True).resources is None and place("environment", {}).payload == {}
    assert place("group", g).label == "group-softmax-float32"


def test_worker_wrapper_in_process():
    nump = {"backends": ["numpy"]}
    panel = ("panel", nump, {"results": [{"device": "cpu", "n": 1}, {"device": "cuda", "n": 1}]}, None)
    assert W.run_task(lambda *a: panel, ("panel", nump), {}, {"cpu_only": True})[2]["results"] == [{"device": "cpu", "n": 1}]
    assert W.run_task(lambda *a: panel, ("panel", nump), {}, {})[2]["results"] == panel[2]["results"]
    with pytest.raises(W.WorkerMismatch, match=r"numpy \S+ \(run: 0\.0\)"):
        W.run_task(lambda *a: 1, ("group", nump), {}, {"versions": dict(W.versions(), numpy="0.0")})
    assert W.run_task(lambda *a: 1, ("group", nump), {}, {"versions": W.versions()}) == 1


def test_a_gpu_task_on_a_worker_without_a_gpu_is_refused():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(W.WorkerMismatch, match="declares the GPU resource but torch see"):
        W.run_task(lambda *a: 1, ("group", {"backends": ["numpy", "torch"]}), {}, {"gpu": True})


# ---------------------------------------------------------------- the CLI: --cluster local:2 equals the local run


def _cli(*argv, timeout):
    """``infoaudit ARGV`` in a fresh interpreter (its own pool / LocalCluster); the completed process."""
    code = "import sys; from infoaudit.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=timeout)


def _timeless(obj):
    """``obj`` without the fields that differ between equal runs: ``seconds`` at any depth."""
    if isinstance(obj, dict):
        return {k: _timeless(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_timeless(v) for v in obj]
    return obj


def _first_difference(a, b):
    from infoaudit.cluster.merge import first_difference

    return first_difference(a, b)


def _same_run(local, dist):
    """The two documents have the same cells, groups and panels, timings aside (the message
    names the first difference)."""
    assert local["status"] == dist["status"] == "complete"
    assert sorted(local["cells"]) == sorted(dist["cells"])
    for section in ("cells", "groups", "panels"):
        a, b = _timeless(local.get(section) or {}), _timeless(dist.get(section) or {})
        assert a == b, f"{section} differ at {_first_difference(a, b)}"


def _local_and_cluster(tmp_path, argv, timeout, cluster_extra=()):
    docs = {}
    for name, extra in (("local", ["-j", "2"]), ("cluster", ["--cluster", "local:2", *cluster_extra])):
        out = tmp_path / name
        t0 = time.monotonic()
        p = _cli("run", *argv, "--no-report", "-q", "-o", str(out), *extra, timeout=timeout)
        assert p.returncode == 0, p.stderr[-3000:]
        docs[name] = json.loads((out / "results.json").read_text())
        docs[name + "_wall_s"] = time.monotonic() - t0
    return docs


def test_cli_cluster_run_equals_the_local_run_on_a_subset(tmp_path):
    """``infoaudit run --cluster local:2`` and the local pool give the same cells (value and
    gradient cells, torch included where installed); the cluster run records where and when each
    task ran, both workers' fingerprints (the same here), its scale section (scale.json/.md) and,
    with bokeh, Dask's performance report."""
    backends = "numpy,torch" if _has("torch") else "numpy"
    report = tmp_path / "dask-report.html"
    docs = _local_and_cluster(tmp_path, ["--profile", "quick", "--quantities", "sigmoid,log_softmax",
                                         "--dtypes", "float32", "--backends", backends, "--no-panels"], timeout=600,
                              cluster_extra=["--performance-report", str(report)] if _has("bokeh") else [])
    _same_run(docs["local"], docs["cluster"])
    assert any(k.endswith("|grad") for k in docs["local"]["cells"]) == _has("torch")
    cl = docs["cluster"]["cluster"]
    groups = {("grad|" + k[:-5]) if k.endswith("|grad") else "group|" + k for k in docs["cluster"]["groups"]}
    ran = [t["task"] for t in cl["tasks"]]
    assert groups <= set(ran) and ran.count("environment_after") == 1 and len(ran) == len(set(ran))
    assert all(t["stop"] >= t["start"] and t["worker"].startswith("tcp://127.0.0.1:") for t in cl["tasks"])
    assert {t["worker"] for t in cl["tasks"]} <= set(cl["fingerprints"])
    assert len(cl["fingerprints"]) == 2 and not cl["heterogeneity"]["heterogeneous"], cl["heterogeneity"]
    assert all(fp["packages"]["numpy"] for fp in cl["fingerprints"].values())
    for name in ("local", "cluster"):
        sc = docs[name]["scale"]
        assert sc["source"] == ("task stream" if name == "cluster" else "group seconds")
        assert [r["workers"] for r in sc["projection"]["rows"]] == [1, 2, 8, 32, 128]
        assert (tmp_path / name / "scale.md").read_text().startswith("## Scale")
    if _has("bokeh"):
        assert "<title>Dask Performance Report</title>" in report.read_text()[:2000]
    else:
        print("Dask's performance report not checked: bokeh is not installed")


@pytest.mark.slow
def test_cli_full_quick_profile_on_local2_equals_the_local_run(tmp_path):
    """The issue's acceptance test: the FULL quick profile (every quantity, dtype and installed
    backend, gradients and the panel) on ``--cluster local:2`` equals the local pool's run cell
    for cell. Long on 2 cores (two whole quick runs)."""
    docs = _local_and_cluster(tmp_path, ["--profile", "quick", "--seed", "0"], timeout=3600)
    _same_run(docs["local"], docs["cluster"])
    print(f"\nquick profile: {len(docs['local']['cells'])} cells; local -j 2 {docs['local_wall_s']:.0f} s, "
          f"--cluster local:2 {docs['cluster_wall_s']:.0f} s")


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None

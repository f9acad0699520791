"""Speed of the exact reference: the certified fast path on both engines (compiled numba kernels
and numpy passes) side by side, and pure mpmath.

Not collected by ``make test``; run explicitly::

    pytest benchmarks/bench_reference.py -p no:infoaudit --benchmark-columns=min,median,rounds

(add ``-k "not mpmath"`` to skip the slow mpmath cells). Every fast-path cell goes through
``reference.evaluate`` (validation included) with ``fast.use_engine(engine)``, so one run times
both engines on the same inputs and the same machine state; at the end of the module a table of
ns per input element (min and median) and the numba / numpy ratios is printed. State the machine
load (``uptime``) with the numbers: on a shared host only the same-run ratios are comparable.
``extra_info`` holds ``ns_per_element`` (median), ``ns_per_element_min`` and the engine.
:func:`test_numba_compile_and_cache` records the cold compile time of the kernels (in a private
cache directory) and the time to load them from the cache in a fresh process.

The mpmath path is timed with its memo cache cleared before every round (otherwise it measures a
dictionary lookup); its batches are tiny because it runs at microseconds per element.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

from infoaudit import reference
from infoaudit.reference import fast

QUANTITIES = ["softmax", "log_softmax", "logsumexp", "cross_entropy"]
SIZES = [1000, 50257]
BATCH = {("fast", 1000): 64, ("fast", 50257): 4, ("mpmath", 1000): 2, ("mpmath", 50257): 1}
ENGINES = fast.available_engines()
ROUNDS = {1000: 15, 50257: 15}

_RESULTS: dict = {}
_COMPILE: list = []


def _inputs(name, batch, n, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((batch, n)) * 4).astype(np.float32)
    return (z, rng.integers(0, n, batch)) if name == "cross_entropy" else (z,)


@pytest.fixture(scope="module", autouse=True)
def _summary(request):
    """Print ns/element of both engines side by side, with the numba / numpy ratios."""
    yield
    if not _RESULTS and not _COMPILE:
        return
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", f"reference fast path, ns per input element (min / median); load: {_load()}",
             f"{'quantity':14s} {'n':>6s} " + " ".join(f"{e + ' min':>11s} {e + ' med':>11s}" for e in ENGINES)
             + ("   numba/numpy (min, med)" if len(ENGINES) == 2 else "")]
    for name in QUANTITIES:
        for n in SIZES:
            row = [_RESULTS.get((name, n, e)) for e in ENGINES]
            if not all(row):
                continue
            s = f"{name:14s} {n:6d} " + " ".join(f"{mn:11.1f} {md:11.1f}" for mn, md in row)
            if len(row) == 2:
                s += f"   {row[0][0] / row[1][0]:.3f}, {row[0][1] / row[1][1]:.3f}"
            lines.append(s)
    lines += _COMPILE
    cm = request.config.pluginmanager.get_plugin("capturemanager")
    with cm.global_and_fixture_disabled() if cm is not None else contextlib.nullcontext():
        for line in lines:
            (tr.write_line(line) if tr is not None else print(line))


def _load():
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:  # pragma: no cover
        return "unknown"


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", QUANTITIES)
def test_fast_path(benchmark, name, n, engine):
    args = _inputs(name, BATCH[("fast", n)], n)
    fast._consts()  # table build (once per process) is not part of the steady state
    benchmark.group = f"{name} n={n}"
    with fast.use_engine(engine):
        ex = reference.evaluate(name, *args)  # compiles / loads the kernels once
        assert ex.source == "fast"
        res = benchmark.pedantic(reference.evaluate, args=(name, *args), rounds=ROUNDS[n], iterations=1,
                                 warmup_rounds=2)
    assert res.source == "fast"
    elems = args[0].size
    st = benchmark.stats.stats
    md, mn = st.median / elems * 1e9, st.min / elems * 1e9
    _RESULTS[(name, n, engine)] = (mn, md)
    benchmark.extra_info.update(path="fast", engine=engine, n=n, batch=args[0].shape[0], elements=elems,
                                ns_per_element=md, ns_per_element_min=mn, load=_load())


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", ["softmax", "logsumexp", "cross_entropy"])
def test_mpmath(benchmark, name, n):
    args = _inputs(name, BATCH[("mpmath", n)], n)
    rounds = 3 if n <= 1000 else 1
    benchmark.group = f"{name} n={n}"
    benchmark.pedantic(reference.evaluate_mpmath, args=(name, *args), rounds=rounds, iterations=1,
                       setup=reference._unit_cached.cache_clear)
    elems = args[0].size
    benchmark.extra_info.update(path="mpmath", n=n, batch=args[0].shape[0], elements=elems,
                                ns_per_element=benchmark.stats.stats.median / elems * 1e9)


_PROBE = r"""
import json, time
t0 = time.perf_counter()
from infoaudit.reference import fast
t1 = time.perf_counter()
fast._consts()
t2 = time.perf_counter()
import numpy as np
z = np.random.default_rng(0).standard_normal((2, 64))
for name in ("logsumexp", "softmax", "log_softmax"):
    fast.FAST[name](z)
z[:, 0] = 60.0  # dominant class: row scalars from arb, then rows_outputs (compiled on first need)
fast.FAST["softmax"](z); fast.FAST["log_softmax"](z)
t3 = time.perf_counter()
print(json.dumps({"engine": fast.ENGINE, "import_s": t1 - t0, "tables_s": t2 - t1, "first_calls_s": t3 - t2}))
"""


@pytest.mark.skipif("numba" not in ENGINES, reason="numba is not installed")
def test_numba_compile_and_cache(benchmark):
    """Cold compile (empty private cache dir) and cached load, each in a fresh process."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d, INFOAUDIT_FAST="numba")
        runs = []

        def probe():
            out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))

        benchmark.pedantic(probe, rounds=3, iterations=1)  # round 1 compiles, rounds 2-3 load the cache
    cold, warm = runs[0], runs[1:]
    benchmark.extra_info.update(cold_compile_s=cold["first_calls_s"],
                                cached_load_s=min(w["first_calls_s"] for w in warm),
                                import_s=min(w["import_s"] for w in warm), tables_s=min(w["tables_s"] for w in warm))
    _COMPILE.append(f"numba kernels: cold compile {cold['first_calls_s']:.1f} s, cached load "
                    f"{min(w['first_calls_s'] for w in warm):.2f} s (fresh processes; import of fast "
                    f"{min(w['import_s'] for w in warm):.2f} s, exp table {min(w['tables_s'] for w in warm):.2f} s)")

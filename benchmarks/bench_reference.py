"""Speed of the exact reference: certified float64 fast path vs pure mpmath.

Not collected by ``make test``; run explicitly::

    pytest benchmarks/bench_reference.py -p no:infoaudit --benchmark-columns=median,rounds

``extra_info["ns_per_element"]`` is the median time per input logit. The mpmath path is timed
with its memo cache cleared before every round (otherwise it measures a dictionary lookup); its
batches are tiny because it runs at microseconds per element.
"""
from __future__ import annotations

import numpy as np
import pytest

from infoaudit import reference
from infoaudit.reference import fast

QUANTITIES = ["softmax", "logsumexp", "cross_entropy"]
SIZES = [1000, 50257]
BATCH = {("fast", 1000): 64, ("fast", 50257): 4, ("mpmath", 1000): 2, ("mpmath", 50257): 1}


def _inputs(name, batch, n, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((batch, n)) * 4).astype(np.float32)
    return (z, rng.integers(0, n, batch)) if name == "cross_entropy" else (z,)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", QUANTITIES)
def test_fast_path(benchmark, name, n):
    args = _inputs(name, BATCH[("fast", n)], n)
    fast._consts()  # table build (once per process) is not part of the steady state
    ex = reference.evaluate(name, *args)
    assert ex.source == "fast"
    res = benchmark.pedantic(reference.evaluate, args=(name, *args), rounds=5, iterations=1, warmup_rounds=1)
    assert res.source == "fast"
    elems = args[0].size
    benchmark.extra_info.update(path="fast", n=n, batch=args[0].shape[0], elements=elems,
                                ns_per_element=benchmark.stats.stats.median / elems * 1e9)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", QUANTITIES)
def test_mpmath(benchmark, name, n):
    args = _inputs(name, BATCH[("mpmath", n)], n)
    rounds = 3 if n <= 1000 else 1
    benchmark.pedantic(reference.evaluate_mpmath, args=(name, *args), rounds=rounds, iterations=1,
                       setup=reference._unit_cached.cache_clear)
    elems = args[0].size
    benchmark.extra_info.update(path="mpmath", n=n, batch=args[0].shape[0], elements=elems,
                                ns_per_element=benchmark.stats.stats.median / elems * 1e9)

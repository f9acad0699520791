"""pytest-benchmark cells: the same (backend, device, dtype, shape, op) cells as ``infoaudit bench``.

Not collected by ``make test`` (pyproject's testpaths is ``tests``). Run::

    pytest benchmarks/ --benchmark-json=bench.json
    pytest benchmarks/ --benchmark-compare --benchmark-compare-fail=median:10%

Shapes: ``--bench-shapes 64x1000,64x50257`` (or INFOAUDIT_BENCH_SHAPES); default 64x1000 and
64x50257 (add 1024x50257 for the full grid). Backends/dtypes/ops/devices: ``--bench-backends``,
``--bench-dtypes``, ``--bench-ops``, ``--bench-devices`` (comma lists; devices default to every
available one, and an absent CUDA device is a visible skip).
"""
from __future__ import annotations

import os

import pytest

from infoaudit.bench import cells as C

DEFAULT_SHAPES = "64x1000,64x50257"


def pytest_addoption(parser):
    g = parser.getgroup("infoaudit-bench")
    g.addoption("--bench-shapes", default=os.environ.get("INFOAUDIT_BENCH_SHAPES", DEFAULT_SHAPES),
                help="comma list of BATCHxVOCAB shapes")
    g.addoption("--bench-backends", default=",".join(C.BACKENDS))
    g.addoption("--bench-dtypes", default=",".join(C.DTYPES))
    g.addoption("--bench-ops", default=",".join(C.OPS))
    g.addoption("--bench-devices", default="cpu,cuda")


def _split(s):
    return [x.strip() for x in s.split(",") if x.strip()]


def pytest_generate_tests(metafunc):
    if "cell" not in metafunc.fixturenames:
        return
    opt = metafunc.config.getoption
    shapes = [C.parse_shape(s) for s in _split(opt("--bench-shapes"))]
    params, ids = [], []
    for shape in sorted(shapes, key=lambda s: s[0] * s[1]):
        for backend in _split(opt("--bench-backends")):
            for device in _split(opt("--bench-devices")):
                for dtype in _split(opt("--bench-dtypes")):
                    for op in _split(opt("--bench-ops")):
                        params.append((backend, device, dtype, shape, op))
                        ids.append(f"{backend}-{device}-{dtype}-{C.shape_str(shape)}-{op}")
    metafunc.parametrize("cell", params, ids=ids)


@pytest.fixture(scope="session")
def handles():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = C.load_backend(name)
        return cache[name]
    return get


@pytest.fixture(scope="session")
def inputs():
    cache = {}

    def get(shape):
        if shape not in cache:
            cache.clear()           # one shape's inputs at a time (the big shape is ~1 GB)
            cache[shape] = C.InputSet(shape)
        return cache[shape]
    return get


@pytest.fixture(scope="session")
def copy_limit():
    """Best same-shape copy bandwidth (GB/s) for (device, shape, dtype), measured once per session."""
    from infoaudit.bench import bandwidth

    cache = {}

    def get(device, shape, dtype):
        key = (device, shape, dtype)
        if key not in cache:
            pairs = [(shape, dtype)]
            lim = bandwidth.measure(pairs, [device], budget_s=0.2, max_call_s=1.0, min_samples=3,
                                    max_samples=20, reference=False)
            cache[key] = bandwidth.limit_for(lim, device, shape, dtype)[0]
        return cache[key]
    return get

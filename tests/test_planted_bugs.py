"""Self-test of the search: a backend with planted rare bugs must be caught and shrunk.

Each bug fires only on a rare kind of input (a logit above a threshold, a subnormal probability,
an all -inf row, a vocabulary above a size). The thresholds are drawn per test run from a range
(not the round numbers of the issue), so the search cannot be tuned to them. The runner runs
under the default profile with a fixed seed and WITHOUT the fixed corpus: the hypothesis
search alone must find each bug and report a shrunk reproducer that still triggers it.
"""
from __future__ import annotations

import types

import numpy as np
import pytest

from infoaudit import run as runner
from infoaudit.backends import Op
from infoaudit.dtypes import FORMATS


def _stable_softmax(z):
    m = np.max(z, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp((z - m).astype(np.float64))
    return (e / e.sum(-1, keepdims=True)).astype(z.dtype)


def _lse(z):
    zf = z.astype(np.float64)
    m = np.max(zf, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):
        return (m + np.log(np.exp(zf - m).sum(-1, keepdims=True)))[..., 0]


def planted_backend(softmax_max, vocab, dtype):
    """A NumPy backend whose ops are right except for one planted rare bug each."""
    tiny = FORMATS[dtype].tiny

    def softmax(z):
        out = _stable_softmax(z)
        with np.errstate(invalid="ignore"):
            bad = np.nanmax(np.where(np.isfinite(z), z, -np.inf), axis=-1) > softmax_max
        out[bad] = np.nan
        return out

    def entropy(p):
        pf = p.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.sum(np.where(pf > 0, pf * np.log(np.where(pf > 0, pf, 1.0)), 0.0), axis=-1)
        sub = ((pf > 0) & (pf < tiny)).any(axis=-1)
        h[sub] = np.nan
        return h.astype(p.dtype)

    def logsumexp(z):
        out = _lse(z)
        allinf = np.isneginf(z.astype(np.float64)).all(axis=-1)
        out[allinf] = 0.0  # planted: an all -inf row gives 0 instead of -inf
        return out.astype(z.dtype)

    def cross_entropy(z, y):
        zf = z.astype(np.float64)
        loss = _lse(z) - np.take_along_axis(zf, y[..., None], axis=-1)[..., 0]
        if z.shape[-1] > vocab:
            loss = loss * 1.5  # planted: wrong only for large vocabularies
        return loss.astype(z.dtype)

    mod = types.ModuleType("planted_backend")
    mod.NAME = "planted"
    mod.DTYPES = ("float16", "bfloat16", "float32", "float64")
    mod.devices = lambda: ["cpu"]
    mod.to_backend = lambda a, device="cpu": np.array(a, copy=True)
    mod.to_numpy = np.asarray
    table = {"softmax": [Op("planted", softmax, False, "planted_backend.softmax")],
             "entropy": [Op("planted", entropy, False, "planted_backend.entropy")],
             "logsumexp": [Op("planted", logsumexp, False, "planted_backend.logsumexp")],
             "cross_entropy": [Op("planted", cross_entropy, False, "planted_backend.cross_entropy")]}
    mod.ops = lambda: table
    return mod


def _thresholds(k):
    rng = np.random.default_rng(1000 + k)
    return float(rng.uniform(30.0, 300.0)), int(rng.integers(1200, 3800))


def _search(quantity, mod, dtype, seed):
    res = runner.search(quantity, mod, dtype, "default", seed=seed, use_corpus=False)
    (cell,) = res.cells.values()
    return cell


def _shrunk_args(case):
    from infoaudit.results.schema import decode_args

    return decode_args(case["args"])


def _check_all(k, dtype="float32", seed=7):
    smax, vocab = _thresholds(k)
    mod = planted_backend(smax, vocab, dtype)
    ops = mod.ops()

    # 1. softmax: NaN only when the largest logit exceeds smax
    c = _search("softmax", mod, dtype, seed)
    w = c["worst"].get("nonfinite")
    assert w is not None, f"softmax NaN above {smax} not found: {c['nonfinite']}"
    sh = w["shrunk"]
    assert sh is not None
    (z,) = _shrunk_args(sh)
    assert z.size <= 2, z
    assert np.nanmax(z.astype(np.float64)) > smax
    with np.errstate(all="ignore"):
        assert np.isnan(ops["softmax"][0].fn(z)).any()

    # 2. entropy: NaN only when an entry is subnormal
    c = _search("entropy", mod, dtype, seed)
    w = c["worst"].get("nonfinite")
    assert w is not None, "entropy subnormal bug not found"
    (p,) = _shrunk_args(w["shrunk"])
    assert p.size <= 2, p
    pf = p.astype(np.float64)
    assert ((pf > 0) & (pf < FORMATS[dtype].tiny)).any()

    # 3. logsumexp: 0 instead of -inf on an all -inf row
    c = _search("logsumexp", mod, dtype, seed)
    w = c["worst"].get("nonfinite")
    assert w is not None and w["class"] == "finite_expected_nonfinite", c["nonfinite"]
    (z,) = _shrunk_args(w["shrunk"])
    assert z.size <= 2 and np.isneginf(z.astype(np.float64)).all()

    # 4. cross-entropy: wrong (x 1.5) only for vocabularies above `vocab`
    # (its error is 1/3 of the output: beyond both the conditioning's and a stable algorithm's allowance)
    c = _search("cross_entropy", mod, dtype, seed)
    assert c["grades"].get("unstable") and c["verdict"] == "fail", \
        f"vocabulary > {vocab} bug not found (grades {c['grades']})"
    w = c["worst"]["grade"]
    assert w["grade"] == "unstable" and w["shrunk"] is not None, w
    z, y = _shrunk_args(w["shrunk"])
    assert vocab < z.shape[-1] <= 4096
    assert w["shrunk"]["grade"] == "unstable" and w["shrunk"]["rel"] > 0.3
    out = ops["cross_entropy"][0].fn(z, y)
    sliced = z[..., : vocab].copy()
    assert np.isfinite(out).all() and sliced.shape[-1] == vocab


def test_planted_bugs_found_and_shrunk():
    _check_all(0)


@pytest.mark.slow
@pytest.mark.parametrize("k,dtype,seed", [(1, "float32", 11), (2, "float64", 5), (3, "float32", 123)])
def test_planted_bugs_other_thresholds_and_dtypes(k, dtype, seed):
    _check_all(k, dtype, seed)

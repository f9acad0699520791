"""The persistent reference cache (issue 15, item 3): a hit is a fresh evaluation, stored or refused.

Exact values come back bit for bit (hi, lo, undecided, source, max_prec), refusals under a
precision budget come back as the same exception, the budget is part of the key, corrupt or
truncated entries are detected and recomputed, the folder stays under its cap (least recently
used first), concurrent writers in several processes never produce a corrupt entry, a cache
that cannot be written never fails an evaluation, and with no cache active nothing changes.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os

import numpy as np
import pytest

from infoaudit import reference
from infoaudit.reference import cache as C
from infoaudit.reference import engine
from support_hypothesis import without_local_constants

NEEDS_2048 = (np.array([[1e-300]]), np.array([[1e-300]]))   # gaussian_kl: decided only at 2048 bits
INPUTS = [
    ("softmax", (np.array([[1.0, 2.0, 3.5], [1e-3, -7.0, 2.0]]),)),
    ("sigmoid", (np.array([-40.0, -1e-8, 0.0, 3.0, 700.0]),)),
    ("softplus", (np.array([-745.0, 0.5, 36.0], dtype=np.float32).astype(np.float64),)),
    ("binary_entropy_bits", (np.array([1e-300, 0.25, 0.5]),)),
    ("gaussian_kl", NEEDS_2048),
]


def _same(a, b):
    assert np.array_equal(a.hi, b.hi) and np.array_equal(a.lo, b.lo)
    assert (a.undecided is None) == (b.undecided is None)
    if a.undecided is not None:
        assert np.array_equal(a.undecided, b.undecided)
    assert a.source == b.source and a.max_prec == b.max_prec and a.hi.dtype == b.hi.dtype


def test_hits_are_fresh_evaluations(tmp_path):
    cache = C.ReferenceCache(tmp_path)
    for name, args in INPUTS:
        fresh = reference.evaluate_uncached(name, *args)
        _same(cache.evaluate(name, args), fresh)   # miss: computed and stored
        _same(cache.evaluate(name, args), fresh)   # hit
    assert cache.stats["hits"] == len(INPUTS) and cache.stats["misses"] == len(INPUTS)
    got = cache.evaluate("softmax", INPUTS[0][1])
    got.hi[0, 0] = 0.0   # a hit's arrays are the caller's own (writable, not the file's buffer)
    _same(cache.evaluate("softmax", INPUTS[0][1]), reference.evaluate_uncached(*[INPUTS[0][0], *INPUTS[0][1]]))


def test_no_cache_is_the_default_and_use_cache_restores_it(tmp_path):
    assert reference.active_cache() is None
    with C.use_cache(tmp_path) as cache:
        assert reference.active_cache() is cache
        with C.use_cache(tmp_path / "inner") as inner:
            assert reference.active_cache() is inner
            reference.evaluate("sigmoid", np.array([0.5]))
        assert reference.active_cache() is cache
        reference.evaluate("sigmoid", np.array([0.5]))
    assert reference.active_cache() is None
    assert inner.stats["misses"] == 1 and cache.stats["misses"] == 1
    before = cache.stats["hits"]
    _same(reference.evaluate("sigmoid", np.array([0.5])), reference.evaluate_uncached("sigmoid", np.array([0.5])))
    assert cache.stats["hits"] == before   # outside the block: not consulted


def test_the_budget_is_part_of_the_key_and_refusals_are_cached(tmp_path):
    cache = C.ReferenceCache(tmp_path)
    for _ in range(2):
        with engine.precision_budget(1024), pytest.raises(engine.PrecisionBudgetExceeded) as ei:
            cache.evaluate("gaussian_kl", NEEDS_2048)
        assert ei.value.limit == 1024
    assert cache.stats["misses"] == 1 and cache.stats["hits"] == 1   # the refusal came from the cache
    with engine.precision_budget(2048):
        ok = cache.evaluate("gaussian_kl", NEEDS_2048)
    assert ok.max_prec == 2048 and cache.stats["misses"] == 2
    _same(ok, reference.evaluate_uncached("gaussian_kl", *NEEDS_2048))


def test_keys_see_dtype_shape_sign_of_zero_and_scalars(tmp_path):
    cache = C.ReferenceCache(tmp_path)
    z = np.array([[0.0, 1.0]])
    keys = {cache.key("softmax", (z,)), cache.key("softmax", (z.reshape(2, 1),)),
            cache.key("softmax", (z.astype(np.float32),)), cache.key("softmax", (-z,)),
            cache.key("log_softmax", (z,))}
    assert len(keys) == 5
    lab = np.array([1])
    assert cache.key("label_smoothing_cross_entropy", (z, lab, 0.1)) != \
        cache.key("label_smoothing_cross_entropy", (z, lab, 0.2))
    assert cache.key("softmax", (object(),)) is None   # no exact bytes: evaluated, never cached


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage"])
def test_a_corrupt_entry_is_detected_and_recomputed(tmp_path, damage):
    cache = C.ReferenceCache(tmp_path)
    name, args = INPUTS[1]
    fresh = cache.evaluate(name, args)
    (path,) = [p for p, _, _ in cache.entries()]
    data = bytearray(open(path, "rb").read())
    if damage == "flip":
        data[-3] ^= 0x40
    elif damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data = bytearray(b"not an entry")
    with open(path, "wb") as fh:
        fh.write(data)
    _same(cache.evaluate(name, args), fresh)
    assert cache.stats["corrupt"] == 1 and cache.stats["misses"] == 2
    _same(cache.evaluate(name, args), fresh)   # rewritten: a clean hit now
    assert cache.stats["hits"] == 1 and cache.stats["corrupt"] == 1


def test_the_size_cap_evicts_the_least_recently_used(tmp_path):
    cache = C.ReferenceCache(tmp_path, max_bytes=10**9)
    xs = [np.full((4, 64), float(i)) for i in range(12)]
    for i, x in enumerate(xs):
        cache.evaluate("softmax", (x,))
        p = cache.path(cache.key("softmax", (x,)))
        os.utime(p, (1_000_000 + i, 1_000_000 + i))   # entry i used at time i
    sizes = [s for _, s, _ in cache.entries()]
    assert len(sizes) == 12
    cap = 6 * max(sizes)
    assert cache.trim(cap) > 0
    assert cache.size() <= C.LOW_WATER * cap
    kept = {i for i, x in enumerate(xs) if os.path.exists(cache.path(cache.key("softmax", (x,))))}
    assert kept and kept == set(range(12 - len(kept), 12))   # the newest survive
    assert cache.trim(cap) == 0   # under the cap: nothing to do
    small = C.ReferenceCache(tmp_path / "small", max_bytes=cap)
    for x in xs:   # the first write of a process trims; later ones every TRIM_EVERY writes
        small.evaluate("softmax", (x,))
    small.trim()
    assert small.size() <= cap and small.stats["evicted"] > 0


def test_an_unwritable_cache_never_fails_an_evaluation(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = C.ReferenceCache(blocker / "cache")
    name, args = INPUTS[0]
    _same(cache.evaluate(name, args), reference.evaluate_uncached(name, *args))
    assert cache.stats["write_errors"] == 1 and cache.stats["stored"] == 0


def test_default_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(C.ENV_DIR, str(tmp_path / "here"))
    assert C.default_dir() == str(tmp_path / "here")
    monkeypatch.delenv(C.ENV_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.default_dir() == str(tmp_path / "xdg" / "infoaudit")
    monkeypatch.setenv(C.ENV_MAX_BYTES, "12345")
    assert C.ReferenceCache(tmp_path).max_bytes == 12345
    assert C.cached_evaluate("sigmoid", np.array([1.0]), cache=str(tmp_path)).hi.shape == (1,)


_BARRIER = []


def _init_writer(barrier):
    _BARRIER.append(barrier)


def _writer(directory, seed):
    """One of several processes filling the same cache (shared and own inputs, in turns), all
    starting at once."""
    rng = np.random.default_rng(seed)
    _BARRIER[0].wait(timeout=120)
    cache = C.ReferenceCache(directory)
    own = [rng.standard_normal((3, 8)) * 10 for _ in range(8)]
    out = []
    for _ in range(3):
        for k in range(8):
            shared = np.linspace(-3.0, 3.0, 16).reshape(2, 8) * (k + 1)
            for x in (shared, own[k]):
                ex = cache.evaluate("log_softmax", (x,))
                out.append((x, ex.hi, ex.lo))
    return out, cache.stats


def test_concurrent_writers(tmp_path):
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(3, mp_context=ctx, initializer=_init_writer, initargs=(ctx.Barrier(3),)) as pool:
        runs = list(pool.map(_writer, [str(tmp_path)] * 3, [1, 2, 3]))
    for out, stats in runs:
        assert stats["corrupt"] == 0 and stats["write_errors"] == 0 and stats["hits"] >= 2 * 16
        for x, hi, lo in out[::5]:
            fresh = reference.evaluate_uncached("log_softmax", x)
            assert np.array_equal(hi, fresh.hi) and np.array_equal(lo, fresh.lo)
    cache = C.ReferenceCache(tmp_path)
    names = [e.name for sub in os.scandir(cache.root) for e in os.scandir(sub.path)]
    assert not [n for n in names if n.startswith(".tmp-")]   # every temporary file was renamed
    assert len(names) == 8 + 3 * 8
    for x, _, _ in runs[0][0]:   # every entry reads back clean
        assert cache.get(cache.key("log_softmax", (x,))) is not None
    assert cache.stats["corrupt"] == 0


def test_a_cached_group_equals_an_uncached_one(tmp_path):
    from infoaudit.run.tasks import run_group

    task = dict(quantity="entropy_bits", dtype="float64", profile="quick", seed=0, backends=["numpy"])
    with without_local_constants():   # a warm cache imports less: see support_hypothesis
        plain = run_group(task)
        with C.use_cache(tmp_path) as cache:
            cold = run_group(task)
            misses = cache.stats["misses"]
            warm = run_group(task)
    assert misses > 0 and cache.stats["misses"] == misses   # the warm run: hits only
    for r in (cold, warm):
        assert r["cells"] == plain["cells"]
        assert (r["examples"], r["reference_errors"], r["reference_over_budget"]) == \
            (plain["examples"], plain["reference_errors"], plain["reference_over_budget"])


def test_exact_gradients_go_through_the_same_cache(tmp_path):
    """derivatives.vjp under an active cache: a miss stores, a hit returns every argument's
    Exact bit for bit (arrays, a 0-d scalar partial, integer labels among the arguments); the
    cotangent is part of the key; a corrupt gradient entry is recomputed."""
    from infoaudit.reference import derivatives as D

    z = np.array([[1.0, 2.0, 3.5], [1e-3, -7.0, 2.0]])
    cases = [("softmax", (z,), None), ("softmax", (z,), np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]])),
             ("cross_entropy", (z, np.array([2, 0])), None),
             ("distillation_loss", (z, z[::-1].copy(), 2.0), None)]
    with C.use_cache(tmp_path) as cache:
        for name, args, cot in cases:
            fresh = D.vjp_uncached(name, *args, cotangent=cot)
            for _ in range(2):   # miss, then hit
                got = D.vjp(name, *args, cotangent=cot)
                assert list(got) == list(fresh)
                for arg in fresh:
                    _same(got[arg], fresh[arg])
        assert cache.stats["misses"] == len(cases) and cache.stats["hits"] == len(cases)
        assert got["T"].hi.shape == ()
        for p, _, _ in cache.entries():   # damage every entry: each is detected and recomputed
            with open(p, "r+b") as fh:
                fh.seek(-1, os.SEEK_END)
                fh.write(b"\x00" if fh.read(1) != b"\x00" else b"\x01")
        again = D.vjp("softmax", z)
        assert cache.stats["corrupt"] == 1
        _same(again["z"], D.vjp_uncached("softmax", z)["z"])
    assert reference.active_cache() is None

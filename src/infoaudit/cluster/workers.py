"""Per-worker fingerprints of a cluster run, and the workers whose environment differs.

A heterogeneous cluster can change results: another numpy or torch picks other kernels, other
CPU flags (AVX-512, FMA) select other code paths, a worker whose tasks switched flush-to-zero on
(torch.compile, XLA, a fast-math library) returns 0 where another returns a subnormal. The
executor takes every worker's fingerprint (:meth:`.executor.ClusterExecutor.fingerprints`) and
:func:`compare_workers` groups them: the *reference* is the fingerprint most workers share (ties:
the first worker address in sorted order), and every other worker is flagged with its
differences from it (:func:`infoaudit.results.fingerprint.fp_changes`: version, fp (FTZ/DAZ),
precision, device, cpu, threads, other). Paths that differ between identical machines (when it
was taken, the worker's own address) are not compared.
"""
from __future__ import annotations

import json

from ..results.fingerprint import fp_changes

__all__ = ["compare_workers", "summary", "NOT_COMPARED"]

NOT_COMPARED = ("taken", "worker")   # top-level fingerprint fields that differ between identical workers
# threads.* fields recorded only once the process has loaded the module (the reference engine is
# chosen on a worker's first exact value): absent on one worker is "not loaded yet", not a difference
LOADED_ONLY = ("reference_engine",)


def _comparable(fp, other=None):
    """The fields to compare; LOADED_ONLY fields only when ``other`` has them too (grouping: never)."""
    out = {k: v for k, v in (fp or {}).items() if k not in NOT_COMPARED}
    threads = out.get("threads")
    if isinstance(threads, dict):
        theirs = (other or {}).get("threads") or {}
        out["threads"] = {k: v for k, v in threads.items()
                          if k not in LOADED_ONLY or (other is not None and k in theirs)}
    return out


def compare_workers(fingerprints: dict) -> dict:
    """``{"workers": n, "reference": address, "heterogeneous": bool, "differs": {address:
    [{"path", "old", "new", "kind"}]}, "errors": {address: message}}`` for ``{address:
    fingerprint}`` (a fingerprint ``{"error": ...}`` is listed under ``errors``, not compared)."""
    ok = {a: fp for a, fp in fingerprints.items() if "error" not in fp}
    errors = {a: fp["error"] for a, fp in fingerprints.items() if "error" in fp}
    if not ok:
        return {"workers": len(fingerprints), "reference": None, "heterogeneous": False, "differs": {},
                "errors": errors}
    same = {}
    for a in sorted(ok):
        canon = json.dumps(_comparable(_untimed(ok[a])), sort_keys=True, default=str)
        same.setdefault(canon, []).append(a)
    # the largest group of identical fingerprints; ties: the one with the first address
    ref = min(same.values(), key=lambda addrs: (-len(addrs), addrs[0]))[0]
    differs = {}
    for a in sorted(ok):
        changes = fp_changes(_comparable(ok[ref], ok[a]), _comparable(ok[a], ok[ref]))
        if changes:
            differs[a] = changes
    return {"workers": len(fingerprints), "reference": ref, "heterogeneous": bool(differs), "differs": differs,
            "errors": errors}


def _untimed(fp):
    """The fingerprint without its ``taken`` stamps at any depth (they differ between workers)."""
    if isinstance(fp, dict):
        return {k: _untimed(v) for k, v in fp.items() if k != "taken"}
    return fp


def summary(executor, frameworks=None) -> dict:
    """The ``cluster`` section of a results document, at the end of a run on ``executor`` (a
    :class:`.executor.ClusterExecutor`): the scheduler, the executor's counts, the task stream
    (``tasks``: where and when each task ran), every worker's fingerprint and
    :func:`compare_workers` of them (``heterogeneity``)."""
    fps = executor.fingerprints(frameworks=frameworks)   # None: numpy, torch and jax on every worker
    return {"scheduler": executor.address, "workers_used": len({t.get("worker") for t in executor.timings}),
            "stats": dict(executor.stats), "tasks": list(executor.timings), "fingerprints": fps,
            "heterogeneity": compare_workers(fps)}

"""What runs on a Dask worker around each task: the same process state as a local pool worker.

:func:`run_task` serialises the tasks of one worker process (the exact reference's mpmath
precision and hypothesis are process-global: a worker started with several threads runs one
audit task at a time), sets the pool worker's thread limits (one BLAS / torch / XLA thread), checks
that the worker has the package versions the run started with, checks a GPU task's worker
really sees a GPU, activates the reference cache, and keeps a panel to its CPU rows where the
run does not audit GPU cells.
"""
from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["run_task", "run_timed", "worker_fingerprint", "versions", "WorkerMismatch", "PACKAGES"]

PACKAGES = ("infoaudit", "numpy", "scipy", "mpmath", "gmpy2", "ml_dtypes", "hypothesis", "torch", "jax", "jaxlib",
            "optax", "python-flint", "numba")
_LOCK = threading.Lock()
_STATE = {"prepared": False, "torch": False}


class WorkerMismatch(RuntimeError):
    """The worker cannot give the results a local run would: other package versions, or no GPU."""


def versions() -> dict:
    """{package: version} of the audited stack in this process (and the Python version)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _prepare(payload):
    if not _STATE["prepared"]:
        for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[k] = "1"
        os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import warnings

        warnings.filterwarnings("ignore")
        _STATE["prepared"] = True
    backends = (payload or {}).get("backends") if isinstance(payload, dict) else None
    if not _STATE["torch"] and (not backends or "torch" in backends or "torch" in sys.modules):
        try:
            import torch

            torch.set_num_threads(1)
        except Exception:  # noqa: BLE001 - torch absent: its cells are skipped with a reason
            pass
        _STATE["torch"] = True


def _check_versions(expected):
    if "versions" not in _STATE:
        _STATE["versions"] = versions()
    have = _STATE["versions"]
    diff = [f"{k} {have.get(k)} (run: {v})" for k, v in sorted(expected.items())
            if k in PACKAGES and have.get(k) != v]
    if diff:
        raise WorkerMismatch(f"worker {_address()} has other versions than the run: {', '.join(diff[:4])}"
                             + (f" (+{len(diff) - 4})" if len(diff) > 4 else ""))


def _check_gpu(payload):
    from ..backends import BackendUnavailable, load

    backends = [b for b in (payload.get("backends") or ("torch", "jax")) if b in ("torch", "jax")]
    seen = []
    for b in backends:
        try:
            devs = load(b).devices()
        except (BackendUnavailable, ImportError):
            continue
        seen += [d for d in devs if d != "cpu"]
    if backends and not seen:
        raise WorkerMismatch(f"worker {_address()} declares the GPU resource but {' / '.join(backends)} "
                             f"see(s) no GPU device here")


def _address():
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:  # noqa: BLE001 - not on a worker (tests call run_task directly)
        return f"pid {os.getpid()}"


def _cpu_rows(res):
    """Keep the CPU rows of a panel result ``(kind, payload, result, error)``."""
    if isinstance(res, tuple) and len(res) == 4 and isinstance(res[2], dict) and "results" in res[2]:
        panel = dict(res[2])
        panel["results"] = [r for r in panel["results"] if r.get("device", "cpu") == "cpu"]
        return res[:2] + (panel,) + res[3:]
    return res


def run_task(fn, args, kwargs, options):
    """``fn(*args, **kwargs)`` on this worker. ``options``: ``versions`` (expected
    :func:`versions`; None skips the check), ``gpu`` (check a GPU is visible), ``cpu_only``
    (panel rows of CPU devices only), ``cache_dir`` (reference cache; None: none)."""
    payload = args[1] if len(args) >= 2 and isinstance(args[1], dict) else {}
    with _LOCK:
        _prepare(payload)
        if options.get("versions"):
            _check_versions(options["versions"])
        if options.get("gpu"):
            _check_gpu(payload)
        if options.get("cache_dir"):
            from ..reference.cache import use_cache

            with use_cache(options["cache_dir"]):
                res = fn(*args, **kwargs)
        else:
            res = fn(*args, **kwargs)
        return _cpu_rows(res) if options.get("cpu_only") else res


def run_timed(fn, args, kwargs, options):
    """:func:`run_task` and where and when it ran: ``(result, {"worker", "pid", "start", "stop"})``
    (``start`` / ``stop``: this machine's wall clock, seconds since the epoch)."""
    start = time.time()
    res = run_task(fn, args, kwargs, options)
    return res, {"worker": _address(), "pid": os.getpid(), "start": start, "stop": time.time()}


def worker_fingerprint(frameworks=None):
    """This worker's environment fingerprint (:func:`infoaudit.results.fingerprint.fingerprint`:
    package versions, CPU flags, FTZ/DAZ state probed in the thread that runs the tasks), taken
    between tasks."""
    from ..results.fingerprint import fingerprint

    with _LOCK:
        fp = fingerprint(probe_fp=True, frameworks=frameworks)
    fp["worker"] = _address()
    return fp

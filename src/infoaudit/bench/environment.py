"""The environment a throughput report was measured in: CPU, cores, threads, versions, devices,
and the full environment fingerprint (:func:`infoaudit.results.fingerprint.fingerprint`: CPU
flags, device and driver, FTZ/DAZ as probed, TF32 / matmul precision, XLA_FLAGS, threads)."""
from __future__ import annotations

import os
import platform
import sys

__all__ = ["THREAD_VARS", "cpu_model", "load_average", "collect", "fingerprint_of"]

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "XLA_FLAGS",
               "TF_NUM_INTRAOP_THREADS", "CUDA_VISIBLE_DEVICES")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    try:
        return list(os.getloadavg())
    except (OSError, AttributeError):
        return None


def collect(handles=()) -> dict:
    import numpy as np
    import scipy

    from .. import __version__
    from .bandwidth import llc_bytes

    env = {
        "infoaudit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "last_level_cache_bytes": llc_bytes(),
        "load_average_start": load_average(),
        "thread_env": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__},
        "threads": {"numpy": "1 (elementwise ufuncs and reductions are single-threaded)"},
        "backends": {},
        "devices": ["cpu"],
    }
    try:
        import ml_dtypes
        env["versions"]["ml_dtypes"] = ml_dtypes.__version__
    except ImportError:
        pass
    for h in handles:
        env["backends"][h.name] = {"available": h.ok, "reason": h.reason, "version": h.version,
                                   "devices": list(h.devices)}
    try:
        import torch
        env["versions"]["torch"] = torch.__version__
        env["threads"]["torch"] = torch.get_num_threads()
        env["threads"]["torch_interop"] = torch.get_num_interop_threads()
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                env["devices"].append(f"cuda:{i} {torch.cuda.get_device_name(i)}")
            env["versions"]["cuda"] = torch.version.cuda
    except ImportError:
        pass
    if "jax" in sys.modules or any(h.name == "jax" and h.ok for h in handles):
        try:
            import jax
            env["versions"]["jax"] = jax.__version__
            env["jax_devices"] = [str(d) for d in jax.devices()]
            env["threads"]["jax"] = "XLA CPU thread pool (all usable CPUs)"
        except Exception as e:  # pragma: no cover
            env["jax_error"] = f"{type(e).__name__}: {e}"
    env["fingerprint"] = fingerprint_of(handles)
    return env


def fingerprint_of(handles=()) -> dict:
    """The fingerprint of the frameworks the bench loaded (numpy always; scipy counts as numpy)."""
    from ..results.fingerprint import FRAMEWORKS, fingerprint

    fws = {"numpy"} | {h.name for h in handles if h.ok and h.name in FRAMEWORKS}
    try:
        return fingerprint(frameworks=tuple(sorted(fws)))
    except Exception as e:  # noqa: BLE001 - never lose a bench to its fingerprint
        return {"error": f"{type(e).__name__}: {e}"}

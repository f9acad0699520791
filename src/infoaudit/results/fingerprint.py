"""The environment fingerprint: everything about this process and machine that can change a result.

``fingerprint(probe_fp=True, frameworks=None) -> dict`` (JSON-able) records

* ``packages``: the version of every package that decides an answer (numpy, scipy, ml_dtypes,
  mpmath, gmpy2, python-flint, numba, llvmlite, hypothesis, torch, jax, jaxlib, optax,
  matplotlib, jinja2); a package that is not installed is ``null``;
* ``python``, ``implementation``, ``platform``, ``machine``;
* ``cpu``: model, logical/usable CPUs and the CPU flags that select kernels (avx, avx2, avx512*,
  fma, f16c, amx*, ... from /proc/cpuinfo; ARM ``Features``), numpy's SIMD baseline and the
  extensions it dispatches to;
* ``env``: the environment variables that change answers or thread counts (``XLA_FLAGS``,
  ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``NUMBA_*``,
  ``NVIDIA_TF32_OVERRIDE``, ``JAX_*``, ...) -- only those that are set;
* ``threads``: torch intra/inter-op threads, numba's configured threading layer and threads;
* ``frameworks``: per framework ``available`` (and ``reason`` when not), version, devices;
  torch: CUDA version, cuDNN version, CUDA device names, the NVIDIA driver version (from
  /proc/driver/nvidia/version), ``cpu_capability`` (the kernel family torch dispatches to), the
  TF32 flags (``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``) and
  ``torch.get_float32_matmul_precision()``; jax: jaxlib, devices, default backend,
  ``jax_default_matmul_precision``, ``jax_enable_x64``;
* ``fp``: the floating-point state as probed (:func:`fp_state`): for each framework, device and
  dtype whether subnormal results are flushed to zero (FTZ) and subnormal inputs read as zero
  (DAZ), probed with :func:`infoaudit.harness.ftz.probe`'s arithmetic (XLA on CPU flushes
  bfloat16, float32 and float64 but not float16; a library loaded with fast-math can switch the
  whole process to FTZ), plus the matmul precision settings.

No module here imports torch or jax at import time. ``frameworks`` names the frameworks to import
and probe (default: every one that is installed); one that is installed but not named is recorded
with its version and ``"probed": false``; one that is not installed is ``available: false`` with
the reason. :func:`fp_state` takes the floating-point part again without the per-process cache of
``ftz.probe`` (torch.compile, XLA or a fast-math library can change it during a run); compare two
with :func:`fp_changes`.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import sys

FINGERPRINT_VERSION = 1

PACKAGES = ("numpy", "scipy", "ml_dtypes", "mpmath", "gmpy2", "python-flint", "numba", "llvmlite",
            "hypothesis", "torch", "jax", "jaxlib", "optax", "matplotlib", "jinja2")

FRAMEWORKS = ("numpy", "torch", "jax")
FP_DTYPES = ("float16", "bfloat16", "float32", "float64")

# environment variables that change answers (precision, kernels, devices) or thread counts
ENV_VARS = ("XLA_FLAGS", "JAX_PLATFORMS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION", "JAX_DEFAULT_DTYPE_BITS",
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
            "NUMEXPR_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "MKL_CBWR",
            "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES",
            "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "NUMBA_DISABLE_JIT", "NUMBA_CPU_NAME", "NUMBA_OPT",
            "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "CUBLAS_WORKSPACE_CONFIG",
            "CUDA_VISIBLE_DEVICES", "ATEN_CPU_CAPABILITY", "TORCHINDUCTOR_FREEZING", "INFOAUDIT_FAST")

# CPU flags that select numerical kernels (x86 /proc/cpuinfo "flags"; ARM "Features")
_FLAG_PREFIXES = ("avx512", "amx")
_FLAGS = {"sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "avx2", "fma", "fma4", "f16c", "avx_vnni",
          "avx_vnni_int8", "avx_ifma", "avx_ne_convert", "bmi1", "bmi2", "popcnt", "adx",
          "asimd", "asimdhp", "asimddp", "fphp", "sve", "sve2", "bf16", "i8mm", "sme", "fp16"}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _err(e) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def package_version(name: str):
    """The installed distribution's version, or None."""
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    try:
        return version(name)
    except PackageNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a broken distribution record
        return None


def packages() -> dict:
    return {name: package_version(name) for name in PACKAGES}


def _cpuinfo() -> dict:
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and model is None:
                    model = val.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    keep = sorted(f for f in flags if f in _FLAGS or f.startswith(_FLAG_PREFIXES))
    return {"model": model or platform.processor() or platform.machine(), "flags": keep}


def _numpy_simd() -> dict:
    try:
        import numpy as np

        cfg = np.show_config(mode="dicts")
        simd = cfg.get("SIMD Extensions", {})
        out = {"baseline": list(simd.get("baseline", [])), "found": list(simd.get("found", []))}
        blas = (cfg.get("Build Dependencies", {}) or {}).get("blas", {}) or {}
        if blas:
            out["blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        return out
    except Exception as e:  # noqa: BLE001 - numpy < 1.25 has no mode="dicts"
        return {"error": _err(e)}


def cpu() -> dict:
    info = _cpuinfo()
    info["logical_cpus"] = os.cpu_count()
    info["usable_cpus"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info["numpy_simd"] = _numpy_simd()
    return info


def env_vars() -> dict:
    return {k: os.environ[k] for k in ENV_VARS if k in os.environ}


def _nvidia_driver():
    try:
        with open("/proc/driver/nvidia/version") as fh:
            first = fh.readline().strip()
    except OSError:
        return None
    # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
    for tok in first.split():
        if tok[:1].isdigit() and tok.count(".") >= 1:
            return tok
    return first or None


def _import(name):
    """(module, None) or (None, reason)."""
    if package_version(name) is None and name not in sys.modules:
        return None, f"not installed (no {name} distribution in {sys.prefix})"
    try:
        import importlib

        return importlib.import_module(name), None
    except Exception as e:  # noqa: BLE001 - a broken install is recorded, not raised
        return None, f"import failed: {_err(e)}"


def _torch_settings(torch) -> dict:
    """The torch state that changes answers (cheap; read again by :func:`fp_state`)."""
    out = {}
    try:
        out["allow_tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    except Exception as e:  # noqa: BLE001
        out["allow_tf32_matmul"] = _err(e)
    try:
        out["allow_tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
    except Exception as e:  # noqa: BLE001
        out["allow_tf32_cudnn"] = _err(e)
    try:
        out["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    except Exception as e:  # noqa: BLE001
        out["float32_matmul_precision"] = _err(e)
    try:
        out["reduced_precision_fp16_matmul"] = bool(torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction)
        out["reduced_precision_bf16_matmul"] = bool(torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction)
    except Exception:  # noqa: BLE001 - older torch
        pass
    try:
        out["deterministic_algorithms"] = bool(torch.are_deterministic_algorithms_enabled())
    except Exception:  # noqa: BLE001
        pass
    return out


def _jax_settings(jax) -> dict:
    out = {}
    for flag in ("jax_default_matmul_precision", "jax_enable_x64", "jax_default_prng_impl"):
        try:
            v = getattr(jax.config, flag)
            out[flag] = v if isinstance(v, (bool, int, float, str)) or v is None else str(v)
        except Exception:  # noqa: BLE001
            pass
    out["XLA_FLAGS"] = os.environ.get("XLA_FLAGS")
    return out


def _torch_info(torch) -> dict:
    out = {"available": True, "version": getattr(torch, "__version__", None), "probed": True}
    devices = ["cpu"]
    try:
        out["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # noqa: BLE001
        pass
    try:
        out["cuda_build"] = torch.version.cuda
        out["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                devices.append(f"cuda:{i}")
            out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            out["cuda_capability"] = [".".join(map(str, torch.cuda.get_device_capability(i)))
                                      for i in range(torch.cuda.device_count())]
            out["nvidia_driver"] = _nvidia_driver()
        else:
            out["cuda_unavailable"] = ("torch.cuda.is_available() is False"
                                       + ("" if torch.version.cuda else f" (build {torch.__version__} has no CUDA)"))
    except Exception as e:  # noqa: BLE001
        out["cuda_error"] = _err(e)
    out["devices"] = devices
    return out


def _jax_info(jax) -> dict:
    out = {"available": True, "version": getattr(jax, "__version__", None), "probed": True,
           "jaxlib": package_version("jaxlib")}
    try:
        out["default_backend"] = jax.default_backend()
        devs = jax.devices()
        out["devices"] = [f"{d.platform}:{d.id}" for d in devs]
        out["device_kinds"] = sorted({getattr(d, "device_kind", d.platform) for d in devs})
    except Exception as e:  # noqa: BLE001
        out["devices"] = []
        out["device_error"] = _err(e)
    return out


def _frameworks(frameworks) -> tuple:
    """({name: info}, {name: module}) for numpy, torch and jax."""
    infos, mods = {}, {}
    wanted = set(FRAMEWORKS if frameworks is None else frameworks) | {"numpy"}
    for name in FRAMEWORKS:
        if name not in wanted and name not in sys.modules:
            v = package_version(name)
            infos[name] = ({"available": True, "version": v, "probed": False,
                            "reason": "installed; not imported by this command"} if v else
                           {"available": False, "version": None, "reason": "not installed"})
            continue
        mod, why = _import(name)
        if mod is None:
            infos[name] = {"available": False, "version": package_version(name), "reason": why}
            continue
        mods[name] = mod
        if name == "numpy":
            infos[name] = {"available": True, "version": mod.__version__, "probed": True, "devices": ["cpu"]}
        elif name == "torch":
            infos[name] = _torch_info(mod)
        else:
            infos[name] = _jax_info(mod)
    return infos, mods


def _threads(mods) -> dict:
    out = {}
    torch = mods.get("torch")
    if torch is not None:
        try:
            out["torch"] = torch.get_num_threads()
            out["torch_interop"] = torch.get_num_interop_threads()
        except Exception as e:  # noqa: BLE001
            out["torch_error"] = _err(e)
    numba = sys.modules.get("numba")
    if numba is not None:  # its configuration, when loaded (importing numba only for this costs ~1 s)
        try:
            out["numba_threading_layer"] = numba.config.THREADING_LAYER
            out["numba_num_threads"] = numba.config.NUMBA_NUM_THREADS
        except Exception as e:  # noqa: BLE001
            out["numba_error"] = _err(e)
    elif package_version("numba"):
        out["numba_threading_layer"] = os.environ.get("NUMBA_THREADING_LAYER", "default")
        out["numba_num_threads"] = int(os.environ.get("NUMBA_NUM_THREADS") or 0) or os.cpu_count()
    eng = sys.modules.get("infoaudit.reference.fast")
    if eng is not None and getattr(eng, "ENGINE", None):
        out["reference_engine"] = eng.ENGINE
    return out


# ----------------------------------------------------------------- floating-point state


def _state(flushes_outputs, flushes_inputs) -> str:
    if flushes_outputs and flushes_inputs:
        return "ftz+daz"
    if flushes_outputs:
        return "ftz"
    if flushes_inputs:
        return "daz"
    return "ieee"


def _probe_one(framework, dtype, device) -> str:
    """'ieee' | 'ftz' | 'daz' | 'ftz+daz' | 'error: ...' -- probed now, not from the process cache."""
    from ..harness import ftz

    raw = getattr(ftz.probe, "__wrapped__", ftz.probe)
    try:
        r = raw(framework, dtype, device)
    except Exception as e:  # noqa: BLE001 - an absent device or a broken install
        return f"error: {_err(e)}"
    if r.error:
        return f"error: {r.error}"
    return _state(r.flushes_outputs, r.flushes_inputs)


def _probe_targets(infos) -> list:
    """(framework, device) pairs to probe: cpu for every imported framework, the first GPU too."""
    out = []
    for name in FRAMEWORKS:
        info = infos.get(name) or {}
        if not (info.get("available") and info.get("probed")):
            continue
        out.append((name, "cpu"))
        if name == "torch" and any(d.startswith("cuda") for d in info.get("devices", [])):
            out.append((name, "cuda"))
        if name == "jax" and any(d.startswith(("gpu", "cuda")) for d in info.get("devices", [])):
            out.append((name, "gpu"))
    return out


def fp_state(frameworks=None, dtypes=FP_DTYPES) -> dict:
    """The floating-point state that changes answers, probed now (uncached):
    ``{"taken", "ftz": {"<framework>/<device>": {dtype: state}}, "settings": {"torch": ..., "jax": ...}}``.

    ``state`` is ``ieee`` (keeps subnormals), ``ftz`` (subnormal results flushed to zero), ``daz``
    (subnormal inputs read as zero), ``ftz+daz`` or ``error: ...``. Frameworks not imported in this
    process and not named in ``frameworks`` are not imported for it. Call it at the start and at
    the end of a run (``torch.compile``, XLA or a fast-math library can change the state between)."""
    infos, mods = _frameworks(frameworks)
    return _fp_from(infos, mods, dtypes)


def _fp_from(infos, mods, dtypes, probe=True) -> dict:
    out = {"taken": _now(), "ftz": {} if probe else None, "settings": {}}
    for fw, dev in _probe_targets(infos) if probe else ():
        out["ftz"][f"{fw}/{dev}"] = {d: _probe_one(fw, d, dev) for d in dtypes}
    if "torch" in mods:
        out["settings"]["torch"] = _torch_settings(mods["torch"])
    if "jax" in mods:
        out["settings"]["jax"] = _jax_settings(mods["jax"])
    return out


def fingerprint(probe_fp: bool = True, frameworks=None) -> dict:
    """This environment's fingerprint (JSON-able; see the module docstring).

    ``frameworks``: the frameworks to import and probe (None: numpy, torch and jax, whichever are
    installed; numpy always). ``probe_fp=False`` leaves out the FTZ/DAZ probes (``fp.ftz`` is None;
    the precision settings are still read)."""
    from .. import __version__

    infos, mods = _frameworks(frameworks)
    fp = {"fingerprint": FINGERPRINT_VERSION, "taken": _now(), "infoaudit": __version__,
          "python": sys.version.split()[0], "implementation": platform.python_implementation(),
          "platform": platform.platform(), "machine": platform.machine(),
          "packages": packages(), "cpu": cpu(), "env": env_vars(), "threads": _threads(mods),
          "frameworks": infos}
    fp["fp"] = _fp_from(infos, mods, FP_DTYPES, probe=probe_fp)
    return fp


# ----------------------------------------------------------------- comparing two fingerprints

# differences in these paths explain nothing numerical
_IGNORED = {"taken", "fp.taken", "fp_after.taken", "cpu.logical_cpus", "cpu.usable_cpus"}


def _flatten(d, prefix="") -> dict:
    out = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(d, list):
        out[prefix] = ", ".join(str(x) for x in d)
    else:
        out[prefix] = d
    return out


def _kind(path: str) -> str:
    if path.startswith("packages.") or path in ("python", "implementation", "infoaudit") or path.endswith(".version") \
            or path.endswith(".jaxlib"):
        return "version"
    if path.startswith(("fp.ftz", "fp_after.ftz")):
        return "fp"
    if ".settings." in path or path.startswith(("fp.settings", "fp_after.settings")) or path.startswith("env.XLA") \
            or "TF32" in path or "MATMUL" in path:
        return "precision"
    if path.startswith("cpu.") or path in ("platform", "machine"):
        return "cpu"
    if "devices" in path or "cuda" in path or "driver" in path or "device_kinds" in path or path.endswith("backend"):
        return "device"
    if path.startswith("threads.") or path.startswith("env."):
        return "threads"
    return "other"


def fp_changes(old: dict | None, new: dict | None, only_common: bool = False) -> list:
    """Differences between two fingerprints (or two :func:`fp_state` results):
    ``[{"path", "old", "new", "kind"}]`` with kind ``version | fp | precision | device | cpu |
    threads | other``, sorted by kind (most likely explanations first). A path missing on one side
    compares as None, or is skipped with ``only_common`` (for a document recorded before
    fingerprints existed)."""
    a, b = _flatten(old or {}), _flatten(new or {})
    order = {"version": 0, "fp": 1, "precision": 2, "device": 3, "cpu": 4, "threads": 5, "other": 6}
    out = []
    for path in sorted(set(a) | set(b)):
        if path in _IGNORED or path.endswith(".taken"):
            continue
        if only_common and (path not in a or path not in b):
            continue
        va, vb = a.get(path), b.get(path)
        if va != vb:
            out.append({"path": path, "old": va, "new": vb, "kind": _kind(path)})
    out.sort(key=lambda r: (order[r["kind"]], r["path"]))
    return out


__all__ = ["fingerprint", "fp_state", "fp_changes", "packages", "cpu", "env_vars", "PACKAGES", "ENV_VARS",
           "FINGERPRINT_VERSION"]

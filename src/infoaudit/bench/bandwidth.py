"""The machine's own limits, measured in the same run as the ops.

* Same-shape copy into a preallocated output, for every (shape, dtype) of the run:
  ``numpy.copyto(dst, src)`` (one thread) and ``dst.copy_(src)`` in PyTorch (all its threads;
  on CUDA with synchronisation). Bytes moved = read + written = 2 x array bytes, the same
  convention as the ops' minimum bytes, so op GB/s / copy GB/s is a like-for-like fraction.
* Reference points by working-set size: L1 and L2 (cache-resident), L3, and main memory
  (arrays several times the last-level cache, so each copy streams from DRAM).
* Elementwise exp throughput (cache-resident), the compute limit of every softmax-family op:
  each needs at least one exp per input element.
"""
from __future__ import annotations

import os

import numpy as np

from ..dtypes import np_dtype
from .timing import time_call

__all__ = ["TORCH_DTYPES", "llc_bytes", "reference_sizes", "copy_numpy", "copy_torch", "measure",
           "limit_for", "reference_gbps", "exp_rate", "half_conversion_rates"]

TORCH_DTYPES = {"float16": "float16", "bfloat16": "bfloat16", "float32": "float32", "float64": "float64"}


def llc_bytes() -> int:
    """Last-level cache size from sysfs (bytes); 32 MiB when it cannot be read."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for d in os.listdir(base):
            try:
                with open(os.path.join(base, d, "size")) as f:
                    txt = f.read().strip().upper()
            except OSError:
                continue
            mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(txt[-1:], 1)
            num = txt[:-1] if txt[-1:] in "KMG" else txt
            if num.isdigit():
                best = max(best, int(num) * mult)
    except OSError:
        pass
    return best or 32 * 1024 ** 2


def reference_sizes(quick=False) -> list:
    """(level, bytes per array) reference working sets."""
    dram = max(512 * 1024 ** 2, 2 * llc_bytes())
    if quick:
        dram = max(256 * 1024 ** 2, llc_bytes())
    dram = min(dram, 2 * 1024 ** 3)
    return [("L1", 16 * 1024), ("L2", 512 * 1024), ("L3", 32 * 1024 ** 2), ("DRAM", dram)]


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _record(kind, impl, device, threads, nbytes, timing, **extra):
    moved = 2 * nbytes
    d = {"kind": kind, "impl": impl, "device": device, "threads": threads, "array_bytes": nbytes,
         "bytes_moved": moved, "median_ns": timing.median_ns, "p25_ns": timing.p25_ns,
         "p75_ns": timing.p75_ns, "samples": timing.samples, "inner": timing.inner,
         "gbps": moved / timing.median_ns, "gbps_p25": moved / timing.p75_ns,
         "gbps_p75": moved / timing.p25_ns}
    d.update(extra)
    return d


def copy_numpy(shape, dtype, **tk):
    src = np.ones(shape, dtype=np_dtype(dtype))
    dst = np.empty_like(src)
    dst.fill(0)
    t = time_call(lambda: np.copyto(dst, src), **tk)
    return t, src.nbytes


def copy_torch(shape, dtype, device="cpu", **tk):
    torch = _torch()
    td = getattr(torch, TORCH_DTYPES[dtype])
    src = torch.ones(shape, dtype=td, device=device)
    dst = torch.zeros_like(src)
    barrier = torch.cuda.synchronize if str(device).startswith("cuda") else None
    t = time_call(lambda: dst.copy_(src), barrier=barrier, **tk)
    return t, src.numel() * src.element_size()


def measure(pairs, devices, quick=False, progress=None, reference=True, **tk) -> dict:
    """Copy bandwidth for every (shape, dtype) pair and reference size, exp throughput.

    ``devices``: e.g. ["cpu"] or ["cpu", "cuda"]; ``reference=False``: same-shape copies only.
    Returns {"copy": [...], "reference": [...],
    "exp": [...], "notes": [...]}.
    """
    torch = _torch()
    out = {"copy": [], "reference": [], "exp": [], "notes": []}
    say = progress or (lambda msg: None)
    tthreads = torch.get_num_threads() if torch is not None else None
    for device in devices:
        cuda = str(device).startswith("cuda")
        if cuda and (torch is None or not torch.cuda.is_available()):
            continue
        for shape, dtype in pairs:
            if not cuda:
                t, nb = copy_numpy(shape, dtype, **tk)
                out["copy"].append(_record("same_shape", "numpy.copyto", device, 1, nb, t,
                                           shape=list(shape), dtype=dtype))
            if torch is not None:
                t, nb = copy_torch(shape, dtype, device, **tk)
                out["copy"].append(_record("same_shape", "torch.Tensor.copy_", device,
                                           None if cuda else tthreads, nb, t, shape=list(shape), dtype=dtype))
            say(f"limit: copy {shape[0]}x{shape[1]} {dtype} on {device}: "
                f"{max(r['gbps'] for r in out['copy'] if r['device'] == device and r['shape'] == list(shape) and r['dtype'] == dtype):.1f} GB/s")
        for level, nbytes in (reference_sizes(quick) if reference else []):
            if cuda and level in ("L1", "L2"):
                continue
            n = nbytes // 4
            shape = (n,)
            if not cuda:
                t, nb = copy_numpy(shape, "float32", **tk)
                out["reference"].append(_record("reference", "numpy.copyto", device, 1, nb, t, level=level))
            if torch is not None:
                t, nb = copy_torch(shape, "float32", device, **tk)
                out["reference"].append(_record("reference", "torch.Tensor.copy_", device,
                                                None if cuda else tthreads, nb, t, level=level))
            best = max(r["gbps"] for r in out["reference"] if r["device"] == device and r["level"] == level)
            say(f"limit: {level} copy ({nbytes / 1024 ** 2:.3g} MiB per array) on {device}: {best:.1f} GB/s")
        if not cuda and reference:
            out["exp"].extend(_exp_rates(device, torch, **tk))
    return out


def _exp_rates(device, torch, **tk):
    """Elementwise exp throughput on a cache-resident array (64 Ki elements), per dtype."""
    rows = []
    n = 64 * 1024
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        x = (np.linspace(-8, 8, n)).astype(np_dtype(dtype))
        y = np.empty_like(x)
        try:
            t = time_call(lambda: np.exp(x, out=y), **tk)
            rows.append({"impl": "numpy.exp", "device": device, "threads": 1, "dtype": dtype, "elements": n,
                         "median_ns": t.median_ns, "gelem_per_s": n / t.median_ns})
        except Exception as e:  # pragma: no cover - ml_dtypes without an exp loop
            rows.append({"impl": "numpy.exp", "device": device, "dtype": dtype, "error": f"{type(e).__name__}: {e}"})
        if torch is not None:
            tx = torch.linspace(-8, 8, n, dtype=getattr(torch, dtype))
            ty = torch.empty_like(tx)
            t = time_call(lambda: torch.exp(tx, out=ty), **tk)
            rows.append({"impl": "torch.exp", "device": device, "threads": torch.get_num_threads(), "dtype": dtype,
                         "elements": n, "median_ns": t.median_ns, "gelem_per_s": n / t.median_ns})
    return rows


def limit_for(limits: dict, device: str, shape, dtype: str):
    """The machine's copy bandwidth (GB/s) for this working set: best same-shape copy."""
    rows = [r for r in limits.get("copy", []) if r["device"] == device and r["shape"] == list(shape)
            and r["dtype"] == dtype]
    if not rows:
        return None, None
    best = max(rows, key=lambda r: r["gbps"])
    return best["gbps"], best["impl"]


def reference_gbps(limits: dict, device: str, level: str):
    rows = [r for r in limits.get("reference", []) if r["device"] == device and r["level"] == level]
    return max((r["gbps"] for r in rows), default=None)


def exp_rate(limits: dict, impl: str, dtype: str):
    for r in limits.get("exp", []):
        if r.get("impl") == impl and r.get("dtype") == dtype and "gelem_per_s" in r:
            return r["gelem_per_s"]
    return None


def half_conversion_rates(**tk) -> list:
    """float32 -> float16 rounding cost for normal vs subnormal results (NumPy, cache-resident).

    Softmax probabilities over a 50k vocabulary average 1/V = 2e-5, below float16's smallest
    normal (6.1e-5): most float16 softmax outputs are subnormal, and this measures what that
    costs when the framework rounds float32 results to float16.
    """
    n = 64 * 1024
    rows = []
    for label, value in (("normal", 0.25), ("subnormal", 1e-5)):
        src = np.full(n, value, np.float32)
        dst = np.empty(n, np.float16)
        t = time_call(lambda: np.copyto(dst, src, casting="unsafe"), **tk)
        rows.append({"impl": "numpy float32->float16", "results": label, "elements": n,
                     "median_ns": t.median_ns, "ns_per_element": t.median_ns / n})
    return rows

"""Flush-to-zero probing: does a framework, on a device, flush subnormal results (FTZ) or read
subnormal inputs as zero (DAZ) in a dtype? Probed, never assumed (XLA on CPU flushes bfloat16,
float32 and float64 but not float16; PyTorch on CPU flushes nothing by default).

``probe(framework, dtype, device)`` -> :class:`FTZ` (cached per process). When a platform flushes,
the gate judges against the exact value rounded the way the platform rounds: a result that is
subnormal in the dtype may come back as a zero of the same sign, and inputs may be read as zeros.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..dtypes import fmt, np_dtype

__all__ = ["FTZ", "probe", "flush", "has_subnormal"]


@dataclass(frozen=True)
class FTZ:
    framework: str
    dtype: str
    device: str
    flushes_outputs: bool   # tiny * 0.5 -> 0
    flushes_inputs: bool    # subnormal * 2 -> 0 (denormals-are-zero)
    error: str = ""

    @property
    def active(self):
        return self.flushes_outputs or self.flushes_inputs

    def describe(self):
        if self.error:
            return f"{self.framework}/{self.device}/{self.dtype}: flush-to-zero probe failed ({self.error}); assumed IEEE"
        what = []
        if self.flushes_outputs:
            what.append("flushes subnormal results to zero")
        if self.flushes_inputs:
            what.append("reads subnormal inputs as zero")
        if not what:
            return f"{self.framework}/{self.device}/{self.dtype}: keeps subnormals (IEEE)"
        return f"{self.framework}/{self.device}/{self.dtype}: {' and '.join(what)} (probed)"


def _probe_arrays(dtype):
    f = fmt(dtype)
    d = np_dtype(dtype)
    tiny = np.array([f.tiny], dtype=np.float64).astype(d)
    sub = np.array([f.tiny / 4], dtype=np.float64).astype(d)
    return tiny, sub


@lru_cache(maxsize=None)
def probe(framework: str, dtype: str, device: str = "cpu") -> FTZ:
    tiny, sub = _probe_arrays(dtype)
    try:
        if framework == "numpy":
            half = np.asarray(tiny * tiny.dtype.type(0.5))
            dbl = np.asarray(sub * sub.dtype.type(2))
        elif framework == "torch":
            from .frameworks import framework_adapter
            ad = framework_adapter("torch", device)
            half = ad.to_numpy(ad.to_framework(tiny) * 0.5)
            dbl = ad.to_numpy(ad.to_framework(sub) * 2)
        elif framework == "jax":
            import jax

            from .frameworks import framework_adapter
            ad = framework_adapter("jax", device)
            with ad.x64(dtype == "float64"):
                f1 = jax.jit(lambda a: a * 0.5)
                f2 = jax.jit(lambda a: a * 2)
                half = ad.to_numpy(f1(ad.to_framework(tiny)))
                dbl = ad.to_numpy(f2(ad.to_framework(sub)))
        else:
            return FTZ(framework, dtype, device, False, False, f"unknown framework {framework!r}")
    except Exception as e:  # pragma: no cover - a broken install
        return FTZ(framework, dtype, device, False, False, f"{type(e).__name__}: {e}")
    out_flush = float(np.asarray(half, dtype=np.float64).ravel()[0]) == 0.0
    in_flush = float(np.asarray(dbl, dtype=np.float64).ravel()[0]) == 0.0
    return FTZ(framework, dtype, device, out_flush, in_flush)


def flush(a: np.ndarray, dtype) -> np.ndarray:
    """Values (float64) that are subnormal in ``dtype`` replaced by a zero of the same sign."""
    f = fmt(dtype)
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        sub = np.isfinite(a) & (a != 0) & (np.abs(a) < f.tiny)
    return np.where(sub, np.copysign(0.0, a), a)


def has_subnormal(a: np.ndarray, dtype) -> bool:
    f = fmt(dtype)
    a = np.asarray(a).astype(np.float64)
    with np.errstate(invalid="ignore"):
        return bool(np.any(np.isfinite(a) & (a != 0) & (np.abs(a) < f.tiny)))

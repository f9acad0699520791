"""Backend adapters: one module per framework, each a thin table of the framework's own ops.

A backend module defines:

* ``NAME``; ``available() -> (bool, reason)`` (imports nothing heavy at our import time);
* ``info() -> dict`` (version, devices, notes) and ``devices() -> list[str]``;
* ``DTYPES``: the dtypes it supports (others are reported as unsupported with a reason);
* ``to_backend(np_array, device)`` / ``to_numpy(x) -> np.ndarray`` (bit-exact both ways);
* ``ops() -> dict[quantity, list[Op]]``: the native or composed op(s) a user would call
  (``Op.profiles``: the run profiles that audit it, e.g. compiled variants; ``Op.baseline``: the
  variant it is compared with on the same inputs).

The ops receive framework arrays in the audited dtype (labels int64, scalars Python floats) in
the argument order of the quantity table (docs/design.md) and return a framework array.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

__all__ = ["BACKENDS", "Op", "BackendUnavailable", "load", "status"]

BACKENDS = ("numpy", "scipy", "torch", "jax")


@dataclass(frozen=True)
class Op:
    """One way to compute a quantity in a framework."""

    variant: str        # e.g. "native", "distributions", "jit", "optax"
    fn: object          # callable(*args) -> framework array
    native: bool        # True when a single framework op computes the quantity
    call: str           # the user-facing expression, e.g. "torch.softmax(z, dim=-1)"
    note: str = ""
    profiles: tuple = ()    # run profiles that audit it (empty: every profile), e.g. ("thorough",)
    baseline: str = ""      # the variant it is compared with on the same inputs (a compiled op's eager op)
    dtypes: tuple = ()      # the dtype groups that hold it (empty: every dtype of the backend), e.g. autocast


class BackendUnavailable(RuntimeError):
    """The backend (or device, or dtype) is not available here; the message says why."""


def load(name: str):
    """Import a backend module by name; BackendUnavailable with the reason if it cannot run."""
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    mod = importlib.import_module(f"{__name__}.{name}_backend")
    ok, reason = mod.available()
    if not ok:
        raise BackendUnavailable(f"backend {name!r} unavailable: {reason}")
    return mod


def status() -> list[dict]:
    """Availability, version, devices and skip reasons of every backend."""
    rows = []
    for name in BACKENDS:
        mod = importlib.import_module(f"{__name__}.{name}_backend")
        ok, reason = mod.available()
        row = {"backend": name, "available": ok, "reason": reason}
        if ok:
            row.update(mod.info())
        rows.append(row)
    return rows

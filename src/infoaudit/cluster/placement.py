"""Where a task of ``infoaudit run`` may run, and what makes it the same task everywhere.

Tasks follow ``infoaudit.run.cli``'s convention ``fn(kind, payload)``: ``kind`` is ``group`` / ``grad`` /
``panel`` / ``environment`` / ``environment_after`` / ``errata`` / ``condition``, ``payload``
a JSON-able dict. A task is a deterministic function of its payload only if its targets do not
depend on the machine: a backend module reports the devices it finds (``torch`` adds ``cuda``
where CUDA is visible), so on a cluster a group either is pinned to ``devices=["cpu"]`` (any
worker gives the same cells) or, when the run audits GPU cells, needs a worker that declares
the ``GPU`` resource (``dask worker ... --resources GPU=1``), where it finds the same devices a
local run on that machine would.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Placement", "place", "needs_gpu", "task_key", "task_label", "GPU_BACKENDS", "GPU_RESOURCE"]

GPU_BACKENDS = ("torch", "jax")   # backends with GPU devices (torch: cuda, jax: gpu)
GPU_RESOURCE = "GPU"
_AUDIT_KINDS = ("group", "grad", "panel")


def task_key(kind, payload) -> str:
    """The stable identity of a task: ``group|QUANTITY|DTYPE``, ``grad|QUANTITY|DTYPE``,
    ``panel|NAME``, or the kind itself for the document-level tasks."""
    payload = payload or {}
    if kind in ("group", "grad"):
        return f"{kind}|{payload.get('quantity')}|{payload.get('dtype')}"
    if kind == "panel":
        return f"panel|{payload.get('name')}"
    return str(kind)


def task_label(kind, payload) -> str:
    """A short name for logs and Dask keys (``group-softmax-float32``)."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", task_key(kind, payload)).strip("-") or "task"


def _gpu_capable(payload) -> bool:
    backends = payload.get("backends") or GPU_BACKENDS  # none listed: every installed backend
    return any(b in GPU_BACKENDS for b in backends)


def needs_gpu(kind, payload, gpu=False) -> bool:
    """True when the task must run on a worker with the GPU resource: its payload names a
    non-CPU device, or the run audits GPU cells (``gpu``) and the task has a GPU backend."""
    payload = payload or {}
    if any(str(d) != "cpu" for d in payload.get("devices") or ()):
        return True
    return bool(gpu) and kind in _AUDIT_KINDS and _gpu_capable(payload)


@dataclass
class Placement:
    """How to submit one task: the payload to send, the Dask resources it needs, and whether
    a panel's rows must be cut to CPU devices on the worker (the panel task does not take a
    device list)."""

    payload: dict
    resources: dict | None = None
    cpu_only: bool = False
    label: str = "task"


def place(kind, payload, gpu=False) -> Placement:
    """The placement of a ``infoaudit.run.cli`` task (see the module docstring)."""
    payload = dict(payload or {})
    label = task_label(kind, payload)
    if needs_gpu(kind, payload, gpu):
        return Placement(payload, {GPU_RESOURCE: 1}, False, label)
    if kind in ("group", "grad") and not payload.get("devices"):
        payload["devices"] = ["cpu"]
    return Placement(payload, None, kind == "panel", label)

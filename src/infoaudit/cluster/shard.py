"""``--shard i/N``: a deterministic slice of a run's tasks, for CI matrices without a cluster.

A task belongs to shard ``i`` (1-based) of ``N`` when the SHA-256 of its key
(:func:`.placement.task_key`: ``group|softmax|float32``...) is ``i - 1`` modulo ``N``: the same
task always lands in the same shard, whatever the order, the subset of quantities or the
machine. The environment tasks run in every shard (each shard's fingerprint is kept by
``infoaudit merge``).
"""
from __future__ import annotations

import hashlib

from .placement import task_key

__all__ = ["shard", "shard_of", "parse_shard", "EVERY_SHARD"]

EVERY_SHARD = ("environment", "environment_after")


def shard_of(key: str, n: int) -> int:
    """The shard (1..n) of a task key."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return h % int(n) + 1


def parse_shard(spec: str) -> tuple:
    """``"i/N"`` -> (i, N) with 1 <= i <= N; ValueError with a one-line message otherwise."""
    try:
        a, b = str(spec).split("/")
        i, n = int(a), int(b)
    except ValueError:
        raise ValueError(f"--shard {spec!r}: expected i/N, e.g. 1/4") from None
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"--shard {spec!r}: need 1 <= i <= N")
    return i, n


def shard(tasks, i: int, n: int) -> list:
    """The tasks of shard ``i`` of ``n`` (order kept). A task is a tuple whose first two items
    are ``(kind, payload)`` (``infoaudit.run.cli``'s ``(kind, payload, weight)``)."""
    i, n = int(i), int(n)
    if n < 1 or not 1 <= i <= n:
        raise ValueError(f"shard {i}/{n}: need 1 <= i <= N")
    return [t for t in tasks if t[0] in EVERY_SHARD or shard_of(task_key(t[0], t[1]), n) == i]

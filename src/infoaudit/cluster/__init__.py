"""Scale-out of ``infoaudit run`` (issue 15): Dask distributed, shards, merging.

* :func:`executor` -- a ``concurrent.futures`` executor on a Dask cluster (``scheduler=`` an
  address, or ``cluster="local[:N]"``); :class:`ClusterError` when it cannot be had. Dask is
  imported only there (``pip install infoaudit[cluster]``).
* :func:`shard` / :func:`parse_shard` -- the deterministic slice ``i/N`` of a run's tasks.
* :func:`merge_documents` -- one results document from the shards (``infoaudit merge``).
* :func:`place` -- where a task may run (CPU-pinned, or a worker with the GPU resource).
"""
from __future__ import annotations

from .executor import ClusterError, ClusterExecutor, TaskFailed, Unrunnable, executor, parse_cluster
from .merge import MergeError, merge_documents
from .placement import Placement, needs_gpu, place, task_key, task_label
from .shard import parse_shard, shard, shard_of

__all__ = ["executor", "ClusterExecutor", "ClusterError", "TaskFailed", "Unrunnable", "parse_cluster",
           "shard", "shard_of", "parse_shard", "merge_documents", "MergeError", "place", "Placement", "needs_gpu",
           "task_key", "task_label"]

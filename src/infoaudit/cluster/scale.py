"""Scale on paper: the projected wall time of a run's tasks on P workers (issue 15 item 6).

The model. A run of ``infoaudit run`` is a bag of independent tasks (one per quantity x dtype
group, gradient group, panel, and three document-level tasks): each is a function of its
payload alone, so no task waits for another, except the final floating-point probe
(``environment_after``), which runs after all of them (the *epilogue*). Each worker runs one
task at a time. With task durations ``d_1..d_n`` measured on one machine (seconds, as a worker
measured them: imports and warm-up of the first task on a worker included), on ``P`` identical
workers:

* **work** ``W = sum(d_i)``; **critical path** ``C = max(d_i) + epilogue`` (no task is split,
  so the run can never be shorter than its longest task);
* **lower bound** ``L(P) = max(C, W / P + epilogue)``: no schedule beats it;
* **list scheduling** (what the executor does): tasks are taken in a fixed order and each goes
  to the worker that is free first (ties: the lowest-numbered worker);
  :func:`list_schedule` simulates it and returns the makespan. ``infoaudit run`` submits its
  tasks heaviest-first by its *estimated* weights (``order="submitted"``);
* **LPT** (longest processing time first, :func:`lpt`): the same with the *measured* durations
  sorted descending -- what the executor would do knowing the durations; Graham's bound:
  ``LPT <= (4/3 - 1/(3P)) x optimum``.

``overhead_s`` is added to every task (the dispatch round trip of a real scheduler: measured
from a cluster run's task stream as the mean idle gap between two tasks on one worker). The
model leaves out: the scheduler's own limits (thousands of tasks/s, far above this run's ~10 per
second), data transfer (payloads and results are kilobytes), slower or heterogeneous workers,
and workers that die (a lost task reruns: add its duration).

Everything here is a pure function of plain numbers (unit-tested on hand-made task lists).
"""
from __future__ import annotations

import heapq

__all__ = ["list_schedule", "lpt", "lower_bound", "critical_path", "project", "DEFAULT_WORKERS"]

DEFAULT_WORKERS = (1, 2, 8, 32, 128)


def _durations(durations, overhead_s=0.0):
    out = [float(d) + float(overhead_s) for d in durations]
    if any(not d >= 0 for d in out):
        raise ValueError("task durations must be >= 0 (and not NaN)")
    return out


def list_schedule(durations, workers: int, overhead_s: float = 0.0) -> dict:
    """Greedy list scheduling of ``durations`` in the given order on ``workers`` identical
    workers: each task starts on the worker that is free first (ties: the lowest index).
    Returns ``{"makespan", "loads": [busy seconds per worker], "assignment": [worker of each
    task], "starts": [start of each task]}``; an empty list has makespan 0."""
    p = int(workers)
    if p < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ds = _durations(durations, overhead_s)
    free = [(0.0, w) for w in range(p)]   # (time the worker is free, worker index): a min-heap
    loads = [0.0] * p
    assignment, starts = [], []
    for d in ds:
        t, w = heapq.heappop(free)
        assignment.append(w)
        starts.append(t)
        loads[w] += d
        heapq.heappush(free, (t + d, w))
    return {"makespan": max((s + d for s, d in zip(starts, ds)), default=0.0), "loads": loads,
            "assignment": assignment, "starts": starts}


def lpt(durations, workers: int, overhead_s: float = 0.0) -> dict:
    """:func:`list_schedule` with the tasks sorted longest first (stable for equal durations);
    ``assignment`` and ``starts`` follow the sorted order, ``order`` gives the original indices."""
    order = sorted(range(len(durations)), key=lambda i: -float(durations[i]))
    out = list_schedule([durations[i] for i in order], workers, overhead_s)
    out["order"] = order
    return out


def critical_path(durations, epilogue_s: float = 0.0, overhead_s: float = 0.0) -> float:
    """The longest task plus the epilogue (tasks are independent; see the module docstring)."""
    ds = _durations(durations, overhead_s)
    return max(ds, default=0.0) + float(epilogue_s)


def lower_bound(durations, workers: int, epilogue_s: float = 0.0, overhead_s: float = 0.0) -> float:
    """``max(critical path, work / workers + epilogue)``: no schedule on ``workers`` is shorter."""
    ds = _durations(durations, overhead_s)
    return max(critical_path(ds, epilogue_s), sum(ds) / int(workers) + float(epilogue_s))


def project(durations, workers=DEFAULT_WORKERS, epilogue_s: float = 0.0, overhead_s: float = 0.0) -> dict:
    """The projection of one run on each worker count: ``{"tasks", "work_s", "critical_path_s",
    "longest_task_s", "epilogue_s", "overhead_s", "rows": [{"workers", "submitted_s", "lpt_s",
    "lower_bound_s", "speedup", "efficiency"}]}``. ``durations`` are in submission order
    (``submitted_s`` simulates that order); speedup and efficiency are those of ``submitted_s``
    against one worker's ``work + epilogue``."""
    ds = _durations(durations, overhead_s)
    epi = float(epilogue_s)
    serial = sum(ds) + epi
    rows = []
    for p in workers:
        sub = list_schedule(ds, p)["makespan"] + epi
        rows.append({"workers": int(p), "submitted_s": sub, "lpt_s": lpt(ds, p)["makespan"] + epi,
                     "lower_bound_s": lower_bound(ds, p, epi), "speedup": serial / sub if sub > 0 else 1.0,
                     "efficiency": serial / sub / int(p) if sub > 0 else 1.0 / int(p)})
    return {"tasks": len(ds), "work_s": sum(ds), "critical_path_s": critical_path(ds, epi),
            "longest_task_s": max(ds, default=0.0), "epilogue_s": epi, "overhead_s": float(overhead_s), "rows": rows}

"""The scale section of a results document: measured task durations, and their projection.

:func:`task_durations` takes a run's tasks from its document: a cluster run records where and
when each task ran (``cluster.tasks``, the executor's task stream: the worker's wall clock around
the task); any other run has the seconds each group and panel measured inside its worker (no
start-up, no dispatch; submission order taken as longest first). :func:`scale_section` adds
what was measured (wall time, busy time, utilisation, the mean idle gap between two tasks on a
worker, cells per second) and :func:`.scale.project` on 1, 2, 8, 32 and 128 workers.

:func:`extrapolate` estimates another profile's task durations from two measured runs of
different profiles (say quick and default) with a per-task linear model in the number of search
examples, ``t = a + b x examples`` (``a, b >= 0``, fitted through the two runs; tasks of only
the second run scaled by the median ratio of the fitted ones); from one run alone, ``t = b x
examples`` (proportional: the largest estimate a line through that run allows). It knows only the example counts
of the profiles: the thorough profile's larger shapes (rows to 131,072), corpus and reference
budget make its real tasks longer, so the extrapolation is a lower estimate.
"""
from __future__ import annotations

import json
import os
import statistics

from .scale import DEFAULT_WORKERS, project

__all__ = ["task_durations", "measured", "scale_section", "extrapolate", "examples_of", "render_markdown",
           "write_scale", "EPILOGUE", "SCALE_JSON", "SCALE_MD"]

EPILOGUE = "environment_after"   # the one task that runs after all others
SCALE_JSON, SCALE_MD = "scale.json", "scale.md"


def _group_task(gkey: str) -> str:
    parts = gkey.split("|")
    return f"grad|{parts[0]}|{parts[1]}" if len(parts) == 3 and parts[2] == "grad" else f"group|{gkey}"


def task_durations(doc) -> tuple:
    """``(tasks, source)``: ``tasks`` a list of ``{"task", "seconds"}`` in submission order
    (the epilogue last), ``source`` ``"task stream"`` or ``"group seconds"``."""
    stream = ((doc.get("cluster") or {}).get("tasks")) or []
    if stream:
        rows = sorted(stream, key=lambda t: (t.get("task") == EPILOGUE, t.get("order", 0)))
        return [{"task": t["task"], "seconds": float(t["seconds"])} for t in rows], "task stream"
    rows = [{"task": _group_task(k), "seconds": float(g.get("seconds") or 0.0)}
            for k, g in (doc.get("groups") or {}).items()]
    rows += [{"task": f"panel|{k}", "seconds": float(p.get("seconds") or 0.0)}
             for k, p in (doc.get("panels") or {}).items() if isinstance(p, dict)]
    rows.sort(key=lambda t: -t["seconds"])
    return rows, "group seconds"


def measured(timings) -> dict:
    """What a task stream shows: ``wall_s`` (first start to last stop), ``busy_s`` (sum of the
    tasks), ``workers`` (that ran a task), ``utilization`` (busy / (workers x wall)),
    ``mean_overhead_s`` (per task: handed to Dask to result collected, less the run on the
    worker: dispatch and result round trip), ``mean_gap_s`` (mean idle time between two
    consecutive tasks on one worker, the epilogue's wait left out: overhead, or nothing left to
    run), ``per_worker`` ``{worker: {"tasks", "busy_s"}}``."""
    ts = [t for t in timings if "start" in t and "stop" in t]
    if not ts:
        return {"wall_s": 0.0, "busy_s": 0.0, "workers": 0, "utilization": 0.0, "mean_overhead_s": 0.0,
                "mean_gap_s": 0.0, "per_worker": {}}
    wall = max(t["stop"] for t in ts) - min(t["start"] for t in ts)
    per, gaps = {}, []
    for w in sorted({t["worker"] for t in ts}):
        mine = sorted((t for t in ts if t["worker"] == w), key=lambda t: t["start"])
        per[w] = {"tasks": len(mine), "busy_s": sum(t["stop"] - t["start"] for t in mine)}
        gaps += [max(0.0, b["start"] - a["stop"]) for a, b in zip(mine, mine[1:]) if b.get("task") != EPILOGUE]
    busy = sum(p["busy_s"] for p in per.values())
    return {"wall_s": wall, "busy_s": busy, "workers": len(per),
            "utilization": busy / (len(per) * wall) if wall > 0 else 1.0,
            "mean_overhead_s": statistics.fmean(float(t.get("overhead_s") or 0.0) for t in ts),
            "mean_gap_s": statistics.fmean(gaps) if gaps else 0.0, "per_worker": per}


def scale_section(doc, workers=DEFAULT_WORKERS, overhead_s=None) -> dict:
    """The scale section of ``doc`` (see the module docstring). ``overhead_s``: seconds added
    to every task in the projection (None: the measured mean overhead of a cluster run, else 0)."""
    tasks, source = task_durations(doc)
    epi = sum(t["seconds"] for t in tasks if t["task"] == EPILOGUE)
    body = [t["seconds"] for t in tasks if t["task"] != EPILOGUE]
    stream = (doc.get("cluster") or {}).get("tasks") or []
    meas = measured(stream) if stream else None
    if overhead_s is None:
        overhead_s = meas["mean_overhead_s"] if meas else 0.0
    cells = len(doc.get("cells") or {})
    elapsed = float(doc.get("elapsed_s") or 0.0)
    out = {"profile": (doc.get("config") or {}).get("profile"), "source": source, "cells": cells,
           "elapsed_s": elapsed, "cells_per_s": cells / elapsed if elapsed > 0 else None,
           "workers_used": (doc.get("cluster") or {}).get("workers_used"), "measured": meas,
           "projection": project(body, workers, epilogue_s=epi, overhead_s=overhead_s),
           "tasks": tasks}
    if meas and meas["wall_s"] > 0:
        out["cells_per_s_task_stream"] = cells / meas["wall_s"]
    return out


def examples_of(task: str, profile: str) -> float | None:
    """Search examples a task runs under ``profile``: value groups ``ulp_examples +
    nonfinite_examples``, gradient groups ``examples + nonfinite_examples``; None otherwise."""
    kind = task.split("|", 1)[0]
    if kind == "group":
        from ..run.profiles import PROFILE_SETTINGS

        s = PROFILE_SETTINGS[profile]
        return float(s["ulp_examples"] + s["nonfinite_examples"])
    if kind == "grad":
        from ..run.gradients import GRAD_SETTINGS

        s = GRAD_SETTINGS[profile]
        return float(s["examples"] + s["nonfinite_examples"])
    return None


def extrapolate(low, high, to_profile: str) -> dict:
    """Task durations of ``to_profile`` from two measured runs (results documents ``low`` and
    ``high`` of two different profiles): ``{"tasks": [{"task", "seconds"}], "fitted",
    "scaled", "median_ratio", "model"}`` (see the module docstring). ``low=None``: the
    proportional model ``t = b x examples`` through ``high`` alone (``a = 0``)."""
    hp = (high.get("config") or {}).get("profile")
    if low is None:
        low = {"config": {"profile": None}, "groups": {}}
        lp = None
    else:
        lp = (low.get("config") or {}).get("profile")
        if lp == hp:
            raise ValueError(f"extrapolation needs runs of two profiles (both are {lp!r})")
    lo = {t["task"]: t["seconds"] for t in task_durations(low)[0]}
    out, ratios, pending = [], [], []
    for t in task_durations(high)[0]:
        k, th = t["task"], t["seconds"]
        eh, et = examples_of(k, hp), examples_of(k, to_profile)
        el = examples_of(k, lp) if lp is not None else 0.0
        if lp is None and k not in lo:
            lo[k] = 0.0   # the proportional model: through the origin
        if k in lo and None not in (el, eh, et) and eh != el:
            b = max(0.0, (th - lo[k]) / (eh - el))
            a = max(0.0, th - b * eh)
            out.append({"task": k, "seconds": a + b * et})
            if th > 0:
                ratios.append((a + b * et) / th)
        else:
            pending.append(t)
    med = statistics.median(ratios) if ratios else 1.0
    out += [{"task": t["task"], "seconds": t["seconds"] * (med if t["task"] != EPILOGUE else 1.0)} for t in pending]
    return {"tasks": out, "fitted": len(ratios), "scaled": len(pending), "median_ratio": med,
            "model": (f"t = a + b x examples per task through the {lp} and {hp} runs (a, b >= 0); " if lp else
                      f"t = b x examples per task through the {hp} run (proportional); ")
                     + f"other tasks x the median ratio {med:.2f}; shapes, corpus and reference budget "
                       f"of {to_profile} not modelled ("
                     + ("a lower estimate)" if lp else "fixed costs scaled too, larger shapes not: a rough estimate)")}


def _s(x) -> str:
    if x is None:
        return "-"
    x = float(x)
    return f"{x / 3600:.1f} h" if x >= 5400 else f"{x / 60:.1f} min" if x >= 120 else f"{x:.1f} s"


def render_markdown(section, title="Scale") -> str:
    """The section as Markdown: what was measured, then the projection table."""
    p = section["projection"]
    lines = [f"## {title}", ""]
    lines.append(f"Profile **{section.get('profile')}**, {p['tasks']} tasks (+ epilogue {_s(p['epilogue_s'])}), "
                 f"durations from the {section['source']}"
                 + (f"; {section['cells']} cells." if section.get("cells") is not None else "."))
    if section.get("elapsed_s"):
        lines.append(f"Measured: {_s(section['elapsed_s'])} wall"
                     + (f" on {section['workers_used']} worker{'s' if section['workers_used'] != 1 else ''}"
                        if section.get("workers_used") else "")
                     + (f", {section['cells_per_s']:.2f} cells/s" if section.get("cells_per_s") else "") + ".")
    m = section.get("measured")
    if m:
        lines.append(f"Task stream: {_s(m['wall_s'])} from the first start to the last stop, {_s(m['busy_s'])} "
                     f"busy on {m['workers']} worker{'s' if m['workers'] != 1 else ''} (utilisation {100 * m['utilization']:.0f}%), dispatch + result "
                     f"overhead {m['mean_overhead_s'] * 1000:.0f} ms per task, mean idle gap between two tasks "
                     f"on a worker {m['mean_gap_s'] * 1000:.0f} ms.")
    lines += ["", f"Work {_s(p['work_s'])}; critical path {_s(p['critical_path_s'])} (the longest task "
              f"{_s(p['longest_task_s'])} + epilogue); overhead per task {p['overhead_s'] * 1000:.0f} ms.", "",
              "| workers | list schedule (submitted order) | LPT | lower bound | speedup | efficiency |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in p["rows"]:
        lines.append(f"| {r['workers']} | {_s(r['submitted_s'])} | {_s(r['lpt_s'])} | {_s(r['lower_bound_s'])} | "
                     f"{r['speedup']:.1f}x | {100 * r['efficiency']:.0f}% |")
    lines += ["", "Model: independent tasks, one at a time per worker, identical workers; list scheduling "
              "(each task to the first free worker), LPT (longest first), lower bound max(critical path, "
              "work / workers + epilogue). See infoaudit.cluster.scale.", ""]
    if section.get("model"):
        lines.insert(3, f"Durations extrapolated: {section['model']}.")
    return "\n".join(lines)


def write_scale(section, folder) -> list:
    """Write ``scale.json`` and ``scale.md`` into ``folder``; the paths."""
    os.makedirs(folder, exist_ok=True)
    pj, pm = os.path.join(folder, SCALE_JSON), os.path.join(folder, SCALE_MD)
    with open(pj, "w") as fh:
        json.dump(section, fh, indent=1, allow_nan=False)
        fh.write("\n")
    with open(pm, "w") as fh:
        fh.write(render_markdown(section))
    return [pj, pm]

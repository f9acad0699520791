"""Scale on paper (issue 15 item 6): the projection on hand-made task lists, the measured task
stream, the extrapolation to another profile, per-worker fingerprints.

Every expected makespan below is worked by hand in the comment next to it.
"""
from __future__ import annotations

import copy

import pytest

from infoaudit.cluster.scale import critical_path, list_schedule, lower_bound, lpt, project
from infoaudit.cluster.scale_doc import (
    examples_of,
    extrapolate,
    measured,
    render_markdown,
    scale_section,
    task_durations,
    write_scale,
)
from infoaudit.cluster.workers import compare_workers


def test_list_schedule_graham_example():
    # [3, 3, 2, 2, 2] on 2 workers, in this order: w0 3 (0-3), w1 3 (0-3); at t=3 both are free,
    # the tie goes to w0: 2 (3-5), w1 2 (3-5), w0 2 (5-7) -> 7. The optimum is 6 (3+3 | 2+2+2):
    # Graham's LPT bound (4/3 - 1/(3*2)) * 6 = 7 is reached.
    s = list_schedule([3, 3, 2, 2, 2], 2)
    assert s["makespan"] == 7.0
    assert s["assignment"] == [0, 1, 0, 1, 0] and s["starts"] == [0, 0, 3, 3, 5] and s["loads"] == [7, 5]
    assert lpt([2, 3, 2, 3, 2], 2)["makespan"] == 7.0      # sorted first: the same schedule
    assert lower_bound([3, 3, 2, 2, 2], 2) == 6.0           # max(3, 12 / 2)
    assert (4 / 3 - 1 / 6) * 6 == pytest.approx(7.0)


def test_submission_order_matters_and_lpt_fixes_it():
    # [1, 1, 1, 1, 4] on 2: w0 0-1, w1 0-1, w0 1-2, w1 1-2, then the 4 on w0 2-6 -> 6.
    # LPT [4, 1, 1, 1, 1]: w0 0-4, w1 0-1, 1-2, 2-3, 3-4 -> 4 = the lower bound max(4, 8 / 2).
    assert list_schedule([1, 1, 1, 1, 4], 2)["makespan"] == 6.0
    s = lpt([1, 1, 1, 1, 4], 2)
    assert s["makespan"] == 4.0 and s["order"][0] == 4
    assert lower_bound([1, 1, 1, 1, 4], 2) == 4.0


def test_one_worker_many_workers_overhead_empty():
    assert list_schedule([5, 2, 1], 1)["makespan"] == 8.0      # one worker: the sum
    assert list_schedule([5, 2, 1], 8)["makespan"] == 5.0      # more workers than tasks: the longest
    assert list_schedule([1, 1], 1, overhead_s=0.5)["makespan"] == 3.0   # (1 + 0.5) * 2
    assert list_schedule([], 4)["makespan"] == 0.0
    assert critical_path([5, 2, 1], epilogue_s=1.0) == 6.0
    with pytest.raises(ValueError):
        list_schedule([1, -1], 2)
    with pytest.raises(ValueError):
        list_schedule([1], 0)
    with pytest.raises(ValueError):
        list_schedule([float("nan")], 1)


def test_project_with_an_epilogue():
    # [4, 2, 2] + epilogue 1. 1 worker: 8 + 1 = 9. 2 workers: w0 4 (0-4), w1 2 (0-2), w1 2 (2-4)
    # -> 4 + 1 = 5 = max(critical path 4 + 1, 8 / 2 + 1); speedup 9 / 5 = 1.8, efficiency 0.9.
    # 8 workers: the critical path 5.
    p = project([4, 2, 2], workers=(1, 2, 8), epilogue_s=1.0)
    assert p["work_s"] == 8.0 and p["critical_path_s"] == 5.0 and p["longest_task_s"] == 4.0 and p["tasks"] == 3
    r1, r2, r8 = p["rows"]
    assert (r1["submitted_s"], r1["lpt_s"], r1["lower_bound_s"], r1["speedup"]) == (9.0, 9.0, 9.0, 1.0)
    assert (r2["submitted_s"], r2["lpt_s"], r2["lower_bound_s"]) == (5.0, 5.0, 5.0)
    assert r2["speedup"] == pytest.approx(1.8) and r2["efficiency"] == pytest.approx(0.9)
    assert r8["submitted_s"] == r8["lower_bound_s"] == 5.0 and r8["efficiency"] == pytest.approx(9 / 5 / 8)


def _t(task, worker, start, stop, overhead=0.0, order=0):
    return {"task": task, "worker": worker, "start": start, "stop": stop, "seconds": stop - start,
            "overhead_s": overhead, "order": order}


STREAM = [_t("group|a|float32", "A", 0, 2, 0.1, 0), _t("group|b|float32", "B", 0, 4, 0.3, 1),
          _t("group|c|float32", "A", 3, 5, 0.2, 2), _t("environment_after", "B", 6, 7, 0.2, 3)]


def test_measured_task_stream():
    # wall 0..7 = 7; busy 2 + 4 + 2 + 1 = 9 on 2 workers: 9 / 14; gaps: A 3 - 2 = 1, B's wait
    # for the epilogue left out -> mean 1; overhead (0.1 + 0.3 + 0.2 + 0.2) / 4 = 0.2
    m = measured(STREAM)
    assert m["wall_s"] == 7 and m["busy_s"] == 9 and m["workers"] == 2
    assert m["utilization"] == pytest.approx(9 / 14) and m["mean_gap_s"] == 1.0
    assert m["mean_overhead_s"] == pytest.approx(0.2)
    assert m["per_worker"] == {"A": {"tasks": 2, "busy_s": 4}, "B": {"tasks": 2, "busy_s": 5}}


def test_scale_section_of_a_cluster_run(tmp_path):
    doc = {"config": {"profile": "quick"}, "cells": {str(i): {} for i in range(14)}, "elapsed_s": 7.0,
           "cluster": {"tasks": list(reversed(STREAM)), "workers_used": 2}}
    tasks, source = task_durations(doc)
    assert source == "task stream" and [t["task"] for t in tasks] == ["group|a|float32", "group|b|float32",
                                                                      "group|c|float32", "environment_after"]
    s = scale_section(doc, workers=(1, 2))
    p = s["projection"]
    # tasks [2, 4, 2] + overhead 0.2 each, epilogue 1: one worker 8.6 + 1; two workers in
    # submission order: w0 2.2 (0-2.2), w1 4.2 (0-4.2), w0 2.2 (2.2-4.4) -> 4.4 + 1
    assert p["epilogue_s"] == 1.0 and p["overhead_s"] == pytest.approx(0.2)
    assert p["rows"][0]["submitted_s"] == pytest.approx(9.6) and p["rows"][1]["submitted_s"] == pytest.approx(5.4)
    assert s["cells_per_s"] == 2.0 and s["cells_per_s_task_stream"] == 2.0
    files = write_scale(s, tmp_path)
    md = (tmp_path / "scale.md").read_text()
    assert len(files) == 2 and "| 2 | 5.4 s | 5.4 s |" in md and "critical path 5.2 s" in md


def test_task_durations_of_a_local_run():
    doc = {"groups": {"a|float32": {"seconds": 3.0}, "a|float32|grad": {"seconds": 1.0}},
           "panels": {"softmax_precision": {"seconds": 2.0}}}
    tasks, source = task_durations(doc)
    assert source == "group seconds"
    assert tasks == [{"task": "group|a|float32", "seconds": 3.0}, {"task": "panel|softmax_precision", "seconds": 2.0},
                     {"task": "grad|a|float32", "seconds": 1.0}]


def test_extrapolate_linear_in_examples():
    # the profiles' example counts (ulp + nonfinite; gradients: examples + nonfinite)
    assert [examples_of("group|x|float32", p) for p in ("quick", "default", "thorough")] == [10, 105, 900]
    assert [examples_of("grad|x|float32", p) for p in ("quick", "default", "thorough")] == [6, 9, 180]
    # group: t = 2 + 0.1 e -> quick 3, default 12.5, thorough 92; grad: t = 1 + 0.5 e -> 4, 5.5, 91;
    # the panel (default only, 10 s) x the median of 92 / 12.5 and 91 / 5.5
    low = {"config": {"profile": "quick"}, "groups": {"x|float32": {"seconds": 3.0}, "x|float32|grad": {"seconds": 4.0}}}
    high = {"config": {"profile": "default"}, "groups": {"x|float32": {"seconds": 12.5}, "x|float32|grad": {"seconds": 5.5}},
            "panels": {"softmax_precision": {"seconds": 10.0}}}
    e = extrapolate(low, high, "thorough")
    got = {t["task"]: t["seconds"] for t in e["tasks"]}
    med = (92 / 12.5 + 91 / 5.5) / 2
    assert got["group|x|float32"] == pytest.approx(92.0) and got["grad|x|float32"] == pytest.approx(91.0)
    assert got["panel|softmax_precision"] == pytest.approx(10 * med) and e["fitted"] == 2 and e["scaled"] == 1
    # a task faster in the larger profile: b = 0, a = the larger run's time
    high2 = copy.deepcopy(high)
    high2["groups"]["x|float32"]["seconds"] = 2.0
    assert {t["task"]: t["seconds"] for t in extrapolate(low, high2, "thorough")["tasks"]}["group|x|float32"] == 2.0
    with pytest.raises(ValueError):
        extrapolate(low, low, "thorough")
    # from the default run alone, proportional: 12.5 x 900 / 105, 5.5 x 180 / 9, the panel x their median
    got = {t["task"]: t["seconds"] for t in extrapolate(None, high, "thorough")["tasks"]}
    r1, r2 = 900 / 105, 180 / 9
    assert got["group|x|float32"] == pytest.approx(12.5 * r1) and got["grad|x|float32"] == pytest.approx(5.5 * r2)
    assert got["panel|softmax_precision"] == pytest.approx(10 * (r1 + r2) / 2)


def test_render_markdown_states_the_model():
    s = {"profile": "default", "source": "group seconds", "cells": 10, "elapsed_s": 0, "projection": project([1, 1])}
    md = render_markdown(s)
    assert "lower bound max(critical path, work / workers + epilogue)" in md and "| 128 | 1.0 s |" in md


def _fp(worker, **change):
    fp = {"taken": f"t-{worker}", "worker": worker, "packages": {"numpy": "2.3.0", "torch": "2.13.0"},
          "cpu": {"flags": ["avx2", "fma"]}, "fp": {"taken": f"u-{worker}", "ftz": {"torch/cpu/float32": "ieee"}}}
    for path, v in change.items():
        d = fp
        *head, last = path.split("__")
        for k in head:
            d = d[k]
        d[last] = v
    return fp


def test_compare_workers_flags_the_odd_ones():
    same = {w: _fp(w) for w in ("tcp://a", "tcp://b")}
    r = compare_workers(same)
    assert r == {"workers": 2, "reference": "tcp://a", "heterogeneous": False, "differs": {}, "errors": {}}
    fps = dict(same, **{"tcp://c": _fp("tcp://c", packages__numpy="2.4.0"),
                        "tcp://d": _fp("tcp://d", fp__ftz={"torch/cpu/float32": "ftz+daz"}),
                        "tcp://e": {"error": "KilledWorker: gone"}})
    r = compare_workers(fps)
    assert r["reference"] == "tcp://a" and r["heterogeneous"] and r["errors"] == {"tcp://e": "KilledWorker: gone"}
    assert r["differs"] == {
        "tcp://c": [{"path": "packages.numpy", "old": "2.3.0", "new": "2.4.0", "kind": "version"}],
        "tcp://d": [{"path": "fp.ftz.torch/cpu/float32", "old": "ieee", "new": "ftz+daz", "kind": "fp"}]}
    # the majority is the reference, whichever address sorts first
    r = compare_workers({"tcp://a": _fp("tcp://a", cpu__flags=["avx512f"]), "tcp://b": _fp("tcp://b"),
                         "tcp://c": _fp("tcp://c")})
    assert r["reference"] == "tcp://b" and list(r["differs"]) == ["tcp://a"]
    assert r["differs"]["tcp://a"][0]["kind"] == "cpu"


def test_scale_command(tmp_path, capsys):
    """``infoaudit scale``: the run's own projection, the extrapolation, usage errors exit 2."""
    from infoaudit.cli import main
    from infoaudit.results import schema as R

    def doc(profile, group_s, panel_s):
        d = R.new_document({"profile": profile}, {})
        d["groups"] = {"x|float32": {"done": True, "seconds": group_s}}
        d["panels"] = {"softmax_precision": {"seconds": panel_s}}
        d["status"] = "complete"
        return d

    R.write_atomic(tmp_path / "quick.json", doc("quick", 3.0, 1.0))
    R.write_atomic(tmp_path / "default.json", doc("default", 12.5, 10.0))
    assert main(["scale", str(tmp_path / "default.json"), "--workers", "1,2", "-o", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    # [12.5, 10] on 2 workers: 12.5; on one: 22.5
    assert "| 1 | 22.5 s |" in out and "| 2 | 12.5 s |" in out
    assert (tmp_path / "out" / "scale.json").exists() and (tmp_path / "out" / "scale.md").read_text().strip() == out.strip()
    # thorough: the group 2 + 0.1 x 900 = 92, the panel 10 x 92 / 12.5 = 73.6 -> one worker 165.6
    assert main(["scale", str(tmp_path / "default.json"), "--workers", "1", "--extrapolate", "thorough",
                 "--from", str(tmp_path / "quick.json")]) == 0
    out = capsys.readouterr().out
    assert "Profile **thorough**" in out and "| 1 | 2.8 min |" in out and "lower estimate" in out
    # proportional from the default run alone: 12.5 x 900 / 105 = 107.14..., the panel x the same ratio
    assert main(["scale", str(tmp_path / "default.json"), "--workers", "1", "--extrapolate", "thorough"]) == 0
    out = capsys.readouterr().out
    assert f"| 1 | {(12.5 + 10) * 900 / 105 / 60:.1f} min |" in out and "(proportional)" in out
    for argv in (["--workers", "0"], ["--from", str(tmp_path / "quick.json")]):
        assert main(["scale", str(tmp_path / "default.json"), *argv]) == 2
    assert main(["scale", str(tmp_path / "missing.json")]) == 2


def test_a_field_recorded_only_once_loaded_is_not_a_difference():
    """threads.reference_engine is recorded once a worker has computed an exact value: absent on
    one worker is not a difference (seen in CI: a worker fingerprinted before its first task), but
    numba on one worker and numpy on another is."""
    from infoaudit.cluster.workers import compare_workers

    a = {"threads": {"reference_engine": "numba", "omp": 1}, "version": {"numpy": "2.4.6"}}
    b = {"threads": {"omp": 1}, "version": {"numpy": "2.4.6"}}
    c = {"threads": {"reference_engine": "numpy", "omp": 1}, "version": {"numpy": "2.4.6"}}
    assert not compare_workers({"w1": a, "w2": b})["heterogeneous"]
    got = compare_workers({"w1": a, "w2": c, "w3": a})
    assert got["heterogeneous"] and [d["path"] for d in got["differs"]["w2"]] == ["threads.reference_engine"]

"""``--shard i/N`` and ``infoaudit merge`` (issue 15, item 5): shards of a run merge into the run.

A tiny run (numpy backend, three quantities, two dtypes, quick profile, no gradients, no panels)
is done unsharded and as two shards, each group computed afresh by the task function
(``runner.run_group``) and assembled with ``results.new_document`` / ``add_group`` as
``infoaudit run`` does. The merged document has exactly the unsharded run's cells and groups
(timings aside); merge refuses overlapping cells that differ, other configurations or schemas,
and missing shards (exit 2, one line), and renders the report.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import random

import pytest

from infoaudit.cluster import merge_cmd
from infoaudit.cluster.merge import MergeError, merge_documents
from infoaudit.cluster.shard import parse_shard, shard, shard_of
from infoaudit.results import schema as R
from infoaudit.run.tasks import run_group
from support_hypothesis import without_local_constants

QUANTITIES = ["sigmoid", "softplus", "entropy"]
DTYPES = ["float32", "float64"]
CONFIG = {"profile": "quick", "seed": 0, "backends": ["numpy"], "dtypes": DTYPES, "quantities": QUANTITIES,
          "settings": {"ulp_examples": 6}, "grad": False, "grad_settings": {}}


def _tasks():
    """The task list ``infoaudit run`` builds for CONFIG (environment first, then groups)."""
    tasks = [("environment", {}, 0.5), ("errata", {}, 0.5), ("condition", {}, 0.5)]
    for q in QUANTITIES:
        for d in DTYPES:
            tasks.append(("group", {"quantity": q, "dtype": d, "profile": "quick", "seed": 0, "backends": ["numpy"],
                                    "extra_lists": []}, 1.0))
    return tasks


def _run(tasks, shard_spec=None):
    """A results document made of the groups of ``tasks`` (computed here, as the pool would)."""
    config = dict(CONFIG)
    if shard_spec:
        config["shard"] = list(shard_spec)
    env = {"platform": "test", "packages": {"numpy": "x"}, "fingerprint": {"shard": list(shard_spec or ())}}
    doc = R.new_document(config, env)
    for kind, payload, _ in tasks:
        if kind == "group":
            with without_local_constants():   # see support_hypothesis
                R.add_group(doc, run_group(payload))
        elif kind == "errata":
            doc["seeds_errata"] = {"available": False, "rows": [], "note": "test"}
        elif kind == "condition":
            doc["condition_examples"] = {"error": "not computed by this test"}
    doc["status"] = "complete"
    return doc


@pytest.fixture(scope="module")
def runs():
    tasks = _tasks()
    full = _run(tasks)
    shards = [_run(shard(tasks, i, 2), (i, 2)) for i in (1, 2)]
    return full, shards


def _no_timing(groups):
    return {k: {f: v for f, v in g.items() if f != "seconds"} for k, g in groups.items()}


def test_shards_partition_the_tasks_by_key_not_by_order():
    tasks = _tasks()
    parts = [shard(tasks, i, 3) for i in (1, 2, 3)]
    groups = [[t for t in p if t[0] == "group"] for p in parts]
    assert sum(len(g) for g in groups) == len(QUANTITIES) * len(DTYPES)
    assert all(("environment", {}, 0.5) in p for p in parts)   # every shard records its environment
    keyed = [{(t[1]["quantity"], t[1]["dtype"]) for t in g} for g in groups]
    assert not (keyed[0] & keyed[1]) and not (keyed[1] & keyed[2])
    shuffled = list(tasks)
    random.Random(4).shuffle(shuffled)
    for i in (1, 2, 3):
        assert sorted(map(repr, shard(shuffled, i, 3))) == sorted(map(repr, parts[i - 1]))
    fewer = [t for t in tasks if t[0] != "group" or t[1]["quantity"] != "entropy"]   # another subset
    assert [t for t in shard(fewer, 2, 3) if t[0] == "group"] == [t for t in groups[1] if t[1]["quantity"] != "entropy"]
    assert shard_of("group|softmax|float32", 4) == 2 and shard_of("group|sigmoid|float64", 4) == 3   # pinned
    assert shard(tasks, 1, 1) == tasks


@pytest.mark.parametrize("spec", ["0/2", "3/2", "1/0", "a/b", "1", "1/2/3"])
def test_parse_shard_rejects(spec):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(spec)
    assert parse_shard("2/5") == (2, 5)


def test_merged_shards_equal_the_unsharded_run(runs):
    full, shards = runs
    assert all(s["cells"] for s in shards) and not (set(shards[0]["cells"]) & set(shards[1]["cells"]))
    merged, warnings = merge_documents(shards, ["a.json", "b.json"])
    assert warnings == []
    assert merged["cells"] == full["cells"]   # cell for cell, byte for byte once serialised
    assert json.dumps(merged["cells"], sort_keys=True) == json.dumps(full["cells"], sort_keys=True)
    assert _no_timing(merged["groups"]) == _no_timing(full["groups"])
    assert merged["config"] == full["config"] and "shard" not in merged["config"]
    assert merged["seeds_errata"] == full["seeds_errata"] and merged["condition_examples"] == full["condition_examples"]
    assert merged["status"] == "complete" and merged["schema"] == R.SCHEMA
    fps = [row["fingerprint"] for row in merged["environment"]["shards"]]
    assert fps == [{"shard": [1, 2]}, {"shard": [2, 2]}]
    again, _ = merge_documents([shards[1], shards[0], shards[1]])   # order and a repeated shard do not matter
    assert again["cells"] == full["cells"]


def _main(tmp_path, docs, *extra):
    paths = []
    for i, d in enumerate(docs):
        p = tmp_path / f"shard{i}.json"
        if isinstance(d, str):
            p.write_text(d)
        else:
            R.write_atomic(p, d)
        paths.append(str(p))
    p = argparse.ArgumentParser()
    merge_cmd.add_arguments(p)
    return merge_cmd.main(p.parse_args(paths + ["-o", str(tmp_path / "out"), "-q", *extra]))


def test_merge_command_writes_results_and_report(tmp_path, runs):
    full, shards = runs
    assert _main(tmp_path, shards) == 0
    doc = R.load(tmp_path / "out" / "results.json")
    assert doc["cells"] == full["cells"]
    assert os.path.exists(tmp_path / "out" / "report.md") and os.path.exists(tmp_path / "out" / "report.html")


def _one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith("infoaudit merge: ") and "\n" not in err
    return err


@pytest.mark.parametrize("case", ["cell", "seed", "quantities", "schema", "version", "missing", "split", "json"])
def test_merge_rejects(tmp_path, capsys, runs, case):
    _, shards = runs
    a, b = copy.deepcopy(shards[0]), copy.deepcopy(shards[1])
    docs = [a, b]
    if case == "cell":   # the same cell in two shards, with other content
        key = next(iter(a["cells"]))
        b["cells"][key] = dict(a["cells"][key], max_ulp=a["cells"][key]["max_ulp"] + 1.0)
        want = "differs between"
    elif case == "seed":
        b["config"]["seed"] = 1
        want = "config.seed"
    elif case == "quantities":
        b["config"]["quantities"] = QUANTITIES[:2]
        want = "config.quantities"
    elif case == "schema":
        b["schema"] = "something.else"
        want = "not an infoaudit results"
    elif case == "version":
        b["version"] = 0
        want = "version"
    elif case == "missing":
        docs = [a]
        want = "missing shard(s) 2/2"
    elif case == "split":
        b["config"]["shard"] = [2, 3]
        want = "different splits"
    else:
        docs = [a, "{not json"]
        want = "shard1.json"
    assert _main(tmp_path, docs, "--no-report") == 2
    assert want in _one_line_error(capsys)
    assert not os.path.exists(tmp_path / "out" / "results.json")


def test_merge_documents_raises_merge_error():
    with pytest.raises(MergeError, match="nothing"):
        merge_documents([])


def test_generation_ignores_imported_modules():
    """The same group before and after importing every infoaudit module, in a fresh process."""
    import subprocess
    import sys

    code = """if True:
        import importlib, json, pkgutil
        import infoaudit
        from infoaudit.run.tasks import run_group
        g = dict(quantity="entropy_bits", dtype="float64", profile="quick", seed=0, backends=["numpy"])
        first = run_group(g)["cells"]
        for m in pkgutil.walk_packages(infoaudit.__path__, "infoaudit."):
            try:
                importlib.import_module(m.name)
            except Exception:
                pass
        print(json.dumps(first == run_group(g)["cells"]))
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "true"

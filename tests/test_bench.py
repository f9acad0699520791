"""Smoke tests of ``infoaudit bench`` (no speed is asserted anywhere: timings are not testable).

The CLI runs ``--quick`` on one tiny shape; the arithmetic (bytes, GB/s, fraction, bound), the
timer's protocol (with a fake clock), the chapter's memory calculation and the HTML escaping
are checked by hand.
"""
from __future__ import annotations

import json
import math

import pytest

from infoaudit.bench import SCHEMA, SCHEMA_VERSION, render, runner, seed
from infoaudit.bench import cells as C
from infoaudit.bench.timing import time_call

# --- byte counts and derived figures, by hand ------------------------------------------------

def test_min_bytes_by_hand():
    # softmax: read and write B*V elements
    assert C.min_bytes("softmax", 64, 1000, "float32")["total"] == 2 * 64 * 1000 * 4 == 512_000
    assert C.min_bytes("log_softmax", 64, 1000, "float16")["total"] == 2 * 64 * 1000 * 2
    # logsumexp: read B*V, write B
    assert C.min_bytes("logsumexp", 2, 10, "float64") == {"read": 160, "written": 16, "total": 176}
    # cross_entropy: B*V logits + B int64 labels read, B losses written
    assert C.min_bytes("cross_entropy", 64, 50_257, "bfloat16")["total"] == 64 * 50_257 * 2 + 64 * 8 + 64 * 2
    # two full inputs read, one value per row written
    assert C.min_bytes("kl_divergence", 3, 5, "float32")["total"] == 2 * 15 * 4 + 3 * 4
    assert C.min_bytes("distillation_loss", 3, 5, "float32")["total"] == 2 * 15 * 4 + 3 * 4
    # elementwise with two inputs: read 2, write 1
    assert C.min_bytes("binary_cross_entropy_with_logits", 3, 5, "float64")["total"] == 3 * 15 * 8


def test_gbps_fraction_and_bound_by_hand():
    limits = {"copy": [{"device": "cpu", "shape": [64, 1000], "dtype": "float32", "gbps": 1.024,
                        "impl": "numpy.copyto"}],
              "reference": [{"device": "cpu", "level": "DRAM", "gbps": 2.048}]}
    row = {"status": "ok", "device": "cpu", "shape": [64, 1000], "dtype": "float32", "elements": 64_000,
           "bytes": C.min_bytes("softmax", 64, 1000, "float32"),
           "timing": {"median_ns": 1e6, "p25_ns": 0.8e6, "p75_ns": 1.25e6}}
    runner._derive(row, limits)
    assert row["gbps"] == pytest.approx(0.512)                 # 512,000 B / 1 ms
    assert row["elements_per_s"] == pytest.approx(64e6)        # 64,000 elements / 1 ms
    assert row["gbps_spread"] == pytest.approx([0.4096, 0.64])
    assert row["fraction_of_limit"] == pytest.approx(0.5)      # 0.512 / 1.024
    assert row["fraction_of_dram"] == pytest.approx(0.25)
    assert row["bound"]["kind"] == "compute"
    assert row["bound"]["time_over_copy_time"] == pytest.approx(2.0)
    row2 = dict(row, timing={"median_ns": 0.6e6, "p25_ns": 0.6e6, "p75_ns": 0.6e6})
    runner._derive(row2, limits)
    assert row2["bound"]["kind"] == "memory"                   # 1.2x the copy time


def test_parse_shape():
    assert C.parse_shape("64x50257") == (64, 50_257)
    assert C.parse_shape("1024X50_257") == (1024, 50_257)
    assert C.parse_shape("1024,50257") == (1024, 50_257)
    for bad in ("64", "0x10", "axb", "1x2x3", "-1x5"):
        with pytest.raises(ValueError):
            C.parse_shape(bad)


# --- the timer's protocol, with a fake clock ----------------------------------------------------

class FakeClock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def test_time_call_protocol_fake_clock():
    clk = FakeClock()
    calls = []

    def fn():
        calls.append(1)
        clk.t += 1_000_000 if len(calls) > 1 else 50_000_000   # first call "compiles": 50 ms, then 1 ms
    t = time_call(fn, budget_s=0.02, max_call_s=1.0, min_samples=3, max_samples=50, min_sample_s=2e-3, clock=clk)
    assert t.inner == 2                          # 2 ms per sample at 1 ms per call
    assert t.samples == 10                       # 20 ms budget / 2 ms per sample
    assert len(calls) == 2 + t.samples * t.inner
    assert t.median_ns == 1_000_000
    assert t.first_call_ns == 50_000_000 and t.compile_ns == 49_000_000
    assert t.iqr_rel == 0


def test_time_call_long_call_single_sample():
    clk = FakeClock()
    calls = []

    def fn():
        calls.append(1)
        clk.t += 3_000_000_000                   # 3 s per call, cap 1 s
    t = time_call(fn, budget_s=1.0, max_call_s=1.0, clock=clk)
    assert t.samples == 1 and len(calls) == 2    # first call sizes the loop, one timed call
    assert any("one timed call" in n for n in t.notes)


def test_time_call_syncs_each_call():
    synced = []
    t = time_call(lambda: 7, sync=synced.append, budget_s=0.001, min_samples=3, max_samples=3, min_sample_s=0)
    assert synced and set(synced) == {7}
    assert len(synced) == 2 + t.samples * t.inner


# --- the chapter's arithmetic ---------------------------------------------------------------

def test_seed_memory_reproduces_chapter():
    m = seed.memory()
    assert (m["batch"], m["seq"], m["vocab"]) == (16, 1024, 50_257)
    assert m["fp32_bytes"] == 16 * 1024 * 50_257 * 4 == 3_293_642_752
    assert m["fp32_gib"] == pytest.approx(3.0674, abs=1e-4)    # chapter: "3.06 GB" (truncated)
    assert m["fp16_gib"] == pytest.approx(1.5337, abs=1e-4)    # chapter: 1.53
    assert m["saving_pct"] == 50.0
    assert m["budget_mb"] == 10_000
    assert m["max_batch_fp32"] == 48                           # chapter: 48
    assert m["max_batch_fp16"] == 97
    assert m["agrees_with_chapter"] is True


def test_seed_memory_configurable():
    m = seed.memory(batch=32, seq=512, vocab=100_000)
    assert m["fp32_bytes"] == 6_553_600_000                    # the chapter's sampled-softmax example
    assert round(m["fp32_gib"], 1) == 6.1
    assert "chapter" not in m
    with pytest.raises(ValueError):
        seed.memory(batch=0)


def test_seed_roofline_chapter():
    r = seed.roofline_chapter()
    assert r["memory_us"] == pytest.approx(0.267, abs=5e-4)
    assert r["compute_us"] == pytest.approx(0.000192, abs=5e-7)
    assert r["factor"] == pytest.approx(1_390, rel=0.01)
    h = seed.roofline_here(30_000, copy_gbps=10.0, exp_gelem_per_s=1.0)
    assert h["memory_us"] == pytest.approx(24.0)               # 240,000 B / 10 GB/s
    assert h["exp_us"] == pytest.approx(30.0)                  # 30,000 exps / 1e9 per s
    assert h["bound"] == "compute"
    assert h["fp16_speedup_bound"] == pytest.approx(54 / 42)


# --- FP16 vs FP32 explanation on synthetic cells ------------------------------------------------

def _cell(dtype, ms, frac, backend="numpy"):
    return {"backend": backend, "device": "cpu", "shape": [64, 1000], "op": "softmax", "dtype": dtype,
            "status": "ok", "elements": 64_000, "timing": {"median_ns": ms * 1e6}, "fraction_of_limit": frac}


def test_fp16_vs_fp32_says_why():
    res = {"cells": [_cell("float16", 4.0, 0.01), _cell("float32", 0.2, 0.1)],
           "limits": {"half_conversion": [{"results": "normal", "ns_per_element": 2.0},
                                          {"results": "subnormal", "ns_per_element": 100.0}]}}
    (row,) = fp = runner.fp16_vs_fp32(res)
    assert row["speedup_fp16"] == pytest.approx(0.05)
    assert row["agrees_with_2x"] is False
    assert "at most 1.05x" in row["why"] and "subnormal" in row["why"]
    res2 = {"cells": [_cell("float16", 1.0, 0.9, "torch"), _cell("float32", 2.0, 0.9, "torch")], "limits": {}}
    assert runner.fp16_vs_fp32(res2)[0]["agrees_with_2x"] is True
    assert fp


def test_html_escapes_everything():
    blks = [("h1", "<b>x</b>"), ("p", "a <script>alert(1)</script>"),
            ("table", (["<th>"], [["<td onclick=x>"]])), ("list", ["<li>"]), ("img", ("a'.png", "<alt>"))]
    out = render.to_html(blks)
    assert "<script>" not in out and "<b>x" not in out and "<td onclick" not in out
    assert "&lt;script&gt;" in out
    md = render.to_markdown([("table", (["a|b"], [["c|d"]]))])
    assert "a\\|b" in md


# --- the CLI, as a user runs it (one tiny shape) ------------------------------------------------

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from infoaudit.cli import main

    out = tmp_path_factory.mktemp("bench")
    rc = main(["bench", "--quick", "--no-default-shapes", "--shape", "4x64", "--budget", "0.002",
               "--dtype", "float16", "--dtype", "float32", "--output", str(out), "--quiet"])
    return rc, out


def test_cli_quick_tiny_shape_writes_report(quick_run):
    rc, out = quick_run
    assert rc == 0
    for f in ("throughput.json", "throughput.md", "throughput.html", "roofline.png", "throughput_4x64.png"):
        assert (out / f).is_file(), f
    md = (out / "throughput.md").read_text()
    assert "FP16 vs FP32 softmax" in md and "The chapter's memory arithmetic" in md


def test_json_schema(quick_run):
    _, out = quick_run
    r = json.loads((out / "throughput.json").read_text())
    assert r["schema"] == SCHEMA and r["schema_version"] == SCHEMA_VERSION
    for k in ("created", "mode", "config", "environment", "limits", "cells", "fp16_vs_fp32", "seed", "summary",
              "wall_s"):
        assert k in r, k
    env = r["environment"]
    for k in ("cpu_model", "logical_cpus", "versions", "threads", "devices"):
        assert k in env
    assert r["limits"]["copy"] and r["limits"]["reference"]
    assert {x["level"] for x in r["limits"]["reference"]} >= {"L1", "DRAM"}
    assert r["config"]["shapes"] == [[4, 64]]
    ok = [c for c in r["cells"] if c["status"] == "ok"]
    assert any(c["backend"] == "numpy" for c in ok)
    for c in r["cells"]:
        assert c["status"] in ("ok", "skipped", "unsupported")
        assert c["op"] in C.OPS and c["dtype"] in C.DTYPES
        if c["status"] != "ok":
            assert c["reason"], c          # never skipped silently
            continue
        t = c["timing"]
        assert t["p25_ns"] <= t["median_ns"] <= t["p75_ns"]
        assert c["gbps"] == pytest.approx(c["bytes"]["total"] / t["median_ns"])
        assert c["limit_gbps"] > 0 and c["fraction_of_limit"] == pytest.approx(c["gbps"] / c["limit_gbps"])
        assert c["bound"]["kind"] in ("memory", "compute")
        assert math.isfinite(c["elements_per_s"])
    # no GPU here: CUDA cells, where asked for by default, are skipped with the reason
    cuda = [c for c in r["cells"] if str(c["device"]).startswith("cuda")]
    assert all(c["status"] == "skipped" and "cuda" in c["reason"].lower() for c in cuda)
    assert r["seed"]["memory"]["max_batch_fp32"] == 48


def test_cli_usage_errors(tmp_path, capsys):
    from infoaudit.cli import main

    assert main(["bench", "--shape", "64", "--output", str(tmp_path)]) == 2
    assert "BATCHxVOCAB" in capsys.readouterr().err
    assert main(["bench", "--no-default-shapes", "--output", str(tmp_path)]) == 2

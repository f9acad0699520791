"""``infoaudit bench --reference``: the table's structure on tiny sizes (not the speeds)."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("flint")  # the arb column needs python-flint (dev extra)


def test_bench_reference_prints_one_row_per_quantity_size_and_input(tmp_path, capsys):
    from infoaudit import cli

    out = tmp_path / "ref.json"
    rc = cli.main(["bench", "--reference", "--ref-sizes", "8", "--ref-quantity", "sigmoid",
                   "--ref-quantity", "entropy", "--ref-rounds", "1", "--ref-sample", "8", "--ref-json", str(out), "-q"])
    assert rc == 0
    text = capsys.readouterr().out
    lines = text.strip().splitlines()
    assert lines[0].startswith("exact reference, ns per input element")
    header = lines[3].split()
    assert header[:8] == ["quantity", "n", "inputs", "fast", "fast", "cpu", "escalated", "arb"]
    rows = [ln.split() for ln in lines[4:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [("sigmoid", "8", "moderate"), ("sigmoid", "8", "extreme"),
                                                  ("entropy", "8", "moderate"), ("entropy", "8", "extreme")]
    for r in rows:
        float(r[3].replace(",", ""))  # fast ns/element (wall, cpu), arb and mpmath measured at n <= 1000
        float(r[4].replace(",", ""))
        float(r[6].replace(",", ""))
        float(r[7].replace(",", ""))
    data = json.loads(out.read_text())
    assert data["schema"] == "infoaudit.bench.reference" and len(data["rows"]) == 4
    assert all(r["fast_ns"] > 0 and r["fast_cpu_ns"] >= 0 and r["mpmath_ns"] > 0 for r in data["rows"])


def test_bench_reference_rejects_unknown_quantity(capsys):
    from infoaudit import cli

    assert cli.main(["bench", "--reference", "--ref-quantity", "nope", "-q"]) == 2
    assert "unknown quantity" in capsys.readouterr().err

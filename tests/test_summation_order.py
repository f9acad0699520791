"""The summation-order probe (FPRev's +M / -M pairs) on sums whose order is known by construction
or from NumPy's source (``pairwise_sum`` in numpy/_core/src/umath/loops_utils.h.src: below 8
terms a plain loop; up to 128 terms 8 accumulators r[k] += a[i + k], combined
((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)); above, a split at n / 2 rounded down to a
multiple of 8, recursively)."""
from __future__ import annotations

import numpy as np
import pytest

from infoaudit import summation_order as S


def sequential(x):
    acc = np.zeros(x.shape[0], np.float32)
    for k in range(x.shape[1]):
        acc = (acc + x[:, k].astype(np.float32)).astype(np.float32)
    return acc


def pairwise(x):
    x = x.astype(np.float32)
    if x.shape[1] == 1:
        return x[:, 0]
    h = x.shape[1] // 2
    return (pairwise(x[:, :h]) + pairwise(x[:, h:])).astype(np.float32)


def wide(x):
    """float32 terms summed in float64: nothing is swamped, every pair looks like size 2."""
    return x.astype(np.float32).astype(np.float64).sum(axis=-1)


def test_hand_written_orders():
    assert S.probe(sequential, 12)["order"] == "sequential (left to right)"
    assert S.probe(pairwise, 16)["order"] == "pairwise (balanced tree)"
    assert S.probe(wide, 12)["order"].startswith("not a plain tree")


def test_lca_sizes_of_a_sequential_sum():
    sizes = S.lca_sizes(sequential, 5)
    # in a left-to-right sum, i < j meet when j is added: j + 1 leaves below
    assert [[int(sizes[i, j]) for j in range(5)] for i in range(2)] == [[0, 2, 3, 4, 5], [2, 0, 3, 4, 5]]


@pytest.mark.parametrize("n, want", [
    (6, "sequential (left to right)"),
    (8, "pairwise (balanced tree)"),
    (64, "8 lanes (stride 8) each summed sequentially, combined pairwise"),
    (200, "split into [0, 96) and [96, 200): 8 lanes (stride 8) each summed sequentially, combined pairwise; "
          "8 lanes (stride 8) each summed sequentially, combined pairwise"),
])
def test_numpy_pairwise_sum(n, want):
    assert S.probe(S.TARGETS["numpy"][1]("float32"), n)["order"] == want


def test_probe_all_reports_every_target_or_why_not():
    rows = S.probe_all(8, "float32", ["numpy", "torch"])
    assert [r["target"] for r in rows] == ["numpy", "torch"]
    assert rows[0]["order"] == "pairwise (balanced tree)"
    assert "order" in rows[1] or "skipped" in rows[1]


def test_order_cli():
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "infoaudit.cli", "order", "--n", "6", "--targets", "numpy", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["order"] == "sequential (left to right)"
    bad = subprocess.run([sys.executable, "-m", "infoaudit.cli", "order", "--targets", "nope"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2

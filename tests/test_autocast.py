"""Mixed precision (issue 14 item 3): the ops under torch.autocast, which dtype they returned and
computed in, and the hand-written upcast patterns as cells.

Expected dtypes come from PyTorch's documented autocast op lists (docs "Automatic Mixed
Precision", CPU: ``mm``/``matmul`` autocast to the lower dtype; ``cross_entropy_loss``,
``nll_loss``, ``kl_div``, ``binary_cross_entropy_with_logits`` to float32; softmax is on neither CPU
list, so it runs in its input's dtype)."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import backend_or_skip
from infoaudit import quantities as Q


@pytest.mark.torch
@pytest.mark.parametrize("dt", ["bfloat16", "float16"])
def test_probe_reports_returned_and_computed_dtype(dt):
    backend_or_skip("torch")
    import torch
    import torch.nn.functional as F

    from infoaudit.backends.autocast import probe_dtypes

    q = Q.get("cross_entropy")
    ce = probe_dtypes(lambda z, y: F.cross_entropy(z, y, reduction="none"), q, dt, dt)
    assert ce == {"returned": "float32", "computed": "float32"}          # the float32 list, on low inputs
    mm = probe_dtypes(lambda z: z.mT @ z, Q.get("softmax"), "float32", dt)   # 5 x 5 products
    assert mm == {"returned": dt, "computed": dt}                         # matmul: the lower-precision list
    sm = probe_dtypes(lambda z: torch.softmax(z, -1), Q.get("softmax"), "float32", dt)
    assert sm == {"returned": "float32", "computed": "float32"}           # float32 inputs stay float32
    kl = probe_dtypes(lambda p, q_: F.kl_div(q_.log(), p, reduction="none").sum(-1), Q.get("kl_divergence"), dt, dt)
    assert kl["returned"] == "float32" and kl["computed"].startswith("mixed")   # log in dt, kl_div in float32


@pytest.mark.torch
def test_autocast_variants_live_in_their_dtype_groups():
    backend_or_skip("torch")
    from infoaudit.run.targets import profile_variants, targets_for

    def names(q, d, profile="default"):
        ts, _ = targets_for(q, d, ["torch"])
        return {t.variant: t for t in profile_variants(ts, [], profile)}

    f32 = names("cross_entropy", "float32")
    assert {"autocast_bfloat16", "autocast_float16"} <= set(f32) and "upcast" not in f32
    assert "returned float32, computed in float32" in f32["autocast_bfloat16"].note
    bf = names("softmax", "bfloat16")
    assert {"autocast", "upcast", "dtype_float32"} <= set(bf) and "autocast_bfloat16" not in bf
    assert all(bf[v].baseline == "native" for v in ("autocast", "upcast", "dtype_float32"))
    assert not any("autocast" in v for v in names("softmax", "float64"))
    assert "autocast_bfloat16" not in names("entropy", "float32")          # not a loss: thorough only
    assert "autocast_bfloat16" in names("entropy", "float32", "thorough")


@pytest.mark.torch
def test_autocast_cells_are_judged_against_the_float32_inputs_exact_value():
    """softmax under autocast(bfloat16) on float32 logits: returned float32, so judged at float32
    like eager, with the same bits (ratio 1); softmax(z, dtype=float32) on bfloat16 logits:
    a float32 result rounded once to bfloat16 (noted), correctly rounded here."""
    backend_or_skip("torch")
    from infoaudit.dtypes import cast
    from infoaudit.run.cells import cell_dict
    from infoaudit.run.group import Group
    from infoaudit.run.targets import targets_for

    rng = np.random.default_rng(4)
    z = (rng.standard_normal((3, 17)) * 5).astype(np.float32)
    ts = [t for t in targets_for("softmax", "float32", ["torch"])[0] if t.variant in ("native", "autocast_bfloat16")]
    g = Group("softmax", "float32", ts)
    g.evaluate([z], source="hand")
    d = cell_dict(g, g.cells[1])
    assert d["status"] == "ok" and d["verdict"] == "pass" and d["relative"]["ratio"] == 1.0
    assert not any(n.startswith("returned") for n in d["notes"])

    zb = cast(z.astype(np.float64), "bfloat16")
    ts = [t for t in targets_for("softmax", "bfloat16", ["torch"])[0] if t.variant in ("native", "dtype_float32")]
    g = Group("softmax", "bfloat16", ts)
    g.evaluate([zb], source="hand")
    d = cell_dict(g, g.cells[1])
    assert "returned float32; rounded once to bfloat16" in d["notes"]
    assert d["grade"] in ("correctly_rounded", "faithful") and d["relative"]["elements"] == 51


@pytest.mark.torch
def test_report_says_which_losses_are_safe_to_leave_to_autocast(tmp_path):
    """The report's autocast table and compiled table from real cells: autocast(bfloat16) of
    cross-entropy on float32 logits (float32 throughout: safe) and a stand-in 'compiled' softmax
    that overflows (exp without the max subtracted): graded unstable/NaN, ratio inf, reproducer."""
    backend_or_skip("torch")
    import torch

    from infoaudit.report import model as M
    from infoaudit.report import render
    from infoaudit.results import schema as R
    from infoaudit.run.cells import cell_dict
    from infoaudit.run.group import Group
    from infoaudit.run.targets import Target, targets_for

    rng = np.random.default_rng(5)
    z = (rng.standard_normal((3, 9)) * 4).astype(np.float32)
    y = rng.integers(0, 9, 3)
    ts = [t for t in targets_for("cross_entropy", "float32", ["torch"])[0] if t.variant in ("native", "autocast_bfloat16")]
    g = Group("cross_entropy", "float32", ts)
    g.evaluate([z, y], source="hand")
    cells = {c.target.key("cross_entropy", "float32"): cell_dict(g, c) for c in g.cells}

    native = [t for t in targets_for("softmax", "float32", ["torch"])[0] if t.variant == "native"]
    fake = Target("torch", "naive_compiled", "cpu", "torch.exp(z) / torch.exp(z).sum(-1, keepdim=True)", False, "",
                  native[0].mod, lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True), framework="torch",
                  baseline="native")
    g = Group("softmax", "float32", native + [fake])
    g.evaluate([np.array([[1.0, 2.0, 3.0], [100.0, 0.0, -1.0]], np.float32)], source="hand")
    cells.update({c.target.key("softmax", "float32"): cell_dict(g, c) for c in g.cells})

    doc = R.new_document({"profile": "default", "seed": 0}, R.environment(None))
    doc["cells"] = cells
    from infoaudit.summation_order import panel

    doc["panels"]["summation_order"] = panel({"backends": ["numpy"], "n": 16})
    rows = M.autocast_rows(doc)
    assert [(r["quantity"], r["variant"], r["safe"]) for r in rows] == [("cross_entropy", "autocast_bfloat16", "yes")]
    assert "returned float32, computed in float32" in rows[0]["how"]
    comp = M.compiled_rows(doc)
    assert len(comp) == 1 and comp[0]["ratio"] == "inf" and comp[0]["reproducer"]
    assert comp[0]["verdict"] == "fail"
    render(doc, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "## Which losses are safe to leave to autocast" in md and "## Compiled against eager" in md
    assert "naive_compiled is inf x less accurate than eager native" in md
    assert "numpy: pairwise (balanced tree)" in md    # NumPy's 8 accumulators, 16 terms: a balanced tree
    assert 'id="autocast"' in (tmp_path / "report.html").read_text()
    assert "compiled = torch.exp(z) / torch.exp(z).sum(-1, keepdim=True)" in md   # the reproducer runs both

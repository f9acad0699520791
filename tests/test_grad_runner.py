"""Gradient cells of the audit runner and the report: search, findings, reproducers, CLI.

Expected values come from the DESIGN convention (the gradient of log_softmax on a fully masked
row is 0, never NaN), the exact derivative (reference.derivatives) and planted bugs.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import backend_or_skip
from infoaudit import run as runner
from infoaudit.report import model as M
from infoaudit.report import render
from infoaudit.report.documents import snippet_text
from infoaudit.reproducers.values import verify
from infoaudit.results import schema as R
from infoaudit.run import grad_group as GGR
from infoaudit.run import gradients as G


@pytest.fixture(scope="module")
def gdoc():
    """log_softmax: forward (numpy) and gradients (torch, JAX) in float32 and bfloat16, quick profile."""
    backend_or_skip("torch")
    d = R.new_document({"profile": "quick", "seed": 0, "backends": ["numpy", "torch", "jax"],
                        "dtypes": ["bfloat16", "float32"], "quantities": ["log_softmax"]}, R.environment(None))
    for dt in ("bfloat16", "float32"):
        R.add_group(d, runner.run_group({"quantity": "log_softmax", "dtype": dt, "profile": "quick", "seed": 0,
                                         "backends": ["numpy"]}))
        R.add_group(d, G.run_grad_group({"quantity": "log_softmax", "dtype": dt, "profile": "quick", "seed": 0,
                                         "backends": ["numpy", "torch", "jax"]}))
    from infoaudit.judging.condition import worked_examples

    d["condition_examples"] = R.jsonable(worked_examples())
    d["status"] = "complete"
    json.dumps(d, allow_nan=False)
    return d


def _grad_cells(doc):
    return {k: c for k, c in doc["cells"].items() if c.get("kind") == "grad"}


def test_grad_cells_keys_kinds_and_skips(gdoc):
    cells = _grad_cells(gdoc)
    assert cells and all(k.endswith("|grad") for k in cells)
    assert {c["backend"] for c in cells.values()} <= {"torch", "jax"}
    assert "torch" in {c["backend"] for c in cells.values()}
    assert "log_softmax|float32|grad" in gdoc["groups"]
    skipped = gdoc["groups"]["log_softmax|float32|grad"]["skipped"]
    assert ["numpy", "gradients: no autodiff"] in skipped
    for c in cells.values():
        assert c["status"] == "ok" and c["examples"] >= 4
        assert set(c["worst"]) <= set(G.GRAD_METRICS)
        assert c["args"].keys() == {"z"}
        for k in ("max_ulp", "max_cae", "p99_cae", "flushed", "boundary", "nonfinite", "how", "grade", "grades",
                  "verdict", "profile", "why"):
            assert k in c
        assert c["profile"] == "default" and c["verdict"] in ("pass", "fail")
        for w in c["worst"].values():
            assert w["grade"] in c["grades"] or w["grade"] == "correctly_rounded" or w.get("shrunk"), w
    # the NaN gradient of a fully masked row fails the default profile, and the cell says why
    c = gdoc["cells"]["log_softmax|torch|native|float32|cpu|grad"]
    assert c["verdict"] == "fail" and c["grades"].get("nonfinite") and "nonfinite" in c["why"]


def test_masked_row_nan_gradient_found_with_a_verified_reproducer(gdoc):
    """DESIGN: the gradient of log_softmax on an all -inf row is 0. torch.log_softmax's backward
    gives NaN there (0 * inf); the audit finds it, shrinks it to one row, and the snippet reproduces it."""
    c = gdoc["cells"]["log_softmax|torch|native|float32|cpu|grad"]
    w = c["worst"]["nonfinite"]
    case = w["shrunk"]
    assert case is not None and case["arg"] == "z"
    z = R.decode_array(case["args"][0])
    assert z.shape[0] == 1 and np.isneginf(z).all()
    assert math.isnan(float(R.unnum(case["computed"]))) and float(R.unnum(case["expected"])) == 0.0
    assert case["reproduced"] and case["snippet_kind"] == "native"
    code = snippet_text(c, case)
    assert "requires_grad=True" in code and "torch.autograd.grad" in code
    assert verify(code, case, backend_or_skip("torch"), "float32")


def test_dominant_class_gradient_cancellation_is_a_cae_finding():
    """log_softmax gradient at z = [88.72, 0] (float32) with cotangent [-0.75, 0]: the exact component
    -0.75 (1 - p_0) = -0.75 e^-88.72 / (1 + e^-88.72) is a float32 subnormal; ct - p sum(ct) with p_0
    rounded to 1 returns 0. kappa is modest (~88.7), so the error is the algorithm's: cae >> 1."""
    torch_mod = backend_or_skip("torch")
    t, _ = runner.targets_for("log_softmax", "float32", [torch_mod])
    group = GGR.GradGroup("log_softmax", "float32", t, "quick", 0)
    z = np.array([[np.float32(88.72284698486328), 0.0]], dtype=np.float32)
    ct = np.array([[-0.75, 0.0]])
    inputs, cot, ex, co = group.exact([z], ct)
    exact = -0.75 * math.exp(-88.72284698486328) / (1 + math.exp(-88.72284698486328))
    assert float(ex["z"].hi[0, 0]) == pytest.approx(exact, rel=1e-12)
    r = group.judge_cell(group.cells[0], inputs, cot, ex, co)
    gc = r["z"]
    assert gc.result[0, 0] == 0.0 and bool(gc.flushed[0, 0])
    assert float(co["z"].kappa[0, 0]) == pytest.approx(88.72, rel=1e-3)
    assert float(GGR._cae_defined(gc)[0, 0]) > 1e4


def test_cae_undefined_at_exact_zero_gradient():
    """d/dT of the distillation loss at zs = zt is exactly 0 (a minimum over the student logits):
    the computed value is rounding noise; cae is not defined there (NaN), so it is no cae finding."""
    backend_or_skip("torch")
    t, _ = runner.targets_for("distillation_loss", "float32", ["torch"])
    group = GGR.GradGroup("distillation_loss", "float32", t[:1], "quick", 0)
    z = np.linspace(-2, 1.5, 16).astype(np.float32).reshape(1, 16)
    inputs, cot, ex, co = group.exact([z, z.copy(), 1.0])
    assert float(ex["T"].hi) == 0.0
    r = group.judge_cell(group.cells[0], inputs, cot, ex, co)
    assert np.isnan(GGR._cae_defined(r["T"]))


class _PlantedFlush:
    """torch logsumexp whose backward flushes softmax components below 1e-3 to 0 (planted bug)."""

    def __new__(cls):
        import torch

        class F(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z):
                out = torch.logsumexp(z, dim=-1)
                ctx.save_for_backward(z, out)
                return out

            @staticmethod
            def backward(ctx, g):
                z, out = ctx.saved_tensors
                p = torch.exp(z - out[..., None])
                p = torch.where(p < 1e-3, torch.zeros_like(p), p)
                return g[..., None] * p

        return F.apply


def test_planted_gradient_flush_is_found_and_shrunk():
    tmod = backend_or_skip("torch")
    fn = _PlantedFlush()
    target = runner.Target("torch", "planted", "cpu", "planted", False, "planted flush", tmod, fn)
    group, cells = G.grad_search("logsumexp", [target], "float32", "quick", seed=5)
    (key, c), = cells.items()
    assert key == "logsumexp|torch|planted|float32|cpu|grad"
    assert c["flushed"] > 0 and c["verdict"] == "fail", (c["grades"], c["why"])
    w = c["worst"]["flushed"]
    case = w["shrunk"] or w
    got, exact = float(R.unnum(case["computed"])), float(R.unnum(case["expected"]))
    assert got == 0.0 and 0 < exact < 1e-3
    if w["shrunk"]:
        assert case["shapes"][0][0] == 1  # one row


def test_report_has_gradient_columns_section_findings_and_tables(gdoc, tmp_path):
    render(gdoc, tmp_path, plots=False)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "torch grad f32" in md and "torch grad bf16" in md
    assert "## Gradients and the condition-aware error" in md and "graded by the same judge" in md
    assert "gradient d/dz" in md and "Gradients (VJP through autodiff" in md
    assert "Gradients and the condition-aware error" in html and "torch grad f32" in html
    cols = M.columns(gdoc)
    assert ("torch", "float32", "grad") in cols and ("numpy", "float32", "value") in cols
    assert ("numpy", "float32", "grad") not in cols
    mat = M.matrix(gdoc)
    e = mat[("log_softmax", "torch", "float32", "grad")]
    assert e["nonfinite"] > 0 and e["max_cae"] is not None
    gm = M.grade_matrix(gdoc)[("log_softmax", "torch", "float32", "grad")]
    assert gm["grade"] == "nonfinite" and gm["verdict"] == "fail"


def test_gradient_findings_ranked_and_every_reproducer_runs(gdoc):
    fl = M.findings(gdoc)
    grad = [f for f in fl if f["metric"].startswith("grad_")]
    assert grad and any(f["metric"] == "grad_nonfinite" for f in grad)
    assert [f["severity"] for f in fl] == sorted(f["severity"] for f in fl)
    n = 0
    for f in grad:
        case = f["case"]
        code = snippet_text(f["cell"], case)
        if code:
            n += 1
            assert case["reproduced"], code
            from infoaudit.backends import load

            assert verify(code, case, load(f["cell"]["backend"]), f["cell"]["dtype"]), code
    assert n >= 1


def test_run_cli_writes_grad_cells_and_no_grad_skips_them(tmp_path):
    backend_or_skip("torch")
    from infoaudit.cli import main

    out = tmp_path / "r"
    assert main(["run", "--profile", "quick", "--quantities", "sigmoid", "--dtypes", "float32", "--backends",
                 "numpy,torch", "--no-panels", "--no-report", "-q", "-j", "1", "-o", str(out)]) == 0
    doc = R.load(out / "results.json")
    assert "sigmoid|float32|grad" in doc["groups"]
    assert "sigmoid|torch|native|float32|cpu|grad" in doc["cells"]
    assert doc["config"]["grad"] is True and doc["condition_examples"]
    out2 = tmp_path / "r2"
    assert main(["run", "--profile", "quick", "--quantities", "sigmoid", "--dtypes", "float32", "--backends",
                 "numpy", "--no-panels", "--no-report", "--no-grad", "-q", "-j", "1", "-o", str(out2)]) == 0
    doc2 = R.load(out2 / "results.json")
    assert not any(c.get("kind") == "grad" for c in doc2["cells"].values())


def test_gradient_reference_budget_skips_and_counts():
    """The exact VJP runs under the profile's fixed precision budget (no wall-clock timeout): the
    gradient of gaussian_kl at mu = 1e150, logvar = 5e-324 needs 4096 bits, so under a 2048-bit
    budget the input is skipped and counted (reference_errors and reference_over_budget), and
    under 4096 bits it is judged. No targets are needed: the reference alone decides."""
    args = (np.array([[1e150]]), np.array([[5e-324]]))
    g = GGR.GradGroup("gaussian_kl", "float64", [], "quick", 0)
    g.reference_max_bits = 2048
    assert g.evaluate(args) == {}
    assert (g.examples, g.reference_errors, g.reference_over_budget) == (0, 1, 1)
    g.reference_max_bits = 4096
    g.evaluate(args)
    assert (g.examples, g.reference_errors, g.reference_over_budget) == (1, 1, 1)
    assert GGR.GRAD_SETTINGS["quick"]["reference_max_bits"] == 2048

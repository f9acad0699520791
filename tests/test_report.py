"""The report: Markdown, escaped HTML and PNG plots from a results document; reproducers run."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from infoaudit import run as runner
from infoaudit.report import model as M
from infoaudit.report import render
from infoaudit.reproducers.values import snippet, verify
from infoaudit.results import schema as R

BCE = "binary_cross_entropy_with_logits"
TORCH_BCE = f"{BCE}|torch|native|float16|cpu"


@pytest.fixture(scope="module")
def doc():
    """A small real results document: softmax x numpy/scipy x two dtypes, BCE with logits in
    float16 on numpy, scipy and torch, plus the panel."""
    from conftest import backend_or_skip

    backend_or_skip("torch")
    d = R.new_document({"profile": "quick", "seed": 0, "backends": ["numpy", "scipy", "torch"],
                        "dtypes": ["float16", "float32"], "quantities": ["softmax", BCE]},
                       R.environment(None))
    for dt in ("float16", "float32"):
        R.add_group(d, runner.run_group({"quantity": "softmax", "dtype": dt, "profile": "quick", "seed": 0,
                                         "backends": ["numpy", "scipy"]}))
    R.add_group(d, runner.run_group({"quantity": BCE, "dtype": "float16", "profile": "quick", "seed": 0,
                                     "backends": ["numpy", "scipy", "torch"]}))
    d["panels"]["softmax_precision"] = runner.softmax_precision(
        {"profile": "quick", "sizes": [8, 128], "rows": 1, "backends": ["numpy", "scipy"]})
    d["seeds_errata"] = {"available": False, "rows": [], "note": "not available: test"}
    d["status"] = "complete"
    json.dumps(d, allow_nan=False)
    return d


def test_render_writes_markdown_html_and_pngs(doc, tmp_path):
    files = render(doc, tmp_path)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "## Executive summary" in md and "## Grade matrix" in md and "## Findings" in md
    assert md.index("## Executive summary") < md.index("## Grade matrix") < md.index("## Findings") \
        < md.index("## Appendix A: worst max-ULP error")
    assert "FP16 vs BF16 vs FP32 softmax" in md
    assert "## Environment" in md and "not available: test" in md
    assert 'id="grade-matrix"' in html and 'id="grade-legend"' in html and "Executive summary" in html
    pngs = [f for f in files if f.endswith(".png")]
    assert any("summary_matrix" in p for p in pngs) and any("softmax_precision" in p for p in pngs)
    assert any("error_softmax" in p for p in pngs)
    for p in pngs:
        with open(p, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_html_escapes_all_data(doc, tmp_path):
    evil = copy.deepcopy(doc)
    cell = next(iter(evil["cells"].values()))
    cell["call"] = "<script>alert(1)</script>"
    cell["variant"] = "<b>x</b>"
    evil["environment"]["cpu"] = "<img src=x onerror=alert(2)>"
    render(evil, tmp_path, plots=False)
    html = (tmp_path / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html and "<b>x</b>" not in html


def test_findings_ranked_nonfinite_first(doc):
    fl = M.findings(doc)
    assert fl, "the quick audit of torch's float16 BCE with logits finds something"
    sev = [f["severity"] for f in fl]
    assert sev == sorted(sev)
    for f in fl:
        assert f["title"] and f["cell"]["quantity"] in ("softmax", BCE)
        assert f["grade"] and f["case"].get("grade")


def test_torch_bce_with_logits_float16_is_unstable_and_among_the_ten_worst(doc, tmp_path):
    """Issue 17's acceptance: torch's float16 BCE with logits (1 + exp(-z) folded into the loss
    loses the whole value near z = -7, t = 0 at condition number ~7: relative error 1) counts
    `unstable` elements, fails, and its finding is among the report's ten worst, with its grade,
    the condition number and the best other backend on the same input."""
    cell = doc["cells"][TORCH_BCE]
    assert cell["grades"].get("unstable", 0) > 0 and cell["verdict"] == "fail" and cell["profile"] == "default"
    assert "unstable" in cell["why"] and "conditioning allows" in cell["why"]
    w = cell["worst"]["well_conditioned"]
    case = w["shrunk"] or w
    assert case["grade"] == "unstable" and case["kappa"] <= M.WELL_CONDITIONED and case["rel"] > 0.5
    assert {o["backend"] for o in case["others"]} == {"numpy", "scipy"}
    top = M.ten_worst(M.findings(doc))
    mine = [t for t in top if t["cell"]["backend"] == "torch" and t["cell"]["quantity"] == BCE]
    assert mine and mine[0]["grade"] == "unstable" and mine[0]["best"] is not None
    assert M.f(mine[0]["best"]["ulp"]) <= 1.0   # scipy's log_expit form / numpy get it right
    render(doc, tmp_path, plots=False)
    md = (tmp_path / "report.md").read_text()
    top_md = md[md.index("worst findings at well-conditioned inputs"):md.index("## Grade matrix")]
    assert "torch native" in top_md and "unstable" in top_md and "ULP, correctly_rounded" in top_md
    html = (tmp_path / "report.html").read_text()
    assert 'id="ten-worst-table"' in html and "g-unstable" in html


def test_every_reproducer_in_the_report_reproduces(doc):
    from infoaudit.report.documents import snippet_text

    n = 0
    for f in M.findings(doc):
        case = f["case"]
        code = snippet_text(f["cell"], case)
        if code:
            n += 1
            assert case["reproduced"], code
            assert verify(code, case, dtype=f["cell"]["dtype"])
    assert n >= 1


def test_snippet_native_forms():
    cell = {"quantity": "softmax", "backend": "scipy", "variant": "native", "dtype": "bfloat16", "device": "cpu",
            "call": "scipy.special.softmax(z, axis=-1)"}
    z = np.array([[1.0, float("-inf"), 3.0]])
    case = {"args": R.encode_args([R.decode_array({"dtype": "bfloat16", "shape": [1, 3],
                                                   "values": [[1.0, "-inf", 3.0]]})]),
            "index": [0, 2], "computed": 0.0, "expected": 0.87890625}
    code = snippet(cell, case)
    assert "import ml_dtypes" in code and "scipy.special.softmax(z, axis=-1)" in code
    assert 'float("-inf")' in code
    compile(code, "<s>", "exec")
    jcell = dict(cell, backend="jax", variant="jit", call="jax.jit(jax.nn.softmax(z, axis=-1))")
    jcode = snippet(jcell, case)
    assert "jax.jit(lambda z: jax.nn.softmax(z, axis=-1))(z)" in jcode
    table = snippet(cell, case, native=False)
    assert 'load(\'scipy\')' in table or 'load("scipy")' in table
    assert np.isfinite(z[0, 0])


def test_report_cli(doc, tmp_path):
    from infoaudit.cli import main

    p = tmp_path / "results.json"
    R.write_atomic(p, doc)
    assert main(["report", str(p), "--no-plots"]) == 0
    assert (tmp_path / "report.md").exists() and (tmp_path / "report.html").exists()
    assert main(["report", str(tmp_path / "missing.json")]) == 2


def test_verifying_a_float64_jax_reproducer_leaves_x64_as_it_was():
    """A float64 JAX snippet switches jax_enable_x64 on (as a user's script must); verifying it
    inside an audit worker must not leave it on for the groups that follow."""
    jax = pytest.importorskip("jax")

    before = bool(jax.config.jax_enable_x64)
    code = ('import jax\nimport jax.numpy as jnp\njax.config.update("jax_enable_x64", True)\n'
            'out = jax.nn.softmax(jnp.array([[0.0, 1.0]], dtype=jnp.float64))\n')
    want = 1.0 / (1.0 + math.exp(1.0))
    assert verify(code, {"index": [0, 0], "computed": want}, None, "float64")
    assert bool(jax.config.jax_enable_x64) == before

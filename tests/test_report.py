"""The report: Markdown, escaped HTML and PNG plots from a results document; reproducers run."""
from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from infoaudit.audits import results as R
from infoaudit.audits import runner
from infoaudit.report import model as M
from infoaudit.report import render
from infoaudit.report.reproducer import snippet, verify


@pytest.fixture(scope="module")
def doc():
    """A small real results document: two quantities x numpy/scipy x two dtypes, plus the panel."""
    d = R.new_document({"profile": "quick", "seed": 0, "backends": ["numpy", "scipy"],
                        "dtypes": ["float16", "float32"], "quantities": ["softmax", "kl_divergence"]},
                       R.environment(None))
    for q in ("softmax", "kl_divergence"):
        for dt in ("float16", "float32"):
            d_ = runner.run_group({"quantity": q, "dtype": dt, "profile": "quick", "seed": 0,
                                   "backends": ["numpy", "scipy"]})
            R.add_group(d, d_)
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
    assert "## Summary matrix" in md and "## Findings" in md and "FP16 vs BF16 vs FP32 softmax" in md
    assert "## Environment" in md and "not available: test" in md
    assert "<table>" in html and "Summary matrix" in html
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
    assert fl, "the quick audit of numpy/scipy softmax and KL finds something"
    sev = [f["severity"] for f in fl]
    assert sev == sorted(sev)
    for f in fl:
        assert f["title"] and f["cell"]["quantity"] in ("softmax", "kl_divergence")


def test_every_reproducer_in_the_report_reproduces(doc):
    from infoaudit.report.documents import _snippet_text

    n = 0
    for f in M.findings(doc):
        case = f["case"]
        code = _snippet_text(f["cell"], case)
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

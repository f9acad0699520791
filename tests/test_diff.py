"""``infoaudit diff`` and the shared comparison (infoaudit.results.compare_cells): the "worse"
rule, matching cells, findings, re-running reproducers, exit codes 0/1/2, and the committed
ml_dtypes 0.6.0 vs 0.7.0 drift."""
from __future__ import annotations

import copy
import json
import os

import pytest

from infoaudit import cli
from infoaudit.results import compare_cells as CC
from infoaudit.results import diff as D

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIFT = os.path.join(ROOT, "reports", "drift", "ml_dtypes-0.6.0-vs-0.7.0")


def cell(quantity="softmax", backend="numpy", variant="composed", dtype="float32", device="cpu", **kw):
    c = {"quantity": quantity, "backend": backend, "variant": variant, "dtype": dtype, "device": device,
         "call": "", "status": "ok", "reason": "", "examples": 10, "elements": 40, "max_ulp": 0.5, "p99_ulp": 0.5,
         "max_rel": 1e-7, "max_scaled": 0.5, "nonfinite": {}, "nonfinite_total": 0, "invariants": {},
         "invariant_total": 0, "notes": [], "worst": {}}
    c.update(kw)
    return c


def doc(*cells, packages=None, seed=0, fingerprint=True):
    env = {"python": "3.11.7", "platform": "Linux", "cpu": "Test CPU", "packages": packages or {"numpy": "2.4.6"}}
    if fingerprint:
        env["fingerprint"] = {"fingerprint": 1, "python": "3.11.7", "packages": dict(packages or {"numpy": "2.4.6"}),
                              "fp": {"ftz": {"numpy/cpu": {"float32": "ieee"}}}}
    return {"schema": "infoaudit.results", "version": 1, "status": "complete",
            "config": {"profile": "quick", "seed": seed, "backends": ["numpy"]}, "environment": env,
            "cells": {CC.cell_key(c): c for c in cells}}


# ------------------------------------------------------------------ the rule


def test_same_cell_is_same():
    c = cell()
    assert CC.compare_cell(c, copy.deepcopy(c))["change"] == "same"


@pytest.mark.parametrize("old_ulp, new_ulp, change", [
    (0.5, 1.5, "changed"),     # tripled but within the 4 ULP floor
    (0.5, 4.0, "changed"),     # at the floor: not beyond it
    (0.5, 4.5, "worse"),       # > 2x and > 4 ULP
    (10.0, 20.0, "changed"),   # exactly 2x: not more than the factor
    (10.0, 20.5, "worse"),
    (20.5, 10.0, "better"),
    (3.0, 1.0, "changed"),     # shrank 3x but the old was within the floor
    (1.0, "nan", "worse"),     # a NaN max ULP counts as infinite
    ("inf", "inf", "same"),
])
def test_ulp_factor_and_floor(old_ulp, new_ulp, change):
    assert CC.compare_cell(cell(max_ulp=old_ulp), cell(max_ulp=new_ulp))["change"] == change


def test_the_factor_and_floor_are_options():
    rule = CC.Rule(ulp_factor=1.1, ulp_floor=1.0)
    assert CC.compare_cell(cell(max_ulp=1.0), cell(max_ulp=1.2), rule)["change"] == "worse"


def test_status_nonfinite_invariants():
    r = CC.compare_cell(cell(), cell(status="unsupported", reason="TypeError: no bfloat16"))
    assert r["change"] == "worse" and "status ok -> unsupported (TypeError: no bfloat16)" in r["worse"][0]
    assert CC.compare_cell(cell(status="unsupported"), cell())["change"] == "better"
    r = CC.compare_cell(cell(nonfinite={"overflow": 1}, nonfinite_total=1),
                        cell(nonfinite={"overflow": 1, "nan": 2}, nonfinite_total=3))
    assert r["change"] == "worse" and r["worse"][0].startswith("non-finite 1 -> 3")
    assert CC.compare_cell(cell(nonfinite_total=3), cell(nonfinite_total=1))["change"] == "better"
    assert CC.compare_cell(cell(nonfinite_total=1), cell(nonfinite_total=2), CC.Rule(nonfinite_slack=1))["change"] \
        == "same"
    r = CC.compare_cell(cell(nonfinite={"overflow": 1}, nonfinite_total=1), cell(nonfinite={"nan": 1}, nonfinite_total=1))
    assert r["change"] == "changed"
    assert CC.compare_cell(cell(), cell(invariants={">= 0": 1}, invariant_total=1))["change"] == "worse"
    # worse wins over better in one cell
    r = CC.compare_cell(cell(nonfinite_total=5, max_ulp=1.0), cell(nonfinite_total=0, max_ulp=100.0))
    assert r["change"] == "worse" and r["better"]


def test_gradient_cells_use_cae_and_flushed():
    g = dict(kind="grad", max_cae=10.0, flushed=0, max_ulp=5000.0)
    assert CC.compare_cell(cell(**g), cell(**dict(g, max_ulp=90000.0)))["change"] == "same"  # ULP is not the rule
    assert CC.compare_cell(cell(**g), cell(**dict(g, max_cae=100.0)))["change"] == "worse"
    assert CC.compare_cell(cell(**g), cell(**dict(g, max_cae=50.0)))["change"] == "changed"  # below the 64 floor
    assert CC.compare_cell(cell(**g), cell(**dict(g, flushed=2)))["change"] == "worse"


def test_grade_and_verdict_when_present_and_absent():
    assert CC.compare_cell(cell(grade="faithful"), cell(grade="unstable"))["change"] == "worse"
    assert CC.compare_cell(cell(grade="envelope"), cell(grade="correctly_rounded"))["change"] == "better"
    assert CC.compare_cell(cell(grade="faithful"), cell(grade="mystery"))["change"] == "changed"
    assert CC.compare_cell(cell(grade="faithful"), cell())["change"] == "same"  # one side has no grade
    assert CC.compare_cell(cell(verdict="pass"), cell(verdict="fail"))["change"] == "worse"
    # the judge's order: flushed is better than conditioned, unstable worse than envelope
    assert CC.GRADE_ORDER.index("flushed") < CC.GRADE_ORDER.index("conditioned")
    assert CC.compare_cell(cell(grade="flushed"), cell(grade="unstable"))["change"] == "worse"
    # verdicts under different judging profiles are a change, not a regression
    r = CC.compare_cell(cell(verdict="pass", profile="default"), cell(verdict="fail", profile="strict"))
    assert r["change"] == "changed" and "judging profile default -> strict" in r["changed"]


def test_graded_cells_accuracy_finding_comes_from_the_grades():
    """A graded cell (run with the one judge) has an accuracy finding when an element is unstable
    (under strict also envelope), whatever its max ULP; its case is the worst-grade input."""
    w = {"metric": "grade", "grade": "unstable", "computed": 0.03125, "index": [0, 0],
         "args": [{"dtype": "float16", "shape": [1, 1], "values": [[-35.4]]}]}
    graded = cell(max_ulp=2517.0, grade="unstable", grades={"correctly_rounded": 9, "unstable": 1},
                  verdict="fail", profile="default", worst={"grade": w})
    f = CC.cell_findings(graded)
    assert f["accuracy"]["metric"] == "grade" and f["accuracy"]["case"]["grade"] == "unstable"
    fine = cell(max_ulp=5000.0, grade="conditioned", grades={"conditioned": 10}, verdict="pass", profile="default")
    assert "accuracy" not in CC.cell_findings(fine)   # many ULPs, but what the conditioning forces
    env = cell(max_ulp=30.0, grade="envelope", grades={"envelope": 1}, verdict="fail", profile="strict",
               worst={"grade": dict(w, grade="envelope")})
    assert "accuracy" in CC.cell_findings(env)
    assert "accuracy" not in CC.cell_findings(dict(env, profile="default", verdict="pass"))


def test_grew_is_the_primitive_gate_baseline_uses():
    assert CC.grew(1.0, 2.5, factor=2, floor=2) and not CC.grew(1.0, 2.0, factor=2, floor=1)
    assert not CC.grew("inf", 1e300) and CC.grew(None, "nan")


# ------------------------------------------------------------------ loading


def test_load_document_one_line_errors(tmp_path):
    good = tmp_path / "r.json"
    good.write_text(json.dumps(doc(cell())))
    assert CC.load_document(good)["cells"]
    cases = {"missing.json": None, "notjson.json": "{not json", "list.json": "[1, 2]",
             "schema.json": json.dumps({"schema": "other", "cells": {}}),
             "gate.json": json.dumps({"infoaudit_gate": 1, "cells": {}}),
             "newer.json": json.dumps({"schema": "infoaudit.results", "version": 99, "cells": {}}),
             "nocells.json": json.dumps({"schema": "infoaudit.results", "version": 1})}
    msgs = {}
    for name, text in cases.items():
        p = tmp_path / name
        if text is not None:
            p.write_text(text)
        with pytest.raises(CC.DocumentError) as e:
            CC.load_document(p)
        msgs[name] = str(e.value)
        assert "\n" not in msgs[name] and str(p) in msgs[name]
    assert msgs["missing.json"].endswith("not found")
    assert "not JSON" in msgs["notjson.json"]
    assert "schema 'other'" in msgs["schema.json"]
    assert "gate JSON" in msgs["gate.json"]
    assert "newer" in msgs["newer.json"]
    assert "no 'cells'" in msgs["nocells.json"]


def test_gate_baseline_loader_messages(tmp_path):
    p = tmp_path / "base.json"
    with pytest.raises(CC.DocumentError, match="not found; record one with --json"):
        CC.load_gate_document(p)
    p.write_text(json.dumps({"infoaudit_gate": 1, "quantity": "softmax", "cells": {"float32": {"max_score": 1.0}}}))
    assert CC.load_gate_document(p, "softmax") == {"float32": {"max_score": 1.0}}
    with pytest.raises(CC.DocumentError, match="is for 'softmax', not 'logsumexp'"):
        CC.load_gate_document(p, "logsumexp")
    p.write_text(json.dumps(doc(cell())))
    with pytest.raises(CC.DocumentError, match="results file of `infoaudit run`"):
        CC.load_gate_document(p)


def test_corpus_from_results_uses_the_shared_loader(tmp_path):
    from infoaudit.corpus import from_results

    w = {"metric": "ulp", "args": [{"dtype": "float32", "shape": [1, 2], "values": [[1.0, 2.0]]}],
         "shrunk": {"metric": "ulp", "args": [{"dtype": "float32", "shape": [1, 1], "values": [["-inf"]]}]}}
    p = tmp_path / "r.json"
    p.write_text(json.dumps(doc(cell(worst={"ulp": w, "rel": {"metric": "rel", "args": None}}))))
    assert from_results(p) == {"softmax": [("past finding: numpy/composed ulp", "float32", [[[float("-inf")]]])]}
    p.write_text("{}")
    with pytest.raises(ValueError, match="not an infoaudit results file"):
        from_results(p)


# ------------------------------------------------------------------ matching


def test_match_device_and_same_file_eager_vs_jit():
    cpu = {CC.cell_key(c): c for c in (cell(backend="torch", variant="native"),)}
    cuda = {CC.cell_key(c): c for c in (cell(backend="torch", variant="native", device="cuda"),)}
    pairs, only_old, only_new = CC.match_cells(cpu, cuda)
    assert not pairs and len(only_old) == 1 and len(only_new) == 1
    pairs, only_old, only_new = CC.match_cells(cpu, cuda, [CC.parse_match("device:cpu=cuda")])
    assert list(pairs) == ["softmax|torch|native|float32|cuda"] and not only_old and not only_new
    both = {CC.cell_key(c): c for c in (cell(backend="jax", variant="jit", max_ulp=1.0),
                                        cell(backend="jax", variant="eager", max_ulp=9.0))}
    pairs, only_old, only_new = CC.match_cells(both, both, [("variant", "eager", "jit")])
    (o, n), = pairs.values()
    assert o["variant"] == "eager" and n["variant"] == "jit" and not only_old and not only_new
    with pytest.raises(ValueError, match="FIELD:OLD=NEW"):
        CC.parse_match("device=cpu")


# ------------------------------------------------------------------ the diff


def _finding_cells():
    w_old = {"metric": "nonfinite", "class": "overflow", "computed": "inf", "index": [0],
             "args": [{"dtype": "float32", "shape": [1, 1], "values": [[1.0]]}]}
    old = doc(cell(quantity="softmax", nonfinite={"overflow": 2}, nonfinite_total=2, worst={"nonfinite": w_old}),
              cell(quantity="logsumexp", max_ulp=40.0),
              cell(quantity="sigmoid", max_ulp=0.5),
              cell(quantity="entropy"))
    new = doc(cell(quantity="softmax"),
              cell(quantity="logsumexp", max_ulp=400.0),
              cell(quantity="sigmoid", max_ulp=20.0),
              cell(quantity="kl_divergence"),
              packages={"numpy": "2.5.0"})
    return old, new


def test_diff_counts_findings_and_environment():
    old, new = _finding_cells()
    d = D.diff_documents(old, new, rerun=False)
    json.dumps(d, allow_nan=False)
    assert d["schema"] == "infoaudit.diff" and d["version"] == 1
    c = d["counts"]
    assert (c["worse"], c["better"], c["changed"], c["same"]) == (2, 1, 0, 0)
    assert (c["only_old"], c["only_new"]) == (1, 1)
    assert d["worse"] and d["exit_code"] == 1
    f = d["findings"]
    assert [(x["key"], x["id"]) for x in f["fixed"]] == [("softmax|numpy|composed|float32|cpu", "nonfinite:overflow")]
    assert f["fixed"][0]["case"]["args"] and f["fixed"][0]["side"] == "old"
    assert [(x["key"], x["id"]) for x in f["new"]] == [("sigmoid|numpy|composed|float32|cpu", "accuracy")]
    assert [(x["key"], x["old_score"], x["new_score"]) for x in f["changed"]] == [
        ("logsumexp|numpy|composed|float32|cpu", 40.0, 400.0)]
    ch = d["environment"]["changes"]
    assert ch[0]["path"] == "packages.numpy" and ch[0]["explains"] == 3 and ch[0]["worse"] == 2
    md = D.render_markdown(d)
    assert "**WORSE** (exit 1)" in md and "packages.numpy" in md and "Cells only in OLD" in md
    html = D.render_html(d)
    assert html.startswith("<!doctype html>") and "logsumexp|numpy|composed|float32|cpu" in html


def test_missing_is_worse_only_when_asked():
    old = doc(cell(), cell(quantity="entropy"))
    new = doc(cell())
    assert not D.diff_documents(old, new, rerun=False)["worse"]
    d = D.diff_documents(old, new, rule=CC.Rule(missing_is_worse=True), rerun=False)
    assert d["worse"] and d["missing_counted_worse"] == ["entropy|numpy|composed|float32|cpu"]


def test_old_document_without_fingerprint_compares_what_it_has():
    old = doc(cell(), fingerprint=False, packages={"numpy": "2.4.6"})
    new = doc(cell(max_ulp=50.0), packages={"numpy": "2.4.6", "scipy": "1.17.1"})
    d = D.diff_documents(old, new, rerun=False)
    assert not d["environment"]["old_has_fingerprint"]
    assert all(not e["path"].startswith("fp.") for e in d["environment"]["changes"])


def test_rerun_in_this_environment():
    """A stored case re-run through this numpy: reproduces the recorded value, judged exactly."""
    import numpy as np

    from infoaudit.differential import compare

    x = np.array([-30.0, 0.25, 20.0], dtype=np.float32)
    got = compare("sigmoid", "numpy", x, dtype="float32")
    case = {"metric": "ulp", "index": [2], "computed": float(got.result[2]),
            "args": [{"dtype": "float32", "shape": [3], "values": [-30.0, 0.25, 20.0]}]}
    c = cell(quantity="sigmoid")
    r = D.rerun_case(c, case, old_case=case)
    assert r["ran"] and r["status"] == "ok" and r["like"] == "old" and r["computed"] == case["computed"]
    assert r["ulp"] is not None and r["ulp"] <= 1.0
    r = D.rerun_case(c, case, old_case=dict(case, computed=0.5), new_case=case)
    assert r["like"] == "new"
    r = D.rerun_case(dict(c, backend="nosuch"), case)
    assert not r["ran"] and "nosuch" in r["why"]
    assert not D.rerun_case(dict(c, kind="grad"), case)["ran"]
    assert not D.rerun_case(c, dict(case, args=None))["ran"]


# ------------------------------------------------------------------ the command line


def _write(tmp_path, name, d):
    p = tmp_path / name
    p.write_text(json.dumps(d))
    return str(p)


def test_cli_exit_codes(tmp_path, capsys):
    old, new = _finding_cells()
    a = _write(tmp_path, "old.json", old)
    b = _write(tmp_path, "new.json", new)
    out = tmp_path / "out"
    assert cli.main(["diff", a, a, "-o", str(out), "--no-rerun"]) == 0
    assert "not worse" in capsys.readouterr().out
    assert {"diff.md", "diff.html", "diff.json"} <= set(os.listdir(out))
    assert cli.main(["diff", a, b, "-o", str(out), "--no-rerun", "-q"]) == 1
    assert "WORSE" in capsys.readouterr().out
    assert json.loads((out / "diff.json").read_text())["exit_code"] == 1
    # the worse cells become acceptable with looser thresholds
    better_only = doc(cell(quantity="logsumexp", max_ulp=40.0))
    worse_ulp = doc(cell(quantity="logsumexp", max_ulp=100.0))
    c = _write(tmp_path, "c.json", better_only)
    e = _write(tmp_path, "e.json", worse_ulp)
    assert cli.main(["diff", c, e, "-o", str(out), "-q"]) == 1
    assert cli.main(["diff", c, e, "-o", str(out), "-q", "--ulp-factor", "3"]) == 0
    capsys.readouterr()
    # bad input: exit 2 with one line on stderr
    (tmp_path / "bad.json").write_text("{oops")
    for args in ([a, str(tmp_path / "missing.json")], [str(tmp_path / "bad.json"), a],
                 [a, _write(tmp_path, "gate.json", {"infoaudit_gate": 1, "cells": {}})],
                 [a, b, "--match", "colour:red=blue"], [a, b, "--ulp-factor", "nan"]):
        assert cli.main(["diff", *args, "-o", str(out)]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("infoaudit diff: error: ") and err.count("\n") == 1, err


# ------------------------------------------------------------------ the committed drift


def test_committed_ml_dtypes_drift_shows_the_scipy_bfloat16_change():
    """reports/drift/ml_dtypes-0.6.0-vs-0.7.0: scipy.special.logsumexp on bfloat16 raises TypeError
    with ml_dtypes 0.7.0; the diff says so and names ml_dtypes as the explanation."""
    d = json.loads(open(os.path.join(DRIFT, "diff.json")).read())
    assert d["schema"] == "infoaudit.diff" and d["worse"] and d["exit_code"] == 1
    assert (d["old"]["packages"]["ml_dtypes"], d["new"]["packages"]["ml_dtypes"]) == ("0.6.0", "0.7.0")
    sc = {s["key"]: s for s in d["status_changes"]}
    lse = sc["logsumexp|scipy|native|bfloat16|cpu"]
    assert (lse["old_status"], lse["new_status"]) == ("ok", "unsupported")
    assert "TypeError" in lse["new_reason"] and "bfloat16" in lse["new_reason"]
    assert "cross_entropy|scipy|logsumexp|bfloat16|cpu" in sc
    top = d["environment"]["changes"][0]
    assert top["path"] == "packages.ml_dtypes" and top["worse"] >= 2
    # every changed cell is a bfloat16 cell
    assert d["cells"] and all(r["dtype"] == "bfloat16" for r in d["cells"])
    # the committed results give the same verdicts again (no re-run: that needs ml_dtypes 0.7.0)
    old = CC.load_document(os.path.join(DRIFT, "old-ml_dtypes-0.6.0", "results.json"))
    new = CC.load_document(os.path.join(DRIFT, "new-ml_dtypes-0.7.0", "results.json"))
    again = D.diff_documents(old, new, rerun=False)
    assert [(r["key"], r["change"]) for r in again["cells"]] == [(r["key"], r["change"]) for r in d["cells"]]
    assert "logsumexp|scipy|native|bfloat16|cpu" in D.render_markdown(again)


def test_gate_baseline_uses_the_shared_loader_and_rule(tmp_path):
    from infoaudit import gate as G
    from tests.zoo import zoo_numpy as Z

    base = G.run_gate(Z.softmax_wide, "softmax", "numpy", dtypes=["float16"], examples=3)
    p = tmp_path / "base.json"
    p.write_text(json.dumps(base.as_dict(), default=str))
    assert G.run_gate(Z.softmax_wide, "softmax", "numpy", dtypes=["float16"], examples=3,
                      baseline=str(p)).exit_code == 0
    worse = G.run_gate(Z.softmax_no_max_shift, "softmax", "numpy", dtypes=["float16"], examples=3, baseline=str(p))
    assert worse.exit_code == 1 and "worse than the baseline" in worse.results[0].failure["message"]
    r = tmp_path / "results.json"
    r.write_text(json.dumps(doc(cell())))
    with pytest.raises(G.GateUsageError, match="infoaudit diff"):
        G.run_gate(Z.softmax_wide, "softmax", "numpy", dtypes=["float16"], examples=3, baseline=str(r))


def test_fp_state_after_the_run_is_compared_when_recorded():
    old, new = doc(cell(backend="jax", variant="jit")), doc(cell(backend="jax", variant="jit", max_ulp=90.0))
    old["environment"]["fingerprint_after"] = {"ftz": {"jax/cpu": {"float32": "ieee"}}}
    new["environment"]["fingerprint_after"] = {"ftz": {"jax/cpu": {"float32": "ftz+daz"}}}
    d = D.diff_documents(old, new, rerun=False)
    top = d["environment"]["changes"][0]
    assert top["path"] == "fp_after.ftz.jax/cpu.float32" and top["kind"] == "fp" and top["worse"] == 1

"""``infoaudit run --impl``: a user's own implementation audited into the run's results and report,
judged by the same judge as the gate, so the two agree.

On a handful of zoo members (stable and textbook-unstable, numpy and torch, several quantities)
the gate's verdict per dtype (its Python API, ``infoaudit.gate.api.gate``) and the run's cell
verdict (``runner.run_group`` with the ``impl`` task of ``infoaudit run --impl``) are the same
under the default profile. Both judge with :func:`infoaudit.judging.judge` and both run the
gate's probes and the shared corpus; their searches differ, so agreement on every member is the
check that neither's extra inputs turn a verdict.
"""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

from infoaudit import run as runner
from infoaudit.gate.api import gate
from infoaudit.results import schema as R

DTYPES = ("float32", "float16")
GATE_EXAMPLES = 12          # the gate's CI budget (tests/test_gate.py)
RUN = {"profile": "default", "examples": 6, "nonfinite_examples": 4}   # default corpus, a small search

# (framework, quantity, member): stable and unstable members of several quantities
MEMBERS = [
    ("numpy", "softmax", "softmax_wide"),
    ("numpy", "softmax", "softmax_no_max_shift"),
    ("numpy", "kl_divergence", "kl_divergence_dtype"),
    ("numpy", "kl_divergence", "kl_no_zero_guard"),
    ("torch", "binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits_wide"),
    ("torch", "binary_cross_entropy_with_logits", "bce_logits_via_log_sigmoid"),
    ("torch", "log_softmax", "log_softmax_dtype"),
    ("torch", "sigmoid", "sigmoid_naive"),
]


def _member(framework, name):
    import importlib

    from tests.zoo import all_members

    if framework == "torch":
        from conftest import backend_or_skip

        backend_or_skip("torch")
    mod = importlib.import_module(f"tests.zoo.zoo_{framework}")
    m = next(m for m in all_members() if m.framework == framework and m.name == name)
    return getattr(mod, name), m


@pytest.mark.parametrize("framework,quantity,name", MEMBERS, ids=[f"{f}:{n}" for f, _, n in MEMBERS])
def test_gate_exit_code_and_run_verdict_agree(framework, quantity, name):
    fn, member = _member(framework, name)
    rep = gate(fn, quantity, framework, dtype=",".join(DTYPES), examples=GATE_EXAMPLES, seed=0, profile="default")
    by_dtype = {r.dtype: r for r in rep.results}
    run_fail = False
    for d in DTYPES:
        res = runner.run_group({"quantity": quantity, "dtype": d, "seed": 0, "backends": [],
                                "impl": member.impl, "framework": framework, "judge_profile": "default", **RUN})
        (key, cell), = res["cells"].items()
        assert key == f"{quantity}|user-{framework}|{name}|{d}|cpu"
        assert cell["profile"] == "default" and cell["verdict"] in ("pass", "fail"), cell
        g = by_dtype[d]
        assert g.verdict == cell["verdict"], (
            f"{member.id} {d}: gate {g.verdict} ({g.why or (g.failure or {}).get('message', '')}), "
            f"run {cell['verdict']} ({cell['why']})")
        run_fail |= cell["verdict"] == "fail"
    assert rep.exit_code == (1 if run_fail else 0) == member.expected_exit, (rep.exit_code, member)


def test_run_impl_cli_results_and_report(tmp_path):
    """The CLI: a user's function into results.json (its cell keyed user-<framework>, the impl in
    the config) and the report (it names the implementation); usage errors exit 2."""
    from infoaudit.cli import main

    out = tmp_path / "run"
    impl = "tests.zoo.zoo_numpy:softmax_no_max_shift"
    assert main(["run", "--impl", impl, "--quantity", "softmax", "--framework", "numpy", "--profile", "quick",
                 "--dtypes", "float32", "-j", "1", "-q", "-o", str(out)]) == 0
    doc = R.load(out / "results.json")
    assert doc["config"]["impl"] == {"impl": impl, "framework": "numpy", "quantity": "softmax"}
    assert doc["config"]["judge_profile"] == "default"
    (key, cell), = doc["cells"].items()
    assert key == "softmax|user-numpy|softmax_no_max_shift|float32|cpu"
    assert cell["verdict"] == "fail" and cell["grades"].get("nonfinite") and cell["call"] == impl
    md = (out / "report.md").read_text()
    assert impl in md and "UNSTABLE" in md or "NaN/inf" in md
    for bad in (["--impl", "tests.zoo.zoo_numpy:nope", "--quantity", "softmax"],
                ["--impl", impl],
                ["--impl", impl, "--quantity", "nosuch"],
                ["--quantity", "softmax"]):
        assert main(["run", *bad, "--profile", "quick", "-q", "-o", str(tmp_path / "bad")]) == 2, bad


def test_strict_profile_cell_verdicts(tmp_path):
    """--judge-profile strict: the same grades, judged by the conditioned grade (a cell whose worst
    element is envelope passes default and fails strict)."""
    res_d = runner.search("logsumexp", "numpy", "float32", "quick", seed=1, judge_profile="default")
    res_s = runner.search("logsumexp", "numpy", "float32", "quick", seed=1, judge_profile="strict")
    cd, cs = res_d.cell(), res_s.cell()
    assert cd["profile"] == "default" and cs["profile"] == "strict"
    assert "under strict (conditioned and better pass)" in cs["why"]
    if cd["grade"] == "envelope":
        assert cd["verdict"] == "pass" and cs["verdict"] == "fail"

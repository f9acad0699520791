"""torch.compile variants and the k-times rule with the exact value as oracle (issue 14 items 1-2).

Expected errors are hand-made ULP counts or come from the mpmath reference; compiling costs
seconds per op on two cores, so the compiled tests here compile two ops in float32 (more under
``-m slow``)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import backend_or_skip
from infoaudit.judging import relative as REL

# ---------------------------------------------------------------- the ratio on hand-made errors


def test_element_ratios_floor_and_infinities():
    c = np.array([0.3, 4.0, 1.0, np.inf, np.inf, 2.0, np.nan])
    b = np.array([0.4, 1.0, 8.0, np.inf, 3.0, np.inf, 1.0])
    r = REL.element_ratios(c, b)
    # both within the 1-ULP floor -> 1; 4/1; 1/8; inf/inf = 1; inf/3 = inf; 2/inf = 0; NaN left out
    assert r[:6].tolist() == [1.0, 4.0, 0.125, 1.0, math.inf, 0.0]
    assert math.isnan(r[6])


def test_cell_ratio_is_max_over_max():
    # the candidate's worst error 6 ULPs, the baseline's worst 2: 3 x less accurate,
    # although element-wise the candidate is better on one element
    assert REL.cell_ratio([6.0, 0.1], [1.0, 2.0]) == 3.0
    assert REL.cell_ratio([0.5, 0.25], [16.0, 0.5]) == 1 / 16      # floored at 1 ULP
    assert REL.cell_ratio([np.nan], [1.0]) == 1.0      # nothing judged in both
    assert REL.describe(3.0) == "compiled is 3 x less accurate than eager"
    assert REL.describe(1 / 32) == "compiled is 32 x more accurate than eager"
    assert REL.describe(1.0).startswith("compiled is as accurate as eager")
    assert REL.passes(3.0, 4) and not REL.passes(3.0, 2) and not REL.passes(math.nan, 10)


def test_ratio_accumulates_over_inputs():
    acc = REL.Ratio()
    acc.add(np.array([1.0, 0.2]), np.array([1.0, 0.5]), key="a")       # ratios 1, 1
    acc.add(np.array([[8.0, 0.5]]), np.array([[2.0, 0.5]]), key="b")   # ratios 4, 1
    s = acc.summary()
    assert s["elements"] == 4 and s["worse"] == 1 and s["better"] == 0
    assert s["ratio"] == 8.0 / 2.0 and s["max_element_ratio"] == 4.0 and s["floor_ulps"] == 1.0
    assert s["worst"]["key"] == "b" and s["worst"]["index"] == [0, 0]
    assert s["geomean_element_ratio"] == pytest.approx(4 ** 0.25)
    assert "4 x less accurate" in s["text"]


def test_element_errors_of_a_judgement_counts_nonfinite_as_infinite():
    from infoaudit import judging

    z = np.array([[0.0, 1.0, 2.0]], np.float32)
    y = np.array([[np.nan, 0.2447, 0.6652]])
    j = judging.judge("softmax", [z], y, dtype="float32")
    e = REL.element_errors(j)
    assert e[0, 0] == math.inf and np.isfinite(e[0, 1:]).all() and (e[0, 1:] > 100).all()   # 4 digits: hundreds of ULPs


# ---------------------------------------------------------------- the run's pairing (no compile)


def _naive_target(mod):
    import torch

    from infoaudit.run.targets import Target

    call = "torch.exp(z) / torch.exp(z).sum(-1, keepdim=True)"
    return Target("torch", "naive_candidate", "cpu", call, False, "test", mod,
                  lambda z: torch.exp(z) / torch.exp(z).sum(-1, keepdim=True), framework="torch", baseline="native")


@pytest.mark.torch
def test_run_pairs_a_candidate_with_its_eager_op_and_reproduces_both():
    """A candidate that overflows (exp without the max subtracted) against torch.softmax on the
    same inputs: the cell's relative record says it is less accurate, and its reproducer runs
    both and shows the candidate's NaN next to the eager value."""
    mod = backend_or_skip("torch")
    from infoaudit.run.cells import cell_dict
    from infoaudit.run.group import Group
    from infoaudit.run.targets import targets_for

    native = [t for t in targets_for("softmax", "float32", ["torch"])[0] if t.variant == "native"]
    g = Group("softmax", "float32", native + [_naive_target(mod)])
    assert g.pairs == [(1, 0)]
    g.evaluate([np.array([[1.0, 2.0, 3.0], [100.0, 0.0, -1.0]], np.float32)], source="hand")
    rec = cell_dict(g, g.cells[1])["relative"]
    assert cell_dict(g, g.cells[0]).get("relative") is None
    assert rec["baseline"] == "native" and rec["ratio"] == "inf"
    assert "less accurate than eager native" in rec["text"]
    assert rec["case"]["index"][0] == 0 and len(rec["case"]["args"][0]["values"]) == 1   # cut to the row
    out = subprocess.run([sys.executable, "-c", rec["reproducer"]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "compiled nan" in out.stdout and "eager" in out.stdout


@pytest.mark.torch
def test_profiles_choose_the_compiled_variants():
    backend_or_skip("torch")
    from infoaudit.backends import torch_compiled as TC
    from infoaudit.run.targets import profile_variants, targets_for

    for q, main in (("softmax", True), ("entropy", False)):
        ts, _ = targets_for(q, "float32", ["torch"])
        names = {p: [t.variant for t in profile_variants(ts, [], p)] for p in ("quick", "default", "thorough")}
        compiled = [t.variant for t in ts if TC.eager_variant(t.variant)]
        assert compiled and all(t.baseline == TC.eager_variant(t.variant) for t in ts if t.variant in compiled)
        assert not any(TC.eager_variant(v) for v in names["quick"])
        assert set(compiled) <= set(names["thorough"])
        in_default = {v for v in names["default"] if TC.eager_variant(v)}
        assert in_default == ({v for v in compiled if TC.setting_of(v).suffix == "compiled"} if main else set())
    f64 = {p: [t.variant for t in profile_variants(targets_for("softmax", "float64", ["torch"])[0], [], p)]
           for p in ("default", "thorough")}
    assert "compiled" not in f64["default"] and "compiled" in f64["thorough"]   # float64: thorough only
    kl = [t.variant for t in profile_variants(targets_for("kl_divergence", "float32", ["torch"])[0], [], "default")]
    assert "compiled" in kl and "log_target_compiled" not in kl                 # the primary op only
    assert TC.eager_variant("log_target_compiled_max_autotune") == "log_target"
    assert TC.eager_variant("compiled_emulate") == "native" and TC.eager_variant("native") is None


def test_compiled_module_does_not_import_torch():
    code = "import sys, infoaudit.backends.torch_compiled, infoaudit.judging.relative; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


# ---------------------------------------------------------------- really compiled


def _compiled_target(q, variant="compiled"):
    from infoaudit.run.targets import targets_for

    ts, _ = targets_for(q, "float32", ["torch"])
    return [t for t in ts if t.variant in ("native", variant)]


@pytest.mark.torch
def test_compiled_logsumexp_is_graded_and_compared_with_eager():
    """torch.compile(torch.logsumexp) on float32 rows: graded by the judge, its ratio to eager
    recorded, its compile (and the FTZ state before and after) in the compile log."""
    backend_or_skip("torch")
    from infoaudit.backends import torch_compiled as TC
    from infoaudit.run.cells import cell_dict
    from infoaudit.run.group import Group

    g = Group("logsumexp", "float32", _compiled_target("logsumexp"))
    rng = np.random.default_rng(3)
    for k in range(3):
        g.evaluate([(rng.standard_normal((3, 40 + k)) * 10).astype(np.float32)], source=f"r{k}")
    d = cell_dict(g, g.cells[1])
    assert d["variant"] == "compiled" and d["status"] == "ok", d["reason"]
    assert d["verdict"] == "pass", d["why"]
    assert d["relative"]["elements"] == 9 and isinstance(d["relative"]["ratio"], float)
    log = [e for e in TC.compile_log() if e["quantity"] == "logsumexp"]
    assert log and log[0]["dtype"] == "float32" and log[0]["seconds"] > 0
    assert log[0]["fp_before"]["torch/cpu"]["float32"] in ("ieee", "ftz", "daz", "ftz+daz")
    assert set(log[0]["fp_after"]) == set(log[0]["fp_before"])


@pytest.mark.torch
def test_compiled_gradient_through_autograd():
    """Forward and backward compiled: the VJP of compiled softmax equals the exact VJP
    s * (c - <s, c>) to a few float32 ULPs (hand-derived formula, float64 numpy)."""
    mod = backend_or_skip("torch")
    from infoaudit.backends.grad import vjp_function

    op = next(o for o in mod.extra_ops()["softmax"] if o.variant == "compiled")
    z = np.array([[0.5, -1.0, 2.0, 0.25]], np.float32)
    c = np.array([[1.0, 0.0, -2.0, 0.5]])
    out = vjp_function(mod, op, "softmax")([z], c)
    s = np.exp(z.astype(np.float64) - z.max())
    s /= s.sum()
    want = s * (c - (s * c).sum())
    assert out.grads["z"].dtype == np.float32
    np.testing.assert_allclose(out.grads["z"], want, rtol=0, atol=4 * np.finfo(np.float32).eps)


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("q", ["softmax", "log_softmax", "cross_entropy", "binary_cross_entropy_with_logits",
                               "kl_divergence"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_compiled_main_quantities_pass(q, dtype):
    backend_or_skip("torch")
    from infoaudit.run import search

    r = search(q, "torch", dtype, "quick", 0, examples=4, nonfinite_examples=2)
    assert r.cells  # the quick profile audits no compiled cell; default does:
    from infoaudit.run.targets import profile_variants, targets_for

    profile = "default" if dtype != "float64" else "thorough"   # float64 compiled cells: thorough only
    ts = [t for t in profile_variants(targets_for(q, dtype, ["torch"])[0], [], profile) if t.variant == "compiled"]
    assert len(ts) == 1
    r = search(q, ts, dtype, profile, 0, examples=6, nonfinite_examples=3, shrink_steps=20)
    cells = list(r.cells.values() if isinstance(r.cells, dict) else r.cells)
    assert len(cells) == 1 and cells[0]["status"] == "ok", cells[0]["reason"]


# ---------------------------------------------------------------- the gate: --compile, --relative-to, --autocast


def naive_softmax(z):
    """A user's softmax without the max subtracted: exp overflows for logits above ~88 (float32)."""
    import torch

    e = torch.exp(z)
    return e / e.sum(-1, keepdim=True)


def library_softmax(z):
    import torch

    return torch.softmax(z, dim=-1)


def identity_matmul_softmax(z):
    """Logits through a matmul (as from a linear layer; here by a 1 x 1 one), then softmax: under
    autocast the matmul runs in the autocast dtype, so the logits are rounded to it before the
    float32 softmax."""
    import torch

    one = torch.ones((1, 1), dtype=z.dtype, device=z.device)
    return torch.softmax((z.unsqueeze(-1) @ one).squeeze(-1).float(), dim=-1)   # z * 1, through matmul


@pytest.mark.torch
def test_gate_compiled_naive_softmax_fails_and_compiled_torch_softmax_passes():
    backend_or_skip("torch")
    from infoaudit.gate import run_gate

    bad = run_gate(naive_softmax, "softmax", "torch", dtypes=["float32"], examples=4, compile="default")
    assert not bad.passed
    r = bad.results[0]
    assert r.verdict == "fail" and r.failure["kind"] == "numerical", r.why
    assert any("compiled: torch.compile(impl, dynamic=True)" in n for n in r.notes)
    assert "torch.compile(impl, dynamic=True)" in r.failure["reproducer"]
    good = run_gate(library_softmax, "softmax", "torch", dtypes=["float32"], examples=4, compile="default",
                    relative=2.0, relative_to="eager")
    assert good.passed, good.results[0].why
    assert any(n.startswith("relative to the eager implementation: the implementation is") for n in
               good.results[0].notes), good.results[0].notes


@pytest.mark.torch
def test_gate_autocast_catches_logits_rounded_by_an_autocast_matmul():
    backend_or_skip("torch")
    from infoaudit.gate import run_gate

    plain = run_gate(identity_matmul_softmax, "softmax", "torch", examples=4, dtypes=["float32"])
    assert plain.passed, plain.results[0].why
    under = run_gate(identity_matmul_softmax, "softmax", "torch", examples=4, autocast="bfloat16")
    assert [r.dtype for r in under.results] == ["float32"]   # autocast runs on float32 inputs
    assert not under.passed and under.results[0].failure["kind"] == "numerical"
    assert "run_autocast" in under.results[0].failure["reproducer"]


def test_gate_usage_errors_for_compile_and_autocast_outside_torch():
    from infoaudit.gate import run_gate
    from infoaudit.harness.frameworks import GateUsageError

    with pytest.raises(GateUsageError, match="--compile needs a torch implementation"):
        run_gate(lambda z: z, "softmax", "numpy", dtypes=["float32"], examples=1, compile="default")
    with pytest.raises(GateUsageError, match="--autocast needs a torch implementation"):
        run_gate(lambda z: z, "softmax", "numpy", dtypes=["float32"], examples=1, autocast="bfloat16")


# ---------------------------------------------------------------- fused kernels (CUDA only)


def _fused():
    from infoaudit.backends import fused

    return fused


@pytest.mark.torch
@pytest.mark.parametrize("name", ["liger_cross_entropy", "liger_kl_divergence", "torch_cuda_cross_entropy"])
def test_fused_kernels_pass_the_gate_where_cuda_is_present(name):
    """Each fused target gated on cuda; on a machine without CUDA (or without liger-kernel) a
    visible skip with the reason."""
    backend_or_skip("torch")
    fused = _fused()
    row = next(r for r in fused.status() if r["target"] == name)
    if not row["available"]:
        from infoaudit.backends import BackendUnavailable

        with pytest.raises(BackendUnavailable):
            getattr(fused, name)(None, None)
        pytest.skip(f"{name}: {row['reason']}")
    from infoaudit.gate import run_gate

    rep = run_gate(getattr(fused, name), row["quantity"], "torch", device="cuda", dtypes=["float32", "bfloat16"],
                   examples=10)
    for r in rep.results:   # the verdict is recorded either way; a failure is a finding about the kernel
        assert r.verdict in ("pass", "fail") and r.cases > 0, r.why


def test_compile_autocast_relative_to_options_are_defined_once():
    import argparse

    from infoaudit import options as O
    from infoaudit.gate.targets import COMPILE_MODES

    assert set(O.COMPILE_MODES) == set(COMPILE_MODES)
    p = O.add_to_argparse(argparse.ArgumentParser())
    a = p.parse_args(["--impl", "m:f", "--quantity", "softmax", "--compile", "max-autotune", "--autocast",
                      "bfloat16", "--relative", "2", "--relative-to", "eager"])
    opts = O.resolve(vars(a))
    assert (opts["compile"], opts["autocast"], opts["relative_to"], opts["relative"]) == \
        ("max-autotune", "bfloat16", "eager", 2.0)
    with pytest.raises(SystemExit):
        p.parse_args(["--impl", "m:f", "--quantity", "softmax", "--autocast", "float64"])
    assert {O.BY_DEST[k].pytest_flag for k in ("compile", "autocast", "relative_to")} == \
        {"--infoaudit-compile", "--infoaudit-autocast", "--infoaudit-relative-to"}

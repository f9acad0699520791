"""Every verdict of infoaudit.seeds, checked against values derived here by hand / exact arithmetic.

Expected values are computed in this file from the seeds' decimal inputs (mpmath at 60 digits
from decimal strings, or Fractions), never read back from the code under test; a printed value
is never bent: where the seed is wrong the test asserts that it is wrong.
"""
from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest
from mpmath import mp

from infoaudit import seeds

D = mpmath.mpf
# values computed by the reference see the decimal inputs rounded to float64 (relative change
# <= 2^-53 per input, condition numbers here < 8): agreement to 2^-48 with the exact decimals.
SEED_REL = mpmath.mpf(2) ** -48


@pytest.fixture(autouse=True)
def _dps():
    with mp.workdps(60):
        yield


def close(a, b, rel=SEED_REL):
    a, b = mpmath.mpf(a), mpmath.mpf(b)
    return abs(a - b) <= rel * max(abs(a), abs(b), mpmath.mpf(2) ** -1000)


def round_half_even(x, decimals):
    return round(seeds.to_fraction(x), decimals)


# ---------------------------------------------------------------- registry hygiene


def test_every_claim_is_well_formed():
    ids = [c.id for c in seeds.CLAIMS]
    assert len(ids) == len(set(ids))
    for c in seeds.CLAIMS:
        assert c.source in (seeds.TEXTBOOK, seeds.SLIDES, seeds.NOTEBOOK), c.id
        assert c.verdict in seeds.VERDICTS, c.id
        assert c.quote and c.claim, c.id
        if c.verdict in (seeds.WRONG, seeds.INCONSISTENT, seeds.NOT_A_QUANTITY):
            assert c.note, f"{c.id}: a non-correct verdict needs an explanation"


def test_quotes_come_from_the_seeds():
    """Every numeric printed value occurs in its seed file (modulo the notebook's tensor(...) wrapper)."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "docs" / "seeds"
    assert root.is_dir(), f"the seed documents live in the repository, at {root}"
    for c in seeds.CLAIMS:
        text = (root / c.source).read_text().replace("{,}", ",")
        if c.printed is None or c.id in ("coin_entropy", "fp16_softmax_speedup", "softmax_T_gradient",
                                         "distillation_T2", "eps_clamp_1e-8", "optimal_distribution"):
            continue
        assert c.printed in text, (c.id, c.printed)


@pytest.mark.parametrize("cid", [c.id for c in seeds.CLAIMS if c.verdict in (seeds.CORRECT, seeds.WRONG)
                                 and c.compare != seeds.NONE])
def test_derived_verdict_matches_recorded(cid):
    c = seeds.get(cid)
    assert seeds.derived_verdict(c) == c.verdict


def test_rounds_to_helper():
    assert seeds.rounds_to(Fraction(3125, 1000), "3.12")          # half-even tie
    assert not seeds.rounds_to(Fraction(3135, 1000), "3.13")
    assert seeds.rounds_to(D("1390.625"), "1,390", seeds.SIG3)
    assert not seeds.rounds_to(D("-0.99"), "-2")
    assert seeds.rounds_to(D("-1.2"), "-1")
    assert seeds.to_fraction(D(-3) / 4) == Fraction(-3, 4)


# ---------------------------------------------------------------- textbook (000)


def test_softmax_class3_is_56_06_percent_not_68_9():
    z = [D(s) for s in "2.1 0.5 -1.2 3.4 0.8 -0.5 1.1 -2.0 0.3 1.8".split()]
    p3 = mp.exp(z[3]) / mp.fsum(mp.exp(v) for v in z) * 100
    assert round_half_even(p3, 2) == Fraction(5606, 100)
    assert max(range(10), key=lambda i: z[i]) == 3
    c = seeds.get("softmax_class3")
    assert c.verdict == seeds.WRONG
    assert close(c.main_value(), p3, SEED_REL)
    assert not seeds.rounds_to(p3, "68.9")


def test_coin_entropy():
    h = -(D("0.9") * mp.log(D("0.9")) + D("0.1") * mp.log(D("0.1"))) / mp.ln2
    assert round_half_even(h, 3) == Fraction(469, 1000)
    assert close(seeds.get("coin_entropy").main_value(), h, SEED_REL)
    assert seeds.get("coin_entropy").verdict == seeds.CORRECT


@pytest.mark.parametrize("cid,q,printed", [("ce_0.6", "0.6", "0.511"), ("ce_0.8", "0.8", "0.223"),
                                           ("ce_0.2", "0.2", "1.609"), ("bce_0.99", "0.99", "0.010"),
                                           ("bce_0.2", "0.2", "1.609")])
def test_minus_log_examples(cid, q, printed):
    v = -mp.log(D(q))
    assert seeds.rounds_to(v, printed)
    c = seeds.get(cid)
    assert c.printed == printed and c.verdict == seeds.CORRECT
    assert close(c.main_value(), v, SEED_REL)


def test_torch_cross_entropy_loss_example_value():
    # row 1: log(e^2 + e + e^0.1) - 2; row 2: log(e^0.5 + e^2.5 + e) - 2.5
    r1 = mp.log(mp.exp(2) + mp.exp(1) + mp.exp(D("0.1"))) - 2
    r2 = mp.log(mp.exp(D("0.5")) + mp.exp(D("2.5")) + mp.exp(1)) - D("2.5")
    mean = (r1 + r2) / 2
    c = seeds.get("torch_cross_entropy_loss")
    assert c.verdict == seeds.UNPRINTED and c.printed is None
    assert close(c.main_value(), mean, SEED_REL)
    assert c.exact()["prints"] == "Loss: 0.3617" == f"Loss: {float(mean):.4f}"


def test_torch_cross_entropy_loss_matches_torch():
    torch = pytest.importorskip("torch")
    loss = torch.nn.CrossEntropyLoss()(torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 1.0]]), torch.tensor([0, 1]))
    assert f"{loss.item():.4f}" == "0.3617"


def test_identities_and_properties():
    p = [D("0.2"), D("0.6"), D("0.2")]
    q = [D("0.7"), D("0.2"), D("0.1")]
    kl = mp.fsum(a * mp.log(a / b) for a, b in zip(p, q))
    klr = mp.fsum(b * mp.log(b / a) for a, b in zip(p, q))
    h = -mp.fsum(a * mp.log(a) for a in p)
    ce = -mp.fsum(a * mp.log(b) for a, b in zip(p, q))
    assert kl > 0 and klr > 0 and abs(kl - klr) > D("0.04")
    assert close(ce, h + kl, mpmath.mpf(2) ** -150)
    k = seeds.get("kl_properties").exact()
    assert k["holds"] and k["KL(p||p)"] == 0
    assert close(k["KL(p||q)"], kl, SEED_REL) and close(k["KL(q||p)"], klr, SEED_REL)
    d = seeds.get("ce_equals_entropy_plus_kl").exact()
    assert d["holds"] and close(d["H(p,q)"], ce, SEED_REL)
    o = seeds.get("optimal_distribution").exact()
    assert o["H(p*)"] == 0 and o["L"] == 0 and o["holds"]


def test_eps_clamp_vanishes_in_float16():
    assert np.float16(1e-8) == 0                          # below 2^-24 / 2
    assert float(np.float32(1e-8)) > 0
    assert 1e-8 < 2.0 ** -25                              # less than half float16's smallest subnormal
    with np.errstate(divide="ignore"):
        assert np.log(np.float16(0) + np.float16(1e-8)) == -np.inf
    e = seeds.get("eps_clamp_1e-8").exact()
    assert e["value"] == 0.0 and e["bfloat16"] > 0
    assert seeds.get("eps_clamp_1e-8").verdict == seeds.INCONSISTENT


def test_logits_memory_figures():
    b32 = 16 * 1024 * 50_000 * 4
    assert b32 == 3_276_800_000
    gib = Fraction(b32, 2 ** 30)
    assert round(gib, 2) == Fraction(305, 100)            # 3.0518 GiB: printed 3.06 is wrong
    assert round(Fraction(b32, 10 ** 9), 2) == Fraction(328, 100)
    gpt2 = Fraction(16 * 1024 * 50_257 * 4, 2 ** 30)
    assert round(gpt2, 2) == Fraction(307, 100)           # 3.0674 -> 3.07; 3.06 is the truncation
    assert int(gpt2 * 100) == 306
    # no common vocab x 16,384 tokens gives 3.06 in GB or GiB
    for v in (30_000, 30_522, 32_000, 50_000, 50_257, 50_304):
        for unit in (10 ** 9, 2 ** 30):
            assert round(Fraction(16_384 * v * 4, unit), 2) != Fraction(306, 100)
    c = seeds.get("logits_fp32_memory")
    assert c.verdict == seeds.WRONG and c.main_value() == gib
    fp16 = Fraction(b32 // 2, 2 ** 30)
    assert round(fp16, 2) == Fraction(153, 100)
    assert seeds.get("logits_fp16_memory").main_value() == fp16
    assert seeds.get("logits_fp16_memory").verdict == seeds.CORRECT
    assert seeds.get("logits_savings").main_value() == gib - fp16
    assert seeds.get("logits_savings").verdict == seeds.CORRECT
    assert seeds.get("logits_savings_pct").main_value() == 50


def test_batch_budget():
    assert Fraction(25, 100) * 40_000 == 10_000 == seeds.get("memory_budget").main_value()
    per_seq32 = 1024 * 50_000 * 4
    assert 10 ** 10 // per_seq32 == 48 == seeds.get("max_batch_fp32").main_value()
    assert 10 ** 10 // (1024 * 50_257 * 4) == 48
    assert 10 ** 10 // (1024 * 50_000 * 2) == 97 == seeds.get("max_batch_fp16").main_value()
    assert seeds.get("max_batch_fp32").verdict == seeds.CORRECT


def test_sampled_softmax_figures():
    full = 32 * 512 * 100_000 * 4
    samp = 32 * 512 * 5_001 * 4
    assert full == 6_553_600_000 and samp == 327_745_536
    assert seeds.get("full_softmax_bytes").main_value() == full
    assert seeds.get("sampled_softmax_bytes").main_value() == samp
    assert round(Fraction(full, 2 ** 30), 1) == Fraction(61, 10)      # 6.1035 GiB
    assert Fraction(samp, 2 ** 20) == Fraction(5001, 16)              # 312.5625 MiB exactly
    assert round(Fraction(samp, 2 ** 20)) == 313                      # not 312
    assert seeds.get("sampled_softmax_mb").verdict == seeds.WRONG
    assert seeds.get("sampled_softmax_mb").main_value() == Fraction(5001, 16)
    assert round(Fraction(100_000, 5_001)) == 20
    assert seeds.get("sampled_speedup").main_value() == Fraction(100_000, 5_001)
    assert seeds.get("memory_reduction").verdict == seeds.CORRECT


def test_memory_bound_factor():
    r = Fraction(267, 1000) / Fraction(192, 10 ** 6)
    assert r == Fraction(11125, 8)                     # 1390.625
    assert round(r, -1) == 1390
    assert seeds.get("memory_bound_factor").main_value() == r
    assert seeds.get("memory_bound_factor").verdict == seeds.CORRECT
    # reconstructed premises: 240,000 B at 900 GB/s; 60,000 ops at 312 TFLOP/s
    assert round(Fraction(240_000, 900 * 10 ** 9) * 10 ** 6, 3) == Fraction(267, 1000)
    assert round(Fraction(60_000, 312 * 10 ** 12) * 10 ** 6, 6) == Fraction(192, 10 ** 6)
    ct = seeds.get("compute_time")
    assert ct.verdict == seeds.INCONSISTENT
    assert seeds.rounds_to(ct.main_value(), "0.000192")
    assert round(ct.exact()["memory_bound_factor_at_19.5_TFLOPs"]) == 87


def test_fp16_speedup_is_left_to_the_benchmark():
    c = seeds.get("fp16_softmax_speedup")
    assert c.verdict == seeds.MEASURED and c.measured == {}
    seeds.set_measurement("fp16_softmax_speedup", speedup=1.5, device="test")
    try:
        row = [r for r in seeds.errata_table() if r["id"] == "fp16_softmax_speedup"][0]
        assert "speedup=1.5" in row["exact"]
    finally:
        c.measured.clear()
    with pytest.raises(ValueError):
        seeds.set_measurement("softmax_class3", x=1)


def test_temperature_gradient_orders():
    # d KL(pt || softmax(zs/T)) / dzs = (ps - pt) / T; for large T, ps - pt ~ (d - mean d) / (n T)
    zs = [D(1), D("-0.5"), D(2), D("0.25")]
    zt = [D("0.5"), D("1.5"), D(-1), D(0)]
    T = D(10) ** 6
    def sm(z):
        e = [mp.exp(v / T) for v in z]
        s = mp.fsum(e)
        return [x / s for x in e]
    g = [(a - b) / T for a, b in zip(sm(zs), sm(zt))]
    d = [a - b for a, b in zip(zs, zt)]
    md = mp.fsum(d) / 4
    lim = [(di - md) / 4 for di in d]                 # T^2 g -> (d - mean d) / n
    assert all(abs(T * T * gi - li) < D(10) ** -5 for gi, li in zip(g, lim))
    assert seeds.get("distillation_T2").exact()["order_without_T2"] == -2
    assert seeds.get("distillation_T2").verdict == seeds.WRONG
    assert seeds.get("softmax_T_gradient").exact()["order"] == -1
    assert seeds.get("softmax_T_gradient").verdict == seeds.CORRECT


# ---------------------------------------------------------------- slides (001)


def test_uniform_and_nat():
    assert seeds.get("uniform256_bits").main_value() == 8
    v = 1 / mp.ln2
    assert round_half_even(v, 2) == Fraction(144, 100)
    assert close(seeds.get("nat_in_bits").main_value(), v)


def test_gaussian_entropy_formula():
    s, d = D("0.01"), 3
    h = D(d) / 2 * mp.log(2 * mp.pi * mp.e * s * s)
    g = seeds.get("gaussian_noise_entropy").exact()
    assert close(g["value"], h, mpmath.mpf(2) ** -60) and g["holds"]


def test_laplace_scale_inconsistent():
    lap = seeds.get("laplace_noise_nll").exact()
    assert lap["value"] == 2 and lap["slide_expression"] == D("0.5")
    assert seeds.get("laplace_noise_nll").verdict == seeds.INCONSISTENT


# ---------------------------------------------------------------- notebook (002)


def test_notebook_self_information_and_entropies():
    assert seeds.get("self_information").main_value() == 6
    p = [D("0.1"), D("0.5"), D("0.1"), D("0.3")]
    h = -mp.fsum(v * mp.log(v) for v in p) / mp.ln2
    assert round_half_even(h, 4) == Fraction(16855, 10000)
    assert close(seeds.get("notebook_entropy").main_value(), h, SEED_REL)
    assert close(seeds.get("notebook_joint_entropy").main_value(), h, SEED_REL)
    assert seeds.get("notebook_joint_entropy").verdict == seeds.CORRECT


def H2(*ps):
    return -mp.fsum(p * mp.log(p) for p in ps if p) / mp.ln2


def test_notebook_conditional_entropy():
    # the code: -sum_ij P_ij log2(P_ij / p_x[j]) with p_x = [0.2, 0.8] broadcast over columns
    code = -(D("0.1") * mp.log(D("0.1") / D("0.2")) + D("0.5") * mp.log(D("0.5") / D("0.8"))
             + D("0.2") * mp.log(D("0.2") / D("0.2")) + D("0.3") * mp.log(D("0.3") / D("0.8"))) / mp.ln2
    assert round_half_even(code, 4) == Fraction(8635, 10000)
    c = seeds.get("notebook_conditional_entropy")
    ex = c.exact()
    assert close(ex["value"], code)
    assert c.verdict == seeds.INCONSISTENT
    assert close(ex["table_sum"], D("1.1"), mpmath.mpf(2) ** -150)
    # true H(Y|X) of the normalised table: (6/11) H(1/6, 5/6) + (5/11) H(2/5, 3/5)
    true = D(6) / 11 * H2(D(1) / 6, D(5) / 6) + D(5) / 11 * H2(D(2) / 5, D(3) / 5)
    assert round_half_even(true, 4) == Fraction(7959, 10000)
    assert close(ex["true_H_Y_given_X_normalised_bits"], true, mpmath.mpf(2) ** -45)
    assert close(ex["H_Y_given_X_unnormalised_rows_bits"], D("1.1") * true, mpmath.mpf(2) ** -45)
    assert not seeds.rounds_to(true, "0.8635")


def test_notebook_mutual_information():
    P = [[D("0.1"), D("0.5")], [D("0.1"), D("0.3")]]
    # p_x * p_y with shapes (2,) and (1, 2): elementwise [0.2 * 0.75, 0.8 * 0.25] = [0.15, 0.2]
    den = [D("0.15"), D("0.2")]
    code = mp.fsum(P[i][j] * mp.log(P[i][j] / den[j]) for i in range(2) for j in range(2)) / mp.ln2
    assert round_half_even(code, 4) == Fraction(7195, 10000)
    px, py = [D("0.6"), D("0.4")], [D("0.2"), D("0.8")]
    true = mp.fsum(P[i][j] * mp.log(P[i][j] / (px[i] * py[j])) for i in range(2) for j in range(2)) / mp.ln2
    assert round_half_even(true, 4) == Fraction(74, 10000)
    c = seeds.get("notebook_mutual_information")
    ex = c.exact()
    assert c.verdict == seeds.INCONSISTENT
    assert close(ex["value"], code)
    assert close(ex["true_I_XY_bits"], true, mpmath.mpf(2) ** -40)


@pytest.mark.parametrize("cid", ["notebook_cross_entropy", "notebook_nll_loss"])
def test_notebook_cross_entropy(cid):
    v = -(mp.log(D("0.3")) + mp.log(D("0.5"))) / 2
    assert round_half_even(v, 4) == Fraction(9486, 10000)
    c = seeds.get(cid)
    assert c.verdict == seeds.CORRECT and close(c.main_value(), v, SEED_REL)


def test_notebook_torch_values_reproduce():
    torch = pytest.importorskip("torch")
    preds = torch.tensor([[0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])
    labels = torch.tensor([0, 2])
    manual = (-torch.log(preds[range(2), labels])).mean()
    nll = torch.nn.NLLLoss()(torch.log(preds), labels)
    assert f"{manual.item():.4f}" == f"{nll.item():.4f}" == "0.9486"
    p = torch.tensor([0.1, 0.5, 0.1, 0.3])
    assert f"{(-(p * torch.log2(p))).sum().item():.4f}" == "1.6855"


KL_PRINTED = {"kl_pq1": 8582.0341796875, "kl_pq2": 8828.3095703125, "kl_similar_pct": 2.8290698237936858,
              "kl_q2p": 14130.125, "kl_differ_pct": 46.18621024399691}


@pytest.mark.parametrize("cid", list(KL_PRINTED))
def test_notebook_kl_examples_are_not_kl(cid):
    torch = pytest.importorskip("torch")
    if not torch.__version__.startswith("2.13"):
        pytest.skip(f"the printed values were reproduced with torch 2.13 CPU; this is {torch.__version__}")
    c = seeds.get(cid)
    ex = c.exact()
    assert c.verdict == seeds.NOT_A_QUANTITY
    assert ex["value"] == KL_PRINTED[cid]            # reproduced bit for bit (torch CPU)
    assert all(n > 0 for n in ex["nan_terms_dropped"])
    assert all(n > 0 for n in ex["negative_samples"])
    assert ex["signed_sums"][1] < 0                  # .abs() hid a negative "KL"
    # the true KL between N(a, 1) and N(b, 1) is (a - b)^2 / 2 nats, symmetric
    assert close(ex["true_gaussian_kl_bits"], D(1) / 2 / mp.ln2, mpmath.mpf(2) ** -150)


def test_kl_examples_skip_cleanly_without_torch(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "torch":
            raise ImportError("no torch (simulated)")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(seeds.Unavailable):
        seeds.notebook_kl_examples()


def test_errata_table_rows():
    rows = seeds.errata_table()
    assert len(rows) == len(seeds.CLAIMS)
    for r in rows:
        assert set(r) >= {"claim", "source", "printed", "exact", "verdict", "note"}
    by = {r["id"]: r for r in rows}
    assert by["softmax_class3"]["verdict"] == "wrong" and by["softmax_class3"]["exact"].startswith("56.05")
    assert by["sampled_softmax_mb"]["exact"] == "312.563"

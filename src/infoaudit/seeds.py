"""Every claim and worked example of the seed documents, kept as data, with its exact value.

The three seed documents (``docs/seeds/`` in the repository: a textbook chapter ``000``, lecture slides ``001``
and a notebook of naive PyTorch code ``002``) print numbers. Each is a :class:`Claim` here: where
it comes from (file + short quote), what it claims, the value as printed, a callable that
computes the exact value (through :mod:`infoaudit.reference` for quantities of the registry,
or with exact ``fractions`` / high-precision mpmath arithmetic), and a verdict:

* ``correct``        the printed value equals the exact value rounded to the printed digits;
* ``wrong``          it does not (the exact value is recorded);
* ``inconsistent``   the printed number is what the seed's own code/arithmetic gives, but the
                     premises contradict the claim (an unnormalised table, mismatched marginals,
                     a hardware figure that does not apply, ...); the note explains;
* ``not a quantity`` the printed number does not measure what it is called (e.g. a "KL" of
                     normal samples);
* ``unprinted``      the seed shows the computation but prints no value; the exact value is
                     recorded (and what the seed's code would print);
* ``measured``       a performance claim, decided by ``infoaudit bench`` (``Claim.measured``).

Decimal inputs of the seeds (0.1, 2.1, ...) reach the reference as their float64 roundings; the
difference (~1e-17 relative) cannot change any printed digit, and the tests recompute the
decisive values from the exact decimals.

``errata_table()`` gives the rows for the report.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Callable

import mpmath
import numpy as np
from mpmath import mp

CORRECT = "correct"
WRONG = "wrong"
INCONSISTENT = "inconsistent"
NOT_A_QUANTITY = "not a quantity"
UNPRINTED = "unprinted"
MEASURED = "measured by `infoaudit bench`"
VERDICTS = (CORRECT, WRONG, INCONSISTENT, NOT_A_QUANTITY, UNPRINTED, MEASURED)

TEXTBOOK = "000_b1f28797c10c8f48.txt"   # textbook chapter "Probability and Information Theory"
SLIDES = "001_93dbe8d90c4324b2.txt"     # TTIC 31230 slides "Some Information Theory"
NOTEBOOK = "002_cb957788198db5a6.txt"   # notebook "Information Theory" (naive PyTorch)

# How ``printed`` is compared with the exact value:
DECIMALS = "decimals"   # round the exact value to as many decimals as printed (half-even)
SIG3 = "sig3"           # three significant figures ("1,390" = 1.39e3)
EXACT = "exact"         # the printed number must equal the exact value
FLOAT = "float"         # printed is a Python float repr; must equal the computed float bit for bit
NONE = "none"           # nothing to compare (no printed value, or a non-numeric claim)

WORK_DPS = 50


class Unavailable(RuntimeError):
    """The claim needs a framework that is not installed (e.g. torch); the message says which."""


@dataclass
class Claim:
    id: str
    source: str
    quote: str
    claim: str
    printed: str | None
    compute: Callable[[], object]
    verdict: str
    compare: str = DECIMALS
    unit: str = ""
    note: str = ""
    requires: tuple = ()
    measured: dict = field(default_factory=dict)  # filled by `infoaudit bench` (speedup claims)

    def exact(self):
        """The exact value (mpf / Fraction / int, or a dict for multi-part claims); cached."""
        return _exact_cached(self.id)

    def main_value(self):
        """The number the printed value is compared with (the ``value`` entry of a dict)."""
        v = self.exact()
        return v["value"] if isinstance(v, dict) else v


# ---------------------------------------------------------------- exact helpers


def _ref(name, *args):
    """Exact values (as mpf = hi + lo, ~106 bits) of a registered quantity, flattened."""
    from . import reference

    ex = reference.evaluate(name, *args)
    with mp.workprec(200):
        return [mpmath.mpf(h) + mpmath.mpf(lo) for h, lo in zip(ex.hi.ravel().tolist(), ex.lo.ravel().tolist())]


def _d(s):
    """An exact decimal as mpf at the working precision."""
    return mpmath.mpf(s)


def _log2(x):
    return mp.log(x) / mp.ln2


def to_fraction(x) -> Fraction:
    """Exact Fraction of an int, Fraction, float or (finite) mpf."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (int, np.integer)):
        return Fraction(int(x))
    if isinstance(x, float):
        return Fraction(x)
    x = mpmath.mpf(x)
    if not mpmath.isfinite(x):
        raise ValueError(f"not finite: {x}")
    sign, man, exp, _ = x._mpf_   # value = (-1)^sign * man * 2^exp
    man, exp = (-1) ** sign * int(man), int(exp)
    return Fraction(man * 2 ** exp) if exp >= 0 else Fraction(man, 2 ** -exp)


def parse_printed(s: str) -> Fraction:
    return Fraction(s.replace(",", "").replace("_", ""))


def printed_decimals(s: str) -> int:
    s = s.replace(",", "")
    return len(s.split(".")[1]) if "." in s else 0


def round_to(x, decimals: int) -> Fraction:
    """Exact x rounded half-even to ``decimals`` decimal places (negative: tens, hundreds...)."""
    return Fraction(round(to_fraction(x), decimals))


def sig_decimals(x, sig: int) -> int:
    f = abs(to_fraction(x))
    if f == 0:
        return sig
    e = 0
    while Fraction(10) ** (e + 1) <= f:
        e += 1
    while Fraction(10) ** e > f:
        e -= 1
    return sig - 1 - e


def rounds_to(exact, printed: str, mode: str = DECIMALS) -> bool:
    """True when the printed number is the exact value rounded to the printed digits."""
    p = parse_printed(printed)
    if mode == DECIMALS:
        return round_to(exact, printed_decimals(printed)) == p
    if mode == SIG3:
        return round_to(exact, sig_decimals(exact, 3)) == p
    if mode == EXACT:
        return to_fraction(exact) == p
    if mode == FLOAT:
        return float(exact) == float(printed)
    raise ValueError(f"no numeric comparison in mode {mode!r}")


def derived_verdict(c: Claim) -> str:
    """Verdict recomputed from printed vs exact for the numeric claims (the recorded one otherwise)."""
    if c.verdict in (CORRECT, WRONG) and c.compare in (DECIMALS, SIG3, EXACT, FLOAT) and c.printed is not None:
        return CORRECT if rounds_to(c.main_value(), c.printed, c.compare) else WRONG
    return c.verdict


# ---------------------------------------------------------------- exact computations

SOFTMAX_LOGITS = [2.1, 0.5, -1.2, 3.4, 0.8, -0.5, 1.1, -2.0, 0.3, 1.8]


def _softmax_class3():
    p = _ref("softmax", np.array([SOFTMAX_LOGITS]))
    with mp.workdps(WORK_DPS):
        return {"value": 100 * p[3], "argmax": int(np.argmax(SOFTMAX_LOGITS)),
                "probabilities": p}


def _coin():
    return _ref("binary_entropy_bits", np.array([0.9]))[0]


def _ce_onehot(q, label):
    t = np.zeros((1, len(q)))
    t[0, label] = 1.0
    return lambda: _ref("cross_entropy_probs", t, np.array([q]))[0]


def _bce(p):
    return lambda: _ref("binary_cross_entropy", np.array([p]), np.array([1.0]))[0]


def _torch_ce_example():
    v = _ref("cross_entropy", np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 1.0]]), np.array([0, 1]))
    with mp.workdps(WORK_DPS):
        mean = (v[0] + v[1]) / 2
    return {"value": mean, "per_example": v, "prints": f"Loss: {float(mean):.4f}"}


def _self_info():
    return _ref("self_information_bits", np.array([1 / 64]))[0]


def _entropy_bits():
    return _ref("entropy_bits", np.array([[0.1, 0.5, 0.1, 0.3]]))[0]


def _joint_entropy():
    v = _ref("joint_entropy", np.array([[[0.1, 0.5], [0.1, 0.3]]]))[0]
    with mp.workdps(WORK_DPS):
        return v / mp.ln2


def _conditional_entropy():
    """What the notebook's code computes, and the true H(Y|X) of the normalised table."""
    with mp.workdps(WORK_DPS):
        P = [[_d("0.1"), _d("0.5")], [_d("0.2"), _d("0.3")]]
        px_given = [_d("0.2"), _d("0.8")]
        # p_xy / p_x broadcasts p_x along the LAST axis: P[i][j] / p_x[j]
        code = -mp.fsum(P[i][j] * _log2(P[i][j] / px_given[j]) for i in range(2) for j in range(2))
        total = mp.fsum(v for row in P for v in row)
        rows = [mp.fsum(r) for r in P]
    tab = np.array([[[0.1, 0.5], [0.2, 0.3]]])
    true_norm = _ref("conditional_entropy", tab / 1.1)[0]
    as_is = _ref("conditional_entropy", tab)[0]
    with mp.workdps(WORK_DPS):
        return {"value": code, "table_sum": total, "row_marginals": rows,
                "true_H_Y_given_X_normalised_bits": true_norm / mp.ln2,
                "H_Y_given_X_unnormalised_rows_bits": as_is / mp.ln2}


def _mutual_information():
    with mp.workdps(WORK_DPS):
        P = [[_d("0.1"), _d("0.5")], [_d("0.1"), _d("0.3")]]
        px = [_d("0.2"), _d("0.8")]
        py = [_d("0.75"), _d("0.25")]
        # p_x * p_y: shapes (2,) * (1, 2) -> (1, 2), elementwise: [0.2 * 0.75, 0.8 * 0.25]
        denom = [px[j] * py[j] for j in range(2)]
        code = mp.fsum(P[i][j] * _log2(P[i][j] / denom[j]) for i in range(2) for j in range(2))
        outer = mp.fsum(P[i][j] * _log2(P[i][j] / (px[i] * py[j])) for i in range(2) for j in range(2))
        rows = [mp.fsum(r) for r in P]
        cols = [P[0][j] + P[1][j] for j in range(2)]
    true = _ref("mutual_information", np.array([[[0.1, 0.5], [0.1, 0.3]]]))[0]
    with mp.workdps(WORK_DPS):
        return {"value": code, "outer_product_with_given_marginals_bits": outer,
                "true_marginals_x": rows, "true_marginals_y": cols,
                "true_I_XY_bits": true / mp.ln2}


PREDS = np.array([[0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])
PRED_LABELS = [0, 2]


def _notebook_ce():
    t = np.zeros_like(PREDS)
    t[np.arange(2), PRED_LABELS] = 1.0
    v = _ref("cross_entropy_probs", t, PREDS)
    with mp.workdps(WORK_DPS):
        return (v[0] + v[1]) / 2


def _torch():
    try:
        import torch
    except ImportError as e:
        raise Unavailable(f"torch is not installed: {e}") from None
    return torch


def notebook_kl_examples():
    """Re-run the notebook's KL cell (torch.manual_seed(1), CPU) and return its five numbers.

    Also returns what the code actually sums: the number of NaN terms dropped by ``nansum``,
    the sign hidden by ``.abs()``.
    """
    torch = _torch()
    torch.manual_seed(1)
    n = 10000
    p = torch.normal(0, 1, (n,))
    q1 = torch.normal(-1, 1, (n,))
    q2 = torch.normal(1, 1, (n,))
    p, q1, q2 = torch.sort(p)[0], torch.sort(q1)[0], torch.sort(q2)[0]

    def kl(a, b):
        t = a * torch.log2(a / b)
        keep = ~torch.isnan(t)
        s = t[keep].sum()
        return s.abs().item(), s.item(), int((~keep).sum()), int((a < 0).sum())

    kl_pq1, raw1, nan1, neg1 = kl(p, q1)
    kl_pq2, raw2, nan2, neg2 = kl(p, q2)
    kl_q2p, raw3, nan3, neg3 = kl(q2, p)
    similar = abs(kl_pq1 - kl_pq2) / ((kl_pq1 + kl_pq2) / 2) * 100
    differ = abs(kl_q2p - kl_pq2) / ((kl_q2p + kl_pq2) / 2) * 100
    return {"kl_pq1": kl_pq1, "kl_pq2": kl_pq2, "similar_percentage": similar, "kl_q2p": kl_q2p,
            "differ_percentage": differ, "signed_sums": (raw1, raw2, raw3),
            "nan_terms_dropped": (nan1, nan2, nan3), "negative_samples": (neg1, neg2, neg3),
            "torch_version": torch.__version__}


def _kl_part(key):
    def f():
        r = notebook_kl_examples()
        with mp.workdps(WORK_DPS):
            true_bits = mpmath.mpf(1) / 2 / mp.ln2  # KL(N(a,1) || N(b,1)) = (a-b)^2 / 2 nats
        return {"value": r[key], "true_gaussian_kl_bits": true_bits, "true_percentage": 0,
                "signed_sums": r["signed_sums"], "nan_terms_dropped": r["nan_terms_dropped"],
                "negative_samples": r["negative_samples"]}
    return f


def _uniform256():
    return _ref("entropy_bits", np.full((1, 256), 1 / 256))[0]


def _nat_in_bits():
    with mp.workdps(WORK_DPS):
        return 1 / mp.ln2


# memory figures (the seed omits the configuration; see the notes)
MEM_B, MEM_N, MEM_V = 16, 1024, 50_000          # assumed: batch 16 x seq 1024 x vocab 50,000
GPT2_V = 50_257
GIB, MIB = 2 ** 30, 2 ** 20


def _fp32_logits():
    b = MEM_B * MEM_N * MEM_V * 4
    return {"value": Fraction(b, GIB), "bytes": b, "GB_decimal": Fraction(b, 10 ** 9),
            "GiB_with_vocab_50257": Fraction(MEM_B * MEM_N * GPT2_V * 4, GIB)}


def _fp16_logits():
    b = MEM_B * MEM_N * MEM_V * 2
    return {"value": Fraction(b, GIB), "bytes": b,
            "GiB_with_vocab_50257": Fraction(MEM_B * MEM_N * GPT2_V * 2, GIB)}


def _savings():
    return Fraction(MEM_B * MEM_N * MEM_V * 2, GIB)


def _savings_pct():
    return Fraction(100) * (4 - 2) / 4


def _budget():
    return Fraction(25, 100) * 40_000


def _max_batch(bytes_per):
    def f():
        budget = 10_000 * 10 ** 6  # 10,000 MB, MB = 10^6 bytes
        per_seq = MEM_N * MEM_V * bytes_per
        return {"value": budget // per_seq, "ratio": Fraction(budget, per_seq),
                "with_vocab_50257": budget // (MEM_N * GPT2_V * bytes_per),
                "with_MiB": (10_000 * MIB) // per_seq}
    return f


def _full_bytes():
    return 32 * 512 * 100_000 * 4


def _full_gb():
    b = 32 * 512 * 100_000 * 4
    return {"value": Fraction(b, GIB), "GB_decimal": Fraction(b, 10 ** 9)}


def _sampled_bytes():
    return 32 * 512 * 5_001 * 4


def _sampled_mb():
    b = 32 * 512 * 5_001 * 4
    return {"value": Fraction(b, MIB), "MB_decimal": Fraction(b, 10 ** 6)}


def _speedup():
    return Fraction(100_000, 5_001)


def _mem_reduction():
    return {"value": Fraction(100_000, 5_001), "from_printed_6.1GiB_over_312MiB": Fraction(61 * 1024, 10 * 312)}


def _mem_time():
    return Fraction(30_000 * 4 * 2, 900 * 10 ** 9) * 10 ** 6  # microseconds


def _compute_time():
    return {"value": Fraction(60_000, 312 * 10 ** 12) * 10 ** 6,           # us at 312 TFLOP/s
            "at_fp32_19.5_TFLOPs_us": Fraction(60_000 * 10, 195 * 10 ** 12) * 10 ** 6,
            "memory_bound_factor_at_19.5_TFLOPs": Fraction(30_000 * 4 * 2, 900 * 10 ** 9)
            / Fraction(60_000 * 10, 195 * 10 ** 12)}


def _bound_factor():
    return Fraction(267, 1000) / Fraction(192, 10 ** 6)


def _kl_properties():
    p = np.array([[0.2, 0.6, 0.2]])
    q = np.array([[0.7, 0.2, 0.1]])
    pq = _ref("kl_divergence", p, q)[0]
    qp = _ref("kl_divergence", q, p)[0]
    pp = _ref("kl_divergence", p, p)[0]
    return {"KL(p||q)": pq, "KL(q||p)": qp, "KL(p||p)": pp,
            "holds": bool(pq > 0 and qp > 0 and pp == 0 and pq != qp)}


def _ce_decomposition():
    p = np.array([[0.2, 0.6, 0.2]])
    q = np.array([[0.7, 0.2, 0.1]])
    ce = _ref("cross_entropy_probs", p, q)[0]
    h = _ref("entropy", p)[0]
    kl = _ref("kl_divergence", p, q)[0]
    with mp.workprec(200):
        gap = abs(ce - (h + kl))
    return {"H(p,q)": ce, "H(p)": h, "KL(p||q)": kl, "gap": gap,
            "holds": bool(gap <= mpmath.ldexp(abs(ce), -100))}


def _optimal():
    h = _ref("entropy", np.array([[0.0, 1.0, 0.0]]))[0]
    ce = _ref("cross_entropy_probs", np.array([[0.0, 1.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))[0]
    return {"value": h, "H(p*)": h, "L": ce, "holds": bool(h == 0 and ce == 0)}


def _distillation_gradient_order():
    """Exponent a in |dL/dzs| ~ T^a for L = KL(softmax(zt/T) || softmax(zs/T)) (no T^2 factor).

    dL/dzs_i = (ps_i - pt_i) / T exactly; for large T, ps - pt = O(1/T), so the gradient is
    O(1/T^2) and T^2 L has an O(1) gradient (Hinton et al. 2015). Fitted between T = 1e3, 1e4.
    """
    zs = [mpmath.mpf(v) for v in (1.0, -0.5, 2.0, 0.25)]
    zt = [mpmath.mpf(v) for v in (0.5, 1.5, -1.0, 0.0)]
    with mp.workdps(WORK_DPS):
        def grad_norm(T):
            def sm(z):
                e = [mp.exp(v / T) for v in z]
                s = mp.fsum(e)
                return [x / s for x in e]
            ps, pt = sm(zs), sm(zt)
            return mp.sqrt(mp.fsum(((a - b) / T) ** 2 for a, b in zip(ps, pt)))
        g3, g4 = grad_norm(mpmath.mpf(10) ** 3), grad_norm(mpmath.mpf(10) ** 4)
        slope = (mp.log(g4) - mp.log(g3)) / mp.log(10)
        return {"value": slope, "order_without_T2": int(mpmath.nint(slope)),
                "order_with_T2": int(mpmath.nint(slope)) + 2, "grad_T1e3": g3, "grad_T1e4": g4}


def _softmax_T_jacobian_order():
    """Exponent a in ||d softmax(z/T) / dz|| ~ T^a for large T (claim: O(1/T))."""
    z = [mpmath.mpf(v) for v in (1.0, -0.5, 2.0, 0.25)]
    with mp.workdps(WORK_DPS):
        def jnorm(T):
            e = [mp.exp(v / T) for v in z]
            s = mp.fsum(e)
            p = [x / s for x in e]
            return mp.sqrt(mp.fsum(((p[i] * ((i == j) - p[j])) / T) ** 2 for i in range(4) for j in range(4)))
        slope = (mp.log(jnorm(mpmath.mpf(10) ** 4)) - mp.log(jnorm(mpmath.mpf(10) ** 3))) / mp.log(10)
        return {"value": slope, "order": int(mpmath.nint(slope))}


def _gaussian_entropy():
    """d(ln s + ln sqrt(2 pi) + 1/2) vs the differential entropy of N(0, s^2 I_d) by quadrature."""
    d, s = 3, mpmath.mpf("0.01")
    with mp.workdps(30):
        slide = d * (mp.log(s) + mp.log(mp.sqrt(2 * mp.pi)) + mpmath.mpf(1) / 2)

        def pdf(x):
            return mp.exp(-x * x / (2 * s * s)) / (s * mp.sqrt(2 * mp.pi))
        h1 = mp.quad(lambda x: -pdf(x) * mp.log(pdf(x)), [-40 * s, -s, 0, s, 40 * s])
        return {"value": slide, "quadrature": d * h1, "holds": bool(abs(slide - d * h1) < mpmath.mpf(10) ** -20)}


def _laplace():
    """-ln of the Laplace density (lam/2) exp(-lam |e|) at |e| = 1, lam = 2, vs the slide's |e|/lam."""
    lam, e = mpmath.mpf(2), mpmath.mpf(1)
    with mp.workdps(WORK_DPS):
        nll = lam * e - mp.log(lam / 2)
    return {"value": nll, "slide_expression": e / lam, "correct_expression": lam * e}


def _eps_clamp():
    from .dtypes import round_mpf
    return {"value": round_mpf(mpmath.mpf("1e-8"), "float16"),
            "float16_smallest_subnormal": 2.0 ** -24,
            "bfloat16": round_mpf(mpmath.mpf("1e-8"), "bfloat16")}


def _no_compute():
    return None


def _sampled_bias():
    """The sampled-softmax bias, measured (:mod:`infoaudit.sampled_bias`, default replicates)."""
    from . import sampled_bias

    res = sampled_bias.measure("default")
    return {"value": sampled_bias.summary(res), "verdicts": sampled_bias.verdict(res), "rows": res["rows"],
            "config": res["config"], "table": sampled_bias.table(res)}


# ---------------------------------------------------------------- the claims

CLAIMS: list[Claim] = [
    # ---- textbook chapter (000)
    Claim("softmax_class3", TEXTBOOK,
          "For logits z = [2.1, 0.5, -1.2, 3.4, 0.8, -0.5, 1.1, -2.0, 0.3, 1.8], the model predicts "
          "class 3 with highest probability ≈ 68.9%",
          "softmax(z)[3] of the 10 logits, in percent", "68.9", _softmax_class3, WRONG, unit="%",
          note="class 3 (0-based, z = 3.4) is the argmax, but softmax(z)[3] = 56.06% (68.9% would "
               "need z_3 ≈ 3.95 with the other nine logits unchanged)."),
    Claim("coin_entropy", TEXTBOOK, "Biased coin: P(heads) = 0.9, P(tails) = 0.1",
          "H(0.9, 0.1) in bits (the seed elides the formula; 0.469 is the design's worked value, docs/design.md)",
          "0.469", _coin, CORRECT, unit="bits"),
    Claim("ce_0.6", TEXTBOOK, "p̂ = [0.2, 0.6, 0.2] ⇒ L = −log(0.6) ≈ 0.511",
          "cross-entropy of the one-hot target class 1", "0.511", _ce_onehot([0.2, 0.6, 0.2], 1), CORRECT,
          unit="nats"),
    Claim("ce_0.8", TEXTBOOK, "p̂ = [0.1, 0.8, 0.1] ⇒ L = −log(0.8) ≈ 0.223 (better)",
          "cross-entropy of the one-hot target class 1", "0.223", _ce_onehot([0.1, 0.8, 0.1], 1), CORRECT,
          unit="nats"),
    Claim("ce_0.2", TEXTBOOK, "p̂ = [0.7, 0.2, 0.1] ⇒ L = −log(0.2) ≈ 1.609 (bad)",
          "cross-entropy of the one-hot target class 1", "1.609", _ce_onehot([0.7, 0.2, 0.1], 1), CORRECT,
          unit="nats"),
    Claim("torch_cross_entropy_loss", TEXTBOOK,
          "logits = [[2.0, 1.0, 0.1], [0.5, 2.5, 1.0]]; labels = [0, 1]; nn.CrossEntropyLoss()",
          "mean cross-entropy of the two rows (the seed prints no value)", None, _torch_ce_example,
          UNPRINTED, compare=NONE, unit="nats",
          note="per example 0.41703 and 0.30636; the seed's print would show 'Loss: 0.3617'."),
    Claim("optimal_distribution", TEXTBOOK,
          "This gives entropy H(p*) = 0 (no uncertainty) and cross-entropy loss L = −log 1 = 0",
          "entropy of a one-hot distribution and its cross-entropy with itself are exactly 0", "0",
          _optimal, CORRECT, compare=EXACT),
    Claim("ce_equals_entropy_plus_kl", TEXTBOOK,
          "minimizing H(p, q) is equivalent to minimizing D_KL(p ‖ q)",
          "H(p, q) = H(p) + KL(p || q) (checked exactly on p = [0.2, 0.6, 0.2], q = [0.7, 0.2, 0.1])",
          None, _ce_decomposition, CORRECT, compare=NONE),
    Claim("kl_properties", TEXTBOOK,
          "D_KL(p ‖ q) ≥ 0 with equality iff p = q, (2) Not symmetric",
          "KL >= 0, KL(p||p) = 0 exactly, KL(p||q) != KL(q||p) (checked exactly on an example)",
          None, _kl_properties, CORRECT, compare=NONE),
    Claim("eps_clamp_1e-8", TEXTBOOK,
          "implementations typically add a small epsilon (ε ≈ 10^−8) to probabilities before computing logarithms",
          "adding eps = 1e-8 keeps log q finite", "1e-8", _eps_clamp, INCONSISTENT, compare=NONE,
          note="holds in float32/float64/bfloat16, but 1e-8 is below float16's smallest subnormal "
               "(2^-24 ≈ 5.96e-8): it rounds to 0 in float16, so log(0 + eps) is still -inf there; "
               "the clamp also biases every KL/CE term (the gate rejects epsilon clamps)."),
    Claim("bce_0.99", TEXTBOOK, "p̂ = 0.99: L = −log 0.99 ≈ 0.010 (very confident, correct)",
          "binary cross-entropy, target 1", "0.010", _bce(0.99), CORRECT, unit="nats"),
    Claim("bce_0.2", TEXTBOOK, "p̂ = 0.2: L = −log 0.2 ≈ 1.609 (low confidence, incorrect)",
          "binary cross-entropy, target 1", "1.609", _bce(0.2), CORRECT, unit="nats"),
    Claim("logits_fp32_memory", TEXTBOOK, "Savings: 3.06 − 1.53 = 1.53 GB (50% reduction)",
          "FP32 logits memory; configuration not stated -- assumed batch 16 x seq 1024 x vocab "
          "50,000 x 4 B = 3,276,800,000 B, GB read as GiB", "3.06", _fp32_logits, WRONG, unit="GiB",
          note="3,276,800,000 B = 3.0518 GiB (3.28 GB decimal), not 3.06. With GPT-2's vocab 50,257: "
               "3,293,642,752 B = 3.0674 GiB -> 3.07 (3.06 is that truncated). No standard "
               "configuration (vocab 30,000/30,522/32,000/50,000/50,257/50,304 x 16,384 tokens, GB or "
               "GiB) rounds to 3.06."),
    Claim("logits_fp16_memory", TEXTBOOK, "Memory with FP16: ... 1.53 GB",
          "FP16 logits memory, same configuration, 2 B per logit", "1.53", _fp16_logits, CORRECT, unit="GiB",
          note="1,638,400,000 B = 1.5259 GiB (1.5337 GiB with vocab 50,257)."),
    Claim("logits_savings", TEXTBOOK, "Savings: 3.06 − 1.53 = 1.53 GB",
          "FP32 - FP16 logits memory", "1.53", _savings, CORRECT, unit="GiB",
          note="the exact saving (1.5259 GiB) rounds to 1.53; the printed subtraction 3.06 - 1.53 "
               "inherits the wrong 3.06."),
    Claim("logits_savings_pct", TEXTBOOK, "(50% reduction)", "(4 B - 2 B) / 4 B", "50",
          _savings_pct, CORRECT, compare=EXACT, unit="%"),
    Claim("memory_budget", TEXTBOOK, "Available memory: 0.25 × 40,000 MB = 10,000 MB",
          "25% of 40,000 MB", "10,000", _budget, CORRECT, compare=EXACT, unit="MB"),
    Claim("max_batch_fp32", TEXTBOOK, "With FP32, maximum batch size would be only 48 sequences.",
          "floor(10,000 MB / (1024 x 50,000 x 4 B)), MB = 10^6 B", "48", _max_batch(4), CORRECT,
          compare=EXACT, unit="sequences",
          note="10^10 / 204,800,000 = 48.83 -> 48 (48 also with vocab 50,257; 51 if MB meant MiB)."),
    Claim("max_batch_fp16", TEXTBOOK, "For FP16 logits:",
          "floor(10,000 MB / (1024 x 50,000 x 2 B)) (the seed elides the number)", None, _max_batch(2),
          UNPRINTED, compare=NONE, unit="sequences", note="97 sequences (97 with vocab 50,257 too)."),
    Claim("sampled_speedup", TEXTBOOK, "Speedup: 100,000 / 5,001 ≈ 20×",
          "full vs sampled softmax operations per token", "20", _speedup, CORRECT, unit="x",
          note="19.996"),
    Claim("sampled_speedup_measured", TEXTBOOK, "Speedup: 100,000 / 5,001 ≈ 20×",
          "measured time of the full softmax cross-entropy / the sampled one at V = 100,000, K = 5,000",
          "20", _no_compute, MEASURED, compare=NONE, unit="x",
          note="decided by `infoaudit bench` (its seed section: torch CPU and NumPy, side by side in one run)."),
    Claim("sampled_bias", TEXTBOOK,
          "Bias decreases as $K$ increases, but never reaches zero",
          "E[sampled loss] and E[sampled gradient] vs the full cross-entropy and its gradient, V = 100,000 "
          "Zipf model and unigram proposal, K = 10 ... 10,000 (log_q = log(K q), accidental hits removed); "
          "negligible = relative loss bias <= 1% and ||E g_K - g|| / ||g|| <= 1%",
          None, _sampled_bias, WRONG, compare=NONE,
          note="seeded Monte Carlo (64 draws per K; float64; standard errors stated) against the exact full "
               "loss: the sampled loss *value* is no estimate of the cross-entropy (E[L_K] -> "
               "log(1 + (1 - p_y) K q_y / p_y): its bias grows with K for frequent targets, +280% at K = 10,000 "
               "for the top class); the gradient's bias falls below 1% by K = 1,000 for targets of model rank "
               "100 and 10,000, but for the top class (p_y = 0.094) it stays at 10.4% = p_y / (1 - p_y) for "
               "every K >= 1,000 (removing accidental hits drops the target's own share): it never reaches "
               "zero there, and is not negligible at K = 10,000."),
    Claim("full_softmax_bytes", TEXTBOOK, "32 × 512 × 100,000 × 4 = 6,553,600,000 bytes",
          "full-softmax logits bytes", "6,553,600,000", _full_bytes, CORRECT, compare=EXACT, unit="B"),
    Claim("full_softmax_gb", TEXTBOOK, "6,553,600,000 bytes ≈ 6.1 GB", "the same in GB (GiB)", "6.1",
          _full_gb, CORRECT, unit="GiB", note="6.1035 GiB (6.55 GB decimal: correct only as GiB)."),
    Claim("sampled_softmax_bytes", TEXTBOOK, "32 × 512 × 5,001 × 4 = 327,745,536 bytes",
          "sampled-softmax logits bytes", "327,745,536", _sampled_bytes, CORRECT, compare=EXACT, unit="B"),
    Claim("sampled_softmax_mb", TEXTBOOK, "327,745,536 bytes ≈ 312 MB", "the same in MB (MiB)", "312",
          _sampled_mb, WRONG, unit="MiB",
          note="327,745,536 B = 312.5625 MiB exactly, which rounds to 313 (312 is truncated); 327.7 MB decimal."),
    Claim("memory_reduction", TEXTBOOK, "Reduction: 6.1 GB / 312 MB ≈ 20×",
          "full / sampled logits memory", "20", _mem_reduction, CORRECT, unit="x", note="= 100,000 / 5,001 = 19.996"),
    Claim("memory_time", TEXTBOOK, "Memory time: 0.267 microseconds",
          "30,000 FP32 logits read + written (240,000 B) at 900 GB/s (assumed; the seed elides the formula)",
          "0.267", _mem_time, CORRECT, unit="us", note="0.26667 us under the reconstructed assumption."),
    Claim("compute_time", TEXTBOOK, "Compute time: 0.000192 microseconds",
          "30,000 exponentials + 30,000 divisions", "0.000192", _compute_time, INCONSISTENT, compare=DECIMALS,
          unit="us",
          note="equals 60,000 ops at 312 TFLOP/s (A100 FP16 tensor-core peak: 0.0001923 us), but "
               "exp and division do not run on tensor cores; at the FP32 rate (19.5 TFLOP/s) it is "
               "0.00308 us and the memory-bound factor ~87x -- still memory-bound. 900 GB/s is a "
               "V100's bandwidth, not an A100's."),
    Claim("memory_bound_factor", TEXTBOOK, "memory-bound by a factor of 0.267 / 0.000192 ≈ 1,390×",
          "ratio of the two times", "1,390", _bound_factor, CORRECT, compare=SIG3, unit="x",
          note="1390.625 (the arithmetic is right; see compute_time for the premises)."),
    Claim("fp16_softmax_speedup", TEXTBOOK,
          "reducing precision from FP32 to FP16 provides nearly 2× speedup for softmax operations",
          "FP16 softmax throughput / FP32 softmax throughput ≈ 2", "2", _no_compute, MEASURED,
          compare=NONE, unit="x", note="decided by `infoaudit bench` (fills Claim.measured)."),
    Claim("softmax_T_gradient", TEXTBOOK,
          "As T increases ... The gradient magnitude scales as O(1/T)",
          "||d softmax(z/T)/dz|| = O(T^-1) (exponent fitted exactly between T = 1e3 and 1e4)", "-1",
          _softmax_T_jacobian_order, CORRECT, compare=DECIMALS, unit="(exponent of T)",
          note="the softmax Jacobian is (diag p - p p^T)/T -> (I/n - 11^T/n^2)/T."),
    Claim("distillation_T2", TEXTBOOK,
          "Without T² scaling, the gradient is O(1/T) ... This compensates for the 1/T factor",
          "exponent a of |d KL(pt||ps)/dzs| ~ T^a without the T^2 factor", "-1",
          _distillation_gradient_order, WRONG, compare=DECIMALS, unit="(exponent of T)",
          note="dKL/dzs = (ps - pt)/T and ps - pt = O(1/T), so the gradient is O(1/T^2) (Hinton et "
               "al. 2015); T^2 makes it O(1). Were it O(1/T), T^2 scaling would make it grow like T."),
    # ---- slides (001)
    Claim("uniform256_bits", SLIDES, "−log2(1/256) = log2 256 = 8 bits = 1 byte",
          "entropy of the uniform distribution on 256 values, in bits", "8", _uniform256, CORRECT,
          compare=EXACT, unit="bits"),
    Claim("nat_in_bits", SLIDES, "1 nat = 1/ln 2 bits ≈ 1.44 bits", "1 / ln 2", "1.44", _nat_in_bits,
          CORRECT, unit="bits", note="1.442695..."),
    Claim("gaussian_noise_entropy", SLIDES,
          "E[−ln P(y|ỹ)] ≈ d(ln σ + ln √(2π) + 1/2)",
          "differential entropy of N(0, sigma^2 I_d) (checked at d = 3, sigma = 0.01 by quadrature)",
          None, _gaussian_entropy, CORRECT, compare=NONE,
          note="correct for eps ~ N(0, sigma^2 I); the slide writes eps ~ N(0, I)."),
    Claim("laplace_noise_nll", SLIDES,
          "ε ∼ softmax_ε λ|ε|_1 ... argmin E[ ||y − ŷ(x)||_1 / λ ]",
          "-ln P of Laplace noise is ||eps||_1 / lambda", None, _laplace, INCONSISTENT, compare=NONE,
          note="for density ∝ exp(-lambda ||eps||_1) the NLL is lambda ||eps||_1 + const (the slide "
               "divides by lambda; softmax of +lambda|eps| would not normalise); the argmin over Phi "
               "is unaffected for fixed lambda."),
    # ---- notebook (002)
    Claim("self_information", NOTEBOOK, "self_information(1 / 64) -> 6.0", "-log2(1/64)", "6.0",
          _self_info, CORRECT, unit="bits"),
    Claim("notebook_entropy", NOTEBOOK, "entropy(torch.tensor([0.1, 0.5, 0.1, 0.3])) -> tensor(1.6855)",
          "entropy in bits", "1.6855", _entropy_bits, CORRECT, unit="bits"),
    Claim("notebook_joint_entropy", NOTEBOOK,
          "joint_entropy(torch.tensor([[0.1, 0.5], [0.1, 0.3]])) -> tensor(1.6855)",
          "H(X, Y) in bits of a table summing to 1", "1.6855", _joint_entropy, CORRECT, unit="bits"),
    Claim("notebook_conditional_entropy", NOTEBOOK,
          "conditional_entropy(torch.tensor([[0.1, 0.5], [0.2, 0.3]]), torch.tensor([0.2, 0.8])) -> tensor(0.8635)",
          "H(Y | X) in bits", "0.8635", _conditional_entropy, INCONSISTENT, unit="bits",
          note="0.8635 is exactly what the code computes (-sum P_ij log2(P_ij / p_x[j]): p_xy/p_x "
               "broadcasts p_x along columns), but the table sums to 1.1 and its row marginals are "
               "[0.6, 0.5], not p_x = [0.2, 0.8]. H(Y|X) of the normalised table is 0.7959 bits "
               "(0.8755 with the unnormalised rows)."),
    Claim("notebook_mutual_information", NOTEBOOK,
          "mutual_information(..., torch.tensor([0.2, 0.8]), torch.tensor([[0.75, 0.25]])) -> tensor(0.7195)",
          "I(X; Y) in bits", "0.7195", _mutual_information, INCONSISTENT, unit="bits",
          note="0.7195 is exactly what the code computes, but p_x * p_y of shapes (2,) and (1, 2) is "
               "the elementwise [0.15, 0.2], not the outer product, and the given marginals are not "
               "the table's ([0.6, 0.4] and [0.2, 0.8]); the table's true I(X;Y) is 0.0074 bits "
               "(1.5195 with the outer product of the given vectors)."),
    Claim("kl_pq1", NOTEBOOK, "kl_pq1 -> 8582.0341796875", "'KL' of sorted N(0,1) vs N(-1,1) samples (bits)",
          "8582.0341796875", _kl_part("kl_pq1"), NOT_A_QUANTITY, compare=FLOAT, requires=("torch",),
          note="reproduced bit for bit with torch CPU; not a KL divergence: normal samples are not "
               "probability vectors (negative entries), NaN terms of log2 of negative ratios are "
               "dropped by nansum, and .abs() hides the sign. The Gaussians' true KL is 0.5 nat = 0.7213 bits."),
    Claim("kl_pq2", NOTEBOOK, "kl_pq2 -> 8828.3095703125", "'KL' of sorted N(0,1) vs N(1,1) samples (bits)",
          "8828.3095703125", _kl_part("kl_pq2"), NOT_A_QUANTITY, compare=FLOAT, requires=("torch",),
          note="as kl_pq1; true KL(N(0,1)||N(1,1)) = 0.7213 bits."),
    Claim("kl_similar_pct", NOTEBOOK, "similar_percentage -> 2.8290698237936858",
          "relative difference of the two 'KL's (%)", "2.8290698237936858", _kl_part("similar_percentage"),
          NOT_A_QUANTITY, compare=FLOAT, requires=("torch",), note="the true KLs are equal: 0%."),
    Claim("kl_q2p", NOTEBOOK, "kl_q2p -> 14130.125", "'KL' of sorted N(1,1) vs N(0,1) samples (bits)",
          "14130.125", _kl_part("kl_q2p"), NOT_A_QUANTITY, compare=FLOAT, requires=("torch",),
          note="true KL(N(1,1)||N(0,1)) = 0.7213 bits."),
    Claim("kl_differ_pct", NOTEBOOK, "differ_percentage -> 46.18621024399691",
          "asymmetry of 'KL' (%)", "46.18621024399691", _kl_part("differ_percentage"), NOT_A_QUANTITY,
          compare=FLOAT, requires=("torch",),
          note="KL between equal-variance Gaussians is symmetric: the true asymmetry is 0%; 46% is an "
               "artefact of the dropped NaN terms."),
    Claim("notebook_cross_entropy", NOTEBOOK,
          "cross_entropy(preds, labels) -> tensor(0.9486)", "mean of -log 0.3 and -log 0.5", "0.9486",
          _notebook_ce, CORRECT, unit="nats"),
    Claim("notebook_nll_loss", NOTEBOOK, "nll_loss(torch.log(preds), labels) -> tensor(0.9486)",
          "NLLLoss of log(preds), mean", "0.9486", _notebook_ce, CORRECT, unit="nats"),
]

BY_ID = {c.id: c for c in CLAIMS}


@lru_cache(maxsize=None)
def _exact_cached(cid):
    return BY_ID[cid].compute()


def get(cid) -> Claim:
    return BY_ID[cid]


def set_measurement(cid: str, **values):
    """Record a benchmark result on a `measured` claim (e.g. speedup=1.93, device=...)."""
    c = BY_ID[cid]
    if c.verdict != MEASURED:
        raise ValueError(f"claim {cid!r} is not decided by a measurement")
    c.measured.update(values)


# ---------------------------------------------------------------- report rows


def format_exact(v, digits: int = 6) -> str:
    if v is None:
        return ""
    if isinstance(v, dict):
        if "value" not in v and "holds" in v:
            return "holds (exact check)" if v["holds"] else "FAILS (exact check)"
        v = v.get("value")
        if v is None:
            return ""
    if isinstance(v, (bool, str)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, Fraction):
        if v.denominator == 1:
            return f"{v.numerator:,}"
        return mpmath.nstr(mpmath.mpf(v.numerator) / v.denominator, digits)
    if isinstance(v, float):
        return repr(v)
    return mpmath.nstr(mpmath.mpf(v), digits)


def errata_table(include_unavailable: bool = True) -> list[dict]:
    """One row per claim: claim, source, printed, exact, verdict, note (strings)."""
    rows = []
    for c in CLAIMS:
        try:
            ex = c.exact()
            exact = format_exact(ex, 17 if c.compare == FLOAT else 6)
            if isinstance(ex, dict) and c.verdict in (INCONSISTENT, NOT_A_QUANTITY):
                extra = [f"{k.replace('_', ' ')} {format_exact(v)}" for k, v in ex.items()
                         if k.startswith("true") and not isinstance(v, (list, tuple))]
                if extra:
                    exact = f"as computed: {exact}; " + "; ".join(extra)
            verdict = c.verdict
            note = c.note
        except Unavailable as e:
            if not include_unavailable:
                continue
            exact, verdict, note = "", c.verdict, f"{c.note} (not reproduced here: {e})"
        if c.verdict == MEASURED and c.measured:
            exact = ", ".join(f"{k}={v}" for k, v in c.measured.items())
        printed = "" if c.printed is None else c.printed + (c.unit if c.unit == "%" else (" " + c.unit if c.unit else ""))
        rows.append({"id": c.id, "claim": c.claim, "source": c.source, "quote": c.quote,
                     "printed": printed, "exact": exact, "verdict": verdict, "note": note})
        if verdict == c.verdict and isinstance(ex, dict) and "table" in ex:  # a measured claim's numbers
            rows[-1]["table"] = ex["table"]
    return rows


__all__ = ["Claim", "CLAIMS", "BY_ID", "get", "errata_table", "derived_verdict", "rounds_to",
           "set_measurement", "notebook_kl_examples", "Unavailable", "VERDICTS"]

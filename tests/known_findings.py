"""Fixed differential-test inputs, dtype-derived tolerances, and the table of known framework findings.

Shared by tests/test_backends_torch.py and tests/test_backends_jax.py (and usable by any other
backend test): the inputs are built with NumPy in float64 and rounded once to the audited dtype
by ``infoaudit.compare``; every backend sees the same bits.

Cases
-----
``moderate``: rows of normal * 3 logits (batch 4, n = 16), Dirichlet-like probability rows,
elementwise normal * 3 / uniform(0, 1) values, random 4 x 4 joint tables.

``extreme``: named rows (or named elements for elementwise quantities), built per dtype: +-1e4
logits, one dominant entry, -inf masks, all -inf rows, values near the dtype's max, exact ties,
exact zeros, subnormal probabilities, one-hot rows, overflow/underflow thresholds of exp. A
finding names its row, so the table reads as "this input gives this output".

Tolerance (per output element, absolute)
----------------------------------------
    allowed = C * u * (|y*| + S) + n * tiny

u is the dtype's unit roundoff, y* the exact value, S the problem's scale: the sum of the
magnitudes of the terms of the exact formula and of the intermediates whose rounding reaches the
result (listed per quantity in :func:`scale`). A stable algorithm evaluates each term and each
intermediate with a relative error of a few u, so its error is bounded by a small multiple of
u * (|y*| + S), whatever cancellation the exact formula has (KL of p = q, Gaussian KL at 0).
C = 16 + 2 * ceil(log2 n): a chain of at most four elementary functions (shift, exp/log/log1p,
divide, scale), each allowed 2 ULP = 4u (documented accuracy of vectorised libm: SLEEF u10 and
XLA's exp/log are within 1-2 ULP, CUDA's fast intrinsics 2 ULP), plus the u * ceil(log2 n) per
term of a pairwise/tree reduction of n terms (doubled for the sequential tails of blocked sums).
``n * tiny`` (n summed terms, tiny = smallest normal number) allows each term to be flushed
to zero from the subnormal range: the tests do not require gradual underflow.

What S admits (deliberately, these are differential tests of stable algorithms, not the gate):
the rounding of 1 - p / 1 - t in the dtype for binary_entropy_bits and binary_cross_entropy
(absolute error ~u, so no relative accuracy is required of the result at p -> 0), and the
argument rounding of exp(z_i - max) in softmax (relative error u |z_i - lse|). The gate's
condition-aware metric is the place that judges relative accuracy there.

Non-finite results must match the correctly rounded exact value (same infinity, NaN where it is
NaN) except where a finding below says otherwise.

Known findings
--------------
Each finding was recorded on the versions pinned in ``requirements/lock.txt`` (the packages of
its backend: ``version_drift.PACKAGES``). Under the lock the tests assert it exactly; where one
of those packages is installed at another version, a changed behaviour is reported as drift (an
xfail naming the versions, and an entry for ``make test-latest``), not a failure.

FINDINGS lists every place where a framework is genuinely inaccurate or non-finite on one of these
inputs. Each entry asserts the specific behaviour (so a change in the framework is noticed: the
test fails when the behaviour changes, better or worse) and excludes only those elements from the
tolerance check.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from infoaudit.dtypes import FORMATS
from infoaudit.quantities import REGISTRY
from version_drift import recorded

N = 16          # row length
BATCH = 8       # rows per call. Every float input has shape (8, 16) (tables (8, 4, 4)): extreme
                # cases are padded by cycling their named rows (elements), so that each framework
                # compiles one shape per dtype (JAX eager compiles every primitive per shape).
CASES = ("moderate", "extreme")


# ------------------------------------------------------------------------------------------ inputs


def _rng(*key):
    return np.random.default_rng(zlib.crc32("/".join(map(str, key)).encode()))


def _probs(rng, shape, conc=1.5):
    w = np.exp(rng.normal(size=shape) * conc)
    return w / w.sum(-1, keepdims=True)


def big_value(dtype):
    """0.9 * max for float16; 1e6 elsewhere. The exact reference cannot yet evaluate exp(-x) for
    x ~ 1e38 (dtypes.round_mpf: OverflowError, reported), so spreads near float32/bfloat16/float64
    max are tested as ties near max ("near_max") instead."""
    return 0.9 * FORMATS[dtype].max if dtype == "float16" else 1e6


def _logit_rows(dtype, rng):
    f = FORMATS[dtype]
    big = big_value(dtype)
    near = 0.9 * f.max
    moderate = rng.normal(size=N) * 3
    i = np.arange(N)
    masked = moderate.copy()
    masked[:8] = -np.inf
    rows = {
        "pm1e4": np.where(i % 2 == 0, 1e4, -1e4) + 0.25 * i,
        "dominant": np.where(i == 5, 40.0, 0.0),
        "dominant_far": np.where(i == 5, 100.0, 0.0),
        "masked": masked,
        "all_masked": np.full(N, -np.inf),
        "big_spread": np.resize([big, 0.5 * big, -big, 0.0, 1.0, -1.0, 2.5, -3.5], N),
        "near_max": np.where(i == 3, -np.inf, near),
        "ties_1e4": np.full(N, 1e4),
    }
    return rows


def _label_rows():
    # label per logits row: dominant_far -> the dominant entry (loss ~ 0), masked -> a masked entry
    return {"pm1e4": 1, "dominant": 0, "dominant_far": 5, "masked": 2, "all_masked": 0,
            "big_spread": 2, "near_max": 0, "ties_1e4": 3}


def _prob_rows(dtype, rng):
    f = FORMATS[dtype]
    s = f.smallest_subnormal
    i = np.arange(N)
    sub = np.full(N, 3 * s)
    sub[0] = 1.0 - 15 * 3 * s
    near_one = np.full(N, 2.0 ** -12)
    near_one[0] = 1.0 - 15 * 2.0 ** -12
    tiny_mix = 10.0 ** -np.linspace(1, 30, N)
    tiny_mix[0] = 1.0 - tiny_mix[1:].sum()
    return {
        "uniform": np.full(N, 1.0 / N),
        "one_hot": np.where(i == 0, 1.0, 0.0),
        "half_zeros": np.where(i < 8, 0.0, 1.0 / 8),
        "subnormal": sub,
        "near_one": near_one,
        "tiny_mix": tiny_mix,
        "dirichlet": _probs(rng, N),
    }


def _prob_pairs(dtype, rng):
    f = FORMATS[dtype]
    s = f.smallest_subnormal
    i = np.arange(N)
    p = _probs(rng, N)
    q = _probs(rng, N)
    p_z = np.where(i < 8, 0.0, p)
    p_z /= p_z.sum()
    q_z = np.where(i < 8, 0.0, q)
    q_z /= q_z.sum()
    q_sub = np.where(i < 8, 3 * s, q)
    q_sub[8:] /= q_sub[8:].sum()
    return {
        "equal": (p, p.copy()),
        "shared_zeros": (p_z, q_z),               # p_i = q_i = 0 on half the row: terms are 0
        "q_zero_p_pos": (p, q_z),                 # p_i > 0 = q_i: +inf
        "p_zero_q_pos": (p_z, q),                 # p_i = 0 < q_i: terms are 0
        "subnormal_q": (p, q_sub),                # q_i subnormal where p_i > 0: large finite logs
        "one_hot_uniform": (np.where(i == 3, 1.0, 0.0), np.full(N, 1.0 / N)),
    }


def _elem_values(kind, dtype):
    f = FORMATS[dtype]
    if kind == "prob":
        vals = {"zero": 0.0, "one": 1.0, "smallest_subnormal": f.smallest_subnormal,
                "3_subnormal": 3 * f.smallest_subnormal, "tiny": f.tiny, "1e-30": 1e-30, "1e-300": 1e-300,
                "half": 0.5, "quarter": 0.25, "1-u": 1.0 - f.unit_roundoff, "1-eps": 1.0 - f.eps,
                "0.9": 0.9, "0.1": 0.1, "1e-4": 1e-4, "0.999": 0.999, "1e-8": 1e-8}
    else:  # real
        vals = {}
        for name, v in (("0", 0.0), ("1e-30", 1e-30), ("subnormal", f.smallest_subnormal), ("1", 1.0),
                        ("11.5", 11.5), ("20.5", 20.5), ("30", 30.0), ("40", 40.0), ("89", 89.0), ("100", 100.0),
                        ("710", 710.0), ("1e4", 1e4), ("big", big_value(dtype)), ("inf", np.inf)):
            vals[f"+{name}"] = v
            vals[f"-{name}"] = -v
        vals["-0"] = -0.0
    return vals


def _bce_pairs(dtype):
    f = FORMATS[dtype]
    return {"p0_t0": (0.0, 0.0), "p0_t1": (0.0, 1.0), "p1_t0": (1.0, 0.0), "p1_t1": (1.0, 1.0),
            "half_half": (0.5, 0.5), "1e-30_t1": (1e-30, 1.0), "1e-50_t1": (1e-50, 1.0),
            "1e-300_t1": (1e-300, 1.0), "subnormal_t1": (3 * f.smallest_subnormal, 1.0), "tiny_t1": (f.tiny, 1.0),
            "1-eps_t0": (1.0 - f.eps, 0.0), "0.9_t0.1": (0.9, 0.1), "1e-8_t0": (1e-8, 0.0),
            "0.3_t0.7": (0.3, 0.7), "1e-4_t0.5": (1e-4, 0.5), "0.999_t1": (0.999, 1.0)}


def _gauss_rows(dtype, rng):
    z = np.zeros(N)
    lv_big = np.zeros(N)
    lv_big[3] = 11.5       # exp(11.5) = 98715 overflows float16 although the KL (49351) does not
    lv_50 = np.full(N, 50.0)
    lv_m50 = np.full(N, -50.0)
    mu_big = np.zeros(N)
    mu_big[0] = 1e4
    lv_minf = np.zeros(N)
    lv_minf[2] = -np.inf
    return {
        "zero": (z, z.copy()),
        "small": (1e-3 * rng.normal(size=N), 1e-3 * rng.normal(size=N)),
        "logvar_11.5": (z.copy(), lv_big),
        "logvar_50": (z.copy(), lv_50),
        "logvar_-50": (z.copy(), lv_m50),
        "mu_1e4": (mu_big, z.copy()),
        "logvar_-inf": (z.copy(), lv_minf),
    }


def _logit_pairs(dtype, rng):
    rows = _logit_rows(dtype, rng)
    zs = rng.normal(size=N) * 3
    masked_s = zs.copy()
    masked_s[:8] = -np.inf
    zt_for_masked = zs + rng.normal(size=N)
    zt_masked = zt_for_masked.copy()
    zt_masked[:8] = -np.inf
    return {
        "shift": (zs, zs + 3.0),                                  # zt - zs constant: exactly 0
        # (pm1e4 against its reverse makes the reference's log1p argument < -1 at low precision:
        # reported; perturbed copies are used until that is fixed)
        "pm1e4": (rows["pm1e4"], rows["pm1e4"] + rng.normal(size=N) * 8),
        "masked_same": (masked_s, zt_masked),                     # same -inf entries: finite
        "student_masked": (masked_s, zt_for_masked),              # student -inf where teacher > 0: +inf
        "teacher_masked": (zt_for_masked, zt_masked),             # teacher -inf where student finite
        "big_spread": (rows["big_spread"], rows["big_spread"] + rng.normal(size=N) * 8),
        "near_max": (rows["near_max"], np.roll(rows["near_max"], 1)),
        "all_masked": (np.full(N, -np.inf), np.full(N, -np.inf)),
    }


def _table_rows(dtype, rng):
    f = FORMATS[dtype]
    px = np.array([0.5, 0.25, 0.125, 0.125])
    py = np.full(4, 0.25)
    diag = np.diag(np.full(4, 0.25))
    sub = np.diag(np.full(4, 0.25))
    sub[0, 1] = sub[2, 3] = 3 * f.smallest_subnormal
    one = np.zeros((4, 4))
    one[1, 2] = 1.0
    zeros_row = rng.random((4, 4))
    zeros_row[2] = 0.0
    zeros_row /= zeros_row.sum()
    return {"independent": np.outer(px, py), "diagonal": diag, "subnormal": sub, "one_hot": one,
            "zero_row": zeros_row}


def _sampled_case(name, dtype, rng):
    """sampled_softmax_cross_entropy: a unigram Zipf proposal over N classes, 6 samples per row."""
    lw = -np.log(np.arange(1, N + 1))
    lq = np.broadcast_to(lw - np.log(np.exp(lw).sum()), (BATCH, N)).copy()
    if name == "moderate":
        return [rng.normal(size=(BATCH, N)) * 3, rng.integers(0, N, BATCH).astype(np.int64),
                rng.integers(0, N, (BATCH, 6)).astype(np.int64), lq], None
    X = math.log(FORMATS[dtype].max)
    z = rng.normal(size=(BATCH, N))
    y = np.arange(BATCH, dtype=np.int64) % N
    smp = (y[:, None] + np.arange(1, 7)[None, :]) % N
    rows = ["moderate", "hits_and_duplicates", "corrected_beyond_overflow", "masked_target", "dominant_sample",
            "all_hits", "large_logits", "masked_samples"]
    smp[1, :3] = y[1]
    smp[1, 3:] = smp[1, 3]
    lq[2, smp[2]] = -X - 2.0
    z[3, y[3]] = -np.inf
    z[4, smp[4, 0]] = 0.5 * X
    smp[5] = y[5]
    z[6] *= 0.25 * X
    z[7, smp[7, :4]] = -np.inf
    return [z, y, smp.astype(np.int64), lq], rows


def _adaptive_case(name, dtype, rng):
    """adaptive_log_softmax: d = N, S = 5, tails of 6 and 3 classes (projections N/2, N/4)."""
    shapes = [(7, N), (N // 2, N), (6, N // 2), (N // 4, N), (3, N // 4)]
    ws = [rng.uniform(-1, 1, sh) / np.sqrt(sh[1]) for sh in shapes]
    h = rng.normal(size=(BATCH, N))
    if name == "moderate":
        return [h] + ws, None
    X = math.log(FORMATS[dtype].max)
    scale = np.array([1.0, 30.0, 0.0, X, 2 * X, 1e-3, 100.0, 4.0])[:, None]
    rows = ["moderate", "large", "zero_hidden", "head_near_overflow", "head_beyond_overflow", "tiny_hidden",
            "very_large", "wide"]
    return [h * scale] + ws, rows


_CASE_BUILDERS = {"sampled_softmax_cross_entropy": _sampled_case, "adaptive_log_softmax": _adaptive_case}


def case(qname, name, dtype):
    """(args, labels): the arguments in the registry's order (float64 / int64 / float) and the
    names of the output elements' rows (None for the moderate case)."""
    q = REGISTRY[qname]
    rng = _rng(qname, name)
    if qname in _CASE_BUILDERS:
        return _CASE_BUILDERS[qname](name, dtype, rng)
    kinds = tuple(a.kind for a in q.args)
    if name == "moderate":
        return _moderate(q, kinds, rng), None
    args, names = _extreme(q, kinds, dtype, rng)
    return _pad(q, args, names)


def _pad(q, args, names):
    """Cycle the named rows (elements) to BATCH rows (BATCH * N elements, reshaped (BATCH, N))."""
    k = len(names)
    elementwise = q.structure == "elementwise"
    total = BATCH * N if elementwise else BATCH
    assert k <= total, (q.name, k)
    idx = np.resize(np.arange(k), total)
    out = []
    for a in args:
        if isinstance(a, np.ndarray):
            a = a[idx]
            if elementwise:
                a = a.reshape(BATCH, N)
        out.append(a)
    return out, [names[i] for i in idx]


def _moderate(q, kinds, rng):
    shape = (BATCH, N)
    args = []
    for k in kinds:
        if k == "logits":
            args.append(rng.normal(size=shape) * 3)
        elif k == "logprobs":
            z = rng.normal(size=shape) * 3
            args.append(z - np.log(np.exp(z).sum(-1, keepdims=True)))
        elif k == "probs":
            args.append(_probs(rng, shape))
        elif k in ("prob", "target01"):
            args.append(rng.uniform(0.001, 0.999, size=shape))
        elif k in ("real", "mu", "logvar"):
            args.append(rng.normal(size=shape) * 3)
        elif k == "table":
            P = rng.random((BATCH, 4, 4))
            args.append(P / P.sum((-2, -1), keepdims=True))
        elif k == "label":
            args.append(rng.integers(0, N, size=BATCH).astype(np.int64))
        elif k == "temperature":
            args.append(2.0)
        elif k in ("eps", "beta"):
            args.append(0.1)
        else:  # pragma: no cover
            raise AssertionError(k)
    if q.name in ("distillation_loss", "rlhf_kl_penalty"):
        args[1] = args[0] + rng.normal(size=shape)  # teacher/ref near the student/policy
    return args


def _extreme(q, kinds, dtype, rng):
    if kinds in (("logits",),):
        rows = _logit_rows(dtype, rng)
        return [np.array(list(rows.values()))], list(rows)
    if kinds == ("logits", "label"):
        rows = _logit_rows(dtype, rng)
        labels = _label_rows()
        names = list(rows)
        return [np.array([rows[n] for n in names]), np.array([labels[n] for n in names], np.int64)], names
    if kinds == ("logits", "label", "eps"):
        args, names = _extreme(q, ("logits", "label"), dtype, rng)
        return args + [0.1], names
    if kinds == ("logprobs", "label"):
        i = np.arange(N)
        big = 0.9 * FORMATS[dtype].max
        base = np.log(np.full(N, 1.0 / N))
        rows = {"neg_inf": (np.where(i < 4, -np.inf, base), 1), "zero": (np.where(i == 0, 0.0, -np.inf), 0),
                "minus_1e4": (np.where(i == 2, -1e4, base), 2), "near_max": (np.where(i == 3, -big, base), 3),
                "subnormal": (np.where(i == 4, -FORMATS[dtype].smallest_subnormal, base), 4)}
        names = list(rows)
        return [np.array([rows[n][0] for n in names]), np.array([rows[n][1] for n in names], np.int64)], names
    if kinds == ("probs",):
        rows = _prob_rows(dtype, rng)
        return [np.array(list(rows.values()))], list(rows)
    if kinds == ("probs", "probs"):
        pairs = _prob_pairs(dtype, rng)
        names = list(pairs)
        return [np.array([pairs[n][0] for n in names]), np.array([pairs[n][1] for n in names])], names
    if kinds in (("prob",), ("real",)):
        vals = _elem_values(kinds[0], dtype)
        return [np.array(list(vals.values()))], list(vals)
    if kinds == ("prob", "target01"):
        pairs = _bce_pairs(dtype)
        names = list(pairs)
        return [np.array([pairs[n][0] for n in names]), np.array([pairs[n][1] for n in names])], names
    if kinds == ("real", "target01"):
        vals = _elem_values("real", dtype)
        ts = np.resize([0.0, 1.0, 0.5, 0.25], len(vals))
        names = [f"{n}_t{t:g}" for n, t in zip(vals, ts)]
        return [np.array(list(vals.values())), ts], names
    if kinds == ("mu", "logvar"):
        rows = _gauss_rows(dtype, rng)
        names = list(rows)
        return [np.array([rows[n][0] for n in names]), np.array([rows[n][1] for n in names])], names
    if kinds in (("logits", "logits", "temperature"), ("logits", "logits", "beta")):
        pairs = _logit_pairs(dtype, rng)
        names = list(pairs)
        scalar = 0.5 if kinds[2] == "temperature" else 0.1
        return [np.array([pairs[n][0] for n in names]), np.array([pairs[n][1] for n in names]), scalar], names
    if kinds == ("table",):
        rows = _table_rows(dtype, rng)
        return [np.array(list(rows.values()))], list(rows)
    raise AssertionError(f"no extreme inputs for {q.name} {kinds}")  # pragma: no cover


# --------------------------------------------------------------------------------------- tolerance


def _lse_parts(z):
    """float64 (m, lse) per row; m = max finite entry (0 for an all -inf row)."""
    with np.errstate(all="ignore"):
        fin = np.where(np.isfinite(z), z, -np.inf)
        m = np.max(fin, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        lse = m + np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))
    return m, lse


def _terms(*arrays):
    """Sum of magnitudes, non-finite terms (masked entries, 0 * inf) counted as 0."""
    tot = 0
    for a in arrays:
        tot = tot + np.nan_to_num(np.abs(a), nan=0.0, posinf=0.0)
    return tot


def scale(qname, inputs, exact):
    """S of the tolerance (see the module docstring): magnitudes of terms and intermediates."""
    x = [np.asarray(v).astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind != "i" else v
         for v in inputs]
    y = np.abs(exact)
    L = np.log
    if qname in _CASE_BUILDERS:  # the judge's envelope S (infoaudit.judging.scales), stated there
        from infoaudit import judging

        return judging.envelope(qname, inputs)
    with np.errstate(all="ignore"):
        if qname == "softmax":
            z = x[0]
            m, lse = _lse_parts(z)
            return _terms(y * (z - lse))                           # relative error u |z_i - lse|
        if qname == "log_softmax":
            z = x[0]
            m, lse = _lse_parts(z)
            return _terms(z, m + 0 * z, (lse - m) + 0 * z)
        if qname == "logsumexp":
            m, lse = _lse_parts(x[0])
            return _terms(m, lse - m)[..., 0]
        if qname in ("sigmoid", "softplus", "log_sigmoid", "self_information_bits"):
            return np.zeros_like(y)
        if qname in ("entropy", "entropy_bits"):
            p = x[0]
            s = _terms(p * L(p), p).sum(-1)
            return s / math.log(2) if qname == "entropy_bits" else s
        if qname == "binary_entropy_bits":
            p = x[0]
            return _terms(p * L(p), p, (1 - p) * L(1 - p), 1 - p, L(1 - p), 1.0 + 0 * p) / math.log(2)
        if qname == "kl_divergence":
            p, q = x
            return _terms(p * L(p), p * L(q), p).sum(-1)
        if qname == "cross_entropy_probs":
            p, q = x
            return _terms(p * L(q), p).sum(-1)
        if qname in ("cross_entropy", "label_smoothing_cross_entropy"):
            z, yl = x[0], inputs[1]
            m, lse = _lse_parts(z)
            zy = np.take_along_axis(z, yl[..., None], -1)[..., 0]
            base = _terms(m[..., 0], (lse - m)[..., 0])
            if qname == "cross_entropy":
                return base + _terms(zy)
            eps = x[2]
            return (1 - eps) * (base + _terms(zy)) + eps * (base + _terms(z).mean(-1))
        if qname == "nll_loss":
            return None  # exact negation: no error allowed
        if qname == "binary_cross_entropy":
            p, t = x
            return _terms(t * L(p), t, (1 - t) * L(1 - p), 1 - t, L(1 - p), 1.0 + 0 * p)
        if qname == "binary_cross_entropy_with_logits":
            z, t = x
            sp = np.logaddexp(0.0, z)
            return _terms(sp, t * z, z, 1.0 + 0 * z)
        if qname in ("distillation_loss", "rlhf_kl_penalty"):
            za, zb, c = x  # (student, teacher, T) or (policy, ref, beta)
            if qname == "distillation_loss":
                T = c
                a, b, w = zb / T, za / T, T * T      # teacher first
            else:
                a, b, w = za, zb, c
            ma, la_ = _lse_parts(a)
            mb, lb_ = _lse_parts(b)
            la, lb = a - la_, b - lb_
            pa = np.exp(la)
            inner = _terms(a, ma + 0 * a, b, mb + 0 * b, 2 * math.log(N) + 0 * a) + _terms(la) * _terms(la - lb)
            return w * _terms(pa * inner).sum(-1)
        if qname == "gaussian_kl":
            mu, lv = x
            return 0.5 * _terms(np.exp(lv), mu * mu, 1.0 + 0 * mu, lv).sum(-1)
        if qname in ("joint_entropy", "conditional_entropy", "mutual_information"):
            P = x[0]
            px = P.sum(-1, keepdims=True)
            py = P.sum(-2, keepdims=True)
            parts = [P * L(P), P]
            if qname != "joint_entropy":
                parts.append(P * L(px))
            if qname == "mutual_information":
                parts.append(P * L(py))
            return _terms(*parts).sum((-2, -1))
    raise AssertionError(qname)  # pragma: no cover


def n_terms(qname, inputs):
    q = REGISTRY[qname]
    if qname in _CASE_BUILDERS:
        from infoaudit.judging.scales import reduction_length

        return reduction_length(qname, inputs)
    first = inputs[q.float_args[0]]
    if q.structure in ("row", "row_reduce"):
        return first.shape[-1]
    if q.structure == "table_reduce":
        return first.shape[-1] * first.shape[-2]
    return 1


def tolerance(qname, inputs, exact_hi, dtype):
    """Allowed absolute error per output element: C u (|y*| + S) + n tiny (module docstring)."""
    f = FORMATS[dtype]
    S = scale(qname, inputs, exact_hi)
    if S is None:
        return np.zeros(np.shape(exact_hi))
    n = n_terms(qname, inputs)
    C = 16 + 2 * math.ceil(math.log2(n)) if n > 1 else 16
    with np.errstate(all="ignore"):
        tol = C * f.unit_roundoff * (np.nan_to_num(np.abs(exact_hi), posinf=0.0) + S) + n * f.tiny
    return np.broadcast_to(tol, np.shape(exact_hi))


# --------------------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Finding:
    """A known framework behaviour on one fixed input, asserted by the tests.

    ``behaviour``: ("nan",), ("inf", +1/-1), ("value", v) exact output value, ("finite",) a finite
    number where the exact value is not, ("rel_error", lo, hi) relative error in [lo, hi),
    ("unsupported", text) the framework refuses with a message containing text.
    ``variants`` / ``dtypes`` / ``devices``: tuples, "*" for all. ``row``: the extreme input's row
    (element) name; "*" for the whole call (unsupported).
    """

    quantity: str
    backend: str
    variants: object
    dtypes: object
    case: str
    row: str
    behaviour: tuple
    input: str
    note: str = ""
    devices: object = "*"      # seen on CPU and, by scripts/gpu_check.py, identically on CUDA

    def applies(self, quantity, backend, variant, dtype, case, device):
        def m(sel, v):
            return sel == "*" or v in sel
        return (self.quantity == quantity and self.backend == backend and m(self.variants, variant)
                and m(self.dtypes, dtype) and self.case == case and m(self.devices, device))


ALL = "*"
F16, BF16, F32, F64 = "float16", "bfloat16", "float32", "float64"
LOW = (F16, BF16)
CPU_ONLY = ("cpu",)   # XLA:GPU keeps subnormals: these DAZ findings do not reproduce on "gpu"

# Row descriptions used in the findings' ``input`` text.
_SHARED_ZEROS = "p, q Dirichlet-like rows with p_i = q_i = 0 for i < 8 (exact KL finite)"
_MASKED_SAME = "zs, zt rows with the same 8 entries -inf, others normal * 3 (exact KL finite)"
_NEAR_MAX = "zs, zt = 0.9 * dtype max in every entry except one -inf (different positions), T = 0.5"
_SUB_Q = "p Dirichlet-like, q_i = 3 * smallest subnormal of the dtype for i < 8"
_DAZ = ("XLA:CPU runs with denormals-are-zero/flush-to-zero: a subnormal input to log is read as 0 "
        "(float16 is computed in float32, where its subnormals are normal, so float16 is unaffected)")
_ZERO_INF = "0 * (-inf) = NaN in the term of an entry with zero probability"

FINDINGS: list[Finding] = [
    # ------------------------------------------------------------------ PyTorch
    Finding("softplus", "torch", ("native",), (F64,), "extreme", "+20.5", ("value", 20.5),
            "x = 20.5 (exact softplus 20.500000001250154)",
            "F.softplus default threshold=20 returns x unchanged for x > 20: 1.25e-9 absolute error, "
            "~350,000 ULP in float64 (below half an ULP in float32 and narrower)"),
    Finding("softplus", "torch", ("native",), (F64,), "extreme", "+30", ("value", 30.0),
            "x = 30 (exact 30.000000000000092)", "threshold=20: returns x; 13 ULP in float64"),
    Finding("kl_divergence", "torch", ("native", "log_target"), ALL, "extreme", "shared_zeros", ("nan",),
            _SHARED_ZEROS, "F.kl_div(q.log(), p): " + _ZERO_INF + " (target 0 times input log 0 = -inf)"),
    Finding("kl_divergence", "torch", ("log_target",), ALL, "extreme", "p_zero_q_pos", ("nan",),
            "p_i = 0 for i < 8, q > 0 everywhere (exact KL finite)",
            "log_target=True computes exp(lt) * (lt - input) = 0 * (-inf - log q) = NaN for every p_i = 0"),
    Finding("kl_divergence", "torch", ("log_target",), ALL, "extreme", "one_hot_uniform", ("nan",),
            "p one-hot (p_3 = 1), q uniform 1/16 (exact KL = log 16)", "log_target=True: 0 * (-inf) for p_i = 0"),
    Finding("kl_divergence", "torch", ("distributions",), ALL, "extreme", "subnormal_q", ("rel_error", 0.5, 1.0),
            _SUB_Q + " (exact KL: float32 12.9, float64 96.1)",
            "Categorical(probs=q) clamps probabilities to [finfo.eps, 1 - eps] before the log, so log q_i "
            "is log(eps) instead of log q_i: KL too small by 66-98 %"),
    Finding("binary_cross_entropy", "torch", ("native",), ALL, "extreme", "p0_t1", ("value", 100.0),
            "p = 0, t = 1 (exact +inf)", "F.binary_cross_entropy clamps log(p) at -100: returns 100, not inf"),
    Finding("binary_cross_entropy", "torch", ("native",), ALL, "extreme", "p1_t0", ("value", 100.0),
            "p = 1, t = 0 (exact +inf)", "log(1 - p) clamped at -100"),
    Finding("binary_cross_entropy", "torch", ("native",), ALL, "extreme", "1e-50_t1", ("value", 100.0),
            "p = 1e-50 (0 in float16/bfloat16/float32: exact +inf; float64: exact 115.129), t = 1",
            "log clamp at -100"),
    Finding("binary_cross_entropy", "torch", ("native",), ALL, "extreme", "1e-300_t1", ("value", 100.0),
            "p = 1e-300 (float64: exact 690.776; 0 elsewhere: exact +inf), t = 1", "log clamp at -100"),
    Finding("binary_cross_entropy", "torch", ("native",), (F16,), "extreme", "1e-30_t1", ("value", 100.0),
            "p = 1e-30 (rounds to 0 in float16: exact +inf), t = 1", "log clamp at -100"),
    Finding("binary_cross_entropy", "torch", ("native",), (F32, F64), "extreme", "subnormal_t1", ("value", 100.0),
            "p = 3 * smallest subnormal (float32: exact 102.18; float64: exact 743.34), t = 1",
            "log clamp at -100"),
    Finding("binary_cross_entropy", "torch", ("native",), (F64,), "extreme", "tiny_t1", ("value", 100.0),
            "p = 2^-1022 (smallest normal float64, exact 708.40), t = 1", "log clamp at -100"),
    Finding("binary_cross_entropy_with_logits", "torch", ("native",), ALL, "extreme", "-inf_t0.25", ("nan",),
            "z = -inf, t = 0.25 (exact +inf: softplus(-inf) - t z = 0 + inf)",
            "computes (1 - t) z + max(-z, 0) + log1p(exp(-|z|)) = -inf + inf"),
    Finding("label_smoothing_cross_entropy", "torch", ("native",), (F16,), "extreme", "pm1e4", ("inf", 1),
            "z alternating +-1e4 (+0.25 i), y = 1, eps = 0.1 (exact 19002.08, representable in float16)",
            "F.cross_entropy(label_smoothing=eps) sums -log_softmax over the row in float16 "
            "(8 terms of ~2e4 = 1.6e5 > 65504) before scaling by eps/K: intermediate overflow"),
    Finding("gaussian_kl", "torch", ("closed_form",), (F16,), "extreme", "logvar_11.5", ("inf", 1),
            "mu = 0, logvar_3 = 11.5, other logvar 0 (exact 49351.6, representable in float16)",
            "logvar.exp() = 98715 overflows float16 before the subtraction"),
    Finding("gaussian_kl", "torch", ("distributions",), (F16,), "extreme", "logvar_11.5", ("nan",),
            "mu = 0, logvar_3 = 11.5 (exact 49351.6)",
            "Normal KL: var_ratio = scale^2 = inf, inf - log(inf) = NaN"),
    Finding("gaussian_kl", "torch", ("distributions",), (F16,), "extreme", "logvar_50", ("nan",),
            "mu = 0, logvar = 50 everywhere (exact 4.1e22: rounds to +inf in float16)",
            "exp(25) overflows: inf - inf = NaN instead of +inf"),
    Finding("gaussian_kl", "torch", ("distributions",), (F16,), "extreme", "logvar_-50", ("inf", 1),
            "mu = 0, logvar = -50 everywhere (exact 392.0)",
            "scale = exp(-25) = 1.4e-11 underflows to 0 in float16: -log(0) = +inf"),
]

# Knowledge distillation / RLHF KL on masked rows: every framework's usual spelling evaluates
# p_i * (log p_i - log q_i) with p_i = 0 and a -inf log, which is 0 * (-inf) = NaN.
for _b, _vs, _teacher in (("torch", ("native", "log_target"), ("log_target",)),
                          ("jax", ("jit", "eager", "optax", "optax_eager"), ("jit", "eager"))):
    FINDINGS += [
        Finding("distillation_loss", _b, _vs, ALL, "extreme", "masked_same", ("nan",), _MASKED_SAME, _ZERO_INF),
        Finding("distillation_loss", _b, _vs, ALL, "extreme", "near_max", ("nan",), _NEAR_MAX + " (exact +inf)",
                "z / T overflows to inf; inf - inf in log_softmax"),
        Finding("distillation_loss", _b, _teacher, ALL, "extreme", "teacher_masked", ("nan",),
                "teacher zt with 8 entries -inf, student zs finite (exact finite)",
                "log-target form exp(lt) * (lt - ls) = 0 * (-inf) for masked teacher entries"),
        Finding("distillation_loss", _b, _vs, (F16,), "extreme", "student_masked", ("nan",),
                "student zs with 8 entries -inf, teacher finite, T = 0.5 (exact +inf)",
                "teacher probabilities exp((zt - max) / T) underflow to 0 in float16 at masked student "
                "entries: 0 * (-inf) = NaN instead of +inf"),
        Finding("distillation_loss", _b, _vs, (F16,), "extreme", "big_spread", ("nan",),
                "zs = [0.9 max, 0.45 max, -0.9 max, 0, ...] of float16, zt = zs + noise, T = 0.5 (exact 0)",
                "z / T overflows float16"),
    ]
for _b, _vs in (("torch", ("log_target", "composed")), ("jax", ("jit", "eager", "optax", "optax_eager"))):
    FINDINGS += [
        Finding("rlhf_kl_penalty", _b, _vs, ALL, "extreme", "masked_same", ("nan",),
                "z_policy, z_ref with the same 8 entries -inf (exact finite), beta = 0.1", _ZERO_INF),
        Finding("rlhf_kl_penalty", _b, _vs, ALL, "extreme", "student_masked", ("nan",),
                "z_policy with 8 entries -inf, z_ref finite (exact finite: masked policy entries add 0)",
                _ZERO_INF),
        Finding("rlhf_kl_penalty", _b, _vs, ALL, "extreme", "near_max", ("nan",),
                "z_policy, z_ref = 0.9 * dtype max except one -inf at different positions (exact +inf)",
                "0 * (-inf) at the policy's masked entry turns the +inf of the other into NaN"),
        Finding("rlhf_kl_penalty", _b, _vs, (F16,), "extreme", "big_spread", ("nan",),
                "z_policy = [0.9 max, 0.45 max, -0.9 max, 0, ...] of float16, z_ref = z_policy + noise "
                "(exact 1.53)", "z - max overflows float16 (-0.9 max - 0.9 max = -inf), then 0 * inf"),
    ]

FINDINGS += [
    # ------------------------------------------------------------------ JAX (XLA:CPU)
    Finding("self_information_bits", "jax", ("jit", "eager"), (BF16, F32, F64), "extreme", "smallest_subnormal",
            ("inf", 1), "p = smallest subnormal (exact -log2 p = 133 / 149 / 1074)", _DAZ, devices=CPU_ONLY),
    Finding("self_information_bits", "jax", ("jit", "eager"), (BF16, F32, F64), "extreme", "3_subnormal",
            ("inf", 1), "p = 3 * smallest subnormal", _DAZ, devices=CPU_ONLY),
    Finding("kl_divergence", "jax", ("jit", "eager", "kl_div_jit", "kl_div_eager", "optax", "optax_eager"),
            (BF16, F32, F64), "extreme", "subnormal_q", ("inf", 1), _SUB_Q, _DAZ + ": log q_i = -inf", devices=CPU_ONLY),
    Finding("kl_divergence", "jax", ("optax", "optax_eager"), ALL, "extreme", "shared_zeros", ("nan",),
            _SHARED_ZEROS, "optax.losses.kl_divergence: targets * (0 - log_predictions) = 0 * inf"),
    Finding("cross_entropy_probs", "jax", ("jit", "eager"), (BF16, F32, F64), "extreme", "subnormal_q",
            ("inf", 1), _SUB_Q, _DAZ + ": xlogy(p, q) = -inf", devices=CPU_ONLY),
    Finding("binary_cross_entropy", "jax", ("jit", "eager"), (BF16, F32, F64), "extreme", "subnormal_t1",
            ("inf", 1), "p = 3 * smallest subnormal, t = 1 (exact 91.1 / 102.2 / 743.3)", _DAZ, devices=CPU_ONLY),
    Finding("gaussian_kl", "jax", ("jit", "eager"), (F16,), "extreme", "logvar_11.5", ("inf", 1),
            "mu = 0, logvar_3 = 11.5 (exact 49351.6, representable in float16)",
            "jnp.exp(logvar) = 98715 overflows float16 (also under jit: the fused kernel keeps float16)"),
]


def findings_for(quantity, backend, variant, dtype, case, device):
    return [f for f in FINDINGS if f.applies(quantity, backend, variant, dtype, case, device)]


# ------------------------------------------------------------------------------------------ check


def row_mask(labels, row, shape):
    """Boolean mask of the output elements that belong to the named row/element (all copies)."""
    hits = np.array([n == row for n in labels])
    if not hits.any():
        raise KeyError(f"no row {row!r} in this case; rows: {sorted(set(labels))}")
    if hits.size == int(np.prod(shape)):
        return hits.reshape(shape)
    return np.broadcast_to(hits.reshape(hits.shape + (1,) * (len(shape) - 1)), shape)


def _matches(behaviour, y, exact_hi, exact_rounded):
    kind = behaviour[0]
    if kind == "nan":
        return bool(np.isnan(y))
    if kind == "inf":
        return bool(np.isinf(y) and np.sign(y) == behaviour[1])
    if kind == "value":
        return bool(y == behaviour[1]) or (np.isnan(y) and np.isnan(behaviour[1]))
    if kind == "finite":
        return bool(np.isfinite(y)) and not np.isfinite(exact_rounded)
    if kind == "rel_error":
        if not (np.isfinite(y) and np.isfinite(exact_hi)) or exact_hi == 0:
            return False
        r = abs(y - exact_hi) / abs(exact_hi)
        return behaviour[1] <= r < behaviour[2]
    raise AssertionError(behaviour)


def check(cmp, labels, findings, tol):
    """Assert the comparison meets the tolerance except on findings, and that findings reproduce.

    Returns a list of problems (empty when everything holds)."""
    y = np.asarray(cmp.result, dtype=np.float64)
    hi = cmp.exact.hi
    expected = cmp.errors.expected
    covered = np.zeros(y.shape, bool)
    problems = []
    for f in findings:
        if f.row == "*":
            continue
        idx = row_mask(labels, f.row, y.shape)
        covered |= idx
        sub_y, sub_hi, sub_e = y[idx], hi[idx], expected[idx]
        # every copy of the row shows the behaviour (for a row quantity: one of its elements)
        per = [_matches(f.behaviour, a, b, c) for a, b, c in zip(sub_y, sub_hi, sub_e)]
        ok = any(per) if y.ndim > 1 and y.size != len(labels) else all(per)
        if not ok:
            problems.append(f"known finding no longer reproduces: {f.behaviour} on row {f.row!r} "
                            f"({f.input}); got {sub_y.tolist()}, exact {sub_hi.tolist()}")
    err = cmp.errors.abs
    with np.errstate(invalid="ignore"):
        bad_tol = np.isfinite(expected) & np.isfinite(y) & ~(err <= tol)
    bad_nf = cmp.errors.nonfinite != ""
    bad = (bad_tol | bad_nf) & ~covered
    for idx in zip(*np.nonzero(bad)):
        row = (labels[idx[0]] if len(labels) != y.size else labels[int(np.ravel_multi_index(idx, y.shape))]) \
            if labels else idx
        problems.append(f"{cmp.quantity}/{cmp.backend}:{cmp.variant}/{cmp.dtype} row {row!r} at {idx}: got {y[idx]!r}, "
                        f"exact {hi[idx]!r} (rounded {expected[idx]!r}), abs err {err[idx]!r} > tol {tol[idx]!r}"
                        f"{' [' + cmp.errors.nonfinite[idx] + ']' if cmp.errors.nonfinite[idx] else ''}")
    return problems


# ------------------------------------------------------------------------------ shared preparation

_PREPARED: dict = {}


def prepared(qname, case_name, dtype):
    """(args, labels, inputs, exact, tol) for one quantity/case/dtype, computed once per process.

    ``args`` go to ``infoaudit.compare``; ``inputs`` are those rounded to the dtype (what the
    backend and the reference see); ``exact`` is the reference's Exact, reused for every backend
    and variant (compare(..., exact=exact))."""
    key = (qname, case_name, dtype)
    if key not in _PREPARED:
        from infoaudit import reference
        from infoaudit.differential import prepare_inputs

        q = REGISTRY[qname]
        args, labels = case(qname, case_name, dtype)
        inputs = prepare_inputs(q, args, dtype)
        exact = reference.evaluate(q, *[v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind != "i"
                                        else v for v in inputs])
        tol = tolerance(qname, inputs, exact.hi, dtype)
        _PREPARED[key] = (args, labels, inputs, exact, tol)
    return _PREPARED[key]


def run_differential(backend, qname, variant, dtype, case_name, device):
    """The body of the per-backend differential tests; raises AssertionError listing problems."""
    import pytest

    from infoaudit.backends import BackendUnavailable, load

    try:
        mod = load(backend)
    except BackendUnavailable as e:
        pytest.skip(str(e))
    if device not in mod.devices():
        why = [s for s in mod.info().get("skipped", []) if s.split(":")[0] in (device, "gpu", "cuda")]
        pytest.skip(why[0] if why else f"{backend}: device {device!r} not available")
    args, labels, inputs, exact, tol = prepared(qname, case_name, dtype)
    fs = findings_for(qname, backend, variant, dtype, case_name, device)
    with recorded(backend, f"{qname} {backend}:{variant} {dtype} {case_name} on {device}"):
        return _differential(mod, backend, qname, variant, dtype, case_name, device, args, labels, exact, tol, fs)


def _differential(mod, backend, qname, variant, dtype, case_name, device, args, labels, exact, tol, fs):
    from infoaudit.differential import Unsupported, compare

    try:
        cmp = compare(qname, mod, *args, dtype=dtype, variant=variant, device=device, exact=exact)
    except Unsupported as e:
        want = [f for f in fs if f.behaviour[0] == "unsupported"]
        assert want, f"{backend}:{variant} {qname} {dtype} {case_name} unsupported, not a known finding: {e}"
        assert want[0].behaviour[1] in str(e), f"unsupported with a different message: {e}"
        return None
    assert not [f for f in fs if f.behaviour[0] == "unsupported"], "known 'unsupported' finding now runs"
    # outputs come back in the audited dtype: no rounding step that could hide or add error
    assert cmp.returned_dtype == dtype and not cmp.notes, (cmp.returned_dtype, cmp.notes)
    problems = check(cmp, labels, fs, tol)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:25])
    return cmp


def stale_findings(backend, ops_table):
    """Findings of ``backend`` that name a variant, dtype or row that does not exist."""
    bad = []
    for f in FINDINGS:
        if f.backend != backend:
            continue
        variants = [o.variant for o in ops_table.get(f.quantity, [])]
        if f.variants != ALL:
            missing = [v for v in f.variants if v not in variants]
            if missing:
                bad.append((f, f"variants {missing} not in {variants}"))
        dts = FORMATS if f.dtypes == ALL else f.dtypes
        for d in dts:
            if f.row != "*":
                _, labels = case(f.quantity, f.case, d)
                if labels is None or f.row not in labels:
                    bad.append((f, f"no row {f.row!r} in {f.case} for {d}"))
    return bad


def devices(backend):
    """Devices to collect differential tests for: "cpu" plus the accelerators present here.

    An absent GPU is not collected as hundreds of skips; ``accelerator_skip_reason`` gives the one
    visible reason instead."""
    from infoaudit.backends import BackendUnavailable, load

    try:
        return list(load(backend).devices())
    except BackendUnavailable:
        return ["cpu"]      # the cpu parametrisation skips with the backend's reason


def accelerator_skip_reason(backend, accelerator):
    """Why ``backend`` has no ``accelerator`` device here ("" when it has one)."""
    from infoaudit.backends import BackendUnavailable, load

    try:
        mod = load(backend)
    except BackendUnavailable as e:
        return str(e)
    if accelerator in mod.devices():
        return ""
    why = [s for s in mod.info().get("skipped", []) if s.split(":")[0] in (accelerator, "gpu", "cuda")]
    return why[0] if why else f"{backend}: no {accelerator} device"


def variants(backend):
    """(quantity, variant) pairs of ``backend``, or one skipped param with the reason it cannot run."""
    import pytest

    from infoaudit.backends import BackendUnavailable, load
    from infoaudit.quantities import REGISTRY

    try:
        mod = load(backend)
    except BackendUnavailable as e:
        return [pytest.param("-", "-", marks=pytest.mark.skip(reason=str(e)))]
    return [(q, op.variant) for q in REGISTRY for op in mod.ops().get(q, [])]

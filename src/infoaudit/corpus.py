"""The fixed corpus of known-hard inputs that every audit runs before the hypothesis search.

``cases(quantity, dtype)`` returns ``[(label, args_tuple), ...]``: the worked examples of the
seed documents, the edge cases of the quantity table (docs/design.md) (all -inf rows, -inf masks, +inf entries,
p = q, zs = zt, mu = logvar = 0, exp overflow/underflow thresholds of the dtype, a GPT-2-sized
row, ...) and the regression inputs of past findings (:data:`REGRESSIONS`, plus any results
file passed to :func:`from_results`). Arguments follow the registry order: float arrays rounded
once to ``dtype`` (values beyond the dtype's range are clipped to +-max, -inf/+inf kept), labels
int64, scalars Python floats representable in ``dtype``.
"""
from __future__ import annotations

import math

import numpy as np

from . import quantities as Q
from .dtypes import dtype_name
from .strategies import landmarks, nextafter_n, representable, to_dtype

INF = math.inf

# Past findings kept as regression inputs: quantity -> [(label, dtype or None, args)], args as
# nested lists / ints / floats ("inf"/"-inf"/"nan" strings allowed) in the registry order. These
# are the shrunk reproducers of findings of `infoaudit run --profile default --seed 0` (numpy,
# scipy, torch 2.13, jax 0.10), kept so that every later audit re-checks them first.
REGRESSIONS: dict[str, list] = {'binary_cross_entropy': [('past finding: numpy/composed scaled', 'float16', [[[5.960464477539063e-08]], [[0.0]]]),
                          ('past finding: torch/native nonfinite finite_expected_nonfinite',
                           'float16',
                           [[[1.0]], [[0.0]]]),
                          ('past finding: numpy/composed scaled', 'float32', [[[1.401298464324817e-45]], [[0.0]]]),
                          ('past finding: torch/native nonfinite finite_expected_nonfinite',
                           'float32',
                           [[[1.0]], [[0.0]]])],
 'binary_cross_entropy_with_logits': [('past finding: numpy/composed nonfinite wrong_infinity',
                                       'float16',
                                       [[['inf']], [[0.0]]]),
                                      ('past finding: scipy/log_expit nonfinite nan_inf_arith',
                                       'float16',
                                       [[['-inf']], [[0.0]]]),
                                      ('past finding: numpy/composed nonfinite wrong_infinity',
                                       'bfloat16',
                                       [[['inf']], [[0.0]]]),
                                      ('past finding: scipy/log_expit nonfinite nan_inf_arith',
                                       'bfloat16',
                                       [[['-inf']], [[0.0]]])],
 'binary_entropy_bits': [('past finding: numpy/composed invariant 0 <= H <= 1 bit', 'bfloat16', [[[0.4765625]]]),
                         ('past finding: numpy/composed scaled', 'float32', [[[2.9802322387695312e-08]]]),
                         ('past finding: jax/jit scaled', 'float32', [[[1.401298464324817e-45]]]),
                         ('past finding: numpy/composed scaled', 'float64', [[[2.7755575615628914e-17]]])],
 'conditional_entropy': [('past finding: scipy/xlogy nonfinite nan', 'float16', [[[[0.0]]]]),
                         ('past finding: scipy/xlogy nonfinite nan', 'bfloat16', [[[[0.0]]]]),
                         ('past finding: scipy/xlogy nonfinite nan', 'float32', [[[[0.0]]]]),
                         ('past finding: scipy/xlogy nonfinite nan', 'float64', [[[[0.0]]]])],
 'cross_entropy': [('past finding: torch/native nonfinite wrong_infinity', 'bfloat16', [[['inf', 0.0]], [1]]),
                   ('past finding: torch/native nonfinite wrong_infinity', 'float16', [[['inf', 0.0]], [1]]),
                   ('past finding: torch/native nonfinite wrong_infinity', 'float32', [[['inf', 0.0]], [1]]),
                   ('past finding: torch/native nonfinite wrong_infinity', 'float64', [[['inf', 0.0]], [1]])],
 'cross_entropy_probs': [('past finding: jax/jit nonfinite log_of_underflow',
                          'bfloat16',
                          [[[0.5]], [[9.183549615799121e-41]]]),
                         ('past finding: jax/jit nonfinite log_of_underflow',
                          'float32',
                          [[[0.5]], [[1.401298464324817e-45]]]),
                         ('past finding: jax/jit scaled',
                          'float32',
                          [[[1.4693679385278594e-39]], [[1.4693679385278594e-39]]]),
                         ('past finding: jax/jit nonfinite log_of_underflow', 'float64', [[[0.5]], [[5e-324]]])],
 'distillation_loss': [('past finding: numpy/composed nonfinite wrong_infinity',
                        'float16',
                        [[[0.0, '-inf', 0.0]], [[32768.0, 0.0, 0.0]], 1.0]),
                       ('past finding: scipy/rel_entr nonfinite log_of_underflow',
                        'float16',
                        [[[0.0, 1.0]], [[1.0, 0.0]], 0.04998779296875]),
                       ('past finding: scipy/rel_entr scaled', 'float16', [[[4.0, 0.0]], [[0.0, 0.0]], 100.0]),
                       ('past finding: torch/native nonfinite nan_inf_arith',
                        'float16',
                        [[['-inf', 0.0]], [['-inf', 0.0]], 1.0])],
 'entropy': [('past finding: scipy/stats nonfinite nan', 'float16', [[[0.0]]]),
             ('past finding: scipy/stats scaled', 'float16', [[[5.960464477539063e-08, 4.172325134277344e-07]]]),
             ('past finding: torch/distributions scaled',
              'bfloat16',
              [[[9.183549615799121e-41, 6.428484731059385e-40]]]),
             ('past finding: numpy/composed scaled', 'float32', [[[1.1210387714598537e-44]]])],
 'entropy_bits': [('past finding: scipy/stats scaled',
                   'float16',
                   [[[5.960464477539063e-08, 4.172325134277344e-07]]]),
                  ('past finding: numpy/composed scaled',
                   'float32',
                   [[[1.401298464324817e-45, 1.401298464324817e-45]]]),
                  ('past finding: jax/jit scaled', 'float32', [[[1.1210387714598537e-44]]]),
                  ('past finding: scipy/stats scaled', 'float64', [[[2.53e-321]]])],
 'gaussian_kl': [('past finding: torch/distributions nonfinite overflow', 'float16', [[[0.0]], [[-1024.0]]]),
                 ('past finding: numpy/composed nonfinite overflow', 'bfloat16', [[[0.0, 0.0]], [[88.5, 88.0]]]),
                 ('past finding: torch/distributions nonfinite overflow', 'bfloat16', [[[0.0]], [[-1024.0]]]),
                 ('past finding: torch/closed_form scaled', 'float32', [[[0.0]], [[0.00025837868452072144]]])],
 'kl_divergence': [('past finding: torch/native nonfinite nan', 'bfloat16', [[[0.0]], [[0.0]]]),
                   ('past finding: torch/distributions nonfinite wrong_infinity', 'bfloat16', [[[1.0]], [[0.0]]]),
                   ('past finding: torch/distributions invariant >= 0',
                    'bfloat16',
                    [[[1.1378785315959743e-35, 9.4039548065783e-36]],
                     [[1.0532429383367696e-35, 9.027796614315168e-36]]]),
                   ('past finding: torch/distributions scaled',
                    'bfloat16',
                    [[[0.0, 1.504632769052528e-36]], [[6.018531076210112e-36, 1.504632769052528e-36]]])],
 'label_smoothing_cross_entropy': [('past finding: numpy/composed nonfinite nan_inf_arith',
                                    'float16',
                                    [[[0.0, '-inf']], [0], 0.0]),
                                   ('past finding: jax/optax nonfinite log_of_underflow',
                                    'float16',
                                    [[[8192.0, -65504.0]], [0], 0.5]),
                                   ('past finding: numpy/composed nonfinite nan_inf_arith',
                                    'bfloat16',
                                    [[[0.0, '-inf']], [0], 0.0]),
                                   ('past finding: torch/native nonfinite wrong_infinity',
                                    'bfloat16',
                                    [[[0.0, '-inf']], [1], 1.0])],
 'log_softmax': [('past finding: numpy/composed invariant shift invariance (z + c)', 'float16', [[[0.0, 0.0]]]),
                 ('past finding: numpy/composed invariant shift invariance (z + c)', 'bfloat16', [[[0.0, 0.0]]]),
                 ('past finding: scipy/native invariant shift invariance (z + c)', 'bfloat16', [[[0.0, 1.0]]]),
                 ('past finding: numpy/composed invariant shift invariance (z + c)', 'float32', [[[0.0, 0.0]]])],
 'mutual_information': [('past finding: numpy/composed invariant >= 0',
                         'float16',
                         [[[[0.0052490234375, 0.008544921875, 0.047119140625],
                            [0.08154296875, 0.13134765625, 0.72607421875]]]]),
                        ('past finding: scipy/rel_entr nonfinite log_of_underflow',
                         'float16',
                         [[[[1.52587890625e-05]]]]),
                        ('past finding: torch/xlogy invariant >= 0',
                         'float16',
                         [[[[0.1358642578125, 0.1790771484375, 0.1317138671875],
                            [0.1683349609375, 0.2216796875, 0.1630859375]]]]),
                        ('past finding: numpy/composed invariant >= 0',
                         'bfloat16',
                         [[[[0.0390625, 0.046875, 0.15625], [0.12890625, 0.14453125, 0.482421875]]]])],
 'rlhf_kl_penalty': [('past finding: numpy/composed nonfinite wrong_infinity',
                      'float16',
                      [[[0.0, -75.0]], [[0.0, '-inf']], 1.0]),
                     ('past finding: numpy/composed invariant >= 0',
                      'float16',
                      [[[9.0, 9.0]], [[20.171875, 20.171875]], 1.0]),
                     ('past finding: scipy/rel_entr nonfinite log_of_underflow',
                      'float16',
                      [[[0.0, 0.0]], [[0.0, 8192.0]], 1.0]),
                     ('past finding: scipy/rel_entr invariant >= 0',
                      'float16',
                      [[[9.1015625, 9.046875]], [[20.1875, 20.125]], 1.0])],
 'self_information_bits': [('past finding: jax/jit nonfinite log_of_underflow',
                            'bfloat16',
                            [[[9.183549615799121e-41]]]),
                           ('past finding: jax/jit nonfinite log_of_underflow',
                            'float32',
                            [[[1.401298464324817e-45]]]),
                           ('past finding: jax/jit nonfinite log_of_underflow', 'float64', [[[5e-324]]])],
 'softmax': [('past finding: numpy/composed nonfinite finite_expected_nonfinite', 'float16', [[[0.0, 'inf']]]),
             ('past finding: numpy/composed nonfinite finite_expected_nonfinite', 'bfloat16', [[[0.0, 'inf']]]),
             ('past finding: numpy/composed invariant shift invariance (z + c)', 'bfloat16', [[[0.0, 1.0]]]),
             ('past finding: numpy/composed nonfinite finite_expected_nonfinite', 'float32', [[[0.0, 'inf']]])],
 'softplus': [('past finding: torch/native scaled', 'float64', [[[20.125]]])]}


def _row(*vals):
    return [list(vals)]


def _logits_cases(lm, dtype):
    u = lm["u"]
    over = lm["exp_over"]
    cs = [
        ("seed: logits log([0.3, 0.6, 0.1])", _row(math.log(0.3), math.log(0.6), math.log(0.1))),
        ("moderate [1, 2, 3]", _row(1.0, 2.0, 3.0)),
        ("single entry", _row(3.0)),
        ("all -inf row", _row(-INF, -INF, -INF)),
        ("-inf mask", _row(0.0, -INF, 1.0, -INF)),
        ("+inf entry", _row(0.0, INF, 1.0)),
        ("equal huge 1e4", _row(1e4, 1e4, 1e4)),
        ("equal -1e4", _row(-1e4, -1e4)),
        ("+-max", _row(lm["max"], -lm["max"], 0.0)),
        ("two at max", _row(lm["max"], lm["max"])),
        ("exp overflow threshold +1 ULP", _row(nextafter_n(over, 1, dtype), 0.0)),
        ("exp overflow threshold -1 ULP", _row(nextafter_n(over, -1, dtype), nextafter_n(over, -1, dtype))),
        ("all above the exp overflow threshold", _row(over + 2, over + 1, over + 3)),
        ("exp underflow: subnormal tail", _row(0.0, lm["exp_tiny"] - 1, lm["exp_under"] + 0.5, lm["exp_under"] - 1)),
        ("dominant entry p > 1 - u", _row(0.0, -math.log(u) + 2, 0.0, 1.0)),
        ("dominant by 1e4", _row(1e4, 0.0, -1.0)),
        ("lse cancels to ~0", _row(-math.log(2.0), -math.log(2.0))),
        ("uniform row n=1000", [[0.0] * 1000]),
        ("ties at 1e4 with one below", _row(1e4, 1e4, 1e4 - 1)),
        ("long row n=4096 ramp", [list(np.linspace(-20, 20, 4096))]),
    ]
    return cs


def _gpt2_row(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [list(rng.standard_normal(50_257) * 3.0)]


def _real_cases(lm, dtype):
    vals = [0.0, -0.0, 1.0, -1.0, INF, -INF, lm["max"], -lm["max"], lm["sub"], -lm["sub"], lm["tiny"],
            lm["exp_over"], -lm["exp_over"], lm["exp_tiny"], lm["exp_under"], -lm["exp_under"],
            lm["log_eps"], -lm["log_eps"], 20.0, -20.0, 40.0, -40.0, 1e4, -1e4, 2.0 ** -30]
    around = []
    for t in (lm["exp_over"], -lm["exp_over"], lm["log_eps"], -lm["log_eps"], lm["exp_under"], -lm["exp_under"]):
        around += [nextafter_n(t, k, dtype) for k in (-2, -1, 1, 2)]
    return [("special values", [vals]), ("thresholds +-2 ULPs", [around])]


def _probs_cases(lm):
    u, sub, tiny = lm["u"], lm["sub"], lm["tiny"]
    return [
        ("seed: [0.1, 0.5, 0.1, 0.3] (1.6855 bits)", _row(0.1, 0.5, 0.1, 0.3)),
        ("seed: uniform over 256 values (8 bits)", [[1 / 256] * 256]),
        ("seed: biased coin [0.9, 0.1] (0.469 bits)", _row(0.9, 0.1)),
        ("one-hot", _row(0.0, 1.0, 0.0)),
        ("exact zeros", _row(0.5, 0.0, 0.5, 0.0)),
        ("subnormal entries", _row(1.0 - 2 * sub, sub, sub, 3 * sub)),
        ("near-one entry", _row(1.0 - 4 * u, u, 2 * u, u)),
        ("tiny entries", _row(tiny, tiny * 3, 1.0)),
        ("all subnormal", _row(sub, 2 * sub, 7 * sub)),
    ]


def _pair_cases(lm):
    sub, u = lm["sub"], lm["u"]
    return [
        ("seed: p = [0.1, 0.5, 0.1, 0.3], q uniform", _row(0.1, 0.5, 0.1, 0.3), _row(0.25, 0.25, 0.25, 0.25)),
        ("p = q (KL exactly 0)", _row(0.1, 0.5, 0.1, 0.3), _row(0.1, 0.5, 0.1, 0.3)),
        ("q = 0 where p > 0 (+inf)", _row(0.5, 0.5), _row(1.0, 0.0)),
        ("p = 0 where q = 0 (0 log 0)", _row(1.0, 0.0), _row(1.0, 0.0)),
        ("q subnormal where p is not", _row(0.5, 0.5), _row(1.0 - sub, sub)),
        ("p one ULP from q", _row(0.5 + u, 0.5 - u), _row(0.5, 0.5)),
        ("p subnormal, q tiny", _row(sub, 1.0 - sub), _row(lm["tiny"], 1.0)),
    ]


def _prob1_cases(lm):
    u, sub = lm["u"], lm["sub"]
    return [("seed values: 1/64 (6 bits), 0.9, 0.1, 0, 1, 0.5",
             [[1 / 64, 0.9, 0.1, 0.0, 1.0, 0.5]]),
            ("near 0 and 1", [[sub, lm["tiny"], 1.0 - u, 1.0 - 2 * u, u, 1e-30]])]


def _table_cases(lm):
    sub = lm["sub"]
    return [
        ("seed: [[0.1, 0.5], [0.1, 0.3]]", [[[0.1, 0.5], [0.1, 0.3]]]),
        ("seed: [[0.1, 0.5], [0.2, 0.3]] (H(Y|X) example)", [[[0.1, 0.5], [0.2, 0.3]]]),
        ("independent table (I = 0 up to rounding)", [[[0.06, 0.14], [0.24, 0.56]]]),
        ("zeros in the table", [[[0.5, 0.0], [0.0, 0.5]]]),
        ("deterministic diagonal", [[[1 / 3, 0, 0], [0, 1 / 3, 0], [0, 0, 1 / 3]]]),
        ("subnormal cells", [[[0.5 - sub, sub], [sub, 0.5 - sub]]]),
        ("single cell", [[[1.0]]]),
    ]


def _arr(v, dtype):
    return to_dtype(np.array(v, dtype=np.float64), dtype)


def _built(quantity, dtype):
    q = Q.get(quantity)
    lm = landmarks(dtype)
    kinds = tuple(a.kind for a in q.args)
    A = lambda v: _arr(v, dtype)  # noqa: E731
    out = []
    if kinds == (Q.LOGITS,):
        out = [(lab, (A(z),)) for lab, z in _logits_cases(lm, dtype)]
        if q.name in ("logsumexp",):
            out.append(("GPT-2 vocabulary row n=50257", (A(_gpt2_row(dtype)),)))
    elif kinds == (Q.LOGITS, Q.LABEL):
        for lab, z in _logits_cases(lm, dtype):
            za = A(z)
            n = za.shape[-1]
            zf = za.astype(np.float64)
            with np.errstate(invalid="ignore"):
                am = int(np.argmax(np.where(np.isnan(zf), -np.inf, zf)[0]))
            out.append((lab + ", y = argmax", (za, np.array([am], dtype=np.int64))))
            if n > 1:
                other = (am + 1) % n
                out.append((lab + f", y = {other}", (za, np.array([other], dtype=np.int64))))
        out.append(("seed: preds [[0.3,0.6,0.1],[0.2,0.3,0.5]], labels [0, 2] as logits",
                    (A(np.log([[0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])), np.array([0, 2], dtype=np.int64))))
        out.append(("GPT-2 vocabulary row n=50257, y = 0", (A(_gpt2_row(dtype)), np.array([0], dtype=np.int64))))
    elif kinds == (Q.LOGPROBS, Q.LABEL):
        out = [("seed: log(preds), labels [0, 2] (0.9486)",
                (A(np.log([[0.3, 0.6, 0.1], [0.2, 0.3, 0.5]])), np.array([0, 2], dtype=np.int64))),
               ("-inf at the label", (A([[0.0, -INF]]), np.array([1], dtype=np.int64))),
               ("-max at the label", (A([[-lm["max"], 0.0]]), np.array([0], dtype=np.int64)))]
    elif kinds == (Q.LOGITS, Q.LABEL, Q.EPS):
        base = [("seed logits, eps 0.1", A(np.log([[0.3, 0.6, 0.1]])), [0], 0.1),
                ("masked non-target, eps 0", A([[0.0, -INF, 1.0]]), [0], 0.0),
                ("masked non-target, eps 0.1 (+inf)", A([[0.0, -INF, 1.0]]), [0], 0.1),
                ("eps 1 (uniform target)", A([[1.0, 2.0, 3.0]]), [2], 1.0),
                ("huge logits 1e4, eps 0.1", A([[1e4, -1e4, 0.0]]), [1], 0.1),
                ("dominant, eps 1e-3", A([[0.0, -math.log(lm["u"]) + 2, 0.0]]), [1], 1e-3),
                ("all -inf row", A([[-INF, -INF]]), [0], 0.1),
                ("long row n=4096, eps 0.1", A([list(np.linspace(-20, 20, 4096))]), [7], 0.1)]
        out = [(lab, (z, np.array(y, dtype=np.int64), representable(e, dtype))) for lab, z, y, e in base]
    elif kinds == (Q.LOGITS, Q.LOGITS, Q.TEMPERATURE):
        z = [[1.0, 2.0, 3.0, -1.0]]
        out = [("zs = zt (loss exactly 0)", (A(z), A(z), 1.0)),
               ("zt = zs + 5 (loss exactly 0)", (A(z), A(np.array(z) + 5), 2.0)),
               ("T = 0.05, moderate", (A(z), A([[3.0, 2.0, 1.0, 0.0]]), representable(0.05, dtype))),
               ("T = 100, nearly equal", (A(z), A([[1.0, 2.0, 3.0, -0.9375]]), 100.0)),
               ("huge logits 1e4, T = 2", (A([[1e4, 0.0]]), A([[0.0, 1e4]]), 2.0)),
               ("masked teacher entry", (A(z), A([[1.0, -INF, 3.0, -1.0]]), 1.0)),
               ("masked student entry (+inf)", (A([[1.0, -INF, 3.0, -1.0]]), A(z), 1.0)),
               ("logits near the exp overflow threshold, T = 0.05",
                (A([[lm["exp_over"], 0.0]]), A([[0.0, lm["exp_over"]]]), representable(0.05, dtype)))]
    elif kinds == (Q.LOGITS, Q.LOGITS, Q.BETA):
        z = [[1.0, 2.0, 3.0, -1.0]]
        out = [("policy = ref (penalty exactly 0)", (A(z), A(z), 0.1)),
               ("ref = policy - 7 (penalty exactly 0)", (A(z), A(np.array(z) - 7), 0.1)),
               ("one ULP apart", (A(z), A([[nextafter_n(1.0, 1, dtype), 2.0, 3.0, -1.0]]), 1.0)),
               ("masked ref entry (+inf)", (A(z), A([[1.0, -INF, 3.0, -1.0]]), 1.0)),
               ("masked policy entry", (A([[1.0, -INF, 3.0, -1.0]]), A(z), 1.0)),
               ("huge logits 1e4", (A([[1e4, 0.0, -1e4]]), A([[0.0, 1e4, 5.0]]), 0.05))]
    elif kinds == (Q.PROBS,):
        out = [(lab, (A(p),)) for lab, p in _probs_cases(lm)]
    elif kinds == (Q.PROBS, Q.PROBS):
        out = [(lab, (A(p), A(qq))) for lab, p, qq in _pair_cases(lm)]
    elif kinds == (Q.REAL,):
        out = [(lab, (A(x),)) for lab, x in _real_cases(lm, dtype)]
    elif kinds == (Q.REAL, Q.TARGET01):
        for lab, x in _real_cases(lm, dtype):
            xa = A(x)
            for t in (0.0, 1.0, 0.5):
                out.append((f"{lab}, t = {t}", (xa, A(np.full(xa.shape, t)))))
    elif kinds == (Q.PROB,):
        out = [(lab, (A(p),)) for lab, p in _prob1_cases(lm)]
    elif kinds == (Q.PROB, Q.TARGET01):
        for lab, p in _prob1_cases(lm):
            pa = A(p)
            for t in (0.0, 1.0, 0.5):
                out.append((f"{lab}, t = {t}", (pa, A(np.full(pa.shape, t)))))
    elif kinds == (Q.MU, Q.LOGVAR):
        out = [("mu = logvar = 0 (KL exactly 0)", (A([[0.0, 0.0]]), A([[0.0, 0.0]]))),
               ("logvar = -1e3", (A([[0.0]]), A([[-1e3]]))),
               ("logvar tiny (expm1 - x cancels)", (A([[0.0, 0.0]]), A([[2.0 ** -12, -(2.0 ** -12)]]))),
               ("logvar at the exp overflow threshold", (A([[0.0]]), A([[nextafter_n(lm["exp_over"], -1, dtype)]]))),
               ("logvar above the exp overflow threshold", (A([[0.0]]), A([[lm["exp_over"] + 1]]))),
               ("mu at sqrt(max)", (A([[lm["sqrt_max"] * 1.5]]), A([[0.0]]))),
               ("mu = max", (A([[lm["max"]]]), A([[0.0]]))),
               ("logvar = -inf (+inf)", (A([[0.0]]), A([[-INF]])))]
    elif kinds == (Q.TABLE,):
        out = [(lab, (A(P),)) for lab, P in _table_cases(lm)]
    elif kinds == (Q.LOGITS, Q.LABEL, Q.SAMPLES, Q.LOG_PROPOSAL):
        out = _sampled_cases(lm, A)
    elif q.structure == Q.ADAPTIVE:
        out = _adaptive_cases(lm, A)
    return out


def _sampled_cases(lm, A):
    """sampled_softmax_cross_entropy: the hand-worked V = 4 case, hits and duplicates, corrected
    logits beyond the exp overflow threshold, a masked target, a dominant sample."""
    I64 = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    z, lq = A([[1.0, 2.0, 0.0, 3.0]]), A([[-1.0, -2.0, -2.0, -1.0]])
    X = lm["exp_over"]
    big = A([[X + 1, 0.5 * X, 2 * X, 0.0]])
    return [("hand case a = z - log q = [2, 4, 2, 4], y = 0, samples [1, 2] (log(2 + e^2))", (z, I64([0]), I64([[1, 2]]), lq)),
            ("accidental hits and duplicates", (z, I64([0]), I64([[0, 1, 1, 0]]), lq)),
            ("every sample a hit (loss 0)", (z, I64([2]), I64([[2, 2]]), lq)),
            ("corrected logits beyond the exp overflow threshold", (big, I64([1]), I64([[0, 2, 3]]), lq)),
            ("masked target (+inf)", (A([[-INF, 2.0, 0.0, 3.0]]), I64([0]), I64([[1, 3]]), lq)),
            ("dominant sample (loss ~ a_s - a_y)", (A([[0.0, -1.0, -1.0, -0.5 * X]]), I64([3]), I64([[0, 1]]), lq))]


def _adaptive_cases(lm, A):
    """adaptive_log_softmax: a uniform tree (d = 1), a near-zero head log-probability (d = 4: the
    head's log_softmax must keep a tail below the unit roundoff), head logits beyond the exp
    overflow threshold (d = 2). Distinct d so that the run never stacks two cases' weights."""
    X = lm["exp_over"]
    return [("uniform tree: log(1/3), log(1/6), log(1/6), log(1/3)",
             (A([[1.0]]), A([[0.0], [0.0], [0.0]]), A([[1.0]]), A([[0.0], [0.0]]), A([[1.0]]), A([[0.0]]))),
            ("head log-probability near 0 (-2.86e-4)",
             (A([[9.0, 1.0, 3.0, -8.0]]), A([[-0.5, 0, 0, 0.125], [-0.03125, 1, 0, -0.25], [-1, 0, 0, 0], [-1, 0, 0, 0]]),
              A(np.zeros((2, 4))), A(np.zeros((3, 2))), A(np.zeros((1, 4))), A(np.zeros((2, 1))))),
            ("head logits beyond the exp overflow threshold",
             (A([[X, 1.0]]), A([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.5, 0.0]]), A([[1.0, 1.0]]), A([[1.0], [2.0]]),
              A([[0.0, 1.0]]), A([[1.0], [-1.0]])))]


def _dec(v):
    if isinstance(v, list):
        return [_dec(x) for x in v]
    return float(v) if isinstance(v, str) else v


def _from_lists(q, args, dtype):
    args = [_dec(a) for a in args]
    out = []
    for arg, v in zip(q.args, args):
        if arg.is_float_array:
            out.append(_arr(v, dtype))
        elif arg.is_index_array:
            out.append(np.asarray(v, dtype=np.int64))
        else:
            out.append(representable(float(v), dtype))
    return tuple(out)


def cases(quantity, dtype, extra=()) -> list:
    """Known-hard fixed cases ``[(label, args_tuple), ...]`` for ``quantity`` in ``dtype``.

    ``extra``: more ``(label, dtype_or_None, args_lists)`` regression entries (e.g. from
    :func:`from_results`). Cases that the quantity's validation rejects are dropped.
    """
    q = Q.get(quantity)
    d = dtype_name(dtype)
    out = list(_built(q.name, d))
    for lab, dt, args in list(REGRESSIONS.get(q.name, [])) + [e for e in extra]:
        if dt is not None and dtype_name(dt) != d:
            continue
        try:
            out.append((lab, _from_lists(q, args, d)))
        except Exception:  # noqa: BLE001 - a stored case that no longer fits is skipped
            continue
    good = []
    for lab, args in out:
        try:
            Q.validate(q, args)
        except Q.InputError:
            continue
        good.append((lab, args))
    return good


def from_results(path, quantity=None) -> dict:
    """Regression entries ``{quantity: [(label, dtype, args_lists)]}`` from a results JSON file.

    Loaded and validated by :func:`infoaudit.results.compare_cells.load_document` (the loader of
    ``infoaudit diff``: a missing, unreadable or non-results file raises its one-line
    ``DocumentError``, a ValueError); the cases are each cell's stored worst cases, shrunk where
    possible (:func:`infoaudit.results.compare_cells.worst_cases`)."""
    from .results.compare_cells import load_document, worst_cases

    doc = load_document(path)
    out: dict = {}
    for cell in doc["cells"].values():
        if quantity is not None and cell.get("quantity") != quantity:
            continue
        for metric, case in worst_cases(cell):
            lab = f"past finding: {cell['backend']}/{cell['variant']} {metric}"
            out.setdefault(cell["quantity"], []).append((lab, cell["dtype"], _decode_args(case["args"])))
    return out


def _decode_args(args):
    def dec(v):
        if isinstance(v, dict) and "values" in v:
            return [dec(x) for x in v["values"]] if isinstance(v["values"], list) else v["values"]
        if isinstance(v, list):
            return [dec(x) for x in v]
        if isinstance(v, str):
            return float(v)
        return v
    return [dec(a) for a in args]


__all__ = ["cases", "from_results", "REGRESSIONS"]

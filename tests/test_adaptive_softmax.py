"""adaptive_log_softmax: the exact hierarchical reference against hand derivations, the backends
(torch's nn.AdaptiveLogSoftmaxWithLoss.log_prob among them) through the judge in every dtype,
torch's float16 reproducer, and the gate on a stable and a naive user implementation."""
from __future__ import annotations

import mpmath
import numpy as np
import pytest

from infoaudit import quantities as Q
from infoaudit import reference
from infoaudit.dtypes import cast, round_mpf
from tests.conftest import backend_or_skip

NAME = "adaptive_log_softmax"


def f64(fn):
    with mpmath.workprec(200):
        return round_mpf(fn(), "float64")


def _args(h, head, p1, o1, p2, o2, dtype="float64"):
    return tuple(cast(np.asarray(a, dtype=np.float64), dtype) for a in (h, head, p1, o1, p2, o2))


def test_hand_derivation_uniform():
    # d = 1, S = 1, clusters of 2 and 1 classes; all head / tail logits 0:
    # head = log(1/3) for the shortlist class and both cluster tokens; cluster 1 = log(1/3) + log(1/2),
    # cluster 2 = log(1/3) + log 1.  V = 4, probabilities 1/3, 1/6, 1/6, 1/3.
    args = _args([[1.0]], [[0.0], [0.0], [0.0]], [[1.0]], [[0.0], [0.0]], [[1.0]], [[0.0]])
    got = reference.evaluate(NAME, *args).hi[0]
    want = [f64(lambda: -mpmath.log(3)), f64(lambda: -mpmath.log(6)), f64(lambda: -mpmath.log(6)),
            f64(lambda: -mpmath.log(3))]
    assert list(got) == want


def test_hand_derivation_products():
    # h = [1, 2]; W_head rows [1, 0], [0, 1], [1, 1], [0, 0] -> head logits [1, 2, 3, 0], S = 2.
    # P_1 = [[1, -1]] -> u_1 = -1; O_1 = [[2], [0]] -> tail logits [-2, 0].
    # P_2 = [[0.5, 0.5]] -> u_2 = 1.5; O_2 = [[2]] -> one class, log 1 = 0.
    args = _args([[1.0, 2.0]], [[1, 0], [0, 1], [1, 1], [0, 0]], [[1, -1]], [[2], [0]], [[0.5, 0.5]], [[2]])
    got = reference.evaluate(NAME, *args).hi[0]

    def lse(*xs):
        return mpmath.log(sum(mpmath.e ** x for x in xs))

    want = [f64(lambda: 1 - lse(1, 2, 3, 0)), f64(lambda: 2 - lse(1, 2, 3, 0)),
            f64(lambda: 3 - lse(1, 2, 3, 0) + (-2 - lse(-2, 0))), f64(lambda: 3 - lse(1, 2, 3, 0) + (0 - lse(-2, 0))),
            f64(lambda: 0 - lse(1, 2, 3, 0))]
    assert list(got) == want
    with mpmath.workprec(200):  # the probabilities sum to 1
        assert abs(sum(mpmath.e ** mpmath.mpf(v) for v in got) - 1) < 1e-14


def test_matrix_products_are_exact():
    # h W^T with terms that cancel in float64: 1e16 + 1 - 1e16 = 1 exactly (float64 would give 0 or 2)
    h = [[1e16, 1.0, -1e16]]
    head = [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    args = _args(h, head, [[0.0, 0.0, 0.0]], [[0.0]], [[0.0, 0.0, 0.0]], [[0.0]])
    got = reference.evaluate(NAME, *args).hi[0]
    # head logits [1, 0, 0]: log p_0 = 1 - log(e + 2); clusters of one class: log(1 / (e + 2))
    assert got[0] == f64(lambda: 1 - mpmath.log(mpmath.e + 2))
    assert got[1] == got[2] == f64(lambda: -mpmath.log(mpmath.e + 2))


def test_validation():
    good = _args([[1.0, 2.0]], np.zeros((3, 2)), np.zeros((1, 2)), np.zeros((2, 1)), np.zeros((1, 2)), np.zeros((1, 1)))
    assert Q.output_shape(Q.get(NAME), Q.validate(NAME, good)) == (1, 4)
    with pytest.raises(Q.InputError, match="head_weight"):
        Q.validate(NAME, (good[0], np.zeros((2, 2))) + good[2:])   # S = 0
    with pytest.raises(Q.InputError, match="out_1"):
        Q.validate(NAME, good[:3] + (np.zeros((2, 3)),) + good[4:])


CASES = [
    ([[9.0, 1.0, 3.0, -8.0]], [[-0.5, 0, 0, 0.125], [-0.03125, 1, 0, -0.25], [-1, 0, 0, 0], [-1, 0, 0, 0]],
     np.zeros((2, 4)), np.zeros((3, 2)), np.zeros((1, 4)), np.zeros((2, 1))),
]


def _random_case(seed, batch=2, d=8, S=5, o1=6, o2=3, scale=1.0):
    rng = np.random.default_rng(seed)
    shapes = [(S + 2, d), (d // 2, d), (o1, d // 2), (d // 4, d), (o2, d // 4)]
    return (rng.standard_normal((batch, d)) * scale,) + tuple(rng.uniform(-1, 1, s) / np.sqrt(s[1]) for s in shapes)


@pytest.mark.parametrize("backend", ["numpy", "scipy", "torch", "jax"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "float16", "bfloat16"])
def test_backends_pass_the_judge(backend, dtype):
    """Every backend's op, torch's nn.AdaptiveLogSoftmaxWithLoss.log_prob included, passes the default
    profile (envelope and better) in every dtype torch runs on the CPU."""
    from infoaudit import judging

    mod = backend_or_skip(backend)
    for case in [_random_case(1), _random_case(2, scale=30.0)] + CASES:
        args = _args(*case, dtype=dtype)
        for op in mod.ops()[NAME]:
            out = mod.to_numpy(op.fn(*[mod.to_backend(a) for a in args]))
            out = cast(np.asarray(out).astype(np.float64), dtype)
            j = judging.judge(NAME, args, out, dtype=dtype)
            assert j.grade in ("correctly_rounded", "faithful", "conditioned", "envelope"), (backend, op.variant, j.grade)


def test_torch_float16_reproducer_envelope_not_conditioned():
    """The run's shrunk finding: head logits [-5.5, 2.71875, -9, -9] (exact products), so
    log p_1 = -log1p(e^-8.21875 + 2 e^-11.71875) = -2.858e-4 (hand derivation), well conditioned
    (kappa 18); torch's float16 log_prob returns 0.0: the head's log_softmax drops the tail sum
    below float16's unit roundoff. Graded envelope: passes default, fails strict."""
    mod = backend_or_skip("torch")
    from infoaudit import judging

    args = _args(*CASES[0], dtype="float16")
    exact = reference.evaluate(NAME, *args)
    assert exact.hi[0, 1] == f64(lambda: -mpmath.log1p(mpmath.e ** mpmath.mpf(-8.21875)
                                                       + 2 * mpmath.e ** mpmath.mpf(-11.71875)))
    op = next(o for o in mod.ops()[NAME] if o.variant == "native")
    out = mod.to_numpy(op.fn(*[mod.to_backend(a) for a in args])).astype(np.float64)
    j = judging.judge(NAME, args, out, exact=exact, dtype="float16")
    if out[0, 1] == 0.0:                       # what torch 2.x on CPU does
        assert j.grade == "envelope"
    else:                                      # a torch that keeps the tail: at least conditioned
        assert j.grade in ("correctly_rounded", "faithful", "conditioned")


def _stable(h, head_weight, proj_1, out_1, proj_2, out_2):
    import torch

    S = head_weight.shape[0] - 2
    head = torch.log_softmax(h @ head_weight.T, -1)
    parts = [head[:, :S]]
    for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2))):
        parts.append(head[:, S + i:S + i + 1] + torch.log_softmax((h @ P.T) @ O.T, -1))
    return torch.cat(parts, -1)


def _naive(h, head_weight, proj_1, out_1, proj_2, out_2):
    """softmax then log, no max-subtraction: exp overflows / log(0) underflows."""
    import torch

    S = head_weight.shape[0] - 2
    e = torch.exp(h @ head_weight.T)
    head = torch.log(e / e.sum(-1, keepdim=True))
    parts = [head[:, :S]]
    for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2))):
        t = torch.exp((h @ P.T) @ O.T)
        parts.append(head[:, S + i:S + i + 1] + torch.log(t / t.sum(-1, keepdim=True)))
    return torch.cat(parts, -1)


def test_gate_passes_a_stable_user_adaptive_softmax_and_fails_a_naive_one():
    backend_or_skip("torch")
    from infoaudit import gate as G

    ok = G.run_gate(_stable, NAME, "torch", dtypes=["float32"], examples=8, seed=0)
    assert ok.exit_code == 0, [(r.dtype, r.verdict, r.grade) for r in ok.results]
    bad = G.run_gate(_naive, NAME, "torch", dtypes=["float32"], examples=8, seed=0)
    assert bad.exit_code == 1

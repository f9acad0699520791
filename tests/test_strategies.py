"""The input strategies and the fixed corpus: types, dtypes, coverage of the hard cases, diversity."""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings

from infoaudit import corpus, quantities, strategies
from infoaudit.dtypes import DTYPES, FORMATS, np_dtype

FEW = settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _check_types(q, dtype, args):
    assert isinstance(args, tuple) and len(args) == len(q.args)
    for a, arg in zip(args, q.args):
        if arg.is_float_array:
            assert isinstance(a, np.ndarray) and a.dtype == np_dtype(dtype), (arg.name, a.dtype)
            assert a.ndim == (3 if q.structure == quantities.TABLE_REDUCE else 2)
            assert a.shape[0] <= 4 or arg.kind == quantities.WEIGHT  # adaptive softmax weights: (out, in)
        elif arg.is_index_array:
            assert a.dtype == np.int64
        else:
            assert type(a) is float
            # scalars are exactly representable in the audited dtype
            assert float(np.array(a).astype(np_dtype(dtype)).astype(np.float64)) == a
    quantities.validate(q, args)


@pytest.mark.parametrize("name", list(quantities.REGISTRY))
def test_arguments_types_all_quantities(name):
    q = quantities.get(name)
    for dtype in DTYPES:
        @FEW
        @given(strategies.arguments(name, dtype, "quick"))
        def check(args):
            _check_types(q, dtype, args)
        check()


def test_bfloat16_arrays_are_ml_dtypes():
    @FEW
    @given(strategies.arguments("softmax", "bfloat16"))
    def check(args):
        assert args[0].dtype == np.dtype(ml_dtypes.bfloat16)
    check()


def test_long_rows_are_diverse_and_profiles_reach_their_lengths():
    assert max(n for _, n in strategies.shape_menu("softmax", "default")) >= 4096
    thorough = [n for _, n in strategies.shape_menu("softmax", "thorough")]
    assert max(thorough) >= 131_072 and 50_257 in thorough
    seen = []

    @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategies.cases("softmax", "float32", "default", shapes=[(1, 4096)]))
    def check(case):
        z = case.args[0].astype(np.float64)
        if case.recipe["z.family"] in ("moderate", "wide", "huge", "near_underflow"):
            seen.append(len(np.unique(z[np.isfinite(z)])))
    check()
    assert seen and max(seen) > 1000, seen  # hypothesis.extra.numpy gives ~17 distinct values at n=1000


def test_free_shapes():
    @FEW
    @given(strategies.arguments("entropy", "float32", "quick", shapes="free"))
    def check(args):
        assert 1 <= args[0].shape[-1] <= strategies.max_len("entropy", "quick")
    check()


def test_landmarks_exp_thresholds():
    lm = strategies.landmarks("float16")
    assert abs(lm["exp_over"] - math.log(65504.0)) < 1e-12
    assert strategies.landmarks("float32")["exp_over"] == pytest.approx(88.72, abs=0.01)
    assert strategies.landmarks("float64")["exp_over"] == pytest.approx(709.78, abs=0.01)
    assert strategies.nextafter_n(1.0, 1, "bfloat16") == 1.0 + 2.0 ** -7
    assert strategies.nextafter_n(0.0, -1, "float32") == -FORMATS["float32"].smallest_subnormal


def _finds(strategy, cond):
    return find(strategy, cond, settings=settings(max_examples=2000, deadline=None, database=None,
                                                  suppress_health_check=list(HealthCheck)))


def test_search_space_reaches_the_hard_cases():
    # each kind of hard input is reachable, and hypothesis shrinks it to a small example
    z = _finds(strategies.arguments("softmax", "float32"), lambda a: np.isneginf(a[0].astype(float)).all(axis=-1).any())[0]
    assert z.shape[-1] <= 16
    _finds(strategies.arguments("softmax", "float16"),
           lambda a: (a[0].astype(float) > strategies.landmarks("float16")["exp_over"]).any())
    _finds(strategies.arguments("softmax", "float32"), lambda a: (a[0].astype(float) == FORMATS["float32"].max).any())
    p = strategies.arguments("entropy", "float32")
    _finds(p, lambda a: ((a[0] > 0) & (a[0] < FORMATS["float32"].tiny)).any())
    _finds(p, lambda a: (a[0].astype(float) == 0).any())
    _finds(p, lambda a: (a[0].astype(float) >= 1 - 8 * FORMATS["float32"].unit_roundoff).any())
    kl = strategies.arguments("kl_divergence", "float32")
    _finds(kl, lambda a: ((a[1] == 0) & (a[0] > 0)).any())
    _finds(strategies.arguments("distillation_loss", "float32"), lambda a: np.array_equal(a[0], a[1]))
    t = _finds(strategies.arguments("distillation_loss", "float32"), lambda a: a[2] < 0.1)[2]
    assert 0.05 <= t < 0.1
    lv = _finds(strategies.arguments("gaussian_kl", "float32"), lambda a: (a[1] < -500).any())[1]
    assert lv.min() >= -1000.0


def test_corpus_cases_valid_for_every_quantity_and_dtype():
    for name in quantities.REGISTRY:
        q = quantities.get(name)
        for dtype in DTYPES:
            cs = corpus.cases(name, dtype)
            assert cs, (name, dtype)
            for label, args in cs:
                assert isinstance(label, str) and label
                _check_types_loose(q, dtype, args)


def _check_types_loose(q, dtype, args):
    for a, arg in zip(args, q.args):
        if arg.is_float_array:
            assert a.dtype == np_dtype(dtype)
    quantities.validate(q, args)


def test_corpus_holds_the_design_edge_cases_and_seed_examples():
    labels = [lab for lab, _ in corpus.cases("softmax", "float16")]
    assert any("all -inf" in lab for lab in labels) and any("+inf" in lab for lab in labels)
    assert any("overflow" in lab for lab in labels)
    ent = dict(corpus.cases("entropy_bits", "float32"))
    p = ent["seed: [0.1, 0.5, 0.1, 0.3] (1.6855 bits)"][0]
    assert p.dtype == np.float32 and p.shape == (1, 4)
    assert any("GPT-2" in lab for lab, _ in corpus.cases("cross_entropy", "float32"))
    assert any("exactly 0" in lab for lab, _ in corpus.cases("gaussian_kl", "float64"))

"""Gate profiles: the shipped tables, user-defined ones, and the forced-error scales S."""
from __future__ import annotations

import math

import numpy as np
import pytest

from infoaudit import options as O
from infoaudit import quantities as Q
from infoaudit.audits import profiles as P


@pytest.mark.parametrize("name", P.BUILTIN)
def test_builtin_profiles_load_and_every_threshold_has_a_reason(name):
    prof = P.load(name)
    assert prof.rules
    for r in prof.rules:
        assert r.reason and "\n" not in r.reason
        assert r.metric in P.METRICS
    for q in Q.REGISTRY:
        for d in ("float16", "bfloat16", "float32", "float64"):
            t = prof.thresholds(q, d)
            assert t.nonfinite == 0
            assert set(t.reasons) >= {"nonfinite", "ulp", "floor", "invariants"}
            assert t.ulp_limit(1) == t.ulp


def test_strict_is_stricter_than_default():
    d = P.load("default").thresholds("softmax", "float16")
    s = P.load("strict").thresholds("softmax", "float16")
    assert s.ulp < d.ulp and s.floor < d.floor and s.ulp_limit(1024) < d.ulp_limit(1024)
    assert s.require_nan and not d.require_nan
    assert s.infinite_inputs == "all" and d.infinite_inputs == "masks"


def test_later_rules_override_and_patterns_match():
    rules = P.parse_rules([
        {"quantity": "*", "dtype": "*", "ulp": 4, "reason": "base"},
        {"quantity": ["softmax", "log_softmax"], "dtype": "float16", "ulp": 9, "reason": "fp16 softmax"},
    ], "test")
    prof = P.Profile("t", "", rules)
    assert prof.thresholds("softmax", "float16").ulp == 9
    assert prof.thresholds("softmax", "float16").reasons["ulp"] == "fp16 softmax"
    assert prof.thresholds("softmax", "float32").ulp == 4
    assert prof.thresholds("entropy", "float16").ulp == 4


@pytest.mark.parametrize("rule, msg", [
    ({"quantity": "*", "ulp": 4}, "reason"),
    ({"quantity": "*", "ulp": 4, "floor": 2, "reason": "x"}, "exactly one threshold"),
    ({"quantity": "softmaks", "ulp": 4, "reason": "x"}, "unknown quantity"),
    ({"dtype": "float8", "ulp": 4, "reason": "x"}, "unknown dtype"),
    ({"ulp": -1, "reason": "x"}, "not a valid value"),
    ({"ulps": 3, "reason": "x"}, "unknown key"),
    ({"infinite_inputs": "some", "reason": "x"}, "not a valid value"),
])
def test_bad_rules_are_rejected_with_a_clear_message(rule, msg):
    with pytest.raises(P.ProfileError, match=msg):
        P.parse_rules([rule], "test")


def test_user_profile_from_pyproject_extends_a_builtin(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.infoaudit]\nexamples = 7\n\n[tool.infoaudit.profiles.team]\nextends = "strict"\n'
        '[[tool.infoaudit.profiles.team.rule]]\nquantity = "softmax"\ndtype = "float16"\nulp = 2\n'
        'reason = "our fused kernel rounds twice"\n')
    monkeypatch.chdir(tmp_path)
    cfg = O.tool_config()
    opts = O.resolve({}, cfg)
    assert opts["examples"] == 7
    prof = P.load("team", opts["profiles_config"])
    t = prof.thresholds("softmax", "float16")
    assert t.ulp == 2 and t.reasons["ulp"] == "our fused kernel rounds twice"
    assert t.floor == P.load("strict").thresholds("softmax", "float16").floor
    with pytest.raises(P.ProfileError, match="unknown profile"):
        P.load("nope", opts["profiles_config"])


def test_profile_from_a_toml_file(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('name = "mine"\nextends = "default"\n[[rule]]\nquantity = "gaussian_kl"\nfloor = 16\n'
                 'reason = "VAE loss: cancellation near logvar = 0 is acceptable to us at 16 u S"\n')
    prof = P.load(str(p))
    assert prof.name == "mine" and prof.thresholds("gaussian_kl", "float32").floor == 16
    assert prof.thresholds("softmax", "float32").floor == P.load("default").thresholds("softmax", "float32").floor


def test_options_table_drives_both_argparse_and_pytest():
    import argparse

    p = argparse.ArgumentParser()
    O.add_to_argparse(p)
    flags = {a.option_strings[0] for a in p._actions if a.option_strings and a.dest != "help"}
    assert flags == {o.cli_flag for o in O.OPTIONS}

    class FakeGroup:
        def __init__(self):
            self.opts = []

        def addoption(self, flag, **kw):
            self.opts.append(flag)

    class FakeParser:
        def __init__(self):
            self.g = FakeGroup()
            self.ini = []

        def getgroup(self, *a):
            return self.g

        def addini(self, name, **kw):
            self.ini.append(name)

    fp = FakeParser()
    O.add_to_pytest(fp)
    assert fp.g.opts == [o.pytest_flag for o in O.OPTIONS if not o.cli_only]
    assert fp.ini == [o.ini_name for o in O.OPTIONS if not o.cli_only]


def test_option_resolution_precedence_and_conversion():
    opts = O.resolve({"examples": None, "seed": 5}, {"examples": "12", "seed": 1, "dtype": "fp16, bf16"})
    assert opts["examples"] == 12 and opts["seed"] == 5 and opts["dtype"] == ("float16", "bfloat16")
    with pytest.raises(ValueError, match="--examples"):
        O.resolve({"examples": "-3"}, {})


# ------------------------------------------------------------------ forced-error scales


def _sample_inputs(q, d="float32"):
    from infoaudit.audits.gate import probes

    return [args for _, args in probes(q, d)]


@pytest.mark.parametrize("q", list(Q.REGISTRY))
def test_scales_are_finite_nonnegative_and_shaped_like_the_output(q):
    for args in _sample_inputs(q):
        vals = Q.validate(Q.get(q), args)
        s = P.scale(q, args)
        assert s.shape == Q.output_shape(Q.get(q), vals)
        assert np.all(np.isfinite(s)) and np.all(s >= 0)


def test_scale_is_the_sum_of_term_magnitudes_for_kl():
    p = np.array([[0.5, 0.5]])
    q = np.array([[0.25, 0.75]])
    s = P.scale("kl_divergence", [p, q])[0]
    want = 0.5 * (abs(math.log(0.5)) + abs(math.log(0.25))) + 0.5 * (abs(math.log(0.5)) + abs(math.log(0.75)))
    assert s == pytest.approx(want)


def test_scale_covers_gaussian_kl_near_zero_but_not_far_from_it():
    mu = np.zeros((1, 1))
    near = P.scale("gaussian_kl", [mu, np.array([[1e-4]])])[0]
    assert near == pytest.approx(0.5 * (math.exp(1e-4) + 1 + 1e-4))  # ~1: forces ~u absolute error
    far = P.scale("gaussian_kl", [mu, np.array([[-50.0]])])[0]
    assert far == pytest.approx(0.5 * (math.exp(-50) + 1 + 50))


def test_invariants_only_where_the_exact_value_satisfies_them():
    y = np.array([-1e-3])
    tol = np.array([1e-6])
    assert P.invariant_violations("kl_divergence", y, tol, [], "float32", exact=np.array([1e-9]))
    assert not P.invariant_violations("kl_divergence", y, tol, [], "float32", exact=np.array([-2e-3]))
    rows = np.array([[0.5, 0.75]])
    assert P.invariant_violations("softmax", rows, np.zeros_like(rows), [], "float32", exact=np.array([[0.4, 0.6]]))

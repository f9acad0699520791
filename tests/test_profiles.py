"""Gate profiles: the shipped tables (which grade of the one judge passes), user-defined ones, and
the documented exceptions (the former ULP keys)."""
from __future__ import annotations

import numpy as np
import pytest

from infoaudit import judging
from infoaudit import options as O
from infoaudit import quantities as Q
from infoaudit.gate import profiles as P


@pytest.mark.parametrize("name", P.BUILTIN)
def test_builtin_profiles_load_and_every_setting_has_a_reason(name):
    prof = P.load(name)
    assert prof.rules
    for r in prof.rules:
        assert r.reason and "\n" not in r.reason
        assert r.metric in P.METRICS
    for q in Q.REGISTRY:
        for d in ("float16", "bfloat16", "float32", "float64"):
            t = prof.thresholds(q, d)
            assert t.nonfinite == 0 and t.profile == name
            assert set(t.reasons) >= {"pass", "nonfinite", "invariants", "require_nan", "overflow_margin",
                                      "infinite_inputs", "grad_pass", "grad_nonfinite", "grad_flushed",
                                      "grad_boundary"}
            assert t.exceptions() == {} and t.exceptions(grad=True) == {}  # the shipped profiles have none
            jp = t.judging_profile()
            assert jp.name == name and jp.passing == t.passing


def test_default_passes_envelope_strict_conditioned():
    d = P.load("default").thresholds("softmax", "float16")
    s = P.load("strict").thresholds("softmax", "float16")
    assert (d.passing, s.passing) == ("envelope", "conditioned")
    assert (d.grad_pass, s.grad_pass) == ("envelope", "conditioned")
    assert s.require_nan and not d.require_nan
    assert s.infinite_inputs == "all" and d.infinite_inputs == "masks"
    # the same conventions as the judge's own profiles
    for gate, judge in ((d, judging.DEFAULT), (s, judging.STRICT)):
        jp = gate.judging_profile()
        assert (jp.passing, jp.require_nan, jp.judge_infinite_inputs, jp.overflow_margin) == \
            (judge.passing, judge.require_nan, judge.judge_infinite_inputs, judge.overflow_margin)


def test_later_rules_override_and_patterns_match():
    rules = P.parse_rules([
        {"quantity": "*", "dtype": "*", "pass": "envelope", "reason": "base"},
        {"quantity": ["softmax", "log_softmax"], "dtype": "float16", "pass": "faithful", "reason": "fp16 softmax"},
        {"quantity": "softmax", "dtype": "float32", "ulp": 9, "reason": "fused kernel"},
    ], "test")
    prof = P.Profile("t", "", rules)
    assert prof.thresholds("softmax", "float16").passing == "faithful"
    assert prof.thresholds("softmax", "float16").reasons["pass"] == "fp16 softmax"
    assert prof.thresholds("softmax", "float32").passing == "envelope"
    assert prof.thresholds("softmax", "float32").exceptions() == {"ulp": 9.0}
    assert prof.thresholds("entropy", "float16").passing == "envelope"
    assert prof.thresholds("entropy", "float16").as_dict()["pass"] == "envelope"


def _judged(values, quantity="logsumexp", dtype="float32", z=((0.0, -16.635532),)):
    z = np.array(z, dtype=np.float32)
    return judging.judge(quantity, [z], np.array(values, dtype=np.float32), None, dtype)


def test_exceptions_only_widen_what_passes():
    """ulp / floor / rel accept elements beyond the passing grade; unset they accept nothing."""
    j = _judged([0.0])   # torch.logsumexp returns 0 where the exact value is 5.96e-8 (2^24 ULPs off)
    assert j.grade == "envelope"
    strict = P.load("strict").thresholds("logsumexp", "float32")
    assert strict.accepted(j) is None and j.verdict(strict.judging_profile()) == "fail"
    for key, value, ok in (("ulp", 4, False), ("ulp", 2 ** 25, True), ("rel", 1.0, True), ("rel", 0.5, False),
                           ("floor", 8, True)):
        rules = P.load("strict").rules + P.parse_rules([{key: value, "reason": "test"}], "test")
        t = P.Profile("x", "", rules).thresholds("logsumexp", "float32")
        acc = t.accepted(j)
        assert bool(acc[0]) is ok, (key, value)
        assert j.verdict(t.judging_profile(), acc) == ("pass" if ok else "fail")


def test_invariants_false_judges_the_invariant_class_by_its_error():
    z = ((1.0, 2.0),)
    ex = judging.judge("softmax", [np.array(z, np.float32)], np.array([[0.26894143, 0.7310586]], np.float32), None,
                       "float32")
    assert ex.verdict("default") == "pass"
    j = _judged([[0.6, 0.6]], "softmax", z=z)   # a row summing to 1.2: invariant
    assert j.grade == "invariant"
    t = P.Profile("x", "", P.load("default").rules + P.parse_rules(
        [{"invariants": False, "reason": "test"}], "test")).thresholds("softmax", "float32")
    acc = t.accepted(j)
    assert not acc.any()  # its error alone is unstable: still failing
    assert j.verdict(t.judging_profile(), acc) == "fail"


@pytest.mark.parametrize("rule, msg", [
    ({"quantity": "*", "ulp": 4}, "reason"),
    ({"quantity": "*", "ulp": 4, "floor": 2, "reason": "x"}, "exactly one"),
    ({"quantity": "softmaks", "ulp": 4, "reason": "x"}, "unknown quantity"),
    ({"dtype": "float8", "ulp": 4, "reason": "x"}, "unknown dtype"),
    ({"ulp": -1, "reason": "x"}, "not a valid value"),
    ({"ulps": 3, "reason": "x"}, "unknown key"),
    ({"infinite_inputs": "some", "reason": "x"}, "not a valid value"),
    ({"pass": "unstable", "reason": "x"}, "not a passing grade"),
    ({"grad_pass": "good", "reason": "x"}, "not a passing grade"),
])
def test_bad_rules_are_rejected_with_a_clear_message(rule, msg):
    with pytest.raises(P.ProfileError, match=msg):
        P.parse_rules([rule], "test")


def test_user_profile_from_pyproject_extends_a_builtin(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.infoaudit]\nexamples = 7\n\n[tool.infoaudit.profiles.team]\nextends = "strict"\n'
        '[[tool.infoaudit.profiles.team.rule]]\nquantity = "softmax"\ndtype = "float16"\nulp = 2\n'
        'reason = "our fused kernel rounds twice"\n'
        '[[tool.infoaudit.profiles.team.rule]]\nquantity = "logsumexp"\npass = "envelope"\n'
        'reason = "max-shift logsumexp accepted"\n')
    monkeypatch.chdir(tmp_path)
    cfg = O.tool_config()
    opts = O.resolve({}, cfg)
    assert opts["examples"] == 7
    prof = P.load("team", opts["profiles_config"])
    t = prof.thresholds("softmax", "float16")
    assert t.ulp == 2 and t.reasons["ulp"] == "our fused kernel rounds twice" and t.passing == "conditioned"
    assert t.profile == "team" and "ulp = 2.0 (our fused kernel rounds twice)" in t.describe()
    assert prof.thresholds("logsumexp", "float32").passing == "envelope"
    assert prof.thresholds("softmax", "float32").exceptions() == {}
    with pytest.raises(P.ProfileError, match="unknown profile"):
        P.load("nope", opts["profiles_config"])


def test_profile_from_a_toml_file(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('name = "mine"\nextends = "default"\n[[rule]]\nquantity = "gaussian_kl"\nfloor = 16\n'
                 'reason = "VAE loss: cancellation near logvar = 0 is acceptable to us at 16 u S"\n')
    prof = P.load(str(p))
    assert prof.name == "mine" and prof.thresholds("gaussian_kl", "float32").floor == 16
    assert prof.thresholds("softmax", "float32").floor == 0 and prof.thresholds("softmax", "float32").passing == "envelope"


def test_example_project_profile_loads():
    """examples/ci_gate/pyproject.toml's team profile: default plus a documented bfloat16 exception."""
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "ci_gate" / "pyproject.toml"
    tables = O.load_toml(path)["tool"]["infoaudit"]["profiles"]
    t = P.load("team", tables).thresholds("softmax", "bfloat16")
    assert t.passing == "envelope" and t.exceptions() and all(t.reasons[k] for k in t.exceptions())


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

"""Gate profiles: which grade of the one judge (:mod:`infoaudit.judging`) passes, per quantity x
dtype, with a one-line reason per rule.

A profile is an ordered list of rules; each rule matches quantities and dtypes (a name, a list or
"*") and sets ONE setting with a one-line reason; later rules override earlier ones. Shipped:
``default`` and ``strict`` (``infoaudit/profiles/*.toml``). Users define their own in a TOML file
(``--profile path.toml``) or in pyproject.toml::

    [tool.infoaudit.profiles.mine]
    extends = "default"
    [[tool.infoaudit.profiles.mine.rule]]
    quantity = "softmax"
    dtype = "float16"
    pass = "conditioned"
    reason = "our softmax feeds a log: it must be as accurate as the problem allows"

Every element of a result gets one grade from the judge (docs/grades.md): ``correctly_rounded``,
``faithful``, ``flushed``, ``conditioned`` (|err| <= c(n) u (N + |y*| + lambda)), ``envelope``
(|err| <= c(n) u (S + lambda)), ``unstable``, ``invariant``, ``nonfinite``. The setting ``pass``
names the worst grade that passes (``default``: envelope, ``strict``: conditioned); ``flushed``
passes whenever ``conditioned`` does; ``unstable``, ``invariant`` and ``nonfinite`` never pass
(except as counted by ``nonfinite`` and the documented exceptions below).

Documented exceptions (the keys of the former ULP profiles, kept with one meaning: they can only
*widen* what passes, element by element, whatever its grade): ``ulp = k`` accepts an element
within k ULPs of the exact value (``+ ulp_per_log2n * log2 n`` for a reduction of length n),
``floor = F`` one within F u S, ``rel = r`` one with relative error <= r; ``invariants = false``
stops failing the ``invariant`` class (its elements are then judged by their error). Unset (0)
they accept nothing beyond the grade. Gradients (``--grad``) have the same pair: ``grad_pass``
and the exceptions ``grad_cae`` (+ ``grad_cae_per_log2n`` log2 n; ``grad_cae_scalar`` for T, eps,
beta) x u (N + |g*|), ``grad_floor`` (+ ``grad_floor_per_log2n`` log2 n) x u S, ``grad_ulp`` ULPs.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .. import judging
from ..dtypes import fmt

__all__ = ["PASSING", "FORWARD_METRICS", "GRAD_METRICS", "METRICS", "EXCEPTIONS", "GRAD_EXCEPTIONS",
           "BUILTIN", "ProfileError", "Rule", "Thresholds", "Profile", "parse_rules", "load"]

PASSING = (judging.CORRECTLY_ROUNDED, judging.FAITHFUL, judging.CONDITIONED, judging.ENVELOPE)
FORWARD_METRICS = ("pass", "nonfinite", "invariants", "require_nan", "overflow_margin", "infinite_inputs", "ulp",
                   "ulp_per_log2n", "floor", "rel", "relative_k")
# Settings of the gradient audit (``infoaudit gate --grad``).
GRAD_METRICS = ("grad_pass", "grad_nonfinite", "grad_flushed", "grad_boundary", "grad_cae", "grad_cae_per_log2n",
                "grad_cae_scalar", "grad_floor", "grad_floor_per_log2n", "grad_ulp")
METRICS = FORWARD_METRICS + GRAD_METRICS
EXCEPTIONS = ("ulp", "ulp_per_log2n", "floor", "rel")
GRAD_EXCEPTIONS = ("grad_cae", "grad_cae_per_log2n", "grad_cae_scalar", "grad_floor", "grad_floor_per_log2n",
                   "grad_ulp")
BUILTIN = ("default", "strict")
_ATTR = {"pass": "passing"}   # TOML key -> Thresholds attribute (``pass`` is a Python keyword)


class ProfileError(ValueError):
    """A profile that cannot be loaded (unknown name, bad TOML, a rule without a reason, ...)."""


@dataclass(frozen=True)
class Rule:
    quantities: tuple  # ("*",) or names
    dtypes: tuple
    metric: str
    value: object
    reason: str

    def matches(self, q, dt):
        return ("*" in self.quantities or q in self.quantities) and ("*" in self.dtypes or dt in self.dtypes)


def _log2(n):
    return math.log2(n) if n > 1 else 0.0


@dataclass
class Thresholds:
    """The settings in force for one quantity x dtype, each with its reason (``reasons``)."""

    quantity: str
    dtype: str
    profile: str = "default"
    passing: str = judging.ENVELOPE
    nonfinite: int = 0
    invariants: bool = True
    require_nan: bool = False
    overflow_margin: float = 1.0
    infinite_inputs: str = "all"
    ulp: float = 0.0
    ulp_per_log2n: float = 0.0
    floor: float = 0.0
    rel: float | None = None
    relative_k: float | None = None
    # gradients (--grad)
    grad_pass: str = judging.ENVELOPE
    grad_nonfinite: int = 0
    grad_flushed: int = 0
    grad_boundary: str = "accept"
    grad_cae: float = 0.0
    grad_cae_per_log2n: float = 0.0
    grad_cae_scalar: float = 0.0
    grad_floor: float = 0.0
    grad_floor_per_log2n: float = 0.0
    grad_ulp: float = 0.0
    reasons: dict = field(default_factory=dict)

    # ---- the judge's profile

    def judging_profile(self, grad=False) -> judging.Profile:
        """This quantity x dtype's settings as a :class:`judging.Profile` (named after the gate profile)."""
        key = "grad_pass" if grad else "pass"
        return judging.Profile(self.profile, self.grad_pass if grad else self.passing,
                               self.reasons.get(key, ""), require_nan=self.require_nan,
                               judge_infinite_inputs=self.infinite_inputs == "all",
                               overflow_margin=self.overflow_margin)

    def ulp_limit(self, n: int) -> float:
        return self.ulp + self.ulp_per_log2n * _log2(n)

    def exceptions(self, grad=False) -> dict:
        """The documented exceptions in force ({key: value}, unset ones left out)."""
        keys = GRAD_EXCEPTIONS if grad else EXCEPTIONS
        out = {k: getattr(self, k) for k in keys if getattr(self, k)}
        if not grad and not self.invariants:
            out["invariants"] = False
        return out

    def accepted(self, j) -> np.ndarray | None:
        """Elements of a :class:`judging.Judgement` that the profile's exceptions accept whatever
        their grade (None when no exception is set): within ``ulp`` (+ ``ulp_per_log2n`` log2 n)
        ULPs, within ``floor`` u S, relative error <= ``rel``; with ``invariants = false`` an
        ``invariant`` element whose error alone passes."""
        if not self.exceptions():
            return None
        ok = np.zeros(j.codes.shape, bool)
        finite = j.nonfinite == ""
        with np.errstate(all="ignore"):
            if self.ulp or self.ulp_per_log2n:
                ok |= finite & (j.ulp <= self.ulp_limit(j.n))
            if self.floor:
                ok |= finite & (j.abs <= self.floor * fmt(j.dtype).unit_roundoff * j.S)
            if self.rel is not None:
                ok |= finite & (j.rel <= self.rel)
        if not self.invariants and j.band_codes is not None:
            limit = judging.grades.code_of(self.passing)
            ok |= (j.codes == judging.grades.CODE[judging.INVARIANT]) & (j.band_codes <= limit)
        return ok

    def grad_accepted(self, j, scalar=False) -> np.ndarray | None:
        """The gradient exceptions' accepted components of a :class:`judging.Judgement` (None when
        none is set): within ``grad_cae`` (+ ``grad_cae_per_log2n`` log2 n; ``grad_cae_scalar``
        for a scalar argument) u (N + |g*|), within ``grad_floor`` (+ per log2 n) u S, within
        ``grad_ulp`` ULPs."""
        if not self.exceptions(grad=True):
            return None
        u = fmt(j.dtype).unit_roundoff
        L = self.grad_cae_scalar if scalar else self.grad_cae + self.grad_cae_per_log2n * _log2(j.n)
        F = self.grad_floor + self.grad_floor_per_log2n * _log2(j.n)
        finite = j.nonfinite == ""
        ok = np.zeros(j.codes.shape, bool)
        with np.errstate(all="ignore"):
            mag = np.where(np.isfinite(j.exact_hi), np.abs(j.exact_hi), 0.0)
            N = np.where(np.isfinite(j.N), j.N, 0.0)
            if L:
                ok |= finite & (j.abs <= L * u * (N + mag))
            if F:
                ok |= finite & (j.abs <= F * u * j.S)
            if self.grad_ulp:
                ok |= finite & (j.ulp <= self.grad_ulp)
        return ok

    # ---- text and JSON

    def as_dict(self):
        return {m: getattr(self, _ATTR.get(m, m)) for m in FORWARD_METRICS} | {
            "reasons": {k: v for k, v in self.reasons.items() if k in FORWARD_METRICS}}

    def grad_as_dict(self):
        return {m: getattr(self, m) for m in GRAD_METRICS} | {
            "reasons": {k: v for k, v in self.reasons.items() if k in GRAD_METRICS}}

    def _exception_text(self, grad=False):
        ex = self.exceptions(grad)
        if not ex:
            return ""
        parts = []
        for k, v in ex.items():
            why = self.reasons.get(k, "")
            parts.append(f"{k} = {v!r}" + (f" ({why})" if why else ""))
        return "; accepted beyond the grade: " + ", ".join(parts)

    def describe(self) -> str:
        parts = [f"{self.passing} and better pass ({self.profile})",
                 f"conditioned: c(n) u (N + |y*| + lambda), envelope: c(n) u (S + lambda), "
                 f"c(n) = 8 + 2 ceil(log2 n); {judging.scale_reason(self.quantity)}",
                 f"non-finite mismatches <= {self.nonfinite}"]
        if self.overflow_margin > 1:
            parts.append(f"inf tolerated where |exact| > max/{self.overflow_margin:g}")
        if self.infinite_inputs == "masks":
            parts.append("inf inputs other than -inf logit masks not judged")
        parts.append("undefined exact values (NaN) judged" if self.require_nan else "undefined exact values not judged")
        if self.relative_k:
            parts.append(f"relative rule: error <= {self.relative_k:g} x the framework op's")
        return "; ".join(parts) + self._exception_text()

    def grad_describe(self) -> str:
        parts = [f"{self.grad_pass} and better pass ({self.profile})",
                 "conditioned: c(n) u (N + |g*| + lambda), N from second derivatives; envelope: c(n) u (S + lambda), "
                 f"{judging.grad_scale_reason(self.quantity)}",
                 f"non-finite <= {self.grad_nonfinite}", f"flushed <= {self.grad_flushed}"]
        if self.grad_boundary == "accept":
            parts.append("finite at a one-sided infinite derivative accepted")
        return "; ".join(parts) + self._exception_text(grad=True)


@dataclass
class Profile:
    name: str
    description: str
    rules: list
    source: str = ""

    def thresholds(self, quantity: str, dtype: str) -> Thresholds:
        t = Thresholds(quantity, dtype, self.name)
        for r in self.rules:
            if r.matches(quantity, dtype):
                setattr(t, _ATTR.get(r.metric, r.metric), r.value)
                t.reasons[r.metric] = r.reason
        return t

    def with_relative(self, k: float, reason="--relative on the command line") -> "Profile":
        return Profile(self.name + f"+relative({k:g})", self.description,
                       self.rules + [Rule(("*",), ("*",), "relative_k", float(k), reason)], self.source)


def _as_tuple(v, what):
    if v is None:
        return ("*",)
    if isinstance(v, str):
        return (v,)
    if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise ProfileError(f"rule {what} must be a name, a list of names or '*', got {v!r}")


def _coerce(metric, v, where):
    if metric in ("pass", "grad_pass"):
        if v not in PASSING:
            raise ProfileError(f"{where}: {metric} = {v!r} is not a passing grade; one of "
                               f"{', '.join(PASSING)} (best to worst)")
        return v
    try:
        if metric == "infinite_inputs":
            if v not in ("all", "masks"):
                raise ValueError
            return v
        if metric == "grad_boundary":
            if v not in ("accept", "judge"):
                raise ValueError
            return v

        if metric in ("invariants", "require_nan"):
            if not isinstance(v, bool):
                raise TypeError
            return v
        if metric in ("nonfinite", "grad_nonfinite", "grad_flushed"):
            v = int(v)
        elif metric in ("rel", "relative_k") and v is None:
            return None
        else:
            v = float(v)
        if v < 0:
            raise ValueError
        return v
    except (TypeError, ValueError):
        raise ProfileError(f"{where}: {metric} = {v!r} is not a valid value") from None


def parse_rules(raw_rules, where) -> list:
    from .. import quantities

    out = []
    if not isinstance(raw_rules, list):
        raise ProfileError(f"{where}: 'rule' must be an array of tables ([[rule]])")
    for i, r in enumerate(raw_rules):
        w = f"{where} rule {i + 1}"
        if not isinstance(r, dict):
            raise ProfileError(f"{w}: not a table")
        qs = _as_tuple(r.get("quantity", "*"), "quantity")
        dts = _as_tuple(r.get("dtype", "*"), "dtype")
        for q in qs:
            if q != "*" and q not in quantities.REGISTRY:
                raise ProfileError(f"{w}: unknown quantity {q!r}; known: {', '.join(quantities.REGISTRY)}")
        for d in dts:
            if d != "*" and d not in ("float16", "bfloat16", "float32", "float64"):
                raise ProfileError(f"{w}: unknown dtype {d!r}")
        metrics = [k for k in r if k in METRICS]
        unknown = [k for k in r if k not in METRICS and k not in ("quantity", "dtype", "reason")]
        if unknown:
            raise ProfileError(f"{w}: unknown key(s) {', '.join(unknown)}; thresholds: {', '.join(METRICS)}")
        if len(metrics) != 1:
            raise ProfileError(f"{w}: a rule sets exactly one threshold (one of {', '.join(METRICS)}), "
                               f"got {metrics or 'none'}")
        reason = r.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ProfileError(f"{w}: every threshold needs a one-line 'reason'")
        m = metrics[0]
        out.append(Rule(qs, dts, m, _coerce(m, r[m], w), reason.strip().splitlines()[0]))
    return out


def _builtin_path(name):
    return os.path.join(os.path.dirname(os.path.dirname(__file__)), "profiles", f"{name}.toml")


def _from_table(data, name, where, user_profiles, depth=0) -> Profile:
    if depth > 8:
        raise ProfileError(f"{where}: 'extends' nests too deeply")
    rules = []
    base = data.get("extends")
    if base:
        rules = list(load(base, user_profiles, _depth=depth + 1).rules)
    rules += parse_rules(data.get("rule", []), where)
    if not rules:
        raise ProfileError(f"{where}: profile {name!r} has no rules")
    return Profile(data.get("name", name), data.get("description", ""), rules, where)


def load(spec="default", user_profiles: dict | None = None, _depth=0) -> Profile:
    """Load a profile: a built-in name, a name from [tool.infoaudit.profiles], or a .toml path."""
    from ..options import load_toml

    user_profiles = user_profiles or {}
    spec = str(spec)
    if spec in user_profiles:
        return _from_table(user_profiles[spec], spec, f"[tool.infoaudit.profiles.{spec}]", user_profiles, _depth)
    if spec in BUILTIN:
        path = _builtin_path(spec)
    elif spec.endswith(".toml") or os.path.sep in spec:
        path = spec
        if not os.path.isfile(path):
            raise ProfileError(f"profile file {path!r} not found")
    else:
        known = list(BUILTIN) + sorted(user_profiles)
        raise ProfileError(f"unknown profile {spec!r}; known: {', '.join(known)} (or a path to a .toml file)")
    try:
        data = load_toml(path)
    except OSError as e:
        raise ProfileError(f"cannot read profile {path!r}: {e}") from None
    except Exception as e:
        raise ProfileError(f"profile {path!r} is not valid TOML: {e}") from None
    if "tool" in data and "infoaudit" in data["tool"]:  # a pyproject.toml given as a profile file
        tables = data["tool"]["infoaudit"].get("profiles", {})
        if len(tables) != 1:
            raise ProfileError(f"{path}: name one of its profiles with --profile NAME ({', '.join(tables)})")
        (nm, tbl), = tables.items()
        return _from_table(tbl, nm, path, tables, _depth)
    return _from_table(data, os.path.splitext(os.path.basename(path))[0], path, user_profiles, _depth)

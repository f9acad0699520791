"""Gate profiles: declarative threshold tables (quantity x dtype) with a reason per threshold.

A profile is an ordered list of rules; each rule matches quantities and dtypes (a name, a list or
"*") and sets ONE threshold with a one-line reason; later rules override earlier ones. Shipped:
``default`` and ``strict`` (``infoaudit/profiles/*.toml``). Users define their own in a TOML file
(``--profile path.toml``) or in pyproject.toml::

    [tool.infoaudit.profiles.mine]
    extends = "default"
    [[tool.infoaudit.profiles.mine.rule]]
    quantity = "softmax"
    dtype = "float16"
    ulp = 8
    reason = "our fused kernel rounds twice; accepted by the numerics review of 2025-01"

Judgement of one element (computed y, exact y*, dtype with unit roundoff u, reduction length n):
``|y - y*| <= (ulp + ulp_per_log2n * log2 n) * ulp(y*)`` or ``|y - y*| <= floor * u * S``, where S is
the quantity's *forced-error scale* (:data:`SCALES`): the sum of the magnitudes of the terms of the
exact formula, or the componentwise condition number, i.e. the error the problem itself forces on
any algorithm working in that dtype. The floor is what lets cancellation-prone results (KL of
p = q + tiny, Gaussian KL near logvar = 0, cross-entropy of a confident prediction) be judged
fairly without loosening the ULP limit where the result is well conditioned.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

FORWARD_METRICS = ("nonfinite", "ulp", "ulp_per_log2n", "floor", "rel", "invariants", "relative_k", "require_nan",
                   "overflow_margin", "infinite_inputs")
# Thresholds of the gradient audit (``infoaudit gate --grad``); see Thresholds.grad_allowed.
GRAD_METRICS = ("grad_nonfinite", "grad_cae", "grad_cae_per_log2n", "grad_cae_scalar", "grad_floor",
                "grad_floor_per_log2n", "grad_ulp", "grad_flushed", "grad_boundary")
METRICS = FORWARD_METRICS + GRAD_METRICS
BUILTIN = ("default", "strict")


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


@dataclass
class Thresholds:
    """The thresholds in force for one quantity x dtype, each with its reason."""

    quantity: str
    dtype: str
    nonfinite: int = 0
    ulp: float = 4.0
    ulp_per_log2n: float = 0.0
    floor: float = 0.0
    rel: float | None = None
    invariants: bool = True
    relative_k: float | None = None
    require_nan: bool = False
    overflow_margin: float = 1.0
    infinite_inputs: str = "all"
    # gradients (--grad)
    grad_nonfinite: int = 0
    grad_cae: float = 8.0
    grad_cae_per_log2n: float = 0.0
    grad_cae_scalar: float = 2000.0
    grad_floor: float = 8.0
    grad_floor_per_log2n: float = 0.0
    grad_ulp: float = 4.0
    grad_flushed: int = 0
    grad_boundary: str = "accept"
    reasons: dict = field(default_factory=dict)

    def ulp_limit(self, n: int) -> float:
        return self.ulp + self.ulp_per_log2n * (math.log2(n) if n > 1 else 0.0)

    def as_dict(self):
        return {m: getattr(self, m) for m in FORWARD_METRICS} | {
            "reasons": {k: v for k, v in self.reasons.items() if k in FORWARD_METRICS}}

    # ---- gradients

    def grad_cae_limit(self, n: int, scalar=False) -> float:
        if scalar:
            return self.grad_cae_scalar
        return self.grad_cae + self.grad_cae_per_log2n * (math.log2(n) if n > 1 else 0.0)

    def grad_floor_limit(self, n: int) -> float:
        return self.grad_floor + self.grad_floor_per_log2n * (math.log2(n) if n > 1 else 0.0)

    def grad_allowed(self, n, u, N, gmag, T, ulp, scalar=False):
        """Allowed absolute error of each gradient component: the largest of
        L u (N + |g*|) (condition-aware error <= L; L u |g*| where N is unknown),
        F u T (the closed form's terms, T = GRAD_SCALES) and grad_ulp ULPs of g*."""
        L = self.grad_cae_limit(n, scalar)
        F = self.grad_floor_limit(n)
        with np.errstate(all="ignore"):
            Nf = np.where(np.isfinite(N), N, 0.0) if N is not None else 0.0
            a = L * u * (Nf + gmag)
            a = np.maximum(a, F * u * np.asarray(T, dtype=np.float64))
            a = np.maximum(a, self.grad_ulp * np.asarray(ulp, dtype=np.float64))
        return a

    def grad_as_dict(self):
        return {m: getattr(self, m) for m in GRAD_METRICS} | {
            "reasons": {k: v for k, v in self.reasons.items() if k in GRAD_METRICS}}

    def grad_describe(self, n=1) -> str:
        parts = [f"cae <= {self.grad_cae:g}" + (f" + {self.grad_cae_per_log2n:g}*log2(n)" if self.grad_cae_per_log2n else "")
                 + f" (scalar args {self.grad_cae_scalar:g})",
                 "or abs <= " + (f"({self.grad_floor:g} + {self.grad_floor_per_log2n:g}*log2(n))"
                                 if self.grad_floor_per_log2n else f"{self.grad_floor:g}") + "*u*T"
                 + (f" ({GRAD_SCALES[self.quantity][1]})" if self.quantity in GRAD_SCALES else ""),
                 f"or <= {self.grad_ulp:g} ULP",
                 f"non-finite <= {self.grad_nonfinite}", f"flushed <= {self.grad_flushed}"]
        if self.grad_boundary == "accept":
            parts.append("finite at a one-sided infinite derivative accepted")
        return "; ".join(parts)

    def describe(self, n=1) -> str:
        parts = [f"ulp <= {self.ulp:g}" + (f" + {self.ulp_per_log2n:g}*log2(n) = {self.ulp_limit(n):.3g}"
                                             if self.ulp_per_log2n and n > 1 else "")]
        if self.floor:
            parts.append(f"or abs <= {self.floor:g}*u*S ({SCALES[self.quantity][1]})"
                         if self.quantity in SCALES else f"or abs <= {self.floor:g}*u*S")
        if self.rel is not None:
            parts.append(f"or rel <= {self.rel:g}")
        parts.append(f"non-finite mismatches <= {self.nonfinite}")
        if self.overflow_margin > 1:
            parts.append(f"inf tolerated where |exact| > max/{self.overflow_margin:g}")
        if self.infinite_inputs == "masks":
            parts.append("inf inputs other than -inf logit masks not judged")
        if self.require_nan:
            parts.append("NaN required where the exact value is undefined")
        if self.relative_k:
            parts.append(f"relative rule: error <= {self.relative_k:g} x the framework op's")
        return "; ".join(parts)


@dataclass
class Profile:
    name: str
    description: str
    rules: list
    source: str = ""

    def thresholds(self, quantity: str, dtype: str) -> Thresholds:
        t = Thresholds(quantity, dtype)
        for r in self.rules:
            if r.matches(quantity, dtype):
                setattr(t, r.metric, r.value)
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


# ------------------------------------------------------------------ forced-error scales S
#
# Each S is computed in float64 from the (exact) inputs; it only has to be right to a small factor.
# Entries where S is not finite (non-finite exact values) get S = 0: there the non-finite rule judges.


def _e():
    return np.errstate(all="ignore")


def _lse_parts(z):
    """m (max finite entry, 0 for an all -inf row), s = sum exp(z - m), p = softmax, lse."""
    with _e():
        fin = np.where(np.isfinite(z), z, -np.inf)
        m = np.max(fin, axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        e = np.exp(z - m)
        s = np.sum(e, axis=-1, keepdims=True)
        p = e / s
        lse = m + np.log(s)
    return m, s, p, lse


def _absfin(x):
    with _e():
        return np.where(np.isfinite(x), np.abs(x), 0.0)


def _wsum(p, x, axis=-1):
    """sum of p * x over axis, with 0 * anything = 0."""
    with _e():
        return np.sum(np.where(p > 0, p * x, 0.0), axis=axis)


def _s_softmax(z):
    m, s, p, lse = _lse_parts(z)
    k = _wsum(p, _absfin(z))[..., None]
    with _e():
        return np.where(p > 0, p * (1 + _absfin(z) + k), 0.0)


def _s_log_softmax(z):
    m, s, p, lse = _lse_parts(z)
    with _e():
        return _absfin(z) + np.abs(m) + np.log(s) + 1


def _s_logsumexp(z):
    m, s, p, lse = _lse_parts(z)
    with _e():
        return (np.abs(m) + np.log(s) + 1)[..., 0]


def _sig(x):
    with _e():
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x):
    with _e():
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _s_sigmoid(x):
    y = _sig(x)
    return y * (1 + _absfin(x) * (1 - y))


def _s_softplus(x):
    return _absfin(_softplus(x)) + _sig(x) * _absfin(x)


def _s_log_sigmoid(x):
    return _absfin(_softplus(-x)) + _sig(-x) * _absfin(x)


def _xlogy_abs(x, y):
    with _e():
        return np.where(x > 0, np.abs(x * np.log(y)), 0.0)


def _s_entropy(p):
    return np.sum(_absfin(_xlogy_abs(p, p)), axis=-1)


def _s_entropy_bits(p):
    return _s_entropy(p) / math.log(2)


def _s_self_information_bits(p):
    with _e():
        return _absfin(np.log2(p)) + 1 / math.log(2)


def _s_binary_entropy_bits(p):
    with _e():
        q = 1 - p
        cond = np.where((p > 0) & (q > 0), p * np.abs(np.log(q) - np.log(p)), 0.0)
        return (_absfin(_xlogy_abs(p, p)) + _absfin(np.where(q > 0, np.abs(q * np.log1p(-p)), 0.0)) + cond) / math.log(2)


def _s_kl(p, q):
    with _e():
        return _wsum(p, _absfin(np.log(p)) + _absfin(np.log(q)))


def _s_cross_entropy_probs(p, q):
    with _e():
        return _wsum(p, _absfin(np.log(q)))


def _take(z, y):
    return np.take_along_axis(z, y[..., None].astype(np.int64), axis=-1)[..., 0]


def _s_cross_entropy(z, y):
    m, s, p, lse = _lse_parts(z)
    with _e():
        return np.abs(m[..., 0]) + np.log(s[..., 0]) + 1 + _absfin(_take(z, y))


def _s_nll_loss(logp, y):
    return np.zeros(logp.shape[:-1])


def _s_bce(p, t):
    with _e():
        a = np.where(t > 0, _absfin(t * np.log(p)), 0.0)
        b = np.where(t < 1, _absfin((1 - t) * np.log1p(-p)), 0.0)
        kp = np.where((p > 0) & (p < 1), np.abs(-t + (1 - t) * p / (1 - p)), 0.0)
        kt = np.where((p > 0) & (p < 1), t * np.abs(np.log(p) - np.log1p(-p)), 0.0)
        return _absfin(a + b + kp + kt)


def _s_bce_logits(z, t):
    with _e():
        sp = _absfin(_softplus(z))
        return sp + 2 * _absfin(t * z) + np.abs(_sig(z) - t) * _absfin(z)


def _s_label_smoothing(z, y, eps):
    m, s, p, lse = _lse_parts(z)
    K = z.shape[-1]
    with _e():
        return (np.abs(m[..., 0]) + np.log(s[..., 0]) + 1 + (1 - eps) * _absfin(_take(z, y))
                + (eps / K) * np.sum(_absfin(z), axis=-1))


def _s_kl_logits(za, zb, T):
    """T^2-free scale of KL(softmax(za/T) || softmax(zb/T)) computed via log-softmaxes."""
    with _e():
        a = za / T
        b = zb / T
        ma, sa, pa, la = _lse_parts(a)
        mb, sb, pb, lb = _lse_parts(b)
        lsa = a - la
        lsb = b - lb
        inner = _absfin(lsa) + _absfin(lsb) + _absfin(a) + _absfin(b) + np.abs(ma) + np.abs(mb)
        return _wsum(pa, inner) + 2


def _s_distillation(zs, zt, T):
    return T * T * _s_kl_logits(zt, zs, T)


def _s_rlhf(zp, zr, beta):
    return abs(beta) * _s_kl_logits(zp, zr, 1.0)


def _s_gaussian_kl(mu, logvar):
    with _e():
        return 0.5 * np.sum(_absfin(np.exp(logvar)) + 1 + _absfin(logvar) + _absfin(mu * mu), axis=-1)


def _flat2(P):
    return P.reshape(P.shape[:-2] + (-1,))


def _s_joint_entropy(P):
    return _s_entropy(_flat2(P))


def _s_conditional_entropy(P):
    with _e():
        px = np.sum(P, axis=-1, keepdims=True)
        w = _absfin(np.log(P)) + _absfin(np.log(px)) + 1
        return np.sum(np.where(P > 0, P * w, 0.0), axis=(-2, -1))


def _s_mutual_information(P):
    with _e():
        px = np.sum(P, axis=-1, keepdims=True)
        py = np.sum(P, axis=-2, keepdims=True)
        w = _absfin(np.log(P)) + _absfin(np.log(px)) + _absfin(np.log(py)) + 2
        return np.sum(np.where(P > 0, P * w, 0.0), axis=(-2, -1))


# name -> (S function of the float64 inputs, one-line statement of S)
SCALES = {
    "softmax": (_s_softmax, "S = p_i (1 + |z_i| + sum_j p_j |z_j|): componentwise condition number + 1"),
    "log_softmax": (_s_log_softmax, "S = |z_i| + |max z| + log s + 1: terms of z_i - m - log(sum exp(z - m))"),
    "logsumexp": (_s_logsumexp, "S = |max z| + log s + 1: terms of m + log(sum exp(z - m))"),
    "sigmoid": (_s_sigmoid, "S = y (1 + |x| (1 - y)): condition number + 1"),
    "softplus": (_s_softplus, "S = |y| + sigmoid(x) |x|: value + condition"),
    "log_sigmoid": (_s_log_sigmoid, "S = |y| + sigmoid(-x) |x|: value + condition"),
    "entropy": (_s_entropy, "S = sum |p_i log p_i|: terms of the sum"),
    "entropy_bits": (_s_entropy_bits, "S = sum |p_i log2 p_i|: terms of the sum"),
    "self_information_bits": (_s_self_information_bits, "S = |log2 p| + 1/ln 2: value + condition"),
    "binary_entropy_bits": (_s_binary_entropy_bits,
                            "S = (|p ln p| + |(1-p) ln(1-p)| + p |ln((1-p)/p)|)/ln 2: terms + condition"),
    "kl_divergence": (_s_kl, "S = sum p_i (|log p_i| + |log q_i|): terms of sum p_i (log p_i - log q_i)"),
    "cross_entropy_probs": (_s_cross_entropy_probs, "S = sum |p_i log q_i|: terms of the sum"),
    "cross_entropy": (_s_cross_entropy, "S = |max z| + log s + 1 + |z_y|: terms of lse(z) - z_y"),
    "nll_loss": (_s_nll_loss, "S = 0: an exact negation forces no error"),
    "binary_cross_entropy": (_s_bce, "S = |t log p| + |(1-t) log(1-p)| + condition in p and t"),
    "binary_cross_entropy_with_logits": (_s_bce_logits, "S = softplus(z) + 2|t z| + |sigmoid(z) - t||z|: terms + condition"),
    "label_smoothing_cross_entropy": (_s_label_smoothing,
                                      "S = |max z| + log s + 1 + (1-eps)|z_y| + eps/K sum|z_i|: terms of the exact formula"),
    "distillation_loss": (_s_distillation,
                          "S = T^2 (sum pt_i (|log pt_i| + |log ps_i| + |z/T| terms) + 2): terms of the log-softmax KL"),
    "rlhf_kl_penalty": (_s_rlhf, "S = |beta| (sum pp_i (|log pp_i| + |log pr_i| + |z| terms) + 2): terms of the log-softmax KL"),
    "gaussian_kl": (_s_gaussian_kl, "S = 0.5 sum(exp(logvar) + 1 + |logvar| + mu^2): terms of the DESIGN formula"),
    "joint_entropy": (_s_joint_entropy, "S = sum |P log P|: terms of the sum"),
    "conditional_entropy": (_s_conditional_entropy, "S = sum P (|log P| + |log P_x| + 1): terms + marginal sums"),
    "mutual_information": (_s_mutual_information, "S = sum P (|log P| + |log P_x| + |log P_y| + 2): terms + marginal sums"),
}


def scale(quantity: str, inputs) -> np.ndarray:
    """The forced-error scale S of ``quantity`` on ``inputs`` (float arrays in any float dtype)."""
    args = [np.asarray(a).astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind not in "iu"
            else a for a in inputs]
    fn = SCALES[quantity][0]
    with _e():
        s = np.asarray(fn(*args), dtype=np.float64)
    # +inf: terms beyond float64's range (float64 inputs near max); the forced error is then huge.
    # NaN: undefined terms (non-finite exact values, judged by the non-finite rule instead).
    return np.where(np.isnan(s), 0.0, np.where(np.isinf(s), np.finfo(np.float64).max, s))


def reduction_length(quantity: str, inputs) -> int:
    """n of the reduction (row length, table size) or 1 for elementwise quantities."""
    from .. import quantities

    q = quantities.get(quantity)
    first = next(a for a, arg in zip(inputs, q.args) if arg.is_float_array)
    if q.structure in (quantities.ROW, quantities.ROW_REDUCE):
        return int(first.shape[-1])
    if q.structure == quantities.TABLE_REDUCE:
        return int(first.shape[-1] * first.shape[-2])
    return 1


# ------------------------------------------------------------------ invariants (need no reference)

_NONNEG = {"entropy", "entropy_bits", "self_information_bits", "binary_entropy_bits", "kl_divergence",
           "cross_entropy_probs", "cross_entropy", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "label_smoothing_cross_entropy", "distillation_loss", "gaussian_kl", "joint_entropy",
           "conditional_entropy", "mutual_information", "softplus"}
_NONPOS = {"log_softmax", "log_sigmoid"}
_UNIT = {"softmax", "sigmoid", "binary_entropy_bits"}


def invariant_violations(quantity: str, y: np.ndarray, tol: np.ndarray, inputs, dtype, exact=None) -> list:
    """Human-readable invariant violations of result ``y`` (float64), each beyond ``tol``.

    A bound is checked only where the exact value satisfies it (``exact``, float64): KL >= 0 and
    entropy >= 0 hold for normalised inputs, and the search also feeds unnormalised ones.
    """
    from ..dtypes import fmt

    out = []
    ex = np.zeros_like(y) + 0.5 if exact is None else np.asarray(exact, dtype=np.float64)
    with _e():
        fin = np.isfinite(y)
        if quantity in _NONNEG:
            bad = fin & (y < -tol) & (ex >= 0)
            if bad.any():
                out.append(f"{int(bad.sum())} value(s) < 0 (min {np.min(y[bad]):.6g}); {quantity} >= 0")
        if quantity in _NONPOS:
            bad = fin & (y > tol) & (ex <= 0)
            if bad.any():
                out.append(f"{int(bad.sum())} value(s) > 0 (max {np.max(y[bad]):.6g}); {quantity} <= 0")
        if quantity in _UNIT:
            bad = fin & ((y < -tol) | (y > 1 + tol)) & (ex >= 0) & (ex <= 1)
            if bad.any():
                out.append(f"{int(bad.sum())} value(s) outside [0, 1]")
        if quantity == "softmax" and y.ndim >= 1:
            n = y.shape[-1]
            u = fmt(dtype).unit_roundoff
            rows_ok = np.all(fin, axis=-1) & np.all(np.isfinite(ex), axis=-1)
            s = np.sum(np.where(fin, y, 0.0), axis=-1)
            lim = (n + 2) * u + np.sum(np.where(fin, tol, 0.0), axis=-1)
            bad = rows_ok & (np.abs(s - 1) > lim)
            if bad.any():
                i = np.unravel_index(np.argmax(np.where(bad, np.abs(s - 1), -1)), bad.shape)
                out.append(f"{int(bad.sum())} row(s) do not sum to 1 within (n+2)u (worst sum {s[i]:.8g}, n = {n})")
    return out


def unjudged_mask(quantity: str, inputs) -> np.ndarray:
    """Output elements whose inputs hold +-inf or NaN other than -inf masks in logits/log-probs."""
    from .. import quantities as Q

    q = Q.get(quantity)
    vals = [np.asarray(v).astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind not in "iu" else v
            for v in inputs]
    shape = Q.output_shape(q, vals)
    out = np.zeros(shape, bool)
    with _e():
        for arg, v in zip(q.args, vals):
            if not arg.is_float_array:
                continue
            if arg.kind in (Q.LOGITS, Q.LOGPROBS):
                bad = np.isnan(v) | (v == np.inf)
            else:
                bad = ~np.isfinite(v)
            if q.structure == Q.ELEMENTWISE:
                out |= np.broadcast_to(bad, shape)
            elif q.structure == Q.ROW:
                out |= np.broadcast_to(np.any(bad, axis=-1, keepdims=True), shape)
            elif q.structure == Q.ROW_REDUCE:
                out |= np.any(bad, axis=-1)
            else:
                out |= np.any(bad, axis=(-2, -1))
    return out


# ------------------------------------------------------------------ gradient term scales T
#
# The gradient twin of SCALES: for each quantity the magnitudes of the terms of its closed-form
# vector-Jacobian product g = J^T c (softmax - onehot, s (1 - s), log p + 1, ...), per gradient
# component, in float64 from the exact inputs and the cotangent c. Evaluating that closed form in
# the dtype -- what every framework's backward does -- forces an absolute error of a few u * T
# (e.g. dCE/dz_y = p_y - 1 at a confident target: T = p_y + 1, the exact value 4e-9 is lost to
# float32's u = 6e-8). The gate's gradient rule accepts an error within ``grad_floor * u * T``
# beside the condition-aware limit (see Thresholds.grad_allowed). Scalar arguments (T, eps, beta)
# get the total over rows. Entries where a term is infinite or undefined get 0 (the non-finite
# rule judges those).


def _fin0(x):
    with _e():
        return np.where(np.isfinite(x), x, 0.0)


def _pos(p, x):
    """p * x with 0 * anything = 0."""
    with _e():
        return np.where(p > 0, p * x, 0.0)


def _onehot(y, n):
    return (np.arange(n) == np.asarray(y)[..., None]).astype(np.float64)


# (threshold, value) while grad_scale runs for a dtype: a probability (or sigmoid) below the dtype's
# smallest normal is held with an absolute error of half a subnormal ULP = u * tiny, not u * p, so
# its terms count as tiny in T; on a platform that flushes subnormals (probed) it is held as 0, an
# absolute error up to tiny itself, so its terms count as tiny / u. Exact zeros stay 0 (a masked
# entry's gradient must be exactly 0).
_LIFT = [(0.0, 0.0)]


def _lift(p):
    t, v = _LIFT[0]
    if not t:
        return p
    with _e():
        return np.where((p > 0) & (p < t), v, p)


def _softmax_parts(z):
    """(p, log-softmax, K) of rows with -inf masks; an all -inf row gives p = 0, lsm = -inf.

    K_j = 1 + |z_j| + sum_k p_k |z_k| is the relative condition of p_j (rounding the logits moves
    p_j by about u K_j p_j): the terms of a softmax-type VJP carry it.
    """
    m, s, p, lse = _lse_parts(z)
    with _e():
        p = np.where(np.isfinite(p), p, 0.0)
        lsm = z - lse
        az = _absfin(z)
        K = 1 + az + np.sum(_pos(p, az), axis=-1, keepdims=True)
    return _lift(p), lsm, K


def _g_softmax(c, z):
    p, _, K = _softmax_parts(z)
    return {"z": p * K * (np.abs(c) + np.sum(_pos(p, np.abs(c)), axis=-1, keepdims=True))}


def _g_log_softmax(c, z):
    p, _, K = _softmax_parts(z)
    return {"z": np.abs(c) + p * K * np.sum(np.abs(c), axis=-1, keepdims=True)}


def _g_logsumexp(c, z):
    p, _, K = _softmax_parts(z)
    return {"z": np.abs(c)[..., None] * p * K}


def _g_cross_entropy(c, z, y):
    p, _, K = _softmax_parts(z)
    return {"z": np.abs(c)[..., None] * (p * K + _onehot(y, z.shape[-1]))}


def _g_nll_loss(c, logp, y):
    return {"logp": np.abs(c)[..., None] * _onehot(y, logp.shape[-1])}


def _g_label_smoothing(c, z, y, eps):
    p, lsm, Kp = _softmax_parts(z)
    K = z.shape[-1]
    oh = _onehot(y, K)
    t = (1 - eps) * oh + eps / K
    a = _absfin(lsm)
    eterm = np.sum(oh * a, axis=-1) + np.mean(a, axis=-1)
    return {"z": np.abs(c)[..., None] * (p * Kp + t), "eps": float(np.sum(np.abs(c) * eterm))}


def _kl_logit_parts(za, zb, T):
    """Parts of KL(softmax(za/T) || softmax(zb/T)): a, b, pa, pb, |log pa|, |log pb|, their
    conditions Ka, Kb and Kt = sum pa (|log pa| + |log pb|)."""
    with _e():
        a, b = za / T, zb / T
    pa, la, Ka = _softmax_parts(a)
    pb, lb, Kb = _softmax_parts(b)
    la, lb = _absfin(la), _absfin(lb)
    kt = np.sum(_pos(pa, la + lb), axis=-1, keepdims=True)
    return a, b, pa, pb, la, lb, Ka, Kb, kt


def _kl_first_terms(a, b, pa, pb, la, lb, Ka, Kb, kt):
    """Terms of pa_j (log pa_j - log pb_j - KL): the factor pa_j (relative condition Ka_j) times the
    logs, plus the logs' own rounding (|a_j| + |b_j| + their means + 1)."""
    ea = np.sum(_pos(pa, _absfin(a)), axis=-1, keepdims=True)
    eb = np.sum(_pos(pb, _absfin(b)), axis=-1, keepdims=True)
    return _pos(pa, (la + lb + kt) * Ka + _absfin(a) + _absfin(b) + ea + eb + 1)


def _g_distillation(c, zs, zt, T):
    a, b, pt, ps, lt, ls, Kt, Ks, kt = _kl_logit_parts(zt, zs, T)
    ac = np.abs(c)[..., None]
    aT = abs(T)
    g_zs = ac * aT * (ps * Ks + pt * Kt)
    g_zt = ac * aT * _kl_first_terms(a, b, pt, ps, lt, ls, Kt, Ks, kt)
    w = np.sum(_pos(pt, _absfin(a) * (lt + ls + kt) * Kt) + _absfin(b) * (ps * Ks + pt * Kt), axis=-1, keepdims=True)
    g_T = float(np.sum(ac * aT * (2 * kt + w)))
    return {"zs": g_zs, "zt": g_zt, "T": g_T}


def _g_rlhf(c, zp, zr, beta):
    a, b, pp, pr, lp, lr, Kp, Kr, kt = _kl_logit_parts(zp, zr, 1.0)
    ac = np.abs(c)[..., None]
    ab = abs(beta)
    return {"z_policy": ac * ab * _kl_first_terms(a, b, pp, pr, lp, lr, Kp, Kr, kt),
            "z_ref": ac * ab * (pr * Kr + pp * Kp), "beta": float(np.sum(ac * kt))}


def _g_sigmoid(c, x):
    return {"x": np.abs(c) * _lift(_sig(x))}


def _g_softplus(c, x):
    # sigmoid(x) = exp(x - softplus(x)) (the logaddexp VJP): the exponent's terms are |x| large
    return {"x": np.abs(c) * _lift(_sig(x)) * (1 + _absfin(x))}


def _g_log_sigmoid(c, x):
    return {"x": np.abs(c) * _lift(_sig(-x)) * (1 + _absfin(x))}


def _g_bce_logits(c, z, t):
    return {"z": np.abs(c) * (_lift(_sig(z)) * (1 + _absfin(z)) + np.abs(t)), "t": np.abs(c) * _absfin(z)}


def _g_bce(c, p, t):
    with _e():
        tp = np.where(t != 0, np.abs(t) / p, 0.0)
        tq = np.where(t != 1, np.abs(1 - t) / (1 - p), 0.0)
        lp = np.where(p > 0, np.abs(np.log(p)), 0.0)
        lq = np.where(p < 1, np.abs(np.log1p(-p)), 0.0)
    return {"p": np.abs(c) * _fin0(tp + tq), "t": np.abs(c) * _fin0(lp + lq)}


def _logabs(p):
    with _e():
        return _absfin(np.log(p))


def _g_entropy(c, p):
    return {"p": np.abs(c)[..., None] * (_logabs(p) + 1)}


def _g_entropy_bits(c, p):
    return {"p": np.abs(c)[..., None] * (_logabs(p) + 1) / math.log(2)}


def _g_self_information_bits(c, p):
    with _e():
        return {"p": np.abs(c) * _fin0(1 / (p * math.log(2)))}


def _g_binary_entropy_bits(c, p):
    with _e():
        lq = _absfin(np.log1p(-p))
    return {"p": np.abs(c) * (_logabs(p) + lq + 1) / math.log(2)}


def _g_kl(c, p, q):
    ac = np.abs(c)[..., None]
    with _e():
        r = _fin0(np.where(p > 0, p / q, 0.0))
    return {"p": ac * (_logabs(p) + _logabs(q) + 1), "q": ac * r}


def _g_cross_entropy_probs(c, p, q):
    ac = np.abs(c)[..., None]
    with _e():
        r = _fin0(np.where(p > 0, p / q, 0.0))
    return {"p": ac * _logabs(q), "q": ac * r}


def _g_gaussian_kl(c, mu, logvar):
    ac = np.abs(c)[..., None]
    with _e():
        ev = _fin0(np.exp(logvar))
    return {"mu": ac * _absfin(mu), "logvar": ac * (ev * (1 + _absfin(logvar)) + 1) / 2}


def _g_joint_entropy(c, P):
    return {"P": np.abs(c)[..., None, None] * (_logabs(P) + 1)}


def _g_conditional_entropy(c, P):
    px = np.sum(P, axis=-1, keepdims=True)
    return {"P": np.abs(c)[..., None, None] * (_logabs(P) + _logabs(px) + 2)}


def _g_mutual_information(c, P):
    px = np.sum(P, axis=-1, keepdims=True)
    py = np.sum(P, axis=-2, keepdims=True)
    return {"P": np.abs(c)[..., None, None] * (_logabs(P) + _logabs(px) + _logabs(py) + 3)}


# name -> (T function (cotangent, *inputs) -> {argument: T}, one-line statement of T)
GRAD_SCALES = {
    "softmax": (_g_softmax, "T = p_i K_i (|c_i| + sum_j p_j |c_j|): terms of p_i (c_i - sum_j p_j c_j), "
                "K_i = 1 + |z_i| + sum_j p_j |z_j| the condition of p_i"),
    "log_softmax": (_g_log_softmax, "T = |c_i| + p_i K_i sum_j |c_j|: terms of c_i - p_i sum_j c_j"),
    "logsumexp": (_g_logsumexp, "T = |c| p_i K_i: the product c softmax(z)_i"),
    "sigmoid": (_g_sigmoid, "T = |c| s: terms of c s (1 - s) with s = sigmoid(x)"),
    "softplus": (_g_softplus, "T = |c| sigmoid(x) (1 + |x|): terms of exp(x - softplus(x))"),
    "log_sigmoid": (_g_log_sigmoid, "T = |c| sigmoid(-x) (1 + |x|): terms of exp(-x - softplus(-x))"),
    "entropy": (_g_entropy, "T = |c| (|log p_i| + 1): terms of -(log p_i + 1)"),
    "entropy_bits": (_g_entropy_bits, "T = |c| (|log p_i| + 1) / ln 2"),
    "self_information_bits": (_g_self_information_bits, "T = |c| / (p ln 2)"),
    "binary_entropy_bits": (_g_binary_entropy_bits, "T = |c| (|log p| + |log(1-p)| + 1) / ln 2: terms of log2((1-p)/p)"),
    "kl_divergence": (_g_kl, "T_p = |c| (|log p_i| + |log q_i| + 1), T_q = |c| p_i / q_i"),
    "cross_entropy_probs": (_g_cross_entropy_probs, "T_p = |c| |log q_i|, T_q = |c| p_i / q_i"),
    "cross_entropy": (_g_cross_entropy, "T = |c| (p_i K_i + [i = y]): terms of softmax - onehot"),
    "nll_loss": (_g_nll_loss, "T = |c| [i = y]"),
    "binary_cross_entropy": (_g_bce, "T_p = |c| (t/p + (1-t)/(1-p)), T_t = |c| (|log p| + |log(1-p)|)"),
    "binary_cross_entropy_with_logits": (_g_bce_logits, "T_z = |c| (sigmoid(z) (1 + |z|) + |t|): terms of sigmoid(z) - t; T_t = |c z|"),
    "label_smoothing_cross_entropy": (_g_label_smoothing,
                                      "T_z = |c| (p_i K_i + target_i): terms of softmax - target; T_eps = sum |c| (|lsm_y| + mean |lsm|)"),
    "distillation_loss": (_g_distillation,
                          "T_zs = |c T| (ps_i K_i + pt_i K_i); T_zt = |c T| pt_i ((|log pt_i| + |log ps_i| + sum pt (|log pt| + |log ps|)) K_i + |z/T| terms); T_T: terms of 2T KL + T^2 dKL/dT"),
    "rlhf_kl_penalty": (_g_rlhf, "T_policy = |c beta| pp_i ((|log pp_i| + |log pr_i| + KL terms) K_i + |z| terms); T_ref = |c beta| (pr_i K_i + pp_i K_i); T_beta = |c| KL terms"),
    "gaussian_kl": (_g_gaussian_kl, "T_mu = |c mu|, T_logvar = |c| (exp(logvar) (1 + |logvar|) + 1) / 2: terms of (exp(logvar) - 1) / 2 and their condition"),
    "joint_entropy": (_g_joint_entropy, "T = |c| (|log P| + 1)"),
    "conditional_entropy": (_g_conditional_entropy, "T = |c| (|log P| + |log P_x| + 2)"),
    "mutual_information": (_g_mutual_information, "T = |c| (|log P| + |log P_x| + |log P_y| + 3)"),
}


def grad_scale(quantity: str, inputs, cotangent, dtype=None, flushing=False) -> dict:
    """{argument name: T} for the gradient of ``quantity`` at ``inputs`` (float arrays in any float
    dtype, broadcast for elementwise quantities; labels; scalars) with ``cotangent``. With
    ``dtype``, probabilities below its smallest normal count as that normal, or as normal / u on a
    platform that flushes subnormals (``flushing``; see _LIFT)."""
    from ..dtypes import fmt

    args = [np.asarray(a).astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind not in "iu"
            else a for a in inputs]
    fn = GRAD_SCALES[quantity][0]
    old = _LIFT[0]
    if dtype is not None:
        f = fmt(dtype)
        _LIFT[0] = (f.tiny, f.tiny / f.unit_roundoff if flushing else f.tiny)
    else:
        _LIFT[0] = (0.0, 0.0)
    try:
        with _e():
            out = fn(np.asarray(cotangent, dtype=np.float64), *args)
    finally:
        _LIFT[0] = old
    res = {}
    for k, v in out.items():
        v = np.asarray(v, dtype=np.float64)
        res[k] = np.where(np.isnan(v), 0.0, np.where(np.isinf(v), np.finfo(np.float64).max, v))
    return res

"""Hypothesis strategies that generate adversarial inputs for every registered quantity.

Hypothesis draws the *structure* of an input -- its family (moderate, huge, near the exp
overflow threshold, ties, one dominant entry, exact zeros, subnormals, ...), its shape, scale
and offset, the positions and values of a few special entries (-inf masks, +-max, thresholds
+- a few ULPs) and an RNG seed -- and the bulk of the array is filled from a numpy generator
seeded with that seed. Long rows (4,096 in the default profile, 131,072 in the thorough one)
are therefore as diverse as short ones, and shrinking still simplifies them: every drawn choice
shrinks towards the plainest input (family "moderate", length 1, scale 1, offset 0, no specials,
seed 0).

Public API::

    arguments(quantity, dtype, profile="default", focus="any")  # -> SearchStrategy[tuple]
    cases(quantity, dtype, profile="default", focus="any")      # -> SearchStrategy[Case]

Arguments come in the registry order: float arrays as numpy arrays in the audited dtype
(bfloat16 via ml_dtypes), labels int64, scalars Python floats that are exactly representable in
the audited dtype (so a backend that converts a temperature to the dtype sees the same number
as the reference). Shapes are ``(batch, n)`` with a small batch (tables ``(batch, nx, ny)``).
``focus="nonfinite"`` restricts the families to the extremes (huge values, thresholds, masks,
zeros and subnormals) for the separate search for non-finite mismatches.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from . import quantities as Q
from .dtypes import FORMATS, cast, dtype_name

PROFILES = ("quick", "default", "thorough")

# Longest row per profile for quantities with a certified float64 reference fast path (the
# logsumexp family), and for the others (mpmath per element costs ~20-100 us).
MAX_LEN = {"quick": 1024, "default": 4096, "thorough": 131_072}
MAX_LEN_SLOW = {"quick": 256, "default": 1024, "thorough": 16_384}
FAST_QUANTITIES = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "nll_loss")
MAX_ELEMENTWISE = {"quick": 32, "default": 64, "thorough": 256}
MAX_TABLE_SIDE = {"quick": 8, "default": 32, "thorough": 64}

# Shape menus. Hypothesis draws an entry (shrinking towards the first, smallest one). A menu
# instead of free lengths keeps the number of distinct shapes per audit small: jit-compiled
# backends (JAX: 0.1-0.9 s per new shape and variant on this kind of machine) then compile each
# shape once per worker. ``shapes="free"`` draws any length up to the profile's maximum instead.
ROW_SHAPES = {
    "quick": ((2, 16), (1, 256)),
    "default": ((2, 3), (2, 16), (2, 129), (1, 1024), (1, 4096)),
    "thorough": ((1, 1), (2, 2), (2, 3), (4, 8), (2, 16), (2, 17), (2, 33), (2, 129), (2, 1000), (1, 4096),
                 (1, 4097), (1, 16384), (1, 32000), (1, 50257), (1, 131072)),
}
ELEMENTWISE_SHAPES = {"quick": ((2, 16),), "default": ((2, 16), (1, 256)),
                      "thorough": ((1, 1), (2, 16), (4, 64), (1, 1000))}
TABLE_SHAPES = {"quick": ((1, 3, 4),), "default": ((2, 2, 3), (1, 8, 8), (1, 32, 32)),
                "thorough": ((1, 1, 1), (2, 2, 3), (1, 8, 8), (1, 32, 32), (1, 64, 64))}
SPECIAL_LENGTHS = (50_257, 32_000, 32_768, 65_536, 131_072, 4096, 4097, 2048, 2049, 1024, 1025, 257, 129)


@dataclass
class Case:
    """One generated input: the arguments and a JSON-able description of how it was drawn."""

    args: tuple
    recipe: dict = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.recipe.items())


# ---------------------------------------------------------------- dtype landmarks


def landmarks(dtype) -> dict:
    """Thresholds of the format that decide overflow/underflow of exp, log1p, expm1, ..."""
    f = FORMATS[dtype_name(dtype)]
    return {
        "max": f.max,
        "tiny": f.tiny,
        "sub": f.smallest_subnormal,
        "eps": f.eps,
        "u": f.unit_roundoff,
        "exp_over": math.log(f.max),          # exp(x) overflows above
        "exp_tiny": math.log(f.tiny),         # exp(x) becomes subnormal below
        "exp_under": math.log(f.smallest_subnormal),  # exp(x) underflows to 0 below (about)
        "log_eps": math.log(f.eps),           # 1 + exp(x) == 1 below (about)
        "sqrt_max": math.sqrt(f.max),
    }


def representable(v: float, dtype) -> float:
    """v rounded to the dtype (a Python float exactly representable in it)."""
    return float(cast(np.array([v], dtype=np.float64), dtype).astype(np.float64)[0])


def to_dtype(a, dtype, keep_inf=True) -> np.ndarray:
    """Round a float64 array once to the dtype; finite values are clipped to +-max first."""
    f = FORMATS[dtype_name(dtype)]
    a = np.asarray(a, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        c = np.where(np.isfinite(a), np.clip(a, -f.max, f.max), a if keep_inf else np.nan)
    return cast(c, dtype)


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def nextafter_n(v: float, k: int, dtype) -> float:
    """The number k representable steps (of the dtype) away from v rounded to the dtype."""
    nd = FORMATS[dtype_name(dtype)].np_dtype
    x = cast(np.array([v], dtype=np.float64), dtype)
    xv = float(x.astype(np.float64)[0])
    if not math.isfinite(xv) or k == 0:
        return xv
    bits = int(x.view(_UINT[nd.itemsize])[0])
    signbit = 1 << (8 * nd.itemsize - 1)
    mag = bits & (signbit - 1)
    val = (-mag if bits & signbit else mag) + int(k)  # integers ordered like the floats
    nb = (signbit | -val) if val < 0 else val
    out = np.array([nb], dtype=_UINT[nd.itemsize]).view(nd)
    return float(out.astype(np.float64)[0])


# ---------------------------------------------------------------- shared building blocks

_SCALE_EXP = st.integers(-6, 8)  # scale = 2**k; shrinks to 1
_OFFSETS = ("0", "small", "1e2", "-1e2", "1e4", "-1e4", "exp_over", "-exp_over", "max_quarter")


def _offset_value(name, lm, rng):
    return {
        "0": 0.0,
        "small": float(rng.integers(-8, 9)),
        "1e2": 100.0, "-1e2": -100.0,
        "1e4": 1e4, "-1e4": -1e4,
        "exp_over": lm["exp_over"], "-exp_over": -lm["exp_over"],
        "max_quarter": lm["max"] / 4,
    }[name]


def _pick(draw, seq):
    """An element of ``seq``, close to uniformly (st.sampled_from favours the first entries);
    shrinks towards the first one."""
    seq = tuple(seq)
    return seq[draw(st.integers(0, 255)) % len(seq)]


def _seed():
    return st.integers(0, 2**32 - 1)


def _length(draw, max_len, allow_special=True):
    """Row length: mostly short, sometimes medium, occasionally long (up to max_len)."""
    size = draw(st.sampled_from(("short", "short", "medium", "medium", "long")))
    if size == "short" or max_len <= 16:
        return draw(st.integers(1, min(16, max_len)))
    if size == "medium" or max_len <= 256:
        return draw(st.integers(17, min(256, max_len)))
    specials = [n for n in SPECIAL_LENGTHS if 256 < n <= max_len]
    if allow_special and specials and draw(st.booleans()):
        return draw(st.sampled_from(specials))
    return draw(st.integers(257, max_len))


def _row_shape(draw, menu):
    """(batch, n) from a shape menu, or free (any length up to ``menu`` when it is an int)."""
    if isinstance(menu, int):
        n = _length(draw, menu)
        return _batch(draw, n), n
    return tuple(_pick(draw, menu))


def _batch(draw, n, cap_elements=200_000):
    b = draw(st.integers(1, 4))
    return max(1, min(b, cap_elements // max(n, 1)))


# ---------------------------------------------------------------- logits

LOGIT_FAMILIES = ("moderate", "integers", "wide", "huge", "near_overflow", "near_underflow", "ties",
                  "dominant", "constant")
LOGIT_EXTREME = ("huge", "near_overflow", "near_underflow", "dominant", "constant", "wide")
LOGIT_SPECIALS = ("-inf", "-inf", "max", "-max", "big_gap", "over_thr", "zero", "+inf")


def _logits_bulk(family, shape, rng, scale, offset, lm, dtype):
    n = shape[-1]
    if family == "moderate":
        a = rng.standard_normal(shape) * scale + offset
    elif family == "integers":
        a = rng.integers(-5, 6, size=shape).astype(np.float64) * max(1.0, round(scale)) + offset
    elif family == "wide":
        r = min(10.0 ** (1 + abs(math.log2(scale)) % 5), lm["max"])
        a = rng.uniform(-r, r, shape) + offset
    elif family == "huge":
        hi = math.log10(lm["max"])
        mag = 10.0 ** rng.uniform(min(4.0, hi - 0.5), hi, shape)
        a = np.where(rng.random(shape) < 0.5, -mag, mag)
    elif family == "near_overflow":
        spread = min(scale, 4.0)
        a = lm["exp_over"] + (offset % 4.0 - 2.0) + rng.standard_normal(shape) * spread * 0.25
    elif family == "near_underflow":
        # entries whose exp(z - max) is subnormal or underflows; one entry at the max
        lo, hi = lm["exp_under"] - 3.0, lm["exp_tiny"] + 3.0
        a = rng.uniform(lo, hi, shape)
        a[..., rng.integers(0, n)] = 0.0
        a = a + offset
    elif family == "ties":
        k = int(rng.integers(1, 5))
        vals = rng.standard_normal(k) * scale + offset
        a = vals[rng.integers(0, k, size=shape)]
    elif family == "dominant":
        a = rng.standard_normal(shape) * min(scale, 8.0) + offset
        pos = rng.integers(0, n, size=shape[:-1])
        gap = -math.log(lm["u"]) + rng.uniform(-3.0, 30.0)
        idx = np.indices(shape[:-1])
        a[(*idx, pos)] = a.max(axis=-1) + gap
    elif family == "constant":
        a = np.full(shape, offset + (0.0 if scale == 1 else scale))
    else:  # pragma: no cover
        raise ValueError(family)
    return a


def _apply_logit_specials(a, specials, lm, dtype):
    for (row, pos, kind, k) in specials:
        r = row % a.shape[0]
        p = pos % a.shape[-1]
        if kind == "-inf":
            a[r, p] = -np.inf
        elif kind == "+inf":
            a[r, p] = np.inf
        elif kind == "max":
            a[r, p] = lm["max"]
        elif kind == "-max":
            a[r, p] = -lm["max"]
        elif kind == "big_gap":
            fin = a[r][np.isfinite(a[r])]
            base = float(fin.max()) if fin.size else 0.0
            a[r, p] = base + (-math.log(lm["u"])) * (1 + k)
        elif kind == "over_thr":
            a[r, p] = nextafter_n(lm["exp_over"], k, dtype)
        elif kind == "zero":
            a[r, p] = 0.0
    return a


@st.composite
def _logits(draw, dtype, max_len, focus="any", n=None, batch=None, name="z"):
    lm = landmarks(dtype)
    fams = LOGIT_EXTREME if focus == "nonfinite" else LOGIT_FAMILIES
    family = _pick(draw, fams)
    if n is None:
        batch, n = _row_shape(draw, max_len)
    scale = 2.0 ** draw(_SCALE_EXP)
    offset_name = draw(st.sampled_from(_OFFSETS))
    mask = draw(st.sampled_from((0.0, 0.0, 0.25, 0.5, 0.9, 0.99) if focus == "any" else (0.0, 0.5, 0.99)))
    masked_row = draw(st.integers(0, 7)) == 7
    nspec = draw(st.integers(0, 3))
    specials = [(draw(st.integers(0, batch - 1)), draw(st.integers(0, n - 1)),
                 draw(st.sampled_from(LOGIT_SPECIALS)), draw(st.integers(-3, 3))) for _ in range(nspec)]
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    offset = _offset_value(offset_name, lm, rng)
    a = _logits_bulk(family, (batch, n), rng, scale, offset, lm, dtype)
    if mask:
        a = np.where(rng.random(a.shape) < mask, -np.inf, a)
    if masked_row:
        a[int(rng.integers(0, batch))] = -np.inf
    a = _apply_logit_specials(a, specials, lm, dtype)
    recipe = {f"{name}.family": family, f"{name}.shape": [batch, n], f"{name}.scale": scale,
              f"{name}.offset": offset_name, f"{name}.mask": mask, f"{name}.masked_row": masked_row,
              f"{name}.specials": [list(s) for s in specials], f"{name}.seed": seed}
    return to_dtype(a, dtype), recipe


@st.composite
def _labels(draw, z, name="y"):
    """Class indices in [0, n): random, the argmax, the argmin, a masked (-inf) position, ends."""
    kind = draw(st.sampled_from(("random", "argmax", "argmin", "masked", "first", "last")))
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    zf = np.asarray(z).astype(np.float64)
    b, n = zf.shape[0], zf.shape[-1]
    y = rng.integers(0, n, size=b)
    with np.errstate(invalid="ignore"):
        if kind == "argmax":
            y = np.argmax(np.where(np.isnan(zf), -np.inf, zf), axis=-1)
        elif kind == "argmin":
            y = np.argmin(np.where(np.isneginf(zf), np.inf, zf), axis=-1)
        elif kind == "masked":
            for r in range(b):
                m = np.flatnonzero(np.isneginf(zf[r]))
                if m.size:
                    y[r] = m[rng.integers(0, m.size)]
        elif kind == "first":
            y = np.zeros(b, dtype=np.int64)
        elif kind == "last":
            y = np.full(b, n - 1)
    return np.asarray(y, dtype=np.int64), {f"{name}.kind": kind, f"{name}.seed": seed}


@st.composite
def _logits_pair(draw, dtype, max_len, focus="any", names=("za", "zb")):
    """Two logit arrays of the same shape with a drawn relation (distillation, RLHF KL)."""
    za, ra = draw(_logits(dtype, max_len, focus, name=names[0]))
    rel = draw(st.sampled_from(("independent", "equal", "shift", "perturb", "scaled", "permuted")))
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    a = za.astype(np.float64)
    lm = landmarks(dtype)
    if rel == "independent":
        zb, rb = draw(_logits(dtype, max_len, focus, n=a.shape[-1], batch=a.shape[0], name=names[1]))
        return za, zb, {**ra, **rb, "relation": rel}
    with np.errstate(invalid="ignore", over="ignore"):
        if rel == "equal":
            b = a.copy()
        elif rel == "shift":
            b = a + float(rng.choice([1.0, -3.0, 0.5, 1e3, lm["exp_over"]]))
        elif rel == "perturb":
            b = a + rng.standard_normal(a.shape) * np.where(np.isfinite(a), np.abs(a) + 1.0, 0.0) \
                * 2.0 ** -int(rng.integers(2, 20))
        elif rel == "scaled":
            b = a * float(rng.choice([2.0, 0.5, -1.0, 1.0009765625]))
        else:
            b = a[..., rng.permutation(a.shape[-1])]
        b = np.where(np.isnan(b), a, b)
    return za, to_dtype(b, dtype), {**ra, "relation": rel, "relation.seed": seed}


# ---------------------------------------------------------------- probability vectors

PROB_FAMILIES = ("dirichlet", "uniform", "sparse_zeros", "near_one", "subnormal", "one_hot", "tiny", "powers")
PROB_EXTREME = ("sparse_zeros", "near_one", "subnormal", "one_hot", "tiny")
PROB_SPECIALS = ("zero", "sub_min", "tiny", "near_one", "one", "sub_k")


def _probs_bulk(family, shape, rng, alpha, lm, dtype):
    n = shape[-1]
    if family == "dirichlet":
        a = rng.dirichlet(np.full(n, alpha), size=shape[:-1])
    elif family == "uniform":
        a = np.full(shape, 1.0 / n)
    elif family == "sparse_zeros":
        a = rng.dirichlet(np.full(n, alpha), size=shape[:-1])
        a = np.where(rng.random(shape) < 0.5, 0.0, a)
        s = a.sum(-1, keepdims=True)
        a = np.where(s > 0, a / np.where(s > 0, s, 1), 1.0 / n)
    elif family == "near_one":
        k = int(rng.integers(1, 9))
        a = rng.dirichlet(np.full(n, alpha), size=shape[:-1]) * (k * lm["u"])
        pos = rng.integers(0, n, size=shape[:-1])
        idx = np.indices(shape[:-1])
        a[(*idx, pos)] = 1.0 - k * lm["u"]
    elif family == "subnormal":
        a = rng.dirichlet(np.full(n, alpha), size=shape[:-1])
        pick = rng.random(shape) < 0.5
        a = np.where(pick, rng.integers(1, 64, size=shape) * lm["sub"] * 2.0 ** rng.integers(0, 12, size=shape), a)
    elif family == "one_hot":
        a = np.zeros(shape)
        pos = rng.integers(0, n, size=shape[:-1])
        idx = np.indices(shape[:-1])
        a[(*idx, pos)] = 1.0
    elif family == "tiny":
        a = 10.0 ** rng.uniform(math.log10(lm["sub"]), math.log10(lm["tiny"]) + 3, shape)
    elif family == "powers":
        a = 2.0 ** -rng.integers(1, 12, size=shape).astype(np.float64)
    else:  # pragma: no cover
        raise ValueError(family)
    return a


def _apply_prob_specials(a, specials, lm):
    for (row, pos, kind, k) in specials:
        r = row % a.shape[0]
        p = pos % a.shape[-1]
        a[r, p] = {"zero": 0.0, "sub_min": lm["sub"], "tiny": lm["tiny"] * (1 + abs(k)),
                   "near_one": 1.0 - (abs(k) + 1) * lm["u"], "one": 1.0,
                   "sub_k": lm["sub"] * (abs(k) + 1) * 3}[kind]
    return a


@st.composite
def _probs(draw, dtype, max_len, focus="any", n=None, batch=None, name="p"):
    lm = landmarks(dtype)
    family = _pick(draw, PROB_EXTREME if focus == "nonfinite" else PROB_FAMILIES)
    if n is None:
        batch, n = _row_shape(draw, max_len)
    alpha = 10.0 ** draw(st.sampled_from((0, -1, 1, -2, 2, -3)))
    nspec = draw(st.integers(0, 3))
    specials = [(draw(st.integers(0, batch - 1)), draw(st.integers(0, n - 1)),
                 draw(st.sampled_from(PROB_SPECIALS)), draw(st.integers(0, 7))) for _ in range(nspec)]
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    a = _probs_bulk(family, (batch, n), rng, alpha, lm, dtype)
    a = _apply_prob_specials(a, specials, lm)
    recipe = {f"{name}.family": family, f"{name}.shape": [batch, n], f"{name}.alpha": alpha,
              f"{name}.specials": [list(s) for s in specials], f"{name}.seed": seed}
    return to_dtype(np.clip(a, 0.0, None), dtype), recipe


@st.composite
def _probs_pair(draw, dtype, max_len, focus="any"):
    """p and q of the same shape: independent, equal, a few ULPs apart, q tiny or 0 where p is not."""
    p, rp = draw(_probs(dtype, max_len, focus, name="p"))
    rel = draw(st.sampled_from(("independent", "equal", "perturbed", "tiny_where_p", "zero_where_p", "reversed")))
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    lm = landmarks(dtype)
    pf = p.astype(np.float64)
    if rel == "independent":
        q, rq = draw(_probs(dtype, max_len, focus, n=p.shape[-1], batch=p.shape[0], name="q"))
        return p, q, {**rp, **rq, "relation": rel}
    if rel == "equal":
        qf = pf.copy()
    elif rel == "perturbed":
        qf = pf * (1.0 + rng.standard_normal(pf.shape) * lm["eps"] * rng.integers(1, 8))
    elif rel == "reversed":
        qf = pf[..., ::-1].copy()
    else:
        qf = rng.dirichlet(np.ones(pf.shape[-1]), size=pf.shape[0])
        big = np.argmax(pf, axis=-1)
        qf[np.arange(pf.shape[0]), big] = 0.0 if rel == "zero_where_p" else lm["sub"] * rng.integers(1, 4)
    return p, to_dtype(np.clip(qf, 0.0, None), dtype), {**rp, "relation": rel, "relation.seed": seed}


# ---------------------------------------------------------------- elementwise kinds

REAL_FAMILIES = ("moderate", "mixed", "huge", "thresholds", "tiny", "integers")
REAL_EXTREME = ("mixed", "huge", "thresholds", "tiny")


def _threshold_values(lm, dtype, rng, shape):
    base = np.array([lm["exp_over"], lm["exp_tiny"], lm["exp_under"], lm["log_eps"], -lm["log_eps"],
                     -lm["exp_over"], -lm["exp_tiny"], -lm["exp_under"], 0.0, lm["sqrt_max"]])
    pick = base[rng.integers(0, base.size, size=shape)]
    k = rng.integers(-4, 5, size=shape)
    out = np.empty(shape)
    for idx in np.ndindex(*shape):
        out[idx] = nextafter_n(float(pick[idx]), int(k[idx]), dtype)
    return out


def _real_bulk(family, shape, rng, scale, lm, dtype):
    if family == "moderate":
        return rng.standard_normal(shape) * scale
    if family == "integers":
        return rng.integers(-20, 21, size=shape).astype(np.float64)
    if family == "huge":
        mag = 10.0 ** rng.uniform(1.0, math.log10(lm["max"]), shape)
        return np.where(rng.random(shape) < 0.5, -mag, mag)
    if family == "thresholds":
        return _threshold_values(lm, dtype, rng, shape)
    if family == "tiny":
        mag = 10.0 ** rng.uniform(math.log10(lm["sub"]), 0.0, shape)
        return np.where(rng.random(shape) < 0.5, -mag, mag)
    if family == "mixed":
        fams = ("moderate", "huge", "thresholds", "tiny")
        parts = [_real_bulk(f, shape, rng, scale, lm, dtype) for f in fams]
        sel = rng.integers(0, len(fams), size=shape)
        return np.choose(sel, parts)
    raise ValueError(family)  # pragma: no cover


@st.composite
def _real(draw, dtype, profile, focus="any", shape=None, name="x", menu=None):
    lm = landmarks(dtype)
    family = _pick(draw, REAL_EXTREME if focus == "nonfinite" else REAL_FAMILIES)
    if shape is None:
        shape = _elem_shape(draw, profile, menu)
    scale = 2.0 ** draw(_SCALE_EXP)
    nspec = draw(st.integers(0, 2))
    specials = [(draw(st.integers(0, shape[0] - 1)), draw(st.integers(0, shape[1] - 1)),
                 draw(st.sampled_from(("inf", "-inf", "max", "-max", "zero", "-zero", "sub")))) for _ in range(nspec)]
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    a = _real_bulk(family, shape, rng, scale, lm, dtype)
    for (r, c, kind) in specials:
        a[r, c] = {"inf": np.inf, "-inf": -np.inf, "max": lm["max"], "-max": -lm["max"], "zero": 0.0,
                   "-zero": -0.0, "sub": lm["sub"]}[kind]
    recipe = {f"{name}.family": family, f"{name}.shape": list(shape), f"{name}.scale": scale,
              f"{name}.specials": [list(s) for s in specials], f"{name}.seed": seed}
    return to_dtype(a, dtype), recipe


def _elem_shape(draw, profile, menu=None):
    menu = menu or ELEMENTWISE_SHAPES[profile]
    if menu == "free":
        return (draw(st.integers(1, 4)), draw(st.integers(1, MAX_ELEMENTWISE[profile])))
    return tuple(_pick(draw, menu))


PROB1_FAMILIES = ("uniform", "mixed", "log_uniform", "near_one", "subnormal", "exact")
PROB1_EXTREME = ("mixed", "log_uniform", "near_one", "subnormal", "exact")


def _prob1_bulk(family, shape, rng, lm):
    if family == "uniform":
        return rng.random(shape)
    if family == "log_uniform":
        return 10.0 ** rng.uniform(math.log10(lm["sub"]), 0.0, shape)
    if family == "near_one":
        return 1.0 - rng.integers(0, 16, size=shape) * lm["u"] * 2.0 ** -rng.integers(0, 2, size=shape)
    if family == "subnormal":
        return rng.integers(0, 64, size=shape) * lm["sub"]
    if family == "exact":
        vals = np.array([0.0, 1.0, 0.5, 0.25, 0.75, 0.125, 0.9, 0.1])
        return vals[rng.integers(0, vals.size, size=shape)]
    if family == "mixed":
        fams = ("uniform", "log_uniform", "near_one", "subnormal", "exact")
        parts = [_prob1_bulk(f, shape, rng, lm) for f in fams]
        return np.choose(rng.integers(0, len(fams), size=shape), parts)
    raise ValueError(family)  # pragma: no cover


@st.composite
def _prob1(draw, dtype, profile, focus="any", shape=None, name="p", menu=None):
    lm = landmarks(dtype)
    family = _pick(draw, PROB1_EXTREME if focus == "nonfinite" else PROB1_FAMILIES)
    if shape is None:
        shape = _elem_shape(draw, profile, menu)
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    a = np.clip(_prob1_bulk(family, shape, rng, lm), 0.0, 1.0)
    return to_dtype(a, dtype), {f"{name}.family": family, f"{name}.shape": list(shape), f"{name}.seed": seed}


@st.composite
def _target01(draw, dtype, shape, p=None, name="t"):
    lm = landmarks(dtype)
    family = _pick(draw, ("binary", "uniform", "equal_p", "near_binary", "half"))
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    if family == "binary":
        a = rng.integers(0, 2, size=shape).astype(np.float64)
    elif family == "uniform":
        a = rng.random(shape)
    elif family == "equal_p" and p is not None:
        a = np.clip(p.astype(np.float64), 0, 1)
    elif family == "near_binary":
        a = np.abs(rng.integers(0, 2, size=shape) - rng.integers(1, 8, size=shape) * lm["u"])
    else:
        a = np.full(shape, 0.5)
    return to_dtype(np.clip(a, 0.0, 1.0), dtype), {f"{name}.family": family, f"{name}.seed": seed}


@st.composite
def _logprobs(draw, dtype, max_len, focus="any", name="logp"):
    lm = landmarks(dtype)
    family = _pick(draw, ("log_softmax", "uniform_neg", "with_neg_inf", "huge_neg"))
    batch, n = _row_shape(draw, max_len)
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    shape = (batch, n)
    if family == "log_softmax":
        z = rng.standard_normal(shape) * 4
        m = z.max(-1, keepdims=True)
        a = z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))
    elif family == "uniform_neg":
        a = -rng.uniform(0, 30, shape)
    elif family == "with_neg_inf":
        a = np.where(rng.random(shape) < 0.5, -np.inf, -rng.uniform(0, 30, shape))
    else:
        a = -(10.0 ** rng.uniform(0, math.log10(lm["max"]), shape))
    return to_dtype(a, dtype), {f"{name}.family": family, f"{name}.shape": [batch, n], f"{name}.seed": seed}


@st.composite
def _gaussian(draw, dtype, max_len, focus="any"):
    lm = landmarks(dtype)
    batch, n = _row_shape(draw, max_len)
    shape = (batch, n)
    mfam = draw(st.sampled_from(("moderate", "zero", "huge", "sqrt_overflow", "tiny")))
    vfam = draw(st.sampled_from(("moderate", "zero", "very_negative", "near_overflow", "tiny", "beyond_overflow")))
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    if mfam == "moderate":
        mu = rng.standard_normal(shape) * 2
    elif mfam == "zero":
        mu = np.zeros(shape)
    elif mfam == "huge":
        mu = 10.0 ** rng.uniform(1, math.log10(lm["max"]), shape) * rng.choice([-1.0, 1.0], size=shape)
    elif mfam == "sqrt_overflow":
        mu = lm["sqrt_max"] * rng.uniform(0.5, 1.5, shape) / math.sqrt(n)
    else:
        mu = 10.0 ** rng.uniform(math.log10(lm["sub"]), -2, shape)
    if vfam == "moderate":
        lv = rng.standard_normal(shape) * 2
    elif vfam == "zero":
        lv = np.zeros(shape)
    elif vfam == "very_negative":
        lv = -(10.0 ** rng.uniform(1, 3, shape))  # down to -1e3
    elif vfam == "near_overflow":
        lv = lm["exp_over"] - math.log(n) + rng.uniform(-3, 1, shape)
    elif vfam == "beyond_overflow":
        lv = lm["exp_over"] * rng.uniform(1.0, 2.0, shape)
    else:
        lv = 10.0 ** rng.uniform(math.log10(lm["sub"]), -2, shape) * rng.choice([-1.0, 1.0], size=shape)
    return (to_dtype(mu, dtype), to_dtype(lv, dtype),
            {"mu.family": mfam, "logvar.family": vfam, "shape": [batch, n], "seed": seed})


TABLE_FAMILIES = ("dirichlet", "product", "zeros", "deterministic", "subnormal", "uniform")


@st.composite
def _table(draw, dtype, profile, focus="any", name="P", menu=None):
    lm = landmarks(dtype)
    family = _pick(draw, TABLE_FAMILIES)
    menu = menu or TABLE_SHAPES[profile]
    if menu == "free":
        side = MAX_TABLE_SIDE[profile]
        nx, ny, batch = draw(st.integers(1, side)), draw(st.integers(1, side)), draw(st.integers(1, 3))
    else:
        batch, nx, ny = _pick(draw, menu)
    alpha = 10.0 ** draw(st.sampled_from((0, -1, 1, -2)))
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    shape = (batch, nx, ny)
    if family == "dirichlet":
        a = rng.dirichlet(np.full(nx * ny, alpha), size=batch).reshape(shape)
    elif family == "product":
        px = rng.dirichlet(np.full(nx, alpha), size=batch)
        py = rng.dirichlet(np.full(ny, alpha), size=batch)
        a = px[:, :, None] * py[:, None, :]
    elif family == "zeros":
        a = rng.dirichlet(np.full(nx * ny, alpha), size=batch).reshape(shape)
        a = np.where(rng.random(shape) < 0.5, 0.0, a)
    elif family == "deterministic":
        a = np.zeros(shape)
        for b in range(batch):
            for i in range(nx):
                a[b, i, rng.integers(0, ny)] = 1.0 / nx
    elif family == "subnormal":
        a = rng.dirichlet(np.full(nx * ny, alpha), size=batch).reshape(shape)
        a = np.where(rng.random(shape) < 0.3, rng.integers(1, 32, size=shape) * lm["sub"], a)
    else:
        a = np.full(shape, 1.0 / (nx * ny))
    return to_dtype(a, dtype), {f"{name}.family": family, f"{name}.shape": list(shape),
                                 f"{name}.alpha": alpha, f"{name}.seed": seed}


# ---------------------------------------------------------------- scalars


# Scalars come mostly (15/16) from a short list of typical and extreme values (jit backends that
# treat them as static arguments compile once per distinct value), else from a continuous range.
def _scalar(specials, lo, hi, dtype, log=False, check=lambda v: True):
    @st.composite
    def draw_scalar(draw):
        k = draw(st.integers(0, 255)) % 16
        if k < 15:
            v = specials[k % len(specials)]
        elif log:
            v = math.exp(draw(st.floats(math.log(lo), math.log(hi))))
        else:
            v = draw(st.floats(lo, hi))
        r = representable(v, dtype)
        return r if check(r) else representable(specials[0], dtype)
    return draw_scalar()


def _temperature(dtype):
    return _scalar((1.0, 2.0, 0.05, 100.0, 4.0), 0.05, 100.0, dtype, log=True, check=lambda v: v > 0)


def _eps(dtype):
    return _scalar((0.1, 0.0, 1.0), 0.0, 1.0, dtype, check=lambda v: 0.0 <= v <= 1.0)


def _beta(dtype):
    return _scalar((1.0, 0.1, 0.01), 1e-3, 10.0, dtype, log=True, check=lambda v: v > 0)


# ---------------------------------------------------------------- large-vocabulary losses

SAMPLED_LOGITS = ("zipf", "zipf", "general")
PROPOSALS = ("zipf", "log_uniform", "uniform", "peaked", "tiny")
SAMPLE_SIZES = ("one", "few", "half", "all", "twice")


def zipf_log_probs(n, s=1.0, perm=None) -> np.ndarray:
    """log q_j of a Zipf(s) law over n classes (rank r = j + 1, optionally permuted), float64."""
    lw = -s * np.log(np.arange(1, n + 1, dtype=np.float64))
    m = lw.max()
    lq = lw - (m + np.log(np.sum(np.exp(lw - m))))
    return lq if perm is None else lq[perm]


def _proposal(family, n, rng, lm):
    if family == "zipf":
        return zipf_log_probs(n, float(rng.choice([0.8, 1.0, 1.2])))
    if family == "log_uniform":  # TF's LogUniformCandidateSampler: q(k) = log((k + 2) / (k + 1)) / log(n + 1)
        k = np.arange(n, dtype=np.float64)
        return np.log(np.log1p(1.0 / (k + 1))) - np.log(np.log(n + 1.0))
    if family == "uniform":
        return np.full(n, -np.log(n))
    if family == "peaked":
        lq = zipf_log_probs(n, 3.0, rng.permutation(n))
        return lq
    # tiny: a few classes with probabilities near the dtype's smallest normal
    lq = zipf_log_probs(n, 1.0)
    lq[rng.integers(0, n, size=max(1, n // 8))] = lm["exp_tiny"] + rng.uniform(-2, 2)
    return lq


@st.composite
def _sampled_softmax(draw, dtype, max_len, focus="any"):
    """(z, y, samples, log_q): Zipfian (or general adversarial) logits, a unigram proposal over
    the vocabulary, K from 1 to 2V samples drawn from it with replacement (duplicates and
    accidental hits of y happen; a drawn option forces hits)."""
    lm = landmarks(dtype)
    zfam = _pick(draw, SAMPLED_LOGITS)
    if zfam == "general":
        z, r = draw(_logits(dtype, max_len, focus))
        batch, n = z.shape
    else:
        batch, n = _row_shape(draw, max_len)
        r = {"z.family": "zipf", "z.shape": [batch, n]}
    pfam = _pick(draw, PROPOSALS)
    kfam = _pick(draw, SAMPLE_SIZES)
    force_hit = draw(st.booleans())
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    if zfam == "zipf":
        scale = float(rng.choice([1.0, 4.0, 30.0, lm["exp_over"] / 4]))
        z = np.stack([zipf_log_probs(n, 1.0, rng.permutation(n)) * scale / max(1.0, np.log(n))
                      + rng.standard_normal(n) * 0.1 for _ in range(batch)]) + float(rng.normal() * 3)
        z = to_dtype(z, dtype)
    y, ry = draw(_labels(z))
    lq = to_dtype(np.broadcast_to(_proposal(pfam, n, rng, lm), (batch, n)), dtype)
    k = {"one": 1, "few": int(rng.integers(2, 9)), "half": max(1, n // 2), "all": n, "twice": 2 * n}[kfam]
    q = np.exp(lq.astype(np.float64)[0])
    q = q / q.sum()
    samples = np.stack([rng.choice(n, size=k, p=q) for _ in range(batch)]).astype(np.int64)
    if force_hit:
        samples[:, 0] = y
    recipe = {**r, **ry, "log_q.family": pfam, "samples.K": kfam, "samples.k": k, "samples.hit": force_hit,
              "samples.seed": seed}
    return z, y, samples, lq, recipe


ADAPTIVE_FAMILIES = ("init", "init", "large", "near_overflow", "zeros", "dominant")
ADAPTIVE_SHAPES = {"quick": ((1, 4, 2, 3, 2),), "default": ((2, 4, 2, 3, 2), (2, 16, 8, 16, 8), (1, 24, 14, 32, 16)),
                   "thorough": ((1, 1, 1, 1, 1), (2, 4, 2, 3, 2), (2, 16, 8, 16, 8), (1, 32, 30, 64, 32),
                                (1, 64, 60, 200, 100))}


@st.composite
def _adaptive(draw, dtype, profile, focus="any"):
    """(h, W_head, P_1, O_1, P_2, O_2) of a two-cluster adaptive softmax: (batch, d, S, o_1, o_2)
    from a menu, projections d -> d/2 and d -> d/4 (div_value 2, as in torch's default 4.0 but
    smaller); weights as nn.Linear initialises them (U(-1/sqrt(in), 1/sqrt(in))) or scaled so
    that logits reach the dtype's exp thresholds, all zero, or one dominant head row."""
    lm = landmarks(dtype)
    batch, d, S, o1, o2 = _pick(draw, ADAPTIVE_SHAPES[profile])
    fam = _pick(draw, ADAPTIVE_FAMILIES[2:] if focus == "nonfinite" else ADAPTIVE_FAMILIES)
    seed = draw(_seed())
    rng = np.random.default_rng(seed)
    h1, h2 = max(1, d // 2), max(1, d // 4)
    shapes = [(S + 2, d), (h1, d), (o1, h1), (h2, d), (o2, h2)]
    ws = [rng.uniform(-1, 1, sh) / np.sqrt(sh[1]) for sh in shapes]
    h = rng.standard_normal((batch, d))
    if fam == "large":
        h = h * float(rng.choice([30.0, 300.0]))
    elif fam == "near_overflow":
        h = h * lm["exp_over"] * 2
    elif fam == "zeros":
        ws = [np.zeros(sh) for sh in shapes]
    elif fam == "dominant":
        ws[0][int(rng.integers(0, S + 2))] *= -math.log(lm["u"]) * 2
    args = (to_dtype(h, dtype),) + tuple(to_dtype(w, dtype) for w in ws)
    return args, {"adaptive.family": fam, "adaptive.shape": [batch, d, S, o1, o2], "adaptive.seed": seed}


# ---------------------------------------------------------------- per quantity


def max_len(quantity, profile="default") -> int:
    q = Q.get(quantity)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    return (MAX_LEN if q.name in FAST_QUANTITIES else MAX_LEN_SLOW)[profile]


def shape_menu(quantity, profile="default"):
    """The shapes the strategies draw from for ``quantity`` under ``profile``."""
    q = Q.get(quantity)
    if q.structure == Q.ELEMENTWISE:
        return ELEMENTWISE_SHAPES[profile]
    if q.structure == Q.TABLE_REDUCE:
        return TABLE_SHAPES[profile]
    if q.structure == Q.ADAPTIVE:
        return ADAPTIVE_SHAPES[profile]
    L = max_len(q, profile)
    return tuple(s for s in ROW_SHAPES[profile] if s[-1] <= L)


def cases(quantity, dtype, profile="default", focus="any", shapes=None):
    """Strategy of :class:`Case` (arguments + recipe) for ``quantity`` in ``dtype``.

    ``shapes``: None (the profile's shape menu, see :func:`shape_menu`), a sequence of shapes
    ((batch, n), or (batch, nx, ny) for tables) to draw from, or "free" (any length up to the
    profile's maximum).
    """
    q = Q.get(quantity)
    d = dtype_name(dtype)
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if shapes == "free":
        L = max_len(q, profile)
        menu = "free"
    else:
        L = tuple(tuple(int(x) for x in s) for s in (shapes or shape_menu(q, profile)))
        menu = L
    kinds = tuple(a.kind for a in q.args)

    @st.composite
    def build(draw):
        if kinds == (Q.LOGITS,):
            z, r = draw(_logits(d, L, focus))
            return Case((z,), r)
        if kinds == (Q.LOGITS, Q.LABEL):
            z, r = draw(_logits(d, L, focus))
            y, ry = draw(_labels(z))
            return Case((z, y), {**r, **ry})
        if kinds == (Q.LOGITS, Q.LABEL, Q.EPS):
            z, r = draw(_logits(d, L, focus))
            y, ry = draw(_labels(z))
            eps = draw(_eps(d))
            return Case((z, y, eps), {**r, **ry, "eps": eps})
        if kinds == (Q.LOGPROBS, Q.LABEL):
            lp, r = draw(_logprobs(d, L, focus))
            y, ry = draw(_labels(lp))
            return Case((lp, y), {**r, **ry})
        if kinds == (Q.LOGITS, Q.LOGITS, Q.TEMPERATURE):
            zs, zt, r = draw(_logits_pair(d, L, focus, names=("zs", "zt")))
            T = draw(_temperature(d))
            return Case((zs, zt, T), {**r, "T": T})
        if kinds == (Q.LOGITS, Q.LOGITS, Q.BETA):
            zp, zr, r = draw(_logits_pair(d, L, focus, names=("z_policy", "z_ref")))
            beta = draw(_beta(d))
            return Case((zp, zr, beta), {**r, "beta": beta})
        if kinds == (Q.PROBS,):
            p, r = draw(_probs(d, L, focus))
            return Case((p,), r)
        if kinds == (Q.PROBS, Q.PROBS):
            p, qq, r = draw(_probs_pair(d, L, focus))
            return Case((p, qq), r)
        if kinds == (Q.REAL,):
            x, r = draw(_real(d, profile, focus, menu=menu))
            return Case((x,), r)
        if kinds == (Q.REAL, Q.TARGET01):
            x, r = draw(_real(d, profile, focus, name="z", menu=menu))
            t, rt = draw(_target01(d, x.shape))
            return Case((x, t), {**r, **rt})
        if kinds == (Q.PROB,):
            p, r = draw(_prob1(d, profile, focus, menu=menu))
            return Case((p,), r)
        if kinds == (Q.PROB, Q.TARGET01):
            p, r = draw(_prob1(d, profile, focus, menu=menu))
            t, rt = draw(_target01(d, p.shape, p))
            return Case((p, t), {**r, **rt})
        if kinds == (Q.MU, Q.LOGVAR):
            mu, lv, r = draw(_gaussian(d, L, focus))
            return Case((mu, lv), r)
        if kinds == (Q.TABLE,):
            P, r = draw(_table(d, profile, focus, menu=menu))
            return Case((P,), r)
        if kinds == (Q.LOGITS, Q.LABEL, Q.SAMPLES, Q.LOG_PROPOSAL):
            z, y, smp, lq, r = draw(_sampled_softmax(d, L, focus))
            return Case((z, y, smp, lq), r)
        if q.structure == Q.ADAPTIVE:
            args, r = draw(_adaptive(d, profile, focus))
            return Case(args, r)
        raise NotImplementedError(f"no strategy for argument kinds {kinds} of {q.name}")  # pragma: no cover

    return build()


def arguments(quantity, dtype, profile="default", focus="any", shapes=None):
    """Strategy of argument tuples for ``quantity`` in ``dtype`` (registry order; see module doc)."""
    return cases(quantity, dtype, profile, focus, shapes).map(lambda c: c.args)


__all__ = ["arguments", "cases", "Case", "landmarks", "max_len", "shape_menu", "PROFILES", "without_local_constants",
           "zipf_log_probs", "nextafter_n", "representable", "to_dtype"]


@contextlib.contextmanager
def without_local_constants():
    """Within the block Hypothesis draws no literals from the modules the process imported.

    Hypothesis (6.131 and later) mixes the numeric and string literals of every *local* module in
    ``sys.modules`` into generation -- infoaudit is local when installed editable -- so what a
    search generates would depend on what the process happened to import before (a pool worker,
    a Dask worker, a first and a second group in one process). The audit runner and the gate
    search inside this block: same seed, same inputs. Hypothesis's own constants stay; a
    Hypothesis without the feature is left as it is.
    """
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:
        providers = None
    if providers is None or not hasattr(providers, "_get_local_constants"):
        yield
        return
    saved, empty = providers._get_local_constants, Constants()
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = saved
        providers.CONSTANTS_CACHE.cache.clear()

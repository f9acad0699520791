"""Condition-aware error: tell the error the problem forces from the error the algorithm adds.

For an output y_i = f_i(x) the componentwise relative condition number is

    kappa_i = N_i / |y_i|,   N_i = sum_j |d y_i / d x_j| |x_j|

(j over every float input, scalars such as T / eps / beta included): perturbing every input by a
relative u changes y_i by at most about kappa_i u |y_i|. The *condition-aware error* of a
computed y_i is

    cae_i = |y_i - y*_i| / (u (N_i + |y*_i|))  =  rel_err_i / (u (kappa_i + 1))

with u the unit roundoff of the audited dtype. ``+ |y*|`` (the "+ 1") is the rounding of the
output itself, so a correctly rounded result scores <= 0.5 whatever kappa is, and an exactly
zero y* (KL of p = q) needs no special case. A backward-stable algorithm has cae of order 1 (a
modest multiple for long sums); a large cae means the *algorithm* lost accuracy the problem did
not force (instability), while a large ULP error with cae <~ 1 is ill-conditioning: any
algorithm whose inputs carry a relative error u is that wrong.

Worked example (tests/test_condition.py): log_softmax(z) at z = [1000, 1000] in float32. y_i =
-log 2 and dy_i/dz_j = delta_ij - p_j with p = [1/2, 1/2], so N_i = 1/2 * 1000 + 1/2 * 1000 =
1000 and kappa_i = 1000 / log 2 = 1442.7. Computed as z - logsumexp(z) in float32 (the stable
max-shifted algorithm), logsumexp = 1000.693147... rounds to 1000.6931763 (ulp 6.1e-5), and
y = -0.69317627 is 488 ULPs from -log 2 -- but cae = 2.9e-5 / (u (1000 + 0.69)) = 0.49: the
subtraction is exact, the only error is the rounding of logsumexp, which the conditioning of the
problem forces. softplus(x) = log(1 + exp(x)) at x = -20 in float32 is
the opposite case: 1 + exp(-20) rounds to 1, y = 0, rel error 1, while kappa = |x sigmoid(x) /
softplus(x)| = 20.0, so cae = 1 / (21 u) = 8e5: instability (log1p(exp(x)) is correct).

The derivatives come from the exact closed forms in :mod:`infoaudit.reference.derivatives`
(evaluated at 96 bits; a condition number needs a few digits, not correct rounding). The
condition of a *gradient* component needs second derivatives: they are taken by central
differences of the exact gradient formulas under relative input perturbations x_j (1 +- 2^-50)
at 160 bits (``gradient_condition``), for units of at most ``max_unit`` inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np
from mpmath import mp

from .. import quantities
from ..dtypes import FORMATS, dtype_name

PREC = 96
FD_PREC = 160
FD_STEP = -50  # log2 of the relative perturbation


@dataclass
class Condition:
    """Condition of each output element (output shape)."""

    kappa: np.ndarray         # N / |y*| (inf where y* = 0 < N, 0 where N = 0, NaN where undefined)
    sensitivity: np.ndarray   # N = sum_j |dy/dx_j| |x_j|
    magnitude: np.ndarray     # |y*|
    note: str = ""


def _kappa(N, mag):
    N = np.asarray(N, dtype=np.float64)
    mag = np.asarray(mag, dtype=np.float64)
    with np.errstate(all="ignore"):
        k = N / mag
        k = np.where(mag == 0, np.where(N == 0, 0.0, np.inf), k)
        k = np.where(np.isfinite(mag), k, np.nan)
    return k


def unit_roundoff(u) -> float:
    if isinstance(u, (int, float)) and not isinstance(u, bool):
        return float(u)
    return FORMATS[dtype_name(u)].unit_roundoff


def condition_aware_error(errors, kappa, u) -> np.ndarray:
    """Error / ((kappa + 1) u) per element.

    ``errors``: an ``ElementErrors`` (uses its absolute errors) or an array of relative errors;
    ``kappa``: a :class:`Condition` (uses N and |y*|) or an array of kappa; ``u``: the unit
    roundoff or a dtype name. With ElementErrors and a Condition the absolute form
    |y - y*| / (u (N + |y*|)) is used (defined also where y* = 0). NaN where the error is NaN
    (a non-finite mismatch, reported by its class instead) or the condition undefined.
    """
    u = unit_roundoff(u)
    if hasattr(errors, "abs") and isinstance(kappa, Condition):
        num = np.asarray(errors.abs, dtype=np.float64)
        den = u * (kappa.sensitivity + kappa.magnitude)
    else:
        num = np.asarray(errors.rel if hasattr(errors, "rel") else errors, dtype=np.float64)
        k = kappa.kappa if isinstance(kappa, Condition) else np.asarray(kappa, dtype=np.float64)
        den = u * (k + 1)
    with np.errstate(all="ignore"):
        r = num / den
        r = np.where(den == 0, np.where(num == 0, 0.0, np.inf), r)
        r = np.where(np.isnan(num) | np.isnan(den), np.nan, r)
        r = np.where(np.isinf(den) & np.isfinite(num), 0.0, r)
    return r


# ---------------------------------------------------------------- forward condition


def _flat_inputs(q, unit):
    """The unit's float inputs flattened in the gradient formulas' order (arrays, then scalars)."""
    xs = []
    for arg, v in zip(q.args, unit):
        if arg.is_float_array:
            if q.structure == quantities.TABLE_REDUCE:
                xs += [x for row in v for x in row]
            elif isinstance(v, list):
                xs += list(v)
            else:
                xs.append(v)
    for arg, v in zip(q.args, unit):
        if arg.is_scalar:
            xs.append(v)
    return xs


def _weighted_abs_sum(gs, xs):
    """sum_j |g_j| |x_j| over finite nonzero x_j (zeros and infinities are not moved by a
    relative perturbation)."""
    tot = mpmath.mpf(0)
    for g, x in zip(gs, xs):
        if x == 0 or not mpmath.isfinite(x):
            continue
        if mpmath.isnan(g):
            return mpmath.nan
        tot += abs(g) * abs(x)
    return tot


def _row_sensitivity(name, z):
    """N_i of softmax / log_softmax rows in closed form: sum_j |delta_ij - p_j| |z_j| (times p_i)."""
    from ..reference import derivatives as D

    bad = D.bad_logits(z)
    if bad:
        return [mpmath.nan if bad == "nan" else mpmath.mpf(0)] * len(z)
    p, _, _ = D.softmax_weights(z)
    k = max(range(len(z)), key=lambda i: p[i])
    B = mp.fsum(pj * abs(zj) for pj, zj in zip(p, z) if pj != 0)
    others_k = mp.fsum(pj for j, pj in enumerate(p) if j != k)  # 1 - p_k without cancellation
    out = []
    for i, (pi, zi) in enumerate(zip(p, z)):
        if pi == 0:
            out.append(mpmath.mpf(0))  # masked output: constant (0 or -inf)
            continue
        rest = others_k if i == k else 1 - pi
        n = rest * abs(zi) + (B - pi * abs(zi))
        out.append(pi * n if name == "softmax" else n)
    return out


def forward_condition(quantity, *args, exact=None) -> Condition:
    """kappa of every output element of ``quantity(*args)`` from its exact derivatives."""
    from .. import reference
    from ..reference import derivatives as D

    q = quantities.get(quantity)
    vals, shape, _ = D.prepare(q, args)
    if exact is None:
        exact = reference.evaluate(q, *vals)
    N = []
    with mp.workprec(PREC):
        for unit in quantities.units(q, vals):
            mu = [D.to_mp(v) for v in unit]
            if q.structure == quantities.ROW:
                N += _row_sensitivity(q.name, mu[0])
            else:
                gs = [g for g, _ in D.GRADIENTS[q.name](*mu, mpmath.mpf(1))]
                N.append(_weighted_abs_sum(gs, _flat_inputs(q, mu)))
    N = np.array([float(x) for x in N], dtype=np.float64).reshape(shape)
    mag = np.abs(np.asarray(exact.hi, dtype=np.float64))
    N = np.where(np.isfinite(mag), N, np.nan)
    return Condition(_kappa(N, mag), N, mag)


# ---------------------------------------------------------------- gradient condition


def gradient_condition(quantity, *args, cotangent=None, exact=None, max_unit=64) -> dict:
    """{argument name: Condition} of each component of the exact VJP (second derivatives by
    central differences of the exact gradient formulas under relative input perturbations).

    Units with more than ``max_unit`` float inputs get NaN (note says so).
    """
    from ..reference import derivatives as D

    q = quantities.get(quantity)
    vals, shape, c = D.prepare(q, args, cotangent)
    if exact is None:
        exact = D.vjp(q.name, *args, cotangent=cotangent)
    units = list(quantities.units(q, vals))
    cots = D.cot_units(q, c, shape)
    diff = D.differentiable_args(q)
    arrays = [i for i in diff if q.args[i].is_float_array]
    scalars = [i for i in diff if q.args[i].is_scalar]
    g = D.GRADIENTS[q.name]
    per_arr = {i: [] for i in arrays}
    scal_unsigned = [mpmath.mpf(0)] * len(scalars)
    scal_signed = [[mpmath.mpf(0)] * len(scalars) for _ in scalars]  # [output][perturbed scalar]
    note = ""
    h = mpmath.ldexp(1, FD_STEP)
    with mp.workprec(FD_PREC):
        for unit, cu in zip(units, cots):
            mu = [D.to_mp(v) for v in unit]
            mc = D.to_mp(cu)
            xs = _flat_inputs(q, mu)
            nout = sum(D.unit_size(q, vals[i]) for i in arrays) + len(scalars)
            closed = _grad_sensitivity_closed(q.name, mu, mc)
            if closed is not None:
                Ns = closed
            elif len(xs) > max_unit:
                note = f"gradient condition not computed for units of more than {max_unit} inputs"
                Ns = [mpmath.nan] * nout
            else:
                Ns = [mpmath.mpf(0)] * nout
                for k, xk in enumerate(xs):
                    if xk == 0 or not mpmath.isfinite(xk):
                        continue
                    d = _central(g, q, mu, mc, k, xk, h)
                    is_scalar = k >= len(xs) - len(scalars)
                    for j, dj in enumerate(d):
                        if is_scalar and j >= nout - len(scalars):
                            # the scalar's gradient is a sum over units: add signed, abs at the end
                            scal_signed[j - (nout - len(scalars))][k - (len(xs) - len(scalars))] += dj
                        else:
                            Ns[j] = Ns[j] + abs(dj)
            pos = 0
            for i in arrays:
                m = D.unit_size(q, vals[i])
                per_arr[i] += Ns[pos:pos + m]
                pos += m
            for s in range(len(scalars)):
                scal_unsigned[s] += Ns[pos + s]
    out = {}
    for i in arrays:
        shp = vals[i].shape
        N = np.array([float(x) for x in per_arr[i]], dtype=np.float64).reshape(shp)
        mag = np.abs(exact[q.args[i].name].hi)
        N = np.where(np.isfinite(mag), N, np.nan)
        out[q.args[i].name] = Condition(_kappa(N, mag), N, mag, note)
    for s, i in enumerate(scalars):
        N = float(scal_unsigned[s] + mp.fsum(abs(v) for v in scal_signed[s]))
        mag = np.abs(exact[q.args[i].name].hi)
        out[q.args[i].name] = Condition(_kappa(np.array(N), mag), np.array(N), mag, note)
    return out


def _softmax_abs_jac(z):
    """A_j = sum_k |p_j (delta_jk - p_k)| |z_k| = p_j ((1 - p_j)|z_j| + sum_{k != j} p_k |z_k|)."""
    return _row_sensitivity("softmax", z)


def _grad_sensitivity_closed(name, mu, c):
    """O(n) closed forms of N_j for the gradients whose Jacobian is c p_j (delta_jk - p_k):
    logsumexp, cross_entropy (c), log_softmax (c -> sum(c)), label smoothing (+ the eps terms).
    None for the others (central differences)."""
    from ..reference import derivatives as D

    if name not in ("logsumexp", "cross_entropy", "log_softmax", "label_smoothing_cross_entropy"):
        return None
    z = mu[0]
    if D.bad_logits(z):
        n = len(z) + (1 if name == "label_smoothing_cross_entropy" else 0)
        return [mpmath.nan if D.bad_logits(z) == "nan" else mpmath.mpf(0)] * n
    A = _softmax_abs_jac(z)
    if name == "log_softmax":
        S = mp.fsum(c)
        return [abs(S) * a for a in A]
    if name != "label_smoothing_cross_entropy":
        return [abs(c) * a for a in A]
    y, eps = mu[1], mu[2]
    K = len(z)
    out = [abs(c) * (a + abs((1 if j == y else 0) - mpmath.mpf(1) / K) * abs(eps)) for j, a in enumerate(A)]
    if any(v == NINF_ for v in z):
        out.append(mpmath.nan)
    else:
        out.append(abs(c) * mp.fsum(abs((1 if k == y else 0) - mpmath.mpf(1) / K) * abs(zk) for k, zk in enumerate(z)))
    return out


NINF_ = mpmath.ninf


def _central(g, q, mu, mc, k, xk, h):
    """d G / d s_k (G: the unit's gradient list; x_k -> x_k (1 + s_k)) by central differences."""
    def at(s):
        unit = _perturb(q, mu, k, xk * (1 + s))
        return [v for v, _ in g(*unit, mc)]

    plus, minus = at(h), at(-h)
    out = []
    for a, b in zip(plus, minus):
        if mpmath.isfinite(a) and mpmath.isfinite(b):
            out.append((a - b) / (2 * h))
        elif mpmath.isnan(a) or mpmath.isnan(b):
            out.append(mpmath.nan)
        else:
            out.append(mpmath.inf if a != b else mpmath.mpf(0))
    return out


def _perturb(q, mu, k, new):
    """A copy of the unit with its k-th flattened float input replaced by ``new``."""
    unit = [list(v) if isinstance(v, list) and not (v and isinstance(v[0], list)) else
            ([list(r) for r in v] if isinstance(v, list) else v) for v in mu]
    pos = 0
    for a, arg in enumerate(q.args):
        if not arg.is_float_array:
            continue
        v = unit[a]
        if q.structure == quantities.TABLE_REDUCE:
            ny = len(v[0])
            m = len(v) * ny
            if pos <= k < pos + m:
                r, cidx = divmod(k - pos, ny)
                v[r][cidx] = new
                return unit
        elif isinstance(v, list):
            m = len(v)
            if pos <= k < pos + m:
                v[k - pos] = new
                return unit
        else:
            m = 1
            if k == pos:
                unit[a] = new
                return unit
        pos += m
    for a, arg in enumerate(q.args):
        if arg.is_scalar:
            if k == pos:
                unit[a] = new
                return unit
            pos += 1
    raise IndexError(k)


__all__ = ["Condition", "condition_aware_error", "forward_condition", "gradient_condition", "unit_roundoff"]


def worked_examples() -> list:
    """The report's two worked examples, computed (float32 numpy, exact reference, condition):

    * log_softmax at z = [1000, 1000] by the stable max-shifted algorithm: hundreds of ULPs, cae < 1
      (kappa = 1000 / log 2: ill-conditioning, the problem forces the error);
    * softplus at x = -20 as log(1 + exp(x)): relative error 1, cae ~ 1e6 (instability), against
      log1p(exp(x)) with cae <= 0.5.
    """
    from .. import reference
    from .metrics import element_errors

    out = []
    z = np.array([[1000.0, 1000.0]], dtype=np.float32)
    with np.errstate(all="ignore"):
        m = z.max(-1, keepdims=True)
        y = z - (m + np.log(np.sum(np.exp(z - m), -1, keepdims=True)))
    z64 = z.astype(np.float64)
    ex = reference.evaluate("log_softmax", z64)
    err = element_errors(y.astype(np.float64), ex, "float32", "log_softmax")
    cond = forward_condition("log_softmax", z64, exact=ex)
    out.append({"name": "log_softmax, z = [1000, 1000], float32", "algorithm": "z - (m + log(sum(exp(z - m))))",
                "computed": float(y[0, 0]), "exact": float(ex.hi[0, 0]), "ulp": float(err.ulp[0, 0]),
                "rel": float(err.rel[0, 0]), "sensitivity": float(cond.sensitivity[0, 0]),
                "kappa": float(cond.kappa[0, 0]),
                "cae": float(condition_aware_error(err, cond, "float32")[0, 0]), "verdict": "ill-conditioned"})
    for label, fn, verdict in (("log(1 + exp(x))", lambda x: np.log(np.float32(1) + np.exp(x)), "unstable"),
                               ("log1p(exp(x))", lambda x: np.log1p(np.exp(x)), "stable")):
        x = np.array([-20.0], dtype=np.float32)
        y = fn(x)
        ex = reference.evaluate("softplus", x.astype(np.float64))
        err = element_errors(y.astype(np.float64), ex, "float32", "softplus")
        cond = forward_condition("softplus", x.astype(np.float64), exact=ex)
        out.append({"name": "softplus, x = -20, float32", "algorithm": label, "computed": float(y[0]),
                    "exact": float(ex.hi[0]), "ulp": float(err.ulp[0]), "rel": float(err.rel[0]),
                    "sensitivity": float(cond.sensitivity[0]), "kappa": float(cond.kappa[0]),
                    "cae": float(condition_aware_error(err, cond, "float32")[0]), "verdict": verdict})
    return out

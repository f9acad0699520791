"""Certified fast paths of the quantities beyond softmax / log_softmax / logsumexp / cross_entropy.

Each function takes the validated arguments (``quantities.validate``) and returns
``(hi, lo, ok)`` with guarantee (b) of :mod:`.fast` where ``ok`` (the caller sends the rest to
mpmath), or None (no compiled engine: mpmath answers). The evaluations, error bounds and
escalation rules are derived in docs/fast_reference.md; the kernels are
:mod:`.fast_elem_kernels` (elementwise) and :mod:`.fast_row_kernels` (row reductions).

Caution when editing: numba's on-disk cache (``cache=True``) is keyed on each function's own
source file, not on the functions it inlines from other modules, so after changing
:mod:`.fast_dd` (or ``fast_kernels``) delete the ``__pycache__/fast_*_kernels.*.nbi/.nbc`` files
(or touch the kernel modules), else stale compiled callers are loaded.

This module does not import :mod:`.fast` (which imports it): :func:`make` receives the exp
tables, the logsumexp row pass and the engine selector from there. The compiled kernels are
imported on first use, so ``INFOAUDIT_FAST=numpy`` still never imports numba; on the numpy engine
these quantities go to mpmath.
"""
from __future__ import annotations

import numpy as np

__all__ = ["make", "QUANTITIES", "log2e_dd", "inv_factorials_dd"]

QUANTITIES = ("sigmoid", "softplus", "log_sigmoid", "binary_cross_entropy_with_logits", "binary_cross_entropy",
              "self_information_bits", "binary_entropy_bits", "entropy", "entropy_bits", "kl_divergence",
              "cross_entropy_probs", "gaussian_kl", "nll_loss", "label_smoothing_cross_entropy")

_CONST = {}


def log2e_dd():
    """1 / ln 2 as a double-double (h, l), |h + l - 1/ln 2| < 2^-106 (h + l)."""
    if "log2e" not in _CONST:
        import mpmath

        with mpmath.workprec(300):
            v = 1 / mpmath.log(2)
            h = float(v)
            _CONST["log2e"] = (h, float(v - h))
    return _CONST["log2e"]


def inv_factorials_dd(top=17):
    """1 / k! for k = 0..top as two float64 arrays (h, l), |h + l - 1/k!| < 2^-106 / k!."""
    if "fact" not in _CONST:
        import mpmath

        hs, ls = np.zeros(top + 1), np.zeros(top + 1)
        with mpmath.workprec(300):
            for k in range(top + 1):
                v = 1 / mpmath.factorial(k)
                hs[k] = float(v)
                ls[k] = float(v - hs[k])
        _CONST["fact"] = (hs, ls)
    return _CONST["fact"]


def _kernels():
    try:
        import numba  # noqa: F401
    except ImportError:  # no compiled engine: mpmath answers (a broken kernel module still raises)
        return None
    from . import fast_elem_kernels, fast_row_kernels

    return fast_elem_kernels, fast_row_kernels


def make(consts, engine_rows, engine):
    """The FAST entries: ``consts()`` -> exp tables (thi, tlo, L1, L2a, L2b, inv),
    ``engine_rows(z2)`` -> logsumexp row results (m, L_hi, L_lo, L_rad, special-row masks),
    ``engine()`` -> "numba" or "numpy"."""

    def ready():
        if engine() != "numba":
            return None
        return _kernels()

    def elementwise(name):
        def f(*vals):
            ks = ready()
            if ks is None:
                return None
            K = ks[0]
            arrs = [v for v in vals if isinstance(v, np.ndarray)]
            shape = np.broadcast_shapes(*[a.shape for a in arrs])
            flat = [np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64).reshape(-1) for a in arrs]
            x = flat[0]
            y = flat[1] if len(flat) > 1 else x
            hi = np.empty(x.size)
            lo = np.empty(x.size)
            ok = np.empty(x.size, bool)
            lg_h, lg_l = log2e_dd()
            if name == "sigmoid":  # the vectorised block kernel (same results as the scalar one)
                K.sigmoid_blocks(x, *consts(), hi, lo, ok)
            elif name == "binary_cross_entropy_with_logits":
                K.bce_logits_array(x, y, *consts(), hi, lo, ok)
            elif name in ("softplus", "log_sigmoid"):
                K.softplus_array(x, 1.0 if name == "softplus" else -1.0, *consts(), hi, lo, ok)
            elif name in ("self_information_bits", "binary_cross_entropy", "binary_entropy_bits"):
                c = consts()
                K.log_family(K.KERNELS[name], x, y, c[0], c[1], c[2], c[3], c[4], lg_h, lg_l, hi, lo, ok)
            else:
                K.elementwise(K.KERNELS[name], x, y, *consts(), lg_h, lg_l, hi, lo, ok)
            return hi.reshape(shape), lo.reshape(shape), ok.reshape(shape)
        f.__name__ = name
        return f

    def reduction(name, bits=False):
        def f(*vals):
            ks = ready()
            if ks is None:
                return None
            RK = ks[1]
            arrs = [v for v in vals if isinstance(v, np.ndarray)]
            shape = arrs[0].shape
            n = shape[-1]
            x = np.ascontiguousarray(arrs[0], dtype=np.float64).reshape(-1, n)
            y = np.ascontiguousarray(arrs[1], dtype=np.float64).reshape(-1, n) if len(arrs) > 1 else x
            R = x.shape[0]
            hi = np.empty(R)
            lo = np.empty(R)
            ok = np.empty(R, bool)
            code = np.empty(R, np.int64)
            ch, cl = inv_factorials_dd(RK.TAYLOR_TOP)
            key = "entropy" if bits else name
            lg_h, lg_l = log2e_dd()
            kern = RK.reduce_rows if key == "gaussian_kl" else RK.reduce_rows_log  # the log ones vectorised
            kern(RK.ROW_KERNELS[key], x, y, *consts(), ch, cl, bits, lg_h, lg_l, hi, lo, ok, code)
            return hi.reshape(shape[:-1]), lo.reshape(shape[:-1]), ok.reshape(shape[:-1])
        f.__name__ = name
        return f

    def nll_loss(logp, y):
        n = logp.shape[-1]
        lp = logp.reshape(-1, n)
        v = lp[np.arange(lp.shape[0]), y.reshape(-1)]
        hi = -v  # exact negation
        return hi.reshape(logp.shape[:-1]), np.zeros(hi.shape).reshape(logp.shape[:-1]), \
            np.ones(hi.shape, bool).reshape(logp.shape[:-1])

    def label_smoothing(z, y, eps):
        ks = ready()
        if ks is None:
            return None
        RK = ks[1]
        n = z.shape[-1]
        z2 = np.ascontiguousarray(z, dtype=np.float64).reshape(-1, n)
        y2 = np.ascontiguousarray(y, dtype=np.int64).reshape(-1)
        R = z2.shape[0]
        r = engine_rows(z2)
        if r is None:
            return None
        hi = np.full(R, np.nan)
        lo = np.zeros(R)
        ok = np.ones(R, bool)
        zy = z2[np.arange(R), y2]
        has_ninf = (z2 == -np.inf).any(axis=1)
        special = r.nan_row | r.pinf_row | r.ninf_row  # NaN for all three (formulas)
        inf_row = ~special & ((zy == -np.inf) | (has_ninf & (eps != 0.0)))
        hi[inf_row] = np.inf
        run = ~special & ~inf_row
        if run.any():
            idx = np.nonzero(run)[0]
            zz = np.where(np.isfinite(z2[idx]), z2[idx], 0.0) if has_ninf[idx].any() else z2[idx]
            h, l, o = np.empty(idx.size), np.empty(idx.size), np.empty(idx.size, bool)
            RK.label_smoothing_rows(np.ascontiguousarray(zz), y2[idx], np.ascontiguousarray(r.m[idx]),
                                    np.ascontiguousarray(r.L_hi[idx]), np.ascontiguousarray(r.L_lo[idx]),
                                    np.ascontiguousarray(r.L_rad[idx]), float(eps), h, l, o)
            hi[idx], lo[idx], ok[idx] = h, l, o
        out = z.shape[:-1]
        return hi.reshape(out), lo.reshape(out), ok.reshape(out)

    table = {name: elementwise(name) for name in ("sigmoid", "softplus", "log_sigmoid",
                                                  "binary_cross_entropy_with_logits", "binary_cross_entropy",
                                                  "self_information_bits", "binary_entropy_bits")}
    table.update({name: reduction(name) for name in ("entropy", "kl_divergence", "cross_entropy_probs",
                                                     "gaussian_kl")})
    table["entropy_bits"] = reduction("entropy_bits", bits=True)
    table["nll_loss"] = nll_loss
    table["label_smoothing_cross_entropy"] = label_smoothing
    return table


"""Differential comparison of a backend's *gradients* against the exact derivative.

``compare_grad(quantity, backend, *args, dtype=..., variant=..., cotangent=None)`` is the gradient
twin of :func:`infoaudit.differential.compare`: the float arguments (and scalar T / eps / beta)
are rounded once to the audited dtype, the framework's autodiff computes the VJP with the given
cotangent (default: :func:`reference.derivatives.default_cotangent`), and each argument's gradient
is judged against the exact VJP with the same metrics (ULP, relative, non-finite classes), plus:

* ``flushed``: elements where the framework returned 0 but the exact gradient rounds to a nonzero
  value in the dtype (tiny components flushed to zero, or a cancellation such as softmax - onehot
  at a confident target);
* ``kappa`` / ``cae``: the condition of each gradient component (second derivatives; see
  :mod:`.condition`) and the condition-aware error |g - g*| / (u (N + |g*|)).

Elementwise quantities: arguments are broadcast to the output shape first (gradients are w.r.t.
the broadcast arrays, for the reference and the framework alike).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import quantities
from .backends import load
from .backends.grad import GradUnsupported, supports, vjp_function
from .differential import Unsupported, pick_op
from .dtypes import FORMATS, cast, dtype_name
from .judging.condition import Condition, condition_aware_error, gradient_condition
from .judging.metrics import ElementErrors, element_errors
from .reference import derivatives as D


@dataclass
class GradComparison:
    """One argument's gradient from one backend op, judged exactly."""

    quantity: str
    backend: str
    variant: str
    dtype: str
    device: str
    arg: str
    inputs: list            # prepared arguments (audited dtype / int64 / float rounded to dtype)
    cotangent: np.ndarray   # the cotangent, exact in the audited dtype (float64 carrier)
    result: np.ndarray      # the framework's gradient as float64
    exact: object           # reference Exact of the gradient
    errors: ElementErrors
    condition: Condition | None = None
    cae: np.ndarray | None = None
    call: str = ""
    how: str = ""
    returned_dtype: str = ""
    notes: list = field(default_factory=list)

    @property
    def flushed(self) -> np.ndarray:
        return (self.result == 0) & (self.errors.expected != 0) & np.isfinite(self.errors.expected)

    @property
    def boundary(self) -> np.ndarray:
        """Finite where the exact gradient is +-inf: a one-sided infinite derivative at a domain
        boundary (p = 0 in log p) that the framework replaced by a finite value (often by design)."""
        return np.isinf(self.errors.expected) & np.isfinite(self.result)

    @property
    def summary(self) -> dict:
        s = self.errors.summary()
        cae = self.cae[np.isfinite(self.cae)] if self.cae is not None else np.zeros(0)
        s.update(quantity=self.quantity, backend=self.backend, variant=self.variant, dtype=self.dtype,
                 device=self.device, arg=self.arg, kind="grad", how=self.how,
                 returned_dtype=self.returned_dtype, notes=list(self.notes),
                 flushed=int(self.flushed.sum()), boundary=int(self.boundary.sum()),
                 max_cae=float(cae.max()) if cae.size else None,
                 p99_cae=float(np.percentile(cae, 99)) if cae.size else None)
        return s

    def reproducer(self, metric="ulp") -> dict | None:
        """The worst element's unit (row / element / table) as plain lists, with the exact and the
        computed gradient there: enough to rerun ``call`` and see the failure."""
        idx = self.worst_index(metric)
        if idx is None:
            return None
        q = quantities.get(self.quantity)
        lead = idx if q.structure == quantities.ELEMENTWISE else (
            idx[:-2] if q.structure == quantities.TABLE_REDUCE else idx[:-1])
        args = []
        for arg, v in zip(q.args, self.inputs):
            if arg.is_float_array or arg.kind == quantities.LABEL:
                a = np.asarray(v)
                a = a.astype(np.float64) if a.dtype.kind == "f" or "bfloat16" in str(a.dtype) else a
                args.append(np.asarray(a[lead]).tolist())
            else:
                args.append(v)
        return {"quantity": self.quantity, "backend": self.backend, "variant": self.variant, "dtype": self.dtype,
                "arg": self.arg, "index": list(idx), "inputs": dict(zip(q.arg_names, args)),
                "cotangent": np.asarray(self.cotangent[lead]).tolist(),
                "exact": float(self.exact.hi[idx]), "expected_rounded": float(self.errors.expected[idx]),
                "got": float(self.result[idx]), "ulp": float(self.errors.ulp[idx]),
                "cae": None if self.cae is None else float(self.cae[idx]),
                "kappa": None if self.condition is None else float(self.condition.kappa[idx]),
                "nonfinite": str(self.errors.nonfinite[idx]), "call": self.call, "how": self.how}

    def worst_index(self, metric="ulp"):
        bad = np.argwhere(self.errors.nonfinite != "")
        if bad.size:
            return tuple(int(i) for i in bad[0])
        a = self.cae if metric == "cae" and self.cae is not None else getattr(self.errors, metric)
        if a.size == 0 or not np.isfinite(a).any():
            return None
        return tuple(int(i) for i in np.unravel_index(np.nanargmax(np.where(np.isfinite(a), a, -1)), a.shape))


@dataclass
class GradResult:
    """All arguments' gradient comparisons of one call; ``skipped`` names arguments without one."""

    quantity: str
    backend: str
    variant: str
    dtype: str
    args: dict                                  # argument name -> GradComparison
    skipped: dict = field(default_factory=dict)  # argument name -> reason

    def __getitem__(self, name):
        return self.args[name]

    def __iter__(self):
        return iter(self.args.values())

    @property
    def summary(self) -> list:
        rows = [c.summary for c in self.args.values()]
        for name, why in self.skipped.items():
            rows.append(dict(quantity=self.quantity, backend=self.backend, variant=self.variant, dtype=self.dtype,
                             arg=name, kind="grad", skipped=why))
        return rows


def prepare_grad_inputs(q, args, dtype, cotangent=None):
    """Validated inputs rounded once to ``dtype`` (scalars too), broadcast for elementwise
    quantities; the cotangent rounded to ``dtype``; returns (inputs, reference args, cotangent)."""
    dname = dtype_name(dtype)
    vals, shape, c = D.prepare(q, args, cotangent)
    inputs, ref = [], []
    for arg, v in zip(q.args, vals):
        if arg.is_float_array:
            a = cast(v, dname)
            inputs.append(a)
            ref.append(a.astype(np.float64))
        elif arg.is_scalar:
            r = float(cast(np.array([v]), dname).astype(np.float64)[0])
            inputs.append(r)
            ref.append(r)
        else:
            inputs.append(v)
            ref.append(v)
    cr = cast(c, dname).astype(np.float64)
    if not np.isfinite(cr).all():
        raise quantities.InputError(f"{q.name}: the cotangent overflows {dname}")
    return inputs, ref, cr


def compare_grad(quantity, backend, *args, dtype="float32", variant=None, device="cpu", cotangent=None,
                 exact=None, condition=True, max_condition_unit=64, op=None, conditions=None) -> GradResult:
    """Run ``backend``'s op for ``quantity`` through its autodiff; judge every gradient exactly.

    ``op``: an explicit :class:`infoaudit.backends.Op` (e.g. a user's implementation for
    ``infoaudit gate --grad``), differentiated with ``backend``'s framework instead of the
    registered variant. ``exact``: a precomputed ``{arg: Exact}`` (reference.derivatives.vjp on the
    same rounded inputs and cotangent), reusable across backends / variants of one dtype;
    ``conditions``: likewise a precomputed ``{arg: Condition}`` (:func:`.condition.gradient_condition`).
    Raises :class:`Unsupported` (with the reason) when the backend has no autodiff ("no autodiff"
    for NumPy / SciPy), lacks the op / dtype, or the framework refuses.
    """
    q = quantities.get(quantity)
    dname = dtype_name(dtype)
    mod = load(backend) if isinstance(backend, str) else backend
    ok, why = supports(mod)
    if not ok:
        raise Unsupported(why)
    if dname not in mod.DTYPES:
        raise Unsupported(f"backend {mod.NAME!r} does not support {dname}")
    op = op if op is not None else pick_op(mod, q, variant)
    inputs, ref, cot = prepare_grad_inputs(q, args, dname, cotangent)
    if exact is None:
        exact = D.vjp(q.name, *ref, cotangent=cot)
    try:
        out = vjp_function(mod, op, q, device)(inputs, cot)
    except GradUnsupported as e:
        raise Unsupported(str(e)) from e
    conds = {}
    if conditions is not None:
        conds = conditions
    elif condition:
        conds = gradient_condition(q.name, *ref, cotangent=cot, exact=exact, max_unit=max_condition_unit)
    res = GradResult(q.name, mod.NAME, op.variant, dname, {}, dict(out.skipped))
    for name, g in out.grads.items():
        ex = exact[name]
        raw = np.asarray(g)
        if raw.shape != ex.shape and raw.size != ex.size:
            raise Unsupported(f"gradient of {name!r} has shape {raw.shape}, expected {ex.shape}")
        res.args[name] = judge_gradient(q, mod.NAME, op, dname, device, name, raw, ex, conds.get(name), inputs, cot,
                                        out.how, list(out.notes))
    return res


def judge_gradient(q, backend, op, dname, device, name, raw, exact, cond, inputs, cot, how, notes) -> GradComparison:
    """One argument's gradient ``raw`` (the framework's array, same size as ``exact``) judged exactly:
    a gradient returned in a wider dtype is rounded once to ``dname`` (noted), then ULP / relative /
    non-finite metrics and, with a :class:`Condition`, the condition-aware error."""
    raw = np.asarray(raw)
    returned = dtype_name(raw.dtype) if raw.dtype.kind == "f" or "bfloat16" in str(raw.dtype) else str(raw.dtype)
    if raw.shape != exact.shape:
        raw = raw.reshape(exact.shape)
    if returned != dname:
        notes = list(notes) + [f"gradient returned as {returned}; rounded once to {dname}"]
        raw = cast(raw.astype(np.float64), dname)
    y = raw.astype(np.float64)
    errs = element_errors(y, exact, dname, "", inputs)
    cae = condition_aware_error(errs, cond, FORMATS[dname].unit_roundoff) if cond is not None else None
    return GradComparison(q.name, backend, op.variant, dname, device, name, inputs, cot, y, exact, errs, cond, cae,
                          op.call, how, returned, notes)


__all__ = ["compare_grad", "judge_gradient", "GradComparison", "GradResult", "prepare_grad_inputs",
           "output_mask_to_arg"]


def output_mask_to_arg(q, out_mask, arg_shape):
    """An output-shaped (per unit) mask -> the argument's shape: each unit's entries (a row's
    entries for row quantities, a table's cells for table reductions), shared by the run's and
    the gate's gradient judging."""
    m = np.asarray(out_mask, dtype=bool)
    if q.structure == quantities.ELEMENTWISE:
        return np.broadcast_to(m, arg_shape).copy()
    if q.structure == quantities.ROW:
        m = np.any(m, axis=-1, keepdims=True) if m.ndim else m
        return np.broadcast_to(m, arg_shape).copy()
    if q.structure == quantities.ROW_REDUCE:
        return np.broadcast_to(m[..., None], arg_shape).copy()
    return np.broadcast_to(m[..., None, None], arg_shape).copy()

"""Differential comparison of one backend op against the exact reference on given inputs.

``compare(quantity, backend, *args, dtype=...)``: the float arguments are rounded once to the
audited dtype, the same bits go to the backend and to the reference, the backend's result is
read back exactly, and the per-element errors are summarised (see :mod:`infoaudit.judging.metrics`). The grades
come from the one judge (:func:`infoaudit.judging.judge`, docs/grades.md): ``Comparison.judgement``
(computed on first use) and the ``grade`` / ``grades`` / ``verdict`` / ``why`` of ``summary``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import quantities, reference
from .backends import load
from .dtypes import cast, dtype_name, np_dtype
from .judging.metrics import ElementErrors, element_errors


class Unsupported(RuntimeError):
    """The backend cannot run this quantity/dtype/device; the message is the framework's."""


@dataclass
class Comparison:
    quantity: str
    backend: str
    variant: str
    dtype: str
    device: str
    inputs: list            # arguments as numpy arrays in the audited dtype / int64 / float
    result: np.ndarray      # the backend's output as float64 (after any cast back, see note)
    exact: object           # reference.Exact
    errors: ElementErrors
    call: str = ""
    returned_dtype: str = ""
    notes: list = field(default_factory=list)

    @property
    def judgement(self):
        """The one judge's :class:`infoaudit.judging.Judgement` of this result (cached)."""
        j = self.__dict__.get("_judgement")
        if j is None:
            from .judging import judge

            j = self.__dict__["_judgement"] = judge(self.quantity, self.inputs, self.result, self.exact, self.dtype)
        return j

    def verdict_summary(self, profile="default") -> dict:
        """grade, grades, verdict, profile and the one-line why, under ``profile``."""
        return self.judgement.summary(profile)

    @property
    def summary(self) -> dict:
        s = self.errors.summary()
        s.update(quantity=self.quantity, backend=self.backend, variant=self.variant, dtype=self.dtype,
                 device=self.device, returned_dtype=self.returned_dtype, notes=list(self.notes))
        s.update(self.verdict_summary())
        return s

    def worst_index(self, metric="ulp"):
        a = getattr(self.errors, metric)
        bad = np.argwhere(self.errors.nonfinite != "")
        if bad.size:
            return tuple(int(i) for i in bad[0])
        if a.size == 0 or not np.isfinite(a).any():
            return None
        return tuple(int(i) for i in np.unravel_index(np.nanargmax(a), a.shape))


def prepare_inputs(q, args, dtype):
    """Validate and round float arguments once to ``dtype``; labels int64; scalars float."""
    vals = quantities.validate(q, args)
    out = []
    for arg, v in zip(q.args, vals):
        out.append(cast(v, dtype) if arg.is_float_array else v)
    return out


def pick_op(mod, q, variant=None):
    table = mod.ops()
    if q.name not in table:
        raise Unsupported(f"backend {mod.NAME!r} has no op for {q.name!r}")
    choices = table[q.name]
    if variant is None:
        return choices[0]
    for op in choices:
        if op.variant == variant:
            return op
    raise Unsupported(f"backend {mod.NAME!r} has no variant {variant!r} of {q.name!r}; "
                      f"variants: {', '.join(o.variant for o in choices)}")


def run_op(mod, op, inputs, device="cpu"):
    """Call the op on backend copies of ``inputs``; returns the raw result as a numpy array."""
    bargs = [mod.to_backend(v, device) if isinstance(v, np.ndarray) else v for v in inputs]
    try:
        out = op.fn(*bargs)
    except Exception as e:  # the framework refused (dtype/device unsupported): report its words
        raise Unsupported(f"{type(e).__name__}: {e}") from e
    return mod.to_numpy(out)


def compare(quantity, backend, *args, dtype="float32", variant=None, device="cpu", exact=None) -> Comparison:
    """Run ``backend``'s op for ``quantity`` on ``args`` rounded to ``dtype``; judge it exactly."""
    q = quantities.get(quantity)
    dname = dtype_name(dtype)
    mod = load(backend) if isinstance(backend, str) else backend
    if dname not in mod.DTYPES:
        raise Unsupported(f"backend {mod.NAME!r} does not support {dname}")
    op = pick_op(mod, q, variant)
    inputs = prepare_inputs(q, args, dname)
    if exact is None:
        exact = reference.evaluate(q, *[v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                                        or (isinstance(v, np.ndarray) and "bfloat16" in str(v.dtype)) else v
                                        for v in inputs])
    raw = run_op(mod, op, inputs, device)
    notes = []
    returned = dtype_name(raw.dtype) if raw.dtype.kind == "f" or "bfloat16" in str(raw.dtype) else str(raw.dtype)
    if raw.shape != exact.shape:
        if raw.size == exact.size:
            notes.append(f"returned shape {raw.shape}, expected {exact.shape}; reshaped")
            raw = raw.reshape(exact.shape)
        else:
            raise Unsupported(f"returned shape {raw.shape}, expected {exact.shape}")
    if returned != dname:
        notes.append(f"returned {returned}; rounded once to {dname}")
        raw = cast(raw.astype(np.float64) if returned != "float64" else raw, dname)
    y = raw.astype(np.float64)
    errs = element_errors(y, exact, dname, q.name, inputs)
    return Comparison(q.name, mod.NAME, op.variant, dname, device, inputs, y, exact, errs, op.call, returned, notes)


__all__ = ["compare", "Comparison", "Unsupported", "prepare_inputs", "pick_op", "run_op", "np_dtype"]

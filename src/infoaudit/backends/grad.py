"""Gradient adapters: the vector-Jacobian product of a backend Op through its framework's autodiff.

``vjp_function(mod, op, quantity, device)`` returns ``run(inputs, cotangent) -> GradOutput``:

* torch: leaves ``requires_grad_(True)`` (arrays) and 0-d tensors in the array dtype (scalar
  temperature / eps / beta), ``torch.autograd.grad(out, leaves, grad_outputs=cotangent)``.
* jax: ``jax.vjp`` of the op with respect to the float arguments; variants whose name marks them
  as jitted (``jit``, ``*_jit``, ``optax``) run the whole VJP under ``jax.jit`` (forward and
  backward compiled together, as in a jitted training step), the others eagerly. float64 runs
  under the backend's local x64 scope.
* numpy / scipy: :class:`GradUnsupported` with the reason "no autodiff".

``inputs`` are the prepared arguments (float arrays in the audited dtype, labels int64, scalars as
Python floats already rounded to the audited dtype). Where an op cannot take a scalar argument as
a differentiable value (``F.cross_entropy(label_smoothing=...)`` needs a Python float; JAX ops
with ``static_argnums``), the scalar is passed as a constant and its gradient is reported in
``GradOutput.skipped`` with the framework's words. Nothing here imports torch or jax at import.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

NO_AUTODIFF = {"numpy": "no autodiff", "scipy": "no autodiff"}
AUTODIFF = {"torch": "torch.autograd.grad", "jax": "jax.vjp"}


class GradUnsupported(RuntimeError):
    """This backend / op cannot produce a gradient here; the message says why."""


@dataclass
class GradOutput:
    grads: dict                 # argument name -> numpy array (the framework's gradient, its dtype)
    output_dtype: str           # dtype of the op's forward output
    how: str                    # e.g. "torch.autograd.grad", "jax.jit(jax.vjp)"
    skipped: dict = field(default_factory=dict)   # argument name -> reason (no gradient taken)
    notes: list = field(default_factory=list)


def supports(mod) -> tuple[bool, str]:
    name = getattr(mod, "NAME", str(mod))
    if name in AUTODIFF:
        return True, ""
    return False, NO_AUTODIFF.get(name, f"backend {name!r} has no gradient adapter")


def is_jit_variant(variant: str) -> bool:
    return variant == "jit" or variant.endswith("_jit") or variant == "optax"


def vjp_function(mod, op, quantity, device="cpu"):
    """``run(inputs, cotangent) -> GradOutput`` for ``op`` of backend module ``mod``."""
    from .. import quantities

    q = quantities.get(quantity)
    ok, why = supports(mod)
    if not ok:
        raise GradUnsupported(why)
    if mod.NAME == "torch":
        return lambda inputs, cot: _torch_vjp(mod, op, q, inputs, cot, device)
    return lambda inputs, cot: _jax_vjp(mod, op, q, inputs, cot, device)


def _float_dtype_of(q, inputs):
    for arg, v in zip(q.args, inputs):
        if arg.is_float_array:
            return np.asarray(v).dtype
    return np.dtype(np.float64)


def _cast_np(a, dt):
    from ..dtypes import cast, dtype_name

    return cast(np.asarray(a, dtype=np.float64), dtype_name(dt))


# ---------------------------------------------------------------- torch


def _torch_vjp(mod, op, q, inputs, cot, device):
    import torch

    fdt = _float_dtype_of(q, inputs)
    skipped = {}

    def build(scalars_as_tensors):
        args, leaves, names = [], [], []
        for arg, v in zip(q.args, inputs):
            if arg.is_float_array:
                t = mod.to_backend(v, device).detach().clone().requires_grad_(True)
                args.append(t)
                leaves.append(t)
                names.append(arg.name)
            elif arg.is_scalar and scalars_as_tensors:
                ref = mod.to_backend(np.zeros((1,), fdt), device)  # the array dtype and device
                val = float(_cast_np(np.asarray(v), fdt).astype(np.float64))  # exact in that dtype
                t = torch.tensor(val, dtype=ref.dtype, device=ref.device, requires_grad=True)
                args.append(t)
                leaves.append(t)
                names.append(arg.name)
            elif arg.is_scalar:
                args.append(float(v))
            else:
                args.append(mod.to_backend(v, device))
        return args, leaves, names

    has_scalar = any(a.is_scalar for a in q.args)
    try:
        args, leaves, names = build(True)
        out = op.fn(*args)
    except Exception as e:
        if not has_scalar:
            raise GradUnsupported(f"{type(e).__name__}: {e}") from e
        reason = f"scalar argument passed as a Python float (as a 0-d tensor: {type(e).__name__}: {e})"
        for a in q.args:
            if a.is_scalar:
                skipped[a.name] = reason
        try:
            args, leaves, names = build(False)
            out = op.fn(*args)
        except Exception as e2:
            raise GradUnsupported(f"{type(e2).__name__}: {e2}") from e2
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        raise GradUnsupported("the op's output is not connected to its inputs in the autograd graph")
    odt = mod.to_numpy(out.detach()).dtype
    c = mod.to_backend(_cast_np(cot, odt).reshape(tuple(out.shape)), device)
    try:
        grads = torch.autograd.grad(out, leaves, grad_outputs=c, allow_unused=True)
    except Exception as e:
        raise GradUnsupported(f"torch.autograd.grad: {type(e).__name__}: {e}") from e
    res, notes = {}, []
    for name, g, leaf in zip(names, grads, leaves):
        if g is None:
            notes.append(f"{name}: not connected in the autograd graph; gradient taken as 0")
            g = torch.zeros_like(leaf)
        res[name] = mod.to_numpy(g)
    return GradOutput(res, _dname(odt), "torch.autograd.grad", skipped, notes)


def _dname(dt):
    from ..dtypes import dtype_name

    try:
        return dtype_name(dt)
    except ValueError:
        return str(dt)


# ---------------------------------------------------------------- jax

_JIT_CACHE: dict = {}
_STATIC_SCALAR: dict = {}   # op function -> why its scalar argument cannot be differentiated


class _KnownStatic(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _jitted_vjp(fn, idx, rest, consts, nargs):
    """``jax.jit`` of (differentiable primals, other array arguments, cotangent) -> VJP, cached per
    op and argument layout, so that repeated shapes reuse one compilation (Python-float arguments
    that the op takes as static values are part of the key, as they are of the op's own jit)."""
    import jax

    key = (fn, idx, rest, consts, nargs)
    g = _JIT_CACHE.get(key)
    if g is None:
        def run(primals, others, ct):
            def f(*dv):
                args = [None] * nargs
                for i, v in consts:
                    args[i] = v
                for i, v in zip(rest, others):
                    args[i] = v
                for i, v in zip(idx, dv):
                    args[i] = v
                return fn(*args)
            return jax.vjp(f, *primals)[1](ct)

        g = jax.jit(run)
        if len(_JIT_CACHE) > 256:
            _JIT_CACHE.clear()
        _JIT_CACHE[key] = g
    return g



def _jax_vjp(mod, op, q, inputs, cot, device):
    import jax

    fdt = _float_dtype_of(q, inputs)
    f64 = any(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in inputs)
    scope = mod.x64_scope(f64) if hasattr(mod, "x64_scope") else contextlib.nullcontext()
    # unwrap only our own x64/blocking wrapper: a user's jax.custom_vjp / custom_jvp object also
    # has __wrapped__ (the undecorated function), and unwrapping it would skip the custom rule
    fn = getattr(op.fn, "_infoaudit_inner", op.fn)
    jit = is_jit_variant(op.variant)
    skipped = {}
    with scope:
        fixed = [mod.to_backend(v, device) if isinstance(v, np.ndarray) else v for v in inputs]

        def attempt(scalars_differentiable):
            idx = [i for i, a in enumerate(q.args)
                   if a.is_float_array or (a.is_scalar and scalars_differentiable)]
            primals = []
            for i in idx:
                if q.args[i].is_scalar:
                    primals.append(mod.to_backend(_cast_np(np.asarray(inputs[i]), fdt).reshape(()), device))
                else:
                    primals.append(fixed[i])

            def f(*dv):
                args = list(fixed)
                for i, v in zip(idx, dv):
                    args[i] = v
                return fn(*args)

            shape = jax.eval_shape(f, *primals)
            c = mod.to_backend(_cast_np(cot, np.dtype(shape.dtype)).reshape(shape.shape), device)
            if jit:
                rest = tuple(i for i in range(len(fixed)) if i not in idx and not isinstance(fixed[i], float))
                consts = tuple((i, fixed[i]) for i in range(len(fixed)) if i not in idx and isinstance(fixed[i], float))
                g = _jitted_vjp(fn, tuple(idx), rest, consts, len(fixed))(
                    tuple(primals), tuple(fixed[i] for i in rest), c)
            else:
                _, pull = jax.vjp(f, *primals)
                g = pull(c)
            g = [x.block_until_ready() for x in g]
            return idx, g, np.dtype(shape.dtype)

        has_scalar = any(a.is_scalar for a in q.args)
        try:
            known = _STATIC_SCALAR.get(fn)
            if known is not None:
                raise _KnownStatic(known)
            idx, g, odt = attempt(True)
        except Exception as e:
            if not has_scalar:
                raise GradUnsupported(f"{type(e).__name__}: {e}") from e
            reason = e.reason if isinstance(e, _KnownStatic) else (
                ("scalar argument is static (a Python float) in this variant" if jit else
                 "scalar argument cannot be traced by this op") + f": {type(e).__name__}: {str(e)[:160]}")
            if len(_STATIC_SCALAR) > 256:
                _STATIC_SCALAR.clear()
            _STATIC_SCALAR[fn] = reason
            for a in q.args:
                if a.is_scalar:
                    skipped[a.name] = reason
            try:
                idx, g, odt = attempt(False)
            except Exception as e2:
                raise GradUnsupported(f"{type(e2).__name__}: {e2}") from e2
        res = {q.args[i].name: mod.to_numpy(x) for i, x in zip(idx, g)}
    how = "jax.jit(jax.vjp)" if jit else "jax.vjp (eager)"
    return GradOutput(res, _dname(odt), how, skipped, [])


__all__ = ["vjp_function", "GradOutput", "GradUnsupported", "supports", "is_jit_variant", "NO_AUTODIFF", "AUTODIFF"]

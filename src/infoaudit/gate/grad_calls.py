"""Differentiating a user's implementation through its framework's autodiff, and the exact VJP to
judge it against (memoised per rounded inputs and cotangent).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import quantities as Q
from ..backends.grad import AUTODIFF
from ..harness.calls import ReferenceFailure, describe_exception
from ..harness.frameworks import GateUsageError
from ..harness.timeout import call_with_timeout
from ..reference.cache import case_key, remember

__all__ = ["AUTODIFF", "GRAD_SEARCH_INPUTS", "GRAD_MAX_ELEMENTS", "MAX_CONDITION_UNIT", "check_usage", "load_backend", "user_op", "exact_vjp", "GradOutcome", "evaluate"]



GRAD_SEARCH_INPUTS = 12        # generated (search) inputs per dtype differentiated after the fixed cases


GRAD_MAX_ELEMENTS = 5000       # fixed cases larger than this are not differentiated (exact VJP cost)


MAX_CONDITION_UNIT = 64        # gradient condition (second derivatives) for units up to this size


def check_usage(framework, quantity):
    """GateUsageError (exit 2) when --grad cannot apply: no autodiff, or nothing to differentiate."""

    if framework not in AUTODIFF:
        raise GateUsageError(f"--grad needs autodiff: {framework} has none (gradients are taken with "
                             "torch.autograd or jax.vjp; use --framework torch|jax, or drop --grad)")
    q = Q.get(quantity)
    if not any(a.is_float_array or a.is_scalar for a in q.args):
        raise GateUsageError(f"--grad: {q.signature()} has no float argument to differentiate")


def load_backend(framework):
    from ..backends import load

    return load(framework)


def user_op(fn, call="impl"):
    """The user's function as a backend Op (a plain closure: ``__wrapped__`` of a jax.custom_vjp /
    jax.jit object would otherwise be unwrapped by the JAX adapter, bypassing the user's rule)."""
    from ..backends import Op

    def user(*args):
        return fn(*args)
    return Op("user", user, False, call)


def exact_vjp(q, dtype, ref, cot, max_unit=MAX_CONDITION_UNIT):
    """(exact {arg: Exact}, condition {arg: Condition}) for the rounded inputs and cotangent,
    memoised in the reference's in-process memo (:func:`infoaudit.reference.cache.remember`)."""
    from ..judging.condition import gradient_condition
    from ..reference import derivatives as D

    def compute():
        exact = D.vjp(q.name, *ref, cotangent=cot)
        try:
            cond = gradient_condition(q.name, *ref, cotangent=cot, exact=exact, max_unit=max_unit)
        except Exception:  # noqa: BLE001 - the condition is an aid; its absence falls back to the floor
            cond = {}
        return exact, cond
    key = ("vjp", max_unit) + case_key(q.name, dtype, list(ref) + [np.asarray(cot, dtype=np.float64)])
    return remember(key, compute)


@dataclass
class GradOutcome:
    kind: str                      # ok | not_differentiable | timeout | wrong_shape
    result: object = None          # GradResult when ok
    message: str = ""
    seconds: float = 0.0
    undifferentiated: dict = field(default_factory=dict)   # scalar arg -> why it was not differentiated

    @property
    def ok(self):
        return self.kind == "ok"


def evaluate(mod, op, q, dtype, inputs, *, device="cpu", timeout=20.0, cotangent=None):
    """The user's gradient on ``inputs`` (numpy in the dtype), with its exact VJP and condition.

    Raises Q.InputError (inputs outside the gradient's domain) or ReferenceFailure.
    """
    from ..backends.grad import GradUnsupported, vjp_function
    from ..grad_compare import GradResult, judge_gradient, prepare_grad_inputs

    gin, ref, cot = prepare_grad_inputs(q, inputs, dtype, cotangent)
    try:
        exact, conds = exact_vjp(q, dtype, ref, cot)
    except Exception as e:  # noqa: BLE001 - a reference limitation must not fail the user's build
        raise ReferenceFailure(describe_exception(e)) from e
    run = vjp_function(mod, op, q, device)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        out, err = call_with_timeout(run, (gin, cot), timeout)
    dt = time.perf_counter() - t0
    how = AUTODIFF[mod.NAME]
    if err == "timeout":
        return GradOutcome("timeout", message=f"its gradient ({how}) did not return within the per-call timeout "
                           f"of {timeout:g} s (hang); --timeout sets it", seconds=dt)
    if err is not None:
        msg = str(err).strip() if isinstance(err, GradUnsupported) else describe_exception(err)
        msg = msg.splitlines()[0] if msg else type(err).__name__
        return GradOutcome("not_differentiable", message=f"not differentiable with {how}: {msg}", seconds=dt)
    if dt > timeout:
        return GradOutcome("timeout", message=f"its gradient returned only after {dt:.1f} s, past the per-call "
                           f"timeout of {timeout:g} s", seconds=dt)
    res = GradResult(q.name, mod.NAME, op.variant, dtype, {}, dict(out.skipped))
    undiff = dict(out.skipped)
    scalar_names = {a.name for a in q.args if a.is_scalar}
    for name, g in out.grads.items():
        if name in scalar_names and any(n.startswith(f"{name}: not connected") for n in out.notes):
            undiff[name] = "not connected in the autograd graph (used as a constant)"
            continue
        ex = exact[name]
        raw = np.asarray(g)
        if raw.shape != ex.shape and raw.size != ex.size:
            return GradOutcome("wrong_shape", message=f"its gradient with respect to {name!r} has shape "
                               f"{raw.shape}, expected {ex.shape}", seconds=dt)
        notes = [n for n in out.notes if not n.startswith(tuple(f"{s}: not connected" for s in scalar_names))]
        res.args[name] = judge_gradient(q, mod.NAME, op, dtype, device, name, raw, ex, conds.get(name), gin, cot,
                                        out.how, notes)
    return GradOutcome("ok", res, seconds=dt, undifferentiated=undiff)

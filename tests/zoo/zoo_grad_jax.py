"""JAX members of the gradient zoo (``infoaudit gate --grad``): hand-written ``jax.custom_vjp``
rules (a correct one and one with a wrong scale) and jax.nn's own ops, eager. See
zoo_grad_torch for the conventions."""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from . import GradMember
from . import zoo_jax as Z

FRAMEWORK = "jax"
GRAD_MEMBERS: list = []


def _m(quantity, name, sound, why, finding="", module="", forward_finding=False):
    GRAD_MEMBERS.append(GradMember(FRAMEWORK, quantity, name, sound, why, finding, module, forward_finding))


def _wide(a):
    return a.astype(jnp.float32) if a.dtype in (jnp.float16, jnp.bfloat16) else a


def _distillation_vjp(scale_bug):
    """T^2 KL(softmax(zt/T) || softmax(zs/T)) with a hand-written VJP; T is a Python float
    (nondiff_argnums), as a training loop passes a temperature hyperparameter."""

    @partial(jax.custom_vjp, nondiff_argnums=(2,))
    def f(zs, zt, T):
        return Z.distillation_loss_wide(zs, zt, T)

    def fwd(zs, zt, T):
        return f(zs, zt, T), (zs, zt)

    def bwd(T, res, g):
        zs, zt = res
        a, b = _wide(zt) / T, _wide(zs) / T
        lpt, lps = jax.nn.log_softmax(a, axis=-1), jax.nn.log_softmax(b, axis=-1)
        pt, ps = jnp.exp(lpt), jnp.exp(lps)
        kl = jnp.sum(jnp.where(pt > 0, pt * (lpt - lps), 0.0), axis=-1, keepdims=True)
        gw = _wide(g)[..., None]
        # d/dzs = T (ps - pt); the buggy rule differentiates KL(z / T) and forgets the T^2 factor
        g_zs = gw * (ps - pt) * (1.0 / T if scale_bug else T)
        g_zt = gw * T * jnp.where(pt > 0, pt * (lpt - lps - kl), 0.0)
        return g_zs.astype(zs.dtype), g_zt.astype(zt.dtype)

    f.defvjp(fwd, bwd)
    return f


_distill_ok = _distillation_vjp(False)
_distill_bad = _distillation_vjp(True)


def distillation_custom_vjp(zs, zt, T):
    return _distill_ok(zs, zt, float(T))


def distillation_custom_vjp_without_T2(zs, zt, T):
    return _distill_bad(zs, zt, float(T))


_m("distillation_loss", "distillation_custom_vjp", True,
   "jax.custom_vjp with the exact rule: d/dzs = T (ps - pt), d/dzt = T pt (log pt - log ps - KL)")
_m("distillation_loss", "distillation_custom_vjp_without_T2", False,
   "jax.custom_vjp whose d/dzs is (ps - pt) / T: the T^2 of the loss forgotten (wrong scale, T^2 = 4 at T = 2)")

_Z = "tests.zoo.zoo_jax"
_m("log_softmax", "log_softmax_native", True, "jax.nn.log_softmax", module=_Z)
_m("softplus", "softplus_native", True, "jax.nn.softplus", module=_Z)

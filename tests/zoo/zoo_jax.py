"""JAX members of the zoo: jax.nn / jax.scipy ops (where stable), the stable formula computed in
float32 for 16-bit inputs ("wide"; JAX has no float64 without x64) and in the input dtype
("dtype"), and the textbook-unstable ones. Eager (not jitted) except where the name says jit:
a jit compile per input shape would dominate the test's time."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import jax.scipy.special as jss

from . import register
from .zoo_numpy import build

FRAMEWORK = "jax"
MEMBERS: list = []
LN2 = math.log(2.0)


def _take(a, y):
    return jnp.take_along_axis(a, y[..., None], axis=-1)[..., 0]


def _seq_sum(e):
    s = e[..., 0:1]
    for i in range(1, e.shape[-1]):
        s = s + e[..., i:i + 1]
    return s


def _wide(a):
    return a.astype(jnp.float32) if a.dtype in (jnp.float16, jnp.bfloat16) else a


build(jnp, globals(), MEMBERS, FRAMEWORK, wide=_wide, narrow=lambda y, like: y.astype(like.dtype),
      seq_sum=_seq_sum, take=_take)


def _reg(q, name, fn, why, finding=""):
    register(globals(), FRAMEWORK, MEMBERS, q, name, fn, True, why, finding)


_reg("softmax", "softmax_native", lambda z: jax.nn.softmax(z, axis=-1), "jax.nn.softmax")
_reg("softmax", "softmax_native_jit", jax.jit(lambda z: jax.nn.softmax(z, axis=-1)), "jax.jit(jax.nn.softmax)")
_reg("log_softmax", "log_softmax_native", lambda z: jax.nn.log_softmax(z, axis=-1), "jax.nn.log_softmax")
_reg("logsumexp", "logsumexp_native", lambda z: jax.nn.logsumexp(z, axis=-1), "jax.nn.logsumexp")
_reg("sigmoid", "sigmoid_native", jax.nn.sigmoid, "jax.nn.sigmoid",
     finding="float16 returns 0 for x below about -11 where the exact value is a representable subnormal (CPU and GPU; float32 too on GPU, where XLA keeps subnormals)")
_reg("softplus", "softplus_native", jax.nn.softplus, "jax.nn.softplus")
_reg("log_sigmoid", "log_sigmoid_native", jax.nn.log_sigmoid, "jax.nn.log_sigmoid")
_reg("entropy", "entropy_native", lambda p: jss.entr(p).sum(-1), "jax.scipy.special.entr(p).sum(-1)")
_reg("kl_divergence", "kl_divergence_native", lambda p, q: jss.rel_entr(p, q).sum(-1),
     "jax.scipy.special.rel_entr(p, q).sum(-1)")
_reg("cross_entropy_probs", "cross_entropy_probs_native", lambda p, q: -jss.xlogy(p, q).sum(-1),
     "-jax.scipy.special.xlogy(p, q).sum(-1)")
_reg("cross_entropy", "cross_entropy_native",
     lambda z, y: jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[..., None], axis=-1)[..., 0],
     "jax.nn.logsumexp(z) - z[y]")
_reg("binary_cross_entropy_with_logits", "bce_with_logits_native",
     lambda z, t: jax.nn.softplus(z) - t * z, "jax.nn.softplus(z) - t z")

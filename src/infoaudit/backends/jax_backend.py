"""JAX adapters: jax.nn / jax.scipy.special ops, and optax's losses when optax is installed.

Every quantity has a ``jit`` variant (``jax.jit`` of the expression, as it runs inside a jitted
training step) and an ``eager`` variant (op by op); XLA fuses and may reassociate under jit, so
the two can differ. Alternative spellings get ``<name>_jit`` / ``<name>_eager`` variants; optax's
losses are ``optax`` (jitted) and ``optax_eager``.

float64: JAX truncates float64 to float32 unless x64 is enabled. x64 is enabled only *inside*
our calls (``jax.enable_x64(True)`` context: thread-local, restored on exit) and only when an
argument is float64, so the user's process state is never changed and float16/bfloat16/float32
run exactly as in a default JAX process (labels int32). Transport is bit-exact: ``jnp.asarray``
of float16/float32/ml_dtypes.bfloat16 arrays keeps the bits, float64 arrays are created under x64,
and ``np.asarray`` reads results back without a cast. Nothing here imports jax at import time.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from . import BackendUnavailable, Op

__all__ = ["NAME", "DTYPES", "LN2", "available", "devices", "info", "x64_scope", "to_backend", "to_numpy",
           "ops"]

NAME = "jax"
DTYPES = ("float16", "bfloat16", "float32", "float64")
LN2 = math.log(2.0)


def available():
    try:
        import jax  # noqa: F401
        import jax.numpy  # noqa: F401
    except Exception as e:
        return False, f"jax not importable: {type(e).__name__}: {e}"
    return True, ""


def _platform_devices(platform):
    import jax

    try:
        return jax.devices(platform)
    except RuntimeError:
        return []


def _gpu_status():
    devs = _platform_devices("gpu")
    if devs:
        return True, ""
    try:
        import jaxlib
        ver = jaxlib.__version__
    except Exception:  # pragma: no cover
        ver = "?"
    return False, f"gpu: no JAX GPU platform (jaxlib {ver} is CPU-only here; jax.devices('gpu') finds none)"


def devices():
    ok, _ = _gpu_status()
    return ["cpu", "gpu"] if ok else ["cpu"]


def _optax():
    try:
        import optax
    except Exception as e:
        return None, f"optax variants: optax not importable ({type(e).__name__}: {e})"
    return optax, ""


def info():
    import jax
    import jaxlib

    out = {"version": f"{jax.__version__} (jaxlib {jaxlib.__version__})", "devices": devices(), "skipped": []}
    ok, why = _gpu_status()
    if ok:
        out["device_names"] = {"gpu": str(_platform_devices("gpu")[0])}
    else:
        out["skipped"].append(why)
    optax, why = _optax()
    if optax is None:
        out["skipped"].append(why)
    else:
        out["optax"] = optax.__version__
    out["notes"] = ["float64 runs under a local jax.enable_x64(True) context; the process default is untouched"]
    return out


def _device(device):
    dev = str(device or "cpu")
    platform = "gpu" if dev in ("gpu", "cuda") or dev.startswith("cuda:") else dev
    if platform not in ("cpu", "gpu"):
        raise BackendUnavailable(f"jax device {dev!r} is not supported here (cpu, gpu)")
    if platform == "gpu":
        ok, why = _gpu_status()
        if not ok:
            raise BackendUnavailable(why)
    return _platform_devices(platform)[0]


def _is_f64(a):
    return getattr(a, "dtype", None) is not None and str(a.dtype) == "float64"


def x64_scope(on=True):
    """Context that enables x64 for its body only (thread-local; the previous value is restored)."""
    import jax

    if not on:
        return contextlib.nullcontext()
    return jax.enable_x64(True)


def to_backend(a, device="cpu"):
    """numpy array -> jax Array on the device with identical bits (float64 created under x64)."""
    import jax
    import jax.numpy as jnp

    dev = _device(device)
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        a = a.astype(np.int32)  # class indices; a default (non-x64) JAX user has int32 labels
    with x64_scope(_is_f64(a)):
        return jax.device_put(jnp.asarray(a), dev)


def to_numpy(x):
    """jax Array -> numpy array, bits unchanged (bfloat16 comes back as ml_dtypes.bfloat16)."""
    return np.array(x, copy=True)


def _wrap(fn):
    """Run ``fn`` under x64 when any argument is float64, and wait for the result."""
    def call(*args):
        with x64_scope(any(_is_f64(a) for a in args)):
            out = fn(*args)
            return out.block_until_ready() if hasattr(out, "block_until_ready") else out
    call.__wrapped__ = fn
    call._infoaudit_inner = fn   # what the gradient adapter differentiates (see backends.grad)
    return call


def _pair(table, qname, stem, fn, native, call, note="", static=()):
    """Register jit and eager variants of one expression."""
    import jax

    pre = f"{stem}_" if stem else ""
    jitted = jax.jit(fn, static_argnums=static)
    table.setdefault(qname, []).append(Op(f"{pre}jit", _wrap(jitted), native, f"jax.jit({call})", note))
    table[qname].append(Op(f"{pre}eager", _wrap(fn), native, call, note))


def _ops():
    import jax
    import jax.numpy as jnp
    import jax.scipy.special as jss

    nn = jax.nn

    def take(a, y):
        return jnp.take_along_axis(a, y[..., None], axis=-1)[..., 0]

    def kl_logits(za, zb, T):
        la = nn.log_softmax(za / T, axis=-1)
        lb = nn.log_softmax(zb / T, axis=-1)
        return jnp.sum(jnp.exp(la) * (la - lb), axis=-1)

    def label_smoothing(z, y, eps):
        ls = nn.log_softmax(z, axis=-1)
        return (1 - eps) * -take(ls, y) + eps * -jnp.mean(ls, axis=-1)

    def cond_entropy(P):
        px = jnp.sum(P, axis=-1, keepdims=True)
        return -jnp.sum(jss.xlogy(P, P) - jss.xlogy(P, px), axis=(-2, -1))

    def mutual_info(P):
        px = jnp.sum(P, axis=-1, keepdims=True)
        py = jnp.sum(P, axis=-2, keepdims=True)
        return jnp.sum(jss.xlogy(P, P) - jss.xlogy(P, px) - jss.xlogy(P, py), axis=(-2, -1))

    def sampled_terms(z, y, samples, log_q):
        idx = jnp.concatenate([y[..., None], samples], axis=-1)
        a = jnp.take_along_axis(z, idx, axis=-1) - jnp.take_along_axis(log_q, idx, axis=-1)
        hit = jnp.concatenate([jnp.zeros(y.shape + (1,), bool), samples == y[..., None]], axis=-1)
        return jnp.where(hit, jnp.array(-jnp.inf, a.dtype), a)

    def sampled(z, y, samples, log_q):
        a = sampled_terms(z, y, samples, log_q)
        return nn.logsumexp(a, axis=-1) - a[..., 0]

    def adaptive(h, head_weight, proj_1, out_1, proj_2, out_2):
        S = head_weight.shape[0] - 2
        head = nn.log_softmax(h @ head_weight.T, axis=-1)
        parts = [head[:, :S]] + [head[:, S + i:S + i + 1] + nn.log_softmax((h @ P.T) @ O.T, axis=-1)
                                 for i, (P, O) in enumerate(((proj_1, out_1), (proj_2, out_2)))]
        return jnp.concatenate(parts, axis=-1)

    N, C = True, False
    t: dict = {}
    _pair(t, "softmax", "", lambda z: nn.softmax(z, axis=-1), N, "jax.nn.softmax(z, axis=-1)")
    _pair(t, "log_softmax", "", lambda z: nn.log_softmax(z, axis=-1), N, "jax.nn.log_softmax(z, axis=-1)")
    _pair(t, "logsumexp", "", lambda z: nn.logsumexp(z, axis=-1), N, "jax.nn.logsumexp(z, axis=-1)")
    _pair(t, "sigmoid", "", nn.sigmoid, N, "jax.nn.sigmoid(x)")
    _pair(t, "softplus", "", nn.softplus, N, "jax.nn.softplus(x)")
    _pair(t, "log_sigmoid", "", nn.log_sigmoid, N, "jax.nn.log_sigmoid(x)")
    _pair(t, "entropy", "", lambda p: jnp.sum(jss.entr(p), axis=-1), C, "jax.scipy.special.entr(p).sum(-1)")
    _pair(t, "entropy_bits", "", lambda p: jnp.sum(jss.entr(p), axis=-1) / LN2, C,
          "jax.scipy.special.entr(p).sum(-1) / log(2)")
    _pair(t, "self_information_bits", "", lambda p: -jnp.log2(p), C, "-jnp.log2(p)")
    _pair(t, "binary_entropy_bits", "", lambda p: (jss.entr(p) + jss.entr(1 - p)) / LN2, C,
          "(entr(p) + entr(1 - p)) / log(2)")
    _pair(t, "kl_divergence", "", lambda p, q: jnp.sum(jss.rel_entr(p, q), axis=-1), C,
          "jax.scipy.special.rel_entr(p, q).sum(-1)")
    _pair(t, "kl_divergence", "kl_div", lambda p, q: jnp.sum(jss.kl_div(p, q), axis=-1), C,
          "jax.scipy.special.kl_div(p, q).sum(-1)", "elementwise p log(p/q) - p + q")
    _pair(t, "cross_entropy_probs", "", lambda p, q: -jnp.sum(jss.xlogy(p, q), axis=-1), C,
          "-jax.scipy.special.xlogy(p, q).sum(-1)")
    _pair(t, "cross_entropy", "", lambda z, y: -take(nn.log_softmax(z, axis=-1), y), C,
          "-take_along_axis(jax.nn.log_softmax(z), y)")
    _pair(t, "nll_loss", "", lambda lp, y: -take(lp, y), C, "-take_along_axis(logp, y)")
    _pair(t, "binary_cross_entropy", "", lambda p, t_: -(jss.xlogy(t_, p) + jss.xlogy(1 - t_, 1 - p)), C,
          "-(xlogy(t, p) + xlogy(1 - t, 1 - p))")
    _pair(t, "binary_cross_entropy_with_logits", "",
          lambda z, t_: -(t_ * nn.log_sigmoid(z) + (1 - t_) * nn.log_sigmoid(-z)), C,
          "-(t * jax.nn.log_sigmoid(z) + (1 - t) * jax.nn.log_sigmoid(-z))")
    _pair(t, "label_smoothing_cross_entropy", "", label_smoothing, C,
          "(1 - eps) * nll(log_softmax(z)) + eps * mean(-log_softmax(z))", static=(2,))
    _pair(t, "distillation_loss", "", lambda zs, zt, T: T * T * kl_logits(zt, zs, T), C,
          "T**2 * sum(exp(lt) * (lt - ls)), lt/ls = jax.nn.log_softmax(zt/T, zs/T)", static=(2,))
    _pair(t, "rlhf_kl_penalty", "", lambda zp, zr, beta: beta * kl_logits(zp, zr, 1.0), C,
          "beta * sum(exp(lp) * (lp - lr)), lp/lr = jax.nn.log_softmax", static=(2,))
    _pair(t, "gaussian_kl", "", lambda mu, lv: -0.5 * jnp.sum(1 + lv - mu ** 2 - jnp.exp(lv), axis=-1), C,
          "-0.5 * jnp.sum(1 + logvar - mu**2 - jnp.exp(logvar), -1)")
    _pair(t, "joint_entropy", "", lambda P: jnp.sum(jss.entr(P), axis=(-2, -1)), C, "entr(P).sum((-2, -1))")
    _pair(t, "conditional_entropy", "", cond_entropy, C, "-(xlogy(P, P) - xlogy(P, Px)).sum()")
    _pair(t, "mutual_information", "", mutual_info, C, "(xlogy(P, P) - xlogy(P, Px) - xlogy(P, Py)).sum()")
    _pair(t, "sampled_softmax_cross_entropy", "", sampled, C,
          "jax.nn.logsumexp(a, -1) - a[..., 0], a = take_along_axis(z - log_q, [y] + samples), hits -inf")
    _pair(t, "adaptive_log_softmax", "", adaptive, C,
          "head = jax.nn.log_softmax(h @ W_head.T); tail_i = head[S+i] + jax.nn.log_softmax((h @ P_i.T) @ O_i.T)")

    optax, _ = _optax()
    if optax is not None:
        L = optax.losses

        def add(qname, fn, call, note="", static=()):
            jitted = jax.jit(fn, static_argnums=static)
            t[qname].append(Op("optax", _wrap(jitted), True, f"jax.jit({call})", note))
            t[qname].append(Op("optax_eager", _wrap(fn), True, call, note))

        add("kl_divergence", lambda p, q: L.kl_divergence(jnp.log(q), p), "optax.losses.kl_divergence(jnp.log(q), p)")
        add("cross_entropy", lambda z, y: L.softmax_cross_entropy_with_integer_labels(z, y),
            "optax.losses.softmax_cross_entropy_with_integer_labels(z, y)")
        add("binary_cross_entropy_with_logits", lambda z, t_: L.sigmoid_binary_cross_entropy(z, t_),
            "optax.losses.sigmoid_binary_cross_entropy(z, t)")
        add("label_smoothing_cross_entropy",
            lambda z, y, eps: L.softmax_cross_entropy(z, L.smooth_labels(jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype),
                                                                          eps)),
            "optax.losses.softmax_cross_entropy(z, optax.losses.smooth_labels(one_hot(y, K), eps))", static=(2,))
        add("distillation_loss",
            lambda zs, zt, T: T * T * L.kl_divergence(nn.log_softmax(zs / T, axis=-1), nn.softmax(zt / T, axis=-1)),
            "T**2 * optax.losses.kl_divergence(log_softmax(zs/T), softmax(zt/T))", static=(2,))
        add("rlhf_kl_penalty",
            lambda zp, zr, beta: beta * L.kl_divergence_with_log_targets(nn.log_softmax(zr, axis=-1),
                                                                         nn.log_softmax(zp, axis=-1)),
            "beta * optax.losses.kl_divergence_with_log_targets(log_softmax(z_ref), log_softmax(z_policy))",
            static=(2,))
    return t


_TABLE = None


def ops():
    global _TABLE
    if _TABLE is None:
        _TABLE = _ops()
    return _TABLE

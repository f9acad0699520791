"""The cells of a group: backend x variant x device targets, or a user's callable.
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np

from .. import quantities as Q
from ..differential import Unsupported
from ..dtypes import dtype_name
from .profiles import PROFILE_SETTINGS

__all__ = ["Target", "FRAMEWORK_OF", "cell_key", "targets_for", "as_targets", "profile_variants", "user_targets"]


@dataclass
class Target:
    """Something that computes a quantity: a backend op on a device, or a user's callable."""

    backend: str
    variant: str
    device: str = "cpu"
    call: str = ""
    native: bool = False
    note: str = ""
    mod: object = None          # backend module (to_backend / to_numpy), None for numpy callables
    fn: object = None           # the op
    unsupported: str = ""       # reason, once known
    errors: int = 0
    first_error: str = ""
    successes: int = 0
    framework: str = ""         # whose arrays and floating-point environment (numpy, torch, jax)
    profiles: tuple = ()        # run profiles that audit it (empty: all; Op.profiles)
    baseline: str = ""          # variant compared with it on the same inputs (Op.baseline; compiled -> eager)

    @property
    def name(self) -> str:
        return f"{self.backend}/{self.variant}/{self.device}"

    @property
    def user(self) -> bool:
        """A user's own implementation (``infoaudit run --impl``, a callable passed to
        :func:`search`): judged like the gate judges it -- a raise or a result of another
        shape or dtype is a failure, not a framework's refusal."""
        return self.backend.startswith("user")

    def flush_probe(self, dtype):
        """The platform's flush-to-zero behaviour for this target in ``dtype`` (probed, cached)."""
        from ..harness import ftz

        fw = self.framework or ("numpy" if self.mod is None else FRAMEWORK_OF.get(getattr(self.mod, "NAME", ""), ""))
        if fw not in ("numpy", "torch", "jax"):
            return None
        p = ftz.probe(fw, dtype_name(dtype), self.device)
        return p if p.active else None

    def key(self, quantity, dtype) -> str:
        return cell_key(quantity, self.backend, self.variant, dtype, self.device)

    def __call__(self, inputs):
        if self.mod is not None:
            bargs = [self.mod.to_backend(v, self.device) if isinstance(v, np.ndarray) else v for v in inputs]
        else:
            bargs = list(inputs)
        scope = getattr(self.mod, "x64_scope", None) if self.user else None  # JAX: float64 under x64
        f64 = any(isinstance(v, np.ndarray) and v.dtype == np.float64 for v in inputs)
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings(), \
                    (scope(f64) if scope is not None else contextlib.nullcontext()):
                warnings.simplefilter("ignore")
                out = self.fn(*bargs)
        except Exception as e:  # noqa: BLE001 - the framework's own refusal is the reason
            raise Unsupported(f"{type(e).__name__}: {e}") from e
        return np.asarray(self.mod.to_numpy(out)) if self.mod is not None else np.asarray(out)


FRAMEWORK_OF = {"numpy": "numpy", "scipy": "numpy", "torch": "torch", "jax": "jax"}


def cell_key(quantity, backend, variant, dtype, device="cpu") -> str:
    return f"{quantity}|{backend}|{variant}|{dtype}|{device}"


def targets_for(quantity, dtype, backends=None, devices=None):
    """Targets of every installed backend for (quantity, dtype); plus [(backend, reason)] skipped."""
    from ..backends import BACKENDS, BackendUnavailable, load

    q = Q.get(quantity)
    d = dtype_name(dtype)
    out, skipped = [], []
    for b in backends or BACKENDS:
        try:
            mod = load(b) if isinstance(b, str) else b
        except (BackendUnavailable, ModuleNotFoundError, ImportError) as e:
            skipped.append((b if isinstance(b, str) else getattr(b, "NAME", "?"), f"not available: {e}"))
            continue
        out += _targets_of_module(mod, q, d, devices, skipped)
    return out, skipped


def _targets_of_module(mod, q, d, devices, skipped):
    name = getattr(mod, "NAME", "?")
    if d not in getattr(mod, "DTYPES", ()):
        skipped.append((name, f"{d} not supported by {name}"))
        return []
    try:
        table = mod.ops()
    except Exception as e:  # noqa: BLE001
        skipped.append((name, f"ops() failed: {type(e).__name__}: {e}"))
        return []
    if q.name not in table:
        skipped.append((name, f"no op for {q.name}"))
        return []
    ops = list(table[q.name])
    if hasattr(mod, "extra_ops"):  # variants only the run audits (torch.compile)
        try:
            ops += list(mod.extra_ops().get(q.name, ()))
        except Exception as e:  # noqa: BLE001
            skipped.append((name, f"extra_ops() failed: {type(e).__name__}: {e}"))
    devs = devices or (mod.devices() if hasattr(mod, "devices") else ["cpu"])
    out = []
    for dev in devs:
        for op in ops:
            if getattr(op, "dtypes", ()) and d not in op.dtypes:   # e.g. autocast variants: float32 groups
                continue
            out.append(Target(name, op.variant, dev, op.call, op.native, op.note, mod, op.fn,
                              framework=FRAMEWORK_OF.get(name, ""), profiles=tuple(getattr(op, "profiles", ())),
                              baseline=getattr(op, "baseline", "")))
    return out


def as_targets(quantity, target, dtype, device=None, framework=None):
    """Normalise ``target`` (see :func:`search`) to a list of Targets (+ skipped reasons)."""
    from ..backends import Op, load

    q = Q.get(quantity)
    d = dtype_name(dtype)
    if isinstance(target, Target):
        return [target], []
    if isinstance(target, (list, tuple)) and all(isinstance(t, Target) for t in target):
        return list(target), []
    if isinstance(target, str):
        return targets_for(q, d, [target], [device] if device else None)
    if isinstance(target, (list, tuple)) and all(isinstance(t, str) for t in target):
        return targets_for(q, d, list(target), [device] if device else None)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        ts, sk = targets_for(q, d, [target[0]], [device] if device else None)
        return [t for t in ts if t.variant == target[1]], sk
    if isinstance(target, Op):
        mod = load(framework or "numpy")
        return [Target(mod.NAME, target.variant, device or "cpu", target.call, target.native, target.note, mod,
                       target.fn, framework=FRAMEWORK_OF.get(mod.NAME, ""))], []
    if hasattr(target, "ops") and hasattr(target, "NAME"):
        skipped = []
        return _targets_of_module(target, q, d, [device] if device else None, skipped), skipped
    if callable(target):
        mod = load(framework) if framework else None
        nm = getattr(target, "__qualname__", getattr(target, "__name__", "fn"))
        modname = getattr(target, "__module__", "") or ""
        return [Target("user" if framework is None else f"user-{framework}", nm, device or "cpu",
                       f"{modname}.{nm}" if modname else nm, False, "user implementation", mod, target,
                       framework=framework or "numpy")], []
    raise TypeError(f"cannot audit {target!r}: pass a backend name, module, Op or callable")


def profile_variants(targets, skipped, profile):
    """The targets the profile audits: all variants, or (``variants="first"``) each backend's
    primary op per device; the others are appended to ``skipped`` with the reason. A target
    whose ``profiles`` do not name ``profile`` (compiled variants) is skipped first."""
    kept = [t for t in targets if not t.profiles or profile in t.profiles]
    left = {}
    for t in targets:
        if t.profiles and profile not in t.profiles:
            left.setdefault((t.backend, t.profiles), []).append(t.variant)
    for (backend, profs), names in left.items():
        skipped.append((backend, f"variants {', '.join(dict.fromkeys(names))}: not audited by the {profile} "
                                 f"profile ({'/'.join(profs)} only)"))
    targets = kept
    if PROFILE_SETTINGS[profile].get("variants") != "first":
        return list(targets)
    seen, firsts = set(), []
    for t in targets:
        if (t.backend, t.device) not in seen:
            seen.add((t.backend, t.device))
            firsts.append(t)
        else:
            skipped.append((t.backend, f"variant {t.variant!r}: not audited by the {profile} profile"))
    return firsts


def user_targets(spec, quantity, dtype, framework=None, device=None):
    """Targets of a user's implementation ``MODULE:FUNCTION`` (imported as ``infoaudit gate
    --impl`` imports it, :func:`infoaudit.harness.loading.load_impl`; ``framework`` inferred as the gate infers
    it). Raises :class:`infoaudit.harness.loading.UsageError` with one line when it does not import."""
    from ..harness.frameworks import infer_framework
    from ..harness.loading import load_impl

    fn = load_impl(spec)
    targets, _ = as_targets(quantity, fn, dtype, device, framework or infer_framework(fn))
    for t in targets:
        t.call = spec
    return targets

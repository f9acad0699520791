"""``torch.compile`` variants of the torch ops: the same expression, compiled by Inductor.

Each compile *setting* is one variant suffix (README, "Compiled and mixed precision"):

==========================  ===============================================================  ========
suffix                      torch.compile(...)                                               profiles
==========================  ===============================================================  ========
``compiled``                ``torch.compile(fn, dynamic=True)`` (Inductor, default mode)     default
``compiled_max_autotune``   ``mode="max-autotune-no-cudagraphs", dynamic=True``             thorough
``compiled_emulate``        ``options={"emulate_precision_casts": True}, dynamic=True``     thorough
==========================  ===============================================================  ========

The variants are the torch backend's ``extra_ops()`` (not its ``ops()``: per-op tests and
benchmarks do not compile). The eager variant ``native`` becomes ``compiled``; another eager
variant ``v`` becomes ``v_compiled`` (``v_compiled_max_autotune``, ...). :func:`eager_variant`
maps a compiled variant back to the eager one it compiles: the run compares the two on the same
inputs (:mod:`infoaudit.judging.relative`). The default profile audits the ``compiled`` setting
of the primary op of :data:`MAIN_QUANTITIES` in :data:`DEFAULT_DTYPES` only (compiling costs
seconds per op, dtype and number of dimensions); the thorough profile audits every setting of
every op of every quantity in every dtype.

Every call runs with the compile caches off (Inductor's FX graph cache and autotune cache,
AOT-autograd's cache: each setting really traces, lowers and generates its code; the C++ build
cache, keyed by the generated source, stays on: the same source builds the same binary, and
``force_disable_caches`` would rebuild it at 7 to 30 s a kernel here), a recompile limit of
:data:`RECOMPILE_LIMIT` and ``fail_on_recompile_limit_hit`` (a function past the limit raises
instead of silently running eagerly). Each (variant, dtype,
device, grad) gets its own code object, so recompiles of one do not count against another.
``dynamic=True``: row lengths do not recompile (lengths 0 and 1 are specialised by dynamo).

:func:`compile_log` lists every call that compiled in this process: its wall time and
the floating-point state (FTZ/DAZ, :func:`infoaudit.results.fingerprint.fp_state`) before and
after, since a compiled library can switch the process to flush-to-zero (pytorch issue 126848).
Nothing here imports torch at module import time.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from . import Op

__all__ = ["Setting", "SETTINGS", "MAIN_QUANTITIES", "DEFAULT_DTYPES", "RECOMPILE_LIMIT", "compiled_ops",
           "compile_function", "eager_variant", "compile_log", "clear_log", "setting_of", "variant_name"]

# compiled in the default profile (the rest only in thorough)
MAIN_QUANTITIES = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "binary_cross_entropy_with_logits",
                   "kl_divergence")
RECOMPILE_LIMIT = 64
# the default profile compiles the primary op of each main quantity in these dtypes (float64 and
# the other variants: thorough); measured on 2 loaded cores, 5 to 30 s of compiling per cell
DEFAULT_DTYPES = ("float16", "bfloat16", "float32")
ALL_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class Setting:
    """One way to call torch.compile."""

    suffix: str             # the variant suffix
    mode: str | None        # torch.compile(mode=...)
    options: tuple          # Inductor options ((key, value), ...); torch.compile takes mode or options
    thorough_only: bool     # audited only by the thorough profile
    text: str               # how a user writes it (wraps FN)

    def kwargs(self) -> dict:
        kw = {"dynamic": True}
        if self.mode:
            kw["mode"] = self.mode
        if self.options:
            kw["options"] = dict(self.options)
        return kw


SETTINGS = (
    Setting("compiled", None, (), False, "torch.compile(FN, dynamic=True)"),
    Setting("compiled_max_autotune", "max-autotune-no-cudagraphs", (), True,
            "torch.compile(FN, mode='max-autotune-no-cudagraphs', dynamic=True)"),
    Setting("compiled_emulate", None, (("emulate_precision_casts", True),), True,
            "torch.compile(FN, options={'emulate_precision_casts': True}, dynamic=True)"),
)
_BY_SUFFIX = {s.suffix: s for s in SETTINGS}


def variant_name(eager: str, setting: Setting) -> str:
    """``native`` -> ``compiled``; ``log_target`` -> ``log_target_compiled``."""
    return setting.suffix if eager == "native" else f"{eager}_{setting.suffix}"


def _split(variant: str):
    for s in sorted(SETTINGS, key=lambda s: -len(s.suffix)):   # longest suffix first
        if variant == s.suffix:
            return "native", s
        if variant.endswith("_" + s.suffix):
            return variant[: -len(s.suffix) - 1], s
    return None, None


def eager_variant(variant: str) -> str | None:
    """The eager variant a compiled variant compiles (None when ``variant`` is not compiled)."""
    return _split(variant)[0]


def setting_of(variant_or_suffix: str) -> Setting | None:
    """The Setting of a compiled variant name or of a setting's suffix."""
    return _BY_SUFFIX.get(variant_or_suffix) or _split(variant_or_suffix)[1]


# ---------------------------------------------------------------- compile log

_LOG: list = []
_LOCK = threading.Lock()
_FP_FIRST: dict = {}


def _fp_now():
    from ..results.fingerprint import fp_state

    try:
        return fp_state(["torch"]).get("ftz")
    except Exception as e:  # noqa: BLE001 - the probe must not stop the audit
        return {"error": f"{type(e).__name__}: {e}"}


def compile_log() -> list:
    """Every call of a compiled function in this process that compiled (the first per dtype,
    device and autograd need, and each recompile, e.g. for a new number of dimensions), with its
    wall time (compile included): ``{"variant", "setting", "quantity", "dtype", "device", "grad",
    "recompile", "seconds", "shape", "fp_before", "fp_after"}``; ``fp_*``: the FTZ/DAZ state per
    framework/device and dtype, probed before the process's first compile and after each."""
    with _LOCK:
        return [dict(e) for e in _LOG]


def clear_log():
    with _LOCK:
        _LOG.clear()


# ---------------------------------------------------------------- compiling


def _graphs() -> int:
    """Graphs dynamo has compiled in this process so far (a call that raises it compiled)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _fresh_caller(fn):
    """A new code object calling ``fn``: dynamo keeps compiled entries (and counts recompiles) per
    code object, so each compiled function gets its own."""
    ns = {"fn": fn}
    exec("def call(*args):\n    return fn(*args)\n", ns)  # noqa: S102 - a fixed trampoline
    return ns["call"]


def _scope(torch):
    """Caches off, a recompile limit that raises when hit."""
    import contextlib

    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    stack = contextlib.ExitStack()
    stack.enter_context(inductor_config.patch(fx_graph_cache=False, autotune_local_cache=False))
    stack.enter_context(functorch_config.patch(enable_autograd_cache=False))
    stack.enter_context(torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT,
                                                   fail_on_recompile_limit_hit=True))
    return stack


def compile_function(fn, setting: Setting | str = "compiled", label: str = "", quantity: str = ""):
    """``fn`` compiled under ``setting``: a callable on torch tensors that compiles on first use
    (one compiled function per argument dtype, device and autograd need), with the caches off and
    every first call in :func:`compile_log`."""
    st = setting if isinstance(setting, Setting) else _BY_SUFFIX[setting]
    compiled = {}

    def call(*args):
        import warnings

        import torch

        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        floats = [a for a in tensors if a.is_floating_point()]
        lead = floats[0] if floats else (tensors[0] if tensors else None)
        dtype = str(lead.dtype).replace("torch.", "") if lead is not None else "none"
        device = str(lead.device) if lead is not None else "cpu"
        grad = any(a.requires_grad for a in floats)
        key = (dtype, device, grad)
        f = compiled.get(key)
        first = f is None
        if first:
            f = torch.compile(_fresh_caller(fn), **st.kwargs())
            compiled[key] = f
            if not _FP_FIRST:
                _FP_FIRST["state"] = _fp_now()
        graphs = _graphs()
        t0 = time.perf_counter()
        with _scope(torch), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = f(*args)
        seconds = time.perf_counter() - t0
        if first or _graphs() > graphs:   # this call compiled (the first, or a recompile)
            after = _fp_now()
            entry = {"variant": label or st.suffix, "setting": st.suffix, "quantity": quantity, "dtype": dtype,
                     "device": device, "grad": grad, "recompile": not first, "seconds": round(seconds, 3),
                     "shape": [list(a.shape) for a in floats], "fp_before": _FP_FIRST["state"], "fp_after": after}
            _FP_FIRST["state"] = after
            with _LOCK:
                _LOG.append(entry)
        return out

    call.setting = st.suffix
    return call


def compiled_ops(eager: dict) -> dict:
    """``{quantity: [compiled Op, ...]}`` for an eager table ``{quantity: [Op, ...]}``: every
    setting of every op, with the profiles that audit it (``Op.profiles``) and the eager variant
    it is compared with (``Op.baseline``)."""
    from .. import quantities as Q

    out = {}
    for qname, ops in eager.items():
        try:
            names = ", ".join(Q.get(qname).arg_names)
        except (KeyError, ValueError, Q.InputError):
            continue
        for st in SETTINGS:
            for k, op in enumerate(ops):
                name = variant_name(op.variant, st)
                call = st.text.replace("FN", f"lambda {names}: {op.call}") + f"({names})"
                note = (op.note + "; " if op.note else "") + f"compiled ({st.suffix}); compared with eager {op.variant!r}"
                fn = compile_function(op.fn, st, name, qname)
                add = out.setdefault(qname, []).append
                if qname in MAIN_QUANTITIES and not st.thorough_only and k == 0:   # the default profile's cells
                    add(Op(name, fn, op.native, call, note, profiles=("default", "thorough"), baseline=op.variant,
                           dtypes=DEFAULT_DTYPES))
                    add(Op(name, fn, op.native, call, note, profiles=("thorough",), baseline=op.variant,
                           dtypes=tuple(d for d in ALL_DTYPES if d not in DEFAULT_DTYPES)))
                else:
                    add(Op(name, fn, op.native, call, note, profiles=("thorough",), baseline=op.variant))
    return out

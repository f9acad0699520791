"""What the gate runs: the user's function as given, compiled (``--compile``) or under autocast
(``--autocast``), and what ``--relative K`` compares it with (``--relative-to``).

* ``--compile MODE``: ``torch.compile`` of the function (:mod:`infoaudit.backends.torch_compiled`:
  ``dynamic=True``, compile caches off, a recompile limit that raises), values and ``--grad``;
  MODE is ``default`` (Inductor), ``max-autotune`` (``mode="max-autotune-no-cudagraphs"``) or
  ``emulate`` (``emulate_precision_casts=True``). torch only.
* ``--autocast DTYPE``: the function under ``torch.autocast(device, dtype=DTYPE)``
  (:func:`infoaudit.backends.autocast.run_autocast`) on float32 inputs (``--dtype`` defaults to
  float32), judged against the exact value of those inputs. torch only.
* ``--relative-to``: ``native`` (default: the framework's own op for the quantity), ``eager``
  (the function itself, not compiled and not under autocast), a variant name of the framework's
  ops (e.g. ``log_target``, ``compiled``) or ``MODULE:FUNCTION``. The rule itself is
  :mod:`infoaudit.judging.relative`.
"""
from __future__ import annotations

from ..harness.frameworks import GateUsageError

__all__ = ["COMPILE_MODES", "COMPILE_TIMEOUT", "wrap", "baseline_op", "reproducer_lines"]

COMPILE_TIMEOUT = 600.0   # per-call seconds under --compile: a call that compiles is not a hang
# options.COMPILE_MODES names the same keys
COMPILE_MODES = {"default": "compiled", "max-autotune": "compiled_max_autotune",
                 "max-autotune-no-cudagraphs": "compiled_max_autotune", "emulate": "compiled_emulate"}


def _torch_only(framework, flag):
    if framework != "torch":
        raise GateUsageError(f"{flag} needs a torch implementation (framework {framework!r}); "
                             "JAX users: jax.jit is what the function runs under already")


def wrap(fn, framework, compile=None, autocast=None):
    """(the function the gate runs, notes). ``compile`` / ``autocast``: see the module docstring."""
    notes = []
    out = fn
    if compile:
        _torch_only(framework, "--compile")
        if compile not in COMPILE_MODES:
            raise GateUsageError(f"--compile {compile!r}: choose from {', '.join(COMPILE_MODES)}")
        from ..backends.torch_compiled import compile_function, setting_of

        st = setting_of(COMPILE_MODES[compile])
        out = compile_function(out, st, label="gate", quantity="")
        notes.append(f"compiled: {st.text.replace('FN', 'impl')} (compile caches off)")
    if autocast:
        _torch_only(framework, "--autocast")
        from ..backends.autocast import run_autocast

        inner = out

        def under_autocast(*args):
            return run_autocast(inner, autocast, *args)
        out = under_autocast
        notes.append(f"under torch.autocast(dtype=torch.{autocast}); judged against the exact value of the "
                     "float32 inputs")
    return out, notes


def baseline_op(relative_to, framework, quantity, device, eager_fn):
    """The callable ``--relative`` compares with (framework arrays in, framework array out), and
    its name; None when the framework has no such op."""
    what = relative_to or "native"
    if what == "eager":
        return eager_fn, "the eager implementation"
    if ":" in what:
        from ..harness.loading import UsageError, load_impl

        try:
            return load_impl(what), what
        except UsageError as e:
            raise GateUsageError(f"--relative-to {what}: {e}") from None
    from ..backends import load

    try:
        mod = load(framework)
    except Exception as e:  # noqa: BLE001 - BackendUnavailable
        raise GateUsageError(f"--relative-to {what}: {e}") from None
    ops = list(mod.ops().get(quantity, ()))
    if hasattr(mod, "extra_ops"):
        ops += list(mod.extra_ops().get(quantity, ()))
    if what == "native":
        op = next((o for o in ops if o.native), ops[0] if ops else None)
    else:
        op = next((o for o in ops if o.variant == what), None)
        if op is None:
            raise GateUsageError(f"--relative-to {what}: {framework} has no variant {what!r} of {quantity}; "
                                 f"variants: {', '.join(o.variant for o in ops)} (or eager, native, MODULE:FUNCTION)")
    if op is None:
        return None, what
    return op.fn, f"{framework} {op.variant} ({op.call})"


def reproducer_lines(fn_name, compile=None, autocast=None) -> str:
    """Lines after the reproducer's import that run ``fn_name`` the way the gate ran it."""
    lines = []
    if compile:
        from ..backends.torch_compiled import setting_of

        st = setting_of(COMPILE_MODES[compile])
        lines += ["import torch", f"{fn_name} = {st.text.replace('FN', fn_name)}"]
    if autocast:
        lines += ["import infoaudit.backends.autocast",
                  f"{fn_name} = (lambda f: lambda *a: infoaudit.backends.autocast.run_autocast(f, {autocast!r}, *a))"
                  f"({fn_name})"]
    return "\n".join(lines)

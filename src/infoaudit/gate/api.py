"""Python API of the gate: ``assert_stable(fn, "cross_entropy", framework="torch")``.

Runs the same audit as ``infoaudit gate`` (fixed corpus, seeded search, graded by the one judge
under the profile's passing grade) on a callable and raises :class:`GateFailure` (an
AssertionError) whose message is the gate's report: per dtype the verdict with the grade reached
and both allowances of the deciding element, and the shrunk copy-paste reproducer. Options default
to the pytest command line / ini (inside pytest, through the plugin) and to ``[tool.infoaudit]`` in
pyproject.toml, then to :mod:`infoaudit.options`.
"""
from __future__ import annotations

from .. import options as O


class GateFailure(AssertionError):
    """The implementation is numerically unsound (the message holds the reproducer)."""

    def __init__(self, message, report=None):
        super().__init__(message)
        self.report = report


class GateUsage(ValueError):
    """Bad arguments to assert_stable (unknown quantity, framework not installed, bad profile)."""


def gate(fn, quantity, framework=None, **options):
    """Run the gate and return its :class:`~infoaudit.gate.core.GateReport` (never raises on failure)."""
    from ..harness.frameworks import GateUsageError
    from .core import run_gate

    unknown = set(options) - set(O.BY_DEST) - {"inputs"}
    if unknown:
        raise GateUsage(f"unknown option(s) {', '.join(sorted(unknown))}; known: "
                        f"{', '.join(o.dest for o in O.OPTIONS if not o.cli_only)}")
    explicit = {k: v for k, v in options.items() if v is not None}
    merged = dict(O.PYTEST_DEFAULTS)
    merged.update(explicit)
    try:
        cfg = O.tool_config()
        opts = O.resolve(merged, cfg)
    except ValueError as e:
        raise GateUsage(str(e)) from None
    if framework is None:
        framework = options.get("framework") or O.PYTEST_DEFAULTS.get("framework")
    try:
        return run_gate(fn, quantity, framework, dtypes=opts["dtype"], device=opts["device"],
                          profile=opts["profile"], examples=opts["examples"], seed=opts["seed"],
                          timeout=opts["timeout"], relative=opts["relative"], baseline=opts["baseline"],
                          flush_to_zero=opts["flush_to_zero"], user_profiles=opts["profiles_config"],
                          grad=opts["grad"], compile=opts["compile"], autocast=opts["autocast"],
                          relative_to=opts["relative_to"])
    except GateUsageError as e:
        raise GateUsage(str(e)) from None


def assert_stable(fn, quantity, framework=None, **options):
    """Assert that ``fn`` is a numerically sound implementation of ``quantity``.

    ``fn`` takes the quantity's arguments in the DESIGN table order as arrays of ``framework``
    ("numpy", "torch", "jax"; inferred from fn's module when omitted) in the audited dtype.
    Options (all optional): dtype ("float32,float16" or a list), device, profile, examples, seed,
    timeout, relative, baseline, flush_to_zero, grad (also audit the gradients through the
    framework's autodiff). Returns the report when every dtype passes.
    """
    __tracebackhide__ = True  # pytest: show the report, not this frame
    from .cli import render_text

    if isinstance(options.get("dtype"), (list, tuple)):
        options["dtype"] = ",".join(options["dtype"])
    rep = gate(fn, quantity, framework, **options)
    if not rep.passed:
        raise GateFailure("\n" + render_text(rep), rep)
    return rep


__all__ = ["assert_stable", "gate", "GateFailure", "GateUsage"]

"""The gate (``infoaudit gate``, ``infoaudit.assert_stable``): one user implementation of one
quantity judged per dtype, exit code 0 pass / 1 fail / 2 usage.

Public: :func:`run_gate` -> :class:`GateReport`, and what it is made of (below). Internal parts,
one job each:

* :mod:`.core` -- :func:`run_gate`: every dtype, then the gradients, into a :class:`GateReport`;
* :mod:`.verdict` -- one case's verdict (:class:`Context`, :class:`Judgement`, :func:`judge`);
* :mod:`.search` -- one dtype: the probes and corpus, the seeded search, the failure shrunk;
* :mod:`.report` -- :class:`DtypeResult` and :class:`GateReport`;
* :mod:`.gradients` -- ``--grad``: the implementation's VJPs judged through its framework's autodiff;
* :mod:`.profiles` -- pass / fail rules of the ``default`` and ``strict`` profiles and user TOML;
* :mod:`.cli` -- the command line (text, JSON, JUnit, GitHub annotations);
* :mod:`.api` -- the Python API (``gate``, ``assert_stable``) used by the pytest plugin.

Calling the implementation (framework adapters, timeouts, flush-to-zero probes) is
:mod:`infoaudit.harness`; the verdicts come from :mod:`infoaudit.judging`.
"""

__all__ = ["run_gate", "GateReport", "DtypeResult", "Context", "Judgement", "FlushFlags", "judge", "grade_case",
           "probes", "fixed_cases", "reproducer", "gate_dtype", "describe_impl", "GateUsageError", "Harness",
           "Outcome", "call_with_timeout", "default_dtypes", "exact_values", "framework_adapter", "infer_framework",
           "install_watchdog", "reduce_to_unit", "search_strategy"]

_WHERE = {
    "run_gate": ".core",
    "describe_impl": ".core",
    "GateReport": ".report",
    "DtypeResult": ".report",
    "Context": ".verdict",
    "Judgement": ".verdict",
    "FlushFlags": ".verdict",
    "judge": ".verdict",
    "grade_case": ".verdict",
    "gate_dtype": ".search",
    "probes": "..probes",
    "fixed_cases": "..probes",
    "search_strategy": "..probes",
    "GateUsageError": "..harness.frameworks",
    "default_dtypes": "..harness.frameworks",
    "framework_adapter": "..harness.frameworks",
    "infer_framework": "..harness.frameworks",
    "Harness": "..harness.calls",
    "Outcome": "..harness.calls",
    "reduce_to_unit": "..harness.calls",
    "call_with_timeout": "..harness.timeout",
    "install_watchdog": "..harness.timeout",
    "exact_values": "..reference.cache",
    "reproducer": "..reproducers.user:value_reproducer",
}


def __getattr__(name):
    """The public names, imported on first use (``infoaudit gate --help`` / ``run --help`` import
    only the command's module and what it needs)."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, _, attr = _WHERE[name].partition(":")
    value = getattr(importlib.import_module(module, __name__), attr or name)
    globals()[name] = value
    return value

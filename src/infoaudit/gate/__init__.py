"""The gate (``infoaudit gate``, ``infoaudit.assert_stable``): one user implementation of one
quantity judged per dtype, exit code 0 pass / 1 fail / 2 usage.

Public: :func:`run_gate` -> :class:`GateReport`, and what it is made of (below). Internal parts,
one job each:

* :mod:`.core` -- :func:`run_gate`: every dtype, then the gradients, into a :class:`GateReport`;
* :mod:`.judge` -- one case's verdict (:class:`Context`, :class:`Judgement`, :func:`judge`);
* :mod:`.search` -- one dtype: the probes and corpus, the seeded search, the failure shrunk;
* :mod:`.report` -- :class:`DtypeResult` and :class:`GateReport`;
* :mod:`.gradients` -- ``--grad``: the implementation's VJPs judged through its framework's autodiff;
* :mod:`.profiles` -- pass / fail rules of the ``default`` and ``strict`` profiles and user TOML;
* :mod:`.cli` -- the command line (text, JSON, JUnit, GitHub annotations);
* :mod:`.api` -- the Python API (``gate``, ``assert_stable``) used by the pytest plugin.

Calling the implementation (framework adapters, timeouts, flush-to-zero probes) is
:mod:`infoaudit.harness`; the verdicts come from :mod:`infoaudit.judging`.
"""

from ..harness.calls import Harness, Outcome, reduce_to_unit
from ..harness.frameworks import GateUsageError, default_dtypes, framework_adapter, infer_framework
from ..harness.timeout import call_with_timeout, install_watchdog
from ..probes import fixed_cases, probes, search_strategy
from ..reference.cache import exact_values
from ..reproducers.user import value_reproducer as reproducer
from .core import describe_impl, run_gate
from .judge import Context, FlushFlags, Judgement, grade_case, judge
from .report import DtypeResult, GateReport
from .search import gate_dtype

__all__ = ["run_gate", "GateReport", "DtypeResult", "Context", "Judgement", "FlushFlags", "judge", "grade_case",
           "probes", "fixed_cases", "reproducer", "gate_dtype", "describe_impl", "GateUsageError", "Harness",
           "Outcome", "call_with_timeout", "default_dtypes", "exact_values", "framework_adapter", "infer_framework",
           "install_watchdog", "reduce_to_unit", "search_strategy"]

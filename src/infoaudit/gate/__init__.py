"""The gate (``infoaudit gate``, ``infoaudit.assert_stable``): one user implementation of one
quantity judged per dtype, exit code 0 pass / 1 fail / 2 usage.

* :mod:`.core` -- probes, the search per dtype, the forward verdicts, :func:`.core.run_gate`;
* :mod:`.gradients` -- ``--grad``: the implementation's VJPs judged through its framework's autodiff;
* :mod:`.profiles` -- pass / fail rules of the ``default`` and ``strict`` profiles and user TOML;
* :mod:`.cli` -- the command line (text, JSON, JUnit, GitHub annotations);
* :mod:`.api` -- the Python API (``gate``, ``assert_stable``) used by the pytest plugin.

Calling the implementation (framework adapters, timeouts, flush-to-zero probes) is
:mod:`infoaudit.harness`; the verdicts come from :mod:`infoaudit.judging`.
"""

__all__: list = []

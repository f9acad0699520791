"""Calling code under test, shared by the run audit and the gate.

* :mod:`.frameworks` -- numpy / torch / JAX adapters, the framework a function uses, default dtypes;
* :mod:`.timeout` -- the one per-call timeout (SIGALRM in the main thread, else a daemon thread);
* :mod:`.calls` -- :class:`~.calls.Harness`: one call checked (raised, hung, shape, dtype, mutation);
* :mod:`.loading` -- ``--impl MODULE:FUNCTION`` imported, with one clear line for every failure;
* :mod:`.ftz` -- flush-to-zero / denormals-are-zero probes per framework, dtype and device.
"""

__all__: list = []

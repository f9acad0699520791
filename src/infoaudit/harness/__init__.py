"""Calling code under test, shared by the run audit and the gate.

* :mod:`.calls` -- framework adapters (numpy / torch / JAX), calls under a timeout, outcomes;
* :mod:`.ftz` -- flush-to-zero / denormals-are-zero probes per framework, dtype and device.
"""

__all__: list = []

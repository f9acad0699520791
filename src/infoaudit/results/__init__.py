"""Results documents across runs and environments.

* :mod:`.fingerprint` -- the environment fingerprint recorded in every results / gate / bench JSON
  (package versions, CPU flags, devices and driver, FTZ/DAZ as probed, TF32 / matmul precision,
  XLA_FLAGS, threads);
* :mod:`.compare_cells` -- loading and validating a results document (one clear line on bad
  input) and the per-cell comparison with its "worse" rule, shared by ``infoaudit diff``,
  ``gate --baseline`` and ``run --corpus-from``;
* :mod:`.diff` -- ``infoaudit diff OLD.json NEW.json``: cells, findings (re-run here), fingerprint
  differences; Markdown, HTML and JSON.

This package imports nothing heavy at import time (no torch, no jax); the submodules are
imported where they are used.
"""

__all__ = []

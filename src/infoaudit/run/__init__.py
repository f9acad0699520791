"""The run audit (``infoaudit run``): every quantity x backend x variant x dtype against the exact
reference, values and gradients, into one results JSON.

Public: :func:`search` (one quantity and dtype on any targets: backends, ``(backend, variant)``
pairs or plain callables) and :func:`run_group` (the process-pool task of ``infoaudit run``).
Internal parts, one job each:

* :mod:`.profiles` -- run profiles (examples, shapes, shrink budget) and the exact reference's
  deterministic precision budget per input;
* :mod:`.targets` -- the cells of a group (backend x variant x device, or a user's callable);
* :mod:`.group` -- a group of cells judged on shared inputs, each cell's worst inputs per finding;
* :mod:`.search` -- the corpus, the hypothesis phases and :func:`search`;
* :mod:`.findings` -- shrinking each finding to a reproducer and running it on the other cells;
* :mod:`.shrink` -- the structural input shrinker handed a "still fails" predicate;
* :mod:`.cells` -- a cell's record in the results JSON;
* :mod:`.tasks` -- the process-pool tasks (:func:`run_group`, the softmax precision panel);
* :mod:`.gradients` -- the same audit for vector-Jacobian products (torch / JAX autodiff);
* :mod:`.cli` -- ``infoaudit run``: the process pool, the cluster executor, the results file.

The judge, the metrics and the comparisons it uses live in :mod:`infoaudit.judging`, the results
schema in :mod:`infoaudit.results`, the reproducers in :mod:`infoaudit.reproducers`.
"""

from .group import METRICS
from .profiles import (
           MIN_REFERENCE_BITS,
           PROFILE_SETTINGS,
           float_elements,
           magnitude_bits,
           reference_precision_cap,
)
from .search import SearchResult, search, stack_cases
from .targets import Target, cell_key, targets_for
from .tasks import run_group, softmax_precision

__all__ = ["search", "SearchResult", "run_group", "softmax_precision", "targets_for", "Target", "cell_key",
           "stack_cases", "PROFILE_SETTINGS", "MIN_REFERENCE_BITS", "reference_precision_cap", "float_elements",
           "magnitude_bits", "METRICS"]

"""The run audit (``infoaudit run``): every quantity x backend x variant x dtype against the exact
reference, values and gradients, into one results JSON.

* :mod:`.search` -- groups of cells on shared inputs, the hypothesis search, shrinking, cell records;
* :mod:`.gradients` -- the same for vector-Jacobian products (torch / JAX autodiff);
* :mod:`.shrink` -- the input shrinker handed a "still fails" predicate;
* :mod:`.cli` -- ``infoaudit run``: the process pool, the cluster executor, the results file.

The judge, the metrics and the comparisons it uses live in :mod:`infoaudit.judging`, the results
schema in :mod:`infoaudit.results`, the reproducers in :mod:`infoaudit.reproducers`.
"""

__all__: list = []

"""The run audit (``infoaudit run``): every quantity x backend x variant x dtype against the exact
reference, values and gradients, into one results JSON.

Public: :func:`search` (one quantity and dtype on any targets: backends, ``(backend, variant)``
pairs or plain callables) and :func:`run_group` (the process-pool task of ``infoaudit run``).
Internal parts, one job each:

* :mod:`.profiles` -- run profiles (examples, shapes, shrink budget) and the exact reference's
  deterministic precision budget per input;
* :mod:`.targets` -- the cells of a group (backend x variant x device, or a user's callable);
* :mod:`.group` -- a group of cells judged on shared inputs, each cell's worst inputs per finding;
* :mod:`.driver` -- the corpus, the hypothesis phases and :func:`search`;
* :mod:`.findings` -- shrinking each finding to a reproducer and running it on the other cells;
* :mod:`.shrink` -- the structural input shrinker handed a "still fails" predicate;
* :mod:`.cells` -- a cell's record in the results JSON;
* :mod:`.tasks` -- the process-pool tasks (:func:`run_group`, the softmax precision panel);
* :mod:`.gradients`, :mod:`.grad_group` -- the same audit for vector-Jacobian products (torch / JAX
  autodiff): the search and cell records, and the group of VJP cells on shared inputs;
* :mod:`.cli` -- ``infoaudit run``: the process pool, the cluster executor, the results file.

The judge, the metrics and the comparisons it uses live in :mod:`infoaudit.judging`, the results
schema in :mod:`infoaudit.results`, the reproducers in :mod:`infoaudit.reproducers`.
"""

__all__ = ["search", "SearchResult", "run_group", "softmax_precision", "targets_for", "Target", "cell_key",
           "stack_cases", "PROFILE_SETTINGS", "MIN_REFERENCE_BITS", "reference_precision_cap", "float_elements",
           "magnitude_bits", "METRICS"]

_WHERE = {
    "search": ".driver",
    "SearchResult": ".driver",
    "stack_cases": ".driver",
    "run_group": ".tasks",
    "softmax_precision": ".tasks",
    "targets_for": ".targets",
    "Target": ".targets",
    "cell_key": ".targets",
    "PROFILE_SETTINGS": ".profiles",
    "MIN_REFERENCE_BITS": ".profiles",
    "reference_precision_cap": ".profiles",
    "float_elements": ".profiles",
    "magnitude_bits": ".profiles",
    "METRICS": ".group",
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

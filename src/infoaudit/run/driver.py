"""The adversarial audit runner: corpus first, then hypothesis search, then shrinking.

One *group* is a (quantity, dtype) pair; its *cells* are the targets (backend x variant x device,
or a user's callable) that support the dtype. Every generated input is judged on every cell of
its group against **one** evaluation of the exact reference (the expensive part), so adding a
backend costs only its own calls.

For each group:

1. the fixed corpus (:mod:`infoaudit.corpus`: seed examples, the edge cases of docs/design.md, past findings);
2. a hypothesis search over :func:`infoaudit.strategies.cases` with ``target()`` climbing the
   largest finite ULP error of every cell;
3. a separate search (``focus="nonfinite"``: huge values, thresholds, masks, zeros, subnormals)
   whose target is the number of non-finite mismatches and invariant violations;
4. every input is judged on every cell by the one judge (:func:`infoaudit.judging.judge`): each
   element gets a grade (``correctly_rounded`` ... ``unstable``, or the classes ``flushed``,
   ``invariant``, ``nonfinite``; docs/grades.md), and the cell accumulates the counts per grade,
   a verdict under a judging profile (``default``: envelope and better pass; ``strict``:
   conditioned and better) and the one line that explains it. The platform's flush-to-zero
   behaviour is probed per framework, device and dtype (:mod:`infoaudit.harness.ftz`), as the gate does;
5. for each cell, the worst input per finding (``grade``: the worst element by grade and error
   over its allowance; ``well_conditioned``: the largest relative error beyond the conditioning
   at an input with condition number kappa <= ``WELL_CONDITIONED``; ``nonfinite``; ``invariant``)
   is shrunk to a minimal reproducer by the structural shrinker of :mod:`.shrink`, handed a
   predicate that re-evaluates the finding (one unit, then ddmin over row entries, then simpler
   values); the worst ``ulp`` and ``rel`` inputs are kept as found. Each finding is then run on
   the other cells of its group, so the report can name the best implementation on that input.

Everything is deterministic for a given seed (hypothesis ``@seed`` per group; shrinking has a
step budget, not a time budget), and nothing depends on the machine's speed: the exact reference
gets a deterministic *precision budget* per input (:func:`reference_precision_cap`: ``n (p + e)^2
<= reference_work`` for an input of ``n`` float values whose largest has binary exponent ``e``),
and an input it cannot decide within ``p`` bits is skipped and counted (``reference_over_budget``),
never judged against a guess. :func:`search` drives it for one quantity/dtype and any
targets (backend names, backend modules, ``(backend, variant)`` pairs or plain callables), which
is what the gate reuses for a user's function; :func:`run_group` is the process-pool task of
``infoaudit run``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .. import quantities as Q
from ..dtypes import dtype_name
from .cells import cell_dict
from .findings import compare_on_findings, shrink_findings
from .group import Group
from .profiles import DEFAULT_REFERENCE_WORK, PROFILE_SETTINGS, group_seed
from .targets import as_targets

__all__ = ["hypothesis_phase", "SearchResult", "search", "stack_cases"]


def hypothesis_phase(group, focus: str, n_examples: int, seed: int, targeted=True, shapes=None):
    """``n_examples`` hypothesis examples of ``group`` (anything with ``q``, ``dtype``,
    ``profile``, ``cells`` and ``evaluate(args, source, recipe) -> {cell: (ulp, score, bad)}``):
    plain exploration, or with ``targeted`` hill-climbing ``target()`` on each cell's largest ULP
    error and error over its allowance (``focus="any"``) or its count of non-finite and invariant
    findings (``focus="nonfinite"``)."""
    if n_examples <= 0:
        return
    from hypothesis import HealthCheck, Phase, given, settings, target
    from hypothesis import seed as hseed

    from .. import strategies

    strat = strategies.cases(group.q.name, group.dtype, group.profile, focus=focus, shapes=shapes)
    names = {i: c.target.name for i, c in enumerate(group.cells)}

    @settings(max_examples=n_examples, database=None, deadline=None, derandomize=False, print_blob=False,
              phases=[Phase.generate, Phase.target], suppress_health_check=list(HealthCheck),
              report_multiple_bugs=False)
    @hseed(seed)
    @given(strat)
    def probe(case):
        res = group.evaluate(case.args, source=f"search:{focus}", recipe=case.recipe)
        if not targeted:
            return
        for i, (top_ulp, top_score, bad) in res.items():
            if focus == "any":
                target(float(math.log2(1.0 + min(top_ulp, 1e300))), label=f"ulp:{names[i]}")
                target(float(math.log2(1.0 + min(top_score, 1e300))), label=f"score:{names[i]}")
            else:
                target(float(bad), label=f"nonfinite:{names[i]}")

    with strategies.without_local_constants():  # same seed, same inputs, whatever was imported
        probe()


@dataclass
class SearchResult:
    quantity: str
    dtype: str
    profile: str
    seed: int
    cells: dict            # cell key -> dict (see cell_dict)
    skipped: list
    examples: int
    seconds: float
    reference_errors: int = 0        # inputs skipped because the reference refused them (over budget included)
    reference_over_budget: int = 0   # of which: past the deterministic precision budget

    @property
    def worst(self) -> dict:
        """{metric: worst-case dict} of the first cell (the single-target case of the gate)."""
        if not self.cells:
            return {}
        return next(iter(self.cells.values()))["worst"]

    def cell(self, key=None) -> dict:
        if key is None:
            return next(iter(self.cells.values()))
        return self.cells[key]


def search(quantity, target, dtype="float32", profile="default", seed=0, *, framework=None, device=None,
           examples=None, nonfinite_examples=None, use_corpus=True, extra_cases=(), corpus_extra=(), shrink=True,
           shrink_steps=None, encode=True, judge_profile="default") -> SearchResult:
    """Adversarial search of ``quantity`` in ``dtype`` on ``target``; the worst inputs per metric.

    ``target``: a backend name ("torch"), a ``(backend, variant)`` pair, a backend module, an
    ``Op`` (with ``framework`` naming the backend whose arrays it takes), a list of
    :class:`Target`, or a plain callable (numpy arrays in, array out; or framework arrays when
    ``framework`` is given). ``examples``/``nonfinite_examples`` override the profile's example
    counts; ``extra_cases``: more ``(label, args)`` inputs run before the search;
    ``corpus_extra``: regression entries ``(label, dtype, args_lists)`` for
    :func:`infoaudit.corpus.cases` (``run --corpus-from``; kept whatever their size);
    ``judge_profile``: the judging profile of the verdicts ("default" or "strict"). With
    ``use_corpus`` the fixed cases are the gate's probes (:func:`.gate.probes`, the inputs on
    which each textbook instability shows) and the shared corpus. Returns a
    :class:`SearchResult` whose ``cells[key]`` holds the summary (max/p99 ULP, max relative
    error, non-finite counts by class, invariant findings, the grades and the verdict) and
    ``worst[metric]`` with the original and the shrunk reproducer (arrays encoded as JSON-able
    dicts when ``encode``).
    """
    t0 = time.perf_counter()
    q = Q.get(quantity)
    d = dtype_name(dtype)
    prof = PROFILE_SETTINGS[profile]
    targets, skipped = as_targets(q, target, d, device, framework)
    targets = [t for t in targets if not t.profiles or profile in t.profiles]   # e.g. compiled: default/thorough
    group = Group(q, d, targets, profile, seed, prof["points"], judge_profile)
    group.shrink_elements = prof.get("shrink_elements")
    group.reference_work = prof.get("reference_work", DEFAULT_REFERENCE_WORK)
    fixed = []
    if use_corpus:
        from .. import corpus
        from ..probes import probes

        cmax = prof.get("corpus_max")
        keep = {lab for lab, _, _ in corpus_extra}
        fixed += [(label, tuple(args)) for label, args in probes(q, d)]
        fixed += [(f"corpus: {label}", args) for label, args in corpus.cases(q, d, extra=list(corpus_extra))
                  if cmax is None or label in keep or sum(np.size(a) for a in args if isinstance(a, np.ndarray)) <= cmax]
    fixed += [(f"case: {label}", tuple(args)) for label, args in extra_cases]
    for labels, args in stack_cases(q, fixed):
        group.evaluate(args, source=labels)
    n_ulp = prof["ulp_examples"] if examples is None else examples
    n_nf = prof["nonfinite_examples"] if nonfinite_examples is None else nonfinite_examples
    # half plain exploration, stratified over the shape menu (every shape, the longest rows
    # included, gets its share), half hill-climbing with target() on the ULP error and the
    # error over its allowance
    from .. import strategies

    menu = strategies.shape_menu(q, profile)
    n_explore = n_ulp // 2
    for k, shape in enumerate(menu):
        share = n_explore // len(menu) + (1 if k < n_explore % len(menu) else 0)
        hypothesis_phase(group, "any", share, group_seed(seed, q.name, d, "explore", k), targeted=False,
                         shapes=[shape])
    hypothesis_phase(group, "any", n_ulp - n_explore, group_seed(seed, q.name, d, "ulp"))
    hypothesis_phase(group, "nonfinite", n_nf, group_seed(seed, q.name, d, "nonfinite"))
    if shrink:
        shrink_findings(group, prof["shrink_steps"] if shrink_steps is None else shrink_steps)
    compare_on_findings(group)
    cells = {c.target.key(q.name, d): cell_dict(group, c, encode) for c in group.cells}
    return SearchResult(q.name, d, profile, seed, cells, [list(s) for s in skipped], group.examples,
                        time.perf_counter() - t0, group.reference_errors, group.reference_over_budget)


def stack_cases(q, cases):
    """Concatenate fixed cases with equal trailing shapes and scalars along the batch axis.

    Returns [(labels per batch row, args)]: one backend call per distinct shape instead of one
    per case (jit backends compile once per shape)."""
    buckets = {}
    order = []
    for label, args in cases:
        key = []
        ok = True
        for a, arg in zip(args, q.args):
            if isinstance(a, np.ndarray):
                if a.ndim < 1:
                    ok = False
                key.append(("a", a.dtype.str, a.shape[1:]))
            else:
                key.append(("s", repr(a)))
        key = tuple(key) if ok else (id(args),)
        if key not in buckets:
            buckets[key] = []
            order.append(key)
        buckets[key].append((label, args))
    out = []
    for key in order:
        items = buckets[key]
        if len(items) == 1 or isinstance(key[0], int):
            for label, args in items:
                first = next(a for a in args if isinstance(a, np.ndarray))
                out.append(([label] * max(1, first.shape[0]), tuple(args)))
            continue
        labels = []
        for label, args in items:
            first = next(a for a in args if isinstance(a, np.ndarray))
            labels += [label] * first.shape[0]
        cols = []
        for i, _ in enumerate(q.args):
            vals = [args[i] for _, args in items]
            cols.append(np.concatenate(vals, axis=0) if isinstance(vals[0], np.ndarray) else vals[0])
        out.append((labels, tuple(cols)))
    return out

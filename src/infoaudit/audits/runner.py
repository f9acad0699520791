"""Moved to :mod:`infoaudit.run.profiles`, :mod:`infoaudit.run.group`, :mod:`infoaudit.run.targets`,
:mod:`infoaudit.run.findings`, :mod:`infoaudit.run.driver`, :mod:`infoaudit.run.cells`,
:mod:`infoaudit.run.tasks`; ``infoaudit.audits.runner`` re-exports its public names.

(The adversarial audit runner: corpus first, then hypothesis search, then shrinking.)
"""
from __future__ import annotations

from ..run.cells import cell_dict
from ..run.driver import SearchResult, hypothesis_phase, search, stack_cases
from ..run.findings import compare_on_findings, shrink_findings
from ..run.group import (
    METRICS,
    SHIFT_INVARIANCE,
    SHRUNK_METRICS,
    CellState,
    Group,
    Worst,
    finding_masks,
    fingerprint,
    invariant_masks,
    judge,
    magnitude_label,
    scores,
    unit_magnitudes,
    why_line,
)
from ..run.profiles import (
    DEFAULT_REFERENCE_WORK,
    MIN_REFERENCE_BITS,
    PROFILE_SETTINGS,
    ReferenceOverBudget,
    exact_of,
    exact_within_budget,
    float_elements,
    group_seed,
    magnitude_bits,
    reference_precision_cap,
)
from ..run.targets import (
    FRAMEWORK_OF,
    Target,
    as_targets,
    cell_key,
    profile_variants,
    targets_for,
    user_targets,
)
from ..run.tasks import PANEL_ROWS, PANEL_SIZES, run_group, shared_logits, softmax_precision

__all__ = ["PROFILE_SETTINGS", "DEFAULT_REFERENCE_WORK", "MIN_REFERENCE_BITS", "METRICS", "SHRUNK_METRICS",
           "SHIFT_INVARIANCE", "reference_precision_cap", "float_elements", "magnitude_bits",
           "ReferenceOverBudget", "exact_within_budget", "group_seed", "Target", "FRAMEWORK_OF",
           "cell_key", "targets_for", "as_targets", "exact_of", "judge", "invariant_masks", "Worst",
           "CellState", "fingerprint", "scores", "why_line", "finding_masks", "Group", "shrink_findings",
           "compare_on_findings", "unit_magnitudes", "magnitude_label", "hypothesis_phase", "SearchResult",
           "search", "stack_cases", "cell_dict", "profile_variants", "user_targets", "run_group",
           "PANEL_SIZES", "PANEL_ROWS", "shared_logits", "softmax_precision"]

"""One judge for run, report, gate and gradients: metrics, scales N and S, grades, invariants.

``judge(quantity, inputs, computed, exact, dtype, ftz=None) -> Judgement`` grades every element
of a computed result (``correctly_rounded``, ``faithful``, ``conditioned``, ``envelope``,
``unstable``; the classes ``flushed``, ``invariant``, ``nonfinite``) and gives the cell's worst
``grade``, its ``grades`` (counts) and a ``verdict(profile)`` with a one-line ``explain``.
``grade_elements`` is the same core with caller-supplied scales (gradients). docs/grades.md
states the contract: c(n), the scales, the per-quantity S table and the invariants.

Modules: :mod:`.grades` (the grades and c(n)), :mod:`.scales` (N and S), :mod:`.gradient_scales`
(S of a gradient: the closed-form VJP's terms), :mod:`.invariants`
(the one checker), :mod:`.tags` (per-quantity facts), :mod:`.core` (judging), :mod:`.profiles`
(which grade passes).
"""
from __future__ import annotations

from . import profiles
from .core import Judgement, format_ulps, grade_elements, judge
from .grades import (
                     CLASSES,
                     CONDITIONED,
                     CORRECTLY_ROUNDED,
                     ENVELOPE,
                     FAITHFUL,
                     FLUSHED,
                     GRADES,
                     INVARIANT,
                     NONFINITE,
                     UNSTABLE,
                     allowance_constant,
                     merge_grades,
                     worst_grade,
)
from .gradient_scales import GRAD_SCALES, grad_scale, grad_scale_reason
from .invariants import InvariantCheck, check_invariants
from .profiles import DEFAULT, STRICT, Profile
from .scales import N_SAFETY, SCALES, envelope, reduction_length, scale_reason, sensitivity
from .tags import tags

__all__ = ["judge", "grade_elements", "Judgement", "format_ulps", "profiles", "Profile", "DEFAULT", "STRICT",
           "GRADES", "CLASSES", "CORRECTLY_ROUNDED", "FAITHFUL", "FLUSHED", "CONDITIONED", "ENVELOPE", "UNSTABLE",
           "INVARIANT", "NONFINITE", "allowance_constant", "merge_grades", "worst_grade", "check_invariants",
           "InvariantCheck", "N_SAFETY", "SCALES", "sensitivity", "envelope", "scale_reason", "tags", "GRAD_SCALES",
           "grad_scale", "grad_scale_reason", "reduction_length"]

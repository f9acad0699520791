"""Per-quantity facts the judge needs, read from the quantity registry's ``tags``
(:data:`infoaudit.quantities.TAGS` describes every tag; the judge uses these):

``nonnegative``          y >= 0 (losses, divergences, entropies, softplus)
``nonpositive``          y <= 0 (log-probabilities)
``unit_interval``        0 <= y <= 1 (probabilities; binary entropy in bits)
``row_sums_to_one``      each row of the result sums to 1 (softmax)
``max_log_n``            y <= log n, n = the reduction length (row length, table size), in the
                         quantity's unit (log2 for bits)
``max_log_ny``           y <= log ny, ny = a table's last axis (H(Y | X))
``max_log_min_nx_ny``    y <= log min(nx, ny) (I(X; Y))
``logsumexp_bounds``     max z <= y <= max z + log n
"""
from __future__ import annotations

from .. import quantities

__all__ = ["TAGS", "tags", "has_tag"]

TAGS = ("nonnegative", "nonpositive", "unit_interval", "row_sums_to_one", "max_log_n", "max_log_ny",
        "max_log_min_nx_ny", "logsumexp_bounds")


def tags(quantity) -> frozenset:
    """The judge's tags of a quantity (a registry entry or its name)."""
    return frozenset(t for t in quantities.get(quantity).tags if t in TAGS)


def has_tag(quantity, tag: str) -> bool:
    if tag not in TAGS:
        raise ValueError(f"unknown tag {tag!r}; tags: {', '.join(TAGS)}")
    return tag in tags(quantity)

"""Per-quantity facts the judge needs, read from the quantity registry's ``tags``.

The registry (:mod:`infoaudit.quantities`) is where such facts belong; until its entries carry
these tags, :func:`tags` falls back to :data:`TEMPORARY_TAGS` below. Delete the table once every
registry entry has its tags (an entry with any tag is read from the registry alone).

Tags (what the judge does with them is in :mod:`.invariants`):

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

__all__ = ["TAGS", "TEMPORARY_TAGS", "tags", "has_tag"]

TAGS = ("nonnegative", "nonpositive", "unit_interval", "row_sums_to_one", "max_log_n", "max_log_ny",
        "max_log_min_nx_ny", "logsumexp_bounds")

_NN = ("nonnegative",)

# TEMPORARY: remove when quantities.REGISTRY entries carry these tags.
TEMPORARY_TAGS = {
    "softmax": ("unit_interval", "row_sums_to_one"),
    "log_softmax": ("nonpositive",),
    "logsumexp": ("logsumexp_bounds",),
    "sigmoid": ("unit_interval",),
    "softplus": _NN,
    "log_sigmoid": ("nonpositive",),
    "entropy": ("nonnegative", "max_log_n"),
    "entropy_bits": ("nonnegative", "max_log_n"),
    "self_information_bits": _NN,
    "binary_entropy_bits": ("unit_interval",),
    "kl_divergence": _NN,
    "cross_entropy_probs": _NN,
    "cross_entropy": _NN,
    "nll_loss": _NN,
    "binary_cross_entropy": _NN,
    "binary_cross_entropy_with_logits": _NN,
    "label_smoothing_cross_entropy": _NN,
    "distillation_loss": _NN,
    "rlhf_kl_penalty": _NN,
    "gaussian_kl": _NN,
    "joint_entropy": ("nonnegative", "max_log_n"),
    "conditional_entropy": ("nonnegative", "max_log_ny"),
    "mutual_information": ("nonnegative", "max_log_min_nx_ny"),
}


def tags(quantity) -> frozenset:
    """The judge's tags of a quantity (a registry entry or its name).

    Read from the registry entry's ``tags`` when it has any; otherwise from the temporary table
    (an unknown name there gives no tags: no invariant is checked).
    """
    q = quantities.get(quantity)
    own = tuple(getattr(q, "tags", ()) or ())
    if own:
        return frozenset(t for t in own if t in TAGS)
    return frozenset(TEMPORARY_TAGS.get(q.name, ()))


def has_tag(quantity, tag: str) -> bool:
    if tag not in TAGS:
        raise ValueError(f"unknown tag {tag!r}; tags: {', '.join(TAGS)}")
    return tag in tags(quantity)

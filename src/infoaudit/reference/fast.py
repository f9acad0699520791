"""Certified float64 fast paths (placeholder table; filled in by the fast-path work).

FAST maps a quantity name to ``fn(*validated_args) -> (hi, lo, ok)`` or None: float64 arrays of
the output shape holding the double-double of the exact value where ``ok`` is True (the rounding
in every audited format is certified), anything where it is False (escalated to mpmath).
"""
FAST: dict = {}

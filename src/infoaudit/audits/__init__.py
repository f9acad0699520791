"""Audits: error metrics, differential comparison, the adversarial runner and gate profiles."""

__all__ = []

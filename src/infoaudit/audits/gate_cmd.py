"""Moved to :mod:`infoaudit.gate.cli`, :mod:`infoaudit.harness.loading`;
``infoaudit.audits.gate_cmd`` re-exports its public names.

(``infoaudit gate``: gate a user's own implementation in CI.)
"""
from __future__ import annotations

from ..gate.cli import (
    add_arguments,
    github_annotations,
    grad_line,
    json_document,
    main,
    render_junit,
    render_text,
    verdict_line,
)
from ..harness.loading import UsageError, load_impl

__all__ = ["add_arguments", "UsageError", "load_impl", "verdict_line", "grad_line", "render_text",
           "github_annotations", "render_junit", "json_document", "main"]

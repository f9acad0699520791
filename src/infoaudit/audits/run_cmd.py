"""Moved to :mod:`infoaudit.run.cli`; ``infoaudit.audits.run_cmd`` re-exports its public names.

(``infoaudit run``: audit every quantity x backend x variant x dtype x device; write the report.)
"""
from __future__ import annotations

from ..run.cli import (
    DEFAULT_OUTPUT,
    PAUSE_ENV,
    PAUSED_MESSAGE,
    RESULTS_NAME,
    WORKER_GRACE_S,
    Progress,
    Terminated,
    add_arguments,
    close_pool,
    main,
)

__all__ = ["DEFAULT_OUTPUT", "RESULTS_NAME", "PAUSE_ENV", "PAUSED_MESSAGE", "WORKER_GRACE_S", "Terminated",
           "add_arguments", "close_pool", "Progress", "main"]

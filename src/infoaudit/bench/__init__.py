"""Throughput: the backends side by side, FP16 vs FP32 softmax, against this machine's limits.

``infoaudit bench`` times every benchmarked op of every backend's registry (the same ops the
audits judge) in every dtype, shape and device, measures the machine's copy bandwidth and exp
throughput in the same run, and writes a JSON report (schema ``infoaudit.bench``, versioned)
rendered to Markdown, HTML and PNG. Modules: :mod:`.timing` (adaptive timer), :mod:`.cells`
(ops, inputs, byte counts), :mod:`.bandwidth` (limits), :mod:`.seed` (the chapter's arithmetic),
:mod:`.runner` (the run), :mod:`.render` (report), :mod:`.bench_cmd` (CLI).
"""
from __future__ import annotations

SCHEMA = "infoaudit.bench"
SCHEMA_VERSION = 1

__all__ = ["SCHEMA", "SCHEMA_VERSION"]

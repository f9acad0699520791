"""``infoaudit merge A.json B.json ... -o DIR``: the shards of a run as one results.json and report.

Exit status: 0 merged; 2 an input cannot be read, or the inputs are not the complete shards of
one run (see :func:`.merge.merge_documents`), with one line on stderr.
"""
from __future__ import annotations

import os
import sys

from ..results import schema as R
from .merge import MergeError, merge_documents

__all__ = ["add_arguments", "main", "RESULTS_NAME"]

RESULTS_NAME = "results.json"


def add_arguments(p):
    p.add_argument("inputs", nargs="+", metavar="RESULTS", help="results.json of each shard (infoaudit run --shard i/N)")
    p.add_argument("--output", "-o", default="reports", help="output folder (merged results.json + report)")
    p.add_argument("--no-report", action="store_true", help="only write results.json")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary line")


def main(args) -> int:
    docs = []
    for path in args.inputs:
        try:
            docs.append(R.load(path))
        except (OSError, ValueError) as e:
            print(f"infoaudit merge: {path}: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
    try:
        doc, warnings = merge_documents(docs, args.inputs)
    except MergeError as e:
        print(f"infoaudit merge: {e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"infoaudit merge: warning: {w}", file=sys.stderr)
    path = os.path.join(args.output, RESULTS_NAME)
    R.write_atomic(path, doc)
    if not args.quiet:
        print(f"results: {path} ({len(doc['cells'])} cells from {len(docs)} documents)", file=sys.stderr)
    if args.no_report:
        return 0
    from ..report import render

    files = render(doc, args.output)
    if not args.quiet:
        print("report: " + ", ".join(files[:3]) + (f" (+{len(files) - 3} plots)" if len(files) > 3 else ""),
              file=sys.stderr)
    return 0

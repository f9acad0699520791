"""``infoaudit report RESULTS.json``: render a results document to Markdown, HTML and PNG plots."""
from __future__ import annotations

import os
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(p):
    p.add_argument("results", help="results JSON written by `infoaudit run`")
    p.add_argument("--output", "-o", default=None, help="output folder (default: the folder of the results file)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")


def main(args) -> int:
    from ..results import schema as R
    from . import render  # the function (the Markdown/HTML module is .documents)

    try:
        doc = R.load(args.results)
    except FileNotFoundError:
        print(f"infoaudit report: {args.results}: no such file", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"infoaudit report: {e}", file=sys.stderr)
        return 2
    out = args.output or os.path.dirname(os.path.abspath(args.results))
    files = render(doc, out, plots=not args.no_plots)
    for f in files[:2]:
        print(f)
    if len(files) > 2:
        print(f"{len(files) - 2} plots in {os.path.join(out, 'plots')}")
    return 0

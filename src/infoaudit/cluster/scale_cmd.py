"""``infoaudit scale RESULTS.json``: a run's task durations projected on 1, 2, 8, 32, 128 workers.

    infoaudit scale reports/results.json                       # the run's own profile
    infoaudit scale default/results.json --extrapolate thorough --from quick/results.json

Prints the scale section as Markdown (the model: :mod:`infoaudit.cluster.scale`); ``-o DIR``
also writes ``scale.json`` and ``scale.md``. With ``--extrapolate PROFILE --from OTHER`` the task
durations of PROFILE are estimated from RESULTS and OTHER, two runs of different profiles
(:func:`.scale_doc.extrapolate`: linear in the search examples, a lower estimate); without
``--from``, proportional to the examples from RESULTS alone. Exit status 0,
or 2 with one line when an input cannot be read.
"""
from __future__ import annotations

import sys

from ..results import schema as R
from .scale import DEFAULT_WORKERS, project
from .scale_doc import EPILOGUE, extrapolate, render_markdown, scale_section, write_scale

__all__ = ["add_arguments", "main"]


def add_arguments(p):
    p.add_argument("results", metavar="RESULTS", help="results.json of a run (a cluster run's task stream is used)")
    p.add_argument("--workers", default=",".join(str(w) for w in DEFAULT_WORKERS),
                   help="comma-separated worker counts to project on")
    p.add_argument("--overhead", type=float, default=None, metavar="S",
                   help="seconds added to every task (default: the measured dispatch overhead of a cluster run, else 0)")
    p.add_argument("--extrapolate", default="", choices=("", "quick", "default", "thorough"),
                   help="project this profile instead, its durations estimated from RESULTS and --from")
    p.add_argument("--from", dest="other", default="", metavar="OTHER",
                   help="with --extrapolate: results.json of a run of another profile (without: durations "
                        "proportional to the search examples)")
    p.add_argument("--output", "-o", default="", help="also write scale.json and scale.md into this folder")


def main(args) -> int:
    try:
        workers = tuple(int(w) for w in args.workers.split(",") if w.strip())
        if not workers or min(workers) < 1:
            raise ValueError
    except ValueError:
        print(f"infoaudit scale: --workers {args.workers!r}: expected positive integers, e.g. 8,32,128", file=sys.stderr)
        return 2
    if args.other and not args.extrapolate:
        print("infoaudit scale: --from goes with --extrapolate", file=sys.stderr)
        return 2
    try:
        doc = R.load(args.results)
        other = R.load(args.other) if args.other else None
    except (OSError, ValueError) as e:
        print(f"infoaudit scale: {e}", file=sys.stderr)
        return 2
    section = scale_section(doc, workers, overhead_s=args.overhead)
    if args.extrapolate:
        try:
            ext = extrapolate(other, doc, args.extrapolate)
        except (ValueError, KeyError) as e:
            print(f"infoaudit scale: {e}", file=sys.stderr)
            return 2
        epi = sum(t["seconds"] for t in ext["tasks"] if t["task"] == EPILOGUE)
        body = [t["seconds"] for t in ext["tasks"] if t["task"] != EPILOGUE]
        section = {"profile": args.extrapolate,
                   "source": f"extrapolation from {args.other + ' and ' if args.other else ''}{args.results}",
                   "cells": None, "elapsed_s": None, "cells_per_s": None, "measured": None, "model": ext["model"],
                   "projection": project(body, workers, epilogue_s=epi,
                                         overhead_s=section["projection"]["overhead_s"]),
                   "tasks": ext["tasks"]}
    print(render_markdown(section))
    if args.output:
        write_scale(section, args.output)
    return 0

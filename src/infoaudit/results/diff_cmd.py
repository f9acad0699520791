"""``infoaudit diff OLD.json NEW.json``: what changed between two runs' results.

    infoaudit diff old/results.json new/results.json --output diff/
    infoaudit diff cpu/results.json cuda/results.json --match device:cpu=cuda
    infoaudit diff run/results.json run/results.json --match variant:eager=jit

Writes ``diff.md``, ``diff.html`` and ``diff.json`` (``"schema": "infoaudit.diff"``) into
``--output`` (default ``./infoaudit-diff``) and prints the Markdown summary. Exit status: 0 nothing
got worse, 1 at least one cell got worse (the rule: :mod:`infoaudit.results.compare_cells`),
2 bad input (a file that is missing, unreadable, not JSON, or not a results document; a bad
option): one line on stderr.
"""
from __future__ import annotations

import json
import os
import sys

__all__ = ["EXIT_OK", "EXIT_WORSE", "EXIT_USAGE", "add_arguments", "main"]

EXIT_OK, EXIT_WORSE, EXIT_USAGE = 0, 1, 2


def add_arguments(parser):
    from .compare_cells import Rule

    r = Rule()
    parser.add_argument("old", metavar="OLD.json", help="results.json of the earlier / reference run")
    parser.add_argument("new", metavar="NEW.json", help="results.json of the run to judge")
    parser.add_argument("--output", "-o", default="infoaudit-diff",
                        help="folder for diff.md, diff.html and diff.json (default: ./infoaudit-diff)")
    parser.add_argument("--match", action="append", default=[], metavar="FIELD:OLD=NEW",
                        help="compare OLD's cells with FIELD=OLD to NEW's with FIELD=NEW "
                             "(e.g. device:cpu=cuda, variant:eager=jit); repeatable")
    parser.add_argument("--ulp-factor", type=float, default=r.ulp_factor,
                        help=f"a cell is worse when its max ULP grew by more than this factor ... (default {r.ulp_factor:g})")
    parser.add_argument("--ulp-floor", type=float, default=r.ulp_floor,
                        help=f"... and is above this many ULP (default {r.ulp_floor:g})")
    parser.add_argument("--cae-factor", type=float, default=r.cae_factor,
                        help=f"gradient cells: factor on the max condition-aware error (default {r.cae_factor:g})")
    parser.add_argument("--cae-floor", type=float, default=r.cae_floor,
                        help=f"gradient cells: floor of the condition-aware error (default {r.cae_floor:g})")
    parser.add_argument("--nonfinite-slack", type=int, default=r.nonfinite_slack,
                        help="non-finite results may grow by this many before a cell is worse (default 0)")
    parser.add_argument("--missing-is-worse", action="store_true",
                        help="a cell that ran in OLD and is missing from NEW counts as worse")
    parser.add_argument("--no-rerun", action="store_true",
                        help="do not re-run the findings' reproducers in this environment")
    parser.add_argument("--rerun-limit", type=int, default=60, help="re-run at most this many cases (default 60)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the verdict line")
    parser.epilog = "exit status: 0 nothing got worse, 1 something got worse, 2 bad input."


def _err(msg) -> int:
    print(f"infoaudit diff: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def main(args) -> int:
    from . import diff as D
    from .compare_cells import DocumentError, Rule, load_document, parse_match

    try:
        matches = tuple(parse_match(m) for m in args.match)
    except ValueError as e:
        return _err(str(e))
    for name in ("ulp_factor", "ulp_floor", "cae_factor", "cae_floor"):
        v = getattr(args, name)
        if not (v == v) or v < 0 or v == float("inf"):
            return _err(f"--{name.replace('_', '-')} {v!r}: expected a finite number >= 0")
    if args.nonfinite_slack < 0 or args.rerun_limit < 0:
        return _err("--nonfinite-slack and --rerun-limit must be >= 0")
    try:
        old = load_document(args.old)
        new = load_document(args.new)
    except DocumentError as e:
        return _err(str(e))
    rule = Rule(ulp_factor=args.ulp_factor, ulp_floor=args.ulp_floor, cae_factor=args.cae_factor,
                cae_floor=args.cae_floor, nonfinite_slack=args.nonfinite_slack,
                missing_is_worse=args.missing_is_worse)
    d = D.diff_documents(old, new, rule=rule, matches=matches, rerun=not args.no_rerun,
                         rerun_limit=args.rerun_limit, old_path=args.old, new_path=args.new)
    md = D.render_markdown(d)
    try:
        os.makedirs(args.output, exist_ok=True)
        files = []
        for name, text in (("diff.md", md), ("diff.html", D.render_html(d)),
                           ("diff.json", json.dumps(d, indent=1, allow_nan=False, default=str) + "\n")):
            path = os.path.join(args.output, name)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
            files.append(path)
    except (OSError, ValueError) as e:
        return _err(f"cannot write the diff to {args.output}: {e}")
    if args.quiet:
        c = d["counts"]
        print(f"infoaudit diff: {'WORSE' if d['worse'] else 'not worse'}: {c['worse']} worse, {c['better']} better, "
              f"{c['changed']} changed of {c['cells_compared']} cells -> exit {d['exit_code']}")
    else:
        print(D.summary_markdown(d))
        print("written: " + ", ".join(files))
    return d["exit_code"]

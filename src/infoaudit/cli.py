"""Command line: ``infoaudit run | gate | diff | bench | report | list``.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; this file only wires them. Exit codes: 0 ok, 1 numerical failure
(gate) or something got worse (diff), 2 usage or input error.
"""
from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["COMMANDS", "build_parser", "main"]

COMMANDS = {
    "list": ("infoaudit.commands.list_cmd", "list quantities (and --backends: frameworks, versions, devices)"),
    "run": ("infoaudit.run.cli", "adversarial audit of the installed backends; writes reports/"),
    "report": ("infoaudit.report.report_cmd", "render a results JSON to Markdown/HTML/PNG"),
    "gate": ("infoaudit.gate.cli", "gate a user's own implementation (exit 0 pass, 1 fail, 2 usage)"),
    "bench": ("infoaudit.bench.bench_cmd", "throughput of backends side by side"),
    "diff": ("infoaudit.results.diff_cmd", "what changed between two results.json (exit 0 same or better, 1 worse, 2 bad input)"),
    "order": ("infoaudit.commands.order_cmd", "which terms each backend's row sum adds first (summation-order probe)"),
    "merge": ("infoaudit.cluster.merge_cmd", "join the results.json of the shards of a run (--shard i/N) into one "
              "results.json and report"),
    "scale": ("infoaudit.cluster.scale_cmd", "project a run's measured task durations on 1..128 workers "
              "(critical path, list schedule, LPT, lower bound)"),
}


def build_parser(command=None):
    """The parser; only ``command``'s module is imported (others may need optional packages)."""
    p = argparse.ArgumentParser(prog="infoaudit", description=__doc__.splitlines()[0])
    from . import __version__
    p.add_argument("--version", action="version", version=f"infoaudit {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, (modname, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name != command:
            continue
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
            sp.set_defaults(command_missing=modname)
            continue
        mod.add_arguments(sp)
        sp.set_defaults(command_main=mod.main)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    if getattr(args, "command_missing", None):
        print(f"infoaudit {args.command}: not available in this version", file=sys.stderr)
        return 2
    try:
        return int(args.command_main(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``infoaudit list``: the quantity registry as a table; ``--backends``: what can run here."""
from __future__ import annotations

import json

__all__ = ["add_arguments", "main"]


def add_arguments(p):
    p.add_argument("--backends", action="store_true", help="show backends, versions, devices and skip reasons")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def main(args) -> int:
    if args.backends:
        from ..backends import status
        rows = status()
        if args.json:
            print(json.dumps(rows, indent=2, default=str))
            return 0
        for r in rows:
            if r["available"]:
                devs = ", ".join(r.get("devices", []))
                line = f"{r['backend']:<7} {r.get('version', ''):<14} devices: {devs}"
                if r.get("optax"):
                    line += f"; optax {r['optax']}"
                for note in r.get("notes", []):
                    line += f"\n        note: {note}"
                for note in r.get("skipped", []):
                    line += f"\n        skipped: {note}"
                print(line)
            else:
                print(f"{r['backend']:<7} {'-':<14} SKIPPED: {r['reason']}")
        return 0
    from ..quantities import REGISTRY
    if args.json:
        print(json.dumps([{"name": q.name, "args": [[a.name, a.kind] for a in q.args], "structure": q.structure,
                           "unit": q.unit, "definition": q.doc, "convention": q.convention}
                          for q in REGISTRY.values()], indent=2))
        return 0
    rows = [(q.signature(), q.structure, q.unit or "-", q.doc, q.convention) for q in REGISTRY.values()]
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    print(f"{'quantity(args)':<{w[0]}}  {'structure':<{w[1]}}  {'unit':<{w[2]}}  definition; convention")
    for r in rows:
        print(f"{r[0]:<{w[0]}}  {r[1]:<{w[1]}}  {r[2]:<{w[2]}}  {r[3]}; {r[4]}")
    return 0

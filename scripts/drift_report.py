"""Summarise `make test-latest`: which packages moved off the lock, which recorded behaviours drifted.

Reads requirements/lock.txt, the installed versions (this interpreter's environment), the drift
entries written by tests/version_drift.py (DRIFT/drift.jsonl) and pytest's JUnit XML
(DRIFT/junit.xml); prints a Markdown summary and writes it to DRIFT/drift.md. Exit status 0
(the Makefile returns pytest's own).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path


def _canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_versions(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line.strip())
        if m:
            out[_canon(m.group(1))] = m.group(2)
    return out


def installed_versions():
    return {_canon(d.metadata["Name"]): d.version for d in metadata.distributions() if d.metadata["Name"]}


def junit_counts(path):
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None, []
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
              if c.find("failure") is not None or c.find("error") is not None]
    return counts, failed


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lock", default="requirements/lock.txt")
    ap.add_argument("--drift", default=".drift", help="folder with drift.jsonl and junit.xml")
    a = ap.parse_args(argv)
    lock, have = lock_versions(a.lock), installed_versions()
    lines = ["# Drift against the lock", ""]
    changed = sorted((k, v, have.get(k)) for k, v in lock.items() if have.get(k) != v)
    lines.append(f"## Packages off the lock ({len(changed)})")
    lines += [f"- {k}: {v} (lock) -> {h or 'not installed'}" for k, v, h in changed] or ["- none"]
    entries = []
    p = Path(a.drift) / "drift.jsonl"
    if p.exists():
        entries = [json.loads(x) for x in p.read_text().splitlines() if x.strip()]
    lines += ["", f"## Recorded behaviours that changed ({len(entries)} tests, reported as xfail)"]
    by_pkg = {}
    for e in entries:
        by_pkg.setdefault(", ".join(f"{k} {a_} -> {b}" for k, (a_, b) in e["moved"].items()), []).append(e)
    for versions, es in sorted(by_pkg.items()):
        lines.append(f"### {versions}")
        for e in es:
            lines.append(f"- `{e['test']}` ({e['what']}): {e['error'].splitlines()[0][:240]}")
    if not entries:
        lines.append("- none")
    counts, failed = junit_counts(Path(a.drift) / "junit.xml")
    if counts is not None:
        lines += ["", "## Test run", f"- {counts['tests']} tests, {counts['failures']} failures, "
                  f"{counts['errors']} errors, {counts['skipped']} skipped or xfailed"]
        if failed:
            lines.append("- failures not explained by a moved package of the test's backend:")
            lines += [f"  - `{t}`" for t in failed[:50]]
    text = "\n".join(lines) + "\n"
    (Path(a.drift) / "drift.md").write_text(text) if Path(a.drift).is_dir() else None
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

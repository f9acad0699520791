"""Known findings are keyed by the versions they were recorded on: the lock's.

``tests/known_findings.py`` and the KNOWN table of ``tests/test_numpy_scipy.py`` assert what each
framework returns on fixed inputs, exactly, so that any change (fix or regression) is noticed.
Those behaviours were recorded with the versions in ``requirements/lock.txt``. Under the lock
(``make test``, CI) a mismatch is a failure. When a package that a backend's results depend on
is installed at another version (``make test-latest``, a user's own environment), a mismatch is
*drift*: the test is marked xfail with the versions that moved, and an entry is appended to the
JSON-lines file named by ``INFOAUDIT_DRIFT_LOG`` (``scripts/drift_report.py`` summarises it).
A test whose packages are all on the lock never turns a failure into drift.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import pytest

__all__ = ["LOCK", "PACKAGES", "locked", "installed", "moved", "recorded"]

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"

# the packages whose versions decide a backend's numerical results
PACKAGES = {
    "numpy": ("numpy", "ml-dtypes"),
    "scipy": ("scipy", "numpy", "ml-dtypes"),
    "torch": ("torch",),
    "jax": ("jax", "jaxlib", "optax", "ml-dtypes"),
}


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=1)
def locked() -> dict:
    """{canonical package name: version} pinned in requirements/lock.txt ({} without a lock)."""
    out = {}
    try:
        text = LOCK.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line.strip())
        if m:
            out[_canon(m.group(1))] = m.group(2)
    return out


def installed(name: str):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def moved(backend: str) -> dict:
    """{package: (locked, installed)} for the packages of ``backend`` that are off the lock."""
    lock = locked()
    out = {}
    for pkg in PACKAGES.get(backend, ()):
        want, have = lock.get(_canon(pkg)), installed(pkg)
        if want != have:
            out[pkg] = (want, have)
    return out


@contextmanager
def recorded(backend: str, what: str):
    """Assert a recorded behaviour of ``backend``; off the lock a mismatch becomes a drift xfail."""
    try:
        yield
    except Exception as e:  # noqa: BLE001 - an assertion, or the framework's own new refusal
        diff = moved(backend)
        if not diff:
            raise
        entry = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0], "what": what,
                 "backend": backend, "moved": {k: list(v) for k, v in diff.items()},
                 "error": f"{type(e).__name__}: {e}"[:4000]}
        log = os.environ.get("INFOAUDIT_DRIFT_LOG")
        if log:
            with open(log, "a") as f:
                f.write(json.dumps(entry) + "\n")
        versions = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in diff.items())
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        pytest.xfail(f"drift ({versions}; recorded on the lock): {what}: {first}")

"""Loading a user's implementation ``MODULE:FUNCTION`` as ``infoaudit gate --impl`` and
``infoaudit run --impl`` do: the current directory importable (like ``python -m``), one clear
line for every way it can fail (no module, the module raises on import, no such attribute, not
callable).
"""
from __future__ import annotations

import importlib
import os
import sys

__all__ = ["UsageError", "load_impl"]


class UsageError(Exception):
    """``--impl`` does not name an importable callable (exit 2), with one clear line."""


def load_impl(spec: str):
    """Import ``pkg.module:function`` (``function`` may be dotted); UsageError with one clear line."""
    if not spec or ":" not in spec:
        raise UsageError(f"--impl {spec!r}: expected MODULE:FUNCTION, e.g. my_pkg.losses:softmax")
    modname, _, attr = spec.partition(":")
    if not modname or not attr:
        raise UsageError(f"--impl {spec!r}: expected MODULE:FUNCTION, e.g. my_pkg.losses:softmax")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`: the current directory's modules are importable
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as e:
        raise UsageError(f"--impl {spec!r}: module {modname!r} does not import: No module named {e.name!r} "
                         f"(searched the current directory and sys.path)") from None
    except BaseException as e:  # noqa: BLE001 - a module that raises (or exits) on import
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise UsageError(f"--impl {spec!r}: importing {modname!r} raised {type(e).__name__}"
                         + (f": {msg}" if msg else "")) from None
    obj = mod
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            avail = sorted(n for n, v in vars(mod).items() if callable(v) and not n.startswith("_")
                           and getattr(v, "__module__", None) == mod.__name__)
            raise UsageError(f"--impl {spec!r}: module {modname!r} has no attribute {attr!r}"
                             + (f"; its functions: {', '.join(avail)}" if avail else "")) from None
    if not callable(obj):
        raise UsageError(f"--impl {spec!r}: {attr!r} is not callable (it is a {type(obj).__name__})")
    return obj

"""The one timeout helper: call a function with a per-call time limit.

:func:`call_with_timeout` interrupts the call with SIGALRM in the main thread (re-fired until it
returns, raising a ``BaseException`` a bare ``except Exception`` does not swallow), else runs it in
a daemon thread and abandons it; :func:`install_watchdog` (CLI only) ends the process when native
code ignores the signal.
"""
from __future__ import annotations

import os
import signal
import threading
import time

__all__ = ["install_watchdog", "call_with_timeout"]


class _CallTimeout(BaseException):
    """Raised in the main thread by SIGALRM when the implementation overruns (not an Exception,
    so that a bare ``except Exception`` in user code does not swallow it)."""


class _Watchdog:
    """Last resort for a hang in native code that SIGALRM cannot interrupt (CLI only): after
    ``timeout + grace`` seconds it prints what happened and ends the process with exit 1."""

    def __init__(self, on_hang):
        self.on_hang = on_hang
        self.deadline = None
        self.lock = threading.Lock()
        t = threading.Thread(target=self._run, daemon=True, name="infoaudit-gate-watchdog")
        t.start()

    def arm(self, seconds):
        with self.lock:
            self.deadline = time.monotonic() + seconds

    def disarm(self):
        with self.lock:
            self.deadline = None

    def _run(self):
        while True:
            time.sleep(0.5)
            with self.lock:
                d = self.deadline
            if d is not None and time.monotonic() > d:
                try:
                    self.on_hang()
                finally:
                    os._exit(1)


_WATCHDOG: _Watchdog | None = None


def install_watchdog(on_hang):
    global _WATCHDOG
    _WATCHDOG = _Watchdog(on_hang)


def call_with_timeout(fn, args, timeout):
    """(result, None) or (None, 'timeout') or (None, exception)."""
    main = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if main:
        def handler(signum, frame):
            raise _CallTimeout()
        try:
            old = signal.signal(signal.SIGALRM, handler)
        except ValueError:  # not allowed here (embedded interpreter)
            main = False
    if main:
        if _WATCHDOG:
            _WATCHDOG.arm(timeout + max(10.0, timeout))
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout, 0.5)  # re-fires until cancelled
            try:
                return fn(*args), None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _CallTimeout:
            return None, "timeout"
        except Exception as e:  # noqa: BLE001 - the implementation raised
            return None, e
        except BaseException as e:  # SystemExit etc. from user code: a failure, not our exit
            if isinstance(e, KeyboardInterrupt):
                raise
            return None, e
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            if _WATCHDOG:
                _WATCHDOG.disarm()
    box = {}

    def target():
        try:
            box["r"] = fn(*args)
        except BaseException as e:  # noqa: BLE001
            box["e"] = e
    t = threading.Thread(target=target, daemon=True, name="infoaudit-gate-call")
    t.start()
    t.join(timeout)
    if t.is_alive():
        return None, "timeout"  # the thread is abandoned (daemon)
    if "e" in box:
        return None, box["e"]
    return box.get("r"), None

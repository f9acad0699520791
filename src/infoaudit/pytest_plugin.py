"""pytest plugin (entry point ``pytest11: infoaudit``): gate your own implementations in your suite.

Three ways, all with the same report and copy-paste reproducer on failure::

    import infoaudit

    def test_my_softmax():
        infoaudit.assert_stable(my_softmax, "softmax", framework="torch")

    def test_my_loss(infoaudit_gate):                   # the fixture: same, as a fixture
        infoaudit_gate(my_loss, "cross_entropy", framework="torch")

    @pytest.mark.infoaudit(impl=my_softmax, quantity="softmax", framework="torch", dtype="float32")
    def test_marked():                                  # the marker gates impl after the test body
        pass

Options (each defined once in :mod:`infoaudit.options`): ``--infoaudit-profile``,
``--infoaudit-examples``, ``--infoaudit-seed``, ``--infoaudit-dtype``, ``--infoaudit-device``,
``--infoaudit-timeout``, ``--infoaudit-relative``, ``--infoaudit-baseline``,
``--infoaudit-flush-to-zero``, ``--infoaudit-grad`` (gradients too), the same as ``infoaudit_*``
ini keys, and ``[tool.infoaudit]``.
A marker's keyword options (other than impl/quantity/framework) override them for that test.

This module is imported by every pytest run in an environment where infoaudit is installed, so
it imports nothing heavy (no numpy, no framework, no hypothesis) at import time.
"""
from __future__ import annotations

import pytest

from . import options as _O

__all__ = ["pytest_addoption", "pytest_configure", "infoaudit_gate", "pytest_runtest_call"]

_MARKER_HELP = ("infoaudit(impl=None, quantity=None, framework=None, **options): infoaudit gate options for "
                "this test; with impl= and quantity= the test also gates impl after its body")


def pytest_addoption(parser):
    _O.add_to_pytest(parser)


def pytest_configure(config):
    config.addinivalue_line("markers", _MARKER_HELP)


def _session_options(config) -> dict:
    out = {}
    for o in _O.OPTIONS:
        if o.cli_only:
            continue
        v = config.getoption("infoaudit_" + o.dest, default=None)
        if v in (None, False):
            try:
                ini = config.getini(o.ini_name)
            except (ValueError, KeyError):
                ini = None
            if ini not in ("", [], None):
                v = ini
        if v not in (None, False):
            out[o.dest] = v
    return out


def _marker_kwargs(item) -> dict:
    m = item.get_closest_marker("infoaudit")
    return dict(m.kwargs) if m else {}


@pytest.fixture
def infoaudit_gate():
    """``infoaudit_gate(fn, quantity, framework=None, **options)``: :func:`infoaudit.assert_stable`
    with this session's ``--infoaudit-*`` options and the test's marker as defaults."""
    from .gate.api import assert_stable

    def run(fn, quantity, framework=None, **options):
        __tracebackhide__ = True
        return assert_stable(fn, quantity, framework, **options)

    return run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Publish the session/marker options to assert_stable; gate the marker's impl= after the body."""
    marker = _marker_kwargs(item)
    per_test = {**_session_options(item.config),
                **{k: v for k, v in marker.items() if k not in ("impl", "quantity")}}
    old = _O.PYTEST_DEFAULTS
    _O.PYTEST_DEFAULTS = per_test
    try:
        result = yield
        if marker.get("impl") is not None:
            __tracebackhide__ = True
            if not marker.get("quantity"):
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.infoaudit(impl=...) needs quantity=...")
            from .gate.api import assert_stable
            opts = {k: v for k, v in marker.items() if k not in ("impl", "quantity", "framework")}
            assert_stable(marker["impl"], marker["quantity"], marker.get("framework"), **opts)
        return result
    finally:
        _O.PYTEST_DEFAULTS = old

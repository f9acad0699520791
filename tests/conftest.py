"""Shared test configuration: hypothesis profiles, backend skips with visible reasons, CI strictness.

Profiles: ``ci`` (small, derandomized: what `make test` and CI run), ``thorough`` (long audits),
``dev`` (hypothesis defaults). Select with HYPOTHESIS_PROFILE.

Under CI (``CI=true``, set by ``.ci/run``) a missing optional dependency is a failure, not a
green skip: the session stops at once when torch, JAX (with optax), numba or python-flint cannot
be imported or the compiled reference engine is not the one running, and any test skipped for
an import or backend reason is reported as failed. Outside CI those skips keep their reasons.
"""
from __future__ import annotations

import os
import re

import pytest
from hypothesis import HealthCheck, settings

# One thread per test process: `make test` runs one pytest-xdist worker per core, and a framework
# that also spreads over every core (XLA's Eigen pool, torch's intra-op threads, BLAS) only
# oversubscribes them. Set before any test imports torch or JAX (infoaudit imports them lazily).
for _var, _value in (("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1"), ("OPENBLAS_NUM_THREADS", "1"),
                     ("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")):
    os.environ.setdefault(_var, _value)

settings.register_profile("ci", max_examples=30, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=1000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REQUIRED_IN_CI = ("torch", "jax", "optax", "numba", "flint")
# skip reasons that mean "a dependency is missing" (pytest.importorskip, backend_or_skip)
_MISSING = re.compile(r"could not import|No module named|backend '\w+' unavailable|is not installed")


def backend_or_skip(name):
    """The backend module, or pytest.skip with the reason it cannot run here."""
    from infoaudit.backends import BackendUnavailable, load

    try:
        return load(name)
    except (BackendUnavailable, ModuleNotFoundError) as e:
        pytest.skip(str(e))


def missing_in_ci() -> list:
    """What a CI machine lacks: required modules that do not import, or the wrong reference engine."""
    import importlib

    out = []
    for mod in REQUIRED_IN_CI:
        try:
            importlib.import_module(mod)
        except Exception as e:  # noqa: BLE001 - any import failure counts
            out.append(f"{mod}: {type(e).__name__}: {e}")
    from infoaudit.reference import fast

    if fast.ENGINE != "numba":
        out.append(f"reference fast path engine is {fast.ENGINE!r}, not 'numba' (the compiled engine)")
    return out


def pytest_sessionstart(session):
    if CI:
        missing = missing_in_ci()
        if missing:
            pytest.exit("CI=true but the environment is incomplete (a missing backend would turn into "
                        "green skips):\n  " + "\n  ".join(missing), returncode=1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if CI and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = str(rep.longrepr[-1]) if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if _MISSING.search(reason):
            rep.outcome = "failed"
            rep.longrepr = f"CI=true: skipped for a missing dependency, which CI counts as a failure: {reason}"

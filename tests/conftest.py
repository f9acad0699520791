"""Shared test configuration: hypothesis profiles and backend skips with visible reasons.

Profiles: ``ci`` (small, derandomized: what `make test` and CI run), ``thorough`` (long audits),
``dev`` (hypothesis defaults). Select with HYPOTHESIS_PROFILE.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=30, derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("thorough", max_examples=1000, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def backend_or_skip(name):
    """The backend module, or pytest.skip with the reason it cannot run here."""
    from infoaudit.backends import BackendUnavailable, load

    try:
        return load(name)
    except (BackendUnavailable, ModuleNotFoundError) as e:
        pytest.skip(str(e))

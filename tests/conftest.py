"""Shared pytest configuration for every distribution's tests."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# CI runs more examples; a developer's run stays quick. Deadlines are off: timing is
# measured in benchmarks/, never in tests.
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

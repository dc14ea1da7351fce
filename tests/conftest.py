"""Shared pytest configuration for every distribution's tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings

# CI runs more examples; a developer's run stays quick. Deadlines are off: timing is
# measured in benchmarks/, never in tests.
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# What tradekit keeps in the user's cache (the exchange calendars' session tables) goes to a
# directory of this test run's own, removed when it ends, never to the developer's ~/.cache.
# Every process the tests start inherits it.
_CACHE = tempfile.mkdtemp(prefix="tradekit-tests-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

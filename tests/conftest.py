"""Shared pytest configuration for every distribution's tests."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from hypothesis import HealthCheck, settings

# CI runs more examples, the same ones every run (derandomized: a clean clone's result does
# not depend on the luck of the draw; a developer's runs keep exploring new ones and stay
# quick). Deadlines are off: timing is measured in benchmarks/, never in tests.
settings.register_profile(
    "ci", max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# What tradekit keeps in the user's cache (the exchange calendars' session tables) goes to a
# directory of this test run's own, removed when it ends, never to the developer's ~/.cache.
# Every process the tests start inherits it.
_CACHE = tempfile.mkdtemp(prefix="tradekit-tests-cache-")
os.environ["XDG_CACHE_HOME"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)

# The test harness's own variables (TRADEKIT_TEST_PG_URL, TRADEKIT_TEST_CHROMIUM) move to
# TK_TEST_PG_URL, TK_TEST_CHROMIUM, where the harness reads them: tradekit reads every
# TRADEKIT_ variable as a setting and refuses one it does not know, so a command under test
# would fail on them.
for _name in [n for n in os.environ if n.startswith("TRADEKIT_TEST_")]:
    os.environ["TK_TEST_" + _name.removeprefix("TRADEKIT_TEST_")] = os.environ.pop(_name)

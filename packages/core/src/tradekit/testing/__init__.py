"""tradekit's test kit, shipped for plugin authors: builders, fixtures, contract suites.

Third-party rules, sizers and brokers test themselves the way the core does:
``make_context`` builds a realistic ``ScalingContext`` in one call, and the pytest plugin
(``tradekit.testing.pytest_plugin``, loaded automatically when tradekit is installed)
provides fixtures.
"""

from tradekit.testing.builders import DEFAULT_NOW, make_context, make_position

__all__ = ["DEFAULT_NOW", "make_context", "make_position"]

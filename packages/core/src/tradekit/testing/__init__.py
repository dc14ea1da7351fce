"""tradekit's test kit, shipped for plugin authors: builders, fixtures, contract suites.

Third-party rules, sizers and brokers test themselves the way the core does:
``make_context`` builds a realistic ``ScalingContext`` in one call, the pytest plugin
(``tradekit.testing.pytest_plugin``, loaded automatically when tradekit is installed)
provides fixtures, ``PaperBroker`` is a broker with faults on demand, and
``tradekit.testing.contract.BrokerContract`` is the suite every broker plugin passes (import
it from test code only: it needs pytest).
"""

from tradekit.broker.paper import Fault, PaperBroker, PaperBrokerConfig, SliceTiming
from tradekit.testing.builders import DEFAULT_NOW, make_context, make_position

__all__ = ["DEFAULT_NOW", "Fault", "PaperBroker", "PaperBrokerConfig", "SliceTiming", "make_context", "make_position"]

"""A running trader's health: the heartbeat it leaves in the ledger each cycle, read by ``tradekit serve``.

The live trader writes it (``tradekit.execution.live.record_heartbeat``); this package only
says what a heartbeat is, so the status page can read one without importing the trader.
"""

from tradekit.health.heartbeat import PriceMark, StreamStatus, TraderHeartbeat, trader_name

__all__ = ["PriceMark", "StreamStatus", "TraderHeartbeat", "trader_name"]

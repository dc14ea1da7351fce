"""A running trader's health: the heartbeat it leaves in the ledger each cycle, read by ``tradekit serve``."""

from tradekit.health.heartbeat import PriceMark, StreamStatus, TraderHeartbeat, heartbeat_of, record_heartbeat

__all__ = ["PriceMark", "StreamStatus", "TraderHeartbeat", "heartbeat_of", "record_heartbeat"]

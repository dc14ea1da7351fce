"""``/metrics``: the status in Prometheus' text format (prometheus-client), read at each scrape.

A collector of its own registry (not the process-wide one) turns the same status the pages
show into gauges, so a scrape never sees figures older than the ledger. Prometheus values
are floats: these are for graphs and alerts, never for money kept anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from tradekit.serve import status
from tradekit.serve.status import StatusSource

_STATUS_LEVEL = {status.OK: 0, status.ATTENTION: 1, status.STALE: 2}


def _number(text: str | None) -> float | None:
    return None if text is None else float(Decimal(text))


class StatusCollector(Collector):
    """Gauges of health, trading state, account and positions, read from the ledger per scrape."""

    def __init__(self, source: StatusSource) -> None:
        self.source = source

    def collect(self) -> Iterator[GaugeMetricFamily]:
        health = status.health(self.source)
        cycle_age = GaugeMetricFamily(
            "tradekit_trader_last_cycle_age_seconds", "Seconds since the trader's last cycle", labels=["trader"]
        )
        bar_age = GaugeMetricFamily(
            "tradekit_trader_last_bar_age_seconds", "Seconds since the newest bar the trader had", labels=["trader"]
        )
        stream_up = GaugeMetricFamily(
            "tradekit_trader_stream_connected", "1 when the trade-update stream is connected", labels=["trader"]
        )
        trader_status = GaugeMetricFamily(
            "tradekit_trader_health", "0 ok, 1 needs attention, 2 stale", labels=["trader"]
        )
        for trader in health["traders"]:
            name = [trader["trader"]]
            cycle_age.add_metric(name, trader["last_cycle"]["age_seconds"])
            if trader["last_bar"]["age_seconds"] is not None:
                bar_age.add_metric(name, trader["last_bar"]["age_seconds"])
            stream_up.add_metric(name, 1 if trader["stream"]["state"] == "connected" else 0)
            trader_status.add_metric(name, _STATUS_LEVEL[trader["status"]])
        yield from (cycle_age, bar_age, stream_up, trader_status)
        reconciliation = health["reconciliation"]
        if reconciliation is not None:
            yield GaugeMetricFamily(
                "tradekit_reconciliation_age_seconds",
                "Seconds since the last reconciliation",
                value=reconciliation["age_seconds"],
            )
            yield GaugeMetricFamily(
                "tradekit_unreconciled_symbols",
                "Symbols every buy is blocked on",
                value=len(reconciliation["blocked_symbols"]) + len(reconciliation["unapplied_fill_symbols"]),
            )
        state = GaugeMetricFamily("tradekit_trading_state", "0 active, 1 reduce-only, 2 halted", labels=["scope"])
        for scope in status.trading_state(self.source, history=0)["scopes"]:
            state.add_metric([scope["scope"]], status.state_severity(scope["state"]))
        yield state
        account = status.account(self.source)
        for key, help_text in (("equity", "Last recorded equity"), ("cash", "Last recorded cash")):
            value = _number(account[key])
            if value is not None:
                yield GaugeMetricFamily(f"tradekit_{key}", help_text, value=value)
        exposure = GaugeMetricFamily("tradekit_exposure", "Open positions' value by tier", labels=["tier"])
        for tier, figures in account["tiers"].items():
            exposure.add_metric([tier], float(Decimal(figures["value"])))
        yield exposure
        positions = status.positions(self.source)["positions"]
        qty = GaugeMetricFamily("tradekit_position_qty", "Open quantity", labels=["symbol"])
        entries = GaugeMetricFamily("tradekit_position_entries", "Entries of the open position", labels=["symbol"])
        pnl = GaugeMetricFamily("tradekit_position_unrealized_pnl", "Unrealized P&L at the mark", labels=["symbol"])
        for row in positions:
            qty.add_metric([row["symbol"]], float(Decimal(row["qty"])))
            entries.add_metric([row["symbol"]], row["entry_count"])
            unrealized = _number(row["unrealized_pnl"])
            if unrealized is not None:
                pnl.add_metric([row["symbol"]], unrealized)
        yield from (qty, entries, pnl)
        yield GaugeMetricFamily(
            "tradekit_exits_in_flight",
            "Exit intents planned or submitted",
            value=len(status.exits(self.source)["in_flight"]),
        )


def metrics_endpoint(source: StatusSource) -> Callable[[Request], Response]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(source))

    def endpoint(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return endpoint

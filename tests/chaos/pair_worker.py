"""The pair-trading process of the pairs chaos campaign: the campaign kills it and starts it again
with the same command. Not a test module itself.

Usage: ``python -m chaos.pair_worker CONFIG SEED`` with ``TRADEKIT_*`` (the ledger) and the
venues' ``TRADEKIT_CCXT_<VENUE>_*`` credentials in the environment.

It does what a pair-trading runner does, through tradekit's own pieces: the configuration
file read by ``load_settings`` (the venues' ``api_url`` points at the campaign's emulators),
each venue a ``CcxtVenue`` on the real ccxt client, the ledger and the pair store in one
database, and a ``PairTrader`` cycle after each read of the long venue's server clock — the
emulators' simulated time, which the campaign moves on by one moment per read. The watchlist
is the scenario's (``pair_scenario.signals_at``). SIGINT stops it between two cycles, exit 0.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

CYCLE_PAUSE_S = 0.02
CLOCK_RETRY_S = 0.05


class VenueClock:
    """The venues' time as last read from the long venue's server (what every venue stamps)."""

    def __init__(self) -> None:
        self.now: datetime | None = None

    def __call__(self) -> datetime:
        assert self.now is not None, "the venue clock was read before the server's time"
        return self.now


def main(argv: list[str]) -> int:
    config_path, seed = Path(argv[0]), int(argv[1])
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda _signum, _frame: stopping.set())
    # Imported once Ctrl-C is handled: a stop during start-up still ends with exit 0.
    from chaos.pair_scenario import LONG_VENUE, SHORT_VENUE, signals_at
    from tradekit.broker.errors import BrokerError
    from tradekit.config.loading import load_settings
    from tradekit.decision.context import AccountLimits
    from tradekit.ledger.store import Ledger
    from tradekit.plugins import Plugins
    from tradekit_venue_ccxt.config import VenueCredentials, load_ccxt_settings
    from tradekit_venue_ccxt.execution import CcxtVenue
    from tradekit_venue_ccxt.pairs.store import PairStore
    from tradekit_venue_ccxt.pairs.trader import PairTrader
    from tradekit_venue_ccxt.venues import build_client

    plugins = Plugins()
    settings = load_settings(config_path, plugin_settings=plugins.settings_tables()).settings
    ccxt_settings = load_ccxt_settings(settings)
    pairs_config = ccxt_settings.pairs
    if pairs_config is None:
        print(f"{config_path} has no [plugins.ccxt.pairs] table", file=sys.stderr)
        return 2
    clock = VenueClock()
    venues: dict[str, CcxtVenue] = {}
    for name in (LONG_VENUE, SHORT_VENUE):
        config = ccxt_settings.venue(name)
        credentials = VenueCredentials.from_env(name, os.environ)
        client = build_client(config, credentials, async_=False)
        venues[name] = CcxtVenue(client, config, credentials=credentials, clock=clock)
    ledger = Ledger.open(settings.ledger.url, for_trading=True)
    store = PairStore.open(settings.ledger.url)
    trader = PairTrader(
        config=pairs_config,
        venues=venues,
        ledger=ledger,
        store=store,
        limits=AccountLimits.from_settings(settings),
        plugins=plugins,
        order_poll_attempts=3,
        order_poll_interval_s=0.02,
    )
    try:
        while not stopping.is_set():
            try:
                clock.now = venues[LONG_VENUE].server_time()
            except BrokerError as exc:
                print(f"clock unreadable: {exc}", flush=True)
                time.sleep(CLOCK_RETRY_S)
                continue
            for update in signals_at(clock.now, seed):
                trader.submit_signal(update, clock.now)
            report = trader.run_cycle(clock.now)
            print(
                f"{clock.now.isoformat()} opened={list(report.entries_opened)} failed={list(report.entries_failed)} "
                f"exits={[(p, r.value) for p, r in report.exits_started]} closed={list(report.closed)}",
                flush=True,
            )
            time.sleep(CYCLE_PAUSE_S)
    finally:
        for venue in venues.values():
            venue.close()
        store.close()
        ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""A stale-stream hold belongs to the traders whose stream is stale: several traders sharing
one account (one ledger) must not lift each other's.

A trader's trade-update stream is its own: a healthy stream seen by one trader says nothing
of another's. The hold names the traders that observed their stream stale, only a trader's
own observation takes it off the hold, and it stands while any of them still sees theirs
stale; before, any healthy observation lifted it and the hold flapped every cycle, letting
the blind trader buy in between.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from tradekit.broker.protocol import StreamHeartbeat
from tradekit.cli import cli
from tradekit.cli.guard import SQLITE_IN_FLIGHT
from tradekit.config import GuardSettings
from tradekit.guard import ACCOUNT, Hold, TradingState, TradingStates, Trigger, triggers
from tradekit.guard.control import TradingGuard, process_departed, process_trader
from tradekit.ledger import Ledger
from tradekit.ledger import schema as t

from .conftest import PG_URL, LedgerFactory, require_postgres
from .guard_stream_worker import STALE_AFTER_S, START, Trader, close_all, observe_and_buy, outcome

WAIT_S = 60
CYCLE = timedelta(seconds=30)


@pytest.mark.postgres
@pytest.mark.slow
def test_on_postgres_another_process_with_a_healthy_stream_does_not_lift_the_stale_traders_hold() -> None:
    """Two processes, each a trader built as a live run builds it (its pipeline's own guard),
    on one PostgreSQL ledger: A's stream is stale, B's healthy, cycle after cycle."""
    require_postgres()
    schema = f"tk_hold_{uuid.uuid4().hex[:10]}"
    ledger = Ledger.open(PG_URL, schema=schema)
    alpha = Trader(ledger)
    alpha.broker.lost(START - timedelta(seconds=STALE_AFTER_S))
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:

            def beta(symbol: str | None = None) -> dict[str, object]:
                return pool.submit(observe_and_buy, PG_URL, schema, alpha.now.isoformat(), symbol).result(WAIT_S)

            for cycle in range(3):
                alpha.now = START + cycle * CYCLE
                placed = alpha.observe()
                assert len(placed) == (1 if cycle == 0 else 0), placed  # placed once, never again
                # B observes between A's observation and A's buys (each runs its own loop).
                seen = beta()
                assert seen["transitions"] == [], "a healthy trader lifted the stale trader's hold"
                with ledger.reading() as tx:
                    standing = tx.trading_states().scope_state(ACCOUNT, alpha.now)
                assert standing.state is TradingState.REDUCE_ONLY
                assert standing.hold is not None
                assert standing.hold.trigger is Trigger.STALE_STREAM
                # A, blind to its own fills, buys nothing.
                assert outcome(alpha.buy(f"A{cycle}")) == {"action": "block", "reasons": ["reduce_only"], "sent": False}
            # The account is REDUCE_ONLY for B too while A's stream is stale.
            alpha.now += CYCLE
            assert beta("B1")["buy"] == {"action": "block", "reasons": ["reduce_only"], "sent": False}
            # A's stream is back: A's own observation lifts the hold, and both buy again.
            alpha.broker.healthy(alpha.now)
            (lifted,) = alpha.observe()
            assert "-> active (stale_stream)" in lifted
            assert outcome(alpha.buy("A9"))["sent"] is True
            alpha.now += CYCLE
            assert beta("B2") == {"transitions": [], "buy": {"action": "enter_new", "reasons": [], "sent": True}}
            pool.submit(close_all).result(WAIT_S)
        with ledger.reading() as tx:
            changes = [(t.from_state, t.to_state) for t in tx.trading_state_transitions()]
        assert changes == [
            (TradingState.ACTIVE, TradingState.REDUCE_ONLY),
            (TradingState.REDUCE_ONLY, TradingState.ACTIVE),
        ]
        assert [r.request.symbol for r in alpha.broker.received_orders] == ["A9"]
    finally:
        ledger.drop_schema()
        ledger.close()


def _holds(ledger: Ledger) -> list[tuple[TradingState, tuple[str, ...]]]:
    with ledger.reading() as tx:
        return [(h.state, h.traders) for h in tx.trading_states().holds if h.trigger is Trigger.STALE_STREAM]


def test_two_named_traders_in_one_process_keep_each_others_stale_stream_hold(ledger_factory: LedgerFactory) -> None:
    """SQLite (one process, two traders) and PostgreSQL: each trader's guard goes by its name."""
    alpha = Trader(ledger_factory(), name="trend on alpaca")
    beta = Trader(ledger_factory(), name="meanrev on alpaca")
    alpha.broker.lost(START - timedelta(seconds=STALE_AFTER_S))
    for cycle in range(3):
        alpha.now = beta.now = START + cycle * CYCLE
        assert len(alpha.observe()) == (1 if cycle == 0 else 0)
        assert beta.observe() == []
        assert _holds(alpha.ledger) == [(TradingState.REDUCE_ONLY, ("trend on alpaca",))]
        for trader, symbol in ((alpha, "A"), (beta, "B")):
            blocked = trader.buy(f"{symbol}{cycle}")
            assert outcome(blocked) == {"action": "block", "reasons": ["reduce_only"], "sent": False}
    assert blocked.decision is not None
    text = blocked.decision.one_line() + " ".join(c.detail for c in blocked.decision.checks)
    assert "trend on alpaca: the trade-update stream has been down since" in text
    assert "held for trend on alpaca" in text
    # A trader whose broker has no stream, or whose stale-stream trigger is off, does not
    # speak for A's stream either.
    polled = Trader(ledger_factory(), name="pairs on alpaca")
    polled.now = alpha.now
    polled.broker.heartbeat = None
    assert polled.observe() == []
    unwatched = TradingGuard(ledger=polled.ledger, settings=GuardSettings(), trader="swing on alpaca")
    assert unwatched.observe(now=alpha.now, stream=StreamHeartbeat(connected=True, last_heard_at=alpha.now)) == []
    assert _holds(alpha.ledger) == [(TradingState.REDUCE_ONLY, ("trend on alpaca",))]
    alpha.now = beta.now = alpha.now + CYCLE
    alpha.broker.healthy(alpha.now)
    (lifted,) = alpha.observe()
    assert "reduce_only -> active" in lifted
    assert "no longer applies for trend on alpaca" in lifted
    assert _holds(alpha.ledger) == []
    assert outcome(beta.buy("B9"))["sent"] is True


def test_the_hold_stands_while_any_traders_stream_is_stale(ledger_factory: LedgerFactory) -> None:
    alpha = Trader(ledger_factory(), name="trend on alpaca")
    beta = Trader(ledger_factory(), name="meanrev on alpaca")
    for trader in (alpha, beta):
        trader.broker.lost(START - timedelta(seconds=STALE_AFTER_S))
    alpha.observe()
    (joined,) = beta.observe()
    assert "reduce_only -> reduce_only" in joined
    assert "meanrev on alpaca: the trade-update stream" in joined
    assert _holds(alpha.ledger) == [(TradingState.REDUCE_ONLY, ("meanrev on alpaca", "trend on alpaca"))]
    assert alpha.observe() == beta.observe() == []  # nothing new: no transition every cycle
    # A's stream is back: the hold stands for B, and A still buys nothing.
    alpha.now = beta.now = START + CYCLE
    alpha.broker.healthy(alpha.now)
    (left,) = alpha.observe()
    assert "no longer applies for trend on alpaca; it still does for meanrev on alpaca" in left
    assert _holds(alpha.ledger) == [(TradingState.REDUCE_ONLY, ("meanrev on alpaca",))]
    assert outcome(alpha.buy("A1"))["reasons"] == ["reduce_only"]
    # B's too: lifted, and A's next healthy observation changes nothing.
    beta.broker.healthy(beta.now)
    (lifted,) = beta.observe()
    assert "reduce_only -> active" in lifted
    assert alpha.observe() == []
    assert outcome(alpha.buy("A2"))["sent"] is True
    # `tradekit resume` lifts a stale-stream hold whoever it is held for; a trader still
    # stale places its part again at its next observation.
    alpha.broker.lost(alpha.now)
    alpha.now = beta.now = alpha.now + timedelta(seconds=STALE_AFTER_S)
    beta.broker.lost(beta.now - timedelta(seconds=STALE_AFTER_S))
    alpha.observe()
    beta.observe()
    released = alpha.guard.resume(ACCOUNT, reason="checked", actor="user:ops", at=alpha.now)
    assert [t.to_state for t in released] == [TradingState.ACTIVE]
    beta.observe()
    assert _holds(alpha.ledger) == [(TradingState.REDUCE_ONLY, ("meanrev on alpaca",))]


def test_a_schema_5_ledger_is_upgraded_and_its_stale_stream_hold_is_taken_over(
    ledger_factory: LedgerFactory,
) -> None:
    old = ledger_factory()
    with old.transaction() as tx:
        for table in ("tk_trading_state_holds", "tk_trading_state_transitions"):
            tx._conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN traders")
        tx._conn.execute(
            sa.insert(t.trading_state_holds).values(
                scope="account",
                trigger="stale_stream",
                state="reduce_only",
                since=START,
                reason="the trade-update stream stopped: refused",
                actor="trigger:stale_stream",
                needs_resume=False,
                allow_exits=False,
            )
        )
        tx._conn.exec_driver_sql("UPDATE tk_meta SET value = '5' WHERE key = 'schema_version'")
    old.close()
    ledger = ledger_factory()
    with ledger.reading() as tx:
        version = tx._conn.exec_driver_sql("SELECT value FROM tk_meta WHERE key = 'schema_version'").scalar()
        (hold,) = tx.trading_states().holds
    assert (version, hold.trigger, hold.traders) == ("6", Trigger.STALE_STREAM, ())
    # Held for no trader in particular: the first trader that observes it keeps it or lifts it.
    alpha = Trader(ledger, name="trend on alpaca")
    alpha.broker.lost(START - timedelta(seconds=STALE_AFTER_S))
    (taken,) = alpha.observe()
    assert "reduce_only -> reduce_only" in taken
    assert Trader(ledger, name="meanrev on alpaca").observe() == []
    assert _holds(ledger) == [(TradingState.REDUCE_ONLY, ("trend on alpaca",))]
    with ledger.reading() as tx:
        assert [x.traders for x in tx.trading_state_transitions()] == [("trend on alpaca",)]


def test_a_hold_of_no_trader_in_particular_is_lifted_by_a_healthy_observation() -> None:
    legacy = Hold(
        scope=ACCOUNT,
        trigger=Trigger.STALE_STREAM,
        state=TradingState.REDUCE_ONLY,
        since=START,
        reason="stored by schema 5",
        actor="trigger:stale_stream",
    )
    (lifted,) = triggers.plan(
        TradingStates((legacy,)),
        [],
        conditions=frozenset({Trigger.STALE_STREAM}),
        now=START,
        allow_exits_when_halted=False,
        trader="trend on alpaca",
    )
    assert (lifted.to_state, lifted.reason) == (
        TradingState.ACTIVE,
        "stale_stream no longer applies for trend on alpaca",
    )


@pytest.mark.skipif(os.name != "posix", reason="a process is asked whether it runs on POSIX only")
def test_a_process_of_this_host_that_ended_no_longer_keeps_the_hold(ledger: Ledger) -> None:
    """A guard given no name goes by its process: a restarted trader (a new process) lifts
    the part an ended process of this host left; a process that runs keeps its part."""
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    gone, running = process_trader(int(ended.stdout)), process_trader(os.getppid())
    assert (process_departed(gone), process_departed(running), process_departed(process_trader())) == (
        True,
        False,
        False,
    )
    assert not process_departed(gone.replace(" on ", " on elsewhere-"))  # another host: cannot tell
    assert not process_departed("trend on alpaca")
    lost = StreamHeartbeat(connected=False, last_heard_at=START - timedelta(seconds=STALE_AFTER_S))
    for name in (running, gone):  # each observation drops the parts of ended processes
        TradingGuard(
            ledger=ledger, settings=GuardSettings(stream_stale_after_seconds=STALE_AFTER_S), trader=name
        ).observe(now=START, stream=lost)
    assert _holds(ledger) == [(TradingState.REDUCE_ONLY, tuple(sorted((gone, running))))]
    restarted = TradingGuard(ledger=ledger, settings=GuardSettings(stream_stale_after_seconds=STALE_AFTER_S))
    assert restarted.trader == process_trader()
    (left,) = restarted.observe(now=START + CYCLE, stream=StreamHeartbeat(connected=True, last_heard_at=START))
    assert left.reason == f"stale_stream no longer applies for {gone}; it still does for {running}"
    assert _holds(ledger) == [(TradingState.REDUCE_ONLY, (running,))]


# --- `tradekit halt` on SQLite says what it cannot promise -----------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    # The command line reads TRADEKIT_* settings from the environment: the test server's URL is none.
    return CliRunner(env={"TRADEKIT_LOAD_PLUGINS": "", "TRADEKIT_CONFIG": "", "TRADEKIT_TEST_PG_URL": None})


def test_halt_on_sqlite_says_an_order_past_its_check_may_still_go_out(runner: CliRunner, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger.open(url).close()
    halted = runner.invoke(cli, ["halt", "--reason", "kill switch", "--ledger", url])
    assert halted.exit_code == 0, halted.output
    lines = halted.output.strip().splitlines()
    assert lines[-1] == SQLITE_IN_FLIGHT
    assert "account is now HALTED" in halted.output
    as_json = json.loads(runner.invoke(cli, ["reduce-only", "--scope", "symbol:KO", "--ledger", url, "--json"]).output)
    assert (as_json["state"], as_json["note"]) == ("reduce_only", SQLITE_IN_FLIGHT)
    # Nothing newly restricted, nothing to say: halting again, resuming.
    for args in (["halt"], ["resume"], ["resume", "--scope", "symbol:KO"]):
        again = runner.invoke(cli, [*args, "--ledger", url])
        assert again.exit_code == 0, again.output
        assert "SQLite" not in again.output
        assert json.loads(runner.invoke(cli, [*args, "--ledger", url, "--json"]).output)["note"] is None


@pytest.mark.postgres
def test_halt_on_postgres_adds_no_note(runner: CliRunner) -> None:
    require_postgres()
    schema = f"tk_cli_{uuid.uuid4().hex[:10]}"
    ledger = Ledger.open(PG_URL, schema=schema)
    try:
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
        halted = runner.invoke(cli, ["halt", "--reason", "kill switch", "--ledger", url])
        assert halted.exit_code == 0, halted.output
        assert "account is now HALTED" in halted.output
        assert "SQLite" not in halted.output
        assert ledger.backend == "postgresql"
        with ledger.reading() as tx:
            assert [x.to_state for x in tx.trading_state_transitions()] == [TradingState.HALTED]
    finally:
        ledger.drop_schema()
        ledger.close()

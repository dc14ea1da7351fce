"""On PostgreSQL one process's halt binds every process trading the account: two real
processes, the trader and this test, sharing one ledger.

The trader pauses inside a send (holding the account's send lock) and between a decision and
its send; this process tries to change the state and halts at those moments.
"""

from __future__ import annotations

import multiprocessing
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest
import sqlalchemy as sa

from tradekit.guard import ACCOUNT, TradingState
from tradekit.guard.control import TradingGuard
from tradekit.ledger import Ledger, LedgerOrderStatus

from .conftest import PG_URL, require_postgres
from .guard_worker import NOW, trade

WAIT_S = 60


def _exclusive_lock_is_free(ledger: Ledger) -> bool:
    # What every change of the trading state takes: can it be had right now? (The key is the
    # ledger's private account lock key: only the ledger and this test need it.)
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT pg_try_advisory_xact_lock(:k)")
            taken = bool(conn.execute(query, {"k": ledger._account_key}).scalar_one())
            conn.rollback()
            return taken
    finally:
        engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_halt_in_one_process_stops_every_order_another_process_sends_after_it() -> None:
    require_postgres()
    schema = f"tk_guard_{uuid.uuid4().hex[:10]}"
    ledger = Ledger.open(PG_URL, schema=schema)
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    events = {name: manager.Event() for name in ("in_send", "send_may_finish", "decided", "send_may_go_on")}
    try:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            trader = pool.submit(trade, PG_URL, schema, events)
            # 1. The trader is sending S1: no change of the state can commit until it is sent.
            assert events["in_send"].wait(WAIT_S), "the trader never reached its first send"
            assert not _exclusive_lock_is_free(ledger)
            events["send_may_finish"].set()
            # 2. The trader decided S2 (while ACTIVE) and recorded its intent; halt now.
            assert events["decided"].wait(WAIT_S), "the trader never decided its second buy"
            (halt,) = TradingGuard(ledger=ledger).halt(ACCOUNT, reason="kill switch", actor="user:ops", at=NOW)
            assert _exclusive_lock_is_free(ledger)  # no send in flight now
            events["send_may_go_on"].set()
            *bought, received = trader.result(timeout=WAIT_S * 2)
        s1, s2, s3 = bought
        assert (s1["action"], s1["sent"]) == ("enter_new", True)
        # Decided before the halt, refused at the send after it: never reached the broker.
        assert (s2["action"], s2["sent"]) == ("enter_new", False)
        # Decided after the halt: blocked by the rule.
        assert (s3["action"], s3["reasons"], s3["sent"]) == ("block", ["trading_halted"], False)
        assert received["broker_received"] == ["S1"]
        with ledger.reading() as tx:
            state = tx.intent_state(s2["client_order_id"])
            assert tx.trading_states().scope_state(ACCOUNT, NOW).state is TradingState.HALTED
            assert tx.trading_state_transitions() == [halt]
        assert state is not None
        assert state.status is LedgerOrderStatus.NOT_SENT
    finally:
        manager.shutdown()
        ledger.drop_schema()
        ledger.close()

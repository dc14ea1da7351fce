"""Two bot processes sharing one PostgreSQL ledger, evaluating a buy for the same symbol at
the same moment, produce exactly one order — over many rounds."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import pytest

from tradekit.domain import Side
from tradekit.ledger import Ledger

from .concurrent_worker import bot
from .conftest import PG_URL, require_postgres

ROUNDS = 60 if os.environ.get("CI") else 30


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_buying_the_same_symbol_at_once_produce_one_order() -> None:
    require_postgres()
    schema = f"tk_conc_{uuid.uuid4().hex[:10]}"
    Ledger.open(PG_URL, schema=schema).close()
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Manager().Barrier(2)
    try:
        with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            futures = [pool.submit(bot, name, PG_URL, schema, ROUNDS, barrier) for name in ("bot-a", "bot-b")]
            results = [f.result(timeout=300) for f in futures]
        with Ledger.open(PG_URL, schema=schema) as ledger, ledger.reading() as tx:
            for r in range(ROUNDS):
                symbol = f"S{r}"
                intents = tx.intents_with_prefix(f"entry|{symbol}|")
                assert len(intents) == 1, f"{symbol}: {len(intents)} order intents"
                assert intents[0].side is Side.BUY
        per_round: Counter[tuple[str, str]] = Counter()
        for actions in results:
            for symbol, action in actions:
                per_round[(symbol, action)] += 1
        for r in range(ROUNDS):
            winners = per_round[(f"S{r}", "enter_new")]
            assert winners == 1, f"S{r}: {winners} bots entered"
    finally:
        with Ledger.open(PG_URL, schema=schema) as ledger:
            ledger.drop_schema()

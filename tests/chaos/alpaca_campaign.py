"""One chaos run against the Alpaca emulator: a real ``tradekit run --broker alpaca`` process
traded through a dozen simulated sessions under seeded faults and kills, then checked.

The emulator runs in this process (threads, 127.0.0.1) in simulated time. Each time the trader
reads ``GET /v2/clock`` the emulator's clock moves on to the run's next moment, so every cycle
runs at one moment of a session (after the close, the open, five and ten minutes after it,
after the exit window, mid-session) without waiting for wall-clock time. The faults the plan
draws per call kind and the kills (some while an order POST is in flight) come from the seed;
then the faults stop, a clean trader runs a last session, and ``tradekit reconcile`` finishes.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from chaos.ledger_view import LedgerView, read_ledger
from chaos.runs import (
    HTTP_RATES,
    LOOKUP_RATES,
    ORDER_HTTP_RATES,
    Backend,
    KillSwitch,
    KillTrigger,
    Narrative,
    RunResult,
    Timeline,
    Violation,
    Worker,
    base_env,
    draw_kills,
    exit_violations,
    let_sigint_through,
    reader_url,
    stop,
    supervise,
)
from chaos.world import SYMBOLS, Moment, bars_for, moments, run_sessions
from emulators._http_faults import CallEvent
from emulators.alpaca import AlpacaEmulator, Fault
from emulators.alpaca._sessions import Sessions

KEY_ID = "CHAOSKEY"
SECRET_KEY = "chaos-secret"
MAX_ENTRIES = 4  # the pyramid strategy's policy
REQUEST_TIMEOUT_S = 0.5
MAX_HOLD_S = 1.0
CLEAN_MOMENTS = (
    ("clean open+6m", timedelta(minutes=6)),
    ("clean open+12m", timedelta(minutes=12)),
    ("clean mid-session", timedelta(hours=3)),
)
TERMINAL = frozenset({"filled", "canceled", "rejected", "expired", "not_found"})

_ORDERS = {**ORDER_HTTP_RATES, Fault.LATE_FILL: 0.08, Fault.PARTIAL_FILL: 0.08}
RATES: dict[str, dict[Fault, float]] = {
    "submit_order": _ORDERS,
    "cancel_order": LOOKUP_RATES,
    "order_by_client_id": LOOKUP_RATES,
    "order_by_id": LOOKUP_RATES,
    "list_orders": LOOKUP_RATES,
    "fills": LOOKUP_RATES,
    "positions": HTTP_RATES,
    "account": HTTP_RATES,
    "clock": HTTP_RATES,
    "bars": HTTP_RATES,
    "latest_trades": HTTP_RATES,
    "assets": HTTP_RATES,
    "trade_update": {
        Fault.DUPLICATE_UPDATE: 0.08,
        Fault.REORDERED_UPDATE: 0.08,
        Fault.LOST_UPDATE: 0.08,
        Fault.STREAM_DROP: 0.04,
    },
}


def tradekit_command() -> str:
    """Return the ``tradekit`` console script of the interpreter running the campaign."""
    beside = Path(sys.executable).parent / "tradekit"
    found = str(beside) if beside.exists() else shutil.which("tradekit")
    if found is None:
        raise RuntimeError("the tradekit command is not installed next to this Python")
    return found


def _side(event: CallEvent) -> str | None:
    body: Any = event.body
    return str(body.get("side")) if isinstance(body, dict) and body.get("side") else None


def worker_env(emu: AlpacaEmulator, ledger_url: str) -> dict[str, str]:
    """Return the environment of a ``tradekit`` process pointed at the emulator and the ledger."""
    return {
        **base_env(),
        "APCA_API_KEY_ID": KEY_ID,
        "APCA_API_SECRET_KEY": SECRET_KEY,
        "TRADEKIT_LOAD_PLUGINS": "alpaca,examples",
        "TRADEKIT_LOG_LEVEL": "WARNING",
        "TRADEKIT_LEDGER__URL": ledger_url,
        "TRADEKIT_PLUGINS__ALPACA__BASE_URL": emu.base_url,
        "TRADEKIT_PLUGINS__ALPACA__DATA_URL": emu.data_url,
        "TRADEKIT_PLUGINS__ALPACA__STREAM_URL": emu.stream_url,
        "TRADEKIT_PLUGINS__ALPACA__REQUEST_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT_S),
        "TRADEKIT_PLUGINS__ALPACA__READ_RETRIES": "0",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_RECONNECT_MIN_BACKOFF_SECONDS": "0.05",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_RECONNECT_MAX_BACKOFF_SECONDS": "0.2",
        "TRADEKIT_PLUGINS__ALPACA__STREAM_SHUTDOWN_TIMEOUT_SECONDS": "1",
        # 1% of the account per entry keeps four entries under the 5% allocation cap; signals
        # made on a Friday are still fresh at Monday's open.
        "TRADEKIT_ALLOCATION__POSITION_SIZE_PCT": "1",
        "TRADEKIT_FRESHNESS__MAX_SIGNAL_AGE_HOURS": "100",
    }


def replay_command(seed: int, backend: str, sessions: int) -> str:
    """Return the one-line command that replays a run (its faults and kills follow from its seed)."""
    return f"nox -s chaos -- --venue alpaca --seed {seed} --runs 1 --backend {backend} --sessions {sessions}"


def run_alpaca(
    seed: int,
    workdir: Path,
    backend: Backend,
    sessions: int,
    *,
    calm: bool = False,
    kill_triggers: list[KillTrigger] | None = None,
) -> RunResult:
    """Run one seeded chaos run against the Alpaca emulator and check its invariants.

    ``calm`` runs the same scenario with no fault and no kill (to see the trader's own course);
    ``kill_triggers`` replaces the kills drawn from the seed.
    """
    started = time.monotonic()
    let_sigint_through()
    workdir.mkdir(parents=True, exist_ok=True)
    narrative = Narrative(workdir / "narrative.log")
    schema = backend.schema(seed, "chaos")
    ledger_url = backend.prepare(workdir, schema)
    calendar = Sessions.nyse()
    violations: list[Violation] = []
    emu = AlpacaEmulator(KEY_ID, SECRET_KEY)
    with emu:
        for symbol in SYMBOLS:
            emu.set_asset(symbol)
            emu.load_bars(symbol, bars_for(symbol, calendar, sessions))
        run_moments = moments(calendar, sessions)
        emu.set_time(run_moments[0].at)
        plan = emu.use_fault_plan(seed, {} if calm else RATES, max_hold_seconds=MAX_HOLD_S)
        env = worker_env(emu, ledger_url)
        tradekit = tradekit_command()
        symbols = ",".join(SYMBOLS)
        argv = [tradekit, "run", "--broker", "alpaca", "--strategy", "pyramid", "--symbols", symbols]
        trader = Worker("trader", [*argv, "--interval", "0.05", "--json"], env, workdir, narrative)
        try:
            kills = KillSwitch(
                trader,
                _kill_plan(seed, len(run_moments), calm, kill_triggers),
                frozenset({"submit_order"}),
            )
            narrative.add("kill plan: " + ("; ".join(t.describe() for t in kills.triggers) or "none"))

            def enter(moment: Moment) -> str:
                emu.set_time(moment.at)
                return f"{moment.label} {moment.at.isoformat()}"

            timeline = Timeline(enter, narrative)

            def hook(event: CallEvent) -> bool:
                if event.phase == "before":
                    coid = f" coid={event.client_order_id}" if event.client_order_id else ""
                    fault = f" FAULT {event.fault.value}" if event.fault else ""
                    narrative.add(f"call {event.kind}#{event.n} {event.method} {event.path}{coid}{fault}")
                    if event.kind == "clock":
                        timeline.tick()
                return kills.on_call(event, _side(event))

            emu.add_call_hook(hook)
            # The first clock read (the startup's) and the first cycle's both see the first moment.
            timeline.load([run_moments[0], *run_moments])
            trader.start()
            violations += supervise(trader, timeline, narrative)

            # The clean finish: no more faults or kills, a trader run through one more session.
            plan.stop()
            kills.disarm()
            narrative.add("FAULTS STOP")
            stop(trader)
            last = run_sessions(calendar, sessions + 1)[-1]
            timeline.load([Moment(label, last.open + offset) for label, offset in CLEAN_MOMENTS])
            trader.start()
            if not violations:
                violations += supervise(trader, timeline, narrative)
            stop(trader)
            reconcile = Worker(
                "reconcile", [tradekit, "reconcile", "--broker", "alpaca", "--json"], env, workdir, narrative
            )
            reconcile.run_to_end(timeout=120)
            emu.remove_call_hook(hook)

            exits = trader.exits + reconcile.exits
            violations += exit_violations(exits)
            view = read_ledger(reader_url(ledger_url), schema)
            violations += check_invariants(emu, view)
        finally:
            trader.close()
    narrative.flush()
    backend.drop(schema)
    return RunResult(
        seed=seed,
        seconds=time.monotonic() - started,
        violations=violations,
        faults=plan.schedule(),
        kills=list(kills.fired),
        exits=exits,
        replay=replay_command(seed, backend.name, sessions),
        narrative_path=narrative.path,
    )


def _kill_plan(seed: int, moment_count: int, calm: bool, chosen: list[KillTrigger] | None) -> list[KillTrigger]:
    if chosen is not None:
        return chosen
    if calm:
        return []
    return draw_kills(seed, buys=2 * len(SYMBOLS), sells=len(SYMBOLS), requests=4 * moment_count)


def check_invariants(emu: AlpacaEmulator, view: LedgerView) -> list[Violation]:
    """Check the ledger against the emulator's own order book and positions."""
    found: list[Violation] = []
    posts = Counter(
        str(r.body.get("client_order_id")) for r in emu.requests("POST /v2/orders") if isinstance(r.body, dict)
    )
    for coid, count in sorted(posts.items()):
        if count > 1:
            found.append(Violation("client_order_id_sent_once", f"{coid} was POSTed {count} times"))
    orders = {o["client_order_id"]: o for o in emu.orders()}
    intents = {i.client_order_id: i for i in view.intents}
    for coid, stored in sorted(orders.items()):
        if coid not in intents:
            found.append(
                Violation(
                    "one_broker_order_per_intent",
                    f"broker order {coid} ({stored['side']} {stored['symbol']}, {stored['status']}) "
                    "has no intent in the ledger",
                )
            )
    per_decision = Counter(i.decision_id for i in view.intents if i.decision_id and i.client_order_id in orders)
    for decision, count in sorted(per_decision.items()):
        if count > 1:
            found.append(Violation("one_broker_order_per_intent", f"decision {decision} has {count} broker orders"))
    broker_qty = {p["symbol"]: Decimal(p["qty"]) for p in emu.positions()}
    for symbol in sorted(set(broker_qty) | set(view.open_qty)):
        held, at_broker = view.open_qty.get(symbol, Decimal(0)), broker_qty.get(symbol, Decimal(0))
        if held != at_broker:
            found.append(Violation("ledger_qty_equals_broker", f"{symbol}: ledger {held}, broker {at_broker}"))
    for intent in view.intents:
        order = orders.get(intent.client_order_id)
        label = f"{intent.purpose} {intent.side} {intent.symbol} {intent.client_order_id}"
        if not intent.terminal:
            seen = order["status"] if order else "no order"
            found.append(Violation("intent_terminal", f"{label} is {intent.status} in the ledger (broker: {seen})"))
        if order is not None and intent.status != order["status"]:
            found.append(
                Violation(
                    "ledger_status_equals_broker",
                    f"{label}: ledger {intent.status}, broker {order['status']} "
                    f"(filled {order['filled_qty']} of {order['qty'] or order['notional']})",
                )
            )
        if order is None and (intent.status or "none") not in TERMINAL - {"filled"}:
            found.append(
                Violation("ledger_status_equals_broker", f"{label}: ledger {intent.status}, the broker has no order")
            )
    for (symbol, life), count in sorted(view.entries_per_life.items()):
        if count > MAX_ENTRIES:
            found.append(Violation("max_entries", f"{symbol} life {life} has {count} entries (max {MAX_ENTRIES})"))
    return found

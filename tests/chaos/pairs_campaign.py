"""One pairs chaos run: a real pair-trading process (``chaos.pair_worker``) traded through three
watchlist events on the Binance and Bybit emulators under seeded faults and kills, then checked.

Both emulators run in this process (threads, 127.0.0.1) on simulated time. Each time the
worker reads the long venue's server clock both move on to the run's next moment, with that
moment's books and funding rates (and a funding settlement when the series has one), so the
pairs open, scale in, and close on take-profit, the funding hard-stop and the max hold
without waiting for wall-clock time (``pair_scenario``). HTTP faults are drawn per venue and
call kind from the seed; 0-3 SIGKILLs come from the seed too, some while a leg's order POST
is in flight (buy or sell, before or after the venue processed it), and the worker is
started again with the same command each time. Then the faults stop and a clean worker
finishes. The invariants are checked against the venues' own order books and positions and a
direct read of the ledger and the pair store.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import tomli_w

from ccxt_tests.pair_world import quote
from ccxt_tests.venues import new_emulator
from chaos.ledger_view import LedgerView, read_ledger
from chaos.pair_scenario import (
    ACCOUNT_TABLES,
    BOOK_DEPTH,
    LONG_VENUE,
    MAX_ENTRIES,
    MAX_TOTAL_NOTIONAL,
    SHORT_VENUE,
    SYMBOL,
    PairMoment,
    clean_moments,
    moments,
    pairs_table,
)
from chaos.pair_store_view import PairStoreView, read_pair_store
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
from emulators._fault_plan import Fault, FaultPlan
from emulators._http_faults import CallEvent
from emulators._perp_book import PerpVenueEmulator
from tradekit_venue_ccxt.config import credential_env_vars

TESTS = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT_MS = 500
MAX_HOLD_S = 1.0
ZERO = Decimal(0)

# The perp venues take HTTP faults only (no late or partial fills: market orders are IOC).
RATES: dict[str, dict[Fault, float]] = {
    "submit_order": ORDER_HTTP_RATES,
    "cancel_order": LOOKUP_RATES,
    "order_lookup": LOOKUP_RATES,
    "list_orders": LOOKUP_RATES,
    "fills": LOOKUP_RATES,
    "positions": HTTP_RATES,
    "balance": HTTP_RATES,
}
# What the venue's status of an order may be recorded as in the ledger (Bybit reports an
# IOC remainder cancelled where Binance says expired).
_LEDGER_STATUS = {
    "NEW": {"new", "accepted"},
    "PARTIALLY_FILLED": {"partially_filled"},
    "FILLED": {"filled"},
    "CANCELED": {"canceled"},
    "EXPIRED": {"expired", "canceled"},
}
_CLIENT_ID_PARAMS = ("newClientOrderId", "orderLinkId")


def replay_command(seed: int, backend: str) -> str:
    """Return the one-line command that replays a run (its faults and kills follow from its seed)."""
    return f"nox -s chaos -- --venue pairs --seed {seed} --runs 1 --backend {backend}"


def write_config(path: Path, seed: int, ledger_url: str, emulators: dict[str, PerpVenueEmulator]) -> None:
    """Write the worker's configuration file: the ledger, both venues (at the emulators), the pairs."""
    venue = {
        "symbols": [SYMBOL],
        "leverage": 1,
        "timeout_ms": REQUEST_TIMEOUT_MS,
        "lookup_attempts": 2,
        "lookup_interval_ms": 0,
        "rate_limit": False,
    }
    document: dict[str, Any] = {
        "ledger": {"url": ledger_url},
        **ACCOUNT_TABLES,
        "plugins": {
            "ccxt": {
                "venues": {name: {**venue, "api_url": emu.base_url} for name, emu in emulators.items()},
                "pairs": pairs_table(seed),
            }
        },
    }
    path.write_text(tomli_w.dumps(document))


def worker_env(emulators: dict[str, PerpVenueEmulator]) -> dict[str, str]:
    """Return the worker's environment: the ccxt plugin, the venues' keys, this tests folder."""
    env = {**base_env(), "TRADEKIT_LOAD_PLUGINS": "ccxt", "TRADEKIT_LOG_LEVEL": "WARNING", "PYTHONPATH": str(TESTS)}
    for name, emu in emulators.items():
        key_var, secret_var = credential_env_vars(name)
        env[key_var], env[secret_var] = emu.api_key, emu.api_secret
    return env


def _side(event: CallEvent) -> str | None:
    body: Any = event.body
    return str(body.get("side")).lower() if isinstance(body, dict) and body.get("side") else None


def run_pairs(
    seed: int,
    workdir: Path,
    backend: Backend,
    *,
    calm: bool = False,
    kill_triggers: list[KillTrigger] | None = None,
) -> RunResult:
    """Run one seeded pairs chaos run and check its invariants.

    ``calm`` runs the same scenario with no fault and no kill (to see the trader's own course);
    ``kill_triggers`` replaces the kills drawn from the seed.
    """
    started = time.monotonic()
    let_sigint_through()
    workdir.mkdir(parents=True, exist_ok=True)
    narrative = Narrative(workdir / "narrative.log")
    schema = backend.schema(seed, "chaos_pairs")
    ledger_url = backend.prepare(workdir, schema)
    violations: list[Violation] = []
    emulators = {LONG_VENUE: new_emulator(LONG_VENUE).start(), SHORT_VENUE: new_emulator(SHORT_VENUE).start()}
    long_emu, short_emu = emulators[LONG_VENUE], emulators[SHORT_VENUE]
    trader: Worker | None = None
    try:
        run_moments = moments(seed)

        def enter(moment: PairMoment) -> str:
            for emu in emulators.values():
                emu.set_time(moment.at)
            quote((long_emu, short_emu), moment.point, BOOK_DEPTH)
            point = moment.point
            settles = " funding settled" if point.funding_settles else ""
            return (
                f"{moment.label} {moment.at.isoformat()} spread {point.spread * 10_000:.1f} bps "
                f"funding {point.long_funding_rate}/{point.short_funding_rate}{settles}"
            )

        enter(run_moments[0])
        plans: list[FaultPlan] = [
            emu.use_fault_plan(2 * seed + index, {} if calm else RATES, max_hold_seconds=MAX_HOLD_S)
            for index, emu in enumerate(emulators.values())
        ]
        config = workdir / "tradekit.toml"
        write_config(config, seed, ledger_url, emulators)
        argv = [sys.executable, "-m", "chaos.pair_worker", str(config), str(seed)]
        trader = Worker("pair-trader", argv, worker_env(emulators), workdir, narrative)
        kills = KillSwitch(trader, _kill_plan(seed, len(run_moments), calm, kill_triggers), frozenset({"submit_order"}))
        narrative.add("kill plan: " + ("; ".join(t.describe() for t in kills.triggers) or "none"))
        narrative.add("leg failure policy: " + str(pairs_table(seed)["leg_failure_policy"]))
        timeline = Timeline(enter, narrative)

        def hook_for(venue: str) -> Any:
            def hook(event: CallEvent) -> bool:
                if event.phase == "before":
                    coid = f" coid={event.client_order_id}" if event.client_order_id else ""
                    fault = f" FAULT {event.fault.value}" if event.fault else ""
                    narrative.add(f"call {venue} {event.kind}#{event.n} {event.method} {event.path}{coid}{fault}")
                    if event.kind == "clock" and venue == LONG_VENUE:
                        timeline.tick()
                return kills.on_call(event, _side(event))

            return hook

        hooks = {name: hook_for(name) for name in emulators}
        for name, emu in emulators.items():
            emu.add_call_hook(hooks[name])
        # The first clock read enters the first moment again (the books are already set).
        timeline.load(run_moments)
        trader.start()
        violations += supervise(trader, timeline, narrative)

        # The clean finish: no more faults or kills, a worker run through the last moments.
        for plan in plans:
            plan.stop()
        kills.disarm()
        narrative.add("FAULTS STOP")
        stop(trader)
        timeline.load(clean_moments(seed))
        trader.start()
        if not violations:
            violations += supervise(trader, timeline, narrative)
        stop(trader)
        for name, emu in emulators.items():
            emu.remove_call_hook(hooks[name])

        violations += exit_violations(trader.exits)
        ledger = read_ledger(reader_url(ledger_url), schema)
        store = read_pair_store(reader_url(ledger_url), schema)
        violations += check_invariants(emulators, ledger, store)
        course = describe_course(store)
        narrative.add("course: " + course)
        faults = [f"{name} {line}" for name, emu in emulators.items() for line in emu.fault_plan.schedule()]
    finally:
        if trader is not None:
            trader.close()
        for emu in emulators.values():
            emu.stop()
        narrative.flush()
    backend.drop(schema)
    return RunResult(
        seed=seed,
        seconds=time.monotonic() - started,
        violations=violations,
        faults=faults,
        kills=list(kills.fired),
        exits=list(trader.exits),
        replay=replay_command(seed, backend.name),
        narrative_path=narrative.path,
        course=course,
    )


def _kill_plan(seed: int, moment_count: int, calm: bool, chosen: list[KillTrigger] | None) -> list[KillTrigger]:
    if chosen is not None:
        return chosen
    if calm:
        return []
    # About nine buys and nine sells a run (four entries, two single ones, each pair closed).
    return draw_kills(seed, buys=9, sells=9, requests=12 * moment_count)


def _short(pair_id: str) -> str:
    """``pair <n>`` of ``<key>#<n>-<database token>``."""
    return "pair " + pair_id.rsplit("#", 1)[-1].split("-", 1)[0]


def describe_course(store: PairStoreView) -> str:
    """One line saying what each pair did: its entries and how it ended."""
    return "; ".join(
        f"{_short(pair.pair_id)}: {len(pair.opened)} entries, "
        f"{pair.closed_reason or (f'closing ({pair.exit_reason})' if pair.exit_reason else 'open')}"
        for pair in store.pairs
    )


def check_invariants(
    emulators: dict[str, PerpVenueEmulator], ledger: LedgerView, store: PairStoreView
) -> list[Violation]:
    """Check the store and the ledger against the venues' own order books and positions."""
    found: list[Violation] = []
    found += _sent_once(emulators)
    found += _one_order_per_leg_intent(emulators, store)
    found += _positions(emulators, store)
    found += _resolved(emulators, ledger, store)
    found += _entry_limits(emulators, store)
    return found


def _sent_once(emulators: dict[str, PerpVenueEmulator]) -> list[Violation]:
    posts: Counter[str] = Counter()
    for emu in emulators.values():
        for request in emu.create_order_requests():
            coid = next((request.params[k] for k in _CLIENT_ID_PARAMS if request.params.get(k)), "<none>")
            posts[coid] += 1
    return [
        Violation("client_order_id_sent_once", f"{coid} was POSTed {count} times")
        for coid, count in sorted(posts.items())
        if count > 1
    ]


def _one_order_per_leg_intent(emulators: dict[str, PerpVenueEmulator], store: PairStoreView) -> list[Violation]:
    found: list[Violation] = []
    legs = {o.client_order_id: o for o in store.leg_orders}
    for name, emu in emulators.items():
        per_coid = Counter(o.client_order_id for o in emu.orders())
        for order in emu.orders():
            leg = legs.get(order.client_order_id)
            if leg is None or leg.venue != name:
                where = "no leg order in the store" if leg is None else f"its leg order is for {leg.venue}"
                found.append(
                    Violation(
                        "one_venue_order_per_leg_intent",
                        f"{name} order {order.client_order_id} ({order.side.value} {order.quantity}, "
                        f"{order.status.value}) has {where}",
                    )
                )
        for coid, count in sorted(per_coid.items()):
            if count > 1:
                found.append(Violation("one_venue_order_per_leg_intent", f"{name} holds {count} orders for {coid}"))
    return found


def _positions(emulators: dict[str, PerpVenueEmulator], store: PairStoreView) -> list[Violation]:
    found: list[Violation] = []
    for name, emu in emulators.items():
        at_venue = emu.position(SYMBOL).qty
        recorded = store.held.get((name, SYMBOL), ZERO)
        if at_venue != recorded:
            found.append(
                Violation(
                    "venue_position_equals_store",
                    f"{name} {SYMBOL}: venue {at_venue}, the store's legs {recorded}",
                )
            )
    return found


def _resolved(emulators: dict[str, PerpVenueEmulator], ledger: LedgerView, store: PairStoreView) -> list[Violation]:
    found: list[Violation] = []
    intents = {i.client_order_id: i for i in ledger.intents}
    venue_orders = {(name, o.client_order_id): o for name, emu in emulators.items() for o in emu.orders()}
    for leg in store.leg_orders:
        label = f"{_short(leg.pair_id)} entry {leg.entry_no} {leg.leg} {leg.purpose} {leg.client_order_id}"
        intent = intents.get(leg.client_order_id)
        order = venue_orders.get((leg.venue, leg.client_order_id))
        seen = order.status.value if order is not None else "no order"
        if intent is None or not intent.terminal:
            status = intent.status if intent is not None else "no intent"
            found.append(Violation("leg_intent_resolved", f"{label} is {status} in the ledger (venue: {seen})"))
            continue
        if order is not None and intent.status not in _LEDGER_STATUS[order.status.value]:
            found.append(
                Violation(
                    "ledger_status_equals_venue",
                    f"{label}: ledger {intent.status}, {leg.venue} {seen} "
                    f"(filled {order.filled_qty} of {order.quantity})",
                )
            )
        if order is None and intent.status in ("filled", "partially_filled"):
            found.append(
                Violation("ledger_status_equals_venue", f"{label}: ledger {intent.status}, {leg.venue} has no order")
            )
    for pair in store.pairs:
        unsettled = sorted(pair.planned - set(pair.opened) - pair.failed)
        if unsettled:
            found.append(
                Violation(
                    "leg_intent_resolved",
                    f"{pair.pair_id}: entries {unsettled} planned and never settled (opened or failed)",
                )
            )
    return found


def _entry_limits(emulators: dict[str, PerpVenueEmulator], store: PairStoreView) -> list[Violation]:
    found: list[Violation] = []
    legs = {o.client_order_id: o for o in store.leg_orders}
    # What each entry's legs hold at the venues: opened minus unwound (a failed entry's
    # filled leg was unwound, and holds nothing).
    held: dict[tuple[str, int, str], Decimal] = {}
    for emu in emulators.values():
        for order in emu.orders():
            leg = legs.get(order.client_order_id)
            if leg is None or leg.purpose == "close":
                continue
            key = (leg.pair_id, leg.entry_no, leg.leg)
            signed = order.filled_qty if leg.purpose == "open" else -order.filled_qty
            held[key] = held.get(key, ZERO) + signed
    for pair in store.pairs:
        entries = {n for (pair_id, n, _leg) in held if pair_id == pair.pair_id}
        at_venues = [n for n in entries if all(held.get((pair.pair_id, n, leg), ZERO) > 0 for leg in ("long", "short"))]
        if len(pair.opened) > MAX_ENTRIES or len(at_venues) > MAX_ENTRIES:
            found.append(
                Violation(
                    "max_entries",
                    f"{pair.pair_id}: {len(pair.opened)} entries opened in the store, {len(at_venues)} held on both "
                    f"legs at the venues (max {MAX_ENTRIES})",
                )
            )
        notional = sum(pair.opened.values(), ZERO)
        if notional > MAX_TOTAL_NOTIONAL:
            found.append(
                Violation(
                    "max_total_notional",
                    f"{pair.pair_id}: entries add up to {notional:.2f} (max {MAX_TOTAL_NOTIONAL})",
                )
            )
    return found

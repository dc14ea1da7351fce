"""The commented configuration ``tradekit config init`` writes: every setting, its default, its meaning.

The file is generated from ``Settings`` itself (the values are the defaults, as TOML), so it
cannot drift from the code; each key's sentence comes from ``MEANINGS``, and a setting
without one is an error here rather than a silent gap in the file (a test holds both).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs

from tradekit.config.settings import Settings

MEANINGS: Mapping[str, str] = {
    "symbols": "Symbols a run trades when --symbols is not given (empty: every symbol in the data).",
    "scale_in.enabled": "Allow adding to open positions at all (a strategy's policy must allow it too).",
    "scale_in.max_entries_per_symbol": "Most entries one position may have, first entry included.",
    "scale_in.min_time_between_entries_minutes": "Least time between two entries of a position.",
    "scale_in.min_add_pct_above_last_entry": "Account-wide pyramiding step: add only this % above the last entry "
    "(0: no account-wide price rule).",
    "scale_in.add_on_confidence_threshold": "Least signal confidence (1-5) for an add-on; below 5 must be "
    "acknowledged in [safety].",
    "allocation.max_allocation_per_symbol_pct": "Cap on one symbol's exposure, % of equity; above 10 must be "
    "acknowledged.",
    "allocation.max_position_pct_of_account": "Cap on one position, % of the account; above 25 must be acknowledged.",
    "allocation.position_size_pct": "Fixed-fraction sizing: each order's size, % of equity.",
    "allocation.min_order_notional": "Orders smaller than this (account currency) are not sent.",
    "allocation.fractional_shares": "Buy fractional shares where the broker allows (whole shares otherwise).",
    "allocation.tiered": "Size by allocation tiers ([allocation.tiers.NAME]) instead of a fixed fraction.",
    "allocation.tiers": 'Tiers: [allocation.tiers.core] allocation_pct = "60", cap_pct = "70", '
    'symbols = ["SPY", "QQQ"].',
    "freshness.signal_age_unit": 'How a signal\'s age is measured: "sessions" of the exchange calendar (daily '
    'strategies) or "hours".',
    "freshness.max_signal_age_sessions": "Sessions a signal may wait: 1 acts on a Friday-close signal at Monday's "
    "open, not later.",
    "freshness.max_signal_age_hours": 'Hours a signal may wait, when signal_age_unit = "hours".',
    "freshness.max_gap_pct": "Skip a buy when the price moved more than this % from the signal's price.",
    "orders.daily_order_limit": "Most orders a trading day (counted from the ledger: restarts do not reset it).",
    "orders.order_cooldown_minutes": "Least time between two orders of one symbol.",
    "orders.one_signal_per_symbol_per_day": "Act on at most one buy signal per symbol and trading day.",
    "orders.lost_order_grace_seconds": "An order sent without a clear answer and not found at the broker is given "
    "up on (an exit is then sent again) only once it is this old.",
    "reconciliation.backfill_enabled": "Adopt broker positions the ledger lacks (off: they stay blocked; warned).",
    "reconciliation.mark_unknown_closed": "Close ledger positions the broker no longer holds (EXTERNAL_CLOSE).",
    "reconciliation.recheck_not_found_days": "Look orders given up on as not found up again at each start for "
    "this many days (one that reached the broker late gets its real status and fills).",
    "exits.two_phase_enabled": "Decide sells after the close and execute them in the next session's window.",
    "exits.window_start_minutes": "The exit window opens this many minutes after the open.",
    "exits.window_end_minutes": "The exit window closes this many minutes after the open.",
    "exits.calendar": "Exchange calendar for sessions, holidays and half days (exchange-calendars name).",
    "exits.on_missed_window": 'A planned exit whose window closes unexecuted: "next_window" (the next '
    'session\'s window), "market_at_close" (a market-on-close order that session) or "expire".',
    "exits.max_attempts_per_window": "Orders sent for one exit within one window before it waits for the "
    "window to close.",
    "scanner.enabled": "Trade only the scanner's candidates (plus the baseline symbols).",
    "scanner.candidates_file": "Where tradekit scan writes its candidates.",
    "scanner.top_n": "How many candidates the scanner keeps.",
    "scanner.baseline_symbols": "Symbols always kept as candidates.",
    "guard.max_drawdown_pct": 'HALT (until a resume) once equity is this % below its high, e.g. "10".',
    "guard.daily_loss_limit_pct": "HALT until the next session (and a resume) once the session lost this % of "
    "its starting equity.",
    "guard.daily_loss_limit": "The same daily loss limit in money (account currency).",
    "guard.losing_streak_exits": "REDUCE_ONLY for a cooldown after this many losing exits in a row.",
    "guard.losing_streak_cooldown_minutes": "How long the losing-streak REDUCE_ONLY lasts.",
    "guard.exit_cooldown_minutes": "REDUCE_ONLY for a symbol this long after any exit of it.",
    "guard.reduce_only_on_unreconciled": "REDUCE_ONLY for a symbol reconciliation could not reconcile.",
    "guard.stream_stale_after_seconds": "REDUCE_ONLY for the account when the trade-update stream was last heard "
    "this long ago.",
    "guard.halt_on_account_blocked": "HALT while the broker reports the account (or its trading) blocked.",
    "guard.allow_exits_when_halted": "Let exits out while HALTED (tradekit halt --allow-exits does it for one halt).",
    "notifications.urls": "Where notifications go: apprise URLs (tgram://TOKEN/CHAT, slack://..., "
    "mailto://user:password@host, json://host/path). They carry credentials: secrets, never shown or logged "
    "(prefer TRADEKIT_NOTIFICATIONS__URLS in the environment).",
    "notifications.events": 'What is sent: "entry", "scale_in", "exit" (fills), "guard" (trading-state '
    'transitions), "reconciliation" (findings), "error" (logged errors).',
    "notifications.error_level": 'The least severe log record sent as an error: "warning", "error" or "critical".',
    "notifications.repeat_error_after_minutes": "The same error is sent once per this many minutes.",
    "notifications.queue_size": "Messages waiting for delivery; a slow endpoint never slows trading, new messages "
    "are dropped (and counted) once this many wait.",
    "notifications.shutdown_wait_seconds": "How long a command that ends waits for its messages to go out.",
    "ledger.url": "The ledger: sqlite:///path.db (one trading process) or postgresql+psycopg://... (several).",
    "safety.acknowledge": "Keys whose unsafe values you knowingly accept, e.g. "
    '["allocation.max_allocation_per_symbol_pct"].',
    "plugins": "Plugin settings, one table per plugin: [plugins.paper], [plugins.alpaca], [plugins.ccxt]...",
}

_PAPER_EXAMPLE = """\
# [plugins.paper]                  # the built-in paper broker (tradekit run on the shipped bars)
# starting_cash = "100000"         # the account's cash at the start of a run
# commission_per_order = "0"       # charged once per order
# commission_per_share = "0"       # charged on every share filled
# commission_pct = "0"             # percent of each fill's notional (0.1 = 0.1 %)
# slippage_bps = "0"               # each market fill moves this many basis points against you
# fill_slices = 1                  # fill each order in this many executions (partial fills)
# state_file = "paper.json"        # keep the paper account across restarts
"""


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return json.dumps(str(value))  # money and percentages are quoted: floats are refused
    if isinstance(value, Enum):
        return json.dumps(str(value.value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def _meaning(key: str) -> str:
    try:
        return MEANINGS[key]
    except KeyError:
        raise KeyError(f"setting {key} has no meaning in tradekit.config.template.MEANINGS") from None


def _line(key: str, name: str, value: Any) -> list[str]:
    if value is None:
        # Off by default (TOML has no null): shown commented out, to be given a value to turn it on.
        return [f"# {_meaning(key)} Off unless set.", f"# {name} = ..."]
    return [f"# {_meaning(key)}", f"{name} = {_toml(value)}"]


def config_template(settings: Settings | None = None) -> str:
    """The whole configuration as commented TOML (the defaults unless ``settings`` is given)."""
    current = settings or Settings()
    lines = [
        "# tradekit configuration: every setting with its default value.",
        "# Use it with --config PATH or TRADEKIT_CONFIG=PATH; override any key from the environment",
        "# with a double underscore per level, e.g. TRADEKIT_SCALE_IN__MAX_ENTRIES_PER_SYMBOL=3.",
        '# Money and percentages are quoted decimals ("5" is 5 %); floats are refused.',
        "",
    ]
    tables = []
    for field in attrs.fields(Settings):
        value = getattr(current, field.name)
        if attrs.has(type(value)):
            tables.append((field.name, value))
        elif field.name == "plugins":
            continue
        else:
            lines += [*_line(field.name, field.name, value), ""]
    for table, section in tables:
        lines.append(f"[{table}]")
        for field in attrs.fields(type(section)):
            key = f"{table}.{field.name}"
            value = getattr(section, field.name)
            if isinstance(value, dict):
                lines.append(f"# {_meaning(key)}")
                lines += [f"# [{key}.{name}] (see above)" for name in value]
                continue
            lines += _line(key, field.name, value)
        lines.append("")
    lines += [f"# {_meaning('plugins')}", _PAPER_EXAMPLE]
    return "\n".join(lines)

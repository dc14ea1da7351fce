"""The built-in ``paper`` broker, registered through the same hook a broker plugin uses.

Configure it in the ``[plugins.paper]`` table, structured into ``PaperSettings``: the
account and its costs (``starting_cash``, ``commission_per_order``, ``commission_per_share``,
``commission_pct`` of the notional, ``slippage_bps``; money as quoted decimals, e.g.
``starting_cash = "25000"``), how orders fill (every other ``PaperBrokerConfig`` field;
symbol sets as lists or one comma-separated string) and ``state_file``, the JSON file that
lets the paper account survive a restart (``TRADEKIT_PLUGINS__PAPER__STATE_FILE`` sets it
from the environment; the account's finished orders and received requests go to
``<state_file>.orders.db`` beside it, and the two files belong together). An unknown key,
a negative cash or commission, or a float where money belongs is an error naming the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from tradekit.broker.paper import PAPER_BROKER_NAME, PaperBroker, PaperBrokerConfig
from tradekit.broker.protocol import Broker
from tradekit.broker.spec import BrokerSpec
from tradekit.config.plugin_settings import PluginSettings
from tradekit.config.settings import Settings, SettingsError
from tradekit.exits.calendar import trading_calendar
from tradekit.hookspecs import hookimpl
from tradekit.serialization import StructureError, structure

# Symbol sets may come from the environment as one comma-separated string.
_SYMBOL_SET_KEYS = ("non_fractionable_symbols", "tradable_symbols")


def _state_file(_inst: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not (isinstance(value, str) and value.strip()):
        raise SettingsError(f"plugins.paper.{attribute.name} must be a file path, got {value!r}")


@attrs.frozen(kw_only=True)
class PaperSettings(PaperBrokerConfig):
    """The ``[plugins.paper]`` table: the paper account, its costs, and its state file.

    Every ``PaperBrokerConfig`` field (validated there: cash and commissions not negative,
    slippage below 10000 bps, commission_pct below 100), plus ``state_file``.
    """

    state_file: str | None = attrs.field(default=None, validator=_state_file)

    def broker_config(self) -> PaperBrokerConfig:
        """The paper broker's configuration (everything but the state file)."""
        fields = attrs.asdict(self, recurse=False)
        del fields["state_file"]
        return PaperBrokerConfig(**fields)

    def with_costs(
        self,
        *,
        cash: Decimal | None = None,
        commissions: Iterable[str] = (),
        slippage_bps: Decimal | None = None,
    ) -> PaperSettings:
        """These settings with the command line's cash, commissions and slippage applied.

        Each commission is ``AMOUNT`` (per order), ``AMOUNT/share`` or ``PERCENT%`` of the
        notional; a part not given keeps its configured value.
        """
        changes: dict[str, Any] = {}
        if cash is not None:
            changes["starting_cash"] = cash
        for text in commissions:
            changes.update(parse_commission(text))
        if slippage_bps is not None:
            changes["slippage_bps"] = slippage_bps
        try:
            return attrs.evolve(self, **changes)
        except ValueError as exc:
            raise SettingsError(f"paper broker costs: {exc}") from None


def parse_commission(text: str) -> dict[str, Decimal]:
    """``"1"`` -> per order, ``"0.005/share"`` -> per share, ``"0.1%"`` -> percent of notional."""
    raw = text.strip().lower().replace(" ", "")
    field, amount = "commission_per_order", raw
    if raw.endswith("%"):
        field, amount = "commission_pct", raw[:-1]
    elif raw.endswith("/share"):
        field, amount = "commission_per_share", raw[: -len("/share")]
    elif raw.endswith("/order"):
        amount = raw[: -len("/order")]
    try:
        value = Decimal(amount.lstrip("$"))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value < 0:
        raise SettingsError(
            f"commission {text!r} is not understood: give AMOUNT per order (1.00), AMOUNT/share (0.005/share) "
            "or PERCENT% of the notional (0.1%), each zero or more"
        )
    return {field: value}


def load_paper_settings(settings: Settings) -> PaperSettings:
    """The ``[plugins.paper]`` settings of ``settings``."""
    return read_paper_settings(settings.plugins.get(PAPER_BROKER_NAME, {}))


def read_paper_settings(raw: Mapping[str, Any]) -> PaperSettings:
    """Structure a ``[plugins.paper]`` table; raise ``SettingsError`` listing every bad key
    (checked when the configuration loads, read again when the broker is built)."""
    table: dict[str, Any] = dict(raw)
    state_file = table.get("state_file")
    if state_file is not None and not isinstance(state_file, str):
        # Checked before structuring, which would turn a number into a path silently.
        raise SettingsError(f"plugins.paper.state_file must be a file path, got {state_file!r}")
    for key in _SYMBOL_SET_KEYS:
        if isinstance(table.get(key), str):
            table[key] = [symbol.strip() for symbol in table[key].split(",") if symbol.strip()]
    try:
        return structure(table, PaperSettings, what="plugins.paper")
    except StructureError as exc:
        raise SettingsError(
            "the [plugins.paper] settings are invalid:\n" + "\n".join(f"  - {p}" for p in exc.problems)
        ) from exc


def describe_costs(config: PaperBrokerConfig) -> str:
    """The account and its costs in one line, as the run header and the report show them."""
    parts = []
    if config.commission_per_order:
        parts.append(f"{config.commission_per_order:,.2f} per order")
    if config.commission_per_share:
        parts.append(f"{config.commission_per_share} per share")
    if config.commission_pct:
        parts.append(f"{config.commission_pct}% of notional")
    commission = " + ".join(parts) if parts else "none"
    slippage = f"{config.slippage_bps} bps" if config.slippage_bps else "none"
    return f"starting cash {config.starting_cash:,.2f} {config.currency}, commission {commission}, slippage {slippage}"


def make_paper_broker(settings: Settings, env: Mapping[str, str]) -> Broker:
    """Build the paper broker from ``[plugins.paper]``; it needs no credentials.

    Its market clock is the exchange calendar the run trades on (``exits.calendar``), as in
    a replay: DAY orders expire, and market-on-close orders fill, at that calendar's closes.
    """
    paper = load_paper_settings(settings)
    calendar = trading_calendar(settings.exits.calendar)
    return PaperBroker(paper.broker_config(), state_path=paper.state_file, session_clock=calendar.market_clock)


@hookimpl
def register_brokers(register: Callable[[BrokerSpec], None]) -> None:
    register(
        BrokerSpec(
            name=PAPER_BROKER_NAME,
            description="Built-in paper account filling orders against the market data it is fed; no credentials.",
            factory=make_paper_broker,
        )
    )


@hookimpl
def register_settings(register: Callable[[PluginSettings], None]) -> None:
    register(PluginSettings(table=PAPER_BROKER_NAME, settings_type=PaperSettings, read=read_paper_settings))

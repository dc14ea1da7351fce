"""The plugin manager facade: the only module that calls ``pm.hook``.

Load order: the built-in plugins (tradekit's own rules are plugins), then the environment's
blocklist (``TRADEKIT_DISABLED_PLUGINS``) and allowlist (``TRADEKIT_LOAD_PLUGINS``), then the
``tradekit`` entry-point group, then ``check_pending()`` so an implementation of a hook that
does not exist is an error, not a silent no-op.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, TypeVar, cast

import attrs
import pluggy

from tradekit import hookspecs
from tradekit.broker.spec import BrokerSpec
from tradekit.config.plugin_settings import PluginSettings
from tradekit.data.fetch import DataSourceSpec
from tradekit.decision.context import ScalingContext
from tradekit.decision.plugin_reasons import PluginReason
from tradekit.decision.reasons import CheckOutcome, ReasonCode, RulePhase
from tradekit.decision.verdict import BuyDecision, Check
from tradekit.domain.market import Bar
from tradekit.domain.orders import Fill
from tradekit.exits.intent import ExitIntent
from tradekit.guard.state import Transition
from tradekit.ledger.records import OrderIntent
from tradekit.reconcile.report import ReconcileFinding, ReconcileReport
from tradekit.serve.pages import StatusPage
from tradekit.sizing.result import SizingResult
from tradekit.strategy.base import Strategy

if TYPE_CHECKING:
    from tradekit.scanner.models import Candidate

R = TypeVar("R")

ENTRY_POINT_GROUP = "tradekit"
DISABLED_ENV = "TRADEKIT_DISABLED_PLUGINS"
ALLOWLIST_ENV = "TRADEKIT_LOAD_PLUGINS"

# The built-in buy rules: safety the user may not switch off by configuration.
BUILTIN_RULE_PLUGINS: tuple[str, ...] = (
    "tradekit.decision.rules.preflight",
    "tradekit.guard.rule",
    "tradekit.decision.rules.freshness",
    "tradekit.decision.rules.safety",
    "tradekit.decision.rules.direction",
    "tradekit.decision.rules.qualification",
    "tradekit.decision.rules.feasibility",
)
# Other built-in plugins (replaceable behaviour, may be disabled).
BUILTIN_PLUGINS: tuple[str, ...] = (
    *BUILTIN_RULE_PLUGINS,
    "tradekit.sizing.builtin",
    "tradekit.scanner.ranking",
    "tradekit.broker.paper_plugin",
)


log = logging.getLogger(__name__)


class HookError(RuntimeError):
    """A plugin's hook implementation raised; the message names the hook and the plugin."""

    def __init__(self, hook: str, plugin: str, error: BaseException) -> None:
        super().__init__(f"{hook} plugin {plugin} raised {type(error).__name__}: {error}")
        self.hook = hook
        self.plugin = plugin


class PluginLoadError(RuntimeError):
    """Plugins could not be loaded consistently (duplicate names, unknown hooks, ...)."""


@attrs.frozen
class LoadedPlugin:
    name: str
    origin: str  # "builtin", "entrypoint:<dist> <version>" or "registered"


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Plugins:
    """Typed access to tradekit's hooks, one method per hook."""

    def __init__(
        self,
        *,
        load_entrypoints: bool = True,
        env: Mapping[str, str] | None = None,
        extra: Sequence[tuple[str, object]] = (),
    ) -> None:
        env = os.environ if env is None else env
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._loaded: list[LoadedPlugin] = []
        self._lock = threading.Lock()
        self._strategies: dict[str, type[Strategy]] | None = None
        self._brokers: dict[str, BrokerSpec] | None = None
        self._settings_tables: dict[str, PluginSettings] | None = None
        self._reasons: dict[str, PluginReason] | None = None

        disabled = set(_split(env.get(DISABLED_ENV, "")))
        protected = disabled & set(BUILTIN_RULE_PLUGINS)
        if protected:
            raise PluginLoadError(
                f"{DISABLED_ENV} names built-in safety rules {sorted(protected)}: the buy rules "
                "cannot be switched off; add a stricter rule plugin instead"
            )
        for name in BUILTIN_PLUGINS:
            if name not in disabled:
                self._register(importlib.import_module(name), name, "builtin")
        for name in disabled:
            self._pm.set_blocked(name)
        for name, plugin in extra:
            self._register(plugin, name, "registered")
        if load_entrypoints:
            allow = _split(env[ALLOWLIST_ENV]) if ALLOWLIST_ENV in env else None
            self._load_entrypoints(allow)
        try:
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(f"a plugin implements a hook tradekit does not define: {exc}") from exc

    def _register(self, plugin: object, name: str, origin: str) -> None:
        if self._pm.has_plugin(name) or self._pm.get_plugin(name) is not None:
            raise PluginLoadError(f"two plugins are named {name!r}; plugin names must be unique")
        try:
            self._pm.register(plugin, name=name)
        except ValueError as exc:
            raise PluginLoadError(f"plugin {name!r} could not be registered: {exc}") from exc
        except pluggy.PluginValidationError as exc:
            raise PluginLoadError(f"plugin {name!r} is invalid: {exc}") from exc
        self._loaded.append(LoadedPlugin(name, origin))

    def _load_entrypoints(self, allow: list[str] | None) -> None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if allow is not None and ep.name not in allow:
                continue
            if self._pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(f"entry point {ep.name!r} ({ep.value}) failed to import: {exc}") from exc
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "unknown distribution"
            self._register(plugin, ep.name, f"entrypoint:{dist}")

    def register(self, plugin: object, name: str) -> None:
        """Register a plugin object after loading (tests, embedding applications)."""
        with self._lock:
            self._register(plugin, name, "registered")
            self._strategies = None
            self._brokers = None
            self._settings_tables = None
            self._reasons = None

    def unregister(self, name: str) -> None:
        if name in BUILTIN_RULE_PLUGINS:
            raise PluginLoadError(f"{name} is a built-in safety rule and cannot be removed")
        with self._lock:
            self._pm.unregister(name=name)
            self._loaded = [p for p in self._loaded if p.name != name]
            self._strategies = None
            self._brokers = None
            self._settings_tables = None
            self._reasons = None

    def hookimpl_plugin_names(self, hook: str) -> list[str]:
        """Names of the plugins implementing ``hook``, in registration order."""
        caller = getattr(self._pm.hook, hook)
        return [impl.plugin_name for impl in caller.get_hookimpls()]

    @property
    def loaded(self) -> tuple[LoadedPlugin, ...]:
        return tuple(self._loaded)

    # --- hooks -------------------------------------------------------------------------

    def evaluate_buy(self, context: ScalingContext) -> list[Check]:
        """Run every ``evaluate_buy`` implementation and return all their checks."""
        try:
            results: list[list[Check] | None] = self._pm.hook.evaluate_buy(context=context)
        except Exception:  # noqa: BLE001 - isolated per implementation below
            return self._evaluate_buy_isolating_errors(context)
        checks: list[Check] = []
        for result in results:
            if result:
                checks.extend(result)
        return checks

    def _evaluate_buy_isolating_errors(self, context: ScalingContext) -> list[Check]:
        # Slow path, only after a failure: call each implementation alone so one broken rule
        # becomes a BLOCK naming it, while the others still report.
        checks: list[Check] = []
        for impl in self._pm.hook.evaluate_buy.get_hookimpls():
            try:
                result = cast("list[Check] | None", impl.function(context=context))
            except Exception as exc:  # noqa: BLE001 - turned into a BLOCK, never swallowed
                checks.append(
                    Check(
                        rule=f"{impl.plugin_name}",
                        phase=RulePhase.PREFLIGHT,
                        outcome=CheckOutcome.BLOCK,
                        reason=ReasonCode.RULE_ERROR,
                        detail=f"rule plugin {impl.plugin_name} raised {type(exc).__name__}: {exc}",
                    )
                )
                continue
            if result:
                checks.extend(result)
        return checks

    def size_position(self, context: ScalingContext, decision: BuyDecision) -> SizingResult | None:
        """The first sizer's answer; a sizer that raises is a ``HookError`` naming it."""
        try:
            result: SizingResult | None = self._pm.hook.size_position(context=context, decision=decision)
        except Exception as exc:
            plugin = self._raising_plugin("size_position", {"context": context, "decision": decision}, exc)
            raise HookError("size_position", plugin, exc) from exc
        return result

    def on_reconcile(self, report: ReconcileReport) -> list[ReconcileFinding]:
        """Every plugin's extra findings; one that raises is a ``HookError`` naming it (the
        reconciliation then changes nothing)."""
        try:
            results: list[list[ReconcileFinding] | None] = self._pm.hook.on_reconcile(report=report)
        except Exception as exc:
            plugin = self._raising_plugin("on_reconcile", {"report": report}, exc)
            raise HookError("on_reconcile", plugin, exc) from exc
        return [finding for result in results if result for finding in result]

    def on_exit_intent(self, intent: ExitIntent) -> ExitIntent:
        """The intent as the first adjusting plugin returns it, else unchanged.

        A plugin that raises leaves the intent unadjusted: the exit still goes out as
        tradekit planned it (an exit only reduces exposure), the error is logged naming the
        plugin, and the intent's reason says so, which the ledger keeps.
        """
        try:
            adjusted: ExitIntent | None = self._pm.hook.on_exit_intent(intent=intent)
        except Exception as exc:
            plugin = self._raising_plugin("on_exit_intent", {"intent": intent}, exc)
            error = HookError("on_exit_intent", plugin, exc)
            log.error("exit %s for %s not adjusted: %s", intent.intent_id, intent.symbol, error, exc_info=exc)
            note = f" [not adjusted: {error}]"
            return intent if intent.reason.endswith(note) else attrs.evolve(intent, reason=intent.reason + note)
        return intent if adjusted is None else adjusted

    def _raising_plugin(self, hook: str, kwargs: dict[str, Any], error: BaseException) -> str:
        """After a firstresult ``hook`` raised ``error``: the plugin that raised it.

        Slow path, only after a failure. The implementations are called again one at a time,
        in pluggy's order, and the first to raise is named (two instances of one class are
        told apart this way); a plugin with side effects sees a second call. When none
        raises again (a wrapper, or a failure that does not recur), the traceback is read
        for the deepest frame that is one of the hook's implementations.
        """
        implementations = getattr(self._pm.hook, hook).get_hookimpls()
        for impl in reversed(implementations):
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                result = impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:  # noqa: BLE001 - this is the failure being attributed
                return str(impl.plugin_name)
            if result is not None:
                break
        codes = {getattr(impl.function, "__code__", None): str(impl.plugin_name) for impl in implementations}
        name = "unknown"
        tb = error.__traceback__
        while tb is not None:
            name = codes.get(tb.tb_frame.f_code, name)
            tb = tb.tb_next
        return name

    def on_trading_state(self, transition: Transition) -> None:
        """Tell every plugin about a trading-state transition, each on its own.

        A plugin that raises is logged naming it and the others are still told: a broken
        notifier must neither hide a halt from the rest nor undo it (the transition is
        committed before anyone hears of it).
        """
        self._announce(
            "on_trading_state", {"transition": transition}, f"trading-state transition {transition.one_line()}"
        )

    def on_fill(self, fill: Fill, intent: OrderIntent) -> None:
        """Tell every plugin about a fill of one of tradekit's orders, each on its own (as
        ``on_trading_state``: one that raises is logged, the fill stands)."""
        self._announce("on_fill", {"fill": fill, "intent": intent}, f"fill {fill.execution_id} of {fill.symbol}")

    def _announce(self, hook: str, arguments: dict[str, Any], what: str) -> None:
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue  # an announcement has nothing to wrap
            try:
                impl.function(**{name: arguments[name] for name in impl.argnames})
            except Exception as exc:
                error = HookError(hook, impl.plugin_name, exc)
                log.error("%s not announced: %s", what, error, exc_info=exc)

    def scan_candidates(self, bars: Mapping[str, Sequence[Bar]], as_of: datetime, top_n: int) -> list[Candidate]:
        result: list[Candidate] | None = self._pm.hook.scan_candidates(bars=bars, as_of=as_of, top_n=top_n)
        return result or []

    def register_commands(self, cli: Any) -> None:
        self._pm.hook.register_commands(cli=cli)

    def strategies(self) -> dict[str, type[Strategy]]:
        """Every registered strategy class by name (duplicates are an error)."""
        with self._lock:
            if self._strategies is None:
                found: dict[str, type[Strategy]] = {}

                def register(cls: type[Strategy]) -> None:
                    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
                        raise PluginLoadError(f"register_strategies got {cls!r}, not a Strategy subclass")
                    if cls.name in found and found[cls.name] is not cls:
                        raise PluginLoadError(
                            f"two strategies are named {cls.name!r}: {_qualname(found[cls.name])} and {_qualname(cls)}"
                        )
                    found[cls.name] = cls

                self._pm.hook.register_strategies(register=register)
                self._strategies = found
            return dict(self._strategies)

    def brokers(self) -> dict[str, BrokerSpec]:
        """Every registered broker by name (duplicates are an error)."""
        with self._lock:
            if self._brokers is None:
                found = self._records(
                    "register_brokers", BrokerSpec, lambda spec: spec.name, "two brokers are named {!r}"
                )
                self._brokers = found
            return dict(self._brokers)

    def settings_tables(self) -> dict[str, PluginSettings]:
        """The ``[plugins.<name>]`` tables the loaded plugins declare, by name (duplicates are an error)."""
        with self._lock:
            if self._settings_tables is None:
                found = self._records(
                    "register_settings",
                    PluginSettings,
                    lambda declared: declared.table,
                    "two plugins declare the settings table [plugins.{}]",
                )
                self._settings_tables = found
            return dict(self._settings_tables)

    def _records(self, hook: str, kind: type[R], name_of: Callable[[R], str], duplicate: str) -> dict[str, R]:
        # The registration hooks' shared rule: typed records, one per name.
        found: dict[str, R] = {}

        def register(record: R) -> None:
            if not isinstance(record, kind):
                raise PluginLoadError(f"{hook} got {record!r}, not a {kind.__name__}")
            name = name_of(record)
            if name in found:
                raise PluginLoadError(duplicate.format(name))
            found[name] = record

        getattr(self._pm.hook, hook)(register=register)
        return found

    def status_pages(self) -> dict[str, StatusPage]:
        """Every page plugins add to ``tradekit serve``, by name (duplicates are an error)."""
        return self._records(
            "register_status_pages", StatusPage, lambda page: page.name, "two status pages are named {!r}"
        )

    def data_sources(self) -> dict[str, DataSourceSpec]:
        """Every registered market-data source by name (duplicates are an error)."""
        return self._records(
            "register_data_sources", DataSourceSpec, lambda spec: spec.name, "two data sources are named {!r}"
        )

    def reasons(self) -> dict[str, PluginReason]:
        """Every plugin's declared reason codes by their stored form (``plugin:code``).

        Each plugin's ``register_reasons`` is called with a callback of its own, so a code is
        refused unless its namespace is that plugin's name; a code declared twice is refused.
        """
        with self._lock:
            if self._reasons is None:
                found: dict[str, PluginReason] = {}
                for impl in self._pm.hook.register_reasons.get_hookimpls():
                    owner = str(impl.plugin_name)

                    def register(reason: PluginReason, owner: str = owner) -> None:
                        if not isinstance(reason, PluginReason):
                            raise PluginLoadError(f"plugin {owner} registered {reason!r}, not a PluginReason")
                        if reason.plugin != owner:
                            raise PluginLoadError(
                                f"plugin {owner} declared reason {reason}: its namespace must be the plugin's "
                                f"name, {owner}:{reason.code}"
                            )
                        if reason in found:
                            raise PluginLoadError(f"reason {reason} is declared twice")
                        found[str(reason)] = reason

                    impl.function(register=register)
                self._reasons = found
            return dict(self._reasons)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_default: Plugins | None = None
_default_lock = threading.Lock()


def default_plugins() -> Plugins:
    """Return the process-wide plugin manager (built-ins plus installed entry points)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Plugins()
        return _default


def hook_names() -> list[str]:
    """Names of every hook tradekit defines (used by the docs test)."""
    return sorted(
        name
        for name in dir(hookspecs)
        if not name.startswith("_") and hasattr(getattr(hookspecs, name), "tradekit_spec")
    )

"""The ASGI application: HTML pages and a JSON API over ``tradekit.serve.status``, GET only.

Pages are rendered on the server (Jinja2, autoescaped) and refresh themselves with htmx,
served from this package (no CDN, no network, no build step): the ``<main>`` of a page asks
for its own page again every ``refresh`` seconds and swaps in the new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tradekit import redaction
from tradekit.config.settings import Settings
from tradekit.ledger import Ledger, LedgerError
from tradekit.plugins import Plugins
from tradekit.serve import status
from tradekit.serve.security import ReadOnlyGate

log = logging.getLogger(__name__)

HERE = Path(str(files("tradekit.serve")))
ACTIONS = ("enter_new", "scale_in", "skip", "block")
MOST_DECISIONS = 500


class BadQuery(ValueError):
    """A query parameter that cannot be used; the message names it and what is allowed."""


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds} s ago"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes} min ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min ago"
    return f"{hours // 24} d {hours % 24} h ago"


def _short_time(value: str | None) -> str:
    return "-" if not value else value.replace("T", " ")[:16] + " UTC"


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["age"] = _age
    env.filters["when"] = _short_time
    return env


def create_app(
    *,
    ledger: Ledger,
    ledger_url: str,
    settings: Settings,
    plugins: Plugins,
    token: str | None = None,
    hosts: list[str] | None = None,
    clock: Callable[[], datetime] | None = None,
    stale_after: timedelta = timedelta(minutes=5),
    refresh_seconds: int = 5,
    metrics: bool = False,
) -> Starlette:
    """The status application over ``ledger`` (open it with ``create=False``: it is only read)."""
    source = status.StatusSource(
        ledger=ledger,
        ledger_url=ledger_url,
        settings=settings,
        plugins=plugins,
        clock=clock or (lambda: datetime.now(UTC)),
        stale_after=stale_after,
    )
    env = templates()

    def html(name: str, request: Request, code: int = 200, **context: Any) -> HTMLResponse:
        body = env.get_template(name).render(
            request_path=request.url.path,
            refresh=refresh_seconds,
            pages=source.pages,
            metrics=metrics,
            **context,
        )
        return HTMLResponse(body, status_code=code)

    def guarded(read: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            wants_json = request.url.path.startswith("/api/")
            try:
                return read(request)
            except BadQuery as exc:
                if wants_json:
                    return JSONResponse({"error": str(exc)}, status_code=400)
                return html("error.html", request, 400, title="bad request", message=str(exc))
            except LedgerError as exc:
                message = f"the ledger cannot be read now: {redaction.redact(str(exc))}"
                log.warning(message)
                if wants_json:
                    return JSONResponse({"error": message}, status_code=503)
                return html("error.html", request, 503, title="ledger unavailable", message=message)

        return endpoint

    def not_found(request: Request, what: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"no {what}"}, status_code=404)
        return html("error.html", request, 404, title="not found", message=f"no {what}")

    # --- pages ---------------------------------------------------------------------------------

    def overview_page(request: Request) -> Response:
        return html("overview.html", request, title="overview", data=status.overview(source))

    def positions_page(request: Request) -> Response:
        return html(
            "positions.html",
            request,
            title="positions",
            data=status.positions(source),
            account=status.account(source),
        )

    def decisions_page(request: Request) -> Response:
        return html("decisions.html", request, title="decisions", data=_decisions(request), actions=ACTIONS)

    def decision_page(request: Request) -> Response:
        found = status.decision(source, request.path_params["decision_id"])
        if found is None:
            return not_found(request, f"decision {request.path_params['decision_id']}")
        return html("decision.html", request, title=f"decision {found['decision_id']}", data=found, refresh_off=True)

    def exits_page(request: Request) -> Response:
        return html("exits.html", request, title="exits", data=status.exits(source))

    def exit_page(request: Request) -> Response:
        found = status.exit_intent(source, request.path_params["intent_id"])
        if found is None:
            return not_found(request, f"exit intent {request.path_params['intent_id']}")
        return html("exit.html", request, title=f"exit {found['intent_id']}", data=found)

    def guard_page(request: Request) -> Response:
        return html("guard.html", request, title="trading state", data=status.trading_state(source, history=50))

    def plugin_page(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in source.pages:
            return not_found(request, f"page {name}")
        return html("page.html", request, title=source.pages[name].title, data=_page(name))

    # --- the API -------------------------------------------------------------------------------

    def _decisions(request: Request) -> dict[str, Any]:
        query = request.query_params
        action = query.get("action") or None
        if action is not None and action not in ACTIONS:
            raise BadQuery(f"action={action!r} is not one of {', '.join(ACTIONS)}")
        raw = query.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= MOST_DECISIONS:
            raise BadQuery(f"limit={raw!r} must be a whole number from 1 to {MOST_DECISIONS}")
        symbol = (query.get("symbol") or "").strip().upper() or None
        return status.decisions(source, symbol=symbol, action=action, limit=int(raw))

    def _page(name: str) -> dict[str, Any]:
        try:
            found = status.page(source, name)
        except LedgerError:
            raise
        except Exception as exc:
            log.exception("status page %s failed", name)
            return {
                "name": name,
                "title": source.pages[name].title,
                "error": f"this page could not be read: {redaction.redact_exception(exc)}",
            }
        assert found is not None
        return found

    def api(read: Callable[[Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            found = read(request)
            if isinstance(found, Response):
                return found
            return JSONResponse(found)

        return endpoint

    def api_decision(request: Request) -> Any:
        found = status.decision(source, request.path_params["decision_id"])
        return found if found is not None else not_found(request, f"decision {request.path_params['decision_id']}")

    def api_exit(request: Request) -> Any:
        found = status.exit_intent(source, request.path_params["intent_id"])
        return found if found is not None else not_found(request, f"exit intent {request.path_params['intent_id']}")

    def api_page(request: Request) -> Any:
        name = request.path_params["name"]
        if name not in source.pages:
            return not_found(request, f"page {name}")
        found = _page(name)
        return JSONResponse(found, status_code=500) if "error" in found else found

    def api_pages(request: Request) -> Any:
        return {
            "pages": [
                {"name": p.name, "title": p.title, "description": p.description, "api": f"/api/pages/{p.name}"}
                for p in source.pages.values()
            ]
        }

    routes: list[Route | Mount] = [
        Route("/", guarded(overview_page)),
        Route("/positions", guarded(positions_page)),
        Route("/decisions", guarded(decisions_page)),
        Route("/decisions/{decision_id}", guarded(decision_page)),
        Route("/exits", guarded(exits_page)),
        Route("/exits/{intent_id}", guarded(exit_page)),
        Route("/guard", guarded(guard_page)),
        Route("/pages/{name}", guarded(plugin_page)),
        Route("/api/overview", guarded(api(lambda r: status.overview(source)))),
        Route("/api/health", guarded(api(lambda r: status.health(source)))),
        Route("/api/state", guarded(api(lambda r: status.trading_state(source, history=50)))),
        Route("/api/account", guarded(api(lambda r: status.account(source)))),
        Route("/api/positions", guarded(api(lambda r: status.positions(source)))),
        Route("/api/decisions", guarded(api(_decisions))),
        Route("/api/decisions/{decision_id}", guarded(api(api_decision))),
        Route("/api/exits", guarded(api(lambda r: status.exits(source)))),
        Route("/api/exits/{intent_id}", guarded(api(api_exit))),
        Route("/api/pages", guarded(api(api_pages))),
        Route("/api/pages/{name}", guarded(api(api_page))),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]
    if metrics:
        from tradekit.serve.metrics import metrics_endpoint

        routes.append(Route("/metrics", guarded(metrics_endpoint(source))))
    middleware = [
        Middleware(TrustedHostMiddleware, allowed_hosts=hosts or ["127.0.0.1", "localhost", "::1"]),
        Middleware(ReadOnlyGate, token=token),
    ]
    return Starlette(routes=routes, middleware=middleware)

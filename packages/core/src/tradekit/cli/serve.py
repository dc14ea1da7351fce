"""``tradekit serve``: a read-only status page and JSON API over the ledger (see docs/serve.md)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from tradekit.cli.common import config_option, console, ledger_option, load, open_ledger, plugins


@click.command()
@ledger_option
@config_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8700, show_default=True, help="Port (0: any free one).")
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow an address other machines reach (needs --token-file; a wildcard also needs --allowed-host).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A file holding the bearer token every request must carry (owner-only permissions, chmod 600).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    help="A host name clients use to reach the page (the Host header is checked against these); repeatable.",
)
@click.option(
    "--refresh",
    type=click.IntRange(0, 3600),
    default=5,
    show_default=True,
    help="Seconds between a page's refreshes (0: never).",
)
@click.option(
    "--stale-after",
    type=click.IntRange(1, 86_400),
    default=300,
    show_default=True,
    help="Seconds after which a trader's last cycle, or a quiet stream, is flagged stale.",
)
@click.option("--metrics", is_flag=True, help="Also serve Prometheus metrics at /metrics.")
def serve(
    ledger_url: str | None,
    config_path: Path | None,
    host: str,
    port: int,
    allow_remote: bool,
    token_file: Path | None,
    allowed_hosts: tuple[str, ...],
    refresh: int,
    stale_after: int,
    metrics: bool,
) -> None:
    """Serve a read-only status page and JSON API of the ledger (never places or changes anything)."""
    from tradekit.ledger import ledger_url as parse_ledger_url
    from tradekit.serve.app import create_app
    from tradekit.serve.security import ServeRefused, check_bind, read_token
    from tradekit.serve.security import allowed_hosts as host_allowlist
    from tradekit.serve.server import StatusServer

    manager = plugins()
    settings = load(config_path, manager=manager).settings
    try:
        token = read_token(token_file) if token_file is not None else None
        check_bind(host, allow_remote=allow_remote, token=token, extra_hosts=allowed_hosts)
    except ServeRefused as exc:
        raise click.ClickException(str(exc)) from None
    where = ledger_url or settings.ledger.url
    full_url = parse_ledger_url(where).render_as_string(hide_password=False)
    with open_ledger(where, create=False) as ledger:
        app = create_app(
            ledger=ledger,
            ledger_url=full_url,
            settings=settings,
            plugins=manager,
            token=token,
            hosts=host_allowlist(host, allowed_hosts),
            stale_after=timedelta(seconds=stale_after),
            refresh_seconds=refresh,
            metrics=metrics,
        )
        try:
            server = StatusServer(
                app, host=host, port=port, allow_remote=allow_remote, token=token, extra_hosts=allowed_hosts
            )
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        shown = f"[{host}]" if ":" in host else host
        auth = "a bearer token is required" if token else "no token"
        console.print(
            f"tradekit serve: http://{shown}:{server.port}/ (read-only; {auth}) over {ledger.url}; Ctrl-C stops it",
            markup=False,
            soft_wrap=True,
        )
        server.run()

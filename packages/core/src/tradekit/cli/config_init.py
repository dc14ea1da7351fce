"""``tradekit config init``: write a complete, commented configuration file."""

from __future__ import annotations

from pathlib import Path

import click

from tradekit.cli.common import console
from tradekit.config.template import config_template


@click.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default=Path("tradekit.toml"))
@click.option("--force", is_flag=True, help="Replace an existing file.")
def config_init(path: Path, force: bool) -> None:
    """Write every setting with its default and meaning to PATH (default tradekit.toml; - for stdout)."""
    text = config_template()
    if str(path) == "-":
        click.echo(text, nl=False)
        return
    if path.exists() and not force:
        raise click.ClickException(f"{path} exists; choose another path or replace it with --force")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    console.print(f"wrote {path}: every setting at its default; check it with tradekit config check --config {path}")

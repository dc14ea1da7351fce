"""tradekit config init: a commented file of every setting that loads back as the defaults."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
from click.testing import CliRunner

from tradekit.cli import cli
from tradekit.config import Settings, load_settings
from tradekit.config.template import MEANINGS, config_template


def _dotted_fields() -> list[str]:
    keys = []
    defaults = Settings()
    for field in attrs.fields(Settings):
        section = getattr(defaults, field.name)
        if attrs.has(type(section)):
            keys += [f"{field.name}.{inner.name}" for inner in attrs.fields(type(section))]
        else:
            keys.append(field.name)
    return keys


def test_the_written_file_loads_and_equals_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "tradekit.toml"
    result = CliRunner().invoke(cli, ["config", "init", str(path)])
    assert result.exit_code == 0, result.output
    loaded = load_settings(path, env={})
    assert loaded.settings == Settings()
    assert loaded.warnings == ()


def test_every_setting_appears_with_its_meaning() -> None:
    text = config_template()
    for key in _dotted_fields():
        name = key.rsplit(".", 1)[-1]
        assert MEANINGS[key] in text, f"{key} has no comment in the template"
        if key not in ("plugins", "allocation.tiers"):
            # A setting that is off by default (None) is shown commented out, ready to be given a value.
            line = rf"^(# )?{re.escape(name)} = " if _default(key) is None else rf"^{re.escape(name)} = "
            assert re.search(line, text, flags=re.MULTILINE), f"{key} has no line"
    assert set(MEANINGS) == set(_dotted_fields())


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "tradekit.toml"
    path.write_text("# mine\n")
    refused = CliRunner().invoke(cli, ["config", "init", str(path)])
    assert refused.exit_code != 0
    assert "exists" in refused.output
    assert path.read_text() == "# mine\n"
    assert CliRunner().invoke(cli, ["config", "init", str(path), "--force"]).exit_code == 0
    assert path.read_text() == config_template()


def test_init_writes_to_standard_output_with_a_dash() -> None:
    result = CliRunner().invoke(cli, ["config", "init", "-"])
    assert result.exit_code == 0
    assert result.output == config_template()


def test_the_commented_paper_table_is_valid_paper_settings_at_their_defaults(tmp_path: Path) -> None:
    from tradekit.broker.paper_plugin import PaperSettings, load_paper_settings

    text = config_template()
    table = text[text.index("# [plugins.paper]") :]
    path = tmp_path / "paper.toml"
    path.write_text("\n".join(line.removeprefix("# ") for line in table.splitlines()))
    paper = load_paper_settings(load_settings(path, env={}).settings)
    assert paper == PaperSettings(state_file="paper.json")


def _default(key: str) -> object:
    section, _, name = key.partition(".")
    value: object = getattr(Settings(), section)
    return getattr(value, name) if name else value

"""Every cache tradekit keeps (fetched bars, calendar tables) is found by one rule: the XDG
base-directory specification's."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradekit.data import DataError
from tradekit.data.fetch import default_cache_dir
from tradekit.user_cache import NoCacheDirectory, user_cache_dir


def test_an_absolute_xdg_cache_home_is_used_and_a_relative_one_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setattr(Path, "home", lambda: home)
    absolute = tmp_path / "xdg"
    assert user_cache_dir("calendars", env={"XDG_CACHE_HOME": str(absolute)}) == absolute / "tradekit" / "calendars"
    assert default_cache_dir({"XDG_CACHE_HOME": str(absolute)}) == absolute / "tradekit" / "bars"
    # Unset, empty, or relative (invalid by the specification): ~/.cache, never the
    # directory the command started in.
    for env in ({}, {"XDG_CACHE_HOME": ""}, {"XDG_CACHE_HOME": "relative/cache"}):
        assert default_cache_dir(env) == home / ".cache" / "tradekit" / "bars"
        assert user_cache_dir("calendars", env=env) == home / ".cache" / "tradekit" / "calendars"


def test_without_a_home_or_an_absolute_xdg_cache_home_the_bars_cache_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(Path, "home", homeless)
    with pytest.raises(NoCacheDirectory, match="set XDG_CACHE_HOME to an absolute path"):
        user_cache_dir("bars", env={"XDG_CACHE_HOME": "relative"})
    with pytest.raises(DataError, match=r"set XDG_CACHE_HOME to an absolute path, or pass --cache DIR"):
        default_cache_dir({})
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "tradekit" / "bars"

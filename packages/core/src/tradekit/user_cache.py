"""Where tradekit keeps what it can build again: the user's cache directory.

One rule for every cache (fetched bars, calendar tables), the XDG base-directory one:
``$XDG_CACHE_HOME`` when it is an absolute path, else ``~/.cache``. A relative
``$XDG_CACHE_HOME`` is invalid by the specification and ignored, so a cache never lands
relative to whatever directory a command happened to start in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class NoCacheDirectory(RuntimeError):
    """Neither an absolute ``$XDG_CACHE_HOME`` nor a home directory to be found."""


def user_cache_dir(*parts: str, env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/tradekit/<parts>`` (``~/.cache/tradekit/<parts>`` when it is unset or
    relative); NoCacheDirectory when there is no home directory either (an anonymous
    container user)."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:
            raise NoCacheDirectory(
                "no cache directory: $XDG_CACHE_HOME is not an absolute path and no home directory "
                "can be found; set XDG_CACHE_HOME to an absolute path"
            ) from None
    return Path(base, "tradekit", *parts)

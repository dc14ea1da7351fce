"""Keep secrets out of every output: log records, tracebacks, and what the CLI writes.

A secret is registered once (``register_secret``; ``register_environment_secrets`` finds
API keys, secrets, passwords and tokens in the environment, and the password of any URL
there) and from then on ``redact`` masks it wherever it appears. Any eight characters of a
secret in a row count as the secret, because libraries shorten what they log (websockets
prints the ends of a long frame): every such piece is masked, not only the whole value.

``install`` puts the masking where no handler can bypass it: in the log record factory, so
every record of every logger (tradekit's, ccxt's, alpaca-py's, urllib3's, aiohttp's,
websockets') is masked as it is made, message, arguments and traceback alike, before any
handler or filter sees it.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

MASK = "<redacted>"
PIECE = 8
"""Any run of this many characters of a secret is masked."""
_SHORTEST_SECRET = 4
# Environment variables whose value is a credential: API keys and their ids, secrets,
# passwords, passphrases, tokens (APCA_API_SECRET_KEY, TRADEKIT_CCXT_BYBIT_API_KEY, ...).
_CREDENTIAL_NAME = re.compile(r"SECRET|PASSW(OR)?D|PASSPHRASE|TOKEN|API_?KEY|KEY_ID|ACCESS_KEY|PRIVATE_KEY", re.I)
# A URL's password: all after the first colon of its user part. In free text a URL ends at
# white space; a text that is one URL may hold some there (apprise reads ``ops:my pw@host``).
_URL_PASSWORD = re.compile(r"://[^/\s:@]*:([^@\s/]+)@")
_WHOLE_URL_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@:]*:([^/?#@]+)@")
# A URL's query parameters that carry a credential: libpq takes ``?password=`` and
# ``?sslpassword=`` besides ``user:password@``; any key naming a password, secret, token or key;
# apprise's ``?pass=`` and ``?pwd=``, alone or as the last word of a key (``smtp_pass``), not
# inside one (``bypass``, ``passive``).
_SECRET_QUERY_KEY = re.compile(r"passw(or)?d|secret|token|key|(^|[^a-z0-9])(pass|pwd)$", re.I)
_URL_QUERY_SECRET = re.compile(r"[?&]([^=&#\s]+)=([^&#\s]+)")


class SecretRegistry:
    """The secrets known to this process and the pattern that finds any piece of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        value = value.strip()
        if len(value) < _SHORTEST_SECRET:
            # Too short to be a credential anyone issues; masking it would garble every line.
            return
        with self._lock:
            if value not in self._secrets:
                self._secrets.add(value)
                self._pattern = None

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._secrets:
                pieces = {
                    secret[i : i + PIECE] if len(secret) > PIECE else secret
                    for secret in self._secrets
                    for i in range(max(1, len(secret) - PIECE + 1))
                }
                # A lookahead finds overlapping pieces, so a secret's whole run is masked.
                alternatives = "|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True))
                self._pattern = re.compile(f"(?=({alternatives}))")
            return self._pattern

    def redact(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        spans: list[list[int]] = []
        for match in pattern.finditer(text):
            start, end = match.start(), match.start() + len(match.group(1))
            if spans and start <= spans[-1][1]:
                spans[-1][1] = max(spans[-1][1], end)
            else:
                spans.append([start, end])
        if not spans:
            return text
        out, last = [], 0
        for start, end in spans:
            out.append(text[last:start])
            out.append(MASK)
            last = end
        out.append(text[last:])
        return "".join(out)

    def leaked(self, text: str) -> list[str]:
        """The registered secrets of which some piece appears in ``text`` (for tests and checks)."""
        with self._lock:
            secrets = sorted(self._secrets)
        return [s for s in secrets if any(s[i : i + PIECE] in text for i in range(max(1, len(s) - PIECE + 1)))]


SECRETS = SecretRegistry()


def register_secret(value: str) -> None:
    """Mask ``value`` (and any eight characters of it in a row) in everything tradekit outputs."""
    SECRETS.add(value)


def is_secret_query_key(name: str) -> bool:
    """Whether a URL query parameter named ``name`` carries a credential (``password``,
    ``sslpassword``, ``api_key``, ``token``, ``pass``, ``pwd``, ``passwd`` ...), in any case."""
    return bool(_SECRET_QUERY_KEY.search(name))


def url_secrets(text: str) -> list[str]:
    """The credentials written in the URL ``text``: its ``user:password@`` password and the
    values of query parameters named like a credential, as written and percent-decoded."""
    if "://" not in text:
        return []
    found = _URL_PASSWORD.findall(text) + _WHOLE_URL_PASSWORD.findall(text.strip())
    found += [value for key, value in _URL_QUERY_SECRET.findall(text) if is_secret_query_key(key)]
    return sorted({form for value in found for form in (value, urllib.parse.unquote_plus(value))})


def register_url_secrets(text: str) -> None:
    """Register the credentials written in the URL ``text`` (see ``url_secrets``)."""
    for value in url_secrets(text):
        SECRETS.add(value)


def register_environment_secrets(env: Mapping[str, str]) -> None:
    """Register the credentials in ``env``: values of variables named like API keys, secrets,
    passwords or tokens, and the password of any URL (in its user part or its query)."""
    for name, value in env.items():
        if _CREDENTIAL_NAME.search(name):
            SECRETS.add(value)
        register_url_secrets(value)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret (and any piece of one) masked."""
    return SECRETS.redact(text)


def redact_exception(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` with secrets masked (its repr may hold a request's headers)."""
    return redact(f"{type(exc).__name__}: {exc}")


# Settings whose values are URLs that carry credentials in any part (a notification URL's
# token may be its host or its path): shown as their scheme only.
_SECRET_URL_SETTINGS = frozenset({"notifications.urls"})
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _secret_url(value: Any) -> Any:
    match = _SCHEME.match(value) if isinstance(value, str) else None
    return f"{match.group(1)}://{MASK}" if match else MASK


def redact_settings(data: Any, path: str = "") -> Any:
    """JSON-ready settings with every credential masked: values under keys named like one
    (``secret_key``, ``api_key``, ``password`` ...), notification URLs (but their scheme), URL
    passwords, and registered secrets."""
    if path in _SECRET_URL_SETTINGS and isinstance(data, list | tuple):
        return [_secret_url(value) for value in data]
    if isinstance(data, Mapping):
        return {
            key: MASK
            if isinstance(key, str) and _CREDENTIAL_NAME.search(key)
            else redact_settings(value, f"{path}.{key}" if path else str(key))
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [redact_settings(value, path) for value in data]
    if isinstance(data, str):
        return redact(_mask_url_secrets(data))
    return data


def _mask_url_secrets(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: m.group(0).replace(m.group(1), MASK), text)
    if "://" not in text:
        return text

    def masked(match: re.Match[str]) -> str:
        key = match.group(1)
        return f"{match.group(0)[0]}{key}={MASK}" if is_secret_query_key(key) else match.group(0)

    return _URL_QUERY_SECRET.sub(masked, text)


def _scrub(record: logging.LogRecord) -> None:
    if not SECRETS:
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a record that cannot format itself is shown as logging does
        message = str(record.msg)
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters reuse exc_text when it is set, so the masked traceback is what they print.
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_install_lock = threading.Lock()
_installed = False


def install() -> None:
    """Mask secrets in every log record of every logger, from now on (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


class RedactingStream:
    """A text stream that masks secrets in whatever is written to it (the CLI's stdout/stderr)."""

    def __init__(self, inner: TextIO) -> None:
        self._inner = inner

    @property
    def inner(self) -> TextIO:
        return self._inner

    def write(self, text: str) -> int:
        self._inner.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

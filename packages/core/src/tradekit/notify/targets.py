"""Notification targets: apprise URLs, which carry credentials and are treated as secrets.

A URL is never printed, logged or rendered whole. Before anything could show it, its
credential-bearing parts are registered with ``tradekit.redaction`` (so a library that logs
the request it makes is masked too), each as written and percent-decoded: what
``redaction.url_secrets`` finds (the password, the values of query keys naming a credential
such as ``pass``, ``password``, ``token``, ``key``, however short), and every part of eight
characters or more that is not a host name (bot tokens, webhook ids and keys, API keys in the
query).
Where a target must be named, ``describe_target`` gives its scheme only.
"""

from __future__ import annotations

import re
import urllib.parse

import tradekit.redaction as redaction

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
_PARTS = re.compile(r"[/?#&=@:]")
# A host name or an IPv4 address: names where to send, not credentials.
_HOST_NAME = re.compile(r"^(localhost|\d{1,3}(\.\d{1,3}){3}|([A-Za-z0-9-]+\.)+[A-Za-z]{2,63})$")
_SHORTEST_TOKEN = 8


def register_target_secrets(url: str) -> None:
    """Register the credential-bearing parts of ``url`` as secrets (see the module's docstring)."""
    url = url.strip()
    match = _SCHEME.match(url)
    if match is None:
        redaction.register_secret(url)
        return
    redaction.register_url_secrets(url)
    for part in _PARTS.split(match.group(2)):
        if len(part) >= _SHORTEST_TOKEN and not _HOST_NAME.match(part):
            # As written and percent-decoded: a library logs what it decoded from the URL.
            for form in {part, urllib.parse.unquote_plus(part)}:
                redaction.register_secret(form)


def describe_target(url: str) -> str:
    """Name a target without its credentials: ``tgram://<redacted>``."""
    match = _SCHEME.match(url.strip())
    return f"{match.group(1)}://{redaction.MASK}" if match else redaction.MASK


def target_problem(url: str) -> str | None:
    """Why ``url`` is not a notification URL apprise can send to, or None when it is.

    Registers its secrets first; the answer names the scheme, never the URL.
    """
    register_target_secrets(url)
    match = _SCHEME.match(url.strip())
    if match is None:
        return "is not a URL (scheme://...): see the apprise documentation for each service's URL"
    import apprise

    if apprise.Apprise.instantiate(url.strip()) is None:
        return (
            f"({describe_target(url)}) is not a notification URL apprise can use: an unknown service, or a URL "
            "missing what the service needs (see the apprise wiki for its form)"
        )
    return None

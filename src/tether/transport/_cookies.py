"""The cookies of one Engine.IO session (load-balancer affinity), on the stdlib's jar.

A load balancer that pins a session to one server does it with a cookie set on the
handshake's answer (HAProxy ``cookie ... insert``, nginx ``sticky``); every later request of
the session must carry it, or it lands on a server that does not know the sid. The rules of
which cookie goes where (domain, path, expiry, ``Secure`` only over TLS) are RFC 6265's, as
``http.cookiejar`` implements them; this module only adapts our requests and answers to it.
One jar per session: a new connect starts with an empty one (specs/transports.md §Cookies).
"""

from __future__ import annotations

import http.client
import http.cookiejar
import urllib.request
from collections.abc import Iterable
from typing import Final

__all__ = ["SessionCookies", "http_url", "with_cookie"]

_HTTP_SCHEMES: Final = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def http_url(url: str) -> str:
    """``url`` with a ``ws``/``wss`` scheme written as ``http``/``https``: cookies know no
    WebSocket schemes (RFC 6455 4.1 sends them with the upgrade as for HTTP)."""
    scheme, sep, rest = url.partition("://")
    return _HTTP_SCHEMES.get(scheme.lower(), scheme) + sep + rest


def with_cookie(
    headers: list[tuple[bytes, bytes]], cookie: bytes | None
) -> list[tuple[bytes, bytes]]:
    """``headers`` with the jar's ``cookie`` added: appended to the caller's own ``Cookie``
    header if there is one (RFC 6265 5.4: a request carries one ``Cookie`` header)."""
    if cookie is None:
        return headers
    out = []
    for name, value in headers:
        if name.lower() == b"cookie":
            cookie = value + b"; " + cookie
        else:
            out.append((name, value))
    out.append((b"Cookie", cookie))
    return out


class _Answer:
    """What ``CookieJar.extract_cookies`` reads from a response: its headers."""

    __slots__ = ("_headers",)

    def __init__(self, headers: http.client.HTTPMessage) -> None:
        self._headers = headers

    def info(self) -> http.client.HTTPMessage:
        return self._headers


class SessionCookies:
    """Cookies the server set during one session, for the requests that follow.

    Never shown: ``repr`` says how many there are, not what they hold (a session cookie is
    a credential).
    """

    __slots__ = ("_jar",)

    def __init__(self) -> None:
        self._jar = http.cookiejar.CookieJar()

    def __len__(self) -> int:
        return len(self._jar)

    def __repr__(self) -> str:
        return f"<SessionCookies: {len(self._jar)}>"

    def header(self, url: str) -> bytes | None:
        """The ``Cookie`` header value for a request to ``url``, or ``None``."""
        if not len(self._jar):  # the usual case: no affinity cookie at all
            return None
        request = urllib.request.Request(http_url(url))
        self._jar.add_cookie_header(request)
        value = request.get_header("Cookie")
        return None if value is None else value.encode("latin-1")

    def update(self, url: str, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Take the ``Set-Cookie`` headers of an answer to a request for ``url``."""
        values = [value for name, value in headers if name.lower() == b"set-cookie"]
        if not values:
            return
        message = http.client.HTTPMessage()
        for value in values:
            message["Set-Cookie"] = value.decode("latin-1")
        request = urllib.request.Request(http_url(url))
        self._jar.extract_cookies(_Answer(message), request)  # type: ignore[arg-type]

"""HTTP proxies: which one a connection goes through, and the ``CONNECT`` tunnel.

specs/transports.md §Proxies has the rules; in short:

* ``proxy="http://user:pass@host:port"`` sends every connection through that proxy.
  Otherwise, with ``trust_env=True`` (the default), ``HTTPS_PROXY`` applies to ``wss``/
  ``https`` servers, ``HTTP_PROXY`` to ``ws``/``http`` ones (``ALL_PROXY`` to both when the
  specific one is missing), and ``NO_PROXY`` names the hosts that are reached directly; the
  stdlib reads them (``urllib.request.getproxies_environment``,
  ``proxy_bypass_environment``), lower-case names included, and ignores ``HTTP_PROXY`` in a
  CGI request (httpoxy). Only ``http://`` proxies are supported: the hop to the proxy is plain
  TCP, and TLS to the server runs inside the tunnel.
* WebSocket (``ws`` and ``wss``) and polling over ``https`` go through a ``CONNECT`` tunnel
  (RFC 9110 9.3.6); polling over plain ``http`` sends absolute-form requests to the proxy
  (RFC 9112 3.2.2), as browsers do, which proxies allow where they refuse ``CONNECT`` to
  port 80.
* Credentials in the proxy URL become ``Proxy-Authorization: Basic`` (RFC 7617). They are
  secrets: :class:`Proxy` never shows them (``repr``, ``where``), and no error text does.
"""

from __future__ import annotations

import os
import urllib.request
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

import anyio.abc
import h11

__all__ = ["Proxy", "ProxyRefused", "open_tunnel", "parse_proxy", "select_proxy"]

_DEFAULT_PORT: Final = 80
#: The ``<scheme>_proxy`` variables a connection can use (``no`` is NO_PROXY).
_PROXY_SCHEMES: Final = ("http", "https", "all", "no")
#: What the tunnel's answer head may take at most (h11's default limit).
_MAX_HEAD: Final = 16 * 1024
_READ_SIZE: Final = 16 * 1024

#: NO_PROXY's rules, as urllib applies them (typeshed does not list the function).
_bypass: Callable[[str, dict[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]

_REASONS: Final = {
    # tinyproxy answers wrong credentials with 401 (and missing ones with 407).
    401: "unauthorized: the proxy refused the credentials",
    403: "forbidden",
    407: "proxy authentication required",
    502: "bad gateway: the proxy could not reach the server",
    503: "service unavailable",
    504: "gateway timeout: the proxy could not reach the server in time",
}


@dataclass(frozen=True, slots=True, repr=False)
class Proxy:
    """An HTTP proxy: where it is, and the ``Proxy-Authorization`` for it, if any.

    ``where`` (``http://host:port``) is what error texts and logs name; the credentials
    appear in neither, nor in ``repr``.
    """

    host: str
    port: int
    authorization: bytes | None = field(default=None, compare=False)

    @property
    def where(self) -> str:
        """``http://host:port``: the proxy as error texts and logs name it (no credentials)."""
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers every request to the proxy carries (its credentials)."""
        return [] if self.authorization is None else [(b"Proxy-Authorization", self.authorization)]

    def __repr__(self) -> str:
        auth = ", with credentials" if self.authorization is not None else ""
        return f"Proxy({self.where!r}{auth})"


class ProxyRefused(Exception):
    """The proxy answered ``CONNECT`` with a status other than 2xx."""

    def __init__(self, status: int) -> None:
        super().__init__(describe_status(status))
        self.status = status


def describe_status(status: int) -> str:
    """``HTTP 407 (proxy authentication required)``, for error texts."""
    reason = _REASONS.get(status)
    return f"HTTP {status}" + (f" ({reason})" if reason else "")


def parse_proxy(url: str) -> Proxy:
    """Check a proxy URL (``http://[user:pass@]host[:port]``; no scheme means ``http``).

    Raises ``ValueError`` (``TypeError`` for a non-string) with a message that never repeats
    the credentials.
    """
    if not isinstance(url, str):
        raise TypeError(f"proxy must be a str, not {type(url).__name__}")
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("the proxy URL is invalid (its port, or its IPv6 address)") from None
    shown = f"{parts.scheme}://{parts.hostname or ''}"
    if parts.scheme.lower() != "http":
        raise ValueError(
            f"only http:// proxies are supported, not {shown} "
            "(TLS to the server runs inside the proxy's tunnel)"
        )
    if not parts.hostname:
        raise ValueError("the proxy URL has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"the proxy URL {shown} must be http://host:port only")
    authorization = None
    if parts.username is not None or parts.password is not None:
        userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        authorization = b"Basic " + b64encode(userinfo.encode("utf-8"))
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"the proxy URL {shown} has an invalid host name") from None
    return Proxy(host, port or _DEFAULT_PORT, authorization)


def _environment_proxies() -> dict[str, str]:
    """The proxy variables as ``urllib.request.getproxies_environment`` reads them (a
    lower-case name wins over its upper-case twin, even empty; ``HTTP_PROXY`` is ignored in a
    CGI request), looking up those names only: urllib walks the whole environment, which
    on every connect costs more than the rest of its set-up."""
    environ = os.environ
    proxies: dict[str, str] = {}
    for scheme in _PROXY_SCHEMES:
        value = environ.get(f"{scheme}_proxy")
        if value is None:
            value = environ.get(f"{scheme.upper()}_PROXY")
        if value:
            proxies[scheme] = value
    if "REQUEST_METHOD" in environ:
        proxies.pop("http", None)
    return proxies


def select_proxy(
    host: str, port: int, *, secure: bool, proxy: Proxy | None, trust_env: bool
) -> Proxy | None:
    """The proxy a connection to ``host``:``port`` goes through, or ``None`` (direct).

    An explicit ``proxy`` always applies; otherwise the environment does when
    ``trust_env`` is set. Raises ``ValueError`` for a proxy variable that is not a valid
    proxy URL (its message names the variable, not its value).
    """
    if proxy is not None:
        return proxy
    if not trust_env:
        return None
    proxies = _environment_proxies()
    scheme = "https" if secure else "http"
    url = proxies.get(scheme) or proxies.get("all")
    if not url:
        return None
    if _bypass(f"{host}:{port}", proxies):
        return None
    try:
        return parse_proxy(url)
    except ValueError as exc:
        raise ValueError(f"{scheme.upper()}_PROXY from the environment: {exc}") from None


async def open_tunnel(stream: anyio.abc.ByteStream, proxy: Proxy, authority: str) -> None:
    """Ask the proxy on ``stream`` for a tunnel to ``authority`` (``host:port``, RFC 9110
    9.3.6) and wait until it is open.

    Raises :class:`ProxyRefused` for a refusal, ``h11.RemoteProtocolError`` for an answer
    that is not HTTP, and what the stream raises when it breaks (``anyio.EndOfStream``
    when the proxy hangs up).
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    target = authority.encode("ascii")
    request = h11.Request(
        method=b"CONNECT", target=target, headers=[(b"Host", target), *proxy.headers()]
    )
    await stream.send(conn.send(request) + conn.send(h11.EndOfMessage()))
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive(_READ_SIZE))
            continue
        if isinstance(event, h11.InformationalResponse):
            continue  # RFC 9110 15.2: a 1xx before the real answer
        if isinstance(event, h11.Response):
            if not 200 <= event.status_code < 300:
                raise ProxyRefused(event.status_code)
            trailing, _ = conn.trailing_data
            if trailing:
                # A proxy speaks first only by mistake: neither TLS nor our HTTP expects it.
                raise h11.RemoteProtocolError("the proxy sent data into the tunnel before we did")
            return
        if isinstance(event, h11.ConnectionClosed):
            raise anyio.EndOfStream
        raise h11.RemoteProtocolError("unexpected answer to CONNECT")  # pragma: no cover

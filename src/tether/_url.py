"""Building the Engine.IO WebSocket URL from what the user typed, and redacting URLs for logs.

The user gives a server address (``https://rt.example.com``, ``ws://localhost:3000``) plus
the ``path`` and ``query`` options; the transport needs the exact URL of the WebSocket
upgrade. Engine.IO v4 (socketio-protocol.md 1.1) fixes its shape::

    wss://rt.example.com/socket.io/?EIO=4&transport=websocket&<user query>

Decisions, each with its reason:

- ``http``/``https`` become ``ws``/``wss`` (RFC 6455 3: the same host, port and TLS rule).
- The Engine.IO path comes from ``path=`` only. socket.io-client reads a path in the server
  URL as the *namespace*; tether has a separate ``namespace`` option, so a URL path other
  than ``/`` is refused with a message that says where it should go, rather than silently
  meaning one thing or the other.
- ``path`` gets a trailing ``/`` when it has none (and a leading one), as socket.io-client
  (``addTrailingSlash``, on by default) and python-socketio's client do: Node's engine.io
  matches its path, ``/socket.io/`` for ``path: "/socket.io"``, by prefix, so a request for
  ``/socket.io?EIO=4`` misses it and is left to hang. The slash never hurts: a Node server
  with ``addTrailingSlash: false`` matches ``/socket.io`` by prefix, which ``/socket.io/``
  has, and python-engineio adds the slash to the request's path before it compares.
- ``EIO`` and ``transport`` belong to the protocol: a user query naming them is an error,
  never a silent override (a wrong ``EIO`` gets the upgrade refused with a 400).
- A query in the URL itself is kept, and the ``query`` option wins over it for the same key
  (the option is the one that can be refreshed for every attempt).
- Credentials in the URL (``user:pass@``) are refused: nothing would send them, and URLs end
  up in logs. Fragments are refused (RFC 6455 3: "MUST NOT be used on these URIs").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit

__all__ = ["build_websocket_url", "engine_url", "redact_url"]

_SCHEMES: Final = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_RESERVED_QUERY: Final = ("EIO", "transport")
# Characters a path may carry unescaped (RFC 3986 pchar plus "/"); "%" stays so that a path
# the user already percent-encoded is not encoded twice.
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~%"


def build_websocket_url(
    url: str,
    *,
    path: str = "/socket.io/",
    query: Mapping[str, str] | None = None,
) -> str:
    """Return the ``ws://`` or ``wss://`` URL of the Engine.IO v4 WebSocket endpoint.

    ``url`` is the server address (``http``, ``https``, ``ws`` or ``wss``; its path must be
    empty or ``/``), ``path`` the Engine.IO path, ``query`` extra query parameters (strings).
    Raises ``ValueError`` for a URL or option that cannot work, with a message that never
    repeats a query value, and ``TypeError`` for a query key or value that is not a string.

    >>> build_websocket_url("https://rt.example.com", query={"token": "abc"})
    'wss://rt.example.com/socket.io/?EIO=4&transport=websocket&token=abc'
    """
    parts = _split(url)
    where = redact_url(url)
    netloc = _netloc(parts, url)
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"credentials in the URL ({where}) are not supported: "
            "send them with the headers, query or auth option"
        )
    if parts.fragment or url.rstrip().endswith("#"):
        raise ValueError(f"a WebSocket URL cannot have a fragment ('#...'): {where}")
    if parts.path not in ("", "/"):
        raise ValueError(
            f"the URL {where} has a path; give the server address only and set the "
            f"Engine.IO path with path={parts.path!r} (the namespace has its own option, "
            "namespace=)"
        )

    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if "?" in path or "#" in path:
        raise ValueError(f"path must not contain '?' or '#': {path!r}")
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    encoded_path = quote(path, safe=_PATH_SAFE)

    pairs: dict[str, str] = {"EIO": "4", "transport": "websocket"}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        _check_key(key, "the URL's query")
        pairs[key] = value
    if query is not None:
        for key, value in query.items():
            if not isinstance(key, str):
                raise TypeError(f"query keys must be str, not {type(key).__name__}")
            if not isinstance(value, str):
                raise TypeError(f"query values must be str; {key!r} has a {type(value).__name__}")
            _check_key(key, "query")
            pairs[key] = value
    encoded_query = urlencode(pairs, quote_via=quote, safe="")
    return f"{_SCHEMES[parts.scheme.lower()]}://{netloc}{encoded_path}?{encoded_query}"


def engine_url(
    url: str, transport: Literal["polling", "websocket"], *, sid: str | None = None
) -> str:
    """The same Engine.IO endpoint on another transport (socketio-protocol.md 1.1, 1.7).

    ``url`` is a URL from :func:`build_websocket_url` (or one made the same way for
    polling). The scheme follows the transport (``http``/``https`` for polling, ``ws``/
    ``wss`` for WebSocket, TLS kept), ``transport=`` is set, and ``sid=`` (the session to
    upgrade) is appended when given, replacing any. The rest of the query is kept byte for
    byte: it may hold the user's percent-encoding, which decoding and encoding again could
    change.
    """
    parts = urlsplit(url)
    secure = parts.scheme.lower() in ("https", "wss")
    if transport == "polling":
        scheme = "https" if secure else "http"
    else:
        scheme = "wss" if secure else "ws"
    items = [item for item in parts.query.split("&") if item and not item.startswith("sid=")]
    items = [f"transport={transport}" if item.startswith("transport=") else item for item in items]
    if f"transport={transport}" not in items:
        items.append(f"transport={transport}")
    if sid is not None:
        items.append("sid=" + quote(sid, safe=""))
    return f"{scheme}://{parts.netloc}{parts.path}?{'&'.join(items)}"


def redact_url(url: str) -> str:
    """Return ``scheme://host[:port]/path`` of ``url``: no credentials, query or fragment.

    For log lines and exception messages, where a token in a query string or a password in
    the URL must never appear. Never raises: a URL too broken to parse becomes
    ``"<invalid URL>"``.
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "<invalid URL>"
    host = parts.netloc.rpartition("@")[2]
    if not parts.scheme or not host:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{parts.path}"


def _split(url: str) -> SplitResult:
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, not {type(url).__name__}")
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # e.g. "Invalid IPv6 URL"
        raise ValueError(f"invalid URL {redact_url(url)}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        shown = repr(parts.scheme) if parts.scheme else "no scheme"
        raise ValueError(
            f"unsupported URL scheme ({shown}) in {redact_url(url)}: "
            "use http://, https://, ws:// or wss://"
        )
    return parts


def _netloc(parts: SplitResult, url: str) -> str:
    host = parts.hostname
    if not host:
        raise ValueError(f"the URL {redact_url(url)} has no host")
    if any(c.isspace() or ord(c) < 0x20 or c in "\\%<>\"'{}|^`" for c in host):
        raise ValueError(f"the URL {redact_url(url)} has an invalid host")
    try:
        host.encode("idna")  # what DNS, TLS and the Host header will need
    except UnicodeError:
        raise ValueError(f"the URL {redact_url(url)} has an invalid host name") from None
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port in (-1, 0):
        raise ValueError(f"the URL {redact_url(url)} has an invalid port (1 to 65535)")
    shown_host = f"[{host}]" if ":" in host else host
    return shown_host if port is None else f"{shown_host}:{port}"


def _check_key(key: str, where: str) -> None:
    if key in _RESERVED_QUERY:
        raise ValueError(
            f"{where} cannot set {key!r}: EIO=4 and transport=websocket are set by tether "
            "(Engine.IO v4 requires them)"
        )

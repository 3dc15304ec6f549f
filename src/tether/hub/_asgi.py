"""The ASGI layer in front of python-socketio: per-connection records and frame checks.

Everything here uses only the ASGI interface (plus ``_compat.transport_of`` to remember each
connection's transport). For every HTTP request and WebSocket it:

* refuses new requests once the hub is stopping (503, or a refused WebSocket handshake), so a
  graceful stop does not have to reach into uvicorn's listeners;
* answers methods other than GET, POST and OPTIONS itself (405): python-engineio logs a
  WARNING for each one (``Method %s not supported``);
* puts a ``Connection`` record in the scope (``SCOPE_KEY``), which python-engineio copies into
  the environ the hub sees at CONNECT;
* on a WebSocket, drops text frames that are not Engine.IO packets (empty, or not starting with
  a packet type digit ``0``-``6``, Engine.IO v4 §Packet encoding; ``b`` + base64 is for
  long-polling only) and reports them as malformed. python-engineio would raise on them
  outside its reader loop, which skips the disconnect path (the member stays in its channels
  until the ping timeout) and makes uvicorn log a traceback;
* on a long-polling POST, checks the payload the same way (packets separated by ``\x1e``,
  Engine.IO v4 §Payload; ``b`` + strict base64 allowed) and answers 400 to a bad one, which
  python-engineio would log at ERROR with a traceback ("post request handler error").
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ._compat import transport_of

__all__ = ["SCOPE_KEY", "Connection", "HubASGI", "connection_of"]

#: Where the hub's per-connection record lives in an ASGI scope.
SCOPE_KEY = "tether.connection"

_ENGINEIO_TYPES = frozenset("0123456")
_METHODS = frozenset({"GET", "POST", "OPTIONS"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(eq=False)
class Connection:
    """What the hub knows about one HTTP request or WebSocket."""

    websocket: bool
    transport: Any = None
    #: The Socket.IO sid once the client has connected (set by the hub), for log lines.
    sid: str | None = None
    malformed: int = 0


def connection_of(environ: Any) -> Connection | None:
    """The record the ASGI layer put in the scope behind ``environ`` (see ``_compat``)."""
    from ._compat import asgi_scope

    scope = asgi_scope(environ) if environ is not None else None
    conn = scope.get(SCOPE_KEY) if scope is not None else None
    return conn if isinstance(conn, Connection) else None


class HubASGI:
    """Wraps python-socketio's ASGI app; see the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        on_bad_frame: Callable[[Connection, str], None],
        on_bad_payload: Callable[[str, str], None],
        max_body: int,
    ) -> None:
        self._app = app
        self._on_bad_frame = on_bad_frame
        self._on_bad_payload = on_bad_payload
        self._max_body = max_body
        self.accepting = True
        #: WebSockets that upgrade an existing long-polling session, by its Engine.IO sid:
        #: the environ python-socketio keeps for such a session is the polling request's.
        self.upgrades: dict[str, Connection] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self.accepting:
                await _respond(send, 503, b"the hub is stopping")
            elif scope.get("method") not in _METHODS:
                await _respond(send, 405, b"method not allowed")
            else:
                scope = {**scope, SCOPE_KEY: Connection(websocket=False)}
                session = _query_sid(scope)
                if scope.get("method") == "POST" and session is not None:
                    checked = await self._checked_body(scope, receive, send, session)
                    if checked is None:
                        return
                    receive = checked
                await self._app(scope, receive, send)
        elif kind == "websocket":
            if not self.accepting:
                await receive()  # websocket.connect
                await send({"type": "websocket.close"})
                return
            conn = Connection(websocket=True, transport=transport_of(receive))
            scope = {**scope, SCOPE_KEY: conn}
            upgrading = _query_sid(scope)
            if upgrading is not None:
                self.upgrades[upgrading] = conn
            try:
                await self._app(scope, self._checked(receive, conn), send)
            finally:
                if upgrading is not None and self.upgrades.get(upgrading) is conn:
                    del self.upgrades[upgrading]
        else:
            await self._app(scope, receive, send)

    def _checked(self, receive: Receive, conn: Connection) -> Receive:
        on_bad_frame = self._on_bad_frame

        async def checked_receive() -> MutableMapping[str, Any]:
            while True:
                message = await receive()
                if message["type"] == "websocket.receive":
                    text = message.get("text")
                    if text is not None and (not text or text[0] not in _ENGINEIO_TYPES):
                        on_bad_frame(conn, "text frame that is not an Engine.IO packet")
                        continue
                return message

        return checked_receive

    async def _checked_body(
        self, scope: Scope, receive: Receive, send: Send, session: str
    ) -> Receive | None:
        """Read a polling POST's body and check it; a receive that replays it, or ``None``
        when the request was answered here (400)."""
        declared = _content_length(scope)
        if declared is None or declared > self._max_body:
            return receive  # python-engineio refuses it on its own, without a traceback
        body = b""
        first: MutableMapping[str, Any] = {}
        while len(body) <= declared:
            first = await receive()
            if first["type"] != "http.request":
                return _replay(first, receive)
            body += first.get("body", b"")
            if not first.get("more_body"):
                break
        problem = _payload_problem(body[:declared])
        if problem is not None:
            self._on_bad_payload(session, problem)
            await _respond(send, 400, b"bad payload")
            return None
        return _replay({"type": "http.request", "body": body, "more_body": False}, receive)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _payload_problem(body: bytes) -> str | None:
    """Why a long-polling payload is not a list of Engine.IO packets, or ``None``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "polling payload that is not UTF-8"
    for packet in text.split("\x1e") if text else ():
        if not packet:
            return "empty packet in a polling payload"
        if packet[0] == "b":
            try:
                base64.b64decode(packet[1:], validate=True)
            except (binascii.Error, ValueError):
                return "bad base64 packet in a polling payload"
        elif packet[0] not in _ENGINEIO_TYPES:
            return "polling payload packet that is not an Engine.IO packet"
    return None


def _replay(message: MutableMapping[str, Any], receive: Receive) -> Receive:
    """A receive that returns ``message`` once, then defers to ``receive``."""
    pending = [message]

    async def replaying() -> MutableMapping[str, Any]:
        return pending.pop() if pending else await receive()

    return replaying


def _query_sid(scope: Scope) -> str | None:
    raw = scope.get("query_string") or b""
    try:
        values = parse_qs(raw.decode("latin-1")).get("sid")
    except ValueError:
        return None
    return values[0] if values else None


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

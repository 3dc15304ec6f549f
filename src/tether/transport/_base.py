"""The transport interface: what the driver needs from a connection, and nothing more.

The core speaks in whole WebSocket messages (``str`` for text frames, ``bytes`` for binary
frames, Engine.IO v4 "one packet per frame"), so a transport is a message channel, not a byte
stream. Keeping the interface to four calls and one error type is what lets another transport
(HTTP long-polling, an in-memory pair for tests) slot in without touching the core or the
driver.

Every failure below the message level becomes one :class:`TransportError` whose ``reason`` is
one of Socket.IO's two transport disconnect reasons, so the driver can hand it to the core
unchanged:

- ``"transport close"``: the peer ended the connection cleanly (a WebSocket close frame, or
  EOF after the handshake), or this side closed it.
- ``"transport error"``: anything broken: refused, DNS, TLS, a rejected upgrade, a reset,
  bad framing, invalid UTF-8 in a text frame, a message over the size limit.
"""

from __future__ import annotations

import math
import re
import ssl
from collections.abc import Iterable, Sequence
from typing import Final, Literal, Protocol, TypeAlias

import anyio

__all__ = [
    "TRANSPORT_CLOSE",
    "TRANSPORT_ERROR",
    "Connector",
    "Message",
    "ReadDeadline",
    "Transport",
    "TransportError",
    "TransportErrorReason",
    "encode_headers",
]

#: A whole WebSocket message: ``str`` for a text frame, ``bytes`` for a binary frame.
Message: TypeAlias = str | bytes

#: The two disconnect reasons a transport can produce (Socket.IO's names for them).
TransportErrorReason: TypeAlias = Literal["transport close", "transport error"]

TRANSPORT_CLOSE: Final = "transport close"
"""The peer ended the connection cleanly, or this side closed it."""
TRANSPORT_ERROR: Final = "transport error"
"""The connection broke, or could not be opened."""

_REASONS: Final = frozenset({TRANSPORT_CLOSE, TRANSPORT_ERROR})


class TransportError(Exception):
    """The connection cannot carry messages any more, or could not be opened.

    ``reason`` is ``"transport close"`` (a clean end) or ``"transport error"`` (anything
    broken); the driver passes it to the core as the disconnect reason. ``status`` is the HTTP
    status when the server answered the WebSocket upgrade with something other than 101, so a
    caller can tell a 403 from a 400 (Engine.IO 1.9: Node answers every refused upgrade with
    400 and a short text body). The message names the endpoint as ``scheme://host:port/path``
    at most: transports never put header values, query strings or credentials into it, since
    it ends up in logs and in ``on_error`` listeners.
    """

    reason: TransportErrorReason
    status: int | None

    def __init__(
        self,
        reason: TransportErrorReason,
        message: str | None = None,
        *,
        status: int | None = None,
    ) -> None:
        if reason not in _REASONS:
            raise ValueError(
                f"reason must be 'transport close' or 'transport error', not {reason!r}"
            )
        super().__init__(message or reason)
        self.reason = reason
        self.status = status

    def __repr__(self) -> str:
        status = "" if self.status is None else f", status={self.status}"
        return f"TransportError({self.reason!r}, {str(self)!r}{status})"


class Transport(Protocol):
    """One open connection carrying whole messages in both directions.

    Concurrency: one task receives while any number of tasks send; sends are serialized and
    go out in the order they were called. ``aclose()`` may be called from any task at any
    time, including while another task is blocked in ``receive()`` or ``send()``; those calls
    then raise :class:`TransportError`.

    Apart from cancellation, the only exception ``send``, ``send_many`` and ``receive`` raise is
    :class:`TransportError`; once one has been raised the transport is ``closed`` and every
    later call raises it again (``aclose()`` is still needed to release resources, and is
    harmless to call twice).
    """

    @property
    def name(self) -> str:
        """What carries the messages now: ``"websocket"`` or ``"polling"``.

        It changes once at most, when a polling session upgrades (``_engine``); the
        in-memory transport says ``"websocket"``, which it stands in for.
        """
        ...

    @property
    def closed(self) -> bool:
        """True once the connection has ended or ``aclose()`` was called.

        A transport that ended on the peer's side may still hold messages that arrived
        before the end: keep calling ``receive()`` until it raises to get all of them.
        """
        ...

    async def send(self, message: Message) -> None:
        """Send one message: a text frame for ``str``, a binary frame for ``bytes``."""
        ...

    async def send_many(self, messages: Iterable[Message]) -> None:
        """Send several messages, in order, as one write.

        Nothing another task sends can land between them, which is what Socket.IO binary
        events need (the header packet and its attachments travel back to back).
        """
        ...

    @property
    def read_deadline(self) -> float:
        """An anyio clock time (``math.inf``: none, the initial value) past which
        ``receive()`` stops waiting and returns ``None``.

        The driver's timer while a transport is open: the task that reads also keeps the
        heartbeat and ack deadlines, without a task of its own. Settable at any time, also
        while ``receive()`` is waiting; messages already received are still returned first.
        It bounds everything ``receive()`` waits for: the peer, and the turn and the write
        of a control frame owed to the peer (a pong). A write cut off part-way fails the
        transport (``"transport error"``) rather than leaving half a frame; a wait cut off
        loses nothing.
        """
        ...

    @read_deadline.setter
    def read_deadline(self, deadline: float) -> None: ...

    async def receive(self) -> Message | None:
        """Return the next whole message from the peer, or ``None`` once ``read_deadline``
        has passed.

        Raises :class:`TransportError` with ``"transport close"`` once the peer has closed
        cleanly (after every message that arrived before the close has been returned), and
        ``"transport error"`` when the connection broke.
        """
        ...

    async def aclose(self) -> None:
        """Close the connection: politely if that can be done quickly, forcibly otherwise.

        Idempotent, bounded in time (about a second), and never raises.
        """
        ...


class ReadDeadline:
    """``Transport.read_deadline`` for a transport class: the deadline, and the cancel
    scope of the read now waiting under it, which a new deadline moves too.

    The transport enters its read's scope as ``self._read_scope`` (and clears it after);
    until a deadline is set, the class defaults stand in (no storage per instance).
    """

    _read_deadline: float = math.inf
    _read_scope: anyio.CancelScope | None = None

    @property
    def read_deadline(self) -> float:
        """The anyio clock time past which ``receive()`` returns ``None`` rather than wait."""
        return self._read_deadline

    @read_deadline.setter
    def read_deadline(self, deadline: float) -> None:
        self._read_deadline = deadline
        scope = self._read_scope
        if scope is not None:  # a receive() is waiting: move its deadline too
            scope.deadline = deadline


class Connector(Protocol):
    """Opens transports. The driver holds one and calls ``connect`` for every attempt.

    The caller bounds an attempt by cancelling it (``anyio.fail_after`` around ``connect``),
    so implementations need no timeout of their own, but they must release everything they
    opened (sockets above all) when cancelled.
    """

    async def connect(
        self,
        url: str,
        *,
        headers: Sequence[tuple[str, str]],
        ssl_context: ssl.SSLContext | None,
        max_message_size: int,
    ) -> Transport:
        """Open a transport to ``url`` (as built by :func:`tether._url.build_websocket_url`).

        ``headers`` go into the opening request, ``ssl_context`` is used for ``wss``/``https``
        (``None`` means a default, verifying context), and ``max_message_size`` bounds every
        incoming message in bytes; a larger one fails the transport with
        ``"transport error"``. Raises :class:`TransportError` when the connection cannot be
        opened, including for a URL or header that could never work (they may come from a
        callable the client runs for every attempt, so they fail the attempt, not the
        driver). The one ``ValueError`` is for a ``max_message_size`` below 1.
        """
        ...


# RFC 9110 5.1: a field name is a token.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 5.5: a field value is visible characters, obs-text and inner spaces or tabs. CR, LF
# and NUL are what would let a value smuggle in a header of its own.
_FIELD_VALUE: Final = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
# Written by the WebSocket handshake itself (RFC 6455 4.1) or meaningless on an upgrade: a
# second copy would make the request invalid or ambiguous.
_RESERVED_HEADERS: Final = frozenset(
    {
        "host",
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "content-length",
        "transfer-encoding",
    }
)


def encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Check extra handshake headers and encode them as Latin-1 (RFC 9110 5.5).

    Raises ``ValueError`` (``TypeError`` for non-strings) for a name that is not a token, a
    header the handshake sets itself (``Host``, ``Upgrade``, ``Sec-WebSocket-*``...), or a
    value with control characters or characters outside Latin-1. Messages name the header,
    never its value, since values are often credentials. Surrounding spaces are trimmed. A
    client can call this when it is constructed to reject bad static headers early.
    """
    encoded = []
    for name, value in headers:
        if not isinstance(name, str):
            raise TypeError(f"header names must be str, not {type(name).__name__}")
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"invalid header name {name!r}")
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"the {name} header is set by the WebSocket handshake itself")
        if not isinstance(value, str):
            raise TypeError(f"the value of header {name!r} must be a str")
        try:
            raw = value.strip(" \t").encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(
                f"the value of header {name!r} has characters outside Latin-1"
            ) from None
        if not _FIELD_VALUE.fullmatch(raw):
            raise ValueError(f"the value of header {name!r} has control characters")
        encoded.append((name.encode("ascii"), raw))
    return encoded
